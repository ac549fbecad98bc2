/*
 * export/event_meta.c — metadata events (dns, tls, http, quic, flow, stats)
 * as single-line, EVE-style JSON, and the geo object shared with alerts.
 *
 * Threads: runs on worker threads, concurrently; every function here is
 * reentrant and takes only borrowed inputs. Owns nothing; the only
 * allocation is the growth of the caller's buffer.
 *
 * Same conventions as the alerts of event.c: JSON written by hand into one
 * reusable buffer (no per-event tree of heap objects), a fixed field order
 * (docs/EVENTS.md), every string through kg_json_append_string(), fields
 * that do not apply left out rather than written as null.
 */
#include "export/export.h"
#include "export/export_int.h"

#include <string.h>

#define APPEND_LIT(b, lit) kg_buf_append((b), (lit), sizeof(lit) - 1)

static const char hex_lower[] = "0123456789abcdef";

/* --- small writers ------------------------------------------------------------ */



/* `,"key":` */
static void append_key(struct kg_buf *out, const char *key)
{
    kg_buf_append_char(out, ',');
    kg_json_append_cstr(out, key);
    kg_buf_append_char(out, ':');
}

/* `,"key":"value"` for a non-empty NUL-terminated value; nothing otherwise. */
static void append_opt_cstr(struct kg_buf *out, const char *key, const char *v)
{
    if (v == NULL || *v == '\0') return;
    append_key(out, key);
    kg_json_append_cstr(out, v);
}

/* `,"key":"value"` for a length-carrying value; nothing when v is NULL. */
static void append_opt_str(struct kg_buf *out, const char *key, const char *v, size_t n)
{
    if (v == NULL) return;
    append_key(out, key);
    kg_json_append_string(out, v, n);
}

static void append_ts(struct kg_buf *out, uint64_t ts_us)
{
    char tmp[32];
    kg_buf_append_char(out, '"');
    kg_buf_append(out, kg_format_timestamp(ts_us, tmp), 31);
    kg_buf_append_char(out, '"');
}

/*
 * The escaped body of a JSON string, without its quotes, so that a string
 * can be written in pieces (the http url). kg_json_append_string() is the
 * one escaper (event.c); its quotes are removed afterwards: one memmove of
 * the piece, no allocation. Pieces must not split a UTF-8 sequence.
 */
static void append_json_piece(struct kg_buf *out, const char *s, size_t n)
{
    const size_t at = out->len;
    kg_json_append_string(out, s, n);
    memmove(out->data + at, out->data + at + 1, out->len - at - 2);
    out->len -= 2;
}

static void append_addr(struct kg_buf *out, const char *key, uint8_t family, const uint8_t *addr)
{
    char tmp[46];
    if (family != 4 && family != 6) return;
    append_key(out, key);
    kg_json_append_cstr(out, kg_addr_str(family, addr, tmp));
}

/* --- geo ------------------------------------------------------------------------ */

void kg_event_append_geo(struct kg_buf *out, const char *key, const struct kg_geo *g)
{
    if (g == NULL || key == NULL) return;
    const size_t clen = strnlen(g->country, sizeof(g->country));
    const size_t olen = strnlen(g->as_org, sizeof(g->as_org));
    if (clen == 0 && g->asn == 0 && olen == 0) return;
    append_key(out, key);
    kg_buf_append_char(out, '{');
    const char *sep = "";
    if (clen) {
        APPEND_LIT(out, "\"country\":");
        kg_json_append_string(out, g->country, clen);
        sep = ",";
    }
    if (g->asn) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"asn\":");
        kg_json_append_u64(out, g->asn);
        sep = ",";
    }
    if (olen) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"as_org\":");
        kg_json_append_string(out, g->as_org, olen);
    }
    kg_buf_append_char(out, '}');
}

/* --- header ------------------------------------------------------------------------ */

/* Writes `{"timestamp":...` up to dest_geo, without closing the object.
 * Returns false (nothing written) without a flow. */
