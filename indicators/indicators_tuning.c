/*
 * indicators/indicators_tuning.c — analyst tuning of alerts: suppression,
 * severity overrides and rate thresholds, read from a YAML file that GSOC
 * analysts edit (docs/TUNING.md).
 *
 * Loading: libyaml's event API, the whole file in memory (reader errors come
 * as byte offsets, which need the text to become lines), every error as
 * "file:line: message", nothing half-loaded. Same approach as config/config.c
 * (aliases refused, one document, duplicate keys refused), its own code: the
 * schema is a list of rules, not a key table.
 *
 * Matching (kg_tuning_check), per alert, never allocating:
 *   - rules that name indicators are found through one hash table keyed by
 *     the indicator's canonical value (lower-cased domain without "*." or
 *     trailing dot, masked address + prefix length, decoded hex, ...), so a
 *     suppress list of 100 000 false-positive indicators costs one probe;
 *   - rules that name no indicator (a source range, a place, a feed) are
 *     scanned in order. They are few in practice (tens), each test is a
 *     masked compare or a short string compare, and alerts are rare next to
 *     packets (at most one per flow, indicator and place), so a scan is
 *     cheaper than keeping a prefix trie in step with the rule order that
 *     "first match wins" needs. Both lists are sorted by rule id and walked
 *     merged, so the first matching rule in file order wins.
 *
 * Threads: a struct kg_tuning is built by one control-plane thread and only
 * read afterwards; any number of workers check against it at once. The
 * mutable threshold counters live in struct kg_threshold, one per worker,
 * never shared, so no lock is taken anywhere.
 *
 * Memory: the tuning owns its rules, strings and key table (control plane:
 * allocation failures abort). A threshold table is one fixed array of
 * entries plus a bucket array, allocated by kg_threshold_new() and never
 * grown: least recently used entries are reused when it is full.
 */
#include "indicators/indicators_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <yaml.h>

/* A tuning file is small; the cap keeps a wrong path (a pcap, /dev/zero) from eating memory. */
#define TUNING_FILE_MAX (16u << 20)
/* Longest canonical indicator value a rule may name. An indicator with a
 * longer value cannot equal any rule's, so the check gives up on it early. */
#define TUNING_KEY_MAX 2048
/* Longest scalar accepted anywhere in the file. */
#define TUNING_SCALAR_MAX 8192
#define TUNING_MAX_RULES 1000000u
/* Threshold bounds: counts per window, and a window of at most 30 days. */
#define TUNING_COUNT_MAX 1000000u
#define TUNING_SECONDS_MAX 2592000u
#define THRESHOLD_MAX_ENTRIES (1u << 24)

#define NKINDS 3
static const char *const kind_names[NKINDS] = {"suppress", "severity", "threshold"};

/*
 * The places an alert can be raised at: the `where` of docs/EVENTS.md, as
 * sensor/pipeline.c names them. A rule may also name a protocol ("dns"),
 * which covers every place under it. Kept here rather than taken from the
 * pipeline so that a typo in a tuning file is an error at load time, not a
 * rule that silently never matches; a new place in the pipeline needs a line
 * here (test_tuning checks the list against sensor/pipeline.c's names).
 */
static const char *const known_places[] = {
    "conn.src_ip", "conn.dest_ip", "conn.resolved", "dns.query", "dns.answer", "tls.sni",
    "tls.ja3",     "tls.ja4",      "tls.cert_sha1", "http.host", "http.url",   "http.user_agent",
};

/* --- rules ----------------------------------------------------------------------- */

/* A CIDR block, address masked to plen bits. */
struct tprefix {
    uint8_t family; /* 4 or 6 */
    uint8_t plen;
    uint8_t addr[16];
};

struct trule {
    enum kg_tuning_kind kind;
    uint32_t line;
    char *name;
    uint32_t types;     /* bit (1 << enum kg_ind_type) per allowed type; 0 = any */
    bool has_indicator; /* reached only through the key table */
    uint32_t nwhere, nfeed, ntag, nsrc, ndst;
    char **where, **feed, **tag;
    struct tprefix *src, *dst;
    uint64_t until_us;
    int severity;
    uint32_t count, seconds;
    uint64_t fp; /* fingerprint of the rule's content: the threshold counters' key */
};

/* One canonical indicator value and the rules naming it (ascending ids). */
struct tkey {
    uint64_t hash;
    uint32_t off, len; /* in keytext */
    uint32_t *rules;
    uint32_t nrules, cap;
};

struct idlist {
    uint32_t *v;
    uint32_t n, cap;
};

struct kg_tuning {
    struct trule *rules;
    uint32_t nrules, cap;
    uint32_t nkind[NKINDS];
    struct idlist generic[NKINDS]; /* rules of each kind that name no indicator */
    struct kg_buf keytext;
    struct tkey *keys;
    uint32_t nkeys, capkeys;
    uint32_t nnames; /* keys that are rule names, not indicator values */
    uint32_t *slots; /* key index + 1; 0 = empty */
    uint32_t mask;
};

static void idlist_push(struct idlist *l, uint32_t id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = kg_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = id;
}

