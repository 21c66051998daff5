/* Deterministic parameter initialization with Pylearn2's schemes (irange, istdev, sparse_init,
 * include_prob, the autoencoder's W/Wprime) drawn from Philox4x32-10 instead of NumPy's
 * RandomState, so the same YAML gives the same parameters on every machine and rank.
 *
 * Key scheme: the model's seed list (MLP `seed`, default [2013, 1, 4]; autoencoder `rng`,
 * default 9001) is hashed into seed_key = mt_hash64(int64 seed values). Each parameter gets
 * key = mt_hash64(name bytes, seed_key), split into the two 32-bit Philox key words. Draw i of
 * purpose p uses counter (i mod 2^32, i div 2^32, p, 0); a uniform in [0, 1) takes the first
 * two output words (53 bits, mt_u64_to_unit_f64), a normal is Box-Muller of the two uniforms
 * made from the four words. Purposes: 0 values, 1 include_prob mask, 2 sparse_init positions
 * (counter word 1 = the output unit), 3 sparse_init values, 4 the normals of U_init
 * 'orthogonal' (recurrent weights: draw i of the [n_blocks, n, n] matrices). Conv kernels
 * [out, in, kh, kw]: irange/istdev elementwise; sparse_init k nonzero values in the whole
 * tensor (Pylearn2's make_sparse_random_conv2D). */
#include <math.h>
#include <string.h>

#include "model_impl.h"

enum {
    PURPOSE_VALUE = 0,
    PURPOSE_MASK = 1,
    PURPOSE_SPARSE_POS = 2,
    PURPOSE_SPARSE_VAL = 3,
    PURPOSE_ORTHO = 4
};

uint64_t mt__init_key(uint64_t seed_key, const char *name)
{
    return mt_hash64(name, strlen(name), seed_key);
}

static void draw(uint64_t key, uint32_t purpose, uint64_t index, uint32_t out[4])
{
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    uint32_t c[4] = {(uint32_t)index, (uint32_t)(index >> 32), purpose, 0};
    mt_philox4x32(c, k, out);
}

double mt__init_uniform(uint64_t key, uint32_t purpose, uint64_t index)
{
    uint32_t o[4];
    draw(key, purpose, index, o);
    return mt_u64_to_unit_f64(o[0], o[1]);
}

