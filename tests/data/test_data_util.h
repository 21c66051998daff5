/* Helpers shared by the data tests: paths of the generated references (make_data_refs.py),
 * small file writers for malformed inputs, and loading .npy references as float64. */
#ifndef TEST_DATA_UTIL_H
#define TEST_DATA_UTIL_H

#include <stdio.h>
#include <sys/stat.h>

#include "mltrain/data.h"
#include "mt_test.h"

static inline const char *refs_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", MT_DATA_REFS, rel);
    return buf;
}

static inline bool path_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Skips the case when the generated references are missing (no /usr/bin/python3). */
static inline void require_refs(const char *rel)
{
    char p[1024];
    if (!path_exists(refs_path(p, sizeof p, rel))) {
        char msg[1200];
        snprintf(msg, sizeof msg, "reference %s not generated (needs /usr/bin/python3 + numpy)", p);
        MT_SKIP(msg);
    }
}

static inline const char *tmp_file(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", mt_test_tmpdir(), name);
    return buf;
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    MT_CHECK(f != NULL);
    MT_CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* A .npy reference as float64 [count] (mt_free it). */
static inline double *load_ref(const char *rel, int64_t *count, int64_t *rows)
{
    char p[1024];
    mt_device *host;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    mt_array a = {0};
    MT_CHECK_OK(mt_npy_load(&a, host, refs_path(p, sizeof p, rel), 0));
    MT_CHECK(mt_array_is_c_contiguous(&a));
    int64_t n = mt_array_size(&a);
    double *out = mt_malloc((size_t)(n ? n : 1) * sizeof(double));
    MT_CHECK(out != NULL);
    mt_dtype_convert(out, MT_FLOAT64, 8, (const char *)mt_buffer_host_ptr(a.buf) + a.offset,
                     a.dtype, (ptrdiff_t)mt_dtype_size(a.dtype), (size_t)n);
    if (count) *count = n;
    if (rows) *rows = a.ndim ? a.dims[0] : 1;
    mt_array_clear(&a);
    mt_device_release(host);
    return out;
}

/* X of a dataset as float64. */
static inline double *dataset_X64(const mt_dataset *d)
{
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    int64_t n = info.n * info.dim;
    double *out = mt_malloc((size_t)(n ? n : 1) * sizeof(double));
    MT_CHECK(out != NULL);
    const float *X = mt_dataset_X(d);
    for (int64_t i = 0; i < n; i++)
        out[i] = X[i];
    return out;
}

#endif
