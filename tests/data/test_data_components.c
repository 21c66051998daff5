/* The data module's YAML components through the config module: Pylearn2-style MNIST entries
 * (dotted names, shuffle: 0, axes, one_hot), the data path variables, FashionMNIST's default
 * folder, validation errors with positions (before anything is built), a preprocessor
 * anchored in the training set (fitted) and reused by the validation set, and the other
 * datasets (CIFAR10, IDXDataset, NpyDataset, HDF5Dataset, DenseDesignMatrix). */
#include <unistd.h>

#include "mltrain/config.h"
#include "mltrain/mt_config.h"
#include "test_data_util.h"

typedef struct built {
    mt_cfg_registry *r;
    mt_cfg_doc *doc;
    mt_cfg_builder *b;
} built;

static void built_free(built *x)
{
    mt_cfg_builder_free(x->b);
    mt_cfg_doc_free(x->doc);
    mt_cfg_registry_free(x->r);
}

/* Loads and validates text; returns the status of validation (the doc is kept in x). */
static mt_status load_validate(built *x, const char *text)
{
    memset(x, 0, sizeof *x);
    MT_CHECK_OK(mt_cfg_registry_new(&x->r));
    MT_CHECK_OK(mt_data_register_components(x->r));
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    MT_CHECK_OK(mt_cfg_load_string(&x->doc, text, strlen(text), "t.yaml", &o));
    MT_CHECK_OK(mt_cfg_builder_new(&x->b, x->r));
    return mt_cfg_validate(x->r, mt_cfg_doc_root(x->doc), NULL);
}

/* Builds the dataset at root (or root[key] when key is given). */
static mt_status build_at(built *x, const char *key, mt_dataset **out)
{
    const mt_cfg_node *n = mt_cfg_doc_root(x->doc);
    if (key) n = mt_cfg_get(n, key);
    MT_CHECK(n != NULL);
    void *obj = NULL;
    mt_status st = mt_cfg_build(x->b, n, "dataset", &obj, NULL);
    *out = obj;
    return st;
}

static mt_dataset *build_ok(built *x, const char *text, const char *key)
{
    mt_status st = load_validate(x, text);
    if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "validate: %s\n%s", mt_last_error(), text);
    mt_dataset *d;
    st = build_at(x, key, &d);
    if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "build: %s\n%s", mt_last_error(), text);
    return d;
}

MT_TEST(components_register)
{
    mt_cfg_registry *r;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    MT_CHECK_OK(mt_data_register_components(r));
    const char *datasets[] = {"MNIST",
                              "pylearn2.datasets.mnist.MNIST",
                              "FashionMNIST",
                              "IDXDataset",
                              "CIFAR10",
                              "pylearn2.datasets.cifar10.CIFAR10",
                              "NpyDataset",
                              "pylearn2.datasets.npy_npz.NpyDataset",
                              "HDF5Dataset",
                              "pylearn2.datasets.hdf5.HDF5Dataset",
                              "DenseDesignMatrix"};
    for (size_t i = 0; i < sizeof datasets / sizeof *datasets; i++) {
        const mt_component *c = mt_cfg_registry_find(r, datasets[i]);
        MT_CHECK(c != NULL && mt_component_is_kind(c, "dataset"));
        MT_CHECK(c->build && c->destroy);
    }
    const char *pre[] = {"Standardize",
                         "GlobalContrastNormalization",
                         "ZCA",
                         "PCA",
                         "Pipeline",
                         "pylearn2.datasets.preprocessing.ZCA",
                         "pylearn2.datasets.preprocessing.GlobalContrastNormalization"};
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++) {
        const mt_component *c = mt_cfg_registry_find(r, pre[i]);
        MT_CHECK(c != NULL && mt_component_is_kind(c, "preprocessor"));
    }
    MT_CHECK_ERR(mt_data_register_components(r), MT_ERR_INVALID, "already taken");
    mt_cfg_registry_free(r);
}

