/*
 * tests/unit/test_spool.c — the sinks' durable storage without a server:
 * the disk spool of the Redis sink (export/sink_spool.c: CRC32C, order,
 * persistence across close/open, the ack mark, segment rollover, recovery
 * of damaged and truncated segments, the spool_full policies, the
 * directory lock), a Redis sink whose server is unreachable spooling to
 * disk and finding its events again after a "restart", and the file sink's
 * size rotation and SIGHUP-style reopen (export/sink_file.c).
 *
 * Label `unit` (registered by tests/redis.cmake). Works in a temporary
 * directory removed at the end.
 */
#include "export/export_int.h"
#include "tests/unit/kg_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[64];

/* --- helpers ------------------------------------------------------------------------ */

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void subdir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g_tmp, name);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".kgspool")) n++;
    closedir(d);
    return n;
}

/* The one segment file name in dir with the lowest number (into out). */
static bool first_segment(const char *dir, char *out, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    char best[64] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".kgspool") && (!best[0] || strcmp(de->d_name, best) < 0))
            kg_strlcpy(best, de->d_name, sizeof(best));
    closedir(d);
    if (!best[0]) return false;
    snprintf(out, size, "%s/%s", dir, best);
    return true;
}

static struct kg_spool *open_spool(const char *dir, uint64_t max_mb, enum kg_spool_full full)
{
    const struct kg_spool_opts o = {.dir = dir,
                                    .max_bytes = max_mb << 20,
                                    .fsync = KG_SPOOL_FSYNC_BATCH,
                                    .full = full,
                                    .log_name = "test"};
    struct kg_err err = {{0}};
    struct kg_spool *sp = kg_spool_open(&o, &err);
    if (!sp) fprintf(stderr, "kg_spool_open(%s): %s\n", dir, err.msg);
    return sp;
}

/* Record i: {"i":i,"pad":"..."} with `pad` bytes of padding. */
static size_t make_record(char *buf, size_t size, int i, size_t pad)
{
    int n = snprintf(buf, size, "{\"i\":%d,\"pad\":\"", i);
    for (size_t k = 0; k < pad && (size_t)n + 3 < size; k++)
        buf[n++] = (char)('a' + (i + (int)k) % 26);
    buf[n++] = '"';
    buf[n++] = '}';
    buf[n] = '\0';
    return (size_t)n;
}

/* The record's i, parsed within its n bytes (records are not NUL-terminated). */
static int record_index(const char *p, size_t n)
{
    if (n < 6 || strncmp(p, "{\"i\":", 5) != 0) return -1;
    int v = 0;
    size_t k = 5;
    if (k >= n || p[k] < '0' || p[k] > '9') return -1;
    for (; k < n && p[k] >= '0' && p[k] <= '9'; k++) v = v * 10 + (p[k] - '0');
    return v;
}

/* Reads every record, checks each against make_record(want[k]) and acks it.
 * Returns how many were read. */
static int read_expect(struct kg_spool *sp, const int *want, int nwant, size_t pad, bool ack)
{
    int k = 0, bad = 0;
    const char *p;
    size_t n;
    struct kg_spool_pos pos;
    char exp[4096];
    while (kg_spool_read(sp, &p, &n, &pos) == 0) {
        if (k < nwant) {
            const size_t en = make_record(exp, sizeof(exp), want[k], pad);
            if (n != en || memcmp(p, exp, n) != 0) {
                if (bad++ < 3)
                    fprintf(stderr, "record %d: got #%d, want #%d\n", k, record_index(p, n), want[k]);
            }
        }
        if (ack) kg_spool_ack(sp, &pos);
        k++;
    }
    CHECK_EQ_INT(bad, 0);
    return k;
}

static int *range(int from, int to)
{
    int *v = kg_xmalloc(sizeof(int) * (size_t)(to - from + 1));
    for (int i = from; i < to; i++)
        v[i - from] = i;
    return v;
}

/* --- CRC32C ------------------------------------------------------------------------------ */

