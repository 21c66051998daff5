/* Every Pylearn2 experiment file of the conformance set (MT_PYLEARN2_DIR) loads unchanged,
 * with the tutorials' templates filled as their tests fill them (sr_train.yaml from its
 * sr_dataset/sr_model/sr_algorithm siblings through @file parameters), and the trees have the
 * expected kinds, tags, values, shared aliases and positions. Robustness: a few hundred
 * mutated and truncated versions of conformance files, and every allocation failing in turn,
 * must give an error or a document, never a crash or a leak (run under ASan). */
#include <dirent.h>

#include "config_test_util.h"

#ifndef MT_PYLEARN2_DIR
#error "MT_PYLEARN2_DIR must be defined (tests/config/CMakeLists.txt)"
#endif

static const char *conf_path(const char *name)
{
    static char buf[4][1024];
    static int slot;
    char *b = buf[slot++ & 3];
    snprintf(b, 1024, "%s/%s", MT_PYLEARN2_DIR, name);
    return b;
}

static void need_conformance(void)
{
    DIR *d = opendir(MT_PYLEARN2_DIR);
    if (!d) MT_SKIP("conformance files not found (set MT_PYLEARN2_CONFORMANCE_DIR)");
    closedir(d);
}

/* Parameters of the tutorials' tests plus the sr_* parts as @files; vars for job files. */
typedef struct conf_opts {
    mt_cfg_options o;
    mt_cfg_var params[20];
    char at[3][1100];
    mt_cfg_var vars[16];
    char *store;
} conf_opts;

static void conf_opts_init(conf_opts *c, const char *file)
{
    static const mt_cfg_var base[] = {
        {"train_stop", "50000"},      {"valid_stop", "60000"},  {"dim_h0", "500"},
        {"dim_h1", "1000"},           {"sparse_init_h1", "15"}, {"max_epochs", "10"},
        {"save_path", "."},           {"batch_size", "100"},    {"output_channels_h2", "64"},
        {"output_channels_h3", "64"}, {"test_stop", "10000"},   {"nhid", "500"},
        {"monitoring_batches", "5"},  {"nvis", "784"}};
    opts_clean(&c->o);
    int n = (int)(sizeof base / sizeof base[0]);
    memcpy(c->params, base, sizeof base);
    const char *parts[3][2] = {{"dataset", "tutorials__softmax_regression__sr_dataset.yaml"},
                               {"model", "tutorials__softmax_regression__sr_model.yaml"},
                               {"algorithm", "tutorials__softmax_regression__sr_algorithm.yaml"}};
    for (int i = 0; i < 3; i++) {
        snprintf(c->at[i], sizeof c->at[i], "@%s", conf_path(parts[i][1]));
        c->params[n++] = (mt_cfg_var){parts[i][0], c->at[i]};
    }
    c->o.params = c->params;
    c->o.n_params = n;
    c->o.n_vars = mt_cfg_job_vars(c->vars, 16, file, 0, &c->store);
    c->o.vars = c->vars;
}

static mt_cfg_doc *load_conf(const char *name, conf_opts *c)
{
    const char *path = conf_path(name);
    conf_opts_init(c, path);
    mt_cfg_doc *doc = NULL;
    mt_status st = mt_cfg_load_file(&doc, path, &c->o);
    if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "%s: %s", name, mt_last_error());
    return doc;
}

static void conf_done(mt_cfg_doc *doc, conf_opts *c)
{
    mt_cfg_doc_free(doc);
    mt_cfg_vars_free(c->store);
}

/* Counts nodes of a kind, through aliases once. */
static int count_kind(const mt_cfg_node *n, mt_cfg_kind k, int depth)
{
    if (!n || depth > 64) return 0;
    int c = n->kind == k;
    if (n->kind == MT_CFG_LIST || n->kind == MT_CFG_MAP || n->kind == MT_CFG_OBJ ||
        n->kind == MT_CFG_TAGGED)
        for (int32_t i = 0; i < n->n; i++)
            c += count_kind(n->items[i], k, depth + 1);
    return c;
}

/* Every node and key has a position in a named file. */
static void check_positions(const mt_cfg_node *n, int depth)
{
    MT_CHECK(n->loc.file && n->loc.line > 0 && n->loc.col > 0);
    if (depth > 64) return;
    for (int32_t i = 0; i < n->n; i++) {
        if (n->key_locs) MT_CHECK(n->key_locs[i].line > 0 && n->key_locs[i].col > 0);
        check_positions(n->items[i], depth + 1);
    }
}