static bool append_header(struct kg_buf *out, const struct kg_event_hdr *h, const char *event_type)
{
    if (h == NULL || h->flow == NULL) return false;
    const struct kg_flow_info *f = h->flow;
    const struct kg_flow_key *k = &f->key;
    char tmp[8];

    kg_buf_reserve(out, 1024);
    APPEND_LIT(out, "{\"timestamp\":");
    append_ts(out, h->ts_us);
    if (h->event_id) {
        APPEND_LIT(out, ",\"event_id\":");
        kg_json_append_cstr(out, h->event_id);
    }
    if (h->sensor_id) {
        APPEND_LIT(out, ",\"host\":");
        kg_json_append_cstr(out, h->sensor_id);
    }
    APPEND_LIT(out, ",\"flow_id\":");
    kg_json_append_u64(out, f->flow_id);
    APPEND_LIT(out, ",\"event_type\":");
    kg_json_append_cstr(out, event_type);
    if (f->nvlan > 0) {
        APPEND_LIT(out, ",\"vlan\":[");
        for (unsigned i = 0; i < f->nvlan && i < KG_MAX_VLAN; i++) {
            if (i) kg_buf_append_char(out, ',');
            kg_json_append_u64(out, f->vlan[i]);
        }
        kg_buf_append_char(out, ']');
    }
    const bool ports = kg_export_proto_has_ports(k->proto);
    append_addr(out, "src_ip", k->family, k->saddr);
    if (ports) {
        APPEND_LIT(out, ",\"src_port\":");
        kg_json_append_u64(out, k->sport);
    }
    append_addr(out, "dest_ip", k->family, k->daddr);
    if (ports) {
        APPEND_LIT(out, ",\"dest_port\":");
        kg_json_append_u64(out, k->dport);
    }
    APPEND_LIT(out, ",\"proto\":");
    kg_json_append_cstr(out, kg_export_proto_name(k->proto, tmp));
    APPEND_LIT(out, ",\"app_proto\":");
    kg_json_append_cstr(out, f->app_proto ? f->app_proto : "unknown");
    append_opt_cstr(out, "community_id", h->community_id);
    kg_event_append_geo(out, "src_geo", h->src_geo);
    kg_event_append_geo(out, "dest_geo", h->dest_geo);
    kg_event_append_ndpi(out, f);
    return true;
}

void kg_event_append_ndpi(struct kg_buf *out, const struct kg_flow_info *f)
{
    if (!f->ndpi_proto[0]) return;
    APPEND_LIT(out, ",\"ndpi\":{\"protocol\":");
    kg_json_append_cstr(out, f->ndpi_proto);
    if (f->ndpi_category) {
        APPEND_LIT(out, ",\"category\":");
        kg_json_append_cstr(out, f->ndpi_category);
    }
    if (f->ndpi_risk) {
        APPEND_LIT(out, ",\"risks\":[");
        bool first = true;
        for (unsigned b = 1; b < 64; b++) {
            if (!(f->ndpi_risk & (1ull << b))) continue;
            const char *name = kg_dissect_risk_name(b);
            if (!name) continue;
            if (!first) kg_buf_append_char(out, ',');
            kg_json_append_cstr(out, name);
            first = false;
        }
        kg_buf_append_char(out, ']');
    }
    kg_buf_append_char(out, '}');
}

/* --- dns ---------------------------------------------------------------------------- */

/* RFC 1035 section 3.2.2 and the IANA "Resource Record (RR) TYPEs" registry. */
static const struct {
    uint16_t type;
    char name[11];
} dns_types[] = {
    {1, "A"},        {2, "NS"},          {3, "MD"},     {4, "MF"},      {5, "CNAME"},   {6, "SOA"},
    {7, "MB"},       {8, "MG"},          {9, "MR"},     {10, "NULL"},   {11, "WKS"},    {12, "PTR"},
    {13, "HINFO"},   {14, "MINFO"},      {15, "MX"},    {16, "TXT"},    {17, "RP"},     {18, "AFSDB"},
    {24, "SIG"},     {25, "KEY"},        {28, "AAAA"},  {29, "LOC"},    {33, "SRV"},    {35, "NAPTR"},
    {36, "KX"},      {37, "CERT"},       {39, "DNAME"}, {41, "OPT"},    {42, "APL"},    {43, "DS"},
    {44, "SSHFP"},   {45, "IPSECKEY"},   {46, "RRSIG"}, {47, "NSEC"},   {48, "DNSKEY"}, {49, "DHCID"},
    {50, "NSEC3"},   {51, "NSEC3PARAM"}, {52, "TLSA"},  {53, "SMIMEA"}, {55, "HIP"},    {59, "CDS"},
    {60, "CDNSKEY"}, {61, "OPENPGPKEY"}, {62, "CSYNC"}, {63, "ZONEMD"}, {64, "SVCB"},   {65, "HTTPS"},
    {99, "SPF"},     {249, "TKEY"},      {250, "TSIG"}, {251, "IXFR"},  {252, "AXFR"},  {253, "MAILB"},
    {254, "MAILA"},  {255, "ANY"},       {256, "URI"},  {257, "CAA"},
};

