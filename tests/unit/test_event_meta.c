/*
 * tests/unit/test_event_meta.c — metadata events (export/event_meta.c):
 * dns, tls, http, quic, flow, stats, the shared header with community_id
 * and src_geo/dest_geo, and the same enrichment on alerts (event.c).
 * Every line is parsed back with jansson, an independent JSON parser, and
 * checked field by field, key order included (jansson keeps insertion
 * order). Random bytes in every string field must still give one valid
 * JSON line.
 */
#include "export/export.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- helpers ------------------------------------------------------------------ */

/* One formatted event: exactly one line ending in '\n' with one JSON
 * object. Returns it (owned), or NULL after a failed check. */
static json_t *parse_line(const struct kg_buf *b)
{
    CHECK(b->len > 2);
    if (b->len < 2) return NULL;
    CHECK(b->data[b->len - 1] == '\n');
    CHECK(memchr(b->data, '\n', b->len - 1) == NULL);
    json_error_t e;
    /* JSON_ALLOW_NUL: a NUL byte on the wire is written as \u0000. */
    json_t *j = json_loadb(b->data, b->len - 1, JSON_ALLOW_NUL, &e);
    if (!j) fprintf(stderr, "jansson: %s at %d in: %.*s\n", e.text, e.position, (int)b->len, b->data);
    CHECK(j != NULL && json_is_object(j));
    return j;
}

/* An object's keys, in order, against a NULL-terminated list. */
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
        if (!keys[i]) {
            fprintf(stderr, "  unexpected key \"%s\"\n", k);
            CHECK(keys[i] != NULL);
            return;
        }
        if (strcmp(k, keys[i]) != 0) fprintf(stderr, "  key %zu: \"%s\", expected \"%s\"\n", i, k, keys[i]);
        CHECK_EQ_STR(k, keys[i]);
        i++;
    }
    if (keys[i]) fprintf(stderr, "  missing key \"%s\"\n", keys[i]);
    CHECK(keys[i] == NULL);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    CHECK(json_is_integer(v));
    return json_integer_value(v);
}

static void set_addr(uint8_t *dst, uint8_t *family, const char *text)
{
    memset(dst, 0, 16);
    if (inet_pton(AF_INET, text, dst) == 1) {
        *family = 4;
    } else {
        CHECK_EQ_INT(inet_pton(AF_INET6, text, dst), 1);
        *family = 6;
    }
}

static struct kg_flow_info make_flow(uint8_t proto, const char *src, uint16_t sport, const char *dst,
                                     uint16_t dport)
{
    struct kg_flow_info f;
    memset(&f, 0, sizeof(f));
    set_addr(f.key.saddr, &f.key.family, src);
    set_addr(f.key.daddr, &f.key.family, dst);
    f.key.proto = proto;
    f.key.sport = sport;
    f.key.dport = dport;
    f.flow_id = 1234567890123456789ull;
    f.first_ts_us = 1764112244123456ull; /* 2025-11-25T23:10:44.123456 */
    f.last_ts_us = f.first_ts_us + 61500000ull;
    return f;
}

#define TS 1764112250000001ull /* 2025-11-25T23:10:50.000001+0000 */

static const struct kg_geo geo_google = {"US", 15169, "Google LLC"};
static const struct kg_geo geo_asn_only = {"", 64496, ""};
static const struct kg_geo geo_empty = {"", 0, ""};

/* Checks the shared header of a flow-bound event. */
static void check_header(const json_t *j, const char *event_type, const char *src, long long sport,
                         const char *dst, long long dport, const char *proto, const char *app_proto)
{
    CHECK_EQ_STR(jstr(j, "timestamp"), "2025-11-25T23:10:50.000001+0000");
    CHECK_EQ_STR(jstr(j, "event_type"), event_type);
    CHECK(json_is_integer(json_object_get(j, "flow_id")));
    CHECK_EQ_INT((unsigned long long)json_integer_value(json_object_get(j, "flow_id")),
                 1234567890123456789ull);
    CHECK_EQ_STR(jstr(j, "src_ip"), src);
    CHECK_EQ_STR(jstr(j, "dest_ip"), dst);
    if (sport >= 0) {
        CHECK_EQ_INT(jint(j, "src_port"), sport);
        CHECK_EQ_INT(jint(j, "dest_port"), dport);
    } else {
        CHECK(json_object_get(j, "src_port") == NULL);
        CHECK(json_object_get(j, "dest_port") == NULL);
    }
    CHECK_EQ_STR(jstr(j, "proto"), proto);
    CHECK_EQ_STR(jstr(j, "app_proto"), app_proto);
}

/* --- dns -------------------------------------------------------------------------- */

