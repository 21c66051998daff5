/* Corpus replay driver: runs every file of the directories (or files) named on the command line
 * through the target's LLVMFuzzerTestOneInput, in name order, so that the seed corpus and every
 * crash input ever found are regression tests of the ordinary build (CTest `fuzz.<name>`, label
 * fuzz; tests/fuzz/CMakeLists.txt). `--nonempty DIR` fails when DIR holds no input (the seed
 * corpus must not silently vanish); other directories may be empty or absent (crashes/). A
 * finding aborts or crashes the process, which fails the test. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    /* libFuzzer hands over a buffer of exactly the input's size: copy into one, so that ASan
     * builds see reads past the end. */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return -1;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

/* Runs every regular file of dir (or dir itself when it is a file); returns the count or -1. */
static long run_path(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return 0;
    if (S_ISREG(sb.st_mode)) return run_file(dir) ? -1 : 1;
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) abort();
            names = nn;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) abort();
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(names[i])) count = -1;
            else if (count >= 0) count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        int nonempty = !strcmp(argv[i], "--nonempty");
        if (nonempty && ++i == argc) break;
        long n = run_path(argv[i]);
        printf("%s: %ld inputs replayed\n", argv[i], n < 0 ? 0 : n);
        if (n < 0 || (nonempty && n == 0)) {
            fprintf(stderr, "%s: %s\n", argv[i], n < 0 ? "unreadable" : "no inputs");
            rc = 1;
        }
    }
    return rc;
}
