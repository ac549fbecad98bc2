/*
 * config/config.c — Kagami's settings, driven by one declarative key table.
 *
 * Every setting is one row of cfg_keys[] (key path, type, default text,
 * offset of its field in struct kg_config, help text), in the manner of
 * fluent-bit's config map and nginx's ngx_command_t. That one table drives:
 *   - defaults (kg_config_init parses each default text like a value),
 *   - the YAML loader (libyaml event API) and the command-line setter, which
 *     share one value parser so a value means the same thing everywhere,
 *   - validation, --dump-config output and the docs/CONFIG.md reference.
 * Adding a setting means adding a field and a row; nothing else.
 *
 * Threads: control plane only, single-threaded; no global mutable state.
 * Memory: struct kg_config owns its strings and lists (freed by
 * kg_config_free); allocation failures abort (control-plane policy).
 */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* --- the key table ------------------------------------------------------- */

enum cfg_type {
    CFG_STRING, /* char * */
    CFG_LIST,   /* struct kg_strlist */
    CFG_U32,    /* uint32_t within [min, max] */
    CFG_BOOL,   /* bool */
    CFG_ENUM,   /* char *, one of choices[] (stored in canonical spelling) */
};

#define CFG_POW2 0x1u     /* CFG_U32: must also be a power of two */
#define CFG_HOSTNAME 0x2u /* CFG_STRING: an empty value means gethostname() */
#define CFG_EMPTY_OK 0x4u /* CFG_STRING: "" is a valid value, meaning none or off */
#define CFG_REDIS_URL 0x8u /* CFG_STRING: a non-empty value is redis://[:password@]host[:port]/key */
/* A CFG_STRING key with neither of the last two flags must be non-empty. */

struct cfg_key {
    const char *key; /* dotted path: "flow.max_flows" is flow: {max_flows: ...} */
    enum cfg_type type;
    const char *def;     /* default, parsed as a value; NULL: empty list */
    const char *def_doc; /* default as the reference shows it; NULL: derived from def */
    size_t off;          /* offsetof(struct kg_config, field) */
    uint32_t min, max;   /* CFG_U32 range, inclusive */
    unsigned flags;
    const char *const *choices; /* CFG_ENUM: NULL-terminated, canonical spellings */
    const char *help;
};

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};

#define OFF(field) offsetof(struct kg_config, field)

/*
 * Keys of one section must be contiguous: kg_config_dump() groups them into
 * one YAML mapping per section, and a section that appeared twice would be a
 * duplicate key on reload. Order here is the order of the dump and the docs.
 * (Kept out of clang-format: one row per key reads better than one line per field.)
 */
