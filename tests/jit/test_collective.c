/* Tests of the ALLREDUCE graph op and of its execution: type, printing, hash-consing by
 * bucket, gradient and R-op, no constant folding, the compile-time error without hooks, and
 * the executor's placement of bucket starts and waits, observed through recording hooks that
 * stand in for a group of `k` identical processes (the sum over the group is k * x). */
#include <stdio.h>
#include <string.h>

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"
#include "mt_test.h"

/* ---------------------------------------------------------------- recording hooks */

#define LOG_MAX 64
typedef struct rec {
    double factor;      /* the "group sum" multiplies by this */
    int fail_bucket;    /* start of this bucket fails (-1: none) */
    int n;
    char log[LOG_MAX][32]; /* "start 0 (2)", "wait 0" */
    int pending;
    int max_pending;    /* most buckets in flight at once */
    void *reqs[LOG_MAX];
    int seen_flat;      /* starts whose arrays were consecutive views of one buffer */
} rec;

typedef struct rec_req {
    int bucket;
    int32_t n;
    mt_array *arrays[16];
} rec_req;

static rec_req g_reqs[LOG_MAX];
static int g_nreq;

static mt_status rec_start(void *ctx, int32_t bucket, int32_t n, mt_array *const *arrays,
                           void **req)
{
    rec *r = ctx;
    if (bucket == r->fail_bucket) return mt_err_set(MT_ERR_COMM, "injected failure");
    if (r->n < LOG_MAX) snprintf(r->log[r->n++], 32, "start %d (%d)", (int)bucket, (int)n);
    rec_req *q = &g_reqs[g_nreq++ % LOG_MAX];
    q->bucket = bucket;
    q->n = n;
    bool flat = true;
    for (int32_t i = 0; i < n && i < 16; i++) {
        q->arrays[i] = arrays[i];
        MT_CHECK(mt_array_is_c_contiguous(arrays[i]));
        MT_CHECK(arrays[i]->flags & MT_ARRAY_WRITEABLE);
        if (i > 0)
            flat &= arrays[i]->buf == arrays[0]->buf &&
                    arrays[i]->offset == arrays[i - 1]->offset + mt_array_nbytes(arrays[i - 1]);
    }
    r->seen_flat += flat;
    r->pending++;
    if (r->pending > r->max_pending) r->max_pending = r->pending;
    *req = q;
    return MT_OK;
}

/* The "sum over the group": every element times the factor (float32 or float64). */
static mt_status rec_wait(void *ctx, void *vreq)
{
    rec *r = ctx;
    rec_req *q = vreq;
    if (r->n < LOG_MAX) snprintf(r->log[r->n++], 32, "wait %d", q->bucket);
    r->pending--;
    for (int32_t i = 0; i < q->n; i++) {
        mt_array *a = q->arrays[i];
        void *p = (char *)mt_buffer_host_ptr(a->buf) + a->offset;
        int64_t m = mt_array_size(a);
        if (a->dtype == MT_FLOAT32)
            for (int64_t j = 0; j < m; j++) ((float *)p)[j] *= (float)r->factor;
        else if (a->dtype == MT_FLOAT64)
            for (int64_t j = 0; j < m; j++) ((double *)p)[j] *= r->factor;
    }
    return MT_OK;
}

static void rec_init(rec *r, double factor)
{
    memset(r, 0, sizeof *r);
    r->factor = factor;
    r->fail_bucket = -1;
}

static int log_index(const rec *r, const char *what)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->log[i], what) == 0) return i;
    return -1;
}

static mt_function_options opts_with(mt_mode mode, const mt_collective_hooks *h)
{
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    o.collectives = h;
    return o;
}

