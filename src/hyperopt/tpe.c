/* TPE as hyperopt implements it (hyperopt/tpe.py): the below/above split of the history
 * (n_below = min(ceil(gamma * sqrt(N)), 25), or Optuna's linear rule), the adaptive Parzen
 * estimator (adaptive_parzen_normal with the prior component, neighbour-gap bandwidths, the
 * "magic clip" and linear forgetting), the truncated / quantized / log-normal mixture
 * densities (GMM1_lpdf, LGMM1_lpdf), the categorical posteriors with prior pseudo-counts, and
 * the per-parameter choice of the best of n_EI_candidates draws from l(x) by log l - log g.
 * Parameters are chosen one at a time, parents first, each from the trials where it was active
 * (hyperopt's tree-structured, independent TPE). */
#include <stdlib.h>
#include <string.h>

#include "hyperopt_impl.h"

void mt__hpo_lf_weights(int32_t n, int32_t lf, double *w)
{
    if (n <= 0) return;
    if (lf <= 0 || n < lf) {
        for (int32_t i = 0; i < n; i++)
            w[i] = 1.0;
        return;
    }
    /* np.concatenate([np.linspace(1/N, 1, N - LF), np.ones(LF)]) */
    int32_t nr = n - lf;
    double start = 1.0 / n;
    if (nr == 1) {
        w[0] = start;
    } else if (nr > 1) {
        double step = (1.0 - start) / (nr - 1);
        for (int32_t i = 0; i < nr; i++)
            w[i] = start + i * step;
        w[nr - 1] = 1.0;
    }
    for (int32_t i = nr; i < n; i++)
        w[i] = 1.0;
}

typedef struct idx_val {
    double v;
    int32_t i;
} idx_val;

static int cmp_idx_val(const void *a, const void *b)
{
    const idx_val *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i); /* stable */
}

void mt__hpo_parzen(const double *obs, int32_t n, double prior_weight, double prior_mu,
                    double prior_sigma, int32_t lf, double *w, double *mu, double *sigma)
{
    int32_t k = n + 1, pos;
    int32_t *order = NULL;
    if (n == 0) {
        mu[0] = prior_mu;
        sigma[0] = prior_sigma;
        pos = 0;
    } else if (n == 1) {
        if (prior_mu < obs[0]) {
            pos = 0;
            mu[0] = prior_mu, mu[1] = obs[0];
            sigma[0] = prior_sigma, sigma[1] = prior_sigma * 0.5;
        } else {
            pos = 1;
            mu[0] = obs[0], mu[1] = prior_mu;
            sigma[0] = prior_sigma * 0.5, sigma[1] = prior_sigma;
        }
    } else {
        idx_val *iv = mt_malloc(sizeof *iv * (size_t)n);
        order = mt_malloc(sizeof *order * (size_t)n);
        if (!iv || !order) {
            /* out of memory: fall back to the prior alone (recorded by mt_malloc) */
            mt_free(iv);
            mt_free(order);
            for (int32_t i = 0; i < k; i++)
                mu[i] = prior_mu, sigma[i] = prior_sigma, w[i] = 0;
            w[0] = 1;
            return;
        }
        for (int32_t i = 0; i < n; i++)
            iv[i].v = obs[i], iv[i].i = i;
        qsort(iv, (size_t)n, sizeof *iv, cmp_idx_val);
        for (int32_t i = 0; i < n; i++)
            order[i] = iv[i].i;
        pos = 0; /* np.searchsorted(sorted, prior_mu), side 'left' */
        while (pos < n && iv[pos].v < prior_mu)
            pos++;
        for (int32_t i = 0; i < pos; i++)
            mu[i] = iv[i].v;
        mu[pos] = prior_mu;
        for (int32_t i = pos; i < n; i++)
            mu[i + 1] = iv[i].v;
        mt_free(iv);
        for (int32_t i = 1; i < k - 1; i++) {
            double l = mu[i] - mu[i - 1], r = mu[i + 1] - mu[i];
            sigma[i] = l > r ? l : r;
        }
        sigma[0] = mu[1] - mu[0];
        sigma[k - 1] = mu[k - 1] - mu[k - 2];
    }
    if (lf > 0 && lf < n) {
        double *uw = mt_malloc(sizeof *uw * (size_t)n);
        if (uw) {
            mt__hpo_lf_weights(n, lf, uw);
            for (int32_t i = 0; i < pos; i++)
                w[i] = uw[order[i]];
            w[pos] = prior_weight;
            for (int32_t i = pos; i < n; i++)
                w[i + 1] = uw[order[i]];
            mt_free(uw);
        } else {
            for (int32_t i = 0; i < k; i++)
                w[i] = 1.0;
            w[pos] = prior_weight;
        }
    } else {
        for (int32_t i = 0; i < k; i++)
            w[i] = 1.0;
        w[pos] = prior_weight;
    }
    mt_free(order);
    double maxsigma = prior_sigma / 1.0;
    double minsigma = prior_sigma / fmin(100.0, 1.0 + k);
    for (int32_t i = 0; i < k; i++)
        sigma[i] = fmin(fmax(sigma[i], minsigma), maxsigma);
    sigma[pos] = prior_sigma;
    double sum = 0;
    for (int32_t i = 0; i < k; i++)
        sum += w[i];
    for (int32_t i = 0; i < k; i++)
        w[i] /= sum;
}

