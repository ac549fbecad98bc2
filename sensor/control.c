/*
 * sensor/control.c — the control thread of a run: indicator reloads (on
 * SIGHUP and when a feed file changes) and the events that report them.
 *
 * A reload builds a complete new indicator set off the hot path, publishes
 * it with one atomic pointer exchange, waits until every worker has passed
 * a quiescent point (sensor_epoch.h) and frees the old set. Workers never
 * block and no packet waits for a reload. A reload that fails (a feed that
 * cannot be read) leaves the previous set in force and emits an `error`
 * event; a successful one emits a `reload` event. Events go to the export
 * thread over the control ring (SPSC: this thread -> export).
 *
 * Threads: one control thread per run; it owns the inotify descriptor.
 */
#include "sensor/sensor_control.h"

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

struct kg_indicator_set *kg_sensor_load_indicators_with(const struct kg_config *cfg, const char *extra_name,
                                                        const char *extra, size_t extra_len, uint64_t *bad_lines,
                                                        struct kg_err *err)
{
    struct kg_indicator_set *set = kg_indicator_set_new();
    uint64_t bad = 0;
    for (size_t i = 0; i < cfg->indicator_files.count; i++) {
        const char *pattern = cfg->indicator_files.items[i];
        glob_t g;
        if (glob(pattern, GLOB_NOCHECK | GLOB_ERR, NULL, &g) != 0) {
            kg_err_set(err, KG_ERR_IO, "%s: cannot expand the indicator path", pattern);
            kg_indicator_set_free(set);
            return NULL;
        }
        for (size_t j = 0; j < g.gl_pathc; j++) {
            struct kg_indicator_load_report rep = {0};
            /* With require_signature, a feed loads only if a trusted key
             * signed exactly the bytes that are loaded. */
            int rc = cfg->indicator_require_signature
                         ? kg_indicator_set_load_file_signed(set, g.gl_pathv[j],
                                                             (const char *const *)cfg->indicator_trusted_keys.items,
                                                             cfg->indicator_trusted_keys.count, &rep, err)
                         : kg_indicator_set_load_file(set, g.gl_pathv[j], &rep, err);
            if (rc < 0) {
                globfree(&g);
                kg_indicator_set_free(set);
                return NULL;
            }
            bad += rep.bad_lines;
        }
        globfree(&g);
    }
    if (extra) {
        struct kg_indicator_load_report rep = {0};
        if (kg_indicator_set_load_buffer(set, extra_name, extra, extra_len, &rep, err) < 0) {
            kg_indicator_set_free(set);
            return NULL;
        }
        bad += rep.bad_lines;
    }
    kg_indicator_set_finalize(set);
    if (bad_lines) *bad_lines = bad;
    return set;
}

struct kg_indicator_set *kg_sensor_load_indicators(const struct kg_config *cfg, uint64_t *bad_lines,
                                                   struct kg_err *err)
{
    return kg_sensor_load_indicators_with(cfg, NULL, NULL, 0, bad_lines, err);
}

struct kg_tuning *kg_sensor_load_tuning(const struct kg_config *cfg, struct kg_err *err)
{
    err->msg[0] = '\0';
    if (!cfg->indicator_tuning || !cfg->indicator_tuning[0]) return NULL;
    return kg_tuning_load(cfg->indicator_tuning, err);
}

/* ---- events -------------------------------------------------------------------- */

static void push_event(struct kg_control *c, const struct kg_buf *b)
{
    struct kg_msg *m = malloc(sizeof(*m) + b->len);
    if (!m) return;
    m->len = b->len;
    memcpy(m->data, b->data, b->len);
    /* The control ring is drained by the export thread; if it is full (the
     * export thread is stuck), the event is dropped rather than blocking. */
    if (!kg_ring_push(&c->ring, m)) free(m);
}

static void event_head(struct kg_control *c, struct kg_buf *b, const char *type)
{
    char ts[32];
    kg_buf_reset(b);
    kg_buf_append_str(b, "{\"timestamp\":\"");
    kg_buf_append_str(b, kg_format_timestamp(kg_realtime_us(), ts));
    kg_buf_append_str(b, "\",\"event_type\":\"");
    kg_buf_append_str(b, type);
    kg_buf_append_str(b, "\",\"host\":");
    kg_json_append_string(b, c->p->sensor_id, strlen(c->p->sensor_id));
}

