/*
 * tests/unit/test_dissect_tls.c — unit tests for the TLS ClientHello parser
 * (JA3, JA4), the server-certificate locator and QUIC Initial decryption
 * (dissect/dissect_parsers.h; dissect_tls.c, dissect_quic.c).
 *
 * Expected values never come from the code under test:
 *  - QUIC: the RFC 9001 and RFC 9369 Appendix A packets; packets built by
 *    tests/unit/quic_seal.h, itself first checked byte for byte against
 *    the RFC 9001 A.2 packet;
 *  - JA4: the worked example of the FoxIO JA4 specification
 *    (technical_details/JA4.md), other hashes with `openssl sha256`;
 *  - JA3: strings written by hand from the bytes, MD5 with `openssl md5`;
 *    hashes of very long lists with Python's hashlib (noted where used).
 *
 * Hostile-input tests copy bytes into heap blocks of exactly the tested
 * length, so that an out-of-bounds read shows under -DKG_SANITIZE=address.
 * The random loops run KG_RANDOM_ITERS iterations (default 200000) from
 * KG_RANDOM_SEED (default fixed, printed) so a failure can be replayed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"
#include "kg_test.h"
#include "quic_seal.h"

/* ---- helpers --------------------------------------------------------------- */

static uint8_t *dup_exact(const void *src, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        perror("malloc");
        exit(2);
    }
    if (n) memcpy(b, src, n);
    return b;
}

/* Decodes a hex string (whitespace ignored) into out; returns the length. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            if (n >= cap) {
                fprintf(stderr, "unhex: buffer too small\n");
                exit(2);
            }
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

static int parse_hello_exact(const uint8_t *p, size_t len, char transport, struct kg_tls_client_hello *out)
{
    uint8_t *b = dup_exact(p, len);
    int rc = kg_tls_parse_client_hello(b, len, transport, out);
    free(b);
    return rc;
}

static int quic_exact(const uint8_t *p, size_t len, struct kg_quic_crypto *c, uint32_t *version)
{
    uint8_t *b = dup_exact(p, len);
    int rc = kg_quic_parse_initial(b, len, c, version);
    free(b);
    return rc;
}

/* Byte builder with nested length prefixes. */
struct bb {
    uint8_t *b;
    size_t n, cap;
    size_t open[8];
    int width[8];
    int depth;
};

static void bb_init(struct bb *w, size_t cap)
{
    memset(w, 0, sizeof(*w));
    w->b = malloc(cap);
    w->cap = cap;
    if (!w->b) exit(2);
}

static void bb_u8(struct bb *w, unsigned v)
{
    if (w->n >= w->cap) {
        fprintf(stderr, "bb overflow\n");
        exit(2);
    }
    w->b[w->n++] = (uint8_t)v;
}

static void bb_u16(struct bb *w, unsigned v)
{
    bb_u8(w, v >> 8);
    bb_u8(w, v & 0xff);
}

static void bb_u24(struct bb *w, unsigned v)
{
    bb_u8(w, v >> 16);
    bb_u16(w, v & 0xffff);
}

static void bb_bytes(struct bb *w, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bb_u8(w, ((const uint8_t *)p)[i]);
}

/* Opens a length prefix of `width` bytes, filled in by bb_close. */
static void bb_open(struct bb *w, int width)
{
    w->open[w->depth] = w->n;
    w->width[w->depth++] = width;
    for (int i = 0; i < width; i++)
        bb_u8(w, 0);
}

static void bb_close(struct bb *w)
{
    int d = --w->depth;
    size_t at = w->open[d], len = w->n - at - (size_t)w->width[d];
    for (int i = w->width[d] - 1; i >= 0; i--) {
        w->b[at + (size_t)i] = (uint8_t)len;
        len >>= 8;
    }
}

/* ---- the hand-made ClientHello ------------------------------------------------ */

/*
 * A TLS 1.3 ClientHello shaped after the FoxIO JA4 specification's worked
 * example (technical_details/JA4.md): the same 15 cipher suites, the same
 * 16 extensions in the same order and the same signature algorithms, plus
 * GREASE values (RFC 8701) in the cipher, extension, group, signature and
 * version lists that both JA3 and JA4 must ignore. The specification gives
 * JA4 = t13d1516h2_8daaf6152771_e5627efa2ab1 for it.
 */
/* clang-format off */
static const uint8_t k_hello[] = {
    0x01, 0x00, 0x00, 0xee, /* handshake: client_hello, 238 bytes */
    0x03, 0x03,             /* legacy_version: TLS 1.2 */
    /* random: 00 01 .. 1f */
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
    0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x00,       /* legacy_session_id: empty */
    0x00, 0x20, /* cipher_suites: 32 bytes, 16 suites */
    0x0a, 0x0a, /* GREASE */
    0x13, 0x01, 0x13, 0x02, 0x13, 0x03, /* TLS_AES_128_GCM_SHA256, _256_GCM_SHA384, CHACHA20 */
    0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30, /* ECDHE-ECDSA/RSA AES-GCM */
    0xcc, 0xa9, 0xcc, 0xa8,                         /* ECDHE CHACHA20 */
    0xc0, 0x13, 0xc0, 0x14,                         /* ECDHE-RSA AES-CBC */
    0x00, 0x9c, 0x00, 0x9d, 0x00, 0x2f, 0x00, 0x35, /* RSA AES */
    0x01, 0x00,                                     /* compression: null */
    0x00, 0xa5,                                     /* extensions: 165 bytes */
    0x1a, 0x1a, 0x00, 0x00,                         /* GREASE extension, empty */
    0x00, 0x1b, 0x00, 0x03, 0x02, 0x00, 0x02,       /* compress_certificate: brotli */
    0x00, 0x00, 0x00, 0x10, 0x00, 0x0e, 0x00, 0x00, 0x0b, /* server_name: host_name, 11 bytes: */
    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
    0x00, 0x33, 0x00, 0x02, 0x00, 0x00, /* key_share: no client shares */
    0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, /* ALPN: list of 12 bytes */
    0x02, 'h', '2', 0x08, 'h', 't', 't', 'p', '/', '1', '.', '1',
    0x44, 0x69, 0x00, 0x05, 0x00, 0x03, 0x02, 'h', '2', /* application_settings (ALPS): h2 */
    0x00, 0x17, 0x00, 0x00,                             /* extended_master_secret */
    0x00, 0x2d, 0x00, 0x02, 0x01, 0x01,                 /* psk_key_exchange_modes: psk_dhe_ke */
    0x00, 0x0d, 0x00, 0x14, 0x00, 0x12,                 /* signature_algorithms: 9 */
    0x2a, 0x2a,                                         /* GREASE */
    0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x08, 0x05, 0x05, 0x01, 0x08, 0x06, 0x06, 0x01,
    0x00, 0x05, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00,       /* status_request: OCSP */
    0x00, 0x23, 0x00, 0x00,                                     /* session_ticket */
    0x00, 0x12, 0x00, 0x00,                                     /* signed_certificate_timestamp */
    0x00, 0x2b, 0x00, 0x07, 0x06, 0x3a, 0x3a, 0x03, 0x04, 0x03, 0x03, /* supported_versions:
                                                                        GREASE, 1.3, 1.2 */
    0xff, 0x01, 0x00, 0x01, 0x00,                                     /* renegotiation_info */
    0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,                               /* ec_point_formats: uncompressed */
    0x00, 0x0a, 0x00, 0x0a, 0x00, 0x08, 0x4a, 0x4a, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, /* groups: GREASE,
                                                                        x25519, secp256r1, secp384r1 */
    0x00, 0x15, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, /* padding: 5 bytes */
    0xfa, 0xfa, 0x00, 0x01, 0x00,                         /* GREASE extension, 1 byte */
};
/* clang-format on */

/* JA3 string of k_hello, written from the bytes above (GREASE removed).
 * MD5 from: printf %s '<string>' | openssl md5 */
#define K_HELLO_JA3_STR                                                                                      \
    "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"                      \
    "27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0"
#define K_HELLO_JA3 "c000e2caf3a25423f9de6c8a4b12a975"
/* From the FoxIO specification's example (and checked with openssl sha256). */
#define K_HELLO_JA4 "t13d1516h2_8daaf6152771_e5627efa2ab1"

