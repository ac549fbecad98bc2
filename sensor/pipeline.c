/*
 * sensor/pipeline.c — the threads of a run and the glue between stages.
 *
 * reader (caller's thread) --batches--> worker[i] --alert JSON--> export
 *        <--empty batches--
 *
 * Every hand-over is an SPSC ring (sensor_ring.h); no lock is taken per
 * packet or per alert. With file input a full ring makes the producer wait
 * (back-pressure: reading a file must not lose anything); the waits are
 * counted. Workers run each packet to completion: decode, flow, parsers,
 * nDPI, indicator matching, JSON formatting.
 *
 * Ownership: batches belong to the pipeline and circulate; an alert message
 * is malloc'd by its worker and freed by the export thread after every sink
 * has copied it (alerts are rare next to packets; the per-packet path does
 * not allocate).
 */
#include "sensor/sensor.h"
#include "sensor/sensor_ring.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KG_BATCH_ARENA (128u * 1024u)

struct kg_batch {
    uint32_t n;    /* packets in the batch */
    uint32_t used; /* arena bytes used */
    bool eof;      /* last batch: the worker flushes its flows and stops */
    struct kg_packet *pkts;
    uint8_t *arena;
};

struct kg_msg {
    size_t len;
    char data[];
};

struct worker {
    pthread_t th;
    uint32_t id;
    const struct kg_pipeline_params *p;
    struct kg_ring in;    /* reader -> worker: full batches */
    struct kg_ring empty; /* worker -> reader: empty batches */
    struct kg_ring out;   /* worker -> export: struct kg_msg * */
    struct kg_batch *batches;
    uint32_t nbatches;
    struct kg_dissector *dis;
    struct kg_buf fmt;
    uint64_t seq;
    uint64_t alerts, alerts_waited;
    _Atomic bool done;
};

struct exporter {
    pthread_t th;
    const struct kg_pipeline_params *p;
    struct worker *workers;
    uint32_t nworkers;
    uint64_t undelivered;
};

/* Waiting without a lock: spin briefly, then yield, then sleep in short
 * steps. Used only when a ring is empty or full. */
static void backoff(unsigned *n)
{
    if (*n < 64) {
        __builtin_ia32_pause();
    } else if (*n < 128) {
        sched_yield();
    } else {
        struct timespec ts = {0, *n < 1024 ? 20000 : 200000};
        nanosleep(&ts, NULL);
    }
    (*n)++;
}

/* ---- matching: observations -> alerts ---------------------------------------- */

enum where {
    W_SRC_IP,
    W_DEST_IP,
    W_DNS_QUERY,
    W_TLS_SNI,
    W_HTTP_HOST,
    W_HTTP_URL,
    W_TLS_JA3,
    W_TLS_CERT,
};
static const char *const where_names[] = {"conn.src_ip", "conn.dest_ip", "dns.query", "tls.sni",
                                          "http.host",   "http.url",     "tls.ja3",   "tls.cert_sha1"};

static void emit_alert(struct worker *w, const struct kg_indicator *ind, enum where wh,
                       const struct kg_observation *o, const char *seen, size_t seen_len,
                       const struct kg_alert *ctx)
{
    /* One alert per flow, indicator and place. */
    if (!kg_flow_mark(o->flow, ((uint64_t)ind->id << 8 | (uint64_t)wh) + 1)) return;

    char event_id[160];
    snprintf(event_id, sizeof(event_id), "%s-%016" PRIx64 "-%u-%" PRIu64, w->p->sensor_id, w->p->boot_id,
             w->id, ++w->seq);
    struct kg_alert a = ctx ? *ctx : (struct kg_alert){0};
    a.ts_us = o->ts_us;
    a.event_id = event_id;
    a.sensor_id = w->p->sensor_id;
    a.flow = o->flow;
    a.ind = ind;
    a.where = where_names[wh];
    a.seen = seen;
    a.seen_len = seen_len;
    kg_buf_reset(&w->fmt);
    kg_event_format_alert(&w->fmt, &a);

    struct kg_msg *m = malloc(sizeof(*m) + w->fmt.len);
    if (!m) return;
    m->len = w->fmt.len;
    memcpy(m->data, w->fmt.data, w->fmt.len);
    unsigned n = 0;
    while (!kg_ring_push(&w->out, m)) {
        if (n == 0) w->alerts_waited++;
        backoff(&n);
    }
    w->alerts++;
}

