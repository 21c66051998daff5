/* The compiler's CUDA code path without a GPU: a corpus of expressions of the expression
 * language (every elementwise function and operator, dtype promotion, broadcasting, every
 * reduction, the neural-network ops, indexing and shape ops, gradients of a training-style cost,
 * random draws) is compiled with mt_function (FAST_RUN: rewrites, fusion into generated CUDA
 * kernels, GEMMs) for the CUDA emulation device cudaemu:0 and for the host, called on the same
 * inputs, and the outputs are compared (per-dtype tolerances; integers and bools bit-equal).
 * Every kernel built on cudaemu was compiled by NVRTC for sm_80 and sm_90 on the way; each case
 * prints the count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/graph.h"
#include "mltrain/graph_grad.h"
#include "mltrain/graph_parse.h"
#include "mltrain/jit.h"
#include "mt_test.h"
#include "mt_test_cudaemu.h"

#define NELEM(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

static mt_device *g_host, *g_emu;

static void open_devices(void) { mt_test_cudaemu_open(&g_host, &g_emu); }

/* ---------------------------------------------------------------- inputs */

/* The placeholders every expression may use. */
typedef struct input_def {
    const char *name;
    mt_dtype dt;
    int32_t ndim;
    int64_t dims[4];
    double lo, hi; /* uniform values; integers: floor */
} input_def;

static const input_def k_inputs[] = {
    {"x", MT_FLOAT32, 2, {6, 33}, -3, 3},      {"y", MT_FLOAT32, 2, {6, 33}, 0.1, 4},
    {"b", MT_FLOAT32, 1, {33}, -1, 1},         {"w", MT_FLOAT32, 2, {33, 10}, -0.5, 0.5},
    {"d", MT_FLOAT64, 2, {6, 33}, -3, 3},      {"h", MT_FLOAT16, 2, {6, 33}, -3, 3},
    {"bf", MT_BFLOAT16, 2, {6, 33}, -3, 3},    {"i", MT_INT32, 2, {6, 33}, -50, 50},
    {"u", MT_UINT8, 2, {6, 33}, 0, 255},       {"l", MT_INT64, 1, {6}, 0, 10},
    {"p", MT_FLOAT32, 2, {6, 10}, 0.01, 1},    {"img", MT_FLOAT32, 4, {2, 3, 9, 9}, -1, 1},
    {"k", MT_FLOAT32, 4, {4, 3, 3, 3}, -0.5, 0.5},
};
#define N_INPUTS NELEM(k_inputs)

typedef struct fixture {
    mt_graph *g;
    mt_var vars[N_INPUTS];
    mt_array host[N_INPUTS], emu[N_INPUTS];
} fixture;

static void fixture_init(fixture *f)
{
    open_devices();
    memset(f, 0, sizeof *f);
    MT_CHECK_OK(mt_graph_new(&f->g));
    for (int32_t i = 0; i < N_INPUTS; i++) {
        const input_def *d = &k_inputs[i];
        f->vars[i] = mt_graph_placeholder(f->g, d->name, d->dt, d->ndim, d->dims);
        int64_t n = 1;
        for (int32_t k = 0; k < d->ndim; k++) n *= d->dims[k];
        mt_array t = {0}, fl = {0}, src = {0};
        MT_CHECK_OK(mt_array_empty(&t, g_host, MT_FLOAT64, 1, &n, 'C'));
        MT_CHECK_OK(mt_array_random_uniform(&t, 100 + (uint64_t)i, 0, d->lo, d->hi));
        if (!mt_dtype_is_float(d->dt)) {
            /* floor first: float -> int casts truncate toward zero */
            mt_kexpr e;
            mt_kexpr_init(&e);
            MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_unary(&e, MT_SOP_FLOOR,
                                                               mt_kexpr_input(&e, 0, MT_FLOAT64))));
            MT_CHECK_OK(mt_array_empty(&fl, g_host, MT_FLOAT64, 1, &n, 'C'));
            const mt_array *in[1] = {&t};
            mt_array *out[1] = {&fl};
            MT_CHECK_OK(mt_elemwise(&e, 1, in, out, 0, NULL));
            mt_kexpr_deinit(&e);
        } else {
            mt_array_view(&fl, &t);
        }
        MT_CHECK_OK(mt_array_reshape(&src, &fl, d->ndim, d->dims));
        MT_CHECK_OK(mt_array_astype(&f->host[i], &src, d->dt));
        MT_CHECK_OK(mt_array_copy_to(&f->emu[i], &f->host[i], g_emu));
        mt_array_clear(&t);
        mt_array_clear(&fl);
        mt_array_clear(&src);
    }
}

