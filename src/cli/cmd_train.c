/* `mltrain JOB.yaml [options]`: runs a Pylearn2-style job file (include/mltrain/train.h).
 * Prints a one-line progress display updated in place on a terminal (stderr), one line per
 * monitor record otherwise (stdout), and turns statuses into exit codes: 0 done, 1 error,
 * 2 usage, 3 (MT_TRAIN_EXIT_INTERRUPTED) stopped by a signal after writing the checkpoint.
 *
 * Under mpirun or srun (`mpirun -np N mltrain job.yaml`) every rank runs this command: the
 * world communicator (comm.h) makes the run data-parallel (docs/parallel.md), each rank's
 * compute threads default to its share of the node's cores, rank 0 prints the progress and the
 * results, the other ranks print only warnings and errors, prefixed "[rank R]". An error on any
 * rank (a failed or timed-out collective included) stops every rank (mt_comm_abort). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_train.h"
#ifdef MT_CLI_HAVE_SWEEP
#include "cmd_sweep.h"
#endif
#include "mltrain/jit.h"
#include "mltrain/train.h"

typedef struct cli_progress {
    bool tty;
    bool quiet;
    bool line_open; /* a \r line is on screen */
    double last;
    int32_t rank;   /* this process's rank in a parallel run (0 otherwise) */
    bool verbose;   /* MLTRAIN_LOG set: every rank logs at that level */
} cli_progress;

static cli_progress g_progress; /* read by the log callback (the library logs through it) */

static void clear_line(cli_progress *c)
{
    if (c->line_open) {
        fputs("\r\033[K", stderr);
        c->line_open = false;
    }
}

static void on_log(mt_log_level level, const char *msg, void *user)
{
    cli_progress *c = user;
    if ((c->quiet || (c->rank > 0 && !c->verbose)) && level < MT_LOG_WARN) return;
    clear_line(c);
    mt_cli_log_line(level, c->rank, msg);
}

static void on_progress(const mt_train_progress *p, void *user)
{
    cli_progress *c = user;
    if (c->quiet) return;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_train_progress_format(p, &sb);
    const char *text = sb.data ? sb.data : "";
    if (p->is_monitor) {
        clear_line(c);
        printf("%s\n", text);
        fflush(stdout);
    } else if (c->tty) {
        fprintf(stderr, "\r\033[K%s", text);
        fflush(stderr);
        c->line_open = true;
    }
    mt_strbuf_deinit(&sb);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mltrain JOB.yaml [options]\n"
            "  --dry-run              load, validate and build the job, check channel names,\n"
            "                         print a summary; train nothing\n"
            "  --param NAME=VALUE     fill %%(NAME)s / %%(NAME)i templates (VALUE @file: its text)\n"
            "  --resume[=yes|auto|no] continue from the save_path checkpoint (auto: when it\n"
            "                         exists and belongs to this job)\n"
            "  --max-epochs N         stop after N epochs (in addition to the file's criteria)\n"
            "  --limit-batches N      at most N batches per epoch and per monitoring dataset\n"
            "                         (a quick smoke run of a job)\n"
            "  --device D             host (default), opencl:P:D, cuda:N, or cuda (one GPU per\n"
            "                         local rank)\n"
            "  --run-dir DIR          where monitor.jsonl/csv and TensorBoard events go\n"
            "                         (default: JOB.run/)\n"
            "  --seed S               replace the algorithm's seed (data order, dropout)\n"
            "  --mode M               fast_run (default), fast_compile, check\n"
            "  --precision P          float32 (default), bfloat16 or float16: the model computes\n"
            "                         in P from float32 master weights (docs/training.md)\n"
            "  --loss-scale S         float16's initial dynamic loss scale (default 1024)\n"
            "  --quiet                no progress output\n"
            "data-parallel training (mpirun -np N / srun -n N mltrain JOB.yaml; batch_size is\n"
            "the global batch, split over the ranks; docs/parallel.md):\n"
            "  --deterministic        reduce gradients in a fixed order: N ranks give the same\n"
            "                         bits as one process with --shards N\n"
            "  --shards N             one process computes each batch as N shards (the\n"
            "                         reference of a deterministic N-rank run; implies\n"
            "                         --deterministic)\n"
            "  --bucket-mb X          gradient all-reduce bucket size in MiB (default 25;\n"
            "                         MLTRAIN_BUCKET_MB)\n"
            "  --comm-timeout S       seconds a collective may take before every rank stops\n"
            "                         with an error naming the late ranks (default 600;\n"
            "                         MLTRAIN_COMM_TIMEOUT)\n"
            "  --comm-check           check that all ranks call the same collectives (slow;\n"
            "                         MLTRAIN_COMM_CHECK=1)\n"
            "exit codes: 0 done, 1 error, 2 usage, %d stopped by a signal (checkpoint written;\n"
            "a job script requeues on it and continues with --resume=auto)\n",
            MT_TRAIN_EXIT_INTERRUPTED);
}

