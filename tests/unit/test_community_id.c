/*
 * tests/unit/test_community_id.c — Community ID v1 (dissect/community_id.c).
 *
 * Without arguments: the published test vectors, as data. With
 * "--oracle ORACLE.tsv": recomputes every community_id row of the tshark
 * oracle of the real third-party captures (../shared/pcaps/real) from its
 * 5-tuple and compares; exits 77 (skipped) when the file is absent.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dissect/dissect.h"
#include "tests/unit/kg_test.h"

/*
 * Test vectors. Origin:
 *  - corelight/pycommunityid, tests/communityid_test.py (the reference
 *    implementation the specification recommends): TCP, UDP, SCTP, ICMP,
 *    ICMPv6 and port-less IP (RSVP, protocol 46), each with seed 0 and
 *    seed 1 (the "seed1" column; its base64 results);
 *  - corelight/community-id-spec, baseline/baseline_deflt.json (seed 0;
 *    seed1 "" = not published there), computed from the spec's pcaps. Its
 *    ICMP rows list the ports after the type mapping (e.g. 135/136 for a
 *    neighbour solicitation), which the mapping leaves as they are.
 * For ICMP and ICMPv6, sport is the message type and dport the code, as in
 * struct kg_flow_key.
 */
struct vector {
    uint8_t proto;
    const char *saddr, *daddr;
    uint16_t sport, dport;
    const char *seed0, *seed1;
};

