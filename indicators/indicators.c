/*
 * indicators/indicators.c — the indicator set: storage of the indicators,
 * normalisation of their values, duplicate detection, validity windows, and
 * the match_*() lookups the workers call.
 *
 * Threads: a set is filled and finalized by one control-plane thread; after
 * kg_indicator_set_finalize() nothing in it changes, and the match functions
 * (which only read, keep no state and never allocate) may run in any number
 * of threads at once.
 *
 * Ownership: the set owns everything reachable from it. Strings live in an
 * arena of large chunks (ten million indicators make a few thousand
 * allocations, not millions), freed at once by kg_indicator_set_free().
 * A table slot holds a 32-bit tag and a reference; a tag match is confirmed
 * against the normalised key in the value record (or, for the digest types
 * and JA4, inline beside the slot), see indicators_int.h. That keeps the set
 * at about 90 bytes plus the value per indicator.
 */
#include "indicators/indicators_int.h"

#include <arpa/inet.h>
#include <endian.h>
#include <limits.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

/* --- the set and its arena -------------------------------------------------------- */

#define KG_IND_CHUNK_SIZE (256u * 1024u)


struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

/* A distinct source name, with its per-type counts (count_by_source). */
struct source {
    const char *name;
    size_t count[KG_IND_TYPE_COUNT];
};

/* A validity window, microseconds since the epoch; 0 = unbounded. */
struct window {
    uint64_t from, until;
};

struct kg_indicator_set {
    struct kg_indicator *inds; /* by id */
    uint32_t n, cap;
    size_t count[KG_IND_TYPE_COUNT];
    uint64_t seed; /* per set, so hash collisions cannot be planned across sets */

    struct kg_ind_v4 v4; /* ADDR and SUBNET */
    struct kg_ind_v6 v6;
    struct kg_ind_htab tabs[KG_IND_TYPE_COUNT]; /* DOMAIN and the exact-value types, by type */
    size_t domain_max_len;                       /* longest DOMAIN key: bounds the suffix walk */
    /* Bit k set: some DOMAIN key has k + 1 labels (bit 63: 64 or more). A
     * lookup probes only the suffixes with a label count listed here: the
     * others cannot match, and each probe costs a random memory read. */
    uint64_t domain_labels;
    unsigned domain_max_labels; /* past this many labels no suffix can match (UINT_MAX: no bound) */
    /* URL indicators listed as a prefix ("host/dir/" and a '*'): their own table,
     * keyed by url_prefix_hash, and a filter of their hosts' hashes, so a
     * request to any other host costs one test of it. */
    struct kg_ind_htab url_prefix;
    struct kg_ind_filter url_prefix_hosts;
    bool has_validity;                           /* some indicator has a bounded window */
    struct window *windows; /* with has_validity: by id, like inds (cap entries) */
    uint32_t *parent; /* with has_validity: next shorter IPv4 prefix of a /0-/24 one */

    struct source *srcs;
    uint32_t nsrcs, srcs_cap;
    struct kg_ind_htab src_tab;
    const char *last_src; /* the last source pointer seen, and its index */
    uint32_t last_src_idx;

    /* Values of the exact-key types, as records [id][length][value NUL] in
     * 256 KiB chunks, addressed by a 32-bit reference (chunk << 16 |
     * offset / 4) that table slots hold instead of the id: a lookup reads
     * the slot, then the record, and never the indicator array. */
    char **vchunks;
    uint32_t nvchunks, vchunks_cap;
    size_t vused; /* bytes used in the last chunk */

    struct arena_chunk *arena;  /* pointer-aligned allocations */
    struct arena_chunk *sarena; /* strings, unaligned */
    struct kg_buf scratch;      /* normalised key under construction (control plane) */
    struct kg_buf rescratch;    /* the same while a table grows */
    bool finalized;
};

static void *arena_alloc(struct arena_chunk **head, size_t n, size_t align)
{
    struct arena_chunk *c = *head;
    size_t used = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (!c || used > c->cap || c->cap - used < n) {
        /* Big requests get a chunk of their own, linked behind the current
         * one so the current chunk's free space stays in use. */
        size_t cap = n > KG_IND_CHUNK_SIZE / 4 ? n : KG_IND_CHUNK_SIZE;
        struct arena_chunk *nc = kg_xmalloc(sizeof(*nc) + cap);
        nc->used = 0;
        nc->cap = cap;
        if (c && cap != KG_IND_CHUNK_SIZE) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            *head = nc;
        }
        c = nc;
        used = 0;
    }
    void *p = c->data + used;
    c->used = used + n;
    return p;
}

