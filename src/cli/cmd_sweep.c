/* `mltrain SWEEP.yaml [options]` (a file whose root is !obj:Sweep) and `mltrain sweep-report
 * DIR`: runs or continues a hyperparameter sweep (include/mltrain/hyperopt_run.h) and prints
 * its live table on stdout (one row per event: start, report, finish), or reports on a sweep
 * directory. Under mpirun every rank runs this command; rank 0 coordinates and prints. Exit
 * codes: 0 done, 1 error, 2 usage, 3 stopped by a signal (running trials wrote their
 * checkpoints; the same command continues). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_sweep.h"
#include "mltrain/hyperopt_run.h"
#include "mltrain/parallel.h"
#include "mltrain/train.h"

static bool g_quiet;
static int32_t g_rank;

static void on_log(mt_log_level level, const char *msg, void *user)
{
    (void)user;
    if ((g_quiet || g_rank > 0) && level < MT_LOG_WARN) return;
    /* the table shows the trials' progress: their own info lines (checkpoints saved, ...)
     * only with MLTRAIN_LOG set */
    if (level < MT_LOG_WARN && strncmp(msg, "sweep", 5) != 0 && !getenv("MLTRAIN_LOG")) return;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char prefix[32] = "";
    if (g_rank > 0) snprintf(prefix, sizeof prefix, "[rank %d] ", (int)g_rank);
    fprintf(stderr, "%smltrain: %s: %s\n", prefix, names[level < MT_LOG_LEVEL_COUNT ? level : 3],
            msg);
}

static void on_table(const char *line, bool header, void *user)
{
    (void)user;
    if (g_quiet) return;
    printf("%s\n", line);
    if (header) {
        size_t n = strlen(line);
        for (size_t i = 0; i < n; i++) putchar('-');
        putchar('\n');
    }
    fflush(stdout);
}

int mt_cli_is_sweep_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = buf;
    for (;;) { /* skip blank lines, comments and a document start */
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (*p == '#' || !strncmp(p, "---", 3) || !strncmp(p, "%YAML", 5)) {
            p = strchr(p, '\n');
            if (!p) return 0;
            continue;
        }
        break;
    }
    return !strncmp(p, "!obj:Sweep", 10) || !strncmp(p, "!obj:mltrain.hyperopt.Sweep", 27);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mltrain SWEEP.yaml [options]        (root !obj:Sweep; docs/hyperopt.md)\n"
            "       mpirun -np N mltrain SWEEP.yaml     rank 0 coordinates, the others train\n"
            "  --dry-run              validate, print the settings and the space; run nothing\n"
            "  --param NAME=VALUE     fill %%(NAME)s templates of the file\n"
            "  --dir DIR              the sweep directory (default storage.dir, else\n"
            "                         SWEEP.sweep/); running again continues it\n"
            "  --max-trials N         override search.max_trials\n"
            "  --max-epochs N         cap every trial's epochs\n"
            "  --limit-batches N      at most N batches per epoch (smoke runs)\n"
            "  --device D             the trials' device (host, opencl:P:D, cuda)\n"
            "  --array-task I         job-array mode (random/grid): run trial I only\n"
            "  --emit-sbatch          print a job-array sbatch script for this sweep\n"
            "  --comm-timeout S       deadline of collectives inside a trial's group\n"
            "  --quiet                no table\n"
            "exit codes: 0 done, 1 error, 2 usage, %d stopped by a signal (continue by running\n"
            "the same command again)\n",
            MT_TRAIN_EXIT_INTERRUPTED);
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s) return -1;
    *out = v;
    return 0;
}

