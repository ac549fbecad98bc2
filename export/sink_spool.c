/*
 * export/sink_spool.c — the disk spool of a Redis sink: an append-only,
 * at-least-once queue of events in segment files under one directory.
 *
 * Layout of DIR:
 *   lock                  flock()ed while a sink uses the spool
 *   0000000000000007.kgspool   segments, named by a hex sequence number;
 *                         replayed in that order, oldest first
 *   ack                   where delivery got to (segment, offset), so a
 *                         restart does not resend what was confirmed
 *
 * A segment starts with a 16-byte header: "KGSPOOL1", version (u32 LE, 1),
 * CRC32C of the 12 bytes before it (u32 LE). Records follow, back to back:
 *
 *   a5 4b 47 52  sync marker ("\xa5KGR")
 *   u32 LE       payload length n (1 .. 512 MiB)
 *   u32 LE       CRC32C over the 4 length bytes and the payload
 *   n bytes      the event (JSON, no newline)
 *
 * The sync marker is what makes recovery possible after damage: a reader
 * that meets a record it cannot validate (bad marker, impossible length,
 * CRC mismatch, cut short) searches forward for the next marker whose
 * record validates, so every intact record of a damaged or truncated
 * segment is still replayed. What was skipped is counted and logged with
 * the file name and offsets when the spool is opened (a damaged region
 * counts as one record: how many events it held cannot be known).
 *
 * Writing: records go to the newest segment (the tail) through a 64 KiB
 * buffer; the tail is closed at seg_max bytes (an eighth of the spool,
 * 64 KiB .. 16 MiB) and a new one started. A failed write (disk full) is
 * cut back with ftruncate() so a segment never holds a torn record in the
 * middle; the records of that write are lost and counted. fsync policy:
 * always (fdatasync after every record), batch (at every kg_spool_sync(),
 * i.e. every sink flush, and when a segment is closed), never.
 *
 * Reading and removal: records are read in order from the oldest segment;
 * the reader loads a whole segment (at most seg_max bytes, more only for a
 * record larger than that) and, for the tail, whatever was appended since.
 * A record counts as removed once acknowledged (kg_spool_ack(): its Redis
 * reply arrived); a segment whose records are all acknowledged is deleted.
 * The ack position is saved in `ack` (at most once a second, and at close)
 * so that a restart resumes after the last confirmed record; a crash
 * between two saves replays a little again (at least once).
 *
 * A spool never appends to a segment of an earlier run: a new run starts a
 * new tail, so "old" (recovered) and new records are told apart by segment.
 *
 * Threads: one owner thread (the export thread). Owns its descriptors and
 * buffers.
 */
#include "export/export_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_HDR 16u
#define SPOOL_REC_HDR 12u
#define SPOOL_MAX_RECORD (512u * 1024u * 1024u)
#define SPOOL_WBUF (64u * 1024u)
#define SPOOL_SEG_MIN (64u * 1024u)
#define SPOOL_SEG_MAX (16u * 1024u * 1024u)
#define SPOOL_ACK_LEN 28u
#define SPOOL_ACK_EVERY_NS 1000000000ull

static const char SEG_MAGIC[8] = {'K', 'G', 'S', 'P', 'O', 'O', 'L', '1'};
static const char ACK_MAGIC[8] = {'K', 'G', 'S', 'P', 'A', 'C', 'K', '1'};
static const unsigned char SYNC[4] = {0xa5, 'K', 'G', 'R'};

/* --- CRC32C ----------------------------------------------------------------------
 *
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as in iSCSI (RFC
 * 3720 appendix B.4), ext4 metadata, LevelDB/RocksDB logs and Kafka record
 * batches. Chosen over zlib's CRC-32 for its better error detection on the
 * record sizes we write (larger minimum Hamming distance) and so as not to
 * take zlib as a dependency for 20 lines. Byte-at-a-time with one 256-entry
 * table: a few hundred MB/s, far above what the spool writes. Check value:
 * CRC32C("123456789") = 0xE3069283.
 */
