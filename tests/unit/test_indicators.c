/*
 * tests/unit/test_indicators.c — the indicators module: Zeek Intel feed
 * parsing (good, malformed, headerless, CRLF, random bytes), normalisation,
 * most-specific matching for addresses and domains, URL and hash matching,
 * a 200k-indicator randomised check (single and batched lookups), a
 * brute-force longest-prefix comparison and concurrent readers; the JA4,
 * FILE_HASH and SOFTWARE types; validity windows (a valid parent wins over
 * an expired child, for domains, IPv4 at every level of the index, IPv6);
 * format prefixes and detection; plain lists, STIX 2.1, MISP CSV, Suricata
 * datasets and SSLBL CSVs with good and malformed input (counts and
 * "file:line: message" warnings); chunked reading across 1 MiB boundaries;
 * counts by source; Ed25519 signatures made with the openssl command lines
 * of docs/INDICATORS.md (accepted, base64, tampered, wrong key, no key);
 * token-soup fuzzing of every format.
 *
 * Fixtures are in tests/data/indicators/ (found through $KG_SOURCE_DIR,
 * which ctest sets). Random tests use a fixed seed, or $KG_TEST_SEED.
 */
#include "indicators/indicators.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kg_test.h"

/* --- helpers ------------------------------------------------------------------ */

static char g_data_dir[1024];

static const char *fixture(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof(path), "%s/%s", g_data_dir, name);
    return path;
}

/* xorshift64*: deterministic, so a failure can be replayed with KG_TEST_SEED. */
static uint64_t g_rng;
static uint64_t rnd(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}
static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* Runs fn(arg) with stderr redirected to a temporary file and returns what
 * was written there (owned by the caller, NUL-terminated). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    if (n < 0) n = 0;
    char *out = calloc(1, (size_t)n + 1);
    rewind(tmp);
    size_t got = fread(out, 1, (size_t)n, tmp);
    out[got] = '\0';
    fclose(tmp);
    return out;
}

static const struct kg_indicator *match_v4(const struct kg_indicator_set *s, const char *ip)
{
    uint8_t a[4];
    if (inet_pton(AF_INET, ip, a) != 1) abort();
    return kg_indicator_match_addr(s, 4, a, 0);
}

static const struct kg_indicator *match_v6(const struct kg_indicator_set *s, const char *ip)
{
    uint8_t a[16];
    if (inet_pton(AF_INET6, ip, a) != 1) abort();
    return kg_indicator_match_addr(s, 6, a, 0);
}

static const struct kg_indicator *match_dom(const struct kg_indicator_set *s, const char *name)
{
    return kg_indicator_match_domain(s, name, strlen(name), 0);
}

static const struct kg_indicator *match_url(const struct kg_indicator_set *s, const char *host,
                                            const char *uri)
{
    return kg_indicator_match_url(s, host, strlen(host), uri, strlen(uri), 0);
}

static const char *value_of(const struct kg_indicator *ind)
{
    return ind ? ind->value : "(no match)";
}

static const char *meta(const struct kg_indicator *ind, const char *key)
{
    for (uint32_t i = 0; ind && i < ind->nmeta; i++)
        if (strcmp(ind->meta_keys[i], key) == 0) return ind->meta_values[i];
    return NULL;
}

/* A set built from `text` (a Zeek feed in memory); aborts the test on error. */
static struct kg_indicator_set *set_from(const char *text)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err = {{0}};
    int rc = kg_indicator_set_load_buffer(s, "inline.intel", text, strlen(text), NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "set_from: %s\n", err.msg);
        abort();
    }
    kg_indicator_set_finalize(s);
    return s;
}

/* --- feed parsing ---------------------------------------------------------------- */

static void test_type_names(void)
{
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_ADDR), "ADDR");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_SUBNET), "SUBNET");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_DOMAIN), "DOMAIN");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_URL), "URL");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_CERT_HASH), "CERT_HASH");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_JA3), "JA3");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_TYPE_COUNT), "UNKNOWN");
}

static void test_load_good(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    struct kg_err err = {{0}};
    CHECK_EQ_INT(kg_indicator_set_load_file(s, fixture("good.intel"), &rep, &err), 0);
    CHECK_EQ_INT(rep.loaded, 11);
    CHECK_EQ_INT(rep.bad_lines, 0);
    CHECK_EQ_INT(rep.duplicates, 0);
    kg_indicator_set_finalize(s);
    CHECK_EQ_INT(kg_indicator_set_total(s), 11);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_ADDR), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SUBNET), 3);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_DOMAIN), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_CERT_HASH), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_JA3), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_TYPE_COUNT), 0);

    /* Every column lands where it should. */
    const struct kg_indicator *ind = match_v4(s, "198.51.100.7");
    CHECK(ind != NULL);
    if (ind) {
        CHECK_EQ_INT(ind->type, KG_IND_ADDR);
        CHECK_EQ_INT(ind->id, 0);
        CHECK_EQ_STR(ind->value, "198.51.100.7");
        CHECK_EQ_STR(ind->source, "feodo");
        CHECK_EQ_INT(ind->severity, 1);
        CHECK(strstr(ind->file, "good.intel") != NULL);
        CHECK_EQ_INT(ind->line, 7);
        CHECK_EQ_INT(ind->nmeta, 2); /* desc and url; source and severity have their own fields */
        CHECK_EQ_STR(meta(ind, "desc"), "C2 server");
        CHECK_EQ_STR(meta(ind, "url"), "https://example.org/feodo");
    }
    /* Absent markers ("-", "(empty)") leave the meta key out. */
    ind = match_v6(s, "2001:db8::dead:beef");
    CHECK(ind && ind->nmeta == 0 && ind->severity == 2);
    ind = match_v6(s, "2001:db8:bad:1::1");
    CHECK(ind && ind->type == KG_IND_SUBNET && ind->nmeta == 0 && ind->severity == 0);
    ind = match_url(s, "phish.example.net", "/Paypal/Login");
    CHECK(ind != NULL);
    if (ind) {
        CHECK_EQ_STR(ind->source, "");
        CHECK_EQ_STR(ind->value, "HTTP://Phish.Example.NET:80/Paypal/Login"); /* as listed */
        CHECK_EQ_INT(ind->line, 16);
    }
    /* Host bits of a subnet are masked; the value is kept as listed. */
    ind = match_v4(s, "10.200.0.1");
    CHECK_EQ_STR(value_of(ind), "10.1.2.3/8");
    CHECK_EQ_STR(value_of(match_v4(s, "203.0.113.99")), "203.0.113.0/24");
    CHECK_EQ_STR(value_of(match_dom(s, "a.malware.test")), "*.Malware.TEST.");
    CHECK_EQ_STR(value_of(match_dom(s, "EVIL.example.com.")), "evil.example.com");
    CHECK_EQ_STR(value_of(match_url(s, "bad.example.org", "/login.php?x=1")),
                 "bad.example.org/login.php?x=1");
    ind = kg_indicator_match_hash(s, KG_IND_CERT_HASH, "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c", 40, 0);
    CHECK(ind && ind->type == KG_IND_CERT_HASH && strcmp(ind->source, "sslbl") == 0);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", 32, 0) != NULL);
    kg_indicator_set_free(s);
}

struct load_call {
    const char *path;
    struct kg_indicator_set *set;
    struct kg_indicator_load_report rep;
    struct kg_err err;
    int rc;
};

static void do_load(void *arg)
{
    struct load_call *c = arg;
    c->rc = kg_indicator_set_load_file(c->set, c->path, &c->rep, &c->err);
}

static void test_load_malformed(void)
{
    struct load_call c = {.path = fixture("malformed.intel"), .set = kg_indicator_set_new()};
    char *log = capture_stderr(do_load, &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.loaded, 3);
    CHECK_EQ_INT(c.rep.bad_lines, 12);
    CHECK_EQ_INT(c.rep.duplicates, 3);
    /* Each bad line is reported as file:line: message. */
    static const char *const expect[] = {
        "malformed.intel:3: ADDR '1.2.3.256': invalid IP address",
        "malformed.intel:4: SUBNET '10.0.0.0/33': CIDR prefix length 33 exceeds 32",
        "malformed.intel:5: SUBNET '10.0.0.0': invalid CIDR",
        "malformed.intel:7: DOMAIN '..': empty label",
        "malformed.intel:8: empty indicator",
        "malformed.intel:9: CERT_HASH 'abc': hash must be 40 or 64 hex digits",
        "malformed.intel:10: CERT_HASH",
        "malformed.intel:11: unsupported indicator type 'Intel::EMAIL'",
        "malformed.intel:12: unknown indicator type 'Intel::BOGUS'",
        "malformed.intel:13: expected 3 fields, found 2",
        "malformed.intel:14: expected 3 fields, found 4",
        "malformed.intel:18: URL 'ftp://files.example/a': unsupported URL scheme",
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        if (!strstr(log, expect[i])) {
            fprintf(stderr, "missing warning: %s\n", expect[i]);
            CHECK(strstr(log, expect[i]) != NULL);
        }
    }
    CHECK(strstr(log, "[indicators] warning:") != NULL);
    CHECK(strstr(log, ":15:") == NULL); /* duplicates are counted, not warned about */
    free(log);

    kg_indicator_set_finalize(c.set);
    CHECK_EQ_INT(kg_indicator_set_total(c.set), 3);
    const struct kg_indicator *ind = match_v4(c.set, "1.2.3.4");
    CHECK(ind && ind->line == 2 && strcmp(ind->source, "ok1") == 0); /* the first one is kept */
    CHECK(match_v4(c.set, "1.2.3.5") == NULL);
    ind = match_dom(c.set, "www.good.example");
    CHECK(ind && ind->line == 6);
    CHECK(kg_indicator_match_hash(c.set, KG_IND_JA3, "E7D705A3286E19EA42F587B344EE6865", 32, 0) != NULL);
    kg_indicator_set_free(c.set);
}

static void test_load_errors(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep = {1, 1, 1, 1, KG_IND_FMT_PLAIN};
    struct kg_err err = {{0}};

    /* A missing file names the file. */
    CHECK_EQ_INT(kg_indicator_set_load_file(s, fixture("does-not-exist.intel"), &rep, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, "does-not-exist.intel: cannot open") != NULL);
    CHECK_EQ_INT(rep.loaded + rep.bad_lines + rep.duplicates, 0);
    /* So does a directory. */
    CHECK_EQ_INT(kg_indicator_set_load_file(s, g_data_dir, NULL, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, g_data_dir) != NULL);

    /* Data before any #fields: file:line of the first data line. */
    CHECK_EQ_INT(kg_indicator_set_load_file(s, fixture("nofields.intel"), &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "nofields.intel:2: data line before any #fields header") != NULL);
    CHECK_EQ_INT(kg_indicator_set_total(s), 0);

    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"", "x.intel: no #fields header"},
        {"# only comments\n\n", "x.intel: no #fields header"},
        {"#fields\tindicator\tmeta.source\n", "x.intel:1: #fields header lacks the 'indicator_type' column"},
        {"#fields\tindicator_type\tindicator\tindicator\n",
         "x.intel:1: #fields lists column 'indicator' twice"},
        {"#fields indicator indicator_type\n", "x.intel:1: #fields header is not separated by tabs"},
        {"#fields\n", "x.intel:1: #fields header names no columns"},
        {"#fields\tindicator\t\tindicator_type\n", "x.intel:1: #fields column 2 has no name"},
        {"#separator \\xZZ\n", "x.intel:1: unusable #separator"},
        {"#fields\tindicator\tindicator_type\n1.1.1.1\tIntel::ADDR\n#fields\tfoo\n",
         "x.intel:3: #fields header lacks the 'indicator' column"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err.msg[0] = '\0';
        int rc = kg_indicator_set_load_buffer(s, "x.intel", cases[i].text, strlen(cases[i].text), NULL, &err);
        CHECK_EQ_INT(rc, KG_ERR_PARSE);
        if (!strstr(err.msg, cases[i].msg)) {
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err.msg, cases[i].msg);
            CHECK(strstr(err.msg, cases[i].msg) != NULL);
        }
    }

    /* Loading into a finalized set is refused. */
    kg_indicator_set_finalize(s);
    const char *ok = "#fields\tindicator\tindicator_type\n1.1.1.1\tIntel::ADDR\n";
    CHECK_EQ_INT(kg_indicator_set_load_buffer(s, "late.intel", ok, strlen(ok), NULL, &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_indicator_set_load_file(s, fixture("good.intel"), NULL, &err), KG_ERR_INVAL);
    kg_indicator_set_free(s);
    kg_indicator_set_free(NULL); /* a no-op */
}

static void test_load_variants(void)
{
    /* CRLF line ends, including the blank line. */
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    struct kg_err err = {{0}};
    CHECK_EQ_INT(kg_indicator_set_load_file(s, fixture("crlf.intel"), &rep, &err), 0);
    CHECK_EQ_INT(rep.loaded, 3);
    CHECK_EQ_INT(rep.bad_lines, 0);
    kg_indicator_set_finalize(s);
    const struct kg_indicator *ind = match_dom(s, "crlf.example");
    CHECK(ind && strcmp(ind->source, "crlf") == 0); /* no '\r' left on the last field */
    CHECK(match_url(s, "crlf.example", "/path") != NULL);
    CHECK(match_v4(s, "192.0.2.1") != NULL);
    kg_indicator_set_free(s);

    /* A byte order mark, columns in another order, a custom separator, a
     * non-meta column (ignored), whitespace-only lines, no final newline. */
    s = set_from("\xef\xbb\xbf#separator \\x2c\n"
                 "#fields,meta.source,indicator_type,extra,indicator\n"
                 "   \n"
                 "src1,Intel::DOMAIN,x,comma.example");
    CHECK_EQ_INT(kg_indicator_set_total(s), 1);
    ind = match_dom(s, "comma.example");
    CHECK(ind && strcmp(ind->source, "src1") == 0 && ind->nmeta == 0);
    kg_indicator_set_free(s);

    /* Severity outside 1..3 is ignored with a warning but the line loads;
     * a later #fields header redefines the columns. */
    s = set_from("#fields\tindicator\tindicator_type\tmeta.severity\tmeta.desc\n"
                 "sev.example\tIntel::DOMAIN\t7\td1\n"
                 "sev2.example\tIntel::DOMAIN\t3\t-\n"
                 "#fields\tindicator_type\tindicator\n"
                 "Intel::ADDR\t192.0.2.9\n");
    CHECK_EQ_INT(kg_indicator_set_total(s), 3);
    ind = match_dom(s, "sev.example");
    CHECK(ind && ind->severity == 0 && ind->nmeta == 1 && strcmp(meta(ind, "desc"), "d1") == 0);
    ind = match_dom(s, "sev2.example");
    CHECK(ind && ind->severity == 3 && ind->nmeta == 0 && ind->meta_values == NULL);
    CHECK(match_v4(s, "192.0.2.9") != NULL);
    kg_indicator_set_free(s);

    /* Meta values: repeated ones are shared, partial rows keep only what is present. */
    s = set_from("#fields\tindicator\tindicator_type\tmeta.a\tmeta.b\n"
                 "a.example\tIntel::DOMAIN\tsame\tb1\n"
                 "b.example\tIntel::DOMAIN\tsame\t-\n"
                 "c.example\tIntel::DOMAIN\t(empty)\tb3\n");
    const struct kg_indicator *a = match_dom(s, "a.example"), *b = match_dom(s, "b.example"),
                              *c = match_dom(s, "c.example");
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK_EQ_INT(a->nmeta, 2);
        CHECK_EQ_INT(b->nmeta, 1);
        CHECK_EQ_INT(c->nmeta, 1);
        CHECK_EQ_STR(b->meta_keys[0], "a");
        CHECK_EQ_STR(c->meta_keys[0], "b");
        CHECK_EQ_STR(c->meta_values[0], "b3");
        CHECK(a->meta_values[0] == b->meta_values[0]); /* stored once */
    }
    kg_indicator_set_free(s);
}