/* The extensions of k_hello as a table, to rebuild variants of it. */
struct ext {
    uint16_t type;
    const char *data; /* raw bytes */
    size_t len;
};
/* clang-format off */
#define EXT(t, s) {t, s, sizeof(s) - 1}
static const struct ext k_exts[] = {
    EXT(0x1a1a, ""),
    EXT(0x001b, "\x02\x00\x02"),
    EXT(0x0000, "\x00\x0e\x00\x00\x0b" "example.com"),
    EXT(0x0033, "\x00\x00"),
    EXT(0x0010, "\x00\x0c\x02h2\x08http/1.1"),
    EXT(0x4469, "\x00\x03\x02h2"),
    EXT(0x0017, ""),
    EXT(0x002d, "\x01\x01"),
    EXT(0x000d, "\x00\x12\x2a\x2a\x04\x03\x08\x04\x04\x01\x05\x03\x08\x05\x05\x01\x08\x06\x06\x01"),
    EXT(0x0005, "\x01\x00\x00\x00\x00"),
    EXT(0x0023, ""),
    EXT(0x0012, ""),
    EXT(0x002b, "\x06\x3a\x3a\x03\x04\x03\x03"),
    EXT(0xff01, "\x00"),
    EXT(0x000b, "\x01\x00"),
    EXT(0x000a, "\x00\x08\x4a\x4a\x00\x1d\x00\x17\x00\x18"),
    EXT(0x0015, "\x00\x00\x00\x00\x00"),
    EXT(0xfafa, "\x00"),
};
/* clang-format on */
static const uint16_t k_ciphers[] = {0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030,
                                     0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};

struct hello_opts {
    bool dtls;
    uint16_t version;
    const uint16_t *ciphers;
    size_t nciphers;
    bool no_ext_block;
    const struct ext *exts;
    size_t nexts;
    /* overrides: replace the data of one extension type, or drop it */
    int replace_type;
    const char *replace_data;
    size_t replace_len;
    int drop_type;
    size_t padding_len; /* data length of the padding extension 0x0015, when replaced */
};

/* Builds a ClientHello (TLS or DTLS handshake framing) into w. */
static void build_hello(struct bb *w, const struct hello_opts *o)
{
    bb_u8(w, 1);
    size_t len_at = w->n;
    bb_u24(w, 0);
    if (o->dtls) {
        bb_u16(w, 0); /* message_seq */
        bb_u24(w, 0); /* fragment_offset */
        bb_u24(w, 0); /* fragment_length: filled below */
    }
    size_t body = w->n;
    bb_u16(w, o->version);
    for (int i = 0; i < 32; i++)
        bb_u8(w, (unsigned)i);
    bb_u8(w, 0); /* session id */
    if (o->dtls) {
        bb_u8(w, 16);
        for (int i = 0; i < 16; i++)
            bb_u8(w, 0xcc);
    }
    bb_open(w, 2);
    for (size_t i = 0; i < o->nciphers; i++)
        bb_u16(w, o->ciphers[i]);
    bb_close(w);
    bb_u8(w, 1);
    bb_u8(w, 0);
    if (!o->no_ext_block) {
        bb_open(w, 2);
        for (size_t i = 0; i < o->nexts; i++) {
            const struct ext *e = &o->exts[i];
            if ((int)e->type == o->drop_type) continue;
            bb_u16(w, e->type);
            bb_open(w, 2);
            if ((int)e->type == o->replace_type) {
                bb_bytes(w, o->replace_data, o->replace_len);
            } else if (e->type == 0x0015 && o->padding_len) {
                for (size_t k = 0; k < o->padding_len; k++)
                    bb_u8(w, 0);
            } else {
                bb_bytes(w, e->data, e->len);
            }
            bb_close(w);
        }
        bb_close(w);
    }
    size_t blen = w->n - body;
    w->b[len_at] = (uint8_t)(blen >> 16);
    w->b[len_at + 1] = (uint8_t)(blen >> 8);
    w->b[len_at + 2] = (uint8_t)blen;
    if (o->dtls) {
        w->b[len_at + 8] = (uint8_t)(blen >> 16);
        w->b[len_at + 9] = (uint8_t)(blen >> 8);
        w->b[len_at + 10] = (uint8_t)blen;
    }
}

static struct hello_opts spec_opts(void)
{
    struct hello_opts o;
    memset(&o, 0, sizeof(o));
    o.version = 0x0303;
    o.ciphers = k_ciphers;
    o.nciphers = KG_ARRAY_LEN(k_ciphers);
    o.exts = k_exts;
    o.nexts = KG_ARRAY_LEN(k_exts);
    o.replace_type = -1;
    o.drop_type = -1;
    return o;
}

/* ---- TLS ClientHello ------------------------------------------------------------ */

static void test_tls_spec_example(void)
{
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(parse_hello_exact(k_hello, sizeof(k_hello), 't', &h), 0);
    CHECK_EQ_STR(h.sni, "example.com");
    CHECK_EQ_STR(h.alpn, "h2");
    CHECK_EQ_INT(h.legacy_version, 0x0303);
    CHECK_EQ_INT(h.max_version, 0x0304);
    CHECK_EQ_STR(h.ja3_full, K_HELLO_JA3_STR);
    CHECK(!h.ja3_full_truncated);
    CHECK_EQ_STR(h.ja3, K_HELLO_JA3);
    CHECK_EQ_STR(h.ja4, K_HELLO_JA4);

    /* Same hello over QUIC: only the first character changes. */
    CHECK_EQ_INT(parse_hello_exact(k_hello, sizeof(k_hello), 'q', &h), 0);
    CHECK_EQ_STR(h.ja4, "q13d1516h2_8daaf6152771_e5627efa2ab1");
    CHECK_EQ_STR(h.ja3, K_HELLO_JA3);

    /* The table-driven builder reproduces the literal bytes. */
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    build_hello(&w, &o);
    CHECK_EQ_INT(w.n, sizeof(k_hello));
    CHECK(w.n == sizeof(k_hello) && memcmp(w.b, k_hello, w.n) == 0);
    free(w.b);

    /* Bytes after the message (the next handshake message) are ignored. */
    uint8_t more[sizeof(k_hello) + 7];
    memcpy(more, k_hello, sizeof(k_hello));
    memset(more + sizeof(k_hello), 0x0e, 7);
    CHECK_EQ_INT(parse_hello_exact(more, sizeof(more), 't', &h), 0);
    CHECK_EQ_STR(h.ja4, K_HELLO_JA4);
}

static void test_tls_empty_sigalgs(void)
{
    /* signature_algorithms present with an empty list: the extension still
     * counts, and part c has no '_' — the specification's second example
     * ("0005,...,ff01" = 6d807ffa2a79). */
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    o.replace_type = 0x000d;
    o.replace_data = "\x00\x00";
    o.replace_len = 2;
    build_hello(&w, &o);
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja4, "t13d1516h2_8daaf6152771_6d807ffa2a79");
    free(w.b);

    /* Without SNI: 'i', one extension fewer, same part c. */
    bb_init(&w, 4096);
    o = spec_opts();
    o.drop_type = 0x0000;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.sni, "");
    CHECK_EQ_STR(h.ja4, "t13i1515h2_8daaf6152771_e5627efa2ab1");
    free(w.b);
}

static void test_tls_legacy_no_extensions(void)
{
    /* TLS 1.0 hello without an extension block (RFC 5246 7.4.1.2 allows it).
     *   JA3 "769,47-53-10,,,"         -> openssl md5: 7bc4acc37e8095387bed8c0b30a6081a
     *   JA4 b "000a,002f,0035"        -> openssl sha256: 5704bdfc91c6... */
    static const uint16_t ciphers[] = {0x002f, 0x0035, 0x000a};
    struct bb w;
    bb_init(&w, 1024);
    struct hello_opts o = spec_opts();
    o.version = 0x0301;
    o.ciphers = ciphers;
    o.nciphers = 3;
    o.no_ext_block = true;
    build_hello(&w, &o);
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3_full, "769,47-53-10,,,");
    CHECK_EQ_STR(h.ja3, "7bc4acc37e8095387bed8c0b30a6081a");
    CHECK_EQ_STR(h.ja4, "t10i030000_5704bdfc91c6_000000000000");
    CHECK_EQ_STR(h.sni, "");
    CHECK_EQ_STR(h.alpn, "");
    CHECK_EQ_INT(h.max_version, 0x0301);
    free(w.b);

    /* An empty extension block is the same thing for both fingerprints. */
    bb_init(&w, 1024);
    o.no_ext_block = false;
    o.nexts = 0;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3_full, "769,47-53-10,,,");
    CHECK_EQ_STR(h.ja4, "t10i030000_5704bdfc91c6_000000000000");
    free(w.b);

    /* No cipher suites at all: part b is twelve zeros. */
    bb_init(&w, 1024);
    o.nciphers = 0;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3_full, "769,,,,");
    CHECK_EQ_STR(h.ja4, "t10i000000_000000000000_000000000000");
    free(w.b);
}

static void alpn_case(const char *alpn_ext, size_t alpn_ext_len, const char *want2, const char *want_alpn)
{
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    if (alpn_ext) {
        o.replace_type = 0x0010;
        o.replace_data = alpn_ext;
        o.replace_len = alpn_ext_len;
    } else {
        o.drop_type = 0x0010;
    }
    build_hello(&w, &o);
    struct kg_tls_client_hello h;
    int rc = parse_hello_exact(w.b, w.n, 't', &h);
    CHECK_EQ_INT(rc, 0);
    char got[3] = {h.ja4[8], h.ja4[9], 0};
    if (strcmp(got, want2) != 0) fprintf(stderr, "  alpn case %s: got %s\n", want2, got);
    CHECK_EQ_STR(got, want2);
    if (want_alpn) CHECK_EQ_STR(h.alpn, want_alpn);
    free(w.b);
}

