/*
 * export/export_int.h — backend interface behind struct kg_sink (hiredis's
 * redisContextFuncs, libpcap's pcap-int.h). Private to export/.
 *
 * sink.c owns the struct kg_sink and the common checks (framing, the
 * `written` counter); a backend owns `priv` and keeps the other counters.
 * Everything here runs on the one export thread.
 */
#ifndef KG_EXPORT_INT_H
#define KG_EXPORT_INT_H

#include "export/export.h"

#include <string.h>

#include <stdbool.h>
#include <stdint.h>

struct redisReply;
struct kg_spool;

struct kg_sink_ops {
    const char *kind;
    /* Parses `arg` (the spec without its scheme prefix) and sets up
     * s->priv and s->name. Returns 0 or a negative KG_ERR_* with err filled. */
    int (*open)(struct kg_sink *s, const char *arg, struct kg_err *err);
    /* Takes a copy of one event: `len` > 0 bytes, no '\n' anywhere. */
    int (*write)(struct kg_sink *s, const char *json, size_t len);
    int (*flush)(struct kg_sink *s, struct kg_err *err);
    /* Optional (NULL: nothing to do). */
    int (*reopen)(struct kg_sink *s, struct kg_err *err);
    int (*set_queue_limit)(struct kg_sink *s, size_t max_events);
    /* Releases priv; never blocks on the destination. */
    void (*close)(struct kg_sink *s);
};

struct kg_sink {
    const struct kg_sink_ops *ops;
    char *name;              /* owned; the spec with any password masked */
    struct kg_sink_stats st; /* `written` kept by sink.c, the rest by the backend */
    void *priv;              /* backend state */
};

extern const struct kg_sink_ops kg_sink_stdout_ops;
extern const struct kg_sink_ops kg_sink_file_ops;
extern const struct kg_sink_ops kg_sink_redis_ops;
extern const struct kg_sink_ops kg_sink_rediss_ops;
extern const struct kg_sink_ops kg_sink_redis_sentinel_ops;
extern const struct kg_sink_ops kg_sink_rediss_sentinel_ops;

/* Number of '\n' in p[0..n): line sinks count delivered events this way. */
uint64_t kg_sink_count_lines(const char *p, size_t n);

/* --- export/sink.c: reopen requests (SIGHUP) ------------------------------- */

/* Generation counter bumped by kg_sinks_request_reopen(); a file sink that
 * sees it change reopens its path before its next write-out. */
uint64_t kg_sink_reopen_generation(void);

/* --- export/sink_spool.c: the disk spool behind a Redis sink --------------- */

/*
 * An append-only queue of records in segment files under one directory,
 * replayed in order and removed only once acknowledged (at least once).
 * Format and recovery rules: the top of sink_spool.c and docs/OUTPUTS.md.
 * One owner thread; the directory is locked (flock) against a second
 * process or sink.
 */
enum kg_spool_fsync { KG_SPOOL_FSYNC_BATCH = 0, KG_SPOOL_FSYNC_ALWAYS, KG_SPOOL_FSYNC_NEVER };
enum kg_spool_full { KG_SPOOL_DROP_OLDEST = 0, KG_SPOOL_DROP_NEWEST };

struct kg_spool_opts {
    const char *dir;    /* created (mode 0700) when missing; borrowed */
    uint64_t max_bytes; /* bound on the segment files together */
    enum kg_spool_fsync fsync;
    enum kg_spool_full full;
    const char *log_name; /* for log lines (the sink's masked name); borrowed */
};

/* Position just past one record: what kg_spool_ack() takes. */
struct kg_spool_pos {
    uint64_t seq; /* segment number */
    uint64_t off; /* offset just past the record */
    bool old;     /* the record was left by an earlier run */
};

struct kg_spool_stats {
    uint64_t records;       /* records not yet acknowledged */
    uint64_t bytes;         /* size of the segment files, buffered appends included */
    uint64_t recovered;     /* records found at open (left by an earlier run) */
    uint64_t dropped_new;   /* this run's records dropped by the spool_full policy */
    uint64_t dropped_old;   /* earlier runs' records dropped by the spool_full policy */
    uint64_t corrupt;       /* damaged or truncated records skipped (found at open) */
    uint64_t corrupt_bytes; /* bytes skipped with them */
    uint64_t io_errors;     /* appends that failed (disk full, ...) */
};

/* Opens (and scans) the spool at o->dir. Returns owned, or NULL with err. */
struct kg_spool *kg_spool_open(const struct kg_spool_opts *o, struct kg_err *err);
/* Appends one record (copied). Returns 0; KG_ERR_FULL when the spool is full
 * and the record was dropped (drop_newest, or a record larger than the
 * spool); KG_ERR_IO when it could not be written (the record is lost). */
int kg_spool_append(struct kg_spool *sp, const char *p, size_t n);
/* Writes buffered appends out, and fdatasync()s them unless fsync=never.
 * Returns 0 or KG_ERR_IO. Called on every sink flush and by close. */
int kg_spool_sync(struct kg_spool *sp);
/* Next record after the read cursor: *p valid until the next call to any
 * kg_spool_* function. Returns 0, or KG_ERR_EOF when every record was read. */
