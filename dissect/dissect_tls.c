/*
 * dissect/dissect_tls.c — TLS ClientHello parser with JA3 and JA4
 * fingerprints, and the server-certificate locator (dissect_parsers.h).
 *
 * Why our own: nDPI 4.2 gives one SNI and a JA3 that departs from the JA3
 * specification on long cipher lists, and no JA4 at all. The rules used
 * here, and how they differ from nDPI 4.2, are in docs/FINGERPRINTS.md.
 *
 * Threads: stateless; any number of worker threads may call it at once.
 * The only shared state is the pair of digest algorithms (MD5, SHA-256),
 * fetched from OpenSSL once under pthread_once; fetched EVP_MD objects are
 * immutable and may be used from several threads.
 * Ownership: borrows the message for the duration of the call. Allocates
 * one OpenSSL digest context per ClientHello (once per flow), nothing else.
 *
 * Every read is bounds-checked: the first pass validates the message and
 * records where each list is; the fingerprint passes only walk lists the
 * first pass has already checked, and check again anyway.
 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"

#define HS_CLIENT_HELLO 1
#define HS_CERTIFICATE 11

#define EXT_SERVER_NAME 0x0000
#define EXT_SUPPORTED_GROUPS 0x000a
#define EXT_EC_POINT_FORMATS 0x000b
#define EXT_SIGNATURE_ALGORITHMS 0x000d
#define EXT_ALPN 0x0010
#define EXT_SUPPORTED_VERSIONS 0x002b

/* JA4 sorts cipher and extension lists in a stack array of this many
 * values (4 KiB); longer lists are sorted in runs (see emit_sorted). */
#define SORT_STACK_MAX 2048

/* ---- lazily fetched digests -------------------------------------------- */

static pthread_once_t g_md_once = PTHREAD_ONCE_INIT;
static EVP_MD *g_md5;    /* NULL when unavailable (e.g. a FIPS-only provider) */
static EVP_MD *g_sha256; /* idem */

static void md_fetch_once(void)
{
    /* Explicit fetch: OpenSSL 3 would otherwise look the algorithm up at
     * every EVP_DigestInit_ex. Never freed: they live as long as the
     * process, and are still reachable (not a leak for LeakSanitizer). */
    g_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* ---- bounds-checked reader ---------------------------------------------- */

struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
};

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
    if (r->len - r->off < 1) return false;
    *v = r->p[r->off++];
    return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
    if (r->len - r->off < 2) return false;
    *v = be16(r->p + r->off);
    r->off += 2;
    return true;
}

/* Takes n bytes as a span. */
static bool rd_span(struct rd *r, size_t n, const uint8_t **out)
{
    if (r->len - r->off < n) return false;
    *out = r->p + r->off;
    r->off += n;
    return true;
}

/* Takes a vector with a 1- or 2-byte length prefix (RFC 8446 section 3.4). */
static bool rd_vec8(struct rd *r, const uint8_t **out, size_t *n)
{
    uint8_t l;
    if (!rd_u8(r, &l)) return false;
    *n = l;
    return rd_span(r, l, out);
}

static bool rd_vec16(struct rd *r, const uint8_t **out, size_t *n)
{
    uint16_t l;
    if (!rd_u16(r, &l)) return false;
    *n = l;
    return rd_span(r, l, out);
}

/* RFC 8701: GREASE values are 0x0A0A, 0x1A1A, ..., 0xFAFA. */
static inline bool is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* ---- ClientHello first pass ---------------------------------------------- */

/* Where the lists are; every span lies inside the message. */
struct hello {
    uint16_t legacy_version;
    const uint8_t *ciphers; /* u16 list, even length */
    size_t ciphers_len;
    const uint8_t *exts; /* the extension block (type, length, data)* */
    size_t exts_len;
    const uint8_t *groups; /* u16 list, clipped to an even length */
    size_t groups_len;
    const uint8_t *ecpf; /* u8 list */
    size_t ecpf_len;
    const uint8_t *sigalgs; /* u16 list, clipped to an even length */
    size_t sigalgs_len;
    const uint8_t *alpn1; /* first ALPN protocol, raw bytes */
    size_t alpn1_len;
    bool has_sni;
    bool have_newest;
    uint16_t newest; /* newest non-GREASE supported_versions entry */
};

