/*
 * indicators/indicators_index.c — the lookup machinery under an indicator
 * set: a 64-bit hash, an open-addressing hash table, and the longest-prefix
 * address indexes (IPv4: exact /32 table plus a 16-8 two-level table; IPv6:
 * one table per prefix length). See the comment at the top of
 * indicators_int.h for why these are hand-written.
 *
 * Threads: built by one control-plane thread; the lookup functions only
 * read and may run in any number of threads at once. Owns the slot arrays
 * of its tables (kg_ind_htab_free, kg_ind_v4_free, kg_ind_v6_free).
 */
#include "indicators/indicators_int.h"

#include <endian.h>
#include <stdlib.h>
#include <sys/mman.h>

#define round64 kg_ind_round64

uint64_t kg_ind_hash(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    /* The length enters the state first, so "ab" and "ab\0" (same padded
     * last word) differ. */
    uint64_t h = seed ^ ((uint64_t)n * KG_IND_P1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8); /* unaligned-safe load; compiles to one mov */
        h = round64(h, le64toh(w));
    }
    if (i < n) h = round64(h, kg_ind_tail_word(p, n));
    return kg_ind_hash_final(h);
}

uint64_t kg_ind_hash32(uint32_t w, uint64_t seed)
{
    return kg_ind_hash_final(round64(seed ^ (4 * KG_IND_P1), w));
}

uint64_t kg_ind_domain_hash(const char *name, size_t len, uint64_t seed)
{
    /* kg_ind_suffix_hash reads whole words up to 8 bytes before the name:
     * work on a copy with 8 bytes in front. */
    char buf[8 + KG_IND_DOMAIN_MAX];
    if (len > KG_IND_DOMAIN_MAX) abort(); /* caller's bug: norm_domain bounds keys */
    memset(buf, 0, 8);
    memcpy(buf + 8, name, len);
    const char *end = buf + 8 + len;
    uint64_t h = seed;
    for (size_t j = 0; j < len / 8; j++)
        h = round64(h, kg_ind_word_before(end - 8 * j));
    return kg_ind_suffix_hash(end, len, h);
}

/* --- open-addressing table ---------------------------------------------------- */

/*
 * Storage for a slot or key array. Lookups read these at random, one cache
 * line per probe, so at scale nearly every probe also misses the TLB; on a
 * virtual machine a TLB miss walks two sets of page tables. Arrays of 2 MiB
 * and more are therefore aligned to 2 MiB and offered to the kernel as
 * transparent huge pages (MADV_HUGEPAGE; honoured when THP is "madvise" or
 * "always", ignored when "never"). They are written whole right away, so a
 * huge page never holds unused memory. Freed with free().
 */
#define KG_IND_HUGE ((size_t)2 << 20)

void *kg_ind_table_alloc(size_t bytes)
{
    if (bytes < KG_IND_HUGE) return kg_xmalloc(bytes);
    void *p = NULL;
    size_t rounded = (bytes + KG_IND_HUGE - 1) & ~(KG_IND_HUGE - 1);
    if (posix_memalign(&p, KG_IND_HUGE, rounded) != 0) return kg_xmalloc(bytes);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

void kg_ind_filter_init(struct kg_ind_filter *f, size_t count)
{
    kg_ind_filter_free(f);
    if (count < KG_IND_FILTER_MIN) return;
    /* At least 8 bits per key, in a power of two of 64-bit words. */
    size_t words = 1;
    while (words * 64 < count * 8)
        words *= 2;
    if (words > ((size_t)1 << 32)) words = (size_t)1 << 32;
    f->words = kg_ind_table_alloc(words * sizeof(*f->words));
    memset(f->words, 0, words * sizeof(*f->words));
    f->mask = (uint32_t)(words - 1);
}

void kg_ind_filter_free(struct kg_ind_filter *f)
{
    free(f->words);
    f->words = NULL;
    f->mask = 0;
}

void kg_ind_htab_build_filter(struct kg_ind_htab *t, kg_ind_rehash_fn rehash, const void *ctx)
{
    kg_ind_filter_init(&t->filter, t->count);
    if (!t->filter.words) return;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].id != KG_IND_NONE) kg_ind_filter_add(&t->filter, rehash(ctx, t->slots[i].tag, t->slots[i].id));
}