/* Type name, or "TYPE<n>" (RFC 3597 section 5) into tmp (12 bytes). */
static const char *dns_type_name(uint16_t t, char *tmp)
{
    for (size_t i = 0; i < KG_ARRAY_LEN(dns_types); i++) {
        if (dns_types[i].type == t) return dns_types[i].name;
    }
    memcpy(tmp, "TYPE", 4);
    char d[5];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + t % 10);
        t /= 10;
    } while (t);
    for (size_t i = 0; i < n; i++)
        tmp[4 + i] = d[n - 1 - i];
    tmp[4 + n] = '\0';
    return tmp;
}

/* RFC 1035 section 4.1.1, RFC 2136, RFC 8490 (the 4-bit header RCODE). */
static const char *const dns_rcodes[16] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "DSOTYPENI", "RCODE12", "RCODE13", "RCODE14",  "RCODE15",
};

void kg_event_format_dns(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_dns_event *e)
{
    if (e == NULL || !append_header(out, h, "dns")) return;
    char tmp[12];
    APPEND_LIT(out, ",\"dns\":{\"type\":");
    kg_json_append_cstr(out, e->is_response ? "answer" : "query");
    APPEND_LIT(out, ",\"id\":");
    kg_json_append_u64(out, e->id);
    if (e->rrname) {
        APPEND_LIT(out, ",\"rrname\":");
        kg_json_append_string(out, e->rrname, e->rrname_len);
        APPEND_LIT(out, ",\"rrtype\":");
        kg_json_append_cstr(out, dns_type_name(e->rrtype, tmp));
    }
    if (e->is_response) {
        APPEND_LIT(out, ",\"rcode\":");
        kg_json_append_cstr(out, dns_rcodes[e->rcode & 0x0F]);
        if (e->answers && e->nanswers > 0) {
            APPEND_LIT(out, ",\"answers\":[");
            for (size_t i = 0; i < e->nanswers; i++) {
                const struct kg_dns_event_answer *a = &e->answers[i];
                if (i) kg_buf_append_char(out, ',');
                APPEND_LIT(out, "{\"rrname\":");
                kg_json_append_string(out, a->rrname, a->rrname ? a->rrname_len : 0);
                APPEND_LIT(out, ",\"rrtype\":");
                kg_json_append_cstr(out, dns_type_name(a->rrtype, tmp));
                APPEND_LIT(out, ",\"ttl\":");
                kg_json_append_u64(out, a->ttl);
                if (a->addr_family == 4 || a->addr_family == 6) {
                    char abuf[46];
                    APPEND_LIT(out, ",\"rdata\":");
                    kg_json_append_cstr(out, kg_addr_str(a->addr_family, a->addr, abuf));
                } else if (a->target) {
                    APPEND_LIT(out, ",\"rdata\":");
                    kg_json_append_string(out, a->target, a->target_len);
                }
                kg_buf_append_char(out, '}');
            }
            kg_buf_append_char(out, ']');
        }
    }
    APPEND_LIT(out, "}}\n");
}

/* --- tls ------------------------------------------------------------------------------ */

/* Version name as Suricata writes it; hex for unknown values, into tmp (16). */
const char *kg_export_tls_version_name(uint16_t v, char *tmp)
{
    switch (v) {
    case 0x0002:
        return "SSLv2";
    case 0x0300:
        return "SSLv3";
    case 0x0301:
        return "TLS 1.0";
    case 0x0302:
        return "TLS 1.1";
    case 0x0303:
        return "TLS 1.2";
    case 0x0304:
        return "TLS 1.3";
    case 0xFEFF:
        return "DTLS 1.0";
    case 0xFEFD:
        return "DTLS 1.2";
    case 0xFEFC:
        return "DTLS 1.3";
    default:
        break;
    }
    if ((v >> 8) == 0x7F) {
        /* TLS 1.3 drafts (draft-ietf-tls-tls13 section 4.2.1: 0x7f00 + n). */
        memcpy(tmp, "TLS 1.3 draft-", 14);
        unsigned d = v & 0xFF;
        size_t n = 14;
        if (d >= 100) tmp[n++] = (char)('0' + d / 100);
        if (d >= 10) tmp[n++] = (char)('0' + d / 10 % 10);
        tmp[n++] = (char)('0' + d % 10);
        tmp[n] = '\0';
        return tmp;
    }
    tmp[0] = '0';
    tmp[1] = 'x';
    for (int i = 0; i < 4; i++)
        tmp[2 + i] = hex_lower[(v >> (12 - 4 * i)) & 0xF];
    tmp[6] = '\0';
    return tmp;
}