static void test_api_add(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err = {{0}};
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "192.0.2.1", "api", &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "192.0.2.1", "again", &err),
                 0); /* duplicate: kept first */
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "Example.COM", NULL, &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "192.0.2.300", "api", &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "invalid IP address") != NULL);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "", NULL, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "empty domain") != NULL);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "*.", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "a.*.example", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, "example.com:8080", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_URL, "http:///nohost", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_URL, "has space.example/x y", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, "192.0.2.0/", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, "192.0.2.0/-1", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, "2001:db8::/129", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "192.0.2.1/32", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "fe80::1%eth0", NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee686", NULL, &err),
                 KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_TYPE_COUNT, "x", NULL, &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, NULL, NULL, &err), KG_ERR_INVAL);
    char label64[80];
    memset(label64, 'a', 64);
    memcpy(label64 + 64, ".example", 9);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, label64, NULL, &err), KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_total(s), 2);
    kg_indicator_set_finalize(s);
    kg_indicator_set_finalize(s); /* idempotent */
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "192.0.2.2", NULL, &err), KG_ERR_INVAL);
    const struct kg_indicator *ind = match_v4(s, "192.0.2.1");
    CHECK(ind && strcmp(ind->source, "api") == 0 && strcmp(ind->file, "") == 0 && ind->line == 0);
    ind = match_dom(s, "example.com");
    CHECK(ind && strcmp(ind->source, "") == 0);
    kg_indicator_set_free(s);
}

/* --- matching ----------------------------------------------------------------------- */

static void test_addr_longest_prefix(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    static const char *const subnets[] = {
        "0.0.0.0/0",         "10.0.0.0/8", "10.1.0.0/16",   "10.1.2.0/24",     "10.1.2.128/25",
        "10.255.255.255/32", "::/0",       "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128",
    };
    for (size_t i = 0; i < sizeof(subnets) / sizeof(subnets[0]); i++)
        CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, subnets[i], NULL, &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "10.1.2.200", NULL, &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_ADDR, "2001:db8:1::2", NULL, &err), 0);
    /* Same /32 as the ADDR above: a duplicate across ADDR and SUBNET. */
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, "10.1.2.200/32", NULL, &err), 0);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SUBNET), 10);
    kg_indicator_set_finalize(s);

    CHECK_EQ_STR(value_of(match_v4(s, "192.0.2.1")), "0.0.0.0/0");
    CHECK_EQ_STR(value_of(match_v4(s, "0.0.0.0")), "0.0.0.0/0");
    CHECK_EQ_STR(value_of(match_v4(s, "255.255.255.255")), "0.0.0.0/0");
    CHECK_EQ_STR(value_of(match_v4(s, "10.9.9.9")), "10.0.0.0/8");
    CHECK_EQ_STR(value_of(match_v4(s, "10.1.9.9")), "10.1.0.0/16");
    CHECK_EQ_STR(value_of(match_v4(s, "10.1.2.127")), "10.1.2.0/24");
    CHECK_EQ_STR(value_of(match_v4(s, "10.1.2.128")), "10.1.2.128/25");
    CHECK_EQ_STR(value_of(match_v4(s, "10.1.2.200")), "10.1.2.200");
    CHECK_EQ_STR(value_of(match_v4(s, "10.1.2.201")), "10.1.2.128/25");
    CHECK_EQ_STR(value_of(match_v4(s, "10.255.255.255")), "10.255.255.255/32");
    CHECK_EQ_STR(value_of(match_v4(s, "10.255.255.254")), "10.0.0.0/8");
    CHECK_EQ_STR(value_of(match_v4(s, "11.0.0.0")), "0.0.0.0/0");

    CHECK_EQ_STR(value_of(match_v6(s, "::1")), "::/0");
    CHECK_EQ_STR(value_of(match_v6(s, "2001:db8:ffff::1")), "2001:db8::/32");
    CHECK_EQ_STR(value_of(match_v6(s, "2001:db8:1:ffff::")), "2001:db8:1::/48");
    CHECK_EQ_STR(value_of(match_v6(s, "2001:db8:1::1")), "2001:db8:1::1/128");
    CHECK_EQ_STR(value_of(match_v6(s, "2001:db8:1::2")), "2001:db8:1::2");
    CHECK_EQ_STR(value_of(match_v6(s, "2001:db8:1::3")), "2001:db8:1::/48");
    /* The IPv4 address 10.1.2.200 as the first bytes of an IPv6 one. */
    CHECK_EQ_STR(value_of(match_v6(s, "a01:2c8::")), "::/0");
    CHECK(kg_indicator_match_addr(s, 5, (const uint8_t *)"\0\0\0\0", 0) == NULL);
    CHECK(kg_indicator_match_addr(s, 4, NULL, 0) == NULL);
    CHECK(kg_indicator_match_addr(NULL, 4, (const uint8_t *)"\0\0\0\0", 0) == NULL);
    kg_indicator_set_free(s);

    /* IPv4 and IPv6 never see each other's prefixes, even /0. */
    s = set_from("#fields\tindicator\tindicator_type\n"
                 "0.0.0.0/0\tIntel::SUBNET\n"
                 "10.0.0.1\tIntel::ADDR\n");
    CHECK(match_v6(s, "::") == NULL);
    CHECK(match_v6(s, "a00:1::") == NULL);
    CHECK(match_v6(s, "::ffff:10.0.0.1") == NULL);
    CHECK_EQ_STR(value_of(match_v4(s, "10.0.0.1")), "10.0.0.1");
    kg_indicator_set_free(s);
    s = set_from("#fields\tindicator\tindicator_type\n"
                 "::/0\tIntel::SUBNET\n");
    CHECK(match_v4(s, "1.2.3.4") == NULL);
    CHECK_EQ_STR(value_of(match_v6(s, "ffff::1")), "::/0");
    kg_indicator_set_free(s);

    /* Empty set. */
    s = kg_indicator_set_new();
    kg_indicator_set_finalize(s);
    CHECK(match_v4(s, "1.2.3.4") == NULL);
    CHECK(match_v6(s, "::1") == NULL);
    CHECK(match_dom(s, "example.com") == NULL);
    CHECK(match_url(s, "example.com", "/") == NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", 32, 0) == NULL);
    CHECK_EQ_INT(kg_indicator_set_total(s), 0);
    kg_indicator_set_free(s);
}

static void test_domain_suffix(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "evil.com\tIntel::DOMAIN\n"
                                          "very.evil.com\tIntel::DOMAIN\n"
                                          "zip\tIntel::DOMAIN\n"
                                          "Mixed.Case.Example.\tIntel::DOMAIN\n");
    CHECK_EQ_STR(value_of(match_dom(s, "evil.com")), "evil.com");
    CHECK_EQ_STR(value_of(match_dom(s, "EVIL.COM.")), "evil.com");
    CHECK_EQ_STR(value_of(match_dom(s, "a.b.evil.com")), "evil.com");
    CHECK_EQ_STR(value_of(match_dom(s, "a.b.Evil.Com")), "evil.com");
    CHECK(match_dom(s, "notevil.com") == NULL);
    CHECK(match_dom(s, "evil.com.au") == NULL);
    CHECK(match_dom(s, "evil.co") == NULL);
    CHECK(match_dom(s, "com") == NULL);
    CHECK(match_dom(s, "vil.com") == NULL);
    /* Most specific wins. */
    CHECK_EQ_STR(value_of(match_dom(s, "very.evil.com")), "very.evil.com");
    CHECK_EQ_STR(value_of(match_dom(s, "x.VERY.evil.com")), "very.evil.com");
    CHECK_EQ_STR(value_of(match_dom(s, "notvery.evil.com")), "evil.com");
    /* An escaped dot (presentation form of a '.' inside a DNS label) is not a
     * label boundary: "x\\.very.evil.com" has the labels "x.very", "evil",
     * "com"; an escaped backslash before a dot leaves the dot a boundary. */
    CHECK_EQ_STR(value_of(match_dom(s, "x\\.very.evil.com")), "evil.com");
    CHECK(match_dom(s, "a.x\\.evil.com") == NULL);
    CHECK_EQ_STR(value_of(match_dom(s, "a\\\\.very.evil.com")), "very.evil.com");
    /* A single-label indicator covers a whole top-level domain. */
    CHECK_EQ_STR(value_of(match_dom(s, "zip")), "zip");
    CHECK_EQ_STR(value_of(match_dom(s, "download.zip")), "zip");
    CHECK_EQ_STR(value_of(match_dom(s, "a.b.c.ZIP.")), "zip");
    CHECK(match_dom(s, "zipper") == NULL);
    CHECK(match_dom(s, "zip.com") == NULL);
    /* The indicator's own case and trailing dot do not matter either. */
    CHECK_EQ_STR(value_of(match_dom(s, "www.mixed.case.example")), "Mixed.Case.Example.");
    /* Degenerate names. */
    CHECK(match_dom(s, "") == NULL);
    CHECK(match_dom(s, ".") == NULL);
    CHECK(match_dom(s, "..") == NULL);
    CHECK_EQ_STR(value_of(match_dom(s, "a..evil.com")), "evil.com");
    CHECK(match_dom(s, "evil.com..") == NULL);
    CHECK(kg_indicator_match_domain(s, NULL, 0, 0) == NULL);
    /* The length argument is honoured (no NUL needed). */
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "evil.comXYZ", 8, 0)), "evil.com");

    /* Very long names: up to 1024 bytes match, longer ones never do. */
    char name[1100];
    memset(name, 'a', sizeof(name));
    for (size_t i = 1; i < sizeof(name); i += 2)
        name[i] = '.';
    memcpy(name + 1024 - 9, ".evil.com", 9);
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, name, 1024, 0)), "evil.com");
    name[1024] = '.'; /* trailing dot: still 1024 */
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, name, 1025, 0)), "evil.com");
    memcpy(name + 1025 - 9, ".evil.com", 9);
    CHECK(kg_indicator_match_domain(s, name, 1025, 0) == NULL);
    /* A 1000-byte single label ending in the indicator is no label boundary. */
    memset(name, 'x', 1000);
    memcpy(name + 1000, "evil.com", 8);
    CHECK(kg_indicator_match_domain(s, name, 1008, 0) == NULL);
    name[999] = '.';
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, name, 1008, 0)), "evil.com");
    kg_indicator_set_free(s);

    /* The longest legal indicator (253 bytes, 63-byte labels). */
    char longdom[260];
    memset(longdom, 'b', 253);
    longdom[63] = longdom[127] = longdom[191] = '.';
    longdom[253] = '\0';
    s = kg_indicator_set_new();
    struct kg_err err;
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, longdom, NULL, &err), 0);
    longdom[253] = 'b';
    longdom[254] = '\0';
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, longdom, NULL, &err), KG_ERR_PARSE);
    longdom[253] = '\0';
    kg_indicator_set_finalize(s);
    CHECK(kg_indicator_match_domain(s, longdom, 253, 0) != NULL);
    char sub[300] = "x.";
    memcpy(sub + 2, longdom, 254);
    CHECK(kg_indicator_match_domain(s, sub, strlen(sub), 0) != NULL);
    CHECK(kg_indicator_match_domain(s, longdom + 64, 253 - 64, 0) == NULL);
    kg_indicator_set_free(s);
}

static void test_url(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "Evil.Example/Path/To?Q=1\tIntel::URL\n"
                                          "http://plain.example\tIntel::URL\n"
                                          "HTTPS://secure.example:80/login\tIntel::URL\n"
                                          "port.example:8080/x\tIntel::URL\n"
                                          "query.example?a=b\tIntel::URL\n"
                                          "[2001:db8::1]:80/v6\tIntel::URL\n"
                                          "redir.example/go?u=http://x.example/\tIntel::URL\n");
    /* Host case-insensitive, path exact. */
    CHECK(match_url(s, "evil.example", "/Path/To?Q=1") != NULL);
    CHECK(match_url(s, "EVIL.EXAMPLE", "/Path/To?Q=1") != NULL);
    CHECK(match_url(s, "evil.example:80", "/Path/To?Q=1") != NULL);
    CHECK(match_url(s, "evil.example", "/path/to?q=1") == NULL);
    CHECK(match_url(s, "evil.example", "/Path/To") == NULL);
    CHECK(match_url(s, "evil.example", "/Path/To?Q=1&r") == NULL);
    CHECK(match_url(s, "evil.example:8080", "/Path/To?Q=1") == NULL);
    CHECK(match_url(s, "www.evil.example", "/Path/To?Q=1") == NULL);
    /* No path means "/". */
    CHECK(match_url(s, "plain.example", "/") != NULL);
    CHECK(match_url(s, "plain.example", "") != NULL);
    CHECK(kg_indicator_match_url(s, "plain.example", 13, NULL, 0, 0) != NULL);
    CHECK(match_url(s, "plain.example", "/index.html") == NULL);
    /* Scheme in any case stripped; default port dropped on either side. */
    CHECK(match_url(s, "secure.example", "/login") != NULL);
    CHECK(match_url(s, "secure.example:80", "/login") != NULL);
    CHECK(match_url(s, "port.example:8080", "/x") != NULL);
    CHECK(match_url(s, "port.example", "/x") == NULL);
    CHECK(match_url(s, "query.example", "/?a=b") != NULL);
    CHECK(match_url(s, "query.example", "?a=b") != NULL);
    CHECK(match_url(s, "[2001:db8::1]", "/v6") != NULL);
    CHECK(match_url(s, "redir.example", "/go?u=http://x.example/") !=
          NULL); /* "://" in a query is no scheme */
    /* Absolute-form request target (through a proxy): its authority counts. */
    CHECK(match_url(s, "proxy.local:3128", "http://Evil.Example/Path/To?Q=1") != NULL);
    CHECK(match_url(s, "", "HTTP://plain.example") != NULL);
    CHECK(match_url(s, "evil.example", "http://other.example/Path/To?Q=1") == NULL);
    CHECK(match_url(s, "", "/Path/To?Q=1") == NULL);
    CHECK(kg_indicator_match_url(s, NULL, 0, "/", 1, 0) == NULL);
    /* A Host header beyond 1024 bytes never matches (and does not overflow). */
    char host[2000];
    memset(host, 'h', sizeof(host));
    CHECK(kg_indicator_match_url(s, host, sizeof(host), "/", 1, 0) == NULL);
    kg_indicator_set_free(s);
}

/* Percent-encoding normalised on both sides (RFC 3986 6.2.2): escapes of
 * unreserved characters decoded, the others' hex in upper case. */
static void test_url_percent(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "pct.example/%7Euser/a%2fb%41\tIntel::URL\n"
                                          "pct.example/dl/file.exe\tIntel::URL\n"
                                          "pct.example/odd%zz%4\tIntel::URL\n");
    CHECK_EQ_STR(value_of(match_url(s, "pct.example", "/~user/a%2FbA")), "pct.example/%7Euser/a%2fb%41");
    CHECK(match_url(s, "pct.example", "/%7euser/a%2fb%41") != NULL);
    CHECK(match_url(s, "pct.example", "/%7Eus%65r/a%2Fb%61") == NULL); /* %61 is 'a', not 'A' */
    CHECK(match_url(s, "pct.example", "/~user/a/bA") == NULL);         /* an escaped '/' is not a separator */
    CHECK(match_url(s, "pct.example", "/~user/a%2fba") == NULL);
    /* Evasion by escaping plain letters. */
    CHECK(match_url(s, "pct.example", "/%64%6C/%66ile%2Eexe") != NULL);
    CHECK(match_url(s, "pct.example", "/dl/file%2eexe") != NULL);
    /* A '%' without two hex digits stays as it is. */
    CHECK(match_url(s, "pct.example", "/odd%zz%4") != NULL);
    CHECK(match_url(s, "pct.example", "/odd%ZZ%4") == NULL);
    kg_indicator_set_free(s);
    /* Query-only target and escapes together. */
    s = set_from("#fields\tindicator\tindicator_type\nq.example/?id=%41\tIntel::URL\n");
    CHECK(match_url(s, "q.example", "?id=A") != NULL);
    CHECK(match_url(s, "q.example", "/?id=%41") != NULL);
    CHECK(match_url(s, "q.example", "/?id=%42") == NULL);
    kg_indicator_set_free(s);
}

/* "P*" matches the targets that start with P where P ends on a boundary:
 * P ends with '/', or the next character is '/' or '?', or the target is P
 * (docs/INDICATORS.md). */
