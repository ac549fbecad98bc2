/*
 * bench/bench_indicators.c — the indicator engine at national scale.
 *
 * Generates N mixed indicators (default 10 million: 40% IPv4 addresses, 10%
 * CIDR blocks of mixed lengths (a tenth of them IPv6), 5% IPv6 addresses,
 * 30% domains, 5% URLs (a tenth of them prefixes, "host/dir/" and a star), 10% hashes: JA3, certificate SHA1,
 * file MD5/SHA1/SHA256, JA4) into a Zeek Intel file in a temporary directory, loads it (wall time; peak
 * resident memory from VmHWM in /proc/self/status), then measures lookups per second on one core for each
 * kind with a half-hit, half-miss workload in random order, and the same on
 * all cores at once; each measurement is the median of -r passes (5).
 *
 *   bench_indicators [-n N] [-q QUERIES] [-r REPS] [-t THREADS] [-k KIND] [-d DIR] [--keep]
 *
 * Values are derived from their index through a mixing function, so the
 * feed is streamed to disk (the generator holds no list) and hits are made
 * by regenerating a member. Members and misses come from disjoint ranges
 * (addresses), alphabets (names) or are 128-bit random (hashes), so the
 * expected answer of every query is known and checked.
 *
 * Exit status: 0 when every check passed (targets are reported, not
 * enforced: they depend on the machine), 1 on a wrong answer or error.
 * Threads: the generator and loader run on the main thread; lookups run on
 * -t threads against the one immutable set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "indicators/indicators.h"

/* --- deterministic values ------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser: any index gives an independent-looking word. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

enum kind { K_V4, K_NET, K_V6, K_DOM, K_URL, K_HASH, K_COUNT };
static const char *const kind_name[K_COUNT] = {"IPv4 address", "CIDR (v4+v6)", "IPv6 address",
                                               "domain",       "URL",          "hash (JA3/cert/file/JA4)"};
/* Shares of the total, in thousandths (the 4M/1M/0.5M/3M/0.5M/1M of 10M). */
static const unsigned kind_share[K_COUNT] = {400, 100, 50, 300, 50, 100};

struct gen {
    uint64_t n[K_COUNT];
};

static const char *const tlds[] = {"com", "net", "org", "ru", "cn", "info", "biz", "top", "xyz", "io",
                                   "de",  "uk",  "fr",  "br", "in", "jp",   "su",  "cc",  "tk",  "online"};

/* Lower-case letters only: member names never contain a digit, miss names
 * always do, so they cannot collide. */
static size_t label(char *out, uint64_t r, unsigned minlen, unsigned span)
{
    size_t n = minlen + r % span;
    r = mix(r);
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)('a' + r % 26);
        r /= 26;
        if (r < 26) r = mix(r + i);
    }
    return n;
}

/* IPv4 members live in 1.0.0.0-191.255.255.255, misses in 192.0.0.0-223.255.255.255. */
static uint32_t v4_member(uint64_t i)
{
    return 0x01000000u + (uint32_t)(mix(i ^ 0x1111) % 0xbf000000u);
}

static unsigned net_len(uint64_t r)
{
    unsigned p = (unsigned)(r % 100);
    if (p < 2) return 12 + (unsigned)(r >> 8) % 4;   /* /12-/15 */
    if (p < 32) return 16 + (unsigned)(r >> 8) % 8;  /* /16-/23 */
    if (p < 72) return 24;                           /* /24 */
    return 25 + (unsigned)(r >> 8) % 7;              /* /25-/31 */
}

static const unsigned v6_net_lens[] = {32, 48, 56, 64};

/* Value of member i of kind k, and its Zeek type; for a CIDR, also the
 * network (addr, plen, family). */
struct member {
    char value[160];
    const char *type;
    uint8_t addr[16];
    unsigned plen;
    int family;
};

static void v6_member(uint8_t *a, uint64_t i, uint8_t top)
{
    uint64_t r1 = mix(i ^ 0x6666), r2 = mix(r1);
    memcpy(a, &r1, 8);
    memcpy(a + 8, &r2, 8);
    a[0] = (uint8_t)(top | (a[0] & 0x0f)); /* 2000::/4 members, 3000::/4 misses */
}

