/* Shared helpers of the fuzz targets (docs/fuzzing.md): the libFuzzer entry point's prototype,
 * a fatal check for documented invariants (a failed one is reported by libFuzzer as a crash,
 * and fails the replay test), and a per-process scratch directory for the readers that take a
 * path. Every target is a plain C file defining LLVMFuzzerTestOneInput, so the same file links
 * into the libFuzzer binary (fuzz/CMakeLists.txt) and into the corpus replay test of every build
 * (tests/fuzz/, with fuzz/replay_main.c). */
#ifndef MLTRAIN_FUZZ_COMMON_H
#define MLTRAIN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: print it and abort (this is test code, not library code). */
#define MT_FUZZ_CHECK(cond, ...)                                                             \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz invariant failed (%s:%d): %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static char mt_fuzz_dir_buf[512];
static char mt_fuzz_files[8][640];
static int mt_fuzz_n_files;

static inline void mt_fuzz_cleanup(void)
{
    for (int i = 0; i < mt_fuzz_n_files; i++) unlink(mt_fuzz_files[i]);
    if (mt_fuzz_dir_buf[0]) rmdir(mt_fuzz_dir_buf);
}

/* The scratch directory ($TMPDIR or /tmp), created on first use and removed at exit. */
static inline const char *mt_fuzz_dir(void)
{
    if (!mt_fuzz_dir_buf[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(mt_fuzz_dir_buf, sizeof mt_fuzz_dir_buf, "%s/mltrain-fuzz-XXXXXX",
                 t && *t ? t : "/tmp");
        if (!mkdtemp(mt_fuzz_dir_buf)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(mt_fuzz_cleanup);
    }
    return mt_fuzz_dir_buf;
}

/* Writes data to DIR/name (replacing it) and returns the path (static storage per name). */
static inline const char *mt_fuzz_write_file(const char *name, const void *data, size_t size)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%s", mt_fuzz_dir(), name);
    int slot = -1;
    for (int i = 0; i < mt_fuzz_n_files; i++)
        if (!strcmp(mt_fuzz_files[i], path)) slot = i;
    if (slot < 0) {
        if (mt_fuzz_n_files == 8) abort();
        slot = mt_fuzz_n_files++;
        memcpy(mt_fuzz_files[slot], path, sizeof path);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: writing the scratch file");
        abort();
    }
    return mt_fuzz_files[slot];
}

#endif /* MLTRAIN_FUZZ_COMMON_H */