static void test_url_prefix(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "http://kits.example/kits/*\tIntel::URL\n"
                                          "kits.example/dl*\tIntel::URL\n"
                                          "host.example*\tIntel::URL\n"
                                          "nest.example/*\tIntel::URL\n"
                                          "nest.example/a/*\tIntel::URL\n"
                                          "nest.example/a/b/x.exe\tIntel::URL\n"
                                          "nest.example/a/b/x.exe*\tIntel::URL\n"
                                          "Q.example/p.php?x=1*\tIntel::URL\n");
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), 8);
    const char *kits = "http://kits.example/kits/*";
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/kits/")), kits);
    CHECK_EQ_STR(value_of(match_url(s, "KITS.example:80", "/kits/x.exe")), kits);
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/kits/a/b?c=/d")), kits);
    CHECK_EQ_STR(value_of(match_url(s, "proxy:3128", "http://kits.example/kits/a")), kits);
    CHECK(match_url(s, "kits.example", "/kits") == NULL);
    CHECK(match_url(s, "kits.example", "/kitsx/a") == NULL);
    CHECK(match_url(s, "kits.example", "/other/kits/a") == NULL);
    CHECK(match_url(s, "kits.example:8080", "/kits/a") == NULL);
    CHECK(match_url(s, "www.kits.example", "/kits/a") == NULL);
    /* No '/' before the '*': the next character must be '/' or '?'. */
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/dl")), "kits.example/dl*");
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/dl/x")), "kits.example/dl*");
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/dl?x=1")), "kits.example/dl*");
    CHECK(match_url(s, "kits.example", "/dlx") == NULL);
    CHECK(match_url(s, "kits.example", "/dl.exe") == NULL);
    /* A whole host. */
    CHECK_EQ_STR(value_of(match_url(s, "host.example", "")), "host.example*");
    CHECK_EQ_STR(value_of(match_url(s, "host.example", "/anything/at/all?x")), "host.example*");
    CHECK_EQ_STR(value_of(match_url(s, "host.example", "?q")), "host.example*");
    /* The most specific wins: the exact URL, then the longest prefix. */
    CHECK_EQ_STR(value_of(match_url(s, "nest.example", "/a/b/x.exe")), "nest.example/a/b/x.exe");
    CHECK_EQ_STR(value_of(match_url(s, "nest.example", "/a/b/x.exe?v=2")), "nest.example/a/b/x.exe*");
    CHECK_EQ_STR(value_of(match_url(s, "nest.example", "/a/b/y")), "nest.example/a/*");
    CHECK_EQ_STR(value_of(match_url(s, "nest.example", "/a")), "nest.example/*");
    CHECK_EQ_STR(value_of(match_url(s, "nest.example", "/")), "nest.example/*");
    /* A prefix that ends inside the query. */
    CHECK_EQ_STR(value_of(match_url(s, "q.example", "/p.php?x=1")), "Q.example/p.php?x=1*");
    CHECK(match_url(s, "q.example", "/p.php?x=12") == NULL);
    CHECK(match_url(s, "q.example", "/p.php?x=1&y=2") == NULL);
    /* Percent-encoding normalised before the prefixes are taken. */
    CHECK_EQ_STR(value_of(match_url(s, "kits.example", "/%6bits/a")), kits);
    CHECK(match_url(s, "kits.example", "/kits%2Fa") == NULL);
    kg_indicator_set_free(s);

    /* Exact and prefix forms of one URL are two indicators; each form once. */
    s = set_from("#fields\tindicator\tindicator_type\n"
                 "dup.example/a/\tIntel::URL\n"
                 "dup.example/a/*\tIntel::URL\n"
                 "http://DUP.example/a/*\tIntel::URL\n");
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), 2);
    CHECK_EQ_STR(value_of(match_url(s, "dup.example", "/a/")), "dup.example/a/");
    CHECK_EQ_STR(value_of(match_url(s, "dup.example", "/a/b")), "dup.example/a/*");
    kg_indicator_set_free(s);
}

/* Reference for test_url_differential: a listed URL in normal form. */
struct url_ref {
    char key[96];
    bool prefix;
    char *value;
};

/* The value the most specific listed URL matching u (host + target, in
 * normal form) reports, or NULL. */
static const char *ref_url(const struct url_ref *r, size_t n, const char *u)
{
    size_t ul = strlen(u), best = 0;
    const char *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (!r[i].prefix && strcmp(r[i].key, u) == 0) return r[i].value;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(r[i].key);
        if (!r[i].prefix || pl > ul || memcmp(r[i].key, u, pl) != 0 || pl <= best) continue;
        if (pl == ul || r[i].key[pl - 1] == '/' || u[pl] == '/' || u[pl] == '?') {
            best = pl;
            found = r[i].value;
        }
    }
    return found;
}

/* Random URL sets and targets: single calls against the reference, and the
 * batch against single calls (deep paths overflow to single calls). */
static void test_url_differential(void)
{
    enum { NKEYS = 3000, NQ = 20000 };
    static const char *const hosts[] = {"a.example", "b.example", "c.example", "d.example"};
    struct url_ref *ref = calloc(NKEYS, sizeof(*ref));
    struct kg_buf text = {0};
    kg_buf_append_str(&text, "#fields\tindicator\tindicator_type\n");
    size_t n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        struct url_ref *r = &ref[n];
        int o = snprintf(r->key, sizeof(r->key), "%s/", hosts[rnd_below(4)]);
        for (uint32_t seg = rnd_below(i % 10 == 0 ? 14 : 4); seg > 0; seg--)
            o += snprintf(r->key + o, sizeof(r->key) - (size_t)o, "%c%c", 'a' + (char)rnd_below(3),
                          seg > 1 || rnd_below(2) ? '/' : 'x');
        if (rnd_below(5) == 0) o += snprintf(r->key + o, sizeof(r->key) - (size_t)o, "?q=%u", rnd_below(3));
        r->prefix = rnd_below(2);
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = ref[j].prefix == r->prefix && strcmp(ref[j].key, r->key) == 0;
        if (dup) continue;
        kg_buf_append_str(&text, r->key);
        kg_buf_append_str(&text, r->prefix ? "*\tIntel::URL\n" : "\tIntel::URL\n");
        char v[100];
        snprintf(v, sizeof(v), "%s%s", r->key, r->prefix ? "*" : "");
        r->value = strdup(v);
        n++;
    }
    struct kg_indicator_set *s = set_from(text.data);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), n);
    CHECK(match_url(s, "no.such.host", "/") == NULL);
    char(*q)[300] = calloc(NQ, sizeof(*q));
    struct kg_indicator_query *bq = calloc(NQ, sizeof(*bq));
    const struct kg_indicator **out = calloc(NQ, sizeof(*out));
    size_t wrong = 0, hits = 0, prefix_hits = 0, wrong_batch = 0;
    for (size_t i = 0; i < NQ; i++) {
        const char *host = hosts[rnd_below(4)];
        char *t = q[i];
        int o = 0;
        uint32_t segs = rnd_below(i % 50 == 0 ? 40 : 5); /* now and then deeper than a batch takes */
        t[o++] = '/';
        if (rnd_below(3) == 0) {
            /* A listed URL's host and path, and more. */
            const struct url_ref *r = &ref[rnd_below((uint32_t)n)];
            const char *path = strchr(r->key, '/') + 1, *qm = strchr(path, '?');
            size_t pl = qm ? (size_t)(qm - path) : strlen(path);
            host = hosts[r->key[0] - 'a'];
            memcpy(t + o, path, pl);
            o += (int)pl;
        }
        for (uint32_t seg = 0; seg < segs && o < 250; seg++)
            o += snprintf(t + o, 300 - (size_t)o, "%c%s", 'a' + (char)rnd_below(3),
                          seg + 1 < segs ? "/"
                          : rnd_below(2) ? "/"
                                         : "x");
        if (rnd_below(4) == 0) o += snprintf(t + o, 300 - (size_t)o, "?q=%u", rnd_below(3));
        t[o] = '\0';
        char u[400];
        snprintf(u, sizeof(u), "%s%s", host, t);
        const char *want = ref_url(ref, n, u);
        const struct kg_indicator *got = match_url(s, host, t);
        const char *gv = got ? got->value : NULL;
        hits += want != NULL;
        prefix_hits += want && want[strlen(want) - 1] == '*';
        if ((gv == NULL) != (want == NULL) || (gv && want && strcmp(gv, want) != 0)) {
            if (wrong++ < 5)
                fprintf(stderr, "url %s: got %s, want %s\n", u, value_of(got), want ? want : "(no match)");
        }
        bq[i] = (struct kg_indicator_query){
            .type = KG_IND_URL, .value = host, .len = strlen(host), .uri = t, .uri_len = (size_t)o};
    }
    kg_indicator_match_batch(s, bq, NQ, out, 0);
    for (size_t i = 0; i < NQ; i++)
        wrong_batch += out[i] != kg_indicator_match_url(s, bq[i].value, bq[i].len, q[i], bq[i].uri_len, 0);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(wrong_batch, 0);
    CHECK(hits > NQ / 4);
    CHECK(prefix_hits > NQ / 8); /* the test does exercise prefixes */

    /* Hostile targets to hosts with prefixes: any bytes, heavy in '/', '%'
     * and '?', up to past KG_IND_VALUE_MAX; batched and single answers
     * agree (and the sanitizers see every read). */
    enum { NB = 2000, TMAX = 9000 };
    char *tb = malloc((size_t)NB * TMAX);
    for (size_t i = 0; i < NB; i++) {
        char *t = tb + i * TMAX;
        size_t tl = rnd_below(i % 20 == 0 ? TMAX : 300);
        for (size_t c = 0; c < tl; c++) {
            uint32_t r = rnd_below(10);
            t[c] = r < 3 ? "/%?"[r] : r < 5 ? "abcf"[rnd_below(4)] : (char)rnd_below(256);
        }
        const char *host = hosts[rnd_below(4)];
        bq[i] = (struct kg_indicator_query){
            .type = KG_IND_URL, .value = host, .len = strlen(host), .uri = t, .uri_len = tl};
    }
    kg_indicator_match_batch(s, bq, NB, out, 0);
    size_t hostile_wrong = 0;
    for (size_t i = 0; i < NB; i++)
        hostile_wrong +=
            out[i] != kg_indicator_match_url(s, bq[i].value, bq[i].len, bq[i].uri, bq[i].uri_len, 0);
    CHECK_EQ_INT(hostile_wrong, 0);
    free(tb);
    for (size_t i = 0; i < n; i++)
        free(ref[i].value);
    free(ref);
    free(q);
    free(bq);
    free(out);
    kg_buf_free(&text);
    kg_indicator_set_free(s);
}

/* Hex decoding, every byte value in every position of a JA3: only the same
 * digit, in either case, matches (a byte wrongly taken for a digit would
 * decode to some nibble and could match). */
static void test_hash_hex_bytes(void)
{
    const char *base = "0123456789abcdef0123456789ABCDEF";
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    CHECK(kg_indicator_set_add(s, KG_IND_JA3, base, "t", &err) == 0);
    kg_indicator_set_finalize(s);
    size_t wrong = 0;
    for (int pos = 0; pos < 32; pos++) {
        for (int c = 0; c < 256; c++) {
            char q[33];
            memcpy(q, base, 33);
            q[pos] = (char)c;
            bool want = tolower(c) == tolower((unsigned char)base[pos]);
            bool got = kg_indicator_match_hash(s, KG_IND_JA3, q, 32, 0) != NULL;
            if (got != want && wrong++ < 5)
                fprintf(stderr, "JA3 with byte 0x%02x at %d: got %d\n", c, pos, got);
        }
    }
    CHECK_EQ_INT(wrong, 0);
    kg_indicator_set_free(s);
}

static void test_hash(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "00112233445566778899AABBCCDDEEFF00112233\tIntel::CERT_HASH\n"
                                          "aabbccddeeff00112233445566778899\tIntel::JA3\n"
                                          "aAbBcCdDeEfF00112233445566778899\tIntel::JA3\n");
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_JA3), 1); /* the second is a duplicate */
    const char *cert = "00112233445566778899aabbccddeeff00112233";
    CHECK(kg_indicator_match_hash(s, KG_IND_CERT_HASH, cert, 40, 0) != NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_CERT_HASH, "00112233445566778899AaBbCcDdEeFf00112233", 40, 0) !=
          NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_CERT_HASH, cert, 39, 0) == NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_CERT_HASH, "00112233445566778899aabbccddeeff00112234", 40, 0) ==
          NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_CERT_HASH, "g0112233445566778899aabbccddeeff00112233", 40, 0) ==
          NULL);
    /* Types are separate tables: a JA3 never matches as a certificate. */
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, cert, 32, 0) == NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, "AABBCCDDEEFF00112233445566778899", 32, 0) != NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_DOMAIN, "aabbccddeeff00112233445566778899", 32, 0) == NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, NULL, 32, 0) == NULL);
    kg_indicator_set_free(s);
}

/* --- randomised ---------------------------------------------------------------------- */

static void rand_hex(char *out, size_t digits)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < digits; i++)
        out[i] = hx[rnd() & 15];
    out[digits] = '\0';
}

static void rand_label(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('a' + rnd_below(26));
    out[n] = '\0';
}

/* Parses an ADDR or SUBNET indicator's value back into bytes and length. */
static bool ind_prefix(const struct kg_indicator *ind, int family, uint8_t *a, unsigned *plen)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", ind->value);
    char *slash = strchr(buf, '/');
    *plen = family == 4 ? 32 : 128;
    if (slash) {
        *slash = '\0';
        *plen = (unsigned)atoi(slash + 1);
    }
    return inet_pton(family == 4 ? AF_INET : AF_INET6, buf, a) == 1;
}

static bool prefix_contains(const uint8_t *net, unsigned plen, const uint8_t *a)
{
    for (unsigned b = 0; b < plen; b++)
        if (((net[b / 8] ^ a[b / 8]) >> (7 - b % 8)) & 1) return false;
    return true;
}

enum {
    N_V4 = 60000,
    N_V6 = 20000,
    N_NET4 = 20000,
    N_NET6 = 10000,
    N_DOM = 50000,
    N_URL = 20000,
    N_CERT = 10000,
    N_JA3 = 10000
};
#define N_TOTAL (N_V4 + N_V6 + N_NET4 + N_NET6 + N_DOM + N_URL + N_CERT + N_JA3)

struct gen {
    enum kg_ind_type type;
    char value[96];
    uint8_t addr[16];
    unsigned plen;
};

/* The normalised identity of a generated indicator, as a string: what the
 * set should consider "the same indicator". Computed independently of the
 * module (bit masking here, not its code). */