static void arena_free(struct arena_chunk *c)
{
    for (struct arena_chunk *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

void *kg_ind_set_alloc(struct kg_indicator_set *s, size_t n)
{
    return arena_alloc(&s->arena, n ? n : 1, alignof(void *));
}

const char *kg_ind_set_strdup(struct kg_indicator_set *s, const char *p, size_t n)
{
    char *d = arena_alloc(&s->sarena, n + 1, 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

#define KG_IND_VCHUNK_SIZE (256u * 1024u)
#define KG_IND_VCHUNK_MAX 65536u
#define KG_IND_VCHUNKS_PER_REGION 8u

/*
 * A value record, what a slot of an exact-key table references. For the
 * types whose key is text (DOMAIN, URL, JA4, SOFTWARE) it holds the
 * normalised key, so a tag match is confirmed with memcmp, and aux is the
 * URL's host length; the listed value is the same bytes when the feed wrote
 * the key already normalised (the usual case), otherwise a separate copy.
 * For the digest types it holds the listed value (the key is in the table).
 */
struct vrec {
    uint32_t id;
    uint16_t len; /* bytes in value, at most KG_IND_VALUE_MAX */
    uint16_t aux; /* URL: host length of the key */
    char value[]; /* NUL-terminated */
};

static inline const struct vrec *rec_at(const struct kg_indicator_set *s, uint32_t ref)
{
    return (const struct vrec *)(s->vchunks[ref >> 16] + (size_t)(ref & 0xffffu) * 4);
}

/* Does the type's record hold the normalised key? */
static inline bool rec_is_key(enum kg_ind_type type)
{
    return type == KG_IND_DOMAIN || type == KG_IND_URL || type == KG_IND_JA4 || type == KG_IND_SOFTWARE;
}

/* Stores a value record; returns its reference, or KG_IND_NONE when 16 GiB
 * of values are used up. len is at most KG_IND_VALUE_MAX (normalise). */
static uint32_t vrec_add(struct kg_indicator_set *s, uint32_t id, const char *v, size_t len, uint16_t aux,
                         const char **stored)
{
    _Static_assert(KG_IND_VALUE_MAX + KG_IND_NAME_MAX < 65536, "record lengths are 16-bit");
    size_t need = (sizeof(struct vrec) + len + 1 + 3) & ~(size_t)3;
    if (!s->nvchunks || KG_IND_VCHUNK_SIZE - s->vused < need) {
        if (s->nvchunks == KG_IND_VCHUNK_MAX) return KG_IND_NONE;
        if (s->nvchunks == s->vchunks_cap) {
            s->vchunks_cap = s->vchunks_cap ? s->vchunks_cap * 2 : 16;
            s->vchunks = kg_xrealloc(s->vchunks, s->vchunks_cap * sizeof(*s->vchunks));
        }
        /* Chunks are carved from 2 MiB regions backed by a transparent huge
         * page where the kernel allows (hits read records at random: see
         * table_alloc in indicators_index.c). Region k holds chunks
         * k*8..k*8+7; only the last region can be partly unused. */
        uint32_t c = s->nvchunks++;
        if (c % KG_IND_VCHUNKS_PER_REGION == 0)
            s->vchunks[c] = kg_ind_table_alloc(KG_IND_VCHUNK_SIZE * KG_IND_VCHUNKS_PER_REGION);
        else
            s->vchunks[c] = s->vchunks[c - 1] + KG_IND_VCHUNK_SIZE;
        s->vused = 0;
    }
    uint32_t ref = (s->nvchunks - 1) << 16 | (uint32_t)(s->vused / 4);
    struct vrec *r = (struct vrec *)(s->vchunks[s->nvchunks - 1] + s->vused);
    r->id = id;
    r->len = (uint16_t)len;
    r->aux = aux;
    memcpy(r->value, v, len);
    r->value[len] = '\0';
    s->vused += need;
    *stored = r->value;
    return ref;
}

/* --- set lifetime ------------------------------------------------------------- */

static uint64_t new_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed)) return seed;
    /* No entropy yet (early boot): a clock is still better than a constant. */
    return kg_monotonic_ns() * 0x9e3779b97f4a7c15ull;
}

struct kg_indicator_set *kg_indicator_set_new(void)
{
    struct kg_indicator_set *s = kg_xcalloc(1, sizeof(*s));
    s->seed = new_seed();
    /* The digest types keep [id][key] inline in their tables (see struct
     * kg_ind_htab): a lookup then reads no value record. */
    s->tabs[KG_IND_JA3].key_stride = 1 + 4 + 16;
    s->tabs[KG_IND_CERT_HASH].key_stride = 1 + 4 + 32;
    s->tabs[KG_IND_FILE_HASH].key_stride = 1 + 4 + 32;
    s->tabs[KG_IND_JA4].key_stride = 1 + 4 + 36;
    kg_buf_init(&s->scratch);
    kg_buf_init(&s->rescratch);
    return s;
}

void kg_indicator_set_free(struct kg_indicator_set *s)
{
    if (!s) return;
    kg_ind_v4_free(&s->v4);
    kg_ind_v6_free(&s->v6);
    for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
        kg_ind_htab_free(&s->tabs[t]);
    kg_ind_htab_free(&s->url_prefix);
    kg_ind_filter_free(&s->url_prefix_hosts);
    kg_ind_htab_free(&s->src_tab);
    arena_free(s->arena);
    arena_free(s->sarena);
    for (uint32_t i = 0; i < s->nvchunks; i += KG_IND_VCHUNKS_PER_REGION)
        free(s->vchunks[i]);
    free(s->vchunks);
    kg_buf_free(&s->scratch);
    kg_buf_free(&s->rescratch);
    free(s->parent);
    free(s->srcs);
    free(s->inds);
    free(s->windows);
    free(s);
}

static void build_filters(struct kg_indicator_set *s);

void kg_indicator_set_finalize(struct kg_indicator_set *s)
{
    if (!s || s->finalized) return;
    /* Give back the growth slack; no pointer to an indicator has been handed
     * out yet (matching starts after finalize), so moving them is safe. */
    if (s->n && s->n < s->cap) {
        s->inds = kg_xrealloc(s->inds, s->n * sizeof(*s->inds));
        if (s->windows) s->windows = kg_xrealloc(s->windows, s->n * sizeof(*s->windows));
        s->cap = s->n;
    }
    if (s->has_validity && s->n) {
        s->parent = kg_xmalloc(s->n * sizeof(*s->parent));
        memset(s->parent, 0xff, s->n * sizeof(*s->parent));
    }
    kg_ind_v4_build(&s->v4, s->parent);
    build_filters(s);
    kg_ind_htab_free(&s->src_tab);
    kg_buf_free(&s->scratch);
    kg_buf_free(&s->rescratch);
    s->finalized = true;
}

bool kg_ind_set_is_final(const struct kg_indicator_set *s)
{
    return s->finalized;
}

const char *kg_ind_type_name(enum kg_ind_type t)
{
    switch (t) {
    case KG_IND_ADDR:
        return "ADDR";
    case KG_IND_SUBNET:
        return "SUBNET";
    case KG_IND_DOMAIN:
        return "DOMAIN";
    case KG_IND_URL:
        return "URL";
    case KG_IND_CERT_HASH:
        return "CERT_HASH";
    case KG_IND_JA3:
        return "JA3";
    case KG_IND_JA4:
        return "JA4";
    case KG_IND_FILE_HASH:
        return "FILE_HASH";
    case KG_IND_SOFTWARE:
        return "SOFTWARE";
    default:
        return "UNKNOWN";
    }
}

size_t kg_indicator_set_count(const struct kg_indicator_set *s, enum kg_ind_type type)
{
    if (!s || (unsigned)type >= KG_IND_TYPE_COUNT) return 0;
    return s->count[type];
}

size_t kg_indicator_set_total(const struct kg_indicator_set *s)
{
    return s ? s->n : 0;
}

void kg_indicator_set_count_by_source(const struct kg_indicator_set *s,
                                      void (*cb)(void *user, const char *source, enum kg_ind_type type,
                                                 size_t count),
                                      void *user)
{
    if (!s || !cb) return;
    for (uint32_t i = 0; i < s->nsrcs; i++)
        for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
            if (s->srcs[i].count[t]) cb(user, s->srcs[i].name, (enum kg_ind_type)t, s->srcs[i].count[t]);
}

static inline bool window_has(const struct window *w, uint64_t now)
{
    return (w->from == 0 || now >= w->from) && (w->until == 0 || now < w->until);
}

size_t kg_indicator_set_count_invalid(const struct kg_indicator_set *s, uint64_t now_us)
{
    size_t k = 0;
    for (uint32_t i = 0; s && s->has_validity && i < s->n; i++)
        k += !window_has(&s->windows[i], now_us);
    return k;
}

void kg_indicator_validity(const struct kg_indicator_set *s, const struct kg_indicator *ind, uint64_t *from_us,
                           uint64_t *until_us)
{
    const struct window *w = s && ind && s->windows && ind->id < s->n ? &s->windows[ind->id] : NULL;
    if (from_us) *from_us = w ? w->from : 0;
    if (until_us) *until_us = w ? w->until : 0;
}

/* The hot-path check: one well-predicted branch when no indicator of the
 * set has a window (the usual case for Zeek feeds). */
static inline bool valid_at(const struct kg_indicator_set *s, uint32_t id, uint64_t now)
{
    return !now || !s->has_validity || window_has(&s->windows[id], now);
}

/* --- value helpers ---------------------------------------------------------------- */

static inline char lower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Hex digit value + 1, 0 for anything else: a table, because match_hash()
 * decodes 32-64 digits per TLS handshake. */
#define HEXV(c, v) [c] = (v) + 1
static const uint8_t hex_plus1[256] = {
    HEXV('0', 0),  HEXV('1', 1),  HEXV('2', 2),  HEXV('3', 3),  HEXV('4', 4),  HEXV('5', 5),
    HEXV('6', 6),  HEXV('7', 7),  HEXV('8', 8),  HEXV('9', 9),  HEXV('a', 10), HEXV('b', 11),
    HEXV('c', 12), HEXV('d', 13), HEXV('e', 14), HEXV('f', 15), HEXV('A', 10), HEXV('B', 11),
    HEXV('C', 12), HEXV('D', 13), HEXV('E', 14), HEXV('F', 15),
};
#undef HEXV

int kg_ind_hexval(char c)
{
    return (int)hex_plus1[(unsigned char)c] - 1;
}

/* Decodes exactly 2*n hex digits (either case) into n bytes; false if any is
 * not a hex digit. */
static bool hex_decode(uint8_t *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = kg_ind_hexval(hex[2 * i]), lo = kg_ind_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Decodes "aabbcc..." or, when colons are allowed, "AA:BB:CC:..." (how
 * certificate fingerprints are often printed) into at most 32 bytes.
 * Returns the digest length, 0 when the text is neither. */
static size_t digest_decode(uint8_t *out, const char *p, size_t n, bool colons)
{
    if (colons && n > 2 && p[2] == ':') {
        if ((n + 1) % 3 || (n + 1) / 3 > 32) return 0;
        size_t d = (n + 1) / 3;
        for (size_t i = 0; i < d; i++) {
            if (i + 1 < d && p[3 * i + 2] != ':') return 0;
            int hi = kg_ind_hexval(p[3 * i]), lo = kg_ind_hexval(p[3 * i + 1]);
            if (hi < 0 || lo < 0) return 0;
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        return d;
    }
    if (n % 2 || n / 2 > 32 || n == 0) return 0;
    return hex_decode(out, p, n / 2) ? n / 2 : 0;
}

static bool has_prefix_nocase(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    if (n < k) return false;
    for (size_t i = 0; i < k; i++)
        if (lower_ascii(p[i]) != prefix[i]) return false;
    return true;
}

/* RFC 3986 3.1 scheme characters (ASCII; no locale, unlike isalnum). */
static bool is_scheme_char(char c)
{
    c = lower_ascii(c);
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* Length of "http://" or "https://" at the start of p (any case), else 0. */
static size_t http_scheme_len(const char *p, size_t n)
{
    if (has_prefix_nocase(p, n, "http://")) return 7;
    if (has_prefix_nocase(p, n, "https://")) return 8;
    return 0;
}

/* Host with a default ":80" port dropped (the Host header omits it, RFC 9110 7.2). */
static size_t host_drop_default_port(const char *host, size_t n)
{
    if (n > 3 && memcmp(host + n - 3, ":80", 3) == 0) return n - 3;
    return n;
}

/* A URL value cut into host (":80" dropped, case kept) and path; `slash`
 * says the path lacks the leading "/" the normalised form has ("evil.com"
 * is "evil.com/", "evil.com?q" is "evil.com/?q"). */
struct url_parts {
    const char *host, *path;
    size_t host_len, path_len;
    bool slash;
};

static void url_split(const char *v, size_t n, struct url_parts *u)
{
    size_t skip = http_scheme_len(v, n);
    v += skip;
    n -= skip;
    size_t hl = 0;
    while (hl < n && v[hl] != '/' && v[hl] != '?')
        hl++;
    u->host = v;
    u->path = v + hl;
    u->path_len = n - hl;
    u->host_len = host_drop_default_port(v, hl);
    u->slash = u->path_len == 0 || u->path[0] == '?';
}

bool kg_ind_is_ja4(const char *p, size_t n)
{
    /* FoxIO JA4: JA4_a "t13d1516h2" = protocol (t TCP, q QUIC, d DTLS),
     * version (2 chars), SNI (d domain / i IP), cipher and extension counts
     * (2 digits each), first and last ALPN characters; then two 12-digit
     * truncated SHA256 hashes: "_8daaf6152771_e5627efa2ab1". */
    if (n != 36 || p[10] != '_' || p[23] != '_') return false;
    char c0 = lower_ascii(p[0]);
    if (c0 != 't' && c0 != 'q' && c0 != 'd') return false;
    for (int i = 1; i < 3; i++) {
        char c = lower_ascii(p[i]);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
    }
    char sni = lower_ascii(p[3]);
    if (sni != 'd' && sni != 'i') return false;
    for (int i = 4; i < 8; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    for (int i = 8; i < 10; i++) {
        char c = lower_ascii(p[i]);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
    }
    for (int i = 11; i < 36; i++)
        if (i != 23 && kg_ind_hexval(p[i]) < 0) return false;
    return true;
}

/* --- normalisation -------------------------------------------------------------- */

/* A normalised value, ready for the duplicate check and insertion. */
struct norm {
    const uint8_t *key; /* into digest[] or a kg_buf; string types */
    size_t key_len;
    size_t host_len; /* URL: the host part of key */
    bool prefix;     /* URL: listed with a trailing '*' (a prefix) */
    uint8_t digest[32];
    uint8_t family; /* ADDR/SUBNET: 4 or 6 */
    uint8_t plen;   /* ADDR/SUBNET: prefix length */
    uint32_t v4;    /* masked, host order */
    uint64_t hi, lo; /* IPv6, masked, host order */
};

/* Parses an IPv4 or IPv6 address (inet_pton's strict syntax: no leading
 * zeros in IPv4, no IPv6 zone). */
static bool parse_ip(const char *p, size_t n, uint8_t *out, uint8_t *family)
{
    char buf[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(buf)) return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (memchr(p, ':', n)) {
        *family = 6;
        return inet_pton(AF_INET6, buf, out) == 1;
    }
    *family = 4;
    return inet_pton(AF_INET, buf, out) == 1;
}

static int norm_addr(const char *v, size_t n, bool subnet, struct norm *out, struct kg_err *err)
{
    size_t alen_chars = n;
    unsigned plen = 0;
    const char *slash = memchr(v, '/', n);
    if (subnet) {
        if (!slash) return kg_err_set(err, KG_ERR_PARSE, "invalid CIDR (no /prefix length)");
        alen_chars = (size_t)(slash - v);
        const char *d = slash + 1, *end = v + n;
        if (d == end || end - d > 3) return kg_err_set(err, KG_ERR_PARSE, "invalid CIDR prefix length");
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') return kg_err_set(err, KG_ERR_PARSE, "invalid CIDR prefix length");
            plen = plen * 10 + (unsigned)(*d - '0');
        }
    } else if (slash) {
        return kg_err_set(err, KG_ERR_PARSE, "invalid address (a prefix length belongs in Intel::SUBNET)");
    }
    uint8_t raw[16];
    if (!parse_ip(v, alen_chars, raw, &out->family))
        return kg_err_set(err, KG_ERR_PARSE, "invalid IP address");
    unsigned bits = out->family == 4 ? 32 : 128;
    if (!subnet) plen = bits;
    if (plen > bits) return kg_err_set(err, KG_ERR_PARSE, "CIDR prefix length %u exceeds %u", plen, bits);
    /* Host bits are masked, not rejected: "10.1.2.3/8" is how many feeds
     * write 10.0.0.0/8. The value stays as listed. */
    out->plen = (uint8_t)plen;
    if (out->family == 4) {
        uint32_t a;
        memcpy(&a, raw, 4);
        out->v4 = kg_ind_v4_mask(be32toh(a), plen);
    } else {
        kg_ind_v6_load(raw, plen, &out->hi, &out->lo);
    }
    return 0;
}

/* Writes the normalised form of a domain to buf (lower case, no "*." and no
 * trailing dot). */
static int norm_domain(struct kg_buf *buf, const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    /* "*.evil.com" means evil.com and its subdomains, which is what a
     * DOMAIN indicator matches anyway. */
    if (n >= 2 && v[0] == '*' && v[1] == '.') {
        v += 2;
        n -= 2;
    }
    if (n > 0 && v[n - 1] == '.') n--;
    if (n == 0) return kg_err_set(err, KG_ERR_PARSE, "empty domain");
    if (n > KG_IND_DOMAIN_MAX)
        return kg_err_set(err, KG_ERR_PARSE, "domain longer than %d bytes", KG_IND_DOMAIN_MAX);
    /* The key goes 8 bytes into buf: the duplicate check compares it with
     * key_eq, whose word compare (eq32) may read those bytes. */
    kg_buf_reset(buf);
    kg_buf_reserve(buf, 8 + n);
    memset(buf->data, 0, 8);
    char *key = buf->data + 8;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '.') {
            if (label == 0) return kg_err_set(err, KG_ERR_PARSE, "empty label in domain");
            label = 0;
        } else if (c <= 0x20 || c == 0x7f || strchr("/\\:*@?#", c)) {
            /* Catches URLs, host:port and wildcards in the wrong place, which
             * would otherwise load and never match. */
            return kg_err_set(err, KG_ERR_PARSE, "invalid character 0x%02x in domain", c);
        } else if (++label > KG_IND_LABEL_MAX) {
            return kg_err_set(err, KG_ERR_PARSE, "domain label longer than %d bytes", KG_IND_LABEL_MAX);
        }
        key[i] = lower_ascii((char)c);
    }
    if (label == 0) return kg_err_set(err, KG_ERR_PARSE, "empty label in domain");
    buf->len = 8 + n;
    out->key = (const uint8_t *)key;
    out->key_len = n;
    return 0;
}

/* RFC 3986 2.3: the characters a URI may carry percent-encoded or not, with
 * the same meaning. */
static inline bool url_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * Percent-encoding normalisation of a request target (RFC 3986 6.2.2.1 and
 * 6.2.2.2): an escape of an unreserved character is decoded ("%7Euser" ->
 * "~user"), every other escape gets upper-case hex digits ("%2f" -> "%2F",
 * still a literal slash, not a separator); a '%' not followed by two hex
 * digits is kept as it is. Writes at most cap bytes of in[0..n) normalised
 * to out; returns how many it wrote, and in *whole whether that is all of
 * it. The output is never longer than the input.
 */
static size_t url_pct_normalise(char *out, size_t cap, const char *in, size_t n, bool *whole)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0, i = 0;
    while (i < n && o < cap) {
        int hi, lo;
        if (in[i] != '%' || i + 2 >= n || (hi = kg_ind_hexval(in[i + 1])) < 0 ||
            (lo = kg_ind_hexval(in[i + 2])) < 0) {
            out[o++] = in[i++];
            continue;
        }
        unsigned char c = (unsigned char)(hi << 4 | lo);
        if (url_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            if (cap - o < 3) break;
            out[o++] = '%';
            out[o++] = hexd[hi];
            out[o++] = hexd[lo];
        }
        i += 3;
    }
    *whole = i == n;
    return o;
}

static int norm_url(struct kg_buf *buf, const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    if (n > KG_IND_VALUE_MAX) return kg_err_set(err, KG_ERR_PARSE, "URL longer than %d bytes", KG_IND_VALUE_MAX);
    /* A trailing '*' makes a prefix (docs/INDICATORS.md, "Matching"). */
    if (n > 0 && v[n - 1] == '*') {
        out->prefix = true;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c == 0x7f)
            return kg_err_set(err, KG_ERR_PARSE, "invalid character 0x%02x in URL", c);
    }
    if (!http_scheme_len(v, n)) {
        /* Another scheme (RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" /
         * "." ) ":") followed by "//" would load as a host named "ftp:" and
         * never match. A "://" later on, in a query, is fine. */
        size_t i = 0;
        while (i < n && is_scheme_char(v[i]))
            i++;
        if (i > 0 && n - i >= 3 && memcmp(v + i, "://", 3) == 0)
            return kg_err_set(err, KG_ERR_PARSE, "unsupported URL scheme (only http:// and https://)");
    }
    struct url_parts u;
    url_split(v, n, &u);
    if (u.host_len == 0) return kg_err_set(err, KG_ERR_PARSE, "URL without a host");
    if (u.host_len > KG_IND_NAME_MAX) return kg_err_set(err, KG_ERR_PARSE, "URL host too long");
    kg_buf_reset(buf);
    for (size_t i = 0; i < u.host_len; i++)
        kg_buf_append_char(buf, lower_ascii(u.host[i]));
    if (u.slash) kg_buf_append_char(buf, '/');
    /* The target, percent-encoding normalised; 8 zero bytes after the key
     * (not part of it) for url_prefix_hash's word loads. */
    kg_buf_reserve(buf, u.path_len + 8);
    bool whole;
    buf->len += url_pct_normalise(buf->data + buf->len, u.path_len, u.path, u.path_len, &whole);
    memset(buf->data + buf->len, 0, 8);
    out->key = (const uint8_t *)buf->data;
    out->key_len = buf->len;
    out->host_len = u.host_len;
    return 0;
}

