/* Private interface of the mltrain command: subcommands and shared helpers. */
#ifndef MT_CLI_H
#define MT_CLI_H

#include <stdio.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

int mt_cli_devices(int argc, char **argv);
int mt_cli_demo(int argc, char **argv);
int mt_cli_eval(int argc, char **argv);

/* Prints an array the way NumPy's repr of its values does ("[   0    2 1026]"). */
mt_status mt_cli_format_array(const mt_array *a, mt_strbuf *sb);

/* Prints "mltrain: error: <status>: <last error>" to stderr and returns exit code 1. */
int mt_cli_fail(const char *what);

#endif
