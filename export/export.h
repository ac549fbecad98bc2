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
    int severity;          /* 1..3 overrides the indicator's (GSOC tuning); 0 = the indicator's */
    const struct kg_flow_info *flow;
    const struct kg_indicator *ind;
    const char *where; /* "tls.sni", "dns.query", "dns.answer", "http.host", "http.url",
                          "http.user_agent", "tls.ja3", "tls.ja4", "tls.cert_sha1", "conn.src_ip",
                          "conn.dest_ip", "conn.resolved" */
    const char *seen;  /* the value observed */
    size_t seen_len;
    /* Context; NULL when unknown. tls.* is taken from the flow (sni, ja3). */
    const char *dns_rrname;
    size_t dns_rrname_len;
    const char *http_hostname;
    size_t http_hostname_len;
    const char *http_url;
    size_t http_url_len;
    /* Enrichment (metadata events, see below); NULL to omit. */
    const char *community_id;     /* kg_community_id() of the flow */
    const struct kg_geo *src_geo; /* kg_geoip_lookup() of the source / destination */
    const struct kg_geo *dest_geo;
};

/*
 * Appends one alert as a single-line JSON object followed by '\n' to out.
 * Fields (EVE style), in this order: timestamp, event_id, host (sensor id),
 * flow_id, event_type "alert", vlan (when tagged), src_ip, src_port,
 * dest_ip, dest_port, proto, app_proto, community_id and src_geo/dest_geo
 * (when given), alert {signature, signature_id,
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
    /* Redis sinks (zero for the others); see docs/OUTPUTS.md: */
    uint64_t queued;        /* this run's events not yet delivered nor failed (memory + spool) */
    uint64_t spooled;       /* events in the disk spool now (this run's and earlier runs') */
    uint64_t replayed;      /* events an earlier run left in the spool, delivered by this one */
    uint64_t spool_dropped; /* events the spool_full policy dropped (this run's also count as failed) */
    uint64_t spool_corrupt; /* damaged spool regions skipped when the spool was opened */
    bool durable;           /* queued events survive kg_sink_free() (written to the disk spool) */
};

struct kg_sink;

/*
 * Returns an owned sink for a spec, or NULL with err filled:
 *   "stdout" or "-"                     JSON lines on standard output
 *   "file:PATH"                         JSON lines appended to PATH
 *   "redis://[:password@]host:port/key" RPUSH each event to list `key`
 *   "file:PATH?rotate_mb=N&keep=K"      the same, rotated at N MiB, K old files kept
 *   "redis://[user[:password]@]host[:port][,host[:port]...]/key[?options]"
 *   "rediss://..."                      the same over TLS
 *   "redis-sentinel://[user[:password]@]host[:port][,...]/master/key[?options]"
 *   "rediss-sentinel://..."             the master named by Redis Sentinel
 * Redis options: mode=list|stream|channel, maxlen, ca, cert, key, sni,
 * password_file, password_env, spool=DIR, spool_max_mb, fsync, spool_full,
 * connect_timeout_ms, timeout_ms, wait, wait_timeout_ms: docs/OUTPUTS.md.
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
 * after a command was sent but before its reply arrived resends it.
 * After a failed attempt a Redis sink waits out a back-off (100 ms doubling
 * to 5 s, jittered) before the next: a flush meanwhile returns KG_ERR_AGAIN
 * at once. Events in a Redis sink's spool count as still queued. */
int kg_sink_flush(struct kg_sink *s, struct kg_err *err);
/* Bounds a Redis sink's queue (default KG_SINK_REDIS_MAX_QUEUED events):
 * beyond it the oldest event is dropped and counted as failed. Returns 0,
 * or KG_ERR_INVAL for 0 or for a sink without a queue. With a spool
 * (spool=DIR) nothing is dropped: past min(limit, 65536) events the memory
 * queue moves to the spool. */
#define KG_SINK_REDIS_MAX_QUEUED 1000000u
int kg_sink_set_queue_limit(struct kg_sink *s, size_t max_events);
/* Reopens a file sink's path after writing out its buffer (log rotation:
 * call it after the file was renamed). A no-op returning 0 for the other
 * sinks. Returns 0 or a negative KG_ERR_* with err filled. */
