/*
 * indicators/indicators_zeek.c — reader for Zeek Intel framework feeds
 * (https://docs.zeek.org/en/master/frameworks/intel.html): tab-separated
 * text whose "#fields" header names the columns, e.g.
 *
 *     #fields<TAB>indicator<TAB>indicator_type<TAB>meta.source
 *     198.51.100.7<TAB>Intel::ADDR<TAB>abuse-feed
 *
 * The reader takes bytes (kg_indicator_set_load_buffer), so it can be tested
 * and fuzzed without files; kg_indicator_set_load_file reads a file into
 * memory and hands it over. A malformed line is skipped, counted and logged
 * as "file:line: message"; only an unreadable file or a missing/unusable
 * #fields header fails the load.
 *
 * Threads: runs on the control plane, on a set that is not finalized (the
 * set has one writer). Ownership: everything the reader keeps (file name,
 * column names, meta values) is copied into the set's storage.
 */
#include "indicators/indicators_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Columns per line; Zeek's own intel files have six or seven. */
#define KG_ZEEK_MAX_COLS 64
/* Per file, then one "suppressed" line: a feed of garbage must not flood the log. */
#define KG_ZEEK_MAX_WARNINGS 100

struct field {
    const char *p;
    size_t n;
};

struct zeek_reader {
    struct kg_indicator_set *s;
    const char *file; /* set-owned copy of the name */
    struct kg_indicator_load_report rep;
    char sep;
    unsigned warnings;

    /* From the latest #fields header. */
    bool have_fields;
    uint32_t ncols;
    int col_value, col_type, col_source, col_severity; /* -1 when absent */
    uint32_t nextra;                                   /* other meta.* columns */
    uint32_t extra_col[KG_ZEEK_MAX_COLS];
    const char **extra_keys; /* set-owned, names without "meta." */

    /* Last string copied into the set for each column, so the value most
     * feeds repeat on every line (source, description) is stored once. */
    const char *cache[KG_ZEEK_MAX_COLS];
    size_t cache_len[KG_ZEEK_MAX_COLS];
};

static bool field_is(struct field f, const char *s)
{
    size_t n = strlen(s);
    return f.n == n && memcmp(f.p, s, n) == 0;
}

/* Zeek's markers for an unset and an empty field (#unset_field, #empty_field). */
static bool field_absent(struct field f)
{
    return f.n == 0 || field_is(f, "-") || field_is(f, "(empty)");
}

/* Copies up to 64 bytes of untrusted input for a log line, replacing
 * anything unprintable so a feed cannot inject terminal escapes. */
static const char *printable(char *buf, size_t size, const char *p, size_t n)
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

