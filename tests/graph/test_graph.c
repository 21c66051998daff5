/* The graph object itself: hash-consing (equal expressions are one node; placeholders and
 * random nodes never merge; constants by value), sticky errors, provenance, toposort and
 * pruning, use counts, printers, the verifier (also on a deliberately corrupted node),
 * replacements, rebuilds and clones, and every op built at least once. */
#include "graph_test_util.h"

#include "../../src/graph/graph_impl.h"

MT_TEST(hashcons_same_expression)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(4));
    mt_var e1 = mt_graph_exp(g, mt_graph_add(g, a, b));
    int32_t n = mt_graph_size(g);
    mt_var e2 = mt_graph_exp(g, mt_graph_add(g, a, b));
    MT_CHECK_EQ_INT(e1, e2);
    MT_CHECK_EQ_INT(mt_graph_size(g), n); /* nothing new was created */
    MT_CHECK(mt_graph_add(g, b, a) != mt_graph_add(g, a, b)); /* no commutativity here */
    MT_CHECK(mt_graph_mul(g, a, b) != mt_graph_add(g, a, b));
    MT_CHECK_EQ_INT(mt_graph_sum(g, a, 1, AXES(1), false), mt_graph_sum(g, a, 1, AXES(-1), false));
    MT_CHECK(mt_graph_sum(g, a, 1, AXES(1), false) != mt_graph_sum(g, a, 1, AXES(1), true));
    MT_CHECK(mt_graph_sum(g, a, 1, AXES(1), false) != mt_graph_max(g, a, 1, AXES(1), false));
    /* a long chain built twice stays one chain (exercises pages and table growth) */
    mt_var x = a, y = a;
    for (int i = 0; i < 3000; i++) x = mt_graph_add(g, mt_graph_mul(g, x, b), a);
    n = mt_graph_size(g);
    for (int i = 0; i < 3000; i++) y = mt_graph_add(g, mt_graph_mul(g, y, b), a);
    MT_CHECK_EQ_INT(x, y);
    MT_CHECK_EQ_INT(mt_graph_size(g), n);
    MT_CHECK(mt_graph_mem_used(g) > 6000 * sizeof(mt_op_attrs));
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(placeholders_and_random_never_merged)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(3));
    mt_var c = ph(g, NULL, MT_FLOAT32, 1, SHAPE(3));
    MT_CHECK(a != b && b != c);
    MT_CHECK_STR_EQ(mt_graph_name(g, a), "a");
    MT_CHECK(strncmp(mt_graph_name(g, c), "in", 2) == 0);
    MT_CHECK_EQ_INT(mt_graph_find_placeholder(g, "b"), b);
    MT_CHECK_EQ_INT(mt_graph_find_placeholder(g, "zz"), MT_VAR_NONE);
    CHECK_FAIL(g, mt_graph_placeholder(g, "a", MT_FLOAT32, 1, SHAPE(3)), MT_ERR_INVALID,
               "name 'a' is already used");
    CHECK_FAIL(g, mt_graph_placeholder(g, "big", MT_FLOAT32, 9, NULL), MT_ERR_INVALID,
               "ndim 9 is out of range");
    CHECK_FAIL(g, mt_graph_placeholder(g, "neg", MT_FLOAT32, 1, SHAPE(-5)), MT_ERR_SHAPE,
               "invalid shape (?,)");
    mt_graph_set_seed(g, 42);
    mt_var r1 = mt_graph_random_normal(g, MT_FLOAT32, 1, SHAPE(3), 0, 1);
    mt_var r2 = mt_graph_random_normal(g, MT_FLOAT32, 1, SHAPE(3), 0, 1);
    MT_CHECK(r1 != r2);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, r1)->seed, 42);
    /* but expressions over one random node are shared */
    MT_CHECK_EQ_INT(mt_graph_add(g, a, r1), mt_graph_add(g, a, r1));
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(constants_by_value)
{
    mt_graph *g = new_graph();
    float d1[4] = {1, 2, 3, 4}, d2[4] = {1, 2, 3, 4}, d3[4] = {1, 2, 3, 5};
    mt_var c1 = mt_graph_constant(g, MT_FLOAT32, 2, SHAPE(2, 2), d1);
    mt_var c2 = mt_graph_constant(g, MT_FLOAT32, 2, SHAPE(2, 2), d2);
    mt_var c3 = mt_graph_constant(g, MT_FLOAT32, 2, SHAPE(2, 2), d3);
    mt_var c4 = mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(4), d1);
    MT_CHECK_EQ_INT(c1, c2);
    MT_CHECK(c1 != c3 && c1 != c4);
    MT_CHECK(mt_graph_attrs(g, c1)->data != (const void *)d1); /* copied */
    d1[0] = 100; /* the graph does not see later changes */
    MT_CHECK_CLOSE(((const float *)mt_graph_attrs(g, c1)->data)[0], 1.0, 0, 0);
    MT_CHECK_EQ_INT(mt_graph_scalar(g, MT_FLOAT32, 2), mt_graph_scalar(g, MT_FLOAT32, 2.0));
    MT_CHECK(mt_graph_scalar(g, MT_FLOAT32, 2) != mt_graph_scalar(g, MT_FLOAT64, 2));
    MT_CHECK(mt_graph_scalar(g, MT_FLOAT64, 2) != mt_graph_literal_float(g, 2));
    MT_CHECK_EQ_INT(mt_graph_scalar_int(g, MT_INT64, INT64_MAX), mt_graph_scalar_int(g, MT_INT64, INT64_MAX));
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, mt_graph_scalar_int(g, MT_INT64, INT64_MAX - 1), &s));
    MT_CHECK(s.v.i == INT64_MAX - 1);
    /* a large constant is hashed by content */
    enum { BIG = 100000 };
    double *big1 = mt_malloc(BIG * sizeof(double)), *big2 = mt_malloc(BIG * sizeof(double));
    MT_CHECK(big1 && big2);
    for (int i = 0; i < BIG; i++) big1[i] = big2[i] = i * 0.5;
    mt_var k1 = mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(BIG), big1);
    mt_var k2 = mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(BIG), big2);
    big2[BIG - 1] = -1;
    mt_var k3 = mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(BIG), big2);
    MT_CHECK_EQ_INT(k1, k2);
    MT_CHECK(k1 != k3);
    MT_CHECK(!mt_graph_scalar_value(g, k1, &s));
    mt_free(big1);
    mt_free(big2);
    CHECK_FAIL(g, mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(-1), d1), MT_ERR_SHAPE, "must be static");
    CHECK_FAIL(g, mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(2), NULL), MT_ERR_INVALID, "data is NULL");
    CHECK_TYPE(g, mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(0), NULL), "float32[0]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(sticky_errors)
{
    mt_graph *g = new_graph();
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    MT_CHECK_STR_EQ(mt_graph_last_error(g), "");
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(5));
    /* the first error is kept; MT_VAR_NONE propagates without new messages */
    mt_var bad = mt_graph_add(g, a, b);
    MT_CHECK_EQ_INT(bad, MT_VAR_NONE);
    mt_var y = mt_graph_exp(g, mt_graph_mul(g, bad, a));
    MT_CHECK_EQ_INT(y, MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_graph_sum(g, y, 0, NULL, false), MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_graph_last_error(g), "add: shapes (3, 4) and (5,) do not broadcast") != NULL);
    /* a second, different error: thread-local has it, the graph keeps the first */
    MT_CHECK_EQ_INT(mt_graph_sum(g, a, 1, AXES(7), false), MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "sum: axis 7") != NULL);
    MT_CHECK(strstr(mt_graph_last_error(g), "add: shapes") != NULL);
    /* valid builders keep working after an error */
    MT_CHECK(mt_graph_exp(g, a) != MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_ERR_SHAPE);
    mt_graph_clear_error(g);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    MT_CHECK_STR_EQ(mt_graph_last_error(g), "");
    /* split reports through its status and the sticky error */
    mt_var parts[2];
    MT_CHECK_EQ_INT(mt_graph_split(g, MT_VAR_NONE, 0, 2, NULL, parts), MT_ERR_INVALID);
    mt_graph_clear_error(g);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
    MT_CHECK_EQ_INT(mt_graph_status(NULL), MT_ERR_INVALID);
    MT_CHECK_EQ_INT(mt_graph_add(NULL, 1, 2), MT_VAR_NONE);
    mt_graph_free(NULL);
}