int kg_sink_reopen(struct kg_sink *s, struct kg_err *err);
void kg_sink_get_stats(const struct kg_sink *s, struct kg_sink_stats *out);
/* The spec with any password masked, for logs. */
const char *kg_sink_name(const struct kg_sink *s);
/* Frees the sink (without flushing); NULL is a no-op. A Redis sink with a
 * spool first moves the events it still holds in memory to the spool (disk
 * only, never waits on Redis), so nothing undelivered is lost: a sink
 * created later on the same spool directory delivers them first. */
void kg_sink_free(struct kg_sink *s);
/* Asks every file sink to reopen its path (after an external log rotation)
 * before its next write-out. Async-signal-safe: meant for a SIGHUP handler;
 * the reopen itself happens on the export thread. */
void kg_sinks_request_reopen(void);

/* ==== Metadata events and their enrichment ==================================
 * export/event_meta.c: dns, tls, http, quic, flow and stats events, EVE
 * style, one line each; export/enrich_geoip.c: country and AS of public
 * addresses (libmaxminddb). Formatting runs on worker threads: every
 * kg_event_format_*() takes only borrowed inputs and appends one line
 * (JSON object + '\n') to the caller's buffer, allocating only to grow it.
 * Field by field in docs/EVENTS.md. */

/* Country and AS of one address. Strings are NUL-terminated. */
struct kg_geo {
    char country[3];  /* ISO 3166-1 alpha-2 ("US"), "" if unknown */
    uint32_t asn;     /* autonomous system number, 0 if unknown */
    char as_org[128]; /* AS organisation (UTF-8 from the database, cut at a character boundary), "" if unknown
                       */
};

struct kg_geoip;

/*
 * Returns an owned GeoIP handle over a country database (GeoLite2-Country,
 * GeoLite2-City, GeoIP2-Country or another MaxMind DB with country.iso_code)
 * and an AS database (GeoLite2-ASN layout: autonomous_system_number,
 * autonomous_system_organization). Either path may be NULL or "": that
 * part is off. A database that is missing or unreadable is not an error:
 * it is logged as a warning (component export/geoip), its message is left
 * in err->msg (err may be NULL; "" when both opened or were not asked
 * for), and that part is off. Never returns NULL (aborts on out-of-memory,
 * control plane). Open once at start-up; lookups are thread-safe.
 */
struct kg_geoip *kg_geoip_open(const char *country_db, const char *asn_db, struct kg_err *err);
bool kg_geoip_has_country(const struct kg_geoip *g);
bool kg_geoip_has_asn(const struct kg_geoip *g);

/*
 * Whether an address is looked up: a globally routable unicast address.
 * Not public (never looked up): IPv4 0/8, 10/8, 100.64/10 (CGNAT), 127/8,
 * 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.168/16, 198.18/15,
 * 198.51.100/24, 203.0.113/24, 224/4 (multicast), 240/4 (reserved and
 * broadcast); IPv6 outside 2000::/3 (::, ::1, fc00::/7 ULA, fe80::/10,
 * ff00::/8 multicast, ...) and inside it 2001:2::/48, 2001:db8::/32 and
 * 3fff::/20 (benchmarking and documentation). IPv4-mapped ::ffff:0:0/96
 * and NAT64 64:ff9b::/96 addresses are judged (and looked up) as the IPv4
 * address they carry. family 4 (4 bytes at addr) or 6 (16 bytes).
 */
bool kg_geoip_is_public(uint8_t family, const uint8_t *addr);

/*
 * Fills *out (zeroed first) with what the databases say about a public
 * address: country from country.iso_code (registered_country.iso_code when
 * the first is absent), ASN and organisation. Returns 1 when something was
 * found, 0 when nothing (not public, not in the databases, both off, or a
 * lookup error), KG_ERR_INVAL for a NULL argument or a family other than 4
 * or 6. Thread-safe: any number of threads may look up at once (the
 * databases are memory-mapped and read-only). No allocation.
 */