static void test_tls_alpn_rules(void)
{
    /* FoxIO JA4 "ALPN Extension Value": first and last characters of the
     * first value; hex of the value's ends if either end byte is not ASCII
     * alphanumeric; "00" when there is none. The hex cases are the
     * specification's own examples. */
    alpn_case("\x00\x09\x08http/1.1", 11, "h1", "http/1.1");
    alpn_case("\x00\x02\x01h", 4, "hh", "h");
    alpn_case("\x00\x02\x01\xab", 4, "ab", NULL);
    alpn_case("\x00\x03\x02\xab\xcd", 5, "ad", NULL);
    alpn_case("\x00\x03\x02\x30\xab", 5, "3b", NULL);
    alpn_case("\x00\x05\x04\x30\x31\xab\xcd", 7, "3d", NULL);
    alpn_case("\x00\x05\x04\x30\xab\xcd\x31", 7, "01", NULL);
    alpn_case("\x00\x04\x03h3-", 6, "6d",
              "h3-");                       /* '-' (0x2d) is not alphanumeric: 0x68.. -> 6, ..0x2d -> d */
    alpn_case("\x00\x01\x00", 3, "00", ""); /* empty first value */
    alpn_case("\x00\x00", 2, "00", "");     /* empty list */
    alpn_case(NULL, 0, "00", "");           /* no ALPN extension */
    /* Only the first value counts. */
    alpn_case("\x00\x0c\x08http/1.1\x02h2", 14, "h1", "http/1.1");
}

static void version_case(uint16_t legacy, const char *sv, size_t sv_len, const char *want2, uint16_t want_max)
{
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    o.version = legacy;
    if (sv) {
        o.replace_type = 0x002b;
        o.replace_data = sv;
        o.replace_len = sv_len;
    } else {
        o.drop_type = 0x002b;
    }
    build_hello(&w, &o);
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    char got[3] = {h.ja4[1], h.ja4[2], 0};
    CHECK_EQ_STR(got, want2);
    CHECK_EQ_INT(h.max_version, want_max);
    CHECK_EQ_INT(h.legacy_version, legacy);
    free(w.b);
}

static void test_tls_versions(void)
{
    version_case(0x0303, NULL, 0, "12", 0x0303);
    version_case(0x0302, NULL, 0, "11", 0x0302);
    version_case(0x0301, NULL, 0, "10", 0x0301);
    version_case(0x0300, NULL, 0, "s3", 0x0300);
    version_case(0x0305, NULL, 0, "00", 0x0305);
    /* supported_versions wins over legacy_version; newest entry counts,
     * whatever its position. */
    version_case(0x0303, "\x04\x03\x03\x03\x04", 5, "13", 0x0304);
    version_case(0x0301, "\x02\x00\x02", 3, "s2", 0x0002);
    /* GREASE only: falls back to legacy_version. */
    version_case(0x0303, "\x02\x8a\x8a", 3, "12", 0x0303);
    /* TLS 1.3 draft 28 (0x7f1c) is the newest entry and has no JA4 code. */
    version_case(0x0303, "\x04\x7f\x1c\x03\x03", 5, "00", 0x7f1c);
    /* Odd list length: the last byte is ignored. */
    version_case(0x0303, "\x03\x03\x04\x03", 4, "13", 0x0304);
}

static void test_tls_dtls(void)
{
    /* DTLS 1.2 hello (12-byte handshake header, 16-byte cookie) with
     * supported_versions {DTLS 1.3, DTLS 1.2}: DTLS versions count down, the
     * newest is 0xfefc = "d3".
     *   JA3 "65277,49195-49199-156,43-10-13,29,"  -> md5 2827fd0ce49ae46d0403a46f8513743e
     *   b "009c,c02b,c02f"                        -> sha256 b80a1783d7a2...
     *   c "000a,000d,002b_0403,0804"              -> sha256 fbabbea27ee8...
     * Without supported_versions: "d2", JA3 e45e174da140d922d51551407ca36aaf,
     *   c "000a,000d_0403,0804"                   -> sha256 4e0be11b965e... */
    static const uint16_t ciphers[] = {0xc02b, 0xc02f, 0x009c};
    static const struct ext exts[] = {
        EXT(0x002b, "\x04\xfe\xfc\xfe\xfd"),
        EXT(0x000a, "\x00\x02\x00\x1d"),
        EXT(0x000d, "\x00\x04\x04\x03\x08\x04"),
    };
    struct bb w;
    bb_init(&w, 1024);
    struct hello_opts o = spec_opts();
    o.dtls = true;
    o.version = 0xfefd;
    o.ciphers = ciphers;
    o.nciphers = 3;
    o.exts = exts;
    o.nexts = 3;
    build_hello(&w, &o);
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 'd', &h), 0);
    CHECK_EQ_STR(h.ja3_full, "65277,49195-49199-156,43-10-13,29,");
    CHECK_EQ_STR(h.ja3, "2827fd0ce49ae46d0403a46f8513743e");
    CHECK_EQ_STR(h.ja4, "dd3i030300_b80a1783d7a2_fbabbea27ee8");
    CHECK_EQ_INT(h.max_version, 0xfefc);

    /* A fragment of a larger message cannot be fingerprinted. */
    uint8_t *frag = dup_exact(w.b, w.n);
    frag[11] ^= 1; /* fragment_length != length */
    CHECK_EQ_INT(kg_tls_parse_client_hello(frag, w.n, 'd', &h), -1);
    memcpy(frag, w.b, w.n);
    frag[8] = 1; /* fragment_offset != 0 */
    CHECK_EQ_INT(kg_tls_parse_client_hello(frag, w.n, 'd', &h), -1);
    free(frag);
    free(w.b);

    bb_init(&w, 1024);
    o.drop_type = 0x002b;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 'd', &h), 0);
    CHECK_EQ_STR(h.ja3, "e45e174da140d922d51551407ca36aaf");
    CHECK_EQ_STR(h.ja4, "dd2i030200_b80a1783d7a2_4e0be11b965e");
    free(w.b);
}

static void test_tls_long_lists(void)
{
    /*
     * Very long lists, as in nDPI's ja3_lots_of_cipher_suites capture but
     * longer. Cipher i is ((i % 1500) * 40503 + 1) & 0xffff: 1000 distinct
     * values, or for 3000 suites every value twice (two of them are GREASE
     * values: 2998 kept, above the 2048 sorted at once on the stack, so
     * the list is sorted in runs of high bytes). The second hello also carries 150 empty extensions of
     * types 0x1000 + 3i. Expected values from Python's hashlib over the
     * same definitions (hashlib.md5 of the JA3 string; sha256 of the sorted
     * 4-digit hex lists):
     *   1000 suites: JA3 MD5 2989601438cd8f41ae63cd5be3b19cb9 (5828-char string),
     *                JA4 t12i990000_f5419f4e8749_000000000000
     *   3000 suites + 150 ext: JA3 MD5 31a2662a8fc76988526e84ad231ee6ea (18209 chars),
     *                JA4 t12i999900_d352919aa1e9_078e38b5a75a
     */
    static uint16_t ciphers[3000];
    static struct ext exts[150];
    static char empty[1];
    for (size_t i = 0; i < 3000; i++)
        ciphers[i] = (uint16_t)(((i % 1500) * 40503 + 1) & 0xffff);
    for (size_t i = 0; i < 150; i++)
        exts[i] = (struct ext){(uint16_t)(0x1000 + 3 * i), empty, 0};

    struct kg_tls_client_hello h;
    struct bb w;
    bb_init(&w, 16384);
    struct hello_opts o = spec_opts();
    o.ciphers = ciphers;
    o.nciphers = 1000;
    o.no_ext_block = true;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3, "2989601438cd8f41ae63cd5be3b19cb9");
    CHECK_EQ_STR(h.ja4, "t12i990000_f5419f4e8749_000000000000");
    CHECK(h.ja3_full_truncated);
    CHECK_EQ_INT(strlen(h.ja3_full), sizeof(h.ja3_full) - 1);
    CHECK(strncmp(h.ja3_full, "771,1-40504-15471-55974-30941-5908-46411", 40) == 0);
    free(w.b);

    bb_init(&w, 16384);
    o.nciphers = 3000;
    o.no_ext_block = false;
    o.exts = exts;
    o.nexts = 150;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3, "31a2662a8fc76988526e84ad231ee6ea");
    CHECK_EQ_STR(h.ja4, "t12i999900_d352919aa1e9_078e38b5a75a");
    CHECK(h.ja3_full_truncated);
    free(w.b);

    /* More values under one high byte than the stack array holds: 2100
     * suites 0x13xx (0x1300 | (7i & 0xff)), then 500 as above (i = 2100..
     * 2599). hashlib: JA3 MD5 597745b2d297df2c2b02502dbc7ea03a,
     * JA4 t12i990000_21af2d9febd4_000000000000. */
    for (size_t i = 0; i < 2600; i++)
        ciphers[i] = (uint16_t)(i < 2100 ? (0x1300 | ((i * 7) & 0xff)) : ((i * 40503 + 1) & 0xffff));
    bb_init(&w, 16384);
    o.nciphers = 2600;
    o.no_ext_block = true;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.ja3, "597745b2d297df2c2b02502dbc7ea03a");
    CHECK_EQ_STR(h.ja4, "t12i990000_21af2d9febd4_000000000000");
    free(w.b);
}

