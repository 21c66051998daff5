/* Checkpoints of a run (io.h's mt_ckpt, HDF5). Layout (docs/training.md):
 *   params/<name>                 parameters (host float32 copies)
 *   optimizer/<name>              learning-rule state (vel_h0_W, mean_square_grad_h0_W, ...)
 *   algorithm/...                 learning_rate, momentum, rng_counter, callback/<i>/...
 *   train/...                     epochs_seen, batches_seen, examples_seen, batch_in_epoch,
 *                                 stage (0 inside an epoch, 1 after an epoch, 2 finished),
 *                                 seconds, phase
 *   termination/..., extension/<i>/..., monitor_state/<i>/rng_counter
 *   monitors "monitor" (+ pushed ones, e.g. "monitor_stage_0")
 *   attributes model_yaml, job_yaml, job_hash, first_weights, first_weights_layout,
 *   input_rows, input_cols, input_channels, format_note.
 * Writing is atomic (mt_ckpt_write); a failed write leaves the previous file. In a
 * data-parallel run rank 0 alone writes (the ranks' states are equal). */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

/* Room for a key made from a parameter name ("params/<name>"); the model bounds layer paths,
 * and so parameter names, far below it. */
#define MT__CKPT_KEY_CAP 512

mt_status mt__ckpt_copy_into(const mt_ckpt *c, const char *name, mt_array *dst)
{
    mt_array src;
    memset(&src, 0, sizeof(src));
    mt_status st = mt_ckpt_get_array(c, name, &src);
    if (st) return st;
    bool same = src.ndim == dst->ndim && src.dtype == dst->dtype;
    for (int32_t i = 0; same && i < src.ndim; i++) same = src.dims[i] == dst->dims[i];
    if (!same) {
        char a[96], b[96];
        st = mt_err_set(MT_ERR_SHAPE, "checkpoint array %s is %s %s, expected %s %s", name,
                        mt_dtype_name(src.dtype), mt_shape_str(src.ndim, src.dims, a, sizeof(a)),
                        mt_dtype_name(dst->dtype),
                        mt_shape_str(dst->ndim, dst->dims, b, sizeof(b)));
    } else {
        st = mt_array_copy(dst, &src);
    }
    mt_array_clear(&src);
    return st;
}

mt_status mt__ckpt_put_fields(mt_ckpt *c, const char *prefix, const void *obj,
                              const mt__ckpt_field *f, int32_t n)
{
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n && !st; i++) {
        char k[256];
        const char *key = mt__path_join(k, sizeof(k), prefix, f[i].name);
        const char *p = (const char *)obj + f[i].offset;
        if (f[i].type == MT__FIELD_F64)
            st = mt_ckpt_put_double(c, key, *(const double *)p);
        else
            st = mt_ckpt_put_int(c, key, f[i].type == MT__FIELD_BOOL ? (int64_t)*(const bool *)p
                                                                     : *(const int64_t *)p);
    }
    return st;
}

mt_status mt__ckpt_get_fields(const mt_ckpt *c, const char *prefix, void *obj,
                              const mt__ckpt_field *f, int32_t n)
{
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n && !st; i++) {
        char k[256];
        const char *key = mt__path_join(k, sizeof(k), prefix, f[i].name);
        char *p = (char *)obj + f[i].offset;
        int64_t v = 0;
        if (f[i].type == MT__FIELD_F64) {
            st = mt_ckpt_get_double(c, key, (double *)p);
        } else if (!(st = mt_ckpt_get_int(c, key, &v))) {
            if (f[i].type == MT__FIELD_BOOL)
                *(bool *)p = v != 0;
            else
                *(int64_t *)p = v;
        }
    }
    return st;
}

mt_status mt__termination_save(const mt__termination *t, const char *prefix, mt_ckpt *c)
{
    mt_status st = mt__ckpt_put_fields(c, prefix, t, t->ops->fields, t->ops->n_fields);
    return st || !t->ops->save_state ? st : t->ops->save_state(t, prefix, c);
}

mt_status mt__termination_load(mt__termination *t, const char *prefix, const mt_ckpt *c)
{
    mt_status st = mt__ckpt_get_fields(c, prefix, t, t->ops->fields, t->ops->n_fields);
    return st || !t->ops->load_state ? st : t->ops->load_state(t, prefix, c);
}

mt_status mt__extension_save(const mt__extension *e, const char *prefix, mt_ckpt *c)
{
    mt_status st = mt__ckpt_put_fields(c, prefix, e, e->ops->fields, e->ops->n_fields);
    return st || !e->ops->save_state ? st : e->ops->save_state(e, prefix, c);
}

mt_status mt__extension_load(mt__extension *e, const char *prefix, const mt_ckpt *c)
{
    mt_status st = mt__ckpt_get_fields(c, prefix, e, e->ops->fields, e->ops->n_fields);
    return st || !e->ops->load_state ? st : e->ops->load_state(e, prefix, c);
}

