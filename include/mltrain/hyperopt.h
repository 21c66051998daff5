/* mltrain hyperopt: the search core of hyperparameter sweeps (docs/hyperopt.md).
 *
 *   space     the parameters of a sweep, extracted from a config tree: every search tag
 *             (!uniform, !quniform, !loguniform, !qloguniform, !normal, !qnormal, !lognormal,
 *             !qlognormal, !randint, !intuniform, !choice, !pchoice, !grid) under `params:` and
 *             under `train:` of a `!obj:Sweep` root. Labels are YAML paths ("params.lr",
 *             "train.model.layers[0].dim", "train.model.layers[0][1].num_units" for a parameter
 *             inside option 1 of the !choice at layers[0]) unless the long form gives `name:`.
 *             A parameter inside an option of a !choice (or !pchoice, !grid) is conditional: it
 *             is active only when that option is taken (hyperopt's tree-structured spaces).
 *   point     one value per parameter (choices: the option index; integer parameters: an
 *             integral value) and whether it is active.
 *   history   the trials so far: id, point, status (running/ok/failed/pruned), loss (smaller
 *             is better), intermediate losses per step (epoch).
 *   sampler   suggest(history, trial id) -> point: random (prior sampling), grid (Cartesian
 *             product of !grid/!choice/!pchoice/!randint/!intuniform values), TPE (hyperopt's
 *             tpe.suggest with its defaults; Optuna's split as an option).
 *   pruner    continue/prune from a trial's intermediate values: none, median stopping,
 *             ASHA (asynchronous successive halving with rungs at min_resource * eta^k).
 *   resolve   a copy of the Train tree with a point substituted: numeric tags become INT or
 *             FLOAT nodes, choices become the chosen option (itself resolved), `!param NAME`
 *             and a string "${params.NAME}" become the value of params.NAME, and ${trial.*} /
 *             ${sweep.*} variables are substituted in strings. mt_cfg_dump writes it as a
 *             single-run YAML file.
 *   sweep     the `!obj:Sweep` component (registered in a config registry), validation of a
 *             Sweep root with file:line:column errors, its settings as a struct, the printed
 *             space for --dry-run, and objectives written as expressions of the parameters
 *             (mltrain's expression language) so the machinery runs without training.
 *
 * Randomness: every draw comes from Philox4x32-10 keyed by (sweep seed, trial id), so a
 * trial's point depends only on the seed, its id and (for TPE) the history it was given: the
 * same on every rank and after a restart. Numbers differ from hyperopt's NumPy draws; the
 * algorithm is the same.
 *
 * Thread safety: objects are used by one thread at a time; distinct objects are independent. */
#ifndef MLTRAIN_HYPEROPT_H
#define MLTRAIN_HYPEROPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/config.h"
#include "mltrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- spaces */

#define MT_HPO_DIST_MAP(X)                                                                         \
    X(UNIFORM, "uniform")         /* [low, high) */                                                \
    X(QUNIFORM, "quniform")       /* round(uniform(low, high) / q) * q */                          \
    X(LOGUNIFORM, "loguniform")   /* exp(uniform(log low, log high)); bounds natural units */      \
    X(QLOGUNIFORM, "qloguniform") /* round(loguniform / q) * q */                                  \
    X(NORMAL, "normal")           /* normal(mu, sigma) */                                          \
    X(QNORMAL, "qnormal")                                                                          \
    X(LOGNORMAL, "lognormal") /* exp(normal(mu, sigma)): mu, sigma of log x */                     \
    X(QLOGNORMAL, "qlognormal")                                                                    \
    X(RANDINT, "randint")       /* integers low <= x < high, unordered (categorical) */            \
    X(INTUNIFORM, "intuniform") /* int(quniform(low, high, 1)): low..high, ordered */              \
    X(CHOICE, "choice")         /* one of the options, uniformly */                                \
    X(PCHOICE, "pchoice")       /* one of the options with the given probabilities */              \
    X(GRID, "grid")             /* an axis of the grid; other algorithms: a choice */