static void test_tls_malformed(void)
{
    struct kg_tls_client_hello h;
    /* Every truncation: the message must be whole. */
    int bad = 0;
    for (size_t n = 0; n < sizeof(k_hello); n++) {
        memset(&h, 0x55, sizeof(h));
        if (parse_hello_exact(k_hello, n, 't', &h) != -1) bad++;
        if (h.sni[0] || h.ja4[0] || h.ja3[0]) bad++; /* zeroed on failure */
    }
    CHECK_EQ_INT(bad, 0);

    uint8_t m[sizeof(k_hello)];
    /* Not a ClientHello. */
    memcpy(m, k_hello, sizeof(m));
    m[0] = 2;
    CHECK_EQ_INT(parse_hello_exact(m, sizeof(m), 't', &h), -1);
    /* Odd cipher_suites length: shrink the list by one byte and the
     * message accordingly would shift everything; instead claim 31 bytes. */
    memcpy(m, k_hello, sizeof(m));
    m[4 + 2 + 32 + 1 + 1] = 0x1f;
    CHECK_EQ_INT(parse_hello_exact(m, sizeof(m), 't', &h), -1);
    /* Extension block longer than the message. */
    memcpy(m, k_hello, sizeof(m));
    m[4 + 2 + 32 + 1 + 2 + 32 + 2 + 1] = 0xa6;
    CHECK_EQ_INT(parse_hello_exact(m, sizeof(m), 't', &h), -1);
    /* An extension running past the block. */
    memcpy(m, k_hello, sizeof(m));
    m[sizeof(m) - 2] = 0x02; /* last GREASE extension claims 2 bytes, has 1 */
    CHECK_EQ_INT(parse_hello_exact(m, sizeof(m), 't', &h), -1);
    /* Handshake length beyond the buffer. */
    memcpy(m, k_hello, sizeof(m));
    m[3] = 0xef;
    CHECK_EQ_INT(parse_hello_exact(m, sizeof(m), 't', &h), -1);
    /* Bad transport, NULL arguments. */
    CHECK_EQ_INT(parse_hello_exact(k_hello, sizeof(k_hello), 'x', &h), -1);
    CHECK_EQ_INT(kg_tls_parse_client_hello(NULL, 10, 't', &h), -1);
    CHECK_EQ_INT(kg_tls_parse_client_hello(k_hello, sizeof(k_hello), 't', NULL), -1);
    /* A TLS hello read as DTLS fails cleanly (the header differs). */
    CHECK_EQ_INT(parse_hello_exact(k_hello, sizeof(k_hello), 'd', &h), -1);

    /* Malformed inner lists do not fail the hello: the fingerprint
     * describes what is there. SNI list claiming more than it holds. */
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    o.replace_type = 0x0000;
    o.replace_data = "\x00\x20\x00\x00\x0b"
                     "example.com";
    o.replace_len = 16;
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_STR(h.sni, "");
    CHECK_EQ_INT(h.ja4[3], 'd'); /* the extension is there */
    free(w.b);

    /* A 300-byte host name is truncated to KG_TLS_SNI_MAX - 1. */
    char sni_ext[5 + 300];
    sni_ext[0] = 0x01;
    sni_ext[1] = 0x2f; /* list: 303 bytes */
    sni_ext[2] = 0x00;
    sni_ext[3] = 0x01;
    sni_ext[4] = 0x2c; /* name: 300 bytes */
    memset(sni_ext + 5, 'a', 300);
    bb_init(&w, 4096);
    o = spec_opts();
    o.replace_type = 0x0000;
    o.replace_data = sni_ext;
    o.replace_len = sizeof(sni_ext);
    build_hello(&w, &o);
    CHECK_EQ_INT(parse_hello_exact(w.b, w.n, 't', &h), 0);
    CHECK_EQ_INT(strlen(h.sni), KG_TLS_SNI_MAX - 1);
    free(w.b);
}

/* ---- server certificate ------------------------------------------------------------ */

static void test_find_server_cert(void)
{
    /* ServerHello (dummy body) | Certificate: chain "CERT1", "CERT22" |
     * ServerHelloDone, as handshake messages without record headers. */
    static const uint8_t stream[] = {
        0x02, 0x00, 0x00, 0x04, 0xaa, 0xbb, 0xcc, 0xdd,      /* server_hello, 4 bytes */
        0x0b, 0x00, 0x00, 0x14,                              /* certificate, 20 bytes */
        0x00, 0x00, 0x11,                                    /* certificate_list: 17 bytes */
        0x00, 0x00, 0x05, 'C',  'E',  'R',  'T',  '1',       /* cert 1 */
        0x00, 0x00, 0x06, 'C',  'E',  'R',  'T',  '2',  '2', /* cert 2 */
        0x0e, 0x00, 0x00, 0x00,                              /* server_hello_done */
    };
    const uint8_t *cert = NULL;
    size_t cert_len = 0;
    uint8_t *b = dup_exact(stream, sizeof(stream));
    CHECK_EQ_INT(kg_tls_find_server_cert(b, sizeof(stream), &cert, &cert_len), 1);
    CHECK(cert == b + 18);
    CHECK_EQ_INT(cert_len, 5);
    free(b);

    /* Every prefix: 0 until the first certificate is complete, then 1. */
    int bad = 0;
    for (size_t n = 0; n <= sizeof(stream); n++) {
        b = dup_exact(stream, n);
        int rc = kg_tls_find_server_cert(b, n, &cert, &cert_len);
        int want = n >= 23 ? 1 : 0;
        if (rc != want) {
            fprintf(stderr, "  prefix %zu: rc %d\n", n, rc);
            bad++;
        }
        if (rc == 1 && (cert != b + 18 || cert_len != 5)) bad++;
        free(b);
    }
    CHECK_EQ_INT(bad, 0);

    uint8_t m[sizeof(stream)];
    memcpy(m, stream, sizeof(m));
    m[14] = 0x12; /* list length != message length - 3 */
    CHECK_EQ_INT(kg_tls_find_server_cert(m, sizeof(m), &cert, &cert_len), -1);
    memcpy(m, stream, sizeof(m));
    m[17] = 0x00; /* zero-length certificate */
    CHECK_EQ_INT(kg_tls_find_server_cert(m, sizeof(m), &cert, &cert_len), -1);
    memcpy(m, stream, sizeof(m));
    m[17] = 0x10; /* first certificate longer than the list */
    CHECK_EQ_INT(kg_tls_find_server_cert(m, sizeof(m), &cert, &cert_len), -1);
    memcpy(m, stream, sizeof(m));
    m[0] = 0x99; /* not a handshake type: encrypted or garbage */
    CHECK_EQ_INT(kg_tls_find_server_cert(m, sizeof(m), &cert, &cert_len), -1);
    CHECK(cert == NULL && cert_len == 0);

    /* An empty chain: no certificate. */
    static const uint8_t empty_chain[] = {0x0b, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00};
    CHECK_EQ_INT(kg_tls_find_server_cert(empty_chain, sizeof(empty_chain), &cert, &cert_len), 0);
    /* No Certificate at all, NULL outputs allowed. */
    CHECK_EQ_INT(kg_tls_find_server_cert(stream, 8, NULL, NULL), 0);
    CHECK_EQ_INT(kg_tls_find_server_cert(stream, sizeof(stream), NULL, NULL), 1);
    CHECK_EQ_INT(kg_tls_find_server_cert(NULL, 0, NULL, NULL), 0);
}

/* ---- QUIC: RFC test vectors ------------------------------------------------------------ */

/* RFC 9001 Appendix A.2: the client Initial's unprotected payload begins
 * with this CRYPTO frame (type 06, offset 0, length 0x0f1 = 241), the rest
 * is PADDING up to 1162 bytes. */
static const char k_a2_crypto_frame[] = "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
                                        "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
                                        "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
                                        "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
                                        "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
                                        "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
                                        "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
                                        "75300901100f088394c8f03e51570806048000ffff";

/* RFC 9001 Appendix A.2: the protected client Initial (1200 bytes),
 * DCID 8394c8f03e515708, packet number 2 in 4 bytes. */
