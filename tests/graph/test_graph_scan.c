/* Loops (SCAN) in the IR: result types (stacked, per-step, final), hash-consing of a loop's
 * results, the body's lifetime (owned by the loop, shared by clones), printing, the builder's
 * errors (counts, dtypes, shapes, foreign placeholders, random draws, states that change type)
 * and the gradient's structure (a reverse loop). Values are checked in tests/jit/test_scan*.c. */
#include "graph_test_util.h"
#include "mltrain/graph_grad.h"

/* An Elman step in its own graph: h' = tanh(x @ U + h @ W + b); y = sum(h'). Inputs x (n),
 * h (m), U (n, m), W (m, m), b (m); outputs h', y. */
typedef struct elman {
    mt_graph *body;
    mt_var in[5], out[2];
} elman;

static void elman_body(elman *e, int64_t n, int64_t m)
{
    e->body = new_graph();
    mt_graph *b = e->body;
    e->in[0] = ph(b, "x", MT_FLOAT32, 1, SHAPE(n));
    e->in[1] = ph(b, "h", MT_FLOAT32, 1, SHAPE(m));
    e->in[2] = ph(b, "U", MT_FLOAT32, 2, SHAPE(n, m));
    e->in[3] = ph(b, "W", MT_FLOAT32, 2, SHAPE(m, m));
    e->in[4] = ph(b, "b", MT_FLOAT32, 1, SHAPE(m));
    mt_var pre = mt_graph_add(b, mt_graph_add(b, mt_graph_matmul(b, e->in[0], e->in[2]),
                                              mt_graph_matmul(b, e->in[1], e->in[3])),
                              e->in[4]);
    e->out[0] = mt_graph_tanh(b, pre);
    e->out[1] = mt_graph_sum(b, e->out[0], 0, NULL, false);
    MT_CHECK_OK(mt_graph_status(b));
}

static mt_scan_spec spec_of(int32_t nseq, int32_t nstate, int32_t nnonseq, int32_t nextra,
                            int64_t steps, bool reverse)
{
    mt_scan_spec s = {nseq, nstate, nnonseq, nextra, steps, reverse};
    return s;
}

/* The outer operands of an Elman loop over T rows (T -1: unknown). */
static void elman_operands(mt_graph *g, int64_t T, int64_t n, int64_t m, mt_var *ops)
{
    ops[0] = ph(g, "X", MT_FLOAT32, 2, SHAPE(T, n));
    ops[1] = ph(g, "h0", MT_FLOAT32, 1, SHAPE(m));
    ops[2] = ph(g, "U", MT_FLOAT32, 2, SHAPE(n, m));
    ops[3] = ph(g, "W", MT_FLOAT32, 2, SHAPE(m, m));
    ops[4] = ph(g, "b", MT_FLOAT32, 1, SHAPE(m));
}