static void strv_free(char **v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void rule_free(struct trule *r)
{
    free(r->name);
    strv_free(r->where, r->nwhere);
    strv_free(r->feed, r->nfeed);
    strv_free(r->tag, r->ntag);
    free(r->src);
    free(r->dst);
}

void kg_tuning_free(struct kg_tuning *t)
{
    if (!t) return;
    for (uint32_t i = 0; i < t->nrules; i++)
        rule_free(&t->rules[i]);
    free(t->rules);
    for (int k = 0; k < NKINDS; k++)
        free(t->generic[k].v);
    for (uint32_t i = 0; i < t->nkeys; i++)
        free(t->keys[i].rules);
    free(t->keys);
    free(t->slots);
    kg_buf_free(&t->keytext);
    free(t);
}

/* --- small helpers ------------------------------------------------------------------ */

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool prefix_nocase(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    if (n < k) return false;
    for (size_t i = 0; i < k; i++)
        if (lower(p[i]) != prefix[i]) return false;
    return true;
}

static bool eq_nocase(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t'))
        (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* Levenshtein distance of two short strings, for "did you mean"; SIZE_MAX when too long. */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    enum { M = 64 };
    if (la >= M || lb >= M) return SIZE_MAX;
    size_t row[M + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (lower(a[i - 1]) != lower(b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest of names[] to s within two edits (one per three characters), or NULL. */
static const char *closest(const char *s, size_t n, const char *const *names, size_t count)
{
    size_t best_d = SIZE_MAX, allowed = KG_MIN(n / 3, (size_t)2);
    const char *best = NULL;
    for (size_t i = 0; i < count; i++) {
        size_t d = edit_distance(s, n, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best && best_d > 0 && best_d <= allowed ? best : NULL;
}

/* Quotes untrusted text for a message: at most 60 bytes, control bytes and quotes replaced. */
static const char *shown(char *dst, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    dst[o++] = '\'';
    for (size_t i = 0; i < len && i < 60 && o + 6 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (len > 60 && o + 6 < size) dst[o++] = '.', dst[o++] = '.', dst[o++] = '.';
    dst[o++] = '\'';
    dst[o] = '\0';
    return dst;
}

/* --- canonical indicator values ---------------------------------------------------------
 *
 * A rule's `indicator` and an alert's indicator are compared in the
 * normalised form of docs/INDICATORS.md (Normalisation), so a rule may name
 * an indicator as the feed listed it ("*.Evil.Example.") or as an analyst
 * would write it ("evil.example"). The first byte of a key is its class:
 * the three hex-digest types (CERT_HASH, JA3, FILE_HASH) share one class,
 * and ADDR with SUBNET, because an ADDR is a /32 or /128 SUBNET.
 */
enum { C_ADDR = 'A', C_DOMAIN = 'D', C_URL = 'U', C_HEX = 'H', C_JA4 = 'J', C_UA = 'S' };

static int class_of_type(enum kg_ind_type t)
{
    switch (t) {
    case KG_IND_ADDR:
    case KG_IND_SUBNET:
        return C_ADDR;
    case KG_IND_DOMAIN:
        return C_DOMAIN;
    case KG_IND_URL:
        return C_URL;
    case KG_IND_CERT_HASH:
    case KG_IND_JA3:
    case KG_IND_FILE_HASH:
        return C_HEX;
    case KG_IND_JA4:
        return C_JA4;
    case KG_IND_SOFTWARE:
        return C_UA;
    default:
        return 0;
    }
}

static const char *class_name(int c)
{
    switch (c) {
    case C_ADDR:
        return "an address or CIDR block (ADDR, SUBNET)";
    case C_DOMAIN:
        return "a domain (DOMAIN)";
    case C_URL:
        return "a URL (URL)";
    case C_HEX:
        return "a hash (CERT_HASH, JA3, FILE_HASH)";
    case C_JA4:
        return "a JA4 fingerprint (JA4)";
    default:
        return "a User-Agent (SOFTWARE)";
    }
}

/* Parses "address" or "address/len". On success fills *px (address masked);
 * with strict, host bits set are an error (for `source`/`dest`, where
 * "10.1.2.3/8" is far more likely a slip than a wish). */
static bool parse_cidr(const char *v, size_t n, bool strict, struct tprefix *px, const char **why)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = memchr(v, '/', n);
    size_t alen = slash ? (size_t)(slash - v) : n;
    if (alen == 0 || alen >= INET6_ADDRSTRLEN) {
        *why = "not an IPv4 or IPv6 address";
        return false;
    }
    memcpy(buf, v, alen);
    buf[alen] = '\0';
    uint8_t raw[16] = {0};
    if (memchr(buf, ':', alen)) {
        px->family = 6;
        if (inet_pton(AF_INET6, buf, raw) != 1) {
            *why = "not an IPv4 or IPv6 address";
            return false;
        }
    } else {
        px->family = 4;
        if (inet_pton(AF_INET, buf, raw) != 1) {
            *why = "not an IPv4 or IPv6 address";
            return false;
        }
    }
    unsigned bits = px->family == 4 ? 32 : 128, plen = bits;
    if (slash) {
        const char *d = slash + 1, *end = v + n;
        if (d == end || end - d > 3) {
            *why = px->family == 4 ? "prefix length must be 0 to 32" : "prefix length must be 0 to 128";
            return false;
        }
        plen = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') {
                *why = px->family == 4 ? "prefix length must be 0 to 32" : "prefix length must be 0 to 128";
                return false;
            }
            plen = plen * 10 + (unsigned)(*d - '0');
        }
        if (plen > bits) {
            *why = px->family == 4 ? "prefix length must be 0 to 32" : "prefix length must be 0 to 128";
            return false;
        }
    }
    px->plen = (uint8_t)plen;
    memset(px->addr, 0, sizeof(px->addr));
    kg_ind_prefix_mask(px->addr, raw, px->family == 4 ? 4 : 16, plen);
    if (strict && memcmp(px->addr, raw, px->family == 4 ? 4 : 16) != 0) {
        *why = "host bits set";
        return false;
    }
    return true;
}

/* Hex digest, as 32/40/64 hex digits or "AA:BB:..." pairs: number of bytes, 0 when neither. */
static size_t hex_digest(const char *v, size_t n, char *out)
{
    size_t d = 0;
    if (n > 2 && v[2] == ':') {
        if ((n + 1) % 3) return 0;
        d = (n + 1) / 3;
        for (size_t i = 0; i < d; i++) {
            if ((i + 1 < d && v[3 * i + 2] != ':') || kg_ind_hexval(v[3 * i]) < 0 ||
                kg_ind_hexval(v[3 * i + 1]) < 0)
                return 0;
            if (out) out[2 * i] = lower(v[3 * i]), out[2 * i + 1] = lower(v[3 * i + 1]);
        }
    } else {
        if (n % 2) return 0;
        d = n / 2;
        for (size_t i = 0; i < n; i++) {
            if (kg_ind_hexval(v[i]) < 0) return 0;
            if (out) out[i] = lower(v[i]);
        }
    }
    return (d == 16 || d == 20 || d == 32) ? d : 0;
}

/* Class of a rule's indicator written without a single `type`: the shapes of
 * a plain list (docs/INDICATORS.md), except that a User-Agent needs `type`. */
static int detect_class(const char *v, size_t n)
{
    if (kg_ind_is_ja4(v, n)) return C_JA4;
    if (n >= 3 && memmem(v, n, "://", 3)) return C_URL;
    if (hex_digest(v, n, NULL)) return C_HEX;
    bool v4 = n > 0, v6 = false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '/')) v4 = false;
        if (c == ':') v6 = true;
    }
    if (v6) {
        for (size_t i = 0; i < n; i++)
            if (kg_ind_hexval(v[i]) < 0 && v[i] != ':' && v[i] != '.' && v[i] != '/') v6 = false;
    }
    if (v4 || v6) return C_ADDR;
    if (memchr(v, '/', n)) return C_URL;
    return C_DOMAIN;
}

/*
 * Writes the canonical key of value v for class cls into out (cap bytes).
 * Returns its length, or 0 when v is not a valid value of the class (*why
 * says why) or its key would not fit.
 */
static size_t canon(int cls, const char *v, size_t n, char *out, size_t cap, const char **why)
{
    trim(&v, &n);
    *why = "empty value";
    if (n == 0 || cap < 20) return 0;
    out[0] = (char)cls;
    switch (cls) {
    case C_ADDR: {
        struct tprefix px;
        if (!parse_cidr(v, n, false, &px, why)) return 0;
        out[1] = (char)px.family;
        out[2] = (char)px.plen;
        size_t alen = px.family == 4 ? 4 : 16;
        memcpy(out + 3, px.addr, alen);
        return 3 + alen;
    }
    case C_DOMAIN: {
        if (n >= 2 && v[0] == '*' && v[1] == '.') v += 2, n -= 2;
        if (n > 0 && v[n - 1] == '.') n--;
        if (n == 0) return 0;
        if (n > KG_IND_DOMAIN_MAX) {
            *why = "domain longer than 253 bytes";
            return 0;
        }
        size_t label = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '.') {
                if (label == 0) {
                    *why = "empty label in domain";
                    return 0;
                }
                label = 0;
            } else if (c <= 0x20 || c == 0x7f || strchr("/\\:*@?#", c)) {
                *why = "invalid character in domain";
                return 0;
            } else {
                label++;
            }
            out[1 + i] = lower((char)c);
        }
        if (label == 0) {
            *why = "empty label in domain";
            return 0;
        }
        return 1 + n;
    }
    case C_URL: {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c <= 0x20 || c == 0x7f) {
                *why = "invalid character in URL";
                return 0;
            }
        }
        if (prefix_nocase(v, n, "http://"))
            v += 7, n -= 7;
        else if (prefix_nocase(v, n, "https://"))
            v += 8, n -= 8;
        else {
            /* Another scheme (RFC 3986 3.1) before "://" would read as a host
             * named "ftp:"; a "://" later on, in a query, is fine. */
            size_t i = 0;
            while (i < n && ((lower(v[i]) >= 'a' && lower(v[i]) <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
                             v[i] == '+' || v[i] == '-' || v[i] == '.'))
                i++;
            if (i > 0 && n - i >= 3 && memcmp(v + i, "://", 3) == 0) {
                *why = "unsupported URL scheme (only http:// and https://)";
                return 0;
            }
        }
        size_t hl = 0;
        while (hl < n && v[hl] != '/' && v[hl] != '?')
            hl++;
        const char *path = v + hl;
        size_t plen = n - hl;
        /* The Host header omits a default port (RFC 9110 7.2): so does the index. */
        if (hl > 3 && memcmp(v + hl - 3, ":80", 3) == 0) hl -= 3;
        if (hl == 0) {
            *why = "URL without a host";
            return 0;
        }
        bool slash = plen == 0 || path[0] == '?';
        if (1 + hl + slash + plen > cap) {
            *why = "value too long";
            return 0;
        }
        for (size_t i = 0; i < hl; i++)
            out[1 + i] = lower(v[i]);
        size_t o = 1 + hl;
        if (slash) out[o++] = '/';
        memcpy(out + o, path, plen);
        return o + plen;
    }
    case C_HEX: {
        if (n > 2 * 32 + 31) {
            *why = "not a hash: expected 32, 40 or 64 hex digits";
            return 0;
        }
        size_t d = hex_digest(v, n, out + 1);
        if (!d) *why = "not a hash: expected 32, 40 or 64 hex digits";
        return d ? 1 + 2 * d : 0;
    }
    case C_JA4:
        if (!kg_ind_is_ja4(v, n)) {
            *why = "not a JA4 fingerprint (like t13d1516h2_8daaf6152771_e5627efa2ab1)";
            return 0;
        }
        for (size_t i = 0; i < n; i++)
            out[1 + i] = lower(v[i]);
        return 1 + n;
    case C_UA:
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                *why = "control character in User-Agent";
                return 0;
            }
        }
        if (1 + n > cap) {
            *why = "value too long";
            return 0;
        }
        memcpy(out + 1, v, n);
        return 1 + n;
    default:
        *why = "unknown class";
        return 0;
    }
}

