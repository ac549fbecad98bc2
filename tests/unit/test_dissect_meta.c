/*
 * tests/unit/test_dissect_meta.c — the metadata side of the DNS and HTTP
 * parsers (dissect/dissect_parsers.h): DNS answer records
 * (kg_dns_parse_message_full), HTTP responses (kg_http_parse_responses) and
 * the Content-Type/Content-Length of requests. The question and request
 * paths are covered by test_dissect_parsers.c.
 *
 * As there, every parse runs on a heap copy of exactly the tested length
 * (an out-of-bounds read shows under -DKG_SANITIZE=address), every prefix
 * of the fixtures is parsed, and random loops run KG_RANDOM_ITERS
 * iterations (default 100000) from KG_RANDOM_SEED (printed).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"
#include "kg_test.h"

/* ---- helpers ------------------------------------------------------------------ */

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

/* What the DNS callbacks saw. */
#define MAXA 16
struct dns_rec {
    char name[KG_DNS_NAME_MAX];
    uint16_t rrtype, rrclass, rdlength;
    uint32_t ttl;
    uint8_t family;
    uint8_t addr[16];
    bool has_target;
    char target[KG_DNS_NAME_MAX];
};
struct dns_seen {
    int nq, na;
    char qname[KG_DNS_NAME_MAX];
    struct dns_rec a[MAXA];
    int bad; /* contract violations seen in callbacks */
};

static void on_q(void *user, const char *name, size_t name_len, uint16_t qtype, uint16_t qclass)
{
    struct dns_seen *s = user;
    (void)qtype;
    (void)qclass;
    if (!name || name_len >= KG_DNS_NAME_MAX || name[name_len] != '\0') s->bad++;
    if (s->na > 0) s->bad++; /* questions come before answers */
    if (s->nq == 0 && name && name_len < KG_DNS_NAME_MAX) memcpy(s->qname, name, name_len + 1);
    s->nq++;
}

static void on_a(void *user, const struct kg_dns_answer *ans)
{
    struct dns_seen *s = user;
    if (!ans->name || ans->name_len >= KG_DNS_NAME_MAX || ans->name[ans->name_len] != '\0') s->bad++;
    if (ans->target && (ans->target_len >= KG_DNS_NAME_MAX || ans->target[ans->target_len] != '\0')) s->bad++;
    if (ans->target && ans->rrtype != 2 && ans->rrtype != 5 && ans->rrtype != 12) s->bad++;
    if (ans->addr_family == 4 && (ans->rrtype != 1 || ans->rdlength != 4)) s->bad++;
    if (ans->addr_family == 6 && (ans->rrtype != 28 || ans->rdlength != 16)) s->bad++;
    if (ans->addr_family != 0 && ans->addr_family != 4 && ans->addr_family != 6) s->bad++;
    if (ans->addr_family && ans->target) s->bad++;
    if (s->na < MAXA && !s->bad) {
        struct dns_rec *r = &s->a[s->na];
        memcpy(r->name, ans->name, ans->name_len + 1);
        r->rrtype = ans->rrtype;
        r->rrclass = ans->rrclass;
        r->rdlength = ans->rdlength;
        r->ttl = ans->ttl;
        r->family = ans->addr_family;
        memcpy(r->addr, ans->addr, 16);
        r->has_target = ans->target != NULL;
        if (ans->target) memcpy(r->target, ans->target, ans->target_len + 1);
    }
    s->na++;
}

static int dns_full(const uint8_t *msg, size_t len, struct kg_dns_msg_info *info, struct dns_seen *s)
{
    memset(s, 0, sizeof(*s));
    uint8_t *b = dup_exact(msg, len);
    int rc = kg_dns_parse_message_full(b, len, info, on_q, on_a, s);
    free(b);
    return rc;
}

/* ---- DNS fixtures ------------------------------------------------------------- */
/* clang-format off */

