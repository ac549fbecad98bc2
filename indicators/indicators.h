/*
 * indicators/indicators.h — threat indicator sets: loading feeds and
 * matching observed values against them.
 *
 * A struct kg_indicator_set is built on the control plane (load files, then
 * kg_indicator_set_finalize()), and is immutable afterwards: any number of
 * worker threads may call the kg_indicator_match_*() functions on it at
 * once without locks (and only then: the address index is completed by
 * finalize). Replacing a set (reload) is done by publishing a new one and
 * freeing the old after every worker has moved on (sensor/).
 *
 * Feeds: Zeek Intel files, plain lists, STIX 2.1 bundles, MISP CSV exports,
 * Suricata dataset files and abuse.ch SSLBL CSVs, detected from the content
 * or named by a "format:" prefix on the path (docs/INDICATORS.md). A feed
 * may be signed (detached Ed25519 signature in PATH.sig).
 *
 * Lookups never allocate and their cost does not grow with the number of
 * indicators: one hash probe for an exact value, one per label for a
 * domain, and for an IPv4 address one hash probe plus a two-level table
 * read (prefixes up to /24) plus, rarely, one probe per length /25-/31.
 *
 * Validity: every match function takes `now_us` (microseconds since the
 * Unix epoch) as its last argument. An indicator whose validity window
 * (valid_from_us, valid_until_us) does not contain now_us never matches,
 * and the most specific indicator that is valid wins. now_us = 0 skips the
 * check (every indicator is valid).
 */
#ifndef KG_INDICATORS_H
#define KG_INDICATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kg_common.h"

enum kg_ind_type {
    KG_IND_ADDR = 0,   /* Intel::ADDR — one IPv4/IPv6 address */
    KG_IND_SUBNET,     /* Intel::SUBNET — CIDR */
    KG_IND_DOMAIN,     /* Intel::DOMAIN — matches the name and its subdomains */
    KG_IND_URL,        /* Intel::URL — host + path, scheme optional */
    KG_IND_CERT_HASH,  /* Intel::CERT_HASH — SHA1 (or SHA256) of the server certificate, hex */
    KG_IND_JA3,        /* Intel::JA3 — JA3 client hash, hex */
    KG_IND_JA4,        /* Intel::JA4 — JA4 client fingerprint "t13d1516h2_8daaf6152771_e5627efa2ab1" */
    KG_IND_FILE_HASH,  /* Intel::FILE_HASH — MD5, SHA1 or SHA256 of a file, hex */
    KG_IND_SOFTWARE,   /* Intel::SOFTWARE — an HTTP User-Agent, exact and case-sensitive */
    KG_IND_TYPE_COUNT
};

/* "ADDR", "SUBNET", "DOMAIN", "URL", "CERT_HASH", "JA3", "JA4", "FILE_HASH",
 * "SOFTWARE" (static strings); "UNKNOWN" for anything else. */
const char *kg_ind_type_name(enum kg_ind_type t);

/* Feed formats. AUTO detects from the content (docs/INDICATORS.md). */
enum kg_ind_format {
    KG_IND_FMT_AUTO = 0,
    KG_IND_FMT_ZEEK,           /* "zeek:" */
    KG_IND_FMT_PLAIN,          /* "plain:" one indicator per line, type detected */
    KG_IND_FMT_STIX,           /* "stix:" STIX 2.1 bundle (JSON) */
    KG_IND_FMT_MISP,           /* "misp:" MISP CSV export */
    KG_IND_FMT_DATASET_MD5,    /* "dataset-md5:" Suricata dataset, type md5 */
    KG_IND_FMT_DATASET_SHA256, /* "dataset-sha256:" */
    KG_IND_FMT_DATASET_IPV4,   /* "dataset-ipv4:" */
    KG_IND_FMT_DATASET_IP,     /* "dataset-ip:" IPv4 or IPv6 */
    KG_IND_FMT_DATASET_STRING, /* "dataset-string:" base64 strings; domains kept */
    KG_IND_FMT_SSLBL_JA3,      /* "sslbl-ja3:" abuse.ch SSLBL JA3 fingerprint CSV */
    KG_IND_FMT_SSLBL_CERT,     /* "sslbl-cert:" abuse.ch SSLBL certificate CSV */
    KG_IND_FMT_COUNT
};