static void require_fashion(void)
{
    if (!path_exists(MT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz"))
        MT_SKIP("Fashion-MNIST not installed at " MT_FASHION_MNIST_DIR);
}

MT_TEST(components_mnist_pylearn2_keys)
{
    require_fashion();
    built x;
    mt_dataset *d = build_ok(&x,
                             "!obj:pylearn2.datasets.mnist.MNIST {\n"
                             "    which_set: 'test', start: 100, stop: 600,\n"
                             "    shuffle: 0, one_hot: 1, axes: ['c', 0, 1, 'b'],\n"
                             "    path: '" MT_FASHION_MNIST_DIR "',\n"
                             "}\n",
                             NULL);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, 500);
    MT_CHECK_EQ_INT(info.topo[0], 28);
    MT_CHECK(info.y_is_labels);
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = MT_FASHION_MNIST_DIR;
    o.which_set = "test";
    o.start = 100;
    o.stop = 600;
    mt_dataset *ref;
    MT_CHECK_OK(mt_dataset_mnist(&ref, &o));
    MT_CHECK(memcmp(mt_dataset_X(d), mt_dataset_X(ref), 500 * 784 * 4) == 0);
    mt_dataset_free(ref);
    built_free(&x); /* destroys d */
}

MT_TEST(components_data_path_variables)
{
    require_fashion();
    /* $MLTRAIN_DATA_PATH/mnist -> the Fashion-MNIST folder */
    char root[1024], link[1200];
    snprintf(root, sizeof root, "%s/data", mt_test_tmpdir());
    mkdir(root, 0700);
    snprintf(link, sizeof link, "%s/mnist", root);
    MT_CHECK(symlink(MT_FASHION_MNIST_DIR, link) == 0);
    const char *text = "!obj:MNIST {which_set: test, stop: 10, center: true, binarize: true}\n";
    unsetenv("MLTRAIN_DATA_PATH");
    unsetenv("PYLEARN2_DATA_PATH");
    built x;
    MT_CHECK_OK(load_validate(&x, text));
    mt_dataset *d;
    MT_CHECK_ERR(build_at(&x, NULL, &d), MT_ERR_NOT_FOUND, "t.yaml:1:1: ");
    MT_CHECK(strstr(mt_last_error(), "MLTRAIN_DATA_PATH") != NULL);
    built_free(&x);
    char val[1300];
    snprintf(val, sizeof val, "/nonexistent:%s", root); /* Pylearn2-style list: first hit wins */
    setenv("PYLEARN2_DATA_PATH", val, 1);
    d = build_ok(&x, text, NULL);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, 10);
    built_free(&x);
    /* MLTRAIN_DATA_PATH first, then PYLEARN2_DATA_PATH: the first folder holding the files */
    setenv("MLTRAIN_DATA_PATH", "/nonexistent", 1);
    d = build_ok(&x, text, NULL);
    built_free(&x);
    unsetenv("PYLEARN2_DATA_PATH");
    MT_CHECK_OK(load_validate(&x, text));
    MT_CHECK_ERR(build_at(&x, NULL, &d), MT_ERR_NOT_FOUND, "/nonexistent/mnist");
    built_free(&x);
    /* FashionMNIST needs no variable */
    unsetenv("MLTRAIN_DATA_PATH");
    unsetenv("PYLEARN2_DATA_PATH");
    d = build_ok(&x, "!obj:FashionMNIST {which_set: train, start: 50000, stop: 50100}\n", NULL);
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, 100);
    MT_CHECK(strncmp(info.name, "FashionMNIST(train, 50000:50100", 31) == 0);
    built_free(&x);
}

static void expect_invalid(const char *text, const char *needle)
{
    built x;
    mt_err_clear();
    mt_status st = load_validate(&x, text);
    if (st == MT_OK || !strstr(mt_last_error(), needle))
        mt_test_fail(__FILE__, __LINE__, "validate gave %s '%s', expected an error with '%s'\n%s",
                     mt_status_name(st), mt_last_error(), needle, text);
    MT_CHECK(strncmp(mt_last_error(), "t.yaml:", 7) == 0);
    built_free(&x);
}

MT_TEST(components_validation_errors)
{
    expect_invalid("!obj:MNIST {which_set: 'valid'}\n", "t.yaml:1:24: which_set 'valid'");
    expect_invalid("!obj:MNIST {which_set: train, centre: true}\n", "center");
    expect_invalid("!obj:MNIST {start: 5}\n", "which_set");
    expect_invalid("!obj:MNIST {which_set: train, start: 10, stop: 5}\n", "'stop' (5)");
    expect_invalid("!obj:MNIST {which_set: train, axes: ['b', 0, 2, 'c']}\n", "permutation");
    expect_invalid("!obj:MNIST {which_set: train, shuffle: 'yes'}\n", "shuffle");
    expect_invalid("!obj:CIFAR10 {which_set: train, toronto_prepro: true}\n", "toronto_prepro");
    expect_invalid("!obj:HDF5Dataset {filename: a.h5, X: x, topo_view: t}\n", "exactly one");
    expect_invalid("!obj:NpyDataset {file: a.npy, preprocessor: !obj:MNIST {which_set: test}}\n",
                   "preprocessor");
    expect_invalid("!obj:ZCA {n_components: 3, n_drop_components: 1}\n", "not both");
    expect_invalid("!obj:Pipeline {items: [!obj:Standardize {}, !obj:PCA {whiten: true}]}\n",
                   "num_components");
}