MT_TEST(provenance_and_error_origin)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(5));
    int line = __LINE__ + 1;
    mt_var e = mt_graph_exp(MT_AT(g), a);
    const mt_provenance *p = mt_graph_provenance(g, e);
    MT_CHECK(p->file && strstr(p->file, "test_graph.c"));
    MT_CHECK_EQ_INT(p->line, line);
    MT_CHECK_EQ_INT(p->source, -1);
    /* an error names the call site */
    char want[64];
    snprintf(want, sizeof(want), "test_graph.c:%d)", __LINE__ + 1);
    CHECK_FAIL(g, mt_graph_add(MT_AT(g), a, b), MT_ERR_SHAPE, want);
    /* a span of a source text (the expression parser's form) */
    int32_t src = mt_graph_add_source(g, "a + b * 2");
    MT_CHECK_EQ_INT(src, 0);
    MT_CHECK_STR_EQ(mt_graph_source_text(g, src), "a + b * 2");
    mt_graph_set_origin_span(g, src, 1, 5);
    CHECK_FAIL(g, mt_graph_add(g, a, b), MT_ERR_SHAPE,
               "add: shapes (3, 4) and (5,) do not broadcast (from 'a + b' col 1-5)");
    mt_var lg = mt_graph_log(g, a);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g, lg, &sb);
    MT_CHECK_STR_EQ(sb.data, "from 'a + b' col 1-5");
    /* composite builders give all their nodes the origin */
    mt_var cl = mt_graph_clip(g, a, mt_graph_literal_float(g, 0), mt_graph_literal_float(g, 1));
    MT_CHECK_EQ_INT(mt_graph_provenance(g, mt_graph_input(g, cl, 0))->col_end, 5);
    /* rewrite origins: v's provenance plus the rule */
    mt_graph_set_origin_from(g, lg, "log_to_log1p");
    mt_var r = mt_graph_log1p(g, a);
    mt_strbuf_clear(&sb);
    mt_graph_format_provenance(g, r, &sb);
    MT_CHECK_STR_EQ(sb.data, "from 'a + b' col 1-5 via log_to_log1p");
    mt_graph_set_origin_from(g, r, "second");
    mt_var r2 = mt_graph_expm1(g, a);
    MT_CHECK_EQ_INT(mt_graph_provenance(g, r2)->nrules, 2);
    MT_CHECK_STR_EQ(mt_graph_provenance(g, r2)->rules[1], "second");
    mt_graph_clear_origin(g);
    mt_var plain = mt_graph_sin(g, a);
    mt_strbuf_clear(&sb);
    mt_graph_format_provenance(g, plain, &sb);
    MT_CHECK_STR_EQ(sb.data ? sb.data : "", "");
    /* hash-consing keeps the first provenance */
    mt_graph_set_origin(g, "other.c", 7);
    MT_CHECK_EQ_INT(mt_graph_log(g, a), lg);
    MT_CHECK_EQ_INT(mt_graph_provenance(g, lg)->source, src);
    mt_strbuf_deinit(&sb);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(toposort_and_pruning)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(3));
    mt_var unused = mt_graph_exp(g, b);
    mt_var s = mt_graph_add(g, a, a);
    mt_var t = mt_graph_mul(g, s, a);
    mt_var other = mt_graph_log(g, t);
    mt_var *order;
    int32_t n;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &t, &order, &n));
    MT_CHECK_EQ_INT(n, 3);
    MT_CHECK_EQ_INT(order[0], a);
    MT_CHECK_EQ_INT(order[1], s);
    MT_CHECK_EQ_INT(order[2], t);
    mt_free(order);
    mt_var outs[2] = {other, unused};
    MT_CHECK_OK(mt_graph_toposort(g, 2, outs, &order, &n));
    MT_CHECK_EQ_INT(n, 6);
    for (int32_t i = 1; i < n; i++) MT_CHECK(order[i - 1] < order[i]);
    /* operands always precede users */
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < mt_graph_ninputs(g, order[i]); k++)
            MT_CHECK(mt_graph_input(g, order[i], k) < order[i]);
    mt_free(order);
    MT_CHECK_OK(mt_graph_toposort(g, 0, NULL, &order, &n));
    MT_CHECK_EQ_INT(n, mt_graph_size(g));
    mt_free(order);
    MT_CHECK_ERR(mt_graph_toposort(g, 1, (mt_var[]){99}, &order, &n), MT_ERR_INVALID, "v99");
    int32_t *counts;
    MT_CHECK_OK(mt_graph_use_counts(g, 1, &t, &counts));
    MT_CHECK_EQ_INT(counts[a], 3); /* add(a, a) twice, mul(s, a) once */
    MT_CHECK_EQ_INT(counts[s], 1);
    MT_CHECK_EQ_INT(counts[t], 1); /* the output position */
    MT_CHECK_EQ_INT(counts[b], 0);
    MT_CHECK_EQ_INT(counts[unused], 0);
    mt_free(counts);
    mt_graph_free(g);
}