static void norm_key(const struct gen *x, char *out, size_t size)
{
    if (x->type == KG_IND_ADDR || x->type == KG_IND_SUBNET) {
        bool v6 = strchr(x->value, ':') != NULL;
        unsigned alen = v6 ? 16 : 4, plen = x->type == KG_IND_ADDR ? alen * 8 : x->plen;
        size_t k = (size_t)snprintf(out, size, "A%u/%u/", alen, plen);
        for (unsigned b = 0; b < alen; b++) {
            unsigned keep = plen >= (b + 1) * 8 ? 8 : plen > b * 8 ? plen - b * 8 : 0;
            uint8_t byte = (uint8_t)(x->addr[b] & (0xff00u >> keep));
            k += (size_t)snprintf(out + k, size - k, "%02x", byte);
        }
    } else {
        snprintf(out, size, "%d:%s", (int)x->type, x->value); /* generated in lower case */
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t expected_duplicates(const struct gen *g, size_t n)
{
    char **keys = calloc(n, sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(128);
        norm_key(&g[i], keys[i], 128);
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    size_t dups = 0;
    for (size_t i = 1; i < n; i++)
        dups += strcmp(keys[i - 1], keys[i]) == 0;
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return dups;
}

static void test_random_200k(void)
{
    struct gen *g = calloc(N_TOTAL, sizeof(*g));
    struct kg_buf feed;
    kg_buf_init(&feed);
    kg_buf_append_str(&feed, "#fields\tindicator\tindicator_type\tmeta.source\n");
    size_t k = 0;
    char l1[16], l2[16];
    for (int i = 0; i < N_V4; i++, k++) {
        /* Members live in 1.0.0.0-223.255.255.255; non-members are drawn from 240/4. */
        uint32_t v = 0x01000000u + rnd_below(0xdf000000u);
        g[k].type = KG_IND_ADDR;
        for (int b = 0; b < 4; b++)
            g[k].addr[b] = (uint8_t)(v >> (24 - 8 * b));
        inet_ntop(AF_INET, g[k].addr, g[k].value, sizeof(g[k].value));
    }
    for (int i = 0; i < N_V6; i++, k++) {
        g[k].type = KG_IND_ADDR;
        g[k].addr[0] = 0x20; /* 2000::/4 members; non-members from 3000::/4 */
        for (int b = 1; b < 16; b++)
            g[k].addr[b] = (uint8_t)rnd();
        inet_ntop(AF_INET6, g[k].addr, g[k].value, sizeof(g[k].value));
    }
    for (int i = 0; i < N_NET4; i++, k++) {
        uint32_t v = 0x01000000u + rnd_below(0xdf000000u);
        g[k].type = KG_IND_SUBNET;
        g[k].plen = 8 + rnd_below(24);
        for (int b = 0; b < 4; b++)
            g[k].addr[b] = (uint8_t)(v >> (24 - 8 * b));
        char ip[32];
        inet_ntop(AF_INET, g[k].addr, ip, sizeof(ip));
        snprintf(g[k].value, sizeof(g[k].value), "%s/%u", ip, g[k].plen);
    }
    for (int i = 0; i < N_NET6; i++, k++) {
        g[k].type = KG_IND_SUBNET;
        g[k].plen = 16 + rnd_below(112);
        g[k].addr[0] = 0x20;
        for (int b = 1; b < 16; b++)
            g[k].addr[b] = (uint8_t)rnd();
        char ip[64];
        inet_ntop(AF_INET6, g[k].addr, ip, sizeof(ip));
        snprintf(g[k].value, sizeof(g[k].value), "%s/%u", ip, g[k].plen);
    }
    for (int i = 0; i < N_DOM; i++, k++) {
        g[k].type = KG_IND_DOMAIN;
        rand_label(l1, 3 + rnd_below(10));
        rand_label(l2, 1 + rnd_below(6));
        snprintf(g[k].value, sizeof(g[k].value), "%s.%s.test", l1, l2);
    }
    for (int i = 0; i < N_URL; i++, k++) {
        g[k].type = KG_IND_URL;
        rand_label(l1, 4 + rnd_below(8));
        rand_hex(l2, 12);
        snprintf(g[k].value, sizeof(g[k].value), "%s.example/p/%s", l1, l2);
    }
    for (int i = 0; i < N_CERT; i++, k++) {
        g[k].type = KG_IND_CERT_HASH;
        rand_hex(g[k].value, 40);
    }
    for (int i = 0; i < N_JA3; i++, k++) {
        g[k].type = KG_IND_JA3;
        rand_hex(g[k].value, 32);
    }
    static const char *const zeek_type[] = {"Intel::ADDR", "Intel::SUBNET",    "Intel::DOMAIN",
                                            "Intel::URL",  "Intel::CERT_HASH", "Intel::JA3"};
    for (size_t i = 0; i < N_TOTAL; i++)
        kg_buf_printf(&feed, "%s\t%s\tr%zu\n", g[i].value, zeek_type[g[i].type], i);

    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    struct kg_err err = {{0}};
    uint64_t t0 = kg_monotonic_ns();
    CHECK_EQ_INT(kg_indicator_set_load_buffer(s, "random.intel", feed.data, feed.len, &rep, &err), 0);
    kg_indicator_set_finalize(s);
    uint64_t t1 = kg_monotonic_ns();
    CHECK_EQ_INT(rep.loaded + rep.duplicates, N_TOTAL);
    CHECK_EQ_INT(rep.bad_lines, 0);
    CHECK_EQ_INT(kg_indicator_set_total(s), rep.loaded);
    CHECK_EQ_INT(rep.duplicates, expected_duplicates(g, N_TOTAL));

    size_t failures = 0;
    char q[128];
    for (size_t i = 0; i < N_TOTAL; i++) {
        const struct gen *x = &g[i];
        const struct kg_indicator *ind = NULL;
        bool ok = false;
        uint8_t a[16];
        unsigned plen;
        int fam = x->type == KG_IND_ADDR || x->type == KG_IND_SUBNET ? (strchr(x->value, ':') ? 6 : 4) : 0;
        switch (x->type) {
        case KG_IND_ADDR:
            /* An address is the longest prefix there is: it matches itself. */
            ind = kg_indicator_match_addr(s, (uint8_t)fam, x->addr, 0);
            ok = ind && ind_prefix(ind, fam, a, &plen) && plen == (fam == 4 ? 32u : 128u) &&
                 memcmp(a, x->addr, fam == 4 ? 4 : 16) == 0;
            break;
        case KG_IND_SUBNET:
            /* The listed address is inside the subnet; whatever matches must
             * contain it and be at least as specific. */
            ind = kg_indicator_match_addr(s, (uint8_t)fam, x->addr, 0);
            ok =
                ind && ind_prefix(ind, fam, a, &plen) && plen >= x->plen && prefix_contains(a, plen, x->addr);
            break;
        case KG_IND_DOMAIN:
            /* Queried upper-cased, as a subdomain too. */
            for (size_t j = 0; x->value[j]; j++)
                q[j] = (char)((j & 1) && x->value[j] >= 'a' ? x->value[j] - 32 : x->value[j]);
            q[strlen(x->value)] = '\0';
            ind = kg_indicator_match_domain(s, q, strlen(q), 0);
            ok = ind && strcmp(ind->value, x->value) == 0;
            snprintf(q, sizeof(q), "sub.%s.", x->value);
            ind = kg_indicator_match_domain(s, q, strlen(q), 0);
            ok = ok && ind && strcmp(ind->value, x->value) == 0;
            break;
        case KG_IND_URL: {
            const char *slash = strchr(x->value, '/');
            ind = kg_indicator_match_url(s, x->value, (size_t)(slash - x->value), slash, strlen(slash), 0);
            ok = ind && strcmp(ind->value, x->value) == 0;
            break;
        }
        default:
            for (size_t j = 0; x->value[j]; j++)
                q[j] = (char)((x->value[j] >= 'a') ? x->value[j] - 32 : x->value[j]);
            ind = kg_indicator_match_hash(s, x->type, q, strlen(x->value), 0);
            ok = ind && strcasecmp(ind->value, x->value) == 0 && ind->type == x->type;
            break;
        }
        if (!ok && failures++ < 10) fprintf(stderr, "member %zu (%s) did not match\n", i, x->value);
    }
    CHECK_EQ_INT(failures, 0);

    /* kg_indicator_match_batch gives exactly the single lookups' answers,
     * for members and for mangled (mostly missing) values, in odd-sized
     * bursts so groups end anywhere. */
    {
        enum { B = 1000 };
        struct kg_indicator_query *bq = calloc(B, sizeof(*bq));
        const struct kg_indicator **bout = calloc(B, sizeof(*bout)), **want = calloc(B, sizeof(*want));
        char (*txt)[128] = calloc(B, sizeof(*txt));
        size_t batch_wrong = 0;
        for (int round = 0; round < 40; round++) {
            size_t n = 1 + rnd_below(B);
            for (size_t i = 0; i < n; i++) {
                const struct gen *x = &g[rnd_below(N_TOTAL)];
                struct kg_indicator_query *y = &bq[i];
                memset(y, 0, sizeof(*y));
                snprintf(txt[i], sizeof(txt[i]), "%s", x->value);
                if (rnd_below(2)) txt[i][rnd_below((uint32_t)strlen(txt[i]))] ^= 1;
                y->type = x->type == KG_IND_SUBNET ? KG_IND_ADDR : x->type;
                y->value = txt[i];
                y->len = strlen(txt[i]);
                if (y->type == KG_IND_ADDR) {
                    y->family = strchr(x->value, ':') ? 6 : 4;
                    y->value = x->addr;
                    want[i] = kg_indicator_match_addr(s, y->family, x->addr, 0);
                } else if (y->type == KG_IND_URL) {
                    char *slash = strchr(txt[i], '/');
                    y->len = slash ? (size_t)(slash - txt[i]) : strlen(txt[i]);
                    y->uri = slash ? slash : "";
                    y->uri_len = slash ? strlen(slash) : 0;
                    want[i] = kg_indicator_match_url(s, y->value, y->len, y->uri, y->uri_len, 0);
                } else if (y->type == KG_IND_DOMAIN) {
                    want[i] = kg_indicator_match_domain(s, y->value, y->len, 0);
                } else {
                    want[i] = kg_indicator_match_hash(s, y->type, y->value, y->len, 0);
                }
            }
            kg_indicator_match_batch(s, bq, n, bout, 0);
            for (size_t i = 0; i < n; i++)
                batch_wrong += bout[i] != want[i];
        }
        CHECK_EQ_INT(batch_wrong, 0);
        kg_indicator_match_batch(NULL, bq, 3, bout, 0);
        CHECK(bout[0] == NULL && bout[2] == NULL);
        free(bq);
        free(bout);
        free(want);
        free(txt);
    }

    /* Non-members: outside the generated ranges, names and paths. Built
     * first so that only the lookups are timed. */
    enum { NQ = 100000 };
    struct nonmember {
        uint8_t a4[4], a6[16];
        char dom[32], path[32], hex[41];
    } *nm = calloc(NQ, sizeof(*nm));
    for (int i = 0; i < NQ; i++) {
        nm[i].a4[0] = (uint8_t)(240 + rnd_below(16));
        for (int b = 1; b < 4; b++)
            nm[i].a4[b] = (uint8_t)rnd();
        nm[i].a6[0] = 0x30;
        for (int b = 1; b < 16; b++)
            nm[i].a6[b] = (uint8_t)rnd();
        rand_label(l1, 3 + rnd_below(10));
        snprintf(nm[i].dom, sizeof(nm[i].dom), "www.%s.nomatch", l1);
        rand_hex(l2, 12);
        snprintf(nm[i].path, sizeof(nm[i].path), "/q/%s", l2);
        rand_hex(nm[i].hex, 40);
    }
    /* Timed per kind: an address miss probes every prefix length present
     * (here 25 for IPv4 and ~113 for IPv6, far more than real feeds have). */
    size_t false_hits = 0;
    double ns[6];
    for (int kind = 0; kind < 6; kind++) {
        uint64_t t2 = kg_monotonic_ns();
        for (int i = 0; i < NQ; i++) {
            const struct nonmember *m = &nm[i];
            const struct kg_indicator *hit = NULL;
            switch (kind) {
            case 0:
                hit = kg_indicator_match_addr(s, 4, m->a4, 0);
                break;
            case 1:
                hit = kg_indicator_match_addr(s, 6, m->a6, 0);
                break;
            case 2:
                hit = kg_indicator_match_domain(s, m->dom, strlen(m->dom), 0);
                break;
            case 3:
                hit = kg_indicator_match_url(s, "example", 7, m->path, strlen(m->path), 0);
                break;
            case 4:
                hit = kg_indicator_match_hash(s, KG_IND_CERT_HASH, m->hex, 40, 0);
                break;
            default:
                hit = kg_indicator_match_hash(s, KG_IND_JA3, m->hex, 32, 0);
                break;
            }
            false_hits += hit != NULL;
        }
        ns[kind] = (double)(kg_monotonic_ns() - t2) / NQ;
    }
    CHECK_EQ_INT(false_hits, 0);
    printf("     200k indicators: load+finalize %.0f ms; ns per miss: IPv4 %.0f, IPv6 %.0f, domain %.0f, "
           "URL %.0f, cert %.0f, JA3 %.0f\n",
           (double)(t1 - t0) / 1e6, ns[0], ns[1], ns[2], ns[3], ns[4], ns[5]);
    free(nm);

    kg_indicator_set_free(s);
    kg_buf_free(&feed);
    free(g);
}

/* Longest-prefix match against a linear scan, with many nested prefixes. */
static void lpm_bruteforce(int family)
{
    const unsigned alen = family == 4 ? 4 : 16, bits = alen * 8;
    enum { NPFX = 3000, NQ = 20000 };
    struct gen *p = calloc(NPFX, sizeof(*p));
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    for (int i = 0; i < NPFX; i++) {
        /* Concentrated in one /8 (or /32) with lengths spread over the whole
         * range, so nesting is common. */
        p[i].addr[0] = 10;
        if (family == 6) {
            p[i].addr[0] = 0x20;
            p[i].addr[1] = 0x01;
            p[i].addr[2] = 0x0d;
            p[i].addr[3] = 0xb8;
        }
        for (unsigned b = family == 4 ? 1 : 4; b < alen; b++)
            p[i].addr[b] = (uint8_t)(rnd() & 0x0f);
        p[i].plen = i < 4 ? (unsigned)i : rnd_below(bits + 1);
        char ip[64];
        inet_ntop(family == 4 ? AF_INET : AF_INET6, p[i].addr, ip, sizeof(ip));
        snprintf(p[i].value, sizeof(p[i].value), "%s/%u", ip, p[i].plen);
        CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_SUBNET, p[i].value, NULL, &err), 0);
    }
    kg_indicator_set_finalize(s);
    size_t mismatches = 0;
    for (int i = 0; i < NQ; i++) {
        uint8_t a[16];
        memcpy(a, p[rnd_below(NPFX)].addr, alen);
        a[alen - 1 - rnd_below(2)] ^= (uint8_t)rnd(); /* near a listed prefix */
        if (i % 5 == 0) a[rnd_below(alen)] = (uint8_t)rnd();
        int best = -1;
        for (int j = 0; j < NPFX; j++)
            if (prefix_contains(p[j].addr, p[j].plen, a) && (best < 0 || p[j].plen > p[best].plen)) best = j;
        const struct kg_indicator *ind = kg_indicator_match_addr(s, (uint8_t)family, a, 0);
        uint8_t na[16];
        unsigned plen;
        bool ok = best < 0 ? ind == NULL
                           : ind && ind_prefix(ind, family, na, &plen) && plen == p[best].plen &&
                                 prefix_contains(na, plen, a);
        if (!ok && mismatches++ < 5)
            fprintf(stderr, "IPv%d LPM mismatch: want %s, got %s\n", family,
                    best < 0 ? "none" : p[best].value, value_of(ind));
    }
    CHECK_EQ_INT(mismatches, 0);
    kg_indicator_set_free(s);
    free(p);
}

static void test_lpm_bruteforce(void)
{
    lpm_bruteforce(4);
    lpm_bruteforce(6);
}

/* --- concurrent readers ---------------------------------------------------------------- */

struct reader_arg {
    const struct kg_indicator_set *s;
    const struct gen *g;
    size_t n;
    const struct kg_indicator *const *expect;
    size_t wrong;
};

static void *reader(void *p)
{
    struct reader_arg *r = p;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < r->n; i++) {
            const struct kg_indicator *ind =
                r->g[i].type == KG_IND_ADDR
                    ? kg_indicator_match_addr(r->s, 4, r->g[i].addr, 0)
                    : kg_indicator_match_domain(r->s, r->g[i].value, strlen(r->g[i].value), 0);
            r->wrong += ind != r->expect[i];
        }
    }
    return NULL;
}

static void test_concurrent_readers(void)
{
    enum { N = 5000, THREADS = 4 };
    struct gen *g = calloc(N, sizeof(*g));
    const struct kg_indicator **expect = calloc(N, sizeof(*expect));
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            g[i].type = KG_IND_ADDR;
            uint32_t v = (uint32_t)rnd();
            memcpy(g[i].addr, &v, 4);
            inet_ntop(AF_INET, g[i].addr, g[i].value, sizeof(g[i].value));
        } else {
            g[i].type = KG_IND_DOMAIN;
            rand_label(g[i].value, 12);
            memcpy(g[i].value + 12, ".test", 6);
        }
        if (i % 3) kg_indicator_set_add(s, g[i].type, g[i].value, NULL, &err); /* a third are misses */
    }
    kg_indicator_set_finalize(s);
    for (int i = 0; i < N; i++)
        expect[i] =
            g[i].type == KG_IND_ADDR ? kg_indicator_match_addr(s, 4, g[i].addr, 0) : match_dom(s, g[i].value);
    pthread_t th[THREADS];
    struct reader_arg ra[THREADS];
    for (int t = 0; t < THREADS; t++) {
        ra[t] = (struct reader_arg){.s = s, .g = g, .n = N, .expect = expect};
        pthread_create(&th[t], NULL, reader, &ra[t]);
    }
    size_t wrong = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        wrong += ra[t].wrong;
    }
    CHECK_EQ_INT(wrong, 0);
    kg_indicator_set_free(s);
    free(expect);
    free(g);
}

/* --- new types ------------------------------------------------------------------------ */

static const struct kg_indicator *match_h(const struct kg_indicator_set *s, enum kg_ind_type t, const char *v)
{
    return kg_indicator_match_hash(s, t, v, strlen(v), 0);
}

