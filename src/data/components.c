/* The data module's YAML components: datasets (MNIST, FashionMNIST, IDXDataset, CIFAR10,
 * NpyDataset, HDF5Dataset, DenseDesignMatrix) and preprocessors (Standardize,
 * GlobalContrastNormalization, ZCA, PCA, Pipeline), under their names and Pylearn2's dotted
 * class names. Each component has a schema (validated before anything is built), a check for
 * cross-key rules (so `--dry-run` catches them), a build function that loads the data, selects
 * start/stop and applies the preprocessor (fitting it when fit_preprocessor says so), and a
 * destroy function. Pylearn2 keys that change nothing here (axes as a b01c/c01b permutation,
 * one_hot, mmap_mode, load_all, ...) are accepted and documented in docs/datasets.md.
 * The file datasets take `load` (auto, memory, lazy: mt_data_load); a preprocessor needs the
 * whole matrix, so a dataset with one always loads in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_impl.h"
#include "mltrain/config.h"

/* ---------------------------------------------------------------- shared keys and helpers */

#define K_START                                                                                    \
    {                                                                                              \
        "start", MT_CFG_T_INT, false, true, NULL, false, "first example (default 0)"               \
    }
#define K_STOP                                                                                     \
    {                                                                                              \
        "stop", MT_CFG_T_INT, false, true, NULL, false, "one past the last example"                \
    }
#define K_PRE                                                                                      \
    {                                                                                              \
        "preprocessor", MT_CFG_T_OBJ, false, true, "preprocessor", false,                          \
            "preprocessor applied after loading"                                                   \
    }
#define K_FITPRE                                                                                   \
    {                                                                                              \
        "fit_preprocessor", MT_CFG_T_BOOL, false, true, NULL, false,                               \
            "fit the preprocessor on this dataset first (default false)"                           \
    }
#define K_FITTEST                                                                                  \
    {                                                                                              \
        "fit_test_preprocessor", MT_CFG_T_BOOL, false, true, NULL, false,                          \
            "which_set 'test': fit the preprocessor (default fit_preprocessor)"                    \
    }
#define K_AXES                                                                                     \
    {                                                                                              \
        "axes", MT_CFG_T_ANY, false, true, NULL, false,                                            \
            "accepted: a permutation of ['b', 0, 1, 'c'] (mltrain stores b01c)"                    \
    }
#define K_ONEHOT                                                                                   \
    {                                                                                              \
        "one_hot", MT_CFG_T_BOOL, false, true, NULL, false,                                        \
            "accepted and ignored: labels stay indices, the model converts"                        \
    }
#define K_LOAD                                                                                     \
    {                                                                                              \
        "load", MT_CFG_T_STRING, false, true, NULL, false,                                         \
            "'auto' (default), 'memory' or 'lazy' (read only the rows of each batch)"              \
    }
#define K_END                                                                                      \
    {                                                                                              \
        NULL, MT_CFG_T_ANY, false, false, NULL, false, NULL                                        \
    }

static void destroy_dataset(void *obj)
{
    mt_dataset_free(obj);
}

static void destroy_preproc(void *obj)
{
    mt_preproc_free(obj);
}

/* Integer key that may be null: *set false when absent or null. */
static mt_status opt_int(const mt_cfg_node *node, const char *key, int64_t *v, bool *set)
{
    const mt_cfg_node *k = mt_cfg_get(node, key);
    *set = k && k->kind != MT_CFG_NULL;
    *v = 0;
    return *set ? mt_cfg_get_int(node, key, 0, v) : MT_OK;
}

static mt_status get_range(const mt_cfg_node *node, int64_t *start, int64_t *stop)
{
    bool s1, s2;
    mt_status st = opt_int(node, "start", start, &s1);
    if (st == MT_OK) st = opt_int(node, "stop", stop, &s2);
    if (st != MT_OK) return st;
    if (!s2) *stop = -1;
    if (*start < 0)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "start"),
                            "'start' must be >= "
                            "0, got %lld",
                            (long long)*start);
    if (s2 && *stop < *start)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "stop"),
                            "'stop' (%lld) must "
                            "not be below 'start' (%lld)",
                            (long long)*stop, (long long)*start);
    return MT_OK;
}

static mt_status check_which_set(const mt_cfg_node *node)
{
    const char *w;
    mt_status st = mt_cfg_get_string(node, "which_set", NULL, &w);
    if (st != MT_OK) return st;
    if (w && strcmp(w, "train") != 0 && strcmp(w, "test") != 0)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_get(node, "which_set")->loc,
                            "which_set '%s' "
                            "is not one of 'train', 'test' (a validation split is 'train' with "
                            "start/stop)",
                            w);
    return MT_OK;
}

/* axes: absent, null, or a permutation of b, 0, 1, c (strings or the integers 0 and 1). */
static mt_status check_axes(const mt_cfg_node *node)
{
    const mt_cfg_node *a = mt_cfg_get(node, "axes");
    if (!a || a->kind == MT_CFG_NULL) return MT_OK;
    int seen = 0;
    bool ok = a->kind == MT_CFG_LIST && a->n == 4;
    for (int32_t i = 0; ok && i < a->n; i++) {
        const mt_cfg_node *it = a->items[i];
        int bit = -1;
        if (it->kind == MT_CFG_INT && (it->i == 0 || it->i == 1))
            bit = (int)it->i;
        else if (it->kind == MT_CFG_STRING && strlen(it->str) == 1)
            bit = it->str[0] == '0'   ? 0
                  : it->str[0] == '1' ? 1
                  : it->str[0] == 'b' ? 2
                  : it->str[0] == 'c' ? 3
                                      : -1;
        ok = bit >= 0 && !(seen & (1 << bit));
        if (ok) seen |= 1 << bit;
    }
    if (!ok)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "axes"),
                            "'axes' must be a "
                            "permutation of ['b', 0, 1, 'c'] such as ['c', 0, 1, 'b'] (mltrain "
                            "always stores b01c; the model's input space converts)");
    return MT_OK;
}

