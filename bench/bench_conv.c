/* Benchmark of convolution and pooling: a training step (forward + backward) of the Pylearn2
 * convolutional tutorial network, mltrain against PyTorch on the CPU in the same run.
 *
 *   bench_conv [--device D] [--reps N] [--warmup N] [--batch N]... [--no-torch] [--profile]
 *
 * Network (float32): x [N, 1, 28, 28] -> conv 5x5 x 64 + bias -> relu -> max pool 4x4 stride 2
 * ceil (11x11) -> conv 5x5 x 64 + bias -> relu -> max pool 4x4 stride 2 ceil (3x3) -> flatten
 * (576) -> @ W [576, 10] + b -> mean softmax crossentropy with integer labels. One "step" is the
 * loss and the gradients of all six parameters (mltrain: a FAST_RUN function returning them,
 * parameters held as shared variables; PyTorch: loss.backward() with the gradients reset).
 * "fwd" is the forward pass to the pooled 3x3 features only.
 *
 * The PyTorch side is bench/torch_conv.py, started once as a child process with
 * torch.set_num_threads(T), T = mltrain's host thread count (MLTRAIN_NUM_THREADS, else the
 * CPUs), and driven over a pipe so that the repetitions interleave (A B A B ...); it times
 * itself (perf_counter around the step), mltrain is timed here around mt_function_call
 * (+ a device sync). Every repetition starts after a 0.25 s pause, so that the threads one
 * side leaves spinning (OpenBLAS ~0.1 s, OpenMP) do not slow down the other side.
 * Default batches: 100 and 128. With --profile the per-step profile of --reps more mltrain
 * steps is printed after the table (mt_function_print_profile; it syncs after every step). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"

#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "bench"
#endif

static int n_batches;
static int64_t batches[8];
static bool no_torch, profile;

static int extra_opt(int argc, char **argv, int i)
{
    if (!strcmp(argv[i], "--batch") && i + 1 < argc && n_batches < 8) {
        batches[n_batches++] = atoll(argv[i + 1]);
        return 2;
    }
    if (!strcmp(argv[i], "--no-torch")) return no_torch = true, 1;
    if (!strcmp(argv[i], "--profile")) return profile = true, 1;
    return 0;
}

/* ---------------------------------------------------------------- the PyTorch child */

typedef struct torch_proc {
    pid_t pid;
    FILE *in, *out; /* its stdin (we write), its stdout (we read) */
    double last;    /* seconds it reported for the last command */
} torch_proc;

static bool torch_start(torch_proc *t, int threads)
{
    int to[2], from[2];
    memset(t, 0, sizeof *t);
    if (pipe(to) || pipe(from)) bench_fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        char thr[16];
        snprintf(thr, sizeof thr, "%d", threads);
        execl("/usr/bin/python3", "python3", BENCH_SOURCE_DIR "/torch_conv.py", thr, (char *)NULL);
        _exit(127);
    }
    close(to[0]), close(from[1]);
    t->pid = pid;
    t->in = fdopen(to[1], "w");
    t->out = fdopen(from[0], "r");
    char line[256];
    if (!t->out || !fgets(line, sizeof line, t->out) || strncmp(line, "torch", 5) != 0) {
        int st = 0;
        waitpid(pid, &st, 0);
        printf("PyTorch baseline unavailable (bench/torch_conv.py exit %d)\n",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return false;
    }
    line[strcspn(line, "\n")] = 0;
    printf("baseline: %s (bench/torch_conv.py)\n", line);
    return true;
}

/* Sends a command and reads the one-line answer. */
static void torch_cmd(torch_proc *t, const char *cmd, char *reply, size_t len)
{
    fprintf(t->in, "%s\n", cmd);
    fflush(t->in);
    if (!fgets(reply, (int)len, t->out)) bench_fail("torch_conv.py stopped after '%s'", cmd);
}

static void torch_stop(torch_proc *t)
{
    if (!t->pid) return;
    fprintf(t->in, "quit\n");
    fclose(t->in);
    fclose(t->out);
    waitpid(t->pid, NULL, 0);
    t->pid = 0;
}

typedef struct torch_case {
    torch_proc *t;
    const char *cmd;
    double *self;  /* self-reported seconds, one per call */
    int nself, cap;
} torch_case;

static void torch_run(void *ctx)
{
    torch_case *c = ctx;
    char reply[64];
    torch_cmd(c->t, c->cmd, reply, sizeof reply);
    if (c->nself < c->cap) c->self[c->nself++] = atof(reply);
}

/* ---------------------------------------------------------------- the mltrain network */

typedef struct net {
    mt_graph *g;
    mt_function *step, *fwd;
    mt_array x, y, params[6];
    mt_var vx, vy, vp[6];
} net;

static void fill_param(mt_array *a, mt_device *dev, int32_t nd, const int64_t *dims, double scale,
                       uint64_t seed)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) n *= dims[i];
    float *p = bench_xmalloc((size_t)n * sizeof *p + 4);
    bench_fill_uniform_f32(p, (size_t)n, seed, (float)-scale, (float)scale);
    BENCH_CHECK(mt_array_from_host(a, dev, MT_FLOAT32, nd, dims, p));
    mt_free(p);
}

