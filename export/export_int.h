/*
 * export/export_int.h — backend interface behind struct kg_sink (hiredis's
 * redisContextFuncs, libpcap's pcap-int.h). Private to export/.
 *
 * sink.c owns the struct kg_sink and the common checks (framing, the
 * `written` counter); a backend owns `priv` and keeps the other counters.
 * Everything here runs on the one export thread.
 */
#ifndef KG_EXPORT_INT_H
#define KG_EXPORT_INT_H

#include "export/export.h"

struct kg_sink_ops {
    const char *kind;
    /* Parses `arg` (the spec without its scheme prefix) and sets up
     * s->priv and s->name. Returns 0 or a negative KG_ERR_* with err filled. */
    int (*open)(struct kg_sink *s, const char *arg, struct kg_err *err);
    /* Takes a copy of one event: `len` > 0 bytes, no '\n' anywhere. */
    int (*write)(struct kg_sink *s, const char *json, size_t len);
    int (*flush)(struct kg_sink *s, struct kg_err *err);
    /* Optional (NULL: nothing to do). */
    int (*reopen)(struct kg_sink *s, struct kg_err *err);
    int (*set_queue_limit)(struct kg_sink *s, size_t max_events);
    /* Releases priv; never blocks on the destination. */
    void (*close)(struct kg_sink *s);
};

struct kg_sink {
    const struct kg_sink_ops *ops;
    char *name;              /* owned; the spec with any password masked */
    struct kg_sink_stats st; /* `written` kept by sink.c, the rest by the backend */
    void *priv;              /* backend state */
};

extern const struct kg_sink_ops kg_sink_stdout_ops;
extern const struct kg_sink_ops kg_sink_file_ops;
extern const struct kg_sink_ops kg_sink_redis_ops;

/* Number of '\n' in p[0..n): line sinks count delivered events this way. */
uint64_t kg_sink_count_lines(const char *p, size_t n);

#endif /* KG_EXPORT_INT_H */
