/* The sweep commands of the mltrain CLI (cmd_sweep.c). */
#ifndef MT_CLI_CMD_SWEEP_H
#define MT_CLI_CMD_SWEEP_H

/* `mltrain SWEEP.yaml [options]`: argv[0] is the first argument after `mltrain`. */
int mt_cli_sweep(int argc, char **argv);
/* `mltrain sweep-report DIR ...`: argv[0] is "sweep-report". */
int mt_cli_sweep_report(int argc, char **argv);
/* True when the file's document starts with a !obj:Sweep root. */
int mt_cli_is_sweep_file(const char *path);

#endif