static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
    0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
    0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
    0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
    0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
    0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
    0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
    0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
    0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
    0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
    0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
    0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
    0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
    0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
    0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
    0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
    0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
    0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
    0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t kg_crc32c(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t c = ~crc;
    while (n--)
        c = crc32c_table[(c ^ *b++) & 0xffu] ^ (c >> 8);
    return ~c;
}

/* --- little-endian helpers ---------------------------------------------------------- */

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const unsigned char *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* --- state ------------------------------------------------------------------------- */

struct seg {
    uint64_t seq;
    uint64_t size;      /* bytes in the file; for the tail, buffered bytes included */
    uint64_t records;   /* records not yet acknowledged */
    uint64_t acked_off; /* records end before this offset are acknowledged */
    bool old;           /* left by an earlier run */
};

struct kg_spool {
    char *dir;
    char *log_name;
    int dirfd, lockfd;
    uint64_t max_bytes, seg_max;
    enum kg_spool_fsync fsync;
    enum kg_spool_full full;

    struct seg *segs; /* oldest first; the last one is the tail when tail_fd >= 0 */
    size_t nsegs, segcap;
    uint64_t next_seq;
    uint64_t total_bytes; /* sum of segs[].size */
    uint64_t records;     /* sum of segs[].records */

    int tail_fd;           /* -1: the next append starts a new segment */
    uint64_t tail_written; /* bytes of the tail on disk */
    struct kg_buf wbuf;    /* appended records not yet written */
    uint64_t wbuf_records;
    bool unsynced;  /* written since the last fdatasync */
    bool dir_dirty; /* segment created or deleted since the last directory fsync */

    /* read cursor: segment index and offset of the next record */
    size_t rseg;
    uint64_t roff;
    struct kg_buf rbuf; /* segs[rseg]'s bytes from offset 0, as far as loaded */
    uint64_t rbuf_seq;  /* UINT64_MAX: rbuf holds nothing */

    /* acknowledged up to (ack_seq, ack_off) */
    uint64_t ack_seq, ack_off;
    bool ack_dirty;
    uint64_t ack_saved_ns;

    struct kg_spool_stats st;
    struct kg_ratelimit rl_io;
};

static void seg_path(const struct kg_spool *sp, uint64_t seq, char *buf, size_t size)
{
    snprintf(buf, size, "%016" PRIx64 ".kgspool", seq);
    (void)sp;
}

/* --- record parsing ------------------------------------------------------------------ */

enum { REC_OK, REC_BAD, REC_SHORT };

/* Validates the record at b[off..len). */
static int parse_at(const unsigned char *b, size_t len, size_t off, uint32_t *plen)
{
    if (len - off < SPOOL_REC_HDR) return REC_SHORT;
    if (memcmp(b + off, SYNC, sizeof(SYNC)) != 0) return REC_BAD;
    const uint32_t n = get_le32(b + off + 4);
    if (n == 0 || n > SPOOL_MAX_RECORD) return REC_BAD;
    if (len - off - SPOOL_REC_HDR < n) return REC_SHORT;
    uint32_t crc = kg_crc32c(0, b + off + 4, 4);
    crc = kg_crc32c(crc, b + off + SPOOL_REC_HDR, n);
    if (crc != get_le32(b + off + 8)) return REC_BAD;
    *plen = n;
    return REC_OK;
}

/* Offset of the next valid record after `off`, or len when there is none. */
static size_t resync(const unsigned char *b, size_t len, size_t off)
{
    size_t at = off + 1;
    while (at < len) {
        const unsigned char *m = memmem(b + at, len - at, SYNC, sizeof(SYNC));
        if (!m) return len;
        at = (size_t)(m - b);
        uint32_t n;
        if (parse_at(b, len, at, &n) == REC_OK) return at;
        at++;
    }
    return len;
}

