/*
 * tests/unit/test_geoip.c — GeoIP/ASN enrichment (export/enrich_geoip.c).
 *
 * Usage: test_geoip PERL MAKE_TEST_MMDB_PL. Builds a small country and AS
 * database in a temporary directory with tests/scripts/make_test_mmdb.pl
 * (MaxMind::DB::Writer), then looks addresses up: public ones in and out
 * of the databases, the country fallback, UTF-8 and over-long AS names,
 * and private/special ranges that the databases do answer for but that
 * must never be looked up. Also: missing and corrupt databases (a warning,
 * a usable handle), and lookups from several threads at once. Exits 77
 * (skipped) when the Perl module is not installed.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "export/export.h"
#include "tests/unit/kg_test.h"

static char tmpdir[256];
static char country_path[400], asn_path[400];

static int addr_of(const char *text, uint8_t *family, uint8_t *addr)
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, addr) == 1) {
        *family = 6;
        return 0;
    }
    return -1;
}

static int lookup(const struct kg_geoip *g, const char *text, struct kg_geo *out)
{
    uint8_t fam, a[16];
    if (addr_of(text, &fam, a) < 0) {
        fprintf(stderr, "bad address %s\n", text);
        return -100;
    }
    return kg_geoip_lookup(g, fam, a, out);
}

struct expect {
    const char *addr;
    int rc;
    const char *country;
    uint32_t asn;
    const char *org;
};

/* Keep in step with tests/scripts/make_test_mmdb.pl. */
static const struct expect expects[] = {
    {"8.8.8.8", 1, "US", 15169, "Google LLC"},
    {"1.1.1.1", 1, "AU", 13335, "Cloudflare, Inc."},
    {"81.2.69.160", 1, "GB", 0, ""}, /* registered_country only */
    {"2001:4860:4860::8888", 1, "US", 15169, "Google LLC"},
    {"2a00:1450:4001::1", 1, "IE", 0, ""},
    {"::ffff:8.8.8.4", 1, "US", 15169, "Google LLC"},         /* IPv4-mapped: looked up as 8.8.8.4 */
    {"64:ff9b::101:101", 1, "AU", 13335, "Cloudflare, Inc."}, /* NAT64 of 1.1.1.1 */
    {"5.6.7.8", 1, "", 64496, "R\xc3\xa9seau \xc3\x89tudiant"},
    {"9.9.9.9", 0, "", 0, ""}, /* public, in neither database */
    {"2600::1", 0, "", 0, ""},
    /* The databases answer for these; the sensor must not ask. */
    {"10.1.2.3", 0, "", 0, ""},
    {"100.64.0.1", 0, "", 0, ""},
    {"192.0.2.1", 0, "", 0, ""},
    {"fd00::1", 0, "", 0, ""},
    {"2001:db8::1", 0, "", 0, ""},
    {"::ffff:10.0.0.1", 0, "", 0, ""},
};

static void check_expect(const struct kg_geoip *g, const struct expect *e, bool country_on, bool asn_on)
{
    struct kg_geo geo;
    const char *want_c = country_on ? e->country : "";
    const uint32_t want_asn = asn_on ? e->asn : 0;
    const char *want_org = asn_on ? e->org : "";
    const int want_rc = (want_c[0] || want_asn || want_org[0]) ? 1 : 0;
    int rc = lookup(g, e->addr, &geo);
    if (rc != want_rc || strcmp(geo.country, want_c) != 0 || geo.asn != want_asn ||
        strcmp(geo.as_org, want_org) != 0)
        fprintf(stderr, "  %s: rc %d country \"%s\" asn %u org \"%s\"\n", e->addr, rc, geo.country, geo.asn,
                geo.as_org);
    CHECK_EQ_INT(rc, want_rc);
    CHECK_EQ_STR(geo.country, want_c);
    CHECK_EQ_INT(geo.asn, want_asn);
    CHECK_EQ_STR(geo.as_org, want_org);
}

