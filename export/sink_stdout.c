/*
 * export/sink_stdout.c — events as JSON lines on standard output ("stdout"
 * or "-"), through stdio's buffer: a line costs a memcpy, and kg_sink_flush()
 * is one fflush(). Events count as delivered once fflush() succeeded.
 *
 * Threads: the export thread only; nothing else in Kagami writes to stdout
 * while a stdout sink is in use. Owns a small counter block; stdout itself
 * stays open when the sink is freed.
 */
#include "export/export_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stdout_priv {
    uint64_t pending; /* events handed to stdio since the last flush */
};

static int so_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    (void)arg;
    (void)err;
    s->priv = kg_xcalloc(1, sizeof(struct stdout_priv));
    s->name = kg_xstrdup("stdout");
    return 0;
}

static int so_write(struct kg_sink *s, const char *json, size_t len)
{
    struct stdout_priv *pv = s->priv;
    if (fwrite(json, 1, len, stdout) != len || putc('\n', stdout) == EOF) {
        /* stdio may hold part of the line: what reaches stdout is decided at
         * the next flush, which reports the error. */
        return KG_ERR_IO;
    }
    pv->pending++;
    return 0;
}

static int so_flush(struct kg_sink *s, struct kg_err *err)
{
    struct stdout_priv *pv = s->priv;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        const int e = errno;
        clearerr(stdout);
        s->st.failed += pv->pending;
        pv->pending = 0;
        return kg_err_set(err, KG_ERR_IO, "stdout: write failed: %s", strerror(e));
    }
    s->st.delivered += pv->pending;
    pv->pending = 0;
    return 0;
}

static void so_close(struct kg_sink *s)
{
    free(s->priv);
    s->priv = NULL;
}

const struct kg_sink_ops kg_sink_stdout_ops = {
    .kind = "stdout",
    .open = so_open,
    .write = so_write,
    .flush = so_flush,
    .close = so_close,
};
