/* bench_train: one training step of mltrain against PyTorch (same model, batch, threads and
 * update rule), measured in the same run with interleaved rounds.
 *
 * Cases (--case, default all):
 *   mlp_big    MLP 784-1024-1024-10 (ReLU, softmax), batch 128, SGD + Momentum: GEMM-bound.
 *              Also times the step's eight GEMMs with cblas_sgemm in this process (forward 3,
 *              backward 5: no input gradient for the first layer): the bound the measured
 *              cblas rate allows (issue 4 target: step <= 1.15x that, and <= PyTorch's).
 *   mlp_small  MLP 784-100-10, batch 32: overhead-bound (target: >= 2x PyTorch's steps/s);
 *              its five GEMMs through cblas too, for reference.
 *   conv       the convnet of jobs/fashion_mnist_conv.yaml (two 5x5 conv + ReLU + 2x2 max
 *              pooling layers, softmax; weight decay; norm constraints), batch 64.
 *   lstm, gru  a recurrent net: the 784 inputs as 28 rows of 28 through an LSTM (or GRU) of
 *              128 units, its last state through a softmax, batch 64 (PyTorch: nn.LSTM /
 *              nn.GRU, torch_mlp.py "lstm:128"); loops (scan) with backpropagation through
 *              time.
 *
 * What is timed per step on the mltrain side ("SGD graph"): exactly what the SGD algorithm
 * (src/train/sgd.c) does per batch: the iterator's rows of the next shuffled batch
 * (mt_data_iter_rows), the gather into the batch arrays (mt_dataset_gather), the call of the
 * compiled training function (model from model.h, the default cost or the job's SumOfCosts,
 * mt_graph_grad, Pylearn2's Momentum update v = mu v - lr g, p = p + v, the model's norm
 * constraints, parameters and velocities as shared variables updated in place) and the read
 * of the cost. A second measurement drives the real train module: a job YAML (the same
 * model, SGD with Momentum, no monitoring dataset) run by mt_job_run with N1 and N2 batches;
 * (t(N2) - t(N1)) / (N2 - N1) is the time per batch of the whole loop (--no-job skips it).
 *
 * --script bench/theano_mlp.py --python <Theano's python> puts Theano (the best peer of
 * ../shared/research/peers.md; THEANO_BENCH_VARIANT picks its variant) in PyTorch's place,
 * rows and ratios then name Theano.
 *
 * PyTorch runs in a coprocess (bench/torch_mlp.py --serve, /usr/bin/python3, torch threads =
 * mltrain's thread count), so the process stays warm; each round runs a block of steps of
 * every implementation in turn (mltrain, cblas, PyTorch), after a short sleep so that
 * spinning worker threads of the previous block are asleep. A round's sample is the median
 * step of its block; ratios are the median over rounds of the per-round ratios.
 *
 * --device D runs the mltrain side on another device (e.g. cuda:0: parameters and the
 * compiled function on the GPU, batches gathered on the host and copied in, the cost read back
 * every step) and, for CUDA devices, PyTorch on the same GPU (torch_mlp.py's DEVICE argument:
 * the same host-side batches copied in, the loss read back every step, TF32 off); the cblas
 * row is a host reference and runs on the host device only. --compile-only times building the
 * function (graph, rewrites, kernel code generation and compilation: NVRTC on CUDA) and its
 * first step, then stops: run twice with the same MLTRAIN_CACHE_DIR, first empty, it gives
 * the cold compile and the warm-cache load time. --tf32 lets float32 products and convolutions
 * use TF32 tensor cores on both sides (MLTRAIN_CUDA_TF32=1 for mltrain; allow_tf32 for PyTorch,
 * its default for convolutions); without it both compute in float32.
 *
 * BENCH_PROFILE=1 compiles the mltrain function with profiling and prints
 * mt_function_print_profile after the rounds (profiling synchronizes after every step, so
 * the timed rows of such a run are slower). */
#include <cblas.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "train_floor.h"
#include "mltrain/config.h"
#include "mltrain/data.h"
#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"
#include "mltrain/model.h"
#include "mltrain/train.h"

#ifndef MT_BENCH_SRC_DIR
#define MT_BENCH_SRC_DIR "bench"
#endif
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---------------------------------------------------------------- cases */

#define RNN_YAML(KIND)                                                                             \
    "!obj:MLP { nvis: 784, layers: [\n"                                                            \
    "  !obj:" KIND " { layer_name: 'r', dim: 128, n_steps: 28, irange: 0.1 },\n"                    \
    "  !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] }"

typedef struct train_case {
    const char *name;
    const char *title;
    const char *model_yaml; /* the model component (mltrain) */
    const char *torch_spec; /* torch_mlp.py MODEL argument */
    int64_t batch;
    int64_t dim;
    bool conv;          /* topology 28x28x1, SumOfCosts with WeightDecay */
    int job_n1, job_n2; /* batches of the two job runs */
    int n_layers;       /* MLPs: dense layers (the cblas reference), 0 for the convnet */
    int64_t sizes[4];   /* MLPs: layer sizes, input first */
} train_case;