/* Host header without its port ("example.com:8080"; "[v6]:port"). */
static size_t host_without_port(const char *h, size_t len)
{
    if (len && h[0] == '[') {
        const char *e = memchr(h, ']', len);
        return e ? (size_t)(e - h) + 1 : len;
    }
    const char *c = memchr(h, ':', len);
    return c ? (size_t)(c - h) : len;
}

static void on_observation(void *user, const struct kg_observation *o)
{
    struct worker *w = user;
    const struct kg_indicator_set *set = w->p->indicators;
    const struct kg_indicator *ind;
    struct kg_flow_info *f = o->flow;

    switch (o->type) {
    case KG_OBS_FLOW_START: {
        char a[46];
        if ((ind = kg_indicator_match_addr(set, f->key.family, f->key.saddr))) {
            kg_addr_str(f->key.family, f->key.saddr, a);
            emit_alert(w, ind, W_SRC_IP, o, a, strlen(a), NULL);
        }
        if ((ind = kg_indicator_match_addr(set, f->key.family, f->key.daddr))) {
            kg_addr_str(f->key.family, f->key.daddr, a);
            emit_alert(w, ind, W_DEST_IP, o, a, strlen(a), NULL);
        }
        break;
    }
    case KG_OBS_DNS_QUERY:
        if ((ind = kg_indicator_match_domain(set, o->value, o->value_len))) {
            struct kg_alert ctx = {.dns_rrname = o->value, .dns_rrname_len = o->value_len};
            emit_alert(w, ind, W_DNS_QUERY, o, o->value, o->value_len, &ctx);
        }
        break;
    case KG_OBS_TLS_SNI:
        if ((ind = kg_indicator_match_domain(set, o->value, o->value_len)))
            emit_alert(w, ind, W_TLS_SNI, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_TLS_JA3:
        if ((ind = kg_indicator_match_hash(set, KG_IND_JA3, o->value, o->value_len)))
            emit_alert(w, ind, W_TLS_JA3, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_TLS_CERT_SHA1:
        if ((ind = kg_indicator_match_hash(set, KG_IND_CERT_HASH, o->value, o->value_len)))
            emit_alert(w, ind, W_TLS_CERT, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_HTTP_REQUEST: {
        size_t hl = host_without_port(o->value, o->value_len);
        struct kg_alert ctx = {.http_hostname = o->value,
                               .http_hostname_len = hl,
                               .http_url = o->http_uri,
                               .http_url_len = o->http_uri_len};
        if (hl && (ind = kg_indicator_match_domain(set, o->value, hl)))
            emit_alert(w, ind, W_HTTP_HOST, o, o->value, hl, &ctx);
        if ((ind = kg_indicator_match_url(set, o->value, o->value_len, o->http_uri, o->http_uri_len))) {
            /* seen: the URL as Zeek writes it, host + URI */
            char url[2048];
            size_t n = KG_MIN(o->value_len, sizeof(url));
            memcpy(url, o->value, n);
            size_t m = KG_MIN(o->http_uri_len, sizeof(url) - n);
            memcpy(url + n, o->http_uri, m);
            emit_alert(w, ind, W_HTTP_URL, o, url, n + m, &ctx);
        }
        break;
    }
    case KG_OBS_TLS_JA4: /* carried in alerts' tls.ja4; Intel::JA4 indicators come with the feed work */
    case KG_OBS_FLOW_END:
        break;
    }
}

/* ---- worker -------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned idle = 0;
    for (;;) {
        struct kg_batch *b = kg_ring_pop(&w->in);
        if (!b) {
            backoff(&idle);
            continue;
        }
        idle = 0;
        for (uint32_t i = 0; i < b->n; i++) kg_dissector_process(w->dis, &b->pkts[i]);
        bool eof = b->eof;
        b->n = 0;
        b->used = 0;
        b->eof = false;
        /* The empty ring has room for every batch of this worker: cannot fail. */
        kg_ring_push(&w->empty, b);
        if (eof) break;
    }
    kg_dissector_flush(w->dis);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

/* ---- export -------------------------------------------------------------------- */

static void sinks_write(const struct kg_pipeline_params *p, const struct kg_msg *m)
{
    static struct kg_ratelimit rl;
    for (size_t i = 0; i < p->nsinks; i++) {
        if (kg_sink_write(p->sinks[i], m->data, m->len) < 0)
            kg_log_ratelimited(&rl, 5.0, KG_LOG_ERROR, "export", "%s: cannot queue an event",
                               kg_sink_name(p->sinks[i]));
    }
}

/* Per-sink retry schedule: a sink that could not deliver (KG_ERR_AGAIN) is
 * not flushed again before its back-off expires (0.1 s doubling to 5 s), so
 * an unreachable collector does not stall the export thread on every loop. */
struct sink_retry {
    uint64_t next_ns;
    uint64_t delay_ns;
    bool behind; /* has undelivered events */
};

/* Flushes the sinks that are due. Returns true when no sink is behind. */
static bool sinks_flush(const struct kg_pipeline_params *p, struct sink_retry *r, bool force)
{
    bool all = true;
    uint64_t now = kg_monotonic_ns();
    for (size_t i = 0; i < p->nsinks; i++) {
        if (!force && r[i].behind && now < r[i].next_ns) {
            all = false;
            continue;
        }
        struct kg_err err = {{0}};
        int rc = kg_sink_flush(p->sinks[i], &err);
        if (rc == 0) {
            r[i].behind = false;
            r[i].delay_ns = 0;
            continue;
        }
        all = false;
        r[i].behind = true;
        r[i].delay_ns = r[i].delay_ns ? KG_MIN(r[i].delay_ns * 2, 5000000000ull) : 100000000ull;
        r[i].next_ns = kg_monotonic_ns() + r[i].delay_ns;
        if (rc != KG_ERR_AGAIN)
            kg_log(KG_LOG_ERROR, "export", "%s: %s", kg_sink_name(p->sinks[i]),
                   err.msg[0] ? err.msg : kg_strerror(rc));
    }
    return all;
}

static void *export_main(void *arg)
{
    struct exporter *x = arg;
    const struct kg_pipeline_params *p = x->p;
    struct sink_retry *retry = kg_xcalloc(p->nsinks ? p->nsinks : 1, sizeof(*retry));
    unsigned idle = 0;
    uint64_t pending = 0, last_flush = kg_monotonic_ns();
    for (;;) {
        uint64_t got = 0;
        bool all_done = true;
        for (uint32_t i = 0; i < x->nworkers; i++) {
            struct worker *w = &x->workers[i];
            /* Read `done` before draining, so nothing pushed before it is missed. */
            bool done = atomic_load_explicit(&w->done, memory_order_acquire);
            struct kg_msg *m;
            while (got < 4096 && (m = kg_ring_pop(&w->out))) {
                sinks_write(p, m);
                free(m);
                got++;
            }
            if (!done || kg_ring_count(&w->out)) all_done = false;
        }
        pending += got;
        uint64_t now = kg_monotonic_ns();
        if (pending >= 1024 || (pending && (got == 0 || now - last_flush > 100000000ull))) {
            if (sinks_flush(p, retry, false)) pending = 0;
            last_flush = now;
        }
        if (all_done) break;
        if (got) idle = 0;
        else backoff(&idle);
    }
    /* Deliver what is left; an unreachable destination is retried with
     * back-off for up to a minute before the run gives up on it. */
    uint64_t deadline = kg_monotonic_ns() + 60ull * 1000000000ull;
    unsigned delay_ms = 100;
    while (!sinks_flush(p, retry, true) && kg_monotonic_ns() < deadline) {
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 2000) delay_ms *= 2;
    }
    /* Whatever a sink did not deliver (still queued, or refused for good) is
     * reported, and makes the run fail. */
    for (size_t i = 0; i < p->nsinks; i++) {
        struct kg_sink_stats st;
        kg_sink_get_stats(p->sinks[i], &st);
        uint64_t lost = st.written - st.delivered;
        if (lost) {
            kg_log(KG_LOG_ERROR, "export", "%s: %" PRIu64 " events could not be delivered",
                   kg_sink_name(p->sinks[i]), lost);
            x->undelivered += lost;
        }
    }
    free(retry);
    return NULL;
}

/* ---- reader -------------------------------------------------------------------- */

static struct kg_batch *take_batch(struct worker *w, struct kg_pipeline_stats *st)
{
    unsigned n = 0;
    struct kg_batch *b;
    while (!(b = kg_ring_pop(&w->empty))) {
        if (n == 0) st->batches_waited++;
        backoff(&n);
    }
    return b;
}

static void hand_over(struct worker *w, struct kg_batch *b)
{
    unsigned n = 0;
    /* The in ring holds every batch of this worker: pushing cannot fail for
     * long; the loop only covers the consumer's head update in flight. */
    while (!kg_ring_push(&w->in, b)) backoff(&n);
}

static int worker_init(struct worker *w, uint32_t id, const struct kg_pipeline_params *p, struct kg_err *err)
{
    const struct kg_config *cfg = p->cfg;
    w->id = id;
    w->p = p;
    w->nbatches = cfg->ring_size;
    uint32_t bp = cfg->batch_packets;
    if (kg_ring_init(&w->in, w->nbatches) || kg_ring_init(&w->empty, w->nbatches) ||
        kg_ring_init(&w->out, cfg->alert_queue))
        return kg_err_set(err, KG_ERR_NOMEM, "cannot allocate pipeline rings");
    w->batches = kg_xcalloc(w->nbatches, sizeof(*w->batches));
    for (uint32_t i = 0; i < w->nbatches; i++) {
        w->batches[i].pkts = kg_xcalloc(bp, sizeof(struct kg_packet));
        w->batches[i].arena = kg_xmalloc(KG_BATCH_ARENA);
        kg_ring_push(&w->empty, &w->batches[i]);
    }
    struct kg_dissector_config dc = {
        .max_flows = cfg->flow_max,
        .tcp_timeout_s = cfg->flow_tcp_timeout,
        .udp_timeout_s = cfg->flow_udp_timeout,
        .other_timeout_s = cfg->flow_other_timeout,
        .vlan_in_key = cfg->flow_vlan_in_key,
        .worker_id = id,
    };
    w->dis = kg_dissector_new(&dc, on_observation, w, err);
    if (!w->dis) return KG_ERR_NOMEM;
    kg_buf_init(&w->fmt);
    atomic_init(&w->done, false);
    return 0;
}

static void worker_destroy(struct worker *w)
{
    kg_dissector_free(w->dis);
    if (w->batches) {
        for (uint32_t i = 0; i < w->nbatches; i++) {
            free(w->batches[i].pkts);
            free(w->batches[i].arena);
        }
    }
    free(w->batches);
    struct kg_msg *m;
    if (w->out.slots)
        while ((m = kg_ring_pop(&w->out))) free(m);
    kg_ring_destroy(&w->in);
    kg_ring_destroy(&w->empty);
    kg_ring_destroy(&w->out);
    kg_buf_free(&w->fmt);
}

static void sum_dissect(struct kg_dissect_stats *sum, const struct kg_dissect_stats *s)
{
    const uint64_t *a = (const uint64_t *)s;
    uint64_t *b = (uint64_t *)sum;
    for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++) b[i] += a[i];
}