static bool header_ok(const unsigned char *b, size_t len)
{
    return len >= SPOOL_HDR && memcmp(b, SEG_MAGIC, 8) == 0 && get_le32(b + 8) == 1 &&
           get_le32(b + 12) == kg_crc32c(0, b, 12);
}

/* --- files -------------------------------------------------------------------------- */

/* Reads the file at dirfd/name from `from` to its end, appending to out. */
static int read_file_from(int dirfd, const char *name, uint64_t from, struct kg_buf *out)
{
    const int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > from) {
        const size_t want = (size_t)((uint64_t)st.st_size - from);
        kg_buf_reserve(out, want);
        size_t got = 0;
        while (got < want) {
            const ssize_t n = pread(fd, out->data + out->len + got, want - got, (off_t)(from + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        out->len += got;
    }
    close(fd);
    return 0;
}

static void save_ack(struct kg_spool *sp)
{
    if (!sp->ack_dirty) return;
    sp->ack_dirty = false;
    sp->ack_saved_ns = kg_monotonic_ns();
    if (sp->nsegs == 0) {
        unlinkat(sp->dirfd, "ack", 0);
        return;
    }
    unsigned char b[SPOOL_ACK_LEN];
    memcpy(b, ACK_MAGIC, 8);
    put_le64(b + 8, sp->ack_seq);
    put_le64(b + 16, sp->ack_off);
    put_le32(b + 24, kg_crc32c(0, b, 24));
    /* Written aside and renamed over: a crash leaves the old mark or the
     * new one, never half of each. Not fsynced: a lost mark only means
     * records are sent again. */
    const int fd = openat(sp->dirfd, "ack.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const bool ok = write(fd, b, sizeof(b)) == (ssize_t)sizeof(b);
    close(fd);
    if (ok) renameat(sp->dirfd, "ack.tmp", sp->dirfd, "ack");
}

static bool load_ack(struct kg_spool *sp)
{
    unsigned char b[SPOOL_ACK_LEN];
    const int fd = openat(sp->dirfd, "ack", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    if (n != (ssize_t)sizeof(b) || memcmp(b, ACK_MAGIC, 8) != 0 || get_le32(b + 24) != kg_crc32c(0, b, 24)) {
        kg_log(KG_LOG_WARN, "export/spool", "%s: %s/ack is damaged: ignored (records may be sent again)",
               sp->log_name, sp->dir);
        return false;
    }
    sp->ack_seq = get_le64(b + 8);
    sp->ack_off = get_le64(b + 16);
    return true;
}

static void seg_push(struct kg_spool *sp, const struct seg *s)
{
    if (sp->nsegs == sp->segcap) {
        sp->segcap = sp->segcap ? sp->segcap * 2 : 16;
        sp->segs = kg_xrealloc(sp->segs, sp->segcap * sizeof(*sp->segs));
    }
    sp->segs[sp->nsegs++] = *s;
}

static bool tail_open(const struct kg_spool *sp)
{
    return sp->tail_fd >= 0;
}

static bool is_tail(const struct kg_spool *sp, size_t i)
{
    return tail_open(sp) && i + 1 == sp->nsegs;
}

/* Writes the append buffer to the tail. On failure the tail is cut back to
 * its last good size and the buffered records are dropped (counted). */
static int tail_write_out(struct kg_spool *sp)
{
    if (!tail_open(sp) || sp->wbuf.len == 0) return 0;
    size_t off = 0;
    int e = 0;
    while (off < sp->wbuf.len) {
        const ssize_t n =
            pwrite(sp->tail_fd, sp->wbuf.data + off, sp->wbuf.len - off, (off_t)(sp->tail_written + off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    if (e == 0) {
        sp->tail_written += sp->wbuf.len;
        kg_buf_reset(&sp->wbuf);
        sp->wbuf_records = 0;
        sp->unsynced = true;
        return 0;
    }
    /* Keep the segment whole: drop the part of this write that got in. */
    if (ftruncate(sp->tail_fd, (off_t)sp->tail_written) != 0) {
        /* The reader stops at the torn record and resyncs: still no loss of
         * other records. */
    }
    struct seg *t = &sp->segs[sp->nsegs - 1];
    t->size -= sp->wbuf.len;
    t->records -= sp->wbuf_records;
    sp->total_bytes -= sp->wbuf.len;
    sp->records -= sp->wbuf_records;
    sp->st.io_errors += sp->wbuf_records;
    kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_ERROR, "export/spool",
                       "%s: cannot write to %s: %s; %" PRIu64 " events lost", sp->log_name, sp->dir,
                       strerror(e), sp->wbuf_records);
    kg_buf_reset(&sp->wbuf);
    sp->wbuf_records = 0;
    return KG_ERR_IO;
}

static int tail_sync(struct kg_spool *sp)
{
    int rc = tail_write_out(sp);
    if (sp->fsync != KG_SPOOL_FSYNC_NEVER) {
        if (tail_open(sp) && sp->unsynced && fdatasync(sp->tail_fd) != 0) rc = KG_ERR_IO;
        sp->unsynced = false;
        if (sp->dir_dirty && fsync(sp->dirfd) != 0) rc = KG_ERR_IO;
        sp->dir_dirty = false;
    }
    return rc;
}

/* Closes the tail: the next append starts a new segment. */
static void tail_close(struct kg_spool *sp)
{
    if (!tail_open(sp)) return;
    tail_sync(sp);
    close(sp->tail_fd);
    sp->tail_fd = -1;
    /* A tail left without records (all lost to write errors) is not kept. */
    const struct seg *t = &sp->segs[sp->nsegs - 1];
    if (t->records == 0) {
        char name[32];
        seg_path(sp, t->seq, name, sizeof(name));
        unlinkat(sp->dirfd, name, 0);
        sp->total_bytes -= t->size;
        if (sp->rbuf_seq == t->seq) {
            kg_buf_reset(&sp->rbuf);
            sp->rbuf_seq = UINT64_MAX;
        }
        sp->nsegs--;
        sp->dir_dirty = true;
        if (sp->rseg >= sp->nsegs) {
            sp->rseg = sp->nsegs;
            sp->roff = SPOOL_HDR;
        }
    }
}

static int tail_start(struct kg_spool *sp)
{
    char name[32];
    const uint64_t seq = sp->next_seq++;
    seg_path(sp, seq, name, sizeof(name));
    const int fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_ERROR, "export/spool", "%s: cannot create %s/%s: %s",
                           sp->log_name, sp->dir, name, strerror(errno));
        return KG_ERR_IO;
    }
    unsigned char h[SPOOL_HDR];
    memcpy(h, SEG_MAGIC, 8);
    put_le32(h + 8, 1);
    put_le32(h + 12, kg_crc32c(0, h, 12));
    if (write(fd, h, sizeof(h)) != (ssize_t)sizeof(h)) {
        const int e = errno;
        close(fd);
        unlinkat(sp->dirfd, name, 0);
        kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_ERROR, "export/spool", "%s: cannot write %s/%s: %s",
                           sp->log_name, sp->dir, name, strerror(e));
        return KG_ERR_IO;
    }
    sp->tail_fd = fd;
    sp->tail_written = SPOOL_HDR;
    sp->unsynced = true;
    sp->dir_dirty = true;
    const struct seg s = {.seq = seq, .size = SPOOL_HDR, .records = 0, .acked_off = SPOOL_HDR, .old = false};
    seg_push(sp, &s);
    sp->total_bytes += SPOOL_HDR;
    return 0;
}

/* Deletes segs[0] (fully acknowledged, or dropped). */
static void seg_remove_head(struct kg_spool *sp)
{
    if (sp->nsegs == 0) return;
    if (is_tail(sp, 0)) {
        close(sp->tail_fd);
        sp->tail_fd = -1;
        kg_buf_reset(&sp->wbuf);
        sp->wbuf_records = 0;
        sp->unsynced = false;
    }
    char name[32];
    seg_path(sp, sp->segs[0].seq, name, sizeof(name));
    unlinkat(sp->dirfd, name, 0);
    sp->dir_dirty = true;
    sp->total_bytes -= sp->segs[0].size;
    sp->records -= sp->segs[0].records;
    if (sp->rbuf_seq == sp->segs[0].seq) {
        kg_buf_reset(&sp->rbuf);
        sp->rbuf_seq = UINT64_MAX;
    }
    memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(*sp->segs));
    sp->nsegs--;
    if (sp->rseg > 0) {
        sp->rseg--;
    } else {
        sp->roff = SPOOL_HDR;
    }
    if (sp->nsegs == 0) {
        /* Empty: let the ack file go as well. */
        sp->ack_dirty = true;
        save_ack(sp);
        sp->rseg = 0;
        sp->roff = SPOOL_HDR;
        kg_buf_free(&sp->rbuf);
        kg_buf_init(&sp->rbuf);
    }
}

/* --- open: scan what an earlier run left ------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool parse_seg_name(const char *name, uint64_t *seq)
{
    if (strlen(name) != 16 + 8 || strcmp(name + 16, ".kgspool") != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        const char c = name[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

/* Counts the valid records of one segment from `start`, reporting damage. */
static uint64_t scan_segment(struct kg_spool *sp, const char *name, const struct kg_buf *b, uint64_t start)
{
    const unsigned char *d = (const unsigned char *)b->data;
    const size_t len = b->len;
    size_t off = (size_t)start;
    uint64_t records = 0;
    if (len == 0) return 0; /* created, nothing written: a crash right after */
    if (!header_ok(d, len)) {
        /* Reported as damage at offset 0 by the loop below. */
        kg_log(KG_LOG_WARN, "export/spool", "%s: %s/%s: bad segment header; searching for intact records",
               sp->log_name, sp->dir, name);
        off = 0;
    }
    while (off < len) {
        uint32_t n;
        const int r = parse_at(d, len, off, &n);
        if (r == REC_OK) {
            records++;
            off += SPOOL_REC_HDR + n;
            continue;
        }
        const size_t next = resync(d, len, off);
        sp->st.corrupt++;
        sp->st.corrupt_bytes += next - off;
        if (next == len)
            kg_log(KG_LOG_WARN, "export/spool", "%s: %s/%s: %s record at offset %zu: last %zu bytes skipped",
                   sp->log_name, sp->dir, name, r == REC_SHORT ? "truncated" : "damaged", off, len - off);
        else
            kg_log(KG_LOG_WARN, "export/spool",
                   "%s: %s/%s: damaged data at offset %zu: %zu bytes skipped, intact records resume at %zu",
                   sp->log_name, sp->dir, name, off, next - off, next);
        off = next;
    }
    return records;
}

static int scan_dir(struct kg_spool *sp, struct kg_err *err)
{
    DIR *d = fdopendir(dup(sp->dirfd));
    if (!d) return kg_err_set(err, KG_ERR_IO, "spool %s: cannot list: %s", sp->dir, strerror(errno));
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (!parse_seg_name(de->d_name, &seq)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            seqs = kg_xrealloc(seqs, cap * sizeof(*seqs));
        }
        seqs[n++] = seq;
    }
    closedir(d);
    if (n) qsort(seqs, n, sizeof(*seqs), cmp_u64);

    const bool have_ack = load_ack(sp);
    struct kg_buf b;
    kg_buf_init(&b);
    sp->next_seq = 1;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        seg_path(sp, seqs[i], name, sizeof(name));
        sp->next_seq = seqs[i] + 1;
        if (have_ack && seqs[i] < sp->ack_seq) { /* delivered; its deletion did not happen */
            unlinkat(sp->dirfd, name, 0);
            continue;
        }
        kg_buf_reset(&b);
        if (read_file_from(sp->dirfd, name, 0, &b) != 0) {
            kg_log(KG_LOG_WARN, "export/spool", "%s: cannot read %s/%s: %s: skipped", sp->log_name, sp->dir,
                   name, strerror(errno));
            continue;
        }
        uint64_t start = SPOOL_HDR;
        if (have_ack && seqs[i] == sp->ack_seq && sp->ack_off >= SPOOL_HDR && sp->ack_off <= b.len)
            start = sp->ack_off;
        const uint64_t records = scan_segment(sp, name, &b, start);
        if (records == 0) {
            unlinkat(sp->dirfd, name, 0);
            continue;
        }
        const struct seg s = {
            .seq = seqs[i], .size = b.len, .records = records, .acked_off = start, .old = true};
        seg_push(sp, &s);
        sp->total_bytes += b.len;
        sp->records += records;
        sp->st.recovered += records;
    }
    kg_buf_free(&b);
    free(seqs);
    /* Read cursor: first record not acknowledged. */
    kg_spool_rewind(sp);
    if (sp->nsegs) {
        sp->ack_seq = sp->segs[0].seq;
        sp->ack_off = sp->segs[0].acked_off;
    }
    if (sp->records)
        kg_log(KG_LOG_INFO, "export/spool",
               "%s: %" PRIu64 " events left in %s by an earlier run: replaying first", sp->log_name,
               sp->records, sp->dir);
    return 0;
}

