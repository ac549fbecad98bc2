/*
 * tests/unit/kg_test.h — the minimal assertion kit our unit tests share.
 * A failed check prints file:line and the expression and is counted;
 * KG_TEST_MAIN_END returns non-zero when any check failed.
 */
#ifndef KG_TEST_H
#define KG_TEST_H

#include <stdio.h>
#include <string.h>

static int kg_test_failed, kg_test_passed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            kg_test_passed++;                                                                      \
        } else {                                                                                   \
            kg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a == _b) {                                                                            \
            kg_test_passed++;                                                                      \
        } else {                                                                                   \
            kg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,   \
                    _a, _b);                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (_a && _b && strcmp(_a, _b) == 0) {                                                     \
            kg_test_passed++;                                                                      \
        } else {                                                                                   \
            kg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,   \
                    #b, _a ? _a : "(null)", _b ? _b : "(null)");                                   \
        }                                                                                          \
    } while (0)

#define KG_TEST_RUN(fn)                                                                            \
    do {                                                                                           \
        int _before = kg_test_failed;                                                              \
        fn();                                                                                      \
        printf("%s %s\n", kg_test_failed == _before ? "ok  " : "FAIL", #fn);                       \
    } while (0)

#define KG_TEST_MAIN_END()                                                                         \
    do {                                                                                           \
        printf("%d passed, %d failed\n", kg_test_passed, kg_test_failed);                          \
        return kg_test_failed ? 1 : 0;                                                             \
    } while (0)

#endif
