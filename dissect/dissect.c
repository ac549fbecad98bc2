/*
 * dissect/dissect.c — the per-worker dissector: decode, find the flow, run
 * the application parsers and nDPI, and report observations.
 *
 * Threads: a dissector is owned by one worker thread. It owns that worker's
 * flow table, its nDPI detection module (nDPI modules are not thread-safe,
 * hence one per worker) and a bounded pool of nDPI flow states.
 *
 * What comes from where: DNS question names and HTTP requests are parsed
 * here (dissect_dns.c, dissect_http.c) because nDPI 4.2 keeps one name and
 * one request per flow; the TLS ClientHello (SNI, ALPN, JA3, JA4) and the
 * server certificate of TLS over TCP, and the client Initial of QUIC, are
 * reassembled and parsed here too (dissect_tls.c, dissect_quic.c), because
 * nDPI 4.2 departs from the JA3 specification, has no JA4 and misses QUIC
 * Initials whose CRYPTO frames are reordered or span packets. nDPI gives
 * the application protocol and, as a fallback, the SNI of what our parsers
 * do not read (Google QUIC). nDPI sees a flow until it has detected the
 * protocol and has nothing more to extract (ndpi_extra_dissection_possible),
 * or gives up after KG_NDPI_MAX_PACKETS; its state then returns to the pool.
 */
#include "dissect/defrag.h"
#include "dissect/dissect_int.h"
#include "dissect/dissect_parsers.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ndpi/ndpi_api.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define KG_NDPI_MAX_PACKETS 48 /* packets given to nDPI per flow at most */

struct kg_dissector {
    struct kg_dissector_config cfg;
    kg_observe_fn cb;
    void *user;
    struct kg_flow_table ft;
    struct ndpi_detection_module_struct *ndpi;
    /* pool of nDPI flow states: at most one per flow slot */
    struct ndpi_flow_struct **ndpi_free;
    uint32_t ndpi_nfree, ndpi_allocated;
    char **proto_names; /* lower-cased nDPI protocol names, by id */
    uint32_t nproto_names;
    uint64_t flow_counter;
    uint64_t timeout_us[KG_LRU_COUNT];
    uint64_t stream_bytes, stream_budget; /* handshake buffers: bytes held / cap */
    /* SPAN duplicate filter: recent frame hashes, direct-mapped */
    struct dedup_slot {
        uint64_t hash;
        uint64_t ts_us;
    } *dedup;
    uint64_t dedup_window_us;
    struct kg_defrag *defrag; /* IPv4/IPv6 reassembly (dissect/defrag.c) */
    struct cert_cache_entry *cert_cache;
    /* The DNS message being parsed: names are copied into the arena, since
     * the parser's are valid only during its callbacks. */
    struct kg_dns_msg dns_msg;
    char dns_arena[(KG_DNS_MSG_MAX_QUESTIONS + KG_DNS_MSG_MAX_ANSWERS * 2) * KG_DNS_NAME_MAX];
    size_t dns_arena_used;
    struct kg_dissect_stats st;
};

/* ---- helpers ------------------------------------------------------------- */

const char *kg_addr_str(uint8_t family, const uint8_t *addr, char *buf)
{
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, buf, 46)) kg_strlcpy(buf, "?", 46);
    return buf;
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* flow_id: unique within a run (a bijection of worker and counter), below
 * 2^52 so that every JSON reader, JavaScript's included, reads it exactly,
 * and scrambled so that ids do not look like sequence numbers. */
static uint64_t flow_id_of(uint32_t worker, uint64_t counter)
{
    const uint64_t m = (1ull << 52) - 1;
    uint64_t x = ((uint64_t)(worker & 0xfff) << 40 | (counter & ((1ull << 40) - 1))) & m;
    for (int i = 0; i < 3; i++) {
        x = (x * 0x9e3779b97f4a7c15ull + 0x6b6167616d69ull) & m; /* odd multiplier: invertible mod 2^52 */
        x ^= x >> 26;                                             /* invertible on 52 bits */
    }
    return x ? x : 1;
}

static void observe(struct kg_dissector *d, enum kg_obs_type type, struct kg_flow *f, uint64_t ts,
                    const char *value, size_t len, bool to_server)
{
    struct kg_observation o = {
        .type = type, .flow = &f->info, .ts_us = ts, .value = value, .value_len = len, .to_server = to_server};
    d->cb(d->user, &o);
}

/* ---- nDPI ------------------------------------------------------------------ */

static struct ndpi_flow_struct *ndpi_flow_get(struct kg_dissector *d)
{
    if (d->ndpi_nfree) return d->ndpi_free[--d->ndpi_nfree];
    if (d->ndpi_allocated >= d->ft.max_flows) return NULL;
    struct ndpi_flow_struct *nf = calloc(1, ndpi_detection_get_sizeof_ndpi_flow_struct());
    if (nf) d->ndpi_allocated++;
    return nf;
}

static void ndpi_flow_put(struct kg_dissector *d, struct ndpi_flow_struct *nf)
{
    ndpi_free_flow_data(nf); /* strings nDPI allocated for this flow */
    memset(nf, 0, ndpi_detection_get_sizeof_ndpi_flow_struct());
    d->ndpi_free[d->ndpi_nfree++] = nf;
}

static const char *proto_name(struct kg_dissector *d, uint16_t id)
{
    switch (id) {
    case NDPI_PROTOCOL_TLS: return "tls";
    case NDPI_PROTOCOL_DTLS: return "dtls";
    case NDPI_PROTOCOL_QUIC: return "quic";
    case NDPI_PROTOCOL_DNS:
    case NDPI_PROTOCOL_MDNS:
    case NDPI_PROTOCOL_LLMNR: return "dns";
    case NDPI_PROTOCOL_HTTP: return "http";
    default: break;
    }
    if (id < d->nproto_names && d->proto_names[id]) return d->proto_names[id];
    return NULL;
}

static bool is_tls_like(uint16_t id)
{
    return id == NDPI_PROTOCOL_TLS || id == NDPI_PROTOCOL_QUIC || id == NDPI_PROTOCOL_DTLS;
}

const char *kg_dissect_risk_name(unsigned bit)
{
    if (bit == 0 || bit >= NDPI_MAX_RISK) return NULL;
    return ndpi_risk2str((ndpi_risk_enum)bit);
}

/* Records nDPI's verdict on the flow: protocol, category. */
static void ndpi_verdict(struct kg_dissector *d, struct kg_flow *f, ndpi_protocol proto)
{
    ndpi_protocol2name(d->ndpi, proto, f->info.ndpi_proto, sizeof(f->info.ndpi_proto));
    f->info.ndpi_category = ndpi_category_get_name(d->ndpi, proto.category);
}

static void ndpi_release(struct kg_dissector *d, struct kg_flow *f)
{
    if (!f->ndpi) return;
    f->info.ndpi_risk |= f->ndpi->risk;
    ndpi_flow_put(d, f->ndpi);
    f->ndpi = NULL;
}

static void handshake_emit(struct kg_dissector *d, struct kg_flow *f, uint64_t ts, const struct kg_x509_info *cert,
                           bool quic);

/* Takes the SNI nDPI found when our own parsers found none (Google QUIC,
 * or a ClientHello our parser rejected). JA3 and the certificate come only
 * from our parsers, which follow the specifications. */
