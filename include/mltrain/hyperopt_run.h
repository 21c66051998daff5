/* mltrain hyperopt, running sweeps (docs/hyperopt.md "Running sweeps"): the coordinator and the
 * worker groups of `mpirun -np N mltrain sweep.yaml`, the sweep directory (journal, trial
 * folders, summary.csv), resume after a kill, the Slurm job-array mode and `sweep-report`.
 *
 *   roles     rank 0 of the world communicator coordinates: it proposes trials with the
 *             sampler, decides prunes, and alone writes the journal. Ranks 1..N-1 form groups
 *             of distributed.ranks_per_trial ranks (the last group may be smaller) with their
 *             own communicator (mt_comm_split); a group trains one trial at a time,
 *             data-parallel inside the group, reports the objective channel after every
 *             monitor call and is told to continue or stop (pruned). With one process the
 *             coordinator runs the trials itself, one after the other.
 *   protocol  point-to-point control messages on the world communicator (mt_comm_send_host,
 *             mt_comm_recv_host): a group leader sends READY, REPORT (epoch, value), BEAT
 *             (heartbeat while training) and DONE (status, value, message); the coordinator
 *             answers TRIAL (id, attempt, point), VERDICT (continue/prune) or STOP. Inside a
 *             group the leader hands the trial to its members with a broadcast.
 *   directory storage.dir: journal.jsonl (append-only JSON lines, fsync'd, written only by the
 *             coordinator), trial_NNNN/ per trial (resolved.yaml, monitor.jsonl/csv and
 *             TensorBoard events, the trial's checkpoints, result.json, its HParams session),
 *             summary.csv (one row per finished trial, rewritten atomically), space.json (the
 *             parameters, for sweep-report) and the TensorBoard HParams experiment
 *             (events.out.tfevents.0000000000.mltrain-hparams in storage.dir and in each
 *             trial folder: `tensorboard --logdir DIR` shows the sweep in its HPARAMS tab).
 *   resume    starting the same command again replays the journal: finished trials are kept
 *             exactly once, unfinished ones run again under their id and point (from their
 *             checkpoint when the Train object has a save_path), and the sampler sees the same
 *             history. A truncated last line (a kill during a write) is dropped with a
 *             warning; any other malformed line is an error naming FILE:LINE.
 *
 * The library prints nothing: the live table goes to options.table (one call per event with a
 * formatted line) and messages to mt_log. */
#ifndef MLTRAIN_HYPEROPT_RUN_H
#define MLTRAIN_HYPEROPT_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "mltrain/comm.h"
#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/hyperopt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One line of the coordinator's live table (no newline). header: the column titles. */
typedef void (*mt_sweep_table_fn)(const char *line, bool header, void *user);

typedef struct mt_sweep_options {
    mt_comm *comm;          /* the world (borrowed); NULL = this process alone */
    const char *dir;        /* NULL: storage.dir, else "<sweep file stem>.sweep" */
    const char *device;     /* the trials' device, "host" by default */
    int64_t max_epochs;     /* -1: as the Train object says (expression objectives with
                               `epoch`: its EpochCounter) */
    int64_t limit_batches;  /* > 0: smoke runs of the trials (mt_train_options) */
    int64_t max_trials;     /* -1: search.max_trials */
    int64_t array_task;     /* >= 0: job-array mode: run only trial `array_task` (random and
                               grid search), no coordinator and no journal: the trial folder
                               gets its result.json */
    int32_t n_params;       /* %(name)s templates of the sweep file (--param) */
    const mt_cfg_var *params;
    mt_sweep_table_fn table;
    void *table_user;
    bool handle_signals;    /* SIGTERM/SIGINT: stop handing out trials, let running trials
                               write their checkpoints, return with result.interrupted
                               (default true) */
} mt_sweep_options;
void mt_sweep_options_init(mt_sweep_options *o);

typedef struct mt_sweep_result {
    int64_t trials;          /* finished trials in the journal (all sessions) */
    int64_t ok, failed, pruned;
    int64_t run_here;        /* trials finished in this session */
    int64_t resumed_trials;  /* unfinished trials found in the journal and run again */
    int64_t best_id;         /* -1: none */
    double best_value;       /* the objective value (not the loss) of the best trial */
    double seconds;
    double coordinator_busy_s; /* coordinator time spent outside waiting for messages */
    int interrupted;         /* signal that stopped the sweep, 0 */
    int32_t lost_groups;     /* worker groups that stopped answering (their trials were
                                requeued or failed): their ranks may still hang, so the
                                caller should end the job (mt_comm_abort) */
    bool is_coordinator;     /* this process wrote the journal */
    char dir[512];
} mt_sweep_result;

/* Runs (or continues) the sweep of a `!obj:Sweep` file. Collective over options.comm: every
 * rank calls it with the same file. Errors in the file: ERR_INVALID "FILE:LINE:COL: ...";
 * a journal that belongs to another sweep, or a malformed journal: ERR_FORMAT naming
 * FILE:LINE. A failing trial is not an error of the sweep. */
mt_status mt_sweep_run(const char *path, const mt_sweep_options *o, mt_sweep_result *res);

/* --dry-run: validates the file (the Sweep keys, the space, the Train object) and appends the
 * settings and the space (mt_sweep_print) and the sweep directory. */
mt_status mt_sweep_dry_run(const char *path, const mt_sweep_options *o, mt_strbuf *out);

/* The sbatch script of a job-array sweep (random or grid search): --array=0-(max_trials-1)
 * %max_concurrent, logs %A_%a, --signal and --requeue, running
 * `mltrain SWEEP --array-task $SLURM_ARRAY_TASK_ID`. `mltrain_cmd` is the command to call
 * (NULL: "mltrain"). ERR_INVALID for TPE (it needs the history: use one mpirun allocation). */
mt_status mt_sweep_sbatch(const char *path, const mt_sweep_options *o, const char *mltrain_cmd,
                          mt_strbuf *out);

/* `mltrain sweep-report DIR`: reads DIR/space.json, DIR/journal.jsonl (and
 * trial_NNNN/result.json of job-array tasks not in a journal), appends a report (counts, the
 * best trials with their parameters, a rough parameter importance table: Spearman rank
 * correlation with the objective for numeric parameters, spread of the mean objective per
 * option for categorical ones) to out, and, when png_prefix is not NULL, draws
 * PREFIX_history.png (objective per trial and best so far), PREFIX_intermediate.png (the
 * reported values per epoch of every trial) and PREFIX_parallel.png (parallel coordinates:
 * an axis per parameter, linear, log or categorical as the space says, and one for the
 * objective; a line per finished trial coloured by its objective, the 3 best thick, pruned
 * and failed ones faint). top: how many best trials to list. */
mt_status mt_sweep_report(const char *dir, int32_t top, const char *png_prefix, mt_strbuf *out);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_HYPEROPT_RUN_H */
