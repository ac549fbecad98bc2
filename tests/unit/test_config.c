/*
 * tests/unit/test_config.c — the config module: defaults, YAML loading and
 * its error messages (exact file:line), command-line setting, validation,
 * dump round trips, the shipped config/kagami.yaml, docs/CONFIG.md staying in
 * step with the key table, and random input never crashing.
 *
 * Fixtures live in tests/data/config/; small cases are written to a private
 * temporary directory so each expected message sits next to its input.
 * `test_config --reference` prints the key table for docs/CONFIG.md.
 */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kg_test.h"

static char g_tmpdir[PATH_MAX];
static char g_srcdir[PATH_MAX];

/* --- helpers --------------------------------------------------------------- */

/* snprintf into a path buffer; a path that does not fit is a broken test setup. */
#define PATH_PRINTF(buf, ...)                                                                                \
    do {                                                                                                     \
        int n_ = snprintf(buf, sizeof(buf), __VA_ARGS__);                                                    \
        if (n_ < 0 || (size_t)n_ >= sizeof(buf)) {                                                           \
            fprintf(stderr, "path too long\n");                                                              \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)

/* The source tree: ctest sets KG_SOURCE_DIR; run by hand, derive it from this file's path. */
static const char *src_dir(void)
{
    if (g_srcdir[0]) return g_srcdir;
    const char *env = getenv("KG_SOURCE_DIR");
    if (env && env[0]) {
        kg_strlcpy(g_srcdir, env, sizeof(g_srcdir));
    } else {
        kg_strlcpy(g_srcdir, __FILE__, sizeof(g_srcdir));
        char *tail = strstr(g_srcdir, "/tests/unit/test_config.c");
        if (tail)
            *tail = '\0';
        else
            kg_strlcpy(g_srcdir, ".", sizeof(g_srcdir));
    }
    return g_srcdir;
}

static const char *src_path(const char *rel)
{
    static char buf[PATH_MAX];
    PATH_PRINTF(buf, "%s/%s", src_dir(), rel);
    return buf;
}

static const char *fixture(const char *name)
{
    static char buf[PATH_MAX];
    PATH_PRINTF(buf, "%s/tests/data/config/%s", src_dir(), name);
    return buf;
}

static const char *tmp_path(const char *name)
{
    static char buf[PATH_MAX];
    PATH_PRINTF(buf, "%s/%s", g_tmpdir, name);
    return buf;
}

/* Writes len bytes to <tmpdir>/<name>; returns the path (valid until the next call). */
static const char *write_tmp_bytes(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

static const char *write_tmp(const char *name, const char *text)
{
    return write_tmp_bytes(name, text, strlen(text));
}

static char *read_all(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct kg_buf b;
    kg_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        kg_buf_append(&b, chunk, n);
    fclose(f);
    if (!b.data) kg_buf_append(&b, "", 0);
    if (len_out) *len_out = b.len;
    return b.data;
}

static bool list_equal(const char *what, const struct kg_strlist *a, const struct kg_strlist *b)
{
    if (a->count != b->count) {
        fprintf(stderr, "  %s: %zu items != %zu items\n", what, a->count, b->count);
        return false;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i], b->items[i]) != 0) {
            fprintf(stderr, "  %s[%zu]: \"%s\" != \"%s\"\n", what, i, a->items[i], b->items[i]);
            return false;
        }
    }
    return true;
}

/* Field-by-field comparison written out by hand (not through the key table),
 * so a field the table forgot to cover shows up as a difference. */
