/*
 * indicators/indicators_feed.c — getting a feed into a set: the "format:"
 * path prefixes, format detection from the first bytes, the chunked reader
 * every line-based format runs on (lines, or RFC 4180 records for CSV),
 * and the warnings and counts every format shares.
 *
 * A file is read in 1 MiB chunks and only complete lines are handed to the
 * format, so a feed of ten million lines is never in memory whole; STIX
 * (one JSON document) is the exception and is read whole.
 *
 * Threads: control plane, one loader per set. Ownership: the reader's state
 * lives for one load; what indicators keep is copied into the set.
 */
#include "indicators/indicators_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define KG_IND_READ_CHUNK (1u << 20)

/* --- formats and prefixes ---------------------------------------------------------- */

static const char *const format_names[KG_IND_FMT_COUNT] = {
    [KG_IND_FMT_AUTO] = "auto",
    [KG_IND_FMT_ZEEK] = "zeek",
    [KG_IND_FMT_PLAIN] = "plain",
    [KG_IND_FMT_STIX] = "stix",
    [KG_IND_FMT_MISP] = "misp",
    [KG_IND_FMT_DATASET_MD5] = "dataset-md5",
    [KG_IND_FMT_DATASET_SHA256] = "dataset-sha256",
    [KG_IND_FMT_DATASET_IPV4] = "dataset-ipv4",
    [KG_IND_FMT_DATASET_IP] = "dataset-ip",
    [KG_IND_FMT_DATASET_STRING] = "dataset-string",
    [KG_IND_FMT_SSLBL_JA3] = "sslbl-ja3",
    [KG_IND_FMT_SSLBL_CERT] = "sslbl-cert",
};

const char *kg_ind_format_name(enum kg_ind_format f)
{
    return (unsigned)f < KG_IND_FMT_COUNT ? format_names[f] : "unknown";
}

enum kg_ind_format kg_ind_format_split(const char *path, const char **file)
{
    *file = path;
    if (!path) return KG_IND_FMT_AUTO;
    const char *colon = strchr(path, ':');
    if (!colon) return KG_IND_FMT_AUTO;
    size_t n = (size_t)(colon - path);
    for (int f = KG_IND_FMT_AUTO + 1; f < KG_IND_FMT_COUNT; f++) {
        if (strlen(format_names[f]) == n && memcmp(path, format_names[f], n) == 0) {
            *file = colon + 1;
            return (enum kg_ind_format)f;
        }
    }
    return KG_IND_FMT_AUTO;
}

static const struct kg_ind_format_ops *ops_of(enum kg_ind_format f)
{
    switch (f) {
    case KG_IND_FMT_ZEEK:
        return &kg_ind_zeek_ops;
    case KG_IND_FMT_STIX:
        return &kg_ind_stix_ops;
    case KG_IND_FMT_MISP:
        return &kg_ind_misp_ops;
    default:
        return &kg_ind_plain_ops;
    }
}

/* --- small helpers --------------------------------------------------------------------- */

