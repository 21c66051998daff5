/* The rewrite system, graph side: for every rule, the optimized graph contains the ops the rule
 * introduces and not the ones it removes, and the new nodes' provenance names the rule; the
 * registry (unique names, phases, soundness classes); disabling rules by name and the error for
 * unknown names; the FINITE-class identities firing only for known-finite operands; the cost
 * check (every sweep lowers the cost, refused replacements are counted); termination and speed
 * on adversarial graphs (10k-node chains, alternating patterns, deep stability chains).
 * Value equivalence of every rule is tested separately in tests/jit/test_rewrite_values.c. */
#include "graph_test_util.h"

#include "mltrain/graph_grad.h"
#include "mltrain/graph_rewrite.h"

/* ---------------------------------------------------------------- helpers */

static void optimize_with(mt_graph *g, int32_t n, mt_var *outs, int32_t ndis,
                          const char *const *dis, mt_rewrite_stats *st)
{
    mt_rewrite_options o;
    mt_rewrite_options_init(&o);
    o.verify = true;
    o.n_disabled = ndis;
    o.disabled = dis;
    mt_rewrite_stats local;
    MT_CHECK_OK(mt_graph_optimize(g, n, outs, &o, st ? st : &local));
    MT_CHECK_OK(mt_graph_verify(g));
}

static void optimize(mt_graph *g, int32_t n, mt_var *outs)
{
    optimize_with(g, n, outs, 0, NULL, NULL);
}

/* Number of live nodes whose label (sop for elementwise, reduction name, else op name) is
 * `label`. */
static int count(mt_graph *g, int32_t n, const mt_var *outs, const char *label)
{
    mt_var *order;
    int32_t k;
    MT_CHECK_OK(mt_graph_toposort(g, n, outs, &order, &k));
    int c = 0;
    for (int32_t i = 0; i < k; i++)
        if (strcmp(mt_graph_op_label(g, order[i]), label) == 0) c++;
    mt_free(order);
    return c;
}

static int count1(mt_graph *g, mt_var out, const char *label)
{
    return count(g, 1, &out, label);
}

static bool prov_has(mt_graph *g, mt_var v, const char *rule)
{
    const mt_provenance *p = mt_graph_provenance(g, v);
    for (int32_t i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i], rule) == 0) return true;
    return false;
}

/* The graph printed, for failure messages. */
static void dump(mt_graph *g, mt_var out)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_print(g, 1, &out, &sb);
    fprintf(stderr, "%s\n", sb.data ? sb.data : "");
    mt_strbuf_deinit(&sb);
}

#define EXPECT(g, out, label, n)                                                           \
    do {                                                                                   \
        int c__ = count1((g), (out), (label));                                             \
        if (c__ != (n)) {                                                                  \
            dump((g), (out));                                                              \
            mt_test_fail(__FILE__, __LINE__, "%d '%s' nodes, expected %d", c__, (label),   \
                         (int)(n));                                                        \
        }                                                                                  \
    } while (0)

static mt_var lit(mt_graph *g, double v)
{
    return mt_graph_literal_float(g, v);
}

/* ---------------------------------------------------------------- registry */

MT_TEST(registry_names_phases_soundness)
{
    int32_t n = mt_rewrite_count();
    MT_CHECK(n >= 40 && n <= MT_REWRITE_MAX_RULES);
    const char *required[] = {
        "constant_fold", "log1p", "expm1", "log1mexp", "softplus", "log_sigmoid", "log1m_sigmoid",
        "logsoftmax", "softmax", "logsumexp", "logaddexp", "sigmoid", "xent_softmax", "xent_sum",
        "xent_onehot", "mul_one", "add_zero", "sub_zero", "div_one", "neg_neg", "pow_zero",
        "pow_one", "pow_int", "pow_half", "pow_neg_one", "sub_self", "mul_zero", "div_self",
        "cast_identity", "cast_cast", "reshape_identity", "dimshuffle_identity",
        "dimshuffle_merge", "broadcast_identity", "broadcast_broadcast", "reduce_broadcast",
        "gemm_bias", "gemm_scale", "gemm_transpose", "mul_recip", "argmax_monotone",
        "xent_softmax_grad", "xent_softmax_dx"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (mt_rewrite_find(required[i]) < 0)
            mt_test_fail(__FILE__, __LINE__, "rule %s is missing", required[i]);
    for (int32_t i = 0; i < n; i++) {
        const mt_rewrite_info *r = mt_rewrite_get(i);
        MT_CHECK(r && r->name && r->summary && r->summary[0]);
        MT_CHECK(strspn(r->name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(r->name));
        MT_CHECK_EQ_INT(mt_rewrite_find(r->name), i); /* unique */
        MT_CHECK(r->phases != 0);
        /* the graph phases only: fusion and memory planning belong to the JIT */
        MT_CHECK((r->phases & ~((1u << MT_REWRITE_FUSE) - 1)) == 0);
        MT_CHECK((unsigned)r->soundness < MT_REWRITE_SOUNDNESS_COUNT);
    }
    MT_CHECK(mt_rewrite_get(n) == NULL && mt_rewrite_get(-1) == NULL);
    MT_CHECK_EQ_INT(mt_rewrite_find("nope"), -1);
    MT_CHECK_STR_EQ(mt_rewrite_phase_name(MT_REWRITE_STABILIZE), "stabilize");
    MT_CHECK_STR_EQ(mt_rewrite_phase_name(MT_REWRITE_MEMORY), "memory");
    MT_CHECK_STR_EQ(mt_rewrite_phase_name(MT_REWRITE_PHASE_COUNT), "invalid");
    MT_CHECK_STR_EQ(mt_rewrite_soundness_name(MT_REWRITE_FINITE), "finite");
    MT_CHECK_EQ_INT(mt_rewrite_get(mt_rewrite_find("sub_self"))->soundness, MT_REWRITE_FINITE);
    MT_CHECK_EQ_INT(mt_rewrite_get(mt_rewrite_find("pow_half"))->soundness, MT_REWRITE_GUARDED);
    MT_CHECK_EQ_INT(mt_rewrite_get(mt_rewrite_find("log1p"))->soundness, MT_REWRITE_EXACT);
}

MT_TEST(disable_by_name_and_unknown_names)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(4));
    mt_var y = mt_graph_log(g, mt_graph_add(g, lit(g, 1.0), x));
    mt_var out = y;
    const char *off[] = {"log1p"};
    optimize_with(g, 1, &out, 1, off, NULL);
    EXPECT(g, out, "log", 1);
    EXPECT(g, out, "log1p", 0);
    out = y;
    optimize(g, 1, &out);
    EXPECT(g, out, "log1p", 1);

    const char *bad[] = {"log1p", "no_such_rule"};
    MT_CHECK_ERR(mt_rewrite_check_names(2, bad), MT_ERR_INVALID, "unknown rewrite 'no_such_rule'");
    MT_CHECK(strstr(mt_last_error(), "known rewrites: ") != NULL);
    MT_CHECK(strstr(mt_last_error(), "log1mexp") != NULL);
    MT_CHECK_OK(mt_rewrite_check_names(1, bad));
    mt_rewrite_options o;
    mt_rewrite_options_init(&o);
    o.n_disabled = 2;
    o.disabled = bad;
    out = y;
    MT_CHECK_ERR(mt_graph_optimize(g, 1, &out, &o, NULL), MT_ERR_INVALID, "no_such_rule");
    MT_CHECK_EQ_INT(out, y); /* untouched on error */
    mt_rewrite_options_init(&o);
    o.last_phase = MT_REWRITE_PHASE_COUNT;
    MT_CHECK_ERR(mt_graph_optimize(g, 1, &out, &o, NULL), MT_ERR_INVALID, "last phase");
    mt_var badv = 9999;
    MT_CHECK_ERR(mt_graph_optimize(g, 1, &badv, NULL, NULL), MT_ERR_INVALID, "output 0");
    /* a graph with a sticky error is refused */
    CHECK_FAIL(g, mt_graph_add(g, x, ph(g, "z", MT_FLOAT64, 1, SHAPE(5))), MT_ERR_SHAPE, NULL);
    (void)mt_graph_add(g, x, mt_graph_find_placeholder(g, "z"));
    MT_CHECK_ERR(mt_graph_optimize(g, 1, &out, NULL, NULL), MT_ERR_INVALID, "has an error");
    mt_graph_free(g);
}

