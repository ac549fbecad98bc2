/*
 * indicators/indicators_stix.c — STIX 2.1 bundles (OASIS STIX 2.1, 4.1 and
 * 7.1 indicator; patterning in chapter 9), parsed with jansson.
 *
 * Of a bundle's objects, those of type "indicator" with pattern_type "stix"
 * (or none, as in STIX 2.0) are read; other objects are counted as skipped,
 * except "identity" objects, whose name becomes the source of the
 * indicators that point at them with created_by_ref. A pattern is a set of
 * equality comparisons joined by OR, inside one observation or across
 * observations: "[ipv4-addr:value = '198.51.100.1' OR domain-name:value =
 * 'evil.example']". Each comparison becomes one Kagami indicator sharing
 * the STIX object's id (feed_id), name (desc), validity window (valid_from,
 * valid_until), labels and confidence (meta). A pattern with AND,
 * FOLLOWEDBY, a qualifier (WITHIN, REPEATS, START), another operator, or an
 * object path Kagami cannot match is skipped whole with a warning: loading
 * only half of an AND would alert on traffic the producer did not mean.
 *
 * Positions in warnings are "file:N" with N the object's index in the
 * bundle's "objects" array, counted from 1 (jansson keeps no line numbers).
 *
 * Threads: control plane. Ownership: the jansson document lives for one
 * load; strings kept by indicators are copied into the set.
 */
#include "indicators/indicators_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <strings.h>

#define KG_STIX_MAX_TERMS 256

struct term {
    enum kg_ind_type type;
    char *value; /* unescaped, malloc'ed */
    size_t len;
};

struct pattern {
    struct term terms[KG_STIX_MAX_TERMS];
    int n;
    char why[160]; /* why the pattern is refused */
};

static void pattern_free(struct pattern *pt)
{
    for (int i = 0; i < pt->n; i++)
        free(pt->terms[i].value);
    pt->n = 0;
}

struct lexer {
    const char *p, *end;
};

static void skip_ws(struct lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
        lx->p++;
}

static bool accept_word(struct lexer *lx, const char *w)
{
    skip_ws(lx);
    size_t n = strlen(w);
    if ((size_t)(lx->end - lx->p) < n || strncmp(lx->p, w, n) != 0) return false;
    /* A keyword ends at a non-identifier character. */
    if (lx->p + n < lx->end) {
        char c = lx->p[n];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_') return false;
    }
    lx->p += n;
    return true;
}

static bool accept_char(struct lexer *lx, char c)
{
    skip_ws(lx);
    if (lx->p < lx->end && *lx->p == c) {
        lx->p++;
        return true;
    }
    return false;
}

/* An object path up to the operator, with quotes and '-' removed from the
 * property names and folded to lower case:
 * "file:hashes.'SHA-256'" -> "file:hashes.sha256". */
static bool object_path(struct lexer *lx, char *out, size_t size)
{
    skip_ws(lx);
    size_t k = 0;
    while (lx->p < lx->end) {
        char c = *lx->p;
        if (c == ' ' || c == '\t' || c == '=' || c == '!' || c == '<' || c == '>' || c == ']' || c == '\n' ||
            c == '\r')
            break;
        lx->p++;
        if (c == '\'' || c == '-') {
            /* keep '-' in the object type ("domain-name", "x509-certificate") */
            if (c == '-' && !memchr(out, ':', k)) {
                if (k + 1 >= size) return false;
                out[k++] = c;
            }
            continue;
        }
        if (k + 1 >= size) return false;
        out[k++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    out[k] = '\0';
    return k > 0;
}

/* A single-quoted string constant; \' and \\ are its escapes (9.2). */
static bool string_constant(struct lexer *lx, struct term *t)
{
    skip_ws(lx);
    if (lx->p >= lx->end || *lx->p != '\'') return false;
    lx->p++;
    size_t cap = (size_t)(lx->end - lx->p) + 1;
    char *v = kg_xmalloc(cap);
    size_t k = 0;
    while (lx->p < lx->end && *lx->p != '\'') {
        char c = *lx->p++;
        if (c == '\\') {
            if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '\\')) {
                free(v);
                return false;
            }
            c = *lx->p++;
        }
        v[k++] = c;
    }
    if (lx->p >= lx->end) {
        free(v);
        return false;
    }
    lx->p++;
    v[k] = '\0';
    t->value = v;
    t->len = k;
    return true;
}

