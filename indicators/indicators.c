/*
 * indicators/indicators.c — the indicator set: storage of the indicators,
 * normalisation of their values, duplicate detection, and the match_*()
 * lookups the workers call.
 *
 * Threads: a set is filled and finalized by one control-plane thread; after
 * kg_indicator_set_finalize() nothing in it changes, and the match functions
 * (which only read, keep no state and never allocate) may run in any number
 * of threads at once.
 *
 * Ownership: the set owns everything reachable from it. Strings live in an
 * arena of large chunks (a feed of a million indicators makes a few hundred
 * allocations, not millions), freed at once by kg_indicator_set_free().
 */
#include "indicators/indicators_int.h"

#include <arpa/inet.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/random.h>

/* --- the set and its arena -------------------------------------------------------- */

#define KG_IND_CHUNK_SIZE (64u * 1024u)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

struct kg_indicator_set {
    struct kg_indicator *inds; /* by id */
    struct kg_ind_key *keys;   /* normalised key of inds[id] */
    uint32_t n, cap;
    size_t count[KG_IND_TYPE_COUNT];
    uint64_t seed; /* per set, so hash collisions cannot be planned across sets */

    struct kg_ind_prefix_index v4, v6; /* ADDR and SUBNET */
    struct kg_ind_htab domains;        /* aux = key length */
    struct kg_ind_htab urls;           /* aux = host length */
    struct kg_ind_htab hashes[2];      /* CERT_HASH, JA3; aux unused */
    size_t domain_max_len;             /* longest DOMAIN key: bounds the suffix walk */

    struct arena_chunk *arena;
    struct kg_buf scratch; /* normalised key under construction (control plane) */
    bool finalized;
};