// clang-format off
static const struct cfg_key cfg_keys[] = {
    {.key = "sensor.id", .type = CFG_STRING, .def = "", .def_doc = "host name", .off = OFF(sensor_id),
     .flags = CFG_HOSTNAME,
     .help = "Sensor name written in every event. Empty means the host name."},
    {.key = "sensor.log_level", .type = CFG_ENUM, .def = "info", .off = OFF(log_level),
     .choices = log_levels,
     .help = "Least severe message written to the log (stderr)."},
    {.key = "sensor.workers", .type = CFG_U32, .def = "0", .off = OFF(workers), .min = 0, .max = 256,
     .help = "Packet worker threads. 0 means the number of CPU cores minus one, at least 1."},
    {.key = "input.files", .type = CFG_LIST, .off = OFF(read_files),
     .help = "Capture files (pcap or pcapng) to read, in order, instead of capturing live. "
             "Command line: `-r` (adds to the list)."},
    {.key = "capture.interfaces", .type = CFG_LIST, .off = OFF(capture_ifaces),
     .help = "Network interfaces to capture from live (SPAN/mirror ports). "
             "Command line: `-i` (adds to the list)."},
    {.key = "capture.threads", .type = CFG_U32, .def = "1", .off = OFF(capture_threads), .min = 1, .max = 64,
     .help = "Capture threads per interface, joined in one AF_PACKET fanout group (flow hash); each "
             "feeds its own worker."},
    {.key = "capture.snaplen", .type = CFG_U32, .def = "65535", .off = OFF(capture_snaplen), .min = 64,
     .max = 262144,
     .help = "Bytes captured per packet."},
    {.key = "capture.promisc", .type = CFG_BOOL, .def = "true", .off = OFF(capture_promisc),
     .help = "Put the interfaces in promiscuous mode."},
    {.key = "capture.buffer_mb", .type = CFG_U32, .def = "64", .off = OFF(capture_buffer_mb), .min = 1,
     .max = 4096,
     .help = "Kernel capture buffer per capture thread, in MiB."},
    {.key = "capture.bpf", .type = CFG_STRING, .def = "", .off = OFF(capture_bpf), .flags = CFG_EMPTY_OK,
     .help = "BPF filter applied to live capture; empty captures everything. Command line: `-f`."},
    {.key = "capture.dedup_ms", .type = CFG_U32, .def = "0", .off = OFF(capture_dedup_ms), .min = 0,
     .max = 1000,
     .help = "Drop a packet seen again within this many milliseconds (SPAN of both ingress and egress); "
             "0 turns it off."},
    {.key = "indicators.files", .type = CFG_LIST, .off = OFF(indicator_files),
     .help = "Threat-indicator feeds to load (Zeek Intel, plain lists, STIX 2.1, MISP CSV, Suricata "
             "datasets, abuse.ch SSLBL; docs/INDICATORS.md); paths or glob patterns, optionally with a "
             "`format:` prefix. Command line: `--indicators` (adds to the list)."},
    {.key = "indicators.tuning", .type = CFG_STRING, .def = "", .off = OFF(indicator_tuning),
     .flags = CFG_EMPTY_OK,
     .help = "Analysts' tuning file: suppressions, severity overrides and alert thresholds "
             "(docs/TUNING.md). Empty means none."},
    {.key = "indicators.trusted_keys", .type = CFG_LIST, .off = OFF(indicator_trusted_keys),
     .help = "Ed25519 public keys (PEM files, `openssl pkey -pubout`) trusted to sign feeds; a feed's "
             "detached signature is FEED.sig beside it."},
    {.key = "indicators.require_signature", .type = CFG_BOOL, .def = "false",
     .off = OFF(indicator_require_signature),
     .help = "Load a feed only if its signature verifies with one of `indicators.trusted_keys` (which "
             "must then not be empty)."},
    {.key = "indicators.redis", .type = CFG_STRING, .def = "", .off = OFF(indicator_redis),
     .flags = CFG_EMPTY_OK | CFG_REDIS_URL,
     .help = "A feed kept in Redis, `redis://[:password@]host:port/key`: the feed text at `key`, its "
             "version at `key:version`, polled every `indicators.redis_poll` seconds. Empty means none."},
    {.key = "indicators.redis_poll", .type = CFG_U32, .def = "30", .off = OFF(indicator_redis_poll), .min = 1,
     .max = 3600,
     .help = "Seconds between polls of the version of the `indicators.redis` feed."},
    {.key = "indicators.watch", .type = CFG_BOOL, .def = "true", .off = OFF(indicator_watch),
     .help = "Reload the indicators when a feed file or the tuning file changes on disk."},
    {.key = "outputs", .type = CFG_LIST, .def_doc = "empty (stdout)", .off = OFF(outputs),
     .help = "Where alerts go, one sink per item: `stdout` (or `-`), `file:PATH`, "
             "`redis://[:password@]host:port/key`. Empty means stdout. "
             "Command line: `-o` (adds to the list)."},
    {.key = "flow.max_flows", .type = CFG_U32, .def = "65536", .off = OFF(flow_max), .min = 1024,
     .max = 100000000,
     .help = "Most flows tracked at once, per worker."},
    {.key = "flow.tcp_timeout", .type = CFG_U32, .def = "600", .off = OFF(flow_tcp_timeout), .min = 1,
     .max = 86400,
     .help = "Seconds without packets after which a TCP flow is forgotten."},
    {.key = "flow.udp_timeout", .type = CFG_U32, .def = "120", .off = OFF(flow_udp_timeout), .min = 1,
     .max = 86400,
     .help = "Seconds without packets after which a UDP flow is forgotten."},
    {.key = "flow.other_timeout", .type = CFG_U32, .def = "60", .off = OFF(flow_other_timeout), .min = 1,
     .max = 86400,
     .help = "Seconds without packets after which any other flow (ICMP, ...) is forgotten."},
    {.key = "flow.vlan_in_key", .type = CFG_BOOL, .def = "true", .off = OFF(flow_vlan_in_key),
     .help = "Whether the VLAN id is part of a flow's identity (turn off when the two directions of a "
             "conversation are seen on different VLANs)."},
    {.key = "decoder.max_depth", .type = CFG_U32, .def = "8", .off = OFF(decoder_max_depth), .min = 1, .max = 16,
     .help = "Nested encapsulations (VLAN stacks aside: GRE, ERSPAN, VXLAN, GTP-U, IP-in-IP, ...) followed "
             "inside one packet; a packet nested deeper is dissected at the last layer followed and counted."},
    {.key = "defrag.max_mb", .type = CFG_U32, .def = "64", .off = OFF(defrag_max_mb), .min = 1, .max = 4096,
     .help = "Memory for IP fragments awaiting reassembly, per worker, in MiB; beyond it the oldest "
             "datagrams are dropped and counted."},
    {.key = "defrag.timeout", .type = CFG_U32, .def = "30", .off = OFF(defrag_timeout), .min = 1, .max = 300,
     .help = "Seconds a fragmented datagram may take to complete."},
    {.key = "pipeline.ring_size", .type = CFG_U32, .def = "256", .off = OFF(ring_size), .min = 4,
     .max = 65536, .flags = CFG_POW2,
     .help = "Packet batches each worker's input ring holds; a full ring drops and counts."},
    {.key = "pipeline.batch_packets", .type = CFG_U32, .def = "64", .off = OFF(batch_packets), .min = 1,
     .max = 1024,
     .help = "Packets per batch handed from capture to a worker."},
    {.key = "pipeline.alert_queue", .type = CFG_U32, .def = "4096", .off = OFF(alert_queue), .min = 64,
     .max = 1048576, .flags = CFG_POW2,
     .help = "Events each worker's ring to the export thread holds; a full ring drops and counts. "
             "At least `pipeline.batch_packets`."},
    {.key = "stats.interval", .type = CFG_U32, .def = "0", .off = OFF(stats_interval), .min = 0, .max = 86400,
     .help = "Seconds between `stats` events written to the outputs; 0 writes none (the summary is "
             "still logged at exit)."},
    {.key = "stats.outputs", .type = CFG_LIST, .def_doc = "empty (the outputs)", .off = OFF(stats_outputs),
     .help = "Where `stats`, `reload` and `error` events go, one sink per item (same forms as `outputs`), "
             "e.g. a Redis key of their own so the collector sees a sensor that went quiet; empty means "
             "the alert outputs."},
    {.key = "events.dns", .type = CFG_BOOL, .def = "false", .off = OFF(events_dns),
     .help = "Write a `dns` metadata event for every DNS message."},
    {.key = "events.tls", .type = CFG_BOOL, .def = "false", .off = OFF(events_tls),
     .help = "Write a `tls` metadata event for every TLS handshake."},
    {.key = "events.http", .type = CFG_BOOL, .def = "false", .off = OFF(events_http),
     .help = "Write an `http` metadata event for every HTTP request."},
    {.key = "events.quic", .type = CFG_BOOL, .def = "false", .off = OFF(events_quic),
     .help = "Write a `quic` metadata event for every QUIC client Initial read."},
    {.key = "events.flow", .type = CFG_BOOL, .def = "false", .off = OFF(events_flow),
     .help = "Write a `flow` event when a flow ends."},
    {.key = "geoip.country_db", .type = CFG_STRING, .def = "", .off = OFF(geoip_country_db),
     .flags = CFG_EMPTY_OK,
     .help = "MaxMind Country or City database (.mmdb) for `src_geo`/`dest_geo`; empty turns it off."},
    {.key = "geoip.asn_db", .type = CFG_STRING, .def = "", .off = OFF(geoip_asn_db), .flags = CFG_EMPTY_OK,
     .help = "MaxMind ASN database (.mmdb); empty turns it off."},
};
// clang-format on

