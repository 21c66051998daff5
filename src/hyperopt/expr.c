/* Expression objectives: a loss written in mltrain's expression language over the sweep's
 * parameters (e.g. the Branin or Hartmann6 function), so samplers and the sweep machinery run
 * and are benchmarked without training. The text is parsed once into a graph whose float64
 * scalar placeholders are the parameters it names (mt_hpo_param.name) and, for the sweep's
 * trials, extra scalars the caller names (`epoch`), compiled once with the reference executor
 * (no C compiler needed), and called per point. */
#include <string.h>

#include "hyperopt_impl.h"
#include "mltrain/graph_parse.h"
#include "mltrain/jit.h"

struct mt_hpo_expr {
    const mt_hpo_space *space;
    mt_graph *g;
    mt_device *dev;
    mt_function *fn;
    int32_t n_extra;
    const char *const *extra; /* names of the extra scalars (borrowed) */
    int32_t n_used;
    int32_t *param; /* argument j: parameter index, or -1 - k for extra scalar k */
    mt_var *vars;
};

static const char *arg_name(const mt_hpo_expr *e, int32_t j)
{
    int32_t i = e->param[j];
    return i >= 0 ? e->space->params[i].name : e->extra[-1 - i];
}

/* A name of the text: a parameter, else an extra scalar; one placeholder per name. */
static mt_var lookup(void *user, mt_graph *g, const char *name)
{
    mt_hpo_expr *e = user;
    for (int32_t j = 0; j < e->n_used; j++)
        if (strcmp(arg_name(e, j), name) == 0) return e->vars[j];
    int32_t found = INT32_MIN;
    for (int32_t i = 0; i < e->space->n && found == INT32_MIN; i++)
        if (strcmp(e->space->params[i].name, name) == 0) found = i;
    for (int32_t k = 0; k < e->n_extra && found == INT32_MIN; k++)
        if (strcmp(e->extra[k], name) == 0) found = -1 - k;
    if (found == INT32_MIN) return MT_VAR_NONE;
    mt_var v = mt_graph_placeholder(g, name, MT_FLOAT64, 0, NULL);
    if (v == MT_VAR_NONE) return MT_VAR_NONE;
    e->param[e->n_used] = found;
    e->vars[e->n_used++] = v;
    return v;
}

void mt_hpo_expr_free(mt_hpo_expr *e)
{
    if (!e) return;
    mt_function_free(e->fn);
    mt_graph_free(e->g);
    mt_device_release(e->dev);
    mt_free(e->param);
    mt_free(e->vars);
    mt_free(e);
}

mt_status mt__hpo_expr_new_ex(mt_hpo_expr **out, const mt_hpo_space *s, const char *text,
                              int32_t n_extra, const char *const *extra)
{
    *out = NULL;
    if (!text) return mt_err_set(MT_ERR_INVALID, "expression: no text");
    mt_hpo_expr *e = mt_calloc(1, sizeof *e);
    if (!e) return mt_err_set(MT_ERR_NOMEM, "expression");
    e->space = s;
    e->n_extra = n_extra;
    e->extra = extra;
    int32_t n = (s->n + n_extra) ? (s->n + n_extra) : 1;
    e->param = mt_calloc((size_t)n, sizeof *e->param);
    e->vars = mt_calloc((size_t)n, sizeof *e->vars);
    mt_status st = e->param && e->vars ? MT_OK : mt_err_set(MT_ERR_NOMEM, "expression");
    if (st == MT_OK) st = mt_graph_new(&e->g);
    mt_var y = MT_VAR_NONE;
    if (st == MT_OK) {
        mt_parse_options po;
        mt_parse_options_init(&po);
        po.lookup = lookup;
        po.lookup_user = e;
        po.no_placeholders = true;
        mt_parse_error err;
        st = mt_graph_parse_ex(e->g, text, &po, &y, &err);
        if (st)
            st = mt_err_set(MT_ERR_INVALID, "expression: %d:%d: %s", (int)err.line, (int)err.col,
                            err.message);
    }
    if (st == MT_OK) {
        const mt_type *t = mt_graph_type(e->g, y);
        if (!t || t->ndim != 0)
            st = mt_err_set(MT_ERR_INVALID, "expression: '%s' must give a scalar, got %d dims",
                            text, t ? (int)t->ndim : -1);
        else if (t->dtype != MT_FLOAT64)
            y = mt_graph_cast(e->g, y, MT_FLOAT64);
    }
    if (st == MT_OK) st = mt_device_open(&e->dev, "host");
    if (st == MT_OK) {
        mt_function_options fo;
        mt_function_options_init(&fo);
        fo.mode = MT_MODE_FAST_COMPILE;
        st = mt_function_new(&e->fn, e->g, e->n_used, e->vars, 1, &y, 0, NULL, e->dev, &fo);
    }
    if (st) {
        mt_hpo_expr_free(e);
        return st;
    }
    *out = e;
    return MT_OK;
}

