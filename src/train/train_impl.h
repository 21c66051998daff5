/* Private interface of the train module: the run of one Train phase (mt__run), the training
 * algorithm vtable (SGD in sgd.c, BGD in bgd.c), termination criteria, train extensions, SGD
 * update callbacks and learning rules, the monitor, checkpoint state and the helpers every
 * algorithm shares (cost, parameter binding, batches, per-batch bookkeeping).
 *
 * Semantics follow Pylearn2 (research/pylearn2_hyperopt.md §1.2-1.9):
 *
 *   Train.main_loop (train_loop.c):
 *     extensions' setup -> algorithm setup -> monitor setup -> [resume: load state]
 *     -> monitor once (epoch 0 record) + every extension's on_monitor
 *     -> while algorithm continue_learning and every extension said continue:
 *          algorithm train_epoch (one epoch, resumable at a batch index)
 *          epochs_seen += 1 -> monitor -> on_monitor -> save every save_freq epochs
 *     -> final save.
 *
 * Ownership: components built from YAML (algorithms, criteria, extensions, callbacks, rules)
 * are owned by the config builder (mt_cfg_builder) and destroyed with it; `destroy` of their
 * component frees the struct. Compiled functions and device arrays made for a run are freed by
 * the `teardown` hooks when the run ends (before the builder frees the model).
 *
 * Writing an algorithm (e.g. BGD in bgd.c):
 *   - embed mt__algorithm as the FIRST member of your struct; the component's build function
 *     allocates it with mt__algo_new (ops set, keys shared with SGD parsed: cost, batch_size,
 *     batches_per_iter, monitoring_*, termination_criterion, seed, set_batch_size,
 *     theano_function_mode) and returns &your->base; its destroy calls mt__algo_destroy;
 *   - setup: mt__algo_state_begin on an embedded mt__algo_state gives the graph of the model
 *     on the run's data (placeholders for X, y and the params) and the cost; compile with
 *     mt_function_new on run->dev, bind the parameters with mt__run_bind_params (the run's
 *     parameter arrays are shared by every function, so the monitor sees your updates), then
 *     mt__algo_state_iter for the training iterator; teardown calls mt__algo_state_clear;
 *   - train_epoch: for b from run->batch_in_epoch to the epoch's batch count: fetch the batch
 *     with mt__run_batch, do the work, then call mt__run_after_batch, which updates the
 *     counters, the progress display and the signal/stop state; when it reports *stop, return
 *     with *finished = false (the loop checkpoints at that batch boundary and exits). A resumed
 *     run calls train_epoch with run->batch_in_epoch > 0: continue from that batch. Return
 *     *finished = true after the last batch (the loop then sets batch_in_epoch = 0).
 *   - save_state / load_state: every array and counter needed to continue bit-identically
 *     (prefix "optimizer/" for arrays, "algorithm/" for scalars), including
 *     mt_function_rng_counter of stochastic functions;
 *   - scalars: named 0-d values extensions may read or set ("learning_rate", "momentum"):
 *     ERR_NOT_FOUND when the algorithm has no such value;
 *   - channels: algorithm-level monitor channels (no dataset prefix), e.g. learning_rate.
 * Registration: bgd.c defines mt__train_register_bgd (below); src/train/CMakeLists.txt compiles
 * bgd.c when the file exists and then defines MT__TRAIN_HAVE_BGD, so components.c calls it. */
#ifndef MT_TRAIN_IMPL_H
#define MT_TRAIN_IMPL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/data.h"
#include "mltrain/gpuarray.h"
#include "mltrain/graph.h"
#include "mltrain/graph_grad.h"
#include "mltrain/io.h"
#include "mltrain/jit.h"
#include "mltrain/model.h"
#include "mltrain/parallel.h"
#include "mltrain/train.h"

#define MT__TRAIN_ABI_VERSION 1

typedef struct mt__run mt__run;
typedef struct mt__algorithm mt__algorithm;
typedef struct mt__monitor mt__monitor;
typedef struct mt__termination mt__termination;
typedef struct mt__extension mt__extension;

/* ---------------------------------------------------------------- channel values */

/* A set of (name, value) pairs: the latest monitor record, or the channel names known before
 * training (dry run; values NaN). Names owned by the set. */
typedef struct mt__chanvals {
    int32_t n, cap;
    char **names;
    double *values;
} mt__chanvals;

mt_status mt__chanvals_set(mt__chanvals *cv, const char *name, double value);
/* Index of name, or -1. */
int32_t mt__chanvals_find(const mt__chanvals *cv, const char *name);
void mt__chanvals_clear(mt__chanvals *cv);
/* ERR_INVALID "FILE:L:C: unknown channel 'x' (did you mean 'y'?)" when name is not in cv;
 * `what` says who refers to it ("MonitorBased"). */
