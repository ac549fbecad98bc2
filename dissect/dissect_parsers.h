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
    uint16_t flags; /* the whole flags word (QR, Opcode, AA, TC, RD, RA, Z, AD, CD, RCODE) */
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

/* One resource record of the answer section (RFC 1035 section 4.1.3).
 * Every pointer is valid during the callback only. */
struct kg_dns_answer {
    const char *name; /* owner name, presentation form as for questions, NUL-terminated */
    size_t name_len;
    uint16_t rrtype;
    uint16_t rrclass; /* as sent (mDNS: top bit = cache-flush, RFC 6762 section 10.2) */
    uint32_t ttl;     /* as sent (RFC 2181 section 8 reads values >= 2^31 as 0: the consumer's call) */
    uint16_t rdlength;
    uint8_t addr_family; /* 4: A record, 6: AAAA record (addr holds it); 0: no address */
    uint8_t addr[16];    /* network byte order; IPv4 in the first 4 bytes */
    const char *target;  /* CNAME, PTR, NS: the name in RDATA, presentation form,
                            NUL-terminated; NULL for other types or a malformed name */
    size_t target_len;
};

typedef void (*kg_dns_answer_fn)(void *user, const struct kg_dns_answer *ans);

/*
 * kg_dns_parse_message() plus the answer section: after the questions, each
 * of the ancount resource records is reported through acb (when acb is
 * NULL, the answer section is not looked at and this is exactly
 * kg_dns_parse_message()). Every record is reported with its owner name,
 * type, class, TTL and RDLENGTH; RDATA is decoded for A (RDLENGTH 4), AAAA
 * (RDLENGTH 16), CNAME, PTR and NS (the target name, decompressed under the
 * same rules as question names, its labels inside RDATA); other types and
 * RDATA of an unexpected size are reported without data. The authority and
 * additional sections are not looked at. Returns the number of questions
 * plus answers reported (>= 0), or -1 when the header, a question or an
 * answer record (its owner name, its fixed fields or an RDATA running past
 * the message) is malformed or truncated; records reported before the
 * error stay reported. A large ancount is bounded by the data (each record
 * takes at least 11 bytes). info, qcb and acb may be NULL. Allocates
 * nothing; uses two name buffers (2 KiB) of stack.
 */
int kg_dns_parse_message_full(const uint8_t *p, size_t len, struct kg_dns_msg_info *info,
                              kg_dns_question_fn qcb, kg_dns_answer_fn acb, void *user);

/* ---- HTTP/1.x requests and responses (RFC 9112 sections 3-6) -------------- */

struct kg_http_request {
    const char *method;
    size_t method_len;
    const char *uri; /* request-target as sent */
    size_t uri_len;
    const char *host; /* Host header value, trimmed; NULL if absent */
    size_t host_len;
    const char *user_agent; /* NULL if absent */
    size_t user_agent_len;
    uint8_t version_minor;    /* 0 or 1 (HTTP/1.x); 9 for a bare HTTP/0.9 line */
    const char *content_type; /* Content-Type value, trimmed; NULL if absent */
    size_t content_type_len;
    bool has_content_length; /* a valid Content-Length header was seen */
    uint64_t content_length; /* its value (UINT64_MAX when too large to hold) */
};

/*
 * Finds HTTP/1.x requests in a client-to-server TCP payload: a request
 * starts at offset 0 or right after a previous request's header block
 * (pipelining) and must begin with a known method token followed by a
 * space. The header block must be complete in this payload (up to
 * "\r\n\r\n" or "\n\n"); a request whose headers are cut off is still
 * reported when its request line is complete (host, user_agent and
 * content_type then NULL unless their lines are complete). Bodies are
 * skipped by Content-Length when it is present and inside the payload;
 * after a Transfer-Encoding, an invalid Content-Length, a body running past
 * the payload or an HTTP/0.9 line ("GET /path" CRLF) the search stops.
 * Returns the number of requests reported. The strings in *req point into
 * p; cb may be NULL.
 */
typedef void (*kg_http_request_fn)(void *user, const struct kg_http_request *req);
int kg_http_parse_requests(const uint8_t *p, size_t len, kg_http_request_fn cb, void *user);