/* The prefix word without its colon ("zeek", "dataset-md5", ...; "auto"). */
const char *kg_ind_format_name(enum kg_ind_format f);

/*
 * Splits an optional "format:" prefix off a feed path: returns the format it
 * names (KG_IND_FMT_AUTO when there is none) and sets *file to the path
 * proper (borrowed, inside `path`). Only the prefixes listed above are
 * recognised, so "./zeek:x" or "/tmp/plain:x" are plain file names.
 */
enum kg_ind_format kg_ind_format_split(const char *path, const char **file);

/* One indicator. Owned by its set; valid as long as the set. 72 bytes: ten
 * million of them are most of a national set's memory, so the validity
 * window, which few feeds give, lives beside the array
 * (kg_indicator_validity). */
struct kg_indicator {
    const char *value;   /* as listed in the feed (surrounding blanks removed) */
    const char *source;  /* feed's source name; "" when absent (docs/INDICATORS.md says which) */
    const char *feed_id; /* the feed's own id for the indicator (STIX id, MISP uuid); "" when none */
    const char *desc;    /* description (meta.desc, STIX name, MISP comment, SSLBL reason); "" when none */
    const char *file;    /* feed file it came from ("" for kg_indicator_set_add) */
    const char *const *meta_keys;
    const char *const *meta_values;
    enum kg_ind_type type;
    uint32_t id;         /* index within the set */
    uint32_t line;       /* line in that file (for STIX: the object's index in "objects", from 1) */
    uint16_t nmeta;      /* extra key/value pairs (Zeek meta.* columns without "meta.", STIX
                          * labels/confidence, MISP category, ...) */
    int8_t severity;     /* 1 (high) .. 3 (low); 0 = not given */
};

struct kg_indicator_load_report {
    uint64_t loaded;      /* indicators added from this file */
    uint64_t bad_lines;   /* skipped with a warning */
    uint64_t duplicates;  /* same type+value already in the set (first one kept); an ADDR
                           * and the /32 or /128 SUBNET of the same address count as one */
    uint64_t skipped;     /* left out on purpose, without a warning: MISP rows with to_ids=0,
                           * STIX objects that are not indicators, dataset strings that are
                           * not domain names */
    enum kg_ind_format format; /* the format used (detected or named) */
};

struct kg_indicator_set;

/* Returns an owned, empty set (aborts on out-of-memory: control plane). */
struct kg_indicator_set *kg_indicator_set_new(void);

/*
 * Loads a feed file. `path` may start with a format prefix ("stix:feeds/x.json",
 * see kg_ind_format_split); without one the format is detected from the
 * content. A bad line is skipped, logged as "file:line: message" (through
 * kg_log, component "indicators") and counted in *rep; the rest loads.
 * Returns 0, or a negative KG_ERR_* with err filled when the file cannot be
 * read, its format cannot be recognised, or it lacks what the format needs
 * to be read at all (a Zeek file without #fields, a CSV without its header
 * row, JSON that does not parse). rep may be NULL. Must be called before
 * kg_indicator_set_finalize(). Line-based formats are read in chunks, so a
 * large feed never sits in memory whole.
 */
int kg_indicator_set_load_file(struct kg_indicator_set *s, const char *path,
                               struct kg_indicator_load_report *rep, struct kg_err *err);

/* Same as kg_indicator_set_load_file() on a feed already in memory (fetched
 * over the network, or a fuzzer's input). Borrows data (len bytes, need not
 * be NUL-terminated); `name` (borrowed, copied) stands for the file name in
 * messages and in the indicators' ->file; a format prefix on it is honoured
 * and removed. */
int kg_indicator_set_load_buffer(struct kg_indicator_set *s, const char *name, const char *data, size_t len,
                                 struct kg_indicator_load_report *rep, struct kg_err *err);

/*
 * Verifies the detached Ed25519 signature of a feed: PATH.sig beside the
 * file (a format prefix on path is removed first), raw 64 bytes or base64,
 * against trusted public keys in PEM files (`openssl pkey -pubout`).
 * Returns 0 when one of the keys verifies the file's bytes; otherwise, with
 * err saying which file and why:
 *   KG_ERR_INVAL  no keys given, or no trusted key verifies the signature
 *                 ("signature does not verify with any of the N trusted keys");
 *   KG_ERR_IO     the feed, its PATH.sig or a key file cannot be read
 *                 (a missing PATH.sig is "not signed");
 *   KG_ERR_PARSE  the signature is neither 64 raw bytes nor base64 of 64
 *                 bytes, or a key file holds no Ed25519 public key.
 */
