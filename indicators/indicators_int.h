/*
 * indicators/indicators_int.h — internals shared by the files of the
 * indicators module (not a public header: nothing outside indicators/
 * includes it).
 *
 *   indicators_index.c    the 64-bit hash, the open-addressing table and the
 *                         address indexes (IPv4: exact /32 table + a 16-8
 *                         two-level table + /25-/31 tables; IPv6: one table
 *                         per prefix length);
 *   indicators.c          the set: storage, normalisation, duplicates, lookups;
 *   indicators_feed.c     format prefixes and detection, the chunked line
 *                         reader every line-based format runs on, warnings;
 *   indicators_zeek.c     Zeek Intel framework files;
 *   indicators_plain.c    plain lists, Suricata datasets, abuse.ch SSLBL CSVs;
 *   indicators_misp.c     MISP CSV exports (RFC 4180 records);
 *   indicators_stix.c     STIX 2.1 bundles (jansson);
 *   indicators_sign.c     detached Ed25519 signatures (OpenSSL EVP).
 *
 * Why hand-written tables rather than a library: lookups run on the worker
 * hot path (two address lookups per flow, one per DNS name, SNI, JA3,
 * certificate or HTTP request), must not allocate or lock, and need keys
 * hashed in type-specific ways: all of a domain's parents hashed from one
 * chain over the name's words, a URL as host + path in two separate pieces, an address
 * masked per prefix length. Nothing packaged for Debian 12 fits: glib's
 * GHashTable works through callbacks on 32-bit hashes and would pull glib
 * into the sensor, uthash chains items through 56-byte handles and hashes
 * one contiguous key itself, hsearch(3) is a single process-wide table.
 *
 * Memory at scale (10 million indicators, docs/PERFORMANCE.md): a table
 * slot is 8 bytes (32-bit check tag + a reference to the value record,
 * which holds the id and, for the text types, the normalised key); on a tag
 * match the candidate is confirmed against that key, without touching the
 * indicator. The digest types (JA3, CERT_HASH, FILE_HASH, JA4) also keep
 * [id][key] inline in an array parallel to the slots, fetched with the slot,
 * so their hits confirm without the dependent read of the record (about
 * 80 MiB at the benchmark's 1 million hashes; domains and URLs are too many
 * and too long for that). IPv4 slots hold the address itself as the tag,
 * IPv6 slots the whole address, so address lookups never leave their table.
 * A small blocked Bloom filter in front of each large table (struct
 * kg_ind_filter) answers most absent keys from the CPU caches.
 *
 * Threads: everything here is built by one thread on the control plane and
 * only read afterwards; the read functions keep no state.
 */
#ifndef KG_INDICATORS_INT_H
#define KG_INDICATORS_INT_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "indicators/indicators.h"

/* "No indicator": the id of an empty table slot, and a failed lookup. */
#define KG_IND_NONE UINT32_MAX
/* Ids stay below 2^31 so the IPv4 two-level table can store id + 1 in 31 bits. */
#define KG_IND_MAX_COUNT 0x7ffffffeu

/* Longest name kg_indicator_match_domain() and the URL host accept; longer
 * ones simply do not match (DNS names are at most 253 bytes, RFC 1035 2.3.4). */
#define KG_IND_NAME_MAX 1024
/* RFC 1035 2.3.4 limits. */
#define KG_IND_DOMAIN_MAX 253
#define KG_IND_LABEL_MAX 63
/* Longest URL and User-Agent indicator; longer values are refused. */
#define KG_IND_VALUE_MAX 8192

/* --- hashing ---------------------------------------------------------------- */

/*
 * 64-bit hash of n bytes, 8 bytes per step. The round is xxHash64's
 * (rotate/multiply by odd constants: a bijection of the state for a fixed
 * input word, so no input collapses the state) and the finaliser is
 * MurmurHash3's fmix64, which spreads every input bit over the whole word so
 * the table may index with the low bits and check with the high ones. The
 * seed chains calls: hashing B with the hash of A as seed gives the hash of
 * the pair (A, B).
 */
uint64_t kg_ind_hash(const void *p, size_t n, uint64_t seed);

