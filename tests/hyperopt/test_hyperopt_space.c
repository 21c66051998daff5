/* Spaces from YAML (labels, nested conditional choices, integer parameters, tag errors with
 * file:line:column), deterministic prior sampling, grid enumeration, points as JSON and from
 * config nodes, resolution of a Train tree (integers stay integers, choices become values),
 * expression objectives (Branin, Hartmann6 at their optima, extra scalars such as `epoch`),
 * and the pruners on crafted histories. */
#include <math.h>
#include <string.h>

#include "mltrain/hyperopt.h"
#include "hyperopt_impl.h"
#include "hpo_objectives.h"
#include "hpo_test.h"
#include "mt_test.h"

static mt_cfg_doc *load(const char *text) { return hpo_load(text, "sp.yaml"); }

static const char *const nested =
    "params:\n"
    "  lr: !loguniform [1.0e-3, 3.0e-1]\n"
    "  wd: !choice [0, !loguniform [1.0e-6, 1.0e-3]]\n"
    "train:\n"
    "  model:\n"
    "    layers:\n"
    "      - !choice\n"
    "        - {kind: relu, dim: !quniform [200, 1200, 100]}\n"
    "        - {kind: maxout, num_units: !quniform [100, 400, 20],\n"
    "           num_pieces: !intuniform [2, 5],\n"
    "           init: !choice [{irange: !uniform [0.001, 0.1]}, {sparse: !randint [5, 20]}]}\n"
    "      - {kind: softmax, n: 10}\n"
    "  algorithm:\n"
    "    learning_rate: \"${params.lr}\"\n"
    "    batch_size: !choice [64, 100, 128]\n"
    "    decay: !param wd\n"
    "    seed: !randint [1000]\n"
    "    save: \"${trial.dir}/best.pkl\"\n";

static mt_hpo_space *nested_space(mt_cfg_doc *d)
{
    const mt_cfg_node *r = mt_cfg_doc_root(d);
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_get(r, "params"), mt_cfg_get(r, "train"), "train"));
    return s;
}

