/*
 * common/kg_common.c — error strings, logging, allocation helpers, clocks,
 * growable buffers. Thread-safe; the only shared state is the log level.
 */
#include "common/kg_common.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int g_log_level = KG_LOG_INFO;

const char *kg_strerror(int code)
{
    switch (code) {
    case KG_OK: return "ok";
    case KG_ERR_NOMEM: return "out of memory";
    case KG_ERR_IO: return "i/o error";
    case KG_ERR_PARSE: return "parse error";
    case KG_ERR_INVAL: return "invalid argument";
    case KG_ERR_FULL: return "full";
    case KG_ERR_EOF: return "end of input";
    case KG_ERR_AGAIN: return "try again";
    case KG_ERR_CONNECT: return "connection failed";
    default: return "unknown error";
    }
}

int kg_err_set(struct kg_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void kg_log_set_level(enum kg_log_level level)
{
    atomic_store(&g_log_level, (int)level);
}

enum kg_log_level kg_log_get_level(void)
{
    return (enum kg_log_level)atomic_load(&g_log_level);
}

static const char *level_name(enum kg_log_level l)
{
    switch (l) {
    case KG_LOG_ERROR: return "error";
    case KG_LOG_WARN: return "warning";
    case KG_LOG_INFO: return "info";
    default: return "debug";
    }
}

__attribute__((format(printf, 4, 0))) static void vlog(enum kg_log_level level, const char *component,
                                                      uint64_t suppressed, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "[%s] %s: ", component, level_name(level));
    if (n < 0) return;
    if ((size_t)n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof(line) - 48) n = (int)sizeof(line) - 48;
    if (suppressed) n += snprintf(line + n, sizeof(line) - (size_t)n, " (%llu similar suppressed)",
                                  (unsigned long long)suppressed);
    line[n++] = '\n';
    /* One write(2)-sized fwrite on an unbuffered stream keeps lines whole across threads. */
    fwrite(line, 1, (size_t)n, stderr);
}

void kg_log(enum kg_log_level level, const char *component, const char *fmt, ...)
{
    if ((int)level > atomic_load(&g_log_level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, component, 0, fmt, ap);
    va_end(ap);
}

void kg_log_ratelimited(struct kg_ratelimit *rl, double interval_s, enum kg_log_level level,
                        const char *component, const char *fmt, ...)
{
    if ((int)level > atomic_load(&g_log_level)) return;
    uint64_t now = kg_monotonic_ns();
    _Atomic uint64_t *next = (_Atomic uint64_t *)&rl->next_ns;
    _Atomic uint64_t *sup = (_Atomic uint64_t *)&rl->suppressed;
    uint64_t due = atomic_load(next);
    if (now < due || !atomic_compare_exchange_strong(next, &due, now + (uint64_t)(interval_s * 1e9))) {
        atomic_fetch_add(sup, 1);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(level, component, atomic_exchange(sup, 0), fmt, ap);
    va_end(ap);
}

static void oom(size_t n)
{
    fprintf(stderr, "[common] error: out of memory allocating %zu bytes, aborting\n", n);
    abort();
}

void *kg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *kg_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p) oom(nmemb * size);
    return p;
}

void *kg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *kg_xstrdup(const char *s)
{
    return kg_xstrndup(s, strlen(s));
}

char *kg_xstrndup(const char *s, size_t n)
{
    char *p = kg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t kg_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kg_realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000u;
}

void kg_buf_init(struct kg_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void kg_buf_free(struct kg_buf *b)
{
    free(b->data);
    kg_buf_init(b);
}

void kg_buf_reset(struct kg_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void kg_buf_reserve(struct kg_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1; /* +1 keeps room for a terminating NUL */
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    b->data = kg_xrealloc(b->data, cap);
    b->cap = cap;
}

void kg_buf_append(struct kg_buf *b, const void *p, size_t n)
{
    kg_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kg_buf_append_str(struct kg_buf *b, const char *s)
{
    kg_buf_append(b, s, strlen(s));
}

void kg_buf_append_char(struct kg_buf *b, char c)
{
    kg_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void kg_buf_printf(struct kg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(small)) {
        kg_buf_append(b, small, (size_t)n);
        return;
    }
    kg_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t kg_strlcpy(char *dst, const char *src, size_t dstsize)
{
    size_t n = strlen(src);
    if (dstsize) {
        size_t c = n < dstsize - 1 ? n : dstsize - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

uint64_t kg_fnv1a64(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
