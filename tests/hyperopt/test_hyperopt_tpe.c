/* TPE against hyperopt: adaptive Parzen estimators (weights, means, bandwidths), linear
 * forgetting, mixture densities (truncated, quantized, log-normal) with reference values
 * computed by hyperopt 0.3.0 itself (tpe.adaptive_parzen_normal, tpe.GMM1_lpdf,
 * tpe.LGMM1_lpdf on the inputs below, printed with repr), the below/above split with failed,
 * running and pruned trials, the EI choice among candidates, categorical posteriors, the startup
 * phase and the search itself on small problems. */
#include <math.h>
#include <string.h>

#include "hyperopt_impl.h"
#include "hpo_test.h"
#include "mt_test.h"

static void parzen(const double *obs, int32_t n, double pmu, double psig, double *w, double *mu,
                   double *sigma)
{
    mt__hpo_parzen(obs, n, 1.0, pmu, psig, 25, w, mu, sigma);
}

MT_TEST(parzen_small_by_hand)
{
    double w[8], mu[8], s[8];
    /* no observation: the prior alone */
    parzen(NULL, 0, 0.5, 2.0, w, mu, s);
    MT_CHECK(w[0] == 1.0 && mu[0] == 0.5 && s[0] == 2.0);
    /* one observation above the prior: [prior, obs], sigma_obs = prior_sigma / 2 */
    double o1 = 1.5;
    parzen(&o1, 1, 0.5, 2.0, w, mu, s);
    MT_CHECK(w[0] == 0.5 && w[1] == 0.5 && mu[0] == 0.5 && mu[1] == 1.5);
    MT_CHECK(s[0] == 2.0 && s[1] == 1.0);
    /* one below: [obs, prior] */
    double o2 = -1.0;
    parzen(&o2, 1, 0.5, 2.0, w, mu, s);
    MT_CHECK(mu[0] == -1.0 && mu[1] == 0.5 && s[0] == 1.0 && s[1] == 2.0);
    /* four: sorted [-2, 0.1, 0.2, (0.5), 3]; first gap 2.1, interior max of gaps, 0.2 has
     * max(0.1, 0.3) = 0.3 clipped up to 10 / min(100, 1 + 5), prior keeps 10, last gap 2.5 */
    double o4[] = {3.0, -2.0, 0.1, 0.2};
    parzen(o4, 4, 0.5, 10.0, w, mu, s);
    const double mu_ref[] = {-2.0, 0.1, 0.2, 0.5, 3.0};
    const double s_ref[] = {2.1, 2.1, 10.0 / 6.0, 10.0, 2.5};
    for (int i = 0; i < 5; i++) {
        MT_CHECK(mu[i] == mu_ref[i]);
        MT_CHECK_CLOSE(s[i], s_ref[i], 0, 1e-15);
        MT_CHECK_CLOSE(w[i], 0.2, 0, 1e-15);
    }
}

MT_TEST(parzen_linear_forgetting_matches_hyperopt)
{
    double lf[30], lf26[26];
    mt__hpo_lf_weights(30, 25, lf);
    mt__hpo_lf_weights(26, 25, lf26);
    const double lf_ref[] = {0.03333333333333333, 0.275, 0.5166666666666667, 0.7583333333333333,
                             1.0};
    for (int i = 0; i < 5; i++)
        MT_CHECK_CLOSE(lf[i], lf_ref[i], 0, 1e-15);
    for (int i = 5; i < 30; i++)
        MT_CHECK(lf[i] == 1.0);
    MT_CHECK_CLOSE(lf26[0], 0.038461538461538464, 0, 1e-15);
    MT_CHECK(lf26[1] == 1.0);
    /* 30 observations in trial order: the oldest 5 are down-weighted wherever they sort */
    double obs[30], w[31], mu[31], s[31];
    for (int i = 0; i < 30; i++)
        obs[i] = ((i * 7919) % 31) / 31.0 * 10 - 5;
    parzen(obs, 30, 0.0, 10.0, w, mu, s);
    /* hyperopt 0.3.0: adaptive_parzen_normal(obs, 1.0, 0.0, 10.0) */
    const double w_ref[] = {0.0011661807580174927, 0.03498542274052478, 0.026530612244897958,
                            0.009620991253644316, 0.01807580174927114};
    const int w_at[] = {0, 1, 11, 14, 28};
    for (int k = 0; k < 5; k++)
        MT_CHECK_CLOSE(w[w_at[k]], w_ref[k], 0, 1e-14);
    MT_CHECK(mu[16] == 0.0 && s[16] == 10.0);
    MT_CHECK_CLOSE(mu[14], -0.48387096774193594, 0, 1e-15);
    MT_CHECK_CLOSE(s[0], 0.32258064516129004, 0, 1e-13);
    MT_CHECK_CLOSE(s[17], 0.645161290322581, 0, 1e-13);
    double sum = 0;
    for (int i = 0; i < 31; i++)
        sum += w[i];
    MT_CHECK_CLOSE(sum, 1.0, 0, 1e-14);
}

