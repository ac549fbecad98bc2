/*
 * export/event.c — alert events as single-line, EVE-style JSON.
 *
 * Threads: runs on worker threads, concurrently; every function here is
 * reentrant and takes only borrowed inputs. Owns nothing; the only
 * allocation is the growth of the caller's buffer.
 *
 * The JSON is written by hand rather than through a JSON library
 * (jansson builds a tree of heap objects per event, then serialises it):
 * an alert is a fixed shape, so direct appends to one reusable buffer cost
 * no allocation in the steady state. The field order is part of the
 * output format (docs/EVENTS.md), which a library's hash-ordered objects
 * would not keep either.
 */
#include "export/export.h"
#include "export/export_int.h"

#include <string.h>

#define APPEND_LIT(b, lit) kg_buf_append((b), (lit), sizeof(lit) - 1)

static const char hex_lower[] = "0123456789abcdef";

/* --- strings ------------------------------------------------------------ */

/*
 * Length of the well-formed UTF-8 sequence starting at p (2..4), or 0 when
 * p[0] does not start one. The accepted byte ranges are Table 3-7 of The
 * Unicode Standard (also RFC 3629 section 4): second-byte bounds exclude
 * overlong forms (E0 80..9F, F0 80..8F), UTF-16 surrogates (ED A0..BF) and
 * code points above U+10FFFF (F4 90..BF); C0, C1 and F5..FF never start a
 * sequence. p[0] >= 0x80.
 */
static size_t utf8_sequence_len(const uint8_t *p, const uint8_t *end)
{
    const uint8_t c = p[0];
    const size_t avail = (size_t)(end - p);
    uint8_t lo = 0x80, hi = 0xBF; /* bounds of the second byte */

    if (c >= 0xC2 && c <= 0xDF) return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3) return 0;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4) return 0;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

static void append_escaped_byte(struct kg_buf *out, uint8_t c)
{
    char e[6] = {'\\', 'u', '0', '0', hex_lower[c >> 4], hex_lower[c & 0xF]};
    size_t n = 2;
    switch (c) {
    case '"':
        e[1] = '"';
        break;
    case '\\':
        e[1] = '\\';
        break;
    case '\b':
        e[1] = 'b';
        break;
    case '\f':
        e[1] = 'f';
        break;
    case '\n':
        e[1] = 'n';
        break;
    case '\r':
        e[1] = 'r';
        break;
    case '\t':
        e[1] = 't';
        break;
    default:
        n = 6;
        break; /* other controls and invalid UTF-8 bytes: \u00XX */
    }
    kg_buf_append(out, e, n);
}

/*
 * The body of a JSON string (no quotes). Hand-written because it runs on
 * every string of every alert on the worker threads: the loop copies the
 * longest run of bytes that may go out verbatim (printable ASCII other
 * than '"' and '\\', DEL included, and well-formed UTF-8 sequences) with
 * one memcpy and escapes only what must be, where a byte-by-byte encoder
 * or a library call per string would pay per byte. Every byte that is not
 * part of a well-formed sequence becomes \u00XX of its value (U+0080..U+00FF,
 * i.e. read as Latin-1), so any input gives valid JSON that is valid
 * UTF-8, and valid UTF-8 input comes out unchanged.
 */
static void append_json_body(struct kg_buf *out, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    const uint8_t *const end = p + len;

    while (p < end) {
        const uint8_t *run = p;
        while (p < end) {
            const uint8_t c = *p;
            if (c < 0x80) {
                if (c < 0x20 || c == '"' || c == '\\') break;
                p++;
            } else {
                const size_t n = utf8_sequence_len(p, end);
                if (n == 0) break;
                p += n;
            }
        }
        if (p > run) kg_buf_append(out, run, (size_t)(p - run));
        if (p == end) break;
        append_escaped_byte(out, *p++);
    }
}

void kg_json_append_string(struct kg_buf *out, const char *s, size_t len)
{
    kg_buf_reserve(out, len + 2); /* the common case: nothing to escape */
    kg_buf_append_char(out, '"');
    if (s) append_json_body(out, s, len);
    kg_buf_append_char(out, '"');
}



/* --- timestamps ----------------------------------------------------------- */

/*
 * Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
 * civil_from_days, for non-negative day numbers). Done by hand because
 * glibc's gmtime_r() takes the process-wide timezone lock, and this runs
 * for every alert on every worker.
 */
