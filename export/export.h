/*
 * export/export.h — alert events as EVE-style JSON, and the sinks that
 * carry them (stdout, file, Redis).
 *
 * Formatting runs on worker threads (kg_event_format_alert() takes only
 * borrowed inputs and appends to a caller's buffer); sinks run on the one
 * export thread. A sink is used by one thread at a time.
 */
#ifndef KG_EXPORT_H
#define KG_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/kg_common.h"
#include "dissect/dissect.h"
#include "indicators/indicators.h"

/* Everything an alert says. Every pointer is borrowed for the call; the
 * length-carrying strings may hold any bytes (escaped on output). */
struct kg_alert {
    uint64_t ts_us;        /* time of the matching packet */
    const char *event_id;  /* unique per event, across runs */
    const char *sensor_id; /* "host" field; NULL to omit */
    const struct kg_flow_info *flow;
    const struct kg_indicator *ind;
    const char *where; /* "tls.sni", "dns.query", "http.host", "http.url",
                          "tls.ja3", "tls.cert_sha1", "conn.src_ip", "conn.dest_ip" */
    const char *seen;  /* the value observed */
    size_t seen_len;
    /* Context; NULL when unknown. tls.* is taken from the flow (sni, ja3). */
    const char *dns_rrname;
    size_t dns_rrname_len;
    const char *http_hostname;
    size_t http_hostname_len;
    const char *http_url;
    size_t http_url_len;
};

/*
 * Appends one alert as a single-line JSON object followed by '\n' to out.
 * Fields (EVE style), in this order: timestamp, event_id, host (sensor id),
 * flow_id, event_type "alert", vlan (when tagged), src_ip, src_port,
 * dest_ip, dest_port, proto, app_proto, alert {signature, signature_id,
 * category, severity}, indicator {value, type, where, seen, source, meta},
 * and tls/dns/http when known. See docs/EVENTS.md.
 * Borrows a and everything it points to. a->flow and a->ind are required:
 * without them nothing is appended. Allocates only to grow `out`.
 */
void kg_event_format_alert(struct kg_buf *out, const struct kg_alert *a);

/* Appends s[0..len) as a JSON string (with quotes). Invalid UTF-8 bytes and
 * control characters are escaped as \u00XX, so any input gives valid JSON. */
void kg_json_append_string(struct kg_buf *out, const char *s, size_t len);

/* "2026-11-25T23:04:04.123456+0000" (UTC); buf must hold 32 bytes. */
const char *kg_format_timestamp(uint64_t ts_us, char *buf);

/* Signature id of an indicator: stable across runs and sensors (derived
 * from its type and value). */
uint32_t kg_indicator_signature_id(const struct kg_indicator *ind);

struct kg_sink_stats {
    uint64_t written;   /* events accepted */
    uint64_t delivered; /* events known to have reached the destination */
    uint64_t failed;    /* events given up on */
    uint64_t reconnects;
};

struct kg_sink;

/*
 * Returns an owned sink for a spec, or NULL with err filled:
 *   "stdout" or "-"                     JSON lines on standard output
 *   "file:PATH"                         JSON lines appended to PATH
 *   "redis://[:password@]host:port/key" RPUSH each event to list `key`
 * Connection problems are not errors here: a Redis sink connects lazily
 * and retries.
 */
struct kg_sink *kg_sink_new(const char *spec, struct kg_err *err);
/* Queues one event (a JSON object, with or without a trailing '\n'; the
 * bytes are copied). Returns 0 or a negative KG_ERR_*: KG_ERR_INVAL for an
 * empty event or one with a '\n' inside (it would break line framing),
 * KG_ERR_NOMEM when no copy can be made (the event is not accepted). */
int kg_sink_write(struct kg_sink *s, const char *json, size_t len);
/* Delivers what is queued. Returns 0 when everything queued was delivered,
 * KG_ERR_AGAIN when some is still queued (destination unreachable: it will
 * be retried on the next flush), another negative KG_ERR_* on failure.
 * A Redis sink tries to connect at most once per call (1 s connect
 * timeout, 5 s per command batch), so a caller may simply call it in a loop
 * with a pause. Delivery to Redis is at least once: a connection lost
 * after a command was sent but before its reply arrived resends it. */
int kg_sink_flush(struct kg_sink *s, struct kg_err *err);
/* Bounds a Redis sink's queue (default KG_SINK_REDIS_MAX_QUEUED events):
 * beyond it the oldest event is dropped and counted as failed. Returns 0,
 * or KG_ERR_INVAL for 0 or for a sink without a queue. */
#define KG_SINK_REDIS_MAX_QUEUED 1000000u
int kg_sink_set_queue_limit(struct kg_sink *s, size_t max_events);
/* Reopens a file sink's path after writing out its buffer (log rotation:
 * call it after the file was renamed). A no-op returning 0 for the other
 * sinks. Returns 0 or a negative KG_ERR_* with err filled. */
int kg_sink_reopen(struct kg_sink *s, struct kg_err *err);
void kg_sink_get_stats(const struct kg_sink *s, struct kg_sink_stats *out);
/* The spec with any password masked, for logs. */
const char *kg_sink_name(const struct kg_sink *s);
/* Frees the sink (without flushing); NULL is a no-op. */
void kg_sink_free(struct kg_sink *s);

#endif /* KG_EXPORT_H */
