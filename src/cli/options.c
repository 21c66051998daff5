/* Command-line pieces the mltrain subcommands share, so that the same option reads and fails the
 * same way in every command: "--opt VALUE" / "--opt=VALUE" values, whole-string integers and
 * numbers, integer options with a lower bound, --comm-timeout, the --param NAME=VALUE list
 * (names copied, values pointing into argv), a command's one file argument, and the format of a
 * log line on stderr ("[rank R] mltrain: LEVEL: message"). Usage errors are printed here as
 * "mltrain: error: ..." and answered with exit code 2, as the commands do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *mt_cli_opt_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (!strncmp(argv[*i], opt, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (!strcmp(argv[*i], opt) && *i + 1 < argc) return argv[++*i];
    return NULL;
}

bool mt_cli_is_opt(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return !strncmp(arg, opt, n) && (arg[n] == 0 || arg[n] == '=');
}

int mt_cli_parse_int64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s) return -1;
    *out = v;
    return 0;
}

int mt_cli_parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || end == s) return -1;
    *out = v;
    return 0;
}

int mt_cli_opt_str(int argc, char **argv, int *i, const char *opt, const char **out)
{
    const char *arg = argv[*i];
    const char *v = mt_cli_opt_value(argc, argv, i, opt);
    if (!v) {
        fprintf(stderr, "mltrain: error: %s needs a value\n", arg);
        return 2;
    }
    *out = v;
    return 0;
}

int mt_cli_opt_int64(int argc, char **argv, int *i, const char *opt, int64_t min, int64_t *out)
{
    const char *v;
    int64_t n;
    if (mt_cli_opt_str(argc, argv, i, opt, &v)) return 2;
    if (mt_cli_parse_int64(v, &n) || n < min) {
        if (min == INT64_MIN)
            fprintf(stderr, "mltrain: error: %s wants an integer, got '%s'\n", opt, v);
        else
            fprintf(stderr, "mltrain: error: %s wants an integer >= %lld, got '%s'\n", opt,
                    (long long)min, v);
        return 2;
    }
    *out = n;
    return 0;
}

int mt_cli_opt_comm_timeout(int argc, char **argv, int *i, double *out)
{
    const char *v;
    double d;
    if (mt_cli_opt_str(argc, argv, i, "--comm-timeout", &v)) return 2;
    if (mt_cli_parse_double(v, &d) || !(d >= 0)) {
        fprintf(stderr, "mltrain: error: --comm-timeout wants seconds >= 0 (0: none)\n");
        return 2;
    }
    *out = d;
    return 0;
}

int mt_cli_file_arg(const char *arg, const char **file, const char *what, void (*usage)(FILE *f))
{
    if (arg[0] == '-' && arg[1]) {
        fprintf(stderr, "mltrain: error: unknown %s%soption '%s'\n\n", what ? what : "",
                what ? " " : "", arg);
        usage(stderr);
        return 2;
    }
    if (*file) {
        fprintf(stderr, "mltrain: error: one %s file at a time ('%s' and '%s')\n",
                what ? what : "job", *file, arg);
        return 2;
    }
    *file = arg;
    return 0;
}

int mt_cli_params_add(mt_cli_params *p, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || p->n == MT_CLI_MAX_PARAMS) {
        fprintf(stderr, "mltrain: error: --param wants NAME=VALUE, got '%s'\n", v);
        return 2;
    }
    char *name = malloc((size_t)(eq - v) + 1);
    if (!name) return 1;
    memcpy(name, v, (size_t)(eq - v));
    name[eq - v] = 0;
    p->names[p->n] = name;
    p->vars[p->n++] = (mt_cfg_var){name, eq + 1};
    return 0;
}

int mt_cli_opt_param(int argc, char **argv, int *i, mt_cli_params *p)
{
    const char *v;
    if (mt_cli_opt_str(argc, argv, i, argv[*i][1] == 'p' ? "-p" : "--param", &v)) return 2;
    return mt_cli_params_add(p, v);
}

void mt_cli_params_deinit(mt_cli_params *p)
{
    for (int32_t i = 0; i < p->n; i++)
        free(p->names[i]);
    p->n = 0;
}

void mt_cli_log_line(mt_log_level level, int32_t rank, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char prefix[32] = "";
    if (rank > 0) snprintf(prefix, sizeof prefix, "[rank %d] ", (int)rank);
    fprintf(stderr, "%smltrain: %s: %s\n", prefix, names[level < MT_LOG_LEVEL_COUNT ? level : 3],
            msg);
}
