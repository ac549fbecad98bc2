/*
 * tests/unit/test_capture.c — packet sources.
 *
 * File part (always runs): a pcap from pcaps/ read through "pcap_file" and
 * compared record by record with this file's own parser of the pcap format
 * (count, lengths, timestamps, bytes); the same records rewritten as pcapng
 * (one interface, then two of the same link type) read identically; a
 * pcapng whose second interface has another link type fails cleanly after
 * the packets before it; every truncation of a pcap and of a pcapng (each
 * prefix length) reads exactly the complete records and then reports EOF
 * or a read error, never crashes; a missing file is named in the error;
 * the live-only setters and misuse of the API are refused.
 *
 * Live part (root and network namespaces; otherwise skipped, exit 77): a
 * namespace and a veth pair per run (names carry the pid), "pcap_live" on
 * the root-namespace end, frames sent from the other end by a raw
 * AF_PACKET socket opened inside the namespace (setns). Checks a BPF
 * filter (matching frames arrive byte-exact with their caplen, a
 * non-matching one does not), snaplen, the read timeout,
 * kg_capture_break() from another thread, statistics, two handles in one
 * fanout group (disjoint, complete, both directions of a flow on one
 * handle), fanout's IPv4 defragmentation, a link going down and up again
 * and then deleted under a reading handle, and the error messages for a
 * missing interface, a bad filter and a fanout group id clash.
 */
#include "capture/capture.h"
#include "tests/unit/kg_test.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------------ */

static const char *source_dir(void)
{
    static char dir[4096];
    const char *env = getenv("KG_SOURCE_DIR");
    if (env && env[0]) return env;
    /* Run by hand: derive it from this file's path (…/tests/unit/test_capture.c). */
    kg_strlcpy(dir, __FILE__, sizeof(dir));
    char *p = strstr(dir, "/tests/unit/");
    if (p)
        *p = '\0';
    else
        kg_strlcpy(dir, ".", sizeof(dir));
    return dir;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct kg_buf b;
    kg_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        kg_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return (uint8_t *)b.data;
}

static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/kg_test_capture.XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (n && fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static uint64_t now_ms(void)
{
    return kg_monotonic_ns() / 1000000u;
}

/* --- an independent reading of the pcap format ---------------------------------
 * (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html) */

struct rec {
    size_t off; /* offset of the packet data in the file */
    size_t end; /* offset just past the record */
    uint32_t caplen, wirelen;
    uint64_t ts_us;
};

struct pcap_index {
    uint32_t linktype;
    size_t n;
    struct rec *r;
};

static uint32_t rd32(const uint8_t *p, bool swap)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return swap ? __builtin_bswap32(v) : v;
}

/* Indexes the complete records of a classic pcap image. Returns false when
 * the file header is not a pcap header. */
static bool index_pcap(const uint8_t *d, size_t len, struct pcap_index *ix)
{
    memset(ix, 0, sizeof(*ix));
    if (len < 24) return false;
    uint32_t magic = rd32(d, false);
    bool swap, nano;
    if (magic == 0xa1b2c3d4u || magic == 0xa1b23c4du)
        swap = false;
    else if (magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u)
        swap = true;
    else
        return false;
    nano = magic == 0xa1b23c4du || magic == 0x4d3cb2a1u;
    ix->linktype = rd32(d + 20, swap) & 0x0fffffffu;
    size_t off = 24, cap = 0;
    while (off + 16 <= len) {
        uint32_t caplen = rd32(d + off + 8, swap);
        if (off + 16 + caplen > len) break;
        if (ix->n == cap) {
            cap = cap ? cap * 2 : 64;
            ix->r = kg_xrealloc(ix->r, cap * sizeof(*ix->r));
        }
        struct rec *r = &ix->r[ix->n++];
        uint64_t sec = rd32(d + off, swap), frac = rd32(d + off + 4, swap);
        r->ts_us = sec * 1000000u + (nano ? frac / 1000u : frac);
        r->caplen = caplen;
        r->wirelen = rd32(d + off + 12, swap);
        r->off = off + 16;
        r->end = off + 16 + caplen;
        off = r->end;
    }
    return true;
}

/* --- writing pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-01.html) */

static void put32(struct kg_buf *b, uint32_t v)
{
    kg_buf_append(b, &v, 4); /* host order: little-endian section, as the SHB's BOM says */
}

static void put16(struct kg_buf *b, uint16_t v)
{
    kg_buf_append(b, &v, 2);
}

static void pcapng_shb(struct kg_buf *b)
{
    put32(b, 0x0A0D0D0Au);
    put32(b, 28);
    put32(b, 0x1A2B3C4Du);
    put16(b, 1);
    put16(b, 0);
    put32(b, 0xffffffffu); /* section length unknown (64 bits) */
    put32(b, 0xffffffffu);
    put32(b, 28);
}

static void pcapng_idb(struct kg_buf *b, uint16_t linktype)
{
    put32(b, 1);
    put32(b, 20);
    put16(b, linktype);
    put16(b, 0);
    put32(b, 262144); /* snaplen; no options: if_tsresol defaults to microseconds */
    put32(b, 20);
}

static void pcapng_epb(struct kg_buf *b, uint32_t ifid, uint64_t ts_us, const uint8_t *p, uint32_t caplen,
                       uint32_t wirelen)
{
    uint32_t pad = (4 - caplen % 4) % 4;
    uint32_t total = 32 + caplen + pad;
    put32(b, 6);
    put32(b, total);
    put32(b, ifid);
    put32(b, (uint32_t)(ts_us >> 32));
    put32(b, (uint32_t)ts_us);
    put32(b, caplen);
    put32(b, wirelen);
    kg_buf_append(b, p, caplen);
    static const uint8_t zero[4];
    kg_buf_append(b, zero, pad);
    put32(b, total);
}

