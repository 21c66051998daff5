/* Jobs: loading a job file (templates from --param, ${VAR} with the MLTRAIN_/PYLEARN2_TRAIN_*
 * variables of its path, YAML), validating every phase against the registry before any work,
 * then either a dry run (build, check channel names, summary) or the run of every phase in
 * order with one builder, so that later phases can refer to objects (anchors) and files
 * (!pkl) of earlier ones. The job's hash (file text + template parameters) identifies its
 * checkpoints for --resume=auto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_impl.h"

void mt_train_options_init(mt_train_options *o)
{
    memset(o, 0, sizeof(*o));
    o->device = "host";
    o->max_epochs = -1;
    o->resume = MT_RESUME_NO;
    o->mode = MT_MODE_FAST_RUN;
    o->monitor_log = true;
    o->handle_signals = true;
#ifdef MT__TRAIN_HAVE_PARALLEL
    mt_dp_options_init(&o->dp);
#endif
}

const char *mt__job_text(const mt_job *job)
{
    return job->text ? job->text : "";
}

const char *mt__job_hash(const mt_job *job)
{
    return job->hash;
}

static int cmp_param(const void *a, const void *b)
{
    const mt_cfg_var *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static mt_status job_hash(mt_job *job)
{
    mt_sha256 s;
    mt_sha256_init(&s);
    mt_sha256_update(&s, job->text, strlen(job->text) + 1);
    int32_t n = job->opts.n_params;
    mt_cfg_var *ps = mt_calloc((size_t)n + 1, sizeof(*ps));
    if (!ps) return mt_err_set(MT_ERR_NOMEM, "job hash");
    if (n) memcpy(ps, job->opts.params, (size_t)n * sizeof(*ps));
    qsort(ps, (size_t)n, sizeof(*ps), cmp_param);
    for (int32_t i = 0; i < n; i++) {
        mt_sha256_update(&s, ps[i].name, strlen(ps[i].name) + 1);
        mt_sha256_update(&s, ps[i].value, strlen(ps[i].value) + 1);
    }
    mt_free(ps);
    uint8_t d[32];
    mt_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(job->hash + 2 * i, 3, "%02x", d[i]);
    return MT_OK;
}

static mt_status find_phases(mt_job *job)
{
    const mt_cfg_node *root = job->root;
    if (root && root->kind == MT_CFG_OBJ) {
        job->n_phases = 1;
        job->phases = mt_calloc(1, sizeof(*job->phases));
        if (!job->phases) return mt_err_set(MT_ERR_NOMEM, "phases");
        job->phases[0] = root;
        return MT_OK;
    }
    if (root && root->kind == MT_CFG_LIST && root->n > 0) {
        job->phases = mt_calloc((size_t)root->n, sizeof(*job->phases));
        if (!job->phases) return mt_err_set(MT_ERR_NOMEM, "phases");
        for (int32_t i = 0; i < root->n; i++) job->phases[i] = root->items[i];
        job->n_phases = root->n;
        return MT_OK;
    }
    mt_cfg_loc loc = root ? root->loc : (mt_cfg_loc){job->path, 1, 1};
    return mt_cfg_error(MT_ERR_INVALID, loc,
                        "the document must be a !obj:Train object or a list of them (phases), "
                        "got %s",
                        root ? mt_cfg_kind_name(root->kind) : "nothing");
}

mt_status mt_job_load(mt_job **out, const char *path, const mt_train_options *o)
{
    *out = NULL;
    mt_job *job = mt_calloc(1, sizeof(*job));
    if (!job) return mt_err_set(MT_ERR_NOMEM, "job");
    if (o)
        job->opts = *o;
    else
        mt_train_options_init(&job->opts);
    mt_status st;
    size_t len = 0;
    mt_dtype precision;
    if ((st = mt__precision_dtype(&job->opts, &precision))) goto fail;
    job->path = mt_strdup(path);
    if (!job->path) {
        st = mt_err_set(MT_ERR_NOMEM, "job");
        goto fail;
    }
    if ((st = mt_file_read_all(path, &job->text, &len, 16u << 20))) goto fail;
    job->n_vars = mt_cfg_job_vars(job->vars, 16, path, 0, &job->vars_store);
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.n_params = job->opts.n_params;
    co.params = job->opts.params;
    co.n_vars = job->n_vars;
    co.vars = job->vars;
    co.no_environment = job->opts.no_environment;
    if ((st = mt_cfg_load_file(&job->doc, path, &co))) goto fail;
    job->root = mt_cfg_doc_root(job->doc);
    if ((st = find_phases(job))) goto fail;
    if ((st = mt_train_registry_new(&job->registry))) goto fail;
    for (int32_t i = 0; i < job->n_phases; i++)
        if ((st = mt_cfg_validate(job->registry, job->phases[i], "train"))) goto fail;
    if ((st = job_hash(job))) goto fail;
    *out = job;
    return MT_OK;
fail:
    mt_job_free(job);
    return st;
}

void mt_job_free(mt_job *job)
{
    if (!job) return;
    mt_cfg_doc_free(job->doc);
    mt_cfg_registry_free(job->registry);
    mt_cfg_vars_free(job->vars_store);
    mt_free(job->phases);
    mt_free(job->text);
    mt_free(job->path);
    mt_free(job);
}

int32_t mt_job_n_phases(const mt_job *job)
{
    return job ? job->n_phases : 0;
}

static mt_status run_phases(mt_job *job, bool dry_run, mt_strbuf *summary, mt_train_result *res)
{
    mt_cfg_builder *b = NULL;
    mt_status st = mt_cfg_builder_new(&b, job->registry);
    if (st) return st;
    mt__build_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.registry = job->registry;
    ctx.job_path = job->path;
    ctx.dry_run = dry_run;
    mt_cfg_builder_set_context(b, &ctx);
    for (int32_t i = 0; i < job->n_phases && !st; i++) {
        ctx.phase = job->n_phases > 1 ? i + 1 : 0;
        st = mt__phase_run(job, b, &ctx, i, dry_run, summary, res);
        if (!st) res->phases_run = i + 1;
        if (res->interrupted) break;
    }
    mt_cfg_builder_free(b);
    mt__build_ctx_clear(&ctx);
    return st;
}

/* A run on several ranks reads only each rank's rows (lazy datasets, collective MPI-IO reads
 * for HDF5): the data module's process-wide defaults while the job's datasets are built. */
