/* The harness behind mt_test.h: case registry, --list / --case, failure and skip reporting. */
#include "mt_test.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define MT_TEST_MAX 1024

static struct {
    const char *name;
    mt_test_fn fn;
} g_tests[MT_TEST_MAX];
static int g_ntests;
static const char *g_current = "";
static char g_tmpdir[512];

void mt_test_register(const char *name, mt_test_fn fn)
{
    if (g_ntests < MT_TEST_MAX) {
        g_tests[g_ntests].name = name;
        g_tests[g_ntests].fn = fn;
        g_ntests++;
    }
}

void mt_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", g_current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

void mt_test_skip(const char *reason)
{
    printf("SKIP %s: %s\n", g_current, reason);
    fflush(stdout);
    exit(77);
}

const char *mt_test_tmpdir(void)
{
    if (!g_tmpdir[0]) {
        /* a new directory each time (mkdtemp): a process id is reused, and a directory left by
         * an earlier process with the same id would hand its files to this case */
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/mt_test_%s_%d_XXXXXX", base ? base : "/tmp",
                 g_current, (int)getpid());
        if (!mkdtemp(g_tmpdir)) mt_test_fail(__FILE__, __LINE__, "mkdtemp %s failed", g_tmpdir);
    }
    return g_tmpdir;
}

const char *mt_test_device_name(void)
{
    const char *d = getenv("MLTRAIN_TEST_DEVICE");
    return d && *d ? d : "host";
}

int mt_test_close(double a, double b, double atol, double rtol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

void mt_test_allclose(const char *file, int line, const char *what, const double *a,
                      const double *b, size_t n, double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double worst_err = -1, max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!mt_test_close(a[i], b[i], atol, rtol)) {
            bad++;
            double e = isnan(d) ? INFINITY : d;
            if (e > worst_err) {
                worst_err = e;
                worst = i;
            }
        }
        if (!isnan(d) && !isinf(d)) {
            if (d > max_abs) max_abs = d;
            if (b[i] != 0 && d / fabs(b[i]) > max_rel) max_rel = d / fabs(b[i]);
        }
    }
    if (!bad) return;
    fprintf(stderr, "FAIL %s (%s:%d): %s: %zu of %zu elements differ (atol %g rtol %g); worst "
            "[%zu] %.17g vs %.17g; max abs err %g, max rel err %g\n",
            g_current, file, line, what, bad, n, atol, rtol, worst, a[worst], b[worst], max_abs,
            max_rel);
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < 5; i++)
        if (!mt_test_close(a[i], b[i], atol, rtol)) {
            fprintf(stderr, "  [%zu] %.17g vs %.17g\n", i, a[i], b[i]);
            shown++;
        }
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < g_ntests; i++) printf("%s\n", g_tests[i].name);
        return 0;
    }
    const char *only = NULL;
    if (argc >= 3 && strcmp(argv[1], "--case") == 0) only = argv[2];
    int ran = 0;
    for (int i = 0; i < g_ntests; i++) {
        if (only && strcmp(only, g_tests[i].name) != 0) continue;
        g_current = g_tests[i].name;
        g_tmpdir[0] = 0;
        g_tests[i].fn();
        printf("ok %s\n", g_current);
        ran++;
    }
    if (only && !ran) {
        fprintf(stderr, "no test case named '%s' (--list shows them)\n", only);
        return 2;
    }
    return 0;
}
