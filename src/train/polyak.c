/* PolyakAveraging(start, save_path = None, save_freq = 1) (Pylearn2's
 * training_algorithms/sgd.py PolyakAveraging and its _PolyakWorker): a running average of the
 * parameters, kept beside them and never fed back into training.
 *
 * on_monitor counts its calls c (0 at the initial monitor call, before any training):
 *   c == start: the average starts: mean = the current parameters, t = 1, and from then on,
 *       after every training batch (Pylearn2 appends the worker to SGD's update_callbacks):
 *           mean <- mean - (mean - param) / t  (float32, on the device),   t <- t + 1
 *       so after k batches mean is the plain average of the parameters after each of them;
 *   c > start, c % save_freq == 0 and save_path given: a checkpoint of the run whose params/
 *       are the averaged values is written to save_path (the parameters being trained are put
 *       back right after).
 * What the monitor and Train's own save_path see are the parameters being trained, as in
 * Pylearn2 (it monitors the average only for models implementing add_polyak_channels, which
 * none of its own models do).
 *
 * The average is one compiled function with no arguments or outputs whose updates are the
 * means' (shared: the run's parameter arrays, the means, a 0-d float32 t set before each call).
 * State in checkpoints, under "extension/<i>/": count, active, t and mean/<parameter name>, so
 * a resumed run continues the average bit-identically. Any algorithm works (it runs at each
 * batch boundary). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

typedef struct polyak {
    mt__extension base;
    int64_t start;
    char *save_path; /* NULL = never saved */
    int64_t save_freq;
    int64_t count;   /* on_monitor calls so far */
    bool active;     /* the average has started (count > start) */
    double t;        /* checkpoints: t of the next update (held on the device meanwhile) */
    /* per run */
    mt__run *run;    /* set by setup, valid until teardown */
    int32_t n;
    mt_array *mean;  /* n averages on the run's device */
    mt_array t_arr;  /* 0-d float32: t of the next update */
    mt_function *fn;
} polyak;

static void pa_teardown(mt__extension *e)
{
    polyak *p = (polyak *)e;
    mt_function_free(p->fn);
    p->fn = NULL;
    for (int32_t i = 0; p->mean && i < p->n; i++) mt_array_clear(&p->mean[i]);
    mt_free(p->mean);
    p->mean = NULL;
    p->n = 0;
    mt_array_clear(&p->t_arr);
    p->active = false;
    p->run = NULL;
}

/* Room for the names made from a parameter name: "polyak_<name>" (graph) and
 * "<prefix>/mean/<name>" (checkpoint keys). */
#define PA_NAME_CAP 512

/* "<prefix>/mean/<name>" (or "mean/<name>" without a prefix) into k: ERR_RANGE naming the
 * parameter when it does not fit, so two parameters never share a key cut short. */
static mt_status mean_key(char *k, size_t cap, const char *prefix, const char *pname)
{
    bool sep = prefix && *prefix;
    int n = snprintf(k, cap, "%s%smean/%s", sep ? prefix : "", sep ? "/" : "", pname);
    if (n < 0 || (size_t)n >= cap)
        return mt_err_set(MT_ERR_RANGE, "PolyakAveraging: the checkpoint key of the average of "
                          "parameter '%s' would be %d bytes long, over the limit of %zu", pname,
                          n, cap - 1);
    return MT_OK;
}

static mt_status pa_setup(mt__extension *e, mt__run *run)
{
    ((polyak *)e)->run = run;
    return MT_OK;
}