typedef struct cli_args {
    const char *job;
    bool dry_run;
    double comm_timeout; /* < 0: the default (MLTRAIN_COMM_TIMEOUT or 600 s) */
    bool comm_check;
    mt_train_options o;
    mt_cli_params params;
} cli_args;

/* The data-parallel options; 1 = handled, 0 = not one of them, 2 = usage error. */
static int parse_parallel_arg(int argc, char **argv, int *i, cli_args *a)
{
    const char *arg = argv[*i], *v;
    double d;
    int64_t n;
    if (!strcmp(arg, "--deterministic")) {
        a->o.dp.deterministic = true;
    } else if (!strcmp(arg, "--comm-check")) {
        a->comm_check = true;
    } else if (mt_cli_is_opt(arg, "--shards")) {
        if (!(v = mt_cli_opt_value(argc, argv, i, "--shards")) || mt_cli_parse_int64(v, &n) ||
            n < 1 || n > 65536) {
            fprintf(stderr, "mltrain: error: --shards wants an integer in [1, 65536]\n");
            return 2;
        }
        a->o.dp.shards = (int32_t)n;
        a->o.dp.deterministic = true;
    } else if (mt_cli_is_opt(arg, "--bucket-mb")) {
        if (!(v = mt_cli_opt_value(argc, argv, i, "--bucket-mb")) || mt_cli_parse_double(v, &d) ||
            !(d > 0)) {
            fprintf(stderr, "mltrain: error: --bucket-mb wants a number > 0 (MiB)\n");
            return 2;
        }
        a->o.dp.bucket_bytes = (int64_t)(d * 1048576.0);
        if (a->o.dp.bucket_bytes < 1) a->o.dp.bucket_bytes = 1;
    } else if (mt_cli_is_opt(arg, "--comm-timeout")) {
        if (mt_cli_opt_comm_timeout(argc, argv, i, &a->comm_timeout)) return 2;
    } else {
        return 0;
    }
    return 1;
}