MT_TEST(components_preprocessor_fitted_on_train)
{
    require_refs("pp/train.npy");
    char text[4096];
    snprintf(text, sizeof text,
             "train: !obj:NpyDataset {\n"
             "  file: '%s/pp/train.npy',\n"
             "  preprocessor: &pp !obj:pylearn2.datasets.preprocessing.Pipeline {\n"
             "    items: [!obj:GlobalContrastNormalization {scale: 2.0},\n"
             "            !obj:ZCA {filter_bias: 0.1}]},\n"
             "  fit_preprocessor: true }\n"
             "valid: !obj:NpyDataset {file: '%s/pp/valid.npy', preprocessor: *pp}\n"
             "std: !obj:NpyDataset {file: '%s/pp/valid.npy',\n"
             "  preprocessor: !obj:Standardize {}}\n",
             MT_DATA_REFS, MT_DATA_REFS, MT_DATA_REFS);
    built x;
    mt_dataset *tr = build_ok(&x, text, "train"), *va;
    MT_CHECK_OK(build_at(&x, "valid", &va));
    int64_t n;
    double *ex = load_ref("pp/ref_pipe.npy", &n, NULL), *got = dataset_X64(va);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n, 1e-5, 1e-5);
    mt_free(ex);
    mt_free(got);
    (void)tr;
    /* a Standardize never fitted: the error names the preprocessor's position */
    mt_dataset *s;
    MT_CHECK_ERR(build_at(&x, "std", &s), MT_ERR_INVALID, "t.yaml:9:17: ");
    MT_CHECK(strstr(mt_last_error(), "never fitted") != NULL);
    built_free(&x);
}

MT_TEST(components_other_datasets)
{
    require_refs("cifar/test_batch.bin");
    char text[8192];
    snprintf(text, sizeof text,
             "cifar: !obj:pylearn2.datasets.cifar10.CIFAR10 {which_set: test, center: true,\n"
             "  rescale: true, start: 1, stop: 4, path: '%s/cifar', axes: ['b', 0, 1, 'c']}\n"
             "cifar_gcn: !obj:CIFAR10 {which_set: train, gcn: 55.0, path: '%s/cifar'}\n"
             "idx: !obj:IDXDataset {images: '%s/fashion_raw/t10k-images-idx3-ubyte',\n"
             "  labels: '%s/fashion_raw/t10k-labels-idx1-ubyte', scale: 0.00392156862745098,\n"
             "  start: 10, stop: 20, shuffle: true, seed: 3}\n"
             "npy: !obj:pylearn2.datasets.npy_npz.NpyDataset {file: '%s/npy/x_f64.npy',\n"
             "  y_file: '%s/npy/y_i32.npy', mmap_mode: null, stop: 5}\n"
             "ddm: !obj:DenseDesignMatrix {X: [[1, 2], [3, 4.5], [5, 6]], y: [0, 2, 1]}\n"
             "ddm_t: !obj:DenseDesignMatrix {X: [[1], [2]], y: [[0.5, 1], [2, 3]]}\n"
             "ddm_bad: !obj:DenseDesignMatrix {X: [[1, 2], [3]]}\n"
             "h5: !obj:pylearn2.datasets.hdf5.HDF5Dataset {filename: '%s/h5/data.h5',\n"
             "  topo_view: topo, y: ytopo, load_all: true}\n",
             MT_DATA_REFS, MT_DATA_REFS, MT_DATA_REFS, MT_DATA_REFS, MT_DATA_REFS, MT_DATA_REFS,
             MT_DATA_REFS);
    built x;
    mt_dataset *c = build_ok(&x, text, "cifar"), *d;
    mt_dataset_info info;
    mt_dataset_get_info(c, &info);
    MT_CHECK_EQ_INT(info.n, 3);
    for (int64_t i = 0; i < 3 * 3072; i++)
        MT_CHECK(mt_dataset_X(c)[i] >= -1.0f && mt_dataset_X(c)[i] <= 1.0f);
    /* gcn: every example has mean 0 and norm 55 */
    MT_CHECK_OK(build_at(&x, "cifar_gcn", &d));
    mt_dataset_get_info(d, &info);
    for (int64_t i = 0; i < info.n; i++) {
        double s = 0, q = 0;
        for (int64_t j = 0; j < 3072; j++) {
            double v = mt_dataset_X(d)[i * 3072 + j];
            s += v;
            q += v * v;
        }
        MT_CHECK_CLOSE(s / 3072, 0, 1e-4, 0);
        MT_CHECK_CLOSE(sqrt(q), 55.0, 0, 1e-4);
    }
    if (path_exists(MT_DATA_REFS "/fashion_raw/t10k-images-idx3-ubyte")) {
        MT_CHECK_OK(build_at(&x, "idx", &d));
        mt_dataset_get_info(d, &info);
        MT_CHECK_EQ_INT(info.n, 10);
        MT_CHECK_EQ_INT(info.n_classes, 10);
    }
    MT_CHECK_OK(build_at(&x, "npy", &d));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.n == 5 && info.dim == 7 && info.y_is_labels);
    MT_CHECK_OK(build_at(&x, "ddm", &d));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.n == 3 && info.dim == 2 && info.n_classes == 3);
    MT_CHECK(mt_dataset_X(d)[3] == 4.5f && mt_dataset_labels(d)[1] == 2);
    MT_CHECK_OK(build_at(&x, "ddm_t", &d));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.has_y && !info.y_is_labels && info.y_dim == 2 && mt_dataset_Y(d)[2] == 2.0f);
    MT_CHECK_ERR(build_at(&x, "ddm_bad", &d), MT_ERR_SHAPE,
                 "t.yaml:11:46: 'X': row 1 has 1 values");