static double normal_cdf(double x, double mu, double sigma)
{
    double bottom = fmax(sqrt(2.0) * sigma, MT__HPO_EPS);
    return 0.5 * (1.0 + erf((x - mu) / bottom));
}

static double lognormal_cdf(double x, double mu, double sigma)
{
    double top = log(fmax(x, MT__HPO_EPS)) - mu;
    double bottom = fmax(sqrt(2.0) * sigma, MT__HPO_EPS);
    return 0.5 + 0.5 * erf(top / bottom);
}

double mt__hpo_mixture_lpdf(double x, const double *w, const double *mu, const double *sigma,
                            int32_t k, bool lognormal, bool has_bounds, double low, double high,
                            double q)
{
    double p_accept = 1.0;
    if (has_bounds) {
        p_accept = 0;
        for (int32_t i = 0; i < k; i++)
            p_accept +=
                w[i] * (normal_cdf(high, mu[i], sigma[i]) - normal_cdf(low, mu[i], sigma[i]));
    }
    if (q > 0) {
        double prob = 0;
        for (int32_t i = 0; i < k; i++) {
            double ub = x + q / 2.0, lb = x - q / 2.0, inc;
            if (lognormal) {
                if (has_bounds) ub = fmin(ub, exp(high)), lb = fmax(lb, exp(low));
                lb = fmax(0.0, lb);
                inc = w[i] * lognormal_cdf(ub, mu[i], sigma[i]);
                inc -= w[i] * lognormal_cdf(lb, mu[i], sigma[i]);
            } else {
                if (has_bounds) ub = fmin(ub, high), lb = fmax(lb, low);
                inc = w[i] * normal_cdf(ub, mu[i], sigma[i]);
                inc -= w[i] * normal_cdf(lb, mu[i], sigma[i]);
            }
            prob += inc;
        }
        return log(prob) - log(p_accept);
    }
    /* log-sum-exp over components */
    double m = -INFINITY, terms_max;
    double *t = NULL, stack[64];
    t = k <= 64 ? stack : mt_malloc(sizeof *t * (size_t)k);
    if (!t) return NAN;
    for (int32_t i = 0; i < k; i++) {
        if (lognormal) {
            /* lognormal_lpdf(x, mu, sigma) + log(w); LGMM1_lpdf has no p_accept here */
            double s = fmax(sigma[i], MT__HPO_EPS);
            double z = s * x * sqrt(2.0 * M_PI);
            double e = 0.5 * ((log(x) - mu[i]) / s) * ((log(x) - mu[i]) / s);
            t[i] = -e - log(z) + log(w[i]);
        } else {
            double d = (x - mu[i]) / fmax(sigma[i], MT__HPO_EPS);
            double zz = sqrt(2.0 * M_PI * sigma[i] * sigma[i]);
            t[i] = -0.5 * d * d + log(w[i] / zz / p_accept);
        }
        if (t[i] > m) m = t[i];
    }
    terms_max = m;
    double sum = 0;
    for (int32_t i = 0; i < k; i++)
        sum += exp(t[i] - terms_max);
    if (t != stack) mt_free(t);
    return log(sum) + terms_max;
}

int32_t mt__hpo_n_below(const mt_hpo_tpe_options *o, int32_t n)
{
    double x = o->split == MT_HPO_SPLIT_LINEAR ? o->gamma * n : o->gamma * sqrt((double)n);
    double c = ceil(x);
    int32_t nb = c > MT__HPO_GAMMA_CAP ? MT__HPO_GAMMA_CAP : (int32_t)c;
    return nb < 0 ? 0 : nb;
}

/* ---------------------------------------------------------------- the split */