static void ndpi_harvest(struct kg_dissector *d, struct kg_flow *f, ndpi_protocol proto, uint64_t ts,
                         bool to_server)
{
    struct ndpi_flow_struct *nf = f->ndpi;
    bool tls = is_tls_like(proto.master_protocol) || is_tls_like(proto.app_protocol);
    if (!tls || f->sni_done || !nf->host_server_name[0]) return;
    if (f->tls_state[0] == 1 || f->tls_state[1] == 1 || (f->quic && !f->quic_done)) return;
    f->sni_done = true;
    kg_strlcpy(f->info.sni, nf->host_server_name, sizeof(f->info.sni));
    observe(d, KG_OBS_TLS_SNI, f, ts, f->info.sni, strlen(f->info.sni), to_server);
    bool quic = proto.master_protocol == NDPI_PROTOCOL_QUIC || proto.app_protocol == NDPI_PROTOCOL_QUIC;
    if (quic) handshake_emit(d, f, ts, NULL, true);
}

static void run_ndpi(struct kg_dissector *d, struct kg_flow *f, const struct kg_decoded *dec, uint64_t ts,
                     bool to_server)
{
    struct ndpi_flow_struct *nf = f->ndpi;
    uint16_t len = dec->l3_len > 65535 ? 65535 : (uint16_t)dec->l3_len;
    ndpi_protocol proto = ndpi_detection_process_packet(d->ndpi, nf, dec->l3, len, ts / 1000);
    f->ndpi_packets++;
    if (proto.app_protocol != NDPI_PROTOCOL_UNKNOWN || proto.master_protocol != NDPI_PROTOCOL_UNKNOWN) {
        if (!f->ndpi_detected) {
            f->ndpi_detected = true;
            const char *name = proto_name(d, proto.master_protocol ? proto.master_protocol
                                                                   : proto.app_protocol);
            if (name && !f->info.app_proto) f->info.app_proto = name;
            ndpi_verdict(d, f, proto);
        }
        f->info.ndpi_risk |= nf->risk;
        ndpi_harvest(d, f, proto, ts, to_server);
        if (!ndpi_extra_dissection_possible(d->ndpi, nf)) ndpi_release(d, f);
    }
    if (f->ndpi && f->ndpi_packets >= KG_NDPI_MAX_PACKETS) {
        if (!f->ndpi_detected) {
            uint8_t guessed = 0;
            proto = ndpi_detection_giveup(d->ndpi, nf, 1, &guessed);
            const char *name = proto_name(d, proto.master_protocol ? proto.master_protocol
                                                                   : proto.app_protocol);
            if (name && !f->info.app_proto) f->info.app_proto = name;
            if (proto.app_protocol || proto.master_protocol) ndpi_verdict(d, f, proto);
        }
        ndpi_release(d, f);
    }
}

/* ---- DNS ------------------------------------------------------------------- */

#define KG_DNS_MAX_QUESTIONS 64 /* questions reported per message */

struct dns_ctx {
    struct kg_dissector *d;
    struct kg_flow *f;
    uint64_t ts;
    bool to_server;
    unsigned questions;
};

static const char *dns_keep(struct kg_dissector *d, const char *name, size_t len)
{
    if (len >= sizeof(d->dns_arena) - d->dns_arena_used) return NULL;
    char *p = d->dns_arena + d->dns_arena_used;
    memcpy(p, name, len);
    p[len] = '\0';
    d->dns_arena_used += len + 1;
    return p;
}

static void dns_question(void *user, const char *name, size_t len, uint16_t qtype, uint16_t qclass)
{
    struct dns_ctx *c = user;
    (void)qclass;
    struct kg_dns_msg *m = &c->d->dns_msg;
    if (m->nquestions < KG_DNS_MSG_MAX_QUESTIONS) {
        const char *kept = dns_keep(c->d, name, len);
        if (kept) {
            m->questions[m->nquestions].name = kept;
            m->questions[m->nquestions].len = len;
            m->questions[m->nquestions].type = qtype;
            if (m->nquestions == 0) {
                m->qname = kept;
                m->qname_len = len;
                m->qtype = qtype;
            }
            m->nquestions++;
        }
    }
    if (len == 0) return; /* the root: nothing to match */
    /* Real messages carry one question; a message stuffed with thousands
     * (a 64 KiB TCP message holds ~10,000) is reported up to a bound. */
    if (++c->questions > KG_DNS_MAX_QUESTIONS) {
        if (c->questions == KG_DNS_MAX_QUESTIONS + 1) c->d->st.dns_questions_capped++;
        return;
    }
    struct kg_observation o = {.type = KG_OBS_DNS_QUERY,
                               .flow = &c->f->info,
                               .ts_us = c->ts,
                               .value = name,
                               .value_len = len,
                               .dns_qtype = qtype,
                               .to_server = c->to_server};
    c->d->cb(c->d->user, &o);
}

static void dns_answer(void *user, const struct kg_dns_answer *a)
{
    struct dns_ctx *c = user;
    struct kg_dns_msg *m = &c->d->dns_msg;
    if (a->addr_family) {
        /* Every answer address is reported for matching, also past the
         * KG_DNS_MSG_MAX_ANSWERS kept for the dns event: padding a response
         * with benign records must not hide a listed address. */
        struct kg_observation o = {.type = KG_OBS_DNS_ANSWER,
                                   .flow = &c->f->info,
                                   .ts_us = c->ts,
                                   .value = m->qname ? m->qname : "",
                                   .value_len = m->qname_len,
                                   .dns_answer_family = a->addr_family,
                                   .dns_answer_ttl = a->ttl,
                                   .to_server = c->to_server};
        memcpy(o.dns_answer_addr, a->addr, sizeof(o.dns_answer_addr));
        c->d->cb(c->d->user, &o);
    }
    if (m->nanswers >= KG_DNS_MSG_MAX_ANSWERS) return;
    struct kg_dns_msg_answer *x = &m->answers[m->nanswers];
    memset(x, 0, sizeof(*x));
    x->name = dns_keep(c->d, a->name, a->name_len);
    if (!x->name) return;
    x->name_len = a->name_len;
    x->rrtype = a->rrtype;
    x->ttl = a->ttl;
    x->family = a->addr_family;
    memcpy(x->addr, a->addr, sizeof(x->addr));
    if (a->target && (x->target = dns_keep(c->d, a->target, a->target_len))) x->target_len = a->target_len;
    m->nanswers++;
}

