/*
 * indicators/indicators_plain.c — the one-value-per-line formats:
 *
 *   plain       blocklists: one indicator per line, its type detected from
 *               its shape (docs/INDICATORS.md, "Plain lists"), "#" and ";"
 *               comments, hosts-file lines ("0.0.0.0 evil.example"), and
 *               "ja3:", "ja4:", "cert:", "file:", "ua:" type prefixes;
 *   dataset-*   Suricata dataset files (md5, sha256, ipv4, ip, string), with
 *               an optional datarep ",reputation" column;
 *   sslbl-*     abuse.ch SSLBL CSVs: the JA3 fingerprint list
 *               "ja3_md5,Firstseen,Lastseen,Listingreason" and the
 *               certificate list "Listingdate,SHA1,Listingreason".
 *
 * Lines come from indicators_feed.c one at a time. Threads: control plane.
 * Ownership: strings kept by indicators are copied into the set.
 */
#include "indicators/indicators_int.h"

#include <stdlib.h>
#include <strings.h>

struct plain_ctx {
    const char *source;
    const char **rep_key;   /* {"reputation"}: datarep column */
    const char **sslbl_ja3_keys;  /* {"first_seen", "last_seen"} */
    const char **sslbl_cert_keys; /* {"listing_date"} */
    /* Last description stored, reused while lines repeat it (SSLBL reasons). */
    const char *desc;
    size_t desc_len;
};

static const char *intern_desc(struct kg_ind_feed *f, struct plain_ctx *c, const char *p, size_t n)
{
    if (n == 0) return "";
    if (c->desc && c->desc_len == n && memcmp(c->desc, p, n) == 0) return c->desc;
    c->desc = kg_ind_set_strdup(f->s, p, n);
    c->desc_len = n;
    return c->desc;
}

static const char **keys_of(struct kg_ind_feed *f, const char *const *names, size_t n)
{
    const char **k = kg_ind_set_alloc(f->s, n * sizeof(*k));
    for (size_t i = 0; i < n; i++)
        k[i] = kg_ind_set_strdup(f->s, names[i], strlen(names[i]));
    return k;
}

static int plain_begin(struct kg_ind_feed *f, void *ctx, struct kg_err *err)
{
    (void)err;
    struct plain_ctx *c = ctx;
    bool sslbl = f->format == KG_IND_FMT_SSLBL_JA3 || f->format == KG_IND_FMT_SSLBL_CERT;
    c->source = sslbl ? kg_ind_set_strdup(f->s, "sslbl", 5) : f->base;
    static const char *const rep[] = {"reputation"}, *const ja3[] = {"first_seen", "last_seen"},
                             *const cert[] = {"listing_date"};
    c->rep_key = keys_of(f, rep, 1);
    c->sslbl_ja3_keys = keys_of(f, ja3, 2);
    c->sslbl_cert_keys = keys_of(f, cert, 1);
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (kg_ind_hexval(p[i]) < 0) return false;
    return true;
}

/* The type of a plain-list value, from its shape. A 32-hex-digit value is
 * an MD5 file hash: JA3 lists say so with "ja3:" (or use the SSLBL or Zeek
 * formats). Values that fit no shape are tried as domains, whose check
 * then reports what is wrong. */
static enum kg_ind_type guess_type(const char *p, size_t n)
{
    if (kg_ind_is_ja4(p, n)) return KG_IND_JA4;
    if (n >= 3 && memmem(p, n, "://", 3)) return KG_IND_URL;
    if ((n == 32 || n == 40 || n == 64) && all_hex(p, n)) return KG_IND_FILE_HASH;
    const char *slash = memchr(p, '/', n);
    size_t an = slash ? (size_t)(slash - p) : n;
    bool v4 = an > 0, v6 = an > 0 && memchr(p, ':', an) != NULL;
    for (size_t i = 0; i < an; i++) {
        char c = p[i];
        v4 = v4 && ((c >= '0' && c <= '9') || c == '.');
        v6 = v6 && (kg_ind_hexval(c) >= 0 || c == ':' || c == '.');
    }
    /* An address with "/" and a length is a network; with anything else
     * after the "/" ("192.0.2.7/x.php", "192.0.2.7:8080/"), a URL whose
     * host is an address. */
    bool len_after = slash && n - an >= 2 && n - an <= 4;
    for (size_t i = an + 1; len_after && i < n; i++)
        len_after = p[i] >= '0' && p[i] <= '9';
    if ((v4 || v6) && (!slash || len_after)) return slash ? KG_IND_SUBNET : KG_IND_ADDR;
    if (slash) return KG_IND_URL; /* host/path without a scheme */
    return KG_IND_DOMAIN;
}

