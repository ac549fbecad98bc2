/*
 * tests/unit/test_dissect_parsers.c — unit tests for the DNS question parser
 * and the HTTP/1.x request finder (dissect/dissect_parsers.h).
 *
 * Every hostile-input test copies its bytes into a heap block of exactly
 * the tested length, so an out-of-bounds read shows up under
 * -DKG_SANITIZE=address. The random-input loops run KG_RANDOM_ITERS
 * iterations per parser (default 200000) from KG_RANDOM_SEED (default
 * fixed, printed), so a failure can be replayed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dissect/dissect_parsers.h"
#include "kg_test.h"

/* ---- helpers ------------------------------------------------------------- */

/* Heap copy of exactly n bytes (n may be 0), for ASan-visible bounds. */
static uint8_t *dup_exact(const void *src, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        perror("malloc");
        exit(2);
    }
    if (n) memcpy(b, src, n);
    return b;
}

#define MAXQ 16
struct dns_seen {
    int n;
    char name[MAXQ][KG_DNS_NAME_MAX];
    size_t name_len[MAXQ];
    uint16_t qtype[MAXQ], qclass[MAXQ];
    int bad; /* callback invariant violations */
};

static void dns_cb(void *user, const char *name, size_t name_len, uint16_t qtype, uint16_t qclass)
{
    struct dns_seen *s = user;
    if (name == NULL || name_len >= KG_DNS_NAME_MAX || name[name_len] != '\0') s->bad++;
    if (s->n < MAXQ && name != NULL && name_len < KG_DNS_NAME_MAX) {
        memcpy(s->name[s->n], name, name_len + 1);
        s->name_len[s->n] = name_len;
        s->qtype[s->n] = qtype;
        s->qclass[s->n] = qclass;
    }
    s->n++;
}

static int dns_parse(const uint8_t *msg, size_t len, struct kg_dns_msg_info *info, struct dns_seen *s)
{
    memset(s, 0, sizeof(*s));
    uint8_t *b = dup_exact(msg, len);
    int rc = kg_dns_parse_message(b, len, info, dns_cb, s);
    free(b);
    return rc;
}

#define MAXR 8
struct http_seen {
    int n;
    struct {
        char method[16], uri[128], host[128], ua[128];
        int has_host, has_ua;
        int version_minor;
    } r[MAXR];
    const uint8_t *base;
    size_t len;
    int bad; /* a field outside the payload, or an empty method/uri */
};

static int in_payload(const struct http_seen *s, const char *f, size_t n)
{
    const uint8_t *u = (const uint8_t *)f;
    return u >= s->base && u <= s->base + s->len && n <= (size_t)(s->base + s->len - u);
}

static void copy_field(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void http_cb(void *user, const struct kg_http_request *req)
{
    struct http_seen *s = user;
    if (!req->method || !req->uri || req->method_len == 0 || req->uri_len == 0 ||
        !in_payload(s, req->method, req->method_len) || !in_payload(s, req->uri, req->uri_len) ||
        (req->host && !in_payload(s, req->host, req->host_len)) ||
        (req->user_agent && !in_payload(s, req->user_agent, req->user_agent_len)) ||
        (req->version_minor != 0 && req->version_minor != 1 && req->version_minor != 9))
        s->bad++;
    if (s->n < MAXR && !s->bad) {
        copy_field(s->r[s->n].method, sizeof(s->r[0].method), req->method, req->method_len);
        copy_field(s->r[s->n].uri, sizeof(s->r[0].uri), req->uri, req->uri_len);
        s->r[s->n].has_host = req->host != NULL;
        if (req->host) copy_field(s->r[s->n].host, sizeof(s->r[0].host), req->host, req->host_len);
        s->r[s->n].has_ua = req->user_agent != NULL;
        if (req->user_agent)
            copy_field(s->r[s->n].ua, sizeof(s->r[0].ua), req->user_agent, req->user_agent_len);
        s->r[s->n].version_minor = req->version_minor;
    }
    s->n++;
}

static int http_parse_n(const void *data, size_t len, struct http_seen *s)
{
    memset(s, 0, sizeof(*s));
    uint8_t *b = dup_exact(data, len);
    s->base = b;
    s->len = len;
    int rc = kg_http_parse_requests(b, len, http_cb, s);
    free(b);
    s->base = NULL;
    return rc;
}

static int http_parse(const char *text, struct http_seen *s)
{
    return http_parse_n(text, strlen(text), s);
}

/* Small deterministic PRNG (xorshift64*): reproducible random inputs. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng_next() % n) : 0;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return dflt;
    char *end;
    long n = strtol(v, &end, 0);
    return (*end == '\0' && n >= 0) ? n : dflt;
}

/* ---- DNS fixtures ---------------------------------------------------------- */
/* Byte fixtures keep their message layout. */
/* clang-format off */

/* Query: id 0x1234, flags 0x0100 (RD), QD=1 AN=0 NS=0 AR=0;
 * question "www.example.com" type A (1) class IN (1). 33 bytes. */
static const uint8_t dns_query[] = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
    0x00, 0x01, 0x00, 0x01,
};

/* Response: id 0xabcd, flags 0x8180 (QR, RD, RA, rcode 0), QD=1 AN=2.
 * Q:  "example.com" A IN                              (offset 12, 17 bytes)
 * A1: C0 0C (-> example.com) A IN ttl 300 len 4 93.184.216.34
 * A2: "www" C0 0C (-> www.example.com) CNAME IN ttl 60 len 2 C0 0C */
static const uint8_t dns_response[] = {
    0xab, 0xcd, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0x00, 0x01, 0x00, 0x01,
    0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2C, 0x00, 0x04, 93, 184, 216, 34,
    3, 'w', 'w', 'w', 0xC0, 0x0C, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x02, 0xC0, 0x0C,
};