static void dns_message(struct kg_dissector *d, struct kg_flow *f, const uint8_t *p, size_t len, uint64_t ts,
                        bool to_server)
{
    struct dns_ctx c = {d, f, ts, to_server, 0};
    struct kg_dns_msg_info info;
    d->st.dns_messages++;
    memset(&d->dns_msg, 0, offsetof(struct kg_dns_msg, answers));
    d->dns_msg.nquestions = 0;
    d->dns_arena_used = 0;
    /* Set before parsing: alerts raised from the questions carry it. */
    const char *prev = f->info.app_proto;
    if (!prev) f->info.app_proto = "dns";
    int r = kg_dns_parse_message_full(p, len, &info, dns_question, dns_answer, &c);
    if (r < 0) {
        d->st.dns_malformed++;
        if (!c.questions && !d->dns_msg.nanswers) {
            f->info.app_proto = prev;
            return;
        }
    }
    if (len < 12) return;
    d->dns_msg.id = info.id;
    d->dns_msg.response = info.is_response;
    d->dns_msg.rcode = info.rcode;
    struct kg_observation o = {.type = KG_OBS_DNS_MESSAGE, .flow = &f->info, .ts_us = ts, .dns = &d->dns_msg,
                               .to_server = to_server};
    d->cb(d->user, &o);
}

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Parses complete length-prefixed messages at p; returns bytes consumed. */
static size_t dns_tcp_messages(struct kg_dissector *d, struct kg_flow *f, const uint8_t *p, size_t len,
                               uint64_t ts, bool to_server)
{
    size_t off = 0;
    while (len - off >= 2) {
        size_t mlen = rd16(p + off);
        if (len - off - 2 < mlen) break;
        dns_message(d, f, p + off + 2, mlen, ts, to_server);
        off += 2 + mlen;
    }
    return off;
}

/* DNS over TCP (RFC 1035 4.2.2, RFC 7766): messages may share a segment or
 * span several. Whole messages are parsed in place; only a partial message
 * is copied, into a per-direction buffer allocated on first need. */
static void dns_tcp(struct kg_dissector *d, struct kg_flow *f, const struct kg_decoded *dec, uint64_t ts,
                    bool to_server)
{
    int dir = to_server ? 0 : 1;
    struct kg_dns_tcp_buf *b = f->dns_tcp[dir];
    const uint8_t *p = dec->payload;
    size_t len = dec->payload_len;
    uint32_t seq = dec->tcp_seq;
    if (dec->tcp_flags & KG_TCP_SYN) return;

    if (b && b->len) {
        int32_t delta = (int32_t)(seq - b->next_seq);
        if (delta < 0) { /* retransmission overlapping what we have */
            if ((size_t)-delta >= len) return;
            p += -delta, len -= (size_t)-delta, seq = b->next_seq;
        } else if (delta > 0) { /* gap: the partial message cannot be completed */
            d->st.tcp_reassembly_gaps++;
            b->len = 0;
        }
    }
    if (b && b->len) {
        size_t room = KG_DNS_TCP_BUF - b->len;
        size_t take = len < room ? len : room;
        memcpy(b->data + b->len, p, take);
        b->len += (uint32_t)take;
        b->next_seq = seq + (uint32_t)take;
        size_t used = dns_tcp_messages(d, f, b->data, b->len, ts, to_server);
        memmove(b->data, b->data + used, b->len - used);
        b->len -= (uint32_t)used;
        p += take, len -= take;
        if (len == 0) return;
        /* Buffer full without a complete message cannot happen (max message
         * 65535 + 2 bytes fits); anything left is past a full buffer: drop. */
        return;
    }
    size_t used = dns_tcp_messages(d, f, p, len, ts, to_server);
    if (used == len) return;
    if (!b) {
        b = malloc(sizeof(*b) + KG_DNS_TCP_BUF);
        if (!b) return;
        f->dns_tcp[dir] = b;
    }
    b->len = (uint32_t)(len - used);
    memcpy(b->data, p + used, b->len);
    b->next_seq = seq + (uint32_t)len;
    b->seq_known = true;
}

/* ---- HTTP ------------------------------------------------------------------ */

struct http_ctx {
    struct kg_dissector *d;
    struct kg_flow *f;
    uint64_t ts;
};

/* The request of an HTTP transaction awaiting its response: copies, since
 * the response comes in a later packet. Allocated on a flow's first
 * request, freed with the flow. Long fields are cut (URIs at 2 KiB). */
struct kg_http_pending {
    bool valid;
    uint8_t version_minor;
    char method[16], host[256], uri[2048], ua[512], ctype[128];
    size_t method_len, host_len, uri_len, ua_len, ctype_len;
    bool has_length;
    uint64_t length;
};

static size_t keep_cut(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len < cap ? len : cap;
    if (n) memcpy(dst, src, n);
    return n;
}

static void http_emit(struct kg_dissector *d, struct kg_flow *f, uint64_t ts, const struct kg_http_response *resp)
{
    struct kg_http_pending *h = f->http;
    if (!h || !h->valid) return;
    struct kg_http_txn t = {
        .host = h->host_len ? h->host : NULL, .host_len = h->host_len,
        .uri = h->uri, .uri_len = h->uri_len,
        .method = h->method, .method_len = h->method_len,
        .user_agent = h->ua_len ? h->ua : NULL, .user_agent_len = h->ua_len,
        .content_type = h->ctype_len ? h->ctype : NULL, .content_type_len = h->ctype_len,
        .version_minor = h->version_minor, .has_length = h->has_length, .length = h->length,
    };
    if (resp) {
        t.status = resp->status;
        t.version_minor = resp->version_minor;
        t.content_type = resp->content_type;
        t.content_type_len = resp->content_type ? resp->content_type_len : 0;
        t.has_length = resp->has_content_length;
        t.length = resp->content_length;
    }
    h->valid = false;
    struct kg_observation o = {.type = KG_OBS_HTTP_TXN, .flow = &f->info, .ts_us = ts, .http = &t,
                               .to_server = resp == NULL};
    d->cb(d->user, &o);
}

static void http_request(void *user, const struct kg_http_request *r)
{
    struct http_ctx *c = user;
    struct kg_flow *f = c->f;
    c->d->st.http_requests++;
    if (!f->info.app_proto) f->info.app_proto = "http";
    struct kg_observation o = {.type = KG_OBS_HTTP_REQUEST,
                               .flow = &f->info,
                               .ts_us = c->ts,
                               .value = r->host ? r->host : "",
                               .value_len = r->host ? r->host_len : 0,
                               .http_uri = r->uri,
                               .http_uri_len = r->uri_len,
                               .http_method = r->method,
                               .http_method_len = r->method_len,
                               .http_user_agent = r->user_agent,
                               .http_user_agent_len = r->user_agent ? r->user_agent_len : 0,
                               .to_server = true};
    c->d->cb(c->d->user, &o);

    /* A request while the previous one still waits: that one had no
     * response we could see; report it as it is. */
    http_emit(c->d, f, c->ts, NULL);
    if (!f->http && !(f->http = calloc(1, sizeof(*f->http)))) return;
    struct kg_http_pending *h = f->http;
    h->method_len = keep_cut(h->method, sizeof(h->method), r->method, r->method_len);
    h->uri_len = keep_cut(h->uri, sizeof(h->uri), r->uri, r->uri_len);
    h->host_len = r->host ? keep_cut(h->host, sizeof(h->host), r->host, r->host_len) : 0;
    h->ua_len = r->user_agent ? keep_cut(h->ua, sizeof(h->ua), r->user_agent, r->user_agent_len) : 0;
    h->ctype_len = r->content_type ? keep_cut(h->ctype, sizeof(h->ctype), r->content_type, r->content_type_len) : 0;
    h->version_minor = r->version_minor;
    h->has_length = r->has_content_length;
    h->length = r->content_length;
    h->valid = true;
}

