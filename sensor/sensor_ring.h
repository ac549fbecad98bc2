/*
 * sensor/sensor_ring.h — bounded single-producer/single-consumer ring of
 * pointers: the only place pipeline threads meet.
 *
 * Ownership moves with the pointer: a pushed object belongs to the consumer.
 * Lock-free: the producer writes only `tail`, the consumer only `head`, each
 * on its own cache line; release/acquire ordering publishes the slot
 * contents. A full ring makes push fail: the caller decides to wait (file
 * input: back-pressure, nothing lost) or to drop and count (live input).
 */
#ifndef KG_SENSOR_RING_H
#define KG_SENSOR_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct kg_ring {
    _Alignas(64) _Atomic uint32_t head; /* next slot to read (consumer) */
    _Alignas(64) _Atomic uint32_t tail; /* next slot to write (producer) */
    _Alignas(64) uint32_t mask;
    void **slots;
};

/* size must be a power of two. Returns 0 or KG_ERR_NOMEM. */
static inline int kg_ring_init(struct kg_ring *r, uint32_t size)
{
    r->slots = calloc(size, sizeof(void *));
    if (!r->slots) return -1;
    r->mask = size - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

static inline void kg_ring_destroy(struct kg_ring *r)
{
    free(r->slots);
    r->slots = NULL;
}

/* Producer only. Returns false when full (ownership stays with the caller). */
static inline bool kg_ring_push(struct kg_ring *r, void *p)
{
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t - h > r->mask) return false;
    r->slots[t & r->mask] = p;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

/* Consumer only. Returns NULL when empty. */
static inline void *kg_ring_pop(struct kg_ring *r)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h == t) return NULL;
    void *p = r->slots[h & r->mask];
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return p;
}

/* Either side: an estimate (exact when the other side is idle). */
static inline uint32_t kg_ring_count(struct kg_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) -
           atomic_load_explicit(&r->head, memory_order_acquire);
}

#endif
