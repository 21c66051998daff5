/* Small helpers shared by the elementwise kernel tests (test_kernels.c, test_kernels_exec.c). */
#ifndef MT_TEST_KERNELS_HELPERS_H
#define MT_TEST_KERNELS_HELPERS_H

/* ---------------------------------------------------------------- small helpers */

static inline mt_device *open_host(void)
{
    mt_device *d = NULL;
    MT_CHECK_OK(mt_device_open(&d, "host"));
    return d;
}

static inline void set_interp(bool on)
{
    if (on)
        setenv("MLTRAIN_NO_CC", "1", 1);
    else
        unsetenv("MLTRAIN_NO_CC");
}

static inline void need_cc(void)
{
    set_interp(false);
    if (!mt__hostcc_available()) MT_SKIP("no working host C compiler");
}

static inline size_t dsz(mt_dtype dt)
{
    return mt_dtype_size(dt);
}

/* Array from raw element bytes (C order). */
static inline mt_array mk(mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims, const void *data)
{
    mt_array a;
    memset(&a, 0, sizeof a);
    MT_CHECK_OK(mt_array_from_host(&a, dev, dt, nd, dims, data));
    return a;
}

static inline mt_array mk_empty(mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims)
{
    mt_array a;
    memset(&a, 0, sizeof a);
    MT_CHECK_OK(mt_array_empty(&a, dev, dt, nd, dims, 'C'));
    return a;
}

static inline void *to_host(const mt_array *a)
{
    size_t n = mt_array_nbytes(a);
    void *p = malloc(n ? n : 1);
    MT_CHECK(p);
    MT_CHECK_OK(mt_array_to_host(p, n, a));
    return p;
}

/* Value of element i of raw dtype data as double / int64 / uint64 (via core's converter). */
static inline double as_f64(mt_dtype dt, const void *data, size_t i)
{
    double v;
    mt_dtype_convert(&v, MT_FLOAT64, 0, (const char *)data + i * dsz(dt), dt, 0, 1);
    return v;
}

static inline uint64_t raw_bits(mt_dtype dt, const void *data, size_t i)
{
    uint64_t b = 0;
    memcpy(&b, (const char *)data + i * dsz(dt), dsz(dt));
    return b;
}

static inline int64_t sext(uint64_t b, mt_dtype dt)
{
    int sh = 64 - 8 * (int)dsz(dt);
    return sh ? (int64_t)(b << sh) >> sh : (int64_t)b;
}

static inline uint64_t mask_w(mt_dtype dt)
{
    return dsz(dt) == 8 ? ~0ull : (1ull << (8 * dsz(dt))) - 1;
}

/* Rounds a double to dtype dt and back (the value dt can hold). */
static inline double round_to(mt_dtype dt, double v)
{
    unsigned char b[8];
    mt_dtype_convert(b, dt, 0, &v, MT_FLOAT64, 0, 1);
    return as_f64(dt, b, 0);
}

/* One unit in the last place of dtype dt at |v| (at least the smallest subnormal). */
static inline double ulp_at(mt_dtype dt, double v)
{
    int p = dt == MT_FLOAT64 ? 53 : dt == MT_FLOAT32 ? 24 : dt == MT_FLOAT16 ? 11 : 8;
    int emin = dt == MT_FLOAT64 ? -1022 : dt == MT_FLOAT32 ? -126 : dt == MT_FLOAT16 ? -14 : -126;
    v = fabs(v);
    int e = v > 0 ? ilogb(v) : emin;
    if (e < emin) e = emin;
    return ldexp(1.0, e - (p - 1));
}

/* |got - want| <= ulps * ulp(want); NaN matches NaN, infinities must be equal. */
static inline bool close_ulps(mt_dtype dt, double got, double want, double ulps)
{
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs(got - want) <= ulps * ulp_at(dt, want);
}

/* Runs an elementwise kernel (a convenience over mt_elemwise's pointer arrays). */
static inline mt_status ew(const mt_kexpr *e, int32_t nin, const mt_array *ins, int32_t nout, mt_array *outs,
                    int32_t nparams, const mt_scalar *params)
{
    const mt_array *ip[16];
    mt_array *op[8];
    for (int i = 0; i < nin; i++) ip[i] = &ins[i];
    for (int j = 0; j < nout; j++) op[j] = &outs[j];
    return mt_elemwise(e, nin, ip, op, nparams, params);
}


#endif
