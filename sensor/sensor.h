/*
 * sensor/sensor.h — the pipeline that wires capture -> dissect ->
 * indicators -> export, private to sensor/.
 *
 * Threads (see docs/ARCHITECTURE.md):
 *   File input ("reader -> workers" mode):
 *   reader (the main thread): reads packets with libpcap, hashes
 *     each to a worker (symmetric flow hash), copies it into that worker's
 *     current batch, hands full batches over an SPSC ring;
 *   workers (N): own a dissector each (flow table, nDPI); run every packet
 *     to completion; match observations against the indicator set; format
 *     alerts as JSON; hand them over their own SPSC ring to
 *   export (1): writes every alert to every sink, flushes, retries.
 * Empty batches travel back to the reader over a second SPSC ring per
 * worker, so the steady state allocates nothing.
 *   Live input ("workers" mode): capture.threads capture handles per
 *   interface share it through an AF_PACKET fanout group; each handle is
 *   read by its own worker, which runs packets to completion; the main
 *   thread waits for a signal; each worker then drains its capture ring
 *   (at most a second under traffic that never pauses) and stops.
 */
#ifndef KG_SENSOR_H
#define KG_SENSOR_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "export/export.h"
#include "indicators/indicators.h"

struct kg_pipeline_stats {
    bool started;              /* the threads ran (false: setup failed, nothing to summarise) */
    uint64_t packets_read, bytes_read;
    uint64_t batches_waited;   /* times the reader waited for a worker (file input back-pressure) */
    uint64_t alerts;           /* alert events produced */
    uint64_t alerts_waited;    /* times a worker waited for the export thread */
    uint64_t alerts_dropped;   /* live mode: alerts dropped because the export ring was full */
    uint64_t alerts_undelivered;
    uint64_t read_errors;
    uint64_t reloads, reloads_failed; /* indicator reloads */
    uint64_t alerts_suppressed, alerts_thresholded; /* GSOC tuning */
    struct kg_dissect_stats dissect; /* summed over workers */
};

/* The indicator set in force: workers load it at quiescent points; the
 * control thread replaces it on reload (sensor_epoch.h). */
struct kg_ind_shared {
    _Atomic(struct kg_indicator_set *) cur;
    _Atomic(struct kg_tuning *) tuning; /* GSOC tuning in force; NULL = none */
};

struct kg_resolved;

struct kg_pipeline_params {
    const struct kg_config *cfg;
    struct kg_ind_shared *indicators;          /* the set in force; the pipeline may replace it */
    struct kg_sink **sinks;                    /* borrowed: alert sinks, then stats.outputs sinks */
    size_t nsinks;
    size_t nalert_sinks;                       /* the first ones; == nsinks when stats.outputs is empty */
    uint32_t workers;
    const char *sensor_id;
    uint64_t boot_id;
    struct kg_geoip *geoip;        /* borrowed; NULL when no database is configured */
    struct kg_resolved *resolved;  /* borrowed: addresses flagged names resolved to */
    const char *redis_feed;        /* the Redis feed source as fetched at start-up (NULL: none) */
    size_t redis_feed_len;
    const char *redis_feed_version;
    _Atomic int *stop;   /* set by SIGINT/SIGTERM */
    _Atomic int *reload; /* set by SIGHUP: reload the indicator feeds */
};

/*
 * Loads every configured indicator feed into a new set (paths or glob
 * patterns). Returns the finalized set (owned by the caller), or NULL with
 * err filled when a feed cannot be read. Bad lines are skipped and logged
 * (file:line: message); *bad_lines (may be NULL) receives their count.
 */
struct kg_indicator_set *kg_sensor_load_indicators(const struct kg_config *cfg, uint64_t *bad_lines,
                                                   struct kg_err *err);

/* The same, plus a feed held in memory (the Redis feed source; NULL data:
 * none). */
struct kg_indicator_set *kg_sensor_load_indicators_with(const struct kg_config *cfg, const char *extra_name,
                                                        const char *extra, size_t extra_len, uint64_t *bad_lines,
                                                        struct kg_err *err);

/* indicators.redis: fetches the feed when its version differs from
 * have_version. Returns 1 with owned feed, len and version, 0 when unchanged
 * or unreachable, -1 when the URL is bad. */
int kg_sensor_fetch_redis_feed(const struct kg_config *cfg, const char *have_version, char **feed, size_t *len,
                               char **version);

/* Loads the tuning file of the configuration; NULL when none is configured
 * (err->msg empty) or on error (err filled). */
struct kg_tuning *kg_sensor_load_tuning(const struct kg_config *cfg, struct kg_err *err);

/* Runs the whole pipeline over the configured input files. Returns 0 when
 * every input was read and every alert delivered, a negative KG_ERR_*
 * otherwise (err filled). Stats are filled in both cases. */
int kg_pipeline_run(const struct kg_pipeline_params *p, struct kg_pipeline_stats *stats, struct kg_err *err);

#endif
