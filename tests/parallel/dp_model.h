/* The model the parallel tests train: softmax regression (D inputs, C classes) with the graph
 * API, on a fixed random data set (a linear teacher plus noise, seeded), by plain SGD on the
 * mean cross-entropy of each global batch. Three ways to compile a step:
 *   fast:  one function whose gradients go through mt_dp_insert_allreduce (all-reduce buckets)
 *          and whose updates apply them (a single process with one shard: no collectives);
 *   grads: a function returning the shard's gradients weighted by an argument `wt` (n_s / n),
 *          for the deterministic mode's ordered reduction, plus
 *   apply: a function taking the reduced gradients and updating the parameters.
 * The parameters are host arrays shared by the functions. */
#ifndef MT_TEST_DP_MODEL_H
#define MT_TEST_DP_MODEL_H

#include <math.h>
#include <string.h>

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"
#include "mltrain/parallel.h"
#include "mt_test.h"

#define DPM_D 12
#define DPM_C 5
#define DPM_ROWS 600 /* the data set: STEPS * BATCH rows are used */
#define DPM_LR 0.5

typedef struct dpm {
    mt_graph *g;
    mt_var x, y, wt, p[2], gr[2], red[2], gin[2];
    mt_function *fast, *grads, *apply;
    mt_array param[2];
    mt_device *host;
    float X[DPM_ROWS * DPM_D];
    int32_t Y[DPM_ROWS];
} dpm;

static uint64_t dpm_rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

static double dpm_unif(uint64_t *s) /* [-1, 1) */
{
    return (double)(dpm_rng(s) >> 20) / (double)(1ull << 33) * 2.0 - 1.0;
}

static void dpm_data(dpm *m, uint64_t seed)
{
    uint64_t s = seed;
    double T[DPM_D * DPM_C];
    for (int i = 0; i < DPM_D * DPM_C; i++) T[i] = 2 * dpm_unif(&s);
    for (int r = 0; r < DPM_ROWS; r++) {
        double best = -1e300;
        for (int j = 0; j < DPM_D; j++) m->X[r * DPM_D + j] = (float)dpm_unif(&s);
        for (int c = 0; c < DPM_C; c++) {
            double z = 0.3 * dpm_unif(&s);
            for (int j = 0; j < DPM_D; j++) z += m->X[r * DPM_D + j] * T[j * DPM_C + c];
            if (z > best) {
                best = z;
                m->Y[r] = c;
            }
        }
    }
}

/* Parameters drawn with `seed` (different seeds: different initial values). */
static inline void dpm_init_params(dpm *m, uint64_t seed)
{
    uint64_t s = seed * 7919 + 17;
    float w[DPM_D * DPM_C], b[DPM_C];
    for (int i = 0; i < DPM_D * DPM_C; i++) w[i] = (float)(0.1 * dpm_unif(&s));
    for (int i = 0; i < DPM_C; i++) b[i] = (float)(0.1 * dpm_unif(&s));
    int64_t ws[2] = {DPM_D, DPM_C}, bs[1] = {DPM_C};
    mt_array_clear(&m->param[0]);
    mt_array_clear(&m->param[1]);
    MT_CHECK_OK(mt_array_from_host(&m->param[0], m->host, MT_FLOAT32, 2, ws, w));
    MT_CHECK_OK(mt_array_from_host(&m->param[1], m->host, MT_FLOAT32, 1, bs, b));
}

static void dpm_bind(dpm *m, mt_function *f)
{
    for (int i = 0; i < 2; i++)
        if (mt_function_var_type(f, m->p[i])) MT_CHECK_OK(mt_function_set_shared(f, m->p[i], &m->param[i]));
}

/* dp: the data-parallel context (fast mode when not deterministic). */
static inline void dpm_build(dpm *m, mt_dp *dp, uint64_t data_seed)
{
    memset(m, 0, sizeof *m);
    MT_CHECK_OK(mt_device_open(&m->host, "host"));
    dpm_data(m, data_seed);
    dpm_init_params(m, 1);
    MT_CHECK_OK(mt_graph_new(&m->g));
    mt_graph *g = m->g;
    int64_t xs[2] = {-1, DPM_D}, ys[1] = {-1}, ws[2] = {DPM_D, DPM_C}, bs[1] = {DPM_C};
    m->x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, xs);
    m->y = mt_graph_placeholder(g, "y", MT_INT32, 1, ys);
    m->p[0] = mt_graph_placeholder(g, "W", MT_FLOAT32, 2, ws);
    m->p[1] = mt_graph_placeholder(g, "b", MT_FLOAT32, 1, bs);
    mt_var logits = mt_graph_add(g, mt_graph_matmul(g, m->x, m->p[0]), m->p[1]);
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, logits, m->y, 1), 0,
                                NULL, false);
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, m->p, m->gr, NULL));
    mt_var lr = mt_graph_scalar(g, MT_FLOAT32, DPM_LR);
    mt_update up[2];
    if (!mt_dp_deterministic(dp)) {
        MT_CHECK_OK(mt_dp_insert_allreduce(dp, g, 2, m->p, m->gr, m->red));
        for (int i = 0; i < 2; i++)
            up[i] = (mt_update){m->p[i], mt_graph_sub(g, m->p[i], mt_graph_mul(g, lr, m->red[i]))};
        MT_CHECK_OK(mt_graph_status(g));
        mt_function_options o;
        mt_function_options_init(&o);
        mt_dp_function_options(dp, &o);
        mt_var ins[2] = {m->x, m->y};
        MT_CHECK_OK(mt_function_new(&m->fast, g, 2, ins, 1, &cost, 2, up, m->host, &o));
        dpm_bind(m, m->fast);
        return;
    }
    m->wt = mt_graph_placeholder(g, "wt", MT_FLOAT32, 0, NULL);
    mt_var wg[2];
    for (int i = 0; i < 2; i++) {
        wg[i] = mt_graph_mul(g, m->gr[i], m->wt);
        m->gin[i] = mt_graph_placeholder(g, i ? "gb" : "gW", MT_FLOAT32, i ? 1 : 2, i ? bs : ws);
        up[i] = (mt_update){m->p[i], mt_graph_sub(g, m->p[i], mt_graph_mul(g, lr, m->gin[i]))};
    }
    MT_CHECK_OK(mt_graph_status(g));
    mt_var ins[3] = {m->x, m->y, m->wt};
    MT_CHECK_OK(mt_function_new(&m->grads, g, 3, ins, 2, wg, 0, NULL, m->host, NULL));
    MT_CHECK_OK(mt_function_new(&m->apply, g, 2, m->gin, 0, NULL, 2, up, m->host, NULL));
    dpm_bind(m, m->grads);
    dpm_bind(m, m->apply);
}

