/*
 * export/sink_redis.c — events to Redis: RPUSH to a list, XADD to a stream
 * or PUBLISH to a channel, over plain TCP or TLS, to one of several servers
 * or to the master that Redis Sentinel names, with an optional disk spool.
 *
 *   redis://[user[:password]@]host[:port][,host[:port]...]/key[?options]
 *   rediss://...                          the same over TLS
 *   redis-sentinel://[user[:password]@]host[:port][,...]/master-name/key[?options]
 *   rediss-sentinel://...                 sentinels and master over TLS
 *
 * Options (docs/OUTPUTS.md has the full list): mode=list|stream|channel,
 * maxlen=N, ca=, cert=, key=, sni=, password_file=, password_env=, spool=DIR,
 * spool_max_mb=N, fsync=always|batch|never, spool_full=drop_oldest|
 * drop_newest, connect_timeout_ms=, timeout_ms=, wait=N, wait_timeout_ms=,
 * group=N.
 *
 * Delivery. Writes queue an owned copy of the event in memory (or append it
 * to the spool, below). kg_sink_flush() sends the queue over one connection
 * (redis_conn.c) as a pipeline: up to REDIS_WINDOW events are in flight,
 * formatted with hiredis's redisFormatCommandArgv() while the replies of
 * earlier ones are read back; in list mode up to `group` events share one
 * RPUSH (atomic: the group succeeds or fails as one). An event is settled only by its reply, in
 * order: success (delivered), or a final error such as WRONGTYPE (logged,
 * failed). Replies that mean "not now" (LOADING, READONLY, NOAUTH, OOM, ...
 * see retryable_error()), a lost connection, a protocol error or a server
 * silent for timeout_ms drop the connection; every event without its reply
 * is sent again on the next one. Delivery is therefore at least once, in
 * order, with duplicates possible after a failure. With wait=N, a WAIT N
 * follows each burst of commands and the burst counts as delivered only
 * when N replicas have it (survives a Sentinel failover); a WAIT that comes
 * back short is asked again on the same connection, not answered by
 * running the burst again (which would only duplicate it), for timeout_ms
 * per flush, the connection and its unconfirmed burst kept between flushes.
 *
 * Connecting. Servers of a list are tried in order, one pass per attempt
 * (a server that answered READONLY is skipped to the next). With Sentinel,
 * the sentinels are asked in order for the master's address (SENTINEL
 * get-master-addr-by-name), and the master's ROLE is checked; after any
 * failure the next attempt asks again. A flush makes at most one connection
 * attempt, and none before the back-off since the last failure expired:
 * none after the first failure of a working connection (reconnect at once),
 * then 100 ms doubling to 5 s, each with random jitter (half to all of it)
 * so that many sensors do not reconnect in step. Failures are logged
 * rate-limited (component export/redis); the password is never logged and
 * the sink's name masks it.
 *
 * Spool (spool=DIR). When the destination cannot be reached (a flush ends
 * with events undelivered) or the memory queue reaches REDIS_SPILL_AT
 * events, the whole memory queue moves to the spool, and from then on every
 * new event is appended to the spool too, so that order is kept: the spool
 * is replayed, oldest first, before anything newer. Spool records are
 * removed only once their reply arrived. kg_sink_free() moves what is still
 * in memory to the spool, so nothing is lost across a restart; a sink
 * opened on a spool with records replays them first. Without a spool the
 * memory queue is bounded (kg_sink_set_queue_limit) and drops its oldest.
 *
 * Threads: the export thread only. Owns its connection, queue, spool and
 * parsed spec.
 */
#include "export/export_int.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define REDIS_DEFAULT_PORT 6379
#define REDIS_SENTINEL_DEFAULT_PORT 26379
#define REDIS_QUEUE_INITIAL 1024u
#define REDIS_MAX_EVENT (512u * 1024u * 1024u)
#define REDIS_WINDOW 4096u                /* commands in flight at most */
#define REDIS_OUT_HIGH (1024u * 1024u)    /* formatted bytes not yet sent, at most */
#define REDIS_GROUP 64u                   /* list mode: events per RPUSH at most (group=) */
#define REDIS_GROUP_BYTES (256u * 1024u)  /* ... and bytes per RPUSH, about */
#define REDIS_SPILL_AT 65536u             /* memory queue length that moves it to the spool */
#define REDIS_BACKOFF_MIN_NS 100000000ull /* 100 ms */
#define REDIS_BACKOFF_MAX_NS 5000000000ull
#define REDIS_DEFAULT_MAXLEN 1000000ull
#define REDIS_DEFAULT_SPOOL_MB 1024ull
#define REDIS_PASSWORD_MAX 4096

enum rmode { MODE_LIST, MODE_STREAM, MODE_CHANNEL };
static const char *const mode_cmd[] = {"RPUSH", "XADD", "PUBLISH"};

enum src { SRC_QUEUE, SRC_SPOOL, SRC_WAIT };
enum rstate { ST_SENT, ST_OK, ST_FAILED };

struct redis_entry {
    char *data; /* owned copy of the event, no trailing '\n' */
    size_t len;
};

struct inflight {
    uint8_t src;    /* enum src */
    uint8_t state;  /* enum rstate */
    uint16_t group; /* first event of a command: events it carries; 0 for the others */
    struct kg_spool_pos pos;
};

struct endpoint {
    char *host;
    int port;
};

struct redis_priv {
    /* --- spec --- */
    bool tls, sentinel;
    struct endpoint *eps; /* servers, or sentinels */
    size_t neps;
    char *master; /* sentinel: the master's name */
    char *user;   /* NULL: AUTH with the password alone */
    char *password;
    size_t password_len;
    char *key;
    size_t key_len;
    enum rmode mode;
    uint64_t maxlen; /* stream: MAXLEN ~ maxlen; 0: no trimming */
    bool maxlen_set;
    char maxlen_str[24];
    int wait_replicas, wait_timeout_ms;
    unsigned group; /* list mode: events per RPUSH at most */
    char wait_n_str[16], wait_t_str[16];
    int connect_ms, io_ms;
    char *ca, *cert, *keyfile, *sni;
    struct kg_tls_config *tlscfg;
    char *spool_dir;
    uint64_t spool_max;
    enum kg_spool_fsync fsync;
    enum kg_spool_full spool_full;

    /* --- connection --- */
    struct kg_rconn *conn; /* NULL while disconnected */
    size_t ep_start;       /* server list: where the next attempt starts */
    size_t ep_cur;
    bool ever_connected, down;
    unsigned failures; /* consecutive, since the last delivery */
    uint64_t next_attempt_ns;
    uint64_t rng;