MT_TEST(conformance_every_file_loads)
{
    need_conformance();
    DIR *d = opendir(MT_PYLEARN2_DIR);
    struct dirent *e;
    int n_files = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        conf_opts c;
        if (strstr(e->d_name, "sr_algorithm")) {
            /* a fragment: its *train names the &train of sr_train.yaml, which includes it
             * (conformance_softmax_regression_parts); alone it cannot resolve */
            mt_cfg_doc *doc = NULL;
            conf_opts_init(&c, conf_path(e->d_name));
            MT_CHECK_ERR(mt_cfg_load_file(&doc, conf_path(e->d_name), &c.o), MT_ERR_FORMAT,
                         "sr_algorithm.yaml:7:27: unknown anchor '*train'");
            mt_cfg_vars_free(c.store);
            n_files++;
            continue;
        }
        mt_cfg_doc *doc = load_conf(e->d_name, &c);
        const mt_cfg_node *r = mt_cfg_doc_root(doc);
        MT_CHECK_EQ_INT(r->kind, MT_CFG_OBJ);
        check_positions(r, 0);
        bool part = strstr(e->d_name, "__sr_") && !strstr(e->d_name, "sr_train");
        if (!part) {
            MT_CHECK_STR_EQ(r->tag, "pylearn2.train.Train");
            MT_CHECK(mt_cfg_get(r, "dataset") && mt_cfg_get(r, "model"));
            MT_CHECK(count_kind(r, MT_CFG_OBJ, 0) >= 4);
        }
        MT_CHECK_EQ_INT(count_kind(r, MT_CFG_TAGGED, 0), 0);
        conf_done(doc, &c);
        n_files++;
    }
    closedir(d);
    MT_CHECK(n_files >= 14);
}

