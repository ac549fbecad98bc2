/*
 * indicators/indicators_misp.c — MISP CSV exports (the attribute export of
 * MISP's restSearch / "Download as CSV"): a header row naming the columns,
 * then one attribute per record. Columns are found by name, in any order;
 * type, value and to_ids are required, category, comment, uuid and
 * event_id are used when present, others ignored. Records follow RFC 4180
 * (quoted fields with commas, doubled quotes and line breaks), which
 * indicators_feed.c honours when cutting records.
 *
 * Rows with to_ids=0 are MISP's way of saying "context, do not alert":
 * they are skipped and counted in rep.skipped, not warned about; so are
 * attribute types Kagami has no observation for (email-src, filename,
 * regkey...), with one summary line at the end.
 *
 * Threads: control plane. Ownership: strings kept by indicators are copied
 * into the set.
 */
#include "indicators/indicators_int.h"

#include <strings.h>

#define KG_MISP_MAX_COLS 64

struct misp_ctx {
    bool have_header;
    int ncols;
    int col_type, col_value, col_to_ids, col_category, col_comment, col_uuid, col_event; /* -1: absent */
    const char **keys;      /* meta key names: "category", "desc", "event_id" */
    const char *category;   /* last category stored (they repeat) */
    size_t category_len;
    uint64_t unsupported;   /* rows of types without a Kagami match */
    struct kg_buf scratch;  /* unquoted fields of the current record */
};

static bool name_is(struct kg_ind_field f, const char *name)
{
    const char *p = f.p;
    size_t n = f.n;
    kg_ind_trim(&p, &n);
    return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

static int misp_begin(struct kg_ind_feed *f, void *ctx, struct kg_err *err)
{
    (void)err;
    struct misp_ctx *c = ctx;
    kg_buf_init(&c->scratch);
    static const char *const names[] = {"category", "desc", "event_id"};
    c->keys = kg_ind_set_alloc(f->s, sizeof(names));
    for (size_t i = 0; i < KG_ARRAY_LEN(names); i++)
        c->keys[i] = kg_ind_set_strdup(f->s, names[i], strlen(names[i]));
    return 0;
}

static int header(struct kg_ind_feed *f, struct misp_ctx *c, struct kg_ind_field *fl, int nf, uint32_t line,
                  struct kg_err *err)
{
    if (nf > KG_MISP_MAX_COLS)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: MISP CSV header has more than %d columns", f->file, line,
                          KG_MISP_MAX_COLS);
    c->col_type = c->col_value = c->col_to_ids = c->col_category = c->col_comment = c->col_uuid = c->col_event = -1;
    static const struct {
        const char *name;
        size_t off;
    } cols[] = {
        {"type", offsetof(struct misp_ctx, col_type)},         {"value", offsetof(struct misp_ctx, col_value)},
        {"to_ids", offsetof(struct misp_ctx, col_to_ids)},     {"category", offsetof(struct misp_ctx, col_category)},
        {"comment", offsetof(struct misp_ctx, col_comment)},   {"uuid", offsetof(struct misp_ctx, col_uuid)},
        {"event_id", offsetof(struct misp_ctx, col_event)},
    };
    for (int i = 0; i < nf; i++) {
        for (size_t k = 0; k < KG_ARRAY_LEN(cols); k++) {
            int *col = (int *)((char *)c + cols[k].off);
            if (*col < 0 && name_is(fl[i], cols[k].name)) *col = i;
        }
    }
    const char *missing = c->col_type < 0 ? "type" : c->col_value < 0 ? "value" : c->col_to_ids < 0 ? "to_ids" : NULL;
    if (missing)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%u: MISP CSV header lacks the '%s' column (is this a MISP CSV export?)",
                          f->file, line, missing);
    c->ncols = nf;
    c->have_header = true;
    return 0;
}

/* MISP attribute type -> Kagami type, and which '|'-separated part of a
 * composite value is the indicator (0 first, 1 second). */
static const struct {
    const char *misp;
    int type; /* -1: recognised, no match in Kagami */
    int part;
} misp_types[] = {
    {"ip-src", KG_IND_ADDR, 0},
    {"ip-dst", KG_IND_ADDR, 0},
    {"ip-src|port", KG_IND_ADDR, 0},
    {"ip-dst|port", KG_IND_ADDR, 0},
    {"domain", KG_IND_DOMAIN, 0},
    {"hostname", KG_IND_DOMAIN, 0},
    {"domain|ip", KG_IND_DOMAIN, 0},
    {"hostname|port", KG_IND_DOMAIN, 0},
    {"url", KG_IND_URL, 0},
    {"ja3-fingerprint-md5", KG_IND_JA3, 0},
    {"x509-fingerprint-sha1", KG_IND_CERT_HASH, 0},
    {"x509-fingerprint-sha256", KG_IND_CERT_HASH, 0},
    {"md5", KG_IND_FILE_HASH, 0},
    {"sha1", KG_IND_FILE_HASH, 0},
    {"sha256", KG_IND_FILE_HASH, 0},
    {"filename|md5", KG_IND_FILE_HASH, 1},
    {"filename|sha1", KG_IND_FILE_HASH, 1},
    {"filename|sha256", KG_IND_FILE_HASH, 1},
    {"user-agent", KG_IND_SOFTWARE, 0},
};