static int parse_args(int argc, char **argv, cli_args *a)
{
    mt_train_options_init(&a->o);
    a->comm_timeout = -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *v;
        int rc;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(arg, "--dry-run")) {
            a->dry_run = true;
        } else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            g_progress.quiet = true;
        } else if (!strcmp(arg, "--resume")) {
            a->o.resume = MT_RESUME_YES;
        } else if (!strncmp(arg, "--resume=", 9)) {
            const char *m = arg + 9;
            if (!strcmp(m, "yes"))
                a->o.resume = MT_RESUME_YES;
            else if (!strcmp(m, "auto"))
                a->o.resume = MT_RESUME_AUTO;
            else if (!strcmp(m, "no"))
                a->o.resume = MT_RESUME_NO;
            else {
                fprintf(stderr, "mltrain: error: --resume=%s: expected yes, auto or no\n", m);
                return 2;
            }
        } else if (mt_cli_is_opt(arg, "--param") || !strcmp(arg, "-p")) {
            if ((rc = mt_cli_opt_param(argc, argv, &i, &a->params))) return rc;
        } else if (mt_cli_is_opt(arg, "--max-epochs")) {
            if (mt_cli_opt_int64(argc, argv, &i, "--max-epochs", 0, &a->o.max_epochs)) return 2;
        } else if (mt_cli_is_opt(arg, "--limit-batches")) {
            if (mt_cli_opt_int64(argc, argv, &i, "--limit-batches", 1, &a->o.limit_batches))
                return 2;
        } else if (mt_cli_is_opt(arg, "--seed")) {
            int64_t s;
            if (mt_cli_opt_int64(argc, argv, &i, "--seed", INT64_MIN, &s)) return 2;
            a->o.has_seed = true;
            a->o.seed = (uint64_t)s;
        } else if (mt_cli_is_opt(arg, "--precision")) {
            if (mt_cli_opt_str(argc, argv, &i, "--precision", &a->o.precision)) return 2;
            if (strcmp(a->o.precision, "float32") && strcmp(a->o.precision, "bfloat16") &&
                strcmp(a->o.precision, "float16")) {
                fprintf(stderr, "mltrain: error: --precision wants float32, bfloat16 or "
                                "float16, got '%s'\n", a->o.precision);
                return 2;
            }
        } else if (mt_cli_is_opt(arg, "--loss-scale")) {
            if (mt_cli_opt_str(argc, argv, &i, "--loss-scale", &v)) return 2;
            if (mt_cli_parse_double(v, &a->o.loss_scale) || !(a->o.loss_scale >= 1.0)) {
                fprintf(stderr, "mltrain: error: --loss-scale wants a number >= 1, got '%s'\n", v);
                return 2;
            }
        } else if (mt_cli_is_opt(arg, "--device")) {
            if (mt_cli_opt_str(argc, argv, &i, "--device", &a->o.device)) return 2;
        } else if (mt_cli_is_opt(arg, "--run-dir")) {
            if (mt_cli_opt_str(argc, argv, &i, "--run-dir", &a->o.run_dir)) return 2;
        } else if (mt_cli_is_opt(arg, "--mode")) {
            mt_mode m;
            if (mt_cli_opt_str(argc, argv, &i, "--mode", &v)) return 2;
            if (mt_mode_from_name(&m, v)) {
                fprintf(stderr, "mltrain: error: --mode: %s\n", mt_last_error());
                return 2;
            }
            a->o.mode = (int32_t)m;
        } else if (arg[0] == '-' && arg[1] && (rc = parse_parallel_arg(argc, argv, &i, a))) {
            if (rc == 2) return 2;
        } else if ((rc = mt_cli_file_arg(arg, &a->job, NULL, usage))) {
            return rc;
        }
    }
    if (!a->job) {
        usage(stderr);
        return 2;
    }
    a->o.n_params = a->params.n;
    a->o.params = a->params.vars;
    return 0;
}

/* A fatal error: in a parallel run every rank is stopped (a rank that fails alone would leave
 * the others waiting in their next collective). */
static void fatal(const cli_args *a, const char *msg)
{
    clear_line(&g_progress);
    if (a->o.comm && mt_comm_size(a->o.comm) > 1) {
        mt_comm_abort(a->o.comm, 1, msg); /* returns only for a local communicator */
    }
    fprintf(stderr, "mltrain: error: %s\n", msg);
}

static int run_job(cli_args *a)
{
    mt_job *job = NULL;
    if (mt_job_load(&job, a->job, &a->o)) {
        fatal(a, mt_last_error());
        return 1;
    }
    int rc = 0;
    if (a->dry_run) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        if (mt_job_dry_run(job, &sb)) {
            fatal(a, mt_last_error());
            rc = 1;
        } else if (g_progress.rank == 0) {
            printf("%sdry run: OK (nothing trained)\n", sb.data ? sb.data : "");
        }
        mt_strbuf_deinit(&sb);
        mt_job_free(job);
        return rc;
    }
    mt_train_result res;
    mt_status st = mt_job_run(job, &res);
    clear_line(&g_progress);
    if (st) {
        fatal(a, mt_last_error());
        rc = 1;
    } else if (res.interrupted) {
        if (g_progress.rank == 0)
            fprintf(stderr,
                    "mltrain: stopped by signal %d after %lld epochs; checkpoint %s; continue "
                    "with --resume\n",
                    res.interrupted, (long long)res.epochs_seen, res.save_path);
        rc = MT_TRAIN_EXIT_INTERRUPTED;
    } else if (!g_progress.quiet && g_progress.rank == 0) {
        printf("done: %d phase%s, %lld epochs, %.1f s%s%s; monitor logs in %s\n",
               (int)res.phases_run, res.phases_run == 1 ? "" : "s", (long long)res.epochs_seen,
               res.seconds, res.save_path[0] ? "; checkpoint " : "", res.save_path,
               res.run_dir[0] ? res.run_dir : "(none)");
    }
    mt_job_free(job);
    return rc;
}