/* `load` as a mode (AUTO when absent or null). */
static mt_status parse_load(const mt_cfg_node *node, mt_data_load *mode)
{
    const char *v;
    *mode = MT_DATA_LOAD_AUTO;
    mt_status st = mt_cfg_get_string(node, "load", NULL, &v);
    if (st != MT_OK) return st;
    if (v && mt_data_load_from_name(mode, v) != MT_OK)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "load"),
                            "'load' is '%s'; want 'auto', 'memory' or 'lazy'", v);
    return MT_OK;
}

/* The mode a file dataset is read with: `load`, except that a preprocessor needs the whole
 * matrix, so with one the dataset loads in memory (logged when lazy was asked for). */
static mt_status get_load(const mt_cfg_node *node, mt_data_load *mode)
{
    mt_status st = parse_load(node, mode);
    if (st != MT_OK) return st;
    const mt_cfg_node *pn = mt_cfg_get(node, "preprocessor");
    if (pn && pn->kind != MT_CFG_NULL) {
        if (*mode == MT_DATA_LOAD_LAZY ||
            (*mode == MT_DATA_LOAD_AUTO && mt_data_default_load() == MT_DATA_LOAD_LAZY))
            mt_log(MT_LOG_INFO, "%s:%d: the preprocessor needs the whole dataset: loading it in "
                   "memory", node->loc.file ? node->loc.file : "?", (int)node->loc.line);
        *mode = MT_DATA_LOAD_MEMORY;
    }
    return MT_OK;
}

static mt_status check_dataset_common(const mt_cfg_node *node)
{
    int64_t a, b;
    mt_data_load load;
    mt_status st = get_range(node, &a, &b);
    if (st == MT_OK) st = check_axes(node);
    if (st == MT_OK) st = parse_load(node, &load);
    return st;
}

/* Keeps rows [start, stop) (stop -1 = all) of d. */
static mt_status select_rows(const mt_cfg_node *node, mt_dataset *d, int64_t start, int64_t stop)
{
    if (stop < 0) stop = d->n;
    if (start > d->n || stop > d->n)
        return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, stop > d->n ? "stop" : "start"),
                            "start %lld / stop %lld outside the %lld examples of %s",
                            (long long)start, (long long)stop, (long long)d->n, d->name);
    if (start == 0 && stop == d->n) return MT_OK;
    char name[300];
    snprintf(name, sizeof name, "%s[%lld:%lld]", d->name, (long long)start, (long long)stop);
    mt__dataset_keep_rows(d, start, stop);
    return mt__dataset_set_name(d, name);
}