/* --- the key table -------------------------------------------------------------------- */

#define KEY_SEED 0x6b6167616d69ull /* "kagami": keys come from the tuning file and feeds, not traffic */

static uint32_t key_find(const struct kg_tuning *t, const char *k, size_t n, uint64_t h)
{
    if (!t->slots) return KG_IND_NONE;
    for (uint32_t pos = (uint32_t)h & t->mask;; pos = (pos + 1) & t->mask) {
        uint32_t s = t->slots[pos];
        if (s == 0) return KG_IND_NONE;
        const struct tkey *e = &t->keys[s - 1];
        if (e->hash == h && e->len == n && memcmp(t->keytext.data + e->off, k, n) == 0) return s - 1;
    }
}

static void key_grow(struct kg_tuning *t)
{
    uint32_t size = t->slots ? 2 * (t->mask + 1) : 64;
    free(t->slots);
    t->slots = kg_xcalloc(size, sizeof(*t->slots));
    t->mask = size - 1;
    for (uint32_t i = 0; i < t->nkeys; i++) {
        uint32_t pos = (uint32_t)t->keys[i].hash & t->mask;
        while (t->slots[pos])
            pos = (pos + 1) & t->mask;
        t->slots[pos] = i + 1;
    }
}

/* Adds rule id to the rules of key k (ids arrive in ascending order). */
static void key_add(struct kg_tuning *t, const char *k, size_t n, uint32_t id)
{
    uint64_t h = kg_ind_hash(k, n, KEY_SEED);
    uint32_t i = key_find(t, k, n, h);
    if (i == KG_IND_NONE) {
        if (t->nkeys == t->capkeys) {
            t->capkeys = t->capkeys ? 2 * t->capkeys : 16;
            t->keys = kg_xrealloc(t->keys, t->capkeys * sizeof(*t->keys));
        }
        i = t->nkeys++;
        t->keys[i] = (struct tkey){.hash = h, .off = (uint32_t)t->keytext.len, .len = (uint32_t)n};
        kg_buf_append(&t->keytext, k, n);
        /* Load at most 1/2: a miss, the common case, ends within a slot or two. */
        if (!t->slots || 2 * (uint64_t)t->nkeys > t->mask + 1) {
            key_grow(t);
        } else {
            uint32_t pos = (uint32_t)h & t->mask;
            while (t->slots[pos])
                pos = (pos + 1) & t->mask;
            t->slots[pos] = i + 1;
        }
    }
    struct tkey *e = &t->keys[i];
    if (e->nrules && e->rules[e->nrules - 1] == id) return; /* listed twice in one rule */
    if (e->nrules == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 2;
        e->rules = kg_xrealloc(e->rules, e->cap * sizeof(*e->rules));
    }
    e->rules[e->nrules++] = id;
}

/* --- matching ------------------------------------------------------------------------------ */

static bool prefix_match(const struct tprefix *px, uint32_t n, uint8_t family, const uint8_t *a)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct tprefix *p = &px[i];
        if (p->family != family) continue;
        unsigned full = p->plen / 8, rest = p->plen % 8;
        if (memcmp(p->addr, a, full) != 0) continue;
        if (rest && ((a[full] ^ p->addr[full]) & (uint8_t)(0xff00u >> rest))) continue;
        return true;
    }
    return false;
}

static bool place_match(char *const *where, uint32_t n, const char *at)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t k = strlen(where[i]);
        if (strncmp(at, where[i], k) == 0 && (at[k] == '\0' || at[k] == '.')) return true;
    }
    return false;
}

/* True when one comma-separated item of a meta value (blanks around it
 * ignored) equals the tag, ignoring case. "desc" is free text, not labels. */
static bool tag_match(const struct kg_indicator *ind, char *const *tags, uint32_t ntags)
{
    for (uint16_t m = 0; m < ind->nmeta; m++) {
        if (!ind->meta_values || !ind->meta_values[m]) continue;
        if (ind->meta_keys && ind->meta_keys[m] && strcmp(ind->meta_keys[m], "desc") == 0) continue;
        const char *v = ind->meta_values[m];
        while (*v) {
            const char *comma = strchr(v, ',');
            size_t len = comma ? (size_t)(comma - v) : strlen(v);
            const char *item = v;
            size_t ilen = len;
            trim(&item, &ilen);
            for (uint32_t i = 0; i < ntags; i++)
                if (ilen && eq_nocase(item, ilen, tags[i])) return true;
            if (!comma) break;
            v = comma + 1;
        }
    }
    return false;
}

struct alert_ctx {
    const struct kg_indicator *ind;
    const char *where;
    uint8_t family;
    const uint8_t *src, *dst;
    uint64_t now_us;
};

/* Every condition of the rule but `indicator` (the key table answered that). */
static bool rule_match(const struct trule *r, const struct alert_ctx *a)
{
    if (r->until_us && a->now_us && a->now_us >= r->until_us) return false;
    if (r->types && (a->ind->type >= 32 || !(r->types & (1u << a->ind->type)))) return false;
    if (r->nwhere && (!a->where || !place_match(r->where, r->nwhere, a->where))) return false;
    if (r->nsrc && (!a->src || !prefix_match(r->src, r->nsrc, a->family, a->src))) return false;
    if (r->ndst && (!a->dst || !prefix_match(r->dst, r->ndst, a->family, a->dst))) return false;
    if (r->nfeed) {
        const char *s = a->ind->source ? a->ind->source : "";
        bool ok = false;
        for (uint32_t i = 0; i < r->nfeed && !ok; i++)
            ok = strcasecmp(s, r->feed[i]) == 0;
        if (!ok) return false;
    }
    if (r->ntag && !tag_match(a->ind, r->tag, r->ntag)) return false;
    return true;
}

