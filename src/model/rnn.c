/* Recurrent layers of the MLP: SimpleRNN (Elman), LSTM and GRU, each one SCAN node (graph.h,
 * "loops (scan)") whose body is one time step, so the loop is optimized and differentiated
 * (backpropagation through time) like every other node.
 *
 * Input. The layer reads its input vector of D features (the layer below's output, flattened,
 * or the dataset's rows) as n_steps rows of n_in = D / n_steps features in C order: an image
 * row by row, a ProjectionLayer's output token by token. Inside the graph the [N, D] batch is
 * reshaped to [N, n_steps, n_in] and transposed to [n_steps, N, n_in] (time-major): the loop's
 * one sequence, whose row t the body reads as x_t [N, n_in].
 *
 * Parameters. The gates are packed side by side: W [n_in, G*dim] (input weights), U [dim,
 * G*dim] (recurrent weights), b [G*dim], with G = 1 (SimpleRNN), 4 (LSTM: gates i, f, g, o in
 * that order) or 3 (GRU: r, z, n). The GRU's bias is b [2, 3*dim]: row 0 the input bias b_i,
 * row 1 the recurrent bias b_h, because its reset gate multiplies the recurrent part including
 * its bias (PyTorch's b_ih and b_hh, Keras's reset_after). One step, with zx = x_t W, zh = h U
 * (zx depends on no state, so the loop computes it for every step at once before the loop, as
 * cuDNN and PyTorch do; a step is then one product):
 *   SimpleRNN  h' = act(zx + zh + b)
 *   LSTM       [i, f, g, o] = zx + zh + b;  c' = sigmoid(f) c + sigmoid(i) tanh(g);
 *              h' = sigmoid(o) tanh(c')
 *   GRU        [xr, xz, xn] = zx + b_i;  [hr, hz, hn] = zh + b_h;  r = sigmoid(xr + hr);
 *              z = sigmoid(xz + hz);  n = tanh(xn + r hn);  h' = (1 - z) n + z h
 * The initial states are zeros [N, dim] (built from the batch's size, known or not). The
 * output is the last state h [N, dim], or with return_sequences every step's h, [N, n_steps,
 * dim] flattened to [N, n_steps*dim] in time order. With reverse the loop runs from the last
 * row to the first; the states of return_sequences stay aligned with the input rows (state t
 * is the one after reading row t) and the last state is the one after row 0 (Lasagne's
 * backwards).
 *
 * One loop per use. The forward pass of a layer is built again wherever it is needed (each
 * channel, the cost, an expression cost's output); the graph merges loops whose bodies are
 * structurally equal (ops_scan.c), so on the same operands every build is the same loop,
 * computed once.
 *
 * Initialization (Linear's rules: irange, istdev or sparse_init, required): W and U each from
 * its own Philox stream (init.c, keyed by the parameter's name); U_init 'orthogonal' makes
 * each gate's [dim, dim] block of U an orthogonal matrix instead. b starts at init_bias, the
 * LSTM's forget-gate block at forget_bias (1 by default, as Keras's unit_forget_bias and
 * Lasagne's forget gate). */
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

static int64_t n_gates(mt__layer_kind k)
{
    return k == MT__LAYER_LSTM ? 4 : k == MT__LAYER_GRU ? 3 : 1;
}

bool mt__layer_is_recurrent(const mt__layer *L)
{
    return L->s.kind == MT__LAYER_SIMPLE_RNN || L->s.kind == MT__LAYER_LSTM ||
           L->s.kind == MT__LAYER_GRU;
}

/* ---------------------------------------------------------------- set-up */

static mt_status check_spec(const mt__layer *L, const char *what)
{
    const mt__layer_spec *s = &L->s;
    if (s->dim < 1)
        return mt_err_set(MT_ERR_INVALID, "%s: dim must be >= 1, got %lld", what,
                          (long long)s->dim);
    if (s->n_steps < 1)
        return mt_err_set(MT_ERR_INVALID, "%s: n_steps must be >= 1, got %lld", what,
                          (long long)s->n_steps);
    if (L->in_dim % s->n_steps != 0)
        return mt_err_set(MT_ERR_SHAPE, "%s: n_steps %lld does not divide its input of %lld "
                          "features (each step reads input / n_steps features: give an n_steps "
                          "that divides %lld)", what, (long long)s->n_steps,
                          (long long)L->in_dim, (long long)L->in_dim);
    if (!isnan(s->max_col_norm) || !isnan(s->max_row_norm) || !isnan(s->max_kernel_norm))
        return mt_err_set(MT_ERR_UNSUPPORTED, "%s: norm constraints (max_col_norm, "
                          "max_row_norm) are not supported by recurrent layers", what);
    if (!s->has_irange && !s->has_istdev && !s->has_sparse_init)
        return mt_err_set(MT_ERR_INVALID, "%s: give one of irange, istdev or sparse_init", what);
    return MT_OK;
}