static mt_status apply_preprocessor(mt_cfg_builder *b, const mt_cfg_node *node, mt_dataset *d,
                                    bool test_split)
{
    const mt_cfg_node *pn = mt_cfg_get(node, "preprocessor");
    if (!pn || pn->kind == MT_CFG_NULL) return MT_OK;
    void *obj;
    mt_status st = mt_cfg_build(b, pn, "preprocessor", &obj, NULL);
    if (st != MT_OK) return st;
    bool fit, set;
    if ((st = mt_cfg_get_bool(node, "fit_preprocessor", false, &fit)) != MT_OK) return st;
    const mt_cfg_node *ft = mt_cfg_get(node, "fit_test_preprocessor");
    set = ft && ft->kind != MT_CFG_NULL;
    if (test_split && set && (st = mt_cfg_get_bool(node, "fit_test_preprocessor", fit, &fit)))
        return st;
    st = mt_preproc_apply(obj, d, fit);
    if (st != MT_OK) {
        char msg[MT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        return mt_cfg_error(st, pn->loc, "preprocessor on %s: %s", d->name, msg);
    }
    return MT_OK;
}

/* Path value with ~ expanded into buf. */
static mt_status path_key(const mt_cfg_node *node, const char *key, char *buf, size_t len,
                          bool *set)
{
    const char *s;
    mt_status st = mt_cfg_get_string(node, key, NULL, &s);
    *set = false;
    if (st != MT_OK || !s) return st;
    char *e;
    if ((st = mt_cfg_expand_user(&e, s)) != MT_OK) return st;
    snprintf(buf, len, "%s", e);
    mt_free(e);
    *set = true;
    return MT_OK;
}

/* The first DIR/sub of $MLTRAIN_DATA_PATH then $PYLEARN2_DATA_PATH (':'-separated lists)
 * holding `probe` (or probe.gz), else the first candidate at all; false when neither is set. */
static bool data_path_dir(char *buf, size_t len, const char *sub, const char *probe)
{
    const char *vars[2] = {"MLTRAIN_DATA_PATH", "PYLEARN2_DATA_PATH"};
    bool any = false;
    for (int v = 0; v < 2; v++) {
        const char *val = getenv(vars[v]);
        if (!val || !*val) continue;
        const char *p = val;
        while (*p) {
            size_t n = strcspn(p, ":");
            if (n) {
                char cand[4096], f[4300];
                snprintf(cand, sizeof cand, "%.*s/%s", (int)n, p, sub);
                if (!any) snprintf(buf, len, "%s", cand);
                any = true;
                struct stat sb;
                snprintf(f, sizeof f, "%s/%s", cand, probe);
                bool hit = stat(f, &sb) == 0;
                snprintf(f, sizeof f, "%s/%s.gz", cand, probe);
                if (hit || stat(f, &sb) == 0) {
                    snprintf(buf, len, "%s", cand);
                    return true;
                }
            }
            p += n;
            if (*p == ':') p++;
        }
    }
    return any;
}

/* ---------------------------------------------------------------- MNIST, FashionMNIST */

static const char *const mnist_aliases[] = {"pylearn2.datasets.mnist.MNIST", NULL};
static const char *const fashion_aliases[] = {"Fashion_MNIST", "FashionMnist", NULL};

#define MNIST_KEYS(pathdoc)                                                                        \
    {"which_set", MT_CFG_T_STRING, true, false, NULL, false, "'train' or 'test'"}, K_START,        \
        K_STOP,                                                                                    \
        {"center",                                                                                 \
         MT_CFG_T_BOOL,                                                                            \
         false,                                                                                    \
         true,                                                                                     \
         NULL,                                                                                     \
         false,                                                                                    \
         "subtract the per-pixel mean of the whole split"},                                        \
        {"binarize", MT_CFG_T_BOOL, false, true, NULL, false, "x > 0.5 -> 1, else 0"},             \
        {"shuffle",                                                                                \
         MT_CFG_T_BOOL,                                                                            \
         false,                                                                                    \
         true,                                                                                     \
         NULL,                                                                                     \
         false,                                                                                    \
         "permute the selected examples (seeded)"},                                                \
        {"seed", MT_CFG_T_INT, false, true, NULL, false, "shuffle seed (default 1)"},              \
        {"path", MT_CFG_T_STRING, false, true, NULL, false, pathdoc}, K_PRE, K_FITPRE, K_FITTEST,  \
        K_AXES, K_ONEHOT, K_LOAD, K_END

static const mt_cfg_key mnist_keys[] = {
    MNIST_KEYS("folder with the IDX files (default $MLTRAIN_DATA_PATH/mnist, then "
               "$PYLEARN2_DATA_PATH/mnist)")};
static const mt_cfg_key fashion_keys[] = {
    MNIST_KEYS("folder with the IDX files (default " MT_FASHION_MNIST_DIR ")")};

static mt_status check_mnist(const mt_cfg_node *node)
{
    mt_status st = check_which_set(node);
    return st != MT_OK ? st : check_dataset_common(node);
}

static mt_status build_mnist_like(mt_cfg_builder *b, const mt_cfg_node *node, void **out,
                                  bool fashion)
{
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    char dir[4096];
    int64_t seed;
    bool set;
    mt_status st = check_mnist(node);
    if (st == MT_OK) st = mt_cfg_get_string(node, "which_set", "train", &o.which_set);
    if (st == MT_OK) st = get_range(node, &o.start, &o.stop);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "center", false, &o.center);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "binarize", false, &o.binarize);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "shuffle", false, &o.shuffle);
    if (st == MT_OK) st = mt_cfg_get_int(node, "seed", 1, &seed);
    if (st == MT_OK) st = path_key(node, "path", dir, sizeof dir, &set);
    if (st == MT_OK) st = get_load(node, &o.load);
    if (st != MT_OK) return st;
    o.seed = (uint64_t)seed;
    const char *probe =
        strcmp(o.which_set, "test") == 0 ? "t10k-images-idx3-ubyte" : "train-images-idx3-ubyte";
    if (!set && fashion)
        snprintf(dir, sizeof dir, "%s", MT_FASHION_MNIST_DIR);
    else if (!set && !data_path_dir(dir, sizeof dir, "mnist", probe))
        return mt_cfg_error(MT_ERR_NOT_FOUND, node->loc,
                            "MNIST: no data folder: give 'path', or "
                            "set MLTRAIN_DATA_PATH (or PYLEARN2_DATA_PATH) to a folder holding "
                            "mnist/ with the IDX files (Fashion-MNIST: !obj:FashionMNIST, files "
                            "in %s)",
                            MT_FASHION_MNIST_DIR);
    o.dir = dir;
    mt_dataset *d;
    if ((st = mt_dataset_mnist(&d, &o)) != MT_OK) return st;
    *out = d;
    if (fashion) {
        char name[300];
        snprintf(name, sizeof name, "Fashion%s", d->name);
        if ((st = mt__dataset_set_name(d, name)) != MT_OK) return st;
    }
    return apply_preprocessor(b, node, d, strcmp(o.which_set, "test") == 0);
}

static mt_status build_mnist(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    return build_mnist_like(b, node, out, false);
}

static mt_status build_fashion(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    return build_mnist_like(b, node, out, true);
}

/* ---------------------------------------------------------------- IDXDataset */

static const char *const idx_aliases[] = {"IDX", NULL};
static const mt_cfg_key idx_keys[] = {
    {"images", MT_CFG_T_STRING, true, false, NULL, false, "IDX images file (raw or .gz)"},
    {"labels", MT_CFG_T_STRING, false, true, NULL, false, "IDX labels file (1-d)"},
    {"scale", MT_CFG_T_FLOAT, false, true, NULL, false,
     "multiply values by this (default 1; 0.00392156862745098 = 1/255)"},
    K_START,
    K_STOP,
    {"shuffle", MT_CFG_T_BOOL, false, true, NULL, false, "permute the selected examples"},
    {"seed", MT_CFG_T_INT, false, true, NULL, false, "shuffle seed (default 1)"},
    K_PRE,
    K_FITPRE,
    K_LOAD,
    K_END};