void *kg_ind_set_alloc(struct kg_indicator_set *s, size_t n)
{
    const size_t align = alignof(void *);
    n = (n + align - 1) & ~(align - 1);
    struct arena_chunk *c = s->arena;
    if (!c || c->cap - c->used < n) {
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
            s->arena = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

const char *kg_ind_set_strdup(struct kg_indicator_set *s, const char *p, size_t n)
{
    char *d = kg_ind_set_alloc(s, n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
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
    kg_ind_prefix_init(&s->v4, 4);
    kg_ind_prefix_init(&s->v6, 16);
    kg_buf_init(&s->scratch);
    return s;
}

void kg_indicator_set_free(struct kg_indicator_set *s)
{
    if (!s) return;
    kg_ind_prefix_free(&s->v4);
    kg_ind_prefix_free(&s->v6);
    kg_ind_htab_free(&s->domains);
    kg_ind_htab_free(&s->urls);
    kg_ind_htab_free(&s->hashes[0]);
    kg_ind_htab_free(&s->hashes[1]);
    for (struct arena_chunk *c = s->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    kg_buf_free(&s->scratch);
    free(s->inds);
    free(s->keys);
    free(s);
}

void kg_indicator_set_finalize(struct kg_indicator_set *s)
{
    if (s->finalized) return;
    /* Give back the growth slack; no pointer to an indicator has been handed
     * out yet (matching starts after finalize), so moving them is safe. */
    if (s->n && s->n < s->cap) {
        s->inds = kg_xrealloc(s->inds, s->n * sizeof(*s->inds));
        s->keys = kg_xrealloc(s->keys, s->n * sizeof(*s->keys));
        s->cap = s->n;
    }
    kg_buf_free(&s->scratch);
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

/* --- normalisation -------------------------------------------------------------- */

static inline char lower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Hex digit value + 1, 0 for anything else: a table, because match_hash()
 * decodes 32-40 digits per TLS handshake. */
#define HEXV(c, v) [c] = (v) + 1
static const uint8_t hex_plus1[256] = {
    HEXV('0', 0),  HEXV('1', 1),  HEXV('2', 2),  HEXV('3', 3),  HEXV('4', 4),  HEXV('5', 5),
    HEXV('6', 6),  HEXV('7', 7),  HEXV('8', 8),  HEXV('9', 9),  HEXV('a', 10), HEXV('b', 11),
    HEXV('c', 12), HEXV('d', 13), HEXV('e', 14), HEXV('f', 15), HEXV('A', 10), HEXV('B', 11),
    HEXV('C', 12), HEXV('D', 13), HEXV('E', 14), HEXV('F', 15),
};
#undef HEXV

static inline int hexval(char c)
{
    return (int)hex_plus1[(unsigned char)c] - 1;
}

/* Decodes exactly 2*n hex digits (either case) into n bytes; false if any is
 * not a hex digit. */
static bool hex_decode(uint8_t *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
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

/* A normalised value, ready for the duplicate check and insertion. */
struct norm {
    const uint8_t *key; /* into addr[], digest[] or s->scratch */
    size_t key_len;
    uint32_t aux; /* URL: host length */
    uint8_t addr[16];
    uint8_t digest[20];
    uint8_t family; /* ADDR/SUBNET: 4 or 6 */
    uint8_t plen;   /* ADDR/SUBNET: prefix length */
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
    kg_ind_prefix_mask(out->addr, raw, bits / 8, plen);
    out->plen = (uint8_t)plen;
    out->key = out->addr;
    out->key_len = bits / 8;
    return 0;
}

/* RFC 1035 2.3.4 limits. */
#define KG_IND_DOMAIN_MAX 253
#define KG_IND_LABEL_MAX 63

static int norm_domain(struct kg_indicator_set *s, const char *v, size_t n, struct norm *out,
                       struct kg_err *err)
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
    kg_buf_reset(&s->scratch);
    kg_buf_reserve(&s->scratch, n);
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
        s->scratch.data[i] = lower_ascii((char)c);
    }
    if (label == 0) return kg_err_set(err, KG_ERR_PARSE, "empty label in domain");
    out->key = (const uint8_t *)s->scratch.data;
    out->key_len = n;
    return 0;
}

/* Host with a default ":80" port dropped (the Host header omits it, RFC 9110 7.2). */
static size_t host_drop_default_port(const char *host, size_t n)
{
    if (n > 3 && memcmp(host + n - 3, ":80", 3) == 0) return n - 3;
    return n;
}

static int norm_url(struct kg_indicator_set *s, const char *v, size_t n, struct norm *out, struct kg_err *err)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c == 0x7f)
            return kg_err_set(err, KG_ERR_PARSE, "invalid character 0x%02x in URL", c);
    }
    size_t skip = http_scheme_len(v, n);
    if (!skip) {
        /* Another scheme (RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" /
         * "." ) ":") followed by "//" would load as a host named "ftp:" and
         * never match. A "://" later on, in a query, is fine. */
        size_t i = 0;
        while (i < n && is_scheme_char(v[i]))
            i++;
        if (i > 0 && n - i >= 3 && memcmp(v + i, "://", 3) == 0)
            return kg_err_set(err, KG_ERR_PARSE, "unsupported URL scheme (only http:// and https://)");
    }
    v += skip;
    n -= skip;
    size_t host_len = 0;
    while (host_len < n && v[host_len] != '/' && v[host_len] != '?')
        host_len++;
    const char *path = v + host_len;
    size_t path_len = n - host_len;
    host_len = host_drop_default_port(v, host_len);
    if (host_len == 0) return kg_err_set(err, KG_ERR_PARSE, "URL without a host");
    if (host_len > KG_IND_NAME_MAX) return kg_err_set(err, KG_ERR_PARSE, "URL host too long");

    kg_buf_reset(&s->scratch);
    for (size_t i = 0; i < host_len; i++)
        kg_buf_append_char(&s->scratch, lower_ascii(v[i]));
    /* A request line always carries a path: "evil.com" is "evil.com/" on the
     * wire, and "evil.com?q" is "evil.com/?q". */
    if (path_len == 0 || path[0] == '?') kg_buf_append_char(&s->scratch, '/');
    kg_buf_append(&s->scratch, path, path_len);
    out->key = (const uint8_t *)s->scratch.data;
    out->key_len = s->scratch.len;
    out->aux = (uint32_t)host_len;
    return 0;
}

static int norm_hash(const char *v, size_t n, size_t digest_len, struct norm *out, struct kg_err *err)
{
    if (n != 2 * digest_len)
        return kg_err_set(err, KG_ERR_PARSE, "hash must be %zu hex digits, got %zu characters",
                          2 * digest_len, n);
    if (!hex_decode(out->digest, v, digest_len))
        return kg_err_set(err, KG_ERR_PARSE, "hash contains a non-hex character");
    out->key = out->digest;
    out->key_len = digest_len;
    return 0;
}

static int normalise(struct kg_indicator_set *s, enum kg_ind_type type, const char *v, size_t n,
                     struct norm *out, struct kg_err *err)
{
    memset(out, 0, sizeof(*out));
    if (memchr(v, '\0', n)) return kg_err_set(err, KG_ERR_PARSE, "NUL byte in value");
    switch (type) {
    case KG_IND_ADDR:
        return norm_addr(v, n, false, out, err);
    case KG_IND_SUBNET:
        return norm_addr(v, n, true, out, err);
    case KG_IND_DOMAIN:
        return norm_domain(s, v, n, out, err);
    case KG_IND_URL:
        return norm_url(s, v, n, out, err);
    case KG_IND_CERT_HASH:
        return norm_hash(v, n, 20, out, err);
    case KG_IND_JA3:
        return norm_hash(v, n, 16, out, err);
    default:
        return kg_err_set(err, KG_ERR_INVAL, "unknown indicator type %d", (int)type);
    }
}

/* --- exact-key lookups shared by insertion and matching --------------------------- */

static uint64_t url_hash(const struct kg_indicator_set *s, const char *host, size_t host_len,
                         const char *path, size_t path_len)
{
    return kg_ind_hash(path, path_len, kg_ind_hash(host, host_len, s->seed));
}

static uint32_t find_domain(const struct kg_indicator_set *s, const char *name, size_t len, uint64_t h)
{
    uint32_t pos = kg_ind_htab_start(&s->domains, h);
    for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(&s->domains, h, &pos)) != NULL;) {
        if (sl->aux == len && memcmp(s->keys[sl->id].p, name, len) == 0) return sl->id;
    }
    return KG_IND_NONE;
}

