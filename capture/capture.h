/*
 * capture/capture.h — packet sources.
 *
 * A capture handle reads packets from one source through a backend ops
 * table (struct kg_capture_ops in capture_int.h): "pcap_file" reads pcap
 * and pcapng files (the format is detected from the magic number by
 * libpcap, never from the file name). Live backends (pcap_live,
 * afpacket_fanout) plug into the same table.
 *
 * Setup is two-phase, like pcap_create()/pcap_activate():
 *   c = kg_capture_new("pcap_file", path, &err);
 *   kg_capture_set_snaplen(c, 65535);
 *   kg_capture_start(c, &err);
 *   while ((rc = kg_capture_next(c, &pkt)) >= 0) ...
 *
 * Threads: a handle is used by one thread at a time.
 */
#ifndef KG_CAPTURE_H
#define KG_CAPTURE_H

#include <stdint.h>

#include "common/kg_common.h"

/* DLT_* link types we decode (values are libpcap's DLT numbers). */
enum {
    KG_LINK_NULL = 0,       /* BSD loopback */
    KG_LINK_ETHERNET = 1,
    KG_LINK_RAW = 101,      /* raw IPv4/IPv6 (LINKTYPE_RAW) */
    KG_LINK_C_HDLC = 104,   /* Cisco HDLC */
    KG_LINK_LINUX_SLL = 113,
    KG_LINK_LOOP = 108,     /* OpenBSD loopback */
    KG_LINK_IPV4 = 228,
    KG_LINK_IPV6 = 229,
    KG_LINK_LINUX_SLL2 = 276,
};

/* One captured packet. `data` is borrowed: valid until the next
 * kg_capture_next() call on the same handle. */
struct kg_packet {
    uint64_t ts_us;      /* capture time, microseconds since the epoch (UTC) */
    const uint8_t *data; /* first byte of the link-layer header */
    uint32_t caplen;     /* bytes present at data */
    uint32_t wirelen;    /* bytes on the wire */
    uint16_t linktype;   /* KG_LINK_* / DLT_* value */
    uint16_t iface;      /* index of the source among the sensor's inputs */
};

struct kg_capture_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t kernel_drops; /* live sources only */
    uint64_t iface_drops;
};

struct kg_capture;

/* Returns owned handle, or NULL with err filled. kind: "pcap_file". */
struct kg_capture *kg_capture_new(const char *kind, const char *source, struct kg_err *err);
int kg_capture_set_snaplen(struct kg_capture *c, uint32_t snaplen);
int kg_capture_set_iface_index(struct kg_capture *c, uint16_t iface);
/* Opens the source. Returns 0 or a negative KG_ERR_* with err filled. */
int kg_capture_start(struct kg_capture *c, struct kg_err *err);
/*
 * Reads the next packet into *pkt. Returns 1 when a packet was read, 0 when
 * none is available right now (live sources), KG_ERR_EOF at the end of a
 * file, or another negative KG_ERR_* on a read error (err filled).
 */
int kg_capture_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err);
/* Asks a blocking kg_capture_next() to return; safe from a signal handler. */
void kg_capture_break(struct kg_capture *c);
void kg_capture_get_stats(struct kg_capture *c, struct kg_capture_stats *out);
const char *kg_capture_source(const struct kg_capture *c);
/* Frees the handle; NULL is a no-op. */
void kg_capture_free(struct kg_capture *c);

#endif /* KG_CAPTURE_H */
