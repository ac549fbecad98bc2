/*
 * tests/unit/test_sink_redis.c — the Redis sinks against real redis-server
 * processes (label `redis`, registered by tests/redis.cmake).
 *
 * Every server is started here, on a free loopback port, in a temporary
 * directory (hiredis's test.sh does the same): no persistence, bound to
 * 127.0.0.1, killed at the end, also when a check fails or the test dies
 * (atexit, and PR_SET_PDEATHSIG in the child). Certificates (a CA, a server
 * certificate for localhost / 127.0.0.1, a client certificate, and a second,
 * unrelated CA) are made with the openssl command. Exits 77 (ctest:
 * skipped) when redis-server cannot be run.
 *
 * Scenarios: 20,000 events in order; passwords (percent-encoded in the URL,
 * with a user name, wrong, missing, from password_file and password_env, an
 * ACL user limited to some keys); an outage with nothing lost or duplicated;
 * WRONGTYPE counted as failed; the queue bound; stream mode (XADD, MAXLEN ~)
 * and channel mode (a SUBSCRIBE client); TLS (verified by CA and by name or
 * address, a client certificate the server requires; wrong CA, wrong name,
 * a plain port and a missing client certificate refused with clear errors,
 * never a fallback to plain); failover over a server list (a dead server, a
 * read-only replica) and through Redis Sentinel (a dead sentinel, an
 * unknown master, SENTINEL FAILOVER); the disk spool (an outage spooled to
 * disk, the sink freed and created again on the same spool while Redis is
 * back: the events replayed in order, before newer ones; a damaged and
 * truncated spool: every intact record delivered; the memory threshold).
 */
#include "export/export.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP 77
#define MAX_SERVERS 8

static char g_dir[64];

/* --- server control ---------------------------------------------------------- */

struct srv {
    pid_t pid;
    int port;     /* plain port (admin) */
    int tls_port; /* 0: no TLS */
    char name[16];
    char password[64];     /* for the admin connection */
    const char *extra[24]; /* more arguments (static strings or owned by the test) */
};

static struct srv *g_running[MAX_SERVERS];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void stop_server(struct srv *sv)
{
    if (!sv || sv->pid <= 0) return;
    kill(sv->pid, SIGTERM);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        if (waitpid(sv->pid, NULL, WNOHANG) == sv->pid)
            gone = true;
        else
            msleep(50);
    }
    if (!gone) {
        kill(sv->pid, SIGKILL);
        waitpid(sv->pid, NULL, 0);
    }
    sv->pid = -1;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_running[i] == sv) g_running[i] = NULL;
}

/* An admin connection to a server's plain port (AUTH with its password if
 * it has one); NULL when the server does not answer. */
static redisContext *admin_port(int port, const char *password)
{
    const struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){10, 0});
    if (password && password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        const bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static redisContext *admin(const struct srv *sv)
{
    return admin_port(sv->port, sv->password);
}

/* Starts redis-server for sv (sv->port set, sv->tls_port optional, extra
 * arguments in sv->extra); returns 0 once it answers PING, SKIP when it
 * cannot be run, -1 on other failures. `sentinel_conf`: run as a sentinel
 * with that configuration file instead. */
static int start_server_ex(struct srv *sv, const char *password, const char *sentinel_conf)
{
    kg_strlcpy(sv->password, password ? password : "", sizeof(sv->password));
    char port[16], tls_port[16], logfile[160], conf[160];
    snprintf(port, sizeof(port), "%d", sv->port);
    snprintf(tls_port, sizeof(tls_port), "%d", sv->tls_port);
    snprintf(logfile, sizeof(logfile), "%s/%s.log", g_dir, sv->name);
    snprintf(conf, sizeof(conf), "%s/%s.conf", g_dir, sv->name);
    if (!sentinel_conf) {
        /* A configuration file of its own, so that Sentinel's CONFIG REWRITE
         * works after a failover. */
        FILE *f = fopen(conf, "a");
        if (f) fclose(f);
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* Die with the test, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        const int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
        }
        const char *argv[64];
        int n = 0;
        argv[n++] = "redis-server";
        if (sentinel_conf) {
            argv[n++] = sentinel_conf;
            argv[n++] = "--sentinel";
        } else {
            argv[n++] = conf;
            argv[n++] = "--save";
            argv[n++] = "";
            argv[n++] = "--appendonly";
            argv[n++] = "no";
        }
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--dir";
        argv[n++] = g_dir;
        argv[n++] = "--logfile";
        argv[n++] = logfile;
        if (sv->tls_port) {
            argv[n++] = "--tls-port";
            argv[n++] = tls_port;
        }
        if (password) {
            argv[n++] = "--requirepass";
            argv[n++] = password;
        }
        for (int i = 0; sv->extra[i] && n < 62; i++)
            argv[n++] = sv->extra[i];
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    sv->pid = pid;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (!g_running[i]) {
            g_running[i] = sv;
            break;
        }
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            sv->pid = -1;
            for (int k = 0; k < MAX_SERVERS; k++)
                if (g_running[k] == sv) g_running[k] = NULL;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return SKIP;
            fprintf(stderr, "redis-server %s exited early (see %s)\n", sv->name, logfile);
            return -1;
        }
        redisContext *c = admin(sv);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            const bool up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            freeReplyObject(r);
            redisFree(c);
            if (up) return 0;
        }
        msleep(25);
    }
    fprintf(stderr, "redis-server %s did not answer on port %d\n", sv->name, sv->port);
    stop_server(sv);
    return -1;
}

static int start_server(struct srv *sv, const char *password)
{
    return start_server_ex(sv, password, NULL);
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_running[i]) stop_server(g_running[i]);
    if (g_dir[0] && !getenv("KG_TEST_KEEP")) rm_rf(g_dir);
}