void kg_ind_htab_free(struct kg_ind_htab *t)
{
    kg_ind_filter_free(&t->filter);
    free(t->slots);
    free(t->keys);
    t->slots = NULL;
    t->keys = NULL;
    t->mask = 0;
    t->count = 0;
}

static struct kg_ind_slot *slots_new(size_t n)
{
    struct kg_ind_slot *sl = kg_ind_table_alloc(n * sizeof(*sl));
    for (size_t i = 0; i < n; i++)
        sl[i] = (struct kg_ind_slot){0, KG_IND_NONE};
    return sl;
}

/* Places an entry known to be absent, in a table known to have room;
 * returns its slot index. */
static uint32_t place(struct kg_ind_slot *slots, uint32_t mask, uint64_t hash, uint32_t tag, uint32_t id)
{
    uint32_t i = (uint32_t)hash & mask;
    while (slots[i].id != KG_IND_NONE)
        i = (i + 1) & mask;
    slots[i].tag = tag;
    slots[i].id = id;
    return i;
}

void kg_ind_htab_insert(struct kg_ind_htab *t, uint64_t hash, uint32_t tag, uint32_t id,
                        kg_ind_rehash_fn rehash, const void *ctx, const void *key, size_t key_len)
{
    const size_t stride = t->key_stride;
    if (stride && key_len >= stride) abort(); /* caller's bug: the key does not fit */
    size_t size = t->slots ? (size_t)t->mask + 1 : 0;
    /* Keep the load factor at or below 3/4: with a good hash, linear
     * probing then reads about 2.5 slots per hit and 8.5 per miss at worst
     * (Knuth, TAOCP vol. 3, 6.4) — two cache lines of 8-byte slots — and
     * every probe sequence reaches an empty slot. */
    if ((size_t)t->count + 1 > size / 4 * 3) {
        size_t nsize = size ? size * 2 : 16;
        if (nsize > ((size_t)1 << 32)) abort(); /* unreachable: ids are 31-bit */
        struct kg_ind_slot *ns = slots_new(nsize);
        uint8_t *nk = stride ? kg_ind_table_alloc(nsize * stride) : NULL;
        if (nk) memset(nk, 0, nsize * stride);
        /* A slot keeps only the tag, not the hash that chose its place: the
         * owner recomputes it (control plane, once per doubling). */
        for (size_t i = 0; i < size; i++) {
            const struct kg_ind_slot *sl = &t->slots[i];
            if (sl->id == KG_IND_NONE) continue;
            uint32_t j = place(ns, (uint32_t)(nsize - 1), rehash(ctx, sl->tag, sl->id), sl->tag, sl->id);
            if (stride) memcpy(nk + (size_t)j * stride, t->keys + i * stride, stride);
        }
        free(t->slots);
        free(t->keys);
        t->slots = ns;
        t->keys = nk;
        t->mask = (uint32_t)(nsize - 1);
    }
    uint32_t j = place(t->slots, t->mask, hash, tag, id);
    if (stride) {
        uint8_t *k = t->keys + (size_t)j * stride;
        k[0] = (uint8_t)key_len;
        memcpy(k + 1, key, key_len);
    }
    t->count++;
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

/* --- IPv4 ----------------------------------------------------------------------------- */

#define V4_FLAG 0x80000000u

/* The index hash of a /plen entry: the length enters the seed so the
 * per-length tables do not share clusters. */
static inline uint64_t v4_hash(uint32_t masked, unsigned plen, uint64_t seed)
{
    return kg_ind_hash32(masked, seed + plen);
}

struct v4_rehash_ctx {
    unsigned plen;
    uint64_t seed;
};

static uint64_t v4_rehash(const void *ctx, uint32_t tag, uint32_t id)
{
    (void)id;
    const struct v4_rehash_ctx *c = ctx;
    return v4_hash(tag, c->plen, c->seed);
}

void kg_ind_v4_free(struct kg_ind_v4 *x)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(x->tabs); i++)
        kg_ind_htab_free(&x->tabs[i]);
    free(x->l1);
    free(x->l2);
    memset(x, 0, sizeof(*x));
}

