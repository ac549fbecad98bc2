/*
 * tests/unit/test_tls_real.c — runs the TLS/QUIC/DTLS ClientHello parsers of
 * dissect/ (kg_tls_parse_client_hello, kg_quic_parse_initial) over real
 * captures and prints what they find, one tab-separated line per
 * ClientHello:
 *
 *   pcap  src_ip  src_port  dst_ip  dst_port  ip_proto  kind  sni  ja3  ja4  ja3_full
 *
 * (kind: tls, quic or dtls; sni may be empty). tests/scripts/ja_oracle.py
 * compares these lines with ORACLE.tsv.
 *
 * A test driver, not a sensor: it reads captures with libpcap directly
 * (Ethernet with VLAN/QinQ tags, Linux cooked v1/v2, raw IP, BSD loopback;
 * IPv4, IPv6, IPv6-in-IPv4, VXLAN and GTP-U tunnels; no IP reassembly),
 * follows each TCP direction in order from its first ClientHello record
 * (in-order segments only, which is what these captures hold), and keeps
 * one kg_quic_crypto per UDP direction. Single-threaded; everything is
 * freed at the end of each capture.
 *
 * Usage: test_tls_real capture...   (exit 0, or 2 on a capture it cannot open)
 */
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dissect/dissect_parsers.h"

#define TCP_BUF_MAX 65536
#define MAX_SEEN 8 /* distinct ClientHellos printed per direction */

struct flow {
    uint8_t family; /* 4 or 6 */
    uint8_t proto;  /* 6 or 17 */
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    /* TCP: the direction's bytes from its first ClientHello record on */
    uint8_t *tcp;
    size_t tcp_len;
    uint32_t next_seq;
    bool tcp_started, done;
    /* QUIC: the client's CRYPTO stream */
    struct kg_quic_crypto *quic;
    /* what was already printed (JA3 + JA4), to print each hello once */
    char seen[MAX_SEEN][80];
    int nseen;
};

struct state {
    const char *pcap_name;
    struct flow *flows;
    size_t nflows, cap;
};

struct pkt5 {
    uint8_t family, proto;
    const uint8_t *src, *dst; /* 4 or 16 bytes */
    uint16_t sport, dport;
};

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static struct flow *flow_get(struct state *st, const struct pkt5 *k)
{
    size_t al = k->family == 4 ? 4 : 16;
    for (size_t i = 0; i < st->nflows; i++) {
        struct flow *f = &st->flows[i];
        if (f->family == k->family && f->proto == k->proto && f->sport == k->sport && f->dport == k->dport &&
            memcmp(f->src, k->src, al) == 0 && memcmp(f->dst, k->dst, al) == 0)
            return f;
    }
    if (st->nflows == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 64;
        st->flows = realloc(st->flows, st->cap * sizeof(*st->flows));
        if (!st->flows) {
            perror("realloc");
            exit(2);
        }
    }
    struct flow *f = &st->flows[st->nflows++];
    memset(f, 0, sizeof(*f));
    f->family = k->family;
    f->proto = k->proto;
    memcpy(f->src, k->src, al);
    memcpy(f->dst, k->dst, al);
    f->sport = k->sport;
    f->dport = k->dport;
    return f;
}

static void report(struct state *st, struct flow *f, const char *kind, const struct kg_tls_client_hello *h)
{
    char key[80];
    snprintf(key, sizeof(key), "%s %s", h->ja3, h->ja4);
    for (int i = 0; i < f->nseen; i++)
        if (strcmp(f->seen[i], key) == 0) return;
    if (f->nseen < MAX_SEEN) {
        memcpy(f->seen[f->nseen++], key, sizeof(key));
    }
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    int af = f->family == 4 ? AF_INET : AF_INET6;
    inet_ntop(af, f->src, src, sizeof(src));
    inet_ntop(af, f->dst, dst, sizeof(dst));
    /* SNI bytes are printed as sent, minus what would break the line. */
    char sni[KG_TLS_SNI_MAX];
    size_t n = 0;
    for (const char *s = h->sni; *s && n < sizeof(sni) - 1; s++)
        sni[n++] = (*s == '\t' || *s == '\n') ? ' ' : *s;
    sni[n] = '\0';
    printf("%s\t%s\t%u\t%s\t%u\t%u\t%s\t%s\t%s\t%s\t%s%s\n", st->pcap_name, src, f->sport, dst, f->dport,
           f->proto, kind, sni, h->ja3, h->ja4, h->ja3_full, h->ja3_full_truncated ? "..." : "");
}

/* ---- TCP: TLS records ----------------------------------------------------------- */

/* Concatenates the handshake records at the start of the direction's bytes
 * and parses the ClientHello once it is complete. */
