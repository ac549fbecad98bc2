/*
 * export/redis_conn.c — one connection to a Redis server, plain or TLS.
 *
 * Debian 12's hiredis (0.14) has no TLS support, so hiredis is used for the
 * protocol only: commands are built with redisFormatCommandArgv() by the
 * callers, replies parsed with a redisReader fed from here. The transport is
 * our own: a non-blocking socket (connect bounded by a timeout, TCP_NODELAY,
 * keepalive), and for rediss:// an OpenSSL session on top of it. Both
 * variants go through the same pump (kg_rconn_pump): only the two transport
 * calls (xport_send / xport_recv) differ, so the plain path exercises the
 * same buffering, timeout and error code as the TLS one.
 *
 * TLS policy (not configurable downwards): TLS 1.2 or later, the peer's
 * chain verified against the given CA (or the system store), its name
 * checked with X509_VERIFY_PARAM host / IP matching (RFC 6125), SNI sent for
 * names (never for addresses, RFC 6066 section 3). A handshake failure is a
 * connection failure: nothing ever falls back to plain text.
 *
 * SIGPIPE: plain sends use send(MSG_NOSIGNAL); TLS goes through a small
 * socket BIO of ours that does the same, so a peer that closed never
 * raises SIGPIPE, whatever the process's disposition.
 *
 * Threads: a connection and its TLS config belong to one thread at a time
 * (the export thread). OpenSSL's error queue is per thread; it is cleared
 * before each TLS call.
 */
#include "export/export_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RCONN_RECV_CHUNK (64u * 1024u)
/* Bytes read per pump round at most, so a fast server cannot keep one call
 * reading forever while the caller has replies to settle. */
#define RCONN_RECV_PER_PUMP (1024u * 1024u)

struct kg_tls_config {
    SSL_CTX *ctx;
};

struct kg_rconn {
    int fd;
    SSL *ssl; /* NULL: plain */
    redisReader *reader;
    bool read_wants_write; /* TLS: SSL_read needs the socket writable */
    bool write_wants_read; /* TLS: SSL_write needs the socket readable */
    char peer[300];
    char rbuf[RCONN_RECV_CHUNK];
};

/* --- TLS context ------------------------------------------------------------- */

/* The reason of the first error on OpenSSL's queue ("wrong version
 * number"), or `fallback`. Empties the queue. */
static const char *ssl_reason(char *buf, size_t size, const char *fallback)
{
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e) return fallback;
    const char *r = ERR_reason_error_string(e);
    if (r) {
        kg_strlcpy(buf, r, size);
    } else {
        ERR_error_string_n(e, buf, size);
    }
    return buf;
}

