/*
 * dissect/decode.c — from link-layer bytes to the innermost IP header and
 * transport header of a packet.
 *
 * Runs on worker threads for every packet (and, for the flow hash, on the
 * capture thread), so it allocates nothing and copies nothing: the result
 * points into the packet. Every read is bounds-checked against the bytes
 * captured; a header that claims more than is there is "truncated".
 * Encapsulations are followed iteratively up to a configured depth
 * (kg_decode_set_max_depth, default KG_DECODE_MAX_DEPTH); a packet nested
 * deeper is decoded as the flow of its last followed layer and flagged
 * (too_deep), so the dissector counts it.
 */
#include "dissect/dissect_int.h"

#include <stdatomic.h>

#include <string.h>

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88A8
#define ETH_QINQ_OLD 0x9100
#define ETH_MPLS_UC 0x8847
#define ETH_MPLS_MC 0x8848
#define ETH_PPPOE_SESS 0x8864
#define ETH_TEB 0x6558    /* GRE transparent Ethernet bridging */
#define ETH_ERSPAN2 0x88BE /* ERSPAN type II (type I has no header: see below) */
#define ETH_ERSPAN3 0x22EB

#define IPPROTO_IPIP_ 4
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_IPV6_ 41
#define IPPROTO_GRE_ 47
#define IPPROTO_ICMP_ 1
#define IPPROTO_ICMPV6_ 58

#define VXLAN_PORT 4789
#define GTPU_PORT 2152
#define TEREDO_PORT 3544
#define CAPWAP_DATA_PORT 5247

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the loop decodes next. */
enum layer { L_ETHER, L_ETHERTYPE, L_IPV4, L_IPV6, L_MPLS, L_DONE };

/* Decodes the transport header of an unfragmented (or first-fragment)
 * datagram. Returns KG_DECODE_OK even when the L4 header is cut short
 * (has_l4 stays false): the flow is still known by its addresses. */
static void decode_l4(struct kg_decoded *d, const uint8_t *p, uint32_t len)
{
    switch (d->proto) {
    case IPPROTO_TCP_: {
        if (len < 20) return;
        uint32_t off = (uint32_t)(p[12] >> 4) * 4;
        if (off < 20 || off > len) return;
        d->sport = rd16(p);
        d->dport = rd16(p + 2);
        d->tcp_seq = rd32(p + 4);
        d->tcp_flags = p[13];
        d->payload = p + off;
        d->payload_len = len - off;
        d->has_l4 = true;
        return;
    }
    case IPPROTO_UDP_: {
        if (len < 8) return;
        uint32_t ulen = rd16(p + 4);
        d->sport = rd16(p);
        d->dport = rd16(p + 2);
        d->payload = p + 8;
        /* Trust the UDP length only when it is consistent with the IP length. */
        d->payload_len = (ulen >= 8 && ulen <= len) ? ulen - 8 : len - 8;
        d->has_l4 = true;
        return;
    }
    case IPPROTO_ICMP_:
    case IPPROTO_ICMPV6_:
        if (len < 4) return;
        d->icmp_type = p[0];
        d->icmp_code = p[1];
        d->payload = p + 4;
        d->payload_len = len - 4;
        d->has_l4 = true;
        return;
    default:
        d->payload = p;
        d->payload_len = len;
        d->has_l4 = true;
        return;
    }
}

/* GRE (RFC 2784/2890) header length and protocol; 0 when malformed. */
static uint32_t gre_header(const uint8_t *p, uint32_t len, uint16_t *proto)
{
    if (len < 4) return 0;
    uint16_t flags = rd16(p);
    uint32_t hl = 4;
    if ((flags & 0x0007) > 1) return 0; /* version 0 (GRE) or 1 (PPTP enhanced GRE) */
    if (flags & 0x8000) hl += 4;        /* checksum + reserved */
    if (flags & 0x2000) hl += 4;        /* key */
    if (flags & 0x1000) hl += 4;        /* sequence number */
    if (flags & 0x0080 && (flags & 0x0007) == 1) hl += 4; /* enhanced GRE ack */
    if (flags & 0x4000) return 0;       /* source routing: obsolete, not followed */
    if (hl > len) return 0;
    *proto = rd16(p + 2);
    return hl;
}

/* GTP-U (3GPP TS 29.281 section 5): G-PDU header length, 0 when this is
 * not a G-PDU carrying IP. */
