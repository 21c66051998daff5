/* What every training algorithm shares (Pylearn2's TrainingAlgorithm and the monitoring
 * settings of SGD and BGD): parsing the common keys of an algorithm node, the cost the
 * algorithm optimizes, the batch size in use, the per-run state (graph, model graph, cost,
 * iterator, batch arrays) with its setup and teardown, 0-d float32 shared values, and small
 * YAML helpers used by the train module's components (optional sub-components, numbers that
 * may come from read_channel, registering a table of components). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

mt_status mt__build_opt(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                        const char *kind, void **out)
{
    *out = NULL;
    const mt_cfg_node *v = mt_cfg_get(node, key);
    if (!v || v->kind == MT_CFG_NULL) return MT_OK;
    return mt_cfg_build(b, v, kind, out, NULL);
}

mt_status mt__build_model(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                          void **out)
{
    *out = NULL;
    const mt_cfg_node *v = mt_cfg_get(node, key);
    mt_status st = mt_cfg_build(b, v, "model", out, NULL);
    if (st) return st;
    if (mt_model_is_model(*out)) return MT_OK;
    *out = NULL; /* a layer spec: the builder owns and frees it */
    return mt_cfg_error(MT_ERR_INVALID, v ? v->loc : node->loc,
                        "%s: this MLP has layer_name and neither nvis nor input_space, so it is "
                        "a layer of another MLP, not a model (give it nvis or input_space)",
                        key);
}

mt_status mt__get_value(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                        double dflt, double *out)
{
    const mt_cfg_node *v = mt_cfg_get(node, key);
    if (v && v->kind == MT_CFG_OBJ) {
        void *obj = NULL;
        mt_status st = mt_cfg_build(b, v, "value", &obj, NULL);
        if (st) return st;
        *out = *(const double *)obj;
        return MT_OK;
    }
    return mt_cfg_get_float(node, key, dflt, out);
}

static mt_status parse_mode(const mt_cfg_node *node, const char *key, mt_iter_mode dflt,
                            mt_iter_mode *out)
{
    const char *name = NULL;
    mt_status st = mt_cfg_get_string(node, key, NULL, &name);
    if (st) return st;
    if (!name) {
        *out = dflt;
        return MT_OK;
    }
    st = mt_iter_mode_from_name(out, name);
    if (st) return mt_cfg_error(st, mt_cfg_key_loc(node, key), "%s", mt_last_error());
    return MT_OK;
}

static mt_status parse_monitoring(mt_cfg_builder *b, const mt_cfg_node *node,
                                  mt__algo_common *c)
{
    const mt_cfg_node *md = mt_cfg_get(node, "monitoring_dataset");
    if (!md || md->kind == MT_CFG_NULL) return MT_OK;
    int32_t n = md->kind == MT_CFG_MAP ? md->n : 1;
    c->monitoring = mt_calloc((size_t)(n > 0 ? n : 1), sizeof(*c->monitoring));
    if (!c->monitoring) return mt_err_set(MT_ERR_NOMEM, "monitoring datasets");
    for (int32_t i = 0; i < n; i++) {
        const mt_cfg_node *item = md->kind == MT_CFG_MAP ? md->items[i] : md;
        const char *name = md->kind == MT_CFG_MAP ? md->keys[i] : "";
        void *obj = NULL;
        mt_status st = mt_cfg_build(b, item, "dataset", &obj, NULL);
        if (st) return st;
        c->monitoring[i].name = mt_strdup(name);
        c->monitoring[i].data = obj;
        c->n_monitoring = i + 1;
        if (!c->monitoring[i].name) return mt_err_set(MT_ERR_NOMEM, "monitoring dataset name");
    }
    return MT_OK;
}

uint64_t mt__algo_seed_of(const int64_t *v, int32_t n)
{
    uint64_t h = 0x6d6c747261696e31ull; /* "mltrain1" */
    for (int32_t i = 0; i < n; i++) h = mt_hash64_combine(h, (uint64_t)v[i]);
    return h;
}

