/*
 * dissect/dissect.h — decoding, flows and application metadata.
 *
 * A struct kg_dissector belongs to one worker thread: it owns that worker's
 * flow table, its nDPI detection module and its reassembly buffers, so the
 * hot path takes no lock. Packets go in with kg_dissector_process(); what
 * the dissector learns comes out as observations through a callback: a
 * flow started, a DNS query name, a TLS SNI / JA3 / certificate SHA1, an
 * HTTP request, a flow ended. Later stages (indicator matching, export) are
 * wired to that callback by sensor/; this module knows nothing of them.
 *
 * kg_dissect_packet_hash() is the exception that runs on the capture side:
 * a light decode (through tunnels) to a symmetric hash, so both directions
 * of a flow reach the same worker.
 */
#ifndef KG_DISSECT_H
#define KG_DISSECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "common/kg_common.h"

#define KG_MAX_VLAN 3
#define KG_COMMUNITY_ID_LEN 32 /* "1:" + 28 base64 characters + NUL, padded */

/* Innermost 5-tuple of a flow. Addresses in network byte order; IPv4 uses
 * the first 4 bytes. Ports in host byte order (0 for port-less protocols;
 * ICMP uses type/code as in Community ID). `src` is the flow's initiator. */
struct kg_flow_key {
    uint8_t family; /* 4 or 6 */
    uint8_t proto;  /* IP protocol number */
    uint16_t sport;
    uint16_t dport;
    uint8_t saddr[16];
    uint8_t daddr[16];
};

/* The public part of a flow, shared with the observation callback. The
 * dissector owns it; observers may read it and call kg_flow_mark(). */
struct kg_flow_info {
    struct kg_flow_key key;
    uint64_t flow_id;     /* unique within a run, stable for the flow's life */
    uint64_t first_ts_us; /* first packet */
    uint64_t last_ts_us;  /* latest packet */
    uint64_t pkts_toserver, pkts_toclient;
    uint64_t bytes_toserver, bytes_toclient;
    uint16_t vlan[KG_MAX_VLAN];
    uint8_t nvlan;
    const char *app_proto; /* static string, EVE style: "tls", "dns", "http", "quic", ... or NULL */
    char sni[256];         /* TLS/QUIC server name, "" if none */
    char ja3[33];          /* JA3 client hash (hex), "" if none */
    char ja4[40];          /* JA4 client fingerprint, "" if none */
    char tls_alpn[64];     /* first ALPN protocol offered by the client, "" if none */
    uint16_t tls_version;  /* highest version the client offered (0x0304 = TLS 1.3), 0 if unknown */
    uint32_t quic_version; /* QUIC version of the client's Initial, 0 if not QUIC */
    char cert_sha1[41];    /* server certificate SHA1 (hex, lower case), "" if none */
    char community_id[KG_COMMUNITY_ID_LEN]; /* Community ID v1 (seed 0) of the flow */
    char ja3s[33];             /* JA3S of the ServerHello, "" if none */
    uint16_t tls_version_server; /* version the server chose (ServerHello), 0 if unknown */
    char ndpi_proto[64];       /* nDPI protocol ("TLS.Google"), "" until detected */
    const char *ndpi_category; /* nDPI category name, static; NULL until detected */
    uint64_t ndpi_risk;        /* nDPI risk bitmask (bit n: kg_dissect_risk_name(n)) */
    uint8_t tcp_flags_ts, tcp_flags_tc;     /* TCP flags seen to server / to client */
    uint8_t end_reason;    /* KG_OBS_FLOW_END: enum kg_flow_end */
    bool alerted;          /* set by observers that raised an alert on the flow */
};

/* Why a flow ended (kg_flow_info.end_reason). */
enum kg_flow_end { KG_END_TIMEOUT = 0, KG_END_CLOSED, KG_END_SHUTDOWN, KG_END_EVICTED };

/* A DNS message as a whole (KG_OBS_DNS_MESSAGE): for dns events and for
 * matching answer addresses. Names are in presentation form. */
#define KG_DNS_MSG_MAX_ANSWERS 32
#define KG_DNS_MSG_MAX_QUESTIONS 8
struct kg_dns_msg_answer {
    const char *name;
    size_t name_len;
    uint16_t rrtype;
    uint32_t ttl;
    uint8_t family; /* 4 or 6 for A/AAAA (addr), 0 otherwise */
    uint8_t addr[16];
    const char *target; /* CNAME/PTR/NS target, NULL otherwise */
    size_t target_len;
};
struct kg_dns_msg {
    uint16_t id;
    bool response;
    uint8_t rcode;
    const char *qname; /* first question, NULL if none */
    size_t qname_len;
    uint16_t qtype;
    size_t nquestions; /* all questions, up to KG_DNS_MSG_MAX_QUESTIONS kept (questions[0] = qname) */
    struct {
        const char *name;
        size_t len;
        uint16_t type;
    } questions[KG_DNS_MSG_MAX_QUESTIONS];
    size_t nanswers; /* at most KG_DNS_MSG_MAX_ANSWERS are kept */
    struct kg_dns_msg_answer answers[KG_DNS_MSG_MAX_ANSWERS];
};