mt_status mt__chanvals_require(const mt__chanvals *cv, const char *name, mt_cfg_loc loc,
                               const char *what);

/* ---------------------------------------------------------------- checkpointed fields */

/* One scalar member of a criterion's or an extension's struct kept in checkpoints as
 * "<prefix>/<name>" (bools as 0/1 integers). Components whose state is only such members list
 * them in their ops (`fields`) instead of writing save_state / load_state. */
typedef enum mt__field_type { MT__FIELD_I64, MT__FIELD_F64, MT__FIELD_BOOL } mt__field_type;
typedef struct mt__ckpt_field {
    const char *name;
    mt__field_type type;
    size_t offset;
} mt__ckpt_field;
#define MT__FIELD(st, member, type, name) {name, type, offsetof(st, member)}

mt_status mt__ckpt_put_fields(mt_ckpt *c, const char *prefix, const void *obj,
                              const mt__ckpt_field *f, int32_t n);
mt_status mt__ckpt_get_fields(const mt_ckpt *c, const char *prefix, void *obj,
                              const mt__ckpt_field *f, int32_t n);

/* ---------------------------------------------------------------- termination criteria */

typedef struct mt__termination_ops {
    const char *name; /* "EpochCounter", ... */
    /* Pylearn2's continue_learning(model), after every monitor call (the first included). */
    mt_status (*continue_learning)(mt__termination *t, mt__run *run, bool *cont);
    /* Checkpoint state under prefix ("termination/0/..."); NULL = only `fields` (or none). */
    mt_status (*save_state)(const mt__termination *t, const char *prefix, mt_ckpt *c);
    mt_status (*load_state)(mt__termination *t, const char *prefix, const mt_ckpt *c);
    /* Dry run: every channel the criterion reads must be in `known` (else the error above). */
    mt_status (*check_channels)(const mt__termination *t, const mt__run *run,
                                const mt__chanvals *known);
    const mt__ckpt_field *fields; /* scalar state saved without save_state */
    int32_t n_fields;
} mt__termination_ops;

struct mt__termination {
    const mt__termination_ops *ops;
    mt_cfg_loc loc; /* where the component was written */
};

/* A criterion's state: its fields, then its save_state / load_state. */
mt_status mt__termination_save(const mt__termination *t, const char *prefix, mt_ckpt *c);
mt_status mt__termination_load(mt__termination *t, const char *prefix, const mt_ckpt *c);

/* The epoch limit an EpochCounter (possibly inside And/Or) sets, or -1 (progress display). */
int64_t mt__termination_max_epochs(const mt__termination *t);

/* ---------------------------------------------------------------- extensions */

typedef struct mt__extension_ops {
    const char *name;
    /* Train.setup: before the algorithm's setup and before the run reads the dataset's shape
     * (an extension may reshape datasets, as WindowAndFlip does); the run's device and
     * parameters exist. Also called by a dry run. NULL = nothing. */
    mt_status (*setup)(mt__extension *e, mt__run *run);
    /* After each monitor call (the first included); *cont = false asks to stop. */
    mt_status (*on_monitor)(mt__extension *e, mt__run *run, bool *cont);
    /* Train.save: before the checkpoint is written. NULL = nothing. */
    mt_status (*on_save)(mt__extension *e, mt__run *run);
    mt_status (*save_state)(const mt__extension *e, const char *prefix, mt_ckpt *c);
    mt_status (*load_state)(mt__extension *e, const char *prefix, const mt_ckpt *c);
    mt_status (*check_channels)(const mt__extension *e, const mt__run *run,
                                const mt__chanvals *known);
    /* Run ended (free per-run resources). NULL = nothing. */
    void (*teardown)(mt__extension *e);
    /* After every training batch (its update applied, before signals are acted on and before
     * a checkpoint may be written at that boundary), as Pylearn2's SGD update_callbacks.
     * NULL = nothing. */
    mt_status (*after_batch)(mt__extension *e, mt__run *run);
    const mt__ckpt_field *fields; /* scalar state saved without save_state */
    int32_t n_fields;
} mt__extension_ops;

struct mt__extension {
    const mt__extension_ops *ops;
    mt_cfg_loc loc;
};

/* An extension's state: its fields, then its save_state / load_state. */
mt_status mt__extension_save(const mt__extension *e, const char *prefix, mt_ckpt *c);
mt_status mt__extension_load(mt__extension *e, const char *prefix, const mt_ckpt *c);

/* ---------------------------------------------------------------- algorithms */