/* Response: id 0x4242, flags 0x8180 (QR RD RA, NOERROR), QD=1 AN=7.
 *  @12  Q  "www.example.com" A IN                       (ends at 33)
 *  @33  A1 C0 0C (www.example.com) CNAME IN ttl 3600 len 6:
 *          3 "cdn" C0 10 -> "cdn.example.com"            (rdata @45, ends at 51)
 *  @51  A2 C0 2D (cdn.example.com) A IN ttl 60 len 4: 93.184.216.34   (ends at 67)
 *  @67  A3 C0 2D AAAA IN ttl 60 len 16: 2606:2800:220:1:248:1893:25c8:1946 (ends at 95)
 *  @95  A4 C0 10 (example.com) NS IN ttl 86400 len 6: 3 "ns1" C0 10    (ends at 113)
 *  @113 A5 1 "1" C0 10 (1.example.com) PTR IN ttl 300 len 2: C0 0C     (ends at 129)
 *  @129 A6 C0 10 MX IN ttl 300 len 9: pref 10, 4 "mail" C0 10 (no data) (ends at 150)
 *  @150 A7 C0 10 TXT IN ttl 5 len 6: 5 "hello" (no data)               (ends at 168) */
static const uint8_t dns_answers[] = {
    0x42, 0x42, 0x81, 0x80, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0x00, 0x01, 0x00, 0x01,
    0xC0, 0x0C, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0E, 0x10, 0x00, 0x06, 3, 'c', 'd', 'n', 0xC0, 0x10,
    0xC0, 0x2D, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04, 93, 184, 216, 34,
    0xC0, 0x2D, 0x00, 0x1C, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x10,
    0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0x00, 0x01, 0x02, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46,
    0xC0, 0x10, 0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0x51, 0x80, 0x00, 0x06, 3, 'n', 's', '1', 0xC0, 0x10,
    1, '1', 0xC0, 0x10, 0x00, 0x0C, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2C, 0x00, 0x02, 0xC0, 0x0C,
    0xC0, 0x10, 0x00, 0x0F, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2C, 0x00, 0x09, 0x00, 0x0A, 4, 'm', 'a', 'i', 'l', 0xC0, 0x10,
    0xC0, 0x10, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x06, 5, 'h', 'e', 'l', 'l', 'o',
};
static const size_t dns_answers_qend = 33;
static const size_t dns_answers_aend[] = {51, 67, 95, 113, 129, 150, 168};

/* mDNS announcement: id 0, flags 0x8400 (QR AA), QD=0 AN=1.
 *  @12 "_http._tcp.local" PTR, class 0x8001 (IN + cache-flush), ttl 4500, len 10:
 *      7 "printer" C0 0C -> "printer._http._tcp.local" */
static const uint8_t dns_mdns_answer[] = {
    0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    5, '_', 'h', 't', 't', 'p', 4, '_', 't', 'c', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0,
    0x00, 0x0C, 0x80, 0x01, 0x00, 0x00, 0x11, 0x94, 0x00, 0x0A,
    7, 'p', 'r', 'i', 'n', 't', 'e', 'r', 0xC0, 0x0C,
};

/* NXDOMAIN: id 7, flags 0x8183, QD=1 AN=0 NS=1 (the SOA of the authority
 * section is not looked at: here it is garbage and must not matter). */
static const uint8_t dns_nxdomain[] = {
    0x00, 0x07, 0x81, 0x83, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    4, 'n', 'o', 'p', 'e', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0x00, 0x01, 0x00, 0x01,
    0xFF, 0xFF, 0xFF,
};

/* clang-format on */

/* ---- DNS tests ------------------------------------------------------------------ */