static void test_crc32c(void)
{
    /* Check value of the CRC catalogue, and RFC 3720 appendix B.4 vectors. */
    CHECK_EQ_INT(kg_crc32c(0, "123456789", 9), 0xE3069283u);
    unsigned char b[32];
    memset(b, 0, sizeof(b));
    CHECK_EQ_INT(kg_crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    CHECK_EQ_INT(kg_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    CHECK_EQ_INT(kg_crc32c(0, b, 32), 0x46DD794Eu);
    /* Continuation equals one pass. */
    CHECK_EQ_INT(kg_crc32c(kg_crc32c(0, b, 13), b + 13, 19), kg_crc32c(0, b, 32));
    CHECK_EQ_INT(kg_crc32c(0, "", 0), 0);
}

/* --- spool ------------------------------------------------------------------------------- */

static void test_order_and_persistence(void)
{
    char dir[128];
    subdir(dir, sizeof(dir), "basic");
    struct kg_spool *sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) return;
    CHECK(kg_spool_empty(sp));
    char rec[512];
    for (int i = 0; i < 1000; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 40);
        CHECK(kg_spool_append(sp, rec, n) == 0);
    }
    CHECK(!kg_spool_empty(sp));
    struct kg_spool_stats st;
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 1000);
    CHECK_EQ_INT(st.recovered, 0);

    /* Read 10, rewind: the same 10 again (a lost connection). */
    int *all = range(0, 1100);
    const char *p;
    size_t n;
    struct kg_spool_pos pos;
    for (int i = 0; i < 10; i++)
        CHECK(kg_spool_read(sp, &p, &n, &pos) == 0 && record_index(p, n) == i);
    kg_spool_rewind(sp);
    /* Acknowledge the first 200 only, then "crash" (close). */
    for (int i = 0; i < 200; i++) {
        CHECK(kg_spool_read(sp, &p, &n, &pos) == 0 && record_index(p, n) == i);
        CHECK_EQ_INT(pos.old, 0);
        kg_spool_ack(sp, &pos);
    }
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 800);
    kg_spool_close(sp);

    /* Reopen: 800 recovered, replayed from #200 on (the ack mark). */
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) {
        free(all);
        return;
    }
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.recovered, 800);
    CHECK_EQ_INT(st.records, 800);
    CHECK_EQ_INT(st.corrupt, 0);
    CHECK(kg_spool_read(sp, &p, &n, &pos) == 0 && record_index(p, n) == 200 && pos.old);
    kg_spool_rewind(sp);
    /* New appends go behind the old records, in a new segment. */
    for (int i = 1000; i < 1100; i++) {
        const size_t len = make_record(rec, sizeof(rec), i, 40);
        CHECK(kg_spool_append(sp, rec, len) == 0);
    }
    CHECK_EQ_INT(read_expect(sp, all + 200, 900, 40, true), 900);
    CHECK(kg_spool_empty(sp));
    CHECK_EQ_INT(count_segments(dir), 0); /* everything acknowledged: files gone */
    kg_spool_close(sp);

    /* Empty after a reopen too. */
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL && kg_spool_empty(sp));
    kg_spool_close(sp);
    free(all);
}

static void test_segments_and_tail(void)
{
    char dir[128];
    subdir(dir, sizeof(dir), "segments");
    /* 1 MiB spool: 128 KiB segments. */
    struct kg_spool *sp = open_spool(dir, 1, KG_SPOOL_DROP_NEWEST);
    CHECK(sp != NULL);
    if (!sp) return;
    char rec[512];
    int *all = range(0, 3000);
    for (int i = 0; i < 3000; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 200);
        CHECK(kg_spool_append(sp, rec, n) == 0);
    }
    CHECK(kg_spool_sync(sp) == 0);
    const int segs = count_segments(dir);
    CHECK(segs >= 5);
    /* Read half, append more, read on: the reader catches up with the tail
     * (including appends still buffered). */
    const char *p;
    size_t n;
    struct kg_spool_pos pos;
    int got = 0;
    for (; got < 1500 && kg_spool_read(sp, &p, &n, &pos) == 0; got++) {
        CHECK(record_index(p, n) == got);
        kg_spool_ack(sp, &pos);
    }
    CHECK(count_segments(dir) < segs); /* acknowledged segments deleted */
    for (int i = 3000; i < 3100; i++) {
        const size_t len = make_record(rec, sizeof(rec), i, 200);
        CHECK(kg_spool_append(sp, rec, len) == 0);
    }
    int bad = 0;
    while (kg_spool_read(sp, &p, &n, &pos) == 0) {
        if (record_index(p, n) != got) bad++;
        kg_spool_ack(sp, &pos);
        got++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(got, 3100);
    /* Read-ahead of the tail, then more appends: still in order. */
    for (int i = 3100; i < 3105; i++) {
        const size_t len = make_record(rec, sizeof(rec), i, 200);
        CHECK(kg_spool_append(sp, rec, len) == 0);
        CHECK(kg_spool_read(sp, &p, &n, &pos) == 0 && record_index(p, n) == i);
        kg_spool_ack(sp, &pos);
    }
    CHECK(kg_spool_empty(sp));
    kg_spool_close(sp);
    free(all);
}