MT_TEST(phases_stop_at_last_phase)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(4));
    mt_var y = mt_graph_add(g, mt_graph_pow(g, x, lit(g, 2.0)),
                            mt_graph_log(g, mt_graph_add(g, x, lit(g, 1.0))));
    mt_rewrite_options o;
    mt_rewrite_options_init(&o);
    o.verify = true;
    o.last_phase = MT_REWRITE_CANONICALIZE;
    mt_var out = y;
    mt_rewrite_stats st;
    MT_CHECK_OK(mt_graph_optimize(g, 1, &out, &o, &st));
    /* the early stabilize sweep still ran (it protects constants from folding) */
    EXPECT(g, out, "log1p", 1);
    EXPECT(g, out, "pow", 1); /* pow_int is a specialization */
    MT_CHECK_EQ_INT(st.sweeps[MT_REWRITE_SPECIALIZE], 0);
    out = y;
    MT_CHECK_OK(mt_graph_optimize(g, 1, &out, NULL, &st));
    EXPECT(g, out, "pow", 0);
    EXPECT(g, out, "mul", 1);
    MT_CHECK(st.sweeps[MT_REWRITE_SPECIALIZE] >= 1);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- stability */

MT_TEST(log1p_forms_and_provenance)
{
    mt_graph *g = new_graph();
    mt_graph_set_origin(g, "model.c", 42);
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var outs[3] = {
        mt_graph_log(g, mt_graph_add(g, lit(g, 1.0), x)),
        mt_graph_log(g, mt_graph_add(g, x, mt_graph_scalar(g, MT_FLOAT32, 1.0))),
        mt_graph_log(g, mt_graph_sub(g, lit(g, 1.0), x)),
    };
    mt_rewrite_stats st;
    optimize_with(g, 3, outs, 0, NULL, &st);
    MT_CHECK_EQ_INT(outs[0], outs[1]); /* both are log1p(x), one node */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "log1p");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "log1p");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, outs[2], 0)), "neg");
    MT_CHECK_EQ_INT(count(g, 3, outs, "log"), 0);
    MT_CHECK(prov_has(g, outs[0], "log1p"));
    const mt_provenance *p = mt_graph_provenance(g, outs[0]);
    MT_CHECK(p->file && strcmp(p->file, "model.c") == 0 && p->line == 42);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g, outs[0], &sb);
    MT_CHECK(strstr(sb.data, "log1p") != NULL);
    mt_strbuf_deinit(&sb);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "log1p"), 3); /* 1 + x and x + 1 are two nodes */
    MT_CHECK(mt_rewrite_cost_compare(&st.cost_after, &st.cost_before) < 0);
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_rewrite_stats_format(&st, &sb));
    MT_CHECK(strstr(sb.data, "log1p 3") != NULL);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

MT_TEST(expm1_log1mexp_softplus)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(5));
    mt_var one = lit(g, 1.0);
    mt_var e = mt_graph_exp(g, x);
    mt_var outs[7] = {
        mt_graph_sub(g, e, one),                                       /* expm1 */
        mt_graph_add(g, lit(g, -1.0), e),                              /* expm1 */
        mt_graph_log(g, mt_graph_sub(g, one, e)),                      /* log1mexp */
        mt_graph_log1p(g, mt_graph_neg(g, e)),                         /* log1mexp */
        mt_graph_log(g, mt_graph_neg(g, mt_graph_expm1(g, x))),        /* log1mexp */
        mt_graph_log(g, mt_graph_add(g, one, e)),                      /* softplus */
        mt_graph_log1p(g, e),                                          /* softplus */
    };
    optimize(g, 7, outs);
    MT_CHECK_EQ_INT(outs[0], outs[1]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "expm1");
    MT_CHECK_EQ_INT(outs[2], outs[3]);
    MT_CHECK_EQ_INT(outs[3], outs[4]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "log1mexp");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[2], 0), x);
    MT_CHECK_EQ_INT(outs[5], outs[6]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[5]), "softplus");
    MT_CHECK_EQ_INT(count(g, 7, outs, "log"), 0);
    MT_CHECK_EQ_INT(count(g, 7, outs, "exp"), 0);
    MT_CHECK(prov_has(g, outs[5], "softplus"));
    mt_graph_free(g);
}