#define CFG_NKEYS KG_ARRAY_LEN(cfg_keys)

/* Longest key path we ever need to hold; anything longer is unknown anyway. */
#define CFG_PATH_MAX 128
/* A configuration file is small; the cap keeps `-c /dev/zero` from eating memory. */
#define CFG_FILE_MAX (16u << 20)

#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->off))
#define CFIELD(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + (k)->off))

/* --- small helpers ------------------------------------------------------- */

static const struct cfg_key *find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (strlen(cfg_keys[i].key) == len && memcmp(cfg_keys[i].key, key, len) == 0) return &cfg_keys[i];
    return NULL;
}

/* True when `path` names a section: some key is "path.<something>". */
static bool is_section(const char *path, size_t len)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (strncmp(cfg_keys[i].key, path, len) == 0 && cfg_keys[i].key[len] == '.') return true;
    return false;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
 * Values must be valid UTF-8 because they go back out as YAML and JSON. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) return false;
        for (size_t j = 1; j <= n; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Copies a value into a message, quoted, shortened, with control bytes and
 * quotes replaced, so an error never carries a terminal escape or a 10 MB line. */
static void quote_for_message(char *dst, size_t dstsize, const char *s, size_t len)
{
    size_t o = 0;
    const size_t keep = 60;
    if (dstsize < 8) {
        if (dstsize) dst[0] = '\0';
        return;
    }
    dst[o++] = '\'';
    for (size_t i = 0; i < len && i < keep && o + 6 < dstsize; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (len > keep && o + 6 < dstsize) {
        dst[o++] = '.';
        dst[o++] = '.';
        dst[o++] = '.';
    }
    dst[o++] = '\'';
    dst[o] = '\0';
}

/* Levenshtein distance, for "did you mean" hints. Both strings are short keys. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= CFG_PATH_MAX || lb >= CFG_PATH_MAX) return SIZE_MAX;
    size_t row[CFG_PATH_MAX + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *last_component(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Names offered in a hint: pieces of table keys (a key, or a section, which
 * is a key's prefix), so they need no copying. */
#define CFG_HINT_MAX 10
struct hint_names {
    struct {
        const char *s;
        size_t len;
    } at[CFG_HINT_MAX];
    size_t n;
    bool more; /* some did not fit */
};

static void hint_add(struct hint_names *h, const char *s, size_t len)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->at[i].len == len && memcmp(h->at[i].s, s, len) == 0) return;
    if (h->n == CFG_HINT_MAX) {
        h->more = true;
        return;
    }
    h->at[h->n].s = s;
    h->at[h->n++].len = len;
}

/* Writes "'a', 'b' or 'c'" from a's names then b's; "'a', 'b', ..." when a
 * left some out. Truncates to bufsize, always terminated. */
static void hint_join(char *buf, size_t bufsize, const struct hint_names *a, const struct hint_names *b)
{
    /* With "..." last, no item takes the " or ". */
    size_t total = a->n + b->n + (a->more && b->n == 0 ? 1 : 0), i = 0, o = 0;
    buf[0] = '\0';
    for (size_t part = 0; part < 2; part++) {
        const struct hint_names *h = part ? b : a;
        for (size_t j = 0; j < h->n; j++, i++) {
            const char *sep = i == 0 ? "" : (i + 1 == total ? " or " : ", ");
            int w = snprintf(buf + o, bufsize - o, "%s'%.*s'", sep, (int)h->at[j].len, h->at[j].s);
            if (w < 0 || (size_t)w >= bufsize - o) return;
            o += (size_t)w;
        }
        if (part == 0 && a->more) {
            int w = snprintf(buf + o, bufsize - o, ", ...");
            if (w < 0 || (size_t)w >= bufsize - o) return;
            o += (size_t)w;
        }
    }
}

/*
 * The text of a hint for an unknown `path`, or NULL when nothing is close.
 * Three kinds of slip, tried in this order:
 *   - a typo: a small edit distance to a key or section ("flow.max_flow");
 *   - a section used as a key (`--set flow=...`): list the section's keys,
 *     plus any key elsewhere with that last name ("events.flow"), since the
 *     operator may have meant either;
 *   - a key or section in the wrong place, whose last component matches that
 *     of one or two keys or sections ("max_flows" at the top level, or
 *     "sensor.flow" from a section indented one level too deep).
 */
static const char *suggest_key(const char *path, char *buf, size_t bufsize)
{
    size_t plen = strlen(path), best_d = SIZE_MAX;
    const char *best = NULL;
    size_t best_len = 0;
    const char *leaf = last_component(path);
    bool section = is_section(path, plen);
    struct hint_names in_section = {.n = 0}, same_leaf = {.n = 0};
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const char *k = cfg_keys[i].key;
        if (section && strncmp(k, path, plen) == 0 && k[plen] == '.') {
            hint_add(&in_section, k, strlen(k));
            continue; /* nothing inside the section is a candidate for the other slips */
        }
        /* Candidates: the key itself and each of its sections ("flow" for "flow.max_flows"). */
        for (const char *end = strchr(k, '.');; end = strchr(end + 1, '.')) {
            size_t n = end ? (size_t)(end - k) : strlen(k);
            char cand[CFG_PATH_MAX];
            if (n >= sizeof(cand)) break;
            memcpy(cand, k, n);
            cand[n] = '\0';
            size_t d = edit_distance(path, cand);
            if (d < best_d) {
                best_d = d, best = k, best_len = n;
            }
            const char *cleaf = last_component(cand);
            if (d > 0 && strcmp(cleaf, leaf) == 0) hint_add(&same_leaf, k, n);
            if (!end) break;
        }
    }
    char names[200]; /* the longest list today, the capture section's, takes about 140 */
    /* Allow one edit per four characters, at most two: "flow.tcp_timout" yes,
     * "id" for "ip" no (too short to guess). */
    size_t allowed = KG_MIN(plen / 4, (size_t)2);
    if (!section && best && best_d > 0 && best_d <= allowed) {
        snprintf(buf, bufsize, "did you mean '%.*s'?", (int)best_len, best);
    } else if (section) {
        /* More than two names elsewhere is no longer a guess; list only the section's keys then. */
        struct hint_names none = {.n = 0};
        const struct hint_names *also = same_leaf.n <= 2 && !same_leaf.more ? &same_leaf : &none;
        hint_join(names, sizeof(names), &in_section, also);
        snprintf(buf, bufsize, "'%s' is a section: did you mean %s?", path, names);
    } else if (same_leaf.n >= 1 && same_leaf.n <= 2 && !same_leaf.more) {
        struct hint_names none = {.n = 0};
        hint_join(names, sizeof(names), &same_leaf, &none);
        snprintf(buf, bufsize, "did you mean %s?", names);
    } else {
        return NULL;
    }
    return buf;
}