static const struct {
    const char *prefix;
    enum kg_ind_type type;
} line_prefixes[] = {
    {"ja3:", KG_IND_JA3}, {"ja4:", KG_IND_JA4}, {"cert:", KG_IND_CERT_HASH},
    {"file:", KG_IND_FILE_HASH}, {"ua:", KG_IND_SOFTWARE},
};

static bool is_hosts_address(const char *p, size_t n)
{
    return (n == 7 && memcmp(p, "0.0.0.0", 7) == 0) || (n == 9 && memcmp(p, "127.0.0.1", 9) == 0);
}

static int plain_line(struct kg_ind_feed *f, struct plain_ctx *c, const char *p, size_t n, uint32_t line,
                      struct kg_err *err)
{
    struct kg_ind_input in = {.source = c->source, .file = f->file, .line = line};
    for (size_t i = 0; i < KG_ARRAY_LEN(line_prefixes); i++) {
        size_t k = strlen(line_prefixes[i].prefix);
        if (n > k && strncasecmp(p, line_prefixes[i].prefix, k) == 0) {
            in.type = line_prefixes[i].type;
            p += k;
            n -= k;
            kg_ind_trim(&p, &n);
            if (in.type == KG_IND_SOFTWARE) {
                /* A User-Agent has blanks of its own: the whole rest is the value. */
                in.value = p;
                in.value_len = n;
                return kg_ind_feed_add(f, &in, err);
            }
            goto token;
        }
    }
    in.type = KG_IND_TYPE_COUNT; /* to be guessed */
token:;
    size_t tn = 0;
    while (tn < n && !is_blank(p[tn]))
        tn++;
    const char *rest = p + tn;
    size_t rn = n - tn;
    kg_ind_trim(&rest, &rn);
    if (in.type == KG_IND_TYPE_COUNT && rn && is_hosts_address(p, tn) && rest[0] != '#' && rest[0] != ';') {
        /* hosts(5) line: the name is the indicator. */
        p = rest;
        tn = 0;
        while (tn < rn && !is_blank(p[tn]))
            tn++;
        rest = p + tn;
        rn -= tn;
        kg_ind_trim(&rest, &rn);
        in.type = KG_IND_DOMAIN;
    }
    if (rn) {
        if (rest[0] != '#' && rest[0] != ';') {
            char pb[80];
            kg_ind_feed_bad(f, line, "unexpected text after the value: '%s'",
                            kg_ind_printable(pb, sizeof(pb), rest, rn));
            return 0;
        }
        /* A trailing comment describes the indicator ("1.2.3.0/24 ; SBL123"). */
        rest++;
        rn--;
        kg_ind_trim(&rest, &rn);
        in.desc = kg_ind_set_strdup(f->s, rest, rn);
    }
    in.value = p;
    in.value_len = tn;
    if (in.type == KG_IND_TYPE_COUNT) in.type = guess_type(p, tn);
    return kg_ind_feed_add(f, &in, err);
}