static void fixture_deinit(fixture *f)
{
    for (int32_t i = 0; i < N_INPUTS; i++) {
        mt_array_clear(&f->host[i]);
        mt_array_clear(&f->emu[i]);
    }
    mt_graph_free(f->g);
}

/* ---------------------------------------------------------------- comparing */

static void tol_of(mt_dtype dt, double *atol, double *rtol)
{
    switch (dt) {
    case MT_FLOAT16: *atol = 2e-3, *rtol = 4e-3; break;
    case MT_BFLOAT16: *atol = 2e-2, *rtol = 2e-2; break;
    case MT_FLOAT32: *atol = 1e-5, *rtol = 1e-4; break;
    case MT_FLOAT64: *atol = 1e-12, *rtol = 1e-11; break;
    default: *atol = 0, *rtol = 0; break;
    }
}

static int64_t g_exact, g_close;

static void compare(const char *what, const mt_array *h, const mt_array *e)
{
    MT_CHECK_EQ_INT(h->dtype, e->dtype);
    MT_CHECK_EQ_INT(h->ndim, e->ndim);
    for (int32_t k = 0; k < h->ndim; k++) MT_CHECK_EQ_INT(h->dims[k], e->dims[k]);
    MT_CHECK(mt_array_device(e) == g_emu);
    int64_t n = mt_array_size(h);
    mt_array hd = {0}, ed = {0}, hc = {0}, ec = {0};
    /* bit patterns first (any dtype), values as float64 for the tolerance */
    size_t isz = mt_dtype_size(h->dtype), nb = (size_t)n * isz;
    unsigned char *ra = malloc(nb + 1), *rb = malloc(nb + 1);
    MT_CHECK_OK(mt_array_to_host(ra, nb, h));
    MT_CHECK_OK(mt_array_to_host(rb, nb, e));
    MT_CHECK_OK(mt_array_copy_to(&hc, h, g_host));
    MT_CHECK_OK(mt_array_copy_to(&ec, e, g_host));
    MT_CHECK_OK(mt_array_astype(&hd, &hc, MT_FLOAT64));
    MT_CHECK_OK(mt_array_astype(&ed, &ec, MT_FLOAT64));
    double *a = malloc((size_t)n * 8 + 8), *b = malloc((size_t)n * 8 + 8);
    MT_CHECK_OK(mt_array_to_host(a, (size_t)n * 8, &hd));
    MT_CHECK_OK(mt_array_to_host(b, (size_t)n * 8, &ed));
    double atol, rtol;
    tol_of(h->dtype, &atol, &rtol);
    bool fl = mt_dtype_is_float(h->dtype);
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(ra + (size_t)i * isz, rb + (size_t)i * isz, isz) == 0) {
            g_exact++;
            continue;
        }
        bool ok = fl && (isnan(a[i]) ? isnan(b[i]) : mt_test_close(b[i], a[i], atol, rtol));
        if (!ok)
            mt_test_fail(__FILE__, __LINE__, "%s (%s) [%lld]: host %.17g, cudaemu %.17g", what,
                         mt_dtype_name(h->dtype), (long long)i, a[i], b[i]);
        g_close++;
    }
    free(ra);
    free(rb);
    free(a);
    free(b);
    mt_array *all[] = {&hd, &ed, &hc, &ec};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
}

