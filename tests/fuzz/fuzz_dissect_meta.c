/*
 * tests/fuzz/fuzz_dissect_meta.c — libFuzzer harness for the metadata
 * entry points of the DNS and HTTP parsers (dissect_parsers.h): DNS answer
 * records (kg_dns_parse_message_full) and HTTP responses
 * (kg_http_parse_responses), plus kg_x509_summary on the same bytes.
 * Every input goes to all three; the callbacks check their contracts
 * (names NUL-terminated inside their bound, pointers inside the input,
 * counts bounded by the data) and abort otherwise, so besides memory errors
 * (ASan/UBSan) the fuzzer finds contract violations.
 *
 *   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_dissect_meta
 *   ./build-fuzz/tests/fuzz_dissect_meta -max_len=1024 corpus/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dissect/dissect_parsers.h"

struct span {
    const uint8_t *p;
    size_t len;
    int nq, na;
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
    if (name_len >= KG_DNS_NAME_MAX || name[name_len] != '\0' || s->na > 0) abort();
    s->nq++;
}

static void on_answer(void *user, const struct kg_dns_answer *a)
{
    struct span *s = user;
    if (a->name == NULL || a->name_len >= KG_DNS_NAME_MAX || a->name[a->name_len] != '\0') abort();
    if (a->target && (a->target_len >= KG_DNS_NAME_MAX || a->target[a->target_len] != '\0')) abort();
    if (a->addr_family == 4 && (a->rrtype != 1 || a->rdlength != 4)) abort();
    if (a->addr_family == 6 && (a->rrtype != 28 || a->rdlength != 16)) abort();
    s->na++;
    /* A question takes at least 5 bytes after the header, an answer 11. */
    if (s->len < 12 || (size_t)s->nq * 5 + (size_t)s->na * 11 > s->len - 12) abort();
}

static void on_response(void *user, const struct kg_http_response *r)
{
    struct span *s = user;
    if (r->status < 100 || r->status > 999 || (r->version_minor != 0 && r->version_minor != 1)) abort();
    if (r->reason == NULL) abort();
    check_inside(s, r->reason, r->reason_len);
    if (r->content_type) check_inside(s, r->content_type, r->content_type_len);
    if (!r->has_content_length && r->content_length != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span s = {data, size, 0, 0};
    int rc = kg_dns_parse_message_full(data, size, NULL, on_question, on_answer, &s);
    if (rc < -1 || (rc >= 0 && rc != s.nq + s.na)) abort();

    struct span h = {data, size, 0, 0};
    if (kg_http_parse_responses(data, size, on_response, &h) < 0) abort();

    struct kg_x509_info x;
    rc = kg_x509_summary(data, size, &x);
    if (rc != 0 && (x.sha1[0] || x.subject[0] || x.self_signed)) abort();
    if (rc == 0 && (strlen(x.sha1) != 40 || strlen(x.sha256) != 64)) abort();
    return 0;
}