/* Query with three questions: id 0x0001, flags 0, QD=3.
 * Q1 @12: "a.example" A IN                     1 'a' 7 'example' 0
 * Q2 @27: "b" + pointer to "example" at 14 -> "b.example" AAAA (28) IN
 * Q3 @35: root "" NS (2) IN */
static const uint8_t dns_multi[] = {
    0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0x00, 0x01, 0x00, 0x01,
    1, 'b', 0xC0, 14, 0x00, 0x1C, 0x00, 0x01,
    0, 0x00, 0x02, 0x00, 0x01,
};
/* End offsets of the questions above, for the prefix test. */
static const size_t dns_multi_qend[] = {27, 35, 40};

/* mDNS query: id 0, flags 0, QD=1; "_services._dns-sd._udp.local" PTR (12),
 * class 0x8001 = IN with the unicast-response bit (RFC 6762 section 5.4). */
static const uint8_t dns_mdns[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    9, '_', 's', 'e', 'r', 'v', 'i', 'c', 'e', 's', 7, '_', 'd', 'n', 's', '-', 's', 'd',
    4, '_', 'u', 'd', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0, 0x00, 0x0C, 0x80, 0x01,
};

/* clang-format on */

/* Header with the given qdcount followed by `body`, into out; returns length. */
static size_t dns_build(uint8_t *out, uint16_t qdcount, const uint8_t *body, size_t body_len)
{
    static const uint8_t hdr[12] = {0x77, 0x77, 0x01, 0x00};
    memcpy(out, hdr, 12);
    out[4] = (uint8_t)(qdcount >> 8);
    out[5] = (uint8_t)qdcount;
    memcpy(out + 12, body, body_len);
    return 12 + body_len;
}

/* Appends labels of the given lengths (filled with 'a'+i) at out; returns bytes written. */
static size_t put_labels(uint8_t *out, const int *lens, int n)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        out[o++] = (uint8_t)lens[i];
        memset(out + o, 'a' + i, (size_t)lens[i]);
        o += (size_t)lens[i];
    }
    return o;
}

/* ---- DNS tests --------------------------------------------------------------- */

static void test_dns_query(void)
{
    struct kg_dns_msg_info info;
    struct dns_seen s;
    CHECK_EQ_INT(dns_parse(dns_query, sizeof(dns_query), &info, &s), 1);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_STR(s.name[0], "www.example.com");
    CHECK_EQ_INT(s.name_len[0], 15);
    CHECK_EQ_INT(s.qtype[0], 1);
    CHECK_EQ_INT(s.qclass[0], 1);
    CHECK_EQ_INT(info.id, 0x1234);
    CHECK(!info.is_response);
    CHECK_EQ_INT(info.opcode, 0);
    CHECK_EQ_INT(info.rcode, 0);
    CHECK_EQ_INT(info.qdcount, 1);
    CHECK_EQ_INT(info.ancount, 0);

    /* info and cb are optional */
    CHECK_EQ_INT(kg_dns_parse_message(dns_query, sizeof(dns_query), NULL, NULL, NULL), 1);
}

static void test_dns_response(void)
{
    struct kg_dns_msg_info info;
    struct dns_seen s;
    CHECK_EQ_INT(dns_parse(dns_response, sizeof(dns_response), &info, &s), 1);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.name[0], "example.com");
    CHECK_EQ_INT(info.id, 0xabcd);
    CHECK(info.is_response);
    CHECK_EQ_INT(info.rcode, 0);
    CHECK_EQ_INT(info.qdcount, 1);
    CHECK_EQ_INT(info.ancount, 2);
    CHECK_EQ_INT(info.nscount, 0);
    CHECK_EQ_INT(info.arcount, 0);

    /* Flag decoding: QR=1, opcode 5 (UPDATE), AA, rcode 3 (NXDOMAIN) = 0xAC03;
     * counts AN=0x0102 NS=0x0304 AR=0x0506, QD=0. */
    static const uint8_t hdr[] = {0xff, 0xfe, 0xAC, 0x03, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
    CHECK_EQ_INT(dns_parse(hdr, sizeof(hdr), &info, &s), 0);
    CHECK_EQ_INT(s.n, 0);
    CHECK_EQ_INT(info.id, 0xfffe);
    CHECK(info.is_response);
    CHECK_EQ_INT(info.opcode, 5);
    CHECK_EQ_INT(info.rcode, 3);
    CHECK_EQ_INT(info.ancount, 0x0102);
    CHECK_EQ_INT(info.nscount, 0x0304);
    CHECK_EQ_INT(info.arcount, 0x0506);
}

static void test_dns_multi(void)
{
    struct dns_seen s;
    CHECK_EQ_INT(dns_parse(dns_multi, sizeof(dns_multi), NULL, &s), 3);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_STR(s.name[0], "a.example");
    CHECK_EQ_INT(s.qtype[0], 1);
    CHECK_EQ_STR(s.name[1], "b.example");
    CHECK_EQ_INT(s.qtype[1], 28);
    CHECK_EQ_STR(s.name[2], "");
    CHECK_EQ_INT(s.name_len[2], 0);
    CHECK_EQ_INT(s.qtype[2], 2);
    CHECK_EQ_INT(s.qclass[2], 1);
}