static void http_response(void *user, const struct kg_http_response *resp)
{
    struct http_ctx *c = user;
    if (resp->status < 200) return; /* 1xx: the final response follows */
    http_emit(c->d, c->f, c->ts, resp);
}

/* ---- TLS over TCP and QUIC: handshake reassembly ---------------------------- */

static inline uint32_t rd24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* A ClientHello was parsed: record and report what it says. */
static void client_hello_seen(struct kg_dissector *d, struct kg_flow *f, const struct kg_tls_client_hello *ch,
                              uint64_t ts, bool to_server)
{
    struct kg_flow_info *fi = &f->info;
    f->ch_seen = true;
    kg_strlcpy(fi->ja3, ch->ja3, sizeof(fi->ja3));
    kg_strlcpy(fi->ja4, ch->ja4, sizeof(fi->ja4));
    kg_strlcpy(fi->tls_alpn, ch->alpn, sizeof(fi->tls_alpn));
    fi->tls_version = ch->max_version;
    if (ch->sni[0] && !f->sni_done) {
        f->sni_done = true;
        kg_strlcpy(fi->sni, ch->sni, sizeof(fi->sni));
        observe(d, KG_OBS_TLS_SNI, f, ts, fi->sni, strlen(fi->sni), to_server);
    }
    if (!f->ja3_done) {
        f->ja3_done = true;
        if (fi->ja3[0]) observe(d, KG_OBS_TLS_JA3, f, ts, fi->ja3, strlen(fi->ja3), to_server);
        if (fi->ja4[0]) observe(d, KG_OBS_TLS_JA4, f, ts, fi->ja4, strlen(fi->ja4), to_server);
    }
}

/* Reports the handshake once: when the server certificate is seen, or when
 * the server's clear-text handshake ends without one (TLS 1.3), or at the
 * end of the flow, or right after a QUIC ClientHello. */
static void handshake_emit(struct kg_dissector *d, struct kg_flow *f, uint64_t ts, const struct kg_x509_info *cert,
                           bool quic)
{
    /* Without a ClientHello we read (SSLv2-format hello, capture started
     * mid-handshake, Google QUIC) there is still something to report when a
     * certificate or an SNI (from nDPI) was seen. */
    if (f->hs_emitted || !(f->ch_seen || cert || f->sni_done)) return;
    f->hs_emitted = true;
    struct kg_handshake h = {.quic = quic, .cert = cert};
    struct kg_observation o = {.type = KG_OBS_HANDSHAKE, .flow = &f->info, .ts_us = ts, .handshake = &h,
                               .to_server = false};
    d->cb(d->user, &o);
}

/* Certificate summaries, cached by SHA1 (direct-mapped): decoding a
 * certificate with OpenSSL costs ~100 us, and a busy network sees the same
 * few server certificates over and over. Allocated on first use. */
#define KG_CERT_CACHE 64
struct cert_cache_entry {
    uint8_t sha1[20];
    bool valid, ok;
    struct kg_x509_info info;
};

static const struct kg_x509_info *cert_summary(struct kg_dissector *d, const uint8_t *sha1, const uint8_t *der,
                                               size_t len)
{
    if (!d->cert_cache && !(d->cert_cache = calloc(KG_CERT_CACHE, sizeof(*d->cert_cache)))) return NULL;
    struct cert_cache_entry *e = &d->cert_cache[sha1[0] % KG_CERT_CACHE];
    if (!e->valid || memcmp(e->sha1, sha1, 20) != 0) {
        memcpy(e->sha1, sha1, 20);
        e->ok = kg_x509_summary(der, len, &e->info) == 0;
        e->valid = true;
    } else {
        d->st.tls_cert_cache_hits++;
    }
    return e->ok ? &e->info : NULL;
}

static void cert_seen(struct kg_dissector *d, struct kg_flow *f, const uint8_t *der, size_t len, uint64_t ts,
                      bool to_server)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (f->cert_done || !EVP_Digest(der, len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) return;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        f->info.cert_sha1[2 * i] = hex[md[i] >> 4];
        f->info.cert_sha1[2 * i + 1] = hex[md[i] & 15];
    }
    f->info.cert_sha1[40] = '\0';
    f->cert_done = true;
    d->st.tls_certs++;
    observe(d, KG_OBS_TLS_CERT_SHA1, f, ts, f->info.cert_sha1, 40, to_server);
    handshake_emit(d, f, ts, d->cfg.cert_details ? cert_summary(d, md, der, len) : NULL, false);
}

static void ooo_drop(struct kg_dissector *d, struct kg_tls_stream *s)
{
    for (uint8_t i = 0; i < s->nooo; i++) free(s->ooo[i].data);
    d->stream_bytes -= s->ooo_bytes;
    s->nooo = 0;
    s->ooo_bytes = 0;
}

static void tls_end(struct kg_dissector *d, struct kg_flow *f, int dir)
{
    /* The server's handshake in clear is over (TLS 1.3 encrypts the rest). */
    if (dir == 1 && f->tls_state[1] == 1) handshake_emit(d, f, f->info.last_ts_us, NULL, false);
    struct kg_tls_stream *s = f->tls[dir];
    if (s) {
        ooo_drop(d, s);
        d->stream_bytes -= s->cap;
        free(s->hs);
        free(s);
        f->tls[dir] = NULL;
    }
    f->tls_state[dir] = 2;
}

/* Appends handshake bytes; false when the buffer cannot grow (cap, budget). */
static bool tls_append(struct kg_dissector *d, struct kg_tls_stream *s, const uint8_t *p, size_t n)
{
    if (s->len + n > s->cap) {
        uint32_t ncap = s->cap ? s->cap : 4096;
        while (ncap < s->len + n) ncap *= 2;
        if (ncap > KG_TLS_HS_MAX) return false;
        if (d->stream_bytes + (ncap - s->cap) > d->stream_budget) {
            d->st.stream_budget_exhausted++;
            return false;
        }
        uint8_t *nh = realloc(s->hs, ncap);
        if (!nh) return false;
        d->stream_bytes += ncap - s->cap;
        s->hs = nh;
        s->cap = ncap;
    }
    memcpy(s->hs + s->len, p, n);
    s->len += (uint32_t)n;
    return true;
}

/* Looks at the handshake bytes collected so far. Returns true when this
 * direction is finished (parsed, or hopeless). */
static bool tls_try(struct kg_dissector *d, struct kg_flow *f, struct kg_tls_stream *s, uint64_t ts,
                    bool to_server)
{
    if (s->len < 4) return false;
    if (s->hs[0] == 1) { /* ClientHello */
        uint32_t need = 4 + rd24(s->hs + 1);
        if (need > KG_TLS_HS_MAX) return true;
        if (s->len < need) return false;
        struct kg_tls_client_hello ch;
        d->st.tls_client_hellos++;
        if (kg_tls_parse_client_hello(s->hs, need, 't', &ch) == 0) client_hello_seen(d, f, &ch, ts, to_server);
        else d->st.tls_malformed++;
        return true;
    }
    if (s->hs[0] == 2) { /* ServerHello, then (TLS <= 1.2) Certificate */
        if (!f->info.tls_version_server && s->len >= 4 + rd24(s->hs + 1)) {
            struct kg_tls_server_hello sh;
            if (kg_tls_parse_server_hello(s->hs, 4 + rd24(s->hs + 1), &sh) == 0) {
                kg_strlcpy(f->info.ja3s, sh.ja3s, sizeof(f->info.ja3s));
                f->info.tls_version_server = sh.version ? sh.version : 1;
            }
        }
        const uint8_t *cert;
        size_t cert_len;
        int r = kg_tls_find_server_cert(s->hs, s->len, &cert, &cert_len);
        if (r == 1) cert_seen(d, f, cert, cert_len, ts, to_server);
        if (r < 0) d->st.tls_malformed++;
        return r != 0;
    }
    return true; /* a stream that does not start with a hello: not ours to follow */
}