/* Hex digits (any case) as lower-case pairs joined by ':' into out (>= 3 *
 * len / 2 bytes). Returns the length, or 0 unless s holds an even number
 * (2..64) of hex digits. */
static size_t colon_hex(const char *s, char *out)
{
    size_t len = s ? strnlen(s, 65) : 0;
    if (len == 0 || len % 2 || len > 64) return 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        if (i && i % 2 == 0) out[n++] = ':';
        out[n++] = c;
    }
    return n;
}

/* A hex digest in lower case; 0 unless s is exactly `want` hex digits. */
static size_t lower_hex(const char *s, size_t want, char *out)
{
    if (s == NULL || strnlen(s, want + 1) != want) return 0;
    for (size_t i = 0; i < want; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        out[i] = c;
    }
    return want;
}

void kg_event_format_tls(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_tls_event *e)
{
    if (e == NULL || !append_header(out, h, "tls")) return;
    char tmp[96];
    APPEND_LIT(out, ",\"tls\":{");
    const size_t mark = out->len; /* members are written with a leading ','; the first one's goes */

    append_opt_cstr(out, "sni", e->sni);
    if (e->version) {
        append_key(out, "version");
        kg_json_append_cstr(out, kg_export_tls_version_name(e->version, tmp));
    }
    append_opt_cstr(out, "alpn", e->alpn);
    const bool ja3h = e->ja3_hash && *e->ja3_hash, ja3s = e->ja3_string && *e->ja3_string;
    if (ja3h || ja3s) {
        APPEND_LIT(out, ",\"ja3\":{");
        if (ja3h) {
            APPEND_LIT(out, "\"hash\":");
            kg_json_append_cstr(out, e->ja3_hash);
        }
        if (ja3s) {
            if (ja3h) kg_buf_append_char(out, ',');
            APPEND_LIT(out, "\"string\":");
            kg_json_append_cstr(out, e->ja3_string);
        }
        kg_buf_append_char(out, '}');
    }
    append_opt_cstr(out, "ja4", e->ja4);
    if (e->ja3s_hash && *e->ja3s_hash) {
        APPEND_LIT(out, ",\"ja3s\":{\"hash\":");
        kg_json_append_cstr(out, e->ja3s_hash);
        kg_buf_append_char(out, '}');
    }
    if (e->has_cert) {
        append_opt_cstr(out, "subject", e->subject);
        append_opt_cstr(out, "issuerdn", e->issuerdn);
        append_opt_cstr(out, "serial", e->serial);
        size_t n = colon_hex(e->cert_sha1, tmp);
        if (n) {
            APPEND_LIT(out, ",\"fingerprint\":");
            kg_json_append_string(out, tmp, n);
        }
        n = lower_hex(e->cert_sha256, 64, tmp);
        if (n) {
            APPEND_LIT(out, ",\"sha256\":");
            kg_json_append_string(out, tmp, n);
        }
        append_opt_cstr(out, "notbefore", e->notbefore);
        append_opt_cstr(out, "notafter", e->notafter);
        if (e->self_signed)
            APPEND_LIT(out, ",\"self_signed\":true");
        else
            APPEND_LIT(out, ",\"self_signed\":false");
    }
    if (out->len > mark) memmove(out->data + mark, out->data + mark + 1, --out->len - mark);
    APPEND_LIT(out, "}}\n");
}

/* --- http ------------------------------------------------------------------------------ */

static inline char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Length of a leading "http://" or "https://" (any case), else 0. */
static size_t http_scheme_len(const char *s, size_t n)
{
    static const char http[] = "http://", https[] = "https://";
    size_t i;
    for (i = 0; i < 7 && i < n && ascii_lower(s[i]) == http[i]; i++)
        ;
    if (i == 7) return 7;
    for (i = 0; i < 8 && i < n && ascii_lower(s[i]) == https[i]; i++)
        ;
    return i == 8 ? 8 : 0;
}

