/* The component registry (names, aliases, dotted-name resolution, kinds), validation against
 * schemas (every error class with its position and suggestion, in file order), and the
 * builder (memoized per node so aliases build once, reverse-order destruction, release, own,
 * context, checkpoints through the "!pkl" component, positioned errors). A small set of
 * Pylearn2-like components defined here stands in for the real ones. */
#include "config_test_util.h"

/* ================================================================ test components */

typedef struct tobj {
    const char *name;   /* component */
    int id;             /* creation number */
    struct tobj *child; /* something it built (for ordering checks) */
} tobj;

static char g_log[4096]; /* "B:MNIST#1 B:MLP#2 ... D:Train#5 ..." */
static int g_next_id;
static int g_ctx_seen;

static void log_event(const char *what, const tobj *o)
{
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s%s:%s#%d", n ? " " : "", what, o->name, o->id);
}

static void t_destroy(void *p)
{
    tobj *o = p;
    log_event("D", o);
    free(o);
}

static mt_status build_children(mt_cfg_builder *b, const mt_cfg_node *n, tobj *self)
{
    /* build every component value (lists and maps too), in key order */
    for (int32_t i = 0; i < n->n; i++) {
        const mt_cfg_node *v = n->items[i];
        const mt_cfg_node *const *items = (const mt_cfg_node *const *)&v;
        int32_t count = 1;
        if (v->kind == MT_CFG_LIST || v->kind == MT_CFG_MAP) {
            items = (const mt_cfg_node *const *)v->items;
            count = v->n;
        }
        for (int32_t j = 0; j < count; j++) {
            if (items[j]->kind != MT_CFG_OBJ && items[j]->kind != MT_CFG_PKL) continue;
            void *child = NULL;
            mt_status st = mt_cfg_build(b, items[j], NULL, &child, NULL);
            if (st != MT_OK) return st;
            if (!self->child) self->child = child;
        }
    }
    return MT_OK;
}

static mt_status t_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    if (mt_cfg_builder_context(b) == &g_ctx_seen) g_ctx_seen++;
    const mt_component *c = NULL;
    tobj tmp = {0};
    mt_status st = build_children(b, n, &tmp);
    if (st != MT_OK) return st;
    int64_t fail = 0;
    if ((st = mt_cfg_get_int(n, "fail", 0, &fail)) != MT_OK) return st;
    if (fail == 1) return mt_err_set(MT_ERR_INVALID, "asked to fail");
    int64_t start = 0;
    if (mt_cfg_get(n, "start") && (st = mt_cfg_get_int(n, "start", 0, &start)) != MT_OK) return st;
    (void)c;
    tobj *o = calloc(1, sizeof *o);
    o->name = n->kind == MT_CFG_PKL ? "!pkl" : n->tag;
    o->id = ++g_next_id;
    o->child = tmp.child;
    log_event("B", o);
    *out = o;
    return MT_OK;
}

static mt_status t_build_self(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return mt_cfg_build(b, n, NULL, out, NULL);
}

static mt_status check_start_stop(const mt_cfg_node *n)
{
    int64_t start, stop;
    mt_status st = mt_cfg_get_int(n, "start", 0, &start);
    if (st == MT_OK) st = mt_cfg_get_int(n, "stop", INT64_MAX, &stop);
    if (st != MT_OK) return st;
    if (start >= stop)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(n, "stop"),
                            "stop (%lld) must be "
                            "after start (%lld)",
                            (long long)stop, (long long)start);
    return MT_OK;
}

static mt_status check_no_position(const mt_cfg_node *n)
{
    return mt_cfg_get(n, "bad") ? mt_err_set(MT_ERR_INVALID, "'bad' is not allowed here") : MT_OK;
}

#define KEY(n_, t_, ...)                                                                           \
    {                                                                                              \
        .name = (n_), .type = (t_), __VA_ARGS__                                                    \
    }
#define END                                                                                        \
    {                                                                                              \
        .name = NULL                                                                               \
    }
static const mt_cfg_key train_keys[] = {
    KEY("dataset", MT_CFG_T_OBJ, .required = true, .obj_kind = "dataset", .doc = "training data"),
    KEY("model", MT_CFG_T_OBJ, .required = true, .obj_kind = "model", .accepts_pkl = true),
    KEY("algorithm", MT_CFG_T_OBJ, .nullable = true, .obj_kind = "algorithm"),
    KEY("extensions", MT_CFG_T_OBJ_LIST, .nullable = true, .obj_kind = "extension"),
    KEY("save_path", MT_CFG_T_STRING, .nullable = true),
    KEY("save_freq", MT_CFG_T_INT),
    END};
