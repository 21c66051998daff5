/* `mltrain SWEEP.yaml [options]` (a file whose root is !obj:Sweep) and `mltrain sweep-report
 * DIR`: runs or continues a hyperparameter sweep (include/mltrain/hyperopt_run.h) and prints
 * its live table on stdout (one row per event: start, report, finish), or reports on a sweep
 * directory. Under mpirun every rank runs this command; rank 0 coordinates and prints. Exit
 * codes: 0 done, 1 error, 2 usage, 3 stopped by a signal (running trials wrote their
 * checkpoints; the same command continues). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_sweep.h"
#include "cmd_train.h"
#include "mltrain/hyperopt_run.h"
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
    mt_cli_log_line(level, g_rank, msg);
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

typedef struct sweep_args {
    const char *file;
    bool dry_run, sbatch;
    double comm_timeout;
    mt_sweep_options o;
    mt_cli_params params;
} sweep_args;

/* The integer options (all >= 0): the field that arg sets, with the option's name, or NULL. */
static int64_t *int_option(const char *arg, mt_sweep_options *o, const char **name)
{
    static const char *const names[] = {"--max-trials", "--max-epochs", "--limit-batches",
                                        "--array-task"};
    int64_t *const fields[] = {&o->max_trials, &o->max_epochs, &o->limit_batches,
                               &o->array_task};
    for (int k = 0; k < 4; k++)
        if (mt_cli_is_opt(arg, names[k])) {
            *name = names[k];
            return fields[k];
        }
    return NULL;
}

static int parse(int argc, char **argv, sweep_args *a)
{
    mt_sweep_options_init(&a->o);
    a->comm_timeout = -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *opt;
        int64_t *field;
        int rc;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(arg, "--dry-run")) {
            a->dry_run = true;
        } else if (!strcmp(arg, "--emit-sbatch")) {
            a->sbatch = true;
        } else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            g_quiet = true;
        } else if (mt_cli_is_opt(arg, "--param") || !strcmp(arg, "-p")) {
            if ((rc = mt_cli_opt_param(argc, argv, &i, &a->params))) return rc;
        } else if (mt_cli_is_opt(arg, "--dir")) {
            if (mt_cli_opt_str(argc, argv, &i, "--dir", &a->o.dir)) return 2;
        } else if (mt_cli_is_opt(arg, "--device")) {
            if (mt_cli_opt_str(argc, argv, &i, "--device", &a->o.device)) return 2;
        } else if ((field = int_option(arg, &a->o, &opt))) {
            if (mt_cli_opt_int64(argc, argv, &i, opt, 0, field)) return 2;
        } else if (mt_cli_is_opt(arg, "--comm-timeout")) {
            if (mt_cli_opt_comm_timeout(argc, argv, &i, &a->comm_timeout)) return 2;
        } else if ((rc = mt_cli_file_arg(arg, &a->file, "sweep", usage))) {
            return rc;
        }
    }
    if (!a->file) {
        usage(stderr);
        return 2;
    }
    a->o.n_params = a->params.n;
    a->o.params = a->params.vars;
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
    mt_comm *world = NULL;
    if (mt_cli_comm_world(&world, a->comm_timeout, false, &g_rank))
        return mt_cli_fail("starting the ranks' communicator");
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
    mt_cli_params_deinit(&a->params);
    free(a);
    return rc;
}

int mt_cli_sweep_report(int argc, char **argv)
{
    const char *dir = NULL, *prefix = NULL;
    bool plots = true;
    int64_t top = 10;
    for (int i = 1; i < argc; i++) {
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
        } else if (mt_cli_is_opt(argv[i], "--top")) {
            if (mt_cli_opt_int64(argc, argv, &i, "--top", 1, &top)) return 2;
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
