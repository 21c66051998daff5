/* Mixed-precision training (docs/training.md "Mixed precision"): the run option `precision`
 * and float16's dynamic loss scaling.
 *
 * The precision is a run option (mt_train_options.precision, `mltrain --precision P`), not a
 * YAML key: the training function and the monitor's functions both build their graphs with
 * mt__run_model_graph, which asks the model graph for the 16-bit compute dtype
 * (mt_model_graph_set_compute). The parameters stay float32 shared variables (the master
 * weights): the model reads cast(p, bfloat16), its gradient arrives float32 through the
 * cast's gradient, so the learning rule, optimizer state, norm constraints, the data-parallel
 * all-reduce and checkpoints are the float32 ones of a plain run.
 *
 * float16 (5 exponent bits) loses small gradients to underflow, so SGD differentiates
 * cost * S instead of the cost and divides the float32 gradients by S (S a power of two:
 * exact). The training graph computes ok = every gradient (after the all-reduce) is finite;
 * every update becomes where(ok, new, old), so a step with an overflow changes nothing, and ok
 * is stored in a 0-d shared array the host reads after the step: a skipped step halves S,
 * 2000 finite steps in a row double it (PyTorch's GradScaler defaults). S and the count are
 * in the checkpoint, so a resumed run continues bit-identically. */
#include <math.h>
#include <string.h>

#include "sgd_impl.h"

#define MT__LOSS_SCALE_DEFAULT 1024.0
#define MT__LOSS_SCALE_GROWTH_STEPS 2000

mt_status mt__precision_dtype(const mt_train_options *o, mt_dtype *out)
{
    const char *p = o ? o->precision : NULL;
    *out = MT_FLOAT32;
    if (p && *p && strcmp(p, "float32") != 0) {
        if (!strcmp(p, "bfloat16"))
            *out = MT_BFLOAT16;
        else if (!strcmp(p, "float16"))
            *out = MT_FLOAT16;
        else
            return mt_err_set(MT_ERR_INVALID, "precision '%s': expected float32, bfloat16 or "
                              "float16", p);
    }
    double s = o ? o->loss_scale : 0.0;
    if (s != 0.0 && *out != MT_FLOAT16)
        return mt_err_set(MT_ERR_INVALID, "a loss scale (%g) applies to precision float16 only "
                          "(the precision is %s)", s, mt_dtype_name(*out));
    if (s != 0.0 && !(s >= 1.0 && s <= 1e30))
        return mt_err_set(MT_ERR_RANGE, "loss scale %g: expected a number in [1, 1e30]", s);
    return MT_OK;
}

mt_dtype mt__run_compute_dtype(const mt__run *run)
{
    mt_dtype dt = MT_FLOAT32;
    if (mt__precision_dtype(run->opts, &dt)) return MT_FLOAT32; /* checked by mt_job_load */
    return dt;
}

/* ---------------------------------------------------------------- loss scaling */

mt_status mt__scaler_init(mt__loss_scaler *ls, const mt__run *run, mt_graph *g)
{
    memset(ls, 0, sizeof(*ls));
    ls->on = mt__run_compute_dtype(run) == MT_FLOAT16;
    if (!ls->on) return MT_OK;
    ls->scale = run->opts->loss_scale > 0 ? run->opts->loss_scale : MT__LOSS_SCALE_DEFAULT;
    ls->scale_var = mt_graph_placeholder(g, "loss_scale", MT_FLOAT32, 0, NULL);
    ls->ok_var = mt_graph_placeholder(g, "loss_scale_ok", MT_FLOAT32, 0, NULL);
    if (mt_graph_status(g))
        return mt_err_set(mt_graph_status(g), "loss scaling: %s", mt_graph_last_error(g));
    return MT_OK;
}

mt_var mt__scaler_scale(const mt__loss_scaler *ls, mt_graph *g, mt_var cost)
{
    return ls->on ? mt_graph_mul(g, cost, ls->scale_var) : cost;
}

void mt__scaler_unscale(const mt__loss_scaler *ls, mt_graph *g, int32_t n, mt_var *grads)
{
    if (!ls->on) return;
    for (int32_t i = 0; i < n; i++)
        if (grads[i]) grads[i] = mt_graph_div(g, grads[i], ls->scale_var);
}

