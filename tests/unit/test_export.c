/*
 * tests/unit/test_export.c — alert formatting, JSON string escaping,
 * timestamps, signature ids and the stdout/file sinks (and the parts of the
 * Redis sink that need no server: spec parsing, name masking, an
 * unreachable server, the queue bound). Every line we produce is parsed
 * back with jansson, an independent JSON parser, and checked field by
 * field. The Redis sink against a live server is tests/unit/test_sink_redis.c.
 */
#include "export/export.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Parses one formatted event: exactly one line, ending in '\n', holding one
 * JSON object. Returns it (owned) or NULL after a failed check. */
static json_t *parse_line(const struct kg_buf *b)
{
    CHECK(b->len > 2);
    if (b->len < 2) return NULL;
    CHECK(b->data[b->len - 1] == '\n');
    CHECK(memchr(b->data, '\n', b->len - 1) == NULL);
    json_error_t e;
    json_t *j = json_loadb(b->data, b->len - 1, 0, &e);
    if (!j) fprintf(stderr, "jansson: %s at %d in: %.*s\n", e.text, e.position, (int)b->len, b->data);
    CHECK(j != NULL && json_is_object(j));
    return j;
}

/* Checks an object's keys, in order, against a NULL-terminated list. */
static void check_keys(const json_t *o, const char *const *keys)
{
    CHECK(json_is_object(o));
    if (!json_is_object(o)) return;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        (void)v;
        CHECK(keys[i] != NULL);
        if (!keys[i]) return;
        CHECK_EQ_STR(k, keys[i]);
        i++;
    }
    CHECK(keys[i] == NULL);
    if (keys[i]) fprintf(stderr, "  missing key \"%s\"\n", keys[i]);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    CHECK(json_is_integer(v));
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static void set_addr(struct kg_flow_key *k, const char *src, const char *dst)
{
    k->family = strchr(src, ':') ? 6 : 4;
    const int af = k->family == 6 ? AF_INET6 : AF_INET;
    CHECK(inet_pton(af, src, k->saddr) == 1);
    CHECK(inet_pton(af, dst, k->daddr) == 1);
}

/* The documented signature id, computed the plain way. */
static uint32_t ref_sid(const char *type, const char *value)
{
    char tmp[512];
    int n = snprintf(tmp, sizeof(tmp), "%s:%s", type, value);
    return (uint32_t)(1000000000u + kg_fnv1a64(tmp, (size_t)n, 0) % 1000000000u);
}

/* --- alerts ----------------------------------------------------------------- */

static void test_alert_ipv4_tcp_tls(void)
{
    static const char *const mk[] = {"source_feed", "desc", "category", "cif_confidence"};
    static const char *const mv[] = {"abuse.ch", "Emotet C2", "Malware Command and Control", "85"};
    struct kg_indicator ind = {
        .type = KG_IND_DOMAIN,
        .value = "evil.example",
        .source = "abuse.ch",
        .severity = 1,
        .nmeta = 4,
        .meta_keys = mk,
        .meta_values = mv,
    };
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(&f.key, "192.0.2.10", "198.51.100.7");
    f.key.proto = 6;
    f.key.sport = 49152;
    f.key.dport = 443;
    f.flow_id = 1234567890123456ull;
    f.app_proto = "tls";
    kg_strlcpy(f.sni, "www.evil.example", sizeof(f.sni));
    kg_strlcpy(f.ja3, "e7d705a3286e19ea42f587b344ee6865", sizeof(f.ja3));
    kg_strlcpy(f.cert_sha1, "0123456789ABCDEF0123456789abcdef01234567", sizeof(f.cert_sha1));

    struct kg_alert a = {
        .ts_us = 1795647844123456ull, /* 2026-11-25T23:04:04.123456 */
        .event_id = "5d3c1e6a-0001",
        .sensor_id = "sensor-1",
        .flow = &f,
        .ind = &ind,
        .where = "tls.sni",
        .seen = "www.evil.example",
        .seen_len = 16,
    };
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (!j) goto out;

    static const char *const top[] = {"timestamp", "event_id", "host",      "flow_id",   "event_type",
                                      "src_ip",    "src_port", "dest_ip",   "dest_port", "proto",
                                      "app_proto", "alert",    "indicator", "tls",       NULL};
    check_keys(j, top);
    CHECK_EQ_STR(jstr(j, "timestamp"), "2026-11-25T23:04:04.123456+0000");
    CHECK_EQ_STR(jstr(j, "event_id"), "5d3c1e6a-0001");
    CHECK_EQ_STR(jstr(j, "host"), "sensor-1");
    CHECK_EQ_INT(jint(j, "flow_id"), 1234567890123456ll);
    CHECK_EQ_STR(jstr(j, "event_type"), "alert");
    CHECK_EQ_STR(jstr(j, "src_ip"), "192.0.2.10");
    CHECK_EQ_INT(jint(j, "src_port"), 49152);
    CHECK_EQ_STR(jstr(j, "dest_ip"), "198.51.100.7");
    CHECK_EQ_INT(jint(j, "dest_port"), 443);
    CHECK_EQ_STR(jstr(j, "proto"), "TCP");
    CHECK_EQ_STR(jstr(j, "app_proto"), "tls");

    json_t *al = json_object_get(j, "alert");
    static const char *const alk[] = {"signature", "signature_id", "category", "severity", NULL};
    check_keys(al, alk);
    CHECK_EQ_STR(jstr(al, "signature"), "KAGAMI intel DOMAIN evil.example - Emotet C2");
    CHECK_EQ_INT(jint(al, "signature_id"), ref_sid("DOMAIN", "evil.example"));
    CHECK_EQ_STR(jstr(al, "category"), "Malware Command and Control");
    CHECK_EQ_INT(jint(al, "severity"), 1);

    json_t *in = json_object_get(j, "indicator");
    static const char *const ink[] = {"value", "type", "where", "seen", "source", "meta", NULL};
    check_keys(in, ink);
    CHECK_EQ_STR(jstr(in, "value"), "evil.example");
    CHECK_EQ_STR(jstr(in, "type"), "DOMAIN");
    CHECK_EQ_STR(jstr(in, "where"), "tls.sni");
    CHECK_EQ_STR(jstr(in, "seen"), "www.evil.example");
    CHECK_EQ_STR(jstr(in, "source"), "abuse.ch");
    json_t *meta = json_object_get(in, "meta");
    static const char *const metak[] = {"source_feed", "desc", "category", "cif_confidence", NULL};
    check_keys(meta, metak);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_STR(jstr(meta, mk[i]), mv[i]);

    json_t *tls = json_object_get(j, "tls");
    static const char *const tlsk[] = {"sni", "ja3", "fingerprint", NULL};
    check_keys(tls, tlsk);
    CHECK_EQ_STR(jstr(tls, "sni"), "www.evil.example");
    static const char *const ja3k[] = {"hash", NULL};
    check_keys(json_object_get(tls, "ja3"), ja3k);
    CHECK_EQ_STR(jstr(json_object_get(tls, "ja3"), "hash"), "e7d705a3286e19ea42f587b344ee6865");
    CHECK_EQ_STR(jstr(tls, "fingerprint"), "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67");
    json_decref(j);

    /* Appends: a second event after the first gives two lines. */
    const size_t first_len = b.len;
    kg_event_format_alert(&b, &a);
    CHECK_EQ_INT(b.len, 2 * first_len);
    CHECK(memcmp(b.data, b.data + first_len, first_len) == 0);
out:
    kg_buf_free(&b);
}