/* Hash of one 32-bit word (an IPv4 address), same properties. */
uint64_t kg_ind_hash32(uint32_t w, uint64_t seed);

/* xxHash64's primes (odd, with well-spread bits). */
#define KG_IND_P1 0x9e3779b185ebca87ull
#define KG_IND_P2 0xc2b2ae3d27d4eb4full

/* xxHash64's round: a bijection of the state h for a fixed input word w. */
static inline uint64_t kg_ind_round64(uint64_t h, uint64_t w)
{
    h ^= w * KG_IND_P2;
    return ((h << 31) | (h >> 33)) * KG_IND_P1;
}

/* MurmurHash3's fmix64: every input bit reaches every output bit. */
static inline uint64_t kg_ind_hash_final(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* kg_ind_hash's last word: the final n % 8 (1-7) bytes of the n-byte key p
 * as the low bytes of a word. When the key has 8 bytes or more, the 8 that
 * end it are loaded and shifted (a copy of a few bytes into a word would be
 * as many stores that the load then waits for). */
static inline uint64_t kg_ind_tail_word(const uint8_t *p, size_t n)
{
    size_t r = n % 8;
    uint64_t w = 0;
    if (n >= 8) {
        memcpy(&w, p + n - 8, 8);
        return le64toh(w) >> (8 * (8 - r));
    }
    for (size_t i = 0; i < r; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

/*
 * Domain hashing reads a name right to left, in 8-byte words aligned to its
 * end, so every suffix of a name shares the chain of its full words: with
 * end the end of the name,
 *
 *   H(0) = seed,  H(j + 1) = round(H(j), the 8 bytes ending at end - 8j)
 *
 * and the suffix of length L = 8j + r is final(round(H(j) ^ L, the r bytes
 * before those j words)). A lookup walking a name's suffixes pays one round
 * per 8 bytes of the name once, then one round and one finaliser per suffix
 * it probes, whatever the labels.
 */

/* The word of the 8 bytes that end at p (p[-8..-1]), little-endian. */
static inline uint64_t kg_ind_word_before(const char *p)
{
    uint64_t w;
    memcpy(&w, p - 8, 8);
    return le64toh(w);
}

/* The suffix hash of length l, given h = H(l / 8) for the name ending at
 * end; reads end[-8 * (l / 8) - 8 ..], which must be readable (callers pad
 * the front of their buffers with 8 bytes). */
static inline uint64_t kg_ind_suffix_hash(const char *end, size_t l, uint64_t h)
{
    size_t j = l / 8, r = l % 8;
    uint64_t w = r ? kg_ind_word_before(end - 8 * j) >> (8 * (8 - r)) : 0;
    return kg_ind_hash_final(kg_ind_round64(h ^ ((uint64_t)l * KG_IND_P1), w));
}

/*
 * Hash of a domain name (lower case, no trailing dot, at most
 * KG_IND_DOMAIN_MAX bytes): its suffix hash of its whole length (above).
 */
uint64_t kg_ind_domain_hash(const char *name, size_t len, uint64_t seed);

/* --- membership filter ------------------------------------------------------- */

/*
 * A blocked Bloom filter in front of a large table: per key two bits of one
 * 64-bit word, chosen by the key's 64-bit hash (word by bits 32 up, bits by
 * bits 52-57 and 58-63), at 8 to 16 bits per key, so about 2-5% of absent
 * keys pass. It is a few MiB where its table is tens or hundreds, so it
 * stays in the CPU caches: a probe of a key the table cannot hold (a miss,
 * or a domain's parent of a label count no listed key ends in) is answered
 * there instead of with a DRAM read of the slots. Built once the table is
 * complete (kg_indicator_set_finalize); an empty filter (words == NULL)
 * lets everything pass.
 */
struct kg_ind_filter {
    uint64_t *words;
    uint32_t mask; /* words - 1 */
};

/* Tables with fewer entries get no filter: they stay in cache anyway. */
#define KG_IND_FILTER_MIN 4096u

static inline uint64_t kg_ind_filter_bits(uint64_t h)
{
    return (1ull << ((h >> 52) & 63)) | (1ull << ((h >> 58) & 63));
}

static inline bool kg_ind_filter_test(const struct kg_ind_filter *f, uint64_t h)
{
    if (!f->words) return true;
    uint64_t b = kg_ind_filter_bits(h);
    return (f->words[(uint32_t)(h >> 32) & f->mask] & b) == b;
}

static inline void kg_ind_filter_prefetch(const struct kg_ind_filter *f, uint64_t h)
{
    if (f->words) __builtin_prefetch(&f->words[(uint32_t)(h >> 32) & f->mask]);
}

/* Sizes an empty filter for `count` keys (none below KG_IND_FILTER_MIN). */
void kg_ind_filter_init(struct kg_ind_filter *f, size_t count);
void kg_ind_filter_free(struct kg_ind_filter *f);

static inline void kg_ind_filter_add(struct kg_ind_filter *f, uint64_t h)
{
    if (f->words) f->words[(uint32_t)(h >> 32) & f->mask] |= kg_ind_filter_bits(h);
}

/* --- open-addressing hash table -------------------------------------------- */

/* Memory for an array read at random by lookups (slots, inline keys, value
 * records): 2 MiB-aligned and offered as transparent huge pages when at
 * least 2 MiB; freed with free(). Aborts on out-of-memory. */
void *kg_ind_table_alloc(size_t bytes);

/*
 * One slot: a 32-bit check tag and a 32-bit reference (KG_IND_NONE = empty):
 * in the IPv4 tables the indicator id and as tag the address itself (exact);
 * in the exact-key tables the reference of the value record (indicators.c)
 * and as tag the high 32 bits of the 64-bit hash whose low bits chose the
 * slot (a false tag match on a probe is 1 in 2^32; the owner then compares
 * the value).
 */
struct kg_ind_slot {
    uint32_t tag;
    uint32_t id;
};

/* Linear probing, power-of-two size, load factor at most 3/4, so a probe
 * sequence always ends at an empty slot. A zeroed struct is an empty table.
 *
 * Optionally (key_stride != 0, set before the first insert) the table keeps
 * each entry's short normalised key — [length][bytes], at most key_stride
 * bytes — in a second array at the slot's index. Its address is known from
 * the hash alone, so a lookup fetches it together with the slot and confirms
 * a hit without the dependent read of the value record: the digest types use
 * this, since their keys are at most 32 bytes. */
struct kg_ind_htab {
    struct kg_ind_slot *slots;
    uint32_t mask;  /* size - 1 */
    uint32_t count; /* occupied slots */
    uint8_t *keys;  /* with key_stride: (mask + 1) * key_stride bytes */
    uint32_t key_stride;
    struct kg_ind_filter filter; /* kg_ind_htab_build_filter; probes test it first */
};

/* The inline key of slot i (key_stride != 0): byte 0 the length, then the key. */
static inline const uint8_t *kg_ind_htab_key(const struct kg_ind_htab *t, uint32_t i)
{
    return t->keys + (size_t)i * t->key_stride;
}

static inline uint32_t kg_ind_tag(uint64_t hash)
{
    return (uint32_t)(hash >> 32);
}

void kg_ind_htab_free(struct kg_ind_htab *t);

/* Recomputes the index hash of an entry when the table grows (a slot keeps
 * only its tag); ctx is the insert call's. */
typedef uint64_t (*kg_ind_rehash_fn)(const void *ctx, uint32_t tag, uint32_t id);

/* Adds an entry; the caller has checked the key is absent. key is the
 * inline key (key_len bytes, key_len < key_stride) of a table with
 * key_stride, and ignored otherwise. Grows the table (control plane: aborts
 * on out-of-memory). */
void kg_ind_htab_insert(struct kg_ind_htab *t, uint64_t hash, uint32_t tag, uint32_t id,
                        kg_ind_rehash_fn rehash, const void *ctx, const void *key, size_t key_len);

/* Builds the table's filter from its entries (hashes recomputed with
 * `rehash`); call once the table is complete. */
void kg_ind_htab_build_filter(struct kg_ind_htab *t, kg_ind_rehash_fn rehash, const void *ctx);

/* Probe position for `hash`: start of the scan that kg_ind_htab_next() does. */
static inline uint32_t kg_ind_htab_start(const struct kg_ind_htab *t, uint64_t hash)
{
    return (uint32_t)hash & t->mask;
}

/*
 * Next id of the probe sequence whose slot carries `tag`, advancing *pos;
 * KG_IND_NONE once an empty slot ends the sequence. The caller confirms the
 * candidate and calls again on a (rare) false tag match:
 *
 *     uint32_t pos = kg_ind_htab_start(t, h), id;
 *     while ((id = kg_ind_htab_next(t, h_tag, &pos)) != KG_IND_NONE)
 *         if (key_equal(id)) return id;
 */
static inline uint32_t kg_ind_htab_next(const struct kg_ind_htab *t, uint32_t tag, uint32_t *pos)
{
    if (!t->slots) return KG_IND_NONE;
    for (;;) {
        const struct kg_ind_slot *sl = &t->slots[*pos];
        *pos = (*pos + 1) & t->mask;
        if (sl->id == KG_IND_NONE) return KG_IND_NONE;
        if (sl->tag == tag) return sl->id;
    }
}

/* Hints the CPU to fetch the slot a lookup of `hash` starts at: lookups of
 * independent keys (a domain's suffixes, an address in two indexes) then
 * wait for memory once instead of once per key. */
static inline void kg_ind_htab_prefetch(const struct kg_ind_htab *t, uint64_t hash)
{
    if (!t->slots) return;
    uint32_t i = kg_ind_htab_start(t, hash);
    __builtin_prefetch(&t->slots[i]);
    if (t->keys) {
        /* The key of the first slot and of the next ones a hit is usually
         * displaced to (linear probing at <= 3/4 load: 1.5 slots on average). */
        const uint8_t *k = kg_ind_htab_key(t, i);
        __builtin_prefetch(k);
        __builtin_prefetch(k + 64);
    }
}

/* --- IPv4 index ------------------------------------------------------------------ */

/*
 * Longest-prefix match for IPv4 in (usually) two memory reads:
 *   tabs[32]  exact table of /32s (ADDR and SUBNET /32), tag = the address;
 *   l1/l2     prefixes /0-/24 expanded into a two-level table: l1 has one
 *             entry per /16 (256 KiB, stays in cache), l2 one 256-entry block
 *             (one entry per /24) for each /16 that holds a prefix longer
 *             than /16. An entry is id + 1 of the longest prefix covering it
 *             (0: none); bit 31 means "a block follows" in l1 and "a /25-/31
 *             prefix lies inside this /24" in l2;
 *   tabs[25..31]  exact tables probed only when that l2 bit is set.
 * tabs[0..24] hold the prefixes during loading (duplicate detection and the
 * source of the expansion) and are freed by finalize.
 */
struct kg_ind_v4 {
    struct kg_ind_htab tabs[33];
    uint32_t *l1;
    uint32_t *l2;
    uint32_t nblocks;
    uint8_t nlong; /* entries in long_lens */
    uint8_t long_lens[7]; /* lengths 25..31 present, longest first */
};

/* Writes addr masked to its first plen bits (alen bytes) to out. */
void kg_ind_prefix_mask(uint8_t *out, const uint8_t *addr, unsigned alen, unsigned plen);

static inline uint32_t kg_ind_v4_mask(uint32_t a, unsigned plen)
{
    return plen == 0 ? 0 : a & (0xffffffffu << (32 - plen));
}

void kg_ind_v4_free(struct kg_ind_v4 *x);
/* Id of the entry with exactly this masked address (host order) and length. */
uint32_t kg_ind_v4_find(const struct kg_ind_v4 *x, uint32_t masked, unsigned plen, uint64_t seed);
void kg_ind_v4_insert(struct kg_ind_v4 *x, uint32_t masked, unsigned plen, uint32_t id, uint64_t seed);
/* Builds l1/l2 and frees tabs[0..24]. parent, if given (n entries), receives
 * for each /0-/24 prefix the id of the next shorter prefix covering it. */
void kg_ind_v4_build(struct kg_ind_v4 *x, uint32_t *parent);
/* Builds the filters of the /25-/32 tables (after kg_ind_v4_build). */
void kg_ind_v4_build_filters(struct kg_ind_v4 *x, uint64_t seed);

/* --- IPv6 index ------------------------------------------------------------------ */

/* One table per prefix length present, keyed by the masked address; the
 * slot holds the whole address, so a probe compares without leaving it. */
struct kg_ind_slot6 {
    uint64_t hi, lo;
    uint32_t id;
    uint32_t pad;
};

struct kg_ind_htab6 {
    struct kg_ind_slot6 *slots;
    uint32_t mask, count;
    struct kg_ind_filter filter;
};

struct kg_ind_v6 {
    uint8_t nlens;
    uint8_t lens[129]; /* present lengths, longest first */
    struct kg_ind_htab6 tabs[129];
};

void kg_ind_v6_free(struct kg_ind_v6 *x);
uint32_t kg_ind_v6_find(const struct kg_ind_v6 *x, uint64_t hi, uint64_t lo, unsigned plen, uint64_t seed);
void kg_ind_v6_insert(struct kg_ind_v6 *x, uint64_t hi, uint64_t lo, unsigned plen, uint32_t id,
                      uint64_t seed);
/* Builds each length's filter; call once the index is complete. */
void kg_ind_v6_build_filters(struct kg_ind_v6 *x, uint64_t seed);
/* The probe hashes of addr for the first min(nlens, cap) present lengths
 * (longest first) into h, each filter word prefetched; returns how many. */
unsigned kg_ind_v6_hashes(const struct kg_ind_v6 *x, const uint8_t *addr, uint64_t seed, uint64_t *h,
                          unsigned cap);
/* Prefetches the slots of those probes that their filters let pass. */
void kg_ind_v6_prefetch_hashed(const struct kg_ind_v6 *x, const uint64_t *h, unsigned n);
/* Probe i (length lens[i]) with its hash h. */
uint32_t kg_ind_v6_find_hashed(const struct kg_ind_v6 *x, const uint8_t *addr, unsigned i, uint64_t h);
/* The address as two host-order words masked to plen bits. */
void kg_ind_v6_load(const uint8_t *a, unsigned plen, uint64_t *hi, uint64_t *lo);

/* --- the set's internal insertion API (used by the feed parsers) -------------- */

/*
 * An indicator as a parser hands it over. value is borrowed (copied on
 * insertion); source, feed_id, desc, file and the meta strings must already
 * be owned by the set (kg_ind_set_strdup()), so parsers can share repeated
 * strings; NULL means "". meta_keys_shared says meta_keys itself is a
 * set-owned array that stays unchanged, so indicators may point at it
 * instead of copying it; meta_values is always copied.
 */
struct kg_ind_input {
    enum kg_ind_type type;
    const char *value;
    size_t value_len;
    const char *source;
    const char *feed_id;
    const char *desc;
    const char *file;
    uint32_t line;
    int severity;
    uint64_t valid_from_us, valid_until_us;
    uint32_t nmeta;
    const char *const *meta_keys;
    const char *const *meta_values;
    bool meta_keys_shared;
};

/*
 * Normalises and adds one indicator. Returns 0 when added, 1 when the same
 * type + normalised value is already in the set (*dup, if given, is set to
 * the one kept), KG_ERR_PARSE with err filled (a message without file:line)
 * when the value is invalid for its type, KG_ERR_INVAL after finalize or for
 * an empty validity window, and KG_ERR_FULL beyond KG_IND_MAX_COUNT.
 */
int kg_ind_set_insert(struct kg_indicator_set *s, const struct kg_ind_input *in,
                      const struct kg_indicator **dup, struct kg_err *err);

/* Copies n bytes plus a NUL into storage owned by the set (freed with it). */
const char *kg_ind_set_strdup(struct kg_indicator_set *s, const char *p, size_t n);

/* n bytes of pointer-aligned storage owned by the set (freed with it). */
void *kg_ind_set_alloc(struct kg_indicator_set *s, size_t n);

bool kg_ind_set_is_final(const struct kg_indicator_set *s);

/* --- value helpers shared by the parsers ------------------------------------------ */

/* Hex digit value, -1 for anything else. */
int kg_ind_hexval(char c);

/* Parses a timestamp: RFC 3339 ("2024-05-01T12:00:00Z", fractions and
 * offsets allowed), "YYYY-MM-DD HH:MM:SS" (UTC) or "YYYY-MM-DD", or integer
 * seconds since the epoch. Returns false when it is none of those. */
bool kg_ind_parse_time(const char *p, size_t n, uint64_t *us);

/* Is the value the shape of a JA4 fingerprint? (indicators.c) */
bool kg_ind_is_ja4(const char *p, size_t n);

/* --- feed reading (indicators_feed.c) --------------------------------------------- */

/* Per file, then one "suppressed" line: a feed of garbage must not flood the log. */
#define KG_IND_MAX_WARNINGS 100

/* State shared by every format while one feed loads. */
struct kg_ind_feed {
    struct kg_indicator_set *s;
    const char *file;       /* set-owned name for messages and ->file */
    const char *base;       /* set-owned base name: the source of formats without one */
    enum kg_ind_format format;
    struct kg_indicator_load_report rep;
    unsigned warnings;
};

void kg_ind_feed_warn(struct kg_ind_feed *f, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A skipped line: counted in rep.bad_lines and warned about ("...; line skipped"). */
void kg_ind_feed_bad(struct kg_ind_feed *f, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Inserts, and counts the outcome: loaded, duplicate, or a bad line with
 * the message "TYPE 'value': why". Returns 0, or a negative KG_ERR_* that
 * must stop the load (set full), with err filled. */
int kg_ind_feed_add(struct kg_ind_feed *f, const struct kg_ind_input *in, struct kg_err *err);

/* Copies up to 64 bytes of untrusted input for a log line, replacing
 * anything unprintable so a feed cannot inject terminal escapes. */
const char *kg_ind_printable(char *buf, size_t size, const char *p, size_t n);

/* Trims blanks (space, tab) at both ends. */
void kg_ind_trim(const char **p, size_t *n);

/*
 * A format: line-based ones give `record` (called per line, or per CSV
 * record when csv is set: a quoted field may then span lines) and run on
 * the chunked reader; STIX gives `whole` and gets the entire file. begin,
 * end (after the last record, only if all went well) and cleanup may be NULL; ctx is ctx_size zeroed bytes owned by the reader.
 */
struct kg_ind_format_ops {
    size_t ctx_size;
    bool csv;
    int (*begin)(struct kg_ind_feed *f, void *ctx, struct kg_err *err);
    int (*record)(struct kg_ind_feed *f, void *ctx, const char *p, size_t n, uint32_t line,
                  struct kg_err *err);
    int (*end)(struct kg_ind_feed *f, void *ctx, struct kg_err *err);
    void (*cleanup)(void *ctx); /* always called last, also after an error */
    int (*whole)(struct kg_ind_feed *f, const char *data, size_t len, struct kg_err *err);
};

extern const struct kg_ind_format_ops kg_ind_zeek_ops;
extern const struct kg_ind_format_ops kg_ind_plain_ops;    /* plain, dataset-*, sslbl-* */
extern const struct kg_ind_format_ops kg_ind_misp_ops;
extern const struct kg_ind_format_ops kg_ind_stix_ops;

/* Loads a feed that is in memory (load_buffer, signed feeds). */
int kg_ind_load_memory(struct kg_indicator_set *s, enum kg_ind_format fmt, const char *file, const char *data,
                       size_t len, struct kg_indicator_load_report *rep, struct kg_err *err);

/* Appends the whole file to b. KG_ERR_IO with "path: cannot open: why". */
int kg_ind_read_file(const char *path, struct kg_buf *b, struct kg_err *err);

/* Splits a CSV record (RFC 4180: quoted fields, "" inside quotes) into at
 * most max fields, unquoting into `scratch` (at least n bytes). Returns the
 * number of fields the record has, or -1 for a malformed record (a quote
 * inside an unquoted field, text after a closing quote, an unterminated
 * quote). */
struct kg_ind_field {
    const char *p;
    size_t n;
};
int kg_ind_csv_split(const char *p, size_t n, struct kg_ind_field *out, int max, char *scratch);

#endif /* KG_INDICATORS_INT_H */