int kg_pipeline_run(const struct kg_pipeline_params *p, struct kg_pipeline_stats *st, struct kg_err *err)
{
    const struct kg_config *cfg = p->cfg;
    uint32_t nw = p->workers ? p->workers : 1;
    memset(st, 0, sizeof(*st));
    int rc = 0;

    /* Open every input first: an unreadable file fails the run before any
     * thread starts. */
    size_t ncap = cfg->read_files.count;
    struct kg_capture **caps = kg_xcalloc(ncap ? ncap : 1, sizeof(*caps));
    for (size_t i = 0; i < ncap; i++) {
        caps[i] = kg_capture_new("pcap_file", cfg->read_files.items[i], err);
        if (!caps[i] || (rc = kg_capture_start(caps[i], err)) < 0) {
            rc = rc ? rc : KG_ERR_IO;
            for (size_t j = 0; j <= i; j++) kg_capture_free(caps[j]);
            free(caps);
            return rc;
        }
        kg_capture_set_iface_index(caps[i], (uint16_t)i);
    }

    struct worker *workers = kg_xcalloc(nw, sizeof(*workers));
    for (uint32_t i = 0; i < nw; i++) {
        if ((rc = worker_init(&workers[i], i, p, err)) < 0) {
            for (uint32_t j = 0; j <= i; j++) worker_destroy(&workers[j]);
            free(workers);
            for (size_t j = 0; j < ncap; j++) kg_capture_free(caps[j]);
            free(caps);
            return rc;
        }
    }
    for (uint32_t i = 0; i < nw; i++) pthread_create(&workers[i].th, NULL, worker_main, &workers[i]);
    struct exporter x = {.p = p, .workers = workers, .nworkers = nw};
    pthread_create(&x.th, NULL, export_main, &x);

    /* Reader loop. */
    struct kg_batch **cur = kg_xcalloc(nw, sizeof(*cur));
    for (uint32_t i = 0; i < nw; i++) cur[i] = take_batch(&workers[i], st);
    for (size_t c = 0; c < ncap && !*p->stop; c++) {
        struct kg_packet pkt;
        struct kg_err rerr = {{0}};
        int r;
        while (!*p->stop && (r = kg_capture_next(caps[c], &pkt, &rerr)) != KG_ERR_EOF) {
            if (r < 0) {
                /* A damaged or truncated file: keep what was read, say so. */
                kg_log(KG_LOG_WARN, "capture", "%s", rerr.msg);
                st->read_errors++;
                break;
            }
            if (r == 0) continue;
            st->packets_read++;
            st->bytes_read += pkt.wirelen;
            uint32_t wi = nw > 1 ? kg_dissect_packet_hash(&pkt) % nw : 0;
            struct kg_batch *b = cur[wi];
            uint32_t caplen = KG_MIN(pkt.caplen, KG_BATCH_ARENA);
            if (b->n == cfg->batch_packets || KG_BATCH_ARENA - b->used < caplen) {
                hand_over(&workers[wi], b);
                b = cur[wi] = take_batch(&workers[wi], st);
            }
            struct kg_packet *q = &b->pkts[b->n++];
            *q = pkt;
            memcpy(b->arena + b->used, pkt.data, caplen);
            q->data = b->arena + b->used;
            q->caplen = caplen;
            b->used += caplen;
        }
    }
    for (uint32_t i = 0; i < nw; i++) {
        cur[i]->eof = true;
        hand_over(&workers[i], cur[i]);
    }
    free(cur);
    for (uint32_t i = 0; i < nw; i++) pthread_join(workers[i].th, NULL);
    pthread_join(x.th, NULL);

    for (uint32_t i = 0; i < nw; i++) {
        sum_dissect(&st->dissect, kg_dissector_stats(workers[i].dis));
        st->alerts += workers[i].alerts;
        st->alerts_waited += workers[i].alerts_waited;
        worker_destroy(&workers[i]);
    }
    st->alerts_undelivered = x.undelivered;
    free(workers);
    for (size_t j = 0; j < ncap; j++) kg_capture_free(caps[j]);
    free(caps);
    if (x.undelivered)
        return kg_err_set(err, KG_ERR_IO, "%" PRIu64 " alerts could not be delivered", x.undelivered);
    return 0;
}