MT_TEST(scan_result_types_and_siblings)
{
    elman e;
    elman_body(&e, 3, 4);
    mt_graph *g = new_graph();
    mt_var ops[5], st[2], fin[1];
    elman_operands(g, 7, 3, 4, ops);
    mt_scan_spec s = spec_of(1, 1, 3, 1, -1, false);
    MT_CHECK_OK(mt_graph_scan(g, e.body, &s, e.in, e.out, ops, st, fin));
    mt_graph_free(e.body); /* the loop keeps its own copy */
    CHECK_TYPE(g, st[0], "float32[7,4]");
    CHECK_TYPE(g, st[1], "float32[7]");
    CHECK_TYPE(g, fin[0], "float32[4]");
    MT_CHECK_EQ_INT(mt_graph_op(g, st[0]), MT_OP_SCAN);
    mt_scan_info info;
    MT_CHECK(mt_graph_scan_info(g, fin[0], &info));
    MT_CHECK_EQ_INT(info.output, 2);
    MT_CHECK_EQ_INT(info.spec.n_state, 1);
    MT_CHECK_EQ_INT(mt_graph_op(info.body, info.inputs[0]), MT_OP_INPUT);
    MT_CHECK_STR_EQ(mt_graph_name(info.body, info.inputs[3]), "W");
    MT_CHECK(!mt_graph_scan_info(g, ops[0], &info));
    MT_CHECK_EQ_INT(mt_scan_spec_nresults(&s), 3);
    /* the same result again is the same node; mt_graph_make with the loop's body finds it */
    mt_var again = mt_graph_make(g, MT_OP_SCAN, mt_graph_attrs(g, st[0]), 5, ops);
    MT_CHECK_EQ_INT(again, st[0]);
    /* unknown T: unknown leading size */
    mt_var X2 = ph(g, "X2", MT_FLOAT32, 2, SHAPE(-1, 3));
    mt_var ops2[5] = {X2, ops[1], ops[2], ops[3], ops[4]};
    mt_var st2[2];
    elman_body(&e, 3, 4);
    MT_CHECK_OK(mt_graph_scan(g, e.body, &s, e.in, e.out, ops2, st2, NULL));
    CHECK_TYPE(g, st2[0], "float32[?,4]");
    MT_CHECK(st2[0] != st[0]);
    mt_graph_free(e.body);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_print_node(g, fin[0], &sb);
    MT_CHECK(strstr(sb.data, "scan{loop=#") != NULL);
    MT_CHECK(strstr(sb.data, "final state 0") != NULL);
    mt_strbuf_deinit(&sb);
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(g, 1, &fin[0], &sb));
    MT_CHECK(strstr(sb.data, "body (inputs: v1, v2, v3, v4, v5):\n") != NULL);
    MT_CHECK(strstr(sb.data, "tanh(") != NULL);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

MT_TEST(scan_body_outlives_graphs_through_clones)
{
    elman e;
    elman_body(&e, 2, 2);
    mt_graph *g = new_graph(), *h = new_graph();
    mt_var ops[5], st[2];
    elman_operands(g, 3, 2, 2, ops);
    mt_scan_spec s = spec_of(1, 1, 3, 1, -1, true);
    MT_CHECK_OK(mt_graph_scan(g, e.body, &s, e.in, e.out, ops, st, NULL));
    mt_graph_free(e.body);
    mt_var copy;
    MT_CHECK_OK(mt_graph_clone_with(h, g, 1, &st[1], 0, NULL, NULL, &copy, NULL));
    mt_graph_free(g); /* h still holds the body */
    CHECK_TYPE(h, copy, "float32[3]");
    mt_scan_info info;
    MT_CHECK(mt_graph_scan_info(h, copy, &info));
    MT_CHECK(info.spec.reverse);
    MT_CHECK_OK(mt_graph_verify(info.body));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(info.body, 2, info.outputs, &sb));
    MT_CHECK(strstr(sb.data, "tanh") != NULL);
    mt_strbuf_deinit(&sb);
    MT_CHECK_OK(mt_graph_verify(h));
    mt_graph_free(h);
}