static void host_array(mt_array *out, mt_dtype dt, int32_t nd, const int64_t *dims,
                       const void *data)
{
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    MT_CHECK_OK(mt_array_from_host(out, dev, dt, nd, dims, data));
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- the op */

MT_TEST(allreduce_type_and_print)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    int64_t s[2] = {3, -1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    mt_var y = mt_graph_allreduce(g, x, 2);
    MT_CHECK(y != MT_VAR_NONE);
    MT_CHECK(mt_type_equal(mt_graph_type(g, y), mt_graph_type(g, x)));
    MT_CHECK_EQ_INT(mt_graph_op(g, y), MT_OP_ALLREDUCE);
    MT_CHECK_EQ_INT(mt_op_lowering(MT_OP_ALLREDUCE), MT_LOWER_COLLECTIVE);
    MT_CHECK_STR_EQ(mt_lowering_name(MT_LOWER_COLLECTIVE), "collective");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, y)->bucket, 2);
    /* same bucket: one node (hash-consed); another bucket: another node */
    MT_CHECK_EQ_INT(mt_graph_allreduce(g, x, 2), y);
    mt_var y3 = mt_graph_allreduce(g, x, 3);
    MT_CHECK(y3 != y && y3 != MT_VAR_NONE);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_print_node(g, y, &sb);
    MT_CHECK(strstr(sb.data, "allreduce{bucket=2}(") != NULL);
    mt_strbuf_deinit(&sb);
    MT_CHECK_OK(mt_graph_verify(g));
    MT_CHECK(mt_graph_allreduce(g, x, -1) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_ERR_INVALID);
    MT_CHECK(strstr(mt_graph_last_error(g), "bucket -1") != NULL);
    mt_graph_free(g);
}

/* d/dx sum(c * allreduce(x)) = allreduce(c): with a group of 3 identical processes, 3c. The
 * R-op (double reverse) in direction u is allreduce(u) * c summed: 3 * sum(c * u). */
MT_TEST(allreduce_grad_and_rop)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    int64_t s[1] = {4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var u = mt_graph_placeholder(g, "u", MT_FLOAT64, 1, s);
    double cv[4] = {1, -2, 0.5, 3};
    mt_var c = mt_graph_constant(g, MT_FLOAT64, 1, s, cv);
    mt_var cost = mt_graph_sum(g, mt_graph_mul(g, c, mt_graph_allreduce(g, x, 0)), 0, NULL,
                               false);
    mt_var gx = MT_VAR_NONE, jv = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &x, &gx, NULL));
    MT_CHECK_OK(mt_graph_rop(g, 1, &cost, 1, &x, &u, &jv, NULL));
    /* the gradient is an all-reduce of bucket 0 */
    MT_CHECK_EQ_INT(mt_graph_op(g, gx), MT_OP_ALLREDUCE);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, gx)->bucket, 0);
    rec r;
    rec_init(&r, 3.0);
    mt_collective_hooks h = {&r, rec_start, rec_wait};
    mt_var outs[2] = {gx, jv}, ins[2] = {x, u};
    double xv[4] = {1, 2, 3, 4}, uv[4] = {0.5, 1, -1, 2};
    mt_array X, U, res[2];
    host_array(&X, MT_FLOAT64, 1, s, xv);
    host_array(&U, MT_FLOAT64, 1, s, uv);
    const mt_array *args[2] = {&X, &U};
    /* The literal gradient graph reads the forward all-reduce (the seed is broadcast like
     * c * allreduce(x)), so the gradient's all-reduce of the same bucket would wait for its
     * own bucket: CHECK, which runs the literal graph, refuses it; the rewrites of FAST_RUN
     * and FAST_COMPILE make that shape a constant. */
    mt_function_options oc = opts_with(MT_MODE_CHECK, &h);
    mt_function *fc = NULL;
    MT_CHECK_ERR(mt_function_new(&fc, g, 2, ins, 2, outs, 0, NULL, NULL, &oc), MT_ERR_INVALID,
                 "same bucket");
    for (int m = 0; m < MT_MODE_CHECK; m++) {
        mt_function_options o = opts_with((mt_mode)m, &h);
        mt_function *f = NULL;
        MT_CHECK_OK(mt_function_new(&f, g, 2, ins, 2, outs, 0, NULL, NULL, &o));
        MT_CHECK_OK(mt_function_call(f, 2, args, 2, res));
        double gv[4], jvv;
        MT_CHECK_OK(mt_array_to_host(gv, sizeof gv, &res[0]));
        MT_CHECK_OK(mt_array_to_host(&jvv, sizeof jvv, &res[1]));
        double want_j = 0;
        for (int i = 0; i < 4; i++) {
            MT_CHECK_CLOSE(gv[i], 3 * cv[i], 1e-12, 1e-12);
            want_j += 3 * cv[i] * uv[i];
        }
        MT_CHECK_CLOSE(jvv, want_j, 1e-12, 1e-12);
        mt_array_clear(&res[0]);
        mt_array_clear(&res[1]);
        mt_function_free(f);
    }
    mt_array_clear(&X);
    mt_array_clear(&U);
    mt_graph_free(g);
}

