/* A small test harness: MT_TEST(name) registers a case; each executable supports --list and
 * --case NAME, and CMake registers every case as its own CTest test (tests/CMakeLists.txt).
 * Assertions print both expressions and values and fail the case; MT_SKIP exits with 77. */
#ifndef MT_TEST_H
#define MT_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/core.h"

typedef void (*mt_test_fn)(void);
void mt_test_register(const char *name, mt_test_fn fn);
_Noreturn void mt_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void mt_test_skip(const char *reason);
/* Directory for temporary files of this case (created, unique per process). */
const char *mt_test_tmpdir(void);
/* Device name under test: MLTRAIN_TEST_DEVICE or "host". */
const char *mt_test_device_name(void);

#define MT_TEST(name)                                                        \
    static void mt_test_##name(void);                                        \
    __attribute__((constructor)) static void mt_test_reg_##name(void)        \
    {                                                                        \
        mt_test_register(#name, mt_test_##name);                             \
    }                                                                        \
    static void mt_test_##name(void)

#define MT_SKIP(reason) mt_test_skip(reason)

#define MT_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond)) mt_test_fail(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

#define MT_CHECK_OK(expr)                                                    \
    do {                                                                     \
        mt_status mt__st = (expr);                                           \
        if (mt__st != MT_OK)                                                 \
            mt_test_fail(__FILE__, __LINE__, "%s returned %s: %s", #expr,    \
                         mt_status_name(mt__st), mt_last_error());           \
    } while (0)

/* Expects a specific failure status and that the message contains `needle` (may be NULL). */
#define MT_CHECK_ERR(expr, code, needle)                                     \
    do {                                                                     \
        mt_err_clear();                                                      \
        mt_status mt__st = (expr);                                           \
        if (mt__st != (code))                                                \
            mt_test_fail(__FILE__, __LINE__, "%s returned %s, expected %s (%s)", #expr, \
                         mt_status_name(mt__st), mt_status_name(code), mt_last_error()); \
        const char *mt__nd = (needle);                                       \
        if (mt__nd && !strstr(mt_last_error(), mt__nd))                      \
            mt_test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", #expr, \
                         mt_last_error(), mt__nd);                           \
    } while (0)

#define MT_CHECK_EQ_INT(a, b)                                                \
    do {                                                                     \
        long long mt__a = (long long)(a), mt__b = (long long)(b);            \
        if (mt__a != mt__b)                                                  \
            mt_test_fail(__FILE__, __LINE__, "%s == %s failed: %lld vs %lld", #a, #b, mt__a, \
                         mt__b);                                             \
    } while (0)

#define MT_CHECK_STR_EQ(a, b)                                                \
    do {                                                                     \
        const char *mt__a = (a), *mt__b = (b);                               \
        if (strcmp(mt__a, mt__b) != 0)                                       \
            mt_test_fail(__FILE__, __LINE__, "%s == %s failed: '%s' vs '%s'", #a, #b, mt__a, \
                         mt__b);                                             \
    } while (0)

/* |a - b| <= atol + rtol * |b| (NaN equals NaN, inf equals same-signed inf). */
#define MT_CHECK_CLOSE(a, b, atol, rtol)                                     \
    do {                                                                     \
        double mt__a = (double)(a), mt__b = (double)(b);                     \
        if (!mt_test_close(mt__a, mt__b, (atol), (rtol)))                    \
            mt_test_fail(__FILE__, __LINE__, "%s ~= %s failed: %.17g vs %.17g", #a, #b, mt__a, \
                         mt__b);                                             \
    } while (0)

int mt_test_close(double a, double b, double atol, double rtol);
/* Compares n doubles; on failure reports the worst index, max abs/rel error, first pairs. */
void mt_test_allclose(const char *file, int line, const char *what, const double *a,
                      const double *b, size_t n, double atol, double rtol);
#define MT_CHECK_ALLCLOSE(a, b, n, atol, rtol)                               \
    mt_test_allclose(__FILE__, __LINE__, #a " vs " #b, (a), (b), (n), (atol), (rtol))

/* Names of three nested layers for the layer-path length tests: a and b of 30 bytes, c such
 * that the paths "<a>/<b>/<c>0" and "<a>/<b>/<c>1" have len bytes; path0 gets the first. */
typedef struct mt_test_long_names {
    char a[31], b[31], c[64];
} mt_test_long_names;

static inline void mt_test_long_names_init(mt_test_long_names *n, int len, char *path0,
                                           size_t pcap)
{
    memset(n->a, 'a', 30);
    n->a[30] = 0;
    memset(n->b, 'b', 30);
    n->b[30] = 0;
    int nc = len - 63; /* 30 + 1 + 30 + 1 + nc + 1 */
    MT_CHECK(nc > 0 && nc < (int)sizeof(n->c));
    memset(n->c, 'c', (size_t)nc);
    n->c[nc] = 0;
    snprintf(path0, pcap, "%s/%s/%s0", n->a, n->b, n->c);
    MT_CHECK_EQ_INT(strlen(path0), len);
}

#endif
