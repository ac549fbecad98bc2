/*
 * dissect/dissect_parsers.h — application-layer parsers that nDPI 4.2 does
 * not give us in full (it keeps one DNS name and one HTTP request per flow).
 * Private to dissect/. They take bytes, never sockets, allocate nothing,
 * and never read outside [p, p+len): they are unit-tested and fuzzed.
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
 * label is written as "\.", a '\' as "\\"); valid during the call.
 */
typedef void (*kg_dns_question_fn)(void *user, const char *name, size_t name_len, uint16_t qtype,
                                   uint16_t qclass);

/*
 * Parses one DNS message (UDP payload, or a TCP message without its length
 * prefix). Follows compression pointers (backwards only, bounded hops),
 * rejects names over 255 wire bytes. Returns the number of questions
 * reported (>= 0), or -1 when the header or the question section is
 * malformed (questions reported before the error stay reported).
 * info may be NULL.
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
 * present and inside the payload. Returns the number of requests reported.
 */
typedef void (*kg_http_request_fn)(void *user, const struct kg_http_request *req);
int kg_http_parse_requests(const uint8_t *p, size_t len, kg_http_request_fn cb, void *user);

#endif /* KG_DISSECT_PARSERS_H */