/* allreduce(constant) is not folded into the constant (the group's sum is k times it), and
 * the rewrites keep the node in every mode. */
MT_TEST(allreduce_not_folded)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    int64_t s[1] = {2};
    double cv[2] = {1.5, -2};
    mt_var c = mt_graph_constant(g, MT_FLOAT64, 1, s, cv);
    mt_var y = mt_graph_add(g, mt_graph_allreduce(g, c, 0), mt_graph_literal_float(g, 0.0));
    rec r;
    rec_init(&r, 4.0);
    mt_collective_hooks h = {&r, rec_start, rec_wait};
    for (int m = 0; m < MT_MODE_COUNT; m++) {
        mt_function_options o = opts_with((mt_mode)m, &h);
        mt_function *f = NULL;
        MT_CHECK_OK(mt_function_new(&f, g, 0, NULL, 1, &y, 0, NULL, NULL, &o));
        mt_array out;
        MT_CHECK_OK(mt_function_call(f, 0, NULL, 1, &out));
        double v[2];
        MT_CHECK_OK(mt_array_to_host(v, sizeof v, &out));
        MT_CHECK_CLOSE(v[0], 6.0, 0, 0);
        MT_CHECK_CLOSE(v[1], -8.0, 0, 0);
        mt_array_clear(&out);
        mt_function_stats st;
        mt_function_get_stats(f, &st);
        MT_CHECK_EQ_INT(st.n_buckets, 1);
        mt_function_free(f);
    }
    mt_graph_free(g);
}

MT_TEST(allreduce_needs_hooks)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    int64_t s[1] = {2};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 1, s);
    mt_var y = mt_graph_allreduce(g, x, 0);
    mt_function *f = NULL;
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, NULL, NULL), MT_ERR_INVALID,
                 "collectives is NULL");
    MT_CHECK(f == NULL);
    mt_collective_hooks h = {NULL, rec_start, NULL};
    mt_function_options o = opts_with(MT_MODE_FAST_RUN, &h);
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, NULL, &o), MT_ERR_INVALID,
                 "start and wait");
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- placement in a training step */

/* A 3-layer MLP step: h1 = tanh(x W1), h2 = tanh(h1 W2), cost = sum((h2 W3)^2); gradients of
 * W3 and W2 in bucket 0, W1 in bucket 1 (reverse order of the parameters); updates
 * W <- W - 0.01 * allreduce(grad). */
typedef struct mlp {
    mt_graph *g;
    mt_var x, w[3], grad[3], red[3];
    mt_update up[3];
} mlp;

static void mlp_build(mlp *m, bool two_buckets)
{
    MT_CHECK_OK(mt_graph_new(&m->g));
    mt_graph *g = m->g;
    int64_t xs[2] = {16, 8}, ws[3][2] = {{8, 12}, {12, 10}, {10, 4}};
    m->x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, xs);
    char name[8];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "W%d", i + 1);
        m->w[i] = mt_graph_placeholder(g, name, MT_FLOAT32, 2, ws[i]);
    }
    mt_var h = mt_graph_tanh(g, mt_graph_matmul(g, m->x, m->w[0]));
    h = mt_graph_tanh(g, mt_graph_matmul(g, h, m->w[1]));
    mt_var out = mt_graph_matmul(g, h, m->w[2]);
    mt_var cost = mt_graph_sum(g, mt_graph_square(g, out), 0, NULL, false);
    MT_CHECK_OK(mt_graph_grad(g, cost, 3, m->w, m->grad, NULL));
    for (int i = 2; i >= 0; i--) { /* inserted like the data-parallel module: last first */
        int32_t bucket = two_buckets && i == 0 ? 1 : 0;
        m->red[i] = mt_graph_allreduce(g, m->grad[i], bucket);
        m->up[i].var = m->w[i];
        m->up[i].value = mt_graph_sub(g, m->w[i], mt_graph_mul(g, mt_graph_scalar(g, MT_FLOAT32,
                                                                                  0.01),
                                                               m->red[i]));
    }
    MT_CHECK_OK(mt_graph_status(g));
}

