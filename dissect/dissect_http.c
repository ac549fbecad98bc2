/*
 * dissect/dissect_http.c — finds HTTP/1.x messages in TCP payloads (RFC 9112
 * sections 2-6): requests in client-to-server payloads (request line, Host,
 * User-Agent, Content-Type, Content-Length; pipelined requests included)
 * and responses in server-to-client payloads (status line, Content-Type,
 * Content-Length; a 1xx response followed by the final one included).
 *
 * Threads: runs on worker threads for every payload of a TCP flow that may
 * carry HTTP; it keeps no state, so any number of threads may call it at
 * once. The first check (a known method token, or "HTTP/1.", at offset 0)
 * rejects almost every non-HTTP payload after looking at one or two bytes.
 * Ownership: borrows the payload; the strings in struct kg_http_request and
 * struct kg_http_response point into it and are valid during the callback
 * only. Allocates nothing.
 *
 * This is a sensor, not a server: it reports what a server (or client)
 * would most likely have seen and never reads outside [p, p+len). When it
 * cannot tell where the next message starts (chunked or unknown body
 * length, body past the end of the payload), it stops rather than guess.
 */
#include <string.h>

#include "dissect/dissect_parsers.h"

struct http_method {
    char name[10];
    uint8_t len;
};

/* Case-sensitive (RFC 9110 section 9.1): RFC 9110 methods, PATCH (RFC 5789)
 * and the WebDAV ones (RFC 4918). */
static const struct http_method http_methods[] = {
    {"GET", 3},     {"POST", 4},  {"HEAD", 4},  {"PUT", 3},      {"DELETE", 6},    {"CONNECT", 7},
    {"OPTIONS", 7}, {"TRACE", 5}, {"PATCH", 5}, {"PROPFIND", 8}, {"PROPPATCH", 9}, {"MKCOL", 5},
    {"COPY", 4},    {"MOVE", 4},  {"LOCK", 4},  {"UNLOCK", 6},
};

/* Length of the known method at p followed by one SP, or 0. */
static size_t http_match_method(const uint8_t *p, size_t len)
{
    /* Shortest useful input is "GET /\n". */
    if (len < 6) return 0;
    /* First letters of the known methods: one memchr rejects nearly all
     * non-HTTP payloads (TLS, SSH, binary) before any string compare. */
    if (memchr("CDGHLMOPTU", p[0], 10) == NULL) return 0;
    for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++) {
        const struct http_method *m = &http_methods[i];
        if (m->name[0] == (char)p[0] && len > m->len && p[m->len] == ' ' && memcmp(p, m->name, m->len) == 0)
            return m->len;
    }
    return 0;
}

static inline uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* Locale-independent case-insensitive match of a header name; `lit` is
 * lower case. */
static bool name_is(const uint8_t *name, size_t name_len, const char *lit, size_t lit_len)
{
    if (name_len != lit_len) return false;
    for (size_t i = 0; i < lit_len; i++) {
        if (ascii_lower(name[i]) != (uint8_t)lit[i]) return false;
    }
    return true;
}

#define NAME_IS(n, nl, lit) name_is((n), (nl), lit, sizeof(lit) - 1)

/* What the header block tells us about where the message ends. */
struct http_body {
    bool has_cl;
    bool cl_invalid; /* unparsable or conflicting Content-Length */
    bool has_te;     /* any Transfer-Encoding */
    uint64_t cl;
};

/* The header fields we report, for requests and responses alike. */
struct http_fields {
    const char *host;
    size_t host_len;
    const char *user_agent;
    size_t user_agent_len;
    const char *content_type;
    size_t content_type_len;
};

/* RFC 9110 section 8.6: Content-Length = 1*DIGIT. A value larger than any
 * payload is kept as UINT64_MAX ("runs past the end"). Lists ("42, 42") and
 * anything else are treated as invalid: we then cannot find the next
 * message and stop, as a server would reject it (RFC 9112 section 6.3). */
static void http_content_length(struct http_body *b, const uint8_t *v, size_t vlen)
{
    uint64_t n = 0;
    if (vlen == 0) {
        b->cl_invalid = true;
        return;
    }
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9') {
            b->cl_invalid = true;
            return;
        }
        unsigned d = (unsigned)(v[i] - '0');
        n = (n > (UINT64_MAX - d) / 10) ? UINT64_MAX : n * 10 + d;
    }
    if (b->has_cl && b->cl != n) b->cl_invalid = true;
    b->has_cl = true;
    b->cl = n;
}

/* One "name: value" line (without its line ending). Lines without a colon,
 * with whitespace in the name (RFC 9112 section 5.1 forbids it) or starting
 * with whitespace (obsolete line folding, section 5.2) are ignored. */