#define MLP_BIG_YAML                                                                               \
    "!obj:MLP { nvis: 784, layers: [\n"                                                            \
    "  !obj:RectifiedLinear { layer_name: 'h0', dim: 1024, irange: 0.05 },\n"                      \
    "  !obj:RectifiedLinear { layer_name: 'h1', dim: 1024, irange: 0.05 },\n"                      \
    "  !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] }"
#define MLP_SMALL_YAML                                                                             \
    "!obj:MLP { nvis: 784, layers: [\n"                                                            \
    "  !obj:RectifiedLinear { layer_name: 'h0', dim: 100, irange: 0.05 },\n"                       \
    "  !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] }"
#define CONV_YAML                                                                                  \
    "!obj:MLP {\n"                                                                                 \
    "  input_space: !obj:Conv2DSpace { shape: [28, 28], num_channels: 1 },\n"                      \
    "  layers: [\n"                                                                                \
    "    !obj:ConvRectifiedLinear { layer_name: 'h2', output_channels: 32, irange: 0.05,\n"        \
    "      kernel_shape: [5, 5], pool_shape: [2, 2], pool_stride: [2, 2],\n"                       \
    "      max_kernel_norm: 1.9365 },\n"                                                           \
    "    !obj:ConvRectifiedLinear { layer_name: 'h3', output_channels: 64, irange: 0.05,\n"        \
    "      kernel_shape: [5, 5], pool_shape: [2, 2], pool_stride: [2, 2],\n"                       \
    "      max_kernel_norm: 1.9365 },\n"                                                           \
    "    !obj:Softmax { layer_name: 'y', n_classes: 10, istdev: 0.05, max_col_norm: 1.9365 }\n"    \
    "  ] }"

static const train_case cases[] = {
    {"mlp_big",
     "MLP 784-1024-1024-10, batch 128",
     MLP_BIG_YAML,
     "784,1024,1024,10",
     128,
     784,
     false,
     40,
     240,
     3,
     {784, 1024, 1024, 10}},
    {"mlp_small",
     "MLP 784-100-10, batch 32",
     MLP_SMALL_YAML,
     "784,100,10",
     32,
     784,
     false,
     500,
     6500,
     2,
     {784, 100, 10, 0}},
    {"conv",
     "convnet of jobs/fashion_mnist_conv.yaml, batch 64",
     CONV_YAML,
     "conv",
     64,
     784,
     true,
     10,
     60,
     0,
     {0, 0, 0, 0}},
    {"lstm",
     "LSTM 28x28 rows, 128 units, softmax, batch 64",
     RNN_YAML("LSTM"),
     "lstm:128",
     64,
     784,
     false,
     4,
     24,
     0,
     {0, 0, 0, 0}},
    {"gru",
     "GRU 28x28 rows, 128 units, softmax, batch 64",
     RNN_YAML("GRU"),
     "gru:128",
     64,
     784,
     false,
     4,
     24,
     0,
     {0, 0, 0, 0}},
};

typedef struct opts {
    const char *only;
    int rounds, steps, threads;
    bool torch, job, diag, compile_only;
    const char *python, *script;
    const char *device;       /* mltrain's device (--device, default host) */
    const char *torch_device; /* PyTorch's: "cpu", or the same "cuda:N" */
} opts;

/* ---------------------------------------------------------------- mltrain: the SGD graph */

typedef struct sgd_bench {
    mt_device *dev;
    mt_cfg_registry *reg;
    mt_model *model;
    mt_dataset *data;
    mt_graph *g;
    mt_model_graph mg;
    mt_function *f;
    mt_array *vel;
    mt_array lr, mom, X, y;
    mt_data_iter it;
    int64_t *rows;
    int64_t epoch, b;
    double last_cost;
} sgd_bench;

static mt_var build_cost(sgd_bench *s, const train_case *tc)
{
    mt_var cost = MT_VAR_NONE;
    if (!tc->conv) {
        BENCH_CHECK(mt_model_default_cost(&s->mg, NULL, &cost));
        return cost;
    }
    mt_cost *terms[2] = {NULL, NULL}, *sum = NULL;
    const double coeffs[3] = {5e-5, 5e-5, 5e-5};
    BENCH_CHECK(mt_cost_method(&terms[0], "cost_from_X"));
    BENCH_CHECK(mt_cost_weight_decay(&terms[1], false, 3, coeffs, NULL));
    BENCH_CHECK(mt_cost_sum(&sum, 2, NULL, (const mt_cost *const *)terms));
    BENCH_CHECK(mt_cost_expr(sum, &s->mg, &cost));
    mt_cost_free(terms[0]);
    mt_cost_free(terms[1]);
    mt_cost_free(sum);
    return cost;
}