static void civil_from_days(uint64_t z, unsigned *y, unsigned *m, unsigned *d)
{
    z += 719468; /* shift the epoch to 0000-03-01 */
    const uint64_t era = z / 146097;
    const uint64_t doe = z - era * 146097;                                      /* [0, 146096] */
    const uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    const uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    const uint64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11], March = 0 */
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = (unsigned)(yoe + era * 400 + (*m <= 2));
}

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

const char *kg_format_timestamp(uint64_t ts_us, char *buf)
{
    /* Years past 9999 would not fit the fixed-width format: clamp to its
     * last microsecond rather than print a malformed timestamp. */
    const uint64_t max_us = 253402300799999999ull; /* 9999-12-31T23:59:59.999999 */
    if (ts_us > max_us) ts_us = max_us;

    const uint64_t secs = ts_us / 1000000u;
    const unsigned usec = (unsigned)(ts_us % 1000000u);
    const unsigned sod = (unsigned)(secs % 86400u);
    unsigned y, mo, d;
    civil_from_days(secs / 86400u, &y, &mo, &d);

    char *p = buf;
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, usec, 6);
    memcpy(p, "+0000", 6); /* with the NUL: 32 bytes in all */
    return buf;
}

/* --- alert fields ---------------------------------------------------------- */

static const char *ind_type_name(enum kg_ind_type t)
{
    const char *n = kg_ind_type_name(t);
    return n ? n : "UNKNOWN";
}

/*
 * 1000000000 + FNV-1a-64("<TYPE>:<value>") mod 10^9: a 10-digit id in a
 * range of its own (Suricata's ET/ETPRO rules stay below 3,000,000), the
 * same on every sensor and across restarts and feed reloads, so that alert
 * consumers can suppress or count by signature_id. Collisions are possible
 * in principle (10^9 buckets); the indicator object carries the value.
 */
uint32_t kg_indicator_signature_id(const struct kg_indicator *ind)
{
    const char *type = ind_type_name(ind->type);
    const char *value = ind->value ? ind->value : "";
    /* FNV-1a is a byte-by-byte fold, so hashing "<TYPE>:" and then the value
     * from that state equals hashing the concatenation. kg_fnv1a64() starts
     * from offset_basis ^ seed, so the state is passed as a seed xor'ed with
     * the basis. No copy, no allocation. */
    const uint64_t basis = 0xcbf29ce484222325ull;
    uint64_t h = kg_fnv1a64(type, strlen(type), 0);
    h = kg_fnv1a64(":", 1, h ^ basis);
    h = kg_fnv1a64(value, strlen(value), h ^ basis);
    return (uint32_t)(1000000000u + h % 1000000000u);
}

static const char *ind_meta(const struct kg_indicator *ind, const char *key)
{
    if (!ind->meta_keys || !ind->meta_values) return NULL;
    for (uint32_t i = 0; i < ind->nmeta; i++) {
        if (ind->meta_keys[i] && ind->meta_values[i] && strcmp(ind->meta_keys[i], key) == 0)
            return ind->meta_values[i];
    }
    return NULL;
}

static int ind_severity(const struct kg_indicator *ind)
{
    if (ind->severity >= 1 && ind->severity <= 3) return ind->severity;
    /* A URL or a certificate names one malicious resource; an address or a
     * domain may be shared with benign traffic. */
    return ind->type == KG_IND_URL || ind->type == KG_IND_CERT_HASH ? 1 : 2;
}

/* IANA protocol keyword as Suricata writes it, or the number. */
const char *kg_export_proto_name(uint8_t proto, char *tmp4)
{
    switch (proto) {
    case 1:
        return "ICMP";
    case 6:
        return "TCP";
    case 17:
        return "UDP";
    case 47:
        return "GRE";
    case 58:
        return "IPv6-ICMP";
    case 132:
        return "SCTP";
    default:
        break;
    }
    char *p = tmp4;
    if (proto >= 100) *p++ = (char)('0' + proto / 100);
    if (proto >= 10) *p++ = (char)('0' + proto / 10 % 10);
    *p++ = (char)('0' + proto % 10);
    *p = '\0';
    return tmp4;
}

bool kg_export_proto_has_ports(uint8_t proto)
{
    return proto == 6 || proto == 17 || proto == 132;
}

static void append_addr(struct kg_buf *out, const char *key_lit, size_t key_len, uint8_t family,
                        const uint8_t *addr)
{
    char tmp[46];
    if (family != 4 && family != 6) return;
    kg_buf_append(out, key_lit, key_len);
    kg_json_append_cstr(out, kg_addr_str(family, addr, tmp));
}

