/*
 * capture/capture_int.h — backend interface behind struct kg_capture
 * (libpcap's pcap-int.h). Private to capture/.
 *
 * capture.c owns the generic half of a handle: the options set before
 * start, the started/stopped state and the packet and byte counters. A
 * backend owns `priv`, allocated by its start() and released by close().
 */
#ifndef KG_CAPTURE_INT_H
#define KG_CAPTURE_INT_H

#include <stdatomic.h>

#include "capture/capture.h"

struct kg_capture_ops {
    const char *kind;
    bool live; /* takes the live-only options (promisc, filter, fanout, ...) */
    int (*start)(struct kg_capture *c, struct kg_err *err);
    int (*next)(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err);
    /* Called from any thread or a signal handler, after the generic layer
     * has set c->stop: must only do async-signal-safe work. May be NULL. */
    void (*brk)(struct kg_capture *c);
    /* Fills the backend's counters (drops) into *out; may be NULL. */
    void (*stats)(struct kg_capture *c, struct kg_capture_stats *out);
    void (*close)(struct kg_capture *c);
};

struct kg_capture {
    const struct kg_capture_ops *ops;
    char *source;
    uint32_t snaplen;
    uint16_t iface;
    bool started;
    atomic_bool stop; /* set by kg_capture_break(); next() then returns KG_ERR_EOF */
    struct kg_capture_stats st;

    /* Live options (ops->live only), read by the backend's start(). */
    bool promisc;
    uint32_t buffer_size; /* bytes of kernel ring */
    int timeout_ms;
    char *filter; /* owned; NULL = no filter */
    bool fanout;
    uint16_t fanout_group;

    void *priv; /* backend state */
};

extern const struct kg_capture_ops kg_capture_pcap_file_ops;
extern const struct kg_capture_ops kg_capture_pcap_live_ops;

/* Joins a started pcap_live handle to its fanout group (c->fanout_group).
 * Returns 0 or KG_ERR_IO with err naming the interface and the errno. */
int kg_capture_pcap_live_join_fanout(struct kg_capture *c, struct kg_err *err);

#endif