/* RFC 4648 section 4 base64, padding optional; false on anything else. */
static bool base64_decode(const char *p, size_t n, char *out, size_t cap, size_t *out_len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0, i = 0;
    for (; i < n && p[i] != '='; i++) {
        char ch = p[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '+'              ? 62
                : ch == '/'              ? 63
                                         : -1;
        if (v < 0) return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k == cap) return false;
            out[k++] = (char)(acc >> bits);
        }
    }
    for (; i < n; i++)
        if (p[i] != '=') return false;
    if (bits >= 6) return false; /* a lone 6-bit group is no byte */
    *out_len = k;
    return true;
}

/* A decoded dataset string is used when it is a DNS name: printable, with a
 * dot, no blanks, no '/', ':' or '@'. The rest (user agents, paths, ...)
 * has no Kagami observation to match and is skipped, counted. */
static bool looks_like_domain(const char *p, size_t n)
{
    if (n < 3 || n > KG_IND_DOMAIN_MAX || !memchr(p, '.', n)) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '.' || ch == '_' || (ch == '*' && i == 0);
        if (!ok) return false;
    }
    return true;
}

static int dataset_line(struct kg_ind_feed *f, struct plain_ctx *c, const char *p, size_t n, uint32_t line,
                        struct kg_err *err)
{
    char pb[80];
    struct kg_ind_input in = {.source = c->source, .file = f->file, .line = line};
    /* datarep files: "value,reputation". */
    const char *comma = memchr(p, ',', n);
    const char *repv = NULL;
    if (comma) {
        const char *r = comma + 1;
        size_t rn = (size_t)(p + n - r);
        kg_ind_trim(&r, &rn);
        bool num = rn > 0;
        for (size_t i = 0; i < rn; i++)
            num = num && r[i] >= '0' && r[i] <= '9';
        if (!num) {
            kg_ind_feed_bad(f, line, "reputation '%s' is not a number", kg_ind_printable(pb, sizeof(pb), r, rn));
            return 0;
        }
        repv = kg_ind_set_strdup(f->s, r, rn);
        n = (size_t)(comma - p);
        kg_ind_trim(&p, &n);
    }
    in.value = p;
    in.value_len = n;
    if (repv) {
        in.nmeta = 1;
        in.meta_keys = c->rep_key;
        in.meta_keys_shared = true;
        in.meta_values = &repv;
    }
    switch (f->format) {
    case KG_IND_FMT_DATASET_MD5:
    case KG_IND_FMT_DATASET_SHA256: {
        size_t want = f->format == KG_IND_FMT_DATASET_MD5 ? 32 : 64;
        if (n != want || !all_hex(p, n)) {
            kg_ind_feed_bad(f, line, "'%s' is not %s (%zu hex digits)", kg_ind_printable(pb, sizeof(pb), p, n),
                            want == 32 ? "an MD5" : "a SHA256", want);
            return 0;
        }
        in.type = KG_IND_FILE_HASH;
        break;
    }
    case KG_IND_FMT_DATASET_IPV4:
        if (memchr(p, ':', n)) {
            kg_ind_feed_bad(f, line, "'%s' is not an IPv4 address", kg_ind_printable(pb, sizeof(pb), p, n));
            return 0;
        }
        in.type = KG_IND_ADDR;
        break;
    case KG_IND_FMT_DATASET_IP:
        in.type = KG_IND_ADDR;
        break;
    default: { /* DATASET_STRING */
        char dec[KG_IND_DOMAIN_MAX + 8];
        size_t dn;
        if (!base64_decode(p, n, dec, sizeof(dec), &dn)) {
            if (n * 3 / 4 > sizeof(dec)) {
                f->rep.skipped++; /* too long to be a name */
                return 0;
            }
            kg_ind_feed_bad(f, line, "'%s' is not base64", kg_ind_printable(pb, sizeof(pb), p, n));
            return 0;
        }
        if (!looks_like_domain(dec, dn)) {
            f->rep.skipped++;
            kg_log(KG_LOG_DEBUG, "indicators", "%s:%u: dataset string '%s' is not a domain name; skipped", f->file,
                   line, kg_ind_printable(pb, sizeof(pb), dec, dn));
            return 0;
        }
        in.type = KG_IND_DOMAIN;
        in.value = kg_ind_set_strdup(f->s, dec, dn);
        in.value_len = dn;
        break;
    }
    }
    return kg_ind_feed_add(f, &in, err);
}