/* "aa:bb:...": the certificate SHA1 as Suricata's tls.fingerprint, into
 * out (96 bytes). Returns its length, or 0 unless hex holds an even number
 * (2..64) of hex digits. */
static size_t format_fingerprint(const char *hex, size_t len, char *out)
{
    if (len == 0 || len % 2 || len > 64) return 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = hex[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        if (i && i % 2 == 0) out[n++] = ':';
        out[n++] = c;
    }
    return n;
}

static void append_tls(struct kg_buf *out, const struct kg_flow_info *f)
{
    char fp[96];
    const size_t sni_len = strnlen(f->sni, sizeof(f->sni));
    const size_t ja3_len = strnlen(f->ja3, sizeof(f->ja3));
    const size_t ja4_len = strnlen(f->ja4, sizeof(f->ja4));
    const size_t fp_len = format_fingerprint(f->cert_sha1, strnlen(f->cert_sha1, sizeof(f->cert_sha1)), fp);
    if (!sni_len && !ja3_len && !ja4_len && !fp_len) return;

    APPEND_LIT(out, ",\"tls\":{");
    const char *sep = "";
    if (sni_len) {
        APPEND_LIT(out, "\"sni\":");
        kg_json_append_string(out, f->sni, sni_len);
        sep = ",";
    }
    if (ja3_len) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"ja3\":{\"hash\":");
        kg_json_append_string(out, f->ja3, ja3_len);
        kg_buf_append_char(out, '}');
        sep = ",";
    }
    if (ja4_len) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"ja4\":");
        kg_json_append_string(out, f->ja4, ja4_len);
        sep = ",";
    }
    if (fp_len) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"fingerprint\":");
        kg_json_append_string(out, fp, fp_len);
        sep = ",";
    }
    /* As the tls event: the version the server chose (else the client's
     * newest), ALPN, JA3S, so an alert stands on its own. */
    const uint16_t version = f->tls_version_server > 1 ? f->tls_version_server : f->tls_version;
    if (version) {
        char tmp[32];
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"version\":");
        const char *vn = kg_export_tls_version_name(version, tmp);
        kg_json_append_string(out, vn, strlen(vn));
        sep = ",";
    }
    const size_t alpn_len = strnlen(f->tls_alpn, sizeof(f->tls_alpn));
    if (alpn_len) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"alpn\":");
        kg_json_append_string(out, f->tls_alpn, alpn_len);
        sep = ",";
    }
    const size_t ja3s_len = strnlen(f->ja3s, sizeof(f->ja3s));
    if (ja3s_len) {
        kg_buf_append_str(out, sep);
        APPEND_LIT(out, "\"ja3s\":{\"hash\":");
        kg_json_append_string(out, f->ja3s, ja3s_len);
        kg_buf_append_char(out, '}');
    }
    kg_buf_append_char(out, '}');
}