static void http_header_line(const uint8_t *line, size_t n, struct http_fields *f, struct http_body *b)
{
    const uint8_t *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line) return;
    size_t name_len = (size_t)(colon - line);
    const uint8_t *v = colon + 1;
    const uint8_t *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);

    /* Dispatch on the name length first: most headers match no length. */
    switch (name_len) {
    case 4:
        /* The first Host wins; a second one makes the request invalid for
         * a server (RFC 9112 section 3.2), but we still report it. */
        if (f->host == NULL && NAME_IS(line, name_len, "host")) {
            f->host = (const char *)v;
            f->host_len = vlen;
        }
        break;
    case 10:
        if (f->user_agent == NULL && NAME_IS(line, name_len, "user-agent")) {
            f->user_agent = (const char *)v;
            f->user_agent_len = vlen;
        }
        break;
    case 12:
        /* RFC 9110 section 8.3 allows one; the first wins. */
        if (f->content_type == NULL && NAME_IS(line, name_len, "content-type")) {
            f->content_type = (const char *)v;
            f->content_type_len = vlen;
        }
        break;
    case 14:
        if (NAME_IS(line, name_len, "content-length")) http_content_length(b, v, vlen);
        break;
    case 17:
        /* Any transfer coding overrides Content-Length (RFC 9112 section
         * 6.3); chunked framing is not followed here. */
        if (NAME_IS(line, name_len, "transfer-encoding")) b->has_te = true;
        break;
    default:
        break;
    }
}

/*
 * Header lines from `pos` until the empty line that ends the block (RFC 9112
 * section 2.1). A line counts only once its LF is in the payload. Returns
 * true when the block is complete, with *body_start just past it.
 */
static bool http_header_block(const uint8_t *p, size_t len, size_t pos, struct http_fields *f,
                              struct http_body *b, size_t *body_start)
{
    while (pos < len) {
        const uint8_t *lf = memchr(p + pos, '\n', len - pos);
        if (lf == NULL) break;
        size_t eol = (size_t)(lf - p);
        size_t end = (eol > pos && p[eol - 1] == '\r') ? eol - 1 : eol;
        if (end == pos) {
            *body_start = eol + 1;
            return true;
        }
        http_header_line(p + pos, end - pos, f, b);
        pos = eol + 1;
    }
    return false;
}

/* The line end at p[e]: CRLF or a bare LF (RFC 9112 section 2.2). Returns
 * the offset after it, or 0 when p[e] does not end the line. */
static size_t http_eol(const uint8_t *p, size_t len, size_t e)
{
    if (e >= len) return 0;
    if (p[e] == '\n') return e + 1;
    if (p[e] == '\r' && e + 1 < len && p[e + 1] == '\n') return e + 2;
    return 0;
}

/* Outcome of parsing one message at a given offset. */
enum http_step {
    HTTP_NOT_MESSAGE, /* no (complete) request or status line: report nothing, stop */
    HTTP_LAST,        /* reported; nothing usable after it */
    HTTP_NEXT,        /* reported; the next message may start at *next */
};

/* Where the message whose header block ended at body_start ends, given
 * its body length `cl`: HTTP_NEXT with *next set when the body lies inside
 * the payload, else HTTP_LAST. */
static enum http_step http_skip_body(size_t len, size_t body_start, uint64_t cl, size_t *next)
{
    if (cl > (uint64_t)(len - body_start)) return HTTP_LAST;
    *next = body_start + (size_t)cl;
    return HTTP_NEXT;
}

static enum http_step http_parse_request(const uint8_t *p, size_t len, size_t off, size_t *next,
                                         kg_http_request_fn cb, void *user)
{
    size_t mlen = http_match_method(p + off, len - off);
    if (mlen == 0) return HTTP_NOT_MESSAGE;

    struct kg_http_request req;
    memset(&req, 0, sizeof(req));
    req.method = (const char *)(p + off);
    req.method_len = mlen;

    /* request-target: up to the next SP or line end; no control bytes
     * (RFC 9112 section 3.2; bytes >= 0x80 are tolerated, clients send raw
     * UTF-8 and we want to see it). */
    size_t t = off + mlen + 1;
    size_t i = t;
    while (i < len && p[i] > 0x20 && p[i] != 0x7F)
        i++;
    if (i == len || i == t) return HTTP_NOT_MESSAGE; /* cut off, or empty target / double SP */
    req.uri = (const char *)(p + t);
    req.uri_len = i - t;

    size_t pos; /* start of the first header line */
    if (p[i] == ' ') {
        /* HTTP-version = "HTTP/1." DIGIT, then CRLF or bare LF (section 2.2). */
        size_t v = i + 1;
        if (len - v < 9 || memcmp(p + v, "HTTP/1.", 7) != 0 || (p[v + 7] != '0' && p[v + 7] != '1'))
            return HTTP_NOT_MESSAGE;
        req.version_minor = (uint8_t)(p[v + 7] - '0');
        pos = http_eol(p, len, v + 8);
        if (pos == 0) return HTTP_NOT_MESSAGE;
    } else {
        /* HTTP/0.9 Simple-Request: "GET" SP Request-URI CRLF, nothing else
         * (RFC 1945 section 4.1); no headers, no further requests. */
        if (http_eol(p, len, i) == 0 || mlen != 3 || memcmp(req.method, "GET", 3) != 0)
            return HTTP_NOT_MESSAGE;
        req.version_minor = 9;
        if (cb) cb(user, &req);
        return HTTP_LAST;
    }

    struct http_fields f = {0};
    struct http_body body = {0};
    size_t body_start = 0;
    bool complete = http_header_block(p, len, pos, &f, &body, &body_start);
    req.host = f.host;
    req.host_len = f.host_len;
    req.user_agent = f.user_agent;
    req.user_agent_len = f.user_agent_len;
    req.content_type = f.content_type;
    req.content_type_len = f.content_type_len;
    req.has_content_length = body.has_cl && !body.cl_invalid;
    req.content_length = req.has_content_length ? body.cl : 0;

    if (cb) cb(user, &req);
    if (!complete || body.has_te || body.cl_invalid) return HTTP_LAST;
    /* A request without Content-Length or Transfer-Encoding has no body
     * (RFC 9112 section 6.3, item 7). */
    return http_skip_body(len, body_start, body.has_cl ? body.cl : 0, next);
}

