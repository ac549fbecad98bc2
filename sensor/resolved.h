/*
 * sensor/resolved.h — the resolved-address cache: addresses that a flagged
 * domain resolved to (DNS answers), so that a later connection to such an
 * address raises a `conn.resolved` alert naming the domain.
 *
 * Shared by all workers: the DNS answer and the connection it leads to are
 * different flows, and the flow hash may send them to different workers.
 * It is written only for answers to flagged names (rare) and read once per
 * new flow, and only while it holds entries; 64 shards, each with its own
 * mutex, keep the two apart. Bounded: a fixed number of slots; one slot
 * per (address, name), up to 8 names per address; when a probe window is
 * full the entry closest to expiry is replaced.
 */
#ifndef KG_SENSOR_RESOLVED_H
#define KG_SENSOR_RESOLVED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kg_resolved;

/* Returns an owned cache of about `slots` entries (aborts on OOM). */
struct kg_resolved *kg_resolved_new(uint32_t slots);
void kg_resolved_free(struct kg_resolved *r);
/* Remembers that `domain` resolved to addr at resolved_us, until expires_us. */
void kg_resolved_put(struct kg_resolved *r, uint8_t family, const uint8_t *addr, const char *domain, size_t len,
                     uint64_t resolved_us, uint64_t expires_us);
/* Calls cb for every name that resolved to addr at or before `at_us` and is
 * still valid then; returns how many. `name` is valid during the call. */
typedef void (*kg_resolved_fn)(void *user, const char *name, size_t len);
size_t kg_resolved_get(struct kg_resolved *r, uint8_t family, const uint8_t *addr, uint64_t at_us,
                       kg_resolved_fn cb, void *user);

#endif