static void test_dns_bad_pointers(void)
{
    uint8_t m[600];
    struct dns_seen s;
    size_t n;

    /* Pointer to itself: C0 0C at offset 12. */
    static const uint8_t self[] = {0xC0, 0x0C, 0, 1, 0, 1};
    n = dns_build(m, 1, self, sizeof(self));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    CHECK_EQ_INT(s.n, 0);

    /* Loop through a label: @12 1 'a' C0 0C -> "a.a.a..." forever. The
     * pointer is before its own position but not before its label run. */
    static const uint8_t loop[] = {1, 'a', 0xC0, 0x0C, 0, 1, 0, 1};
    n = dns_build(m, 1, loop, sizeof(loop));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);

    /* Two-name cycle: Q1 "x" is fine (@12); Q2 @19 is 1 'y' C0 23, and @23
     * sits 1 'z' C0 19. Closing a cycle always takes a forward pointer. */
    static const uint8_t loop2[] = {1, 'x', 0, 0, 1, 0, 1, 1, 'y', 0xC0, 23, 1, 'z', 0xC0, 19, 0, 1, 0, 1};
    n = dns_build(m, 2, loop2, sizeof(loop2));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    CHECK_EQ_INT(s.n, 1); /* the question before the error stays reported */
    CHECK_EQ_STR(s.name[0], "x");

    /* Forward pointer: Q1 -> C0 18 points at Q2's name, later in the message. */
    static const uint8_t fwd[] = {0xC0, 18, 0, 1, 0, 1, 3, 'f', 'o', 'o', 0, 0, 1, 0, 1};
    n = dns_build(m, 2, fwd, sizeof(fwd));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    CHECK_EQ_INT(s.n, 0);

    /* Pointers out of the message: to offset 0x3FFF and 0xFF. */
    static const uint8_t oob1[] = {0xFF, 0xFF, 0, 1, 0, 1};
    n = dns_build(m, 1, oob1, sizeof(oob1));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    static const uint8_t oob2[] = {0xC0, 0xFF, 0, 1, 0, 1};
    n = dns_build(m, 1, oob2, sizeof(oob2));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);

    /* Pointer into the header (offset 0), where id 0x0161 and flags 0x0000
     * would read as the name "a" if pointers into the header were followed. */
    /* clang-format off */
    static const uint8_t hdrp[] = {0x01, 'a', 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0xC0, 0x00, 0, 1, 0, 1};
    /* clang-format on */
    CHECK_EQ_INT(dns_parse(hdrp, sizeof(hdrp), NULL, &s), -1);
    CHECK_EQ_INT(s.n, 0);

    /* A pointer cut in half at the end of the message. */
    static const uint8_t half[] = {0xC0};
    n = dns_build(m, 1, half, sizeof(half));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);

    /* Valid chain of pointers: Q1 "example" @12; Q2 @25 "b" -> 12;
     * Q3 @33 "c" -> 25 -> 12 gives "c.b.example". */
    /* clang-format off */
    static const uint8_t chain[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
                                    1, 'b', 0xC0, 12, 0, 1, 0, 1,
                                    1, 'c', 0xC0, 25, 0, 1, 0, 1};
    /* clang-format on */
    n = dns_build(m, 3, chain, sizeof(chain));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), 3);
    CHECK_EQ_STR(s.name[1], "b.example");
    CHECK_EQ_STR(s.name[2], "c.b.example");

    /* Reserved label types 0x40 and 0x80. */
    static const uint8_t t40[] = {0x41, 'a', 0, 0, 1, 0, 1};
    n = dns_build(m, 1, t40, sizeof(t40));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    static const uint8_t t80[] = {0x81, 'a', 0, 0, 1, 0, 1};
    n = dns_build(m, 1, t80, sizeof(t80));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
}

static void test_dns_name_length(void)
{
    uint8_t body[600], m[700];
    struct dns_seen s;
    size_t o, n;

    /* 63+63+63+61 label bytes, 4 length octets, 1 zero octet = 255 wire bytes. */
    const int ok[] = {63, 63, 63, 61};
    o = put_labels(body, ok, 4);
    body[o++] = 0;
    CHECK_EQ_INT(o, 255);
    memcpy(body + o, "\x00\x01\x00\x01", 4);
    n = dns_build(m, 1, body, o + 4);
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), 1);
    CHECK_EQ_INT(s.name_len[0], 63 * 3 + 61 + 3);
    CHECK_EQ_INT(strlen(s.name[0]), 63 * 3 + 61 + 3);
    CHECK_EQ_INT(s.name[0][63], '.');

    /* One more label byte: 256 wire bytes. */
    const int big[] = {63, 63, 63, 62};
    o = put_labels(body, big, 4);
    body[o++] = 0;
    CHECK_EQ_INT(o, 256);
    memcpy(body + o, "\x00\x01\x00\x01", 4);
    n = dns_build(m, 1, body, o + 4);
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), -1);
    CHECK_EQ_INT(s.n, 0);

    /* The limit applies to the expanded name across a pointer:
     * Q1 = 200 wire bytes (63+63+63+6 labels); Q2 = one label + pointer to Q1. */
    const int q1[] = {63, 63, 63, 6};
    for (int extra = 54; extra <= 55; extra++) {
        o = put_labels(body, q1, 4);
        body[o++] = 0;
        CHECK_EQ_INT(o, 200);
        memcpy(body + o, "\x00\x01\x00\x01", 4);
        o += 4;
        body[o++] = (uint8_t)extra;
        memset(body + o, 'z', (size_t)extra);
        o += (size_t)extra;
        body[o++] = 0xC0;
        body[o++] = 12;
        memcpy(body + o, "\x00\x01\x00\x01", 4);
        o += 4;
        n = dns_build(m, 2, body, o);
        /* 1 + 54 + 200 = 255 is fine; 1 + 55 + 200 = 256 is not. */
        CHECK_EQ_INT(dns_parse(m, n, NULL, &s), extra == 54 ? 2 : -1);
        CHECK_EQ_INT(s.n, extra == 54 ? 2 : 1);
    }

    /* Many tiny labels: 127 x "a" = 254 bytes + 0 = 255 wire bytes. */
    o = 0;
    for (int i = 0; i < 127; i++) {
        body[o++] = 1;
        body[o++] = 'a';
    }
    body[o++] = 0;
    memcpy(body + o, "\x00\x01\x00\x01", 4);
    n = dns_build(m, 1, body, o + 4);
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), 1);
    CHECK_EQ_INT(s.name_len[0], 127 * 2 - 1);
}