MT_TEST(extract_nested_conditional_choices)
{
    mt_cfg_doc *d = load(nested);
    mt_hpo_space *s = nested_space(d);
    const char *labels[] = {"params.lr",
                            "params.wd",
                            "params.wd[1]",
                            "train.model.layers[0]",
                            "train.model.layers[0][0].dim",
                            "train.model.layers[0][1].num_units",
                            "train.model.layers[0][1].num_pieces",
                            "train.model.layers[0][1].init",
                            "train.model.layers[0][1].init[0].irange",
                            "train.model.layers[0][1].init[1].sparse",
                            "train.algorithm.batch_size",
                            "train.algorithm.seed"};
    MT_CHECK_EQ_INT(mt_hpo_space_count(s), 12);
    for (int i = 0; i < 12; i++)
        MT_CHECK_STR_EQ(mt_hpo_space_param(s, i)->label, labels[i]);
    const mt_hpo_param *p = mt_hpo_space_param(s, 8);
    MT_CHECK_EQ_INT(p->parent, 7);
    MT_CHECK_EQ_INT(p->parent_option, 0);
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 7)->parent, 3);
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 7)->parent_option, 1);
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 2)->parent, 1);
    MT_CHECK(mt_hpo_space_param(s, 0)->dist == MT_HPO_LOGUNIFORM);
    MT_CHECK(mt_hpo_space_param(s, 0)->a == 1e-3 && mt_hpo_space_param(s, 0)->b == 0.3);
    /* integers: quniform with integer bounds and q, intuniform, randint */
    MT_CHECK(mt_hpo_space_param(s, 4)->is_int && mt_hpo_space_param(s, 6)->is_int);
    MT_CHECK(mt_hpo_space_param(s, 11)->is_int && mt_hpo_space_param(s, 11)->a == 0 &&
             mt_hpo_space_param(s, 11)->b == 1000);
    MT_CHECK(!mt_hpo_space_param(s, 8)->is_int);
    /* positions and names */
    MT_CHECK_EQ_INT(mt_hpo_space_param(s, 4)->loc.line, 8);
    MT_CHECK_STR_EQ(mt_hpo_space_param(s, 0)->name, "lr");
    MT_CHECK_STR_EQ(mt_hpo_space_param(s, 6)->name, "num_pieces");
    MT_CHECK_EQ_INT(mt_hpo_space_find(s, "irange"), 8);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_hpo_space_print(s, &sb));
    MT_CHECK(strstr(sb.data, "params.lr") &&
             strstr(sb.data, "loguniform [0.001, 0.3]"));
    MT_CHECK(strstr(sb.data, "    [0] train.model.layers[0][1].init[0].irange"));
    MT_CHECK(strstr(sb.data, "12 parameters (7 conditional)"));
    mt_strbuf_deinit(&sb);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(sampling_is_deterministic_and_valid)
{
    mt_cfg_doc *d = load(nested);
    mt_hpo_space *s = nested_space(d), *s2 = nested_space(d);
    mt_hpo_point a, b;
    MT_CHECK_OK(mt_hpo_point_init(&a, s));
    MT_CHECK_OK(mt_hpo_point_init(&b, s2));
    int differ = 0, branch1 = 0;
    for (int64_t id = 0; id < 200; id++) {
        MT_CHECK_OK(mt_hpo_sample_prior(s, 42, id, &a));
        MT_CHECK_OK(mt_hpo_sample_prior(s2, 42, id, &b));
        MT_CHECK(mt_hpo_point_equal(&a, &b));
        MT_CHECK_OK(mt_hpo_point_check(s, &a));
        MT_CHECK(a.values[0] >= 1e-3 && a.values[0] <= 0.3);
        branch1 += a.values[3] == 1;
        MT_CHECK(a.active[5] == (a.values[3] == 1) && a.active[4] == (a.values[3] == 0));
        MT_CHECK_OK(mt_hpo_sample_prior(s, 43, id, &b));
        differ += !mt_hpo_point_equal(&a, &b);
    }
    MT_CHECK(differ >= 195);
    MT_CHECK(branch1 > 70 && branch1 < 130);
    mt_hpo_point_clear(&a);
    mt_hpo_point_clear(&b);
    mt_hpo_space_free(s);
    mt_hpo_space_free(s2);
    mt_cfg_doc_free(d);
}

