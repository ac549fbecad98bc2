/*
 * dissect/dissect_x509.c — a summary of a server certificate for the tls
 * event: subject and issuer DNs, subject CN, serial, validity (ISO 8601),
 * SHA1 and SHA256 of the DER bytes, and whether it is self-signed.
 *
 * Threads: reentrant; called on worker threads, once per certificate found
 * (not per packet). Ownership: borrows the DER bytes; everything OpenSSL
 * allocates (the decoded X509, a memory BIO, UTF-8 conversions) is freed
 * before returning, and the OpenSSL error queue of the calling thread is
 * left empty, so a hostile certificate leaves no state behind.
 *
 * Decoding X.509 by hand would be a parser of its own to harden; OpenSSL's
 * d2i_X509 is already in the process (TLS, QUIC) and fuzzed upstream.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/kg_common.h"
#include "dissect/dissect_parsers.h"

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static void hex_encode(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[d[i] >> 4];
        out[2 * i + 1] = hex_lower[d[i] & 0xF];
    }
    out[2 * n] = '\0';
}

/* Copies n bytes into out (cap bytes), cutting at a UTF-8 character
 * boundary when it does not fit. Returns true when it was cut. */
static bool copy_cut_utf8(char *out, size_t cap, const char *s, size_t n)
{
    bool cut = false;
    if (n >= cap) {
        n = cap - 1;
        /* Step back over continuation bytes (10xxxxxx) so that no
         * sequence is split; at most 3 of them in valid UTF-8. */
        size_t back = 0;
        while (n > 0 && back < 3 && ((uint8_t)s[n] & 0xC0) == 0x80) {
            n--;
            back++;
        }
        cut = true;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return cut;
}

/*
 * One DN in the usual one-line form, in certificate order:
 * "C=US, O=Example Inc, CN=www.example.com". RFC 2253 escaping of special
 * and control characters, every string converted to UTF-8, but bytes >= 0x80
 * are not escaped (a UTF-8 name stays readable; the JSON writer escapes
 * what is not valid UTF-8). Returns 0, or -1 when the BIO fails.
 */
static int dn_string(BIO *bio, const X509_NAME *name, char *out, size_t cap, bool *truncated)
{
    const unsigned long flags = ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_UTF8_CONVERT |
                                ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER | XN_FLAG_SEP_CPLUS_SPC |
                                XN_FLAG_FN_SN;
    out[0] = '\0';
    if (BIO_reset(bio) < 0) return -1;
    if (name == NULL) return 0;
    if (X509_NAME_print_ex(bio, name, 0, flags) < 0) return -1;
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) return -1;
    if (n > 0 && data != NULL && copy_cut_utf8(out, cap, data, (size_t)n)) *truncated = true;
    return 0;
}

static void subject_cn(const X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return;
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
    const ASN1_STRING *v = e ? X509_NAME_ENTRY_get_data(e) : NULL;
    if (v == NULL) return;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, v);
    if (n >= 0 && utf8 != NULL) copy_cut_utf8(out, cap, (const char *)utf8, (size_t)n);
    OPENSSL_free(utf8);
}

/* Serial number as upper-case hex pairs joined by ':' (Suricata's
 * tls.serial); "" when it does not fit out (RFC 5280 section 4.1.2.2
 * allows 20 octets; 42 fit). */
static void serial_string(const ASN1_INTEGER *serial, char *out, size_t cap)
{
    out[0] = '\0';
    if (serial == NULL) return;
    const unsigned char *d = ASN1_STRING_get0_data(serial);
    int n = ASN1_STRING_length(serial);
    if (d == NULL || n <= 0 || (size_t)n * 3 > cap) return;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i) out[o++] = ':';
        out[o++] = hex_upper[d[i] >> 4];
        out[o++] = hex_upper[d[i] & 0xF];
    }
    out[o] = '\0';
}

static char *put_num(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* "YYYY-MM-DDTHH:MM:SS" (UTC; X.509 times are UTC, RFC 5280 section
 * 4.1.2.5), out holds 24 bytes; "" when the time cannot be read. */
static void time_string(const ASN1_TIME *t, char *out)
{
    out[0] = '\0';
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return;
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) return;
    char *p = out;
    p = put_num(p, (unsigned)year, 4);
    *p++ = '-';
    p = put_num(p, (unsigned)(tm.tm_mon + 1) % 100, 2);
    *p++ = '-';
    p = put_num(p, (unsigned)tm.tm_mday % 100, 2);
    *p++ = 'T';
    p = put_num(p, (unsigned)tm.tm_hour % 100, 2);
    *p++ = ':';
    p = put_num(p, (unsigned)tm.tm_min % 100, 2);
    *p++ = ':';
    p = put_num(p, (unsigned)tm.tm_sec % 100, 2);
    *p = '\0';
}

static int digest_hex(const EVP_MD *md, const uint8_t *p, size_t len, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(p, len, d, &n, md, NULL) != 1) return -1;
    hex_encode(d, n, out);
    return 0;
}

int kg_x509_summary(const uint8_t *der, size_t len, struct kg_x509_info *out)
{
    if (out == NULL) return KG_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    if (der == NULL || len == 0 || len > LONG_MAX) return KG_ERR_PARSE;

    const unsigned char *q = der;
    X509 *x = d2i_X509(NULL, &q, (long)len);
    if (x == NULL) {
        ERR_clear_error();
        return KG_ERR_PARSE;
    }

    int rc = 0;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        rc = KG_ERR_NOMEM;
        goto done;
    }
    const X509_NAME *subj = X509_get_subject_name(x);
    const X509_NAME *iss = X509_get_issuer_name(x);
    if (dn_string(bio, subj, out->subject, sizeof(out->subject), &out->dn_truncated) < 0 ||
        dn_string(bio, iss, out->issuer, sizeof(out->issuer), &out->dn_truncated) < 0) {
        rc = KG_ERR_NOMEM;
        goto done;
    }
    if (subj) subject_cn(subj, out->subject_cn, sizeof(out->subject_cn));
    serial_string(X509_get0_serialNumber(x), out->serial, sizeof(out->serial));
    time_string(X509_get0_notBefore(x), out->not_before);
    time_string(X509_get0_notAfter(x), out->not_after);
    if (digest_hex(EVP_sha1(), der, len, out->sha1) < 0 ||
        digest_hex(EVP_sha256(), der, len, out->sha256) < 0) {
        rc = KG_ERR_NOMEM;
        goto done;
    }

    /* Self-signed: issued by itself (same DN) and signed by its own key.
     * A name match alone is not enough: an intermediate CA can share its
     * issuer's name. X509_verify returns 1 only for a good signature (0 for
     * a bad one, -1 for an unsupported algorithm or key). */
    if (subj && iss && X509_NAME_cmp(subj, iss) == 0) {
        EVP_PKEY *key = X509_get0_pubkey(x);
        out->self_signed = key != NULL && X509_verify(x, key) == 1;
    }

done:
    BIO_free(bio);
    X509_free(x);
    ERR_clear_error();
    if (rc < 0) memset(out, 0, sizeof(*out));
    return rc;
}
