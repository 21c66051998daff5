/* The Train main loop (Pylearn2's Train.main_loop), one phase at a time:
 *   setup: extensions (before the dataset's shape is read: WindowAndFlip crops datasets),
 *   algorithm (compiles its functions), monitor (one function per monitoring dataset), then
 *   the model's norm constraints applied to the initial parameters (Pylearn2's
 *   enforce_constraints); on resume the checkpoint's state instead.
 *   monitor once (the epoch-0 record) and every extension's on_monitor; then
 *   loop: train one epoch -> epochs_seen += 1 -> monitor -> on_monitor -> save every
 *   save_freq epochs -> continue = algorithm.continue_learning and every extension said
 *   continue (and epochs_seen < --max-epochs); final save when save_freq > 0.
 * Signals: SIGTERM / SIGINT set a flag; the algorithm notices it at the next batch boundary
 * (mt__run_after_batch), the loop writes the checkpoint (the position inside the epoch
 * included) and returns with result->interrupted set. SIGUSR1 writes a checkpoint and goes on.
 * The only mutable global of the module is the handler's pointer to the current signal
 * state (a signal handler cannot receive a context).
 * Data-parallel runs (parallel_run.c): parameters and optimizer state are broadcast from rank
 * 0 after setup or resume; a signal on any rank is agreed on at the next step boundary so all
 * ranks stop (or checkpoint) together; rank 0 alone writes checkpoints and monitor logs; rank
 * 0's verdict to continue is broadcast; a barrier ends the phase so no rank leaves before the
 * last checkpoint is on disk. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_impl.h"

/* ---------------------------------------------------------------- signals */

static mt__signal_state *volatile g_signal_state;

static void on_signal(int signo)
{
    mt__signal_state *s = g_signal_state;
    if (!s) return;
    if ((signo == SIGINT || signo == SIGTERM) &&
        (s->pending == SIGINT || s->pending == SIGTERM))
        signal(signo, SIG_DFL); /* a third one kills */
    s->pending = signo;
}

typedef struct saved_handlers {
    struct sigaction term, intr, usr1;
    bool installed;
} saved_handlers;

static void install_signals(mt__signal_state *s, saved_handlers *sv, bool handle)
{
    memset(sv, 0, sizeof(*sv));
    s->pending = 0;
    s->test_after_batches = -1;
    s->test_at_monitor = -1;
    s->test_at_decide = -1;
    s->test_signal = SIGTERM;
    const char *t = getenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES"), *m;
    if ((m = getenv("MLTRAIN_TEST_SIGNAL_AT_MONITOR")) && *m) {
        s->test_at_monitor = strtoll(m, NULL, 10);
        t = m;
    } else if ((m = getenv("MLTRAIN_TEST_SIGNAL_AT_DECIDE")) && *m) {
        s->test_at_decide = strtoll(m, NULL, 10);
        t = m;
    } else if (t && *t) {
        s->test_after_batches = strtoll(t, NULL, 10);
    }
    if (t && *t) {
        const char *c = strchr(t, ':');
        if (c) {
            if (!strcmp(c + 1, "INT")) s->test_signal = SIGINT;
            if (!strcmp(c + 1, "USR1")) s->test_signal = SIGUSR1;
            if (!strcmp(c + 1, "KILL")) s->test_signal = SIGKILL;
        }
    }
    s->test_rank = -1;
    s->stall_rank = -1;
    s->stall_after_batches = -1;
    if ((t = getenv("MLTRAIN_TEST_SIGNAL_RANK")) && *t) s->test_rank = (int32_t)strtol(t, NULL, 10);
    const char *stall_rank = getenv("MLTRAIN_TEST_STALL_RANK");
    const char *stall_after = getenv("MLTRAIN_TEST_STALL_AFTER_BATCHES");
    if (stall_rank && *stall_rank && stall_after && *stall_after) {
        s->stall_rank = (int32_t)strtol(stall_rank, NULL, 10);
        s->stall_after_batches = strtoll(stall_after, NULL, 10);
    }
    if (!handle) return;
    g_signal_state = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &sv->term);
    sigaction(SIGINT, &sa, &sv->intr);
    sigaction(SIGUSR1, &sa, &sv->usr1);
    sv->installed = true;
}