/* "unknown key 'x'", with a hint in parentheses when there is one. */
static void format_unknown_key(char *dst, size_t dstsize, const char *path, size_t len)
{
    /* Sized so that the whole message fits the callers' 400-byte buffers. */
    char shown[96], hint[280];
    quote_for_message(shown, sizeof(shown), path, len);
    const char *s =
        (len < CFG_PATH_MAX && strlen(path) == len) ? suggest_key(path, hint, sizeof(hint)) : NULL;
    if (s)
        snprintf(dst, dstsize, "unknown key %s (%s)", shown, s);
    else
        snprintf(dst, dstsize, "unknown key %s", shown);
}

/* What a key accepts, for error messages ("expected <this>, got ..."). */
static void describe_expected(const struct cfg_key *k, char *dst, size_t dstsize)
{
    switch (k->type) {
    case CFG_STRING:
        snprintf(dst, dstsize, "a string");
        break;
    case CFG_LIST:
        snprintf(dst, dstsize, "a string or a list of strings");
        break;
    case CFG_U32:
        snprintf(dst, dstsize, "%s from %u to %u", (k->flags & CFG_POW2) ? "a power of two" : "an integer",
                 k->min, k->max);
        break;
    case CFG_BOOL:
        snprintf(dst, dstsize, "true or false (or yes/no, on/off)");
        break;
    case CFG_ENUM: {
        size_t o = (size_t)snprintf(dst, dstsize, "one of");
        for (size_t i = 0; k->choices[i] && o < dstsize; i++)
            o += (size_t)snprintf(dst + o, dstsize - o, "%s %s", i ? "," : "", k->choices[i]);
        break;
    }
    }
}

/* "flow.max_flows: expected an integer from 1024 to 100000000, got 'abc'" */
static int value_error(char *why, size_t whysize, const struct cfg_key *k, const char *got, size_t got_len,
                       bool got_is_text)
{
    char expected[160], shown[96];
    describe_expected(k, expected, sizeof(expected));
    if (got_is_text)
        quote_for_message(shown, sizeof(shown), got, got_len);
    else
        kg_strlcpy(shown, got, sizeof(shown));
    snprintf(why, whysize, "%s: expected %s, got %s", k->key, expected, shown);
    return KG_ERR_INVAL;
}

/* --- the one value parser (file and command line) ----------------------- */

static char *host_name(void)
{
    char buf[HOST_NAME_MAX + 1];
    if (gethostname(buf, sizeof(buf)) != 0) buf[0] = '\0';
    buf[sizeof(buf) - 1] = '\0';
    /* A sensor must have a name; a broken host name should not stop it. */
    if (buf[0] == '\0' || !utf8_valid((const unsigned char *)buf, strlen(buf))) return kg_xstrdup("kagami");
    return kg_xstrdup(buf);
}

/* Decimal digits only: no sign, no 0x, no 1_000, and no leading zero, since
 * YAML 1.1 readers take 0600 as octal and we refuse to guess which was meant. */
static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10 || (len > 1 && s[0] == '0')) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

/* YAML 1.1 booleans, in any letter case (YAML's True/TRUE included). The
 * one-letter y/n forms are left out: too easy to write by accident. */
static bool parse_bool(const char *s, size_t len, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < KG_ARRAY_LEN(yes); i++) {
        if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) return *out = true, true;
        if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) return *out = false, true;
    }
    return false;
}

/*
 * Checks a Redis URL, redis://[:password@]host[:port]/key, for the parts
 * Kagami needs (a host and a key). The message never repeats the value: it
 * may carry a password.
 */
