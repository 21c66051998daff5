/* Preprocessors with Pylearn2's fit/apply semantics (pylearn2/datasets/preprocessing.py):
 * apply(dataset, can_fit) estimates the statistics from that dataset first when can_fit (the
 * training split), else reuses the statistics fitted before (valid/test splits). Statistics are
 * accumulated in float64; the results are stored back as float32.
 *   Standardize      (x - mean) / (std_eps + std), per feature or global (population std)
 *   GCN              per example: optional mean subtraction, then divide by
 *                    sqrt(sqrt_bias + var (ddof 1)) / scale with use_std, else by
 *                    sqrt(sqrt_bias + sum x^2) / scale; divisors below min_divisor become 1
 *   ZCA              mean removed, C = Xc'Xc / n + filter_bias I, eigendecomposition (LAPACK
 *                    dsyevd, ascending), keep the n_components largest or drop the
 *                    n_drop_components smallest, P = V diag(1/sqrt(w)) V'; x -> (x - mean) P
 *   PCA              Pylearn2's CovEigPCA: C = Xc'Xc / (n - 1) (numpy.cov), the k leading
 *                    eigenvectors W (each with its largest-magnitude entry made positive, so
 *                    results do not depend on the LAPACK build), x -> (x - mean) W, divided by
 *                    sqrt(eigenvalue) with whiten; X becomes [n, k] and loses its topology
 *   Pipeline         the items in order
 * Covariances are built block by block with dsyrk and applied with dgemm, so memory beyond
 * the dim x dim matrices stays at a few MiB whatever n is. */
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "data_impl.h"

typedef enum pp_kind { PP_STANDARDIZE, PP_GCN, PP_ZCA, PP_PCA, PP_PIPELINE } pp_kind;

static const char *const g_pp_names[] = {"Standardize", "GlobalContrastNormalization", "ZCA", "PCA",
                                         "Pipeline"};

struct mt_preprocessor {
    pp_kind kind;
    bool fitted;
    int64_t dim;  /* fitted input dim */
    int64_t k;    /* output dim (PCA) */
    double *mean; /* per feature (global: one value) */
    double *std;
    double *P; /* ZCA: dim x dim; PCA: dim x k, row-major */
    /* parameters */
    bool global_mean, global_std, subtract_mean, use_std, whiten, borrowed;
    double std_eps, scale, sqrt_bias, min_divisor, filter_bias;
    int64_t n_components, n_drop;
    int32_t n_items;
    mt_preprocessor **items;
};

#define BLOCK_DOUBLES ((size_t)1 << 19) /* 4 MiB of centered rows per block */

static mt_status pp_new(mt_preprocessor **out, pp_kind kind)
{
    if (!out) return mt_err_set(MT_ERR_INVALID, "preprocessor: out is NULL");
    *out = mt_calloc(1, sizeof **out);
    if (!*out) return MT_ERR_NOMEM;
    (*out)->kind = kind;
    return MT_OK;
}

void mt_preproc_free(mt_preprocessor *p)
{
    if (!p) return;
    mt_free(p->mean);
    mt_free(p->std);
    mt_free(p->P);
    if (!p->borrowed)
        for (int32_t i = 0; i < p->n_items; i++)
            mt_preproc_free(p->items[i]);
    mt_free(p->items);
    mt_free(p);
}

mt_status mt_preproc_standardize(mt_preprocessor **out, bool global_mean, bool global_std,
                                 double std_eps)
{
    if (!(std_eps >= 0))
        return mt_err_set(MT_ERR_INVALID, "Standardize: std_eps must be >= 0, got %g", std_eps);
    mt_status st = pp_new(out, PP_STANDARDIZE);
    if (st != MT_OK) return st;
    (*out)->global_mean = global_mean;
    (*out)->global_std = global_std;
    (*out)->std_eps = std_eps;
    return MT_OK;
}

