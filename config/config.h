/*
 * config/config.h — the sensor's settings: defaults, the YAML file (libyaml),
 * and command-line overrides, all driven by one declarative key table
 * (key, type, default, field offset, help) that also produces
 * --dump-config output and docs/CONFIG.md.
 *
 * Control plane only: single-threaded, may abort on out-of-memory.
 */
#ifndef KG_CONFIG_H
#define KG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kg_common.h"

/* A list of owned strings. */
struct kg_strlist {
    char **items;
    size_t count;
};

/* After kg_config_init() every char * field is non-NULL; capture_bpf, the
 * geoip paths, indicator_tuning and indicator_redis may be "" (none / off),
 * the others are never empty. */
struct kg_config {
    /* sensor */
    char *sensor_id;            /* "sensor.id": name in every event; default: host name */
    char *log_level;            /* "sensor.log_level": error|warning|info|debug */
    uint32_t workers;           /* "sensor.workers": 0 = cores - 1, at least 1 */
    /* input */
    struct kg_strlist read_files; /* "input.files": captures to read (-r) */
    /* live capture */
    struct kg_strlist capture_ifaces; /* "capture.interfaces" (-i) */
    uint32_t capture_threads;   /* "capture.threads": capture+worker threads per interface */
    uint32_t capture_snaplen;   /* "capture.snaplen" */
    bool capture_promisc;       /* "capture.promisc" */
    uint32_t capture_buffer_mb; /* "capture.buffer_mb": kernel ring per thread */
    char *capture_bpf;          /* "capture.bpf": BPF filter, "" = none (-f) */
    uint32_t capture_dedup_ms;  /* "capture.dedup_ms": SPAN duplicate window, 0 = off */
    /* indicators */
    struct kg_strlist indicator_files; /* "indicators.files" (--indicators) */
    char *indicator_tuning;            /* "indicators.tuning": analysts' tuning file, "" = none */
    struct kg_strlist indicator_trusted_keys; /* "indicators.trusted_keys": PEM Ed25519 public keys */
    bool indicator_require_signature;  /* "indicators.require_signature": every feed signed */
    char *indicator_redis;             /* "indicators.redis": redis://[:password@]host:port/key, "" = none */
    uint32_t indicator_redis_poll;     /* "indicators.redis_poll": seconds between polls */
    bool indicator_watch;              /* "indicators.watch": reload when a feed or tuning file changes */
    /* outputs */
    struct kg_strlist outputs;  /* "outputs": sink specs (-o); default: stdout */
    /* flows */
    uint32_t flow_max;          /* "flow.max_flows": per worker */
    uint32_t flow_tcp_timeout;  /* "flow.tcp_timeout": seconds */
    uint32_t flow_udp_timeout;  /* "flow.udp_timeout": seconds */
    uint32_t flow_other_timeout;/* "flow.other_timeout": seconds */
    bool flow_vlan_in_key;      /* "flow.vlan_in_key" */
    /* decoder */
    uint32_t decoder_max_depth; /* "decoder.max_depth": nested encapsulations followed */
    /* IP reassembly */
    uint32_t defrag_max_mb;     /* "defrag.max_mb": per worker */
    uint32_t defrag_timeout;    /* "defrag.timeout": seconds */
    /* pipeline */
    uint32_t ring_size;         /* "pipeline.ring_size": batches per worker ring (power of two) */
    uint32_t batch_packets;     /* "pipeline.batch_packets": packets per batch */
    uint32_t alert_queue;       /* "pipeline.alert_queue": events per worker->export ring (power of two) */
    /* stats */
    uint32_t stats_interval;    /* "stats.interval": seconds between stats events, 0 = off */
    struct kg_strlist stats_outputs; /* "stats.outputs": sinks for stats/reload/error events; empty = outputs */
    /* metadata events */
    bool events_dns, events_tls, events_http, events_quic, events_flow; /* "events.*" */
    /* enrichment */
    char *geoip_country_db;     /* "geoip.country_db": GeoLite2/GeoIP2 Country or City .mmdb, "" = off */
    char *geoip_asn_db;         /* "geoip.asn_db": ASN .mmdb, "" = off */
};

/* Fills every field with its default (lists empty; sensor_id is the host
 * name). Does not free what cfg held: call kg_config_free() first to reuse. */
void kg_config_init(struct kg_config *cfg);

/*
 * Loads a YAML file over the current values. Nested mappings name keys by
 * path ("flow:\n  max_flows: 1000" sets "flow.max_flows"); lists are YAML
 * sequences (a scalar is taken as a one-element list) and a list in the file
 * replaces the current one. Unknown keys, wrong types, out-of-range values
 * and duplicate keys are errors. On error returns a negative KG_ERR_*
 * (KG_ERR_IO: unreadable, KG_ERR_PARSE: not YAML, KG_ERR_INVAL: bad setting)
 * with err as "file:line: message" (line numbers 1-based) or "file: cannot
 * open: reason"; cfg is then left unchanged.
 */
int kg_config_load_file(struct kg_config *cfg, const char *path, struct kg_err *err);

/* Sets one key from text (command line), parsed like a value in the file.
 * For list keys the value is appended, and an empty value clears the list;
 * for capture.bpf, geoip.*, indicators.tuning and indicators.redis an empty
 * value means none, for sensor.id the host name. Returns 0 or KG_ERR_INVAL with err as "key: message" (or
 * "unknown key 'x' (did you mean 'y'?)", or for a section named as a key
 * "unknown key 'flow' ('flow' is a section: did you mean 'flow.max_flows',
 * ...?)"); on error cfg is unchanged. Borrows key and value. */
int kg_config_set(struct kg_config *cfg, const char *key, const char *value, struct kg_err *err);

/* kg_config_set() from one "key=value" argument (a generic --set option). */
int kg_config_set_pair(struct kg_config *cfg, const char *pair, struct kg_err *err);

/* Name of the i-th key in table order ("sensor.id", ...), or NULL when i is
 * past the last; returns a static string. For help output and tests. */
const char *kg_config_key_name(size_t i);

/* Checks every field against its key's rules (in case a caller wrote fields
 * directly; a NULL string is an error) and the cross-field constraints.
 * Returns 0 or KG_ERR_INVAL. */
int kg_config_validate(const struct kg_config *cfg, struct kg_err *err);

/* Writes the effective configuration as YAML that kg_config_load_file() reads back. */
void kg_config_dump(const struct kg_config *cfg, FILE *out);

/* Writes the key reference (Markdown table) for docs/CONFIG.md. */
void kg_config_write_reference(FILE *out);

/* Frees owned strings and lists; the struct itself is the caller's. */
void kg_config_free(struct kg_config *cfg);

#endif /* KG_CONFIG_H */