int mt_cli_is_job_file(const char *arg)
{
    size_t n = strlen(arg);
    if ((n > 5 && !strcmp(arg + n - 5, ".yaml")) || (n > 4 && !strcmp(arg + n - 4, ".yml")))
        return 1;
    return arg[0] != '-' && access(arg, F_OK) == 0;
}

#ifdef MT_CLI_HAVE_PARALLEL
mt_status mt_cli_comm_world(mt_comm **out, double timeout_s, bool check, int32_t *rank)
{
    mt_launch_info li;
    mt_launch_info_get(&li);
    *rank = li.rank;
    const char *t = getenv("MLTRAIN_NUM_THREADS");
    if (li.size > 1 && !(t && *t)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", (int)mt_dp_default_threads());
        setenv("MLTRAIN_NUM_THREADS", buf, 1);
    }
    mt_comm_options co;
    mt_comm_options_init(&co);
    if (timeout_s >= 0) co.timeout_s = timeout_s;
    if (check) co.check = true;
    mt_status st = mt_comm_world(out, &co);
    if (st == MT_OK) *rank = mt_comm_rank(*out);
    return st;
}
#endif

/* The ranks of this job (mt_cli_comm_world); the communicator becomes the job's. */
static int open_world(cli_args *a, mt_comm **comm)
{
    *comm = NULL;
#ifdef MT_CLI_HAVE_PARALLEL
    if (mt_cli_comm_world(comm, a->comm_timeout, a->comm_check, &g_progress.rank)) {
        fprintf(stderr, "mltrain: error: starting the ranks' communicator: %s\n",
                mt_last_error());
        return 1;
    }
    a->o.comm = *comm;
    if (g_progress.rank == 0 && mt_comm_size(*comm) > 1)
        mt_log(MT_LOG_INFO, "data-parallel run: %d ranks (%s), %s threads per rank%s",
               (int)mt_comm_size(*comm), mt_comm_backend(*comm), getenv("MLTRAIN_NUM_THREADS"),
               a->o.dp.deterministic ? ", deterministic" : "");
#else
    if (a->comm_check || a->comm_timeout >= 0) {
        fprintf(stderr, "mltrain: error: this mltrain was built without the comm module\n");
        return 1;
    }
#endif
    return 0;
}

int mt_cli_train(int argc, char **argv)
{
#ifdef MT_CLI_HAVE_SWEEP
    /* a file whose root is !obj:Sweep is a hyperparameter sweep (cmd_sweep.c) */
    for (int i = 0; i < argc; i++)
        if (argv[i][0] != '-' && mt_cli_is_job_file(argv[i]) && mt_cli_is_sweep_file(argv[i]))
            return mt_cli_sweep(argc, argv);
#endif
    cli_args *a = calloc(1, sizeof(*a));
    if (!a) return 1;
    g_progress.tty = isatty(fileno(stderr));
    int rc = parse_args(argc, argv, a);
    if (rc == 0) {
        a->o.progress = on_progress;
        a->o.progress_user = &g_progress;
        mt_log_set_callback(on_log, &g_progress);
        const char *env = getenv("MLTRAIN_LOG");
        g_progress.verbose = env && *env;
        if (!g_progress.quiet && !(env && *env)) mt_log_set_level(MT_LOG_INFO);
        mt_comm *comm = NULL;
        rc = open_world(a, &comm);
        if (rc == 0) rc = run_job(a);
#ifdef MT_CLI_HAVE_PARALLEL
        mt_comm_free(comm);
#endif
        mt_log_set_callback(NULL, NULL);
    } else if (rc < 0) {
        rc = 0;
    }
    mt_cli_params_deinit(&a->params);
    free(a);
    return rc;
}