static void test_new_types(void)
{
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_JA4), "JA4");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_FILE_HASH), "FILE_HASH");
    CHECK_EQ_STR(kg_ind_type_name(KG_IND_SOFTWARE), "SOFTWARE");
    /* The enum keeps its old values; the new types come after JA3. */
    CHECK_EQ_INT(KG_IND_JA3, 5);
    CHECK_EQ_INT(KG_IND_JA4, 6);
    CHECK_EQ_INT(KG_IND_SOFTWARE, 8);

    struct kg_indicator_set *s = set_from(
        "#fields\tindicator\tindicator_type\n"
        "T13D1516H2_8DAAF6152771_E5627EFA2AB1\tIntel::JA4\n"
        "d41d8cd98f00b204e9800998ecf8427e\tIntel::FILE_HASH\n"
        "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709\tIntel::FILE_HASH\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\tIntel::FILE_HASH\n"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) EvilBot/2\tIntel::SOFTWARE\n"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\tIntel::CERT_HASH\n"
        "d41d8cd98f00b204e9800998ecf8427e\tIntel::JA3\n");
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_JA4), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_FILE_HASH), 3);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SOFTWARE), 1);
    /* JA4: case-insensitive, exact otherwise. */
    CHECK(match_h(s, KG_IND_JA4, "t13d1516h2_8daaf6152771_e5627efa2ab1") != NULL);
    CHECK(match_h(s, KG_IND_JA4, "t13d1516h2_8daaf6152771_e5627efa2ab2") == NULL);
    CHECK(match_h(s, KG_IND_JA4, "t13d1516h2_8daaf6152771") == NULL);
    /* FILE_HASH: MD5, SHA1 and SHA256 in one table, never confused with JA3. */
    const struct kg_indicator *ind = match_h(s, KG_IND_FILE_HASH, "D41D8CD98F00B204E9800998ECF8427E");
    CHECK(ind && ind->type == KG_IND_FILE_HASH);
    ind = match_h(s, KG_IND_JA3, "d41d8cd98f00b204e9800998ecf8427e");
    CHECK(ind && ind->type == KG_IND_JA3);
    CHECK(match_h(s, KG_IND_FILE_HASH, "da39a3ee5e6b4b0d3255bfef95601890afd80709") != NULL);
    CHECK(match_h(s, KG_IND_FILE_HASH, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") != NULL);
    CHECK(match_h(s, KG_IND_FILE_HASH, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85") == NULL);
    CHECK(match_h(s, KG_IND_FILE_HASH, "da39a3ee5e6b4b0d3255bfef95601890afd8070") == NULL);
    /* CERT_HASH may be a SHA256. */
    CHECK(match_h(s, KG_IND_CERT_HASH, "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF") != NULL);
    /* SOFTWARE: byte for byte, case-sensitive, blanks around ignored. */
    const char *ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) EvilBot/2";
    CHECK(kg_indicator_match_software(s, ua, strlen(ua), 0) != NULL);
    const char *padded = "  Mozilla/5.0 (Windows NT 10.0; Win64; x64) EvilBot/2\t";
    CHECK(kg_indicator_match_software(s, padded, strlen(padded), 0) != NULL);
    CHECK(kg_indicator_match_software(s, "mozilla/5.0 (Windows NT 10.0; Win64; x64) EvilBot/2", strlen(ua), 0) == NULL);
    CHECK(kg_indicator_match_software(s, ua, strlen(ua) - 1, 0) == NULL);
    CHECK(kg_indicator_match_software(s, NULL, 0, 0) == NULL);
    CHECK(kg_indicator_match_software(s, "   ", 3, 0) == NULL);
    /* Types that are not hashes are refused by match_hash. */
    CHECK(match_h(s, KG_IND_SOFTWARE, ua) == NULL);
    CHECK(match_h(s, KG_IND_TYPE_COUNT, "x") == NULL);
    kg_indicator_set_free(s);

    /* Validation of the new types. */
    s = kg_indicator_set_new();
    struct kg_err err;
    static const struct {
        enum kg_ind_type t;
        const char *v, *msg;
    } bad[] = {
        {KG_IND_JA4, "t13d1516h2_8daaf6152771_e5627efa2ab", "not a JA4 fingerprint"},
        {KG_IND_JA4, "x13d1516h2_8daaf6152771_e5627efa2ab1", "not a JA4 fingerprint"},
        {KG_IND_JA4, "t13x1516h2_8daaf6152771_e5627efa2ab1", "not a JA4 fingerprint"},
        {KG_IND_JA4, "t13d15a6h2_8daaf6152771_e5627efa2ab1", "not a JA4 fingerprint"},
        {KG_IND_JA4, "t13d1516h2_8daaf615277g_e5627efa2ab1", "not a JA4 fingerprint"},
        {KG_IND_JA4, "t13d1516h2-8daaf6152771-e5627efa2ab1", "not a JA4 fingerprint"},
        {KG_IND_FILE_HASH, "abcd", "32, 40 or 64 hex digits"},
        {KG_IND_FILE_HASH, "z41d8cd98f00b204e9800998ecf8427e", "non-hex"},
        {KG_IND_CERT_HASH, "d41d8cd98f00b204e9800998ecf8427e", "40 or 64 hex digits"},
        {KG_IND_SOFTWARE, "", "empty User-Agent"},
        {KG_IND_SOFTWARE, " padded", "blanks around"},
        {KG_IND_SOFTWARE, "line\nbreak", "invalid character 0x0a"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        CHECK_EQ_INT(kg_indicator_set_add(s, bad[i].t, bad[i].v, NULL, &err), KG_ERR_PARSE);
        if (!strstr(err.msg, bad[i].msg)) fprintf(stderr, "case %zu: got \"%s\"\n", i, err.msg);
        CHECK(strstr(err.msg, bad[i].msg) != NULL);
    }
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_JA4, "q12i0000  _000000000000_000000000000", NULL, &err),
                 KG_ERR_PARSE);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_JA4, "d1di020300_000000000000_000000000000", NULL, &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_CERT_HASH, "A9:F0:C1:D2:E3:F4:05:16:27:38:49:5A:6B:7C:8D:9E:0F:1A:2B:3C",
                                      NULL, &err),
                 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_CERT_HASH, "A9:F0:C1", NULL, &err), KG_ERR_PARSE);
    kg_indicator_set_finalize(s);
    CHECK(match_h(s, KG_IND_CERT_HASH, "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c") != NULL);
    CHECK(match_h(s, KG_IND_JA4, "D1DI020300_000000000000_000000000000") != NULL);
    kg_indicator_set_free(s);
}

/* --- validity ------------------------------------------------------------------------- */

#define T_2024 1704067200000000ull /* 2024-01-01T00:00:00Z in microseconds */
#define DAY_US 86400000000ull

static int add_window(struct kg_indicator_set *s, enum kg_ind_type t, const char *v, uint64_t from, uint64_t until)
{
    struct kg_err err;
    struct kg_indicator_spec spec = {.type = t, .value = v, .valid_from_us = from, .valid_until_us = until};
    int rc = kg_indicator_set_add_spec(s, &spec, &err);
    if (rc) fprintf(stderr, "add %s: %s\n", v, err.msg);
    return rc;
}

static void test_validity(void)
{
    const uint64_t now = T_2024 + 10 * DAY_US, past = T_2024, future = T_2024 + 100 * DAY_US;
    struct kg_indicator_set *s = kg_indicator_set_new();
    /* A valid parent domain, an expired specific one, a not-yet-valid one. */
    CHECK_EQ_INT(add_window(s, KG_IND_DOMAIN, "evil.example", 0, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_DOMAIN, "cdn.evil.example", past, past + DAY_US), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_DOMAIN, "soon.evil.example", future, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_DOMAIN, "gone.example", 0, past + DAY_US), 0);
    /* Addresses: /8 always, /16 expired, /24 valid, /32 expired; /25-/31 tables too. */
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "10.0.0.0/8", 0, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "10.1.0.0/16", past, past + DAY_US), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "10.1.2.0/24", past, future), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_ADDR, "10.1.2.3", 0, past + DAY_US), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "10.1.2.128/25", future, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "10.1.2.192/26", past, future), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SUBNET, "2001:db8::/32", 0, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_ADDR, "2001:db8::1", 0, past + DAY_US), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_URL, "old.example/x", 0, past + DAY_US), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", future, 0), 0);
    CHECK_EQ_INT(add_window(s, KG_IND_SOFTWARE, "OldBot/1", 0, past + DAY_US), 0);
    /* An empty window is refused. */
    struct kg_err err;
    struct kg_indicator_spec spec = {.type = KG_IND_DOMAIN, .value = "x.example", .valid_from_us = now,
                                     .valid_until_us = now};
    CHECK_EQ_INT(kg_indicator_set_add_spec(s, &spec, &err), KG_ERR_INVAL);
    CHECK(strstr(err.msg, "validity window is empty") != NULL);
    kg_indicator_set_finalize(s);

    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "a.cdn.evil.example", 18, now)), "evil.example");
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "a.cdn.evil.example", 18, past + 1)), "cdn.evil.example");
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "soon.evil.example", 17, now)), "evil.example");
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "soon.evil.example", 17, future)), "soon.evil.example");
    CHECK(kg_indicator_match_domain(s, "gone.example", 12, now) == NULL);
    CHECK(kg_indicator_match_domain(s, "gone.example", 12, past) != NULL);
    /* now_us = 0: no check. */
    CHECK_EQ_STR(value_of(kg_indicator_match_domain(s, "a.cdn.evil.example", 18, 0)), "cdn.evil.example");
    CHECK(kg_indicator_match_domain(s, "gone.example", 12, 0) != NULL);

    uint8_t a[16];
    inet_pton(AF_INET, "10.1.2.3", a);
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, now)), "10.1.2.0/24");
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, past)), "10.1.2.3");
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, 0)), "10.1.2.3");
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, future)), "10.0.0.0/8"); /* /24 ended */
    inet_pton(AF_INET, "10.1.9.9", a);
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, now)), "10.0.0.0/8"); /* /16 expired */
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, past)), "10.1.0.0/16");
    inet_pton(AF_INET, "10.1.2.130", a);
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, now)), "10.1.2.0/24"); /* /25 not yet */
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, future)), "10.1.2.128/25");
    inet_pton(AF_INET, "10.1.2.200", a);
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, now)), "10.1.2.192/26");
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, future)), "10.1.2.128/25");
    inet_pton(AF_INET6, "2001:db8::1", a);
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 6, a, now)), "2001:db8::/32");
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 6, a, past)), "2001:db8::1");

    CHECK(kg_indicator_match_url(s, "old.example", 11, "/x", 2, now) == NULL);
    CHECK(kg_indicator_match_url(s, "old.example", 11, "/x", 2, past) != NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", 32, now) == NULL);
    CHECK(kg_indicator_match_hash(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865", 32, future) != NULL);
    CHECK(kg_indicator_match_software(s, "OldBot/1", 8, now) == NULL);
    CHECK(kg_indicator_match_software(s, "OldBot/1", 8, past) != NULL);
    /* valid_until is exclusive. */
    CHECK(kg_indicator_match_software(s, "OldBot/1", 8, past + DAY_US) == NULL);
    CHECK(kg_indicator_match_software(s, "OldBot/1", 8, past + DAY_US - 1) != NULL);
    /* Invalid now: cdn, soon, gone, /16, 10.1.2.3, /25, 2001:db8::1, URL, JA3, SOFTWARE. */
    CHECK_EQ_INT(kg_indicator_set_count_invalid(s, now), 10);
    kg_indicator_set_free(s);

    /* Zeek feeds carry windows in meta.valid_from / meta.valid_until. */
    s = kg_indicator_set_new();
    struct load_call c = {.set = s};
    const char *text = "#fields\tindicator\tindicator_type\tmeta.valid_from\tmeta.valid_until\n"
                       "z1.example\tIntel::DOMAIN\t2024-01-01T00:00:00Z\t2024-01-02T00:00:00+00:00\n"
                       "z2.example\tIntel::DOMAIN\t1704067200\t-\n"
                       "z3.example\tIntel::DOMAIN\tlast week\t-\n"
                       "z4.example\tIntel::DOMAIN\t2024-01-02\t2024-01-01\n";
    CHECK_EQ_INT(kg_indicator_set_load_buffer(s, "win.intel", text, strlen(text), &c.rep, &err), 0);
    CHECK_EQ_INT(c.rep.loaded, 2);
    CHECK_EQ_INT(c.rep.bad_lines, 2);
    kg_indicator_set_finalize(s);
    const struct kg_indicator *ind = kg_indicator_match_domain(s, "z1.example", 10, 0);
    uint64_t from = 1, until = 1;
    kg_indicator_validity(s, ind, &from, &until);
    CHECK(ind && from == T_2024 && until == T_2024 + DAY_US);
    CHECK(kg_indicator_match_domain(s, "z1.example", 10, now) == NULL);
    ind = kg_indicator_match_domain(s, "z2.example", 10, now);
    kg_indicator_validity(s, ind, &from, &until);
    CHECK(ind && from == T_2024 && until == 0);
    kg_indicator_set_free(s);
}

/* --- formats ------------------------------------------------------------------------- */

static void test_format_names(void)
{
    const char *file;
    CHECK_EQ_INT(kg_ind_format_split("stix:feeds/a.json", &file), KG_IND_FMT_STIX);
    CHECK_EQ_STR(file, "feeds/a.json");
    CHECK_EQ_INT(kg_ind_format_split("dataset-sha256:/x/y", &file), KG_IND_FMT_DATASET_SHA256);
    CHECK_EQ_STR(file, "/x/y");
    CHECK_EQ_INT(kg_ind_format_split("sslbl-cert:c.csv", &file), KG_IND_FMT_SSLBL_CERT);
    CHECK_EQ_INT(kg_ind_format_split("./zeek:x", &file), KG_IND_FMT_AUTO);
    CHECK_EQ_STR(file, "./zeek:x");
    CHECK_EQ_INT(kg_ind_format_split("bogus:x", &file), KG_IND_FMT_AUTO);
    CHECK_EQ_STR(file, "bogus:x");
    CHECK_EQ_INT(kg_ind_format_split("plain", &file), KG_IND_FMT_AUTO);
    CHECK_EQ_STR(kg_ind_format_name(KG_IND_FMT_DATASET_STRING), "dataset-string");
    CHECK_EQ_STR(kg_ind_format_name(KG_IND_FMT_AUTO), "auto");
    CHECK_EQ_STR(kg_ind_format_name(KG_IND_FMT_COUNT), "unknown");
}

static int load_text(const char *name, const char *text, struct kg_indicator_load_report *rep, struct kg_err *err)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    int rc = kg_indicator_set_load_buffer(s, name, text, strlen(text), rep, err);
    kg_indicator_set_free(s);
    return rc;
}

static void test_detection(void)
{
    enum kg_log_level old = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    static const struct {
        const char *name, *text;
        enum kg_ind_format fmt;
        uint64_t loaded;
    } cases[] = {
        {"a", "#fields\tindicator\tindicator_type\n1.1.1.1\tIntel::ADDR\n", KG_IND_FMT_ZEEK, 1},
        {"a", "# intel\n#separator \\x09\n#fields\tindicator\tindicator_type\n", KG_IND_FMT_ZEEK, 0},
        {"a", "\n  {\"type\":\"bundle\",\"objects\":[]}", KG_IND_FMT_STIX, 0},
        {"a", "\xef\xbb\xbfuuid,type,value,category,to_ids\nu,domain,x.example,c,1\n", KG_IND_FMT_MISP, 1},
        {"a", "# ja3_md5,Firstseen,Lastseen,Listingreason\n", KG_IND_FMT_SSLBL_JA3, 0},
        {"a", "b386946a5a44d1ddcc843bc75336dfce,2017-07-14 18:08:15,2019-07-27 20:42:54,Dridex\n",
         KG_IND_FMT_SSLBL_JA3, 1},
        {"a", "2023-01-01 10:00:00,de1a8f3c2b4d5e6f708192a3b4c5d6e7f8091a2b,AsyncRAT C&C\n",
         KG_IND_FMT_SSLBL_CERT, 1},
        {"a", "# comment\n\nevil.example\n1.2.3.4\n", KG_IND_FMT_PLAIN, 2},
        {"a.txt", "", KG_IND_FMT_PLAIN, 0},
        {"a.txt", "# nothing listed today\n", KG_IND_FMT_PLAIN, 0},
        {"d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427e\n", KG_IND_FMT_PLAIN, 1},
        {"plain:x.intel", "#fields are not a header here\nevil.example\n", KG_IND_FMT_PLAIN, 1},
        {"dataset-md5:x", "d41d8cd98f00b204e9800998ecf8427e\n", KG_IND_FMT_DATASET_MD5, 1},
        {"zeek:x", "#fields\tindicator\tindicator_type\n", KG_IND_FMT_ZEEK, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kg_indicator_load_report rep;
        struct kg_err err = {{0}};
        int rc = load_text(cases[i].name, cases[i].text, &rep, &err);
        if (rc != 0 || rep.format != cases[i].fmt || rep.loaded != cases[i].loaded)
            fprintf(stderr, "detection case %zu: rc %d (%s), format %s, loaded %llu\n", i, rc, err.msg,
                    kg_ind_format_name(rep.format), (unsigned long long)rep.loaded);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(rep.format, cases[i].fmt);
        CHECK_EQ_INT(rep.loaded, cases[i].loaded);
    }
    /* Inconclusive content goes by name: ".intel" is Zeek, which needs a header. */
    struct kg_indicator_load_report rep;
    struct kg_err err = {{0}};
    CHECK_EQ_INT(load_text("x.intel", "", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "no #fields header") != NULL);
    /* A headerless Zeek file is still recognised as Zeek (and refused as such). */
    CHECK_EQ_INT(load_text("x", "1.2.3.4\tIntel::ADDR\tsrc\n", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "x:1: data line before any #fields header") != NULL);
    /* Explicit formats that need a header say so. */
    CHECK_EQ_INT(load_text("misp:m.csv", "", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "m.csv: no MISP CSV header row") != NULL);
    CHECK_EQ_INT(load_text("misp:m.csv", "a,b,value\n", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "m.csv:1: MISP CSV header lacks the 'type' column") != NULL);
    CHECK_EQ_INT(load_text("stix:s.json", "{\"type\":\"bundle\",", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "s.json:1:") != NULL && strstr(err.msg, "invalid JSON") != NULL);
    CHECK_EQ_INT(load_text("s.json", "{\"type\":\"indicator\"}", &rep, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "s.json: not a STIX bundle") != NULL);
    CHECK_EQ_INT(load_text("stix:s.json", "", &rep, &err), KG_ERR_PARSE);
    kg_log_set_level(old);
}

/* Loads a fixture (with an optional format prefix) capturing the log. */
static char *load_fixture(const char *prefix, const char *name, struct load_call *c)
{
    static char path[1400];
    snprintf(path, sizeof(path), "%s%s", prefix, fixture(name));
    c->path = path;
    c->set = kg_indicator_set_new();
    return capture_stderr(do_load, c);
}

static void expect_log(const char *log, const char *const *expect, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strstr(log, expect[i])) {
            fprintf(stderr, "missing warning: %s\n", expect[i]);
            CHECK(strstr(log, expect[i]) != NULL);
        }
    }
}

