/*
 * tests/fuzz/fuzz_dissect_parsers.c — libFuzzer harness for the DNS
 * question parser and the HTTP/1.x request finder (dissect_parsers.h).
 * Every input goes to both parsers; the callbacks check that what they are
 * given lies inside the input and abort otherwise, so besides memory errors
 * (ASan/UBSan) the fuzzer also finds contract violations.
 *
 * Build and run (from the repository root), either through CMake:
 *   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_dissect_parsers
 *   ./build-fuzz/tests/fuzz_dissect_parsers -max_len=1024 corpus/
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_dissect_parsers.c dissect/dissect_dns.c dissect/dissect_http.c \
 *     -o fuzz_dissect_parsers
 *   ./fuzz_dissect_parsers -max_len=1024 -runs=1000000
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dissect/dissect_parsers.h"

struct span {
    const uint8_t *p;
    size_t len;
    int n;
};

static void check_inside(const struct span *s, const char *f, size_t n)
{
    const uint8_t *u = (const uint8_t *)f;
    if (u < s->p || u > s->p + s->len || n > (size_t)(s->p + s->len - u)) abort();
}

static void on_question(void *user, const char *name, size_t name_len, uint16_t qtype, uint16_t qclass)
{
    struct span *s = user;
    (void)qtype;
    (void)qclass;
    if (name_len >= KG_DNS_NAME_MAX || name[name_len] != '\0') abort();
    /* Each question costs at least 5 bytes after the header. */
    if (s->len < 12 || (size_t)(s->n + 1) * 5 > s->len - 12) abort();
    s->n++;
}

static void on_request(void *user, const struct kg_http_request *req)
{
    struct span *s = user;
    if (req->method_len == 0 || req->uri_len == 0) abort();
    check_inside(s, req->method, req->method_len);
    check_inside(s, req->uri, req->uri_len);
    if (req->host) check_inside(s, req->host, req->host_len);
    if (req->user_agent) check_inside(s, req->user_agent, req->user_agent_len);
    if (req->version_minor != 0 && req->version_minor != 1 && req->version_minor != 9) abort();
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span s = {data, size, 0};
    struct kg_dns_msg_info info;
    int rc = kg_dns_parse_message(data, size, &info, on_question, &s);
    if (rc < -1 || (rc >= 0 && rc != s.n)) abort();

    s.n = 0;
    rc = kg_http_parse_requests(data, size, on_request, &s);
    if (rc != s.n) abort();
    return 0;
}
