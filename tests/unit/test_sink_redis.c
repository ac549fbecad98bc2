/*
 * tests/unit/test_sink_redis.c — the Redis sink against real redis-server
 * processes (label `redis`, registered by tests/redis.cmake).
 *
 * Each scenario starts a throwaway server on a free port in a temporary
 * directory (hiredis's test.sh does the same): no persistence, bound to
 * 127.0.0.1, killed at the end, also when a check fails or the test dies
 * (atexit, and PR_SET_PDEATHSIG in the child). Exits 77 (ctest: skipped)
 * when redis-server cannot be run.
 *
 * Scenarios: 20,000 events in order; a password-protected server (with the
 * password percent-encoded in the spec, with a user name, a wrong one, and
 * none at all); an outage (server stopped and restarted on the same port)
 * with nothing lost or duplicated; an error reply (WRONGTYPE) counted as
 * failed; the queue bound dropping the oldest events.
 */
#include "export/export.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP 77

static char g_dir[64];
static pid_t g_pid = -1; /* the one server running at a time */
static int g_port;
static char g_password[64];

/* --- server control ---------------------------------------------------------- */

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

static void stop_server(void)
{
    if (g_pid <= 0) return;
    kill(g_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(g_pid, NULL, WNOHANG) == g_pid) {
            g_pid = -1;
            return;
        }
        msleep(50);
    }
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = -1;
}

/* An admin connection (AUTH with the server's password if it has one);
 * NULL when the server does not answer. */
static redisContext *admin(void)
{
    const struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){10, 0});
    if (g_password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", g_password);
        const bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Starts redis-server on g_port; returns 0 once it answers PING, SKIP when
 * it cannot be run, -1 on other failures. */
static int start_server(const char *password)
{
    kg_strlcpy(g_password, password ? password : "", sizeof(g_password));
    char port[16], logfile[128];
    snprintf(port, sizeof(port), "%d", g_port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", g_dir);
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
        const char *argv[20];
        int n = 0;
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--dir";
        argv[n++] = g_dir;
        argv[n++] = "--logfile";
        argv[n++] = logfile;
        if (password) {
            argv[n++] = "--requirepass";
            argv[n++] = password;
        }
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    g_pid = pid;
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            g_pid = -1;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return SKIP;
            fprintf(stderr, "redis-server exited early (see %s)\n", logfile);
            return -1;
        }
        redisContext *c = admin();
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            const bool up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            freeReplyObject(r);
            redisFree(c);
            if (up) return 0;
        }
        msleep(25);
    }
    fprintf(stderr, "redis-server did not answer on port %d\n", g_port);
    stop_server();
    return -1;
}

static void cleanup(void)
{
    stop_server();
    if (g_dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/redis.log", g_dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/dump.rdb", g_dir);
        unlink(path);
        rmdir(g_dir);
    }
}