MT_TEST(log_sigmoid_forms)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 1, SHAPE(5));
    mt_var s = mt_graph_sigmoid(g, x);
    mt_var outs[4] = {
        mt_graph_log(g, s),
        mt_graph_log(g, mt_graph_sub(g, lit(g, 1.0), s)),
        mt_graph_log1p(g, mt_graph_neg(g, s)),
        s, /* sigmoid stays needed: the rewrite must still apply with it shared */
    };
    optimize(g, 4, outs);
    /* -softplus(-x) */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "neg");
    mt_var sp = mt_graph_input(g, outs[0], 0);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, sp), "softplus");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, sp, 0)), "neg");
    MT_CHECK_EQ_INT(mt_graph_input(g, mt_graph_input(g, sp, 0), 0), x);
    /* -softplus(x) */
    MT_CHECK_EQ_INT(outs[1], outs[2]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, outs[1], 0)), "softplus");
    MT_CHECK_EQ_INT(mt_graph_input(g, mt_graph_input(g, outs[1], 0), 0), x);
    MT_CHECK_EQ_INT(count(g, 3, outs, "log"), 0);
    MT_CHECK_EQ_INT(count(g, 3, outs, "sigmoid"), 0);
    MT_CHECK(prov_has(g, sp, "log_sigmoid"));
    mt_graph_free(g);
}

MT_TEST(softmax_family)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var e = mt_graph_exp(g, x);
    mt_var outs[6] = {
        mt_graph_log(g, mt_graph_softmax(g, x, -1)),                            /* logsoftmax */
        mt_graph_div(g, e, mt_graph_sum(g, e, 1, AXES(1), true)),               /* softmax(1) */
        mt_graph_div(g, e, mt_graph_sum(g, e, 1, AXES(0), false)),              /* softmax(0) */
        mt_graph_log(g, mt_graph_sum(g, e, 1, AXES(1), false)),                 /* logsumexp */
        mt_graph_log(g, mt_graph_sum(g, e, 0, NULL, true)),                     /* all axes */
        mt_graph_log(g, mt_graph_add(g, mt_graph_exp(g, mt_graph_neg(g, x)), e)), /* logaddexp */
    };
    optimize(g, 6, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "logsoftmax");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, outs[0])->axes[0], 1);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "softmax");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, outs[1])->axes[0], 1);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "softmax");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, outs[2])->axes[0], 0);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[3]), "logsumexp");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[3], 0), x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[4]), "logsumexp");
    MT_CHECK(mt_graph_attrs(g, outs[4])->keepdims);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[5]), "logaddexp");
    MT_CHECK_EQ_INT(count(g, 6, outs, "exp"), 0);
    MT_CHECK_EQ_INT(count(g, 6, outs, "log"), 0);
    MT_CHECK_EQ_INT(count(g, 6, outs, "div"), 0);
    /* (outs[1] is the very softmax node outs[0] was built on: hash-consing keeps its origin) */
    MT_CHECK(prov_has(g, outs[2], "softmax") && prov_has(g, outs[3], "logsumexp"));
    /* exp(x) / sum over an axis other than the one the division lines up with is left alone */
    mt_var y = ph(g, "y", MT_FLOAT32, 2, SHAPE(3, 3));
    mt_var ey = mt_graph_exp(g, y);
    mt_var odd = mt_graph_div(g, ey, mt_graph_sum(g, ey, 1, AXES(1), false)); /* NumPy: rows */
    optimize(g, 1, &odd);
    EXPECT(g, odd, "softmax", 0);
    mt_graph_free(g);
}

MT_TEST(sigmoid_forms)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(5));
    mt_var one = lit(g, 1.0);
    mt_var e = mt_graph_exp(g, x);
    mt_var outs[3] = {
        mt_graph_div(g, e, mt_graph_add(g, one, e)),
        mt_graph_div(g, one, mt_graph_add(g, one, mt_graph_exp(g, mt_graph_neg(g, x)))),
        mt_graph_div(g, one, mt_graph_add(g, mt_graph_exp(g, x), one)),
    };
    optimize(g, 3, outs);
    MT_CHECK_EQ_INT(outs[0], outs[1]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "sigmoid");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "sigmoid");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, outs[2], 0)), "neg");
    MT_CHECK_EQ_INT(count(g, 3, outs, "div"), 0);
    mt_graph_free(g);
}

MT_TEST(crossentropy_fusions)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var t = ph(g, "t", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(4));
    mt_var sm = mt_graph_softmax(g, x, 1);
    mt_var oh = mt_graph_one_hot(g, y, 3, MT_FLOAT32);
    mt_var outs[5] = {
        mt_graph_crossentropy(g, sm, t, 1),
        mt_graph_crossentropy_labels(g, sm, y, 1),
        mt_graph_neg(g,
                     mt_graph_sum(g, mt_graph_mul(g, t, mt_graph_log(g, sm)), 1, AXES(1), false)),
        mt_graph_neg(g,
                     mt_graph_log(g, mt_graph_sum(g, mt_graph_mul(g, sm, oh), 1, AXES(-1), false))),
        mt_graph_neg(g,
                     mt_graph_sum(g, mt_graph_mul(g, mt_graph_log(g, sm), oh), 1, AXES(1), false)),
    };
    optimize(g, 5, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "softmax_crossentropy");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "softmax_crossentropy_labels");
    MT_CHECK_EQ_INT(outs[2], outs[0]); /* the same fused node */
    MT_CHECK(prov_has(g, outs[2], "xent_sum") || prov_has(g, outs[2], "xent_softmax"));
    EXPECT(g, outs[3], "softmax_crossentropy_labels", 1);
    EXPECT(g, outs[3], "softmax", 0);
    EXPECT(g, outs[3], "log", 0);
    EXPECT(g, outs[3], "where", 1); /* the label-range guard */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[4]), "softmax_crossentropy");
    MT_CHECK_EQ_INT(count(g, 5, outs, "softmax"), 0);
    mt_graph_free(g);
}

MT_TEST(crossentropy_gradients_stabilized)
{
    /* the gradient of crossentropy(softmax(x)) as autodiff builds it divides by a probability;
     * the rewritten gradient is gk * (softmax - onehot) (labels) or gk * (softmax*sum(t) - t) */
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(4));
    mt_var t = ph(g, "t", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var sm = mt_graph_softmax(g, x, 1);
    mt_var c1 = mt_graph_sum(g, mt_graph_crossentropy_labels(g, sm, y, 1), 0, NULL, false);
    mt_var c2 = mt_graph_mean(g, mt_graph_crossentropy(g, sm, t, 1), 0, NULL, false);
    mt_var g1, g2;
    MT_CHECK_OK(mt_graph_grad(g, c1, 1, &x, &g1, NULL));
    MT_CHECK_OK(mt_graph_grad(g, c2, 1, &x, &g2, NULL));
    MT_CHECK(count1(g, g1, "div") >= 1 && count1(g, g2, "div") >= 1);
    mt_var outs[2] = {g1, g2};
    optimize(g, 2, outs);
    EXPECT(g, outs[0], "div", 0);
    EXPECT(g, outs[0], "where", 0);
    EXPECT(g, outs[1], "div", 0);
    EXPECT(g, outs[0], "softmax", 1);
    MT_CHECK(prov_has(g, outs[0], "xent_softmax_grad"));
    mt_graph_free(g);
}