static bool cfg_equal(const struct kg_config *a, const struct kg_config *b)
{
    bool ok = true;
#define STR_EQ(f)                                                                                            \
    if (strcmp(a->f, b->f) != 0) {                                                                           \
        fprintf(stderr, "  " #f ": \"%s\" != \"%s\"\n", a->f, b->f);                                         \
        ok = false;                                                                                          \
    }
#define NUM_EQ(f)                                                                                            \
    if (a->f != b->f) {                                                                                      \
        fprintf(stderr, "  " #f ": %lld != %lld\n", (long long)a->f, (long long)b->f);                       \
        ok = false;                                                                                          \
    }
    STR_EQ(sensor_id);
    STR_EQ(log_level);
    NUM_EQ(workers);
    ok &= list_equal("read_files", &a->read_files, &b->read_files);
    ok &= list_equal("capture_ifaces", &a->capture_ifaces, &b->capture_ifaces);
    NUM_EQ(capture_threads);
    NUM_EQ(capture_snaplen);
    NUM_EQ(capture_promisc);
    NUM_EQ(capture_buffer_mb);
    STR_EQ(capture_bpf);
    NUM_EQ(capture_dedup_ms);
    ok &= list_equal("indicator_files", &a->indicator_files, &b->indicator_files);
    STR_EQ(indicator_tuning);
    ok &= list_equal("indicator_trusted_keys", &a->indicator_trusted_keys, &b->indicator_trusted_keys);
    NUM_EQ(indicator_require_signature);
    STR_EQ(indicator_redis);
    NUM_EQ(indicator_redis_poll);
    NUM_EQ(indicator_watch);
    ok &= list_equal("outputs", &a->outputs, &b->outputs);
    ok &= list_equal("stats.outputs", &a->stats_outputs, &b->stats_outputs);
    NUM_EQ(flow_max);
    NUM_EQ(flow_tcp_timeout);
    NUM_EQ(flow_udp_timeout);
    NUM_EQ(flow_other_timeout);
    NUM_EQ(flow_vlan_in_key);
    NUM_EQ(defrag_max_mb);
    NUM_EQ(defrag_timeout);
    NUM_EQ(ring_size);
    NUM_EQ(batch_packets);
    NUM_EQ(alert_queue);
    NUM_EQ(stats_interval);
    NUM_EQ(decoder_max_depth);
    NUM_EQ(events_dns);
    NUM_EQ(events_tls);
    NUM_EQ(events_http);
    NUM_EQ(events_quic);
    NUM_EQ(events_flow);
    STR_EQ(geoip_country_db);
    STR_EQ(geoip_asn_db);
#undef STR_EQ
#undef NUM_EQ
    return ok;
}

/* Dumps cfg, loads the dump over a config with every key off its default
 * (full.yaml), and compares: so the dump must write every key, and write an
 * empty string or list so that it reads back empty rather than absent. */
static bool round_trips(const struct kg_config *cfg)
{
    const char *path = tmp_path("dump.yaml");
    FILE *f = fopen(path, "w");
    if (!f) return false;
    kg_config_dump(cfg, f);
    fclose(f);
    struct kg_config back;
    kg_config_init(&back);
    struct kg_err err = {{0}};
    if (kg_config_load_file(&back, fixture("full.yaml"), &err) != 0) {
        fprintf(stderr, "  loading full.yaml failed: %s\n", err.msg);
        kg_config_free(&back);
        return false;
    }
    int rc = kg_config_load_file(&back, path, &err);
    if (rc != 0) fprintf(stderr, "  reloading the dump failed: %s\n", err.msg);
    bool ok = rc == 0 && cfg_equal(cfg, &back);
    if (!ok) {
        char *text = read_all(path, NULL);
        fprintf(stderr, "  dump was:\n%s\n", text ? text : "(unreadable)");
        free(text);
    }
    kg_config_free(&back);
    return ok;
}

static bool is_default(const struct kg_config *cfg)
{
    struct kg_config def;
    kg_config_init(&def);
    bool ok = cfg_equal(cfg, &def);
    kg_config_free(&def);
    return ok;
}

/* Loads text from <tmpdir>/case.yaml into a default config; checks the return
 * code and that the message is exactly "<path><suffix>", and that a failed
 * load left the config untouched. */
static void expect_load(const char *text, size_t len, int want_rc, const char *want_suffix, int line)
{
    const char *path = write_tmp_bytes("case.yaml", text, len);
    struct kg_config cfg;
    kg_config_init(&cfg);
    struct kg_err err = {{0}};
    int rc = kg_config_load_file(&cfg, path, &err);
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", path, want_suffix);
    if (rc != want_rc || (want_rc != 0 && strcmp(err.msg, want) != 0))
        fprintf(stderr, "  case at test_config.c:%d: rc %d, message \"%s\"\n", line, rc, err.msg);
    CHECK_EQ_INT(rc, want_rc);
    if (want_rc != 0) {
        CHECK_EQ_STR(err.msg, want);
        CHECK(is_default(&cfg));
    }
    kg_config_free(&cfg);
}
#define EXPECT_LOAD(text, rc, suffix) expect_load(text, strlen(text), rc, suffix, __LINE__)

/* --- tests ----------------------------------------------------------------- */

static void test_defaults(void)
{
    struct kg_config cfg;
    kg_config_init(&cfg);
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    CHECK_EQ_STR(cfg.sensor_id, host[0] ? host : "kagami");
    CHECK_EQ_STR(cfg.log_level, "info");
    CHECK_EQ_INT(cfg.workers, 0);
    CHECK_EQ_INT(cfg.read_files.count, 0);
    CHECK_EQ_INT(cfg.capture_ifaces.count, 0);
    CHECK_EQ_INT(cfg.capture_threads, 1);
    CHECK_EQ_INT(cfg.capture_snaplen, 65535);
    CHECK(cfg.capture_promisc);
    CHECK_EQ_INT(cfg.capture_buffer_mb, 64);
    CHECK_EQ_STR(cfg.capture_bpf, ""); /* empty, not NULL: no filter */
    CHECK_EQ_INT(cfg.capture_dedup_ms, 0);
    CHECK_EQ_INT(cfg.indicator_files.count, 0);
    CHECK_EQ_STR(cfg.indicator_tuning, ""); /* empty, not NULL: no tuning */
    CHECK_EQ_INT(cfg.indicator_trusted_keys.count, 0);
    CHECK(!cfg.indicator_require_signature);
    CHECK_EQ_STR(cfg.indicator_redis, "");
    CHECK_EQ_INT(cfg.indicator_redis_poll, 30);
    CHECK(cfg.indicator_watch);
    CHECK_EQ_INT(cfg.outputs.count, 0); /* empty: the sensor picks stdout */
    CHECK_EQ_INT(cfg.flow_max, 65536);
    CHECK_EQ_INT(cfg.flow_tcp_timeout, 600);
    CHECK_EQ_INT(cfg.flow_udp_timeout, 120);
    CHECK_EQ_INT(cfg.flow_other_timeout, 60);
    CHECK(cfg.flow_vlan_in_key);
    CHECK_EQ_INT(cfg.defrag_max_mb, 64);
    CHECK_EQ_INT(cfg.defrag_timeout, 30);
    CHECK_EQ_INT(cfg.ring_size, 256);
    CHECK_EQ_INT(cfg.batch_packets, 64);
    CHECK_EQ_INT(cfg.alert_queue, 4096);
    CHECK_EQ_INT(cfg.stats_interval, 0);
    CHECK(!cfg.events_dns);
    CHECK(!cfg.events_tls);
    CHECK(!cfg.events_http);
    CHECK(!cfg.events_quic);
    CHECK(!cfg.events_flow);
    CHECK_EQ_STR(cfg.geoip_country_db, "");
    CHECK_EQ_STR(cfg.geoip_asn_db, "");
    struct kg_err err = {{0}};
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    kg_config_free(&cfg);
    kg_config_free(&cfg); /* freeing twice is harmless: free leaves NULLs */
    kg_config_free(NULL);
}

static void test_key_names(void)
{
    static const char *const want[] = {
        "sensor.id",
        "sensor.log_level",
        "sensor.workers",
        "input.files",
        "capture.interfaces",
        "capture.threads",
        "capture.snaplen",
        "capture.promisc",
        "capture.buffer_mb",
        "capture.bpf",
        "capture.dedup_ms",
        "indicators.files",
        "indicators.tuning",
        "indicators.trusted_keys",
        "indicators.require_signature",
        "indicators.redis",
        "indicators.redis_poll",
        "indicators.watch",
        "outputs",
        "flow.max_flows",
        "flow.tcp_timeout",
        "flow.udp_timeout",
        "flow.other_timeout",
        "flow.vlan_in_key",
        "decoder.max_depth",
        "defrag.max_mb",
        "defrag.timeout",
        "pipeline.ring_size",
        "pipeline.batch_packets",
        "pipeline.alert_queue",
        "stats.interval",
        "stats.outputs",
        "events.dns",
        "events.tls",
        "events.http",
        "events.quic",
        "events.flow",
        "geoip.country_db",
        "geoip.asn_db",
    };
    size_t n = 0;
    while (kg_config_key_name(n))
        n++;
    CHECK_EQ_INT(n, KG_ARRAY_LEN(want));
    for (size_t i = 0; i < KG_ARRAY_LEN(want) && i < n; i++)
        CHECK_EQ_STR(kg_config_key_name(i), want[i]);
    CHECK(kg_config_key_name(n) == NULL);
}

static void test_full_file(void)
{
    struct kg_config cfg;
    kg_config_init(&cfg);
    struct kg_err err = {{0}};
    int rc = kg_config_load_file(&cfg, fixture("full.yaml"), &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(cfg.sensor_id, "edge-01");
    CHECK_EQ_STR(cfg.log_level, "debug");
    CHECK_EQ_INT(cfg.workers, 4);
    CHECK_EQ_INT(cfg.read_files.count, 2);
    if (cfg.read_files.count == 2) {
        CHECK_EQ_STR(cfg.read_files.items[0], "/data/captures/monday.pcap");
        CHECK_EQ_STR(cfg.read_files.items[1], "/data/captures/tuesday 2.pcapng");
    }
    CHECK_EQ_INT(cfg.capture_ifaces.count, 2);
    if (cfg.capture_ifaces.count == 2) {
        CHECK_EQ_STR(cfg.capture_ifaces.items[0], "eth1");
        CHECK_EQ_STR(cfg.capture_ifaces.items[1], "enp3s0f1");
    }
    CHECK_EQ_INT(cfg.capture_threads, 4);
    CHECK_EQ_INT(cfg.capture_snaplen, 9216);
    CHECK(!cfg.capture_promisc);
    CHECK_EQ_INT(cfg.capture_buffer_mb, 256);
    CHECK_EQ_STR(cfg.capture_bpf, "not (host 10.0.0.5 and tcp port 22)");
    CHECK_EQ_INT(cfg.capture_dedup_ms, 5);
    CHECK_EQ_INT(cfg.indicator_files.count, 1);
    if (cfg.indicator_files.count == 1)
        CHECK_EQ_STR(cfg.indicator_files.items[0], "/etc/kagami/indicators/*.intel");
    CHECK_EQ_STR(cfg.indicator_tuning, "/etc/kagami/tuning.yaml");
    CHECK_EQ_INT(cfg.indicator_trusted_keys.count, 2);
    if (cfg.indicator_trusted_keys.count == 2) {
        CHECK_EQ_STR(cfg.indicator_trusted_keys.items[0], "/etc/kagami/keys/feed-signing.pub");
        CHECK_EQ_STR(cfg.indicator_trusted_keys.items[1], "/etc/kagami/keys/feed signing 2026.pub");
    }
    CHECK(cfg.indicator_require_signature);
    CHECK_EQ_STR(cfg.indicator_redis, "redis://:s3cret@10.0.0.9:6379/kagami:feed");
    CHECK_EQ_INT(cfg.indicator_redis_poll, 120);
    CHECK(!cfg.indicator_watch);
    CHECK_EQ_INT(cfg.outputs.count, 3);
    if (cfg.outputs.count == 3) {
        CHECK_EQ_STR(cfg.outputs.items[0], "stdout");
        CHECK_EQ_STR(cfg.outputs.items[1], "file:/var/log/kagami/alerts.json");
        CHECK_EQ_STR(cfg.outputs.items[2], "redis://127.0.0.1:6379/kagami");
    }
    CHECK_EQ_INT(cfg.flow_max, 200000);
    CHECK_EQ_INT(cfg.flow_tcp_timeout, 3600);
    CHECK_EQ_INT(cfg.flow_udp_timeout, 30);
    CHECK_EQ_INT(cfg.flow_other_timeout, 15);
    CHECK(!cfg.flow_vlan_in_key);
    CHECK_EQ_INT(cfg.defrag_max_mb, 16);
    CHECK_EQ_INT(cfg.defrag_timeout, 60);
    CHECK_EQ_INT(cfg.ring_size, 1024);
    CHECK_EQ_INT(cfg.batch_packets, 32);
    CHECK_EQ_INT(cfg.alert_queue, 65536);
    CHECK_EQ_INT(cfg.stats_interval, 300);
    CHECK_EQ_INT(cfg.decoder_max_depth, 4);
    CHECK_EQ_INT(cfg.stats_outputs.count, 1);
    if (cfg.stats_outputs.count == 1) CHECK_EQ_STR(cfg.stats_outputs.items[0], "redis://127.0.0.1:6379/kagami:stats");
    CHECK(cfg.events_dns);
    CHECK(cfg.events_tls);
    CHECK(cfg.events_http);
    CHECK(cfg.events_quic);
    CHECK(cfg.events_flow);
    CHECK_EQ_STR(cfg.geoip_country_db, "/usr/share/GeoIP/GeoLite2-City.mmdb");
    CHECK_EQ_STR(cfg.geoip_asn_db, "/usr/share/GeoIP/GeoLite2-ASN.mmdb");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    CHECK(round_trips(&cfg));

    /* Every key really is off its default: round_trips() relies on it to show
     * that a dump writes every key. */
    struct kg_config def;
    kg_config_init(&def);
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    FILE *fa = open_memstream(&a, &alen), *fb = open_memstream(&b, &blen);
    kg_config_dump(&cfg, fa);
    kg_config_dump(&def, fb);
    fclose(fa);
    fclose(fb);
    /* Compare the dumps line by line: each key's line must differ. */
    const char *pa = a, *pb = b;
    size_t differing = 0, lines = 0;
    while (*pa && *pb) {
        size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");
        bool is_value = la && pa[la - 1] != ':' && pa[0] != '#' && pa[strspn(pa, " ")] != '-';
        if (is_value) {
            lines++;
            if (la != lb || memcmp(pa, pb, la) != 0)
                differing++;
            else
                fprintf(stderr, "  full.yaml leaves this at its default: %.*s\n", (int)la, pa);
        }
        /* List items make the two dumps differ in length: skip them on both sides. */
        pa += la + (pa[la] != 0);
        pb += lb + (pb[lb] != 0);
        while (*pa && pa[strspn(pa, " ")] == '-')
            pa += strcspn(pa, "\n") + (pa[strcspn(pa, "\n")] != 0);
        while (*pb && pb[strspn(pb, " ")] == '-')
            pb += strcspn(pb, "\n") + (pb[strcspn(pb, "\n")] != 0);
    }
    CHECK(lines > 0);
    CHECK_EQ_INT(differing, lines);
    free(a);
    free(b);
    kg_config_free(&def);
    kg_config_free(&cfg);
}

static void test_value_forms(void)
{
    struct kg_config cfg;
    struct kg_err err = {{0}};
    kg_config_init(&cfg);

    /* Booleans in every accepted spelling and letter case. */
    static const struct {
        const char *text;
        bool value;
    } bools[] = {{"true", true}, {"True", true}, {"TRUE", true},   {"yes", true},
                 {"on", true},   {"ON", true},   {"false", false}, {"False", false},
                 {"no", false},  {"No", false},  {"off", false},   {"'yes'", true}};
    for (size_t i = 0; i < KG_ARRAY_LEN(bools); i++) {
        char text[64];
        snprintf(text, sizeof(text), "flow:\n  vlan_in_key: %s\n", bools[i].text);
        cfg.flow_vlan_in_key = !bools[i].value;
        CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("b.yaml", text), &err), 0);
        CHECK_EQ_INT(cfg.flow_vlan_in_key, bools[i].value);
    }

    /* Integer edges, quoted integers, enum letter case (stored canonical). */
    CHECK_EQ_INT(kg_config_load_file(&cfg,
                                     write_tmp("i.yaml", "flow:\n  max_flows: 1024\n  tcp_timeout: '86400'\n"
                                                         "sensor: {log_level: WARNING, workers: 256}\n"),
                                     &err),
                 0);
    CHECK_EQ_INT(cfg.flow_max, 1024);
    CHECK_EQ_INT(cfg.flow_tcp_timeout, 86400);
    CHECK_EQ_STR(cfg.log_level, "warning");
    CHECK_EQ_INT(cfg.workers, 256);

    /* A null list is an empty list; a null section or null document changes nothing;
     * an empty or null sensor.id means the host name. */
    kg_config_set(&cfg, "outputs", "stdout", &err);
    kg_config_set(&cfg, "sensor.id", "x", &err);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("n.yaml", "outputs:\ninput:\nsensor:\n  id: ~\n"), &err),
                 0);
    CHECK_EQ_INT(cfg.outputs.count, 0);
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    CHECK_EQ_STR(cfg.sensor_id, host[0] ? host : "kagami");
    kg_config_set(&cfg, "sensor.id", "x", &err);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("n.yaml", "sensor:\n  id: ''\n"), &err), 0);
    CHECK_EQ_STR(cfg.sensor_id, host[0] ? host : "kagami");
    /* Quoted "null" is a string, not YAML's null. */
    CHECK_EQ_INT(
        kg_config_load_file(&cfg, write_tmp("n.yaml", "sensor: {id: \"null\"}\noutputs: 'null'\n"), &err), 0);
    CHECK_EQ_STR(cfg.sensor_id, "null");
    CHECK_EQ_INT(cfg.outputs.count, 1);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("n.yaml", "outputs: []\n"), &err), 0);
    CHECK_EQ_INT(cfg.outputs.count, 0);

    /* Strings that may be empty (no filter, no database): every way of writing
     * "empty" clears a value set before, and none of them means the host name. */
    static const char *const empties[] = {"", " ''", " \"\"", " ~", " null"};
    for (size_t i = 0; i < KG_ARRAY_LEN(empties); i++) {
        kg_config_set(&cfg, "capture.bpf", "udp", &err);
        kg_config_set(&cfg, "geoip.country_db", "/x.mmdb", &err);
        kg_config_set(&cfg, "geoip.asn_db", "/y.mmdb", &err);
        kg_config_set(&cfg, "indicators.tuning", "/t.yaml", &err);
        kg_config_set(&cfg, "indicators.redis", "redis://h/k", &err);
        char text[256];
        snprintf(text, sizeof(text),
                 "capture:\n  bpf:%s\ngeoip:\n  country_db:%s\n  asn_db:%s\nindicators:\n  tuning:%s\n"
                 "  redis:%s\n",
                 empties[i], empties[i], empties[i], empties[i], empties[i]);
        CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("n.yaml", text), &err), 0);
        CHECK_EQ_STR(cfg.capture_bpf, "");
        CHECK_EQ_STR(cfg.geoip_country_db, "");
        CHECK_EQ_STR(cfg.geoip_asn_db, "");
        CHECK_EQ_STR(cfg.indicator_tuning, "");
        CHECK_EQ_STR(cfg.indicator_redis, "");
    }
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);

    /* Empty files, comment-only files and empty documents change nothing. */
    struct kg_config before;
    kg_config_init(&before);
    kg_config_free(&cfg);
    kg_config_init(&cfg);
    CHECK_EQ_INT(kg_config_load_file(&cfg, fixture("empty.yaml"), &err), 0);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("e.yaml", ""), &err), 0);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("e.yaml", "---\n...\n"), &err), 0);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("e.yaml", "\xef\xbb\xbf# BOM, then a comment\n"), &err),
                 0);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("e.yaml", "{}\n"), &err), 0);
    CHECK(cfg_equal(&cfg, &before));
    kg_config_free(&before);
    kg_config_free(&cfg);
}