static long long llen(const char *key)
{
    redisContext *c = admin();
    if (!c) return -1;
    redisReply *r = redisCommand(c, "LLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
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

/* Checks that list `key` holds exactly log->ev[from..], in order, and that
 * each item parses as the event it claims to be. */
static void check_list(const char *key, const struct sent *log, size_t from)
{
    redisContext *c = admin();
    CHECK(c != NULL);
    if (!c) return;
    redisReply *r = redisCommand(c, "LRANGE %s 0 -1", key);
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        CHECK_EQ_INT(r->elements, log->n - from);
        size_t bad = 0;
        for (size_t i = 0; i < r->elements && i + from < log->n; i++) {
            const redisReply *e = r->element[i];
            const size_t k = i + from;
            if (e->type != REDIS_REPLY_STRING || e->len != log->len[k] ||
                memcmp(e->str, log->ev[k], e->len) != 0) {
                if (bad++ < 3) fprintf(stderr, "item %zu differs from event %zu\n", i, k);
                continue;
            }
            json_error_t err;
            json_t *j = json_loadb(e->str, e->len, 0, &err);
            char id[32];
            snprintf(id, sizeof(id), "ev-%zu", k);
            const json_t *jid = json_object_get(j, "event_id");
            if (!j || !json_is_string(jid) || strcmp(json_string_value(jid), id) != 0) {
                if (bad++ < 3) fprintf(stderr, "item %zu does not parse as %s\n", i, id);
            }
            json_decref(j);
        }
        CHECK_EQ_INT(bad, 0);
    }
    freeReplyObject(r);
    redisFree(c);
}

/* Flushes until everything is delivered or `tries` calls said "again". */
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

static struct kg_sink *new_sink(const char *fmt_password_part, const char *key)
{
    char spec[256];
    snprintf(spec, sizeof(spec), "redis://%s127.0.0.1:%d/%s", fmt_password_part, g_port, key);
    struct kg_err err;
    struct kg_sink *s = kg_sink_new(spec, &err);
    if (!s) fprintf(stderr, "kg_sink_new(%s): %s\n", spec, err.msg);
    CHECK(s != NULL);
    return s;
}

/* --- scenarios ---------------------------------------------------------------- */

static void test_bulk_in_order(void)
{
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "kagami:alerts");
    if (!s) return;
    char want_name[128];
    snprintf(want_name, sizeof(want_name), "redis://127.0.0.1:%d/kagami:alerts", g_port);
    CHECK_EQ_STR(kg_sink_name(s), want_name);
    int wrc = 0;
    for (int i = 0; i < 20000; i++)
        wrc |= write_event(s, &log, i);
    CHECK_EQ_INT(wrc, 0);
    CHECK_EQ_INT(llen("kagami:alerts"), 0); /* writes only queue */
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    CHECK_EQ_INT(llen("kagami:alerts"), 20000);
    check_list("kagami:alerts", &log, 0);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.written, 20000);
    CHECK_EQ_INT(st.delivered, 20000);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.reconnects, 0);
    kg_sink_free(s);
    sent_free(&log);

    /* A password for a server that has none: refused (Redis answers AUTH
     * with an error), kept queued, and the secret does not leak into the
     * error text. */
    s = new_sink(":pw-for-nobody@", "kagami:alerts");
    if (!s) return;
    const enum kg_log_level lvl = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
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
    redisContext *c = admin();
    CHECK(c != NULL);
    if (!c) return;
    freeReplyObject(redisCommand(c, "SET notalist x"));
    redisFree(c);
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "notalist");
    if (!s) return;
    const enum kg_log_level lvl = kg_log_get_level();
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

    /* Queue bound: the oldest go first. */
    s = new_sink("", "bounded");
    if (!s) return;
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 100), 0);
    kg_log_set_level(KG_LOG_ERROR);
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
    stop_server();
    int rc = start_server(pw);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;

    struct sent log = {0};
    struct kg_sink *s = new_sink(pw_enc, "secured");
    if (!s) return;
    char want_name[128];
    snprintf(want_name, sizeof(want_name), "redis://:***@127.0.0.1:%d/secured", g_port);
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

    const enum kg_log_level lvl = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    /* A wrong password: refused at connection, events kept, secret not shown. */
    s = new_sink(":not-the-password@", "wrongpw");
    if (!s) return;
    for (int i = 0; i < 10; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    memset(&err, 0, sizeof(err));
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "not-the-password") == NULL);
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
    redisContext *c = admin();
    CHECK(c != NULL);
    if (c) {
        freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", ""));
        redisFree(c);
    }
    g_password[0] = '\0';
    kg_log_set_level(lvl);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    check_list("noauth", &log, 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 10);
    CHECK_EQ_INT(st.failed, 0);
    kg_sink_free(s);
    sent_free(&log);
}

static void test_outage(void)
{
    stop_server();
    int rc = start_server(NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) return;
    struct sent log = {0};
    struct kg_sink *s = new_sink("", "outage");
    if (!s) return;
    for (int i = 0; i < 500; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(flush_until_done(s, 1), 0);
    CHECK_EQ_INT(llen("outage"), 500);

    /* Redis goes away (the sink still holds its connection: the next flush
     * hits a dead socket, then one refused reconnect). The first events are
     * large, so that the batch takes several write(2) calls and the later
     * ones meet the peer's reset: EPIPE, and a SIGPIPE the sink must not let
     * kill the process. */
    stop_server();
    const size_t first_outage_event = log.n;
    const enum kg_log_level lvl = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    for (int i = 500; i < 520; i++)
        CHECK(write_big_event(s, &log, i, 1u << 20) == 0);
    for (int i = 520; i < 3000; i++)
        CHECK(write_event(s, &log, i) == 0);
    struct kg_err err;
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "2500 events queued") != NULL);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    for (int i = 3000; i < 3500; i++)
        CHECK(write_event(s, &log, i) == 0);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.delivered, 500);
    CHECK_EQ_INT(st.failed, 0);
    kg_log_set_level(lvl);

    /* Back on the same port, empty (no persistence): the list must hold the
     * outage's events exactly once, in order. */
    rc = start_server(NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) goto out;
    CHECK_EQ_INT(flush_until_done(s, 100), 0);
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

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/kg_test_redis_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    g_port = free_port();
    if (g_port <= 0) {
        fprintf(stderr, "no free port\n");
        return 1;
    }
    const int rc = start_server(NULL);
    if (rc == SKIP) {
        printf("redis-server not found: skipped\n");
        return SKIP;
    }
    if (rc != 0) return 1;

    KG_TEST_RUN(test_bulk_in_order);
    KG_TEST_RUN(test_wrongtype_and_queue_bound);
    KG_TEST_RUN(test_password);
    KG_TEST_RUN(test_outage);
    KG_TEST_MAIN_END();
}