static void fill(float *p, int64_t n, double v)
{
    for (int64_t i = 0; i < n; i++) p[i] = (float)v;
}

mt_status mt__setup_rnn(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    char what[MT__PATH_MAX + 48];
    snprintf(what, sizeof(what), "layer '%s' (%s)", L->path, s->cls);
    mt_status st = check_spec(L, what);
    if (st) return st;
    int64_t G = n_gates(s->kind), d = s->dim, n_in = L->in_dim / s->n_steps, gd = 0, out = 0;
    if (__builtin_mul_overflow(G, d, &gd) ||
        __builtin_mul_overflow(s->return_sequences ? s->n_steps : 1, d, &out))
        return mt_err_set(MT_ERR_RANGE, "%s: dim %lld is more than an int64 holds with its "
                          "%lld gates and %lld steps", what, (long long)d, (long long)G,
                          (long long)s->n_steps);
    int64_t wd[2] = {n_in, gd}, ud[2] = {d, gd}, bd[2] = {2, gd};
    bool gru = s->kind == MT__LAYER_GRU;
    if ((st = mt__add_param(m, L->path, "W", li, true, 2, wd, &L->iW))) return st;
    if ((st = mt__add_param(m, L->path, "U", li, true, 2, ud, &L->iU))) return st;
    if ((st = mt__add_param(m, L->path, "b", li, false, gru ? 2 : 1, gru ? bd : &gd, &L->ib)))
        return st;
    uint64_t kw = mt__init_key(m->seed_key, m->params[L->iW].name);
    uint64_t ku = mt__init_key(m->seed_key, m->params[L->iU].name);
    st = mt__init_dense(mt__param_data(m, L->iW), n_in, gd, s, kw, what);
    if (!st && s->U_orthogonal) st = mt__init_orthogonal(mt__param_data(m, L->iU), d, G, ku, what);
    else if (!st) st = mt__init_dense(mt__param_data(m, L->iU), d, gd, s, ku, what);
    if (st) return st;
    float *b = mt__param_data(m, L->ib);
    fill(b, gru ? 2 * gd : gd, s->init_bias);
    if (s->kind == MT__LAYER_LSTM) fill(b + d, d, s->forget_bias); /* gate f */
    L->out_dim = out;
    return MT_OK;
}

/* ---------------------------------------------------------------- one step */

/* The body of one step in `body`: placeholders x_t [-1, n_in], the states (h; LSTM h, c), W,
 * U and b, in that order (bin), and the new states (bout). *n_state: 1 or 2. The product
 * x_t W depends on no state: mt_graph_scan computes it for every step before the loop. */
static void build_step(mt_graph *body, const mt__layer *L, mt_dtype dt, int64_t n_in,
                       mt_var *bin, mt_var *bout, int32_t *n_state)
{
    const mt__layer_spec *s = &L->s;
    int64_t d = s->dim, G = n_gates(s->kind);
    int64_t xs[2] = {-1, n_in}, hs[2] = {-1, d}, ws[2] = {n_in, G * d}, us[2] = {d, G * d};
    int64_t bs1[1] = {G * d}, bs2[2] = {2, G * d};
    bool lstm = s->kind == MT__LAYER_LSTM, gru = s->kind == MT__LAYER_GRU;
    int32_t k = 0;
    mt_var x = bin[k++] = mt_graph_placeholder(body, "x_t", dt, 2, xs);
    mt_var h = bin[k++] = mt_graph_placeholder(body, "h", dt, 2, hs);
    mt_var c = lstm ? (bin[k++] = mt_graph_placeholder(body, "c", dt, 2, hs)) : MT_VAR_NONE;
    mt_var W = bin[k++] = mt_graph_placeholder(body, "W", dt, 2, ws);
    mt_var U = bin[k++] = mt_graph_placeholder(body, "U", dt, 2, us);
    mt_var b = bin[k++] = gru ? mt_graph_placeholder(body, "b", dt, 2, bs2)
                              : mt_graph_placeholder(body, "b", dt, 1, bs1);
    *n_state = lstm ? 2 : 1;
    mt_var zx = mt_graph_matmul(body, x, W), zh = mt_graph_matmul(body, h, U);
    if (s->kind == MT__LAYER_SIMPLE_RNN) {
        bout[0] = mt__act_apply(body, s->rnn_act, mt_graph_add(body, mt_graph_add(body, zx, zh),
                                                               b), 0.0);
        return;
    }
    if (lstm) {
        mt_var gt[4] = {0};
        if (mt_graph_split(body, mt_graph_add(body, mt_graph_add(body, zx, zh), b), 1, 4, NULL,
                           gt))
            return; /* the error is in the body graph */
        mt_var cn = mt_graph_add(body, mt_graph_mul(body, mt_graph_sigmoid(body, gt[1]), c),
                                 mt_graph_mul(body, mt_graph_sigmoid(body, gt[0]),
                                              mt_graph_tanh(body, gt[2])));
        bout[0] = mt_graph_mul(body, mt_graph_sigmoid(body, gt[3]), mt_graph_tanh(body, cn));
        bout[1] = cn;
        return;
    }
    /* GRU (PyTorch's): the reset gate multiplies the recurrent part with its bias */
    mt_var ax = mt_graph_add(body, zx, mt_graph_slice_axis(body, b, 0, 0, 1, 1));
    mt_var ah = mt_graph_add(body, zh, mt_graph_slice_axis(body, b, 0, 1, 2, 1));
    mt_var px[3] = {0}, ph[3] = {0};
    if (mt_graph_split(body, ax, 1, 3, NULL, px) || mt_graph_split(body, ah, 1, 3, NULL, ph))
        return;
    mt_var r = mt_graph_sigmoid(body, mt_graph_add(body, px[0], ph[0]));
    mt_var z = mt_graph_sigmoid(body, mt_graph_add(body, px[1], ph[1]));
    mt_var n = mt_graph_tanh(body, mt_graph_add(body, px[2], mt_graph_mul(body, r, ph[2])));
    bout[0] = mt_graph_add(body, n, mt_graph_mul(body, z, mt_graph_sub(body, h, n)));
}