/* Lists: a file replaces, the command line appends, an empty CLI value clears. */
static void test_list_precedence(void)
{
    struct kg_config cfg;
    struct kg_err err = {{0}};
    kg_config_init(&cfg);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("a.yaml", "input:\n  files: [a.pcap, b.pcap]\n"), &err),
                 0);
    CHECK_EQ_INT(cfg.read_files.count, 2);
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("b.yaml", "input:\n  files: c.pcap\n"), &err), 0);
    CHECK_EQ_INT(cfg.read_files.count, 1);
    CHECK_EQ_INT(kg_config_set(&cfg, "input.files", "d.pcap", &err), 0);
    CHECK_EQ_INT(cfg.read_files.count, 2);
    if (cfg.read_files.count == 2) {
        CHECK_EQ_STR(cfg.read_files.items[0], "c.pcap");
        CHECK_EQ_STR(cfg.read_files.items[1], "d.pcap");
    }
    /* A file that does not mention the key leaves it alone. */
    CHECK_EQ_INT(kg_config_load_file(&cfg, write_tmp("c.yaml", "flow:\n  tcp_timeout: 5\n"), &err), 0);
    CHECK_EQ_INT(cfg.read_files.count, 2);
    CHECK_EQ_INT(kg_config_set(&cfg, "input.files", "", &err), 0);
    CHECK_EQ_INT(cfg.read_files.count, 0);

    /* The precedence the sensor implements: defaults, then the file, then the command line. */
    CHECK_EQ_INT(kg_config_load_file(&cfg, fixture("full.yaml"), &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.max_flows", "300000", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "outputs", "file:/tmp/extra.json", &err), 0);
    CHECK_EQ_INT(cfg.flow_max, 300000);
    CHECK_EQ_INT(cfg.flow_tcp_timeout, 3600); /* from the file */
    CHECK_EQ_INT(cfg.batch_packets, 32);      /* from the file */
    CHECK_EQ_INT(cfg.outputs.count, 4);
    if (cfg.outputs.count == 4) CHECK_EQ_STR(cfg.outputs.items[3], "file:/tmp/extra.json");
    /* -i adds to the file's interfaces, -f replaces the file's filter. */
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.interfaces", "eth9", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.bpf", "udp port 53", &err), 0);
    CHECK_EQ_INT(cfg.capture_ifaces.count, 3);
    if (cfg.capture_ifaces.count == 3) {
        CHECK_EQ_STR(cfg.capture_ifaces.items[0], "eth1");
        CHECK_EQ_STR(cfg.capture_ifaces.items[2], "eth9");
    }
    CHECK_EQ_STR(cfg.capture_bpf, "udp port 53");
    CHECK_EQ_INT(cfg.capture_threads, 4); /* from the file */
    kg_config_free(&cfg);
}

