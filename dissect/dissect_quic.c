/*
 * dissect/dissect_quic.c — QUIC client Initial decryption and CRYPTO stream
 * reassembly (RFC 9000 sections 17.2 and 19, RFC 9001 section 5, RFC 9369
 * for QUIC v2), so that the ClientHello inside can go to
 * kg_tls_parse_client_hello (dissect_tls.c).
 *
 * Why our own: nDPI 4.2 reads the CRYPTO frame of one packet only, so it
 * misses Chrome's Initials (CRYPTO frames scattered and reordered inside a
 * packet, ClientHellos spanning two Initial packets) and it has no QUIC v2.
 * Initial keys derive from the client's Destination Connection ID and a
 * public salt (RFC 9001 section 5.2): any on-path observer can decrypt
 * these packets; nothing here is secret.
 *
 * Threads: stateless apart from the OpenSSL algorithm objects (SHA-256,
 * AES-128-GCM, AES-128-ECB), fetched once under pthread_once; they are
 * immutable and shared. Any number of workers may call in at once, each
 * with its own struct kg_quic_crypto.
 * Ownership: borrows the datagram for the call; writes only into the
 * caller's kg_quic_crypto. Per call: one EVP_CIPHER_CTX and one EVP_MD_CTX
 * from OpenSSL (freed before returning) and a 16 KiB plaintext buffer on
 * the stack. Keys are derived on every call (five HMAC-SHA256 pairs,
 * a few microseconds): a client sends one to three Initial datagrams per
 * connection, so caching them per flow would not pay for its memory.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"

/* Largest Initial payload we decrypt. Initials are padded to at least 1200
 * bytes and sent before the path MTU is known, so real ones are well
 * below 1500; 16 KiB also covers 9000-byte jumbo frames. */
#define QUIC_PLAIN_MAX 16384
#define QUIC_CID_MAX 20 /* RFC 9000 section 17.2, versions 1 and 2 */
#define QUIC_TAG_LEN 16
#define QUIC_SAMPLE_LEN 16

#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu

/* ---- versions ------------------------------------------------------------- */

struct quic_version {
    uint8_t salt[20];
    const char *key_label, *iv_label, *hp_label;
    uint8_t initial_type, retry_type; /* long-header packet type bits */
};