static const struct {
    const char *path;
    enum kg_ind_type type;
} stix_paths[] = {
    {"ipv4-addr:value", KG_IND_ADDR},
    {"ipv6-addr:value", KG_IND_ADDR},
    {"domain-name:value", KG_IND_DOMAIN},
    {"url:value", KG_IND_URL},
    {"x509-certificate:hashes.sha1", KG_IND_CERT_HASH},
    {"x509-certificate:hashes.sha256", KG_IND_CERT_HASH},
    {"file:hashes.md5", KG_IND_FILE_HASH},
    {"file:hashes.sha1", KG_IND_FILE_HASH},
    {"file:hashes.sha256", KG_IND_FILE_HASH},
    {"network-traffic:extensions.httprequestext.request_header.useragent", KG_IND_SOFTWARE},
};

static bool comparison(struct lexer *lx, struct pattern *pt)
{
    char path[128];
    if (!object_path(lx, path, sizeof(path))) {
        snprintf(pt->why, sizeof(pt->why), "expected an object path");
        return false;
    }
    skip_ws(lx);
    if (lx->p >= lx->end || *lx->p != '=') {
        char op[16];
        size_t k = 0;
        while (lx->p + k < lx->end && k < sizeof(op) - 1 && lx->p[k] != ' ' && lx->p[k] != '\'') {
            op[k] = lx->p[k];
            k++;
        }
        op[k] = '\0';
        snprintf(pt->why, sizeof(pt->why), "unsupported comparison operator '%s' (only '=')", op);
        return false;
    }
    lx->p++;
    int type = -1;
    for (size_t i = 0; i < KG_ARRAY_LEN(stix_paths); i++)
        if (strcmp(path, stix_paths[i].path) == 0) type = (int)stix_paths[i].type;
    if (type < 0) {
        snprintf(pt->why, sizeof(pt->why), "unsupported object path '%.100s'", path);
        return false;
    }
    if (pt->n == KG_STIX_MAX_TERMS) {
        snprintf(pt->why, sizeof(pt->why), "more than %d comparisons", KG_STIX_MAX_TERMS);
        return false;
    }
    struct term *t = &pt->terms[pt->n];
    if (!string_constant(lx, t)) {
        snprintf(pt->why, sizeof(pt->why), "expected a quoted string after '%.64s ='", path);
        return false;
    }
    t->type = (enum kg_ind_type)type;
    if (t->type == KG_IND_ADDR && memchr(t->value, '/', t->len)) t->type = KG_IND_SUBNET;
    pt->n++;
    return true;
}

static bool refuse_connective(struct lexer *lx, struct pattern *pt)
{
    static const char *const bad[] = {"AND", "FOLLOWEDBY", "WITHIN", "REPEATS", "START", "STOP", "NOT"};
    skip_ws(lx);
    for (size_t i = 0; i < KG_ARRAY_LEN(bad); i++) {
        struct lexer probe = *lx;
        if (accept_word(&probe, bad[i])) {
            snprintf(pt->why, sizeof(pt->why), "%s is not supported (only comparisons joined by OR)", bad[i]);
            return true;
        }
    }
    return false;
}

/* observation := '[' comparison (OR comparison)* ']'
 * pattern     := group (OR group)*,  group := observation | '(' pattern ')' */
static bool pattern_expr(struct lexer *lx, struct pattern *pt, int depth);

