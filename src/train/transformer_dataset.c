/* TransformerDataset (Pylearn2's datasets.transformer_dataset.TransformerDataset): a dataset
 * whose examples are another dataset's examples passed through a trained model, typically the
 * encoder of an autoencoder loaded with `!pkl:` (the stacked-autoencoder tutorial trains layer 2
 * on layer 1's codes). The transform runs once, when the dataset is built, through a compiled
 * function on the host in blocks of rows; the result is an ordinary in-memory dataset with the
 * raw dataset's targets. An autoencoder contributes its hidden code (Pylearn2's `perform` =
 * `encode`); any other model its output. */
#include <stdio.h>
#include <string.h>

#include "mltrain/config.h"
#include "mltrain/data.h"
#include "mltrain/graph.h"
#include "mltrain/jit.h"
#include "mltrain/model.h"
#include "train_impl.h"

#define TRANSFORM_BLOCK_ROWS 1024

/* The variable the transformer contributes: the code of an autoencoder, else the output. */
static mt_status transform_output(mt_model_graph *mg, const mt_model *m, mt_var *out)
{
    int32_t nl = mt_model_n_layers(m);
    if (!strstr(mt_model_type_name(m), "Autoencoder") || nl < 1) return mt_model_fprop(mg, NULL, out);
    mt_var outs[8];
    if (nl > 8) return mt_err_set(MT_ERR_INTERNAL, "TransformerDataset: %d layers", (int)nl);
    mt_status st = mt_model_fprop_layers(mg, NULL, outs);
    if (st) return st;
    *out = outs[0];
    return MT_OK;
}

/* Runs every row of raw through the compiled function f (argument X) into Y [n, k]. */
static mt_status transform_rows(mt_function *f, const mt_dataset *raw, int64_t n, int64_t k,
                                float *Y)
{
    mt_status st = MT_OK;
    mt_array X = {0}, out = {0};
    int64_t *rows = mt_malloc(sizeof(int64_t) * TRANSFORM_BLOCK_ROWS);
    if (!rows) return mt_err_set(MT_ERR_NOMEM, "TransformerDataset: out of memory");
    for (int64_t r0 = 0; r0 < n && !st; r0 += TRANSFORM_BLOCK_ROWS) {
        int64_t nr = n - r0 < TRANSFORM_BLOCK_ROWS ? n - r0 : TRANSFORM_BLOCK_ROWS;
        for (int64_t i = 0; i < nr; i++) rows[i] = r0 + i;
        if ((st = mt_dataset_gather(raw, rows, nr, &X, NULL))) break;
        const mt_array *in[1] = {&X};
        if ((st = mt_function_call(f, 1, in, 1, &out))) break;
        if (mt_array_size(&out) != nr * k) {
            st = mt_err_set(MT_ERR_SHAPE, "TransformerDataset: the transformer gave %lld values "
                            "for %lld rows of %lld features", (long long)mt_array_size(&out),
                            (long long)nr, (long long)k);
        } else {
            st = mt_array_to_host(Y + r0 * k, (size_t)(nr * k) * sizeof(float), &out);
        }
        mt_array_clear(&out);
    }
    mt_array_clear(&X);
    mt_free(rows);
    return st;
}

/* Compiles the transform of model m and applies it to raw, giving a new dataset. */
static mt_status transform_dataset(mt_dataset **out, const mt_dataset *raw, const mt_model *m)
{
    mt_dataset_info info;
    mt_dataset_get_info(raw, &info);
    mt_status st = mt_model_check_data(m, &info);
    if (st) return st;
    mt_graph *g = NULL;
    mt_function *f = NULL;
    float *Y = NULL;
    mt_model_graph mg;
    memset(&mg, 0, sizeof mg);
    if ((st = mt_graph_new(&g))) return st;
    if ((st = mt_model_graph_init(&mg, m, g, NULL, -1, 0))) goto done;
    mt_var y;
    if ((st = transform_output(&mg, m, &y))) goto done;
    const mt_type *t = mt_graph_type(g, y);
    if (!t || t->ndim < 2) {
        st = mt_err_set(MT_ERR_SHAPE, "TransformerDataset: the transformer's output is not a "
                        "batch of vectors");
        goto done;
    }
    int64_t k = 1;
    for (int32_t d = 1; d < t->ndim; d++) k *= t->shape[d];
    if (k <= 0) {
        st = mt_err_set(MT_ERR_SHAPE, "TransformerDataset: the transformer's output size is "
                        "unknown");
        goto done;
    }
    if (t->dtype != MT_FLOAT32) y = mt_graph_cast(g, y, MT_FLOAT32);
    if ((st = mt_function_new(&f, g, 1, &mg.X, 1, &y, 0, NULL, NULL, NULL))) goto done;
    for (int32_t i = 0; i < mg.n_params && !st; i++) {
        if (mt_function_var_type(f, mg.params[i]))
            st = mt_function_set_shared(f, mg.params[i], &mt_model_param_const(m, i)->value);
    }
    if (st) goto done;
    Y = mt_malloc(sizeof(float) * (size_t)(info.n * k) + 1);
    if (!Y) {
        st = mt_err_set(MT_ERR_NOMEM, "TransformerDataset: %lld x %lld floats", (long long)info.n,
                        (long long)k);
        goto done;
    }
    if ((st = transform_rows(f, raw, info.n, k, Y))) goto done;
    char name[160];
    snprintf(name, sizeof name, "TransformerDataset(%s)", info.name ? info.name : "raw");
    st = mt_dataset_from_memory(out, name, info.n, k, Y, NULL, mt_dataset_labels(raw),
                                info.n_classes, mt_dataset_Y(raw), info.y_dim);
done:
    mt_free(Y);
    mt_function_free(f);
    mt_model_graph_clear(&mg);
    mt_graph_free(g);
    return st;
}

static mt_status build_transformer_dataset(mt_cfg_builder *b, const mt_cfg_node *node,
                                           void **out)
{
    void *raw = NULL, *model = NULL;
    mt_status st = mt_cfg_build(b, mt_cfg_get(node, "raw"), "dataset", &raw, NULL);
    if (st) return st;
    if ((st = mt__build_model(b, node, "transformer", &model))) return st;
    mt_dataset *d = NULL;
    if ((st = transform_dataset(&d, raw, model)))
        return mt_cfg_error(st, node->loc, "TransformerDataset: %s", mt_last_error());
    *out = d;
    return MT_OK;
}

static void destroy_dataset(void *obj) { mt_dataset_free(obj); }

static const char *const transformer_aliases[] = {
    "pylearn2.datasets.transformer_dataset.TransformerDataset", NULL};
static const mt_cfg_key transformer_keys[] = {
    {.name = "raw", .type = MT_CFG_T_OBJ, .required = true, .obj_kind = "dataset",
     .doc = "the dataset to transform"},
    {.name = "transformer", .type = MT_CFG_T_OBJ, .required = true, .obj_kind = "model",
     .accepts_pkl = true, .doc = "a trained model (e.g. !pkl: of an autoencoder)"},
    {.name = "space_preserving", .type = MT_CFG_T_BOOL, .doc = "accepted (Pylearn2)"},
    {.name = NULL}};
static const mt_component transformer_component = {
    .name = "TransformerDataset",
    .kind = "dataset",
    .aliases = transformer_aliases,
    .keys = transformer_keys,
    .doc = "another dataset passed through a trained model (an autoencoder's code)",
    .build = build_transformer_dataset,
    .destroy = destroy_dataset,
};

mt_status mt__train_register_transformer_dataset(mt_cfg_registry *r)
{
    return mt_cfg_registry_add(r, &transformer_component);
}