struct kg_http_response {
    uint8_t version_minor; /* 0 or 1 */
    uint16_t status;       /* 100..999 */
    const char *reason;    /* reason phrase as sent (may be empty, never NULL) */
    size_t reason_len;
    const char *content_type; /* Content-Type value, trimmed; NULL if absent */
    size_t content_type_len;
    bool has_content_length; /* a valid Content-Length header was seen */
    uint64_t content_length; /* its value (UINT64_MAX when too large to hold) */
};

/*
 * Finds HTTP/1.x responses in a server-to-client TCP payload: the payload
 * must start with a status line, "HTTP/1.0" or "HTTP/1.1", SP, a 3-digit
 * status code (first digit 1-9) and the rest of the line up to its LF. A
 * response is reported when its status line is complete; content_type and
 * the length only when their header lines are complete too. The search
 * goes on after a response without a body (1xx, 204, 304; e.g. "100
 * Continue" and then the final response) or whose Content-Length body lies
 * inside the payload, provided the next bytes start a status line; it
 * stops after a Transfer-Encoding, an invalid or missing Content-Length (the
 * body then runs to the end of the connection) or a body running past the
 * payload. Returns the number of responses reported. The strings in *resp
 * point into p; cb may be NULL.
 */
typedef void (*kg_http_response_fn)(void *user, const struct kg_http_response *resp);
int kg_http_parse_responses(const uint8_t *p, size_t len, kg_http_response_fn cb, void *user);

/* ---- X.509 server certificate summary (RFC 5280), dissect_x509.c ---------- */

#define KG_X509_DN_MAX 1024

/* What the tls event says about a certificate. Strings are NUL-terminated
 * (UTF-8 as the certificate has it; invalid bytes are possible, escape on
 * output); a DN longer than KG_X509_DN_MAX - 1 bytes is cut at a character
 * boundary and flagged. */
struct kg_x509_info {
    char subject[KG_X509_DN_MAX]; /* "C=US, O=Example, CN=www.example.com" (certificate order) */
    char subject_cn[256];         /* first commonName of the subject, "" if none */
    char issuer[KG_X509_DN_MAX];  /* issuer DN, same form */
    char serial[128];             /* "0A:1B:..." (upper-case hex pairs, as Suricata), "" if unreadable */
    char not_before[24];          /* "2024-01-31T12:00:00" (UTC, ISO 8601 as Suricata writes it) */
    char not_after[24];
    char sha1[41];    /* SHA1 of the DER bytes given, lower-case hex */
    char sha256[65];  /* SHA256 of the DER bytes given, lower-case hex */
    bool self_signed; /* subject == issuer and the signature verifies with the certificate's own key */
    bool dn_truncated;
};

/*
 * Decodes one DER certificate (as found by kg_tls_find_server_cert()) with
 * OpenSSL's d2i_X509 and fills *out. The digests cover exactly
 * [der, der+len). Returns 0, or KG_ERR_PARSE when the bytes are not a
 * certificate OpenSSL can read (then *out is zeroed), KG_ERR_NOMEM when
 * OpenSSL fails to allocate. Thread-safe; allocates inside OpenSSL (the
 * decoded certificate, a memory BIO), so call it once per certificate, not
 * per packet.
 */
int kg_x509_summary(const uint8_t *der, size_t len, struct kg_x509_info *out);

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
 * found (as soon as that certificate is complete, even if the rest of the
 * chain is not), 0 when not (yet) present or the chain is empty, -1 when
 * malformed, including a message type a server's clear-text flight cannot
 * carry (e.g. encrypted bytes). cert and cert_len may be NULL.
 */
int kg_tls_find_server_cert(const uint8_t *p, size_t len, const uint8_t **cert, size_t *cert_len);

/* What a ServerHello tells (RFC 8446 4.1.3). */
struct kg_tls_server_hello {
    uint16_t legacy_version;
    uint16_t version; /* negotiated: supported_versions when present (TLS 1.3), else legacy_version */
    uint16_t cipher;
    char ja3s[33];    /* JA3S MD5 of "SSLVersion,Cipher,SSLExtension" (GREASE removed), "" if unavailable */
};

/* Parses a ServerHello handshake message (`p` at its handshake header; the
 * whole message present). Returns 0, or -1 when malformed. */
int kg_tls_parse_server_hello(const uint8_t *p, size_t len, struct kg_tls_server_hello *out);

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