int kg_geoip_lookup(const struct kg_geoip *g, uint8_t family, const uint8_t *addr, struct kg_geo *out);

/* Closes the databases; NULL is a no-op. No lookup may be running. */
void kg_geoip_free(struct kg_geoip *g);

/* Appends `,"<key>":{"country":..,"asn":..,"as_org":..}` with the members
 * that are known; nothing when g is NULL or knows nothing. Used for
 * src_geo/dest_geo by every event formatter, alerts included. */
void kg_event_append_geo(struct kg_buf *out, const char *key, const struct kg_geo *g);

/* Appends `,"ndpi":{"protocol":..,"category":..,"risks":[..]}` once nDPI
 * has a verdict on the flow; nothing before. Alerts and every flow-bound
 * event carry it. */
void kg_event_append_ndpi(struct kg_buf *out, const struct kg_flow_info *f);

/* The header every flow-bound metadata event starts with: timestamp,
 * event_id, host, flow_id, event_type, vlan, src_ip, src_port, dest_ip,
 * dest_port, proto, app_proto, community_id, src_geo, dest_geo. src is the
 * flow's initiator, whatever the direction of the packet that carried the
 * event (as in alerts; flow_id and community_id join them). */
struct kg_event_hdr {
    uint64_t ts_us;                  /* time of the packet that carried the event */
    const char *event_id;            /* NULL to omit */
    const char *sensor_id;           /* "host"; NULL to omit */
    const struct kg_flow_info *flow; /* required: without it nothing is appended */
    const char *community_id;        /* kg_community_id() of the flow; NULL to omit */
    const struct kg_geo *src_geo;    /* NULL (or nothing known) to omit */
    const struct kg_geo *dest_geo;
};

/* --- dns --- */
/* One answer record. Strings may hold any bytes (escaped on output). */
struct kg_dns_event_answer {
    const char *rrname; /* owner name, presentation form */
    size_t rrname_len;
    uint16_t rrtype;
    uint32_t ttl;
    uint8_t addr_family; /* 4 or 6: rdata is this address (A, AAAA) */
    uint8_t addr[16];
    const char *target; /* else, when not NULL: rdata is this name (CNAME, PTR, NS) */
    size_t target_len;
};

struct kg_dns_event {
    bool is_response;   /* "type": "answer" for responses, "query" otherwise */
    uint16_t id;        /* DNS message id */
    const char *rrname; /* first question name (presentation form); NULL if none */
    size_t rrname_len;
    uint16_t rrtype;                           /* its qtype, written by name ("A", "TYPE65534") */
    uint8_t rcode;                             /* responses: written by name ("NOERROR", "NXDOMAIN") */
    const struct kg_dns_event_answer *answers; /* responses: nanswers records, may be 0 */
    size_t nanswers;
};

/* dns: {type, id, rrname, rrtype, rcode, answers: [{rrname, rrtype, ttl,
 * rdata}]}; rcode and answers for responses only, answers only when
 * nanswers > 0, an answer's rdata only when it has one. */
void kg_event_format_dns(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_dns_event *e);

/* --- tls --- */
/* NUL-terminated strings; NULL or "" omits the field. */
struct kg_tls_event {
    const char *sni;
    uint16_t version; /* TLS version number (0x0303 = "TLS 1.2"); 0 omits it */
    const char *alpn;
    const char *ja3_hash;   /* 32 hex digits */
    const char *ja3_string; /* the JA3 string hashed */
    const char *ja4;
    const char *ja3s_hash; /* JA3S of the ServerHello, 32 hex digits */
    /* The server certificate; has_cert false omits all of these. */
    bool has_cert;
    const char *subject; /* DN, "C=US, O=..., CN=..." */
    const char *issuerdn;
    const char *serial;      /* "0A:1B:..." */
    const char *cert_sha1;   /* 40 hex digits, written as "fingerprint": "aa:bb:..." */
    const char *cert_sha256; /* 64 hex digits, written as "sha256" in lower case */
    const char *notbefore;   /* "2024-01-31T12:00:00" */
    const char *notafter;
    bool self_signed;
};

