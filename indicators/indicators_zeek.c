/*
 * indicators/indicators_zeek.c — reader for Zeek Intel framework feeds
 * (https://docs.zeek.org/en/master/frameworks/intel.html): tab-separated
 * text whose "#fields" header names the columns, e.g.
 *
 *     #fields<TAB>indicator<TAB>indicator_type<TAB>meta.source
 *     198.51.100.7<TAB>Intel::ADDR<TAB>abuse-feed
 *
 * The reader gets one line at a time from indicators_feed.c (which reads
 * files in chunks, or a buffer), so it can be tested and fuzzed without
 * files. A malformed line is skipped, counted and logged as
 * "file:line: message"; only a missing/unusable #fields header fails the
 * load. Besides Zeek's own columns, meta.valid_from and meta.valid_until
 * (RFC 3339 or epoch seconds) set the indicator's validity window.
 *
 * Threads: runs on the control plane, on a set that is not finalized (the
 * set has one writer). Ownership: everything the reader keeps (file name,
 * column names, meta values) is copied into the set's storage.
 */
#include "indicators/indicators_int.h"


/* Columns per line; Zeek's own intel files have six or seven. */
#define KG_ZEEK_MAX_COLS 64


struct zeek_reader {
    char sep;

    /* From the latest #fields header. */
    bool have_fields;
    uint32_t ncols;
    int col_value, col_type, col_source, col_severity; /* -1 when absent */
    int col_desc, col_from, col_until;                 /* -1 when absent */
    uint32_t nextra;                                   /* other meta.* columns */
    uint32_t extra_col[KG_ZEEK_MAX_COLS];
    const char **extra_keys; /* set-owned, names without "meta." */

    /* Last string copied into the set for each column, so the value most
     * feeds repeat on every line (source, description) is stored once. */
    const char *cache[KG_ZEEK_MAX_COLS];
    size_t cache_len[KG_ZEEK_MAX_COLS];
};

static bool field_is(struct kg_ind_field f, const char *s)
{
    size_t n = strlen(s);
    return f.n == n && memcmp(f.p, s, n) == 0;
}

/* Zeek's markers for an unset and an empty field (#unset_field, #empty_field). */
static bool field_absent(struct kg_ind_field f)
{
    return f.n == 0 || field_is(f, "-") || field_is(f, "(empty)");
}

/* Splits p[0..n) on sep into at most max fields; returns the number of
 * fields the line has (which may exceed max: only the first max are stored). */
static uint32_t split(const char *p, size_t n, char sep, struct kg_ind_field *out, uint32_t max)
{
    uint32_t nf = 0;
    const char *end = p + n;
    for (;;) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        const char *fe = q ? q : end;
        if (nf < max) out[nf] = (struct kg_ind_field){p, (size_t)(fe - p)};
        nf++;
        if (!q) return nf;
        p = q + 1;
    }
}

static const char *intern(struct kg_ind_feed *fd, struct zeek_reader *r, uint32_t col, struct kg_ind_field f)
{
    if (r->cache[col] && r->cache_len[col] == f.n && memcmp(r->cache[col], f.p, f.n) == 0)
        return r->cache[col];
    r->cache[col] = kg_ind_set_strdup(fd->s, f.p, f.n);
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
static int parse_separator(struct kg_ind_feed *fd, struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
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
                          "%s:%u: unusable #separator (expected e.g. \"#separator \\x09\")", fd->file, line);
    r->sep = (char)c;
    return 0;
}

