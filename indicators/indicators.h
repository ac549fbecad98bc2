/*
 * indicators/indicators.h — threat indicator sets: loading feeds and
 * matching observed values against them.
 *
 * A struct kg_indicator_set is built on the control plane (load files, then
 * kg_indicator_set_finalize()), and is immutable afterwards: any number of
 * worker threads may call the kg_indicator_match_*() functions on it at
 * once without locks. Replacing a set (reload) is done by publishing a new
 * one and freeing the old after every worker has moved on (sensor/).
 *
 * Lookups never allocate and their cost does not grow with the number of
 * indicators: hashes exact in a hash table, domains by walking the name's
 * label suffixes (at most 128), addresses by probing the prefix lengths
 * present in the set (at most 33 for IPv4, 129 for IPv6), longest first.
 */
#ifndef KG_INDICATORS_H
#define KG_INDICATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kg_common.h"

enum kg_ind_type {
    KG_IND_ADDR = 0,  /* Intel::ADDR — one IPv4/IPv6 address */
    KG_IND_SUBNET,    /* Intel::SUBNET — CIDR */
    KG_IND_DOMAIN,    /* Intel::DOMAIN — matches the name and its subdomains */
    KG_IND_URL,       /* Intel::URL — host + path, scheme optional */
    KG_IND_CERT_HASH, /* Intel::CERT_HASH — SHA1 of the server certificate, hex */
    KG_IND_JA3,       /* Intel::JA3 — JA3 client hash, hex */
    KG_IND_TYPE_COUNT
};

/* "ADDR", "SUBNET", "DOMAIN", "URL", "CERT_HASH", "JA3" (static strings). */
const char *kg_ind_type_name(enum kg_ind_type t);

/* One indicator. Owned by its set; valid as long as the set. */
struct kg_indicator {
    enum kg_ind_type type;
    uint32_t id;        /* index within the set */
    const char *value;  /* as listed in the feed */
    const char *source; /* meta.source ("" when absent) */
    const char *file;   /* feed file it came from ("" for kg_indicator_set_add) */
    uint32_t line;      /* line in that file */
    int severity;       /* 1 (high) .. 3 (low) from a meta.severity column; 0 = not given */
    uint32_t nmeta;     /* extra meta.* columns, names without the "meta." prefix */
    const char *const *meta_keys;
    const char *const *meta_values;
};

struct kg_indicator_load_report {
    uint64_t loaded;      /* indicators added from this file */
    uint64_t bad_lines;   /* skipped with a warning */
    uint64_t duplicates;  /* same type+value already in the set (first one kept); an ADDR
                           * and the /32 or /128 SUBNET of the same address count as one */
};

struct kg_indicator_set;

/* Returns an owned, empty set (aborts on out-of-memory: control plane). */
struct kg_indicator_set *kg_indicator_set_new(void);

/*
 * Loads a Zeek Intel framework file (tab-separated, "#fields indicator
 * indicator_type meta.source ..." header). A bad line is skipped, logged as
 * "file:line: message" (through kg_log, component "indicators") and counted
 * in *rep; the rest loads. Returns 0, or a negative KG_ERR_* with err filled
 * when the file cannot be read or has no usable #fields header.
 * rep may be NULL. Must be called before kg_indicator_set_finalize().
 */
int kg_indicator_set_load_file(struct kg_indicator_set *s, const char *path,
                               struct kg_indicator_load_report *rep, struct kg_err *err);

/* Same as kg_indicator_set_load_file() on a feed already in memory (fetched
 * over the network, or a fuzzer's input). Borrows data (len bytes, need not
 * be NUL-terminated); `name` (borrowed, copied) stands for the file name in
 * messages and in the indicators' ->file. */
int kg_indicator_set_load_buffer(struct kg_indicator_set *s, const char *name, const char *data, size_t len,
                                 struct kg_indicator_load_report *rep, struct kg_err *err);

/* Adds one indicator (value and source are copied; source may be NULL).
 * Returns 0 (also for a duplicate, which leaves the first one in place), or
 * KG_ERR_PARSE with err filled when the value is not valid for the type. */
int kg_indicator_set_add(struct kg_indicator_set *s, enum kg_ind_type type, const char *value,
                         const char *source, struct kg_err *err);

/* Builds the lookup indexes; the set is read-only afterwards. */
void kg_indicator_set_finalize(struct kg_indicator_set *s);

size_t kg_indicator_set_count(const struct kg_indicator_set *s, enum kg_ind_type type);
size_t kg_indicator_set_total(const struct kg_indicator_set *s);

/* Most specific ADDR or SUBNET containing the address (an ADDR is a /32 or
 * /128). family 4 (4 bytes at addr) or 6 (16 bytes). NULL if none. */
const struct kg_indicator *kg_indicator_match_addr(const struct kg_indicator_set *s, uint8_t family,
                                                   const uint8_t *addr);

/* Most specific DOMAIN equal to the name or to one of its parent domains;
 * case-insensitive, a trailing dot ignored. NULL if none. */
const struct kg_indicator *kg_indicator_match_domain(const struct kg_indicator_set *s, const char *name,
                                                     size_t len);

/* URL indicator equal to host + uri (host lower-cased, default port ":80"
 * dropped; indicators may be listed with or without "http://"). */
const struct kg_indicator *kg_indicator_match_url(const struct kg_indicator_set *s, const char *host,
                                                  size_t host_len, const char *uri, size_t uri_len);

/* CERT_HASH or JA3 indicator equal to the hex value (case-insensitive). */
const struct kg_indicator *kg_indicator_match_hash(const struct kg_indicator_set *s, enum kg_ind_type type,
                                                   const char *hex, size_t len);

/* Frees the set and every indicator; NULL is a no-op. */
void kg_indicator_set_free(struct kg_indicator_set *s);

#endif /* KG_INDICATORS_H */
