/*
 * dissect/dissect_int.h — private to dissect/: the decoded view of one
 * packet, the flow table and the per-flow state.
 */
#ifndef KG_DISSECT_INT_H
#define KG_DISSECT_INT_H

#include "dissect/dissect.h"

#define KG_DECODE_MAX_DEPTH 8        /* default: nested encapsulations followed (decoder.max_depth) */
#define KG_DECODE_MAX_DEPTH_LIMIT 16 /* the most decoder.max_depth may ask for */

enum kg_decode_result {
    KG_DECODE_OK = 0,       /* innermost IP header found */
    KG_DECODE_NOT_IP,       /* valid, but nothing we track (ARP, STP, CDP, ...) */
    KG_DECODE_TRUNCATED,
    KG_DECODE_BAD_LINKTYPE,
    KG_DECODE_BAD_L3,
    KG_DECODE_TOO_DEEP,
};

/* What kg_decode() finds in a packet. Pointers borrow the packet's bytes. */
struct kg_decoded {
    const uint8_t *l3;       /* innermost IP header */
    uint32_t l3_len;         /* bytes from l3 to the end of the IP datagram (padding removed) */
    uint8_t family;          /* 4 or 6 */
    uint8_t proto;           /* innermost transport protocol */
    const uint8_t *src, *dst; /* addresses inside l3 */
    bool is_fragment;        /* part of a fragmented datagram */
    bool has_l4;             /* l4 header present and complete */
    const uint8_t *payload;  /* transport payload */
    uint32_t payload_len;
    uint16_t sport, dport;   /* TCP/UDP ports; 0 otherwise */
    uint8_t icmp_type, icmp_code;
    uint8_t tcp_flags;
    uint32_t tcp_seq;
    uint16_t vlan[KG_MAX_VLAN];
    uint8_t nvlan;
    uint8_t tunnels;         /* encapsulations traversed */
    bool too_deep;           /* a further encapsulation was not followed (decoder.max_depth) */
};

/* Decodes link layer, VLAN/MPLS/PPPoE, IP tunnels (IPIP, 6in4, GRE, ERSPAN
 * II/III, VXLAN) down to the innermost IP header and its transport header.
 * Never reads outside the packet. */
enum kg_decode_result kg_decode(const struct kg_packet *pkt, struct kg_decoded *d);

/* TCP flags */
#define KG_TCP_FIN 0x01
#define KG_TCP_SYN 0x02
#define KG_TCP_RST 0x04
#define KG_TCP_ACK 0x10

#endif

/* ---- flows ------------------------------------------------------------- */

struct ndpi_flow_struct;
struct kg_quic_crypto;
struct kg_http_pending;

/* One direction of a TLS-over-TCP handshake: the record layer is stripped
 * and handshake bytes collected, in order, until the ClientHello (client)
 * or the first certificate (server) is complete. Freed when done. */
#define KG_TLS_HS_MAX (64u * 1024u)
#define KG_TLS_OOO_MAX 8              /* out-of-order segments held per direction */
#define KG_TLS_OOO_BYTES (32u * 1024u) /* and their bytes at most */
struct kg_tls_stream {
    uint32_t next_seq;
    uint32_t rec_left;  /* body bytes of the current record still to come */
    uint8_t rec_type;   /* content type of the current record */
    uint8_t hdr[5];     /* a record header split across segments */
    uint8_t hdr_len;
    uint32_t len, cap;  /* handshake bytes collected / allocated */
    uint8_t *hs;
    /* Segments that arrived ahead of a missing one (reordering on the
     * path or on the SPAN port): held, copied, until the gap fills. */
    struct {
        uint32_t seq, len;
        uint8_t *data;
    } ooo[KG_TLS_OOO_MAX];
    uint8_t nooo;
    uint32_t ooo_bytes;
    bool verified; /* the stream's first bytes were seen and are a TLS handshake record */
};

/* Reassembly of one direction of a TCP stream for length-prefixed DNS
 * (RFC 1035 4.2.2): in-order bytes only; a gap resets it. */
struct kg_dns_tcp_buf {
    uint32_t next_seq;
    bool seq_known;
    uint32_t len;
    uint8_t data[]; /* KG_DNS_TCP_BUF bytes */
};
#define KG_DNS_TCP_BUF (2 + 65535)