static const mt_cfg_key mnist_keys[] = {KEY("which_set", MT_CFG_T_STRING, .required = true),
                                        KEY("start", MT_CFG_T_INT),
                                        KEY("stop", MT_CFG_T_INT),
                                        KEY("shuffle", MT_CFG_T_BOOL),
                                        KEY("fail", MT_CFG_T_INT),
                                        END};
static const mt_cfg_key mlp_keys[] = {
    KEY("nvis", MT_CFG_T_INT),
    KEY("layers", MT_CFG_T_OBJ_LIST, .required = true, .obj_kind = "layer"),
    KEY("batch_size", MT_CFG_T_INT),
    KEY("input_space", MT_CFG_T_OBJ, .obj_kind = "space"),
    KEY("fail", MT_CFG_T_INT),
    END};
static const mt_cfg_key softmax_keys[] = {KEY("n_classes", MT_CFG_T_INT, .required = true),
                                          KEY("layer_name", MT_CFG_T_STRING, .required = true),
                                          KEY("irange", MT_CFG_T_FLOAT),
                                          KEY("max_col_norm", MT_CFG_T_FLOAT),
                                          KEY("fail", MT_CFG_T_INT),
                                          END};
static const mt_cfg_key sgd_keys[] = {
    KEY("learning_rate", MT_CFG_T_FLOAT, .required = true),
    KEY("batch_size", MT_CFG_T_INT),
    KEY("monitoring_dataset", MT_CFG_T_OBJ_MAP, .nullable = true, .obj_kind = "dataset"),
    KEY("cost", MT_CFG_T_OBJ, .nullable = true, .obj_kind = "cost"),
    KEY("termination_criterion", MT_CFG_T_OBJ, .nullable = true, .obj_kind = "termination"),
    KEY("learning_rule", MT_CFG_T_OBJ, .nullable = true, .obj_kind = "learning_rule"),
    KEY("update_callbacks", MT_CFG_T_OBJ_OR_LIST, .nullable = true, .obj_kind = "update_callback"),
    END};
static const mt_cfg_key dropout_keys[] = {KEY("input_include_probs", MT_CFG_T_FLOAT_MAP),
                                          KEY("input_scales", MT_CFG_T_FLOAT_MAP),
                                          KEY("default_input_include_prob", MT_CFG_T_FLOAT), END};
static const mt_cfg_key wd_keys[] = {KEY("coeffs", MT_CFG_T_FLOATS_OR_MAP, .required = true), END};
static const mt_cfg_key epochs_keys[] = {KEY("max_epochs", MT_CFG_T_INT, .required = true), END};
static const mt_cfg_key adjustor_keys[] = {KEY("start", MT_CFG_T_INT),
                                           KEY("saturate", MT_CFG_T_INT),
                                           KEY("final_momentum", MT_CFG_T_FLOAT), END};
static const mt_cfg_key space_keys[] = {KEY("shape", MT_CFG_T_INTS, .required = true),
                                        KEY("num_channels", MT_CFG_T_INT),
                                        KEY("axes", MT_CFG_T_STRINGS), END};
static const mt_cfg_key range_keys[] = {KEY("start", MT_CFG_T_INT), KEY("stop", MT_CFG_T_INT), END};
static const mt_cfg_key bad_keys[] = {KEY("bad", MT_CFG_T_ANY), END};

static const char *const mlp_aliases[] = {"pylearn2.models.mlp.MLP", "OldMLP", NULL};
static const char *const sgd_aliases[] = {"pylearn2.training_algorithms.sgd.SGD", NULL};
static const char *const mnist_aliases[] = {"pylearn2.datasets.mnist.MNIST", NULL};

#define COMP(n_, k_, ...)                                                                          \
    {                                                                                              \
        .name = (n_), .kind = (k_), .build = t_build, .destroy = t_destroy, __VA_ARGS__            \
    }
static const mt_component comps[] = {
    COMP("Train", "train", .keys = train_keys, .doc = "a training job"),
    COMP("MNIST", "dataset", .aliases = mnist_aliases, .keys = mnist_keys),
    COMP("MLP", "model", .aliases = mlp_aliases, .keys = mlp_keys),
    COMP("Softmax", "layer", .keys = softmax_keys),
    COMP("SGD", "algorithm", .aliases = sgd_aliases, .keys = sgd_keys),
    COMP("Dropout", "cost", .keys = dropout_keys),
    COMP("WeightDecay", "cost", .keys = wd_keys),
    COMP("EpochCounter", "termination", .keys = epochs_keys),
    COMP("MomentumAdjustor", "extension|update_callback", .keys = adjustor_keys),
    COMP("Conv2DSpace", "space", .keys = space_keys),
    COMP("Anything", "extension", .open_keys = true),
    COMP("Range", "dataset", .keys = range_keys, .check = check_start_stop),
    COMP("Checked", "extension", .keys = bad_keys, .check = check_no_position),
    {.name = "Selfish",
     .kind = "extension",
     .open_keys = true,
     .build = t_build_self,
     .destroy = t_destroy},
    {.name = "Unbuildable", .kind = "extension", .open_keys = true},
};
static const mt_component pkl_comp = COMP("!pkl", "pkl", .doc = "checkpoint loader");

