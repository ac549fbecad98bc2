/*
 * dissect/dissect_dns.c — DNS message parser: header, question section and,
 * on request, the answer section (RFC 1035 sections 3.2-3.4 and 4.1; the
 * same wire format serves mDNS, RFC 6762, and LLMNR, RFC 4795).
 *
 * Threads: runs on worker threads for every DNS message; it keeps no state,
 * so any number of threads may call it at once.
 * Ownership: borrows the message for the duration of the call; the names
 * handed to the callbacks live in stack buffers. Allocates nothing.
 *
 * Hostile input is the normal case here: every read is bounds-checked
 * against the message length (an answer's RDATA against its RDLENGTH), and
 * name decompression is bounded both by a strictly decreasing pointer
 * target (no loop is possible) and by a hop limit and the 255-octet name
 * limit.
 */
#include <string.h>

#include "dissect/dissect_parsers.h"

#define DNS_HEADER_LEN 12
/* RFC 1035 section 3.1: a name is at most 255 octets on the wire, label
 * length octets and the terminating zero octet included. */
#define DNS_NAME_WIRE_MAX 255
#define DNS_LABEL_MAX 63
/* Far more than any real message needs (a 255-octet name has at most 127
 * labels, and encoders chain few pointers); a cheap second guard. */
#define DNS_MAX_POINTER_HOPS 64

/* Every wire octet becomes at most two presentation bytes ("\." for a '.'
 * in a label; a length octet becomes one '.'), plus the NUL. */
_Static_assert(KG_DNS_NAME_MAX >= 2 * DNS_NAME_WIRE_MAX + 1,
               "KG_DNS_NAME_MAX too small for a 255-octet name");

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/*
 * Decodes the name that starts at *off into presentation form (`out`, which
 * holds KG_DNS_NAME_MAX bytes; NUL-terminated, no trailing dot, root = "").
 * On success sets *out_len, moves *off past the name as it sits in the
 * message (a compression pointer ends it there) and returns 0; returns -1
 * on a malformed name.
 *
 * Compression pointers (RFC 1035 section 4.1.4) must point strictly before
 * the start of the label run that contains them. Encoders only ever point at
 * names written earlier, so valid messages always satisfy this, and it makes
 * every jump go strictly backwards: no loop can exist, and a pointer to
 * itself, to a later offset or past the end of the message is rejected.
 * Pointers into the 12-byte header are rejected too: no encoder emits them.
 */
static int dns_read_name(const uint8_t *p, size_t len, size_t *off, char *out, size_t *out_len)
{
    size_t pos = *off;
    size_t run_start = pos; /* where the current run of labels began */
    size_t after = 0;       /* offset just past the name in the message */
    bool jumped = false;
    unsigned hops = 0;
    size_t wire = 0; /* wire octets of the expanded name */
    size_t o = 0;

    for (;;) {
        if (pos >= len) return -1;
        uint8_t c = p[pos];
        switch (c & 0xC0) {
        case 0x00: /* a label of c octets (0 = end of name) */
            wire += 1u + c;
            if (wire > DNS_NAME_WIRE_MAX) return -1;
            if (c == 0) {
                if (!jumped) after = pos + 1;
                out[o] = '\0';
                *out_len = o;
                *off = after;
                return 0;
            }
            if (len - pos - 1 < c) return -1; /* label runs past the end of the message */
            if (o > 0) out[o++] = '.';
            for (size_t i = 1; i <= c; i++) {
                uint8_t b = p[pos + i];
                if (b == '.' || b == '\\') out[o++] = '\\';
                out[o++] = (char)b;
            }
            pos += 1u + c;
            break;
        case 0xC0: { /* compression pointer: 14-bit offset */
            if (len - pos < 2) return -1;
            size_t target = ((size_t)(c & 0x3F) << 8) | p[pos + 1];
            if (target >= run_start || target < DNS_HEADER_LEN || ++hops > DNS_MAX_POINTER_HOPS) return -1;
            if (!jumped) {
                after = pos + 2;
                jumped = true;
            }
            pos = run_start = target;
            break;
        }
        default:
            /* 0x40 (extended label types, RFC 6891 section 5) and 0x80
             * (reserved): nothing in use today, treated as malformed. */
            return -1;
        }
    }
}

/* RFC 1035 section 3.2.2 / RFC 3596 section 2.1. */
#define DNS_TYPE_A 1
#define DNS_TYPE_NS 2
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28

/*
 * Reports the answer section, which starts at `off`: `ancount` resource
 * records (RFC 1035 section 4.1.3: NAME, TYPE, CLASS, TTL, RDLENGTH, RDATA).
 * Returns the number reported, or -1 at the first record that is malformed
 * or runs past the end of the message (those before it stay reported).
 */