mt_status mt_preproc_gcn(mt_preprocessor **out, bool subtract_mean, double scale, double sqrt_bias,
                         bool use_std, double min_divisor)
{
    if (!(scale >= min_divisor) || !(sqrt_bias >= 0) || !(min_divisor >= 0))
        return mt_err_set(MT_ERR_INVALID,
                          "GlobalContrastNormalization: need scale >= "
                          "min_divisor >= 0 and sqrt_bias >= 0 (scale %g, min_divisor %g, "
                          "sqrt_bias %g)",
                          scale, min_divisor, sqrt_bias);
    mt_status st = pp_new(out, PP_GCN);
    if (st != MT_OK) return st;
    (*out)->subtract_mean = subtract_mean;
    (*out)->scale = scale;
    (*out)->sqrt_bias = sqrt_bias;
    (*out)->use_std = use_std;
    (*out)->min_divisor = min_divisor;
    (*out)->fitted = true; /* nothing to fit */
    return MT_OK;
}

mt_status mt_preproc_zca(mt_preprocessor **out, int64_t n_components, int64_t n_drop_components,
                         double filter_bias)
{
    if (n_components < 0 || n_drop_components < 0 || (n_components && n_drop_components) ||
        !(filter_bias >= 0))
        return mt_err_set(MT_ERR_INVALID,
                          "ZCA: give n_components or n_drop_components (not both, "
                          "neither negative) and filter_bias >= 0 (got %lld, %lld, %g)",
                          (long long)n_components, (long long)n_drop_components, filter_bias);
    mt_status st = pp_new(out, PP_ZCA);
    if (st != MT_OK) return st;
    (*out)->n_components = n_components;
    (*out)->n_drop = n_drop_components;
    (*out)->filter_bias = filter_bias;
    return MT_OK;
}

mt_status mt_preproc_pca(mt_preprocessor **out, int64_t num_components, bool whiten)
{
    if (num_components < 0)
        return mt_err_set(MT_ERR_INVALID, "PCA: num_components must be >= 0 (0 = all), got %lld",
                          (long long)num_components);
    mt_status st = pp_new(out, PP_PCA);
    if (st != MT_OK) return st;
    (*out)->n_components = num_components;
    (*out)->whiten = whiten;
    return MT_OK;
}

static mt_status pipeline(mt_preprocessor **out, int32_t n, mt_preprocessor **items, bool borrowed)
{
    mt_status st = MT_OK;
    if (!out || n < 0 || (n > 0 && !items)) {
        st = mt_err_set(MT_ERR_INVALID, "Pipeline: NULL argument or negative count");
        goto fail;
    }
    for (int32_t i = 0; i < n; i++)
        if (!items[i]) {
            st = mt_err_set(MT_ERR_INVALID, "Pipeline: item %d is NULL", i);
            goto fail;
        }
    if ((st = pp_new(out, PP_PIPELINE)) != MT_OK) goto fail;
    (*out)->borrowed = borrowed;
    (*out)->items = mt_calloc(n ? (size_t)n : 1, sizeof *items);
    if (!(*out)->items) {
        mt_free(*out);
        *out = NULL;
        st = MT_ERR_NOMEM;
        goto fail;
    }
    if (n) memcpy((*out)->items, items, (size_t)n * sizeof *items);
    (*out)->n_items = n;
    (*out)->fitted = true;
    return MT_OK;
fail:
    if (!borrowed && items)
        for (int32_t i = 0; i < n; i++)
            mt_preproc_free(items[i]);
    return st;
}

mt_status mt_preproc_pipeline(mt_preprocessor **out, int32_t n, mt_preprocessor **items)
{
    return pipeline(out, n, items, false);
}

mt_status mt__preproc_pipeline_borrowed(mt_preprocessor **out, int32_t n, mt_preprocessor **items)
{
    return pipeline(out, n, items, true);
}

/* ---------------------------------------------------------------- Standardize, GCN */

static mt_status standardize_fit(mt_preprocessor *p, const mt_dataset *d)
{
    int64_t n = d->n, dim = d->dim;
    double *mean = mt_calloc((size_t)dim + 1, sizeof(double));
    double *var = mt_calloc((size_t)dim + 1, sizeof(double));
    if (!mean || !var) {
        mt_free(mean);
        mt_free(var);
        return MT_ERR_NOMEM;
    }
    double gsum = 0, gvar = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            mean[j] += d->X[i * dim + j];
    for (int64_t j = 0; j < dim; j++) {
        gsum += mean[j];
        mean[j] /= (double)n;
    }
    double gmean = gsum / ((double)n * (double)dim);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++) {
            double x = d->X[i * dim + j], a = x - mean[j], b = x - gmean;
            var[j] += a * a;
            gvar += b * b;
        }
    for (int64_t j = 0; j < dim; j++)
        var[j] = sqrt(var[j] / (double)n);
    if (p->global_mean)
        for (int64_t j = 0; j < dim; j++)
            mean[j] = gmean;
    if (p->global_std) {
        double gs = sqrt(gvar / ((double)n * (double)dim));
        for (int64_t j = 0; j < dim; j++)
            var[j] = gs;
    }
    mt_free(p->mean);
    mt_free(p->std);
    p->mean = mean;
    p->std = var;
    return MT_OK;
}

