/*
 * export/sink_redis.c — events RPUSHed to a Redis list
 * ("redis://[[user]:password@]host[:port]/key").
 *
 * Writes only queue an owned copy of the event; kg_sink_flush() delivers
 * the queue over one blocking hiredis connection, up to 1000 RPUSH
 * commands per round trip (pipelining: append them all, then read the
 * replies in order). An event leaves the queue only once its RPUSH reply
 * arrived: an integer (delivered) or a final error reply (logged, failed).
 * Replies that say the server cannot take writes for now (LOADING, OOM,
 * NOAUTH, READONLY, ... see retryable_error()) keep the event queued, like
 * a lost connection does. Delivery is therefore at least once: when the
 * connection drops after a command went out but before its reply came
 * back, that event is sent again. Order is kept, except that an event
 * refused for now goes in after the events of its batch that were taken.
 *
 * The connection is made lazily, at most once per flush, with short
 * timeouts (1 s to connect, 5 s for any socket read or write), so an
 * unreachable Redis costs a flush about a second and a server that stops
 * answering a few seconds before the connection is dropped; the caller
 * decides how often to retry. (The host name is resolved with
 * getaddrinfo(), which no timeout bounds: prefer an address.) The queue is bounded (KG_SINK_REDIS_MAX_QUEUED
 * events by default): when Redis stays away, the oldest events are dropped and counted as failed, so memory
 * stays bounded and the newest alerts win.
 *
 * The password is kept for AUTH only; it is never logged, and the sink's
 * name masks it ("redis://:***@host:port/key").
 *
 * Threads: the export thread only. Owns the hiredis context, the queued
 * copies and the parsed spec.
 */
#include "export/export_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REDIS_BATCH 1000
#define REDIS_DEFAULT_PORT 6379
#define REDIS_QUEUE_INITIAL 1024u
#define REDIS_MAX_EVENT (512u * 1024u * 1024u)

struct redis_entry {
    char *data; /* owned copy of the event, no trailing '\n' */
    size_t len;
    bool done; /* delivered or failed, waiting for the entries before it to leave */
};

struct redis_priv {
    char *host;
    int port;
    char *user;     /* NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH */
    size_t password_len;
    char *key;
    size_t key_len;

    redisContext *ctx; /* NULL while disconnected */
    bool ever_connected;
    bool down; /* a connection failed since the last success: log when back */

    struct redis_entry *q; /* ring */
    size_t cap, head, count, limit;

    char last_error[192];
    struct kg_ratelimit rl_conn, rl_up, rl_reply, rl_drop;
};

/* --- spec parsing ------------------------------------------------------------ */

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
    *out_len = o;
    return out;
}

static int parse_spec(struct redis_priv *pv, const char *arg, struct kg_buf *name, struct kg_err *err)
{
    const char *slash = strchr(arg, '/');
    if (!slash || slash[1] == '\0')
        return kg_err_set(err, KG_ERR_INVAL,
                          "redis output needs a list key: redis://[:password@]host:port/key");

    /* userinfo: up to the last '@' of the authority, so a password may hold
     * '@' and ':'; only '/' and '%' must be percent-encoded in it. */
    const char *hostport = arg;
    const char *at = NULL;
    for (const char *p = arg; p < slash; p++)
        if (*p == '@') at = p;
    kg_buf_append_str(name, "redis://");
    if (at) {
        const char *colon = memchr(arg, ':', (size_t)(at - arg));
        if (!colon)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: expected [user]:password@ before the host");
        pv->password = percent_decode(colon + 1, (size_t)(at - colon - 1), &pv->password_len);
        if (!pv->password)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape in the password");
        if (pv->password_len == 0 && colon == arg) { /* "redis://:@host/key": no AUTH */
            free(pv->password);
            pv->password = NULL;
        }
        if (colon > arg) {
            size_t ulen;
            pv->user = percent_decode(arg, (size_t)(colon - arg), &ulen);
            if (!pv->user || memchr(pv->user, '\0', ulen))
                return kg_err_set(err, KG_ERR_INVAL, "redis output: bad %%-escape in the user name");
            kg_buf_append(name, arg, (size_t)(colon - arg));
        }
        kg_buf_append_str(name, ":***@");
        hostport = at + 1;
    }
    const size_t hp_len = (size_t)(slash - hostport);
    kg_buf_append(name, hostport, hp_len);
    kg_buf_append_str(name, slash);

    /* host: "[v6]", or a name / IPv4 address without ':' */
    const char *host = hostport, *host_end, *port_str = NULL;
    if (hp_len > 0 && hostport[0] == '[') {
        const char *rb = memchr(hostport, ']', hp_len);
        if (!rb) return kg_err_set(err, KG_ERR_INVAL, "redis output: missing ']' after an IPv6 address");
        host = hostport + 1;
        host_end = rb;
        if (rb + 1 < slash) {
            if (rb[1] != ':')
                return kg_err_set(err, KG_ERR_INVAL, "redis output: expected ':port' after ']'");
            port_str = rb + 2;
        }
    } else {
        const char *colon = memchr(hostport, ':', hp_len);
        host_end = colon ? colon : slash;
        if (colon) {
            if (memchr(colon + 1, ':', (size_t)(slash - colon - 1)))
                return kg_err_set(err, KG_ERR_INVAL, "redis output: write an IPv6 address as [addr]:port");
            port_str = colon + 1;
        }
    }
    if (host_end == host) return kg_err_set(err, KG_ERR_INVAL, "redis output: no host given");
    pv->host = kg_xstrndup(host, (size_t)(host_end - host));

    pv->port = REDIS_DEFAULT_PORT;
    if (port_str) {
        long port = 0;
        const char *p = port_str;
        for (; p < slash && *p >= '0' && *p <= '9' && port <= 65535; p++)
            port = port * 10 + (*p - '0');
        if (p != slash || p == port_str || port < 1 || port > 65535)
            return kg_err_set(err, KG_ERR_INVAL, "redis output: port must be 1..65535");
        pv->port = (int)port;
    }

    pv->key = kg_xstrdup(slash + 1);
    pv->key_len = strlen(pv->key);
    return 0;
}