static void test_alert_ipv6_udp_dns(void)
{
    struct kg_indicator ind = {.type = KG_IND_DOMAIN, .value = "bad.test", .source = ""};
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(&f.key, "2001:db8::1", "2001:db8:0:1::53");
    f.key.proto = 17;
    f.key.sport = 5353;
    f.key.dport = 53;
    f.flow_id = 7;
    f.app_proto = NULL;
    /* rrname with a quote, a tab and a byte that is not UTF-8 */
    static const char rr[] = "x\"y\tz\xff.bad.test";
    struct kg_alert a = {
        .ts_us = 0,
        .event_id = "e-2",
        .flow = &f,
        .ind = &ind,
        .where = "dns.query",
        .seen = rr,
        .seen_len = sizeof(rr) - 1,
        .dns_rrname = rr,
        .dns_rrname_len = sizeof(rr) - 1,
    };
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (!j) goto out;
    static const char *const top[] = {"timestamp", "event_id",  "flow_id",   "event_type", "src_ip",
                                      "src_port",  "dest_ip",   "dest_port", "proto",      "app_proto",
                                      "alert",     "indicator", "dns",       NULL};
    check_keys(j, top); /* no "host": sensor_id NULL */
    CHECK_EQ_STR(jstr(j, "timestamp"), "1970-01-01T00:00:00.000000+0000");
    CHECK_EQ_INT(jint(j, "flow_id"), 7);
    CHECK_EQ_STR(jstr(j, "src_ip"), "2001:db8::1");
    CHECK_EQ_INT(jint(j, "src_port"), 5353);
    CHECK_EQ_STR(jstr(j, "dest_ip"), "2001:db8:0:1::53");
    CHECK_EQ_INT(jint(j, "dest_port"), 53);
    CHECK_EQ_STR(jstr(j, "proto"), "UDP");
    CHECK_EQ_STR(jstr(j, "app_proto"), "unknown");
    json_t *al = json_object_get(j, "alert");
    CHECK_EQ_STR(jstr(al, "signature"), "KAGAMI intel DOMAIN bad.test");
    CHECK_EQ_INT(jint(al, "signature_id"), ref_sid("DOMAIN", "bad.test"));
    CHECK_EQ_STR(jstr(al, "category"), "Threat indicator match");
    CHECK_EQ_INT(jint(al, "severity"), 2); /* not given: DOMAIN default */
    json_t *in = json_object_get(j, "indicator");
    static const char *const ink[] = {"value", "type", "where", "seen", "source", NULL};
    check_keys(in, ink);                                        /* no meta */
    CHECK_EQ_STR(jstr(in, "seen"), "x\"y\tz\xc3\xbf.bad.test"); /* 0xFF came out as U+00FF */
    CHECK_EQ_STR(jstr(in, "source"), "");
    static const char *const dnsk[] = {"rrname", NULL};
    check_keys(json_object_get(j, "dns"), dnsk);
    CHECK_EQ_STR(jstr(json_object_get(j, "dns"), "rrname"), "x\"y\tz\xc3\xbf.bad.test");
    CHECK(strstr(b.data, "\"x\\\"y\\tz\\u00ff.bad.test\"") != NULL);
    json_decref(j);
out:
    kg_buf_free(&b);
}

