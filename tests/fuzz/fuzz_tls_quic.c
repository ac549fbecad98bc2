/*
 * tests/fuzz/fuzz_tls_quic.c — libFuzzer harness for the TLS ClientHello
 * parser (JA3/JA4), the server-certificate locator and the QUIC Initial
 * decryptor (dissect_parsers.h; dissect_tls.c, dissect_quic.c).
 *
 * Each input goes
 *  - to kg_tls_parse_client_hello as TLS, QUIC and DTLS,
 *  - to kg_tls_find_server_cert,
 *  - to kg_quic_parse_initial as a raw datagram, and
 *  - sealed as the frames of a correctly protected client Initial (v1 or
 *    v2 by the first byte; tests/unit/quic_seal.h), so that the frame
 *    walker and the CRYPTO reassembly see fuzzer-chosen plaintext: random
 *    bytes would essentially never pass AES-GCM authentication.
 * Contract checks abort: results in range, strings terminated inside
 * their arrays, certificate inside the input, an intact Initial always
 * decrypts, contiguous within the buffer and only over received bytes.
 *
 * Build and run (from the repository root):
 *   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_tls_quic
 *   ./build-fuzz/tests/fuzz_tls_quic -max_len=2048 corpus/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dissect/dissect_parsers.h"
#include "quic_seal.h"

static void check_hello(int rc, const struct kg_tls_client_hello *h)
{
    if (rc != 0 && rc != -1) abort();
    if (rc != 0) return;
    if (!memchr(h->sni, 0, sizeof(h->sni)) || !memchr(h->alpn, 0, sizeof(h->alpn)) ||
        !memchr(h->ja3_full, 0, sizeof(h->ja3_full)))
        abort();
    if (strnlen(h->ja3, sizeof(h->ja3)) != 32 || strnlen(h->ja4, sizeof(h->ja4)) != 36) abort();
}

static void check_crypto(int rc, const struct kg_quic_crypto *c)
{
    if (rc < -1 || c->contiguous > KG_QUIC_CRYPTO_MAX) abort();
    for (size_t i = 0; i < c->contiguous; i++)
        if (!((c->have[i >> 3] >> (i & 7)) & 1)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kg_quic_crypto c;
    struct kg_tls_client_hello h;

    check_hello(kg_tls_parse_client_hello(data, size, 't', &h), &h);
    check_hello(kg_tls_parse_client_hello(data, size, 'q', &h), &h);
    check_hello(kg_tls_parse_client_hello(data, size, 'd', &h), &h);

    const uint8_t *cert = NULL;
    size_t cert_len = 0;
    int rc = kg_tls_find_server_cert(data, size, &cert, &cert_len);
    if (rc < -1 || rc > 1) abort();
    if (rc == 1 && (cert < data || cert_len == 0 || cert_len > (size_t)(data + size - cert))) abort();

    memset(&c, 0, sizeof(c));
    check_crypto(kg_quic_parse_initial(data, size, &c, NULL), &c);

    /* The input as the plaintext of a protected client Initial. */
    if (size >= 1 && size <= 4096) {
        static uint8_t frames[4096 + 32], pkt[4096 + 256];
        static const uint8_t dcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
        size_t n = size - 1;
        memcpy(frames, data + 1, n);
        memset(frames + n, 0, 32); /* PADDING: room for the header-protection sample */
        struct qs_params q = {data[0] & 1 ? QS_V2 : QS_V1, dcid,  8, NULL, 0, NULL, 0, data[0] >> 2,
                              1 + (data[0] >> 1 & 1),      false, 0, -1};
        size_t pn = qs_seal(&q, frames, n + 32, pkt, sizeof(pkt));
        if (pn == 0) abort();
        memset(&c, 0, sizeof(c));
        rc = kg_quic_parse_initial(pkt, pn, &c, NULL);
        if (rc < 0) abort(); /* intact: must decrypt */
        check_crypto(rc, &c);
        /* What was placed parses or fails cleanly as a ClientHello. */
        check_hello(kg_tls_parse_client_hello(c.data, c.contiguous, 'q', &h), &h);
    }
    return 0;
}
