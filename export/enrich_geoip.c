/*
 * export/enrich_geoip.c — country and autonomous system of public
 * addresses, from MaxMind DB files (libmaxminddb): GeoLite2/GeoIP2
 * Country or City for the country, GeoLite2-ASN for the AS. Events carry
 * the result as src_geo/dest_geo.
 *
 * Threads: opened once on the control plane; kg_geoip_lookup() then runs
 * on any number of worker threads at once. libmaxminddb lookups only read
 * the memory-mapped file and the MMDB_s handle, so no lock is needed.
 * Ownership: struct kg_geoip owns both MMDB_s handles (and their mappings)
 * until kg_geoip_free(). A lookup allocates nothing.
 *
 * A sensor must keep running without enrichment: a database that is
 * missing, unreadable or corrupt turns that part off with a warning, and
 * the handle stays usable.
 */
#include "export/export.h"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct kg_geoip {
    MMDB_s country;
    MMDB_s asn;
    bool have_country;
    bool have_asn;
};

/* Opens one database; on failure logs, notes the reason in err (first
 * failure wins) and returns false. */
static bool open_db(MMDB_s *db, const char *path, const char *what, struct kg_err *err)
{
    if (path == NULL || *path == '\0') return false;
    int st = MMDB_open(path, MMDB_MODE_MMAP, db);
    if (st != MMDB_SUCCESS) {
        /* MMDB_FILE_OPEN_ERROR leaves the reason in errno. */
        const char *why = st == MMDB_IO_ERROR || st == MMDB_FILE_OPEN_ERROR ? "cannot open or read the file"
                                                                            : MMDB_strerror(st);
        kg_log(KG_LOG_WARN, "export/geoip", "%s database %s: %s; %s lookups are off", what, path, why, what);
        if (err && err->msg[0] == '\0')
            kg_err_set(err, KG_ERR_IO, "%s database %s: %s; %s lookups are off", what, path, why, what);
        return false;
    }
    kg_log(KG_LOG_INFO, "export/geoip", "%s database %s: %s, built %llu", what, path,
           db->metadata.database_type ? db->metadata.database_type : "?",
           (unsigned long long)db->metadata.build_epoch);
    return true;
}

struct kg_geoip *kg_geoip_open(const char *country_db, const char *asn_db, struct kg_err *err)
{
    struct kg_geoip *g = kg_xcalloc(1, sizeof(*g));
    if (err) err->msg[0] = '\0';
    g->have_country = open_db(&g->country, country_db, "country", err);
    g->have_asn = open_db(&g->asn, asn_db, "ASN", err);
    return g;
}

bool kg_geoip_has_country(const struct kg_geoip *g)
{
    return g && g->have_country;
}

bool kg_geoip_has_asn(const struct kg_geoip *g)
{
    return g && g->have_asn;
}

void kg_geoip_free(struct kg_geoip *g)
{
    if (g == NULL) return;
    if (g->have_country) MMDB_close(&g->country);
    if (g->have_asn) MMDB_close(&g->asn);
    free(g);
}

/* --- which addresses ------------------------------------------------------------ */

struct prefix4 {
    uint32_t net;
    uint8_t len;
};

/* RFC 6890 (special-purpose registry) and friends: not globally routable,
 * or nothing a country/AS can be said of. */
static const struct prefix4 v4_special[] = {
    {0x00000000u, 8},  /* 0.0.0.0/8 "this network", RFC 791 */
    {0x0A000000u, 8},  /* 10/8 private, RFC 1918 */
    {0x64400000u, 10}, /* 100.64/10 shared address space (CGNAT), RFC 6598 */
    {0x7F000000u, 8},  /* 127/8 loopback */
    {0xA9FE0000u, 16}, /* 169.254/16 link-local, RFC 3927 */
    {0xAC100000u, 12}, /* 172.16/12 private */
    {0xC0000000u, 24}, /* 192.0.0/24 IETF protocol assignments, RFC 6890 */
    {0xC0000200u, 24}, /* 192.0.2/24 TEST-NET-1, RFC 5737 */
    {0xC0A80000u, 16}, /* 192.168/16 private */
    {0xC6120000u, 15}, /* 198.18/15 benchmarking, RFC 2544 */
    {0xC6336400u, 24}, /* 198.51.100/24 TEST-NET-2 */
    {0xCB007100u, 24}, /* 203.0.113/24 TEST-NET-3 */
    {0xE0000000u, 4},  /* 224/4 multicast */
    {0xF0000000u, 4},  /* 240/4 reserved, 255.255.255.255 broadcast */
};

static bool v4_is_public(const uint8_t *a)
{
    const uint32_t v = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) | ((uint32_t)a[2] << 8) | a[3];
    for (size_t i = 0; i < KG_ARRAY_LEN(v4_special); i++) {
        const uint32_t mask = 0xFFFFFFFFu << (32 - v4_special[i].len);
        if ((v & mask) == v4_special[i].net) return false;
    }
    return true;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *p, unsigned bits)
{
    const unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, p, bytes) != 0) return false;
    if (rest == 0) return true;
    const uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[bytes] & mask) == (p[bytes] & mask);
}