static mt_cfg_registry *make_registry(bool with_pkl)
{
    mt_cfg_registry *r = NULL;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++)
        MT_CHECK_OK(mt_cfg_registry_add(r, &comps[i]));
    if (with_pkl) MT_CHECK_OK(mt_cfg_registry_add(r, &pkl_comp));
    return r;
}

/* Loads text and validates it against the test registry, expecting `needle` (NULL = OK). */
static void validate_at(const char *file, int line, const char *text, const char *kind,
                        const char *needle)
{
    mt_cfg_registry *r = make_registry(true);
    mt_cfg_doc *doc = load_ok_at(file, line, text, NULL);
    mt_err_clear();
    mt_status st = mt_cfg_validate(r, mt_cfg_doc_root(doc), kind);
    if (!needle && st != MT_OK) mt_test_fail(file, line, "validate failed: %s", mt_last_error());
    if (needle && st != MT_ERR_INVALID)
        mt_test_fail(file, line, "validate returned %s (%s), expected ERR_INVALID",
                     mt_status_name(st), mt_last_error());
    if (needle && !strstr(mt_last_error(), needle))
        mt_test_fail(file, line, "message '%s' lacks '%s'", mt_last_error(), needle);
    mt_cfg_doc_free(doc);
    mt_cfg_registry_free(r);
}
#define VALIDATE_OK(text, kind) validate_at(__FILE__, __LINE__, (text), (kind), NULL)
#define VALIDATE_ERR(text, kind, needle) validate_at(__FILE__, __LINE__, (text), (kind), (needle))

/* ================================================================ registry */

MT_TEST(registry_names_aliases_and_kinds)
{
    mt_cfg_registry *r = make_registry(false);
    MT_CHECK_EQ_INT(mt_cfg_registry_count(r), (int)(sizeof comps / sizeof comps[0]));
    MT_CHECK(mt_cfg_registry_at(r, 2) == &comps[2]);
    MT_CHECK(mt_cfg_registry_at(r, 99) == NULL);
    MT_CHECK(mt_cfg_registry_find(r, "MLP") == &comps[2]);
    MT_CHECK(mt_cfg_registry_find(r, "OldMLP") == &comps[2]);
    MT_CHECK(mt_cfg_registry_find(r, "pylearn2.models.mlp.MLP") == &comps[2]);
    /* an unknown dotted name resolves by its last part when that is a canonical name */
    MT_CHECK(mt_cfg_registry_find(r, "mlp.Softmax") == &comps[3]);
    MT_CHECK(mt_cfg_registry_find(r, "pylearn2.models.mlp.Softmax") == &comps[3]);
    MT_CHECK(mt_cfg_registry_find(r, "some.module.OldMLP") ==
             NULL);                                   /* aliases are not last parts */
    MT_CHECK(mt_cfg_registry_find(r, "mlp") == NULL); /* names are case-sensitive */
    MT_CHECK(mt_cfg_registry_find(r, "x.") == NULL);
    MT_CHECK(mt_cfg_registry_find(r, "!pkl") == NULL);
    /* taken names and aliases */
    static const char *const clash_alias[] = {"pylearn2.models.mlp.MLP", NULL};
    static const char *const self_alias[] = {"New", "New", NULL};
    mt_component dup = {.name = "MLP", .kind = "model"};
    mt_component dup2 = {.name = "Other", .kind = "model", .aliases = clash_alias};
    mt_component dup3 = {.name = "OldMLP", .kind = "model"};
    mt_component dup4 = {.name = "New", .kind = "model", .aliases = self_alias};
    mt_component noname = {.name = NULL, .kind = "model"};
    MT_CHECK_ERR(mt_cfg_registry_add(r, &dup), MT_ERR_INVALID,
                 "name 'MLP' is already taken by component 'MLP'");
    MT_CHECK_ERR(mt_cfg_registry_add(r, &dup2), MT_ERR_INVALID,
                 "alias 'pylearn2.models.mlp.MLP' of 'Other' is already taken by component 'MLP'");
    MT_CHECK_ERR(mt_cfg_registry_add(r, &dup3), MT_ERR_INVALID,
                 "name 'OldMLP' is already taken by component 'MLP'");
    MT_CHECK_ERR(mt_cfg_registry_add(r, &dup4), MT_ERR_INVALID, "alias 'New' of 'New'");
    MT_CHECK_ERR(mt_cfg_registry_add(r, &noname), MT_ERR_INVALID, "needs a name and a kind");
    MT_CHECK_EQ_INT(mt_cfg_registry_count(r), (int)(sizeof comps / sizeof comps[0]));
    /* kinds */
    const mt_component *adj = mt_cfg_registry_find(r, "MomentumAdjustor");
    MT_CHECK(mt_component_is_kind(adj, "extension"));
    MT_CHECK(mt_component_is_kind(adj, "update_callback"));
    MT_CHECK(!mt_component_is_kind(adj, "update"));
    MT_CHECK(mt_component_is_kind(adj, "cost|extension"));
    MT_CHECK(mt_component_is_kind(adj, NULL));
    MT_CHECK(!mt_component_is_kind(NULL, "extension"));
    MT_CHECK(!mt_component_is_kind(&comps[2], "dataset"));
    mt_cfg_registry_free(r);
    mt_cfg_registry_free(NULL);
}