struct kg_spool *kg_spool_open(const struct kg_spool_opts *o, struct kg_err *err)
{
    if (!o->dir || !o->dir[0]) {
        kg_err_set(err, KG_ERR_INVAL, "spool: no directory given");
        return NULL;
    }
    if (o->max_bytes < 2 * SPOOL_SEG_MIN) {
        kg_err_set(err, KG_ERR_INVAL, "spool: spool_max_mb must be at least 1");
        return NULL;
    }
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        kg_err_set(err, KG_ERR_IO, "spool %s: cannot create: %s", o->dir, strerror(errno));
        return NULL;
    }
    const int dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        kg_err_set(err, KG_ERR_IO, "spool %s: cannot open: %s", o->dir, strerror(errno));
        return NULL;
    }
    const int lockfd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        kg_err_set(err, KG_ERR_IO, "spool %s: %s", o->dir,
                   lockfd >= 0 && e == EWOULDBLOCK ? "in use by another sink or process" : strerror(e));
        if (lockfd >= 0) close(lockfd);
        close(dirfd);
        return NULL;
    }
    struct kg_spool *sp = kg_xcalloc(1, sizeof(*sp));
    sp->dir = kg_xstrdup(o->dir);
    sp->log_name = kg_xstrdup(o->log_name ? o->log_name : o->dir);
    sp->dirfd = dirfd;
    sp->lockfd = lockfd;
    sp->max_bytes = o->max_bytes;
    sp->seg_max = KG_MIN(KG_MAX(o->max_bytes / 8, (uint64_t)SPOOL_SEG_MIN), (uint64_t)SPOOL_SEG_MAX);
    sp->fsync = o->fsync;
    sp->full = o->full;
    sp->tail_fd = -1;
    sp->rbuf_seq = UINT64_MAX;
    kg_buf_init(&sp->wbuf);
    kg_buf_init(&sp->rbuf);
    if (scan_dir(sp, err) != 0) {
        kg_spool_close(sp);
        return NULL;
    }
    return sp;
}

