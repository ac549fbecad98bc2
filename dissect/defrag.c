/*
 * dissect/defrag.c — IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5)
 * fragment reassembly for one worker.
 *
 * Threads: one kg_defrag per worker thread, touched only by it; no locks.
 *
 * Memory: a fixed pool of 1040-byte slots, sized from max_bytes and
 * allocated once by kg_defrag_new() (the operating system backs it lazily,
 * as slots are first used); there is no allocation on the data path. A
 * slot holds either a datagram record (with the first fragment's header
 * inline) or one 1 KiB page of datagram data followed by its received-block
 * bitmap. bytes_held = slots in use * slot size, so it can never exceed
 * max_bytes; when the pool lacks slots for a fragment, the least recently
 * used other datagrams are evicted until it has them. Pages (not one
 * buffer per datagram) keep a tiny fragment at a large offset from costing
 * 64 KiB: a datagram costs one slot per KiB of data it actually has.
 * Resident memory grows to the pool's high-water mark and stays there.
 *
 * Per datagram: data lives in the pages that cover it; each page's bitmap
 * has one bit per 8-byte block. Fragment offsets are in 8-byte units and
 * non-last fragments carry a multiple of 8 bytes, so a block is either
 * wholly held or not; only the datagram's final block may be short, and
 * nothing may extend past it. The reassembled datagram takes its header
 * from the first fragment (RFC 791 section 3.2; RFC 8200 section 4.5).
 *
 * Overlap policy (see docs/DEFRAG.md): bytes already held are never
 * overwritten. A fragment whose bytes are all held, and identical, is a
 * duplicate (SPAN ports often show a packet twice) and is harmless. Any
 * other overlap is counted; a conflict is counted when the overlapping
 * bytes differ or fragments disagree on the datagram's end. IPv4 keeps the
 * first data ("first wins") and stores the new fragment's other bytes.
 * IPv6 discards the whole datagram (RFC 5722; errata 3089 for duplicates).
 *
 * Lookup: chained hash on (family, src, dst, id, protocol) for IPv4 and
 * (src, dst, id) for IPv6, hashed with SipHash-1-3 under a per-instance
 * random key, so crafted traffic cannot aim at one bucket. Two intrusive
 * lists order the datagrams by creation (timeouts: expiry pops from the
 * oldest end, O(expired)) and by last use (eviction under memory pressure).
 */
#include "dissect/defrag.h"

#include "common/kg_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#define DEFRAG_MAX_LEN 65535u         /* largest IPv4 total length / IPv6 payload length */
#define DEFRAG_OUT_MAX (40u + 65535u) /* IPv6 header + largest payload */
#define DEFRAG_MIN_SLOTS 16u
#define DEFRAG_DEFAULT_TIMEOUT_US 30000000u
#define DEFRAG_V6_MAX_EXT 16u /* extension headers walked before the fragment header */

#define PAGE_SHIFT 10
#define PAGE_DATA (1u << PAGE_SHIFT)    /* data bytes per page */
#define PAGE_BLOCKS (PAGE_DATA / 8)     /* 8-byte blocks per page */
#define PAGE_BM (PAGE_BLOCKS / 8)       /* bitmap bytes per page */
#define SLOT_SIZE (PAGE_DATA + PAGE_BM) /* 1040 */
#define DATA_PAGES (65536u / PAGE_DATA) /* pages covering any fragmentable part */
#define HDR_MAX 600u                    /* longest first-fragment header kept (IPv4: 60) */

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ---- lists --------------------------------------------------------------- */

/* Circular doubly-linked list with a sentinel. */
struct dlink {
    struct dlink *prev, *next;
};

static void dlist_init(struct dlink *head)
{
    head->prev = head->next = head;
}