    /* --- memory queue: a ring; the first `sent` entries are in flight --- */
    struct redis_entry *q;
    size_t cap, head, count, limit, sent;

    /* --- spool --- */
    struct kg_spool *spool;
    uint64_t spool_failed_seen; /* spool losses of this run already counted as failed */
    uint64_t old_settled;       /* earlier runs' records delivered or given up */

    /* --- pipeline (empty between calls) --- */
    struct kg_buf out;
    size_t out_off;
    struct inflight *inf; /* ring */
    size_t inf_cap, inf_head, inf_count;
    size_t inf_replied; /* wait=N: entries from the head that have their reply */
    size_t since_wait;
    struct kg_buf scratch;    /* the values of the command being built */
    size_t goff[REDIS_GROUP]; /* ... their offsets in scratch */
    size_t glen[REDIS_GROUP];
    const char *gargv[REDIS_GROUP + 2];
    size_t glens[REDIS_GROUP + 2];
    uint64_t wait_short_ns;  /* wait=N: when a WAIT first came back short (0: none) */
    bool wait_again;         /* a WAIT came back short: send another one */
    size_t wait_outstanding; /* WAIT commands sent, reply not yet read */

    char last_error[320];
    struct kg_ratelimit rl_conn, rl_up, rl_reply, rl_drop;
};

/* --- small helpers ----------------------------------------------------------------- */

static void set_error(struct redis_priv *pv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct redis_priv *pv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pv->last_error, sizeof(pv->last_error), fmt, ap);
    va_end(ap);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* RFC 3986 percent-decoding of s[0..n) into an owned string; NULL when a
 * '%' is not followed by two hex digits. */
static char *percent_decode(const char *s, size_t n, size_t *out_len)
{
    char *out = kg_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
        i += 2;
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

/* Decodes a text value (no NUL inside). */
static char *decode_text(const char *s, size_t n)
{
    size_t len;
    char *v = percent_decode(s, n, &len);
    if (v && memchr(v, '\0', len)) {
        free(v);
        return NULL;
    }
    return v;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        const uint64_t d = (uint64_t)(*s - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void wipe_password(struct redis_priv *pv)
{
    if (!pv->password) return;
    /* Do not leave the secret in freed heap memory (core dumps). */
    explicit_bzero(pv->password, pv->password_len);
    free(pv->password);
    pv->password = NULL;
    pv->password_len = 0;
}

/* --- spec parsing --------------------------------------------------------------------- */

static int parse_endpoint(const char *s, size_t n, int default_port, struct endpoint *ep, struct kg_err *err)
{
    const char *host = s, *host_end, *port_str = NULL, *end = s + n;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return kg_err_set(err, KG_ERR_INVAL, "redis output: missing ']' after an IPv6 address");
        host = s + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return kg_err_set(err, KG_ERR_INVAL, "redis output: expected ':port' after ']'");
            port_str = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        host_end = colon ? colon : end;
        if (colon) {
            if (memchr(colon + 1, ':', (size_t)(end - colon - 1)))
                return kg_err_set(err, KG_ERR_INVAL, "redis output: write an IPv6 address as [addr]:port");
            port_str = colon + 1;
        }
    }
    if (host_end == host) return kg_err_set(err, KG_ERR_INVAL, "redis output: no host given");
    ep->port = default_port;
    if (port_str) {
        long port = 0;
        const char *p = port_str;
        for (; p < end && *p >= '0' && *p <= '9' && port <= 65535; p++)
            port = port * 10 + (*p - '0');
        if (p != end || p == port_str || port < 1 || port > 65535)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: port must be 1..65535");
        ep->port = (int)port;
    }
    ep->host = kg_xstrndup(host, (size_t)(host_end - host));
    return 0;
}

static int read_password_file(struct redis_priv *pv, const char *path, struct kg_err *err)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kg_err_set(err, KG_ERR_IO, "redis output: cannot open password file %s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > REDIS_PASSWORD_MAX) {
        close(fd);
        return kg_err_set(err, KG_ERR_INVAL,
                          "redis output: password file %s: not a regular file of at most %d bytes", path,
                          REDIS_PASSWORD_MAX);
    }
    if (st.st_mode & 0004)
        kg_log(KG_LOG_WARN, "export/redis", "password file %s is readable by every user (chmod o-r)", path);
    char *buf = kg_xmalloc(REDIS_PASSWORD_MAX + 1);
    ssize_t n;
    do {
        n = read(fd, buf, REDIS_PASSWORD_MAX);
    } while (n < 0 && errno == EINTR);
    const int e = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        return kg_err_set(err, KG_ERR_IO, "redis output: cannot read password file %s: %s", path,
                          strerror(e));
    }
    size_t len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len == 0) {
        explicit_bzero(buf, (size_t)n);
        free(buf);
        return kg_err_set(err, KG_ERR_INVAL, "redis output: password file %s is empty", path);
    }
    explicit_bzero(buf + len, (size_t)n - len);
    buf[len] = '\0';
    pv->password = buf;
    pv->password_len = len;
    return 0;
}