static long long llen_at(const struct srv *sv, const char *key)
{
    redisContext *c = admin(sv);
    if (!c) return -1;
    redisReply *r = redisCommand(c, "LLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* Runs an admin command; returns true when the reply is not an error. */
static bool admin_cmd(const struct srv *sv, const char *fmt, ...)
{
    redisContext *c = admin(sv);
    if (!c) return false;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    const bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r && r->type == REDIS_REPLY_ERROR) fprintf(stderr, "admin: %s\n", r->str);
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* --- events ------------------------------------------------------------------- */

struct sent {
    char **ev; /* without the trailing '\n' */
    size_t *len;
    size_t n, cap;
};

static void sent_add(struct sent *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ev = kg_xrealloc(s->ev, s->cap * sizeof(*s->ev));
        s->len = kg_xrealloc(s->len, s->cap * sizeof(*s->len));
    }
    s->ev[s->n] = kg_xstrndup(p, len);
    s->len[s->n++] = len;
}

static void sent_free(struct sent *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ev[i]);
    free(s->ev);
    free(s->len);
    memset(s, 0, sizeof(*s));
}

/* Formats alert number i (with some bytes to escape in `seen`, padded by
 * `pad` bytes), writes it to the sink and remembers it. */
static int write_big_event(struct kg_sink *sink, struct sent *log, int i, size_t pad)
{
    static const char *const mk[] = {"desc"};
    static const char *const mv[] = {"test feed"};
    const struct kg_indicator ind = {.type = KG_IND_DOMAIN,
                                     .value = "evil.example",
                                     .source = "test",
                                     .nmeta = 1,
                                     .meta_keys = mk,
                                     .meta_values = mv};
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    f.key.family = 4;
    f.key.proto = 6;
    memcpy(f.key.saddr, "\xc0\x00\x02\x01", 4);
    memcpy(f.key.daddr, "\xc6\x33\x64\x07", 4);
    f.key.sport = (uint16_t)(1024 + i % 60000);
    f.key.dport = 443;
    f.flow_id = (uint64_t)i;
    f.app_proto = "tls";
    kg_strlcpy(f.sni, "x.evil.example", sizeof(f.sni));
    char id[32];
    snprintf(id, sizeof(id), "ev-%d", i);
    struct kg_buf seen, b;
    kg_buf_init(&seen);
    kg_buf_init(&b);
    kg_buf_printf(&seen, "x.evil.example\t\"%d\"\xff", i);
    for (size_t k = 0; k < pad; k++)
        kg_buf_append_char(&seen, (char)('a' + k % 26));
    const struct kg_alert a = {.ts_us = 1700000000000000ull + (uint64_t)i,
                               .event_id = id,
                               .flow = &f,
                               .ind = &ind,
                               .where = "tls.sni",
                               .seen = seen.data,
                               .seen_len = seen.len};
    kg_event_format_alert(&b, &a);
    const int rc = kg_sink_write(sink, b.data, b.len);
    if (rc == 0) sent_add(log, b.data, b.len - 1);
    kg_buf_free(&b);
    kg_buf_free(&seen);
    return rc;
}

static int write_event(struct kg_sink *sink, struct sent *log, int i)
{
    return write_big_event(sink, log, i, 0);
}

static struct srv g_main = {.name = "main"};

/* Fetches list `key` from sv (owned reply, NULL on failure). */
static redisReply *fetch_list(const struct srv *sv, const char *key)
{
    redisContext *c = admin(sv);
    if (!c) return NULL;
    redisReply *r = redisCommand(c, "LRANGE %s 0 -1", key);
    redisFree(c);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Checks that items[0..n) are exactly log->ev[from..], in order, and that
 * each parses as the event it claims to be. */
static void check_items(redisReply **items, size_t n, const struct sent *log, size_t from)
{
    CHECK_EQ_INT(n, log->n - from);
    size_t bad = 0;
    for (size_t i = 0; i < n && i + from < log->n; i++) {
        const redisReply *e = items[i];
        const size_t k = i + from;
        if (e->type != REDIS_REPLY_STRING || e->len != log->len[k] ||
            memcmp(e->str, log->ev[k], e->len) != 0) {
            if (bad++ < 3) fprintf(stderr, "item %zu differs from event %zu\n", i, k);
            continue;
        }
        json_error_t err;
        json_t *j = json_loadb(e->str, e->len, 0, &err);
        const json_t *jid = json_object_get(j, "event_id");
        if (!j || !json_is_string(jid) || strncmp(json_string_value(jid), "ev-", 3) != 0) {
            if (bad++ < 3) fprintf(stderr, "item %zu does not parse as an event\n", i);
        }
        json_decref(j);
    }
    CHECK_EQ_INT(bad, 0);
}

/* Checks that list `key` on sv holds exactly log->ev[from..], in order. */
static void check_list_at(const struct srv *sv, const char *key, const struct sent *log, size_t from)
{
    redisReply *r = fetch_list(sv, key);
    CHECK(r != NULL);
    if (!r) return;
    check_items(r->element, r->elements, log, from);
    freeReplyObject(r);
}

/* Like check_list_at(), duplicates allowed: the first occurrences must be
 * exactly log's events in order. Returns the number of duplicates. */
static long check_list_dedup(const struct srv *sv, const char *key, const struct sent *log)
{
    redisReply *r = fetch_list(sv, key);
    CHECK(r != NULL);
    if (!r) return -1;
    /* An item is a duplicate when it equals one already seen; events are
     * unique, so compare with the events matched so far (by position). */
    redisReply **firsts = kg_xcalloc(r->elements + 1, sizeof(*firsts));
    size_t n = 0;
    long dups = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        bool seen = false;
        for (size_t k = n; k-- > 0 && !seen;)
            seen = firsts[k]->len == e->len && memcmp(firsts[k]->str, e->str, e->len) == 0;
        if (seen)
            dups++;
        else
            firsts[n++] = r->element[i];
    }
    check_items(firsts, n, log, 0);
    free(firsts);
    freeReplyObject(r);
    return dups;
}

