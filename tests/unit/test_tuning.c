/*
 * tests/unit/test_tuning.c — analyst tuning (indicators/indicators_tuning.c):
 * every rule kind and condition, combinations, first-match order, threshold
 * windows driven by the now_us argument, counters surviving reloads, bounded
 * threshold memory under a million distinct sources, malformed files with
 * their exact "file:line: message", the docs' examples, and random input.
 *
 * Fixtures: tests/data/tuning/. Indicators come from a small Zeek Intel
 * feed held below, so they carry what real ones do (sources, meta tags, the
 * value as listed).
 */
#include "indicators/indicators.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kg_test.h"

static const char *src_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    const char *env = getenv("KG_SOURCE_DIR");
    if (env && env[0]) {
        kg_strlcpy(dir, env, sizeof(dir));
    } else {
        kg_strlcpy(dir, __FILE__, sizeof(dir));
        char *tail = strstr(dir, "/tests/unit/test_tuning.c");
        if (tail)
            *tail = '\0';
        else
            kg_strlcpy(dir, ".", sizeof(dir));
    }
    return dir;
}

static const char *src_path(const char *rel)
{
    static char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/%s", src_dir(), rel);
    return buf;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct kg_buf b;
    kg_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        kg_buf_append(&b, chunk, n);
    fclose(f);
    kg_buf_append_char(&b, '\0');
    if (len) *len = b.len - 1;
    return b.data;
}

/* --- the indicators alerts are about ----------------------------------------------- */

/* Zeek Intel, tab-separated; values as feeds list them (wildcards, upper case, ports). */
static const char feed[] =
    "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.tags\tmeta.category\n"
    "*.Evil.Example.\tIntel::DOMAIN\tabuse.ch\tEmotet loader\tphishing, c2\t-\n"
    "203.0.113.66\tIntel::ADDR\tfeodo\t-\t-\tMalware\n"
    "198.51.100.0/24\tIntel::SUBNET\tspamhaus\t-\t-\t-\n"
    "2001:db8:bad::/48\tIntel::SUBNET\tv6feed\t-\t-\t-\n"
    "http://Bad.Example:80/login?x=1\tIntel::URL\turlhaus\t-\t-\t-\n"
    "E7D705A3286E19EA42F587B344EE6865\tIntel::JA3\tsslbl\t-\t-\t-\n"
    "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c\tIntel::CERT_HASH\tsslbl\t-\t-\t-\n"
    "t13d1516h2_8daaf6152771_e5627efa2ab1\tIntel::JA4\tja4db\t-\t-\t-\n"
    "EvilBot/1.0 (x)\tIntel::SOFTWARE\tuadb\t-\t-\t-\n"
    "noisy.example\tIntel::DOMAIN\tnoisy-feed\t-\t-\t-\n"
    "abuse-c2.example\tIntel::DOMAIN\tabuse.ch\t-\t-\t-\n"
    "d41d8cd98f00b204e9800998ecf8427e\tIntel::FILE_HASH\tfiles\t-\t-\t-\n";

static struct kg_indicator_set *g_set;
static const struct kg_indicator *I_DOMAIN, *I_ADDR, *I_SUBNET, *I_SUBNET6, *I_URL, *I_JA3, *I_CERT, *I_JA4,
    *I_UA, *I_NOISY, *I_FILE, *I_ABUSE;

static const uint8_t *v4(const char *s)
{
    static uint8_t buf[8][16];
    static int next;
    uint8_t *b = buf[next++ % 8];
    memset(b, 0, 16);
    if (inet_pton(AF_INET, s, b) != 1) {
        fprintf(stderr, "bad test address %s\n", s);
        exit(2);
    }
    return b;
}

static const uint8_t *v6(const char *s)
{
    static uint8_t buf[8][16];
    static int next;
    uint8_t *b = buf[next++ % 8];
    if (inet_pton(AF_INET6, s, b) != 1) {
        fprintf(stderr, "bad test address %s\n", s);
        exit(2);
    }
    return b;
}