static void make_member(enum kind k, uint64_t i, struct member *m)
{
    uint64_t r = mix(i * 8 + (uint64_t)k);
    m->family = 0;
    m->plen = 0;
    switch (k) {
    case K_V4: {
        uint32_t a = htonl(v4_member(i));
        memcpy(m->addr, &a, 4);
        inet_ntop(AF_INET, m->addr, m->value, sizeof(m->value));
        m->type = "Intel::ADDR";
        m->family = 4;
        m->plen = 32;
        break;
    }
    case K_NET:
        if (i % 10 == 9) {
            v6_member(m->addr, i, 0x20);
            m->plen = v6_net_lens[r % 4];
            m->family = 6;
            for (unsigned b = m->plen; b < 128; b++)
                m->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
            char ip[64];
            inet_ntop(AF_INET6, m->addr, ip, sizeof(ip));
            snprintf(m->value, sizeof(m->value), "%s/%u", ip, m->plen);
        } else {
            m->plen = net_len(r);
            uint32_t a = v4_member(i ^ 0xabcdef) & (0xffffffffu << (32 - m->plen));
            uint32_t be = htonl(a);
            memcpy(m->addr, &be, 4);
            m->family = 4;
            char ip[32];
            inet_ntop(AF_INET, m->addr, ip, sizeof(ip));
            snprintf(m->value, sizeof(m->value), "%s/%u", ip, m->plen);
        }
        m->type = "Intel::SUBNET";
        break;
    case K_V6:
        v6_member(m->addr, i ^ 0x5a5a5a, 0x20);
        inet_ntop(AF_INET6, m->addr, m->value, sizeof(m->value));
        m->type = "Intel::ADDR";
        m->family = 6;
        m->plen = 128;
        break;
    case K_DOM: {
        size_t n = label(m->value, r, 5, 10);
        m->value[n++] = '.';
        if (r % 3 == 0) {
            /* A name under a public suffix ("x.co.uk"); those labels are
             * shorter than any listed second-level name, so a miss's
             * parents are never listed. */
            static const char *const sl[] = {"co", "com", "net", "org", "ac", "gov"};
            const char *l2 = sl[(r >> 20) % 6];
            memcpy(m->value + n, l2, strlen(l2));
            n += strlen(l2);
            m->value[n++] = '.';
        }
        const char *t = tlds[(r >> 40) % (sizeof(tlds) / sizeof(tlds[0]))];
        memcpy(m->value + n, t, strlen(t) + 1);
        m->type = "Intel::DOMAIN";
        break;
    }
    case K_URL: {
        size_t n = (size_t)snprintf(m->value, sizeof(m->value), "http://");
        n += label(m->value + n, r, 6, 8);
        n += (size_t)snprintf(m->value + n, sizeof(m->value) - n, ".com/");
        n += label(m->value + n, mix(r), 4, 12);
        if (i % 10 == 9) /* a tenth are prefixes: a directory of the host */
            snprintf(m->value + n, sizeof(m->value) - n, "/*");
        else
            snprintf(m->value + n, sizeof(m->value) - n, ".php?id=%llu", (unsigned long long)(r % 100000));
        m->type = "Intel::URL";
        break;
    }
    default: { /* hashes: 20% JA3, 20% cert, 50% file (md5/sha1/sha256), 10% JA4 */
        static const char hx[] = "0123456789abcdef";
        unsigned sel = (unsigned)(i % 10);
        size_t digits = sel < 2 ? 32 : sel < 4 ? 40 : sel < 9 ? (size_t[]){32, 40, 64}[i % 3] : 0;
        uint64_t w = r;
        if (digits) {
            for (size_t d = 0; d < digits; d++) {
                if (d % 16 == 0) w = mix(w + d);
                m->value[d] = hx[w & 15];
                w >>= 4;
            }
            m->value[digits] = '\0';
            m->type = sel < 2 ? "Intel::JA3" : sel < 4 ? "Intel::CERT_HASH" : "Intel::FILE_HASH";
        } else {
            int o = snprintf(m->value, sizeof(m->value), "t13d%02u%02uh2_", (unsigned)(w % 100),
                             (unsigned)((w >> 8) % 100));
            for (int d = 0; d < 25; d++) {
                if (d % 16 == 0) w = mix(w + (uint64_t)d);
                m->value[o + d] = d == 12 ? '_' : hx[w & 15];
                w >>= 4;
            }
            m->value[o + 25] = '\0';
            m->type = "Intel::JA4";
        }
        break;
    }
    }
}

