/* The `mltrain` command: dispatches subcommands. Library code never exits; this file and the
 * subcommands turn statuses into messages on stderr and exit codes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mltrain/mt_config.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mltrain <command> [options]\n"
            "\n"
            "commands:\n"
            "  devices            list the devices this build can use (memory, compute units)\n"
            "  demo [--device D]  a small array demo on D (default: every device present)\n"
            "  eval EXPR [NAME=VALUE ...]\n"
            "                     evaluate a NumPy-like expression ('mltrain eval --help')\n"
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
    if (!strcmp(cmd, "devices")) return mt_cli_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return mt_cli_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return mt_cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return cmd_version();
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "mltrain: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