static void write_spool_of(const char *dir, int nrec, size_t pad)
{
    struct kg_spool *sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) return;
    char rec[512];
    for (int i = 0; i < nrec; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, pad);
        CHECK(kg_spool_append(sp, rec, n) == 0);
    }
    kg_spool_close(sp);
}

/* Offset of record i in a single-segment spool of equal-size records. */
static long rec_off(int i, size_t rec_len)
{
    return 16 + (long)i * (long)(12 + rec_len);
}

static void patch(const char *file, long off, const void *bytes, size_t n)
{
    const int fd = open(file, O_WRONLY);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(pwrite(fd, bytes, n, off) == (ssize_t)n);
    close(fd);
}

static void test_recovery(void)
{
    char dir[128], seg[256];
    subdir(dir, sizeof(dir), "damaged");
    /* Records #0..#99 of equal length (ids below 10 padded the same way:
     * use pad so that every record is 60 bytes: "{\"i\":NN,..." differs by
     * digit count, so compute each length). */
    write_spool_of(dir, 100, 40);
    CHECK(first_segment(dir, seg, sizeof(seg)));
    char rec[512];
    long off[101];
    off[0] = 16;
    for (int i = 0; i < 100; i++)
        off[i + 1] = off[i] + 12 + (long)make_record(rec, sizeof(rec), i, 40);
    (void)rec_off;

    /* Damage: a flipped payload byte in #50, an impossible length in #20,
     * a broken sync marker in #70, and #99 cut in half (a torn write). */
    patch(seg, off[50] + 12 + 5, "X", 1);
    patch(seg, off[20] + 4, "\xf0\xff\xff\x7f", 4);
    patch(seg, off[70], "\x00", 1);
    CHECK(truncate(seg, off[99] + 20) == 0);

    struct kg_spool *sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) return;
    struct kg_spool_stats st;
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.recovered, 96);
    CHECK_EQ_INT(st.corrupt, 4);
    CHECK(st.corrupt_bytes > 0);
    int want[96], k = 0;
    for (int i = 0; i < 99; i++)
        if (i != 20 && i != 50 && i != 70) want[k++] = i;
    CHECK_EQ_INT(read_expect(sp, want, k, 40, false), 96);
    kg_spool_close(sp);

    /* A damaged segment header: records are still found. */
    patch(seg, 0, "XXXX", 4);
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) return;
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.recovered, 96);
    CHECK_EQ_INT(read_expect(sp, want, k, 40, true), 96);
    CHECK(kg_spool_empty(sp));
    kg_spool_close(sp);
    CHECK_EQ_INT(count_segments(dir), 0);

    /* Pure garbage and an empty file named like segments: skipped, removed. */
    char junk[256];
    snprintf(junk, sizeof(junk), "%s/00000000000000f0.kgspool", dir);
    FILE *f = fopen(junk, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 1000; i++)
            fputc(i * 7 & 0xff, f);
        fclose(f);
    }
    snprintf(junk, sizeof(junk), "%s/00000000000000f1.kgspool", dir);
    f = fopen(junk, "w");
    if (f) fclose(f);
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (sp) {
        CHECK(kg_spool_empty(sp));
        kg_spool_get_stats(sp, &st);
        CHECK(st.corrupt >= 1);
        kg_spool_close(sp);
    }
    CHECK_EQ_INT(count_segments(dir), 0);

    /* A damaged ack mark: ignored, everything replayed (at least once). */
    write_spool_of(dir, 10, 10);
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    if (sp) {
        const char *p;
        size_t n;
        struct kg_spool_pos pos;
        for (int i = 0; i < 4; i++)
            if (kg_spool_read(sp, &p, &n, &pos) == 0) kg_spool_ack(sp, &pos);
        kg_spool_close(sp);
    }
    char ack[256];
    snprintf(ack, sizeof(ack), "%s/ack", dir);
    patch(ack, 10, "\x55", 1);
    sp = open_spool(dir, 64, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (sp) {
        struct kg_spool_stats s2;
        kg_spool_get_stats(sp, &s2);
        CHECK_EQ_INT(s2.recovered, 10);
        int *all = range(0, 10);
        CHECK_EQ_INT(read_expect(sp, all, 10, 10, true), 10);
        free(all);
        kg_spool_close(sp);
    }
}