MT_TEST(conformance_dropout_mnist)
{
    need_conformance();
    conf_opts c;
    mt_cfg_doc *doc = load_conf("papers__dropout__mnist.yaml", &c);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    CHECK_LOC(r->loc, "papers__dropout__mnist.yaml", 6, 1);
    const mt_cfg_node *ds = NODE(r, "dataset");
    MT_CHECK_STR_EQ(ds->tag, "pylearn2.datasets.mnist.MNIST");
    MT_CHECK(ds->anchor >= 0);
    CHECK_LOC(ds->loc, "papers__dropout__mnist.yaml", 7, 14);
    MT_CHECK_EQ_INT(NODE(ds, "shuffle")->kind, MT_CFG_INT);
    MT_CHECK_STR_EQ(NODE(ds, "which_set")->str, "train");
    MT_CHECK_EQ_INT(NODE(r, "model.batch_size")->i, 100);
    CHECK_LOC(mt_cfg_key_loc(NODE(r, "model"), "batch_size"), "papers__dropout__mnist.yaml", 12, 9);
    const mt_cfg_node *h0 = NODE(r, "model.layers.0");
    MT_CHECK_STR_EQ(h0->tag, "pylearn2.models.mlp.RectifiedLinear");
    MT_CHECK_CLOSE(NODE(h0, "irange")->f, 0.00891030471479, 0, 0);
    MT_CHECK_EQ_INT(NODE(h0, "init_bias")->kind, MT_CFG_FLOAT);
    MT_CHECK_EQ_INT(NODE(r, "model.layers")->n, 3);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.2.n_classes")->i, 10);
    MT_CHECK_CLOSE(NODE(r, "algorithm.learning_rate")->f, 0.097259, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.monitoring_dataset")->kind, MT_CFG_MAP);
    MT_CHECK_STR_EQ(NODE(r, "algorithm.monitoring_dataset.test.which_set")->str, "test");
    const mt_cfg_node *cost = NODE(r, "algorithm.cost");
    MT_CHECK_STR_EQ(cost->tag, "pylearn2.costs.mlp.dropout.Dropout");
    MT_CHECK_CLOSE(NODE(cost, "input_include_probs.h0")->f, 0.8, 0, 0);
    MT_CHECK_CLOSE(NODE(cost, "input_scales.h0")->f, 1.25, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.termination_criterion.max_epochs")->i, 440);
    MT_CHECK_STR_EQ(NODE(r, "extensions.1")->tag,
                    "pylearn2.training_algorithms.sgd.LinearDecayOverEpoch");
    /* ${PYLEARN2_TRAIN_FILE_FULL_STEM} from the job variables */
    char want[1100];
    snprintf(want, sizeof want, "%s.pkl", conf_path("papers__dropout__mnist"));
    MT_CHECK_STR_EQ(NODE(r, "save_path")->str, want);
    MT_CHECK_EQ_INT(NODE(r, "save_freq")->i, 1);
    conf_done(doc, &c);
}

MT_TEST(conformance_maxout_aliases_and_pkl)
{
    need_conformance();
    conf_opts c;
    mt_cfg_doc *doc = load_conf("papers__maxout__mnist_pi.yaml", &c);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK(NODE(r, "algorithm.monitoring_dataset.train") == NODE(r, "dataset"));
    MT_CHECK_EQ_INT(NODE(r, "algorithm.monitoring_dataset.valid.start")->i, 50000);
    MT_CHECK_STR_EQ(NODE(r, "model.layers.0")->tag, "pylearn2.models.maxout.Maxout");
    MT_CHECK_CLOSE(NODE(r, "model.layers.0.irange")->f, 0.005, 0, 0);
    MT_CHECK_CLOSE(NODE(r, "algorithm.cost.input_scales.h0")->f, 1.0, 0, 0);
    MT_CHECK_CLOSE(NODE(r, "algorithm.termination_criterion.prop_decrease")->f, 0.0, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.termination_criterion.N")->i, 100);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.update_callbacks")->kind, MT_CFG_OBJ);
    MT_CHECK_CLOSE(NODE(r, "algorithm.update_callbacks.min_lr")->f, 1e-6, 0, 0);
    CHECK_LOC(mt_cfg_key_loc(NODE(r, "algorithm.monitoring_dataset"), "valid"),
              "papers__maxout__mnist_pi.yaml", 41, 17);
    conf_done(doc, &c);

    doc = load_conf("papers__maxout__mnist_pi_continued.yaml", &c);
    r = mt_cfg_doc_root(doc);
    const mt_cfg_node *m = NODE(r, "model");
    MT_CHECK_STR_EQ(m->tag, "pylearn2.monitor.push_monitor");
    MT_CHECK_EQ_INT(NODE(m, "model")->kind, MT_CFG_PKL);
    MT_CHECK_STR_EQ(NODE(m, "model")->str, "mnist_pi_best.pkl");
    CHECK_LOC(NODE(m, "model")->loc, "papers__maxout__mnist_pi_continued.yaml", 6, 16);
    MT_CHECK_STR_EQ(NODE(r, "algorithm.termination_criterion.prev_monitor_name")->str,
                    "monitor_stage_0");
    conf_done(doc, &c);
}

MT_TEST(conformance_tutorials_templates)
{
    need_conformance();
    conf_opts c;
    mt_cfg_doc *doc = load_conf("tutorials__convolutional_network__conv.yaml", &c);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "dataset.stop")->i, 50000);
    CHECK_LOC(NODE(r, "dataset.stop")->loc, "tutorials__convolutional_network__conv.yaml", 5, 15);
    MT_CHECK_EQ_INT(NODE(r, "model.batch_size")->i, 100);
    MT_CHECK_EQ_INT(NODE(r, "model.input_space.shape.1")->i, 28);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.0.output_channels")->i, 64);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.monitoring_dataset.test.stop")->i, 10000);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.cost.costs")->n, 2);
    MT_CHECK_STR_EQ(NODE(r, "algorithm.cost.costs.0.method")->str, "cost_from_X");
    MT_CHECK_CLOSE(NODE(r, "algorithm.cost.costs.1.coeffs.2")->f, 5e-5, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.termination_criterion.criteria.1.max_epochs")->i, 10);
    MT_CHECK_STR_EQ(NODE(r, "extensions.0.save_path")->str, "./convolutional_network_best.pkl");
    MT_CHECK_EQ_INT(mt_cfg_doc_n_template_names(doc), 8);
    MT_CHECK_STR_EQ(mt_cfg_doc_template_name(doc, 0), "train_stop");
    conf_done(doc, &c);

    doc = load_conf("tutorials__multilayer_perceptron__mlp_tutorial_part_2.yaml", &c);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(NODE(r, "algorithm")->tag, "pylearn2.training_algorithms.bgd.BGD");
    MT_CHECK_EQ_INT(NODE(r, "algorithm.conjugate")->kind, MT_CFG_INT);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.0.dim")->i, 500);
    MT_CHECK_CLOSE(NODE(r, "model.layers.1.irange")->f, 0.0, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.1.irange")->kind, MT_CFG_FLOAT);
    MT_CHECK(NODE(r, "algorithm.monitoring_dataset.train") == NODE(r, "dataset"));
    MT_CHECK_STR_EQ(NODE(r, "extensions.0.save_path")->str, "./mlp_best.pkl");
    conf_done(doc, &c);

    doc = load_conf("tutorials__multilayer_perceptron__mlp_tutorial_part_4.yaml", &c);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.1.dim")->i, 1000);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.1.sparse_init")->i, 15);
    MT_CHECK_EQ_INT(NODE(r, "algorithm.cost.costs.0")->n, 0);
    MT_CHECK_STR_EQ(NODE(r, "algorithm.cost.costs.0")->tag, "pylearn2.costs.mlp.Default");
    conf_done(doc, &c);

    doc = load_conf("tutorials__stacked_autoencoders__dae_l1.yaml", &c);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "model.act_dec")->kind, MT_CFG_NULL);
    MT_CHECK_STR_EQ(NODE(r, "model.act_enc")->str, "tanh");
    MT_CHECK_EQ_INT(NODE(r, "algorithm.learning_rate")->kind, MT_CFG_FLOAT); /* 1e-3 */
    MT_CHECK_CLOSE(NODE(r, "algorithm.learning_rate")->f, 1e-3, 0, 0);
    MT_CHECK(NODE(r, "algorithm.monitoring_dataset") == NODE(r, "dataset"));
    MT_CHECK_EQ_INT(NODE(r, "algorithm.cost")->n, 0);
    conf_done(doc, &c);

    doc = load_conf("tutorials__stacked_autoencoders__dae_l2.yaml", &c);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(NODE(r, "dataset")->tag,
                    "pylearn2.datasets.transformer_dataset.TransformerDataset");
    MT_CHECK_EQ_INT(NODE(r, "dataset.transformer")->kind, MT_CFG_PKL);
    MT_CHECK_STR_EQ(NODE(r, "dataset.transformer")->str, "./dae_l1.pkl");
    MT_CHECK_EQ_INT(NODE(r, "model.nvis")->i, 784);
    conf_done(doc, &c);

    doc = load_conf("tutorials__stacked_autoencoders__dae_mlp.yaml", &c);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(NODE(r, "model.layers.1.layer_content")->str, "./dae_l2.pkl");
    MT_CHECK_EQ_INT(NODE(r, "model.layers.1.layer_content")->kind, MT_CFG_PKL);
    conf_done(doc, &c);
}