int kg_indicator_verify_file(const char *path, const char *const *pubkey_pem_paths, size_t n,
                             struct kg_err *err);

/* Reads the file once, verifies its signature as kg_indicator_verify_file()
 * does, and loads those same bytes only if it verifies (no window between
 * check and use). Same returns as both functions. */
int kg_indicator_set_load_file_signed(struct kg_indicator_set *s, const char *path,
                                      const char *const *pubkey_pem_paths, size_t n,
                                      struct kg_indicator_load_report *rep, struct kg_err *err);

/* Adds one indicator (value and source are copied; source may be NULL).
 * Returns 0 (also for a duplicate, which leaves the first one in place), or
 * KG_ERR_PARSE with err filled when the value is not valid for the type. */
int kg_indicator_set_add(struct kg_indicator_set *s, enum kg_ind_type type, const char *value,
                         const char *source, struct kg_err *err);

/* Everything an indicator can carry, for kg_indicator_set_add_spec(). The
 * strings are borrowed and copied; NULL means "". */
struct kg_indicator_spec {
    enum kg_ind_type type;
    const char *value;
    const char *source;
    const char *feed_id;
    const char *desc;
    int severity; /* 0..3 */
    uint64_t valid_from_us, valid_until_us;
};

/* kg_indicator_set_add() with every attribute. Also KG_ERR_INVAL when the
 * validity window is empty (valid_until_us <= valid_from_us, both set). */
int kg_indicator_set_add_spec(struct kg_indicator_set *s, const struct kg_indicator_spec *spec,
                              struct kg_err *err);

/* Builds the lookup indexes; the set is read-only afterwards. */
void kg_indicator_set_finalize(struct kg_indicator_set *s);

size_t kg_indicator_set_count(const struct kg_indicator_set *s, enum kg_ind_type type);
size_t kg_indicator_set_total(const struct kg_indicator_set *s);

/* Calls cb once per (source, type) pair with a non-zero count, sources in
 * the order they were first loaded, types in enum order (for
 * `kagami --check-indicators`). `source` is valid as long as the set. */
void kg_indicator_set_count_by_source(const struct kg_indicator_set *s,
                                      void (*cb)(void *user, const char *source, enum kg_ind_type type,
                                                 size_t count),
                                      void *user);

/* Number of indicators whose validity window does not contain now_us
 * (expired or not yet valid). */
size_t kg_indicator_set_count_invalid(const struct kg_indicator_set *s, uint64_t now_us);

/* The validity window of an indicator of s, microseconds since the epoch:
 * *from_us the first valid instant, *until_us the first invalid one; 0 =
 * unbounded on that side. */
void kg_indicator_validity(const struct kg_indicator_set *s, const struct kg_indicator *ind, uint64_t *from_us,
                           uint64_t *until_us);

/* Most specific ADDR or SUBNET containing the address (an ADDR is a /32 or
 * /128). family 4 (4 bytes at addr) or 6 (16 bytes). NULL if none. */
const struct kg_indicator *kg_indicator_match_addr(const struct kg_indicator_set *s, uint8_t family,
                                                   const uint8_t *addr, uint64_t now_us);

/* Most specific DOMAIN equal to the name or to one of its parent domains;
 * case-insensitive, a trailing dot ignored. NULL if none. */
const struct kg_indicator *kg_indicator_match_domain(const struct kg_indicator_set *s, const char *name,
                                                     size_t len, uint64_t now_us);

/* URL indicator equal to host + uri (host lower-cased, default port ":80"
 * dropped; indicators may be listed with or without "http://"). */
const struct kg_indicator *kg_indicator_match_url(const struct kg_indicator_set *s, const char *host,
                                                  size_t host_len, const char *uri, size_t uri_len,
                                                  uint64_t now_us);

/* Indicator of `type` equal to the value: CERT_HASH (40 or 64 hex digits),
 * JA3 (32), FILE_HASH (32, 40 or 64), hex in either case; JA4 (36
 * characters, case-insensitive). NULL for any other type. */
const struct kg_indicator *kg_indicator_match_hash(const struct kg_indicator_set *s, enum kg_ind_type type,
                                                   const char *hex, size_t len, uint64_t now_us);

