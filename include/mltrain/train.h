/* mltrain train: Pylearn2-style experiments. A job file (YAML) whose root is a Train object (or
 * a list of them = phases run in order) is loaded, validated, built and run: the training
 * algorithm (SGD with learning rules and callbacks; BGD) trains the model on the dataset,
 * the monitor computes channels on the monitoring datasets after every epoch, termination
 * criteria and extensions decide when to stop, and checkpoints (HDF5, io.h) let a run resume
 * bit-identically. Semantics: research/pylearn2_hyperopt.md §1.2-1.9; user page:
 * docs/training.md.
 *
 * Use:
 *     mt_train_options o; mt_train_options_init(&o);
 *     mt_job *job; mt_job_load(&job, "job.yaml", &o);   // parse + validate (file:line:col)
 *     mt_job_run(job, &result);                          // or mt_job_dry_run(job, &summary)
 *     mt_job_free(job);
 *
 * The library prints nothing: progress goes to o.progress (mt_train_progress_format renders
 * it) and messages to mt_log. Signals: while mt_job_run runs, SIGTERM and SIGINT make it write
 * a checkpoint at the next batch boundary and return MT_OK with result.interrupted set;
 * SIGUSR1 writes a checkpoint and continues. The previous handlers are restored on return. */
#ifndef MLTRAIN_TRAIN_H
#define MLTRAIN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/comm.h"
#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/parallel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_job mt_job;     /* opaque: a loaded job (document, registry, phases) */
typedef struct mt_train mt_train; /* opaque: one built Train object (a phase) */

typedef enum mt_resume_mode {
    MT_RESUME_NO = 0,  /* start from scratch (an existing save_path is overwritten, unless
                          allow_overwrite is false) */
    MT_RESUME_YES,     /* continue from save_path's checkpoint; error when absent or when it
                          belongs to another job */
    MT_RESUME_AUTO,    /* continue when save_path holds a checkpoint of the same job */
    MT_RESUME_MODE_COUNT
} mt_resume_mode;

/* A progress report, after every batch (rate-limited by the caller's rendering) and after
 * every monitor call (is_monitor; channel values of the latest record). */
typedef struct mt_train_progress {
    int32_t phase, n_phases;
    int64_t epoch;            /* 1-based epoch being trained (0 = before training) */
    int64_t max_epochs;       /* from an EpochCounter, or -1 */
    int64_t batch, n_batches; /* batches done in this epoch / planned */
    double samples_per_s;
    double eta_s;             /* seconds to the end of this epoch (-1 unknown) */
    bool is_monitor;
    int32_t n_channels;       /* the channels worth showing (objective, misclass, lr) */
    const char *const *channel_names;
    const double *channel_values;
} mt_train_progress;
typedef void (*mt_train_progress_fn)(const mt_train_progress *p, void *user);

/* One line (no newline): "epoch 3/20  batch 120/469  5120 samples/s  ETA 0:07  train_objective
 * 0.412 valid_y_misclass 0.118". */
void mt_train_progress_format(const mt_train_progress *p, mt_strbuf *sb);

/* What mt_train_options.on_monitor sees after a monitor call. */
typedef struct mt_train_monitor_report {
    int32_t phase, n_phases;
    int64_t epoch;        /* epochs trained so far (0: the record before training) */
    int32_t n_channels;   /* every channel of the record */
    const char *const *channel_names;
    const double *channel_values;
    double seconds;       /* wall seconds of the run (all sessions) */
    bool resumed;         /* this session continued from a checkpoint */
} mt_train_monitor_report;
typedef mt_status (*mt_train_monitor_fn)(const mt_train_monitor_report *r, void *user,
                                         bool *stop);