typedef struct rank_key {
    int32_t cls; /* 0 ok, 1 pruned, 2 failed (and running: WORST), 3 running (CONSTANT_LIAR) */
    double k1, k2;
    int64_t id;
    int32_t at; /* index in the history */
} rank_key;

static int cmp_key(double a, double b)
{
    if (a < b) return -1;
    if (a > b) return 1;
    return 0;
}

static int cmp_rank(const void *pa, const void *pb)
{
    const rank_key *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    int c = cmp_key(a->k1, b->k1);
    if (c) return c;
    if ((c = cmp_key(a->k2, b->k2))) return c;
    return (a->id > b->id) - (a->id < b->id);
}

mt_status mt__hpo_tpe_split(const mt_hpo_history *h, const mt_hpo_tpe_options *o, int8_t *flag,
                            int32_t *n_considered)
{
    int32_t n = mt_hpo_history_count(h), m = 0, eligible = 0;
    rank_key *keys = mt_malloc(sizeof *keys * (size_t)(n ? n : 1));
    if (!keys) return mt_err_set(MT_ERR_NOMEM, "tpe: split");
    for (int32_t i = 0; i < n; i++) {
        const mt_hpo_trial *t = mt_hpo_history_at(h, i);
        flag[i] = -1;
        if (t->status == MT_HPO_RUNNING && o->pending == MT_HPO_PENDING_IGNORE) continue;
        rank_key *k = &keys[m++];
        k->id = t->id;
        k->at = i;
        k->k1 = k->k2 = INFINITY;
        switch (t->status) {
        case MT_HPO_OK:
            k->cls = 0;
            k->k1 = t->loss;
            break;
        case MT_HPO_PRUNED:
            k->cls = 1;
            if (t->n_reports > 0) {
                double v = t->values[t->n_reports - 1];
                k->k1 = -(double)t->steps[t->n_reports - 1];
                k->k2 = v == v ? v : INFINITY;
            }
            break;
        case MT_HPO_RUNNING:
            k->cls = o->pending == MT_HPO_PENDING_CONSTANT_LIAR ? 3 : 2;
            break;
        default:
            k->cls = 2;
            break;
        }
        if (k->cls < 3) eligible++;
    }
    qsort(keys, (size_t)m, sizeof *keys, cmp_rank);
    int32_t nb = mt__hpo_n_below(o, m);
    if (nb > eligible) nb = eligible;
    for (int32_t j = 0; j < m; j++)
        flag[keys[j].at] = j < nb ? 1 : 0;
    mt_free(keys);
    *n_considered = m;
    return MT_OK;
}

/* ---------------------------------------------------------------- one parameter */

static mt_status categorical_choice(const mt_hpo_param *prm, const mt_hpo_tpe_options *o,
                                    const double *below, int32_t nb, const double *above,
                                    int32_t na, mt__hpo_rng *r, int32_t n_cand, double *cands,
                                    double *scores, double *best)
{
    int32_t K = prm->n_options;
    double *pb = mt_calloc((size_t)K * 2, sizeof *pb);
    double *wts = mt_malloc(sizeof *wts * (size_t)((nb > na ? nb : na) + 1));
    if (!pb || !wts) {
        mt_free(pb);
        mt_free(wts);
        return mt_err_set(MT_ERR_NOMEM, "tpe: categorical posterior");
    }
    double *pa = pb + K;
    const double *obs[2] = {below, above};
    int32_t nobs[2] = {nb, na};
    double *post[2] = {pb, pa};
    double offset = prm->dist == MT_HPO_RANDINT ? prm->a : 0;
    for (int32_t g = 0; g < 2; g++) {
        double *c = post[g], sum = 0;
        mt__hpo_lf_weights(nobs[g], o->linear_forgetting, wts);
        for (int32_t j = 0; j < nobs[g]; j++) {
            int64_t idx = (int64_t)(obs[g][j] - offset);
            if (idx >= 0 && idx < K) c[idx] += wts[j];
        }
        for (int32_t k = 0; k < K; k++) {
            if (prm->dist == MT_HPO_RANDINT)
                c[k] += o->prior_weight; /* ap_randint_sampler */
            else                         /* tpe_cat_pseudocounts: counts + K * prior_weight * p */
                c[k] += K * (o->prior_weight * (prm->probs ? prm->probs[k] : 1.0 / K));
            sum += c[k];
        }
        for (int32_t k = 0; k < K; k++)
            c[k] /= sum;
    }
    double best_score = -INFINITY;
    int32_t best_k = -1;
    for (int32_t j = 0; j < n_cand; j++) {
        int32_t k = mt__hpo_rng_categorical(r, pb, K);
        double sc = log(pb[k]) - log(pa[k]);
        if (cands) cands[j] = k + offset;
        if (scores) scores[j] = sc;
        if (best_k < 0 || sc > best_score) best_score = sc, best_k = k;
    }
    *best = best_k + offset;
    mt_free(pb);
    mt_free(wts);
    return MT_OK;
}