static void test_plain(void)
{
    struct load_call c = {0};
    char *log = load_fixture("", "plain.txt", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.format, KG_IND_FMT_PLAIN);
    CHECK_EQ_INT(c.rep.loaded, 15);
    CHECK_EQ_INT(c.rep.bad_lines, 4);
    CHECK_EQ_INT(c.rep.duplicates, 1);
    static const char *const expect[] = {
        "plain.txt:18: ADDR '1.2.3.256': invalid IP address; line skipped",
        "plain.txt:19: unexpected text after the value: 'domain.example'",
        "plain.txt:20: URL 'ftp://files.example/x': unsupported URL scheme",
        "plain.txt:21: ADDR 'abc:def': invalid IP address",
    };
    expect_log(log, expect, sizeof(expect) / sizeof(expect[0]));
    free(log);
    struct kg_indicator_set *s = c.set;
    kg_indicator_set_finalize(s);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_ADDR), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SUBNET), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_DOMAIN), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), 2);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_FILE_HASH), 3);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_JA3), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_JA4), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_CERT_HASH), 1);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SOFTWARE), 1);
    const struct kg_indicator *ind = match_v4(s, "203.0.113.9");
    CHECK(ind && strcmp(ind->desc, "SBL123456") == 0 && strcmp(ind->source, "plain") == 0 && ind->line == 4);
    ind = match_dom(s, "www.hosts.example");
    CHECK(ind && strcmp(ind->value, "hosts.example") == 0 && strcmp(ind->desc, "hosts-file line") == 0);
    CHECK(match_dom(s, "plain.example.com") != NULL);
    CHECK(match_v6(s, "2001:db8:beef:1::1") != NULL);
    CHECK(match_url(s, "plain-url.example", "/dl/payload.bin") != NULL);
    CHECK(match_url(s, "plain-path.example", "/login.php") != NULL);
    CHECK(match_h(s, KG_IND_JA3, "e7d705a3286e19ea42f587b344ee6865") != NULL);
    CHECK(match_h(s, KG_IND_JA3, "d41d8cd98f00b204e9800998ecf8427e") == NULL); /* a 32-hex line is an MD5 */
    CHECK(match_h(s, KG_IND_CERT_HASH, "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c") != NULL);
    CHECK(match_h(s, KG_IND_JA4, "t13d1516h2_8daaf6152771_e5627efa2ab1") != NULL);
    const char *ua = "Mozilla/5.0 (compatible; EvilBot/1.0)";
    CHECK(kg_indicator_match_software(s, ua, strlen(ua), 0) != NULL);
    kg_indicator_set_free(s);
}

/* Plain lists: an address followed by "/" and a length is a network; by
 * "/" and anything else, a URL on that address (the shape real request
 * URLs have: "192.168.13.31:8080/log4shell/login"). */
static void test_plain_url_shapes(void)
{
    struct kg_indicator_set *s = set_from("192.0.2.7/kit/x.php\n"
                                          "192.168.13.31:8080/log4shell/login\n"
                                          "198.51.100.0/24\n"
                                          "10.0.0.1/\n"
                                          "2001:db8::/48\n"
                                          "[2001:db8::5]:8080/a\n"
                                          "203.0.113.5/dir/*\n");
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_URL), 5);
    CHECK_EQ_INT(kg_indicator_set_count(s, KG_IND_SUBNET), 2);
    CHECK(match_url(s, "192.0.2.7", "/kit/x.php") != NULL);
    CHECK(match_url(s, "192.168.13.31:8080", "/log4shell/login") != NULL);
    CHECK(match_url(s, "10.0.0.1", "/") != NULL);
    CHECK(match_url(s, "[2001:db8::5]:8080", "/a") != NULL);
    CHECK(match_url(s, "203.0.113.5", "/dir/a?b") != NULL);
    CHECK(match_v4(s, "198.51.100.77") != NULL);
    kg_indicator_set_free(s);
}