static void setup_indicators(void)
{
    struct kg_err err = {{0}};
    g_set = kg_indicator_set_new();
    if (kg_indicator_set_load_buffer(g_set, "zeek:feed.intel", feed, sizeof(feed) - 1, NULL, &err) != 0) {
        fprintf(stderr, "feed: %s\n", err.msg);
        exit(2);
    }
    kg_indicator_set_finalize(g_set);
    I_DOMAIN = kg_indicator_match_domain(g_set, "evil.example", 12, 0);
    I_ADDR = kg_indicator_match_addr(g_set, 4, v4("203.0.113.66"), 0);
    I_SUBNET = kg_indicator_match_addr(g_set, 4, v4("198.51.100.9"), 0);
    I_SUBNET6 = kg_indicator_match_addr(g_set, 6, v6("2001:db8:bad::1"), 0);
    I_URL = kg_indicator_match_url(g_set, "bad.example", 11, "/login?x=1", 10, 0);
    I_JA3 = kg_indicator_match_hash(g_set, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", 32, 0);
    I_CERT =
        kg_indicator_match_hash(g_set, KG_IND_CERT_HASH, "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c", 40, 0);
    I_JA4 = kg_indicator_match_hash(g_set, KG_IND_JA4, "t13d1516h2_8daaf6152771_e5627efa2ab1", 36, 0);
    I_UA = kg_indicator_match_software(g_set, "EvilBot/1.0 (x)", 15, 0);
    I_NOISY = kg_indicator_match_domain(g_set, "noisy.example", 13, 0);
    I_FILE = kg_indicator_match_hash(g_set, KG_IND_FILE_HASH, "d41d8cd98f00b204e9800998ecf8427e", 32, 0);
    I_ABUSE = kg_indicator_match_domain(g_set, "abuse-c2.example", 16, 0);
    if (!I_DOMAIN || !I_ADDR || !I_SUBNET || !I_SUBNET6 || !I_URL || !I_JA3 || !I_CERT || !I_JA4 || !I_UA ||
        !I_NOISY || !I_FILE || !I_ABUSE) {
        fprintf(stderr, "test feed did not load as expected\n");
        exit(2);
    }
}

/* --- helpers ------------------------------------------------------------------------ */

static struct kg_tuning *load_text(const char *text)
{
    struct kg_err err = {{0}};
    struct kg_tuning *t = kg_tuning_load_buffer("t.yaml", text, strlen(text), &err);
    if (!t) fprintf(stderr, "  unexpected load failure: %s\n", err.msg);
    return t;
}

/* Loads text that must fail, and checks the exact message. */
static void expect_error(const char *text, const char *want, int line)
{
    struct kg_err err = {{0}};
    struct kg_tuning *t = kg_tuning_load_buffer("t.yaml", text, strlen(text), &err);
    if (t || strcmp(err.msg, want) != 0)
        fprintf(stderr, "  case at test_tuning.c:%d: %s \"%s\"\n", line, t ? "loaded;" : "message", err.msg);
    CHECK(t == NULL);
    CHECK_EQ_STR(err.msg, want);
    kg_tuning_free(t);
}
#define EXPECT_ERROR(text, want) expect_error(text, want, __LINE__)

struct alert {
    const struct kg_indicator *ind;
    const char *where;
    uint8_t family;
    const uint8_t *src, *dst;
    uint64_t now;
};

static struct kg_tuning_verdict check(const struct kg_tuning *t, struct alert a)
{
    struct kg_tuning_verdict v;
    memset(&v, 0x5a, sizeof(v)); /* every field must be written */
    kg_tuning_check(t, a.ind, a.where, a.family, a.src, a.dst, a.now, &v);
    return v;
}

/* Name of the suppress rule for the alert, "" when not suppressed. */
static const char *suppressed_by(const struct kg_tuning *t, struct alert a)
{
    struct kg_tuning_verdict v = check(t, a);
    if (!v.suppress) {
        CHECK(v.rule == NULL);
        CHECK_EQ_INT(v.suppress_rule, KG_TUNING_NONE);
        return "";
    }
    struct kg_tuning_rule_info info;
    CHECK(kg_tuning_rule_info(t, v.suppress_rule, &info));
    CHECK_EQ_STR(info.name, v.rule);
    CHECK_EQ_INT(info.kind, KG_TUNING_SUPPRESS);
    CHECK_EQ_INT(v.severity, 0);
    CHECK_EQ_INT(v.severity_rule, KG_TUNING_NONE);
    CHECK_EQ_INT(v.threshold_rule, KG_TUNING_NONE);
    return v.rule;
}

#define ALERT(...) ((struct alert){__VA_ARGS__})
#define S(...) suppressed_by(t, ALERT(__VA_ARGS__))

/* 2024-06-01T00:00:00Z */
#define T2024 1717200000000000ull
#define SEC 1000000ull

/* --- tests ----------------------------------------------------------------------------- */

static void test_empty(void)
{
    static const char *const texts[] = {"",
                                        "# nothing yet\n",
                                        "---\n...\n",
                                        "{}\n",
                                        "~\n",
                                        "suppress:\nseverity:\nthreshold:\n",
                                        "suppress: []\n"};
    for (size_t i = 0; i < KG_ARRAY_LEN(texts); i++) {
        struct kg_tuning *t = load_text(texts[i]);
        CHECK(t != NULL);
        CHECK_EQ_INT(kg_tuning_rule_count(t), 0);
        struct kg_tuning_verdict v = check(t, ALERT(.ind = I_DOMAIN, .where = "dns.query"));
        CHECK(!v.suppress);
        CHECK_EQ_INT(v.severity, 0);
        CHECK(v.rule == NULL);
        CHECK_EQ_INT(v.suppress_rule, KG_TUNING_NONE);
        CHECK_EQ_INT(v.severity_rule, KG_TUNING_NONE);
        CHECK_EQ_INT(v.threshold_rule, KG_TUNING_NONE);
        kg_tuning_free(t);
    }
    /* No tuning at all, or no indicator: a verdict that changes nothing. */
    struct kg_tuning_verdict v = check(NULL, ALERT(.ind = I_DOMAIN));
    CHECK(!v.suppress && v.severity == 0 && v.rule == NULL && v.threshold_rule == KG_TUNING_NONE);
    struct kg_tuning *t = load_text("suppress:\n  - where: dns\n");
    v = check(t, ALERT(.ind = NULL, .where = "dns.query"));
    CHECK(!v.suppress && v.suppress_rule == KG_TUNING_NONE);
    kg_tuning_free(t);
    kg_tuning_free(NULL);
    CHECK_EQ_INT(kg_tuning_rule_count(NULL), 0);
    struct kg_tuning_rule_info info;
    CHECK(!kg_tuning_rule_info(NULL, 0, &info));
}

/* `indicator`: compared in normalised form, per type; no subdomain or prefix semantics. */
static void test_suppress_indicator(void)
{
    struct kg_tuning *t =
        load_text("suppress:\n"
                  "  - indicator: EVIL.example.\n"                    /* 1: the domain, other spelling */
                  "  - indicator: 203.0.113.66/32\n"                  /* 2: an ADDR is a /32 */
                  "  - indicator: 198.51.100.77/24\n"                 /* 3: host bits masked, like feeds */
                  "  - indicator: \"2001:DB8:BAD::/48\"\n"            /* 4 */
                  "  - indicator: bad.example/login?x=1\n"            /* 5: no scheme, default port */
                  "  - indicator: e7d705a3286e19ea42f587b344ee6865\n" /* 6: JA3, lower case */
                  "  - indicator: \"A9:F0:C1:D2:E3:F4:05:16:27:38:49:5A:6B:7C:8D:9E:0F:1A:2B:3C\"\n"
                  "  - indicator: T13D1516H2_8DAAF6152771_E5627EFA2AB1\n" /* 8: JA4, any case */
                  "  - {indicator: EvilBot/1.0 (x), type: SOFTWARE}\n"    /* 9 */
                  "  - {indicator: d41d8cd98f00b204e9800998ecf8427e, type: Intel::FILE_HASH}\n");
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(kg_tuning_rule_count(t), 10);
    CHECK_EQ_STR(S(.ind = I_DOMAIN), "suppress[1]");
    CHECK_EQ_STR(S(.ind = I_ADDR), "suppress[2]");
    CHECK_EQ_STR(S(.ind = I_SUBNET), "suppress[3]");
    CHECK_EQ_STR(S(.ind = I_SUBNET6), "suppress[4]");
    CHECK_EQ_STR(S(.ind = I_URL), "suppress[5]");
    CHECK_EQ_STR(S(.ind = I_JA3), "suppress[6]");
    CHECK_EQ_STR(S(.ind = I_CERT), "suppress[7]");
    CHECK_EQ_STR(S(.ind = I_JA4), "suppress[8]");
    CHECK_EQ_STR(S(.ind = I_UA), "suppress[9]");
    CHECK_EQ_STR(S(.ind = I_FILE), "suppress[10]");
    CHECK_EQ_STR(S(.ind = I_NOISY), "");
    kg_tuning_free(t);

    /* A rule names one indicator, not a family of them: a parent domain or a
     * covering block does not suppress a more specific indicator, and the
     * other way round. */
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err = {{0}};
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "cdn.evil.example", "x", &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, "198.51.100.0/25", "x", &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_URL, "bad.example/login?x=2", "x", &err), 0);
    kg_indicator_set_finalize(s);
    const struct kg_indicator *cdn = kg_indicator_match_domain(s, "cdn.evil.example", 16, 0);
    const struct kg_indicator *half = kg_indicator_match_addr(s, 4, v4("198.51.100.1"), 0);
    const struct kg_indicator *url2 = kg_indicator_match_url(s, "bad.example", 11, "/login?x=2", 10, 0);
    t = load_text("suppress:\n  - indicator: [evil.example, 198.51.100.0/24, bad.example/login?x=1]\n");
    CHECK(cdn && half && url2 && t);
    if (cdn && half && url2 && t) {
        CHECK_EQ_STR(S(.ind = cdn), "");
        CHECK_EQ_STR(S(.ind = half), "");
        CHECK_EQ_STR(S(.ind = url2), "");
        CHECK_EQ_STR(S(.ind = I_DOMAIN), "suppress[1]");
        CHECK_EQ_STR(S(.ind = I_SUBNET), "suppress[1]");
        CHECK_EQ_STR(S(.ind = I_URL), "suppress[1]");
    }
    kg_tuning_free(t);
    kg_indicator_set_free(s);

    /* `type` restricts: the same hex digits as a FILE_HASH rule do not touch the JA3. */
    t = load_text("suppress:\n"
                  "  - {indicator: e7d705a3286e19ea42f587b344ee6865, type: FILE_HASH}\n"
                  "  - {indicator: d41d8cd98f00b204e9800998ecf8427e, type: [ja3, cert_hash]}\n"
                  "  - {type: JA4}\n"
                  "  - {type: [SUBNET, SOFTWARE]}\n");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_STR(S(.ind = I_JA3), "");
        CHECK_EQ_STR(S(.ind = I_FILE), "");
        CHECK_EQ_STR(S(.ind = I_JA4), "suppress[3]");
        CHECK_EQ_STR(S(.ind = I_SUBNET), "suppress[4]");
        CHECK_EQ_STR(S(.ind = I_SUBNET6), "suppress[4]");
        CHECK_EQ_STR(S(.ind = I_UA), "suppress[4]");
        CHECK_EQ_STR(S(.ind = I_ADDR), "");
        CHECK_EQ_STR(S(.ind = I_DOMAIN), "");
    }
    kg_tuning_free(t);
}

