/* The !obj:Sweep root: registration, validation with file:line:column errors (Sweep keys,
 * sub-mappings, enums, ranges, the space, the expression objective, grid feasibility,
 * points_to_evaluate, the Train object with ${params.NAME} standing for its parameter), the
 * settings read into mt_sweep_config, and the --dry-run printout. The Train components here
 * are small stand-ins with the real schema machinery (the hyperopt module does not link train). */
#include <string.h>

#include "mltrain/hyperopt.h"
#include "mt_test.h"

static const mt_cfg_key train_keys[] = {
    {"dataset", MT_CFG_T_ANY, false, true, NULL, false, ""},
    {"model", MT_CFG_T_OBJ, true, false, "model", false, ""},
    {"algorithm", MT_CFG_T_OBJ, false, true, "algorithm", false, ""},
    {"save_path", MT_CFG_T_STRING, false, true, NULL, false, ""},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key mlp_keys[] = {
    {"nvis", MT_CFG_T_INT, true, false, NULL, false, ""},
    {"layers", MT_CFG_T_OBJ_LIST, true, false, "layer", false, ""},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key relu_keys[] = {
    {"layer_name", MT_CFG_T_STRING, true, false, NULL, false, ""},
    {"dim", MT_CFG_T_INT, true, false, NULL, false, ""},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key sgd_keys[] = {
    {"learning_rate", MT_CFG_T_FLOAT, true, false, NULL, false, ""},
    {"batch_size", MT_CFG_T_INT, false, false, NULL, false, ""},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_component fake[] = {
    {"Train", "train", NULL, train_keys, false, "", NULL, NULL, NULL},
    {"MLP", "model", NULL, mlp_keys, false, "", NULL, NULL, NULL},
    {"RectifiedLinear", "layer", NULL, relu_keys, false, "", NULL, NULL, NULL},
    {"SGD", "algorithm", NULL, sgd_keys, false, "", NULL, NULL, NULL}};

static mt_cfg_registry *registry(void)
{
    mt_cfg_registry *r = NULL;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    for (size_t i = 0; i < sizeof fake / sizeof fake[0]; i++)
        MT_CHECK_OK(mt_cfg_registry_add(r, &fake[i]));
    MT_CHECK_OK(mt_sweep_register_components(r));
    return r;
}

static mt_cfg_doc *load(const char *text)
{
    mt_cfg_doc *d = NULL;
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    o.keep_unknown_vars = true;
    MT_CHECK_OK(mt_cfg_load_string(&d, text, strlen(text), "sweep.yaml", &o));
    return d;
}

/* A valid sweep; `patch` replaces the text between the markers @A@ .. (see uses). */
static const char *const good =
    "!obj:Sweep {\n"                                                                        /* 1 */
    "  name: 'mlp_tpe', seed: 1234,\n"                                                      /* 2 */
    "  params: { lr: !loguniform [1.0e-3, 3.0e-1], bs: !choice [64, 128] },\n"              /* 3 */
    "  train: !obj:Train {\n"                                                               /* 4 */
    "    model: !obj:MLP { nvis: 784, layers: [\n"                                          /* 5 */
    "      !obj:RectifiedLinear { layer_name: 'h0', dim: !quniform [200, 1200, 100] },\n"   /* 6 */
    "    ] },\n"                                                                            /* 7 */
    "    algorithm: !obj:SGD { learning_rate: \"${params.lr}\", batch_size: !param bs },\n" /* 8 */
    "    save_path: \"${trial.dir}/last.pkl\",\n"                                           /* 9 */
    "  },\n"                                                                                /* 10 */
    "  objective: { channel: 'valid_y_misclass', mode: min, reduce: best },\n"              /* 11 */
    "  search: { algorithm: tpe, max_trials: 50, max_concurrent: 4,\n"                      /* 12 */
    "            tpe: { n_startup: 10, gamma: 0.25, split: sqrt },\n"                       /* 13 */
    "            points_to_evaluate: [ { lr: 0.01, bs: 128 } ] },\n"                        /* 14 */
    "  pruner: { type: asha, min_resource: 2, reduction_factor: 3 },\n"                     /* 15 */
    "  distributed: { ranks_per_trial: 2, heartbeat_s: 10 },\n"                             /* 16 */
    "  storage: { dir: 'out.sweep', fsync: true, resume: auto },\n"                         /* 17 */
    "}\n";

/* good with one substring replaced */
static char *patched(const char *from, const char *to)
{
    static char buf[8192];
    const char *at = strstr(good, from);
    MT_CHECK(at != NULL);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    return buf;
}

MT_TEST(valid_sweep_reads_and_prints)
{
    mt_cfg_registry *r = registry();
    mt_cfg_doc *d = load(good);
    const mt_cfg_node *root = mt_cfg_doc_root(d);
    MT_CHECK_OK(mt_sweep_validate(r, root));
    mt_sweep_config c;
    MT_CHECK_OK(mt_sweep_config_read(&c, root));
    MT_CHECK_STR_EQ(c.name, "mlp_tpe");
    MT_CHECK(c.sampler.algorithm == MT_HPO_ALGO_TPE && c.sampler.seed == 1234);
    MT_CHECK(c.sampler.tpe.n_startup == 10 && c.sampler.tpe.n_ei_candidates == 24);
    MT_CHECK(c.max_trials == 50 && c.max_concurrent == 4);
    MT_CHECK_STR_EQ(c.objective.channel, "valid_y_misclass");
    MT_CHECK(!c.objective.maximize && !c.objective.reduce_last);
    MT_CHECK(c.pruner.type == MT_HPO_PRUNER_ASHA && c.pruner.min_resource == 2);
    MT_CHECK(c.distributed.ranks_per_trial == 2 && c.distributed.heartbeat_s == 10);
    MT_CHECK(c.distributed.max_retries == 2 && c.distributed.lease_grace_s == 120);
    MT_CHECK_STR_EQ(c.storage.dir, "out.sweep");
    MT_CHECK_STR_EQ(c.storage.journal, "journal.jsonl");
    MT_CHECK(c.points_to_evaluate && c.points_to_evaluate->n == 1);
    MT_CHECK(mt_sweep_objective_loss(&c, 0.25) == 0.25);
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_from_sweep(&s, root));
    MT_CHECK_EQ_INT(mt_hpo_space_count(s), 3);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_sweep_print(&c, s, &sb));
    MT_CHECK(strstr(sb.data, "sweep 'mlp_tpe': tpe search, seed 1234, max_trials 50"));
    MT_CHECK(strstr(sb.data, "gamma 0.25 (sqrt split)"));
    MT_CHECK(strstr(sb.data, "rungs at epochs 2 6 18 54"));
    MT_CHECK(strstr(sb.data, "train.model.layers[0].dim"));
    MT_CHECK(strstr(sb.data, "3 parameters (0 conditional)"));
    mt_strbuf_deinit(&sb);
    /* a resolved trial is a valid single-run Train tree */
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    MT_CHECK_OK(mt_hpo_sample_prior(s, 1234, 0, &p));
    MT_CHECK_OK(mt_hpo_point_from_cfg(s, c.points_to_evaluate->items[0], MT_HPO_KEYS_USER, &p));
    mt_hpo_tree *t = NULL;
    mt_cfg_var v[] = {{"trial.dir", "out.sweep/trial_0"}};
    MT_CHECK_OK(mt_hpo_resolve(&t, s, &p, c.train, 1, v));
    MT_CHECK_OK(mt_cfg_validate(r, mt_hpo_tree_root(t), "train"));
    const mt_cfg_node *alg = mt_cfg_get(mt_hpo_tree_root(t), "algorithm");
    MT_CHECK(mt_cfg_get(alg, "learning_rate")->f == 0.01);
    MT_CHECK_EQ_INT(mt_cfg_get(alg, "batch_size")->i, 128);
    mt_hpo_tree_free(t);
    mt_hpo_point_clear(&p);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
    mt_cfg_registry_free(r);
}

static void expect(const char *text, const char *needle)
{
    mt_cfg_registry *r = registry();
    mt_cfg_doc *d = load(text);
    MT_CHECK_ERR(mt_sweep_validate(r, mt_cfg_doc_root(d)), MT_ERR_INVALID, needle);
    mt_cfg_doc_free(d);
    mt_cfg_registry_free(r);
}

static void expect_ok(const char *text)
{
    mt_cfg_registry *r = registry();
    mt_cfg_doc *d = load(text);
    MT_CHECK_OK(mt_sweep_validate(r, mt_cfg_doc_root(d)));
    mt_cfg_doc_free(d);
    mt_cfg_registry_free(r);
}

MT_TEST(sweep_validation_errors)
{
    expect(patched("seed: 1234", "sed: 1234"),
           "sweep.yaml:2:20: Sweep has no key 'sed' (did you mean 'seed'?)");
    expect(patched("algorithm: tpe", "algoritm: tpe"),
           "sweep.yaml:12:13: search has no key 'algoritm' (did you mean 'algorithm'?)");
    expect(patched("algorithm: tpe", "algorithm: tpee"),
           "sweep.yaml:12:24: search key 'algorithm': 'tpee' is not one of tpe, random, grid "
           "(did you mean 'tpe'?)");
    expect(patched("gamma: 0.25", "gamma: 1.5"),
           "sweep.yaml:13:35: search.tpe key 'gamma': must be in (0, 1]");
    expect(patched("max_concurrent: 4", "max_concurrent: four"),
           "sweep.yaml:12:61: search key 'max_concurrent': must be an integer, got string");
    expect(patched("type: asha", "type: hyperband"),
           "pruner key 'type': 'hyperband' is not one of none, median, asha");
    expect(patched("reduction_factor: 3", "reduction_factor: 1"),
           "pruner key 'reduction_factor': must be >= 2");
    expect(patched("heartbeat_s: 10", "heartbeat: 10"),
           "distributed has no key 'heartbeat' (did you mean 'heartbeat_s'?)");
    expect(patched("resume: auto", "resume: sometimes"),
           "storage key 'resume': 'sometimes' is not one of auto, never, force");
    expect(patched("  objective: { channel: 'valid_y_misclass', mode: min, reduce: best },\n", ""),
           "sweep.yaml:1:1: Sweep is missing the required key 'objective'");
    expect(patched("channel: 'valid_y_misclass'", "channel: 'v', expression: 'lr'"),
           "sweep.yaml:11:14: objective needs exactly one of 'channel'");
    expect(patched("mode: min", "mode: minimize"),
           "objective key 'mode': 'minimize' is not one of min, max");
    /* the space */
    expect(patched("!quniform [200, 1200, 100]", "!quniform [200, 1200]"),
           "sweep.yaml:6:53: !quniform needs [low, high, q]");
    expect(patched("\"${params.lr}\"", "\"${params.rl}\""),
           "sweep.yaml:8:42: unknown parameter 'params.rl'");
    expect(patched("!param bs", "!param bss"),
           "unknown parameter 'params.bss' (did you mean 'bs'?)");
    /* the Train object, with the parameters standing for their values */
    expect(patched("nvis: 784", "nvis: 784, nvs: 784"),
           "sweep.yaml:5:34: MLP has no key 'nvs' (did you mean 'nvis'?)");
    expect(patched("nvis: 784", "nvs: 784"),
           "sweep.yaml:5:12: MLP is missing the required key 'nvis'");
    expect(patched("dim: !quniform [200, 1200, 100]", "dim: 'wide'"),
           "sweep.yaml:6:53: RectifiedLinear key 'dim': must be an integer, got string 'wide'");
    expect(patched("bs: !choice [64, 128]", "bs: !choice [64, big]"),
           "SGD key 'batch_size': must be an integer, got string 'big'");
    /* the expression objective, grid feasibility, points_to_evaluate */
    expect(patched("channel: 'valid_y_misclass'", "expression: 'lr * dim + foo'"),
           "sweep.yaml:11:16: objective expression: 1:12: name 'foo' is not defined");
    expect(patched("algorithm: tpe", "algorithm: grid"),
           "grid search needs finite values, but 'params.lr' is !loguniform");
    expect(patched("{ lr: 0.01, bs: 128 }", "{ lr: 0.01, bs: 100 }"),
           "sweep.yaml:14:51: 'bs': the value matches none of the 2 options");
    expect(patched("tpe: { n_startup: 10,", "tpe: { multivariate: true, n_startup: 10,"),
           "multivariate TPE is not implemented");
    /* an expression objective may name `epoch` (the trials evaluate it per epoch) */
    expect_ok(patched("channel: 'valid_y_misclass'", "expression: 'lr * dim / epoch'"));
    expect(patched("channel: 'valid_y_misclass'", "expression: 'lr * dim / epochs'"),
           "sweep.yaml:11:16: objective expression: 1:12: name 'epochs' is not defined");
    /* not a Sweep root */
    mt_cfg_registry *r = registry();
    mt_cfg_doc *d = load("!obj:Train { model: !obj:MLP { nvis: 1, layers: [] } }");
    MT_CHECK_ERR(mt_sweep_validate(r, mt_cfg_doc_root(d)), MT_ERR_INVALID,
                 "sweep.yaml:1:1: a sweep file's root must be !obj:Sweep");
    mt_cfg_doc_free(d);
    mt_cfg_registry_free(r);
}

MT_TEST(expression_sweep_runs_without_training)
{
    /* the whole search loop as a coordinator drives it, with an expression objective */
    const char *text = "!obj:Sweep {\n"
                       "  params: { x: !uniform [-5, 10], y: !uniform [0, 15] },\n"
                       "  train: !obj:Train { model: !obj:MLP { nvis: 2, layers: [] } },\n"
                       "  objective: { expression: '(y - 5.1 / (4 * pi**2) * x**2 + 5 * x / pi"
                       " - 6)**2 + 10 * (1 - 1 / (8 * pi)) * cos(x) + 10', mode: min },\n"
                       "  search: { algorithm: tpe, max_trials: 60, seed: 3 },\n"
                       "  pruner: { type: median },\n"
                       "}\n";
    mt_cfg_registry *r = registry();
    mt_cfg_doc *d = load(text);
    MT_CHECK_OK(mt_sweep_validate(r, mt_cfg_doc_root(d)));
    mt_sweep_config c;
    MT_CHECK_OK(mt_sweep_config_read(&c, mt_cfg_doc_root(d)));
    MT_CHECK(c.sampler.seed == 3 && c.pruner.type == MT_HPO_PRUNER_MEDIAN);
    mt_hpo_space *s = NULL;
    MT_CHECK_OK(mt_hpo_space_from_sweep(&s, mt_cfg_doc_root(d)));
    mt_hpo_expr *e = NULL;
    MT_CHECK_OK(mt_hpo_expr_new(&e, s, c.objective.expression));
    mt_hpo_sampler *sm = NULL;
    MT_CHECK_OK(mt_hpo_sampler_new(&sm, s, &c.sampler));
    mt_hpo_history *h = NULL;
    MT_CHECK_OK(mt_hpo_history_new(&h, s));
    mt_hpo_point p;
    MT_CHECK_OK(mt_hpo_point_init(&p, s));
    for (int64_t i = 0; i < c.max_trials; i++) {
        MT_CHECK_OK(mt_hpo_sampler_suggest(sm, h, i, &p));
        MT_CHECK_OK(mt_hpo_history_add(h, i, &p));
        double y;
        MT_CHECK_OK(mt_hpo_expr_eval(e, &p, &y));
        MT_CHECK_OK(mt_hpo_history_finish(h, i, MT_HPO_OK, mt_sweep_objective_loss(&c, y)));
    }
    MT_CHECK_EQ_INT(mt_hpo_history_count(h), 60);
    /* Branin's minimum is 0.397887; 60 TPE evaluations get within 1.5 of it */
    MT_CHECK(mt_hpo_history_best(h)->loss < 0.397887 + 1.5);
    mt_hpo_point_clear(&p);
    mt_hpo_history_free(h);
    mt_hpo_sampler_free(sm);
    mt_hpo_expr_free(e);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(d);
    mt_cfg_registry_free(r);
}