static int norm_digest(enum kg_ind_type type, const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    size_t d = digest_decode(out->digest, v, n, type == KG_IND_CERT_HASH);
    bool ok;
    switch (type) {
    case KG_IND_CERT_HASH:
        ok = d == 20 || d == 32;
        if (!ok && (d || (n != 40 && n != 64)))
            return kg_err_set(err, KG_ERR_PARSE,
                              "hash must be 40 or 64 hex digits (SHA1, SHA256), got %zu characters", n);
        break;
    case KG_IND_JA3:
        if (n != 32) return kg_err_set(err, KG_ERR_PARSE, "hash must be 32 hex digits, got %zu characters", n);
        ok = d == 16;
        break;
    default: /* FILE_HASH */
        if (n != 32 && n != 40 && n != 64)
            return kg_err_set(err, KG_ERR_PARSE,
                              "hash must be 32, 40 or 64 hex digits (MD5, SHA1, SHA256), got %zu characters", n);
        ok = d == n / 2;
        break;
    }
    if (!ok) return kg_err_set(err, KG_ERR_PARSE, "hash contains a non-hex character");
    out->key = out->digest;
    out->key_len = d;
    return 0;
}

static int norm_ja4(struct kg_buf *buf, const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    if (!kg_ind_is_ja4(v, n))
        return kg_err_set(err, KG_ERR_PARSE, "not a JA4 fingerprint (like t13d1516h2_8daaf6152771_e5627efa2ab1)");
    kg_buf_reset(buf);
    for (size_t i = 0; i < n; i++)
        kg_buf_append_char(buf, lower_ascii(v[i]));
    out->key = (const uint8_t *)buf->data;
    out->key_len = n;
    return 0;
}

static int norm_software(const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    if (n == 0) return kg_err_set(err, KG_ERR_PARSE, "empty User-Agent");
    if (n > KG_IND_VALUE_MAX)
        return kg_err_set(err, KG_ERR_PARSE, "User-Agent longer than %d bytes", KG_IND_VALUE_MAX);
    if (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t')
        return kg_err_set(err, KG_ERR_PARSE, "User-Agent with blanks around it");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        /* RFC 9110 5.5: a field value has no control characters but HTAB. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return kg_err_set(err, KG_ERR_PARSE, "invalid character 0x%02x in User-Agent", c);
    }
    out->key = (const uint8_t *)v;
    out->key_len = n;
    return 0;
}

static int normalise(struct kg_buf *buf, enum kg_ind_type type, const char *v, size_t n, struct norm *out,
                     struct kg_err *err)
{
    memset(out, 0, sizeof(*out));
    if (memchr(v, '\0', n)) return kg_err_set(err, KG_ERR_PARSE, "NUL byte in value");
    switch (type) {
    case KG_IND_ADDR:
        return norm_addr(v, n, false, out, err);
    case KG_IND_SUBNET:
        return norm_addr(v, n, true, out, err);
    case KG_IND_DOMAIN:
        return norm_domain(buf, v, n, out, err);
    case KG_IND_URL:
        return norm_url(buf, v, n, out, err);
    case KG_IND_CERT_HASH:
    case KG_IND_JA3:
    case KG_IND_FILE_HASH:
        return norm_digest(type, v, n, out, err);
    case KG_IND_JA4:
        return norm_ja4(buf, v, n, out, err);
    case KG_IND_SOFTWARE:
        return norm_software(v, n, out, err);
    default:
        return kg_err_set(err, KG_ERR_INVAL, "unknown indicator type %d", (int)type);
    }
}

/* --- exact-key tables: hashing and confirming a tag match ---------------------------- */

static uint64_t url_hash(uint64_t seed, const char *host, size_t host_len, const char *path, size_t path_len)
{
    return kg_ind_hash(path, path_len, kg_ind_hash(host, host_len, seed));
}

/*
 * Prefix URLs are hashed so that all the prefixes of one request target
 * share the work: the target's 8-byte words from its start are chained onto
 * the hash of the host (the exact table's first piece),
 *
 *   H(0) = kg_ind_hash(host, seed), H(j + 1) = round(H(j), word j)
 *
 * and the prefix of length L = 8j + r hashes as final(round(H(j) ^ L * P1,
 * the first r bytes of word j, zeros above)). Word loads may read up to 7
 * bytes past a prefix: callers keep 8 readable bytes after the target.
 */
static inline uint64_t url_word(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return le64toh(w);
}

static inline uint64_t url_prefix_final(uint64_t hj, size_t len, uint64_t word)
{
    size_t r = len % 8;
    uint64_t w = r ? word & (~0ull >> (8 * (8 - r))) : 0;
    return kg_ind_hash_final(kg_ind_round64(hj ^ ((uint64_t)len * KG_IND_P1), w));
}

static uint64_t url_prefix_hash(uint64_t host_hash, const char *path, size_t len)
{
    uint64_t h = host_hash;
    size_t j = 0;
    for (; j < len / 8; j++)
        h = kg_ind_round64(h, url_word(path + 8 * j));
    return url_prefix_final(h, len, len % 8 ? url_word(path + 8 * j) : 0);
}

/* Hash of a normalised key in its type's table (a prefix URL: in url_prefix). */
static uint64_t key_hash(const struct kg_indicator_set *s, enum kg_ind_type type, const struct norm *nv)
{
    switch (type) {
    case KG_IND_DOMAIN:
        return kg_ind_domain_hash((const char *)nv->key, nv->key_len, s->seed);
    case KG_IND_URL:
        if (nv->prefix)
            return url_prefix_hash(kg_ind_hash(nv->key, nv->host_len, s->seed),
                                   (const char *)nv->key + nv->host_len, nv->key_len - nv->host_len);
        return url_hash(s->seed, (const char *)nv->key, nv->host_len, (const char *)nv->key + nv->host_len,
                        nv->key_len - nv->host_len);
    default:
        return kg_ind_hash(nv->key, nv->key_len, s->seed + (uint64_t)type);
    }
}

/* Is the record's key (a, an) — for a URL the host a and the path b? Runs
 * on a tag match only, i.e. on hits. */
/* memcmp(p, q, n) == 0, inline for the short keys lookups compare (a libc
 * call costs more than the comparison). */
static inline bool bytes_eq(const char *p, const char *q, size_t n)
{
    if (n > 64) return memcmp(p, q, n) == 0;
    uint64_t x, y, diff = 0;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            diff |= (uint64_t)((uint8_t)p[i] ^ (uint8_t)q[i]);
        return diff == 0;
    }
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&x, p + i, 8);
        memcpy(&y, q + i, 8);
        diff |= x ^ y;
    }
    /* The last 8 bytes (again, in part): no loop over n % 8 bytes. */
    memcpy(&x, p + n - 8, 8);
    memcpy(&y, q + n - 8, 8);
    return (diff | (x ^ y)) == 0;
}

/* p[0..n) == q[0..n) for 1 <= n <= 32, with no branch on the data: four
 * 8-byte words at offsets min(8i, n - 8), so p is read only inside
 * [p + n - 8, p + n) and its first n bytes (a record's key: its header
 * before it, never the cache line after it); q (a lookup's buffer) must
 * have 8 readable bytes before it. A byte loop here mispredicts on every
 * lookup whose length differs from the last one's. */
static inline bool eq32(const char *p, const char *q, size_t n)
{
    uint64_t diff = 0;
    const ptrdiff_t last = (ptrdiff_t)n - 8;
    /* Keys shorter than 8 bytes: one word ending at the key, the bytes
     * before it (header) masked off. */
    const uint64_t mask = last < 0 ? ~0ull << (8 * (size_t)-last) : ~0ull;
    for (ptrdiff_t i = 0; i < 32; i += 8) {
        ptrdiff_t o = i < last ? i : last;
        uint64_t x, y;
        memcpy(&x, p + o, 8);
        memcpy(&y, q + o, 8);
        diff |= le64toh(x ^ y);
    }
    return (diff & mask) == 0;
}

static inline bool key_eq(const struct vrec *r, enum kg_ind_type type, const char *a, size_t an, const char *b,
                          size_t bn)
{
    if (type == KG_IND_DOMAIN && an - 1 < 32) return r->len == an && eq32(r->value, a, an);
    if (r->len != an + bn || !bytes_eq(r->value, a, an)) return false;
    if (type == KG_IND_URL) return r->aux == an && bytes_eq(r->value + an, b, bn);
    return true;
}

/* Probe of a table with inline keys (the digest types): the exact
 * comparison, and the id, without reading the value record. */
static inline uint32_t find_inline_key(const struct kg_ind_htab *t, uint64_t h, const char *a, size_t an)
{
    uint32_t pos = kg_ind_htab_start(t, h), ref;
    while ((ref = kg_ind_htab_next(t, kg_ind_tag(h), &pos)) != KG_IND_NONE) {
        const uint8_t *k = kg_ind_htab_key(t, (pos - 1) & t->mask);
        if (k[0] == an + 4 && memcmp(k + 5, a, an) == 0) {
            uint32_t id;
            memcpy(&id, k + 1, 4);
            return id;
        }
    }
    return KG_IND_NONE;
}

/* Probe of table t, whose records hold the key (DOMAIN, URL, JA4, SOFTWARE;
 * the URL prefixes). */