static int sslbl_line(struct kg_ind_feed *f, struct plain_ctx *c, const char *p, size_t n, uint32_t line,
                      struct kg_err *err)
{
    struct kg_ind_field fl[5];
    char scratch[1024];
    bool ja3 = f->format == KG_IND_FMT_SSLBL_JA3;
    int want = ja3 ? 4 : 3;
    int nf = n < sizeof(scratch) ? kg_ind_csv_split(p, n, fl, 5, scratch) : -1;
    if (nf < 0) {
        kg_ind_feed_bad(f, line, "malformed CSV line");
        return 0;
    }
    for (int i = 0; i < nf && i < 5; i++)
        kg_ind_trim(&fl[i].p, &fl[i].n);
    /* The column header, when a copy of the list has lost its '#'. */
    const char *hdr = ja3 ? "ja3_md5" : "listingdate";
    if (fl[0].n == strlen(hdr) && strncasecmp(fl[0].p, hdr, fl[0].n) == 0) return 0;
    if (nf != want) {
        kg_ind_feed_bad(f, line, "expected %d fields (%s), found %d", want,
                        ja3 ? "ja3_md5,Firstseen,Lastseen,Listingreason" : "Listingdate,SHA1,Listingreason", nf);
        return 0;
    }
    struct kg_ind_field v = ja3 ? fl[0] : fl[1], reason = fl[want - 1];
    const char *vals[2];
    struct kg_ind_input in = {
        .type = ja3 ? KG_IND_JA3 : KG_IND_CERT_HASH,
        .value = v.p,
        .value_len = v.n,
        .source = c->source,
        .desc = intern_desc(f, c, reason.p, reason.n),
        .file = f->file,
        .line = line,
        .meta_keys = ja3 ? c->sslbl_ja3_keys : c->sslbl_cert_keys,
        .meta_keys_shared = true,
        .meta_values = vals,
    };
    if (!ja3 && v.n != 40) {
        /* The list is of SHA1 fingerprints; a SHA256 here is a wrong file. */
        char pb[80];
        kg_ind_feed_bad(f, line, "CERT_HASH '%s': hash must be 40 hex digits (SHA1)",
                        kg_ind_printable(pb, sizeof(pb), v.p, v.n));
        return 0;
    }
    if (ja3) {
        vals[0] = kg_ind_set_strdup(f->s, fl[1].p, fl[1].n);
        vals[1] = kg_ind_set_strdup(f->s, fl[2].p, fl[2].n);
        in.nmeta = 2;
    } else {
        vals[0] = kg_ind_set_strdup(f->s, fl[0].p, fl[0].n);
        in.nmeta = 1;
    }
    return kg_ind_feed_add(f, &in, err);
}

static int plain_record(struct kg_ind_feed *f, void *ctx, const char *p, size_t n, uint32_t line,
                        struct kg_err *err)
{
    struct plain_ctx *c = ctx;
    kg_ind_trim(&p, &n);
    if (n == 0 || p[0] == '#') return 0;
    if (memchr(p, '\0', n)) {
        kg_ind_feed_bad(f, line, "NUL byte in line");
        return 0;
    }
    switch (f->format) {
    case KG_IND_FMT_PLAIN:
        if (p[0] == ';') return 0; /* Spamhaus-style comment */
        return plain_line(f, c, p, n, line, err);
    case KG_IND_FMT_SSLBL_JA3:
    case KG_IND_FMT_SSLBL_CERT:
        return sslbl_line(f, c, p, n, line, err);
    default:
        return dataset_line(f, c, p, n, line, err);
    }
}

const struct kg_ind_format_ops kg_ind_plain_ops = {
    .ctx_size = sizeof(struct plain_ctx),
    .begin = plain_begin,
    .record = plain_record,
};
