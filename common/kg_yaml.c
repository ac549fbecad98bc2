/*
 * common/kg_yaml.c — reading a YAML text event by event with libyaml, every
 * problem reported as "file:line: message". The loaders of config/ (the
 * sensor's settings) and indicators/ (the analysts' tuning file) both read
 * their files through it.
 */
#include "common/kg_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void kg_yaml_open(struct kg_yaml *y, const char *path, const char *text, size_t len, struct kg_err *err)
{
    y->parser = kg_xmalloc(sizeof(*y->parser));
    y->path = path;
    y->text = text ? text : "";
    y->len = text ? len : 0;
    y->err = err;
    if (!yaml_parser_initialize(y->parser)) {
        fprintf(stderr, "[yaml] error: out of memory initialising the YAML parser, aborting\n");
        abort();
    }
    yaml_parser_set_input_string(y->parser, (const unsigned char *)y->text, y->len);
}

void kg_yaml_close(struct kg_yaml *y)
{
    if (!y->parser) return;
    yaml_parser_delete(y->parser);
    free(y->parser);
    y->parser = NULL;
}

int kg_yaml_error(struct kg_yaml *y, int code, size_t line0, const char *fmt, ...)
{
    char msg[440];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kg_err_set(y->err, code, "%s:%zu: %s", y->path, line0 + 1, msg);
}

static int syntax_error(struct kg_yaml *y)
{
    const yaml_parser_t *p = y->parser;
    const char *problem = p->problem ? p->problem : "YAML syntax error";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return kg_err_set(y->err, KG_ERR_NOMEM, "%s: out of memory reading YAML", y->path);
    case YAML_READER_ERROR: {
        /* Reader errors (bad encoding) carry a byte offset, not a mark. */
        size_t line0 = 0, end = KG_MIN(p->problem_offset, y->len);
        for (size_t i = 0; i < end; i++)
            line0 += y->text[i] == '\n';
        if (p->problem_value != -1)
            return kg_yaml_error(y, KG_ERR_PARSE, line0, "%s (byte 0x%02x)", problem,
                                 (unsigned)p->problem_value);
        return kg_yaml_error(y, KG_ERR_PARSE, line0, "%s", problem);
    }
    default:
        if (p->context)
            return kg_yaml_error(y, KG_ERR_PARSE, p->problem_mark.line, "%s (%s at line %zu)", problem,
                                 p->context, p->context_mark.line + 1);
        return kg_yaml_error(y, KG_ERR_PARSE, p->problem_mark.line, "%s", problem);
    }
}

int kg_yaml_next(struct kg_yaml *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(y->parser, ev)) return syntax_error(y);
    if (ev->type == YAML_ALIAS_EVENT) {
        /* Aliases would let a small file expand into a huge one, and no
         * file of ours needs them. libyaml's anchors are letters, digits,
         * '-' and '_' only. */
        int rc =
            kg_yaml_error(y, KG_ERR_PARSE, ev->start_mark.line, "YAML aliases are not supported (*%.60s)",
                          (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        return rc;
    }
    return 0;
}

bool kg_yaml_is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

const char *kg_yaml_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    default:
        return "nothing";
    }
}