/* First rule of `kind`, in file order, among the rules naming this
 * indicator (ids, ascending) and the rules naming none, that matches. */
static uint32_t first_match(const struct kg_tuning *t, enum kg_tuning_kind kind, const uint32_t *ids,
                            uint32_t nids, const struct alert_ctx *a)
{
    const struct idlist *g = &t->generic[kind];
    uint32_t i = 0, j = 0;
    while (i < nids || j < g->n) {
        uint32_t id;
        if (j >= g->n || (i < nids && ids[i] < g->v[j]))
            id = ids[i++];
        else
            id = g->v[j++];
        const struct trule *r = &t->rules[id];
        if (r->kind == kind && rule_match(r, a)) return id;
    }
    return KG_TUNING_NONE;
}

void kg_tuning_check(const struct kg_tuning *t, const struct kg_indicator *ind, const char *where,
                     uint8_t family, const uint8_t *src, const uint8_t *dst, uint64_t now_us,
                     struct kg_tuning_verdict *out)
{
    *out = (struct kg_tuning_verdict){
        .suppress_rule = KG_TUNING_NONE, .severity_rule = KG_TUNING_NONE, .threshold_rule = KG_TUNING_NONE};
    if (!t || !ind || t->nrules == 0) return;
    if (family != 4 && family != 6) src = dst = NULL;
    struct alert_ctx a = {
        .ind = ind, .where = where, .family = family, .src = src, .dst = dst, .now_us = now_us};

    const uint32_t *ids = NULL;
    uint32_t nids = 0;
    if (t->nkeys > t->nnames && ind->value) {
        char key[TUNING_KEY_MAX];
        const char *why;
        int cls = class_of_type(ind->type);
        size_t n = cls ? canon(cls, ind->value, strlen(ind->value), key, sizeof(key), &why) : 0;
        if (n) {
            uint32_t k = key_find(t, key, n, kg_ind_hash(key, n, KEY_SEED));
            if (k != KG_IND_NONE) ids = t->keys[k].rules, nids = t->keys[k].nrules;
        }
    }
    if (t->nkind[KG_TUNING_SUPPRESS]) {
        out->suppress_rule = first_match(t, KG_TUNING_SUPPRESS, ids, nids, &a);
        if (out->suppress_rule != KG_TUNING_NONE) {
            out->suppress = true;
            out->rule = t->rules[out->suppress_rule].name;
            return;
        }
    }
    if (t->nkind[KG_TUNING_SEVERITY]) {
        out->severity_rule = first_match(t, KG_TUNING_SEVERITY, ids, nids, &a);
        if (out->severity_rule != KG_TUNING_NONE) out->severity = t->rules[out->severity_rule].severity;
    }
    if (t->nkind[KG_TUNING_THRESHOLD])
        out->threshold_rule = first_match(t, KG_TUNING_THRESHOLD, ids, nids, &a);
}

uint32_t kg_tuning_rule_count(const struct kg_tuning *t)
{
    return t ? t->nrules : 0;
}

bool kg_tuning_rule_info(const struct kg_tuning *t, uint32_t rule, struct kg_tuning_rule_info *out)
{
    if (!t || rule >= t->nrules) return false;
    const struct trule *r = &t->rules[rule];
    *out = (struct kg_tuning_rule_info){.kind = r->kind,
                                        .name = r->name,
                                        .line = r->line,
                                        .severity = r->severity,
                                        .count = r->count,
                                        .seconds = r->seconds,
                                        .until_us = r->until_us};
    return true;
}

/* --- YAML loading ------------------------------------------------------------------------ */

struct loader {
    struct kg_yaml y;
    struct kg_tuning *t;
};

/* "got ..." text for a node: the scalar quoted, else its kind. */
static const char *got_text(char *buf, size_t size, const yaml_event_t *ev)
{
    if (ev->type == YAML_SCALAR_EVENT && !kg_yaml_is_null(ev))
        return shown(buf, size, (const char *)ev->data.scalar.value, ev->data.scalar.length);
    return kg_yaml_kind(ev);
}

/* --- one rule ------------------------------------------------------------------------------- */

enum tfield {
    F_INDICATOR,
    F_TYPE,
    F_SOURCE,
    F_DEST,
    F_WHERE,
    F_FEED_SOURCE,
    F_TAG,
    F_NAME,
    F_COMMENT,
    F_UNTIL,
    F_SEVERITY,
    F_COUNT,
    F_SECONDS,
    F_COUNT_OF_FIELDS
};

#define K_ALL 0x7u
#define K_SEV (1u << KG_TUNING_SEVERITY)
#define K_THR (1u << KG_TUNING_THRESHOLD)

static const struct {
    const char *name;
    bool list;      /* a list of values, any of which may match */
    bool condition; /* restricts which alerts the rule applies to */
    unsigned kinds;
} fields[F_COUNT_OF_FIELDS] = {
    [F_INDICATOR] = {"indicator", true, true, K_ALL},
    [F_TYPE] = {"type", true, true, K_ALL},
    [F_SOURCE] = {"source", true, true, K_ALL},
    [F_DEST] = {"dest", true, true, K_ALL},
    [F_WHERE] = {"where", true, true, K_ALL},
    [F_FEED_SOURCE] = {"feed_source", true, true, K_ALL},
    [F_TAG] = {"tag", true, true, K_ALL},
    [F_NAME] = {"name", false, false, K_ALL},
    [F_COMMENT] = {"comment", false, false, K_ALL},
    [F_UNTIL] = {"until", false, false, K_ALL},
    [F_SEVERITY] = {"severity", false, false, K_SEV},
    [F_COUNT] = {"count", false, false, K_THR},
    [F_SECONDS] = {"seconds", false, false, K_THR},
};

/* A rule being read: the rule, and its indicator values until the types are known. */
struct rule_build {
    struct trule r;
    const char *label;                    /* "suppress[2]" */
    size_t field_line[F_COUNT_OF_FIELDS]; /* 1-based line a key was given on; 0 = not given */
    struct {
        char *v;
        size_t n, line0;
    } * inds;
    uint32_t ninds, capinds;
};

static void strv_push(char ***v, uint32_t *n, const char *s, size_t len)
{
    *v = kg_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = kg_xstrndup(s, len);
}

static void prefix_push(struct tprefix **v, uint32_t *n, const struct tprefix *p)
{
    *v = kg_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = *p;
}

/* Decimal digits only, like the configuration (no sign, no leading zero). */
static bool parse_u32(const char *s, size_t n, uint32_t *out)
{
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0')) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_type(const char *s, size_t n, enum kg_ind_type *out)
{
    if (prefix_nocase(s, n, "intel::")) s += 7, n -= 7;
    for (int t = 0; t < KG_IND_TYPE_COUNT; t++) {
        if (eq_nocase(s, n, kg_ind_type_name((enum kg_ind_type)t))) {
            *out = (enum kg_ind_type)t;
            return true;
        }
    }
    return false;
}

static bool place_known(const char *s, size_t n)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(known_places); i++) {
        const char *p = known_places[i];
        size_t k = strlen(p);
        if (n == k && memcmp(s, p, n) == 0) return true;
        /* A protocol prefix: "dns" for "dns.query". */
        if (n < k && memcmp(s, p, n) == 0 && p[n] == '.') return true;
    }
    return false;
}

/* "conn.src_ip, ..., http.user_agent, or conn, dns, tls, http": the places,
 * then the protocols they fall under, for an unknown-place message. */
