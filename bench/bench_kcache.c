/* Cost of the kernel cache's verification on a warm load (issue 8: "under 10% of the warm-load
 * time"). Point it at a warm cache directory, e.g. one filled by
 *   d=$(mktemp -d); MLTRAIN_CACHE_DIR=$d build/bench/bench_jit --case mlp_train --mode fast_run
 *   build/bench/bench_kcache --dir $d --rounds 41
 * For every host kernel entry (<key>.so) of the directory it times, alternating round by round,
 *   verified: mt__kcache_dlopen (open, fstat: owner and mode, trailer, checksum of the payload
 *             with mt_hash64 once per file, then dlopen by name) + dlclose -- what a warm
 *             process does (the memo of verified files is reset every round);
 *   plain:    dlopen of the same path + dlclose -- the load without any check.
 * dlclose unloads the object (nothing else holds it), so each round maps and relocates it
 * again, as a new process would; the page cache is warm for both. Prints the medians of the
 * per-round sums over all entries and the verification's share of the verified load. */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "gpuarray_impl.h"

#define MAX_ENTRIES 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int rounds = 41;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_kcache --dir WARM_CACHE_DIR [--rounds N]\n");
            return 2;
        }
    }
    if (!dir || rounds < 1) {
        fprintf(stderr, "usage: bench_kcache --dir WARM_CACHE_DIR [--rounds N]\n");
        return 2;
    }
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    mt_kcache kc;
    BENCH_CHECK(mt__kcache_open(&kc));
    static char names[MAX_ENTRIES][300];
    int n = 0;
    DIR *dp = opendir(dir);
    if (!dp) bench_fail("cannot open %s", dir);
    struct dirent *de;
    while ((de = readdir(dp)) != NULL && n < MAX_ENTRIES) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] != '.' && l > 3 && strcmp(de->d_name + l - 3, ".so") == 0 &&
            l < sizeof names[0])
            memcpy(names[n++], de->d_name, l + 1);
    }
    closedir(dp);
    if (n == 0) bench_fail("no <key>.so entries in %s (fill it with bench_jit first)", dir);
    double *ver = malloc(sizeof(double) * (size_t)rounds);
    double *plain = malloc(sizeof(double) * (size_t)rounds);
    double *share = malloc(sizeof(double) * (size_t)rounds);
    if (!ver || !plain || !share) bench_fail("out of memory");
    char path[4096];
    for (int r = -2; r < rounds; r++) { /* two untimed rounds first */
        double tv = 0, tp = 0;
        mt__kcache_forget_verified(); /* each round loads like a fresh process */
        for (int i = 0; i < n; i++) {
            void *dl = NULL;
            double t0 = now_s();
            BENCH_CHECK(mt__kcache_dlopen(&kc, names[i], MT_KCACHE_OWN, &dl, path, sizeof path));
            dlclose(dl);
            double t1 = now_s();
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!h) bench_fail("dlopen %s: %s", path, dlerror());
            dlclose(h);
            double t2 = now_s();
            tv += t1 - t0;
            tp += t2 - t1;
        }
        if (r < 0) continue;
        ver[r] = tv;
        plain[r] = tp;
        share[r] = (tv - tp) / tv;
    }
    double mv = median(ver, rounds), mp = median(plain, rounds), ms = median(share, rounds);
    printf("bench_kcache: %d entries in %s, %d rounds\n", n, dir, rounds);
    printf("  verified load (all entries): median %.3f ms\n", 1e3 * mv);
    printf("  plain dlopen (all entries):  median %.3f ms\n", 1e3 * mp);
    printf("  verification share of the verified load: median %.1f %%\n", 100 * ms);
    free(ver);
    free(plain);
    free(share);
    mt__kcache_close(&kc);
    return 0;
}