/* --- queue ------------------------------------------------------------------ */

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

/* Pops the entries whose fate is settled, from the head. */
static void q_pop_done(struct redis_priv *pv)
{
    while (pv->count > 0 && q_at(pv, 0)->done)
        q_pop(pv);
}

static void q_drop_oldest(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    if (!q_at(pv, 0)->done) {
        s->st.failed++;
        kg_log_ratelimited(&pv->rl_drop, 10.0, KG_LOG_WARN, "export/redis",
                           "%s: queue full (%zu events), dropping the oldest", s->name, pv->limit);
    }
    q_pop(pv);
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

/* --- connection ------------------------------------------------------------- */

/*
 * hiredis writes with write(2), which raises SIGPIPE when Redis has closed
 * the connection; the default action would kill the sensor. A library must
 * not change the process's signal dispositions, so SIGPIPE is blocked on
 * this thread around our I/O and a SIGPIPE it caused is consumed before
 * unblocking (the EPIPE error is what we act on).
 */
struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void set_error(struct redis_priv *pv, const char *what, const char *detail)
{
    snprintf(pv->last_error, sizeof(pv->last_error), "%s: %s", what, detail);
}

static void disconnect(struct redis_priv *pv)
{
    redisFree(pv->ctx); /* NULL is a no-op */
    pv->ctx = NULL;
}

/* One connection attempt (and AUTH). Returns 0, or -1 with last_error set. */
static int rd_connect(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    const struct timeval connect_tv = {1, 0}, command_tv = {5, 0};

    redisContext *c = redisConnectWithTimeout(pv->host, pv->port, connect_tv);
    if (!c || c->err) {
        set_error(pv, "cannot connect", c ? c->errstr : "out of memory");
        redisFree(c);
        goto fail;
    }
    /* The command timeout bounds a batch on a peer that stopped answering;
     * keepalive notices a dead peer on a connection that sits idle. */
    if (redisSetTimeout(c, command_tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        set_error(pv, "cannot set socket options", c->errstr);
        redisFree(c);
        goto fail;
    }
    if (pv->password) {
        struct sigpipe_guard g;
        sigpipe_block(&g);
        redisReply *r = pv->user ? redisCommand(c, "AUTH %s %b", pv->user, pv->password, pv->password_len)
                                 : redisCommand(c, "AUTH %b", pv->password, pv->password_len);
        sigpipe_unblock(&g);
        /* The server's error text never echoes the password. */
        if (!r)
            set_error(pv, "AUTH failed", c->errstr);
        else if (r->type == REDIS_REPLY_ERROR)
            set_error(pv, "authentication refused", r->str);
        else if (r->type != REDIS_REPLY_STATUS)
            set_error(pv, "AUTH failed", "unexpected reply");
        const bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            goto fail;
        }
    }
    pv->ctx = c;
    if (pv->ever_connected) s->st.reconnects++;
    pv->ever_connected = true;
    if (pv->down) {
        pv->down = false;
        kg_log_ratelimited(&pv->rl_up, 10.0, KG_LOG_INFO, "export/redis", "%s: connected, %zu events queued",
                           s->name, pv->count);
    }
    return 0;

fail:
    pv->down = true;
    kg_log_ratelimited(&pv->rl_conn, 10.0, KG_LOG_WARN, "export/redis",
                       "%s: %s; %zu events queued, will retry", s->name, pv->last_error, pv->count);
    return -1;
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
        "ERR max number of clients",
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0) return true;
    return false;
}

enum batch_result { BATCH_OK, BATCH_LOST, BATCH_REFUSED };

/* Sends up to REDIS_BATCH queued events in one pipeline and settles each
 * by its reply. On BATCH_LOST / BATCH_REFUSED the connection is closed. */