static void emit_error(struct kg_control *c, const char *component, const char *message)
{
    struct kg_buf b;
    kg_buf_init(&b);
    event_head(c, &b, "error");
    kg_buf_append_str(&b, ",\"error\":{\"component\":");
    kg_json_append_string(&b, component, strlen(component));
    kg_buf_append_str(&b, ",\"message\":");
    kg_json_append_string(&b, message, strlen(message));
    kg_buf_append_str(&b, "}}\n");
    push_event(c, &b);
    kg_buf_free(&b);
}

static void emit_reload(struct kg_control *c, const struct kg_indicator_set *set, uint64_t bad, double secs,
                        const char *trigger)
{
    struct kg_buf b;
    kg_buf_init(&b);
    event_head(c, &b, "reload");
    kg_buf_printf(&b, ",\"reload\":{\"trigger\":\"%s\",\"indicators\":%zu,\"bad_lines\":%" PRIu64
                      ",\"seconds\":%.3f,\"types\":{",
                  trigger, kg_indicator_set_total(set), bad, secs);
    for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
        kg_buf_printf(&b, "%s\"%s\":%zu", t ? "," : "", kg_ind_type_name((enum kg_ind_type)t),
                      kg_indicator_set_count(set, (enum kg_ind_type)t));
    kg_buf_append_str(&b, "}}}\n");
    push_event(c, &b);
    kg_buf_free(&b);
}

/* Named counters of the stats event: one table, so the event and its
 * documentation (docs/EVENTS.md) list the same fields. */
#define DS(f) offsetof(struct kg_dissect_stats, f)
static const struct {
    const char *group, *name;
    size_t off;
} dissect_fields[] = {
    {"decoder", "packets", DS(packets)},
    {"decoder", "bytes", DS(bytes)},
    {"decoder", "truncated", DS(decode_truncated)},
    {"decoder", "bad_linktype", DS(decode_bad_linktype)},
    {"decoder", "bad_l3", DS(decode_bad_l3)},
    {"decoder", "not_ip", DS(decode_not_ip)},
    {"decoder", "tunnelled", DS(decode_tunnels)},
    {"decoder", "too_deep", DS(decode_too_deep)},
    {"decoder", "span_duplicates", DS(decode_duplicates)},
    {"defrag", "fragments", DS(decode_fragments)},
    {"defrag", "reassembled", DS(reassembled)},
    {"defrag", "timeouts", DS(defrag_timeouts)},
    {"defrag", "overlaps", DS(defrag_overlaps)},
    {"defrag", "conflicts", DS(defrag_conflicts)},
    {"defrag", "evicted", DS(defrag_evicted)},
    {"defrag", "invalid", DS(defrag_invalid)},
    {"defrag", "bytes_held", DS(defrag_bytes_held)},
    {"flows", "created", DS(flows_created)},
    {"flows", "active", DS(flows_active)},
    {"flows", "ended", DS(flows_ended)},
    {"flows", "timed_out", DS(flows_timed_out)},
    {"flows", "closed", DS(flows_closed)},
    {"flows", "evicted", DS(flows_evicted)},
    {"flows", "alloc_failed", DS(flow_alloc_failed)},
    {"app", "dns_messages", DS(dns_messages)},
    {"app", "dns_malformed", DS(dns_malformed)},
    {"app", "http_requests", DS(http_requests)},
    {"app", "tls_client_hellos", DS(tls_client_hellos)},
    {"app", "tls_malformed", DS(tls_malformed)},
    {"app", "tls_certificates", DS(tls_certs)},
    {"app", "quic_initials", DS(quic_initials)},
    {"app", "quic_undecryptable", DS(quic_decrypt_failed)},
    {"app", "tcp_gaps", DS(tcp_reassembly_gaps)},
    {"app", "handshake_budget_exhausted", DS(stream_budget_exhausted)},
};