static void test_full_policies(void)
{
    char dir[128];
    char rec[2048];
    /* drop_newest: the spool keeps the first events, refuses the rest. */
    subdir(dir, sizeof(dir), "full_newest");
    struct kg_spool *sp = open_spool(dir, 1, KG_SPOOL_DROP_NEWEST);
    CHECK(sp != NULL);
    if (!sp) return;
    int accepted = 0, refused = 0;
    for (int i = 0; i < 2000; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 1000);
        const int rc = kg_spool_append(sp, rec, n);
        if (rc == 0)
            accepted++;
        else if (rc == KG_ERR_FULL)
            refused++;
    }
    CHECK(accepted > 900 && accepted < 1100);
    CHECK_EQ_INT(accepted + refused, 2000);
    struct kg_spool_stats st;
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.dropped_new, refused);
    CHECK(st.bytes <= 1u << 20);
    int *all = range(0, 2000);
    CHECK_EQ_INT(read_expect(sp, all, accepted, 1000, true), accepted);
    kg_spool_close(sp);

    /* drop_oldest: the newest events stay, in order, without a gap. */
    subdir(dir, sizeof(dir), "full_oldest");
    sp = open_spool(dir, 1, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (!sp) {
        free(all);
        return;
    }
    for (int i = 0; i < 2000; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 1000);
        CHECK(kg_spool_append(sp, rec, n) == 0);
    }
    kg_spool_get_stats(sp, &st);
    CHECK(st.bytes <= 1u << 20);
    CHECK(st.dropped_new > 900);
    CHECK_EQ_INT(st.dropped_new + st.records, 2000);
    const int first = 2000 - (int)st.records;
    CHECK_EQ_INT(read_expect(sp, all + first, (int)st.records, 1000, true), (int)st.records);
    /* Records in flight when drop_oldest strikes: the cursor goes back, the
     * same records are read again, and a second acknowledgement of one
     * record does not count as another record. */
    const char *p;
    size_t n;
    struct kg_spool_pos pos;
    for (int i = 0; i < 2000; i++) {
        const size_t len = make_record(rec, sizeof(rec), 10000 + i, 1000);
        CHECK(kg_spool_append(sp, rec, len) == 0);
    }
    struct kg_spool_pos inflight[300];
    int nin = 0;
    for (; nin < 300 && kg_spool_read(sp, &p, &n, &pos) == 0; nin++)
        inflight[nin] = pos;        /* read, sent, not yet confirmed */
    for (int i = 0; i < 200; i++) { /* the spool fills up: the oldest segment goes */
        const size_t len = make_record(rec, sizeof(rec), 20000 + i, 1000);
        CHECK(kg_spool_append(sp, rec, len) == 0);
    }
    for (int i = 0; i < nin; i++) /* the replies arrive */
        kg_spool_ack(sp, &inflight[i]);
    struct kg_spool_stats before;
    kg_spool_get_stats(sp, &before);
    /* What is read now must be the rest of the spool without a gap, up to
     * the last record appended (a record counted twice would let a segment
     * go before all of it was read). */
    int reread = 0, gaps = 0, prev = -1;
    while (kg_spool_read(sp, &p, &n, &pos) == 0) {
        const int id = record_index(p, n);
        const int order = id >= 20000 ? 2000 + id - 20000 : id - 10000;
        if (prev >= 0 && order != prev + 1) gaps++;
        prev = order;
        kg_spool_ack(sp, &pos);
        reread++;
    }
    CHECK_EQ_INT(gaps, 0);
    CHECK_EQ_INT(prev, 2199);
    CHECK(kg_spool_empty(sp));
    CHECK(reread >= (int)before.records); /* some read twice, none missed */
    kg_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 0);
    /* A record larger than the whole spool is refused whatever the policy. */
    char *huge = kg_xmalloc(2u << 20);
    memset(huge, 'x', 2u << 20);
    CHECK_EQ_INT(kg_spool_append(sp, huge, 2u << 20), KG_ERR_FULL);
    free(huge);
    kg_spool_close(sp);
    free(all);
}

