/*
 * tests/unit/test_defrag.c — IPv4/IPv6 fragment reassembly (dissect/defrag.c).
 *
 * Datagrams are built here, cut into fragments, fed in several orders and
 * compared byte for byte with the original (which was built unfragmented,
 * with a valid checksum, so the reassembled datagram must be identical).
 * Then the hostile cases: duplicates, overlaps (IPv4 first-wins, IPv6
 * discard), contradictory ends, teardrop, ping of death, zero-length and
 * truncated fragments, a flood under a small cap, timeouts, and a random
 * fuzz loop. Real captures are replayed when ../shared/pcaps/real exists
 * (KG_REAL_DIR overrides the folder); they are skipped otherwise.
 */
#include "dissect/defrag.h"

#include "common/kg_common.h"
#include "kg_test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEC 1000000ull

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    /* splitmix64: deterministic, so a failure is reproducible */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v >> 16);
    wr16(p + 2, v & 0xffff);
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += rd16(p + i);
    if (len & 1) sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void v4_fix_checksum(uint8_t *h)
{
    uint32_t ihl = (uint32_t)(h[0] & 15) * 4;
    h[10] = h[11] = 0;
    wr16(h + 10, csum_fold(csum_add(0, h, ihl)));
}

static const uint8_t SRC4[4] = {192, 0, 2, 1}, DST4[4] = {198, 51, 100, 7};
static const uint8_t SRC6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t DST6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* An unfragmented IPv4 datagram: 20 + opt_len header bytes (NOP options),
 * protocol 17, `plen` payload bytes from the PRNG. Returns its length. */
static uint32_t build_v4(uint8_t *d, uint32_t plen, uint32_t opt_len, uint16_t id)
{
    uint32_t ihl = 20 + opt_len;
    memset(d, 0, ihl);
    d[0] = (uint8_t)(0x40 | ihl / 4);
    wr16(d + 2, ihl + plen);
    wr16(d + 4, id);
    d[8] = 64;
    d[9] = 17;
    memcpy(d + 12, SRC4, 4);
    memcpy(d + 16, DST4, 4);
    memset(d + 20, 1, opt_len); /* NOP options: not copied into later fragments */
    for (uint32_t i = 0; i < plen; i++)
        d[ihl + i] = (uint8_t)rnd();
    v4_fix_checksum(d);
    return ihl + plen;
}

/* One fragment of the IPv4 datagram d: payload bytes [off, off + len). The
 * first fragment keeps the options; later ones get a 20-byte header. */
static uint32_t frag_v4(uint8_t *f, const uint8_t *d, uint32_t off, uint32_t len, bool mf)
{
    uint32_t ihl = (uint32_t)(d[0] & 15) * 4;
    uint32_t fh = off == 0 ? ihl : 20;
    memcpy(f, d, 20);
    if (fh > 20) memcpy(f + 20, d + 20, fh - 20);
    f[0] = (uint8_t)(0x40 | fh / 4);
    wr16(f + 2, fh + len);
    wr16(f + 6, (mf ? 0x2000u : 0) | off / 8);
    memcpy(f + fh, d + ihl + off, len);
    v4_fix_checksum(f);
    return fh + len;
}

/* An unfragmented IPv6 datagram with `ext` extension headers before the
 * payload (0: none, 1: hop-by-hop, 2: hop-by-hop + routing), all of which
 * belong to the unfragmentable part. Next header 17. */
static uint32_t build_v6(uint8_t *d, uint32_t plen, int ext, uint32_t *unfrag, uint32_t *nh_pos)
{
    memset(d, 0, 40);
    d[0] = 0x60;
    d[7] = 64;
    memcpy(d + 8, SRC6, 16);
    memcpy(d + 24, DST6, 16);
    uint32_t off = 40, pos = 6;
    for (int i = 0; i < ext; i++) {
        uint8_t type = i == 0 ? 0 : 43;
        d[pos] = type;
        uint8_t *e = d + off;
        memset(e, 0, 8);
        if (type == 0)
            e[2] = 1, e[3] = 4; /* PadN over the 6 option bytes */
        else
            e[2] = 4; /* routing type 4, segments left 0 */
        pos = off;
        off += 8;
    }
    d[pos] = 17;
    for (uint32_t i = 0; i < plen; i++)
        d[off + i] = (uint8_t)rnd();
    wr16(d + 4, off - 40 + plen);
    *unfrag = off;
    *nh_pos = pos;
    return off + plen;
}

/* One fragment of the IPv6 datagram d (unfragmentable part `unfrag` bytes,
 * Next Header byte to patch at nh_pos): fragmentable bytes [off, off+len). */
static uint32_t frag_v6(uint8_t *f, const uint8_t *d, uint32_t unfrag, uint32_t nh_pos, uint32_t id,
                        uint32_t off, uint32_t len, bool mf)
{
    memcpy(f, d, unfrag);
    f[nh_pos] = 44;
    uint8_t *fh = f + unfrag;
    fh[0] = d[nh_pos];
    fh[1] = 0;
    wr16(fh + 2, off | (mf ? 1u : 0));
    wr32(fh + 4, id);
    memcpy(fh + 8, d + unfrag + off, len);
    wr16(f + 4, unfrag - 40 + 8 + len);
    return unfrag + 8 + len;
}

/* A plan: the fragments' (offset, length, more) of a payload of plen bytes
 * cut in pieces of fs bytes (a multiple of 8), then put in some order. */
struct piece {
    uint32_t off, len;
    bool mf;
};
enum order { IN_ORDER, REVERSE, RANDOM, LAST_FIRST };

static uint32_t plan(struct piece *p, uint32_t plen, uint32_t fs, enum order o)
{
    uint32_t n = 0;
    for (uint32_t off = 0; off < plen; off += fs) {
        uint32_t len = KG_MIN(fs, plen - off);
        p[n++] = (struct piece){off, len, off + len < plen};
    }
    if (o == REVERSE) {
        for (uint32_t i = 0; i < n / 2; i++) {
            struct piece t = p[i];
            p[i] = p[n - 1 - i];
            p[n - 1 - i] = t;
        }
    } else if (o == RANDOM) {
        for (uint32_t i = n; i > 1; i--) {
            uint32_t j = rnd_below(i);
            struct piece t = p[i - 1];
            p[i - 1] = p[j];
            p[j] = t;
        }
    } else if (o == LAST_FIRST && n > 1) {
        struct piece t = p[n - 1];
        memmove(p + 1, p, (n - 1) * sizeof(*p));
        p[0] = t;
    }
    return n;
}

static uint8_t dgram[70000], fbuf[70000];
static struct piece pieces[8200];

/* Fragments a datagram per plan and feeds it; checks that exactly the last
 * fragment completes it and the result equals the original. */