static void emit_stats(struct kg_control *c)
{
    struct kg_stats_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    c->collect(c->collect_ctx, &snap);
    struct kg_buf b;
    kg_buf_init(&b);
    event_head(c, &b, "stats");
    kg_buf_printf(&b, ",\"stats\":{\"uptime\":%.0f", (double)(kg_monotonic_ns() - c->start_ns) / 1e9);
    kg_buf_printf(&b, ",\"capture\":{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"kernel_drops\":%" PRIu64
                      ",\"interface_drops\":%" PRIu64 "}",
                  snap.capture.packets, snap.capture.bytes, snap.capture.kernel_drops, snap.capture.iface_drops);
    const char *group = NULL;
    for (size_t i = 0; i < KG_ARRAY_LEN(dissect_fields); i++) {
        if (!group || strcmp(group, dissect_fields[i].group) != 0) {
            kg_buf_printf(&b, "%s,\"%s\":{", group ? "}" : "", dissect_fields[i].group);
            group = dissect_fields[i].group;
        } else {
            kg_buf_append_char(&b, ',');
        }
        uint64_t v;
        memcpy(&v, (const char *)&snap.dissect + dissect_fields[i].off, sizeof(v));
        kg_buf_printf(&b, "\"%s\":%" PRIu64, dissect_fields[i].name, v);
    }
    const struct kg_indicator_set *set = atomic_load(&c->p->indicators->cur);
    kg_buf_printf(&b, "},\"alerts\":{\"raised\":%" PRIu64 ",\"dropped\":%" PRIu64 "}", snap.alerts,
                  snap.alerts_dropped);
    kg_buf_printf(&b, ",\"indicators\":{\"loaded\":%zu,\"reloads\":%" PRIu64 ",\"reloads_failed\":%" PRIu64 "}}}\n",
                  kg_indicator_set_total(set), c->reloads, c->reloads_failed);
    push_event(c, &b);
    kg_buf_free(&b);
}

/* ---- reload -------------------------------------------------------------------- */

int kg_control_reload(struct kg_control *c, const char *trigger)
{
    struct kg_err err = {{0}};
    uint64_t bad = 0, t0 = kg_monotonic_ns();
    int rc = 0;
    struct kg_indicator_set *set =
        kg_sensor_load_indicators_with(c->p->cfg, "redis feed", c->redis_feed, c->redis_feed_len, &bad, &err);
    /* The tuning reloads with the feeds; each part that fails keeps the one
     * in force, the other part still goes in. */
    struct kg_tuning *old_tuning = NULL;
    bool swapped_tuning = false;
    if (c->p->cfg->indicator_tuning && c->p->cfg->indicator_tuning[0]) {
        struct kg_err terr = {{0}};
        struct kg_tuning *tuning = kg_sensor_load_tuning(c->p->cfg, &terr);
        if (!tuning) {
            kg_log(KG_LOG_ERROR, "tuning", "reload (%s) failed, previous tuning stays in force: %s", trigger,
                   terr.msg);
            emit_error(c, "tuning", terr.msg);
            rc = KG_ERR_PARSE;
        } else {
            old_tuning = atomic_exchange(&c->p->indicators->tuning, tuning);
            swapped_tuning = true;
        }
    }
    struct kg_indicator_set *old = NULL;
    if (!set) {
        kg_log(KG_LOG_ERROR, "indicators", "reload (%s) failed, previous indicators stay in force: %s", trigger,
               err.msg);
        emit_error(c, "indicators", err.msg);
        rc = KG_ERR_IO;
    } else {
        old = atomic_exchange(&c->p->indicators->cur, set);
    }
    if (old || swapped_tuning) {
        kg_epoch_synchronize(c->epoch);
        kg_indicator_set_free(old);
        kg_tuning_free(old_tuning);
    }
    if (rc < 0) {
        c->reloads_failed++;
        return rc;
    }
    double secs = (double)(kg_monotonic_ns() - t0) / 1e9;
    c->reloads++;
    kg_log(KG_LOG_INFO, "indicators", "reloaded (%s): %zu indicators in %.3f s", trigger,
           kg_indicator_set_total(set), secs);
    emit_reload(c, set, bad, secs, trigger);
    return 0;
}

/* ---- the Redis feed source -------------------------------------------------------- */

/* indicators.redis = redis://[:password@]host:port/key: the central team
 * publishes a feed (text in any supported format) at `key` and a version
 * string at `key:version`; the sensor polls the version and fetches the feed
 * when it changes. hiredis, synchronous, with short timeouts: this runs on
 * the control thread, never on the packet path. The password never reaches
 * a log line. */
static bool parse_redis_url(const char *url, char *host, size_t hcap, int *port, char *pass, size_t pcap, char *key,
                            size_t kcap)
{
    if (strncmp(url, "redis://", 8) != 0) return false;
    const char *p = url + 8, *at = strrchr(p, '@'), *slash;
    pass[0] = '\0';
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= pcap) return false;
        memcpy(pass, pw, n);
        pass[n] = '\0';
        p = at + 1;
    }
    slash = strchr(p, '/');
    if (!slash || !slash[1]) return false;
    const char *colon = memchr(p, ':', (size_t)(slash - p));
    size_t hn = (size_t)((colon ? colon : slash) - p);
    if (hn == 0 || hn >= hcap) return false;
    memcpy(host, p, hn);
    host[hn] = '\0';
    *port = colon ? atoi(colon + 1) : 6379;
    if (*port <= 0 || *port > 65535) return false;
    kg_strlcpy(key, slash + 1, kcap);
    return true;
}