/* The averaging function over the run's parameters; means start as copies of them. */
static mt_status compile_average(polyak *p, mt__run *run)
{
    int32_t n = run->n_params;
    mt_graph *g = NULL;
    mt_status st = mt_graph_new(&g);
    if (st) return st;
    mt_var *pv = mt_calloc((size_t)n + 1, sizeof(*pv));
    mt_var *mv = mt_calloc((size_t)n + 1, sizeof(*mv));
    mt_update *ups = mt_calloc((size_t)n + 1, sizeof(*ups));
    p->mean = mt_calloc((size_t)n + 1, sizeof(*p->mean));
    if (!pv || !mv || !ups || !p->mean) {
        st = mt_err_set(MT_ERR_NOMEM, "PolyakAveraging");
        goto done;
    }
    mt_var t = mt_graph_placeholder(g, "polyak_t", MT_FLOAT32, 0, NULL);
    for (int32_t i = 0; i < n && !st; i++) {
        const mt_array *a = &run->params[i];
        const char *pname = mt_model_param_const(run->model, i)->name;
        char name[PA_NAME_CAP];
        int len = snprintf(name, sizeof(name), "polyak_%s", pname);
        if (len < 0 || (size_t)len >= sizeof(name)) {
            st = mt_err_set(MT_ERR_RANGE, "the name of the average of parameter '%s' would be "
                            "%d bytes long, over the limit of %zu", pname, len, sizeof(name) - 1);
            goto done;
        }
        pv[i] = mt_graph_placeholder(g, mt_model_param_const(run->model, i)->name, a->dtype,
                                     a->ndim, a->dims);
        mv[i] = mt_graph_placeholder(g, name, a->dtype, a->ndim, a->dims);
        mt_var delta = mt_graph_div(g, mt_graph_sub(g, mv[i], pv[i]), t);
        ups[i] = (mt_update){mv[i], mt_graph_sub(g, mv[i], delta)};
        if ((st = mt_array_copy_to(&p->mean[i], a, run->dev))) goto done;
        p->n = i + 1;
    }
    if (mt_graph_status(g)) {
        st = mt_err_set(mt_graph_status(g), "PolyakAveraging: %s", mt_graph_last_error(g));
        goto done;
    }
    mt_function_options fo;
    mt_function_options_init(&fo);
    if (run->opts) fo.mode = (mt_mode)run->opts->mode;
    if ((st = mt_function_new(&p->fn, g, 0, NULL, 0, NULL, n, ups, run->dev, &fo))) goto done;
    if ((st = mt__scalar_array_set(&p->t_arr, run->dev, 1.0)) ||
        (st = mt_function_set_shared(p->fn, t, &p->t_arr)))
        goto done;
    for (int32_t i = 0; i < n && !st; i++) {
        st = mt_function_set_shared(p->fn, pv[i], &run->params[i]);
        if (!st) st = mt_function_set_shared(p->fn, mv[i], &p->mean[i]);
    }
done:
    if (st) st = mt_err_prefix(st, "PolyakAveraging: ");
    mt_free(pv);
    mt_free(mv);
    mt_free(ups);
    mt_graph_free(g);
    return st;
}

static mt_status pa_activate(polyak *p, mt__run *run)
{
    if (!run)
        return mt_cfg_error(MT_ERR_INTERNAL, p->base.loc, "PolyakAveraging: no run (setup)");
    p->run = run;
    mt_status st = compile_average(p, run);
    if (st) {
        pa_teardown(&p->base);
        p->run = run;
        return st;
    }
    p->active = true;
    p->t = 1;
    return MT_OK;
}

static mt_status pa_after_batch(mt__extension *e, mt__run *run)
{
    polyak *p = (polyak *)e;
    if (!p->active) return MT_OK;
    mt_status st = mt__scalar_array_set(&p->t_arr, run->dev, p->t);
    if (!st) st = mt_function_call(p->fn, 0, NULL, 0, NULL);
    if (st) return mt_err_prefix(st, "PolyakAveraging: ");
    p->t = (double)(float)(p->t + 1); /* float32, as Pylearn2's shared t */
    return MT_OK;
}

/* Writes the run's checkpoint to save_path with the averages in place of the parameters. */
static mt_status save_averaged(polyak *p, mt__run *run)
{
    if (!mt__run_is_main(run)) return MT_OK; /* rank 0 writes; every rank holds the same */
    mt_array *live = mt_calloc((size_t)p->n + 1, sizeof(*live));
    if (!live) return mt_err_set(MT_ERR_NOMEM, "PolyakAveraging");
    mt_status st = MT_OK;
    int32_t kept = 0;
    for (; kept < p->n && !st; kept++)
        st = mt_array_copy_to(&live[kept], &run->params[kept], run->dev);
    for (int32_t i = 0; i < p->n && !st; i++) st = mt_array_copy(&run->params[i], &p->mean[i]);
    if (!st) {
        mt_log(MT_LOG_INFO, "PolyakAveraging: saving the averaged parameters to %s",
               p->save_path);
        st = mt__run_save(run, p->save_path);
    }
    /* the parameters being trained go back whatever happened */
    for (int32_t i = 0; i < kept && live[i].buf; i++) {
        mt_status s2 = mt_array_copy(&run->params[i], &live[i]);
        if (!st) st = s2;
    }
    for (int32_t i = 0; i < kept; i++) mt_array_clear(&live[i]);
    mt_free(live);
    if (!st) st = mt__run_sync_params(run); /* the model's host copies (other devices) */
    return st ? mt_err_prefix(st, "PolyakAveraging: ") : MT_OK;
}