typedef struct mt_train_options {
    int32_t n_params;           /* %(name)s template values (--param name=value) */
    const mt_cfg_var *params;
    const char *device;         /* "host" (default), "opencl:0:0", ... */
    int64_t max_epochs;         /* -1: as the file says; else an extra EpochCounter limit
                                   (--max-epochs) */
    int64_t limit_batches;      /* > 0: at most this many batches per training epoch and per
                                   monitoring dataset (--limit-batches: smoke runs) */
    mt_resume_mode resume;
    const char *run_dir;        /* NULL: directory of save_path, else "<job stem>.run/" */
    bool has_seed;              /* --seed: replaces the algorithm's seed */
    uint64_t seed;
    int32_t mode;               /* mt_mode of compiled functions (jit.h), default FAST_RUN */
    bool monitor_log;           /* write monitor.jsonl/csv/events (default true) */
    mt_train_progress_fn progress; /* NULL = none */
    void *progress_user;
    bool no_environment;        /* ${VAR} from the table only (tests) */
    bool handle_signals;        /* install SIGTERM/SIGINT/SIGUSR1 handlers (default true) */
    /* Data-parallel training (docs/parallel.md "Training on N ranks"): the ranks that train
     * together (borrowed, must outlive the run; NULL = this process alone) and the parallel
     * options (parallel.h; mt_train_options_init fills their defaults). A parallel run is
     * made when comm has more than one rank, or dp.shards > 1, or dp.deterministic. Rank 0
     * alone writes checkpoints, monitor logs and reports progress; every rank reads the
     * checkpoint on resume; a signal on any rank stops (or checkpoints) every rank at the
     * same step boundary. */
    mt_comm *comm;
    mt_dp_options dp;
    /* Sweeps (docs/hyperopt.md "Running sweeps"): called on the main rank (rank 0 of comm)
     * after every monitor call, the first one (epoch 0, before training) included, after the
     * extensions' on_monitor. Setting *stop ends the run as a termination criterion would
     * (final checkpoint written, result.stopped set); every rank stops at the same epoch. An
     * error status fails the run. NULL = none. */
    mt_train_monitor_fn on_monitor;
    void *on_monitor_user;
    /* > 0: a run whose wall time (all sessions of it) passes this many seconds stops at the
     * next batch boundary as for SIGTERM (checkpoint written, result.interrupted = SIGTERM and
     * result.time_limited set). */
    double time_limit_s;
    /* Mixed precision (docs/training.md "Mixed precision"): "float32" (NULL: the default),
     * "bfloat16" or "float16". With a 16-bit precision the model's forward pass, its
     * products and its per-example costs compute in that dtype from casts of the float32
     * parameters (the master weights), the cost is averaged in float32, and gradients, updates,
     * optimizer state, the data-parallel all-reduce and checkpoints stay float32. float16 adds
     * dynamic loss scaling: the cost is multiplied by the scale before differentiation and the
     * gradients divided by it; a step whose gradients are not all finite is skipped and halves
     * the scale, 2000 good steps in a row double it. loss_scale: float16's initial scale
     * (0 = 1024; --loss-scale); an error with another precision. */
    const char *precision;
    double loss_scale;
} mt_train_options;
void mt_train_options_init(mt_train_options *o);

/* What a run did. */
typedef struct mt_train_result {
    int32_t phases_run;
    int64_t epochs_seen;      /* of the last phase */
    int64_t batches_seen;
    double seconds;
    int interrupted;          /* signal number that stopped the run (checkpoint written), 0 */
    bool resumed;             /* continued from a checkpoint */
    char save_path[512];      /* last checkpoint written ("" if none) */
    char run_dir[512];
    bool stopped;             /* on_monitor asked the run to stop */
    bool time_limited;        /* stopped by time_limit_s */
} mt_train_result;

/* A registry with every component: datasets and preprocessors (data.h), models, layers and
 * costs (model.h), and the train module's own (Train, SGD, BGD, learning rules, callbacks,
 * termination criteria, extensions, !pkl, push_monitor, read_channel). */
mt_status mt_train_registry_new(mt_cfg_registry **out);

/* Loads a job: templates, ${VAR} (MLTRAIN_/PYLEARN2_TRAIN_* of path), YAML, then validates
 * the whole document (every phase) before anything is built. Errors "FILE:LINE:COL: ...". */
mt_status mt_job_load(mt_job **out, const char *path, const mt_train_options *o);
void mt_job_free(mt_job *job);
int32_t mt_job_n_phases(const mt_job *job);

/* Builds every phase (datasets are read, models initialized, channel names resolved) and
 * checks that every channel a termination criterion or extension names exists ("FILE:L:C:
 * unknown channel 'x' (did you mean 'y'?)"), then appends a summary (phases, datasets, model
 * and parameter counts, algorithm, channels, save paths). Trains nothing. Phases that load a
 * checkpoint written by an earlier phase (!pkl of a file that does not exist yet) are checked
 * as far as possible and reported. */
mt_status mt_job_dry_run(mt_job *job, mt_strbuf *summary);

/* Runs every phase in order (see the file comment for signals). */
mt_status mt_job_run(mt_job *job, mt_train_result *result);

/* Exit code the command uses for a run stopped by a signal after writing its checkpoint. */
#define MT_TRAIN_EXIT_INTERRUPTED 3

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_TRAIN_H */