static int parse_fields(struct kg_ind_feed *fd, struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    if (n > 7 && p[7] != r->sep)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header is not separated by %s", fd->file, line,
                          r->sep == '\t' ? "tabs" : "the #separator character");
    struct kg_ind_field f[KG_ZEEK_MAX_COLS + 1];
    uint32_t nf = n > 7 ? split(p + 8, n - 8, r->sep, f, KG_ZEEK_MAX_COLS + 1) : 0;
    if (nf == 0)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header names no columns", fd->file, line);
    if (nf > KG_ZEEK_MAX_COLS)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header has more than %d columns", fd->file, line,
                          KG_ZEEK_MAX_COLS);

    r->have_fields = false;
    r->col_value = r->col_type = r->col_source = r->col_severity = -1;
    r->col_desc = r->col_from = r->col_until = -1;
    r->nextra = 0;
    memset(r->cache, 0, sizeof(r->cache));
    const char *names[KG_ZEEK_MAX_COLS];
    char pb[80];
    for (uint32_t i = 0; i < nf; i++) {
        if (f[i].n == 0)
            return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields column %u has no name", fd->file, line,
                              i + 1);
        for (uint32_t j = 0; j < i; j++) {
            if (f[j].n == f[i].n && memcmp(f[j].p, f[i].p, f[i].n) == 0)
                return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields lists column '%s' twice", fd->file, line,
                                  kg_ind_printable(pb, sizeof(pb), f[i].p, f[i].n));
        }
        if (field_is(f[i], "indicator")) {
            r->col_value = (int)i;
        } else if (field_is(f[i], "indicator_type")) {
            r->col_type = (int)i;
        } else if (field_is(f[i], "meta.source")) {
            r->col_source = (int)i;
        } else if (field_is(f[i], "meta.severity")) {
            r->col_severity = (int)i;
        } else if (field_is(f[i], "meta.valid_from")) {
            r->col_from = (int)i;
        } else if (field_is(f[i], "meta.valid_until")) {
            r->col_until = (int)i;
        } else if (f[i].n > 5 && memcmp(f[i].p, "meta.", 5) == 0) {
            /* meta.desc stays a meta pair too (what alerts have always
             * read) and also becomes the indicator's desc. */
            if (field_is(f[i], "meta.desc")) r->col_desc = (int)i;
            names[r->nextra] = kg_ind_set_strdup(fd->s, f[i].p + 5, f[i].n - 5);
            r->extra_col[r->nextra++] = i;
        } else {
            kg_ind_feed_warn(fd, line, "column '%s' ignored (not indicator, indicator_type or meta.*)",
                 kg_ind_printable(pb, sizeof(pb), f[i].p, f[i].n));
        }
    }
    if (r->col_value < 0 || r->col_type < 0)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: #fields header lacks the '%s' column", fd->file, line,
                          r->col_value < 0 ? "indicator" : "indicator_type");
    r->extra_keys = NULL;
    if (r->nextra) {
        r->extra_keys = kg_ind_set_alloc(fd->s, r->nextra * sizeof(*r->extra_keys));
        memcpy(r->extra_keys, names, r->nextra * sizeof(*names));
    }
    r->ncols = nf;
    r->have_fields = true;
    return 0;
}

/* Zeek's Intel::Type names. The ones Kagami has no observation for are
 * recognised so the warning can say "not supported" rather than "unknown". */
static int parse_type(struct kg_ind_field f, bool *known_unsupported)
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
        {"Intel::JA4", KG_IND_JA4},
        {"Intel::FILE_HASH", KG_IND_FILE_HASH},
        {"Intel::SOFTWARE", KG_IND_SOFTWARE},
        {"Intel::EMAIL", -1},
        {"Intel::USER_NAME", -1},
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

