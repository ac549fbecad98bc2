/*
 * indicators/indicators_index.c — the lookup machinery under an indicator
 * set: a 64-bit hash, an open-addressing hash table, and the longest-prefix
 * address index built from one table per prefix length. See the comment at
 * the top of indicators_int.h for why these are hand-written.
 *
 * Threads: built by one control-plane thread; the lookup functions only
 * read and may run in any number of threads at once. Owns the slot arrays
 * of its tables (kg_ind_htab_free / kg_ind_prefix_free).
 */
#include "indicators/indicators_int.h"

#include <stdlib.h>

/* xxHash64's primes (odd, with well-spread bits). */
#define KG_IND_P1 0x9e3779b185ebca87ull
#define KG_IND_P2 0xc2b2ae3d27d4eb4full

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t round64(uint64_t h, uint64_t w)
{
    return rotl64(h ^ (w * KG_IND_P2), 31) * KG_IND_P1;
}

uint64_t kg_ind_hash(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    /* The length enters the state first, so "ab" and "ab\0" (same padded
     * last word) differ. */
    uint64_t h = seed ^ ((uint64_t)n * KG_IND_P1);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* unaligned-safe load; compiles to one mov */
        h = round64(h, w);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = round64(h, w);
    }
    /* MurmurHash3 fmix64. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t kg_ind_domain_hash(const char *name, size_t len, uint64_t seed)
{
    uint64_t h = seed;
    size_t end = len;
    /* Labels right to left; the same fold kg_indicator_match_domain() does
     * while walking a name's suffixes. */
    for (size_t i = len; i-- > 0;) {
        if (name[i] == '.') {
            h = kg_ind_hash(name + i + 1, end - i - 1, h);
            end = i;
        }
    }
    return kg_ind_hash(name, end, h);
}

/* --- open-addressing table ---------------------------------------------------- */

void kg_ind_htab_free(struct kg_ind_htab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
}

static struct kg_ind_slot *slots_new(size_t n)
{
    struct kg_ind_slot *sl = kg_xmalloc(n * sizeof(*sl));
    for (size_t i = 0; i < n; i++) sl[i].id = KG_IND_NONE;
    return sl;
}

/* Places an entry known to be absent, in a table known to have room. */
static void place(struct kg_ind_slot *slots, uint32_t mask, uint64_t hash, uint32_t id, uint32_t aux)
{
    uint32_t i = (uint32_t)hash & mask;
    while (slots[i].id != KG_IND_NONE) i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].id = id;
    slots[i].aux = aux;
}

void kg_ind_htab_insert(struct kg_ind_htab *t, uint64_t hash, uint32_t id, uint32_t aux)
{
    size_t size = t->slots ? (size_t)t->mask + 1 : 0;
    /* Keep the load factor at or below 1/2: with a good hash, linear probing
     * then averages about 1.5 slots per hit and 2.5 per miss (Knuth, TAOCP
     * vol. 3, 6.4), and every probe sequence reaches an empty slot. */
    if ((size_t)t->count + 1 > size / 2) {
        size_t nsize = size ? size * 2 : 16;
        if (nsize > ((size_t)1 << 32)) abort(); /* unreachable: ids are 32-bit */
        struct kg_ind_slot *ns = slots_new(nsize);
        for (size_t i = 0; i < size; i++) {
            if (t->slots[i].id != KG_IND_NONE)
                place(ns, (uint32_t)(nsize - 1), t->slots[i].hash, t->slots[i].id, t->slots[i].aux);
        }
        free(t->slots);
        t->slots = ns;
        t->mask = (uint32_t)(nsize - 1);
    }
    place(t->slots, t->mask, hash, id, aux);
    t->count++;
}

/* --- address index -------------------------------------------------------------- */

void kg_ind_prefix_init(struct kg_ind_prefix_index *x, uint8_t alen)
{
    memset(x, 0, sizeof(*x));
    x->alen = alen;
}

void kg_ind_prefix_free(struct kg_ind_prefix_index *x)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(x->tabs); i++) kg_ind_htab_free(&x->tabs[i]);
    x->nlens = 0;
}

void kg_ind_prefix_mask(uint8_t *out, const uint8_t *addr, unsigned alen, unsigned plen)
{
    unsigned full = plen / 8, bits = plen % 8;
    memcpy(out, addr, full);
    if (full < alen) {
        out[full] = bits ? (uint8_t)(addr[full] & (uint8_t)(0xff00u >> bits)) : 0;
        memset(out + full + 1, 0, alen - full - 1);
    }
}

static inline uint32_t first_word(const uint8_t *masked)
{
    uint32_t w;
    memcpy(&w, masked, 4);
    return w;
}

/* Exact probe of the table for one prefix length. */
static inline uint32_t probe(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                             const uint8_t *masked, unsigned plen, uint64_t seed)
{
    const struct kg_ind_htab *t = &x->tabs[plen];
    uint64_t h = kg_ind_hash(masked, x->alen, seed);
    uint32_t w = first_word(masked);
    uint32_t pos = kg_ind_htab_start(t, h);
    for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(t, h, &pos)) != NULL;) {
        if (sl->aux != w) continue;
        /* For IPv4 aux is the whole key; IPv6 compares the other 12 bytes. */
        if (x->alen == 4 || memcmp(keys[sl->id].p + 4, masked + 4, 12) == 0) return sl->id;
    }
    return KG_IND_NONE;
}

uint32_t kg_ind_prefix_find(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                            const uint8_t *masked, unsigned plen, uint64_t seed)
{
    return probe(x, keys, masked, plen, seed);
}

void kg_ind_prefix_insert(struct kg_ind_prefix_index *x, const uint8_t *masked, unsigned plen, uint32_t id,
                          uint64_t seed)
{
    struct kg_ind_htab *t = &x->tabs[plen];
    if (t->count == 0) {
        /* A new length: keep lens[] sorted longest first (insertion sort on
         * at most 129 bytes, once per distinct length). */
        unsigned i = x->nlens;
        while (i > 0 && x->lens[i - 1] < plen) {
            x->lens[i] = x->lens[i - 1];
            i--;
        }
        x->lens[i] = (uint8_t)plen;
        x->nlens++;
    }
    kg_ind_htab_insert(t, kg_ind_hash(masked, x->alen, seed), id, first_word(masked));
}

uint32_t kg_ind_prefix_lookup(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                              const uint8_t *addr, uint64_t seed)
{
    uint8_t masked[16];
    for (unsigned i = 0; i < x->nlens; i++) {
        unsigned plen = x->lens[i];
        kg_ind_prefix_mask(masked, addr, x->alen, plen);
        uint32_t id = probe(x, keys, masked, plen, seed);
        if (id != KG_IND_NONE) return id;
    }
    return KG_IND_NONE;
}