/* "params/<name>" into k: ERR_RANGE naming the parameter when it does not fit, so two
 * parameters never share a key cut short. */
static mt_status param_key(char *k, size_t cap, const char *pname)
{
    int n = snprintf(k, cap, "params/%s", pname);
    if (n < 0 || (size_t)n >= cap)
        return mt_err_set(MT_ERR_RANGE, "checkpoint: the key of parameter '%s' would be %d bytes "
                          "long, over the limit of %zu", pname, n, cap - 1);
    return MT_OK;
}

mt_status mt__run_save_algorithm(mt__run *run, mt_ckpt *c)
{
    char k[MT__CKPT_KEY_CAP];
    for (int32_t i = 0; i < run->n_params; i++) {
        mt_status st = param_key(k, sizeof(k), mt_model_param_const(run->model, i)->name);
        if (!st) st = mt_ckpt_put_array(c, k, &run->params[i]);
        if (st) return st;
    }
    if (run->alg && run->alg->ops->save_state) return run->alg->ops->save_state(run->alg, run, c);
    return MT_OK;
}

mt_status mt__run_load_algorithm(mt__run *run, const mt_ckpt *c)
{
    char k[MT__CKPT_KEY_CAP];
    for (int32_t i = 0; i < run->n_params; i++) {
        mt_status st = param_key(k, sizeof(k), mt_model_param_const(run->model, i)->name);
        if (!st) st = mt__ckpt_copy_into(c, k, &run->params[i]);
        if (st) return st;
    }
    if (run->alg && run->alg->ops->load_state) return run->alg->ops->load_state(run->alg, run, c);
    return MT_OK;
}

static mt_status put_attributes(mt__run *run, mt_ckpt *c)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_model_to_yaml(run->model, &sb);
    if (!st) st = mt_strbuf_status(&sb);
    if (!st) st = mt_ckpt_put_string(c, "model_yaml", sb.data ? sb.data : "");
    mt_strbuf_deinit(&sb);
    if (st) return mt_err_prefix(st, "model_yaml: ");
    if ((st = mt_ckpt_put_string(c, "job_yaml", mt__job_text(run->job))) ||
        (st = mt_ckpt_put_string(c, "job_hash", mt__job_hash(run->job))) ||
        (st = mt_ckpt_put_string(c, "format_note",
                                 "mltrain checkpoint; layout in docs/training.md")))
        return st;
    if (run->n_params > 0) {
        const mt_model_param *p = mt_model_param_const(run->model, 0);
        char k[MT__CKPT_KEY_CAP];
        if ((st = param_key(k, sizeof(k), p->name)) ||
            (st = mt_ckpt_put_string(c, "first_weights", k)) ||
            (st = mt_ckpt_put_string(c, "first_weights_layout",
                                     p->value.ndim == 4 ? "conv" : "dense")))
            return st;
    }
    int64_t rows = 0, cols = 0, ch = 0;
    if (run->data_info.topo_ndim == 3) {
        rows = run->data_info.topo[0];
        cols = run->data_info.topo[1];
        ch = run->data_info.topo[2];
    } else {
        int64_t s = (int64_t)llround(sqrt((double)run->data_info.dim));
        if (s * s == run->data_info.dim) rows = cols = s, ch = 1;
    }
    if ((st = mt_ckpt_put_int(c, "input_rows", rows)) ||
        (st = mt_ckpt_put_int(c, "input_cols", cols)) ||
        (st = mt_ckpt_put_int(c, "input_channels", ch)))
        return st;
    return MT_OK;
}

static mt_status put_counters(mt__run *run, mt_ckpt *c)
{
    mt_status st;
    if ((st = mt_ckpt_put_int(c, "train/epochs_seen", run->epochs_seen)) ||
        (st = mt_ckpt_put_int(c, "train/batches_seen", run->batches_seen)) ||
        (st = mt_ckpt_put_int(c, "train/examples_seen", run->examples_seen)) ||
        (st = mt_ckpt_put_int(c, "train/batch_in_epoch", run->batch_in_epoch)) ||
        (st = mt_ckpt_put_int(c, "train/stage", run->stage)) ||
        (st = mt_ckpt_put_int(c, "train/ext_continue", run->ext_continue)) ||
        (st = mt_ckpt_put_int(c, "train/phase", run->phase)) ||
        (st = mt_ckpt_put_double(c, "train/seconds", mt__run_seconds(run))) ||
        (st = mt_ckpt_put_double(c, "train/epoch_train_seconds", run->epoch_train_seconds)) ||
        (st = mt_ckpt_put_double(c, "train/epoch_total_seconds", run->epoch_total_seconds)))
        return st;
    return MT_OK;
}