/* SOFTWARE indicator equal to the User-Agent, byte for byte (blanks around
 * it ignored). */
const struct kg_indicator *kg_indicator_match_software(const struct kg_indicator_set *s, const char *ua,
                                                       size_t len, uint64_t now_us);

/* One observation for kg_indicator_match_batch(). */
struct kg_indicator_query {
    enum kg_ind_type type; /* ADDR (addresses, matching ADDR and SUBNET), DOMAIN, URL, CERT_HASH, JA3,
                            * JA4, FILE_HASH or SOFTWARE */
    uint8_t family;        /* ADDR: 4 or 6 */
    const void *value;     /* ADDR: the address bytes; URL: the host; others: the text */
    size_t len;            /* bytes at value (not used for ADDR) */
    const char *uri;       /* URL: the request target */
    size_t uri_len;
};

/*
 * Matches n observations at once: out[i] is exactly what the single match
 * function for q[i].type returns. Faster per lookup on large sets: four
 * groups of 16 lookups are in flight, each at another stage (hash and
 * prefetch filters; test filters and prefetch slots; read slots and
 * prefetch candidate records; confirm), so their memory accesses overlap
 * instead of waiting one after another (docs/INDICATORS.md, "Design of the
 * index"; docs/PERFORMANCE.md). Uses about 34 KiB of stack. Borrows q;
 * writes out[0..n).
 */
void kg_indicator_match_batch(const struct kg_indicator_set *s, const struct kg_indicator_query *q, size_t n,
                              const struct kg_indicator **out, uint64_t now_us);

/* Frees the set and every indicator; NULL is a no-op. */
void kg_indicator_set_free(struct kg_indicator_set *s);

/* ======================================================================== *
 * Tuning: suppression, severity overrides and rate thresholds that GSOC
 * analysts write in a YAML file (docs/TUNING.md). Code:
 * indicators/indicators_tuning.c.
 *
 * A struct kg_tuning is loaded on the control plane and is immutable
 * afterwards: any number of workers call kg_tuning_check() on it at once,
 * without locks, and the check never allocates. It is replaced on reload
 * like an indicator set: publish the new one, free the old one after every
 * worker has passed a quiescent point. Thresholds need counters: those live
 * in a struct kg_threshold that each worker owns alone (no lock, no sharing)
 * and keeps across reloads of the tuning (a rule that is unchanged keeps its
 * counts; see kg_threshold_allow()).
 *
 * Rules are numbered 0 .. kg_tuning_rule_count() - 1 in file order, across
 * the three sections, so a worker keeps its per-rule counters (suppressed,
 * thresholded) in one array indexed by rule id, and names them with
 * kg_tuning_rule_info().
 * ======================================================================== */

struct kg_tuning;

enum kg_tuning_kind {
    KG_TUNING_SUPPRESS = 0, /* an alert matching the rule is not raised */
    KG_TUNING_SEVERITY,     /* the first matching rule sets the alert's severity */
    KG_TUNING_THRESHOLD,    /* the first matching rule limits alerts per indicator and source */
};

/* "No rule": in a verdict, and for kg_threshold_allow(). */
#define KG_TUNING_NONE UINT32_MAX

/*
 * Loads a tuning file. Returns an owned tuning (free with kg_tuning_free()),
 * or NULL with err filled: "path: cannot open: reason" (unreadable), or
 * "path:line: message" (lines from 1) for YAML syntax, an unknown section or
 * key, a bad address, CIDR block, indicator, place, type, severity, count or
 * time, a missing field, a duplicate key or rule name. Strict: nothing is
 * half-loaded, and a file that loads means what docs/TUNING.md says. An
 * empty file is a tuning with no rules. Logs one info line with the counts.
 */
struct kg_tuning *kg_tuning_load(const char *path, struct kg_err *err);

/* Same from memory (a tuning fetched over the network, a test, a fuzzer).
 * Borrows data (len bytes, need not be NUL-terminated); `name` (borrowed)
 * stands for the file name in messages. */
struct kg_tuning *kg_tuning_load_buffer(const char *name, const char *data, size_t len, struct kg_err *err);

/* NULL is a no-op. */
void kg_tuning_free(struct kg_tuning *t);

/* Number of rules (0 for NULL). */
uint32_t kg_tuning_rule_count(const struct kg_tuning *t);