static bool redis_url_ok(const char *s, size_t len, const char **why)
{
    static const char scheme[] = "redis://";
    if (len < sizeof(scheme) - 1 || strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
        *why = "the URL must start with redis://";
        return false;
    }
    const char *p = s + sizeof(scheme) - 1, *end = s + len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    /* The password may hold any byte but '/': the last '@' ends it. */
    const char *host = p;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@') host = q + 1;
    const char *colon = NULL;
    if (host < auth_end && *host == '[') { /* [IPv6]:port */
        const char *rb = memchr(host, ']', (size_t)(auth_end - host));
        if (!rb) {
            *why = "no ']' after the IPv6 address";
            return false;
        }
        if (rb == host + 1) {
            *why = "no host";
            return false;
        }
        if (rb + 1 < auth_end) {
            if (rb[1] != ':') {
                *why = "text after the IPv6 address";
                return false;
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(host, ':', (size_t)(auth_end - host));
        if ((colon ? colon : auth_end) == host) {
            *why = "no host";
            return false;
        }
    }
    if (colon) {
        uint32_t port;
        size_t plen = (size_t)(auth_end - colon - 1);
        if (!parse_u32(colon + 1, plen, &port) || port < 1 || port > 65535) {
            *why = "the port must be a number from 1 to 65535";
            return false;
        }
    }
    if (!slash || slash + 1 == end) {
        *why = "no key after the host (redis://host:port/key)";
        return false;
    }
    return true;
}

/* Checks that text can be a string value; fills why otherwise. */
static int check_string(const struct cfg_key *k, const char *s, size_t len, bool allow_empty, char *why,
                        size_t whysize)
{
    if (memchr(s, '\0', len)) {
        snprintf(why, whysize, "%s: values must not contain NUL bytes", k->key);
        return KG_ERR_INVAL;
    }
    if (!utf8_valid((const unsigned char *)s, len)) {
        snprintf(why, whysize, "%s: value is not valid UTF-8", k->key);
        return KG_ERR_INVAL;
    }
    if (!allow_empty && len == 0) {
        snprintf(why, whysize, "%s: expected a non-empty string, got ''", k->key);
        return KG_ERR_INVAL;
    }
    const char *bad;
    if ((k->flags & CFG_REDIS_URL) && len && !redis_url_ok(s, len, &bad)) {
        snprintf(why, whysize, "%s: expected redis://[:password@]host:port/key: %s", k->key, bad);
        return KG_ERR_INVAL;
    }
    return 0;
}

/*
 * Parses text as a value of a non-list key and stores it. On error returns
 * KG_ERR_INVAL with why = "key: message" and leaves the field unchanged.
 */
static int set_scalar(struct kg_config *cfg, const struct cfg_key *k, const char *s, size_t len, char *why,
                      size_t whysize)
{
    switch (k->type) {
    case CFG_STRING: {
        int rc = check_string(k, s, len, (k->flags & (CFG_HOSTNAME | CFG_EMPTY_OK)) != 0, why, whysize);
        if (rc) return rc;
        char **f = FIELD(cfg, k, char *);
        free(*f);
        *f = (len == 0 && (k->flags & CFG_HOSTNAME)) ? host_name() : kg_xstrndup(s, len);
        return 0;
    }
    case CFG_U32: {
        uint32_t v;
        if (!parse_u32(s, len, &v) || v < k->min || v > k->max || ((k->flags & CFG_POW2) && (v & (v - 1))))
            return value_error(why, whysize, k, s, len, true);
        *FIELD(cfg, k, uint32_t) = v;
        return 0;
    }
    case CFG_BOOL: {
        bool v;
        if (!parse_bool(s, len, &v)) return value_error(why, whysize, k, s, len, true);
        *FIELD(cfg, k, bool) = v;
        return 0;
    }
    case CFG_ENUM:
        for (size_t i = 0; k->choices[i]; i++) {
            if (strlen(k->choices[i]) == len && strncasecmp(s, k->choices[i], len) == 0) {
                char **f = FIELD(cfg, k, char *);
                free(*f);
                *f = kg_xstrdup(k->choices[i]);
                return 0;
            }
        }
        return value_error(why, whysize, k, s, len, true);
    case CFG_LIST:
        break;
    }
    snprintf(why, whysize, "%s: internal error: not a scalar key", k->key);
    return KG_ERR_INVAL;
}

static void list_clear(struct kg_strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void list_append(struct kg_strlist *l, const char *s, size_t len)
{
    /* Control plane: lists hold a handful of items; growing one at a time is fine. */
    l->items = kg_xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
    l->items[l->count++] = kg_xstrndup(s, len);
}

static void list_copy(struct kg_strlist *dst, const struct kg_strlist *src)
{
    dst->items = NULL;
    dst->count = 0;
    for (size_t i = 0; i < src->count; i++)
        list_append(dst, src->items[i], strlen(src->items[i]));
}

/* Deep copy; dst is overwritten without being freed. */
static void cfg_copy(struct kg_config *dst, const struct kg_config *src)
{
    *dst = *src;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_STRING || k->type == CFG_ENUM) {
            const char *s = *CFIELD(src, k, char *);
            *FIELD(dst, k, char *) = s ? kg_xstrdup(s) : NULL;
        } else if (k->type == CFG_LIST) {
            list_copy(FIELD(dst, k, struct kg_strlist), CFIELD(src, k, struct kg_strlist));
        }
    }
}

/* --- public: init, set, free -------------------------------------------- */

void kg_config_init(struct kg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_LIST || !k->def) continue;
        char why[256];
        if (set_scalar(cfg, k, k->def, strlen(k->def), why, sizeof(why)) != 0) {
            /* A default that does not parse is a bug in the table above; test_config catches it. */
            fprintf(stderr, "[config] error: bad built-in default: %s\n", why);
            abort();
        }
    }
}

void kg_config_free(struct kg_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        if (k->type == CFG_STRING || k->type == CFG_ENUM) {
            char **f = FIELD(cfg, k, char *);
            free(*f);
            *f = NULL;
        } else if (k->type == CFG_LIST) {
            list_clear(FIELD(cfg, k, struct kg_strlist));
        }
    }
}

int kg_config_set(struct kg_config *cfg, const char *key, const char *value, struct kg_err *err)
{
    if (!key || !value) return kg_err_set(err, KG_ERR_INVAL, "missing key or value");
    char why[400];
    const struct cfg_key *k = find_key(key, strlen(key));
    if (!k) {
        format_unknown_key(why, sizeof(why), key, strlen(key));
        return kg_err_set(err, KG_ERR_INVAL, "%s", why);
    }
    size_t len = strlen(value);
    if (k->type == CFG_LIST) {
        struct kg_strlist *l = FIELD(cfg, k, struct kg_strlist);
        /* An empty value clears the list, so a command line can drop what the file listed. */
        if (len == 0) {
            list_clear(l);
            return 0;
        }
        if (check_string(k, value, len, false, why, sizeof(why)) != 0)
            return kg_err_set(err, KG_ERR_INVAL, "%s", why);
        list_append(l, value, len);
        return 0;
    }
    if (set_scalar(cfg, k, value, len, why, sizeof(why)) != 0)
        return kg_err_set(err, KG_ERR_INVAL, "%s", why);
    return 0;
}

int kg_config_set_pair(struct kg_config *cfg, const char *pair, struct kg_err *err)
{
    const char *eq = pair ? strchr(pair, '=') : NULL;
    if (!eq || eq == pair) {
        char shown[96];
        quote_for_message(shown, sizeof(shown), pair ? pair : "", pair ? strlen(pair) : 0);
        return kg_err_set(err, KG_ERR_INVAL, "expected key=value, got %s", shown);
    }
    size_t klen = (size_t)(eq - pair);
    if (klen >= CFG_PATH_MAX) {
        char why[400];
        format_unknown_key(why, sizeof(why), pair, klen);
        return kg_err_set(err, KG_ERR_INVAL, "%s", why);
    }
    char key[CFG_PATH_MAX];
    memcpy(key, pair, klen);
    key[klen] = '\0';
    return kg_config_set(cfg, key, eq + 1, err);
}

