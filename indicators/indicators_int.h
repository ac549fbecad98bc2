/*
 * indicators/indicators_int.h — internals shared by the files of the
 * indicators module (not a public header: nothing outside indicators/
 * includes it).
 *
 *   indicators_index.c  the 64-bit hash, the open-addressing table and the
 *                       per-prefix-length address index;
 *   indicators.c        the set: storage, normalisation, duplicates, lookups;
 *   indicators_zeek.c   the Zeek Intel framework feed parser.
 *
 * Why hand-written tables rather than a library: lookups run on the worker
 * hot path (two address lookups per flow, one per DNS name, SNI, JA3,
 * certificate or HTTP request), must not allocate or lock, and need keys
 * hashed in type-specific ways: a domain's parents hashed incrementally
 * label by label, a URL as host + path in two separate pieces, an address
 * masked per prefix length. Nothing packaged for Debian 12 fits: glib's
 * GHashTable works through callbacks on 32-bit hashes and would pull glib
 * into the sensor, uthash chains items through 56-byte handles and hashes
 * one contiguous key itself, hsearch(3) is a single process-wide table.
 * The table (indicators_index.c) is about a hundred lines.
 *
 * Threads: everything here is built by one thread on the control plane and
 * only read afterwards; the read functions keep no state.
 */
#ifndef KG_INDICATORS_INT_H
#define KG_INDICATORS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "indicators/indicators.h"

/* "No indicator": the id of an empty table slot, and a failed lookup. */
#define KG_IND_NONE UINT32_MAX

/* Longest name kg_indicator_match_domain() and the URL host accept; longer
 * ones simply do not match (DNS names are at most 253 bytes, RFC 1035 2.3.4). */
#define KG_IND_NAME_MAX 1024

/* --- hashing ---------------------------------------------------------------- */

/*
 * 64-bit hash of n bytes, 8 bytes per step. The round is xxHash64's
 * (rotate/multiply by odd constants: a bijection of the state for a fixed
 * input word, so no input collapses the state) and the finaliser is
 * MurmurHash3's fmix64, which spreads every input bit over the whole word so
 * the table may index with the low bits. The seed chains calls: hashing B
 * with the hash of A as seed gives the hash of the pair (A, B).
 */
uint64_t kg_ind_hash(const void *p, size_t n, uint64_t seed);

/*
 * Hash of a domain name (lower case, no trailing dot) folded label by label
 * from the rightmost one: h = hash(label, h). A lookup therefore gets the
 * hash of every parent domain of a name in a single right-to-left pass.
 */
uint64_t kg_ind_domain_hash(const char *name, size_t len, uint64_t seed);

/* --- open-addressing hash table -------------------------------------------- */

/*
 * One slot: the key's full 64-bit hash (compared before the key, so keys are
 * almost never touched on a miss), the indicator id (KG_IND_NONE = empty)
 * and a 32-bit `aux` word the owner uses as a cheap second check (key length,
 * or the first 4 bytes of an address).
 */
struct kg_ind_slot {
    uint64_t hash;
    uint32_t id;
    uint32_t aux;
};

/* Linear probing, power-of-two size, load factor at most 1/2, so a probe
 * sequence always ends at an empty slot. A zeroed struct is an empty table. */
struct kg_ind_htab {
    struct kg_ind_slot *slots;
    uint32_t mask;  /* size - 1 */
    uint32_t count; /* occupied slots */
};

void kg_ind_htab_free(struct kg_ind_htab *t);

/* Adds an entry; the caller has checked the key is absent. Grows the table
 * (control plane: aborts on out-of-memory). */
void kg_ind_htab_insert(struct kg_ind_htab *t, uint64_t hash, uint32_t id, uint32_t aux);

/* Probe position for `hash`: start of the scan that kg_ind_htab_next() does. */
static inline uint32_t kg_ind_htab_start(const struct kg_ind_htab *t, uint64_t hash)
{
    return (uint32_t)hash & t->mask;
}

/*
 * Next slot of the probe sequence whose hash equals `hash`, advancing *pos;
 * NULL once an empty slot ends the sequence. The caller compares its key and
 * calls again on a (rare) full-hash collision:
 *
 *     uint32_t pos = kg_ind_htab_start(t, h);
 *     for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(t, h, &pos)) != NULL;)
 *         if (key_equal(sl->id)) return sl->id;
 */
