/*
 * common/kg_common.h — what every Kagami module shares: error codes, the
 * error-report struct, tagged and rate-limited logging, control-plane
 * allocation helpers, clocks, a growable byte buffer, and the YAML reader
 * that the configuration and tuning loaders share.
 *
 * Threads: everything here is thread-safe. Owns nothing global but the
 * log level and the log rate limiter state (atomics).
 */
#ifndef KG_COMMON_H
#define KG_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes: 0 on success, a negative KG_ERR_* otherwise. */
enum {
    KG_OK = 0,
    KG_ERR_NOMEM = -1,
    KG_ERR_IO = -2,
    KG_ERR_PARSE = -3,
    KG_ERR_INVAL = -4,
    KG_ERR_FULL = -5,
    KG_ERR_EOF = -6,
    KG_ERR_AGAIN = -7,
    KG_ERR_CONNECT = -8,
};

/* Human-readable name of a KG_ERR_* code; returns a static string. */
const char *kg_strerror(int code);

/* Error report filled by constructors that return NULL (libpcap's errbuf). */
struct kg_err {
    char msg[512];
};

/* Formats into err->msg (err may be NULL) and returns `code`, so callers can write
 * `return kg_err_set(err, KG_ERR_IO, "...")`. */
int kg_err_set(struct kg_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- logging ------------------------------------------------------------ */
enum kg_log_level { KG_LOG_ERROR = 0, KG_LOG_WARN = 1, KG_LOG_INFO = 2, KG_LOG_DEBUG = 3 };

void kg_log_set_level(enum kg_log_level level);
enum kg_log_level kg_log_get_level(void);

/* Writes "[component] message" to stderr, one line, atomically. */
void kg_log(enum kg_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Rate-limited log: at most one line per `interval_s` seconds per call site
 * (the caller passes a static state word). Suppressed lines are counted and
 * reported with the next line that goes out.
 */
struct kg_ratelimit {
    uint64_t next_ns;     /* atomic */
    uint64_t suppressed;  /* atomic */
};
void kg_log_ratelimited(struct kg_ratelimit *rl, double interval_s, enum kg_log_level level,
                        const char *component, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* --- control-plane allocation (aborts with a message on out-of-memory) --- */
void *kg_xmalloc(size_t n);
void *kg_xcalloc(size_t nmemb, size_t size);
void *kg_xrealloc(void *p, size_t n);
char *kg_xstrdup(const char *s);
char *kg_xstrndup(const char *s, size_t n);

/* --- clocks --------------------------------------------------------------- */
uint64_t kg_monotonic_ns(void);
uint64_t kg_realtime_us(void);

/* --- growable byte buffer (control plane and export; not per packet) ------ */
struct kg_buf {
    char *data;
    size_t len;
    size_t cap;
};
void kg_buf_init(struct kg_buf *b);
void kg_buf_free(struct kg_buf *b);
void kg_buf_reset(struct kg_buf *b);
void kg_buf_reserve(struct kg_buf *b, size_t extra);
void kg_buf_append(struct kg_buf *b, const void *p, size_t n);
void kg_buf_append_str(struct kg_buf *b, const char *s);
void kg_buf_append_char(struct kg_buf *b, char c);
void kg_buf_printf(struct kg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- small string helpers ------------------------------------------------- */
/* Copies at most dstsize-1 bytes and NUL-terminates; returns strlen(src). */
size_t kg_strlcpy(char *dst, const char *src, size_t dstsize);
/* 64-bit FNV-1a, for stable ids (not for hash tables fed by traffic). */
uint64_t kg_fnv1a64(const void *p, size_t n, uint64_t seed);

/* --- YAML files (libyaml): the loaders of config/ and indicators/ ----------
 * Code: common/kg_yaml.c. Callers include <yaml.h> for the events. */
struct yaml_parser_s;
struct yaml_event_s;
struct kg_yaml {
    struct yaml_parser_s *parser;
    const char *path; /* the name messages give the file */
    const char *text; /* the whole text: reader errors carry byte offsets, not lines */
    size_t len;
    struct kg_err *err;
};
/* Starts reading text[0..len), which must outlive y, as does path. Aborts
 * on out-of-memory (control plane). */
void kg_yaml_open(struct kg_yaml *y, const char *path, const char *text, size_t len, struct kg_err *err);
void kg_yaml_close(struct kg_yaml *y);
/* Reports "path:line: message" (line0: libyaml's 0-based line) into y->err;
 * returns code. */
int kg_yaml_error(struct kg_yaml *y, int code, size_t line0, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The next event (free it with yaml_event_delete). A syntax error or an
 * alias (refused here, so no loader sees one) is reported as
 * "path:line: message" and returned as KG_ERR_PARSE; KG_ERR_NOMEM if libyaml
 * runs out of memory. */
int kg_yaml_next(struct kg_yaml *y, struct yaml_event_s *ev);
/* YAML's null: an empty or ~/null plain scalar ("key:" with nothing after it). */
bool kg_yaml_is_null(const struct yaml_event_s *ev);
/* How a node that is not a scalar reads after "got": "a mapping", "a list" or "nothing". */
const char *kg_yaml_kind(const struct yaml_event_s *ev);

#define KG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KG_MAX(a, b) ((a) > (b) ? (a) : (b))
#define KG_LIKELY(x) __builtin_expect(!!(x), 1)
#define KG_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif /* KG_COMMON_H */
