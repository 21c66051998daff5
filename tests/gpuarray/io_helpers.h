/* Helpers shared by the npy/DLPack/random tests and the GEMM tests (test_io.c, test_gemm.c). */
#ifndef MT_TEST_IO_HELPERS_H
#define MT_TEST_IO_HELPERS_H

/* ================================================================ helpers */

/* splitmix64: test inputs independent of the code under test */
static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static inline uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline double urand(void) /* [-1, 1) */
{
    return (double)(rnd64() >> 11) * 0x1p-52 - 1.0;
}

static inline mt_device *open_dev(void)
{
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, mt_test_device_name()));
    return dev;
}

static inline mt_device *open_host(void)
{
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    return dev;
}

/* OpenCL device or skip. */
static inline mt_device *open_opencl(void)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, "opencl");
    if (st == MT_ERR_NOT_BUILT || st == MT_ERR_NOT_FOUND) MT_SKIP("no OpenCL device");
    MT_CHECK_OK(st);
    return dev;
}

static inline int64_t prod(int32_t nd, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) n *= dims[i];
    return n;
}

static inline char *path_in_tmp(const char *name)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 1024, "%s/%s", mt_test_tmpdir(), name);
    return p;
}

/* New array on dev holding vals (C order, float64) converted to dt. */
static inline void make_array(mt_array *out, mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims,
                       const double *vals)
{
    int64_t n = prod(nd, dims);
    size_t isz = mt_dtype_size(dt);
    void *buf = malloc((size_t)(n ? n : 1) * isz);
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)isz, vals, MT_FLOAT64, 8, (size_t)n);
    MT_CHECK_OK(mt_array_from_host(out, dev, dt, nd, dims, buf));
    free(buf);
}

/* The array's elements in C order as float64 (caller frees). */
static inline double *read_vals(const mt_array *a)
{
    int64_t n = mt_array_size(a);
    size_t isz = mt_array_itemsize(a);
    void *raw = malloc((size_t)(n ? n : 1) * isz);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    MT_CHECK(raw && v);
    MT_CHECK_OK(mt_array_to_host(raw, (size_t)n * isz, a));
    mt_dtype_convert(v, MT_FLOAT64, 8, raw, a->dtype, (ptrdiff_t)isz, (size_t)n);
    free(raw);
    return v;
}

static inline uint64_t allocs_of(mt_device *dev)
{
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    return s.allocs;
}

/* ================================================================ .npy */

/* The value pattern shared with the Python side: element i (C order) of dtype dt. */
static inline void pat_fill(void *buf, mt_dtype dt, int64_t n)
{
    size_t isz = mt_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) {
        char *p = (char *)buf + (size_t)i * isz;
        if (dt == MT_BOOL) {
            *p = (char)(i % 3 == 0);
        } else if (mt_dtype_is_int(dt)) {
            uint64_t v = (uint64_t)i * 2654435761u;
            mt_dtype_convert(p, dt, 0, &v, MT_UINT64, 0, 1);
        } else {
            double v = ((double)((i * 37 + 11) % 61) - 30.0) * 0.5;
            mt_dtype_convert(p, dt, 0, &v, MT_FLOAT64, 0, 1);
        }
    }
}

/* A pattern array of shape dims in C or F layout (values by C-order index either way). */
static inline void pat_array(mt_array *out, mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims,
                      bool fortran)
{
    int64_t n = prod(nd, dims);
    void *buf = malloc((size_t)(n ? n : 1) * mt_dtype_size(dt));
    pat_fill(buf, dt, n);
    mt_array c;
    MT_CHECK_OK(mt_array_from_host(&c, dev, dt, nd, dims, buf));
    free(buf);
    if (!fortran) {
        *out = c;
        return;
    }
    MT_CHECK_OK(mt_array_empty(out, dev, dt, nd, dims, 'F'));
    MT_CHECK_OK(mt_array_copy(out, &c));
    mt_array_clear(&c);
}

/* Checks a's dtype, shape and C-order bytes against the pattern. */
static inline void check_pat(const mt_array *a, mt_dtype dt, int32_t nd, const int64_t *dims)
{
    MT_CHECK_EQ_INT(a->dtype, dt);
    MT_CHECK_EQ_INT(a->ndim, nd);
    for (int32_t i = 0; i < nd; i++) MT_CHECK_EQ_INT(a->dims[i], dims[i]);
    int64_t n = prod(nd, dims);
    size_t nb = (size_t)n * mt_dtype_size(dt);
    char *want = malloc(nb + 1), *got = malloc(nb + 1);
    pat_fill(want, dt, n);
    MT_CHECK_OK(mt_array_to_host(got, nb, a));
    MT_CHECK(memcmp(want, got, nb) == 0);
    free(want);
    free(got);
}

static inline char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    MT_CHECK_OK(mt_file_read_all(path, &data, len, 0));
    return data;
}


#endif
