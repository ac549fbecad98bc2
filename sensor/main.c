/*
 * sensor/main.c — kagami's entry point: command line, configuration,
 * indicator loading, sinks, signals, and the end-of-run summary.
 *
 * Start here: main() builds a struct kg_config (defaults < YAML file <
 * command line), loads the indicator feeds into an immutable set, opens the
 * sinks and hands everything to kg_pipeline_run() (sensor/pipeline.c),
 * which owns the threads.
 *
 * Exit status: 0 success; 1 bad usage, configuration or input; 2 a run
 * that could not deliver every alert.
 */
#include "sensor/sensor.h"
#include "sensor/resolved.h"

#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Set by the signal handler, read by the pipeline's threads: lock-free
 * atomics are async-signal-safe and make the cross-thread reads defined. */
static _Atomic int g_stop, g_reload;

static void on_signal(int sig)
{
    if (sig == SIGHUP) {
        atomic_store(&g_reload, 1); /* indicator feeds */
        kg_sinks_request_reopen();  /* file sinks, after logrotate */
    } else {
        atomic_store(&g_stop, 1);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kagami [options]\n"
            "Network-traffic sensor: dissects traffic, flags matches against threat indicators,\n"
            "and writes EVE-style JSON alerts.\n"
            "\n"
            "Input:\n"
            "  -r, --read FILE          read a pcap or pcapng capture (repeatable)\n"
            "  -i, --interface IFACE    capture live from a network interface (repeatable)\n"
            "      --capture-threads N  capture+worker threads per interface, in an AF_PACKET\n"
            "                           fanout group (default 1)\n"
            "  -f, --filter BPF         BPF filter for live capture\n"
            "Indicators:\n"
            "      --indicators PATH    Zeek Intel feed file (repeatable)\n"
            "Output:\n"
            "  -o, --output SINK        stdout | file:PATH | redis://[:password@]host:port/key\n"
            "                           (repeatable; default stdout)\n"
            "Pipeline:\n"
            "      --workers N          worker threads (default: cores - 1, at least 1)\n"
            "Configuration:\n"
            "  -c, --config FILE        YAML configuration (command-line options override it)\n"
            "      --set KEY=VALUE      set any configuration key (see docs/CONFIG.md)\n"
            "      --check-config       load configuration, indicators and sinks, report, exit\n"
            "      --check-indicators   load the indicator feeds, print counts per type and per\n"
            "                           source and any errors, exit (0 when every line loaded)\n"
            "      --dump-config        print the effective configuration as YAML and exit\n"
            "      --log-level LEVEL    error | warning | info | debug\n"
            "  -q, --quiet              only warnings and errors on stderr\n"
            "  -V, --version            print the version and exit\n"
            "  -h, --help               this help\n");
}

enum {
    OPT_INDICATORS = 256,
    OPT_WORKERS,
    OPT_SET,
    OPT_CHECK,
    OPT_DUMP,
    OPT_LOGLEVEL,
    OPT_CAPTHREADS,
    OPT_CHECK_IND,
};

