/*
 * bench/gen_traffic.c — writes a synthetic capture of realistic LAN traffic
 * (or of a flood) for the pipeline benchmark and the flood test.
 *
 *   gen_traffic --out FILE [--bytes N | --packets N] [--seed S] [--rate-mbps R]
 *               [--clients N] [--servers N] [--active N] [--cert-dir DIR] [-q]
 *   gen_traffic --flood syn|frag|mixed --out FILE [--packets N] [--seed S] [-q]
 *
 * Output: a classic libpcap file (microsecond timestamps, DLT_EN10MB), the
 * same bytes for the same options and seed (the generator has its own PRNG
 * and reads no clock; only libm's log/exp/cos could differ between C
 * libraries). Frames are built by hand, every checksum is right,
 * and frames below the Ethernet minimum carry the zero padding a SPAN port
 * shows.
 *
 * THE TRAFFIC MODEL: the uplink of a ministry LAN seen on a SPAN port.
 *
 *   Hosts: --clients workstations (default 40,000) in 10.16.0.0/16, 254 per
 *   /24, one /24 per floor; 1 in 5 is dual-stack (2001:db8:10::/48); about
 *   half the floors are on an 802.1Q trunk (VLAN 100-115). --servers
 *   Internet servers (default 30,000) in 198.18.0.0/15 (RFC 2544, the
 *   benchmarking range) and 2001:db8:ff00::/40, chosen with a Zipf (s = 1)
 *   popularity; internal servers: resolvers 10.0.0.53/54, domain
 *   controllers 10.0.0.10/11, NTP 10.0.0.123, file servers 10.0.2.10-29,
 *   intranet web 10.0.1.10-19. Names: 20,000 sites under .example,
 *   .example.com, .example.net, .example.org, .test, Zipf popularity;
 *   internal names under ministry.lan.
 *
 *   Flows, by share of flow starts (kind_weight; the shares of packets and
 *   bytes they end up with are printed by the generator and given in
 *   docs/PERFORMANCE.md):
 *     DNS over UDP      45 %   query (A 60 %, AAAA 25 %, HTTPS 10 %, MX, TXT,
 *                              PTR), half with EDNS; response with a CNAME
 *                              (30 %), 1-4 addresses, 5 % NXDOMAIN, 3 % large
 *                              TXT; 15 % of names internal (ministry.lan)
 *     DNS over TCP     0.5 %   the same, length-prefixed, with larger answers
 *     TLS over TCP      29 %   ClientHello with SNI from four client profiles
 *                              (Chrome-like with GREASE and extension
 *                              permutation, Firefox-like, Windows
 *                              SChannel-like TLS 1.2, OpenSSL-like); server
 *                              in TLS 1.2 (SChannel, and 30 % of the others:
 *                              ServerHello, Certificate, ServerKeyExchange,
 *                              ServerHelloDone) or TLS 1.3 (ServerHello,
 *                              ChangeCipherSpec, encrypted flight); 1-8
 *                              request/response exchanges of application-data
 *                              records (responses log-normal, median 2.5 KB,
 *                              sigma 1.6; 1 session in 200 a download, median
 *                              1 MB; 1 exchange in 500 an upload, median
 *                              100 KB); close_notify; FIN (or 5 % RST)
 *     HTTP/1.1           5 %   1-4 keep-alive transactions to the Internet or
 *                              the intranet: GET (85 %) or POST with a form
 *                              body; 200 with a text (median 5 KB) or binary
 *                              (median 8 KB) body, 0.5 % downloads (median
 *                              1 MB), 12 % 304, 4 % 404
 *     QUIC-like UDP      4 %   client Initial padded to 1,250 bytes, server
 *                              Initial/Handshake, then 1,252-byte short-header
 *                              packets (median 8 KB per exchange) with a client
 *                              ACK every 3 (payloads random: they do not
 *                              decrypt, but the sensor tries, as it must)
 *     SMB2-like TCP 445  3 %   NetBIOS + SMB2 headers, 2-9 reads (median 6 KB)
 *                              from the file servers
 *     LDAP-like TCP 389  4 %   small BER exchanges with the domain controllers
 *     ICMP               3 %   4 echo requests/replies (Windows or Linux
 *                              payloads); 10 % port unreachable quoting UDP
 *     NTP              2.6 %   client/server mode 3/4, 48 bytes
 *     ARP                1 %   who-has broadcasts
 *     failed TCP         2 %   SYN answered by RST, or SYN retransmitted twice
 *                              to a host that does not answer
 *   Certificates: pcaps/src/benign.der made into a CA-issued leaf (its issuer
 *   name changed, so issuer != subject as on real servers) with a serial
 *   number per server (one certificate per server, as many distinct ones as
 *   servers), then server.der as the intermediate.
 *   Indicators: one name in 20,000 (DNS, SNI, Host) is a domain of
 *   config/indicators/demo.intel, so that the alert path runs a little, as
 *   it would on a real network.
 *
 *   TCP: three-way handshake with the options of the client's OS (Windows:
 *   MSS 1460, no timestamps; others: MSS 1448 + timestamps); sequence and
 *   acknowledgement numbers consistent in both directions; a delayed ACK
 *   every second full segment; flights of up to cwnd segments (10, doubling
 *   per round trip, at most 32), so that the packet size distribution has
 *   the two humps of real traffic (ACKs and DNS below 128 bytes, bulk data
 *   at 1,500).
 *
 *   Interleaving and time: --active sessions (default 2,048) run at once; each
 *   step picks one at random and lets it send its next flight; a finished
 *   session is replaced by a new one drawn from the mix. The clock advances
 *   per packet by an exponentially distributed gap whose mean puts the
 *   capture at --rate-mbps (default 1,000) of link load.
 *
 * FLOODS (--flood; default 1,500,000 packets, 1 µs apart):
 *   syn    TCP SYNs from random IPv4 sources and ports (10 % IPv6) to a few
 *          servers: every packet a new flow.
 *   frag   IPv4 fragments (20 % IPv6) from random sources with random IDs, MF
 *          always set, random offsets, 8-256 bytes each; a quarter add a
 *          fragment to a recent datagram; no datagram is ever complete.
 *   mixed  40 % syn, 30 % frag, 15 % UDP from random sources and ports, 10 %
 *          TCP segments starting a TLS ClientHello of 16 KB that never
 *          completes (the sensor holds handshake bytes for each), 5 % ICMP
 *          echo from random sources.
 *
 * Threads: none. Memory: the sessions' handshake buffers and two payload
 * pools (5 MiB); the output goes through an 8 MiB stdio buffer.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KG_GEN_CERT_DIR
#define KG_GEN_CERT_DIR "pcaps/src"
#endif

#define TS_START 1700000000u /* 2023-11-14T22:13:20Z, as pcaps/ */
#define MAX_FRAME 1600
#define MAX_MSG 24
#define RAND_POOL (4u << 20)
#define TEXT_POOL (1u << 20)
#define NSITES 20000u
#define TLS_REC 16401u /* TLS 1.3 ciphertext record: 16384 + type + 16-byte tag */

/* ---- PRNG: xoshiro256** seeded by splitmix64 ------------------------------- */

static uint64_t rs[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rnd64(void)
{
    uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
    rs[2] ^= rs[0];
    rs[3] ^= rs[1];
    rs[1] ^= rs[2];
    rs[0] ^= rs[3];
    rs[2] ^= t;
    rs[3] = rotl(rs[3], 45);
    return r;
}

/* Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32). */
static inline uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(((rnd64() >> 32) * (uint64_t)n) >> 32);
}

static inline double rnd_unit(void)
{
    return (double)(rnd64() >> 11) * (1.0 / 9007199254740992.0);
}

static inline bool chance(double p)
{
    return rnd_unit() < p;
}

static double rnd_normal(void)
{
    double u = rnd_unit(), v = rnd_unit();
    return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

/* Log-normal with the given median; sigma is the spread of its logarithm. */
static uint32_t rnd_lognormal(double median, double sigma, uint32_t lo, uint32_t hi)
{
    double x = median * exp(sigma * rnd_normal());
    if (x < lo) return lo;
    if (x > hi) return hi;
    return (uint32_t)x;
}

static void rnd_fill(uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t r = rnd64();
        memcpy(p, &r, 8);
        p += 8, n -= 8;
    }
    if (n) {
        uint64_t r = rnd64();
        memcpy(p, &r, n);
    }
}

/* Zipf(s = 1) over n items: cumulative weights, sampled by bisection. */
struct zipf {
    double *cdf;
    uint32_t n;
};