static inline uint32_t find_rec_key_in(const struct kg_indicator_set *s, const struct kg_ind_htab *t,
                                       enum kg_ind_type type, uint64_t h, const char *a, size_t an,
                                       const char *b, size_t bn)
{
    uint32_t pos = kg_ind_htab_start(t, h), ref;
    while ((ref = kg_ind_htab_next(t, kg_ind_tag(h), &pos)) != KG_IND_NONE) {
        const struct vrec *r = rec_at(s, ref);
        if (key_eq(r, type, a, an, b, bn)) return r->id;
    }
    return KG_IND_NONE;
}

static inline uint32_t find_rec_key(const struct kg_indicator_set *s, enum kg_ind_type type, uint64_t h,
                                    const char *a, size_t an, const char *b, size_t bn)
{
    return find_rec_key_in(s, &s->tabs[type], type, h, a, an, b, bn);
}

static uint32_t find_key(const struct kg_indicator_set *s, enum kg_ind_type type, uint64_t h, const char *a,
                         size_t an, const char *b, size_t bn)
{
    const struct kg_ind_htab *t = &s->tabs[type];
    if (t->keys) return find_inline_key(t, h, a, an);
    return find_rec_key(s, type, h, a, an, b, bn);
}

/* find_key for a normalised value (duplicate detection). */
static uint32_t find_key_norm(const struct kg_indicator_set *s, enum kg_ind_type type, const struct norm *nv)
{
    const char *k = (const char *)nv->key;
    if (type == KG_IND_URL)
        return find_rec_key_in(s, nv->prefix ? &s->url_prefix : &s->tabs[type], type, key_hash(s, type, nv),
                               k, nv->host_len, k + nv->host_len, nv->key_len - nv->host_len);
    return find_key(s, type, key_hash(s, type, nv), k, nv->key_len, NULL, 0);
}

/* Growing a table: the hash of an entry, from its listed value. */
struct rehash_ctx {
    struct kg_indicator_set *s;
    enum kg_ind_type type;
    bool prefix; /* the url_prefix table */
};

static uint64_t rehash_indicator(const void *ctx, uint32_t tag, uint32_t ref)
{
    (void)tag;
    const struct rehash_ctx *c = ctx;
    const struct vrec *r = rec_at(c->s, ref);
    struct norm nv;
    if (c->prefix) {
        /* Into rescratch, for the 8 bytes url_prefix_hash may read after it. */
        struct kg_buf *b = &c->s->rescratch;
        kg_buf_reset(b);
        kg_buf_reserve(b, r->len + 8u);
        memcpy(b->data, r->value, r->len);
        memset(b->data + r->len, 0, 8);
        memset(&nv, 0, sizeof(nv));
        nv.key = (const uint8_t *)b->data;
        nv.key_len = r->len;
        nv.host_len = r->aux;
        nv.prefix = true;
    } else if (rec_is_key(c->type)) {
        memset(&nv, 0, sizeof(nv));
        nv.key = (const uint8_t *)r->value;
        nv.key_len = r->len;
        nv.host_len = r->aux;
    } else if (normalise(&c->s->rescratch, c->type, r->value, r->len, &nv, NULL) < 0) {
        abort(); /* it was accepted */
    }
    return key_hash(c->s, c->type, &nv);
}

/* The lookup filters of the tables (indicators_int.h), once they are complete. */
static void build_filters(struct kg_indicator_set *s)
{
    kg_ind_v4_build_filters(&s->v4, s->seed);
    kg_ind_v6_build_filters(&s->v6, s->seed);
    for (unsigned type = 0; type < KG_IND_TYPE_COUNT; type++) {
        if (type == KG_IND_ADDR || type == KG_IND_SUBNET) continue;
        struct rehash_ctx rctx = {s, (enum kg_ind_type)type, false};
        kg_ind_htab_build_filter(&s->tabs[type], rehash_indicator, &rctx);
    }
    struct rehash_ctx pctx = {s, KG_IND_URL, true};
    kg_ind_htab_build_filter(&s->url_prefix, rehash_indicator, &pctx);
    /* The hosts' filter, even for a handful of prefixes (a few KiB): without
     * it every URL lookup would probe the prefixes of its target. */
    struct kg_ind_htab *t = &s->url_prefix;
    if (t->count) kg_ind_filter_init(&s->url_prefix_hosts, KG_MAX(t->count, KG_IND_FILTER_MIN));
    for (size_t i = 0; t->count && i <= t->mask; i++) {
        if (t->slots[i].id == KG_IND_NONE) continue;
        const struct vrec *r = rec_at(s, t->slots[i].id);
        kg_ind_filter_add(&s->url_prefix_hosts, kg_ind_hash(r->value, r->aux, s->seed));
    }
}

/* The indicator with the same type class and normalised key, or KG_IND_NONE.
 * ADDR and SUBNET share the address index: "1.2.3.4" and "1.2.3.4/32" are
 * the same indicator. */
static uint32_t find_existing(const struct kg_indicator_set *s, enum kg_ind_type type, const struct norm *nv)
{
    switch (type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        if (nv->family == 4) return kg_ind_v4_find(&s->v4, nv->v4, nv->plen, s->seed);
        return kg_ind_v6_find(&s->v6, nv->hi, nv->lo, nv->plen, s->seed);
    default:
        return find_key_norm(s, type, nv);
    }
}

/* --- sources ------------------------------------------------------------------------ */

static uint64_t source_hash(const struct kg_indicator_set *s, const char *name)
{
    return kg_ind_hash(name, strlen(name), s->seed);
}

static uint64_t rehash_source(const void *ctx, uint32_t tag, uint32_t id)
{
    (void)tag;
    const struct kg_indicator_set *s = ctx;
    return source_hash(s, s->srcs[id].name);
}

/* Index of the source called `name` (set-owned), added if new. Feeds repeat
 * one source on every line, so the last pointer seen answers most calls. */
static uint32_t source_index(struct kg_indicator_set *s, const char *name)
{
    if (name == s->last_src && s->nsrcs) return s->last_src_idx;
    uint64_t h = source_hash(s, name);
    uint32_t pos = kg_ind_htab_start(&s->src_tab, h), id;
    while ((id = kg_ind_htab_next(&s->src_tab, kg_ind_tag(h), &pos)) != KG_IND_NONE)
        if (strcmp(s->srcs[id].name, name) == 0) break;
    if (id == KG_IND_NONE) {
        if (s->nsrcs == s->srcs_cap) {
            s->srcs_cap = s->srcs_cap ? s->srcs_cap * 2 : 8;
            s->srcs = kg_xrealloc(s->srcs, s->srcs_cap * sizeof(*s->srcs));
        }
        id = s->nsrcs++;
        memset(&s->srcs[id], 0, sizeof(s->srcs[id]));
        s->srcs[id].name = name;
        kg_ind_htab_insert(&s->src_tab, h, kg_ind_tag(h), id, rehash_source, s, NULL, 0);
    }
    s->last_src = name;
    s->last_src_idx = id;
    return id;
}

/* --- insertion ----------------------------------------------------------------------- */

/* Labels of a normalised DOMAIN key (never has an escaped dot: norm_domain
 * refuses backslashes), counted as lk_domain() counts a suffix's. */
static size_t domain_label_count(const uint8_t *key, size_t n)
{
    size_t labels = 1;
    for (size_t i = 0; i < n; i++)
        labels += key[i] == '.';
    return labels;
}

int kg_ind_set_insert(struct kg_indicator_set *s, const struct kg_ind_input *in,
                      const struct kg_indicator **dup, struct kg_err *err)
{
    if (s->finalized) return kg_err_set(err, KG_ERR_INVAL, "indicator set is finalized");
    if ((unsigned)in->type >= KG_IND_TYPE_COUNT)
        return kg_err_set(err, KG_ERR_INVAL, "unknown indicator type %d", (int)in->type);
    if (in->valid_from_us && in->valid_until_us && in->valid_until_us <= in->valid_from_us)
        return kg_err_set(err, KG_ERR_PARSE, "validity window is empty (valid_until is not after valid_from)");
    struct norm nv;
    int rc = normalise(&s->scratch, in->type, in->value, in->value_len, &nv, err);
    if (rc < 0) return rc;
    uint32_t old = find_existing(s, in->type, &nv);
    if (old != KG_IND_NONE) {
        if (dup) *dup = &s->inds[old];
        return 1;
    }
    if (s->n >= KG_IND_MAX_COUNT) return kg_err_set(err, KG_ERR_FULL, "too many indicators");

    if (s->n == s->cap) {
        /* Doubling; a large array is grown by mremap inside realloc, so the
         * copy (and a transient second array) is avoided. */
        size_t ncap = s->cap ? (size_t)s->cap * 2 : 256;
        if (ncap > KG_IND_MAX_COUNT) ncap = KG_IND_MAX_COUNT;
        s->inds = kg_xrealloc(s->inds, ncap * sizeof(*s->inds));
        if (s->windows) {
            s->windows = kg_xrealloc(s->windows, ncap * sizeof(*s->windows));
            memset(s->windows + s->cap, 0, (ncap - s->cap) * sizeof(*s->windows));
        }
        s->cap = (uint32_t)ncap;
    }
    uint32_t id = s->n;
    struct kg_indicator *ind = &s->inds[id];
    memset(ind, 0, sizeof(*ind));
    ind->type = in->type;
    ind->id = id;
    uint32_t ref = KG_IND_NONE;
    if (in->type == KG_IND_ADDR || in->type == KG_IND_SUBNET) {
        ind->value = kg_ind_set_strdup(s, in->value, in->value_len);
    } else {
        if (rec_is_key(in->type)) {
            const char *key;
            ref = vrec_add(s, id, (const char *)nv.key, nv.key_len, (uint16_t)nv.host_len, &key);
            if (ref != KG_IND_NONE) {
                bool same = nv.key_len == in->value_len && memcmp(key, in->value, nv.key_len) == 0;
                ind->value = same ? key : kg_ind_set_strdup(s, in->value, in->value_len);
            }
        } else {
            ref = vrec_add(s, id, in->value, in->value_len, 0, &ind->value);
        }
        if (ref == KG_IND_NONE) return kg_err_set(err, KG_ERR_FULL, "too many indicator values (16 GiB)");
    }
    uint32_t src = source_index(s, in->source ? in->source : "");
    ind->source = s->srcs[src].name;
    ind->feed_id = in->feed_id ? in->feed_id : "";
    ind->desc = in->desc ? in->desc : "";
    ind->file = in->file ? in->file : "";
    ind->line = in->line;
    ind->severity = (int8_t)(in->severity >= 1 && in->severity <= 3 ? in->severity : 0);
    if (in->valid_from_us || in->valid_until_us) {
        if (!s->windows) s->windows = kg_xcalloc(s->cap, sizeof(*s->windows));
        s->windows[id] = (struct window){in->valid_from_us, in->valid_until_us};
        s->has_validity = true;
    } else if (s->windows) {
        s->windows[id] = (struct window){0, 0};
    }
    uint32_t nmeta = in->nmeta > UINT16_MAX ? UINT16_MAX : in->nmeta;
    ind->nmeta = (uint16_t)nmeta;
    if (nmeta) {
        const char **vals = kg_ind_set_alloc(s, nmeta * sizeof(*vals));
        memcpy(vals, in->meta_values, nmeta * sizeof(*vals));
        ind->meta_values = vals;
        if (in->meta_keys_shared) {
            ind->meta_keys = in->meta_keys;
        } else {
            const char **keys = kg_ind_set_alloc(s, nmeta * sizeof(*keys));
            memcpy(keys, in->meta_keys, nmeta * sizeof(*keys));
            ind->meta_keys = keys;
        }
    }
    s->n++;

    switch (in->type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        if (nv.family == 4)
            kg_ind_v4_insert(&s->v4, nv.v4, nv.plen, id, s->seed);
        else
            kg_ind_v6_insert(&s->v6, nv.hi, nv.lo, nv.plen, id, s->seed);
        break;
    default: {
        uint64_t h = key_hash(s, in->type, &nv);
        struct rehash_ctx rctx = {s, in->type, nv.prefix};
        struct kg_ind_htab *t = nv.prefix ? &s->url_prefix : &s->tabs[in->type];
        uint8_t kbuf[4 + 64];
        size_t klen = 0;
        if (t->key_stride) {
            /* Only the digest types (<= 36-byte keys) have key_stride. */
            klen = 4 + nv.key_len;
            if (klen >= t->key_stride) abort();
            memcpy(kbuf, &id, 4);
            memcpy(kbuf + 4, nv.key, nv.key_len);
        }
        kg_ind_htab_insert(t, h, kg_ind_tag(h), ref, rehash_indicator, &rctx, kbuf, klen);
        if (in->type == KG_IND_DOMAIN) {
            if (nv.key_len > s->domain_max_len) s->domain_max_len = nv.key_len;
            s->domain_labels |= 1ull << (KG_MIN(domain_label_count(nv.key, nv.key_len), 64) - 1);
            /* Bit 63 stands for 64 and more labels: no bound then. */
            s->domain_max_labels = s->domain_labels >> 63
                                       ? UINT_MAX
                                       : 64u - (unsigned)__builtin_clzll(s->domain_labels | 1);
        }
        break;
    }
    }
    s->count[in->type]++;
    s->srcs[src].count[in->type]++;
    return 0;
}