MT_TEST(resolve_ints_stay_ints_choices_are_values)
{
    mt_cfg_doc *d = load(nested);
    mt_hpo_space *s = nested_space(d);
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    /* choose the maxout branch, sparse init */
    const char *pt = "{params.lr: 0.01, params.wd: 1, 'params.wd[1]': 1.0e-4,"
                     " 'train.model.layers[0]': 1, 'train.model.layers[0][1].num_units': 240,"
                     " 'train.model.layers[0][1].num_pieces': 3,"
                     " 'train.model.layers[0][1].init': 1,"
                     " 'train.model.layers[0][1].init[1].sparse': 15,"
                     " train.algorithm.batch_size: 2, train.algorithm.seed: 7}";
    mt_cfg_doc *pd = load(pt);
    MT_CHECK_OK(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(pd), MT_HPO_KEYS_JOURNAL, &p));
    MT_CHECK_OK(mt_hpo_point_check(s, &p));
    mt_cfg_var vars[] = {{"trial.dir", "sw/trial_3"}};
    mt_hpo_tree *t = NULL;
    MT_CHECK_OK(mt_hpo_resolve(&t, s, &p, mt_cfg_get(mt_cfg_doc_root(d), "train"), 1, vars));
    const mt_cfg_node *r = mt_hpo_tree_root(t);
    const mt_cfg_node *l0 = mt_cfg_get(mt_cfg_get(r, "model"), "layers")->items[0];
    MT_CHECK(l0->kind == MT_CFG_MAP);
    MT_CHECK_STR_EQ(mt_cfg_get(l0, "kind")->str, "maxout");
    MT_CHECK(mt_cfg_get(l0, "num_units")->kind == MT_CFG_INT);
    MT_CHECK_EQ_INT(mt_cfg_get(l0, "num_units")->i, 240);
    MT_CHECK(mt_cfg_get(l0, "num_pieces")->kind == MT_CFG_INT);
    MT_CHECK_EQ_INT(mt_cfg_get(mt_cfg_get(l0, "init"), "sparse")->i, 15);
    const mt_cfg_node *alg = mt_cfg_get(r, "algorithm");
    MT_CHECK(mt_cfg_get(alg, "learning_rate")->kind == MT_CFG_FLOAT);
    MT_CHECK(mt_cfg_get(alg, "learning_rate")->f == 0.01);
    MT_CHECK(mt_cfg_get(alg, "batch_size")->kind == MT_CFG_INT);
    MT_CHECK_EQ_INT(mt_cfg_get(alg, "batch_size")->i, 128);
    MT_CHECK(mt_cfg_get(alg, "decay")->kind == MT_CFG_FLOAT);
    MT_CHECK(mt_cfg_get(alg, "decay")->f == 1e-4);
    MT_CHECK_EQ_INT(mt_cfg_get(alg, "seed")->i, 7);
    MT_CHECK_STR_EQ(mt_cfg_get(alg, "save")->str, "sw/trial_3/best.pkl");
    /* the dump is a plain YAML file with no search tags left, and reads back equal */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_cfg_dump(&sb, r));
    MT_CHECK(!strchr(sb.data, '!'));
    MT_CHECK(strstr(sb.data, "num_units: 240") && strstr(sb.data, "batch_size: 128"));
    mt_cfg_doc *back = load(sb.data);
    MT_CHECK_EQ_INT(mt_cfg_get(mt_cfg_get(mt_cfg_doc_root(back), "algorithm"), "batch_size")->i,
                    128);
    mt_cfg_doc_free(back);
    mt_strbuf_deinit(&sb);
    mt_hpo_tree_free(t);
    /* an inactive parameter that the tree reaches is an error */
    p.active[3] = false;
    MT_CHECK_ERR(mt_hpo_resolve(&t, s, &p, mt_cfg_get(mt_cfg_doc_root(d), "train"), 0, NULL),
                 MT_ERR_INVALID, "no value for 'train.model.layers[0]'");
    mt_cfg_doc_free(pd);
    mt_hpo_point_clear(&p);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(point_json_roundtrip_and_user_points)
{
    mt_cfg_doc *d = load(nested);
    mt_hpo_space *s = nested_space(d);
    mt_hpo_point a, b;
    MT_CHECK_OK(mt_hpo_point_init(&a, s));
    MT_CHECK_OK(mt_hpo_point_init(&b, s));
    for (int64_t id = 0; id < 20; id++) {
        MT_CHECK_OK(mt_hpo_sample_prior(s, 9, id, &a));
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        MT_CHECK_OK(mt_hpo_point_to_json(s, &a, &sb));
        mt_cfg_doc *j = load(sb.data);
        MT_CHECK_OK(mt_hpo_sample_prior(s, 10, id, &b));
        MT_CHECK_OK(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(j), MT_HPO_KEYS_JOURNAL, &b));
        MT_CHECK(mt_hpo_point_equal(&a, &b));
        mt_cfg_doc_free(j);
        mt_strbuf_deinit(&sb);
    }
    /* points_to_evaluate: names, choices by value, a component option by name */
    mt_cfg_doc *u = load("{lr: 0.02, batch_size: 100, 'train.model.layers[0]': 0, dim: 300,"
                         " wd: 0}");
    MT_CHECK_OK(mt_hpo_sample_prior(s, 1, 0, &a));
    MT_CHECK_OK(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(u), MT_HPO_KEYS_USER, &a));
    MT_CHECK(a.values[0] == 0.02 && a.values[10] == 1 && a.values[4] == 300 && a.values[1] == 0);
    MT_CHECK(!a.active[2] && !a.active[5]);
    mt_cfg_doc_free(u);
    u = load("{batch_size: 99}");
    MT_CHECK_ERR(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(u), MT_HPO_KEYS_USER, &a), MT_ERR_INVALID,
                 "sp.yaml:1:14: 'batch_size': the value matches none");
    mt_cfg_doc_free(u);
    u = load("{lr: 5.0}");
    MT_CHECK_ERR(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(u), MT_HPO_KEYS_USER, &a), MT_ERR_INVALID,
                 "5 is not a value of 'params.lr'");
    mt_cfg_doc_free(u);
    u = load("{lrr: 0.1}");
    MT_CHECK_ERR(mt_hpo_point_from_cfg(s, mt_cfg_doc_root(u), MT_HPO_KEYS_USER, &a), MT_ERR_INVALID,
                 "sp.yaml:1:2: 'lrr' is not a parameter");
    mt_cfg_doc_free(u);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_hpo_sample_prior(s, 1, 0, &a));
    MT_CHECK_OK(mt_hpo_point_describe(s, &a, &sb));
    MT_CHECK(strstr(sb.data, "lr=") && strstr(sb.data, "batch_size="));
    mt_strbuf_deinit(&sb);
    mt_hpo_point_clear(&a);
    mt_hpo_point_clear(&b);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

