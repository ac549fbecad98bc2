/*
 * dissect/flow_table.c — one worker's flow table.
 *
 * Fixed capacity, chosen at start (flow.max_flows): the flow array is
 * allocated once (calloc, so untouched pages cost nothing) and entries are
 * recycled through a free list, so no allocation happens per packet or per
 * flow. Lookup: chained hash on a canonical key (lower endpoint first) with
 * a per-table random seed, so crafted traffic cannot aim at one bucket.
 * Expiry and eviction: one LRU list per timeout class (TCP, UDP, other);
 * within a class every flow has the same timeout, so the least recently
 * used flow is the next to expire and expiry costs O(flows expired).
 *
 * Threads: owned by one worker; no locks.
 */
#include "dissect/dissect_int.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: a bijection with full avalanche. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint32_t kg_ckey_hash(const struct kg_ckey *k, uint64_t seed)
{
    uint64_t w[4];
    uint64_t h = seed ^ ((uint64_t)k->family << 56 | (uint64_t)k->proto << 48 | (uint64_t)k->aport << 16 |
                         k->bport);
    memcpy(w, k->a, 16);
    memcpy(w + 2, k->b, 16);
    for (int i = 0; i < 4; i++) h = mix64(h ^ w[i]);
    if (k->nvlan) h = mix64(h ^ ((uint64_t)k->vlan[0] << 32 | (uint64_t)k->vlan[1] << 16 | k->vlan[2]));
    return (uint32_t)(h ^ (h >> 32));
}

int kg_flow_table_init(struct kg_flow_table *t, uint32_t max_flows, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    t->flows = calloc(max_flows, sizeof(*t->flows));
    uint32_t nb = 1;
    while (nb < max_flows) nb <<= 1;
    t->buckets = calloc(nb, sizeof(*t->buckets));
    if (!t->flows || !t->buckets) {
        free(t->flows);
        free(t->buckets);
        return KG_ERR_NOMEM;
    }
    t->bucket_mask = nb - 1;
    t->max_flows = max_flows;
    t->seed = seed;
    /* Entries never used are handed out in index order from `never_used`;
     * only recycled ones go through the free list. So a page of the array is
     * first touched when a flow needs it: an idle sensor stays small. */
    t->free_head = 0;
    t->never_used = 0;
    return 0;
}

void kg_flow_table_destroy(struct kg_flow_table *t)
{
    free(t->flows);
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

struct kg_flow *kg_flow_table_find(struct kg_flow_table *t, const struct kg_ckey *k, uint32_t hash)
{
    for (uint32_t i = t->buckets[hash & t->bucket_mask]; i;) {
        struct kg_flow *f = &t->flows[i - 1];
        if (f->hash == hash && memcmp(&f->ckey, k, sizeof(*k)) == 0) return f;
        i = f->hnext;
    }
    return NULL;
}

static void lru_unlink(struct kg_flow_table *t, struct kg_flow *f)
{
    uint8_t c = f->lru_class;
    if (f->lru_prev) t->flows[f->lru_prev - 1].lru_next = f->lru_next;
    else t->lru_head[c] = f->lru_next;
    if (f->lru_next) t->flows[f->lru_next - 1].lru_prev = f->lru_prev;
    else t->lru_tail[c] = f->lru_prev;
    f->lru_prev = f->lru_next = 0;
}

static void lru_push_head(struct kg_flow_table *t, struct kg_flow *f)
{
    uint8_t c = f->lru_class;
    uint32_t idx = (uint32_t)(f - t->flows) + 1;
    f->lru_prev = 0;
    f->lru_next = t->lru_head[c];
    if (t->lru_head[c]) t->flows[t->lru_head[c] - 1].lru_prev = idx;
    t->lru_head[c] = idx;
    if (!t->lru_tail[c]) t->lru_tail[c] = idx;
}

struct kg_flow *kg_flow_table_insert(struct kg_flow_table *t, const struct kg_ckey *k, uint32_t hash,
                                     enum kg_lru_class cls)
{
    uint32_t idx;
    struct kg_flow *f;
    if (t->free_head) {
        idx = t->free_head;
        f = &t->flows[idx - 1];
        t->free_head = f->hnext;
    } else if (t->never_used < t->max_flows) {
        idx = ++t->never_used;
        f = &t->flows[idx - 1];
    } else {
        return NULL;
    }
    memset(f, 0, sizeof(*f));
    f->ckey = *k;
    f->hash = hash;
    f->in_use = true;
    f->lru_class = (uint8_t)cls;
    uint32_t b = hash & t->bucket_mask;
    f->hnext = t->buckets[b];
    t->buckets[b] = idx;
    lru_push_head(t, f);
    t->active++;
    return f;
}

void kg_flow_table_remove(struct kg_flow_table *t, struct kg_flow *f)
{
    uint32_t idx = (uint32_t)(f - t->flows) + 1;
    uint32_t *pp = &t->buckets[f->hash & t->bucket_mask];
    while (*pp && *pp != idx) pp = &t->flows[*pp - 1].hnext;
    if (*pp) *pp = f->hnext;
    lru_unlink(t, f);
    f->in_use = false;
    f->hnext = t->free_head;
    t->free_head = idx;
    t->active--;
}

void kg_flow_table_touch(struct kg_flow_table *t, struct kg_flow *f)
{
    uint32_t idx = (uint32_t)(f - t->flows) + 1;
    if (t->lru_head[f->lru_class] == idx) return;
    lru_unlink(t, f);
    lru_push_head(t, f);
}

void kg_flow_table_set_class(struct kg_flow_table *t, struct kg_flow *f, enum kg_lru_class cls)
{
    if (f->lru_class == cls) return;
    lru_unlink(t, f);
    f->lru_class = (uint8_t)cls;
    lru_push_head(t, f);
}

struct kg_flow *kg_flow_table_oldest(struct kg_flow_table *t, enum kg_lru_class cls)
{
    return t->lru_tail[cls] ? &t->flows[t->lru_tail[cls] - 1] : NULL;
}

bool kg_flow_mark(struct kg_flow_info *info, uint64_t key)
{
    struct kg_flow *f = (struct kg_flow *)info;
    if (key == 0) key = 1; /* 0 marks an empty slot */
    if (f->marks_used * 2 >= f->marks_cap) {
        /* Grow (alerts only, never per packet). A flow that would need more
         * than 2^20 marks stops deduplicating rather than growing further. */
        uint32_t ncap = f->marks_cap ? f->marks_cap * 2 : 16;
        if (ncap > (1u << 20)) return true;
        uint64_t *nm = calloc(ncap, sizeof(*nm));
        if (!nm) return true;
        for (uint32_t i = 0; i < f->marks_cap; i++) {
            uint64_t m = f->marks[i];
            if (!m) continue;
            uint32_t j = (uint32_t)mix64(m) & (ncap - 1);
            while (nm[j]) j = (j + 1) & (ncap - 1);
            nm[j] = m;
        }
        free(f->marks);
        f->marks = nm;
        f->marks_cap = ncap;
    }
    uint32_t j = (uint32_t)mix64(key) & (f->marks_cap - 1);
    while (f->marks[j]) {
        if (f->marks[j] == key) return false;
        j = (j + 1) & (f->marks_cap - 1);
    }
    f->marks[j] = key;
    f->marks_used++;
    return true;
}
