/*
 * export/sink_file.c — events as JSON lines appended to a file
 * ("file:PATH").
 *
 * The file is opened O_APPEND (so another writer, or a logrotate
 * copytruncate, never makes us overwrite), created 0640 (alerts name hosts
 * and sites: not world-readable). Lines collect in our own buffer and go
 * out with write(2) when 64 KiB are waiting and on every flush; fsync is
 * left to the kernel, as in Suricata's eve.json. Events count as delivered
 * once their '\n' was written.
 *
 * When writing fails (disk full, I/O error), the lines stay buffered and
 * are retried on the next write or flush, up to 16 MiB; past that the
 * buffer is dropped and counted as failed, except the rest of a line the
 * file already holds the start of, so the file never holds a torn line
 * followed by another event.
 *
 * Threads: the export thread only. Owns the descriptor and the buffer.
 */
#include "export/export_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_DRAIN_AT (64u * 1024u)
#define FILE_MAX_BUFFERED (16u * 1024u * 1024u)

struct file_priv {
    char *path;
    int fd;            /* -1 after a failed reopen: retried on the next drain */
    struct kg_buf buf; /* lines not yet written; may start mid-line */
    bool mid_line;     /* the file ends with part of buf's first line */
    int last_errno;
    struct kg_ratelimit rl;
};

static int open_path(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

/* Writes out as much of the buffer as the file takes. Returns 0 when the
 * buffer is empty, KG_ERR_IO otherwise (errno in last_errno). */
static int drain(struct kg_sink *s)
{
    struct file_priv *pv = s->priv;
    if (pv->buf.len == 0) return 0;
    if (pv->fd < 0 && (pv->fd = open_path(pv->path)) < 0) {
        pv->last_errno = errno;
        return KG_ERR_IO;
    }
    size_t off = 0;
    int rc = 0;
    while (off < pv->buf.len) {
        ssize_t n = write(pv->fd, pv->buf.data + off, pv->buf.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pv->last_errno = n < 0 ? errno : EIO;
            rc = KG_ERR_IO;
            break;
        }
        off += (size_t)n;
    }
    if (off > 0) {
        s->st.delivered += kg_sink_count_lines(pv->buf.data, off);
        pv->mid_line = pv->buf.data[off - 1] != '\n';
        memmove(pv->buf.data, pv->buf.data + off, pv->buf.len - off);
        pv->buf.len -= off;
        pv->buf.data[pv->buf.len] = '\0';
    }
    return rc;
}

/* Gives up on buffered lines after writing failed for too long. */
static void drop_buffered(struct kg_sink *s)
{
    struct file_priv *pv = s->priv;
    size_t keep = 0;
    if (pv->mid_line) {
        const char *nl = memchr(pv->buf.data, '\n', pv->buf.len);
        keep = nl ? (size_t)(nl - pv->buf.data) + 1 : pv->buf.len;
    }
    const uint64_t lost = kg_sink_count_lines(pv->buf.data + keep, pv->buf.len - keep);
    s->st.failed += lost;
    pv->buf.len = keep;
    if (pv->buf.data) pv->buf.data[keep] = '\0';
    kg_log_ratelimited(&pv->rl, 10.0, KG_LOG_ERROR, "export/file",
                       "%s: write failed: %s; dropped %llu events", s->name, strerror(pv->last_errno),
                       (unsigned long long)lost);
}

static int fi_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    if (arg[0] == '\0') return kg_err_set(err, KG_ERR_INVAL, "file: output needs a path (file:PATH)");
    const int fd = open_path(arg);
    if (fd < 0) return kg_err_set(err, KG_ERR_IO, "%s: cannot open for append: %s", arg, strerror(errno));
    struct file_priv *pv = kg_xcalloc(1, sizeof(*pv));
    pv->path = kg_xstrdup(arg);
    pv->fd = fd;
    kg_buf_init(&pv->buf);
    s->priv = pv;
    return 0;
}

static int fi_write(struct kg_sink *s, const char *json, size_t len)
{
    struct file_priv *pv = s->priv;
    kg_buf_reserve(&pv->buf, len + 1);
    kg_buf_append(&pv->buf, json, len);
    kg_buf_append_char(&pv->buf, '\n');
    if (pv->buf.len >= FILE_DRAIN_AT && drain(s) != 0 && pv->buf.len > FILE_MAX_BUFFERED) drop_buffered(s);
    return 0;
}

static int fi_flush(struct kg_sink *s, struct kg_err *err)
{
    struct file_priv *pv = s->priv;
    if (drain(s) == 0) return 0;
    if (pv->buf.len > FILE_MAX_BUFFERED) drop_buffered(s);
    return kg_err_set(err, KG_ERR_IO, "%s: write failed: %s (%zu bytes kept for retry)", pv->path,
                      strerror(pv->last_errno), pv->buf.len);
}

static int fi_reopen(struct kg_sink *s, struct kg_err *err)
{
    struct file_priv *pv = s->priv;
    /* What cannot be written to the old file goes to the new one. */
    (void)drain(s);
    if (pv->fd >= 0) close(pv->fd);
    pv->fd = open_path(pv->path);
    if (pv->fd < 0) {
        pv->last_errno = errno;
        return kg_err_set(err, KG_ERR_IO, "%s: cannot reopen: %s", pv->path, strerror(pv->last_errno));
    }
    return 0;
}

static void fi_close(struct kg_sink *s)
{
    struct file_priv *pv = s->priv;
    if (!pv) return;
    if (pv->fd >= 0) close(pv->fd);
    kg_buf_free(&pv->buf);
    free(pv->path);
    free(pv);
    s->priv = NULL;
}

const struct kg_sink_ops kg_sink_file_ops = {
    .kind = "file",
    .open = fi_open,
    .write = fi_write,
    .flush = fi_flush,
    .reopen = fi_reopen,
    .close = fi_close,
};