/* RFC 9001 section 5.2. */
static const struct quic_version k_v1 = {{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                          0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
                                         "quic key",
                                         "quic iv",
                                         "quic hp",
                                         0,
                                         3};

/* RFC 9369 sections 3.2 (packet types), 3.3.1 (salt), 3.3.2 (labels). */
static const struct quic_version k_v2 = {{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                          0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
                                         "quicv2 key",
                                         "quicv2 iv",
                                         "quicv2 hp",
                                         1,
                                         0};

/* draft-ietf-quic-tls-29 section 5.2, unchanged up to draft 32. */
static const struct quic_version k_draft29 = {{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97,
                                               0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99},
                                              "quic key",
                                              "quic iv",
                                              "quic hp",
                                              0,
                                              3};

static const struct quic_version *find_version(uint32_t v)
{
    if (v == QUIC_V1) return &k_v1;
    if (v == QUIC_V2) return &k_v2;
    if (v >= 0xff00001du && v <= 0xff000020u) return &k_draft29; /* drafts 29..32 */
    return NULL;
}

/* ---- lazily fetched algorithms -------------------------------------------- */

static pthread_once_t g_algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *g_sha256;
static EVP_CIPHER *g_aes_gcm, *g_aes_ecb;

static void algs_fetch_once(void)
{
    /* Explicit fetch once: OpenSSL 3 would otherwise look each algorithm
     * up by name at every init. Kept for the process lifetime. */
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_aes_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    g_aes_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
}

/* ---- HKDF (RFC 5869) with HMAC-SHA256 (RFC 2104) --------------------------- */

/* HMAC-SHA256 of m1 || m2 under a key of at most 64 bytes (ours are the
 * 20-byte salt and 32-byte secrets, so the key is never pre-hashed).
 * Written out rather than through EVP_MAC/EVP_KDF, whose "digest" parameter
 * makes OpenSSL look SHA-256 up by name on every use. */
static bool hmac_sha256(EVP_MD_CTX *md, const uint8_t *key, size_t klen, const uint8_t *m1, size_t n1,
                        const uint8_t *m2, size_t n2, uint8_t out[32])
{
    uint8_t pad[64], inner[32];
    unsigned int dl = 0;
    bool ok;

    if (klen > sizeof(pad)) return false;
    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    ok = EVP_DigestInit_ex(md, g_sha256, NULL) == 1 && EVP_DigestUpdate(md, pad, sizeof(pad)) == 1 &&
         (n1 == 0 || EVP_DigestUpdate(md, m1, n1) == 1) && (n2 == 0 || EVP_DigestUpdate(md, m2, n2) == 1) &&
         EVP_DigestFinal_ex(md, inner, &dl) == 1 && dl == 32;
    if (!ok) return false;

    memset(pad, 0x5c, sizeof(pad));
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    ok = EVP_DigestInit_ex(md, g_sha256, NULL) == 1 && EVP_DigestUpdate(md, pad, sizeof(pad)) == 1 &&
         EVP_DigestUpdate(md, inner, sizeof(inner)) == 1 && EVP_DigestFinal_ex(md, out, &dl) == 1 && dl == 32;
    return ok;
}

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 section 7.1, for
 * out_len <= 32: a single HKDF-Expand block T(1) = HMAC(secret, info | 1). */
static bool expand_label(EVP_MD_CTX *md, const uint8_t secret[32], const char *label, uint8_t *out,
                         size_t out_len)
{
    static const char prefix[] = "tls13 ";
    uint8_t info[2 + 1 + 255 + 1 + 1];
    size_t ll = strlen(label), n = 0;
    uint8_t t[32];

    if (out_len > sizeof(t) || ll > 255 - (sizeof(prefix) - 1)) return false;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(sizeof(prefix) - 1 + ll);
    memcpy(info + n, prefix, sizeof(prefix) - 1);
    n += sizeof(prefix) - 1;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    info[n++] = 1; /* HKDF-Expand block counter */
    if (!hmac_sha256(md, secret, 32, info, n, NULL, 0, t)) return false;
    memcpy(out, t, out_len);
    return true;
}

struct initial_keys {
    uint8_t key[16], iv[12], hp[16];
};

/* RFC 9001 section 5.2 (labels per RFC 9369 section 3.3.2 for v2):
 * initial_secret = HKDF-Extract(salt, DCID), client_initial_secret =
 * HKDF-Expand-Label(initial_secret, "client in", "", 32), then key/iv/hp. */
static bool derive_client_keys(EVP_MD_CTX *md, const struct quic_version *qv, const uint8_t *dcid,
                               size_t dcid_len, struct initial_keys *k)
{
    uint8_t initial[32], client[32];
    return hmac_sha256(md, qv->salt, sizeof(qv->salt), dcid, dcid_len, NULL, 0, initial) &&
           expand_label(md, initial, "client in", client, sizeof(client)) &&
           expand_label(md, client, qv->key_label, k->key, sizeof(k->key)) &&
           expand_label(md, client, qv->iv_label, k->iv, sizeof(k->iv)) &&
           expand_label(md, client, qv->hp_label, k->hp, sizeof(k->hp));
}

/* ---- reader ---------------------------------------------------------------- */

struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
};

/* RFC 9000 section 16: two high bits give the length (1, 2, 4, 8 bytes). */
static bool rd_varint(struct rd *r, uint64_t *v)
{
    if (r->off >= r->len) return false;
    size_t n = (size_t)1 << (r->p[r->off] >> 6);
    if (r->len - r->off < n) return false;
    uint64_t x = r->p[r->off] & 0x3f;
    for (size_t i = 1; i < n; i++)
        x = (x << 8) | r->p[r->off + i];
    r->off += n;
    *v = x;
    return true;
}

static bool rd_skip(struct rd *r, uint64_t n)
{
    if (n > r->len - r->off) return false;
    r->off += (size_t)n;
    return true;
}

/* ---- CRYPTO stream ------------------------------------------------------------ */

static size_t crypto_place(struct kg_quic_crypto *c, uint64_t off, const uint8_t *d, size_t n)
{
    if (off >= KG_QUIC_CRYPTO_MAX) return 0;
    size_t o = (size_t)off;
    size_t m = KG_MIN(n, (size_t)KG_QUIC_CRYPTO_MAX - o);
    memcpy(c->data + o, d, m);
    for (size_t i = o; i < o + m; i++)
        c->have[i >> 3] |= (uint8_t)(1u << (i & 7));
    return m;
}

static void crypto_update_contiguous(struct kg_quic_crypto *c)
{
    /* Only grows while the caller keeps the same struct; a value out of
     * range (caller error) is recomputed from 0 rather than trusted. */
    size_t i = c->contiguous <= KG_QUIC_CRYPTO_MAX ? c->contiguous : 0;
    while (i < KG_QUIC_CRYPTO_MAX) {
        if ((i & 7) == 0 && c->have[i >> 3] == 0xff) { /* a whole byte of the bitmap at once */
            i += 8;
            continue;
        }
        if (!((c->have[i >> 3] >> (i & 7)) & 1)) break;
        i++;
    }
    c->contiguous = i;
}

/*
 * Walks the frames of a decrypted Initial payload. Only the frames RFC 9000
 * section 12.4 (table 3) permits in Initial packets are understood:
 * PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (0x1c); any other frame
 * type, or a truncated frame, ends the walk (what was placed stays).
 * Returns the number of CRYPTO bytes placed.
 */
static size_t parse_frames(const uint8_t *f, size_t n, struct kg_quic_crypto *c)
{
    struct rd r = {f, n, 0};
    size_t placed = 0;
    uint64_t type, a, b, count;

    while (r.off < r.len) {
        if (!rd_varint(&r, &type)) break;
        switch (type) {
        case 0x00: /* PADDING (19.1): runs of zero bytes */
            while (r.off < r.len && f[r.off] == 0)
                r.off++;
            break;
        case 0x01: /* PING (19.2) */
            break;
        case 0x02: /* ACK (19.3) */
        case 0x03: /* ACK with ECN counts */
            /* Largest Acknowledged, ACK Delay, ACK Range Count, First ACK
             * Range, then Range Count (Gap, ACK Range Length) pairs; every
             * pair takes at least two bytes, so the loop ends with the data. */
            if (!rd_varint(&r, &a) || !rd_varint(&r, &a) || !rd_varint(&r, &count) || !rd_varint(&r, &a))
                return placed;
            for (uint64_t i = 0; i < count; i++)
                if (!rd_varint(&r, &a) || !rd_varint(&r, &b)) return placed;
            if (type == 0x03 && (!rd_varint(&r, &a) || !rd_varint(&r, &a) || !rd_varint(&r, &a)))
                return placed;
            break;
        case 0x06: /* CRYPTO (19.6): Offset, Length, Crypto Data */
            if (!rd_varint(&r, &a) || !rd_varint(&r, &b) || b > r.len - r.off) return placed;
            placed += crypto_place(c, a, f + r.off, (size_t)b);
            r.off += (size_t)b;
            break;
        case 0x1c: /* CONNECTION_CLOSE (19.19): Error Code, Frame Type, Reason */
            if (!rd_varint(&r, &a) || !rd_varint(&r, &a) || !rd_varint(&r, &b) || !rd_skip(&r, b))
                return placed;
            break;
        default:
            return placed;
        }
    }
    return placed;
}

/* ---- packet protection ------------------------------------------------------------ */

struct call_ctx {
    EVP_CIPHER_CTX *cipher;
    EVP_MD_CTX *md;
    /* Keys of the last DCID seen in this datagram: coalesced Initials
     * normally share one. */
    bool have_keys;
    const struct quic_version *keys_version;
    uint8_t keys_dcid[QUIC_CID_MAX];
    size_t keys_dcid_len;
    struct initial_keys keys;
};

/*
 * Removes header protection (RFC 9001 section 5.4) from the Initial packet
 * pkt[0..end) whose packet number starts at pn_off, decrypts it (section
 * 5.3), and on success places its CRYPTO data. Returns the bytes placed,
 * or -1 when the packet does not authenticate (or is too short to hold a
 * header-protection sample, or too large for our buffer).
 */
static int open_initial(struct call_ctx *cc, const struct quic_version *qv, const uint8_t *pkt, size_t pn_off,
                        size_t end, const uint8_t *dcid, size_t dcid_len, struct kg_quic_crypto *c)
{
    /* The sample is taken as if the packet number were 4 bytes long. The
     * header goes to OpenSSL as an int length (a UDP datagram is < 64 KiB;
     * the check only matters for a caller passing something else). */
    if (end - pn_off < 4 + QUIC_SAMPLE_LEN || pn_off > INT_MAX) return -1;

    if (!cc->have_keys || cc->keys_version != qv || cc->keys_dcid_len != dcid_len ||
        memcmp(cc->keys_dcid, dcid, dcid_len) != 0) {
        if (!derive_client_keys(cc->md, qv, dcid, dcid_len, &cc->keys)) return -1;
        cc->have_keys = true;
        cc->keys_version = qv;
        memcpy(cc->keys_dcid, dcid, dcid_len);
        cc->keys_dcid_len = dcid_len;
    }
    const struct initial_keys *k = &cc->keys;

    uint8_t mask[16];
    int outl = 0;
    EVP_CIPHER_CTX_reset(cc->cipher);
    if (EVP_EncryptInit_ex2(cc->cipher, g_aes_ecb, k->hp, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(cc->cipher, 0) != 1 ||
        EVP_EncryptUpdate(cc->cipher, mask, &outl, pkt + pn_off + 4, QUIC_SAMPLE_LEN) != 1 || outl != 16)
        return -1;

    /* Long header: the low 4 bits of the first byte are protected. */
    uint8_t first = (uint8_t)(pkt[0] ^ (mask[0] & 0x0f));
    size_t pn_len = (size_t)(first & 0x03) + 1;
    uint8_t pn_bytes[4];
    uint64_t pn = 0;
    for (size_t i = 0; i < pn_len; i++) {
        pn_bytes[i] = (uint8_t)(pkt[pn_off + i] ^ mask[1 + i]);
        pn = (pn << 8) | pn_bytes[i];
    }
    /* An observer has no largest-acknowledged to expand the truncated
     * packet number against (RFC 9000 section 17.1); a client's Initial
     * numbers start at 0 and stay far below 2^7, so the truncated value
     * is the full one. */
    size_t hdr_len = pn_off + pn_len;
    size_t ct_len = end - hdr_len - QUIC_TAG_LEN;
    if (ct_len > QUIC_PLAIN_MAX) return -1;

    uint8_t nonce[12];
    memcpy(nonce, k->iv, sizeof(nonce));
    for (size_t i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(pn >> (8 * i));

    uint8_t tag[QUIC_TAG_LEN];
    memcpy(tag, pkt + end - QUIC_TAG_LEN, sizeof(tag));

    /* The associated data is the unprotected header: fed in three pieces
     * rather than copied, since the token can make it long. */
    uint8_t plain[QUIC_PLAIN_MAX];
    int n1 = 0, n2 = 0;
    EVP_CIPHER_CTX_reset(cc->cipher);
    if (EVP_DecryptInit_ex2(cc->cipher, g_aes_gcm, k->key, nonce, NULL) != 1 ||
        EVP_DecryptUpdate(cc->cipher, NULL, &outl, &first, 1) != 1 ||
        EVP_DecryptUpdate(cc->cipher, NULL, &outl, pkt + 1, (int)(pn_off - 1)) != 1 ||
        EVP_DecryptUpdate(cc->cipher, NULL, &outl, pn_bytes, (int)pn_len) != 1 ||
        EVP_DecryptUpdate(cc->cipher, plain, &n1, pkt + hdr_len, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(cc->cipher, EVP_CTRL_AEAD_SET_TAG, QUIC_TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(cc->cipher, plain + n1, &n2) != 1)
        return -1;
    if ((size_t)n1 + (size_t)n2 != ct_len) return -1;

    return (int)parse_frames(plain, ct_len, c);
}

/* ---- public -------------------------------------------------------------------- */

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int kg_quic_parse_initial(const uint8_t *p, size_t len, struct kg_quic_crypto *c, uint32_t *version)
{
    if (version) *version = 0;
    if (p == NULL || c == NULL) return -1;
    if (len == 0 || !(p[0] & 0x80)) return 0; /* short header: no Initial */

    pthread_once(&g_algs_once, algs_fetch_once);
    if (!g_sha256 || !g_aes_gcm || !g_aes_ecb) return -1;

    struct call_ctx cc;
    memset(&cc, 0, sizeof(cc));
    int placed = 0;
    bool any_ok = false, any_bad = false;
    size_t off = 0;

    /* RFC 9000 section 12.2: coalesced packets, each long-header packet
     * delimited by its Length field. */
    while (off < len) {
        const uint8_t *pkt = p + off;
        size_t rem = len - off;
        bool first_pkt = off == 0;

        /* A short-header packet runs to the end of the datagram; zero
         * padding after the last packet looks like one too. */
        if (!(pkt[0] & 0x80)) break;
        if (rem < 7) {
            any_bad = any_bad || first_pkt;
            break;
        }
        uint32_t ver = be32(pkt + 1);
        if (first_pkt && version) *version = ver;
        const struct quic_version *qv = find_version(ver);
        if (qv == NULL) break; /* version negotiation (0) or a version we cannot read */

        /* RFC 9000 section 17.2: version, DCID, SCID, then for Initial a
         * token, then Length (packet number and payload). */
        struct rd r = {pkt, rem, 6};
        const uint8_t *dcid = pkt + 6;
        uint64_t token_len, length;
        size_t dcid_len = pkt[5];
        bool ok = dcid_len <= QUIC_CID_MAX;
        if (ok) {
            ok = rd_skip(&r, dcid_len) && r.off < r.len && pkt[r.off] <= QUIC_CID_MAX &&
                 rd_skip(&r, 1 + (uint64_t)pkt[r.off]);
        }
        uint8_t type = (uint8_t)((pkt[0] >> 4) & 0x03);
        if (ok && type == qv->retry_type) break; /* Retry: no Length field, from the server */
        if (ok && type == qv->initial_type) ok = rd_varint(&r, &token_len) && rd_skip(&r, token_len);
        ok = ok && rd_varint(&r, &length) && length <= r.len - r.off;
        if (!ok) {
            any_bad = any_bad || first_pkt;
            break;
        }
        size_t pn_off = r.off, end = r.off + (size_t)length;

        if (type == qv->initial_type) {
            if (!cc.cipher) {
                cc.cipher = EVP_CIPHER_CTX_new();
                cc.md = EVP_MD_CTX_new();
                if (!cc.cipher || !cc.md) {
                    any_bad = true;
                    break;
                }
            }
            int n = open_initial(&cc, qv, pkt, pn_off, end, dcid, dcid_len, c);
            if (n < 0) {
                any_bad = true;
            } else {
                any_ok = true;
                placed += n;
            }
        }
        /* 0-RTT and Handshake packets are skipped: their keys are not
         * derivable from the wire. */
        off += end;
    }

    EVP_CIPHER_CTX_free(cc.cipher);
    EVP_MD_CTX_free(cc.md);
    if (any_ok) {
        crypto_update_contiguous(c);
        return placed;
    }
    return any_bad ? -1 : 0;
}