/* --- append --------------------------------------------------------------------------- */

/* drop_oldest: frees room by deleting the oldest segment. */
static bool drop_oldest_segment(struct kg_spool *sp)
{
    if (sp->nsegs == 0) return false;
    if (is_tail(sp, 0)) tail_close(sp); /* the only segment: close it so it can go */
    if (sp->nsegs == 0) return true;
    const struct seg *h = &sp->segs[0];
    if (h->old)
        sp->st.dropped_old += h->records;
    else
        sp->st.dropped_new += h->records;
    kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_WARN, "export/spool",
                       "%s: spool %s full (%" PRIu64 " MiB): dropped the oldest %" PRIu64 " events",
                       sp->log_name, sp->dir, sp->max_bytes >> 20, h->records);
    seg_remove_head(sp);
    /* The read cursor restarts at the new oldest record. */
    kg_spool_rewind(sp);
    return true;
}

int kg_spool_append(struct kg_spool *sp, const char *p, size_t n)
{
    const uint64_t rec = SPOOL_REC_HDR + (uint64_t)n;
    if (n == 0 || n > SPOOL_MAX_RECORD || rec + SPOOL_HDR > sp->max_bytes) {
        sp->st.dropped_new++;
        return KG_ERR_FULL;
    }
    while (sp->total_bytes + rec + (tail_open(sp) ? 0 : SPOOL_HDR) > sp->max_bytes) {
        if (sp->full == KG_SPOOL_DROP_NEWEST || !drop_oldest_segment(sp)) {
            sp->st.dropped_new++;
            kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_WARN, "export/spool",
                               "%s: spool %s full (%" PRIu64 " MiB): dropping new events", sp->log_name,
                               sp->dir, sp->max_bytes >> 20);
            return KG_ERR_FULL;
        }
    }
    if (!tail_open(sp) && tail_start(sp) != 0) {
        sp->st.io_errors++;
        return KG_ERR_IO;
    }
    unsigned char h[SPOOL_REC_HDR];
    memcpy(h, SYNC, 4);
    put_le32(h + 4, (uint32_t)n);
    put_le32(h + 8, kg_crc32c(kg_crc32c(0, h + 4, 4), p, n));
    kg_buf_reserve(&sp->wbuf, rec);
    kg_buf_append(&sp->wbuf, h, sizeof(h));
    kg_buf_append(&sp->wbuf, p, n);
    sp->wbuf_records++;
    struct seg *t = &sp->segs[sp->nsegs - 1];
    t->size += rec;
    t->records++;
    sp->total_bytes += rec;
    sp->records++;
    int rc = 0;
    if (sp->fsync == KG_SPOOL_FSYNC_ALWAYS)
        rc = tail_sync(sp);
    else if (sp->wbuf.len >= SPOOL_WBUF)
        rc = tail_write_out(sp);
    if (rc == 0 && t->size >= sp->seg_max) tail_close(sp);
    return rc;
}

