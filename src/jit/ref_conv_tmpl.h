/* Host loops of convolution and pooling for one element type, instantiated twice by
 * ref_conv.c: with T = float, SFX(name) = name##_f32, GEMM = cblas_sgemm, and with T = double,
 * SFX(name) = name##_f64, GEMM = cblas_dgemm. Not a header of its own: it has no include guard
 * on purpose and is included nowhere else.
 *
 * Layouts (all C-contiguous): images x [N, C, H, W]; kernels w [O, C, KH, KW]; outputs
 * y [N, O, OH, OW]; the column matrix of a chunk of nb images is cols [K, nb * P] with
 * K = C * KH * KW rows ordered (c, kh, kw) and nb * P columns ordered (image, oh, ow), P =
 * OH * OW, so that y_chunk [O, nb * P] = w [O, K] @ cols. Loops take a range of work items so
 * the thread pool can split them. */

/* ---------------------------------------------------------------- im2col / col2im */

/* Rows [r0, r1) of cols for images x[0..nb). */
static void SFX(im2col)(const conv_geom *q, const T *x, int64_t nb, T *cols, int64_t r0,
                        int64_t r1)
{
    const int64_t P = q->oh * q->ow, ld = nb * P, HW = q->h * q->w;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / (q->kh * q->kw), kh = (r / q->kw) % q->kh, kw = r % q->kw;
        /* the output columns [ow_lo, ow_hi) read inside the input for this kw */
        int64_t ow_lo = 0, ow_hi = q->ow;
        while (ow_lo < q->ow && ow_lo * q->sw - q->pw + kw < 0) ow_lo++;
        while (ow_hi > ow_lo && (ow_hi - 1) * q->sw - q->pw + kw >= q->w) ow_hi--;
        for (int64_t b = 0; b < nb; b++) {
            const T *xp = x + (b * q->c + c) * HW;
            T *dst = cols + r * ld + b * P;
            for (int64_t oh = 0; oh < q->oh; oh++, dst += q->ow) {
                int64_t ih = oh * q->sh - q->ph + kh;
                if (ih < 0 || ih >= q->h) {
                    memset(dst, 0, (size_t)q->ow * sizeof(T));
                    continue;
                }
                const T *src = xp + ih * q->w - q->pw + kw;
                for (int64_t ow = 0; ow < ow_lo; ow++) dst[ow] = 0;
                if (q->sw == 1) {
                    memcpy(dst + ow_lo, src + ow_lo, (size_t)(ow_hi - ow_lo) * sizeof(T));
                } else {
                    for (int64_t ow = ow_lo; ow < ow_hi; ow++) dst[ow] = src[ow * q->sw];
                }
                for (int64_t ow = ow_hi; ow < q->ow; ow++) dst[ow] = 0;
            }
        }
    }
}