static void test_dns_answers(void)
{
    CHECK_EQ_INT(sizeof(dns_answers), 168);
    struct kg_dns_msg_info info;
    struct dns_seen s;
    CHECK_EQ_INT(dns_full(dns_answers, sizeof(dns_answers), &info, &s), 8);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(s.nq, 1);
    CHECK_EQ_INT(s.na, 7);
    CHECK_EQ_STR(s.qname, "www.example.com");
    CHECK_EQ_INT(info.id, 0x4242);
    CHECK(info.is_response);
    CHECK_EQ_INT(info.rcode, 0);
    CHECK_EQ_INT(info.flags, 0x8180);
    CHECK_EQ_INT(info.ancount, 7);

    CHECK_EQ_STR(s.a[0].name, "www.example.com");
    CHECK_EQ_INT(s.a[0].rrtype, 5);
    CHECK_EQ_INT(s.a[0].rrclass, 1);
    CHECK_EQ_INT(s.a[0].ttl, 3600);
    CHECK(s.a[0].has_target);
    CHECK_EQ_STR(s.a[0].target, "cdn.example.com");
    CHECK_EQ_INT(s.a[0].family, 0);

    static const uint8_t v4[4] = {93, 184, 216, 34};
    CHECK_EQ_STR(s.a[1].name, "cdn.example.com");
    CHECK_EQ_INT(s.a[1].rrtype, 1);
    CHECK_EQ_INT(s.a[1].ttl, 60);
    CHECK_EQ_INT(s.a[1].family, 4);
    CHECK(memcmp(s.a[1].addr, v4, 4) == 0);
    CHECK(!s.a[1].has_target);

    static const uint8_t v6[16] = {0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0x00, 0x01,
                                   0x02, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46};
    CHECK_EQ_STR(s.a[2].name, "cdn.example.com");
    CHECK_EQ_INT(s.a[2].rrtype, 28);
    CHECK_EQ_INT(s.a[2].family, 6);
    CHECK(memcmp(s.a[2].addr, v6, 16) == 0);

    CHECK_EQ_STR(s.a[3].name, "example.com");
    CHECK_EQ_INT(s.a[3].rrtype, 2);
    CHECK_EQ_INT(s.a[3].ttl, 86400);
    CHECK_EQ_STR(s.a[3].target, "ns1.example.com");

    CHECK_EQ_STR(s.a[4].name, "1.example.com");
    CHECK_EQ_INT(s.a[4].rrtype, 12);
    CHECK_EQ_STR(s.a[4].target, "www.example.com");

    CHECK_EQ_STR(s.a[5].name, "example.com");
    CHECK_EQ_INT(s.a[5].rrtype, 15);
    CHECK_EQ_INT(s.a[5].rdlength, 9);
    CHECK(!s.a[5].has_target);
    CHECK_EQ_INT(s.a[5].family, 0);

    CHECK_EQ_INT(s.a[6].rrtype, 16);
    CHECK_EQ_INT(s.a[6].ttl, 5);
    CHECK(!s.a[6].has_target);

    /* Without an answer callback it is kg_dns_parse_message(). */
    CHECK_EQ_INT(kg_dns_parse_message_full(dns_answers, sizeof(dns_answers), NULL, NULL, NULL, NULL), 1);
    CHECK_EQ_INT(kg_dns_parse_message(dns_answers, sizeof(dns_answers), NULL, NULL, NULL), 1);
    /* Callbacks are optional one by one. */
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(kg_dns_parse_message_full(dns_answers, sizeof(dns_answers), NULL, NULL, on_a, &s), 8);
    CHECK_EQ_INT(s.nq, 0);
    CHECK_EQ_INT(s.na, 7);
}

static void test_dns_mdns_nxdomain(void)
{
    struct kg_dns_msg_info info;
    struct dns_seen s;
    CHECK_EQ_INT(dns_full(dns_mdns_answer, sizeof(dns_mdns_answer), &info, &s), 1);
    CHECK_EQ_INT(s.nq, 0);
    CHECK_EQ_INT(s.na, 1);
    CHECK_EQ_STR(s.a[0].name, "_http._tcp.local");
    CHECK_EQ_INT(s.a[0].rrclass, 0x8001);
    CHECK_EQ_INT(s.a[0].ttl, 4500);
    CHECK_EQ_STR(s.a[0].target, "printer._http._tcp.local");

    CHECK_EQ_INT(dns_full(dns_nxdomain, sizeof(dns_nxdomain), &info, &s), 1);
    CHECK_EQ_INT(info.rcode, 3);
    CHECK_EQ_INT(info.nscount, 1);
    CHECK_EQ_INT(s.na, 0);
    CHECK_EQ_STR(s.qname, "nope.example");
}

/* Record-level damage: malformed RDATA keeps the record, broken framing
 * ends the parse. */