int kg_spool_read(struct kg_spool *sp, const char **p, size_t *n, struct kg_spool_pos *pos);
/* The record read at `pos` (from kg_spool_read) is settled: removed. Called
 * once per record, in read order; a record acknowledged again (read twice
 * after a rewind) or whose segment was dropped meanwhile is ignored. A
 * segment goes once all its records are acknowledged. */
void kg_spool_ack(struct kg_spool *sp, const struct kg_spool_pos *pos);
/* Read cursor back to the first record not acknowledged (a lost connection). */
void kg_spool_rewind(struct kg_spool *sp);
/* True when no record waits (everything appended was acknowledged). */
bool kg_spool_empty(const struct kg_spool *sp);
void kg_spool_get_stats(const struct kg_spool *sp, struct kg_spool_stats *out);
/* Writes buffered appends and the acknowledgement mark out (fsync per the
 * policy) and frees; NULL is a no-op. Records not acknowledged stay on disk
 * for the next kg_spool_open(). */
void kg_spool_close(struct kg_spool *sp);

/* CRC32C (Castagnoli) of p[0..n), continuing from `crc` (0 to start). */
uint32_t kg_crc32c(uint32_t crc, const void *p, size_t n);

/* --- export/redis_conn.c: one connection to a Redis server, plain or TLS --- */

/*
 * Kagami's own socket (non-blocking, connect with a timeout), optionally
 * wrapped in OpenSSL, with hiredis's reply reader on top. Plain and TLS
 * connections take the same code path; only the byte transport differs.
 * One owner thread.
 */
struct kg_tls_config;
struct kg_rconn;

/* A TLS client context: TLS 1.2 minimum, peer verification on, CA from
 * `ca` (a PEM file or a hashed directory; NULL: the system store), optional
 * client certificate chain `cert` with key `key` (both or neither). Returns
 * owned, or NULL with err. Borrows the strings. */
struct kg_tls_config *kg_tls_config_new(const char *ca, const char *cert, const char *key,
                                        struct kg_err *err);
void kg_tls_config_free(struct kg_tls_config *t);

/* Connects to host:port: TCP within connect_ms, then (tls non-NULL) the TLS
 * handshake within io_ms, verifying the certificate against `verify_name`
 * (NULL: host; an IP address is checked against the certificate's IP
 * addresses) and sending `verify_name` as SNI unless it is an address.
 * Returns owned, or NULL with err ("cannot connect to H:P: ...", "TLS
 * handshake with H:P failed: ..."). Borrows tls, which must outlive it. */
struct kg_rconn *kg_rconn_connect(const char *host, int port, const struct kg_tls_config *tls,
                                  const char *verify_name, int connect_ms, int io_ms, struct kg_err *err);
void kg_rconn_free(struct kg_rconn *c);
/* "host:port", valid while c lives. */
const char *kg_rconn_peer(const struct kg_rconn *c);
/*
 * One round of I/O: writes what the socket takes of out[*off..len) (moving
 * *off) and feeds what arrived to the reply reader. Waits up to timeout_ms
 * when neither was possible at once. *progress tells whether any byte
 * moved. Returns 0, or a negative KG_ERR_* with err filled when the
 * connection is unusable (closed by the server, I/O or TLS error).
 */
int kg_rconn_pump(struct kg_rconn *c, const char *out, size_t len, size_t *off, int timeout_ms,
                  bool *progress, struct kg_err *err);
/* Takes the next complete reply: 1 with *reply (owned: freeReplyObject),
 * 0 when none is complete yet, KG_ERR_PARSE on a protocol error. */
int kg_rconn_reply(struct kg_rconn *c, struct redisReply **reply, struct kg_err *err);
/* Sends one command (argv as redisFormatCommandArgv) and waits up to
 * timeout_ms for its reply. Returns 0 with *reply owned, or a negative
 * KG_ERR_* with err filled. Only for a connection with nothing in flight. */
int kg_rconn_command(struct kg_rconn *c, int argc, const char **argv, const size_t *argvlen, int timeout_ms,
                     struct redisReply **reply, struct kg_err *err);

/* Shared by the alert (event.c) and metadata (event_meta.c) formatters. */
/* A NUL-terminated string as a JSON string (NULL as ""). */
static inline void kg_json_append_cstr(struct kg_buf *out, const char *s)
{
    kg_json_append_string(out, s ? s : "", s ? strlen(s) : 0);
}

/* An unsigned integer in decimal, without snprintf (every event has several). */
static inline void kg_json_append_u64(struct kg_buf *out, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    kg_buf_append(out, tmp + i, sizeof(tmp) - i);
}

/* "TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", "GRE", or the number in tmp4 (4 bytes). */
const char *kg_export_proto_name(uint8_t proto, char *tmp4);
/* "TLS 1.2", "TLS 1.3", "DTLS 1.2", ... as Suricata writes them; tmp (at
 * least 24 bytes) holds the ones built on the fly ("TLS 1.3 draft-28", "0x1234"). */
const char *kg_export_tls_version_name(uint16_t v, char *tmp);
/* Whether events carry src_port/dest_port for the protocol. */
bool kg_export_proto_has_ports(uint8_t proto);

#endif /* KG_EXPORT_INT_H */