static void standardize_apply(const mt_preprocessor *p, mt_dataset *d)
{
    for (int64_t i = 0; i < d->n; i++) {
        float *x = d->X + i * d->dim;
        for (int64_t j = 0; j < d->dim; j++)
            x[j] = (float)(((double)x[j] - p->mean[j]) / (p->std_eps + p->std[j]));
    }
}

static void gcn_apply(const mt_preprocessor *p, mt_dataset *d)
{
    int64_t dim = d->dim;
    for (int64_t i = 0; i < d->n; i++) {
        float *x = d->X + i * dim;
        double mean = 0;
        for (int64_t j = 0; j < dim; j++)
            mean += x[j];
        mean = dim ? mean / (double)dim : 0;
        double sub = p->subtract_mean ? mean : 0, acc = 0;
        if (p->use_std) {
            for (int64_t j = 0; j < dim; j++) {
                double v = (double)x[j] - mean;
                acc += v * v;
            }
            int64_t ddof = dim == 1 ? 0 : 1;
            acc = dim - ddof > 0 ? acc / (double)(dim - ddof) : 0;
        } else {
            for (int64_t j = 0; j < dim; j++) {
                double v = (double)x[j] - sub;
                acc += v * v;
            }
        }
        double norm = sqrt(p->sqrt_bias + acc) / p->scale;
        if (norm < p->min_divisor) norm = 1.0;
        for (int64_t j = 0; j < dim; j++)
            x[j] = (float)(((double)x[j] - sub) / norm);
    }
}

/* ---------------------------------------------------------------- ZCA, PCA */

static int64_t block_rows(int64_t n, int64_t dim)
{
    int64_t b = (int64_t)(BLOCK_DOUBLES / (size_t)(dim > 0 ? dim : 1));
    if (b < 1) b = 1;
    return b < n ? b : n;
}

/* mean (per feature) and C = Xc'Xc / denom, full symmetric, row-major dim x dim. */
static mt_status covariance(const mt_dataset *d, double denom, double **mean_out, double **C_out)
{
    int64_t n = d->n, dim = d->dim, B = block_rows(n, dim);
    size_t cb;
    mt_status st =
        mt__data_bytes(&cb, dim * dim, sizeof(double), mt_data_max_bytes(), "covariance matrix");
    if (st != MT_OK) return st;
    double *mean = mt_calloc((size_t)dim, sizeof(double));
    double *C = mt_malloc(cb);
    double *buf = mt_malloc((size_t)(B * dim) * sizeof(double));
    if (!mean || !C || !buf) {
        st = mt_err_set(MT_ERR_NOMEM, "covariance of %lld features: out of memory", (long long)dim);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            mean[j] += d->X[i * dim + j];
    for (int64_t j = 0; j < dim; j++)
        mean[j] /= (double)n;
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t rows = n - r0 < B ? n - r0 : B;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < dim; j++)
                buf[i * dim + j] = (double)d->X[(r0 + i) * dim + j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)dim, (int)rows, 1.0, buf, (int)dim,
                    r0 ? 1.0 : 0.0, C, (int)dim);
    }
    for (int64_t i = 0; i < dim; i++)
        for (int64_t j = i; j < dim; j++) {
            double v = C[i * dim + j] / denom;
            C[i * dim + j] = v;
            C[j * dim + i] = v;
        }
    mt_free(buf);
    *mean_out = mean;
    *C_out = C;
    return MT_OK;
fail:
    mt_free(mean);
    mt_free(C);
    mt_free(buf);
    return st;
}