#if MT_HAVE_HDF5
    MT_CHECK_OK(build_at(&x, "h5", &d));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.n == 5 && info.topo_ndim == 3 && info.n_classes == 3);
#else
    MT_CHECK_ERR(build_at(&x, "h5", &d), MT_ERR_NOT_BUILT, "MT_WITH_HDF5");
#endif
    built_free(&x);
}

/* ---------------------------------------------------------------- Pylearn2 conformance files */

#define CONFORMANCE_DIR MT_CONFORMANCE_DIR

static void collect_datasets(const mt_cfg_node *n, const mt_cfg_node **out, int *count, int cap)
{
    if (!n) return;
    if (n->kind == MT_CFG_OBJ && strncmp(n->tag, "pylearn2.datasets.", 18) == 0 && *count < cap)
        out[(*count)++] = n;
    if (n->kind == MT_CFG_LIST || n->kind == MT_CFG_MAP || n->kind == MT_CFG_OBJ ||
        n->kind == MT_CFG_TAGGED)
        for (int32_t i = 0; i < n->n; i++)
            collect_datasets(n->items[i], out, count, cap);
}

MT_TEST(components_conformance_dataset_nodes)
{
    static const char *files[] = {"papers__dropout__mnist.yaml",
                                  "papers__maxout__mnist_pi.yaml",
                                  "papers__maxout__mnist_pi_continued.yaml",
                                  "tutorials__convolutional_network__conv.yaml",
                                  "tutorials__multilayer_perceptron__mlp_tutorial_part_2.yaml",
                                  "tutorials__multilayer_perceptron__mlp_tutorial_part_3.yaml",
                                  "tutorials__multilayer_perceptron__mlp_tutorial_part_4.yaml",
                                                            "tutorials__softmax_regression__sr_dataset.yaml",
                                  "tutorials__stacked_autoencoders__dae_l1.yaml"};
    if (!path_exists(CONFORMANCE_DIR)) MT_SKIP("no " CONFORMANCE_DIR);
    static const mt_cfg_var params[] = {{"train_stop", "50000"},
                                        {"valid_stop", "60000"},
                                        {"test_stop", "10000"},
                                        {"batch_size", "100"},
                                        {"max_epochs", "1"},
                                        {"dim_h0", "50"},
                                        {"dim_h1", "50"},
                                        {"sparse_init_h1", "15"},
                                        {"nvis", "784"},
                                        {"nhid", "50"},
                                        {"monitoring_batches", "5"},
                                        {"save_path", "."},
                                        {"output_channels_h2", "8"},
                                        {"output_channels_h3", "8"}};
    mt_cfg_registry *r;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    MT_CHECK_OK(mt_data_register_components(r));
    int total = 0;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CONFORMANCE_DIR, files[f]);
        if (!path_exists(path)) continue;
        mt_cfg_options o;
        mt_cfg_options_init(&o);
        o.params = params;
        o.n_params = (int32_t)(sizeof params / sizeof *params);
        o.no_environment = true;
        mt_cfg_var vars[1] = {{"PYLEARN2_TRAIN_FILE_FULL_STEM", "x"}};
        o.vars = vars;
        o.n_vars = 1;
        mt_cfg_doc *doc;
        MT_CHECK_OK(mt_cfg_load_file(&doc, path, &o));
        const mt_cfg_node *ds[16];
        int n = 0;
        collect_datasets(mt_cfg_doc_root(doc), ds, &n, 16);
        MT_CHECK(n > 0);
        for (int i = 0; i < n; i++) {
            mt_status st = mt_cfg_validate(r, ds[i], "dataset");
            if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "%s: %s", files[f], mt_last_error());
            total++;
        }
        mt_cfg_doc_free(doc);
    }
    printf("%d Pylearn2 dataset entries validated\n", total);
    MT_CHECK(total >= 20);
    mt_cfg_registry_free(r);
}