mt_status mt__hpo_tpe_param(const mt_hpo_param *prm, const mt_hpo_tpe_options *o,
                            const double *below, int32_t nb, const double *above, int32_t na,
                            mt__hpo_rng *r, int32_t n_cand, double *cands, double *scores,
                            double *best)
{
    if (n_cand < 1) return mt_err_set(MT_ERR_INVALID, "tpe: n_ei_candidates must be >= 1");
    if (mt_hpo_dist_is_categorical(prm->dist))
        return categorical_choice(prm, o, below, nb, above, na, r, n_cand, cands, scores, best);
    bool lognormal = false, bounds = false;
    double lo = 0, hi = 0, q = prm->q, pmu, psig, floor_obs = -INFINITY;
    switch (prm->dist) {
    case MT_HPO_UNIFORM:
    case MT_HPO_QUNIFORM:
    case MT_HPO_INTUNIFORM:
        bounds = true, lo = prm->a, hi = prm->b;
        break;
    case MT_HPO_LOGUNIFORM:
    case MT_HPO_QLOGUNIFORM:
        bounds = lognormal = true, lo = log(prm->a), hi = log(prm->b);
        if (prm->dist == MT_HPO_QLOGUNIFORM) floor_obs = fmax(MT__HPO_EPS, prm->a);
        break;
    case MT_HPO_LOGNORMAL:
        lognormal = true;
        break;
    case MT_HPO_QLOGNORMAL:
        lognormal = true, floor_obs = MT__HPO_EPS;
        break;
    default: /* NORMAL, QNORMAL */
        break;
    }
    if (bounds)
        pmu = 0.5 * (hi + lo), psig = 1.0 * (hi - lo);
    else
        pmu = prm->a, psig = prm->b;
    int32_t nmax = (nb > na ? nb : na) + 1;
    double *buf = mt_malloc(sizeof *buf * (size_t)(7 * nmax));
    if (!buf) return mt_err_set(MT_ERR_NOMEM, "tpe: Parzen estimator");
    double *x = buf, *wb = buf + nmax, *mb = wb + nmax, *sb = mb + nmax;
    double *wa = sb + nmax, *ma = wa + nmax, *sa = ma + nmax;
    const double *obs[2] = {below, above};
    int32_t nobs[2] = {nb, na};
    double *W[2] = {wb, wa}, *M[2] = {mb, ma}, *S[2] = {sb, sa};
    for (int32_t g = 0; g < 2; g++) {
        for (int32_t j = 0; j < nobs[g]; j++) {
            double v = obs[g][j];
            if (floor_obs > -INFINITY) v = fmax(v, floor_obs);
            x[j] = lognormal ? log(v) : v;
        }
        mt__hpo_parzen(x, nobs[g], o->prior_weight, pmu, psig, o->linear_forgetting, W[g], M[g],
                       S[g]);
    }
    double best_score = -INFINITY, best_v = NAN;
    for (int32_t j = 0; j < n_cand; j++) {
        double d = 0;
        for (int32_t tries = 0;; tries++) {
            int32_t k = mt__hpo_rng_categorical(r, wb, nb + 1);
            d = mb[k] + sb[k] * mt__hpo_rng_normal(r);
            if (!bounds || (lo <= d && d < hi)) break;
            if (tries > 100000) { /* never in practice: the prior covers [lo, hi) */
                d = fmin(fmax(d, lo), nextafter(hi, lo));
                break;
            }
        }
        double v = lognormal ? exp(d) : d;
        if (q > 0) v = mt__hpo_quantize(v, q);
        double sc = mt__hpo_mixture_lpdf(v, wb, mb, sb, nb + 1, lognormal, bounds, lo, hi, q) -
                    mt__hpo_mixture_lpdf(v, wa, ma, sa, na + 1, lognormal, bounds, lo, hi, q);
        if (cands) cands[j] = v;
        if (scores) scores[j] = sc;
        if (j == 0 || sc > best_score) best_score = sc, best_v = v;
    }
    mt_free(buf);
    *best = best_v;
    return MT_OK;
}