static void test_lock_and_errors(void)
{
    char dir[128];
    subdir(dir, sizeof(dir), "locked");
    struct kg_spool *a = open_spool(dir, 4, KG_SPOOL_DROP_OLDEST);
    CHECK(a != NULL);
    const struct kg_spool_opts o = {.dir = dir, .max_bytes = 4u << 20, .log_name = "test"};
    struct kg_err err = {{0}};
    struct kg_spool *b = kg_spool_open(&o, &err);
    CHECK(b == NULL);
    CHECK(strstr(err.msg, "in use") != NULL);
    kg_spool_close(a);
    b = kg_spool_open(&o, &err);
    CHECK(b != NULL);
    kg_spool_close(b);

    const struct kg_spool_opts bad = {.dir = "/proc/no/such/dir", .max_bytes = 4u << 20};
    CHECK(kg_spool_open(&bad, &err) == NULL);
    CHECK(strstr(err.msg, "/proc/no/such/dir") != NULL);
    kg_spool_close(NULL);
}

/* --- a Redis sink that cannot reach its server ----------------------------------------- */

static int closed_port(void)
{
    /* A port nothing listens on: bound, never listening, then closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void test_sink_spools_when_unreachable(void)
{
    char dir[128], spec[320];
    subdir(dir, sizeof(dir), "sink");
    snprintf(spec, sizeof(spec), "redis://127.0.0.1:%d/k?spool=%s&spool_max_mb=8&fsync=always", closed_port(),
             dir);
    struct kg_err err = {{0}};
    const enum kg_log_level lvl = kg_log_get_level();
    kg_log_set_level(KG_LOG_ERROR);
    struct kg_sink *s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        kg_log_set_level(lvl);
        return;
    }
    char rec[512];
    for (int i = 0; i < 500; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 100);
        CHECK_EQ_INT(kg_sink_write(s, rec, n), 0);
    }
    struct kg_sink_stats st;
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spooled, 0); /* in memory until a flush fails */
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(strstr(err.msg, "Connection refused") != NULL);
    CHECK(strstr(err.msg, "500 events queued (on disk)") != NULL);
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spooled, 500);
    CHECK_EQ_INT(st.queued, 500);
    CHECK_EQ_INT(st.failed, 0);
    /* Later events go straight behind them on disk. */
    for (int i = 500; i < 600; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 100);
        CHECK_EQ_INT(kg_sink_write(s, rec, n), 0);
    }
    kg_sink_get_stats(s, &st);
    CHECK_EQ_INT(st.spooled, 600);
    /* A flush during the back-off does not even try: it returns at once. */
    const uint64_t t0 = kg_monotonic_ns();
    CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
    CHECK(kg_monotonic_ns() - t0 < 200000000ull);
    kg_sink_free(s);

    /* "Restart": a new sink on the same spool finds the 600 events. A
     * second sink on a spool in use is refused. */
    s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (s) {
        struct kg_err err2 = {{0}};
        CHECK(kg_sink_new(spec, &err2) == NULL);
        CHECK(strstr(err2.msg, "in use") != NULL);
        kg_sink_get_stats(s, &st);
        CHECK_EQ_INT(st.spooled, 600);
        CHECK_EQ_INT(st.queued, 0); /* an earlier run's events, not this one's */
        CHECK_EQ_INT(kg_sink_flush(s, &err), KG_ERR_AGAIN);
        kg_sink_free(s);
    }
    /* The spool's files are there: the raw records, in order. */
    struct kg_spool *sp = open_spool(dir, 8, KG_SPOOL_DROP_OLDEST);
    CHECK(sp != NULL);
    if (sp) {
        int *all = range(0, 600);
        CHECK_EQ_INT(read_expect(sp, all, 600, 100, false), 600);
        free(all);
        kg_spool_close(sp);
    }
    kg_log_set_level(lvl);
}