static void test_dns_bad_answers(void)
{
    uint8_t m[256];
    struct kg_dns_msg_info info;
    struct dns_seen s;

    /* A with RDLENGTH 5 and AAAA with RDLENGTH 4: reported without an
     * address (the framing is sound). */
    static const uint8_t odd[] = {
        0x00, 0x01, 0x81, 0x80, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, /* AN=2 */
        1,    'a',  0,    0x00, 0x01, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x05, 1, 2, 3, 4, 5,
        1,    'b',  0,    0x00, 0x1C, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x04, 1, 2, 3, 4,
    };
    CHECK_EQ_INT(dns_full(odd, sizeof(odd), &info, &s), 2);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(s.a[0].family, 0);
    CHECK_EQ_INT(s.a[0].rdlength, 5);
    CHECK_EQ_INT(s.a[1].family, 0);
    CHECK_EQ_STR(s.a[1].name, "b");

    /* CNAME targets that are not names inside RDATA: a forward pointer, a
     * pointer to itself, labels running past RDLENGTH (though inside the
     * message), an empty RDATA. Each record stays reported, without target. */
    static const uint8_t badt[] = {
        0x00,        0x02, 0x81, 0x80, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, /* AN=4 */
        /* @12 */ 1, 'a',  0,    0x00, 0x05, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x02, 0xC0, 0x40,
        /* @27 */ 1, 'b',  0,    0x00, 0x05, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x02, 0xC0, 0x28,
        /* @42 */ 1, 'c',  0,    0x00, 0x05, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x02, 3,    'x',
        /* @57 */ 1, 'd',  0,    0x00, 0x05, 0x00, 0x01, 0,    0,    0,    1,    0x00, 0x00, 'y',  'z',  0,
    };
    CHECK_EQ_INT(dns_full(badt, sizeof(badt), &info, &s), 4);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(s.na, 4);
    for (int i = 0; i < 4 && i < s.na; i++)
        CHECK(!s.a[i].has_target);

    /* RDATA running past the message: -1, the records before it reported. */
    memcpy(m, odd, sizeof(odd));
    m[sizeof(odd) - 5] = 0x05; /* second record's RDLENGTH 4 -> 5 */
    CHECK_EQ_INT(dns_full(m, sizeof(odd), &info, &s), -1);
    CHECK_EQ_INT(s.na, 1);

    /* A huge ancount is bounded by the data. */
    memcpy(m, dns_answers, sizeof(dns_answers));
    m[6] = 0xFF;
    m[7] = 0xFF;
    CHECK_EQ_INT(dns_full(m, sizeof(dns_answers), &info, &s), -1);
    CHECK_EQ_INT(s.na, 7);
    CHECK_EQ_INT(info.ancount, 0xFFFF);

    /* A malformed question section stops before any answer. */
    memcpy(m, dns_answers, sizeof(dns_answers));
    m[12] = 0x80; /* reserved label type */
    CHECK_EQ_INT(dns_full(m, sizeof(dns_answers), &info, &s), -1);
    CHECK_EQ_INT(s.nq + s.na, 0);

    /* An owner name pointing forward, into the header, or a label type
     * 0x40: malformed record, -1. */
    static const uint8_t fwd[] = {0x00, 0x03, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 0x20,
                                  0,    1,    0,    1,    0, 0, 0, 1, 0, 4, 1, 2, 3,    4};
    CHECK_EQ_INT(dns_full(fwd, sizeof(fwd), &info, &s), -1);
    memcpy(m, fwd, sizeof(fwd));
    m[13] = 0x02;
    CHECK_EQ_INT(dns_full(m, sizeof(fwd), &info, &s), -1);
    m[12] = 0x41;
    CHECK_EQ_INT(dns_full(m, sizeof(fwd), &info, &s), -1);
    CHECK_EQ_INT(s.na, 0);
}

/* Every prefix of the answer fixture: -1 until the message is complete,
 * exactly the records that fit reported, each equal to the full parse. */