mt_status mt__algo_common_parse(mt_cfg_builder *b, const mt_cfg_node *node,
                                mt_iter_mode dflt_train_mode, mt__algo_common *c)
{
    memset(c, 0, sizeof(*c));
    c->loc = node->loc;
    void *obj = NULL;
    mt_status st;
    if ((st = mt__build_opt(b, node, "cost", "cost", &obj))) return st;
    c->cost = obj;
    if ((st = mt__build_opt(b, node, "termination_criterion", "termination", &obj))) return st;
    c->termination = obj;
    c->termination_loc = mt_cfg_key_loc(node, "termination_criterion");
    if ((st = mt_cfg_get_int(node, "batch_size", 0, &c->batch_size)) ||
        (st = mt_cfg_get_int(node, "batches_per_iter", 0, &c->batches_per_iter)) ||
        (st = mt_cfg_get_int(node, "monitoring_batches", 0, &c->monitoring_batches)) ||
        (st = mt_cfg_get_int(node, "monitoring_batch_size", 0, &c->monitoring_batch_size)) ||
        (st = mt_cfg_get_bool(node, "set_batch_size", false, &c->set_batch_size)))
        return st;
    const char *neg = c->batch_size < 0 ? "batch_size"
                      : c->batches_per_iter < 0 ? "batches_per_iter"
                      : c->monitoring_batches < 0 ? "monitoring_batches"
                      : c->monitoring_batch_size < 0 ? "monitoring_batch_size"
                                                     : NULL;
    if (neg)
        return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, neg), "'%s' must be positive",
                            neg);
    if ((st = parse_mode(node, "train_iteration_mode", dflt_train_mode,
                         &c->train_iteration_mode)) ||
        (st = parse_mode(node, "monitor_iteration_mode", MT_ITER_SEQUENTIAL,
                         &c->monitor_iteration_mode)))
        return st;
    int64_t seeds[8];
    int32_t ns = 0;
    if (mt_cfg_get(node, "seed") && mt_cfg_get(node, "seed")->kind != MT_CFG_NULL) {
        if ((st = mt_cfg_get_ints(node, "seed", 8, seeds, &ns))) return st;
    } else {
        seeds[0] = 2012, seeds[1] = 10, seeds[2] = 5;
        ns = 3;
    }
    c->seed = mt__algo_seed_of(seeds, ns);
    if ((st = parse_monitoring(b, node, c))) return st;
    if (c->n_monitoring == 0 && (c->monitoring_batches || c->monitoring_batch_size))
        return mt_cfg_error(MT_ERR_INVALID, node->loc,
                            "monitoring_batches / monitoring_batch_size given without a "
                            "monitoring_dataset");
    return MT_OK;
}

void mt__algo_common_clear(mt__algo_common *c)
{
    for (int32_t i = 0; i < c->n_monitoring; i++) mt_free(c->monitoring[i].name);
    mt_free(c->monitoring);
    c->monitoring = NULL;
    c->n_monitoring = 0;
}

mt_status mt__algo_cost_expr(const mt__algo_common *c, mt_model_graph *mg, mt_var *out)
{
    mt_status st;
    if (c->cost) {
        st = mt_cost_expr(c->cost, mg, out);
    } else {
        /* The Default cost object, not mt_model_default_cost(mg, NULL): a
         * DenoisingAutoencoder's default cost reconstructs the corrupted input. */
        mt_cost *dflt = NULL;
        st = mt_cost_default(&dflt);
        if (!st) st = mt_cost_expr(dflt, mg, out);
        mt_cost_free(dflt);
    }
    if (st) return mt_err_prefix(st, "cost: ");
    if (*out == MT_VAR_NONE)
        return mt_err_set(MT_ERR_INVALID, "cost: %s", mt_graph_last_error(mg->g));
    return MT_OK;
}