/* dx[planes [p0, p1) of the chunk] += cols, plane = image * C + c. */
static void SFX(col2im)(const conv_geom *q, const T *cols, int64_t nb, T *dx, int64_t p0,
                        int64_t p1)
{
    const int64_t P = q->oh * q->ow, ld = nb * P, HW = q->h * q->w;
    for (int64_t pl = p0; pl < p1; pl++) {
        int64_t b = pl / q->c, c = pl % q->c;
        T *xp = dx + pl * HW;
        for (int64_t kh = 0; kh < q->kh; kh++) {
            for (int64_t kw = 0; kw < q->kw; kw++) {
                int64_t r = (c * q->kh + kh) * q->kw + kw;
                int64_t ow_lo = 0, ow_hi = q->ow;
                while (ow_lo < q->ow && ow_lo * q->sw - q->pw + kw < 0) ow_lo++;
                while (ow_hi > ow_lo && (ow_hi - 1) * q->sw - q->pw + kw >= q->w) ow_hi--;
                const T *src = cols + r * ld + b * P;
                for (int64_t oh = 0; oh < q->oh; oh++, src += q->ow) {
                    int64_t ih = oh * q->sh - q->ph + kh;
                    if (ih < 0 || ih >= q->h) continue;
                    T *dst = xp + ih * q->w - q->pw + kw;
                    if (q->sw == 1) {
                        for (int64_t ow = ow_lo; ow < ow_hi; ow++) dst[ow] += src[ow];
                    } else {
                        for (int64_t ow = ow_lo; ow < ow_hi; ow++) dst[ow * q->sw] += src[ow];
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- convolution drivers */

/* y [O, P] blocks of the chunk from tmp [O, nb * P] (rows [o0, o1) of every image). */
static void SFX(unpack)(const T *tmp, int64_t nb, int64_t O, int64_t P, T *y)
{
    for (int64_t b = 0; b < nb; b++)
        for (int64_t o = 0; o < O; o++)
            memcpy(y + (b * O + o) * P, tmp + o * nb * P + b * P, (size_t)P * sizeof(T));
}

/* tmp [O, nb * P] from the chunk's dy [nb, O, P]. */
static void SFX(pack)(const T *dy, int64_t nb, int64_t O, int64_t P, T *tmp)
{
    for (int64_t b = 0; b < nb; b++)
        for (int64_t o = 0; o < O; o++)
            memcpy(tmp + o * nb * P + b * P, dy + (b * O + o) * P, (size_t)P * sizeof(T));
}

static void SFX(add_into)(T *dst, const T *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

static void SFX(gemm)(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *a,
                      int64_t lda, const T *b, int64_t ldb, T beta, T *c, int64_t ldc)
{
    GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
         (int)n, (int)k, (T)1, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Images [n0, n1) of the batch, run by worker `thread`. Each worker has its own column matrix
 * and staging block (allocated on its first range, freed by the caller). The weight gradient
 * of the images [g * slot, (g + 1) * slot) is summed into partial[g] (partial[0] is the
 * result) by the one call that gets that range; the caller adds the slots in order, so the
 * result does not depend on which thread ran what. BLAS runs single-threaded inside workers
 * (see ref_conv.c). */
typedef struct SFX(conv_job) {
    const conv_geom *q;
    int kind;          /* CONV_FWD, CONV_BWD_X, CONV_BWD_W */
    const T *a, *b;    /* fwd: x, w; bwd_x: dy, w; bwd_w: x, dy */
    T *out;            /* y, dx (zeroed), dw */
    void **partial;    /* bwd_w: per slot (T *) */
    int64_t slot;      /* bwd_w: images per slot (the ranges given to conv_part) */
    void **scratch;    /* per worker: cols then tmp, or NULL */
    _Atomic bool failed; /* a worker ran out of memory */
} SFX(conv_job);

static void SFX(conv_part)(void *ctx, int64_t n0, int64_t n1, int thread)
{
    SFX(conv_job) *j = ctx;
    const conv_geom *q = j->q;
    const int64_t P = q->oh * q->ow, O = q->o, K = q->k, CHW = q->c * q->h * q->w;
    if (!j->scratch[thread]) {
        j->scratch[thread] = mt_malloc((size_t)((K + O) * q->nb * P) * sizeof(T) + sizeof(T));
        if (!j->scratch[thread]) {
            j->failed = true;
            return;
        }
    }
    T *cols = j->scratch[thread], *tmp = cols + K * q->nb * P;
    for (int64_t s0 = n0; s0 < n1; s0 += q->nb) {
        int64_t nb = n1 - s0 < q->nb ? n1 - s0 : q->nb, ld = nb * P;
        bool direct = nb == 1; /* the GEMM reads / writes the image's [O, P] block itself */
        if (j->kind == CONV_BWD_X) {
            const T *g = j->a + s0 * O * P;
            if (!direct) {
                SFX(pack)(g, nb, O, P, tmp);
                g = tmp;
            }
            T *dx = j->out + s0 * CHW;
            if (direct && q->identity) {
                SFX(gemm)(true, false, K, P, O, j->b, K, g, P, 0, dx, P);
                continue;
            }
            SFX(gemm)(true, false, K, ld, O, j->b, K, g, ld, 0, cols, ld);
            SFX(col2im)(q, cols, nb, dx, 0, nb * q->c);
            continue;
        }
        /* fwd and bwd_w read the columns of x */
        const T *xs = j->a + s0 * CHW, *c = xs;
        if (!(direct && q->identity)) {
            SFX(im2col)(q, xs, nb, cols, 0, K);
            c = cols;
        }
        if (j->kind == CONV_FWD) {
            T *y = j->out + s0 * O * P;
            SFX(gemm)(false, false, O, ld, K, j->b, K, c, ld, 0, direct ? y : tmp, ld);
            if (!direct) SFX(unpack)(tmp, nb, O, P, y);
        } else {
            const T *g = j->b + s0 * O * P;
            if (!direct) {
                SFX(pack)(g, nb, O, P, tmp);
                g = tmp;
            }
            SFX(gemm)(false, true, O, K, ld, g, ld, c, ld, s0 == n0 ? 0 : 1,
                      (T *)j->partial[n0 / j->slot], K);
        }
    }
}

/* ---------------------------------------------------------------- pooling */

/* Pooling walks each plane one output row at a time. The interior output columns [c0, c1),
 * whose windows lie inside the input horizontally, are computed together: for every element
 * (i, dj) of the window in C order, one pass over the columns updates a running max (with its
 * position) or sum, a loop the compiler vectorizes (strides 1 and 2 are specialized so the
 * loads need no gathers). The edge columns take the scalar path over their clipped window.
 * Max: strict > keeps the first maximal element; a NaN replaces a number, so the first NaN
 * wins and propagates (NumPy's maximum). */

/* The clipped window of output index o along one axis: [*lo, *hi). */
static inline void SFX(span)(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int64_t *lo,
                             int64_t *hi)
{
    int64_t a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* Offset (in the plane) of the first maximal element of the window; the first NaN if any. */
static inline int64_t SFX(argmax)(const T *xp, int64_t w, int64_t h0, int64_t h1, int64_t w0,
                                  int64_t w1)
{
    int64_t best = h0 * w + w0;
    T m = xp[best];
    for (int64_t i = h0; i < h1; i++)
        for (int64_t j = w0; j < w1; j++) {
            T v = xp[i * w + j];
            if (v > m || (v != v && m == m)) {
                m = v;
                best = i * w + j;
            }
        }
    return best;
}

/* Running max (bv) and its offset (bi, when not NULL) over rows [h0, h1) for the columns
 * [0, n) starting at plane offset `first` (of column 0's window), column stride s. nan: the
 * plane may hold NaNs (then the careful comparison; else a plain max the compiler maps to
 * maxps / compare-and-blend). */
#define SFX_ROWMAX_BODY(S, UPDATE)                                                           \
    for (int64_t i = h0; i < h1; i++)                                                       \
        for (int64_t dj = 0; dj < kw; dj++) {                                               \
            const int32_t off = (int32_t)(i * w + dj + first);                              \
            const T *restrict r = xp + off;                                                 \
            if (bi) {                                                                       \
                for (int32_t o = 0; o < nn; o++) {                                          \
                    T t = r[o * (S)], b = bv[o];                                            \
                    bool up = UPDATE;                                                       \
                    int32_t m = -(int32_t)up; /* masks, so the loop vectorizes */           \
                    bv[o] = up ? t : b;                                                     \
                    bi[o] = (bi[o] & ~m) | ((off + o * (S)) & m);                           \
                }                                                                           \
            } else {                                                                        \
                for (int32_t o = 0; o < nn; o++) {                                          \
                    T t = r[o * (S)], b = bv[o];                                            \
                    bv[o] = (UPDATE) ? t : b;                                               \
                }                                                                           \
            }                                                                               \
        }
/* with NaNs: the first NaN wins and stays */
#define SFX_NAN_UPDATE ((t > b) | ((t != t) & (b == b)))
#define SFX_PLAIN_UPDATE (t > b)

static void SFX(rowmax)(const T *xp, int64_t w, int64_t h0, int64_t h1, int64_t first, int64_t n,
                        int32_t s, int64_t kw, bool nan, T *restrict bv, int32_t *restrict bi)
{
    const int32_t nn = (int32_t)n; /* n, and every offset in the plane, fit in int32 */
    for (int64_t o = 0; o < n; o++) {
        bv[o] = xp[h0 * w + first + o * s];
        if (bi) bi[o] = (int32_t)(h0 * w + first + o * s);
    }
    if (nan) {
        SFX_ROWMAX_BODY(s, SFX_NAN_UPDATE)
    } else if (s == 1) {
        SFX_ROWMAX_BODY(1, SFX_PLAIN_UPDATE)
    } else if (s == 2) {
        SFX_ROWMAX_BODY(2, SFX_PLAIN_UPDATE)
    } else {
        SFX_ROWMAX_BODY(s, SFX_PLAIN_UPDATE)
    }
}

/* Whether a plane holds a NaN (one vectorizable pass). */
static bool SFX(has_nan)(const T *p, int64_t n)
{
    int any = 0;
    for (int64_t i = 0; i < n; i++) any |= p[i] != p[i];
    return any != 0;
}

#define SFX_ROWSUM_BODY(S)                                                                   \
    for (int64_t i = h0; i < h1; i++)                                                       \
        for (int64_t dj = 0; dj < kw; dj++) {                                               \
            const T *r = xp + i * w + dj + first;                                           \
            for (int64_t o = 0; o < n; o++) acc[o] += r[o * (S)];                           \
        }

static void SFX(rowsum)(const T *xp, int64_t w, int64_t h0, int64_t h1, int64_t first, int64_t n,
                        int64_t s, int64_t kw, T *acc)
{
    for (int64_t o = 0; o < n; o++) acc[o] = 0;
    if (s == 1) {
        SFX_ROWSUM_BODY(1)
    } else if (s == 2) {
        SFX_ROWSUM_BODY(2)
    } else {
        SFX_ROWSUM_BODY(s)
    }
}

/* dp[window elements of columns [0, n)] += g[o] for rows [h0, h1). */
#define SFX_ROWADD_BODY(S)                                                                   \
    for (int64_t i = h0; i < h1; i++)                                                       \
        for (int64_t dj = 0; dj < kw; dj++) {                                               \
            T *r = dp + i * w + dj + first;                                                 \
            for (int64_t o = 0; o < n; o++) r[o * (S)] += g[o];                             \
        }

static void SFX(rowadd)(T *dp, int64_t w, int64_t h0, int64_t h1, int64_t first, int64_t n,
                        int64_t s, int64_t kw, const T *g)
{
    if (s == 1) {
        SFX_ROWADD_BODY(1)
    } else if (s == 2) {
        SFX_ROWADD_BODY(2)
    } else {
        SFX_ROWADD_BODY(s)
    }
}

/* Scratch of one output row: values and offsets. */
typedef struct SFX(rowbuf) {
    T *v, *g;
    int32_t *i;
    void *heap;
} SFX(rowbuf);

/* false when out of memory (the caller then uses the scalar path for every column). */
static bool SFX(rowbuf_init)(SFX(rowbuf) *b, int64_t n)
{
    b->heap = mt_malloc((size_t)(n > 0 ? n : 1) * (2 * sizeof(T) + sizeof(int32_t)));
    b->v = b->heap;
    b->g = b->v + n;
    b->i = (int32_t *)(b->g + n);
    return b->heap != NULL;
}

/* The interior columns [*c0, *c1) of an axis: windows inside [0, n). */
static void SFX(interior)(const pool_geom *q, int64_t *c0, int64_t *c1)
{
    int64_t lo = (q->pw + q->sw - 1) / q->sw;
    int64_t hi = q->w + q->pw - q->kw >= 0 ? (q->w + q->pw - q->kw) / q->sw + 1 : 0;
    if (hi > q->ow) hi = q->ow;
    if (lo > hi) lo = hi;
    *c0 = lo;
    *c1 = hi;
}

/* Planes [p0, p1) of pool2d(x) into y, or pool2d(x, v) when v is not NULL. */
static void SFX(pool_fwd)(const pool_geom *q, const T *x, const T *v, T *y, int64_t p0,
                          int64_t p1)
{
    const int64_t HW = q->h * q->w, OHW = q->oh * q->ow;
    int64_t c0, c1;
    SFX(interior)(q, &c0, &c1);
    SFX(rowbuf) rb;
    if (!SFX(rowbuf_init)(&rb, c1 - c0)) c1 = c0;
    for (int64_t pl = p0; pl < p1; pl++) {
        const T *xp = x + pl * HW, *vp = v ? v + pl * HW : NULL;
        T *yp = y + pl * OHW;
        bool nan = q->max && c1 > c0 && SFX(has_nan)(xp, HW);
        for (int64_t oh = 0; oh < q->oh; oh++) {
            int64_t h0, h1;
            SFX(span)(oh, q->sh, q->ph, q->kh, q->h, &h0, &h1);
            T *yr = yp + oh * q->ow;
            if (c1 > c0) {
                int64_t first = c0 * q->sw - q->pw, n = c1 - c0;
                if (q->max) {
                    SFX(rowmax)(xp, q->w, h0, h1, first, n, q->sw, q->kw, nan, rb.v,
                                vp ? rb.i : NULL);
                    for (int64_t o = 0; o < n; o++) yr[c0 + o] = vp ? vp[rb.i[o]] : rb.v[o];
                } else {
                    SFX(rowsum)(vp ? vp : xp, q->w, h0, h1, first, n, q->sw, q->kw, rb.v);
                    T inv = (T)1 / (T)((h1 - h0) * q->kw);
                    for (int64_t o = 0; o < n; o++) yr[c0 + o] = rb.v[o] * inv;
                }
            }
            for (int64_t ow = 0; ow < q->ow; ow++) {
                if (ow == c0 && c1 > c0) ow = c1;
                if (ow >= q->ow) break;
                int64_t w0, w1;
                SFX(span)(ow, q->sw, q->pw, q->kw, q->w, &w0, &w1);
                T r;
                if (q->max) {
                    int64_t at = SFX(argmax)(xp, q->w, h0, h1, w0, w1);
                    r = vp ? vp[at] : xp[at];
                } else {
                    const T *sp = vp ? vp : xp;
                    T s = 0;
                    for (int64_t i = h0; i < h1; i++)
                        for (int64_t j = w0; j < w1; j++) s += sp[i * q->w + j];
                    r = s / (T)((h1 - h0) * (w1 - w0));
                }
                yr[ow] = r;
            }
        }
    }
    mt_free(rb.heap);
}

/* Planes [p0, p1) of pool2d_grad(x, y, dy) into dx (zeroed by the caller). The max positions
 * are recomputed from x (y, the forward result, is not needed). */
static void SFX(pool_bwd)(const pool_geom *q, const T *x, const T *dy, T *dx, int64_t p0,
                          int64_t p1)
{
    const int64_t HW = q->h * q->w, OHW = q->oh * q->ow;
    int64_t c0, c1;
    SFX(interior)(q, &c0, &c1);
    SFX(rowbuf) rb;
    if (!SFX(rowbuf_init)(&rb, c1 - c0)) c1 = c0;
    for (int64_t pl = p0; pl < p1; pl++) {
        const T *xp = q->max ? x + pl * HW : NULL, *gp = dy + pl * OHW;
        T *dp = dx + pl * HW;
        bool nan = q->max && c1 > c0 && SFX(has_nan)(xp, HW);
        for (int64_t oh = 0; oh < q->oh; oh++) {
            int64_t h0, h1;
            SFX(span)(oh, q->sh, q->ph, q->kh, q->h, &h0, &h1);
            const T *gr = gp + oh * q->ow;
            if (c1 > c0) {
                int64_t first = c0 * q->sw - q->pw, n = c1 - c0;
                if (q->max) {
                    SFX(rowmax)(xp, q->w, h0, h1, first, n, q->sw, q->kw, nan, rb.v, rb.i);
                    for (int64_t o = 0; o < n; o++) dp[rb.i[o]] += gr[c0 + o];
                } else {
                    T inv = (T)1 / (T)((h1 - h0) * q->kw);
                    for (int64_t o = 0; o < n; o++) rb.g[o] = gr[c0 + o] * inv;
                    SFX(rowadd)(dp, q->w, h0, h1, first, n, q->sw, q->kw, rb.g);
                }
            }
            for (int64_t ow = 0; ow < q->ow; ow++) {
                if (ow == c0 && c1 > c0) ow = c1;
                if (ow >= q->ow) break;
                int64_t w0, w1;
                SFX(span)(ow, q->sw, q->pw, q->kw, q->w, &w0, &w1);
                if (q->max) {
                    dp[SFX(argmax)(xp, q->w, h0, h1, w0, w1)] += gr[ow];
                    continue;
                }
                T g = gr[ow] / (T)((h1 - h0) * (w1 - w0));
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++) dp[i * q->w + j] += g;
            }
        }
    }
    mt_free(rb.heap);
}

#undef SFX_ROWMAX_BODY
#undef SFX_NAN_UPDATE
#undef SFX_PLAIN_UPDATE
#undef SFX_ROWSUM_BODY
#undef SFX_ROWADD_BODY