typedef struct mt__mon_dataset {
    char *name;            /* "" for a plain (unnamed) monitoring dataset: no channel prefix */
    mt_dataset *data;      /* borrowed (builder) */
} mt__mon_dataset;

/* What every Pylearn2 training algorithm has (TrainingAlgorithm + Monitor settings). */
typedef struct mt__algo_common {
    mt_cost *cost;                   /* borrowed; NULL = the model's default cost */
    int64_t batch_size;              /* 0 = unset (model's batch_size, else an error) */
    int64_t batches_per_iter;        /* 0 = a whole epoch (ceil(n / batch_size) batches) */
    mt_iter_mode train_iteration_mode;
    int32_t n_monitoring;
    mt__mon_dataset *monitoring;     /* owned array */
    int64_t monitoring_batch_size;   /* 0 = batch_size */
    int64_t monitoring_batches;      /* 0 = all */
    mt_iter_mode monitor_iteration_mode;
    mt__termination *termination;    /* borrowed; NULL = no criterion */
    uint64_t seed;                   /* data order and random nodes; Pylearn2 [2012,10,5] */
    bool set_batch_size;
    mt_cfg_loc loc;                  /* the algorithm's node */
    mt_cfg_loc termination_loc;
} mt__algo_common;

/* The 64-bit seed of a YAML `seed` list (Pylearn2's [2012, 10, 5] style), as every algorithm
 * folds it. */
uint64_t mt__algo_seed_of(const int64_t *v, int32_t n);
/* Parses the shared keys of an algorithm node into c (cost, batch_size, monitoring_dataset,
 * monitoring_batches, monitoring_batch_size, monitor_iteration_mode, termination_criterion,
 * train_iteration_mode (default dflt_train_mode), batches_per_iter, set_batch_size, seed,
 * theano_function_mode (accepted, ignored)), building the referenced components. */
mt_status mt__algo_common_parse(mt_cfg_builder *b, const mt_cfg_node *node,
                                mt_iter_mode dflt_train_mode, mt__algo_common *c);
void mt__algo_common_clear(mt__algo_common *c);
/* The schema keys of mt__algo_common: put MT__ALGO_COMMON_KEYS first in a component's key
 * table, then the algorithm's own keys, then the {NULL} terminator. */
#define MT__ALGO_COMMON_KEYS                                                                  \
    {"cost", MT_CFG_T_OBJ, false, true, "cost", false,                                        \
     "the objective (default: the model's default cost)"},                                    \
    {"batch_size", MT_CFG_T_INT, false, true, NULL, false,                                    \
     "examples per minibatch (default: the model's batch_size)"},                             \
    {"batches_per_iter", MT_CFG_T_INT, false, true, NULL, false,                              \
     "batches per epoch (default: all examples)"},                                            \
    {"monitoring_dataset", MT_CFG_T_OBJ_MAP, false, true, "dataset", false,                   \
     "a dataset, or {name: dataset}; channels get the prefix 'name_'"},                       \
    {"monitoring_batches", MT_CFG_T_INT, false, true, NULL, false,                            \
     "batches per monitoring dataset (default: all)"},                                        \
    {"monitoring_batch_size", MT_CFG_T_INT, false, true, NULL, false,                         \
     "default: batch_size"},                                                                  \
    {"monitor_iteration_mode", MT_CFG_T_STRING, false, true, NULL, false,                     \
     "default 'sequential'"},                                                                 \
    {"train_iteration_mode", MT_CFG_T_STRING, false, true, NULL, false,                       \
     "default 'shuffled_sequential'"},                                                        \
    {"termination_criterion", MT_CFG_T_OBJ, false, true, "termination", false,                \
     "when to stop (default: never)"},                                                        \
    {"set_batch_size", MT_CFG_T_BOOL, false, true, NULL, false, "accepted (no effect)"},      \
    {"seed", MT_CFG_T_INTS, false, true, NULL, false,                                         \
     "data order and dropout seed (default [2012, 10, 5])"},                                  \
    {"theano_function_mode", MT_CFG_T_ANY, false, true, NULL, false, "accepted, ignored"}