static void test_dns_label_bytes(void)
{
    /* Labels "a.b", "c\d" and {00 ff 20}: '.' and '\' escaped, the rest raw. */
    static const uint8_t body[] = {3, 'a', '.', 'b', 3, 'c', '\\', 'd', 3, 0x00, 0xff, ' ', 0, 0, 16, 0, 1};
    static const char want[] = {'a', '\\', '.', 'b', '.', 'c', '\\', '\\', 'd', '.', 0x00, (char)0xff, ' '};
    uint8_t m[64];
    struct dns_seen s;
    size_t n = dns_build(m, 1, body, sizeof(body));
    CHECK_EQ_INT(dns_parse(m, n, NULL, &s), 1);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(s.name_len[0], sizeof(want));
    CHECK(memcmp(s.name[0], want, sizeof(want)) == 0);
    CHECK_EQ_INT(s.name[0][sizeof(want)], '\0');
    CHECK_EQ_INT(s.qtype[0], 16);

    /* Worst case for the output buffer: 255 wire bytes, all '\'. */
    uint8_t big[12 + 255 + 4];
    uint8_t *b = big + 12;
    size_t o = 0;
    const int lens[] = {63, 63, 63, 61};
    for (int i = 0; i < 4; i++) {
        b[o++] = (uint8_t)lens[i];
        memset(b + o, '\\', (size_t)lens[i]);
        o += (size_t)lens[i];
    }
    b[o++] = 0;
    memcpy(b + o, "\x00\x01\x00\x01", 4);
    n = dns_build(big, 1, b, o + 4);
    CHECK_EQ_INT(dns_parse(big, n, NULL, &s), 1);
    CHECK_EQ_INT(s.name_len[0], 2 * (63 * 3 + 61) + 3);
    CHECK_EQ_INT(s.bad, 0);
}

static void test_dns_mdns(void)
{
    struct kg_dns_msg_info info;
    struct dns_seen s;
    CHECK_EQ_INT(dns_parse(dns_mdns, sizeof(dns_mdns), &info, &s), 1);
    CHECK_EQ_STR(s.name[0], "_services._dns-sd._udp.local");
    CHECK_EQ_INT(s.qtype[0], 12);
    CHECK_EQ_INT(s.qclass[0], 0x8001);
    CHECK_EQ_INT(info.id, 0);
}

/* Every prefix of a valid message: -1, or every question reported. */
static void check_prefixes(const uint8_t *msg, size_t len, const size_t *qend, int nq)
{
    struct dns_seen full, s;
    CHECK_EQ_INT(dns_parse(msg, len, NULL, &full), nq);
    for (size_t k = 0; k < len; k++) {
        struct kg_dns_msg_info info;
        int rc = dns_parse(msg, k, &info, &s);
        int contained = 0;
        while (contained < nq && qend[contained] <= k)
            contained++;
        if (k < 12) {
            CHECK_EQ_INT(rc, -1);
            CHECK_EQ_INT(info.qdcount, 0);
        } else if (contained == nq) {
            CHECK_EQ_INT(rc, nq);
        } else {
            CHECK_EQ_INT(rc, -1);
        }
        /* Whatever was reported is exactly the start of the full list. */
        CHECK(s.n <= contained);
        CHECK_EQ_INT(s.bad, 0);
        for (int i = 0; i < s.n && i < MAXQ; i++) {
            CHECK_EQ_STR(s.name[i], full.name[i]);
            CHECK_EQ_INT(s.qtype[i], full.qtype[i]);
        }
    }
}

static void test_dns_truncated(void)
{
    static const size_t q_query[] = {sizeof(dns_query)};
    static const size_t q_resp[] = {29};
    static const size_t q_mdns[] = {sizeof(dns_mdns)};
    check_prefixes(dns_query, sizeof(dns_query), q_query, 1);
    check_prefixes(dns_response, sizeof(dns_response), q_resp, 1);
    check_prefixes(dns_multi, sizeof(dns_multi), dns_multi_qend, 3);
    check_prefixes(dns_mdns, sizeof(dns_mdns), q_mdns, 1);

    /* qdcount far above what the data holds: two questions, then the end. */
    uint8_t m[64];
    memcpy(m, dns_multi, sizeof(dns_multi));
    m[4] = 0xFF;
    m[5] = 0xFF;
    struct dns_seen s;
    CHECK_EQ_INT(dns_parse(m, 35, NULL, &s), -1);
    CHECK_EQ_INT(s.n, 2);

    /* A NULL message. */
    CHECK_EQ_INT(kg_dns_parse_message(NULL, 100, NULL, NULL, NULL), -1);
}

/* ---- HTTP tests -------------------------------------------------------------- */