static void check_list(const char *key, const struct sent *log, size_t from)
{
    check_list_at(&g_main, key, log, from);
}

/* Flushes until everything is delivered or `tries` calls said "again"
 * (50 ms apart). */
static int flush_until_done(struct kg_sink *s, int tries)
{
    struct kg_err err;
    int rc = KG_ERR_AGAIN;
    for (int i = 0; i < tries && rc == KG_ERR_AGAIN; i++) {
        rc = kg_sink_flush(s, &err);
        if (rc == KG_ERR_AGAIN) msleep(50);
    }
    if (rc != 0) fprintf(stderr, "flush: %s: %s\n", kg_strerror(rc), err.msg);
    return rc;
}

static struct kg_sink *sink_for(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct kg_sink *sink_for(const char *fmt, ...)
{
    char spec[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof(spec), fmt, ap);
    va_end(ap);
    struct kg_err err;
    struct kg_sink *s = kg_sink_new(spec, &err);
    if (!s) fprintf(stderr, "kg_sink_new(%s): %s\n", spec, err.msg);
    CHECK(s != NULL);
    return s;
}

static struct kg_sink *new_sink(const char *fmt_password_part, const char *key)
{
    return sink_for("redis://%s127.0.0.1:%d/%s", fmt_password_part, g_main.port, key);
}

/* Quiet logs for scenarios that fail on purpose (KG_TEST_VERBOSE=1 keeps
 * them, for debugging). */
static enum kg_log_level quiet(void)
{
    const enum kg_log_level lvl = kg_log_get_level();
    if (!getenv("KG_TEST_VERBOSE")) kg_log_set_level(KG_LOG_ERROR);
    return lvl;
}

/* --- scenarios: plain ------------------------------------------------------------ */

static void test_bulk_in_order(void)
{
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "kagami:alerts");
    if (!s) return;
    char want_name[128];
    snprintf(want_name, sizeof(want_name), "redis://127.0.0.1:%d/kagami:alerts", g_main.port);
    CHECK_EQ_STR(kg_sink_name(s), want_name);
    int wrc = 0;
    for (int i = 0; i < 20000; i++)
        wrc |= write_event(s, &log, i);
    CHECK_EQ_INT(wrc, 0);
    CHECK_EQ_INT(llen_at(&g_main, "kagami:alerts"), 0); /* writes only queue */
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    CHECK_EQ_INT(llen_at(&g_main, "kagami:alerts"), 20000);
    check_list("kagami:alerts", &log, 0);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.written, 20000);
    CHECK_EQ_INT(st.delivered, 20000);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.reconnects, 0);
    CHECK_EQ_INT(st.queued, 0);
    kg_sink_free(s);
    sent_free(&log);

    /* A password for a server that has none: refused (Redis answers AUTH
     * with an error), kept queued, and the secret does not leak into the
     * error text. */
    s = new_sink(":pw-for-nobody@", "kagami:alerts");
    if (!s) return;
    const enum kg_log_level lvl = quiet();
    CHECK_EQ_INT(write_event(s, &log, 0), 0);
    struct kg_err err;
    memset(&err, 0, sizeof(err));
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "authentication refused") != NULL);
    CHECK(strstr(err.msg, "pw-for-nobody") == NULL);
    kg_log_set_level(lvl);
    kg_sink_free(s);
    sent_free(&log);
}

static void test_wrongtype_and_queue_bound(void)
{
    /* An error reply is final: counted as failed, not retried. */
    CHECK(admin_cmd(&g_main, "SET notalist x"));
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "notalist");
    if (!s) return;
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(write_event(s, &log, i), 0);
    struct kg_err err;
    fprintf(stderr, "(an expected WRONGTYPE error follows)\n");
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 0);
    CHECK_EQ_INT(st.failed, 5);
    kg_sink_free(s);
    sent_free(&log);

    /* Queue bound (no spool): the oldest go first. */
    s = new_sink("", "bounded");
    if (!s) return;
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 100), 0);
    const enum kg_log_level lvl = quiet();
    for (int i = 0; i < 150; i++)
        CHECK_EQ_INT(write_event(s, &log, i), 0);
    kg_log_set_level(lvl);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("bounded", &log, 50);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.written, 150);
    CHECK_EQ_INT(st.delivered, 100);
    CHECK_EQ_INT(st.failed, 50);
    kg_sink_free(s);
    sent_free(&log);
}

static void test_password(void)
{
    /* '/' and '%' are percent-encoded in the spec; '@' and ':' need not be. */
    static const char pw[] = "s3cr:t@p/w%";
    static const char pw_enc[] = ":s3cr:t@p%2Fw%25@";
    stop_server(&g_main);
    int rc = start_server(&g_main, pw);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;

    struct sent log = {0};
    struct kg_sink *s = new_sink(pw_enc, "secured");
    if (!s) return;
    char want_name[128];
    snprintf(want_name, sizeof(want_name), "redis://:***@127.0.0.1:%d/secured", g_main.port);
    CHECK_EQ_STR(kg_sink_name(s), want_name);
    for (int i = 0; i < 1000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("secured", &log, 0);
    kg_sink_free(s);

    /* user:password (Redis 6 ACL form, user "default") */
    char enc_user[64];
    snprintf(enc_user, sizeof(enc_user), "default%s", pw_enc);
    s = new_sink(enc_user, "secured");
    if (!s) return;
    for (int i = 1000; i < 1010; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("secured", &log, 0);
    kg_sink_free(s);
    sent_free(&log);

    const enum kg_log_level lvl = quiet();
    /* A wrong password: refused at connection, events kept, secret not shown. */
    s = new_sink(":not-the-password@", "wrongpw");
    if (!s) return;
    for (int i = 0; i < 10; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    memset(&err, 0, sizeof(err));
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "not-the-password") == NULL);
    CHECK(strstr(err.msg, "WRONGPASS") != NULL);
    CHECK(strstr(err.msg, "10 events queued") != NULL);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.failed, 0);
    kg_sink_free(s);
    sent_free(&log);

    /* No password: NOAUTH replies mean "not now": the events stay queued and
     * go out once the server lets us in. */
    s = new_sink("", "noauth");
    if (!s) return;
    for (int i = 0; i < 10; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "NOAUTH") != NULL);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.delivered, 0);
    CHECK(admin_cmd(&g_main, "CONFIG SET requirepass %s", ""));
    g_main.password[0] = '\0';
    kg_log_set_level(lvl);
    CHECK_EQ_INT(flush_until_done(s, 40), 0);
    check_list("noauth", &log, 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 10);
    CHECK_EQ_INT(st.failed, 0);
    kg_sink_free(s);
    sent_free(&log);
}