static enum batch_result send_batch(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    size_t slot[REDIS_BATCH];
    size_t n = 0;
    enum batch_result res = BATCH_OK;

    for (size_t i = 0; i < pv->count && n < REDIS_BATCH; i++) {
        struct redis_entry *e = q_at(pv, i);
        if (e->done) continue;
        if (redisAppendCommand(pv->ctx, "RPUSH %b %b", pv->key, pv->key_len, e->data, e->len) != REDIS_OK)
            break;
        slot[n++] = i;
    }

    struct sigpipe_guard g;
    sigpipe_block(&g);
    for (size_t j = 0; j < n; j++) {
        redisReply *r = NULL;
        if (redisGetReply(pv->ctx, (void **)&r) != REDIS_OK || !r) {
            /* The rest of the batch stays queued; some of it may have been
             * executed (at-least-once, see the top of the file). */
            set_error(pv, "connection lost", pv->ctx->errstr[0] ? pv->ctx->errstr : "no reply");
            res = BATCH_LOST;
            break;
        }
        struct redis_entry *e = q_at(pv, slot[j]);
        if (r->type == REDIS_REPLY_INTEGER) {
            e->done = true;
            s->st.delivered++;
        } else if (r->type == REDIS_REPLY_ERROR && retryable_error(r->str)) {
            set_error(pv, "server refused writes", r->str);
            res = BATCH_REFUSED;
        } else {
            e->done = true;
            s->st.failed++;
            kg_log_ratelimited(&pv->rl_reply, 10.0, KG_LOG_ERROR, "export/redis",
                               "%s: RPUSH failed, event dropped: %s", s->name,
                               r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
        }
        freeReplyObject(r);
    }
    if (res == BATCH_OK && n == 0 && pv->count > 0) {
        /* Nothing could be appended: hiredis is out of memory. */
        set_error(pv, "cannot queue commands", pv->ctx->errstr[0] ? pv->ctx->errstr : "out of memory");
        res = BATCH_LOST;
    }
    sigpipe_unblock(&g);

    if (res != BATCH_OK) {
        disconnect(pv);
        pv->down = true;
        kg_log_ratelimited(&pv->rl_conn, 10.0, KG_LOG_WARN, "export/redis",
                           "%s: %s; %zu events queued, will retry", s->name, pv->last_error, pv->count);
    }
    return res;
}

/* --- ops ------------------------------------------------------------------ */

static void rd_close(struct kg_sink *s);

static int rd_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    struct redis_priv *pv = kg_xcalloc(1, sizeof(*pv));
    struct kg_buf name;
    kg_buf_init(&name);
    s->priv = pv;
    pv->limit = KG_SINK_REDIS_MAX_QUEUED;
    int rc = parse_spec(pv, arg, &name, err);
    if (rc != 0) {
        kg_buf_free(&name);
        rd_close(s);
        return rc;
    }
    s->name = name.data; /* takes ownership of the buffer */
    return 0;
}

static int rd_write(struct kg_sink *s, const char *json, size_t len)
{
    struct redis_priv *pv = s->priv;
    /* Redis refuses bulk strings over proto-max-bulk-len (512 MB by default)
     * by closing the connection: such an event would be resent forever. */
    if (len > REDIS_MAX_EVENT) return KG_ERR_INVAL;
    char *copy = malloc(len);
    if (!copy) return KG_ERR_NOMEM;
    memcpy(copy, json, len);
    while (pv->count >= pv->limit)
        q_drop_oldest(s);
    if (pv->count == pv->cap && !q_grow(pv)) {
        free(copy);
        return KG_ERR_NOMEM;
    }
    struct redis_entry *e = &pv->q[(pv->head + pv->count) % pv->cap];
    e->data = copy;
    e->len = len;
    e->done = false;
    pv->count++;
    return 0;
}

static int rd_flush(struct kg_sink *s, struct kg_err *err)
{
    struct redis_priv *pv = s->priv;
    bool tried_connect = false;

    q_pop_done(pv);
    while (pv->count > 0) {
        if (!pv->ctx) {
            /* At most one attempt per call: the caller owns the retry pace. */
            if (tried_connect) break;
            tried_connect = true;
            if (rd_connect(s) != 0) break;
        }
        const enum batch_result res = send_batch(s);
        q_pop_done(pv);
        if (res == BATCH_REFUSED) break;
    }
    if (pv->count == 0) return 0;
    return kg_err_set(err, KG_ERR_AGAIN, "%s: %s; %zu events queued", s->name, pv->last_error, pv->count);
}

static int rd_set_queue_limit(struct kg_sink *s, size_t max_events)
{
    struct redis_priv *pv = s->priv;
    pv->limit = max_events;
    while (pv->count > pv->limit)
        q_drop_oldest(s);
    return 0;
}

static void rd_close(struct kg_sink *s)
{
    struct redis_priv *pv = s->priv;
    if (!pv) return;
    disconnect(pv);
    while (pv->count > 0)
        q_pop(pv);
    free(pv->q);
    free(pv->host);
    free(pv->user);
    if (pv->password) {
        /* Do not leave the secret in freed heap memory (core dumps). */
        explicit_bzero(pv->password, pv->password_len);
        free(pv->password);
    }
    free(pv->key);
    free(pv);
    s->priv = NULL;
}

const struct kg_sink_ops kg_sink_redis_ops = {
    .kind = "redis",
    .open = rd_open,
    .write = rd_write,
    .flush = rd_flush,
    .set_queue_limit = rd_set_queue_limit,
    .close = rd_close,
};