MT_TEST(conformance_softmax_regression_parts)
{
    need_conformance();
    conf_opts c;
    mt_cfg_doc *doc = load_conf("tutorials__softmax_regression__sr_train.yaml", &c);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    const mt_cfg_node *ds = NODE(r, "dataset");
    MT_CHECK_STR_EQ(ds->tag, "pylearn2.datasets.mnist.MNIST");
    MT_CHECK_EQ_INT(NODE(ds, "stop")->i, 50000);
    /* the parts keep their own file names and positions */
    CHECK_LOC(ds->loc, "tutorials__softmax_regression__sr_train.yaml", 2, 14);
    CHECK_LOC(mt_cfg_key_loc(ds, "which_set"), "tutorials__softmax_regression__sr_dataset.yaml", 2,
              9);
    CHECK_LOC(NODE(ds, "stop")->loc, "tutorials__softmax_regression__sr_dataset.yaml", 4, 15);
    const mt_cfg_node *m = NODE(r, "model");
    MT_CHECK_STR_EQ(m->tag, "pylearn2.models.softmax_regression.SoftmaxRegression");
    CHECK_LOC(mt_cfg_key_loc(m, "nvis"), "tutorials__softmax_regression__sr_model.yaml", 4, 5);
    const mt_cfg_node *alg = NODE(r, "algorithm");
    MT_CHECK_STR_EQ(alg->tag, "pylearn2.training_algorithms.bgd.BGD");
    MT_CHECK_EQ_INT(NODE(alg, "batch_size")->i, 100);
    /* *train in sr_algorithm.yaml is the &train of sr_train.yaml */
    MT_CHECK(NODE(alg, "monitoring_dataset.train") == ds);
    CHECK_LOC(mt_cfg_key_loc(NODE(alg, "monitoring_dataset"), "valid"),
              "tutorials__softmax_regression__sr_algorithm.yaml", 8, 17);
    CHECK_LOC(mt_cfg_key_loc(r, "extensions"), "tutorials__softmax_regression__sr_train.yaml", 5,
              5);
    MT_CHECK_STR_EQ(NODE(r, "save_path")->str, "./softmax_regression.pkl");
    conf_done(doc, &c);
    /* without the parts: the error names what is missing and what was given */
    const char *path = conf_path("tutorials__softmax_regression__sr_train.yaml");
    mt_cfg_options o;
    opts_clean(&o);
    mt_cfg_var p[] = {{"save_path", "."}};
    o.params = p;
    o.n_params = 1;
    MT_CHECK_ERR(mt_cfg_load_file(&doc, path, &o), MT_ERR_FORMAT,
                 "sr_train.yaml:2:21: template parameter 'dataset' has no value (missing: "
                 "'dataset', 'model', 'algorithm'; given: save_path)");
}

