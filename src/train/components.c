/* The registry of every component a job file may name (mt_train_registry_new) and the Train
 * component itself (Pylearn2's pylearn2.train.Train: dataset, model, algorithm, save_path,
 * save_freq, extensions, allow_overwrite). */
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

mt_status mt__train_register_pkl(mt_cfg_registry *r);

static void train_destroy(void *obj)
{
    mt_train *t = obj;
    if (!t) return;
    mt_free(t->ext);
    mt_free(t->save_path);
    mt_free(t);
}

static mt_status build_extensions(mt_cfg_builder *b, const mt_cfg_node *node, mt_train *t)
{
    const mt_cfg_node *v = mt_cfg_get(node, "extensions");
    if (!v || v->kind == MT_CFG_NULL) return MT_OK;
    int32_t n = v->kind == MT_CFG_LIST ? v->n : 1;
    t->ext = mt_calloc((size_t)(n > 0 ? n : 1), sizeof(*t->ext));
    if (!t->ext) return mt_err_set(MT_ERR_NOMEM, "extensions");
    for (int32_t i = 0; i < n; i++) {
        void *obj = NULL;
        mt_status st = mt_cfg_build(b, v->kind == MT_CFG_LIST ? v->items[i] : v, "extension",
                                    &obj, NULL);
        if (st) return st;
        t->ext[t->n_ext++] = obj;
    }
    return MT_OK;
}

static mt_status default_save_path(mt__build_ctx *ctx, mt_train *t)
{
    const char *job = ctx && ctx->job_path ? ctx->job_path : "mltrain_job.yaml";
    size_t n = strlen(job);
    const char *dot = strrchr(job, '.');
    const char *slash = strrchr(job, '/');
    if (dot && (!slash || dot > slash)) n = (size_t)(dot - job);
    char buf[1024];
    if (ctx && ctx->phase > 0)
        snprintf(buf, sizeof(buf), "%.*s.phase%d.pkl", (int)n, job, (int)ctx->phase);
    else
        snprintf(buf, sizeof(buf), "%.*s.pkl", (int)n, job);
    t->save_path = mt_strdup(buf);
    return t->save_path ? MT_OK : mt_err_set(MT_ERR_NOMEM, "save_path");
}

static mt_status build_train(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt_train *t = mt_calloc(1, sizeof(*t));
    if (!t) return mt_err_set(MT_ERR_NOMEM, "Train");
    t->loc = node->loc;
    void *obj = NULL;
    const char *save_path = NULL;
    mt_status st;
    if ((st = mt_cfg_build(b, mt_cfg_get(node, "dataset"), "dataset", &obj, NULL))) goto fail;
    t->dataset = obj;
    if ((st = mt__build_model(b, node, "model", &obj))) goto fail;
    t->model = obj;
    if ((st = mt__build_opt(b, node, "algorithm", "algorithm", &obj))) goto fail;
    t->alg = obj;
    if (!t->alg) {
        st = mt_cfg_error(MT_ERR_UNSUPPORTED, node->loc,
                          "Train: an algorithm is required (models that train themselves, "
                          "Pylearn2's algorithm: null, are not supported)");
        goto fail;
    }
    if ((st = build_extensions(b, node, t))) goto fail;
    if ((st = mt_cfg_get_string(node, "save_path", NULL, &save_path)) ||
        (st = mt_cfg_get_int(node, "save_freq", 0, &t->save_freq)) ||
        (st = mt_cfg_get_bool(node, "allow_overwrite", true, &t->allow_overwrite)))
        goto fail;
    if (t->save_freq < 0) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "save_freq"),
                          "Train: save_freq must be >= 0");
        goto fail;
    }
    if (save_path) {
        t->save_path = mt_strdup(save_path);
        if (!t->save_path) {
            st = mt_err_set(MT_ERR_NOMEM, "save_path");
            goto fail;
        }
        if (t->save_freq == 0)
            mt_log(MT_LOG_WARN, "%s:%d:%d: save_path given but save_freq is 0: the model is "
                                "saved only on a signal",
                   node->loc.file, (int)node->loc.line, (int)node->loc.col);
    } else if (t->save_freq > 0 && (st = default_save_path(mt_cfg_builder_context(b), t))) {
        goto fail;
    }
    const mt_cfg_node *mn = mt_cfg_get(node, "model");
    if (mn && mn->kind == MT_CFG_OBJ) {
        const mt_cfg_node *bs = mt_cfg_get(mn, "batch_size");
        if (bs && bs->kind == MT_CFG_INT) t->model_batch_size = bs->i;
    }
    *out = t;
    return MT_OK;
fail:
    train_destroy(t);
    return st;
}

static const mt_cfg_key train_keys[] = {
    {"dataset", MT_CFG_T_OBJ, true, false, "dataset", false, "the training data"},
    {"model", MT_CFG_T_OBJ, true, false, "model", true, "the model (or !pkl: path)"},
    {"algorithm", MT_CFG_T_OBJ, false, true, "algorithm", false, "SGD or BGD"},
    {"save_path", MT_CFG_T_STRING, false, true, NULL, false, "checkpoint file"},
    {"save_freq", MT_CFG_T_INT, false, false, NULL, false,
     "save every save_freq epochs and at the end (0: never)"},
    {"extensions", MT_CFG_T_OBJ_OR_LIST, false, true, "extension", false,
     "called after every monitor call"},
    {"allow_overwrite", MT_CFG_T_BOOL, false, false, NULL, false,
     "false: refuse to replace an existing save_path"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const train_aliases[] = {"pylearn2.train.Train", NULL};

static const mt_component train_component = {
    "Train", "train", train_aliases, train_keys, false,
    "an experiment: trains a model on a dataset with an algorithm", build_train, train_destroy,
    NULL};

mt_status mt__train_register_core(mt_cfg_registry *r)
{
    mt_status st = mt_cfg_registry_add(r, &train_component);
    return st ? st : mt__train_register_pkl(r);
}

mt_status mt_train_registry_new(mt_cfg_registry **out)
{
    mt_cfg_registry *r = NULL;
    mt_status st = mt_cfg_registry_new(&r);
    if (st) return st;
    if ((st = mt_data_register_components(r)) || (st = mt_model_register_components(r)) ||
        (st = mt__train_register_core(r)) || (st = mt__train_register_algorithms(r)) ||
        (st = mt__train_register_rules(r)) || (st = mt__train_register_callbacks(r)) ||
        (st = mt__train_register_termination(r)) || (st = mt__train_register_extensions(r))
#ifdef MT__TRAIN_HAVE_TRANSFORMER
        || (st = mt__train_register_transformer_dataset(r))
#endif
    ) {
        mt_cfg_registry_free(r);
        return st;
    }
    *out = r;
    return MT_OK;
}