static int parse_option(struct redis_priv *pv, const char *k, size_t klen, const char *v, struct kg_err *err,
                        const char **pw_file, const char **pw_env)
{
#define IS(name) (klen == sizeof(name) - 1 && memcmp(k, name, klen) == 0)
    uint64_t n;
    if (IS("mode")) {
        if (strcmp(v, "list") == 0)
            pv->mode = MODE_LIST;
        else if (strcmp(v, "stream") == 0)
            pv->mode = MODE_STREAM;
        else if (strcmp(v, "channel") == 0)
            pv->mode = MODE_CHANNEL;
        else
            return kg_err_set(err, KG_ERR_INVAL, "redis output: mode must be list, stream or channel");
    } else if (IS("maxlen")) {
        if (!parse_u64(v, UINT64_MAX / 2, &n))
            return kg_err_set(err, KG_ERR_INVAL, "redis output: bad maxlen");
        pv->maxlen = n;
        pv->maxlen_set = true;
    } else if (IS("ca") || IS("cert") || IS("key") || IS("sni")) {
        if (!pv->tls)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: option %.*s needs a TLS scheme (rediss://)",
                              (int)klen, k);
        char **slot = IS("ca") ? &pv->ca : IS("cert") ? &pv->cert : IS("key") ? &pv->keyfile : &pv->sni;
        free(*slot);
        *slot = kg_xstrdup(v);
    } else if (IS("password_file")) {
        *pw_file = v;
    } else if (IS("password_env")) {
        *pw_env = v;
    } else if (IS("spool")) {
        free(pv->spool_dir);
        pv->spool_dir = kg_xstrdup(v);
    } else if (IS("spool_max_mb")) {
        if (!parse_u64(v, 1u << 30, &n) || n == 0)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: spool_max_mb must be 1 or more");
        pv->spool_max = n << 20;
    } else if (IS("fsync")) {
        if (strcmp(v, "always") == 0)
            pv->fsync = KG_SPOOL_FSYNC_ALWAYS;
        else if (strcmp(v, "batch") == 0)
            pv->fsync = KG_SPOOL_FSYNC_BATCH;
        else if (strcmp(v, "never") == 0)
            pv->fsync = KG_SPOOL_FSYNC_NEVER;
        else
            return kg_err_set(err, KG_ERR_INVAL, "redis output: fsync must be always, batch or never");
    } else if (IS("spool_full")) {
        if (strcmp(v, "drop_oldest") == 0)
            pv->spool_full = KG_SPOOL_DROP_OLDEST;
        else if (strcmp(v, "drop_newest") == 0)
            pv->spool_full = KG_SPOOL_DROP_NEWEST;
        else
            return kg_err_set(err, KG_ERR_INVAL,
                              "redis output: spool_full must be drop_oldest or drop_newest");
    } else if (IS("connect_timeout_ms") || IS("timeout_ms") || IS("wait_timeout_ms")) {
        if (!parse_u64(v, 3600000, &n) || n == 0)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: %.*s must be 1..3600000", (int)klen, k);
        *(IS("connect_timeout_ms") ? &pv->connect_ms
          : IS("timeout_ms")       ? &pv->io_ms
                                   : &pv->wait_timeout_ms) = (int)n;
    } else if (IS("group")) {
        if (!parse_u64(v, REDIS_GROUP, &n) || n == 0)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: group must be 1..%u", REDIS_GROUP);
        pv->group = (unsigned)n;
    } else if (IS("wait")) {
        if (!parse_u64(v, 100, &n)) return kg_err_set(err, KG_ERR_INVAL, "redis output: wait must be 0..100");
        pv->wait_replicas = (int)n;
    } else {
        /* The value is not echoed: it could be a secret in the wrong place. */
        return kg_err_set(err, KG_ERR_INVAL, "redis output: unknown option '%.*s'", (int)KG_MIN(klen, 40), k);
    }
    return 0;
#undef IS
}

static int parse_spec(struct redis_priv *pv, const char *scheme, const char *arg, struct kg_buf *name,
                      struct kg_err *err)
{
    const char *slash = strchr(arg, '/');
    if (!slash || slash[1] == '\0' || slash[1] == '?')
        return kg_err_set(err, KG_ERR_INVAL, "redis output needs %s: %shost:port/%s",
                          pv->sentinel ? "a master name and a key" : "a key", scheme,
                          pv->sentinel ? "master-name/key" : "key");

    /* userinfo: up to the last '@' of the authority, so a password may hold
     * '@' and ':'; only '/' and '%' must be percent-encoded in it. */
    const char *hostlist = arg, *at = NULL;
    for (const char *p = arg; p < slash; p++)
        if (*p == '@') at = p;
    kg_buf_append_str(name, scheme);
    if (at) {
        const char *colon = memchr(arg, ':', (size_t)(at - arg));
        const char *user_end = colon ? colon : at;
        if (user_end > arg) {
            pv->user = decode_text(arg, (size_t)(user_end - arg));
            if (!pv->user)
                return kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape in the user name");
            kg_buf_append(name, arg, (size_t)(user_end - arg));
        }
        if (colon) {
            pv->password = percent_decode(colon + 1, (size_t)(at - colon - 1), &pv->password_len);
            if (!pv->password)
                return kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape in the password");
            if (pv->password_len == 0) wipe_password(pv); /* "redis://:@host/key": no AUTH */
            kg_buf_append_str(name, ":***");
        }
        kg_buf_append_char(name, '@');
        hostlist = at + 1;
    }
    kg_buf_append_str(name, hostlist);

    /* servers (or sentinels), comma-separated */
    const int defport = pv->sentinel ? REDIS_SENTINEL_DEFAULT_PORT : REDIS_DEFAULT_PORT;
    for (const char *p = hostlist; p <= slash;) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        pv->eps = kg_xrealloc(pv->eps, (pv->neps + 1) * sizeof(*pv->eps));
        memset(&pv->eps[pv->neps], 0, sizeof(*pv->eps));
        const int rc = parse_endpoint(p, (size_t)(end - p), defport, &pv->eps[pv->neps], err);
        if (rc != 0) return rc;
        pv->neps++;
        p = end + 1;
    }

    /* path: [master/]key, then ?options */
    const char *path = slash + 1;
    const char *q = strchr(path, '?');
    const char *path_end = q ? q : path + strlen(path);
    if (pv->sentinel) {
        const char *s2 = memchr(path, '/', (size_t)(path_end - path));
        if (!s2 || s2 == path || s2 + 1 == path_end)
            return kg_err_set(err, KG_ERR_INVAL,
                              "redis output: expected /master-name/key after the sentinels");
        pv->master = decode_text(path, (size_t)(s2 - path));
        if (!pv->master)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape in the master name");
        path = s2 + 1;
    }
    pv->key = percent_decode(path, (size_t)(path_end - path), &pv->key_len);
    if (!pv->key || pv->key_len == 0) return kg_err_set(err, KG_ERR_INVAL, "redis output: bad or empty key");

    const char *pw_file = NULL, *pw_env = NULL;
    char *vals[32];
    size_t nvals = 0;
    int rc = 0;
    for (const char *o = q ? q + 1 : NULL; o && *o && rc == 0;) {
        const char *amp = strchr(o, '&');
        const char *oend = amp ? amp : o + strlen(o);
        const char *eq = memchr(o, '=', (size_t)(oend - o));
        if (!eq || eq == o) {
            rc = kg_err_set(err, KG_ERR_INVAL, "redis output: options are name=value pairs joined by '&'");
            break;
        }
        char *v = decode_text(eq + 1, (size_t)(oend - eq - 1));
        if (!v || nvals == KG_ARRAY_LEN(vals)) {
            free(v);
            rc = kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape or too many options");
            break;
        }
        vals[nvals++] = v; /* kept until the end: pw_file / pw_env point into it */
        rc = parse_option(pv, o, (size_t)(eq - o), v, err, &pw_file, &pw_env);
        o = amp ? amp + 1 : NULL;
    }
    if (rc == 0 && (pw_file || pw_env)) {
        if (pv->password || (pw_file && pw_env))
            rc = kg_err_set(
                err, KG_ERR_INVAL,
                "redis output: give the password once (in the URL, password_file or password_env)");
        else if (pw_file)
            rc = read_password_file(pv, pw_file, err);
        else {
            const char *e = getenv(pw_env);
            if (!e || !*e)
                rc = kg_err_set(err, KG_ERR_INVAL,
                                "redis output: environment variable %.64s is not set or empty", pw_env);
            else if (strlen(e) > REDIS_PASSWORD_MAX)
                rc = kg_err_set(err, KG_ERR_INVAL, "redis output: password in %.64s is too long", pw_env);
            else {
                pv->password = kg_xstrdup(e);
                pv->password_len = strlen(e);
            }
        }
    }
    for (size_t i = 0; i < nvals; i++)
        free(vals[i]);
    if (rc != 0) return rc;
    if (pv->user && !pv->password)
        return kg_err_set(err, KG_ERR_INVAL, "redis output: a user name needs a password");
    if (pv->mode != MODE_STREAM && pv->maxlen_set)
        return kg_err_set(err, KG_ERR_INVAL, "redis output: maxlen applies to mode=stream only");
    if (pv->wait_replicas > 0 && pv->mode == MODE_CHANNEL)
        return kg_err_set(
            err, KG_ERR_INVAL,
            "redis output: wait does not apply to mode=channel (PUBLISH is not replicated as data)");
    if (pv->spool_dir && pv->mode == MODE_CHANNEL)
        kg_log(
            KG_LOG_WARN, "export/redis",
            "%s: a spool keeps events while Redis is unreachable, but PUBLISH reaches only the subscribers "
            "connected at that moment",
            name->data);
    return 0;
}