static void test_alert_icmp_vlan_addr(void)
{
    static const char *const mk[] = {"desc"};
    static const char *const mv[] = {"scanner \"A\""};
    struct kg_indicator ind = {.type = KG_IND_ADDR,
                               .value = "198.51.100.99",
                               .source = "local",
                               .severity = 3,
                               .nmeta = 1,
                               .meta_keys = mk,
                               .meta_values = mv};
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(&f.key, "10.1.2.3", "198.51.100.99");
    f.key.proto = 1;
    f.key.sport = 8; /* ICMP type/code: never printed as ports */
    f.key.dport = 0;
    f.flow_id = 42;
    f.nvlan = 2;
    f.vlan[0] = 100;
    f.vlan[1] = 4094;
    struct kg_alert a = {.ts_us = 951782400000001ull, /* 2000-02-29T00:00:00.000001 */
                         .event_id = "e-3",
                         .sensor_id = "s\xe2\x82\xac",
                         .flow = &f,
                         .ind = &ind,
                         .where = "conn.dest_ip",
                         .seen = "198.51.100.99",
                         .seen_len = 13};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (!j) goto out;
    static const char *const top[] = {"timestamp", "event_id",  "host",    "flow_id", "event_type",
                                      "vlan",      "src_ip",    "dest_ip", "proto",   "app_proto",
                                      "alert",     "indicator", NULL};
    check_keys(j, top);
    CHECK_EQ_STR(jstr(j, "timestamp"), "2000-02-29T00:00:00.000001+0000");
    CHECK_EQ_STR(jstr(j, "host"), "s\xe2\x82\xac"); /* valid UTF-8 passes through */
    json_t *vl = json_object_get(j, "vlan");
    CHECK(json_is_array(vl) && json_array_size(vl) == 2);
    CHECK_EQ_INT(json_integer_value(json_array_get(vl, 0)), 100);
    CHECK_EQ_INT(json_integer_value(json_array_get(vl, 1)), 4094);
    CHECK_EQ_STR(jstr(j, "src_ip"), "10.1.2.3");
    CHECK_EQ_STR(jstr(j, "dest_ip"), "198.51.100.99");
    CHECK_EQ_STR(jstr(j, "proto"), "ICMP");
    json_t *al = json_object_get(j, "alert");
    CHECK_EQ_STR(jstr(al, "signature"), "KAGAMI intel ADDR 198.51.100.99 - scanner \"A\"");
    CHECK_EQ_INT(jint(al, "signature_id"), ref_sid("ADDR", "198.51.100.99"));
    CHECK_EQ_INT(jint(al, "severity"), 3);
    json_t *in = json_object_get(j, "indicator");
    CHECK_EQ_STR(jstr(in, "type"), "ADDR");
    CHECK_EQ_STR(jstr(in, "where"), "conn.dest_ip");
    CHECK_EQ_STR(jstr(json_object_get(in, "meta"), "desc"), "scanner \"A\"");
    json_decref(j);
out:
    kg_buf_free(&b);
}

static void test_alert_http_url(void)
{
    struct kg_indicator ind = {.type = KG_IND_URL, .value = "evil.example/payload.exe", .source = "urlhaus"};
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(&f.key, "192.0.2.1", "203.0.113.5");
    f.key.proto = 6;
    f.key.sport = 40000;
    f.key.dport = 80;
    f.flow_id = 9;
    f.app_proto = "http";
    static const char url[] = "/payload.exe?a=1&b=\x01";
    struct kg_alert a = {.ts_us = 1700000000000000ull,
                         .event_id = "e-4",
                         .flow = &f,
                         .ind = &ind,
                         .where = "http.url",
                         .seen = "evil.example/payload.exe",
                         .seen_len = 24,
                         .http_hostname = "evil.example",
                         .http_hostname_len = 12,
                         .http_url = url,
                         .http_url_len = sizeof(url) - 1};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (!j) goto out;
    static const char *const top[] = {"timestamp", "event_id",  "flow_id",   "event_type", "src_ip",
                                      "src_port",  "dest_ip",   "dest_port", "proto",      "app_proto",
                                      "alert",     "indicator", "http",      NULL};
    check_keys(j, top);
    CHECK_EQ_STR(jstr(j, "timestamp"), "2023-11-14T22:13:20.000000+0000");
    json_t *al = json_object_get(j, "alert");
    CHECK_EQ_STR(jstr(al, "signature"), "KAGAMI intel URL evil.example/payload.exe");
    CHECK_EQ_INT(jint(al, "severity"), 1); /* URL default */
    CHECK_EQ_INT(jint(al, "signature_id"), ref_sid("URL", "evil.example/payload.exe"));
    json_t *h = json_object_get(j, "http");
    static const char *const hk[] = {"hostname", "url", NULL};
    check_keys(h, hk);
    CHECK_EQ_STR(jstr(h, "hostname"), "evil.example");
    CHECK_EQ_STR(jstr(h, "url"), url);
    CHECK(strstr(b.data, "&b=\\u0001\"") != NULL);
    json_decref(j);

    /* URL alone */
    a.http_hostname = NULL;
    kg_buf_reset(&b);
    kg_event_format_alert(&b, &a);
    j = parse_line(&b);
    if (!j) goto out;
    static const char *const hk2[] = {"url", NULL};
    check_keys(json_object_get(j, "http"), hk2);
    json_decref(j);
out:
    kg_buf_free(&b);
}