static void test_dns_answer_prefixes(void)
{
    struct dns_seen full;
    CHECK_EQ_INT(dns_full(dns_answers, sizeof(dns_answers), NULL, &full), 8);
    const size_t na = KG_ARRAY_LEN(dns_answers_aend);
    for (size_t k = 0; k <= sizeof(dns_answers); k++) {
        struct dns_seen s;
        struct kg_dns_msg_info info;
        int rc = dns_full(dns_answers, k, &info, &s);
        size_t fit = 0;
        while (fit < na && dns_answers_aend[fit] <= k)
            fit++;
        CHECK_EQ_INT(rc, k == sizeof(dns_answers) ? 8 : -1);
        CHECK_EQ_INT(s.nq, k >= dns_answers_qend ? 1 : 0);
        CHECK_EQ_INT(s.na, (int)fit);
        CHECK_EQ_INT(s.bad, 0);
        for (size_t i = 0; i < fit && i < MAXA; i++) {
            CHECK_EQ_STR(s.a[i].name, full.a[i].name);
            CHECK_EQ_INT(s.a[i].rrtype, full.a[i].rrtype);
            CHECK_EQ_INT(s.a[i].ttl, full.a[i].ttl);
            CHECK_EQ_INT(s.a[i].family, full.a[i].family);
            CHECK_EQ_INT(s.a[i].has_target, full.a[i].has_target);
            if (full.a[i].has_target) CHECK_EQ_STR(s.a[i].target, full.a[i].target);
        }
    }
}

/* ---- HTTP ------------------------------------------------------------------------ */

#define MAXR 8
struct resp_seen {
    int n;
    struct {
        int status, version_minor, has_ct, has_cl;
        unsigned long long cl;
        char ct[128], reason[64];
    } r[MAXR];
    const uint8_t *base;
    size_t len;
    int bad;
};

static int in_payload(const uint8_t *base, size_t len, const char *f, size_t n)
{
    const uint8_t *u = (const uint8_t *)f;
    return u >= base && u <= base + len && n <= (size_t)(base + len - u);
}