static const char *value_of(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (!strncmp(argv[*i], opt, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (!strcmp(argv[*i], opt) && *i + 1 < argc) return argv[++*i];
    return NULL;
}

static bool is_opt(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return !strncmp(arg, opt, n) && (arg[n] == 0 || arg[n] == '=');
}

typedef struct sweep_args {
    const char *file;
    bool dry_run, sbatch;
    double comm_timeout;
    mt_sweep_options o;
    int32_t n_params;
    mt_cfg_var params[64];
    char *store[64];
} sweep_args;

static int parse(int argc, char **argv, sweep_args *a)
{
    mt_sweep_options_init(&a->o);
    a->comm_timeout = -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        int64_t n;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(arg, "--dry-run")) {
            a->dry_run = true;
        } else if (!strcmp(arg, "--emit-sbatch")) {
            a->sbatch = true;
        } else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            g_quiet = true;
        } else if (is_opt(arg, "--param") || !strcmp(arg, "-p")) {
            if (!(v = value_of(argc, argv, &i, arg[1] == 'p' ? "-p" : "--param"))) goto missing;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || a->n_params == 64) {
                fprintf(stderr, "mltrain: error: --param wants NAME=VALUE, got '%s'\n", v);
                return 2;
            }
            char *name = strndup(v, (size_t)(eq - v));
            if (!name) return 1;
            a->store[a->n_params] = name;
            a->params[a->n_params++] = (mt_cfg_var){name, eq + 1};
        } else if (is_opt(arg, "--dir")) {
            if (!(a->o.dir = value_of(argc, argv, &i, "--dir"))) goto missing;
        } else if (is_opt(arg, "--device")) {
            if (!(a->o.device = value_of(argc, argv, &i, "--device"))) goto missing;
        } else if (is_opt(arg, "--max-trials") || is_opt(arg, "--max-epochs") ||
                   is_opt(arg, "--limit-batches") || is_opt(arg, "--array-task")) {
            const char *opt = is_opt(arg, "--max-trials")    ? "--max-trials"
                              : is_opt(arg, "--max-epochs")  ? "--max-epochs"
                              : is_opt(arg, "--array-task")  ? "--array-task"
                                                             : "--limit-batches";
            if (!(v = value_of(argc, argv, &i, opt))) goto missing;
            if (parse_i64(v, &n) || n < 0) {
                fprintf(stderr, "mltrain: error: %s wants an integer >= 0, got '%s'\n", opt, v);
                return 2;
            }
            if (!strcmp(opt, "--max-trials")) a->o.max_trials = n;
            if (!strcmp(opt, "--max-epochs")) a->o.max_epochs = n;
            if (!strcmp(opt, "--array-task")) a->o.array_task = n;
            if (!strcmp(opt, "--limit-batches")) a->o.limit_batches = n;
        } else if (is_opt(arg, "--comm-timeout")) {
            if (!(v = value_of(argc, argv, &i, "--comm-timeout"))) goto missing;
            a->comm_timeout = atof(v);
        } else if (arg[0] == '-' && arg[1]) {
            fprintf(stderr, "mltrain: error: unknown sweep option '%s'\n\n", arg);
            usage(stderr);
            return 2;
        } else if (!a->file) {
            a->file = arg;
        } else {
            fprintf(stderr, "mltrain: error: one sweep file at a time ('%s' and '%s')\n", a->file,
                    arg);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "mltrain: error: %s needs a value\n", arg);
        return 2;
    }
    if (!a->file) {
        usage(stderr);
        return 2;
    }
    a->o.n_params = a->n_params;
    a->o.params = a->params;
    return 0;
}