mt_status mt_hpo_expr_new(mt_hpo_expr **out, const mt_hpo_space *s, const char *text)
{
    return mt__hpo_expr_new_ex(out, s, text, 0, NULL);
}

bool mt__hpo_expr_uses_extra(const mt_hpo_expr *e, int32_t k)
{
    for (int32_t j = 0; j < e->n_used; j++)
        if (e->param[j] == -1 - k) return true;
    return false;
}

static const char *const objective_extra[] = {"epoch"};

mt_status mt__hpo_objective_new(mt_hpo_expr **out, const mt_hpo_space *s, const char *text)
{
    return mt__hpo_expr_new_ex(out, s, text, 1, objective_extra);
}

mt_status mt__hpo_expr_eval_ex(mt_hpo_expr *e, const mt_hpo_point *p, const double *extra,
                               double *out)
{
    *out = NAN;
    if (p->n != e->space->n)
        return mt_err_set(MT_ERR_INVALID, "expression: point of %d values for a space of %d",
                          (int)p->n, (int)e->space->n);
    mt_array args[64], *big = NULL, res = {0};
    mt_array *a = e->n_used <= 64 ? args : (big = mt_calloc((size_t)e->n_used, sizeof *big));
    const mt_array **ins = mt_calloc((size_t)(e->n_used ? e->n_used : 1), sizeof *ins);
    mt_status st = a && ins ? MT_OK : mt_err_set(MT_ERR_NOMEM, "expression");
    int32_t made = 0;
    for (int32_t j = 0; j < e->n_used && st == MT_OK; j++) {
        int32_t i = e->param[j];
        double v = i < 0 ? extra[-1 - i] : NAN;
        if (i >= 0 && p->active[i]) {
            const mt_hpo_param *prm = &e->space->params[i];
            v = prm->options ? mt__hpo_option_number(prm, (int32_t)p->values[i]) : p->values[i];
        }
        memset(&a[j], 0, sizeof a[j]);
        st = mt_array_from_host(&a[j], e->dev, MT_FLOAT64, 0, NULL, &v);
        if (st == MT_OK) made++, ins[j] = &a[j];
    }
    if (st == MT_OK) st = mt_function_call(e->fn, e->n_used, ins, 1, &res);
    if (st == MT_OK) st = mt_array_to_host(out, sizeof *out, &res);
    mt_array_clear(&res);
    for (int32_t j = 0; j < made; j++)
        mt_array_clear(&a[j]);
    mt_free(big);
    mt_free(ins);
    return st;
}

mt_status mt_hpo_expr_eval(mt_hpo_expr *e, const mt_hpo_point *p, double *out)
{
    return mt__hpo_expr_eval_ex(e, p, NULL, out);
}

mt_status mt_sweep_eval_expression(const char *text, const mt_hpo_space *s, const mt_hpo_point *p,
                                   double *out)
{
    mt_hpo_expr *e = NULL;
    mt_status st = mt_hpo_expr_new(&e, s, text);
    if (st == MT_OK) st = mt_hpo_expr_eval(e, p, out);
    mt_hpo_expr_free(e);
    return st;
}