static void dlist_push_tail(struct dlink *head, struct dlink *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void dlist_unlink(struct dlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- state --------------------------------------------------------------- */

/* Reassembly key; zero-filled before use so that memcmp is exact. */
struct dkey {
    uint8_t src[16], dst[16];
    uint32_t id;
    uint8_t family, proto; /* proto: IPv4 only (RFC 791); 0 for IPv6 (RFC 8200 4.5) */
    uint8_t pad[2];
};

/* A datagram being reassembled; lives in one pool slot. */
struct dg {
    struct dg *hnext, **hpprev; /* bucket chain */
    struct dlink age;           /* creation order: oldest at the head */
    struct dlink lru;           /* use order: least recently used at the head */
    uint64_t created_us;
    struct dkey key;
    uint32_t hash;
    uint32_t total;            /* fragmentable-part length, once the last fragment is in */
    uint32_t max_end;          /* highest byte end held */
    uint32_t blocks;           /* 8-byte blocks held */
    uint64_t page_mask;        /* bit i: page[i] is valid */
    uint32_t page[DATA_PAGES]; /* slot index + 1 of each KiB of data */
    uint16_t hdr_len;          /* 0 until the first fragment is in */
    uint16_t nh_pos;           /* IPv6: offset in hdr of the Next Header byte naming the fragment header */
    uint8_t nh_val;            /* IPv6: the fragment header's Next Header */
    bool have_last;
    uint8_t hdr[HDR_MAX]; /* IPv4: first fragment's header; IPv6: its unfragmentable part */
};

union slot {
    struct dg dg;
    uint8_t page[SLOT_SIZE]; /* PAGE_DATA data bytes, then PAGE_BM bitmap bytes */
    uint32_t next_free;      /* free list: slot index + 1, 0 = end */
};
_Static_assert(sizeof(struct dg) <= SLOT_SIZE, "a datagram record must fit in a slot");
_Static_assert(sizeof(union slot) == SLOT_SIZE, "slots are pages");

struct kg_defrag {
    struct kg_defrag_stats st;
    uint64_t timeout_us;
    uint64_t sip_k0, sip_k1;
    union slot *slots; /* the pool */
    uint32_t nslots;
    uint32_t used;      /* slots in use */
    uint32_t hw;        /* slots [hw, nslots) never used yet: left untouched */
    uint32_t free_head; /* index + 1 */
    struct dg **buckets;
    uint32_t bucket_mask;
    struct dlink age_list, lru_list;
    uint8_t *out; /* DEFRAG_OUT_MAX bytes, reused for every result */
};

/* ---- hashing: SipHash-1-3 (Aumasson & Bernstein) over the 40-byte key ---- */

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                             \
    do {                                                                                                     \
        v0 += v1;                                                                                            \
        v1 = ROTL64(v1, 13);                                                                                 \
        v1 ^= v0;                                                                                            \
        v0 = ROTL64(v0, 32);                                                                                 \
        v2 += v3;                                                                                            \
        v3 = ROTL64(v3, 16);                                                                                 \
        v3 ^= v2;                                                                                            \
        v0 += v3;                                                                                            \
        v3 = ROTL64(v3, 21);                                                                                 \
        v3 ^= v0;                                                                                            \
        v2 += v1;                                                                                            \
        v1 = ROTL64(v1, 17);                                                                                 \
        v1 ^= v2;                                                                                            \
        v2 = ROTL64(v2, 32);                                                                                 \
    } while (0)

static uint32_t key_hash(const struct kg_defrag *df, const struct dkey *k)
{
    _Static_assert(sizeof(struct dkey) == 40, "dkey is hashed as five 64-bit words");
    uint64_t v0 = df->sip_k0 ^ 0x736f6d6570736575ull, v1 = df->sip_k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = df->sip_k0 ^ 0x6c7967656e657261ull, v3 = df->sip_k1 ^ 0x7465646279746573ull;
    const uint8_t *p = (const uint8_t *)k;
    for (size_t i = 0; i < sizeof(*k); i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8); /* host order: the hash only has to be consistent */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)sizeof(*k) << 56;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    return (uint32_t)(h ^ (h >> 32));
}

/* ---- the slot pool -------------------------------------------------------- */

static inline uint32_t slots_free(const struct kg_defrag *df)
{
    return df->nslots - df->used;
}

/* Takes a slot; the caller made sure one is free. Returns its index + 1. */
static uint32_t slot_take(struct kg_defrag *df)
{
    uint32_t i;
    if (df->free_head) {
        i = df->free_head - 1;
        df->free_head = df->slots[i].next_free;
    } else {
        i = df->hw++;
    }
    df->used++;
    df->st.bytes_held = (uint64_t)df->used * SLOT_SIZE;
    return i + 1;
}

static void slot_give(struct kg_defrag *df, uint32_t ref)
{
    df->slots[ref - 1].next_free = df->free_head;
    df->free_head = ref;
    df->used--;
    df->st.bytes_held = (uint64_t)df->used * SLOT_SIZE;
}

static inline uint8_t *page_of(struct kg_defrag *df, const struct dg *g, uint32_t pg)
{
    return (g->page_mask >> pg) & 1 ? df->slots[g->page[pg] - 1].page : NULL;
}

/* ---- datagram records ---------------------------------------------------- */

static void dg_free(struct kg_defrag *df, struct dg *g)
{
    *g->hpprev = g->hnext;
    if (g->hnext) g->hnext->hpprev = g->hpprev;
    dlist_unlink(&g->age);
    dlist_unlink(&g->lru);
    df->st.datagrams_held--;
    for (uint64_t m = g->page_mask; m; m &= m - 1)
        slot_give(df, g->page[__builtin_ctzll(m)]);
    slot_give(df, (uint32_t)((union slot *)(void *)g - df->slots) + 1);
}

/* Evicts least recently used datagrams other than `self` until `need`
 * slots are free. `self`, when given, is the most recently used (the
 * caller touched it), so eviction stops when it reaches the head. False
 * when even that is not enough. */
static bool make_room(struct kg_defrag *df, uint32_t need, const struct dg *self)
{
    while (slots_free(df) < need) {
        struct dlink *l = df->lru_list.next;
        if (l == &df->lru_list) return false;
        struct dg *v = CONTAINER_OF(l, struct dg, lru);
        if (v == self) return false;
        dg_free(df, v);
        df->st.evicted_for_memory++;
    }
    return true;
}

static bool expired(const struct kg_defrag *df, const struct dg *g, uint64_t now_us)
{
    /* Packet time can step back (merged or replayed captures): a datagram
     * that looks newer than now is not expired. */
    return now_us >= g->created_us && now_us - g->created_us >= df->timeout_us;
}

static struct dg *dg_find(struct kg_defrag *df, const struct dkey *k, uint32_t h)
{
    for (struct dg *g = df->buckets[h & df->bucket_mask]; g; g = g->hnext)
        if (g->hash == h && memcmp(&g->key, k, sizeof(*k)) == 0) return g;
    return NULL;
}

/* Creates an empty record; the caller made sure a slot is free. */
static struct dg *dg_create(struct kg_defrag *df, const struct dkey *k, uint32_t h, uint64_t now_us)
{
    struct dg *g = &df->slots[slot_take(df) - 1].dg;
    memset(g, 0, offsetof(struct dg, page)); /* page[] is valid per page_mask; hdr per hdr_len */
    g->hdr_len = 0;
    g->have_last = false;
    g->key = *k;
    g->hash = h;
    g->created_us = now_us;
    struct dg **b = &df->buckets[h & df->bucket_mask];
    g->hnext = *b;
    g->hpprev = b;
    if (*b) (*b)->hpprev = &g->hnext;
    *b = g;
    dlist_push_tail(&df->age_list, &g->age);
    dlist_push_tail(&df->lru_list, &g->lru);
    df->st.datagrams_held++;
    return g;
}

/* ---- parsing one fragment ------------------------------------------------ */

enum parse_result { P_FRAG, P_WHOLE, P_INVALID, P_TOO_BIG };

struct frag {
    struct dkey key;
    const uint8_t *hdr; /* IPv4 header / IPv6 unfragmentable part */
    uint32_t hdr_len;
    uint32_t nh_pos; /* IPv6: Next Header byte naming the fragment header, in hdr */
    uint8_t nh_val;  /* IPv6: the fragment header's Next Header */
    const uint8_t *data;
    uint32_t len;
    uint32_t off;
    bool mf;
};

static enum parse_result parse_v4(const uint8_t *l3, uint32_t l3_len, struct frag *f)
{
    if (l3_len < 20 || (l3[0] >> 4) != 4) return P_INVALID;
    uint32_t ihl = (uint32_t)(l3[0] & 0x0f) * 4;
    uint32_t tot = rd16(l3 + 2);
    if (ihl < 20 || tot < ihl || tot > l3_len) return P_INVALID; /* tot > l3_len: cut by snaplen */
    uint16_t fo = rd16(l3 + 6);
    f->hdr = l3;
    f->hdr_len = ihl;
    f->data = l3 + ihl;
    f->len = tot - ihl;
    f->off = (uint32_t)(fo & 0x1fff) * 8;
    f->mf = (fo & 0x2000) != 0;
    if (!f->mf && f->off == 0) {
        f->hdr_len = tot; /* not a fragment: all of it is returned as is */
        f->len = 0;
        return P_WHOLE;
    }
    /* RFC 791: a non-last fragment carries a multiple of 8 bytes. Like Linux
     * (ip_frag_queue), trim the excess rather than drop, so the sensor keeps
     * the bytes the receiving host keeps. */
    if (f->mf) f->len &= ~7u;
    if (f->len == 0) return P_INVALID;
    if (f->off + f->len > DEFRAG_MAX_LEN) return P_INVALID;
    if (ihl + f->off + f->len > DEFRAG_MAX_LEN) return P_TOO_BIG;
    memset(&f->key, 0, sizeof(f->key));
    f->key.family = 4;
    f->key.proto = l3[9];
    f->key.id = rd16(l3 + 4);
    memcpy(f->key.src, l3 + 12, 4);
    memcpy(f->key.dst, l3 + 16, 4);
    return P_FRAG;
}

static enum parse_result parse_v6(const uint8_t *l3, uint32_t l3_len, struct frag *f)
{
    if (l3_len < 40 || (l3[0] >> 4) != 6) return P_INVALID;
    uint32_t plen = rd16(l3 + 4);
    /* plen 0 is a jumbogram, which cannot carry a fragment header (RFC 2675 section 3). */
    if (plen == 0 || 40 + plen > l3_len) return P_INVALID;
    uint32_t end = 40 + plen;
    uint32_t nh_pos = 6, off = 40;
    uint8_t nh = l3[6];
    /* Walk the headers that can precede the fragment header (RFC 8200 4.1:
     * hop-by-hop, destination options, routing; plus the ones kg_decode()
     * also walks, so that both agree on what is a fragment). */
    for (unsigned i = 0;; i++) {
        if (nh == 44) break;
        if (i >= DEFRAG_V6_MAX_EXT) return P_INVALID;
        uint32_t el;
        if (nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140) {
            if (off + 8 > end) return P_INVALID;
            el = ((uint32_t)l3[off + 1] + 1) * 8;
        } else if (nh == 51) { /* AH: length in 4-octet units minus 2 */
            if (off + 8 > end) return P_INVALID;
            el = ((uint32_t)l3[off + 1] + 2) * 4;
        } else {
            /* No fragment header: an ordinary datagram, returned as is. */
            f->hdr = l3;
            f->hdr_len = end;
            f->nh_pos = 6;
            f->nh_val = l3[6];
            f->data = l3 + end;
            f->len = 0;
            return P_WHOLE;
        }
        nh_pos = off;
        nh = l3[off];
        off += el;
        if (off > end) return P_INVALID;
    }
    if (off + 8 > end) return P_INVALID;
    const uint8_t *fh = l3 + off;
    uint16_t fo = rd16(fh + 2);
    f->hdr = l3;
    f->hdr_len = off;
    f->nh_pos = nh_pos;
    f->nh_val = fh[0];
    f->data = fh + 8;
    f->len = end - off - 8;
    f->off = fo & 0xfff8;
    f->mf = (fo & 1) != 0;
    if (!f->mf && f->off == 0) return P_WHOLE; /* atomic fragment: processed alone (RFC 6946) */
    /* RFC 8200 4.5: a non-last fragment whose length is not a multiple of 8 is discarded. */
    if (f->mf && (f->len & 7)) return P_INVALID;
    if (f->len == 0) return P_INVALID;
    /* Only the first fragment's unfragmentable part is kept; longer than a
     * record holds is not seen in practice (40 bytes + a few options). */
    if (f->off == 0 && off > HDR_MAX) return P_INVALID;
    if (f->off + f->len > DEFRAG_MAX_LEN) return P_INVALID;
    if (off - 40 + f->off + f->len > DEFRAG_MAX_LEN) return P_TOO_BIG;
    memset(&f->key, 0, sizeof(f->key));
    f->key.family = 6;
    f->key.id = rd32(fh + 4);
    memcpy(f->key.src, l3 + 8, 16);
    memcpy(f->key.dst, l3 + 24, 16);
    return P_FRAG;
}

/* ---- output -------------------------------------------------------------- */

static uint16_t ipv4_checksum(const uint8_t *h, uint32_t len)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += rd16(h + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Writes a header into the output buffer and fixes its fields for `len`
 * bytes of data after it. family 4: an IPv4 header; family 6: an
 * unfragmentable part whose byte nh_pos becomes nh_val. */
static void emit_header(struct kg_defrag *df, uint8_t family, const uint8_t *hdr, uint32_t hdr_len,
                        uint32_t nh_pos, uint8_t nh_val, uint32_t len)
{
    uint8_t *o = df->out;
    memmove(o, hdr, hdr_len); /* hdr may lie in the output buffer (see kg_defrag_add) */
    if (family == 4) {
        wr16(o + 2, (uint16_t)(hdr_len + len));
        wr16(o + 6, rd16(o + 6) & 0xc000); /* keep the reserved bit and DF; clear MF and offset */
        o[10] = o[11] = 0;
        wr16(o + 10, ipv4_checksum(o, hdr_len));
    } else {
        o[nh_pos] = nh_val;
        wr16(o + 4, (uint16_t)(hdr_len - 40 + len));
    }
}

/* ---- adding a fragment to a datagram ------------------------------------- */

static inline bool bit_get(const uint8_t *bm, uint32_t b)
{
    return (bm[b >> 3] >> (b & 7)) & 1;
}

/* First held block in [b, b1), or b1: a byte at a time where it can. */
static inline uint32_t run_end(const uint8_t *bm, uint32_t b, uint32_t b1)
{
    while (b < b1) {
        if ((b & 7) == 0 && b + 8 <= b1 && bm[b >> 3] == 0) {
            b += 8;
            continue;
        }
        if (bit_get(bm, b)) break;
        b++;
    }
    return b;
}

/* Sets bits [b, e). */
static inline void bits_set(uint8_t *bm, uint32_t b, uint32_t e)
{
    while (b < e && (b & 7)) {
        bm[b >> 3] |= (uint8_t)(1u << (b & 7));
        b++;
    }
    if (e - b >= 8) {
        memset(bm + (b >> 3), 0xff, (e - b) >> 3);
        b += (e - b) & ~7u;
    }
    while (b < e) {
        bm[b >> 3] |= (uint8_t)(1u << (b & 7));
        b++;
    }
}

/* Compares a fragment with what g holds: *held = blocks of [off, end)
 * already held, *differ = one of them holds other bytes. */
static void dg_scan(struct kg_defrag *df, const struct dg *g, const struct frag *f, uint32_t *held,
                    bool *differ)
{
    const uint32_t off = f->off, end = f->off + f->len;
    *held = 0;
    *differ = false;
    if (!g->blocks) return;
    for (uint32_t pg = off >> PAGE_SHIFT; pg <= (end - 1) >> PAGE_SHIFT; pg++) {
        const uint8_t *page = page_of(df, g, pg);
        if (!page) continue;
        const uint8_t *bm = page + PAGE_DATA;
        uint32_t base = pg << PAGE_SHIFT;
        uint32_t s = KG_MAX(off, base), e = KG_MIN(end, base + PAGE_DATA);
        for (uint32_t b = (s - base) / 8; b < (e - base + 7) / 8; b++) {
            if ((b & 7) == 0 && bm[b >> 3] == 0) { /* 8 free blocks: skip them at once */
                b += 7;
                continue;
            }
            if (!bit_get(bm, b)) continue;
            (*held)++;
            uint32_t bs = base + b * 8, be = KG_MIN(bs + 8, end);
            if (!*differ && memcmp(page + b * 8, f->data + (bs - off), be - bs) != 0) *differ = true;
        }
    }
}

/* Pages of [off, end) that g does not have yet. */
static uint32_t pages_missing(const struct dg *g, uint32_t off, uint32_t end)
{
    uint32_t n = 0;
    for (uint32_t pg = off >> PAGE_SHIFT; pg <= (end - 1) >> PAGE_SHIFT; pg++)
        n += g ? !((g->page_mask >> pg) & 1) : 1;
    return n;
}

/* Stores the blocks of f that g does not hold; the pool has the pages. */
static void dg_store(struct kg_defrag *df, struct dg *g, const struct frag *f)
{
    const uint32_t off = f->off, end = f->off + f->len;
    for (uint32_t pg = off >> PAGE_SHIFT; pg <= (end - 1) >> PAGE_SHIFT; pg++) {
        if (!((g->page_mask >> pg) & 1)) {
            g->page[pg] = slot_take(df);
            g->page_mask |= 1ull << pg;
            memset(df->slots[g->page[pg] - 1].page + PAGE_DATA, 0, PAGE_BM);
        }
        uint8_t *page = df->slots[g->page[pg] - 1].page;
        uint8_t *bm = page + PAGE_DATA;
        uint32_t base = pg << PAGE_SHIFT;
        uint32_t s = KG_MAX(off, base), e = KG_MIN(end, base + PAGE_DATA);
        uint32_t b = (s - base) / 8, b1 = (e - base + 7) / 8;
        while (b < b1) { /* runs of free blocks, copied at once (first wins for the rest) */
            if (bit_get(bm, b)) {
                b++;
                continue;
            }
            uint32_t r = run_end(bm, b, b1);
            bits_set(bm, b, r);
            uint32_t rs = base + b * 8, re = KG_MIN(base + r * 8, end);
            memcpy(page + b * 8, f->data + (rs - off), re - rs);
            g->blocks += r - b;
            b = r;
        }
    }
    if (end > g->max_end) g->max_end = end;
    if (!f->mf) {
        g->have_last = true;
        g->total = end;
    }
    if (off == 0 && !g->hdr_len) {
        memcpy(g->hdr, f->hdr, f->hdr_len);
        g->hdr_len = (uint16_t)f->hdr_len;
        g->nh_pos = (uint16_t)f->nh_pos;
        g->nh_val = f->nh_val;
    }
}

/* Checks a fragment against an existing datagram. Returns 0 to go on
 * storing it, -1 when it is dropped (IPv6: with the whole datagram). */
static int dg_check(struct kg_defrag *df, struct dg *g, const struct frag *f)
{
    const bool v6 = g->key.family == 6;
    const uint32_t off = f->off, end = f->off + f->len;

    /* The last fragment fixes the length: nothing may lie beyond it, and
     * two last fragments must agree. */
    bool end_conflict =
        f->mf ? (g->have_last && end > g->total) : (g->have_last ? end != g->total : g->max_end > end);
    if (end_conflict) {
        df->st.overlap_conflicts++;
        if (v6) dg_free(df, g);
        return -1;
    }
    /* The datagram's header comes from its first fragment, which may carry
     * more IPv4 options than the fragment the parser checked. */
    uint32_t hdr_len = g->hdr_len ? g->hdr_len : off == 0 ? f->hdr_len : 0;
    if (hdr_len && (v6 ? hdr_len - 40 : hdr_len) + KG_MAX(end, g->max_end) > DEFRAG_MAX_LEN) {
        df->st.too_big++;
        return -1;
    }
    uint32_t held;
    bool differ;
    dg_scan(df, g, f, &held, &differ);
    if (!held) return 0;
    if (held == (end + 7) / 8 - off / 8 && !differ) {
        df->st.duplicates++;
        return 0; /* harmless; may still bring the "last fragment" mark */
    }
    df->st.overlaps++;
    if (differ) df->st.overlap_conflicts++;
    if (v6) { /* RFC 5722: discard the whole datagram */
        dg_free(df, g);
        return -1;
    }
    return 0;
}

/* ---- public API ------------------------------------------------------------ */

struct kg_defrag *kg_defrag_new(uint64_t max_bytes, uint64_t timeout_us)
{
    struct kg_defrag *df = calloc(1, sizeof(*df));
    if (!df) return NULL;
    uint64_t n = max_bytes / SLOT_SIZE;
    if (n < DEFRAG_MIN_SLOTS) n = DEFRAG_MIN_SLOTS;
    if (n > UINT32_MAX - 1) n = UINT32_MAX - 1;
    df->nslots = (uint32_t)n;
    df->timeout_us = timeout_us ? timeout_us : DEFRAG_DEFAULT_TIMEOUT_US;
    /* About one bucket per two slots: a datagram takes at least two. */
    uint32_t nb = 64;
    while (nb < n / 2 && nb < (1u << 22))
        nb <<= 1;
    df->buckets = calloc(nb, sizeof(*df->buckets));
    df->slots = malloc((size_t)n * SLOT_SIZE); /* touched only as slots are first used */
    df->out = malloc(DEFRAG_OUT_MAX);
    if (!df->buckets || !df->slots || !df->out) {
        kg_defrag_free(df);
        return NULL;
    }
    df->bucket_mask = nb - 1;
    dlist_init(&df->age_list);
    dlist_init(&df->lru_list);
    uint64_t seed[2];
    if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* No entropy yet (early boot): still differs across hosts and runs. */
        seed[0] = kg_monotonic_ns() ^ (uint64_t)(uintptr_t)df;
        seed[1] = kg_realtime_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
    }
    df->sip_k0 = seed[0];
    df->sip_k1 = seed[1];
    return df;
}

int kg_defrag_add(struct kg_defrag *df, uint8_t family, const uint8_t *l3, uint32_t l3_len, uint64_t now_us,
                  const uint8_t **out, uint32_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    df->st.fragments++;
    struct frag f;
    enum parse_result r = P_INVALID;
    if (family == 4)
        r = parse_v4(l3, l3_len, &f);
    else if (family == 6)
        r = parse_v6(l3, l3_len, &f);
    switch (r) {
    case P_INVALID:
        df->st.invalid++;
        return -1;
    case P_TOO_BIG:
        df->st.too_big++;
        return -1;
    case P_WHOLE:
        /* Not fragmented: returned as it is (an atomic fragment loses its
         * fragment header), so the caller need not tell the cases apart.
         * memmove: l3 may lie in the output buffer; the header moves down
         * first, and the data, after the fragment header, is not yet
         * overwritten when it follows. */
        if (family == 4) {
            memmove(df->out, f.hdr, f.hdr_len);
        } else {
            emit_header(df, 6, f.hdr, f.hdr_len, f.nh_pos, f.nh_val, f.len);
            memmove(df->out + f.hdr_len, f.data, f.len);
        }
        *out = df->out;
        *out_len = f.hdr_len + f.len;
        return 1;
    case P_FRAG:
        break;
    }

    uint32_t h = key_hash(df, &f.key);
    struct dg *g = dg_find(df, &f.key, h);
    if (g && expired(df, g, now_us)) {
        dg_free(df, g);
        df->st.timeouts++;
        g = NULL;
    }
    if (g) {
        if (dg_check(df, g, &f) < 0) return -1;
        dlist_unlink(&g->lru); /* most recently used: evicted last */
        dlist_push_tail(&df->lru_list, &g->lru);
    }
    uint32_t need = (g ? 0 : 1) + pages_missing(g, f.off, f.off + f.len);
    uint32_t own = g ? 1 + (uint32_t)__builtin_popcountll(g->page_mask) : 0;
    /* Evict others only when that can make this datagram fit. */
    if (need + own > df->nslots || !make_room(df, need, g)) {
        /* This datagram alone needs more than the whole pool. */
        if (g) dg_free(df, g);
        df->st.evicted_for_memory++;
        return -1;
    }
    if (!g) g = dg_create(df, &f.key, h, now_us);
    dg_store(df, g, &f);

    if (!g->have_last || !g->hdr_len || g->blocks != (g->total + 7) / 8) return 0;
    /* Complete: header, then the pages in order. */
    emit_header(df, g->key.family, g->hdr, g->hdr_len, g->nh_pos, g->nh_val, g->total);
    uint8_t *o = df->out + g->hdr_len;
    for (uint32_t pos = 0; pos < g->total; pos += PAGE_DATA)
        memcpy(o + pos, page_of(df, g, pos >> PAGE_SHIFT), KG_MIN(PAGE_DATA, g->total - pos));
    *out = df->out;
    *out_len = g->hdr_len + g->total;
    dg_free(df, g);
    df->st.reassembled++;
    return 1;
}

void kg_defrag_expire(struct kg_defrag *df, uint64_t now_us)
{
    while (df->age_list.next != &df->age_list) {
        struct dg *g = CONTAINER_OF(df->age_list.next, struct dg, age);
        if (!expired(df, g, now_us)) break;
        dg_free(df, g);
        df->st.timeouts++;
    }
}

const struct kg_defrag_stats *kg_defrag_stats(const struct kg_defrag *df)
{
    return &df->st;
}

void kg_defrag_free(struct kg_defrag *df)
{
    if (!df) return;
    free(df->buckets);
    free(df->slots);
    free(df->out);
    free(df);
}