static void places_list(char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < KG_ARRAY_LEN(known_places) && o < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", known_places[i]);
        o += w > 0 ? (size_t)w : 0;
    }
    for (size_t i = 0, shown_n = 0; i < KG_ARRAY_LEN(known_places) && o < size; i++) {
        size_t k = strcspn(known_places[i], ".");
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strncmp(known_places[j], known_places[i], k) == 0 && known_places[j][k] == '.';
        if (seen) continue;
        int w = snprintf(buf + o, size - o, "%s%.*s", shown_n++ ? ", " : ", or ", (int)k, known_places[i]);
        o += w > 0 ? (size_t)w : 0;
    }
}

/* Applies one value of a field; line0 is its (0-based) line. */
static int apply_value(struct loader *ld, struct rule_build *b, enum tfield f, const char *s, size_t n,
                       size_t line0)
{
    char q[96];
    struct trule *r = &b->r;
    const char *fname = fields[f].name;
    /* Fingerprint: every field but the name and comment, so a renamed or
     * re-commented rule keeps its threshold counters, a changed one does not. */
    if (f != F_NAME && f != F_COMMENT) {
        r->fp = kg_fnv1a64(fname, strlen(fname) + 1, r->fp);
        r->fp = kg_fnv1a64(s, n, r->fp);
        r->fp = kg_fnv1a64("", 1, r->fp);
    }
    if (memchr(s, '\0', n))
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: %s: values must not contain NUL bytes",
                             b->label, fname);
    if (n > TUNING_SCALAR_MAX)
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: %s: value longer than %u bytes", b->label,
                             fname, TUNING_SCALAR_MAX);
    if (n == 0 && f != F_COMMENT)
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: %s: expected a value, got ''", b->label,
                             fname);
    switch (f) {
    case F_INDICATOR: {
        if (b->ninds == b->capinds) {
            b->capinds = b->capinds ? 2 * b->capinds : 4;
            b->inds = kg_xrealloc(b->inds, b->capinds * sizeof(*b->inds));
        }
        b->inds[b->ninds].v = kg_xstrndup(s, n);
        b->inds[b->ninds].n = n;
        b->inds[b->ninds++].line0 = line0;
        r->has_indicator = true;
        return 0;
    }
    case F_TYPE: {
        enum kg_ind_type ty;
        if (!parse_type(s, n, &ty)) {
            const char *names[KG_IND_TYPE_COUNT];
            for (int i = 0; i < KG_IND_TYPE_COUNT; i++)
                names[i] = kg_ind_type_name((enum kg_ind_type)i);
            const char *hint = closest(s, n, names, KG_IND_TYPE_COUNT);
            if (hint)
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                     "%s: type: unknown indicator type %s (did you mean '%s'?)", b->label,
                                     shown(q, sizeof(q), s, n), hint);
            return kg_yaml_error(
                &ld->y, KG_ERR_INVAL, line0,
                "%s: type: unknown indicator type %s (expected ADDR, SUBNET, DOMAIN, URL, CERT_HASH, "
                "JA3, JA4, FILE_HASH or SOFTWARE)",
                b->label, shown(q, sizeof(q), s, n));
        }
        r->types |= 1u << ty;
        return 0;
    }
    case F_SOURCE:
    case F_DEST: {
        struct tprefix px;
        const char *why;
        if (!parse_cidr(s, n, true, &px, &why)) {
            if (strcmp(why, "host bits set") == 0) {
                char a[INET6_ADDRSTRLEN];
                inet_ntop(px.family == 4 ? AF_INET : AF_INET6, px.addr, a, sizeof(a));
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                     "%s: %s: %s: host bits set (did you mean %s/%u?)", b->label, fname,
                                     shown(q, sizeof(q), s, n), a, px.plen);
            }
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: %s: %s: %s", b->label, fname,
                                 shown(q, sizeof(q), s, n), why);
        }
        if (f == F_SOURCE)
            prefix_push(&r->src, &r->nsrc, &px);
        else
            prefix_push(&r->dst, &r->ndst, &px);
        return 0;
    }
    case F_WHERE: {
        if (!place_known(s, n)) {
            const char *hint = closest(s, n, known_places, KG_ARRAY_LEN(known_places));
            if (hint)
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                     "%s: where: unknown place %s (did you mean '%s'?)", b->label,
                                     shown(q, sizeof(q), s, n), hint);
            char list[320];
            places_list(list, sizeof(list));
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: where: unknown place %s (expected %s)",
                                 b->label, shown(q, sizeof(q), s, n), list);
        }
        strv_push(&r->where, &r->nwhere, s, n);
        return 0;
    }
    case F_FEED_SOURCE:
        strv_push(&r->feed, &r->nfeed, s, n);
        return 0;
    case F_TAG:
        strv_push(&r->tag, &r->ntag, s, n);
        return 0;
    case F_NAME:
        free(r->name);
        r->name = kg_xstrndup(s, n);
        return 0;
    case F_COMMENT:
        return 0;
    case F_UNTIL:
        if (!kg_ind_parse_time(s, n, &r->until_us) || r->until_us == 0)
            return kg_yaml_error(
                &ld->y, KG_ERR_INVAL, line0,
                "%s: until: expected a date or time (2025-06-30, 2025-06-30T18:00:00Z), got %s", b->label,
                shown(q, sizeof(q), s, n));
        return 0;
    case F_SEVERITY: {
        static const char *const words[] = {"high", "medium", "low"};
        for (int i = 0; i < 3; i++) {
            if ((n == 1 && s[0] == '1' + i) || eq_nocase(s, n, words[i])) {
                r->severity = i + 1;
                return 0;
            }
        }
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                             "%s: severity: expected 1 (high), 2 (medium) or 3 (low), got %s", b->label,
                             shown(q, sizeof(q), s, n));
    }
    case F_COUNT:
        if (!parse_u32(s, n, &r->count) || r->count < 1 || r->count > TUNING_COUNT_MAX)
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                 "%s: count: expected an integer from 1 to %u, got %s", b->label,
                                 TUNING_COUNT_MAX, shown(q, sizeof(q), s, n));
        return 0;
    case F_SECONDS:
        if (!parse_u32(s, n, &r->seconds) || r->seconds < 1 || r->seconds > TUNING_SECONDS_MAX)
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                 "%s: seconds: expected an integer from 1 to %u, got %s", b->label,
                                 TUNING_SECONDS_MAX, shown(q, sizeof(q), s, n));
        return 0;
    case F_COUNT_OF_FIELDS:
        break;
    }
    return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: internal error: field %d", b->label, (int)f);
}

/* What a key of this rule kind may be, for an unknown-key message. */
static void list_fields(char *buf, size_t size, enum kg_tuning_kind kind)
{
    size_t o = 0;
    buf[0] = '\0';
    unsigned bit = 1u << kind;
    size_t total = 0, i = 0;
    for (int f = 0; f < F_COUNT_OF_FIELDS; f++)
        total += (fields[f].kinds & bit) != 0;
    for (int f = 0; f < F_COUNT_OF_FIELDS && o < size; f++) {
        if (!(fields[f].kinds & bit)) continue;
        const char *sep = i == 0 ? "" : (i + 1 == total ? " or " : ", ");
        int w = snprintf(buf + o, size - o, "%s%s", sep, fields[f].name);
        if (w < 0) return;
        o += (size_t)w;
        i++;
    }
}

/* After the rule's mapping: required fields, indicators canonicalised (now
 * that the types are known), and the rule added to the tuning. */