/* In place: C's rows become the eigenvectors, w the eigenvalues, ascending. */
static mt_status eigh(double *C, double *w, int64_t dim, const char *who)
{
    lapack_int info =
        LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)dim, C, (lapack_int)dim, w);
    if (info != 0)
        return mt_err_set(info < 0 ? MT_ERR_INTERNAL : MT_ERR_RANGE,
                          "%s: LAPACK dsyevd failed (info %d) on the %lld x %lld covariance", who,
                          (int)info, (long long)dim, (long long)dim);
    return MT_OK;
}

static mt_status zca_fit(mt_preprocessor *p, const mt_dataset *d)
{
    int64_t dim = d->dim;
    double *mean, *C, *w = NULL, *T = NULL, *P = NULL;
    mt_status st = covariance(d, (double)d->n, &mean, &C);
    if (st != MT_OK) return st;
    for (int64_t j = 0; j < dim; j++)
        C[j * dim + j] += p->filter_bias;
    if (!(w = mt_malloc((size_t)dim * sizeof(double)))) goto nomem;
    if ((st = eigh(C, w, dim, "ZCA")) != MT_OK) goto out;
    int64_t lo = 0, k = dim;
    if (p->n_components) lo = dim - (p->n_components < dim ? p->n_components : dim);
    if (p->n_drop) lo = p->n_drop < dim ? p->n_drop : dim;
    k = dim - lo;
    if (k < 1) {
        st = mt_err_set(MT_ERR_INVALID, "ZCA: n_drop_components %lld leaves no component of %lld",
                        (long long)p->n_drop, (long long)dim);
        goto out;
    }
    if (!(w[lo] > 0)) {
        st = mt_err_set(MT_ERR_RANGE,
                        "ZCA: covariance eigenvalue %g is not positive (raise "
                        "filter_bias, now %g)",
                        w[lo], p->filter_bias);
        goto out;
    }
    if (!(T = mt_malloc((size_t)(k * dim) * sizeof(double)))) goto nomem;
    if (!(P = mt_malloc((size_t)(dim * dim) * sizeof(double)))) goto nomem;
    const double *V = C + lo * dim; /* k rows: the kept eigenvectors */
    for (int64_t c = 0; c < k; c++) {
        double s = 1.0 / sqrt(w[lo + c]);
        for (int64_t i = 0; i < dim; i++)
            T[c * dim + i] = V[c * dim + i] * s;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dim, (int)dim, (int)k, 1.0, V,
                (int)dim, T, (int)dim, 0.0, P, (int)dim);
    mt_free(p->mean);
    mt_free(p->P);
    p->mean = mean;
    p->P = P;
    p->k = dim;
    mean = P = NULL;
    goto out;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "ZCA of %lld features: out of memory", (long long)dim);
out:
    mt_free(mean);
    mt_free(C);
    mt_free(w);
    mt_free(T);
    mt_free(P);
    return st;
}

static mt_status pca_fit(mt_preprocessor *p, const mt_dataset *d)
{
    int64_t dim = d->dim, k = p->n_components ? p->n_components : dim;
    if (k > dim)
        return mt_err_set(MT_ERR_INVALID,
                          "PCA: num_components %lld is more than the %lld "
                          "features of '%s'",
                          (long long)k, (long long)dim, d->name);
    if (d->n < 2)
        return mt_err_set(MT_ERR_INVALID,
                          "PCA: '%s' has %lld example(s); the covariance needs "
                          "at least 2",
                          d->name, (long long)d->n);
    double *mean, *C, *w = NULL, *W = NULL;
    mt_status st = covariance(d, (double)(d->n - 1), &mean, &C);
    if (st != MT_OK) return st;
    if (!(w = mt_malloc((size_t)dim * sizeof(double)))) goto nomem;
    if ((st = eigh(C, w, dim, "PCA")) != MT_OK) goto out;
    if (!(W = mt_malloc((size_t)(dim * k) * sizeof(double)))) goto nomem;
    for (int64_t c = 0; c < k; c++) {
        int64_t e = dim - 1 - c; /* descending */
        const double *v = C + e * dim;
        int64_t big = 0;
        for (int64_t i = 1; i < dim; i++)
            if (fabs(v[i]) > fabs(v[big])) big = i;
        double s = v[big] < 0 ? -1.0 : 1.0;
        if (p->whiten) {
            if (!(w[e] > 0)) {
                st = mt_err_set(MT_ERR_RANGE,
                                "PCA whiten: component %lld has variance %g (not "
                                "positive); ask for fewer components",
                                (long long)c, w[e]);
                goto out;
            }
            s /= sqrt(w[e]);
        }
        for (int64_t i = 0; i < dim; i++)
            W[i * k + c] = v[i] * s;
    }
    mt_free(p->mean);
    mt_free(p->P);
    p->mean = mean;
    p->P = W;
    p->k = k;
    mean = W = NULL;
    goto out;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "PCA of %lld features: out of memory", (long long)dim);