/* `source`, `dest`, `where`, `feed_source`, `tag`: each alone, lists, and misses. */
static void test_suppress_conditions(void)
{
    struct kg_tuning *t = load_text("suppress:\n"
                                    "  - source: 10.0.0.0/8\n"
                                    "  - dest: 192.0.2.10\n"
                                    "  - source: [\"2001:db8:aa::/48\", 172.16.0.0/12]\n"
                                    "  - where: tls.sni\n"
                                    "  - where: [http, dns.query]\n"
                                    "  - feed_source: NOISY-FEED\n"
                                    "  - tag: PHISHING\n"
                                    "  - tag: malware\n"
                                    "  - dest: 0.0.0.0/0\n"
                                    "    where: conn.dest_ip\n");
    CHECK(t != NULL);
    if (!t) return;
    const struct kg_indicator *I = I_SUBNET; /* spamhaus, no tags */
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("10.200.1.1"), .dst = v4("8.8.8.8")),
                 "suppress[1]");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("11.0.0.1"), .dst = v4("8.8.8.8")), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("9.255.255.255"), .dst = v4("8.8.8.8")), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("8.8.8.8"), .dst = v4("192.0.2.10")),
                 "suppress[2]");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("8.8.8.8"), .dst = v4("192.0.2.11")), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET6, .family = 6, .src = v6("2001:db8:aa:ffff::9"), .dst = v6("2001:db8::1")),
                 "suppress[3]");
    CHECK_EQ_STR(S(.ind = I_SUBNET6, .family = 6, .src = v6("2001:db8:ab::9"), .dst = v6("2001:db8::1")), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("172.31.255.255"), .dst = v4("8.8.8.8")),
                 "suppress[3]");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = v4("172.32.0.0"), .dst = v4("8.8.8.8")), "");
    /* An IPv4 rule never matches IPv6 traffic with the same leading bytes. */
    uint8_t mapped[16] = {10, 1, 2, 3};
    CHECK_EQ_STR(S(.ind = I_SUBNET6, .family = 6, .src = mapped, .dst = v6("2001:db8::1")), "");
    /* Without addresses, address conditions do not match. */
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 0, .src = NULL, .dst = NULL), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 4, .src = NULL, .dst = NULL), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .family = 9, .src = v4("10.0.0.1"), .dst = NULL), "");

    CHECK_EQ_STR(S(.ind = I, .where = "tls.sni"), "suppress[4]");
    CHECK_EQ_STR(S(.ind = I, .where = "tls.ja3"), "");
    CHECK_EQ_STR(S(.ind = I, .where = "http.url"), "suppress[5]");
    CHECK_EQ_STR(S(.ind = I, .where = "http.user_agent"), "suppress[5]");
    CHECK_EQ_STR(S(.ind = I, .where = "dns.query"), "suppress[5]");
    CHECK_EQ_STR(S(.ind = I, .where = "httpx.host"), ""); /* a prefix ends at a dot */
    CHECK_EQ_STR(S(.ind = I, .where = NULL), "");
    CHECK_EQ_STR(S(.ind = I_NOISY), "suppress[6]");  /* feed_source ignores case */
    CHECK_EQ_STR(S(.ind = I_DOMAIN), "suppress[7]"); /* "phishing, c2" in meta.tags */
    CHECK_EQ_STR(S(.ind = I_ADDR), "suppress[8]");   /* meta.category "Malware" */
    CHECK_EQ_STR(S(.ind = I_URL), "");
    CHECK_EQ_STR(
        S(.ind = I_URL, .where = "conn.dest_ip", .family = 4, .src = v4("1.1.1.1"), .dst = v4("1.2.3.4")),
        "suppress[9]");
    CHECK_EQ_STR(
        S(.ind = I_URL, .where = "conn.src_ip", .family = 4, .src = v4("1.1.1.1"), .dst = v4("1.2.3.4")), "");
    kg_tuning_free(t);

    /* A tag is a whole item of a meta value, and the description is not a tag list. */
    t = load_text("suppress:\n  - tag: c\n  - tag: Emotet loader\n  - tag: [nothing, C2]\n");
    CHECK(t != NULL);
    if (t) CHECK_EQ_STR(S(.ind = I_DOMAIN), "suppress[3]");
    kg_tuning_free(t);
}

/* Several conditions in one rule must all hold; the brief's combination. */
static void test_combinations(void)
{
    struct kg_tuning *t =
        load_text("suppress:\n"
                  "  - {indicator: 203.0.113.66, where: conn.dest_ip, source: 10.1.0.0/16}\n"
                  "  - indicator: [evil.example, noisy.example]\n"
                  "    where: [dns.query, tls]\n"
                  "    source: [10.0.0.0/8, 192.168.0.0/16]\n"
                  "    feed_source: abuse.ch\n"
                  "    tag: c2\n"
                  "    type: DOMAIN\n"
                  "    name: \"resolver noise\"\n");
    CHECK(t != NULL);
    if (!t) return;
    const uint8_t *in = v4("10.1.7.7"), *out = v4("10.2.7.7"), *dst = v4("203.0.113.66");
    CHECK_EQ_STR(S(.ind = I_ADDR, .where = "conn.dest_ip", .family = 4, .src = in, .dst = dst),
                 "suppress[1]");
    CHECK_EQ_STR(S(.ind = I_ADDR, .where = "conn.src_ip", .family = 4, .src = in, .dst = dst), "");
    CHECK_EQ_STR(S(.ind = I_ADDR, .where = "conn.dest_ip", .family = 4, .src = out, .dst = dst), "");
    CHECK_EQ_STR(S(.ind = I_SUBNET, .where = "conn.dest_ip", .family = 4, .src = in, .dst = dst), "");

    const uint8_t *lan = v4("192.168.1.5");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .where = "dns.query", .family = 4, .src = lan), "resolver noise");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .where = "tls.sni", .family = 4, .src = in), "resolver noise");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .where = "http.host", .family = 4, .src = lan), "");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .where = "dns.query", .family = 4, .src = v4("8.8.8.8")), "");
    /* noisy.example is listed, but its feed and tags are not those of the rule. */
    CHECK_EQ_STR(S(.ind = I_NOISY, .where = "dns.query", .family = 4, .src = lan), "");
    kg_tuning_free(t);
}

/* `until`: a rule stops applying at that time; now_us = 0 ignores it. */
static void test_until(void)
{
    struct kg_tuning *t =
        load_text("suppress:\n"
                  "  - {indicator: evil.example, until: 2024-06-01}\n"
                  "  - {indicator: evil.example, until: \"2024-06-02T12:00:00Z\", name: later}\n");
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .now = T2024 - 1), "suppress[1]");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .now = T2024), "later");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .now = T2024 + 36 * 3600 * SEC - 1), "later");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .now = T2024 + 36 * 3600 * SEC), "");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .now = 0), "suppress[1]");
    struct kg_tuning_rule_info info;
    CHECK(kg_tuning_rule_info(t, 1, &info));
    CHECK_EQ_INT(info.until_us, T2024 + 36 * 3600 * SEC);
    kg_tuning_free(t);
}

/* Severity: the first matching rule in file order, whether it names the
 * indicator or not; suppression takes precedence over everything. */