static void warn(struct zeek_reader *r, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(struct zeek_reader *r, uint32_t line, const char *fmt, ...)
{
    if (r->warnings > KG_ZEEK_MAX_WARNINGS) return;
    if (r->warnings++ == KG_ZEEK_MAX_WARNINGS) {
        kg_log(KG_LOG_WARN, "indicators", "%s:%u: more problems, further warnings for this file suppressed",
               r->file, line);
        return;
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kg_log(KG_LOG_WARN, "indicators", "%s:%u: %s", r->file, line, msg);
}

/* Splits p[0..n) on sep into at most max fields; returns the number of
 * fields the line has (which may exceed max: only the first max are stored). */
static uint32_t split(const char *p, size_t n, char sep, struct field *out, uint32_t max)
{
    uint32_t nf = 0;
    const char *end = p + n;
    for (;;) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        const char *fe = q ? q : end;
        if (nf < max) out[nf] = (struct field){p, (size_t)(fe - p)};
        nf++;
        if (!q) return nf;
        p = q + 1;
    }
}

static const char *intern(struct zeek_reader *r, uint32_t col, struct field f)
{
    if (r->cache[col] && r->cache_len[col] == f.n && memcmp(r->cache[col], f.p, f.n) == 0)
        return r->cache[col];
    r->cache[col] = kg_ind_set_strdup(r->s, f.p, f.n);
    r->cache_len[col] = f.n;
    return r->cache[col];
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "#separator \x09" (Zeek's form) or "#separator <one byte>". */
static int parse_separator(struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    const char *v = p + 11; /* after "#separator " */
    size_t vn = n - 11;
    int c = -1;
    if (vn == 4 && v[0] == '\\' && (v[1] == 'x' || v[1] == 'X')) {
        int hi = hexdigit(v[2]), lo = hexdigit(v[3]);
        if (hi >= 0 && lo >= 0) c = hi << 4 | lo;
    } else if (vn == 1) {
        c = (unsigned char)v[0];
    }
    if (c <= 0 || c == '\n' || c == '\r' || c == '#')
        return kg_err_set(err, KG_ERR_PARSE,
                          "%s:%u: unusable #separator (expected e.g. \"#separator \\x09\")", r->file, line);
    r->sep = (char)c;
    return 0;
}

static int parse_fields(struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    if (n > 7 && p[7] != r->sep)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header is not separated by %s", r->file, line,
                          r->sep == '\t' ? "tabs" : "the #separator character");
    struct field f[KG_ZEEK_MAX_COLS + 1];
    uint32_t nf = n > 7 ? split(p + 8, n - 8, r->sep, f, KG_ZEEK_MAX_COLS + 1) : 0;
    if (nf == 0)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header names no columns", r->file, line);
    if (nf > KG_ZEEK_MAX_COLS)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header has more than %d columns", r->file, line,
                          KG_ZEEK_MAX_COLS);

    r->have_fields = false;
    r->col_value = r->col_type = r->col_source = r->col_severity = -1;
    r->nextra = 0;
    memset(r->cache, 0, sizeof(r->cache));
    const char *names[KG_ZEEK_MAX_COLS];
    char pb[80];
    for (uint32_t i = 0; i < nf; i++) {
        if (f[i].n == 0)
            return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields column %u has no name", r->file, line,
                              i + 1);
        for (uint32_t j = 0; j < i; j++) {
            if (f[j].n == f[i].n && memcmp(f[j].p, f[i].p, f[i].n) == 0)
                return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields lists column '%s' twice", r->file, line,
                                  printable(pb, sizeof(pb), f[i].p, f[i].n));
        }
        if (field_is(f[i], "indicator")) {
            r->col_value = (int)i;
        } else if (field_is(f[i], "indicator_type")) {
            r->col_type = (int)i;
        } else if (field_is(f[i], "meta.source")) {
            r->col_source = (int)i;
        } else if (field_is(f[i], "meta.severity")) {
            r->col_severity = (int)i;
        } else if (f[i].n > 5 && memcmp(f[i].p, "meta.", 5) == 0) {
            names[r->nextra] = kg_ind_set_strdup(r->s, f[i].p + 5, f[i].n - 5);
            r->extra_col[r->nextra++] = i;
        } else {
            warn(r, line, "column '%s' ignored (not indicator, indicator_type or meta.*)",
                 printable(pb, sizeof(pb), f[i].p, f[i].n));
        }
    }
    if (r->col_value < 0 || r->col_type < 0)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header lacks the '%s' column", r->file, line,
                          r->col_value < 0 ? "indicator" : "indicator_type");
    r->extra_keys = NULL;
    if (r->nextra) {
        r->extra_keys = kg_ind_set_alloc(r->s, r->nextra * sizeof(*r->extra_keys));
        memcpy(r->extra_keys, names, r->nextra * sizeof(*names));
    }
    r->ncols = nf;
    r->have_fields = true;
    return 0;
}

/* Zeek's Intel::Type names. The ones Kagami has no observation for are
 * recognised so the warning can say "not supported" rather than "unknown". */