/* --- memory queue ------------------------------------------------------------------------ */

static struct redis_entry *q_at(struct redis_priv *pv, size_t i)
{
    return &pv->q[(pv->head + i) % pv->cap];
}

static void q_pop(struct redis_priv *pv)
{
    struct redis_entry *e = q_at(pv, 0);
    free(e->data);
    e->data = NULL;
    pv->head = (pv->head + 1) % pv->cap;
    pv->count--;
}

static bool q_grow(struct redis_priv *pv)
{
    size_t ncap = pv->cap ? pv->cap * 2 : REDIS_QUEUE_INITIAL;
    if (ncap > pv->limit) ncap = pv->limit;
    if (ncap <= pv->cap) ncap = pv->cap + 1;
    struct redis_entry *nq = malloc(ncap * sizeof(*nq));
    if (!nq) return false;
    for (size_t i = 0; i < pv->count; i++)
        nq[i] = *q_at(pv, i);
    free(pv->q);
    pv->q = nq;
    pv->cap = ncap;
    pv->head = 0;
    return true;
}

/* --- accounting ----------------------------------------------------------------------------- */

/* Brings the sink's counters up to date with the spool's. */
static void update_stats(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    uint64_t spool_new = 0;
    if (pv->spool) {
        struct kg_spool_stats ss;
        kg_spool_get_stats(pv->spool, &ss);
        /* This run's records the spool lost (full, write errors) are failed. */
        const uint64_t lost = ss.dropped_new + ss.io_errors;
        s->st.failed += lost - pv->spool_failed_seen;
        pv->spool_failed_seen = lost;
        s->st.spooled = ss.records;
        s->st.spool_dropped = ss.dropped_new + ss.dropped_old;
        s->st.spool_corrupt = ss.corrupt;
        const uint64_t old_left = ss.recovered - KG_MIN(ss.recovered, pv->old_settled + ss.dropped_old);
        spool_new = ss.records - KG_MIN(ss.records, old_left);
    }
    s->st.queued = pv->count + spool_new;
    s->st.durable = pv->spool != NULL;
}

/* Moves the memory queue to the end of the spool (order kept: everything in
 * the spool is older, and everything written later goes there too). Events
 * in flight on a connection kept open while replicas are awaited (wait=N)
 * stay in memory: their replies arrived, only the WAIT is missing. */
static void spill(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    if (!pv->spool || pv->count == pv->sent) return;
    for (size_t i = pv->sent; i < pv->count; i++) {
        struct redis_entry *e = q_at(pv, i);
        (void)kg_spool_append(pv->spool, e->data, e->len); /* a loss is counted by the spool */
        free(e->data);
        e->data = NULL;
    }
    pv->count = pv->sent;
    update_stats(s);
}

/* --- connection ------------------------------------------------------------------------------ */