MT_TEST(printers)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(4));
    int32_t src = mt_graph_add_source(g, "sum(a + b, axis=1)");
    mt_graph_set_origin_span(g, src, 5, 9);
    mt_var s = mt_graph_add(g, a, b);
    mt_graph_set_origin_span(g, src, 1, 18);
    mt_var r = mt_graph_sum(g, s, 1, AXES(1), true);
    mt_graph_clear_origin(g);
    mt_var c = mt_graph_mul(g, r, mt_graph_literal_float(g, 0.5));
    mt_graph_set_name(g, c, "half");
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(g, 1, &c, &sb));
    const char *want =
        "v1 = input 'a' : float32[?,4]\n"
        "v2 = input 'b' : float32[4]\n"
        "v3 = dimshuffle{x,0}(v2) : float32[1,4]   # from 'a + b' col 5-9\n"
        "v4 = add(v1, v3) : float32[?,4]   # from 'a + b' col 5-9\n"
        "v5 = sum{axes=[1], keepdims}(v4) : float32[?,1]   # from 'sum(a + b, axis=1)' col 1-18\n"
        "v7 = const [0.5] : float32[1,1]\n"
        "v8 'half' = mul(v5, v7) : float32[?,1]\n"
        "outputs: v8\n";
    MT_CHECK_STR_EQ(sb.data, want);
    mt_strbuf_clear(&sb);
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 3));
    mt_var y = ph(g, "y", MT_FLOAT32, 2, SHAPE(3, 3));
    mt_var z = mt_graph_add(g, x, y);
    mt_graph_print_node(g, z, &sb);
    MT_CHECK(strstr(sb.data, "add(v9, v10) : float32[3,3] !check") != NULL);
    mt_strbuf_clear(&sb);
    mt_var sl = mt_graph_index(g, y, 2, (mt_idx[]){mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -1), mt_idx_int(1)});
    mt_graph_print_node(g, sl, &sb);
    MT_CHECK(strstr(sb.data, "slice{2::-1, 1}(v10) : float32[3]") != NULL);
    mt_strbuf_clear(&sb);
    mt_graph_print_node(g, mt_graph_cast(g, y, MT_INT8), &sb);
    MT_CHECK(strstr(sb.data, "cast{int8}(v10) : int8[3,3]") != NULL);
    mt_strbuf_clear(&sb);
    mt_var outs[2] = {c, z};
    MT_CHECK_OK(mt_graph_print_dot(g, 2, outs, &sb));
    MT_CHECK(strncmp(sb.data, "digraph mltrain {", 17) == 0);
    MT_CHECK(strstr(sb.data, "v1 -> v4;") != NULL);
    MT_CHECK(strstr(sb.data, "v3 -> v4;") != NULL);
    MT_CHECK(strstr(sb.data, "v8 [label=\"v8 mul\\nfloat32[?,1]\", peripheries=2];") != NULL);
    MT_CHECK(strstr(sb.data, "from 'a + b' col 5-9") != NULL);
    MT_CHECK(strstr(sb.data, "v6") == NULL); /* the weak literal was not used */
    MT_CHECK(sb.data[sb.len - 2] == '}');
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