static uint32_t gtpu_header(const uint8_t *p, uint32_t len)
{
    if (len < 8 || (p[0] >> 5) != 1 || !(p[0] & 0x10) || p[1] != 0xff) return 0;
    uint32_t hl = 8;
    if (p[0] & 0x07) { /* E, S or PN: 4 more bytes, the last one the next extension type */
        if (len < 12) return 0;
        uint8_t next = p[11];
        hl = 12;
        while (next) { /* extension headers: length in 4-octet units, last byte = next type */
            if (hl >= len) return 0;
            uint32_t el = (uint32_t)p[hl] * 4;
            if (el == 0 || hl + el > len) return 0;
            next = p[hl + el - 1];
            hl += el;
        }
    }
    if (hl >= len) return 0;
    uint8_t v = p[hl] >> 4;
    return v == 4 || v == 6 ? hl : 0;
}

/* Teredo (RFC 4380 section 5.1.1): optional authentication and origin
 * indication headers, then an IPv6 packet. Sets *hl to the offset of the
 * IPv6 header; false when the payload is not Teredo-encapsulated IPv6. */
static bool teredo_header(const uint8_t *p, uint32_t len, uint32_t *hl)
{
    uint32_t off = 0;
    if (len >= 4 && p[0] == 0 && p[1] == 1) { /* authentication */
        off = 4 + (uint32_t)p[2] + p[3] + 8 + 1;
        if (off > len) return false;
    }
    if (len >= off + 8 && p[off] == 0 && p[off + 1] == 0) off += 8; /* origin indication */
    if (len < off + 40 || (p[off] >> 4) != 6) return false;
    uint32_t plen = rd16(p + off + 4);
    if (off + 40 + plen > len) return false;
    *hl = off;
    return true;
}

/* CAPWAP data channel (RFC 5415 section 4.3): HLEN in 4-byte words; T=0
 * carries 802.3 frames, T=1 with WBID 1 carries IEEE 802.11 frames. */
static uint32_t capwap_header(const uint8_t *p, uint32_t len, enum layer *inner)
{
    if (len < 8 || (p[0] >> 4) != 0 || (p[0] & 0x0f) != 0) return 0; /* version 0, type 0 */
    uint32_t hl = (uint32_t)((p[1] >> 3) & 0x1f) * 4;
    /* Byte 1: HLEN(5) RID(3 high bits); byte 2: RID(2 low) WBID(5) T(1). */
    bool t = (p[2] & 0x01) != 0;
    uint8_t wbid = (uint8_t)((p[2] >> 1) & 0x1f);
    if (hl < 8 || hl >= len) return 0;
    if (p[3] & 0x80) return 0; /* fragment: not reassembled */
    if (!t) {
        *inner = L_ETHER;
        return hl;
    }
    if (wbid != 1) return 0;
    /* 802.11 data frame: FC(2) dur(2) a1 a2 a3 (18) seq(2) [a4 (6)] [QoS (2)], then LLC/SNAP. */
    const uint8_t *w = p + hl;
    uint32_t wl = len - hl;
    if (wl < 24) return 0;
    uint8_t fc0 = w[0], fc1 = w[1];
    if (((fc0 >> 2) & 0x3) != 2) return 0; /* not a data frame */
    uint32_t off = 24;
    if ((fc1 & 0x03) == 0x03) off += 6;
    if (fc0 & 0x80) off += 2; /* QoS data subtypes */
    if (wl < off + 8) return 0;
    const uint8_t *llc = w + off;
    if (llc[0] != 0xaa || llc[1] != 0xaa || llc[2] != 0x03) return 0;
    uint16_t et = rd16(llc + 6);
    if (et == ETH_IPV4) *inner = L_IPV4;
    else if (et == ETH_IPV6) *inner = L_IPV6;
    else return 0;
    return hl + off + 8;
}

/* Set once at start-up (control plane), read by every decoding thread. */
static _Atomic unsigned g_max_depth = KG_DECODE_MAX_DEPTH;

void kg_decode_set_max_depth(unsigned depth)
{
    atomic_store(&g_max_depth, depth < 1 ? 1 : depth > KG_DECODE_MAX_DEPTH_LIMIT ? KG_DECODE_MAX_DEPTH_LIMIT : depth);
}