/* ================================================================ validation */

static const char *good_train =
    "!obj:pylearn2.train.Train {\n"
    "    dataset: &train !obj:pylearn2.datasets.mnist.MNIST { which_set: 'train', start: 0, stop: "
    "50000 },\n"
    "    model: !obj:pylearn2.models.mlp.MLP {\n"
    "        nvis: 784,\n"
    "        layers: [ !obj:pylearn2.models.mlp.Softmax { n_classes: 10, layer_name: 'y', irange: "
    "0. } ],\n"
    "    },\n"
    "    algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"
    "        learning_rate: .01,\n"
    "        monitoring_dataset: { 'train': *train, 'valid': !obj:MNIST { which_set: 'train' } },\n"
    "        cost: !obj:WeightDecay { coeffs: [ .00005, .00005 ] },\n"
    "        termination_criterion: !obj:EpochCounter { max_epochs: 10 },\n"
    "        learning_rule: null,\n"
    "        update_callbacks: !obj:MomentumAdjustor { start: 1 },\n"
    "    },\n"
    "    extensions: [ !obj:MomentumAdjustor { start: 1, saturate: 10, final_momentum: .99 },\n"
    "                  !obj:Anything { whatever: 1, nested: !obj:MNIST { which_set: 'x' } } ],\n"
    "    save_path: \"out.pkl\",\n"
    "    save_freq: 1\n"
    "}\n";

MT_TEST(validate_accepts_a_good_file)
{
    VALIDATE_OK(good_train, "train");
    VALIDATE_OK(good_train, NULL);
    /* Train is registered without its dotted alias: resolved by the last part */
    VALIDATE_OK(
        "{a: !obj:MNIST {which_set: x}, b: [1, !obj:Softmax {n_classes: 2, layer_name: z}]}", NULL);
    /* lenient types: 1 for a bool, an integral float for an int, an int for a float */
    VALIDATE_OK("!obj:MNIST { which_set: test, shuffle: 1, start: 5.0 }", "dataset");
    VALIDATE_OK("!obj:Dropout { input_include_probs: { 'h0' : .8 }, input_scales: { h0: 1 } }",
                "cost");
    VALIDATE_OK("!obj:WeightDecay { coeffs: 0.5 }", "cost");
    VALIDATE_OK("!obj:WeightDecay { coeffs: {h0: 0.5, y: 1} }", "cost");
    VALIDATE_OK("!obj:Conv2DSpace { shape: [28, 28], axes: [b, c, h, w] }", "space");
    VALIDATE_OK("!obj:Conv2DSpace { shape: 28, axes: c }", "space");
    VALIDATE_OK("!obj:SGD { learning_rate: 1, monitoring_dataset: !obj:MNIST {which_set: t}, "
                "update_callbacks: [!obj:MomentumAdjustor {}] }",
                "algorithm");
    /* a checkpoint where the key accepts one */
    VALIDATE_OK("!obj:Train { dataset: !obj:MNIST {which_set: t}, model: !pkl: 'm.pkl' }", "train");
    /* sweep tags: options are checked, numeric tags stand for numbers */
    VALIDATE_OK("!obj:MLP { nvis: !quniform [100, 800, 100], layers: [ !choice [ "
                "!obj:Softmax {n_classes: 10, layer_name: y}, !obj:Softmax {n_classes: 10, "
                "layer_name: z} ] ] }",
                "model");
    VALIDATE_OK(
        "!obj:SGD { learning_rate: !loguniform [1.0e-4, 0.1], batch_size: !choice [64, 128], "
        "cost: !param c }",
        "algorithm");
}