/* Compiles outs on both devices, calls them with every input, compares. */
static void run_vars(fixture *f, const char *what, int32_t nout, const mt_var *outs)
{
    MT_CHECK_OK(mt_graph_status(f->g));
    mt_function_options o;
    mt_function_options_init(&o);
    mt_function *fh = NULL, *fe = NULL;
    MT_CHECK_OK(mt_function_new(&fh, f->g, N_INPUTS, f->vars, nout, outs, 0, NULL, g_host, &o));
    mt_status st = mt_function_new(&fe, f->g, N_INPUTS, f->vars, nout, outs, 0, NULL, g_emu, &o);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "compiling '%s' for cudaemu:0: %s", what,
                     mt_last_error());
    const mt_array *hin[N_INPUTS], *ein[N_INPUTS];
    for (int32_t i = 0; i < N_INPUTS; i++) {
        hin[i] = &f->host[i];
        ein[i] = &f->emu[i];
    }
    mt_array *hr = calloc((size_t)nout, sizeof *hr), *er = calloc((size_t)nout, sizeof *er);
    MT_CHECK_OK(mt_function_call(fh, N_INPUTS, hin, nout, hr));
    st = mt_function_call(fe, N_INPUTS, ein, nout, er);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "running '%s' on cudaemu:0: %s", what, mt_last_error());
    for (int32_t j = 0; j < nout; j++) {
        char lbl[300];
        snprintf(lbl, sizeof lbl, "%s, output %d", what, (int)j);
        compare(lbl, &hr[j], &er[j]);
        mt_array_clear(&hr[j]);
        mt_array_clear(&er[j]);
    }
    free(hr);
    free(er);
    mt_function_free(fh);
    mt_function_free(fe);
}

/* Parses each expression and runs them in groups of up to 8 outputs per function (one function
 * per group keeps the number of kernels close to what a real program compiles). */
static void run_corpus(const char *const *exprs, int32_t n, int32_t group)
{
    fixture f;
    fixture_init(&f);
    g_exact = g_close = 0;
    for (int32_t k0 = 0; k0 < n; k0 += group) {
        mt_var outs[8];
        int32_t m = 0;
        char what[400] = "";
        for (int32_t k = k0; k < n && k < k0 + group; k++) {
            mt_parse_error err;
            mt_status st = mt_graph_parse(f.g, exprs[k], 0, NULL, NULL, &outs[m], &err);
            if (st != MT_OK)
                mt_test_fail(__FILE__, __LINE__, "parsing '%s': %d:%d: %s", exprs[k],
                             (int)err.line, (int)err.col, err.message);
            m++;
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s'%s'", k > k0 ? ", " : "",
                     exprs[k]);
        }
        run_vars(&f, what, m, outs);
    }
    printf("%lld elements bit-equal, %lld within tolerance\n", (long long)g_exact,
           (long long)g_close);
    fixture_deinit(&f);
    mt_test_cudaemu_report();
}

/* ---------------------------------------------------------------- the corpus */

MT_TEST(elementwise_functions)
{
    static const char *const e[] = {
        "abs(x)", "sign(x)", "-x", "exp(x)", "exp2(x)", "expm1(x)", "log(y)", "log2(y)",
        "log10(y)", "log1p(y)", "log1mexp(-y)", "sqrt(y)", "rsqrt(y)", "square(x)",
        "reciprocal(y)", "sin(x)", "cos(x)", "tan(x / 3)", "arcsin(x / 4)", "arccos(x / 4)",
        "arctan(x)", "sinh(x)", "cosh(x)", "tanh(x)", "erf(x)", "erfc(x)", "sigmoid(x)",
        "softplus(x)", "relu(x)", "floor(x)", "ceil(x)", "trunc(x)", "round(x)",
        "round(x, decimals=1)", "isnan(log(x))", "isinf(1 / x)", "isfinite(log(x))",
        "clip(x, -1, 2)"};
    run_corpus(e, NELEM(e), 8);
}

MT_TEST(operators_and_promotion)
{
    static const char *const e[] = {
        "x + y * b", "x - b", "x / y", "x // y", "x % y", "y ** x", "x @ w", "arctan2(x, y)",
        "maximum(x, y)", "minimum(x, b)", "logaddexp(x, y)", "x < y", "x >= b", "x == y",
        "(x > 0) & (y < 2)", "(x > 0) | (y < 2)", "(x > 0) ^ (y < 2)", "not (x > 0)",
        "x if x > y else y", "where(i > 0, x, -x)", "x * i", "d + x", "h * x", "h + h",
        "bf * bf", "i + u", "i // 7", "i % 7", "i ** 2", "~i", "i << 3", "i >> 2",
        "i & 12", "i | 3", "i ^ u", "u * u", "cast(x, int32)", "cast(d, float16)",
        "astype(i, bfloat16)", "cast(h, uint8)", "cast(x > 0, float32) * 2"};
    run_corpus(e, NELEM(e), 8);
}