typedef struct mt__algorithm_ops {
    int32_t abi_version; /* MT__TRAIN_ABI_VERSION */
    const char *name;    /* "SGD", "BGD" */
    /* Compiles what the algorithm needs. Called once per run after the extensions' setup,
     * before the monitor's setup and before state is loaded on resume. */
    mt_status (*setup)(mt__algorithm *a, mt__run *run);
    /* Trains one epoch (Pylearn2's train(dataset)) = epoch number run->epochs_seen, from batch
     * run->batch_in_epoch (0 unless resuming or continuing after SIGUSR1). See the file
     * comment for the batch protocol. */
    mt_status (*train_epoch)(mt__algorithm *a, mt__run *run, bool *finished);
    /* Pylearn2's continue_learning; NULL = the termination criterion (none -> true). */
    mt_status (*continue_learning)(mt__algorithm *a, mt__run *run, bool *cont);
    /* Algorithm-level channels (names without prefix) with current values. NULL = none. */
    mt_status (*channels)(const mt__algorithm *a, const mt__run *run, mt__chanvals *out);
    /* Named scalars ("learning_rate", "momentum"). NULL / ERR_NOT_FOUND = none. */
    mt_status (*get_scalar)(const mt__algorithm *a, const char *name, double *out);
    mt_status (*set_scalar)(mt__algorithm *a, const char *name, double value);
    /* Everything needed to continue bit-identically. */
    mt_status (*save_state)(const mt__algorithm *a, const mt__run *run, mt_ckpt *c);
    mt_status (*load_state)(mt__algorithm *a, mt__run *run, const mt_ckpt *c);
    /* Dry run: a line or two describing the algorithm (learning rule, lr, batch). */
    void (*describe)(const mt__algorithm *a, mt_strbuf *sb);
    /* Frees per-run resources (compiled functions, device state). NULL ok. */
    void (*teardown)(mt__algorithm *a);
} mt__algorithm_ops;

struct mt__algorithm {
    const mt__algorithm_ops *ops;
    mt__algo_common c;
};

/* An algorithm built from its node: a zeroed struct of `size` bytes whose first member is an
 * mt__algorithm, with ops set and the common keys parsed (train iteration mode by default
 * shuffled_sequential); freed again when parsing fails. */
mt_status mt__algo_new(void **out, size_t size, const mt__algorithm_ops *ops, mt_cfg_builder *b,
                       const mt_cfg_node *node);
/* Tears the algorithm down (ops->teardown) and clears its common settings; the caller frees
 * what else it owns and the struct. */
void mt__algo_destroy(mt__algorithm *a);

/* What every algorithm holds during a run: the batch size in use, its graph of the model on
 * the training data with the cost, the training iterator and the batch arrays. */
typedef struct mt__algo_state {
    int64_t batch_size;
    mt_graph *g;
    mt_model_graph mg;
    bool mg_init;
    mt_var cost;
    mt_data_iter it;
    bool it_init;
    int64_t *rows;   /* room for batch_size row indices */
    mt_array X, y;   /* the current batch (host arrays reused between batches) */
} mt__algo_state;

/* Setup, first half: the batch size (also run->batch_size), a new graph with the model on the
 * run's data (mt__run_model_graph) and the cost (mt__algo_cost_expr). */
mt_status mt__algo_state_begin(mt__algo_state *r, const mt__algorithm *a, mt__run *run);
/* Setup, last step: the training iterator (seeded with run->seed) and the row buffer; `who`
 * ("SGD") prefixes the errors. */
mt_status mt__algo_state_iter(mt__algo_state *r, const mt__algorithm *a, const mt__run *run,
                              const char *who);
/* Frees everything of r (compiled functions that use r->g may be freed before or after). */
void mt__algo_state_clear(mt__algo_state *r);

/* A 0-d float32 array on dev holding (float)v: created when a->buf is NULL, else filled. */
mt_status mt__scalar_array_set(mt_array *a, mt_device *dev, double v);
/* The value of a 0-d float32 or float64 array (any device). */
mt_status mt__scalar_array_get(const mt_array *a, double *out);

/* The cost the algorithm optimizes on mg's data: c->cost, or the model's default cost. */
mt_status mt__algo_cost_expr(const mt__algo_common *c, mt_model_graph *mg, mt_var *out);
/* Batch size in use: c->batch_size, else the model's batch_size (MLP key), else an error
 * naming the algorithm's position. */
mt_status mt__algo_batch_size(const mt__algo_common *c, const mt__run *run, int64_t *out);

/* ---------------------------------------------------------------- monitor */

/* The monitor (monitor.c): one compiled function per monitoring dataset computing every
 * channel of that dataset (model channels via mt_model_channels, the cost as "objective", the
 * cost's channels), prefixed "<name>_" (no prefix for an unnamed dataset), combined over the
 * batches per mt_chan_reduce; then the algorithm's channels and the loop's time channels. */
mt_status mt__monitor_new(mt__monitor **out, mt__run *run, const mt__algo_common *c);
void mt__monitor_free(mt__monitor *m);
/* Every channel name the monitor will produce (for the dry run), into known. */
mt_status mt__monitor_channel_names(const mt__monitor *m, mt__chanvals *known);
/* Runs every monitoring function over its dataset and appends one record to the run's
 * history (values also in run->last) and to the run's monitor log. */