static void test_severity(void)
{
    struct kg_tuning *t = load_text("severity:\n"
                                    "  - {feed_source: spamhaus, severity: low}\n"
                                    "  - {indicator: 198.51.100.0/24, severity: 1}\n"
                                    "  - {indicator: evil.example, severity: 2}\n"
                                    "  - {tag: phishing, severity: high}\n"
                                    "  - {where: tls, severity: MEDIUM}\n"
                                    "suppress:\n"
                                    "  - {indicator: noisy.example, where: dns.query}\n"
                                    "threshold:\n"
                                    "  - {count: 5, seconds: 60}\n");
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(kg_tuning_rule_count(t), 7);
    struct kg_tuning_verdict v;
    /* A generic rule earlier in the file beats a rule naming the indicator. */
    v = check(t, ALERT(.ind = I_SUBNET));
    CHECK(!v.suppress);
    CHECK_EQ_INT(v.severity, 3);
    CHECK_EQ_INT(v.severity_rule, 0);
    CHECK_EQ_INT(v.threshold_rule, 6);
    /* A rule naming the indicator earlier than a generic one beats it. */
    v = check(t, ALERT(.ind = I_DOMAIN, .where = "tls.sni"));
    CHECK_EQ_INT(v.severity, 2);
    CHECK_EQ_INT(v.severity_rule, 2);
    v = check(t, ALERT(.ind = I_JA4, .where = "tls.ja4"));
    CHECK_EQ_INT(v.severity, 2);
    CHECK_EQ_INT(v.severity_rule, 4);
    v = check(t, ALERT(.ind = I_ADDR, .where = "conn.dest_ip"));
    CHECK_EQ_INT(v.severity, 0);
    CHECK_EQ_INT(v.severity_rule, KG_TUNING_NONE);
    CHECK_EQ_INT(v.threshold_rule, 6);
    CHECK(v.rule == NULL);
    /* Suppressed: nothing else is evaluated. */
    v = check(t, ALERT(.ind = I_NOISY, .where = "dns.query"));
    CHECK(v.suppress);
    CHECK_EQ_INT(v.suppress_rule, 5);
    CHECK_EQ_STR(v.rule, "suppress[1]");
    CHECK_EQ_INT(v.severity_rule, KG_TUNING_NONE);
    CHECK_EQ_INT(v.threshold_rule, KG_TUNING_NONE);
    v = check(t, ALERT(.ind = I_NOISY, .where = "tls.sni"));
    CHECK(!v.suppress);
    CHECK_EQ_INT(v.severity, 2);

    struct kg_tuning_rule_info info;
    CHECK(kg_tuning_rule_info(t, 3, &info));
    CHECK_EQ_INT(info.kind, KG_TUNING_SEVERITY);
    CHECK_EQ_STR(info.name, "severity[4]");
    CHECK_EQ_INT(info.line, 5);
    CHECK_EQ_INT(info.severity, 1);
    CHECK(kg_tuning_rule_info(t, 6, &info));
    CHECK_EQ_INT(info.kind, KG_TUNING_THRESHOLD);
    CHECK_EQ_STR(info.name, "threshold[1]");
    CHECK_EQ_INT(info.line, 10);
    CHECK_EQ_INT(info.count, 5);
    CHECK_EQ_INT(info.seconds, 60);
    CHECK(!kg_tuning_rule_info(t, 7, &info));
    kg_tuning_free(t);
}

/* The fixture that docs/TUNING.md walks through. */
static void test_good_fixture(void)
{
    struct kg_err err = {{0}};
    struct kg_tuning *t = kg_tuning_load(src_path("tests/data/tuning/good.yaml"), &err);
    if (!t) fprintf(stderr, "  %s\n", err.msg);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(kg_tuning_rule_count(t), 11);
    const uint8_t *lan = v4("192.168.3.4"), *scan = v4("10.9.9.9"), *ext = v4("198.51.100.99");
    CHECK_EQ_STR(S(.ind = I_DOMAIN, .where = "tls.sni", .family = 4, .src = lan), "suppress[1]");
    CHECK_EQ_STR(S(.ind = I_ADDR, .where = "conn.dest_ip", .family = 4, .src = scan, .dst = ext), "scanners");
    CHECK_EQ_STR(S(.ind = I_URL, .where = "http.url", .family = 4, .src = scan, .dst = ext), "");
    CHECK_EQ_STR(S(.ind = I_URL, .where = "http.url", .family = 4, .src = lan, .dst = v4("192.0.2.10")),
                 "suppress[3]");
    CHECK_EQ_STR(S(.ind = I_NOISY, .where = "dns.query"), "suppress[4]");
    /* suppress[6] expired in 2020: the JA3 is not suppressed at packet time, only with now = 0. */
    CHECK_EQ_STR(S(.ind = I_JA3, .where = "tls.ja3", .now = T2024), "");
    CHECK_EQ_STR(S(.ind = I_JA3, .where = "tls.ja3", .now = 0), "suppress[6]");

    struct kg_tuning_verdict v = check(t, ALERT(.ind = I_NOISY, .where = "tls.sni", .now = T2024));
    CHECK(!v.suppress);
    CHECK_EQ_INT(v.severity, 0);
    struct kg_tuning_rule_info info;
    CHECK(kg_tuning_rule_info(t, v.threshold_rule, &info));
    CHECK_EQ_STR(info.name, "noisy");
    CHECK_EQ_INT(info.count, 1);
    CHECK_EQ_INT(info.seconds, 3600);
    v = check(t,
              ALERT(.ind = I_ABUSE, .where = "dns.query", .family = 4, .src = v4("8.8.8.8"), .now = T2024));
    CHECK(!v.suppress);
    CHECK_EQ_INT(v.severity, 1); /* abuse.ch */
    v = check(t, ALERT(.ind = I_SUBNET6, .where = "conn.src_ip", .family = 6, .src = v6("2001:db8:bad::1"),
                       .now = T2024));
    CHECK_EQ_INT(v.severity, 3);
    CHECK(kg_tuning_rule_info(t, v.threshold_rule, &info));
    CHECK_EQ_STR(info.name, "threshold[2]");
    kg_tuning_free(t);
}