static void expect_space_error(const char *text, const char *needle)
{
    mt_cfg_doc *d = load(text);
    const mt_cfg_node *r = mt_cfg_doc_root(d);
    mt_hpo_space *s = NULL;
    MT_CHECK_ERR(mt_hpo_space_extract(&s, mt_cfg_get(r, "params"), mt_cfg_get(r, "train"), "train"),
                 MT_ERR_INVALID, needle);
    MT_CHECK(s == NULL);
    mt_cfg_doc_free(d);
}

MT_TEST(tag_errors_name_file_line_column)
{
    expect_space_error("train: {lr: !uniform [1]}", "sp.yaml:1:13: !uniform needs [low, high]");
    expect_space_error("train: {lr: !uniform [2, 1]}", "sp.yaml:1:13: !uniform needs low < high");
    expect_space_error("train:\n  lr: !loguniform [0, 1]\n",
                       "sp.yaml:2:7: !loguniform bounds are in natural units and must be > 0");
    expect_space_error("train: {a: !quniform [0, 10, 0]}", "!quniform needs q > 0");
    expect_space_error("train: {a: !normal [0, -1]}", "!normal needs sigma > 0");
    expect_space_error("train: {a: !choice []}", "!choice needs a non-empty list of options");
    expect_space_error("train: {a: !pchoice [[0.5, a], [0.6, b]]}",
                       "!pchoice probabilities must sum to 1");
    expect_space_error("train: {a: !randint [1.5, 3]}", "!randint needs integer bounds");
    expect_space_error("train: {a: !uniform [a, 3]}", "!uniform needs numbers [low, high]");
    expect_space_error("params: {lr: !uniform [0, 1]}\ntrain: {x: \"${params.lrr}\"}",
                       "sp.yaml:2:12: unknown parameter 'params.lrr' (did you mean 'lr'?)");
    expect_space_error("params: {lr: !uniform [0, 1]}\ntrain: {x: !param rl}",
                       "unknown parameter 'params.rl'");
    expect_space_error("train: {a: !uniform {low: 0, hihg: 1}}",
                       "!uniform has no key 'hihg' (did you mean 'high'?)");
    expect_space_error("train: {a: !uniform {low: 0, high: 1, name: x}, b: !uniform {low: 0, "
                       "high: 1, name: x}}",
                       "parameter label 'x' is used twice");
}