static int finish_rule(struct loader *ld, struct rule_build *b, size_t line0)
{
    struct trule *r = &b->r;
    struct kg_tuning *t = ld->t;
    if (r->kind == KG_TUNING_SEVERITY && !b->field_line[F_SEVERITY])
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: missing 'severity'", b->label);
    if (r->kind == KG_TUNING_THRESHOLD && !b->field_line[F_COUNT])
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: missing 'count'", b->label);
    if (r->kind == KG_TUNING_THRESHOLD && !b->field_line[F_SECONDS])
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s: missing 'seconds'", b->label);
    bool any_condition = false;
    for (int f = 0; f < F_COUNT_OF_FIELDS; f++)
        any_condition |= fields[f].condition && b->field_line[f];
    /* A catch-all severity or threshold rule is a legitimate last entry; a
     * catch-all suppression silences the sensor, which nobody means. */
    if (r->kind == KG_TUNING_SUPPRESS && !any_condition)
        return kg_yaml_error(
            &ld->y, KG_ERR_INVAL, line0,
            "%s: a suppress rule needs at least one condition (indicator, type, source, dest, where, "
            "feed_source or tag): without one it would suppress every alert",
            b->label);
    if (t->nrules >= TUNING_MAX_RULES)
        return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "too many rules (at most %u)", TUNING_MAX_RULES);
    /* Names are looked up in the key table too, as class 'N' (no indicator
     * class has that byte), so a file of many named rules loads in linear time. */
    struct kg_buf namekey;
    kg_buf_init(&namekey);
    if (r->name) {
        char q[96];
        size_t nl = strlen(r->name);
        if (strchr(r->name, '['))
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, b->field_line[F_NAME] - 1,
                                 "%s: name %s: '[' is kept for the default names (like suppress[2])",
                                 b->label, shown(q, sizeof(q), r->name, nl));
        kg_buf_append_char(&namekey, 'N');
        kg_buf_append(&namekey, r->name, nl);
        uint32_t k = key_find(t, namekey.data, namekey.len, kg_ind_hash(namekey.data, namekey.len, KEY_SEED));
        if (k != KG_IND_NONE) {
            kg_buf_free(&namekey);
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, b->field_line[F_NAME] - 1,
                                 "%s: name %s is already used by the rule on line %u", b->label,
                                 shown(q, sizeof(q), r->name, nl), t->rules[t->keys[k].rules[0]].line);
        }
    }

    /* The class an indicator value is read as: its type's when the rule
     * names exactly one type; otherwise its shape's, which must then be
     * the class of one of the named types, if any. */
    uint32_t id = t->nrules;
    int single = 0;
    if (r->types && !(r->types & (r->types - 1)))
        single = class_of_type((enum kg_ind_type)__builtin_ctz(r->types));
    char key[TUNING_KEY_MAX];
    size_t *klen = b->ninds ? kg_xcalloc(b->ninds, sizeof(*klen)) : NULL;
    struct kg_buf keys;
    kg_buf_init(&keys);
    for (uint32_t i = 0; i < b->ninds; i++) {
        char q[96];
        const char *v = b->inds[i].v, *why = "";
        size_t n = b->inds[i].n;
        int cls = single ? single : detect_class(v, n);
        if (!single && r->types) {
            bool ok = false;
            for (int ty = 0; ty < KG_IND_TYPE_COUNT; ty++)
                ok |= (r->types & (1u << ty)) && class_of_type((enum kg_ind_type)ty) == cls;
            if (!ok) {
                free(klen);
                kg_buf_free(&keys);
                kg_buf_free(&namekey);
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, b->inds[i].line0,
                                     "%s: indicator %s looks like %s, which none of the rule's types is",
                                     b->label, shown(q, sizeof(q), v, n), class_name(cls));
            }
        }
        size_t kl = canon(cls, v, n, key, sizeof(key), &why);
        if (!kl) {
            free(klen);
            kg_buf_free(&keys);
            kg_buf_free(&namekey);
            if (strcmp(why, "value too long") == 0 || n >= sizeof(key))
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, b->inds[i].line0,
                                     "%s: indicator %s: longer than %d bytes", b->label,
                                     shown(q, sizeof(q), v, n), TUNING_KEY_MAX - 2);
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, b->inds[i].line0, "%s: indicator %s is not %s: %s",
                                 b->label, shown(q, sizeof(q), v, n), class_name(cls), why);
        }
        kg_buf_append(&keys, key, kl);
        klen[i] = kl;
    }
    /* All checks passed: from here on nothing fails. */
    if (namekey.len) {
        key_add(t, namekey.data, namekey.len, id);
        t->nnames++;
    } else {
        r->name = kg_xstrdup(b->label);
    }
    kg_buf_free(&namekey);
    r->line = (uint32_t)line0 + 1;
    for (uint32_t i = 0, off = 0; i < b->ninds; off += (uint32_t)klen[i], i++)
        key_add(t, keys.data + off, klen[i], id);
    free(klen);
    kg_buf_free(&keys);
    if (!r->has_indicator) idlist_push(&t->generic[r->kind], id);
    if (t->nrules == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->rules = kg_xrealloc(t->rules, t->cap * sizeof(*t->rules));
    }
    t->rules[t->nrules++] = *r;
    t->nkind[r->kind]++;
    memset(r, 0, sizeof(*r)); /* ownership moved to t */
    if (t->rules[id].until_us && t->rules[id].until_us <= kg_realtime_us())
        kg_log(KG_LOG_WARN, "indicators", "%s:%u: %s: its 'until' has passed: the rule no longer applies",
               ld->y.path, t->rules[id].line, t->rules[id].name);
    return 0;
}

static void build_free(struct rule_build *b)
{
    rule_free(&b->r);
    for (uint32_t i = 0; i < b->ninds; i++)
        free(b->inds[i].v);
    free(b->inds);
}