/* Fetches the feed when its version differs from `have_version` (NULL:
 * none yet). Returns 1 with *feed, *len, *version set (owned by the caller),
 * 0 when unchanged or unreachable (logged, rate-limited), -1 on a bad URL. */
int kg_sensor_fetch_redis_feed(const struct kg_config *cfg, const char *have_version, char **feed, size_t *len,
                               char **version)
{
    static struct kg_ratelimit rl;
    char host[256], pass[256], key[512];
    int port;
    if (!parse_redis_url(cfg->indicator_redis, host, sizeof(host), &port, pass, sizeof(pass), key, sizeof(key))) {
        kg_log_ratelimited(&rl, 60, KG_LOG_ERROR, "indicators/redis",
                           "indicators.redis is not a redis://host:port/key URL");
        return -1;
    }
    struct timeval tv = {2, 0};
    redisContext *r = redisConnectWithTimeout(host, port, tv);
    int got = 0;
    redisReply *rep = NULL;
    char *ver = NULL;
    if (!r || r->err) {
        kg_log_ratelimited(&rl, 60, KG_LOG_WARN, "indicators/redis", "%s:%d: %s", host, port,
                           r ? r->errstr : "cannot connect");
        goto out;
    }
    redisSetTimeout(r, tv);
    if (pass[0]) {
        rep = redisCommand(r, "AUTH %s", pass);
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
        rep = NULL;
        if (!ok) {
            kg_log_ratelimited(&rl, 60, KG_LOG_WARN, "indicators/redis", "%s:%d: authentication refused", host,
                               port);
            goto out;
        }
    }
    rep = redisCommand(r, "GET %s:version", key);
    if (!rep || rep->type != REDIS_REPLY_STRING) goto out;
    if (have_version && strcmp(have_version, rep->str) == 0) goto out;
    ver = kg_xstrdup(rep->str);
    freeReplyObject(rep);
    rep = redisCommand(r, "GET %s", key);
    if (rep && rep->type == REDIS_REPLY_STRING) {
        *feed = kg_xstrndup(rep->str, rep->len);
        *len = rep->len;
        *version = ver;
        ver = NULL;
        got = 1;
        kg_log(KG_LOG_INFO, "indicators/redis", "feed version %s fetched (%zu bytes)", *version, *len);
    }
out:
    memset(pass, 0, sizeof(pass));
    free(ver);
    if (rep) freeReplyObject(rep);
    if (r) redisFree(r);
    return got;
}

static bool poll_redis_feed(struct kg_control *c)
{
    char *feed = NULL, *version = NULL;
    size_t len = 0;
    if (kg_sensor_fetch_redis_feed(c->p->cfg, c->redis_version, &feed, &len, &version) != 1) return false;
    free(c->redis_feed);
    free(c->redis_version);
    c->redis_feed = feed;
    c->redis_feed_len = len;
    c->redis_version = version;
    return true;
}

/* Watches the folders of the feed files: feeds are usually replaced by a
 * rename (rsync, editors), which a watch on the file itself would miss. */