/* Orders versions by age. DTLS versions count down (RFC 9147 section
 * 5.3: 1.0 = 0xfeff, 1.2 = 0xfefd, 1.3 = 0xfefc), so comparing them as
 * numbers picks the oldest; they are ranked apart and above TLS ones (a
 * list mixing both is nonsense anyway). Unknown TLS values such as the
 * TLS 1.3 drafts (0x7fxx) compare as numbers. */
static uint32_t version_rank(uint16_t v)
{
    if ((v >> 8) == 0xfe) return 0x10000u + (0xffu - (v & 0xffu));
    return v;
}

/* The extension data of server_name (RFC 6066 section 3): the first
 * host_name entry, bytes as sent, truncated to fit. A malformed list is
 * not an error for the ClientHello: the extension is still present. */
static void parse_sni(const uint8_t *d, size_t n, char *out)
{
    struct rd r = {d, n, 0};
    const uint8_t *list;
    size_t list_len;
    if (!rd_vec16(&r, &list, &list_len)) return;
    struct rd l = {list, list_len, 0};
    while (l.off < l.len) {
        uint8_t type;
        const uint8_t *name;
        size_t name_len;
        if (!rd_u8(&l, &type) || !rd_vec16(&l, &name, &name_len)) return;
        if (type == 0) { /* host_name */
            size_t m = KG_MIN(name_len, (size_t)KG_TLS_SNI_MAX - 1);
            memcpy(out, name, m);
            out[m] = '\0';
            return;
        }
    }
}

/* Clips a declared inner list length to what the extension holds, and a
 * u16 list to an even length: fingerprints then describe what is there. */
static void inner_list16(const uint8_t *d, size_t n, const uint8_t **out, size_t *out_len)
{
    size_t l = n >= 2 ? be16(d) : 0;
    size_t avail = n >= 2 ? n - 2 : 0;
    *out = d + (n >= 2 ? 2 : 0);
    *out_len = KG_MIN(l, avail) & ~(size_t)1;
}

static int parse_extensions(struct hello *h, char *sni, char *alpn)
{
    struct rd r = {h->exts, h->exts_len, 0};
    bool seen_groups = false, seen_ecpf = false, seen_sig = false, seen_alpn = false, seen_sv = false;

    while (r.off < r.len) {
        uint16_t type;
        const uint8_t *d;
        size_t n;
        if (!rd_u16(&r, &type) || !rd_vec16(&r, &d, &n)) return -1;
        /* A repeated extension is a protocol error (RFC 8446 section 4.2);
         * the first occurrence is the one described. */
        switch (type) {
        case EXT_SERVER_NAME:
            if (!h->has_sni) parse_sni(d, n, sni);
            h->has_sni = true;
            break;
        case EXT_SUPPORTED_GROUPS:
            if (!seen_groups) inner_list16(d, n, &h->groups, &h->groups_len);
            seen_groups = true;
            break;
        case EXT_EC_POINT_FORMATS:
            if (!seen_ecpf && n >= 1) {
                h->ecpf = d + 1;
                h->ecpf_len = KG_MIN((size_t)d[0], n - 1);
            }
            seen_ecpf = true;
            break;
        case EXT_SIGNATURE_ALGORITHMS:
            if (!seen_sig) inner_list16(d, n, &h->sigalgs, &h->sigalgs_len);
            seen_sig = true;
            break;
        case EXT_ALPN:
            /* RFC 7301 section 3.1: u16 list of u8-prefixed names. */
            if (!seen_alpn && n >= 3) {
                size_t list_len = KG_MIN((size_t)be16(d), n - 2);
                size_t first = d[2];
                if (list_len >= 1 && first <= list_len - 1) {
                    h->alpn1 = d + 3;
                    h->alpn1_len = first;
                    size_t m = KG_MIN(first, (size_t)KG_TLS_ALPN_MAX - 1);
                    memcpy(alpn, d + 3, m);
                    alpn[m] = '\0';
                }
            }
            seen_alpn = true;
            break;
        case EXT_SUPPORTED_VERSIONS:
            /* In a ClientHello: u8-prefixed list of u16 (RFC 8446 4.2.1). */
            if (!seen_sv && n >= 1) {
                size_t l = KG_MIN((size_t)d[0], n - 1) & ~(size_t)1;
                for (size_t i = 0; i < l; i += 2) {
                    uint16_t v = be16(d + 1 + i);
                    if (is_grease(v)) continue;
                    if (!h->have_newest || version_rank(v) > version_rank(h->newest)) h->newest = v;
                    h->have_newest = true;
                }
            }
            seen_sv = true;
            break;
        default:
            break;
        }
    }
    return 0;
}