void kg_ind_v4_build_filters(struct kg_ind_v4 *x, uint64_t seed)
{
    for (unsigned plen = 25; plen <= 32; plen++) {
        struct v4_rehash_ctx c = {plen, seed};
        if (x->tabs[plen].count) kg_ind_htab_build_filter(&x->tabs[plen], v4_rehash, &c);
    }
}

uint32_t kg_ind_v4_find(const struct kg_ind_v4 *x, uint32_t masked, unsigned plen, uint64_t seed)
{
    const struct kg_ind_htab *t = &x->tabs[plen];
    if (t->count == 0) return KG_IND_NONE;
    uint64_t h = v4_hash(masked, plen, seed);
    if (!kg_ind_filter_test(&t->filter, h)) return KG_IND_NONE;
    uint32_t pos = kg_ind_htab_start(t, h);
    /* The tag is the address: a tag match is the match. */
    return kg_ind_htab_next(t, masked, &pos);
}

void kg_ind_v4_insert(struct kg_ind_v4 *x, uint32_t masked, unsigned plen, uint32_t id, uint64_t seed)
{
    struct v4_rehash_ctx c = {plen, seed};
    kg_ind_htab_insert(&x->tabs[plen], v4_hash(masked, plen, seed), masked, id, v4_rehash, &c, NULL, 0);
}

/* Calls fn for every entry of a table. */
static void htab_each(const struct kg_ind_htab *t, void (*fn)(void *arg, uint32_t tag, uint32_t id),
                      void *arg)
{
    if (!t->slots) return;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].id != KG_IND_NONE) fn(arg, t->slots[i].tag, t->slots[i].id);
}

struct v4_build {
    struct kg_ind_v4 *x;
    uint32_t *parent;
    unsigned plen;
    size_t blocks_cap;
};

/* Writes id + 1 over the entries [first, first + count) of `tab`, after
 * noting in parent[] what covered the prefix before (the entries are
 * written shortest prefix first, so that is the next shorter one). The
 * flag bit of each entry is kept. */
static void expand(uint32_t *tab, uint32_t first, uint32_t count, uint32_t id, uint32_t *parent)
{
    if (parent) {
        uint32_t prev = tab[first] & ~V4_FLAG;
        parent[id] = prev ? prev - 1 : KG_IND_NONE;
    }
    for (uint32_t i = first; i < first + count; i++)
        tab[i] = (tab[i] & V4_FLAG) | (id + 1);
}

static void build_short(void *arg, uint32_t a, uint32_t id)
{
    struct v4_build *b = arg;
    expand(b->x->l1, a >> 16, 1u << (16 - b->plen), id, b->parent);
}

/* Gives the /16 of `a` a block of 256 /24 entries, if it has none yet,
 * filled with what l1 says for the whole /16. */
static uint32_t *block_of(struct v4_build *b, uint32_t a)
{
    struct kg_ind_v4 *x = b->x;
    uint32_t *e = &x->l1[a >> 16];
    if (!(*e & V4_FLAG)) {
        if (x->nblocks == b->blocks_cap) {
            b->blocks_cap = b->blocks_cap ? b->blocks_cap * 2 : 64;
            x->l2 = kg_xrealloc(x->l2, b->blocks_cap * 256 * sizeof(*x->l2));
        }
        uint32_t *blk = &x->l2[(size_t)x->nblocks * 256];
        for (int i = 0; i < 256; i++)
            blk[i] = *e;
        *e = V4_FLAG | x->nblocks++;
    }
    return &x->l2[(size_t)(*e & ~V4_FLAG) * 256];
}

static void build_block(void *arg, uint32_t a, uint32_t id)
{
    (void)id;
    block_of(arg, a);
}

static void build_mid(void *arg, uint32_t a, uint32_t id)
{
    struct v4_build *b = arg;
    expand(block_of(b, a), (a >> 8) & 255, 1u << (24 - b->plen), id, b->parent);
}

