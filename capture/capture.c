/*
 * capture/capture.c — the backend-independent half of a capture handle:
 * construction, option setters, dispatch through the ops table.
 */
#include "capture/capture_int.h"

#include <stdlib.h>
#include <string.h>

static const struct kg_capture_ops *const backends[] = {
    &kg_capture_pcap_file_ops,
};

struct kg_capture *kg_capture_new(const char *kind, const char *source, struct kg_err *err)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(backends); i++) {
        if (strcmp(backends[i]->kind, kind) != 0) continue;
        struct kg_capture *c = kg_xcalloc(1, sizeof(*c));
        c->ops = backends[i];
        c->source = kg_xstrdup(source);
        c->snaplen = 262144;
        return c;
    }
    kg_err_set(err, KG_ERR_INVAL, "unknown capture kind '%s'", kind);
    return NULL;
}

int kg_capture_set_snaplen(struct kg_capture *c, uint32_t snaplen)
{
    if (snaplen < 64) return KG_ERR_INVAL;
    c->snaplen = snaplen;
    return 0;
}

int kg_capture_set_iface_index(struct kg_capture *c, uint16_t iface)
{
    c->iface = iface;
    return 0;
}

int kg_capture_start(struct kg_capture *c, struct kg_err *err)
{
    return c->ops->start(c, err);
}

int kg_capture_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err)
{
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
    if (c->ops->brk) c->ops->brk(c);
}

void kg_capture_get_stats(struct kg_capture *c, struct kg_capture_stats *out)
{
    *out = c->st;
    if (c->ops->stats) c->ops->stats(c, out);
}

const char *kg_capture_source(const struct kg_capture *c)
{
    return c->source;
}

void kg_capture_free(struct kg_capture *c)
{
    if (!c) return;
    if (c->ops->close) c->ops->close(c);
    free(c->source);
    free(c);
}