/* Splits a Host value into name and port: "[v6]:port", "name:port" or a
 * bare name/address. *port is 0 when none (or not a number 1..65535). */
static size_t host_split(const char *h, size_t len, uint32_t *port)
{
    *port = 0;
    size_t name_len = len;
    const char *colon = NULL;
    if (len && h[0] == '[') {
        const char *e = memchr(h, ']', len);
        if (e == NULL) return len;
        name_len = (size_t)(e - h) + 1;
        if (name_len < len && h[name_len] == ':') colon = h + name_len;
    } else {
        colon = memchr(h, ':', len);
        if (colon) name_len = (size_t)(colon - h);
    }
    if (colon) {
        uint32_t p = 0;
        const char *d = colon + 1;
        const char *end = h + len;
        if (d == end || end - d > 5) return name_len;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') return name_len;
            p = p * 10 + (uint32_t)(*d - '0');
        }
        if (p >= 1 && p <= 65535) *port = p;
    }
    return name_len;
}

/*
 * url: host + URI, normalised the way URL indicators are matched
 * (indicators.h, kg_indicator_match_url): an absolute-form target
 * ("http://h/p", a proxy request, RFC 9112 section 3.2.2) brings its own
 * authority, which wins over Host; the host is lower-cased and a default
 * ":80" dropped; a missing path, or a query without one, becomes "/". An
 * authority-form (CONNECT) or asterisk-form target is written as sent, and
 * so is an origin-form target without a Host.
 */
static void append_http_url(struct kg_buf *out, const char *host, size_t host_len, const char *uri,
                            size_t uri_len)
{
    const size_t skip = uri ? http_scheme_len(uri, uri_len) : 0;
    if (skip) {
        host = uri + skip;
        const size_t n = uri_len - skip;
        size_t hl = 0;
        while (hl < n && host[hl] != '/' && host[hl] != '?')
            hl++;
        host_len = hl;
        uri = host + hl;
        uri_len = n - hl;
    } else if (uri == NULL || host == NULL || uri_len == 0 || (uri[0] != '/' && uri[0] != '?')) {
        kg_json_append_string(out, uri, uri ? uri_len : 0);
        return;
    }
    if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0) host_len -= 3;

    kg_buf_append_char(out, '"');
    /* Lower-case the host in chunks through a small stack buffer; only
     * ASCII letters change, so UTF-8 sequences are cut at chunk
     * boundaries only where no sequence continues. */
    char chunk[256];
    size_t i = 0;
    while (i < host_len) {
        size_t n = KG_MIN(host_len - i, sizeof(chunk));
        while (n > 1 && i + n < host_len && ((uint8_t)host[i + n] & 0xC0) == 0x80)
            n--;
        for (size_t j = 0; j < n; j++)
            chunk[j] = ascii_lower(host[i + j]);
        append_json_piece(out, chunk, n);
        i += n;
    }
    if (uri_len == 0 || uri[0] == '?') kg_buf_append_char(out, '/');
    append_json_piece(out, uri, uri_len);
    kg_buf_append_char(out, '"');
}

void kg_event_format_http(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_http_event *e)
{
    if (e == NULL || !append_header(out, h, "http")) return;
    APPEND_LIT(out, ",\"http\":{");
    const size_t mark = out->len;

    if (e->host) {
        uint32_t port;
        const size_t name_len = host_split(e->host, e->host_len, &port);
        append_opt_str(out, "hostname", e->host, name_len);
        if (port) {
            APPEND_LIT(out, ",\"http_port\":");
            kg_json_append_u64(out, port);
        }
    }
    if (e->uri) {
        APPEND_LIT(out, ",\"url\":");
        append_http_url(out, e->host, e->host_len, e->uri, e->uri_len);
    }
    append_opt_str(out, "http_method", e->method, e->method_len);
    if (e->method || e->uri) {
        APPEND_LIT(out, ",\"protocol\":");
        if (e->version_minor == 9) {
            APPEND_LIT(out, "\"HTTP/0.9\"");
        } else {
            APPEND_LIT(out, "\"HTTP/1.");
            kg_json_append_u64(out, e->version_minor);
            kg_buf_append_char(out, '"');
        }
    }
    append_opt_str(out, "http_user_agent", e->user_agent, e->user_agent_len);
    if (e->status) {
        APPEND_LIT(out, ",\"status\":");
        kg_json_append_u64(out, e->status);
    }
    append_opt_str(out, "http_content_type", e->content_type, e->content_type_len);
    if (e->has_length) {
        APPEND_LIT(out, ",\"length\":");
        kg_json_append_u64(out, e->length);
    }
    if (out->len > mark) memmove(out->data + mark, out->data + mark + 1, --out->len - mark);
    APPEND_LIT(out, "}}\n");
}