const char *kg_config_key_name(size_t i)
{
    return i < CFG_NKEYS ? cfg_keys[i].key : NULL;
}

/* --- YAML loading ------------------------------------------------------- */

struct loader {
    struct kg_yaml y;
    struct kg_config *cfg;
    size_t key_line[CFG_NKEYS]; /* 1-based line where each key was set; 0 = not yet */
    struct {
        char path[CFG_PATH_MAX];
        size_t line;
    } sections[CFG_NKEYS];
    size_t nsections;
};

/* Loads a list key: a sequence of strings, one string, or null (empty). Consumes ev. */
static int load_list(struct loader *ld, const struct cfg_key *k, yaml_event_t *ev)
{
    char why[400];
    struct kg_strlist *l = FIELD(ld->cfg, k, struct kg_strlist);
    int rc = 0;
    if (ev->type == YAML_SCALAR_EVENT) {
        /* A file's value replaces the list (a second file, too); see docs/CONFIG.md. */
        list_clear(l);
        if (!kg_yaml_is_null(ev)) {
            const char *s = (const char *)ev->data.scalar.value;
            size_t n = ev->data.scalar.length;
            rc = check_string(k, s, n, false, why, sizeof(why));
            if (rc == 0)
                list_append(l, s, n);
            else
                rc = kg_yaml_error(&ld->y, rc, ev->start_mark.line, "%s", why);
        }
        yaml_event_delete(ev);
        return rc;
    }
    if (ev->type != YAML_SEQUENCE_START_EVENT) {
        value_error(why, sizeof(why), k, kg_yaml_kind(ev), 0, false);
        rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, ev->start_mark.line, "%s", why);
        yaml_event_delete(ev);
        return rc;
    }
    yaml_event_delete(ev);
    list_clear(l);
    for (;;) {
        yaml_event_t item;
        if ((rc = kg_yaml_next(&ld->y, &item)) != 0) return rc;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            return 0;
        }
        if (item.type != YAML_SCALAR_EVENT || kg_yaml_is_null(&item)) {
            snprintf(why, sizeof(why), "%s: expected a string, got %s", k->key, kg_yaml_kind(&item));
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, item.start_mark.line, "%s", why);
        } else {
            const char *s = (const char *)item.data.scalar.value;
            size_t n = item.data.scalar.length;
            rc = check_string(k, s, n, false, why, sizeof(why));
            if (rc == 0)
                list_append(l, s, n);
            else
                rc = kg_yaml_error(&ld->y, rc, item.start_mark.line, "%s", why);
        }
        yaml_event_delete(&item);
        if (rc) return rc;
    }
}

/* Loads the value of a key; consumes ev. */
static int load_value(struct loader *ld, const struct cfg_key *k, yaml_event_t *ev)
{
    if (k->type == CFG_LIST) return load_list(ld, k, ev);
    char why[400];
    int rc;
    if (ev->type != YAML_SCALAR_EVENT || (kg_yaml_is_null(ev) && k->type != CFG_STRING)) {
        value_error(why, sizeof(why), k, kg_yaml_kind(ev), 0, false);
        rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, ev->start_mark.line, "%s", why);
    } else {
        /* A null string ("id:", "bpf:") is the empty string: for sensor.id the host name, for
         * capture.bpf and geoip.* "none"; set_scalar() refuses it for any other string key. */
        const char *s = kg_yaml_is_null(ev) ? "" : (const char *)ev->data.scalar.value;
        size_t n = kg_yaml_is_null(ev) ? 0 : ev->data.scalar.length;
        rc = set_scalar(ld->cfg, k, s, n, why, sizeof(why));
        if (rc) rc = kg_yaml_error(&ld->y, rc, ev->start_mark.line, "%s", why);
    }
    yaml_event_delete(ev);
    return rc;
}

/*
 * Loads a section: a mapping whose keys extend `prefix` ("" at the top), or
 * null (a section whose keys are all commented out). Consumes ev, the
 * section's first event. Recursion depth is bounded by the key table: only a
 * known section is descended into.
 */
static int load_section(struct loader *ld, const char *prefix, yaml_event_t *ev)
{
    int rc;
    if (kg_yaml_is_null(ev)) {
        yaml_event_delete(ev);
        return 0;
    }
    if (ev->type != YAML_MAPPING_START_EVENT) {
        char got[96];
        if (ev->type == YAML_SCALAR_EVENT)
            quote_for_message(got, sizeof(got), (const char *)ev->data.scalar.value, ev->data.scalar.length);
        else
            kg_strlcpy(got, kg_yaml_kind(ev), sizeof(got));
        if (prefix[0])
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, ev->start_mark.line,
                               "%s: expected a mapping of settings, got %s", prefix, got);
        else
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, ev->start_mark.line,
                               "expected a mapping of settings at the top level, got %s", got);
        yaml_event_delete(ev);
        return rc;
    }
    yaml_event_delete(ev);

    for (;;) {
        yaml_event_t kev, vev;
        if ((rc = kg_yaml_next(&ld->y, &kev)) != 0) return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        size_t line0 = kev.start_mark.line;
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "keys must be names, got %s", kg_yaml_kind(&kev));
            yaml_event_delete(&kev);
            return rc;
        }
        /* path = prefix "." key; a key may itself be dotted ("flow.max_flows: 1" at the top). */
        const char *name = (const char *)kev.data.scalar.value;
        size_t nlen = kev.data.scalar.length, plen = strlen(prefix);
        char path[CFG_PATH_MAX];
        size_t len = plen + (plen ? 1 : 0) + nlen;
        if (len >= sizeof(path) || memchr(name, '\0', nlen)) {
            char why[400];
            format_unknown_key(why, sizeof(why), name, nlen);
            rc = kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s", why);
            yaml_event_delete(&kev);
            return rc;
        }
        snprintf(path, sizeof(path), "%s%s%.*s", prefix, plen ? "." : "", (int)nlen, name);
        yaml_event_delete(&kev);

        const struct cfg_key *k = find_key(path, len);
        if (k) {
            size_t *seen = &ld->key_line[k - cfg_keys];
            if (*seen)
                return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                     "duplicate key '%s' (first set on line %zu)", path, *seen);
            *seen = line0 + 1;
            if ((rc = kg_yaml_next(&ld->y, &vev)) != 0) return rc;
            if ((rc = load_value(ld, k, &vev)) != 0) return rc;
        } else if (is_section(path, len)) {
            for (size_t i = 0; i < ld->nsections; i++)
                if (strcmp(ld->sections[i].path, path) == 0)
                    return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0,
                                         "duplicate key '%s' (first set on line %zu)", path,
                                         ld->sections[i].line);
            if (ld->nsections < KG_ARRAY_LEN(ld->sections)) {
                kg_strlcpy(ld->sections[ld->nsections].path, path, CFG_PATH_MAX);
                ld->sections[ld->nsections++].line = line0 + 1;
            }
            if ((rc = kg_yaml_next(&ld->y, &vev)) != 0) return rc;
            if ((rc = load_section(ld, path, &vev)) != 0) return rc;
        } else {
            char why[400];
            format_unknown_key(why, sizeof(why), path, len);
            return kg_yaml_error(&ld->y, KG_ERR_INVAL, line0, "%s", why);
        }
    }
}