static mt_status get_counters(mt__run *run, const mt_ckpt *c)
{
    mt_status st;
    if ((st = mt_ckpt_get_int(c, "train/epochs_seen", &run->epochs_seen)) ||
        (st = mt_ckpt_get_int(c, "train/batches_seen", &run->batches_seen)) ||
        (st = mt_ckpt_get_int(c, "train/examples_seen", &run->examples_seen)) ||
        (st = mt_ckpt_get_int(c, "train/batch_in_epoch", &run->batch_in_epoch)) ||
        (st = mt_ckpt_get_int(c, "train/stage", &run->stage)) ||
        (st = mt_ckpt_get_double(c, "train/seconds", &run->seconds_offset)) ||
        (st = mt_ckpt_get_double(c, "train/epoch_train_seconds", &run->epoch_train_seconds)) ||
        (st = mt_ckpt_get_double(c, "train/epoch_total_seconds", &run->epoch_total_seconds)))
        return st;
    int64_t ec = 1;
    if ((st = mt_ckpt_get_int(c, "train/ext_continue", &ec))) return st;
    run->ext_continue = ec != 0;
    run->session_start = mt_now_seconds();
    return MT_OK;
}

mt_status mt__run_build_ckpt(mt__run *run, mt_ckpt **out)
{
    mt_ckpt *c = NULL;
    mt_status st = mt_ckpt_new(&c);
    if (st) return st;
    if ((st = mt__run_sync_params(run)) || (st = mt__run_save_algorithm(run, c)) ||
        (st = put_counters(run, c)) || (st = put_attributes(run, c)))
        goto fail;
    mt__termination *t = run->alg ? run->alg->c.termination : NULL;
    if (t && (st = mt__termination_save(t, "termination", c))) goto fail;
    for (int32_t i = 0; i < run->train->n_ext; i++) {
        mt__extension *e = run->train->ext[i];
        char k[64];
        snprintf(k, sizeof(k), "extension/%d", (int)i);
        if ((st = mt__extension_save(e, k, c))) goto fail;
    }
    if ((st = mt__monitor_save_state(run->monitor, c))) goto fail;
    if ((st = mt_ckpt_put_monitor(c, &run->history))) goto fail;
    for (int32_t i = 0; i < run->n_old_monitors; i++)
        if ((st = mt_ckpt_put_monitor(c, &run->old_monitors[i]))) goto fail;
    *out = c;
    return MT_OK;
fail:
    mt_ckpt_free(c);
    return st;
}

mt_status mt__run_load_ckpt(mt__run *run, const mt_ckpt *c)
{
    mt_status st;
    if ((st = mt__run_load_algorithm(run, c)) || (st = get_counters(run, c))) return st;
    mt__termination *t = run->alg ? run->alg->c.termination : NULL;
    if (t && (st = mt__termination_load(t, "termination", c))) return st;
    for (int32_t i = 0; i < run->train->n_ext; i++) {
        mt__extension *e = run->train->ext[i];
        char k[64];
        snprintf(k, sizeof(k), "extension/%d", (int)i);
        if ((st = mt__extension_load(e, k, c))) return st;
    }
    if ((st = mt__monitor_load_state(run->monitor, c))) return st;
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    if (h) {
        mt_monitor_history_clear(&run->history);
        st = mt_monitor_history_copy(&run->history, h); /* initializes run->history */
        if (st) {
            mt_monitor_history_init(&run->history, "monitor"); /* a valid empty history */
            return st;
        }
    }
    /* The latest record becomes the current channel values. */
    mt__chanvals_clear(&run->last);
    for (int32_t i = 0; i < run->history.n; i++) {
        const mt_chan_history *ch = &run->history.channels[i];
        if (ch->n > 0 && (st = mt__chanvals_set(&run->last, ch->name, ch->records[ch->n - 1].value)))
            return st;
    }
    return MT_OK;
}

static mt_status ensure_parent_dir(const char *path)
{
    char *copy = mt_strdup(path);
    if (!copy) return mt_err_set(MT_ERR_NOMEM, "path");
    char *dir = dirname(copy);
    mt_status st = (strcmp(dir, ".") && strcmp(dir, "/")) ? mt_mkdirs(dir, 0755) : MT_OK;
    mt_free(copy);
    return st;
}

mt_status mt__run_save(mt__run *run, const char *path)
{
    if (!path) return MT_OK;
    /* A parallel run's ranks hold the same state: rank 0 alone writes, every rank reads. */
    if (!mt__run_is_main(run)) {
        if (run->train->save_path && !strcmp(path, run->train->save_path)) run->saved_once = true;
        return MT_OK;
    }
    bool is_main = run->train->save_path && !strcmp(path, run->train->save_path);
    if (is_main && !run->saved_once && !run->train->allow_overwrite) {
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return mt_cfg_error(MT_ERR_IO, run->train->loc,
                                "Train: refusing to overwrite %s (allow_overwrite is false)",
                                path);
        }
    }
    mt_ckpt *c = NULL;
    mt_status st = mt__run_build_ckpt(run, &c);
    if (!st) st = ensure_parent_dir(path);
    if (!st) st = mt_ckpt_write(c, path);
    mt_ckpt_free(c);
    if (st) return mt_err_prefix(st, "saving checkpoint %s: ", path);
    if (is_main) run->saved_once = true;
    return MT_OK;
}