/* ================================================================ robustness */

static uint64_t g_rng = 0x243F6A8885A308D3ULL;
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* "FILE:LINE:COL: " at the start of a message. */
static bool has_pos(const char *msg)
{
    const char *p = strstr(msg, ": ");
    if (!p) return false;
    const char *q = p;
    int colons = 0;
    while (q > msg && colons < 2) {
        q--;
        if (*q == ':')
            colons++;
        else if (*q < '0' || *q > '9')
            return false;
    }
    return colons == 2 && q > msg;
}

static char *read_conf(const char *name, size_t *len)
{
    char *text = NULL;
    MT_CHECK_OK(mt_file_read_all(conf_path(name), &text, len, 0));
    return text;
}

/* One random edit of buf (length *len, capacity cap). */
static void mutate(char *buf, size_t *len, size_t cap)
{
    static const char special[] = "{}[]:,&*!'\"%()$#-?|>@`\n\t \\~.0123456789e";
    size_t n = *len;
    if (n == 0) return;
    size_t at = (size_t)(rnd() % n);
    switch (rnd() % 7) {
    case 0:
        buf[at] = special[rnd() % (sizeof special - 1)];
        break;
    case 1:
        buf[at] = (char)(rnd() & 0xff);
        break;
    case 2:
        memmove(buf + at, buf + at + 1, n - at - 1);
        *len = n - 1;
        break;
    case 3:
        *len = at;
        break; /* truncate */
    case 4:    /* insert a special */
        if (n + 1 < cap) {
            memmove(buf + at + 1, buf + at, n - at);
            buf[at] = special[rnd() % (sizeof special - 1)];
            *len = n + 1;
        }
        break;
    case 5: { /* duplicate a stretch */
        size_t k = (size_t)(rnd() % 40);
        if (at + k > n) k = n - at;
        if (n + k < cap) {
            memmove(buf + at + k, buf + at, n - at);
            *len = n + k;
        }
        break;
    }
    default: { /* insert a tricky token */
        static const char *const toks[] = {
            "*train",          "&x ",  "!obj:", "!pkl: ", "%(x)s",    "${", "${HOME}",
            "!include x.yaml", "<<: ", "? ",    "- ",     "!!binary "};
        const char *t = toks[rnd() % (sizeof toks / sizeof toks[0])];
        size_t k = strlen(t);
        if (n + k < cap) {
            memmove(buf + at + k, buf + at, n - at);
            memcpy(buf + at, t, k);
            *len = n + k;
        }
        break;
    }
    }
}

/* An open registry of the conformance files' components: each builds its component values
 * (in lists and maps too) and is freed by the builder. */
static int g_live;

static void fz_destroy(void *p)
{
    g_live--;
    free(p);
}

static mt_status fz_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    for (int32_t i = 0; i < n->n; i++) {
        const mt_cfg_node *v = n->items[i];
        int32_t count = v->kind == MT_CFG_LIST || v->kind == MT_CFG_MAP ? v->n : 1;
        for (int32_t j = 0; j < count; j++) {
            const mt_cfg_node *it =
                count == 1 && v->kind != MT_CFG_LIST && v->kind != MT_CFG_MAP ? v : v->items[j];
            if (it->kind != MT_CFG_OBJ) continue;
            void *child;
            mt_status st = mt_cfg_build(b, it, NULL, &child, NULL);
            if (st != MT_OK) return st;
        }
    }
    *out = malloc(16);
    g_live++;
    return MT_OK;
}

static mt_status fz_build_pkl(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return mt_err_set(MT_ERR_IO, "no checkpoint '%s' in this test", n->str);
}

#define FZ(name_)                                                                                  \
    {                                                                                              \
        .name = name_, .kind = "component", .open_keys = true, .build = fz_build,                  \
        .destroy = fz_destroy                                                                      \
    }
