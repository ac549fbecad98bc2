/*
 * dissect/dissect_parsers.h — application-layer parsers that nDPI 4.2 does
 * not give us in full (it keeps one DNS name and one HTTP request per flow).
 * Private to dissect/. They take bytes, never sockets, allocate nothing,
 * and never read outside [p, p+len): they are unit-tested and fuzzed.
 * Threads: stateless, callable from any number of worker threads at once.
 * Ownership: both borrow the bytes for the duration of the call only.
 */
#ifndef KG_DISSECT_PARSERS_H
#define KG_DISSECT_PARSERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- DNS (RFC 1035 section 4; also mDNS RFC 6762 and LLMNR RFC 4795) ---- */

#define KG_DNS_NAME_MAX 1025 /* escaped presentation form fits here */

struct kg_dns_msg_info {
    uint16_t id;
    bool is_response;
    uint8_t opcode;
    uint8_t rcode;
    uint16_t qdcount, ancount, nscount, arcount;
};

/*
 * Called for each question of a message. `name` is the question name in
 * presentation form without the trailing dot ("www.example.com"; the root
 * is ""), NUL-terminated; label bytes are copied as they are (a '.' inside a
 * label is written as "\.", a '\' as "\\"; any other byte, NUL included,
 * is copied raw, so use name_len, and escape for JSON later); valid during
 * the call. qclass is as sent: mDNS puts its unicast-response bit in the
 * top bit (RFC 6762 section 5.4).
 */
typedef void (*kg_dns_question_fn)(void *user, const char *name, size_t name_len, uint16_t qtype,
                                   uint16_t qclass);

/*
 * Parses one DNS message (UDP payload, or a TCP message without its length
 * prefix): the header into *info, and each question of the question section
 * through cb; the other sections are not looked at. Follows compression
 * pointers only backwards (before the start of the label run that holds
 * them, never into the header; at most 64 hops), rejects label types
 * 0x40/0x80 and names over 255 wire bytes. Returns the number of questions
 * reported (>= 0), or -1 when the header (len < 12) or the question section
 * is malformed or truncated (questions reported before the error stay
 * reported). info (zeroed when len < 12) and cb may be NULL. A large
 * qdcount is bounded by the data: capping observations is the caller's job.
 */
int kg_dns_parse_message(const uint8_t *p, size_t len, struct kg_dns_msg_info *info, kg_dns_question_fn cb,
                         void *user);

/* ---- HTTP/1.x requests (RFC 9112 section 3) ------------------------------ */

struct kg_http_request {
    const char *method;
    size_t method_len;
    const char *uri; /* request-target as sent */
    size_t uri_len;
    const char *host; /* Host header value, trimmed; NULL if absent */
    size_t host_len;
    const char *user_agent; /* NULL if absent */
    size_t user_agent_len;
    uint8_t version_minor; /* 0 or 1 (HTTP/1.x); 9 for a bare HTTP/0.9 line */
};

/*
 * Finds HTTP/1.x requests in a client-to-server TCP payload: a request
 * starts at offset 0 or right after a previous request's header block
 * (pipelining) and must begin with a known method token followed by a
 * space. The header block must be complete in this payload (up to
 * "\r\n\r\n" or "\n\n"); a request whose headers are cut off is still
 * reported when its request line is complete (host then NULL unless the
 * Host line is complete). Bodies are skipped by Content-Length when it is
 * present and inside the payload; after a Transfer-Encoding, an invalid
 * Content-Length, a body running past the payload or an HTTP/0.9 line
 * ("GET /path" CRLF) the search stops. Returns the number of requests
 * reported. The strings in *req point into p; cb may be NULL.
 */
typedef void (*kg_http_request_fn)(void *user, const struct kg_http_request *req);
int kg_http_parse_requests(const uint8_t *p, size_t len, kg_http_request_fn cb, void *user);

/* ---- TLS handshake (RFC 8446 section 4, RFC 5246 section 7.4) ---------- */

#define KG_TLS_SNI_MAX 256
#define KG_TLS_ALPN_MAX 64