static int dns_parse_answers(const uint8_t *p, size_t len, size_t off, unsigned ancount, kg_dns_answer_fn cb,
                             void *user)
{
    char name[KG_DNS_NAME_MAX];
    char target[KG_DNS_NAME_MAX];
    int n = 0;
    /* As with questions, a hostile ancount costs nothing: every record
     * takes at least 11 octets, so the loop ends with the data. */
    for (unsigned a = 0; a < ancount; a++) {
        struct kg_dns_answer ans;
        memset(&ans, 0, sizeof(ans));
        if (dns_read_name(p, len, &off, name, &ans.name_len) < 0) return -1;
        if (len - off < 10) return -1;
        ans.name = name;
        ans.rrtype = rd16(p + off);
        ans.rrclass = rd16(p + off + 2);
        ans.ttl = ((uint32_t)rd16(p + off + 4) << 16) | rd16(p + off + 6);
        ans.rdlength = rd16(p + off + 8);
        off += 10;
        if (len - off < ans.rdlength) return -1;
        const size_t rdata = off;
        const size_t rdata_end = off + ans.rdlength;
        off = rdata_end;

        switch (ans.rrtype) {
        case DNS_TYPE_A:
            /* Any other RDLENGTH is malformed RDATA: the record is still
             * reported (its framing is sound), without data. */
            if (ans.rdlength == 4) {
                ans.addr_family = 4;
                memcpy(ans.addr, p + rdata, 4);
            }
            break;
        case DNS_TYPE_AAAA:
            if (ans.rdlength == 16) {
                ans.addr_family = 6;
                memcpy(ans.addr, p + rdata, 16);
            }
            break;
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
        case DNS_TYPE_NS: {
            /* The name must lie inside RDATA (RFC 1035 section 3.3): reading
             * it against rdata_end as the message end enforces that for its
             * labels, and compression pointers only go backwards. Octets
             * after the name inside RDATA are ignored. */
            size_t t = rdata;
            if (dns_read_name(p, rdata_end, &t, target, &ans.target_len) == 0) ans.target = target;
            break;
        }
        default:
            break; /* reported without data */
        }
        if (cb) cb(user, &ans);
        n++;
    }
    return n;
}

int kg_dns_parse_message_full(const uint8_t *p, size_t len, struct kg_dns_msg_info *info,
                              kg_dns_question_fn qcb, kg_dns_answer_fn acb, void *user)
{
    if (p == NULL || len < DNS_HEADER_LEN) {
        if (info) memset(info, 0, sizeof(*info));
        return -1;
    }

    /* RFC 1035 section 4.1.1: ID, flags (QR bit 15, Opcode bits 11-14,
     * AA 10, TC 9, RD 8, RA 7, RCODE bits 0-3), then four 16-bit section
     * counts. */
    uint16_t flags = rd16(p + 2);
    uint16_t qdcount = rd16(p + 4);
    uint16_t ancount = rd16(p + 6);
    if (info) {
        info->id = rd16(p);
        info->is_response = (flags & 0x8000) != 0;
        info->opcode = (uint8_t)((flags >> 11) & 0x0F);
        info->rcode = (uint8_t)(flags & 0x0F);
        info->qdcount = qdcount;
        info->ancount = ancount;
        info->nscount = rd16(p + 8);
        info->arcount = rd16(p + 10);
        info->flags = flags;
    }

    /* A hostile qdcount (up to 65535) costs nothing extra: every question
     * takes at least 5 octets, so the loop ends with the data. Running out
     * of data before qdcount questions is a truncated, malformed message.
     * Capping how many names are turned into observations is the caller's
     * policy, not the parser's. */
    char name[KG_DNS_NAME_MAX];
    size_t off = DNS_HEADER_LEN;
    int n = 0;
    for (unsigned q = 0; q < qdcount; q++) {
        size_t name_len;
        if (dns_read_name(p, len, &off, name, &name_len) < 0) return -1;
        if (len - off < 4) return -1;
        /* qclass as sent: mDNS uses its top bit as the unicast-response
         * bit (RFC 6762 section 5.4); consumers mask it if they care. */
        uint16_t qtype = rd16(p + off);
        uint16_t qclass = rd16(p + off + 2);
        off += 4;
        if (qcb) qcb(user, name, name_len, qtype, qclass);
        n++;
    }
    if (acb == NULL || ancount == 0) return n;

    int a = dns_parse_answers(p, len, off, ancount, acb, user);
    return a < 0 ? -1 : n + a;
}

int kg_dns_parse_message(const uint8_t *p, size_t len, struct kg_dns_msg_info *info, kg_dns_question_fn cb,
                         void *user)
{
    return kg_dns_parse_message_full(p, len, info, cb, NULL, user);
}
