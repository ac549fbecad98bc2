/*
 * capture/capture_pcap_live.c — live capture from a network interface with
 * libpcap on Linux AF_PACKET (the "pcap_live" backend).
 *
 * libpcap maps a TPACKET_V3 ring when immediate mode is off: the kernel
 * fills blocks of 256 KiB and hands a block over when it is full or when
 * its retire timer (`timeout_ms`) expires, so a quiet link delivers
 * packets at most `timeout_ms` late and a busy one costs one poll() per
 * block, not per packet. pcap_next_ex() walks the mapped block: no copy,
 * no allocation.
 *
 * The handle is put in non-blocking mode and we poll() its socket
 * ourselves, together with an eventfd: with TPACKET_V3, libpcap 1.10's own
 * wait is poll() with no timeout (the kernel never retires an empty block,
 * so a blocking read on a silent link would never return), and the caller
 * needs next() to return 0 after `timeout_ms` to expire flows and check
 * for shutdown. kg_capture_break() writes to the eventfd.
 *
 * Several handles on one interface can join an AF_PACKET fanout group
 * (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG): the kernel spreads the
 * interface's packets over the group by its symmetric flow hash, so both
 * directions of a flow reach the same handle and thus the same worker
 * (Suricata's "workers" runmode); DEFRAG reassembles IPv4 fragments before
 * hashing, so a datagram's fragments cannot split across handles.
 *
 * Threads: the reading thread drives the handle; pl_break() may come from
 * any thread or a signal handler (one write(2) to the eventfd).
 * Ownership: priv owns the pcap_t and the eventfd; packet data points into
 * the kernel ring and is valid until the next kg_capture_next().
 */
#include "capture/capture_int.h"

#include <errno.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_FANOUT_FLAG_DEFRAG
#define PACKET_FANOUT_FLAG_DEFRAG 0x8000
#endif

/* pcap_stats() counters are 32-bit and wrap (after 7 minutes at 10 Mpps):
 * they are polled at least every KG_STATS_POLL_PACKETS packets and on every
 * read timeout, and the deltas accumulated in 64 bits. */
#define KG_STATS_POLL_PACKETS 65536u

struct pcap_live_priv {
    pcap_t *p;
    int fd;      /* the packet socket, for poll() */
    int wake_fd; /* eventfd written by kg_capture_break() */
    int linktype;
    uint32_t since_poll;         /* packets since the last pcap_stats() */
    struct pcap_stat prev;       /* last raw values */
    uint64_t recv, drop, ifdrop; /* accumulated */
};

static const char *errno_str(int e, char *buf, size_t len)
{
    /* GNU strerror_r: returns a string that may or may not be buf. */
    return strerror_r(e, buf, len);
}

static void poll_stats(struct pcap_live_priv *pv)
{
    struct pcap_stat ps;
    pv->since_poll = 0;
    if (pcap_stats(pv->p, &ps) != 0) return; /* keep the last good values */
    pv->recv += (u_int)(ps.ps_recv - pv->prev.ps_recv);
    pv->drop += (u_int)(ps.ps_drop - pv->prev.ps_drop);
    pv->ifdrop += (u_int)(ps.ps_ifdrop - pv->prev.ps_ifdrop);
    pv->prev = ps;
}

/* Why pcap_activate() failed, in words an operator can act on. */
static int activate_error(struct kg_capture *c, pcap_t *p, int rc, struct kg_err *err)
{
    const char *detail = pcap_geterr(p);
    const char *hint = "";
    switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
        hint = " (no such interface; see `ip link`)";
        break;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
        hint = " (needs root, or CAP_NET_RAW and CAP_NET_ADMIN)";
        break;
    case PCAP_ERROR_IFACE_NOT_UP:
        hint = " (bring it up: ip link set dev IFACE up)";
        break;
    default:
        break;
    }
    /* pcap_geterr() holds a message only for some codes; otherwise the
     * status string says it all. */
    if (!detail || !detail[0])
        return kg_err_set(err, KG_ERR_IO, "%s: cannot capture: %s%s", c->source, pcap_statustostr(rc), hint);
    return kg_err_set(err, KG_ERR_IO, "%s: cannot capture: %s: %s%s", c->source, pcap_statustostr(rc), detail,
                      hint);
}

