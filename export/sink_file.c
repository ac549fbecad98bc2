/*
 * export/sink_file.c — events as JSON lines appended to a file
 * ("file:PATH", or "file:PATH?rotate_mb=N&keep=K").
 *
 * The file is opened O_APPEND (so another writer, or a logrotate
 * copytruncate, never makes us overwrite), created 0640 (alerts name hosts
 * and sites: not world-readable). Lines collect in our own buffer and go
 * out with write(2) when 64 KiB are waiting and on every flush; fsync is
 * left to the kernel, as in Suricata's eve.json. Events count as delivered
 * once their '\n' was written.
 *
 * Rotation: with rotate_mb=N the sink itself rotates before a write would
 * take the file past N MiB (PATH -> PATH.1 -> ... -> PATH.K, the oldest
 * deleted; keep=K, default 5; keep=0 keeps none), always between two lines,
 * so every file holds whole events and stays under N MiB unless one line is
 * larger. For an external rotation (logrotate without copytruncate), the
 * file is reopened by kg_sink_reopen() or, from a SIGHUP handler,
 * kg_sinks_request_reopen(): the reopen is then done by the export thread
 * at the next write-out, again between two lines.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_DRAIN_AT (64u * 1024u)
#define FILE_MAX_BUFFERED (16u * 1024u * 1024u)
#define FILE_DEFAULT_KEEP 5u
#define FILE_MAX_KEEP 1000u

struct file_priv {
    char *path;
    int fd;            /* -1 after a failed reopen: retried on the next drain */
    struct kg_buf buf; /* lines not yet written; may start mid-line */
    bool mid_line;     /* the file ends with part of buf's first line */
    int last_errno;
    uint64_t rotate_bytes; /* 0: no size rotation */
    unsigned keep;
    uint64_t size;       /* bytes in the current file, as far as we know */
    uint64_t reopen_gen; /* kg_sink_reopen_generation() when last (re)opened */
    struct kg_ratelimit rl, rl_rot;
};