static void zipf_init(struct zipf *z, uint32_t n)
{
    z->n = n;
    z->cdf = malloc(n * sizeof(double));
    if (!z->cdf) abort();
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        z->cdf[i] = (sum += 1.0 / (i + 1));
    for (uint32_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
}

static uint32_t zipf_draw(const struct zipf *z)
{
    double u = rnd_unit();
    uint32_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- byte helpers ------------------------------------------------------------ */

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void wr24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A growable byte string for building handshake messages and headers. */
struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static void b_need(struct bytes *b, size_t n)
{
    if (b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
}

static void b_put(struct bytes *b, const void *p, size_t n)
{
    b_need(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void b_u8(struct bytes *b, uint8_t v)
{
    b_put(b, &v, 1);
}

static void b_u16(struct bytes *b, uint16_t v)
{
    uint8_t x[2];
    wr16(x, v);
    b_put(b, x, 2);
}

static void b_rand(struct bytes *b, size_t n)
{
    b_need(b, n);
    rnd_fill(b->p + b->len, n);
    b->len += n;
}

static void b_str(struct bytes *b, const char *s)
{
    b_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void b_printf(struct bytes *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    b_need(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Opens a length field of `width` bytes; b_close fills it with what follows. */
static size_t b_open(struct bytes *b, int width)
{
    size_t at = b->len;
    b_need(b, (size_t)width);
    memset(b->p + b->len, 0, (size_t)width);
    b->len += (size_t)width;
    return at;
}

static void b_close(struct bytes *b, size_t at, int width)
{
    size_t n = b->len - at - (size_t)width;
    if (width == 1)
        b->p[at] = (uint8_t)n;
    else if (width == 2)
        wr16(b->p + at, (uint16_t)n);
    else
        wr24(b->p + at, (uint32_t)n);
}

/* ---- the world: hosts, names, payload pools -------------------------------- */

enum kind {
    K_DNS,
    K_DNS_TCP,
    K_TLS,
    K_HTTP,
    K_QUIC,
    K_SMB,
    K_LDAP,
    K_ICMP,
    K_NTP,
    K_ARP,
    K_TCP_FAIL,
    K_COUNT
};
static const char *const kind_names[K_COUNT] = {"dns-udp", "dns-tcp", "tls", "http", "quic",    "smb",
                                                "ldap",    "icmp",    "ntp", "arp",  "tcp-fail"};
/* Shares of flow starts, in tenths of a percent (see the header comment). */
static const unsigned kind_weight[K_COUNT] = {430, 5, 280, 50, 40, 30, 40, 30, 25, 10, 20};

struct world {
    uint32_t nclients, nservers;
    struct zipf server_pop, site_pop;
    char (*sites)[48];            /* registered domains, by popularity rank */
    uint8_t *pool;                /* random bytes: ciphertext, images, file contents */
    uint8_t *text;                /* HTML-like text: page bodies */
    struct bytes cert_chain;      /* TLS 1.2 Certificate message body (certificate_list) */
    size_t serial_at, serial_len; /* the leaf's serial number bytes in cert_chain (0: none) */
    uint8_t gw_mac[6];
    uint8_t *client_seen, *server_seen; /* distinct hosts that sent or received */
};

static struct world W;

static const char *const syll[64] = {
    "ka",  "mi",  "to",  "ra",  "ne",  "so",  "lu",  "vi",  "da",  "po",  "ze",  "fa",  "gu",
    "ri",  "mo",  "te",  "bel", "cor", "dan", "fin", "gal", "hex", "ion", "jet", "kor", "lum",
    "max", "nor", "orb", "pix", "qua", "rus", "sol", "tor", "uni", "val", "wen", "xen", "yar",
    "zed", "net", "web", "dat", "sys", "app", "hub", "box", "lab", "ar",  "en",  "il",  "on",
    "us",  "ex",  "al",  "is",  "ia",  "eo",  "ta",  "ly",  "go",  "fy",  "co",  "io"};
static const char *const tlds[5] = {".example", ".example.com", ".example.net", ".example.org", ".test"};
static const char *const subs[12] = {"www", "www",   "www",  "api",    "cdn",    "static",
                                     "img", "login", "mail", "update", "assets", "m"};
static const char *const listed_names[3] = {"malware-c2.example", "update.phish.example",
                                            "ransom-pay.example"};

static void make_site_name(uint32_t k, char *out, size_t cap)
{
    char w[40];
    int n = snprintf(w, sizeof(w), "%s%s", syll[k % 64], syll[(k / 64) % 64]);
    if (k >= 4096 && n > 0) snprintf(w + n, sizeof(w) - (size_t)n, "%s", syll[(k / 4096) % 64]);
    snprintf(out, cap, "%s%s", w, tlds[(k * 7 + k / 64) % 5]);
}

static void client_ip4(uint32_t i, uint8_t *ip)
{
    uint32_t net = i / 254;
    ip[0] = 10, ip[1] = (uint8_t)(16 + net / 256), ip[2] = (uint8_t)net, ip[3] = (uint8_t)(i % 254 + 1);
}

static void client_ip6(uint32_t i, uint8_t *ip)
{
    static const uint8_t pfx[6] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x10};
    memset(ip, 0, 16);
    memcpy(ip, pfx, 6);
    wr16(ip + 6, (uint16_t)(i / 254));
    wr32(ip + 12, 0x0a000000u | i); /* interface id from the index, like a static SLAAC */
}

static void server_ip4(uint32_t j, uint8_t *ip)
{
    uint32_t a = 0xc6120000u + 1 + j % 131070; /* 198.18.0.1 - 198.19.255.254 */
    wr32(ip, a);
}

static void server_ip6(uint32_t j, uint8_t *ip)
{
    static const uint8_t pfx[5] = {0x20, 0x01, 0x0d, 0xb8, 0xff};
    memset(ip, 0, 16);
    memcpy(ip, pfx, 5);
    wr16(ip + 5, (uint16_t)(j >> 8));
    ip[15] = (uint8_t)j;
    ip[14] = 1;
}

static bool client_has_v6(uint32_t i)
{
    return i % 5 == 0;
}

static uint16_t client_vlan(uint32_t i)
{
    uint32_t net = i / 254;
    return (net % 2) ? (uint16_t)(100 + net % 16) : 0;
}

static bool client_windows(uint32_t i)
{
    return (i * 2654435761u) % 100 < 70; /* a ministry: mostly Windows desktops */
}

static bool read_file(const char *path, struct bytes *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        b_put(out, buf, n);
    fclose(f);
    return out->len > 0;
}

/* One DER TLV header at d[off] (X.690 8.1): its length and the content's. */
static bool der_tlv(const uint8_t *d, size_t len, size_t off, size_t *hl, size_t *cl)
{
    if (off + 2 > len) return false;
    uint8_t l = d[off + 1];
    if (l < 0x80) {
        *hl = 2, *cl = l;
    } else {
        size_t n = l & 0x7f;
        if (n == 0 || n > 3 || off + 2 + n > len) return false;
        *cl = 0;
        for (size_t i = 0; i < n; i++)
            *cl = *cl << 8 | d[off + 2 + i];
        *hl = 2 + n;
    }
    return off + *hl + *cl <= len;
}

/* The self-signed test certificate becomes a CA-issued leaf: the last string
 * of its issuer name is changed (so issuer != subject, as for nearly every
 * server on the Internet, and a sensor has no reason to check its
 * signature); the signature no longer verifies, which nobody checks. Finds
 * the serial number (RFC 5280 4.1: Certificate { TBSCertificate { [0]
 * version, serialNumber, signature, issuer ...). Returns false when the
 * bytes do not have that shape. */
static bool leaf_from_self_signed(uint8_t *d, size_t len, size_t *serial_off, size_t *serial_len)
{
    size_t hl, cl, off = 0;
    if (!der_tlv(d, len, off, &hl, &cl) || d[off] != 0x30) return false; /* Certificate */
    off += hl;
    if (!der_tlv(d, len, off, &hl, &cl) || d[off] != 0x30) return false; /* TBSCertificate */
    off += hl;
    if (!der_tlv(d, len, off, &hl, &cl)) return false;
    if (d[off] == 0xa0) { /* [0] version */
        off += hl + cl;
        if (!der_tlv(d, len, off, &hl, &cl)) return false;
    }
    if (d[off] != 0x02 || cl < 4) return false; /* serialNumber */
    *serial_off = off + hl;
    *serial_len = cl;
    off += hl + cl;
    if (!der_tlv(d, len, off, &hl, &cl) || d[off] != 0x30) return false; /* signature algorithm */
    off += hl + cl;
    if (!der_tlv(d, len, off, &hl, &cl) || d[off] != 0x30) return false; /* issuer Name */
    size_t end = off + hl + cl, last = 0, last_len = 0;
    for (size_t p = off + hl; p < end; p++) { /* the last UTF8String/PrintableString in it */
        size_t h2, c2;
        if ((d[p] == 0x0c || d[p] == 0x13) && der_tlv(d, end, p, &h2, &c2) && p + h2 + c2 <= end && c2) {
            last = p + h2, last_len = c2;
            p += h2 + c2 - 1;
        }
    }
    if (!last) return false;
    for (size_t i = 0; i < last_len; i++)
        d[last + i] = (uint8_t)('A' + (i * 7 + 3) % 26);
    return true;
}

static void world_init(uint32_t nclients, uint32_t nservers, const char *cert_dir, bool quiet)
{
    W.nclients = nclients;
    W.nservers = nservers;
    zipf_init(&W.server_pop, nservers);
    zipf_init(&W.site_pop, NSITES);
    W.sites = malloc(NSITES * sizeof(*W.sites));
    W.pool = malloc(RAND_POOL + MAX_FRAME);
    W.text = malloc(TEXT_POOL + MAX_FRAME);
    W.client_seen = calloc(nclients, 1);
    W.server_seen = calloc(nservers, 1);
    if (!W.sites || !W.pool || !W.text || !W.client_seen || !W.server_seen) abort();
    for (uint32_t k = 0; k < NSITES; k++)
        make_site_name(k, W.sites[k], sizeof(W.sites[k]));
    rnd_fill(W.pool, RAND_POOL + MAX_FRAME);
    /* Text: words and tags, as compressed-off HTML/JS/CSS looks. */
    static const char *const tags[8] = {"<div class=\"", "<p>",      "</p>\n", "<a href=\"/",
                                        "\">",           "</div>\n", "<span>", "</span> "};
    size_t t = 0;
    while (t < TEXT_POOL + MAX_FRAME) {
        char w[48];
        int n;
        if (rnd_below(6) == 0)
            n = snprintf(w, sizeof(w), "%s", tags[rnd_below(8)]);
        else
            n = snprintf(w, sizeof(w), "%s%s ", syll[rnd_below(64)], syll[rnd_below(64)]);
        for (int i = 0; i < n && t < TEXT_POOL + MAX_FRAME; i++)
            W.text[t++] = (uint8_t)w[i];
    }
    const uint8_t gw[6] = {0x00, 0x1b, 0x54, 0xaa, 0x00, 0x01};
    memcpy(W.gw_mac, gw, 6);

    /* Certificate chain (RFC 5246 7.4.2): leaf benign.der, then server.der
     * in the intermediate's place, so the flight has a realistic size. */
    struct bytes leaf = {0}, inter = {0};
    char path[4096];
    snprintf(path, sizeof(path), "%s/benign.der", cert_dir);
    bool ok = read_file(path, &leaf);
    snprintf(path, sizeof(path), "%s/server.der", cert_dir);
    ok = read_file(path, &inter) && ok;
    if (!ok) {
        if (!quiet)
            fprintf(stderr, "gen_traffic: no certificates in %s: using opaque DER-shaped blobs\n", cert_dir);
        leaf.len = inter.len = 0;
        /* SEQUENCE of random content: hashed like a certificate, not parseable. */
        uint8_t h[4] = {0x30, 0x82, 0x02, 0x40};
        b_put(&leaf, h, 4), b_rand(&leaf, 0x240);
        b_put(&inter, h, 4), b_rand(&inter, 0x240);
    }
    size_t serial_off = 0, serial_len = 0;
    if (!ok || !leaf_from_self_signed(leaf.p, leaf.len, &serial_off, &serial_len))
        serial_off = serial_len = 0;
    size_t at = b_open(&W.cert_chain, 3);
    size_t c1 = b_open(&W.cert_chain, 3);
    if (serial_len) W.serial_at = W.cert_chain.len + serial_off, W.serial_len = serial_len;
    b_put(&W.cert_chain, leaf.p, leaf.len);
    b_close(&W.cert_chain, c1, 3);
    size_t c2 = b_open(&W.cert_chain, 3);
    b_put(&W.cert_chain, inter.p, inter.len);
    b_close(&W.cert_chain, c2, 3);
    b_close(&W.cert_chain, at, 3);
    free(leaf.p);
    free(inter.p);
}

/* ---- pcap output ----------------------------------------------------------- */

struct stats {
    uint64_t packets, bytes, file_bytes;
    uint64_t flows[K_COUNT], kpackets[K_COUNT], kbytes[K_COUNT];
    uint64_t hist[7]; /* frame length: <=64, <=127, <=255, <=511, <=1023, <=1499, >=1500 */
};

struct out {
    FILE *f;
    uint64_t now_ns; /* capture clock, nanoseconds since TS_START */
    double gap_ns_per_bit;
    struct stats st;
    uint8_t frame[MAX_FRAME + 64];
};

static struct out O;

static int hist_bucket(size_t len)
{
    return len <= 64     ? 0
           : len <= 127  ? 1
           : len <= 255  ? 2
           : len <= 511  ? 3
           : len <= 1023 ? 4
           : len <= 1499 ? 5
                         : 6;
}

/* Writes O.frame[0..len) as one record, padded to the Ethernet minimum of
 * 60 bytes (no FCS), and advances the clock. */
static void write_frame(size_t len, int kind)
{
    if (len < 60) {
        memset(O.frame + len, 0, 60 - len);
        len = 60;
    }
    /* Exponential inter-arrival: a Poisson arrival process at the set load
     * (+ 24 bytes per frame on the wire: preamble, FCS, inter-frame gap). */
    double u = rnd_unit();
    O.now_ns += (uint64_t)(-log(u > 1e-12 ? u : 1e-12) * (double)(len + 24) * 8.0 * O.gap_ns_per_bit) + 1;
    uint64_t us = O.now_ns / 1000;
    uint8_t h[16];
    uint32_t v[4] = {TS_START + (uint32_t)(us / 1000000), (uint32_t)(us % 1000000), (uint32_t)len,
                     (uint32_t)len};
    memcpy(h, v, 16); /* host byte order: the magic number below says which */
    fwrite(h, 1, 16, O.f);
    fwrite(O.frame, 1, len, O.f);
    O.st.packets++;
    O.st.bytes += len;
    O.st.file_bytes += 16 + len;
    O.st.hist[hist_bucket(len)]++;
    if (kind >= 0) {
        O.st.kpackets[kind]++;
        O.st.kbytes[kind] += len;
    }
}

/* ---- frame building ------------------------------------------------------------ */

/* RFC 1071 Internet checksum, summed 16 bits at a time in a wide accumulator. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    while (n >= 2) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2, n -= 2;
    }
    if (n) sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Ethernet II (+ one 802.1Q tag when vlan != 0). Returns the header length. */
static size_t put_eth(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint16_t vlan, uint16_t etype)
{
    memcpy(p, dst, 6);
    memcpy(p + 6, src, 6);
    if (vlan) {
        wr16(p + 12, 0x8100);
        wr16(p + 14, vlan); /* PCP 0, DEI 0 */
        wr16(p + 16, etype);
        return 18;
    }
    wr16(p + 12, etype);
    return 14;
}

struct l3 {
    uint8_t family; /* 4 or 6 */
    const uint8_t *src, *dst;
    uint8_t ttl;
    uint16_t ipid;
    uint32_t flow_label;
    bool df;
};

/* IPv4 (RFC 791, no options) or IPv6 (RFC 8200) header for an L4 payload of
 * l4len bytes. Returns the header length. */
static size_t put_ip(uint8_t *p, const struct l3 *h, uint8_t proto, size_t l4len)
{
    if (h->family == 6) {
        wr32(p, 0x60000000u | (h->flow_label & 0xfffff)); /* version 6, traffic class 0 */
        wr16(p + 4, (uint16_t)l4len);
        p[6] = proto;
        p[7] = h->ttl;
        memcpy(p + 8, h->src, 16);
        memcpy(p + 24, h->dst, 16);
        return 40;
    }
    p[0] = 0x45; /* version 4, IHL 5 */
    p[1] = 0;
    wr16(p + 2, (uint16_t)(20 + l4len));
    wr16(p + 4, h->ipid);
    wr16(p + 6, h->df ? 0x4000 : 0);
    p[8] = h->ttl;
    p[9] = proto;
    wr16(p + 10, 0);
    memcpy(p + 12, h->src, 4);
    memcpy(p + 16, h->dst, 4);
    wr16(p + 10, csum_fold(csum_add(0, p, 20)));
    return 20;
}

/* TCP/UDP/ICMPv6 checksum over the pseudo-header (RFC 9293 3.1, RFC 768,
 * RFC 8200 8.1); plain ICMPv4 has none. */
static void put_l4_csum(const struct l3 *h, uint8_t proto, uint8_t *l4, size_t l4len, size_t csum_off)
{
    wr16(l4 + csum_off, 0);
    uint64_t s = 0;
    if (proto != 1) {
        size_t alen = h->family == 6 ? 16 : 4;
        s = csum_add(s, h->src, alen);
        s = csum_add(s, h->dst, alen);
        s += proto;
        s += l4len;
    }
    s = csum_add(s, l4, l4len);
    uint16_t c = csum_fold(s);
    if (proto == 17 && c == 0) c = 0xffff; /* RFC 768: 0 means "no checksum" */
    wr16(l4 + csum_off, c);
}

/* ---- sessions -------------------------------------------------------------------- */

/* One application message: hdr bytes (owned, may be empty), then body_len
 * bytes from a pool. rec != 0: the whole message is a train of TLS records
 * of that content type, whose 5-byte headers are written over the pool
 * bytes where they fall. */
struct msg {
    uint8_t dir; /* 0 client -> server, 1 server -> client */
    uint8_t rec;
    uint8_t pool; /* 0 random, 1 text */
    uint8_t *hdr;
    uint32_t hdr_len, body_len, body_off;
    uint32_t len;
};

struct endpoint {
    uint8_t mac[6];
    uint8_t ip[16];
    uint16_t port;
    uint8_t ttl;
    uint16_t ipid;
    uint16_t win;
    uint32_t seq; /* next sequence number to send */
    uint32_t tsval;
};

enum phase { P_SYN, P_SYNACK, P_ACK, P_DATA, P_FIN1, P_FIN2, P_LASTACK, P_DONE };

struct sess {
    uint8_t kind, family, proto;
    uint16_t vlan;
    struct endpoint ep[2]; /* [0] client, [1] server */
    uint32_t flow_label[2];
    uint8_t phase;
    uint8_t nmsg, cur;
    uint32_t off;
    uint16_t mss;
    uint8_t cwnd;
    uint8_t unacked[2]; /* full segments sent and not yet acknowledged, per sender */
    bool tcp_ts;
    bool closer_server, rst;
    uint8_t quic_dcid[8];
    uint32_t server_id; /* which certificate a TLS server presents */
    bool counted;       /* in the per-kind flow count (once it has sent) */
    struct msg m[MAX_MSG];
};

static struct msg *add_msg(struct sess *s, int dir)
{
    if (s->nmsg >= MAX_MSG) abort();
    struct msg *m = &s->m[s->nmsg++];
    memset(m, 0, sizeof(*m));
    m->dir = (uint8_t)dir;
    return m;
}

/* A message of fixed bytes (takes ownership of b's buffer). */
static void msg_fixed(struct sess *s, int dir, struct bytes *b)
{
    struct msg *m = add_msg(s, dir);
    m->hdr = b->p;
    m->hdr_len = m->len = (uint32_t)b->len;
    memset(b, 0, sizeof(*b));
}

/* A message of headers (owned; may be NULL) and a pool body. */
static void msg_body(struct sess *s, int dir, struct bytes *hdr, uint32_t body_len, int pool, int rec)
{
    struct msg *m = add_msg(s, dir);
    if (hdr) {
        m->hdr = hdr->p;
        m->hdr_len = (uint32_t)hdr->len;
        memset(hdr, 0, sizeof(*hdr));
    }
    if (rec) {
        /* The last record must hold at least a type byte and a tag. */
        uint32_t tail = body_len % (5 + TLS_REC);
        if (tail && tail < 5 + 17) body_len += 5 + 17 - tail;
    }
    m->body_len = body_len;
    m->body_off = rnd_below(pool ? TEXT_POOL : RAND_POOL);
    m->pool = (uint8_t)pool;
    m->rec = (uint8_t)rec;
    m->len = m->hdr_len + body_len;
}

/* Copies message bytes [off, off + n) to dst. */
static void msg_copy(const struct msg *m, uint32_t off, uint32_t n, uint8_t *dst)
{
    uint32_t end = off + n;
    if (off < m->hdr_len) {
        uint32_t k = (end < m->hdr_len ? end : m->hdr_len) - off;
        memcpy(dst, m->hdr + off, k);
        dst += k, off += k;
    }
    if (off < end) {
        const uint8_t *pool = m->pool ? W.text : W.pool;
        uint32_t psize = m->pool ? TEXT_POOL : RAND_POOL;
        uint32_t rel = off - m->hdr_len, n2 = end - off;
        uint32_t at = (m->body_off + rel) % psize;
        /* The pools carry MAX_FRAME spare bytes, so one segment never wraps. */
        memcpy(dst, pool + at, n2);
        if (m->rec) {
            /* Record k's header occupies body bytes [k*R, k*R + 5). */
            const uint32_t R = 5 + TLS_REC;
            for (uint32_t k = rel / R; (uint64_t)k * R < (uint64_t)rel + n2; k++) {
                uint32_t rstart = k * R;
                uint32_t rlen = m->body_len - rstart - 5;
                if (rlen > TLS_REC) rlen = TLS_REC;
                uint8_t h[5] = {m->rec, 3, 3, (uint8_t)(rlen >> 8), (uint8_t)rlen};
                for (uint32_t j = 0; j < 5; j++) {
                    uint32_t pos = rstart + j;
                    if (pos >= rel && pos < rel + n2) dst[pos - rel] = h[j];
                }
            }
        }
    }
}

static void sess_free(struct sess *s)
{
    for (int i = 0; i < s->nmsg; i++)
        free(s->m[i].hdr);
    s->nmsg = 0;
}

/* Builds the frame headers of a packet of session s sent by `dir`; returns
 * the offset of the L4 header. */
static size_t frame_l3(struct sess *s, int dir, size_t l4len, struct l3 *h)
{
    struct endpoint *me = &s->ep[dir], *peer = &s->ep[!dir];
    uint8_t *p = O.frame;
    size_t off = put_eth(p, peer->mac, me->mac, s->vlan, s->family == 6 ? 0x86dd : 0x0800);
    *h = (struct l3){.family = s->family,
                     .src = me->ip,
                     .dst = peer->ip,
                     .ttl = me->ttl,
                     .ipid = me->ipid++,
                     .flow_label = s->flow_label[dir],
                     .df = s->proto == 6};
    off += put_ip(p + off, h, s->proto, l4len);
    return off;
}

/* One TCP segment from `dir` with flags and, when m is set, n bytes of m at off. */
static void emit_tcp(struct sess *s, int dir, uint8_t flags, const struct msg *m, uint32_t off, uint32_t n)
{
    struct endpoint *me = &s->ep[dir], *peer = &s->ep[!dir];
    bool syn = flags & 0x02;
    size_t optlen = syn ? (s->tcp_ts ? 20 : 12) : (s->tcp_ts ? 12 : 0);
    size_t hl = 20 + optlen;
    struct l3 h;
    size_t l4 = frame_l3(s, dir, hl + n, &h);
    uint8_t *t = O.frame + l4;
    wr16(t, me->port);
    wr16(t + 2, peer->port);
    wr32(t + 4, me->seq);
    wr32(t + 8, (flags & 0x10) ? peer->seq : 0);
    t[12] = (uint8_t)((hl / 4) << 4);
    t[13] = flags;
    wr16(t + 14, syn ? 64240 : me->win);
    wr16(t + 18, 0); /* urgent pointer */
    uint8_t *o = t + 20;
    me->tsval += 1 + (uint32_t)(O.now_ns / 1000000 % 3);
    if (syn) {
        /* MSS, SACK permitted, [timestamps], window scale: the usual SYN options. */
        o[0] = 2, o[1] = 4;
        wr16(o + 2, 1460);
        o += 4;
        if (s->tcp_ts) {
            o[0] = 4, o[1] = 2, o[2] = 8, o[3] = 10; /* SACK_PERM, TS */
            wr32(o + 4, me->tsval);
            wr32(o + 8, (flags & 0x10) ? peer->tsval : 0);
            o[12] = 1, o[13] = 3, o[14] = 3, o[15] = 7; /* NOP, WS 7 */
        } else {
            o[0] = 1, o[1] = 3, o[2] = 3, o[3] = 8; /* NOP, WS 8 */
            o[4] = 1, o[5] = 1, o[6] = 4, o[7] = 2; /* NOP NOP SACK_PERM */
        }
    } else if (s->tcp_ts) {
        o[0] = 1, o[1] = 1, o[2] = 8, o[3] = 10;
        wr32(o + 4, me->tsval);
        wr32(o + 8, peer->tsval);
    }
    if (n) msg_copy(m, off, n, t + hl);
    put_l4_csum(&h, 6, t, hl + n, 16);
    me->seq += n + (syn ? 1 : 0) + ((flags & 0x01) ? 1 : 0);
    write_frame(l4 + hl + n, s->kind);
}

static void emit_udp(struct sess *s, int dir, const struct msg *m, uint32_t off, uint32_t n)
{
    struct endpoint *me = &s->ep[dir], *peer = &s->ep[!dir];
    struct l3 h;
    size_t l4 = frame_l3(s, dir, 8 + n, &h);
    uint8_t *u = O.frame + l4;
    wr16(u, me->port);
    wr16(u + 2, peer->port);
    wr16(u + 4, (uint16_t)(8 + n));
    msg_copy(m, off, n, u + 8);
    if (s->kind == K_QUIC && m->hdr_len == 0) {
        /* 1-RTT short header (RFC 9000 17.3): fixed bit, then the DCID. */
        u[8] = (uint8_t)(0x40 | (u[8] & 0x1f));
        memcpy(u + 9, s->quic_dcid, 8);
    }
    put_l4_csum(&h, 17, u, 8 + n, 6);
    write_frame(l4 + 8 + n, s->kind);
}

static void emit_icmp(struct sess *s, int dir, const struct msg *m)
{
    struct l3 h;
    size_t l4 = frame_l3(s, dir, m->len, &h);
    uint8_t *c = O.frame + l4;
    msg_copy(m, 0, m->len, c);
    put_l4_csum(&h, s->family == 6 ? 58 : 1, c, m->len, 2);
    write_frame(l4 + m->len, s->kind);
}

/* ---- application payloads ---------------------------------------------------- */

static void dns_name(struct bytes *b, const char *name)
{
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        b_u8(b, (uint8_t)n);
        b_put(b, p, n);
        p += n + (dot ? 1 : 0);
    }
    b_u8(b, 0);
}

/* A DNS query and its response (RFC 1035 4.1); tcp: 2-byte length prefixes. */
static void dns_exchange(struct sess *s, const char *name, bool tcp)
{
    uint16_t id = (uint16_t)rnd64();
    uint32_t r = rnd_below(100);
    uint16_t qtype = r < 60 ? 1 : r < 85 ? 28 : r < 95 ? 65 : r < 97 ? 15 : r < 99 ? 16 : 12;
    bool edns = chance(0.5);
    struct bytes q = {0};
    size_t lp = tcp ? b_open(&q, 2) : 0;
    b_u16(&q, id);
    b_u16(&q, 0x0100); /* RD */
    b_u16(&q, 1), b_u16(&q, 0), b_u16(&q, 0), b_u16(&q, edns ? 1 : 0);
    size_t qname_at = q.len - (tcp ? 2 : 0);
    dns_name(&q, name);
    b_u16(&q, qtype), b_u16(&q, 1);
    size_t qend = q.len;
    if (edns) {
        uint8_t opt[11] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}; /* OPT, 1232-byte payload */
        b_put(&q, opt, 11);
    }
    if (tcp) b_close(&q, lp, 2);

    struct bytes a = {0};
    size_t alp = tcp ? b_open(&a, 2) : 0;
    bool nx = chance(0.05), big = !nx && (tcp || chance(0.03));
    if (big) qtype = 16;
    unsigned nans = nx ? 0 : big ? (tcp ? 8 + rnd_below(24) : 2 + rnd_below(4)) : 1 + rnd_below(4);
    bool cname = !nx && !big && chance(0.3);
    b_u16(&a, id);
    b_u16(&a, nx ? 0x8183 : 0x8180); /* QR RD RA, rcode */
    b_u16(&a, 1), b_u16(&a, (uint16_t)(nans + cname)), b_u16(&a, 0), b_u16(&a, edns ? 1 : 0);
    b_put(&a, q.p + (tcp ? 2 : 0) + 12, qend - (tcp ? 2 : 0) - 12); /* the question, copied */
    uint16_t owner = (uint16_t)(0xc000 | qname_at);
    if (cname) {
        b_u16(&a, owner), b_u16(&a, 5), b_u16(&a, 1);
        b_u16(&a, 0), b_u16(&a, (uint16_t)(60 + rnd_below(3600)));
        size_t rl = b_open(&a, 2);
        char target[64];
        snprintf(target, sizeof(target), "edge%u.cdn%u", rnd_below(64), rnd_below(16));
        const char *p = target;
        while (*p) { /* labels of target, then a pointer to the owner's parent */
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            b_u8(&a, (uint8_t)n);
            b_put(&a, p, n);
            p += n + (dot ? 1 : 0);
        }
        b_u16(&a, owner);
        b_close(&a, rl, 2);
        owner = (uint16_t)(0xc000 | (rl + 2 - (tcp ? 2 : 0))); /* the CNAME target, in message offsets */
    }
    for (unsigned i = 0; i < nans; i++) {
        uint16_t t = qtype == 28 ? 28 : qtype == 16 ? 16 : qtype == 15 ? 15 : 1;
        b_u16(&a, owner), b_u16(&a, t), b_u16(&a, 1);
        b_u16(&a, 0), b_u16(&a, (uint16_t)(30 + rnd_below(86400 - 30)));
        if (t == 1) {
            b_u16(&a, 4);
            uint8_t ip[4];
            server_ip4(zipf_draw(&W.server_pop), ip);
            b_put(&a, ip, 4);
        } else if (t == 28) {
            b_u16(&a, 16);
            uint8_t ip[16];
            server_ip6(zipf_draw(&W.server_pop), ip);
            b_put(&a, ip, 16);
        } else if (t == 15) {
            size_t rl = b_open(&a, 2);
            b_u16(&a, (uint16_t)(10 * (i + 1)));
            b_u8(&a, 4), b_str(&a, "mail"), b_u16(&a, owner);
            b_close(&a, rl, 2);
        } else { /* TXT: verification tokens, SPF, DKIM keys */
            size_t rl = b_open(&a, 2);
            uint32_t n = 40 + rnd_below(big ? 200 : 60);
            b_u8(&a, (uint8_t)n);
            for (uint32_t k = 0; k < n; k++)
                b_u8(&a, (uint8_t)('a' + rnd_below(26)));
            b_close(&a, rl, 2);
        }
    }
    if (edns) {
        uint8_t opt[11] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
        b_put(&a, opt, 11);
    }
    if (tcp) b_close(&a, alp, 2);
    msg_fixed(s, 0, &q);
    msg_fixed(s, 1, &a);
}

static void pick_host_name(char *out, size_t cap)
{
    if (rnd_below(20000) == 0) {
        snprintf(out, cap, "%s", listed_names[rnd_below(3)]);
        return;
    }
    uint32_t site = zipf_draw(&W.site_pop);
    snprintf(out, cap, "%s.%s", subs[rnd_below(12)], W.sites[site]);
}

/* Client profiles (their JA3 differ): 0 Chrome-like, 1 Firefox-like,
 * 2 Windows SChannel-like (TLS 1.2 only), 3 OpenSSL-like. */
static const uint16_t grease[16] = {0x0a0a, 0x1a1a, 0x2a2a, 0x3a3a, 0x4a4a, 0x5a5a, 0x6a6a, 0x7a7a,
                                    0x8a8a, 0x9a9a, 0xaaaa, 0xbaba, 0xcaca, 0xdada, 0xeaea, 0xfafa};
static const uint16_t suites_chrome[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
                                         0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
static const uint16_t suites_firefox[] = {0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9,
                                          0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013,
                                          0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
static const uint16_t suites_schannel[] = {0xc02c, 0xc02b, 0xc030, 0xc02f, 0xc024, 0xc023, 0xc028,
                                           0xc027, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c,
                                           0x003d, 0x003c, 0x0035, 0x002f, 0x000a};
static const uint16_t suites_openssl[] = {0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8,
                                          0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023,
                                          0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033,
                                          0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff};

static void ext_begin(struct bytes *b, uint16_t type, size_t *at)
{
    b_u16(b, type);
    *at = b_open(b, 2);
}

/* One extension of the ClientHello (RFC 8446 4.2, RFC 6066, RFC 7301 ...). */
static void ch_ext(struct bytes *b, uint16_t type, int prof, const char *sni, uint16_t g1, uint16_t g2)
{
    size_t at, l;
    ext_begin(b, type, &at);
    switch (type) {
    case 0: /* server_name: list, host_name(0) */
        l = b_open(b, 2);
        b_u8(b, 0);
        b_u16(b, (uint16_t)strlen(sni));
        b_str(b, sni);
        b_close(b, l, 2);
        break;
    case 5: /* status_request: OCSP, no responder ids, no extensions */
        b_u8(b, 1), b_u16(b, 0), b_u16(b, 0);
        break;
    case 10: /* supported_groups */
        l = b_open(b, 2);
        if (prof == 0) b_u16(b, g1);
        b_u16(b, 0x001d), b_u16(b, 0x0017), b_u16(b, 0x0018);
        if (prof == 1) b_u16(b, 0x0019), b_u16(b, 0x0100), b_u16(b, 0x0101);
        if (prof == 3) b_u16(b, 0x001e), b_u16(b, 0x0019);
        b_close(b, l, 2);
        break;
    case 11: /* ec_point_formats: uncompressed */
        b_u8(b, 1), b_u8(b, 0);
        break;
    case 13: { /* signature_algorithms */
        static const uint16_t sa[] = {0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601};
        l = b_open(b, 2);
        for (size_t i = 0; i < sizeof(sa) / 2; i++)
            b_u16(b, sa[i]);
        if (prof >= 2) b_u16(b, 0x0201), b_u16(b, 0x0203);
        b_close(b, l, 2);
        break;
    }
    case 16: /* ALPN */
        l = b_open(b, 2);
        if (prof != 2 || chance(0.5)) b_u8(b, 2), b_str(b, "h2");
        b_u8(b, 8), b_str(b, "http/1.1");
        b_close(b, l, 2);
        break;
    case 27: /* compress_certificate: brotli */
        b_u8(b, 2), b_u16(b, 2);
        break;
    case 28: /* record_size_limit */
        b_u16(b, 0x4001);
        break;
    case 34: /* delegated_credentials */
        l = b_open(b, 2);
        b_u16(b, 0x0403), b_u16(b, 0x0503), b_u16(b, 0x0603), b_u16(b, 0x0203);
        b_close(b, l, 2);
        break;
    case 43: /* supported_versions */
        l = b_open(b, 1);
        if (prof == 0) b_u16(b, g2);
        b_u16(b, 0x0304), b_u16(b, 0x0303);
        b_close(b, l, 1);
        break;
    case 45: /* psk_key_exchange_modes: psk_dhe_ke */
        b_u8(b, 1), b_u8(b, 1);
        break;
    case 51: /* key_share: [GREASE,] x25519 (+ P-256 for Firefox) */
        l = b_open(b, 2);
        if (prof == 0) b_u16(b, g1), b_u16(b, 1), b_u8(b, 0);
        b_u16(b, 0x001d), b_u16(b, 32), b_rand(b, 32);
        if (prof == 1) b_u16(b, 0x0017), b_u16(b, 65), b_u8(b, 4), b_rand(b, 64);
        b_close(b, l, 2);
        break;
    case 17513: /* application_settings (ALPS) */
        l = b_open(b, 2);
        b_u8(b, 2), b_str(b, "h2");
        b_close(b, l, 2);
        break;
    case 0xff01: /* renegotiation_info: empty */
        b_u8(b, 0);
        break;
    default: /* empty extensions: extended_master_secret(23), session_ticket(35), SCT(18), EtM(22) */
        break;
    }
    b_close(b, at, 2);
}

/* A TLS record holding a ClientHello (RFC 8446 4.1.2). */
static void client_hello(struct bytes *rec, int prof, const char *sni)
{
    /* GREASE values (RFC 8701) drawn per connection; the two extensions differ. */
    uint32_t i0 = rnd_below(16);
    uint16_t g0 = grease[i0], g1 = grease[rnd_below(16)], g2 = grease[rnd_below(16)],
             g3 = grease[(i0 + 1 + rnd_below(15)) % 16];
    struct bytes b = {0};
    b_u8(&b, 1); /* client_hello */
    size_t hl = b_open(&b, 3);
    b_u16(&b, 0x0303);
    b_rand(&b, 32);
    if (prof == 2 && chance(0.7)) {
        b_u8(&b, 0);
    } else {
        b_u8(&b, 32);
        b_rand(&b, 32);
    }
    const uint16_t *cs;
    size_t ncs;
    switch (prof) {
    case 0:
        cs = suites_chrome, ncs = sizeof(suites_chrome) / 2;
        break;
    case 1:
        cs = suites_firefox, ncs = sizeof(suites_firefox) / 2;
        break;
    case 2:
        cs = suites_schannel, ncs = sizeof(suites_schannel) / 2;
        break;
    default:
        cs = suites_openssl, ncs = sizeof(suites_openssl) / 2;
        break;
    }
    size_t cl = b_open(&b, 2);
    if (prof == 0) b_u16(&b, g0);
    for (size_t i = 0; i < ncs; i++)
        b_u16(&b, cs[i]);
    b_close(&b, cl, 2);
    b_u8(&b, 1), b_u8(&b, 0); /* compression: null */
    size_t el = b_open(&b, 2);
    uint16_t ext[24];
    size_t n = 0;
    switch (prof) {
    case 0: {
        static const uint16_t e[] = {0, 23, 0xff01, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 17513};
        memcpy(ext, e, sizeof(e));
        n = sizeof(e) / 2;
        /* Chrome 110+ sends its extensions in a random order. */
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rnd_below((uint32_t)i + 1);
            uint16_t t = ext[i];
            ext[i] = ext[j], ext[j] = t;
        }
        break;
    }
    case 1: {
        static const uint16_t e[] = {0, 23, 0xff01, 10, 11, 35, 16, 5, 34, 51, 43, 13, 45, 28};
        memcpy(ext, e, sizeof(e));
        n = sizeof(e) / 2;
        break;
    }
    case 2: {
        static const uint16_t e[] = {0, 5, 10, 11, 13, 35, 16, 23, 0xff01};
        memcpy(ext, e, sizeof(e));
        n = sizeof(e) / 2;
        break;
    }
    default: {
        static const uint16_t e[] = {0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51};
        memcpy(ext, e, sizeof(e));
        n = sizeof(e) / 2;
        break;
    }
    }
    if (prof == 0) b_u16(&b, g3), b_u16(&b, 0); /* leading GREASE extension */
    for (size_t i = 0; i < n; i++)
        ch_ext(&b, ext[i], prof, sni, g1, g2);
    if (prof == 0) b_u16(&b, g0), b_u16(&b, 1), b_u8(&b, 0); /* trailing GREASE */
    if (prof == 0 || prof == 3) {
        /* BoringSSL/OpenSSL padding (RFC 7685): hellos of 256-511 bytes grow to 512. */
        size_t len = b.len;
        if (len > 255 && len < 512) {
            size_t pad = 512 - len;
            pad = pad >= 4 ? pad - 4 : 1;
            b_u16(&b, 21), b_u16(&b, (uint16_t)pad);
            b_need(&b, pad);
            memset(b.p + b.len, 0, pad);
            b.len += pad;
        }
    }
    b_close(&b, el, 2);
    b_close(&b, hl, 3);
    b_u8(rec, 22), b_u16(rec, 0x0301); /* record version 1.0 in the ClientHello, as browsers do */
    b_u16(rec, (uint16_t)b.len);
    b_put(rec, b.p, b.len);
    free(b.p);
}

static void tls_record(struct bytes *b, uint8_t type, const uint8_t *p, size_t n)
{
    b_u8(b, type), b_u16(b, 0x0303), b_u16(b, (uint16_t)n);
    if (p)
        b_put(b, p, n);
    else
        b_rand(b, n);
}

/* The server's first flight. */
static void server_flight(struct bytes *out, bool tls13, int prof, uint32_t server_id)
{
    struct bytes h = {0};
    b_u8(&h, 2); /* server_hello */
    size_t hl = b_open(&h, 3);
    b_u16(&h, 0x0303);
    b_rand(&h, 32);
    b_u8(&h, 32), b_rand(&h, 32);
    b_u16(&h, tls13 ? 0x1301 + (uint16_t)rnd_below(2) : (prof == 2 ? 0xc030 : 0xc02f));
    b_u8(&h, 0);
    size_t el = b_open(&h, 2);
    if (tls13) {
        b_u16(&h, 43), b_u16(&h, 2), b_u16(&h, 0x0304);
        b_u16(&h, 51), b_u16(&h, 36), b_u16(&h, 0x001d), b_u16(&h, 32), b_rand(&h, 32);
    } else {
        b_u16(&h, 0xff01), b_u16(&h, 1), b_u8(&h, 0);
        b_u16(&h, 11), b_u16(&h, 2), b_u8(&h, 1), b_u8(&h, 0);
        b_u16(&h, 23), b_u16(&h, 0);
    }
    b_close(&h, el, 2);
    b_close(&h, hl, 3);
    tls_record(out, 22, h.p, h.len);
    if (tls13) {
        /* ChangeCipherSpec for middlebox compatibility (RFC 8446 D.4), then
         * EncryptedExtensions .. Finished, encrypted. */
        uint8_t one = 1;
        tls_record(out, 20, &one, 1);
        tls_record(out, 23, NULL, 2400 + rnd_below(2600));
    } else {
        struct bytes c = {0};
        b_u8(&c, 11);
        b_u8(&c, 0), b_u16(&c, (uint16_t)W.cert_chain.len);
        size_t chain_at = c.len;
        b_put(&c, W.cert_chain.p, W.cert_chain.len);
        if (W.serial_len) /* one certificate per server: its index in the serial's last bytes */
            wr24(c.p + chain_at + W.serial_at + W.serial_len - 3, server_id);
        tls_record(out, 22, c.p, c.len);
        free(c.p);
        /* ServerKeyExchange (RFC 8422 5.4): x25519 key and an RSA-2048 signature. */
        struct bytes k = {0};
        b_u8(&k, 12), b_u8(&k, 0), b_u16(&k, 4 + 32 + 4 + 256);
        b_u8(&k, 3), b_u16(&k, 0x001d), b_u8(&k, 32), b_rand(&k, 32);
        b_u16(&k, 0x0804), b_u16(&k, 256), b_rand(&k, 256);
        tls_record(out, 22, k.p, k.len);
        free(k.p);
        uint8_t done[4] = {14, 0, 0, 0};
        tls_record(out, 22, done, 4);
    }
    free(h.p);
}

static uint32_t http_body_len(bool *text)
{
    *text = chance(0.55);
    if (chance(0.005)) { /* a download: an installer, an update package */
        *text = false;
        return rnd_lognormal(1000000, 1.2, 100000, 50u << 20);
    }
    return *text ? rnd_lognormal(5000, 1.4, 0, 4u << 20) : rnd_lognormal(8000, 1.6, 0, 8u << 20);
}

static void build_tls(struct sess *s, uint32_t client)
{
    char sni[128];
    pick_host_name(sni, sizeof(sni));
    int prof = client_windows(client) ? (chance(0.35)  ? 2
                                         : chance(0.8) ? 0
                                                       : 1)
                                      : (chance(0.5)   ? 0
                                         : chance(0.5) ? 1
                                                       : 3);
    bool tls13 = prof != 2 && chance(0.7);
    struct bytes b = {0};
    client_hello(&b, prof, sni);
    msg_fixed(s, 0, &b);
    server_flight(&b, tls13, prof, s->server_id);
    msg_fixed(s, 1, &b);
    uint8_t one = 1;
    if (tls13) {
        tls_record(&b, 20, &one, 1);
        tls_record(&b, 23, NULL, 53); /* Finished */
        msg_fixed(s, 0, &b);
        tls_record(&b, 23, NULL, 250 + rnd_below(40)); /* NewSessionTicket x2 */
        tls_record(&b, 23, NULL, 250 + rnd_below(40));
        msg_fixed(s, 1, &b);
    } else {
        uint8_t cke[37] = {16, 0, 0, 33, 32};
        rnd_fill(cke + 5, 32);
        tls_record(&b, 22, cke, sizeof(cke));
        tls_record(&b, 20, &one, 1);
        tls_record(&b, 22, NULL, 40); /* encrypted Finished */
        msg_fixed(s, 0, &b);
        tls_record(&b, 20, &one, 1);
        tls_record(&b, 22, NULL, 40);
        msg_fixed(s, 1, &b);
    }
    unsigned nx = 1 + (unsigned)(-log(1.0 - rnd_unit() * 0.999) * 1.5);
    if (nx > 8) nx = 8;
    /* Most sessions are page loads, API calls and telemetry; 1 in 200 is
     * a download and 1 in 500 exchanges an upload: the elephants that
     * carry much of the bytes. */
    bool download = chance(0.005);
    for (unsigned i = 0; i < nx; i++) {
        bool upload = chance(0.002);
        msg_body(s, 0, NULL,
                 upload ? rnd_lognormal(100000, 1.2, 2000, 20u << 20) : rnd_lognormal(400, 0.8, 60, 8000), 0,
                 23);
        uint32_t resp = download && i == 0 ? rnd_lognormal(1000000, 1.2, 100000, 50u << 20)
                                           : rnd_lognormal(2500, 1.6, 100, 2u << 20);
        msg_body(s, 1, NULL, resp, 0, 23);
    }
    msg_body(s, 0, NULL, tls13 ? 24 : 26, 0, tls13 ? 23 : 21); /* close_notify, encrypted */
    s->closer_server = false;
}

static void build_http(struct sess *s, uint32_t client, bool intranet)
{
    char host[128];
    if (intranet)
        snprintf(host, sizeof(host), "intranet%u.ministry.lan", rnd_below(10));
    else
        pick_host_name(host, sizeof(host));
    static const char *const ua[4] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
        "Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "Microsoft-CryptoAPI/10.0", "Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50"};
    static const char *const ext[6] = {".html", ".js", ".css", ".png", ".jpg", ".cab"};
    unsigned nx = 1 + rnd_below(4);
    for (unsigned i = 0; i < nx; i++) {
        struct bytes q = {0};
        bool post = chance(0.15);
        uint32_t plen = post ? rnd_lognormal(800, 1.2, 20, 60000) : 0;
        b_printf(&q,
                 "%s /%s%u/%s%u%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                 "Accept-Encoding: gzip, deflate\r\nAccept-Language: fr-FR,fr;q=0.9,en;q=0.8\r\n",
                 post ? "POST" : "GET", syll[rnd_below(64)], rnd_below(100), syll[rnd_below(64)],
                 rnd_below(10000), post ? ".php" : ext[rnd_below(6)], host,
                 ua[client_windows(client) ? rnd_below(4) : rnd_below(2)]);
        if (post)
            b_printf(&q, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %u\r\n", plen);
        b_str(&q, "Connection: keep-alive\r\n\r\n");
        msg_body(s, 0, &q, plen, 1, 0);
        struct bytes r = {0};
        uint32_t st = rnd_below(100);
        if (st < 12) {
            b_str(&r, "HTTP/1.1 304 Not Modified\r\nServer: nginx\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
                      "ETag: \"5f2b-60a1c\"\r\nConnection: keep-alive\r\n\r\n");
            msg_body(s, 1, &r, 0, 0, 0);
            continue;
        }
        bool text;
        uint32_t blen = st < 16 ? 150 + rnd_below(200) : http_body_len(&text);
        if (st < 16) text = true;
        b_printf(&r,
                 "HTTP/1.1 %s\r\nServer: %s\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nContent-Type: %s\r\n"
                 "Content-Length: %u\r\nCache-Control: max-age=3600\r\nConnection: keep-alive\r\n\r\n",
                 st < 16 ? "404 Not Found" : "200 OK", chance(0.5) ? "nginx" : "Microsoft-IIS/10.0",
                 text ? "text/html; charset=utf-8" : "application/octet-stream", blen);
        msg_body(s, 1, &r, blen, text ? 1 : 0, 0);
    }
    s->closer_server = chance(0.3);
}

/* SMB2 over NetBIOS session service (RFC 1002 4.3.1; MS-SMB2 2.2.1). */
static void smb_hdr(struct bytes *b, uint32_t len, uint16_t cmd, bool resp)
{
    b_u8(b, 0), b_u8(b, (uint8_t)(len >> 16)), b_u16(b, (uint16_t)len);
    static const uint8_t magic[4] = {0xfe, 'S', 'M', 'B'};
    b_put(b, magic, 4);
    uint8_t h[60] = {64, 0}; /* structure size 64, then credit charge .. signature */
    h[8] = (uint8_t)cmd;
    h[12] = resp ? 1 : 0; /* flags: server to redirector */
    rnd_fill(h + 20, 8);  /* message id */
    b_put(b, h, 60);
}

static void build_smb(struct sess *s)
{
    unsigned nx = 2 + rnd_below(8);
    for (unsigned i = 0; i < nx; i++) {
        struct bytes q = {0};
        uint32_t qlen = 64 + 49 + rnd_below(120);
        smb_hdr(&q, qlen, i == 0 ? 5 : 8, false); /* CREATE, then READs */
        msg_body(s, 0, &q, qlen - 64, 0, 0);
        struct bytes r = {0};
        uint32_t rlen = i == 0 ? 150 + rnd_below(100) : rnd_lognormal(6000, 1.5, 200, 8u << 20);
        smb_hdr(&r, 64 + rlen, i == 0 ? 5 : 8, true);
        msg_body(s, 1, &r, rlen, 0, 0);
    }
}

static void build_ldap(struct sess *s)
{
    unsigned nx = 1 + rnd_below(5);
    for (unsigned i = 0; i < nx; i++) {
        /* BER: SEQUENCE { messageID, searchRequest ... } (RFC 4511 4.1.1) */
        struct bytes q = {0}, r = {0};
        uint32_t ql = 60 + rnd_below(200), rl = 80 + rnd_lognormal(600, 1.2, 0, 20000);
        uint8_t qh[8] = {0x30, 0x84, 0, 0, 0, 0, 0x02, 0x01};
        wr32(qh + 2, ql - 6);
        b_put(&q, qh, 8);
        msg_body(s, 0, &q, ql - 8, 0, 0);
        wr32(qh + 2, rl - 6);
        b_put(&r, qh, 8);
        msg_body(s, 1, &r, rl - 8, 0, 0);
    }
}

static void build_quic(struct sess *s)
{
    /* Client Initial (RFC 9000 17.2.2): long header, version 1, 8-byte
     * DCID, 0-byte SCID... padded to 1250 bytes; contents random, so it
     * does not decrypt (the sensor tries, as with real Initials). */
    rnd_fill(s->quic_dcid, 8);
    struct bytes b = {0};
    b_u8(&b, 0xc3), b_u16(&b, 0), b_u16(&b, 1);
    b_u8(&b, 8), b_rand(&b, 8), b_u8(&b, 0), b_u8(&b, 0);
    b_u16(&b, 0x4000 | (1250 - 18)), b_rand(&b, 1250 - 18); /* length: packet number + payload */
    msg_fixed(s, 0, &b);
    /* Server Initial + Handshake, coalesced, in two datagrams. */
    for (int i = 0; i < 2; i++) {
        b_u8(&b, i ? 0xe3 : 0xc3), b_u16(&b, 0), b_u16(&b, 1);
        b_u8(&b, 0), b_u8(&b, 8), b_put(&b, s->quic_dcid, 8);
        if (!i) b_u8(&b, 0);
        size_t rest = 1200 - b.len - 2;
        b_u16(&b, (uint16_t)(0x4000 | rest)), b_rand(&b, rest);
        msg_fixed(s, 1, &b);
    }
    b_u8(&b, 0xe3), b_u16(&b, 0), b_u16(&b, 1), b_u8(&b, 8), b_rand(&b, 8), b_u8(&b, 0);
    b_u16(&b, 0x4000 | 60), b_rand(&b, 60);
    msg_fixed(s, 0, &b);
    unsigned nx = 1 + rnd_below(4);
    for (unsigned i = 0; i < nx; i++) {
        msg_body(s, 0, NULL, 60 + rnd_below(300), 0, 0);
        uint32_t n = rnd_lognormal(8000, 1.6, 1252, 20u << 20);
        msg_body(s, 1, NULL, n - n % 1252 + 1252, 0, 0); /* 1252-byte datagrams */
    }
}

static void build_icmp(struct sess *s)
{
    if (chance(0.1) && s->family == 4) {
        /* Port unreachable from the server, quoting the client's datagram (RFC 792). */
        struct bytes b = {0};
        b_u8(&b, 3), b_u8(&b, 3), b_u16(&b, 0), b_u16(&b, 0), b_u16(&b, 0);
        uint8_t ip[28] = {0x45, 0, 0, 76, 0x12, 0x34, 0, 0, 64, 17};
        memcpy(ip + 12, s->ep[0].ip, 4);
        memcpy(ip + 16, s->ep[1].ip, 4);
        wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
        wr16(ip + 20, (uint16_t)(49152 + rnd_below(16384)));
        wr16(ip + 22, (uint16_t)(33434 + rnd_below(30)));
        wr16(ip + 24, 56);
        b_put(&b, ip, 28);
        msg_fixed(s, 1, &b);
        return;
    }
    bool win = chance(0.7);
    uint16_t id = (uint16_t)rnd64();
    for (uint16_t seq = 1; seq <= 4; seq++) {
        for (int dir = 0; dir < 2; dir++) {
            struct bytes b = {0};
            uint8_t type = s->family == 6 ? (dir ? 129 : 128) : (dir ? 0 : 8);
            b_u8(&b, type), b_u8(&b, 0), b_u16(&b, 0), b_u16(&b, id), b_u16(&b, seq);
            if (win) {
                b_str(&b, "abcdefghijklmnopqrstuvwabcdefghi");
            } else {
                b_rand(&b, 16);
                for (int k = 0; k < 40; k++)
                    b_u8(&b, (uint8_t)(0x10 + k));
            }
            msg_fixed(s, dir, &b);
        }
    }
}

static void build_ntp(struct sess *s)
{
    for (int dir = 0; dir < 2; dir++) {
        struct bytes b = {0};
        /* RFC 5905 7.3: LI 0, VN 4, mode 4 (server) / LI 3 (unsynchronised), VN 4,
         * mode 3 (client); stratum 2 / 0; poll 2^6; precision 2^-23. */
        b_u8(&b, dir ? 0x24 : 0xe3);
        b_u8(&b, dir ? 2 : 0), b_u8(&b, 6), b_u8(&b, 0xe9);
        b_rand(&b, 44);
        msg_fixed(s, dir, &b);
    }
}

/* ---- session setup and stepping ------------------------------------------- */

static void set_client(struct sess *s, uint32_t c)
{
    struct endpoint *e = &s->ep[0];
    uint8_t mac[6] = {0x02, 0x1a, 0xc1, (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    memcpy(e->mac, mac, 6);
    if (s->family == 6)
        client_ip6(c, e->ip);
    else
        client_ip4(c, e->ip);
    e->ttl = client_windows(c) ? 128 : 64;
    e->port = (uint16_t)(49152 + rnd_below(16384));
    s->vlan = client_vlan(c);
    W.client_seen[c] = 1;
}

static void set_server(struct sess *s, const uint8_t *ip4, const uint8_t *ip6, uint16_t port, uint8_t ttl)
{
    struct endpoint *e = &s->ep[1];
    memcpy(e->mac, W.gw_mac, 6);
    if (s->family == 6)
        memcpy(e->ip, ip6, 16);
    else
        memcpy(e->ip, ip4, 4);
    e->port = port;
    e->ttl = ttl;
}

static void internet_server(struct sess *s, uint16_t port)
{
    uint32_t j = zipf_draw(&W.server_pop);
    uint8_t a4[4], a6[16];
    server_ip4(j, a4);
    server_ip6(j, a6);
    W.server_seen[j] = 1;
    s->server_id = j;
    set_server(s, a4, a6, port, (uint8_t)(44 + j % 16));
}

static void internal_server(struct sess *s, uint8_t c, uint8_t d, uint16_t port)
{
    uint8_t a4[4] = {10, 0, c, d};
    uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0xff, c};
    a6[15] = d;
    set_server(s, a4, a6, port, d & 1 ? 128 : 64);
    s->server_id = 0x800000u | (uint32_t)c << 8 | d;
}

static void sess_new(struct sess *s)
{
    sess_free(s);
    memset(s, 0, offsetof(struct sess, m));
    uint32_t total = 0, r;
    for (int k = 0; k < K_COUNT; k++)
        total += kind_weight[k];
    r = rnd_below(total);
    int kind = 0;
    while (r >= kind_weight[kind])
        r -= kind_weight[kind++];
    s->kind = (uint8_t)kind;
    uint32_t c = rnd_below(W.nclients);
    bool v6ok = client_has_v6(c);
    s->family =
        (uint8_t)(v6ok && kind != K_ARP && chance(kind == K_SMB || kind == K_LDAP ? 0.2 : 0.5) ? 6 : 4);
    s->proto = (kind == K_DNS || kind == K_QUIC || kind == K_NTP) ? 17
               : (kind == K_ICMP)                                 ? (s->family == 6 ? 58 : 1)
                                                                  : 6;
    set_client(s, c);
    s->flow_label[0] = rnd64() & 0xfffff;
    s->flow_label[1] = rnd64() & 0xfffff;
    s->tcp_ts = !client_windows(c);
    s->mss = s->tcp_ts ? 1448 : 1460;
    s->cwnd = 10;
    s->ep[0].ipid = (uint16_t)rnd64();
    s->ep[1].ipid = (uint16_t)rnd64();
    s->ep[0].seq = (uint32_t)rnd64();
    s->ep[1].seq = (uint32_t)rnd64();
    s->ep[0].tsval = (uint32_t)rnd64();
    s->ep[1].tsval = (uint32_t)rnd64();
    s->ep[0].win = (uint16_t)(client_windows(c) ? 1026 + rnd_below(4) : 502 + rnd_below(10));
    s->ep[1].win = (uint16_t)(256 + rnd_below(2000));
    s->phase = s->proto == 6 ? P_SYN : P_DATA;
    char name[128];
    switch (kind) {
    case K_DNS:
    case K_DNS_TCP:
        internal_server(s, 0, chance(0.6) ? 53 : 54, 53);
        if (chance(0.15))
            snprintf(name, sizeof(name), "%s%u.ministry.lan", syll[rnd_below(64)], rnd_below(200));
        else
            pick_host_name(name, sizeof(name));
        dns_exchange(s, name, kind == K_DNS_TCP);
        break;
    case K_TLS:
        if (chance(0.1))
            internal_server(s, 1, (uint8_t)(10 + rnd_below(10)), 443);
        else
            internet_server(s, 443);
        build_tls(s, c);
        break;
    case K_HTTP: {
        bool intranet = chance(0.3);
        if (intranet)
            internal_server(s, 1, (uint8_t)(10 + rnd_below(10)), 80);
        else
            internet_server(s, 80);
        build_http(s, c, intranet);
        break;
    }
    case K_QUIC:
        internet_server(s, 443);
        build_quic(s);
        break;
    case K_SMB:
        internal_server(s, 2, (uint8_t)(10 + rnd_below(20)), 445);
        build_smb(s);
        break;
    case K_LDAP:
        internal_server(s, 0, (uint8_t)(10 + rnd_below(2)), 389);
        build_ldap(s);
        break;
    case K_ICMP:
        if (chance(0.5))
            internal_server(s, (uint8_t)rnd_below(3), (uint8_t)(1 + rnd_below(250)), 0);
        else
            internet_server(s, 0);
        build_icmp(s);
        break;
    case K_NTP:
        internal_server(s, 0, 123, 123);
        s->ep[0].port = 123;
        build_ntp(s);
        break;
    case K_TCP_FAIL: {
        static const uint16_t ports[6] = {443, 443, 80, 8080, 5228, 3389};
        if (chance(0.3))
            internal_server(s, (uint8_t)rnd_below(3), (uint8_t)(1 + rnd_below(250)), ports[rnd_below(6)]);
        else
            internet_server(s, ports[rnd_below(6)]);
        s->rst = chance(0.5);
        break;
    }
    case K_ARP: { /* who-has another host of the client's /24 (a printer, a peer) */
        uint8_t a4[4];
        memcpy(a4, s->ep[0].ip, 4);
        a4[3] = (uint8_t)(1 + rnd_below(254));
        set_server(s, a4, NULL, 0, 64);
        break;
    }
    }
}

/* ARP who-has for a neighbour (RFC 826), broadcast. */
static void emit_arp(struct sess *s)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t *p = O.frame;
    size_t off = put_eth(p, bcast, s->ep[0].mac, s->vlan, 0x0806);
    uint8_t *a = p + off;
    wr16(a, 1), wr16(a + 2, 0x0800), a[4] = 6, a[5] = 4, wr16(a + 6, 1);
    memcpy(a + 8, s->ep[0].mac, 6);
    memcpy(a + 14, s->ep[0].ip, 4);
    memset(a + 18, 0, 6);
    memcpy(a + 24, s->ep[1].ip, 4);
    write_frame(off + 28, K_ARP);
    s->phase = P_DONE;
}

/* The receiver acknowledges what it holds (a pure ACK). */
static void ack_from(struct sess *s, int dir)
{
    emit_tcp(s, dir, 0x10, NULL, 0, 0);
    s->unacked[!dir] = 0;
}

/* One step of a TCP session: one control packet, or one flight of data. */
static void step_tcp(struct sess *s)
{
    int closer = s->closer_server ? 1 : 0;
    switch (s->phase) {
    case P_SYN:
        emit_tcp(s, 0, 0x02, NULL, 0, 0);
        s->phase = P_SYNACK;
        return;
    case P_SYNACK:
        emit_tcp(s, 1, 0x12, NULL, 0, 0);
        s->phase = P_ACK;
        return;
    case P_ACK:
        emit_tcp(s, 0, 0x10, NULL, 0, 0);
        s->phase = P_DATA;
        break; /* the client's first data follows its ACK at once */
    case P_DATA:
        break;
    case P_FIN1:
        if (s->rst) {
            emit_tcp(s, closer, 0x14, NULL, 0, 0); /* RST|ACK: an abort (a killed app, a proxy timeout) */
            s->phase = P_DONE;
            return;
        }
        emit_tcp(s, closer, 0x11, NULL, 0, 0);
        s->phase = P_FIN2;
        return;
    case P_FIN2:
        emit_tcp(s, !closer, 0x11, NULL, 0, 0);
        s->phase = P_LASTACK;
        return;
    case P_LASTACK:
        emit_tcp(s, closer, 0x10, NULL, 0, 0);
        s->phase = P_DONE;
        return;
    default:
        return;
    }
    if (s->cur >= s->nmsg) {
        s->phase = P_FIN1;
        s->rst = chance(0.05);
        return;
    }
    struct msg *m = &s->m[s->cur];
    int dir = m->dir;
    for (unsigned sent = 0; sent < s->cwnd && s->off < m->len; sent++) {
        uint32_t n = m->len - s->off;
        if (n > s->mss) n = s->mss;
        bool last = s->off + n == m->len;
        emit_tcp(s, dir, last ? 0x18 : 0x10, m, s->off, n); /* PSH on a message's last segment */
        s->off += n;
        if (n == s->mss && ++s->unacked[dir] >= 2) ack_from(s, !dir);
    }
    if (s->off < m->len) {
        if (s->cwnd < 32) s->cwnd = (uint8_t)(s->cwnd * 2 > 32 ? 32 : s->cwnd * 2);
        return;
    }
    /* The message is complete: the other side acknowledges it (delayed
     * ACK), unless it answers at once, which carries the ACK. */
    s->cur++;
    s->off = 0;
    bool answers_now = s->cur < s->nmsg && s->m[s->cur].dir != dir && m->len < 2000;
    if (!answers_now)
        ack_from(s, !dir);
    else
        s->unacked[dir] = 0;
}

static void step_udp(struct sess *s)
{
    if (s->cur >= s->nmsg) {
        s->phase = P_DONE;
        return;
    }
    struct msg *m = &s->m[s->cur];
    if (s->proto != 17) {
        emit_icmp(s, m->dir, m);
        s->cur++;
        return;
    }
    uint32_t dgram = s->kind == K_QUIC ? 1252 : 1472;
    for (unsigned sent = 0; sent < s->cwnd && s->off < m->len; sent++) {
        uint32_t n = m->len - s->off;
        if (n > dgram) n = dgram;
        emit_udp(s, m->dir, m, s->off, n);
        s->off += n;
        if (s->kind == K_QUIC && m->dir == 1 && ++s->unacked[1] >= 3) {
            /* Client ACK frame in a short-header packet. */
            struct msg ack = {.dir = 0, .len = 40 + rnd_below(20), .body_off = rnd_below(RAND_POOL)};
            ack.body_len = ack.len;
            emit_udp(s, 0, &ack, 0, ack.len);
            s->unacked[1] = 0;
        }
    }
    if (s->off < m->len) {
        if (s->cwnd < 32) s->cwnd = (uint8_t)(s->cwnd * 2 > 32 ? 32 : s->cwnd * 2);
        return;
    }
    s->cur++;
    s->off = 0;
}

/* A connection that fails: refused (SYN, then RST|ACK with sequence number
 * 0, RFC 9293 3.10.7.1) or to a host that does not answer (the SYN and two
 * retransmissions of it, same sequence number). */
static void step_fail(struct sess *s)
{
    if (s->rst && s->cur == 1) {
        s->ep[1].seq = 0;
        emit_tcp(s, 1, 0x14, NULL, 0, 0);
        s->phase = P_DONE;
        return;
    }
    emit_tcp(s, 0, 0x02, NULL, 0, 0);
    s->ep[0].seq--; /* a retransmission repeats the sequence number */
    if (++s->cur == 3) s->phase = P_DONE;
}

static void step(struct sess *s)
{
    if (!s->counted) {
        s->counted = true;
        O.st.flows[s->kind]++;
    }
    if (s->kind == K_TCP_FAIL)
        step_fail(s);
    else if (s->kind == K_ARP)
        emit_arp(s);
    else if (s->proto == 6)
        step_tcp(s);
    else
        step_udp(s);
}

/* ---- floods --------------------------------------------------------------------- */

static void rand_public_ip4(uint8_t *ip)
{
    for (;;) {
        uint32_t a = (uint32_t)rnd64();
        uint8_t o = (uint8_t)(a >> 24);
        if (o == 0 || o == 10 || o == 127 || o >= 224) continue;
        wr32(ip, a);
        return;
    }
}

static void rand_ip6(uint8_t *ip)
{
    ip[0] = 0x20, ip[1] = 0x01, ip[2] = 0x0d, ip[3] = 0xb8; /* 2001:db8::/32, random below */
    rnd_fill(ip + 4, 12);
}

static const uint8_t victim4[4] = {10, 0, 1, 10};
static const uint8_t victim6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 10};

struct recent_frag {
    uint8_t family;
    uint8_t src[16];
    uint32_t id;
    uint16_t off8;
};

static void flood_frame_l3(uint8_t family, uint8_t *src, struct l3 *h, size_t *off, uint8_t proto,
                           size_t l4len, uint8_t ttl)
{
    static const uint8_t srcmac[6] = {0x00, 0x1b, 0x54, 0xaa, 0x00, 0x02};
    static const uint8_t dstmac[6] = {0x02, 0x1a, 0xc1, 0xff, 0x00, 0x0a};
    *off = put_eth(O.frame, dstmac, srcmac, 0, family == 6 ? 0x86dd : 0x0800);
    *h = (struct l3){.family = family,
                     .src = src,
                     .dst = family == 6 ? victim6 : victim4,
                     .ttl = ttl,
                     .ipid = (uint16_t)rnd64(),
                     .flow_label = 0,
                     .df = false};
    *off += put_ip(O.frame + *off, h, proto, l4len);
}

static void flood_syn(void)
{
    uint8_t src[16];
    uint8_t family = chance(0.1) ? 6 : 4;
    if (family == 6)
        rand_ip6(src);
    else
        rand_public_ip4(src);
    struct l3 h;
    size_t off;
    flood_frame_l3(family, src, &h, &off, 6, 24, (uint8_t)(32 + rnd_below(200)));
    uint8_t *t = O.frame + off;
    static const uint16_t ports[4] = {80, 443, 22, 3389};
    wr16(t, (uint16_t)(1024 + rnd_below(64512)));
    wr16(t + 2, ports[rnd_below(4)]);
    wr32(t + 4, (uint32_t)rnd64());
    wr32(t + 8, 0);
    t[12] = 6 << 4, t[13] = 0x02;
    wr16(t + 14, (uint16_t)(512 + rnd_below(65000)));
    wr16(t + 18, 0);
    t[20] = 2, t[21] = 4;
    wr16(t + 22, 1460);
    put_l4_csum(&h, 6, t, 24, 16);
    write_frame(off + 24, -1);
}

/* An IPv4 fragment (RFC 791 3.2: MF set, offset in 8-byte units) or an
 * IPv6 Fragment header (RFC 8200 4.5), never the last one. */
static void flood_frag(struct recent_frag *recent, size_t nrecent, uint64_t *k)
{
    struct recent_frag *r = &recent[*k % nrecent];
    if (*k < nrecent || !chance(0.25)) {
        r->family = chance(0.2) ? 6 : 4;
        if (r->family == 6)
            rand_ip6(r->src);
        else
            rand_public_ip4(r->src);
        r->id = (uint32_t)rnd64();
        r->off8 = (uint16_t)(chance(0.3) ? 0 : rnd_below(7000));
    } else {
        r = &recent[rnd_below((uint32_t)nrecent)]; /* another piece of a recent datagram */
        r->off8 = (uint16_t)((r->off8 + 64 + rnd_below(512)) % 7000);
    }
    (*k)++;
    uint32_t n = 8 * (1 + rnd_below(32)); /* 8-256 bytes */
    uint8_t proto = chance(0.8) ? 17 : 1;
    struct l3 h;
    size_t off;
    if (r->family == 4) {
        flood_frame_l3(4, r->src, &h, &off, proto, n, 64);
        uint8_t *ip = O.frame + off - 20;
        wr16(ip + 4, (uint16_t)r->id);
        wr16(ip + 6, (uint16_t)(0x2000 | (r->off8 & 0x1fff))); /* MF */
        wr16(ip + 10, 0);
        wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
        rnd_fill(O.frame + off, n);
        write_frame(off + n, -1);
    } else {
        flood_frame_l3(6, r->src, &h, &off, 44, 8 + n, 64);
        uint8_t *f = O.frame + off;
        f[0] = proto == 17 ? 17 : 58, f[1] = 0;
        wr16(f + 2, (uint16_t)((r->off8 << 3) | 1)); /* offset, M = 1 */
        wr32(f + 4, r->id);
        rnd_fill(f + 8, n);
        write_frame(off + 8 + n, -1);
    }
}

static void flood_udp(void)
{
    uint8_t src[16];
    rand_public_ip4(src);
    uint32_t n = 16 + rnd_below(200);
    struct l3 h;
    size_t off;
    flood_frame_l3(4, src, &h, &off, 17, 8 + n, 57);
    uint8_t *u = O.frame + off;
    wr16(u, (uint16_t)(1024 + rnd_below(64512)));
    wr16(u + 2, (uint16_t)(1 + rnd_below(65535)));
    wr16(u + 4, (uint16_t)(8 + n));
    rnd_fill(u + 8, n);
    put_l4_csum(&h, 17, u, 8 + n, 6);
    write_frame(off + 8 + n, -1);
}

/* A TCP segment opening a 16 KB ClientHello that never completes: the
 * sensor keeps its handshake bytes until the flow goes. */
static void flood_tls(void)
{
    uint8_t src[16];
    rand_public_ip4(src);
    uint32_t n = 600 + rnd_below(800);
    struct l3 h;
    size_t off;
    flood_frame_l3(4, src, &h, &off, 6, 20 + n, 60);
    uint8_t *t = O.frame + off;
    wr16(t, (uint16_t)(1024 + rnd_below(64512)));
    wr16(t + 2, 443);
    wr32(t + 4, (uint32_t)rnd64());
    wr32(t + 8, (uint32_t)rnd64());
    t[12] = 5 << 4, t[13] = 0x18;
    wr16(t + 14, 1024);
    wr16(t + 18, 0);
    uint8_t *p = t + 20;
    rnd_fill(p, n);
    p[0] = 22, p[1] = 3, p[2] = 1;
    wr16(p + 3, 16384);
    p[5] = 1;
    wr24(p + 6, 16380);
    put_l4_csum(&h, 6, t, 20 + n, 16);
    write_frame(off + 20 + n, -1);
}

static void flood_icmp(void)
{
    uint8_t src[16];
    rand_public_ip4(src);
    struct l3 h;
    size_t off;
    flood_frame_l3(4, src, &h, &off, 1, 8 + 56, 50);
    uint8_t *c = O.frame + off;
    c[0] = 8, c[1] = 0;
    wr16(c + 4, (uint16_t)rnd64());
    wr16(c + 6, 1);
    rnd_fill(c + 8, 56);
    put_l4_csum(&h, 1, c, 64, 2);
    write_frame(off + 64, -1);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: gen_traffic --out FILE [--bytes N | --packets N] [--seed S] [--rate-mbps R]\n"
               "                   [--clients N] [--servers N] [--active N] [--cert-dir DIR] [-q]\n"
               "       gen_traffic --flood syn|frag|mixed --out FILE [--packets N] [--seed S] [-q]\n"
               "Writes a pcap of realistic LAN traffic (default 100 MB) or of a flood\n"
               "(default 1,500,000 packets). Deterministic for a given seed.\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s) return false;
    /* Suffixes k, M, G (powers of 1000, as sizes on the command line usually are). */
    if (*end == 'k' || *end == 'K')
        v *= 1000ull, end++;
    else if (*end == 'M')
        v *= 1000000ull, end++;
    else if (*end == 'G')
        v *= 1000000000ull, end++;
    if (*end) return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    uint64_t bytes = 0, packets = 0, seed = 1, rate = 1000, nclients = 40000, nservers = 30000, active = 2048;
    const char *out = NULL, *flood = NULL, *cert_dir = KG_GEN_CERT_DIR;
    bool quiet = false;
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"bytes", required_argument, NULL, 'b'},
                                         {"packets", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"rate-mbps", required_argument, NULL, 'r'},
                                         {"clients", required_argument, NULL, 'c'},
                                         {"servers", required_argument, NULL, 'S'},
                                         {"active", required_argument, NULL, 'a'},
                                         {"cert-dir", required_argument, NULL, 'C'},
                                         {"flood", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:b:n:s:qh", opts, NULL)) != -1) {
        uint64_t *dst = NULL;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            flood = optarg;
            break;
        case 'C':
            cert_dir = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'b':
            dst = &bytes;
            break;
        case 'n':
            dst = &packets;
            break;
        case 's':
            dst = &seed;
            break;
        case 'r':
            dst = &rate;
            break;
        case 'c':
            dst = &nclients;
            break;
        case 'S':
            dst = &nservers;
            break;
        case 'a':
            dst = &active;
            break;
        default:
            usage(stderr);
            return 2;
        }
        if (dst && !parse_u64(optarg, dst)) {
            fprintf(stderr, "gen_traffic: not a number: %s\n", optarg);
            return 2;
        }
    }
    if (!out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (flood && strcmp(flood, "syn") && strcmp(flood, "frag") && strcmp(flood, "mixed")) {
        fprintf(stderr, "gen_traffic: --flood: syn, frag or mixed, not %s\n", flood);
        return 2;
    }
    if (!rate || !nclients || nclients > 254u * 256u * 16u || !nservers || nservers > 131070 || !active ||
        active > 1000000) {
        fprintf(stderr,
                "gen_traffic: --rate-mbps, --clients (<= 1040384), --servers (<= 131070) and --active "
                "(<= 1000000) must be positive\n");
        return 2;
    }
    if (!bytes && !packets) {
        if (flood)
            packets = 1500000;
        else
            bytes = 100000000;
    }

    uint64_t sx = seed;
    for (int i = 0; i < 4; i++)
        rs[i] = splitmix64(&sx);
    O.f = strcmp(out, "-") ? fopen(out, "wb") : stdout;
    if (!O.f) {
        fprintf(stderr, "gen_traffic: %s: %s\n", out, strerror(errno));
        return 1;
    }
    static char obuf[8 << 20];
    setvbuf(O.f, obuf, _IOFBF, sizeof(obuf));
    O.gap_ns_per_bit = 1000.0 / (double)rate;
    /* pcap global header (libpcap's savefile format): version 2.4, snaplen 65535, Ethernet. */
    uint32_t gh[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
    fwrite(gh, 1, 24, O.f);
    O.st.file_bytes = 24;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (flood) {
        O.gap_ns_per_bit = 0; /* a fixed pace below instead */
        static struct recent_frag recent[4096];
        uint64_t k = 0;
        for (uint64_t i = 0; (!packets || i < packets) && (!bytes || O.st.file_bytes < bytes); i++) {
            O.now_ns += 999; /* + 1 in write_frame: 1 µs apart, a 1 Mpps flood */
            if (!strcmp(flood, "syn")) {
                flood_syn();
            } else if (!strcmp(flood, "frag")) {
                flood_frag(recent, 4096, &k);
            } else {
                uint32_t r = rnd_below(100);
                if (r < 40)
                    flood_syn();
                else if (r < 70)
                    flood_frag(recent, 4096, &k);
                else if (r < 85)
                    flood_udp();
                else if (r < 95)
                    flood_tls();
                else
                    flood_icmp();
            }
        }
    } else {
        world_init((uint32_t)nclients, (uint32_t)nservers, cert_dir, quiet);
        struct sess *ss = calloc(active, sizeof(*ss));
        if (!ss) abort();
        for (uint64_t i = 0; i < active; i++)
            sess_new(&ss[i]);
        while ((!bytes || O.st.file_bytes < bytes) && (!packets || O.st.packets < packets)) {
            struct sess *s = &ss[rnd_below((uint32_t)active)];
            step(s);
            if (s->phase == P_DONE) sess_new(s);
        }
        for (uint64_t i = 0; i < active; i++)
            sess_free(&ss[i]);
        free(ss);
    }
    if (fflush(O.f) != 0 || ferror(O.f) || (O.f != stdout && fclose(O.f) != 0)) {
        fprintf(stderr, "gen_traffic: %s: write error: %s\n", out, strerror(errno));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!quiet) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        const struct stats *st = &O.st;
        fprintf(stderr,
                "gen_traffic: %s: %" PRIu64 " packets, %" PRIu64 " frame bytes, %" PRIu64
                " file bytes, %.3f s of traffic (%.0f Mbit/s), generated in %.2f s\n",
                out, st->packets, st->bytes, st->file_bytes, (double)O.now_ns / 1e9,
                O.now_ns ? (double)st->bytes * 8e3 / (double)O.now_ns : 0.0, secs);
        static const char *const hn[7] = {"<=64",     "65-127",    "128-255", "256-511",
                                          "512-1023", "1024-1499", ">=1500"};
        fprintf(stderr, "  frame sizes:");
        for (int i = 0; i < 7; i++)
            fprintf(stderr, " %s %.1f%%", hn[i],
                    st->packets ? 100.0 * (double)st->hist[i] / (double)st->packets : 0);
        fprintf(stderr, "\n");
        if (!flood) {
            uint64_t nf = 0, cs = 0, sv = 0;
            for (int k = 0; k < K_COUNT; k++)
                nf += st->flows[k];
            for (uint32_t i = 0; i < W.nclients; i++)
                cs += W.client_seen[i];
            for (uint32_t i = 0; i < W.nservers; i++)
                sv += W.server_seen[i];
            fprintf(stderr,
                    "  %" PRIu64 " flows, %" PRIu64 " distinct clients, %" PRIu64
                    " distinct Internet servers (+ internal servers in 10.0.0.0/22)\n",
                    nf, cs, sv);
            fprintf(stderr, "  %-8s %8s %7s %9s %7s %8s\n", "kind", "flows", "flows%", "packets", "pkts%",
                    "bytes%");
            for (int k = 0; k < K_COUNT; k++)
                fprintf(stderr, "  %-8s %8" PRIu64 " %6.1f%% %9" PRIu64 " %6.1f%% %7.1f%%\n", kind_names[k],
                        st->flows[k], nf ? 100.0 * (double)st->flows[k] / (double)nf : 0, st->kpackets[k],
                        100.0 * (double)st->kpackets[k] / (double)st->packets,
                        100.0 * (double)st->kbytes[k] / (double)st->bytes);
        }
    }
    return 0;
}