int kg_indicator_set_add_spec(struct kg_indicator_set *s, const struct kg_indicator_spec *spec,
                              struct kg_err *err)
{
    if (!s || !spec || !spec->value) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    if (s->finalized) return kg_err_set(err, KG_ERR_INVAL, "indicator set is finalized");
    if (spec->valid_from_us && spec->valid_until_us && spec->valid_until_us <= spec->valid_from_us)
        return kg_err_set(err, KG_ERR_INVAL, "validity window is empty (valid_until is not after valid_from)");
#define DUP(str) ((str) && *(str) ? kg_ind_set_strdup(s, (str), strlen(str)) : "")
    struct kg_ind_input in = {
        .type = spec->type,
        .value = spec->value,
        .value_len = strlen(spec->value),
        .source = DUP(spec->source),
        .feed_id = DUP(spec->feed_id),
        .desc = DUP(spec->desc),
        .file = "",
        .severity = spec->severity,
        .valid_from_us = spec->valid_from_us,
        .valid_until_us = spec->valid_until_us,
    };
#undef DUP
    int rc = kg_ind_set_insert(s, &in, NULL, err);
    /* A duplicate is not an error: the first one stays, as with feed files. */
    return rc == 1 ? 0 : rc;
}

int kg_indicator_set_add(struct kg_indicator_set *s, enum kg_ind_type type, const char *value,
                         const char *source, struct kg_err *err)
{
    struct kg_indicator_spec spec = {.type = type, .value = value, .source = source};
    return kg_indicator_set_add_spec(s, &spec, err);
}

/* --- matching (worker hot path: no allocation, no writes) ---------------------------- */

/* DOMAIN: the window starts this far into buf (see lk_domain). */
#define KG_LK_PAD 8

struct lookup {
    /* What a lookup always reads first, in one cache line. */
    enum kg_ind_type type; /* the table probed */
    unsigned n;            /* probes; 0: nothing can match */
    unsigned cap;          /* room in h[] and start[] */
    bool overflow;         /* needs more room than it has: use a lookup_big */
    size_t win;            /* DOMAIN: window length */
    const char *k, *b;     /* key; URL: host and path */
    size_t kn, bn;
    uint64_t *h;           /* probe hashes */
    uint16_t *start;       /* DOMAIN: suffix start in buf */
    uint64_t pass;         /* bit k: probe k passed its filter (lk_prefetch_slots); probes 64 and up always probe */
    unsigned nprefix;      /* URL: probes 0..nprefix-1 are of url_prefix (length start[k]), the rest exact */
    char *buf;             /* lower-cased window, host (+ "/" + query), digest or JA4 */
    size_t bufcap;
};

/* A single call's lookup: room for every case the lookups accept (a domain
 * window of <= 254 bytes has <= 127 suffixes; a URL host of up to
 * KG_IND_NAME_MAX bytes and a query-only target of less than that). */
#define KG_LK_BIG_PROBES 128
struct lookup_big {
    struct lookup lk;
    uint64_t h[KG_LK_BIG_PROBES];
    uint16_t start[KG_LK_BIG_PROBES];
    /* A URL: host, then the target normalised (at most KG_IND_VALUE_MAX + 1
     * bytes, a '/' in front of a query-only one) and 8 bytes for word loads. */
    char buf[KG_IND_NAME_MAX + 1 + KG_IND_VALUE_MAX + 1 + 8];
};

/* A batch's lookup: room for what names and URLs usually need (a domain
 * window always fits; up to 16 probed suffixes; URL hosts up to about 250
 * bytes). The rest overflows to a single call. */
#define KG_LK_SMALL_PROBES 16
struct lookup_small {
    struct lookup lk;
    uint64_t h[KG_LK_SMALL_PROBES];
    uint16_t start[KG_LK_SMALL_PROBES];
    char buf[KG_LK_PAD + (KG_IND_DOMAIN_MAX + 1 + 7) / 8 * 8];
};

static inline struct lookup *lookup_big_init(struct lookup_big *b)
{
    b->lk.k = b->lk.b = NULL;
    b->lk.kn = b->lk.bn = 0;
    b->lk.nprefix = 0;
    b->lk.cap = KG_LK_BIG_PROBES;
    b->lk.h = b->h;
    b->lk.start = b->start;
    b->lk.buf = b->buf;
    b->lk.bufcap = sizeof(b->buf);
    return &b->lk;
}

static inline struct lookup *lookup_small_init(struct lookup_small *b)
{
    b->lk.cap = KG_LK_SMALL_PROBES;
    b->lk.h = b->h;
    b->lk.start = b->start;
    b->lk.buf = b->buf;
    b->lk.bufcap = sizeof(b->buf);
    return &b->lk;
}

/*
 * IPv4 in stages, so a batch can overlap the memory reads of many lookups
 * (a single call is match_v4 below). The state lives in a struct
 * lookup: h[0] the /32 probe's hash, h[1..] the /25-/31 probes' (longest
 * first), win the address, kn the two-level entry, n bit 0 "probe /32",
 * bits 8.. the long probes that passed their filters.
 *   1: hashes; prefetch the /32 filter word and the two-level (l2) entry;
 *   2: /32 filter test, prefetch its slot; read the l2 entry and, when it
 *      says /25-/31 prefixes exist under its /24, hash those probes and
 *      prefetch their filter words;
 *   3: the long probes' filter tests, prefetch their slots;
 *   4: probe, most specific first, and fall back to the l1/l2 entry.
 */
/* The two-level table's l2 entry of address a, under the l1 entry e (whose
 * bit 31 says the /16 has a block). */
static inline const uint32_t *v4_l2_entry(const struct kg_ind_v4 *x, uint32_t e, uint32_t a)
{
    return &x->l2[(size_t)(e & 0x7fffffffu) * 256 + ((a >> 8) & 255)];
}

/* The /0-/24 prefix a two-level entry names (bit 31 aside: it only flags
 * blocks or /25-/31 prefixes), or the next shorter one covering it when that
 * one is not valid at now. */
static const struct kg_indicator *v4_covering(const struct kg_indicator_set *s, uint32_t e, uint64_t now)
{
    uint32_t c = e & 0x7fffffffu;
    if (!c) return NULL;
    uint32_t id = c - 1;
    while (id != KG_IND_NONE && !valid_at(s, id, now))
        id = s->parent ? s->parent[id] : KG_IND_NONE;
    return id == KG_IND_NONE ? NULL : &s->inds[id];
}

/* The exact probe of a /32 (or /25-/31 prefix) whose slot was fetched. */
static inline const struct kg_indicator *v4_probe(const struct kg_indicator_set *s, const struct kg_ind_htab *t,
                                                  uint64_t h, uint32_t masked, uint64_t now)
{
    uint32_t pos = kg_ind_htab_start(t, h);
    uint32_t id = kg_ind_htab_next(t, masked, &pos);
    return id != KG_IND_NONE && valid_at(s, id, now) ? &s->inds[id] : NULL;
}

static void v4_stage1(const struct kg_indicator_set *s, uint32_t a, struct lookup *lk)
{
    const struct kg_ind_v4 *x = &s->v4;
    const struct kg_ind_htab *t32 = &x->tabs[32];
    lk->win = a;
    lk->n = 0;
    lk->kn = 0;
    lk->bn = 0; /* l2 entry read in stage 2 */
    if (t32->count) {
        lk->h[0] = kg_ind_hash32(a, s->seed + 32);
        kg_ind_filter_prefetch(&t32->filter, lk->h[0]);
        lk->n = 1;
    }
    if (x->l1) {
        uint32_t e = x->l1[a >> 16];
        lk->kn = e;
        if (e & 0x80000000u) __builtin_prefetch(v4_l2_entry(x, e, a));
    }
}

static void v4_stage2(const struct kg_indicator_set *s, struct lookup *lk)
{
    const struct kg_ind_v4 *x = &s->v4;
    const struct kg_ind_htab *t32 = &x->tabs[32];
    uint32_t a = (uint32_t)lk->win;
    if ((lk->n & 1) && kg_ind_filter_test(&t32->filter, lk->h[0]))
        kg_ind_htab_prefetch(t32, lk->h[0]);
    else
        lk->n &= ~1u;
    uint32_t e = (uint32_t)lk->kn;
    if (e & 0x80000000u) {
        e = *v4_l2_entry(x, e, a);
        lk->kn = e;
        if (e & 0x80000000u) {
            for (unsigned i = 0; i < x->nlong; i++) {
                unsigned plen = x->long_lens[i];
                lk->h[1 + i] = kg_ind_hash32(kg_ind_v4_mask(a, plen), s->seed + plen);
                kg_ind_filter_prefetch(&x->tabs[plen].filter, lk->h[1 + i]);
            }
            lk->bn = 1; /* long probes hashed */
        }
    }
}

static void v4_stage3(const struct kg_indicator_set *s, struct lookup *lk)
{
    const struct kg_ind_v4 *x = &s->v4;
    if (!lk->bn) return;
    for (unsigned i = 0; i < x->nlong; i++) {
        const struct kg_ind_htab *t = &x->tabs[x->long_lens[i]];
        if (kg_ind_filter_test(&t->filter, lk->h[1 + i])) {
            kg_ind_htab_prefetch(t, lk->h[1 + i]);
            lk->n |= 1u << (8 + i);
        }
    }
}

static const struct kg_indicator *v4_finish(const struct kg_indicator_set *s, const struct lookup *lk,
                                            uint64_t now)
{
    const struct kg_ind_v4 *x = &s->v4;
    uint32_t a = (uint32_t)lk->win;
    const struct kg_indicator *ind;
    if ((lk->n & 1) && (ind = v4_probe(s, &x->tabs[32], lk->h[0], a, now))) return ind;
    if (!x->l1) return NULL;
    for (unsigned i = 0; i < x->nlong; i++) {
        unsigned plen = x->long_lens[i];
        if ((lk->n >> (8 + i) & 1) && (ind = v4_probe(s, &x->tabs[plen], lk->h[1 + i], kg_ind_v4_mask(a, plen), now)))
            return ind;
    }
    /* The l1 entry, or (stage 2 read it) the l2 entry. */
    return v4_covering(s, (uint32_t)lk->kn, now);
}

/* A single IPv4 lookup: the /32 slot and the l2 entry are fetched in
 * parallel (no /32 filter test in front: alone, it would add a cache miss
 * before the slot's), then the /25-/31 probes the entry asks for. */
static const struct kg_indicator *match_v4(const struct kg_indicator_set *s, uint32_t a, uint64_t now)
{
    const struct kg_ind_v4 *x = &s->v4;
    const struct kg_ind_htab *t32 = &x->tabs[32];
    uint64_t h32 = 0;
    if (t32->count) {
        h32 = kg_ind_hash32(a, s->seed + 32);
        kg_ind_htab_prefetch(t32, h32);
    }
    /* l1 (256 KiB) is normally in cache. */
    const uint32_t *e2 = NULL;
    uint32_t e = 0;
    if (x->l1) {
        e = x->l1[a >> 16];
        if (e & 0x80000000u) {
            e2 = v4_l2_entry(x, e, a);
            __builtin_prefetch(e2);
        }
    }
    const struct kg_indicator *ind;
    if (t32->count && (ind = v4_probe(s, t32, h32, a, now))) return ind;
    if (!x->l1) return NULL;
    if (e2) {
        e = *e2;
        if (e & 0x80000000u) {
            for (unsigned i = 0; i < x->nlong; i++) {
                unsigned plen = x->long_lens[i];
                uint32_t id = kg_ind_v4_find(x, kg_ind_v4_mask(a, plen), plen, s->seed); /* filter first */
                if (id != KG_IND_NONE && valid_at(s, id, now)) return &s->inds[id];
            }
        }
    }
    return v4_covering(s, e, now);
}