static const mt_component fz_comps[] = {FZ("Train"),
                                        FZ("MNIST"),
                                        FZ("MLP"),
                                        FZ("Maxout"),
                                        FZ("Softmax"),
                                        FZ("SGD"),
                                        FZ("BGD"),
                                        FZ("Momentum"),
                                        FZ("Dropout"),
                                        FZ("MonitorBased"),
                                        FZ("ExponentialDecay"),
                                        FZ("MonitorBasedSaveBest"),
                                        FZ("MomentumAdjustor"),
                                        FZ("ConvRectifiedLinear"),
                                        FZ("Conv2DSpace"),
                                        FZ("SumOfCosts"),
                                        FZ("MethodCost"),
                                        FZ("WeightDecay"),
                                        FZ("And"),
                                        FZ("EpochCounter"),
                                        FZ("TransformerDataset"),
                                        FZ("DenoisingAutoencoder"),
                                        FZ("BinomialCorruptor"),
                                        FZ("MeanSquaredReconstructionError"),
                                        FZ("Default"),
                                        {.name = "!pkl", .kind = "pkl", .build = fz_build_pkl}};

/* Validates and builds a loaded tree; either may fail, nothing may crash or leak. */
static int validate_and_build(const mt_cfg_registry *r, const mt_cfg_node *root)
{
    if (mt_cfg_validate(r, root, NULL) != MT_OK) {
        MT_CHECK(has_pos(mt_last_error()));
        return 0;
    }
    if (root->kind != MT_CFG_OBJ) return 0;
    mt_cfg_builder *b = NULL;
    MT_CHECK_OK(mt_cfg_builder_new(&b, r));
    void *obj;
    mt_status st = mt_cfg_build(b, root, NULL, &obj, NULL);
    if (st != MT_OK) MT_CHECK(has_pos(mt_last_error()));
    mt_cfg_builder_free(b);
    MT_CHECK_EQ_INT(g_live, 0);
    return st == MT_OK;
}

MT_TEST(fuzz_mutated_conformance_files_do_not_crash)
{
    need_conformance();
    static const char *const files[] = {"papers__maxout__mnist_pi.yaml",
                                        "tutorials__convolutional_network__conv.yaml",
                                        "tutorials__stacked_autoencoders__dae_l2.yaml"};
    mt_cfg_var params[] = {{"train_stop", "5"},
                           {"valid_stop", "6"},
                           {"batch_size", "1"},
                           {"output_channels_h2", "2"},
                           {"output_channels_h3", "2"},
                           {"max_epochs", "1"},
                           {"test_stop", "1"},
                           {"save_path", "."},
                           {"nvis", "3"},
                           {"nhid", "2"},
                           {"monitoring_batches", "1"},
                           {"x", "7"}};
    mt_cfg_var vars[] = {{"PYLEARN2_TRAIN_FILE_FULL_STEM", "stem"}};
    mt_cfg_options o;
    opts_clean(&o);
    o.params = params;
    o.n_params = (int32_t)(sizeof params / sizeof params[0]);
    o.vars = vars;
    o.n_vars = 1;
    mt_cfg_registry *reg = NULL;
    MT_CHECK_OK(mt_cfg_registry_new(&reg));
    for (size_t i = 0; i < sizeof fz_comps / sizeof fz_comps[0]; i++)
        MT_CHECK_OK(mt_cfg_registry_add(reg, &fz_comps[i]));
    int n_ok = 0, n_err = 0, n_built = 0;
    for (int f = 0; f < 3; f++) {
        /* the unmutated file validates and builds */
        size_t len0;
        char *orig = read_conf(files[f], &len0);
        mt_cfg_doc *doc0 = NULL;
        MT_CHECK_OK(mt_cfg_load_string(&doc0, orig, len0, files[f], &o));
        if (!strstr(files[f], "dae_l2")) MT_CHECK(validate_and_build(reg, mt_cfg_doc_root(doc0)));
        mt_cfg_doc_free(doc0);
        size_t cap = len0 + 4096;
        char *buf = malloc(cap);
        for (int iter = 0; iter < 150; iter++) {
            memcpy(buf, orig, len0);
            size_t len = len0;
            int edits = 1 + (int)(rnd() % 6);
            for (int k = 0; k < edits; k++)
                mutate(buf, &len, cap);
            mt_cfg_doc *doc = NULL;
            mt_err_clear();
            mt_status st = mt_cfg_load_string(&doc, buf, len, "fuzz.yaml", &o);
            if (st == MT_OK) {
                MT_CHECK(doc != NULL && mt_cfg_doc_root(doc) != NULL);
                check_positions(mt_cfg_doc_root(doc), 0);
                n_built += validate_and_build(reg, mt_cfg_doc_root(doc));
                n_ok++;
                mt_cfg_doc_free(doc);
            } else {
                MT_CHECK(doc == NULL);
                MT_CHECK(st == MT_ERR_FORMAT || st == MT_ERR_IO);
                MT_CHECK(strlen(mt_last_error()) > 0);
                n_err++;
            }
        }
        /* every truncation point of the first 400 bytes */
        for (size_t cut = 0; cut < 400 && cut < len0; cut += 3) {
            mt_cfg_doc *doc = NULL;
            if (mt_cfg_load_string(&doc, orig, cut, "cut.yaml", &o) == MT_OK) mt_cfg_doc_free(doc);
        }
        free(buf);
        mt_free(orig);
    }
    printf("fuzz: %d mutated files loaded (%d of them validated and built), %d rejected with an "
           "error\n",
           n_ok, n_built, n_err);
    mt_cfg_registry_free(reg);
    MT_CHECK(n_ok > 10 && n_err > 10); /* the mutations exercise both paths */
}

