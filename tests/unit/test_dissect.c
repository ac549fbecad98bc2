/*
 * tests/unit/test_dissect.c — decoding, flow-hash symmetry, flow table
 * bounds and timeouts, and the observations a dissector reports for
 * packets built here byte by byte.
 */
#include "dissect/dissect_int.h"
#include "dissect/dissect_parsers.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* ---- packet builder ---------------------------------------------------------- */

struct pb {
    uint8_t b[2048];
    size_t n;
};

static void put(struct pb *p, const void *d, size_t n)
{
    if (n) memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void put8(struct pb *p, uint8_t v)
{
    p->b[p->n++] = v;
}
static void put16(struct pb *p, uint16_t v)
{
    put8(p, (uint8_t)(v >> 8));
    put8(p, (uint8_t)v);
}
static void put32(struct pb *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p, (uint16_t)v);
}

static void eth(struct pb *p, const uint16_t *vlans, int nvlan, uint16_t etype)
{
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    put(p, macs, 12);
    for (int i = 0; i < nvlan; i++) {
        put16(p, i == 0 && nvlan > 1 ? 0x88a8 : 0x8100);
        put16(p, vlans[i]);
    }
    put16(p, etype);
}

/* IPv4 header (no options); returns offset of total length to patch. */
static size_t ip4(struct pb *p, const char *src, const char *dst, uint8_t proto, uint16_t frag)
{
    size_t at = p->n;
    put8(p, 0x45);
    put8(p, 0);
    put16(p, 0); /* total length: patched */
    put16(p, 1);
    put16(p, frag);
    put8(p, 64);
    put8(p, proto);
    put16(p, 0);
    struct in_addr a;
    inet_pton(AF_INET, src, &a);
    put(p, &a, 4);
    inet_pton(AF_INET, dst, &a);
    put(p, &a, 4);
    return at;
}

static size_t ip6(struct pb *p, const char *src, const char *dst, uint8_t nh)
{
    size_t at = p->n;
    put32(p, 0x60000000);
    put16(p, 0); /* payload length: patched */
    put8(p, nh);
    put8(p, 64);
    struct in6_addr a;
    inet_pton(AF_INET6, src, &a);
    put(p, &a, 16);
    inet_pton(AF_INET6, dst, &a);
    put(p, &a, 16);
    return at;
}

static void fix4(struct pb *p, size_t at)
{
    uint16_t tot = (uint16_t)(p->n - at);
    p->b[at + 2] = (uint8_t)(tot >> 8);
    p->b[at + 3] = (uint8_t)tot;
}

static void fix6(struct pb *p, size_t at)
{
    uint16_t pl = (uint16_t)(p->n - at - 40);
    p->b[at + 4] = (uint8_t)(pl >> 8);
    p->b[at + 5] = (uint8_t)pl;
}

static void udp(struct pb *p, uint16_t sp, uint16_t dp, const void *payload, size_t n)
{
    put16(p, sp);
    put16(p, dp);
    put16(p, (uint16_t)(8 + n));
    put16(p, 0);
    put(p, payload, n);
}

static void tcp(struct pb *p, uint16_t sp, uint16_t dp, uint32_t seq, uint8_t flags, const void *payload,
                size_t n)
{
    put16(p, sp);
    put16(p, dp);
    put32(p, seq);
    put32(p, 0);
    put8(p, 5 << 4);
    put8(p, flags);
    put16(p, 65535);
    put32(p, 0);
    put(p, payload, n);
}

/* DNS query for "www.example.com" A IN, id 0x1234. */
static const uint8_t dns_query_www_example_com[] = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
    0x00, 0x01, 0x00, 0x01};

static struct kg_packet pkt_of(const struct pb *p, uint64_t ts)
{
    struct kg_packet k = {.ts_us = ts, .data = p->b, .caplen = (uint32_t)p->n, .wirelen = (uint32_t)p->n,
                          .linktype = KG_LINK_ETHERNET};
    return k;
}

static struct pb udp4_packet(const char *s, const char *d, uint16_t sp, uint16_t dp, const void *pl, size_t n,
                             const uint16_t *vlans, int nvlan)
{
    struct pb p = {.n = 0};
    eth(&p, vlans, nvlan, 0x0800);
    size_t at = ip4(&p, s, d, 17, 0);
    udp(&p, sp, dp, pl, n);
    fix4(&p, at);
    return p;
}