static void test_lookups(void)
{
    struct kg_err err;
    struct kg_geoip *g = kg_geoip_open(country_path, asn_path, &err);
    CHECK(g != NULL);
    CHECK_EQ_STR(err.msg, "");
    CHECK(kg_geoip_has_country(g));
    CHECK(kg_geoip_has_asn(g));
    for (size_t i = 0; i < KG_ARRAY_LEN(expects); i++)
        check_expect(g, &expects[i], true, true);

    /* An AS name longer than struct kg_geo holds: cut between characters
     * (100 x U+00E9, 2 bytes each: 63 whole characters fit in 127 bytes). */
    struct kg_geo geo;
    CHECK_EQ_INT(lookup(g, "5.6.8.9", &geo), 1);
    CHECK_EQ_INT(geo.asn, 64497);
    CHECK_EQ_INT(strlen(geo.as_org), 126);
    CHECK_EQ_INT((uint8_t)geo.as_org[124], 0xC3);
    CHECK_EQ_INT((uint8_t)geo.as_org[125], 0xA9);

    /* Bad arguments. */
    uint8_t a[16] = {8, 8, 8, 8};
    CHECK_EQ_INT(kg_geoip_lookup(g, 5, a, &geo), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_geoip_lookup(g, 4, NULL, &geo), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_geoip_lookup(NULL, 4, a, &geo), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_geoip_lookup(g, 4, a, NULL), KG_ERR_INVAL);
    kg_geoip_free(g);
    kg_geoip_free(NULL);
}

static void test_one_part(void)
{
    /* Country only, ASN only: the other part stays empty. */
    struct kg_geoip *g = kg_geoip_open(country_path, NULL, NULL);
    CHECK(kg_geoip_has_country(g) && !kg_geoip_has_asn(g));
    for (size_t i = 0; i < KG_ARRAY_LEN(expects); i++)
        check_expect(g, &expects[i], true, false);
    kg_geoip_free(g);
    g = kg_geoip_open("", asn_path, NULL);
    CHECK(!kg_geoip_has_country(g) && kg_geoip_has_asn(g));
    for (size_t i = 0; i < KG_ARRAY_LEN(expects); i++)
        check_expect(g, &expects[i], false, true);
    kg_geoip_free(g);
}

static void test_missing_and_corrupt(void)
{
    struct kg_err err;
    /* Nothing asked for: a handle that finds nothing. */
    struct kg_geoip *g = kg_geoip_open(NULL, NULL, &err);
    CHECK(g != NULL);
    CHECK_EQ_STR(err.msg, "");
    struct kg_geo geo;
    CHECK_EQ_INT(lookup(g, "8.8.8.8", &geo), 0);
    kg_geoip_free(g);

    /* Missing files: warnings, a usable handle. */
    g = kg_geoip_open("/nonexistent/GeoLite2-Country.mmdb", asn_path, &err);
    CHECK(g != NULL);
    CHECK(strstr(err.msg, "/nonexistent/GeoLite2-Country.mmdb") != NULL);
    CHECK(!kg_geoip_has_country(g));
    CHECK(kg_geoip_has_asn(g));
    CHECK_EQ_INT(lookup(g, "8.8.8.8", &geo), 1);
    CHECK_EQ_STR(geo.country, "");
    CHECK_EQ_INT(geo.asn, 15169);
    kg_geoip_free(g);

    /* A file that is not a MaxMind DB, and an empty one. */
    char junk[400], empty[400];
    snprintf(junk, sizeof(junk), "%s/junk.mmdb", tmpdir);
    snprintf(empty, sizeof(empty), "%s/empty.mmdb", tmpdir);
    FILE *f = fopen(junk, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 4096; i++)
            fputc((i * 7919) & 0xFF, f);
        fclose(f);
    }
    f = fopen(empty, "w");
    if (f) fclose(f);
    g = kg_geoip_open(junk, empty, &err);
    CHECK(g != NULL);
    CHECK(err.msg[0] != '\0');
    CHECK(!kg_geoip_has_country(g) && !kg_geoip_has_asn(g));
    CHECK_EQ_INT(lookup(g, "8.8.8.8", &geo), 0);
    kg_geoip_free(g);
    unlink(junk);
    unlink(empty);
}