MT_TEST(long_form_and_explicit_names)
{
    mt_cfg_doc *d = load("train: {a: !loguniform {low: 1.0e-4, high: 0.1, name: lr},"
                         " b: !choice {options: [1, 2], name: k}}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, NULL, mt_cfg_get(mt_cfg_doc_root(d), "train"), "train"));
    MT_CHECK_STR_EQ(mt_hpo_space_param(s, 0)->label, "lr");
    MT_CHECK_STR_EQ(mt_hpo_space_param(s, 1)->name, "k");
    MT_CHECK(mt_hpo_space_param(s, 0)->a == 1e-4);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(grid_enumeration)
{
    mt_cfg_doc *d = load("train: {a: !grid [1, 2, 3], b: !choice [x, {y: !grid [10, 20]}],"
                         " c: !randint [0, 2]}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, NULL, mt_cfg_get(mt_cfg_doc_root(d), "train"), "train"));
    mt_hpo_sampler_options so;
    mt_hpo_sampler_options_init(&so);
    so.algorithm = MT_HPO_ALGO_GRID;
    mt_hpo_sampler *sm = NULL;
    MT_CHECK_OK(mt_hpo_sampler_new(&sm, s, &so));
    /* 3 * (1 + 2) * 2 */
    MT_CHECK_EQ_INT(mt_hpo_sampler_grid_size(sm), 18);
    mt_hpo_point p[18];
    for (int i = 0; i < 18; i++) {
        MT_CHECK_OK(mt_hpo_point_init(&p[i], s));
        MT_CHECK_OK(mt_hpo_sampler_suggest(sm, NULL, i, &p[i]));
        MT_CHECK_OK(mt_hpo_point_check(s, &p[i]));
        for (int j = 0; j < i; j++)
            MT_CHECK(!mt_hpo_point_equal(&p[i], &p[j]));
    }
    /* first parameter slowest, last fastest; the conditional y only under option 1 */
    MT_CHECK(p[0].values[0] == 0 && p[0].values[1] == 0 && !p[0].active[2] && p[0].values[3] == 0);
    MT_CHECK(p[1].values[3] == 1);
    MT_CHECK(p[2].values[1] == 1 && p[2].active[2] && p[2].values[2] == 0);
    MT_CHECK(p[4].values[1] == 1 && p[4].values[2] == 1);
    MT_CHECK(p[6].values[0] == 1);
    MT_CHECK(p[17].values[0] == 2 && p[17].values[2] == 1 && p[17].values[3] == 1);
    mt_hpo_point q;
    MT_CHECK_OK(mt_hpo_point_init(&q, s));
    MT_CHECK_ERR(mt_hpo_sampler_suggest(sm, NULL, 18, &q), MT_ERR_RANGE, "past the 18 grid points");
    mt_hpo_point_clear(&q);
    for (int i = 0; i < 18; i++)
        mt_hpo_point_clear(&p[i]);
    mt_hpo_sampler_free(sm);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
    /* a continuous parameter has no grid */
    d = load("train: {a: !grid [1, 2], lr: !loguniform [1.0e-3, 1]}");
    MT_CHECK_OK(mt_hpo_space_extract(&s, NULL, mt_cfg_get(mt_cfg_doc_root(d), "train"), "train"));
    MT_CHECK_ERR(mt_hpo_sampler_new(&sm, s, &so), MT_ERR_INVALID,
                 "sp.yaml:1:30: grid search needs finite values, but 'train.lr' is !loguniform");
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(expression_objectives)
{
    mt_cfg_doc *d = load("params: {x: !uniform [-5, 10], y: !uniform [0, 15], k: !choice [2, 5],"
                         " m: !choice [a, {z: !uniform [0, 1]}]}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_get(mt_cfg_doc_root(d), "params"), NULL, NULL));
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    p.values[0] = M_PI, p.values[1] = 2.275, p.values[2] = 1, p.values[3] = 0;
    mt_hpo_point_update_active(s, &p);
    double v;
    MT_CHECK_OK(mt_sweep_eval_expression(hpo_branin_expr, s, &p, &v));
    MT_CHECK_CLOSE(v, 0.397887357729738, 1e-12, 0);
    /* a choice of numbers gives the number; an inactive parameter gives NaN */
    MT_CHECK_OK(mt_sweep_eval_expression("k * 10", s, &p, &v));
    MT_CHECK(v == 50);
    MT_CHECK_OK(mt_sweep_eval_expression("z + 1", s, &p, &v));
    MT_CHECK(isnan(v));
    MT_CHECK_OK(mt_sweep_eval_expression("1", s, &p, &v)); /* an int expression is cast */
    MT_CHECK(v == 1);
    MT_CHECK_ERR(mt_sweep_eval_expression("x + w", s, &p, &v), MT_ERR_INVALID,
                 "expression: 1:5: name 'w' is not defined");
    MT_CHECK_ERR(mt_sweep_eval_expression("x +", s, &p, &v), MT_ERR_INVALID, "expression: 1:");
    mt_hpo_point_clear(&p);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

/* Extra scalars next to the parameters (the sweep's `epoch`): valued per call, a parameter of
 * the same name wins, unnamed extras are not arguments, errors as for parameters. */
MT_TEST(expression_extra_scalars)
{
    mt_cfg_doc *d = load("params: {x: !uniform [0, 1], t: !uniform [0, 1]}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_get(mt_cfg_doc_root(d), "params"), NULL, NULL));
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    p.values[0] = 0.25, p.values[1] = 0.5;
    mt_hpo_point_update_active(s, &p);
    static const char *const extra[] = {"epoch", "t", "unused"};
    mt_hpo_expr *e = NULL;
    MT_CHECK_OK(mt__hpo_expr_new_ex(&e, s, "x * 100 + epoch + t * 1000", 3, extra));
    MT_CHECK(mt__hpo_expr_uses_extra(e, 0));
    MT_CHECK(!mt__hpo_expr_uses_extra(e, 1)); /* the parameter t */
    MT_CHECK(!mt__hpo_expr_uses_extra(e, 2));
    double v;
    for (int ep = 1; ep <= 3; ep++) {
        const double vals[] = {ep, -1e9, -1e9};
        MT_CHECK_OK(mt__hpo_expr_eval_ex(e, &p, vals, &v));
        MT_CHECK(v == 25 + ep + 500);
    }
    mt_hpo_expr_free(e);
    /* the sweep objective's extra is `epoch`; without it `epoch` is an unknown name */
    MT_CHECK_OK(mt__hpo_objective_new(&e, s, "x / epoch"));
    MT_CHECK(mt__hpo_expr_uses_extra(e, 0));
    MT_CHECK_OK(mt__hpo_expr_eval_ex(e, &p, (const double[]){4}, &v));
    MT_CHECK(v == 0.0625);
    mt_hpo_expr_free(e);
    MT_CHECK_OK(mt__hpo_objective_new(&e, s, "x"));
    MT_CHECK(!mt__hpo_expr_uses_extra(e, 0));
    mt_hpo_expr_free(e);
    MT_CHECK_ERR(mt_hpo_expr_new(&e, s, "x / epoch"), MT_ERR_INVALID,
                 "expression: 1:5: name 'epoch' is not defined");
    MT_CHECK_ERR(mt__hpo_objective_new(&e, s, "x / epochs"), MT_ERR_INVALID,
                 "expression: 1:5: name 'epochs' is not defined");
    MT_CHECK(e == NULL);
    mt_hpo_point_clear(&p);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(expression_hartmann6)
{
    mt_cfg_doc *d = load("params: {x1: !uniform [0, 1], x2: !uniform [0, 1], x3: !uniform [0, 1],"
                         " x4: !uniform [0, 1], x5: !uniform [0, 1], x6: !uniform [0, 1]}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_get(mt_cfg_doc_root(d), "params"), NULL, NULL));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    hpo_hartmann6_expr(&sb);
    const double xopt[] = {0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573};
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    for (int j = 0; j < 6; j++)
        p.values[j] = xopt[j], p.active[j] = true;
    mt_hpo_expr *e = NULL;
    MT_CHECK_OK(mt_hpo_expr_new(&e, s, sb.data));
    double v;
    MT_CHECK_OK(mt_hpo_expr_eval(e, &p, &v));
    MT_CHECK_CLOSE(v, -3.32237, 1e-5, 0);
    p.values[0] = 0.9;
    MT_CHECK_OK(mt_hpo_expr_eval(e, &p, &v));
    MT_CHECK(v > -3.0);
    mt_hpo_expr_free(e);
    mt_strbuf_deinit(&sb);
    mt_hpo_point_clear(&p);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

/* ---------------------------------------------------------------- pruners */

static mt_hpo_space *one_param(mt_cfg_doc **d)
{
    *d = load("{x: !uniform [0, 1]}");
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_extract(&s, mt_cfg_doc_root(*d), NULL, NULL));
    return s;
}

static void trial(mt_hpo_history *h, const mt_hpo_space *s, int64_t id, int n, const double *v)
{
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    p.values[0] = 0.5, p.active[0] = true;
    MT_CHECK_OK(mt_hpo_history_add(h, id, &p));
    for (int i = 0; i < n; i++)
        MT_CHECK_OK(mt_hpo_history_report(h, id, i + 1, v[i]));
    mt_hpo_point_clear(&p);
}

static bool decide(mt_hpo_pruner *pr, mt_hpo_history *h, int64_t id, int64_t step, double v)
{
    MT_CHECK_OK(mt_hpo_history_report(h, id, step, v));
    bool prune = false;
    MT_CHECK_OK(mt_hpo_pruner_decide(pr, h, id, &prune));
    return prune;
}

MT_TEST(asha_promotion_decisions)
{
    mt_cfg_doc *d;
    mt_hpo_space *s = one_param(&d);
    mt_hpo_pruner_options o;
    mt_hpo_pruner_options_init(&o);
    o.type = MT_HPO_PRUNER_ASHA;
    o.min_resource = 1;
    o.reduction_factor = 3;
    mt_hpo_pruner *pr = NULL;
    MT_CHECK_OK(mt_hpo_pruner_new(&pr, &o));
    int64_t rungs[5];
    MT_CHECK_EQ_INT(mt_hpo_pruner_rungs(pr, 100, rungs, 5), 5);
    MT_CHECK(rungs[0] == 1 && rungs[1] == 3 && rungs[2] == 9 && rungs[3] == 27 && rungs[4] == 81);
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    /* trial 0 alone at rung 1 (step 1): the best so far, continues; steps 2 is no rung */
    trial(h, s, 0, 0, NULL);
    MT_CHECK(!decide(pr, h, 0, 1, 0.50));
    MT_CHECK(!decide(pr, h, 0, 2, 0.45));
    /* trial 1 worse at rung 1 with n = 2 < eta: not the best so far -> pruned */
    trial(h, s, 1, 0, NULL);
    MT_CHECK(decide(pr, h, 1, 1, 0.60));
    /* trial 2 better: best so far -> continues */
    trial(h, s, 2, 0, NULL);
    MT_CHECK(!decide(pr, h, 2, 1, 0.40));
    /* n = 4 at rung 1: top floor(4/3) = 1: 0.45 is second -> pruned; 0.30 first -> continues */
    trial(h, s, 3, 0, NULL);
    MT_CHECK(decide(pr, h, 3, 1, 0.45));
    trial(h, s, 4, 0, NULL);
    MT_CHECK(!decide(pr, h, 4, 1, 0.30));
    /* n = 6: top 2 = {0.30, 0.35}: 0.35 ties the cutoff value and continues */
    trial(h, s, 5, 0, NULL);
    MT_CHECK(!decide(pr, h, 5, 1, 0.35));
    /* rung 3 (step 3) for trial 0: only itself there -> continues; trial 2 worse -> pruned */
    MT_CHECK(!decide(pr, h, 0, 3, 0.20));
    MT_CHECK(!decide(pr, h, 2, 2, 0.39));
    MT_CHECK(decide(pr, h, 2, 3, 0.25));
    /* a trial that reports every 2 epochs enters rung 3 at its first report past it (step 4) */
    trial(h, s, 6, 0, NULL);
    MT_CHECK(!decide(pr, h, 6, 2, 0.10)); /* rung 1 at step 2: best of 7 */
    MT_CHECK(!decide(pr, h, 6, 4, 0.05)); /* rung 3: best */
    /* NaN at a rung prunes */
    trial(h, s, 7, 0, NULL);
    MT_CHECK(decide(pr, h, 7, 1, NAN));
    mt_hpo_history_free(h);
    mt_hpo_pruner_free(pr);
    /* max_resource stops the rungs */
    o.max_resource = 10;
    MT_CHECK_OK(mt_hpo_pruner_new(&pr, &o));
    MT_CHECK_EQ_INT(mt_hpo_pruner_rungs(pr, 0, rungs, 5), 3);
    mt_hpo_pruner_free(pr);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}

MT_TEST(median_pruner)
{
    mt_cfg_doc *d;
    mt_hpo_space *s = one_param(&d);
    mt_hpo_pruner_options o;
    mt_hpo_pruner_options_init(&o);
    o.type = MT_HPO_PRUNER_MEDIAN;
    o.n_startup_trials = 3;
    o.n_warmup_steps = 2;
    mt_hpo_pruner *pr = NULL;
    MT_CHECK_OK(mt_hpo_pruner_new(&pr, &o));
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    const double a[] = {1.0, 0.8, 0.6, 0.5}, b[] = {1.0, 0.7, 0.5, 0.4}, c[] = {1.2, 1.0, 0.9, 0.8};
    trial(h, s, 0, 4, a);
    trial(h, s, 1, 4, b);
    MT_CHECK_OK(mt_hpo_history_finish(h, 0, MT_HPO_OK, 0.5));
    MT_CHECK_OK(mt_hpo_history_finish(h, 1, MT_HPO_OK, 0.4));
    /* two OK trials < n_startup_trials: never prunes */
    trial(h, s, 5, 0, NULL);
    MT_CHECK(!decide(pr, h, 5, 3, 5.0));
    trial(h, s, 2, 4, c);
    MT_CHECK_OK(mt_hpo_history_finish(h, 2, MT_HPO_OK, 0.8));
    /* medians at step 3: 0.6; step 1 is in the warmup */
    trial(h, s, 3, 0, NULL);
    MT_CHECK(!decide(pr, h, 3, 1, 9.0));
    MT_CHECK(decide(pr, h, 3, 3, 0.61));
    trial(h, s, 4, 0, NULL);
    MT_CHECK(!decide(pr, h, 4, 3, 0.6)); /* equal to the median continues */
    /* the best value so far counts: 0.55 at step 4 is above the median 0.5, but step 3 had
     * 0.45, below it */
    trial(h, s, 6, 0, NULL);
    MT_CHECK(!decide(pr, h, 6, 3, 0.45));
    MT_CHECK(!decide(pr, h, 6, 4, 0.55));
    /* a step nobody reported: no comparison, continue */
    MT_CHECK(!decide(pr, h, 6, 7, 3.0));
    mt_hpo_history_free(h);
    mt_hpo_pruner_free(pr);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
}