/* ---- decode ----------------------------------------------------------------- */

static void test_decode_basic(void)
{
    static const uint16_t vl[2] = {100, 200};
    struct pb p = udp4_packet("10.0.0.1", "10.0.0.2", 5000, 53, dns_query_www_example_com,
                              sizeof(dns_query_www_example_com), vl, 2);
    struct kg_packet k = pkt_of(&p, 1);
    struct kg_decoded d;
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.family, 4);
    CHECK_EQ_INT(d.proto, 17);
    CHECK_EQ_INT(d.sport, 5000);
    CHECK_EQ_INT(d.dport, 53);
    CHECK_EQ_INT(d.nvlan, 2);
    CHECK_EQ_INT(d.vlan[0], 100);
    CHECK_EQ_INT(d.vlan[1], 200);
    CHECK_EQ_INT(d.payload_len, sizeof(dns_query_www_example_com));
    CHECK(d.has_l4);
    CHECK(!d.is_fragment);

    /* Ethernet padding past the IP total length is not payload. */
    struct pb q = p;
    memset(q.b + q.n, 0, 20);
    q.n += 20;
    k = pkt_of(&q, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.payload_len, sizeof(dns_query_www_example_com));

    /* Every truncation of the packet decodes without reading past it (ASan
     * checks the reads; here: no crash and a sane result). */
    for (size_t n = 0; n < p.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, p.b, n);
        struct kg_packet t = {.data = copy, .caplen = (uint32_t)n, .wirelen = (uint32_t)p.n,
                              .linktype = KG_LINK_ETHERNET};
        enum kg_decode_result r = kg_decode(&t, &d);
        CHECK(r == KG_DECODE_OK || r == KG_DECODE_TRUNCATED);
        if (r == KG_DECODE_OK && d.has_l4) CHECK(d.payload + d.payload_len <= copy + n);
        free(copy);
    }
}

static void test_decode_ipv6_tcp_and_errors(void)
{
    struct pb p = {.n = 0};
    eth(&p, NULL, 0, 0x86dd);
    size_t at = ip6(&p, "2001:db8::1", "2001:db8::2", 6);
    tcp(&p, 40000, 443, 1000, KG_TCP_SYN, NULL, 0);
    fix6(&p, at);
    struct kg_packet k = pkt_of(&p, 1);
    struct kg_decoded d;
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.family, 6);
    CHECK_EQ_INT(d.proto, 6);
    CHECK_EQ_INT(d.sport, 40000);
    CHECK_EQ_INT(d.dport, 443);
    CHECK_EQ_INT(d.tcp_flags, KG_TCP_SYN);

    /* Bad IHL */
    struct pb b = udp4_packet("10.0.0.1", "10.0.0.2", 1, 2, "x", 1, NULL, 0);
    b.b[14] = 0x43;
    k = pkt_of(&b, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_BAD_L3);
    /* ARP is valid but not IP */
    struct pb arp = {.n = 0};
    eth(&arp, NULL, 0, 0x0806);
    memset(arp.b + arp.n, 0, 28);
    arp.n += 28;
    k = pkt_of(&arp, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_NOT_IP);
    /* Unknown link type */
    k.linktype = 147;
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_BAD_LINKTYPE);
}