MT_TEST(reductions_and_nnet)
{
    static const char *const e[] = {
        "sum(x)", "sum(x, axis=0)", "sum(x, axis=1, keepdims=True)", "mean(d, axis=1)",
        "prod(y / 2, axis=0)", "max(x, axis=1)", "min(h, axis=0)", "argmax(x, axis=1)",
        "argmin(x, axis=0)", "all(x > -2.5, axis=1)", "any(x > 2.9)", "var(x, axis=0)",
        "std(d, axis=1, ddof=1)", "logsumexp(x, axis=1)", "sum(i, axis=1)", "mean(h)",
        "softmax(x, axis=-1)", "logsoftmax(x @ w + b[:10], axis=1)",
        "crossentropy(p / sum(p, axis=1, keepdims=True), l)",
        "softmax_crossentropy(x @ w, l)", "sigmoid_crossentropy_logits(x, y > 2)",
        "binary_crossentropy(sigmoid(x), cast(y > 2, float32))",
        "max_pool2d(img, 2)", "avg_pool2d(img, 3, stride=2, pad=1)",
        "conv2d(img, k, stride=1, pad=1)", "relu(conv2d(img, k)) + 0.5",
        "one_hot(l, 10, dtype=float32)", "sum(exp(x - max(x, axis=1, keepdims=True)), axis=1)"};
    run_corpus(e, NELEM(e), 4);
}

MT_TEST(indexing_and_shapes)
{
    static const char *const e[] = {
        "x[:, 1:30:3] * 2", "x[::-1, 5]", "x.T @ x", "transpose(x) + 1", "reshape(x, (3, -1))",
        "flatten(img, 2)", "expand_dims(b, 0) + x", "concatenate([x, y], axis=1)",
        "stack([x, y], axis=0) * 3", "split(x, 3, axis=1)[1]", "take(x, l % 6, axis=0)",
        "set_subtensor(x[1:3, :4], y[1:3, :4] * 10)", "inc_subtensor(x[:, 0], b[:6])",
        "broadcast_to(b, (6, 33)) - x", "dimshuffle(b, 'x', 0) * y", "arange(0, 12, 0.5) * 2",
        "zeros_like(x) + ones((6, 33), dtype=float32)", "full((4, 5), 2.5) * 3"};
    run_corpus(e, NELEM(e), 6);
}

/* A training-style graph: an MLP cost and its gradients (softmax cross-entropy, ReLU, bias
 * broadcast, GEMMs with transposes, reductions of the backward pass). */
MT_TEST(mlp_cost_and_gradients)
{
    fixture f;
    fixture_init(&f);
    g_exact = g_close = 0;
    mt_var cost;
    mt_parse_error err;
    const char *text = "mean(softmax_crossentropy(relu(x @ w + b[:10]) * 2 - 0.1, l)) + "
                       "0.01 * sum(square(w))";
    if (mt_graph_parse(f.g, text, 0, NULL, NULL, &cost, &err) != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "parsing: %s", err.message);
    mt_var wrt[3] = {f.vars[0], f.vars[2], f.vars[3]}, grads[3];
    MT_CHECK_OK(mt_graph_grad(f.g, cost, 3, wrt, grads, NULL));
    mt_var outs[4] = {cost, grads[0], grads[1], grads[2]};
    run_vars(&f, "mlp cost and d/dx, d/db, d/dw", 4, outs);
    /* a convolutional cost too */
    const char *ctext = "mean(max_pool2d(relu(conv2d(img, k, pad=1)), 2) ** 2)";
    if (mt_graph_parse(f.g, ctext, 0, NULL, NULL, &cost, &err) != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "parsing: %s", err.message);
    mt_var cw[2] = {f.vars[11], f.vars[12]}, cg[2];
    MT_CHECK_OK(mt_graph_grad(f.g, cost, 2, cw, cg, NULL));
    mt_var couts[3] = {cost, cg[0], cg[1]};
    run_vars(&f, "conv cost and d/dimg, d/dk", 3, couts);
    printf("%lld elements bit-equal, %lld within tolerance\n", (long long)g_exact,
           (long long)g_close);
    fixture_deinit(&f);
    mt_test_cudaemu_report();
}

MT_TEST(random_draws)
{
    /* the same seed and counter give the same numbers on every backend */
    static const char *const e[] = {
        "uniform(-1, 2, size=(6, 33), dtype=float32) + x",
        "normal(0.5, 2.0, size=(6, 33), dtype=float64)",
        "binomial(1, 0.3, size=(6, 33), dtype=float32) * x",
        "uniform(size=(6, 33), dtype=float16)"};
    run_corpus(e, NELEM(e), 4);
}