/* Passwords that never appear in the spec (so never in the process list or
 * in a configuration file), and an ACL user limited to some keys. */
static void test_password_sources_and_acl(void)
{
    static const char pw[] = "alice-Pw.7f3a";
    CHECK(admin_cmd(&g_main, "ACL SETUSER alice on >%s ~alerts:* +rpush +xadd +ping", pw));
    struct sent log = {0};

    setenv("KG_TEST_REDIS_PW", pw, 1);
    struct kg_sink *s =
        sink_for("redis://alice@127.0.0.1:%d/alerts:env?password_env=KG_TEST_REDIS_PW", g_main.port);
    if (!s) return;
    CHECK(strstr(kg_sink_name(s), pw) == NULL);
    for (int i = 0; i < 100; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("alerts:env", &log, 0);
    kg_sink_free(s);
    unsetenv("KG_TEST_REDIS_PW");

    char pwfile[160];
    snprintf(pwfile, sizeof(pwfile), "%s/redis.pw", g_dir);
    FILE *f = fopen(pwfile, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "%s\n", pw);
    fclose(f);
    chmod(pwfile, 0600);
    s = sink_for("redis://alice@127.0.0.1:%d/alerts:file?password_file=%s", g_main.port, pwfile);
    if (!s) return;
    CHECK_EQ_INT(flush_until_done(s, 1), 0); /* nothing queued: no connection needed */
    for (size_t i = 0; i < log.n; i++)
        CHECK(kg_sink_write(s, log.ev[i], log.len[i]) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("alerts:file", &log, 0);
    kg_sink_free(s);

    /* A key outside the user's patterns: NOPERM, kept queued (an operator
     * can fix the ACL), not dropped. */
    const enum kg_log_level lvl = quiet();
    s = sink_for("redis://alice@127.0.0.1:%d/other?password_file=%s", g_main.port, pwfile);
    if (s) {
        CHECK(write_event(s, &log, 100) == 0);
        struct kg_err err;
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        CHECK(strstr(err.msg, "NOPERM") != NULL);
        struct kg_sink_stats st;
        kg_sink_get_stats(s, &st);
        CHECK_EQ_INT(st.failed, 0);
        kg_sink_free(s);
    }

    /* The wrong password in the file: refused with the server's reason. */
    f = fopen(pwfile, "w");
    if (f) {
        fputs("wrong-Pw.0000\n", f);
        fclose(f);
    }
    s = sink_for("redis://alice@127.0.0.1:%d/alerts:file?password_file=%s", g_main.port, pwfile);
    if (s) {
        CHECK(write_event(s, &log, 101) == 0);
        struct kg_err err;
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        CHECK(strstr(err.msg, "authentication refused") != NULL);
        CHECK(strstr(err.msg, "WRONGPASS") != NULL);
        CHECK(strstr(err.msg, "wrong-Pw") == NULL);
        kg_sink_free(s);
    }
    kg_log_set_level(lvl);
    CHECK(admin_cmd(&g_main, "ACL DELUSER alice"));
    sent_free(&log);
}

static void test_outage(void)
{
    stop_server(&g_main);
    int rc = start_server(&g_main, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "outage");
    if (!s) return;
    for (int i = 0; i < 500; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    CHECK_EQ_INT(llen_at(&g_main, "outage"), 500);

    /* Redis goes away (the sink still holds its connection: the next flush
     * hits a dead socket, then one refused reconnect). The first events are
     * large, so that the batch takes several write(2) calls and the later
     * ones meet the peer's reset: EPIPE, and no SIGPIPE may kill us. */
    stop_server(&g_main);
    const size_t first_outage_event = log.n;
    const enum kg_log_level lvl = quiet();
    for (int i = 500; i < 520; i++)
        CHECK(write_big_event(s, &log, i, 1u << 20) == 0);
    for (int i = 520; i < 3000; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "2500 events queued") != NULL);
    CHECK(strstr(err.msg, "Connection refused") != NULL);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    for (int i = 3000; i < 3500; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 500);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.queued, 3000);
    kg_log_set_level(lvl);

    /* Back on the same port, empty (no persistence): the list must hold the
     * outage's events exactly once, in order. */
    rc = start_server(&g_main, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) goto out;
    CHECK_EQ_INT(flush_until_done(s, 200), 0);
    check_list("outage", &log, first_outage_event);
    for (int i = 3500; i < 3600; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("outage", &log, first_outage_event);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.written, 3600);
    CHECK_EQ_INT(st.delivered, 3600);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.reconnects, 1);
out:
    kg_sink_free(s);
    sent_free(&log);
}

/* --- scenarios: stream and channel ---------------------------------------------- */