static void test_alert_hashes_and_protos(void)
{
    /* JA3 indicator, the flow has only a JA3: tls {ja3 {hash}} */
    struct kg_indicator ja3 = {
        .type = KG_IND_JA3, .value = "e7d705a3286e19ea42f587b344ee6865", .source = "sslbl"};
    struct kg_indicator cert = {.type = KG_IND_CERT_HASH,
                                .value = "0123456789abcdef0123456789abcdef01234567",
                                .source = "sslbl",
                                .severity = 7 /* out of range: default */};
    struct kg_indicator subnet = {.type = KG_IND_SUBNET, .value = "2001:db8::/32", .source = "x"};
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(&f.key, "192.0.2.1", "192.0.2.2");
    f.key.proto = 6;
    f.key.sport = 1;
    f.key.dport = 2;
    kg_strlcpy(f.ja3, ja3.value, sizeof(f.ja3));
    struct kg_alert a = {.ts_us = 1,
                         .event_id = "e-5",
                         .flow = &f,
                         .ind = &ja3,
                         .where = "tls.ja3",
                         .seen = ja3.value,
                         .seen_len = 32};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const tk[] = {"ja3", NULL};
        check_keys(json_object_get(j, "tls"), tk);
        CHECK_EQ_STR(jstr(json_object_get(json_object_get(j, "tls"), "ja3"), "hash"), ja3.value);
        CHECK_EQ_INT(jint(json_object_get(j, "alert"), "severity"), 2);
        CHECK_EQ_STR(jstr(json_object_get(j, "indicator"), "type"), "JA3");
        CHECK_EQ_STR(jstr(j, "timestamp"), "1970-01-01T00:00:00.000001+0000");
        json_decref(j);
    }

    /* CERT_HASH: default severity 1; only a (lower-case) fingerprint in tls */
    memset(f.ja3, 0, sizeof(f.ja3));
    kg_strlcpy(f.cert_sha1, cert.value, sizeof(f.cert_sha1));
    a.ind = &cert;
    a.where = "tls.cert_sha1";
    kg_buf_reset(&b);
    kg_event_format_alert(&b, &a);
    j = parse_line(&b);
    if (j) {
        static const char *const tk[] = {"fingerprint", NULL};
        check_keys(json_object_get(j, "tls"), tk);
        CHECK_EQ_STR(jstr(json_object_get(j, "tls"), "fingerprint"),
                     "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67");
        CHECK_EQ_INT(jint(json_object_get(j, "alert"), "severity"), 1);
        CHECK_EQ_STR(jstr(json_object_get(j, "indicator"), "type"), "CERT_HASH");
        json_decref(j);
    }

    /* A malformed certificate hash is not printed as a fingerprint. */
    kg_strlcpy(f.cert_sha1, "xyz", sizeof(f.cert_sha1));
    kg_buf_reset(&b);
    kg_event_format_alert(&b, &a);
    j = parse_line(&b);
    if (j) {
        CHECK(json_object_get(j, "tls") == NULL);
        json_decref(j);
    }
    memset(f.cert_sha1, 0, sizeof(f.cert_sha1));

    /* Protocol names and which of them carry ports. */
    static const struct {
        uint8_t proto;
        const char *name;
        bool ports;
    } protos[] = {
        {1, "ICMP", false}, {6, "TCP", true},         {17, "UDP", true},
        {47, "GRE", false}, {58, "IPv6-ICMP", false}, {132, "SCTP", true},
        {0, "0", false},    {50, "50", false},        {255, "255", false},
    };
    set_addr(&f.key, "2001:db8::a", "2001:db8::b");
    a.ind = &subnet;
    for (size_t i = 0; i < KG_ARRAY_LEN(protos); i++) {
        f.key.proto = protos[i].proto;
        f.key.sport = 1111;
        f.key.dport = 2222;
        kg_buf_reset(&b);
        kg_event_format_alert(&b, &a);
        j = parse_line(&b);
        if (!j) continue;
        CHECK_EQ_STR(jstr(j, "proto"), protos[i].name);
        CHECK((json_object_get(j, "src_port") != NULL) == protos[i].ports);
        CHECK((json_object_get(j, "dest_port") != NULL) == protos[i].ports);
        if (protos[i].ports) {
            CHECK_EQ_INT(jint(j, "src_port"), 1111);
            CHECK_EQ_INT(jint(j, "dest_port"), 2222);
        }
        CHECK(json_object_get(j, "tls") == NULL);
        CHECK_EQ_STR(jstr(json_object_get(j, "indicator"), "type"), "SUBNET");
        json_decref(j);
    }

    /* Required inputs missing: nothing appended, no crash. */
    kg_buf_reset(&b);
    a.ind = NULL;
    kg_event_format_alert(&b, &a);
    kg_event_format_alert(&b, NULL);
    CHECK_EQ_INT(b.len, 0);
    kg_buf_free(&b);
}

static void test_signature_id(void)
{
    struct kg_indicator a = {.type = KG_IND_DOMAIN, .value = "example.com"};
    struct kg_indicator b2 = {.type = KG_IND_URL, .value = "example.com"};
    uint32_t ida = kg_indicator_signature_id(&a);
    CHECK_EQ_INT(ida, ref_sid("DOMAIN", "example.com"));
    CHECK(ida >= 1000000000u && ida <= 1999999999u);
    CHECK(ida != kg_indicator_signature_id(&b2)); /* the type is part of the id */
    a.id = 77;                                    /* position in the set does not matter */
    a.source = "other";
    CHECK_EQ_INT(kg_indicator_signature_id(&a), ida);
    for (int i = 0; i < 1000; i++) {
        char v[32];
        snprintf(v, sizeof(v), "h%d.example", i);
        struct kg_indicator x = {.type = KG_IND_DOMAIN, .value = v};
        uint32_t id = kg_indicator_signature_id(&x);
        CHECK(id >= 1000000000u && id <= 1999999999u);
        if (id != ref_sid("DOMAIN", v)) CHECK_EQ_INT(id, ref_sid("DOMAIN", v));
    }
}

