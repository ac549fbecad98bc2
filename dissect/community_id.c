/*
 * dissect/community_id.c — Community ID v1 flow hashes (Corelight's
 * community-id-spec; the same value Suricata, Zeek, Arkime and Wireshark
 * log as community_id), so that Kagami events join with theirs.
 *
 *   "1:" + base64(SHA1(seed(2, BE) . saddr . daddr . proto(1) . 0(1)
 *                       [. sport(2, BE) . dport(2, BE)]))
 *
 * with the endpoints ordered so that the smaller address comes first (ties
 * broken by the smaller port), ICMP/ICMPv6 type and code mapped to ports
 * as Zeek does (a request/reply type pairs with its counterpart, and such
 * flows are ordered like ports; every other type is "one-way": hashed as
 * sent, code in the destination port), and the port words left out for
 * protocols without ports.
 *
 * Threads: reentrant; the SHA1 implementation is fetched once (pthread_once)
 * and shared read-only. Called once per flow, not per packet: EVP_Digest
 * allocates a digest context per call.
 * Ownership: borrows the key; writes into the caller's buffer.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "dissect/dissect.h"

_Static_assert(KG_COMMUNITY_ID_LEN >= 2 + 28 + 1, "\"1:\" + base64 of 20 bytes + NUL");

/* The input hashed: 2 + 16 + 16 + 2 + 4 bytes at most. */
#define CID_INPUT_MAX 40

static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha1_md;

static void sha1_fetch(void)
{
    /* An explicit fetch, once: EVP_sha1() would make every EVP_Digest call
     * look the implementation up again in the provider store (OpenSSL 3). */
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

/*
 * ICMP (RFC 792, RFC 950, RFC 1256) and ICMPv6 (RFC 4443, RFC 4861,
 * RFC 2710, RFC 4620 node information, RFC 6275 home agent address
 * discovery) request/reply pairs: the types whose counterpart goes the
 * other way. Zeek's ICMP4_counterpart()/ICMP6_counterpart(), which the
 * specification adopts. Returns the counterpart, or -1 for a one-way type.
 */
static int icmp4_counterpart(uint8_t type)
{
    switch (type) {
    case 8:
        return 0; /* echo request -> echo reply */
    case 0:
        return 8;
    case 13:
        return 14; /* timestamp */
    case 14:
        return 13;
    case 15:
        return 16; /* information */
    case 16:
        return 15;
    case 10:
        return 9; /* router solicitation -> advertisement */
    case 9:
        return 10;
    case 17:
        return 18; /* address mask */
    case 18:
        return 17;
    default:
        return -1;
    }
}

static int icmp6_counterpart(uint8_t type)
{
    switch (type) {
    case 128:
        return 129; /* echo request -> echo reply */
    case 129:
        return 128;
    case 130:
        return 131; /* MLD query -> report */
    case 131:
        return 130;
    case 133:
        return 134; /* router solicitation -> advertisement */
    case 134:
        return 133;
    case 135:
        return 136; /* neighbour solicitation -> advertisement */
    case 136:
        return 135;
    case 139:
        return 140; /* node information query -> response */
    case 140:
        return 139;
    case 144:
        return 145; /* home agent address discovery request -> reply */
    case 145:
        return 144;
    default:
        return -1;
    }
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int kg_community_id_ex(const struct kg_flow_key *k, uint16_t seed, bool with_ports,
                       char out[KG_COMMUNITY_ID_LEN])
{
    if (out) out[0] = '\0';
    if (k == NULL || out == NULL || (k->family != 4 && k->family != 6)) return KG_ERR_INVAL;
    const size_t alen = k->family == 4 ? 4 : 16;

    const uint8_t *a = k->saddr, *b = k->daddr;
    uint16_t pa = k->sport, pb = k->dport;
    bool one_way = false;
    if (with_ports && (k->proto == 1 || k->proto == 58)) {
        /* sport holds the ICMP type, dport the code (struct kg_flow_key). */
        const uint8_t type = (uint8_t)k->sport;
        const int peer = k->proto == 1 ? icmp4_counterpart(type) : icmp6_counterpart(type);
        pa = type;
        if (peer >= 0) {
            pb = (uint16_t)peer;
        } else {
            pb = (uint16_t)(uint8_t)k->dport;
            one_way = true;
        }
    }

    /* Order the endpoints: the smaller address (as bytes, i.e. in network
     * order) first, and for equal addresses the smaller port. One-way ICMP
     * messages keep their direction. */
    const int c = memcmp(a, b, alen);
    if (!one_way && (c > 0 || (c == 0 && with_ports && pa > pb))) {
        const uint8_t *t = a;
        a = b;
        b = t;
        const uint16_t tp = pa;
        pa = pb;
        pb = tp;
    }

    uint8_t in[CID_INPUT_MAX];
    size_t n = 0;
    put16(in, seed);
    n += 2;
    memcpy(in + n, a, alen);
    n += alen;
    memcpy(in + n, b, alen);
    n += alen;
    in[n++] = k->proto;
    in[n++] = 0; /* padding: the input stays 32-bit aligned */
    if (with_ports) {
        put16(in + n, pa);
        put16(in + n + 2, pb);
        n += 4;
    }

    pthread_once(&sha1_once, sha1_fetch);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (sha1_md == NULL || EVP_Digest(in, n, md, &mdlen, sha1_md, NULL) != 1 || mdlen != 20)
        return KG_ERR_NOMEM;

    /* base64 (RFC 4648 section 4, with padding): 20 bytes -> 28 characters,
     * NUL-terminated by EVP_EncodeBlock. */
    out[0] = '1';
    out[1] = ':';
    EVP_EncodeBlock((unsigned char *)out + 2, md, 20);
    return 0;
}

int kg_community_id(const struct kg_flow_key *k, uint16_t seed, char out[KG_COMMUNITY_ID_LEN])
{
    if (k == NULL) {
        if (out) out[0] = '\0';
        return KG_ERR_INVAL;
    }
    /* The specification's port-carrying protocols: TCP, UDP, SCTP, and
     * ICMP/ICMPv6 with type and code. Everything else is hashed on the
     * addresses and the protocol alone. */
    const bool ports = k->proto == 6 || k->proto == 17 || k->proto == 132 || k->proto == 1 || k->proto == 58;
    return kg_community_id_ex(k, seed, ports, out);
}