static const char k_a2_packet[] = "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
                                  "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
                                  "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
                                  "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
                                  "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
                                  "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
                                  "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
                                  "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
                                  "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
                                  "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
                                  "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
                                  "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
                                  "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
                                  "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
                                  "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
                                  "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
                                  "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
                                  "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
                                  "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
                                  "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
                                  "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
                                  "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
                                  "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
                                  "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
                                  "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
                                  "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
                                  "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
                                  "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
                                  "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
                                  "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
                                  "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
                                  "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
                                  "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
                                  "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
                                  "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
                                  "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
                                  "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
                                  "e221af44860018ab0856972e194cd934";

/* RFC 9001 Appendix A.3: the server Initial (a ServerHello). */
static const char k_a3_packet[] = "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
                                  "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
                                  "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
                                  "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
                                  "2158407dd074ee";

/* RFC 9369 Appendix A.2: the same client Initial protected with QUIC v2. */
static const char k_v2_a2_packet[] = "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
                                     "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
                                     "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
                                     "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
                                     "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
                                     "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
                                     "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
                                     "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
                                     "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
                                     "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
                                     "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
                                     "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
                                     "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
                                     "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
                                     "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
                                     "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
                                     "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
                                     "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
                                     "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
                                     "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
                                     "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
                                     "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
                                     "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
                                     "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
                                     "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
                                     "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
                                     "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
                                     "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
                                     "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
                                     "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
                                     "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
                                     "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
                                     "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
                                     "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
                                     "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
                                     "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
                                     "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
                                     "a18b2faa745b6fe189cf772a9f84cbfc";

/* RFC 9369 Appendix A.3: the v2 server Initial. */
static const char k_v2_a3_packet[] = "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
                                     "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
                                     "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
                                     "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
                                     "4bed8521e2e140";

static const uint8_t k_rfc_dcid[] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};

/* Checks that c holds exactly the RFC's 241-byte ClientHello at offset 0,
 * and that it fingerprints as computed independently (Python over the
 * RFC bytes): JA3 "771,4865-4866,0-65281-10-16-5-51-43-13-45-28-57,29-23-24,"
 * MD5 41bc9ae914d6cb3bd0bd0a5453ab7d7f; JA4 q13d0211an_62ed6f6ca7ad_4d634acda6c0. */
static void check_rfc_client_hello(const struct kg_quic_crypto *c)
{
    uint8_t frame[300];
    size_t n = unhex(k_a2_crypto_frame, frame, sizeof(frame));
    CHECK_EQ_INT(n, 245);
    CHECK_EQ_INT(c->contiguous, 241);
    CHECK(memcmp(c->data, frame + 4, 241) == 0);
    /* First bytes: client_hello, length 0xed, legacy_version 0x0303. */
    CHECK(c->data[0] == 0x01 && c->data[1] == 0x00 && c->data[2] == 0x00 && c->data[3] == 0xed &&
          c->data[4] == 0x03 && c->data[5] == 0x03);

    struct kg_tls_client_hello h;
    CHECK_EQ_INT(kg_tls_parse_client_hello(c->data, c->contiguous, 'q', &h), 0);
    CHECK_EQ_STR(h.sni, "example.com");
    CHECK_EQ_STR(h.alpn, "alpn");
    CHECK_EQ_INT(h.max_version, 0x0304);
    CHECK_EQ_STR(h.ja3_full, "771,4865-4866,0-65281-10-16-5-51-43-13-45-28-57,29-23-24,");
    CHECK_EQ_STR(h.ja3, "41bc9ae914d6cb3bd0bd0a5453ab7d7f");
    CHECK_EQ_STR(h.ja4, "q13d0211an_62ed6f6ca7ad_4d634acda6c0");
}

static void test_quic_rfc9001_client_initial(void)
{
    static uint8_t pkt[1300];
    size_t n = unhex(k_a2_packet, pkt, sizeof(pkt));
    CHECK_EQ_INT(n, 1200);
    static struct kg_quic_crypto c;
    memset(&c, 0, sizeof(c));
    uint32_t ver = 0;
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), 241);
    CHECK_EQ_INT(ver, 1);
    check_rfc_client_hello(&c);

    /* Feeding the same datagram again changes nothing. */
    CHECK_EQ_INT(quic_exact(pkt, n, &c, NULL), 241);
    CHECK_EQ_INT(c.contiguous, 241);
}

static void test_quic_rfc9369_v2_client_initial(void)
{
    static uint8_t pkt[1300];
    size_t n = unhex(k_v2_a2_packet, pkt, sizeof(pkt));
    CHECK_EQ_INT(n, 1200);
    static struct kg_quic_crypto c;
    memset(&c, 0, sizeof(c));
    uint32_t ver = 0;
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), 241);
    CHECK_EQ_INT(ver, 0x6b3343cf);
    check_rfc_client_hello(&c);
}

static void test_quic_server_initial_fails(void)
{
    /* A server's Initial is protected with the "server in" keys: the
     * parser guesses "client", authentication fails, -1, nothing placed. */
    static struct kg_quic_crypto c, zero;
    uint8_t pkt[200];
    uint32_t ver = 0;
    size_t n = unhex(k_a3_packet, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), -1);
    CHECK_EQ_INT(ver, 1);
    CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
    n = unhex(k_v2_a3_packet, pkt, sizeof(pkt));
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), -1);
    CHECK_EQ_INT(ver, 0x6b3343cf);
    CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
}

static void test_quic_tampered(void)
{
    static uint8_t pkt[1300];
    static struct kg_quic_crypto c, zero;
    size_t n = unhex(k_a2_packet, pkt, sizeof(pkt));
    /* One flipped bit anywhere in the header, the ciphertext or the tag:
     * nothing placed. (Offsets 0 and 5: first byte and DCID length; 1..4
     * change the version, which is then unknown: 0, not -1.) */
    static const size_t where[] = {0, 6, 13, 17, 18, 21, 22, 100, 600, 1183, 1184, 1199};
    int bad = 0;
    for (size_t i = 0; i < KG_ARRAY_LEN(where); i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            pkt[where[i]] ^= (uint8_t)(1 << bit);
            memset(&c, 0, sizeof(c));
            int rc = quic_exact(pkt, n, &c, NULL);
            /* The low header-protection bits of byte 0 only select the
             * packet-number length: any change still fails the tag. */
            if (rc != -1 || memcmp(&c, &zero, sizeof(c)) != 0) {
                fprintf(stderr, "  flip at %zu bit %d: rc %d\n", where[i], bit, rc);
                bad++;
            }
            pkt[where[i]] ^= (uint8_t)(1 << bit);
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* Unknown version: not ours to read. */
    pkt[4] = 0x02;
    memset(&c, 0, sizeof(c));
    uint32_t ver = 0;
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), 0);
    CHECK_EQ_INT(ver, 2);
}