static void test_spec_errors(void)
{
    struct kg_err err;
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"redis://127.0.0.1:6379/k?mode=queue", "mode must be"},
        {"redis://127.0.0.1:6379/k?ca=/x", "needs a TLS scheme"},
        {"redis://127.0.0.1:6379/k?password=hunter2", "unknown option 'password'"},
        {"redis://127.0.0.1:6379/k?maxlen=5", "mode=stream only"},
        {"redis://127.0.0.1:6379/k?mode=stream&maxlen=x", "bad maxlen"},
        {"redis://127.0.0.1:6379/k?fsync=sometimes", "fsync must be"},
        {"redis://127.0.0.1:6379/k?spool_full=drop_all", "spool_full must be"},
        {"redis://127.0.0.1:6379/k?spool_max_mb=0", "spool_max_mb"},
        {"redis://127.0.0.1:6379/k?timeout_ms=0", "timeout_ms must be"},
        {"redis://127.0.0.1:6379/k?password_env=KG_TEST_NO_SUCH_VAR", "KG_TEST_NO_SUCH_VAR is not set"},
        {"redis://127.0.0.1:6379/k?password_file=/no/such/file", "cannot open password file /no/such/file"},
        {"redis://:pw@127.0.0.1:6379/k?password_env=HOME", "give the password once"},
        {"redis://alice@127.0.0.1:6379/k", "a user name needs a password"},
        {"redis://127.0.0.1:6379/k?mode=channel&wait=1", "wait does not apply"},
        {"redis://127.0.0.1:6379,/k", "no host given"},
        {"redis://127.0.0.1:99999/k", "port must be"},
        {"redis://127.0.0.1:6379/", "needs a key"},
        {"redis://127.0.0.1:6379/k?novalue", "name=value"},
        {"redis-sentinel://127.0.0.1:26379/onlyone", "master-name/key"},
        {"rediss://127.0.0.1:6379/k?ca=/no/such/ca.pem", "cannot load CA certificates from /no/such/ca.pem"},
        {"rediss://127.0.0.1:6379/k?cert=/x.pem", "needs its key"},
        {"redix://:hunter2@127.0.0.1/k", "unknown output 'redix'"},
        {"file:/tmp/x?rotate_mb=0", "bad option 'rotate_mb=0'"},
        {"file:/tmp/x?keep=5&color=red", "bad option 'color=red'"},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(bad); i++) {
        memset(&err, 0, sizeof(err));
        struct kg_sink *s = kg_sink_new(bad[i].spec, &err);
        CHECK(s == NULL);
        kg_sink_free(s);
        if (!strstr(err.msg, bad[i].msg)) {
            fprintf(stderr, "%s: error '%s' lacks '%s'\n", bad[i].spec, err.msg, bad[i].msg);
            CHECK(0);
        }
        CHECK(strstr(err.msg, "hunter2") == NULL); /* secrets never echoed */
    }

    /* Good specs, and the names they show (password masked). */
    static const struct {
        const char *spec, *name;
    } good[] = {
        {"redis://:hunter2@127.0.0.1/k", "redis://:***@127.0.0.1/k"},
        {"redis://bob:hunter2@h1:1,h2:2/k?mode=stream&maxlen=0",
         "redis://bob:***@h1:1,h2:2/k?mode=stream&maxlen=0"},
        {"redis-sentinel://s1,s2:26380/mymaster/alerts?wait=1",
         "redis-sentinel://s1,s2:26380/mymaster/alerts?wait=1"},
        {"redis://[::1]:6379/a%3Fb?mode=channel", "redis://[::1]:6379/a%3Fb?mode=channel"},
        {"redis://bob@127.0.0.1/k?password_env=HOME", "redis://bob@127.0.0.1/k?password_env=HOME"},
    };
    for (size_t i = 0; i < KG_ARRAY_LEN(good); i++) {
        memset(&err, 0, sizeof(err));
        struct kg_sink *s = kg_sink_new(good[i].spec, &err);
        CHECK(s != NULL);
        if (!s) {
            fprintf(stderr, "%s: %s\n", good[i].spec, err.msg);
            continue;
        }
        CHECK_EQ_STR(kg_sink_name(s), good[i].name);
        kg_sink_free(s);
    }
}

/* --- file sink: rotation and reopen ------------------------------------------------------- */

/* Lines of a file; -1 when it cannot be read. Checks every line is a whole
 * record and collects their indexes into idx (if given). */
static long file_records(const char *path, int *idx, long max, long *bytes)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long k = 0;
    *bytes = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        *bytes += n;
        const bool whole = n > 2 && line[n - 1] == '\n' && line[n - 2] == '}';
        CHECK(whole);
        if (idx && k < max) idx[k] = record_index(line, (size_t)n);
        k++;
    }
    free(line);
    fclose(f);
    return k;
}

