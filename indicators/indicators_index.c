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

#include <endian.h>
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
    for (size_t i = 0; i < n; i++)
        sl[i].id = KG_IND_NONE;
    return sl;
}

/* Places an entry known to be absent, in a table known to have room. */
static void place(struct kg_ind_slot *slots, uint32_t mask, uint64_t hash, uint32_t id, uint32_t aux)
{
    uint32_t i = (uint32_t)hash & mask;
    while (slots[i].id != KG_IND_NONE)
        i = (i + 1) & mask;
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
    for (size_t i = 0; i < KG_ARRAY_LEN(x->tabs); i++)
        kg_ind_htab_free(&x->tabs[i]);
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

/*
 * Addresses are handled as two 64-bit words in host order (IPv4 in the top
 * half of `hi`, `lo` = 0), so masking to a prefix length is two ANDs and the
 * hash two rounds: no byte loops or memset on the per-packet path.
 */
struct addr128 {
    uint64_t hi, lo;
};

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static inline struct addr128 addr_load(const uint8_t *a, unsigned alen)
{
    struct addr128 w = {0, 0};
    if (alen == 4) {
        uint32_t v;
        memcpy(&v, a, 4);
        w.hi = (uint64_t)be32toh(v) << 32;
    } else {
        w.hi = load_be64(a);
        w.lo = load_be64(a + 8);
    }
    return w;
}

static inline struct addr128 addr_mask(struct addr128 w, unsigned plen)
{
    /* Shifts by 64 are undefined in C: the edges are spelled out. */
    uint64_t mhi = plen >= 64 ? ~0ull : plen == 0 ? 0 : ~0ull << (64 - plen);
    uint64_t mlo = plen <= 64 ? 0 : plen >= 128 ? ~0ull : ~0ull << (128 - plen);
    return (struct addr128){w.hi & mhi, w.lo & mlo};
}

static inline uint64_t addr_hash(struct addr128 w, unsigned alen, uint64_t seed)
{
    uint64_t h = round64(seed, w.hi);
    if (alen == 16) h = round64(h, w.lo);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Exact probe of the table for one prefix length. */
static inline uint32_t probe(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                             struct addr128 w, unsigned plen, uint64_t seed)
{
    const struct kg_ind_htab *t = &x->tabs[plen];
    uint64_t h = addr_hash(w, x->alen, seed);
    uint32_t top = (uint32_t)(w.hi >> 32);
    uint32_t pos = kg_ind_htab_start(t, h);
    for (const struct kg_ind_slot *sl; (sl = kg_ind_htab_next(t, h, &pos)) != NULL;) {
        if (sl->aux != top) continue;
        /* For IPv4 aux is the whole key; IPv6 compares the rest (rarely
         * reached: the 64-bit hash and the top 32 bits already agree). */
        if (x->alen == 4) return sl->id;
        struct addr128 k = addr_load(keys[sl->id].p, 16);
        if (k.hi == w.hi && k.lo == w.lo) return sl->id;
    }
    return KG_IND_NONE;
}

uint32_t kg_ind_prefix_find(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                            const uint8_t *masked, unsigned plen, uint64_t seed)
{
    return probe(x, keys, addr_load(masked, x->alen), plen, seed);
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
    struct addr128 w = addr_load(masked, x->alen);
    kg_ind_htab_insert(t, addr_hash(w, x->alen, seed), id, (uint32_t)(w.hi >> 32));
}

uint32_t kg_ind_prefix_lookup(const struct kg_ind_prefix_index *x, const struct kg_ind_key *keys,
                              const uint8_t *addr, uint64_t seed)
{
    if (x->nlens == 0) return KG_IND_NONE;
    struct addr128 w = addr_load(addr, x->alen);
    for (unsigned i = 0; i < x->nlens; i++) {
        unsigned plen = x->lens[i];
        uint32_t id = probe(x, keys, addr_mask(w, plen), plen, seed);
        if (id != KG_IND_NONE) return id;
    }
    return KG_IND_NONE;
}