static void test_http_simple(void)
{
    struct http_seen s;
    CHECK_EQ_INT(http_parse("GET /index.html?q=1 HTTP/1.1\r\n"
                            "Host: example.com\r\n"
                            "User-Agent: curl/8.0.1\r\n"
                            "Accept: */*\r\n"
                            "\r\n",
                            &s),
                 1);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_STR(s.r[0].method, "GET");
    CHECK_EQ_STR(s.r[0].uri, "/index.html?q=1");
    CHECK(s.r[0].has_host);
    CHECK_EQ_STR(s.r[0].host, "example.com");
    CHECK(s.r[0].has_ua);
    CHECK_EQ_STR(s.r[0].ua, "curl/8.0.1");
    CHECK_EQ_INT(s.r[0].version_minor, 1);

    /* No Host, no User-Agent, HTTP/1.0. */
    CHECK_EQ_INT(http_parse("HEAD / HTTP/1.0\r\n\r\n", &s), 1);
    CHECK(!s.r[0].has_host);
    CHECK(!s.r[0].has_ua);
    CHECK_EQ_INT(s.r[0].version_minor, 0);

    /* CONNECT authority-form, OPTIONS asterisk-form. */
    CHECK_EQ_INT(http_parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].uri, "example.com:443");
    CHECK_EQ_INT(http_parse("OPTIONS * HTTP/1.1\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].uri, "*");

    /* cb may be NULL. */
    CHECK_EQ_INT(kg_http_parse_requests((const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, NULL, NULL), 1);
}

static void test_http_methods(void)
{
    static const char *const methods[] = {"GET",     "HEAD",  "POST",  "PUT",      "DELETE",    "CONNECT",
                                          "OPTIONS", "TRACE", "PATCH", "PROPFIND", "PROPPATCH", "MKCOL",
                                          "COPY",    "MOVE",  "LOCK",  "UNLOCK"};
    char buf[128];
    struct http_seen s;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        snprintf(buf, sizeof(buf), "%s /x HTTP/1.1\r\n\r\n", methods[i]);
        CHECK_EQ_INT(http_parse(buf, &s), 1);
        CHECK_EQ_STR(s.r[0].method, methods[i]);
        /* Lower case is not the same method (RFC 9110 section 9.1). */
        for (char *c = buf; *c != ' '; c++)
            *c = (char)(*c - 'A' + 'a');
        CHECK_EQ_INT(http_parse(buf, &s), 0);
    }
    /* Prefixes and extensions of method names. */
    CHECK_EQ_INT(http_parse("GETS / HTTP/1.1\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("PROP / HTTP/1.1\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &s), 0);
}

static void test_http_pipelined(void)
{
    struct http_seen s;
    CHECK_EQ_INT(http_parse("GET /a HTTP/1.1\r\nHost: one.example\r\n\r\n"
                            "GET /b HTTP/1.1\r\nHost: two.example\r\nUser-Agent: x\r\n\r\n"
                            "HEAD /c HTTP/1.1\r\n\r\n",
                            &s),
                 3);
    CHECK_EQ_STR(s.r[0].uri, "/a");
    CHECK_EQ_STR(s.r[0].host, "one.example");
    CHECK(!s.r[0].has_ua);
    CHECK_EQ_STR(s.r[1].uri, "/b");
    CHECK_EQ_STR(s.r[1].host, "two.example");
    CHECK_EQ_STR(s.r[1].ua, "x");
    CHECK_EQ_STR(s.r[2].method, "HEAD");
    CHECK(!s.r[2].has_host);

    /* Bare LF line endings throughout. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\nHost: lf.example\n\nGET /2 HTTP/1.1\n\n", &s), 2);
    CHECK_EQ_STR(s.r[0].host, "lf.example");
    CHECK_EQ_STR(s.r[1].uri, "/2");

    /* Stray empty lines between requests are skipped. */
    CHECK_EQ_INT(http_parse("GET /1 HTTP/1.1\r\n\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", &s), 2);

    /* Something else after a request ends the search. */
    CHECK_EQ_INT(http_parse("GET /1 HTTP/1.1\r\n\r\nhello GET /2 HTTP/1.1\r\n\r\n", &s), 1);
}

static void test_http_bodies(void)
{
    struct http_seen s;
    /* POST with an 11-byte body "hello=world", then a GET. */
    CHECK_EQ_INT(http_parse("POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
                            "hello=world"
                            "GET /next HTTP/1.0\r\nHost: h2\r\n\r\n",
                            &s),
                 2);
    CHECK_EQ_STR(s.r[0].method, "POST");
    CHECK_EQ_STR(s.r[1].uri, "/next");
    CHECK_EQ_STR(s.r[1].host, "h2");
    CHECK_EQ_INT(s.r[1].version_minor, 0);

    /* A body that looks like a request is skipped, not reported. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\ncontent-length: 19\r\n\r\n"
                            "GET /fake HTTP/1.1\n"
                            "GET /real HTTP/1.1\r\n\r\n",
                            &s),
                 2);
    CHECK_EQ_STR(s.r[1].uri, "/real");

    /* Content-Length: 0 and the value trimmed. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: \t0 \r\n\r\nGET /x HTTP/1.1\r\n\r\n", &s), 2);

    /* Body runs past the payload: reported, then stop. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nGET /x HTTP/1.1\r\n\r\n", &s), 1);
    CHECK_EQ_INT(
        http_parse(
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            &s),
        1);

    /* Invalid or conflicting Content-Length: cannot find the next request. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: 1a\r\n\r\nxGET / HTTP/1.1\r\n\r\n", &s), 1);
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\nGET / HTTP/1.1\r\n\r\n", &s), 1);
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length:\r\n\r\nGET / HTTP/1.1\r\n\r\n", &s), 1);
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                            "xxGET / HTTP/1.1\r\n\r\n",
                            &s),
                 1);
    /* Repeated identical Content-Length is fine. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"
                            "xxGET / HTTP/1.1\r\n\r\n",
                            &s),
                 2);

    /* Chunked (and any Transfer-Encoding, which overrides Content-Length): stop. */
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
                            &s),
                 1);
    CHECK_EQ_INT(http_parse("POST / HTTP/1.1\r\nContent-Length: 0\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
                            "GET /x HTTP/1.1\r\n\r\n",
                            &s),
                 1);
}

