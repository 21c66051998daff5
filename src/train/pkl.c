/* Loading saved models in job files: the "!pkl" component (`!pkl: "path"`, also `!ckpt`)
 * reads an mltrain checkpoint, rebuilds the model from its "model_yaml" attribute
 * (mt_model_from_yaml) and loads every "params/<name>" array into it. push_monitor(model,
 * name) keeps the loaded checkpoint's monitor history under `name` (Pylearn2's
 * monitor.push_monitor: the new run starts a fresh monitor, MatchChannel reads the old one);
 * read_channel(model, channel_name, monitor_name) yields the last value of a channel of the
 * loaded model's monitor (to restart with the learning rate or momentum reached earlier). */
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

static mt_status load_params(mt_model *m, const mt_ckpt *c, const char *path)
{
    char k[256];
    for (int32_t i = 0; i < mt_model_n_params(m); i++) {
        mt_model_param *p = mt_model_param_at(m, i);
        snprintf(k, sizeof(k), "params/%s", p->name);
        mt_array src;
        memset(&src, 0, sizeof(src));
        mt_status st = mt_ckpt_get_array(c, k, &src);
        if (st) return mt_err_prefix(st, "%s: ", path);
        bool same = src.ndim == p->value.ndim && src.dtype == p->value.dtype;
        for (int32_t d = 0; same && d < src.ndim; d++) same = src.dims[d] == p->value.dims[d];
        if (!same) {
            char a[96], b[96];
            st = mt_err_set(MT_ERR_SHAPE, "%s: %s is %s %s but the rebuilt model wants %s %s",
                            path, k, mt_dtype_name(src.dtype),
                            mt_shape_str(src.ndim, src.dims, a, sizeof(a)),
                            mt_dtype_name(p->value.dtype),
                            mt_shape_str(p->value.ndim, p->value.dims, b, sizeof(b)));
        } else {
            st = mt_array_copy(&p->value, &src);
        }
        mt_array_clear(&src);
        if (st) return st;
    }
    return MT_OK;
}

static mt_status remember(mt__build_ctx *ctx, mt_model *m, mt_ckpt *c, const char *path)
{
    if (ctx->n_loaded == ctx->cap_loaded) {
        int32_t cap = ctx->cap_loaded ? ctx->cap_loaded * 2 : 4;
        mt__loaded_ckpt *l = mt_realloc(ctx->loaded, (size_t)cap * sizeof(*l));
        if (!l) return mt_err_set(MT_ERR_NOMEM, "loaded checkpoints");
        ctx->loaded = l;
        ctx->cap_loaded = cap;
    }
    mt__loaded_ckpt *l = &ctx->loaded[ctx->n_loaded];
    memset(l, 0, sizeof(*l));
    l->model = m;
    l->ckpt = c;
    l->path = mt_strdup(path);
    if (!l->path) return mt_err_set(MT_ERR_NOMEM, "loaded checkpoints");
    ctx->n_loaded++;
    return MT_OK;
}

static mt_status build_pkl(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__build_ctx *ctx = mt_cfg_builder_context(b);
    const char *raw = node->str ? node->str : "";
    char *path = NULL;
    mt_status st = mt_cfg_expand_user(&path, raw);
    if (st) return st;
    mt_ckpt *c = NULL;
    mt_model *m = NULL;
    mt_cfg_registry *own_reg = NULL;
    st = mt_ckpt_read(&c, path);
    if (st) {
        st = mt_cfg_error(st, node->loc, "!pkl: %s", mt_last_error());
        goto fail;
    }
    const char *yaml = NULL;
    if ((st = mt_ckpt_get_string(c, "model_yaml", &yaml))) {
        st = mt_cfg_error(st, node->loc, "!pkl: %s has no model_yaml attribute (%s)", path,
                          mt_last_error());
        goto fail;
    }
    const mt_cfg_registry *reg = ctx ? ctx->registry : NULL;
    if (!reg) {
        if ((st = mt_train_registry_new(&own_reg))) goto fail;
        reg = own_reg;
    }
    if ((st = mt_model_from_yaml(&m, reg, yaml))) {
        st = mt_cfg_error(st, node->loc, "!pkl: rebuilding the model of %s: %s", path,
                          mt_last_error());
        goto fail;
    }
    if ((st = load_params(m, c, path))) {
        st = mt_cfg_error(st, node->loc, "!pkl: %s", mt_last_error());
        goto fail;
    }
    if (ctx) {
        if ((st = remember(ctx, m, c, path))) goto fail;
        c = NULL;
    }
    mt_ckpt_free(c);
    mt_cfg_registry_free(own_reg);
    mt_free(path);
    *out = m;
    return MT_OK;
fail:
    mt_model_free(m);
    mt_ckpt_free(c);
    mt_cfg_registry_free(own_reg);
    mt_free(path);
    return st;
}