static void test_error_fixtures(void)
{
    static const struct {
        const char *file;
        int rc;
        const char *suffix;
    } cases[] = {
        {"unknown-key.yaml", KG_ERR_INVAL,
         ":6: unknown key 'flow.max_flow' (did you mean 'flow.max_flows'?)"},
        {"wrong-type.yaml", KG_ERR_INVAL,
         ":6: flow.max_flows: expected an integer from 1024 to 100000000, got 'abc'"},
        {"syntax-error.yaml", KG_ERR_PARSE,
         ":3: did not find expected key (while parsing a block mapping at line 1)"},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(cases); i++) {
        char path[PATH_MAX];
        kg_strlcpy(path, fixture(cases[i].file), sizeof(path));
        struct kg_config cfg;
        kg_config_init(&cfg);
        struct kg_err err = {{0}};
        CHECK_EQ_INT(kg_config_load_file(&cfg, path, &err), cases[i].rc);
        char want[PATH_MAX + 256];
        snprintf(want, sizeof(want), "%s%s", path, cases[i].suffix);
        CHECK_EQ_STR(err.msg, want);
        CHECK(is_default(&cfg)); /* a failed load changes nothing, even keys set before the error */
        kg_config_free(&cfg);
    }
}

static void test_errors(void)
{
    /* Unknown keys, with and without hints. */
    EXPECT_LOAD("flows:\n  max_flows: 100000\n", KG_ERR_INVAL,
                ":1: unknown key 'flows' (did you mean 'flow'?)");
    EXPECT_LOAD("# top\nmax_flows: 100000\n", KG_ERR_INVAL,
                ":2: unknown key 'max_flows' (did you mean 'flow.max_flows'?)");
    EXPECT_LOAD("files: a\n", KG_ERR_INVAL,
                ":1: unknown key 'files' (did you mean 'input.files' or 'indicators.files'?)");
    EXPECT_LOAD("flow.tcp_timout: 5\n", KG_ERR_INVAL,
                ":1: unknown key 'flow.tcp_timout' (did you mean 'flow.tcp_timeout'?)");
    EXPECT_LOAD("sensor:\n  id: a\n  colour: red\n", KG_ERR_INVAL, ":3: unknown key 'sensor.colour'");
    EXPECT_LOAD("dns: yes\n", KG_ERR_INVAL, ":1: unknown key 'dns' (did you mean 'events.dns'?)");
    /* A section indented under another one: its name is offered, and a key of that name too. */
    EXPECT_LOAD("sensor:\n  id: a\n  flow:\n    max_flows: 100000\n", KG_ERR_INVAL,
                ":3: unknown key 'sensor.flow' (did you mean 'flow' or 'events.flow'?)");
    EXPECT_LOAD("flow:\n  tcp_timeout: 5\n  pipeline:\n    ring_size: 512\n", KG_ERR_INVAL,
                ":3: unknown key 'flow.pipeline' (did you mean 'pipeline'?)");
    EXPECT_LOAD("capture:\n  interface: eth0\n", KG_ERR_INVAL,
                ":2: unknown key 'capture.interface' (did you mean 'capture.interfaces'?)");
    EXPECT_LOAD("flow:\n  max_flows:\n    x: 1\n", KG_ERR_INVAL,
                ":3: flow.max_flows: expected an integer from 1024 to 100000000, got a mapping");

    /* Integers: decimal only, range-checked. */
    static const char *const bad_ints[] = {"abc",
                                           "1023",
                                           "100000001",
                                           "-5",
                                           "+2048",
                                           "0x800",
                                           "02048",
                                           "2_048",
                                           "2048.0",
                                           "1e4",
                                           "99999999999999999999",
                                           "\"\""};
    for (size_t i = 0; i < KG_ARRAY_LEN(bad_ints); i++) {
        char text[128], suffix[256], shown[64];
        snprintf(text, sizeof(text), "flow:\n  max_flows: %s\n", bad_ints[i]);
        /* The message shows the scalar's value: quotes are YAML syntax, not part of it. */
        kg_strlcpy(shown, strcmp(bad_ints[i], "\"\"") == 0 ? "" : bad_ints[i], sizeof(shown));
        snprintf(suffix, sizeof(suffix),
                 ":2: flow.max_flows: expected an integer from 1024 to 100000000, got '%s'", shown);
        expect_load(text, strlen(text), KG_ERR_INVAL, suffix, __LINE__);
    }
    EXPECT_LOAD("flow:\n  tcp_timeout:\n", KG_ERR_INVAL,
                ":2: flow.tcp_timeout: expected an integer from 1 to 86400, got nothing");
    EXPECT_LOAD("flow:\n  udp_timeout: 0\n", KG_ERR_INVAL,
                ":2: flow.udp_timeout: expected an integer from 1 to 86400, got '0'");
    EXPECT_LOAD("pipeline:\n  ring_size: 100\n", KG_ERR_INVAL,
                ":2: pipeline.ring_size: expected a power of two from 4 to 65536, got '100'");
    EXPECT_LOAD("pipeline:\n  alert_queue: 32\n", KG_ERR_INVAL,
                ":2: pipeline.alert_queue: expected a power of two from 64 to 1048576, got '32'");
    EXPECT_LOAD("pipeline:\n  batch_packets: [1, 2]\n", KG_ERR_INVAL,
                ":2: pipeline.batch_packets: expected an integer from 1 to 1024, got a list");
    EXPECT_LOAD("capture:\n  threads: 0\n", KG_ERR_INVAL,
                ":2: capture.threads: expected an integer from 1 to 64, got '0'");
    EXPECT_LOAD("capture:\n  snaplen: 63\n", KG_ERR_INVAL,
                ":2: capture.snaplen: expected an integer from 64 to 262144, got '63'");
    EXPECT_LOAD("capture:\n  dedup_ms: 1001\n", KG_ERR_INVAL,
                ":2: capture.dedup_ms: expected an integer from 0 to 1000, got '1001'");
    EXPECT_LOAD("defrag:\n  timeout: 301\n", KG_ERR_INVAL,
                ":2: defrag.timeout: expected an integer from 1 to 300, got '301'");
    EXPECT_LOAD("stats:\n  interval:\n", KG_ERR_INVAL,
                ":2: stats.interval: expected an integer from 0 to 86400, got nothing");

    /* Booleans, enums, strings. */
    EXPECT_LOAD("flow:\n  vlan_in_key: maybe\n", KG_ERR_INVAL,
                ":2: flow.vlan_in_key: expected true or false (or yes/no, on/off), got 'maybe'");
    EXPECT_LOAD("flow:\n  vlan_in_key: 1\n", KG_ERR_INVAL,
                ":2: flow.vlan_in_key: expected true or false (or yes/no, on/off), got '1'");
    EXPECT_LOAD("sensor:\n  log_level: verbose\n", KG_ERR_INVAL,
                ":2: sensor.log_level: expected one of error, warning, info, debug, got 'verbose'");
    EXPECT_LOAD("sensor:\n  id: [a, b]\n", KG_ERR_INVAL, ":2: sensor.id: expected a string, got a list");
    EXPECT_LOAD("events:\n  tls: ~\n", KG_ERR_INVAL,
                ":2: events.tls: expected true or false (or yes/no, on/off), got nothing");
    EXPECT_LOAD("capture:\n  bpf: [tcp, udp]\n", KG_ERR_INVAL,
                ":2: capture.bpf: expected a string, got a list");
    EXPECT_LOAD("geoip:\n  asn_db: \"a\\0b\"\n", KG_ERR_INVAL,
                ":2: geoip.asn_db: values must not contain NUL bytes");
    EXPECT_LOAD("capture:\n  interfaces: [eth0, '']\n", KG_ERR_INVAL,
                ":2: capture.interfaces: expected a non-empty string, got ''");
    EXPECT_LOAD("sensor:\n  id: \"a\\0b\"\n", KG_ERR_INVAL,
                ":2: sensor.id: values must not contain NUL bytes");

    /* Lists. */
    EXPECT_LOAD("input:\n  files:\n    - a.pcap\n    - {path: b.pcap}\n", KG_ERR_INVAL,
                ":4: input.files: expected a string, got a mapping");
    EXPECT_LOAD("input:\n  files:\n    - a.pcap\n    -\n", KG_ERR_INVAL,
                ":4: input.files: expected a string, got nothing");
    EXPECT_LOAD("outputs: [stdout, \"\"]\n", KG_ERR_INVAL,
                ":1: outputs: expected a non-empty string, got ''");
    EXPECT_LOAD("outputs: {stdout: yes}\n", KG_ERR_INVAL,
                ":1: outputs: expected a string or a list of strings, got a mapping");
    EXPECT_LOAD("indicators:\n  files:\n    - [a, b]\n", KG_ERR_INVAL,
                ":3: indicators.files: expected a string, got a list");
    EXPECT_LOAD("indicators:\n  trusted_keys: [a.pub, '']\n", KG_ERR_INVAL,
                ":2: indicators.trusted_keys: expected a non-empty string, got ''");
    EXPECT_LOAD("indicators:\n  redis_poll: 0\n", KG_ERR_INVAL,
                ":2: indicators.redis_poll: expected an integer from 1 to 3600, got '0'");
    EXPECT_LOAD("indicators:\n  require_signature: maybe\n", KG_ERR_INVAL,
                ":2: indicators.require_signature: expected true or false (or yes/no, on/off), got 'maybe'");
    EXPECT_LOAD("indicators:\n  tuning: [a.yaml]\n", KG_ERR_INVAL,
                ":2: indicators.tuning: expected a string, got a list");
    /* A Redis URL is checked for what the poller needs, and never echoed: it may hold a password. */
    EXPECT_LOAD("indicators:\n  watch: yes\n  redis: \"redis://:pw@10.0.0.9:6379\"\n", KG_ERR_INVAL,
                ":3: indicators.redis: expected redis://[:password@]host:port/key: no key after the host "
                "(redis://host:port/key)");

    /* Structure. */
    EXPECT_LOAD("flow: 5\n", KG_ERR_INVAL, ":1: flow: expected a mapping of settings, got '5'");
    EXPECT_LOAD("- a\n- b\n", KG_ERR_INVAL,
                ":1: expected a mapping of settings at the top level, got a list");
    EXPECT_LOAD("just text\n", KG_ERR_INVAL,
                ":1: expected a mapping of settings at the top level, got 'just text'");
    EXPECT_LOAD("? [a, b]\n: 1\n", KG_ERR_INVAL, ":1: keys must be names, got a list");
    EXPECT_LOAD("flow:\n  tcp_timeout: 5\n  tcp_timeout: 6\n", KG_ERR_INVAL,
                ":3: duplicate key 'flow.tcp_timeout' (first set on line 2)");
    EXPECT_LOAD("flow:\n  tcp_timeout: 5\nflow.tcp_timeout: 6\n", KG_ERR_INVAL,
                ":3: duplicate key 'flow.tcp_timeout' (first set on line 2)");
    EXPECT_LOAD("flow:\n  tcp_timeout: 5\nsensor: {}\nflow:\n  udp_timeout: 6\n", KG_ERR_INVAL,
                ":4: duplicate key 'flow' (first set on line 1)");
    EXPECT_LOAD("sensor:\n  id: &name edge\n  log_level: *name\n", KG_ERR_PARSE,
                ":3: YAML aliases are not supported (*name)");
    EXPECT_LOAD("flow:\n  tcp_timeout: 5\n---\nflow:\n  tcp_timeout: 6\n", KG_ERR_PARSE,
                ":3: only one YAML document is allowed");

    /* YAML syntax: libyaml's problem, at its (1-based) line. */
    EXPECT_LOAD("flow:\n  tcp_timeout: 5: 6\n", KG_ERR_PARSE,
                ":2: mapping values are not allowed in this context");
    EXPECT_LOAD("sensor:\n  id: \"edge\n", KG_ERR_PARSE,
                ":3: found unexpected end of stream (while scanning a quoted scalar at line 2)");
    EXPECT_LOAD(
        "flow:\n\tmax_flows: 100000\n", KG_ERR_PARSE,
        ":2: found character that cannot start any token (while scanning for the next token at line 2)");
    EXPECT_LOAD("# one\n# two\noutputs: [stdout, file:/x\nflow: {}\n", KG_ERR_PARSE,
                ":4: did not find expected ',' or ']' (while parsing a flow sequence at line 3)");
    EXPECT_LOAD("sensor:\n  id: edge\n  log_level: \xff\n", KG_ERR_PARSE,
                ":3: invalid leading UTF-8 octet (byte 0xff)");
    /* A NUL byte in the file is a reader error too, not a silently shortened value. */
    static const char nul_text[] = "sensor:\n  id: ab\0cd\n";
    expect_load(nul_text, sizeof(nul_text) - 1, KG_ERR_PARSE,
                ":2: control characters are not allowed (byte 0x00)", __LINE__);
}