/* Runs in-order stream bytes through the record layer. Returns false when
 * the direction is finished (tls_end() was called). */
static bool tls_consume(struct kg_dissector *d, struct kg_flow *f, struct kg_tls_stream *s, int dir,
                        const uint8_t *p, size_t len, uint64_t ts, bool to_server)
{
    while (len) {
        if (s->rec_left == 0) { /* RFC 8446 5.1: type(1) version(2) length(2) */
            size_t take = KG_MIN(len, (size_t)(5 - s->hdr_len));
            memcpy(s->hdr + s->hdr_len, p, take);
            s->hdr_len += (uint8_t)take;
            p += take, len -= take;
            if (s->hdr_len < 5) return true;
            s->hdr_len = 0;
            s->rec_type = s->hdr[0];
            s->rec_left = (uint32_t)s->hdr[3] << 8 | s->hdr[4];
            /* Anything but a handshake record (ChangeCipherSpec, alert,
             * application data) ends the part of the handshake in clear. */
            if (s->rec_type != 22 || s->hdr[1] != 3 || s->rec_left == 0 || s->rec_left > 18432) {
                if (s->rec_type == 22) d->st.tls_malformed++;
                tls_end(d, f, dir);
                return false;
            }
            continue;
        }
        size_t take = KG_MIN(len, (size_t)s->rec_left);
        if (!tls_append(d, s, p, take)) {
            tls_end(d, f, dir);
            return false;
        }
        s->rec_left -= (uint32_t)take;
        p += take, len -= take;
        if (tls_try(d, f, s, ts, to_server)) {
            tls_end(d, f, dir);
            return false;
        }
    }
    return true;
}

static void tls_feed(struct kg_dissector *d, struct kg_flow *f, const struct kg_decoded *dec, uint64_t ts,
                     bool to_server)
{
    int dir = to_server ? 0 : 1;
    if (f->tls_state[dir] == 2) return;
    const uint8_t *p = dec->payload;
    size_t len = dec->payload_len;
    uint32_t seq = dec->tcp_seq;
    struct kg_tls_stream *s = f->tls[dir];
    if (f->tls_state[dir] == 0) {
        /* The direction's first data may arrive after a later segment (the SYN
         * told where the data starts): then follow provisionally, holding the
         * early segment, and judge when the first bytes come. */
        bool early = f->tcp_syn_seen[dir] && (int32_t)(seq - f->tcp_data_seq[dir]) > 0;
        /* Follow a direction only if its first bytes are a TLS handshake record. */
        if (!early && (len < 6 || p[0] != 22 || p[1] != 3 || (p[5] != 1 && p[5] != 2))) {
            f->tls_state[dir] = 2;
            return;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
            f->tls_state[dir] = 2;
            return;
        }
        s->next_seq = early ? f->tcp_data_seq[dir] : seq;
        s->verified = !early;
        f->tls[dir] = s;
        f->tls_state[dir] = 1;
        if (!early) f->is_tls = true;
    }
    if (!s->verified && seq == s->next_seq) {
        if (len < 6 || p[0] != 22 || p[1] != 3 || (p[5] != 1 && p[5] != 2)) {
            tls_end(d, f, dir);
            return;
        }
        s->verified = true;
        f->is_tls = true;
    }
    {
        int32_t delta = (int32_t)(seq - s->next_seq);
        if (delta < 0) { /* retransmission, maybe with new bytes at its end */
            if ((size_t)-delta >= len) return;
            p += -delta, len -= (size_t)-delta;
            seq = s->next_seq;
        } else if (delta > 0) {
            /* Ahead of a missing segment: hold a copy (bounded) until the gap
             * fills; beyond the bounds the handshake cannot be read. */
            if (s->nooo < KG_TLS_OOO_MAX && s->ooo_bytes + len <= KG_TLS_OOO_BYTES &&
                d->stream_bytes + len <= d->stream_budget) {
                uint8_t *copy = malloc(len);
                if (copy) {
                    memcpy(copy, p, len);
                    s->ooo[s->nooo].seq = seq;
                    s->ooo[s->nooo].len = (uint32_t)len;
                    s->ooo[s->nooo].data = copy;
                    s->nooo++;
                    s->ooo_bytes += (uint32_t)len;
                    d->stream_bytes += len;
                    return;
                }
            }
            d->st.tcp_reassembly_gaps++;
            tls_end(d, f, dir);
            return;
        }
    }
    s->next_seq = seq + (uint32_t)len;
    if (!tls_consume(d, f, s, dir, p, len, ts, to_server)) return;
    /* The gap may be filled now: take held segments that continue the stream. */
    for (bool progress = true; progress && s->nooo;) {
        progress = false;
        for (uint8_t i = 0; i < s->nooo; i++) {
            int32_t delta = (int32_t)(s->ooo[i].seq - s->next_seq);
            if (delta > 0) continue;
            uint8_t *data = s->ooo[i].data;
            uint32_t dlen = s->ooo[i].len, skip = (uint32_t)-delta;
            s->ooo_bytes -= dlen;
            d->stream_bytes -= dlen;
            s->ooo[i] = s->ooo[--s->nooo];
            progress = true;
            bool alive = true;
            if (skip < dlen) {
                s->next_seq += dlen - skip;
                alive = tls_consume(d, f, s, dir, data + skip, dlen - skip, ts, to_server);
            }
            free(data);
            if (!alive) return; /* tls_end freed the stream and what it held */
            break;
        }
    }
}

static void quic_end(struct kg_dissector *d, struct kg_flow *f)
{
    if (f->quic) {
        d->stream_bytes -= sizeof(*f->quic);
        free(f->quic);
        f->quic = NULL;
    }
    f->quic_done = true;
}