/* An HTTP transaction (KG_OBS_HTTP_TXN): a request and, when seen, its
 * response. Strings carry their length and may hold any bytes. */
struct kg_http_txn {
    const char *host, *uri, *method, *user_agent, *content_type;
    size_t host_len, uri_len, method_len, user_agent_len, content_type_len;
    uint8_t version_minor;
    uint16_t status; /* 0: no response seen */
    bool has_length;
    uint64_t length;
};

/* The end of a TLS or QUIC handshake as far as a passive sensor sees it
 * (KG_OBS_HANDSHAKE): ClientHello fields are in the flow info; the server
 * certificate, when one was seen in clear (TLS <= 1.2), is summarised here. */
struct kg_x509_info;
struct kg_handshake {
    bool quic;
    const struct kg_x509_info *cert; /* NULL: no certificate seen */
};

/* Name of nDPI risk bit `bit` ("Known Protocol on Non Standard Port"),
 * static; NULL for an unknown bit. */
const char *kg_dissect_risk_name(unsigned bit);

/* Marks `key` as seen on this flow (alert dedup: one alert per flow,
 * indicator and place). Returns true the first time, false afterwards. */
bool kg_flow_mark(struct kg_flow_info *flow, uint64_t key);

enum kg_obs_type {
    KG_OBS_FLOW_START,    /* a new flow: endpoints are known */
    KG_OBS_DNS_QUERY,     /* value: question name of a DNS/mDNS/LLMNR message */
    KG_OBS_TLS_SNI,       /* value: server name from a TLS or QUIC ClientHello */
    KG_OBS_TLS_JA3,       /* value: JA3 hash, 32 hex digits */
    KG_OBS_TLS_JA4,       /* value: JA4 fingerprint */
    KG_OBS_TLS_CERT_SHA1, /* value: server certificate SHA1, 40 hex digits */
    KG_OBS_HTTP_REQUEST,  /* value: Host header (may be empty); http_uri set */
    KG_OBS_DNS_MESSAGE,   /* dns: a whole DNS message (questions and answers) */
    KG_OBS_DNS_ANSWER,    /* value: the first question name; dns_answer_*: one A/AAAA answer */
    KG_OBS_HTTP_TXN,      /* http: a request with its response (or none) */
    KG_OBS_HANDSHAKE,     /* handshake: TLS/QUIC handshake seen as far as it is in clear */
    KG_OBS_FLOW_END,      /* the flow timed out, closed or was flushed; flow->end_reason says which */
};

/* One observation. Every pointer is borrowed: valid during the callback. */
struct kg_observation {
    enum kg_obs_type type;
    struct kg_flow_info *flow;
    uint64_t ts_us;      /* time of the packet that carried it */
    const char *value;   /* not NUL-terminated; may hold any bytes */
    size_t value_len;
    const char *http_uri; /* KG_OBS_HTTP_REQUEST only */
    size_t http_uri_len;
    const char *http_method;
    size_t http_method_len;
    const char *http_user_agent; /* KG_OBS_HTTP_REQUEST: User-Agent, NULL if absent */
    size_t http_user_agent_len;
    uint16_t dns_qtype; /* KG_OBS_DNS_QUERY only */
    const struct kg_dns_msg *dns;         /* KG_OBS_DNS_MESSAGE */
    uint8_t dns_answer_family;            /* KG_OBS_DNS_ANSWER: 4 or 6 */
    uint8_t dns_answer_addr[16];
    uint32_t dns_answer_ttl;
    const struct kg_http_txn *http;       /* KG_OBS_HTTP_TXN */
    const struct kg_handshake *handshake; /* KG_OBS_HANDSHAKE */
    bool to_server;     /* direction of the carrying packet */
};

typedef void (*kg_observe_fn)(void *user, const struct kg_observation *obs);

struct kg_dissector_config {
    uint32_t max_flows;        /* per dissector; 0 = default 65536 */
    uint32_t tcp_timeout_s;    /* idle timeout of established TCP flows; 0 = default 600 */
    uint32_t udp_timeout_s;    /* idle timeout of UDP flows; 0 = default 120 */
    uint32_t other_timeout_s;  /* other protocols; 0 = default 60 */
    bool vlan_in_key;          /* VLAN ids part of the flow key */
    uint32_t worker_id;        /* mixed into flow_id */
    uint32_t closed_timeout_s; /* TCP flows after FIN from both sides or RST; 0 = default 5 */
    uint32_t dedup_window_ms;  /* drop a frame seen again within this window (SPAN duplicates); 0 = off */
    uint64_t defrag_max_bytes; /* memory for IP fragments; 0 = default 64 MiB */
    uint32_t defrag_timeout_s; /* 0 = default 30 */
    bool cert_details;         /* decode server certificates (subject, issuer, validity) for tls events */
};