/* Block boundaries of what pcapng_from_pcap writes, for the truncation test. */
struct ng_layout {
    size_t header_end; /* after SHB and the first IDB */
    size_t *epb_end;   /* end of each EPB, in order */
    size_t nepb;
};

/* Rewrites a pcap's records as pcapng. nifaces IDBs of the pcap's link type
 * (the second one, if any, after `second_idb_after` packets, with link type
 * `second_linktype`); packet i goes to interface i % nifaces. */
static void pcapng_from_pcap(struct kg_buf *out, const uint8_t *d, const struct pcap_index *ix, int nifaces,
                             size_t second_idb_after, uint16_t second_linktype, struct ng_layout *lay)
{
    kg_buf_reset(out);
    pcapng_shb(out);
    pcapng_idb(out, (uint16_t)ix->linktype);
    if (lay) {
        lay->header_end = out->len;
        lay->epb_end = kg_xcalloc(ix->n + 1, sizeof(size_t));
        lay->nepb = 0;
    }
    for (size_t i = 0; i < ix->n; i++) {
        if (nifaces > 1 && i == second_idb_after) pcapng_idb(out, second_linktype);
        uint32_t ifid = nifaces > 1 && i >= second_idb_after ? (uint32_t)(i % 2) : 0;
        pcapng_epb(out, ifid, ix->r[i].ts_us, d + ix->r[i].off, ix->r[i].caplen, ix->r[i].wirelen);
        if (lay) lay->epb_end[lay->nepb++] = out->len;
    }
}

/* Reads a file through "pcap_file"; checks every packet against the index.
 * Returns the number of packets read; *last gets the final return code. */
static size_t read_and_compare(const char *path, const uint8_t *d, const struct pcap_index *ix, int *last,
                               struct kg_err *err, bool *same)
{
    struct kg_capture *c = kg_capture_new("pcap_file", path, err);
    *same = true;
    if (!c) {
        *last = KG_ERR_INVAL;
        return 0;
    }
    kg_capture_set_iface_index(c, 3);
    int rc = kg_capture_start(c, err);
    if (rc < 0) {
        *last = rc;
        kg_capture_free(c);
        return 0;
    }
    size_t n = 0;
    struct kg_packet pkt;
    while ((rc = kg_capture_next(c, &pkt, err)) == 1) {
        if (n >= ix->n) {
            *same = false;
            n++;
            continue;
        }
        const struct rec *r = &ix->r[n];
        if (pkt.caplen != r->caplen || pkt.wirelen != r->wirelen || pkt.ts_us != r->ts_us ||
            pkt.linktype != ix->linktype || pkt.iface != 3 || memcmp(pkt.data, d + r->off, r->caplen) != 0)
            *same = false;
        n++;
    }
    *last = rc;
    /* Reading on after the end must stay at the end (or error), not crash. */
    struct kg_err err2 = {{0}};
    int again = kg_capture_next(c, &pkt, &err2);
    if (again == 1 && rc == KG_ERR_EOF) *same = false;
    struct kg_capture_stats st;
    kg_capture_get_stats(c, &st);
    if (st.packets != n || st.kernel_drops != 0) *same = false;
    kg_capture_free(c);
    return n;
}

/* --- file tests -------------------------------------------------------------------- */

static const char *const some_pcaps[] = {"pcaps/dns_udp.pcap", "pcaps/demo.pcap", "pcaps/malformed.pcap"};

static void test_pcap_files(void)
{
    for (size_t k = 0; k < KG_ARRAY_LEN(some_pcaps); k++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", source_dir(), some_pcaps[k]);
        size_t len;
        uint8_t *d = slurp(path, &len);
        CHECK(d != NULL);
        if (!d) continue;
        struct pcap_index ix;
        CHECK(index_pcap(d, len, &ix));
        CHECK(ix.n > 10);
        CHECK(ix.n && ix.r[ix.n - 1].end == len); /* the committed files are whole */
        int last;
        bool same;
        struct kg_err err = {{0}};
        size_t n = read_and_compare(path, d, &ix, &last, &err, &same);
        CHECK_EQ_INT(n, ix.n);
        CHECK_EQ_INT(last, KG_ERR_EOF);
        CHECK(same);
        free(ix.r);
        free(d);
    }
}

static void test_pcapng_files(void)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/pcaps/dns_udp.pcap", source_dir());
    size_t len;
    uint8_t *d = slurp(path, &len);
    CHECK(d != NULL);
    if (!d) return;
    struct pcap_index ix;
    CHECK(index_pcap(d, len, &ix));
    struct kg_buf ng;
    kg_buf_init(&ng);
    char out[512];
    int last;
    bool same;
    struct kg_err err = {{0}};

    /* One interface. */
    pcapng_from_pcap(&ng, d, &ix, 1, 0, 0, NULL);
    snprintf(out, sizeof(out), "%s/one_iface.pcapng", tmpdir);
    write_file(out, ng.data, ng.len);
    CHECK_EQ_INT(read_and_compare(out, d, &ix, &last, &err, &same), ix.n);
    CHECK_EQ_INT(last, KG_ERR_EOF);
    CHECK(same);

    /* Two interfaces, same link type, the second declared mid-file: every
     * packet reads, with the handle's link type. The name says nothing of
     * the format: libpcap goes by the magic number. */
    pcapng_from_pcap(&ng, d, &ix, 2, 5, (uint16_t)ix.linktype, NULL);
    snprintf(out, sizeof(out), "%s/two_ifaces.pcap", tmpdir);
    write_file(out, ng.data, ng.len);
    CHECK_EQ_INT(read_and_compare(out, d, &ix, &last, &err, &same), ix.n);
    CHECK_EQ_INT(last, KG_ERR_EOF);
    CHECK(same);

    /* Second interface with another link type (raw IP): libpcap 1.10
     * cannot give per-packet link types; the packets before that interface
     * read, then a read error names the file. */
    pcapng_from_pcap(&ng, d, &ix, 2, 5, 101, NULL);
    snprintf(out, sizeof(out), "%s/mixed_linktypes.pcapng", tmpdir);
    write_file(out, ng.data, ng.len);
    memset(&err, 0, sizeof(err));
    size_t n = read_and_compare(out, d, &ix, &last, &err, &same);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(last, KG_ERR_IO);
    CHECK(same);
    CHECK(strstr(err.msg, out) != NULL);
    CHECK(strstr(err.msg, "different from the type of the first interface") != NULL);
    printf("  mixed link types: %s\n", err.msg);

    kg_buf_free(&ng);
    free(ix.r);
    free(d);
}