/* Canonical key: the lower endpoint first, so both directions agree. */
struct kg_ckey {
    uint8_t a[16], b[16];
    uint16_t aport, bport;
    uint16_t vlan[KG_MAX_VLAN];
    uint8_t family, proto, nvlan, pad;
};

enum kg_lru_class { KG_LRU_TCP = 0, KG_LRU_UDP, KG_LRU_OTHER, KG_LRU_CLOSED, KG_LRU_COUNT };

struct kg_flow {
    struct kg_flow_info info; /* must stay first: observers get &flow->info */
    struct kg_ckey ckey;
    uint32_t hash;
    uint32_t hnext;             /* bucket chain: index + 1, 0 = end */
    uint32_t lru_prev, lru_next; /* index + 1, 0 = none */
    uint8_t lru_class;
    bool in_use;
    /* dissection state */
    struct ndpi_flow_struct *ndpi; /* NULL once detection is over */
    uint16_t ndpi_packets;
    bool ndpi_detected;
    bool sni_done, ja3_done, cert_done;
    uint8_t tcp_fin_mask;        /* bit 0: FIN to server, bit 1: FIN to client */
    bool is_dns_port;
    struct kg_dns_tcp_buf *dns_tcp[2]; /* [0] to server, [1] to client */
    struct kg_tls_stream *tls[2];      /* [0] client, [1] server; NULL when idle or done */
    uint8_t tls_state[2];              /* 0 not seen, 1 collecting, 2 done */
    bool is_tls;                       /* a direction started with a TLS handshake record */
    uint32_t tcp_data_seq[2];          /* first data sequence number per direction (SYN + 1) */
    bool tcp_syn_seen[2];
    struct kg_quic_crypto *quic;       /* client Initial CRYPTO stream while collecting */
    uint8_t quic_tries;                /* client Initials seen */
    bool quic_done;
    bool ch_seen;                      /* a ClientHello was parsed */
    bool hs_emitted;                   /* KG_OBS_HANDSHAKE reported */
    struct kg_http_pending *http;      /* request awaiting its response, lazily allocated */
    /* alert dedup marks (open addressing, 0 = empty) */
    uint64_t *marks;
    uint32_t marks_cap, marks_used;
};

struct kg_flow_table {
    struct kg_flow *flows;  /* max_flows entries, lazily touched */
    uint32_t max_flows;
    uint32_t *buckets;      /* index + 1 */
    uint32_t bucket_mask;
    uint32_t free_head;     /* recycled entries: index + 1 */
    uint32_t never_used;    /* entries [never_used, max_flows) were never handed out */
    uint32_t active;
    uint32_t lru_head[KG_LRU_COUNT], lru_tail[KG_LRU_COUNT]; /* head = most recent */
    uint64_t seed;
};

int kg_flow_table_init(struct kg_flow_table *t, uint32_t max_flows, uint64_t seed);
void kg_flow_table_destroy(struct kg_flow_table *t);
/* Finds the flow of a canonical key, or NULL. */
struct kg_flow *kg_flow_table_find(struct kg_flow_table *t, const struct kg_ckey *k, uint32_t hash);
/* Takes a free entry (NULL when full: the caller evicts and retries). */
struct kg_flow *kg_flow_table_insert(struct kg_flow_table *t, const struct kg_ckey *k, uint32_t hash,
                                     enum kg_lru_class cls);
void kg_flow_table_remove(struct kg_flow_table *t, struct kg_flow *f);
/* Moves a flow to the most-recent end of its LRU list. */
void kg_flow_table_touch(struct kg_flow_table *t, struct kg_flow *f);
/* Moves a flow to another timeout class (e.g. a TCP flow that closed). */
void kg_flow_table_set_class(struct kg_flow_table *t, struct kg_flow *f, enum kg_lru_class cls);
/* Least recently used flow of a class, or NULL. */
struct kg_flow *kg_flow_table_oldest(struct kg_flow_table *t, enum kg_lru_class cls);
uint32_t kg_ckey_hash(const struct kg_ckey *k, uint64_t seed);
