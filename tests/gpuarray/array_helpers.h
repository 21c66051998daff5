/* Shared helpers of the gpuarray array and view tests (test_array.c, test_views.c). */
#ifndef MT_TEST_ARRAY_HELPERS_H
#define MT_TEST_ARRAY_HELPERS_H

/* ---------------------------------------------------------------- helpers */

static inline mt_device *open_dev(void)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, mt_test_device_name());
    if (st == MT_ERR_NOT_BUILT || st == MT_ERR_NOT_FOUND) MT_SKIP(mt_last_error());
    MT_CHECK_OK(st);
    return dev;
}

/* A C-contiguous float64 array whose element k holds k. */
static inline void make_iota(mt_array *a, mt_device *dev, int32_t nd, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++)
        n *= dims[i];
    double *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    MT_CHECK(h);
    for (int64_t k = 0; k < n; k++)
        h[k] = (double)k;
    MT_CHECK_OK(mt_array_from_host(a, dev, MT_FLOAT64, nd, dims, h));
    free(h);
}

/* Elements of a in C order as doubles (caller frees). */
static inline double *read_f64(const mt_array *a)
{
    int64_t n = mt_array_size(a);
    size_t isz = mt_array_itemsize(a);
    void *raw = malloc((size_t)(n ? n : 1) * isz);
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    MT_CHECK(raw && d);
    MT_CHECK_OK(mt_array_to_host(raw, (size_t)n * isz, a));
    mt_dtype_convert(d, MT_FLOAT64, 8, raw, a->dtype, (ptrdiff_t)isz, (size_t)n);
    free(raw);
    return d;
}

/* Reads element idx of a straight from memory through dims/strides/offset. */
static inline double raw_elem(const mt_array *a, const int64_t *idx)
{
    const char *p = (const char *)mt_buffer_host_ptr(a->buf) + a->offset;
    for (int32_t i = 0; i < a->ndim; i++)
        p += idx[i] * a->strides[i];
    double v;
    mt_dtype_convert(&v, MT_FLOAT64, 8, p, a->dtype, 0, 1);
    return v;
}

/* Advances a C-order multi-index; false after the last one. */
static inline bool next_index(int64_t *idx, int32_t nd, const int64_t *dims)
{
    for (int32_t i = nd - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) return true;
        idx[i] = 0;
    }
    return false;
}

/* Source flat index that element idx of a view must hold. */
typedef int64_t (*map_fn)(const int64_t *idx, const void *ctx);

/* Checks every element of v (float64) against map, through to_host and through raw memory. */
static inline void check_map(const mt_array *v, map_fn map, const void *ctx)
{
    int64_t n = mt_array_size(v);
    double *vals = read_f64(v);
    bool raw = mt_buffer_host_ptr(v->buf) != NULL;
    int64_t idx[MT_MAX_DIMS] = {0};
    for (int64_t k = 0; k < n; k++) {
        double want = (double)map(idx, ctx);
        if (vals[k] != want || (raw && raw_elem(v, idx) != want)) {
            char d[256];
            mt_test_fail(__FILE__, __LINE__, "%s: element %lld is %g, expected %g",
                         mt_array_describe(v, d, sizeof d), (long long)k, vals[k], want);
        }
        next_index(idx, v->ndim, v->dims);
    }
    free(vals);
}

static inline void check_shape(const mt_array *a, int32_t nd, const int64_t *dims)
{
    MT_CHECK_EQ_INT(a->ndim, nd);
    for (int32_t i = 0; i < nd; i++)
        MT_CHECK_EQ_INT(a->dims[i], dims[i]);
}

static inline uint64_t in_use(mt_device *dev)
{
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    return s.in_use;
}

#define U MT_SLICE_UNSET
#define RNG(a, b, c)                                                                               \
    {                                                                                              \
        MT_SLICE_RANGE, a, b, c                                                                    \
    }
#define IDX(i)                                                                                     \
    {                                                                                              \
        MT_SLICE_INDEX, i, U, U                                                                    \
    }
#define NEWAX                                                                                      \
    {                                                                                              \
        MT_SLICE_NEWAXIS, U, U, U                                                                  \
    }
#define ELLIP                                                                                      \
    {                                                                                              \
        MT_SLICE_ELLIPSIS, U, U, U                                                                 \
    }


typedef struct perm_ctx {
    int32_t perm[MT_MAX_DIMS];
    int32_t nd;
    const int64_t *src_dims;
} perm_ctx;

/* view[idx] = src[j] with j[perm[i]] = idx[i] */
static inline int64_t map_perm(const int64_t *idx, const void *ctx)
{
    const perm_ctx *p = ctx;
    int64_t j[MT_MAX_DIMS];
    for (int32_t i = 0; i < p->nd; i++)
        j[p->perm[i]] = idx[i];
    int64_t flat = 0;
    for (int32_t i = 0; i < p->nd; i++)
        flat = flat * p->src_dims[i] + j[i];
    return flat;
}

static inline int64_t map_identity_flat(const int64_t *idx, const void *ctx)
{
    const mt_array *v = ctx; /* the view's own dims: C order flat index */
    int64_t flat = 0;
    for (int32_t i = 0; i < v->ndim; i++)
        flat = flat * v->dims[i] + idx[i];
    return flat;
}

#endif