typedef enum mt_hpo_dist {
#define MT__HPO_DIST_ENUM(name, text) MT_HPO_##name,
    MT_HPO_DIST_MAP(MT__HPO_DIST_ENUM)
#undef MT__HPO_DIST_ENUM
        MT_HPO_DIST_COUNT
} mt_hpo_dist;

const char *mt_hpo_dist_name(mt_hpo_dist d);    /* "uniform", ...; "invalid" out of range */
bool mt_hpo_dist_is_categorical(mt_hpo_dist d); /* RANDINT, CHOICE, PCHOICE, GRID */

typedef struct mt_hpo_param {
    const char *label; /* unique: YAML path or the long form's name */
    const char *name;  /* identifier for expression objectives: the long form's name, else the
                          label's last key when no other parameter's label ends with it
                          (params.lr -> "lr", o[0].x -> "x"), else the label without
                          "params." and with non-identifier characters as '_' */
    mt_hpo_dist dist;
    double a, b;         /* low/high (natural units) or mu/sigma; RANDINT: low, high (excl.) */
    double q;            /* quantization step (Q* distributions), else 0 */
    bool is_int;         /* values are integers (RANDINT, INTUNIFORM, Q* with integer q and,
                            for QUNIFORM, integer bounds) */
    int32_t n_options;   /* CHOICE, PCHOICE, GRID: number of options; RANDINT: high - low */
    const double *probs; /* PCHOICE: option probabilities (sum 1); else NULL */
    const mt_cfg_node *const *options; /* CHOICE, PCHOICE, GRID: the option nodes */
    int32_t parent;          /* index of the categorical parameter this one depends on, or -1 */
    int32_t parent_option;   /* the option of `parent` that activates it */
    const mt_cfg_node *node; /* the tagged node (borrowed from the document) */
    mt_cfg_loc loc;
} mt_hpo_param;

typedef struct mt_hpo_space mt_hpo_space; /* opaque; borrows the document's nodes */

/* Extracts the space of a sweep: the search tags of `params` (a MAP, may be NULL: labels
 * "params.NAME") and of `tree` (may be NULL: labels start with tree_label, e.g. "train"),
 * in file order, parents before their conditional children. `!param NAME` and strings that are
 * exactly "${params.NAME}" inside `tree` must name an entry of params. A tagged node reached
 * twice (a YAML alias) is one parameter. Errors (ERR_INVALID, "FILE:LINE:COL: ..."): malformed
 * tags (`!uniform needs [low, high]`, low >= high, loguniform low <= 0, q <= 0, sigma <= 0, an
 * empty choice, pchoice probabilities that are not positive or do not sum to 1, randint
 * bounds), unknown params references, duplicate labels. The space borrows the nodes: the
 * document must outlive it. */
mt_status mt_hpo_space_extract(mt_hpo_space **out, const mt_cfg_node *params,
                               const mt_cfg_node *tree, const char *tree_label);
/* The same for a `!obj:Sweep` root (its `params` and `train`, tree_label "train"). */
mt_status mt_hpo_space_from_sweep(mt_hpo_space **out, const mt_cfg_node *sweep_root);
void mt_hpo_space_free(mt_hpo_space *s);
int32_t mt_hpo_space_count(const mt_hpo_space *s);
const mt_hpo_param *mt_hpo_space_param(const mt_hpo_space *s, int32_t i);    /* NULL if out */
int32_t mt_hpo_space_find(const mt_hpo_space *s, const char *label_or_name); /* -1: none */
/* One line per parameter, children indented under their option:
 *   params.lr                      loguniform [0.001, 0.3]
 *   train.model.layers[0]          choice of 2: RectifiedLinear | Maxout
 *     [0] train.model.layers[0][0].dim   quniform [200, 1200, q=100] int
 * followed by "N parameters (M conditional)". */
mt_status mt_hpo_space_print(const mt_hpo_space *s, mt_strbuf *sb);