static void test_http_headers(void)
{
    struct http_seen s;
    /* Header names are case-insensitive. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nhost: lower.example\r\nuser-AGENT: Mozilla/5.0\r\n\r\n", &s),
                 1);
    CHECK_EQ_STR(s.r[0].host, "lower.example");
    CHECK_EQ_STR(s.r[0].ua, "Mozilla/5.0");
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nHOST: upper.example\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "upper.example");

    /* Spaces and tabs around the value are trimmed, inner ones kept. */
    CHECK_EQ_INT(
        http_parse("GET / HTTP/1.1\r\nHost: \t spaced.example \t \r\nUser-Agent:\tA B\t\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "spaced.example");
    CHECK_EQ_STR(s.r[0].ua, "A B");
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nHost:nospace.example\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "nospace.example");

    /* Empty Host: present but empty. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nHost: \t \r\n\r\n", &s), 1);
    CHECK(s.r[0].has_host);
    CHECK_EQ_STR(s.r[0].host, "");

    /* The first Host wins. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nHost: first\r\nHost: second\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "first");

    /* Look-alikes do not match: whitespace before the colon, longer names,
     * a folded continuation line, a line without a colon. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nHost : bad\r\nX-Host: bad\r\nHosts: bad\r\n"
                            " Host: folded\r\nHost\r\n\r\n",
                            &s),
                 1);
    CHECK(!s.r[0].has_host);
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nhOsT: mixed\r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "mixed");
    /* CR (0x0d) equals '-' (0x2d) under a naive `| 0x20` lower-casing. */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1\r\nUser\x0d"
                            "agent: x\r\n\r\n",
                            &s),
                 1);
    CHECK(!s.r[0].has_ua);
}

static void test_http_cut(void)
{
    struct http_seen s;
    /* Headers cut off: the request line is reported, host NULL. */
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.1\r\nHost: exam", &s), 1);
    CHECK_EQ_STR(s.r[0].uri, "/x");
    CHECK(!s.r[0].has_host);
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.1\r\n", &s), 1);
    CHECK(!s.r[0].has_host);
    /* Host line complete, block not. */
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.1\r\nHost: example.com\r\nAccept: text/ht", &s), 1);
    CHECK_EQ_STR(s.r[0].host, "example.com");
    /* Host line whose CR arrived but not its LF. */
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.1\r\nHost: example.com\r", &s), 1);
    CHECK(!s.r[0].has_host);

    /* Request line cut off: nothing. */
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.1\r", &s), 0);
    CHECK_EQ_INT(http_parse("GET /x HTTP/1.", &s), 0);
    CHECK_EQ_INT(http_parse("GET /x", &s), 0);
    CHECK_EQ_INT(http_parse("GET ", &s), 0);
}