static void test_decode_tunnels(void)
{
    /* VXLAN: outer IPv4/UDP 4789, VXLAN header, inner Ethernet/IPv4/UDP DNS. */
    struct pb p = {.n = 0};
    eth(&p, NULL, 0, 0x0800);
    size_t o4 = ip4(&p, "192.0.2.1", "192.0.2.2", 17, 0);
    size_t ou = p.n;
    put16(&p, 33333);
    put16(&p, 4789);
    put16(&p, 0);
    put16(&p, 0);
    put32(&p, 0x08000000);
    put32(&p, 0x00000100);
    eth(&p, NULL, 0, 0x0800);
    size_t i4 = ip4(&p, "10.1.1.1", "10.1.1.2", 17, 0);
    udp(&p, 1111, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix4(&p, i4);
    fix4(&p, o4);
    uint16_t ulen = (uint16_t)(p.n - ou);
    p.b[ou + 4] = (uint8_t)(ulen >> 8);
    p.b[ou + 5] = (uint8_t)ulen;
    struct kg_packet k = pkt_of(&p, 1);
    struct kg_decoded d;
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK_EQ_INT(d.dport, 53);
    CHECK(memcmp(d.src, "\x0a\x01\x01\x01", 4) == 0);

    /* 6in4: IPv4 protocol 41 carrying IPv6/UDP. */
    struct pb q = {.n = 0};
    eth(&q, NULL, 0, 0x0800);
    size_t a = ip4(&q, "192.0.2.1", "192.0.2.2", 41, 0);
    size_t b6 = ip6(&q, "2001:db8::1", "2001:db8::2", 17);
    udp(&q, 1000, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix6(&q, b6);
    fix4(&q, a);
    k = pkt_of(&q, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.family, 6);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK_EQ_INT(d.dport, 53);

    /* GRE carrying IPv4 */
    struct pb g = {.n = 0};
    eth(&g, NULL, 0, 0x0800);
    size_t go = ip4(&g, "192.0.2.1", "192.0.2.2", 47, 0);
    put16(&g, 0);
    put16(&g, 0x0800);
    size_t gi = ip4(&g, "10.9.9.9", "10.9.9.8", 17, 0);
    udp(&g, 1000, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix4(&g, gi);
    fix4(&g, go);
    k = pkt_of(&g, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK(memcmp(d.src, "\x0a\x09\x09\x09", 4) == 0);

    /* A fragment: no ports */
    struct pb f = udp4_packet("10.0.0.1", "10.0.0.2", 5000, 53, "abc", 3, NULL, 0);
    f.b[14 + 6] = 0x00;
    f.b[14 + 7] = 0x10; /* offset 16*8 */
    k = pkt_of(&f, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK(d.is_fragment);
    CHECK(!d.has_l4);
}

/* ---- flow hash ------------------------------------------------------------------ */

static void test_flow_hash_symmetry(void)
{
    srand(7);
    int distinct = 0;
    uint32_t first = 0;
    for (int i = 0; i < 2000; i++) {
        char a[32], b[32];
        snprintf(a, sizeof(a), "10.%d.%d.%d", rand() % 256, rand() % 256, rand() % 256);
        snprintf(b, sizeof(b), "172.16.%d.%d", rand() % 256, rand() % 256);
        uint16_t sp = (uint16_t)(1024 + rand() % 60000), dp = (uint16_t)(rand() % 1024);
        struct pb x = {.n = 0}, y = {.n = 0};
        eth(&x, NULL, 0, 0x0800);
        size_t ax = ip4(&x, a, b, 6, 0);
        tcp(&x, sp, dp, 1, KG_TCP_SYN, NULL, 0);
        fix4(&x, ax);
        eth(&y, NULL, 0, 0x0800);
        size_t ay = ip4(&y, b, a, 6, 0);
        tcp(&y, dp, sp, 1, KG_TCP_SYN | KG_TCP_ACK, NULL, 0);
        fix4(&y, ay);
        struct kg_packet kx = pkt_of(&x, 1), ky = pkt_of(&y, 1);
        uint32_t hx = kg_dissect_packet_hash(&kx), hy = kg_dissect_packet_hash(&ky);
        CHECK(hx == hy);
        CHECK(hx != 0);
        if (i == 0) first = hx;
        else if (hx != first) distinct++;
    }
    CHECK(distinct > 1900); /* the hash spreads flows */
    /* UDP and its fragments hash alike (address pair + protocol). */
    struct pb u = udp4_packet("10.0.0.1", "10.0.0.2", 5000, 53, "abc", 3, NULL, 0);
    struct pb fr = u;
    fr.b[14 + 7] = 0x10;
    struct kg_packet ku = pkt_of(&u, 1), kf = pkt_of(&fr, 1);
    CHECK_EQ_INT(kg_dissect_packet_hash(&ku), kg_dissect_packet_hash(&kf));
}

/* ---- dissector ------------------------------------------------------------------ */

struct seen {
    int starts, ends, dns;
    char last_dns[256];
    uint16_t last_sport;
    int marks_new;
};

static void obs_cb(void *user, const struct kg_observation *o)
{
    struct seen *s = user;
    switch (o->type) {
    case KG_OBS_FLOW_START:
        s->starts++;
        s->last_sport = o->flow->key.sport;
        break;
    case KG_OBS_FLOW_END: s->ends++; break;
    case KG_OBS_DNS_QUERY:
        s->dns++;
        snprintf(s->last_dns, sizeof(s->last_dns), "%.*s", (int)o->value_len, o->value);
        if (kg_flow_mark(o->flow, 42)) s->marks_new++;
        break;
    default: break;
    }
}

static void test_dissector_dns_and_flows(void)
{
    struct seen s = {0};
    struct kg_dissector_config cfg = {.max_flows = 1024, .udp_timeout_s = 10};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, obs_cb, &s, &err);
    CHECK(d != NULL);
    if (!d) return;
    struct pb q = udp4_packet("10.0.0.1", "10.0.0.2", 5000, 53, dns_query_www_example_com,
                              sizeof(dns_query_www_example_com), NULL, 0);
    struct pb r = udp4_packet("10.0.0.2", "10.0.0.1", 53, 5000, dns_query_www_example_com,
                              sizeof(dns_query_www_example_com), NULL, 0);
    struct kg_packet kq = pkt_of(&q, 1000000), kr = pkt_of(&r, 1000100);
    kg_dissector_process(d, &kq);
    kg_dissector_process(d, &kr);
    CHECK_EQ_INT(s.starts, 1);           /* both directions: one flow */
    CHECK_EQ_INT(s.last_sport, 5000);    /* initiator is the first sender */
    CHECK_EQ_INT(s.dns, 2);              /* the query and the response's question */
    CHECK_EQ_STR(s.last_dns, "www.example.com");
    CHECK_EQ_INT(s.marks_new, 1);        /* kg_flow_mark dedups per flow */
    /* Idle timeout: a packet 11 s later on another flow expires the first. */
    struct pb o = udp4_packet("10.0.0.3", "10.0.0.4", 1, 2, "x", 1, NULL, 0);
    struct kg_packet ko = pkt_of(&o, 12000000);
    kg_dissector_process(d, &ko);
    CHECK_EQ_INT(s.ends, 1);
    CHECK_EQ_INT(kg_dissector_stats(d)->flows_timed_out, 1);
    kg_dissector_flush(d);
    CHECK_EQ_INT(s.ends, 2);
    CHECK_EQ_INT(kg_dissector_stats(d)->flows_active, 0);
    kg_dissector_free(d);
}

static void test_flow_table_bounded(void)
{
    struct seen s = {0};
    struct kg_dissector_config cfg = {.max_flows = 1024};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, obs_cb, &s, &err);
    if (!d) return;
    /* A SYN flood with random ports: the table never holds more than its cap. */
    for (int i = 0; i < 20000; i++) {
        struct pb p = {.n = 0};
        eth(&p, NULL, 0, 0x0800);
        size_t at = ip4(&p, "198.51.100.7", "10.0.0.1", 6, 0);
        tcp(&p, (uint16_t)(1024 + i % 60000), (uint16_t)(i / 60000 + 1), (uint32_t)i, KG_TCP_SYN, NULL, 0);
        fix4(&p, at);
        struct kg_packet k = pkt_of(&p, 1000000 + (uint64_t)i);
        kg_dissector_process(d, &k);
        CHECK(kg_dissector_stats(d)->flows_active <= 1024);
    }
    const struct kg_dissect_stats *st = kg_dissector_stats(d);
    CHECK_EQ_INT(st->flows_created, 20000);
    CHECK_EQ_INT(st->flows_evicted, 20000 - 1024);
    CHECK_EQ_INT(s.ends, 20000 - 1024);
    kg_dissector_free(d);
}

static void test_dns_tcp_split(void)
{
    struct seen s = {0};
    struct kg_dissector_config cfg = {.max_flows = 64};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, obs_cb, &s, &err);
    if (!d) return;
    /* Two length-prefixed messages; the second split across segments, with
     * its length prefix itself split. */
    uint8_t stream[2 * (2 + sizeof(dns_query_www_example_com))];
    size_t ml = sizeof(dns_query_www_example_com);
    stream[0] = 0, stream[1] = (uint8_t)ml;
    memcpy(stream + 2, dns_query_www_example_com, ml);
    stream[2 + ml] = 0, stream[3 + ml] = (uint8_t)ml;
    memcpy(stream + 4 + ml, dns_query_www_example_com, ml);
    size_t cut1 = 2 + ml + 1, total = sizeof(stream);
    uint32_t seq = 1000;
    struct pb a = {.n = 0}, b = {.n = 0};
    eth(&a, NULL, 0, 0x0800);
    size_t x = ip4(&a, "10.0.0.1", "10.0.0.2", 6, 0);
    tcp(&a, 40000, 53, seq, KG_TCP_ACK, stream, cut1);
    fix4(&a, x);
    eth(&b, NULL, 0, 0x0800);
    size_t y = ip4(&b, "10.0.0.1", "10.0.0.2", 6, 0);
    tcp(&b, 40000, 53, seq + (uint32_t)cut1, KG_TCP_ACK, stream + cut1, total - cut1);
    fix4(&b, y);
    struct kg_packet ka = pkt_of(&a, 1), kb = pkt_of(&b, 2);
    kg_dissector_process(d, &ka);
    CHECK_EQ_INT(s.dns, 1);
    kg_dissector_process(d, &kb);
    CHECK_EQ_INT(s.dns, 2);
    /* A retransmission of the second segment adds nothing. */
    kg_dissector_process(d, &kb);
    CHECK_EQ_INT(s.dns, 2);
    kg_dissector_free(d);
}


static void test_decode_gtpu_teredo(void)
{
    struct kg_decoded d;
    /* GTP-U G-PDU (3GPP TS 29.281): flags 0x30 (version 1, PT), type 0xff, length, TEID, inner IPv4. */
    struct pb g = {.n = 0};
    eth(&g, NULL, 0, 0x0800);
    size_t o = ip4(&g, "192.0.2.1", "192.0.2.2", 17, 0);
    size_t ou = g.n;
    put16(&g, 2152);
    put16(&g, 2152);
    put16(&g, 0);
    put16(&g, 0);
    size_t gh = g.n;
    put8(&g, 0x30);
    put8(&g, 0xff);
    put16(&g, 0);
    put32(&g, 0x1234);
    size_t in = ip4(&g, "10.20.30.40", "10.20.30.41", 17, 0);
    udp(&g, 999, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix4(&g, in);
    uint16_t gl = (uint16_t)(g.n - gh - 8);
    g.b[gh + 2] = (uint8_t)(gl >> 8), g.b[gh + 3] = (uint8_t)gl;
    uint16_t ul = (uint16_t)(g.n - ou);
    g.b[ou + 4] = (uint8_t)(ul >> 8), g.b[ou + 5] = (uint8_t)ul;
    fix4(&g, o);
    struct kg_packet k = pkt_of(&g, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK_EQ_INT(d.dport, 53);
    CHECK(memcmp(d.src, "\x0a\x14\x1e\x28", 4) == 0);

    /* Teredo (RFC 4380): UDP 3544 carrying IPv6 directly. */
    struct pb t = {.n = 0};
    eth(&t, NULL, 0, 0x0800);
    size_t to = ip4(&t, "192.0.2.1", "192.0.2.2", 17, 0);
    size_t tu = t.n;
    put16(&t, 3544);
    put16(&t, 40000);
    put16(&t, 0);
    put16(&t, 0);
    size_t i6 = ip6(&t, "2001:0::1", "2001:0::2", 17);
    udp(&t, 1000, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix6(&t, i6);
    uint16_t tl = (uint16_t)(t.n - tu);
    t.b[tu + 4] = (uint8_t)(tl >> 8), t.b[tu + 5] = (uint8_t)tl;
    fix4(&t, to);
    k = pkt_of(&t, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.family, 6);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK_EQ_INT(d.dport, 53);
    /* Port 3544 with a payload that is not IPv6 stays plain UDP. */
    struct pb n = udp4_packet("192.0.2.1", "192.0.2.2", 3544, 40000, "hello", 5, NULL, 0);
    k = pkt_of(&n, 1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 0);
    CHECK_EQ_INT(d.payload_len, 5);
}

static void test_span_duplicates(void)
{
    struct seen s = {0};
    struct kg_dissector_config cfg = {.max_flows = 64, .dedup_window_ms = 5};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, obs_cb, &s, &err);
    if (!d) return;
    struct pb q = udp4_packet("10.0.0.1", "10.0.0.2", 5000, 53, dns_query_www_example_com,
                              sizeof(dns_query_www_example_com), NULL, 0);
    struct kg_packet a = pkt_of(&q, 1000000), b = pkt_of(&q, 1000100), c = pkt_of(&q, 1100000);
    kg_dissector_process(d, &a);
    kg_dissector_process(d, &b); /* same frame 100 us later: the mirrored copy */
    kg_dissector_process(d, &c); /* 100 ms later: a retransmission, kept */
    CHECK_EQ_INT(kg_dissector_stats(d)->decode_duplicates, 1);
    CHECK_EQ_INT(s.dns, 2);
    kg_dissector_free(d);
}

static void test_tcp_close_and_reuse(void)
{
    struct seen s = {0};
    struct kg_dissector_config cfg = {.max_flows = 64, .closed_timeout_s = 5};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, obs_cb, &s, &err);
    if (!d) return;
    uint8_t flags[] = {KG_TCP_SYN, KG_TCP_SYN | KG_TCP_ACK, KG_TCP_ACK, KG_TCP_FIN | KG_TCP_ACK,
                       KG_TCP_FIN | KG_TCP_ACK};
    bool from_client[] = {true, false, true, true, false};
    for (int i = 0; i < 5; i++) {
        struct pb p = {.n = 0};
        eth(&p, NULL, 0, 0x0800);
        size_t at = from_client[i] ? ip4(&p, "10.0.0.1", "10.0.0.2", 6, 0) : ip4(&p, "10.0.0.2", "10.0.0.1", 6, 0);
        if (from_client[i]) tcp(&p, 40000, 80, 1, flags[i], NULL, 0);
        else tcp(&p, 80, 40000, 1, flags[i], NULL, 0);
        fix4(&p, at);
        struct kg_packet k = pkt_of(&p, 1000000 + (uint64_t)i);
        kg_dissector_process(d, &k);
    }
    CHECK_EQ_INT(kg_dissector_stats(d)->flows_closed, 1);
    CHECK_EQ_INT(s.ends, 0);
    /* A new SYN on the same 5-tuple right away is a new connection. */
    struct pb p = {.n = 0};
    eth(&p, NULL, 0, 0x0800);
    size_t at = ip4(&p, "10.0.0.1", "10.0.0.2", 6, 0);
    tcp(&p, 40000, 80, 99, KG_TCP_SYN, NULL, 0);
    fix4(&p, at);
    struct kg_packet k = pkt_of(&p, 1000010);
    kg_dissector_process(d, &k);
    CHECK_EQ_INT(s.ends, 1);
    CHECK_EQ_INT(s.starts, 2);
    /* The closed timeout (5 s) is shorter than the TCP idle one (600 s). */
    struct pb f2 = {.n = 0};
    eth(&f2, NULL, 0, 0x0800);
    at = ip4(&f2, "10.0.0.2", "10.0.0.1", 6, 0);
    tcp(&f2, 80, 40000, 1, KG_TCP_RST, NULL, 0);
    fix4(&f2, at);
    k = pkt_of(&f2, 1000020);
    kg_dissector_process(d, &k);
    struct pb o = udp4_packet("10.0.0.3", "10.0.0.4", 1, 2, "x", 1, NULL, 0);
    k = pkt_of(&o, 7000000);
    kg_dissector_process(d, &k);
    CHECK_EQ_INT(s.ends, 2);
    kg_dissector_free(d);
}

/* ServerHello parsing and JA3S. Expected hashes computed independently:
 *   python3 -c "import hashlib;print(hashlib.md5(b'771,49199,65281-11').hexdigest())"
 *   -> 303951d4c50efb2e991652225a6f02b1
 *   python3 -c "import hashlib;print(hashlib.md5(b'771,4865,43').hexdigest())"
 *   -> cce84e7a8b742462e40afb585a3e3ccc */
static void test_server_hello(void)
{
    struct pb p = {.n = 0};
    put8(&p, 2);       /* handshake type: ServerHello */
    put8(&p, 0);       /* length (24 bits): patched */
    put16(&p, 0);
    put16(&p, 0x0303); /* legacy_version TLS 1.2 */
    for (int i = 0; i < 32; i++) put8(&p, (uint8_t)i); /* random */
    put8(&p, 0);       /* session id: empty */
    put16(&p, 0xc02f); /* TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 */
    put8(&p, 0);       /* compression: null */
    put16(&p, 11);     /* extensions length */
    put16(&p, 0xff01); put16(&p, 1); put8(&p, 0);          /* renegotiation_info */
    put16(&p, 0x000b); put16(&p, 2); put8(&p, 1); put8(&p, 0); /* ec_point_formats */
    size_t body = p.n - 4;
    p.b[2] = (uint8_t)(body >> 8), p.b[3] = (uint8_t)body;
    struct kg_tls_server_hello sh;
    CHECK_EQ_INT(kg_tls_parse_server_hello(p.b, p.n, &sh), 0);
    CHECK_EQ_INT(sh.version, 0x0303);
    CHECK_EQ_INT(sh.cipher, 0xc02f);
    CHECK_EQ_STR(sh.ja3s, "303951d4c50efb2e991652225a6f02b1");
    /* Every truncation is refused, never read past. */
    for (size_t n = 0; n < p.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, p.b, n);
        CHECK(kg_tls_parse_server_hello(copy, n, &sh) == -1);
        free(copy);
    }

    /* TLS 1.3: legacy_version 1.2, supported_versions says 1.3. */
    struct pb q = {.n = 0};
    put8(&q, 2); put8(&q, 0); put16(&q, 0);
    put16(&q, 0x0303);
    for (int i = 0; i < 32; i++) put8(&q, 0xaa);
    put8(&q, 0);
    put16(&q, 0x1301); /* TLS_AES_128_GCM_SHA256 */
    put8(&q, 0);
    put16(&q, 6);
    put16(&q, 0x002b); put16(&q, 2); put16(&q, 0x0304); /* supported_versions: TLS 1.3 */
    body = q.n - 4;
    q.b[2] = (uint8_t)(body >> 8), q.b[3] = (uint8_t)body;
    CHECK_EQ_INT(kg_tls_parse_server_hello(q.b, q.n, &sh), 0);
    CHECK_EQ_INT(sh.version, 0x0304);
    CHECK_EQ_STR(sh.ja3s, "cce84e7a8b742462e40afb585a3e3ccc");
}

/* A server's TLS 1.2 handshake (ServerHello + Certificate) split over three
 * segments that arrive out of order, the first data segment last: the
 * certificate SHA1 is still reported, exactly once. */
struct cert_seen {
    int certs;
    char sha1[41];
};

static void cert_cb(void *user, const struct kg_observation *o)
{
    struct cert_seen *c = user;
    if (o->type == KG_OBS_TLS_CERT_SHA1) {
        c->certs++;
        snprintf(c->sha1, sizeof(c->sha1), "%.*s", (int)o->value_len, o->value);
    }
}

static void test_tls_out_of_order(void)
{
    /* The "certificate": 300 bytes that need not be valid DER for the SHA1. */
    uint8_t der[300];
    for (size_t i = 0; i < sizeof(der); i++) der[i] = (uint8_t)(i * 7 + 3);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(der, sizeof(der), md, &mdlen, EVP_sha1(), NULL);
    char want[41];
    for (int i = 0; i < 20; i++) snprintf(want + 2 * i, 3, "%02x", md[i]);

    /* Handshake messages: ServerHello (minimal, no extensions), Certificate. */
    struct pb hs = {.n = 0};
    put8(&hs, 2); put8(&hs, 0); put16(&hs, 38);
    put16(&hs, 0x0303);
    for (int i = 0; i < 32; i++) put8(&hs, 0x11);
    put8(&hs, 0);
    put16(&hs, 0xc02f);
    put8(&hs, 0);
    put8(&hs, 11); put8(&hs, 0); put16(&hs, (uint16_t)(3 + 3 + sizeof(der)));
    put8(&hs, 0); put16(&hs, (uint16_t)(3 + sizeof(der)));
    put8(&hs, 0); put16(&hs, (uint16_t)sizeof(der));
    put(&hs, der, sizeof(der));
    /* One handshake record carrying both. */
    struct pb rec = {.n = 0};
    put8(&rec, 22); put16(&rec, 0x0303); put16(&rec, (uint16_t)hs.n);
    put(&rec, hs.b, hs.n);

    struct cert_seen c = {0};
    struct kg_dissector_config cfg = {.max_flows = 64};
    struct kg_err err;
    struct kg_dissector *d = kg_dissector_new(&cfg, cert_cb, &c, &err);
    if (!d) return;
    uint32_t isn = 1000000;
    struct pb syn = {.n = 0}, synack = {.n = 0};
    eth(&syn, NULL, 0, 0x0800);
    size_t a = ip4(&syn, "10.0.0.1", "10.0.0.2", 6, 0);
    tcp(&syn, 40000, 443, 5, KG_TCP_SYN, NULL, 0);
    fix4(&syn, a);
    eth(&synack, NULL, 0, 0x0800);
    a = ip4(&synack, "10.0.0.2", "10.0.0.1", 6, 0);
    tcp(&synack, 443, 40000, isn, KG_TCP_SYN | KG_TCP_ACK, NULL, 0);
    fix4(&synack, a);
    struct kg_packet k1 = pkt_of(&syn, 1), k2 = pkt_of(&synack, 2);
    kg_dissector_process(d, &k1);
    kg_dissector_process(d, &k2);
    size_t cut[4] = {0, 100, 250, rec.n};
    int order[3] = {2, 1, 0}; /* last segment first, first segment last */
    for (int j = 0; j < 3; j++) {
        int i = order[j];
        struct pb seg = {.n = 0};
        eth(&seg, NULL, 0, 0x0800);
        a = ip4(&seg, "10.0.0.2", "10.0.0.1", 6, 0);
        tcp(&seg, 443, 40000, isn + 1 + (uint32_t)cut[i], KG_TCP_ACK, rec.b + cut[i], cut[i + 1] - cut[i]);
        fix4(&seg, a);
        struct kg_packet k = pkt_of(&seg, 3 + (uint64_t)j);
        kg_dissector_process(d, &k);
        if (j < 2) CHECK_EQ_INT(c.certs, 0);
    }
    CHECK_EQ_INT(c.certs, 1);
    CHECK_EQ_STR(c.sha1, want);
    kg_dissector_free(d);
}

/* decoder.max_depth: GRE in GRE with a limit of 1 stops at the first
 * tunnel and flags the packet; with the default both are followed. */
static void test_decode_max_depth(void)
{
    struct pb g = {.n = 0};
    eth(&g, NULL, 0, 0x0800);
    size_t o = ip4(&g, "192.0.2.1", "192.0.2.2", 47, 0);
    put16(&g, 0);
    put16(&g, 0x0800);
    size_t m = ip4(&g, "198.51.100.1", "198.51.100.2", 47, 0);
    put16(&g, 0);
    put16(&g, 0x0800);
    size_t i = ip4(&g, "10.9.9.9", "10.9.9.8", 17, 0);
    udp(&g, 1000, 53, dns_query_www_example_com, sizeof(dns_query_www_example_com));
    fix4(&g, i);
    fix4(&g, m);
    fix4(&g, o);
    struct kg_packet k = pkt_of(&g, 1);
    struct kg_decoded d;
    kg_decode_set_max_depth(1);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 1);
    CHECK(d.too_deep);
    CHECK_EQ_INT(d.proto, 47); /* dissected at the last layer followed: the inner GRE */
    kg_decode_set_max_depth(8);
    CHECK_EQ_INT(kg_decode(&k, &d), KG_DECODE_OK);
    CHECK_EQ_INT(d.tunnels, 2);
    CHECK(!d.too_deep);
    CHECK_EQ_INT(d.dport, 53);
}

int main(void)
{
    KG_TEST_RUN(test_decode_basic);
    KG_TEST_RUN(test_decode_ipv6_tcp_and_errors);
    KG_TEST_RUN(test_decode_tunnels);
    KG_TEST_RUN(test_decode_max_depth);
    KG_TEST_RUN(test_flow_hash_symmetry);
    KG_TEST_RUN(test_dissector_dns_and_flows);
    KG_TEST_RUN(test_flow_table_bounded);
    KG_TEST_RUN(test_dns_tcp_split);
    KG_TEST_RUN(test_decode_gtpu_teredo);
    KG_TEST_RUN(test_span_duplicates);
    KG_TEST_RUN(test_tcp_close_and_reuse);
    KG_TEST_RUN(test_server_hello);
    KG_TEST_RUN(test_tls_out_of_order);
    KG_TEST_MAIN_END();
}