static void model_destroy(void *obj)
{
    mt_model_free(obj);
}

static void no_destroy(void *obj)
{
    (void)obj;
}

static mt_status build_push_monitor(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    void *m = NULL;
    mt_status st = mt__build_model(b, node, "model", &m);
    if (st) return st;
    const char *name = NULL;
    if ((st = mt_cfg_get_string(node, "name", NULL, &name))) return st;
    mt__loaded_ckpt *l = mt__build_ctx_find(mt_cfg_builder_context(b), m);
    if (l) {
        mt_free(l->pushed_name);
        l->pushed_name = mt_strdup(name);
        if (!l->pushed_name) return mt_err_set(MT_ERR_NOMEM, "push_monitor");
    }
    *out = m;
    return MT_OK;
}

static mt_status build_read_channel(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    void *m = NULL;
    mt_status st = mt__build_model(b, node, "model", &m);
    if (st) return st;
    const char *chan = NULL, *mon = NULL;
    if ((st = mt_cfg_get_string(node, "channel_name", NULL, &chan)) ||
        (st = mt_cfg_get_string(node, "monitor_name", "monitor", &mon)))
        return st;
    mt__loaded_ckpt *l = mt__build_ctx_find(mt_cfg_builder_context(b), m);
    if (!l)
        return mt_cfg_error(MT_ERR_INVALID, node->loc,
                            "read_channel: the model was not loaded from a checkpoint (!pkl)");
    const char *file_name = l->pushed_name && !strcmp(mon, l->pushed_name) ? "monitor" : mon;
    const mt_monitor_history *h = mt_ckpt_find_monitor(l->ckpt, file_name);
    const mt_chan_history *ch = NULL;
    for (int32_t i = 0; h && i < h->n; i++)
        if (!strcmp(h->channels[i].name, chan)) ch = &h->channels[i];
    if (!ch || ch->n == 0)
        return mt_cfg_error(MT_ERR_NOT_FOUND, node->loc,
                            "read_channel: %s has no channel '%s' in monitor '%s'", l->path,
                            chan, mon);
    double *v = mt_malloc(sizeof(double));
    if (!v) return mt_err_set(MT_ERR_NOMEM, "read_channel");
    *v = ch->records[ch->n - 1].value;
    *out = v;
    return MT_OK;
}

#define KEND {NULL, 0, false, false, NULL, false, NULL}

static const mt_cfg_key pkl_keys[] = {KEND};
static const mt_cfg_key push_keys[] = {
    {"model", MT_CFG_T_OBJ, true, false, "model", true, "the model (usually !pkl: path)"},
    {"name", MT_CFG_T_STRING, true, false, NULL, false, "name for the old monitor"},
    {"transfer_experience", MT_CFG_T_BOOL, false, false, NULL, false, "accepted (no effect)"},
    {"save_records", MT_CFG_T_BOOL, false, false, NULL, false, "accepted (no effect)"},
    KEND};
static const mt_cfg_key read_keys[] = {
    {"model", MT_CFG_T_OBJ, true, false, "model", true, "a model loaded with !pkl"},
    {"channel_name", MT_CFG_T_STRING, true, false, NULL, false, "channel to read"},
    {"monitor_name", MT_CFG_T_STRING, false, false, NULL, false, "default 'monitor'"},
    KEND};

static const char *const pkl_aliases[] = {"!ckpt", NULL};
static const char *const push_aliases[] = {"pylearn2.monitor.push_monitor", NULL};
static const char *const read_aliases[] = {"pylearn2.monitor.read_channel", NULL};

static const mt_component pkl_components[] = {
    {"!pkl", "pkl|model", pkl_aliases, pkl_keys, false,
     "loads a model saved in an mltrain checkpoint", build_pkl, model_destroy, NULL},
    {"push_monitor", "model", push_aliases, push_keys, false,
     "continues training a loaded model, keeping its monitor under a new name",
     build_push_monitor, no_destroy, NULL},
    {"read_channel", "value", read_aliases, read_keys, false,
     "the last value of a channel of a loaded model's monitor", build_read_channel, mt_free,
     NULL},
};

mt_status mt__train_register_pkl(mt_cfg_registry *r);
mt_status mt__train_register_pkl(mt_cfg_registry *r)
{
    for (size_t i = 0; i < sizeof(pkl_components) / sizeof(pkl_components[0]); i++) {
        mt_status st = mt_cfg_registry_add(r, &pkl_components[i]);
        if (st) return st;
    }
    return MT_OK;
}