static inline void dpm_free(dpm *m)
{
    mt_function_free(m->fast);
    mt_function_free(m->grads);
    mt_function_free(m->apply);
    mt_array_clear(&m->param[0]);
    mt_array_clear(&m->param[1]);
    mt_graph_free(m->g);
    mt_device_release(m->host);
}

/* Views of rows [b, e) of the data set. */
static void dpm_rows(dpm *m, int64_t b, int64_t e, mt_array *X, mt_array *Y)
{
    int64_t xs[2] = {e - b, DPM_D}, ys[1] = {e - b};
    MT_CHECK_OK(mt_array_from_host(X, m->host, MT_FLOAT32, 2, xs, m->X + b * DPM_D));
    MT_CHECK_OK(mt_array_from_host(Y, m->host, MT_INT32, 1, ys, m->Y + b));
}

/* One SGD step on global batch [b0, b0 + n) in fast mode: this process's shard. */
static inline void dpm_step_fast(dpm *m, mt_dp *dp, int64_t b0, int64_t n)
{
    int64_t b, e;
    mt_dp_shard_rows(dp, n, mt_dp_rank(dp), &b, &e);
    mt_array X, Y, cost;
    dpm_rows(m, b0 + b, b0 + e, &X, &Y);
    MT_CHECK_OK(mt_dp_set_step(dp, m->fast, e - b, n));
    const mt_array *args[2] = {&X, &Y};
    MT_CHECK_OK(mt_function_call(m->fast, 2, args, 1, &cost));
    mt_array_clear(&cost);
    mt_array_clear(&X);
    mt_array_clear(&Y);
}

/* One step in deterministic mode: the shards this process computes (all on one process, its
 * own on N ranks), the ordered sum, the update. */
static inline void dpm_step_ordered(dpm *m, mt_dp *dp, int64_t b0, int64_t n)
{
    MT_CHECK_OK(mt_dp_ordered_begin(dp, 2));
    int32_t first = mt_dp_size(dp) > 1 ? mt_dp_rank(dp) : 0;
    int32_t last = mt_dp_size(dp) > 1 ? mt_dp_rank(dp) + 1 : mt_dp_n_shards(dp);
    for (int32_t s = first; s < last; s++) {
        int64_t b, e;
        mt_dp_shard_rows(dp, n, s, &b, &e);
        mt_array X, Y, W, gs[2];
        dpm_rows(m, b0 + b, b0 + e, &X, &Y);
        float wt = (float)((double)(e - b) / (double)n);
        MT_CHECK_OK(mt_array_from_host(&W, m->host, MT_FLOAT32, 0, NULL, &wt));
        const mt_array *args[3] = {&X, &Y, &W};
        MT_CHECK_OK(mt_function_call(m->grads, 3, args, 2, gs));
        const mt_array *g2[2] = {&gs[0], &gs[1]};
        MT_CHECK_OK(mt_dp_ordered_add(dp, s, 2, g2));
        mt_array_clear(&gs[0]);
        mt_array_clear(&gs[1]);
        mt_array_clear(&X);
        mt_array_clear(&Y);
        mt_array_clear(&W);
    }
    mt_array red[2] = {{0}};
    MT_CHECK_OK(mt_dp_ordered_finish(dp, 2, red));
    const mt_array *args[2] = {&red[0], &red[1]};
    MT_CHECK_OK(mt_function_call(m->apply, 2, args, 0, NULL));
    mt_array_clear(&red[0]);
    mt_array_clear(&red[1]);
}

static inline void dpm_get(const dpm *m, float *w, float *b)
{
    MT_CHECK_OK(mt_array_to_host(w, sizeof(float) * DPM_D * DPM_C, &m->param[0]));
    MT_CHECK_OK(mt_array_to_host(b, sizeof(float) * DPM_C, &m->param[1]));
}

#endif