static uint64_t next_random(struct redis_priv *pv)
{
    /* xorshift64*: jitter only, no need for a strong generator. */
    uint64_t x = pv->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    pv->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* One more consecutive failure: when may the next attempt be made. */
static void schedule_retry(struct redis_priv *pv)
{
    pv->failures++;
    uint64_t delay = 0;
    if (pv->failures > 1) {
        const unsigned shift = KG_MIN(pv->failures - 2, 16u);
        delay = KG_MIN(REDIS_BACKOFF_MIN_NS << shift, REDIS_BACKOFF_MAX_NS);
        delay = delay / 2 + next_random(pv) % (delay / 2 + 1); /* "equal jitter" */
    }
    pv->next_attempt_ns = kg_monotonic_ns() + delay;
}

static size_t pending_events(const struct redis_priv *pv)
{
    struct kg_spool_stats ss = {0};
    if (pv->spool) kg_spool_get_stats(pv->spool, &ss);
    return pv->count + ss.records;
}

static void log_down(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    const uint64_t now = kg_monotonic_ns();
    const double retry_s = pv->next_attempt_ns > now ? (double)(pv->next_attempt_ns - now) / 1e9 : 0.0;
    pv->down = true;
    kg_log_ratelimited(&pv->rl_conn, 10.0, KG_LOG_WARN, "export/redis",
                       "%s: %s; %zu events queued, retrying in %.1f s", s->name, pv->last_error,
                       pending_events(pv), retry_s);
}

/* Runs one command on a fresh connection; the reply is owned by the caller. */
static int command(struct redis_priv *pv, struct kg_rconn *c, int argc, const char **argv, const size_t *lens,
                   redisReply **r)
{
    struct kg_err e;
    if (kg_rconn_command(c, argc, argv, lens, pv->io_ms, r, &e) != 0) {
        set_error(pv, "%s", e.msg);
        return -1;
    }
    return 0;
}

/* Connects to one server and authenticates. Returns the connection, or NULL
 * with last_error set. */
static struct kg_rconn *connect_server(struct redis_priv *pv, const char *host, int port, bool check_role)
{
    struct kg_err e;
    struct kg_rconn *c =
        kg_rconn_connect(host, port, pv->tls ? pv->tlscfg : NULL, pv->sni, pv->connect_ms, pv->io_ms, &e);
    if (!c) {
        set_error(pv, "%s", e.msg);
        return NULL;
    }
    if (pv->password) {
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (pv->user) { /* Redis 6 ACL form */
            argv[argc] = pv->user;
            lens[argc++] = strlen(pv->user);
        }
        argv[argc] = pv->password;
        lens[argc++] = pv->password_len;
        redisReply *r = NULL;
        if (command(pv, c, argc, argv, lens, &r) != 0) {
            kg_rconn_free(c);
            return NULL;
        }
        /* The server's error text never echoes the password. */
        bool ok = r->type == REDIS_REPLY_STATUS;
        if (r->type == REDIS_REPLY_ERROR)
            set_error(pv, "authentication refused by %s: %s", kg_rconn_peer(c), r->str);
        else if (!ok)
            set_error(pv, "AUTH to %s failed: unexpected reply", kg_rconn_peer(c));
        freeReplyObject(r);
        if (!ok) {
            kg_rconn_free(c);
            return NULL;
        }
    }
    if (!pv->password) {
        /* A server that wants a password answers NOAUTH here, before a
         * pipeline meets Redis's limits on unauthenticated clients (more
         * than 10 arguments or 16 KB: a protocol error and a closed
         * connection). */
        const char *argv[1] = {"PING"};
        const size_t lens[1] = {4};
        redisReply *r = NULL;
        if (command(pv, c, 1, argv, lens, &r) != 0) {
            kg_rconn_free(c);
            return NULL;
        }
        const bool ok = r->type == REDIS_REPLY_STATUS;
        if (!ok)
            set_error(pv, "%s refused writes: %.200s", kg_rconn_peer(c),
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to PING");
        freeReplyObject(r);
        if (!ok) {
            kg_rconn_free(c);
            return NULL;
        }
    }
    if (check_role) {
        /* Sentinel's advice to clients: the address may be stale during a
         * failover, so ask the server itself. */
        const char *argv[1] = {"ROLE"};
        const size_t lens[1] = {4};
        redisReply *r = NULL;
        if (command(pv, c, 1, argv, lens, &r) != 0) {
            kg_rconn_free(c);
            return NULL;
        }
        const bool is_array =
            r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING;
        const bool master = is_array && strcmp(r->element[0]->str, "master") == 0;
        /* An ACL user without ROLE gets an error: then trust the sentinel. */
        if (is_array && !master) {
            set_error(pv, "%s named by the sentinels as master '%s' reports role '%.32s'", kg_rconn_peer(c),
                      pv->master, r->element[0]->str);
            freeReplyObject(r);
            kg_rconn_free(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

/* Asks the sentinels in order for the master's address. */
static int ask_sentinels(struct redis_priv *pv, char *host, size_t host_size, int *port)
{
    char errs[320] = "";
    for (size_t i = 0; i < pv->neps; i++) {
        struct kg_err e;
        struct kg_rconn *c = kg_rconn_connect(pv->eps[i].host, pv->eps[i].port, pv->tls ? pv->tlscfg : NULL,
                                              pv->sni, pv->connect_ms, pv->io_ms, &e);
        if (!c) {
            snprintf(errs, sizeof(errs), "sentinel %.280s", e.msg);
            continue;
        }
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", pv->master};
        const size_t lens[3] = {8, 23, strlen(pv->master)};
        redisReply *r = NULL;
        if (command(pv, c, 3, argv, lens, &r) != 0) {
            snprintf(errs, sizeof(errs), "sentinel %.280s", pv->last_error);
            kg_rconn_free(c);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            kg_strlcpy(host, r->element[0]->str, host_size);
            *port = atoi(r->element[1]->str);
            freeReplyObject(r);
            kg_rconn_free(c);
            if (*port > 0 && *port < 65536) return 0;
            snprintf(errs, sizeof(errs), "sentinel %s:%d gave a bad port", pv->eps[i].host, pv->eps[i].port);
            continue;
        }
        if (r->type == REDIS_REPLY_NIL)
            snprintf(errs, sizeof(errs), "sentinel %s does not know master '%.64s'", kg_rconn_peer(c),
                     pv->master);
        else
            snprintf(errs, sizeof(errs), "sentinel %s: %.128s", kg_rconn_peer(c),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        kg_rconn_free(c);
    }
    set_error(pv, "no sentinel named the master: %s", errs);
    return -1;
}

/* One connection attempt. Returns 0, or -1 with last_error set. */
static int rd_connect(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    struct kg_rconn *c = NULL;
    if (pv->sentinel) {
        char host[256];
        int port;
        if (ask_sentinels(pv, host, sizeof(host), &port) == 0) c = connect_server(pv, host, port, true);
    } else {
        for (size_t k = 0; k < pv->neps && !c; k++) {
            const size_t i = (pv->ep_start + k) % pv->neps;
            c = connect_server(pv, pv->eps[i].host, pv->eps[i].port, false);
            if (c) pv->ep_cur = i;
        }
        if (!c && pv->neps > 1) {
            char one[320];
            kg_strlcpy(one, pv->last_error, sizeof(one));
            set_error(pv, "none of %zu servers reachable; last: %s", pv->neps, one);
        }
    }
    if (!c) return -1;
    pv->conn = c;
    if (pv->ever_connected) s->st.reconnects++;
    pv->ever_connected = true;
    if (pv->down) {
        pv->down = false;
        kg_log_ratelimited(&pv->rl_up, 10.0, KG_LOG_INFO, "export/redis",
                           "%s: connected to %s, %zu events queued", s->name, kg_rconn_peer(c),
                           pending_events(pv));
    }
    return 0;
}

/* --- pipeline --------------------------------------------------------------------------------- */

static struct inflight *inf_at(struct redis_priv *pv, size_t i)
{
    return &pv->inf[(pv->inf_head + i) % pv->inf_cap];
}

static void inf_push(struct redis_priv *pv, const struct inflight *f)
{
    *inf_at(pv, pv->inf_count) = *f;
    pv->inf_count++;
}

static void inf_pop(struct redis_priv *pv)
{
    pv->inf_head = (pv->inf_head + 1) % pv->inf_cap;
    pv->inf_count--;
}

/* Removes entry i, keeping the order of the others. */
static void inf_pop_at(struct redis_priv *pv, size_t i)
{
    for (size_t k = i; k + 1 < pv->inf_count; k++)
        *inf_at(pv, k) = *inf_at(pv, k + 1);
    pv->inf_count--;
}

/* Drops the connection; everything without its reply will be sent again. */
static void drop_connection(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    kg_rconn_free(pv->conn);
    pv->conn = NULL;
    pv->sent = 0;
    if (pv->spool) kg_spool_rewind(pv->spool);
    pv->inf_head = pv->inf_count = pv->inf_replied = 0;
    pv->since_wait = 0;
    pv->wait_short_ns = 0;
    pv->wait_again = false;
    pv->wait_outstanding = 0;
    kg_buf_reset(&pv->out);
    pv->out_off = 0;
}

static void append_command(struct redis_priv *pv, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    const int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd) {
        /* hiredis is out of memory: control-plane policy, as kg_xmalloc. */
        kg_log(KG_LOG_ERROR, "export/redis", "out of memory formatting a command");
        abort();
    }
    kg_buf_append(&pv->out, cmd, (size_t)n);
    redisFreeCommand(cmd);
}

static void append_event(struct redis_priv *pv, const char *p, size_t n)
{
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
    argv[argc] = mode_cmd[pv->mode];
    lens[argc++] = strlen(mode_cmd[pv->mode]);
    argv[argc] = pv->key;
    lens[argc++] = pv->key_len;
    if (pv->mode == MODE_STREAM) {
        if (pv->maxlen) {
            /* "~": trim at whole macro nodes, far cheaper than exact */
            argv[argc] = "MAXLEN";
            lens[argc++] = 6;
            argv[argc] = "~";
            lens[argc++] = 1;
            argv[argc] = pv->maxlen_str;
            lens[argc++] = strlen(pv->maxlen_str);
        }
        argv[argc] = "*";
        lens[argc++] = 1;
        argv[argc] = "event";
        lens[argc++] = 5;
    }
    argv[argc] = p;
    lens[argc++] = n;
    append_command(pv, argc, argv, lens);
}

/* Formats queued events (spool first) until the window is full. */
static void fill(struct redis_priv *pv)
{
    if (pv->wait_short_ns) {
        /* Replicas are missing: ask again for the commands already run
         * (WAIT covers every earlier write of the connection) rather than
         * run them again, and send nothing new meanwhile. */
        if (pv->wait_again) {
            pv->wait_again = false;
            pv->since_wait = 1;
            goto wait;
        }
        return;
    }
    /* List mode sends up to REDIS_GROUP events per RPUSH: one command for
     * the server to parse, run and answer instead of 64, which is most of
     * its cost per event. RPUSH of several values is atomic: the group is
     * delivered or not as a whole, and keeps its order. */
    const size_t group_max = pv->mode == MODE_LIST ? pv->group : 1;
    while (pv->inf_count + 1 < pv->inf_cap && pv->out.len - pv->out_off < REDIS_OUT_HIGH) {
        const size_t first = pv->inf_count;
        size_t n = 0;
        kg_buf_reset(&pv->scratch);
        while (n < group_max && pv->inf_count + 1 < pv->inf_cap && pv->scratch.len < REDIS_GROUP_BYTES) {
            struct inflight f = {.state = ST_SENT};
            const char *p;
            size_t len;
            if (pv->spool && !kg_spool_empty(pv->spool)) {
                if (kg_spool_read(pv->spool, &p, &len, &f.pos) != 0) break;
                f.src = SRC_SPOOL;
            } else if (pv->sent < pv->count) {
                const struct redis_entry *e = q_at(pv, pv->sent++);
                p = e->data;
                len = e->len;
                f.src = SRC_QUEUE;
            } else {
                break;
            }
            /* Copied: a spool record is valid only until the next read. */
            pv->goff[n] = pv->scratch.len;
            pv->glen[n] = len;
            kg_buf_append(&pv->scratch, p, len);
            inf_push(pv, &f);
            n++;
        }
        if (n == 0) break;
        inf_at(pv, first)->group = (uint16_t)n;
        pv->since_wait += n;
        if (pv->mode != MODE_LIST) {
            append_event(pv, pv->scratch.data, pv->glen[0]);
            continue;
        }
        pv->gargv[0] = "RPUSH";
        pv->glens[0] = 5;
        pv->gargv[1] = pv->key;
        pv->glens[1] = pv->key_len;
        for (size_t i = 0; i < n; i++) {
            pv->gargv[i + 2] = pv->scratch.data + pv->goff[i];
            pv->glens[i + 2] = pv->glen[i];
        }
        append_command(pv, (int)n + 2, pv->gargv, pv->glens);
    }
wait:
    if (pv->wait_replicas > 0 && pv->since_wait > 0) {
        const char *argv[3] = {"WAIT", pv->wait_n_str, pv->wait_t_str};
        const size_t lens[3] = {4, strlen(pv->wait_n_str), strlen(pv->wait_t_str)};
        append_command(pv, 3, argv, lens);
        const struct inflight f = {.src = SRC_WAIT};
        inf_push(pv, &f);
        pv->since_wait = 0;
        pv->wait_outstanding++;
    }
}

/* Error replies that mean "not now" rather than "never": the event stays
 * queued. Everything else (WRONGTYPE, ...) will not get better by resending. */
static bool retryable_error(const char *msg)
{
    static const char *const prefixes[] = {
        "LOADING",
        "BUSY",
        "MASTERDOWN",
        "READONLY",
        "OOM",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
        "NOREPLICAS",
        "UNBLOCKED",
        "ERR max number of clients",
        /* the server closes the connection after it: never final */
        "ERR Protocol error",
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0) return true;
    return false;
}

/* Settles the oldest in-flight event. */
static void settle_head(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    const struct inflight *f = inf_at(pv, 0);
    const bool ok = f->state == ST_OK;
    if (f->src == SRC_QUEUE) {
        q_pop(pv);
        pv->sent--;
        if (ok)
            s->st.delivered++;
        else
            s->st.failed++;
    } else if (f->src == SRC_SPOOL) {
        kg_spool_ack(pv->spool, &f->pos);
        if (f->pos.old) {
            pv->old_settled++;
            if (ok) s->st.replayed++;
        } else if (ok) {
            s->st.delivered++;
        } else {
            s->st.failed++;
        }
    }
    inf_pop(pv);
}

/* Takes the replies that arrived. Returns 0, or -1 with last_error set when
 * the connection must be dropped. */
static int take_replies(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    while (pv->inf_replied < pv->inf_count) {
        redisReply *r;
        struct kg_err e;
        const int rc = kg_rconn_reply(pv->conn, &r, &e);
        if (rc < 0) {
            set_error(pv, "%s", e.msg);
            return -1;
        }
        if (rc == 0) return 0;
        struct inflight *f = inf_at(pv, pv->inf_replied);
        if (f->src == SRC_WAIT) {
            if (r->type == REDIS_REPLY_INTEGER && r->integer < pv->wait_replicas) {
                /* Not (yet) replicated: keep the events unsettled and ask
                 * again; deliver() gives up after timeout_ms. */
                set_error(pv, "WAIT: %lld of %d replicas confirmed within %d ms", r->integer,
                          pv->wait_replicas, pv->wait_timeout_ms);
                freeReplyObject(r);
                if (!pv->wait_short_ns) pv->wait_short_ns = kg_monotonic_ns();
                pv->wait_again = true;
                inf_pop_at(pv, pv->inf_replied); /* the WAIT */
                pv->wait_outstanding--;
                continue;
            }
            if (r->type != REDIS_REPLY_INTEGER) {
                set_error(pv, "WAIT failed: %.200s",
                          r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                freeReplyObject(r);
                return -1;
            }
            freeReplyObject(r);
            pv->wait_short_ns = 0;
            pv->wait_again = false;
            pv->wait_outstanding--;
            for (size_t i = 0; i < pv->inf_replied; i++)
                settle_head(s);
            pv->inf_replied = 0;
            inf_pop(pv); /* the WAIT */
            continue;
        }
        const int want = pv->mode == MODE_STREAM ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER;
        const size_t group = f->group ? f->group : 1;
        if (r->type == want) {
            for (size_t i = 0; i < group; i++)
                inf_at(pv, pv->inf_replied + i)->state = ST_OK;
        } else if (r->type == REDIS_REPLY_ERROR && retryable_error(r->str)) {
            set_error(pv, "%s refused writes: %.200s", kg_rconn_peer(pv->conn), r->str);
            /* A replica (after a failover): try the next server. */
            if (strncmp(r->str, "READONLY", 8) == 0) pv->ep_start = pv->ep_cur + 1;
            freeReplyObject(r);
            return -1;
        } else {
            for (size_t i = 0; i < group; i++)
                inf_at(pv, pv->inf_replied + i)->state = ST_FAILED;
            kg_log_ratelimited(&pv->rl_reply, 10.0, KG_LOG_ERROR, "export/redis",
                               "%s: %s failed, %zu events dropped: %.200s", s->name, mode_cmd[pv->mode],
                               group, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
        }
        freeReplyObject(r);
        if (pv->wait_replicas > 0) {
            pv->inf_replied += group;
        } else {
            for (size_t i = 0; i < group; i++)
                settle_head(s);
        }
    }
    return 0;
}

/* Sends everything queued. Returns 0 when all was settled, -1 when the
 * connection was lost (dropped, the rest rewound, last_error set), 1 when
 * replicas did not confirm within timeout_ms (wait=N): the connection and
 * the events it ran are kept, and the next call asks again with WAIT. */
static int deliver(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    uint64_t last_progress = kg_monotonic_ns();
    if (pv->wait_short_ns) {
        pv->wait_short_ns = last_progress; /* a new period of patience */
        pv->wait_again = true;
    }
    const uint64_t delivered0 = s->st.delivered + s->st.replayed;
    const uint64_t limit_ns = (uint64_t)pv->io_ms * 1000000u;
    for (;;) {
        if (pv->wait_short_ns && !pv->wait_outstanding && kg_monotonic_ns() - pv->wait_short_ns >= limit_ns &&
            pv->out_off == pv->out.len) {
            /* Replicas stay away. Sending the commands again would only
             * duplicate them on this master: keep them, ask later. */
            kg_buf_reset(&pv->out);
            pv->out_off = 0;
            return 1;
        }
        fill(pv);
        if (pv->inf_count == 0) break;
        const uint64_t idle_ns = kg_monotonic_ns() - last_progress;
        if (idle_ns >= limit_ns) {
            set_error(pv, "%s: no reply within %d ms", kg_rconn_peer(pv->conn), pv->io_ms);
            goto lost;
        }
        bool progress = false;
        struct kg_err e;
        const int prc = kg_rconn_pump(pv->conn, pv->out.data, pv->out.len, &pv->out_off,
                                      (int)((limit_ns - idle_ns + 999999u) / 1000000u), &progress, &e);
        /* Replies that arrived before a failure still count. */
        if (take_replies(s) != 0) goto lost;
        if (prc < 0) {
            set_error(pv, "%s", e.msg);
            goto lost;
        }
        if (progress) last_progress = kg_monotonic_ns();
        if (pv->out_off == pv->out.len) {
            kg_buf_reset(&pv->out);
            pv->out_off = 0;
        } else if (pv->out_off >= REDIS_OUT_HIGH) {
            memmove(pv->out.data, pv->out.data + pv->out_off, pv->out.len - pv->out_off);
            pv->out.len -= pv->out_off;
            pv->out_off = 0;
        }
        /* Deliveries happened: the back-off starts over. */
        if (pv->failures && s->st.delivered + s->st.replayed > delivered0) pv->failures = 0;
    }
    pv->failures = 0;
    kg_buf_reset(&pv->out);
    pv->out_off = 0;
    return 0;
lost:
    drop_connection(s);
    return -1;
}

/* --- ops ------------------------------------------------------------------------------------- */

static void rd_close(struct kg_sink *s);

static int rd_open_common(struct kg_sink *s, const char *scheme, bool tls, bool sentinel, const char *arg,
                          struct kg_err *err)
{
    struct redis_priv *pv = kg_xcalloc(1, sizeof(*pv));
    struct kg_buf name;
    kg_buf_init(&name);
    s->priv = pv;
    pv->tls = tls;
    pv->sentinel = sentinel;
    pv->limit = KG_SINK_REDIS_MAX_QUEUED;
    pv->mode = MODE_LIST;
    pv->maxlen = REDIS_DEFAULT_MAXLEN;
    pv->connect_ms = 1000;
    pv->io_ms = 5000;
    pv->wait_timeout_ms = 1000;
    pv->group = REDIS_GROUP;
    pv->spool_max = REDIS_DEFAULT_SPOOL_MB << 20;
    pv->fsync = KG_SPOOL_FSYNC_BATCH;
    pv->spool_full = KG_SPOOL_DROP_OLDEST;
    kg_buf_init(&pv->out);
    kg_buf_init(&pv->scratch);
    int rc = parse_spec(pv, scheme, arg, &name, err);
    if (rc == 0 && tls) {
        pv->tlscfg = kg_tls_config_new(pv->ca, pv->cert, pv->keyfile, err);
        if (!pv->tlscfg) rc = KG_ERR_INVAL;
    }
    if (rc == 0 && pv->spool_dir) {
        const struct kg_spool_opts o = {.dir = pv->spool_dir,
                                        .max_bytes = pv->spool_max,
                                        .fsync = pv->fsync,
                                        .full = pv->spool_full,
                                        .log_name = name.data};
        pv->spool = kg_spool_open(&o, err);
        if (!pv->spool) rc = KG_ERR_IO;
    }
    if (rc != 0) {
        kg_buf_free(&name);
        rd_close(s);
        return rc;
    }
    snprintf(pv->maxlen_str, sizeof(pv->maxlen_str), "%" PRIu64, pv->maxlen);
    snprintf(pv->wait_n_str, sizeof(pv->wait_n_str), "%d", pv->wait_replicas);
    snprintf(pv->wait_t_str, sizeof(pv->wait_t_str), "%d", pv->wait_timeout_ms);
    pv->inf_cap = REDIS_WINDOW + 2;
    pv->inf = kg_xcalloc(pv->inf_cap, sizeof(*pv->inf));
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = kg_monotonic_ns() ^ (uint64_t)(uintptr_t)pv;
    pv->rng = seed | 1;
    s->name = name.data; /* takes ownership of the buffer */
    update_stats(s);
    return 0;
}

static int rd_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    return rd_open_common(s, "redis://", false, false, arg, err);
}

static int rds_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    return rd_open_common(s, "rediss://", true, false, arg, err);
}

static int rsen_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    return rd_open_common(s, "redis-sentinel://", false, true, arg, err);
}

static int rssen_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    return rd_open_common(s, "rediss-sentinel://", true, true, arg, err);
}

static int rd_write(struct kg_sink *s, const char *json, size_t len)
{
    struct redis_priv *pv = s->priv;
    /* Redis refuses bulk strings over proto-max-bulk-len (512 MB by default)
     * by closing the connection: such an event would be resent forever. */
    if (len > REDIS_MAX_EVENT) return KG_ERR_INVAL;
    if (pv->spool && !kg_spool_empty(pv->spool)) {
        /* Older events wait in the spool: this one goes behind them. */
        (void)kg_spool_append(pv->spool, json, len);
        update_stats(s);
        return 0;
    }
    char *copy = malloc(len);
    if (!copy) return KG_ERR_NOMEM;
    memcpy(copy, json, len);
    if (!pv->spool) {
        while (pv->count >= pv->limit) {
            s->st.failed++;
            kg_log_ratelimited(&pv->rl_drop, 10.0, KG_LOG_WARN, "export/redis",
                               "%s: queue full (%zu events), dropping the oldest", s->name, pv->limit);
            q_pop(pv);
        }
    }
    if (pv->count == pv->cap && !q_grow(pv)) {
        free(copy);
        return KG_ERR_NOMEM;
    }
    struct redis_entry *e = &pv->q[(pv->head + pv->count) % pv->cap];
    e->data = copy;
    e->len = len;
    pv->count++;
    if (pv->spool && pv->count >= KG_MIN(pv->limit, (size_t)REDIS_SPILL_AT)) spill(s);
    s->st.queued = pv->count; /* cheap path; update_stats() refines it at flush */
    return 0;
}

static int rd_flush(struct kg_sink *s, struct kg_err *err)
{
    struct redis_priv *pv = s->priv;
    if (pv->spool && kg_spool_sync(pv->spool) != 0)
        kg_log_ratelimited(&pv->rl_drop, 10.0, KG_LOG_ERROR, "export/redis", "%s: spool write failed",
                           s->name);
    bool tried = false;
    while (pending_events(pv) > 0) {
        if (!pv->conn) {
            if (tried) break;
            const uint64_t now = kg_monotonic_ns();
            if (now < pv->next_attempt_ns) break; /* backing off: last_error still says why */
            tried = true;
            if (rd_connect(s) != 0) {
                schedule_retry(pv);
                log_down(s);
                break;
            }
        }
        const int drc = deliver(s);
        if (drc >= 0) break; /* done, or replicas awaited on a kept connection */
        schedule_retry(pv);
        log_down(s);
    }
    const size_t left = pending_events(pv);
    if (left > 0) spill(s); /* unreachable: keep what waits on disk */
    if (pv->spool) kg_spool_sync(pv->spool);
    update_stats(s);
    if (left == 0) return 0;
    const uint64_t now = kg_monotonic_ns();
    return kg_err_set(err, KG_ERR_AGAIN, "%s: %s; %zu events queued%s, next attempt in %.1f s", s->name,
                      pv->last_error, left, pv->spool ? " (on disk)" : "",
                      pv->next_attempt_ns > now ? (double)(pv->next_attempt_ns - now) / 1e9 : 0.0);
}

static int rd_set_queue_limit(struct kg_sink *s, size_t max_events)
{
    struct redis_priv *pv = s->priv;
    pv->limit = max_events;
    if (pv->spool) {
        if (pv->count >= KG_MIN(pv->limit, (size_t)REDIS_SPILL_AT)) spill(s);
        return 0;
    }
    while (pv->count > pv->limit) {
        s->st.failed++;
        q_pop(pv);
    }
    return 0;
}

static void rd_close(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    if (!pv) return;
    kg_rconn_free(pv->conn);
    pv->conn = NULL;
    if (pv->spool) {
        /* What was not delivered survives the restart (docs/OUTPUTS.md). */
        pv->sent = 0;
        spill(s);
        const uint64_t left = pending_events(pv);
        if (left)
            kg_log(KG_LOG_INFO, "export/redis",
                   "%s: %" PRIu64 " undelivered events kept in %s for the next start", s->name, left,
                   pv->spool_dir);
        kg_spool_close(pv->spool);
    }
    while (pv->count > 0)
        q_pop(pv);
    free(pv->q);
    for (size_t i = 0; i < pv->neps; i++)
        free(pv->eps[i].host);
    free(pv->eps);
    free(pv->master);
    free(pv->user);
    wipe_password(pv);
    free(pv->key);
    free(pv->ca);
    free(pv->cert);
    free(pv->keyfile);
    free(pv->sni);
    free(pv->spool_dir);
    kg_tls_config_free(pv->tlscfg);
    kg_buf_free(&pv->out);
    kg_buf_free(&pv->scratch);
    free(pv->inf);
    free(pv);
    s->priv = NULL;
}

#define REDIS_OPS(var, kind_name, open_fn)                                                                   \
    const struct kg_sink_ops var = {                                                                         \
        .kind = kind_name,                                                                                   \
        .open = open_fn,                                                                                     \
        .write = rd_write,                                                                                   \
        .flush = rd_flush,                                                                                   \
        .set_queue_limit = rd_set_queue_limit,                                                               \
        .close = rd_close,                                                                                   \
    }

REDIS_OPS(kg_sink_redis_ops, "redis", rd_open);
REDIS_OPS(kg_sink_rediss_ops, "rediss", rds_open);
REDIS_OPS(kg_sink_redis_sentinel_ops, "redis-sentinel", rsen_open);
REDIS_OPS(kg_sink_rediss_sentinel_ops, "rediss-sentinel", rssen_open);