static bool group(struct lexer *lx, struct pattern *pt, int depth)
{
    if (accept_char(lx, '(')) {
        if (depth > 32) {
            snprintf(pt->why, sizeof(pt->why), "pattern nested too deeply");
            return false;
        }
        if (!pattern_expr(lx, pt, depth + 1)) return false;
        if (!accept_char(lx, ')')) {
            if (!pt->why[0] && !refuse_connective(lx, pt)) snprintf(pt->why, sizeof(pt->why), "expected ')'");
            return false;
        }
        return true;
    }
    if (!accept_char(lx, '[')) {
        snprintf(pt->why, sizeof(pt->why), "expected '[' to start an observation");
        return false;
    }
    for (;;) {
        if (!comparison(lx, pt)) return false;
        if (accept_word(lx, "OR")) continue;
        if (accept_char(lx, ']')) return true;
        if (!refuse_connective(lx, pt)) snprintf(pt->why, sizeof(pt->why), "expected OR or ']'");
        return false;
    }
}

static bool pattern_expr(struct lexer *lx, struct pattern *pt, int depth)
{
    for (;;) {
        if (!group(lx, pt, depth)) return false;
        if (accept_word(lx, "OR")) continue;
        return true;
    }
}

static bool parse_pattern(const char *p, size_t n, struct pattern *pt)
{
    struct lexer lx = {p, p + n};
    pt->n = 0;
    pt->why[0] = '\0';
    if (!pattern_expr(&lx, pt, 0)) return false;
    skip_ws(&lx);
    if (lx.p != lx.end) {
        if (!refuse_connective(&lx, pt)) snprintf(pt->why, sizeof(pt->why), "unexpected text after the pattern");
        return false;
    }
    return true;
}

/* --- the bundle ------------------------------------------------------------------------ */

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

struct stix_ctx {
    struct kg_ind_feed *f;
    json_t *identities; /* id -> name */
    const char *keys[2]; /* "labels", "confidence" */
};

static int one_indicator(struct stix_ctx *c, json_t *o, uint32_t line, struct kg_err *err)
{
    struct kg_ind_feed *f = c->f;
    char pb[80];
    const char *id = str_of(o, "id");
    const char *idp = id ? id : "(no id)";
    const char *ptype = str_of(o, "pattern_type");
    if (ptype && strcmp(ptype, "stix") != 0) {
        kg_ind_feed_bad(f, line, "%s: pattern_type '%s' is not supported (only stix)", idp,
                        kg_ind_printable(pb, sizeof(pb), ptype, strlen(ptype)));
        return 0;
    }
    const char *pattern = str_of(o, "pattern");
    if (!pattern) {
        kg_ind_feed_bad(f, line, "%s: indicator without a pattern", idp);
        return 0;
    }
    uint64_t from = 0, until = 0;
    const char *vf = str_of(o, "valid_from"), *vu = str_of(o, "valid_until");
    if ((vf && !kg_ind_parse_time(vf, strlen(vf), &from)) || (vu && !kg_ind_parse_time(vu, strlen(vu), &until))) {
        const char *bad = vf && !kg_ind_parse_time(vf, strlen(vf), &from) ? vf : vu;
        kg_ind_feed_bad(f, line, "%s: timestamp '%s' is not RFC 3339", idp,
                        kg_ind_printable(pb, sizeof(pb), bad, strlen(bad)));
        return 0;
    }
    /* A revoked indicator (STIX 2.1 3.2) is withdrawn by its producer. */
    if (json_is_true(json_object_get(o, "revoked"))) {
        f->rep.skipped++;
        return 0;
    }
    struct pattern *pt = kg_xmalloc(sizeof(*pt));
    if (!parse_pattern(pattern, strlen(pattern), pt)) {
        kg_ind_feed_bad(f, line, "%s: pattern %s: %s", idp, kg_ind_printable(pb, sizeof(pb), pattern, strlen(pattern)),
                        pt->why);
        pattern_free(pt);
        free(pt);
        return 0;
    }
    const char *name = str_of(o, "name");
    if (!name) name = str_of(o, "description");
    const char *source = f->base;
    const char *by = str_of(o, "created_by_ref");
    if (by && c->identities) {
        json_t *nm = json_object_get(c->identities, by);
        if (json_is_string(nm)) source = kg_ind_set_strdup(f->s, json_string_value(nm), strlen(json_string_value(nm)));
    }
    const char *vals[2];
    uint32_t nmeta = 0;
    json_t *labels = json_object_get(o, "labels");
    if (json_is_array(labels) && json_array_size(labels)) {
        struct kg_buf lb;
        kg_buf_init(&lb);
        size_t i;
        json_t *l;
        json_array_foreach(labels, i, l) {
            if (!json_is_string(l)) continue;
            if (lb.len) kg_buf_append_char(&lb, ',');
            kg_buf_append_str(&lb, json_string_value(l));
        }
        vals[nmeta++] = kg_ind_set_strdup(f->s, lb.data ? lb.data : "", lb.len);
        kg_buf_free(&lb);
    }
    const char *keys[2] = {c->keys[0], c->keys[1]};
    json_t *conf = json_object_get(o, "confidence");
    if (json_is_integer(conf)) {
        char cb[32];
        int cn = snprintf(cb, sizeof(cb), "%lld", (long long)json_integer_value(conf));
        if (nmeta == 0) keys[0] = c->keys[1];
        vals[nmeta++] = kg_ind_set_strdup(f->s, cb, (size_t)cn);
    }
    struct kg_ind_input in = {
        .source = source,
        .feed_id = id ? kg_ind_set_strdup(f->s, id, strlen(id)) : "",
        .desc = name ? kg_ind_set_strdup(f->s, name, strlen(name)) : "",
        .file = f->file,
        .line = line,
        .valid_from_us = from,
        .valid_until_us = until,
        .nmeta = nmeta,
        .meta_keys = keys,
        .meta_values = vals,
    };
    int rc = 0;
    for (int i = 0; i < pt->n && rc == 0; i++) {
        in.type = pt->terms[i].type;
        in.value = pt->terms[i].value;
        in.value_len = pt->terms[i].len;
        rc = kg_ind_feed_add(f, &in, err);
    }
    pattern_free(pt);
    free(pt);
    return rc;
}

