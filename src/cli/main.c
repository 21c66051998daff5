/* The `mltrain` command: dispatches subcommands. Library code never exits; this file and the
 * subcommands turn statuses into messages on stderr and exit codes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_io.h"
#include "cmd_train.h"
#ifdef MT_CLI_HAVE_SWEEP
#include "cmd_sweep.h"
#endif
#include "mltrain/mt_config.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mltrain <command> [options]\n"
            "       mltrain JOB.yaml [--dry-run] [--param NAME=VALUE] [--resume[=auto]] ...\n"
            "                     run a Pylearn2-style job file ('mltrain train --help')\n"
            "\n"
            "commands:\n"
            "  devices            list the devices this build can use (memory, compute units)\n"
            "  demo [--device D]  a small array demo on D (default: every device present)\n"
            "  eval EXPR [NAME=VALUE ...]\n"
            "                     evaluate a NumPy-like expression ('mltrain eval --help')\n"
            "  print-monitor CKPT [--all]\n"
            "                     a checkpoint's counters and last channel values\n"
            "  show-weights CKPT -o OUT.png\n"
            "                     the first layer's filters as a tiled image\n"
            "  plot RUN_DIR|CKPT -o OUT.png [--channels a,b]\n"
            "                     learning curves (default: *_objective, *_misclass)\n"
            "  sweep-report DIR [--top N] [-o PREFIX]\n"
            "                     the best trials of a sweep directory, and its plots\n"
            "  version            print the version and the features built in\n"
            "  help               this text\n");
}

int mt_cli_fail(const char *what)
{
    fprintf(stderr, "mltrain: error: %s: %s: %s\n", what, mt_status_name(mt_last_status()),
            mt_last_error());
    return 1;
}

static int cmd_version(void)
{
    printf("mltrain %s (opencl %s, cuda %s, mpi %s, hdf5 %s)\n", MT_VERSION,
           MT_HAVE_OPENCL ? "on" : "off", MT_HAVE_CUDA ? "on" : "off",
           MT_HAVE_MPI ? "on" : "off", MT_HAVE_HDF5 ? "on" : "off");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
#ifdef MT_CLI_HAVE_TRAIN
    if (!strcmp(cmd, "train")) return mt_cli_train(argc - 2, argv + 2);
#endif
    if (!strcmp(cmd, "devices")) return mt_cli_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return mt_cli_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return mt_cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "print-monitor")) return mt_cli_print_monitor(argc - 1, argv + 1);
    if (!strcmp(cmd, "show-weights")) return mt_cli_show_weights(argc - 1, argv + 1);
    if (!strcmp(cmd, "plot")) return mt_cli_plot(argc - 1, argv + 1);
#ifdef MT_CLI_HAVE_SWEEP
    if (!strcmp(cmd, "sweep-report")) return mt_cli_sweep_report(argc - 1, argv + 1);
#endif
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return cmd_version();
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
#ifdef MT_CLI_HAVE_TRAIN
    if (mt_cli_is_job_file(cmd)) return mt_cli_train(argc - 1, argv + 1);
    /* `mltrain --dry-run job.yaml`: options before the job file */
    for (int i = 2; cmd[0] == '-' && i < argc; i++)
        if (mt_cli_is_job_file(argv[i])) return mt_cli_train(argc - 1, argv + 1);
#endif
    fprintf(stderr, "mltrain: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