/* ---------------------------------------------------------------- points */

typedef struct mt_hpo_point {
    int32_t n;      /* = mt_hpo_space_count */
    double *values; /* per parameter; categorical: the option index (RANDINT: the integer) */
    bool *active;   /* false: inside an option that was not taken (value NaN) */
} mt_hpo_point;

mt_status mt_hpo_point_init(mt_hpo_point *p, const mt_hpo_space *s); /* all inactive, NaN */
void mt_hpo_point_clear(mt_hpo_point *p); /* frees; a zeroed point is a no-op */
mt_status mt_hpo_point_copy(mt_hpo_point *dst, const mt_hpo_point *src); /* dst initialised */
bool mt_hpo_point_equal(const mt_hpo_point *a, const mt_hpo_point *b);
/* Recomputes `active` from the categorical values (top-down); inactive values become NaN. */
void mt_hpo_point_update_active(const mt_hpo_space *s, mt_hpo_point *p);
/* A draw from the prior, a function of (seed, trial_id) only (random search; TPE's startup). */
mt_status mt_hpo_sample_prior(const mt_hpo_space *s, uint64_t seed, int64_t trial_id,
                              mt_hpo_point *out);
/* Checks a point against the space (values inside the support, integers integral, option
 * indices in range, activity consistent): ERR_INVALID naming the label. */
mt_status mt_hpo_point_check(const mt_hpo_space *s, const mt_hpo_point *p);
/* JSON object of the active parameters, in space order: {"params.lr": 0.01, "train.x": 3}.
 * Categorical parameters are written as the option index (RANDINT as the integer), integers
 * without a decimal point, floats in the shortest form that reads back exactly. */
mt_status mt_hpo_point_to_json(const mt_hpo_space *s, const mt_hpo_point *p, mt_strbuf *sb);
/* Human-readable "lr=0.01 layers[0]=Maxout num_pieces=3" (choices as their option). */
mt_status mt_hpo_point_describe(const mt_hpo_space *s, const mt_hpo_point *p, mt_strbuf *sb);

typedef enum mt_hpo_point_keys {
    MT_HPO_KEYS_JOURNAL = 0, /* the JSON above read back (a YAML flow map is JSON's superset:
                                load the line with mt_cfg_load_string): choices are indices */
    MT_HPO_KEYS_USER,        /* points_to_evaluate: keys are labels or names, a choice value is
                                given as the option itself (a scalar equal to one option, or
                                the component name of a !obj option), or as the option index
                                when no option is a number */
} mt_hpo_point_keys;
/* Sets values from a MAP node {label: value}. Parameters it does not give keep their value in
 * *inout (call mt_hpo_sample_prior first to fill the rest from the prior); activity is then
 * recomputed. Errors name the key's file:line:column: unknown label, a value outside the
 * support, a choice value that matches no option. */
mt_status mt_hpo_point_from_cfg(const mt_hpo_space *s, const mt_cfg_node *map,
                                mt_hpo_point_keys keys, mt_hpo_point *inout);

/* ---------------------------------------------------------------- resolving a point */

typedef struct mt_hpo_tree mt_hpo_tree; /* opaque: owns the new nodes, borrows the document's */

/* Copies `tree` (the Train node of the sweep the space came from) with the point substituted:
 * each tag of an active parameter -> its value (INT for integer parameters, FLOAT otherwise;
 * categorical -> the chosen option, resolved recursively); `!param NAME` and a string that is
 * exactly "${params.NAME}" -> the value of params.NAME (a constant entry of params is
 * substituted as written); other strings get "${params.NAME}" and the `vars` (e.g. trial.id,
 * trial.dir, trial.seed, sweep.name) replaced textually; unknown ${...} stay as written. An
 * aliased node stays shared. ERR_INVALID if the point leaves a reached parameter inactive. */