static mt_function *mlp_function(mlp *m, mt_mode mode, const mt_collective_hooks *h)
{
    mt_function_options o = opts_with(mode, h);
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, m->g, 1, &m->x, 0, NULL, 3, m->up, NULL, &o));
    int64_t ws[3][2] = {{8, 12}, {12, 10}, {10, 4}};
    for (int i = 0; i < 3; i++) {
        float buf[12 * 10];
        for (int j = 0; j < ws[i][0] * ws[i][1]; j++) buf[j] = 0.1f * (float)((j * 7 + i) % 11 - 5);
        mt_array a;
        host_array(&a, MT_FLOAT32, 2, ws[i], buf);
        MT_CHECK_OK(mt_function_set_shared(f, m->w[i], &a));
        mt_array_clear(&a);
    }
    return f;
}

static void mlp_call(mt_function *f)
{
    int64_t xs[2] = {16, 8};
    float xv[16 * 8];
    for (int j = 0; j < 16 * 8; j++) xv[j] = 0.05f * (float)((j * 5) % 13 - 6);
    mt_array X;
    host_array(&X, MT_FLOAT32, 2, xs, xv);
    const mt_array *args[1] = {&X};
    MT_CHECK_OK(mt_function_call(f, 1, args, 0, NULL));
    mt_array_clear(&X);
}

MT_TEST(allreduce_bucket_starts_before_backward_ends)
{
    mlp m;
    mlp_build(&m, true);
    rec r;
    rec_init(&r, 2.0);
    mt_collective_hooks h = {&r, rec_start, rec_wait};
    mt_function *f = mlp_function(&m, MT_MODE_FAST_RUN, &h);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    /* bucket 0 (W3, W2) starts before W1's gradient is computed; its wait comes after */
    const char *s0 = strstr(sb.data, "start all-reduce of bucket 0 (2 arrays)");
    const char *w0 = strstr(sb.data, "wait for all-reduce of bucket 0");
    const char *s1 = strstr(sb.data, "start all-reduce of bucket 1 (1 arrays)");
    if (!s0 || !w0 || !s1) fprintf(stderr, "%s\n", sb.data);
    MT_CHECK(s0 && w0 && s1);
    /* between the two starts: the rest of the backward pass (W1's gradient, a matmul) */
    const char *mm = strstr(s0, "matmul(");
    MT_CHECK(mm && mm < s1);
    MT_CHECK(s0 < s1);
    MT_CHECK(s1 < w0);
    mt_strbuf_deinit(&sb);
    mlp_call(f);
    /* starts in bucket order, both in flight before the first wait */
    MT_CHECK_EQ_INT(r.n, 4);
    MT_CHECK(log_index(&r, "start 0 (2)") == 0);
    MT_CHECK(log_index(&r, "start 1 (1)") == 1);
    MT_CHECK(log_index(&r, "wait 0") == 2);
    MT_CHECK(log_index(&r, "wait 1") == 3);
    MT_CHECK_EQ_INT(r.max_pending, 2);
    MT_CHECK_EQ_INT(r.seen_flat, 2);
    mt_function_stats st;
    mt_function_get_stats(f, &st);
    MT_CHECK_EQ_INT(st.n_buckets, 2);
    MT_CHECK_EQ_INT((int)st.collective_calls, 2);
    MT_CHECK(st.collective_seconds >= st.collective_wait_seconds);
    MT_CHECK(st.collective_wait_seconds >= 0);
    mt_function_free(f);
    mt_graph_free(m.g);
}