const char *kg_ind_printable(char *buf, size_t size, const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (k < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

void kg_ind_trim(const char **p, size_t *n)
{
    const char *s = *p;
    size_t len = *n;
    while (len && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    *p = s;
    *n = len;
}

static void vwarn(struct kg_ind_feed *f, uint32_t line, const char *fmt, va_list ap)
{
    if (f->warnings > KG_IND_MAX_WARNINGS) return;
    if (f->warnings++ == KG_IND_MAX_WARNINGS) {
        kg_log(KG_LOG_WARN, "indicators", "%s:%u: more problems, further warnings for this file suppressed",
               f->file, line);
        return;
    }
    char msg[768];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    kg_log(KG_LOG_WARN, "indicators", "%s:%u: %s", f->file, line, msg);
}

void kg_ind_feed_warn(struct kg_ind_feed *f, uint32_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(f, line, fmt, ap);
    va_end(ap);
}

void kg_ind_feed_bad(struct kg_ind_feed *f, uint32_t line, const char *fmt, ...)
{
    f->rep.bad_lines++;
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kg_ind_feed_warn(f, line, "%s; line skipped", msg);
}

int kg_ind_feed_add(struct kg_ind_feed *f, const struct kg_ind_input *in, struct kg_err *err)
{
    const struct kg_indicator *dup = NULL;
    struct kg_err e;
    int rc = kg_ind_set_insert(f->s, in, &dup, &e);
    if (rc == 0) {
        f->rep.loaded++;
    } else if (rc == 1) {
        f->rep.duplicates++;
        kg_log(KG_LOG_DEBUG, "indicators", "%s:%u: duplicate of %s:%u (%s %s), first one kept", f->file,
               in->line, dup->file, dup->line, kg_ind_type_name(dup->type), dup->value);
    } else if (rc == KG_ERR_PARSE) {
        char pb[80];
        kg_ind_feed_bad(f, in->line, "%s '%s': %s", kg_ind_type_name(in->type),
                        kg_ind_printable(pb, sizeof(pb), in->value, in->value_len), e.msg);
    } else {
        return kg_err_set(err, rc, "%s:%u: %s", f->file, in->line, e.msg);
    }
    return 0;
}

int kg_ind_csv_split(const char *p, size_t n, struct kg_ind_field *out, int max, char *scratch)
{
    int nf = 0;
    size_t i = 0, w = 0;
    for (;;) {
        const char *start;
        size_t len;
        if (i < n && p[i] == '"') {
            /* RFC 4180 2.5-2.7: a quoted field may hold commas, line breaks
             * and doubled quotes. */
            start = scratch + w;
            len = 0;
            i++;
            for (;;) {
                if (i >= n) return -1; /* unterminated */
                if (p[i] == '"') {
                    if (i + 1 < n && p[i + 1] == '"') {
                        scratch[w++] = '"';
                        len++;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                scratch[w++] = p[i++];
                len++;
            }
            if (i < n && p[i] != ',') return -1; /* text after the closing quote */
        } else {
            start = p + i;
            while (i < n && p[i] != ',') {
                if (p[i] == '"') return -1; /* a quote inside an unquoted field */
                i++;
            }
            len = (size_t)(p + i - start);
        }
        if (nf < max) out[nf] = (struct kg_ind_field){start, len};
        nf++;
        if (i >= n) return nf;
        i++; /* the comma */
    }
}

/* --- detection -------------------------------------------------------------------------- */

static bool contains_nocase(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(p + i, needle, k) == 0) return true;
    return false;
}

static bool is_hex_run(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (kg_ind_hexval(p[i]) < 0) return false;
    return true;
}

/* "YYYY-MM-DD HH:MM:SS" at p (SSLBL's dates). */
static bool is_sslbl_date(const char *p, size_t n)
{
    return n >= 19 && p[4] == '-' && p[7] == '-' && p[10] == ' ' && p[13] == ':' && p[16] == ':';
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/*
 * The format of a feed from its first bytes (docs/INDICATORS.md, "Format
 * detection"): JSON is STIX; Zeek headers, SSLBL column comments and a MISP
 * header row are recognised; the first data line decides the rest; a feed
 * with no data line at all goes by its name (".intel" is Zeek) or is plain.
 */
static enum kg_ind_format detect(const char *p, size_t n, const char *name)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i < n && p[i] == '{') return KG_IND_FMT_STIX;
    for (int lines = 0; i < n && lines < 1000; lines++) {
        const char *nl = memchr(p + i, '\n', n - i);
        const char *l = p + i;
        size_t ln = nl ? (size_t)(nl - l) : n - i;
        i += ln + 1;
        if (ln && l[ln - 1] == '\r') ln--;
        kg_ind_trim(&l, &ln);
        if (ln == 0) continue;
        if (l[0] == '#') {
            if ((ln >= 7 && memcmp(l, "#fields", 7) == 0) || (ln >= 11 && memcmp(l, "#separator ", 11) == 0))
                return KG_IND_FMT_ZEEK;
            if (contains_nocase(l, ln, "ja3_md5,firstseen")) return KG_IND_FMT_SSLBL_JA3;
            if (contains_nocase(l, ln, "listingdate,sha1,listingreason")) return KG_IND_FMT_SSLBL_CERT;
            continue;
        }
        if (memchr(l, '\t', ln) && contains_nocase(l, ln, "\tintel::")) return KG_IND_FMT_ZEEK;
        if (memchr(l, ',', ln)) {
            struct kg_ind_field f[64];
            char scratch[4096];
            int nf = ln < sizeof(scratch) ? kg_ind_csv_split(l, ln, f, 64, scratch) : -1;
            bool type = false, value = false;
            for (int k = 0; k < nf && k < 64; k++) {
                const char *fp = f[k].p;
                size_t fn = f[k].n;
                kg_ind_trim(&fp, &fn);
                type = type || (fn == 4 && strncasecmp(fp, "type", 4) == 0);
                value = value || (fn == 5 && strncasecmp(fp, "value", 5) == 0);
            }
            if (type && value) return KG_IND_FMT_MISP;
            if (ln > 33 && l[32] == ',' && is_hex_run(l, 32) && is_sslbl_date(l + 33, ln - 33))
                return KG_IND_FMT_SSLBL_JA3;
            if (ln > 61 && is_sslbl_date(l, ln) && l[19] == ',' && is_hex_run(l + 20, 40) && l[60] == ',')
                return KG_IND_FMT_SSLBL_CERT;
        }
        return KG_IND_FMT_PLAIN;
    }
    if (name && (ends_with(name, ".intel") || ends_with(name, ".zeek"))) return KG_IND_FMT_ZEEK;
    return KG_IND_FMT_PLAIN;
}

/* --- the reader ------------------------------------------------------------------------- */

struct reader {
    struct kg_ind_feed f;
    const struct kg_ind_format_ops *ops;
    void *ctx;
    uint32_t line; /* lines consumed */
    bool begun;
};

/* Base name without directory and last extension: the source of formats
 * that name none. */
static const char *base_name(struct kg_indicator_set *s, const char *file)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    return kg_ind_set_strdup(s, b, n);
}

static int reader_start(struct reader *r, struct kg_indicator_set *s, const char *file, enum kg_ind_format fmt,
                        const char *head, size_t head_len, struct kg_err *err)
{
    memset(r, 0, sizeof(*r));
    r->f.s = s;
    r->f.file = kg_ind_set_strdup(s, file, strlen(file));
    r->f.base = base_name(s, file);
    if (fmt == KG_IND_FMT_AUTO) fmt = detect(head, head_len, file);
    r->f.format = fmt;
    r->f.rep.format = fmt;
    r->ops = ops_of(fmt);
    r->ctx = r->ops->ctx_size ? kg_xcalloc(1, r->ops->ctx_size) : NULL;
    r->begun = true;
    return r->ops->begin ? r->ops->begin(&r->f, r->ctx, err) : 0;
}

/*
 * Hands the complete records of p[0..n) to the format; with `final` the
 * last one may lack its line end. *used receives the bytes consumed (the
 * rest is an incomplete record the caller keeps for the next chunk).
 */
static int reader_feed(struct reader *r, const char *p, size_t n, bool final, size_t *used, struct kg_err *err)
{
    size_t off = 0;
    while (off < n) {
        const char *start = p + off;
        size_t avail = n - off, len, adv;
        uint32_t inner = 0;
        if (!r->ops->csv) {
            const char *nl = memchr(start, '\n', avail);
            if (!nl && !final) break;
            len = nl ? (size_t)(nl - start) : avail;
            adv = nl ? len + 1 : len;
        } else {
            /* A line break inside double quotes belongs to the field
             * (RFC 4180 2.6). A doubled quote toggles twice. */
            bool quoted = false;
            size_t i = 0;
            uint32_t breaks = 0;
            for (; i < avail; i++) {
                char c = start[i];
                if (c == '"') {
                    quoted = !quoted;
                } else if (c == '\n') {
                    if (!quoted) break;
                    breaks++;
                }
            }
            if (i == avail && !final) break;
            len = i;
            adv = i < avail ? i + 1 : i;
            inner = breaks;
        }
        if (len && start[len - 1] == '\r') len--; /* CRLF files */
        r->line++;
        int rc = r->ops->record(&r->f, r->ctx, start, len, r->line, err);
        r->line += inner;
        if (rc < 0) return rc;
        off += adv;
    }
    *used = off;
    return 0;
}

static int reader_finish(struct reader *r, int rc, struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rc == 0 && r->ops->end) rc = r->ops->end(&r->f, r->ctx, err);
    if (rc == 0) {
        if (r->f.rep.skipped)
            kg_log(KG_LOG_INFO, "indicators",
                   "%s (%s): %llu indicators loaded, %llu bad lines, %llu duplicates, %llu skipped", r->f.file,
                   kg_ind_format_name(r->f.format), (unsigned long long)r->f.rep.loaded,
                   (unsigned long long)r->f.rep.bad_lines, (unsigned long long)r->f.rep.duplicates,
                   (unsigned long long)r->f.rep.skipped);
        else
            kg_log(KG_LOG_INFO, "indicators", "%s (%s): %llu indicators loaded, %llu bad lines, %llu duplicates",
                   r->f.file, kg_ind_format_name(r->f.format), (unsigned long long)r->f.rep.loaded,
                   (unsigned long long)r->f.rep.bad_lines, (unsigned long long)r->f.rep.duplicates);
    }
    if (rep) *rep = r->f.rep;
    if (r->ops->cleanup) r->ops->cleanup(r->ctx);
    free(r->ctx);
    return rc;
}

static size_t bom_len(const char *p, size_t n)
{
    return n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

int kg_ind_load_memory(struct kg_indicator_set *s, enum kg_ind_format fmt, const char *file, const char *data,
                       size_t len, struct kg_indicator_load_report *rep, struct kg_err *err)
{
    /* A UTF-8 byte order mark, as some editors write, is not part of the content. */
    size_t skip = bom_len(data, len);
    data += skip;
    len -= skip;
    struct reader r;
    int rc = reader_start(&r, s, file, fmt, data, len, err);
    if (rc == 0) {
        if (r.ops->whole) {
            rc = r.ops->whole(&r.f, data, len, err);
        } else {
            size_t used;
            rc = reader_feed(&r, data, len, true, &used, err);
        }
    }
    return reader_finish(&r, rc, rep, err);
}

int kg_indicator_set_load_buffer(struct kg_indicator_set *s, const char *name, const char *data, size_t len,
                                 struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rep) memset(rep, 0, sizeof(*rep));
    if (!s || !name || (!data && len)) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    const char *file;
    enum kg_ind_format fmt = kg_ind_format_split(name, &file);
    if (kg_ind_set_is_final(s))
        return kg_err_set(err, KG_ERR_INVAL, "%s: indicator set is already finalized", file);
    return kg_ind_load_memory(s, fmt, file, data ? data : "", len, rep, err);
}

/* Reads the rest of f into b (STIX, or a signed feed). */
static int read_rest(FILE *f, const char *path, struct kg_buf *b, struct kg_err *err)
{
    char eb[128];
    for (;;) {
        kg_buf_reserve(b, KG_IND_READ_CHUNK);
        size_t got = fread(b->data + b->len, 1, b->cap - b->len, f);
        b->len += got;
        if (got == 0) break;
    }
    if (ferror(f)) return kg_err_set(err, KG_ERR_IO, "%s: read error: %s", path, strerror_r(errno, eb, sizeof(eb)));
    return 0;
}

int kg_ind_read_file(const char *path, struct kg_buf *b, struct kg_err *err)
{
    char eb[128];
    FILE *f = fopen(path, "rb");
    if (!f) return kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror_r(errno, eb, sizeof(eb)));
    int rc = read_rest(f, path, b, err);
    fclose(f);
    return rc;
}