/* The gradient of mean(softmax_crossentropy_labels(x, y)) w.r.t. x, with x's class axis at
 * `axis` of a 2-d x of the given shape: optimized, it must be one softmax_crossentropy_labels_dx
 * node and no softmax, one_hot, sub or mul. */
static void check_xent_dx(const int64_t *xs, int32_t axis, bool mean)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, xs);
    mt_var y = ph(g, "y", MT_INT64, 1, SHAPE(xs[1 - axis]));
    mt_var c = mt_graph_softmax_crossentropy_labels(g, x, y, axis);
    c = mean ? mt_graph_mean(g, c, 0, NULL, false) : mt_graph_sum(g, c, 0, NULL, false);
    mt_var gx;
    MT_CHECK_OK(mt_graph_grad(g, c, 1, &x, &gx, NULL));
    MT_CHECK(count1(g, gx, "one_hot") == 1 && count1(g, gx, "softmax") == 1);
    mt_var out = gx;
    mt_rewrite_stats st;
    optimize_with(g, 1, &out, 0, NULL, &st);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "xent_softmax_dx") >= 1, 1);
    EXPECT(g, out, "softmax_crossentropy_labels_dx", 1);
    EXPECT(g, out, "softmax", 0);
    EXPECT(g, out, "one_hot", 0);
    EXPECT(g, out, "sub", 0);
    EXPECT(g, out, "mul", 0);
    MT_CHECK_EQ_INT(mt_graph_op(g, out), MT_OP_SOFTMAX_XENT_LABELS_DX);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, out)->axes[0], axis);
    MT_CHECK_EQ_INT(mt_graph_input(g, out, 1), x);
    MT_CHECK_EQ_INT(mt_graph_input(g, out, 2), y);
    MT_CHECK(prov_has(g, out, "xent_softmax_dx") && prov_has(g, out, "grad"));
    /* switched off by name: the three steps stay */
    out = gx;
    const char *off[] = {"xent_softmax_dx"};
    optimize_with(g, 1, &out, 1, off, NULL);
    EXPECT(g, out, "softmax_crossentropy_labels_dx", 0);
    EXPECT(g, out, "softmax", 1);
    EXPECT(g, out, "one_hot", 1);
    mt_graph_free(g);
}

MT_TEST(xent_softmax_dx_fuses_the_labels_gradient)
{
    check_xent_dx(SHAPE(4, 3), 1, true);   /* axis last, gz folded to a constant */
    check_xent_dx(SHAPE(3, 4), 0, true);   /* axis 0: the one_hot is dimshuffled */
    check_xent_dx(SHAPE(-1, 10), 1, true); /* unknown batch: gz = expand_dims(1/n) */
    check_xent_dx(SHAPE(10, -1), 0, true);
    check_xent_dx(SHAPE(-1, 10), 1, false); /* sum: mul_one left softmax - one_hot */
    check_xent_dx(SHAPE(4, 3), 1, false);
}

MT_TEST(xent_softmax_dx_only_for_the_exact_pattern)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var xq = ph(g, "xq", MT_FLOAT32, 2, SHAPE(3, 3));
    mt_var xu = ph(g, "xu", MT_FLOAT32, 2, SHAPE(4, -1));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(4));
    mt_var y3 = ph(g, "y3", MT_INT32, 1, SHAPE(3));
    mt_var gk = ph(g, "gk", MT_FLOAT32, 2, SHAPE(4, 1));
    mt_var outs[6] = {
        /* depth 1 against 3 classes: the one_hot broadcasts along the classes */
        mt_graph_mul(g, gk, mt_graph_sub(g, mt_graph_softmax(g, x, 1),
                                         mt_graph_one_hot(g, y, 1, MT_FLOAT32))),
        /* 3 classes against an unknown class axis: depth not statically x's */
        mt_graph_mul(g, gk, mt_graph_sub(g, mt_graph_softmax(g, xu, 1),
                                         mt_graph_one_hot(g, y, 3, MT_FLOAT32))),
        /* a float64 one_hot: the difference is float64, softmax is cast */
        mt_graph_mul(g, gk, mt_graph_sub(g, mt_graph_softmax(g, x, 1),
                                         mt_graph_one_hot(g, y, 3, MT_FLOAT64))),
        /* a float16 one_hot cast to float32 (not the pattern autodiff builds) */
        mt_graph_sub(g, mt_graph_softmax(g, x, 1),
                     mt_graph_cast(g, mt_graph_one_hot(g, y, 3, MT_FLOAT16), MT_FLOAT32)),
        /* softmax over axis 0, one_hot along the last axis of a square x */
        mt_graph_sub(g, mt_graph_softmax(g, xq, 0), mt_graph_one_hot(g, y3, 3, MT_FLOAT32)),
        /* softmax + one_hot (not a difference) */
        mt_graph_add(g, mt_graph_softmax(g, x, 1), mt_graph_one_hot(g, y, 3, MT_FLOAT32)),
    };
    MT_CHECK_OK(mt_graph_status(g));
    mt_rewrite_stats st;
    optimize_with(g, 6, outs, 0, NULL, &st);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "xent_softmax_dx"), 0);
    MT_CHECK_EQ_INT(count(g, 6, outs, "softmax_crossentropy_labels_dx"), 0);
    MT_CHECK_EQ_INT(count(g, 6, outs, "one_hot"), 5);
    mt_graph_free(g);
    /* the same builders with depth 3 and one float32 dtype do fuse, gk in either order */
    for (int order = 0; order < 2; order++) {
        g = new_graph();
        x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
        y = ph(g, "y", MT_INT32, 1, SHAPE(4));
        gk = ph(g, "gk", MT_FLOAT32, 2, SHAPE(4, 1));
        mt_var d = mt_graph_sub(g, mt_graph_softmax(g, x, 1),
                                mt_graph_one_hot(g, y, 3, MT_FLOAT32));
        mt_var ok = order ? mt_graph_mul(g, d, gk) : mt_graph_mul(g, gk, d);
        optimize(g, 1, &ok);
        MT_CHECK_EQ_INT(mt_graph_op(g, ok), MT_OP_SOFTMAX_XENT_LABELS_DX);
        CHECK_TYPE(g, mt_graph_input(g, ok, 0), "float32[4]");
        EXPECT(g, ok, "mul", 0);
        mt_graph_free(g);
    }
}