static void net_build(net *t, mt_device *dev, int64_t nb)
{
    memset(t, 0, sizeof *t);
    BENCH_CHECK(mt_graph_new(&t->g));
    mt_graph *g = t->g;
    const int64_t xd[4] = {nb, 1, 28, 28}, yd[1] = {nb};
    static const int64_t pd[6][4] = {{64, 1, 5, 5}, {64}, {64, 64, 5, 5}, {64}, {576, 10}, {10}};
    static const int32_t pn[6] = {4, 1, 4, 1, 2, 1};
    static const char *const names[6] = {"w1", "b1", "w2", "b2", "w3", "b3"};
    t->vx = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, xd);
    t->vy = mt_graph_placeholder(g, "y", MT_INT64, 1, yd);
    for (int i = 0; i < 6; i++)
        t->vp[i] = mt_graph_placeholder(g, names[i], MT_FLOAT32, pn[i], pd[i]);
    const int32_t k4[2] = {4, 4}, s2[2] = {2, 2}, bias[4] = {-1, 0, -1, -1};
    mt_var h = t->vx;
    for (int l = 0; l < 2; l++) {
        mt_var c = mt_graph_conv2d(g, h, t->vp[2 * l], NULL, NULL);
        c = mt_graph_add(g, c, mt_graph_dimshuffle(g, t->vp[2 * l + 1], 4, bias));
        h = mt_graph_pool2d(g, mt_graph_relu(g, c), MT_POOL_MAX, k4, s2, NULL, true);
    }
    mt_var feat = h;
    mt_var logits = mt_graph_add(g, mt_graph_matmul(g, mt_graph_flatten(g, h, 2), t->vp[4]),
                                 t->vp[5]);
    mt_var loss = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, logits, t->vy, 1), 0,
                                NULL, false);
    mt_var outs[7];
    outs[0] = loss;
    BENCH_CHECK(mt_graph_grad(g, loss, 6, t->vp, outs + 1, NULL));
    BENCH_CHECK(mt_graph_status(g));
    mt_var ins[2] = {t->vx, t->vy};
    BENCH_CHECK(mt_function_new(&t->step, g, 2, ins, 7, outs, 0, NULL, dev, NULL));
    mt_function_options o;
    mt_function_options_init(&o);
    o.profile = profile;
    BENCH_CHECK(mt_function_new(&t->fwd, g, 1, ins, 1, &feat, 0, NULL, dev, NULL));
    if (profile) {
        mt_function_free(t->step);
        BENCH_CHECK(mt_function_new(&t->step, g, 2, ins, 7, outs, 0, NULL, dev, &o));
    }
    static const double scale[6] = {0.05, 0, 0.05, 0, 0.05, 0};
    for (int i = 0; i < 6; i++) {
        fill_param(&t->params[i], dev, pn[i], pd[i], scale[i], 10 + (uint64_t)i);
        BENCH_CHECK(mt_function_set_shared(t->step, t->vp[i], &t->params[i]));
        if (i < 4) BENCH_CHECK(mt_function_set_shared(t->fwd, t->vp[i], &t->params[i]));
    }
    fill_param(&t->x, dev, 4, xd, 1.0, 1);
    int64_t *lab = bench_xmalloc((size_t)nb * sizeof *lab);
    for (int64_t i = 0; i < nb; i++) lab[i] = (i * 7) % 10;
    BENCH_CHECK(mt_array_from_host(&t->y, dev, MT_INT64, 1, yd, lab));
    mt_free(lab);
}

static void net_free(net *t)
{
    mt_function_free(t->step);
    mt_function_free(t->fwd);
    for (int i = 0; i < 6; i++) mt_array_clear(&t->params[i]);
    mt_array_clear(&t->x);
    mt_array_clear(&t->y);
    mt_graph_free(t->g);
}

static void ml_step(void *ctx)
{
    net *t = ctx;
    const mt_array *in[2] = {&t->x, &t->y};
    mt_array out[7];
    memset(out, 0, sizeof out);
    BENCH_CHECK(mt_function_call(t->step, 2, in, 7, out));
    BENCH_CHECK(mt_device_sync(mt_function_device(t->step)));
    for (int i = 0; i < 7; i++) mt_array_clear(&out[i]);
}

static void ml_fwd(void *ctx)
{
    net *t = ctx;
    const mt_array *in[1] = {&t->x};
    mt_array out = {0};
    BENCH_CHECK(mt_function_call(t->fwd, 1, in, 1, &out));
    BENCH_CHECK(mt_device_sync(mt_function_device(t->fwd)));
    mt_array_clear(&out);
}

/* Like bench_run, with a pause before every repetition: BLAS and OpenMP worker threads spin
 * for a while after their last job (OpenBLAS's for about 0.1 s), and the pause keeps one
 * side's spinning threads from slowing down the other side's next repetition. */
#define PAUSE_SECONDS 0.25