int kg_spool_sync(struct kg_spool *sp)
{
    const int rc = tail_sync(sp);
    if (sp->ack_dirty && kg_monotonic_ns() - sp->ack_saved_ns >= SPOOL_ACK_EVERY_NS) save_ack(sp);
    return rc;
}

/* --- read and acknowledge ---------------------------------------------------------------- */

/* Makes rbuf hold segs[rseg] up to its current end. */
static int load_read_segment(struct kg_spool *sp)
{
    const struct seg *s = &sp->segs[sp->rseg];
    char name[32];
    seg_path(sp, s->seq, name, sizeof(name));
    if (sp->rbuf_seq != s->seq) {
        kg_buf_reset(&sp->rbuf);
        sp->rbuf_seq = s->seq;
    }
    if (sp->rbuf.len < s->size) {
        /* New bytes: appended since the last load (the tail, or a segment
         * that was the tail then). The reader may have caught up with
         * appends still in the buffer. */
        if (is_tail(sp, sp->rseg)) tail_write_out(sp);
        if (read_file_from(sp->dirfd, name, sp->rbuf.len, &sp->rbuf) != 0) return KG_ERR_IO;
    }
    return 0;
}

int kg_spool_read(struct kg_spool *sp, const char **p, size_t *n, struct kg_spool_pos *pos)
{
    while (sp->rseg < sp->nsegs) {
        const struct seg *s = &sp->segs[sp->rseg];
        if (sp->rbuf_seq != s->seq || sp->roff >= sp->rbuf.len) {
            if (load_read_segment(sp) != 0) {
                kg_log_ratelimited(&sp->rl_io, 10.0, KG_LOG_ERROR, "export/spool",
                                   "%s: cannot read segment %016" PRIx64 " in %s: %s", sp->log_name, s->seq,
                                   sp->dir, strerror(errno));
                return KG_ERR_EOF;
            }
        }
        const unsigned char *d = (const unsigned char *)sp->rbuf.data;
        while (sp->roff < sp->rbuf.len) {
            uint32_t len;
            const int r = parse_at(d, sp->rbuf.len, (size_t)sp->roff, &len);
            if (r == REC_OK) {
                *p = (const char *)d + sp->roff + SPOOL_REC_HDR;
                *n = len;
                sp->roff += SPOOL_REC_HDR + len;
                pos->seq = s->seq;
                pos->off = sp->roff;
                pos->old = s->old;
                return 0;
            }
            /* Damage, reported when the spool was opened: skip it again. */
            sp->roff = resync(d, sp->rbuf.len, (size_t)sp->roff);
        }
        if (is_tail(sp, sp->rseg)) return KG_ERR_EOF; /* caught up with the writer */
        if (sp->rseg + 1 >= sp->nsegs) return KG_ERR_EOF;
        sp->rseg++;
        sp->roff = SPOOL_HDR;
    }
    return KG_ERR_EOF;
}