mt_status mt__monitor_run(mt__monitor *m, mt__run *run);
/* Random-counter state of the monitoring functions (stochastic costs such as Dropout). */
mt_status mt__monitor_save_state(const mt__monitor *m, mt_ckpt *c);
mt_status mt__monitor_load_state(mt__monitor *m, const mt_ckpt *c);
/* One line per monitoring dataset (name, examples, channels) for the dry-run summary. */
void mt__monitor_describe(const mt__monitor *m, mt_strbuf *sb);

/* ---------------------------------------------------------------- the run */

/* Test hooks: MLTRAIN_TEST_SIGNAL_AFTER_BATCHES=k[:SIG] makes the run raise(SIGTERM) (or the
 * named signal: TERM, INT, USR1, KILL) itself after k batches, so tests exercise the real
 * handler path; with MLTRAIN_TEST_SIGNAL_RANK=r only rank r of a parallel run does.
 * MLTRAIN_TEST_SIGNAL_AT_MONITOR=e[:SIG] raises it while epoch e's monitoring and extensions
 * run (after them, before the termination criteria), the path of a signal outside the batches;
 * MLTRAIN_TEST_SIGNAL_AT_DECIDE=e[:SIG] while the criteria decide after epoch e.
 * MLTRAIN_TEST_STALL_RANK=r with MLTRAIN_TEST_STALL_AFTER_BATCHES=k makes rank r stop making
 * progress (sleep forever) after k batches, so tests exercise the collectives' deadline. */
typedef struct mt__signal_state {
    volatile sig_atomic_t pending; /* last signal received (0 = none) */
    int64_t test_after_batches;    /* -1 = off */
    int64_t test_at_monitor;       /* epoch whose monitoring raises test_signal; -1 = off */
    int64_t test_at_decide;        /* epoch whose termination check raises it; -1 = off */
    int test_signal;
    int32_t test_rank;             /* -1 = every rank */
    int32_t stall_rank;            /* -1 = off */
    int64_t stall_after_batches;
} mt__signal_state;

struct mt__run {
    const mt_train_options *opts; /* borrowed */
    bool dry_run;                 /* build and check only: nothing is compiled or trained */
    mt_job *job;                  /* borrowed */
    int32_t phase;                /* 0-based phase index */
    mt_train *train;              /* borrowed: the Train object */
    mt_model *model;              /* borrowed */
    mt_dataset *dataset;          /* borrowed: the training dataset */
    mt_dataset_info data_info;
    mt__algorithm *alg;           /* borrowed; NULL = model trains itself (unsupported) */
    mt_device *dev;               /* retained */
    const mt_cfg_registry *registry;

    /* Parameters: n_params arrays on dev; on the host device these are views of the model's
     * own arrays; on another device copies that mt__run_sync_params copies back. */
    int32_t n_params;
    mt_array *params;

    /* Counters (Pylearn2's monitor counters) and the position inside the current epoch. */
    int64_t epochs_seen;
    int64_t batches_seen;
    int64_t examples_seen;
    int64_t batch_in_epoch;       /* next batch of epoch epochs_seen to train */
    double training_seconds;      /* total, over resumes */
    double epoch_train_seconds;   /* training_seconds_this_epoch */
    double epoch_total_seconds;   /* total_seconds_last_epoch */
    double epoch_start_time;
    int64_t batches_this_epoch;   /* planned batches of the current epoch (progress/ETA) */
    int64_t batch_size;

    mt__monitor *monitor;
    mt_monitor_history history;   /* "monitor" */
    int32_t n_old_monitors;       /* pushed monitors (push_monitor) */
    mt_monitor_history *old_monitors;
    mt__chanvals last;            /* latest monitor record */
    mt_monitor_log *log;

    mt__signal_state *sig;
    bool stop_requested;          /* set by mt__run_after_batch (signal) */
    int stop_signal;

    mt_train_progress_fn progress;
    void *progress_user;
    double last_progress_time;
    double progress_rate;         /* smoothed samples/s */
    double rate_time;             /* start of the current rate window */
    int64_t rate_examples;
    int64_t max_epochs;           /* for progress: an EpochCounter's limit or --max-epochs */
    uint64_t seed;                /* run seed (algorithm seed, or --seed) */

    char *ckpt_path;              /* where this run's checkpoints go (save_path, else
                                     run_dir/resume.ckpt): --resume reads it */
    char *run_dir;
    bool saved_once;              /* allow_overwrite applies to the first save only */
    int64_t stage;                /* 0 epoch in progress, 1 epoch done (before
                                     continue_learning), 2 finished */
    bool ext_continue;            /* the extensions' verdict of the last monitor call */
    double seconds_offset;        /* wall seconds of earlier sessions (resume) */
    double session_start;
    mt_ckpt *epoch_snapshot;      /* algorithm state at the start of the current epoch (for
                                     locating a non-finite value by replay) */

