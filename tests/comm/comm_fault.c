/* A small MPI program for the fault tests: every rank runs allreduces in a loop; at the third
 * one, rank 1 misbehaves. `stall`: it sleeps past the deadline, so the other ranks must fail
 * with MT_ERR_TIMEOUT naming rank 1, the operation and its sequence number, and stop the job
 * with mt_comm_abort. `kill`: it SIGKILLs itself, and every rank must exit non-zero soon.
 * Usage: comm_fault stall|kill TIMEOUT_S. Each rank first prints its pid so that the test
 * (run_fault.sh) can check that no rank outlives the job. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mltrain/comm.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "stall") != 0 && strcmp(argv[1], "kill") != 0)) {
        fprintf(stderr, "usage: comm_fault stall|kill TIMEOUT_S\n");
        return 2;
    }
    bool stall = strcmp(argv[1], "stall") == 0;
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = "mpi";
    o.timeout_s = atof(argv[2]);
    mt_comm *c = NULL;
    if (mt_comm_world(&c, &o) != MT_OK) {
        fprintf(stderr, "comm_fault: %s\n", mt_last_error());
        return 1;
    }
    int rank = mt_comm_rank(c);
    printf("comm_fault: rank %d pid %d\n", rank, (int)getpid());
    fflush(stdout);
    float buf[1000];
    for (int it = 1; it <= 5; it++) {
        for (int i = 0; i < 1000; i++) buf[i] = (float)(rank + i);
        if (it == 3 && rank == 1) {
            if (stall) {
                sleep((unsigned)(4 * o.timeout_s + 5));
            } else {
                raise(SIGKILL);
            }
        }
        if (mt_comm_allreduce_host(c, buf, 1000, MT_FLOAT32, MT_REDUCE_SUM) != MT_OK) {
            mt_comm_abort(c, 3, mt_last_error());
            return 3; /* only reached when abort returns */
        }
    }
    printf("comm_fault: rank %d finished without noticing the fault\n", rank);
    mt_comm_free(c);
    return 4;
}