/* Momentum updates as rules.c builds them, then the model's norm constraints. */
static void build_updates(sgd_bench *s, mt_var cost, mt_update *ups, mt_var *vel_vars, mt_var lr,
                          mt_var mom)
{
    mt_graph *g = s->g;
    int32_t np = s->mg.n_params;
    mt_var *grads = bench_xmalloc((size_t)np * sizeof(*grads));
    mt_var *values = bench_xmalloc((size_t)np * sizeof(*values));
    mt_grad_options go;
    mt_grad_options_init(&go);
    go.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    BENCH_CHECK(mt_graph_grad(g, cost, np, s->mg.params, grads, &go));
    for (int32_t i = 0; i < np; i++) {
        const mt_type *t = mt_graph_type(g, s->mg.params[i]);
        char nm[128];
        snprintf(nm, sizeof(nm), "vel_%s", mt_model_param_const(s->model, i)->name);
        vel_vars[i] = mt_graph_placeholder(g, nm, MT_FLOAT32, t->ndim, t->shape);
        mt_var v_new =
            mt_graph_sub(g, mt_graph_mul(g, mom, vel_vars[i]), mt_graph_mul(g, lr, grads[i]));
        values[i] = mt_graph_add(g, s->mg.params[i], v_new);
        ups[np + i] = (mt_update){vel_vars[i], v_new};
    }
    BENCH_CHECK(mt_model_constrain(&s->mg, values));
    for (int32_t i = 0; i < np; i++)
        ups[i] = (mt_update){s->mg.params[i], values[i]};
    if (mt_graph_status(g)) bench_fail("graph: %s", mt_graph_last_error(g));
    mt_free(grads);
    mt_free(values);
}