MT_TEST(scan_without_sequences_and_errors)
{
    mt_graph *b = new_graph(), *g = new_graph();
    mt_var h = ph(b, "h", MT_FLOAT64, 1, SHAPE(2));
    mt_var h2 = mt_graph_mul(b, h, mt_graph_literal_float(b, 2.0));
    mt_var h0 = ph(g, "h0", MT_FLOAT64, 1, SHAPE(2));
    mt_var st, fin;
    mt_scan_spec s = spec_of(0, 1, 0, 0, 4, false);
    MT_CHECK_OK(mt_graph_scan(g, b, &s, &h, &h2, &h0, &st, &fin));
    CHECK_TYPE(g, st, "float64[4,2]");
    CHECK_TYPE(g, fin, "float64[2]");

    /* counts and steps */
    s = spec_of(0, 1, 0, 0, -1, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &h2, &h0, &st, &fin) ? 0 : st, MT_ERR_INVALID,
               "needs n_steps >= 0");
    mt_var X = ph(g, "X", MT_FLOAT64, 2, SHAPE(3, 2));
    mt_var xs = ph(b, "x", MT_FLOAT64, 1, SHAPE(2));
    mt_var bin[2] = {xs, h}, ops[2] = {X, h0};
    s = spec_of(1, 1, 0, 0, 3, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, bin, &h2, ops, &st, NULL) ? 0 : st, MT_ERR_INVALID,
               "n_steps is 3 but the loop has sequences");
    s = spec_of(0, 0, 0, 0, 1, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, NULL, &h2, NULL, &st, NULL) ? 0 : st, MT_ERR_INVALID,
               "no state and no output");
    /* operand dtype and shape */
    mt_var h0f = ph(g, "h0f", MT_FLOAT32, 1, SHAPE(2));
    s = spec_of(0, 1, 0, 0, 2, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &h2, &h0f, &st, NULL) ? 0 : st, MT_ERR_DTYPE,
               "initial state 0 is float32 but the body's placeholder is float64 (cast it");
    mt_var h03 = ph(g, "h03", MT_FLOAT64, 1, SHAPE(3));
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &h2, &h03, &st, NULL) ? 0 : st, MT_ERR_SHAPE,
               "initial state 0 has shape (3,) but the body's placeholder has (2,)");
    mt_var Xbad = ph(g, "Xbad", MT_FLOAT64, 1, SHAPE(3));
    mt_var opsb[2] = {Xbad, h0};
    s = spec_of(1, 1, 0, 0, -1, false);
    mt_var sum2 = mt_graph_add(b, h, xs);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, bin, &sum2, opsb, &st, NULL) ? 0 : st, MT_ERR_SHAPE,
               "a sequence adds a leading axis");
    /* sequences of different static lengths */
    mt_var Y = ph(g, "Y", MT_FLOAT64, 2, SHAPE(4, 2));
    mt_var ys = ph(b, "y", MT_FLOAT64, 1, SHAPE(2));
    mt_var bin3[3] = {xs, ys, h}, ops3[3] = {X, Y, h0};
    mt_var s3 = mt_graph_add(b, sum2, ys);
    s = spec_of(2, 1, 0, 0, -1, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, bin3, &s3, ops3, &st, NULL) ? 0 : st, MT_ERR_SHAPE,
               "sequence 1 has 4 rows but sequence 0 has 3");
    /* the body reads a placeholder that is not an input */
    mt_var k = ph(b, "k", MT_FLOAT64, 0, NULL);
    mt_var hk = mt_graph_mul(b, h, k);
    s = spec_of(0, 1, 0, 0, 2, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &hk, &h0, &st, NULL) ? 0 : st, MT_ERR_INVALID,
               "reads placeholder 'k'");
    /* random draws in the body */
    mt_var r = mt_graph_random_uniform(b, MT_FLOAT64, 1, SHAPE(2), 0.0, 1.0);
    mt_var hr = mt_graph_add(b, h, r);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &hr, &h0, &st, NULL) ? 0 : st,
               MT_ERR_UNSUPPORTED, "draws random numbers");
    /* a state that changes dtype or shape */
    mt_var hc = mt_graph_cast(b, h, MT_FLOAT32);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &hc, &h0, &st, NULL) ? 0 : st, MT_ERR_SHAPE,
               "state 0 enters the body as float64(2,) but leaves it as float32(2,)");
    mt_var hh[2] = {h, h};
    mt_var hcat = mt_graph_concatenate(b, 2, hh, 0);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h, &hcat, &h0, &st, NULL) ? 0 : st, MT_ERR_SHAPE,
               "leaves it as float64(4,)");
    /* inputs that are not placeholders, listed twice; the graph as its own body */
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, &h2, &h2, &h0, &st, NULL) ? 0 : st, MT_ERR_INVALID,
               "body input 0 is not a placeholder");
    mt_var twice[2] = {h, h};
    s = spec_of(0, 1, 1, 0, 2, false);
    CHECK_FAIL(g, mt_graph_scan(g, b, &s, twice, &h2, ops3 + 1, &st, NULL) ? 0 : st,
               MT_ERR_INVALID, "listed twice");
    s = spec_of(0, 1, 0, 0, 2, false);
    CHECK_FAIL(g, mt_graph_scan(g, g, &s, &h0, &h0, &h0, &st, NULL) ? 0 : st, MT_ERR_INVALID,
               "a graph of its own");
    /* mt_graph_make cannot name a body this graph does not hold */
    mt_graph *other = new_graph();
    mt_var h0o = ph(other, "h0", MT_FLOAT64, 1, SHAPE(2));
    CHECK_FAIL(other, mt_graph_make(other, MT_OP_SCAN, mt_graph_attrs(g, st), 1, &h0o),
               MT_ERR_INVALID, "must be one of this graph's loops");
    mt_graph_free(other);
    mt_graph_free(b);
    mt_graph_free(g);
}