/* --- helpers ------------------------------------------------------------------- */

static double now_s(void)
{
    return (double)kg_monotonic_ns() / 1e9;
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, k) == 0) v = strtol(line + k + 1, NULL, 10);
    fclose(f);
    return v;
}

static void cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(out, size, "%s", c + 2);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* --- queries -------------------------------------------------------------------- */

struct query {
    uint8_t addr[16];
    uint8_t family;
    uint8_t hit;        /* expected */
    uint8_t htype;      /* hash: enum kg_ind_type */
    uint32_t off, len;  /* string in the text arena */
    uint32_t off2, len2; /* URL: path */
};

struct workload {
    enum kind k;
    struct query *q;
    size_t nq;
    char *text;
    const struct kg_indicator_set *s;
};

static enum kg_ind_type type_of_zeek(const char *t)
{
    if (strcmp(t, "Intel::JA3") == 0) return KG_IND_JA3;
    if (strcmp(t, "Intel::CERT_HASH") == 0) return KG_IND_CERT_HASH;
    if (strcmp(t, "Intel::JA4") == 0) return KG_IND_JA4;
    return KG_IND_FILE_HASH;
}

static void build_queries(struct workload *w, enum kind k, size_t nq, uint64_t nmembers, uint64_t seed)
{
    w->k = k;
    w->nq = nq;
    w->q = calloc(nq, sizeof(*w->q));
    w->text = malloc(nq * 192);
    size_t to = 0;
    for (size_t i = 0; i < nq; i++) {
        struct query *q = &w->q[i];
        uint64_t r = mix(seed + i);
        bool hit = r & 1;
        q->hit = hit;
        struct member m;
        make_member(k, (r >> 8) % nmembers, &m);
        if (!hit) {
            /* A miss of the same shape. */
            uint64_t r2 = mix(r);
            switch (k) {
            case K_V4:
                m.addr[0] = (uint8_t)(192 + r2 % 32);
                break;
            case K_NET:
                if (m.family == 4)
                    m.addr[0] = (uint8_t)(192 + r2 % 32);
                else
                    m.addr[0] = (uint8_t)(0x30 | (m.addr[0] & 0x0f));
                break;
            case K_V6:
                m.addr[0] = (uint8_t)(0x30 | (m.addr[0] & 0x0f));
                break;
            case K_DOM: {
                char *dot = strchr(m.value, '.');
                *(dot - 1) = (char)('0' + r2 % 10); /* a digit: no member has one */
                break;
            }
            case K_URL: {
                size_t vl = strlen(m.value);
                if (m.value[vl - 1] == '*') {
                    /* Another directory of the host: a digit in its name. */
                    memcpy(m.value + vl - 2, "1/*", 4);
                } else {
                    char *q2 = strrchr(m.value, '=');
                    snprintf(q2 + 1, 24, "x%llu", (unsigned long long)(r2 % 1000));
                }
                break;
            }
            default:
                /* A value past the members' indices: same type mix
                 * (index mod 10), 96+ random bits, never listed. */
                make_member(k, (r >> 8) % nmembers + (nmembers + 9) / 10 * 30, &m);
                break;
            }
        }
        q->family = (uint8_t)m.family;
        switch (k) {
        case K_V4:
        case K_V6:
            memcpy(q->addr, m.addr, 16);
            break;
        case K_NET: {
            /* A random address inside the (member or miss) network. */
            memcpy(q->addr, m.addr, 16);
            unsigned bits = m.family == 4 ? 32 : 128;
            uint64_t rr = mix(r ^ 77);
            for (unsigned b = m.plen; b < bits; b++, rr = (b % 64) ? rr >> 1 : mix(rr))
                if (rr & 1) q->addr[b / 8] |= (uint8_t)(0x80u >> (b % 8));
            break;
        }
        case K_DOM: {
            /* Half the queries ask for a subdomain of the listed name. */
            int n = snprintf(w->text + to, 192, "%s%s", (r >> 1) & 1 ? "www." : "", m.value);
            q->off = (uint32_t)to;
            q->len = (uint32_t)n;
            to += (size_t)n;
            break;
        }
        case K_URL: {
            const char *host = m.value + 7, *path = strchr(host, '/');
            size_t hl = (size_t)(path - host);
            memcpy(w->text + to, host, hl);
            q->off = (uint32_t)to;
            q->len = (uint32_t)hl;
            to += hl;
            size_t pl = strlen(path);
            if (path[pl - 1] == '*') {
                /* A prefix: a file in the directory. */
                pl = (size_t)snprintf(m.value + 160 - 64, 64, "%.*sf.php?id=%llu", (int)(pl - 1), path,
                                      (unsigned long long)(r % 1000));
                path = m.value + 160 - 64;
            }
            memcpy(w->text + to, path, pl);
            q->off2 = (uint32_t)to;
            q->len2 = (uint32_t)pl;
            to += pl;
            break;
        }
        default: {
            size_t n = strlen(m.value);
            memcpy(w->text + to, m.value, n);
            q->off = (uint32_t)to;
            q->len = (uint32_t)n;
            q->htype = (uint8_t)type_of_zeek(m.type);
            to += n;
            break;
        }
        }
    }
}