struct kg_tls_config *kg_tls_config_new(const char *ca, const char *cert, const char *key, struct kg_err *err)
{
    char why[256];
    if ((cert == NULL) != (key == NULL)) {
        kg_err_set(err, KG_ERR_INVAL, "TLS: a client certificate needs its key (cert= and key= together)");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        kg_err_set(err, KG_ERR_NOMEM, "TLS: cannot create a context: %s",
                   ssl_reason(why, sizeof(why), "out of memory"));
        return NULL;
    }
    /* TLS 1.0 and 1.1 are deprecated (RFC 8996). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Partial writes and a moving buffer: the pump hands SSL_write() the
     * unsent tail of a buffer that may grow (and move) between calls. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    int ok;
    if (ca) {
        struct stat st;
        const bool dir = stat(ca, &st) == 0 && S_ISDIR(st.st_mode);
        ok =
            dir ? SSL_CTX_load_verify_locations(ctx, NULL, ca) : SSL_CTX_load_verify_locations(ctx, ca, NULL);
        if (ok != 1) {
            kg_err_set(err, KG_ERR_INVAL, "TLS: cannot load CA certificates from %s: %s", ca,
                       ssl_reason(why, sizeof(why), "no certificate found"));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        kg_err_set(err, KG_ERR_INVAL, "TLS: cannot load the system CA store: %s",
                   ssl_reason(why, sizeof(why), "unknown error"));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            kg_err_set(err, KG_ERR_INVAL, "TLS: cannot load the client certificate %s: %s", cert,
                       ssl_reason(why, sizeof(why), "unreadable"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            kg_err_set(err, KG_ERR_INVAL, "TLS: cannot load the client key %s: %s", key,
                       ssl_reason(why, sizeof(why), "unreadable"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            kg_err_set(err, KG_ERR_INVAL, "TLS: the client key %s does not match the certificate %s", key,
                       cert);
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    struct kg_tls_config *t = kg_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    return t;
}

void kg_tls_config_free(struct kg_tls_config *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* --- a socket BIO that never raises SIGPIPE ------------------------------------ */

static BIO_METHOD *g_sock_method;
static pthread_once_t g_sock_once = PTHREAD_ONCE_INIT;

static int sbio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int sbio_write(BIO *b, const char *buf, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    do {
        n = send(sbio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int sbio_read(BIO *b, char *buf, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    do {
        n = recv(sbio_fd(b), buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)n;
}

static int sbio_puts(BIO *b, const char *s)
{
    return sbio_write(b, s, (int)strlen(s));
}

static long sbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes go straight to the socket: nothing to flush. Every other
     * control (kTLS, datagram, ...) is unsupported, which OpenSSL accepts. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sbio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int sbio_destroy(BIO *b)
{
    (void)b; /* the descriptor belongs to the kg_rconn */
    return 1;
}

static void sock_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kagami socket");
    if (!m) return;
    BIO_meth_set_write(m, sbio_write);
    BIO_meth_set_read(m, sbio_read);
    BIO_meth_set_puts(m, sbio_puts);
    BIO_meth_set_ctrl(m, sbio_ctrl);
    BIO_meth_set_create(m, sbio_create);
    BIO_meth_set_destroy(m, sbio_destroy);
    g_sock_method = m; /* lives as long as the process */
}

/* --- connect -------------------------------------------------------------------- */

static int remaining_ms(uint64_t deadline_ns)
{
    const uint64_t now = kg_monotonic_ns();
    if (now >= deadline_ns) return 0;
    const uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > 1000000 ? 1000000 : (int)ms;
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Waits for `events` on fd until the deadline. Returns >0 ready, 0 timeout,
 * <0 error (errno). */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        const int r = poll(&pfd, 1, remaining_ms(deadline_ns));
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

static void tune_socket(int fd)
{
    const int one = 1;
    /* Commands are pipelined in large writes; small control commands
     * (AUTH, WAIT) must not sit in Nagle's buffer. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Notices a collector that vanished while the connection sits idle:
     * first probe after 30 s, then every 10 s, dead after 3 misses. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    const int idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* TCP connect to one of host's addresses within connect_ms. Returns the
 * non-blocking descriptor, or -1 with err filled. */
static int tcp_connect(const char *host, int port, const char *peer, int connect_ms, struct kg_err *err)
{
    char port_str[8];
    snprintf(port_str, sizeof(port_str), "%d", port);
    const struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    /* getaddrinfo() has no timeout: an address in the spec avoids it. */
    const int g = getaddrinfo(host, port_str, &hints, &res);
    if (g != 0) {
        kg_err_set(err, KG_ERR_CONNECT, "cannot resolve %s: %s", host,
                   g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return -1;
    }
    const uint64_t deadline = kg_monotonic_ns() + (uint64_t)connect_ms * 1000000u;
    int fd = -1, last_errno = ECONNREFUSED;
    bool timed_out = false;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            r = wait_fd(fd, POLLOUT, deadline);
            if (r == 0) {
                timed_out = true;
                errno = ETIMEDOUT;
                r = -1;
            } else if (r > 0) {
                int so = 0;
                socklen_t sl = sizeof(so);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0) so = errno;
                if (so != 0) {
                    errno = so;
                    r = -1;
                } else {
                    r = 0;
                }
            }
        }
        if (r < 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
            if (timed_out) break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (timed_out)
            kg_err_set(err, KG_ERR_CONNECT, "cannot connect to %s: timed out after %d ms", peer, connect_ms);
        else
            kg_err_set(err, KG_ERR_CONNECT, "cannot connect to %s: %s", peer, strerror(last_errno));
        return -1;
    }
    tune_socket(fd);
    return fd;
}

static int tls_handshake(struct kg_rconn *c, const struct kg_tls_config *tls, const char *name, int io_ms,
                         struct kg_err *err)
{
    char why[256];
    pthread_once(&g_sock_once, sock_method_init);
    ERR_clear_error();
    SSL *ssl = SSL_new(tls->ctx);
    BIO *bio = g_sock_method ? BIO_new(g_sock_method) : NULL;
    if (!ssl || !bio) {
        SSL_free(ssl);
        BIO_free(bio);
        return kg_err_set(err, KG_ERR_NOMEM, "TLS with %s: %s", c->peer,
                          ssl_reason(why, sizeof(why), "out of memory"));
    }
    BIO_set_data(bio, (void *)(intptr_t)c->fd);
    SSL_set_bio(ssl, bio, bio); /* ssl owns bio from here */
    c->ssl = ssl;
    const bool ip = is_ip_literal(name);
    if (ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
            return kg_err_set(err, KG_ERR_INVAL, "TLS with %s: cannot check address %s", c->peer, name);
    } else {
        /* SNI and the name the certificate must carry are the same name. */
        if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
            return kg_err_set(err, KG_ERR_INVAL, "TLS with %s: bad server name '%.64s'", c->peer, name);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }

    const uint64_t deadline = kg_monotonic_ns() + (uint64_t)io_ms * 1000000u;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int r = SSL_connect(ssl);
        if (r == 1) return 0;
        const int e = SSL_get_error(ssl, r);
        short ev;
        if (e == SSL_ERROR_WANT_READ) {
            ev = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            ev = POLLOUT;
        } else {
            const long v = SSL_get_verify_result(ssl);
            if (v != X509_V_OK) {
                ERR_clear_error();
                const bool name_err =
                    v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;
                return kg_err_set(err, KG_ERR_CONNECT,
                                  "TLS handshake with %s failed: certificate verification failed: %s%s%s%s",
                                  c->peer, X509_verify_cert_error_string(v),
                                  name_err ? " (the certificate is not valid for '" : "",
                                  name_err ? name : "", name_err ? "')" : "");
            }
            const int saved = errno;
            const char *fallback = e == SSL_ERROR_SYSCALL && saved ? strerror(saved)
                                   : e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
                                       ? "connection closed by the server (is it a TLS port?)"
                                       : "protocol error";
            return kg_err_set(err, KG_ERR_CONNECT, "TLS handshake with %s failed: %s", c->peer,
                              ssl_reason(why, sizeof(why), fallback));
        }
        const int w = wait_fd(c->fd, ev, deadline);
        if (w == 0)
            return kg_err_set(err, KG_ERR_CONNECT, "TLS handshake with %s failed: timed out after %d ms",
                              c->peer, io_ms);
        if (w < 0)
            return kg_err_set(err, KG_ERR_CONNECT, "TLS handshake with %s failed: %s", c->peer,
                              strerror(errno));
    }
}

struct kg_rconn *kg_rconn_connect(const char *host, int port, const struct kg_tls_config *tls,
                                  const char *verify_name, int connect_ms, int io_ms, struct kg_err *err)
{
    struct kg_rconn *c = kg_xcalloc(1, sizeof(*c));
    if (strchr(host, ':'))
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", host, port);
    else
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->fd = tcp_connect(host, port, c->peer, connect_ms, err);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    if (tls && tls_handshake(c, tls, verify_name ? verify_name : host, io_ms, err) != 0) {
        kg_rconn_free(c);
        return NULL;
    }
    c->reader = redisReaderCreate();
    if (!c->reader) {
        kg_err_set(err, KG_ERR_NOMEM, "%s: cannot allocate a reply reader", c->peer);
        kg_rconn_free(c);
        return NULL;
    }
    return c;
}

void kg_rconn_free(struct kg_rconn *c)
{
    if (!c) return;
    if (c->ssl) {
        /* No close_notify: the connection is being dropped, and waiting for
         * a peer that stopped answering is what we must not do. */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    if (c->reader) redisReaderFree(c->reader);
    free(c);
}

const char *kg_rconn_peer(const struct kg_rconn *c)
{
    return c->peer;
}

/* --- transport ------------------------------------------------------------------ */

/* TLS I/O error as text; empties OpenSSL's queue. */
static int tls_io_error(struct kg_rconn *c, int e, const char *what, struct kg_err *err)
{
    char why[256];
    const int saved = errno;
    if (e == SSL_ERROR_ZERO_RETURN)
        return kg_err_set(err, KG_ERR_EOF, "%s: connection closed by the server", c->peer);
    if (e == SSL_ERROR_SYSCALL) {
        const char *r = ssl_reason(why, sizeof(why), NULL);
        if (r) return kg_err_set(err, KG_ERR_IO, "%s: TLS %s failed: %s", c->peer, what, r);
        if (saved) return kg_err_set(err, KG_ERR_IO, "%s: %s failed: %s", c->peer, what, strerror(saved));
        return kg_err_set(err, KG_ERR_EOF, "%s: connection closed by the server", c->peer);
    }
    return kg_err_set(err, KG_ERR_IO, "%s: TLS %s failed: %s", c->peer, what,
                      ssl_reason(why, sizeof(why), "protocol error"));
}

/* Returns bytes sent (> 0), 0 when the socket takes nothing now, or a
 * negative KG_ERR_* with err filled. */
static ssize_t xport_send(struct kg_rconn *c, const char *p, size_t n, struct kg_err *err)
{
    if (n > INT32_MAX) n = INT32_MAX;
    if (!c->ssl) {
        ssize_t r;
        do {
            r = send(c->fd, p, n, MSG_NOSIGNAL);
        } while (r < 0 && errno == EINTR);
        if (r >= 0) return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return kg_err_set(err, KG_ERR_IO, "%s: send failed: %s", c->peer, strerror(errno));
    }
    ERR_clear_error();
    errno = 0;
    const int r = SSL_write(c->ssl, p, (int)n);
    c->write_wants_read = false;
    if (r > 0) return r;
    const int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_WANT_READ) {
        c->write_wants_read = true;
        return 0;
    }
    return tls_io_error(c, e, "send", err);
}

/* Returns bytes received (> 0), 0 when nothing is there now, or a negative
 * KG_ERR_* (KG_ERR_EOF when the server closed) with err filled. */
static ssize_t xport_recv(struct kg_rconn *c, char *p, size_t n, struct kg_err *err)
{
    if (!c->ssl) {
        ssize_t r;
        do {
            r = recv(c->fd, p, n, 0);
        } while (r < 0 && errno == EINTR);
        if (r > 0) return r;
        if (r == 0) return kg_err_set(err, KG_ERR_EOF, "%s: connection closed by the server", c->peer);
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return kg_err_set(err, KG_ERR_IO, "%s: receive failed: %s", c->peer, strerror(errno));
    }
    ERR_clear_error();
    errno = 0;
    const int r = SSL_read(c->ssl, p, (int)KG_MIN(n, (size_t)INT32_MAX));
    c->read_wants_write = false;
    if (r > 0) return r;
    const int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->read_wants_write = true;
        return 0;
    }
    return tls_io_error(c, e, "receive", err);
}

/*
 * A send failed (the server reset or closed the connection). What it sent
 * before closing often says why, better than "connection reset": a TLS
 * alert ("tlsv13 alert certificate required") or a Redis error line
 * ("-ERR max number of clients reached"). Read what is still queued: it
 * goes to the reply reader, and a TLS alert replaces the error text.
 */
static void send_failed(struct kg_rconn *c, struct kg_err *err)
{
    for (int i = 0; i < 64; i++) {
        struct kg_err rerr = {{0}};
        const ssize_t n = xport_recv(c, c->rbuf, sizeof(c->rbuf), &rerr);
        if (n > 0) {
            if (redisReaderFeed(c->reader, c->rbuf, (size_t)n) != REDIS_OK) return;
            continue;
        }
        if (n < 0 && c->ssl && strstr(rerr.msg, "TLS") && strstr(rerr.msg, "alert")) *err = rerr;
        return;
    }
}

/* --- pump and replies ------------------------------------------------------------- */

int kg_rconn_pump(struct kg_rconn *c, const char *out, size_t len, size_t *off, int timeout_ms,
                  bool *progress, struct kg_err *err)
{
    *progress = false;
    for (int round = 0;; round++) {
        while (*off < len) {
            const ssize_t n = xport_send(c, out + *off, len - *off, err);
            if (n < 0) {
                send_failed(c, err);
                return (int)n;
            }
            if (n == 0) break;
            *off += (size_t)n;
            *progress = true;
        }
        size_t got = 0;
        while (got < RCONN_RECV_PER_PUMP) {
            const ssize_t n = xport_recv(c, c->rbuf, sizeof(c->rbuf), err);
            if (n < 0) return (int)n;
            if (n == 0) break;
            if (redisReaderFeed(c->reader, c->rbuf, (size_t)n) != REDIS_OK)
                return kg_err_set(err, KG_ERR_NOMEM, "%s: cannot buffer a reply", c->peer);
            got += (size_t)n;
            *progress = true;
        }
        if (*progress || round == 1 || timeout_ms <= 0) return 0;

        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (*off < len || c->read_wants_write) pfd.events |= POLLOUT;
        int r;
        do {
            r = poll(&pfd, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        if (r < 0) return kg_err_set(err, KG_ERR_IO, "%s: poll failed: %s", c->peer, strerror(errno));
        if (r == 0) return 0;
    }
}

int kg_rconn_reply(struct kg_rconn *c, struct redisReply **reply, struct kg_err *err)
{
    void *r = NULL;
    *reply = NULL;
    if (redisReaderGetReply(c->reader, &r) != REDIS_OK)
        return kg_err_set(err, KG_ERR_PARSE, "%s: protocol error: %s", c->peer, c->reader->errstr);
    if (!r) return 0;
    *reply = r;
    return 1;
}

int kg_rconn_command(struct kg_rconn *c, int argc, const char **argv, const size_t *argvlen, int timeout_ms,
                     struct redisReply **reply, struct kg_err *err)
{
    char *cmd = NULL;
    *reply = NULL;
    const int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0 || !cmd) return kg_err_set(err, KG_ERR_NOMEM, "%s: cannot format a command", c->peer);
    const uint64_t deadline = kg_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t off = 0;
    int rc = 0;
    for (;;) {
        rc = kg_rconn_reply(c, reply, err);
        if (rc != 0) break; /* a reply, or a protocol error */
        const int left = remaining_ms(deadline);
        if (left == 0) {
            rc = kg_err_set(err, KG_ERR_IO, "%s: no reply to %.32s within %d ms", c->peer, argv[0],
                            timeout_ms);
            break;
        }
        bool progress;
        rc = kg_rconn_pump(c, cmd, (size_t)len, &off, left, &progress, err);
        if (rc < 0) {
            /* A reply may have arrived just before the server closed. */
            if (kg_rconn_reply(c, reply, err) == 1) rc = 1;
            break;
        }
    }
    /* AUTH carries the password: leave no copy in freed memory. */
    explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc > 0 ? 0 : rc;
}