/* Every prefix of a capture: the complete records read, byte-exact, then
 * EOF when the cut falls on a record boundary, a read error otherwise; a
 * prefix too short for the file header fails at start. */
static void test_truncated(void)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/pcaps/dns_udp.pcap", source_dir());
    size_t len;
    uint8_t *d = slurp(path, &len);
    CHECK(d != NULL);
    if (!d) return;
    struct pcap_index full;
    CHECK(index_pcap(d, len, &full));
    char out[512];
    snprintf(out, sizeof(out), "%s/cut.pcap", tmpdir);
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        write_file(out, d, cut);
        struct pcap_index ix;
        bool hdr = index_pcap(d, cut, &ix);
        int last;
        bool same;
        struct kg_err err = {{0}};
        size_t n = read_and_compare(out, d, &full, &last, &err, &same);
        bool ok;
        if (!hdr) {
            ok = n == 0 && last == KG_ERR_IO && strstr(err.msg, out) != NULL;
        } else {
            bool boundary = cut == 24 || (ix.n && ix.r[ix.n - 1].end == cut);
            ok = same && n == ix.n &&
                 (boundary ? last == KG_ERR_EOF : last == KG_ERR_IO && strstr(err.msg, out) != NULL);
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "  pcap cut at %zu: read %zu of %zu, rc %d: %s\n", cut, n, ix.n, last, err.msg);
        free(ix.r);
    }
    CHECK_EQ_INT(bad, 0);
    printf("  pcap: %zu prefixes checked\n", len);

    /* The same for pcapng: complete Enhanced Packet Blocks read. */
    struct kg_buf ng;
    kg_buf_init(&ng);
    struct ng_layout lay;
    pcapng_from_pcap(&ng, d, &full, 1, 0, 0, &lay);
    snprintf(out, sizeof(out), "%s/cut.pcapng", tmpdir);
    bad = 0;
    for (size_t cut = 0; cut < ng.len; cut++) {
        write_file(out, ng.data, cut);
        int last;
        bool same;
        struct kg_err err = {{0}};
        size_t n = read_and_compare(out, d, &full, &last, &err, &same);
        size_t complete = 0;
        bool boundary = cut == lay.header_end;
        for (size_t i = 0; i < lay.nepb; i++) {
            if (lay.epb_end[i] <= cut) complete = i + 1;
            if (lay.epb_end[i] == cut) boundary = true;
        }
        bool ok;
        if (cut < lay.header_end)
            ok = n == 0 && last < 0 && last != KG_ERR_EOF && strstr(err.msg, out);
        else
            ok = same && n == complete && (boundary ? last == KG_ERR_EOF : last == KG_ERR_IO);
        if (!ok && bad++ < 5)
            fprintf(stderr, "  pcapng cut at %zu: read %zu of %zu, rc %d: %s\n", cut, n, complete, last,
                    err.msg);
    }
    CHECK_EQ_INT(bad, 0);
    printf("  pcapng: %zu prefixes checked\n", ng.len);
    free(lay.epb_end);
    kg_buf_free(&ng);
    free(full.r);
    free(d);
}

static void test_not_a_capture(void)
{
    struct kg_err err = {{0}};
    char out[512];
    /* Garbage and an empty file. */
    snprintf(out, sizeof(out), "%s/garbage.pcap", tmpdir);
    write_file(out, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    struct kg_capture *c = kg_capture_new("pcap_file", out, &err);
    CHECK(c != NULL);
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, out) != NULL);
    kg_capture_free(c);
    snprintf(out, sizeof(out), "%s/empty.pcap", tmpdir);
    write_file(out, "", 0);
    c = kg_capture_new("pcap_file", out, &err);
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, out) != NULL);
    kg_capture_free(c);
}

static void test_missing_file(void)
{
    struct kg_err err = {{0}};
    const char *path = "/nonexistent/dir/kagami-missing.pcap";
    struct kg_capture *c = kg_capture_new("pcap_file", path, &err);
    CHECK(c != NULL);
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, path) != NULL);
    /* Reading a handle that failed to start is refused, not a crash. */
    struct kg_packet pkt;
    CHECK(kg_capture_next(c, &pkt, &err) < 0);
    struct kg_capture_stats st;
    kg_capture_get_stats(c, &st);
    CHECK_EQ_INT(st.packets, 0);
    kg_capture_free(c);
}

