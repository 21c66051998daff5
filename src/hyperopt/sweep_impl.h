/* Internals of running sweeps (hyperopt_run.h): the sweep state every rank loads from the
 * file, the coordinator's per-trial records, the journal (sweep_journal.c), one trial's run
 * (sweep_trial.c) and the coordinator/worker protocol (sweep_coord.c). */
#ifndef MT_SWEEP_IMPL_H
#define MT_SWEEP_IMPL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mltrain/comm.h"
#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/graph.h"
#include "mltrain/hyperopt.h"
#include "mltrain/hyperopt_run.h"

enum { MT__SW_QUEUED = 0, MT__SW_RUNNING, MT__SW_DONE };

/* A trial as the coordinator knows it (index = id). */
typedef struct mt__sw_trial {
    int32_t state;        /* MT__SW_QUEUED (created, waiting to run), RUNNING, DONE */
    mt_hpo_status status; /* DONE: OK, FAILED, PRUNED */
    int32_t attempts;     /* trial_started records (all sessions) */
    double value, loss;   /* final objective value and loss (NaN when none) */
    int64_t best_epoch, epochs;
    double seconds;
    char *message;        /* failure message (owned) */
    int32_t group;        /* RUNNING: the group that runs it */
    double last_seen;     /* RUNNING: monotonic time of the group's last message */
    int64_t last_step;    /* last reported epoch (0: none) */
    double last_value;
} mt__sw_trial;

typedef struct mt__sweep {
    mt_sweep_options o;
    char *path;
    mt_cfg_registry *reg;
    mt_cfg_doc *doc;
    const mt_cfg_node *root;
    mt_sweep_config cfg;
    mt_hpo_space *space;
    mt_hpo_sampler *sampler;
    mt_hpo_pruner *pruner;
    mt_hpo_history *hist;
    mt_hpo_expr *expr;   /* expression objective (mt__hpo_objective_new), else NULL */
    char *dir;           /* the sweep directory */
    char *journal_path;
    int jfd;             /* -1: closed */
    char space_hash[65];
    int64_t max_trials;  /* resolved (grid size for grid search) */

    /* coordinator state */
    int64_t n_trials, cap_trials; /* created trials, ids 0..n_trials-1 */
    mt__sw_trial *trials;
    int64_t n_finished, run_here, resumed_trials;
    int64_t best_id;
    double prior_seconds; /* sweep seconds of earlier sessions (journal) */
    double t0;            /* monotonic start of this session */
    double busy_s;
    double summary_time;  /* last summary.csv rewrite (monotonic) */
    int64_t since_improvement; /* finished trials since the best improved by min_delta */
    volatile sig_atomic_t *signal_flag;
} mt__sweep;

/* ---- loading (sweep_coord.c) */
mt_status mt__sw_open(mt__sweep *sw, const char *path, const mt_sweep_options *o);
void mt__sw_close(mt__sweep *sw);
/* trial_NNNN under the sweep directory */
void mt__sw_trial_dir(const mt__sweep *sw, int64_t id, char *buf, size_t cap);

/* ---- journal (sweep_journal.c) */
/* JSON string of s (quotes included); '$' and '%' are written as \u0024 / \u0025 so the
 * config loader's template and variable stages leave them alone when the line is read. */
void mt__sw_json_str(mt_strbuf *sb, const char *s);
void mt__sw_json_num(mt_strbuf *sb, double v); /* null when not finite */
/* Replays sw->journal_path into the coordinator state (history, trials) and opens it for
 * appending; creates it (with the header record) when absent. */
mt_status mt__sw_journal_open(mt__sweep *sw);
/* Appends one record (a JSON object without the newline) and fsyncs when storage.fsync. */
mt_status mt__sw_journal_append(mt__sweep *sw, const char *record);
void mt__sw_journal_close(mt__sweep *sw);
/* Marks trial id finished in the coordinator state and the history (replay and live). */
mt_status mt__sw_record_finish(mt__sweep *sw, int64_t id, mt_hpo_status status, double value,
                               int64_t best_epoch, int64_t epochs, double seconds,
                               const char *message);
/* summary.csv from the finished trials (atomic rewrite). */
mt_status mt__sw_write_summary(mt__sweep *sw);
/* trial_dir/result.json of one trial. */
mt_status mt__sw_write_result(const mt__sweep *sw, int64_t id, const mt_hpo_point *p,
                              const char *status, double value, double loss, int64_t best_epoch,
                              int64_t epochs, double seconds, const char *message,
                              int32_t n_reports, const int64_t *steps, const double *values);

/* ---- trials (sweep_trial.c) */
typedef struct mt__sw_reporter {
    /* After a monitor call with the objective's value at `epoch` (>= 1): *prune stops it. */
    void (*report)(void *user, int64_t trial, int64_t epoch, double value, bool *prune);
    /* While training (at most every heartbeat_s). NULL ok. */
    void (*beat)(void *user, int64_t trial);
    void *user;
} mt__sw_reporter;

typedef struct mt__sw_outcome {
    mt_hpo_status status;  /* OK, FAILED, PRUNED */
    bool interrupted;      /* stopped by a signal: not finished (checkpoint written) */
    bool time_limited;
    double value;          /* the objective value (best or last), NaN when none */
    int64_t best_epoch, epochs;
    double seconds;
    char message[768];
    /* the reported values (leader only) */
    int32_t n_reports, cap_reports;
    int64_t *steps;
    double *values;
} mt__sw_outcome;
void mt__sw_outcome_clear(mt__sw_outcome *oc);
/* Appends (step, v) to a series of increasing steps (*n of *cap entries), first dropping the
 * entries at or after step (a resumed run repeats or rewinds). Out of memory: not appended. */
void mt__sw_series_add(int64_t **steps, double **values, int32_t *n, int32_t *cap, int64_t step,
                       double v);


/* Writes trial_dir/resolved.yaml for the point (the coordinator, before the trial starts). */
mt_status mt__sw_write_resolved(mt__sweep *sw, int64_t id, const mt_hpo_point *p);
/* Runs trial `id` on `group` (NULL: this process alone; else every rank of the group calls
 * it, rank 0 of the group reports). A failing trial is an OK return with status FAILED. */
mt_status mt__sw_run_trial(mt__sweep *sw, int64_t id, int32_t attempt, const mt_hpo_point *p,
                           mt_comm *group, const mt__sw_reporter *rep, mt__sw_outcome *out);

/* ---- TensorBoard HParams and space.json (sweep_tb.c); failures are warnings */
/* DIR/space.json and the HParams experiment in DIR. */
void mt__sw_write_space_info(const mt__sweep *sw);
/* The trial's session start (its point) and end (status, final objective value). */
void mt__sw_tb_trial_start(const mt__sweep *sw, int64_t id, const mt_hpo_point *p);
void mt__sw_tb_trial_end(const mt__sweep *sw, int64_t id, const mt_hpo_point *p,
                         mt_hpo_status status, double value, int64_t epochs, double seconds);

/* ---- protocol (sweep_coord.c) */
/* Point of trial id for a new trial: points_to_evaluate first, then the sampler. */
mt_status mt__sw_suggest(mt__sweep *sw, int64_t id, mt_hpo_point *p);

#endif