MT_TEST(verify_detects_corruption)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var e = mt_graph_exp(g, a);
    mt_var s = mt_graph_sum(g, e, 1, AXES(0), false);
    MT_CHECK_OK(mt_graph_verify(g));
    mt__node *n = mt__graph_node(g, s);
    n->type.shape[0] = 5;
    MT_CHECK_ERR(mt_graph_verify(g), MT_ERR_INTERNAL, "differs from re-inference");
    n->type.shape[0] = 4;
    MT_CHECK_OK(mt_graph_verify(g));
    n->attrs.keepdims = true; /* key changed under the table */
    MT_CHECK_ERR(mt_graph_verify(g), MT_ERR_INTERNAL, "v3");
    n->attrs.keepdims = false;
    mt_var *ins = (mt_var *)n->in;
    ins[0] = s;
    MT_CHECK_ERR(mt_graph_verify(g), MT_ERR_INTERNAL, "not an earlier node");
    ins[0] = e;
    n->attrs.perm[0] = 3; /* a field sum does not use */
    MT_CHECK_ERR(mt_graph_verify(g), MT_ERR_INTERNAL, "not canonical");
    n->attrs.perm[0] = 0;
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(replace_and_apply)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var one = mt_graph_scalar(g, MT_FLOAT32, 1);
    mt_graph_set_origin(g, "model.c", 10);
    mt_var t = mt_graph_mul(g, a, one);
    mt_var u = mt_graph_exp(g, t);
    mt_var out = mt_graph_add(g, u, t);
    mt_graph_clear_origin(g);
    /* x * 1 -> x (an older node: its provenance is not touched) */
    MT_CHECK_OK(mt_graph_replace(g, t, a, "mul_one"));
    MT_CHECK_EQ_INT(mt_graph_resolve(g, t), a);
    MT_CHECK_EQ_INT(mt_graph_provenance(g, a)->nrules, 0);
    mt_var outs[1] = {out};
    MT_CHECK_OK(mt_graph_apply_replacements(g, 1, outs));
    /* out' = add(exp(a), a), rebuilt nodes keep the user's provenance */
    MT_CHECK(outs[0] != out);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "add");
    mt_var e2 = mt_graph_input(g, outs[0], 0);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 1), a);
    MT_CHECK_EQ_INT(e2, mt_graph_exp(g, a));
    MT_CHECK_STR_EQ(mt_graph_provenance(g, outs[0])->file, "model.c");
    MT_CHECK_STR_EQ(mt_graph_provenance(g, e2)->file, "model.c");
    /* replacing with a new node records the rule and inherits the origin */
    mt_var sq = mt_graph_square(g, a);
    mt_var nw = mt_graph_mul(g, a, a);
    MT_CHECK_OK(mt_graph_replace(g, nw, sq, NULL)); /* chain: nw -> sq */
    mt_var e3 = mt_graph_exp(g, nw);
    mt_var q = mt_graph_sqrt(g, a);
    MT_CHECK_OK(mt_graph_replace(g, e2, q, "exp_to_sqrt"));
    MT_CHECK_STR_EQ(mt_graph_provenance(g, q)->rules[0], "exp_to_sqrt");
    MT_CHECK_STR_EQ(mt_graph_provenance(g, q)->file, "model.c");
    mt_var outs2[2] = {outs[0], e3};
    MT_CHECK_OK(mt_graph_apply_replacements(g, 2, outs2));
    MT_CHECK_EQ_INT(mt_graph_input(g, outs2[0], 0), q);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs2[1], 0), sq);
    /* type mismatch and cycles are refused */
    mt_var other = ph(g, "o", MT_FLOAT32, 1, SHAPE(4));
    MT_CHECK_ERR(mt_graph_replace(g, a, other, "bad_rule"), MT_ERR_INVALID,
                 "bad_rule: v1 (float32[3]) cannot be replaced by v");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_replace(g, q, e2, "loop"), MT_ERR_INVALID, "cycle");
    mt_graph_clear_error(g);
    /* a replacement that makes the dependence graph cyclic is reported, not followed */
    mt_var p1 = mt_graph_log(g, a);
    mt_var p2 = mt_graph_log(g, p1);
    MT_CHECK_OK(mt_graph_replace(g, p1, p2, "grow"));
    mt_var o3[1] = {p2};
    MT_CHECK_ERR(mt_graph_apply_replacements(g, 1, o3), MT_ERR_INVALID, "cycle");
    mt_graph_clear_error(g);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(replace_hits_replaced_node)
{
    /* rebuilding a node may produce an existing node that was itself replaced */
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(3));
    mt_var ea = mt_graph_exp(g, a);
    mt_var eb = mt_graph_exp(g, b);
    mt_var fin = mt_graph_neg(g, eb);
    MT_CHECK_OK(mt_graph_replace(g, ea, mt_graph_sin(g, a), "r1"));
    MT_CHECK_OK(mt_graph_replace(g, b, a, "r2")); /* exp(b) rebuilds to exp(a), replaced by sin(a) */
    mt_var o[1] = {fin};
    MT_CHECK_OK(mt_graph_apply_replacements(g, 1, o));
    MT_CHECK_EQ_INT(o[0], mt_graph_neg(g, mt_graph_sin(g, a)));
    mt_graph_free(g);
}