/* IPv6 addresses that carry an IPv4 address judged as such: IPv4-mapped
 * ::ffff:0:0/96 (RFC 4291 section 2.5.5.2) and the NAT64 well-known prefix
 * 64:ff9b::/96 (RFC 6052). Returns a pointer to the 4 bytes, or NULL. */
static const uint8_t *v6_embedded_v4(const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xFF, 0x9B};
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0) return a + 12;
    return NULL;
}

static bool v6_is_public(const uint8_t *a)
{
    /* Global unicast is 2000::/3 (RFC 4291 section 2.4; IANA); everything
     * outside it (::, ::1, fc00::/7, fe80::/10, ff00::/8, unassigned) is
     * not looked up. Inside it, the benchmarking and documentation ranges. */
    static const uint8_t bench[] = {0x20, 0x01, 0x00, 0x02, 0x00, 0x00}; /* 2001:2::/48, RFC 5180 */
    static const uint8_t doc[] = {0x20, 0x01, 0x0D, 0xB8};               /* 2001:db8::/32, RFC 3849 */
    static const uint8_t doc2[] = {0x3F, 0xFF, 0x00};                    /* 3fff::/20, RFC 9637 */
    if ((a[0] & 0xE0) != 0x20) return false;
    return !prefix_eq(a, bench, 48) && !prefix_eq(a, doc, 32) && !prefix_eq(a, doc2, 20);
}

bool kg_geoip_is_public(uint8_t family, const uint8_t *addr)
{
    if (addr == NULL) return false;
    if (family == 4) return v4_is_public(addr);
    if (family != 6) return false;
    const uint8_t *v4 = v6_embedded_v4(addr);
    return v4 ? v4_is_public(v4) : v6_is_public(addr);
}

/* --- lookups ------------------------------------------------------------------------ */

/* Copies a UTF-8 string of n bytes into out (cap), cut at a character
 * boundary when it does not fit; NUL bytes end it. */
static void copy_utf8(char *out, size_t cap, const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    if (nul) n = (size_t)(nul - s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

static bool lookup_entry(const MMDB_s *db, const struct sockaddr *sa, MMDB_lookup_result_s *res)
{
    int mmdb = MMDB_SUCCESS;
    *res = MMDB_lookup_sockaddr(db, sa, &mmdb);
    /* An error (a corrupt tree, an IPv6 address in an IPv4-only database)
     * is "not found": never logged per lookup. */
    return mmdb == MMDB_SUCCESS && res->found_entry;
}

/* country.iso_code, else registered_country.iso_code (set alone for some
 * ranges, e.g. anycast or satellite providers). Two upper-case letters. */
static void get_country(MMDB_entry_s *e, char out[3])
{
    static const char *const paths[2][3] = {{"country", "iso_code", NULL},
                                            {"registered_country", "iso_code", NULL}};
    for (int i = 0; i < 2; i++) {
        MMDB_entry_data_s d;
        if (MMDB_aget_value(e, &d, paths[i]) != MMDB_SUCCESS || !d.has_data ||
            d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
            continue;
        const char a = d.utf8_string[0], b = d.utf8_string[1];
        if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z') continue;
        out[0] = a;
        out[1] = b;
        out[2] = '\0';
        return;
    }
}

static void get_asn(MMDB_entry_s *e, struct kg_geo *out)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, "autonomous_system_number", NULL) == MMDB_SUCCESS && d.has_data) {
        if (d.type == MMDB_DATA_TYPE_UINT32)
            out->asn = d.uint32;
        else if (d.type == MMDB_DATA_TYPE_UINT16)
            out->asn = d.uint16;
        else if (d.type == MMDB_DATA_TYPE_UINT64 && d.uint64 <= UINT32_MAX)
            out->asn = (uint32_t)d.uint64;
    }
    if (MMDB_get_value(e, &d, "autonomous_system_organization", NULL) == MMDB_SUCCESS && d.has_data &&
        d.type == MMDB_DATA_TYPE_UTF8_STRING)
        copy_utf8(out->as_org, sizeof(out->as_org), d.utf8_string, d.data_size);
}

int kg_geoip_lookup(const struct kg_geoip *g, uint8_t family, const uint8_t *addr, struct kg_geo *out)
{
    if (out) memset(out, 0, sizeof(*out));
    if (g == NULL || addr == NULL || out == NULL || (family != 4 && family != 6)) return KG_ERR_INVAL;
    if (!g->have_country && !g->have_asn) return 0;

    const uint8_t *v4 = family == 4 ? addr : v6_embedded_v4(addr);
    if (v4 ? !v4_is_public(v4) : !v6_is_public(addr)) return 0;

    /* Both families on the stack; an embedded IPv4 address is looked up as
     * IPv4 (where the databases keep IPv4 data). */
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    if (v4) {
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, v4, 4);
        sa = (const struct sockaddr *)&sin;
    } else {
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        memcpy(&sin6.sin6_addr, addr, 16);
        sa = (const struct sockaddr *)&sin6;
    }

    MMDB_lookup_result_s res;
    if (g->have_country && lookup_entry(&g->country, sa, &res)) get_country(&res.entry, out->country);
    if (g->have_asn && lookup_entry(&g->asn, sa, &res)) get_asn(&res.entry, out);
    return out->country[0] || out->asn || out->as_org[0] ? 1 : 0;
}