/* --- escaping ------------------------------------------------------------------ */

/* Independent reference: the length (1..4) of the well-formed UTF-8
 * sequence at p, by decoding the code point and checking its range. */
static size_t ref_utf8_len(const uint8_t *p, size_t n)
{
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t cp;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xE0) == 0xC0)
        len = 2, cp = p[0] & 0x1Fu;
    else if ((p[0] & 0xF0) == 0xE0)
        len = 3, cp = p[0] & 0x0Fu;
    else if ((p[0] & 0xF8) == 0xF0)
        len = 4, cp = p[0] & 0x07u;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static bool ref_valid_utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = ref_utf8_len(p + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* What a JSON parser must decode our output of s to: valid sequences as
 * they are, any other byte >= 0x80 as U+00XX. */
static size_t ref_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = s[i] < 0x80 ? 1 : ref_utf8_len(s + i, n - i);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = (uint8_t)(0xC0 | s[i] >> 6);
            out[o++] = (uint8_t)(0x80 | (s[i] & 0x3F));
            i++;
        }
    }
    return o;
}

/* Escapes s, checks the output is valid UTF-8 without raw control bytes,
 * parses it with jansson and compares with the reference decoding. */
static bool check_escape(const uint8_t *s, size_t n)
{
    struct kg_buf b;
    kg_buf_init(&b);
    kg_json_append_string(&b, (const char *)s, n);
    bool ok = b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"' && b.data[b.len] == '\0';
    ok = ok && ref_valid_utf8((const uint8_t *)b.data, b.len);
    for (size_t i = 0; ok && i < b.len; i++)
        if ((uint8_t)b.data[i] < 0x20) ok = false;
    json_error_t e;
    json_t *j = ok ? json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e) : NULL;
    if (j && json_is_string(j)) {
        uint8_t *want = malloc(2 * n + 1);
        size_t wn = ref_decode(s, n, want);
        ok = json_string_length(j) == wn && memcmp(json_string_value(j), want, wn) == 0;
        /* Valid UTF-8 input comes out unchanged. */
        if (ok && ref_valid_utf8(s, n)) ok = wn == n && memcmp(want, s, n) == 0;
        free(want);
    } else {
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "escape failed for %zu bytes:", n);
        for (size_t i = 0; i < n && i < 64; i++)
            fprintf(stderr, " %02x", s[i]);
        fprintf(stderr, "\n  output: %.*s\n", (int)b.len, b.data ? b.data : "");
    }
    json_decref(j);
    kg_buf_free(&b);
    return ok;
}

static void expect_escape(const char *in, size_t n, const char *want)
{
    struct kg_buf b;
    kg_buf_init(&b);
    kg_json_append_string(&b, in, n);
    CHECK_EQ_STR(b.data, want);
    CHECK(check_escape((const uint8_t *)in, n));
    kg_buf_free(&b);
}

static void test_escape_single_bytes(void)
{
    for (int c = 0; c < 256; c++) {
        const uint8_t byte = (uint8_t)c;
        CHECK(check_escape(&byte, 1));
        char want[16];
        switch (c) {
        case '"':
            snprintf(want, sizeof(want), "\"\\\"\"");
            break;
        case '\\':
            snprintf(want, sizeof(want), "\"\\\\\"");
            break;
        case '\b':
            snprintf(want, sizeof(want), "\"\\b\"");
            break;
        case '\f':
            snprintf(want, sizeof(want), "\"\\f\"");
            break;
        case '\n':
            snprintf(want, sizeof(want), "\"\\n\"");
            break;
        case '\r':
            snprintf(want, sizeof(want), "\"\\r\"");
            break;
        case '\t':
            snprintf(want, sizeof(want), "\"\\t\"");
            break;
        default:
            if (c < 0x20 || c >= 0x80)
                snprintf(want, sizeof(want), "\"\\u%04x\"", c);
            else
                snprintf(want, sizeof(want), "\"%c\"", c); /* DEL (0x7f) included: allowed as is */
        }
        struct kg_buf b;
        kg_buf_init(&b);
        kg_json_append_string(&b, (const char *)&byte, 1);
        if (strcmp(b.data, want) != 0) CHECK_EQ_STR(b.data, want);
        kg_buf_free(&b);
    }
    expect_escape("", 0, "\"\"");
    expect_escape("plain ascii ~", 13, "\"plain ascii ~\"");
    expect_escape("a\0b", 3, "\"a\\u0000b\"");
    expect_escape("/", 1, "\"/\"");
}