mt_status mt__scaler_guard(const mt__loss_scaler *ls, mt_graph *g, int32_t n_grads,
                           const mt_var *grads, mt_update *updates, int32_t *n_updates)
{
    if (!ls->on) return MT_OK;
    /* a sum propagates inf and nan (inf - inf = nan): finite sums <=> finite elements */
    mt_var ok = MT_VAR_NONE;
    for (int32_t i = 0; i < n_grads; i++) {
        if (!grads[i]) continue;
        mt_var f = mt_graph_unary(g, MT_SOP_ISFINITE, mt_graph_sum(g, grads[i], 0, NULL, false));
        ok = ok ? mt_graph_logical_and(g, ok, f) : f;
    }
    if (!ok) ok = mt_graph_ne(g, ls->scale_var, mt_graph_literal_float(g, 0.0));
    for (int32_t i = 0; i < *n_updates; i++)
        updates[i].value = mt_graph_where(g, ok, updates[i].value, updates[i].var);
    updates[(*n_updates)++] = (mt_update){ls->ok_var, mt_graph_cast(g, ok, MT_FLOAT32)};
    if (mt_graph_status(g))
        return mt_err_set(mt_graph_status(g), "loss scaling: %s", mt_graph_last_error(g));
    return MT_OK;
}

mt_status mt__scaler_bind(mt__loss_scaler *ls, mt_device *dev, mt_function *const *fns,
                          int32_t n_fns)
{
    if (!ls->on) return MT_OK;
    float one = 1.0f, s = (float)ls->scale;
    mt_status st = MT_OK;
    if (!ls->scale_arr.buf) st = mt_array_from_host(&ls->scale_arr, dev, MT_FLOAT32, 0, NULL, &s);
    if (!st && !ls->ok_arr.buf)
        st = mt_array_from_host(&ls->ok_arr, dev, MT_FLOAT32, 0, NULL, &one);
    for (int32_t k = 0; k < n_fns && !st; k++) {
        if (!fns[k]) continue;
        if (mt_function_var_type(fns[k], ls->scale_var))
            st = mt_function_set_shared(fns[k], ls->scale_var, &ls->scale_arr);
        if (!st && mt_function_var_type(fns[k], ls->ok_var))
            st = mt_function_set_shared(fns[k], ls->ok_var, &ls->ok_arr);
    }
    return st ? mt_err_prefix(st, "loss scaling: ") : MT_OK;
}

mt_status mt__scaler_after_step(mt__loss_scaler *ls, bool *skipped)
{
    *skipped = false;
    if (!ls->on) return MT_OK;
    float ok = 0;
    mt_status st = mt_array_to_host(&ok, sizeof(ok), &ls->ok_arr);
    if (st) return mt_err_prefix(st, "loss scaling: ");
    double before = ls->scale;
    if (ok != 0.0f) {
        if (++ls->good >= MT__LOSS_SCALE_GROWTH_STEPS) {
            ls->good = 0;
            if (ls->scale * 2.0 <= 1e30) ls->scale *= 2.0;
        }
    } else {
        *skipped = true;
        ls->skipped++;
        ls->good = 0;
        if (ls->scale > 1.0) ls->scale *= 0.5;
        mt_log(MT_LOG_DEBUG, "float16 loss scaling: non-finite gradients, step skipped, scale "
                             "%g -> %g", before, ls->scale);
    }
    if (ls->scale == before) return MT_OK;
    return mt_array_fill(&ls->scale_arr, mt_scalar_f64(ls->scale));
}

mt_status mt__scaler_save(const mt__loss_scaler *ls, mt_ckpt *c)
{
    if (!ls->on) return MT_OK;
    mt_status st = mt_ckpt_put_double(c, "algorithm/loss_scale", ls->scale);
    if (!st) st = mt_ckpt_put_int(c, "algorithm/loss_scale_good_steps", ls->good);
    return st;
}

mt_status mt__scaler_load(mt__loss_scaler *ls, const mt_ckpt *c)
{
    if (!ls->on) return MT_OK;
    double s;
    int64_t good;
    mt_status st = mt_ckpt_get_double(c, "algorithm/loss_scale", &s);
    if (!st) st = mt_ckpt_get_int(c, "algorithm/loss_scale_good_steps", &good);
    if (st) return mt_err_prefix(st, "float16 loss scaling (was the checkpoint written by a "
                                     "run of another precision?): ");
    ls->scale = s;
    ls->good = good;
    return ls->scale_arr.buf ? mt_array_fill(&ls->scale_arr, mt_scalar_f64(s)) : MT_OK;
}

void mt__scaler_clear(mt__loss_scaler *ls)
{
    mt_array_clear(&ls->scale_arr);
    mt_array_clear(&ls->ok_arr);
    memset(ls, 0, sizeof(*ls));
}
