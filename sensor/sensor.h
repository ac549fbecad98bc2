/*
 * sensor/sensor.h — the pipeline that wires capture -> dissect ->
 * indicators -> export, private to sensor/.
 *
 * Threads (see docs/ARCHITECTURE.md):
 *   reader (the main thread, file input): reads packets with libpcap, hashes
 *     each to a worker (symmetric flow hash), copies it into that worker's
 *     current batch, hands full batches over an SPSC ring;
 *   workers (N): own a dissector each (flow table, nDPI); run every packet
 *     to completion; match observations against the indicator set; format
 *     alerts as JSON; hand them over their own SPSC ring to
 *   export (1): writes every alert to every sink, flushes, retries.
 * Empty batches travel back to the reader over a second SPSC ring per
 * worker, so the steady state allocates nothing.
 */
#ifndef KG_SENSOR_H
#define KG_SENSOR_H

#include <signal.h>
#include <stdint.h>

#include "config/config.h"
#include "export/export.h"
#include "indicators/indicators.h"

struct kg_pipeline_stats {
    uint64_t packets_read, bytes_read;
    uint64_t batches_waited;   /* times the reader waited for a worker (file input back-pressure) */
    uint64_t alerts;           /* alert events produced */
    uint64_t alerts_waited;    /* times a worker waited for the export thread */
    uint64_t alerts_undelivered;
    uint64_t read_errors;
    struct kg_dissect_stats dissect; /* summed over workers */
};

struct kg_pipeline_params {
    const struct kg_config *cfg;
    const struct kg_indicator_set *indicators; /* borrowed, immutable */
    struct kg_sink **sinks;                    /* borrowed */
    size_t nsinks;
    uint32_t workers;
    const char *sensor_id;
    uint64_t boot_id;
    volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM */
};

/* Runs the whole pipeline over the configured input files. Returns 0 when
 * every input was read and every alert delivered, a negative KG_ERR_*
 * otherwise (err filled). Stats are filled in both cases. */
int kg_pipeline_run(const struct kg_pipeline_params *p, struct kg_pipeline_stats *stats, struct kg_err *err);

#endif