static mt_status build_idx(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    char ip[4096], lp[4096];
    bool iset, lset, shuffle;
    double scale;
    int64_t start, stop, seed;
    mt_status st = path_key(node, "images", ip, sizeof ip, &iset);
    if (st == MT_OK) st = path_key(node, "labels", lp, sizeof lp, &lset);
    if (st == MT_OK) st = mt_cfg_get_float(node, "scale", 1.0, &scale);
    if (st == MT_OK) st = get_range(node, &start, &stop);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "shuffle", false, &shuffle);
    if (st == MT_OK) st = mt_cfg_get_int(node, "seed", 1, &seed);
    mt_data_load load;
    if (st == MT_OK) st = get_load(node, &load);
    if (st != MT_OK) return st;
    mt_dataset *d;
    if ((st = mt_dataset_idx_mode(&d, ip, lset ? lp : NULL, scale, load)) != MT_OK) return st;
    *out = d;
    if ((st = select_rows(node, d, start, stop)) != MT_OK) return st;
    if (shuffle && (st = mt__dataset_shuffle(d, (uint64_t)seed, 0x4D4E53u)) != MT_OK) return st;
    return apply_preprocessor(b, node, d, false);
}

/* ---------------------------------------------------------------- CIFAR10 */

static const char *const cifar_aliases[] = {"pylearn2.datasets.cifar10.CIFAR10", NULL};
static const mt_cfg_key cifar_keys[] = {
    {"which_set", MT_CFG_T_STRING, true, false, NULL, false, "'train' or 'test'"},
    {"center", MT_CFG_T_BOOL, false, true, NULL, false, "subtract 127.5"},
    {"rescale", MT_CFG_T_BOOL, false, true, NULL, false, "divide by 127.5 (after center)"},
    {"gcn", MT_CFG_T_FLOAT, false, true, NULL, false,
     "global contrast normalization with this scale (Pylearn2's gcn)"},
    K_START,
    K_STOP,
    K_AXES,
    {"toronto_prepro", MT_CFG_T_BOOL, false, true, NULL, false, "not supported (false only)"},
    {"path", MT_CFG_T_STRING, false, true, NULL, false,
     "folder with data_batch_*.bin (default $MLTRAIN_DATA_PATH/cifar10/cifar-10-batches-bin)"},
    K_PRE,
    K_FITPRE,
    K_FITTEST,
    K_ONEHOT,
    K_END};

static mt_status check_cifar(const mt_cfg_node *node)
{
    bool toronto;
    mt_status st = check_which_set(node);
    if (st == MT_OK) st = check_dataset_common(node);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "toronto_prepro", false, &toronto);
    if (st == MT_OK && toronto)
        return mt_cfg_error(MT_ERR_UNSUPPORTED, mt_cfg_key_loc(node, "toronto_prepro"),
                            "CIFAR10: toronto_prepro is not supported (use center/rescale or a "
                            "preprocessor)");
    return st;
}

static mt_status build_cifar(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt_cifar10_options o;
    mt_cifar10_options_init(&o);
    char dir[4096];
    bool set;
    double gcn = 0;
    const mt_cfg_node *g = mt_cfg_get(node, "gcn");
    mt_status st = check_cifar(node);
    if (st == MT_OK) st = mt_cfg_get_string(node, "which_set", "train", &o.which_set);
    if (st == MT_OK) st = get_range(node, &o.start, &o.stop);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "center", false, &o.center);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "rescale", false, &o.rescale);
    if (st == MT_OK && g && g->kind != MT_CFG_NULL) st = mt_cfg_get_float(node, "gcn", 0, &gcn);
    if (st == MT_OK) st = path_key(node, "path", dir, sizeof dir, &set);
    if (st != MT_OK) return st;
    if (!set && !data_path_dir(dir, sizeof dir, "cifar10/cifar-10-batches-bin", "test_batch.bin"))
        return mt_cfg_error(MT_ERR_NOT_FOUND, node->loc,
                            "CIFAR10: no data folder: give 'path', "
                            "or set MLTRAIN_DATA_PATH (or PYLEARN2_DATA_PATH) to a folder holding "
                            "cifar10/cifar-10-batches-bin/ (the binary version)");
    o.dir = dir;
    mt_dataset *d;
    if ((st = mt_dataset_cifar10(&d, &o)) != MT_OK) return st;
    *out = d;
    if (gcn != 0) {
        mt_preprocessor *p;
        if ((st = mt_preproc_gcn(&p, true, gcn, 0.0, false, 1e-8)) != MT_OK)
            return mt_cfg_error(st, mt_cfg_key_loc(node, "gcn"), "gcn: %s", mt_last_error());
        st = mt_preproc_apply(p, d, false);
        mt_preproc_free(p);
        if (st != MT_OK) return st;
    }
    return apply_preprocessor(b, node, d, strcmp(o.which_set, "test") == 0);
}

/* ---------------------------------------------------------------- NpyDataset */

static const char *const npy_aliases[] = {"pylearn2.datasets.npy_npz.NpyDataset", NULL};
static const mt_cfg_key npy_keys[] = {
    {"file", MT_CFG_T_STRING, true, false, NULL, false, ".npy file with X"},
    {"y_file", MT_CFG_T_STRING, false, true, NULL, false, ".npy file with labels or targets"},
    {"mmap_mode", MT_CFG_T_ANY, false, true, NULL, false, "accepted and ignored (see 'load')"},
    K_START,
    K_STOP,
    K_PRE,
    K_FITPRE,
    K_LOAD,
    K_END};

