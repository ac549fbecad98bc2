/*
 * bench/bench_redis.c — writes N events with unique event_ids through one
 * sink (any spec kg_sink_new() takes) and reports what the sink delivered.
 *
 * Two users: bench/bench_redis.sh measures events/s (plain and TLS, beside
 * redis-benchmark), and tests/scripts/redis_fault.py drives 100,000+ events
 * through a spooled Sentinel sink while it kills Redis masters.
 *
 *   bench_redis --spec SPEC [--count N] [--size BYTES] [--prefix P]
 *               [--batch N] [--rate EV_PER_S] [--restart-every N]
 *               [--drain-timeout S]
 *
 * Events look like alerts: {"timestamp":...,"event_id":"P-<i>",
 * "event_type":"alert",...,"pad":"..."} padded to about --size bytes, all
 * formatted before the clock starts. Every --batch events the sink is
 * flushed (as the export thread does every 1024); --rate paces the writes;
 * --restart-every frees the sink and makes a new one from the same spec
 * (a sensor restart: with a spool, what was not delivered must be found
 * and replayed by the new sink). After the last event the sink is flushed
 * until everything is delivered or --drain-timeout seconds passed.
 *
 * Output: one line of key=value pairs (written, delivered, replayed,
 * failed, reconnects, spooled, restarts, seconds, events_per_s). Exit 0
 * when nothing remains undelivered, 1 otherwise, 2 on usage errors.
 *
 * Threads: one. Owns the sink and the pre-formatted events.
 */
#include "export/export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct totals {
    uint64_t delivered, replayed, failed, reconnects;
};

static void msleep(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void add_stats(struct totals *t, const struct kg_sink *s)
{
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    t->delivered += st.delivered;
    t->replayed += st.replayed;
    t->failed += st.failed;
    t->reconnects += st.reconnects;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_redis --spec SPEC [--count N] [--size BYTES] [--prefix P] [--batch N]\n"
                    "                   [--rate EV_PER_S] [--restart-every N] [--drain-timeout S]\n");
}

int main(int argc, char **argv)
{
    const char *spec = NULL, *prefix = "ev";
    unsigned long count = 100000, size = 600, batch = 1000, rate = 0, restart_every = 0, drain_s = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long *num = NULL;
        if (strcmp(a, "--spec") == 0 && v)
            spec = v;
        else if (strcmp(a, "--prefix") == 0 && v)
            prefix = v;
        else if (strcmp(a, "--count") == 0)
            num = &count;
        else if (strcmp(a, "--size") == 0)
            num = &size;
        else if (strcmp(a, "--batch") == 0)
            num = &batch;
        else if (strcmp(a, "--rate") == 0)
            num = &rate;
        else if (strcmp(a, "--restart-every") == 0)
            num = &restart_every;
        else if (strcmp(a, "--drain-timeout") == 0)
            num = &drain_s;
        else {
            usage();
            return 2;
        }
        if (num) {
            char *end;
            if (!v || (*num = strtoul(v, &end, 10), *end != '\0')) {
                usage();
                return 2;
            }
        }
        i++;
    }
    if (!spec || count == 0 || batch == 0 || size > 1000000) {
        usage();
        return 2;
    }

    /* Pre-format every event: the clock then measures the sink alone. */
    struct kg_buf all;
    kg_buf_init(&all);
    size_t *off = kg_xmalloc((count + 1) * sizeof(*off));
    for (unsigned long i = 0; i < count; i++) {
        off[i] = all.len;
        const size_t start = all.len;
        kg_buf_printf(
            &all,
            "{\"timestamp\":\"2026-11-25T23:04:04.%06lu+0000\",\"event_id\":\"%s-%lu\",\"host\":\"bench\","
            "\"flow_id\":%lu,\"event_type\":\"alert\",\"src_ip\":\"192.0.2.10\",\"src_port\":49152,"
            "\"dest_ip\":\"198.51.100.7\",\"dest_port\":443,\"proto\":\"TCP\",\"app_proto\":\"tls\","
            "\"pad\":\"",
            i % 1000000, prefix, i, i);
        while (all.len - start + 2 < size)
            kg_buf_append_char(&all, (char)('a' + (all.len % 26)));
        kg_buf_append_str(&all, "\"}");
    }
    off[count] = all.len;

    struct kg_err err = {{0}};
    struct kg_sink *s = kg_sink_new(spec, &err);
    if (!s) {
        fprintf(stderr, "bench_redis: %s\n", err.msg);
        return 2;
    }
    struct totals tot = {0};
    unsigned long restarts = 0;
    const uint64_t t0 = kg_monotonic_ns();
    for (unsigned long i = 0; i < count; i++) {
        if (kg_sink_write(s, all.data + off[i], off[i + 1] - off[i]) != 0) {
            fprintf(stderr, "bench_redis: event %lu refused\n", i);
            return 1;
        }
        if ((i + 1) % batch == 0) (void)kg_sink_flush(s, &err);
        if (restart_every && (i + 1) % restart_every == 0 && i + 1 < count) {
            add_stats(&tot, s);
            kg_sink_free(s); /* with a spool, what is undelivered goes to disk */
            s = kg_sink_new(spec, &err);
            if (!s) {
                fprintf(stderr, "bench_redis: restart: %s\n", err.msg);
                return 1;
            }
            restarts++;
        }
        if (rate) {
            const uint64_t due = t0 + (uint64_t)((double)(i + 1) * 1e9 / (double)rate);
            const uint64_t now = kg_monotonic_ns();
            if (due > now + 1000000) msleep((unsigned)((due - now) / 1000000));
        }
    }
    const uint64_t deadline = kg_monotonic_ns() + (uint64_t)drain_s * 1000000000ull;
    int rc;
    while ((rc = kg_sink_flush(s, &err)) == KG_ERR_AGAIN && kg_monotonic_ns() < deadline)
        msleep(20);
    const double secs = (double)(kg_monotonic_ns() - t0) / 1e9;
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    add_stats(&tot, s);
    if (rc != 0) fprintf(stderr, "bench_redis: last flush: %s\n", err.msg);
    printf("written=%lu delivered=%" PRIu64 " replayed=%" PRIu64 " failed=%" PRIu64 " reconnects=%" PRIu64
           " spooled=%" PRIu64 " restarts=%lu seconds=%.3f events_per_s=%.0f\n",
           count, tot.delivered, tot.replayed, tot.failed, tot.reconnects, st.spooled, restarts, secs,
           (double)count / secs);
    kg_sink_free(s);
    kg_buf_free(&all);
    free(off);
    return rc == 0 && st.spooled == 0 ? 0 : 1;
}
