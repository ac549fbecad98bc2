/*
 * capture/capture.c — the backend-independent half of a capture handle:
 * construction, option setters, the started/stopped state, packet and byte
 * counters, dispatch through the ops table (capture_int.h).
 *
 * Threads: one thread drives a handle; kg_capture_break() alone may come
 * from another thread or a signal handler (it touches an atomic flag and
 * calls the backend's async-signal-safe brk()).
 * Ownership: the handle owns its source string, its filter string and the
 * backend state.
 */
#include "capture/capture_int.h"

#include <stdlib.h>
#include <string.h>

static const struct kg_capture_ops *const backends[] = {
    &kg_capture_pcap_file_ops,
    &kg_capture_pcap_live_ops,
};

struct kg_capture *kg_capture_new(const char *kind, const char *source, struct kg_err *err)
{
    if (!kind || !source || !source[0]) {
        kg_err_set(err, KG_ERR_INVAL, "capture: no source given");
        return NULL;
    }
    for (size_t i = 0; i < KG_ARRAY_LEN(backends); i++) {
        if (strcmp(backends[i]->kind, kind) != 0) continue;
        struct kg_capture *c = kg_xcalloc(1, sizeof(*c));
        c->ops = backends[i];
        c->source = kg_xstrdup(source);
        c->snaplen = KG_CAPTURE_MAX_SNAPLEN;
        c->promisc = true;
        c->buffer_size = KG_CAPTURE_DEFAULT_BUFFER;
        c->timeout_ms = KG_CAPTURE_DEFAULT_TIMEOUT_MS;
        atomic_init(&c->stop, false);
        return c;
    }
    kg_err_set(err, KG_ERR_INVAL, "unknown capture kind '%s'", kind);
    return NULL;
}

/* Options that shape how the source is opened: only before start. */
static bool can_configure(const struct kg_capture *c)
{
    return c && !c->started;
}

static bool can_configure_live(const struct kg_capture *c)
{
    return can_configure(c) && c->ops->live;
}

int kg_capture_set_snaplen(struct kg_capture *c, uint32_t snaplen)
{
    if (!can_configure(c) || snaplen < 64 || snaplen > KG_CAPTURE_MAX_SNAPLEN) return KG_ERR_INVAL;
    c->snaplen = snaplen;
    return 0;
}

int kg_capture_set_iface_index(struct kg_capture *c, uint16_t iface)
{
    c->iface = iface;
    return 0;
}

int kg_capture_set_promisc(struct kg_capture *c, bool on)
{
    if (!can_configure_live(c)) return KG_ERR_INVAL;
    c->promisc = on;
    return 0;
}

int kg_capture_set_buffer_size(struct kg_capture *c, uint32_t bytes)
{
    if (!can_configure_live(c) || bytes < (1u << 20)) return KG_ERR_INVAL;
    c->buffer_size = bytes;
    return 0;
}

int kg_capture_set_filter(struct kg_capture *c, const char *bpf)
{
    if (!can_configure_live(c)) return KG_ERR_INVAL;
    free(c->filter);
    c->filter = bpf && bpf[0] ? kg_xstrdup(bpf) : NULL;
    return 0;
}

int kg_capture_set_timeout_ms(struct kg_capture *c, int ms)
{
    if (!can_configure_live(c) || ms < 1 || ms > 60000) return KG_ERR_INVAL;
    c->timeout_ms = ms;
    return 0;
}

int kg_capture_set_fanout(struct kg_capture *c, uint16_t group)
{
    if (!c || !c->ops->live) return KG_ERR_INVAL;
    if (c->fanout) return c->fanout_group == group ? 0 : KG_ERR_INVAL;
    c->fanout = true;
    c->fanout_group = group;
    if (!c->started) return 0; /* joined by start(), which reports errors in its err */
    /* Already capturing: join now. This setter has no err to fill, so the
     * reason (strerror) goes to the log. */
    struct kg_err err = {{0}};
    int rc = kg_capture_pcap_live_join_fanout(c, &err);
    if (rc < 0) {
        c->fanout = false;
        kg_log(KG_LOG_ERROR, "capture", "%s", err.msg);
    }
    return rc;
}

bool kg_capture_is_live(const struct kg_capture *c)
{
    return c && c->ops->live;
}

int kg_capture_start(struct kg_capture *c, struct kg_err *err)
{
    if (c->started) return kg_err_set(err, KG_ERR_INVAL, "%s: capture already started", c->source);
    int rc = c->ops->start(c, err);
    if (rc == 0) c->started = true;
    return rc;
}

int kg_capture_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err)
{
    if (atomic_load_explicit(&c->stop, memory_order_relaxed)) return KG_ERR_EOF;
    if (KG_UNLIKELY(!c->started)) return kg_err_set(err, KG_ERR_INVAL, "%s: capture not started", c->source);
    int rc = c->ops->next(c, pkt, err);
    if (rc == 1) {
        pkt->iface = c->iface;
        c->st.packets++;
        c->st.bytes += pkt->wirelen;
    }
    return rc;
}

void kg_capture_break(struct kg_capture *c)
{
    if (!c) return;
    atomic_store(&c->stop, true);
    if (c->started && c->ops->brk) c->ops->brk(c);
}

void kg_capture_get_stats(struct kg_capture *c, struct kg_capture_stats *out)
{
    *out = c->st;
    if (c->started && c->ops->stats) c->ops->stats(c, out);
}

const char *kg_capture_source(const struct kg_capture *c)
{
    return c->source;
}

void kg_capture_free(struct kg_capture *c)
{
    if (!c) return;
    if (c->priv && c->ops->close) c->ops->close(c);
    free(c->filter);
    free(c->source);
    free(c);
}