static void test_escape_tricky_utf8(void)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"\xc2\x80", "\"\xc2\x80\""},                             /* U+0080, smallest 2-byte */
        {"\xdf\xbf", "\"\xdf\xbf\""},                             /* U+07FF */
        {"\xe0\xa0\x80", "\"\xe0\xa0\x80\""},                     /* U+0800 */
        {"\xed\x9f\xbf", "\"\xed\x9f\xbf\""},                     /* U+D7FF, last before surrogates */
        {"\xee\x80\x80", "\"\xee\x80\x80\""},                     /* U+E000 */
        {"\xef\xbf\xbf", "\"\xef\xbf\xbf\""},                     /* U+FFFF */
        {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},             /* U+1F600, 4 bytes */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},             /* U+10FFFF */
        {"\xe2\x82\xac", "\"\xe2\x82\xac\""},                     /* EURO SIGN */
        {"\xc0\xaf", "\"\\u00c0\\u00af\""},                       /* overlong '/' */
        {"\xc1\xbf", "\"\\u00c1\\u00bf\""},                       /* overlong */
        {"\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\""},            /* overlong 3-byte '/' */
        {"\xe0\x9f\xbf", "\"\\u00e0\\u009f\\u00bf\""},            /* overlong U+07FF */
        {"\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\""}, /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", "\"\\u00f0\\u008f\\u00bf\\u00bf\""}, /* overlong U+FFFF */
        {"\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""},            /* U+D800 surrogate */
        {"\xed\xbf\xbf", "\"\\u00ed\\u00bf\\u00bf\""},            /* U+DFFF surrogate */
        {"\xed\xa0\xbd\xed\xb8\x80", "\"\\u00ed\\u00a0\\u00bd\\u00ed\\u00b8\\u0080\""}, /* CESU pair */
        {"\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""},                       /* U+110000 */
        {"\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\""},                       /* bad lead */
        {"\xf8\x88\x80\x80\x80", "\"\\u00f8\\u0088\\u0080\\u0080\\u0080\""},            /* old 5-byte form */
        {"\x80", "\"\\u0080\""},                       /* lone continuation */
        {"\xe2\x82", "\"\\u00e2\\u0082\""},            /* truncated at the end */
        {"\xf0\x9f\x98", "\"\\u00f0\\u009f\\u0098\""}, /* truncated 4-byte */
        {"\xe2\x82"
         "A",
         "\"\\u00e2\\u0082A\""}, /* cut by ASCII */
        {"\xc3"
         "\xc3\xa9",
         "\"\\u00c3\xc3\xa9\""}, /* bad lead, then a valid e-acute */
        {"a\xff"
         "b\x7f"
         "c",
         "\"a\\u00ffb\x7f"
         "c\""}, /* DEL passes */
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++)
        expect_escape(cases[i].in, strlen(cases[i].in), cases[i].want);
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_escape_random(void)
{
    uint8_t s[256];
    int failures = 0;
    for (int it = 0; it < 100000 && failures < 5; it++) {
        size_t n = 0;
        const int chunks = (int)(rnd() % 24);
        const bool valid_only = it % 4 == 0;
        for (int c = 0; c < chunks && n + 4 <= sizeof(s); c++) {
            uint64_t r = rnd();
            switch (valid_only ? 3 + r % 3 : r % 8) {
            case 0:
                s[n++] = (uint8_t)(r >> 8);
                break; /* any byte */
            case 1:
                s[n++] = (uint8_t)(0x80 + (r >> 8) % 0x80);
                break; /* high byte */
            case 2: {  /* a truncated sequence */
                uint8_t tmp[4];
                size_t l = put_utf8(tmp, (uint32_t)(0x80 + (r >> 8) % 0x10FF80));
                memcpy(s + n, tmp, l - 1);
                n += l - 1;
                break;
            }
            case 3:
                s[n++] = (uint8_t)((r >> 8) % 0x80);
                break; /* ASCII incl. controls */
            case 4: {  /* a valid code point */
                uint32_t cp = (uint32_t)((r >> 8) % 0x110000);
                if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800;
                n += put_utf8(s + n, cp);
                break;
            }
            case 5:
                s[n++] = "\"\\/\x7f"[(r >> 8) % 4];
                break;
            case 6: { /* surrogate or > U+10FFFF, encoded */
                uint8_t tmp[4];
                uint32_t cp = r & 0x100 ? 0xD800 + (uint32_t)((r >> 9) % 0x800)
                                        : 0x110000 + (uint32_t)((r >> 9) % 0xEFFFF);
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    tmp[0] = (uint8_t)(0xE0 | cp >> 12);
                    tmp[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
                    tmp[2] = (uint8_t)(0x80 | (cp & 0x3F));
                    memcpy(s + n, tmp, 3);
                    n += 3;
                } else {
                    n += put_utf8(s + n, cp);
                }
                break;
            }
            default: { /* an overlong form */
                uint32_t cp = (uint32_t)((r >> 8) % 0x80);
                s[n++] = (uint8_t)(0xC0 | cp >> 6);
                s[n++] = (uint8_t)(0x80 | (cp & 0x3F));
                break;
            }
            }
        }
        if (valid_only) CHECK(ref_valid_utf8(s, n));
        if (!check_escape(s, n)) {
            failures++;
            CHECK(false);
        }
    }
    CHECK_EQ_INT(failures, 0);
}

/* --- timestamps --------------------------------------------------------------- */

static void test_timestamp(void)
{
    char buf[32];
    CHECK_EQ_STR(kg_format_timestamp(0, buf), "1970-01-01T00:00:00.000000+0000");
    CHECK_EQ_STR(kg_format_timestamp(1795647844123456ull, buf), "2026-11-25T23:04:04.123456+0000");
    CHECK_EQ_STR(kg_format_timestamp(951868799999999ull, buf), "2000-02-29T23:59:59.999999+0000");
    CHECK_EQ_STR(kg_format_timestamp(4107542400000000ull, buf), "2100-03-01T00:00:00.000000+0000");
    CHECK_EQ_STR(kg_format_timestamp(253402300799999999ull, buf), "9999-12-31T23:59:59.999999+0000");
    CHECK_EQ_STR(kg_format_timestamp(UINT64_MAX, buf), "9999-12-31T23:59:59.999999+0000"); /* clamped */
    CHECK(kg_format_timestamp(1, buf) == buf);
    CHECK_EQ_INT(strlen(buf), 31);

    /* Against the C library, over the whole representable range. */
    for (int i = 0; i < 100000; i++) {
        const uint64_t us = rnd() % 253402300800000000ull;
        const time_t t = (time_t)(us / 1000000u);
        struct tm tm;
        CHECK(gmtime_r(&t, &tm) != NULL);
        char want[64];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06u+0000", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
        kg_format_timestamp(us, buf);
        if (strcmp(buf, want) != 0) {
            CHECK_EQ_STR(buf, want);
            break;
        }
    }
}

/* --- sinks -------------------------------------------------------------------- */

static char tmpdir[64];

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct kg_buf b;
    kg_buf_init(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        kg_buf_append(&b, tmp, n);
    fclose(f);
    kg_buf_append(&b, "", 0);
    *len = b.len;
    return b.data;
}

static void make_event(struct kg_buf *b, int i)
{
    kg_buf_reset(b);
    kg_buf_printf(b, "{\"n\":%d,\"s\":\"event %d\"}", i, i);
}

/* Checks that the file holds exactly the events first..last-1, one per line. */
static void check_file_events(const char *path, int first, int last)
{
    size_t len = 0;
    char *data = read_file(path, &len);
    CHECK(data != NULL);
    if (!data) return;
    struct kg_buf want;
    kg_buf_init(&want);
    for (int i = first; i < last; i++) {
        struct kg_buf e;
        kg_buf_init(&e);
        make_event(&e, i);
        kg_buf_append(&want, e.data, e.len);
        kg_buf_append_char(&want, '\n');
        kg_buf_free(&e);
    }
    CHECK_EQ_INT(len, want.len);
    CHECK(want.len == len && (len == 0 || memcmp(data, want.data, len) == 0));
    /* And every line parses. */
    int lines = 0;
    for (char *p = data, *nl; (nl = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p = nl + 1) {
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        CHECK(j && jint(j, "n") == first + lines);
        json_decref(j);
        lines++;
    }
    CHECK_EQ_INT(lines, last - first);
    kg_buf_free(&want);
    free(data);
}

static void test_file_sink(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/eve.json", tmpdir);
    char spec[160];
    snprintf(spec, sizeof(spec), "file:%s", path);
    struct kg_err err = {{0}};
    struct kg_buf ev;
    kg_buf_init(&ev);

    struct kg_sink *s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_STR(kg_sink_name(s), spec);
    struct stat st;
    const mode_t um = umask(0);
    umask(um);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0640 & ~um));
    for (int i = 0; i < 3; i++) {
        make_event(&ev, i);
        if (i == 1) kg_buf_append_char(&ev, '\n'); /* a trailing newline is accepted, not doubled */
        CHECK_EQ_INT(kg_sink_write(s, ev.data, ev.len), 0);
    }
    /* Buffered: nothing written before the flush. */
    CHECK(stat(path, &st) == 0 && st.st_size == 0);
    /* Framing errors are refused. */
    CHECK_EQ_INT(kg_sink_write(s, "{\"a\":\n1}", 8), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_sink_write(s, "\n", 1), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_sink_write(s, "", 0), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    check_file_events(path, 0, 3);
    struct kg_sink_stats stats;
    kg_sink_get_stats(s, &stats);
    CHECK_EQ_INT(stats.written, 3);
    CHECK_EQ_INT(stats.delivered, 3);
    CHECK_EQ_INT(stats.failed, 0);
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0); /* nothing queued: fine */
    kg_sink_free(s);

    /* Reopen: appends, never truncates. Enough events to drain on the way. */
    s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 3; i < 20000; i++) {
        make_event(&ev, i);
        CHECK(kg_sink_write(s, ev.data, ev.len) == 0);
    }
    CHECK(stat(path, &st) == 0 && st.st_size > 64 * 1024); /* drained past 64 KiB before any flush */
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    check_file_events(path, 0, 20000);
    kg_sink_get_stats(s, &stats);
    CHECK_EQ_INT(stats.written, 19997);
    CHECK_EQ_INT(stats.delivered, 19997);

    /* Rotation: rename, reopen, and the next events go to a new file. */
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    CHECK(rename(path, rotated) == 0);
    make_event(&ev, 20000);
    CHECK_EQ_INT(kg_sink_write(s, ev.data, ev.len), 0);
    CHECK_EQ_INT(kg_sink_reopen(s, &err), 0);
    make_event(&ev, 20001);
    CHECK_EQ_INT(kg_sink_write(s, ev.data, ev.len), 0);
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    check_file_events(rotated, 0, 20001);
    check_file_events(path, 20001, 20002);
    kg_sink_free(s);
    unlink(rotated);
    unlink(path);

    /* Errors at construction. */
    CHECK(kg_sink_new("file:", &err) == NULL);
    char bad[200];
    snprintf(bad, sizeof(bad), "file:%s/no/such/dir/x.json", tmpdir);
    CHECK(kg_sink_new(bad, &err) == NULL);
    CHECK(strstr(err.msg, "no/such/dir") != NULL);
    kg_buf_free(&ev);
}