/*
 * Validates the ClientHello and fills *h; sni and alpn receive the strings.
 * RFC 8446 section 4.1.2 (TLS 1.3), RFC 5246 section 7.4.1.2 (TLS 1.2),
 * RFC 6347 section 4.2.2 / RFC 9147 section 5.3 (DTLS: 12-byte handshake
 * header and a cookie after the session id).
 */
static int parse_hello(const uint8_t *p, size_t len, bool dtls, struct hello *h, char *sni, char *alpn)
{
    size_t hdr = dtls ? 12 : 4;
    if (p == NULL || len < hdr || p[0] != HS_CLIENT_HELLO) return -1;
    size_t body_len = be24(p + 1);
    if (body_len > len - hdr) return -1;
    if (dtls) {
        /* Only a whole, unfragmented message can be fingerprinted. */
        if (be24(p + 6) != 0 || be24(p + 9) != body_len) return -1;
    }

    struct rd r = {p + hdr, body_len, 0};
    const uint8_t *skip;
    size_t n;
    if (!rd_u16(&r, &h->legacy_version)) return -1;
    if (!rd_span(&r, 32, &skip)) return -1;         /* random */
    if (!rd_vec8(&r, &skip, &n)) return -1;         /* legacy_session_id */
    if (dtls && !rd_vec8(&r, &skip, &n)) return -1; /* cookie */
    if (!rd_vec16(&r, &h->ciphers, &h->ciphers_len)) return -1;
    if (h->ciphers_len % 2 != 0) return -1;
    if (!rd_vec8(&r, &skip, &n)) return -1; /* legacy_compression_methods */
    /* Extensions may be absent altogether in TLS <= 1.2 (RFC 5246 section
     * 7.4.1.2); when present the block must fit the message. */
    if (r.off < r.len) {
        if (!rd_vec16(&r, &h->exts, &h->exts_len)) return -1;
        if (parse_extensions(h, sni, alpn) != 0) return -1;
    }
    return 0;
}

/* ---- fingerprint text sink: display copy + digest -------------------------- */

/* Text goes both to an optional NUL-terminated display copy (truncated when
 * full) and to a digest, batched, so the digest always covers the whole
 * text whatever the copy holds. */
struct sink {
    EVP_MD_CTX *md; /* NULL: no digest */
    char *copy;     /* NULL: no copy */
    size_t copy_cap;
    size_t copy_len;
    bool copy_truncated;
    bool md_failed;
    size_t total;
    size_t n;
    char buf[512];
};

static void sink_flush(struct sink *s)
{
    if (s->n && s->md && EVP_DigestUpdate(s->md, s->buf, s->n) != 1) s->md_failed = true;
    s->n = 0;
}

static void sink_write(struct sink *s, const char *t, size_t n)
{
    if (s->copy) {
        size_t room = s->copy_cap - 1 - s->copy_len;
        size_t m = KG_MIN(n, room);
        memcpy(s->copy + s->copy_len, t, m);
        s->copy_len += m;
        s->copy[s->copy_len] = '\0';
        if (m < n) s->copy_truncated = true;
    }
    s->total += n;
    if (!s->md) return;
    if (s->n + n > sizeof(s->buf)) sink_flush(s);
    if (n > sizeof(s->buf)) {
        if (EVP_DigestUpdate(s->md, t, n) != 1) s->md_failed = true;
        return;
    }
    memcpy(s->buf + s->n, t, n);
    s->n += n;
}

static void sink_char(struct sink *s, char c)
{
    sink_write(s, &c, 1);
}

static void sink_dec(struct sink *s, unsigned v)
{
    char t[8];
    size_t i = sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i);
    sink_write(s, t + i, sizeof(t) - i);
}

static const char k_hex[] = "0123456789abcdef";

static void sink_hex4(struct sink *s, uint16_t v)
{
    char t[4] = {k_hex[v >> 12], k_hex[(v >> 8) & 15], k_hex[(v >> 4) & 15], k_hex[v & 15]};
    sink_write(s, t, 4);
}