static const struct vector vectors[] = {
    /* pycommunityid: ICMP. Echo request and its reply meet; type 20 is
     * one-way, so its code is hashed; an echo reply ignores its code. */
    {1, "192.168.0.89", "192.168.0.1", 8, 0,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {1, "192.168.0.1", "192.168.0.89", 0, 8,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {1, "192.168.0.89", "192.168.0.1", 20, 0,
     "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=", "1:lCXHHxavE1Vq3oX9NH5ladQg02o="},
    {1, "192.168.0.89", "192.168.0.1", 20, 1,
     "1:tz/fHIDUHs19NkixVVoOZywde+I=", "1:Ie3wmFyxiEyikbsbcO03d2nh+PM="},
    {1, "192.168.0.1", "192.168.0.89", 0, 20,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    /* pycommunityid: ICMPv6. Neighbour solicitation/advertisement meet;
     * time exceeded (3) is one-way: the two directions differ. */
    {58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=", "1:OlOWx9psIbBFi7lOCw/4MhlKR9M="},
    {58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0,
     "1:/OGBt9BN1ofenrmSPWYicpij2Vc=", "1:Ij4ZxnC87/MXzhOjvH2vHu7LRmE="},
    /* pycommunityid: SCTP, TCP (the last one: pycommunityid issue 3, a
     * port that sorts differently as text), UDP, RSVP. */
    {132, "192.168.170.8", "192.168.170.56", 7, 80,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {132, "192.168.170.56", "192.168.170.8", 80, 7,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {6, "128.232.110.120", "66.35.250.204", 34855, 80,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    {6, "66.35.250.204", "128.232.110.120", 80, 34855,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    {6, "10.0.0.1", "10.0.0.2", 10, 11569,
     "1:SXBGMX1lBOwhhoDrZynfROxnhnM=", "1:HmBRGR+fUyXF4t8WEtal7Y0gEAo="},
    {17, "192.168.1.52", "8.8.8.8", 54585, 53,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {17, "8.8.8.8", "192.168.1.52", 53, 54585,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {46, "10.1.24.4", "10.1.12.1", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
    {46, "10.1.12.1", "10.1.24.4", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
    /* community-id-spec baseline_deflt.json (seed 0). */
    {58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", ""},
    {58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", ""},
    {58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", ""},
    {58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 135,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", ""},
    {58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", ""},
    {58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", ""},
    {58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", ""},
    {58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", ""},
    {58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", ""},
    {58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00=", ""},
    {1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", ""},
    {1, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", ""},
    {1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM=", ""},
    {6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", ""},
    {6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", ""},
    {132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", ""},
    {132, "192.168.170.56", "192.168.170.8", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", ""},
    {6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", ""},
    {6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", ""},
    {17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", ""},
    {17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", ""},
    {46, "10.1.12.1", "10.1.12.2", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", ""},
    {46, "10.1.12.2", "10.1.12.1", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", ""},
};

/* Fills a key from text addresses; returns 0 or -1. */
static int make_key(struct kg_flow_key *k, uint8_t proto, const char *s, const char *d, uint16_t sp,
                    uint16_t dp)
{
    memset(k, 0, sizeof(*k));
    k->proto = proto;
    k->sport = sp;
    k->dport = dp;
    if (inet_pton(AF_INET, s, k->saddr) == 1 && inet_pton(AF_INET, d, k->daddr) == 1) {
        k->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, k->saddr) == 1 && inet_pton(AF_INET6, d, k->daddr) == 1) {
        k->family = 6;
        return 0;
    }
    return -1;
}

static void test_vectors(void)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(vectors); i++) {
        const struct vector *v = &vectors[i];
        struct kg_flow_key k;
        char out[KG_COMMUNITY_ID_LEN];
        CHECK_EQ_INT(make_key(&k, v->proto, v->saddr, v->daddr, v->sport, v->dport), 0);
        CHECK_EQ_INT(kg_community_id(&k, 0, out), 0);
        if (strcmp(out, v->seed0) != 0) fprintf(stderr, "  vector %zu (seed 0)\n", i);
        CHECK_EQ_STR(out, v->seed0);
        CHECK_EQ_INT(strlen(out), 30);
        if (v->seed1[0]) {
            CHECK_EQ_INT(kg_community_id(&k, 1, out), 0);
            if (strcmp(out, v->seed1) != 0) fprintf(stderr, "  vector %zu (seed 1)\n", i);
            CHECK_EQ_STR(out, v->seed1);
        }
    }
}

/* Port-carrying protocols ignore their ports with with_ports = false, and
 * port-less ones ignore whatever sits in sport/dport. */
static void test_ports_and_args(void)
{
    struct kg_flow_key k;
    char a[KG_COMMUNITY_ID_LEN], b[KG_COMMUNITY_ID_LEN];

    /* RSVP with garbage in the port fields: still the published value. */
    make_key(&k, 46, "10.1.24.4", "10.1.12.1", 1234, 5678);
    CHECK_EQ_INT(kg_community_id(&k, 0, a), 0);
    CHECK_EQ_STR(a, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=");

    /* A UDP fragment hashed without ports: independent of them, direction-
     * free, and different from the ported value. */
    make_key(&k, 17, "192.168.1.52", "8.8.8.8", 54585, 53);
    CHECK_EQ_INT(kg_community_id_ex(&k, 0, false, a), 0);
    make_key(&k, 17, "8.8.8.8", "192.168.1.52", 1, 2);
    CHECK_EQ_INT(kg_community_id_ex(&k, 0, false, b), 0);
    CHECK_EQ_STR(a, b);
    CHECK(strcmp(a, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=") != 0);
    make_key(&k, 17, "8.8.8.8", "192.168.1.52", 53, 54585);
    CHECK_EQ_INT(kg_community_id_ex(&k, 0, true, b), 0);
    CHECK_EQ_STR(b, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");

    /* Same address both ways: the ports decide the order. */
    make_key(&k, 6, "10.0.0.1", "10.0.0.1", 80, 1234);
    CHECK_EQ_INT(kg_community_id(&k, 0, a), 0);
    make_key(&k, 6, "10.0.0.1", "10.0.0.1", 1234, 80);
    CHECK_EQ_INT(kg_community_id(&k, 0, b), 0);
    CHECK_EQ_STR(a, b);

    /* Every seed gives another value. */
    make_key(&k, 6, "128.232.110.120", "66.35.250.204", 34855, 80);
    CHECK_EQ_INT(kg_community_id(&k, 2, a), 0);
    CHECK(strcmp(a, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=") != 0 &&
          strcmp(a, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=") != 0);
    CHECK_EQ_INT(strncmp(a, "1:", 2), 0);

    /* Bad input. */
    k.family = 5;
    kg_strlcpy(a, "junk", sizeof(a));
    CHECK_EQ_INT(kg_community_id(&k, 0, a), KG_ERR_INVAL);
    CHECK_EQ_STR(a, "");
    CHECK_EQ_INT(kg_community_id(NULL, 0, a), KG_ERR_INVAL);
    CHECK_EQ_STR(a, "");
}

/* Random keys: the value never depends on the direction (for every
 * two-way protocol) and is always "1:" + 28 base64 characters. */
static void test_symmetry(void)
{
    uint64_t x = 0x243F6A8885A308D3ull;
    static const uint8_t protos[] = {6, 17, 132, 1, 58, 47, 0};
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        struct kg_flow_key k, r;
        memset(&k, 0, sizeof(k));
        k.family = (x & 1) ? 4 : 6;
        k.proto = protos[(x >> 1) % KG_ARRAY_LEN(protos)];
        uint64_t y = x * 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < 16; i++) {
            k.saddr[i] = (uint8_t)(y >> (i % 8 * 8));
            k.daddr[i] = (uint8_t)(y >> ((i + 3) % 8 * 8)) ^ (uint8_t)i;
        }
        if ((x >> 9) % 8 == 0) memcpy(k.daddr, k.saddr, 16); /* equal addresses now and then */
        k.sport = (uint16_t)(x >> 16);
        k.dport = (uint16_t)(x >> 32);
        r = k;
        memcpy(r.saddr, k.daddr, 16);
        memcpy(r.daddr, k.saddr, 16);
        r.sport = k.dport;
        r.dport = k.sport;
        if (k.proto == 1 || k.proto == 58) {
            /* The reverse of an echo request is its reply, code 0. */
            k.sport = k.proto == 1 ? 8 : 128;
            k.dport = 0;
            r.sport = k.proto == 1 ? 0 : 129;
            r.dport = 0;
        }
        char a[KG_COMMUNITY_ID_LEN], b[KG_COMMUNITY_ID_LEN];
        if (kg_community_id(&k, (uint16_t)x, a) != 0 || kg_community_id(&r, (uint16_t)x, b) != 0 ||
            strcmp(a, b) != 0 || strlen(a) != 30 || a[29] != '=' || strncmp(a, "1:", 2) != 0) {
            if (bad++ < 5) fprintf(stderr, "  asymmetric: proto %u: %s vs %s\n", k.proto, a, b);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* Several threads at once, from the first call on (the SHA1 fetch is a
 * pthread_once; run under -DKG_SANITIZE=thread too). */
static void *hash_worker(void *p)
{
    int *errors = p;
    for (int it = 0; it < 500; it++) {
        const struct vector *v = &vectors[(size_t)it % KG_ARRAY_LEN(vectors)];
        struct kg_flow_key k;
        char out[KG_COMMUNITY_ID_LEN];
        if (make_key(&k, v->proto, v->saddr, v->daddr, v->sport, v->dport) != 0 ||
            kg_community_id(&k, 0, out) != 0 || strcmp(out, v->seed0) != 0)
            (*errors)++;
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    int errors[4] = {0};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, hash_worker, &errors[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(errors[i], 0);
    }
}

/* ---- oracle mode ---------------------------------------------------------------- */

/* Splits a TSV line in place; returns the number of fields. */
static int split_tsv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}

/*
 * Rows carry the 5-tuple of the packet that produced the value. ICMP rows
 * carry no type/code, so the ICMP ones are matched by trying every
 * type/code pair (a SHA1 collision is the only way to match wrongly), and
 * a port-less hash first (tshark hashes non-first IPv4 fragments without
 * ports). Expected: the row's value, or for a cid_selfcheck=MISMATCH row
 * (tshark mixing tunnel layers) the oracle script's own cid_own= value.
 */
static int oracle_row(char **f, const char **why)
{
    const char *value = f[2], *src = f[3], *sport = f[4], *dst = f[5], *dport = f[6], *note = f[10];
    const uint8_t proto = (uint8_t)atoi(f[7]);
    char want[64];
    const char *own = strstr(note, "cid_own=");
    if (strstr(note, "cid_selfcheck=MISMATCH") && own) {
        size_t n = strcspn(own + 8, ";\r\n");
        if (n >= sizeof(want)) n = sizeof(want) - 1;
        memcpy(want, own + 8, n);
        want[n] = '\0';
    } else {
        kg_strlcpy(want, value, sizeof(want));
    }
    struct kg_flow_key k;
    const bool has_ports = *sport && *dport;
    if (make_key(&k, proto, src, dst, has_ports ? (uint16_t)atoi(sport) : 0,
                 has_ports ? (uint16_t)atoi(dport) : 0) < 0) {
        *why = "bad address";
        return -1;
    }
    char out[KG_COMMUNITY_ID_LEN];
    if (has_ports) {
        kg_community_id(&k, 0, out);
        *why = "5-tuple";
        return strcmp(out, want) == 0 ? 0 : -1;
    }
    kg_community_id_ex(&k, 0, false, out);
    if (strcmp(out, want) == 0) {
        *why = "port-less";
        return 0;
    }
    if (proto == 1 || proto == 58) {
        for (unsigned t = 0; t < 256; t++) {
            for (unsigned c = 0; c < 256; c++) {
                k.sport = (uint16_t)t;
                k.dport = (uint16_t)c;
                kg_community_id(&k, 0, out);
                if (strcmp(out, want) == 0) {
                    *why = "icmp type/code";
                    return 0;
                }
            }
        }
    }
    *why = "no match";
    return -1;
}

static int run_oracle(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        printf("skipped: %s is absent (the real capture set is not shipped with the repository)\n", path);
        return 77;
    }
    char line[8192];
    long rows = 0, ok_rows = 0, own_rows = 0, mismatch_rows = 0, icmp_rows = 0, failed = 0;
    while (fgets(line, sizeof(line), fp)) {
        char *f[12];
        if (split_tsv(line, f, 12) < 11 || strcmp(f[1], "community_id") != 0) continue;
        f[10][strcspn(f[10], "\r\n")] = '\0';
        rows++;
        if (strstr(f[10], "cid_selfcheck=ok")) ok_rows++;
        if (strstr(f[10], "cid_by=own")) own_rows++;
        if (strstr(f[10], "cid_selfcheck=MISMATCH")) mismatch_rows++;
        const char *why = "";
        int rc = oracle_row(f, &why);
        if (strcmp(why, "icmp type/code") == 0) icmp_rows++;
        CHECK_EQ_INT(rc, 0); /* one check per row */
        if (rc != 0) {
            failed++;
            fprintf(stderr, "MISMATCH %s frame %s: %s %s -> %s %s proto %s: want %s (%s) [%s]\n", f[0], f[8],
                    f[3], f[4], f[5], f[6], f[7], f[2], why, f[10]);
        }
    }
    fclose(fp);
    printf("oracle: %ld community_id rows (%ld cid_selfcheck=ok, %ld cid_by=own, %ld tunnel MISMATCH checked "
           "against cid_own), %ld ICMP rows matched through their type/code, %ld failed\n",
           rows, ok_rows, own_rows, mismatch_rows, icmp_rows, failed);
    CHECK(rows > 0);
    CHECK_EQ_INT(failed, 0);
    KG_TEST_MAIN_END();
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--oracle") == 0) return run_oracle(argv[2]);
    KG_TEST_RUN(test_threads); /* first: the threads race for the one-time set-up */
    KG_TEST_RUN(test_vectors);
    KG_TEST_RUN(test_ports_and_args);
    KG_TEST_RUN(test_symmetry);
    KG_TEST_MAIN_END();
}