mt_status mt_hpo_resolve(mt_hpo_tree **out, const mt_hpo_space *s, const mt_hpo_point *p,
                         const mt_cfg_node *tree, int32_t n_vars, const mt_cfg_var *vars);
const mt_cfg_node *mt_hpo_tree_root(const mt_hpo_tree *t);
void mt_hpo_tree_free(mt_hpo_tree *t);

/* ---------------------------------------------------------------- history */

typedef enum mt_hpo_status {
    MT_HPO_RUNNING = 0, /* suggested, no result yet */
    MT_HPO_OK,          /* finished with a loss */
    MT_HPO_FAILED,      /* error, NaN, out of memory, time limit */
    MT_HPO_PRUNED,      /* stopped by the pruner */
    MT_HPO_STATUS_COUNT
} mt_hpo_status;
const char *mt_hpo_status_name(mt_hpo_status st); /* "running", "ok", "failed", "pruned" */

typedef struct mt_hpo_trial {
    int64_t id; /* suggestion order: TPE's linear forgetting follows it */
    mt_hpo_status status;
    double loss; /* OK: the loss (minimized); NaN otherwise */
    mt_hpo_point point;
    int32_t n_reports; /* intermediate losses, increasing steps */
    int64_t *steps;    /* epoch numbers (>= 1) */
    double *values;
} mt_hpo_trial;

typedef struct mt_hpo_history mt_hpo_history; /* opaque */

mt_status mt_hpo_history_new(mt_hpo_history **out, const mt_hpo_space *s);
void mt_hpo_history_free(mt_hpo_history *h);
/* A new RUNNING trial with a copy of the point. ERR_INVALID for a duplicate id. */
mt_status mt_hpo_history_add(mt_hpo_history *h, int64_t id, const mt_hpo_point *p);
/* An intermediate loss at `step` (must exceed the trial's last step; a repeated step replaces
 * the last value, so a resumed trial may report its last epoch again). */
mt_status mt_hpo_history_report(mt_hpo_history *h, int64_t id, int64_t step, double value);
/* Sets the final status (OK with a finite loss; a NaN or infinite loss with OK is recorded as
 * FAILED). A finished trial may be finished again (a retry); RUNNING puts it back. */
mt_status mt_hpo_history_finish(mt_hpo_history *h, int64_t id, mt_hpo_status st, double loss);
int32_t mt_hpo_history_count(const mt_hpo_history *h);
const mt_hpo_trial *mt_hpo_history_at(const mt_hpo_history *h, int32_t i);    /* in id order */
const mt_hpo_trial *mt_hpo_history_find(const mt_hpo_history *h, int64_t id); /* NULL: none */
/* The OK trial with the smallest loss (ties: the smaller id), or NULL. */
const mt_hpo_trial *mt_hpo_history_best(const mt_hpo_history *h);

/* ---------------------------------------------------------------- samplers */

typedef enum mt_hpo_algorithm {
    MT_HPO_ALGO_RANDOM = 0,
    MT_HPO_ALGO_GRID,
    MT_HPO_ALGO_TPE,
    MT_HPO_ALGO_COUNT
} mt_hpo_algorithm;
const char *mt_hpo_algorithm_name(mt_hpo_algorithm a); /* "random", "grid", "tpe" */

typedef enum mt_hpo_split {
    MT_HPO_SPLIT_SQRT = 0, /* hyperopt: n_below = min(ceil(gamma * sqrt(N)), LF) */
    MT_HPO_SPLIT_LINEAR,   /* Optuna:   n_below = min(ceil(gamma * N), 25) */
} mt_hpo_split;

/* What TPE does with RUNNING trials (FAILED ones always count with loss +inf, as hyperopt). */
typedef enum mt_hpo_pending {
    MT_HPO_PENDING_WORST = 0,     /* hyperopt: loss +inf, counted in N, observed */
    MT_HPO_PENDING_CONSTANT_LIAR, /* Optuna: always in the "above" group, even when the below
                                     group is not full */
    MT_HPO_PENDING_IGNORE,        /* left out entirely (not counted, not observed) */
} mt_hpo_pending;

