/*
 * indicators/indicators_sign.c — detached Ed25519 signatures on feeds.
 *
 * The central team signs each feed file with its Ed25519 key (RFC 8032,
 * "pure" Ed25519 over the whole file: `openssl pkeyutl -sign -rawin`) and
 * ships the 64-byte signature beside it as FILE.sig, raw or base64. A
 * sensor trusts a list of public keys (PEM, `openssl pkey -pubout`); a feed
 * is accepted when any of them verifies it, so keys can be rotated by
 * trusting old and new for a while. Verification goes through OpenSSL's
 * EVP interface (EVP_DigestVerify with a NULL digest, as Ed25519 requires).
 *
 * kg_indicator_set_load_file_signed() verifies and parses the same bytes,
 * read once, so a feed replaced between the check and the load cannot slip
 * through. Pure Ed25519 has no streaming mode, so a signed feed is held in
 * memory whole while it loads.
 *
 * Threads: control plane; no shared state. Ownership: keys and buffers live
 * for one call.
 */
#include "indicators/indicators_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>

#define KG_ED25519_SIG_LEN 64

/* Signature bytes from PATH.sig: 64 raw bytes, or base64 of 64 bytes
 * (line breaks and blanks allowed, as `openssl base64` writes them). */
static int read_signature(const char *file, unsigned char *sig, struct kg_err *err)
{
    size_t n = strlen(file);
    char *sig_path = kg_xmalloc(n + 5);
    memcpy(sig_path, file, n);
    memcpy(sig_path + n, ".sig", 5);
    struct kg_buf b;
    kg_buf_init(&b);
    char eb[128];
    int rc = 0;
    FILE *f = fopen(sig_path, "rb");
    if (!f) {
        int e = errno;
        rc = e == ENOENT ? kg_err_set(err, KG_ERR_IO, "%s: not signed (no %s)", file, sig_path)
                         : kg_err_set(err, KG_ERR_IO, "%s: cannot open: %s", sig_path, strerror_r(e, eb, sizeof(eb)));
        free(sig_path);
        return rc;
    }
    fclose(f);
    rc = kg_ind_read_file(sig_path, &b, err);
    if (rc == 0) {
        if (b.len == KG_ED25519_SIG_LEN) {
            memcpy(sig, b.data, KG_ED25519_SIG_LEN);
        } else {
            /* Base64: drop white space, then decode with OpenSSL's block
             * decoder (which pads the output to whole 3-byte groups). */
            char *clean = kg_xmalloc(b.len + 1);
            size_t k = 0;
            for (size_t i = 0; i < b.len; i++)
                if (b.data[i] != '\n' && b.data[i] != '\r' && b.data[i] != ' ' && b.data[i] != '\t')
                    clean[k++] = b.data[i];
            unsigned char out[96];
            int dn = k == 88 ? EVP_DecodeBlock(out, (const unsigned char *)clean, (int)k) : -1;
            /* 88 base64 characters end in "==" for 64 bytes: 66 decoded, 2 padding. */
            if (dn != 66 || clean[86] != '=' || clean[87] != '=') {
                rc = kg_err_set(err, KG_ERR_PARSE,
                                "%s: not an Ed25519 signature (need 64 raw bytes or their base64, got %zu bytes)",
                                sig_path, b.len);
            } else {
                memcpy(sig, out, KG_ED25519_SIG_LEN);
            }
            free(clean);
        }
    }
    kg_buf_free(&b);
    free(sig_path);
    return rc;
}

static int load_key(const char *path, EVP_PKEY **out, struct kg_err *err)
{
    char eb[128];
    FILE *f = fopen(path, "rb");
    if (!f)
        return kg_err_set(err, KG_ERR_IO, "trusted key %s: cannot open: %s", path, strerror_r(errno, eb, sizeof(eb)));
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    if (!k) return kg_err_set(err, KG_ERR_PARSE, "trusted key %s: not a PEM public key", path);
    if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return kg_err_set(err, KG_ERR_PARSE, "trusted key %s: not an Ed25519 key", path);
    }
    *out = k;
    return 0;
}

static bool verify_one(EVP_PKEY *key, const unsigned char *sig, const char *data, size_t len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) return false;
    bool ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestVerify(md, sig, KG_ED25519_SIG_LEN, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* Verifies data (the content of `file`) against file.sig and the keys. */
static int verify_bytes(const char *file, const char *data, size_t len, const char *const *keys, size_t n,
                        struct kg_err *err)
{
    if (!keys || n == 0)
        return kg_err_set(err, KG_ERR_INVAL, "%s: no trusted keys configured to verify its signature", file);
    unsigned char sig[KG_ED25519_SIG_LEN];
    int rc = read_signature(file, sig, err);
    if (rc < 0) return rc;
    /* Every key is loaded first: a broken key file is a configuration error
     * to report, whichever key would have verified. */
    EVP_PKEY **pk = kg_xcalloc(n, sizeof(*pk));
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = keys[i] ? load_key(keys[i], &pk[i], err) : kg_err_set(err, KG_ERR_INVAL, "trusted key %zu is NULL", i);
    bool ok = false;
    for (size_t i = 0; i < n && rc == 0 && !ok; i++)
        ok = verify_one(pk[i], sig, data, len);
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(pk[i]);
    free(pk);
    if (rc < 0) return rc;
    if (!ok)
        return kg_err_set(err, KG_ERR_INVAL, "%s: signature does not verify with any of the %zu trusted key%s", file,
                          n, n == 1 ? "" : "s");
    return 0;
}

int kg_indicator_verify_file(const char *path, const char *const *pubkey_pem_paths, size_t n,
                             struct kg_err *err)
{
    if (!path) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    const char *file;
    kg_ind_format_split(path, &file);
    struct kg_buf b;
    kg_buf_init(&b);
    int rc = kg_ind_read_file(file, &b, err);
    if (rc == 0) rc = verify_bytes(file, b.data ? b.data : "", b.len, pubkey_pem_paths, n, err);
    kg_buf_free(&b);
    return rc;
}

int kg_indicator_set_load_file_signed(struct kg_indicator_set *s, const char *path,
                                      const char *const *pubkey_pem_paths, size_t n,
                                      struct kg_indicator_load_report *rep, struct kg_err *err)
{
    if (rep) memset(rep, 0, sizeof(*rep));
    if (!s || !path) return kg_err_set(err, KG_ERR_INVAL, "invalid arguments");
    const char *file;
    enum kg_ind_format fmt = kg_ind_format_split(path, &file);
    if (kg_ind_set_is_final(s))
        return kg_err_set(err, KG_ERR_INVAL, "%s: indicator set is already finalized", file);
    struct kg_buf b;
    kg_buf_init(&b);
    int rc = kg_ind_read_file(file, &b, err);
    if (rc == 0) rc = verify_bytes(file, b.data ? b.data : "", b.len, pubkey_pem_paths, n, err);
    if (rc == 0) rc = kg_ind_load_memory(s, fmt, file, b.data ? b.data : "", b.len, rep, err);
    kg_buf_free(&b);
    return rc;
}