/* One rule: a mapping of fields. Consumes ev, the mapping's start. */
static int load_rule(struct loader *ld, enum kg_tuning_kind kind, uint32_t index, yaml_event_t *ev)
{
    char label[48], q[96];
    snprintf(label, sizeof(label), "%s[%u]", kind_names[kind], index);
    size_t line0 = ev->start_mark.line;
    if (ev->type != YAML_MAPPING_START_EVENT) {
        int rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                               "%s: expected a rule (a mapping such as {indicator: evil.example}), got %s",
                               label, got_text(q, sizeof(q), ev));
        yaml_event_delete(ev);
        return rc;
    }
    yaml_event_delete(ev);
    struct rule_build b = {.r = {.kind = kind, .fp = 0xcbf29ce484222325ull ^ (uint64_t)kind}, .label = label};
    int rc = 0;
    for (;;) {
        yaml_event_t kev, vev;
        if ((rc = kg_yaml_next(&ld->y, &kev)) != 0) break;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            rc = finish_rule(ld, &b, line0);
            break;
        }
        size_t kline0 = kev.start_mark.line;
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, kline0, "%s: keys must be names, got %s", label,
                               got_text(q, sizeof(q), &kev));
            yaml_event_delete(&kev);
            break;
        }
        const char *name = (const char *)kev.data.scalar.value;
        size_t nlen = kev.data.scalar.length;
        int f = -1;
        for (int i = 0; i < F_COUNT_OF_FIELDS; i++)
            if ((fields[i].kinds & (1u << kind)) && strlen(fields[i].name) == nlen &&
                memcmp(fields[i].name, name, nlen) == 0)
                f = i;
        if (f < 0) {
            const char *names[F_COUNT_OF_FIELDS];
            size_t nn = 0;
            for (int i = 0; i < F_COUNT_OF_FIELDS; i++)
                if (fields[i].kinds & (1u << kind)) names[nn++] = fields[i].name;
            const char *hint = closest(name, nlen, names, nn);
            bool elsewhere = false;
            for (int i = 0; i < F_COUNT_OF_FIELDS; i++)
                elsewhere |= strlen(fields[i].name) == nlen && memcmp(fields[i].name, name, nlen) == 0;
            char list[256];
            list_fields(list, sizeof(list), kind);
            if (elsewhere)
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, kline0,
                                   "%s: key %s does not belong in a %s rule (expected %s)", label,
                                   shown(q, sizeof(q), name, nlen), kind_names[kind], list);
            else if (hint)
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, kline0, "%s: unknown key %s (did you mean '%s'?)",
                                   label, shown(q, sizeof(q), name, nlen), hint);
            else
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, kline0, "%s: unknown key %s (expected %s)", label,
                                   shown(q, sizeof(q), name, nlen), list);
            yaml_event_delete(&kev);
            break;
        }
        yaml_event_delete(&kev);
        if (b.field_line[f]) {
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, kline0, "%s: duplicate key '%s' (first on line %zu)",
                               label, fields[f].name, b.field_line[f]);
            break;
        }
        b.field_line[f] = kline0 + 1;
        if ((rc = kg_yaml_next(&ld->y, &vev)) != 0) break;
        if (vev.type == YAML_SCALAR_EVENT && !kg_yaml_is_null(&vev)) {
            rc = apply_value(ld, &b, (enum tfield)f, (const char *)vev.data.scalar.value,
                             vev.data.scalar.length, vev.start_mark.line);
            yaml_event_delete(&vev);
            if (rc) break;
            continue;
        }
        if (vev.type != YAML_SEQUENCE_START_EVENT || !fields[f].list) {
            /* "comment:" with nothing after it is an empty comment, not an error. */
            if (f == F_COMMENT && kg_yaml_is_null(&vev)) {
                yaml_event_delete(&vev);
                continue;
            }
            rc =
                kg_yaml_error(&ld->y, KG_ERR_INVAL, vev.start_mark.line, "%s: %s: expected %s, got %s", label,
                              fields[f].name, fields[f].list ? "a value or a list of values" : "a value",
                              got_text(q, sizeof(q), &vev));
            yaml_event_delete(&vev);
            break;
        }
        size_t lline0 = vev.start_mark.line;
        yaml_event_delete(&vev);
        uint32_t items = 0;
        for (;;) {
            yaml_event_t item;
            if ((rc = kg_yaml_next(&ld->y, &item)) != 0) break;
            if (item.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&item);
                if (items == 0)
                    rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, lline0,
                                       "%s: %s: empty list (leave the key out instead)", label,
                                       fields[f].name);
                break;
            }
            if (item.type != YAML_SCALAR_EVENT || kg_yaml_is_null(&item)) {
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, item.start_mark.line,
                                   "%s: %s: expected a value, got %s", label, fields[f].name,
                                   got_text(q, sizeof(q), &item));
                yaml_event_delete(&item);
                break;
            }
            items++;
            rc = apply_value(ld, &b, (enum tfield)f, (const char *)item.data.scalar.value,
                             item.data.scalar.length, item.start_mark.line);
            yaml_event_delete(&item);
            if (rc) break;
        }
        if (rc) break;
    }
    build_free(&b);
    return rc;
}

/* A section: a list of rules, or null (every rule commented out). Consumes ev. */
static int load_section(struct loader *ld, enum kg_tuning_kind kind, yaml_event_t *ev)
{
    char q[96];
    if (kg_yaml_is_null(ev)) {
        yaml_event_delete(ev);
        return 0;
    }
    if (ev->type != YAML_SEQUENCE_START_EVENT) {
        int rc =
            kg_yaml_error(&ld->y, KG_ERR_INVAL, ev->start_mark.line, "%s: expected a list of rules, got %s",
                          kind_names[kind], got_text(q, sizeof(q), ev));
        yaml_event_delete(ev);
        return rc;
    }
    yaml_event_delete(ev);
    for (uint32_t index = 1;; index++) {
        yaml_event_t item;
        int rc = kg_yaml_next(&ld->y, &item);
        if (rc) return rc;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            return 0;
        }
        if ((rc = load_rule(ld, kind, index, &item)) != 0) return rc;
    }
}

static int load_top(struct loader *ld, yaml_event_t *ev)
{
    char q[96];
    if (kg_yaml_is_null(ev)) {
        yaml_event_delete(ev);
        return 0;
    }
    if (ev->type != YAML_MAPPING_START_EVENT) {
        int rc = kg_yaml_error(
            &ld->y, KG_ERR_INVAL, ev->start_mark.line,
            "expected a mapping of suppress, severity and threshold lists at the top level, got %s",
            got_text(q, sizeof(q), ev));
        yaml_event_delete(ev);
        return rc;
    }
    yaml_event_delete(ev);
    size_t seen[NKINDS] = {0};
    for (;;) {
        yaml_event_t kev, vev;
        int rc = kg_yaml_next(&ld->y, &kev);
        if (rc) return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        size_t line0 = kev.start_mark.line;
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "keys must be names, got %s",
                               got_text(q, sizeof(q), &kev));
            yaml_event_delete(&kev);
            return rc;
        }
        const char *name = (const char *)kev.data.scalar.value;
        size_t nlen = kev.data.scalar.length;
        int kind = -1;
        for (int k = 0; k < NKINDS; k++)
            if (strlen(kind_names[k]) == nlen && memcmp(kind_names[k], name, nlen) == 0) kind = k;
        if (kind < 0) {
            const char *hint = closest(name, nlen, kind_names, NKINDS);
            if (hint)
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "unknown section %s (did you mean '%s'?)",
                                   shown(q, sizeof(q), name, nlen), hint);
            else
                rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                   "unknown section %s (expected suppress, severity or threshold)",
                                   shown(q, sizeof(q), name, nlen));
            yaml_event_delete(&kev);
            return rc;
        }
        yaml_event_delete(&kev);
        if (seen[kind])
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "duplicate section '%s' (first on line %zu)",
                                 kind_names[kind], seen[kind]);
        seen[kind] = line0 + 1;
        if ((rc = kg_yaml_next(&ld->y, &vev)) != 0) return rc;
        if ((rc = load_section(ld, (enum kg_tuning_kind)kind, &vev)) != 0) return rc;
    }
}

/* stream-start, at most one document, stream-end. */
static int load_stream(struct loader *ld)
{
    yaml_event_t ev;
    int rc;
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc; /* stream start */
    yaml_event_delete(&ev);
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty, or only comments */
        yaml_event_delete(&ev);
        return 0;
    }
    yaml_event_delete(&ev); /* document start */
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if ((rc = load_top(ld, &ev)) != 0) return rc;
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc; /* document end */
    yaml_event_delete(&ev);
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = kg_yaml_error(&ld->y, KG_ERR_PARSE, ev.start_mark.line, "only one YAML document is allowed");
    yaml_event_delete(&ev);
    return rc;
}

struct kg_tuning *kg_tuning_load_buffer(const char *name, const char *data, size_t len, struct kg_err *err)
{
    if (!name) name = "(tuning)";
    if (!data && len) {
        kg_err_set(err, KG_ERR_INVAL, "%s: no data", name);
        return NULL;
    }
    if (len > TUNING_FILE_MAX) {
        kg_err_set(err, KG_ERR_INVAL, "%s: too large for a tuning file (over %u MiB)", name,
                   TUNING_FILE_MAX >> 20);
        return NULL;
    }
    struct loader *ld = kg_xcalloc(1, sizeof(*ld));
    ld->t = kg_xcalloc(1, sizeof(*ld->t));
    kg_buf_init(&ld->t->keytext);
    kg_yaml_open(&ld->y, name, data, len, err);
    int rc = load_stream(ld);
    kg_yaml_close(&ld->y);
    struct kg_tuning *t = ld->t;
    free(ld);
    if (rc) {
        kg_tuning_free(t);
        return NULL;
    }
    return t;
}