MT_TEST(rebuild_and_make)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var b = ph(g, "b", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_graph_set_origin(g, "net.c", 3);
    mt_var s = mt_graph_sum(g, a, 1, AXES(1), false);
    mt_graph_set_origin(g, "elsewhere.c", 99);
    MT_CHECK_EQ_INT(mt_graph_rebuild(g, s, (mt_var[]){a}), s);
    mt_var s2 = mt_graph_rebuild(g, s, (mt_var[]){b});
    MT_CHECK(s2 != s);
    MT_CHECK_EQ_INT(s2, mt_graph_sum(g, b, 1, AXES(1), false));
    MT_CHECK_STR_EQ(mt_graph_provenance(g, s2)->file, "net.c");
    MT_CHECK_STR_EQ(mt_graph_provenance(g, mt_graph_exp(g, a))->file, "elsewhere.c");
    mt_graph_clear_origin(g);
    /* make: the raw constructor checks the contract instead of promoting */
    mt_op_attrs at;
    memset(&at, 0, sizeof(at));
    at.sop = MT_SOP_ADD;
    at.perm[3] = 7; /* junk in a field add does not use is ignored */
    mt_var m = mt_graph_make(g, MT_OP_ELEMWISE, &at, 2, (mt_var[]){a, b});
    MT_CHECK_EQ_INT(m, mt_graph_add(g, a, b));
    mt_var i = ph(g, "i", MT_INT32, 2, SHAPE(2, 3));
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_ELEMWISE, &at, 2, (mt_var[]){a, i}), MT_ERR_DTYPE,
               "add: operand dtypes differ (float32 and int32)");
    mt_var v = ph(g, "v", MT_FLOAT32, 1, SHAPE(3));
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_ELEMWISE, &at, 2, (mt_var[]){a, v}), MT_ERR_SHAPE,
               "operands must have equal ndim");
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_ELEMWISE, &at, 1, (mt_var[]){a}), MT_ERR_INVALID,
               "add: expects 2 operands");
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_INPUT, NULL, 0, NULL), MT_ERR_INVALID, "placeholder");
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_MATMUL, NULL, 1, (mt_var[]){a}), MT_ERR_INVALID,
               "matmul: 1 operands given, expects 2");
    memset(&at, 0, sizeof(at));
    at.dist = MT_RANDOM_UNIFORM;
    at.dtype = MT_FLOAT32;
    at.p1 = 1;
    at.nshape = 1;
    at.shape[0] = 4;
    mt_var r1 = mt_graph_make(g, MT_OP_RANDOM, &at, 0, NULL);
    mt_var r2 = mt_graph_make(g, MT_OP_RANDOM, &at, 0, NULL);
    MT_CHECK(r1 && r2 && r1 != r2);
    MT_CHECK(mt_graph_attrs(g, r1)->stream != mt_graph_attrs(g, r2)->stream);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(clone_with_substitution)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var w = ph(g, "w", MT_FLOAT32, 2, SHAPE(4, 3));
    float bias[3] = {1, 2, 3};
    mt_var bv = mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(3), bias);
    int32_t src = mt_graph_add_source(g, "x @ w + b");
    mt_graph_set_origin_span(g, src, 1, 5);
    mt_var h = mt_graph_add(g, mt_graph_matmul(g, x, w), bv);
    mt_graph_clear_origin(g);
    mt_var drop = mt_graph_random(g, MT_RANDOM_BINOMIAL, MT_FLOAT32, 0, NULL, h, 1, 0.5);
    mt_var y = mt_graph_softmax(g, mt_graph_mul(g, h, drop), -1);
    /* copy into a fresh graph */
    mt_graph *g2 = new_graph();
    mt_var y2, map[64] = {0};
    MT_CHECK(mt_graph_size(g) < 64);
    MT_CHECK_OK(mt_graph_clone_with(g2, g, 1, &y, 0, NULL, NULL, &y2, map));
    CHECK_TYPE(g2, y2, "float32[?,3]");
    MT_CHECK_EQ_INT(mt_graph_op(g2, y2), MT_OP_SOFTMAX);
    mt_var x2 = mt_graph_find_placeholder(g2, "x");
    MT_CHECK_EQ_INT(map[x], x2);
    MT_CHECK_EQ_INT(mt_graph_attrs(g2, map[drop])->stream, mt_graph_attrs(g, drop)->stream);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g2, map[h], &sb);
    MT_CHECK_STR_EQ(sb.data, "from 'x @ w' col 1-5");
    mt_strbuf_deinit(&sb);
    mt_var bias_node = mt_graph_input(g, h, 1); /* the bias constant, reshaped to [1,3] */
    MT_CHECK_EQ_INT(mt_graph_op(g, bias_node), MT_OP_CONST);
    MT_CHECK_EQ_INT(map[bv], 0); /* not needed by y */
    MT_CHECK_CLOSE(((const float *)mt_graph_attrs(g2, map[bias_node])->data)[2], 3.0, 0, 0);
    int32_t n1, n2;
    mt_var *o1, *o2;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &y, &o1, &n1));
    MT_CHECK_OK(mt_graph_toposort(g2, 1, &y2, &o2, &n2));
    MT_CHECK_EQ_INT(n1, n2);
    for (int32_t i = 0; i < n1; i++) MT_CHECK_EQ_INT(mt_graph_op(g, o1[i]), mt_graph_op(g2, o2[i]));
    mt_free(o1);
    mt_free(o2);
    /* a new random node in g2 does not reuse the copied stream */
    mt_var rn = mt_graph_random_uniform(g2, MT_FLOAT32, 0, NULL, 0, 1);
    MT_CHECK(mt_graph_attrs(g2, rn)->stream > mt_graph_attrs(g2, map[drop])->stream);
    /* substitution in the same graph: x -> 2*x, with static shape */
    mt_var x3 = ph(g, "x3", MT_FLOAT32, 2, SHAPE(5, 4));
    mt_var sub = mt_graph_mul(g, x3, mt_graph_literal_float(g, 2));
    mt_var y3;
    MT_CHECK_OK(mt_graph_clone_with(g, g, 1, &y, 1, &x, &sub, &y3, NULL));
    CHECK_TYPE(g, y3, "float32[5,3]"); /* re-inferred with the new operand */
    mt_var y4;
    MT_CHECK_OK(mt_graph_clone_with(g, g, 1, &y, 0, NULL, NULL, &y4, NULL));
    MT_CHECK_EQ_INT(y4, y); /* nothing substituted: the same nodes */
    /* a placeholder of the same name but another type in the destination is an error */
    mt_graph *g3 = new_graph();
    ph(g3, "x", MT_INT32, 1, SHAPE(2));
    mt_var y5;
    MT_CHECK_ERR(mt_graph_clone_with(g3, g, 1, &y, 0, NULL, NULL, &y5, NULL), MT_ERR_INVALID,
                 "placeholder 'x' exists in the destination with type int32[2]");
    MT_CHECK_EQ_INT(y5, MT_VAR_NONE);
    MT_CHECK_OK(mt_graph_verify(g2));
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g3);
    mt_graph_free(g2);
    mt_graph_free(g);
}