static void test_stream(void)
{
    struct sent log = {0};
    struct kg_sink *s = sink_for("redis://127.0.0.1:%d/alerts:stream?mode=stream", g_main.port);
    if (!s) return;
    for (int i = 0; i < 3000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    redisContext *c = admin(&g_main);
    CHECK(c != NULL);
    if (!c) return;
    redisReply *r = redisCommand(c, "XRANGE alerts:stream - +");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3000);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        /* Each entry: [id, ["event", json]] */
        redisReply **items = kg_xcalloc(r->elements + 1, sizeof(*items));
        size_t n = 0, bad = 0;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->elements != 2 ||
                strcmp(e->element[1]->element[0]->str, "event") != 0) {
                bad++;
                continue;
            }
            items[n++] = e->element[1]->element[1];
        }
        CHECK_EQ_INT(bad, 0);
        check_items(items, n, &log, 0);
        free(items);
    }
    freeReplyObject(r);
    kg_sink_free(s);
    sent_free(&log);

    /* MAXLEN ~ 100: the stream stays near 100 entries (whole macro nodes
     * are trimmed), the newest kept. */
    s = sink_for("redis://127.0.0.1:%d/alerts:capped?mode=stream&maxlen=100", g_main.port);
    if (!s) {
        redisFree(c);
        return;
    }
    for (int i = 0; i < 2000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    r = redisCommand(c, "XLEN alerts:capped");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 100 && r->integer < 400);
    freeReplyObject(r);
    r = redisCommand(c, "XREVRANGE alerts:capped + - COUNT 1");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
          r->element[0]->element[1]->element[1]->len == log.len[1999] &&
          memcmp(r->element[0]->element[1]->element[1]->str, log.ev[1999], log.len[1999]) == 0);
    freeReplyObject(r);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 2000);
    kg_sink_free(s);
    sent_free(&log);
    redisFree(c);
}

static void test_channel(void)
{
    /* A subscriber first: PUBLISH reaches only those connected now. */
    redisContext *sub = admin(&g_main);
    CHECK(sub != NULL);
    if (!sub) return;
    redisSetTimeout(sub, (struct timeval){5, 0});
    redisReply *r = redisCommand(sub, "SUBSCRIBE alerts:live");
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    struct sent log = {0};
    struct kg_sink *s = sink_for("redis://127.0.0.1:%d/alerts:live?mode=channel", g_main.port);
    if (!s) {
        redisFree(sub);
        return;
    }
    for (int i = 0; i < 1000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    redisReply **items = kg_xcalloc(1000, sizeof(*items));
    size_t n = 0;
    while (n < 1000) {
        void *m = NULL;
        if (redisGetReply(sub, &m) != REDIS_OK || !m) break;
        r = m;
        /* ["message", channel, payload] */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && strcmp(r->element[0]->str, "message") == 0 &&
            strcmp(r->element[1]->str, "alerts:live") == 0) {
            items[n++] = r;
        } else {
            freeReplyObject(r);
        }
    }
    redisReply **payloads = kg_xcalloc(n + 1, sizeof(*payloads));
    for (size_t i = 0; i < n; i++)
        payloads[i] = items[i]->element[2];
    check_items(payloads, n, &log, 0);
    for (size_t i = 0; i < n; i++)
        freeReplyObject(items[i]);
    free(items);
    free(payloads);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 1000);
    kg_sink_free(s);
    sent_free(&log);
    redisFree(sub);

    /* Without a subscriber the server still accepts: delivered to Redis,
     * seen by no one (docs/OUTPUTS.md says so). */
    s = sink_for("redis://127.0.0.1:%d/alerts:nobody?mode=channel", g_main.port);
    if (!s) return;
    CHECK(write_event(s, &log, 0) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 1);
    kg_sink_free(s);
    sent_free(&log);
}

/* --- scenarios: TLS ----------------------------------------------------------------- */

static char g_pki[128]; /* certificates made by make_pki() */

/* A CA, a server certificate for localhost and 127.0.0.1, a client
 * certificate, and an unrelated CA, with the openssl command. */
static bool make_pki(void)
{
    snprintf(g_pki, sizeof(g_pki), "%s/pki", g_dir);
    if (mkdir(g_pki, 0700) != 0) return false;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && "
             "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext && "
             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && "
             "openssl req -x509 -new $K -keyout ca.key -out ca.crt -days 2 -subj /CN=kagami-test-ca && "
             "openssl req -x509 -new $K -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca && "
             "openssl req -new $K -keyout server.key -out server.csr -subj /CN=localhost && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
             "-days 2 -extfile server.ext && "
             "openssl req -new $K -keyout client.key -out client.csr -subj /CN=kagami-sensor && "
             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt "
             "-days 2 -extfile client.ext",
             g_pki);
    char full[2200];
    snprintf(full, sizeof(full), "(%s) >/dev/null 2>&1", cmd);
    return system(full) == 0;
}