static int set_filter(struct kg_capture *c, pcap_t *p, struct kg_err *err)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    bpf_u_int32 net = 0, mask = 0;
    /* The netmask only matters to "ip broadcast"; an interface without an
     * IPv4 address (a typical SPAN port) has none. */
    if (pcap_lookupnet(c->source, &net, &mask, errbuf) != 0) mask = PCAP_NETMASK_UNKNOWN;
    struct bpf_program prog;
    if (pcap_compile(p, &prog, c->filter, 1, mask) != 0)
        return kg_err_set(err, KG_ERR_INVAL, "%s: bad capture filter \"%s\": %s", c->source, c->filter,
                          pcap_geterr(p));
    int rc = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
    if (rc != 0)
        return kg_err_set(err, KG_ERR_IO, "%s: cannot set capture filter \"%s\": %s", c->source, c->filter,
                          pcap_geterr(p));
    return 0;
}

int kg_capture_pcap_live_join_fanout(struct kg_capture *c, struct kg_err *err)
{
    struct pcap_live_priv *pv = c->priv;
    if (!pv) return kg_err_set(err, KG_ERR_INVAL, "%s: capture not started", c->source);
    uint32_t arg =
        (uint32_t)c->fanout_group | ((uint32_t)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    if (setsockopt(pcap_fileno(pv->p), SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0) {
        int e = errno;
        char eb[128];
        /* EINVAL: the id is in use on another interface or with another
         * mode (ids are shared by every process of the network namespace). */
        return kg_err_set(err, KG_ERR_IO, "%s: cannot join AF_PACKET fanout group %u: %s%s", c->source,
                          c->fanout_group, errno_str(e, eb, sizeof(eb)),
                          e == EINVAL ? " (group id used on another interface or with another mode?)" : "");
    }
    return 0;
}

static bool known_linktype(int lt)
{
    switch (lt) {
    case KG_LINK_NULL:
    case KG_LINK_ETHERNET:
    case KG_LINK_RAW:
    case KG_LINK_C_HDLC:
    case KG_LINK_LINUX_SLL:
    case KG_LINK_LOOP:
    case KG_LINK_IPV4:
    case KG_LINK_IPV6:
    case KG_LINK_LINUX_SLL2:
        return true;
    default:
        return false;
    }
}

static int pl_start(struct kg_capture *c, struct kg_err *err)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    errbuf[0] = '\0';
    pcap_t *p = pcap_create(c->source, errbuf);
    if (!p) return kg_err_set(err, KG_ERR_IO, "%s: cannot capture: %s", c->source, errbuf);

    /* These only fail on an already activated handle. */
    pcap_set_snaplen(p, (int)c->snaplen);
    pcap_set_promisc(p, c->promisc ? 1 : 0);
    pcap_set_buffer_size(p, (int)KG_MIN(c->buffer_size, (uint32_t)INT32_MAX));
    pcap_set_timeout(p, c->timeout_ms);
    pcap_set_immediate_mode(p, 0); /* immediate mode would fall back to TPACKET_V2 */
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_MICRO);

    int rc = pcap_activate(p);
    if (rc < 0) {
        activate_error(c, p, rc, err);
        pcap_close(p);
        return KG_ERR_IO;
    }
    if (rc > 0) {
        /* PCAP_WARNING_PROMISC_NOTSUP and friends: capture works, say why
         * it may see less than expected. */
        const char *detail = pcap_geterr(p);
        kg_log(KG_LOG_WARN, "capture", "%s: %s%s%s", c->source, pcap_statustostr(rc),
               detail && detail[0] ? ": " : "", detail ? detail : "");
    }

    if (c->filter && (rc = set_filter(c, p, err)) < 0) {
        pcap_close(p);
        return rc;
    }

    if (pcap_setnonblock(p, 1, errbuf) != 0) {
        kg_err_set(err, KG_ERR_IO, "%s: cannot capture: non-blocking mode: %s", c->source, errbuf);
        pcap_close(p);
        return KG_ERR_IO;
    }
    int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
        char eb[128];
        kg_err_set(err, KG_ERR_IO, "%s: cannot capture: eventfd: %s", c->source,
                   errno_str(errno, eb, sizeof(eb)));
        pcap_close(p);
        return KG_ERR_IO;
    }

    struct pcap_live_priv *pv = kg_xcalloc(1, sizeof(*pv));
    pv->p = p;
    pv->fd = pcap_get_selectable_fd(p);
    pv->wake_fd = wake_fd;
    pv->linktype = pcap_datalink(p);
    c->priv = pv;

    /* Joined after the filter is set: libpcap flushes what the socket had
     * queued before the filter, and the group then only sees filtered
     * traffic. Until the join, this socket receives every packet of the
     * interface, so a sibling that joined earlier may see a few duplicates. */
    if (c->fanout && (rc = kg_capture_pcap_live_join_fanout(c, err)) < 0) {
        pcap_close(p);
        close(wake_fd);
        free(pv);
        c->priv = NULL;
        return rc;
    }
    poll_stats(pv);

    const char *ltname = pcap_datalink_val_to_name(pv->linktype);
    if (!known_linktype(pv->linktype))
        kg_log(KG_LOG_WARN, "capture",
               "%s: link type %s (%d) is not decoded: packets will be counted as unknown", c->source,
               ltname ? ltname : "?", pv->linktype);
    kg_log(KG_LOG_DEBUG, "capture",
           "%s: capturing, link type %s, snaplen %u, buffer %u KiB, timeout %d ms%s%s%s", c->source,
           ltname ? ltname : "?", c->snaplen, c->buffer_size >> 10, c->timeout_ms,
           c->promisc ? ", promiscuous" : "", c->fanout ? ", fanout" : "", c->filter ? ", filtered" : "");
    return 0;
}