int kg_indicator_set_load_file(struct kg_indicator_set *s, const char *path,
                               struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rep) memset(rep, 0, sizeof(*rep));
    if (!s || !path) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    const char *file;
    enum kg_ind_format fmt = kg_ind_format_split(path, &file);
    if (kg_ind_set_is_final(s))
        return kg_err_set(err, KG_ERR_INVAL, "%s: indicator set is already finalized", file);
    char eb[128];
    FILE *f = fopen(file, "rb");
    if (!f) return kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", file, strerror_r(errno, eb, sizeof(eb)));

    /* The first chunk decides the format; line-based formats then stream:
     * complete lines are parsed, the incomplete tail moves to the front. */
    struct kg_buf b;
    kg_buf_init(&b);
    kg_buf_reserve(&b, KG_IND_READ_CHUNK);
    b.len = fread(b.data, 1, b.cap, f);
    int rc = 0;
    if (ferror(f)) rc = kg_err_set(err, KG_ERR_IO, "%s: read error: %s", file, strerror_r(errno, eb, sizeof(eb)));
    struct reader r;
    bool started = false;
    if (rc == 0) {
        size_t skip = bom_len(b.data, b.len);
        if (skip) {
            memmove(b.data, b.data + skip, b.len - skip);
            b.len -= skip;
        }
        rc = reader_start(&r, s, file, fmt, b.data, b.len, err);
        started = true;
    }
    if (rc == 0 && r.ops->whole) {
        rc = read_rest(f, file, &b, err);
        if (rc == 0) rc = r.ops->whole(&r.f, b.data, b.len, err);
    } else if (rc == 0) {
        for (;;) {
            bool eof = feof(f);
            size_t used = 0;
            rc = reader_feed(&r, b.data, b.len, eof, &used, err);
            if (rc < 0 || eof) break;
            memmove(b.data, b.data + used, b.len - used);
            b.len -= used;
            /* A line longer than the buffer grows it. */
            if (b.cap - b.len < KG_IND_READ_CHUNK / 2) kg_buf_reserve(&b, KG_IND_READ_CHUNK);
            b.len += fread(b.data + b.len, 1, b.cap - b.len, f);
            if (ferror(f)) {
                rc = kg_err_set(err, KG_ERR_IO, "%s: read error: %s", file, strerror_r(errno, eb, sizeof(eb)));
                break;
            }
        }
    }
    fclose(f);
    kg_buf_free(&b);
    if (!started) return rc;
    return reader_finish(&r, rc, rep, err);
}