static void copy_field(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void on_resp(void *user, const struct kg_http_response *r)
{
    struct resp_seen *s = user;
    if (r->status < 100 || r->status > 999 || (r->version_minor != 0 && r->version_minor != 1) ||
        !r->reason || !in_payload(s->base, s->len, r->reason, r->reason_len) ||
        (r->content_type && !in_payload(s->base, s->len, r->content_type, r->content_type_len)) ||
        (!r->has_content_length && r->content_length != 0))
        s->bad++;
    if (s->n < MAXR && !s->bad) {
        s->r[s->n].status = r->status;
        s->r[s->n].version_minor = r->version_minor;
        s->r[s->n].has_ct = r->content_type != NULL;
        if (r->content_type)
            copy_field(s->r[s->n].ct, sizeof(s->r[0].ct), r->content_type, r->content_type_len);
        copy_field(s->r[s->n].reason, sizeof(s->r[0].reason), r->reason, r->reason_len);
        s->r[s->n].has_cl = r->has_content_length;
        s->r[s->n].cl = (unsigned long long)r->content_length;
    }
    s->n++;
}

static int resp_parse_n(const void *data, size_t len, struct resp_seen *s)
{
    memset(s, 0, sizeof(*s));
    uint8_t *b = dup_exact(data, len);
    s->base = b;
    s->len = len;
    int rc = kg_http_parse_responses(b, len, on_resp, s);
    free(b);
    return rc;
}

static int resp_parse(const char *text, struct resp_seen *s)
{
    return resp_parse_n(text, strlen(text), s);
}

static void test_http_response_simple(void)
{
    struct resp_seen s;
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type:  text/html; charset=utf-8 \r\n"
                            "Content-Length: 5\r\n\r\nhello",
                            &s),
                 1);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT(s.r[0].status, 200);
    CHECK_EQ_INT(s.r[0].version_minor, 1);
    CHECK_EQ_STR(s.r[0].reason, "OK");
    CHECK(s.r[0].has_ct);
    CHECK_EQ_STR(s.r[0].ct, "text/html; charset=utf-8");
    CHECK(s.r[0].has_cl);
    CHECK_EQ_INT(s.r[0].cl, 5);

    /* Bare LF, HTTP/1.0, no reason phrase, case-insensitive names. */
    CHECK_EQ_INT(resp_parse("HTTP/1.0 404\ncontent-type: text/plain\nCONTENT-LENGTH: 0\n\n", &s), 1);
    CHECK_EQ_INT(s.r[0].status, 404);
    CHECK_EQ_INT(s.r[0].version_minor, 0);
    CHECK_EQ_STR(s.r[0].reason, "");
    CHECK_EQ_STR(s.r[0].ct, "text/plain");
    CHECK_EQ_INT(s.r[0].cl, 0);
    CHECK_EQ_INT(resp_parse("HTTP/1.1 302 \r\n\r\n", &s), 1);
    CHECK_EQ_STR(s.r[0].reason, "");
    CHECK(!s.r[0].has_ct);
    CHECK(!s.r[0].has_cl);

    /* Not a status line. */
    static const char *const nots[] = {
        "HTTP/1.1 20",
        "HTTP/1.1 200",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n",
        "HTTP/1.1 099 x\r\n",
        "HTTP/1.1 abc\r\n",
        "http/1.1 200 OK\r\n",
        "HTTP/1.2 200 OK\r\n",
        "HTTP/1.1  200 OK\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 20x OK\r\n",
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(nots); i++) {
        int rc = resp_parse(nots[i], &s);
        if (rc != 0) fprintf(stderr, "  reported: \"%s\"\n", nots[i]);
        CHECK_EQ_INT(rc, 0);
    }
    /* An odd but well-formed code is kept. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 999 Request denied\r\n\r\n", &s), 1);
    CHECK_EQ_INT(s.r[0].status, 999);
    CHECK_EQ_INT(kg_http_parse_responses(NULL, 10, on_resp, &s), 0);
}

static void test_http_response_sequence(void)
{
    struct resp_seen s;
    /* 100 Continue, then the final response. */
    CHECK_EQ_INT(
        resp_parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", &s),
        2);
    CHECK_EQ_INT(s.r[0].status, 100);
    CHECK_EQ_INT(s.r[1].status, 201);
    CHECK_EQ_INT(s.r[1].cl, 2);

    /* Pipelined: bodies skipped by Content-Length; a response without one
     * reads to the end of the connection, so nothing after it counts. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
                            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1\r\n\r\nx"
                            "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 500 Ignored\r\n\r\n",
                            &s),
                 3);
    CHECK_EQ_STR(s.r[1].ct, "image/png");
    CHECK(!s.r[2].has_cl);

    /* 204 and 304 never have a body, whatever Content-Length says. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"
                            "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                            &s),
                 3);
    CHECK_EQ_INT(s.r[0].cl, 1000);
    CHECK_EQ_INT(s.r[2].status, 200);

    /* Chunked, an invalid Content-Length, a body past the payload (e.g. a
     * response to HEAD): reported, then the search stops. */
    CHECK_EQ_INT(
        resp_parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                   &s),
        1);
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", &s), 1);
    CHECK(!s.r[0].has_cl);
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 10, 10\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", &s),
                 1);
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", &s), 1);
    CHECK_EQ_INT(s.r[0].cl, 100);
    /* A skipped body followed by something else. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxGARBAGE", &s), 1);
    /* Headers cut off: reported, Content-Type only when its line is whole. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Type: text/ht", &s), 1);
    CHECK(!s.r[0].has_ct);
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX", &s), 1);
    CHECK_EQ_STR(s.r[0].ct, "text/html");
    /* A huge Content-Length saturates. */
    CHECK_EQ_INT(resp_parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", &s), 1);
    CHECK_EQ_INT(s.r[0].cl, (unsigned long long)UINT64_MAX);
}

/* Every prefix of a two-response payload. */
static void test_http_response_prefixes(void)
{
    static const char two[] = "HTTP/1.1 200 OK\r\n"              /* status line ends at 17 */
                              "Content-Type: text/plain\r\n"     /* ends at 43 */
                              "Content-Length: 2\r\n"            /* ends at 62 */
                              "\r\n"                             /* block ends at 64 */
                              "hi"                               /* body ends at 66 */
                              "HTTP/1.0 404 Not Found\r\n"       /* ends at 90 */
                              "Content-Type: text/html\r\n\r\n"; /* ct ends at 115 */
    const size_t len = sizeof(two) - 1;
    const size_t sl1 = 17, ct1 = 43, cl1 = 62, sl2 = 90, ct2 = 115;
    CHECK(memcmp(two + 66, "HTTP/1.0", 8) == 0);
    CHECK(memcmp(two + ct2 - 2, "\r\n", 2) == 0);
    for (size_t k = 0; k <= len; k++) {
        struct resp_seen s;
        int rc = resp_parse_n(two, k, &s);
        int want = k < sl1 ? 0 : k < sl2 ? 1 : 2;
        CHECK_EQ_INT(rc, want);
        CHECK_EQ_INT(s.n, rc);
        CHECK_EQ_INT(s.bad, 0);
        if (rc >= 1) {
            CHECK_EQ_INT(s.r[0].status, 200);
            CHECK_EQ_INT(s.r[0].has_ct, k >= ct1);
            CHECK_EQ_INT(s.r[0].has_cl, k >= cl1);
        }
        if (rc >= 2) {
            CHECK_EQ_INT(s.r[1].status, 404);
            CHECK_EQ_STR(s.r[1].reason, "Not Found");
            CHECK_EQ_INT(s.r[1].has_ct, k >= ct2);
        }
    }
}