static void build_long(void *arg, uint32_t a, uint32_t id)
{
    (void)id;
    uint32_t *blk = block_of(arg, a);
    blk[(a >> 8) & 255] |= V4_FLAG;
}

void kg_ind_v4_build(struct kg_ind_v4 *x, uint32_t *parent)
{
    free(x->l1);
    free(x->l2);
    x->l1 = x->l2 = NULL;
    x->nblocks = 0;
    x->nlong = 0;
    bool any = false;
    for (unsigned plen = 0; plen < 32; plen++)
        any = any || x->tabs[plen].count;
    if (!any) return;

    struct v4_build b = {.x = x, .parent = parent};
    x->l1 = kg_xcalloc(1u << 16, sizeof(*x->l1));
    /* Shortest first, so a longer prefix overwrites the shorter ones it is
     * inside of and records them as its parent. */
    for (b.plen = 0; b.plen <= 16; b.plen++)
        htab_each(&x->tabs[b.plen], build_short, &b);
    /* Blocks for every /16 that holds anything longer than /16, all made
     * before any /17-/24 is written so each starts as a copy of l1. */
    for (b.plen = 17; b.plen < 32; b.plen++)
        htab_each(&x->tabs[b.plen], build_block, &b);
    for (b.plen = 17; b.plen <= 24; b.plen++)
        htab_each(&x->tabs[b.plen], build_mid, &b);
    for (b.plen = 31; b.plen >= 25; b.plen--) {
        if (!x->tabs[b.plen].count) continue;
        htab_each(&x->tabs[b.plen], build_long, &b);
        x->long_lens[x->nlong++] = (uint8_t)b.plen;
    }
    if (x->nblocks && x->nblocks < b.blocks_cap)
        x->l2 = kg_xrealloc(x->l2, (size_t)x->nblocks * 256 * sizeof(*x->l2));
    /* /0-/24 now live in l1/l2 only. */
    for (unsigned plen = 0; plen <= 24; plen++)
        kg_ind_htab_free(&x->tabs[plen]);
}

/* --- IPv6 ----------------------------------------------------------------------------- */

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

/* The masks of a /plen prefix over the two host-order words of an address. */
static inline void v6_masks(unsigned plen, uint64_t *mhi, uint64_t *mlo)
{
    /* Shifts by 64 are undefined in C: the edges are spelled out. */
    *mhi = plen >= 64 ? ~0ull : plen == 0 ? 0 : ~0ull << (64 - plen);
    *mlo = plen <= 64 ? 0 : plen >= 128 ? ~0ull : ~0ull << (128 - plen);
}

void kg_ind_v6_load(const uint8_t *a, unsigned plen, uint64_t *hi, uint64_t *lo)
{
    uint64_t mhi, mlo;
    v6_masks(plen, &mhi, &mlo);
    *hi = load_be64(a) & mhi;
    *lo = load_be64(a + 8) & mlo;
}

static inline uint64_t v6_hash(uint64_t hi, uint64_t lo, unsigned plen, uint64_t seed)
{
    uint64_t h = round64(seed + plen, hi);
    h = round64(h, lo);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

void kg_ind_v6_free(struct kg_ind_v6 *x)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(x->tabs); i++) {
        free(x->tabs[i].slots);
        kg_ind_filter_free(&x->tabs[i].filter);
    }
    memset(x, 0, sizeof(*x));
}

/* Probe of one length's table for the masked address (hi, lo) of hash h. */
static uint32_t probe6(const struct kg_ind_htab6 *t, uint64_t hi, uint64_t lo, uint64_t h)
{
    if (!t->slots || !kg_ind_filter_test(&t->filter, h)) return KG_IND_NONE;
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        const struct kg_ind_slot6 *sl = &t->slots[i];
        if (sl->id == KG_IND_NONE) return KG_IND_NONE;
        if (sl->hi == hi && sl->lo == lo) return sl->id;
    }
}

uint32_t kg_ind_v6_find(const struct kg_ind_v6 *x, uint64_t hi, uint64_t lo, unsigned plen, uint64_t seed)
{
    return probe6(&x->tabs[plen], hi, lo, v6_hash(hi, lo, plen, seed));
}