/* A dimshuffle that also drops an axis (of unknown size) is not an expand_dims of the upstream
 * gradient: the rule must not take its input as gz (it has the wrong number of axes), and the
 * graph still optimizes. */
MT_TEST(xent_softmax_dx_not_through_axis_dropping_dimshuffles)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(4));
    mt_var w = ph(g, "w", MT_FLOAT32, 2, SHAPE(4, -1));
    int32_t perm[2] = {0, -1};
    mt_var gk = mt_graph_dimshuffle(g, w, 2, perm); /* [4, 1]: w's unknown axis dropped */
    mt_var d = mt_graph_sub(g, mt_graph_softmax(g, x, 1), mt_graph_one_hot(g, y, 3, MT_FLOAT32));
    mt_var out = mt_graph_mul(g, gk, d);
    MT_CHECK_OK(mt_graph_status(g));
    CHECK_TYPE(g, gk, "float32[4,1]");
    optimize(g, 1, &out);
    MT_CHECK_OK(mt_graph_status(g));
    CHECK_TYPE(g, out, "float32[4,3]");
    mt_graph_free(g);
}

MT_TEST(stable_patterns_in_constants_are_stabilized_before_folding)
{
    mt_graph *g = new_graph();
    mt_var c = mt_graph_scalar(g, MT_FLOAT64, 1e-30);
    mt_var out = mt_graph_log(g, mt_graph_add(g, lit(g, 1.0), c));
    optimize(g, 1, &out);
    MT_CHECK_EQ_INT(mt_graph_op(g, out), MT_OP_CONST);
    double v;
    memcpy(&v, mt_graph_attrs(g, out)->data, 8);
    MT_CHECK_EQ_INT(v == 1e-30, 1); /* folded as log1p(1e-30), not log(1.0) = 0 */
    /* softplus(800) folds to 800 with the stable formula */
    mt_var c2 = mt_graph_scalar(g, MT_FLOAT32, 800.0);
    mt_var o2 = mt_graph_log(g, mt_graph_add(g, lit(g, 1.0), mt_graph_exp(g, c2)));
    optimize(g, 1, &o2);
    MT_CHECK_EQ_INT(mt_graph_op(g, o2), MT_OP_CONST);
    float f;
    memcpy(&f, mt_graph_attrs(g, o2)->data, 4);
    MT_CHECK(f == 800.0f);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- algebra */

MT_TEST(identities)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var i = ph(g, "i", MT_INT32, 1, SHAPE(3));
    mt_var outs[10] = {
        mt_graph_mul(g, x, lit(g, 1.0)),
        mt_graph_mul(g, lit(g, 1.0), x),
        mt_graph_add(g, x, lit(g, 0.0)),
        mt_graph_sub(g, x, lit(g, 0.0)),
        mt_graph_div(g, x, lit(g, 1.0)),
        mt_graph_neg(g, mt_graph_neg(g, x)),
        mt_graph_pow(g, x, lit(g, 1.0)),
        mt_graph_add(g, mt_graph_literal_int(g, 0), i),
        mt_graph_mul(g, i, mt_graph_literal_int(g, 1)),
        mt_graph_neg(g, mt_graph_neg(g, i)),
    };
    optimize(g, 10, outs);
    for (int k = 0; k < 7; k++) MT_CHECK_EQ_INT(outs[k], x);
    for (int k = 7; k < 10; k++) MT_CHECK_EQ_INT(outs[k], i);
    /* a constant that broadcasts the operand to a larger shape is not an identity */
    mt_var ones = mt_graph_ones(g, MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var r = ph(g, "r", MT_FLOAT32, 1, SHAPE(3));
    mt_var big = mt_graph_mul(g, r, ones);
    optimize(g, 1, &big);
    MT_CHECK(big != r);
    MT_CHECK_EQ_INT(mt_graph_type(g, big)->shape[0], 4);
    /* x * -1 and 0 - x become negations */
    mt_var n1 = mt_graph_mul(g, x, lit(g, -1.0)), n2 = mt_graph_sub(g, lit(g, 0.0), x);
    mt_var nn[2] = {n1, n2};
    optimize(g, 2, nn);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, nn[0]), "neg");
    MT_CHECK_EQ_INT(nn[0], nn[1]);
    mt_graph_free(g);
}

MT_TEST(powers)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_INT64, 1, SHAPE(3));
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(3));
    /* a + a**10: one expression of multiplications with shared squares */
    mt_var y = mt_graph_add(g, a, mt_graph_pow(g, a, mt_graph_literal_int(g, 10)));
    optimize(g, 1, &y);
    EXPECT(g, y, "pow", 0);
    EXPECT(g, y, "mul", 4); /* a2 = a*a, a4 = a2*a2, a5 = a4*a, a10 = a5*a5 */
    EXPECT(g, y, "add", 1);
    MT_CHECK(prov_has(g, mt_graph_input(g, y, 1), "pow_int"));
    mt_var outs[6] = {
        mt_graph_pow(g, x, lit(g, 2.0)),  mt_graph_pow(g, x, lit(g, 3.0)),
        mt_graph_pow(g, x, lit(g, 0.5)),  mt_graph_pow(g, x, lit(g, -1.0)),
        mt_graph_pow(g, x, lit(g, 0.0)),  mt_graph_pow(g, x, lit(g, 2.5)),
    };
    optimize(g, 6, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "mul");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "mul");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[1], 0), outs[0]); /* x**3 = (x*x)*x, shared */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "where");
    EXPECT(g, outs[2], "sqrt", 1);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[3]), "recip");
    MT_CHECK(mt_graph_op(g, outs[4]) == MT_OP_CONST ||
             mt_graph_op(g, outs[4]) == MT_OP_BROADCAST_TO);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[5]), "pow"); /* 2.5: left alone */
    /* pow(x, 0) of a weak-free integer array too */
    mt_var z = mt_graph_pow(g, a, mt_graph_literal_int(g, 0));
    optimize(g, 1, &z);
    EXPECT(g, z, "pow", 0);
    mt_graph_free(g);
}