/* `load`: lazy datasets from YAML, start/stop and shuffle as views of the file, a preprocessor
 * forcing the in-memory path, and a bad value caught by validation. */
MT_TEST(components_load_key)
{
    expect_invalid("!obj:NpyDataset {file: a.npy, load: fast}\n", "'load' is 'fast'");
    mt_device *host;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    float v[40];
    for (int i = 0; i < 40; i++)
        v[i] = (float)i * 1.5f;
    int64_t dims[2] = {10, 4};
    mt_array a = {0};
    MT_CHECK_OK(mt_array_from_host(&a, host, MT_FLOAT32, 2, dims, v));
    char p[1024];
    MT_CHECK_OK(mt_npy_save(tmp_file(p, sizeof p, "x.npy"), &a));
    mt_array_clear(&a);
    mt_device_release(host);
    char text[4096];
    snprintf(text, sizeof text,
             "lazy: !obj:NpyDataset {file: '%s', start: 2, stop: 9, load: lazy}\n"
             "mem: !obj:NpyDataset {file: '%s', load: memory}\n"
             "pre: !obj:NpyDataset {file: '%s', load: lazy, fit_preprocessor: true,\n"
             "  preprocessor: !obj:Standardize {}}\n"
             "idx: !obj:IDXDataset {images: '%s/fashion_raw/t10k-images-idx3-ubyte',\n"
             "  start: 10, stop: 20, shuffle: true, seed: 3, load: lazy}\n"
             "idx_mem: !obj:IDXDataset {images: '%s/fashion_raw/t10k-images-idx3-ubyte',\n"
             "  start: 10, stop: 20, shuffle: true, seed: 3}\n",
             p, p, p, MT_DATA_REFS, MT_DATA_REFS);
    built x;
    mt_dataset *lz = build_ok(&x, text, "lazy"), *mem, *pre;
    MT_CHECK(mt_dataset_is_lazy(lz));
    MT_CHECK_OK(build_at(&x, "mem", &mem));
    MT_CHECK(!mt_dataset_is_lazy(mem));
    MT_CHECK_OK(build_at(&x, "pre", &pre));
    MT_CHECK(!mt_dataset_is_lazy(pre));
    mt_dataset_info info;
    mt_dataset_get_info(lz, &info);
    MT_CHECK_EQ_INT(info.n, 7);
    const int64_t rows[2] = {0, 6};
    mt_array X = {0};
    MT_CHECK_OK(mt_dataset_gather(lz, rows, 2, &X, NULL));
    const float *g = (const float *)((const char *)mt_buffer_host_ptr(X.buf) + X.offset);
    MT_CHECK(memcmp(g, mt_dataset_X(mem) + 2 * 4, 4 * sizeof(float)) == 0);
    MT_CHECK(memcmp(g + 4, mt_dataset_X(mem) + 8 * 4, 4 * sizeof(float)) == 0);
    if (path_exists(MT_DATA_REFS "/fashion_raw/t10k-images-idx3-ubyte")) {
        mt_dataset *il, *im;
        MT_CHECK_OK(build_at(&x, "idx", &il));
        MT_CHECK_OK(build_at(&x, "idx_mem", &im));
        MT_CHECK(mt_dataset_is_lazy(il) && !mt_dataset_is_lazy(im));
        const int64_t all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        MT_CHECK_OK(mt_dataset_gather(il, all, 10, &X, NULL));
        g = (const float *)((const char *)mt_buffer_host_ptr(X.buf) + X.offset);
        MT_CHECK(memcmp(g, mt_dataset_X(im), 10 * 784 * sizeof(float)) == 0);
    }
    mt_array_clear(&X);
    built_free(&x);
}