static void test_file_rotation(void)
{
    char path[128], spec[200], p1[140], p2[140], p3[140];
    subdir(path, sizeof(path), "eve.json");
    snprintf(spec, sizeof(spec), "file:%s?rotate_mb=1&keep=2", path);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    struct kg_err err = {{0}};
    struct kg_sink *s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    /* ~3.6 MB: three rotations; PATH.3 never exists with keep=2. */
    char rec[2048];
    const int total = 6000;
    for (int i = 0; i < total; i++) {
        const size_t n = make_record(rec, sizeof(rec), i, 580);
        CHECK(kg_sink_write(s, rec, n) == 0);
        if (i % 700 == 0) CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    }
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    struct stat st;
    CHECK(stat(p3, &st) != 0);
    static int idx[3][3000];
    long bytes[3], n[3];
    n[0] = file_records(p2, idx[0], 3000, &bytes[0]);
    n[1] = file_records(p1, idx[1], 3000, &bytes[1]);
    n[2] = file_records(path, idx[2], 3000, &bytes[2]);
    for (int i = 0; i < 3; i++) {
        CHECK(n[i] > 0);
        CHECK(bytes[i] <= 1 << 20);
    }
    CHECK(bytes[0] > (1 << 20) - 1000 && bytes[1] > (1 << 20) - 1000); /* full files */
    /* The three files hold the newest events, in order, without a gap. */
    const long kept = n[0] + n[1] + n[2];
    long k = 0, bad = 0;
    for (int f = 0; f < 3; f++)
        for (long j = 0; j < n[f]; j++, k++)
            if (idx[f][j] != total - kept + k) bad++;
    CHECK_EQ_INT(bad, 0);
    struct kg_sink_stats ss;
    kg_sink_get_stats(s, &ss);
    CHECK_EQ_INT(ss.delivered, total);

    /* External rotation + SIGHUP: the next write-out goes to a new file. */
    char moved[160];
    snprintf(moved, sizeof(moved), "%s.moved", path);
    CHECK(rename(path, moved) == 0);
    const size_t len = make_record(rec, sizeof(rec), 99999, 5);
    CHECK(kg_sink_write(s, rec, len) == 0);
    kg_sinks_request_reopen(); /* what a SIGHUP handler calls */
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    int one[2] = {0};
    long b1;
    CHECK_EQ_INT(file_records(path, one, 2, &b1), 1);
    CHECK_EQ_INT(one[0], 99999);
    CHECK_EQ_INT(file_records(moved, NULL, 0, &b1), n[2]);
    kg_sink_free(s);

    /* keep=0: the full file is simply removed; a '?' in a path without
     * options is part of the name. */
    char qpath[160], qspec[200];
    snprintf(qpath, sizeof(qpath), "%s/odd?name.json", g_tmp);
    snprintf(qspec, sizeof(qspec), "file:%s", qpath);
    s = kg_sink_new(qspec, &err);
    CHECK(s != NULL);
    CHECK(stat(qpath, &st) == 0);
    kg_sink_free(s);
    snprintf(spec, sizeof(spec), "file:%s?rotate_mb=1&keep=0", path);
    s = kg_sink_new(spec, &err);
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 0; i < 3000; i++) {
        const size_t m = make_record(rec, sizeof(rec), i, 580);
        CHECK(kg_sink_write(s, rec, m) == 0);
    }
    CHECK_EQ_INT(kg_sink_flush(s, &err), 0);
    kg_sink_free(s);
    CHECK(stat(path, &st) == 0 && st.st_size <= 1 << 20);
    CHECK(stat(p3, &st) != 0);
}

int main(void)
{
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/kg_test_spool_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    KG_TEST_RUN(test_crc32c);
    KG_TEST_RUN(test_order_and_persistence);
    KG_TEST_RUN(test_segments_and_tail);
    KG_TEST_RUN(test_recovery);
    KG_TEST_RUN(test_full_policies);
    KG_TEST_RUN(test_lock_and_errors);
    KG_TEST_RUN(test_sink_spools_when_unreachable);
    KG_TEST_RUN(test_spec_errors);
    KG_TEST_RUN(test_file_rotation);
    rm_rf(g_tmp);
    KG_TEST_MAIN_END();
}