static mt_status pa_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    polyak *p = (polyak *)e;
    mt_status st = MT_OK;
    if (p->count == p->start)
        st = pa_activate(p, run);
    else if (p->save_path && p->active && p->count > p->start && p->count % p->save_freq == 0)
        st = save_averaged(p, run);
    if (st) return st;
    p->count++;
    return MT_OK;
}

/* The averages (the fields count, active and t are written by the caller). */
static mt_status pa_save(const mt__extension *e, const char *prefix, mt_ckpt *c)
{
    const polyak *p = (const polyak *)e;
    mt_status st = MT_OK;
    for (int32_t i = 0; p->active && i < p->n && !st; i++) {
        char k[PA_NAME_CAP];
        st = mean_key(k, sizeof(k), prefix, mt_model_param_const(p->run->model, i)->name);
        if (!st) st = mt_ckpt_put_array(c, k, &p->mean[i]);
    }
    return st;
}

/* count, active and t were just read: the averages. */
static mt_status pa_load(mt__extension *e, const char *prefix, const mt_ckpt *c)
{
    polyak *p = (polyak *)e;
    if (!p->active) return MT_OK;
    double t = p->t;
    mt_status st = p->fn ? MT_OK : pa_activate(p, p->run);
    p->t = t;
    for (int32_t i = 0; i < p->n && !st; i++) {
        char k[PA_NAME_CAP];
        st = mean_key(k, sizeof(k), prefix, mt_model_param_const(p->run->model, i)->name);
        if (!st) st = mt__ckpt_copy_into(c, k, &p->mean[i]);
    }
    return st;
}

static const mt__ckpt_field pa_fields[] = {MT__FIELD(polyak, count, MT__FIELD_I64, "count"),
                                           MT__FIELD(polyak, active, MT__FIELD_BOOL, "active"),
                                           MT__FIELD(polyak, t, MT__FIELD_F64, "t")};

static const mt__extension_ops pa_ops = {.name = "PolyakAveraging",
                                         .setup = pa_setup,
                                         .on_monitor = pa_on_monitor,
                                         .save_state = pa_save,
                                         .load_state = pa_load,
                                         .teardown = pa_teardown,
                                         .after_batch = pa_after_batch,
                                         .fields = pa_fields,
                                         .n_fields = 3};

static void pa_destroy(void *obj)
{
    polyak *p = obj;
    if (!p) return;
    pa_teardown(&p->base);
    mt_free(p->save_path);
    mt_free(p);
}

static mt_status build_pa(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    polyak *p = mt_calloc(1, sizeof(*p));
    if (!p) return mt_err_set(MT_ERR_NOMEM, "PolyakAveraging");
    p->base.ops = &pa_ops;
    p->base.loc = node->loc;
    const char *path = NULL;
    mt_status st;
    if ((st = mt_cfg_get_int(node, "start", 0, &p->start)) ||
        (st = mt_cfg_get_string(node, "save_path", NULL, &path)) ||
        (st = mt_cfg_get_int(node, "save_freq", 1, &p->save_freq)))
        goto fail;
    if (p->start < 0) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "start"),
                          "PolyakAveraging: start must be >= 0 (got %lld)", (long long)p->start);
        goto fail;
    }
    if (p->save_freq < 1) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "save_freq"),
                          "PolyakAveraging: save_freq must be >= 1 (got %lld)",
                          (long long)p->save_freq);
        goto fail;
    }
    if (path && !(p->save_path = mt_strdup(path))) {
        st = mt_err_set(MT_ERR_NOMEM, "PolyakAveraging");
        goto fail;
    }
    *out = p;
    return MT_OK;
fail:
    pa_destroy(p);
    return st;
}

static const mt_cfg_key pa_keys[] = {
    {"start", MT_CFG_T_INT, true, false, NULL, false,
     "monitor call at which averaging starts (0: before the first epoch)"},
    {"save_path", MT_CFG_T_STRING, false, true, NULL, false,
     "checkpoint holding the averaged parameters"},
    {"save_freq", MT_CFG_T_INT, false, false, NULL, false,
     "write save_path every save_freq monitor calls (1)"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const pa_aliases[] = {"pylearn2.training_algorithms.sgd.PolyakAveraging",
                                         NULL};

static const mt_component pa_component = {
    "PolyakAveraging", "extension", pa_aliases, pa_keys, false,
    "running average of the parameters after every batch from epoch `start`, saved apart",
    build_pa, pa_destroy, NULL};

mt_status mt__train_register_polyak(mt_cfg_registry *r)
{
    return mt_cfg_registry_add(r, &pa_component);
}