/* Thresholds: windows in packet time, keys, reloads. */
static void test_threshold_windows(void)
{
    struct kg_err err = {{0}};
    static const char text[] = "threshold:\n"
                               "  - {count: 1, seconds: 3600, feed_source: noisy-feed}\n"
                               "  - {count: 3, seconds: 60}\n";
    struct kg_tuning *t = load_text(text);
    struct kg_threshold *th = kg_threshold_new(1024, &err);
    CHECK(t != NULL && th != NULL);
    if (!t || !th) return;
    const uint8_t *a = v4("10.0.0.1"), *b = v4("10.0.0.2");
    struct kg_tuning_verdict v = check(t, ALERT(.ind = I_DOMAIN));
    uint32_t r = v.threshold_rule;
    CHECK_EQ_INT(r, 1);
    uint64_t t0 = T2024;
    /* Three in the window, then refused until it ends. */
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0));
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 10 * SEC));
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 20 * SEC));
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 30 * SEC));
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 60 * SEC - 1));
    /* Other sources, other indicators, other families: their own counters. */
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, b, t0 + 30 * SEC));
    CHECK(kg_threshold_allow(th, t, r, I_URL, 4, a, t0 + 30 * SEC));
    uint8_t a6[16] = {10, 0, 0, 1};
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 6, a6, t0 + 30 * SEC));
    /* The window ends 60 s after its first alert: a new one opens. */
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 60 * SEC));
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 61 * SEC));
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 62 * SEC));
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 63 * SEC));
    /* A packet slightly out of order counts in the window; time going back
     * more than a window before its start (an older capture) opens a new one. */
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 59 * SEC));
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 + 1 * SEC));
    CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, a, t0 - 1 * SEC));
    /* No address: one shared counter. */
    for (int i = 0; i < 3; i++)
        CHECK(kg_threshold_allow(th, t, r, I_JA3, 0, NULL, t0));
    CHECK(!kg_threshold_allow(th, t, r, I_JA3, 0, NULL, t0));
    CHECK(!kg_threshold_allow(th, t, r, I_JA3, 4, NULL, t0));

    /* The noisy feed: one per hour. */
    v = check(t, ALERT(.ind = I_NOISY));
    CHECK_EQ_INT(v.threshold_rule, 0);
    CHECK(kg_threshold_allow(th, t, 0, I_NOISY, 4, a, t0));
    CHECK(!kg_threshold_allow(th, t, 0, I_NOISY, 4, a, t0 + 3599 * SEC));
    CHECK(kg_threshold_allow(th, t, 0, I_NOISY, 4, a, t0 + 3600 * SEC));

    /* Nothing to count against: allowed. */
    CHECK(kg_threshold_allow(NULL, t, r, I_DOMAIN, 4, a, t0));
    CHECK(kg_threshold_allow(th, NULL, r, I_DOMAIN, 4, a, t0));
    CHECK(kg_threshold_allow(th, t, KG_TUNING_NONE, I_DOMAIN, 4, a, t0));
    CHECK(kg_threshold_allow(th, t, 2, I_DOMAIN, 4, a, t0));

    /* Reload: the same rule (even renamed, recommented, elsewhere in the
     * file) keeps its counters; a changed rule starts afresh. */
    const uint8_t *c = v4("10.0.0.3");
    for (int i = 0; i < 3; i++)
        CHECK(kg_threshold_allow(th, t, r, I_DOMAIN, 4, c, t0 + (uint64_t)i * SEC));
    CHECK(!kg_threshold_allow(th, t, r, I_DOMAIN, 4, c, t0 + 4 * SEC));
    struct kg_tuning *t2 = load_text("suppress:\n  - indicator: unrelated.example\n"
                                     "threshold:\n"
                                     "  - {count: 3, seconds: 60, name: general, comment: moved first}\n"
                                     "  - {count: 1, seconds: 3600, feed_source: noisy-feed}\n");
    CHECK(t2 != NULL);
    if (t2) {
        v = check(t2, ALERT(.ind = I_DOMAIN));
        CHECK_EQ_INT(v.threshold_rule, 1);
        CHECK(!kg_threshold_allow(th, t2, v.threshold_rule, I_DOMAIN, 4, c, t0 + 5 * SEC));
    }
    struct kg_tuning *t3 = load_text("threshold:\n  - {count: 4, seconds: 60}\n");
    CHECK(t3 != NULL);
    if (t3) {
        CHECK(kg_threshold_allow(th, t3, 0, I_DOMAIN, 4, c, t0 + 6 * SEC));
        CHECK(!kg_threshold_allow(th, t2, 1, I_DOMAIN, 4, c, t0 + 6 * SEC));
    }
    /* ... and survive an indicator reload: keyed by type and value, not by pointer. */
    struct kg_indicator_set *s2 = kg_indicator_set_new();
    CHECK_EQ_INT(kg_indicator_set_add(s2, KG_IND_DOMAIN, "*.Evil.Example.", "abuse.ch", &err), 0);
    kg_indicator_set_finalize(s2);
    const struct kg_indicator *again = kg_indicator_match_domain(s2, "evil.example", 12, 0);
    CHECK(again != NULL && again != I_DOMAIN);
    if (again) CHECK(!kg_threshold_allow(th, t, r, again, 4, c, t0 + 7 * SEC));

    struct kg_threshold_stats st;
    kg_threshold_get_stats(th, &st);
    CHECK_EQ_INT(st.max_entries, 1024);
    CHECK_EQ_INT(st.evictions, 0);
    CHECK(st.entries >= 6 && st.entries <= 10);
    kg_threshold_get_stats(NULL, &st);
    CHECK_EQ_INT(st.entries, 0);

    kg_indicator_set_free(s2);
    kg_tuning_free(t3);
    kg_tuning_free(t2);
    kg_tuning_free(t);
    kg_threshold_free(th);
    kg_threshold_free(NULL);

    CHECK(kg_threshold_new(0, &err) == NULL);
    CHECK_EQ_STR(err.msg, "threshold table size 0 out of range (1 to 16777216)");
    CHECK(kg_threshold_new(16777217, &err) == NULL);
    CHECK_EQ_STR(err.msg, "threshold table size 16777217 out of range (1 to 16777216)");
}

/* A million distinct sources through a 10 000-entry table: memory stays
 * put, the least recently used go first, recent ones are still counted. */