static void roundtrip(struct kg_defrag *df, uint8_t family, uint32_t plen, uint32_t fs, enum order o,
                      uint32_t variant, uint32_t id)
{
    uint32_t dlen, unfrag = 0, nh_pos = 0;
    if (family == 4) {
        dlen = build_v4(dgram, plen, variant * 4, (uint16_t)id);
        unfrag = (uint32_t)(dgram[0] & 15) * 4;
    } else {
        dlen = build_v6(dgram, plen, (int)variant, &unfrag, &nh_pos);
    }
    uint32_t n = plan(pieces, plen, fs, o);
    const uint8_t *out = NULL;
    uint32_t out_len = 0;
    int done = 0, bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t flen = family == 4 ? frag_v4(fbuf, dgram, pieces[i].off, pieces[i].len, pieces[i].mf)
                                    : frag_v6(fbuf, dgram, unfrag, nh_pos, id, pieces[i].off, pieces[i].len,
                                              pieces[i].mf);
        int r = kg_defrag_add(df, family, fbuf, flen, 1000, &out, &out_len);
        if (r == 1) done++;
        if (r != (i + 1 == n ? 1 : 0)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_INT(out_len, dlen);
    if (out && out_len == dlen) {
        bool same = memcmp(out, dgram, dlen) == 0;
        CHECK(same);
        if (!same || bad)
            fprintf(stderr, "  family %u plen %u fs %u order %d variant %u\n", family, plen, fs, o, variant);
    }
}

/* ---- reassembly in every order ------------------------------------------ */

static void test_orders(void)
{
    static const uint32_t sizes[] = {9, 16, 17, 100, 575, 1480, 1481, 1500, 2960, 4000, 8999, 20000, 65000};
    static const uint32_t fss[] = {8, 16, 64, 576, 1480, 8192};
    struct kg_defrag *df = kg_defrag_new(8u << 20, 30 * SEC);
    CHECK(df != NULL);
    uint32_t id = 1, runs = 0;
    for (uint8_t family = 4; family <= 6; family += 2)
        for (size_t s = 0; s < KG_ARRAY_LEN(sizes); s++)
            for (size_t f = 0; f < KG_ARRAY_LEN(fss); f++) {
                if (fss[f] >= sizes[s]) continue;       /* would not be fragmented */
                if (sizes[s] / fss[f] > 8000) continue; /* more pieces than the plan holds */
                for (int o = IN_ORDER; o <= LAST_FIRST; o++)
                    for (uint32_t v = 0; v < 3; v++, runs++) {
                        uint32_t var = family == 4 ? (v == 0   ? 0
                                                      : v == 1 ? 1
                                                               : 10)
                                                   : v; /* options / ext headers */
                        roundtrip(df, family, sizes[s], fss[f], (enum order)o, var, id++);
                    }
            }
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    CHECK_EQ_INT(st->reassembled, runs);
    CHECK_EQ_INT(st->bytes_held, 0);
    CHECK_EQ_INT(st->datagrams_held, 0);
    CHECK_EQ_INT(st->overlaps + st->duplicates + st->invalid + st->too_big + st->evicted_for_memory, 0);
    kg_defrag_free(df);
}

/* Largest datagrams: IPv4 total length 65535 and IPv6 payload length 65535. */
static void test_max_size(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    roundtrip(df, 4, 65535 - 20, 1480, RANDOM, 0, 7);
    roundtrip(df, 4, 65535 - 60, 1480, REVERSE, 10, 8); /* 40 bytes of options */
    roundtrip(df, 6, 65535, 1448, RANDOM, 0, 9);
    roundtrip(df, 6, 65535 - 16, 1448, IN_ORDER, 2, 10);
    CHECK_EQ_INT(kg_defrag_stats(df)->reassembled, 4);
    CHECK_EQ_INT(kg_defrag_stats(df)->too_big, 0);
    kg_defrag_free(df);
}

/* ---- fragments of hand-made datagrams ----------------------------------- */

/* Feeds fragment [off, off+len) of `payload` as an IPv4 fragment of id. */
static int add4(struct kg_defrag *df, uint16_t id, const uint8_t *payload, uint32_t off, uint32_t len,
                bool mf, uint64_t now, const uint8_t **out, uint32_t *out_len)
{
    uint8_t p[70000];
    memset(p, 0, 20);
    p[0] = 0x45;
    wr16(p + 2, 20 + len);
    wr16(p + 4, id);
    wr16(p + 6, (mf ? 0x2000u : 0) | off / 8);
    p[8] = 64;
    p[9] = 17;
    memcpy(p + 12, SRC4, 4);
    memcpy(p + 16, DST4, 4);
    memcpy(p + 20, payload, len);
    v4_fix_checksum(p);
    return kg_defrag_add(df, 4, p, 20 + len, now, out, out_len);
}

static int add6(struct kg_defrag *df, uint32_t id, const uint8_t *payload, uint32_t off, uint32_t len,
                bool mf, uint64_t now, const uint8_t **out, uint32_t *out_len)
{
    uint8_t p[70000];
    memset(p, 0, 48);
    p[0] = 0x60;
    wr16(p + 4, 8 + len);
    p[6] = 44;
    p[7] = 64;
    memcpy(p + 8, SRC6, 16);
    memcpy(p + 24, DST6, 16);
    p[40] = 17;
    wr16(p + 42, off | (mf ? 1u : 0));
    wr32(p + 44, id);
    memcpy(p + 48, payload, len);
    return kg_defrag_add(df, 6, p, 48 + len, now, out, out_len);
}

typedef int (*add_fn)(struct kg_defrag *, uint32_t, const uint8_t *, uint32_t, uint32_t, bool, uint64_t,
                      const uint8_t **, uint32_t *);

static int add4_any(struct kg_defrag *df, uint32_t id, const uint8_t *pl, uint32_t off, uint32_t len, bool mf,
                    uint64_t now, const uint8_t **out, uint32_t *out_len)
{
    return add4(df, (uint16_t)id, pl, off, len, mf, now, out, out_len);
}

static void test_duplicates(void)
{
    for (uint8_t family = 4; family <= 6; family += 2) {
        add_fn add = family == 4 ? add4_any : add6;
        uint32_t hl = family == 4 ? 20 : 40;
        struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
        uint8_t pl[64];
        for (int i = 0; i < 64; i++)
            pl[i] = (uint8_t)(i * 7);
        const uint8_t *out;
        uint32_t out_len;
        /* every fragment twice (a SPAN port mirroring both directions) */
        CHECK_EQ_INT(add(df, 1, pl, 0, 24, true, 1, &out, &out_len), 0);
        CHECK_EQ_INT(add(df, 1, pl, 0, 24, true, 1, &out, &out_len), 0);
        CHECK_EQ_INT(add(df, 1, pl + 48, 48, 16, false, 1, &out, &out_len), 0);
        CHECK_EQ_INT(add(df, 1, pl + 48, 48, 16, false, 1, &out, &out_len), 0);
        /* a sub-range of held data, identical: also a duplicate */
        CHECK_EQ_INT(add(df, 1, pl + 8, 8, 8, true, 1, &out, &out_len), 0);
        CHECK_EQ_INT(add(df, 1, pl + 24, 24, 24, true, 1, &out, &out_len), 1);
        CHECK_EQ_INT(out_len, hl + 64);
        CHECK(out && memcmp(out + hl, pl, 64) == 0);
        const struct kg_defrag_stats *st = kg_defrag_stats(df);
        CHECK_EQ_INT(st->duplicates, 3);
        CHECK_EQ_INT(st->overlaps, 0);
        CHECK_EQ_INT(st->overlap_conflicts, 0);
        CHECK_EQ_INT(st->reassembled, 1);
        /* a late duplicate after completion starts a new datagram, which times out */
        CHECK_EQ_INT(add(df, 1, pl + 24, 24, 24, true, 2, &out, &out_len), 0);
        CHECK_EQ_INT(st->datagrams_held, 1);
        kg_defrag_expire(df, 2 + 30 * SEC);
        CHECK_EQ_INT(st->timeouts, 1);
        CHECK_EQ_INT(st->bytes_held, 0);
        kg_defrag_free(df);
    }
}

static void test_overlap_v4_first_wins(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    uint8_t a[32], b[32];
    memset(a, 'A', sizeof(a));
    memset(b, 'B', sizeof(b));
    const uint8_t *out;
    uint32_t out_len;
    /* A holds [0,16); B brings [8,24) with different bytes at [8,16). */
    CHECK_EQ_INT(add4(df, 5, a, 0, 16, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add4(df, 5, b, 8, 16, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(st->overlaps, 1);
    CHECK_EQ_INT(st->overlap_conflicts, 1);
    /* C brings [16,32) with identical bytes at [16,24): an overlap, no conflict */
    CHECK_EQ_INT(add4(df, 5, b, 16, 16, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(st->overlaps, 2);
    CHECK_EQ_INT(st->overlap_conflicts, 1);
    CHECK_EQ_INT(add4(df, 5, a, 32, 5, false, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, 20 + 37);
    static const char want[] = "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBAAAAA";
    CHECK(out && memcmp(out + 20, want, 37) == 0);
    /* the rebuilt header: MF and offset cleared, total length and checksum right */
    CHECK_EQ_INT(rd16(out + 2), 57);
    CHECK_EQ_INT(rd16(out + 6), 0);
    CHECK_EQ_INT(csum_fold(csum_add(0, out, 20)), 0);
    CHECK_EQ_INT(st->bytes_held, 0);
    kg_defrag_free(df);
}

static void test_overlap_v6_discard(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    uint8_t a[32];
    memset(a, 'A', sizeof(a));
    const uint8_t *out;
    uint32_t out_len;
    /* an overlap with identical bytes still discards (RFC 5722): only exact duplicates pass */
    CHECK_EQ_INT(add6(df, 9, a, 0, 16, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add6(df, 9, a, 8, 16, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->overlaps, 1);
    CHECK_EQ_INT(st->overlap_conflicts, 0);
    CHECK_EQ_INT(st->datagrams_held, 0);
    CHECK_EQ_INT(st->bytes_held, 0);
    /* the rest arrives: it starts over and cannot complete without offset 0 */
    CHECK_EQ_INT(add6(df, 9, a, 16, 8, false, 1, &out, &out_len), 0);
    CHECK_EQ_INT(st->reassembled, 0);
    /* differing bytes: a conflict, discarded */
    uint8_t b[16];
    memset(b, 'B', sizeof(b));
    CHECK_EQ_INT(add6(df, 10, a, 0, 16, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add6(df, 10, b, 0, 16, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->overlaps, 2);
    CHECK_EQ_INT(st->overlap_conflicts, 1);
    CHECK_EQ_INT(st->datagrams_held, 1); /* only id 9's later part */
    kg_defrag_free(df);
}

static void test_conflicting_ends(void)
{
    const uint8_t *out;
    uint32_t out_len;
    uint8_t a[64];
    memset(a, 'x', sizeof(a));
    /* IPv4: the first last fragment wins. */
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    CHECK_EQ_INT(add4(df, 1, a, 16, 8, false, 1, &out, &out_len), 0);   /* end 24 */
    CHECK_EQ_INT(add4(df, 1, a, 16, 16, false, 1, &out, &out_len), -1); /* end 32: contradicts */
    CHECK_EQ_INT(add4(df, 1, a, 24, 16, true, 1, &out, &out_len), -1);  /* beyond the end */
    CHECK_EQ_INT(st->overlap_conflicts, 2);
    CHECK_EQ_INT(add4(df, 1, a, 0, 16, true, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, 20 + 24);
    /* data first, then a last fragment ending before held data */
    CHECK_EQ_INT(add4(df, 2, a, 0, 32, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add4(df, 2, a, 8, 8, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->overlap_conflicts, 3);
    CHECK_EQ_INT(add4(df, 2, a, 32, 3, false, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, 20 + 35);
    kg_defrag_free(df);
    /* IPv6: any contradiction discards the datagram */
    df = kg_defrag_new(1u << 20, 30 * SEC);
    st = kg_defrag_stats(df);
    CHECK_EQ_INT(add6(df, 1, a, 16, 8, false, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add6(df, 1, a, 16, 16, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->datagrams_held, 0);
    CHECK_EQ_INT(add6(df, 2, a, 0, 32, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add6(df, 2, a, 8, 8, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->datagrams_held, 0);
    CHECK_EQ_INT(st->overlap_conflicts, 2);
    CHECK_EQ_INT(st->bytes_held, 0);
    kg_defrag_free(df);
}

/* Teardrop (1997): the second fragment starts inside the first and ends
 * before it. Classic stacks computed a negative length from it. */
static void test_teardrop(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    const uint8_t *out;
    uint32_t out_len;
    uint8_t a[64];
    memset(a, 't', sizeof(a));
    CHECK_EQ_INT(add4(df, 3, a, 0, 36 & ~7u, true, 1, &out, &out_len), 0); /* [0,32) */
    CHECK_EQ_INT(add4(df, 3, a, 24, 4, false, 1, &out, &out_len), -1);     /* [24,28) last: ends inside */
    CHECK_EQ_INT(st->overlap_conflicts, 1);
    /* the same, as a non-last fragment wholly inside: a duplicate */
    CHECK_EQ_INT(add4(df, 3, a, 8, 8, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(st->duplicates, 1);
    /* a header claiming less than itself, or more than was captured */
    uint8_t p[64];
    memset(p, 0, sizeof(p));
    p[0] = 0x45;
    wr16(p + 2, 12);
    wr16(p + 6, 0x2001);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, sizeof(p), 1, &out, &out_len), -1);
    wr16(p + 2, 65);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, sizeof(p), 1, &out, &out_len), -1);
    p[0] = 0x44; /* IHL 16 */
    wr16(p + 2, 40);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, sizeof(p), 1, &out, &out_len), -1);
    p[0] = 0x4f; /* IHL 60 > packet */
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, sizeof(p), 1, &out, &out_len), -1);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, 10, 1, &out, &out_len), -1);
    CHECK_EQ_INT(kg_defrag_add(df, 6, p, 10, 1, &out, &out_len), -1);
    CHECK_EQ_INT(kg_defrag_add(df, 5, p, sizeof(p), 1, &out, &out_len), -1);
    p[0] = 0x65; /* version 6 given as family 4 */
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, sizeof(p), 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->invalid, 8);
    CHECK(out == NULL && out_len == 0);
    kg_defrag_free(df);
}

/* Ping of death and friends: offset + length past 65535. */
static void test_huge_offsets(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    const uint8_t *out;
    uint32_t out_len;
    static uint8_t a[1480];
    CHECK_EQ_INT(add4(df, 1, a, 65528, 1480, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add4(df, 1, a, 65528, 16, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->invalid, 2);
    /* payload end 65528 fits the field but not with a 20-byte header */
    CHECK_EQ_INT(add4(df, 1, a, 65520, 8, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->too_big, 1);
    /* the largest legal last fragment is held */
    CHECK_EQ_INT(add4(df, 1, a, 65512, 3, false, 1, &out, &out_len), 0);
    /* a first fragment whose options would push the datagram over 65535 */
    uint8_t p[100];
    memset(p, 0, sizeof(p));
    p[0] = 0x4f;
    wr16(p + 2, 60 + 8);
    wr16(p + 4, 1);
    wr16(p + 6, 0x2000);
    p[9] = 17;
    memcpy(p + 12, SRC4, 4);
    memcpy(p + 16, DST4, 4);
    v4_fix_checksum(p);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, 68, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->too_big, 2);
    /* IPv6: the same limits on the payload length */
    CHECK_EQ_INT(add6(df, 1, a, 65528, 16, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add6(df, 1, a, 65528, 8, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->invalid, 4);
    CHECK_EQ_INT(add6(df, 1, a, 65520, 15, false, 1, &out, &out_len), 0); /* payload 65535 */
    /* with an 8-byte hop-by-hop header in the unfragmentable part, the same
     * fragment makes a payload of 65543 */
    uint32_t unfrag, nh_pos;
    build_v6(dgram, 65535 - 8, 1, &unfrag, &nh_pos);
    uint32_t n = frag_v6(fbuf, dgram, unfrag, nh_pos, 2, 65520, 15, false);
    CHECK_EQ_INT(kg_defrag_add(df, 6, fbuf, n, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->too_big, 3);
    n = frag_v6(fbuf, dgram, unfrag, nh_pos, 2, 65520, 7, false);
    CHECK_EQ_INT(kg_defrag_add(df, 6, fbuf, n, 1, &out, &out_len), 0);
    CHECK_EQ_INT(st->datagrams_held, 3);
    kg_defrag_free(df);
}

static void test_zero_and_odd_lengths(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    const uint8_t *out;
    uint32_t out_len;
    uint8_t a[64];
    for (int i = 0; i < 64; i++)
        a[i] = (uint8_t)i;
    CHECK_EQ_INT(add4(df, 1, a, 8, 0, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add4(df, 1, a, 8, 0, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add4(df, 1, a, 0, 5, true, 1, &out, &out_len), -1); /* trimmed to 0 */
    CHECK_EQ_INT(add6(df, 1, a, 8, 0, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add6(df, 1, a, 8, 0, false, 1, &out, &out_len), -1);
    CHECK_EQ_INT(add6(df, 1, a, 0, 12, true, 1, &out, &out_len), -1); /* RFC 8200: not a multiple of 8 */
    CHECK_EQ_INT(st->invalid, 6);
    CHECK_EQ_INT(st->datagrams_held, 0);
    /* IPv4 non-last fragment of 13 bytes: trimmed to 8, like Linux */
    CHECK_EQ_INT(add4(df, 2, a, 0, 13, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add4(df, 2, a + 8, 8, 3, false, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, 20 + 11);
    CHECK(out && memcmp(out + 20, a, 11) == 0);
    /* tiny first fragment (8 bytes, cuts a TCP header): accepted */
    CHECK_EQ_INT(add4(df, 3, a, 0, 8, true, 1, &out, &out_len), 0);
    CHECK_EQ_INT(add4(df, 3, a + 8, 8, 40, false, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, 20 + 48);
    kg_defrag_free(df);
}

/* Datagrams that are not fragmented are returned as they are. */
static void test_not_fragmented(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const uint8_t *out;
    uint32_t out_len;
    uint32_t len = build_v4(dgram, 100, 0, 77);
    memcpy(fbuf, dgram, len);
    memset(fbuf + len, 0xee, 6); /* Ethernet padding after the datagram */
    CHECK_EQ_INT(kg_defrag_add(df, 4, fbuf, len + 6, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, len);
    CHECK(out && memcmp(out, dgram, len) == 0);
    /* IPv6 atomic fragment (RFC 6946): the fragment header goes away */
    uint32_t unfrag, nh_pos;
    len = build_v6(dgram, 100, 1, &unfrag, &nh_pos);
    uint32_t flen = frag_v6(fbuf, dgram, unfrag, nh_pos, 5, 0, 100, false);
    CHECK_EQ_INT(kg_defrag_add(df, 6, fbuf, flen, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, len);
    CHECK(out && memcmp(out, dgram, len) == 0);
    /* IPv6 without a fragment header */
    CHECK_EQ_INT(kg_defrag_add(df, 6, dgram, len, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, len);
    CHECK(out && memcmp(out, dgram, len) == 0);
    CHECK_EQ_INT(kg_defrag_stats(df)->datagrams_held, 0);
    kg_defrag_free(df);
}

/* IPv4 key includes the protocol; IPv6 key does not (RFC 791 / RFC 8200). */
static void test_keys(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const uint8_t *out;
    uint32_t out_len;
    build_v4(dgram, 48, 0, 42);
    uint32_t l1 = frag_v4(fbuf, dgram, 0, 24, true);
    CHECK_EQ_INT(kg_defrag_add(df, 4, fbuf, l1, 1, &out, &out_len), 0);
    uint8_t other[100];
    uint32_t l2 = frag_v4(other, dgram, 24, 24, false);
    other[9] = 6; /* another protocol: another datagram */
    v4_fix_checksum(other);
    CHECK_EQ_INT(kg_defrag_add(df, 4, other, l2, 1, &out, &out_len), 0);
    other[19] ^= 1; /* another destination */
    CHECK_EQ_INT(kg_defrag_add(df, 4, other, l2, 1, &out, &out_len), 0);
    CHECK_EQ_INT(kg_defrag_stats(df)->datagrams_held, 3);
    l2 = frag_v4(other, dgram, 24, 24, false);
    CHECK_EQ_INT(kg_defrag_add(df, 4, other, l2, 1, &out, &out_len), 1);
    kg_defrag_free(df);
}

/* A fragmented tunnel carrying fragments: the caller feeds bytes of the
 * datagram just returned back in. */
static void test_nested(void)
{
    struct kg_defrag *df = kg_defrag_new(1u << 20, 30 * SEC);
    const uint8_t *out;
    uint32_t out_len;
    static uint8_t inner[3000], outer[4000], f[2000];
    /* inner: a 2000-byte UDP datagram; its first fragment (1480 bytes) goes
     * into an IPIP outer datagram, itself cut in two */
    uint32_t ilen = build_v4(inner, 1980, 0, 0x1111);
    uint32_t f1 = frag_v4(f, inner, 0, 1480, true);
    uint32_t olen = build_v4(outer, f1, 0, 0x2222);
    memcpy(outer + 20, f, f1);
    outer[9] = 4; /* IPIP */
    v4_fix_checksum(outer);
    uint8_t p[2000];
    uint32_t n = frag_v4(p, outer, 0, 800, true);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, n, 1, &out, &out_len), 0);
    n = frag_v4(p, outer, 800, f1 - 800, false);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, n, 1, &out, &out_len), 1);
    CHECK_EQ_INT(out_len, olen);
    /* the inner fragment, read from the output buffer */
    CHECK_EQ_INT(kg_defrag_add(df, 4, out + 20, out_len - 20, 1, &out, &out_len), 0);
    n = frag_v4(p, inner, 1480, 500, false);
    CHECK_EQ_INT(kg_defrag_add(df, 4, p, n, 1, &out, &out_len), 1);
    CHECK(out_len == ilen && memcmp(out, inner, ilen) == 0);
    /* a whole inner datagram (and an IPv6 atomic fragment) read from the output buffer */
    memcpy(f, out, out_len);
    CHECK_EQ_INT(kg_defrag_add(df, 4, out, out_len, 1, &out, &out_len), 1);
    CHECK(out_len == ilen && memcmp(out, inner, ilen) == 0);
    uint32_t unfrag, nh_pos;
    uint32_t l6 = build_v6(inner, 600, 1, &unfrag, &nh_pos);
    uint32_t a6 = frag_v6(outer + 20, inner, unfrag, nh_pos, 9, 0, 600, false);
    olen = build_v4(outer, 0, 0, 0x3333); /* header only: the atomic fragment follows */
    wr16(outer + 2, 20 + a6);
    outer[9] = 41;
    v4_fix_checksum(outer);
    CHECK_EQ_INT(kg_defrag_add(df, 4, outer, 20 + a6, 1, &out, &out_len), 1);
    CHECK_EQ_INT(kg_defrag_add(df, 6, out + 20, out_len - 20, 1, &out, &out_len), 1);
    CHECK(out_len == l6 && memcmp(out, inner, l6) == 0);
    (void)olen;
    kg_defrag_free(df);
}

/* ---- memory cap ---------------------------------------------------------- */

static void test_flood(void)
{
    const uint64_t cap = 64 * 1024; /* 63 slots: about 25 flood datagrams */
    struct kg_defrag *df = kg_defrag_new(cap, 30 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    const uint8_t *out;
    uint32_t out_len;
    static uint8_t junk[1480];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rnd();
    uint8_t legit[1600];
    for (size_t i = 0; i < sizeof(legit); i++)
        legit[i] = (uint8_t)rnd();
    uint64_t max_seen = 0;
    int legit_done = 0;
    bool over = false;
    for (uint32_t i = 0; i < 200000; i++) {
        uint32_t off = rnd_below(8192) * 8;
        uint32_t len = 8 + rnd_below(1472 / 8) * 8;
        if (off + len > 65535 - 20) off = 0;
        int r;
        uint16_t id4 = (uint16_t)rnd();
        if (id4 == 0xbeef) id4++;
        if (i & 1)
            r = add6(df, (uint32_t)rnd(), junk, off, len, rnd() & 1, i, &out, &out_len);
        else
            r = add4(df, id4, junk, off, len, rnd() & 1, i, &out, &out_len);
        (void)r;
        if (st->bytes_held > cap) over = true;
        if (st->bytes_held > max_seen) max_seen = st->bytes_held;
        /* a legitimate two-fragment datagram every 1000 packets, its second
         * half 10 flood packets later: LRU eviction must let it through */
        if (i % 1000 == 0) {
            CHECK_EQ_INT(add4(df, 0xbeef, legit, 0, 1480, true, i, &out, &out_len), 0);
        } else if (i % 1000 == 10) {
            r = add4(df, 0xbeef, legit + 1480, 1480, 120, false, i, &out, &out_len);
            if (r == 1 && out_len == 1620 && memcmp(out + 20, legit, 1600) == 0) legit_done++;
        }
    }
    CHECK(!over);
    CHECK(max_seen > cap / 2);
    CHECK(st->evicted_for_memory > 1000);
    CHECK_EQ_INT(legit_done, 200);
    printf("     flood: 200000 fragments, cap %llu, max held %llu, evicted %llu, held now %llu datagrams\n",
           (unsigned long long)cap, (unsigned long long)max_seen, (unsigned long long)st->evicted_for_memory,
           (unsigned long long)st->datagrams_held);
    kg_defrag_expire(df, UINT64_MAX);
    CHECK_EQ_INT(st->bytes_held, 0);
    kg_defrag_free(df);

    /* one datagram alone bigger than the cap: dropped when it outgrows it */
    df = kg_defrag_new(20000, 30 * SEC); /* 19 slots; the datagram needs 21 */
    st = kg_defrag_stats(df);
    int dropped = 0;
    for (uint32_t off = 0; off < 20000; off += 1480)
        if (add4(df, 1, junk, off, 1480, true, 1, &out, &out_len) < 0) dropped++;
    CHECK(dropped >= 1);
    CHECK(st->evicted_for_memory >= 1);
    CHECK(st->bytes_held <= 20000);
    /* a single fragment larger than the whole pool: dropped without evicting others first */
    kg_defrag_expire(df, UINT64_MAX);
    CHECK_EQ_INT(add6(df, 78, legit, 0, 8, true, 1, &out, &out_len), 0);
    uint64_t ev = st->evicted_for_memory;
    CHECK_EQ_INT(add4(df, 2, dgram, 0, 20000, true, 1, &out, &out_len), -1);
    CHECK_EQ_INT(st->evicted_for_memory, ev + 1);
    CHECK_EQ_INT(st->datagrams_held, 1);
    kg_defrag_free(df);
}

/* ---- timeouts ------------------------------------------------------------- */

static void test_timeouts(void)
{
    struct kg_defrag *df = kg_defrag_new(32u << 20, 2 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    const uint8_t *out;
    uint32_t out_len;
    uint8_t a[16] = {0};
    for (uint32_t i = 0; i < 10000; i++)
        CHECK_EQ_INT(add4(df, (uint16_t)i, a, 0, 16, true, 1000 * SEC + i * 100, &out, &out_len), 0);
    CHECK_EQ_INT(st->datagrams_held, 10000);
    kg_defrag_expire(df, 1002 * SEC - 1);
    CHECK_EQ_INT(st->timeouts, 0);
    kg_defrag_expire(df, 1002 * SEC + 5000 * 100); /* first 5001 are 2 s old */
    CHECK_EQ_INT(st->timeouts, 5001);
    CHECK_EQ_INT(st->datagrams_held, 4999);
    /* a fragment for an expired datagram that expire() has not seen yet:
     * the old one is dropped, a new one starts */
    CHECK_EQ_INT(add4(df, 9999, a, 16, 8, false, 1002 * SEC + 9999 * 100, &out, &out_len), 0);
    CHECK_EQ_INT(st->timeouts, 5002);
    CHECK_EQ_INT(add4(df, 9999, a, 0, 16, true, 1002 * SEC + 9999 * 100, &out, &out_len), 1);
    /* time going backwards (merged captures) expires nothing */
    kg_defrag_expire(df, 5 * SEC);
    CHECK_EQ_INT(st->timeouts, 5002);
    kg_defrag_expire(df, 2000 * SEC);
    CHECK_EQ_INT(st->timeouts, 5002 + 4998);
    CHECK_EQ_INT(st->bytes_held, 0);
    CHECK_EQ_INT(st->datagrams_held, 0);
    kg_defrag_free(df);
}

/* ---- fuzz ------------------------------------------------------------------ */

static void check_output_inner(const uint8_t *out, uint32_t out_len, bool *ok)
{
    if (out_len < 20) {
        *ok = false;
        return;
    }
    if ((out[0] >> 4) == 4) {
        uint32_t ihl = (uint32_t)(out[0] & 15) * 4;
        if (rd16(out + 2) != out_len || (rd16(out + 6) & 0x3fff) || ihl > out_len ||
            csum_fold(csum_add(0, out, ihl)) != 0)
            *ok = false;
    } else if ((out[0] >> 4) == 6) {
        if (out_len < 40 || rd16(out + 4) + 40u != out_len) *ok = false;
    } else {
        *ok = false;
    }
}

static void check_output(const uint8_t *out, uint32_t out_len, bool *ok)
{
    bool was = *ok;
    check_output_inner(out, out_len, ok);
    if (was && !*ok)
        fprintf(stderr, "  bad output: %u bytes, %02x %02x %02x %02x %02x %02x %02x %02x\n", out_len, out[0],
                out[1], out[2], out[3], out[4], out[5], out[6], out[7]);
}

static void test_fuzz(void)
{
    const uint64_t cap = 256 * 1024;
    struct kg_defrag *df = kg_defrag_new(cap, 1 * SEC);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    static uint8_t pl[65536 + 2048], p[70000];
    rng_state = 0x5eed; /* independent of the tests before */
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)(rnd() & 3); /* overlaps often agree */
    bool ok = true, over = false;
    uint64_t now = 0;
    int results[3] = {0};
    for (uint32_t it = 0; it < 100000; it++) {
        now += rnd_below(2000);
        const uint8_t *out = (const uint8_t *)"x";
        uint32_t out_len = 7;
        uint8_t family = (rnd() & 1) ? 4 : 6;
        /* Mostly plausible fragments of six datagrams whose length and bytes
         * are fixed (so that some complete), then anything at all. */
        uint32_t id = rnd_below(6);
        if ((rnd() & 7) == 0) id = 6 + rnd_below(5000); /* memory pressure */
        uint32_t total = 64 + id % 6 * 411;
        uint32_t off = rnd_below((total + 7) / 8) * 8;
        uint32_t len = KG_MIN(8 * (1 + rnd_below(40)), total - off);
        bool mf = off + len < total;
        const uint8_t *src = pl + off;
        if ((rnd() & 7) == 0) {
            off = (rnd() & 7) ? rnd_below(300) * 8 : rnd_below(8192) * 8;
            len = (rnd() & 3) ? rnd_below(200) * 8 : rnd_below(1600);
            mf = rnd_below(4) != 0;
            src = pl + rnd_below(64);
        }
        if ((rnd() & 15) == 0) src++; /* other bytes for the same place */
        uint32_t n;
        if (family == 4) {
            uint32_t ihl = 20 + ((rnd() & 7) == 0 ? rnd_below(11) * 4 : 0);
            memset(p, 0, ihl);
            p[0] = (uint8_t)(0x40 | ihl / 4);
            wr16(p + 2, ihl + len);
            wr16(p + 4, id);
            wr16(p + 6, (mf ? 0x2000u : 0) | (off / 8 & 0x1fff));
            p[9] = (uint8_t)(17 + rnd_below(2));
            memcpy(p + 12, SRC4, 4);
            memcpy(p + 16, DST4, 4);
            memcpy(p + ihl, src, len);
            v4_fix_checksum(p);
            n = ihl + len;
        } else {
            uint32_t ext = rnd_below(3) == 0 ? 8 : 0;
            memset(p, 0, 48 + ext);
            p[0] = 0x60;
            wr16(p + 4, ext + 8 + len);
            p[6] = ext ? 0 : 44;
            if (ext) p[40] = 44;
            memcpy(p + 8, SRC6, 16);
            memcpy(p + 24, DST6, 16);
            p[40 + ext] = 17;
            wr16(p + 42 + ext, (off & 0xfff8) | (mf ? 1u : 0));
            wr32(p + 44 + ext, id);
            memcpy(p + 48 + ext, src, len);
            n = 48 + ext + len;
        }
        /* mutations: flip header bytes, cut or pad the packet */
        uint32_t m = rnd_below(8);
        if (m == 0) {
            for (int k = rnd_below(4) + 1; k > 0; k--)
                p[rnd_below(KG_MIN(n, 64u))] = (uint8_t)rnd();
        } else if (m == 1) {
            n = rnd_below(n + 1);
        } else if (m == 2) {
            uint32_t extra = rnd_below(64);
            for (uint32_t k = 0; k < extra; k++)
                p[n + k] = (uint8_t)rnd();
            n += extra;
        } else if (m == 3 && (rnd() & 7) == 0) {
            n = rnd_below(200);
            for (uint32_t k = 0; k < n; k++)
                p[k] = (uint8_t)rnd();
        }
        if ((rnd() & 31) == 0) family = (uint8_t)rnd_below(8);
        uint64_t before = st->reassembled;
        int r = kg_defrag_add(df, family, p, n, now, &out, &out_len);
        if (r < -1 || r > 1)
            ok = false;
        else
            results[r + 1]++;
        /* a datagram that was not fragmented comes back as it was, checksum included */
        if (r == 1 && st->reassembled == before + 1)
            check_output(out, out_len, &ok);
        else if (r == 1 && (out_len > n || out_len < 20)) {
            fprintf(stderr, "  bad pass-through: %u of %u bytes\n", out_len, n);
            ok = false;
        }
        if (r != 1 && (out != NULL || out_len != 0)) ok = false;
        if (st->bytes_held > cap) over = true;
        if ((rnd() & 15) == 0) kg_defrag_expire(df, now);
    }
    CHECK(ok);
    CHECK(!over);
    CHECK(st->reassembled > 50); /* some reassemblies did happen */
    printf("     fuzz: dropped %d held %d returned %d (reassembled %llu); overlaps %llu conflicts %llu dups "
           "%llu invalid %llu "
           "too_big %llu timeouts %llu evicted %llu\n",
           results[0], results[1], results[2], (unsigned long long)st->reassembled,
           (unsigned long long)st->overlaps, (unsigned long long)st->overlap_conflicts,
           (unsigned long long)st->duplicates, (unsigned long long)st->invalid,
           (unsigned long long)st->too_big, (unsigned long long)st->timeouts,
           (unsigned long long)st->evicted_for_memory);
    kg_defrag_expire(df, UINT64_MAX);
    CHECK_EQ_INT(st->bytes_held, 0);
    CHECK_EQ_INT(st->datagrams_held, 0);
    kg_defrag_free(df);
    kg_defrag_free(NULL);
}

/* ---- differential test against a byte-level model of the policy ----------- */

/* The policy, written the obvious way (a byte array and a held flag per
 * byte), for valid fragments without memory pressure or timeouts. */
struct model_dg {
    bool active, have_last;
    uint64_t created;
    uint32_t total, max_end, held_bytes, touched;
    uint32_t len;   /* the length this datagram's generator aims at */
    uint32_t piece; /* and the fragment size it mostly uses */
    uint8_t data[65536], held[65536];
};

static struct model_dg models[8];

#define MODEL_TIMEOUT 30000u

static int model_add(struct model_dg *m, bool v6, const uint8_t *d, uint32_t off, uint32_t len, bool mf,
                     uint64_t now)
{
    if (!v6 && mf) len &= ~7u;
    if (len == 0 || (v6 && mf && (len & 7))) return -1;
    uint32_t end = off + len;
    if (m->active && now - m->created >= MODEL_TIMEOUT) m->active = false;
    if (!m->active) {
        m->created = now;
        memset(m->held, 0, m->touched);
        m->active = true;
        m->have_last = false;
        m->total = m->max_end = m->held_bytes = m->touched = 0;
    }
    bool conflict =
        mf ? (m->have_last && end > m->total) : (m->have_last ? end != m->total : m->max_end > end);
    if (conflict) {
        if (v6) m->active = false;
        return -1;
    }
    uint32_t held = 0;
    bool differ = false;
    for (uint32_t i = off; i < end; i++)
        if (m->held[i]) {
            held++;
            if (m->data[i] != d[i - off]) differ = true;
        }
    if (held && (held != len || differ) && v6) {
        m->active = false;
        return -1;
    }
    for (uint32_t i = off; i < end; i++)
        if (!m->held[i]) {
            m->held[i] = 1;
            m->data[i] = d[i - off];
            m->held_bytes++;
        }
    if (end > m->touched) m->touched = end;
    if (end > m->max_end) m->max_end = end;
    if (!mf) {
        m->have_last = true;
        m->total = end;
    }
    if (m->have_last && m->held_bytes == m->total) {
        m->active = false;
        return 1;
    }
    return 0;
}

static void test_model(void)
{
    struct kg_defrag *df = kg_defrag_new(64u << 20, MODEL_TIMEOUT);
    static uint8_t pl[65536 + 4096], p[70000], d[2048];
    rng_state = 0xd1ff;
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)(rnd() & 1);
    memset(models, 0, sizeof(models));
    int mismatches = 0, completed = 0, completed_v6 = 0;
    for (uint32_t it = 0; it < 100000 && mismatches < 5; it++) {
        uint32_t k = rnd_below(8);
        bool v6 = k >= 4;
        struct model_dg *m = &models[k];
        uint64_t now = (uint64_t)it * 10;
        if (!m->active || now - m->created >= MODEL_TIMEOUT || m->len == 0) {
            m->len = 1 + rnd_below((rnd() & 63) ? 3000 : 65000);
            m->piece = 8 * (1 + rnd_below(m->len > 8000 ? 200 : 64));
        }
        /* Mostly pieces of a tiling, in random order (IPv6 needs that to
         * complete); sometimes a fragment anywhere, overlapping. */
        uint32_t T = m->len, off, len;
        if (rnd_below(v6 ? 16 : 4) != 0) {
            off = rnd_below((T + m->piece - 1) / m->piece) * m->piece;
            len = T - off < m->piece ? T - off : m->piece;
        } else {
            off = rnd_below((T + 7) / 8) * 8;
            if (off >= T) off = 0;
            uint32_t want_len = 8 * (1 + rnd_below(64));
            len = T - off < want_len ? T - off : want_len;
        }
        bool mf = off + len < T;
        if (rnd_below(48) == 0) len = 1 + rnd_below(64); /* odd lengths, other ends */
        if (rnd_below(48) == 0) mf = !mf;
        if (off + len > 65000) len = 65000 - off;
        const uint8_t *src = pl + k * 512 + off;
        memcpy(d, src, KG_MIN(len, sizeof(d)));
        if (rnd_below(48) == 0) d[rnd_below(KG_MIN(len, sizeof(d)))] ^= 1; /* one other byte */
        if (len > sizeof(d)) len = sizeof(d);
        uint32_t n;
        if (!v6) {
            memset(p, 0, 20);
            p[0] = 0x45;
            wr16(p + 2, 20 + len);
            wr16(p + 4, k);
            wr16(p + 6, (mf ? 0x2000u : 0) | off / 8);
            p[9] = 17;
            memcpy(p + 12, SRC4, 4);
            memcpy(p + 16, DST4, 4);
            memcpy(p + 20, d, len);
            n = 20 + len;
        } else {
            memset(p, 0, 48);
            p[0] = 0x60;
            wr16(p + 4, 8 + len);
            p[6] = 44;
            memcpy(p + 8, SRC6, 16);
            memcpy(p + 24, DST6, 16);
            p[40] = 17;
            wr16(p + 42, off | (mf ? 1u : 0));
            wr32(p + 44, k);
            memcpy(p + 48, d, len);
            n = 48 + len;
        }
        const uint8_t *out;
        uint32_t out_len;
        int got = kg_defrag_add(df, v6 ? 6 : 4, p, n, now, &out, &out_len);
        if (off == 0 && !mf) { /* not fragmented: passed through, state untouched */
            bool pass = got == 1 && out_len == n - (v6 ? 8 : 0) &&
                        memcmp(out + (v6 ? 40 : 20), p + (v6 ? 48 : 20), len) == 0;
            if (!pass) mismatches++;
            continue;
        }
        int want = model_add(m, v6, d, off, len, mf, now);
        if (want == 1) {
            completed++;
            completed_v6 += v6;
            m->len = 0;
        }
        uint32_t hl = v6 ? 40 : 20;
        bool same = got == want;
        if (same && got == 1)
            same =
                out_len == hl + m->total && memcmp(out + hl, m->data, m->total) == 0 &&
                (v6 ? rd16(out + 4) == m->total && out[6] == 17
                    : rd16(out + 2) == out_len && rd16(out + 6) == 0 && csum_fold(csum_add(0, out, 20)) == 0);
        if (!same) {
            mismatches++;
            fprintf(stderr, "  model mismatch at %u: v%d off %u len %u mf %d: got %d want %d\n", it,
                    v6 ? 6 : 4, off, len, mf, got, want);
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(completed > 1500);
    CHECK(completed_v6 > 300);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    printf("     model: 100000 fragments, %d datagrams completed (%d IPv6); overlaps %llu conflicts %llu "
           "dups %llu "
           "timeouts %llu\n",
           completed, completed_v6, (unsigned long long)st->overlaps,
           (unsigned long long)st->overlap_conflicts, (unsigned long long)st->duplicates,
           (unsigned long long)st->timeouts);
    CHECK_EQ_INT(st->evicted_for_memory, 0);
    kg_defrag_free(df);
}

/* ---- timing ------------------------------------------------------------- */

static void test_timing(void)
{
    struct kg_defrag *df = kg_defrag_new(16u << 20, 30 * SEC);
    static uint8_t f1[2][1500], f2[2][300];
    uint32_t l1[2], l2[2];
    /* a typical 1730-byte UDP datagram in two fragments, IPv4 and IPv6 */
    build_v4(dgram, 1710, 0, 1);
    l1[0] = frag_v4(f1[0], dgram, 0, 1480, true);
    l2[0] = frag_v4(f2[0], dgram, 1480, 230, false);
    uint32_t unfrag, nh_pos;
    build_v6(dgram, 1700, 0, &unfrag, &nh_pos);
    l1[1] = frag_v6(f1[1], dgram, unfrag, nh_pos, 1, 0, 1448, true);
    l2[1] = frag_v6(f2[1], dgram, unfrag, nh_pos, 1, 1448, 252, false);
    const int n = 200000;
    const uint8_t *out;
    uint32_t out_len;
    int done = 0;
    for (int fam = 0; fam < 2; fam++) {
        uint64_t t0 = kg_monotonic_ns();
        for (int i = 0; i < n; i++) {
            /* a new id each time, so each is a new datagram (allocations included) */
            if (fam == 0) {
                wr16(f1[0] + 4, (uint32_t)i);
                wr16(f2[0] + 4, (uint32_t)i);
            } else {
                wr32(f1[1] + 44, (uint32_t)i);
                wr32(f2[1] + 44, (uint32_t)i);
            }
            kg_defrag_add(df, fam ? 6 : 4, f1[fam], l1[fam], 1, &out, &out_len);
            done += kg_defrag_add(df, fam ? 6 : 4, f2[fam], l2[fam], 1, &out, &out_len);
        }
        uint64_t t1 = kg_monotonic_ns();
        printf("     timing: IPv%d, 2 fragments per datagram: %.0f ns per fragment\n", fam ? 6 : 4,
               (double)(t1 - t0) / (2.0 * n));
    }
    CHECK_EQ_INT(done, 2 * n);
    kg_defrag_free(df);
}

/* ---- real captures -------------------------------------------------------- */

/* Minimal pcap reader: classic format, either byte order, Ethernet only. */
struct pcap_rd {
    FILE *f;
    bool swap;
    uint32_t linktype;
};

static uint32_t pc32(const struct pcap_rd *r, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return r->swap ? __builtin_bswap32(v) : v;
}

static bool pcap_open_rd(struct pcap_rd *r, const char *path)
{
    uint8_t h[24];
    r->f = fopen(path, "rb");
    if (!r->f) return false;
    if (fread(h, 1, 24, r->f) != 24) goto bad;
    uint32_t magic;
    memcpy(&magic, h, 4);
    if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d)
        r->swap = false;
    else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1)
        r->swap = true;
    else
        goto bad;
    r->linktype = pc32(r, h + 20);
    return true;
bad:
    fclose(r->f);
    r->f = NULL;
    return false;
}

static int pcap_next_rd(struct pcap_rd *r, uint8_t *buf, uint32_t bufsz, uint32_t *len, uint64_t *ts_us)
{
    uint8_t h[16];
    if (fread(h, 1, 16, r->f) != 16) return 0;
    uint32_t caplen = pc32(r, h + 8);
    if (caplen > bufsz) return -1;
    if (fread(buf, 1, caplen, r->f) != caplen) return -1;
    *len = caplen;
    *ts_us = (uint64_t)pc32(r, h) * SEC + pc32(r, h + 4);
    return 1;
}

static bool v6_has_fragment_header(const uint8_t *p, uint32_t len)
{
    uint8_t nh = p[6];
    uint32_t off = 40;
    for (int i = 0; i < 8; i++) {
        if (nh == 44) return true;
        if (nh != 0 && nh != 43 && nh != 60) return false;
        if (off + 8 > len) return false;
        nh = p[off];
        off += ((uint32_t)p[off + 1] + 1) * 8;
    }
    return false;
}

/* Checks the transport checksum of a reassembled datagram (UDP, ICMP,
 * ICMPv6), which covers every fragment's bytes. */
static bool l4_valid(const uint8_t *d, uint32_t len, uint8_t *proto_out)
{
    uint32_t sum = 0, l4off;
    uint8_t proto;
    if ((d[0] >> 4) == 4) {
        l4off = (uint32_t)(d[0] & 15) * 4;
        proto = d[9];
        if (proto != 1) {
            sum = csum_add(sum, d + 12, 8);
            sum += proto + (len - l4off);
        }
    } else {
        l4off = 40;
        proto = d[6];
        while (proto == 0 || proto == 43 || proto == 60) {
            proto = d[l4off];
            l4off += ((uint32_t)d[l4off + 1] + 1) * 8;
        }
        sum = csum_add(sum, d + 8, 32);
        sum += proto + (len - l4off);
    }
    *proto_out = proto;
    if (l4off > len) return false;
    if (proto == 17 && rd16(d + l4off + 4) != len - l4off) return false;  /* UDP length = all of it */
    if (proto == 17 && rd16(d + l4off + 6) == 0) return (d[0] >> 4) == 4; /* no checksum: IPv4 only */
    if (proto != 17 && proto != 1 && proto != 58) return false;
    return csum_fold(csum_add(sum, d + l4off, len - l4off)) == 0;
}

static void replay(const char *dir, const char *name, int want_v4, int want_v6, bool strict)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct pcap_rd r;
    if (!pcap_open_rd(&r, path)) {
        printf("     skipped %s (absent)\n", name);
        return;
    }
    CHECK_EQ_INT(r.linktype, 1);
    struct kg_defrag *df = kg_defrag_new(16u << 20, 60 * SEC);
    static uint8_t buf[262144];
    uint32_t len;
    uint64_t ts;
    int v4 = 0, v6 = 0, bad = 0;
    while (pcap_next_rd(&r, buf, sizeof(buf), &len, &ts) == 1) {
        if (len < 14) continue;
        uint32_t off = 12;
        uint16_t et = rd16(buf + off);
        while ((et == 0x8100 || et == 0x88a8) && off + 6 <= len)
            off += 4, et = rd16(buf + off);
        off += 2;
        const uint8_t *l3 = buf + off;
        uint32_t l3_len = len - off;
        uint8_t family;
        if (et == 0x0800 && l3_len >= 20 && (rd16(l3 + 6) & 0x3fff))
            family = 4;
        else if (et == 0x86dd && l3_len >= 40 && v6_has_fragment_header(l3, l3_len))
            family = 6;
        else
            continue;
        const uint8_t *out;
        uint32_t out_len;
        if (kg_defrag_add(df, family, l3, l3_len, ts, &out, &out_len) == 1) {
            uint8_t proto = 0;
            bool good = l4_valid(out, out_len, &proto);
            if (!good) bad++;
            if (family == 4)
                v4++;
            else
                v6++;
        }
        kg_defrag_expire(df, ts);
    }
    fclose(r.f);
    const struct kg_defrag_stats *st = kg_defrag_stats(df);
    printf("     %s: fragments %llu, reassembled IPv4 %d IPv6 %d, bad L4 %d, invalid %llu, overlaps %llu, "
           "conflicts %llu, held %llu\n",
           name, (unsigned long long)st->fragments, v4, v6, bad, (unsigned long long)st->invalid,
           (unsigned long long)st->overlaps, (unsigned long long)st->overlap_conflicts,
           (unsigned long long)st->datagrams_held);
    if (strict) {
        CHECK_EQ_INT(v4, want_v4);
        CHECK_EQ_INT(v6, want_v6);
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(st->invalid + st->overlaps + st->datagrams_held, 0);
    }
    kg_defrag_free(df);
}

static void test_real_captures(void)
{
    const char *dir = getenv("KG_REAL_DIR");
    if (!dir) dir = "/work/shared/pcaps/real";
    replay(dir, "ndpi__dns_fragmented.pcap", 4, 3, true);
    replay(dir, "suricata-verify__exception-policy-defrag-01.pcap", 1, 0, true);
    /* fuzzed traffic with broken fragments: only "does not crash" */
    replay(dir, "ndpi__fuzz-2006-06-26-2594.pcap", 0, 0, false);
}

int main(void)
{
    KG_TEST_RUN(test_orders);
    KG_TEST_RUN(test_max_size);
    KG_TEST_RUN(test_duplicates);
    KG_TEST_RUN(test_overlap_v4_first_wins);
    KG_TEST_RUN(test_overlap_v6_discard);
    KG_TEST_RUN(test_conflicting_ends);
    KG_TEST_RUN(test_teardrop);
    KG_TEST_RUN(test_huge_offsets);
    KG_TEST_RUN(test_zero_and_odd_lengths);
    KG_TEST_RUN(test_not_fragmented);
    KG_TEST_RUN(test_keys);
    KG_TEST_RUN(test_nested);
    KG_TEST_RUN(test_flood);
    KG_TEST_RUN(test_timeouts);
    KG_TEST_RUN(test_fuzz);
    KG_TEST_RUN(test_model);
    KG_TEST_RUN(test_timing);
    KG_TEST_RUN(test_real_captures);
    KG_TEST_MAIN_END();
}
