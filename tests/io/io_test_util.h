/* Helpers shared by the io tests: paths in the case's temporary directory, deterministic test
 * values, file surgery (copy, truncate, flip bytes) and running /usr/bin/python3 scripts for
 * cross-checks with h5py, NumPy and TensorBoard. */
#ifndef MT_IO_TEST_UTIL_H
#define MT_IO_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mltrain/io.h"
#include "mt_test.h"

#ifndef MT_PYTHON3
#define MT_PYTHON3 "/usr/bin/python3"
#endif

static inline char *tpath(const char *name)
{
    static char buf[8][1024];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 1024, "%s/%s", mt_test_tmpdir(), name);
    return p;
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    MT_CHECK(f != NULL);
    MT_CHECK(fwrite(data, 1, n, f) == n);
    MT_CHECK(fclose(f) == 0);
}

/* The whole file (caller frees with mt_free). */
static inline char *slurp(const char *path, size_t *len)
{
    char *d = NULL;
    size_t n = 0;
    MT_CHECK_OK(mt_file_read_all(path, &d, &n, 0));
    if (len) *len = n;
    return d;
}

/* Whether dir holds a file whose name contains ".tmp." (a leftover of an atomic write). */
static inline bool has_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    MT_CHECK(d != NULL);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

/* Runs `python3 SCRIPT ARGS...` (script text written to a file) and returns its exit status;
 * its stdout+stderr go to *out (mt_free) when out is non-NULL. Skips the case when python3 or
 * one of the modules in `needs` (space-separated) cannot be imported. */
static inline int run_python(const char *script, const char *args, const char *needs, char **out)
{
    if (access(MT_PYTHON3, X_OK) != 0) MT_SKIP("no " MT_PYTHON3);
    char cmd[4096];
    if (needs && *needs) {
        char imports[512] = "";
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", needs);
        for (char *tok = strtok(tmp, " "); tok; tok = strtok(NULL, " ")) {
            strncat(imports, "import ", sizeof imports - strlen(imports) - 1);
            strncat(imports, tok, sizeof imports - strlen(imports) - 1);
            strncat(imports, ";", sizeof imports - strlen(imports) - 1);
        }
        snprintf(cmd, sizeof cmd, "%s -c '%s' >/dev/null 2>&1", MT_PYTHON3, imports);
        if (system(cmd) != 0) {
            char why[600];
            snprintf(why, sizeof why, "%s cannot import %s", MT_PYTHON3, needs);
            MT_SKIP(why);
        }
    }
    char *spath = tpath("script.py"), *opath = tpath("script.out");
    write_bytes(spath, script, strlen(script));
    snprintf(cmd, sizeof cmd, "%s '%s' %s >'%s' 2>&1", MT_PYTHON3, spath, args ? args : "", opath);
    int rc = system(cmd);
    int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
    char *text = slurp(opath, NULL);
    if (code != 0) fprintf(stderr, "python output:\n%s\n", text);
    if (out)
        *out = text;
    else
        mt_free(text);
    return code;
}

/* Deterministic test values: v(i) = sin(1.7 i + seed) * scale (independent of the code). */
static inline double tval(int64_t i, double seed)
{
    return sin(1.7 * (double)i + seed) * 3.0;
}

/* Exactly representable values for cross-checks with Python: ((37 i) mod 101 - 50) / 8 + k;
 * NumPy: ((np.arange(n) * 37) % 101 - 50) / 8.0 + k. */
static inline double xval(int64_t i, double k)
{
    return (double)((i * 37) % 101 - 50) / 8.0 + k;
}

static inline void fill_f32(float *p, int64_t n, double seed)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)tval(i, seed);
}

#endif
