/*
 * export/sink.c — the backend-independent half of a sink: picking a
 * backend from the spec, the framing checks every event goes through, and
 * dispatch through the ops table.
 *
 * Threads: a sink is used by one thread at a time (the export thread).
 * Owns the struct kg_sink and its name; the backend owns s->priv.
 */
#include "export/export_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Spec prefixes, tried in order. The prefix is stripped before open(). */
static const struct {
    const char *prefix;
    bool whole; /* the spec must equal the prefix */
    const struct kg_sink_ops *ops;
} backends[] = {
    {"stdout", true, &kg_sink_stdout_ops},
    {"-", true, &kg_sink_stdout_ops},
    {"file:", false, &kg_sink_file_ops},
    {"redis://", false, &kg_sink_redis_ops},
    {"rediss://", false, &kg_sink_rediss_ops},
    {"redis-sentinel://", false, &kg_sink_redis_sentinel_ops},
    {"rediss-sentinel://", false, &kg_sink_rediss_sentinel_ops},
};

/* Bumped by kg_sinks_request_reopen() (possibly in a signal handler); file
 * sinks compare it with the value they last saw. */
static _Atomic uint64_t g_reopen_generation;

void kg_sinks_request_reopen(void)
{
    atomic_fetch_add_explicit(&g_reopen_generation, 1, memory_order_relaxed);
}

uint64_t kg_sink_reopen_generation(void)
{
    return atomic_load_explicit(&g_reopen_generation, memory_order_relaxed);
}

struct kg_sink *kg_sink_new(const char *spec, struct kg_err *err)
{
    if (!spec) {
        kg_err_set(err, KG_ERR_INVAL, "no output given");
        return NULL;
    }
    for (size_t i = 0; i < KG_ARRAY_LEN(backends); i++) {
        const size_t n = strlen(backends[i].prefix);
        if (strncmp(spec, backends[i].prefix, n) != 0) continue;
        if (backends[i].whole && spec[n] != '\0') continue;
        struct kg_sink *s = kg_xcalloc(1, sizeof(*s));
        s->ops = backends[i].ops;
        if (s->ops->open(s, spec + n, err) != 0) {
            free(s->name);
            free(s);
            return NULL;
        }
        if (!s->name) s->name = kg_xstrdup(spec);
        return s;
    }
    /* Only the scheme is echoed: the rest may hold a password. */
    const size_t shown = strcspn(spec, ":/?@");
    kg_err_set(err, KG_ERR_INVAL,
               "unknown output '%.*s': expected stdout, -, file:PATH, redis://, rediss://, redis-sentinel:// "
               "or rediss-sentinel:// (see docs/OUTPUTS.md)",
               (int)KG_MIN(shown, (size_t)32), spec);
    return NULL;
}

int kg_sink_write(struct kg_sink *s, const char *json, size_t len)
{
    if (!json) return KG_ERR_INVAL;
    if (len > 0 && json[len - 1] == '\n') len--;
    /* Events are lines in files and on stdout, and list items that tools
     * read as lines from Redis: an inner newline would split one event. */
    if (len == 0 || memchr(json, '\n', len)) return KG_ERR_INVAL;
    int rc = s->ops->write(s, json, len);
    if (rc == 0) s->st.written++;
    return rc;
}

int kg_sink_flush(struct kg_sink *s, struct kg_err *err)
{
    return s->ops->flush(s, err);
}

int kg_sink_set_queue_limit(struct kg_sink *s, size_t max_events)
{
    if (max_events == 0 || !s->ops->set_queue_limit) return KG_ERR_INVAL;
    return s->ops->set_queue_limit(s, max_events);
}

int kg_sink_reopen(struct kg_sink *s, struct kg_err *err)
{
    return s->ops->reopen ? s->ops->reopen(s, err) : 0;
}

void kg_sink_get_stats(const struct kg_sink *s, struct kg_sink_stats *out)
{
    *out = s->st;
}

const char *kg_sink_name(const struct kg_sink *s)
{
    return s->name;
}

void kg_sink_free(struct kg_sink *s)
{
    if (!s) return;
    s->ops->close(s);
    free(s->name);
    free(s);
}

uint64_t kg_sink_count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    return lines;
}