static void test_quic_truncated(void)
{
    static uint8_t pkt[1300];
    static struct kg_quic_crypto c, zero;
    size_t n = unhex(k_a2_packet, pkt, sizeof(pkt));
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        memset(&c, 0, sizeof(c));
        int rc = quic_exact(pkt, len, &c, NULL);
        /* 0 bytes: nothing there; anything shorter than the header, or
         * than the packet's Length field says: malformed (-1). */
        int want = len == 0 ? 0 : -1;
        if (rc != want || memcmp(&c, &zero, sizeof(c)) != 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(kg_quic_parse_initial(NULL, 10, &c, NULL), -1);
    CHECK_EQ_INT(kg_quic_parse_initial(pkt, n, NULL, NULL), -1);
}

/* ---- QUIC: built packets -------------------------------------------------------------- */

static void test_quic_seal_matches_rfc(void)
{
    /* The test sealer reproduces RFC 9001 A.2 and RFC 9369 A.2 exactly:
     * header c3 (4-byte packet number 2), Length in 2 bytes, payload = the
     * CRYPTO frame padded with zeros to 1162 bytes. */
    static uint8_t payload[1162], want[1300], got[1400];
    memset(payload, 0, sizeof(payload));
    unhex(k_a2_crypto_frame, payload, sizeof(payload));
    struct qs_params q = {QS_V1, k_rfc_dcid, 8, NULL, 0, NULL, 0, 2, 4, false, 2, -1};
    size_t n = qs_seal(&q, payload, sizeof(payload), got, sizeof(got));
    size_t wn = unhex(k_a2_packet, want, sizeof(want));
    CHECK_EQ_INT(n, wn);
    CHECK(n == wn && memcmp(got, want, n) == 0);

    q.version = QS_V2;
    n = qs_seal(&q, payload, sizeof(payload), got, sizeof(got));
    wn = unhex(k_v2_a2_packet, want, sizeof(want));
    CHECK_EQ_INT(n, wn);
    CHECK(n == wn && memcmp(got, want, n) == 0);
}

/* A ClientHello spanning more than one packet: k_hello's extensions with a
 * 1300-byte padding extension. Its JA3/JA4 are those of k_hello (padding
 * length is not part of either). */
static size_t big_hello(uint8_t *out, size_t cap)
{
    struct bb w;
    bb_init(&w, 4096);
    struct hello_opts o = spec_opts();
    o.padding_len = 1300;
    build_hello(&w, &o);
    size_t n = w.n;
    if (n > cap) exit(2);
    memcpy(out, w.b, n);
    free(w.b);
    return n;
}

static void check_crypto_hello(const struct kg_quic_crypto *c, size_t hello_len, const char *ja4)
{
    CHECK_EQ_INT(c->contiguous, hello_len);
    struct kg_tls_client_hello h;
    CHECK_EQ_INT(kg_tls_parse_client_hello(c->data, c->contiguous, 'q', &h), 0);
    CHECK_EQ_STR(h.sni, "example.com");
    CHECK_EQ_STR(h.ja3, K_HELLO_JA3);
    CHECK_EQ_STR(h.ja4, ja4);
}

static const uint8_t k_dcid[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
static const uint8_t k_scid[] = {0xa1, 0xa2, 0xa3, 0xa4};

static void test_quic_scattered_frames(void)
{
    /* Chrome-style: the ClientHello in five CRYPTO frames, out of order,
     * one overlapping another, with PADDING, PING and both ACK types
     * between them, then PADDING to 1162 bytes. */
    static uint8_t f[1400], pkt[1600];
    static struct kg_quic_crypto c;
    const uint8_t *hl = k_hello;
    size_t n = 0;
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, n, 200, hl + 200, 42); /* [200, 242) */
    n += 3;                                       /* PADDING */
    n = qs_crypto_frame(f, n, 0, hl, 50);         /* [0, 50) */
    f[n++] = 0x01;                                /* PING */
    /* ACK: largest 5, delay 0, 1 extra range, first range 1, gap 0, len 1 */
    static const uint8_t ack[] = {0x02, 0x05, 0x00, 0x01, 0x01, 0x00, 0x01};
    memcpy(f + n, ack, sizeof(ack));
    n += sizeof(ack);
    n = qs_crypto_frame(f, n, 120, hl + 120, 90); /* [120, 210): overlaps the first */
    /* ACK_ECN: largest 3, delay 0x4001 (2-byte varint), 0 ranges, first 0,
     * ECT0 1, ECT1 0, CE 0x3fff (2 bytes) */
    static const uint8_t ack_ecn[] = {0x03, 0x03, 0x40, 0x01, 0x00, 0x00, 0x01, 0x00, 0x7f, 0xff};
    memcpy(f + n, ack_ecn, sizeof(ack_ecn));
    n += sizeof(ack_ecn);
    n = qs_crypto_frame(f, n, 50, hl + 50, 70); /* [50, 120) */
    n = 1162;                                   /* PADDING */

    struct qs_params q = {QS_V1, k_dcid, 8, k_scid, 4, NULL, 0, 0, 1, false, 0, -1};
    size_t pn = qs_seal(&q, f, n, pkt, sizeof(pkt));
    CHECK(pn > 1200);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 42 + 50 + 90 + 70);
    check_crypto_hello(&c, sizeof(k_hello), "q13d1516h2_8daaf6152771_e5627efa2ab1");

    /* Same frames in a QUIC v2 packet with a token and 2-byte packet number. */
    static const uint8_t token[40] = {1, 2, 3};
    q = (struct qs_params){QS_V2, k_dcid, 8, k_scid, 4, token, sizeof(token), 1, 2, false, 0, -1};
    pn = qs_seal(&q, f, n, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    uint32_t ver = 0;
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, &ver), 252);
    CHECK_EQ_INT(ver, 0x6b3343cf);
    check_crypto_hello(&c, sizeof(k_hello), "q13d1516h2_8daaf6152771_e5627efa2ab1");

    /* Drafts 29 and 32, with a 20-byte DCID and an empty SCID. */
    static const uint8_t dcid20[20] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    for (uint32_t v = 0xff00001d; v <= 0xff000020; v += 3) {
        q = (struct qs_params){v, dcid20, 20, NULL, 0, NULL, 0, 0, 3, false, 0, -1};
        pn = qs_seal(&q, f, n, pkt, sizeof(pkt));
        memset(&c, 0, sizeof(c));
        CHECK_EQ_INT(quic_exact(pkt, pn, &c, &ver), 252);
        CHECK_EQ_INT(ver, v);
        CHECK_EQ_INT(c.contiguous, sizeof(k_hello));
    }
}

static void test_quic_hello_across_packets(void)
{
    /* A 1.6 KB ClientHello in two Initial datagrams (as Chrome sends with
     * post-quantum key shares), the second arriving first. */
    static uint8_t hello[2048], f[1400], pkt_a[1600], pkt_b[1600];
    static struct kg_quic_crypto c;
    size_t hn = big_hello(hello, sizeof(hello));
    CHECK(hn > 1500);

    memset(f, 0, sizeof(f));
    size_t n = qs_crypto_frame(f, 0, 0, hello, 1100);
    struct qs_params q = {QS_V1, k_dcid, 8, k_scid, 4, NULL, 0, 0, 1, false, 0, -1};
    size_t na = qs_seal(&q, f, KG_MAX(n, (size_t)1162), pkt_a, sizeof(pkt_a));
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, 1100, hello + 1100, hn - 1100);
    q.pn = 1;
    size_t nb = qs_seal(&q, f, 1162, pkt_b, sizeof(pkt_b));

    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt_b, nb, &c, NULL), (int)(hn - 1100));
    CHECK_EQ_INT(c.contiguous, 0);
    CHECK_EQ_INT(quic_exact(pkt_a, na, &c, NULL), 1100);
    check_crypto_hello(&c, hn, "q13d1516h2_8daaf6152771_e5627efa2ab1");

    /* The same two packets coalesced in one datagram, with a 0-RTT and a
     * Handshake packet between them (skipped: no keys), then zero
     * padding after the last packet (some stacks pad the datagram). */
    static uint8_t dgram[4096];
    static uint8_t junk[64];
    size_t dn = 0;
    memcpy(dgram, pkt_a, na);
    dn += na;
    q.long_type = 1; /* 0-RTT in v1 */
    dn += qs_seal(&q, junk, sizeof(junk), dgram + dn, sizeof(dgram) - dn);
    q.long_type = 2; /* Handshake in v1 */
    dn += qs_seal(&q, junk, sizeof(junk), dgram + dn, sizeof(dgram) - dn);
    memcpy(dgram + dn, pkt_b, nb);
    dn += nb;
    memset(dgram + dn, 0, 30);
    dn += 30;
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(dgram, dn, &c, NULL), (int)hn);
    check_crypto_hello(&c, hn, "q13d1516h2_8daaf6152771_e5627efa2ab1");

    /* A damaged second packet: the first one's bytes still count. */
    dgram[dn - 30 - 5] ^= 0x40;
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(dgram, dn, &c, NULL), 1100);
    CHECK_EQ_INT(c.contiguous, 1100);
    dgram[dn - 30 - 5] ^= 0x40;
    /* A damaged first packet: the second one's bytes count. */
    dgram[na - 3] ^= 0x01;
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(dgram, dn, &c, NULL), (int)(hn - 1100));
    CHECK_EQ_INT(c.contiguous, 0);
    dgram[na - 3] ^= 0x01;
    /* A Length running past the datagram in a later packet ends the walk. */
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(dgram, na + 40, &c, NULL), 1100);
    CHECK_EQ_INT(c.contiguous, 1100);
}

static void test_quic_limits(void)
{
    static uint8_t f[1400], pkt[1600];
    static struct kg_quic_crypto c;
    struct qs_params q = {QS_V1, k_dcid, 8, NULL, 0, NULL, 0, 0, 1, false, 0, -1};
    static const uint8_t data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

    /* Straddling the end of the buffer: the part inside is kept. */
    memset(f, 0, sizeof(f));
    size_t n = qs_crypto_frame(f, 0, KG_QUIC_CRYPTO_MAX - 6, data, 16);
    size_t pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 6);
    CHECK(memcmp(c.data + KG_QUIC_CRYPTO_MAX - 6, data, 6) == 0);
    CHECK_EQ_INT(c.contiguous, 0);

    /* Entirely past the buffer, and at the largest offset a varint holds. */
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, KG_QUIC_CRYPTO_MAX, data, 16);
    n = qs_crypto_frame(f, n, (1ull << 62) - 1, data, 16);
    pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 0);
    CHECK_EQ_INT(c.contiguous, 0);

    /* Filling the whole buffer: contiguous reaches the end. */
    static uint8_t big[KG_QUIC_CRYPTO_MAX];
    memset(big, 0x5a, sizeof(big));
    memset(&c, 0, sizeof(c));
    for (size_t off = 0; off < KG_QUIC_CRYPTO_MAX; off += 1024) {
        memset(f, 0, sizeof(f));
        n = qs_crypto_frame(f, 0, off, big + off, 1024);
        q.pn = (uint32_t)(off / 1024);
        pn = qs_seal(&q, f, n + 100, pkt, sizeof(pkt));
        CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 1024);
    }
    CHECK_EQ_INT(c.contiguous, KG_QUIC_CRYPTO_MAX);

    /* A CRYPTO frame whose length runs past the payload: the walk stops,
     * earlier frames stay. */
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, 0, data, 16);
    f[n++] = 0x06;
    f[n++] = 0x10;
    f[n++] = 0x7f; /* length 0x3fxx: 2-byte varint */
    f[n++] = 0xff;
    q.pn = 0;
    pn = qs_seal(&q, f, n + 50, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 16);
    CHECK_EQ_INT(c.contiguous, 16);

    /* A packet too short to hold the header-protection sample (Length 19:
     * the 16-byte sample starts 4 bytes after the packet number): -1. */
    static const uint8_t short_pkt[] = {0xc0, 0,    0,    0,    1,    8,  0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                                        0x77, 0x88, 0x00, 0x00, 0x13, 1,  2,    3,    4,    5,    6,    7,
                                        8,    9,    10,   11,   12,   13, 14,   15,   16,   17,   18,   19};
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(short_pkt, sizeof(short_pkt), &c, NULL), -1);
    CHECK(qs_seal(&q, f, 2, pkt, sizeof(pkt)) == 0); /* the sealer cannot sample it either */
}