/* Requests now also carry Content-Type and Content-Length. */
struct req_seen {
    int n;
    char ct[64];
    int has_ct, has_cl;
    unsigned long long cl;
};

static void on_req(void *user, const struct kg_http_request *r)
{
    struct req_seen *s = user;
    if (s->n == 0) {
        s->has_ct = r->content_type != NULL;
        if (r->content_type) copy_field(s->ct, sizeof(s->ct), r->content_type, r->content_type_len);
        s->has_cl = r->has_content_length;
        s->cl = (unsigned long long)r->content_length;
    }
    s->n++;
}

static void test_http_request_content_type(void)
{
    struct req_seen s;
    static const char post[] = "POST /api HTTP/1.1\r\nHost: a.example\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n\r\n";
    memset(&s, 0, sizeof(s));
    uint8_t *b = dup_exact(post, sizeof(post) - 1);
    CHECK_EQ_INT(kg_http_parse_requests(b, sizeof(post) - 1, on_req, &s), 2);
    free(b);
    CHECK(s.has_ct);
    CHECK_EQ_STR(s.ct, "application/json");
    CHECK(s.has_cl);
    CHECK_EQ_INT(s.cl, 2);

    static const char get[] = "GET / HTTP/1.1\r\nContent-Length: zz\r\n\r\n";
    memset(&s, 0, sizeof(s));
    b = dup_exact(get, sizeof(get) - 1);
    CHECK_EQ_INT(kg_http_parse_requests(b, sizeof(get) - 1, on_req, &s), 1);
    free(b);
    CHECK(!s.has_ct);
    CHECK(!s.has_cl);
    CHECK_EQ_INT(s.cl, 0);
}

/* ---- random inputs ------------------------------------------------------------------ */