static void pause_for_spinners(void)
{
    struct timespec ts = {0, (long)(PAUSE_SECONDS * 1e9)};
    nanosleep(&ts, NULL);
}

static void run_paused(bench_case *cases, int ncases, int reps, int warmup)
{
    for (int w = 0; w < warmup; w++)
        for (int c = 0; c < ncases; c++) pause_for_spinners(), cases[c].fn(cases[c].ctx);
    for (int c = 0; c < ncases; c++) {
        cases[c].samples = bench_xmalloc((size_t)reps * sizeof(double));
        cases[c].nsamples = 0;
    }
    for (int r = 0; r < reps; r++)
        for (int c = 0; c < ncases; c++) {
            pause_for_spinners();
            double t0 = bench_now();
            cases[c].fn(cases[c].ctx);
            cases[c].samples[cases[c].nsamples++] = bench_now() - t0;
        }
    for (int c = 0; c < ncases; c++) {
        bench_case *k = &cases[c];
        k->median = bench_median(k->samples, k->nsamples);
        k->min = k->max = k->samples[0];
        for (int i = 1; i < k->nsamples; i++) {
            if (k->samples[i] < k->min) k->min = k->samples[i];
            if (k->samples[i] > k->max) k->max = k->samples[i];
        }
    }
}

/* Replaces a case's samples by the child's self-reported times. */
static void use_self_times(bench_case *c, const torch_case *tc, int warmup)
{
    int n = tc->nself - warmup;
    for (int i = 0; i < n && i < c->nsamples; i++) c->samples[i] = tc->self[warmup + i];
    c->median = bench_median(c->samples, c->nsamples);
    c->min = c->max = c->samples[0];
    for (int i = 1; i < c->nsamples; i++) {
        if (c->samples[i] < c->min) c->min = c->samples[i];
        if (c->samples[i] > c->max) c->max = c->samples[i];
    }
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 15,
                     "  --batch N      batch size (repeatable; default 100 and 128)\n"
                     "  --no-torch     mltrain only\n"
                     "  --profile      print mltrain's per-step profile of the training step\n",
                     extra_opt);
    if (n_batches == 0) batches[n_batches++] = 100, batches[n_batches++] = 128;
    mt_device *dev = bench_open_device(&o);
    bench_print_context("conv2d / pool2d: Pylearn2 conv tutorial, forward + backward", &o, dev);
    int threads = bench_mltrain_threads();
    torch_proc tp;
    bool torch = !no_torch && torch_start(&tp, threads);
    char thr[32];
    snprintf(thr, sizeof thr, "%d", threads);
    bench_table_header();
    for (int b = 0; b < n_batches; b++) {
        int64_t nb = batches[b];
        net t;
        net_build(&t, dev, nb);
        char reply[64], cmd[64], name[64];
        if (torch) {
            snprintf(cmd, sizeof cmd, "setup %lld", (long long)nb);
            torch_cmd(&tp, cmd, reply, sizeof reply);
        }
        /* two-layer forward flops (2 per multiply-add), for the rate column */
        double fl = 2.0 * (double)nb * (64.0 * 576 * 25 + 64.0 * 49 * 1600);
        for (int phase = 0; phase < 2; phase++) {
            bool step = phase == 0;
            int cap = o.reps + o.warmup;
            torch_case tc = {&tp, step ? "step" : "fwd",
                             bench_xmalloc((size_t)cap * sizeof(double)), 0, cap};
            bench_case cases[2] = {{"mltrain", step ? ml_step : ml_fwd, &t, NULL, 0, 0, 0, 0},
                                   {"pytorch", torch_run, &tc, NULL, 0, 0, 0, 0}};
            run_paused(cases, torch ? 2 : 1, o.reps, o.warmup);
            if (torch) use_self_times(&cases[1], &tc, o.warmup);
            double work = step ? 3 * fl : fl; /* backward: about twice the forward */
            snprintf(name, sizeof name, "%s N=%lld", step ? "fwd+bwd" : "fwd", (long long)nb);
            char ratio[96] = "";
            if (torch)
                snprintf(ratio, sizeof ratio, "%.2fx PyTorch's time",
                         1.0 / bench_paired_ratio(&cases[0], 1, &cases[1], 1));
            bench_table_row(name, "mltrain FAST_RUN", thr, &cases[0], work, "GFLOP/s",
                            torch ? ratio : NULL);
            if (torch) bench_table_row(name, "PyTorch 1.13 (mkldnn)", thr, &cases[1], work,
                                       "GFLOP/s", "reference");
            bench_case_free(&cases[0]);
            bench_case_free(&cases[1]);
            mt_free(tc.self);
        }
        if (profile) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            mt_function_reset_profile(t.step);
            for (int r = 0; r < o.reps; r++) ml_step(&t);
            mt_function_print_profile(t.step, &sb);
            printf("\nprofile of %d steps, N=%lld:\n%s\n", o.reps, (long long)nb,
                   sb.data ? sb.data : "");
            mt_strbuf_deinit(&sb);
        }
        net_free(&t);
    }
    if (torch) torch_stop(&tp);
    mt_device_release(dev);
    return 0;
}