typedef struct data_defaults {
    bool set;
    mt_data_load load;
} data_defaults;

static void data_defaults_enter(const mt_job *job, data_defaults *d)
{
    d->set = false;
#ifdef MT__TRAIN_HAVE_PARALLEL
    mt_comm *comm = job->opts.comm;
    if (!comm || mt_comm_size(comm) < 2) return;
    d->set = true;
    d->load = mt_data_default_load();
    mt_data_set_default_load(MT_DATA_LOAD_LAZY);
    mt_data_set_mpi_comm(mt_comm_mpi_handle(comm));
#else
    (void)job;
#endif
}

static void data_defaults_leave(const data_defaults *d)
{
    if (!d->set) return;
    mt_data_set_default_load(d->load);
    mt_data_set_mpi_comm(NULL);
}

mt_status mt_job_dry_run(mt_job *job, mt_strbuf *summary)
{
    mt_train_result res;
    memset(&res, 0, sizeof(res));
    mt_strbuf_appendf(summary, "%s: %d phase%s\n", job->path, (int)job->n_phases,
                      job->n_phases == 1 ? "" : "s");
    data_defaults dd;
    data_defaults_enter(job, &dd);
    mt_status st = run_phases(job, true, summary, &res);
    data_defaults_leave(&dd);
    return st;
}

mt_status mt_job_run(mt_job *job, mt_train_result *result)
{
    mt_train_result res;
    memset(&res, 0, sizeof(res));
    double t0 = mt_now_seconds();
    data_defaults dd;
    data_defaults_enter(job, &dd);
    mt_status st = run_phases(job, false, NULL, &res);
    data_defaults_leave(&dd);
    res.seconds = mt_now_seconds() - t0;
    if (result) *result = res;
    return st;
}