struct kg_dissect_stats {
    uint64_t packets, bytes;
    uint64_t decode_truncated;    /* shorter than its headers claim */
    uint64_t decode_bad_linktype; /* link type we do not decode */
    uint64_t decode_bad_l3;       /* invalid IP header */
    uint64_t decode_not_ip;       /* ARP, STP, ... (not an error) */
    uint64_t decode_fragments;    /* IP fragments seen */
    uint64_t decode_duplicates;   /* frames dropped as SPAN duplicates */
    uint64_t reassembled;         /* IP datagrams rebuilt from fragments */
    uint64_t defrag_timeouts, defrag_overlaps, defrag_conflicts, defrag_evicted, defrag_invalid;
    uint64_t defrag_bytes_held;   /* gauge */
    uint64_t decode_tunnels;      /* packets that went through a tunnel */
    uint64_t decode_too_deep;     /* nested deeper than decoder.max_depth (a layer was not followed) */
    uint64_t flows_created, flows_active, flows_ended, flows_timed_out, flows_evicted, flows_closed;
    uint64_t flow_alloc_failed;
    uint64_t ndpi_flows;
    uint64_t dns_messages, dns_malformed, dns_questions_capped;
    uint64_t http_requests;
    uint64_t tcp_reassembly_gaps;
    uint64_t tls_client_hellos, tls_malformed, tls_certs, tls_cert_cache_hits;
    uint64_t quic_initials, quic_decrypt_failed;
    uint64_t stream_budget_exhausted; /* handshake buffers refused: per-worker byte budget used up */
};

struct kg_dissector;

/* Returns owned dissector, or NULL with err filled. `cb` is called on the
 * dissector's thread for every observation. */
struct kg_dissector *kg_dissector_new(const struct kg_dissector_config *cfg, kg_observe_fn cb, void *user,
                                      struct kg_err *err);
/* Borrows pkt for the duration of the call. */
void kg_dissector_process(struct kg_dissector *d, const struct kg_packet *pkt);
/* Ends flows idle past their timeout at time now_us (packet time). */
void kg_dissector_expire(struct kg_dissector *d, uint64_t now_us);
/* Ends every flow (end of input / shutdown); KG_OBS_FLOW_END for each. */
void kg_dissector_flush(struct kg_dissector *d);
/* Valid until the next call on the dissector. */
const struct kg_dissect_stats *kg_dissector_stats(const struct kg_dissector *d);
void kg_dissector_free(struct kg_dissector *d);

/* Symmetric hash of a packet's innermost flow (both directions give the
 * same value): address pair and protocol, without ports, so that the
 * fragments of a datagram (only the first carries ports) meet the rest of
 * their flow. Limit: a tunnel whose OUTER packets are fragmented hashes its
 * non-first fragments by the outer addresses (the inner ones are not in
 * them), so with several workers such a flow can be split. Returns 0 for
 * undecodable packets. */
uint32_t kg_dissect_packet_hash(const struct kg_packet *pkt);

/* How many nested encapsulations the decoder follows (1..16; default 8). A
 * packet nested deeper is dissected as the flow of the last layer followed
 * and counted (decode_too_deep). Control plane: call before packets flow. */
void kg_decode_set_max_depth(unsigned depth);

/* Formats an address of a flow key ("192.0.2.1", "2001:db8::1"); buf must
 * hold 46 bytes. Returns buf. */
const char *kg_addr_str(uint8_t family, const uint8_t *addr, char *buf);

/* ---- Community ID (dissect/community_id.c) -------------------------------
 * Community ID v1 (Corelight community-id-spec) of a flow, the join key
 * Suricata, Zeek, Arkime and Wireshark log as community_id. See
 * docs/EVENTS.md. Thread-safe; computes one SHA1, so call it once per flow
 * (at flow start) and keep the string, not per packet. */

/* "1:" + 28 base64 characters + NUL, rounded up. */

/*
 * Writes the Community ID of `k` with `seed` (0 unless the deployment set
 * one; Suricata's community-id-seed) into out, e.g.
 * "1:LQU9qZlK+B5F3KDmev6m5PMibrg=". TCP, UDP and SCTP are hashed with
 * their ports; ICMP (proto 1) and ICMPv6 (58) with k->sport = type and
 * k->dport = code, mapped to ports as the specification says; every other
 * protocol on addresses and protocol alone. Direction does not matter: both
 * directions of a flow give the same value (except one-way ICMP types,
 * hashed as sent). Returns 0; KG_ERR_INVAL (out = "") for a family other
 * than 4 or 6; KG_ERR_NOMEM (out = "") if OpenSSL cannot hash.
 */
int kg_community_id(const struct kg_flow_key *k, uint16_t seed, char out[KG_COMMUNITY_ID_LEN]);

/* The same with the port words forced in or out: with_ports = false hashes
 * a port-carrying protocol on its addresses alone, as the specification's
 * implementations do for a fragment that does not carry the transport
 * header (k->sport/dport are then ignored). */
int kg_community_id_ex(const struct kg_flow_key *k, uint16_t seed, bool with_ports,
                       char out[KG_COMMUNITY_ID_LEN]);

#endif /* KG_DISSECT_H */