static int open_path(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Closes and reopens the path (after a rename by someone else, or ours). */
static int reopen_fd(struct file_priv *pv)
{
    if (pv->fd >= 0) close(pv->fd);
    pv->reopen_gen = kg_sink_reopen_generation();
    pv->fd = open_path(pv->path);
    if (pv->fd < 0) {
        pv->last_errno = errno;
        return KG_ERR_IO;
    }
    pv->size = file_size(pv->fd);
    return 0;
}

/* PATH -> PATH.1 -> ... -> PATH.keep (the oldest falls off), then a new
 * PATH. Rename failures other than "no such file" are logged; the new file
 * is opened in any case, so events keep flowing. */
static int rotate(struct kg_sink *s)
{
    struct file_priv *pv = s->priv;
    const size_t plen = strlen(pv->path);
    char *from = kg_xmalloc(plen + 16), *to = kg_xmalloc(plen + 16);
    if (pv->keep == 0) {
        if (unlink(pv->path) != 0 && errno != ENOENT)
            kg_log_ratelimited(&pv->rl_rot, 10.0, KG_LOG_WARN, "export/file",
                               "%s: cannot remove for rotation: %s", pv->path, strerror(errno));
    } else {
        for (unsigned i = pv->keep; i >= 1; i--) {
            if (i == 1)
                snprintf(from, plen + 16, "%s", pv->path);
            else
                snprintf(from, plen + 16, "%s.%u", pv->path, i - 1);
            snprintf(to, plen + 16, "%s.%u", pv->path, i);
            if (rename(from, to) != 0 && errno != ENOENT)
                kg_log_ratelimited(&pv->rl_rot, 10.0, KG_LOG_WARN, "export/file",
                                   "%s: cannot rename to %s: %s", from, to, strerror(errno));
        }
    }
    free(from);
    free(to);
    return reopen_fd(pv);
}

/* Writes out as much of the buffer as the file takes, rotating and
 * reopening between lines as asked. Returns 0 when the buffer is empty,
 * KG_ERR_IO otherwise (errno in last_errno). */
static int drain(struct kg_sink *s)
{
    struct file_priv *pv = s->priv;
    if (!pv->mid_line && pv->reopen_gen != kg_sink_reopen_generation() && reopen_fd(pv) != 0)
        return KG_ERR_IO;
    if (pv->buf.len == 0) return 0;
    if (pv->fd < 0 && reopen_fd(pv) != 0) return KG_ERR_IO;
    size_t off = 0;
    int rc = 0;
    while (off < pv->buf.len) {
        size_t end = pv->buf.len;
        if (pv->rotate_bytes && !pv->mid_line) {
            /* Whole lines that fit under the limit; at least one line in an
             * empty file, or there would be no progress. */
            const uint64_t room = pv->size < pv->rotate_bytes ? pv->rotate_bytes - pv->size : 0;
            if (end - off > room) {
                const char *nl = room ? memrchr(pv->buf.data + off, '\n', (size_t)room) : NULL;
                if (nl) {
                    end = (size_t)(nl - pv->buf.data) + 1;
                } else if (pv->size > 0) {
                    if (rotate(s) != 0) {
                        rc = KG_ERR_IO;
                        break;
                    }
                    continue;
                } else {
                    nl = memchr(pv->buf.data + off, '\n', pv->buf.len - off);
                    end = nl ? (size_t)(nl - pv->buf.data) + 1 : pv->buf.len;
                }
            }
        }
        const ssize_t n = write(pv->fd, pv->buf.data + off, end - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pv->last_errno = n < 0 ? errno : EIO;
            rc = KG_ERR_IO;
            break;
        }
        off += (size_t)n;
        pv->size += (uint64_t)n;
        pv->mid_line = pv->buf.data[off - 1] != '\n';
    }
    if (off > 0) {
        s->st.delivered += kg_sink_count_lines(pv->buf.data, off);
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

/* "PATH?rotate_mb=N&keep=K": options only when what follows the last '?'
 * starts with a known option name, so other paths with a '?' still work. */
static int parse_file_spec(struct file_priv *pv, const char *arg, struct kg_err *err)
{
    const char *q = strrchr(arg, '?');
    if (!q || (strncmp(q + 1, "rotate_mb=", 10) != 0 && strncmp(q + 1, "keep=", 5) != 0)) {
        pv->path = kg_xstrdup(arg);
        return 0;
    }
    pv->path = kg_xstrndup(arg, (size_t)(q - arg));
    pv->keep = FILE_DEFAULT_KEEP;
    for (const char *o = q + 1; o;) {
        const char *amp = strchr(o, '&');
        const size_t olen = amp ? (size_t)(amp - o) : strlen(o);
        const char *eq = memchr(o, '=', olen);
        uint64_t v = 0;
        bool num = eq && eq + 1 < o + olen;
        for (const char *p = eq ? eq + 1 : o; num && p < o + olen; p++) {
            if (*p < '0' || *p > '9' || v > 1000000)
                num = false;
            else
                v = v * 10 + (uint64_t)(*p - '0');
        }
        const size_t klen = eq ? (size_t)(eq - o) : olen;
        if (klen == 9 && memcmp(o, "rotate_mb", 9) == 0 && num && v >= 1 && v <= 1000000) {
            pv->rotate_bytes = v << 20;
        } else if (klen == 4 && memcmp(o, "keep", 4) == 0 && num && v <= FILE_MAX_KEEP) {
            pv->keep = (unsigned)v;
        } else {
            return kg_err_set(err, KG_ERR_INVAL,
                              "file output: bad option '%.*s' (expected rotate_mb=1..1000000, keep=0..%u)",
                              (int)KG_MIN(olen, (size_t)40), o, FILE_MAX_KEEP);
        }
        o = amp ? amp + 1 : NULL;
    }
    if (pv->path[0] == '\0') return kg_err_set(err, KG_ERR_INVAL, "file: output needs a path (file:PATH)");
    return 0;
}

static void fi_close(struct kg_sink *s);

static int fi_open(struct kg_sink *s, const char *arg, struct kg_err *err)
{
    if (arg[0] == '\0') return kg_err_set(err, KG_ERR_INVAL, "file: output needs a path (file:PATH)");
    struct file_priv *pv = kg_xcalloc(1, sizeof(*pv));
    pv->fd = -1;
    kg_buf_init(&pv->buf);
    s->priv = pv;
    int rc = parse_file_spec(pv, arg, err);
    if (rc == 0 && reopen_fd(pv) != 0)
        rc = kg_err_set(err, KG_ERR_IO, "%s: cannot open for append: %s", pv->path, strerror(pv->last_errno));
    if (rc != 0) {
        fi_close(s);
        return rc;
    }
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
    if (reopen_fd(pv) != 0)
        return kg_err_set(err, KG_ERR_IO, "%s: cannot reopen: %s", pv->path, strerror(pv->last_errno));
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