MT_TEST(reciprocal_forms)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 1, SHAPE(3));
    mt_var y = ph(g, "y", MT_FLOAT32, 1, SHAPE(3));
    mt_var outs[4] = {
        mt_graph_mul(g, x, mt_graph_reciprocal(g, y)),
        mt_graph_div(g, x, mt_graph_reciprocal(g, y)),
        mt_graph_reciprocal(g, mt_graph_reciprocal(g, x)),
        mt_graph_div(g, lit(g, 1.0), x),
    };
    optimize(g, 4, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "div");
    MT_CHECK(mt_graph_input(g, outs[0], 0) == x && mt_graph_input(g, outs[0], 1) == y);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "mul");
    MT_CHECK_EQ_INT(outs[2], x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[3]), "recip");
    mt_graph_free(g);
}

MT_TEST(finite_only_identities)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(3));
    mt_var i = ph(g, "i", MT_INT32, 1, SHAPE(3));
    /* never for a float placeholder: x - x is NaN for x = inf */
    mt_var outs[3] = {mt_graph_sub(g, x, x), mt_graph_mul(g, x, lit(g, 0.0)),
                      mt_graph_div(g, x, x)};
    optimize(g, 3, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "sub");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "mul");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "div");
    /* integers are always finite */
    mt_var io[2] = {mt_graph_sub(g, i, i), mt_graph_mul(g, i, mt_graph_literal_int(g, 0))};
    mt_rewrite_stats st;
    optimize_with(g, 2, io, 0, NULL, &st);
    MT_CHECK(mt_graph_op(g, io[0]) == MT_OP_CONST || mt_graph_op(g, io[0]) == MT_OP_BROADCAST_TO);
    MT_CHECK_EQ_INT(io[0], io[1]);
    MT_CHECK(mt_rewrite_stats_count(&st, "sub_self") == 1);
    /* a finite constant too big to fold, and a bounded function of it */
    enum { N = 5000 };
    static double data[N];
    for (int k = 0; k < N; k++) data[k] = k + 1.0;
    mt_var c = mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(N), data);
    mt_var t = mt_graph_tanh(g, c);
    mt_var co[3] = {mt_graph_sub(g, t, t), mt_graph_div(g, c, c), mt_graph_mul(g, t, lit(g, 0.0))};
    optimize_with(g, 3, co, 0, NULL, &st);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "sub_self"), 1);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "div_self"), 1);
    MT_CHECK_EQ_INT(mt_rewrite_stats_count(&st, "mul_zero"), 1);
    MT_CHECK_EQ_INT(mt_graph_op(g, co[0]), MT_OP_BROADCAST_TO);
    EXPECT(g, co[1], "div", 0);
    /* a constant with an inf in it is not finite */
    data[7] = INFINITY;
    mt_var ci = mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(N), data);
    mt_var d = mt_graph_sub(g, ci, ci);
    optimize(g, 1, &d);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, d), "sub");
    mt_graph_free(g);
}

MT_TEST(constant_folding)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 1, SHAPE(3));
    mt_var c = mt_graph_constant(g, MT_FLOAT32, 1, SHAPE(3), (const float[]){1, 2, 3});
    mt_var k = mt_graph_mul(g, mt_graph_add(g, c, lit(g, 2.0)), mt_graph_exp(g, c));
    mt_var y = mt_graph_mul(g, x, k);
    mt_rewrite_stats st;
    optimize_with(g, 1, &y, 0, NULL, &st);
    EXPECT(g, y, "mul", 1);
    EXPECT(g, y, "exp", 0);
    mt_var kc = mt_graph_input(g, y, 1);
    MT_CHECK_EQ_INT(mt_graph_op(g, kc), MT_OP_CONST);
    const float *kv = mt_graph_attrs(g, kc)->data;
    for (int i = 0; i < 3; i++) {
        float want = ((float)(i + 1) + 2.0f) * expf((float)(i + 1));
        MT_CHECK(kv[i] == want);
    }
    MT_CHECK(mt_rewrite_stats_count(&st, "constant_fold") >= 3);
    MT_CHECK(prov_has(g, kc, "constant_fold"));
    /* a large uniform result becomes a broadcast of one scalar */
    mt_var big = mt_graph_exp(g, mt_graph_full(g, MT_FLOAT64, 2, SHAPE(300, 300), 0.5));
    optimize(g, 1, &big);
    MT_CHECK_EQ_INT(mt_graph_op(g, big), MT_OP_BROADCAST_TO);
    double bv;
    memcpy(&bv, mt_graph_attrs(g, mt_graph_input(g, big, 0))->data, 8);
    MT_CHECK(bv == exp(0.5));
    /* a large non-uniform constant is not expanded */
    mt_var ar = mt_graph_arange(g, MT_FLOAT64, 0, 10000, 1);
    mt_var e2 = mt_graph_exp(g, mt_graph_add(g, ar, lit(g, 1.0)));
    optimize(g, 1, &e2);
    EXPECT(g, e2, "exp", 1);
    /* weak results stay weak (0-d) */
    mt_var w = mt_graph_add(g, lit(g, 2.0), lit(g, 3.0));
    optimize(g, 1, &w);
    MT_CHECK(mt_graph_op(g, w) == MT_OP_CONST && mt_graph_type(g, w)->weak);
    /* integer arithmetic wraps like the kernels */
    mt_var i8 = mt_graph_constant(g, MT_INT8, 1, SHAPE(2), (const int8_t[]){100, -128});
    mt_var s8 = mt_graph_add(g, i8, i8);
    optimize(g, 1, &s8);
    const int8_t *sv = mt_graph_attrs(g, s8)->data;
    MT_CHECK(sv[0] == -56 && sv[1] == 0);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- shapes and casts */

MT_TEST(casts)
{
    mt_graph *g = new_graph();
    mt_var b = ph(g, "b", MT_INT8, 1, SHAPE(3));
    mt_var f = ph(g, "f", MT_FLOAT32, 1, SHAPE(3));
    mt_var d = ph(g, "d", MT_FLOAT64, 1, SHAPE(3));
    mt_var outs[4] = {
        mt_graph_cast(g, mt_graph_cast(g, b, MT_INT32), MT_FLOAT64), /* -> one cast */
        mt_graph_cast(g, mt_graph_cast(g, f, MT_FLOAT64), MT_FLOAT32), /* -> f */
        mt_graph_cast(g, mt_graph_cast(g, d, MT_FLOAT32), MT_FLOAT64), /* lossy: kept */
        mt_graph_cast(g, mt_graph_cast(g, d, MT_INT32), MT_INT64),     /* lossy: kept */
    };
    optimize(g, 4, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "cast");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), b);
    MT_CHECK_EQ_INT(outs[1], f);
    EXPECT(g, outs[2], "cast", 2);
    EXPECT(g, outs[3], "cast", 2);
    mt_graph_free(g);
}