static void restore_signals(saved_handlers *sv)
{
    if (!sv->installed) return;
    sigaction(SIGTERM, &sv->term, NULL);
    sigaction(SIGINT, &sv->intr, NULL);
    sigaction(SIGUSR1, &sv->usr1, NULL);
    g_signal_state = NULL;
}

/* ---------------------------------------------------------------- run setup */

static mt_status path_stem(const char *path, char *buf, size_t cap)
{
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) n = (size_t)(dot - path);
    if (n + 1 > cap) return mt_err_set(MT_ERR_RANGE, "path too long: %s", path);
    memcpy(buf, path, n);
    buf[n] = 0;
    return MT_OK;
}

static mt_status run_paths(mt__run *run, mt_job *job)
{
    char buf[1024];
    mt_status st;
    if (job->opts.run_dir) {
        snprintf(buf, sizeof(buf), "%s", job->opts.run_dir);
    } else {
        if ((st = path_stem(job->path, buf, sizeof(buf) - 8))) return st;
        strcat(buf, ".run");
    }
    if (job->n_phases > 1) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof(buf) - l, "/phase%d", (int)run->phase + 1);
    }
    run->run_dir = mt_strdup(buf);
    if (run->train->save_path)
        snprintf(buf, sizeof(buf), "%s", run->train->save_path);
    else
        snprintf(buf, sizeof(buf), "%s/resume.ckpt", run->run_dir);
    run->ckpt_path = mt_strdup(buf);
    if (!run->run_dir || !run->ckpt_path) return mt_err_set(MT_ERR_NOMEM, "run paths");
    return MT_OK;
}

static mt_status run_params(mt__run *run)
{
    run->n_params = mt_model_n_params(run->model);
    run->params = mt_calloc((size_t)run->n_params + 1, sizeof(*run->params));
    if (!run->params) return mt_err_set(MT_ERR_NOMEM, "parameters");
    bool host = !strcmp(mt_device_name(run->dev), "host");
    for (int32_t i = 0; i < run->n_params; i++) {
        mt_model_param *p = mt_model_param_at(run->model, i);
        if (host) {
            mt_array_view(&run->params[i], &p->value);
        } else {
            mt_status st = mt_array_copy_to(&run->params[i], &p->value, run->dev);
            if (st) return mt_err_prefix(st, "parameter %s to %s: ", p->name,
                                         mt_device_name(run->dev));
        }
    }
    return MT_OK;
}

static mt_status old_monitors(mt__run *run, mt__build_ctx *ctx)
{
    mt__loaded_ckpt *l = mt__build_ctx_find(ctx, run->model);
    if (!l) return MT_OK;
    int32_t n = mt_ckpt_n_monitors(l->ckpt);
    run->old_monitors = mt_calloc((size_t)n + 1, sizeof(*run->old_monitors));
    if (!run->old_monitors) return mt_err_set(MT_ERR_NOMEM, "monitors");
    for (int32_t i = 0; i < n; i++) {
        const mt_monitor_history *h = mt_ckpt_monitor(l->ckpt, i);
        const char *name = h->name;
        if (!strcmp(name, "monitor")) {
            if (!l->pushed_name) continue; /* without push_monitor the old record is dropped */
            name = l->pushed_name;
        }
        mt_monitor_history *dst = &run->old_monitors[run->n_old_monitors];
        mt_status st = mt_monitor_history_copy(dst, h); /* initializes dst */
        if (st) return st;
        run->n_old_monitors++;
        mt_free(dst->name);
        dst->name = mt_strdup(name);
        if (!dst->name) return mt_err_set(MT_ERR_NOMEM, "monitor name");
    }
    return MT_OK;
}