MT_TEST(validate_unknown_component)
{
    VALIDATE_ERR("a: 1\nb: !obj:MLPP { nvis: 3 }\n", NULL,
                 "t.yaml:2:4: unknown component 'MLPP' (did you mean 'MLP'?)");
    VALIDATE_ERR("!obj:pylearn2.models.mlp.MLPP { nvis: 3 }\n", "model",
                 "t.yaml:1:1: unknown component 'pylearn2.models.mlp.MLPP' (did you mean 'MLP'?)");
    VALIDATE_ERR("!obj:pylearn2.training_algorithms.sgd.SDG { }\n", NULL,
                 "unknown component 'pylearn2.training_algorithms.sgd.SDG' (did you mean 'SGD'?)");
    VALIDATE_ERR("x: [1, {y: !obj:Zebra {}}]\n", NULL,
                 "t.yaml:1:12: unknown component 'Zebra' (no registered component has this name)");
    /* nested inside an open component */
    VALIDATE_ERR("!obj:Anything { a: { b: !obj:Softmx {} } }\n", NULL,
                 "t.yaml:1:25: unknown component 'Softmx' (did you mean 'Softmax'?)");
}

MT_TEST(validate_unknown_key)
{
    VALIDATE_ERR("!obj:MLP {\n  nvis: 3,\n  nvs: 4,\n  layers: []\n}\n", "model",
                 "t.yaml:3:3: MLP has no key 'nvs' (did you mean 'nvis'?)");
    VALIDATE_ERR("!obj:pylearn2.models.mlp.MLP { layers: [], momentum: 1 }\n", "model",
                 "t.yaml:1:44: MLP has no key 'momentum'");
    MT_CHECK(strstr(mt_last_error(), "did you mean") == NULL);
    VALIDATE_ERR("!obj:SGD { learning_rate: 1, learnng_rate: 2 }\n", NULL,
                 "SGD has no key 'learnng_rate' (did you mean 'learning_rate'?)");
}

MT_TEST(validate_wrong_type)
{
    VALIDATE_ERR("!obj:MLP { nvis: 'abc', layers: [] }\n", "model",
                 "t.yaml:1:18: MLP key 'nvis': must be an integer, got string 'abc'");
    VALIDATE_ERR("!obj:MLP { nvis: 2.5, layers: [] }\n", "model",
                 "MLP key 'nvis': must be an integer, got float '2.5'");
    VALIDATE_ERR("!obj:SGD { learning_rate: [1] }\n", NULL,
                 "SGD key 'learning_rate': must be a number, got a list of 1");
    VALIDATE_ERR("!obj:MNIST { which_set: 3 }\n", NULL,
                 "t.yaml:1:25: MNIST key 'which_set': must be a string, got int '3'");
    VALIDATE_ERR("!obj:MNIST { which_set: a, shuffle: 2 }\n", NULL,
                 "MNIST key 'shuffle': must be a boolean (true/false or 0/1), got int '2'");
    VALIDATE_ERR("!obj:MNIST { which_set: null }\n", NULL,
                 "MNIST key 'which_set': must be a string, got null");
    VALIDATE_ERR(
        "!obj:Dropout { input_scales: { h0: x } }\n", NULL,
        "Dropout key 'input_scales': must be a mapping of names to numbers, got a mapping");
    VALIDATE_ERR("!obj:WeightDecay { coeffs: [1, a] }\n", NULL,
                 "WeightDecay key 'coeffs': must be a number, a list of numbers or a mapping of "
                 "names to numbers");
    VALIDATE_ERR("!obj:Conv2DSpace { shape: [28, 2.5] }\n", NULL,
                 "Conv2DSpace key 'shape': must be an integer or a list of integers");
    VALIDATE_ERR("!obj:MLP { layers: !obj:Softmax { n_classes: 1, layer_name: y } }\n", NULL,
                 "t.yaml:1:20: MLP key 'layers': must be a list of components (a layer), got "
                 "Softmax (a layer)");
    VALIDATE_ERR("!obj:SGD { learning_rate: !choice [0.1, x] }\n", NULL,
                 "t.yaml:1:41: SGD key 'learning_rate': must be a number, got string 'x'");
    VALIDATE_ERR("!obj:MNIST { which_set: !uniform [0, 1] }\n", NULL,
                 "MNIST key 'which_set': must be a string, got !uniform");
}

MT_TEST(validate_missing_required_key)
{
    VALIDATE_ERR("a: 1\nm: !obj:MLP { nvis: 3 }\n", NULL,
                 "t.yaml:2:4: MLP is missing the required key 'layers'");
    VALIDATE_ERR("!obj:Train { model: !pkl: x }\n", "train",
                 "t.yaml:1:1: Train is missing the required key 'dataset' (training data)");
    /* null is not "present" for a required key unless nullable */
    VALIDATE_ERR("!obj:Train { dataset: null, model: !pkl: x }\n", "train",
                 "t.yaml:1:23: Train key 'dataset': expected a dataset, got null");
}