static mt_status build_npy(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    char xp[4096], yp[4096];
    bool xs, ys;
    int64_t start, stop;
    mt_status st = path_key(node, "file", xp, sizeof xp, &xs);
    if (st == MT_OK) st = path_key(node, "y_file", yp, sizeof yp, &ys);
    if (st == MT_OK) st = get_range(node, &start, &stop);
    mt_data_load load;
    if (st == MT_OK) st = get_load(node, &load);
    if (st != MT_OK) return st;
    mt_dataset *d;
    if ((st = mt_dataset_npy_mode(&d, xp, ys ? yp : NULL, load)) != MT_OK) return st;
    *out = d;
    if ((st = select_rows(node, d, start, stop)) != MT_OK) return st;
    return apply_preprocessor(b, node, d, false);
}

/* ---------------------------------------------------------------- CompositeDataset */

/* Several sources of the same examples (Pylearn2's multi-source data_specs): the features of
 * source i fill the next source_dims[i] columns of X, so a model whose input_space is a
 * CompositeSpace reads component i from them; the targets are those of one source. */
static const mt_cfg_key composite_keys[] = {
    {"sources", MT_CFG_T_OBJ_LIST, true, false, "dataset", false,
     "datasets of the same examples; source i is component i of a CompositeSpace input"},
    {"targets_from", MT_CFG_T_INT, false, true, NULL, false,
     "index of the source whose targets are used (default: the one source with targets)"},
    K_START,
    K_STOP,
    K_END};

static mt_status check_composite(const mt_cfg_node *node)
{
    int64_t a, b;
    mt_status st = get_range(node, &a, &b);
    const mt_cfg_node *src = mt_cfg_get(node, "sources");
    if (st == MT_OK && src && src->kind == MT_CFG_LIST && src->n < 1)
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "sources"),
                          "CompositeDataset: sources must not be empty");
    const mt_cfg_node *tf = mt_cfg_get(node, "targets_from");
    if (st == MT_OK && tf && tf->kind == MT_CFG_INT && src && src->kind == MT_CFG_LIST &&
        (tf->i < 0 || tf->i >= src->n))
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "targets_from"),
                          "CompositeDataset: targets_from %lld is not a source index (0..%d)",
                          (long long)tf->i, (int)src->n - 1);
    return st;
}

static mt_status build_composite(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    const mt_cfg_node *list = mt_cfg_get(node, "sources");
    int64_t start, stop, tfrom = -1;
    bool tset;
    mt_status st = get_range(node, &start, &stop);
    if (st == MT_OK) st = opt_int(node, "targets_from", &tfrom, &tset);
    if (st != MT_OK) return st;
    if (!tset) tfrom = -1;
    if (!list || list->kind != MT_CFG_LIST || list->n < 1)
        return mt_cfg_error(MT_ERR_INVALID, node->loc, "CompositeDataset: sources must be a "
                            "non-empty list of datasets");
    int32_t ns = list->n;
    mt_dataset **src = mt_calloc((size_t)ns, sizeof(*src));
    int64_t *dims = mt_calloc((size_t)ns, sizeof(int64_t));
    mt_strbuf name;
    mt_strbuf_init(&name);
    mt_strbuf_append(&name, "CompositeDataset(");
    float *X = NULL;
    int64_t n = 0, dim = 0;
    if (!src || !dims) {
        st = mt_err_set(MT_ERR_NOMEM, "CompositeDataset: out of memory");
        goto done;
    }
    for (int32_t i = 0; i < ns && st == MT_OK; i++) {
        void *obj;
        if ((st = mt_cfg_build(b, list->items[i], "dataset", &obj, NULL)) != MT_OK) break;
        src[i] = obj;
        if ((st = mt_dataset_materialize(src[i])) != MT_OK) break;
        if (i > 0 && src[i]->n != src[0]->n)
            st = mt_cfg_error(MT_ERR_SHAPE, list->items[i]->loc, "CompositeDataset: source %d "
                              "(%s) has %lld examples but source 0 (%s) has %lld", (int)i,
                              src[i]->name, (long long)src[i]->n, src[0]->name,
                              (long long)src[0]->n);
        dims[i] = src[i]->dim;
        dim += src[i]->dim;
        mt_strbuf_appendf(&name, "%s%s", i ? ", " : "", src[i]->name);
    }
    if (st != MT_OK) goto done;
    mt_strbuf_append(&name, ")");
    n = src[0]->n;
    if (!tset) {
        for (int32_t i = 0; i < ns; i++) {
            if (!src[i]->labels && !src[i]->Y) continue;
            if (tfrom >= 0) {
                st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "sources"),
                                  "CompositeDataset: sources %lld and %d both have targets: "
                                  "say which to use with targets_from", (long long)tfrom,
                                  (int)i);
                goto done;
            }
            tfrom = i;
        }
    } else if (tfrom < 0 || tfrom >= ns || (!src[tfrom]->labels && !src[tfrom]->Y)) {
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "targets_from"),
                          "CompositeDataset: targets_from %lld names no source with targets",
                          (long long)tfrom);
        goto done;
    }
    size_t xb;
    if ((st = mt__data_bytes(&xb, n * dim, sizeof(float), mt_data_max_bytes(),
                             "CompositeDataset")) != MT_OK)
        goto done;
    if (!(X = mt_malloc(xb ? xb : 1))) {
        st = mt_err_set(MT_ERR_NOMEM, "CompositeDataset: out of memory");
        goto done;
    }
    for (int64_t r = 0; r < n; r++) {
        float *row = X + r * dim;
        for (int32_t i = 0; i < ns; i++) {
            memcpy(row, src[i]->X + r * dims[i], (size_t)dims[i] * sizeof(float));
            row += dims[i];
        }
    }
    const mt_dataset *t = tfrom >= 0 ? src[tfrom] : NULL;
    mt_dataset *d = NULL;
    st = mt_dataset_from_memory(&d, name.data ? name.data : "CompositeDataset", n, dim, X, NULL,
                                t ? t->labels : NULL, t && t->labels ? t->n_classes : 0,
                                t ? t->Y : NULL, t && t->Y ? t->y_dim : 0);
    if (st == MT_OK) st = mt__dataset_set_sources(d, ns, dims);
    if (st == MT_OK) st = select_rows(node, d, start, stop);
    if (st != MT_OK) {
        mt_dataset_free(d);
        goto done;
    }
    *out = d;