static void test_stix(void)
{
    struct load_call c = {0};
    char *log = load_fixture("", "stix_bundle.json", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.format, KG_IND_FMT_STIX);
    CHECK_EQ_INT(c.rep.loaded, 8);
    CHECK_EQ_INT(c.rep.bad_lines, 6);
    CHECK_EQ_INT(c.rep.skipped, 4);
    static const char *const expect[] = {
        "stix_bundle.json:7: indicator--5: pattern",
        "AND is not supported",
        "stix_bundle.json:8: indicator--6: pattern [process:name = 'evil.exe']: unsupported object path "
        "'process:name'",
        "stix_bundle.json:9: indicator--7: pattern_type 'sigma' is not supported",
        "stix_bundle.json:10: indicator--8: pattern [domain-name:value LIKE '%.example']: unsupported "
        "comparison operator 'LIKE'",
        "stix_bundle.json:14: indicator--10: timestamp 'yesterday' is not RFC 3339",
        "stix_bundle.json:15: ADDR '198.51.100.256': invalid IP address",
    };
    expect_log(log, expect, sizeof(expect) / sizeof(expect[0]));
    free(log);
    struct kg_indicator_set *s = c.set;
    kg_indicator_set_finalize(s);
    const uint64_t now = T_2024 + DAY_US;
    const struct kg_indicator *ind = match_v4(s, "198.51.100.1");
    CHECK(ind != NULL);
    if (ind) {
        CHECK_EQ_STR(ind->source, "National CERT");
        CHECK_EQ_STR(ind->feed_id, "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade");
        CHECK_EQ_STR(ind->desc, "C2 server");
        CHECK_EQ_STR(meta(ind, "labels"), "c2,emotet");
        CHECK_EQ_STR(meta(ind, "confidence"), "85");
        uint64_t from = 1, until = 1;
        kg_indicator_validity(s, ind, &from, &until);
        CHECK_EQ_INT(from, T_2024);
        CHECK_EQ_INT(until, 0);
        CHECK_EQ_INT(ind->line, 2);
    }
    /* OR'd comparisons: one indicator each, sharing the object's id. */
    ind = kg_indicator_match_domain(s, "a.stix-phish.example", 20, now);
    CHECK(ind && strcmp(ind->feed_id, "indicator--1") == 0 && strcmp(ind->source, "stix_bundle") == 0);
    CHECK(kg_indicator_match_url(s, "stix-phish.example", 18, "/login", 6, now) != NULL);
    CHECK(match_v6(s, "2001:db8::5") != NULL);
    CHECK(match_h(s, KG_IND_CERT_HASH, "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c") != NULL);
    CHECK(match_h(s, KG_IND_FILE_HASH, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") != NULL);
    /* The expired one is loaded but does not match now. */
    uint8_t a[4] = {198, 51, 100, 2};
    ind = kg_indicator_match_addr(s, 4, a, now);
    CHECK(ind && strcmp(ind->value, "198.51.100.0/24") == 0);
    ind = kg_indicator_match_addr(s, 4, a, 1590000000000000ull);
    CHECK(ind && strcmp(ind->value, "198.51.100.2") == 0);
    CHECK(match_dom(s, "and.example") == NULL);
    a[3] = 9; /* revoked: not loaded, only the /24 */
    CHECK_EQ_STR(value_of(kg_indicator_match_addr(s, 4, a, now)), "198.51.100.0/24");
    kg_indicator_set_free(s);

    /* Pattern grammar corners, through buffers. */
    static const struct {
        const char *pattern;
        uint64_t loaded, bad;
    } pats[] = {
        {"([ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2'])", 2, 0},
        {"[domain-name:value = 'it\\'s.example']", 1, 0}, /* \' unescaped: the name is "it's.example" */
        {"[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", 1, 0},
        {"[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']", 1, 0},
        {"[x509-certificate:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']", 1,
         0},
        {"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'EvilBot/3']", 1, 0},
        {"[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [ipv4-addr:value = '192.0.2.2']", 0, 1},
        {"[ipv4-addr:value = '192.0.2.1'] WITHIN 5 SECONDS", 0, 1},
        {"[ipv4-addr:value = '192.0.2.1'", 0, 1},
        {"[ipv4-addr:value = 192.0.2.1]", 0, 1},
        {"[ipv4-addr:value != '192.0.2.1']", 0, 1},
        {"", 0, 1},
        {"(((((((((((((((((((((((((((((((((([ipv4-addr:value = '192.0.2.1']))))))))))))))))))))))))))))))))))", 0, 1},
    };
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        char doc[1024];
        struct kg_buf esc;
        kg_buf_init(&esc);
        for (const char *p = pats[i].pattern; *p; p++) {
            if (*p == '"' || *p == '\\') kg_buf_append_char(&esc, '\\');
            kg_buf_append_char(&esc, *p);
        }
        snprintf(doc, sizeof(doc),
                 "{\"type\":\"bundle\",\"objects\":[{\"type\":\"indicator\",\"id\":\"indicator--p\","
                 "\"pattern_type\":\"stix\",\"pattern\":\"%.*s\"}]}",
                 (int)esc.len, esc.data ? esc.data : "");
        kg_buf_free(&esc);
        struct kg_indicator_load_report rep;
        struct kg_err err = {{0}};
        enum kg_log_level old = kg_log_get_level();
        kg_log_set_level(KG_LOG_ERROR);
        int rc = load_text("p.json", doc, &rep, &err);
        kg_log_set_level(old);
        if (rc != 0 || rep.loaded != pats[i].loaded || rep.bad_lines != pats[i].bad)
            fprintf(stderr, "pattern %zu: rc %d %s loaded %llu bad %llu\n", i, rc, err.msg,
                    (unsigned long long)rep.loaded, (unsigned long long)rep.bad_lines);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(rep.loaded, pats[i].loaded);
        CHECK_EQ_INT(rep.bad_lines, pats[i].bad);
    }
}

static void test_misp(void)
{
    struct load_call c = {0};
    char *log = load_fixture("", "misp.csv", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.format, KG_IND_FMT_MISP);
    CHECK_EQ_INT(c.rep.loaded, 8);
    CHECK_EQ_INT(c.rep.bad_lines, 4);
    CHECK_EQ_INT(c.rep.skipped, 2);
    static const char *const expect[] = {
        "misp.csv:12: ADDR '192.0.2.300': invalid IP address",
        "misp.csv:13: expected 9 fields, found 7",
        "misp.csv:14: to_ids 'yes' is not 0 or 1",
        "misp.csv:15: malformed CSV record",
    };
    expect_log(log, expect, sizeof(expect) / sizeof(expect[0]));
    CHECK(strstr(log, "ctx-only") == NULL); /* to_ids=0 is not a warning */
    free(log);
    struct kg_indicator_set *s = c.set;
    kg_indicator_set_finalize(s);
    const struct kg_indicator *ind = match_v4(s, "192.0.2.50");
    CHECK(ind != NULL);
    if (ind) {
        CHECK_EQ_STR(ind->desc, "C2, primary");
        CHECK_EQ_STR(ind->feed_id, "5f1e0c7e-0001-4a3b-9c1d-000000000001");
        CHECK_EQ_STR(meta(ind, "category"), "Network activity");
        CHECK_EQ_STR(meta(ind, "event_id"), "42");
        CHECK_EQ_STR(meta(ind, "desc"), "C2, primary");
        CHECK_EQ_STR(ind->source, "misp");
        CHECK_EQ_INT(ind->line, 2);
    }
    ind = match_dom(s, "misp-evil.example");
    CHECK(ind && strcmp(ind->desc, "He said \"hi\"") == 0);
    ind = match_url(s, "misp-evil.example", "/gate.php");
    CHECK(ind && strcmp(ind->desc, "two\r\nlines") == 0 && ind->line == 4);
    ind = match_h(s, KG_IND_JA3, "b386946a5a44d1ddcc843bc75336dfce");
    CHECK(ind && ind->line == 6); /* line numbers count the line break inside the quoted comment */
    CHECK(match_h(s, KG_IND_CERT_HASH, "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899") != NULL);
    ind = match_h(s, KG_IND_FILE_HASH, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(ind && strcmp(ind->value, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    CHECK(match_v4(s, "192.0.2.51") != NULL);
    CHECK(match_dom(s, "ctx-only.example") == NULL);
    CHECK_EQ_STR(value_of(match_v4(s, "198.51.100.1")), "198.51.100.0/25");
    kg_indicator_set_free(s);

    /* CSV corner cases. */
    struct kg_ind_case {
        const char *text;
        uint64_t loaded, bad;
    } cases[] = {
        {"type,value,to_ids\ndomain,\"a,b.example\",1\n", 1, 0},   /* the quoted comma is part of the value */
        {"TYPE , Value , To_IDS\n domain , sp.example , 1 \n", 1, 0}, /* names and values trimmed */
        {"type,value,to_ids\ndomain,\"unterminated.example,1\n", 0, 1},
        {"type,value,to_ids\r\ndomain,crlf.example,1\r\n\r\n", 1, 0},
        {"type,value,to_ids\nip-dst|port,192.0.2.1,1\n", 0, 1}, /* composite without '|' */
    };
    enum kg_log_level old = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kg_indicator_load_report rep;
        struct kg_err err = {{0}};
        CHECK_EQ_INT(load_text("misp:c.csv", cases[i].text, &rep, &err), 0);
        if (rep.loaded != cases[i].loaded || rep.bad_lines != cases[i].bad) fprintf(stderr, "misp case %zu\n", i);
        CHECK_EQ_INT(rep.loaded, cases[i].loaded);
        CHECK_EQ_INT(rep.bad_lines, cases[i].bad);
    }
    kg_log_set_level(old);
}

static void test_sslbl(void)
{
    struct load_call c = {0};
    char *log = load_fixture("", "sslbl_ja3.csv", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.format, KG_IND_FMT_SSLBL_JA3);
    CHECK_EQ_INT(c.rep.loaded, 3);
    CHECK_EQ_INT(c.rep.bad_lines, 2);
    static const char *const expect[] = {
        "sslbl_ja3.csv:13: JA3 'not-a-hash': hash must be 32 hex digits",
        "sslbl_ja3.csv:14: expected 4 fields (ja3_md5,Firstseen,Lastseen,Listingreason), found 2",
    };
    expect_log(log, expect, sizeof(expect) / sizeof(expect[0]));
    free(log);
    kg_indicator_set_finalize(c.set);
    const struct kg_indicator *ind = match_h(c.set, KG_IND_JA3, "1aa7bf8b97e540ca5edd75f7b8384bfa");
    CHECK(ind && strcmp(ind->desc, "TrickBot") == 0 && strcmp(ind->source, "sslbl") == 0 &&
          strcmp(meta(ind, "first_seen"), "2017-07-14 19:08:28") == 0);
    kg_indicator_set_free(c.set);

    memset(&c, 0, sizeof(c));
    log = load_fixture("", "sslbl_cert.csv", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.format, KG_IND_FMT_SSLBL_CERT);
    CHECK_EQ_INT(c.rep.loaded, 2);
    CHECK_EQ_INT(c.rep.bad_lines, 1);
    CHECK(strstr(log, "sslbl_cert.csv:9: CERT_HASH") != NULL);
    free(log);
    kg_indicator_set_finalize(c.set);
    ind = match_h(c.set, KG_IND_CERT_HASH, "de1a8f3c2b4d5e6f708192a3b4c5d6e7f8091a2b");
    CHECK(ind && strcmp(ind->desc, "AsyncRAT C&C") == 0 && strcmp(meta(ind, "listing_date"), "2023-01-01 10:00:00") == 0);
    const struct kg_indicator *ind2 = match_h(c.set, KG_IND_CERT_HASH, "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c");
    CHECK(ind && ind2 && ind->desc == ind2->desc); /* a repeated reason is stored once */
    kg_indicator_set_free(c.set);

    /* The same file named explicitly with the wrong list type: every line is bad. */
    memset(&c, 0, sizeof(c));
    log = load_fixture("sslbl-ja3:", "sslbl_cert.csv", &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.loaded, 0);
    CHECK_EQ_INT(c.rep.bad_lines, 3);
    free(log);
    kg_indicator_set_free(c.set);
}

static void test_dataset(void)
{
    static const struct {
        const char *prefix, *file;
        uint64_t loaded, bad, dup, skipped;
        const char *msg;
    } cases[] = {
        {"dataset-md5:", "dataset-md5.txt", 2, 1, 1, 0, "dataset-md5.txt:3: 'notanmd5' is not an MD5 (32 hex digits)"},
        {"dataset-sha256:", "dataset-sha256.txt", 1, 1, 0, 0, "dataset-sha256.txt:2: 'd41d8cd98f00b204e9800998ecf8427e' "
                                                              "is not a SHA256 (64 hex digits)"},
        {"dataset-ipv4:", "dataset-ipv4.txt", 1, 2, 0, 0, "dataset-ipv4.txt:2: '2001:db8::77' is not an IPv4 address"},
        {"dataset-ip:", "dataset-ip.txt", 2, 1, 0, 0, "dataset-ip.txt:3: ADDR 'not-an-ip': invalid IP address"},
        {"dataset-string:", "dataset-string.txt", 3, 1, 0, 1, "dataset-string.txt:3: '!!!notbase64' is not base64"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct load_call c = {0};
        char *log = load_fixture(cases[i].prefix, cases[i].file, &c);
        CHECK_EQ_INT(c.rc, 0);
        if (c.rep.loaded != cases[i].loaded || c.rep.bad_lines != cases[i].bad)
            fprintf(stderr, "dataset case %zu: %s\n", i, log);
        CHECK_EQ_INT(c.rep.loaded, cases[i].loaded);
        CHECK_EQ_INT(c.rep.bad_lines, cases[i].bad);
        CHECK_EQ_INT(c.rep.duplicates, cases[i].dup);
        CHECK_EQ_INT(c.rep.skipped, cases[i].skipped);
        CHECK(strstr(log, cases[i].msg) != NULL);
        free(log);
        kg_indicator_set_finalize(c.set);
        if (i == 0) {
            const struct kg_indicator *ind = match_h(c.set, KG_IND_FILE_HASH, "0cc175b9c0f1b6a831c399e269772661");
            CHECK(ind && ind->nmeta == 0); /* the datarep line was the duplicate */
        }
        if (i == 3) CHECK(match_v6(c.set, "2001:db8::78") != NULL);
        if (i == 4) {
            CHECK(match_dom(c.set, "www.ds-evil.example") != NULL);
            CHECK(match_dom(c.set, "c2.ds-evil.example") != NULL);
            const struct kg_indicator *ind = match_dom(c.set, "rep.example");
            CHECK(ind && strcmp(meta(ind, "reputation"), "75") == 0);
        }
        kg_indicator_set_free(c.set);
    }
}

/* --- streaming, sources ------------------------------------------------------------------ */

static void test_streaming(void)
{
    /* Lines cross the reader's 1 MiB chunks; the last line has no newline
     * and is bad, so its number proves the count survived the chunks. */
    char path[] = "/tmp/kg-ind-stream-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    enum { N = 150000 };
    for (int i = 0; i < N; i++)
        fprintf(f, "host-%06d.stream.example\n", i);
    fprintf(f, "bad..name");
    fclose(f);
    struct load_call c = {.path = path, .set = kg_indicator_set_new()};
    char *log = capture_stderr(do_load, &c);
    CHECK_EQ_INT(c.rc, 0);
    CHECK_EQ_INT(c.rep.loaded, N);
    CHECK_EQ_INT(c.rep.bad_lines, 1);
    char want[128];
    snprintf(want, sizeof(want), ":%d: DOMAIN 'bad..name': empty label", N + 1);
    CHECK(strstr(log, want) != NULL);
    free(log);
    kg_indicator_set_finalize(c.set);
    CHECK(match_dom(c.set, "host-149999.stream.example") != NULL);
    const struct kg_indicator *ind = match_dom(c.set, "x.host-077777.stream.example");
    CHECK(ind && ind->line == 77778);
    kg_indicator_set_free(c.set);
    unlink(path);
}

struct src_count {
    char text[512];
};

static void count_cb(void *user, const char *source, enum kg_ind_type type, size_t count)
{
    struct src_count *sc = user;
    size_t n = strlen(sc->text);
    snprintf(sc->text + n, sizeof(sc->text) - n, "%s/%s=%zu;", source, kg_ind_type_name(type), count);
}

static void test_count_by_source(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\tmeta.source\n"
                                          "1.1.1.1\tIntel::ADDR\tfeodo\n"
                                          "a.example\tIntel::DOMAIN\turlhaus\n"
                                          "1.1.1.2\tIntel::ADDR\tfeodo\n"
                                          "b.example\tIntel::DOMAIN\tfeodo\n"
                                          "c.example\tIntel::DOMAIN\t-\n"
                                          "1.1.1.3\tIntel::ADDR\turlhaus\n");
    struct src_count sc = {{0}};
    kg_indicator_set_count_by_source(s, count_cb, &sc);
    CHECK_EQ_STR(sc.text, "feodo/ADDR=2;feodo/DOMAIN=1;urlhaus/ADDR=1;urlhaus/DOMAIN=1;/DOMAIN=1;");
    /* Equal sources share one string. */
    CHECK(match_v4(s, "1.1.1.1")->source == match_dom(s, "b.example")->source);
    kg_indicator_set_count_by_source(NULL, count_cb, &sc);
    kg_indicator_set_free(s);
}

/* --- signed feeds ------------------------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static void test_signatures(void)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("     openssl CLI not found: signature test skipped\n");
        return;
    }
    char dir[] = "/tmp/kg-ind-sign-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    /* The central team's commands, exactly as docs/INDICATORS.md gives them. */
    CHECK_EQ_INT(sh("cd %s && openssl genpkey -algorithm ed25519 -out feed-signing.key 2>/dev/null", dir), 0);
    CHECK_EQ_INT(sh("cd %s && openssl pkey -in feed-signing.key -pubout -out feed-signing.pub", dir), 0);
    CHECK_EQ_INT(sh("cd %s && cp %s feed.intel", dir, fixture("good.intel")), 0);
    CHECK_EQ_INT(sh("cd %s && openssl pkeyutl -sign -inkey feed-signing.key -rawin -in feed.intel -out feed.intel.sig",
                    dir),
                 0);
    /* A second, untrusted key and a key of another algorithm. */
    CHECK_EQ_INT(sh("cd %s && openssl genpkey -algorithm ed25519 -out other.key 2>/dev/null && "
                    "openssl pkey -in other.key -pubout -out other.pub",
                    dir),
                 0);
    CHECK_EQ_INT(sh("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null && "
                    "openssl pkey -in ec.key -pubout -out ec.pub",
                    dir),
                 0);
    char feed[256], pub[256], other[256], ec[256], junk[256];
    snprintf(feed, sizeof(feed), "%s/feed.intel", dir);
    snprintf(pub, sizeof(pub), "%s/feed-signing.pub", dir);
    snprintf(other, sizeof(other), "%s/other.pub", dir);
    snprintf(ec, sizeof(ec), "%s/ec.pub", dir);
    snprintf(junk, sizeof(junk), "%s/feed.intel", dir); /* not a key */
    const char *trusted[] = {pub};
    const char *both[] = {other, pub};
    const char *wrong[] = {other};
    const char *bad_alg[] = {ec};
    const char *not_key[] = {junk};
    struct kg_err err = {{0}};

    CHECK_EQ_INT(kg_indicator_verify_file(feed, trusted, 1, &err), 0);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, both, 2, &err), 0); /* any trusted key will do */
    char pfx[300];
    snprintf(pfx, sizeof(pfx), "zeek:%s", feed);
    CHECK_EQ_INT(kg_indicator_verify_file(pfx, trusted, 1, &err), 0); /* the format prefix is not the path */
    CHECK_EQ_INT(kg_indicator_verify_file(feed, wrong, 1, &err), KG_ERR_INVAL);
    CHECK(strstr(err.msg, "signature does not verify with any of the 1 trusted key") != NULL);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, NULL, 0, &err), KG_ERR_INVAL);
    CHECK(strstr(err.msg, "no trusted keys") != NULL);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, bad_alg, 1, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "not an Ed25519 key") != NULL);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, not_key, 1, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "not a PEM public key") != NULL);
    const char *missing_key[] = {"/nonexistent/key.pub"};
    CHECK_EQ_INT(kg_indicator_verify_file(feed, missing_key, 1, &err), KG_ERR_IO);

    /* Signed load: verified bytes are the loaded bytes. */
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    CHECK_EQ_INT(kg_indicator_set_load_file_signed(s, feed, trusted, 1, &rep, &err), 0);
    CHECK_EQ_INT(rep.loaded, 11);
    kg_indicator_set_free(s);

    /* Base64 signature (as `openssl base64` writes it) is accepted too. */
    CHECK_EQ_INT(sh("cd %s && openssl base64 -in feed.intel.sig -out sig.b64 && mv sig.b64 feed.intel.sig", dir), 0);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, trusted, 1, &err), 0);

    /* Tampered feed: one byte changed. */
    CHECK_EQ_INT(sh("cd %s && sed -i 's/198.51.100.7/198.51.100.8/' feed.intel", dir), 0);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, trusted, 1, &err), KG_ERR_INVAL);
    CHECK(strstr(err.msg, "feed.intel: signature does not verify") != NULL);
    s = kg_indicator_set_new();
    CHECK_EQ_INT(kg_indicator_set_load_file_signed(s, feed, trusted, 1, &rep, &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_indicator_set_total(s), 0); /* nothing loaded */
    kg_indicator_set_free(s);

    /* Malformed and missing signatures. */
    CHECK_EQ_INT(sh("cd %s && printf 'short' > feed.intel.sig", dir), 0);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, trusted, 1, &err), KG_ERR_PARSE);
    CHECK(strstr(err.msg, "not an Ed25519 signature") != NULL);
    CHECK_EQ_INT(sh("cd %s && rm feed.intel.sig", dir), 0);
    CHECK_EQ_INT(kg_indicator_verify_file(feed, trusted, 1, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, "not signed") != NULL);
    CHECK_EQ_INT(kg_indicator_verify_file("/nonexistent/feed.intel", trusted, 1, &err), KG_ERR_IO);
    sh("rm -rf %s", dir);
}

/* --- fuzz-style, other formats -------------------------------------------------------------- */

static void fuzz_formats(void)
{
    enum kg_log_level old = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    static const char *const tokens[] = {
        ",",  "\"", "\n", "\r\n", "#", ";", " ", "type", "value", "to_ids", "1", "0", "domain", "ip-dst",
        "url", "md5", "filename|md5", "|", "evil.example", "1.2.3.4", "/24", "::1", "http://x/",
        "d41d8cd98f00b204e9800998ecf8427e", "ja3:", "ua:", "0.0.0.0 ", "ZXZpbC5leGFtcGxl", "=", "{", "}", "[",
        "]", "\"type\":\"bundle\"", "\"objects\":", "\"pattern\":", "\"[ipv4-addr:value = '1.2.3.4']\"", "OR",
        "AND", "'", "\\", "\xff", "t13d1516h2_8daaf6152771_e5627efa2ab1", "2017-07-14 18:08:15",
    };
    static const char *const prefixes[] = {"plain:", "misp:", "stix:", "dataset-string:", "dataset-md5:",
                                           "sslbl-ja3:", "sslbl-cert:", "dataset-ip:", ""};
    char buf[1024];
    for (int it = 0; it < 4000; it++) {
        size_t len = 0;
        while (len < sizeof(buf) - 64 && rnd_below(30) != 0) {
            const char *t = tokens[rnd_below(sizeof(tokens) / sizeof(tokens[0]))];
            size_t n = strlen(t);
            memcpy(buf + len, t, n);
            len += n;
        }
        char name[64];
        snprintf(name, sizeof(name), "%sfuzz", prefixes[it % (sizeof(prefixes) / sizeof(prefixes[0]))]);
        struct kg_indicator_set *s = kg_indicator_set_new();
        struct kg_indicator_load_report rep;
        struct kg_err err;
        int rc = kg_indicator_set_load_buffer(s, name, buf, len, &rep, &err);
        CHECK(rc == 0 || rc == KG_ERR_PARSE);
        kg_indicator_set_finalize(s);
        kg_indicator_match_domain(s, buf, len > 64 ? 64 : len, 1);
        kg_indicator_match_software(s, buf, len > 64 ? 64 : len, 1);
        kg_indicator_match_hash(s, KG_IND_FILE_HASH, buf, len > 32 ? 32 : len, 1);
        kg_indicator_set_free(s);
    }
    kg_log_set_level(old);
}

/* --- fuzz-style ------------------------------------------------------------------------ */

static void fuzz_one(const char *data, size_t len)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    struct kg_err err;
    int rc = kg_indicator_set_load_buffer(s, "fuzz.intel", data, len, &rep, &err);
    CHECK(rc == 0 || rc == KG_ERR_PARSE);
    kg_indicator_set_finalize(s);
    /* Whatever loaded must be findable through the match functions without trouble. */
    uint8_t a[16] = {10, 1, 2, 3};
    kg_indicator_match_addr(s, 4, a, 0);
    kg_indicator_match_addr(s, 6, a, 0);
    kg_indicator_match_domain(s, data, len > 64 ? 64 : len, 0);
    kg_indicator_match_url(s, data, len > 16 ? 16 : len, data, len > 80 ? 80 : len, 0);
    kg_indicator_match_hash(s, KG_IND_JA3, data, len > 32 ? 32 : len, 0);
    kg_indicator_set_free(s);
}

static void test_fuzz(void)
{
    enum kg_log_level old = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR); /* thousands of expected warnings */
    static const char *const tokens[] = {
        "#fields",
        "\t",
        "\n",
        "\r\n",
        "indicator",
        "indicator_type",
        "meta.source",
        "meta.severity",
        "meta.x",
        "Intel::ADDR",
        "Intel::SUBNET",
        "Intel::DOMAIN",
        "Intel::URL",
        "Intel::CERT_HASH",
        "Intel::JA3",
        "1.2.3.4",
        "/",
        "::",
        "2001:db8::",
        "/0",
        "/33",
        "/128",
        ".",
        "*.",
        "evil.com",
        "http://",
        ":80",
        "?",
        "-",
        "(empty)",
        "#separator \\x09",
        "#",
        "a9f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c",
        "\0",
        "\xff",
        "3",
    };
    char buf[1024];
    /* Token soup: reaches the parser's states far more often than raw bytes. */
    for (int it = 0; it < 3000; it++) {
        size_t len = 0;
        if (it % 2 == 0) {
            memcpy(buf, "#fields\tindicator\tindicator_type\tmeta.source\n", 45);
            len = 45;
        }
        while (len < sizeof(buf) - 64 && rnd_below(40) != 0) {
            const char *t = tokens[rnd_below(sizeof(tokens) / sizeof(tokens[0]))];
            size_t n = t[0] ? strlen(t) : 1;
            memcpy(buf + len, t, n);
            len += n;
        }
        fuzz_one(buf, len);
    }
    /* Raw random bytes, and mutations of the good fixture. */
    for (int it = 0; it < 2000; it++) {
        size_t len = rnd_below(sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)rnd();
        fuzz_one(buf, len);
    }
    FILE *f = fopen(fixture("good.intel"), "rb");
    size_t base = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f) fclose(f);
    CHECK(base > 100);
    char mut[1024];
    for (int it = 0; it < 3000 && base > 0; it++) {
        memcpy(mut, buf, base);
        size_t len = base;
        for (int m = 0, nm = 1 + (int)rnd_below(8); m < nm; m++) {
            size_t at = rnd_below((uint32_t)len);
            switch (rnd_below(3)) {
            case 0:
                mut[at] = (char)rnd();
                break;
            case 1:
                memmove(mut + at, mut + at + 1, len - at - 1), len--;
                break;
            default:
                mut[at] = "\t\n#/.:-"[rnd_below(7)];
                break;
            }
        }
        fuzz_one(mut, len);
    }
    kg_log_set_level(old);
}

