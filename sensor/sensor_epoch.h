/*
 * sensor/sensor_epoch.h — quiescent-state based reclamation for data that
 * workers read without locks and the control thread replaces (the
 * indicator set).
 *
 * Each worker owns a slot and, at points where it holds no reference to
 * shared data (between batches, between packets), records the current
 * generation in it, then loads the shared pointer afresh. The replacer
 * publishes the new pointer, advances the generation, and waits until every
 * slot has recorded the new generation (or is offline): from then on no
 * worker can hold the old pointer, which can be freed. Workers never block;
 * the cost on the hot path is one store and one load per quiescent point.
 */
#ifndef KG_SENSOR_EPOCH_H
#define KG_SENSOR_EPOCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define KG_EPOCH_OFFLINE UINT64_MAX

struct kg_epoch_slot {
    _Alignas(64) _Atomic uint64_t seen;
};

struct kg_epoch {
    _Atomic uint64_t gen;
    uint32_t nslots;
    struct kg_epoch_slot *slots;
};

static inline int kg_epoch_init(struct kg_epoch *e, uint32_t nslots)
{
    atomic_init(&e->gen, 1);
    e->nslots = nslots;
    e->slots = aligned_alloc(64, sizeof(*e->slots) * (nslots ? nslots : 1));
    if (!e->slots) return -1;
    for (uint32_t i = 0; i < nslots; i++) atomic_init(&e->slots[i].seen, 1);
    return 0;
}

static inline void kg_epoch_destroy(struct kg_epoch *e)
{
    free(e->slots);
    e->slots = NULL;
}

/* Worker i holds no reference to shared data from before this call. */
static inline void kg_epoch_quiescent(struct kg_epoch *e, uint32_t i)
{
    atomic_store(&e->slots[i].seen, atomic_load(&e->gen));
}

/* Worker i stopped for good: never waited for again. */
static inline void kg_epoch_offline(struct kg_epoch *e, uint32_t i)
{
    atomic_store(&e->slots[i].seen, KG_EPOCH_OFFLINE);
}

/* Replacer: after publishing the new pointer, waits until every worker has
 * passed a quiescent point; the old pointer may then be freed. */
static inline void kg_epoch_synchronize(struct kg_epoch *e)
{
    uint64_t g = atomic_fetch_add(&e->gen, 1) + 1;
    for (uint32_t i = 0; i < e->nslots; i++) {
        while (atomic_load(&e->slots[i].seen) < g) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

#endif