/* Queries per kg_indicator_match_batch() call (--burst). */
static size_t g_burst = 64;

/* Runs the workload; returns the number of answers that differ from the
 * expected hit/miss. */
static size_t run(const struct workload *w, uint64_t now)
{
    size_t wrong = 0;
    const struct kg_indicator_set *s = w->s;
    for (size_t i = 0; i < w->nq; i++) {
        const struct query *q = &w->q[i];
        const struct kg_indicator *ind;
        switch (w->k) {
        case K_V4:
        case K_V6:
        case K_NET:
            ind = kg_indicator_match_addr(s, q->family, q->addr, now);
            break;
        case K_DOM:
            ind = kg_indicator_match_domain(s, w->text + q->off, q->len, now);
            break;
        case K_URL:
            ind = kg_indicator_match_url(s, w->text + q->off, q->len, w->text + q->off2, q->len2, now);
            break;
        default:
            ind = kg_indicator_match_hash(s, (enum kg_ind_type)q->htype, w->text + q->off, q->len, now);
            break;
        }
        wrong += (ind != NULL) != q->hit;
    }
    return wrong;
}

/* The same workload through kg_indicator_match_batch, in bursts of 64
 * (what a worker would collect from one batch of packets). */
static size_t run_batch(const struct workload *w, uint64_t now)
{
    enum { BURST_MAX = 4096 };
    const size_t BURST = g_burst;
    struct kg_indicator_query qs[BURST_MAX];
    const struct kg_indicator *out[BURST_MAX];
    size_t wrong = 0;
    for (size_t base = 0; base < w->nq; base += BURST) {
        size_t n = w->nq - base < BURST ? w->nq - base : BURST;
        for (size_t i = 0; i < n; i++) {
            const struct query *q = &w->q[base + i];
            struct kg_indicator_query *x = &qs[i];
            memset(x, 0, sizeof(*x));
            switch (w->k) {
            case K_V4:
            case K_V6:
            case K_NET:
                x->type = KG_IND_ADDR;
                x->family = q->family;
                x->value = q->addr;
                break;
            case K_DOM:
                x->type = KG_IND_DOMAIN;
                x->value = w->text + q->off;
                x->len = q->len;
                break;
            case K_URL:
                x->type = KG_IND_URL;
                x->value = w->text + q->off;
                x->len = q->len;
                x->uri = w->text + q->off2;
                x->uri_len = q->len2;
                break;
            default:
                x->type = (enum kg_ind_type)q->htype;
                x->value = w->text + q->off;
                x->len = q->len;
                break;
            }
        }
        kg_indicator_match_batch(w->s, qs, n, out, now);
        for (size_t i = 0; i < n; i++)
            wrong += (out[i] != NULL) != w->q[base + i].hit;
    }
    return wrong;
}

struct thread_arg {
    const struct workload *w;
    size_t wrong;
    uint64_t now;
    bool batch;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    a->wrong = a->batch ? run_batch(a->w, a->now) : run(a->w, a->now);
    return NULL;
}

