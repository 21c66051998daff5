/* The training command of the mltrain CLI (cmd_train.c): `mltrain JOB.yaml [options]`. */
#ifndef MT_CLI_CMD_TRAIN_H
#define MT_CLI_CMD_TRAIN_H

/* argv[0] is the first argument after `mltrain` (the job file or an option). */
int mt_cli_train(int argc, char **argv);
/* True when the first argument names a job: ends in .yaml / .yml, or is an existing file. */
int mt_cli_is_job_file(const char *arg);

#endif