mt_status mt__algo_batch_size(const mt__algo_common *c, const mt__run *run, int64_t *out)
{
    if (c->batch_size > 0) {
        *out = c->batch_size;
        return MT_OK;
    }
    if (run->train && run->train->model_batch_size > 0) {
        *out = run->train->model_batch_size;
        return MT_OK;
    }
    return mt_cfg_error(MT_ERR_INVALID, c->loc,
                        "no batch_size: give the algorithm a batch_size (or the model one)");
}

mt_status mt__algo_new(void **out, size_t size, const mt__algorithm_ops *ops, mt_cfg_builder *b,
                       const mt_cfg_node *node)
{
    *out = NULL;
    mt__algorithm *a = mt_calloc(1, size);
    if (!a) return mt_err_set(MT_ERR_NOMEM, "%s", ops->name);
    a->ops = ops;
    mt_status st = mt__algo_common_parse(b, node, MT_ITER_SHUFFLED_SEQUENTIAL, &a->c);
    if (st) {
        mt__algo_common_clear(&a->c);
        mt_free(a);
        return st;
    }
    *out = a;
    return MT_OK;
}

void mt__algo_destroy(mt__algorithm *a)
{
    if (a->ops->teardown) a->ops->teardown(a);
    mt__algo_common_clear(&a->c);
}

mt_status mt__algo_state_begin(mt__algo_state *r, const mt__algorithm *a, mt__run *run)
{
    mt_status st = mt__algo_batch_size(&a->c, run, &r->batch_size);
    if (st) return st;
    run->batch_size = r->batch_size;
    if ((st = mt_graph_new(&r->g))) return st;
    if ((st = mt__run_model_graph(run, r->g, &r->mg, &run->data_info))) return st;
    r->mg_init = true;
    return mt__algo_cost_expr(&a->c, &r->mg, &r->cost);
}

mt_status mt__algo_state_iter(mt__algo_state *r, const mt__algorithm *a, const mt__run *run,
                              const char *who)
{
    mt_status st = mt_data_iter_init(&r->it, run->dataset, a->c.train_iteration_mode,
                                     r->batch_size, a->c.batches_per_iter, run->seed);
    if (st) return mt_err_prefix(st, "%s: training iterator: ", who);
    r->it_init = true;
    r->rows = mt_malloc((size_t)r->batch_size * sizeof(int64_t));
    if (!r->rows) return mt_err_set(MT_ERR_NOMEM, "%s batch rows", who);
    return MT_OK;
}

void mt__algo_state_clear(mt__algo_state *r)
{
    if (r->mg_init) mt_model_graph_clear(&r->mg);
    r->mg_init = false;
    mt_graph_free(r->g);
    r->g = NULL;
    if (r->it_init) mt_data_iter_clear(&r->it);
    r->it_init = false;
    mt_free(r->rows);
    r->rows = NULL;
    mt_array_clear(&r->X);
    mt_array_clear(&r->y);
}

mt_status mt__scalar_array_set(mt_array *a, mt_device *dev, double v)
{
    float f = (float)v;
    if (!a->buf) return mt_array_from_host(a, dev, MT_FLOAT32, 0, NULL, &f);
    return mt_array_fill(a, mt_scalar_f64((double)f));
}

mt_status mt__scalar_array_get(const mt_array *a, double *out)
{
    if (a->dtype == MT_FLOAT64) return mt_array_to_host(out, sizeof(double), a);
    float f = 0;
    mt_status st = mt_array_to_host(&f, sizeof(f), a);
    *out = (double)f;
    return st;
}

mt_status mt__register_components(mt_cfg_registry *r, const mt_component *comps, size_t n)
{
    mt_status st = MT_OK;
    for (size_t i = 0; i < n && !st; i++) st = mt_cfg_registry_add(r, &comps[i]);
    return st;
}