/* Lookups per second (millions) of the workload on nt threads at once. */
static double timed(const struct workload *w, uint64_t now, bool batch, long nt, size_t *wrong)
{
    pthread_t th[64];
    struct thread_arg ta[64];
    double t1 = now_s();
    for (long t = 0; t < nt; t++) {
        ta[t] = (struct thread_arg){.w = w, .now = now, .batch = batch};
        pthread_create(&th[t], NULL, thread_main, &ta[t]);
    }
    for (long t = 0; t < nt; t++) {
        pthread_join(th[t], NULL);
        *wrong += ta[t].wrong;
    }
    return (double)w->nq * (double)nt / (now_s() - t1) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Repetitions of every measurement (-r). The machine is shared: a
 * neighbour's burst during one pass of a fraction of a second moves that
 * pass by 10-20%, so the median of several is reported, with the range. */
static int g_reps = 5;

/* timed() repeated g_reps times: the median, and the slowest and fastest
 * pass in *lo and *hi. */
static double timed_median(const struct workload *w, uint64_t now, bool batch, long nt, size_t *wrong,
                           double *lo, double *hi)
{
    double r[64];
    for (int i = 0; i < g_reps; i++)
        r[i] = timed(w, now, batch, nt, wrong);
    qsort(r, (size_t)g_reps, sizeof(r[0]), cmp_double);
    *lo = r[0];
    *hi = r[g_reps - 1];
    return g_reps % 2 ? r[g_reps / 2] : (r[g_reps / 2 - 1] + r[g_reps / 2]) / 2;
}

/* --- main ----------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_indicators [-n INDICATORS] [-q QUERIES] [-r REPS] [-t THREADS] [-k KIND] "
                    "[-d DIR] [--keep] [--batch-only] [--burst N]\n"
                    "  KIND: 0 IPv4, 1 CIDR, 2 IPv6, 3 domain, 4 URL, 5 hashes (default: all)\n"
                    "  REPS: passes per measurement, the median reported (default 5, at most 64)\n"
                    "  --batch-only: time kg_indicator_match_batch only (single calls print 0)\n"
                    "  --burst N: queries per kg_indicator_match_batch call (default 64, at most 4096)\n");
}

int main(int argc, char **argv)
{
    uint64_t total = 10000000;
    size_t nq = 2000000;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *dir = NULL;
    bool batch_only = false;
    bool keep = false;
    int only = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            total = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-q") == 0 && i + 1 < argc) {
            nq = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            g_reps = atoi(argv[++i]);
            if (g_reps < 1 || g_reps > 64) {
                usage();
                return 2;
            }
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
            only = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = true;
        } else if (strcmp(argv[i], "--batch-only") == 0) {
            batch_only = true;
        } else if (strcmp(argv[i], "--burst") == 0 && i + 1 < argc) {
            g_burst = (size_t)atol(argv[++i]);
            if (g_burst < 1 || g_burst > 4096) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (total < 100 || nq < 10 || threads < 1) {
        usage();
        return 2;
    }
    kg_log_set_level(KG_LOG_WARN);
    char cpu[256];
    cpu_model(cpu, sizeof(cpu));
    printf("machine: %ld cores, %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu);

    char tmpl[] = "/tmp/kagami-bench-XXXXXX";
    char path[1200];
    if (!dir) {
        dir = mkdtemp(tmpl);
        if (!dir) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(path, sizeof(path), "%s/bench.intel", dir);

    /* Generate. */
    struct gen g;
    uint64_t assigned = 0;
    for (int k = 0; k < K_COUNT; k++) {
        g.n[k] = total * kind_share[k] / 1000;
        assigned += g.n[k];
    }
    g.n[K_DOM] += total - assigned;
    double t0 = now_s();
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fprintf(f, "#fields\tindicator\tindicator_type\tmeta.source\n");
    /* Kinds interleaved, as a merged national feed would be. */
    uint64_t done[K_COUNT] = {0};
    for (uint64_t line = 0; line < total; line++) {
        int k = (int)(mix(line ^ 0xfeed) % 1000);
        int kind = 0;
        for (unsigned acc = 0; kind < K_COUNT - 1; kind++) {
            acc += kind_share[kind];
            if ((unsigned)k < acc) break;
        }
        while (done[kind] >= g.n[kind])
            kind = (kind + 1) % K_COUNT;
        struct member m;
        make_member((enum kind)kind, done[kind]++, &m);
        fprintf(f, "%s\t%s\tbench-%d\n", m.value, m.type, kind);
    }
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    struct stat st;
    stat(path, &st);
    printf("generated %llu indicators into %s (%.0f MiB) in %.1f s\n", (unsigned long long)total, path,
           (double)st.st_size / 1048576.0, now_s() - t0);

    /* Load. */
    long rss0 = status_kib("VmRSS:");
    struct kg_indicator_set *s = kg_indicator_set_new();
    struct kg_indicator_load_report rep;
    struct kg_err err;
    t0 = now_s();
    if (kg_indicator_set_load_file(s, path, &rep, &err) != 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    kg_indicator_set_finalize(s);
    double load_s = now_s() - t0;
    long hwm = status_kib("VmHWM:"), rss = status_kib("VmRSS:");
    printf("loaded %llu indicators (%llu duplicates, %llu bad lines) in %.2f s; peak RSS %.0f MiB, "
           "RSS after load %.0f MiB (before %.0f MiB)\n",
           (unsigned long long)rep.loaded, (unsigned long long)rep.duplicates, (unsigned long long)rep.bad_lines,
           load_s, hwm / 1024.0, rss / 1024.0, rss0 / 1024.0);
    for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
        if (kg_indicator_set_count(s, (enum kg_ind_type)t))
            printf("  %-10s %zu\n", kg_ind_type_name((enum kg_ind_type)t), kg_indicator_set_count(s, (enum kg_ind_type)t));
    if (!keep) {
        unlink(path);
        if (strncmp(dir, "/tmp/kagami-bench-", 18) == 0) rmdir(dir);
    }
    int status = rep.bad_lines ? 1 : 0;

    /* Lookups. */
    uint64_t now = kg_realtime_us();
    printf("\nlookups, half hits, half misses, in M lookups/s (one core; %ld threads at once); median of %d "
           "passes,\n"
           "the batch's slowest-fastest pass on one core in brackets\n",
           threads, g_reps);
    printf("%-26s %10s %10s %13s %12s %12s\n", "", "single", "batch", "(range)", "single x", "batch x");
    double min_single = 1e30, min_batch = 1e30;
    long nt = threads > 64 ? 64 : threads;
    for (int k = 0; k < K_COUNT; k++) {
        if (only >= 0 && k != only) continue;
        struct workload w = {.s = s};
        build_queries(&w, (enum kind)k, nq, g.n[k], 0x1234567ull * (uint64_t)(k + 1));
        size_t wrong = run(&w, now); /* warm up */
        wrong = 0;
        double lo, hi, blo, bhi;
        double r1 = batch_only ? 0 : timed_median(&w, now, false, 1, &wrong, &lo, &hi);
        double b1 = timed_median(&w, now, true, 1, &wrong, &blo, &bhi);
        double rn = batch_only ? 0 : timed_median(&w, now, false, nt, &wrong, &lo, &hi);
        double bn = timed_median(&w, now, true, nt, &wrong, &lo, &hi);
        if (!batch_only && r1 < min_single) min_single = r1;
        if (b1 < min_batch) min_batch = b1;
        char range[32];
        snprintf(range, sizeof(range), "(%.1f-%.1f)", blo, bhi);
        printf("%-26s %10.1f %10.1f %13s %12.1f %12.1f%s\n", kind_name[k], r1, b1, range, rn, bn,
               wrong ? "  WRONG ANSWERS" : "");
        if (wrong) {
            fprintf(stderr, "%s: %zu wrong answers\n", kind_name[k], wrong);
            status = 1;
        }
        free(w.q);
        free(w.text);
    }
    double min_rate = min_batch;
    printf("\ntargets: load < 20 s: %s (%.1f s); peak RSS < 1536 MiB: %s (%.0f MiB); "
           "> 10 M lookups/s per core: %s (slowest kind: %.1f M/s batched, %.1f M/s single)\n",
           load_s < 20 ? "met" : "MISSED", load_s, hwm < 1536 * 1024 ? "met" : "MISSED", hwm / 1024.0,
           min_rate > 10 ? "met" : "MISSED", min_rate, batch_only ? 0.0 : min_single);
    kg_indicator_set_free(s);
    return status;
}