static uint32_t find_url(const struct kg_indicator_set *s, const char *host, size_t host_len,
                         const char *path, size_t path_len)
{
    uint64_t h = url_hash(s, host, host_len, path, path_len);
    uint32_t pos = kg_ind_htab_start(&s->urls, h);
    for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(&s->urls, h, &pos)) != NULL;) {
        const struct kg_ind_key *k = &s->keys[sl->id];
        if (sl->aux == host_len && k->len == host_len + path_len && memcmp(k->p, host, host_len) == 0 &&
            memcmp(k->p + host_len, path, path_len) == 0)
            return sl->id;
    }
    return KG_IND_NONE;
}

static uint32_t find_digest(const struct kg_indicator_set *s, int which, const uint8_t *d, size_t len)
{
    const struct kg_ind_htab *t = &s->hashes[which];
    uint64_t h = kg_ind_hash(d, len, s->seed);
    uint32_t pos = kg_ind_htab_start(t, h);
    for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(t, h, &pos)) != NULL;) {
        if (memcmp(s->keys[sl->id].p, d, len) == 0) return sl->id;
    }
    return KG_IND_NONE;
}

static struct kg_ind_prefix_index *prefix_index(struct kg_indicator_set *s, uint8_t family)
{
    return family == 4 ? &s->v4 : &s->v6;
}

/* The indicator with the same type class and normalised key, or KG_IND_NONE.
 * ADDR and SUBNET share the address index: "1.2.3.4" and "1.2.3.4/32" are
 * the same indicator. */
static uint32_t find_existing(struct kg_indicator_set *s, enum kg_ind_type type, const struct norm *nv)
{
    switch (type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        return kg_ind_prefix_find(prefix_index(s, nv->family), s->keys, nv->key, nv->plen, s->seed);
    case KG_IND_DOMAIN:
        return find_domain(s, (const char *)nv->key, nv->key_len,
                           kg_ind_domain_hash((const char *)nv->key, nv->key_len, s->seed));
    case KG_IND_URL:
        return find_url(s, (const char *)nv->key, nv->aux, (const char *)nv->key + nv->aux,
                        nv->key_len - nv->aux);
    case KG_IND_CERT_HASH:
        return find_digest(s, 0, nv->key, nv->key_len);
    case KG_IND_JA3:
        return find_digest(s, 1, nv->key, nv->key_len);
    default:
        return KG_IND_NONE;
    }
}

/* --- insertion ----------------------------------------------------------------------- */