MT_TEST(validate_wrong_kind)
{
    VALIDATE_ERR("!obj:Train {\n  dataset: !obj:SGD { learning_rate: 1 },\n  model: !pkl: x\n}\n",
                 "train",
                 "t.yaml:2:12: Train key 'dataset': expected a dataset, got SGD (an algorithm)");
    VALIDATE_ERR("!obj:SGD { learning_rate: 1 }\n", "dataset",
                 "t.yaml:1:1: expected a dataset, got SGD (an algorithm)");
    VALIDATE_ERR("[1, 2]\n", "train", "t.yaml:1:1: expected a train, got a list of 2");
    VALIDATE_ERR("!obj:Train { dataset: !obj:MNIST {which_set: a}, model: !obj:MLP {layers: "
                 "[!obj:MNIST {which_set: b}]} }\n",
                 "train", "MLP key 'layers': expected a layer, got MNIST (a dataset)");
    VALIDATE_ERR(
        "!obj:SGD { learning_rate: 1, update_callbacks: [!obj:EpochCounter {max_epochs: 1}] }\n",
        NULL,
        "SGD key 'update_callbacks': expected an update_callback, got EpochCounter (a "
        "termination)");
    VALIDATE_ERR("!obj:Train { dataset: !obj:MNIST {which_set: a}, model: !pkl: x, extensions: "
                 "[!obj:SGD {learning_rate: 1}] }\n",
                 "train", "Train key 'extensions': expected an extension, got SGD (an algorithm)");
    VALIDATE_ERR("!obj:SGD { learning_rate: 1, cost: 5 }\n", NULL,
                 "t.yaml:1:36: SGD key 'cost': expected a cost, got int '5'");
    VALIDATE_ERR("!obj:Train { dataset: !pkl: d.pkl, model: !pkl: x }\n", "train",
                 "t.yaml:1:23: Train key 'dataset': expected a dataset, got !pkl: 'd.pkl' (this "
                 "key does not take a checkpoint)");
    VALIDATE_ERR("!obj:SGD { learning_rate: 1, monitoring_dataset: { a: !obj:MNIST {which_set: x}, "
                 "b: !obj:MLP {layers: []} } }\n",
                 NULL, "SGD key 'monitoring_dataset': expected a dataset, got MLP (a model)");
    /* an alias is kind-checked at every use */
    VALIDATE_ERR("!obj:Train { dataset: &d !obj:MNIST {which_set: a}, model: *d }\n", "train",
                 "t.yaml:1:23: Train key 'model': expected a model, got MNIST (a dataset)");
}

MT_TEST(validate_checks_and_order)
{
    VALIDATE_OK("!obj:Range { start: 1, stop: 5 }", "dataset");
    VALIDATE_ERR("!obj:Range {\n  start: 9,\n  stop: 5\n}\n", "dataset",
                 "t.yaml:3:3: stop (5) must be after start (9)");
    /* a check's message without a position gets the component's */
    VALIDATE_ERR("x: !obj:Checked { bad: 1 }\n", NULL,
                 "t.yaml:1:4: Checked: 'bad' is not allowed here");
    /* the first problem in file order wins */
    VALIDATE_ERR(
        "!obj:Train {\n  dataset: !obj:MNIST { which_set: 1 },\n  model: !obj:MLPP {},\n}\n",
        "train", "t.yaml:2:36: MNIST key 'which_set'");
    VALIDATE_ERR(
        "!obj:Train {\n  dataset: !obj:MNIST { which_sett: a },\n  model: !obj:MLPP {},\n}\n",
        "train", "t.yaml:2:12: MNIST is missing the required key 'which_set'");
    VALIDATE_ERR(
        "!obj:Train {\n  model: !obj:MLPP {},\n  dataset: !obj:SGD { learning_rate: 1 }\n}\n",
        "train", "t.yaml:2:10: unknown component 'MLPP'");
    mt_cfg_registry *r = make_registry(false);
    MT_CHECK_ERR(mt_cfg_validate(r, NULL, NULL), MT_ERR_INVALID, "NULL");
    mt_cfg_registry_free(r);
}

/* ================================================================ builder */

static mt_cfg_doc *g_doc;

static const mt_cfg_node *load_root(const char *text)
{
    g_doc = LOAD_OK(text, NULL);
    return mt_cfg_doc_root(g_doc);
}