void kg_event_format_alert(struct kg_buf *out, const struct kg_alert *a)
{
    if (!a || !a->flow || !a->ind) return;
    const struct kg_flow_info *f = a->flow;
    const struct kg_indicator *ind = a->ind;
    const struct kg_flow_key *k = &f->key;
    char tmp[32];

    kg_buf_reserve(out, 1024); /* typical event size: one reallocation at most */

    APPEND_LIT(out, "{\"timestamp\":\"");
    kg_buf_append(out, kg_format_timestamp(a->ts_us, tmp), 31);
    kg_buf_append_char(out, '"');
    if (a->event_id) {
        APPEND_LIT(out, ",\"event_id\":");
        kg_json_append_cstr(out, a->event_id);
    }
    if (a->sensor_id) {
        APPEND_LIT(out, ",\"host\":");
        kg_json_append_cstr(out, a->sensor_id);
    }
    APPEND_LIT(out, ",\"flow_id\":");
    kg_json_append_u64(out, f->flow_id);
    APPEND_LIT(out, ",\"event_type\":\"alert\"");

    if (f->nvlan > 0) {
        APPEND_LIT(out, ",\"vlan\":[");
        for (unsigned i = 0; i < f->nvlan && i < KG_MAX_VLAN; i++) {
            if (i) kg_buf_append_char(out, ',');
            kg_json_append_u64(out, f->vlan[i]);
        }
        kg_buf_append_char(out, ']');
    }

    const bool ports = kg_export_proto_has_ports(k->proto);
    append_addr(out, ",\"src_ip\":", sizeof(",\"src_ip\":") - 1, k->family, k->saddr);
    if (ports) {
        APPEND_LIT(out, ",\"src_port\":");
        kg_json_append_u64(out, k->sport);
    }
    append_addr(out, ",\"dest_ip\":", sizeof(",\"dest_ip\":") - 1, k->family, k->daddr);
    if (ports) {
        APPEND_LIT(out, ",\"dest_port\":");
        kg_json_append_u64(out, k->dport);
    }
    APPEND_LIT(out, ",\"proto\":");
    kg_json_append_cstr(out, kg_export_proto_name(k->proto, tmp));
    APPEND_LIT(out, ",\"app_proto\":");
    kg_json_append_cstr(out, f->app_proto ? f->app_proto : "unknown");
    if (a->community_id) {
        APPEND_LIT(out, ",\"community_id\":");
        kg_json_append_cstr(out, a->community_id);
    }
    kg_event_append_geo(out, "src_geo", a->src_geo);
    kg_event_append_geo(out, "dest_geo", a->dest_geo);
    kg_event_append_ndpi(out, f);

    /* alert */
    const char *type = ind_type_name(ind->type);
    const char *value = ind->value ? ind->value : "";
    const char *desc = ind_meta(ind, "desc");
    const char *category = ind_meta(ind, "category");
    APPEND_LIT(out, ",\"alert\":{\"signature\":\"KAGAMI intel ");
    append_json_body(out, type, strlen(type));
    kg_buf_append_char(out, ' ');
    append_json_body(out, value, strlen(value));
    if (desc) {
        APPEND_LIT(out, " - ");
        append_json_body(out, desc, strlen(desc));
    }
    APPEND_LIT(out, "\",\"signature_id\":");
    kg_json_append_u64(out, kg_indicator_signature_id(ind));
    APPEND_LIT(out, ",\"category\":");
    kg_json_append_cstr(out, category ? category : "Threat indicator match");
    APPEND_LIT(out, ",\"severity\":");
    kg_json_append_u64(out, (uint64_t)(a->severity >= 1 && a->severity <= 3 ? a->severity : ind_severity(ind)));
    kg_buf_append_char(out, '}');

    /* indicator */
    APPEND_LIT(out, ",\"indicator\":{\"value\":");
    kg_json_append_cstr(out, value);
    APPEND_LIT(out, ",\"type\":");
    kg_json_append_cstr(out, type);
    if (a->where) {
        APPEND_LIT(out, ",\"where\":");
        kg_json_append_cstr(out, a->where);
    }
    if (a->seen) {
        APPEND_LIT(out, ",\"seen\":");
        kg_json_append_string(out, a->seen, a->seen_len);
    }
    APPEND_LIT(out, ",\"source\":");
    kg_json_append_cstr(out, ind->source);
    if (ind->nmeta > 0 && ind->meta_keys && ind->meta_values) {
        APPEND_LIT(out, ",\"meta\":{");
        bool first = true;
        for (uint32_t i = 0; i < ind->nmeta; i++) {
            if (!ind->meta_keys[i]) continue;
            if (!first) kg_buf_append_char(out, ',');
            first = false;
            kg_json_append_cstr(out, ind->meta_keys[i]);
            kg_buf_append_char(out, ':');
            kg_json_append_cstr(out, ind->meta_values[i]);
        }
        kg_buf_append_char(out, '}');
    }
    kg_buf_append_char(out, '}');

    append_tls(out, f);
    if (a->dns_rrname) {
        APPEND_LIT(out, ",\"dns\":{\"rrname\":");
        kg_json_append_string(out, a->dns_rrname, a->dns_rrname_len);
        kg_buf_append_char(out, '}');
    }
    if (a->http_hostname || a->http_url) {
        APPEND_LIT(out, ",\"http\":{");
        if (a->http_hostname) {
            APPEND_LIT(out, "\"hostname\":");
            kg_json_append_string(out, a->http_hostname, a->http_hostname_len);
        }
        if (a->http_url) {
            if (a->http_hostname) kg_buf_append_char(out, ',');
            APPEND_LIT(out, "\"url\":");
            kg_json_append_string(out, a->http_url, a->http_url_len);
        }
        kg_buf_append_char(out, '}');
    }
    APPEND_LIT(out, "}\n");
}