/* The hash tables keep each entry's key beside its slot: MD5, SHA1 and
 * SHA256 under one FILE_HASH type, across table growth, and keys that share
 * a prefix or differ only in length must each find themselves only. */
static void test_hash_keys_inline(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    char v[80];
    const int n = 5000; /* enough to grow the table several times */
    for (int i = 0; i < n; i++) {
        static const int lens[3] = {32, 40, 64};
        int len = lens[i % 3];
        for (int k = 0; k < len; k++) v[k] = "0123456789abcdef"[(i * 31 + k * 7 + (k ? v[k - 1] : 0)) & 15];
        v[len] = '\0';
        CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_FILE_HASH, v, "t", &err), 0);
    }
    kg_indicator_set_finalize(s);
    size_t total = kg_indicator_set_count(s, KG_IND_FILE_HASH);
    CHECK(total > 0);
    int found = 0, wrong_len = 0;
    for (int i = 0; i < n; i++) {
        static const int lens[3] = {32, 40, 64};
        int len = lens[i % 3];
        for (int k = 0; k < len; k++) v[k] = "0123456789abcdef"[(i * 31 + k * 7 + (k ? v[k - 1] : 0)) & 15];
        const struct kg_indicator *ind = kg_indicator_match_hash(s, KG_IND_FILE_HASH, v, (size_t)len, 0);
        if (ind && strlen(ind->value) == (size_t)len && strncasecmp(ind->value, v, (size_t)len) == 0) found++;
        /* The same bytes cut to another valid length are another key. */
        if (len > 32 && kg_indicator_match_hash(s, KG_IND_FILE_HASH, v, 32, 0) == ind && ind) wrong_len++;
    }
    CHECK_EQ_INT(found, n);
    CHECK_EQ_INT(wrong_len, 0);
    kg_indicator_set_free(s);
}

/* Domain lookups only probe label counts that some indicator has. */
static void test_domain_label_counts(void)
{
    struct kg_indicator_set *s = set_from("#fields\tindicator\tindicator_type\n"
                                          "tld\tIntel::DOMAIN\n"
                                          "corp\tIntel::DOMAIN\n");
    /* Only 1-label indicators: deep names still find their TLD. */
    CHECK_EQ_STR(value_of(match_dom(s, "a.b.c.d.e.f.g.tld")), "tld");
    CHECK_EQ_STR(value_of(match_dom(s, "CORP.")), "corp");
    CHECK(match_dom(s, "tld.example") == NULL);
    kg_indicator_set_free(s);
    s = set_from("#fields\tindicator\tindicator_type\n"
                 "x.y.z.evil.example\tIntel::DOMAIN\n"
                 "evil.example\tIntel::DOMAIN\n");
    /* More labels than any indicator: the longer suffixes are skipped, the
     * listed ones still match, the most specific first. */
    CHECK_EQ_STR(value_of(match_dom(s, "1.2.3.4.5.6.x.y.z.evil.example")), "x.y.z.evil.example");
    CHECK_EQ_STR(value_of(match_dom(s, "1.2.3.4.5.6.y.z.evil.example")), "evil.example");
    CHECK(match_dom(s, "z.example") == NULL);
    kg_indicator_set_free(s);
}

/* The batch keeps small lookups; names with more probed suffixes than they
 * hold, long URL hosts and query-only targets go through the single-call
 * path, with the same answers. */
static void test_batch_overflow(void)
{
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    /* Keys of every label count from 1 to 40: "l1", "l2.l1", ... */
    char dom[256] = "";
    for (int n = 1; n <= 40; n++) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), n == 1 ? "l%d%s" : "l%d.%s", n, dom);
        snprintf(dom, sizeof(dom), "%s", tmp);
        if (n % 2 == 0 || n == 1) CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_DOMAIN, dom, "t", &err), 0);
    }
    /* A host of 300 bytes (longer than a batch lookup holds). */
    char host[301], url[400];
    for (int i = 0; i < 300; i++)
        host[i] = (char)('a' + i % 26);
    host[300] = '\0';
    for (int i = 60; i < 300; i += 61)
        host[i] = '.';
    snprintf(url, sizeof(url), "http://%s/long", host);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_URL, url, "t", &err), 0);
    CHECK_EQ_INT(kg_indicator_set_add(s, KG_IND_URL, "http://q.example/?a=1", "t", &err), 0);
    kg_indicator_set_finalize(s);

    /* "x.l40.l39....l1": 41 labels, 21 probed suffixes; the most specific
     * listed one is the 40-label key. */
    char q1[300], q2[300];
    snprintf(q1, sizeof(q1), "x.%s", dom);
    const char *l39 = strchr(dom, '.') + 1; /* 39 labels: the 38-label key is the most specific */
    snprintf(q2, sizeof(q2), "X.%s.", l39);
    struct kg_indicator_query q[6] = {
        {.type = KG_IND_DOMAIN, .value = q1, .len = strlen(q1)},
        {.type = KG_IND_DOMAIN, .value = q2, .len = strlen(q2)},
        {.type = KG_IND_URL, .value = host, .len = strlen(host), .uri = "/long", .uri_len = 5},
        {.type = KG_IND_URL, .value = "Q.example", .len = 9, .uri = "?a=1", .uri_len = 4},
        {.type = KG_IND_URL, .value = host, .len = strlen(host), .uri = "/other", .uri_len = 6},
        {.type = KG_IND_DOMAIN, .value = "l2.l1", .len = 5},
    };
    const struct kg_indicator *out[6];
    kg_indicator_match_batch(s, q, 6, out, 0);
    CHECK(out[0] && strcmp(out[0]->value, dom) == 0);
    CHECK(out[1] && strncmp(out[1]->value, "l38.", 4) == 0);
    CHECK(out[2] && strcmp(out[2]->value, url) == 0);
    CHECK(out[3] && strcmp(out[3]->value, "http://q.example/?a=1") == 0);
    CHECK(out[4] == NULL);
    CHECK(out[5] && strcmp(out[5]->value, "l2.l1") == 0);
    CHECK(out[0] == kg_indicator_match_domain(s, q1, strlen(q1), 0));
    CHECK(out[1] == kg_indicator_match_domain(s, q2, strlen(q2), 0));
    CHECK(out[2] == kg_indicator_match_url(s, host, strlen(host), "/long", 5, 0));
    CHECK(out[3] == kg_indicator_match_url(s, "Q.example", 9, "?a=1", 4, 0));
    kg_indicator_set_free(s);
}

/* Domain lookups (single and batched) against a plain reference: for every
 * suffix of the lower-cased name that starts at its beginning or after an
 * unescaped dot, longest first, a binary search in the sorted key list.
 * Random names mix listed keys, labels of all lengths, upper case, escaped
 * dots ("\."), backslashes and names longer than any key; the set is large
 * enough that every filter is in use. */
static const char *ref_domain(char **keys, size_t nkeys, const char *name)
{
    size_t len = strlen(name);
    if (len && name[len - 1] == '.') len--;
    char low[400];
    if (len == 0 || len >= sizeof(low)) return NULL;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (i > 0) {
            if (name[i - 1] != '.') continue;
            size_t bs = 0;
            while (i - 1 > bs && name[i - 2 - bs] == '\\') bs++;
            if (bs % 2) continue; /* an escaped dot */
        }
        const char *key = low + i;
        char **hit = bsearch(&key, keys, nkeys, sizeof(*keys), cmp_str);
        if (hit) return *hit;
    }
    return NULL;
}

/* One round of test_domain_differential: keys whose labels before the last
 * have up to label_max bytes. */
static void domain_differential_round(uint32_t label_max)
{
    enum { NKEYS = 6000, NQ = 20000 };
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_err err;
    char **keys = calloc(NKEYS, sizeof(*keys));
    size_t nkeys = 0;
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
    for (size_t i = 0; i < NKEYS; i++) {
        char k[200];
        size_t n = 0, labels = 1 + rnd_below(4);
        for (size_t l = 0; l < labels; l++) {
            if (l) k[n++] = '.';
            size_t ll = 1 + rnd_below(l == labels - 1 ? 4 : label_max); /* short TLD-like last label */
            for (size_t c = 0; c < ll; c++) k[n++] = alpha[rnd_below(36)];
        }
        k[n] = '\0';
        if (kg_indicator_set_add(s, KG_IND_DOMAIN, k, "t", &err) == 0) keys[nkeys++] = strdup(k);
    }
    kg_indicator_set_finalize(s);
    qsort(keys, nkeys, sizeof(*keys), cmp_str);
    /* Duplicates were refused by the set: drop them from the reference too. */
    size_t u = 0;
    for (size_t i = 0; i < nkeys; i++)
        if (u == 0 || strcmp(keys[u - 1], keys[i]) != 0) keys[u++] = keys[i];
        else free(keys[i]);
    nkeys = u;
    size_t longest = 0;
    for (size_t i = 1; i < nkeys; i++)
        if (strlen(keys[i]) > strlen(keys[longest])) longest = i;

    char (*q)[400] = calloc(NQ, sizeof(*q));
    struct kg_indicator_query *bq = calloc(NQ, sizeof(*bq));
    const struct kg_indicator **out = calloc(NQ, sizeof(*out));
    size_t wrong_single = 0, wrong_batch = 0, hits = 0;
    for (size_t i = 0; i < NQ; i++) {
        char *p = q[i];
        size_t n = 0, pre = rnd_below(5);
        for (size_t l = 0; l < pre; l++) { /* labels in front, some with escapes */
            size_t ll = 1 + rnd_below(l % 2 ? 60 : 8);
            for (size_t c = 0; c < ll && n < 300; c++) {
                uint32_t r = rnd_below(40);
                p[n++] = r == 0 ? '\\' : r == 1 ? 'X' : alpha[rnd_below(36)];
                if (r == 0 && n < 300) p[n++] = rnd_below(2) ? '.' : '\\';
            }
            p[n++] = '.';
        }
        /* Now and then the longest key after an escaped dot ("x\\.key"):
         * the lookup's window then starts at that dot, the backslash just
         * before it, and the key is not a suffix on a label boundary. */
        const char *base = keys[rnd_below((uint32_t)nkeys)];
        if (rnd_below(8) == 0) {
            base = keys[longest];
            if (n) p[n - 1] = '\\';
            p[n++] = '.';
        }
        size_t bl = strlen(base);
        memcpy(p + n, base, bl);
        if (rnd_below(3) == 0) p[n + rnd_below((uint32_t)bl)] ^= 0x20; /* case or a mutation */
        if (rnd_below(4) == 0 && bl > 2) p[n + 1 + rnd_below((uint32_t)bl - 2)] = (char)(rnd_below(2) ? '.' : '\\');
        n += bl;
        if (rnd_below(4) == 0) p[n++] = '.';
        p[n] = '\0';
        const char *want = ref_domain(keys, nkeys, p);
        const struct kg_indicator *got = kg_indicator_match_domain(s, p, n, 0);
        hits += want != NULL;
        if ((got == NULL) != (want == NULL) || (got && strcmp(got->value, want) != 0)) {
            if (wrong_single++ < 5) fprintf(stderr, "domain '%s': got %s, want %s\n", p, value_of(got), want ? want : "(no match)");
        }
        bq[i] = (struct kg_indicator_query){.type = KG_IND_DOMAIN, .value = p, .len = n};
    }
    kg_indicator_match_batch(s, bq, NQ, out, 0);
    for (size_t i = 0; i < NQ; i++)
        wrong_batch += out[i] != kg_indicator_match_domain(s, q[i], strlen(q[i]), 0);
    CHECK_EQ_INT(wrong_single, 0);
    CHECK_EQ_INT(wrong_batch, 0);
    CHECK(hits > NQ / 4); /* the test does exercise matches */

    /* Hostile names: any bytes (NUL included), any length up to past
     * KG_IND_NAME_MAX, ending in a listed key or not; batched and single
     * answers agree (and ASan sees every read). */
    enum { NB = 3000, BMAX = 1100 };
    char *bin = malloc((size_t)NB * BMAX);
    size_t *blen = calloc(NB, sizeof(*blen));
    for (size_t i = 0; i < NB; i++) {
        char *p = bin + i * BMAX;
        size_t n = rnd_below(i % 10 == 0 ? BMAX - 40 : 80);
        for (size_t c = 0; c < n; c++) {
            uint32_t r = rnd_below(8);
            p[c] = r == 0 ? '.' : r == 1 ? '\\' : (char)rnd_below(256);
        }
        if (rnd_below(2)) {
            const char *k = keys[rnd_below((uint32_t)nkeys)];
            p[n++] = '.';
            memcpy(p + n, k, strlen(k));
            n += strlen(k);
        }
        blen[i] = n;
        bq[i] = (struct kg_indicator_query){.type = KG_IND_DOMAIN, .value = p, .len = n};
    }
    kg_indicator_match_batch(s, bq, NB, out, 0);
    size_t bin_wrong = 0;
    for (size_t i = 0; i < NB; i++)
        bin_wrong += out[i] != kg_indicator_match_domain(s, bin + i * BMAX, blen[i], 0);
    CHECK_EQ_INT(bin_wrong, 0);
    free(bin);
    free(blen);
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    free(keys);
    free(q);
    free(bq);
    free(out);
    kg_indicator_set_free(s);
}

static void test_domain_differential(void)
{
    /* Keys up to about 70 bytes: most names fit the lookup's window whole. */
    domain_differential_round(20);
    /* Keys of at most 25 bytes: the window (the longest key's length + 1)
     * cuts most names, so its first word starts inside the name, and the
     * byte just before it may be a backslash. */
    domain_differential_round(6);
}

int main(void)
{
    const char *src = getenv("KG_SOURCE_DIR");
    snprintf(g_data_dir, sizeof(g_data_dir), "%s/tests/data/indicators", src ? src : ".");
    const char *seed = getenv("KG_TEST_SEED");
    g_rng = seed ? strtoull(seed, NULL, 0) : 0x6b6167616d69ull; /* "kagami" */
    if (g_rng == 0) g_rng = 1;
    printf("random seed 0x%llx (set KG_TEST_SEED to replay)\n", (unsigned long long)g_rng);

    KG_TEST_RUN(test_type_names);
    KG_TEST_RUN(test_load_good);
    KG_TEST_RUN(test_load_malformed);
    KG_TEST_RUN(test_load_errors);
    KG_TEST_RUN(test_load_variants);
    KG_TEST_RUN(test_api_add);
    KG_TEST_RUN(test_addr_longest_prefix);
    KG_TEST_RUN(test_domain_suffix);
    KG_TEST_RUN(test_url);
    KG_TEST_RUN(test_url_percent);
    KG_TEST_RUN(test_url_prefix);
    KG_TEST_RUN(test_url_differential);
    KG_TEST_RUN(test_hash);
    KG_TEST_RUN(test_hash_hex_bytes);
    KG_TEST_RUN(test_hash_keys_inline);
    KG_TEST_RUN(test_domain_label_counts);
    KG_TEST_RUN(test_batch_overflow);
    KG_TEST_RUN(test_domain_differential);
    KG_TEST_RUN(test_random_200k);
    KG_TEST_RUN(test_lpm_bruteforce);
    KG_TEST_RUN(test_concurrent_readers);
    KG_TEST_RUN(test_fuzz);
    KG_TEST_RUN(test_new_types);
    KG_TEST_RUN(test_validity);
    KG_TEST_RUN(test_format_names);
    KG_TEST_RUN(test_detection);
    KG_TEST_RUN(test_plain);
    KG_TEST_RUN(test_plain_url_shapes);
    KG_TEST_RUN(test_stix);
    KG_TEST_RUN(test_misp);
    KG_TEST_RUN(test_sslbl);
    KG_TEST_RUN(test_dataset);
    KG_TEST_RUN(test_streaming);
    KG_TEST_RUN(test_count_by_source);
    KG_TEST_RUN(test_signatures);
    KG_TEST_RUN(fuzz_formats);
    KG_TEST_MAIN_END();
}