MT_TEST(builder_memoizes_aliases_and_destroys_in_reverse)
{
    mt_cfg_registry *r = make_registry(true);
    const mt_cfg_node *root;
    root = load_root(
        "!obj:Train {\n"
        "  dataset: &train !obj:MNIST { which_set: train },\n"
        "  model: !obj:MLP { layers: [ !obj:Softmax { n_classes: 2, layer_name: y } ] },\n"
        "  algorithm: !obj:SGD { learning_rate: 1, monitoring_dataset: { train: *train, "
        "valid: !obj:MNIST { which_set: valid } } },\n"
        "}\n");
    MT_CHECK_OK(mt_cfg_validate(r, root, "train"));
    mt_cfg_builder *b = NULL;
    MT_CHECK_OK(mt_cfg_builder_new(&b, r));
    mt_cfg_builder_set_context(b, &g_ctx_seen);
    MT_CHECK(mt_cfg_builder_context(b) == &g_ctx_seen);
    g_log[0] = '\0';
    g_next_id = 0;
    g_ctx_seen = 0;
    void *obj = NULL;
    const mt_component *c = NULL;
    MT_CHECK_OK(mt_cfg_build(b, root, "train", &obj, &c));
    MT_CHECK(c == &comps[0]);
    MT_CHECK_STR_EQ(g_log, "B:MNIST#1 B:Softmax#2 B:MLP#3 B:MNIST#4 B:SGD#5 B:Train#6");
    MT_CHECK_EQ_INT(g_ctx_seen, 6);
    tobj *train = obj;
    /* the alias built once: the same object through the dataset key and the monitor map */
    void *ds = NULL, *mon = NULL;
    MT_CHECK_OK(mt_cfg_build(b, NODE(root, "dataset"), "dataset", &ds, NULL));
    MT_CHECK_OK(mt_cfg_build(b, NODE(root, "algorithm.monitoring_dataset.train"), NULL, &mon, &c));
    MT_CHECK(ds == mon);
    MT_CHECK(ds == train->child);
    MT_CHECK(c == &comps[1]);
    MT_CHECK_EQ_INT(g_next_id, 6); /* nothing new */
    MT_CHECK(mt_cfg_built_component(b, ds) == &comps[1]);
    MT_CHECK(mt_cfg_built_component(b, train) == &comps[0]);
    MT_CHECK(mt_cfg_built_component(b, &g_log) == NULL);
    /* asking for the wrong kind of a built node */
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "dataset"), "model", &obj, NULL), MT_ERR_INVALID,
                 "t.yaml:2:12: expected a model, got MNIST (a dataset)");
    /* an object owned from outside, destroyed with the rest */
    tobj *extra = calloc(1, sizeof *extra);
    extra->name = "extra";
    extra->id = 99;
    MT_CHECK_OK(mt_cfg_builder_own(b, extra, t_destroy));
    MT_CHECK_ERR(mt_cfg_builder_own(b, extra, t_destroy), MT_ERR_INVALID, "already owned");
    g_log[0] = '\0';
    mt_cfg_builder_free(b);
    MT_CHECK_STR_EQ(g_log, "D:extra#99 D:Train#6 D:SGD#5 D:MNIST#4 D:MLP#3 D:Softmax#2 D:MNIST#1");
    mt_cfg_builder_free(NULL);
    mt_cfg_doc_free(g_doc);
    mt_cfg_registry_free(r);
}

/* A checkpoint loader that, like the real one, builds the checkpoint's model text in a new
 * builder; here that text loads the same checkpoint again. */
static const mt_cfg_registry *g_loop_reg;
static int g_loop_depth, g_loop_max;

static mt_status t_build_loop(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    (void)b;
    (void)n;
    if (++g_loop_depth > g_loop_max) g_loop_max = g_loop_depth;
    static const char text[] = "!pkl: 'self.pkl'\n";
    mt_cfg_doc *doc = NULL;
    mt_cfg_builder *nb = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "<model>", NULL);
    if (st == MT_OK) st = mt_cfg_builder_new(&nb, g_loop_reg);
    if (st == MT_OK) st = mt_cfg_build(nb, mt_cfg_doc_root(doc), NULL, out, NULL);
    if (st == MT_OK) st = mt_cfg_builder_release(nb, *out);
    mt_cfg_builder_free(nb);
    mt_cfg_doc_free(doc);
    g_loop_depth--;
    return st;
}

MT_TEST(builder_bounds_checkpoints_that_load_themselves)
{
    static const mt_component loop_pkl = {
        .name = "!pkl", .kind = "pkl", .build = t_build_loop, .destroy = t_destroy};
    mt_cfg_registry *r = NULL;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    MT_CHECK_OK(mt_cfg_registry_add(r, &loop_pkl));
    g_loop_reg = r;
    const mt_cfg_node *root = load_root("m: !pkl: 'self.pkl'\n");
    mt_cfg_builder *b = NULL;
    MT_CHECK_OK(mt_cfg_builder_new(&b, r));
    for (int i = 0; i < 2; i++) { /* the count is restored after the failure */
        void *p = NULL;
        g_loop_max = 0;
        MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "m"), "model", &p, NULL), MT_ERR_RANGE,
                     "checkpoints load checkpoints more than 8 deep");
        MT_CHECK(p == NULL);
        MT_CHECK_EQ_INT(g_loop_max, 8);
        MT_CHECK_EQ_INT(g_loop_depth, 0);
    }
    mt_cfg_builder_free(b);
    mt_cfg_doc_free(g_doc);
    mt_cfg_registry_free(r);
}