void kg_spool_ack(struct kg_spool *sp, const struct kg_spool_pos *pos)
{
    size_t i = 0;
    while (i < sp->nsegs && sp->segs[i].seq != pos->seq)
        i++;
    if (i == sp->nsegs) return; /* dropped meanwhile (spool_full) */
    /* A record read twice (the cursor went back after a drop_oldest while
     * it was in flight) is acknowledged once. */
    struct seg *sg = &sp->segs[i];
    if (pos->off <= sg->acked_off) return;
    sg->acked_off = pos->off;
    if (sg->records > 0) {
        sg->records--;
        sp->records--;
    }
    sp->ack_seq = pos->seq;
    sp->ack_off = pos->off;
    sp->ack_dirty = true;
    /* records counts buffered appends too: 0 means all of them were read
     * and acknowledged, so even the tail can go. */
    while (sp->nsegs > 0 && sp->segs[0].records == 0)
        seg_remove_head(sp);
}

void kg_spool_rewind(struct kg_spool *sp)
{
    sp->rseg = 0;
    sp->roff = sp->nsegs ? sp->segs[0].acked_off : SPOOL_HDR;
}

bool kg_spool_empty(const struct kg_spool *sp)
{
    return sp->records == 0;
}

void kg_spool_get_stats(const struct kg_spool *sp, struct kg_spool_stats *out)
{
    *out = sp->st;
    out->records = sp->records;
    out->bytes = sp->total_bytes;
}

void kg_spool_close(struct kg_spool *sp)
{
    if (!sp) return;
    if (sp->dirfd >= 0) {
        tail_sync(sp);
        if (sp->tail_fd >= 0) close(sp->tail_fd);
        save_ack(sp);
        if (sp->fsync != KG_SPOOL_FSYNC_NEVER) fsync(sp->dirfd);
        close(sp->dirfd);
    }
    if (sp->lockfd >= 0) close(sp->lockfd);
    kg_buf_free(&sp->wbuf);
    kg_buf_free(&sp->rbuf);
    free(sp->segs);
    free(sp->dir);
    free(sp->log_name);
    free(sp);
}