static void test_unreadable(void)
{
    struct kg_config cfg;
    kg_config_init(&cfg);
    struct kg_err err = {{0}};
    const char *missing = tmp_path("does-not-exist.yaml");
    CHECK_EQ_INT(kg_config_load_file(&cfg, missing, &err), KG_ERR_IO);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: cannot open: %s", missing, strerror(ENOENT));
    CHECK_EQ_STR(err.msg, want);

    CHECK_EQ_INT(kg_config_load_file(&cfg, g_tmpdir, &err), KG_ERR_IO);
    snprintf(want, sizeof(want), "%s: cannot open: %s", g_tmpdir, strerror(EISDIR));
    CHECK_EQ_STR(err.msg, want);

    /* Unreadable by permissions: meaningless as root, who reads anything. */
    if (geteuid() != 0) {
        const char *p = write_tmp("secret.yaml", "flow: {}\n");
        chmod(p, 0);
        CHECK_EQ_INT(kg_config_load_file(&cfg, p, &err), KG_ERR_IO);
        snprintf(want, sizeof(want), "%s: cannot open: %s", p, strerror(EACCES));
        CHECK_EQ_STR(err.msg, want);
    }
    CHECK(is_default(&cfg));
    kg_config_free(&cfg);
}

static void test_set(void)
{
    struct kg_config cfg;
    struct kg_err err = {{0}};
    kg_config_init(&cfg);

    /* string */
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.id", "probe 7", &err), 0);
    CHECK_EQ_STR(cfg.sensor_id, "probe 7");
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.id", "bad\xc3(", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.id: value is not valid UTF-8");
    CHECK_EQ_STR(cfg.sensor_id, "probe 7");
    /* enum */
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.log_level", "Debug", &err), 0);
    CHECK_EQ_STR(cfg.log_level, "debug");
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.log_level", "trace", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.log_level: expected one of error, warning, info, debug, got 'trace'");
    CHECK_EQ_STR(cfg.log_level, "debug");
    /* uint32 */
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.workers", "8", &err), 0);
    CHECK_EQ_INT(cfg.workers, 8);
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.workers", "257", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.workers: expected an integer from 0 to 256, got '257'");
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.workers", " 8", &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.workers", "", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.workers: expected an integer from 0 to 256, got ''");
    CHECK_EQ_INT(cfg.workers, 8);
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.ring_size", "4", &err), 0);
    CHECK_EQ_INT(cfg.ring_size, 4);
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.ring_size", "65536", &err), 0);
    CHECK_EQ_INT(cfg.ring_size, 65536);
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.ring_size", "131072", &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.ring_size", "768", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "pipeline.ring_size: expected a power of two from 4 to 65536, got '768'");
    CHECK_EQ_INT(cfg.ring_size, 65536);
    /* bool */
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.vlan_in_key", "off", &err), 0);
    CHECK(!cfg.flow_vlan_in_key);
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.vlan_in_key", "Yes", &err), 0);
    CHECK(cfg.flow_vlan_in_key);
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.vlan_in_key", "y", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "flow.vlan_in_key: expected true or false (or yes/no, on/off), got 'y'");
    CHECK(cfg.flow_vlan_in_key);
    /* strings that may be empty: "" clears, for the command line's -f '' */
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.bpf", "vlan and tcp port 80", &err), 0);
    CHECK_EQ_STR(cfg.capture_bpf, "vlan and tcp port 80");
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.bpf", "", &err), 0);
    CHECK_EQ_STR(cfg.capture_bpf, "");
    CHECK_EQ_INT(kg_config_set(&cfg, "geoip.country_db", "/var/lib/GeoIP/GeoLite2-Country.mmdb", &err), 0);
    CHECK_EQ_STR(cfg.geoip_country_db, "/var/lib/GeoIP/GeoLite2-Country.mmdb");
    CHECK_EQ_INT(kg_config_set(&cfg, "geoip.country_db", "\xc3", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "geoip.country_db: value is not valid UTF-8");
    CHECK_EQ_STR(cfg.geoip_country_db, "/var/lib/GeoIP/GeoLite2-Country.mmdb");
    CHECK_EQ_INT(kg_config_set(&cfg, "geoip.country_db", "", &err), 0);
    CHECK_EQ_STR(cfg.geoip_country_db, "");
    CHECK_EQ_INT(kg_config_set(&cfg, "geoip.asn_db", "", &err), 0);
    CHECK_EQ_STR(cfg.geoip_asn_db, "");
    /* indicators.*: the tuning file may be empty (none), like the Redis feed,
     * whose URL is checked for a host and a key and never echoed back. */
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.tuning", "/etc/kagami/tuning.yaml", &err), 0);
    CHECK_EQ_STR(cfg.indicator_tuning, "/etc/kagami/tuning.yaml");
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.tuning", "", &err), 0);
    CHECK_EQ_STR(cfg.indicator_tuning, "");
    static const char *const good_urls[] = {"redis://127.0.0.1:6379/kagami:feed", "redis://h/k",
                                            "REDIS://:p@ss@h:1/k", "redis://[::1]:6379/feed",
                                            "redis://user:pw@host/a/b"};
    for (size_t i = 0; i < KG_ARRAY_LEN(good_urls); i++) {
        CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis", good_urls[i], &err), 0);
        CHECK_EQ_STR(cfg.indicator_redis, good_urls[i]);
    }
    static const struct {
        const char *url, *why;
    } bad_urls[] = {
        {"http://pw@h/k", "the URL must start with redis://"},
        {"127.0.0.1:6379/k", "the URL must start with redis://"},
        {"redis://", "no host"},
        {"redis:///k", "no host"},
        {"redis://:pw@/k", "no host"},
        {"redis://:pw@:6379/k", "no host"},
        {"redis://[]:6379/k", "no host"},
        {"redis://[::1:6379/k", "no ']' after the IPv6 address"},
        {"redis://[::1]6379/k", "text after the IPv6 address"},
        {"redis://:pw@h", "no key after the host (redis://host:port/key)"},
        {"redis://:pw@h:6379/", "no key after the host (redis://host:port/key)"},
        {"redis://:pw@h:0/k", "the port must be a number from 1 to 65535"},
        {"redis://:pw@h:65536/k", "the port must be a number from 1 to 65535"},
        {"redis://:pw@h:/k", "the port must be a number from 1 to 65535"},
        {"redis://:pw@h:63x/k", "the port must be a number from 1 to 65535"},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(bad_urls); i++) {
        char want[200];
        snprintf(want, sizeof(want), "indicators.redis: expected redis://[:password@]host:port/key: %s",
                 bad_urls[i].why);
        CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis", bad_urls[i].url, &err), KG_ERR_INVAL);
        CHECK_EQ_STR(err.msg, want);
        CHECK_EQ_STR(cfg.indicator_redis, good_urls[KG_ARRAY_LEN(good_urls) - 1]); /* unchanged */
    }
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis", "", &err), 0);
    CHECK_EQ_STR(cfg.indicator_redis, "");
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis_poll", "1", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis_poll", "3600", &err), 0);
    CHECK_EQ_INT(cfg.indicator_redis_poll, 3600);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis_poll", "3601", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.redis_poll: expected an integer from 1 to 3600, got '3601'");
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.redis_poll", "0", &err), KG_ERR_INVAL);
    CHECK_EQ_INT(cfg.indicator_redis_poll, 3600);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.watch", "off", &err), 0);
    CHECK(!cfg.indicator_watch);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.require_signature", "yes", &err), 0);
    CHECK(cfg.indicator_require_signature);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.trusted_keys", "/k/a.pub", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.trusted_keys", "/k/b.pub", &err), 0);
    CHECK_EQ_INT(cfg.indicator_trusted_keys.count, 2);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.trusted_keys", "", &err), 0);
    CHECK_EQ_INT(cfg.indicator_trusted_keys.count, 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.require_signature", "no", &err), 0);
    /* the other new keys, at and past their edges */
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.threads", "64", &err), 0);
    CHECK_EQ_INT(cfg.capture_threads, 64);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.threads", "65", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "capture.threads: expected an integer from 1 to 64, got '65'");
    CHECK_EQ_INT(cfg.capture_threads, 64);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.snaplen", "262144", &err), 0);
    CHECK_EQ_INT(cfg.capture_snaplen, 262144);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.buffer_mb", "4097", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "capture.buffer_mb: expected an integer from 1 to 4096, got '4097'");
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.promisc", "no", &err), 0);
    CHECK(!cfg.capture_promisc);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.dedup_ms", "1000", &err), 0);
    CHECK_EQ_INT(cfg.capture_dedup_ms, 1000);
    CHECK_EQ_INT(kg_config_set(&cfg, "defrag.max_mb", "0", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "defrag.max_mb: expected an integer from 1 to 4096, got '0'");
    CHECK_EQ_INT(kg_config_set(&cfg, "defrag.timeout", "300", &err), 0);
    CHECK_EQ_INT(cfg.defrag_timeout, 300);
    CHECK_EQ_INT(kg_config_set(&cfg, "stats.interval", "86401", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "stats.interval: expected an integer from 0 to 86400, got '86401'");
    CHECK_EQ_INT(kg_config_set(&cfg, "stats.interval", "10", &err), 0);
    CHECK_EQ_INT(cfg.stats_interval, 10);
    CHECK_EQ_INT(kg_config_set(&cfg, "events.quic", "on", &err), 0);
    CHECK(cfg.events_quic);
    CHECK_EQ_INT(kg_config_set(&cfg, "events.quic", "", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "events.quic: expected true or false (or yes/no, on/off), got ''");
    CHECK(cfg.events_quic);
    /* -i twice, then -i '' to drop what the file listed */
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.interfaces", "eth1", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.interfaces", "eth2", &err), 0);
    CHECK_EQ_INT(cfg.capture_ifaces.count, 2);
    if (cfg.capture_ifaces.count == 2) CHECK_EQ_STR(cfg.capture_ifaces.items[1], "eth2");
    CHECK_EQ_INT(kg_config_set(&cfg, "capture.interfaces", "", &err), 0);
    CHECK_EQ_INT(cfg.capture_ifaces.count, 0);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    /* list: appends; empty clears */
    CHECK_EQ_INT(kg_config_set(&cfg, "outputs", "stdout", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "outputs", "redis://:pw@10.0.0.1:6379/alerts", &err), 0);
    CHECK_EQ_INT(cfg.outputs.count, 2);
    if (cfg.outputs.count == 2) CHECK_EQ_STR(cfg.outputs.items[1], "redis://:pw@10.0.0.1:6379/alerts");
    CHECK_EQ_INT(kg_config_set(&cfg, "outputs", "\xff", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "outputs: value is not valid UTF-8");
    CHECK_EQ_INT(cfg.outputs.count, 2);
    CHECK_EQ_INT(kg_config_set(&cfg, "outputs", "", &err), 0);
    CHECK_EQ_INT(cfg.outputs.count, 0);
    /* unknown keys; sections are not keys */
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.max_flow", "1", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'flow.max_flow' (did you mean 'flow.max_flows'?)");
    /* A section named where a key belongs (`--set flow=...`): the hint lists the
     * section's keys, and "events.flow", which the operator may equally have meant. */
    CHECK_EQ_INT(kg_config_set(&cfg, "flow", "1", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'flow' ('flow' is a section: did you mean 'flow.max_flows', "
                          "'flow.tcp_timeout', 'flow.udp_timeout', 'flow.other_timeout', 'flow.vlan_in_key' "
                          "or 'events.flow'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "events", "yes", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'events' ('events' is a section: did you mean 'events.dns', "
                          "'events.tls', 'events.http', 'events.quic' or 'events.flow'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "capture", "eth0", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'capture' ('capture' is a section: did you mean 'capture.interfaces', "
                          "'capture.threads', 'capture.snaplen', 'capture.promisc', 'capture.buffer_mb', "
                          "'capture.bpf' or 'capture.dedup_ms'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "stats", "10", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'stats' ('stats' is a section: did you mean 'stats.interval' or 'stats.outputs'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "flows", "1", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'flows' (did you mean 'flow'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "asn_db", "/a.mmdb", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'asn_db' (did you mean 'geoip.asn_db'?)");
    CHECK_EQ_INT(kg_config_set(&cfg, "nonsense", "1", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "unknown key 'nonsense'");
    CHECK_EQ_INT(kg_config_set(&cfg, NULL, "1", &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.max_flows", NULL, &err), KG_ERR_INVAL);

    /* key=value */
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "flow.tcp_timeout=30", &err), 0);
    CHECK_EQ_INT(cfg.flow_tcp_timeout, 30);
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "input.files=/tmp/a=b.pcap", &err), 0); /* first '=' splits */
    CHECK_EQ_INT(cfg.read_files.count, 1);
    if (cfg.read_files.count == 1) CHECK_EQ_STR(cfg.read_files.items[0], "/tmp/a=b.pcap");
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "input.files=", &err), 0);
    CHECK_EQ_INT(cfg.read_files.count, 0);
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "flow.tcp_timeout", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "expected key=value, got 'flow.tcp_timeout'");
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "=5", &err), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_config_set_pair(&cfg, "flow.udp_timeout=0", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "flow.udp_timeout: expected an integer from 1 to 86400, got '0'");

    /* Error messages never carry control bytes or unbounded input. */
    char long_value[300];
    memset(long_value, '7', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    CHECK_EQ_INT(kg_config_set(&cfg, "flow.max_flows", long_value, &err), KG_ERR_INVAL);
    CHECK(strlen(err.msg) < 200);
    CHECK(strstr(err.msg, "...'") != NULL);
    CHECK_EQ_INT(kg_config_set(&cfg, "sensor.log_level", "\x1b[31mred", &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.log_level: expected one of error, warning, info, debug, got '?[31mred'");
    kg_config_free(&cfg);
}

static void test_validate(void)
{
    struct kg_config cfg;
    struct kg_err err = {{0}};
    kg_config_init(&cfg);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);

    /* Cross-field: a queue smaller than one batch. */
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.batch_packets", "128", &err), 0);
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.alert_queue", "64", &err), 0);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "pipeline.alert_queue (64) must be at least pipeline.batch_packets (128)");
    CHECK_EQ_INT(kg_config_set(&cfg, "pipeline.alert_queue", "128", &err), 0);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);

    /* Fields written directly, bypassing kg_config_set, are checked too. */
    cfg.ring_size = 100;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "pipeline.ring_size: expected a power of two from 4 to 65536, got '100'");
    cfg.ring_size = 256;
    cfg.flow_max = 10;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "flow.max_flows: expected an integer from 1024 to 100000000, got '10'");
    cfg.flow_max = 65536;
    free(cfg.log_level);
    cfg.log_level = kg_xstrdup("loud");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.log_level: expected one of error, warning, info, debug, got 'loud'");
    free(cfg.log_level);
    cfg.log_level = kg_xstrdup("error");
    free(cfg.sensor_id);
    cfg.sensor_id = kg_xstrdup("");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.id: must not be empty");
    free(cfg.sensor_id);
    cfg.sensor_id = NULL;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "sensor.id: not set");
    cfg.sensor_id = kg_xstrdup("ok");
    /* Empty is fine for the filter and the databases; NULL and bad UTF-8 are not. */
    CHECK_EQ_STR(cfg.capture_bpf, "");
    CHECK_EQ_STR(cfg.geoip_country_db, "");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    free(cfg.capture_bpf);
    cfg.capture_bpf = NULL;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "capture.bpf: not set");
    cfg.capture_bpf = kg_xstrdup("");
    free(cfg.geoip_asn_db);
    cfg.geoip_asn_db = kg_xstrdup("asn\xff.mmdb");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "geoip.asn_db: value is not valid UTF-8");
    free(cfg.geoip_asn_db);
    cfg.geoip_asn_db = kg_xstrdup("");
    cfg.capture_threads = 0;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "capture.threads: expected an integer from 1 to 64, got '0'");
    cfg.capture_threads = 2;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    kg_config_set(&cfg, "indicators.files", "a.intel", &err);
    kg_config_set(&cfg, "indicators.files", "b.intel", &err);
    cfg.indicator_files.items[1][0] = '\0';
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.files: item 2: expected a non-empty UTF-8 string");
    kg_config_set(&cfg, "indicators.files", "", &err);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);

    /* Cross-field: requiring signatures with no key to check them would refuse every feed. */
    cfg.indicator_require_signature = true;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.require_signature is true but indicators.trusted_keys is empty");
    CHECK_EQ_INT(kg_config_set(&cfg, "indicators.trusted_keys", "/etc/kagami/keys/feed.pub", &err), 0);
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    /* The Redis URL rule holds for fields written directly too. */
    free(cfg.indicator_redis);
    cfg.indicator_redis = kg_xstrdup("localhost:6379");
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.redis: expected redis://[:password@]host:port/key: the URL must start with "
                          "redis://");
    free(cfg.indicator_redis);
    cfg.indicator_redis = NULL;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.redis: not set");
    cfg.indicator_redis = kg_xstrdup("");
    cfg.indicator_redis_poll = 0;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), KG_ERR_INVAL);
    CHECK_EQ_STR(err.msg, "indicators.redis_poll: expected an integer from 1 to 3600, got '0'");
    cfg.indicator_redis_poll = 30;
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    kg_config_free(&cfg);
}