enum kg_decode_result kg_decode(const struct kg_packet *pkt, struct kg_decoded *d)
{
    const unsigned max_depth = atomic_load_explicit(&g_max_depth, memory_order_relaxed);
    memset(d, 0, sizeof(*d));
    const uint8_t *p = pkt->data;
    uint32_t len = pkt->caplen;
    enum layer next;
    uint16_t etype = 0;
    unsigned depth = 0;

    switch (pkt->linktype) {
    case KG_LINK_ETHERNET:
        next = L_ETHER;
        break;
    case KG_LINK_NULL:
    case KG_LINK_LOOP: {
        if (len < 4) return KG_DECODE_TRUNCATED;
        /* The AF_ value is in the writer's byte order (NULL) or network order
         * (LOOP); accept both. 2 = AF_INET; 24, 28, 30 = AF_INET6 on BSDs/macOS. */
        uint32_t af = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
        if (af > 0xffff) af = rd32(p);
        p += 4, len -= 4;
        if (af == 2) next = L_IPV4;
        else if (af == 24 || af == 28 || af == 30 || af == 10) next = L_IPV6;
        else return KG_DECODE_NOT_IP;
        break;
    }
    case KG_LINK_RAW:
    case 12: /* DLT_RAW as libpcap reports it on Linux/BSD for LINKTYPE_RAW files */
    case 14: /* DLT_RAW on OpenBSD */
    case KG_LINK_IPV4:
    case KG_LINK_IPV6:
        if (len < 1) return KG_DECODE_TRUNCATED;
        next = (p[0] >> 4) == 6 ? L_IPV6 : L_IPV4;
        break;
    case KG_LINK_LINUX_SLL:
        if (len < 16) return KG_DECODE_TRUNCATED;
        etype = rd16(p + 14);
        p += 16, len -= 16;
        next = L_ETHERTYPE;
        break;
    case KG_LINK_LINUX_SLL2:
        if (len < 20) return KG_DECODE_TRUNCATED;
        etype = rd16(p);
        p += 20, len -= 20;
        next = L_ETHERTYPE;
        break;
    case KG_LINK_C_HDLC:
        if (len < 4) return KG_DECODE_TRUNCATED;
        etype = rd16(p + 2);
        p += 4, len -= 4;
        next = L_ETHERTYPE;
        break;
    default:
        return KG_DECODE_BAD_LINKTYPE;
    }

