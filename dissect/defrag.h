/*
 * dissect/defrag.h — private to dissect/: IPv4 (RFC 791) and IPv6
 * (RFC 8200 section 4.5) fragment reassembly for one worker.
 *
 * Threads: a kg_defrag belongs to one worker thread and is never shared, so
 * nothing here locks. Memory: kg_defrag_new() allocates a pool of 1040-byte
 * slots worth max_bytes (backed lazily by the OS as slots are first used),
 * the hash buckets and a 64 KiB output buffer; nothing is allocated after
 * that. Incomplete datagrams take one slot for their record and one per KiB
 * of data; bytes_held (slots in use * 1040) therefore never exceeds
 * max_bytes. Policy, limits and counters: docs/DEFRAG.md.
 */
#ifndef KG_DEFRAG_H
#define KG_DEFRAG_H

#include <stdint.h>

struct kg_defrag;

struct kg_defrag_stats {
    uint64_t fragments;          /* fragments given to kg_defrag_add() */
    uint64_t reassembled;        /* datagrams completed and returned */
    uint64_t timeouts;           /* incomplete datagrams dropped after timeout_us */
    uint64_t duplicates;         /* fragments whose bytes were all held already, identical */
    uint64_t overlaps;           /* fragments overlapping held data (duplicates excluded) */
    uint64_t overlap_conflicts;  /* overlaps whose bytes differ, contradictory ends */
    uint64_t evicted_for_memory; /* incomplete datagrams dropped to stay under max_bytes */
    uint64_t too_big;            /* fragments that would make a datagram over 65535 bytes */
    uint64_t invalid;            /* malformed or truncated fragments */
    uint64_t bytes_held;         /* current memory held by incomplete datagrams (a gauge) */
    uint64_t datagrams_held;     /* current incomplete datagrams (a gauge) */
};

/* Returns owned state (free with kg_defrag_free), or NULL on out-of-memory.
 * max_bytes: cap on the memory of incomplete datagrams (at least 16 slots,
 * 16.25 KiB; a 64 KiB datagram needs 65 slots, 66 KiB). timeout_us: an
 * incomplete datagram is dropped this long after its first fragment
 * arrived; 0 means 30 s (RFC 791 suggests 15 s, RFC 8200 says 60 s). */
struct kg_defrag *kg_defrag_new(uint64_t max_bytes, uint64_t timeout_us);

/*
 * Adds one fragment; borrows l3, which may also point into the datagram the
 * previous call returned (a fragment found inside a reassembled tunnel).
 * l3/l3_len: the whole IP datagram as captured (IPv4 header and data, or
 * IPv6 header, extension headers, fragment header and data; link padding
 * after the IP length is ignored), family 4 or 6. now_us: the packet time,
 * on the same clock as kg_defrag_expire().
 *
 * Returns 1 when this fragment completed a datagram: *out and *out_len then
 * hold an unfragmented IP datagram, valid until the next call on this
 * kg_defrag. IPv4: the first fragment's header (with its options), MF and
 * offset cleared (DF kept), total length set, header checksum recomputed.
 * IPv6: the first fragment's unfragmentable part, the fragment header
 * removed, the preceding Next Header set to the fragment header's, payload
 * length set. A datagram that is not fragmented (IPv4 MF=0 offset 0, an
 * IPv6 atomic fragment per RFC 6946, IPv6 without a fragment header) is
 * returned as such (1), copied, with an atomic fragment header removed.
 * Returns 0 when the fragment is held (or was a duplicate of held data),
 * -1 when it was dropped (malformed, over a limit, or an overlap that the
 * policy rejects); every drop is counted in the stats.
 */
int kg_defrag_add(struct kg_defrag *df, uint8_t family, const uint8_t *l3, uint32_t l3_len, uint64_t now_us,
                  const uint8_t **out, uint32_t *out_len);

/* Drops the incomplete datagrams whose first fragment is timeout_us or more
 * older than now_us. O(number dropped): call it as often as you like. */
void kg_defrag_expire(struct kg_defrag *df, uint64_t now_us);

/* Counters; the pointer is valid until kg_defrag_free(). */
const struct kg_defrag_stats *kg_defrag_stats(const struct kg_defrag *df);

/* Frees everything; NULL is a no-op. */
void kg_defrag_free(struct kg_defrag *df);

#endif /* KG_DEFRAG_H */