    /* Data parallelism (parallel_run.c): NULL = one process computing whole batches. */
    mt_dp *dp;
    mt_device *host;              /* the host device (collectives on host values; dp only) */
    int agreed_signal;            /* signal every rank agreed on at the last step boundary */
    bool signal_agreed;           /* agreed_signal is valid (consumed by mt__run_after_batch) */

    /* Sweeps: opts->on_monitor asked to stop; opts->time_limit_s passed (a SIGTERM-like stop
     * was raised on this rank). */
    bool callback_stopped;
    bool time_limited;
    bool resumed;                 /* this session continued from a checkpoint */
};

/* Wall seconds of the whole run (all sessions). */
double mt__run_seconds(const mt__run *run);
/* Algorithm state only (params, optimizer, lr, rng counters) into c (for snapshots). */
mt_status mt__run_save_algorithm(mt__run *run, mt_ckpt *c);
mt_status mt__run_load_algorithm(mt__run *run, const mt_ckpt *c);
/* Everything (mt__run_save builds it; the loop loads it on resume). */
mt_status mt__run_build_ckpt(mt__run *run, mt_ckpt **out);
mt_status mt__run_load_ckpt(mt__run *run, const mt_ckpt *c);

/* Mixed precision (precision.c): the compute dtype of the options' precision (float32,
 * bfloat16, float16; ERR_INVALID for another name, or a loss scale without float16), and the
 * run's (checked when the job was loaded). */
mt_status mt__precision_dtype(const mt_train_options *o, mt_dtype *out);
mt_dtype mt__run_compute_dtype(const mt__run *run);

/* Placeholders for the model on the run's training data (batch -1 = dynamic); with a 16-bit
 * precision the model graph computes in it (mt_model_graph_set_compute). */
mt_status mt__run_model_graph(mt__run *run, mt_graph *g, mt_model_graph *mg,
                              const mt_dataset_info *data);
/* Binds every parameter placeholder of mg that f uses to the run's parameter arrays. */
mt_status mt__run_bind_params(mt__run *run, mt_function *f, const mt_model_graph *mg);
/* Gathers batch b of `epoch` of it over d into X, y (host arrays, reused between calls). */
mt_status mt__run_batch(mt__run *run, const mt_dataset *d, mt_data_iter *it, int64_t epoch,
                        int64_t b, int64_t *rows, mt_array *X, mt_array *y, int64_t *n_rows);
/* After a batch of n examples has been applied: counters, progress, signal handling.
 * *stop = true when the run must stop at this boundary (SIGTERM/SIGINT); SIGUSR1 writes a
 * checkpoint here and continues. */
mt_status mt__run_after_batch(mt__run *run, int64_t n_examples, bool *stop);
/* Batches to run of an iterator with n batches per epoch: n, or --limit-batches when it is
 * smaller (algorithms and the monitor call it). */
int64_t mt__run_epoch_batches(const mt__run *run, int64_t n);
/* Copies device parameters back into the model's host arrays (no-op on the host). */
mt_status mt__run_sync_params(mt__run *run);
/* Writes the run's checkpoint to path (atomic): params, algorithm/criteria/extension state,
 * counters, monitors, attributes. */
mt_status mt__run_save(mt__run *run, const char *path);
/* The latest value of a channel of the current monitor (ERR_NOT_FOUND naming it). */
mt_status mt__run_channel(const mt__run *run, const char *name, double *out);
/* The final value of a channel of a pushed monitor ("monitor_stage_0"). */
mt_status mt__run_old_channel(const mt__run *run, const char *monitor, const char *name,
                              double *out);

/* ---------------------------------------------------------------- data parallelism */

/* parallel_run.c: the run's side of data-parallel training (docs/parallel.md). Without a dp
 * (one process, the default) every helper acts as for one process computing one shard: rank
 * 0 of 1, shard 0 = the whole batch, nothing to reduce. Every helper that communicates is
 * collective: all ranks call it at the same point with the same counts. */

/* Makes run->dp when the options ask for a parallel run (comm of more than one rank,
 * dp.shards > 1 or dp.deterministic); ERR_UNSUPPORTED for an algorithm other than SGD. */
mt_status mt__run_dp_init(mt__run *run);
void mt__run_dp_clear(mt__run *run);
/* Opens the run's device: `requested` (NULL = "host") with "cuda" / "cuda:auto" resolved to
 * cuda:<local rank> (mt_launch_pick_device); on a communicator, binds it to that device so
 * collectives on device buffers use NCCL where every rank can (mt_comm_use_device). */