static void test_api_misuse(void)
{
    struct kg_err err = {{0}};
    CHECK(kg_capture_new("afpacket_v9", "eth0", &err) == NULL);
    CHECK(strstr(err.msg, "afpacket_v9") != NULL);
    CHECK(kg_capture_new("pcap_file", "", &err) == NULL);
    kg_capture_free(NULL);

    char path[4200];
    snprintf(path, sizeof(path), "%s/pcaps/dns_udp.pcap", source_dir());
    struct kg_capture *c = kg_capture_new("pcap_file", path, &err);
    CHECK(c != NULL);
    CHECK(!kg_capture_is_live(c));
    CHECK_EQ_STR(kg_capture_source(c), path);
    /* Live-only options are refused on a file. */
    CHECK_EQ_INT(kg_capture_set_promisc(c, true), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_buffer_size(c, 64u << 20), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_filter(c, "udp"), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_timeout_ms(c, 10), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_fanout(c, 7), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_snaplen(c, 10), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_snaplen(c, 300000), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_snaplen(c, 1500), 0);
    struct kg_packet pkt;
    CHECK_EQ_INT(kg_capture_next(c, &pkt, &err), KG_ERR_INVAL); /* not started */
    CHECK_EQ_INT(kg_capture_start(c, &err), 0);
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_INVAL);       /* twice */
    CHECK_EQ_INT(kg_capture_set_snaplen(c, 2000), KG_ERR_INVAL); /* after start */
    CHECK_EQ_INT(kg_capture_next(c, &pkt, &err), 1);
    /* break: every later read is the end. */
    kg_capture_break(c);
    CHECK_EQ_INT(kg_capture_next(c, &pkt, &err), KG_ERR_EOF);
    CHECK_EQ_INT(kg_capture_next(c, &pkt, &err), KG_ERR_EOF);
    struct kg_capture_stats st;
    kg_capture_get_stats(c, &st);
    CHECK_EQ_INT(st.packets, 1);
    kg_capture_free(c);

    /* Live options are accepted before start, range-checked. */
    c = kg_capture_new("pcap_live", "kg-no-such-if0", &err);
    CHECK(c != NULL);
    CHECK(kg_capture_is_live(c));
    CHECK_EQ_INT(kg_capture_set_promisc(c, false), 0);
    CHECK_EQ_INT(kg_capture_set_buffer_size(c, 1000), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_buffer_size(c, 8u << 20), 0);
    CHECK_EQ_INT(kg_capture_set_timeout_ms(c, 0), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_timeout_ms(c, 250), 0);
    CHECK_EQ_INT(kg_capture_set_filter(c, "udp port 53"), 0);
    CHECK_EQ_INT(kg_capture_set_filter(c, ""), 0);
    CHECK_EQ_INT(kg_capture_set_fanout(c, 42), 0);
    CHECK_EQ_INT(kg_capture_set_fanout(c, 42), 0);
    CHECK_EQ_INT(kg_capture_set_fanout(c, 43), KG_ERR_INVAL); /* one group per handle */
    kg_capture_break(c);                                      /* before start: harmless */
    kg_capture_free(c);
}

/* --- live tests ------------------------------------------------------------------- */

static char ns_name[64], if_cap[IFNAMSIZ], if_send[IFNAMSIZ];
static bool ns_made;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void live_cleanup(void)
{
    if (!ns_made) return;
    ns_made = false;
    /* Deleting the namespace destroys its end of the pair, which takes
     * the root-namespace end with it; the link delete covers a namespace
     * that vanished first. */
    sh("ip netns del %s 2>/dev/null", ns_name);
    sh("ip link del %s 2>/dev/null", if_cap);
    sh("ip link del kgt%dx 2>/dev/null", (int)getpid()); /* test_live_iface_gone's pair */
}

/* Namespaces and links of earlier runs killed before their atexit cleanup
 * (a ctest timeout sends SIGKILL): kgtest<pid> of a pid that is gone. */
static void remove_stale(void)
{
    FILE *f = popen("ip netns list 2>/dev/null", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        int pid;
        char path[64];
        if (sscanf(line, "kgtest%d", &pid) != 1 || pid <= 0) continue;
        snprintf(path, sizeof(path), "/proc/%d", pid);
        if (access(path, F_OK) == 0) continue; /* still running */
        sh("ip netns del kgtest%d 2>/dev/null; ip link del kgt%da 2>/dev/null; ip link del kgt%dx "
           "2>/dev/null",
           pid, pid, pid);
    }
    pclose(f);
}

/* Returns false (with a reason printed) when the live tests cannot run. */
static bool live_setup(void)
{
    if (geteuid() != 0) {
        printf("  live: skipped: needs root\n");
        return false;
    }
    if (sh("ip -V >/dev/null 2>&1") != 0) {
        printf("  live: skipped: iproute2 (ip) not found\n");
        return false;
    }
    remove_stale();
    int pid = (int)getpid();
    snprintf(ns_name, sizeof(ns_name), "kgtest%d", pid);
    snprintf(if_cap, sizeof(if_cap), "kgt%da", pid);
    snprintf(if_send, sizeof(if_send), "kgt%db", pid);
    if (sh("ip netns add %s", ns_name) != 0) {
        printf("  live: skipped: cannot create a network namespace\n");
        return false;
    }
    ns_made = true;
    atexit(live_cleanup);
    /* IPv6 off on both ends, before they come up: no router solicitations
     * or MLD reports mixed into what the tests count. */
    if (sh("ip link add %s type veth peer name %s", if_cap, if_send) != 0 ||
        sh("echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 2>/dev/null; true", if_cap) != 0 ||
        sh("ip link set %s netns %s", if_send, ns_name) != 0 ||
        sh("ip netns exec %s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6' 2>/dev/null; true",
           ns_name, if_send) != 0 ||
        sh("ip link set %s up", if_cap) != 0 ||
        sh("ip netns exec %s ip link set %s up", ns_name, if_send) != 0) {
        printf("  live: skipped: cannot set up a veth pair\n");
        live_cleanup();
        return false;
    }
    return true;
}

/* A raw AF_PACKET socket bound to the sender end, created inside the
 * namespace; the socket keeps its namespace after we switch back. */
static int open_sender(void)
{
    char path[128];
    snprintf(path, sizeof(path), "/run/netns/%s", ns_name);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    int fd = -1;
    if (self < 0 || ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        perror("setns");
        goto out;
    }
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    unsigned idx = if_nametoindex(if_send);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)idx};
    if (fd < 0 || !idx || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        perror("sender socket");
        if (fd >= 0) close(fd);
        fd = -1;
    }
    if (setns(self, CLONE_NEWNET) != 0) {
        perror("setns back");
        exit(1);
    }