MT_TEST(deep_graph_rebuild)
{
    /* deep chains must not exhaust the C stack in rebuilds */
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(3));
    mt_var x = a;
    for (int i = 0; i < 50000; i++) x = mt_graph_add(g, x, b);
    MT_CHECK_OK(mt_graph_replace(g, a, mt_graph_neg(g, b), "deep"));
    mt_var o[1] = {x};
    MT_CHECK_OK(mt_graph_apply_replacements(g, 1, o));
    mt_var y = o[0];
    int depth = 0;
    while (mt_graph_op(g, y) == MT_OP_ELEMWISE && mt_graph_attrs(g, y)->sop == MT_SOP_ADD) {
        y = mt_graph_input(g, y, 0);
        depth++;
    }
    MT_CHECK_EQ_INT(depth, 50000);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, y), "neg");
    mt_graph_free(g);
}

MT_TEST(eval_shape_runtime_checks)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var y = ph(g, "y", MT_FLOAT32, 2, SHAPE(3, -1));
    int32_t src = mt_graph_add_source(g, "x + y");
    mt_graph_set_origin_span(g, src, 1, 5);
    mt_var z = mt_graph_add(g, x, y);
    CHECK_TYPE(g, z, "float32[3,4]");
    int64_t sx[2] = {3, 4}, sy[2] = {3, 4}, out[2] = {0, 0};
    const int64_t *ins[2] = {sx, sy};
    MT_CHECK_OK(mt_graph_eval_shape(g, z, ins, out));
    MT_CHECK_EQ_INT(out[0], 3);
    MT_CHECK_EQ_INT(out[1], 4);
    sx[0] = 2;
    MT_CHECK_EQ_INT(mt_graph_eval_shape(g, z, ins, out), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_last_error(), "add: shapes (2, 4) and (3, 4) do not broadcast") != NULL);
    MT_CHECK(strstr(mt_last_error(), "from 'x + y' col 1-5") != NULL);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK); /* run-time errors are not sticky */
    /* unknown dims are never broadcast at run time, even when one happens to be 1 */
    sx[0] = 1;
    MT_CHECK_EQ_INT(mt_graph_eval_shape(g, z, ins, out), MT_ERR_SHAPE);
    CHECK_FAIL(g, mt_graph_matmul(g, x, y), MT_ERR_SHAPE, "(?, 4) @ (3, ?) (4 vs 3)");
    mt_var p = ph(g, "p", MT_FLOAT32, 2, SHAPE(2, -1));
    mt_var q = ph(g, "q", MT_FLOAT32, 2, SHAPE(-1, 5));
    mt_var m = mt_graph_matmul(g, p, q);
    CHECK_TYPE(g, m, "float32[2,5]");
    sx[0] = 2;
    sy[1] = 5;
    MT_CHECK_EQ_INT(mt_graph_eval_shape(g, m, ins, out), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_last_error(), "matmul: inner dimensions differ: (2, 4) @ (3, 5) (4 vs 3)") != NULL);
    mt_graph_free(g);
}