static void test_stdout_sink(void)
{
    /* Point fd 1 at a file for the duration. */
    char path[128];
    snprintf(path, sizeof(path), "%s/stdout.json", tmpdir);
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO);
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    if (saved < 0 || fd < 0) return;
    dup2(fd, STDOUT_FILENO);
    close(fd);

    struct kg_err err;
    struct kg_sink *s = kg_sink_new("-", &err);
    struct kg_sink *s2 = kg_sink_new("stdout", &err);
    CHECK(s != NULL && s2 != NULL);
    struct kg_buf ev;
    kg_buf_init(&ev);
    for (int i = 0; i < 5 && s; i++) {
        make_event(&ev, i);
        CHECK_EQ_INT(kg_sink_write(s, ev.data, ev.len), 0);
    }
    const int flush_rc = s ? kg_sink_flush(s, &err) : -1;
    struct kg_sink_stats st = {0};
    if (s) kg_sink_get_stats(s, &st);

    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);

    CHECK_EQ_INT(flush_rc, 0);
    CHECK_EQ_INT(st.written, 5);
    CHECK_EQ_INT(st.delivered, 5);
    if (s) CHECK_EQ_STR(kg_sink_name(s), "stdout");
    check_file_events(path, 0, 5);
    kg_sink_free(s);
    kg_sink_free(s2);
    kg_sink_free(NULL);
    kg_buf_free(&ev);
    unlink(path);
    CHECK(kg_sink_new("stdout2", &err) == NULL);
    CHECK(kg_sink_new("bogus", &err) == NULL);
    CHECK(kg_sink_new(NULL, &err) == NULL);
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_redis_spec_offline(void)
{
    struct kg_err err;
    static const struct {
        const char *spec;
        const char *name; /* NULL: must be refused */
    } cases[] = {
        {"redis://127.0.0.1:6379/alerts", "redis://127.0.0.1:6379/alerts"},
        {"redis://:s3cret@127.0.0.1:6379/alerts", "redis://:***@127.0.0.1:6379/alerts"},
        {"redis://:p@ss:w%2Frd@host:1/k", "redis://:***@host:1/k"},
        {"redis://alice:pw@host:1/k", "redis://alice:***@host:1/k"},
        {"redis://[::1]:6380/kagami:alerts", "redis://[::1]:6380/kagami:alerts"},
        {"redis://localhost/k", "redis://localhost/k"}, /* default port */
        {"redis://host:6379", NULL},                    /* no key */
        {"redis://host:6379/", NULL},                   /* empty key */
        {"redis://host:0/k", NULL},
        {"redis://host:65536/k", NULL},
        {"redis://host:12ab/k", NULL},
        {"redis://:6379/k", NULL},    /* no host */
        {"redis://::1:6379/k", NULL}, /* IPv6 without brackets */
        {"redis://[::1/k", NULL},
        {"redis://secret@host:1/k", NULL}, /* userinfo without ':' */
        {"redis://:bad%zz@host:1/k", NULL},
        {"redis://:bad%2@host:1/k", NULL},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++) {
        memset(&err, 0, sizeof(err));
        struct kg_sink *s = kg_sink_new(cases[i].spec, &err);
        if (cases[i].name) {
            CHECK(s != NULL);
            if (!s) fprintf(stderr, "  %s: %s\n", cases[i].spec, err.msg);
            if (s) CHECK_EQ_STR(kg_sink_name(s), cases[i].name);
        } else {
            CHECK(s == NULL);
            if (s) fprintf(stderr, "  accepted: %s\n", cases[i].spec);
            CHECK(err.msg[0] != '\0');
            CHECK(strstr(err.msg, "s3cret") == NULL);
        }
        kg_sink_free(s);
    }

    /* Unreachable server: events stay queued, flush says "again", the
     * password never shows, and the queue bound drops the oldest. */
    const int port = closed_port();
    CHECK(port > 0);
    char spec[128];
    snprintf(spec, sizeof(spec), "redis://:hunter2@127.0.0.1:%d/k", port);
    struct kg_sink *s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) return;
    const enum kg_log_level lvl = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);          /* the expected connection warnings */
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0); /* nothing queued: no connection needed */
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 100), 0);
    for (int i = 0; i < 150; i++)
        CHECK(kg_sink_write(s, "{\"a\":1}", 7) == 0);
    memset(&err, 0, sizeof(err));
    const uint64_t t0 = kg_monotonic_ns();
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(kg_monotonic_ns() - t0 < 3000000000ull); /* one attempt, short timeout */
    CHECK(strstr(err.msg, "100 events queued") != NULL);
    CHECK(strstr(err.msg, "hunter2") == NULL);
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.written, 150);
    CHECK_EQ_INT(st.delivered, 0);
    CHECK_EQ_INT(st.failed, 50);
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 10), 0);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.failed, 140);
    CHECK_EQ_INT(kg_sink_set_queue_limit(s, 0), KG_ERR_INVAL);
    kg_log_set_level(lvl);
    kg_sink_free(s);

    /* Queue limits only apply to queued sinks. */
    s = kg_sink_new("stdout", &err);
    CHECK(s && kg_sink_set_queue_limit(s, 10) == KG_ERR_INVAL);
    CHECK(s && kg_sink_reopen(s, &err) == 0);
    kg_sink_free(s);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kg_test_export_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    KG_TEST_RUN(test_alert_ipv4_tcp_tls);
    KG_TEST_RUN(test_alert_ipv6_udp_dns);
    KG_TEST_RUN(test_alert_icmp_vlan_addr);
    KG_TEST_RUN(test_alert_http_url);
    KG_TEST_RUN(test_alert_hashes_and_protos);
    KG_TEST_RUN(test_signature_id);
    KG_TEST_RUN(test_escape_single_bytes);
    KG_TEST_RUN(test_escape_tricky_utf8);
    KG_TEST_RUN(test_escape_random);
    KG_TEST_RUN(test_timestamp);
    KG_TEST_RUN(test_file_sink);
    KG_TEST_RUN(test_stdout_sink);
    KG_TEST_RUN(test_redis_spec_offline);
    rmdir(tmpdir);
    KG_TEST_MAIN_END();
}
