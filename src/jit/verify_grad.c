/* Numeric gradient checking (mt_verify_grad, see jit_verify.h): the symbolic gradient of a
 * random projection of an expression against central differences computed by running the
 * expression through compiled functions. The expression is copied into a private graph, which
 * gets the projection placeholder u, the float64 cost sum(u * out) and its gradient; three
 * functions are compiled there once (the output alone, to learn its run-time shape; the
 * gradients; the cost) and then called once per projection and twice per input element. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mltrain/jit_verify.h"

void mt_verify_grad_options_init(mt_verify_grad_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof(*opts));
    opts->n_tests = 2;
    opts->seed = 1234;
    opts->mode = MT_MODE_FAST_COMPILE;
}

/* Step base and tolerance of a float dtype. */
static double dtype_eps(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT64: return 2.220446049250313e-16;
    case MT_FLOAT32: return 1.1920928955078125e-07;
    case MT_FLOAT16: return 9.765625e-04;
    default: return 7.8125e-03; /* bfloat16 */
    }
}

static double dtype_tol(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT64: return 1e-6;
    case MT_FLOAT32: return 1e-2;
    case MT_FLOAT16: return 5e-2;
    default: return 1e-1;
    }
}

static double elem_get(const void *p, mt_dtype dt)
{
    double d;
    mt_dtype_convert(&d, MT_FLOAT64, 0, p, dt, 0, 1);
    return d;
}

static void elem_set(void *p, mt_dtype dt, double d)
{
    mt_dtype_convert(p, dt, 0, &d, MT_FLOAT64, 0, 1);
}