struct kg_tuning *kg_tuning_load(const char *path, struct kg_err *err)
{
    if (!path) {
        kg_err_set(err, KG_ERR_INVAL, "no tuning file given");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror(EISDIR));
        return NULL;
    }
    struct kg_buf text;
    kg_buf_init(&text);
    FILE *f = fopen(path, "rb");
    if (!f) {
        kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Not st_size: a pipe or /dev/fd/N has none. */
    for (;;) {
        kg_buf_reserve(&text, 4096);
        size_t n = fread(text.data + text.len, 1, text.cap - text.len - 1, f);
        text.len += n;
        if (text.len > TUNING_FILE_MAX) {
            fclose(f);
            kg_buf_free(&text);
            kg_err_set(err, KG_ERR_IO, "%s: too large for a tuning file (over %u MiB)", path,
                       TUNING_FILE_MAX >> 20);
            return NULL;
        }
        if (n == 0) break;
    }
    int bad = ferror(f), saved = errno;
    fclose(f);
    if (bad) {
        kg_buf_free(&text);
        kg_err_set(err, KG_ERR_IO, "%s: cannot read: %s", path, strerror(saved));
        return NULL;
    }
    struct kg_tuning *t = kg_tuning_load_buffer(path, text.data, text.len, err);
    kg_buf_free(&text);
    if (t)
        kg_log(KG_LOG_INFO, "indicators",
               "%s: %u suppress, %u severity and %u threshold rules (%u indicator values)", path,
               t->nkind[KG_TUNING_SUPPRESS], t->nkind[KG_TUNING_SEVERITY], t->nkind[KG_TUNING_THRESHOLD],
               t->nkeys - t->nnames);
    return t;
}

/* --- thresholds: per-worker counters ------------------------------------------------------- */

#define TH_NIL UINT32_MAX

struct th_entry {
    uint64_t id;     /* hash of (rule fingerprint, indicator type and value) */
    uint64_t end_us; /* the current window ends here */
    uint32_t count;  /* alerts let through in the window */
    uint32_t next;   /* bucket chain */
    uint32_t prev_lru, next_lru;
    uint8_t family; /* 0: no address */
    uint8_t addr[16];
};

struct kg_threshold {
    struct th_entry *e;
    uint32_t max, used;
    uint32_t *buckets; /* entry index, TH_NIL = empty */
    uint32_t bmask;
    uint32_t head, tail; /* LRU: head most recent */
    uint64_t seed;       /* random: source addresses come from traffic */
    uint64_t evictions, evictions_active;
};

struct kg_threshold *kg_threshold_new(uint32_t max_entries, struct kg_err *err)
{
    if (max_entries == 0 || max_entries > THRESHOLD_MAX_ENTRIES) {
        kg_err_set(err, KG_ERR_INVAL, "threshold table size %u out of range (1 to %u)", max_entries,
                   THRESHOLD_MAX_ENTRIES);
        return NULL;
    }
    struct kg_threshold *th = kg_xcalloc(1, sizeof(*th));
    th->max = max_entries;
    /* calloc: pages of entries are only touched when used. */
    th->e = kg_xcalloc(max_entries, sizeof(*th->e));
    uint32_t nb = 1;
    while (nb < max_entries)
        nb <<= 1;
    th->buckets = kg_xmalloc((size_t)nb * sizeof(*th->buckets));
    memset(th->buckets, 0xff, (size_t)nb * sizeof(*th->buckets));
    th->bmask = nb - 1;
    th->head = th->tail = TH_NIL;
    if (getrandom(&th->seed, sizeof(th->seed), GRND_NONBLOCK) != (ssize_t)sizeof(th->seed))
        th->seed = kg_monotonic_ns() ^ (uint64_t)(uintptr_t)th;
    return th;
}

void kg_threshold_free(struct kg_threshold *th)
{
    if (!th) return;
    free(th->e);
    free(th->buckets);
    free(th);
}

void kg_threshold_get_stats(const struct kg_threshold *th, struct kg_threshold_stats *out)
{
    *out = (struct kg_threshold_stats){0};
    if (!th) return;
    out->entries = th->used;
    out->max_entries = th->max;
    out->evictions = th->evictions;
    out->evictions_active = th->evictions_active;
}

static inline uint32_t th_bucket(const struct kg_threshold *th, uint64_t id, uint8_t family,
                                 const uint8_t *addr)
{
    return (uint32_t)kg_ind_hash(addr, 16, id ^ th->seed ^ family) & th->bmask;
}

static void lru_unlink(struct kg_threshold *th, uint32_t i)
{
    struct th_entry *e = &th->e[i];
    if (e->prev_lru != TH_NIL)
        th->e[e->prev_lru].next_lru = e->next_lru;
    else
        th->head = e->next_lru;
    if (e->next_lru != TH_NIL)
        th->e[e->next_lru].prev_lru = e->prev_lru;
    else
        th->tail = e->prev_lru;
}

static void lru_push_front(struct kg_threshold *th, uint32_t i)
{
    struct th_entry *e = &th->e[i];
    e->prev_lru = TH_NIL;
    e->next_lru = th->head;
    if (th->head != TH_NIL) th->e[th->head].prev_lru = i;
    th->head = i;
    if (th->tail == TH_NIL) th->tail = i;
}

bool kg_threshold_allow(struct kg_threshold *th, const struct kg_tuning *t, uint32_t rule,
                        const struct kg_indicator *ind, uint8_t family, const uint8_t *src, uint64_t now_us)
{
    if (!th || !t || rule >= t->nrules) return true;
    const struct trule *r = &t->rules[rule];
    if (r->kind != KG_TUNING_THRESHOLD) return true;

    uint8_t addr[16] = {0};
    if ((family == 4 || family == 6) && src)
        memcpy(addr, src, family == 4 ? 4 : 16);
    else
        family = 0;
    uint64_t ih = 0;
    if (ind && ind->value) ih = kg_ind_hash(ind->value, strlen(ind->value), (uint64_t)ind->type + 1);
    uint64_t pair[2] = {r->fp, ih};
    uint64_t id = kg_ind_hash(pair, sizeof(pair), KEY_SEED);
    uint64_t win = (uint64_t)r->seconds * 1000000u;

    uint32_t b = th_bucket(th, id, family, addr);
    for (uint32_t i = th->buckets[b]; i != TH_NIL; i = th->e[i].next) {
        struct th_entry *e = &th->e[i];
        if (e->id != id || e->family != family || memcmp(e->addr, addr, 16) != 0) continue;
        lru_unlink(th, i);
        lru_push_front(th, i);
        /* A new window when this one is over, or when time went back more
         * than a window before its start (a capture older than the last
         * one); a packet slightly out of order still counts in this one. */
        if (now_us >= e->end_us || now_us + 2 * win < e->end_us) {
            e->end_us = now_us + win;
            e->count = 1;
            return true;
        }
        if (e->count < r->count) {
            e->count++;
            return true;
        }
        return false;
    }

    uint32_t i;
    if (th->used < th->max) {
        i = th->used++;
    } else {
        /* Full: reuse the least recently used entry. */
        i = th->tail;
        struct th_entry *old = &th->e[i];
        th->evictions++;
        if (now_us < old->end_us) th->evictions_active++;
        uint32_t ob = th_bucket(th, old->id, old->family, old->addr);
        for (uint32_t *p = &th->buckets[ob]; *p != TH_NIL; p = &th->e[*p].next) {
            if (*p == i) {
                *p = old->next;
                break;
            }
        }
        lru_unlink(th, i);
    }
    struct th_entry *e = &th->e[i];
    e->id = id;
    e->family = family;
    memcpy(e->addr, addr, 16);
    e->end_us = now_us + win;
    e->count = 1;
    e->next = th->buckets[b];
    th->buckets[b] = i;
    lru_push_front(th, i);
    return true;
}
