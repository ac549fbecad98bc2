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
#include "sensor/sensor_control.h"
#include "sensor/sensor_epoch.h"
#include "sensor/sensor_ring.h"
#include "sensor/resolved.h"
#include "dissect/dissect_parsers.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KG_BATCH_ARENA (128u * 1024u)

struct kg_batch {
    uint32_t n;    /* packets in the batch */
    uint32_t used; /* arena bytes used */
    bool eof;      /* last batch: the worker flushes its flows and stops */
    struct kg_packet *pkts;
    uint8_t *arena;
};

#define PUB_DISSECT (sizeof(struct kg_dissect_stats) / sizeof(uint64_t))
#define PUB_N (PUB_DISSECT + 6) /* + capture packets, bytes, kernel drops, iface drops, alerts, dropped */

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
    uint64_t alerts, alerts_waited, alerts_dropped;
    struct kg_capture *cap; /* live mode: this worker's own capture handle */
    struct kg_epoch *epoch;
    const struct kg_indicator_set *set; /* loaded at quiescent points */
    const struct kg_tuning *tuning;     /* idem; NULL = no tuning */
    struct kg_threshold *threshold;     /* this worker's alert thresholds (GSOC tuning) */
    uint64_t suppressed, thresholded;
    pthread_barrier_t *end_barrier;     /* file input: all workers done with packets */
    bool live;              /* a full alert ring drops (live) instead of waiting (file) */
    _Atomic bool done;
    /* Counters published for the control thread's stats events: the worker
     * copies its own counters here about once a second (relaxed atomics:
     * no lock, and no data race on the worker's plain counters). */
    _Atomic uint64_t pub[PUB_N];
    uint64_t pub_last_ns;
};

struct exporter {
    pthread_t th;
    const struct kg_pipeline_params *p;
    struct worker *workers;
    uint32_t nworkers;
    struct kg_control *ctl;
    _Atomic bool ctl_done; /* the control thread has stopped: its ring only drains */
    uint64_t undelivered;
};

/* A worker's quiescent point: it holds no reference to the indicator set
 * from before, and takes the one in force now. */
static inline void worker_quiescent(struct worker *w)
{
    kg_epoch_quiescent(w->epoch, w->id);
    w->set = atomic_load(&w->p->indicators->cur);
    w->tuning = atomic_load(&w->p->indicators->tuning);
}

/* Waiting without a lock: spin briefly, then yield, then sleep in short
 * steps. Used only when a ring is empty or full. */
