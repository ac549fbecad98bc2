/*
 * tests/unit/quic_seal.h — builds protected QUIC Initial packets for the
 * tests of dissect/dissect_quic.c (unit test and fuzz harness): the
 * sender's side of RFC 9001 section 5 (v1, drafts 29..32) and RFC 9369
 * (v2), so that tests can feed the parser Initials with any frames.
 *
 * Deliberately written differently from the code under test: keys come
 * from OpenSSL's own HKDF (EVP_KDF "HKDF"), not from a hand-made HMAC, and
 * the test checks this sealer against the RFC 9001 Appendix A.2 packet
 * byte for byte before trusting it.
 *
 * Header-only, static inline functions; test code, not thread-safe by design
 * (it is only called from the test's main thread).
 */
#ifndef KG_TEST_QUIC_SEAL_H
#define KG_TEST_QUIC_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define QS_V1 0x00000001u
#define QS_V2 0x6b3343cfu
#define QS_DRAFT29 0xff00001du

static inline int qs_hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *key, size_t key_len,
                          const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[6], *pp = params;
    int rc = -1;
    if (!kctx) goto out;
    *pp++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *pp++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    if (salt) *pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info) *pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *pp = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, out_len, params) == 1) rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

static inline int qs_expand_label(const uint8_t *secret, const char *label, uint8_t *out, size_t out_len)
{
    uint8_t info[64];
    size_t ll = strlen(label), n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;
    return qs_hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, secret, 32, info, n, out, out_len);
}

static inline void qs_put_varint(uint8_t *out, size_t *n, uint64_t v)
{
    if (v < 64) {
        out[(*n)++] = (uint8_t)v;
    } else if (v < 16384) {
        out[(*n)++] = (uint8_t)(0x40 | (v >> 8));
        out[(*n)++] = (uint8_t)v;
    } else if (v < (1u << 30)) {
        for (int i = 3; i >= 0; i--)
            out[(*n)++] = (uint8_t)((i == 3 ? 0x80 : 0) | (uint8_t)(v >> (8 * i)));
    } else {
        for (int i = 7; i >= 0; i--)
            out[(*n)++] = (uint8_t)((i == 7 ? 0xc0 : 0) | (uint8_t)(v >> (8 * i)));
    }
}

struct qs_params {
    uint32_t version;
    const uint8_t *dcid;
    size_t dcid_len;
    const uint8_t *scid;
    size_t scid_len;
    const uint8_t *token;
    size_t token_len;
    uint32_t pn;
    size_t pn_len;        /* 1..4 */
    bool server;          /* use the "server in" secret */
    int length_field_len; /* 0: minimal; 2 or 4 forces that many bytes (RFC 9001 A.2 uses 2) */
    int long_type;        /* -1: Initial; else the raw 2-bit long-header type (0-RTT etc.) */
};

/*
 * Writes a protected long-header packet carrying `payload` (frames) into
 * out (capacity cap). Returns its length, or 0 on error.
 */
static inline size_t qs_seal(const struct qs_params *q, const uint8_t *payload, size_t payload_len,
                             uint8_t *out, size_t cap)
{
    static const uint8_t salt_v1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                        0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
    static const uint8_t salt_v2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                        0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};
    static const uint8_t salt_d29[20] = {0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97,
                                         0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99};
    bool v2 = q->version == QS_V2;
    const uint8_t *salt = v2 ? salt_v2 : (q->version == QS_V1 ? salt_v1 : salt_d29);
    uint8_t initial[32], secret[32], key[16], iv[12], hp[16];

    if (qs_hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, 20, q->dcid, q->dcid_len, NULL, 0, initial, 32) ||
        qs_expand_label(initial, q->server ? "server in" : "client in", secret, 32) ||
        qs_expand_label(secret, v2 ? "quicv2 key" : "quic key", key, 16) ||
        qs_expand_label(secret, v2 ? "quicv2 iv" : "quic iv", iv, 12) ||
        qs_expand_label(secret, v2 ? "quicv2 hp" : "quic hp", hp, 16))
        return 0;

    size_t pn_len = q->pn_len ? q->pn_len : 4;
    if (pn_len > 4 || q->dcid_len > 255 || q->scid_len > 255) return 0;
    size_t need = 64 + q->dcid_len + q->scid_len + q->token_len + pn_len + payload_len + 16;
    if (need > cap) return 0;

    int type = q->long_type >= 0 ? q->long_type : (v2 ? 1 : 0);
    bool is_initial = type == (v2 ? 1 : 0);
    size_t n = 0;
    out[n++] = (uint8_t)(0xc0 | (type << 4) | (pn_len - 1));
    for (int i = 3; i >= 0; i--)
        out[n++] = (uint8_t)(q->version >> (8 * i));
    out[n++] = (uint8_t)q->dcid_len;
    memcpy(out + n, q->dcid, q->dcid_len);
    n += q->dcid_len;
    out[n++] = (uint8_t)q->scid_len;
    if (q->scid_len) memcpy(out + n, q->scid, q->scid_len);
    n += q->scid_len;
    if (is_initial) {
        qs_put_varint(out, &n, q->token_len);
        if (q->token_len) memcpy(out + n, q->token, q->token_len);
        n += q->token_len;
    }
    uint64_t length = pn_len + payload_len + 16;
    if (q->length_field_len == 2) {
        out[n++] = (uint8_t)(0x40 | (length >> 8));
        out[n++] = (uint8_t)length;
    } else if (q->length_field_len == 4) {
        out[n++] = (uint8_t)(0x80 | (length >> 24));
        out[n++] = (uint8_t)(length >> 16);
        out[n++] = (uint8_t)(length >> 8);
        out[n++] = (uint8_t)length;
    } else {
        qs_put_varint(out, &n, length);
    }
    size_t pn_off = n;
    for (size_t i = 0; i < pn_len; i++)
        out[n++] = (uint8_t)(q->pn >> (8 * (pn_len - 1 - i)));
    size_t hdr_len = n;

    uint8_t nonce[12];
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 4; i++)
        nonce[11 - i] ^= (uint8_t)(q->pn >> (8 * i));

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, fin = 0;
    bool ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, nonce) == 1 &&
              EVP_EncryptUpdate(ctx, NULL, &outl, out, (int)hdr_len) == 1 &&
              EVP_EncryptUpdate(ctx, out + hdr_len, &outl, payload, (int)payload_len) == 1 &&
              EVP_EncryptFinal_ex(ctx, out + hdr_len + outl, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + hdr_len + payload_len) == 1;
    n = hdr_len + payload_len + 16;

    /* Header protection: AES-ECB of the sample taken 4 bytes after the
     * start of the packet number. */
    uint8_t mask[16];
    ok = ok && EVP_CIPHER_CTX_reset(ctx) == 1 &&
         EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, hp, NULL) == 1 &&
         EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 && pn_off + 4 + 16 <= n &&
         EVP_EncryptUpdate(ctx, mask, &outl, out + pn_off + 4, 16) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) return 0;
    out[0] ^= mask[0] & 0x0f;
    for (size_t i = 0; i < pn_len; i++)
        out[pn_off + i] ^= mask[1 + i];
    return n;
}

/* Appends a CRYPTO frame (type 0x06, offset, length, data). */
static inline size_t qs_crypto_frame(uint8_t *out, size_t n, uint64_t offset, const uint8_t *d, size_t len)
{
    out[n++] = 0x06;
    qs_put_varint(out, &n, offset);
    qs_put_varint(out, &n, len);
    memcpy(out + n, d, len);
    return n + len;
}

#endif /* KG_TEST_QUIC_SEAL_H */