/* tls: {sni, version, alpn, ja3 {hash, string}, ja4, ja3s {hash}, subject, issuerdn,
 * serial, fingerprint, sha256, notbefore, notafter, self_signed}. */
void kg_event_format_tls(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_tls_event *e);

/* --- http --- */
/* Length-carrying strings point into the payload (any bytes); NULL omits. */
struct kg_http_event {
    const char *host; /* Host header as sent ("Example.com:8080") */
    size_t host_len;
    const char *uri; /* request-target as sent */
    size_t uri_len;
    const char *method;
    size_t method_len;
    const char *user_agent;
    size_t user_agent_len;
    uint8_t version_minor;    /* "protocol": "HTTP/1.<n>"; 9 writes "HTTP/0.9" */
    uint16_t status;          /* response status; 0 when no response is known (omitted) */
    const char *content_type; /* the response's Content-Type, or the request's when no response */
    size_t content_type_len;
    bool has_length;
    uint64_t length; /* Content-Length of the response (or of the request when no response) */
};

/* http: {hostname, http_port, url, http_method, protocol, http_user_agent,
 * status, http_content_type, length}. hostname is the Host without its
 * port, http_port the port when the Host names one; url is host + URI
 * normalised as URL indicators are matched (host lower-cased, ":80"
 * dropped, an absolute-form URI's own authority preferred, "/" for an empty
 * path), e.g. "example.com/index.html?q=1". */
void kg_event_format_http(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_http_event *e);

/* --- quic --- */
struct kg_quic_event {
    uint32_t version; /* QUIC version of the client's Initial; 0 omits it */
    const char *sni;  /* NUL-terminated; NULL or "" omits */
    const char *alpn;
    const char *ja3_hash;
    const char *ja4;
};

/* quic: {version ("1", "2", "draft-29", "Q046", or "0x..." hex), sni,
 * alpn, ja3 {hash}, ja4}. */
void kg_event_format_quic(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_quic_event *e);

/* --- flow --- */
enum kg_flow_end_reason {
    KG_FLOW_END_TIMEOUT,  /* "timeout": idle past its timeout */
    KG_FLOW_END_CLOSED,   /* "closed": TCP FIN/RST seen both ways, or RST */
    KG_FLOW_END_SHUTDOWN, /* "shutdown": end of input or sensor stop */
    KG_FLOW_END_EVICTED,  /* "evicted": flow table full */
};

struct kg_flow_event {
    const char *state; /* "new", "established", "closed", ...; NULL omits */
    enum kg_flow_end_reason reason;
    bool alerted;                       /* at least one alert on this flow */
    uint8_t tcp_flags;                  /* TCP only: OR of the flags seen both ways */
    uint8_t tcp_flags_ts, tcp_flags_tc; /* ... to server, to client */
};

/* flow: {pkts_toserver, pkts_toclient, bytes_toserver, bytes_toclient,
 * start, end, age, state, reason, alerted, tcp_flags, tcp_flags_ts,
 * tcp_flags_tc}; counters, start and end from h->flow; tcp_flags* (two
 * lower-case hex digits, "1b") for TCP flows only. */
void kg_event_format_flow(struct kg_buf *out, const struct kg_event_hdr *h, const struct kg_flow_event *e);

/* --- stats --- */
/* A named counter. Dots in the name nest objects: "decoder.ipv4" becomes
 * "decoder": {"ipv4": N}. Counters sharing a prefix must be adjacent, and
 * no name may be a prefix path of another ("a" and "a.b"). */
struct kg_stat_counter {
    const char *name;
    uint64_t value;
};

/* stats: {timestamp, event_id, host, event_type "stats", stats {uptime,
 * <counters>}}; counters with a NULL name are skipped, at most 8 levels
 * of nesting (deeper dots stay in the last key). */
void kg_event_format_stats(struct kg_buf *out, uint64_t ts_us, const char *event_id, const char *sensor_id,
                           uint64_t uptime_s, const struct kg_stat_counter *c, size_t n);
/* ==== end of metadata events ================================================ */

#endif /* KG_EXPORT_H */
