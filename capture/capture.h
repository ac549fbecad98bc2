/*
 * capture/capture.h — packet sources.
 *
 * A capture handle reads packets from one source through a backend ops
 * table (struct kg_capture_ops in capture_int.h): "pcap_file" reads pcap
 * and pcapng files (the format is detected from the magic number by
 * libpcap, never from the file name); "pcap_live" captures from a network
 * interface (libpcap on AF_PACKET), optionally in an AF_PACKET fanout group.
 *
 * Setup is two-phase, like pcap_create()/pcap_activate():
 *   c = kg_capture_new("pcap_live", "eth1", &err);
 *   kg_capture_set_filter(c, "not port 22");
 *   kg_capture_set_fanout(c, group);
 *   kg_capture_start(c, &err);
 *   while ((rc = kg_capture_next(c, &pkt, &err)) >= 0) ...
 * Options are set between _new() and _start(); a setter called later
 * (except kg_capture_set_fanout), or a live-only setter on a file source,
 * returns KG_ERR_INVAL.
 *
 * Threads: a handle is used by one thread at a time, except
 * kg_capture_break(), which any thread or a signal handler may call while
 * the handle exists. docs/CAPTURE.md describes the sources and options.
 */
#ifndef KG_CAPTURE_H
#define KG_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/kg_common.h"

/* DLT_* link types we decode (values are libpcap's DLT numbers). */
enum {
    KG_LINK_NULL = 0, /* BSD loopback */
    KG_LINK_ETHERNET = 1,
    KG_LINK_RAW = 101,    /* raw IPv4/IPv6 (LINKTYPE_RAW) */
    KG_LINK_C_HDLC = 104, /* Cisco HDLC */
    KG_LINK_LINUX_SLL = 113,
    KG_LINK_LOOP = 108, /* OpenBSD loopback */
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
    uint64_t packets;      /* returned by kg_capture_next() */
    uint64_t bytes;        /* their wire lengths */
    uint64_t kernel_recv;  /* live: passed the kernel filter, drops included (ps_recv) */
    uint64_t kernel_drops; /* live: dropped because the ring was full (ps_drop) */
    uint64_t iface_drops;  /* live: lost by the NIC (ps_ifdrop, promiscuous mode only); a
                            * per-interface count: every handle of a fanout group reports it */
};

struct kg_capture;

#define KG_CAPTURE_DEFAULT_BUFFER (32u << 20)
#define KG_CAPTURE_DEFAULT_TIMEOUT_MS 100
#define KG_CAPTURE_MAX_SNAPLEN 262144u

/* Returns owned handle, or NULL with err filled. kind: "pcap_file" (source
 * is a file path) or "pcap_live" (source is an interface name). */
struct kg_capture *kg_capture_new(const char *kind, const char *source, struct kg_err *err);
/* Bytes kept of each packet, 64..262144 (default 262144). */
int kg_capture_set_snaplen(struct kg_capture *c, uint32_t snaplen);
int kg_capture_set_iface_index(struct kg_capture *c, uint16_t iface);
/* Live sources only (KG_ERR_INVAL otherwise); call before kg_capture_start(). */
int kg_capture_set_promisc(struct kg_capture *c, bool on); /* default on */
/* Kernel ring size, at least 1 MiB (default KG_CAPTURE_DEFAULT_BUFFER). */
int kg_capture_set_buffer_size(struct kg_capture *c, uint32_t bytes);
/* BPF filter (pcap-filter(7) syntax), compiled at start. Borrows bpf (it is
 * copied); "" or NULL = none. */
int kg_capture_set_filter(struct kg_capture *c, const char *bpf);
/* next() returns 0 after ms (1..60000, default 100) without a packet. */
int kg_capture_set_timeout_ms(struct kg_capture *c, int ms);
/* Joins the handle to AF_PACKET fanout group `group` (PACKET_FANOUT_HASH
 * with PACKET_FANOUT_FLAG_DEFRAG), so that several handles on one
 * interface share its packets by flow, both directions to the same handle.
 * A group id is shared by every process of the network namespace and is
 * bound to one interface: use a distinct id per interface. Before start,
 * start() joins (after the filter is set) and reports a failure in its
 * err; on a started handle the join is immediate and a failure's reason
 * (strerror) is logged. Returns 0, KG_ERR_INVAL or KG_ERR_IO. */
int kg_capture_set_fanout(struct kg_capture *c, uint16_t group);
/* True for a live source (an interface), false for a file. */
bool kg_capture_is_live(const struct kg_capture *c);
/* Opens the source. Returns 0 or a negative KG_ERR_* with err filled (the
 * message names the source). Called once. */
int kg_capture_start(struct kg_capture *c, struct kg_err *err);
/*
 * Reads the next packet into *pkt. Returns 1 when a packet was read, 0 when
 * none arrived within the timeout (live sources), KG_ERR_EOF at the end of
 * a file or after kg_capture_break(), or another negative KG_ERR_* on a read
 * error (err filled; for a file, a truncated or damaged record).
 */
int kg_capture_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err);
/* Asks a blocking kg_capture_next() to return; every later next() returns
 * KG_ERR_EOF. Safe from another thread and from a signal handler, as long
 * as the handle is not being freed. */
void kg_capture_break(struct kg_capture *c);
/* Counters so far. Call from the thread that reads the handle, or once it
 * has stopped reading (pcap_stats is not safe against a concurrent read). */
void kg_capture_get_stats(struct kg_capture *c, struct kg_capture_stats *out);
const char *kg_capture_source(const struct kg_capture *c);
/* Frees the handle; NULL is a no-op. */
void kg_capture_free(struct kg_capture *c);

#endif /* KG_CAPTURE_H */