static void test_quic_frames(void)
{
    static uint8_t f[1400], pkt[1600];
    static struct kg_quic_crypto c;
    struct qs_params q = {QS_V1, k_dcid, 8, NULL, 0, NULL, 0, 0, 1, false, 0, -1};
    size_t n, pn;

    /* An unknown (or not-allowed-in-Initial) frame ends the walk: a STREAM
     * frame (0x08) between two CRYPTO frames. */
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, 0, k_hello, 100);
    f[n++] = 0x08;
    n = qs_crypto_frame(f, n, 100, k_hello + 100, sizeof(k_hello) - 100);
    pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 100);

    /* CONNECTION_CLOSE (0x1c) with a reason phrase is skipped correctly;
     * an application CONNECTION_CLOSE (0x1d) is not allowed in Initial. */
    memset(f, 0, sizeof(f));
    static const uint8_t cc[] = {0x1c, 0x0a, 0x06, 0x05, 'h', 'e', 'l', 'l', 'o'};
    memcpy(f, cc, sizeof(cc));
    n = qs_crypto_frame(f, sizeof(cc), 0, k_hello, sizeof(k_hello));
    f[n++] = 0x1d;
    n = qs_crypto_frame(f, n, 0, k_hello, 10);
    pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), (int)sizeof(k_hello));
    check_crypto_hello(&c, sizeof(k_hello), "q13d1516h2_8daaf6152771_e5627efa2ab1");

    /* An ACK whose range count claims more ranges than the payload holds. */
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, 0, k_hello, 20);
    static const uint8_t bad_ack[] = {0x02, 0x05, 0x00, 0xbf, 0xff, 0xff, 0xff, 0x00};
    memcpy(f + n, bad_ack, sizeof(bad_ack));
    n += sizeof(bad_ack);
    for (size_t i = n; i < 200; i++)
        f[i] = 0x01; /* then a run of 1-byte "gaps" */
    pn = qs_seal(&q, f, 200, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 20);

    /* An Initial with ACK and PADDING only: decrypts, places nothing. */
    memset(f, 0, sizeof(f));
    memcpy(f, "\x02\x00\x00\x00\x00", 5);
    pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), 0);

    /* Sealed with the server's keys for the client's DCID: -1. */
    memset(f, 0, sizeof(f));
    n = qs_crypto_frame(f, 0, 0, k_hello, sizeof(k_hello));
    q.server = true;
    pn = qs_seal(&q, f, 1162, pkt, sizeof(pkt));
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(quic_exact(pkt, pn, &c, NULL), -1);
    CHECK_EQ_INT(c.contiguous, 0);
}

static void test_quic_not_initial(void)
{
    static struct kg_quic_crypto c;
    uint32_t ver = 77;
    memset(&c, 0, sizeof(c));
    /* Short header (1-RTT). */
    static const uint8_t shorth[] = {0x41, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0};
    CHECK_EQ_INT(quic_exact(shorth, sizeof(shorth), &c, &ver), 0);
    CHECK_EQ_INT(ver, 0);
    /* Version negotiation (version 0). */
    static const uint8_t vn[] = {0x80, 0, 0, 0, 0, 0x00, 0x04, 1, 2, 3, 4, 0, 0, 0, 1};
    CHECK_EQ_INT(quic_exact(vn, sizeof(vn), &c, &ver), 0);
    CHECK_EQ_INT(ver, 0);
    /* Retry (v1 type 3): no Length field, from a server. */
    static const uint8_t retry[] = {0xf0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4, 't', 'o', 'k', 'e', 'n', 0,
                                    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   0,   0,   0,   0,   0};
    CHECK_EQ_INT(quic_exact(retry, sizeof(retry), &c, &ver), 0);
    CHECK_EQ_INT(ver, 1);
    /* gQUIC Q046 long header: unknown version. */
    static const uint8_t q046[] = {0xc3, 'Q', '0', '4', '6', 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1};
    CHECK_EQ_INT(quic_exact(q046, sizeof(q046), &c, &ver), 0);
    CHECK_EQ_INT(ver, 0x51303436);
    /* A Handshake packet alone: nothing to decrypt. */
    static uint8_t pkt[400], junk[64];
    struct qs_params q = {QS_V1, k_dcid, 8, NULL, 0, NULL, 0, 0, 1, false, 0, 2};
    size_t n = qs_seal(&q, junk, sizeof(junk), pkt, sizeof(pkt));
    CHECK_EQ_INT(quic_exact(pkt, n, &c, &ver), 0);
    /* Malformed long headers: DCID length 21, truncated SCID, a Length
     * past the datagram, a truncated token length. */
    static const uint8_t dcid21[] = {0xc0, 0,  0,  0,  1,  21, 1,  2,  3,  4, 5, 6,    7,    8, 9, 10, 11, 12,
                                     13,   14, 15, 16, 17, 18, 19, 20, 21, 0, 0, 0x40, 0x20, 0, 0, 0,  0,  0};
    CHECK_EQ_INT(quic_exact(dcid21, sizeof(dcid21), &c, &ver), -1);
    static const uint8_t scid_cut[] = {0xc0, 0, 0, 0, 1, 1, 0xaa, 8, 1, 2};
    CHECK_EQ_INT(quic_exact(scid_cut, sizeof(scid_cut), &c, &ver), -1);
    static const uint8_t len_past[] = {0xc0, 0, 0, 0, 1, 1, 0xaa, 0, 0, 0x44, 0x00, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_EQ_INT(quic_exact(len_past, sizeof(len_past), &c, &ver), -1);
    static const uint8_t tok_cut[] = {0xc0, 0, 0, 0, 1, 1, 0xaa, 0, 0x80, 0x00};
    CHECK_EQ_INT(quic_exact(tok_cut, sizeof(tok_cut), &c, &ver), -1);
    CHECK_EQ_INT(c.contiguous, 0);
}

/* ---- random inputs ------------------------------------------------------------------ */

static uint64_t g_rng;
static uint64_t rnd(void)
{
    /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}

static bool hello_ok(const struct kg_tls_client_hello *h)
{
    /* Strings NUL-terminated inside their arrays, JA3/JA4 well formed. */
    if (memchr(h->sni, 0, sizeof(h->sni)) == NULL || memchr(h->alpn, 0, sizeof(h->alpn)) == NULL ||
        memchr(h->ja3_full, 0, sizeof(h->ja3_full)) == NULL)
        return false;
    if (strnlen(h->ja3, sizeof(h->ja3)) != 32) return false;
    if (strnlen(h->ja4, sizeof(h->ja4)) != 36 || h->ja4[10] != '_' || h->ja4[23] != '_') return false;
    return true;
}

/* A structurally valid ClientHello with random contents: random lists and
 * extensions of the types the parser looks inside (SNI, groups, point
 * formats, signature algorithms, ALPN, supported_versions) filled with
 * random bytes, so that the inner-list parsing sees every shape. */
static size_t random_hello(uint8_t *out, size_t cap, bool dtls)
{
    static const uint16_t types[] = {0x0000, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b, 0x0a0a, 0x0015, 0xff01};
    struct bb w;
    bb_init(&w, 8192);
    bb_u8(&w, 1);
    bb_open(&w, 3);
    if (dtls) {
        bb_u16(&w, 0);
        bb_u24(&w, 0);
        bb_u24(&w, 0); /* fragment_length: patched below to the body length */
    }
    size_t body = w.n;
    bb_u16(&w, (unsigned)(rnd() % 3 ? 0x0303 : rnd()));
    for (int i = 0; i < 32; i++)
        bb_u8(&w, (unsigned)rnd());
    bb_u8(&w, 0);
    if (dtls) bb_u8(&w, 0);
    bb_open(&w, 2);
    for (size_t i = 0, n = rnd() % 40; i < n; i++)
        bb_u16(&w, (unsigned)(rnd() % 4 ? rnd() : 0x0a0a));
    bb_close(&w);
    bb_u8(&w, 1);
    bb_u8(&w, 0);
    if (rnd() % 8) {
        bb_open(&w, 2);
        for (size_t i = 0, n = rnd() % 12; i < n; i++) {
            bb_u16(&w, types[rnd() % KG_ARRAY_LEN(types)]);
            bb_open(&w, 2);
            size_t dl = rnd() % 24;
            for (size_t k = 0; k < dl; k++)
                bb_u8(&w, (unsigned)(rnd() % 3 ? rnd() % 16 : rnd()));
            bb_close(&w);
        }
        bb_close(&w);
    }
    bb_close(&w);
    if (dtls) {
        size_t bl = w.n - body;
        w.b[9] = (uint8_t)(bl >> 16);
        w.b[10] = (uint8_t)(bl >> 8);
        w.b[11] = (uint8_t)bl;
    }
    size_t n = KG_MIN(w.n, cap);
    memcpy(out, w.b, n);
    free(w.b);
    return n;
}

static long env_long(const char *name, long def)
{
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 0) : def;
}