static void test_tls(void)
{
    if (!make_pki()) {
        printf("openssl command failed: TLS scenarios skipped\n");
        return;
    }
    static char cert[160], key[160], ca[160];
    snprintf(cert, sizeof(cert), "%s/server.crt", g_pki);
    snprintf(key, sizeof(key), "%s/server.key", g_pki);
    snprintf(ca, sizeof(ca), "%s/ca.crt", g_pki);
    /* Plain port for the test's own checks, TLS port for the sinks. */
    static struct srv tls_srv = {.name = "tls"};
    tls_srv.port = free_port();
    tls_srv.tls_port = free_port();
    const char *extra[] = {
        "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients",
        "optional",        NULL};
    memcpy(tls_srv.extra, extra, sizeof(extra));
    int rc = start_server(&tls_srv, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;
    const int tp = tls_srv.tls_port;
    struct sent log = {0};

    /* Verified by address (the certificate's IP SAN) ... */
    struct kg_sink *s = sink_for("rediss://127.0.0.1:%d/tls:alerts?ca=%s", tp, ca);
    if (!s) goto out;
    for (int i = 0; i < 5000; i++)
        CHECK(write_event(s, &log, i) == 0);
    for (int i = 5000; i < 5005; i++)
        CHECK(write_big_event(s, &log, i, 300000) == 0); /* records spanning many TLS records */
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list_at(&tls_srv, "tls:alerts", &log, 0);
    kg_sink_free(s);
    /* ... by name (SNI + host-name check) ... */
    s = sink_for("rediss://localhost:%d/tls:alerts?ca=%s", tp, ca);
    if (s) {
        CHECK(write_event(s, &log, 5005) == 0);
        CHECK_EQ_INT(flush_until_done(s, 1), 0);
        kg_sink_free(s);
    }
    /* ... and by a name given with sni= while connecting to an address. */
    s = sink_for("rediss://127.0.0.1:%d/tls:alerts?ca=%s&sni=localhost", tp, ca);
    if (s) {
        CHECK(write_event(s, &log, 5006) == 0);
        CHECK_EQ_INT(flush_until_done(s, 1), 0);
        kg_sink_free(s);
    }
    check_list_at(&tls_srv, "tls:alerts", &log, 0);

    /* Refusals, each with a message that says why; nothing delivered. */
    const enum kg_log_level lvl = quiet();
    struct {
        const char *what;
        char spec[400];
        const char *msg1, *msg2;
    } bad[] = {
        /* The server sends its chain up to its CA, which ours does not know. */
        {"wrong CA", "", "certificate verification failed", "self-signed certificate in certificate chain"},
        {"wrong name", "", "certificate verification failed: hostname mismatch",
         "not valid for 'collector.example'"},
        {"not a TLS port", "", "TLS handshake with", "failed"},
    };
    snprintf(bad[0].spec, sizeof(bad[0].spec), "rediss://127.0.0.1:%d/tls:bad?ca=%s/other-ca.crt", tp, g_pki);
    snprintf(bad[1].spec, sizeof(bad[1].spec), "rediss://127.0.0.1:%d/tls:bad?ca=%s&sni=collector.example",
             tp, ca);
    snprintf(bad[2].spec, sizeof(bad[2].spec), "rediss://127.0.0.1:%d/tls:bad?ca=%s", tls_srv.port, ca);
    for (size_t i = 0; i < KG_ARRAY_LEN(bad); i++) {
        const char *spec = bad[i].spec;
        struct kg_err err = {{0}};
        s = kg_sink_new(spec, &err);
        CHECK(s != NULL);
        if (!s) continue;
        CHECK(write_event(s, &log, 9000) == 0);
        memset(&err, 0, sizeof(err));
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        if (!strstr(err.msg, bad[i].msg1) || !strstr(err.msg, bad[i].msg2)) {
            fprintf(stderr, "%s: unexpected error: %s\n", bad[i].what, err.msg);
            CHECK(0);
        }
        kg_sink_free(s);
    }
    /* A plain sink on the TLS port fails too (and does not hang). */
    s = sink_for("redis://127.0.0.1:%d/tls:bad?timeout_ms=2000", tp);
    if (s) {
        CHECK(write_event(s, &log, 9001) == 0);
        struct kg_err err;
        const uint64_t t0 = kg_monotonic_ns();
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        CHECK(kg_monotonic_ns() - t0 < 4000000000ull);
        kg_sink_free(s);
    }
    kg_log_set_level(lvl);
    CHECK_EQ_INT(llen_at(&tls_srv, "tls:bad"), 0);

    /* A server that requires a client certificate. */
    stop_server(&tls_srv);
    tls_srv.extra[7] = "yes";
    rc = start_server(&tls_srv, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) goto out;
    quiet();
    s = sink_for("rediss://127.0.0.1:%d/tls:mtls?ca=%s", tls_srv.tls_port, ca);
    if (s) {
        CHECK(write_event(s, &log, 9002) == 0);
        struct kg_err err = {{0}};
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        /* TLS 1.3: the server's alert arrives after our side of the
         * handshake, on the first read. */
        if (!strstr(err.msg, "certificate required")) {
            fprintf(stderr, "no client certificate: unexpected error: %s\n", err.msg);
            CHECK(0);
        }
        kg_sink_free(s);
    }
    kg_log_set_level(lvl);
    CHECK_EQ_INT(llen_at(&tls_srv, "tls:mtls"), 0);
    sent_free(&log);
    /* With the client certificate, and an ACL user whose password comes
     * from a file. */
    CHECK(admin_cmd(&tls_srv, "ACL SETUSER sensor on >tls-Pw.42 ~tls:* +rpush +ping"));
    char pwfile[160];
    snprintf(pwfile, sizeof(pwfile), "%s/tls.pw", g_pki);
    FILE *f = fopen(pwfile, "w");
    if (f) {
        fputs("tls-Pw.42", f);
        fclose(f);
    }
    chmod(pwfile, 0600);
    s = sink_for(
        "rediss://sensor@127.0.0.1:%d/tls:mtls?ca=%s&cert=%s/client.crt&key=%s/client.key&password_file=%s",
        tls_srv.tls_port, ca, g_pki, g_pki, pwfile);
    if (s) {
        for (int i = 0; i < 2000; i++)
            CHECK(write_event(s, &log, i) == 0);
        CHECK_EQ_INT(flush_until_done(s, 1), 0);
        check_list_at(&tls_srv, "tls:mtls", &log, 0);
        kg_sink_free(s);
    }
out:
    sent_free(&log);
    stop_server(&tls_srv);
}

/* --- scenarios: failover ------------------------------------------------------------ */

static bool wait_replica_synced(const struct srv *replica)
{
    for (int i = 0; i < 200; i++) {
        redisContext *c = admin(replica);
        if (c) {
            redisReply *r = redisCommand(c, "INFO replication");
            const bool up = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up");
            freeReplyObject(r);
            redisFree(c);
            if (up) return true;
        }
        msleep(50);
    }
    return false;
}

static void test_server_list(void)
{
    /* A replica of g_main listed first: it answers READONLY, so the sink
     * moves on to the next server; a dead address in the list is skipped. */
    static struct srv replica = {.name = "replica1"};
    static char master_port[16];
    snprintf(master_port, sizeof(master_port), "%d", g_main.port);
    replica.port = free_port();
    replica.extra[0] = "--replicaof";
    replica.extra[1] = "127.0.0.1";
    replica.extra[2] = master_port;
    int rc = start_server(&replica, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;
    CHECK(wait_replica_synced(&replica));
    const int dead = free_port();
    struct sent log = {0};
    const enum kg_log_level lvl = quiet();
    struct kg_sink *s = sink_for("redis://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/failover:list", dead,
                                 replica.port, g_main.port);
    if (s) {
        for (int i = 0; i < 1000; i++)
            CHECK(write_event(s, &log, i) == 0);
        CHECK_EQ_INT(flush_until_done(s, 100), 0);
        check_list("failover:list", &log, 0);
        struct kg_sink_stats st;
        kg_sink_get_stats(s, &st);
        CHECK_EQ_INT(st.delivered, 1000);
        CHECK(st.reconnects >= 1);
        kg_sink_free(s);
    }
    /* No server reachable at all: one message says so. */
    s = sink_for("redis://127.0.0.1:%d,127.0.0.1:%d/failover:none", dead, free_port());
    if (s) {
        CHECK(write_event(s, &log, 0) == 0);
        struct kg_err err;
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        CHECK(strstr(err.msg, "none of 2 servers reachable") != NULL);
        kg_sink_free(s);
    }
    kg_log_set_level(lvl);
    sent_free(&log);
    stop_server(&replica);
}

/* Asks a sentinel for the master's port; -1 when it does not answer. */
static int sentinel_master_port(const struct srv *sentinel)
{
    redisContext *c = admin(sentinel);
    if (!c) return -1;
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name mymaster");
    const int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : -1;
    freeReplyObject(r);
    redisFree(c);
    return port;
}

/* True once the sentinel knows a healthy replica (it learns them from the
 * master's INFO). */
static bool sentinel_sees_replica(const struct srv *sentinel)
{
    redisContext *c = admin(sentinel);
    if (!c) return false;
    redisReply *r = redisCommand(c, "SENTINEL replicas mymaster");
    bool ok = false;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        const redisReply *e = r->element[0]; /* flat field/value list */
        for (size_t i = 0; i + 1 < e->elements; i += 2)
            if (strcmp(e->element[i]->str, "flags") == 0) ok = strcmp(e->element[i + 1]->str, "slave") == 0;
    }
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

static void test_sentinel(void)
{
    static struct srv master = {.name = "s-master"}, replica = {.name = "s-replica"},
                      sentinel = {.name = "sentinel"};
    static char master_port[16];
    master.port = free_port();
    replica.port = free_port();
    sentinel.port = free_port();
    snprintf(master_port, sizeof(master_port), "%d", master.port);
    replica.extra[0] = "--replicaof";
    replica.extra[1] = "127.0.0.1";
    replica.extra[2] = master_port;
    char conf[160];
    snprintf(conf, sizeof(conf), "%s/sentinel.conf", g_dir);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f,
            "sentinel monitor mymaster 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds mymaster 2000\n"
            "sentinel failover-timeout mymaster 6000\n",
            master.port);
    fclose(f);
    int rc = start_server(&master, NULL);
    if (rc == 0) rc = start_server(&replica, NULL);
    if (rc == 0) rc = start_server_ex(&sentinel, NULL, conf);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) goto out;
    CHECK(wait_replica_synced(&replica));

    struct sent log = {0};
    const int dead = free_port();
    const enum kg_log_level lvl = quiet();
    /* An unknown master name: the sentinels say so. */
    struct kg_sink *s = sink_for("redis-sentinel://127.0.0.1:%d/nosuchmaster/k", sentinel.port);
    if (s) {
        CHECK(write_event(s, &log, 0) == 0);
        struct kg_err err;
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        CHECK(strstr(err.msg, "does not know master 'nosuchmaster'") != NULL);
        kg_sink_free(s);
        sent_free(&log);
    }
    /* The first sentinel is dead; the second names the master. */
    s = sink_for("redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster/sentinel:alerts?wait=1", dead,
                 sentinel.port);
    if (!s) goto out_lvl;
    for (int i = 0; i < 1000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 20), 0);
    check_list_at(&master, "sentinel:alerts", &log, 0);
    check_list_at(&replica, "sentinel:alerts", &log, 0); /* wait=1: replicated before counted */

    /* Failover: the replica becomes the master; the sink finds it. */
    bool known = false;
    for (int i = 0; i < 300 && !known; i++) {
        known = sentinel_sees_replica(&sentinel);
        if (!known) msleep(50);
    }
    CHECK(known);
    CHECK(admin_cmd(&sentinel, "SENTINEL FAILOVER mymaster"));
    bool switched = false;
    for (int i = 0; i < 400 && !switched; i++) {
        switched = sentinel_master_port(&sentinel) == replica.port;
        if (!switched) msleep(50);
    }
    CHECK(switched);
    for (int i = 1000; i < 2000; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 400), 0);
    /* Everything on the new master, in order; at least once: a batch run
     * on the old master just before it turned replica, or a WAIT that
     * timed out, is sent again. */
    const long dups = check_list_dedup(&replica, "sentinel:alerts", &log);
    printf("sentinel failover: %ld duplicates\n", dups);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 2000);
    CHECK(st.reconnects >= 1);
    kg_sink_free(s);
