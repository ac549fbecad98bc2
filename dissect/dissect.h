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
};

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
    KG_OBS_FLOW_END,      /* the flow timed out, closed or was flushed */
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
    uint16_t dns_qtype; /* KG_OBS_DNS_QUERY only */
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
};

struct kg_dissect_stats {
    uint64_t packets, bytes;
    uint64_t decode_truncated;    /* shorter than its headers claim */
    uint64_t decode_bad_linktype; /* link type we do not decode */
    uint64_t decode_bad_l3;       /* invalid IP header */
    uint64_t decode_not_ip;       /* ARP, STP, ... (not an error) */
    uint64_t decode_fragments;    /* IP fragments (not yet reassembled) */
    uint64_t decode_tunnels;      /* packets that went through a tunnel */
    uint64_t flows_created, flows_active, flows_ended, flows_timed_out, flows_evicted;
    uint64_t flow_alloc_failed;
    uint64_t ndpi_flows;
    uint64_t dns_messages, dns_malformed, dns_questions_capped;
    uint64_t http_requests;
    uint64_t tcp_reassembly_gaps;
    uint64_t tls_client_hellos, tls_malformed, tls_certs;
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
 * same value). Port-less packets (fragments, ICMP) hash by address pair and
 * protocol; UDP hashes by address pair too, so that fragments of a UDP
 * datagram meet the rest of their flow. Returns 0 for undecodable packets. */
uint32_t kg_dissect_packet_hash(const struct kg_packet *pkt);

/* Formats an address of a flow key ("192.0.2.1", "2001:db8::1"); buf must
 * hold 46 bytes. Returns buf. */
const char *kg_addr_str(uint8_t family, const uint8_t *addr, char *buf);

#endif /* KG_DISSECT_H */