/* splitmix64: a small deterministic generator for the projections. */
static double next_unit(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct vg {
    const mt_graph *g;
    mt_var out;
    int32_t n_in;
    const mt_var *inputs;
    mt_verify_grad_options o;
    mt_verify_grad_report *rep;
    /* private graph and functions */
    mt_graph *pg;
    mt_var *pin;      /* n_in + 1: the inputs, then u */
    mt_var pout, cost;
    int32_t n_wrt;
    int32_t *wrt_idx; /* input index of each float input */
    mt_var *grads;
    mt_function *f_out, *f_grad, *f_cost;
    mt_device *host;
    mt_array *args;   /* n_in + 1 host arrays (u last) */
    const mt_array **argp;
    double **sym;     /* per float input: symbolic gradient (float64) */
} vg;

static void vg_free(vg *s)
{
    mt_function_free(s->f_out);
    mt_function_free(s->f_grad);
    mt_function_free(s->f_cost);
    if (s->args)
        for (int32_t i = 0; i <= s->n_in; i++) mt_array_clear(&s->args[i]);
    if (s->sym)
        for (int32_t i = 0; i < s->n_wrt; i++) mt_free(s->sym[i]);
    mt_free(s->sym);
    mt_free(s->args);
    mt_free(s->argp);
    mt_free(s->pin);
    mt_free(s->wrt_idx);
    mt_free(s->grads);
    mt_device_release(s->host);
    mt_graph_free(s->pg);
}

static mt_status check_args(const vg *s, const mt_array *const *values)
{
    const mt_graph *g = s->g;
    if (!g || !s->inputs || !values || s->n_in < 1)
        return mt_err_set(MT_ERR_INVALID, "verify_grad: needs a graph and at least one input");
    if (!mt_graph_valid(g, s->out) || !mt_dtype_is_float(mt_graph_type(g, s->out)->dtype))
        return mt_err_set(MT_ERR_INVALID, "verify_grad: the output (handle %d) must be a float "
                          "variable of the graph", (int)s->out);
    for (int32_t i = 0; i < s->n_in; i++) {
        mt_var v = s->inputs[i];
        if (!mt_graph_valid(g, v) || mt_graph_op(g, v) != MT_OP_INPUT)
            return mt_err_set(MT_ERR_INVALID, "verify_grad: inputs[%d] (handle %d) is not a "
                              "placeholder", (int)i, (int)v);
        const mt_type *t = mt_graph_type(g, v);
        const mt_array *a = values[i];
        if (!a || a->dtype != t->dtype || a->ndim != t->ndim)
            return mt_err_set(MT_ERR_INVALID, "verify_grad: values[%d] does not match input '%s' "
                              "(%s, %d dimensions)", (int)i,
                              mt_graph_name(g, v) ? mt_graph_name(g, v) : "?",
                              mt_dtype_name(t->dtype), (int)t->ndim);
    }
    return MT_OK;
}

/* Copies the output's subgraph into a private graph and builds the cost and its gradients. */
static mt_status build(vg *s)
{
    const mt_graph *g = s->g;
    mt_status st = mt_graph_new(&s->pg);
    if (st) return st;
    int32_t n = mt_graph_size(g);
    mt_var *map = mt_calloc((size_t)n + 1, sizeof(mt_var));
    s->pin = mt_calloc((size_t)s->n_in + 1, sizeof(mt_var));
    s->wrt_idx = mt_calloc((size_t)s->n_in, sizeof(int32_t));
    s->grads = mt_calloc((size_t)s->n_in, sizeof(mt_var));
    if (!map || !s->pin || !s->wrt_idx || !s->grads) {
        mt_free(map);
        return mt_err_set(MT_ERR_NOMEM, "verify_grad: out of memory");
    }
    st = mt_graph_clone_with(s->pg, g, 1, &s->out, 0, NULL, NULL, &s->pout, map);
    for (int32_t i = 0; !st && i < s->n_in; i++) {
        mt_var v = s->inputs[i];
        const mt_type *t = mt_graph_type(g, v);
        s->pin[i] = map[v];
        if (!s->pin[i]) /* unused by out: a placeholder of its own, not checked */
            s->pin[i] = mt_graph_placeholder(s->pg, mt_graph_name(g, v), t->dtype, t->ndim,
                                             t->shape);
        else if (mt_dtype_is_float(t->dtype))
            s->wrt_idx[s->n_wrt++] = i;
        if (!s->pin[i]) st = mt_last_status();
    }
    mt_free(map);
    if (st) return st;
    const mt_type *ot = mt_graph_type(s->pg, s->pout);
    char uname[64];
    for (int k = 0;; k++) {
        snprintf(uname, sizeof(uname), "verify_grad.u%d", k);
        if (!mt_graph_find_placeholder(s->pg, uname)) break;
    }
    mt_var u = mt_graph_placeholder(s->pg, uname, MT_FLOAT64, ot->ndim, ot->shape);
    s->pin[s->n_in] = u;
    s->cost = mt_graph_sum(s->pg, mt_graph_mul(s->pg, u, mt_graph_cast(s->pg, s->pout,
                                                                        MT_FLOAT64)),
                           0, NULL, false);
    if (!s->cost) return mt_last_status();
    mt_var *wrt = mt_malloc(sizeof(mt_var) * (size_t)(s->n_wrt > 0 ? s->n_wrt : 1));
    if (!wrt) return MT_ERR_NOMEM;
    for (int32_t k = 0; k < s->n_wrt; k++) wrt[k] = s->pin[s->wrt_idx[k]];
    mt_grad_options go;
    mt_grad_options_init(&go);
    go.disconnected = MT_GRAD_DISCONNECTED_ZERO; /* compared with the numeric zeros */
    st = mt_graph_grad(s->pg, s->cost, s->n_wrt, wrt, s->grads,
                       s->o.grad_opts ? s->o.grad_opts : &go);
    mt_free(wrt);
    if (st) return mt_err_prefix(st, "verify_grad: ");
    return MT_OK;
}

static mt_status compile(vg *s)
{
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = s->o.mode;
    mt_status st = mt_function_new(&s->f_out, s->pg, s->n_in, s->pin, 1, &s->pout, 0, NULL,
                                   s->o.dev, &fo);
    if (!st && s->n_wrt > 0)
        st = mt_function_new(&s->f_grad, s->pg, s->n_in + 1, s->pin, s->n_wrt, s->grads, 0, NULL,
                             s->o.dev, &fo);
    if (!st)
        st = mt_function_new(&s->f_cost, s->pg, s->n_in + 1, s->pin, 1, &s->cost, 0, NULL,
                             s->o.dev, &fo);
    return st ? mt_err_prefix(st, "verify_grad: compiling: ") : MT_OK;
}

/* Host copies of the input values (perturbed in place) and the output's run-time shape. */
static mt_status prepare_args(vg *s, const mt_array *const *values)
{
    mt_status st = mt_device_open(&s->host, "host");
    if (st) return st;
    s->args = mt_calloc((size_t)s->n_in + 1, sizeof(mt_array));
    s->argp = mt_calloc((size_t)s->n_in + 1, sizeof(mt_array *));
    s->sym = mt_calloc((size_t)(s->n_wrt > 0 ? s->n_wrt : 1), sizeof(double *));
    if (!s->args || !s->argp || !s->sym) return mt_err_set(MT_ERR_NOMEM, "verify_grad: OOM");
    for (int32_t i = 0; i < s->n_in; i++) {
        st = mt_array_copy_to(&s->args[i], values[i], s->host);
        if (st) return st;
        s->argp[i] = &s->args[i];
    }
    mt_array y;
    memset(&y, 0, sizeof(y));
    st = mt_function_call(s->f_out, s->n_in, s->argp, 1, &y);
    if (st) return mt_err_prefix(st, "verify_grad: evaluating the output: ");
    st = mt_array_zeros(&s->args[s->n_in], s->host, MT_FLOAT64, y.ndim, y.dims);
    s->argp[s->n_in] = &s->args[s->n_in];
    mt_array_clear(&y);
    if (s->rep) s->rep->n_evals++;
    for (int32_t k = 0; !st && k < s->n_wrt; k++) {
        int64_t n = mt_array_size(&s->args[s->wrt_idx[k]]);
        s->sym[k] = mt_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        if (!s->sym[k]) st = MT_ERR_NOMEM;
    }
    return st;
}

static mt_status eval_cost(vg *s, double *c)
{
    mt_array y;
    memset(&y, 0, sizeof(y));
    mt_status st = mt_function_call(s->f_cost, s->n_in + 1, s->argp, 1, &y);
    if (!st) st = mt_array_to_host(c, sizeof(double), &y);
    mt_array_clear(&y);
    s->rep->n_evals++;
    return st;
}

/* Symbolic gradients at the current point, as float64. */
static mt_status eval_symbolic(vg *s)
{
    if (s->n_wrt == 0) return MT_OK;
    mt_array *outs = mt_calloc((size_t)s->n_wrt, sizeof(mt_array));
    if (!outs) return MT_ERR_NOMEM;
    mt_status st = mt_function_call(s->f_grad, s->n_in + 1, s->argp, s->n_wrt, outs);
    s->rep->n_evals++;
    for (int32_t k = 0; !st && k < s->n_wrt; k++) {
        mt_array c;
        memset(&c, 0, sizeof(c));
        st = mt_array_astype(&c, &outs[k], MT_FLOAT64);
        if (!st && mt_array_size(&c) != mt_array_size(&s->args[s->wrt_idx[k]]))
            st = mt_err_set(MT_ERR_INTERNAL, "verify_grad: gradient %d has %lld elements, the "
                            "input %lld", (int)k, (long long)mt_array_size(&c),
                            (long long)mt_array_size(&s->args[s->wrt_idx[k]]));
        if (!st) st = mt_array_to_host(s->sym[k], mt_array_nbytes(&c), &c);
        mt_array_clear(&c);
    }
    for (int32_t k = 0; k < s->n_wrt; k++) mt_array_clear(&outs[k]);
    mt_free(outs);
    return st;
}

static void fill_projection(vg *s, int32_t test)
{
    mt_array *u = &s->args[s->n_in];
    double *p = (double *)((char *)mt_buffer_host_ptr(u->buf) + u->offset);
    uint64_t state = s->o.seed * 0x100000001B3ull + (uint64_t)test;
    for (int64_t i = 0; i < mt_array_size(u); i++) p[i] = 0.5 + next_unit(&state);
}

/* "[1, 2]" for flat index k of shape a. */
static void format_index(const mt_array *a, int64_t k, char *buf, size_t len)
{
    int64_t idx[MT_MAX_DIMS];
    for (int32_t d = a->ndim - 1; d >= 0; d--) {
        idx[d] = a->dims[d] > 0 ? k % a->dims[d] : 0;
        k = a->dims[d] > 0 ? k / a->dims[d] : 0;
    }
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int32_t d = 0; d < a->ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static mt_status report_failure(vg *s, mt_status code, const char *what)
{
    mt_verify_grad_report *r = s->rep;
    const mt_graph *g = s->g;
    mt_var in = s->inputs[r->worst_input];
    char ib[128];
    format_index(&s->args[r->worst_input], r->worst_index, ib, sizeof(ib));
    mt_strbuf ty, pv;
    mt_strbuf_init(&ty);
    mt_strbuf_init(&pv);
    mt_type_format(mt_graph_type(g, in), &ty);
    mt_graph_format_provenance(g, s->out, &pv);
    double ae = fabs(r->symbolic - r->numeric);
    double re = ae / fmax(fabs(r->symbolic) + fabs(r->numeric), 1e-8);
    mt_status st = mt_err_set(code, "verify_grad: %s for %s (v%d%s%s) with respect to input %d "
                              "'%s' (%s) at element %s: symbolic %.17g, numeric %.17g (abs err "
                              "%.3g, tol %.3g; rel err %.3g, tol %.3g)", what,
                              mt_graph_op_label(g, s->out), (int)s->out, pv.len ? ", " : "",
                              pv.len ? pv.data : "", (int)r->worst_input,
                              mt_graph_name(g, in) ? mt_graph_name(g, in) : "?",
                              ty.data ? ty.data : "?", ib, r->symbolic, r->numeric, ae,
                              r->abs_tol, re, r->rel_tol);
    mt_strbuf_deinit(&ty);
    mt_strbuf_deinit(&pv);
    return st;
}

/* One projection: the numeric gradient of every float input element against sym. */
static mt_status check_projection(vg *s, double *worst_bad, bool *nonfinite_num)
{
    mt_verify_grad_report *r = s->rep;
    for (int32_t k = 0; k < s->n_wrt; k++) {
        int32_t i = s->wrt_idx[k];
        mt_array *a = &s->args[i];
        mt_dtype dt = a->dtype;
        size_t isz = mt_dtype_size(dt);
        char *base = (char *)mt_buffer_host_ptr(a->buf) + a->offset;
        double step = s->o.eps > 0 ? s->o.eps : cbrt(dtype_eps(dt));
        for (int64_t e = 0; e < mt_array_size(a); e++) {
            char *p = base + (size_t)e * isz, saved[16];
            memcpy(saved, p, isz);
            double x0 = elem_get(p, dt), h = step * fmax(1.0, fabs(x0)), cp, cm;
            elem_set(p, dt, x0 + h);
            double xp = elem_get(p, dt);
            mt_status st = eval_cost(s, &cp);
            elem_set(p, dt, x0 - h);
            double xm = elem_get(p, dt);
            if (!st) st = eval_cost(s, &cm);
            memcpy(p, saved, isz);
            if (st) return st;
            if (!(xp > xm))
                return mt_err_set(MT_ERR_INVALID, "verify_grad: input %d element %lld (%g): the "
                                  "step %g vanishes in %s; give a larger eps", (int)i,
                                  (long long)e, x0, h, mt_dtype_name(dt));
            double num = (cp - cm) / (xp - xm), sym = s->sym[k][e];
            double ae = fabs(sym - num);
            double re = ae / fmax(fabs(sym) + fabs(num), 1e-8);
            double bad = fmin(ae / r->abs_tol, re / r->rel_tol);
            if (!isfinite(num)) {
                bad = INFINITY;
                *nonfinite_num = true;
            } else if (!isfinite(sym)) {
                bad = INFINITY;
            }
            if (isfinite(ae)) {
                r->max_abs_err = fmax(r->max_abs_err, ae);
                r->max_rel_err = fmax(r->max_rel_err, re);
            }
            if (bad > *worst_bad || r->worst_input < 0) {
                *worst_bad = bad;
                r->worst_input = i;
                r->worst_index = e;
                r->symbolic = sym;
                r->numeric = num;
                if (bad == INFINITY) return MT_OK; /* reported as is */
            }
        }
    }
    return MT_OK;
}

mt_status mt_verify_grad(const mt_graph *g, mt_var out, int32_t n_in, const mt_var *inputs,
                         const mt_array *const *values, const mt_verify_grad_options *opts,
                         mt_verify_grad_report *rep)
{
    mt_verify_grad_report local;
    vg s;
    memset(&s, 0, sizeof(s));
    s.g = g;
    s.out = out;
    s.n_in = n_in;
    s.inputs = inputs;
    s.rep = rep ? rep : &local;
    memset(s.rep, 0, sizeof(*s.rep));
    s.rep->worst_input = -1;
    mt_verify_grad_options_init(&s.o);
    if (opts) s.o = *opts;
    if (s.o.n_tests <= 0) s.o.n_tests = 1;
    mt_status st = check_args(&s, values);
    /* tolerances: the loosest over the float inputs */
    double tol = 0;
    for (int32_t i = 0; !st && i < n_in; i++) {
        mt_dtype dt = mt_graph_type(g, inputs[i])->dtype;
        if (mt_dtype_is_float(dt)) tol = fmax(tol, dtype_tol(dt));
    }
    s.rep->abs_tol = s.o.abs_tol > 0 ? s.o.abs_tol : (tol > 0 ? tol : 1e-6);
    s.rep->rel_tol = s.o.rel_tol > 0 ? s.o.rel_tol : (tol > 0 ? tol : 1e-6);
    if (!st) st = build(&s);
    if (!st) st = compile(&s);
    if (!st) st = prepare_args(&s, values);
    double worst = 0;
    bool nonfinite = false;
    for (int32_t t = 0; !st && t < s.o.n_tests && s.n_wrt > 0; t++) {
        fill_projection(&s, t);
        st = eval_symbolic(&s);
        if (!st) st = check_projection(&s, &worst, &nonfinite);
        if (!st && worst == INFINITY) break;
    }
    if (!st) {
        s.rep->passed = worst <= 1.0;
        if (nonfinite && worst == INFINITY && !isfinite(s.rep->numeric))
            st = report_failure(&s, MT_ERR_INVALID, "the numeric gradient is not finite (the "
                                "function is not finite or not smooth near this point)");
        else if (!s.rep->passed)
            st = report_failure(&s, MT_ERR_INTERNAL, "symbolic and numeric gradients differ");
    }
    vg_free(&s);
    return st;
}