static const struct option long_opts[] = {
    {"read", required_argument, NULL, 'r'},
    {"interface", required_argument, NULL, 'i'},
    {"filter", required_argument, NULL, 'f'},
    {"capture-threads", required_argument, NULL, OPT_CAPTHREADS},
    {"indicators", required_argument, NULL, OPT_INDICATORS},
    {"output", required_argument, NULL, 'o'},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"config", required_argument, NULL, 'c'},
    {"set", required_argument, NULL, OPT_SET},
    {"check-config", no_argument, NULL, OPT_CHECK},
    {"check-indicators", no_argument, NULL, OPT_CHECK_IND},
    {"dump-config", no_argument, NULL, OPT_DUMP},
    {"log-level", required_argument, NULL, OPT_LOGLEVEL},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int set_or_die(struct kg_config *cfg, const char *key, const char *value)
{
    struct kg_err err = {{0}};
    if (kg_config_set(cfg, key, value, &err) < 0) {
        fprintf(stderr, "kagami: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void print_source_count(void *user, const char *source, enum kg_ind_type type, size_t count)
{
    (void)user;
    printf("source %-24s %-10s %zu\n", source[0] ? source : "(none)", kg_ind_type_name(type), count);
}

static enum kg_log_level level_of(const char *s)
{
    if (!strcmp(s, "error")) return KG_LOG_ERROR;
    if (!strcmp(s, "warning")) return KG_LOG_WARN;
    if (!strcmp(s, "debug")) return KG_LOG_DEBUG;
    return KG_LOG_INFO;
}

static void print_summary(const struct kg_pipeline_stats *st, struct kg_sink **sinks, size_t nsinks,
                          double secs)
{
    const struct kg_dissect_stats *d = &st->dissect;
    kg_log(KG_LOG_INFO, "sensor",
           "read %" PRIu64 " packets, %" PRIu64 " bytes in %.3f s; %" PRIu64 " alerts", st->packets_read,
           st->bytes_read, secs, st->alerts);
    kg_log(KG_LOG_INFO, "dissect",
           "flows created %" PRIu64 ", timed out %" PRIu64 ", evicted %" PRIu64 "; not ip %" PRIu64
           ", truncated %" PRIu64 ", bad l3 %" PRIu64 ", bad link type %" PRIu64 ", fragments %" PRIu64
           ", tunnelled %" PRIu64 "; dns messages %" PRIu64 " (malformed %" PRIu64 "), http requests %" PRIu64,
           d->flows_created, d->flows_timed_out, d->flows_evicted, d->decode_not_ip, d->decode_truncated,
           d->decode_bad_l3, d->decode_bad_linktype, d->decode_fragments, d->decode_tunnels, d->dns_messages,
           d->dns_malformed, d->http_requests);
    kg_log(KG_LOG_INFO, "pipeline",
           "reader waited %" PRIu64 " times, workers waited for export %" PRIu64 " times, alerts dropped %" PRIu64
           ", suppressed by tuning %" PRIu64 ", over threshold %" PRIu64,
           st->batches_waited, st->alerts_waited, st->alerts_dropped, st->alerts_suppressed,
           st->alerts_thresholded);
    for (size_t i = 0; i < nsinks; i++) {
        struct kg_sink_stats ss;
        kg_sink_get_stats(sinks[i], &ss);
        kg_log(KG_LOG_INFO, "export",
               "%s: written %" PRIu64 ", delivered %" PRIu64 ", failed %" PRIu64 ", spooled %" PRIu64
               ", replayed %" PRIu64 ", reconnects %" PRIu64,
               kg_sink_name(sinks[i]), ss.written, ss.delivered, ss.failed, ss.spooled, ss.replayed, ss.reconnects);
    }
}

int main(int argc, char **argv)
{
    struct kg_config cfg;
    kg_config_init(&cfg);
    const char *config_path = NULL;
    bool check = false, dump = false, check_ind = false;
    int c;

    /* Pass 1: only -c, so the file is loaded before command-line overrides. */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "r:i:f:o:c:qVh", long_opts, NULL)) != -1)
        if (c == 'c') config_path = optarg;
    if (config_path) {
        struct kg_err err = {{0}};
        if (kg_config_load_file(&cfg, config_path, &err) < 0) {
            fprintf(stderr, "kagami: %s\n", err.msg);
            kg_config_free(&cfg);
            return 1;
        }
    }

    /* Pass 2: everything else, in order. */
    unsigned cli_read = 0, cli_iface = 0;
    optind = 0;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "r:i:f:o:c:qVh", long_opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'r':
            /* Reading files on the command line replaces the configured live
             * interfaces (replaying a capture with the production config). */
            if (!cli_read++ && !cli_iface) bad = set_or_die(&cfg, "capture.interfaces", "");
            if (!bad) bad = set_or_die(&cfg, "input.files", optarg);
            break;
        case 'i':
            if (!cli_iface++ && !cli_read) bad = set_or_die(&cfg, "input.files", "");
            if (!bad) bad = set_or_die(&cfg, "capture.interfaces", optarg);
            break;
        case 'f': bad = set_or_die(&cfg, "capture.bpf", optarg); break;
        case OPT_CAPTHREADS: bad = set_or_die(&cfg, "capture.threads", optarg); break;
        case 'o': bad = set_or_die(&cfg, "outputs", optarg); break;
        case OPT_INDICATORS: bad = set_or_die(&cfg, "indicators.files", optarg); break;
        case OPT_WORKERS: bad = set_or_die(&cfg, "sensor.workers", optarg); break;
        case OPT_LOGLEVEL: bad = set_or_die(&cfg, "sensor.log_level", optarg); break;
        case 'q': bad = set_or_die(&cfg, "sensor.log_level", "warning"); break;
        case OPT_SET: {
            struct kg_err serr = {{0}};
            if (kg_config_set_pair(&cfg, optarg, &serr) < 0) {
                fprintf(stderr, "kagami: --set %s: %s\n", optarg, serr.msg);
                bad = 1;
            }
            break;
        }
        case OPT_CHECK: check = true; break;
        case OPT_CHECK_IND: check_ind = true; break;
        case OPT_DUMP: dump = true; break;
        case 'c': break;
        case 'V':
            printf("kagami %s\n", KG_VERSION);
            kg_config_free(&cfg);
            return 0;
        case 'h':
            usage(stdout);
            kg_config_free(&cfg);
            return 0;
        default:
            usage(stderr);
            kg_config_free(&cfg);
            return 1;
        }
        if (bad) {
            kg_config_free(&cfg);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kagami: unexpected argument '%s' (captures are read with -r FILE)\n", argv[optind]);
        kg_config_free(&cfg);
        return 1;
    }
    struct kg_err err = {{0}};
    if (kg_config_validate(&cfg, &err) < 0) {
        fprintf(stderr, "kagami: %s\n", err.msg);
        kg_config_free(&cfg);
        return 1;
    }
    kg_log_set_level(level_of(cfg.log_level));
    kg_decode_set_max_depth(cfg.decoder_max_depth);
    if (dump) {
        kg_config_dump(&cfg, stdout);
        kg_config_free(&cfg);
        return 0;
    }

    int status = 0;
    struct kg_indicator_set *set = NULL;
    struct kg_tuning *tuning_final = NULL;
    char *redis_feed = NULL, *redis_version = NULL;
    size_t redis_feed_len = 0;
    struct kg_sink **sinks = NULL;
    size_t nsinks = 0;

    /* Indicators: each entry is a path or a glob pattern (e.g. every .intel file of a folder),
     * plus the Redis feed source when one is configured (fetched now, so that
     * a capture replay starts with it; unreachable is a warning, polled later). */
    uint64_t bad_lines = 0;
    if (cfg.indicator_redis && cfg.indicator_redis[0] &&
        kg_sensor_fetch_redis_feed(&cfg, NULL, &redis_feed, &redis_feed_len, &redis_version) < 0) {
        fprintf(stderr, "kagami: indicators.redis: expected redis://[:password@]host:port/key\n");
        status = 1;
        goto out;
    }
    set = kg_sensor_load_indicators_with(&cfg, "redis feed", redis_feed, redis_feed_len, &bad_lines, &err);
    if (!set) {
        fprintf(stderr, "kagami: %s\n", err.msg);
        status = 1;
        goto out;
    }
    if (bad_lines && (check || check_ind)) status = 1;
    struct kg_tuning *tuning = kg_sensor_load_tuning(&cfg, &err);
    if (!tuning && err.msg[0]) {
        fprintf(stderr, "kagami: %s\n", err.msg);
        status = 1;
        goto out;
    }
    tuning_final = tuning; /* freed at `out` unless handed to the pipeline */
    if (check_ind) {
        for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
            printf("type   %-10s %zu\n", kg_ind_type_name((enum kg_ind_type)t),
                   kg_indicator_set_count(set, (enum kg_ind_type)t));
        kg_indicator_set_count_by_source(set, print_source_count, NULL);
        printf("total  %zu indicators, %" PRIu64 " bad lines\n", kg_indicator_set_total(set), bad_lines);
        goto out;
    }
    if (kg_indicator_set_total(set) == 0)
        kg_log(KG_LOG_WARN, "indicators", "no indicators loaded: no alert will be raised");

    /* Sinks: the alert outputs (stdout when none), then stats.outputs. */
    const char *const stdout_only[] = {"stdout"};
    size_t nalert = cfg.outputs.count ? cfg.outputs.count : 1;
    size_t nspec = nalert + cfg.stats_outputs.count;
    sinks = kg_xcalloc(nspec, sizeof(*sinks));
    for (size_t i = 0; i < nspec; i++) {
        const char *spec = i >= nalert        ? cfg.stats_outputs.items[i - nalert]
                           : cfg.outputs.count ? cfg.outputs.items[i]
                                               : stdout_only[0];
        sinks[i] = kg_sink_new(spec, &err);
        if (!sinks[i]) {
            fprintf(stderr, "kagami: output '%s': %s\n", spec, err.msg);
            status = 1;
            goto out;
        }
        nsinks++;
    }

    if (check) {
        for (int t = 0; t < KG_IND_TYPE_COUNT; t++)
            printf("indicators %-10s %zu\n", kg_ind_type_name((enum kg_ind_type)t),
                   kg_indicator_set_count(set, (enum kg_ind_type)t));
        for (size_t i = 0; i < nsinks; i++) printf("output %s\n", kg_sink_name(sinks[i]));
        printf("configuration %s\n", status == 0 ? "OK" : "has errors (see above)");
        goto out;
    }
    if (cfg.read_files.count == 0 && cfg.capture_ifaces.count == 0) {
        fprintf(stderr, "kagami: nothing to read: give a capture with -r FILE or an interface with -i IFACE "
                        "(see --help)\n");
        status = 1;
        goto out;
    }
    if (cfg.read_files.count && cfg.capture_ifaces.count) {
        fprintf(stderr, "kagami: read files (-r / input.files) or capture live (-i / capture.interfaces), "
                        "not both in one run\n");
        status = 1;
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint32_t workers = cfg.workers;
    if (!workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 1 ? (uint32_t)(n - 1) : 1;
    }
    uint64_t boot_id = 0;
    if (getrandom(&boot_id, sizeof(boot_id), 0) != sizeof(boot_id)) boot_id = kg_realtime_us() ^ (uint64_t)getpid();

    struct kg_geoip *geoip = NULL;
    if ((cfg.geoip_country_db && cfg.geoip_country_db[0]) || (cfg.geoip_asn_db && cfg.geoip_asn_db[0]))
        geoip = kg_geoip_open(cfg.geoip_country_db, cfg.geoip_asn_db, NULL);
    struct kg_resolved *resolved = kg_resolved_new(65536);
    struct kg_ind_shared shared;
    atomic_init(&shared.cur, set);
    atomic_init(&shared.tuning, tuning);
    tuning_final = NULL; /* owned by `shared` now */
    struct kg_pipeline_params pp = {
        .cfg = &cfg,
        .indicators = &shared,
        .sinks = sinks,
        .nsinks = nsinks,
        .nalert_sinks = nalert,
        .workers = workers,
        .sensor_id = cfg.sensor_id,
        .boot_id = boot_id,
        .geoip = geoip,
        .resolved = resolved,
        .redis_feed = redis_feed,
        .redis_feed_len = redis_feed_len,
        .redis_feed_version = redis_version,
        .stop = &g_stop,
        .reload = &g_reload,
    };
    struct kg_pipeline_stats st;
    uint64_t t0 = kg_monotonic_ns();
    int rc = kg_pipeline_run(&pp, &st, &err);
    set = atomic_load(&shared.cur); /* a reload may have replaced it */
    tuning_final = atomic_load(&shared.tuning);
    kg_geoip_free(geoip);
    kg_resolved_free(resolved);
    if (st.started) print_summary(&st, sinks, nsinks, (double)(kg_monotonic_ns() - t0) / 1e9);
    if (rc < 0) {
        fprintf(stderr, "kagami: %s\n", err.msg);
        status = rc == KG_ERR_IO && st.packets_read == 0 && st.alerts == 0 ? 1 : 2;
    }

out:
    free(redis_feed);
    free(redis_version);
    kg_tuning_free(tuning_final);
    for (size_t i = 0; i < nsinks; i++) kg_sink_free(sinks[i]);
    free(sinks);
    kg_indicator_set_free(set);
    kg_config_free(&cfg);
    return status;
}