out:
    mt_free(mean);
    mt_free(C);
    mt_free(w);
    mt_free(W);
    return st;
}

/* X <- (X - mean) P, P dim x k; a new [n, k] matrix when k != dim. */
static mt_status project(const mt_preprocessor *p, mt_dataset *d)
{
    int64_t n = d->n, dim = d->dim, k = p->k, B = block_rows(n, dim > k ? dim : k);
    float *Y = d->X;
    size_t yb;
    mt_status st = mt__data_bytes(&yb, n * k, sizeof(float), mt_data_max_bytes(), d->name);
    if (st != MT_OK) return st;
    if (k != dim && !(Y = mt_malloc(yb ? yb : 1))) return MT_ERR_NOMEM;
    double *a = mt_malloc((size_t)((B ? B : 1) * dim) * sizeof(double) + 1);
    double *c = mt_malloc((size_t)((B ? B : 1) * k) * sizeof(double) + 1);
    if (!a || !c) {
        st = mt_err_set(MT_ERR_NOMEM, "%s: out of memory projecting '%s'", g_pp_names[p->kind],
                        d->name);
        goto out;
    }
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t rows = n - r0 < B ? n - r0 : B;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < dim; j++)
                a[i * dim + j] = (double)d->X[(r0 + i) * dim + j] - p->mean[j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)k, (int)dim, 1.0, a,
                    (int)dim, p->P, (int)k, 0.0, c, (int)k);
        for (int64_t i = 0; i < rows * k; i++)
            Y[r0 * k + i] = (float)c[i];
    }
    if (Y != d->X) {
        mt__dataset_replace_X(d, Y, k);
        Y = NULL;
    }
out:
    if (Y != d->X) mt_free(Y);
    mt_free(a);
    mt_free(c);
    return st;
}

/* ---------------------------------------------------------------- apply */

mt_status mt_preproc_apply(mt_preprocessor *p, mt_dataset *d, bool can_fit)
{
    if (!p || !d) return mt_err_set(MT_ERR_INVALID, "preproc_apply: NULL argument");
    const char *who = g_pp_names[p->kind];
    /* Preprocessors work on the whole matrix: a lazy dataset is loaded first. */
    mt_status st = mt_dataset_materialize(d);
    if (st != MT_OK) return mt_err_prefix(st, "%s: ", who);
    if (p->kind == PP_PIPELINE) {
        for (int32_t i = 0; i < p->n_items; i++)
            if ((st = mt_preproc_apply(p->items[i], d, can_fit)) != MT_OK)
                return mt_err_prefix(st, "Pipeline item %d: ", i);
        return MT_OK;
    }
    if (p->kind == PP_GCN) {
        gcn_apply(p, d);
        return MT_OK;
    }
    if (can_fit) {
        if (d->n < 1)
            return mt_err_set(MT_ERR_INVALID, "%s: cannot fit on '%s', it has no examples", who,
                              d->name);
        if (p->kind == PP_STANDARDIZE)
            st = standardize_fit(p, d);
        else if (p->kind == PP_ZCA)
            st = zca_fit(p, d);
        else
            st = pca_fit(p, d);
        if (st != MT_OK) return st;
        p->fitted = true;
        p->dim = d->dim;
    }
    if (!p->fitted)
        return mt_err_set(MT_ERR_INVALID,
                          "%s: applied to '%s' without can_fit, but it was never "
                          "fitted (apply it to the training set with fit_preprocessor first)",
                          who, d->name);
    if (p->dim != d->dim)
        return mt_err_set(MT_ERR_SHAPE, "%s: fitted on %lld features, '%s' has %lld", who,
                          (long long)p->dim, d->name, (long long)d->dim);
    if (p->kind == PP_STANDARDIZE) {
        standardize_apply(p, d);
        return MT_OK;
    }
    return project(p, d);
}