MT_TEST(mixture_densities_match_hyperopt)
{
    double o4[] = {3.0, -2.0, 0.1, 0.2}, w[5], mu[5], s[5];
    parzen(o4, 4, 0.5, 10.0, w, mu, s);
    /* GMM1_lpdf(x, w, m, s, low=-4.5, high=5.5) and variants */
    const double x[] = {0.15, 2.9, -4.5};
    const double gmm[] = {-1.8151147616037933, -2.4475257024427317, -3.2891746321335087};
    const double gmmn[] = {-2.0176309775805383, -2.650041918419477, -3.4916908481102538};
    for (int i = 0; i < 3; i++) {
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(x[i], w, mu, s, 5, false, true, -4.5, 5.5, 0), gmm[i],
                       0, 1e-13);
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(x[i], w, mu, s, 5, false, false, 0, 0, 0), gmmn[i], 0,
                       1e-13);
    }
    const double xq[] = {0.0, 3.0, -4.0};
    const double gmmq[] = {-1.8217001981342114, -2.478123199883649, -3.017614873602087};
    for (int i = 0; i < 3; i++)
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(xq[i], w, mu, s, 5, false, true, -4.5, 5.5, 1.0),
                       gmmq[i], 0, 1e-12);
    /* LGMM1_lpdf: no p_accept without q (as hyperopt), quantized with and without bounds */
    const double xl[] = {0.5, 1.3, 20.0};
    const double lgmm[] = {-1.3720361059581268, -2.283635962871018, -5.679573752965547};
    for (int i = 0; i < 3; i++)
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(xl[i], w, mu, s, 5, true, true, -4.5, 5.5, 0), lgmm[i],
                       0, 1e-13);
    const double xlq[] = {1.0, 2.0, 20.0};
    const double lgmmq[] = {-1.7319810601564003, -2.5240364973977307, -5.476726629395963};
    const double lgmmqn[] = {-1.9344972761331456, -2.726552713374476, -5.679242845372708};
    for (int i = 0; i < 3; i++) {
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(xlq[i], w, mu, s, 5, true, true, -4.5, 5.5, 1.0),
                       lgmmq[i], 0, 1e-12);
        MT_CHECK_CLOSE(mt__hpo_mixture_lpdf(xlq[i], w, mu, s, 5, true, false, 0, 0, 1.0), lgmmqn[i],
                       0, 1e-12);
    }
}

MT_TEST(n_below_rules)
{
    mt_hpo_tpe_options o;
    mt_hpo_tpe_options_init(&o);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 20), 2); /* ceil(0.25 * 4.47) */
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 16), 1); /* exactly 1.0 */
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 100), 3);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 400), 5);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 10000), 25);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 1000000), 25); /* capped */
    mt_hpo_tpe_options_init_optuna(&o);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 10), 1);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 30), 3);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 31), 4);
    MT_CHECK_EQ_INT(mt__hpo_n_below(&o, 1000), 25);
}

/* A one-parameter space from YAML text. */
static mt_cfg_doc *load(const char *text) { return hpo_load(text, "t.yaml"); }