static int parse_type(struct field f, bool *known_unsupported)
{
    static const struct {
        const char *name;
        int type;
    } types[] = {
        {"Intel::ADDR", KG_IND_ADDR},
        {"Intel::SUBNET", KG_IND_SUBNET},
        {"Intel::DOMAIN", KG_IND_DOMAIN},
        {"Intel::URL", KG_IND_URL},
        {"Intel::CERT_HASH", KG_IND_CERT_HASH},
        {"Intel::JA3", KG_IND_JA3},
        {"Intel::EMAIL", -1},
        {"Intel::SOFTWARE", -1},
        {"Intel::USER_NAME", -1},
        {"Intel::FILE_HASH", -1},
        {"Intel::FILE_NAME", -1},
        {"Intel::PUBKEY_HASH", -1},
    };
    *known_unsupported = false;
    for (size_t i = 0; i < KG_ARRAY_LEN(types); i++) {
        if (field_is(f, types[i].name)) {
            *known_unsupported = types[i].type < 0;
            return types[i].type;
        }
    }
    return -1;
}

static void bad_line(struct zeek_reader *r, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_line(struct zeek_reader *r, uint32_t line, const char *fmt, ...)
{
    r->rep.bad_lines++;
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warn(r, line, "%s; line skipped", msg);
}

static int parse_data(struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    char pb[80];
    if (!r->have_fields)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: data line before any #fields header", r->file, line);
    if (memchr(p, '\0', n)) {
        bad_line(r, line, "NUL byte in line");
        return 0;
    }
    struct field f[KG_ZEEK_MAX_COLS];
    uint32_t nf = split(p, n, r->sep, f, KG_ZEEK_MAX_COLS);
    if (nf != r->ncols) {
        bad_line(r, line, "expected %u fields, found %u", r->ncols, nf);
        return 0;
    }
    bool unsupported;
    struct field ft = f[r->col_type];
    int type = parse_type(ft, &unsupported);
    if (type < 0) {
        bad_line(r, line, "%s indicator type '%s'", unsupported ? "unsupported" : "unknown",
                 printable(pb, sizeof(pb), ft.p, ft.n));
        return 0;
    }
    struct field fv = f[r->col_value];
    if (field_absent(fv)) {
        bad_line(r, line, "empty indicator");
        return 0;
    }

    struct kg_ind_input in = {
        .type = (enum kg_ind_type)type,
        .value = fv.p,
        .value_len = fv.n,
        .source = "",
        .file = r->file,
        .line = line,
    };
    if (r->col_source >= 0 && !field_absent(f[r->col_source]))
        in.source = intern(r, (uint32_t)r->col_source, f[r->col_source]);
    if (r->col_severity >= 0 && !field_absent(f[r->col_severity])) {
        struct field fs = f[r->col_severity];
        if (fs.n == 1 && fs.p[0] >= '1' && fs.p[0] <= '3') {
            in.severity = fs.p[0] - '0';
        } else {
            /* The indicator is still worth loading; it just has no severity. */
            warn(r, line, "meta.severity '%s' is not 1, 2 or 3; ignored",
                 printable(pb, sizeof(pb), fs.p, fs.n));
        }
    }
    const char *keys[KG_ZEEK_MAX_COLS], *vals[KG_ZEEK_MAX_COLS];
    for (uint32_t i = 0; i < r->nextra; i++) {
        struct field fm = f[r->extra_col[i]];
        if (field_absent(fm)) continue;
        keys[in.nmeta] = r->extra_keys[i];
        vals[in.nmeta++] = intern(r, r->extra_col[i], fm);
    }
    if (in.nmeta) {
        /* With every meta column present the header's name array is the
         * key array: shared by all those indicators instead of copied. */
        in.meta_keys_shared = in.nmeta == r->nextra;
        in.meta_keys = in.meta_keys_shared ? r->extra_keys : keys;
        in.meta_values = vals;
    }

    const struct kg_indicator *dup = NULL;
    struct kg_err e;
    int rc = kg_ind_set_insert(r->s, &in, &dup, &e);
    if (rc == 0) {
        r->rep.loaded++;
    } else if (rc == 1) {
        r->rep.duplicates++;
        kg_log(KG_LOG_DEBUG, "indicators", "%s:%u: duplicate of %s:%u (%s %s), first one kept", r->file, line,
               dup->file, dup->line, kg_ind_type_name(dup->type), dup->value);
    } else if (rc == KG_ERR_PARSE) {
        bad_line(r, line, "%s '%s': %s", kg_ind_type_name(in.type), printable(pb, sizeof(pb), fv.p, fv.n),
                 e.msg);
    } else {
        return kg_err_set(err, rc, "%s:%u: %s", r->file, line, e.msg);
    }
    return 0;
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t') return false;
    return true;
}

static int parse_line(struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    if (blank(p, n)) return 0;
    if (p[0] != '#') return parse_data(r, p, n, line, err);
    /* "#fields" followed by the separator is the header; "#fields" followed
     * by a space is a header written with the wrong separator (an error, not
     * a comment, or every line after it would fail). */
    if (n >= 7 && memcmp(p, "#fields", 7) == 0 && (n == 7 || p[7] == r->sep || p[7] == ' ' || p[7] == '\t'))
        return parse_fields(r, p, n, line, err);
    if (n > 11 && memcmp(p, "#separator ", 11) == 0) return parse_separator(r, p, n, line, err);
    return 0; /* comment, or a Zeek header we do not need (#set_separator, #empty_field, ...) */
}

int kg_indicator_set_load_buffer(struct kg_indicator_set *s, const char *name, const char *data, size_t len,
                                 struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rep) memset(rep, 0, sizeof(*rep));
    if (!s || !name || (!data && len)) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    if (kg_ind_set_is_final(s))
        return kg_err_set(err, KG_ERR_INVAL, "%s: indicator set is already finalized", name);

    struct zeek_reader *r = kg_xcalloc(1, sizeof(*r)); /* ~1.5 KB: not on the stack */
    r->s = s;
    r->file = kg_ind_set_strdup(s, name, strlen(name));
    r->sep = '\t';

    int rc = 0;
    const char *p = data, *end = data + len;
    /* A UTF-8 byte order mark, as some editors write, is not part of "#fields". */
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3;
    uint32_t line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--; /* CRLF files */
        rc = parse_line(r, p, n, line, err);
        if (rc < 0) break;
        p = nl ? nl + 1 : end;
    }
    if (rc == 0 && !r->have_fields)
        rc = kg_err_set(err, KG_ERR_PARSE, "%s: no #fields header (not a Zeek Intel file?)", r->file);

    if (rc == 0)
        kg_log(KG_LOG_INFO, "indicators", "%s: %llu indicators loaded, %llu bad lines, %llu duplicates",
               r->file, (unsigned long long)r->rep.loaded, (unsigned long long)r->rep.bad_lines,
               (unsigned long long)r->rep.duplicates);
    if (rep) *rep = r->rep;
    free(r);
    return rc;
}

int kg_indicator_set_load_file(struct kg_indicator_set *s, const char *path,
                               struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rep) memset(rep, 0, sizeof(*rep));
    if (!s || !path) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    char eb[128];
    FILE *f = fopen(path, "rb");
    if (!f) return kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror_r(errno, eb, sizeof(eb)));
    /* Feeds are read whole (control plane; tens of MB at most) so the
     * reader works on bytes and is the same code the fuzz tests drive. */
    struct kg_buf b;
    kg_buf_init(&b);
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        kg_buf_append(&b, chunk, got);
    int rc = 0;
    if (ferror(f))
        rc = kg_err_set(err, KG_ERR_IO, "%s: read error: %s", path, strerror_r(errno, eb, sizeof(eb)));
    fclose(f);
    if (rc == 0) rc = kg_indicator_set_load_buffer(s, path, b.data ? b.data : "", b.len, rep, err);
    kg_buf_free(&b);
    return rc;
}