static int stix_whole(struct kg_ind_feed *f, const char *data, size_t len, struct kg_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return kg_err_set(err, KG_ERR_PARSE, "%s:%d:%d: invalid JSON: %s", f->file, je.line, je.column, je.text);
    json_t *objects = json_object_get(root, "objects");
    const char *type = str_of(root, "type");
    if (!json_is_object(root) || !type || strcmp(type, "bundle") != 0 || !json_is_array(objects)) {
        json_decref(root);
        return kg_err_set(err, KG_ERR_PARSE, "%s: not a STIX bundle (no \"type\": \"bundle\" with \"objects\")",
                          f->file);
    }
    struct stix_ctx c = {.f = f, .identities = json_object()};
    c.keys[0] = kg_ind_set_strdup(f->s, "labels", 6);
    c.keys[1] = kg_ind_set_strdup(f->s, "confidence", 10);
    size_t i;
    json_t *o;
    json_array_foreach(objects, i, o) {
        const char *ot = str_of(o, "type"), *id = str_of(o, "id"), *name = str_of(o, "name");
        if (ot && strcmp(ot, "identity") == 0 && id && name) json_object_set_new(c.identities, id, json_string(name));
    }
    int rc = 0;
    json_array_foreach(objects, i, o) {
        uint32_t line = (uint32_t)i + 1;
        const char *ot = json_is_object(o) ? str_of(o, "type") : NULL;
        if (!ot) {
            kg_ind_feed_bad(f, line, "object without a \"type\"");
            continue;
        }
        if (strcmp(ot, "indicator") != 0) {
            f->rep.skipped++;
            continue;
        }
        rc = one_indicator(&c, o, line, err);
        if (rc < 0) break;
    }
    json_decref(c.identities);
    json_decref(root);
    return rc;
}

const struct kg_ind_format_ops kg_ind_stix_ops = {
    .whole = stix_whole,
};