    for (;;) {
        if (++depth > 4 * KG_DECODE_MAX_DEPTH_LIMIT) return KG_DECODE_TOO_DEEP;
        switch (next) {
        case L_ETHER:
            if (len < 14) return KG_DECODE_TRUNCATED;
            etype = rd16(p + 12);
            p += 14, len -= 14;
            next = L_ETHERTYPE;
            break;

        case L_ETHERTYPE:
            switch (etype) {
            case ETH_IPV4: next = L_IPV4; break;
            case ETH_IPV6: next = L_IPV6; break;
            case ETH_VLAN:
            case ETH_QINQ:
            case ETH_QINQ_OLD:
                if (len < 4) return KG_DECODE_TRUNCATED;
                if (d->nvlan < KG_MAX_VLAN) d->vlan[d->nvlan++] = rd16(p) & 0x0fff;
                etype = rd16(p + 2);
                p += 4, len -= 4;
                break;
            case ETH_MPLS_UC:
            case ETH_MPLS_MC: next = L_MPLS; break;
            case ETH_PPPOE_SESS: {
                /* RFC 2516: 6-byte PPPoE header, then the 2-byte PPP protocol. */
                if (len < 8) return KG_DECODE_TRUNCATED;
                uint16_t ppp = rd16(p + 6);
                p += 8, len -= 8;
                if (ppp == 0x0021) next = L_IPV4;
                else if (ppp == 0x0057) next = L_IPV6;
                else return KG_DECODE_NOT_IP;
                break;
            }
            default:
                return KG_DECODE_NOT_IP;
            }
            break;

        case L_MPLS: {
            /* RFC 3032 label stack: pop to bottom-of-stack, then guess the payload
             * from the IP version nibble (MPLS carries no payload type). */
            for (;;) {
                if (len < 4) return KG_DECODE_TRUNCATED;
                uint32_t lse = rd32(p);
                p += 4, len -= 4;
                if (lse & 0x100) break;
            }
            if (len < 1) return KG_DECODE_TRUNCATED;
            if ((p[0] >> 4) == 4) next = L_IPV4;
            else if ((p[0] >> 4) == 6) next = L_IPV6;
            else return KG_DECODE_NOT_IP;
            break;
        }

        case L_IPV4: {
            if (len < 20) return KG_DECODE_TRUNCATED;
            if ((p[0] >> 4) != 4) return KG_DECODE_BAD_L3;
            uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
            uint32_t tot = rd16(p + 2);
            if (ihl < 20 || tot < ihl) return KG_DECODE_BAD_L3;
            /* tot > len: snaplen cut the packet; decode what is there. tot < len:
             * link-layer padding, dropped. */
            if (tot < len) len = tot;
            if (ihl > len) return KG_DECODE_TRUNCATED;
            uint16_t frag = rd16(p + 6);
            d->l3 = p;
            d->l3_len = len;
            d->family = 4;
            d->proto = p[9];
            d->src = p + 12;
            d->dst = p + 16;
            d->is_fragment = (frag & 0x2000) || (frag & 0x1fff);
            d->has_l4 = false;
            d->sport = d->dport = 0;
            if (frag & 0x1fff) return KG_DECODE_OK; /* non-first fragment: no L4 header */
            const uint8_t *l4 = p + ihl;
            uint32_t l4len = len - ihl;
            if (!d->is_fragment && d->tunnels >= max_depth &&
                (d->proto == IPPROTO_IPIP_ || d->proto == IPPROTO_IPV6_ || d->proto == IPPROTO_GRE_))
                d->too_deep = true;
            if (!d->is_fragment && d->tunnels < max_depth) {
                if (d->proto == IPPROTO_IPIP_ || d->proto == IPPROTO_IPV6_) {
                    d->tunnels++;
                    p = l4, len = l4len;
                    next = d->proto == IPPROTO_IPIP_ ? L_IPV4 : L_IPV6;
                    break;
                }
                if (d->proto == IPPROTO_GRE_ || d->proto == IPPROTO_UDP_) goto l4_tunnel;
            }
            decode_l4(d, l4, l4len);
            return KG_DECODE_OK;
        l4_tunnel:
            p = l4, len = l4len;
            goto tunnel;
        }

        case L_IPV6: {
            if (len < 40) return KG_DECODE_TRUNCATED;
            if ((p[0] >> 4) != 6) return KG_DECODE_BAD_L3;
            uint32_t plen = rd16(p + 4);
            /* Jumbograms (plen 0) are not expected on a SPAN port: use what is there. */
            if (plen && 40 + plen < len) len = 40 + plen;
            d->l3 = p;
            d->l3_len = len;
            d->family = 6;
            d->src = p + 8;
            d->dst = p + 24;
            d->is_fragment = false;
            d->has_l4 = false;
            d->sport = d->dport = 0;
            uint8_t nh = p[6];
            uint32_t off = 40;
            /* RFC 8200 section 4: walk extension headers. */
            for (int i = 0; i < 16; i++) {
                if (nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140) {
                    if (off + 8 > len) return KG_DECODE_TRUNCATED;
                    uint32_t el = ((uint32_t)p[off + 1] + 1) * 8;
                    nh = p[off];
                    off += el;
                    if (off > len) return KG_DECODE_TRUNCATED;
                } else if (nh == 51) { /* AH: length in 4-octet units minus 2 */
                    if (off + 8 > len) return KG_DECODE_TRUNCATED;
                    uint32_t el = ((uint32_t)p[off + 1] + 2) * 4;
                    nh = p[off];
                    off += el;
                    if (off > len) return KG_DECODE_TRUNCATED;
                } else if (nh == 44) { /* fragment header */
                    if (off + 8 > len) return KG_DECODE_TRUNCATED;
                    uint16_t fo = rd16(p + off + 2);
                    nh = p[off];
                    off += 8;
                    d->is_fragment = true;
                    if (fo & 0xfff8) { /* non-first fragment */
                        d->proto = nh;
                        return KG_DECODE_OK;
                    }
                    if (!(fo & 1)) d->is_fragment = false; /* atomic fragment (RFC 6946) */
                } else {
                    break;
                }
            }
            d->proto = nh;
            const uint8_t *l4 = p + off;
            uint32_t l4len = len - off;
            if (!d->is_fragment && d->tunnels >= max_depth &&
                (nh == IPPROTO_IPIP_ || nh == IPPROTO_IPV6_ || nh == IPPROTO_GRE_))
                d->too_deep = true;
            if (!d->is_fragment && d->tunnels < max_depth) {
                if (nh == IPPROTO_IPIP_ || nh == IPPROTO_IPV6_) {
                    d->tunnels++;
                    p = l4, len = l4len;
                    next = nh == IPPROTO_IPIP_ ? L_IPV4 : L_IPV6;
                    break;
                }
                if (nh == IPPROTO_GRE_ || nh == IPPROTO_UDP_) {
                    p = l4, len = l4len;
                    goto tunnel;
                }
            }
            decode_l4(d, l4, l4len);
            return KG_DECODE_OK;
        }

        case L_DONE:
            return KG_DECODE_OK;
        }
        continue;

    tunnel:
        /* p/len: a GRE or UDP header of an unfragmented datagram. Either it is
         * a tunnel we follow (and the loop continues) or it is the flow. */
        if (d->proto == IPPROTO_GRE_) {
            uint16_t gproto = 0;
            uint32_t hl = gre_header(p, len, &gproto);
            if (hl == 0) {
                decode_l4(d, p, len);
                return KG_DECODE_OK;
            }
            const uint8_t *in = p + hl;
            uint32_t inlen = len - hl;
            switch (gproto) {
            case ETH_IPV4: next = L_IPV4; break;
            case ETH_IPV6: next = L_IPV6; break;
            case ETH_TEB: next = L_ETHER; break;
            case ETH_MPLS_UC: next = L_MPLS; break;
            case ETH_ERSPAN2:
                /* Type I (no sequence bit) has no ERSPAN header; type II has 8 bytes. */
                if (rd16(p) & 0x1000) {
                    if (inlen < 8) return KG_DECODE_TRUNCATED;
                    in += 8, inlen -= 8;
                }
                next = L_ETHER;
                break;
            case ETH_ERSPAN3: {
                /* 12-byte header; the O bit (last byte, bit 0) adds an 8-byte subheader. */
                if (inlen < 12) return KG_DECODE_TRUNCATED;
                uint32_t eh = 12 + ((in[11] & 0x01) ? 8 : 0);
                if (inlen < eh) return KG_DECODE_TRUNCATED;
                in += eh, inlen -= eh;
                next = L_ETHER;
                break;
            }
            default:
                decode_l4(d, p, len);
                return KG_DECODE_OK;
            }
            if (d->tunnels >= max_depth) { /* one more would be too deep: stop here */
                d->too_deep = true;
                decode_l4(d, p, len);
                return KG_DECODE_OK;
            }
            d->tunnels++;
            p = in, len = inlen;
            continue;
        }
        /* UDP: tunnels recognised by port and validated by their header. */
        if (len >= 8) {
            uint16_t sp = rd16(p), dp = rd16(p + 2);
            const uint8_t *u = p + 8;
            uint32_t ulen = len - 8;
            uint32_t hl = 0;
            enum layer inner = L_DONE;
            if (dp == VXLAN_PORT && ulen >= 8 && (u[0] & 0x08)) {
                /* RFC 7348: 8-byte VXLAN header with the I flag, then Ethernet. */
                hl = 8, inner = L_ETHER;
            } else if ((dp == GTPU_PORT || sp == GTPU_PORT) && (hl = gtpu_header(u, ulen)) != 0) {
                inner = (u[hl] >> 4) == 6 ? L_IPV6 : L_IPV4;
            } else if ((dp == TEREDO_PORT || sp == TEREDO_PORT) && teredo_header(u, ulen, &hl)) {
                inner = L_IPV6;
            } else if ((dp == CAPWAP_DATA_PORT || sp == CAPWAP_DATA_PORT) &&
                       (hl = capwap_header(u, ulen, &inner)) != 0) {
                /* inner set by capwap_header: Ethernet, or IPv4/IPv6 after 802.11 + LLC */
            }
            if (inner != L_DONE && d->tunnels >= max_depth) {
                d->too_deep = true;
                inner = L_DONE;
            }
            if (inner != L_DONE) {
                d->tunnels++;
                p = u + hl, len = ulen - hl;
                next = inner;
                continue;
            }
        }
        decode_l4(d, p, len);
        return KG_DECODE_OK;
    }
}