out:
    if (self >= 0) close(self);
    if (ns >= 0) close(ns);
    return fd;
}

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

#define TEST_MAGIC "KGTEST01"

struct frame_spec {
    uint32_t saddr, daddr; /* host order */
    uint16_t sport, dport;
    uint32_t seq, flow;
    uint32_t payload; /* UDP payload bytes, >= 16 */
};

/* Ethernet + IPv4 + UDP; the payload starts with TEST_MAGIC, seq, flow
 * (big-endian) and is filled with a byte pattern. Returns the frame length. */
static size_t build_udp(uint8_t *f, const struct frame_spec *s)
{
    static const uint8_t mac_a[6] = {0x02, 0, 0, 0, 0, 0x0a}, mac_b[6] = {0x02, 0, 0, 0, 0, 0x0b};
    bool fwd = s->saddr < s->daddr;
    memcpy(f, fwd ? mac_a : mac_b, 6);
    memcpy(f + 6, fwd ? mac_b : mac_a, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t *ip = f + 14;
    uint16_t tot = (uint16_t)(20 + 8 + s->payload);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
    ip[4] = (uint8_t)(s->seq >> 8), ip[5] = (uint8_t)s->seq;
    ip[8] = 64;
    ip[9] = 17;
    for (int i = 0; i < 4; i++) {
        ip[12 + i] = (uint8_t)(s->saddr >> (24 - 8 * i));
        ip[16 + i] = (uint8_t)(s->daddr >> (24 - 8 * i));
    }
    uint16_t ck = ip_csum(ip, 20);
    ip[10] = (uint8_t)(ck >> 8), ip[11] = (uint8_t)ck;
    uint8_t *udp = ip + 20;
    udp[0] = (uint8_t)(s->sport >> 8), udp[1] = (uint8_t)s->sport;
    udp[2] = (uint8_t)(s->dport >> 8), udp[3] = (uint8_t)s->dport;
    udp[4] = (uint8_t)((8 + s->payload) >> 8), udp[5] = (uint8_t)(8 + s->payload);
    udp[6] = udp[7] = 0; /* no checksum (allowed over IPv4) */
    uint8_t *pl = udp + 8;
    memcpy(pl, TEST_MAGIC, 8);
    for (int i = 0; i < 4; i++) {
        pl[8 + i] = (uint8_t)(s->seq >> (24 - 8 * i));
        pl[12 + i] = (uint8_t)(s->flow >> (24 - 8 * i));
    }
    for (uint32_t i = 16; i < s->payload; i++)
        pl[i] = (uint8_t)(i * 7 + s->seq);
    return 14 + 28 + s->payload;
}

/* Reads seq and flow from a test frame; false if it is not one. */
static bool parse_test_frame(const struct kg_packet *p, uint32_t *seq, uint32_t *flow)
{
    if (p->caplen < 14 + 28 + 16 || p->data[12] != 0x08 || p->data[13] != 0x00) return false;
    const uint8_t *pl = p->data + 14 + 28;
    if (memcmp(pl, TEST_MAGIC, 8) != 0) return false;
    *seq = (uint32_t)pl[8] << 24 | (uint32_t)pl[9] << 16 | (uint32_t)pl[10] << 8 | pl[11];
    *flow = (uint32_t)pl[12] << 24 | (uint32_t)pl[13] << 16 | (uint32_t)pl[14] << 8 | pl[15];
    return true;
}

static bool send_frame(int fd, const uint8_t *f, size_t n)
{
    ssize_t w = send(fd, f, n, 0);
    if (w != (ssize_t)n) perror("send");
    return w == (ssize_t)n;
}

static struct kg_capture *open_live(const char *ifname, const char *filter, int timeout_ms, int fanout_group,
                                    uint32_t snaplen, struct kg_err *err)
{
    struct kg_capture *c = kg_capture_new("pcap_live", ifname, err);
    if (!c) return NULL;
    kg_capture_set_timeout_ms(c, timeout_ms);
    kg_capture_set_buffer_size(c, 4u << 20);
    if (snaplen) kg_capture_set_snaplen(c, snaplen);
    if (filter) kg_capture_set_filter(c, filter);
    if (fanout_group >= 0) kg_capture_set_fanout(c, (uint16_t)fanout_group);
    if (kg_capture_start(c, err) < 0) {
        kg_capture_free(c);
        return NULL;
    }
    return c;
}

#define BASE_A 0xC6120001u /* 198.18.0.1: benchmark range, RFC 2544 */
#define BASE_B 0xC6130001u /* 198.19.0.1 */

static void test_live_filter(int fd)
{
    struct kg_err err = {{0}};
    struct kg_capture *c = open_live(if_cap, "udp dst port 5555", 50, -1, 0, &err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    struct kg_capture *cut = open_live(if_cap, "udp dst port 5555", 50, -1, 128, &err);
    CHECK(cut != NULL);

    /* Matching frames of assorted sizes, with a non-matching one (port
     * 5556) sent before the last. */
    enum { N = 12 };
    static uint8_t frames[N][1600];
    size_t flen[N];
    static const uint32_t sizes[N] = {16, 17, 100, 200, 333, 512, 777, 1000, 1200, 1400, 1458, 64};
    bool ok = true;
    for (int i = 0; i < N; i++) {
        struct frame_spec s = {BASE_A, BASE_B, 40000, 5555, (uint32_t)i, 1, sizes[i]};
        flen[i] = build_udp(frames[i], &s);
        if (i == N - 1) {
            uint8_t other[200];
            struct frame_spec o = {BASE_A, BASE_B, 40000, 5556, 999, 1, 100};
            ok &= send_frame(fd, other, build_udp(other, &o));
        }
        ok &= send_frame(fd, frames[i], flen[i]);
    }
    CHECK(ok);

    bool got[N] = {false};
    int n = 0, foreign = 0, mismatch = 0;
    uint64_t deadline = now_ms() + 3000;
    struct kg_packet pkt;
    /* Until every frame arrived, then a little more for anything extra. */
    uint64_t extra_until = 0;
    while (now_ms() < deadline && (!extra_until || now_ms() < extra_until)) {
        int rc = kg_capture_next(c, &pkt, &err);
        CHECK(rc >= 0);
        if (rc < 0) break;
        if (rc == 0) continue;
        uint32_t seq, flow;
        if (!parse_test_frame(&pkt, &seq, &flow) || seq >= N || got[seq]) {
            foreign++;
            continue;
        }
        got[seq] = true;
        n++;
        if (pkt.caplen != flen[seq] || pkt.wirelen != flen[seq] || pkt.linktype != KG_LINK_ETHERNET ||
            memcmp(pkt.data, frames[seq], flen[seq]) != 0)
            mismatch++;
        if (n == N && !extra_until) extra_until = now_ms() + 300;
    }
    CHECK_EQ_INT(n, N);
    CHECK_EQ_INT(foreign, 0); /* the port-5556 frame was filtered out */
    CHECK_EQ_INT(mismatch, 0);
    struct kg_capture_stats st;
    kg_capture_get_stats(c, &st);
    CHECK_EQ_INT(st.packets, N);
    CHECK_EQ_INT(st.kernel_drops, 0);
    CHECK_EQ_INT(st.iface_drops, 0);
    CHECK(st.kernel_recv >= (uint64_t)N);
    uint64_t bytes = 0;
    for (int i = 0; i < N; i++)
        bytes += flen[i];
    CHECK_EQ_INT(st.bytes, bytes);

    /* snaplen 128: long frames cut, wire length kept. */
    if (cut) {
        int m = 0, bad = 0;
        deadline = now_ms() + 3000;
        while (m < N && now_ms() < deadline) {
            int rc = kg_capture_next(cut, &pkt, &err);
            if (rc < 0) break;
            if (rc == 0) continue;
            uint32_t seq, flow;
            if (!parse_test_frame(&pkt, &seq, &flow) || seq >= N) continue;
            m++;
            if (pkt.caplen != KG_MIN(flen[seq], 128) || pkt.wirelen != flen[seq] ||
                memcmp(pkt.data, frames[seq], pkt.caplen) != 0)
                bad++;
        }
        CHECK_EQ_INT(m, N);
        CHECK_EQ_INT(bad, 0);
        kg_capture_free(cut);
    }
    kg_capture_free(c);
}

struct breaker {
    struct kg_capture *c;
    int delay_ms;
};

static void *break_later(void *arg)
{
    struct breaker *b = arg;
    struct timespec ts = {b->delay_ms / 1000, (long)(b->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kg_capture_break(b->c);
    return NULL;
}

static void test_live_timeout_and_break(void)
{
    struct kg_err err = {{0}};
    struct kg_packet pkt;
    /* Nothing matches: next() returns 0 once per timeout. */
    struct kg_capture *c = open_live(if_cap, "udp port 1", 100, -1, 0, &err);
    CHECK(c != NULL);
    if (!c) return;
    uint64_t t0 = now_ms();
    int zeros = 0;
    while (now_ms() - t0 < 350) {
        int rc = kg_capture_next(c, &pkt, &err);
        CHECK_EQ_INT(rc, 0);
        if (rc != 0) break;
        zeros++;
    }
    CHECK(zeros >= 1 && zeros <= 5); /* returns on time, and does not spin */
    kg_capture_free(c);

    /* A long timeout; another thread breaks the wait after 200 ms. */
    c = open_live(if_cap, "udp port 1", 10000, -1, 0, &err);
    CHECK(c != NULL);
    if (!c) return;
    struct breaker b = {c, 200};
    pthread_t th;
    pthread_create(&th, NULL, break_later, &b);
    t0 = now_ms();
    int rc;
    do
        rc = kg_capture_next(c, &pkt, &err);
    while (rc == 0 && now_ms() - t0 < 12000);
    uint64_t waited = now_ms() - t0;
    pthread_join(th, NULL);
    CHECK_EQ_INT(rc, KG_ERR_EOF);
    CHECK(waited >= 150 && waited < 2000);
    printf("  break: next() returned after %llu ms\n", (unsigned long long)waited);
    CHECK_EQ_INT(kg_capture_next(c, &pkt, &err), KG_ERR_EOF);
    /* Options are fixed once started. */
    CHECK_EQ_INT(kg_capture_set_filter(c, "tcp"), KG_ERR_INVAL);
    CHECK_EQ_INT(kg_capture_set_snaplen(c, 100), KG_ERR_INVAL);
    kg_capture_free(c);
}

/* Two handles in one fanout group: every frame reaches exactly one, every
 * flow (both directions) stays on one handle, and both get a share. */
static void test_live_fanout(int fd)
{
    struct kg_err err = {{0}};
    int group = (int)((getpid() * 2654435761u) >> 16 & 0xffffu);
    struct kg_capture *h[2];
    h[0] = open_live(if_cap, "udp and net 198.18.0.0/15", 20, group, 0, &err);
    h[1] = open_live(if_cap, "udp and net 198.18.0.0/15", 20, -1, 0, &err);
    CHECK(h[0] && h[1]);
    if (!h[0] || !h[1]) {
        fprintf(stderr, "  %s\n", err.msg);
        kg_capture_free(h[0]);
        kg_capture_free(h[1]);
        return;
    }
    /* The second joins after start: the other way to set it. */
    CHECK_EQ_INT(kg_capture_set_fanout(h[1], (uint16_t)group), 0);

    enum { FLOWS = 128, PER_FLOW = 4 }; /* 2 client->server, 2 server->client */
    enum { TOTAL = FLOWS * PER_FLOW };
    static uint8_t f[256];
    uint32_t seq = 0;
    bool ok = true;
    for (int round = 0; round < PER_FLOW; round++) {
        for (uint32_t fl = 0; fl < FLOWS; fl++) {
            struct frame_spec s = {
                BASE_A + fl % 7, BASE_B + fl / 7, (uint16_t)(20000 + fl), 53, seq++, fl, 40};
            if (round % 2) { /* the reply: addresses and ports swapped */
                uint32_t a = s.saddr;
                s.saddr = s.daddr, s.daddr = a;
                uint16_t p = s.sport;
                s.sport = s.dport, s.dport = p;
            }
            ok &= send_frame(fd, f, build_udp(f, &s));
        }
    }
    CHECK(ok);

    static int owner_of_seq[TOTAL], owner_of_flow[FLOWS];
    for (int i = 0; i < TOTAL; i++)
        owner_of_seq[i] = -1;
    for (int i = 0; i < FLOWS; i++)
        owner_of_flow[i] = -1;
    int received = 0, dup = 0, split = 0, foreign = 0, per[2] = {0, 0};
    uint64_t deadline = now_ms() + 5000, extra_until = 0;
    struct kg_packet pkt;
    while (now_ms() < deadline && (!extra_until || now_ms() < extra_until)) {
        for (int k = 0; k < 2; k++) {
            int rc;
            while ((rc = kg_capture_next(h[k], &pkt, &err)) == 1) {
                uint32_t sq, fl;
                if (!parse_test_frame(&pkt, &sq, &fl) || sq >= TOTAL || fl >= FLOWS) {
                    foreign++;
                    continue;
                }
                per[k]++;
                if (owner_of_seq[sq] >= 0)
                    dup++;
                else
                    received++;
                owner_of_seq[sq] = k;
                if (owner_of_flow[fl] < 0)
                    owner_of_flow[fl] = k;
                else if (owner_of_flow[fl] != k)
                    split++;
            }
            CHECK(rc == 0);
        }
        if (received == TOTAL && !extra_until) extra_until = now_ms() + 200;
    }
    CHECK_EQ_INT(received, TOTAL); /* union: everything */
    CHECK_EQ_INT(dup, 0);          /* disjoint */
    CHECK_EQ_INT(split, 0);        /* a flow, both directions, on one handle */
    CHECK_EQ_INT(foreign, 0);
    CHECK(per[0] > 0 && per[1] > 0);
    printf("  fanout: %d frames of %d flows: %d + %d\n", TOTAL, FLOWS, per[0], per[1]);
    for (int k = 0; k < 2; k++) {
        struct kg_capture_stats st;
        kg_capture_get_stats(h[k], &st);
        CHECK_EQ_INT(st.packets, per[k]);
        CHECK_EQ_INT(st.kernel_drops, 0);
    }

    /* A group id is bound to one interface: joining it from another one
     * fails, and the message says why. */
    struct kg_capture *lo = kg_capture_new("pcap_live", "lo", &err);
    kg_capture_set_fanout(lo, (uint16_t)group);
    kg_capture_set_buffer_size(lo, 1u << 20);
    memset(&err, 0, sizeof(err));
    CHECK_EQ_INT(kg_capture_start(lo, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, "lo: cannot join AF_PACKET fanout group") != NULL);
    CHECK(strstr(err.msg, "Invalid argument") != NULL);
    printf("  fanout clash: %s\n", err.msg);
    kg_capture_free(lo);

    kg_capture_free(h[0]);
    kg_capture_free(h[1]);
}

/* PACKET_FANOUT_FLAG_DEFRAG: two IPv4 fragments of one UDP datagram reach
 * the handle as the reassembled datagram. */
static void test_live_fanout_defrag(int fd)
{
    struct kg_err err = {{0}};
    int group = (int)((getpid() * 2654435761u) >> 16 & 0xffffu) ^ 0x5a5a;
    struct kg_capture *c = open_live(if_cap, "udp or (ip[6:2] & 0x3fff != 0)", 20, group, 0, &err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    /* The whole datagram: 8 + 1992 bytes of UDP. */
    static uint8_t whole[2100], frag[1600];
    struct frame_spec s = {BASE_A, BASE_B, 33333, 7777, 4242, 9, 1992};
    size_t wlen = build_udp(whole, &s);
    const uint8_t *ip = whole + 14;
    size_t ipdata = wlen - 14 - 20; /* 2000 */
    bool ok = true;
    size_t offs[2] = {0, 1480};
    for (int i = 0; i < 2; i++) {
        size_t n = i == 0 ? 1480 : ipdata - 1480;
        memcpy(frag, whole, 14 + 20);
        uint8_t *fip = frag + 14;
        uint16_t tot = (uint16_t)(20 + n);
        fip[2] = (uint8_t)(tot >> 8), fip[3] = (uint8_t)tot;
        uint16_t fo = (uint16_t)(offs[i] / 8) | (i == 0 ? 0x2000 : 0); /* MF on the first */
        fip[6] = (uint8_t)(fo >> 8), fip[7] = (uint8_t)fo;
        fip[10] = fip[11] = 0;
        uint16_t ck = ip_csum(fip, 20);
        fip[10] = (uint8_t)(ck >> 8), fip[11] = (uint8_t)ck;
        memcpy(frag + 34, ip + 20 + offs[i], n);
        ok &= send_frame(fd, frag, 34 + n);
    }
    CHECK(ok);
    struct kg_packet pkt;
    int n = 0, whole_ok = 0;
    uint64_t deadline = now_ms() + 2000;
    while (now_ms() < deadline) {
        int rc = kg_capture_next(c, &pkt, &err);
        if (rc < 0) break;
        if (rc == 0) {
            if (n) break;
            continue;
        }
        n++;
        /* The reassembled datagram: same UDP payload; the IP header is the
         * kernel's rebuild (total length 2020, no fragment bits). */
        if (pkt.caplen == wlen && pkt.wirelen == wlen && memcmp(pkt.data + 34, whole + 34, wlen - 34) == 0 &&
            (pkt.data[14 + 6] & 0x3f) == 0 && pkt.data[14 + 7] == 0)
            whole_ok++;
    }
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(whole_ok, 1);
    printf("  defrag: %d packet(s) delivered for 2 fragments, reassembled %s\n", n, whole_ok ? "yes" : "no");
    kg_capture_free(c);
}

static void test_live_errors(void)
{
    struct kg_err err = {{0}};
    struct kg_capture *c = kg_capture_new("pcap_live", "kgnosuch0", &err);
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_IO);
    CHECK(strstr(err.msg, "kgnosuch0") != NULL);
    printf("  missing interface: %s\n", err.msg);
    kg_capture_free(c);

    c = kg_capture_new("pcap_live", if_cap, &err);
    kg_capture_set_filter(c, "udp prot 53");
    CHECK_EQ_INT(kg_capture_start(c, &err), KG_ERR_INVAL);
    CHECK(strstr(err.msg, "udp prot 53") != NULL);
    CHECK(strstr(err.msg, if_cap) != NULL);
    printf("  bad filter: %s\n", err.msg);
    kg_capture_free(c);
}

/* The interface goes down, comes back, then disappears, under a reading
 * handle: down is quiet (timeouts, no spin on the socket), capture resumes
 * when it is up again (a SPAN port's link flap must not end the capture),
 * and a deleted interface is reported. */
static void test_live_iface_gone(void)
{
    char a[IFNAMSIZ], b[IFNAMSIZ];
    snprintf(a, sizeof(a), "kgt%dx", (int)getpid());
    snprintf(b, sizeof(b), "kgt%dy", (int)getpid());
    if (sh("ip link add %s type veth peer name %s && ip link set %s up && ip link set %s up", a, b, a, b) !=
        0) {
        CHECK(!"cannot make a second veth pair");
        return;
    }
    struct kg_err err = {{0}};
    struct kg_capture *c = open_live(a, "udp port 5555", 50, -1, 0, &err);
    int tx = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(b)};
    CHECK(c != NULL);
    CHECK(tx >= 0 && bind(tx, (struct sockaddr *)&sll, sizeof(sll)) == 0);
    if (c && tx >= 0) {
        struct kg_packet pkt;
        int rc, calls = 0;
        sh("ip link set %s down", a);
        uint64_t t0 = now_ms();
        do {
            rc = kg_capture_next(c, &pkt, &err);
            calls++;
        } while (rc == 0 && now_ms() - t0 < 500);
        CHECK_EQ_INT(rc, 0);
        CHECK(calls <= 15); /* 500 ms of 50 ms timeouts */

        sh("ip link set %s up", a);
        uint8_t f[128];
        struct frame_spec s = {BASE_A, BASE_B, 1234, 5555, 77, 0, 40};
        size_t n = build_udp(f, &s);
        int got = 0;
        t0 = now_ms();
        /* The link takes a moment to come up: resend until one arrives. */
        while (!got && now_ms() - t0 < 3000) {
            send(tx, f, n, 0);
            rc = kg_capture_next(c, &pkt, &err);
            if (rc == 1 && pkt.caplen == n && memcmp(pkt.data, f, n) == 0) got = 1;
            CHECK(rc >= 0);
            if (rc < 0) break;
        }
        CHECK_EQ_INT(got, 1);

        sh("ip link del %s", a);
        t0 = now_ms();
        calls = 0;
        do {
            rc = kg_capture_next(c, &pkt, &err);
            calls++;
        } while (rc >= 0 && now_ms() - t0 < 1000);
        CHECK_EQ_INT(rc, KG_ERR_IO);
        CHECK(strstr(err.msg, a) != NULL);
        printf("  link down: quiet; up again: capturing; deleted: %s\n", err.msg);
    }
    if (tx >= 0) close(tx);
    kg_capture_free(c);
    sh("ip link del %s 2>/dev/null", a);
}

/* Returns true when the live tests ran. */
static bool run_live(void)
{
    if (!live_setup()) return false;
    int fd = open_sender();
    CHECK(fd >= 0);
    if (fd >= 0) {
        KG_TEST_RUN(test_live_errors);
        /* The tests take the sender as an argument: wrap them. */
        int before = kg_test_failed;
        test_live_filter(fd);
        printf("%s test_live_filter\n", kg_test_failed == before ? "ok  " : "FAIL");
        KG_TEST_RUN(test_live_timeout_and_break);
        before = kg_test_failed;
        test_live_fanout(fd);
        printf("%s test_live_fanout\n", kg_test_failed == before ? "ok  " : "FAIL");
        before = kg_test_failed;
        test_live_fanout_defrag(fd);
        printf("%s test_live_fanout_defrag\n", kg_test_failed == before ? "ok  " : "FAIL");
        KG_TEST_RUN(test_live_iface_gone);
        close(fd);
    }
    live_cleanup();
    return true;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines interleave with stderr in ctest logs */
    make_tmpdir();
    KG_TEST_RUN(test_pcap_files);
    KG_TEST_RUN(test_pcapng_files);
    KG_TEST_RUN(test_truncated);
    KG_TEST_RUN(test_not_a_capture);
    KG_TEST_RUN(test_missing_file);
    KG_TEST_RUN(test_api_misuse);
    bool live = run_live();
    sh("rm -rf '%s'", tmpdir);
    if (!live && !kg_test_failed) {
        printf("%d passed, 0 failed (live tests skipped)\n", kg_test_passed);
        return 77;
    }
    KG_TEST_MAIN_END();
}