static void test_dump_round_trip(void)
{
    struct kg_config cfg;
    struct kg_err err = {{0}};
    kg_config_init(&cfg);
    CHECK(round_trips(&cfg)); /* defaults */

    /* Every field off its default, strings that YAML would otherwise misread. */
    static const char *const tricky[] = {
        "null",
        "~",
        "true",
        "no",
        "123",
        "0x10",
        "-",
        "- item",
        "#hash",
        "a # b",
        "key: value",
        "[x]",
        "{y}",
        "'single'",
        "\"double\"",
        "back\\slash",
        "  padded  ",
        "line1\nline2",
        "tab\there",
        "cr\rlf",
        "bell\x07",
        "del\x7f",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac",
        "nel\xc2\x85",
        "c1\xc2\x80\xc2\x9f",
        "ls\xe2\x80\xa8ps\xe2\x80\xa9",
        "bom\xef\xbb\xbf",
        "nonchar\xef\xbf\xbe\xef\xbf\xbf",
        "emoji\xf0\x9f\x90\x9f",
        "%percent",
        "@at",
        "`tick",
        "!bang",
        "&amp",
        "*star",
        "|pipe",
        ">gt",
        "---",
        "...",
        ":",
    };
    kg_config_set(&cfg, "sensor.id", "edge \"7\"\n\\", &err);
    kg_config_set(&cfg, "sensor.log_level", "error", &err);
    kg_config_set(&cfg, "sensor.workers", "256", &err);
    for (size_t i = 0; i < KG_ARRAY_LEN(tricky); i++) {
        CHECK_EQ_INT(kg_config_set(&cfg, "indicators.trusted_keys", tricky[i], &err), 0);
        CHECK_EQ_INT(kg_config_set(&cfg, "input.files", tricky[i], &err), 0);
        CHECK_EQ_INT(kg_config_set(&cfg, "outputs", tricky[KG_ARRAY_LEN(tricky) - 1 - i], &err), 0);
    }
    kg_config_set(&cfg, "indicators.files", "/etc/kagami/indicators/*.intel", &err);
    kg_config_set(&cfg, "indicators.tuning", "/etc/kagami/tuning #1.yaml", &err);
    kg_config_set(&cfg, "indicators.require_signature", "true", &err);
    kg_config_set(&cfg, "indicators.redis", "redis://:p\"w: #x@h:1/k:feed", &err);
    kg_config_set(&cfg, "indicators.redis_poll", "3600", &err);
    kg_config_set(&cfg, "indicators.watch", "false", &err);
    kg_config_set(&cfg, "flow.max_flows", "100000000", &err);
    kg_config_set(&cfg, "flow.tcp_timeout", "1", &err);
    kg_config_set(&cfg, "flow.udp_timeout", "86400", &err);
    kg_config_set(&cfg, "flow.other_timeout", "7", &err);
    kg_config_set(&cfg, "flow.vlan_in_key", "false", &err);
    kg_config_set(&cfg, "pipeline.ring_size", "65536", &err);
    kg_config_set(&cfg, "pipeline.batch_packets", "1024", &err);
    kg_config_set(&cfg, "pipeline.alert_queue", "1048576", &err);
    kg_config_set(&cfg, "capture.interfaces", "eth0", &err);
    kg_config_set(&cfg, "capture.interfaces", "bond0.100", &err);
    kg_config_set(&cfg, "capture.threads", "64", &err);
    kg_config_set(&cfg, "capture.snaplen", "64", &err);
    kg_config_set(&cfg, "capture.promisc", "off", &err);
    kg_config_set(&cfg, "capture.buffer_mb", "4096", &err);
    kg_config_set(&cfg, "capture.dedup_ms", "1000", &err);
    kg_config_set(&cfg, "defrag.max_mb", "1", &err);
    kg_config_set(&cfg, "defrag.timeout", "300", &err);
    kg_config_set(&cfg, "stats.interval", "86400", &err);
    kg_config_set(&cfg, "events.dns", "true", &err);
    kg_config_set(&cfg, "events.flow", "true", &err);
    CHECK(round_trips(&cfg));
    for (size_t i = 0; i < KG_ARRAY_LEN(tricky); i++) {
        CHECK_EQ_INT(kg_config_set(&cfg, "sensor.id", tricky[i], &err), 0);
        CHECK_EQ_INT(kg_config_set(&cfg, "capture.bpf", tricky[i], &err), 0);
        CHECK_EQ_INT(kg_config_set(&cfg, "geoip.asn_db", tricky[KG_ARRAY_LEN(tricky) - 1 - i], &err), 0);
        CHECK_EQ_INT(kg_config_set(&cfg, "indicators.tuning", tricky[i], &err), 0);
        CHECK(round_trips(&cfg));
    }

    /* An empty filter or database is written as "" and reads back empty (over
     * full.yaml's non-empty values: see round_trips), not as the key left out. */
    kg_config_set(&cfg, "capture.bpf", "", &err);
    kg_config_set(&cfg, "geoip.country_db", "", &err);
    kg_config_set(&cfg, "geoip.asn_db", "", &err);
    kg_config_set(&cfg, "indicators.tuning", "", &err);
    kg_config_set(&cfg, "indicators.redis", "", &err);
    CHECK(round_trips(&cfg));
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    kg_config_dump(&cfg, mem);
    fclose(mem);
    CHECK(strstr(text, "\n  bpf: \"\"\n") != NULL);
    CHECK(strstr(text, "\ngeoip:\n  country_db: \"\"\n  asn_db: \"\"\n") != NULL);
    free(text);

    /* Random strings of valid UTF-8 code points from every range. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        char s[128];
        size_t n = 0;
        while (n + 4 < sizeof(s) - 1) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t cp;
            switch (x % 4) {
            case 0:
                cp = 1 + (uint32_t)(x >> 8) % 0x7f;
                break;
            case 1:
                cp = 0x80 + (uint32_t)(x >> 8) % 0x780;
                break;
            case 2:
                cp = 0x800 + (uint32_t)(x >> 8) % 0xf800;
                break;
            default:
                cp = 0x10000 + (uint32_t)(x >> 8) % 0x100000;
                break;
            }
            if (cp >= 0xd800 && cp <= 0xdfff) continue;
            if (cp < 0x80) {
                s[n++] = (char)cp;
            } else if (cp < 0x800) {
                s[n++] = (char)(0xc0 | (cp >> 6));
                s[n++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                s[n++] = (char)(0xe0 | (cp >> 12));
                s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                s[n++] = (char)(0x80 | (cp & 0x3f));
            } else {
                s[n++] = (char)(0xf0 | (cp >> 18));
                s[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                s[n++] = (char)(0x80 | (cp & 0x3f));
            }
            if (x % 16 == 0) break;
        }
        s[n] = '\0';
        if (kg_config_set(&cfg, "sensor.id", s, &err) != 0) {
            fprintf(stderr, "  random string rejected: %s\n", err.msg);
            CHECK(0);
            continue;
        }
        bool ok = round_trips(&cfg);
        CHECK(ok);
        if (!ok) break;
    }
    kg_config_free(&cfg);
}

/* The shipped example loads, equals the built-in defaults (so its comments
 * cannot lie about them), and mentions every key, set or commented out. */
static void test_shipped_config(void)
{
    const char *path = src_path("config/kagami.yaml");
    struct kg_config cfg;
    kg_config_init(&cfg);
    struct kg_err err = {{0}};
    int rc = kg_config_load_file(&cfg, path, &err);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK(is_default(&cfg));
    CHECK_EQ_INT(kg_config_validate(&cfg, &err), 0);
    kg_config_free(&cfg);

    /* Collect "section.key" for every "key:" line, commented or not. */
    char *text = read_all(path, NULL);
    CHECK(text != NULL);
    if (!text) return;
    struct kg_buf seen;
    kg_buf_init(&seen);
    kg_buf_append_char(&seen, '\n');
    char section[64] = "";
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t len = strcspn(line, "\n");
        const char *p = line, *end = line + len;
        bool top = (*p >= 'a' && *p <= 'z');
        if (!top && *p != ' ') continue;
        while (p < end && *p == ' ')
            p++;
        if (!top && p < end && *p == '#') {
            p++;
            while (p < end && *p == ' ')
                p++;
        }
        size_t n = 0;
        while (p + n < end && ((p[n] >= 'a' && p[n] <= 'z') || p[n] == '_'))
            n++;
        if (n == 0 || n >= sizeof(section) || p + n >= end || p[n] != ':') continue;
        if (top) {
            memcpy(section, p, n);
            section[n] = '\0';
            kg_buf_printf(&seen, "%s\n", section);
        } else if (section[0]) {
            kg_buf_printf(&seen, "%s.%.*s\n", section, (int)n, p);
        }
    }
    for (size_t i = 0; kg_config_key_name(i); i++) {
        char needle[160];
        snprintf(needle, sizeof(needle), "\n%s\n", kg_config_key_name(i));
        bool found = strstr(seen.data, needle) != NULL;
        if (!found) fprintf(stderr, "  config/kagami.yaml does not mention %s\n", kg_config_key_name(i));
        CHECK(found);
    }
    kg_buf_free(&seen);
    free(text);
}