MT_TEST(reshape_dimshuffle_broadcast_chains)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 3, SHAPE(2, 3, 4));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var v = ph(g, "v", MT_FLOAT32, 2, SHAPE(3, 1));
    mt_var tt = mt_graph_transpose(g, mt_graph_transpose(g, x, NULL), NULL);
    mt_var p1 = mt_graph_transpose(g, x, AXES(1, 0, 2));
    mt_var p2 = mt_graph_transpose(g, p1, AXES(2, 0, 1));
    mt_var rr = mt_graph_reshape(g, mt_graph_reshape(g, x, 2, SHAPE(6, 4)), 1, SHAPE(24));
    mt_var ru = mt_graph_reshape(g, mt_graph_reshape(g, u, 1, SHAPE(-1)), 2, SHAPE(-1, 2));
    mt_var bb = mt_graph_broadcast_to(g, mt_graph_broadcast_to(g, v, 2, SHAPE(3, 5)), 3,
                                      SHAPE(2, 3, 5));
    mt_var outs[5] = {tt, p2, rr, ru, bb};
    optimize(g, 5, outs);
    MT_CHECK_EQ_INT(outs[0], x);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "dimshuffle");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[1], 0), x);
    const mt_op_attrs *pa = mt_graph_attrs(g, outs[1]);
    MT_CHECK(pa->perm[0] == 2 && pa->perm[1] == 1 && pa->perm[2] == 0);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "reshape");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[2], 0), x);
    EXPECT(g, outs[3], "reshape", 2); /* unknown sizes: the chain keeps its checks */
    MT_CHECK_EQ_INT(mt_graph_op(g, outs[4]), MT_OP_BROADCAST_TO);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[4], 0), v);
    mt_graph_free(g);
}

MT_TEST(reductions_of_broadcasts)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(3, 1));
    mt_var i = ph(g, "i", MT_INT32, 1, SHAPE(4));
    mt_var b = mt_graph_broadcast_to(g, x, 2, SHAPE(3, 5));
    mt_var outs[6] = {
        mt_graph_sum(g, b, 1, AXES(1), false),
        mt_graph_max(g, b, 1, AXES(1), true),
        mt_graph_mean(g, b, 1, AXES(1), false),
        mt_graph_sum(g, mt_graph_broadcast_to(g, i, 2, SHAPE(6, 4)), 1, AXES(0), false),
        mt_graph_sum(g, b, 0, NULL, false), /* axis 0 is a real reduction: kept */
        mt_graph_any(g, x, 1, AXES(1), false),
    };
    optimize(g, 6, outs);
    EXPECT(g, outs[0], "sum", 0);
    EXPECT(g, outs[0], "mul", 1);
    EXPECT(g, outs[1], "max", 0);
    EXPECT(g, outs[2], "mean", 0);
    EXPECT(g, outs[3], "sum", 0);
    MT_CHECK_EQ_INT(mt_graph_type(g, outs[3])->dtype, MT_INT64);
    EXPECT(g, outs[4], "sum", 1);
    EXPECT(g, outs[5], "any", 0);
    MT_CHECK(prov_has(g, outs[0], "reduce_broadcast"));
    mt_graph_free(g);
}

MT_TEST(argmax_pushdown)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var outs[4] = {
        mt_graph_argmax(g, mt_graph_softmax(g, x, 1), 1, AXES(1), false),
        mt_graph_argmax(g, mt_graph_sigmoid(g, mt_graph_exp(g, x)), 1, AXES(1), false),
        mt_graph_argmax(g, mt_graph_neg(g, x), 1, AXES(0), false),
        mt_graph_argmax(g, mt_graph_softmax(g, x, 1), 1, AXES(0), false), /* other axis: kept */
    };
    optimize(g, 4, outs);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[0], 0), x);
    MT_CHECK_EQ_INT(outs[0], outs[1]);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "argmin");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[2], 0), x);
    EXPECT(g, outs[3], "softmax", 1);
    mt_graph_free(g);
}

MT_TEST(gemm_from_dot_bias_scale)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(8, 5));
    mt_var w = ph(g, "w", MT_FLOAT32, 2, SHAPE(5, 4));
    mt_var wt = ph(g, "wt", MT_FLOAT32, 2, SHAPE(4, 5));
    mt_var bias = ph(g, "b", MT_FLOAT32, 1, SHAPE(4));
    mt_var c = ph(g, "c", MT_FLOAT32, 2, SHAPE(8, 4));
    mt_var big = ph(g, "big", MT_FLOAT32, 3, SHAPE(2, 8, 4));
    mt_var outs[6] = {
        mt_graph_add(g, mt_graph_dot(g, x, w), bias),
        mt_graph_add(g, mt_graph_mul(g, lit(g, 2.0), mt_graph_matmul(g, x, w)),
                     mt_graph_mul(g, mt_graph_scalar(g, MT_FLOAT32, 0.5), c)),
        mt_graph_sub(g, c, mt_graph_matmul(g, x, mt_graph_transpose(g, wt, NULL))),
        mt_graph_mul(
            g, mt_graph_matmul(g, mt_graph_transpose(g, mt_graph_transpose(g, x, NULL), NULL), w),
            lit(g, 3.0)),
        mt_graph_add(g, mt_graph_matmul(g, x, w), big), /* c enlarges the product: no gemm */
        mt_graph_matmul(g, x, w),                       /* a plain product stays a matmul */
    };
    optimize(g, 6, outs);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[0]), "gemm");
    const mt_op_attrs *a0 = mt_graph_attrs(g, outs[0]);
    MT_CHECK(a0->alpha == 1.0 && a0->beta == 1.0 && !a0->trans_a && !a0->trans_b);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[1]), "gemm");
    const mt_op_attrs *a1 = mt_graph_attrs(g, outs[1]);
    MT_CHECK(a1->alpha == 2.0 && a1->beta == 0.5);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[1], 2), c);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[2]), "gemm");
    const mt_op_attrs *a2 = mt_graph_attrs(g, outs[2]);
    MT_CHECK(a2->alpha == -1.0 && a2->beta == 1.0 && a2->trans_b && !a2->trans_a);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[2], 1), wt);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[3]), "gemm");
    MT_CHECK(mt_graph_attrs(g, outs[3])->alpha == 3.0 && mt_graph_attrs(g, outs[3])->beta == 0.0);
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[3], 0), x);
    EXPECT(g, outs[4], "gemm", 0);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[5]), "matmul");
    MT_CHECK(prov_has(g, outs[0], "gemm_bias") && prov_has(g, outs[2], "gemm_transpose"));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- the engine */