struct kg_tuning_rule_info {
    enum kg_tuning_kind kind;
    const char *name;   /* its `name:`, else "suppress[2]" (section, position from 1); valid as long as t */
    uint32_t line;      /* line of the rule in the file */
    int severity;       /* KG_TUNING_SEVERITY: 1 (high) .. 3 (low) */
    uint32_t count;     /* KG_TUNING_THRESHOLD: alerts allowed per window */
    uint32_t seconds;   /* KG_TUNING_THRESHOLD: window length */
    uint64_t until_us;  /* the rule stops applying at this time (µs since the epoch); 0 = never */
};

/* Fills *out for rule `rule`; returns false when there is no such rule. */
bool kg_tuning_rule_info(const struct kg_tuning *t, uint32_t rule, struct kg_tuning_rule_info *out);

/* What the tuning says about one alert. */
struct kg_tuning_verdict {
    bool suppress;           /* do not raise the alert */
    int severity;            /* 1 (high) .. 3 (low) from the first matching severity rule; 0 = unchanged */
    const char *rule;        /* name of the suppress rule when suppress, else NULL; valid as long as t */
    uint32_t suppress_rule;  /* rule ids, KG_TUNING_NONE when no rule of that kind matched */
    uint32_t severity_rule;
    uint32_t threshold_rule; /* pass to kg_threshold_allow() */
};

/*
 * Checks an alert about to be raised: indicator `ind` matched at `where`
 * (the alert's indicator.where: "dns.query", "conn.dest_ip", ...; NULL
 * matches no `where` condition) in a flow from src to dst (family 4 or 6,
 * 4 or 16 bytes each; family 0 or NULL addresses match no `source`/`dest`
 * condition). now_us (µs since the epoch; the packet time) retires rules
 * whose `until` has passed; 0 ignores `until`. Always fills *out; with t
 * NULL (no tuning) or ind NULL the verdict changes nothing. When a suppress
 * rule matches, the other two kinds are not evaluated. Borrows everything;
 * never allocates, never locks; cost: one hash probe for the rules naming
 * indicators, plus a scan of the rules that name none (docs/TUNING.md).
 */
void kg_tuning_check(const struct kg_tuning *t, const struct kg_indicator *ind, const char *where,
                     uint8_t family, const uint8_t *src, const uint8_t *dst, uint64_t now_us,
                     struct kg_tuning_verdict *out);

/*
 * Per-worker threshold state: a fixed table of max_entries (indicator,
 * source address, rule) counters, least recently used evicted when full,
 * allocated once here (about 60 bytes per entry; control plane: aborts on
 * out-of-memory). Returns NULL with err filled when max_entries is 0 or
 * above 16777216. Owned by one thread: never share one between workers.
 */
struct kg_threshold *kg_threshold_new(uint32_t max_entries, struct kg_err *err);

/*
 * Counts one alert against threshold rule `rule` of t (verdict.threshold_rule)
 * for indicator ind and source address src (family 4 or 6; 0 or NULL: one
 * shared "no address" counter). Returns true when the alert may be raised,
 * false when it is over the threshold (suppress it, and count it). A window
 * opens at the first alert of a key and lasts the rule's `seconds`: at most
 * `count` alerts are let through until it ends, and the next alert after
 * the end opens a new window. Time is now_us only (packet time); a jump
 * back of more than the window before its start (an older capture) opens a
 * new one, a packet slightly out of order counts. Returns true when th or t is
 * NULL or rule is KG_TUNING_NONE or not a threshold rule. Counters are keyed
 * by the rule's content, not its position, so they survive a tuning reload
 * for rules that did not change; and by the indicator's type and value, so
 * they survive an indicator reload. Never allocates.
 */
bool kg_threshold_allow(struct kg_threshold *th, const struct kg_tuning *t, uint32_t rule,
                        const struct kg_indicator *ind, uint8_t family, const uint8_t *src, uint64_t now_us);

struct kg_threshold_stats {
    uint64_t entries;          /* counters in use */
    uint64_t max_entries;
    uint64_t evictions;        /* counters dropped to make room (least recently used first) */
    uint64_t evictions_active; /* ... of which were still inside their window: the table is too
                                * small for the traffic, and some alerts over a threshold got through */
};

void kg_threshold_get_stats(const struct kg_threshold *th, struct kg_threshold_stats *out);

/* NULL is a no-op. */
void kg_threshold_free(struct kg_threshold *th);

#endif /* KG_INDICATORS_H */