MT_TEST(scan_gradient_is_a_reverse_loop)
{
    elman e;
    elman_body(&e, 3, 4);
    mt_graph *g = new_graph();
    mt_var ops[5], st[2], fin[1];
    elman_operands(g, 5, 3, 4, ops);
    mt_scan_spec s = spec_of(1, 1, 3, 1, -1, false);
    MT_CHECK_OK(mt_graph_scan(g, e.body, &s, e.in, e.out, ops, st, fin));
    mt_graph_free(e.body);
    mt_var cost = mt_graph_add(g, mt_graph_sum(g, st[1], 0, NULL, false),
                               mt_graph_sum(g, fin[0], 0, NULL, false));
    mt_var gr[5];
    MT_CHECK_OK(mt_graph_grad(g, cost, 5, ops, gr, NULL));
    CHECK_TYPE(g, gr[0], "float32[5,3]");
    CHECK_TYPE(g, gr[1], "float32[4]");
    CHECK_TYPE(g, gr[2], "float32[3,4]");
    CHECK_TYPE(g, gr[3], "float32[4,4]");
    CHECK_TYPE(g, gr[4], "float32[4]");
    /* the gradients come out of loops that run the other way */
    int32_t nrev = 0;
    mt_var *order = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_graph_toposort(g, 5, gr, &order, &n));
    for (int32_t i = 0; i < n; i++) {
        mt_scan_info info;
        if (mt_graph_scan_info(g, order[i], &info) && info.spec.reverse) nrev++;
    }
    mt_free(order);
    MT_CHECK(nrev >= 1);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(scan_equal_bodies_merge)
{
    /* the same step built twice (as a model builds its forward pass for the cost and again for
     * a channel) gives the same loop nodes; a different step does not */
    mt_graph *g = new_graph();
    mt_var ops[5], a[2], b[2], c[2];
    elman_operands(g, 7, 3, 4, ops);
    mt_scan_spec s = spec_of(1, 1, 3, 1, -1, false);
    elman e1, e2;
    elman_body(&e1, 3, 4);
    elman_body(&e2, 3, 4);
    mt_graph_set_name(e2.body, e2.out[0], "renamed"); /* names do not matter */
    MT_CHECK_OK(mt_graph_scan(g, e1.body, &s, e1.in, e1.out, ops, a, NULL));
    MT_CHECK_OK(mt_graph_scan(g, e2.body, &s, e2.in, e2.out, ops, b, NULL));
    MT_CHECK_EQ_INT(a[0], b[0]);
    MT_CHECK_EQ_INT(a[1], b[1]);
    /* reverse, or a body computing something else, is another loop */
    mt_scan_spec r = spec_of(1, 1, 3, 1, -1, true);
    MT_CHECK_OK(mt_graph_scan(g, e1.body, &r, e1.in, e1.out, ops, c, NULL));
    MT_CHECK(c[0] != a[0]);
    elman e3;
    elman_body(&e3, 3, 4);
    mt_var o3[2] = {mt_graph_sigmoid(e3.body, e3.out[0]), e3.out[1]};
    MT_CHECK_OK(mt_graph_scan(g, e3.body, &s, e3.in, o3, ops, c, NULL));
    MT_CHECK(c[0] != a[0]);
    mt_graph_free(e1.body);
    mt_graph_free(e2.body);
    mt_graph_free(e3.body);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}