done:
    mt_free(X);
    mt_free(src);
    mt_free(dims);
    mt_strbuf_deinit(&name);
    return st;
}

/* ---------------------------------------------------------------- HDF5Dataset */

static const char *const h5_aliases[] = {"pylearn2.datasets.hdf5.HDF5Dataset",
                                         "DenseDesignMatrixHDF5", NULL};
static const mt_cfg_key h5_keys[] = {
    {"filename", MT_CFG_T_STRING, true, false, NULL, false, "HDF5 file"},
    {"X", MT_CFG_T_STRING, false, true, NULL, false, "dataset with the design matrix"},
    {"topo_view", MT_CFG_T_STRING, false, true, NULL, false, "dataset with b01c images"},
    {"y", MT_CFG_T_STRING, false, true, NULL, false, "dataset with labels or targets"},
    {"load_all", MT_CFG_T_BOOL, false, true, NULL, false, "accepted and ignored (see 'load')"},
    {"cache_size", MT_CFG_T_INT, false, true, NULL, false, "accepted and ignored"},
    {"use_h5py", MT_CFG_T_ANY, false, true, NULL, false, "accepted and ignored"},
    K_START,
    K_STOP,
    K_AXES,
    K_PRE,
    K_FITPRE,
    K_LOAD,
    K_END};

static mt_status check_h5(const mt_cfg_node *node)
{
    const char *x, *t;
    mt_status st = mt_cfg_get_string(node, "X", NULL, &x);
    if (st == MT_OK) st = mt_cfg_get_string(node, "topo_view", NULL, &t);
    if (st != MT_OK) return st;
    if (!x == !t)
        return mt_cfg_error(MT_ERR_INVALID, node->loc,
                            "HDF5Dataset: give exactly one of 'X' "
                            "(a design matrix) and 'topo_view' (b01c images)");
    return check_dataset_common(node);
}

static mt_status build_h5(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    char path[4096];
    bool set;
    const char *x, *t, *y;
    int64_t start, stop;
    mt_status st = check_h5(node);
    if (st == MT_OK) st = path_key(node, "filename", path, sizeof path, &set);
    if (st == MT_OK) st = mt_cfg_get_string(node, "X", NULL, &x);
    if (st == MT_OK) st = mt_cfg_get_string(node, "topo_view", NULL, &t);
    if (st == MT_OK) st = mt_cfg_get_string(node, "y", NULL, &y);
    if (st == MT_OK) st = get_range(node, &start, &stop);
    mt_data_load load;
    if (st == MT_OK) st = get_load(node, &load);
    if (st != MT_OK) return st;
    mt_dataset *d;
    if ((st = mt_dataset_hdf5_mode(&d, path, x ? x : t, y, load)) != MT_OK) return st;
    *out = d;
    if ((st = select_rows(node, d, start, stop)) != MT_OK) return st;
    return apply_preprocessor(b, node, d, false);
}

/* ---------------------------------------------------------------- DenseDesignMatrix */

static const char *const ddm_aliases[] = {"pylearn2.datasets.dense_design_matrix.DenseDesignMatrix",
                                          NULL};
static const mt_cfg_key ddm_keys[] = {
    {"X", MT_CFG_T_ANY, true, false, NULL, false, "the examples: a list of equal-length rows"},
    {"y", MT_CFG_T_ANY, false, true, NULL, false,
     "labels (a list of integers) or targets (a list of rows)"},
    K_START,
    K_STOP,
    K_AXES,
    K_PRE,
    K_FITPRE,
    K_END};

static bool node_number(const mt_cfg_node *n, double *v)
{
    if (n->kind == MT_CFG_INT || n->kind == MT_CFG_FLOAT) {
        *v = n->kind == MT_CFG_INT ? (double)n->i : n->f;
        return true;
    }
    return false;
}

/* A list of rows of numbers into a new float matrix; cols < 0 = take the first row's. */
static mt_status rows_matrix(const mt_cfg_node *v, const char *key, float **out, int64_t *cols)
{
    *out = NULL;
    if (v->kind != MT_CFG_LIST || v->n < 1)
        return mt_cfg_error(MT_ERR_INVALID, v->loc, "'%s' must be a non-empty list of rows", key);
    int64_t c = v->items[0]->kind == MT_CFG_LIST ? v->items[0]->n : 1;
    float *m = mt_malloc((size_t)(v->n * (c ? c : 1)) * sizeof(float));
    if (!m) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < v->n; i++) {
        const mt_cfg_node *r = v->items[i];
        bool scalar = r->kind != MT_CFG_LIST;
        if ((scalar && c != 1) || (!scalar && r->n != c) ||
            (scalar && v->items[0]->kind == MT_CFG_LIST)) {
            mt_free(m);
            return mt_cfg_error(MT_ERR_SHAPE, r->loc, "'%s': row %d has %d values, row 0 has %lld",
                                key, (int)i, scalar ? 1 : (int)r->n, (long long)c);
        }
        for (int64_t j = 0; j < c; j++) {
            double x;
            const mt_cfg_node *e = scalar ? r : r->items[j];
            if (!node_number(e, &x)) {
                mt_free(m);
                return mt_cfg_error(MT_ERR_INVALID, e->loc,
                                    "'%s': row %d item %lld is not a "
                                    "number",
                                    key, (int)i, (long long)j);
            }
            m[i * c + j] = (float)x;
        }
    }
    *out = m;
    *cols = c;
    return MT_OK;
}