static void test_dns_query(void)
{
    struct kg_flow_info f = make_flow(17, "192.0.2.10", 53001, "198.51.100.53", 53);
    f.app_proto = "dns";
    f.nvlan = 2;
    f.vlan[0] = 100;
    f.vlan[1] = 200;
    struct kg_event_hdr h = {.ts_us = TS,
                             .event_id = "ev-1",
                             .sensor_id = "sensor-1",
                             .flow = &f,
                             .community_id = "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
                             .src_geo = &geo_empty,
                             .dest_geo = &geo_google};
    struct kg_dns_event e = {
        .is_response = false, .id = 0x1234, .rrname = "www.example.com", .rrname_len = 15, .rrtype = 1};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_dns(&b, &h, &e);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {
            "timestamp", "event_id",  "host",  "flow_id",   "event_type",   "vlan",     "src_ip", "src_port",
            "dest_ip",   "dest_port", "proto", "app_proto", "community_id", "dest_geo", "dns",    NULL};
        check_keys(j, keys);
        check_header(j, "dns", "192.0.2.10", 53001, "198.51.100.53", 53, "UDP", "dns");
        CHECK_EQ_STR(jstr(j, "event_id"), "ev-1");
        CHECK_EQ_STR(jstr(j, "host"), "sensor-1");
        CHECK_EQ_INT(json_array_size(json_object_get(j, "vlan")), 2);
        CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(j, "vlan"), 1)), 200);
        CHECK_EQ_STR(jstr(j, "community_id"), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
        const json_t *g = json_object_get(j, "dest_geo");
        static const char *const gkeys[] = {"country", "asn", "as_org", NULL};
        check_keys(g, gkeys);
        CHECK_EQ_STR(jstr(g, "country"), "US");
        CHECK_EQ_INT(jint(g, "asn"), 15169);
        CHECK_EQ_STR(jstr(g, "as_org"), "Google LLC");
        const json_t *d = json_object_get(j, "dns");
        static const char *const dkeys[] = {"type", "id", "rrname", "rrtype", NULL};
        check_keys(d, dkeys);
        CHECK_EQ_STR(jstr(d, "type"), "query");
        CHECK_EQ_INT(jint(d, "id"), 0x1234);
        CHECK_EQ_STR(jstr(d, "rrname"), "www.example.com");
        CHECK_EQ_STR(jstr(d, "rrtype"), "A");
        json_decref(j);
    }
    kg_buf_free(&b);
}