out_lvl:
    kg_log_set_level(lvl);
    sent_free(&log);
out:
    stop_server(&sentinel);
    stop_server(&replica);
    stop_server(&master);
}

/* --- scenarios: the disk spool -------------------------------------------------------- */

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

static void test_spool_restart(void)
{
    char spool[160];
    snprintf(spool, sizeof(spool), "%s/spool-restart", g_dir);
    struct sent log = {0};
    struct kg_sink *s = sink_for("redis://127.0.0.1:%d/spool:alerts?spool=%s", g_main.port, spool);
    if (!s) return;
    for (int i = 0; i < 100; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    CHECK_EQ_INT(count_files(spool, ".kgspool"), 0); /* reachable: nothing on disk */

    /* Outage: events go to disk; the "process" stops with them there. */
    stop_server(&g_main);
    const enum kg_log_level lvl = quiet();
    for (int i = 100; i < 2100; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    for (int i = 2100; i < 2600; i++) /* behind them, on disk too */
        CHECK(write_event(s, &log, i) == 0);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spooled, 2500);
    CHECK_EQ_INT(st.queued, 2500);
    kg_sink_free(s);
    CHECK(count_files(spool, ".kgspool") >= 1);

    /* Redis back (empty: no persistence), the "process" starts again. */
    int rc = start_server(&g_main, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) goto out;
    s = sink_for("redis://127.0.0.1:%d/spool:alerts?spool=%s", g_main.port, spool);
    if (!s) goto out;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spooled, 2500);
    /* New events go behind the replayed ones. */
    for (int i = 2600; i < 2700; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 40), 0);
    check_list("spool:alerts", &log, 100);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.replayed, 2500);
    CHECK_EQ_INT(st.delivered, 100);
    CHECK_EQ_INT(st.spooled, 0);
    CHECK_EQ_INT(st.queued, 0);
    kg_sink_free(s);
    CHECK_EQ_INT(count_files(spool, ".kgspool"), 0);