double mt__init_normal(uint64_t key, uint32_t purpose, uint64_t index)
{
    uint32_t o[4];
    draw(key, purpose, index, o);
    double u1 = mt_u64_to_unit_f64(o[0], o[1]);
    double u2 = mt_u64_to_unit_f64(o[2], o[3]);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* Sparse init: for each output unit j, k distinct input positions (a partial Fisher-Yates
 * shuffle: the same distribution as Pylearn2's rejection sampling) get N(0, sparse_stdev^2)
 * values. at(i, j) gives the flat index of weight (input i, unit j). */
static mt_status init_sparse(float *W, int64_t n_in, int64_t n_out, const mt__layer_spec *s,
                             uint64_t key, const char *what, bool conv)
{
    int64_t k = s->sparse_init;
    if (k < 0 || k > n_in)
        return mt_err_set(MT_ERR_INVALID, "%s: sparse_init %lld must be in [0, %lld] (the "
                          "input dimension)", what, (long long)k, (long long)n_in);
    memset(W, 0, (size_t)(n_in * n_out) * sizeof(float));
    if (k == 0) return MT_OK;
    int64_t *idx = mt_malloc((size_t)n_in * sizeof(int64_t));
    if (!idx) return mt_err_set(MT_ERR_NOMEM, "%s: out of memory (sparse_init)", what);
    for (int64_t j = 0; j < n_out; j++) {
        for (int64_t i = 0; i < n_in; i++) idx[i] = i;
        for (int64_t t = 0; t < k; t++) {
            uint64_t ctr = ((uint64_t)j << 32) ^ (uint64_t)t;
            double u = mt__init_uniform(key, PURPOSE_SPARSE_POS, ctr);
            int64_t r = t + (int64_t)(u * (double)(n_in - t));
            if (r >= n_in) r = n_in - 1;
            int64_t tmp = idx[t];
            idx[t] = idx[r];
            idx[r] = tmp;
            double v = mt__init_normal(key, PURPOSE_SPARSE_VAL, ctr) * s->sparse_stdev;
            int64_t flat = conv ? j * n_in + idx[t] : idx[t] * n_out + j;
            W[flat] = (float)v;
        }
    }
    mt_free(idx);
    return MT_OK;
}

static mt_status init_common(float *W, int64_t n_in, int64_t n_out, const mt__layer_spec *s,
                             uint64_t key, const char *what, bool conv)
{
    int64_t n = n_in * n_out;
    if (s->has_irange) {
        for (int64_t i = 0; i < n; i++) {
            double v = (2.0 * mt__init_uniform(key, PURPOSE_VALUE, (uint64_t)i) - 1.0) *
                       s->irange;
            if (s->include_prob < 1.0 &&
                !(mt__init_uniform(key, PURPOSE_MASK, (uint64_t)i) < s->include_prob))
                v = 0.0;
            W[i] = (float)v;
        }
        return MT_OK;
    }
    if (s->has_istdev) {
        for (int64_t i = 0; i < n; i++)
            W[i] = (float)(mt__init_normal(key, PURPOSE_VALUE, (uint64_t)i) * s->istdev);
        return MT_OK;
    }
    if (s->has_sparse_init) return init_sparse(W, n_in, n_out, s, key, what, conv);
    return mt_err_set(MT_ERR_INVALID, "%s: give one of irange, istdev or sparse_init "
                      "(Pylearn2 has no default initialization for this layer)", what);
}

mt_status mt__init_dense(float *W, int64_t n_in, int64_t n_out, const mt__layer_spec *s,
                         uint64_t key, const char *what)
{
    return init_common(W, n_in, n_out, s, key, what, false);
}

mt_status mt__init_conv(float *W, int64_t n_out, int64_t fan_in, const mt__layer_spec *s,
                        uint64_t key, const char *what)
{
    /* Pylearn2's make_random_conv2D ignores include_prob, and make_sparse_random_conv2D
     * places sparse_init nonzero N(0, 1) values in the WHOLE kernel tensor (not per kernel) */
    mt__layer_spec c = *s;
    c.include_prob = 1.0;
    if (!c.has_irange && !c.has_istdev && c.has_sparse_init)
        return init_sparse(W, n_out * fan_in, 1, &c, key, what, true);
    return init_common(W, fan_in, n_out, &c, key, what, true);
}

void mt__init_ae(float *W, int64_t n, bool prime, double irange, double istdev, uint64_t key)
{
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (!isnan(irange)) {
            double u = mt__init_uniform(key, PURPOSE_VALUE, (uint64_t)i);
            v = prime ? (0.5 - u) * irange : (2.0 * u - 1.0) * irange;
        } else {
            v = mt__init_normal(key, PURPOSE_VALUE, (uint64_t)i) * istdev;
        }
        W[i] = (float)v;
    }
}

mt_status mt__init_orthogonal(float *U, int64_t n, int64_t n_blocks, uint64_t key,
                              const char *what)
{
    if (n < 1 || n_blocks < 1) return MT_OK;
    double *q = mt_malloc((size_t)(n * n) * sizeof(double)); /* column j at q[j*n .. j*n+n) */
    if (!q) return mt_err_set(MT_ERR_NOMEM, "%s: out of memory (orthogonal initialization)", what);
    int64_t G = n_blocks * n;
    for (int64_t k = 0; k < n_blocks; k++) {
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++)
                q[j * n + i] = mt__init_normal(key, PURPOSE_ORTHO, (uint64_t)((k * n + i) * n + j));
        /* modified Gram-Schmidt, twice per column for orthogonality to rounding */
        for (int64_t j = 0; j < n; j++) {
            double *c = q + j * n;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t p = 0; p < j; p++) {
                    const double *e = q + p * n;
                    double d = 0.0;
                    for (int64_t i = 0; i < n; i++) d += e[i] * c[i];
                    for (int64_t i = 0; i < n; i++) c[i] -= d * e[i];
                }
            double nrm = 0.0;
            for (int64_t i = 0; i < n; i++) nrm += c[i] * c[i];
            nrm = sqrt(nrm);
            if (!(nrm > 1e-9)) {
                mt_free(q);
                return mt_err_set(MT_ERR_INTERNAL, "%s: orthogonal initialization drew a "
                                  "singular matrix", what);
            }
            for (int64_t i = 0; i < n; i++) c[i] /= nrm;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) U[i * G + k * n + j] = (float)q[j * n + i];
    }
    mt_free(q);
    return MT_OK;
}