typedef struct mt_hpo_tpe_options {
    int32_t n_startup;         /* [20] prior draws while fewer trials exist (any status) */
    int32_t n_ei_candidates;   /* [24] draws from l(x) per parameter */
    double gamma;              /* [0.25] */
    mt_hpo_split split;        /* [SQRT] */
    double prior_weight;       /* [1.0] */
    int32_t linear_forgetting; /* [25] (n_below is capped at 25 whatever this is, as hyperopt) */
    mt_hpo_pending pending;    /* [WORST] */
} mt_hpo_tpe_options;
void mt_hpo_tpe_options_init(mt_hpo_tpe_options *o);        /* hyperopt's defaults */
void mt_hpo_tpe_options_init_optuna(mt_hpo_tpe_options *o); /* gamma 0.1, LINEAR, startup 10 */

typedef struct mt_hpo_sampler_options {
    mt_hpo_algorithm algorithm; /* [TPE] */
    uint64_t seed;              /* [0] */
    mt_hpo_tpe_options tpe;
} mt_hpo_sampler_options;
void mt_hpo_sampler_options_init(mt_hpo_sampler_options *o);

typedef struct mt_hpo_sampler mt_hpo_sampler; /* opaque; borrows the space */

/* ERR_INVALID for GRID over a space with a continuous parameter (naming it: "grid search needs
 * finite values: write !grid [...] or !choice [...]") or a grid of more than 2^62 points, and
 * for TPE options out of range. */
mt_status mt_hpo_sampler_new(mt_hpo_sampler **out, const mt_hpo_space *s,
                             const mt_hpo_sampler_options *o);
void mt_hpo_sampler_free(mt_hpo_sampler *sm);
/* The point for trial `trial_id` (the history may be NULL for RANDOM and GRID). RANDOM:
 * mt_hpo_sample_prior(seed, id). GRID: grid point number `trial_id` (first parameter slowest);
 * ERR_RANGE when trial_id >= mt_hpo_sampler_grid_size. TPE: prior draw while the history has
 * fewer than n_startup trials, else hyperopt's tpe.suggest; deterministic in (seed, trial_id,
 * history). *out must be initialised for the space. */
mt_status mt_hpo_sampler_suggest(mt_hpo_sampler *sm, const mt_hpo_history *h, int64_t trial_id,
                                 mt_hpo_point *out);
/* GRID: the number of grid points; other algorithms: -1 (unbounded). */
int64_t mt_hpo_sampler_grid_size(const mt_hpo_sampler *sm);

/* ---------------------------------------------------------------- pruners */

typedef enum mt_hpo_pruner_type {
    MT_HPO_PRUNER_NONE = 0,
    MT_HPO_PRUNER_MEDIAN,
    MT_HPO_PRUNER_ASHA,
    MT_HPO_PRUNER_COUNT
} mt_hpo_pruner_type;
const char *mt_hpo_pruner_name(mt_hpo_pruner_type t); /* "none", "median", "asha" */

typedef struct mt_hpo_pruner_options {
    mt_hpo_pruner_type type; /* [NONE] */
    /* MEDIAN (Optuna's MedianPruner): */
    int32_t n_startup_trials; /* [5] no pruning before this many OK trials */
    int64_t n_warmup_steps;   /* [0] no pruning at steps below this */
    int64_t interval_steps;   /* [1] decide at warmup + k * interval only */
    int32_t n_min_trials;     /* [1] OK trials that reported the step, at least */
    /* ASHA: */
    int64_t min_resource;            /* [1] first rung at min_resource epochs */
    int32_t reduction_factor;        /* [3] eta >= 2 */
    int32_t min_early_stopping_rate; /* [0] rungs at min_resource * eta^(k + rate) */
    int64_t max_resource;            /* [0] no rung beyond this step (0: unbounded) */
} mt_hpo_pruner_options;
void mt_hpo_pruner_options_init(mt_hpo_pruner_options *o);