int kg_ind_set_insert(struct kg_indicator_set *s, const struct kg_ind_input *in,
                      const struct kg_indicator **dup, struct kg_err *err)
{
    if (s->finalized) return kg_err_set(err, KG_ERR_INVAL, "indicator set is finalized");
    if ((unsigned)in->type >= KG_IND_TYPE_COUNT)
        return kg_err_set(err, KG_ERR_INVAL, "unknown indicator type %d", (int)in->type);
    struct norm nv;
    int rc = normalise(s, in->type, in->value, in->value_len, &nv, err);
    if (rc < 0) return rc;
    uint32_t old = find_existing(s, in->type, &nv);
    if (old != KG_IND_NONE) {
        if (dup) *dup = &s->inds[old];
        return 1;
    }
    if (s->n >= KG_IND_NONE - 1) return kg_err_set(err, KG_ERR_FULL, "too many indicators");

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        if (s->cap >= KG_IND_NONE) s->cap = KG_IND_NONE - 1;
        s->inds = kg_xrealloc(s->inds, (size_t)s->cap * sizeof(*s->inds));
        s->keys = kg_xrealloc(s->keys, (size_t)s->cap * sizeof(*s->keys));
    }
    uint32_t id = s->n;
    struct kg_ind_key *k = &s->keys[id];
    uint8_t *kp = kg_ind_set_alloc(s, nv.key_len ? nv.key_len : 1);
    memcpy(kp, nv.key, nv.key_len);
    k->p = kp;
    k->len = (uint32_t)nv.key_len;
    k->aux = nv.aux;

    struct kg_indicator *ind = &s->inds[id];
    memset(ind, 0, sizeof(*ind));
    ind->type = in->type;
    ind->id = id;
    ind->value = kg_ind_set_strdup(s, in->value, in->value_len);
    ind->source = in->source;
    ind->file = in->file;
    ind->line = in->line;
    ind->severity = in->severity;
    ind->nmeta = in->nmeta;
    if (in->nmeta) {
        const char **vals = kg_ind_set_alloc(s, in->nmeta * sizeof(*vals));
        memcpy(vals, in->meta_values, in->nmeta * sizeof(*vals));
        ind->meta_values = vals;
        if (in->meta_keys_shared) {
            ind->meta_keys = in->meta_keys;
        } else {
            const char **keys = kg_ind_set_alloc(s, in->nmeta * sizeof(*keys));
            memcpy(keys, in->meta_keys, in->nmeta * sizeof(*keys));
            ind->meta_keys = keys;
        }
    }

    switch (in->type) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        kg_ind_prefix_insert(prefix_index(s, nv.family), kp, nv.plen, id, s->seed);
        break;
    case KG_IND_DOMAIN:
        kg_ind_htab_insert(&s->domains, kg_ind_domain_hash((const char *)kp, nv.key_len, s->seed), id,
                           (uint32_t)nv.key_len);
        if (nv.key_len > s->domain_max_len) s->domain_max_len = nv.key_len;
        break;
    case KG_IND_URL:
        kg_ind_htab_insert(
            &s->urls, url_hash(s, (const char *)kp, nv.aux, (const char *)kp + nv.aux, nv.key_len - nv.aux),
            id, nv.aux);
        break;
    case KG_IND_CERT_HASH:
    case KG_IND_JA3:
        kg_ind_htab_insert(&s->hashes[in->type == KG_IND_JA3], kg_ind_hash(kp, nv.key_len, s->seed), id, 0);
        break;
    default:
        break;
    }
    s->n++;
    s->count[in->type]++;
    return 0;
}

int kg_indicator_set_add(struct kg_indicator_set *s, enum kg_ind_type type, const char *value,
                         const char *source, struct kg_err *err)
{
    if (!s || !value) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    struct kg_ind_input in = {
        .type = type,
        .value = value,
        .value_len = strlen(value),
        .source = source && *source ? kg_ind_set_strdup(s, source, strlen(source)) : "",
        .file = "",
    };
    int rc = kg_ind_set_insert(s, &in, NULL, err);
    /* A duplicate is not an error: the first one stays, as with feed files. */
    return rc == 1 ? 0 : rc;
}

/* --- matching (worker hot path: no allocation, no writes) ---------------------------- */

const struct kg_indicator *kg_indicator_match_addr(const struct kg_indicator_set *s, uint8_t family,
                                                   const uint8_t *addr)
{
    if (!s || !addr || (family != 4 && family != 6)) return NULL;
    const struct kg_ind_prefix_index *x = family == 4 ? &s->v4 : &s->v6;
    uint32_t id = kg_ind_prefix_lookup(x, s->keys, addr, s->seed);
    return id == KG_IND_NONE ? NULL : &s->inds[id];
}