static mt_status run_init(mt__run *run, mt_job *job, mt__build_ctx *ctx, int32_t phase,
                          mt_train *t, bool dry_run)
{
    run->opts = &job->opts;
    run->job = job;
    run->phase = phase;
    run->train = t;
    run->model = t->model;
    run->dataset = t->dataset;
    run->alg = t->alg;
    run->dry_run = dry_run;
    run->registry = job->registry;
    run->ext_continue = true;
    run->max_epochs = mt__termination_max_epochs(t->alg->c.termination);
    if (job->opts.max_epochs >= 0 && (run->max_epochs < 0 || job->opts.max_epochs < run->max_epochs))
        run->max_epochs = job->opts.max_epochs;
    run->seed = job->opts.has_seed ? job->opts.seed : t->alg->c.seed;
    run->progress = job->opts.progress;
    run->progress_user = job->opts.progress_user;
    run->session_start = mt_now_seconds();
    run->rate_time = run->session_start;
    mt_monitor_history_init(&run->history, "monitor");
    mt_status st = mt__run_open_device(run, job->opts.device);
    if (st) return st;
    if ((st = run_params(run)) || (st = run_paths(run, job)) || (st = old_monitors(run, ctx)))
        return st;
    /* Pylearn2's Train.setup: the extensions first (WindowAndFlip crops the datasets). */
    for (int32_t i = 0; i < t->n_ext; i++) {
        mt__extension *e = t->ext[i];
        if (e->ops->setup && (st = e->ops->setup(e, run))) return st;
    }
    mt_dataset_get_info(run->dataset, &run->data_info);
    if ((st = mt_model_check_data(run->model, &run->data_info)))
        return mt_cfg_error(st, t->loc, "Train: the dataset does not fit the model: %s",
                            mt_last_error());
    if ((st = mt__run_dp_init(run))) return st;
    if (!mt__run_is_main(run)) run->progress = NULL; /* rank 0 reports for the job */
    return MT_OK;
}

static void run_clear(mt__run *run)
{
    if (run->alg && run->alg->ops->teardown) run->alg->ops->teardown(run->alg);
    for (int32_t i = 0; run->train && i < run->train->n_ext; i++)
        if (run->train->ext[i]->ops->teardown) run->train->ext[i]->ops->teardown(run->train->ext[i]);
    mt__monitor_free(run->monitor);
    mt_monitor_log_close(run->log);
    for (int32_t i = 0; i < run->n_params; i++) mt_array_clear(&run->params[i]);
    mt_free(run->params);
    mt_monitor_history_clear(&run->history);
    for (int32_t i = 0; i < run->n_old_monitors; i++) mt_monitor_history_clear(&run->old_monitors[i]);
    mt_free(run->old_monitors);
    mt__chanvals_clear(&run->last);
    mt_ckpt_free(run->epoch_snapshot);
    mt__run_dp_clear(run);
    mt_device_release(run->dev);
    mt_free(run->ckpt_path);
    mt_free(run->run_dir);
    memset(run, 0, sizeof(*run));
}

/* Pylearn2's model.enforce_constraints(): the norm constraints on the initial parameters. */
static mt_status enforce_constraints(mt__run *run)
{
    bool any = false;
    for (int32_t i = 0; i < run->n_params; i++)
        any |= mt_model_param_const(run->model, i)->constraint != MT_NORM_NONE;
    if (!any) return MT_OK;
    mt_graph *g = NULL;
    mt_model_graph mg;
    mt_function *f = NULL;
    mt_var *values = NULL;
    mt_update *ups = NULL;
    mt_status st = mt_graph_new(&g);
    if (st) return st;
    if ((st = mt__run_model_graph(run, g, &mg, &run->data_info))) goto done_graph;
    values = mt_calloc((size_t)mg.n_params + 1, sizeof(*values));
    ups = mt_calloc((size_t)mg.n_params + 1, sizeof(*ups));
    if (!values || !ups) {
        st = mt_err_set(MT_ERR_NOMEM, "constraints");
        goto done;
    }
    for (int32_t i = 0; i < mg.n_params; i++) values[i] = mg.params[i];
    if ((st = mt_model_constrain(&mg, values))) goto done;
    int32_t n = 0;
    for (int32_t i = 0; i < mg.n_params; i++)
        if (values[i] != mg.params[i]) ups[n++] = (mt_update){mg.params[i], values[i]};
    if (n == 0) goto done;
    if ((st = mt_function_new(&f, g, 0, NULL, 0, NULL, n, ups, run->dev, NULL))) goto done;
    if ((st = mt__run_bind_params(run, f, &mg))) goto done;
    st = mt_function_call(f, 0, NULL, 0, NULL);
done:
    if (st) st = mt_err_prefix(st, "applying the norm constraints to the initial parameters: ");
    mt_function_free(f);
    mt_free(values);
    mt_free(ups);
    mt_model_graph_clear(&mg);
done_graph:
    mt_graph_free(g);
    return st;
}