/* Starts a digest on ctx (which may be NULL: then text only). */
static void sink_init(struct sink *s, EVP_MD_CTX *ctx, const EVP_MD *md, char *copy, size_t copy_cap)
{
    memset(s, 0, offsetof(struct sink, buf));
    s->copy = copy;
    s->copy_cap = copy_cap;
    if (copy) copy[0] = '\0';
    if (ctx && md) {
        EVP_MD_CTX_reset(ctx);
        if (EVP_DigestInit_ex(ctx, md, NULL) == 1) s->md = ctx;
    }
}

/* Finishes the digest into `hex` (2 * hex_bytes + 1 chars): the first
 * hex_bytes bytes of the digest in lower-case hex. Returns false when no
 * digest could be computed. */
static bool sink_final_hex(struct sink *s, char *hex, size_t hex_bytes)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    if (!s->md) return false;
    sink_flush(s);
    if (s->md_failed || EVP_DigestFinal_ex(s->md, d, &dl) != 1 || dl < hex_bytes) return false;
    for (size_t i = 0; i < hex_bytes; i++) {
        hex[2 * i] = k_hex[d[i] >> 4];
        hex[2 * i + 1] = k_hex[d[i] & 15];
    }
    hex[2 * hex_bytes] = '\0';
    return true;
}

/* ---- value lists ------------------------------------------------------------ */

/* A list of 16-bit values: either a plain big-endian array, or the types of
 * an extension block (type, u16 length, data)*. */
struct u16_list {
    const uint8_t *p;
    size_t len;
    bool ext_types;
};

static bool list_next(const struct u16_list *l, size_t *off, uint16_t *v)
{
    if (l->ext_types) {
        if (l->len - *off < 4) return false;
        size_t next = *off + 4 + be16(l->p + *off + 2);
        if (next > l->len) return false;
        *v = be16(l->p + *off);
        *off = next;
        return true;
    }
    if (l->len - *off < 2) return false;
    *v = be16(l->p + *off);
    *off += 2;
    return true;
}

/* Which values JA3/JA4 keep: never GREASE; for the JA4 extension hash
 * also not SNI and ALPN (they are in part a already). */
static inline bool keep(uint16_t v, bool drop_sni_alpn)
{
    if (is_grease(v)) return false;
    return !(drop_sni_alpn && (v == EXT_SERVER_NAME || v == EXT_ALPN));
}

static unsigned count_kept(const struct u16_list *l)
{
    unsigned n = 0;
    size_t off = 0;
    uint16_t v;
    while (list_next(l, &off, &v))
        if (!is_grease(v)) n++;
    return n;
}

/* JA3: decimal values in wire order joined by '-', GREASE removed. */
static void emit_dec_list(struct sink *s, const struct u16_list *l)
{
    size_t off = 0;
    uint16_t v;
    bool first = true;
    while (list_next(l, &off, &v)) {
        if (is_grease(v)) continue;
        if (!first) sink_char(s, '-');
        sink_dec(s, v);
        first = false;
    }
}

/* In-place heapsort: O(n log n) whatever the input, no recursion and no
 * allocation (glibc's qsort may malloc a buffer for arrays over 1 KiB). */
static void sift_down(uint16_t *v, size_t root, size_t n)
{
    uint16_t x = v[root];
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) break;
        if (child + 1 < n && v[child + 1] > v[child]) child++;
        if (v[child] <= x) break;
        v[root] = v[child];
        root = child;
    }
    v[root] = x;
}