static void test_http09(void)
{
    struct http_seen s;
    CHECK_EQ_INT(http_parse("GET /old.html\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].uri, "/old.html");
    CHECK_EQ_INT(s.r[0].version_minor, 9);
    CHECK(!s.r[0].has_host);
    CHECK_EQ_INT(http_parse("GET /old.html\n", &s), 1);
    CHECK_EQ_INT(s.r[0].version_minor, 9);
    /* HTTP/0.9 had only GET (RFC 1945 section 4.1); nothing follows it. */
    CHECK_EQ_INT(http_parse("POST /old.html\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("GET /a\r\nGET /b\r\n", &s), 1);
    /* CR not followed by LF. */
    CHECK_EQ_INT(http_parse("GET /a\rxx", &s), 0);
}

static void test_http_not_http(void)
{
    struct http_seen s;
    /* TLS ClientHello start, SSH banner, an HTTP response, SMTP. */
    static const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    CHECK_EQ_INT(http_parse_n(tls, sizeof(tls), &s), 0);
    CHECK_EQ_INT(http_parse("SSH-2.0-OpenSSH_9.2p1\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("EHLO mail.example\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("", &s), 0);
    CHECK_EQ_INT(kg_http_parse_requests(NULL, 10, NULL, NULL), 0);

    /* Malformed request lines. */
    CHECK_EQ_INT(http_parse("GET  / HTTP/1.1\r\n\r\n", &s), 0); /* double SP */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.1 \r\n\r\n", &s), 0); /* trailing SP */
    CHECK_EQ_INT(http_parse("GET / HTTP/2.0\r\n\r\n", &s), 0);  /* not 1.x */
    CHECK_EQ_INT(http_parse("GET / HTTP/1.2\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("GET / http/1.1\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("GET /a b HTTP/1.1\r\n\r\n", &s), 0);   /* SP in target */
    CHECK_EQ_INT(http_parse("GET /\x01x HTTP/1.1\r\n\r\n", &s), 0); /* control byte */
    CHECK_EQ_INT(http_parse("GET /\x7fx HTTP/1.1\r\n\r\n", &s), 0);
    CHECK_EQ_INT(http_parse("GET /\tx HTTP/1.1\r\n\r\n", &s), 0);

    /* Binary after the method; binary bytes >= 0x80 in the target are kept. */
    static const uint8_t bin1[] = {'G', 'E', 'T', ' ', 0x00, 0xff, 0x10, 0x0a, 0x0d, 0x0a, 0x0a};
    CHECK_EQ_INT(http_parse_n(bin1, sizeof(bin1), &s), 0);
    static const char bin2[] = "GET /\xc3\xa9 HTTP/1.1\n\x00\x01\xff\x80";
    CHECK_EQ_INT(http_parse_n(bin2, sizeof(bin2) - 1, &s), 1); /* headers cut off */
    CHECK_EQ_STR(s.r[0].uri, "/\xc3\xa9");
    /* Headers with NUL bytes and binary values do not upset it. */
    static const char bin3[] = "GET / HTTP/1.1\nHost:\x00\xfe\n\x00:\n\n";
    CHECK_EQ_INT(http_parse_n(bin3, sizeof(bin3) - 1, &s), 1);
    CHECK(s.r[0].has_host);
    CHECK_EQ_INT(s.r[0].host[1], (char)0xfe);
    CHECK_EQ_INT(s.bad, 0);
}

/* Every prefix of a valid two-request payload. */
static void test_http_prefixes(void)
{
    static const char two[] = "GET /one HTTP/1.1\r\n"  /* line 1 ends at 19 */
                              "Host: a.example\r\n"    /* ends at 36 */
                              "User-Agent: UA1\r\n"    /* ends at 53 */
                              "\r\n"                   /* block ends at 55 */
                              "POST /two HTTP/1.1\r\n" /* ends at 75 */
                              "Host: b.example\r\n"    /* ends at 92 */
                              "Content-Length: 3\r\n"
                              "\r\n"
                              "xyz";
    const size_t len = sizeof(two) - 1;
    const size_t line1 = 19, host1 = 36, ua1 = 53, block1 = 55, line2 = 75, host2 = 92;
    CHECK(memcmp(two + block1, "POST", 4) == 0);
    CHECK(memcmp(two + host2 - 2, "\r\n", 2) == 0);

    for (size_t k = 0; k <= len; k++) {
        struct http_seen s;
        int rc = http_parse_n(two, k, &s);
        int want = k < line1 ? 0 : k < line2 ? 1 : 2;
        CHECK_EQ_INT(rc, want);
        CHECK_EQ_INT(s.n, rc);
        CHECK_EQ_INT(s.bad, 0);
        if (rc >= 1) {
            CHECK_EQ_STR(s.r[0].method, "GET");
            CHECK_EQ_STR(s.r[0].uri, "/one");
            CHECK_EQ_INT(s.r[0].has_host, k >= host1);
            if (k >= host1) CHECK_EQ_STR(s.r[0].host, "a.example");
            CHECK_EQ_INT(s.r[0].has_ua, k >= ua1);
        }
        if (rc >= 2) {
            CHECK_EQ_STR(s.r[1].method, "POST");
            CHECK_EQ_STR(s.r[1].uri, "/two");
            CHECK_EQ_INT(s.r[1].has_host, k >= host2);
            if (k >= host2) CHECK_EQ_STR(s.r[1].host, "b.example");
        }
    }
}

/* ---- random inputs ------------------------------------------------------------ */

static void dns_random_one(uint8_t *buf, size_t cap, size_t *out_len)
{
    static const uint8_t *const seeds[] = {dns_query, dns_response, dns_multi, dns_mdns};
    static const size_t seed_len[] = {sizeof(dns_query), sizeof(dns_response), sizeof(dns_multi),
                                      sizeof(dns_mdns)};
    size_t len;
    if (rng_below(4) == 0) {
        /* Pure noise, with a believable header. */
        len = rng_below(cap);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next();
        if (len >= 6) {
            buf[4] = 0;
            buf[5] = (uint8_t)rng_below(8);
        }
    } else {
        /* A valid message with a few bytes mutated, often to pointer or
         * length octets, and maybe cut or extended. */
        size_t w = rng_below(4);
        len = seed_len[w];
        memcpy(buf, seeds[w], len);
        size_t muts = 1 + rng_below(4);
        for (size_t m = 0; m < muts; m++) {
            size_t at = rng_below(len);
            switch (rng_below(5)) {
            case 0:
                buf[at] = (uint8_t)rng_next();
                break;
            case 1:
                buf[at] = (uint8_t)(0xC0 | rng_below(2));
                if (at + 1 < len) buf[at + 1] = (uint8_t)rng_below(64);
                break;
            case 2:
                buf[at] = (uint8_t)rng_below(70);
                break;
            case 3:
                buf[at] ^= (uint8_t)(1u << rng_below(8));
                break;
            default:
                len = rng_below(len + 1);
                break;
            }
            if (len == 0) break;
        }
        while (len < cap && rng_below(3) == 0)
            buf[len++] = (uint8_t)rng_next();
    }
    *out_len = len;
}

static void append(uint8_t *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n <= cap) {
        memcpy(buf + *len, s, n);
        *len += n;
    }
}

static void http_random_one(uint8_t *buf, size_t cap, size_t *out_len)
{
    static const char *const tok[] = {"GET ",
                                      "POST ",
                                      "HEAD ",
                                      "PROPPATCH ",
                                      "/",
                                      "/a?b=c",
                                      " ",
                                      "  ",
                                      "HTTP/1.1",
                                      "HTTP/1.0",
                                      "HTTP/1.",
                                      "\r\n",
                                      "\n",
                                      "\r",
                                      "\r\n\r\n",
                                      "Host: ",
                                      "host:",
                                      "User-Agent: ",
                                      "Content-Length: ",
                                      "Transfer-Encoding: chunked",
                                      ":",
                                      "\t",
                                      "0",
                                      "5",
                                      "12",
                                      "99999999999999999999",
                                      "x",
                                      "example.com"};
    static const char *const methods[] = {"GET", "POST", "PUT", "OPTIONS", "PROPFIND", "get", "GE"};
    static const char *const uris[] = {"/", "/index.html", "*", "host:443", "/\xc3\xa9", "", "/a b"};
    static const char *const versions[] = {" HTTP/1.1", " HTTP/1.0", "", " HTTP/1.2", " HTTP/1."};
    static const char *const eols[] = {"\r\n", "\n", "\r", ""};
    static const char *const headers[] = {"Host: example.com",
                                          "host:\t h ",
                                          "User-Agent: ua/1",
                                          "Content-Length: 3",
                                          "Content-Length: 0",
                                          "Content-Length: x",
                                          "Transfer-Encoding: chunked",
                                          "Accept: */*",
                                          " folded",
                                          "NoColon"};
    size_t len = 0;
    if (rng_below(2) == 0) {
        /* Mostly well-formed pipelines, cut anywhere, with a few bytes flipped. */
        size_t nreq = 1 + rng_below(4);
        for (size_t r = 0; r < nreq; r++) {
            append(buf, cap, &len, methods[rng_below(8) < 5 ? rng_below(5) : rng_below(7)]);
            append(buf, cap, &len, " ");
            append(buf, cap, &len, uris[rng_below(8) < 6 ? rng_below(4) : rng_below(7)]);
            append(buf, cap, &len, versions[rng_below(8) < 6 ? rng_below(2) : rng_below(5)]);
            const char *eol = eols[rng_below(8) < 7 ? rng_below(2) : rng_below(4)];
            append(buf, cap, &len, eol);
            size_t nh = rng_below(5);
            for (size_t h = 0; h < nh; h++) {
                append(buf, cap, &len, headers[rng_below(10)]);
                append(buf, cap, &len, eol);
            }
            append(buf, cap, &len, eol);
            if (rng_below(3) == 0) append(buf, cap, &len, "abc");
        }
        if (len > 0 && rng_below(2) == 0) len = rng_below(len + 1);
        size_t flips = rng_below(3);
        for (size_t i = 0; i < flips && len > 0; i++)
            buf[rng_below(len)] = (uint8_t)rng_next();
    } else {
        /* Token soup, mostly starting with a method. */
        if (rng_below(8) != 0) append(buf, cap, &len, tok[rng_below(4)]);
        size_t ntok = rng_below(40);
        for (size_t i = 0; i < ntok; i++) {
            if (rng_below(10) == 0) {
                if (len < cap) buf[len++] = (uint8_t)rng_next();
                continue;
            }
            append(buf, cap, &len, tok[rng_below(sizeof(tok) / sizeof(tok[0]))]);
        }
    }
    *out_len = len;
}

static void test_random_inputs(void)
{
    long iters = env_long("KG_RANDOM_ITERS", 200000);
    uint64_t seed = (uint64_t)env_long("KG_RANDOM_SEED", 0x6b6167616d69);
    rng_state = seed ? seed : 1;
    printf("random inputs: %ld iterations per parser, KG_RANDOM_SEED=%llu\n", iters,
           (unsigned long long)seed);

    uint8_t buf[600];
    long dns_ok = 0, dns_bad = 0, http_reqs = 0, http_hits = 0;
    int failures = 0;
    for (long it = 0; it < iters && failures < 10; it++) {
        size_t len;
        struct dns_seen ds;
        dns_random_one(buf, sizeof(buf), &len);
        int rc = dns_parse(buf, len, NULL, &ds);
        /* Each question takes at least 5 bytes after the 12-byte header. */
        bool bad = rc < -1 || (rc >= 0 && rc != ds.n) || ds.bad || (len < 12 && (rc != -1 || ds.n != 0)) ||
                   (len >= 12 && (size_t)ds.n * 5 > len - 12);
        if (bad) {
            fprintf(stderr, "dns: iteration %ld: rc %d, %d reported, %d bad\n", it, rc, ds.n, ds.bad);
            failures++;
        }
        if (rc >= 0)
            dns_ok++;
        else
            dns_bad++;

        struct http_seen hs;
        http_random_one(buf, sizeof(buf), &len);
        rc = http_parse_n(buf, len, &hs);
        if (rc < 0 || rc != hs.n || hs.bad) {
            fprintf(stderr, "http: iteration %ld: rc %d, %d reported, %d bad\n", it, rc, hs.n, hs.bad);
            failures++;
        }
        http_reqs += rc;
        http_hits += rc > 0;
    }
    CHECK_EQ_INT(failures, 0);
    printf("random inputs: dns %ld parsed / %ld malformed; http %ld payloads with requests, %ld requests\n",
           dns_ok, dns_bad, http_hits, http_reqs);
    /* The generators must exercise both outcomes, or the loop tests little. */
    if (iters >= 10000) {
        CHECK(dns_ok > iters / 20);
        CHECK(dns_bad > iters / 20);
        CHECK(http_hits > iters / 5);
    }
}

int main(void)
{
    KG_TEST_RUN(test_dns_query);
    KG_TEST_RUN(test_dns_response);
    KG_TEST_RUN(test_dns_multi);
    KG_TEST_RUN(test_dns_bad_pointers);
    KG_TEST_RUN(test_dns_name_length);
    KG_TEST_RUN(test_dns_label_bytes);
    KG_TEST_RUN(test_dns_mdns);
    KG_TEST_RUN(test_dns_truncated);
    KG_TEST_RUN(test_http_simple);
    KG_TEST_RUN(test_http_methods);
    KG_TEST_RUN(test_http_pipelined);
    KG_TEST_RUN(test_http_bodies);
    KG_TEST_RUN(test_http_headers);
    KG_TEST_RUN(test_http_cut);
    KG_TEST_RUN(test_http09);
    KG_TEST_RUN(test_http_not_http);
    KG_TEST_RUN(test_http_prefixes);
    KG_TEST_RUN(test_random_inputs);
    KG_TEST_MAIN_END();
}