static int pl_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err)
{
    struct pcap_live_priv *pv = c->priv;
    bool waited = false, sock_err = false;
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int rc = pcap_next_ex(pv->p, &h, &data);
        if (KG_LIKELY(rc == 1)) {
            pkt->ts_us = (uint64_t)h->ts.tv_sec * 1000000ull + (uint64_t)h->ts.tv_usec;
            pkt->data = data;
            pkt->caplen = h->caplen;
            pkt->wirelen = h->len;
            pkt->linktype = (uint16_t)pv->linktype;
            if (KG_UNLIKELY(++pv->since_poll >= KG_STATS_POLL_PACKETS)) poll_stats(pv);
            return 1;
        }
        if (rc == PCAP_ERROR_BREAK) return KG_ERR_EOF;
        if (rc < 0) /* the interface went down or disappeared, or the socket failed */
            return kg_err_set(err, KG_ERR_IO, "%s: capture error: %s", c->source, pcap_geterr(pv->p));
        /* No block ready. */
        if (sock_err) {
            /* poll() flagged the socket but libpcap found nothing to
             * report: say so rather than spin on a socket in error. */
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            getsockopt(pv->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            char eb[128];
            return kg_err_set(err, KG_ERR_IO, "%s: capture error: %s", c->source,
                              soerr ? errno_str(soerr, eb, sizeof(eb)) : "socket error");
        }
        if (waited) {
            poll_stats(pv);
            return 0;
        }
        struct pollfd pfd[2] = {{.fd = pv->fd, .events = POLLIN}, {.fd = pv->wake_fd, .events = POLLIN}};
        int n = poll(pfd, 2, c->timeout_ms);
        if (atomic_load_explicit(&c->stop, memory_order_relaxed) || (n > 0 && pfd[1].revents))
            return KG_ERR_EOF;
        if (n == 0 || (n < 0 && errno == EINTR)) {
            /* Timeout, or a signal the caller may want to look at. */
            poll_stats(pv);
            return 0;
        }
        if (n < 0) {
            char eb[128];
            return kg_err_set(err, KG_ERR_IO, "%s: capture error: poll: %s", c->source,
                              errno_str(errno, eb, sizeof(eb)));
        }
        waited = true;
        sock_err = (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
    }
}

static void pl_break(struct kg_capture *c)
{
    struct pcap_live_priv *pv = c->priv;
    if (!pv) return;
    uint64_t one = 1;
    /* async-signal-safe; a full counter (EAGAIN) already means "wake". */
    ssize_t w = write(pv->wake_fd, &one, sizeof(one));
    (void)w;
}

static void pl_stats(struct kg_capture *c, struct kg_capture_stats *out)
{
    struct pcap_live_priv *pv = c->priv;
    if (!pv) return;
    poll_stats(pv);
    out->kernel_recv = pv->recv;
    out->kernel_drops = pv->drop;
    out->iface_drops = pv->ifdrop;
}

static void pl_close(struct kg_capture *c)
{
    struct pcap_live_priv *pv = c->priv;
    if (!pv) return;
    pcap_close(pv->p);
    close(pv->wake_fd);
    free(pv);
    c->priv = NULL;
}

const struct kg_capture_ops kg_capture_pcap_live_ops = {
    .kind = "pcap_live",
    .live = true,
    .start = pl_start,
    .next = pl_next,
    .brk = pl_break,
    .stats = pl_stats,
    .close = pl_close,
};