static void test_is_public(void)
{
    static const struct {
        const char *addr;
        bool pub;
    } cases[] = {
        {"8.8.8.8", true},
        {"1.0.0.1", true},
        {"223.255.255.255", true},
        {"0.1.2.3", false},
        {"10.255.0.1", false},
        {"100.63.255.255", true},
        {"100.64.0.0", false},
        {"100.127.255.255", false},
        {"100.128.0.0", true},
        {"127.0.0.1", false},
        {"169.254.1.1", false},
        {"172.15.0.1", true},
        {"172.16.0.1", false},
        {"172.31.255.255", false},
        {"172.32.0.1", true},
        {"192.0.0.8", false},
        {"192.0.2.200", false},
        {"192.0.3.1", true},
        {"192.168.1.1", false},
        {"198.18.0.1", false},
        {"198.19.255.255", false},
        {"198.20.0.1", true},
        {"198.51.100.7", false},
        {"203.0.113.9", false},
        {"224.0.0.251", false},
        {"239.255.255.250", false},
        {"240.0.0.1", false},
        {"255.255.255.255", false},
        {"2001:4860::8888", true},
        {"2a00:1450::1", true},
        {"3ffe::1", true},
        {"::", false},
        {"::1", false},
        {"fe80::1", false},
        {"fc00::1", false},
        {"fdff::1", false},
        {"ff02::1", false},
        {"fec0::1", false},
        {"2001:db8:1::1", false},
        {"2001:2::1", false},
        {"2001:3::1", true},
        {"3fff::1", false},
        {"3fff:1000::1", true},
        {"4000::1", false},
        {"::ffff:1.1.1.1", true},
        {"::ffff:192.168.0.1", false},
        {"64:ff9b::808:808", true},
        {"64:ff9b::a00:1", false},
        {"::8.8.8.8", false},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++) {
        uint8_t fam = 0, a[16] = {0};
        CHECK_EQ_INT(addr_of(cases[i].addr, &fam, a), 0);
        bool got = kg_geoip_is_public(fam, a);
        if (got != cases[i].pub) fprintf(stderr, "  %s: public %d\n", cases[i].addr, got);
        CHECK_EQ_INT(got, cases[i].pub);
    }
    uint8_t a[16] = {8, 8, 8, 8};
    CHECK(!kg_geoip_is_public(5, a));
    CHECK(!kg_geoip_is_public(4, NULL));
}

/* Several threads looking up at once on one handle (run it under
 * -DKG_SANITIZE=thread too). */
struct worker_arg {
    const struct kg_geoip *g;
    int errors;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    for (int it = 0; it < 2000; it++) {
        const struct expect *e = &expects[(size_t)it % KG_ARRAY_LEN(expects)];
        struct kg_geo geo;
        uint8_t fam = 0, a[16] = {0};
        addr_of(e->addr, &fam, a);
        int rc = kg_geoip_lookup(w->g, fam, a, &geo);
        if (rc != e->rc || strcmp(geo.country, e->country) != 0 || geo.asn != e->asn ||
            strcmp(geo.as_org, e->org))
            w->errors++;
    }
    return NULL;
}

static void test_threads(void)
{
    struct kg_geoip *g = kg_geoip_open(country_path, asn_path, NULL);
    pthread_t t[4];
    struct worker_arg w[4];
    for (int i = 0; i < 4; i++) {
        w[i].g = g;
        w[i].errors = 0;
        CHECK_EQ_INT(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(w[i].errors, 0);
    }
    kg_geoip_free(g);
}

/* Runs PERL SCRIPT DIR; returns its exit status (-1 if it could not run). */
static int make_dbs(const char *perl, const char *script)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl(perl, perl, script, tmpdir, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_geoip PERL MAKE_TEST_MMDB_PL\n");
        return 2;
    }
    /* The warnings of the missing/corrupt cases are expected; keep the
     * output readable. */
    kg_log_set_level(KG_LOG_ERROR);
    KG_TEST_RUN(test_is_public);

    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/kg_geoip_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(country_path, sizeof(country_path), "%s/country.mmdb", tmpdir);
    snprintf(asn_path, sizeof(asn_path), "%s/asn.mmdb", tmpdir);
    int rc = access(argv[1], X_OK) == 0 ? make_dbs(argv[1], argv[2]) : 77;
    if (rc != 0) {
        unlink(country_path);
        unlink(asn_path);
        rmdir(tmpdir);
        if (rc == 77) {
            printf("skipped: cannot build the test databases: needs perl and its MaxMind::DB::Writer module "
                   "(Debian: apt-get install libmaxmind-db-writer-perl)\n");
            return 77;
        }
        fprintf(stderr, "%s %s failed (status %d)\n", argv[1], argv[2], rc);
        return 1;
    }
    KG_TEST_RUN(test_lookups);
    KG_TEST_RUN(test_one_part);
    KG_TEST_RUN(test_missing_and_corrupt);
    KG_TEST_RUN(test_threads);
    unlink(country_path);
    unlink(asn_path);
    rmdir(tmpdir);
    KG_TEST_MAIN_END();
}