int kg_http_parse_requests(const uint8_t *p, size_t len, kg_http_request_fn cb, void *user)
{
    if (p == NULL) return 0;
    int n = 0;
    size_t off = 0;
    while (off < len) {
        size_t next = 0;
        enum http_step s = http_parse_request(p, len, off, &next, cb, user);
        if (s == HTTP_NOT_MESSAGE) break;
        n++;
        if (s == HTTP_LAST) break;
        off = next;
        /* Servers should ignore empty lines before a request-line (RFC 9112
         * section 2.2); some clients send a stray CRLF after a body. */
        while (off < len && (p[off] == '\r' || p[off] == '\n'))
            off++;
    }
    return n;
}

static enum http_step http_parse_response(const uint8_t *p, size_t len, size_t off, size_t *next,
                                          kg_http_response_fn cb, void *user)
{
    /* status-line = HTTP-version SP status-code SP [ reason-phrase ]
     * (RFC 9112 section 4); status-code = 3DIGIT (RFC 9110 section 15),
     * first digit 1-5 in use, 6-9 tolerated (some servers send 999).
     * "HTTP/1.1 200" with no SP after the code is tolerated too. */
    const uint8_t *s = p + off;
    const size_t n = len - off;
    if (n < 13 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
        return HTTP_NOT_MESSAGE;
    if (s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        return HTTP_NOT_MESSAGE;

    struct kg_http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.version_minor = (uint8_t)(s[7] - '0');
    resp.status = (uint16_t)((s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0'));

    /* The reason phrase runs to the line end, which must be in the payload. */
    size_t r = off + 12;
    if (p[r] == ' ') {
        r++;
    } else if (p[r] != '\r' && p[r] != '\n') {
        return HTTP_NOT_MESSAGE; /* "HTTP/1.1 2000" */
    }
    const uint8_t *lf = memchr(p + r, '\n', len - r);
    if (lf == NULL) return HTTP_NOT_MESSAGE;
    size_t eol = (size_t)(lf - p);
    size_t rend = (eol > r && p[eol - 1] == '\r') ? eol - 1 : eol;
    resp.reason = (const char *)(p + r);
    resp.reason_len = rend - r;

    struct http_fields f = {0};
    struct http_body body = {0};
    size_t body_start = 0;
    bool complete = http_header_block(p, len, eol + 1, &f, &body, &body_start);
    resp.content_type = f.content_type;
    resp.content_type_len = f.content_type_len;
    resp.has_content_length = body.has_cl && !body.cl_invalid;
    resp.content_length = resp.has_content_length ? body.cl : 0;

    if (cb) cb(user, &resp);
    if (!complete) return HTTP_LAST;
    /* RFC 9112 section 6.3: 1xx, 204 and 304 responses never have a body
     * (item 1), whatever their headers say; then Transfer-Encoding (item
     * 4, not followed here), an invalid Content-Length (item 5: a client
     * would treat the response as unrecoverable), a valid one (item 6);
     * without either the body runs until the connection closes (item 8).
     * A response to HEAD also has no body, but the request is not known
     * here: if we skip a body that is not there, the next bytes will not
     * start with a status line and the search stops. */
    if (resp.status < 200 || resp.status == 204 || resp.status == 304)
        return http_skip_body(len, body_start, 0, next);
    if (body.has_te || body.cl_invalid || !body.has_cl) return HTTP_LAST;
    return http_skip_body(len, body_start, body.cl, next);
}

int kg_http_parse_responses(const uint8_t *p, size_t len, kg_http_response_fn cb, void *user)
{
    if (p == NULL) return 0;
    int n = 0;
    size_t off = 0;
    while (off < len) {
        size_t next = 0;
        enum http_step s = http_parse_response(p, len, off, &next, cb, user);
        if (s == HTTP_NOT_MESSAGE) break;
        n++;
        if (s == HTTP_LAST) break;
        off = next;
    }
    return n;
}