/* docs/CONFIG.md carries the reference table exactly as the code prints it. */
static void test_docs_reference(void)
{
    char *table = NULL;
    size_t table_len = 0;
    FILE *mem = open_memstream(&table, &table_len);
    kg_config_write_reference(mem);
    fclose(mem);
    CHECK(table_len > 0);
    /* One row per key, plus the header and the separator. */
    size_t rows = 0, keys = 0;
    for (const char *p = table; *p; p++)
        rows += *p == '\n';
    while (kg_config_key_name(keys))
        keys++;
    CHECK_EQ_INT(rows, keys + 2);

    const char *path = src_path("docs/CONFIG.md");
    char *doc = read_all(path, NULL);
    if (!doc) fprintf(stderr, "  cannot read %s\n", path);
    bool found = doc && strstr(doc, table) != NULL;
    if (!found)
        fprintf(stderr,
                "  %s does not contain the key reference verbatim; regenerate it with "
                "`test_config --reference`. It should be:\n%s\n",
                path, table);
    CHECK(found);
    free(doc);
    free(table);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* One fuzz input: either it loads, and then validates or not without harm and
 * survives a dump round trip; or it fails with "path..." and changes nothing. */
static int fuzz_inputs, fuzz_loaded;
static bool fuzz_one(const void *data, size_t len)
{
    fuzz_inputs++;
    const char *path = write_tmp_bytes("fuzz.yaml", data, len);
    struct kg_config cfg;
    kg_config_init(&cfg);
    struct kg_err err = {{0}};
    int rc = kg_config_load_file(&cfg, path, &err);
    bool ok = true;
    if (rc == 0) {
        fuzz_loaded++;
        (void)kg_config_validate(&cfg, &err);
        ok = round_trips(&cfg);
    } else {
        ok = strncmp(err.msg, path, strlen(path)) == 0 && is_default(&cfg) &&
             (rc == KG_ERR_PARSE || rc == KG_ERR_INVAL);
        if (!ok) fprintf(stderr, "  fuzz: rc %d, message \"%s\"\n", rc, err.msg);
    }
    kg_config_free(&cfg);
    return ok;
}

static void test_random_input(void)
{
    int bad = 0;
    /* Pure noise. */
    for (int i = 0; i < 300; i++) {
        unsigned char buf[512];
        size_t len = (size_t)(rng() % sizeof(buf));
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)rng();
        bad += !fuzz_one(buf, len);
    }
    /* Token soup: valid YAML pieces and real key names in random order reach
     * much deeper than noise does. */
    static const char *const pieces[] = {
        "sensor",  "flow",    "pipeline",   "input",       "indicators",  "outputs",   "files",
        "capture", "bpf",     "interfaces", "geoip",       "asn_db",      "events",    "defrag",
        "id",      "workers", "max_flows",  "tcp_timeout", "vlan_in_key", "ring_size", "log_level",
        ":",       ": ",      " ",          "  ",          "\n",          "\n  ",      "\n    ",
        "- ",      "[",       "]",          "{",           "}",           ", ",        "'",
        "\"",      "1024",    "65536",      "0",           "yes",         "debug",     "~",
        "&a ",     "*a",      "!!str ",     "? ",          "---\n",       "...\n",     "#",
        ".",       "|\n",     ">\n",        "\t",          "%YAML 1.1\n", "\\",        "\xc3\xa9",
        "\xff",
    };
    for (int i = 0; i < 1500; i++) {
        struct kg_buf b;
        kg_buf_init(&b);
        int n = 1 + (int)(rng() % 40);
        for (int j = 0; j < n; j++)
            kg_buf_append_str(&b, pieces[rng() % KG_ARRAY_LEN(pieces)]);
        bad += !fuzz_one(b.data, b.len);
        kg_buf_free(&b);
    }
    /* Mutations of a valid file. */
    size_t base_len = 0;
    char *base = read_all(fixture("full.yaml"), &base_len);
    CHECK(base != NULL && base_len > 0);
    static const char interesting[] = ":-[]{}\"'\n #&*!|>\t\\,?\0\xff";
    for (int i = 0; base && base_len && i < 1500; i++) {
        char *m = kg_xmalloc(base_len + 8);
        memcpy(m, base, base_len);
        size_t len = base_len;
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(rng() % len);
            char c = (rng() & 1) ? interesting[rng() % (sizeof(interesting) - 1)] : (char)rng();
            if (rng() % 3 == 0 && len < base_len + 8) { /* insert */
                memmove(m + at + 1, m + at, len - at);
                len++;
            }
            m[at] = c;
        }
        bad += !fuzz_one(m, len);
        free(m);
    }
    free(base);
    printf("     %d random inputs, %d of them loaded\n", fuzz_inputs, fuzz_loaded);
    CHECK_EQ_INT(bad, 0);
}