MT_TEST(allocation_failures_are_clean)
{
    need_conformance();
    conf_opts c;
    const char *path = conf_path("tutorials__softmax_regression__sr_train.yaml");
    conf_opts_init(&c, path);
    int failures = 0;
    for (int64_t k = 1; k < 5000; k++) {
        mt_cfg_doc *doc = NULL;
        mt_alloc_fail_after(k);
        mt_status st = mt_cfg_load_file(&doc, path, &c.o);
        mt_alloc_fail_after(0);
        if (st == MT_OK) {
            MT_CHECK(doc != NULL);
            mt_cfg_doc_free(doc);
            break; /* k is past the last allocation */
        }
        MT_CHECK(doc == NULL);
        failures++;
    }
    printf("allocation failures: %d injected, each cleanly reported\n", failures);
    MT_CHECK(failures > 20);
    mt_cfg_vars_free(c.store);
}

/* ================================================================ writing YAML back */

/* Structural equality, with sharing: a node of a reached twice maps to one node of b. */
static const mt_cfg_node *g_pairs[4096][2];
static int g_npairs;

static void check_same_tree(const mt_cfg_node *a, const mt_cfg_node *b, mt_strbuf *path, int depth)
{
    if (depth > 80) return;
    for (int i = 0; i < g_npairs; i++) {
        if (g_pairs[i][0] == a && g_pairs[i][1] != b)
            mt_test_fail(__FILE__, __LINE__, "%s: a shared node was written twice", path->data);
        if (g_pairs[i][1] == b && g_pairs[i][0] != a)
            mt_test_fail(__FILE__, __LINE__, "%s: two nodes became one", path->data);
    }
    if (g_npairs < 4096) {
        g_pairs[g_npairs][0] = a;
        g_pairs[g_npairs++][1] = b;
    }
    const char *where = path->data ? path->data : "root";
    if (!a || !b) {
        if (a != b) mt_test_fail(__FILE__, __LINE__, "%s: one side is NULL", where);
        return;
    }
    if (a->kind != b->kind)
        mt_test_fail(__FILE__, __LINE__, "%s: kind %s vs %s", where, mt_cfg_kind_name(a->kind),
                     mt_cfg_kind_name(b->kind));
    if ((a->tag || b->tag) && (!a->tag || !b->tag || strcmp(a->tag, b->tag) != 0))
        mt_test_fail(__FILE__, __LINE__, "%s: tag %s vs %s", where, a->tag, b->tag);
    switch (a->kind) {
    case MT_CFG_BOOL:
        MT_CHECK_EQ_INT(a->b, b->b);
        break;
    case MT_CFG_INT:
        MT_CHECK_EQ_INT(a->i, b->i);
        break;
    case MT_CFG_FLOAT:
        if (!(a->f == b->f || (isnan(a->f) && isnan(b->f))))
            mt_test_fail(__FILE__, __LINE__, "%s: %.17g vs %.17g", where, a->f, b->f);
        break;
    case MT_CFG_STRING:
    case MT_CFG_PKL:
        MT_CHECK_STR_EQ(a->str, b->str);
        break;
    default:
        break;
    }
    MT_CHECK_EQ_INT(a->n, b->n);
    for (int32_t i = 0; i < a->n; i++) {
        size_t len = path->len;
        if (a->keys) {
            MT_CHECK_STR_EQ(a->keys[i], b->keys[i]);
            mt_strbuf_appendf(path, ".%s", a->keys[i]);
        } else {
            mt_strbuf_appendf(path, ".%d", (int)i);
        }
        check_same_tree(a->items[i], b->items[i], path, depth + 1);
        path->len = len;
        path->data[len] = '\0';
    }
}

