/*
 * capture/capture_pcap_file.c — reads pcap and pcapng files with libpcap
 * (the "pcap_file" backend). libpcap detects the format from the magic
 * number, never from the file name.
 *
 * Link types: libpcap 1.10 gives a handle one link type, that of the first
 * interface of a pcapng file, and does not tell which interface a packet
 * came from. A pcapng file with several interfaces of that same link type
 * reads normally (every packet reports the handle's link type and the
 * handle's iface index); the first Interface Description Block with another
 * link type makes libpcap fail the read ("an interface has a type ...
 * different from the type of the first interface"), reported here as a
 * read error after the packets before it. docs/CAPTURE.md has the details.
 *
 * Threads: one reading thread. Ownership: priv owns the pcap_t; packet
 * data is libpcap's buffer, valid until the next read.
 */
#include "capture/capture_int.h"

#include <pcap/pcap.h>
#include <stdlib.h>

struct pcap_file_priv {
    pcap_t *p;
    int linktype;
};

static int pf_start(struct kg_capture *c, struct kg_err *err)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct pcap_file_priv *pv = kg_xcalloc(1, sizeof(*pv));
    pv->p = pcap_open_offline_with_tstamp_precision(c->source, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (!pv->p) {
        free(pv);
        return kg_err_set(err, KG_ERR_IO, "%s: cannot open capture: %s", c->source, errbuf);
    }
    pv->linktype = pcap_datalink(pv->p);
    c->priv = pv;
    return 0;
}

static int pf_next(struct kg_capture *c, struct kg_packet *pkt, struct kg_err *err)
{
    struct pcap_file_priv *pv = c->priv;
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(pv->p, &h, &data);
    if (rc == 1) {
        pkt->ts_us = (uint64_t)h->ts.tv_sec * 1000000ull + (uint64_t)h->ts.tv_usec;
        pkt->data = data;
        pkt->caplen = h->caplen;
        pkt->wirelen = h->len;
        pkt->linktype = (uint16_t)pv->linktype;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK) return KG_ERR_EOF;
    if (rc == 0) return 0;
    /* A truncated last record is reported by libpcap as an error: report it and stop. */
    return kg_err_set(err, KG_ERR_IO, "%s: read error: %s", c->source, pcap_geterr(pv->p));
}

static void pf_close(struct kg_capture *c)
{
    struct pcap_file_priv *pv = c->priv;
    if (!pv) return;
    pcap_close(pv->p);
    free(pv);
    c->priv = NULL;
}

const struct kg_capture_ops kg_capture_pcap_file_ops = {
    .kind = "pcap_file",
    .live = false,
    .start = pf_start,
    .next = pf_next,
    .brk = NULL,
    .stats = NULL,
    .close = pf_close,
};