static int run(sweep_args *a)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    if (a->dry_run || a->sbatch) {
        mt_status st = a->sbatch ? mt_sweep_sbatch(a->file, &a->o, NULL, &sb)
                                 : mt_sweep_dry_run(a->file, &a->o, &sb);
        int rc = 0;
        if (st)
            rc = mt_cli_fail(a->sbatch ? "--emit-sbatch" : "--dry-run");
        else
            printf("%s%s", sb.data ? sb.data : "", a->sbatch ? "" : "dry run: OK (nothing run)\n");
        mt_strbuf_deinit(&sb);
        return rc;
    }
    mt_strbuf_deinit(&sb);
    mt_launch_info li;
    mt_launch_info_get(&li);
    g_rank = li.rank;
    const char *t = getenv("MLTRAIN_NUM_THREADS");
    if (li.size > 1 && !(t && *t)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", (int)mt_dp_default_threads());
        setenv("MLTRAIN_NUM_THREADS", buf, 1);
    }
    mt_comm_options co;
    mt_comm_options_init(&co);
    if (a->comm_timeout >= 0) co.timeout_s = a->comm_timeout;
    mt_comm *world = NULL;
    if (mt_comm_world(&world, &co)) return mt_cli_fail("starting the ranks' communicator");
    g_rank = mt_comm_rank(world);
    a->o.comm = world;
    a->o.table = on_table;
    mt_sweep_result res;
    mt_status st = mt_sweep_run(a->file, &a->o, &res);
    int rc = 0;
    if (st) {
        char msg[MT_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "%s: %s", mt_status_name(st), mt_last_error());
        if (mt_comm_size(world) > 1) mt_comm_abort(world, 1, msg); /* returns only when local */
        fprintf(stderr, "mltrain: error: %s\n", msg);
        rc = 1;
    } else if (res.is_coordinator && !g_quiet) {
        printf("sweep %s: %lld trials finished (%lld ok, %lld pruned, %lld failed; %lld in this "
               "run%s), %.2f s",
               res.dir, (long long)res.trials, (long long)res.ok, (long long)res.pruned,
               (long long)res.failed, (long long)res.run_here,
               res.resumed_trials ? ", unfinished ones rerun" : "", res.seconds);
        if (res.best_id >= 0)
            printf("; best: trial %lld = %.6g", (long long)res.best_id, res.best_value);
        if (res.run_here > 0)
            printf("; coordinator busy %.3f ms per trial",
                   1e3 * res.coordinator_busy_s / (double)res.run_here);
        printf("\n");
        fflush(stdout);
    }
    if (!st && res.interrupted) {
        if (res.is_coordinator)
            fprintf(stderr, "mltrain: sweep stopped by signal %d; run the same command again to "
                            "continue\n",
                    res.interrupted);
        rc = MT_TRAIN_EXIT_INTERRUPTED;
    }
    if (!st && res.is_coordinator && res.lost_groups > 0) {
        /* the lost groups' ranks may hang forever: end the job (the journal is complete) */
        char msg[160];
        snprintf(msg, sizeof msg, "%d worker group(s) stopped answering; the journal is "
                                  "complete, ending the job", (int)res.lost_groups);
        mt_comm_abort(world, 1, msg);
        rc = 1;
    }
    mt_comm_free(world);
    return rc;
}

int mt_cli_sweep(int argc, char **argv)
{
    sweep_args *a = calloc(1, sizeof *a);
    if (!a) return 1;
    int rc = parse(argc, argv, a);
    if (rc == 0) {
        mt_log_set_callback(on_log, NULL);
        if (!g_quiet && !getenv("MLTRAIN_LOG")) mt_log_set_level(MT_LOG_INFO);
        rc = run(a);
        mt_log_set_callback(NULL, NULL);
    } else if (rc < 0) {
        rc = 0;
    }
    for (int32_t i = 0; i < a->n_params; i++) free(a->store[i]);
    free(a);
    return rc;
}

int mt_cli_sweep_report(int argc, char **argv)
{
    const char *dir = NULL, *prefix = NULL;
    bool plots = true;
    int64_t top = 10;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mltrain sweep-report DIR [--top N] [-o PREFIX] [--no-plots]\n"
                   "  the best trials of a sweep directory, and PREFIX_history.png (objective per\n"
                   "  trial, best so far), PREFIX_intermediate.png (values per epoch) and\n"
                   "  PREFIX_parallel.png (parallel coordinates of the parameters and the\n"
                   "  objective), with a rough parameter importance table;\n"
                   "  PREFIX defaults to DIR/report\n");
            return 0;
        } else if (!strcmp(argv[i], "--no-plots")) {
            plots = false;
        } else if (is_opt(argv[i], "--top")) {
            if (!(v = value_of(argc, argv, &i, "--top")) || parse_i64(v, &top) || top < 1) {
                fprintf(stderr, "mltrain: error: --top wants an integer >= 1\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "-o")) {
            if (++i >= argc) {
                fprintf(stderr, "mltrain: error: -o needs a value\n");
                return 2;
            }
            prefix = argv[i];
        } else if (!dir && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            fprintf(stderr, "mltrain: error: sweep-report: unexpected '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: mltrain sweep-report DIR [--top N] [-o PREFIX] [--no-plots]\n");
        return 2;
    }
    char def[1100];
    snprintf(def, sizeof def, "%s/report", dir);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_sweep_report(dir, (int32_t)top, plots ? (prefix ? prefix : def) : NULL, &sb);
    if (st == MT_ERR_NOT_BUILT && plots) { /* no cairo: the text report still helps */
        fprintf(stderr, "mltrain: warning: %s\n", mt_last_error());
        mt_strbuf_clear(&sb);
        st = mt_sweep_report(dir, (int32_t)top, NULL, &sb);
    }
    int rc = 0;
    if (st)
        rc = mt_cli_fail("sweep-report");
    else
        printf("%s", sb.data ? sb.data : "");
    mt_strbuf_deinit(&sb);
    return rc;
}