static void round_trip(const mt_cfg_node *root, const mt_cfg_options *o)
{
    mt_strbuf sb, path;
    mt_strbuf_init(&sb);
    mt_strbuf_init(&path);
    MT_CHECK_OK(mt_cfg_dump(&sb, root));
    mt_cfg_doc *again = NULL;
    mt_status st = mt_cfg_load_string(&again, sb.data, sb.len, "dumped.yaml", o);
    if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "reload: %s\n%s", mt_last_error(), sb.data);
    g_npairs = 0;
    check_same_tree(root, mt_cfg_doc_root(again), &path, 0);
    mt_cfg_doc_free(again);
    mt_strbuf_deinit(&sb);
    mt_strbuf_deinit(&path);
}

MT_TEST(dump_round_trips)
{
    need_conformance();
    mt_cfg_options plain;
    opts_clean(&plain);
    DIR *d = opendir(MT_PYLEARN2_DIR);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0 ||
            strstr(e->d_name, "sr_algorithm"))
            continue;
        conf_opts c;
        mt_cfg_doc *doc = load_conf(e->d_name, &c);
        round_trip(mt_cfg_doc_root(doc), &plain);
        conf_done(doc, &c);
        n++;
    }
    closedir(d);
    MT_CHECK(n >= 13);
    /* awkward values */
    mt_cfg_options keep;
    opts_clean(&keep);
    keep.keep_unknown_vars = true;
    mt_cfg_doc *doc =
        LOAD_OK("s: [\"a \\\"q\\\" \\\\ b\", \"50\\x25(x)s \\x25\\x25\", \"line\\nbreak\\ttab\", "
                "\"${notavar}\", '', \"yes\", \"1e3\", \"~\"]\n"
                "f: [0.1, 1e-300, -2.5e+300, .inf, -.inf, .nan, 3.0, 0.0, -0.0, 1e22]\n"
                "i: [0, -9223372036854775808, 9223372036854775807]\n"
                "b: [true, false, null]\n"
                "\"odd key: x\": 1\n"
                "'true': 2\n"
                "shared: &x {deep: &y [1, 2]}\n"
                "use: [*x, *y, *x]\n"
                "t: !choice [!obj:A {}, !obj:B {k: !uniform [0, 1]}]\n"
                "p: !pkl: \"a b.pkl\"\n"
                "empty: {m: {}, l: [], o: !obj:Empty {}}\n",
                &keep);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "s.1")->str, "50%(x)s %%");
    round_trip(mt_cfg_doc_root(doc), &keep);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_cfg_dump(&sb, NODE(mt_cfg_doc_root(doc), "f")));
    MT_CHECK_STR_EQ(sb.data,
                    "[0.1, 1e-300, -2.5e+300, .inf, -.inf, .nan, 3.0, 0.0, -0.0, 1e+22]\n");
    mt_strbuf_clear(&sb);
    MT_CHECK_OK(mt_cfg_dump(&sb, NODE(mt_cfg_doc_root(doc), "use")));
    MT_CHECK_STR_EQ(sb.data, "[\n  &a1 {\n    deep: &a2 [1, 2]\n  },\n  *a2,\n  *a1\n]\n");
    mt_strbuf_deinit(&sb);
    mt_cfg_doc_free(doc);
    /* a key longer than YAML's 1024-character limit for implicit keys (found by fuzzing):
     * written as an explicit "? KEY" */
    mt_strbuf big;
    mt_strbuf_init(&big);
    mt_strbuf_append(&big, "{? \"");
    for (int k = 0; k < 1500; k++) mt_strbuf_append(&big, k % 7 ? "x" : " ");
    mt_strbuf_append(&big, "\": 1, short: 2}\n");
    MT_CHECK_OK(mt_cfg_load_string(&doc, big.data, big.len, "long.yaml", &keep));
    round_trip(mt_cfg_doc_root(doc), &keep);
    mt_cfg_doc_free(doc);
    mt_strbuf_deinit(&big);
    /* YAML's other line breaks (NEL, LS, PS) inside keys and values (found by fuzzing) */
    doc = LOAD_OK("{\"a\\Lb\": \"c\\Pd\\Ne\", f: [\"\\L\", 1]}\n", &keep);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "f.0")->str, "\xe2\x80\xa8");
    round_trip(mt_cfg_doc_root(doc), &keep);
    mt_cfg_doc_free(doc);
    /* a tag name holding a flow indicator (%5D in the file) is written escaped */
    doc = LOAD_OK("!obj:a%5Db {x: [!obj:c%2Cd {}]}\n", &keep);
    round_trip(mt_cfg_doc_root(doc), &keep);
    mt_cfg_doc_free(doc);
}