static mt_status build_ddm(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    const mt_cfg_node *xn = mt_cfg_get(node, "X"), *yn = mt_cfg_get(node, "y");
    float *X = NULL, *Y = NULL;
    int64_t *labels = NULL, dim, ydim = 0, start, stop;
    mt_status st = get_range(node, &start, &stop);
    if (st == MT_OK) st = rows_matrix(xn, "X", &X, &dim);
    if (st != MT_OK) return st;
    int64_t n = xn->n;
    if (yn && yn->kind != MT_CFG_NULL) {
        bool ints = yn->kind == MT_CFG_LIST && yn->n == n;
        for (int32_t i = 0; ints && i < yn->n; i++)
            ints = yn->items[i]->kind == MT_CFG_INT;
        if (ints) {
            if (!(labels = mt_malloc((size_t)n * sizeof(int64_t)))) {
                st = MT_ERR_NOMEM;
                goto out;
            }
            for (int64_t i = 0; i < n; i++)
                labels[i] = yn->items[i]->i;
        } else {
            if ((st = rows_matrix(yn, "y", &Y, &ydim)) != MT_OK) goto out;
            if (yn->n != n) {
                st = mt_cfg_error(MT_ERR_SHAPE, yn->loc, "'y' has %d rows, 'X' has %lld",
                                  (int)yn->n, (long long)n);
                goto out;
            }
        }
    }
    mt_dataset *d;
    st = mt_dataset_from_memory(&d, "DenseDesignMatrix", n, dim, X, NULL, labels, 0, Y, ydim);
    if (st != MT_OK) {
        st = mt_cfg_error(st, yn ? yn->loc : node->loc, "%s", mt_last_error());
        goto out;
    }
    *out = d;
    if ((st = select_rows(node, d, start, stop)) == MT_OK)
        st = apply_preprocessor(b, node, d, false);
out:
    mt_free(X);
    mt_free(Y);
    mt_free(labels);
    return st;
}

/* ---------------------------------------------------------------- preprocessors */

static const char *const std_aliases[] = {"pylearn2.datasets.preprocessing.Standardize", NULL};
static const mt_cfg_key std_keys[] = {
    {"global_mean", MT_CFG_T_BOOL, false, true, NULL, false, "one mean over all features"},
    {"global_std", MT_CFG_T_BOOL, false, true, NULL, false, "one std over all features"},
    {"std_eps", MT_CFG_T_FLOAT, false, true, NULL, false, "added to the std (default 1e-4)"},
    K_END};

static mt_status build_std(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    bool gm, gs;
    double eps;
    mt_status st = mt_cfg_get_bool(node, "global_mean", false, &gm);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "global_std", false, &gs);
    if (st == MT_OK) st = mt_cfg_get_float(node, "std_eps", 1e-4, &eps);
    (void)b;
    return st != MT_OK ? st : mt_preproc_standardize((mt_preprocessor **)out, gm, gs, eps);
}

static const char *const gcn_aliases[] = {
    "pylearn2.datasets.preprocessing.GlobalContrastNormalization", "GCN", NULL};
static const mt_cfg_key gcn_keys[] = {
    {"subtract_mean", MT_CFG_T_BOOL, false, true, NULL, false, "default true"},
    {"scale", MT_CFG_T_FLOAT, false, true, NULL, false, "default 1"},
    {"sqrt_bias", MT_CFG_T_FLOAT, false, true, NULL, false, "default 0"},
    {"use_std", MT_CFG_T_BOOL, false, true, NULL, false, "divide by the std (default false)"},
    {"min_divisor", MT_CFG_T_FLOAT, false, true, NULL, false, "default 1e-8"},
    {"batch_size", MT_CFG_T_INT, false, true, NULL, false, "accepted and ignored"},
    K_END};

static mt_status build_gcn(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    bool sub, use_std;
    double scale, bias, mind;
    mt_status st = mt_cfg_get_bool(node, "subtract_mean", true, &sub);
    if (st == MT_OK) st = mt_cfg_get_float(node, "scale", 1.0, &scale);
    if (st == MT_OK) st = mt_cfg_get_float(node, "sqrt_bias", 0.0, &bias);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "use_std", false, &use_std);
    if (st == MT_OK) st = mt_cfg_get_float(node, "min_divisor", 1e-8, &mind);
    (void)b;
    return st != MT_OK ? st
                       : mt_preproc_gcn((mt_preprocessor **)out, sub, scale, bias, use_std, mind);
}

static const char *const zca_aliases[] = {"pylearn2.datasets.preprocessing.ZCA", NULL};
static const mt_cfg_key zca_keys[] = {
    {"n_components", MT_CFG_T_INT, false, true, NULL, false, "keep the largest (default all)"},
    {"n_drop_components", MT_CFG_T_INT, false, true, NULL, false, "drop the smallest"},
    {"filter_bias", MT_CFG_T_FLOAT, false, true, NULL, false,
     "added to the eigenvalues (default 0.1)"},
    {"store_inverse", MT_CFG_T_BOOL, false, true, NULL, false, "accepted and ignored"},
    K_END};

static mt_status check_zca(const mt_cfg_node *node)
{
    int64_t k, drop;
    bool s1, s2;
    mt_status st = opt_int(node, "n_components", &k, &s1);
    if (st == MT_OK) st = opt_int(node, "n_drop_components", &drop, &s2);
    if (st != MT_OK) return st;
    if (k < 0 || drop < 0 || (k && drop))
        return mt_cfg_error(MT_ERR_INVALID, node->loc,
                            "ZCA: give n_components or "
                            "n_drop_components, not both (and neither negative)");
    return MT_OK;
}