/* --- quic ------------------------------------------------------------------------------ */

/* "1" (RFC 9000), "2" (RFC 9369), "draft-NN" (0xff0000NN), "Q046" (Google
 * QUIC: 'Q' and three digits), else "0x" + 8 hex digits; into tmp (16). */
static const char *quic_version_name(uint32_t v, char *tmp)
{
    if (v == 0x00000001) return "1";
    if (v == 0x6b3343cf) return "2";
    if ((v & 0xFFFFFF00u) == 0xFF000000u) {
        unsigned d = v & 0xFF;
        memcpy(tmp, "draft-", 6);
        size_t n = 6;
        if (d >= 100) tmp[n++] = (char)('0' + d / 100);
        if (d >= 10) tmp[n++] = (char)('0' + d / 10 % 10);
        tmp[n++] = (char)('0' + d % 10);
        tmp[n] = '\0';
        return tmp;
    }
    const char c[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    if ((c[0] == 'Q' || c[0] == 'T') && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9' &&
        c[3] >= '0' && c[3] <= '9') {
        memcpy(tmp, c, 4);
        tmp[4] = '\0';
        return tmp;
    }
    tmp[0] = '0';
    tmp[1] = 'x';
    for (int i = 0; i < 8; i++)
        tmp[2 + i] = hex_lower[(v >> (28 - 4 * i)) & 0xF];
    tmp[10] = '\0';
    return tmp;
}

void kg_event_format_quic(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_quic_event *e)
{
    if (e == NULL || !append_header(out, h, "quic")) return;
    char tmp[16];
    APPEND_LIT(out, ",\"quic\":{");
    const size_t mark = out->len;
    if (e->version) {
        append_key(out, "version");
        kg_json_append_cstr(out, quic_version_name(e->version, tmp));
    }
    append_opt_cstr(out, "sni", e->sni);
    append_opt_cstr(out, "alpn", e->alpn);
    if (e->ja3_hash && *e->ja3_hash) {
        APPEND_LIT(out, ",\"ja3\":{\"hash\":");
        kg_json_append_cstr(out, e->ja3_hash);
        kg_buf_append_char(out, '}');
    }
    append_opt_cstr(out, "ja4", e->ja4);
    if (out->len > mark) memmove(out->data + mark, out->data + mark + 1, --out->len - mark);
    APPEND_LIT(out, "}}\n");
}

/* --- flow ------------------------------------------------------------------------------ */

static const char *flow_reason_name(enum kg_flow_end_reason r)
{
    switch (r) {
    case KG_FLOW_END_TIMEOUT:
        return "timeout";
    case KG_FLOW_END_CLOSED:
        return "closed";
    case KG_FLOW_END_SHUTDOWN:
        return "shutdown";
    case KG_FLOW_END_EVICTED:
        return "evicted";
    }
    return "unknown";
}

static void append_hex8(struct kg_buf *out, uint8_t v)
{
    const char s[4] = {'"', hex_lower[v >> 4], hex_lower[v & 0xF], '"'};
    kg_buf_append(out, s, 4);
}

void kg_event_format_flow(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_flow_event *e)
{
    if (e == NULL || !append_header(out, h, "flow")) return;
    const struct kg_flow_info *f = h->flow;
    APPEND_LIT(out, ",\"flow\":{\"pkts_toserver\":");
    kg_json_append_u64(out, f->pkts_toserver);
    APPEND_LIT(out, ",\"pkts_toclient\":");
    kg_json_append_u64(out, f->pkts_toclient);
    APPEND_LIT(out, ",\"bytes_toserver\":");
    kg_json_append_u64(out, f->bytes_toserver);
    APPEND_LIT(out, ",\"bytes_toclient\":");
    kg_json_append_u64(out, f->bytes_toclient);
    APPEND_LIT(out, ",\"start\":");
    append_ts(out, f->first_ts_us);
    const uint64_t end = f->last_ts_us >= f->first_ts_us ? f->last_ts_us : f->first_ts_us;
    APPEND_LIT(out, ",\"end\":");
    append_ts(out, end);
    /* Whole seconds, as Suricata: the difference of the seconds fields. */
    APPEND_LIT(out, ",\"age\":");
    kg_json_append_u64(out, end / 1000000u - f->first_ts_us / 1000000u);
    append_opt_cstr(out, "state", e->state);
    APPEND_LIT(out, ",\"reason\":");
    kg_json_append_cstr(out, flow_reason_name(e->reason));
    if (e->alerted)
        APPEND_LIT(out, ",\"alerted\":true");
    else
        APPEND_LIT(out, ",\"alerted\":false");
    if (f->key.proto == 6) {
        APPEND_LIT(out, ",\"tcp_flags\":");
        append_hex8(out, e->tcp_flags);
        APPEND_LIT(out, ",\"tcp_flags_ts\":");
        append_hex8(out, e->tcp_flags_ts);
        APPEND_LIT(out, ",\"tcp_flags_tc\":");
        append_hex8(out, e->tcp_flags_tc);
    }
    APPEND_LIT(out, "}}\n");
}

/* --- stats ----------------------------------------------------------------------------- */

#define STATS_MAX_DEPTH 8

/* Splits a dotted name into at most STATS_MAX_DEPTH segments (the last one
 * keeps any further dots). Returns the number of segments (>= 1). */
static size_t split_name(const char *name, const char *seg[], size_t seg_len[])
{
    size_t n = 0;
    const char *s = name;
    for (;;) {
        const char *dot = n + 1 < STATS_MAX_DEPTH ? strchr(s, '.') : NULL;
        seg[n] = s;
        seg_len[n] = dot ? (size_t)(dot - s) : strlen(s);
        n++;
        if (!dot) return n;
        s = dot + 1;
    }
}

void kg_event_format_stats(struct kg_buf *out, uint64_t ts_us, const char *event_id, const char *sensor_id,
                           uint64_t uptime_s, const struct kg_stat_counter *c, size_t n)
{
    kg_buf_reserve(out, 256 + n * 32);
    APPEND_LIT(out, "{\"timestamp\":");
    append_ts(out, ts_us);
    if (event_id) {
        APPEND_LIT(out, ",\"event_id\":");
        kg_json_append_cstr(out, event_id);
    }
    if (sensor_id) {
        APPEND_LIT(out, ",\"host\":");
        kg_json_append_cstr(out, sensor_id);
    }
    APPEND_LIT(out, ",\"event_type\":\"stats\",\"stats\":{\"uptime\":");
    kg_json_append_u64(out, uptime_s);

    /* The objects open now: the leading segments of the previous name. */
    const char *open_seg[STATS_MAX_DEPTH];
    size_t open_len[STATS_MAX_DEPTH];
    size_t depth = 0;
    for (size_t i = 0; c && i < n; i++) {
        if (c[i].name == NULL) continue;
        const char *seg[STATS_MAX_DEPTH];
        size_t seg_len[STATS_MAX_DEPTH];
        const size_t ns = split_name(c[i].name, seg, seg_len);
        /* Keep the open objects this name shares; close the others. */
        size_t keep = 0;
        while (keep < depth && keep + 1 < ns && open_len[keep] == seg_len[keep] &&
               memcmp(open_seg[keep], seg[keep], seg_len[keep]) == 0)
            keep++;
        for (; depth > keep; depth--)
            kg_buf_append_char(out, '}');
        /* A new object right after its '{' takes no comma; here every
         * member follows "uptime" or a sibling, except the first member
         * of an object just opened. */
        bool first = false;
        for (; depth + 1 < ns; depth++) {
            if (!first) kg_buf_append_char(out, ',');
            kg_json_append_string(out, seg[depth], seg_len[depth]);
            APPEND_LIT(out, ":{");
            open_seg[depth] = seg[depth];
            open_len[depth] = seg_len[depth];
            first = true;
        }
        if (!first) kg_buf_append_char(out, ',');
        kg_json_append_string(out, seg[ns - 1], seg_len[ns - 1]);
        kg_buf_append_char(out, ':');
        kg_json_append_u64(out, c[i].value);
    }
    for (; depth > 0; depth--)
        kg_buf_append_char(out, '}');
    APPEND_LIT(out, "}}\n");
}