static void place6(struct kg_ind_htab6 *t, uint64_t hi, uint64_t lo, uint32_t id, uint64_t h)
{
    uint32_t i = (uint32_t)h & t->mask;
    while (t->slots[i].id != KG_IND_NONE)
        i = (i + 1) & t->mask;
    t->slots[i] = (struct kg_ind_slot6){hi, lo, id, 0};
}

void kg_ind_v6_build_filters(struct kg_ind_v6 *x, uint64_t seed)
{
    for (unsigned i = 0; i < x->nlens; i++) {
        unsigned plen = x->lens[i];
        struct kg_ind_htab6 *t = &x->tabs[plen];
        kg_ind_filter_init(&t->filter, t->count);
        if (!t->filter.words) continue;
        for (size_t j = 0; j <= t->mask; j++) {
            const struct kg_ind_slot6 *sl = &t->slots[j];
            if (sl->id != KG_IND_NONE) kg_ind_filter_add(&t->filter, v6_hash(sl->hi, sl->lo, plen, seed));
        }
    }
}

unsigned kg_ind_v6_hashes(const struct kg_ind_v6 *x, const uint8_t *addr, uint64_t seed, uint64_t *h,
                          unsigned cap)
{
    uint64_t ahi = load_be64(addr), alo = load_be64(addr + 8);
    unsigned n = KG_MIN((unsigned)x->nlens, cap);
    for (unsigned i = 0; i < n; i++) {
        unsigned plen = x->lens[i];
        uint64_t mhi, mlo;
        v6_masks(plen, &mhi, &mlo);
        h[i] = v6_hash(ahi & mhi, alo & mlo, plen, seed);
        kg_ind_filter_prefetch(&x->tabs[plen].filter, h[i]);
    }
    return n;
}

void kg_ind_v6_prefetch_hashed(const struct kg_ind_v6 *x, const uint64_t *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const struct kg_ind_htab6 *t = &x->tabs[x->lens[i]];
        if (kg_ind_filter_test(&t->filter, h[i])) __builtin_prefetch(&t->slots[(uint32_t)h[i] & t->mask]);
    }
}

uint32_t kg_ind_v6_find_hashed(const struct kg_ind_v6 *x, const uint8_t *addr, unsigned i, uint64_t h)
{
    unsigned plen = x->lens[i];
    uint64_t hi, lo;
    kg_ind_v6_load(addr, plen, &hi, &lo);
    return probe6(&x->tabs[plen], hi, lo, h);
}

void kg_ind_v6_insert(struct kg_ind_v6 *x, uint64_t hi, uint64_t lo, unsigned plen, uint32_t id,
                      uint64_t seed)
{
    struct kg_ind_htab6 *t = &x->tabs[plen];
    if (t->count == 0 && !t->slots) {
        /* A new length: keep lens[] sorted longest first. */
        unsigned i = x->nlens;
        while (i > 0 && x->lens[i - 1] < plen) {
            x->lens[i] = x->lens[i - 1];
            i--;
        }
        x->lens[i] = (uint8_t)plen;
        x->nlens++;
    }
    size_t size = t->slots ? (size_t)t->mask + 1 : 0;
    if ((size_t)t->count + 1 > size / 4 * 3) {
        size_t nsize = size ? size * 2 : 16;
        struct kg_ind_htab6 nt = {kg_ind_table_alloc(nsize * sizeof(*nt.slots)), (uint32_t)(nsize - 1), t->count,
                                  {NULL, 0}};
        for (size_t i = 0; i < nsize; i++)
            nt.slots[i].id = KG_IND_NONE;
        for (size_t i = 0; i < size; i++) {
            const struct kg_ind_slot6 *sl = &t->slots[i];
            if (sl->id != KG_IND_NONE) place6(&nt, sl->hi, sl->lo, sl->id, v6_hash(sl->hi, sl->lo, plen, seed));
        }
        free(t->slots);
        *t = nt;
    }
    place6(t, hi, lo, id, v6_hash(hi, lo, plen, seed));
    t->count++;
}