mt_status mt__run_open_device(mt__run *run, const char *requested);
int32_t mt__run_rank(const mt__run *run);
int32_t mt__run_size(const mt__run *run);
int32_t mt__run_n_shards(const mt__run *run);
bool mt__run_is_main(const mt__run *run); /* rank 0: writes files, reports progress */
bool mt__run_deterministic(const mt__run *run);
/* The shards this process computes: [*first, *first + *count). */
void mt__run_local_shards(const mt__run *run, int32_t *first, int32_t *count);
/* Rows [*b, *e) of a global batch of n rows that shard `shard` takes. */
void mt__run_shard_rows(const mt__run *run, int64_t n, int32_t shard, int64_t *b, int64_t *e);
/* Gathers shard `shard` of batch b of `epoch` into X, y (rows: room for the global batch;
 * *n_global = the global batch's rows, *n_local = the shard's). ERR_RANGE when the global
 * batch has fewer rows than there are shards. */
mt_status mt__run_shard_batch(mt__run *run, const mt_dataset *d, mt_data_iter *it,
                              int64_t epoch, int64_t b, int32_t shard, int64_t *rows,
                              mt_array *X, mt_array *y, int64_t *n_local, int64_t *n_global);

/* Fast mode (parallel.h): reduced[i] = all-reduce of the shard-weighted grads[i]; the function
 * options that route the graph's all-reduce nodes; the shard weight before each call. Without
 * a dp: reduced = grads, no options, nothing to bind. */
mt_status mt__run_dp_insert_allreduce(mt__run *run, mt_graph *g, int32_t n, const mt_var *params,
                                      const mt_var *grads, mt_var *reduced);
void mt__run_dp_function_options(mt__run *run, mt_function_options *fo);
mt_status mt__run_dp_set_step(mt__run *run, mt_function *f, int64_t n_local, int64_t n_global);
/* Deterministic mode: the ordered sum of the shards' weighted gradients (parallel.h). */
mt_status mt__run_dp_ordered_begin(mt__run *run, int32_t n);
mt_status mt__run_dp_ordered_add(mt__run *run, int32_t shard, int32_t n,
                                 const mt_array *const *grads);
mt_status mt__run_dp_ordered_finish(mt__run *run, int32_t n, mt_array *out);

/* Parameters and the algorithm's state arrays take rank 0's values (after setup or resume). */
mt_status mt__run_dp_sync_state(mt__run *run);
/* At a step boundary: sums *cost (this rank's share of the global batch's cost) over the
 * ranks and agrees on the signals received by any rank since the last boundary (TERM beats
 * INT beats USR1); mt__run_after_batch acts on that agreed signal. Every step of a parallel
 * run must call it once; without a dp it only moves the pending signal. */
mt_status mt__run_dp_step_end(mt__run *run, double *cost);
/* The periodic cross-rank parameter checksum (parallel.h mt_dp_check_consistent). */
mt_status mt__run_dp_check(mt__run *run, int64_t step);
/* all[r * n + i] = local[i] of rank r (n values per rank; all has size * n). */
mt_status mt__run_dp_allgather(mt__run *run, int32_t n, const double *local, double *all);
/* vals take rank 0's values. */
mt_status mt__run_dp_bcast(mt__run *run, int32_t n, double *vals);
/* Sum of v over ranks. */
mt_status mt__run_dp_sum(mt__run *run, int32_t n, double *v);
mt_status mt__run_dp_barrier(mt__run *run);

/* ---------------------------------------------------------------- Train objects, building */

/* One Train component (a phase), built from YAML (components.c). */
struct mt_train {
    mt_dataset *dataset;     /* borrowed (builder) */
    mt_model *model;         /* borrowed (builder) */
    mt__algorithm *alg;      /* borrowed; NULL = none */
    int32_t n_ext;
    mt__extension **ext;     /* owned array of borrowed extensions */
    char *save_path;         /* owned; NULL = none (default derived when save_freq > 0) */
    int64_t save_freq;
    bool allow_overwrite;
    int64_t model_batch_size;  /* the model's batch_size key (MLP), 0 if none */
    mt_cfg_loc loc;
};

/* A checkpoint loaded by !pkl (pkl.c), remembered so push_monitor / read_channel can reach
 * its monitors. */
typedef struct mt__loaded_ckpt {
    mt_model *model;         /* the model built from it (owned by the builder) */
    mt_ckpt *ckpt;           /* owned */
    char *path;
    char *pushed_name;       /* push_monitor name, or NULL */
} mt__loaded_ckpt;