typedef struct mt_hpo_pruner mt_hpo_pruner; /* opaque */
mt_status mt_hpo_pruner_new(mt_hpo_pruner **out, const mt_hpo_pruner_options *o);
void mt_hpo_pruner_free(mt_hpo_pruner *p);
/* Decides on trial `id`'s latest report in the history (record the report first): *prune true
 * means stop it now. Rules (docs/hyperopt.md):
 *  MEDIAN: with at least n_startup_trials OK trials, at a step s >= n_warmup_steps on the
 *    interval, prune when the trial's best loss so far exceeds the median of the losses that
 *    OK trials reported at step s (at least n_min_trials of them; none: continue); a NaN
 *    best prunes.
 *  ASHA: the trial's value at rung k is its loss at its first report at a step >= r_k =
 *    min_resource * eta^(k + rate). When this report is that first report for some rung, the
 *    values of every trial that has a value at that rung (this one included, any status) are
 *    ranked: with n of them the trial continues if it is among the best floor(n / eta) (ties
 *    continue); when floor(n / eta) is 0 only if it is the best so far. Otherwise prune. */
mt_status mt_hpo_pruner_decide(mt_hpo_pruner *p, const mt_hpo_history *h, int64_t id, bool *prune);
/* The rung steps r_0 < r_1 < ... up to max_resource (or `limit`), at most cap of them. */
int32_t mt_hpo_pruner_rungs(const mt_hpo_pruner *p, int64_t limit, int64_t *out, int32_t cap);

/* ---------------------------------------------------------------- expression objectives */

typedef struct mt_hpo_expr mt_hpo_expr; /* opaque: a compiled expression */

/* Parses `text` in mltrain's expression language with each parameter of the space as a
 * float64 scalar under its `name` (mt_hpo_param.name; categorical parameters give the chosen
 * option's number when the option is a number, else its index). ERR_INVALID with
 * "expression: L:C: message" for syntax and unknown names. */
mt_status mt_hpo_expr_new(mt_hpo_expr **out, const mt_hpo_space *s, const char *text);
void mt_hpo_expr_free(mt_hpo_expr *e);
/* Evaluates at a point: *out is the scalar value (float64). A referenced parameter that is
 * inactive gives NaN. */
mt_status mt_hpo_expr_eval(mt_hpo_expr *e, const mt_hpo_point *p, double *out);
/* One-shot convenience: compiles, evaluates once, frees. */
mt_status mt_sweep_eval_expression(const char *text, const mt_hpo_space *s, const mt_hpo_point *p,
                                   double *out);

/* ---------------------------------------------------------------- the Sweep file */

typedef enum mt_sweep_on_failure { MT_SWEEP_RETRY = 0, MT_SWEEP_FAIL } mt_sweep_on_failure;
typedef enum mt_sweep_resume_from {
    MT_SWEEP_FROM_CHECKPOINT = 0,
    MT_SWEEP_FROM_SCRATCH
} mt_sweep_resume_from;
typedef enum mt_sweep_resume {
    MT_SWEEP_RESUME_AUTO = 0,
    MT_SWEEP_RESUME_NEVER,
    MT_SWEEP_RESUME_FORCE
} mt_sweep_resume;
typedef enum mt_sweep_keep {
    MT_SWEEP_KEEP_BEST = 0,
    MT_SWEEP_KEEP_LAST,
    MT_SWEEP_KEEP_ALL
} mt_sweep_keep;