static inline const struct kg_ind_slot *kg_ind_htab_next(const struct kg_ind_htab *t, uint64_t hash,
                                                         uint32_t *pos)
{
    if (!t->slots) return NULL;
    for (;;) {
        const struct kg_ind_slot *sl = &t->slots[*pos];
        *pos = (*pos + 1) & t->mask;
        if (sl->id == KG_IND_NONE) return NULL;
        if (sl->hash == hash) return sl;
    }
}

/* --- normalised keys --------------------------------------------------------- */

/*
 * The normalised form of an indicator, which the tables compare against:
 *   ADDR/SUBNET  the masked address (4 or 16 bytes);
 *   DOMAIN       the lower-case name without "*." or trailing dot;
 *   URL          lower-case host (":80" dropped) followed by the path;
 *                aux = length of the host part;
 *   CERT_HASH, JA3  the binary digest (20 or 16 bytes).
 */
struct kg_ind_key {
    const uint8_t *p;
    uint32_t len;
    uint32_t aux;
};

/* --- address index ------------------------------------------------------------ */

/*
 * Longest-prefix match as a handful of exact matches: one hash table per
 * prefix length present, keyed by the address masked to that length. A
 * lookup masks the address to each present length, longest first, and stops
 * at the first hit, so its cost is bounded by the number of distinct lengths
 * (at most 33 for IPv4, 129 for IPv6; real feeds have a few), never by the
 * number of prefixes. Slot aux = the top 32 bits of the masked address,
 * which for IPv4 is the whole key: an IPv4 probe never leaves the table.
 */
struct kg_ind_prefix_index {
    uint8_t alen;  /* address bytes: 4 or 16 */
    uint8_t nlens; /* entries used in lens[] */
    uint8_t lens[129];
    struct kg_ind_htab tabs[129]; /* indexed by prefix length */
};

void kg_ind_prefix_init(struct kg_ind_prefix_index *x, uint8_t alen);
void kg_ind_prefix_free(struct kg_ind_prefix_index *x);

/* Writes addr masked to its first plen bits (alen bytes) to out. */
void kg_ind_prefix_mask(uint8_t *out, const uint8_t *addr, unsigned alen, unsigned plen);

/* Id of the entry with exactly this masked address and length, or KG_IND_NONE. */
uint32_t kg_ind_prefix_find(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                            const uint8_t *masked, unsigned plen, uint64_t seed);

/* Adds an entry (absent, checked by the caller); keys[id] must already hold its key. */
void kg_ind_prefix_insert(struct kg_ind_prefix_index *x, const uint8_t *masked, unsigned plen, uint32_t id,
                          uint64_t seed);

/* Id of the longest prefix containing addr, or KG_IND_NONE. Allocation-free. */
uint32_t kg_ind_prefix_lookup(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                              const uint8_t *addr, uint64_t seed);

/* --- the set's internal insertion API (used by the feed parsers) -------------- */

/*
 * An indicator as a parser hands it over. value is borrowed (copied on
 * insertion); source, file and the meta strings must already be owned by the
 * set (kg_ind_set_strdup()), so parsers can share repeated strings.
 * meta_keys_shared says meta_keys itself is a set-owned array that stays
 * unchanged, so indicators may point at it instead of copying it;
 * meta_values is always copied.
 */
struct kg_ind_input {
    enum kg_ind_type type;
    const char *value;
    size_t value_len;
    const char *source; /* never NULL ("" when absent) */
    const char *file;   /* never NULL */
    uint32_t line;
    int severity;
    uint32_t nmeta;
    const char *const *meta_keys;
    const char *const *meta_values;
    bool meta_keys_shared;
};

/*
 * Normalises and adds one indicator. Returns 0 when added, 1 when the same
 * type + normalised value is already in the set (*dup, if given, is set to
 * the one kept), KG_ERR_PARSE with err filled (a message without file:line)
 * when the value is invalid for its type, KG_ERR_INVAL after finalize and
 * KG_ERR_FULL beyond 2^32-2 indicators.
 */
int kg_ind_set_insert(struct kg_indicator_set *s, const struct kg_ind_input *in,
                      const struct kg_indicator **dup, struct kg_err *err);

/* Copies n bytes plus a NUL into storage owned by the set (freed with it). */
const char *kg_ind_set_strdup(struct kg_indicator_set *s, const char *p, size_t n);

/* n bytes of pointer-aligned storage owned by the set (freed with it). */
void *kg_ind_set_alloc(struct kg_indicator_set *s, size_t n);

bool kg_ind_set_is_final(const struct kg_indicator_set *s);

#endif /* KG_INDICATORS_INT_H */