/* The builder context of a job (mt_cfg_builder_set_context). */
typedef struct mt__build_ctx {
    const mt_cfg_registry *registry;
    const char *job_path;
    int32_t phase;           /* 1-based phase when the job is a list, else 0 */
    bool dry_run;
    int32_t n_loaded, cap_loaded;
    mt__loaded_ckpt *loaded;
} mt__build_ctx;

void mt__build_ctx_clear(mt__build_ctx *ctx);
/* The loaded checkpoint a model came from (NULL if none). */
mt__loaded_ckpt *mt__build_ctx_find(mt__build_ctx *ctx, const mt_model *m);

/* Registers n components (stops at the first error). */
mt_status mt__register_components(mt_cfg_registry *r, const mt_component *comps, size_t n);

/* Copies checkpoint array `name` into dst (same dtype and dims, else ERR_SHAPE naming both). */
mt_status mt__ckpt_copy_into(const mt_ckpt *c, const char *name, mt_array *dst);

/* "a/b" into buf (prefix may be "" -> just name). */
const char *mt__path_join(char *buf, size_t cap, const char *prefix, const char *name);
/* Builds an optional sub-component (absent or null key -> *out NULL). */
mt_status mt__build_opt(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                        const char *kind, void **out);
/* Builds node[key] as a "model" and checks it is one (an MLP with layer_name and no nvis is a
 * layer): an error at the value's position otherwise. */
mt_status mt__build_model(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                          void **out);
/* A number or a read_channel object (kind "value"): *out receives the value. */
mt_status mt__get_value(mt_cfg_builder *b, const mt_cfg_node *node, const char *key,
                        double dflt, double *out);

/* The job's file text (checkpoint attribute job_yaml) and the hash that identifies the job
 * (file text, template parameters, phase) for --resume=auto. */
const char *mt__job_text(const mt_job *job);
const char *mt__job_hash(const mt_job *job);

/* A loaded job (job.c). */
struct mt_job {
    char *path;
    mt_train_options opts;        /* copy (params/strings borrowed from the caller) */
    mt_cfg_registry *registry;
    mt_cfg_doc *doc;
    const mt_cfg_node *root;
    int32_t n_phases;
    const mt_cfg_node **phases;   /* each a Train node */
    char *text;                   /* the file as read */
    char hash[65];
    mt_cfg_var vars[16];
    int32_t n_vars;
    char *vars_store;
};

/* Builds phase `phase` (0-based) with builder b and trains it (train_loop.c); dry_run: builds,
 * checks channel names and appends a summary instead. */
mt_status mt__phase_run(mt_job *job, mt_cfg_builder *b, mt__build_ctx *ctx, int32_t phase,
                        bool dry_run, mt_strbuf *summary, mt_train_result *res);

/* ---------------------------------------------------------------- non-finite values */

/* True when every element of a (float array, any device) is finite. */
mt_status mt__array_all_finite(const mt_array *a, bool *finite);
/* Evaluates every float node the roots depend on with the reference executor (mt_graph_eval,
 * the literal graph) from the given placeholder values and describes the first node, in
 * topological order, holding a non-finite element ("v42 = log(v41) : float32[?,10] (at
 * model.c:88): -inf at element 3"); *found = false when all are finite. */
mt_status mt__first_nonfinite(mt_graph *g, int32_t n_roots, const mt_var *roots, int32_t n_in,
                              const mt_var *in_vars, const mt_array *const *in_arrays,
                              mt_device *dev, mt_strbuf *desc, bool *found);

/* ---------------------------------------------------------------- registration */

mt_status mt__train_register_core(mt_cfg_registry *r);        /* Train, !pkl, push_monitor */
mt_status mt__train_register_algorithms(mt_cfg_registry *r);  /* SGD (+ BGD) */
mt_status mt__train_register_bgd(mt_cfg_registry *r);         /* bgd.c: BGD, its extensions */
mt_status mt__train_register_transformer_dataset(mt_cfg_registry *r); /* transformer_dataset.c */
mt_status mt__train_register_rules(mt_cfg_registry *r);       /* learning rules */
mt_status mt__train_register_callbacks(mt_cfg_registry *r);   /* update callbacks + LR exts */
mt_status mt__train_register_termination(mt_cfg_registry *r);
mt_status mt__train_register_extensions(mt_cfg_registry *r);
mt_status mt__train_register_polyak(mt_cfg_registry *r);      /* polyak.c: PolyakAveraging */
mt_status mt__train_register_window_flip(mt_cfg_registry *r); /* window_flip.c */

#endif /* MT_TRAIN_IMPL_H */