/* The reduced gradients are what the updates see: with a group of 2 identical processes the
 * parameters move twice as far as with hooks that leave the values alone; FAST_RUN,
 * FAST_COMPILE (start and wait back to back) and CHECK agree. */
MT_TEST(allreduce_modes_agree)
{
    float w_after[MT_MODE_COUNT][3][12 * 10];
    int64_t sizes[3] = {8 * 12, 12 * 10, 10 * 4};
    for (int mode = 0; mode < MT_MODE_COUNT; mode++) {
        mlp m;
        mlp_build(&m, true);
        rec r;
        rec_init(&r, 2.0);
        mt_collective_hooks h = {&r, rec_start, rec_wait};
        mt_function *f = mlp_function(&m, (mt_mode)mode, &h);
        mlp_call(f);
        mlp_call(f);
        if (mode == MT_MODE_FAST_COMPILE) { /* synchronous: each wait right after its start */
            MT_CHECK(log_index(&r, "start 0 (2)") + 1 == log_index(&r, "wait 0"));
            MT_CHECK(log_index(&r, "start 1 (1)") + 1 == log_index(&r, "wait 1"));
        }
        for (int i = 0; i < 3; i++) {
            mt_array a;
            MT_CHECK_OK(mt_function_get_shared(f, m.w[i], &a));
            MT_CHECK_OK(mt_array_to_host(w_after[mode][i], (size_t)sizes[i] * 4, &a));
            mt_array_clear(&a);
        }
        mt_function_free(f);
        mt_graph_free(m.g);
    }
    for (int mode = 1; mode < MT_MODE_COUNT; mode++)
        for (int i = 0; i < 3; i++)
            for (int64_t j = 0; j < sizes[i]; j++)
                MT_CHECK_CLOSE(w_after[mode][i][j], w_after[0][i][j], 1e-5, 1e-4);
}

/* A failing start: the call fails naming the bucket, and the bucket already in flight is
 * still waited for (the hooks' request is never leaked). */
MT_TEST(allreduce_start_error_drains)
{
    mlp m;
    mlp_build(&m, true);
    rec r;
    rec_init(&r, 1.0);
    r.fail_bucket = 1;
    mt_collective_hooks h = {&r, rec_start, rec_wait};
    mt_function *f = mlp_function(&m, MT_MODE_FAST_RUN, &h);
    int64_t xs[2] = {16, 8};
    float xv[16 * 8] = {0};
    mt_array X;
    host_array(&X, MT_FLOAT32, 2, xs, xv);
    const mt_array *args[1] = {&X};
    MT_CHECK_ERR(mt_function_call(f, 1, args, 0, NULL), MT_ERR_COMM, "bucket 1");
    MT_CHECK(log_index(&r, "wait 0") >= 0);
    MT_CHECK_EQ_INT(r.pending, 0);
    mt_array_clear(&X);
    mt_function_free(f);
    mt_graph_free(m.g);
}

/* An operand of a bucket that depends on a result of the same bucket cannot be scheduled. */
MT_TEST(allreduce_bucket_cycle_rejected)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 1, s);
    mt_var a = mt_graph_allreduce(g, x, 0);
    mt_var b = mt_graph_allreduce(g, mt_graph_exp(g, a), 0);
    rec r;
    rec_init(&r, 1.0);
    mt_collective_hooks h = {&r, rec_start, rec_wait};
    mt_function_options o = opts_with(MT_MODE_FAST_COMPILE, &h);
    mt_function *f = NULL;
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &b, 0, NULL, NULL, &o), MT_ERR_INVALID,
                 "same bucket");
    /* in different buckets it is fine */
    mt_var b1 = mt_graph_allreduce(g, mt_graph_exp(g, a), 1);
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &b1, 0, NULL, NULL, &o));
    mt_function_free(f);
    mt_graph_free(g);
}
