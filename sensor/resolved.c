/*
 * sensor/resolved.c — see resolved.h. Sharded, bounded, mutex per shard.
 *
 * One slot per (address, name): an address may be the answer of several
 * flagged names (shared hosting, CDNs), each with its own resolution time,
 * and a connection is linked to every name that resolved to its
 * destination at or before the connection started.
 */
#include "sensor/resolved.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/kg_common.h"

#define SHARDS 64
#define PROBE 8 /* slots looked at per address: at most this many names per address */

struct slot {
    uint64_t expires_us; /* 0 = empty */
    uint64_t resolved_us;
    uint8_t family;
    uint8_t addr[16];
    uint16_t len;
    char domain[256];
};

struct shard {
    pthread_mutex_t mu;
    struct slot *slots;
};

struct kg_resolved {
    _Atomic uint64_t entries; /* lets readers skip the lock while the cache never held anything */
    uint32_t per_shard;       /* power of two */
    uint64_t seed;
    struct shard shards[SHARDS];
};

static uint64_t hash_addr(const struct kg_resolved *r, uint8_t family, const uint8_t *addr)
{
    return kg_fnv1a64(addr, family == 6 ? 16 : 4, r->seed ^ family);
}

struct kg_resolved *kg_resolved_new(uint32_t slots)
{
    struct kg_resolved *r = kg_xcalloc(1, sizeof(*r));
    uint32_t per = 16;
    while (per * SHARDS < slots) per <<= 1;
    r->per_shard = per;
    r->seed = kg_monotonic_ns();
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&r->shards[i].mu, NULL);
        r->shards[i].slots = kg_xcalloc(per, sizeof(struct slot));
    }
    atomic_init(&r->entries, 0);
    return r;
}

void kg_resolved_free(struct kg_resolved *r)
{
    if (!r) return;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_destroy(&r->shards[i].mu);
        free(r->shards[i].slots);
    }
    free(r);
}

static bool same_addr(const struct slot *s, uint8_t family, const uint8_t *addr)
{
    return s->expires_us && s->family == family && memcmp(s->addr, addr, family == 6 ? 16 : 4) == 0;
}

void kg_resolved_put(struct kg_resolved *r, uint8_t family, const uint8_t *addr, const char *domain, size_t len,
                     uint64_t resolved_us, uint64_t expires_us)
{
    uint64_t h = hash_addr(r, family, addr);
    struct shard *sh = &r->shards[h % SHARDS];
    if (len > 255) len = 255;
    pthread_mutex_lock(&sh->mu);
    struct slot *victim = NULL;
    for (uint32_t i = 0; i < PROBE; i++) {
        struct slot *s = &sh->slots[(h / SHARDS + i) & (r->per_shard - 1)];
        if (same_addr(s, family, addr) && s->len == len && memcmp(s->domain, domain, len) == 0) {
            /* The same name again: keep its first resolution, extend its life. */
            if (resolved_us < s->resolved_us) s->resolved_us = resolved_us;
            if (expires_us > s->expires_us) s->expires_us = expires_us;
            pthread_mutex_unlock(&sh->mu);
            return;
        }
        if (!victim || s->expires_us < victim->expires_us) victim = s; /* empty or soonest to expire */
    }
    if (!victim->expires_us) atomic_fetch_add(&r->entries, 1);
    victim->expires_us = expires_us;
    victim->resolved_us = resolved_us;
    victim->family = family;
    memset(victim->addr, 0, sizeof(victim->addr));
    memcpy(victim->addr, addr, family == 6 ? 16 : 4);
    memcpy(victim->domain, domain, len);
    victim->domain[len] = '\0';
    victim->len = (uint16_t)len;
    pthread_mutex_unlock(&sh->mu);
}

size_t kg_resolved_get(struct kg_resolved *r, uint8_t family, const uint8_t *addr, uint64_t at_us,
                       kg_resolved_fn cb, void *user)
{
    if (atomic_load_explicit(&r->entries, memory_order_relaxed) == 0) return 0;
    uint64_t h = hash_addr(r, family, addr);
    struct shard *sh = &r->shards[h % SHARDS];
    /* Copy out under the lock, call back outside it (the callback raises
     * alerts, which may wait on the export ring with file input). */
    struct {
        char name[256];
        size_t len;
        uint64_t at;
    } found[PROBE];
    size_t n = 0;
    pthread_mutex_lock(&sh->mu);
    for (uint32_t i = 0; i < PROBE; i++) {
        struct slot *s = &sh->slots[(h / SHARDS + i) & (r->per_shard - 1)];
        if (same_addr(s, family, addr) && s->expires_us > at_us && s->resolved_us <= at_us) {
            memcpy(found[n].name, s->domain, s->len + 1u);
            found[n].len = s->len;
            found[n].at = s->resolved_us;
            n++;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    /* Earliest resolution first: when several names of one indicator lead to
     * the address, the alert names the first. It is also the one least likely
     * to race with the connection: on live traffic an answer that arrives
     * just before the connection may still be in another worker's hands when
     * the connection starts, and the alert must not depend on that. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && found[j].at < found[j - 1].at; j--) {
            __typeof__(found[0]) t = found[j];
            found[j] = found[j - 1];
            found[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) cb(user, found[i].name, found[i].len);
    return n;
}