/* IPv6 with the probe hashes already computed (and their slots fetched):
 * the longest listed prefix that is valid. */
static const struct kg_indicator *match_v6_hashed(const struct kg_indicator_set *s, const uint8_t *addr,
                                                  const uint64_t *h, unsigned n, uint64_t now)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t id = kg_ind_v6_find_hashed(&s->v6, addr, i, h[i]);
        if (id != KG_IND_NONE && valid_at(s, id, now)) return &s->inds[id];
    }
    return NULL;
}

static const struct kg_indicator *match_v6(const struct kg_indicator_set *s, const uint8_t *addr, uint64_t now)
{
    uint64_t h[KG_ARRAY_LEN(s->v6.lens)];
    unsigned n = kg_ind_v6_hashes(&s->v6, addr, s->seed, h, KG_ARRAY_LEN(h));
    kg_ind_v6_prefetch_hashed(&s->v6, h, n);
    return match_v6_hashed(s, addr, h, n, now);
}

const struct kg_indicator *kg_indicator_match_addr(const struct kg_indicator_set *s, uint8_t family,
                                                   const uint8_t *addr, uint64_t now_us)
{
    if (!s || !addr) return NULL;
    if (family == 4) {
        uint32_t a;
        memcpy(&a, addr, 4);
        return match_v4(s, be32toh(a), now_us);
    }
    if (family == 6) return match_v6(s, addr, now_us);
    return NULL;
}

/*
 * The exact-key lookups (domain, URL, hashes, JA4, User-Agent) in two
 * halves: lk_*() prepare a struct lookup (normalise the observed value,
 * hash it, and prefetch the slots the probe will read), lk_finish() probes
 * and confirms. A single match_*() call runs both; kg_indicator_match_batch()
 * prepares a whole group first, so the memory accesses of its queries
 * overlap instead of queuing one after the other.
 */
/* Eight bytes at once (SWAR): ASCII upper case to lower case, every other
 * byte unchanged. */
static inline uint64_t swar_lower(uint64_t x)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full, hi = 0x8080808080808080ull;
    uint64_t h = x & lo7;
    uint64_t ge_a = h + 0x3f3f3f3f3f3f3f3full; /* bit 7 set where h >= 'A' */
    uint64_t gt_z = h + 0x2525252525252525ull; /* bit 7 set where h > 'Z' */
    uint64_t upper = ge_a & ~gt_z & ~x & hi;   /* and the byte is ASCII */
    return x | (upper >> 2);                   /* 0x80 >> 2 = 0x20 */
}

/* Bit 7 of each byte of x (as swar_eq leaves them) gathered into bits 0-7,
 * byte i's in bit i. */
static inline uint64_t swar_gather(uint64_t x)
{
    return (x * 0x0002040810204081ull) >> 56;
}

/* Non-zero exactly when some byte of x is c (which bytes the set bits mark
 * is not exact past the first c, so this only answers yes/no). Cheaper than
 * swar_eq. */
static inline uint64_t swar_maybe(uint64_t x, uint8_t c)
{
    uint64_t v = x ^ (0x0101010101010101ull * c);
    return (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
}

/* dst[0..n) = src[0..n) in ASCII lower case, eight bytes at a time, and
 * its kg_ind_hash(dst, n, seed) computed on the way. For n >= 8 the last
 * bytes come from the 8 that end src (stored over bytes already written,
 * with the same values), so no loop runs over a length that changes from
 * call to call. */
static inline uint64_t lower_copy_hash(char *dst, const char *src, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ ((uint64_t)n * KG_IND_P1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w = swar_lower(w); /* byte-wise: endianness does not matter */
        memcpy(dst + i, &w, 8);
        h = kg_ind_round64(h, le64toh(w));
    }
    if (i < n) {
        if (n >= 8) {
            uint64_t w;
            memcpy(&w, src + n - 8, 8);
            w = swar_lower(w);
            memcpy(dst + n - 8, &w, 8);
        } else {
            for (size_t b = 0; b < n; b++)
                dst[b] = lower_ascii(src[b]);
        }
        h = kg_ind_round64(h, kg_ind_tail_word((const uint8_t *)dst, n));
    }
    return kg_ind_hash_final(h);
}

/* Bit 7 of each byte of the result is set exactly where x has the byte c. */
static inline uint64_t swar_eq(uint64_t x, uint8_t c)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;
    uint64_t v = x ^ (0x0101010101010101ull * c);
    return ~(((v & lo7) + lo7) | v | lo7);
}

/*
 * lk_domain for the common case: a window (below) of at most 64 bytes with
 * no backslash in it or just before it. The window is read as words
 * aligned to its end (word j: the 8 bytes that end 8j bytes before it), so
 * the hash chain H(j) of kg_ind_suffix_hash comes out of the lowering loop
 * and a suffix's partial word is a shift of a word already in hand, and the
 * dots fit one 64-bit map (bit i: byte win - 64 + i of the window) whose
 * leading zeros are the length of the shortest suffix not yet walked.
 * Returns false, having set nothing in *lk but buf, for any other name.
 */
static inline bool lk_domain_short(const struct kg_indicator_set *s, const char *name, size_t len, size_t win,
                                   struct lookup *lk)
{
    if (win > 64) return false;
    const size_t nw = (win + 7) / 8, r = win % 8;
    const char *end = name + len;
    char *wend = lk->buf + KG_LK_PAD + win;
    uint64_t word[8], chain[9];
    uint64_t dots = 0, backslashes = 0, h = s->seed;
    chain[0] = h;
    for (size_t j = 0; j < nw; j++) {
        uint64_t w;
        if (j + 1 < nw || r == 0) {
            memcpy(&w, end - 8 * (j + 1), 8);
            w = le64toh(w);
        } else if (len >= 8 * nw) {
            /* The leftmost word, partly before the window: those bytes
             * zeroed (a backslash there must not count). */
            memcpy(&w, end - 8 * (j + 1), 8);
            w = le64toh(w) & (~0ull << (8 * (8 - r)));
        } else if (len >= 8) {
            /* ... and before the name: its first 8 bytes, moved up. */
            memcpy(&w, end - win, 8);
            w = le64toh(w) << (8 * (8 - r));
        } else {
            w = 0;
            for (size_t b = 0; b < r; b++)
                w |= (uint64_t)(uint8_t)end[(ptrdiff_t)b - (ptrdiff_t)r] << (8 * (8 - r + b));
        }
        w = swar_lower(w);
        dots |= swar_gather(swar_eq(w, '.')) << (56 - 8 * j);
        backslashes |= swar_maybe(w, '\\');
        word[j] = w;
        h = kg_ind_round64(h, w); /* H(j + 1); unused past the full words */
        chain[j + 1] = h;
        w = htole64(w);
        memcpy(wend - 8 * (j + 1), &w, 8);
    }
    if (backslashes || (win < len && end[-(ptrdiff_t)win - 1] == '\\')) return false;

    /* The suffixes that start on a label boundary, shortest first, as in
     * lk_domain. */
    const struct kg_ind_htab *t = &s->tabs[KG_IND_DOMAIN];
    const size_t max_len = s->domain_max_len;
    const uint64_t label_counts = s->domain_labels;
    const unsigned max_labels = s->domain_max_labels, cap = lk->cap;
    unsigned labels = 0, n = 0;
    for (;;) {
        /* The suffix after the rightmost dot left, or the whole window. */
        size_t l = dots ? (size_t)__builtin_clzll(dots) : win;
        if (l > max_len || ++labels > max_labels) break;
        if (label_counts >> (KG_MIN(labels, 64u) - 1) & 1) {
            if (n == cap) {
                lk->overflow = true;
                n = 0;
                break;
            }
            size_t j = l / 8, rest = l % 8;
            uint64_t partial = rest ? word[j] >> (8 * (8 - rest)) : 0;
            uint64_t ph = kg_ind_hash_final(kg_ind_round64(chain[j] ^ ((uint64_t)l * KG_IND_P1), partial));
            lk->h[n] = ph;
            lk->start[n++] = (uint16_t)(win - l);
            kg_ind_filter_prefetch(&t->filter, ph);
        }
        if (!dots) break;
        dots &= ~(1ull << (63 - l));
    }
    lk->win = win;
    lk->n = n;
    return true;
}

static void lk_domain(const struct kg_indicator_set *s, const char *name, size_t len, struct lookup *lk)
{
    const struct kg_ind_htab *t = &s->tabs[KG_IND_DOMAIN];
    lk->type = KG_IND_DOMAIN;
    lk->n = 0;
    lk->overflow = false;
    lk->k = lk->b = NULL;
    lk->kn = lk->bn = 0;
    if (!name || t->count == 0) return;
    if (len > 0 && name[len - 1] == '.') len--;
    if (len == 0 || len > KG_IND_NAME_MAX) return;
    /* Locals: the stores into *lk below could alias *s for the compiler,
     * which would then reload every field of it in the loops. */
    const size_t max_len = s->domain_max_len;
    const uint64_t label_counts = s->domain_labels;
    const unsigned cap = lk->cap;
    _Static_assert(sizeof(((struct lookup_small *)0)->buf) >= KG_LK_PAD + (KG_IND_DOMAIN_MAX + 1 + 7) / 8 * 8,
                   "a domain window and its padding fit every lookup");

    /* Only the last max_len bytes can be part of a match, plus the byte
     * before them to see whether a label boundary is there: lower-case just
     * that window, eight bytes at a time, into buf after KG_LK_PAD bytes
     * (kg_ind_suffix_hash reads up to 8 bytes before a suffix), and note
     * where its dots are, a bit per byte. */
    const size_t win = KG_MIN(len, max_len + 1);
    if (lk_domain_short(s, name, len, win, lk)) return;
    char *wbuf = lk->buf + KG_LK_PAD;
    const char *src = name + (len - win);
    /* Bit j of dotbits[w]: byte 64w + j of the window is a dot. */
    uint64_t dotbits[(KG_IND_DOMAIN_MAX + 1 + 63) / 64] = {0};
    uint64_t backslashes = 0;
    const size_t full = win / 8, tail = win % 8;
    for (size_t k = 0; k < full; k++) {
        uint64_t w;
        memcpy(&w, src + 8 * k, 8);
        w = swar_lower(le64toh(w));
        dotbits[k / 8] |= swar_gather(swar_eq(w, '.')) << (8 * (k % 8));
        backslashes |= swar_maybe(w, '\\');
        w = htole64(w);
        memcpy(wbuf + 8 * k, &w, 8);
    }
    if (tail) {
        uint64_t w = 0;
        if (len >= 8) {
            /* Loaded as the name's last eight bytes, shifted: a byte-wise
             * copy into w would stall the load on the partial stores. */
            memcpy(&w, name + len - 8, 8);
            w = le64toh(w) >> (8 * (8 - tail));
        } else {
            for (size_t j = 0; j < tail; j++)
                w |= (uint64_t)(uint8_t)src[8 * full + j] << (8 * j);
        }
        w = swar_lower(w);
        dotbits[full / 8] |= swar_gather(swar_eq(w, '.')) << (8 * (full % 8));
        backslashes |= swar_maybe(w, '\\'); /* the padding is zeros */
        w = htole64(w);
        memcpy(wbuf + 8 * full, &w, 8);
    }
    lk->win = win;

    /* The suffixes that start on a label boundary, shortest first. Each
     * probed suffix's hash comes from the chain of the window's full words
     * from its end (kg_ind_suffix_hash), extended as the suffixes grow. Past
     * the most labels of any key no suffix can match; a suffix longer than
     * max_len cannot match either.
     * DNS names come in presentation form, where a '.' inside a label is
     * written "\." (dissect_parsers.h): such a dot is not a label boundary.
     * Whether a dot is escaped depends on the backslashes before it in the
     * whole name, so they are counted there; names without a backslash in
     * the window or just before it (nearly all) skip the count. */
    const unsigned max_labels = s->domain_max_labels;
    const bool escapes = backslashes || (win < len && src[-1] == '\\');
    const size_t min_start = win > max_len ? win - max_len : 0;
    const char *wend = wbuf + win;
    uint64_t h = s->seed; /* H(words) */
    size_t words = 0;
    unsigned labels = 0; /* of the current suffix */
    unsigned n = 0;
    size_t k = (win - 1) / 64; /* names of up to 64 bytes: one word, no skipping */
    uint64_t m = dotbits[k];
    for (;;) {
        /* Next boundary to the left: after the dot at `pos`, or the start
         * of the window (i == 0), which, if the window is not the whole
         * name, is longer than any indicator and stops the walk. */
        size_t i;
        while (m == 0 && k > 0)
            m = dotbits[--k];
        if (m) {
            unsigned bit = 63u - (unsigned)__builtin_clzll(m);
            m &= ~(1ull << bit);
            size_t pos = 64 * k + bit;
            if (escapes) {
                size_t at = len - win + pos, bs = 0; /* index of the dot in name */
                while (at > bs && name[at - bs - 1] == '\\')
                    bs++;
                if (bs % 2) continue;
            }
            i = pos + 1;
        } else {
            i = 0;
        }
        if (i < min_start || ++labels > max_labels) break;
        /* Probe only the suffixes whose label count some key has. */
        if (label_counts >> (KG_MIN(labels, 64u) - 1) & 1) {
            if (n == cap) {
                lk->overflow = true;
                n = 0;
                break;
            }
            size_t l = win - i;
            for (; words < l / 8; words++)
                h = kg_ind_round64(h, kg_ind_word_before(wend - 8 * words));
            uint64_t ph = kg_ind_suffix_hash(wend, l, h);
            lk->h[n] = ph;
            lk->start[n++] = (uint16_t)i;
            kg_ind_filter_prefetch(&t->filter, ph);
        }
        if (i == 0) break;
    }
    lk->n = n;
}