static void watch_feeds(struct kg_control *c)
{
    const struct kg_config *cfg = c->p->cfg;
    c->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (c->inotify_fd < 0) {
        kg_log(KG_LOG_WARN, "indicators", "inotify unavailable (%s): feeds reload on SIGHUP only", strerror(errno));
        return;
    }
    size_t n = cfg->indicator_files.count;
    for (size_t i = 0; i <= n; i++) {
        const char *path = i < n ? cfg->indicator_files.items[i] : cfg->indicator_tuning;
        if (!path || !path[0]) continue;
        char *copy = kg_xstrdup(path);
        const char *dir = dirname(copy);
        if (inotify_add_watch(c->inotify_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0)
            kg_log(KG_LOG_WARN, "indicators", "%s: cannot watch (%s)", dir, strerror(errno));
        free(copy);
    }
}

/* True when an inotify event names one of the feed files (or matches a
 * glob pattern of them). */
static bool event_is_feed(struct kg_control *c, const char *dir_unused, const char *name)
{
    (void)dir_unused;
    const struct kg_config *cfg = c->p->cfg;
    size_t n = cfg->indicator_files.count;
    for (size_t i = 0; i <= n; i++) {
        const char *path = i < n ? cfg->indicator_files.items[i] : cfg->indicator_tuning;
        if (!path || !path[0]) continue;
        char *copy = kg_xstrdup(path);
        const char *base = basename(copy);
        bool hit = strcmp(base, name) == 0 || strpbrk(base, "*?[") != NULL;
        free(copy);
        if (hit) return true;
    }
    return false;
}

static void *control_main(void *arg)
{
    struct kg_control *c = arg;
    uint64_t due_ns = 0; /* debounce: reload 500 ms after the last feed change */
    uint64_t interval_ns = (uint64_t)c->p->cfg->stats_interval * 1000000000ull;
    uint64_t stats_due = kg_monotonic_ns() + interval_ns;
    const char *redis_url = c->p->cfg->indicator_redis;
    uint64_t redis_ns = redis_url && redis_url[0] ? (uint64_t)c->p->cfg->indicator_redis_poll * 1000000000ull : 0;
    uint64_t redis_due = kg_monotonic_ns() + redis_ns;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (!atomic_load(&c->stop)) {
        struct pollfd pfd = {.fd = c->inotify_fd, .events = POLLIN};
        int n = poll(&pfd, c->inotify_fd >= 0 ? 1 : 0, 100);
        if (n > 0 && (pfd.revents & POLLIN)) {
            ssize_t len;
            while ((len = read(c->inotify_fd, buf, sizeof(buf))) > 0) {
                for (char *q = buf; q < buf + len;) {
                    struct inotify_event *ev = (struct inotify_event *)q;
                    if (ev->len && event_is_feed(c, NULL, ev->name)) due_ns = kg_monotonic_ns() + 500000000ull;
                    q += sizeof(*ev) + ev->len;
                }
            }
        }
        if (c->p->reload && atomic_exchange(c->p->reload, 0)) kg_control_reload(c, "signal");
        if (due_ns && kg_monotonic_ns() >= due_ns) {
            due_ns = 0;
            kg_control_reload(c, "file change");
        }
        if (redis_ns && kg_monotonic_ns() >= redis_due) {
            if (poll_redis_feed(c)) kg_control_reload(c, "redis feed");
            redis_due = kg_monotonic_ns() + redis_ns;
        }
        if (interval_ns && c->collect && kg_monotonic_ns() >= stats_due) {
            emit_stats(c);
            stats_due += interval_ns;
        }
    }
    return NULL;
}

int kg_control_start(struct kg_control *c, const struct kg_pipeline_params *p, struct kg_epoch *epoch,
                     kg_stats_collect_fn collect, void *collect_ctx, struct kg_err *err)
{
    memset(c, 0, sizeof(*c));
    c->p = p;
    c->collect = collect;
    c->collect_ctx = collect_ctx;
    c->start_ns = kg_monotonic_ns();
    if (p->redis_feed) { /* fetched at start-up by main(): the control thread polls from there */
        c->redis_feed = kg_xstrndup(p->redis_feed, p->redis_feed_len);
        c->redis_feed_len = p->redis_feed_len;
        c->redis_version = kg_xstrdup(p->redis_feed_version);
    }
    c->epoch = epoch;
    c->inotify_fd = -1;
    atomic_init(&c->stop, false);
    if (kg_ring_init(&c->ring, 256) < 0) return kg_err_set(err, KG_ERR_NOMEM, "cannot allocate the control ring");
    if (p->cfg->indicator_watch &&
        (p->cfg->indicator_files.count || (p->cfg->indicator_tuning && p->cfg->indicator_tuning[0])))
        watch_feeds(c);
    if (pthread_create(&c->th, NULL, control_main, c) != 0) {
        kg_ring_destroy(&c->ring);
        return kg_err_set(err, KG_ERR_NOMEM, "cannot start the control thread");
    }
    c->started = true;
    return 0;
}

void kg_control_stop(struct kg_control *c)
{
    if (!c->started) return;
    atomic_store(&c->stop, true);
    pthread_join(c->th, NULL);
    c->started = false;
    if (c->inotify_fd >= 0) close(c->inotify_fd);
    c->inotify_fd = -1;
}

void kg_control_destroy(struct kg_control *c)
{
    free(c->redis_feed);
    free(c->redis_version);
    c->redis_feed = c->redis_version = NULL;
    struct kg_msg *m;
    if (c->ring.slots)
        while ((m = kg_ring_pop(&c->ring))) free(m);
    kg_ring_destroy(&c->ring);
}
