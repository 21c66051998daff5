/* hyperopt module internals: the space's storage, the Philox stream every draw comes from,
 * and the pieces of TPE exposed for the unit tests (adaptive Parzen estimator, mixture
 * densities, the split, one parameter's EI choice). */
#ifndef MT_HYPEROPT_IMPL_H
#define MT_HYPEROPT_IMPL_H

#include <math.h>

#include "mltrain/hyperopt.h"

#define MT__HPO_EPS 1e-12    /* hyperopt's EPS */
#define MT__HPO_GAMMA_CAP 25 /* hyperopt's gamma_cap (DEFAULT_LF), Optuna's cap too */

struct mt_hpo_space {
    mt_arena arena;
    int32_t n, cap;
    mt_hpo_param *params;
    int32_t *depth; /* nesting under categorical parents (for printing) */
    const mt_cfg_node *params_map;
};

/* ---- random stream: Philox4x32-10 keyed by (seed, trial id, purpose), counter = draw index */
typedef struct mt__hpo_rng {
    uint32_t key[2];
    uint64_t counter;
    uint32_t buf[4];
    int32_t used; /* words of buf consumed (4: refill) */
} mt__hpo_rng;

void mt__hpo_rng_init(mt__hpo_rng *r, uint64_t seed, int64_t trial_id, uint32_t purpose);
double mt__hpo_rng_uniform(mt__hpo_rng *r); /* [0, 1) with 53 bits */
double mt__hpo_rng_normal(mt__hpo_rng *r);  /* standard normal (Box-Muller) */
/* Index k with probability p[k] / sum(p) (inverse CDF of one uniform). */
int32_t mt__hpo_rng_categorical(mt__hpo_rng *r, const double *p, int32_t n);

enum { MT__HPO_RNG_PRIOR = 1, MT__HPO_RNG_TPE = 2 };

/* ---- space helpers */
/* True when parameter i is active given the values of its ancestors in p. */
bool mt__hpo_param_active(const mt_hpo_space *s, const mt_hpo_point *p, int32_t i);
/* Draws parameter i from its prior. */
double mt__hpo_sample_param(const mt_hpo_param *prm, mt__hpo_rng *r);
/* The numeric value of option k of a categorical parameter when it is a number (INT/FLOAT
 * node), else k. RANDINT: low + k. */
double mt__hpo_option_number(const mt_hpo_param *prm, int32_t k);
/* hyperopt's rounding: np.round(x / q) * q (half to even). */
double mt__hpo_quantize(double x, double q);
/* Short text of a categorical option: component name, scalar text, {...} or [...]. */
void mt__hpo_option_text(const mt_cfg_node *o, char *buf, size_t len);
/* Shortest "%.Ng" text that reads back as v. */
const char *mt__hpo_fmt(double v, char buf[40]);
/* The number of values a parameter takes in a grid (0: continuous). */
int64_t mt__hpo_grid_count(const mt_hpo_param *prm);

/* ---- expressions with extra scalars (expr.c): mt_hpo_expr_new / mt_hpo_expr_eval, where the
 * text may also name n_extra float64 scalars extra[k] (names borrowed: they must outlive the
 * expression; a parameter of the same name wins), valued per call from extra[k] (NULL when
 * n_extra is 0). */
mt_status mt__hpo_expr_new_ex(mt_hpo_expr **out, const mt_hpo_space *s, const char *text,
                              int32_t n_extra, const char *const *extra);
mt_status mt__hpo_expr_eval_ex(mt_hpo_expr *e, const mt_hpo_point *p, const double *extra,
                               double *out);
/* True when the text names extra scalar k (and no parameter of that name exists). */
bool mt__hpo_expr_uses_extra(const mt_hpo_expr *e, int32_t k);
/* A sweep's expression objective: the parameters and `epoch` (extra scalar 0), as the Sweep
 * file's check and the trials compile it. */
mt_status mt__hpo_objective_new(mt_hpo_expr **out, const mt_hpo_space *s, const char *text);

/* ---- TPE pieces (tpe.c) */

/* linear_forgetting_weights(N, LF) into w[N]. */
void mt__hpo_lf_weights(int32_t n, int32_t lf, double *w);
/* adaptive_parzen_normal(mus, prior_weight, prior_mu, prior_sigma, LF): n observations in
 * trial order; outputs n + 1 components (sorted means, prior inserted) into w, mu, sigma. */
void mt__hpo_parzen(const double *obs, int32_t n, double prior_weight, double prior_mu,
                    double prior_sigma, int32_t lf, double *w, double *mu, double *sigma);
/* GMM1_lpdf (lognormal = false) / LGMM1_lpdf (lognormal = true) of one sample x, with
 * optional bounds (has_bounds: low/high in the working space) and quantum q (0: none). */
double mt__hpo_mixture_lpdf(double x, const double *w, const double *mu, const double *sigma,
                            int32_t k, bool lognormal, bool has_bounds, double low, double high,
                            double q);
/* Number of "below" trials for N considered trials. */
int32_t mt__hpo_n_below(const mt_hpo_tpe_options *o, int32_t n);
/* One parameter's posterior choice: draws n_cand candidates from l(x) (built from `below`),
 * scores log l - log g (g from `above`), returns the first argmax in *best. cands/scores
 * (n_cand each) may be NULL. Observations are values as stored in points (natural units). */
mt_status mt__hpo_tpe_param(const mt_hpo_param *prm, const mt_hpo_tpe_options *o,
                            const double *below, int32_t nb, const double *above, int32_t na,
                            mt__hpo_rng *r, int32_t n_cand, double *cands, double *scores,
                            double *best);
/* The below/above split of the history as TPE sees it: for each of the history's trials
 * (mt_hpo_history_at order) flag[i] = 1 below, 0 above, -1 not considered. *n_considered
 * receives N. */
mt_status mt__hpo_tpe_split(const mt_hpo_history *h, const mt_hpo_tpe_options *o, int8_t *flag,
                            int32_t *n_considered);

#endif