/* kg_ind_hash(p, n, seed), inline, noting in *pct whether p has a '%' (so
 * that the common target, with no escape, is read once). */
static inline uint64_t url_target_hash(const char *p, size_t n, uint64_t seed, bool *pct)
{
    uint64_t h = seed ^ ((uint64_t)n * KG_IND_P1), seen = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = url_word(p + i);
        seen |= swar_maybe(w, '%');
        h = kg_ind_round64(h, w);
    }
    if (i < n) {
        uint64_t w = kg_ind_tail_word((const uint8_t *)p, n);
        seen |= swar_maybe(w, '%'); /* the bytes above are zeros */
        h = kg_ind_round64(h, w);
    }
    *pct = seen != 0;
    return kg_ind_hash_final(h);
}

static void lk_url(const struct kg_indicator_set *s, const char *host, size_t host_len, const char *uri,
                   size_t uri_len, struct lookup *lk)
{
    lk->type = KG_IND_URL;
    lk->n = 0;
    lk->nprefix = 0;
    lk->overflow = false;
    lk->b = NULL;
    lk->bn = 0;
    if (s->count[KG_IND_URL] == 0 || (!uri && uri_len)) return;
    /* A request to a proxy carries the absolute form (RFC 9112 3.2.2): the
     * authority in the URI wins over the Host header. */
    size_t skip = uri ? http_scheme_len(uri, uri_len) : 0;
    if (skip) {
        host = uri + skip;
        size_t n = uri_len - skip, hl = 0;
        while (hl < n && host[hl] != '/' && host[hl] != '?')
            hl++;
        host_len = hl;
        uri = host + hl;
        uri_len = n - hl;
    }
    if (!host) return;
    host_len = host_drop_default_port(host, host_len);
    if (host_len == 0 || host_len > KG_IND_NAME_MAX) return;
    lk->nprefix = 0;
    if (host_len > lk->bufcap) {
        lk->overflow = true;
        return;
    }
    const uint64_t host_hash = lower_copy_hash(lk->buf, host, host_len, s->seed);
    const struct kg_ind_htab *pt = &s->url_prefix;
    const bool prefixes = pt->count && kg_ind_filter_test(&s->url_prefix_hosts, host_hash);
    /* Mirror norm_url(): a missing path, or a query without one, is "/"; the
     * target is percent-encoding normalised. Unless it is already in that
     * form and no prefix of this host is listed, it is written after the
     * host in buf, with 8 zero bytes after it (url_prefix_hash). */
    bool query_only = uri_len > 0 && uri[0] == '?', whole = true, copy = query_only || prefixes;
    if (uri_len == 0) {
        uri = "/";
        uri_len = 1;
    }
    uint64_t exact = 0;
    if (!copy) exact = url_target_hash(uri, uri_len, host_hash, &copy);
    if (copy) {
        size_t want = KG_MIN(uri_len, (size_t)KG_IND_VALUE_MAX) + 1; /* past VALUE_MAX nothing can match */
        if (lk->bufcap - host_len < want + 1 + 8) {
            lk->overflow = true;
            return;
        }
        char *p = lk->buf + host_len;
        size_t o = 0;
        if (query_only) p[o++] = '/';
        o += url_pct_normalise(p + o, want, uri, uri_len, &whole);
        memset(p + o, 0, 8);
        uri = p;
        uri_len = o;
        exact = kg_ind_hash(uri, uri_len, host_hash);
    }
    lk->k = lk->buf;
    lk->kn = host_len;
    lk->b = uri;
    lk->bn = uri_len;
    unsigned n = 0;
    if (prefixes) {
        /* The prefixes a listed "P*" can be (docs/INDICATORS.md): up to
         * each '/' of the path, with and without it, up to the '?', and the
         * whole target; shortest first, so the most specific is probed
         * first (lk_finish goes from the last). */
        const char *q = memchr(uri, '?', uri_len);
        size_t qpos = q ? (size_t)(q - uri) : uri_len, last = 0, words = 0;
        uint64_t h = host_hash;
        const unsigned cap = lk->cap - 1; /* room for the exact probe */
        for (size_t i = 0; i <= qpos && n < cap; i++) {
            size_t cand[2];
            unsigned nc = 0;
            if (i == qpos) {
                cand[nc++] = qpos;
                if (qpos < uri_len && whole) cand[nc++] = uri_len;
            } else if (uri[i] == '/') {
                cand[nc++] = i;
                cand[nc++] = i + 1;
            } else {
                continue;
            }
            for (unsigned c = 0; c < nc && n < cap; c++) {
                size_t len = cand[c];
                if (len <= last || (len == uri_len && !whole)) continue;
                last = len;
                for (; words < len / 8; words++)
                    h = kg_ind_round64(h, url_word(uri + 8 * words));
                uint64_t ph = url_prefix_final(h, len, len % 8 ? url_word(uri + 8 * words) : 0);
                lk->h[n] = ph;
                lk->start[n++] = (uint16_t)len;
                kg_ind_filter_prefetch(&pt->filter, ph);
            }
        }
        if (n == cap && lk->cap == KG_LK_SMALL_PROBES) {
            lk->overflow = true; /* a single call has room for more */
            lk->n = 0;
            return;
        }
    }
    lk->nprefix = n;
    if (whole) {
        lk->h[n] = exact;
        kg_ind_filter_prefetch(&(&s->tabs[KG_IND_URL])->filter, lk->h[n]);
        n++;
    }
    lk->n = n;
}

static void lk_hash(const struct kg_indicator_set *s, enum kg_ind_type type, const char *hex, size_t len,
                    struct lookup *lk)
{
    lk->type = type;
    lk->n = 0;
    lk->overflow = false;
    if (!hex || (unsigned)type >= KG_IND_TYPE_COUNT || s->tabs[type].count == 0) return;
    switch (type) {
    case KG_IND_CERT_HASH:
    case KG_IND_JA3:
    case KG_IND_FILE_HASH:
        if (len != 32 && len != 40 && len != 64) return;
        if ((type == KG_IND_JA3 && len != 32) || (type == KG_IND_CERT_HASH && len == 32)) return;
        if (!hex_decode((uint8_t *)lk->buf, hex, len / 2)) return;
        lk->kn = len / 2;
        break;
    case KG_IND_JA4:
        if (len != 36) return;
        for (size_t i = 0; i < len; i++)
            lk->buf[i] = lower_ascii(hex[i]);
        lk->kn = len;
        break;
    default:
        return;
    }
    lk->k = lk->buf;
    lk->b = NULL;
    lk->bn = 0;
    lk->h[0] = kg_ind_hash(lk->k, lk->kn, s->seed + (uint64_t)type);
    lk->n = 1;
    kg_ind_filter_prefetch(&(&s->tabs[type])->filter, lk->h[0]);
}

static void lk_software(const struct kg_indicator_set *s, const char *ua, size_t len, struct lookup *lk)
{
    lk->type = KG_IND_SOFTWARE;
    lk->n = 0;
    lk->overflow = false;
    if (!ua || s->tabs[KG_IND_SOFTWARE].count == 0) return;
    /* RFC 9110 5.5: blanks around a field value are not part of it. */
    kg_ind_trim(&ua, &len);
    if (len == 0) return;
    lk->k = ua;
    lk->kn = len;
    lk->b = NULL;
    lk->bn = 0;
    lk->h[0] = kg_ind_hash(ua, len, s->seed + (uint64_t)KG_IND_SOFTWARE);
    lk->n = 1;
    kg_ind_filter_prefetch(&(&s->tabs[KG_IND_SOFTWARE])->filter, lk->h[0]);
}

/*
 * Which probes read their table: bit k of lk->pass for probe k < 64, set
 * when its filter let it through; probes 64 and up (single calls on names
 * of more than 64 labels) always read. Stages 3 and 4 walk the set bits, so
 * a lookup whose probes all stopped at their filters (half of them, at
 * random) costs no branch on each probe.
 */

/* The table probe k reads. */
static inline const struct kg_ind_htab *lk_table(const struct kg_indicator_set *s, const struct lookup *lk,
                                                 unsigned k)
{
    return lk->type == KG_IND_URL && k < lk->nprefix ? &s->url_prefix : &s->tabs[lk->type];
}

/* Probes, longest domain suffix (or URL prefix) first; the first valid match
 * is the most specific one. */
static inline const struct kg_indicator *lk_probe(const struct kg_indicator_set *s, const struct lookup *lk,
                                                  unsigned k, uint64_t now)
{
    uint32_t id;
    if (lk->type == KG_IND_URL && k < lk->nprefix)
        id = find_rec_key_in(s, &s->url_prefix, KG_IND_URL, lk->h[k], lk->k, lk->kn, lk->b, lk->start[k]);
    else if (lk->type == KG_IND_DOMAIN)
        id = find_rec_key(s, KG_IND_DOMAIN, lk->h[k], lk->buf + KG_LK_PAD + lk->start[k],
                          lk->win - lk->start[k], NULL, 0);
    else
        id = find_key(s, lk->type, lk->h[k], lk->k, lk->kn, lk->b, lk->bn);
    return id != KG_IND_NONE && valid_at(s, id, now) ? &s->inds[id] : NULL;
}

static inline __attribute__((always_inline)) const struct kg_indicator *lk_finish(const struct kg_indicator_set *s, const struct lookup *lk,
                                            uint64_t now)
{
    for (unsigned k = lk->n; k-- > 64;) {
        const struct kg_indicator *ind = lk_probe(s, lk, k, now);
        if (ind) return ind;
    }
    for (uint64_t m = lk->pass; m;) {
        unsigned k = 63u - (unsigned)__builtin_clzll(m);
        m &= ~(1ull << k);
        const struct kg_indicator *ind = lk_probe(s, lk, k, now);
        if (ind) return ind;
    }
    return NULL;
}

/* The slots (and inline keys) of the probes the filter lets pass. A branch
 * on the filter's answer, though a coin toss: at 10 M indicators the filter
 * word may still be on its way from L3, and a predicted branch lets the
 * slot's prefetch go out before it arrives, where a select of the address
 * would wait for it (measured: 10.0-10.5 against 11.6-11.9 M/s). */