static mt_status build_zca(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    int64_t k, drop;
    bool set;
    double bias;
    mt_status st = check_zca(node);
    if (st == MT_OK) st = opt_int(node, "n_components", &k, &set);
    if (st == MT_OK) st = opt_int(node, "n_drop_components", &drop, &set);
    if (st == MT_OK) st = mt_cfg_get_float(node, "filter_bias", 0.1, &bias);
    (void)b;
    return st != MT_OK ? st : mt_preproc_zca((mt_preprocessor **)out, k, drop, bias);
}

static const char *const pca_aliases[] = {"pylearn2.datasets.preprocessing.PCA", NULL};
static const mt_cfg_key pca_keys[] = {
    {"num_components", MT_CFG_T_INT, true, true, NULL, false, "components kept (null = all)"},
    {"whiten", MT_CFG_T_BOOL, false, true, NULL, false, "divide by sqrt(eigenvalue)"},
    K_END};

static mt_status build_pca(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    int64_t k;
    bool set, whiten;
    mt_status st = opt_int(node, "num_components", &k, &set);
    if (st == MT_OK) st = mt_cfg_get_bool(node, "whiten", false, &whiten);
    if (st == MT_OK && k < 0)
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "num_components"),
                          "'num_components' must be >= 1, got %lld", (long long)k);
    (void)b;
    return st != MT_OK ? st : mt_preproc_pca((mt_preprocessor **)out, k, whiten);
}

static const char *const pipe_aliases[] = {"pylearn2.datasets.preprocessing.Pipeline", NULL};
static const mt_cfg_key pipe_keys[] = {
    {"items", MT_CFG_T_OBJ_LIST, true, false, "preprocessor", false, "applied in order"}, K_END};

static mt_status build_pipe(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    const mt_cfg_node *items = mt_cfg_get(node, "items");
    int32_t n = items && items->kind == MT_CFG_LIST ? items->n : 0;
    mt_preprocessor **ps = mt_calloc(n ? (size_t)n : 1, sizeof *ps);
    if (!ps) return MT_ERR_NOMEM;
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        void *obj;
        st = mt_cfg_build(b, items->items[i], "preprocessor", &obj, NULL);
        ps[i] = obj;
    }
    /* the items stay owned by the builder (an anchored item may be used elsewhere) */
    if (st == MT_OK) st = mt__preproc_pipeline_borrowed((mt_preprocessor **)out, n, ps);
    mt_free(ps);
    return st;
}

/* ---------------------------------------------------------------- registry */

#define DATASET(nm, al, ks, bld, chk, dc)                                                          \
    {                                                                                              \
        .name = nm, .kind = "dataset", .aliases = al, .keys = ks, .doc = dc, .build = bld,         \
        .destroy = destroy_dataset, .check = chk                                                   \
    }
#define PREPROC(nm, al, ks, bld, chk, dc)                                                          \
    {                                                                                              \
        .name = nm, .kind = "preprocessor", .aliases = al, .keys = ks, .doc = dc, .build = bld,    \
        .destroy = destroy_preproc, .check = chk                                                   \
    }

static const mt_component g_components[] = {
    DATASET("MNIST", mnist_aliases, mnist_keys, build_mnist, check_mnist,
            "MNIST IDX files (raw or .gz), pixels in [0, 1], labels 0..9"),
    DATASET("FashionMNIST", fashion_aliases, fashion_keys, build_fashion, check_mnist,
            "Fashion-MNIST (MNIST format; default folder " MT_FASHION_MNIST_DIR ")"),
    DATASET("IDXDataset", idx_aliases, idx_keys, build_idx, check_dataset_common,
            "any IDX images file (2-4 dims) with an optional labels file"),
    DATASET("CIFAR10", cifar_aliases, cifar_keys, build_cifar, check_cifar,
            "CIFAR-10 binary batches, b01c 32x32x3 in [0, 255]"),
    DATASET("NpyDataset", npy_aliases, npy_keys, build_npy, check_dataset_common,
            "X (and optionally y) from .npy files"),
    DATASET("HDF5Dataset", h5_aliases, h5_keys, build_h5, check_h5,
            "X or topo_view (and optionally y) datasets of an HDF5 file"),
    DATASET("CompositeDataset", NULL, composite_keys, build_composite, check_composite,
            "several sources of the same examples side by side (a CompositeSpace input)"),
    DATASET("DenseDesignMatrix", ddm_aliases, ddm_keys, build_ddm, check_dataset_common,
            "examples written in the YAML file (X rows, y labels or rows)"),
    PREPROC("Standardize", std_aliases, std_keys, build_std, NULL,
            "(x - mean) / (std_eps + std) per feature"),
    PREPROC("GlobalContrastNormalization", gcn_aliases, gcn_keys, build_gcn, NULL,
            "per-example mean removal and contrast scaling"),
    PREPROC("ZCA", zca_aliases, zca_keys, build_zca, check_zca, "ZCA whitening"),
    PREPROC("PCA", pca_aliases, pca_keys, build_pca, NULL,
            "projection onto the leading principal components"),
    PREPROC("Pipeline", pipe_aliases, pipe_keys, build_pipe, NULL, "preprocessors in order"),
};

mt_status mt_data_register_components(struct mt_cfg_registry *r)
{
    if (!r) return mt_err_set(MT_ERR_INVALID, "data_register_components: registry is NULL");
    for (size_t i = 0; i < sizeof g_components / sizeof g_components[0]; i++) {
        mt_status st = mt_cfg_registry_add(r, &g_components[i]);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}