/* The settings of a `!obj:Sweep` root (strings and nodes borrowed from the document). Keys and
 * defaults (docs/hyperopt.md has the table):
 *   name ["sweep"], seed [0], params {}, train (required: a Train object),
 *   objective {channel | expression (one of them), mode: min|max [min], reduce: best|last
 *             [best]},
 *   search {algorithm: tpe|random|grid [tpe], max_trials [100; grid: -1 = the grid size],
 *           max_concurrent [1], time_budget_s [0 = none], seed (overrides the root's),
 *           tpe {n_startup, n_ei_candidates, gamma, split: sqrt|linear, prior_weight,
 *                linear_forgetting, pending_policy: worst|constant_liar|ignore},
 *           points_to_evaluate [list of {label-or-name: value}],
 *           early_stop {no_progress_trials [0 = off], min_delta [0], loss_threshold [none]}},
 *   pruner {type: none|median|asha [none], n_startup_trials, n_warmup_steps, interval_steps,
 *           n_min_trials, min_resource, reduction_factor, min_early_stopping_rate,
 *           max_resource, step: epoch},
 *   distributed {coordinator_rank [0], ranks_per_trial [1], heartbeat_s [30],
 *                lease_grace_s [120], max_retries [2], on_failure: retry|fail,
 *                resume_from: checkpoint|scratch, checkpoint_every_epochs [1],
 *                trial_time_limit_s [0 = none]},
 *   storage {dir ["<file stem>.sweep", given by the caller], journal ["journal.jsonl"],
 *            fsync [true], resume: auto|never|force, keep_checkpoints: best|last|all}. */
typedef struct mt_sweep_config {
    const char *name;
    const mt_cfg_node *params; /* MAP or NULL */
    const mt_cfg_node *train;  /* the Train OBJ node */
    struct {
        const char *channel;    /* NULL when expression is set */
        const char *expression; /* NULL when channel is set */
        bool maximize;
        bool reduce_last; /* false: best value over epochs */
        mt_cfg_loc loc;
    } objective;
    mt_hpo_sampler_options sampler; /* algorithm, seed, tpe */
    int64_t max_trials;
    int32_t max_concurrent;
    double time_budget_s;
    const mt_cfg_node *points_to_evaluate; /* LIST or NULL */
    struct {
        int64_t no_progress_trials;
        double min_delta;
        bool has_loss_threshold;
        double loss_threshold;
    } early_stop;
    mt_hpo_pruner_options pruner;
    struct {
        int32_t coordinator_rank, ranks_per_trial, max_retries;
        double heartbeat_s, lease_grace_s, trial_time_limit_s;
        mt_sweep_on_failure on_failure;
        mt_sweep_resume_from resume_from;
        int64_t checkpoint_every_epochs;
    } distributed;
    struct {
        const char *dir; /* NULL: the caller's default */
        const char *journal;
        bool fsync;
        mt_sweep_resume resume;
        mt_sweep_keep keep_checkpoints;
    } storage;
} mt_sweep_config;

/* Registers `Sweep` (kind "sweep"; Pylearn2-style alias "mltrain.hyperopt.Sweep") in a
 * registry that already holds the Train components (mt_train_registry_new). */
mt_status mt_sweep_register_components(mt_cfg_registry *r);
/* Validates a Sweep root: the Sweep keys and sub-mappings (unknown keys with "did you mean",
 * types, enums, ranges), the space (malformed tags, unknown params references), the objective,
 * grid feasibility, points_to_evaluate, and the Train object against the registry with every
 * "${params.NAME}" / !param NAME standing for that parameter. The first problem is an
 * ERR_INVALID "FILE:LINE:COL: ..." error. */
mt_status mt_sweep_validate(const mt_cfg_registry *r, const mt_cfg_node *root);
/* Reads the settings (the root must be a `!obj:Sweep` node; errors as above, without the
 * Train validation, which needs the registry). */
mt_status mt_sweep_config_read(mt_sweep_config *out, const mt_cfg_node *root);
/* The objective value as a loss: -value when maximizing. */
double mt_sweep_objective_loss(const mt_sweep_config *c, double value);
/* For --dry-run: the settings (algorithm and its options, budget, pruner and its rungs,
 * objective) and the space (mt_hpo_space_print), with the grid size for grid search. */
mt_status mt_sweep_print(const mt_sweep_config *c, const mt_hpo_space *s, mt_strbuf *sb);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_HYPEROPT_H */
