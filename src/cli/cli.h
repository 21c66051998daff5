/* Private interface of the mltrain command: subcommands and shared helpers. */
#ifndef MT_CLI_H
#define MT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

int mt_cli_devices(int argc, char **argv);
int mt_cli_demo(int argc, char **argv);
int mt_cli_eval(int argc, char **argv);

/* The values of a, in C order, as a host array of the widest dtype of its kind (float64, int64,
 * uint64 or bool bytes); *vals is mt_free'd by the caller. */
mt_status mt_cli_array_values(const mt_array *a, void **vals);
/* Prints an array the way NumPy's repr of its values does ("[   0    2 1026]"). */
mt_status mt_cli_format_array(const mt_array *a, mt_strbuf *sb);

/* Prints "mltrain: error: <status>: <last error>" to stderr and returns exit code 1. */
int mt_cli_fail(const char *what);

/* ---- options.c: option parsing shared by the subcommands */

/* The value of "--opt VALUE" or "--opt=VALUE" at argv[*i] (advancing *i past a separate value);
 * NULL when it is missing. */
const char *mt_cli_opt_value(int argc, char **argv, int *i, const char *opt);
/* The option opt at argv[*i] (as mt_cli_opt_value): 0 with *out set, or 2 after printing
 * "ARG needs a value". */
int mt_cli_opt_str(int argc, char **argv, int *i, const char *opt, const char **out);
/* True when arg is opt or opt=VALUE. */
bool mt_cli_is_opt(const char *arg, const char *opt);
/* The whole string as a decimal integer / a number: 0, or -1 (junk, empty, out of range). */
int mt_cli_parse_int64(const char *s, int64_t *out);
int mt_cli_parse_double(const char *s, double *out);
/* The integer option opt at argv[*i] (as mt_cli_opt_value), at least min (INT64_MIN: any):
 * 0 with *out set, or 2 after printing "ARG needs a value" or "OPT wants an integer [>= MIN],
 * got 'V'". */
int mt_cli_opt_int64(int argc, char **argv, int *i, const char *opt, int64_t min, int64_t *out);
/* --comm-timeout S at argv[*i]: seconds >= 0 (0: no deadline) into *out, or 2 (printed). */
int mt_cli_opt_comm_timeout(int argc, char **argv, int *i, double *out);
/* A command's argument that is no option it knows: an unknown option (printed with the usage)
 * or its one file. 0 when arg became *file; 2 (printed) for an unknown option or a second file.
 * what: the command's kind of file, "sweep" (named in the messages too), or NULL for a job. */
int mt_cli_file_arg(const char *arg, const char **file, const char *what, void (*usage)(FILE *f));

/* The --param NAME=VALUE list: names are copied (mt_cli_params_deinit frees them), values point
 * into the argument. */
#define MT_CLI_MAX_PARAMS 64
typedef struct mt_cli_params {
    int32_t n;
    mt_cfg_var vars[MT_CLI_MAX_PARAMS];
    char *names[MT_CLI_MAX_PARAMS];
} mt_cli_params;
/* 0; 2 after printing the usage error (no '=', empty name, too many); 1 out of memory. */
int mt_cli_params_add(mt_cli_params *p, const char *v);
/* --param NAME=VALUE or -p NAME=VALUE at argv[*i] into p: as mt_cli_params_add, or 2 (printed)
 * when the value is missing. */
int mt_cli_opt_param(int argc, char **argv, int *i, mt_cli_params *p);
void mt_cli_params_deinit(mt_cli_params *p);

/* One log line on stderr: "[rank R] " (rank > 0 only) "mltrain: LEVEL: msg". */
void mt_cli_log_line(mt_log_level level, int32_t rank, const char *msg);

#endif