static int misp_record(struct kg_ind_feed *f, void *ctx, const char *p, size_t n, uint32_t line,
                       struct kg_err *err)
{
    struct misp_ctx *c = ctx;
    char pb[80];
    const char *t = p;
    size_t tn = n;
    kg_ind_trim(&t, &tn);
    if (tn == 0) return 0;
    kg_buf_reset(&c->scratch);
    kg_buf_reserve(&c->scratch, n + 1);
    struct kg_ind_field fl[KG_MISP_MAX_COLS + 1];
    int nf = kg_ind_csv_split(p, n, fl, KG_MISP_MAX_COLS + 1, c->scratch.data);
    if (!c->have_header) {
        if (nf < 0) return kg_err_set(err, KG_ERR_PARSE, "%s:%u: malformed MISP CSV header", f->file, line);
        return header(f, c, fl, nf, line, err);
    }
    if (nf < 0) {
        kg_ind_feed_bad(f, line, "malformed CSV record (stray or unterminated quote)");
        return 0;
    }
    if (nf != c->ncols) {
        kg_ind_feed_bad(f, line, "expected %d fields, found %d", c->ncols, nf);
        return 0;
    }
    struct kg_ind_field ids = fl[c->col_to_ids];
    kg_ind_trim(&ids.p, &ids.n);
    if (name_is(ids, "0") || name_is(ids, "false")) {
        f->rep.skipped++;
        return 0;
    }
    if (!name_is(ids, "1") && !name_is(ids, "true")) {
        kg_ind_feed_bad(f, line, "to_ids '%s' is not 0 or 1", kg_ind_printable(pb, sizeof(pb), ids.p, ids.n));
        return 0;
    }
    struct kg_ind_field ft = fl[c->col_type];
    int mt = -1;
    for (size_t i = 0; i < KG_ARRAY_LEN(misp_types); i++)
        if (name_is(ft, misp_types[i].misp)) mt = (int)i;
    if (mt < 0) {
        c->unsupported++;
        f->rep.skipped++;
        kg_log(KG_LOG_DEBUG, "indicators", "%s:%u: MISP type '%s' has no Kagami match; skipped", f->file, line,
               kg_ind_printable(pb, sizeof(pb), ft.p, ft.n));
        return 0;
    }
    struct kg_ind_field v = fl[c->col_value];
    kg_ind_trim(&v.p, &v.n);
    if (strchr(misp_types[mt].misp, '|')) {
        const char *bar = memchr(v.p, '|', v.n);
        if (!bar) {
            kg_ind_feed_bad(f, line, "%s value '%s' lacks its '|'", misp_types[mt].misp,
                            kg_ind_printable(pb, sizeof(pb), v.p, v.n));
            return 0;
        }
        if (misp_types[mt].part == 0) {
            v.n = (size_t)(bar - v.p);
        } else {
            v.n -= (size_t)(bar + 1 - v.p);
            v.p = bar + 1;
        }
    }
    struct kg_ind_input in = {
        .type = (enum kg_ind_type)misp_types[mt].type,
        .value = v.p,
        .value_len = v.n,
        .source = f->base,
        .file = f->file,
        .line = line,
    };
    /* An ip-src/ip-dst attribute may be a CIDR block. */
    if (in.type == KG_IND_ADDR && memchr(v.p, '/', v.n)) in.type = KG_IND_SUBNET;
    if (c->col_uuid >= 0) {
        struct kg_ind_field u = fl[c->col_uuid];
        kg_ind_trim(&u.p, &u.n);
        if (u.n) in.feed_id = kg_ind_set_strdup(f->s, u.p, u.n);
    }
    const char *keys[3], *vals[3];
    if (c->col_category >= 0) {
        struct kg_ind_field g = fl[c->col_category];
        kg_ind_trim(&g.p, &g.n);
        if (g.n) {
            if (!c->category || c->category_len != g.n || memcmp(c->category, g.p, g.n) != 0) {
                c->category = kg_ind_set_strdup(f->s, g.p, g.n);
                c->category_len = g.n;
            }
            keys[in.nmeta] = c->keys[0];
            vals[in.nmeta++] = c->category;
        }
    }
    if (c->col_comment >= 0) {
        struct kg_ind_field g = fl[c->col_comment];
        kg_ind_trim(&g.p, &g.n);
        if (g.n) {
            in.desc = kg_ind_set_strdup(f->s, g.p, g.n);
            keys[in.nmeta] = c->keys[1];
            vals[in.nmeta++] = in.desc;
        }
    }
    if (c->col_event >= 0) {
        struct kg_ind_field g = fl[c->col_event];
        kg_ind_trim(&g.p, &g.n);
        if (g.n) {
            keys[in.nmeta] = c->keys[2];
            vals[in.nmeta++] = kg_ind_set_strdup(f->s, g.p, g.n);
        }
    }
    in.meta_keys = keys;
    in.meta_values = vals;
    return kg_ind_feed_add(f, &in, err);
}

static int misp_end(struct kg_ind_feed *f, void *ctx, struct kg_err *err)
{
    struct misp_ctx *c = ctx;
    if (!c->have_header)
        return kg_err_set(err, KG_ERR_PARSE, "%s: no MISP CSV header row (empty file?)", f->file);
    if (c->unsupported)
        kg_log(KG_LOG_INFO, "indicators", "%s: %llu attributes of types Kagami does not match were skipped",
               f->file, (unsigned long long)c->unsupported);
    return 0;
}

static void misp_cleanup(void *ctx)
{
    struct misp_ctx *c = ctx;
    kg_buf_free(&c->scratch);
}

const struct kg_ind_format_ops kg_ind_misp_ops = {
    .cleanup = misp_cleanup,
    .ctx_size = sizeof(struct misp_ctx),
    .csv = true,
    .begin = misp_begin,
    .record = misp_record,
    .end = misp_end,
};