static void sgd_bench_init(sgd_bench *s, const train_case *tc, mt_device *dev, bool profile,
                           const char *disable)
{
    memset(s, 0, sizeof(*s));
    s->dev = dev;
    BENCH_CHECK(mt_cfg_registry_new(&s->reg));
    BENCH_CHECK(mt_model_register_components(s->reg));
    BENCH_CHECK(mt_model_from_yaml(&s->model, s->reg, tc->model_yaml));
    int64_t n = 64 * tc->batch, topo[3] = {28, 28, 1};
    float *X = bench_xmalloc((size_t)(n * tc->dim) * sizeof(float));
    int64_t *lab = bench_xmalloc((size_t)n * sizeof(int64_t));
    bench_fill_uniform_f32(X, (size_t)(n * tc->dim), 11, 0.0f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        lab[i] = (i * 7919) % 10;
    BENCH_CHECK(mt_dataset_from_memory(&s->data, "bench", n, tc->dim, X, tc->conv ? topo : NULL,
                                       lab, 10, NULL, 0));
    mt_free(X);
    mt_free(lab);
    mt_dataset_info info;
    mt_dataset_get_info(s->data, &info);
    BENCH_CHECK(mt_graph_new(&s->g));
    mt_graph_set_seed(s->g, 5);
    BENCH_CHECK(mt_model_graph_init(&s->mg, s->model, s->g, &info, -1, 5));
    mt_var cost = build_cost(s, tc);
    int32_t np = s->mg.n_params;
    mt_update *ups = bench_xmalloc((size_t)(2 * np) * sizeof(*ups));
    mt_var *vel_vars = bench_xmalloc((size_t)np * sizeof(*vel_vars));
    mt_var lr = mt_graph_placeholder(s->g, "learning_rate", MT_FLOAT32, 0, NULL);
    mt_var mom = mt_graph_placeholder(s->g, "momentum", MT_FLOAT32, 0, NULL);
    build_updates(s, cost, ups, vel_vars, lr, mom);
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.profile = profile;
    /* disable: comma-separated rewrites to switch off (the diagnostic row). */
    char dis_buf[256];
    const char *dis[8];
    if (disable && *disable) {
        snprintf(dis_buf, sizeof(dis_buf), "%s", disable);
        for (char *tok = strtok(dis_buf, ","); tok && fo.n_disabled_rewrites < 8;
             tok = strtok(NULL, ","))
            dis[fo.n_disabled_rewrites++] = tok;
        fo.disabled_rewrites = dis;
    }
    mt_var in[2] = {s->mg.X, s->mg.y};
    BENCH_CHECK(mt_function_new(&s->f, s->g, 2, in, 1, &cost, 2 * np, ups, dev, &fo));
    float lrv = 0.01f, mv = 0.5f;
    BENCH_CHECK(mt_array_from_host(&s->lr, dev, MT_FLOAT32, 0, NULL, &lrv));
    BENCH_CHECK(mt_array_from_host(&s->mom, dev, MT_FLOAT32, 0, NULL, &mv));
    BENCH_CHECK(mt_function_set_shared(s->f, lr, &s->lr));
    BENCH_CHECK(mt_function_set_shared(s->f, mom, &s->mom));
    s->vel = bench_xmalloc((size_t)np * sizeof(*s->vel));
    for (int32_t i = 0; i < np; i++) {
        mt_model_param *p = mt_model_param_at(s->model, i);
        BENCH_CHECK(mt_function_set_shared(s->f, s->mg.params[i], &p->value));
        memset(&s->vel[i], 0, sizeof(s->vel[i]));
        BENCH_CHECK(mt_array_zeros(&s->vel[i], dev, MT_FLOAT32, p->value.ndim, p->value.dims));
        BENCH_CHECK(mt_function_set_shared(s->f, vel_vars[i], &s->vel[i]));
    }
    mt_free(ups);
    mt_free(vel_vars);
    BENCH_CHECK(
        mt_data_iter_init(&s->it, s->data, MT_ITER_SHUFFLED_SEQUENTIAL, tc->batch, 0, 2012));
    s->rows = bench_xmalloc((size_t)tc->batch * sizeof(int64_t));
}

/* One SGD step: rows of the next batch, gather, call, read the cost. */
static void sgd_bench_step(sgd_bench *s)
{
    if (s->b == s->it.n_batches) {
        s->b = 0;
        s->epoch++;
    }
    int64_t n = 0;
    BENCH_CHECK(mt_data_iter_rows(&s->it, s->epoch, s->b++, s->rows, &n));
    BENCH_CHECK(mt_dataset_gather(s->data, s->rows, n, &s->X, &s->y));
    const mt_array *in[2] = {&s->X, &s->y};
    mt_array out;
    memset(&out, 0, sizeof(out));
    BENCH_CHECK(mt_function_call(s->f, 2, in, 1, &out));
    float c = 0;
    BENCH_CHECK(mt_array_to_host(&c, sizeof(c), &out));
    s->last_cost = c;
    mt_array_clear(&out);
}

static void sgd_bench_free(sgd_bench *s)
{
    for (int32_t i = 0; s->vel && i < s->mg.n_params; i++)
        mt_array_clear(&s->vel[i]);
    mt_free(s->vel);
    mt_function_free(s->f);
    mt_model_graph_clear(&s->mg);
    mt_graph_free(s->g);
    mt_array_clear(&s->lr);
    mt_array_clear(&s->mom);
    mt_array_clear(&s->X);
    mt_array_clear(&s->y);
    mt_data_iter_clear(&s->it);
    mt_free(s->rows);
    mt_dataset_free(s->data);
    mt_model_free(s->model);
    mt_cfg_registry_free(s->reg);
}

/* ---------------------------------------------------------------- cblas: the step's GEMMs */

typedef struct gemm_call {
    int m, n, k;
    bool ta, tb;
    float *a, *b, *c;
} gemm_call;

typedef struct gemm_ref {
    int n;
    gemm_call g[8];
    double flops;
} gemm_ref;

/* The GEMMs of an MLP step with nl layers of sizes s[0..nl] and batch B (row-major, W [in,
 * out]): forward h_l = h_{l-1} W_l; backward dW_l = h_{l-1}^T d_l, d_{l-1} = d_l W_l^T
 * (l > 1: no input gradient for the first layer). 3 layers: 8 GEMMs. */
static void gemm_ref_init(gemm_ref *r, const int64_t *s, int nl, int64_t B)
{
    memset(r, 0, sizeof(*r));
    for (int l = 0; l < nl; l++) {
        int in = (int)s[l], out = (int)s[l + 1], b = (int)B;
        r->g[r->n++] = (gemm_call){b, out, in, false, false, NULL, NULL, NULL};
        r->g[r->n++] = (gemm_call){in, out, b, true, false, NULL, NULL, NULL};
        if (l > 0) r->g[r->n++] = (gemm_call){b, in, out, false, true, NULL, NULL, NULL};
    }
    for (int i = 0; i < r->n; i++) {
        size_t m = (size_t)r->g[i].m, n = (size_t)r->g[i].n, k = (size_t)r->g[i].k;
        r->g[i].a = bench_xmalloc(m * k * sizeof(float));
        r->g[i].b = bench_xmalloc(k * n * sizeof(float));
        r->g[i].c = bench_xmalloc(m * n * sizeof(float));
        bench_fill_uniform_f32(r->g[i].a, m * k, 100 + (uint64_t)i, -1, 1);
        bench_fill_uniform_f32(r->g[i].b, k * n, 200 + (uint64_t)i, -1, 1);
        memset(r->g[i].c, 0, m * n * sizeof(float));
        r->flops += 2.0 * (double)m * (double)n * (double)k;
    }
}

static void gemm_ref_step(const gemm_ref *r)
{
    for (int i = 0; i < r->n; i++) {
        int m = r->g[i].m, n = r->g[i].n, k = r->g[i].k;
        cblas_sgemm(CblasRowMajor, r->g[i].ta ? CblasTrans : CblasNoTrans,
                    r->g[i].tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, r->g[i].a,
                    r->g[i].ta ? m : k, r->g[i].b, r->g[i].tb ? k : n, 0.0f, r->g[i].c, n);
    }
}

static void gemm_ref_free(gemm_ref *r)
{
    for (int i = 0; i < r->n; i++) {
        mt_free(r->g[i].a);
        mt_free(r->g[i].b);
        mt_free(r->g[i].c);
    }
}

/* ---------------------------------------------------------------- PyTorch coprocess */

typedef struct torch_proc {
    pid_t pid;
    FILE *in, *out;   /* we write to in, read from out */
    char version[256];
    const char *peer; /* "PyTorch", or "Theano" for bench/theano_mlp.py (--script) */
} torch_proc;

static bool torch_start(torch_proc *t, const opts *o, const train_case *tc)
{
    int to_child[2], from_child[2];
    memset(t, 0, sizeof(*t));
    if (pipe(to_child) || pipe(from_child)) bench_fail("pipe: %s", strerror(errno));
    char batch[32], thr[32];
    snprintf(batch, sizeof(batch), "%lld", (long long)tc->batch);
    snprintf(thr, sizeof(thr), "%d", o->threads);
    fflush(stdout);
    t->pid = fork();
    if (t->pid < 0) bench_fail("fork: %s", strerror(errno));
    if (t->pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        /* Torch's BLAS (Debian: OpenBLAS, pthreads) gets the same thread count. */
        setenv("OPENBLAS_NUM_THREADS", thr, 1);
        setenv("OMP_NUM_THREADS", thr, 1);
        execl(o->python, o->python, o->script, "--serve", tc->torch_spec, batch, thr,
              o->torch_device, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", o->python, strerror(errno));
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    t->in = fdopen(to_child[1], "w");
    t->out = fdopen(from_child[0], "r");
    char line[256];
    if (!t->out || !fgets(line, sizeof(line), t->out) || strncmp(line, "ready", 5)) {
        fprintf(stderr, "bench_train: the PyTorch coprocess (%s %s) did not start\n", o->python,
                o->script);
        return false;
    }
    line[strcspn(line, "\n")] = 0;
    snprintf(t->version, sizeof(t->version), "%s", line + 6);
    t->peer = strncmp(t->version, "theano", 6) == 0 ? "Theano" : "PyTorch";
    return true;
}

/* Runs n steps in the coprocess; fills ms[0..n). */
static void torch_run(torch_proc *t, int n, double *ms)
{
    fprintf(t->in, "run %d\n", n);
    fflush(t->in);
    size_t cap = (size_t)n * 24 + 64;
    char *line = bench_xmalloc(cap);
    if (!fgets(line, (int)cap, t->out) || strncmp(line, "times ", 6))
        bench_fail("PyTorch coprocess: unexpected reply");
    char *p = line + 6;
    for (int i = 0; i < n; i++) {
        char *end;
        ms[i] = strtod(p, &end);
        if (end == p) bench_fail("PyTorch coprocess: %d of %d times", i, n);
        p = end;
    }
    mt_free(line);
}

static void torch_stop(torch_proc *t)
{
    if (t->in) fclose(t->in);
    if (t->out) fclose(t->out);
    if (t->pid > 0) waitpid(t->pid, NULL, 0);
    memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------- mt_job_run per batch */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) bench_fail("cannot write %s", path);
}

/* Seconds of mt_job_load + mt_job_run of the case's model trained by SGD + Momentum for n
 * batches of Fashion-MNIST rows (no monitoring dataset, nothing saved). */
static double job_seconds(const train_case *tc, const char *dir, const char *device, int n)
{
    char path[512], text[8192];
    snprintf(path, sizeof(path), "%s/%s_%d.yaml", dir, tc->name, n);
    snprintf(text, sizeof(text),
             "!obj:Train {\n"
             "  dataset: !obj:FashionMNIST { which_set: 'train', start: 0, stop: %lld,\n"
             "                               path: '" FASHION_DIR "' },\n"
             "  model: %s,\n"
             "  algorithm: !obj:SGD {\n"
             "    batch_size: %lld, learning_rate: 0.01, batches_per_iter: %d,\n"
             "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"
             "    %s\n"
             "    termination_criterion: !obj:EpochCounter { max_epochs: 1 } },\n"
             "}\n",
             (long long)(64 * tc->batch), tc->model_yaml, (long long)tc->batch, n,
             tc->conv ? "cost: !obj:SumOfCosts { costs: [ !obj:MethodCost { method: "
                        "'cost_from_X' }, !obj:WeightDecay { coeffs: [ .00005, .00005, "
                        ".00005 ] } ] },"
                      : "");
    write_text(path, text);
    mt_train_options o;
    mt_train_options_init(&o);
    o.monitor_log = false;
    o.handle_signals = false;
    o.run_dir = dir;
    o.device = device;
    double t0 = bench_now();
    mt_job *job = NULL;
    BENCH_CHECK(mt_job_load(&job, path, &o));
    mt_train_result r;
    BENCH_CHECK(mt_job_run(job, &r));
    mt_job_free(job);
    if (r.batches_seen != n)
        bench_fail("job ran %lld batches, expected %d", (long long)r.batches_seen, n);
    return bench_now() - t0;
}

/* ---------------------------------------------------------------- rounds */

static void pause_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

enum { IMPL_MT, IMPL_NODUP, IMPL_TORCH, IMPL_GEMM, IMPL_FLOOR, IMPL_JOB, IMPL_COUNT };

/* The rewrites that replace nodes in these graphs: with them off, the fused schedule has no
 * duplicated forward/backward chain (see the diagnostic row in print_rows). */
#define NODUP_DISABLE "gemm_bias,div_to_recip,constant_fold,mul_one,gemm_transpose"

static void finish_case(bench_case *c)
{
    c->median = bench_median(c->samples, c->nsamples);
    c->min = c->max = c->nsamples ? c->samples[0] : 0;
    for (int i = 1; i < c->nsamples; i++) {
        if (c->samples[i] < c->min) c->min = c->samples[i];
        if (c->samples[i] > c->max) c->max = c->samples[i];
    }
}

static bool have_fashion(void)
{
    return access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0;
}

static void print_rows(const train_case *tc, const opts *o, bench_case *c, bool *on,
                       const gemm_ref *gr, const torch_proc *tp)
{
    char thr[64], ratio[256], impl[512];
    if (strcmp(o->device, "host"))
        snprintf(thr, sizeof(thr), "%s (host %d)", o->device, o->threads);
    else
        snprintf(thr, sizeof(thr), "%d", o->threads);
    double flops = on[IMPL_GEMM] ? gr->flops : 0;
    char *p = ratio;
    p[0] = 0;
    if (on[IMPL_TORCH])
        p += sprintf(p, "**%.2fx** %s's steps/s",
                     bench_paired_ratio(&c[IMPL_MT], 1, &c[IMPL_TORCH], 1), tp->peer);
    if (on[IMPL_GEMM])
        sprintf(p, "%s**%.2fx** the cblas time of its GEMMs", p != ratio ? "; " : "",
                1.0 / bench_paired_ratio(&c[IMPL_MT], 1, &c[IMPL_GEMM], 1));
    bench_table_row(tc->name, "mltrain SGD step (gather + compiled fn), FAST_RUN", thr, &c[IMPL_MT],
                    flops, "GFLOP/s", ratio);
    if (on[IMPL_NODUP]) {
        p = ratio;
        p[0] = 0;
        if (on[IMPL_TORCH])
            p += sprintf(p, "%.2fx %s's steps/s",
                         bench_paired_ratio(&c[IMPL_NODUP], 1, &c[IMPL_TORCH], 1), tp->peer);
        if (on[IMPL_GEMM])
            p += sprintf(p, "%s%.2fx the cblas time", p != ratio ? "; " : "",
                         1.0 / bench_paired_ratio(&c[IMPL_NODUP], 1, &c[IMPL_GEMM], 1));
        sprintf(p, "%s%.2fx the default step's speed", p != ratio ? "; " : "",
                bench_paired_ratio(&c[IMPL_NODUP], 1, &c[IMPL_MT], 1));
        bench_table_row(tc->name,
                        "diagnostic: the same with the node-replacing rewrites off (no "
                        "duplicated chain)",
                        thr, &c[IMPL_NODUP], flops, "GFLOP/s", ratio);
    }
    if (on[IMPL_JOB]) {
        snprintf(ratio, sizeof(ratio), "**%.2fx** %s's steps/s",
                 on[IMPL_TORCH] ? bench_paired_ratio(&c[IMPL_JOB], 1, &c[IMPL_TORCH], 1) : 0,
                 on[IMPL_TORCH] ? tp->peer : "PyTorch");
        snprintf(impl, sizeof(impl), "mltrain mt_job_run, per batch ((t(%d)-t(%d))/%d)", tc->job_n2,
                 tc->job_n1, tc->job_n2 - tc->job_n1);
        bench_table_row(tc->name, impl, thr, &c[IMPL_JOB], flops, "GFLOP/s",
                        on[IMPL_TORCH] ? ratio : NULL);
    }
    if (on[IMPL_TORCH]) {
        if (!strcmp(tp->peer, "Theano"))
            snprintf(impl, sizeof(impl), "Theano: %s", tp->version);
        else
            snprintf(impl, sizeof(impl), "PyTorch %s (eager, SGD momentum, %s)", tp->version,
                     o->torch_device);
        bench_table_row(tc->name, impl, thr, &c[IMPL_TORCH], flops, "GFLOP/s", "reference");
    }
    if (on[IMPL_GEMM]) {
        snprintf(impl, sizeof(impl), "cblas_sgemm: the step's %d GEMMs (%.3f GFLOP)", gr->n,
                 gr->flops / 1e9);
        bench_table_row(tc->name, impl, "OpenBLAS", &c[IMPL_GEMM], gr->flops, "GFLOP/s", "bound");
    }
    if (on[IMPL_FLOOR]) {
        p = ratio;
        p[0] = 0;
        if (on[IMPL_TORCH])
            p += sprintf(p, "%.2fx %s's steps/s",
                         bench_paired_ratio(&c[IMPL_FLOOR], 1, &c[IMPL_TORCH], 1), tp->peer);
        sprintf(p, "%smltrain takes %.2fx its time", p != ratio ? "; " : "",
                1.0 / bench_paired_ratio(&c[IMPL_MT], 1, &c[IMPL_FLOOR], 1));
        bench_table_row(tc->name,
                        "floor: the same step hand-written in C (gather, cblas, fused loops)",
                        thr, &c[IMPL_FLOOR], flops, "GFLOP/s", ratio);
    }
}

/* Everything one case measures and holds. */
typedef struct case_run {
    const train_case *tc;
    const opts *o;
    sgd_bench sb, sb_nodup;
    gemm_ref gr;
    train_floor *floor;
    torch_proc tp;
    char dir[64]; /* job files */
    bool on[IMPL_COUNT];
    bench_case c[IMPL_COUNT];
    double *ms;
} case_run;

/* One round: a block of steps of every implementation, each after a pause. */
static void one_round(case_run *cr, int r)
{
    const opts *o = cr->o;
    const train_case *tc = cr->tc;
    bench_case *c = cr->c;
    pause_ms(300);
    for (int i = 0; i < o->steps; i++) {
        double s0 = bench_now();
        sgd_bench_step(&cr->sb);
        cr->ms[i] = bench_now() - s0;
    }
    c[IMPL_MT].samples[c[IMPL_MT].nsamples++] = bench_median(cr->ms, o->steps);
    if (cr->on[IMPL_NODUP]) {
        pause_ms(300);
        for (int i = 0; i < o->steps; i++) {
            double s0 = bench_now();
            sgd_bench_step(&cr->sb_nodup);
            cr->ms[i] = bench_now() - s0;
        }
        c[IMPL_NODUP].samples[c[IMPL_NODUP].nsamples++] = bench_median(cr->ms, o->steps);
    }
    if (cr->on[IMPL_GEMM]) {
        pause_ms(300);
        for (int i = 0; i < o->steps; i++) {
            double s0 = bench_now();
            gemm_ref_step(&cr->gr);
            cr->ms[i] = bench_now() - s0;
        }
        c[IMPL_GEMM].samples[c[IMPL_GEMM].nsamples++] = bench_median(cr->ms, o->steps);
    }
    if (cr->on[IMPL_FLOOR]) {
        pause_ms(300);
        for (int i = 0; i < o->steps; i++) {
            double s0 = bench_now();
            (void)train_floor_step(cr->floor);
            cr->ms[i] = bench_now() - s0;
        }
        c[IMPL_FLOOR].samples[c[IMPL_FLOOR].nsamples++] = bench_median(cr->ms, o->steps);
    }
    if (cr->on[IMPL_TORCH]) {
        pause_ms(300);
        torch_run(&cr->tp, o->steps, cr->ms);
        c[IMPL_TORCH].samples[c[IMPL_TORCH].nsamples++] = bench_median(cr->ms, o->steps) / 1e3;
    }
    if (cr->on[IMPL_JOB]) {
        pause_ms(300);
        double a = job_seconds(tc, cr->dir, o->device, tc->job_n1),
               b = job_seconds(tc, cr->dir, o->device, tc->job_n2);
        c[IMPL_JOB].samples[c[IMPL_JOB].nsamples++] = (b - a) / (tc->job_n2 - tc->job_n1);
    }
    static const char *const nm[IMPL_COUNT] = {"mltrain", "no-dup", "torch", "cblas", "floor",
                                               "job"};
    printf("round %d:", r + 1);
    for (int k = 0; k < IMPL_COUNT; k++)
        if (cr->on[k]) printf(" %s %.3f ms", nm[k], c[k].samples[r] * 1e3);
    printf("\n");
    fflush(stdout);
}

/* BENCH_PRINT: the schedule; BENCH_PROFILE: the per-step profile. */
static void print_function(const mt_function *f, bool profile)
{
    mt_strbuf pb;
    mt_strbuf_init(&pb);
    BENCH_CHECK(profile ? mt_function_print_profile(f, &pb) : mt_function_print(f, &pb));
    printf("%s\n", pb.data);
    mt_strbuf_deinit(&pb);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void setup_case(case_run *cr, mt_device *dev, bool profile)
{
    const train_case *tc = cr->tc;
    double t0 = bench_now();
    sgd_bench_init(&cr->sb, tc, dev, profile, NULL);
    double t1 = bench_now();
    sgd_bench_step(&cr->sb);
    double t2 = bench_now();
    mt_function_stats fs;
    mt_function_get_stats(cr->sb.f, &fs);
    printf("mltrain: function compiled + first step %.1f ms (model, graph and function %.1f ms, "
           "first step %.1f ms) on %s; %d graph nodes, %d steps (%d fused kernels)\n",
           (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, mt_device_name(dev), (int)fs.n_nodes,
           (int)fs.n_steps, (int)fs.n_fused);
    if (cr->o->compile_only) {
        fflush(stdout);
        return;
    }
    if (getenv("BENCH_PRINT")) print_function(cr->sb.f, false);
    for (int i = 0; i < 5; i++)
        sgd_bench_step(&cr->sb);
    cr->on[IMPL_MT] = true;
    if (cr->o->diag) {
        sgd_bench_init(&cr->sb_nodup, tc, dev, profile, NODUP_DISABLE);
        for (int i = 0; i < 6; i++)
            sgd_bench_step(&cr->sb_nodup);
        mt_function_get_stats(cr->sb_nodup.f, &fs);
        printf("diagnostic: with the rewrites %s off: %d steps (%d fused kernels)\n", NODUP_DISABLE,
               (int)fs.n_steps, (int)fs.n_fused);
        cr->on[IMPL_NODUP] = true;
    }
    cr->on[IMPL_GEMM] = tc->n_layers > 0 && !strcmp(cr->o->device, "host");
    if (cr->on[IMPL_GEMM]) {
        gemm_ref_init(&cr->gr, tc->sizes, tc->n_layers, tc->batch);
        gemm_ref_step(&cr->gr);
        cr->floor = train_floor_new(tc->sizes, tc->n_layers, tc->batch, 64 * tc->batch);
        for (int i = 0; cr->floor && i < 5; i++)
            (void)train_floor_step(cr->floor);
        cr->on[IMPL_FLOOR] = cr->floor != NULL;
    }
    if (cr->o->torch) cr->on[IMPL_TORCH] = torch_start(&cr->tp, cr->o, tc);
    snprintf(cr->dir, sizeof(cr->dir), "/tmp/bench_train_XXXXXX");
    if (cr->o->job && have_fashion() && mkdtemp(cr->dir)) cr->on[IMPL_JOB] = true;
    for (int k = 0; k < IMPL_COUNT; k++)
        cr->c[k].samples = bench_xmalloc((size_t)cr->o->rounds * sizeof(double));
    cr->ms = bench_xmalloc((size_t)cr->o->steps * sizeof(double));
}

static void run_case(const train_case *tc, const opts *o, mt_device *dev)
{
    bool profile = getenv("BENCH_PROFILE") != NULL;
    printf("### %s\n\n", tc->title);
    fflush(stdout);
    case_run *cr = bench_xmalloc(sizeof(*cr));
    memset(cr, 0, sizeof(*cr));
    cr->tc = tc;
    cr->o = o;
    setup_case(cr, dev, profile);
    if (o->compile_only) {
        printf("\n");
        sgd_bench_free(&cr->sb);
        mt_free(cr);
        return;
    }
    for (int r = 0; r < o->rounds; r++)
        one_round(cr, r);
    for (int k = 0; k < IMPL_COUNT; k++)
        if (cr->on[k]) finish_case(&cr->c[k]);
    printf("last cost %.4f\n\n", cr->sb.last_cost);
    bench_table_header();
    print_rows(tc, o, cr->c, cr->on, &cr->gr, &cr->tp);
    printf("\n");
    if (profile) {
        print_function(cr->sb.f, true);
        if (cr->on[IMPL_NODUP]) {
            printf("diagnostic function (rewrites %s off):\n", NODUP_DISABLE);
            print_function(cr->sb_nodup.f, true);
        }
    }
    fflush(stdout);
    if (cr->on[IMPL_JOB] && nftw(cr->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "bench_train: could not remove %s\n", cr->dir);
    torch_stop(&cr->tp);
    for (int k = 0; k < IMPL_COUNT; k++)
        bench_case_free(&cr->c[k]);
    mt_free(cr->ms);
    gemm_ref_free(&cr->gr);
    train_floor_free(cr->floor);
    sgd_bench_free(&cr->sb);
    if (cr->on[IMPL_NODUP]) sgd_bench_free(&cr->sb_nodup);
    mt_free(cr);
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_train [--case mlp_big|mlp_small|conv|lstm|gru|all] [--rounds R] [--steps S]\n"
            "                   [--threads T] [--no-torch] [--no-job] [--no-diag]\n"
            "                   [--device host|cuda:N|...] [--compile-only] [--tf32]\n"
            "                   [--python PATH]\n"
            "                   [--script bench/torch_mlp.py]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    opts o = {.only = "all",
              .rounds = 7,
              .steps = 30,
              .torch = true,
              .job = true,
              .diag = true,
              .python = "/usr/bin/python3",
              .script = MT_BENCH_SRC_DIR "/torch_mlp.py",
              .device = "host",
              .torch_device = "cpu"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-torch"))
            o.torch = false;
        else if (!strcmp(a, "--no-job"))
            o.job = false;
        else if (!strcmp(a, "--no-diag"))
            o.diag = false;
        else if (!strcmp(a, "--compile-only"))
            o.compile_only = true;
        else if (!strcmp(a, "--tf32")) /* read by the CUDA device's open and torch_mlp.py */
            setenv("MLTRAIN_CUDA_TF32", "1", 1);
        else if (!v)
            usage();
        else if (!strcmp(a, "--case"))
            o.only = v, i++;
        else if (!strcmp(a, "--rounds"))
            o.rounds = atoi(v), i++;
        else if (!strcmp(a, "--steps"))
            o.steps = atoi(v), i++;
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(v), i++;
        else if (!strcmp(a, "--python"))
            o.python = v, i++;
        else if (!strcmp(a, "--script"))
            o.script = v, i++;
        else if (!strcmp(a, "--device"))
            o.device = v, i++;
        else
            usage();
    }
    if (o.rounds < 1 || o.steps < 1) usage();
    if (o.threads > 0) { /* before the pool starts; OpenBLAS has read its variable already */
        char v[16];
        snprintf(v, sizeof(v), "%d", o.threads);
        setenv("MLTRAIN_NUM_THREADS", v, 1);
        openblas_set_num_threads(o.threads);
    }
    o.threads = bench_mltrain_threads();
    if (access(o.python, X_OK) != 0) o.torch = false;
    signal(SIGPIPE, SIG_IGN);
    if (o.compile_only) o.torch = o.job = o.diag = false;
    bench_opts bo = {o.device, o.rounds, 1};
    mt_device *dev = bench_open_device(&bo);
    const mt_device_info *info = mt_device_get_info(dev);
    if (info && !strcmp(info->backend, "cuda")) o.torch_device = mt_device_name(dev);
    bench_print_context("bench_train: one training step, mltrain vs PyTorch", &bo, dev);
    printf("threads: %d (mltrain pool; torch.set_num_threads) | %d rounds x %d steps, median "
           "step per round, ratios = median of per-round ratios | PyTorch: %s\n\n",
           o.threads, o.rounds, o.steps, o.torch ? o.script : "off");
    int ran = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        if (strcmp(o.only, "all") && strcmp(o.only, cases[k].name)) continue;
        run_case(&cases[k], &o, dev);
        ran++;
    }
    mt_device_release(dev);
    if (!ran) usage();
    return 0;
}