/* ---------------------------------------------------------------- logs */

static void remove_old_events(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[2048];
    size_t n;
    while ((e = readdir(d)))
        /* the monitor's own event files; a sweep's HParams records (*.mltrain-hparams) stay */
        if (!strncmp(e->d_name, "events.out.tfevents.", 20) &&
            !((n = strlen(e->d_name)) >= 16 && !strcmp(e->d_name + n - 16, ".mltrain-hparams"))) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

/* Opens the monitor log, rewriting it from the history (a resumed run's log then holds
 * exactly the records of its checkpoint, whatever the killed session had written). */
static mt_status open_log(mt__run *run)
{
    if (!run->opts->monitor_log || !mt__run_is_main(run)) return MT_OK;
    mt_status st = mt_mkdirs(run->run_dir, 0755);
    if (st) return st;
    remove_old_events(run->run_dir);
    mt_monitor_log_options lo;
    mt_monitor_log_options_init(&lo);
    lo.append = false;
    if ((st = mt_monitor_log_open(&run->log, run->run_dir, &lo))) return st;
    const mt_monitor_history *h = &run->history;
    int32_t n_rec = 0;
    for (int32_t i = 0; i < h->n; i++)
        if (h->channels[i].n > n_rec) n_rec = h->channels[i].n;
    const char **names = mt_calloc((size_t)h->n + 1, sizeof(*names));
    double *vals = mt_calloc((size_t)h->n + 1, sizeof(*vals));
    if (!names || !vals) st = mt_err_set(MT_ERR_NOMEM, "monitor log");
    for (int32_t r = 0; r < n_rec && !st; r++) {
        int32_t k = 0;
        const mt_chan_record *any = NULL;
        for (int32_t i = 0; i < h->n; i++) {
            const mt_chan_history *c = &h->channels[i];
            if (r >= c->n) continue;
            names[k] = c->name;
            vals[k++] = c->records[r].value;
            any = &c->records[r];
        }
        if (any)
            st = mt_monitor_log_write(run->log, any->epoch, any->batches, any->examples,
                                      any->seconds, k, names, vals);
    }
    mt_free(names);
    mt_free(vals);
    return st;
}

/* ---------------------------------------------------------------- resume */

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Reads the run's checkpoint when the resume mode asks for it: *out NULL = start fresh. */
static mt_status find_resume(mt__run *run, mt_ckpt **out)
{
    *out = NULL;
    mt_resume_mode mode = run->opts->resume;
    if (mode == MT_RESUME_NO) return MT_OK;
    bool exists = file_exists(run->ckpt_path);
    if (mt__run_size(run) > 1) {
        /* Every rank reads the checkpoint rank 0 wrote: they must all see it, or none. */
        double seen = exists;
        mt_status st = mt__run_dp_sum(run, 1, &seen);
        if (st) return st;
        if (seen != 0 && seen != mt__run_size(run))
            return mt_err_set(MT_ERR_IO,
                              "--resume: %s is visible on %d of the %d ranks (rank %d %s it): "
                              "checkpoints need a file system shared by every rank",
                              run->ckpt_path, (int)seen, (int)mt__run_size(run),
                              (int)mt__run_rank(run), exists ? "sees" : "does not see");
    }
    if (!exists) {
        if (mode == MT_RESUME_YES)
            return mt_err_set(MT_ERR_NOT_FOUND, "--resume: no checkpoint %s to resume from",
                              run->ckpt_path);
        return MT_OK;
    }
    mt_ckpt *c = NULL;
    mt_status st = mt_ckpt_read(&c, run->ckpt_path);
    if (st) return mt_err_prefix(st, "--resume: ");
    const char *hash = NULL;
    int64_t phase = -1;
    bool same = !mt_ckpt_get_string(c, "job_hash", &hash) && !strcmp(hash, mt__job_hash(run->job)) &&
                !mt_ckpt_get_int(c, "train/phase", &phase) && phase == run->phase;
    mt_err_clear();
    if (!same) {
        mt_ckpt_free(c);
        if (mode == MT_RESUME_YES)
            return mt_err_set(MT_ERR_INVALID,
                              "--resume: %s was written by another job (or another phase, "
                              "or other --param values); use --resume=no to start over",
                              run->ckpt_path);
        if (mt__run_is_main(run))
            mt_log(MT_LOG_WARN, "%s belongs to another job: starting from scratch (it will be "
                                "overwritten)",
                   run->ckpt_path);
        return MT_OK;
    }
    *out = c;
    return MT_OK;
}

/* ---------------------------------------------------------------- the loop */

static mt_status monitor_and_extensions(mt__run *run)
{
    mt_status st = mt__monitor_run(run->monitor, run);
    if (st) return st;
    run->ext_continue = true;
    for (int32_t i = 0; i < run->train->n_ext; i++) {
        mt__extension *e = run->train->ext[i];
        bool cont = true;
        if (e->ops->on_monitor && (st = e->ops->on_monitor(e, run, &cont))) return st;
        if (!cont) run->ext_continue = false;
    }
    if (run->opts->on_monitor && mt__run_is_main(run)) {
        mt_train_monitor_report r;
        memset(&r, 0, sizeof(r));
        r.phase = run->phase;
        r.n_phases = run->job ? run->job->n_phases : 1;
        r.epoch = run->epochs_seen;
        r.n_channels = run->last.n;
        r.channel_names = (const char *const *)run->last.names;
        r.channel_values = run->last.values;
        r.seconds = mt__run_seconds(run);
        r.resumed = run->resumed;
        bool stop = false;
        if ((st = run->opts->on_monitor(&r, run->opts->on_monitor_user, &stop))) return st;
        if (stop) {
            run->callback_stopped = true;
            run->ext_continue = false; /* decide() gives rank 0's verdict to every rank */
        }
    }
    if (run->progress) {
        mt_train_progress p;
        memset(&p, 0, sizeof(p));
        p.phase = run->phase;
        p.n_phases = run->job ? run->job->n_phases : 1;
        p.epoch = run->epochs_seen;
        p.max_epochs = run->max_epochs;
        p.batch = p.n_batches = run->batches_this_epoch;
        p.samples_per_s = run->progress_rate;
        p.eta_s = -1;
        p.is_monitor = true;
        p.n_channels = run->last.n;
        p.channel_names = (const char *const *)run->last.names;
        p.channel_values = run->last.values;
        run->progress(&p, run->progress_user);
    }
    return MT_OK;
}

static mt_status decide(mt__run *run, bool *cont)
{
    bool c = true;
    mt__algorithm *a = run->alg;
    mt_status st = MT_OK;
    if (a->ops->continue_learning)
        st = a->ops->continue_learning(a, run, &c);
    else if (a->c.termination)
        st = a->c.termination->ops->continue_learning(a->c.termination, run, &c);
    if (st) return st;
    c = c && run->ext_continue;
    if (run->opts->max_epochs >= 0 && run->epochs_seen >= run->opts->max_epochs) c = false;
    if (mt__run_size(run) > 1) {
        /* The ranks' channels are equal, so are their verdicts; rank 0's is taken anyway. */
        double v = c;
        if ((st = mt__run_dp_bcast(run, 1, &v))) return st;
        c = v != 0;
    }
    *cont = c;
    return MT_OK;
}

/* A signal that arrived outside the batches (monitoring, saving). */
static mt_status pending_signal(mt__run *run, bool *stop)
{
    *stop = false;
    int p = 0;
    if (mt__run_size(run) > 1) { /* every rank acts on the signals any rank received */
        mt_status st = mt__run_dp_step_end(run, NULL);
        if (st) return st;
        p = run->agreed_signal;
        run->agreed_signal = 0;
        run->signal_agreed = false;
    } else if (run->sig) {
        p = run->sig->pending;
        run->sig->pending = 0;
    }
    if (!p) return MT_OK;
    mt_status st = mt__run_save(run, run->ckpt_path);
    if (st) return st;
    if (p == SIGUSR1) return MT_OK;
    run->stop_signal = p;
    *stop = true;
    return MT_OK;
}

static mt_status train_one_epoch(mt__run *run, bool *finished)
{
    run->stage = 0;
    mt_ckpt_free(run->epoch_snapshot);
    run->epoch_snapshot = NULL;
    mt_status st = mt_ckpt_new(&run->epoch_snapshot);
    if (!st) st = mt__run_save_algorithm(run, run->epoch_snapshot);
    if (st) return st;
    double t0 = mt_now_seconds();
    run->rate_time = t0;
    run->rate_examples = run->examples_seen;
    st = run->alg->ops->train_epoch(run->alg, run, finished);
    run->epoch_train_seconds = mt_now_seconds() - t0;
    return st;
}

static mt_status epoch_loop(mt__run *run, bool resume_decide, mt_train_result *res)
{
    mt_train *t = run->train;
    bool skip_train = resume_decide;
    for (;;) {
        double loop_start = mt_now_seconds();
        if (!skip_train) {
            bool finished = false;
            mt_status st = train_one_epoch(run, &finished);
            if (st) return st;
            if (!finished) {
                run->stage = 0;
                if ((st = mt__run_save(run, run->ckpt_path))) return st;
                res->interrupted = run->stop_signal;
                if (mt__run_is_main(run))
                    mt_log(MT_LOG_WARN, "signal %d: checkpoint %s written at epoch %lld, batch "
                                        "%lld",
                           run->stop_signal, run->ckpt_path, (long long)run->epochs_seen + 1,
                           (long long)run->batch_in_epoch);
                return MT_OK;
            }
            run->epochs_seen++;
            run->batch_in_epoch = 0;
            run->stage = 1;
            if ((st = monitor_and_extensions(run))) return st;
            if (run->sig && run->sig->test_at_monitor == run->epochs_seen &&
                (run->sig->test_rank < 0 || run->sig->test_rank == mt__run_rank(run))) {
                run->sig->test_at_monitor = -1;
                raise(run->sig->test_signal);
            }
            if (t->save_freq > 0 && run->epochs_seen % t->save_freq == 0 &&
                (st = mt__run_save(run, t->save_path)))
                return st;
            run->epoch_total_seconds = mt_now_seconds() - loop_start;
        }
        skip_train = false;
        /* A signal from the monitoring or saving is checkpointed before the criteria run, so
         * the checkpoint holds their state before this epoch's decision and a resumed run
         * (stage 1) decides exactly once: EpochCounter and MonitorBased count calls. */
        bool cont = true, stop = false;
        mt_status st = pending_signal(run, &stop);
        if (!st && !stop) st = decide(run, &cont);
        if (run->sig && run->sig->test_at_decide == run->epochs_seen &&
            (run->sig->test_rank < 0 || run->sig->test_rank == mt__run_rank(run))) {
            run->sig->test_at_decide = -1;
            raise(run->sig->test_signal); /* as if it came while the criteria ran */
        }
        if (st) return st;
        if (stop) {
            res->interrupted = run->stop_signal;
            return MT_OK;
        }
        if (!cont) break;
    }
    run->stage = 2;
    /* A signal that arrived during the last decision: the finished run (stage 2) is
     * checkpointed and the job stops here instead of going on to its next phase. */
    bool stop = false;
    mt_status st = pending_signal(run, &stop);
    if (!st && t->save_freq > 0) st = mt__run_save(run, t->save_path);
    if (!st && stop) res->interrupted = run->stop_signal;
    return st;
}

/* ---------------------------------------------------------------- dry run */

static mt_status dry_check(mt__run *run, mt_strbuf *summary)
{
    mt__chanvals known;
    memset(&known, 0, sizeof(known));
    mt_status st = mt__monitor_new(&run->monitor, run, &run->alg->c);
    if (!st) st = mt__monitor_channel_names(run->monitor, &known);
    if (!st && run->alg->c.n_monitoring > 0) {
        if (run->alg->ops->channels) st = run->alg->ops->channels(run->alg, run, &known);
        if (!st) st = mt__chanvals_set(&known, "training_seconds_this_epoch", NAN);
        if (!st) st = mt__chanvals_set(&known, "total_seconds_last_epoch", NAN);
    }
    mt__termination *term = run->alg->c.termination;
    if (!st && term && term->ops->check_channels) st = term->ops->check_channels(term, run, &known);
    for (int32_t i = 0; !st && i < run->train->n_ext; i++) {
        mt__extension *e = run->train->ext[i];
        if (e->ops->check_channels) st = e->ops->check_channels(e, run, &known);
    }
    if (!st && summary) {
        int64_t nparam = 0;
        for (int32_t i = 0; i < run->n_params; i++)
            nparam += mt_array_size(&mt_model_param_const(run->model, i)->value);
        mt_strbuf_appendf(summary, "phase %d: Train at %s:%d\n", (int)run->phase + 1,
                          run->train->loc.file, (int)run->train->loc.line);
        mt_strbuf_appendf(summary, "  dataset: %s, %lld examples x %lld features\n",
                          run->data_info.name ? run->data_info.name : "?",
                          (long long)run->data_info.n, (long long)run->data_info.dim);
        mt_strbuf_appendf(summary, "  model: %s, %d layers, %d parameter arrays, %lld values\n",
                          mt_model_type_name(run->model), (int)mt_model_n_layers(run->model),
                          (int)run->n_params, (long long)nparam);
        mt_strbuf_append(summary, "  algorithm: ");
        if (run->alg->ops->describe) run->alg->ops->describe(run->alg, summary);
        mt_strbuf_append(summary, "\n");
        if (run->dp)
            mt_strbuf_appendf(summary, "  data parallel: %d rank%s, %d shard%s per global batch "
                                       "(batch_size), %s mode\n",
                              (int)mt__run_size(run), mt__run_size(run) == 1 ? "" : "s",
                              (int)mt__run_n_shards(run), mt__run_n_shards(run) == 1 ? "" : "s",
                              mt__run_deterministic(run) ? "deterministic" : "fast");
        if (mt__run_compute_dtype(run) != MT_FLOAT32)
            mt_strbuf_appendf(summary, "  precision: %s compute, float32 master weights, "
                                       "gradients and all-reduce\n",
                              mt_dtype_name(mt__run_compute_dtype(run)));
        mt__monitor_describe(run->monitor, summary);
        mt_strbuf_appendf(summary, "  channels (%d):", (int)known.n);
        for (int32_t i = 0; i < known.n; i++)
            mt_strbuf_appendf(summary, "%s%s", i % 6 ? " " : "\n    ", known.names[i]);
        mt_strbuf_appendf(summary, "\n  save_path: %s (save_freq %lld), run directory: %s\n",
                          run->train->save_path ? run->train->save_path : "(none)",
                          (long long)run->train->save_freq, run->run_dir);
    }
    mt__chanvals_clear(&known);
    return st;
}

/* ---------------------------------------------------------------- a phase */

static mt_status setup_fresh_or_resume(mt__run *run, mt_ckpt *ck, bool *resumed)
{
    mt_status st;
    if ((st = run->alg->ops->setup(run->alg, run))) return st;
    if ((st = mt__monitor_new(&run->monitor, run, &run->alg->c))) return st;
    *resumed = ck != NULL;
    if (ck) return mt__run_load_ckpt(run, ck);
    return enforce_constraints(run);
}

mt_status mt__phase_run(mt_job *job, mt_cfg_builder *b, mt__build_ctx *ctx, int32_t phase,
                        bool dry_run, mt_strbuf *summary, mt_train_result *res)
{
    void *obj = NULL;
    mt_status st = mt_cfg_build(b, job->phases[phase], "train", &obj, NULL);
    if (st) return st;
    mt__run run;
    memset(&run, 0, sizeof(run));
    mt__signal_state sig;
    saved_handlers sv;
    memset(&sv, 0, sizeof(sv));
    if ((st = run_init(&run, job, ctx, phase, obj, dry_run))) goto done;
    if (dry_run) {
        st = dry_check(&run, summary);
        goto done;
    }
    mt_ckpt *ck = NULL;
    if ((st = find_resume(&run, &ck))) goto done;
    int64_t stage = -1;
    if (ck && !mt_ckpt_get_int(ck, "train/stage", &stage) && stage == 2) {
        mt_log(MT_LOG_INFO, "phase %d: %s says the run finished; nothing to do", (int)phase + 1,
               run.ckpt_path);
        int64_t ep = 0, nb = 0;
        if (!mt_ckpt_get_int(ck, "train/epochs_seen", &ep)) res->epochs_seen = ep;
        if (!mt_ckpt_get_int(ck, "train/batches_seen", &nb)) res->batches_seen = nb;
        mt_err_clear();
        mt_ckpt_free(ck);
        snprintf(res->save_path, sizeof(res->save_path), "%s", run.ckpt_path);
        snprintf(res->run_dir, sizeof(res->run_dir), "%s", run.run_dir);
        res->resumed = true;
        goto done;
    }
    mt_err_clear();
    bool resumed = false;
    st = setup_fresh_or_resume(&run, ck, &resumed);
    mt_ckpt_free(ck);
    if (!st) st = mt__run_dp_sync_state(&run);
    if (st) goto done;
    res->resumed |= resumed;
    run.resumed = resumed;
    snprintf(res->save_path, sizeof(res->save_path), "%s", run.train->save_path ? run.train->save_path : "");
    snprintf(res->run_dir, sizeof(res->run_dir), "%s", run.run_dir);
    if ((st = open_log(&run))) goto done;
    install_signals(&sig, &sv, job->opts.handle_signals);
    run.sig = &sig;
    if (resumed && run.stage == 2) {
        mt_log(MT_LOG_INFO, "%s: the run already finished (epoch %lld); nothing to do",
               run.ckpt_path, (long long)run.epochs_seen);
    } else {
        if (!resumed)
            st = monitor_and_extensions(&run);
        else if (mt__run_is_main(&run))
            mt_log(MT_LOG_INFO, "resuming from %s at epoch %lld, batch %lld", run.ckpt_path,
                   (long long)run.epochs_seen + (run.stage == 0), (long long)run.batch_in_epoch);
        if (!st) st = epoch_loop(&run, resumed && run.stage == 1, res);
    }
    if (!st && run.stop_signal == 0 && run.train->save_path && run.train->save_freq > 0)
        snprintf(res->save_path, sizeof(res->save_path), "%s", run.train->save_path);
    if (res->interrupted)
        snprintf(res->save_path, sizeof(res->save_path), "%s", run.ckpt_path);
    res->epochs_seen = run.epochs_seen;
    res->batches_seen = run.batches_seen;
    res->seconds = mt__run_seconds(&run);
    res->stopped |= run.callback_stopped;
    res->time_limited |= run.time_limited && res->interrupted != 0;
    /* No rank leaves before rank 0's last checkpoint is written. */
    if (!st) st = mt__run_dp_barrier(&run);
done:
    restore_signals(&sv);
    run_clear(&run);
    return st;
}