static void test_random_inputs(void)
{
    long iters = env_long("KG_RANDOM_ITERS", 200000);
    unsigned long long seed = (unsigned long long)env_long("KG_RANDOM_SEED", 0x6b6167616d69);
    g_rng = seed ? seed : 1;
    printf("random inputs: %ld iterations per parser, KG_RANDOM_SEED=%llu\n", iters, seed);

    static uint8_t buf[2048];
    static struct kg_quic_crypto c;
    struct kg_tls_client_hello h;
    long bad = 0, tls_ok = 0, tls_mut_ok = 0, certs = 0, quic_ok = 0, sealed_ok = 0;
    const char tr[3] = {'t', 'q', 'd'};

    /* 1. Random bytes to all three parsers; the first bytes are biased
     * towards plausible headers so that the parsers get past them. */
    for (long i = 0; i < iters; i++) {
        size_t len = (size_t)(rnd() % sizeof(buf));
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd();
        int mode = (int)(rnd() % 4);
        if (mode == 1) { /* a random but well-framed ClientHello */
            len = random_hello(buf, sizeof(buf), i % 3 == 2);
            if (rnd() % 4 == 0 && len) len -= (size_t)(rnd() % len); /* sometimes cut */
        } else if (len >= 10 && mode == 2) {                         /* handshake stream with a Certificate */
            size_t ml = len - 4 - (size_t)(rnd() % 3);
            buf[0] = (uint8_t)(rnd() % 2 ? 11 : 2);
            buf[1] = 0;
            buf[2] = (uint8_t)(ml >> 8);
            buf[3] = (uint8_t)ml;
            buf[4] = 0;
            buf[5] = (uint8_t)((ml - 3) >> 8);
            buf[6] = (uint8_t)(ml - 3);
            buf[7] = 0;
            buf[8] = (uint8_t)(rnd() % 2 ? 0 : buf[5]);
        } else if (len >= 6 && mode == 3) { /* QUIC v1 Initial header */
            buf[0] = (uint8_t)(0xc0 | (rnd() & 0x0f));
            buf[1] = buf[2] = buf[3] = 0;
            buf[4] = 1;
            buf[5] = (uint8_t)(rnd() % 22);
        }
        uint8_t *b = dup_exact(buf, len);
        int rc = kg_tls_parse_client_hello(b, len, tr[i % 3], &h);
        if (rc == 0) {
            tls_ok++;
            if (!hello_ok(&h)) bad++;
        } else if (rc != -1) {
            bad++;
        }
        const uint8_t *cert = NULL;
        size_t cert_len = 0;
        rc = kg_tls_find_server_cert(b, len, &cert, &cert_len);
        if (rc == 1) {
            certs++;
            if (cert < b || cert_len == 0 || cert_len > (size_t)(b + len - cert)) bad++;
        } else if (rc != 0 && rc != -1) {
            bad++;
        }
        memset(&c, 0, sizeof(c));
        rc = kg_quic_parse_initial(b, len, &c, NULL);
        if (rc < -1 || c.contiguous > KG_QUIC_CRYPTO_MAX || (rc <= 0 && c.contiguous != 0)) bad++;
        if (rc > 0) quic_ok++;
        free(b);
    }

    /* 2. Mutations of the valid ClientHello: byte flips, truncations and
     * length-field damage reach deep into the extension parsing. */
    for (long i = 0; i < iters; i++) {
        size_t len = sizeof(k_hello);
        memcpy(buf, k_hello, len);
        int nmut = 1 + (int)(rnd() % 4);
        for (int m = 0; m < nmut; m++) {
            size_t at = (size_t)(rnd() % len);
            switch (rnd() % 4) {
            case 0:
                buf[at] = (uint8_t)rnd();
                break;
            case 1:
                buf[at] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 2:
                buf[at] = (uint8_t)(rnd() % 2 ? 0 : 0xff);
                break;
            default:
                len = at + 1;
                break;
            }
        }
        uint8_t *b = dup_exact(buf, len);
        int rc = kg_tls_parse_client_hello(b, len, tr[i % 3], &h);
        if (rc == 0) {
            tls_mut_ok++;
            if (!hello_ok(&h)) bad++;
        } else if (rc != -1) {
            bad++;
        }
        free(b);
    }

    /* 3. Random frames inside correctly protected Initials: the frame
     * walker and CRYPTO placement see arbitrary plaintext. Costlier (key
     * derivation and sealing per packet): a quarter of the iterations. */
    static uint8_t f[1400], pkt[1600];
    for (long i = 0; i < iters / 4; i++) {
        size_t n = 21 + (size_t)(rnd() % 1200);
        for (size_t k = 0; k < n; k++)
            f[k] = (uint8_t)rnd();
        /* Frame types biased to those allowed in Initial. */
        static const uint8_t types[] = {0x00, 0x01, 0x02, 0x03, 0x06, 0x06, 0x06, 0x1c};
        for (size_t k = 0; k < n; k += 1 + (size_t)(rnd() % 40))
            f[k] = types[rnd() % sizeof(types)];
        uint8_t dcid[20];
        size_t dl = (size_t)(rnd() % 21);
        for (size_t k = 0; k < dl; k++)
            dcid[k] = (uint8_t)rnd();
        /* Packet numbers below 128 fit any encoded length, as a client's
         * first Initials do (the parser takes the truncated number as is). */
        struct qs_params q = {rnd() % 2 ? QS_V1 : QS_V2, dcid,  dl, NULL, 0, NULL, 0, (uint32_t)(rnd() % 128),
                              1 + (size_t)(rnd() % 4),   false, 0,  -1};
        size_t pn = qs_seal(&q, f, n, pkt, sizeof(pkt));
        if (pn == 0) continue;
        bool damage = rnd() % 8 == 0;
        if (damage) pkt[rnd() % pn] ^= (uint8_t)(1u << (rnd() % 8));
        memset(&c, 0, sizeof(c));
        uint8_t *b = dup_exact(pkt, pn);
        int rc = kg_quic_parse_initial(b, pn, &c, NULL);
        free(b);
        if (rc < -1 || c.contiguous > KG_QUIC_CRYPTO_MAX) bad++;
        if (!damage && rc < 0) bad++; /* an intact Initial always decrypts */
        if (rc >= 0) sealed_ok++;
    }

    printf("random inputs: %ld hellos parsed from random bytes, %ld from mutations, %ld certs, %ld quic; "
           "%ld sealed random Initials decrypted\n",
           tls_ok, tls_mut_ok, certs, quic_ok, sealed_ok);
    CHECK_EQ_INT(bad, 0);
    CHECK(tls_mut_ok > 0);
    CHECK(sealed_ok > 0);
}

int main(void)
{
    KG_TEST_RUN(test_tls_spec_example);
    KG_TEST_RUN(test_tls_empty_sigalgs);
    KG_TEST_RUN(test_tls_legacy_no_extensions);
    KG_TEST_RUN(test_tls_alpn_rules);
    KG_TEST_RUN(test_tls_versions);
    KG_TEST_RUN(test_tls_dtls);
    KG_TEST_RUN(test_tls_long_lists);
    KG_TEST_RUN(test_tls_malformed);
    KG_TEST_RUN(test_find_server_cert);
    KG_TEST_RUN(test_quic_rfc9001_client_initial);
    KG_TEST_RUN(test_quic_rfc9369_v2_client_initial);
    KG_TEST_RUN(test_quic_server_initial_fails);
    KG_TEST_RUN(test_quic_tampered);
    KG_TEST_RUN(test_quic_truncated);
    KG_TEST_RUN(test_quic_seal_matches_rfc);
    KG_TEST_RUN(test_quic_scattered_frames);
    KG_TEST_RUN(test_quic_hello_across_packets);
    KG_TEST_RUN(test_quic_limits);
    KG_TEST_RUN(test_quic_frames);
    KG_TEST_RUN(test_quic_not_initial);
    KG_TEST_RUN(test_random_inputs);
    KG_TEST_MAIN_END();
}