static void tcp_try_hello(struct state *st, struct flow *f)
{
    static uint8_t hs[TCP_BUF_MAX];
    size_t hs_len = 0, off = 0;
    while (f->tcp_len - off >= 5) {
        const uint8_t *r = f->tcp + off;
        size_t rl = be16(r + 3);
        if (r[0] != 22) { /* not handshake: the ClientHello never completed */
            f->done = true;
            return;
        }
        if (f->tcp_len - off - 5 < rl) break;
        memcpy(hs + hs_len, r + 5, rl);
        hs_len += rl;
        off += 5 + rl;
        if (hs_len >= 4) {
            size_t need = 4 + (((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3]);
            if (hs_len >= need) {
                struct kg_tls_client_hello h;
                if (kg_tls_parse_client_hello(hs, hs_len, 't', &h) == 0) report(st, f, "tls", &h);
                f->done = true;
                return;
            }
        }
    }
    if (f->tcp_len >= TCP_BUF_MAX) f->done = true;
}

static void on_tcp(struct state *st, const struct pkt5 *k, const uint8_t *p, size_t len)
{
    if (len < 20) return;
    size_t doff = (size_t)(p[12] >> 4) * 4;
    if (doff < 20 || doff > len) return;
    uint32_t seq = be32(p + 4);
    const uint8_t *d = p + doff;
    size_t dl = len - doff;
    if (dl == 0) return;
    struct flow *f = flow_get(st, k);
    if (f->done) return;
    if (!f->tcp_started) {
        /* TLS record: handshake, version 3.x, then a ClientHello. */
        if (dl < 6 || d[0] != 22 || d[1] != 3 || d[5] != 1) return;
        f->tcp = malloc(TCP_BUF_MAX);
        if (!f->tcp) exit(2);
        f->tcp_started = true;
        f->next_seq = seq;
    }
    /* In-order bytes only; a retransmission may extend what we have. */
    uint32_t ahead = seq - f->next_seq;            /* modulo 2^32 */
    if (ahead != 0 && ahead < 0x80000000u) return; /* a gap: out of order */
    size_t skip = (size_t)(f->next_seq - seq);
    if (skip >= dl) return;
    size_t n = dl - skip;
    if (n > TCP_BUF_MAX - f->tcp_len) n = TCP_BUF_MAX - f->tcp_len;
    memcpy(f->tcp + f->tcp_len, d + skip, n);
    f->tcp_len += n;
    f->next_seq += (uint32_t)n;
    tcp_try_hello(st, f);
}

/* ---- UDP: QUIC and DTLS ---------------------------------------------------------- */

static void on_ether(struct state *st, const uint8_t *p, size_t len, int depth);
static void on_ip(struct state *st, const uint8_t *p, size_t len, int depth);

static bool quic_version_known(uint32_t v)
{
    return v == 1 || v == 0x6b3343cf || (v >= 0xff00001d && v <= 0xff000020);
}

static void on_udp_payload(struct state *st, const struct pkt5 *k, const uint8_t *d, size_t dl)
{
    /* DTLS: record header (13 bytes) then a handshake ClientHello. */
    if (dl >= 25 && d[0] == 22 && d[1] == 0xfe && d[13] == 1) {
        size_t rl = be16(d + 11);
        if (rl > dl - 13) rl = dl - 13;
        struct kg_tls_client_hello h;
        if (kg_tls_parse_client_hello(d + 13, rl, 'd', &h) == 0) report(st, flow_get(st, k), "dtls", &h);
        return;
    }
    /* QUIC long header of a version we can read. */
    if (dl >= 7 && (d[0] & 0x80) && quic_version_known(be32(d + 1))) {
        struct flow *f = flow_get(st, k);
        if (f->done) return;
        if (!f->quic) {
            f->quic = calloc(1, sizeof(*f->quic));
            if (!f->quic) exit(2);
        }
        uint32_t ver;
        if (kg_quic_parse_initial(d, dl, f->quic, &ver) <= 0) return;
        const struct kg_quic_crypto *c = f->quic;
        if (c->contiguous < 4 || c->data[0] != 1) return;
        size_t need = 4 + (((size_t)c->data[1] << 16) | ((size_t)c->data[2] << 8) | c->data[3]);
        if (c->contiguous < need) return;
        struct kg_tls_client_hello h;
        if (kg_tls_parse_client_hello(c->data, c->contiguous, 'q', &h) == 0) report(st, f, "quic", &h);
        f->done = true;
    }
}

static void on_udp(struct state *st, const struct pkt5 *k0, const uint8_t *p, size_t len, int depth)
{
    if (len < 8) return;
    struct pkt5 k = *k0;
    k.sport = be16(p);
    k.dport = be16(p + 2);
    const uint8_t *d = p + 8;
    size_t dl = len - 8;
    size_t ul = be16(p + 4);
    if (ul >= 8 && ul - 8 < dl) dl = ul - 8;

    if (k.dport == 4789 && dl >= 8) { /* VXLAN (RFC 7348) */
        on_ether(st, d + 8, dl - 8, depth + 1);
        return;
    }
    if ((k.dport == 2152 || k.sport == 2152) && dl >= 8 && (d[0] >> 5) == 1 && d[1] == 0xff) {
        /* GTP-U (3GPP TS 29.281): 8 bytes, 4 more if E, S or PN is set,
         * then extension headers while E and a next type are set. */
        size_t off = 8;
        if (d[0] & 0x07) {
            if (dl < 12) return;
            off = 12;
            uint8_t next = (d[0] & 0x04) ? d[11] : 0;
            while (next) {
                if (off >= dl) return;
                size_t el = (size_t)d[off] * 4;
                if (el == 0 || off + el > dl) return;
                next = d[off + el - 1];
                off += el;
            }
        }
        on_ip(st, d + off, dl - off, depth + 1);
        return;
    }
    on_udp_payload(st, &k, d, dl);
}

/* ---- network layer ----------------------------------------------------------------- */

static void on_l4(struct state *st, struct pkt5 *k, uint8_t proto, const uint8_t *p, size_t len, int depth)
{
    if (proto == 6) {
        k->proto = 6;
        if (len < 4) return;
        k->sport = be16(p);
        k->dport = be16(p + 2);
        on_tcp(st, k, p, len);
    } else if (proto == 17) {
        k->proto = 17;
        on_udp(st, k, p, len, depth);
    } else if (proto == 41 || proto == 4) { /* IPv6-in-IPv4 / IP-in-IP */
        on_ip(st, p, len, depth + 1);
    }
}

static void on_ip(struct state *st, const uint8_t *p, size_t len, int depth)
{
    if (depth > 6 || len < 1) return;
    struct pkt5 k;
    memset(&k, 0, sizeof(k));
    if ((p[0] >> 4) == 4) {
        if (len < 20) return;
        size_t ihl = (size_t)(p[0] & 0x0f) * 4;
        size_t tl = be16(p + 2);
        if (ihl < 20 || tl < ihl) return;
        if (tl < len) len = tl;
        if (ihl > len) return;
        if ((be16(p + 6) & 0x3fff) != 0) return; /* a fragment: not reassembled */
        k.family = 4;
        k.src = p + 12;
        k.dst = p + 16;
        on_l4(st, &k, p[9], p + ihl, len - ihl, depth);
    } else if ((p[0] >> 4) == 6) {
        if (len < 40) return;
        size_t pl = be16(p + 4);
        if (40 + pl < len) len = 40 + pl;
        k.family = 6;
        k.src = p + 8;
        k.dst = p + 24;
        uint8_t nh = p[6];
        size_t off = 40;
        /* Hop-by-hop, routing and destination options headers. */
        while (nh == 0 || nh == 43 || nh == 60) {
            if (len - off < 8) return;
            size_t el = ((size_t)p[off + 1] + 1) * 8;
            if (el > len - off) return;
            nh = p[off];
            off += el;
        }
        if (nh == 44) return; /* a fragment: not reassembled */
        on_l4(st, &k, nh, p + off, len - off, depth);
    }
}

static void on_ether(struct state *st, const uint8_t *p, size_t len, int depth)
{
    if (depth > 6 || len < 14) return;
    size_t off = 12;
    uint16_t et = be16(p + off);
    while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && len - off >= 6) { /* VLAN, QinQ */
        off += 4;
        et = be16(p + off);
    }
    off += 2;
    if (et == 0x0800 || et == 0x86dd) on_ip(st, p + off, len - off, depth);
}