static int parse_data(struct kg_ind_feed *fd, struct zeek_reader *r, const char *p, size_t n, uint32_t line, struct kg_err *err)
{
    char pb[80];
    if (!r->have_fields)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: data line before any #fields header", fd->file, line);
    if (memchr(p, '\0', n)) {
        kg_ind_feed_bad(fd, line, "NUL byte in line");
        return 0;
    }
    struct kg_ind_field f[KG_ZEEK_MAX_COLS];
    uint32_t nf = split(p, n, r->sep, f, KG_ZEEK_MAX_COLS);
    if (nf != r->ncols) {
        kg_ind_feed_bad(fd, line, "expected %u fields, found %u", r->ncols, nf);
        return 0;
    }
    bool unsupported;
    struct kg_ind_field ft = f[r->col_type];
    int type = parse_type(ft, &unsupported);
    if (type < 0) {
        kg_ind_feed_bad(fd, line, "%s indicator type '%s'", unsupported ? "unsupported" : "unknown",
                 kg_ind_printable(pb, sizeof(pb), ft.p, ft.n));
        return 0;
    }
    struct kg_ind_field fv = f[r->col_value];
    if (field_absent(fv)) {
        kg_ind_feed_bad(fd, line, "empty indicator");
        return 0;
    }

    struct kg_ind_input in = {
        .type = (enum kg_ind_type)type,
        .value = fv.p,
        .value_len = fv.n,
        .source = "",
        .file = fd->file,
        .line = line,
    };
    if (r->col_source >= 0 && !field_absent(f[r->col_source]))
        in.source = intern(fd, r, (uint32_t)r->col_source, f[r->col_source]);
    if (r->col_severity >= 0 && !field_absent(f[r->col_severity])) {
        struct kg_ind_field fs = f[r->col_severity];
        if (fs.n == 1 && fs.p[0] >= '1' && fs.p[0] <= '3') {
            in.severity = fs.p[0] - '0';
        } else {
            /* The indicator is still worth loading; it just has no severity. */
            kg_ind_feed_warn(fd, line, "meta.severity '%s' is not 1, 2 or 3; ignored",
                 kg_ind_printable(pb, sizeof(pb), fs.p, fs.n));
        }
    }
    const char *keys[KG_ZEEK_MAX_COLS], *vals[KG_ZEEK_MAX_COLS];
    for (uint32_t i = 0; i < r->nextra; i++) {
        struct kg_ind_field fm = f[r->extra_col[i]];
        if (field_absent(fm)) continue;
        keys[in.nmeta] = r->extra_keys[i];
        vals[in.nmeta++] = intern(fd, r, r->extra_col[i], fm);
        if ((int)r->extra_col[i] == r->col_desc) in.desc = vals[in.nmeta - 1];
    }
    const int tcols[2] = {r->col_from, r->col_until};
    uint64_t *touts[2] = {&in.valid_from_us, &in.valid_until_us};
    for (int k = 0; k < 2; k++) {
        if (tcols[k] < 0 || field_absent(f[tcols[k]])) continue;
        struct kg_ind_field ft2 = f[tcols[k]];
        if (!kg_ind_parse_time(ft2.p, ft2.n, touts[k])) {
            kg_ind_feed_bad(fd, line, "meta.%s '%s' is not a timestamp (RFC 3339 or epoch seconds)",
                            k ? "valid_until" : "valid_from", kg_ind_printable(pb, sizeof(pb), ft2.p, ft2.n));
            return 0;
        }
    }
    if (in.nmeta) {
        /* With every meta column present the header's name array is the
         * key array: shared by all those indicators instead of copied. */
        in.meta_keys_shared = in.nmeta == r->nextra;
        in.meta_keys = in.meta_keys_shared ? r->extra_keys : keys;
        in.meta_values = vals;
    }

    return kg_ind_feed_add(fd, &in, err);
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t') return false;
    return true;
}

static int zeek_record(struct kg_ind_feed *fd, void *ctx, const char *p, size_t n, uint32_t line,
                       struct kg_err *err)
{
    struct zeek_reader *r = ctx;
    if (blank(p, n)) return 0;
    if (p[0] != '#') return parse_data(fd, r, p, n, line, err);
    /* "#fields" followed by the separator is the header; "#fields" followed
     * by a space is a header written with the wrong separator (an error, not
     * a comment, or every line after it would fail). */
    if (n >= 7 && memcmp(p, "#fields", 7) == 0 && (n == 7 || p[7] == r->sep || p[7] == ' ' || p[7] == '\t'))
        return parse_fields(fd, r, p, n, line, err);
    if (n > 11 && memcmp(p, "#separator ", 11) == 0) return parse_separator(fd, r, p, n, line, err);
    return 0; /* comment, or a Zeek header we do not need (#set_separator, #empty_field, ...) */
}

static int zeek_begin(struct kg_ind_feed *fd, void *ctx, struct kg_err *err)
{
    (void)fd;
    (void)err;
    struct zeek_reader *r = ctx;
    r->sep = '\t';
    return 0;
}

static int zeek_end(struct kg_ind_feed *fd, void *ctx, struct kg_err *err)
{
    struct zeek_reader *r = ctx;
    if (!r->have_fields)
        return kg_err_set(err, KG_ERR_PARSE, "%s: no #fields header (not a Zeek Intel file?)", fd->file);
    return 0;
}

const struct kg_ind_format_ops kg_ind_zeek_ops = {
    .ctx_size = sizeof(struct zeek_reader),
    .begin = zeek_begin,
    .record = zeek_record,
    .end = zeek_end,
};