static mt_hpo_space *space_of(mt_cfg_doc *d)
{
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_doc_root(d), NULL, NULL));
    return s;
}

static void add(mt_hpo_history *h, const mt_hpo_space *s, int64_t id, double x, mt_hpo_status st,
                double loss)
{
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    p.values[0] = x;
    p.active[0] = true;
    MT_CHECK_OK(mt_hpo_history_add(h, id, &p));
    if (st != MT_HPO_RUNNING) MT_CHECK_OK(mt_hpo_history_finish(h, id, st, loss));
    mt_hpo_point_clear(&p);
}

MT_TEST(split_failed_running_pruned)
{
    mt_cfg_doc *d = load("{x: !uniform [0, 10]}");
    mt_hpo_space *s = space_of(d);
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    /* ids 0..8: losses, one failed, one running, one pruned (reported at step 3) */
    add(h, s, 0, 1, MT_HPO_OK, 5.0);
    add(h, s, 1, 2, MT_HPO_FAILED, 0);
    add(h, s, 2, 3, MT_HPO_RUNNING, 0);
    add(h, s, 3, 4, MT_HPO_OK, 1.0);
    add(h, s, 4, 5, MT_HPO_OK, 3.0);
    add(h, s, 5, 6, MT_HPO_RUNNING, 0);
    MT_CHECK_OK(mt_hpo_history_report(h, 5, 3, 0.5));
    MT_CHECK_OK(mt_hpo_history_finish(h, 5, MT_HPO_PRUNED, 0));
    add(h, s, 6, 7, MT_HPO_OK, NAN); /* NaN loss: recorded as failed */
    MT_CHECK(mt_hpo_history_find(h, 6)->status == MT_HPO_FAILED);
    mt_hpo_tpe_options o;
    mt_hpo_tpe_options_init(&o);
    int8_t flag[16];
    int32_t n = 0;
    /* N = 7 -> n_below = ceil(0.25 * sqrt 7) = 1: the best OK trial (id 3) */
    MT_CHECK_OK(mt__hpo_tpe_split(h, &o, flag, &n));
    MT_CHECK_EQ_INT(n, 7);
    const int8_t ref1[] = {0, 0, 0, 1, 0, 0, 0};
    for (int i = 0; i < 7; i++)
        MT_CHECK_EQ_INT(flag[i], ref1[i]);
    /* a larger gamma: OK trials by loss (3, 4, 0), then the pruned one, then failed/running */
    o.gamma = 1.0; /* n_below = ceil(sqrt 7) = 3 */
    MT_CHECK_OK(mt__hpo_tpe_split(h, &o, flag, &n));
    const int8_t ref3[] = {1, 0, 0, 1, 1, 0, 0};
    for (int i = 0; i < 7; i++)
        MT_CHECK_EQ_INT(flag[i], ref3[i]);
    o.gamma = 0.6; /* ceil(0.6 * 2.6458) = 2... use a linear split for 5 */
    o.split = MT_HPO_SPLIT_LINEAR;
    o.gamma = 5.0 / 7.0;
    MT_CHECK_OK(mt__hpo_tpe_split(h, &o, flag, &n));
    /* 5 below: 3 OK, the pruned trial 5, then the first infinite one by id: failed trial 1 */
    const int8_t ref5[] = {1, 1, 0, 1, 1, 1, 0};
    for (int i = 0; i < 7; i++)
        MT_CHECK_EQ_INT(flag[i], ref5[i]);
    /* constant liar: the running trial 2 never goes below, even when below is not full */
    o.gamma = 1.0;
    o.pending = MT_HPO_PENDING_CONSTANT_LIAR;
    MT_CHECK_OK(mt__hpo_tpe_split(h, &o, flag, &n));
    MT_CHECK_EQ_INT(n, 7);
    MT_CHECK_EQ_INT(flag[2], 0);
    MT_CHECK_EQ_INT(flag[1] + flag[6], 2); /* failed ones fill the below group */
    /* ignore: the running trial is not considered at all */
    o.pending = MT_HPO_PENDING_IGNORE;
    MT_CHECK_OK(mt__hpo_tpe_split(h, &o, flag, &n));
    MT_CHECK_EQ_INT(n, 6);
    MT_CHECK_EQ_INT(flag[2], -1);
    mt_hpo_history_free(h);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(startup_counts_running_trials_as_hyperopt)
{
    mt_cfg_doc *d = load("{x: !uniform [0, 10]}");
    mt_hpo_space *s = space_of(d);
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    for (int i = 0; i < 19; i++)
        add(h, s, i, 0.5 * i, MT_HPO_OK, (0.5 * i - 7) * (0.5 * i - 7));
    add(h, s, 19, 5.0, MT_HPO_RUNNING, 0);
    mt_hpo_sampler_options so;
    mt_hpo_sampler_options_init(&so);
    so.seed = 11;
    mt_hpo_point prior, p;
    MT_CHECK_OK(mt_hpo_point_init(&prior, s));
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    MT_CHECK_OK(mt_hpo_sample_prior(s, 11, 20, &prior));
    mt_hpo_sampler *sm = NULL;
    /* 20 trials of any status: past the startup, a TPE draw (not the prior's) */
    MT_CHECK_OK(mt_hpo_sampler_new(&sm, s, &so));
    MT_CHECK_OK(mt_hpo_sampler_suggest(sm, h, 20, &p));
    MT_CHECK(!mt_hpo_point_equal(&p, &prior));
    mt_hpo_sampler_free(sm);
    /* ignoring running trials: 19 < 20, still the prior draw */
    so.tpe.pending = MT_HPO_PENDING_IGNORE;
    MT_CHECK_OK(mt_hpo_sampler_new(&sm, s, &so));
    MT_CHECK_OK(mt_hpo_sampler_suggest(sm, h, 20, &p));
    MT_CHECK(mt_hpo_point_equal(&p, &prior));
    mt_hpo_sampler_free(sm);
    mt_hpo_point_clear(&prior);
    mt_hpo_point_clear(&p);
    mt_hpo_history_free(h);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

/* Truncated-mixture log density written out independently (plain loops). */
static double ref_lpdf(double x, const double *w, const double *mu, const double *s, int k,
                       double lo, double hi)
{
    double dens = 0, acc = 0;
    for (int i = 0; i < k; i++) {
        dens +=
            w[i] * exp(-0.5 * (x - mu[i]) * (x - mu[i]) / (s[i] * s[i])) / (s[i] * sqrt(2 * M_PI));
        acc += w[i] * 0.5 *
               (erf((hi - mu[i]) / (s[i] * sqrt(2.0))) - erf((lo - mu[i]) / (s[i] * sqrt(2.0))));
    }
    return log(dens / acc);
}

MT_TEST(ei_candidate_selection)
{
    mt_cfg_doc *d = load("{x: !uniform [-5, 5]}");
    mt_hpo_space *s = space_of(d);
    const mt_hpo_param *prm = mt_hpo_space_param(s, 0);
    mt_hpo_tpe_options o;
    mt_hpo_tpe_options_init(&o);
    const double below[] = {1.0, 1.2}, above[] = {-4, -3, -2, 0, 2.5, 3, 4.5};
    double wb[3], mb[3], sb[3], wa[8], ma[8], sa[8];
    mt__hpo_parzen(below, 2, 1.0, 0.0, 10.0, 25, wb, mb, sb);
    mt__hpo_parzen(above, 7, 1.0, 0.0, 10.0, 25, wa, ma, sa);
    mt__hpo_rng r;
    mt__hpo_rng_init(&r, 5, 0, 99);
    double cands[24], scores[24], best = NAN;
    MT_CHECK_OK(mt__hpo_tpe_param(prm, &o, below, 2, above, 7, &r, 24, cands, scores, &best));
    int arg = 0;
    for (int j = 0; j < 24; j++) {
        MT_CHECK(cands[j] >= -5 && cands[j] < 5);
        double ref =
            ref_lpdf(cands[j], wb, mb, sb, 3, -5, 5) - ref_lpdf(cands[j], wa, ma, sa, 8, -5, 5);
        MT_CHECK_CLOSE(scores[j], ref, 1e-12, 1e-10);
        if (scores[j] > scores[arg]) arg = j;
    }
    MT_CHECK(best == cands[arg]);
    /* the winner sits where the good trials are */
    MT_CHECK(fabs(best - 1.1) < 1.5);
    /* categorical posterior: counts + K * prior_weight * p, score log pb - log pa */
    mt_cfg_doc *d2 = load("{c: !choice [a, b, c]}");
    mt_hpo_space *s2 = space_of(d2);
    const double cb[] = {0, 0}, ca[] = {1, 2, 2, 1, 2};
    MT_CHECK_OK(mt__hpo_tpe_param(mt_hpo_space_param(s2, 0), &o, cb, 2, ca, 5, &r, 24, cands,
                                  scores, &best));
    /* pb = (2+1, 1, 1) / 5, pa = (1, 2+1, 3+1) / 8 */
    const double pb[] = {0.6, 0.2, 0.2}, pa[] = {0.125, 0.375, 0.5};
    for (int j = 0; j < 24; j++) {
        int k = (int)cands[j];
        MT_CHECK_CLOSE(scores[j], log(pb[k]) - log(pa[k]), 0, 1e-14);
    }
    MT_CHECK(best == 0);
    mt_hpo_space_free(s2);
    mt_cfg_doc_free(d2);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(randint_and_pchoice_posteriors)
{
    mt_cfg_doc *d = load("{r: !randint [10, 13], p: !pchoice [[0.1, x], [0.9, y]]}");
    mt_hpo_space *s = space_of(d);
    mt_hpo_tpe_options o;
    mt_hpo_tpe_options_init(&o);
    mt__hpo_rng r;
    mt__hpo_rng_init(&r, 1, 2, 3);
    double cands[24], scores[24], best;
    /* randint: counts + prior_weight: below {12} -> (1, 1, 2) / 4; above {10, 10} -> (3, 1, 1)/5 */
    const double b[] = {12}, a[] = {10, 10};
    MT_CHECK_OK(
        mt__hpo_tpe_param(mt_hpo_space_param(s, 0), &o, b, 1, a, 2, &r, 24, cands, scores, &best));
    const double pb[] = {0.25, 0.25, 0.5}, pa[] = {0.6, 0.2, 0.2};
    for (int j = 0; j < 24; j++) {
        int k = (int)cands[j] - 10;
        MT_CHECK(k >= 0 && k < 3);
        MT_CHECK_CLOSE(scores[j], log(pb[k]) - log(pa[k]), 0, 1e-14);
    }
    MT_CHECK(best == 12);
    /* pchoice: counts + 2 * (0.1, 0.9); below {0} -> (1.2, 1.8)/3, above {1} -> (0.2, 2.8)/3 */
    const double b2[] = {0}, a2[] = {1};
    MT_CHECK_OK(mt__hpo_tpe_param(mt_hpo_space_param(s, 1), &o, b2, 1, a2, 1, &r, 24, cands, scores,
                                  &best));
    for (int j = 0; j < 24; j++) {
        int k = (int)cands[j];
        double ref = k == 0 ? log(1.2 / 0.2) : log(1.8 / 2.8);
        MT_CHECK_CLOSE(scores[j], ref, 0, 1e-12);
    }
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

/* Runs a small search on f and returns the best loss. */
static double search(mt_hpo_space *s, const char *expr, mt_hpo_algorithm algo, int n, uint64_t seed)
{
    mt_hpo_expr *e = NULL;
    MT_CHECK_OK(mt_hpo_expr_new(&e, s, expr));
    mt_hpo_sampler_options so;
    mt_hpo_sampler_options_init(&so);
    so.algorithm = algo;
    so.seed = seed;
    mt_hpo_sampler *sm = NULL;
    MT_CHECK_OK(mt_hpo_sampler_new(&sm, s, &so));
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    for (int i = 0; i < n; i++) {
        MT_CHECK_OK(mt_hpo_sampler_suggest(sm, h, i, &p));
        MT_CHECK_OK(mt_hpo_point_check(s, &p));
        double y;
        MT_CHECK_OK(mt_hpo_expr_eval(e, &p, &y));
        MT_CHECK_OK(mt_hpo_history_add(h, i, &p));
        MT_CHECK_OK(mt_hpo_history_finish(h, i, MT_HPO_OK, y));
    }
    double best = mt_hpo_history_best(h)->loss;
    mt_hpo_point_clear(&p);
    mt_hpo_history_free(h);
    mt_hpo_sampler_free(sm);
    mt_hpo_expr_free(e);
    return best;
}

MT_TEST(tpe_beats_random_on_quadratic)
{
    /* hyperopt's quadratic1 domain, 100 evaluations, over 8 seeds: TPE's median best must be
     * far below random search's (TPE typically ~1e-4, random ~1e-2) */
    mt_cfg_doc *d = load("{x: !uniform [-5, 5]}");
    mt_hpo_space *s = space_of(d);
    double t[8], rnd[8];
    for (int k = 0; k < 8; k++) {
        t[k] = search(s, "(x - 3)**2", MT_HPO_ALGO_TPE, 100, 100 + k);
        rnd[k] = search(s, "(x - 3)**2", MT_HPO_ALGO_RANDOM, 100, 100 + k);
    }
    int tpe_wins = 0;
    for (int k = 0; k < 8; k++)
        tpe_wins += t[k] < rnd[k];
    MT_CHECK(tpe_wins >= 6);
    int good = 0;
    for (int k = 0; k < 8; k++)
        good += t[k] < 1e-2;
    MT_CHECK(good >= 6);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(tpe_conditional_space)
{
    /* hyperopt's q1_choice-like domain: the branch decides the target of the uniform */
    mt_cfg_doc *d = load("{o: !choice [{t: -3, x: !uniform [-5, 5]}, {t: 3, y: !uniform [-5, 5]}],"
                         " z: !quniform [0, 10, 1]}");
    mt_hpo_space *s = space_of(d);
    MT_CHECK_EQ_INT(mt_hpo_space_count(s), 4);
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 1)->parent, 0);
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 2)->parent_option, 1);
    /* o=0: (x + 3)^2 + 1; o=1: (y - 3)^2; plus (z - 4)^2 / 100 */
    double best = search(s, "where(o == 0, (x + 3)**2 + 1, (y - 3)**2) + (z - 4)**2 / 100",
                         MT_HPO_ALGO_TPE, 80, 7);
    MT_CHECK(best < 0.5);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(tpe_deterministic_in_seed_id_history)
{
    mt_cfg_doc *d = load("{x: !loguniform [0.001, 1], n: !intuniform [1, 8], c: !choice [a, b]}");
    mt_hpo_space *s = space_of(d);
    mt_hpo_sampler_options so;
    mt_hpo_sampler_options_init(&so);
    so.seed = 3;
    so.tpe.n_startup = 5;
    mt_hpo_sampler *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_hpo_sampler_new(&a, s, &so));
    MT_CHECK_OK(mt_hpo_sampler_new(&b, s, &so));
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    mt_hpo_point p, q;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    MT_CHECK_OK(mt_hpo_point_init(&q, s));
    for (int i = 0; i < 15; i++) {
        MT_CHECK_OK(mt_hpo_sampler_suggest(a, h, i, &p));
        MT_CHECK_OK(mt_hpo_sampler_suggest(b, h, i, &q));
        MT_CHECK(mt_hpo_point_equal(&p, &q));
        MT_CHECK_OK(mt_hpo_point_check(s, &p));
        MT_CHECK(p.values[1] == floor(p.values[1]));
        MT_CHECK_OK(mt_hpo_history_add(h, i, &p));
        MT_CHECK_OK(
            mt_hpo_history_finish(h, i, MT_HPO_OK, fabs(log(p.values[0]) + 3) + p.values[1]));
    }
    mt_hpo_point_clear(&p);
    mt_hpo_point_clear(&q);
    mt_hpo_history_free(h);
    mt_hpo_sampler_free(a);
    mt_hpo_sampler_free(b);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}