MT_TEST(builder_release_pkl_and_errors)
{
    mt_cfg_registry *r = make_registry(true);
    const mt_cfg_node *root = load_root(
        "a: !obj:MNIST { which_set: a }\n"
        "b: !pkl: 'model.pkl'\n"
        "c: !obj:MLP { layers: [ !obj:Softmax { n_classes: 2, layer_name: y, fail: 1 } ] }\n"
        "d: !obj:Selfish {}\n"
        "e: !obj:Unbuildable {}\n"
        "f: !obj:Nope {}\n"
        "g: 5\n"
        "h: !obj:MNIST { which_set: a, start: x }\n");
    mt_cfg_builder *b = NULL;
    MT_CHECK_OK(mt_cfg_builder_new(&b, r));
    g_log[0] = '\0';
    g_next_id = 0;
    void *a = NULL, *a2 = NULL, *p = NULL;
    const mt_component *c = NULL;
    MT_CHECK_OK(mt_cfg_build(b, NODE(root, "a"), "dataset", &a, NULL));
    /* released: not destroyed by the builder; building the node again makes a new object */
    MT_CHECK_OK(mt_cfg_builder_release(b, a));
    MT_CHECK_ERR(mt_cfg_builder_release(b, a), MT_ERR_NOT_FOUND, "not built by this builder");
    MT_CHECK(mt_cfg_built_component(b, a) == NULL);
    MT_CHECK_OK(mt_cfg_build(b, NODE(root, "a"), "dataset", &a2, NULL));
    MT_CHECK(a2 != a);
    /* checkpoints are built by "!pkl", whatever kind the caller wants */
    MT_CHECK_OK(mt_cfg_build(b, NODE(root, "b"), "model", &p, &c));
    MT_CHECK(c == &pkl_comp);
    MT_CHECK_STR_EQ(((tobj *)p)->name, "!pkl");
    /* errors: positioned once, at the innermost component */
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "c"), "model", &p, NULL), MT_ERR_INVALID,
                 "t.yaml:3:25: Softmax: asked to fail");
    MT_CHECK(strstr(mt_last_error(), "MLP") == NULL);
    MT_CHECK(p == NULL);
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "h"), NULL, &p, NULL), MT_ERR_INVALID,
                 "t.yaml:8:38: 'start' must be an integer, got string 'x'");
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "d"), NULL, &p, NULL), MT_ERR_INTERNAL,
                 "t.yaml:4:4: Selfish needs itself to be built");
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "e"), NULL, &p, NULL), MT_ERR_UNSUPPORTED,
                 "component 'Unbuildable' cannot be built");
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "f"), NULL, &p, NULL), MT_ERR_NOT_FOUND,
                 "t.yaml:6:4: unknown component 'Nope'");
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "g"), NULL, &p, NULL), MT_ERR_INVALID,
                 "t.yaml:7:4: expected a component (!obj:NAME {...}), got int '5'");
    MT_CHECK_ERR(mt_cfg_build(b, NODE(root, "a"), "layer", &p, NULL), MT_ERR_INVALID,
                 "expected a layer, got MNIST (a dataset)");
    MT_CHECK_ERR(mt_cfg_build(b, NULL, NULL, &p, NULL), MT_ERR_INVALID, "NULL");
    g_log[0] = '\0';
    mt_cfg_builder_free(b);
    /* nothing of the failed MLP exists; the released MNIST#1 is not destroyed */
    MT_CHECK_STR_EQ(g_log, "D:!pkl#3 D:MNIST#2");
    t_destroy(a); /* the released one is ours */
    /* without a "!pkl" component */
    mt_cfg_registry *r2 = make_registry(false);
    MT_CHECK_OK(mt_cfg_builder_new(&b, r2));
    MT_CHECK_ERR(
        mt_cfg_build(b, NODE(root, "b"), "model", &p, NULL), MT_ERR_NOT_FOUND,
        "t.yaml:2:4: cannot load checkpoint 'model.pkl': no checkpoint loader is registered");
    mt_cfg_builder_free(b);
    MT_CHECK_ERR(mt_cfg_builder_new(&b, NULL), MT_ERR_INVALID, "NULL registry");
    mt_cfg_registry_free(r2);
    mt_cfg_registry_free(r);
    mt_cfg_doc_free(g_doc);
}