const struct kg_indicator *kg_indicator_match_domain(const struct kg_indicator_set *s, const char *name,
                                                     size_t len)
{
    if (!s || !name || s->domains.count == 0) return NULL;
    if (len > 0 && name[len - 1] == '.') len--;
    if (len == 0 || len > KG_IND_NAME_MAX) return NULL;

    /* Only the last domain_max_len bytes can be part of a match, plus the
     * byte before them to see whether a label boundary is there: lower-case
     * just that window. */
    char buf[KG_IND_DOMAIN_MAX + 1];
    size_t win = KG_MIN(len, s->domain_max_len + 1);
    const char *src = name + (len - win);
    for (size_t i = 0; i < win; i++)
        buf[i] = lower_ascii(src[i]);

    /* Walk the suffixes that start on a label boundary, shortest first,
     * folding one label into the hash at each step (kg_ind_domain_hash's
     * order). The longest suffix found is the most specific indicator.
     * Walking shortest first costs the same as longest first on a miss,
     * which is the common case, and needs no per-label state. */
    uint32_t best = KG_IND_NONE;
    uint64_t h = s->seed;
    size_t end = win; /* end of the label to fold next, in buf */
    /* DNS names come in presentation form, where a '.' inside a label is
     * written "\." (dissect_parsers.h): such a dot is not a label boundary.
     * Whether a dot is escaped depends on the backslashes before it in the
     * whole name, so they are counted there; names without a backslash
     * (nearly all) skip the count. */
    const bool escapes = memchr(name, '\\', len) != NULL;
    for (size_t i = win; i-- > 0;) {
        /* At i == 0 the suffix is the whole window; if the window is not the
         * whole name it is longer than any indicator and stops the walk. */
        if (i > 0 && buf[i - 1] != '.') continue;
        if (i > 0 && escapes) {
            size_t pos = len - win + i - 1, bs = 0; /* index of the dot in name */
            while (pos > bs && name[pos - bs - 1] == '\\') bs++;
            if (bs % 2) continue;
        }
        size_t suffix_len = win - i;
        if (suffix_len > s->domain_max_len) break;
        h = kg_ind_hash(buf + i, end - i, h);
        uint32_t id = find_domain(s, buf + i, suffix_len, h);
        if (id != KG_IND_NONE) best = id;
        end = i ? i - 1 : 0;
    }
    return best == KG_IND_NONE ? NULL : &s->inds[best];
}

const struct kg_indicator *kg_indicator_match_url(const struct kg_indicator_set *s, const char *host,
                                                  size_t host_len, const char *uri, size_t uri_len)
{
    if (!s || s->urls.count == 0 || (!uri && uri_len)) return NULL;
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
    if (!host) return NULL;
    host_len = host_drop_default_port(host, host_len);
    if (host_len == 0 || host_len > KG_IND_NAME_MAX) return NULL;
    char hbuf[KG_IND_NAME_MAX];
    for (size_t i = 0; i < host_len; i++)
        hbuf[i] = lower_ascii(host[i]);

    /* Mirror norm_url(): a missing path, or a query without one, is "/". */
    char pbuf[KG_IND_NAME_MAX];
    if (uri_len == 0) {
        uri = "/";
        uri_len = 1;
    } else if (uri[0] == '?') {
        if (uri_len >= sizeof(pbuf)) return NULL;
        pbuf[0] = '/';
        memcpy(pbuf + 1, uri, uri_len);
        uri = pbuf;
        uri_len++;
    }
    uint32_t id = find_url(s, hbuf, host_len, uri, uri_len);
    return id == KG_IND_NONE ? NULL : &s->inds[id];
}

const struct kg_indicator *kg_indicator_match_hash(const struct kg_indicator_set *s, enum kg_ind_type type,
                                                   const char *hex, size_t len)
{
    if (!s || !hex) return NULL;
    size_t dlen = type == KG_IND_CERT_HASH ? 20 : type == KG_IND_JA3 ? 16 : 0;
    if (dlen == 0 || len != 2 * dlen) return NULL;
    uint8_t d[20];
    if (!hex_decode(d, hex, dlen)) return NULL;
    uint32_t id = find_digest(s, type == KG_IND_JA3, d, dlen);
    return id == KG_IND_NONE ? NULL : &s->inds[id];
}