out:
    kg_log_set_level(lvl);
    sent_free(&log);
}

/* Segment files of a spool directory, lowest first (one expected here). */
static bool spool_segment(const char *dir, char *out, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".kgspool") && !found) {
            snprintf(out, size, "%s/%.40s", dir, de->d_name);
            found = true;
        }
    closedir(d);
    return found;
}

static void test_spool_damaged(void)
{
    char spool[160], seg[320];
    snprintf(spool, sizeof(spool), "%s/spool-damaged", g_dir);
    const int dead = free_port();
    struct sent log = {0};
    const enum kg_log_level lvl = quiet();
    /* Spool 300 events while the server is unreachable. */
    struct kg_sink *s = sink_for("redis://127.0.0.1:%d/spool:damaged?spool=%s", dead, spool);
    if (!s) goto out;
    for (int i = 0; i < 300; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    kg_sink_free(s);
    CHECK(spool_segment(spool, seg, sizeof(seg)));

    /* Damage event #100's bytes and cut the file inside event #299. */
    {
        struct stat stt;
        CHECK(stat(seg, &stt) == 0);
        long off = 16;
        for (int i = 0; i < 100; i++)
            off += 12 + (long)log.len[i];
        const int fd = open(seg, O_WRONLY);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK(pwrite(fd, "#", 1, off + 12 + 40) == 1);
            CHECK(ftruncate(fd, stt.st_size - 30) == 0);
            close(fd);
        }
    }
    /* Everything intact is delivered, in order, from the real server. */
    s = sink_for("redis://127.0.0.1:%d/spool:damaged?spool=%s", g_main.port, spool);
    if (!s) goto out;
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spool_corrupt, 2);
    CHECK_EQ_INT(st.spooled, 298);
    CHECK_EQ_INT(flush_until_done(s, 40), 0);
    struct sent want = {0};
    for (size_t i = 0; i < 299; i++)
        if (i != 100) sent_add(&want, log.ev[i], log.len[i]);
    check_list("spool:damaged", &want, 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.replayed, 298);
    kg_sink_free(s);
    sent_free(&want);
out:
    kg_log_set_level(lvl);
    sent_free(&log);
}

static void test_spool_threshold(void)
{
    /* A memory queue past its limit moves to disk (with a spool, the
     * limit means "spill", not "drop"); delivery then drains the disk. */
    char spool[160];
    snprintf(spool, sizeof(spool), "%s/spool-threshold", g_dir);
    struct sent log = {0};
    struct kg_sink *s =
        sink_for("redis://127.0.0.1:%d/spool:threshold?spool=%s&fsync=never", g_main.port, spool);
    if (!s) return;
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 50), 0);
    for (int i = 0; i < 500; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK(st.spooled >= 450);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("spool:threshold", &log, 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 500);
    CHECK_EQ_INT(st.spooled, 0);
    kg_sink_free(s);
    sent_free(&log);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/kg_test_redis_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    /* The sinks never raise SIGPIPE; make sure a regression would show. */
    signal(SIGPIPE, SIG_DFL);
    g_main.port = free_port();
    if (g_main.port <= 0) {
        fprintf(stderr, "no free port\n");
        return 1;
    }
    const int rc = start_server(&g_main, NULL);
    if (rc == SKIP) {
        printf("redis-server not found: skipped\n");
        return SKIP;
    }
    if (rc != 0) return 1;

    KG_TEST_RUN(test_bulk_in_order);
    KG_TEST_RUN(test_wrongtype_and_queue_bound);
    KG_TEST_RUN(test_password);
    KG_TEST_RUN(test_password_sources_and_acl);
    KG_TEST_RUN(test_outage);
    KG_TEST_RUN(test_stream);
    KG_TEST_RUN(test_channel);
    KG_TEST_RUN(test_tls);
    KG_TEST_RUN(test_server_list);
    KG_TEST_RUN(test_sentinel);
    KG_TEST_RUN(test_spool_restart);
    KG_TEST_RUN(test_spool_damaged);
    KG_TEST_RUN(test_spool_threshold);
    KG_TEST_MAIN_END();
}
