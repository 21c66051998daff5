/* The training command of the mltrain CLI (cmd_train.c): `mltrain JOB.yaml [options]`. */
#ifndef MT_CLI_CMD_TRAIN_H
#define MT_CLI_CMD_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "mltrain/comm.h"

/* argv[0] is the first argument after `mltrain` (the job file or an option). */
int mt_cli_train(int argc, char **argv);
/* True when the first argument names a job: ends in .yaml / .yml, or is an existing file. */
int mt_cli_is_job_file(const char *arg);
/* The world communicator of a run (MPI under mpirun or srun, else a local one of size 1; options
 * timeout_s when >= 0, check when true), after giving each rank its share of the node's cores
 * as compute threads when there are several ranks and MLTRAIN_NUM_THREADS is unset (call it
 * before any device opens its thread pool). *rank: the launcher's rank, then the
 * communicator's. Built with the parallel module (MT_CLI_HAVE_PARALLEL). */
mt_status mt_cli_comm_world(mt_comm **out, double timeout_s, bool check, int32_t *rank);

#endif