/* QUIC: the client's first Initial packets carry its ClientHello. */
static void quic_feed(struct kg_dissector *d, struct kg_flow *f, const struct kg_decoded *dec, uint64_t ts)
{
    const uint8_t *p = dec->payload;
    size_t len = dec->payload_len;
    if ((p[0] & 0xc0) != 0xc0 || len < 7) return; /* not a long-header packet */
    /* RFC 8999 5.1: the version follows the first byte of every long header
     * (Google QUIC's "Q046" included), readable even when nothing decrypts. */
    if (!f->info.quic_version) f->info.quic_version = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (++f->quic_tries > 8) {
        quic_end(d, f);
        return;
    }
    if (!f->quic) {
        if (d->stream_bytes + sizeof(*f->quic) > d->stream_budget) {
            d->st.stream_budget_exhausted++;
            quic_end(d, f);
            return;
        }
        f->quic = calloc(1, sizeof(*f->quic));
        if (!f->quic) {
            quic_end(d, f);
            return;
        }
        d->stream_bytes += sizeof(*f->quic);
    }
    uint32_t version = 0;
    int r = kg_quic_parse_initial(p, len, f->quic, &version);
    if (r < 0) {
        /* Not a client Initial we can read (Google QUIC, an unknown version,
         * garbage): give up unless an earlier packet already decrypted. */
        d->st.quic_decrypt_failed++;
        if (f->quic->contiguous == 0) quic_end(d, f);
        return;
    }
    if (r == 0) {
        if (f->quic->contiguous == 0) quic_end(d, f);
        return;
    }
    d->st.quic_initials++;
    f->info.quic_version = version;
    f->info.app_proto = "quic";
    struct kg_quic_crypto *c = f->quic;
    if (c->contiguous < 4) return;
    if (c->data[0] != 1) {
        quic_end(d, f);
        return;
    }
    size_t need = 4 + rd24(c->data + 1);
    if (need > KG_QUIC_CRYPTO_MAX) {
        quic_end(d, f);
        return;
    }
    if (c->contiguous < need) return;
    struct kg_tls_client_hello ch;
    d->st.tls_client_hellos++;
    if (kg_tls_parse_client_hello(c->data, need, 'q', &ch) == 0) {
        client_hello_seen(d, f, &ch, ts, true);
        handshake_emit(d, f, ts, NULL, true);
    } else {
        d->st.tls_malformed++;
    }
    quic_end(d, f);
}

/* ---- flows ----------------------------------------------------------------- */

static void end_flow(struct kg_dissector *d, struct kg_flow *f, enum kg_flow_end reason)
{
    /* What is still pending is reported before the flow goes. */
    http_emit(d, f, f->info.last_ts_us, NULL);
    handshake_emit(d, f, f->info.last_ts_us, NULL, false);
    f->info.end_reason = (uint8_t)reason;
    observe(d, KG_OBS_FLOW_END, f, f->info.last_ts_us, NULL, 0, true);
    ndpi_release(d, f);
    tls_end(d, f, 0);
    tls_end(d, f, 1);
    quic_end(d, f);
    free(f->http);
    f->http = NULL;
    free(f->dns_tcp[0]);
    free(f->dns_tcp[1]);
    free(f->marks);
    kg_flow_table_remove(&d->ft, f);
    d->st.flows_ended++;
}

static bool is_dns_port(uint16_t port)
{
    return port == 53 || port == 5353 || port == 5355;
}

static enum kg_lru_class lru_class_of(uint8_t proto)
{
    return proto == 6 ? KG_LRU_TCP : proto == 17 ? KG_LRU_UDP : KG_LRU_OTHER;
}

/* Evicts the least recently active flow of all classes (table full). */
static void evict_one(struct kg_dissector *d)
{
    struct kg_flow *victim = NULL;
    for (int c = 0; c < KG_LRU_COUNT; c++) {
        struct kg_flow *f = kg_flow_table_oldest(&d->ft, (enum kg_lru_class)c);
        if (f && (!victim || f->info.last_ts_us < victim->info.last_ts_us)) victim = f;
    }
    if (victim) {
        d->st.flows_evicted++;
        end_flow(d, victim, KG_END_EVICTED);
    }
}

static void make_ckey(const struct kg_decoded *dec, bool vlan_in_key, struct kg_ckey *k, bool *swapped)
{
    memset(k, 0, sizeof(*k));
    size_t alen = dec->family == 6 ? 16 : 4;
    bool ports = dec->proto == 6 || dec->proto == 17 || dec->proto == 132;
    uint16_t sp = ports ? dec->sport : 0, dp = ports ? dec->dport : 0;
    int c = memcmp(dec->src, dec->dst, alen);
    *swapped = c > 0 || (c == 0 && sp > dp);
    memcpy(k->a, *swapped ? dec->dst : dec->src, alen);
    memcpy(k->b, *swapped ? dec->src : dec->dst, alen);
    k->aport = *swapped ? dp : sp;
    k->bport = *swapped ? sp : dp;
    k->family = dec->family;
    k->proto = dec->proto;
    if (vlan_in_key) {
        k->nvlan = dec->nvlan;
        memcpy(k->vlan, dec->vlan, sizeof(k->vlan));
    }
}

#define KG_DEDUP_SLOTS 8192

/* A frame seen twice within the window is a SPAN duplicate (the switch
 * mirrors both ingress and egress of the same port). Direct-mapped table of
 * recent frame hashes: constant memory, O(1), and a collision only costs a
 * missed duplicate, never a dropped original (the hash covers every byte). */
static bool is_duplicate(struct kg_dissector *d, const struct kg_packet *pkt)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ pkt->caplen;
    const uint8_t *p = pkt->data;
    uint32_t n = pkt->caplen, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix64(h ^ w);
    }
    uint64_t tail = 0;
    memcpy(&tail, p + i, n - i);
    h = mix64(h ^ tail ^ ((uint64_t)pkt->iface << 56));
    struct dedup_slot *s = &d->dedup[h & (KG_DEDUP_SLOTS - 1)];
    bool dup = s->hash == h && pkt->ts_us >= s->ts_us && pkt->ts_us - s->ts_us <= d->dedup_window_us;
    s->hash = h;
    s->ts_us = pkt->ts_us;
    return dup;
}

static void process_decoded(struct kg_dissector *d, struct kg_decoded *dec, const struct kg_packet *pkt);

void kg_dissector_process(struct kg_dissector *d, const struct kg_packet *pkt)
{
    struct kg_decoded dec;
    if (d->dedup && is_duplicate(d, pkt)) {
        d->st.decode_duplicates++;
        return;
    }
    d->st.packets++;
    d->st.bytes += pkt->wirelen;
    switch (kg_decode(pkt, &dec)) {
    case KG_DECODE_OK: break;
    case KG_DECODE_NOT_IP: d->st.decode_not_ip++; return;
    case KG_DECODE_TRUNCATED: d->st.decode_truncated++; return;
    case KG_DECODE_BAD_LINKTYPE: d->st.decode_bad_linktype++; return;
    case KG_DECODE_BAD_L3:
    case KG_DECODE_TOO_DEEP: d->st.decode_bad_l3++; return;
    }
    if (dec.tunnels) d->st.decode_tunnels++;
    if (dec.too_deep) d->st.decode_too_deep++;
    if (dec.is_fragment) {
        /* Reassemble, then dissect the whole datagram as if it had arrived in
         * one piece. It has no link layer: VLANs and tunnel depth come from
         * the fragment that completed it. A reassembled datagram can itself
         * be a fragment (fragmented tunnels): bounded loop. */
        d->st.decode_fragments++;
        struct kg_decoded outer = dec;
        for (int round = 0; dec.is_fragment; round++) {
            const uint8_t *out;
            uint32_t out_len;
            if (round == 2 || kg_defrag_add(d->defrag, dec.family, dec.l3, dec.l3_len, pkt->ts_us, &out,
                                            &out_len) != 1)
                return;
            struct kg_packet whole = {.ts_us = pkt->ts_us, .data = out, .caplen = out_len, .wirelen = out_len,
                                      .linktype = KG_LINK_RAW, .iface = pkt->iface};
            if (kg_decode(&whole, &dec) != KG_DECODE_OK) {
                d->st.decode_bad_l3++;
                return;
            }
            dec.nvlan = outer.nvlan;
            memcpy(dec.vlan, outer.vlan, sizeof(dec.vlan));
            dec.tunnels = (uint8_t)(dec.tunnels + outer.tunnels);
        }
        d->st.reassembled++;
    }
    process_decoded(d, &dec, pkt);
}