/* What a ClientHello tells. Strings are NUL-terminated. */
struct kg_tls_client_hello {
    uint16_t legacy_version;       /* ClientHello.legacy_version */
    uint16_t max_version;          /* newest non-GREASE supported_versions entry, else legacy_version */
    char sni[KG_TLS_SNI_MAX];      /* first host_name of server_name, "" if none (bytes as sent) */
    char alpn[KG_TLS_ALPN_MAX];    /* first ALPN protocol, "" if none */
    char ja3[33];                  /* JA3 MD5, lower-case hex ("" if MD5 is unavailable) */
    char ja3_full[4096];           /* JA3 string (display copy, truncated if longer) */
    bool ja3_full_truncated;       /* ja3_full is a prefix; ja3 still hashes the whole string */
    char ja4[40];                  /* JA4 (FoxIO spec), e.g. "t13d1516h2_8daaf6152771_02713d6af862" */
};

/*
 * Parses a ClientHello handshake message: `p` starts at the handshake
 * header (type 1, 24-bit length) and must hold the whole message (bytes
 * after it are ignored). `transport` is 't' (TLS over TCP), 'q' (QUIC) or
 * 'd' (DTLS) for JA4; with 'd', `p` starts at the 12-byte DTLS handshake
 * header (RFC 6347 section 4.2.2) of an unfragmented message, and the
 * cookie is skipped. JA3 per the JA3 specification (decimal values joined
 * by '-', GREASE values of RFC 8701 removed), its MD5 taken over the whole
 * string however long; JA4 per the FoxIO JA4 specification. The rules are
 * in docs/FINGERPRINTS.md. Returns 0, or -1 when the message is malformed
 * (then *out is zeroed). Allocates one OpenSSL digest context per call.
 */
int kg_tls_parse_client_hello(const uint8_t *p, size_t len, char transport, struct kg_tls_client_hello *out);

/*
 * Walks the handshake messages of a server's TLS stream (`p` holds
 * handshake bytes, records already stripped) and reports the first
 * certificate of the first Certificate message (TLS 1.2 and below; in TLS
 * 1.3 it is encrypted). Returns 1 with *cert and *cert_len pointing into p when
 * found, 0 when not (yet) present, -1 when malformed.
 */
int kg_tls_find_server_cert(const uint8_t *p, size_t len, const uint8_t **cert, size_t *cert_len);

/* ---- QUIC Initial (RFC 9000, RFC 9001 section 5, RFC 9369 for v2) ------- */

/* CRYPTO stream of a client's Initial packets, reassembled by offset
 * (Chrome scatters and reorders CRYPTO frames, and a large ClientHello
 * spans several Initial packets). Zero it before first use. */
#define KG_QUIC_CRYPTO_MAX 8192
struct kg_quic_crypto {
    uint8_t data[KG_QUIC_CRYPTO_MAX];
    uint8_t have[KG_QUIC_CRYPTO_MAX / 8]; /* bitmap of the bytes received */
    size_t contiguous;                    /* bytes available from offset 0 */
};

/*
 * Removes header protection from and decrypts every client Initial packet
 * in a UDP datagram (coalesced packets are walked; versions 1 (RFC 9001),
 * 2 (RFC 9369) and drafts 29..32), and places the data of their CRYPTO
 * frames into `c` at their offsets (bytes past KG_QUIC_CRYPTO_MAX are
 * dropped), updating c->contiguous. Nothing is placed from a packet that
 * fails authentication. *version (may be NULL) receives the QUIC version
 * of the first packet (0 if none). Returns the number of CRYPTO bytes
 * placed (0: no client Initial in the datagram, e.g. a short-header or
 * version-negotiation packet, an unknown version, or an Initial with only
 * ACK/PADDING), or -1 when the first packet is malformed or no Initial in
 * the datagram decrypts (a server's Initial always fails: its keys differ).
 * A later coalesced packet that is malformed ends the walk. Initial
 * packets whose payload exceeds 16 KiB are not decrypted (-1).
 * Uses OpenSSL (HKDF-SHA256, AES-128-GCM, AES-128-ECB); allocates nothing
 * per call beyond one OpenSSL cipher and one digest context.
 */
int kg_quic_parse_initial(const uint8_t *p, size_t len, struct kg_quic_crypto *c, uint32_t *version);

#endif /* KG_DISSECT_PARSERS_H */