static inline __attribute__((always_inline)) void lk_prefetch_slots(const struct kg_indicator_set *s, struct lookup *lk)
{
    uint64_t pass = 0;
    for (unsigned k = 0; k < lk->n; k++) {
        const struct kg_ind_htab *t = lk_table(s, lk, k);
        if (!kg_ind_filter_test(&t->filter, lk->h[k])) continue;
        kg_ind_htab_prefetch(t, lk->h[k]);
        if (k < 64) pass |= 1ull << k;
    }
    lk->pass = pass;
}

/* The record a probe's slot points at, if its tag matches: fetched ahead of
 * the confirmation. */
static inline void lk_prefetch_candidate(const struct kg_indicator_set *s, const struct kg_ind_htab *t,
                                         const struct lookup *lk, unsigned k)
{
    uint32_t pos = kg_ind_htab_start(t, lk->h[k]);
    uint32_t ref = kg_ind_htab_next(t, kg_ind_tag(lk->h[k]), &pos);
    if (ref == KG_IND_NONE) return;
    /* The record's first line, and its last if a record of the length
     * looked for ends in another (URLs always, short names often). */
    const char *r = (const char *)rec_at(s, ref);
    size_t key_len = lk->type == KG_IND_DOMAIN                   ? lk->win - lk->start[k]
                     : lk->type == KG_IND_URL && k < lk->nprefix ? lk->kn + lk->start[k]
                                                                 : lk->kn + lk->bn;
    __builtin_prefetch(r);
    __builtin_prefetch(r + sizeof(struct vrec) + key_len - 1);
}

/* Batch stage 3: the records of the probes that passed their filters. */
static inline __attribute__((always_inline)) void lk_prefetch_candidates(const struct kg_indicator_set *s, const struct lookup *lk)
{
    const struct kg_ind_htab *t = &s->tabs[lk->type];
    if (t->keys) return; /* confirmed from the inline keys, already fetched */
    for (uint64_t m = lk->pass; m; m &= m - 1) {
        unsigned k = (unsigned)__builtin_ctzll(m);
        lk_prefetch_candidate(s, lk_table(s, lk, k), lk, k);
    }
    for (unsigned k = 64; k < lk->n; k++)
        lk_prefetch_candidate(s, lk_table(s, lk, k), lk, k);
}

const struct kg_indicator *kg_indicator_match_domain(const struct kg_indicator_set *s, const char *name,
                                                     size_t len, uint64_t now_us)
{
    if (!s) return NULL;
    struct lookup_big big;
    struct lookup *lk = lookup_big_init(&big);
    lk_domain(s, name, len, lk);
    lk_prefetch_slots(s, lk);
    return lk_finish(s, lk, now_us);
}

const struct kg_indicator *kg_indicator_match_url(const struct kg_indicator_set *s, const char *host,
                                                  size_t host_len, const char *uri, size_t uri_len,
                                                  uint64_t now_us)
{
    if (!s) return NULL;
    struct lookup_big big;
    struct lookup *lk = lookup_big_init(&big);
    lk_url(s, host, host_len, uri, uri_len, lk);
    lk_prefetch_slots(s, lk);
    return lk_finish(s, lk, now_us);
}

const struct kg_indicator *kg_indicator_match_hash(const struct kg_indicator_set *s, enum kg_ind_type type,
                                                   const char *hex, size_t len, uint64_t now_us)
{
    if (!s) return NULL;
    struct lookup_big big;
    struct lookup *lk = lookup_big_init(&big);
    lk_hash(s, type, hex, len, lk);
    lk_prefetch_slots(s, lk);
    return lk_finish(s, lk, now_us);
}

const struct kg_indicator *kg_indicator_match_software(const struct kg_indicator_set *s, const char *ua,
                                                       size_t len, uint64_t now_us)
{
    if (!s) return NULL;
    struct lookup_big big;
    struct lookup *lk = lookup_big_init(&big);
    lk_software(s, ua, len, lk);
    lk_prefetch_slots(s, lk);
    return lk_finish(s, lk, now_us);
}

/*
 * The batch works in groups of KG_BATCH_GROUP lookups, four groups in
 * flight, one stage each: while group g is prepared (stage 1: key, hashes,
 * prefetch of the filter words), group g - 1 has its filters tested and the
 * slots that pass prefetched (stage 2), group g - 2 its slots read and the
 * value records their tags point at prefetched (stage 3), and group g - 3
 * is finished (stage 4). A group's worth of work separates every prefetch
 * from the read that needs it, so the lookups' memory accesses overlap
 * instead of adding up.
 */
#define KG_BATCH_GROUP 16
#define KG_BATCH_STAGES 4

static void batch_prepare(const struct kg_indicator_set *s, const struct kg_indicator_query *x, struct lookup *lk)
{
    lk->n = 0;
    switch (x->type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        lk->overflow = false;
        if (!x->value) break;
        if (x->family == 4) {
            uint32_t a;
            memcpy(&a, x->value, 4);
            v4_stage1(s, be32toh(a), lk);
        } else if (x->family == 6) {
            lk->n = kg_ind_v6_hashes(&s->v6, x->value, s->seed, lk->h, lk->cap);
            lk->overflow = lk->n < s->v6.nlens;
        }
        break;
    case KG_IND_DOMAIN:
        lk_domain(s, x->value, x->len, lk);
        break;
    case KG_IND_URL:
        lk_url(s, x->value, x->len, x->uri, x->uri_len, lk);
        break;
    case KG_IND_SOFTWARE:
        lk_software(s, x->value, x->len, lk);
        break;
    default:
        lk_hash(s, x->type, x->value, x->len, lk);
        break;
    }
}

/* One query through the single-call function of its type. */
static const struct kg_indicator *match_one(const struct kg_indicator_set *s, const struct kg_indicator_query *x,
                                            uint64_t now_us)
{
    switch (x->type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        return kg_indicator_match_addr(s, x->family, x->value, now_us);
    case KG_IND_DOMAIN:
        return kg_indicator_match_domain(s, x->value, x->len, now_us);
    case KG_IND_URL:
        return kg_indicator_match_url(s, x->value, x->len, x->uri, x->uri_len, now_us);
    case KG_IND_SOFTWARE:
        return kg_indicator_match_software(s, x->value, x->len, now_us);
    default:
        return kg_indicator_match_hash(s, x->type, x->value, x->len, now_us);
    }
}

static inline bool is_addr_query(const struct kg_indicator_query *x)
{
    return x->type == KG_IND_ADDR || x->type == KG_IND_SUBNET;
}

void kg_indicator_match_batch(const struct kg_indicator_set *s, const struct kg_indicator_query *q, size_t n,
                              const struct kg_indicator **out, uint64_t now_us)
{
    if (!out) return;
    if (!s || !q) {
        for (size_t i = 0; i < n; i++)
            out[i] = NULL;
        return;
    }
    struct lookup_small lk[KG_BATCH_STAGES][KG_BATCH_GROUP];
    size_t ngroups = (n + KG_BATCH_GROUP - 1) / KG_BATCH_GROUP;
    for (size_t g = 0; g < ngroups + KG_BATCH_STAGES - 1; g++) {
        /* Stage 1, group g. */
        if (g < ngroups) {
            size_t base = g * KG_BATCH_GROUP, m = KG_MIN(n - base, (size_t)KG_BATCH_GROUP);
            struct lookup_small *l = lk[g % KG_BATCH_STAGES];
            for (size_t i = 0; i < m; i++)
                batch_prepare(s, &q[base + i], lookup_small_init(&l[i]));
        }
        /* Stage 2, group g - 1. */
        if (g >= 1 && g - 1 < ngroups) {
            size_t base = (g - 1) * KG_BATCH_GROUP, m = KG_MIN(n - base, (size_t)KG_BATCH_GROUP);
            struct lookup_small *l = lk[(g - 1) % KG_BATCH_STAGES];
            for (size_t i = 0; i < m; i++) {
                const struct kg_indicator_query *x = &q[base + i];
                struct lookup *y = &l[i].lk;
                if (!is_addr_query(x)) {
                    lk_prefetch_slots(s, y); /* sets pass, even with no probe */
                } else if (x->family == 4 && x->value) {
                    v4_stage2(s, y);
                } else if (x->family == 6 && y->n) {
                    kg_ind_v6_prefetch_hashed(&s->v6, y->h, y->n);
                }
            }
        }
        /* Stage 3, group g - 2. */
        if (g >= 2 && g - 2 < ngroups) {
            size_t base = (g - 2) * KG_BATCH_GROUP, m = KG_MIN(n - base, (size_t)KG_BATCH_GROUP);
            struct lookup_small *l = lk[(g - 2) % KG_BATCH_STAGES];
            for (size_t i = 0; i < m; i++) {
                const struct kg_indicator_query *x = &q[base + i];
                struct lookup *y = &l[i].lk;
                if (!is_addr_query(x)) {
                    if (y->n) lk_prefetch_candidates(s, y);
                } else if (x->family == 4 && x->value) {
                    v4_stage3(s, y);
                }
            }
        }
        /* Stage 4, group g - 3. */
        if (g >= 3) {
            size_t base = (g - 3) * KG_BATCH_GROUP, m = KG_MIN(n - base, (size_t)KG_BATCH_GROUP);
            struct lookup_small *l = lk[(g - 3) % KG_BATCH_STAGES];
            for (size_t i = 0; i < m; i++) {
                const struct kg_indicator_query *x = &q[base + i];
                const struct lookup *y = &l[i].lk;
                if (y->overflow)
                    out[base + i] = match_one(s, x, now_us); /* rare: long URL host, many labels */
                else if (!is_addr_query(x))
                    out[base + i] = lk_finish(s, y, now_us);
                else if (x->family == 4 && x->value)
                    out[base + i] = v4_finish(s, y, now_us);
                else if (x->family == 6 && x->value)
                    out[base + i] = match_v6_hashed(s, x->value, y->h, y->n, now_us);
                else
                    out[base + i] = NULL;
            }
        }
    }
}

/* --- timestamps ------------------------------------------------------------------------ */

static bool digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

bool kg_ind_parse_time(const char *p, size_t n, uint64_t *us)
{
    kg_ind_trim(&p, &n);
    if (n == 0) return false;
    /* Integer seconds since the epoch. */
    if (n <= 12 && p[0] >= '0' && p[0] <= '9' && (n < 5 || p[4] != '-')) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9') return false;
            v = v * 10 + (uint64_t)(p[i] - '0');
        }
        *us = v * 1000000u;
        return true;
    }
    /* YYYY-MM-DD[(T| )HH:MM:SS[.frac]][Z|(+|-)HH:MM] (RFC 3339 5.6). */
    struct tm tm = {0};
    int y, mo, d, hh = 0, mi = 0, ss = 0;
    if (n < 10 || p[4] != '-' || p[7] != '-' || !digits(p, 4, &y) || !digits(p + 5, 2, &mo) ||
        !digits(p + 8, 2, &d))
        return false;
    size_t i = 10;
    uint64_t frac_us = 0;
    int64_t offset_s = 0;
    if (i < n) {
        if ((p[i] != 'T' && p[i] != 't' && p[i] != ' ') || n < i + 9 || p[i + 3] != ':' || p[i + 6] != ':' ||
            !digits(p + i + 1, 2, &hh) || !digits(p + i + 4, 2, &mi) || !digits(p + i + 7, 2, &ss))
            return false;
        i += 9;
        if (i < n && p[i] == '.') {
            uint64_t scale = 100000;
            for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++, scale /= 10)
                frac_us += (uint64_t)(p[i] - '0') * scale;
        }
        if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
            i++;
        } else if (i < n && (p[i] == '+' || p[i] == '-')) {
            int oh, om;
            if (n < i + 6 || p[i + 3] != ':' || !digits(p + i + 1, 2, &oh) || !digits(p + i + 4, 2, &om))
                return false;
            offset_s = (p[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
            i += 6;
        }
        if (i != n) return false;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 || ss > 60) return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t < 0 || (int64_t)t - offset_s < 0) return false;
    *us = (uint64_t)((int64_t)t - offset_s) * 1000000u + frac_us;
    return true;
}