/* --- main ------------------------------------------------------------------- */

static void remove_tmpdir(void)
{
    static const char *const names[] = {"case.yaml", "dump.yaml", "fuzz.yaml", "a.yaml", "b.yaml",
                                        "c.yaml",    "e.yaml",    "i.yaml",    "n.yaml", "secret.yaml"};
    for (size_t i = 0; i < KG_ARRAY_LEN(names); i++)
        unlink(tmp_path(names[i]));
    rmdir(g_tmpdir);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--reference") == 0) {
        kg_config_write_reference(stdout);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof(g_tmpdir), "%s/kg_test_config.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_tmpdir)) {
        perror("mkdtemp");
        return 2;
    }

    KG_TEST_RUN(test_defaults);
    KG_TEST_RUN(test_key_names);
    KG_TEST_RUN(test_full_file);
    KG_TEST_RUN(test_value_forms);
    KG_TEST_RUN(test_list_precedence);
    KG_TEST_RUN(test_error_fixtures);
    KG_TEST_RUN(test_errors);
    KG_TEST_RUN(test_unreadable);
    KG_TEST_RUN(test_set);
    KG_TEST_RUN(test_validate);
    KG_TEST_RUN(test_dump_round_trip);
    KG_TEST_RUN(test_shipped_config);
    KG_TEST_RUN(test_docs_reference);
    KG_TEST_RUN(test_random_input);

    remove_tmpdir();
    KG_TEST_MAIN_END();
}