/* ---------------------------------------------------------------- forward */

mt_status mt__rnn_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x, mt__layer_out *lo)
{
    mt_graph *g = mg->g;
    const mt__layer_spec *s = &L->s;
    char what[MT__PATH_MAX + 48];
    snprintf(what, sizeof(what), "layer '%s' (%s)", L->path, s->cls);
    int64_t T = s->n_steps, d = s->dim, n_in = L->in_dim / T;
    mt_var W = mt__mg_param(mg, L->iW), U = mt__mg_param(mg, L->iU), b = mt__mg_param(mg, L->ib);
    const mt_type *tw = W ? mt_graph_type(g, W) : NULL;
    if (!tw) return mt__graph_check(g, what);
    mt_dtype dt = tw->dtype; /* the compute dtype */
    mt_var xv = mt__flatten_state(g, x);
    const mt_type *tx = xv ? mt_graph_type(g, xv) : NULL;
    if (tx && tx->dtype != dt) xv = mt_graph_cast(g, xv, dt);
    /* [N, D] -> [N, T, n_in] -> time-major [T, N, n_in] */
    int64_t shp3[3] = {MT_RESHAPE_KEEP, T, n_in};
    int32_t perm[3] = {1, 0, 2};
    mt_var seq = mt_graph_transpose(g, mt_graph_reshape(g, xv, 3, shp3), perm);
    /* zeros [N, dim] whatever N is: zeros shaped like one input column, plus a [1, dim] row */
    int64_t row[2] = {1, d};
    mt_var zero = mt_graph_add(g, mt_graph_zeros_like(g, mt_graph_slice_axis(g, xv, 1, 0, 1, 1)),
                               mt_graph_zeros(g, dt, 2, row));
    mt_status st = mt__graph_check(g, what);
    if (st) return st;
    mt_graph *body = NULL;
    if ((st = mt_graph_new(&body))) return st;
    mt__set_origin(body, 0, "step of layer '%s' (%s)", L->path, s->cls);
    mt_var bin[6] = {0}, bout[2] = {0};
    int32_t n_state = 1;
    build_step(body, L, dt, n_in, bin, bout, &n_state);
    st = mt__graph_check(body, what);
    if (!st) {
        mt_var ops[6];
        int32_t k = 0;
        ops[k++] = seq;
        for (int32_t i = 0; i < n_state; i++) ops[k++] = zero;
        ops[k++] = W;
        ops[k++] = U;
        ops[k++] = b;
        mt_scan_spec spec = {1, n_state, 3, 0, -1, s->reverse};
        mt_var stacked[2] = {0}, finals[2] = {0};
        st = mt_graph_scan(g, body, &spec, bin, bout, ops, stacked, finals);
        if (!st && s->return_sequences) {
            int64_t flat[2] = {MT_RESHAPE_KEEP, T * d};
            lo->out.v = mt_graph_reshape(g, mt_graph_transpose(g, stacked[0], perm), 2, flat);
        } else if (!st) {
            lo->out.v = finals[0];
        }
    }
    mt_graph_free(body);
    if (st) {
        mt_status gs = mt__graph_check(g, what); /* the loop's message, with the layer */
        return gs ? gs : st;
    }
    lo->in = x;
    lo->out.image = false;
    lo->pre = lo->out.v;
    return mt__graph_check(g, what);
}