MT_TEST(refused_replacements_and_cost)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT64, 1, SHAPE(3));
    /* 1 / (1 + exp(x)) -> sigmoid(-x) needs two new nodes; with 1 + exp(x) also an output
     * only the division dies, so the graph would grow: the engine refuses it */
    mt_var den = mt_graph_add(g, lit(g, 1.0), mt_graph_exp(g, x));
    mt_var q = mt_graph_div(g, lit(g, 1.0), den);
    mt_var outs[2] = {q, den};
    mt_rewrite_stats st;
    optimize_with(g, 2, outs, 0, NULL, &st);
    MT_CHECK(st.rejected >= 1);
    EXPECT(g, outs[0], "sigmoid", 0); /* (specialize makes it reciprocal(den)) */
    /* alone, it applies */
    mt_var one = q;
    optimize_with(g, 1, &one, 0, NULL, &st);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, one), "sigmoid");
    mt_rewrite_cost before, after;
    MT_CHECK_OK(mt_rewrite_graph_cost(g, 1, &q, &before));
    MT_CHECK_OK(mt_rewrite_graph_cost(g, 1, &one, &after));
    MT_CHECK(mt_rewrite_cost_compare(&after, &before) < 0);
    MT_CHECK(before.penalty == 0 && before.nodes == 4 && after.nodes == 3);
    mt_graph_free(g);
}

MT_TEST(termination_long_chains)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 1, SHAPE(4));
    enum { N = 10000 };
    /* -(-(...(x))) 10k deep */
    mt_var y = x;
    for (int i = 0; i < N; i++) y = mt_graph_neg(g, y);
    /* alternating x*1 + 0 patterns, 10k nodes */
    mt_var z = x;
    for (int i = 0; i < N / 2; i++)
        z = i % 2 ? mt_graph_add(g, z, lit(g, 0.0)) : mt_graph_mul(g, z, lit(g, 1.0));
    /* log(1 + log(1 + ...)) 2k deep and exp(...) - 1 chains */
    mt_var w = x;
    for (int i = 0; i < 2000; i++)
        w = i % 2 ? mt_graph_log(g, mt_graph_add(g, lit(g, 1.0), w))
                  : mt_graph_sub(g, mt_graph_exp(g, w), lit(g, 1.0));
    /* a transpose chain and a cast ping-pong */
    mt_var m = ph(g, "m", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var t = m;
    for (int i = 0; i < 3001; i++) t = mt_graph_transpose(g, t, NULL);
    mt_var c = x;
    for (int i = 0; i < 2001; i++) c = mt_graph_cast(g, c, i % 2 ? MT_FLOAT32 : MT_FLOAT64);
    mt_var outs[5] = {y, z, w, t, c};
    double t0 = mt_now_seconds();
    mt_rewrite_stats st;
    optimize_with(g, 5, outs, 0, NULL, &st);
    double dt = mt_now_seconds() - t0;
    MT_CHECK_EQ_INT(outs[0], x);
    MT_CHECK_EQ_INT(outs[1], x);
    EXPECT(g, outs[2], "log", 0);
    EXPECT(g, outs[2], "log1p", 1000);
    EXPECT(g, outs[2], "expm1", 1000);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[3]), "dimshuffle");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[3], 0), m);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, outs[4]), "cast");
    MT_CHECK_EQ_INT(mt_graph_input(g, outs[4], 0), x);
    for (int p = 0; p < MT_REWRITE_FUSE; p++) MT_CHECK(st.sweeps[p] <= 4);
    MT_CHECK(dt < 5.0);
    mt_graph_free(g);
}

MT_TEST(termination_random_mixtures)
{
    /* random expressions over every pattern the rules know, shared in random ways: the engine
     * terminates, the cost decreases, the verifier (opts.verify) passes */
    uint64_t s = 12345;
    for (int round = 0; round < 20; round++) {
        mt_graph *g = new_graph();
        mt_var pool[64];
        int np = 0;
        pool[np++] = ph(g, "x", MT_FLOAT64, 2, SHAPE(3, 3));
        pool[np++] = ph(g, "y", MT_FLOAT64, 2, SHAPE(3, 3));
        pool[np++] = lit(g, 1.0);
        pool[np++] = mt_graph_scalar(g, MT_FLOAT64, 0.0);
        for (int i = 0; i < 300; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(s >> 33);
            mt_var a = pool[r % (uint32_t)np], b = pool[(r / 64) % (uint32_t)np], v;
            switch ((r / 4096) % 14) {
            case 0: v = mt_graph_add(g, a, b); break;
            case 1: v = mt_graph_sub(g, a, b); break;
            case 2: v = mt_graph_mul(g, a, b); break;
            case 3: v = mt_graph_div(g, a, b); break;
            case 4: v = mt_graph_log(g, a); break;
            case 5: v = mt_graph_exp(g, a); break;
            case 6: v = mt_graph_neg(g, a); break;
            case 7: v = mt_graph_sigmoid(g, a); break;
            case 8: v = mt_graph_reciprocal(g, a); break;
            case 9: v = mt_graph_pow(g, a, lit(g, (double)(r % 5))); break;
            case 10: v = mt_graph_log1p(g, a); break;
            case 11: v = mt_graph_transpose(g, a, NULL); break;
            case 12: v = mt_graph_matmul(g, a, b); break;
            default: v = mt_graph_softmax(g, a, -1); break;
            }
            if (!v || mt_graph_type(g, v)->ndim != 2) { /* keep shapes simple */
                mt_graph_clear_error(g);
                continue;
            }
            if (np < 64) pool[np++] = v;
            else pool[4 + r % 60] = v;
        }
        mt_var outs[4] = {pool[np - 1], pool[np - 2], pool[np / 2], pool[np > 5 ? 5 : 0]};
        mt_rewrite_cost before, after;
        MT_CHECK_OK(mt_rewrite_graph_cost(g, 4, outs, &before));
        mt_rewrite_stats st;
        optimize_with(g, 4, outs, 0, NULL, &st);
        MT_CHECK_OK(mt_rewrite_graph_cost(g, 4, outs, &after));
        MT_CHECK(mt_rewrite_cost_compare(&after, &before) <= 0);
        if (st.total > 0) MT_CHECK(mt_rewrite_cost_compare(&after, &before) < 0);
        mt_graph_free(g);
    }
}