static void sort_u16(uint16_t *v, size_t n)
{
    if (n < 2) return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        uint16_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

/* Sorts v[0..n) and emits it, ','-separated, continuing *written. */
static void emit_array(struct sink *s, uint16_t *v, size_t n, unsigned *written)
{
    sort_u16(v, n);
    for (size_t i = 0; i < n; i++) {
        if ((*written)++) sink_char(s, ',');
        sink_hex4(s, v[i]);
    }
}

/*
 * JA4: 4-digit lower-case hex values sorted (numeric order is hex order),
 * joined by ','; duplicates stay. Returns how many were written.
 *
 * Up to SORT_STACK_MAX values are copied to the stack and sorted. A longer
 * list (only hostile or synthetic hellos: up to 32767 cipher suites) is
 * emitted by high byte: a first pass counts the values of each high byte,
 * then each pass collects a run of consecutive high bytes whose values fit
 * the array, sorts and emits them. Two consecutive runs always hold more
 * than SORT_STACK_MAX values, so a 32767-value list takes about 35 passes;
 * a high byte with more values than the array is emitted by counting its
 * low bytes instead. No allocation, O(n) memory never needed.
 */
static unsigned emit_sorted(struct sink *s, const struct u16_list *l, bool drop_sni_alpn)
{
    uint16_t v[SORT_STACK_MAX];
    uint16_t per_hi[256] = {0}; /* a list holds < 32768 values: no overflow */
    size_t n = 0, total = 0, off = 0;
    unsigned written = 0;
    uint16_t x;

    while (list_next(l, &off, &x)) {
        if (!keep(x, drop_sni_alpn)) continue;
        if (n < SORT_STACK_MAX) v[n++] = x;
        per_hi[x >> 8]++;
        total++;
    }
    if (total <= SORT_STACK_MAX) {
        emit_array(s, v, n, &written);
        return written;
    }

    unsigned hi = 0;
    while (hi < 256) {
        if (per_hi[hi] > SORT_STACK_MAX) {
            uint16_t cnt[256] = {0};
            off = 0;
            while (list_next(l, &off, &x))
                if ((x >> 8) == hi && keep(x, drop_sni_alpn)) cnt[x & 0xff]++;
            for (unsigned lo = 0; lo < 256; lo++) {
                for (unsigned k = 0; k < cnt[lo]; k++) {
                    if (written++) sink_char(s, ',');
                    sink_hex4(s, (uint16_t)(hi << 8 | lo));
                }
            }
            hi++;
            continue;
        }
        unsigned first = hi;
        size_t run = 0;
        while (hi < 256 && per_hi[hi] <= SORT_STACK_MAX && run + per_hi[hi] <= SORT_STACK_MAX)
            run += per_hi[hi++];
        if (run == 0) continue;
        n = 0;
        off = 0;
        while (list_next(l, &off, &x))
            if ((x >> 8) >= first && (x >> 8) < hi && keep(x, drop_sni_alpn) && n < SORT_STACK_MAX)
                v[n++] = x;
        emit_array(s, v, n, &written);
    }
    return written;
}

/* ---- JA3 ----------------------------------------------------------------- */

/*
 * JA3 (Salesforce): "SSLVersion,Ciphers,Extensions,EllipticCurves,
 * EllipticCurvePointFormats", decimal, '-'-joined, GREASE removed from the
 * cipher, extension and group lists; empty fields stay empty; MD5 of the
 * whole string, however long (ja3_full is only a display copy).
 */
static void compute_ja3(const struct hello *h, EVP_MD_CTX *ctx, struct kg_tls_client_hello *out)
{
    struct sink s;
    sink_init(&s, ctx, g_md5, out->ja3_full, sizeof(out->ja3_full));

    sink_dec(&s, h->legacy_version);
    sink_char(&s, ',');
    struct u16_list ciphers = {h->ciphers, h->ciphers_len, false};
    emit_dec_list(&s, &ciphers);
    sink_char(&s, ',');
    struct u16_list exts = {h->exts, h->exts_len, true};
    emit_dec_list(&s, &exts);
    sink_char(&s, ',');
    struct u16_list groups = {h->groups, h->groups_len, false};
    emit_dec_list(&s, &groups);
    sink_char(&s, ',');
    for (size_t i = 0; i < h->ecpf_len; i++) {
        if (i) sink_char(&s, '-');
        sink_dec(&s, h->ecpf[i]);
    }

    out->ja3_full_truncated = s.copy_truncated;
    if (!sink_final_hex(&s, out->ja3, 16)) out->ja3[0] = '\0';
}

/* ---- JA4 ------------------------------------------------------------------ */

static const char *ja4_version(uint16_t v)
{
    switch (v) {
    case 0x0304:
        return "13";
    case 0x0303:
        return "12";
    case 0x0302:
        return "11";
    case 0x0301:
        return "10";
    case 0x0300:
        return "s3";
    case 0x0002:
        return "s2";
    case 0xfeff:
        return "d1";
    case 0xfefd:
        return "d2";
    case 0xfefc:
        return "d3";
    default:
        return "00";
    }
}

static bool is_alnum_ascii(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* JA4 "ALPN Extension Value": first and last character of the first ALPN
 * value; when either end byte is not ASCII alphanumeric, the first and last
 * characters of the hex of the whole value (high nibble of the first
 * byte, low nibble of the last); "00" when there is no (or an empty) value. */
static void ja4_alpn(const struct hello *h, char out[2])
{
    if (h->alpn1 == NULL || h->alpn1_len == 0) {
        out[0] = out[1] = '0';
        return;
    }
    uint8_t a = h->alpn1[0], z = h->alpn1[h->alpn1_len - 1];
    if (is_alnum_ascii(a) && is_alnum_ascii(z)) {
        out[0] = (char)a;
        out[1] = (char)z;
    } else {
        out[0] = k_hex[a >> 4];
        out[1] = k_hex[z & 15];
    }
}

static void compute_ja4(const struct hello *h, char transport, EVP_MD_CTX *ctx,
                        struct kg_tls_client_hello *out)
{
    struct u16_list ciphers = {h->ciphers, h->ciphers_len, false};
    struct u16_list exts = {h->exts, h->exts_len, true};
    struct u16_list sigs = {h->sigalgs, h->sigalgs_len, false};

    unsigned nc = count_kept(&ciphers), ne = count_kept(&exts);
    char *o = out->ja4;
    o[0] = transport;
    memcpy(o + 1, ja4_version(h->have_newest ? h->newest : h->legacy_version), 2);
    o[3] = h->has_sni ? 'd' : 'i';
    nc = nc > 99 ? 99 : nc;
    ne = ne > 99 ? 99 : ne;
    o[4] = (char)('0' + nc / 10);
    o[5] = (char)('0' + nc % 10);
    o[6] = (char)('0' + ne / 10);
    o[7] = (char)('0' + ne % 10);
    ja4_alpn(h, o + 8);
    o[10] = '_';

    /* Part b: sorted ciphers. Empty lists give twelve zeros rather than
     * the hash of nothing, so that "none" is visible. */
    struct sink s;
    sink_init(&s, ctx, g_sha256, NULL, 0);
    bool ok = true;
    if (emit_sorted(&s, &ciphers, false) == 0) {
        memcpy(o + 11, "000000000000", 13);
    } else {
        ok = sink_final_hex(&s, o + 11, 6);
    }
    o[23] = '_';

    /* Part c: sorted extensions without SNI and ALPN, then '_' and the
     * signature algorithms in wire order (no '_' when there are none). */
    sink_init(&s, ctx, g_sha256, NULL, 0);
    if (emit_sorted(&s, &exts, true) == 0) {
        memcpy(o + 24, "000000000000", 13);
    } else {
        if (count_kept(&sigs) > 0) {
            sink_char(&s, '_');
            size_t off = 0;
            uint16_t v;
            bool first = true;
            while (list_next(&sigs, &off, &v)) {
                if (is_grease(v)) continue;
                if (!first) sink_char(&s, ',');
                sink_hex4(&s, v);
                first = false;
            }
        }
        ok = sink_final_hex(&s, o + 24, 6) && ok;
    }
    if (!ok) o[0] = '\0'; /* no SHA-256 available: no JA4 rather than a wrong one */
}

/* ---- public ------------------------------------------------------------------ */

int kg_tls_parse_client_hello(const uint8_t *p, size_t len, char transport, struct kg_tls_client_hello *out)
{
    if (out == NULL) return -1;
    memset(out, 0, sizeof(*out));
    if (transport != 't' && transport != 'q' && transport != 'd') return -1;

    struct hello h;
    memset(&h, 0, sizeof(h));
    if (parse_hello(p, len, transport == 'd', &h, out->sni, out->alpn) != 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    out->legacy_version = h.legacy_version;
    out->max_version = h.have_newest ? h.newest : h.legacy_version;

    pthread_once(&g_md_once, md_fetch_once);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(); /* NULL: strings without hashes */
    compute_ja3(&h, ctx, out);
    compute_ja4(&h, transport, ctx, out);
    EVP_MD_CTX_free(ctx);
    return 0;
}

/* Handshake types a server's clear-text stream may carry before or around
 * its Certificate (RFC 5246 section 7.4, RFC 6066 section 8, RFC 8446
 * section 4); anything else means we are not looking at handshake
 * messages (e.g. an encrypted Finished) and the walk stops. */
static bool known_hs_type(uint8_t t)
{
    switch (t) {
    case 0:  /* hello_request */
    case 2:  /* server_hello */
    case 3:  /* hello_verify_request */
    case 4:  /* new_session_ticket */
    case 11: /* certificate */
    case 12: /* server_key_exchange */
    case 13: /* certificate_request */
    case 14: /* server_hello_done */
    case 22: /* certificate_status */
    case 23: /* supplemental_data */
        return true;
    default:
        return false;
    }
}

int kg_tls_find_server_cert(const uint8_t *p, size_t len, const uint8_t **cert, size_t *cert_len)
{
    if (cert) *cert = NULL;
    if (cert_len) *cert_len = 0;
    if (p == NULL) return 0;

    size_t off = 0;
    while (len - off >= 4) {
        uint8_t type = p[off];
        size_t mlen = be24(p + off + 1);
        if (!known_hs_type(type)) return -1;
        if (type == HS_CERTIFICATE) {
            /* RFC 5246 section 7.4.2: certificate_list<0..2^24-1> of
             * ASN.1Cert<1..2^24-1>. The first certificate is reported as
             * soon as it is complete, even if the rest of the chain is not. */
            const uint8_t *m = p + off + 4;
            size_t avail = len - off - 4;
            if (mlen < 3) return -1;
            if (avail < 3) return 0;
            size_t list_len = be24(m);
            if (list_len != mlen - 3) return -1;
            if (list_len == 0) return 0; /* no certificate sent */
            if (list_len < 3) return -1;
            if (avail < 6) return 0;
            size_t clen = be24(m + 3);
            if (clen == 0 || clen > list_len - 3) return -1;
            if (avail - 6 < clen) return 0;
            if (cert) *cert = m + 6;
            if (cert_len) *cert_len = clen;
            return 1;
        }
        if (len - off - 4 < mlen) return 0; /* message not complete yet */
        off += 4 + mlen;
    }
    return 0;
}

/* ---- ServerHello: negotiated version, cipher, JA3S ------------------------ */

int kg_tls_parse_server_hello(const uint8_t *p, size_t len, struct kg_tls_server_hello *out)
{
    memset(out, 0, sizeof(*out));
    /* RFC 8446 4.1.3 / RFC 5246 7.4.1.3: type(1) length(3) version(2)
     * random(32) session_id<0..32> cipher_suite(2) compression(1)
     * extensions<0..2^16-1> (optional before TLS 1.2). */
    if (len < 4 || p[0] != 2) return -1;
    size_t mlen = be24(p + 1);
    if (mlen > len - 4 || mlen < 38) return -1;
    const uint8_t *m = p + 4;
    size_t off = 0;
    out->legacy_version = be16(m);
    off = 2 + 32;
    size_t sid = m[off];
    off += 1 + sid;
    if (off + 3 > mlen) return -1;
    out->cipher = be16(m + off);
    off += 3;
    out->version = out->legacy_version;

    char ja3s[1024];
    size_t n = 0;
    int w = snprintf(ja3s, sizeof(ja3s), "%u,%u,", out->legacy_version, out->cipher);
    if (w < 0) return -1;
    n = (size_t)w;
    if (off + 2 <= mlen) {
        size_t elen = be16(m + off);
        off += 2;
        if (elen > mlen - off) return -1;
        size_t end = off + elen;
        bool first = true;
        while (off + 4 <= end) {
            uint16_t type = be16(m + off), l = be16(m + off + 2);
            if (off + 4 + l > end) return -1;
            if (type == 0x002b && l == 2) out->version = be16(m + off + 4); /* supported_versions (TLS 1.3) */
            if (!is_grease(type) && n + 8 < sizeof(ja3s)) {
                w = snprintf(ja3s + n, sizeof(ja3s) - n, "%s%u", first ? "" : "-", type);
                if (w > 0) n += (size_t)w;
                first = false;
            }
            off += 4 + (size_t)l;
        }
        if (off != end) return -1;
    }
    /* JA3S (Salesforce): MD5 of "SSLVersion,Cipher,SSLExtension". */
    pthread_once(&g_md_once, md_fetch_once);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!g_md5 || !EVP_Digest(ja3s, n, md, &mdlen, g_md5, NULL) || mdlen != 16) return 0;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 16; i++) {
        out->ja3s[2 * i] = hex[md[i] >> 4];
        out->ja3s[2 * i + 1] = hex[md[i] & 15];
    }
    out->ja3s[32] = '\0';
    return 0;
}