/* stream-start, at most one document holding the top-level mapping, stream-end. */
static int load_stream(struct loader *ld)
{
    yaml_event_t ev;
    int rc;
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc; /* stream start */
    yaml_event_delete(&ev);
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty file, or only comments */
        yaml_event_delete(&ev);
        return 0;
    }
    yaml_event_delete(&ev); /* document start */
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if ((rc = load_section(ld, "", &ev)) != 0) return rc;
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc; /* document end */
    yaml_event_delete(&ev);
    if ((rc = kg_yaml_next(&ld->y, &ev)) != 0) return rc;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = kg_yaml_error(&ld->y, KG_ERR_PARSE, ev.start_mark.line, "only one YAML document is allowed");
    yaml_event_delete(&ev);
    return rc;
}

/* Reads the whole file: reader errors come as byte offsets, which need the text to become lines. */
static int read_file(const char *path, struct kg_buf *out, struct kg_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", path, strerror(EISDIR));
    }
    /* Not st_size: a pipe or /dev/fd/N (kagami -c <(...)) has none. */
    for (;;) {
        kg_buf_reserve(out, 4096);
        size_t n = fread(out->data + out->len, 1, out->cap - out->len - 1, f);
        out->len += n;
        out->data[out->len] = '\0';
        if (out->len > CFG_FILE_MAX) {
            fclose(f);
            return kg_err_set(err, KG_ERR_IO, "%s: too large for a configuration file (over %u MiB)", path,
                              CFG_FILE_MAX >> 20);
        }
        if (n == 0) break;
    }
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad) return kg_err_set(err, KG_ERR_IO, "%s: cannot read: %s", path, strerror(saved));
    return 0;
}

int kg_config_load_file(struct kg_config *cfg, const char *path, struct kg_err *err)
{
    if (!cfg || !path) return kg_err_set(err, KG_ERR_INVAL, "missing configuration or path");
    struct kg_buf text;
    kg_buf_init(&text);
    int rc = read_file(path, &text, err);
    if (rc) {
        kg_buf_free(&text);
        return rc;
    }

    /* Load into a copy and keep it only on success, so a bad file leaves cfg as it was. */
    struct kg_config next;
    cfg_copy(&next, cfg);
    struct loader *ld = kg_xcalloc(1, sizeof(*ld));
    ld->cfg = &next;
    kg_yaml_open(&ld->y, path, text.data, text.len, err);
    rc = load_stream(ld);
    kg_yaml_close(&ld->y);
    free(ld);
    kg_buf_free(&text);

    if (rc) {
        kg_config_free(&next);
        return rc;
    }
    kg_config_free(cfg);
    *cfg = next;
    return 0;
}

/* --- validation ---------------------------------------------------------- */

int kg_config_validate(const struct kg_config *cfg, struct kg_err *err)
{
    /* Per-key rules again: a caller may have written fields directly. */
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        char why[400];
        switch (k->type) {
        case CFG_STRING: {
            /* NULL is never a value: consumers test s[0] without a NULL check. An empty
             * sensor.id is refused too: set_scalar() would have put the host name there. */
            const char *s = *CFIELD(cfg, k, char *);
            if (!s) return kg_err_set(err, KG_ERR_INVAL, "%s: not set", k->key);
            if (!s[0] && !(k->flags & CFG_EMPTY_OK))
                return kg_err_set(err, KG_ERR_INVAL, "%s: must not be empty", k->key);
            if (check_string(k, s, strlen(s), true, why, sizeof(why)))
                return kg_err_set(err, KG_ERR_INVAL, "%s", why);
            break;
        }
        case CFG_LIST: {
            const struct kg_strlist *l = CFIELD(cfg, k, struct kg_strlist);
            if (l->count && !l->items)
                return kg_err_set(err, KG_ERR_INVAL, "%s: list has no items array", k->key);
            for (size_t j = 0; j < l->count; j++) {
                const char *s = l->items[j];
                if (!s || check_string(k, s, strlen(s), false, why, sizeof(why)))
                    return kg_err_set(err, KG_ERR_INVAL, "%s: item %zu: expected a non-empty UTF-8 string",
                                      k->key, j + 1);
            }
            break;
        }
        case CFG_U32: {
            uint32_t v = *CFIELD(cfg, k, uint32_t);
            if (v < k->min || v > k->max || ((k->flags & CFG_POW2) && (v & (v - 1)))) {
                char num[16];
                snprintf(num, sizeof(num), "%u", v);
                value_error(why, sizeof(why), k, num, strlen(num), true);
                return kg_err_set(err, KG_ERR_INVAL, "%s", why);
            }
            break;
        }
        case CFG_BOOL:
            break;
        case CFG_ENUM: {
            const char *s = *CFIELD(cfg, k, char *);
            bool ok = false;
            for (size_t j = 0; s && k->choices[j]; j++)
                ok |= strcmp(s, k->choices[j]) == 0;
            if (!ok) {
                value_error(why, sizeof(why), k, s ? s : "", s ? strlen(s) : 0, true);
                return kg_err_set(err, KG_ERR_INVAL, "%s", why);
            }
            break;
        }
        }
    }
    /* Cross-field: a worker pushes up to one alert per packet of a batch before
     * the export thread gets a chance to drain; a queue smaller than a batch
     * would drop alerts even with an idle exporter. */
    if (cfg->alert_queue < cfg->batch_packets)
        return kg_err_set(err, KG_ERR_INVAL,
                          "pipeline.alert_queue (%u) must be at least pipeline.batch_packets (%u)",
                          cfg->alert_queue, cfg->batch_packets);
    /* Requiring signatures with no key to check them against would refuse
     * every feed: almost certainly a forgotten key, not a wish. */
    if (cfg->indicator_require_signature && cfg->indicator_trusted_keys.count == 0)
        return kg_err_set(err, KG_ERR_INVAL,
                          "indicators.require_signature is true but indicators.trusted_keys is empty");
    return 0;
}