/* Everything after decoding: flow lookup, parsers, nDPI, observations. */
static void process_decoded(struct kg_dissector *d, struct kg_decoded *decp, const struct kg_packet *pkt)
{
    struct kg_decoded dec = *decp;
    uint64_t ts = pkt->ts_us;
    struct kg_ckey k;
    bool swapped;
    make_ckey(&dec, d->cfg.vlan_in_key, &k, &swapped);
    uint32_t h = kg_ckey_hash(&k, d->ft.seed);
    struct kg_flow *f = kg_flow_table_find(&d->ft, &k, h);
    bool to_server = true;
    if (f && f->lru_class == KG_LRU_CLOSED && dec.proto == 6 &&
        (dec.tcp_flags & (KG_TCP_SYN | KG_TCP_ACK)) == KG_TCP_SYN) {
        /* The 5-tuple is reused by a new connection: end the old flow. */
        end_flow(d, f, KG_END_CLOSED);
        f = NULL;
    }
    if (!f) {
        enum kg_lru_class cls = lru_class_of(dec.proto);
        f = kg_flow_table_insert(&d->ft, &k, h, cls);
        if (!f) {
            evict_one(d);
            f = kg_flow_table_insert(&d->ft, &k, h, cls);
            if (!f) {
                d->st.flow_alloc_failed++;
                return;
            }
        }
        d->st.flows_created++;
        struct kg_flow_info *fi = &f->info;
        size_t alen = dec.family == 6 ? 16 : 4;
        fi->key.family = dec.family;
        fi->key.proto = dec.proto;
        memcpy(fi->key.saddr, dec.src, alen);
        memcpy(fi->key.daddr, dec.dst, alen);
        bool ports = dec.proto == 6 || dec.proto == 17 || dec.proto == 132;
        fi->key.sport = ports ? dec.sport : 0;
        fi->key.dport = ports ? dec.dport : 0;
        if (dec.proto == 1 || dec.proto == 58) {
            fi->key.sport = dec.icmp_type;
            fi->key.dport = dec.icmp_code;
        }
        fi->first_ts_us = ts;
        fi->nvlan = dec.nvlan;
        memcpy(fi->vlan, dec.vlan, sizeof(fi->vlan));
        fi->flow_id = flow_id_of(d->cfg.worker_id, ++d->flow_counter);
        f->is_dns_port = ports && (is_dns_port(dec.sport) || is_dns_port(dec.dport));
        kg_community_id(&fi->key, 0, fi->community_id);
        f->ndpi = ndpi_flow_get(d);
        if (f->ndpi) d->st.ndpi_flows++;
        observe(d, KG_OBS_FLOW_START, f, ts, NULL, 0, true);
    } else {
        /* The initiator is the sender of the first packet; compare this one. */
        size_t alen = dec.family == 6 ? 16 : 4;
        bool ports = dec.proto == 6 || dec.proto == 17 || dec.proto == 132;
        to_server = memcmp(dec.src, f->info.key.saddr, alen) == 0 &&
                    (!ports || dec.sport == f->info.key.sport);
        if (memcmp(dec.src, dec.dst, alen) == 0 && ports) to_server = dec.sport == f->info.key.sport;
        kg_flow_table_touch(&d->ft, f);
    }
    (void)swapped;
    struct kg_flow_info *fi = &f->info;
    fi->last_ts_us = ts;
    if (dec.proto == 6 && (dec.tcp_flags & KG_TCP_SYN)) {
        int sd = to_server ? 0 : 1;
        f->tcp_data_seq[sd] = dec.tcp_seq + 1;
        f->tcp_syn_seen[sd] = true;
    }
    if (to_server) {
        fi->pkts_toserver++;
        fi->bytes_toserver += pkt->wirelen;
        if (dec.proto == 6) fi->tcp_flags_ts |= dec.tcp_flags;
    } else {
        fi->pkts_toclient++;
        fi->bytes_toclient += pkt->wirelen;
        if (dec.proto == 6) fi->tcp_flags_tc |= dec.tcp_flags;
    }

    if (dec.has_l4 && dec.payload_len) {
        if (f->is_dns_port) {
            if (dec.proto == 17) dns_message(d, f, dec.payload, dec.payload_len, ts, to_server);
            else if (dec.proto == 6) dns_tcp(d, f, &dec, ts, to_server);
        } else if (dec.proto == 6) {
            if (f->tls_state[to_server ? 0 : 1] != 2) tls_feed(d, f, &dec, ts, to_server);
            if (to_server && !f->is_tls) {
                struct http_ctx c = {d, f, ts};
                kg_http_parse_requests(dec.payload, dec.payload_len, http_request, &c);
            } else if (!to_server && f->http && f->http->valid) {
                struct http_ctx c = {d, f, ts};
                kg_http_parse_responses(dec.payload, dec.payload_len, http_response, &c);
            }
        } else if (dec.proto == 17 && to_server) {
            const uint8_t *u = dec.payload;
            if (dec.payload_len >= 25 && u[0] == 22 && u[1] == 0xfe && u[13] == 1 && !f->ja3_done) {
                /* DTLS (RFC 9147 4, RFC 6347 4.1): a 13-byte record header, then
                 * an unfragmented ClientHello with its 12-byte handshake header. */
                size_t rl = (size_t)u[11] << 8 | u[12];
                if (rl > dec.payload_len - 13) rl = dec.payload_len - 13;
                struct kg_tls_client_hello ch;
                d->st.tls_client_hellos++;
                if (kg_tls_parse_client_hello(u + 13, rl, 'd', &ch) == 0) {
                    if (!f->info.app_proto || !strcmp(f->info.app_proto, "unknown")) f->info.app_proto = "dtls";
                    client_hello_seen(d, f, &ch, ts, to_server);
                } else {
                    d->st.tls_malformed++;
                }
            } else if (!f->quic_done) {
                quic_feed(d, f, &dec, ts);
            }
        }
    }
    if (f->ndpi) run_ndpi(d, f, &dec, ts, to_server);

    if (dec.proto == 6 && (dec.tcp_flags & (KG_TCP_FIN | KG_TCP_RST))) {
        /* RFC 9293: FIN from both sides or a RST ends the connection: the
         * flow moves to the short "closed" timeout instead of waiting for
         * the idle one. */
        f->tcp_fin_mask |= (dec.tcp_flags & KG_TCP_RST) ? 3 : (to_server ? 1 : 2);
        if (f->tcp_fin_mask == 3 && f->lru_class != KG_LRU_CLOSED) {
            kg_flow_table_set_class(&d->ft, f, KG_LRU_CLOSED);
            d->st.flows_closed++;
        }
    }
    kg_dissector_expire(d, ts);
}

