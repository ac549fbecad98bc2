/*
 * capture/capture_int.h — backend interface behind struct kg_capture
 * (libpcap's pcap-int.h). Private to capture/.
 */
#ifndef KG_CAPTURE_INT_H
#define KG_CAPTURE_INT_H

#include "capture/capture.h"

struct kg_capture_ops {
    const char *kind;
    int (*start)(struct kg_capture *c, struct kg_err *err);
    int (*next)(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err);
    void (*brk)(struct kg_capture *c);
    void (*stats)(struct kg_capture *c, struct kg_capture_stats *out);
    void (*close)(struct kg_capture *c);
};

struct kg_capture {
    const struct kg_capture_ops *ops;
    char *source;
    uint32_t snaplen;
    uint16_t iface;
    struct kg_capture_stats st;
    void *priv; /* backend state */
};

extern const struct kg_capture_ops kg_capture_pcap_file_ops;

#endif