static void backoff(unsigned *n)
{
    if (*n < 64) {
        __builtin_ia32_pause();
    } else if (*n < 128) {
        sched_yield();
    } else {
        /* Idle for long: sleep 1 ms steps (an idle export thread or worker
         * costs ~1,000 wake-ups a second, not 5,000; latency stays < 2 ms). */
        struct timespec ts = {0, *n < 1024 ? 20000 : 1000000};
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
    W_TLS_JA4,
    W_HTTP_UA,
    W_DNS_ANSWER,
    W_CONN_RESOLVED,
};
static const char *const where_names[] = {"conn.src_ip", "conn.dest_ip", "dns.query",       "tls.sni",
                                          "http.host",   "http.url",     "tls.ja3",         "tls.cert_sha1",
                                          "tls.ja4",     "http.user_agent", "dns.answer",   "conn.resolved"};

/* Hands one formatted event (w->fmt) to the export thread. With file input a
 * full ring waits (nothing lost); live, it drops and counts: capture never
 * waits on export. Returns false when dropped. */
static bool push_fmt(struct worker *w)
{
    struct kg_msg *m = malloc(sizeof(*m) + w->fmt.len);
    if (!m) return false;
    m->len = w->fmt.len;
    memcpy(m->data, w->fmt.data, w->fmt.len);
    unsigned n = 0;
    while (!kg_ring_push(&w->out, m)) {
        if (w->live) {
            static struct kg_ratelimit rl;
            free(m);
            w->alerts_dropped++;
            kg_log_ratelimited(&rl, 10.0, KG_LOG_WARN, "pipeline",
                               "worker %u: event queue full, event dropped (export too slow)", w->id);
            return false;
        }
        if (n == 0) w->alerts_waited++;
        backoff(&n);
    }
    return true;
}

static const char *next_event_id(struct worker *w, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%016" PRIx64 "-%u-%" PRIu64, w->p->sensor_id, w->p->boot_id, w->id, ++w->seq);
    return buf;
}

/* GeoIP of both ends (public addresses only; nothing when no database). */
static void flow_geo(struct worker *w, const struct kg_flow_info *f, struct kg_geo *src, struct kg_geo *dst,
                     const struct kg_geo **srcp, const struct kg_geo **dstp)
{
    *srcp = *dstp = NULL;
    if (!w->p->geoip) return;
    if (kg_geoip_lookup(w->p->geoip, f->key.family, f->key.saddr, src) == 1) *srcp = src;
    if (kg_geoip_lookup(w->p->geoip, f->key.family, f->key.daddr, dst) == 1) *dstp = dst;
}

static void emit_alert(struct worker *w, const struct kg_indicator *ind, enum where wh,
                       const struct kg_observation *o, const char *seen, size_t seen_len,
                       const struct kg_alert *ctx)
{
    /* One alert per flow, indicator and place. */
    if (!kg_flow_mark(o->flow, ((uint64_t)ind->id << 8 | (uint64_t)wh) + 1)) return;

    /* GSOC tuning: suppressions, thresholds (per worker: a source whose flows
     * spread over n workers may get n x count alerts per window, see
     * docs/TUNING.md), severity overrides. */
    struct kg_tuning_verdict v = {0};
    const struct kg_flow_info *fl = o->flow;
    if (w->tuning) {
        kg_tuning_check(w->tuning, ind, where_names[wh], fl->key.family, fl->key.saddr, fl->key.daddr, o->ts_us,
                        &v);
        if (v.suppress) {
            w->suppressed++;
            return;
        }
        if (v.threshold_rule != KG_TUNING_NONE &&
            !kg_threshold_allow(w->threshold, w->tuning, v.threshold_rule, ind, fl->key.family, fl->key.saddr,
                                o->ts_us)) {
            w->thresholded++;
            return;
        }
    }

    char event_id[160];
    struct kg_geo sg, dg;
    struct kg_alert a = ctx ? *ctx : (struct kg_alert){0};
    a.ts_us = o->ts_us;
    a.event_id = next_event_id(w, event_id, sizeof(event_id));
    a.sensor_id = w->p->sensor_id;
    a.flow = o->flow;
    a.ind = ind;
    a.where = where_names[wh];
    a.seen = seen;
    a.seen_len = seen_len;
    a.community_id = o->flow->community_id;
    a.severity = v.severity;
    flow_geo(w, o->flow, &sg, &dg, &a.src_geo, &a.dest_geo);
    kg_buf_reset(&w->fmt);
    kg_event_format_alert(&w->fmt, &a);
    if (push_fmt(w)) {
        w->alerts++;
        o->flow->alerted = true;
    }
}

/* Fills the header shared by metadata events. */
static void meta_hdr(struct worker *w, const struct kg_observation *o, struct kg_event_hdr *h, char *event_id,
                     size_t cap, struct kg_geo *sg, struct kg_geo *dg)
{
    memset(h, 0, sizeof(*h));
    h->ts_us = o->ts_us;
    h->event_id = next_event_id(w, event_id, cap);
    h->sensor_id = w->p->sensor_id;
    h->flow = o->flow;
    h->community_id = o->flow->community_id;
    flow_geo(w, o->flow, sg, dg, &h->src_geo, &h->dest_geo);
}

/* A DNS message: the dns event (answers are matched one by one, see
 * on_dns_answer). */
static void on_dns_message(struct worker *w, const struct kg_observation *o)
{
    const struct kg_dns_msg *m = o->dns;
    const struct kg_config *cfg = w->p->cfg;
    if (cfg->events_dns) {
        struct kg_dns_event_answer ans[KG_DNS_MSG_MAX_ANSWERS];
        for (size_t i = 0; i < m->nanswers; i++) {
            const struct kg_dns_msg_answer *a = &m->answers[i];
            ans[i] = (struct kg_dns_event_answer){.rrname = a->name, .rrname_len = a->name_len,
                                                  .rrtype = a->rrtype, .ttl = a->ttl, .addr_family = a->family,
                                                  .target = a->target, .target_len = a->target_len};
            memcpy(ans[i].addr, a->addr, sizeof(ans[i].addr));
        }
        /* A response is one event (its first question and its answers); a
         * query is one event per question, so that none is hidden (mDNS
         * queries often ask several). */
        size_t nev = m->response || m->nquestions < 2 ? 1 : m->nquestions;
        for (size_t q = 0; q < nev; q++) {
            struct kg_dns_event e = {.is_response = m->response, .id = m->id, .rrname = m->qname,
                                     .rrname_len = m->qname_len, .rrtype = m->qtype, .rcode = m->rcode,
                                     .answers = ans, .nanswers = m->nanswers};
            if (nev > 1) {
                e.rrname = m->questions[q].name;
                e.rrname_len = m->questions[q].len;
                e.rrtype = m->questions[q].type;
            }
            char id[160];
            struct kg_event_hdr h;
            struct kg_geo sg, dg;
            meta_hdr(w, o, &h, id, sizeof(id), &sg, &dg);
            kg_buf_reset(&w->fmt);
            kg_event_format_dns(&w->fmt, &h, &e);
            push_fmt(w);
        }
    }
}

/* One A/AAAA answer (every one, not only those the dns event keeps): the
 * address against ADDR/SUBNET, and into the resolved-address cache when the
 * question name is flagged. */
static void on_dns_answer(struct worker *w, const struct kg_observation *o)
{
    const struct kg_indicator_set *set = w->set;
    char addr[46];
    kg_addr_str(o->dns_answer_family, o->dns_answer_addr, addr);
    const struct kg_indicator *ind = kg_indicator_match_addr(set, o->dns_answer_family, o->dns_answer_addr, o->ts_us);
    if (ind) {
        struct kg_alert ctx = {.dns_rrname = o->value, .dns_rrname_len = o->value_len};
        emit_alert(w, ind, W_DNS_ANSWER, o, addr, strlen(addr), &ctx);
    }
    if (o->value_len && kg_indicator_match_domain(set, o->value, o->value_len, o->ts_us)) {
        /* Kept at least 10 minutes (connections often follow long after
         * short TTLs), at most a day. */
        uint64_t ttl = KG_MAX(KG_MIN((uint64_t)o->dns_answer_ttl, 86400u), 600u);
        kg_resolved_put(w->p->resolved, o->dns_answer_family, o->dns_answer_addr, o->value, o->value_len, o->ts_us,
                        o->ts_us + ttl * 1000000u);
    }
}

/* A connection to an address that a flagged name resolved to before the
 * connection started: one alert per name's indicator. The domain is matched
 * again against the set in force (it may have changed). The alert carries
 * the flow's first packet time. */
struct resolved_ctx {
    struct worker *w;
    const struct kg_observation *o;
};

static void resolved_hit(void *user, const char *name, size_t len)
{
    struct resolved_ctx *c = user;
    const struct kg_flow_info *f = c->o->flow;
    const struct kg_indicator *ind = kg_indicator_match_domain(c->w->set, name, len, f->first_ts_us);
    if (!ind) return;
    struct kg_alert ctx = {.dns_rrname = name, .dns_rrname_len = len};
    struct kg_observation at = *c->o;
    at.ts_us = f->first_ts_us;
    emit_alert(c->w, ind, W_CONN_RESOLVED, &at, name, len, &ctx);
}

static void check_resolved(struct worker *w, const struct kg_observation *o)
{
    const struct kg_flow_info *f = o->flow;
    struct resolved_ctx c = {w, o};
    kg_resolved_get(w->p->resolved, f->key.family, f->key.daddr, f->first_ts_us, resolved_hit, &c);
}

static void on_http_txn(struct worker *w, const struct kg_observation *o)
{
    if (!w->p->cfg->events_http) return;
    const struct kg_http_txn *t = o->http;
    struct kg_http_event e = {.host = t->host, .host_len = t->host_len, .uri = t->uri, .uri_len = t->uri_len,
                              .method = t->method, .method_len = t->method_len, .user_agent = t->user_agent,
                              .user_agent_len = t->user_agent_len, .version_minor = t->version_minor,
                              .status = t->status, .content_type = t->content_type,
                              .content_type_len = t->content_type_len, .has_length = t->has_length,
                              .length = t->length};
    char id[160];
    struct kg_event_hdr h;
    struct kg_geo sg, dg;
    meta_hdr(w, o, &h, id, sizeof(id), &sg, &dg);
    kg_buf_reset(&w->fmt);
    kg_event_format_http(&w->fmt, &h, &e);
    push_fmt(w);
}

static void on_handshake(struct worker *w, const struct kg_observation *o)
{
    const struct kg_flow_info *f = o->flow;
    const struct kg_handshake *hs = o->handshake;
    const struct kg_config *cfg = w->p->cfg;
    if (hs->quic ? !cfg->events_quic : !cfg->events_tls) return;
    char id[160];
    struct kg_event_hdr h;
    struct kg_geo sg, dg;
    meta_hdr(w, o, &h, id, sizeof(id), &sg, &dg);
    kg_buf_reset(&w->fmt);
    if (hs->quic) {
        struct kg_quic_event e = {.version = f->quic_version, .sni = f->sni, .alpn = f->tls_alpn,
                                  .ja3_hash = f->ja3, .ja4 = f->ja4};
        kg_event_format_quic(&w->fmt, &h, &e);
    } else {
        /* version: what the server chose when its ServerHello was seen,
         * else the newest the client offered. */
        struct kg_tls_event e = {.sni = f->sni,
                                 .version = f->tls_version_server > 1 ? f->tls_version_server : f->tls_version,
                                 .alpn = f->tls_alpn, .ja3_hash = f->ja3, .ja4 = f->ja4, .ja3s_hash = f->ja3s};
        const struct kg_x509_info *x = hs->cert;
        if (x) {
            e.has_cert = true;
            e.subject = x->subject;
            e.issuerdn = x->issuer;
            e.serial = x->serial;
            e.cert_sha1 = x->sha1;
            e.cert_sha256 = x->sha256;
            e.notbefore = x->not_before;
            e.notafter = x->not_after;
            e.self_signed = x->self_signed;
        }
        kg_event_format_tls(&w->fmt, &h, &e);
    }
    push_fmt(w);
}

static void on_flow_end(struct worker *w, const struct kg_observation *o)
{
    if (!w->p->cfg->events_flow) return;
    const struct kg_flow_info *f = o->flow;
    static const enum kg_flow_end_reason reasons[] = {
        [KG_END_TIMEOUT] = KG_FLOW_END_TIMEOUT, [KG_END_CLOSED] = KG_FLOW_END_CLOSED,
        [KG_END_SHUTDOWN] = KG_FLOW_END_SHUTDOWN, [KG_END_EVICTED] = KG_FLOW_END_EVICTED};
    struct kg_flow_event e = {.reason = reasons[f->end_reason & 3], .alerted = f->alerted,
                              .tcp_flags = (uint8_t)(f->tcp_flags_ts | f->tcp_flags_tc),
                              .tcp_flags_ts = f->tcp_flags_ts, .tcp_flags_tc = f->tcp_flags_tc};
    if (f->key.proto == 6) {
        bool fin = (e.tcp_flags & 0x01) || (e.tcp_flags & 0x04);
        bool est = (f->tcp_flags_ts & 0x10) && (f->tcp_flags_tc & 0x12);
        e.state = fin ? "closed" : est ? "established" : "new";
    } else {
        e.state = f->pkts_toclient ? "established" : "new";
    }
    char id[160];
    struct kg_event_hdr h;
    struct kg_geo sg, dg;
    meta_hdr(w, o, &h, id, sizeof(id), &sg, &dg);
    kg_buf_reset(&w->fmt);
    kg_event_format_flow(&w->fmt, &h, &e);
    push_fmt(w);
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
    const struct kg_indicator_set *set = w->set;
    const struct kg_indicator *ind;
    struct kg_flow_info *f = o->flow;

    switch (o->type) {
    case KG_OBS_FLOW_START: {
        char a[46];
        if ((ind = kg_indicator_match_addr(set, f->key.family, f->key.saddr, o->ts_us))) {
            kg_addr_str(f->key.family, f->key.saddr, a);
            emit_alert(w, ind, W_SRC_IP, o, a, strlen(a), NULL);
        }
        if ((ind = kg_indicator_match_addr(set, f->key.family, f->key.daddr, o->ts_us))) {
            kg_addr_str(f->key.family, f->key.daddr, a);
            emit_alert(w, ind, W_DEST_IP, o, a, strlen(a), NULL);
        }
        check_resolved(w, o);
        break;
    }
    case KG_OBS_DNS_MESSAGE:
        on_dns_message(w, o);
        break;
    case KG_OBS_DNS_ANSWER:
        on_dns_answer(w, o);
        break;
    case KG_OBS_HTTP_TXN:
        on_http_txn(w, o);
        break;
    case KG_OBS_HANDSHAKE:
        on_handshake(w, o);
        break;
    case KG_OBS_DNS_QUERY:
        if ((ind = kg_indicator_match_domain(set, o->value, o->value_len, o->ts_us))) {
            struct kg_alert ctx = {.dns_rrname = o->value, .dns_rrname_len = o->value_len};
            emit_alert(w, ind, W_DNS_QUERY, o, o->value, o->value_len, &ctx);
        }
        break;
    case KG_OBS_TLS_SNI:
        if ((ind = kg_indicator_match_domain(set, o->value, o->value_len, o->ts_us)))
            emit_alert(w, ind, W_TLS_SNI, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_TLS_JA3:
        if ((ind = kg_indicator_match_hash(set, KG_IND_JA3, o->value, o->value_len, o->ts_us)))
            emit_alert(w, ind, W_TLS_JA3, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_TLS_CERT_SHA1:
        if ((ind = kg_indicator_match_hash(set, KG_IND_CERT_HASH, o->value, o->value_len, o->ts_us)))
            emit_alert(w, ind, W_TLS_CERT, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_HTTP_REQUEST: {
        size_t hl = host_without_port(o->value, o->value_len);
        struct kg_alert ctx = {.http_hostname = o->value,
                               .http_hostname_len = hl,
                               .http_url = o->http_uri,
                               .http_url_len = o->http_uri_len};
        if (hl && (ind = kg_indicator_match_domain(set, o->value, hl, o->ts_us)))
            emit_alert(w, ind, W_HTTP_HOST, o, o->value, hl, &ctx);
        if ((ind = kg_indicator_match_url(set, o->value, o->value_len, o->http_uri, o->http_uri_len, o->ts_us))) {
            /* seen: the URL as Zeek writes it, host + URI */
            char url[2048];
            size_t n = KG_MIN(o->value_len, sizeof(url));
            memcpy(url, o->value, n);
            size_t m = KG_MIN(o->http_uri_len, sizeof(url) - n);
            memcpy(url + n, o->http_uri, m);
            emit_alert(w, ind, W_HTTP_URL, o, url, n + m, &ctx);
        }
        if (o->http_user_agent &&
            (ind = kg_indicator_match_software(set, o->http_user_agent, o->http_user_agent_len, o->ts_us)))
            emit_alert(w, ind, W_HTTP_UA, o, o->http_user_agent, o->http_user_agent_len, &ctx);
        break;
    }
    case KG_OBS_TLS_JA4:
        if ((ind = kg_indicator_match_hash(set, KG_IND_JA4, o->value, o->value_len, o->ts_us)))
            emit_alert(w, ind, W_TLS_JA4, o, o->value, o->value_len, NULL);
        break;
    case KG_OBS_FLOW_END:
        /* Checked again at the end: the answer may have been handled by
         * another worker after this flow started (file input runs workers
         * ahead of each other; they all finish their packets before any
         * flushes its flows, see worker_main). */
        check_resolved(w, o);
        on_flow_end(w, o);
        break;
    }
}


/* ---- published counters (stats events) ------------------------------------------ */

static void worker_publish(struct worker *w)
{
    uint64_t v[PUB_N];
    memcpy(v, kg_dissector_stats(w->dis), sizeof(struct kg_dissect_stats));
    struct kg_capture_stats cs = {0};
    if (w->cap) kg_capture_get_stats(w->cap, &cs);
    v[PUB_DISSECT + 0] = cs.packets;
    v[PUB_DISSECT + 1] = cs.bytes;
    v[PUB_DISSECT + 2] = cs.kernel_drops;
    v[PUB_DISSECT + 3] = cs.iface_drops;
    v[PUB_DISSECT + 4] = w->alerts;
    v[PUB_DISSECT + 5] = w->alerts_dropped;
    for (size_t i = 0; i < PUB_N; i++) atomic_store_explicit(&w->pub[i], v[i], memory_order_relaxed);
}

static inline void worker_maybe_publish(struct worker *w)
{
    uint64_t now = kg_monotonic_ns();
    if (now - w->pub_last_ns < 1000000000ull) return;
    w->pub_last_ns = now;
    worker_publish(w);
}

struct collect_ctx {
    struct worker *workers;
    uint32_t nw;
    bool live;
};

static void collect_stats(void *arg, struct kg_stats_snapshot *out)
{
    struct collect_ctx *c = arg;
    uint64_t *d = (uint64_t *)&out->dissect;
    for (uint32_t i = 0; i < c->nw; i++) {
        struct worker *w = &c->workers[i];
        for (size_t j = 0; j < PUB_DISSECT; j++) d[j] += atomic_load_explicit(&w->pub[j], memory_order_relaxed);
        out->capture.packets += atomic_load_explicit(&w->pub[PUB_DISSECT + 0], memory_order_relaxed);
        out->capture.bytes += atomic_load_explicit(&w->pub[PUB_DISSECT + 1], memory_order_relaxed);
        out->capture.kernel_drops += atomic_load_explicit(&w->pub[PUB_DISSECT + 2], memory_order_relaxed);
        out->capture.iface_drops =
            KG_MAX(out->capture.iface_drops, atomic_load_explicit(&w->pub[PUB_DISSECT + 3], memory_order_relaxed));
        out->alerts += atomic_load_explicit(&w->pub[PUB_DISSECT + 4], memory_order_relaxed);
        out->alerts_dropped += atomic_load_explicit(&w->pub[PUB_DISSECT + 5], memory_order_relaxed);
    }
    if (!c->live) { /* file input: the dissectors' packet counters are the capture's */
        out->capture.packets = out->dissect.packets;
        out->capture.bytes = out->dissect.bytes;
    }
}

/* ---- worker -------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned idle = 0;
    for (;;) {
        worker_quiescent(w);
        struct kg_batch *b = kg_ring_pop(&w->in);
        if (!b) {
            backoff(&idle);
            continue;
        }
        idle = 0;
        for (uint32_t i = 0; i < b->n; i++) kg_dissector_process(w->dis, &b->pkts[i]);
        worker_maybe_publish(w);
        bool eof = b->eof;
        b->n = 0;
        b->used = 0;
        b->eof = false;
        /* The empty ring has room for every batch of this worker: cannot fail. */
        kg_ring_push(&w->empty, b);
        if (eof) break;
    }
    /* Every worker has processed all its packets before any ends its flows,
     * so that what ending a flow looks up (the resolved-address cache) holds
     * everything the input said, whatever the order the workers ran in. The
     * epoch slot stays quiescent-updated while waiting. */
    kg_epoch_offline(w->epoch, w->id);
    pthread_barrier_wait(w->end_barrier);
    worker_quiescent(w);
    kg_dissector_flush(w->dis);
    kg_epoch_offline(w->epoch, w->id);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

/* Live ("workers") mode: the worker reads its own capture handle, one of
 * an AF_PACKET fanout group, and runs each packet to completion. A read
 * timeout lets it expire idle flows by the wall clock when traffic stops. */
static void *worker_live_main(void *arg)
{
    struct worker *w = arg;
    struct kg_err err = {{0}};
    uint64_t last_expire = kg_realtime_us();
    uint64_t n = 0, drain_until = 0;
    for (;;) {
        struct kg_packet pkt;
        worker_quiescent(w);
        int rc = kg_capture_next(w->cap, &pkt, &err);
        if (rc == 1) {
            kg_dissector_process(w->dis, &pkt);
            if ((++n & 4095) == 0) {
                worker_maybe_publish(w);
                /* Traffic that never pauses never times the read out: on stop,
                 * drain for at most a second, then go. */
                if (atomic_load(w->p->stop)) {
                    uint64_t now = kg_monotonic_ns();
                    if (!drain_until) drain_until = now + 1000000000ull;
                    else if (now > drain_until) break;
                }
            }
            continue;
        }
        /* rc 0: the read timed out, the capture ring is empty. On stop, what
         * was still in the ring has been read (rc 1 above) before this. */
        if (rc == KG_ERR_EOF || (rc == 0 && atomic_load(w->p->stop))) break;
        if (rc < 0) {
            kg_log(KG_LOG_ERROR, "capture", "%s", err.msg);
            break;
        }
        uint64_t now = kg_realtime_us();
        if (now - last_expire >= 1000000u) {
            kg_dissector_expire(w->dis, now);
            last_expire = now;
        }
        worker_maybe_publish(w);
    }
    worker_quiescent(w);
    kg_dissector_flush(w->dis);
    kg_epoch_offline(w->epoch, w->id);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

/* ---- export -------------------------------------------------------------------- */

/* Alerts and metadata events go to the first nalert_sinks sinks; stats,
 * reload and error events (control) to the others when stats.outputs names
 * any, else to the same ones. */
static void sinks_write(const struct kg_pipeline_params *p, const struct kg_msg *m, bool control)
{
    static struct kg_ratelimit rl;
    size_t from = 0, to = p->nalert_sinks;
    if (control && p->nsinks > p->nalert_sinks) from = p->nalert_sinks, to = p->nsinks;
    for (size_t i = from; i < to; i++) {
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
                sinks_write(p, m, false);
                free(m);
                got++;
            }
            if (!done || kg_ring_count(&w->out)) all_done = false;
        }
        if (x->ctl) {
            bool cdone = atomic_load(&x->ctl_done);
            struct kg_msg *m;
            while ((m = kg_ring_pop(&x->ctl->ring))) {
                sinks_write(p, m, true);
                free(m);
                got++;
            }
            if (!cdone) all_done = false;
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
    /* Whatever a sink refused for good, or still holds in memory only, is
     * reported and makes the run fail; what it holds in its disk spool is
     * kept for the next start (docs/OUTPUTS.md). */
    for (size_t i = 0; i < p->nsinks; i++) {
        struct kg_sink_stats st;
        kg_sink_get_stats(p->sinks[i], &st);
        uint64_t held = st.written - st.delivered - KG_MIN(st.failed, st.written - st.delivered);
        uint64_t lost = st.failed + (st.durable ? 0 : held);
        if (st.durable && held)
            kg_log(KG_LOG_WARN, "export", "%s: %" PRIu64 " events kept in the spool for the next start",
                   kg_sink_name(p->sinks[i]), held);
        if (lost) {
            kg_log(KG_LOG_ERROR, "export", "%s: %" PRIu64 " events could not be delivered",
                   kg_sink_name(p->sinks[i]), lost);
            x->undelivered += lost;
        }
    }
    free(retry);
    return NULL;
}


/* ---- thread start and stop, shared by both modes ----------------------------------- */

struct run {
    struct kg_epoch epoch;
    struct kg_control ctl;
    struct exporter x;
    struct collect_ctx cc;
};

static int start_threads(const struct kg_pipeline_params *p, struct worker *workers, uint32_t nw,
                         void *(*worker_fn)(void *), struct run *r, struct kg_pipeline_stats *st,
                         struct kg_err *err)
{
    st->started = true;
    if (kg_epoch_init(&r->epoch, nw) < 0) return kg_err_set(err, KG_ERR_NOMEM, "cannot allocate epochs");
    for (uint32_t i = 0; i < nw; i++) {
        workers[i].epoch = &r->epoch;
        workers[i].set = atomic_load(&p->indicators->cur);
    }
    r->cc = (struct collect_ctx){.workers = workers, .nw = nw, .live = nw && workers[0].live};
    int rc = kg_control_start(&r->ctl, p, &r->epoch, collect_stats, &r->cc, err);
    if (rc < 0) {
        kg_epoch_destroy(&r->epoch);
        return rc;
    }
    r->x = (struct exporter){.p = p, .workers = workers, .nworkers = nw, .ctl = &r->ctl};
    atomic_init(&r->x.ctl_done, false);
    for (uint32_t i = 0; i < nw; i++) pthread_create(&workers[i].th, NULL, worker_fn, &workers[i]);
    pthread_create(&r->x.th, NULL, export_main, &r->x);
    return 0;
}

/* Joins the workers (they have been told to finish), then the control
 * thread, then the export thread once everything has been drained. */
static void join_threads(struct worker *workers, uint32_t nw, struct run *r)
{
    for (uint32_t i = 0; i < nw; i++) pthread_join(workers[i].th, NULL);
    kg_control_stop(&r->ctl);
    atomic_store(&r->x.ctl_done, true);
    pthread_join(r->x.th, NULL);
    kg_control_destroy(&r->ctl);
    kg_epoch_destroy(&r->epoch);
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
    w->nbatches = w->live ? 0 : cfg->ring_size;
    uint32_t bp = cfg->batch_packets;
    if ((!w->live && (kg_ring_init(&w->in, w->nbatches) || kg_ring_init(&w->empty, w->nbatches))) ||
        kg_ring_init(&w->out, cfg->alert_queue))
        return kg_err_set(err, KG_ERR_NOMEM, "cannot allocate pipeline rings");
    w->batches = w->nbatches ? kg_xcalloc(w->nbatches, sizeof(*w->batches)) : NULL;
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
        .dedup_window_ms = cfg->capture_dedup_ms,
        .defrag_max_bytes = (uint64_t)cfg->defrag_max_mb * 1024u * 1024u,
        .defrag_timeout_s = cfg->defrag_timeout,
        .cert_details = cfg->events_tls,
    };
    w->dis = kg_dissector_new(&dc, on_observation, w, err);
    if (!w->dis) return KG_ERR_NOMEM;
    w->threshold = kg_threshold_new(65536, err);
    if (!w->threshold) return KG_ERR_NOMEM;
    kg_buf_init(&w->fmt);
    atomic_init(&w->done, false);
    return 0;
}

static void worker_destroy(struct worker *w)
{
    kg_dissector_free(w->dis);
    kg_threshold_free(w->threshold);
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
    kg_capture_free(w->cap);
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

static int run_file(const struct kg_pipeline_params *p, struct kg_pipeline_stats *st, struct kg_err *err)
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
    pthread_barrier_t end_barrier;
    pthread_barrier_init(&end_barrier, NULL, nw);
    for (uint32_t i = 0; i < nw; i++) workers[i].end_barrier = &end_barrier;
    struct run r;
    if ((rc = start_threads(p, workers, nw, worker_main, &r, st, err)) < 0) {
        pthread_barrier_destroy(&end_barrier);
        for (uint32_t j = 0; j < nw; j++) worker_destroy(&workers[j]);
        free(workers);
        for (size_t j = 0; j < ncap; j++) kg_capture_free(caps[j]);
        free(caps);
        return rc;
    }

    /* Reader loop. */
    struct kg_batch **cur = kg_xcalloc(nw, sizeof(*cur));
    for (uint32_t i = 0; i < nw; i++) cur[i] = take_batch(&workers[i], st);
    for (size_t c = 0; c < ncap && !atomic_load(p->stop); c++) {
        struct kg_packet pkt;
        struct kg_err rerr = {{0}};
        int got;
        while (!atomic_load(p->stop) && (got = kg_capture_next(caps[c], &pkt, &rerr)) != KG_ERR_EOF) {
            if (got < 0) {
                /* A damaged or truncated file: keep what was read, say so. */
                kg_log(KG_LOG_WARN, "capture", "%s", rerr.msg);
                st->read_errors++;
                break;
            }
            if (got == 0) continue;
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
    join_threads(workers, nw, &r);
    pthread_barrier_destroy(&end_barrier);

    for (uint32_t i = 0; i < nw; i++) {
        sum_dissect(&st->dissect, kg_dissector_stats(workers[i].dis));
        st->alerts += workers[i].alerts;
        st->alerts_waited += workers[i].alerts_waited;
        st->alerts_suppressed += workers[i].suppressed;
        st->alerts_thresholded += workers[i].thresholded;
        worker_destroy(&workers[i]);
    }
    st->alerts_undelivered = r.x.undelivered;
    st->reloads = r.ctl.reloads;
    st->reloads_failed = r.ctl.reloads_failed;
    free(workers);
    for (size_t j = 0; j < ncap; j++) kg_capture_free(caps[j]);
    free(caps);
    if (r.x.undelivered)
        return kg_err_set(err, KG_ERR_IO, "%" PRIu64 " alerts could not be delivered", r.x.undelivered);
    return 0;
}

/* ---- live mode ------------------------------------------------------------------ */

/* Opens capture.threads handles per interface; with more than one, they
 * join one fanout group per interface (group ids unique to this process). */
static int open_live(const struct kg_pipeline_params *p, struct worker *workers, uint32_t nw, struct kg_err *err)
{
    const struct kg_config *cfg = p->cfg;
    uint32_t threads = cfg->capture_threads ? cfg->capture_threads : 1;
    for (uint32_t i = 0; i < nw; i++) {
        uint32_t iface = i / threads;
        const char *name = cfg->capture_ifaces.items[iface];
        struct kg_capture *c = kg_capture_new("pcap_live", name, err);
        if (!c) return KG_ERR_INVAL;
        workers[i].cap = c;
        kg_capture_set_iface_index(c, (uint16_t)iface);
        kg_capture_set_snaplen(c, cfg->capture_snaplen);
        kg_capture_set_promisc(c, cfg->capture_promisc);
        kg_capture_set_buffer_size(c, cfg->capture_buffer_mb * 1024u * 1024u);
        kg_capture_set_timeout_ms(c, 100);
        if (cfg->capture_bpf && cfg->capture_bpf[0]) kg_capture_set_filter(c, cfg->capture_bpf);
        int rc = kg_capture_start(c, err);
        if (rc < 0) return rc;
        if (threads > 1) {
            uint16_t group = (uint16_t)(((uint32_t)getpid() * 7u + iface) & 0xffffu);
            if ((rc = kg_capture_set_fanout(c, group)) < 0)
                return kg_err_set(err, rc, "%s: cannot join AF_PACKET fanout group %u", name, group);
        }
    }
    return 0;
}

static void log_capture_stats(const struct kg_config *cfg, struct worker *workers, uint32_t nw)
{
    uint32_t threads = cfg->capture_threads ? cfg->capture_threads : 1;
    for (size_t iface = 0; iface < cfg->capture_ifaces.count; iface++) {
        struct kg_capture_stats sum = {0};
        for (uint32_t t = 0; t < threads; t++) {
            uint32_t i = (uint32_t)iface * threads + t;
            if (i >= nw || !workers[i].cap) continue;
            struct kg_capture_stats cs;
            kg_capture_get_stats(workers[i].cap, &cs);
            sum.packets += cs.packets;
            sum.bytes += cs.bytes;
            sum.kernel_drops += cs.kernel_drops;
            /* Interface drops are counted by the interface, and every handle of
             * the fanout group reports the same counter: take it once. */
            sum.iface_drops = KG_MAX(sum.iface_drops, cs.iface_drops);
        }
        kg_log(KG_LOG_INFO, "capture",
               "%s: packets %" PRIu64 ", bytes %" PRIu64 ", kernel drops %" PRIu64 ", interface drops %" PRIu64,
               cfg->capture_ifaces.items[iface], sum.packets, sum.bytes, sum.kernel_drops, sum.iface_drops);
    }
}

static int run_live(const struct kg_pipeline_params *p, struct kg_pipeline_stats *st, struct kg_err *err)
{
    const struct kg_config *cfg = p->cfg;
    uint32_t threads = cfg->capture_threads ? cfg->capture_threads : 1;
    uint32_t nw = (uint32_t)cfg->capture_ifaces.count * threads;
    memset(st, 0, sizeof(*st));
    int rc;
    struct worker *workers = kg_xcalloc(nw, sizeof(*workers));
    for (uint32_t i = 0; i < nw; i++) workers[i].live = true;
    for (uint32_t i = 0; i < nw; i++) {
        if ((rc = worker_init(&workers[i], i, p, err)) < 0) goto fail;
    }
    if ((rc = open_live(p, workers, nw, err)) < 0) goto fail;
    kg_log(KG_LOG_INFO, "capture", "capturing on %zu interface(s), %u thread(s) each",
           cfg->capture_ifaces.count, threads);

    struct run r;
    if ((rc = start_threads(p, workers, nw, worker_live_main, &r, st, err)) < 0) goto fail;

    /* The main thread waits for SIGINT/SIGTERM, then stops the captures. */
    while (!atomic_load(p->stop)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    /* Each worker stops at its next read timeout (<= 100 ms) after it has
     * drained its capture ring: packets the kernel already captured are
     * processed, not lost. */
    join_threads(workers, nw, &r);

    log_capture_stats(cfg, workers, nw);
    for (uint32_t i = 0; i < nw; i++) {
        struct kg_capture_stats cs;
        kg_capture_get_stats(workers[i].cap, &cs);
        st->packets_read += cs.packets;
        st->bytes_read += cs.bytes;
        sum_dissect(&st->dissect, kg_dissector_stats(workers[i].dis));
        st->alerts += workers[i].alerts;
        st->alerts_dropped += workers[i].alerts_dropped;
        st->alerts_suppressed += workers[i].suppressed;
        st->alerts_thresholded += workers[i].thresholded;
        worker_destroy(&workers[i]);
    }
    free(workers);
    st->alerts_undelivered = r.x.undelivered;
    st->reloads = r.ctl.reloads;
    st->reloads_failed = r.ctl.reloads_failed;
    if (r.x.undelivered)
        return kg_err_set(err, KG_ERR_IO, "%" PRIu64 " alerts could not be delivered", r.x.undelivered);
    return 0;

fail:
    for (uint32_t i = 0; i < nw; i++) worker_destroy(&workers[i]);
    free(workers);
    return rc;
}

int kg_pipeline_run(const struct kg_pipeline_params *p, struct kg_pipeline_stats *st, struct kg_err *err)
{
    if (p->cfg->capture_ifaces.count) return run_live(p, st, err);
    return run_file(p, st, err);
}