/* --- dump and reference -------------------------------------------------- */

/*
 * Writes s as a YAML double-quoted scalar that libyaml reads back to the same
 * bytes. Escaped: quote and backslash; C0, DEL and C1 controls and the BOM
 * (libyaml refuses them raw); NEL, LS and PS (YAML would fold them as line
 * breaks). Everything else, including other UTF-8, is written as is.
 */
static void yaml_quote(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            p++;
        } else if (c == '\n') {
            fputs("\\n", out), p++;
        } else if (c == '\t') {
            fputs("\\t", out), p++;
        } else if (c == '\r') {
            fputs("\\r", out), p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c), p++;
        } else if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* U+0080..U+009F (NEL included) */
            fprintf(out, "\\x%02x", p[1]), p += 2;
        } else if (c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) { /* LS, PS */
            fprintf(out, "\\u%04x", 0x2000u + (p[2] - 0x80u)), p += 3;
        } else if (c == 0xef && p[1] == 0xbb && p[2] == 0xbf) { /* BOM */
            fputs("\\ufeff", out), p += 3;
        } else if (c == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) { /* U+FFFE, U+FFFF */
            fprintf(out, "\\u%04x", 0xffc0u + (p[2] - 0x80u)), p += 3;
        } else {
            fputc((int)c, out), p++;
        }
    }
    fputc('"', out);
}

void kg_config_dump(const struct kg_config *cfg, FILE *out)
{
    fputs("# Kagami effective configuration (built-in defaults, then the file, then the command line).\n"
          "# Every key is described in docs/CONFIG.md.\n",
          out);
    const char *prev = "";
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        /* Open the sections this key has that the previous key did not. */
        size_t common = 0, depth = 0;
        for (size_t j = 0; k->key[j] && k->key[j] == prev[j]; j++)
            if (k->key[j] == '.') common = j + 1;
        for (size_t j = 0; j < common; j++)
            depth += k->key[j] == '.';
        const char *seg = k->key + common;
        for (const char *dot; (dot = strchr(seg, '.')) != NULL; seg = dot + 1, depth++) {
            if (depth == 0) fputc('\n', out);
            fprintf(out, "%*s%.*s:\n", (int)(2 * depth), "", (int)(dot - seg), seg);
        }
        if (depth == 0) fputc('\n', out);
        fprintf(out, "%*s%s:", (int)(2 * depth), "", seg);
        switch (k->type) {
        case CFG_STRING: {
            const char *s = *CFIELD(cfg, k, char *);
            fputc(' ', out);
            yaml_quote(out, s ? s : "");
            fputc('\n', out);
            break;
        }
        case CFG_LIST: {
            const struct kg_strlist *l = CFIELD(cfg, k, struct kg_strlist);
            if (l->count == 0) fputs(" []", out);
            fputc('\n', out);
            for (size_t j = 0; j < l->count; j++) {
                fprintf(out, "%*s- ", (int)(2 * depth + 2), "");
                yaml_quote(out, l->items[j]);
                fputc('\n', out);
            }
            break;
        }
        case CFG_U32:
            fprintf(out, " %u\n", *CFIELD(cfg, k, uint32_t));
            break;
        case CFG_BOOL:
            fprintf(out, " %s\n", *CFIELD(cfg, k, bool) ? "true" : "false");
            break;
        case CFG_ENUM: {
            /* Plain when it is one of the choices (always, after validation); quoted otherwise. */
            const char *s = *CFIELD(cfg, k, char *);
            bool known = false;
            for (size_t j = 0; s && k->choices[j]; j++)
                known |= strcmp(s, k->choices[j]) == 0;
            fputc(' ', out);
            if (known)
                fputs(s, out);
            else
                yaml_quote(out, s ? s : "");
            fputc('\n', out);
            break;
        }
        }
        prev = k->key;
    }
}

/* Markdown table cell text: '|' would end the cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

void kg_config_write_reference(FILE *out)
{
    fputs("| Key | Type | Default | Description |\n"
          "| --- | --- | --- | --- |\n",
          out);
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        fprintf(out, "| `%s` | ", k->key);
        switch (k->type) {
        case CFG_STRING:
            fputs("string", out);
            break;
        case CFG_LIST:
            fputs("list of strings", out);
            break;
        case CFG_U32:
            fprintf(out, "%s, %u to %u", (k->flags & CFG_POW2) ? "power of two" : "integer", k->min, k->max);
            break;
        case CFG_BOOL:
            fputs("boolean", out);
            break;
        case CFG_ENUM:
            fputs("one of", out);
            for (size_t j = 0; k->choices[j]; j++)
                fprintf(out, "%s `%s`", j ? "," : "", k->choices[j]);
            break;
        }
        fputs(" | ", out);
        if (k->def_doc)
            md_cell(out, k->def_doc);
        else if (k->type == CFG_LIST || !k->def || !k->def[0])
            fputs("empty", out); /* not "``", which Markdown shows as two backticks */
        else
            fprintf(out, "`%s`", k->def);
        fputs(" | ", out);
        md_cell(out, k->help);
        fputs(" |\n", out);
    }
}