static void dns_random_one(uint8_t *buf, size_t cap, size_t *out_len)
{
    static const uint8_t *const seeds[] = {dns_answers, dns_mdns_answer, dns_nxdomain};
    static const size_t seed_len[] = {sizeof(dns_answers), sizeof(dns_mdns_answer), sizeof(dns_nxdomain)};
    size_t w = rng_below(3);
    size_t len = seed_len[w];
    memcpy(buf, seeds[w], len);
    size_t muts = 1 + rng_below(4);
    for (size_t m = 0; m < muts && len > 0; m++) {
        size_t at = rng_below(len);
        switch (rng_below(6)) {
        case 0:
            buf[at] = (uint8_t)rng_next();
            break;
        case 1: /* a pointer */
            buf[at] = (uint8_t)(0xC0 | rng_below(2));
            if (at + 1 < len) buf[at + 1] = (uint8_t)rng_below(200);
            break;
        case 2: /* a length octet or RDLENGTH */
            buf[at] = (uint8_t)rng_below(70);
            break;
        case 3: /* a type: A, NS, CNAME, PTR, AAAA */
            if (at + 1 < len) {
                static const uint8_t types[] = {1, 2, 5, 12, 28};
                buf[at] = 0;
                buf[at + 1] = types[rng_below(5)];
            }
            break;
        case 4:
            buf[at] ^= (uint8_t)(1u << rng_below(8));
            break;
        default:
            len = rng_below(len + 1);
            break;
        }
    }
    while (len < cap && rng_below(3) == 0)
        buf[len++] = (uint8_t)rng_next();
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

static void resp_random_one(uint8_t *buf, size_t cap, size_t *out_len)
{
    static const char *const lines[] = {"HTTP/1.1 200 OK", "HTTP/1.0 404 Not Found", "HTTP/1.1 100 Continue",
                                        "HTTP/1.1 204",    "HTTP/1.1 304 x",         "HTTP/1.1 20",
                                        "HTTP/1.2 200 OK", "HTTP/1.1 999 ?"};
    static const char *const headers[] = {"Content-Type: text/html",
                                          "content-type:\t a/b ",
                                          "Content-Length: 3",
                                          "Content-Length: 0",
                                          "Content-Length: x",
                                          "Transfer-Encoding: chunked",
                                          "Server: s",
                                          " folded",
                                          "NoColon",
                                          "Content-Length: 99999999999999999999"};
    static const char *const eols[] = {"\r\n", "\n", "\r", ""};
    size_t len = 0;
    size_t nresp = 1 + rng_below(4);
    for (size_t r = 0; r < nresp; r++) {
        append(buf, cap, &len, lines[rng_below(8) < 6 ? rng_below(5) : rng_below(8)]);
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
    *out_len = len;
}

static void test_random_inputs(void)
{
    long iters = env_long("KG_RANDOM_ITERS", 100000);
    uint64_t seed = (uint64_t)env_long("KG_RANDOM_SEED", 0x6d657461);
    rng_state = seed ? seed : 1;
    printf("random inputs: %ld iterations per parser, KG_RANDOM_SEED=%llu\n", iters,
           (unsigned long long)seed);

    uint8_t buf[600];
    long dns_ok = 0, dns_bad = 0, answers = 0, targets = 0, resp_hits = 0;
    int failures = 0;
    for (long it = 0; it < iters && failures < 10; it++) {
        size_t len;
        struct dns_seen ds;
        dns_random_one(buf, sizeof(buf), &len);
        int rc = dns_full(buf, len, NULL, &ds);
        /* A question takes at least 5 bytes, an answer at least 11. */
        bool bad = rc < -1 || (rc >= 0 && rc != ds.nq + ds.na) || ds.bad ||
                   (len < 12 && (rc != -1 || ds.nq + ds.na != 0)) ||
                   (len >= 12 && (size_t)ds.nq * 5 + (size_t)ds.na * 11 > len - 12);
        if (bad) {
            fprintf(stderr, "dns: iteration %ld: rc %d, %d+%d reported, %d bad\n", it, rc, ds.nq, ds.na,
                    ds.bad);
            failures++;
        }
        rc >= 0 ? dns_ok++ : dns_bad++;
        answers += ds.na;
        for (int i = 0; i < ds.na && i < MAXA; i++)
            targets += ds.a[i].has_target;

        struct resp_seen rs;
        resp_random_one(buf, sizeof(buf), &len);
        rc = resp_parse_n(buf, len, &rs);
        if (rc < 0 || rc != rs.n || rs.bad) {
            fprintf(stderr, "http: iteration %ld: rc %d, %d reported, %d bad\n", it, rc, rs.n, rs.bad);
            failures++;
        }
        resp_hits += rc > 0;
    }
    CHECK_EQ_INT(failures, 0);
    printf("random inputs: dns %ld parsed / %ld malformed, %ld answers (%ld with a target name); "
           "http %ld payloads with responses\n",
           dns_ok, dns_bad, answers, targets, resp_hits);
    if (iters >= 10000) {
        CHECK(dns_ok > iters / 20);
        CHECK(dns_bad > iters / 20);
        CHECK(targets > iters / 20);
        CHECK(resp_hits > iters / 5);
    }
}

int main(void)
{
    KG_TEST_RUN(test_dns_answers);
    KG_TEST_RUN(test_dns_mdns_nxdomain);
    KG_TEST_RUN(test_dns_bad_answers);
    KG_TEST_RUN(test_dns_answer_prefixes);
    KG_TEST_RUN(test_http_response_simple);
    KG_TEST_RUN(test_http_response_sequence);
    KG_TEST_RUN(test_http_response_prefixes);
    KG_TEST_RUN(test_http_request_content_type);
    KG_TEST_RUN(test_random_inputs);
    KG_TEST_MAIN_END();
}