/* Every op, built through the public builders; the verifier must accept the graph. */
MT_TEST(every_op_built_and_verified)
{
    mt_graph *g = new_graph();
    bool seen[MT_OP_COUNT] = {false};
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 5));
    mt_var w = ph(g, "w", MT_FLOAT32, 2, SHAPE(5, 3));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 5));
    mt_var lab = ph(g, "lab", MT_INT32, 1, SHAPE(4));
    mt_var idx = ph(g, "idx", MT_INT64, 1, SHAPE(2));
    mt_var vs[] = {
        mt_graph_scalar(g, MT_FLOAT32, 1), mt_graph_exp(g, x), mt_graph_sum(g, x, 0, NULL, false),
        mt_graph_logsumexp(g, x, 1, AXES(1), false), mt_graph_size_of(g, u, 0, NULL),
        mt_graph_softmax(g, x, 1), mt_graph_logsoftmax(g, x, 1),
        mt_graph_crossentropy(g, x, x, 1), mt_graph_crossentropy_labels(g, x, lab, 1),
        mt_graph_softmax_crossentropy(g, x, x, 1),
        mt_graph_softmax_crossentropy_labels(g, x, lab, 1), mt_graph_matmul(g, x, w),
        mt_graph_softmax_crossentropy_labels_dx(g, mt_graph_ones(g, MT_FLOAT32, 1, SHAPE(4)), x,
                                                lab, 1),
        mt_graph_gemm(g, x, w, mt_graph_zeros(g, MT_FLOAT32, 1, SHAPE(3)), 1, 1, false, false),
        mt_graph_reshape(g, x, 1, SHAPE(20)), mt_graph_transpose(g, x, NULL),
        mt_graph_broadcast_to(g, x, 3, SHAPE(2, 4, 5)), mt_graph_zeros_like(g, u),
        mt_graph_concatenate(g, 2, (mt_var[]){x, x}, 0),
        mt_graph_slice_axis(g, x, 0, 1, 3, 1),
        mt_graph_set_subtensor(g, x, 1, (mt_idx[]){mt_idx_int(0)}, mt_graph_literal_float(g, 0)),
        mt_graph_inc_subtensor(g, x, 1, (mt_idx[]){mt_idx_int(0)}, mt_graph_literal_float(g, 1)),
        mt_graph_gather(g, x, idx, 0),
        mt_graph_scatter_add(g, x, idx, mt_graph_ones(g, MT_FLOAT32, 2, SHAPE(2, 5)), 0),
        mt_graph_one_hot(g, lab, 5, MT_FLOAT32), mt_graph_arange(g, MT_INT64, 0, 4, 1),
        mt_graph_random_uniform(g, MT_FLOAT32, 1, SHAPE(3), 0, 1), mt_graph_stop_gradient(g, x),
        mt_graph_grad_clip(g, x, -1, 1), mt_graph_shape_assert(g, u, 2, SHAPE(7, 5)),
        mt_graph_allreduce(g, x, 0),
        mt_graph_conv2d(g, ph(g, "im", MT_FLOAT32, 4, SHAPE(2, 3, 6, 6)),
                        ph(g, "ker", MT_FLOAT32, 4, SHAPE(4, 3, 3, 3)), NULL, NULL),
        mt_graph_conv2d_grad_input(g, ph(g, "dy", MT_FLOAT32, 4, SHAPE(2, 4, 4, 4)),
                                   mt_graph_find_placeholder(g, "ker"),
                                   mt_graph_find_placeholder(g, "im"), NULL, NULL),
        mt_graph_conv2d_grad_weight(g, mt_graph_find_placeholder(g, "im"),
                                    mt_graph_find_placeholder(g, "dy"), AXES(3, 3), NULL, NULL),
        mt_graph_pool2d_grad(g, mt_graph_find_placeholder(g, "im"),
                             mt_graph_pool2d(g, mt_graph_find_placeholder(g, "im"), MT_POOL_MAX,
                                             AXES(2, 2), NULL, NULL, false),
                             ph(g, "dp", MT_FLOAT32, 4, SHAPE(2, 3, 3, 3)), MT_POOL_MAX,
                             AXES(2, 2), NULL, NULL, false),
    };
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) MT_CHECK(vs[i] != MT_VAR_NONE);
    { /* a loop: running sum of x's rows */
        mt_graph *body = new_graph();
        mt_var bin[2] = {ph(body, "row", MT_FLOAT32, 1, SHAPE(5)),
                         ph(body, "acc", MT_FLOAT32, 1, SHAPE(5))};
        mt_var bout = mt_graph_add(body, bin[0], bin[1]);
        mt_scan_spec s = {1, 1, 0, 0, -1, false};
        mt_var ops[2] = {x, mt_graph_zeros(g, MT_FLOAT32, 1, SHAPE(5))}, run;
        MT_CHECK_OK(mt_graph_scan(g, body, &s, bin, &bout, ops, &run, NULL));
        mt_graph_free(body);
    }
    for (mt_var v = 1; v <= mt_graph_size(g); v++) seen[mt_graph_op(g, v)] = true;
    for (int op = 0; op < MT_OP_COUNT; op++)
        if (!seen[op]) mt_test_fail(__FILE__, __LINE__, "op %s was not built", mt_op_name((mt_op)op));
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    MT_CHECK_OK(mt_graph_verify(g));
    /* table facts the JIT relies on */
    MT_CHECK_EQ_INT(mt_op_lowering(MT_OP_ELEMWISE), MT_LOWER_ELEMWISE);
    MT_CHECK_EQ_INT(mt_op_lowering(MT_OP_MATMUL), MT_LOWER_LIBRARY);
    MT_CHECK_EQ_INT(mt_op_lowering(MT_OP_REDUCE), MT_LOWER_REDUCTION);
    MT_CHECK_EQ_INT(mt_op_lowering(MT_OP_DIMSHUFFLE), MT_LOWER_VIEW);
    MT_CHECK_EQ_INT(mt_op_arity(MT_OP_CONCAT), -1);
    MT_CHECK_STR_EQ(mt_op_name(MT_OP_SOFTMAX_XENT_LABELS), "softmax_crossentropy_labels");
    MT_CHECK_STR_EQ(mt_lowering_name(MT_LOWER_VIEW), "view");
    MT_CHECK_STR_EQ(mt_op_name(MT_OP_COUNT), "invalid");
    MT_CHECK_EQ_INT(mt_graph_op(g, 0), MT_OP_COUNT);
    MT_CHECK(mt_graph_type(g, 100000) == NULL);
    mt_graph_free(g);
}