static void on_packet(struct state *st, int dlt, const uint8_t *p, size_t len)
{
    switch (dlt) {
    case DLT_EN10MB:
        on_ether(st, p, len, 0);
        break;
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        on_ip(st, p, len, 0);
        break;
    case DLT_LINUX_SLL: /* 16-byte header, protocol at 14 */
        if (len >= 16 && (be16(p + 14) == 0x0800 || be16(p + 14) == 0x86dd)) on_ip(st, p + 16, len - 16, 0);
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2: /* 20-byte header, protocol at 0 */
        if (len >= 20 && (be16(p) == 0x0800 || be16(p) == 0x86dd)) on_ip(st, p + 20, len - 20, 0);
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP: /* 4-byte address family, host or network order */
        if (len >= 4) on_ip(st, p + 4, len - 4, 0);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s capture...\n", argv[0]);
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        char errbuf[PCAP_ERRBUF_SIZE];
        pcap_t *pc = pcap_open_offline(argv[i], errbuf);
        if (!pc) {
            fprintf(stderr, "%s: %s\n", argv[i], errbuf);
            rc = 2;
            continue;
        }
        struct state st;
        memset(&st, 0, sizeof(st));
        const char *slash = strrchr(argv[i], '/');
        st.pcap_name = slash ? slash + 1 : argv[i];
        int dlt = pcap_datalink(pc);
        struct pcap_pkthdr *hdr;
        const u_char *data;
        int r;
        while ((r = pcap_next_ex(pc, &hdr, &data)) == 1)
            on_packet(&st, dlt, data, hdr->caplen);
        if (r == PCAP_ERROR) fprintf(stderr, "%s: %s\n", argv[i], pcap_geterr(pc));
        pcap_close(pc);
        for (size_t k = 0; k < st.nflows; k++) {
            free(st.flows[k].tcp);
            free(st.flows[k].quic);
        }
        free(st.flows);
    }
    return rc;
}