void kg_dissector_expire(struct kg_dissector *d, uint64_t now_us)
{
    kg_defrag_expire(d->defrag, now_us);
    for (int c = 0; c < KG_LRU_COUNT; c++) {
        struct kg_flow *f;
        while ((f = kg_flow_table_oldest(&d->ft, (enum kg_lru_class)c)) &&
               f->info.last_ts_us + d->timeout_us[c] < now_us) {
            d->st.flows_timed_out++;
            end_flow(d, f, c == KG_LRU_CLOSED ? KG_END_CLOSED : KG_END_TIMEOUT);
        }
    }
}

void kg_dissector_flush(struct kg_dissector *d)
{
    for (int c = 0; c < KG_LRU_COUNT; c++) {
        struct kg_flow *f;
        while ((f = kg_flow_table_oldest(&d->ft, (enum kg_lru_class)c))) end_flow(d, f, KG_END_SHUTDOWN);
    }
}

const struct kg_dissect_stats *kg_dissector_stats(const struct kg_dissector *d)
{
    struct kg_dissector *m = (struct kg_dissector *)d;
    m->st.flows_active = d->ft.active;
    const struct kg_defrag_stats *ds = kg_defrag_stats(d->defrag);
    m->st.defrag_timeouts = ds->timeouts;
    m->st.defrag_overlaps = ds->overlaps;
    m->st.defrag_conflicts = ds->overlap_conflicts;
    m->st.defrag_evicted = ds->evicted_for_memory;
    m->st.defrag_invalid = ds->invalid + ds->too_big;
    m->st.defrag_bytes_held = ds->bytes_held;
    return &d->st;
}

struct kg_dissector *kg_dissector_new(const struct kg_dissector_config *cfg, kg_observe_fn cb, void *user,
                                      struct kg_err *err)
{
    struct kg_dissector *d = kg_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    if (!d->cfg.max_flows) d->cfg.max_flows = 65536;
    if (!d->cfg.tcp_timeout_s) d->cfg.tcp_timeout_s = 600;
    if (!d->cfg.udp_timeout_s) d->cfg.udp_timeout_s = 120;
    if (!d->cfg.other_timeout_s) d->cfg.other_timeout_s = 60;
    d->timeout_us[KG_LRU_TCP] = (uint64_t)d->cfg.tcp_timeout_s * 1000000u;
    d->timeout_us[KG_LRU_UDP] = (uint64_t)d->cfg.udp_timeout_s * 1000000u;
    d->timeout_us[KG_LRU_OTHER] = (uint64_t)d->cfg.other_timeout_s * 1000000u;
    if (!d->cfg.closed_timeout_s) d->cfg.closed_timeout_s = 5;
    d->timeout_us[KG_LRU_CLOSED] = (uint64_t)d->cfg.closed_timeout_s * 1000000u;
    d->defrag = kg_defrag_new(d->cfg.defrag_max_bytes ? d->cfg.defrag_max_bytes : 64ull << 20,
                              (uint64_t)(d->cfg.defrag_timeout_s ? d->cfg.defrag_timeout_s : 30) * 1000000u);
    if (!d->defrag) {
        free(d);
        kg_err_set(err, KG_ERR_NOMEM, "cannot allocate the IP reassembly pool");
        return NULL;
    }
    if (d->cfg.dedup_window_ms) {
        d->dedup = kg_xcalloc(KG_DEDUP_SLOTS, sizeof(*d->dedup));
        d->dedup_window_us = (uint64_t)d->cfg.dedup_window_ms * 1000u;
    }
    d->cb = cb;
    d->user = user;
    d->stream_budget = 64ull * 1024 * 1024; /* handshake reassembly bytes per worker */
    uint64_t seed = mix64(kg_monotonic_ns() ^ (uint64_t)(uintptr_t)d);
    if (kg_flow_table_init(&d->ft, d->cfg.max_flows, seed) < 0) {
        kg_dissector_free(d);
        kg_err_set(err, KG_ERR_NOMEM, "cannot allocate a flow table of %u flows", cfg->max_flows);
        return NULL;
    }
    d->ndpi_free = kg_xcalloc(d->cfg.max_flows, sizeof(*d->ndpi_free));

    d->ndpi = ndpi_init_detection_module(ndpi_no_prefs);
    if (!d->ndpi) {
        kg_dissector_free(d);
        kg_err_set(err, KG_ERR_NOMEM, "nDPI: cannot initialise a detection module");
        return NULL;
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(d->ndpi, &all);
    ndpi_finalize_initialization(d->ndpi);

    d->nproto_names = ndpi_get_num_supported_protocols(d->ndpi);
    d->proto_names = kg_xcalloc(d->nproto_names, sizeof(char *));
    for (uint32_t i = 1; i < d->nproto_names; i++) {
        const char *n = ndpi_get_proto_name(d->ndpi, (u_int16_t)i);
        if (!n) continue;
        char *l = kg_xstrdup(n);
        for (char *c = l; *c; c++) *c = (char)tolower((unsigned char)*c);
        d->proto_names[i] = l;
    }
    return d;
}

void kg_dissector_free(struct kg_dissector *d)
{
    if (!d) return;
    if (d->ft.flows) {
        for (uint32_t i = 0; i < d->ft.max_flows; i++) {
            struct kg_flow *f = &d->ft.flows[i];
            if (!f->in_use) continue;
            ndpi_release(d, f);
            f->tls_state[1] = 2; /* no events while tearing down */
            tls_end(d, f, 0);
            tls_end(d, f, 1);
            quic_end(d, f);
            free(f->http);
            free(f->dns_tcp[0]);
            free(f->dns_tcp[1]);
            free(f->marks);
        }
    }
    for (uint32_t i = 0; i < d->ndpi_nfree; i++) ndpi_flow_free(d->ndpi_free[i]);
    free(d->ndpi_free);
    free(d->dedup);
    free(d->cert_cache);
    kg_defrag_free(d->defrag);
    for (uint32_t i = 0; i < d->nproto_names; i++) free(d->proto_names[i]);
    free(d->proto_names);
    if (d->ndpi) ndpi_exit_detection_module(d->ndpi);
    kg_flow_table_destroy(&d->ft);
    free(d);
}

/* ---- capture-side hash ------------------------------------------------------ */

uint32_t kg_dissect_packet_hash(const struct kg_packet *pkt)
{
    struct kg_decoded dec;
    if (kg_decode(pkt, &dec) != KG_DECODE_OK) return 0;
    size_t alen = dec.family == 6 ? 16 : 4;
    uint64_t a = 0, b = 0;
    uint64_t w[2];
    /* Per-endpoint hashes combined with +, which is symmetric. */
    memcpy(w, dec.src, alen == 16 ? 16 : 4);
    if (alen == 4) w[1] = 0, w[0] &= 0xffffffffull;
    a = mix64(w[0] ^ mix64(w[1]));
    memcpy(w, dec.dst, alen == 16 ? 16 : 4);
    if (alen == 4) w[1] = 0, w[0] &= 0xffffffffull;
    b = mix64(w[0] ^ mix64(w[1]));
    /* Ports are left out on purpose, for TCP too: a fragment carries no ports
     * (only the first one has the transport header), and every fragment must
     * reach the worker that holds its flow. The price: all flows between two
     * hosts share a worker. */
    uint64_t h = mix64((a + b) ^ dec.proto);
    uint32_t r = (uint32_t)(h ^ (h >> 32));
    return r ? r : 1;
}