static void test_threshold_bounded(void)
{
    struct kg_err err = {{0}};
    struct kg_tuning *t = load_text("threshold:\n  - {count: 1, seconds: 3600}\n");
    struct kg_threshold *th = kg_threshold_new(10000, &err);
    CHECK(t != NULL && th != NULL);
    if (!t || !th) return;
    const uint32_t n = 1000000;
    uint64_t t0 = T2024;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint32_t refused = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t src[4] = {(uint8_t)(10 + (i >> 24)), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        refused += !kg_threshold_allow(th, t, 0, I_DOMAIN, 4, src, t0 + i);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("     1M distinct sources: %.0f ns per call\n", secs * 1e9 / n);
    CHECK_EQ_INT(refused, 0);
    struct kg_threshold_stats st;
    kg_threshold_get_stats(th, &st);
    CHECK_EQ_INT(st.entries, 10000);
    CHECK_EQ_INT(st.evictions, n - 10000);
    CHECK_EQ_INT(st.evictions_active, n - 10000); /* every one inside its hour */
    /* The most recent sources are still counted... */
    for (uint32_t i = n - 10000; i < n; i += 997) {
        uint8_t src[4] = {(uint8_t)(10 + (i >> 24)), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        CHECK(!kg_threshold_allow(th, t, 0, I_DOMAIN, 4, src, t0 + n));
    }
    /* ... the oldest were evicted, so they are let through again. */
    uint8_t first[4] = {10, 0, 0, 0};
    CHECK(kg_threshold_allow(th, t, 0, I_DOMAIN, 4, first, t0 + n));
    kg_threshold_get_stats(th, &st);
    CHECK_EQ_INT(st.entries, 10000);
    /* Touching an entry makes it recent: refreshed entries survive a wave of new ones. */
    uint8_t keep[4] = {192, 168, 0, 1};
    CHECK(kg_threshold_allow(th, t, 0, I_DOMAIN, 4, keep, t0 + n));
    for (uint32_t i = 0; i < 50000; i++) {
        uint8_t src[4] = {172, 16, (uint8_t)(i >> 8), (uint8_t)i};
        if (i % 5000 == 0) CHECK(!kg_threshold_allow(th, t, 0, I_DOMAIN, 4, keep, t0 + n + i));
        (void)kg_threshold_allow(th, t, 0, I_DOMAIN, 4, src, t0 + n + i);
    }
    CHECK(!kg_threshold_allow(th, t, 0, I_DOMAIN, 4, keep, t0 + n + 50000));
    /* A table of one still works. */
    struct kg_threshold *one = kg_threshold_new(1, &err);
    CHECK(one != NULL);
    CHECK(kg_threshold_allow(one, t, 0, I_DOMAIN, 4, keep, t0));
    CHECK(!kg_threshold_allow(one, t, 0, I_DOMAIN, 4, keep, t0));
    CHECK(kg_threshold_allow(one, t, 0, I_DOMAIN, 4, first, t0));
    CHECK(kg_threshold_allow(one, t, 0, I_DOMAIN, 4, keep, t0));
    kg_threshold_free(one);
    kg_threshold_free(th);
    kg_tuning_free(t);
}

/* Malformed files: the exact message, with the line of the offending value. */
static void test_errors(void)
{
    /* Structure. */
    EXPECT_ERROR("- a\n", "t.yaml:1: expected a mapping of suppress, severity and threshold lists at the top "
                          "level, got a list");
    EXPECT_ERROR("just text\n",
                 "t.yaml:1: expected a mapping of suppress, severity and threshold lists at the "
                 "top level, got 'just text'");
    EXPECT_ERROR("# x\nsupress:\n  - indicator: a.example\n",
                 "t.yaml:2: unknown section 'supress' (did you mean 'suppress'?)");
    EXPECT_ERROR("severity:\n  - {where: dns, severity: 1}\nseverity.note: x\n",
                 "t.yaml:3: unknown section 'severity.note' (expected suppress, severity or threshold)");
    EXPECT_ERROR("rules:\n  - indicator: a.example\n",
                 "t.yaml:1: unknown section 'rules' (expected suppress, severity or threshold)");
    EXPECT_ERROR("suppress:\n  - indicator: a.example\nsuppress:\n  - indicator: b.example\n",
                 "t.yaml:3: duplicate section 'suppress' (first on line 1)");
    EXPECT_ERROR("suppress:\n  indicator: a.example\n",
                 "t.yaml:2: suppress: expected a list of rules, got a mapping");
    EXPECT_ERROR("suppress: a.example\n", "t.yaml:1: suppress: expected a list of rules, got 'a.example'");
    EXPECT_ERROR("suppress:\n  - a.example\n",
                 "t.yaml:2: suppress[1]: expected a rule (a mapping such as {indicator: evil.example}), got "
                 "'a.example'");
    EXPECT_ERROR("suppress:\n  - indicator: a.example\n  -\n",
                 "t.yaml:3: suppress[2]: expected a rule (a mapping such as {indicator: evil.example}), got "
                 "nothing");
    EXPECT_ERROR("? [a]\n: 1\n", "t.yaml:1: keys must be names, got a list");
    EXPECT_ERROR("suppress:\n  - {[a]: 1}\n", "t.yaml:2: suppress[1]: keys must be names, got a list");

    /* Keys. */
    EXPECT_ERROR("suppress:\n  - indicator: a.example\n    wher: dns.query\n",
                 "t.yaml:3: suppress[1]: unknown key 'wher' (did you mean 'where'?)");
    EXPECT_ERROR(
        "suppress:\n  - {indicator: a.example, colour: red}\n",
        "t.yaml:2: suppress[1]: unknown key 'colour' (expected indicator, type, source, dest, where, "
        "feed_source, tag, name, comment or until)");
    EXPECT_ERROR(
        "suppress:\n  - {indicator: a.example, severity: 1}\n",
        "t.yaml:2: suppress[1]: key 'severity' does not belong in a suppress rule (expected indicator, "
        "type, source, dest, where, feed_source, tag, name, comment or until)");
    EXPECT_ERROR(
        "severity:\n  - {severity: 1, count: 3}\n",
        "t.yaml:2: severity[1]: key 'count' does not belong in a severity rule (expected indicator, type, "
        "source, dest, where, feed_source, tag, name, comment, until or severity)");
    EXPECT_ERROR("suppress:\n  - source: 10.0.0.0/8\n    where: dns\n    source: 11.0.0.0/8\n",
                 "t.yaml:4: suppress[1]: duplicate key 'source' (first on line 2)");

    /* Missing pieces. */
    EXPECT_ERROR(
        "suppress:\n  - indicator: a.example\n  - {name: everything, comment: oops}\n",
        "t.yaml:3: suppress[2]: a suppress rule needs at least one condition (indicator, type, source, "
        "dest, where, feed_source or tag): without one it would suppress every alert");
    EXPECT_ERROR("severity:\n  - {tag: phishing}\n", "t.yaml:2: severity[1]: missing 'severity'");
    EXPECT_ERROR("threshold:\n  - count: 5\n    feed_source: x\n",
                 "t.yaml:2: threshold[1]: missing 'seconds'");
    EXPECT_ERROR("threshold:\n  - {seconds: 5}\n", "t.yaml:2: threshold[1]: missing 'count'");

    /* Values. */
    EXPECT_ERROR("suppress:\n  - indicator: a.example\n  - source: 10.0.0.0/33\n",
                 "t.yaml:3: suppress[2]: source: '10.0.0.0/33': prefix length must be 0 to 32");
    EXPECT_ERROR("suppress:\n  - dest: \"2001:db8::/129\"\n",
                 "t.yaml:2: suppress[1]: dest: '2001:db8::/129': prefix length must be 0 to 128");
    EXPECT_ERROR("suppress:\n  - source: 10.0.0.0/\n",
                 "t.yaml:2: suppress[1]: source: '10.0.0.0/': prefix length must be 0 to 32");
    EXPECT_ERROR("suppress:\n  - source: 10.0.0.0/+8\n",
                 "t.yaml:2: suppress[1]: source: '10.0.0.0/+8': prefix length must be 0 to 32");
    EXPECT_ERROR("suppress:\n  - source: 10.1.2.3/8\n",
                 "t.yaml:2: suppress[1]: source: '10.1.2.3/8': host bits set (did you mean 10.0.0.0/8?)");
    EXPECT_ERROR(
        "suppress:\n  - source: \"2001:db8::1/32\"\n",
        "t.yaml:2: suppress[1]: source: '2001:db8::1/32': host bits set (did you mean 2001:db8::/32?)");
    EXPECT_ERROR("suppress:\n  - source: 10.0.0.256\n",
                 "t.yaml:2: suppress[1]: source: '10.0.0.256': not an IPv4 or IPv6 address");
    EXPECT_ERROR("suppress:\n  - source: corp.example\n",
                 "t.yaml:2: suppress[1]: source: 'corp.example': not an IPv4 or IPv6 address");
    EXPECT_ERROR("suppress:\n  - source:\n      - 10.0.0.0/8\n      - 10.0.0.01\n",
                 "t.yaml:4: suppress[1]: source: '10.0.0.01': not an IPv4 or IPv6 address");
    EXPECT_ERROR("severity:\n  - {feed_source: abuse.ch, severity: 1}\n  - {tag: phishing, severity: 4}\n",
                 "t.yaml:3: severity[2]: severity: expected 1 (high), 2 (medium) or 3 (low), got '4'");
    EXPECT_ERROR("severity:\n  - {tag: phishing, severity: 0}\n",
                 "t.yaml:2: severity[1]: severity: expected 1 (high), 2 (medium) or 3 (low), got '0'");
    EXPECT_ERROR("severity:\n  - {tag: phishing, severity: critical}\n",
                 "t.yaml:2: severity[1]: severity: expected 1 (high), 2 (medium) or 3 (low), got 'critical'");
    EXPECT_ERROR("severity:\n  - {tag: phishing, severity: [1, 2]}\n",
                 "t.yaml:2: severity[1]: severity: expected a value, got a list");
    EXPECT_ERROR("threshold:\n  - {count: 0, seconds: 60}\n",
                 "t.yaml:2: threshold[1]: count: expected an integer from 1 to 1000000, got '0'");
    EXPECT_ERROR("threshold:\n  - {count: 05, seconds: 60}\n",
                 "t.yaml:2: threshold[1]: count: expected an integer from 1 to 1000000, got '05'");
    EXPECT_ERROR("threshold:\n  - {count: 5, seconds: 2592001}\n",
                 "t.yaml:2: threshold[1]: seconds: expected an integer from 1 to 2592000, got '2592001'");
    EXPECT_ERROR("threshold:\n  - {count: 5, seconds: 1m}\n",
                 "t.yaml:2: threshold[1]: seconds: expected an integer from 1 to 2592000, got '1m'");
    EXPECT_ERROR("suppress:\n  - where: dns.qeury\n",
                 "t.yaml:2: suppress[1]: where: unknown place 'dns.qeury' (did you mean 'dns.query'?)");
    EXPECT_ERROR(
        "suppress:\n  - where: smtp.from\n",
        "t.yaml:2: suppress[1]: where: unknown place 'smtp.from' (expected conn.src_ip, conn.dest_ip, "
        "conn.resolved, dns.query, dns.answer, tls.sni, tls.ja3, tls.ja4, tls.cert_sha1, http.host, "
        "http.url, http.user_agent, or conn, dns, tls, http)");
    EXPECT_ERROR("suppress:\n  - type: DOMIAN\n",
                 "t.yaml:2: suppress[1]: type: unknown indicator type 'DOMIAN' (did you mean 'DOMAIN'?)");
    EXPECT_ERROR(
        "suppress:\n  - type: EMAIL\n",
        "t.yaml:2: suppress[1]: type: unknown indicator type 'EMAIL' (expected ADDR, SUBNET, DOMAIN, URL, "
        "CERT_HASH, JA3, JA4, FILE_HASH or SOFTWARE)");
    EXPECT_ERROR(
        "suppress:\n  - until: soon\n    where: dns\n",
        "t.yaml:2: suppress[1]: until: expected a date or time (2025-06-30, 2025-06-30T18:00:00Z), got "
        "'soon'");
    EXPECT_ERROR("suppress:\n  - where: []\n",
                 "t.yaml:2: suppress[1]: where: empty list (leave the key out instead)");
    EXPECT_ERROR("suppress:\n  - where: [dns, ~]\n",
                 "t.yaml:2: suppress[1]: where: expected a value, got nothing");
    EXPECT_ERROR("suppress:\n  - where: [dns, [tls]]\n",
                 "t.yaml:2: suppress[1]: where: expected a value, got a list");
    EXPECT_ERROR("suppress:\n  - where:\n",
                 "t.yaml:2: suppress[1]: where: expected a value or a list of values, "
                 "got nothing");
    EXPECT_ERROR("suppress:\n  - where: {dns: 1}\n",
                 "t.yaml:2: suppress[1]: where: expected a value or a list of values, got a mapping");
    EXPECT_ERROR("suppress:\n  - feed_source: ''\n",
                 "t.yaml:2: suppress[1]: feed_source: expected a value, got ''");
    EXPECT_ERROR("suppress:\n  - tag: \"a\\0b\"\n",
                 "t.yaml:2: suppress[1]: tag: values must not contain NUL bytes");
    EXPECT_ERROR("suppress:\n  - {where: dns, name: x}\n  - {where: tls, name: x}\n",
                 "t.yaml:3: suppress[2]: name 'x' is already used by the rule on line 2");
    EXPECT_ERROR("suppress:\n  - {where: dns, name: x}\nthreshold:\n  - {count: 1, seconds: 1, name: x}\n",
                 "t.yaml:4: threshold[1]: name 'x' is already used by the rule on line 2");
    EXPECT_ERROR(
        "suppress:\n  - {where: dns, name: \"suppress[2]\"}\n",
        "t.yaml:2: suppress[1]: name 'suppress[2]': '[' is kept for the default names (like suppress[2])");

    /* Indicators: checked for their type (named, or from their shape). */
    EXPECT_ERROR(
        "suppress:\n  - indicator: 1.2.3.256\n",
        "t.yaml:2: suppress[1]: indicator '1.2.3.256' is not an address or CIDR block (ADDR, SUBNET): not "
        "an IPv4 or IPv6 address");
    EXPECT_ERROR(
        "suppress:\n  - indicator:\n      - evil.example\n      - a..example\n",
        "t.yaml:4: suppress[1]: indicator 'a..example' is not a domain (DOMAIN): empty label in domain");
    EXPECT_ERROR(
        "suppress:\n  - indicator: evil.example:8080\n",
        "t.yaml:2: suppress[1]: indicator 'evil.example:8080' is not a domain (DOMAIN): invalid character "
        "in domain");
    EXPECT_ERROR(
        "suppress:\n  - indicator: ftp://evil.example/x\n",
        "t.yaml:2: suppress[1]: indicator 'ftp://evil.example/x' is not a URL (URL): unsupported URL scheme "
        "(only http:// and https://)");
    EXPECT_ERROR(
        "suppress:\n  - {indicator: abc, type: JA3}\n",
        "t.yaml:2: suppress[1]: indicator 'abc' is not a hash (CERT_HASH, JA3, FILE_HASH): not a hash: "
        "expected 32, 40 or 64 hex digits");
    EXPECT_ERROR(
        "suppress:\n  - {indicator: t13d1516h2_8daaf6152771, type: JA4}\n",
        "t.yaml:2: suppress[1]: indicator 't13d1516h2_8daaf6152771' is not a JA4 fingerprint (JA4): not a "
        "JA4 fingerprint (like t13d1516h2_8daaf6152771_e5627efa2ab1)");
    EXPECT_ERROR(
        "suppress:\n  - indicator: evil.example\n    type: [JA3, FILE_HASH]\n",
        "t.yaml:2: suppress[1]: indicator 'evil.example' looks like a domain (DOMAIN), which none of the "
        "rule's types is");

    /* YAML itself. */
    EXPECT_ERROR("threshold:\n  - {count: 5, seconds: 60\n",
                 "t.yaml:3: did not find expected ',' or '}' (while parsing a flow mapping at line 2)");
    EXPECT_ERROR("suppress:\n  - &r {where: dns}\n  - *r\n",
                 "t.yaml:3: YAML aliases are not supported (*r)");
    EXPECT_ERROR("suppress:\n  - {where: dns}\n---\nsuppress:\n  - {where: tls}\n",
                 "t.yaml:3: only one YAML document is allowed");
    EXPECT_ERROR("suppress:\n  - where: dns\n    tag: \xff\n",
                 "t.yaml:3: invalid leading UTF-8 octet (byte 0xff)");
    EXPECT_ERROR(
        "suppress:\n\t- where: dns\n",
        "t.yaml:2: found character that cannot start any token (while scanning for the next token at line "
        "2)");
    static const char nul[] = "suppress:\n  - where: dn\0s\n";
    struct kg_err err = {{0}};
    CHECK(kg_tuning_load_buffer("t.yaml", nul, sizeof(nul) - 1, &err) == NULL);
    CHECK_EQ_STR(err.msg, "t.yaml:2: control characters are not allowed (byte 0x00)");

    /* Control bytes in a message are neutralised; long values are cut. */
    EXPECT_ERROR(
        "suppress:\n  - where: \"\\e[31mred\"\n",
        "t.yaml:2: suppress[1]: where: unknown place '?[31mred' (expected conn.src_ip, conn.dest_ip, "
        "conn.resolved, dns.query, dns.answer, tls.sni, tls.ja3, tls.ja4, tls.cert_sha1, http.host, "
        "http.url, http.user_agent, or conn, dns, tls, http)");
    char big[12000];
    int o = snprintf(big, sizeof(big), "suppress:\n  - feed_source: ");
    memset(big + o, 'x', 9000);
    big[o + 9000] = '\0';
    CHECK(kg_tuning_load_buffer("t.yaml", big, strlen(big), &err) == NULL);
    CHECK_EQ_STR(err.msg, "t.yaml:2: suppress[1]: feed_source: value longer than 8192 bytes");
}

/* The fixtures: messages name the file as given. */
static void test_error_fixtures(void)
{
    static const struct {
        const char *file, *suffix;
    } cases[] = {
        {"bad-cidr.yaml", ":3: suppress[2]: source: '10.0.0.0/33': prefix length must be 0 to 32"},
        {"bad-severity.yaml", ":3: severity[2]: severity: expected 1 (high), 2 (medium) or 3 (low), got '4'"},
        {"unknown-key.yaml", ":4: suppress[1]: unknown key 'wher' (did you mean 'where'?)"},
        {"unknown-section.yaml", ":1: unknown section 'supress' (did you mean 'suppress'?)"},
        {"syntax-error.yaml",
         ":3: did not find expected ',' or '}' (while parsing a flow mapping at line 2)"},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++) {
        char path[PATH_MAX + 64], want[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/tests/data/tuning/%s", src_dir(), cases[i].file);
        snprintf(want, sizeof(want), "%s%s", path, cases[i].suffix);
        struct kg_err err = {{0}};
        struct kg_tuning *t = kg_tuning_load(path, &err);
        CHECK(t == NULL);
        CHECK_EQ_STR(err.msg, want);
        kg_tuning_free(t);
    }
    struct kg_err err = {{0}};
    char path[PATH_MAX], want[PATH_MAX + 100];
    snprintf(path, sizeof(path), "%s/tests/data/tuning/missing.yaml", src_dir());
    CHECK(kg_tuning_load(path, &err) == NULL);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    CHECK_EQ_STR(err.msg, want);
    snprintf(path, sizeof(path), "%s/tests/data/tuning", src_dir());
    CHECK(kg_tuning_load(path, &err) == NULL);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(EISDIR));
    CHECK_EQ_STR(err.msg, want);
    CHECK(kg_tuning_load(NULL, &err) == NULL);
    CHECK(kg_tuning_load_buffer("x", NULL, 5, &err) == NULL);
}

/* Every `where` the pipeline raises alerts at is a place a rule may name, so
 * the list in indicators_tuning.c cannot fall behind sensor/pipeline.c. */
static void test_places_follow_pipeline(void)
{
    char *text = read_all(src_path("sensor/pipeline.c"), NULL);
    if (!text) {
        printf("     sensor/pipeline.c not found: skipped\n");
        return;
    }
    char *p = strstr(text, "where_names[] = {");
    CHECK(p != NULL);
    int n = 0;
    char *end = p ? strstr(p, "};") : NULL;
    while (p && end && (p = strchr(p, '"')) != NULL && p < end) {
        char *q = strchr(p + 1, '"');
        if (!q) break;
        char rule[160];
        snprintf(rule, sizeof(rule), "suppress:\n  - where: %.*s\n", (int)(q - p - 1), p + 1);
        struct kg_tuning *t = load_text(rule);
        if (!t) fprintf(stderr, "  place %.*s is unknown to the tuning\n", (int)(q - p - 1), p + 1);
        CHECK(t != NULL);
        kg_tuning_free(t);
        n++;
        p = q + 1;
    }
    CHECK(n >= 8);
    free(text);
}

/* Every ```yaml block in docs/TUNING.md loads: the documentation cannot show a
 * file that Kagami refuses. */
static void test_docs_examples(void)
{
    char *doc = read_all(src_path("docs/TUNING.md"), NULL);
    CHECK(doc != NULL);
    if (!doc) return;
    int blocks = 0;
    for (char *p = doc; (p = strstr(p, "```yaml\n")) != NULL;) {
        p += 8;
        char *end = strstr(p, "```");
        if (!end) break;
        struct kg_err err = {{0}};
        struct kg_tuning *t = kg_tuning_load_buffer("TUNING.md", p, (size_t)(end - p), &err);
        if (!t) fprintf(stderr, "  docs/TUNING.md block %d: %s\n", blocks + 1, err.msg);
        CHECK(t != NULL);
        kg_tuning_free(t);
        blocks++;
        p = end + 3;
    }
    CHECK(blocks >= 2);
    free(doc);
}

/* Many rules: a suppress list of 100 000 indicators loads quickly and
 * costs one probe per check. */
static void test_many_rules(void)
{
    struct kg_buf b;
    kg_buf_init(&b);
    kg_buf_append_str(&b, "suppress:\n");
    for (int i = 0; i < 100000; i++)
        kg_buf_printf(&b, "  - {indicator: host%d.fp.example, name: fp%d}\n", i, i);
    kg_buf_append_str(&b, "  - indicator: evil.example\n");
    struct timespec a, c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct kg_err err = {{0}};
    struct kg_tuning *t = kg_tuning_load_buffer("many.yaml", b.data, b.len, &err);
    clock_gettime(CLOCK_MONOTONIC, &c);
    kg_buf_free(&b);
    CHECK(t != NULL);
    if (!t) return;
    printf("     100k rules loaded in %.2f s\n",
           (double)(c.tv_sec - a.tv_sec) + (double)(c.tv_nsec - a.tv_nsec) / 1e9);
    CHECK_EQ_INT(kg_tuning_rule_count(t), 100001);
    clock_gettime(CLOCK_MONOTONIC, &a);
    int hits = 0;
    for (int i = 0; i < 200000; i++)
        hits += check(t, ALERT(.ind = (i & 1) ? I_DOMAIN : I_NOISY, .where = "dns.query")).suppress;
    clock_gettime(CLOCK_MONOTONIC, &c);
    printf("     check: %.0f ns each\n",
           ((double)(c.tv_sec - a.tv_sec) * 1e9 + (double)(c.tv_nsec - a.tv_nsec)) / 200000);
    CHECK_EQ_INT(hits, 100000);
    CHECK_EQ_STR(S(.ind = I_DOMAIN), "suppress[100001]");
    kg_tuning_free(t);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random damage to a good file: it loads, or fails with "name:..."; never crashes or leaks. */
static void test_random_input(void)
{
    size_t len = 0;
    char *base = read_all(src_path("tests/data/tuning/good.yaml"), &len);
    CHECK(base != NULL && len > 0);
    if (!base) return;
    static const char interesting[] = ":-[]{}\"'\n #&*!|>\t\\,?/.\0\xff";
    int loaded = 0, bad = 0;
    int old = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR); /* the expired rule's warning, thousands of times */
    for (int i = 0; i < 4000; i++) {
        char *m = kg_xmalloc(len + 8);
        memcpy(m, base, len);
        size_t n = len;
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(rng() % n);
            char c = (rng() & 1) ? interesting[rng() % (sizeof(interesting) - 1)] : (char)rng();
            if (rng() % 3 == 0 && n < len + 8) {
                memmove(m + at + 1, m + at, n - at);
                n++;
            }
            m[at] = c;
        }
        struct kg_err err = {{0}};
        struct kg_tuning *t = kg_tuning_load_buffer("fuzz.yaml", m, n, &err);
        if (t) {
            loaded++;
            for (uint32_t r = 0; r < kg_tuning_rule_count(t); r++) {
                struct kg_tuning_rule_info info;
                CHECK(kg_tuning_rule_info(t, r, &info));
            }
            (void)check(t, ALERT(.ind = I_DOMAIN, .where = "dns.query", .family = 4, .src = v4("10.1.1.1"),
                                 .dst = v4("192.0.2.10"), .now = T2024));
        } else if (strncmp(err.msg, "fuzz.yaml:", 10) != 0) {
            fprintf(stderr, "  fuzz: message \"%s\"\n", err.msg);
            bad++;
        }
        kg_tuning_free(t);
        free(m);
    }
    /* Token soup: real keys and values in random order reach deeper than byte damage. */
    static const char *const pieces[] = {
        "suppress",  "severity",
        "threshold", "indicator",
        "type",      "source",
        "dest",      "where",
        "tag",       "feed_source",
        "name",      "count",
        "seconds",   "until",
        "comment",   ":",
        ": ",        " ",
        "\n",        "\n  ",
        "\n    ",    "- ",
        "[",         "]",
        "{",         "}",
        ", ",        "'",
        "\"",        "1",
        "60",        "0",
        "high",      "dns",
        "dns.query", "10.0.0.0/8",
        "::/0",      "evil.example",
        "DOMAIN",    "2024-01-01",
        "~",         "&a ",
        "*a",        "#",
        "---\n",     "/",
        "\xc3\xa9",  "\xff",
        "\t",
    };
    int soup_loaded = 0;
    for (int i = 0; i < 4000; i++) {
        struct kg_buf b;
        kg_buf_init(&b);
        int n = 1 + (int)(rng() % 40);
        for (int j = 0; j < n; j++)
            kg_buf_append_str(&b, pieces[rng() % KG_ARRAY_LEN(pieces)]);
        struct kg_err err = {{0}};
        struct kg_tuning *t = kg_tuning_load_buffer("soup.yaml", b.data, b.len, &err);
        if (t) {
            soup_loaded++;
            (void)check(t, ALERT(.ind = I_DOMAIN, .where = "dns.query", .family = 4, .src = v4("10.1.1.1"),
                                 .dst = v4("192.0.2.10"), .now = T2024));
        } else if (strncmp(err.msg, "soup.yaml:", 10) != 0) {
            fprintf(stderr, "  soup: message \"%s\"\n", err.msg);
            bad++;
        }
        kg_tuning_free(t);
        kg_buf_free(&b);
    }
    kg_log_set_level((enum kg_log_level)old);
    printf("     4000 damaged files, %d of them loaded; 4000 token soups, %d loaded\n", loaded, soup_loaded);
    CHECK_EQ_INT(bad, 0);
    free(base);
}

int main(void)
{
    setup_indicators();
    KG_TEST_RUN(test_empty);
    KG_TEST_RUN(test_suppress_indicator);
    KG_TEST_RUN(test_suppress_conditions);
    KG_TEST_RUN(test_combinations);
    KG_TEST_RUN(test_until);
    KG_TEST_RUN(test_severity);
    KG_TEST_RUN(test_good_fixture);
    KG_TEST_RUN(test_threshold_windows);
    KG_TEST_RUN(test_threshold_bounded);
    KG_TEST_RUN(test_errors);
    KG_TEST_RUN(test_error_fixtures);
    KG_TEST_RUN(test_places_follow_pipeline);
    KG_TEST_RUN(test_docs_examples);
    KG_TEST_RUN(test_many_rules);
    KG_TEST_RUN(test_random_input);
    kg_indicator_set_free(g_set);
    KG_TEST_MAIN_END();
}
