/*
 * sensor/sensor_control.h — the control thread (sensor/control.c) and the
 * message type the pipeline's rings carry. Private to sensor/.
 */
#ifndef KG_SENSOR_CONTROL_H
#define KG_SENSOR_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "sensor/sensor.h"
#include "sensor/sensor_epoch.h"
#include "sensor/sensor_ring.h"

/* One event on its way to the export thread: JSON, one line. */
struct kg_msg {
    size_t len;
    char data[];
};

/* Counters of a running pipeline, summed over workers (stats events). */
struct kg_stats_snapshot {
    struct kg_dissect_stats dissect;
    struct kg_capture_stats capture;
    uint64_t alerts, alerts_dropped;
};
typedef void (*kg_stats_collect_fn)(void *ctx, struct kg_stats_snapshot *out);

struct kg_control {
    pthread_t th;
    bool started;
    _Atomic bool stop;
    const struct kg_pipeline_params *p;
    struct kg_epoch *epoch;
    struct kg_ring ring; /* control -> export: struct kg_msg * */
    int inotify_fd;
    uint64_t reloads, reloads_failed;
    char *redis_feed, *redis_version; /* the Redis feed source's last fetch */
    size_t redis_feed_len;
    kg_stats_collect_fn collect; /* NULL: no stats events */
    void *collect_ctx;
    uint64_t start_ns;
};

int kg_control_start(struct kg_control *c, const struct kg_pipeline_params *p, struct kg_epoch *epoch,
                     kg_stats_collect_fn collect, void *collect_ctx, struct kg_err *err);
/* Reloads the indicator feeds now (on the caller's thread). */
int kg_control_reload(struct kg_control *c, const char *trigger);
/* Stops and joins the thread; its ring stays readable until destroy. */
void kg_control_stop(struct kg_control *c);
void kg_control_destroy(struct kg_control *c);

#endif