static void test_dns_answer(void)
{
    struct kg_flow_info f = make_flow(17, "2001:db8::10", 5353, "2001:db8::53", 53);
    struct kg_event_hdr h = {.ts_us = TS, .flow = &f, .src_geo = &geo_asn_only};
    struct kg_dns_event_answer ans[5];
    memset(ans, 0, sizeof(ans));
    ans[0] = (struct kg_dns_event_answer){.rrname = "www.example.com",
                                          .rrname_len = 15,
                                          .rrtype = 5,
                                          .ttl = 3600,
                                          .target = "cdn.example.com",
                                          .target_len = 15};
    ans[1] = (struct kg_dns_event_answer){.rrname = "cdn.example.com",
                                          .rrname_len = 15,
                                          .rrtype = 1,
                                          .ttl = 60,
                                          .addr_family = 4,
                                          .addr = {93, 184, 216, 34}};
    ans[2] = (struct kg_dns_event_answer){
        .rrname = "cdn.example.com",
        .rrname_len = 15,
        .rrtype = 28,
        .ttl = 60,
        .addr_family = 6,
        .addr = {0x26, 0x06, 0x28, 0, 0x02, 0x20, 0, 1, 0x02, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46}};
    ans[3] =
        (struct kg_dns_event_answer){.rrname = "example.com", .rrname_len = 11, .rrtype = 15, .ttl = 300};
    /* A name with a NUL, a quote and a presentation-form "\." */
    ans[4] = (struct kg_dns_event_answer){.rrname = "a\\.b\"\0c",
                                          .rrname_len = 7,
                                          .rrtype = 0xFF00,
                                          .ttl = 4294967295u,
                                          .target = "t\xff",
                                          .target_len = 2};
    struct kg_dns_event e = {.is_response = true,
                             .id = 7,
                             .rrname = "www.example.com",
                             .rrname_len = 15,
                             .rrtype = 65,
                             .rcode = 3,
                             .answers = ans,
                             .nanswers = 5};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_dns(&b, &h, &e);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {"timestamp", "flow_id", "event_type", "src_ip",
                                           "src_port",  "dest_ip", "dest_port",  "proto",
                                           "app_proto", "src_geo", "dns",        NULL};
        check_keys(j, keys);
        check_header(j, "dns", "2001:db8::10", 5353, "2001:db8::53", 53, "UDP", "unknown");
        static const char *const gkeys[] = {"asn", NULL};
        check_keys(json_object_get(j, "src_geo"), gkeys);
        const json_t *d = json_object_get(j, "dns");
        static const char *const dkeys[] = {"type", "id", "rrname", "rrtype", "rcode", "answers", NULL};
        check_keys(d, dkeys);
        CHECK_EQ_STR(jstr(d, "type"), "answer");
        CHECK_EQ_STR(jstr(d, "rrtype"), "HTTPS");
        CHECK_EQ_STR(jstr(d, "rcode"), "NXDOMAIN");
        const json_t *a = json_object_get(d, "answers");
        CHECK_EQ_INT(json_array_size(a), 5);
        static const char *const akeys[] = {"rrname", "rrtype", "ttl", "rdata", NULL};
        static const char *const akeys_nodata[] = {"rrname", "rrtype", "ttl", NULL};
        for (size_t i = 0; i < 5; i++)
            check_keys(json_array_get(a, i), i == 3 ? akeys_nodata : akeys);
        CHECK_EQ_STR(jstr(json_array_get(a, 0), "rrtype"), "CNAME");
        CHECK_EQ_STR(jstr(json_array_get(a, 0), "rdata"), "cdn.example.com");
        CHECK_EQ_INT(jint(json_array_get(a, 0), "ttl"), 3600);
        CHECK_EQ_STR(jstr(json_array_get(a, 1), "rdata"), "93.184.216.34");
        CHECK_EQ_STR(jstr(json_array_get(a, 2), "rrtype"), "AAAA");
        CHECK_EQ_STR(jstr(json_array_get(a, 2), "rdata"), "2606:2800:220:1:248:1893:25c8:1946");
        CHECK_EQ_STR(jstr(json_array_get(a, 3), "rrtype"), "MX");
        const json_t *a4 = json_array_get(a, 4);
        CHECK_EQ_STR(jstr(a4, "rrtype"), "TYPE65280");
        CHECK_EQ_INT(jint(a4, "ttl"), 4294967295ll);
        /* The NUL byte survives as \u0000 (jansson reports the length). */
        const json_t *rn = json_object_get(a4, "rrname");
        CHECK_EQ_INT(json_string_length(rn), 7);
        CHECK(memcmp(json_string_value(rn), "a\\.b\"\0c", 7) == 0);
        CHECK_EQ_STR(jstr(a4, "rdata"), "t\xc3\xbf"); /* 0xff read as U+00FF */
        json_decref(j);
    }

    /* A response without answers: no "answers" member; rcodes by name. */
    static const char *const rcodes[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",  "DSOTYPENI", "RCODE12", "RCODE13", "RCODE14",  "RCODE15"};
    for (uint8_t rc = 0; rc < 16; rc++) {
        struct kg_dns_event e2 = {.is_response = true, .id = 1, .rcode = rc};
        kg_buf_reset(&b);
        kg_event_format_dns(&b, &h, &e2);
        j = parse_line(&b);
        if (!j) continue;
        const json_t *d = json_object_get(j, "dns");
        static const char *const dkeys[] = {"type", "id", "rcode", NULL};
        check_keys(d, dkeys);
        CHECK_EQ_STR(jstr(d, "rcode"), rcodes[rc]);
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- tls -------------------------------------------------------------------------- */

static void test_tls(void)
{
    struct kg_flow_info f = make_flow(6, "192.0.2.10", 49152, "203.0.113.7", 443);
    f.app_proto = "tls";
    struct kg_event_hdr h = {.ts_us = TS, .event_id = "t", .flow = &f, .community_id = "1:abc="};
    struct kg_tls_event e = {
        .sni = "www.example.com",
        .version = 0x0303,
        .alpn = "h2",
        .ja3_hash = "e7d705a3286e19ea42f587b344ee6865",
        .ja3_string = "771,4865-4866,0-23,29-23,0",
        .ja4 = "t13d1516h2_8daaf6152771_02713d6af862",
        .has_cert = true,
        .subject = "C=US, O=Example \"Inc\", CN=www.example.com",
        .issuerdn = "C=US, O=Let's Encrypt, CN=R3",
        .serial = "04:A1",
        .cert_sha1 = "4EFB9C82530D47C530E8F95679DBF80BFFCC5C53",
        .cert_sha256 = "2d1095c4992c8fd5cf76b70039505cf8f767c3b15c04fd3a69a9426f79e1b380",
        .notbefore = "2026-11-25T23:11:17",
        .notafter = "2036-11-22T23:11:17",
        .self_signed = false,
    };
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_tls(&b, &h, &e);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {"timestamp",    "event_id", "flow_id",   "event_type", "src_ip",
                                           "src_port",     "dest_ip",  "dest_port", "proto",      "app_proto",
                                           "community_id", "tls",      NULL};
        check_keys(j, keys);
        check_header(j, "tls", "192.0.2.10", 49152, "203.0.113.7", 443, "TCP", "tls");
        const json_t *t = json_object_get(j, "tls");
        static const char *const tkeys[] = {"sni",       "version",  "alpn",        "ja3",         "ja4",
                                            "subject",   "issuerdn", "serial",      "fingerprint", "sha256",
                                            "notbefore", "notafter", "self_signed", NULL};
        check_keys(t, tkeys);
        CHECK_EQ_STR(jstr(t, "sni"), "www.example.com");
        CHECK_EQ_STR(jstr(t, "version"), "TLS 1.2");
        CHECK_EQ_STR(jstr(t, "alpn"), "h2");
        static const char *const jkeys[] = {"hash", "string", NULL};
        check_keys(json_object_get(t, "ja3"), jkeys);
        CHECK_EQ_STR(jstr(json_object_get(t, "ja3"), "hash"), "e7d705a3286e19ea42f587b344ee6865");
        CHECK_EQ_STR(jstr(json_object_get(t, "ja3"), "string"), "771,4865-4866,0-23,29-23,0");
        CHECK_EQ_STR(jstr(t, "ja4"), "t13d1516h2_8daaf6152771_02713d6af862");
        CHECK_EQ_STR(jstr(t, "subject"), "C=US, O=Example \"Inc\", CN=www.example.com");
        CHECK_EQ_STR(jstr(t, "issuerdn"), "C=US, O=Let's Encrypt, CN=R3");
        CHECK_EQ_STR(jstr(t, "serial"), "04:A1");
        CHECK_EQ_STR(jstr(t, "fingerprint"), "4e:fb:9c:82:53:0d:47:c5:30:e8:f9:56:79:db:f8:0b:ff:cc:5c:53");
        CHECK_EQ_STR(jstr(t, "sha256"), "2d1095c4992c8fd5cf76b70039505cf8f767c3b15c04fd3a69a9426f79e1b380");
        CHECK_EQ_STR(jstr(t, "notbefore"), "2026-11-25T23:11:17");
        CHECK_EQ_STR(jstr(t, "notafter"), "2036-11-22T23:11:17");
        CHECK(json_is_false(json_object_get(t, "self_signed")));
        json_decref(j);
    }

    /* Minimal ones; versions by name; a certificate with only its digest;
     * malformed digests left out. */
    static const struct {
        uint16_t v;
        const char *name;
    } versions[] = {{0x0002, "SSLv2"},
                    {0x0300, "SSLv3"},
                    {0x0301, "TLS 1.0"},
                    {0x0302, "TLS 1.1"},
                    {0x0304, "TLS 1.3"},
                    {0xFEFF, "DTLS 1.0"},
                    {0xFEFD, "DTLS 1.2"},
                    {0xFEFC, "DTLS 1.3"},
                    {0x7F1C, "TLS 1.3 draft-28"},
                    {0x7F17, "TLS 1.3 draft-23"},
                    {0x1234, "0x1234"},
                    {0xFAFA, "0xfafa"}};
    for (size_t i = 0; i < KG_ARRAY_LEN(versions); i++) {
        struct kg_tls_event m = {.version = versions[i].v};
        kg_buf_reset(&b);
        kg_event_format_tls(&b, &h, &m);
        j = parse_line(&b);
        if (!j) continue;
        const json_t *t = json_object_get(j, "tls");
        static const char *const tkeys[] = {"version", NULL};
        check_keys(t, tkeys);
        CHECK_EQ_STR(jstr(t, "version"), versions[i].name);
        json_decref(j);
    }
    struct kg_tls_event none = {.sni = "", .ja3_hash = ""};
    kg_buf_reset(&b);
    kg_event_format_tls(&b, &h, &none);
    j = parse_line(&b);
    if (j) {
        static const char *const tkeys[] = {NULL};
        check_keys(json_object_get(j, "tls"), tkeys);
        json_decref(j);
    }
    struct kg_tls_event cert = {.ja3_string = "771,,,,",
                                .has_cert = true,
                                .self_signed = true,
                                .cert_sha1 = "not-hex",
                                .cert_sha256 = "abc"};
    kg_buf_reset(&b);
    kg_event_format_tls(&b, &h, &cert);
    j = parse_line(&b);
    if (j) {
        const json_t *t = json_object_get(j, "tls");
        static const char *const tkeys[] = {"ja3", "self_signed", NULL};
        check_keys(t, tkeys);
        static const char *const jkeys[] = {"string", NULL};
        check_keys(json_object_get(t, "ja3"), jkeys);
        CHECK(json_is_true(json_object_get(t, "self_signed")));
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- http ------------------------------------------------------------------------- */

struct url_case {
    const char *host, *uri, *hostname, *url;
    long long port;
};

static void test_http(void)
{
    struct kg_flow_info f = make_flow(6, "10.0.0.5", 40000, "93.184.216.34", 80);
    f.app_proto = "http";
    struct kg_event_hdr h = {.ts_us = TS, .flow = &f};
    static const char ua[] = "Mozilla/5.0 \x01\"x\"";
    struct kg_http_event e = {.host = "Example.COM:8080",
                              .host_len = 16,
                              .uri = "/a/b?c=d",
                              .uri_len = 8,
                              .method = "POST",
                              .method_len = 4,
                              .user_agent = ua,
                              .user_agent_len = sizeof(ua) - 1,
                              .version_minor = 1,
                              .status = 201,
                              .content_type = "application/json",
                              .content_type_len = 16,
                              .has_length = true,
                              .length = 0};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_http(&b, &h, &e);
    json_t *j = parse_line(&b);
    if (j) {
        check_header(j, "http", "10.0.0.5", 40000, "93.184.216.34", 80, "TCP", "http");
        const json_t *t = json_object_get(j, "http");
        static const char *const hkeys[] = {
            "hostname", "http_port",         "url",    "http_method", "protocol", "http_user_agent",
            "status",   "http_content_type", "length", NULL};
        check_keys(t, hkeys);
        CHECK_EQ_STR(jstr(t, "hostname"), "Example.COM");
        CHECK_EQ_INT(jint(t, "http_port"), 8080);
        CHECK_EQ_STR(jstr(t, "url"), "example.com:8080/a/b?c=d");
        CHECK_EQ_STR(jstr(t, "http_method"), "POST");
        CHECK_EQ_STR(jstr(t, "protocol"), "HTTP/1.1");
        CHECK_EQ_STR(jstr(t, "http_user_agent"), "Mozilla/5.0 \x01\"x\"");
        CHECK_EQ_INT(jint(t, "status"), 201);
        CHECK_EQ_STR(jstr(t, "http_content_type"), "application/json");
        CHECK_EQ_INT(jint(t, "length"), 0);
        json_decref(j);
    }

    /* url normalisation, as URL indicators are matched. */
    static const struct url_case cases[] = {
        {"WWW.Example.com", "/index.html", "WWW.Example.com", "www.example.com/index.html", -1},
        {"example.com:80", "/x", "example.com", "example.com/x", 80},
        {"example.com", "?q=1", "example.com", "example.com/?q=1", -1},
        {"example.com", "http://Proxy.Example:80/p?x", "example.com", "proxy.example/p?x", -1},
        {"example.com", "HTTPS://h.example", "example.com", "h.example/", -1},
        {"example.com", "http://h.example?q", "example.com", "h.example/?q", -1},
        {NULL, "/no-host", NULL, "/no-host", -1},
        {"proxy:3128", "host.example:443", "proxy", "host.example:443", 3128},
        {"example.com", "*", "example.com", "*", -1},
        {"[2001:db8::1]:8443", "/v6", "[2001:db8::1]", "[2001:db8::1]:8443/v6", 8443},
        {"[2001:db8::1]", "/v6", "[2001:db8::1]", "[2001:db8::1]/v6", -1},
        {"example.com:99999", "/", "example.com", "example.com:99999/", -1},
        {"example.com:", "/", "example.com", "example.com:/", -1},
        {"\xc3\x89xample.COM", "/\xc3\xa9t\xc3\xa9", "\xc3\x89xample.COM",
         "\xc3\x89xample.com/\xc3\xa9t\xc3\xa9", -1},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++) {
        struct kg_http_event u = {.host = cases[i].host,
                                  .host_len = cases[i].host ? strlen(cases[i].host) : 0,
                                  .uri = cases[i].uri,
                                  .uri_len = strlen(cases[i].uri),
                                  .method = "GET",
                                  .method_len = 3,
                                  .version_minor = 0};
        kg_buf_reset(&b);
        kg_event_format_http(&b, &h, &u);
        j = parse_line(&b);
        if (!j) continue;
        const json_t *t = json_object_get(j, "http");
        if (strcmp(jstr(t, "url") ? jstr(t, "url") : "", cases[i].url) != 0)
            fprintf(stderr, "  case %zu: url %s\n", i, jstr(t, "url"));
        CHECK_EQ_STR(jstr(t, "url"), cases[i].url);
        if (cases[i].hostname)
            CHECK_EQ_STR(jstr(t, "hostname"), cases[i].hostname);
        else
            CHECK(json_object_get(t, "hostname") == NULL);
        if (cases[i].port >= 0)
            CHECK_EQ_INT(jint(t, "http_port"), cases[i].port);
        else
            CHECK(json_object_get(t, "http_port") == NULL);
        CHECK_EQ_STR(jstr(t, "protocol"), "HTTP/1.0");
        CHECK(json_object_get(t, "status") == NULL);
        CHECK(json_object_get(t, "length") == NULL);
        json_decref(j);
    }

    /* A very long Host (lower-cased in chunks) with a multi-byte character
     * across the chunk boundary: the url stays valid, nothing is escaped. */
    char host[1200];
    memset(host, 'A', sizeof(host));
    host[255] = '\xc3';
    host[256] = '\xa9';
    struct kg_http_event lg = {
        .host = host, .host_len = sizeof(host), .uri = "/", .uri_len = 1, .version_minor = 9};
    kg_buf_reset(&b);
    kg_event_format_http(&b, &h, &lg);
    j = parse_line(&b);
    if (j) {
        const json_t *t = json_object_get(j, "http");
        const char *url = jstr(t, "url");
        CHECK(url != NULL && strlen(url) == sizeof(host) + 1);
        if (url) {
            CHECK(url[0] == 'a' && url[254] == 'a' && (uint8_t)url[255] == 0xc3 && (uint8_t)url[256] == 0xa9);
            CHECK(url[sizeof(host) - 1] == 'a' && url[sizeof(host)] == '/');
        }
        CHECK_EQ_STR(jstr(t, "protocol"), "HTTP/0.9");
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- quic ------------------------------------------------------------------------- */

static void test_quic(void)
{
    struct kg_flow_info f = make_flow(17, "192.0.2.10", 50000, "142.250.1.1", 443);
    f.app_proto = "quic";
    struct kg_event_hdr h = {.ts_us = TS, .flow = &f, .dest_geo = &geo_google};
    static const struct {
        uint32_t v;
        const char *name;
    } versions[] = {{1, "1"},
                    {0x6b3343cf, "2"},
                    {0xff00001d, "draft-29"},
                    {0xff000020, "draft-32"},
                    {0x51303436, "Q046"},
                    {0x54303530, "T050"},
                    {0xfaceb002, "0xfaceb002"},
                    {0x0a1a2a3a, "0x0a1a2a3a"}};
    struct kg_buf b;
    kg_buf_init(&b);
    for (size_t i = 0; i < KG_ARRAY_LEN(versions); i++) {
        struct kg_quic_event e = {.version = versions[i].v,
                                  .sni = "www.google.com",
                                  .alpn = "h3",
                                  .ja3_hash = "0123456789abcdef0123456789abcdef",
                                  .ja4 = "q13d0310h3_55b375c5d22e_cd85d2d88918"};
        kg_buf_reset(&b);
        kg_event_format_quic(&b, &h, &e);
        json_t *j = parse_line(&b);
        if (!j) continue;
        static const char *const keys[] = {"timestamp", "flow_id",  "event_type", "src_ip",
                                           "src_port",  "dest_ip",  "dest_port",  "proto",
                                           "app_proto", "dest_geo", "quic",       NULL};
        check_keys(j, keys);
        check_header(j, "quic", "192.0.2.10", 50000, "142.250.1.1", 443, "UDP", "quic");
        const json_t *q = json_object_get(j, "quic");
        static const char *const qkeys[] = {"version", "sni", "alpn", "ja3", "ja4", NULL};
        check_keys(q, qkeys);
        CHECK_EQ_STR(jstr(q, "version"), versions[i].name);
        CHECK_EQ_STR(jstr(q, "sni"), "www.google.com");
        CHECK_EQ_STR(jstr(q, "alpn"), "h3");
        CHECK_EQ_STR(jstr(json_object_get(q, "ja3"), "hash"), "0123456789abcdef0123456789abcdef");
        CHECK_EQ_STR(jstr(q, "ja4"), "q13d0310h3_55b375c5d22e_cd85d2d88918");
        json_decref(j);
    }
    struct kg_quic_event only = {.sni = "a.example"};
    kg_buf_reset(&b);
    kg_event_format_quic(&b, &h, &only);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const qkeys[] = {"sni", NULL};
        check_keys(json_object_get(j, "quic"), qkeys);
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- flow ------------------------------------------------------------------------- */

static void test_flow(void)
{
    struct kg_flow_info f = make_flow(6, "192.0.2.10", 49152, "203.0.113.7", 443);
    f.app_proto = "tls";
    f.pkts_toserver = 12;
    f.pkts_toclient = 10;
    f.bytes_toserver = 1500;
    f.bytes_toclient = 90000;
    struct kg_event_hdr h = {.ts_us = TS, .flow = &f, .community_id = "1:x="};
    struct kg_flow_event e = {.state = "closed",
                              .reason = KG_FLOW_END_CLOSED,
                              .alerted = true,
                              .tcp_flags = 0x1b,
                              .tcp_flags_ts = 0x1a,
                              .tcp_flags_tc = 0x13};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_flow(&b, &h, &e);
    json_t *j = parse_line(&b);
    if (j) {
        check_header(j, "flow", "192.0.2.10", 49152, "203.0.113.7", 443, "TCP", "tls");
        const json_t *o = json_object_get(j, "flow");
        static const char *const fkeys[] = {"pkts_toserver",
                                            "pkts_toclient",
                                            "bytes_toserver",
                                            "bytes_toclient",
                                            "start",
                                            "end",
                                            "age",
                                            "state",
                                            "reason",
                                            "alerted",
                                            "tcp_flags",
                                            "tcp_flags_ts",
                                            "tcp_flags_tc",
                                            NULL};
        check_keys(o, fkeys);
        CHECK_EQ_INT(jint(o, "pkts_toserver"), 12);
        CHECK_EQ_INT(jint(o, "pkts_toclient"), 10);
        CHECK_EQ_INT(jint(o, "bytes_toserver"), 1500);
        CHECK_EQ_INT(jint(o, "bytes_toclient"), 90000);
        CHECK_EQ_STR(jstr(o, "start"), "2025-11-25T23:10:44.123456+0000");
        CHECK_EQ_STR(jstr(o, "end"), "2025-11-25T23:11:45.623456+0000");
        CHECK_EQ_INT(jint(o, "age"), 61);
        CHECK_EQ_STR(jstr(o, "state"), "closed");
        CHECK_EQ_STR(jstr(o, "reason"), "closed");
        CHECK(json_is_true(json_object_get(o, "alerted")));
        CHECK_EQ_STR(jstr(o, "tcp_flags"), "1b");
        CHECK_EQ_STR(jstr(o, "tcp_flags_ts"), "1a");
        CHECK_EQ_STR(jstr(o, "tcp_flags_tc"), "13");
        json_decref(j);
    }

    /* ICMP: no ports, no TCP flags; every reason by name. */
    struct kg_flow_info icmp = make_flow(1, "192.0.2.1", 8, "192.0.2.2", 0);
    icmp.last_ts_us = icmp.first_ts_us; /* one packet */
    h.flow = &icmp;
    static const char *const reasons[] = {"timeout", "closed", "shutdown", "evicted"};
    for (int r = 0; r < 4; r++) {
        struct kg_flow_event ev = {.reason = (enum kg_flow_end_reason)r};
        kg_buf_reset(&b);
        kg_event_format_flow(&b, &h, &ev);
        j = parse_line(&b);
        if (!j) continue;
        check_header(j, "flow", "192.0.2.1", -1, "192.0.2.2", -1, "ICMP", "unknown");
        const json_t *o = json_object_get(j, "flow");
        static const char *const fkeys[] = {
            "pkts_toserver", "pkts_toclient", "bytes_toserver", "bytes_toclient", "start",
            "end",           "age",           "reason",         "alerted",        NULL};
        check_keys(o, fkeys);
        CHECK_EQ_STR(jstr(o, "reason"), reasons[r]);
        CHECK_EQ_INT(jint(o, "age"), 0);
        CHECK_EQ_STR(jstr(o, "start"), jstr(o, "end"));
        CHECK(json_is_false(json_object_get(o, "alerted")));
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- stats ------------------------------------------------------------------------ */

static void test_stats(void)
{
    static const struct kg_stat_counter c[] = {
        {"capture.packets", 100},
        {"capture.drops", 2},
        {"decoder.ipv4", 90},
        {"decoder.ipv6", 10},
        {"decoder.tunnel.gre", 3},
        {"decoder.tunnel.vxlan", 4},
        {"decoder.truncated", 1},
        {NULL, 999},
        {"flows", 7},
        {"export.redis.queued", 8},
        {"export.redis.failed", 9},
        {"export.file.written", 10},
        {"a.b.c.d.e.f.g.h.i.j", 11},
        {"big", 4611686018427387904ull},
    };
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_stats(&b, TS, "st-1", "sensor-1", 3600, c, KG_ARRAY_LEN(c));
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {"timestamp", "event_id", "host", "event_type", "stats", NULL};
        check_keys(j, keys);
        CHECK_EQ_STR(jstr(j, "event_type"), "stats");
        CHECK_EQ_STR(jstr(j, "host"), "sensor-1");
        const json_t *s = json_object_get(j, "stats");
        static const char *const skeys[] = {"uptime", "capture", "decoder", "flows",
                                            "export", "a",       "big",     NULL};
        check_keys(s, skeys);
        CHECK_EQ_INT(jint(s, "uptime"), 3600);
        const json_t *cap = json_object_get(s, "capture");
        static const char *const ckeys[] = {"packets", "drops", NULL};
        check_keys(cap, ckeys);
        CHECK_EQ_INT(jint(cap, "packets"), 100);
        CHECK_EQ_INT(jint(cap, "drops"), 2);
        const json_t *dec = json_object_get(s, "decoder");
        static const char *const dkeys[] = {"ipv4", "ipv6", "tunnel", "truncated", NULL};
        check_keys(dec, dkeys);
        static const char *const tkeys[] = {"gre", "vxlan", NULL};
        check_keys(json_object_get(dec, "tunnel"), tkeys);
        CHECK_EQ_INT(jint(json_object_get(dec, "tunnel"), "vxlan"), 4);
        CHECK_EQ_INT(jint(dec, "truncated"), 1);
        CHECK_EQ_INT(jint(s, "flows"), 7);
        const json_t *ex = json_object_get(s, "export");
        static const char *const ekeys[] = {"redis", "file", NULL};
        check_keys(ex, ekeys);
        CHECK_EQ_INT(jint(json_object_get(ex, "redis"), "failed"), 9);
        CHECK_EQ_INT(jint(json_object_get(ex, "file"), "written"), 10);
        /* 8 levels at most: the rest of the dots stay in the last key. */
        const json_t *deep = json_object_get(s, "a");
        for (const char *k = "bcdefg"; *k && deep; k++) {
            char key[2] = {*k, 0};
            deep = json_object_get(deep, key);
        }
        CHECK(deep != NULL);
        CHECK_EQ_INT(jint(deep, "h.i.j"), 11);
        CHECK_EQ_INT(jint(s, "big"), 4611686018427387904ll);
        json_decref(j);
    }
    /* jansson reads integers as signed 64-bit: UINT64_MAX checked as text. */
    static const struct kg_stat_counter max[] = {{"max", UINT64_MAX}};
    kg_buf_reset(&b);
    kg_event_format_stats(&b, TS, NULL, NULL, 1, max, 1);
    CHECK(b.len > 0 && strstr(b.data, ",\"stats\":{\"uptime\":1,\"max\":18446744073709551615}}\n") != NULL);
    /* No counters at all. */
    kg_buf_reset(&b);
    kg_event_format_stats(&b, TS, NULL, NULL, 0, NULL, 0);
    j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {"timestamp", "event_type", "stats", NULL};
        check_keys(j, keys);
        static const char *const skeys[] = {"uptime", NULL};
        check_keys(json_object_get(j, "stats"), skeys);
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- alert enrichment ---------------------------------------------------------------- */

static void test_alert_enrichment(void)
{
    struct kg_flow_info f = make_flow(6, "192.0.2.10", 49152, "8.8.8.8", 443);
    f.app_proto = "tls";
    struct kg_indicator ind = {.type = KG_IND_DOMAIN, .value = "evil.example", .source = "feed"};
    struct kg_alert a = {.ts_us = TS,
                         .event_id = "al-1",
                         .flow = &f,
                         .ind = &ind,
                         .where = "tls.sni",
                         .seen = "www.evil.example",
                         .seen_len = 16,
                         .community_id = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
                         .src_geo = &geo_empty,
                         .dest_geo = &geo_google};
    struct kg_buf b;
    kg_buf_init(&b);
    kg_event_format_alert(&b, &a);
    json_t *j = parse_line(&b);
    if (j) {
        static const char *const keys[] = {"timestamp",    "event_id", "flow_id",   "event_type", "src_ip",
                                           "src_port",     "dest_ip",  "dest_port", "proto",      "app_proto",
                                           "community_id", "dest_geo", "alert",     "indicator",  NULL};
        check_keys(j, keys);
        CHECK_EQ_STR(jstr(j, "community_id"), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        CHECK_EQ_STR(jstr(json_object_get(j, "dest_geo"), "country"), "US");
        json_decref(j);
    }
    /* Without enrichment the alert is as before. */
    a.community_id = NULL;
    a.dest_geo = NULL;
    kg_buf_reset(&b);
    kg_event_format_alert(&b, &a);
    j = parse_line(&b);
    if (j) {
        CHECK(json_object_get(j, "community_id") == NULL);
        CHECK(json_object_get(j, "dest_geo") == NULL);
        CHECK(json_object_get(j, "src_geo") == NULL);
        json_decref(j);
    }
    kg_buf_free(&b);
}

/* --- contracts and hostile strings ---------------------------------------------------- */

static void test_no_flow(void)
{
    struct kg_buf b;
    kg_buf_init(&b);
    struct kg_event_hdr h = {.ts_us = TS};
    struct kg_dns_event d = {0};
    struct kg_tls_event t = {0};
    struct kg_http_event hh = {0};
    struct kg_quic_event q = {0};
    struct kg_flow_event fe = {0};
    kg_event_format_dns(&b, &h, &d);
    kg_event_format_tls(&b, &h, &t);
    kg_event_format_http(&b, &h, &hh);
    kg_event_format_quic(&b, &h, &q);
    kg_event_format_flow(&b, &h, &fe);
    kg_event_format_dns(&b, NULL, &d);
    struct kg_flow_info f = make_flow(6, "192.0.2.1", 1, "192.0.2.2", 2);
    h.flow = &f;
    kg_event_format_dns(&b, &h, NULL);
    kg_event_format_tls(&b, &h, NULL);
    kg_event_format_http(&b, &h, NULL);
    kg_event_format_quic(&b, &h, NULL);
    kg_event_format_flow(&b, &h, NULL);
    CHECK_EQ_INT(b.len, 0);
    kg_event_append_geo(&b, "g", NULL);
    kg_event_append_geo(&b, "g", &geo_empty);
    CHECK_EQ_INT(b.len, 0);
    kg_buf_free(&b);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static void fill_random(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        /* Mostly the troublesome bytes: controls, quotes, backslashes,
         * UTF-8 lead and continuation bytes. */
        static const char pick[] = {'"',        '\\',       '\n',       '\0',       (char)0xC3, (char)0xA9,
                                    (char)0xE2, (char)0x80, (char)0xF0, (char)0xFF, '/',        'a',
                                    ':',        '?',        '.',        (char)0x7F};
        s[i] = (r & 1) ? pick[(r >> 8) % sizeof(pick)] : (char)(r >> 16);
    }
}

static void test_random_strings(void)
{
    struct kg_flow_info f = make_flow(6, "192.0.2.10", 1, "192.0.2.20", 2);
    f.app_proto = "http";
    struct kg_buf b;
    kg_buf_init(&b);
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        char s[8][64];
        size_t n[8];
        memset(s, 0, sizeof(s));
        for (int i = 0; i < 8; i++) {
            n[i] = rnd() % 64;
            fill_random(s[i], n[i]);
            s[i][n[i] < 63 ? n[i] : 63] = '\0'; /* NUL-terminated fields see a prefix */
        }
        struct kg_geo g = {"US", 1, ""};
        memcpy(g.as_org, s[7], 63);
        g.as_org[63] = '\0';
        struct kg_event_hdr h = {.ts_us = rnd(),
                                 .event_id = s[0],
                                 .sensor_id = s[1],
                                 .flow = &f,
                                 .community_id = s[2],
                                 .src_geo = &g};
        struct kg_http_event he = {.host = s[3],
                                   .host_len = n[3],
                                   .uri = s[4],
                                   .uri_len = n[4],
                                   .method = s[5],
                                   .method_len = n[5],
                                   .user_agent = s[6],
                                   .user_agent_len = n[6],
                                   .content_type = s[7],
                                   .content_type_len = n[7],
                                   .version_minor = 1};
        struct kg_dns_event_answer an = {.rrname = s[3],
                                         .rrname_len = n[3],
                                         .rrtype = (uint16_t)rnd(),
                                         .target = s[4],
                                         .target_len = n[4]};
        struct kg_dns_event de = {.is_response = true,
                                  .rrname = s[5],
                                  .rrname_len = n[5],
                                  .rrtype = (uint16_t)rnd(),
                                  .rcode = (uint8_t)rnd(),
                                  .answers = &an,
                                  .nanswers = 1};
        struct kg_tls_event te = {.sni = s[3],
                                  .alpn = s[4],
                                  .ja3_string = s[5],
                                  .ja4 = s[6],
                                  .has_cert = true,
                                  .subject = s[7],
                                  .issuerdn = s[0],
                                  .serial = s[1],
                                  .cert_sha1 = s[2],
                                  .version = (uint16_t)rnd()};
        struct kg_quic_event qe = {
            .version = (uint32_t)rnd(), .sni = s[3], .alpn = s[4], .ja3_hash = s[5], .ja4 = s[6]};
        struct kg_stat_counter sc[3] = {{s[3], 1}, {s[4], 2}, {s[5], 3}};
        for (int k = 0; k < 5; k++) {
            kg_buf_reset(&b);
            switch (k) {
            case 0:
                kg_event_format_http(&b, &h, &he);
                break;
            case 1:
                kg_event_format_dns(&b, &h, &de);
                break;
            case 2:
                kg_event_format_tls(&b, &h, &te);
                break;
            case 3:
                kg_event_format_quic(&b, &h, &qe);
                break;
            default:
                kg_event_format_stats(&b, rnd(), s[0], s[1], rnd() >> 2, sc, 3); /* jansson: int64 */
                break;
            }
            json_error_t e;
            json_t *j = b.len > 1 && b.data[b.len - 1] == '\n' && !memchr(b.data, '\n', b.len - 1)
                            ? json_loadb(b.data, b.len - 1, JSON_ALLOW_NUL, &e)
                            : NULL;
            if (!j) {
                if (bad++ < 3) fprintf(stderr, "  invalid line (event %d): %.*s\n", k, (int)b.len, b.data);
            }
            json_decref(j);
        }
    }
    CHECK_EQ_INT(bad, 0);
    kg_buf_free(&b);
}

int main(void)
{
    KG_TEST_RUN(test_dns_query);
    KG_TEST_RUN(test_dns_answer);
    KG_TEST_RUN(test_tls);
    KG_TEST_RUN(test_http);
    KG_TEST_RUN(test_quic);
    KG_TEST_RUN(test_flow);
    KG_TEST_RUN(test_stats);
    KG_TEST_RUN(test_alert_enrichment);
    KG_TEST_RUN(test_no_flow);
    KG_TEST_RUN(test_random_strings);
    KG_TEST_MAIN_END();
}
