/* mltrain comm: communicators over MPI (and, on CUDA devices, NCCL) for data-parallel training,
 * monitor reductions and sweeps.
 *
 * One mt_comm is a group of ranks that call the same collectives in the same order. Backends
 * sit behind a vtable: "mpi" (MPI on host memory; device buffers are staged through the host),
 * "local" (size 1: a build without MPI, or a process not started by a launcher), and, for
 * arrays on a CUDA device bound with mt_comm_use_device, "nccl" next to MPI. Nothing in this
 * header names MPI, CUDA or NCCL types.
 *
 * Every collective has a sequence number (per communicator, counted from 1) and a deadline.
 * A collective that does not complete before its deadline fails with MT_ERR_TIMEOUT and a
 * message naming the operation, its sequence number and the ranks that did not arrive; the
 * caller (train) then stops the job on every rank (mt_comm_abort), so no rank hangs.
 *
 * Collectives run on a progress thread owned by the communicator, in the order they were
 * started, so a started collective makes progress while the caller computes (overlap), and a
 * blocked MPI call can be timed out by the waiting thread. Blocking forms are start + wait.
 *
 * Errors: every fallible call returns mt_status and records a message (see core.h). MPI errors
 * come back as MT_ERR_COMM with MPI's error string. */
#ifndef MLTRAIN_COMM_H
#define MLTRAIN_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_comm mt_comm;         /* opaque */
typedef struct mt_comm_req mt_comm_req; /* opaque: one started collective */

/* Reductions use core.h's mt_reduce_op: MT_REDUCE_SUM, MT_REDUCE_PROD, MT_REDUCE_MAX and
 * MT_REDUCE_MIN on every dtype, MT_REDUCE_ALL and MT_REDUCE_ANY on bool; the others (ARGMAX,
 * ARGMIN, MEAN) answer MT_ERR_UNSUPPORTED. On bool, SUM and MAX are logical or, PROD and MIN
 * logical and (NumPy's bool arithmetic). */

/* Where this process sits in its job, read from the launcher's environment: Open MPI
 * (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE), MPICH and Intel MPI's Hydra (PMI_RANK/SIZE,
 * MPI_LOCALRANKID/MPI_LOCALNRANKS), Slurm (SLURM_PROCID/NTASKS/LOCALID and
 * SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE), PMIx (PMIX_RANK), else rank 0 of 1, in that
 * order. Usable before MPI is initialised (thread counts, device binding, log names). */
typedef struct mt_launch_info {
    int32_t rank, size;
    int32_t local_rank, local_size; /* within the node */
    const char *launcher;           /* "openmpi", "hydra", "slurm", "pmix", "none" (static) */
    int64_t slurm_job_id;           /* -1 when not under Slurm */
} mt_launch_info;
void mt_launch_info_get(mt_launch_info *out);

typedef struct mt_comm_options {
    const char *backend;    /* "auto" (default: MPI when built and launched by mpirun/srun or
                               already initialised, else local), "mpi", "local" */
    double timeout_s;       /* deadline of each collective; default 600, or MLTRAIN_COMM_TIMEOUT
                               (seconds) from the environment; <= 0 = no deadline */
    bool check;             /* debug mode: before each collective all ranks exchange a
                               fingerprint (op, count, dtype, root, sequence number) and a
                               mismatch fails on every rank naming both calls; also
                               MLTRAIN_COMM_CHECK=1 */
} mt_comm_options;
void mt_comm_options_init(mt_comm_options *opts);

/* The world communicator of this process (initialises MPI with thread support when the MPI
 * backend is chosen and MPI is not yet initialised). Each call makes a new communicator (for
 * MPI: a duplicate of MPI_COMM_WORLD, so every rank must make the same calls). MPI stays
 * initialised until the process exits, so a later call works too; at exit mltrain finalises
 * what it initialised when every communicator was freed (a process leaving with communicators
 * alive, after a failure, does not wait in MPI_Finalize: the launcher ends the job).
 * opts NULL = defaults. ERR_NOT_BUILT when "mpi" is asked for in a build without MPI. */
mt_status mt_comm_world(mt_comm **out, const mt_comm_options *opts);
/* Splits comm into groups: ranks with the same color form one new communicator, ordered by
 * key then by rank (MPI_Comm_split semantics); color < 0 gives *out = NULL. Collective. */
mt_status mt_comm_split(mt_comm **out, mt_comm *comm, int32_t color, int32_t key);
void mt_comm_free(mt_comm *comm); /* NULL ok; waits for started collectives */

int32_t mt_comm_rank(const mt_comm *comm);
int32_t mt_comm_size(const mt_comm *comm);
const char *mt_comm_backend(const mt_comm *comm); /* "mpi", "local" */
uint64_t mt_comm_seq(const mt_comm *comm);        /* collectives started so far */
void mt_comm_set_timeout(mt_comm *comm, double timeout_s);

/* Non-blocking collectives on arrays. Arrays must be C-contiguous; any device (device memory
 * is staged through pinned host memory unless the backend works on it directly). The arrays
 * must stay alive and untouched until the wait returns. In-place all-reduce: send == recv
 * allowed. Counts and dtypes must agree on all ranks (checked in debug mode).
 *   allreduce:      recv = op over ranks of send (same shape)
 *   broadcast:      buf on every rank = buf on root
 *   allgather:      recv (size * count elements) = concatenation of every rank's send in rank
 *                   order
 *   reduce_scatter: recv (count/size elements) = rank's block of op over ranks of send
 * mt_comm_wait completes one request and frees it (also on error); mt_comm_test polls. */
mt_status mt_comm_iallreduce(mt_comm *comm, const mt_array *send, mt_array *recv,
                             mt_reduce_op op, mt_comm_req **req);
mt_status mt_comm_ibroadcast(mt_comm *comm, mt_array *buf, int32_t root, mt_comm_req **req);
mt_status mt_comm_iallgather(mt_comm *comm, const mt_array *send, mt_array *recv,
                             mt_comm_req **req);
mt_status mt_comm_ireduce_scatter(mt_comm *comm, const mt_array *send, mt_array *recv,
                                  mt_reduce_op op, mt_comm_req **req);
mt_status mt_comm_wait(mt_comm_req *req);
mt_status mt_comm_test(mt_comm_req *req, bool *done);

/* Blocking forms (start + wait). */
mt_status mt_comm_allreduce(mt_comm *comm, const mt_array *send, mt_array *recv,
                            mt_reduce_op op);
mt_status mt_comm_broadcast(mt_comm *comm, mt_array *buf, int32_t root);
mt_status mt_comm_allgather(mt_comm *comm, const mt_array *send, mt_array *recv);
mt_status mt_comm_reduce_scatter(mt_comm *comm, const mt_array *send, mt_array *recv,
                                 mt_reduce_op op);
mt_status mt_comm_barrier(mt_comm *comm);
/* Host-memory conveniences for small control data (monitor sums, flags, checksums). */
mt_status mt_comm_allreduce_host(mt_comm *comm, void *data, int64_t count, mt_dtype dt,
                                 mt_reduce_op op);
mt_status mt_comm_broadcast_host(mt_comm *comm, void *data, size_t nbytes, int32_t root);

/* Point-to-point control messages (the sweep coordinator's protocol, docs/hyperopt.md
 * "Running sweeps"): small byte strings between two ranks of comm, matched by (source, tag).
 * Not collective, not numbered, and independent of the collectives (their own matching
 * space). They run on the caller's thread, next to the communicator's progress thread (MPI
 * with MPI_THREAD_MULTIPLE; with MPI_THREAD_SERIALIZED only while no collective of any
 * communicator is in flight). Tags are 0..32767.
 *   send: returns once the message left this process's buffer (small messages: at once);
 *         fails with MT_ERR_TIMEOUT naming the destination when that takes longer than the
 *         communicator's timeout (a receiver that never posts a receive for a large message).
 *   recv: waits up to timeout_s (< 0: forever; 0: poll once) for a message from `src` (-1:
 *         any rank) with `tag` (-1: any tag). On success *data is a new buffer of *nbytes
 *         bytes (freed with mt_free; one extra zero byte after it, so text can be read as a
 *         C string), *src_out / *tag_out (either may be NULL) say where it came from. When
 *         nothing arrives in time: MT_ERR_TIMEOUT and nothing is consumed. Waiting yields the
 *         CPU (short sleeps), so an idle rank does not take a core from the ranks that
 *         compute.
 * A communicator of one rank ("local") has no peer: send answers MT_ERR_UNSUPPORTED and recv
 * times out. */
mt_status mt_comm_send_host(mt_comm *comm, int32_t dst, int32_t tag, const void *data,
                            size_t nbytes);
mt_status mt_comm_recv_host(mt_comm *comm, int32_t src, int32_t tag, double timeout_s,
                            void **data, size_t *nbytes, int32_t *src_out, int32_t *tag_out);

/* Collectives on GPU memory. Collective: every rank of comm calls it, each with its own device
 * (the one its arrays live on). Binds comm to dev for collectives on arrays of dev. `how`:
 *   "auto" (also NULL, or MLTRAIN_COMM_DEVICE from the environment when how is NULL): NCCL when
 *          comm runs over MPI, this mltrain was built with NCCL, libnccl.so.2 loads
 *          ($MLTRAIN_LIBNCCL first) and every rank's device is a CUDA device; otherwise arrays
 *          keep going through host memory and MPI ("staged"), and the reason is logged at
 *          MT_LOG_INFO on every rank (the same text everywhere, naming the first rank that
 *          cannot use NCCL).
 *   "nccl": NCCL or an error, with the same status on every rank and a message naming the
 *          rank and the reason (MT_ERR_NOT_BUILT, MT_ERR_NOT_FOUND for a missing library or
 *          driver, MT_ERR_UNSUPPORTED for a device that is not CUDA, or NCCL's error).
 *          Also works on a "local" communicator (NCCL with one rank).
 *   "host": always staged (for comparisons).
 * With NCCL, collectives on arrays of dev whose dtype NCCL has (bool, int8, uint8, int32,
 * uint32, int64, uint64, float16, bfloat16, float32, float64) run on a communication stream of
 * dev: a start records an event on dev's compute stream and the communication stream waits for
 * it (so the collective sees every kernel queued before the start, and kernels queued after
 * it overlap with it); mt_comm_wait makes the compute stream wait for the collective's event,
 * then polls completion and NCCL's asynchronous errors until comm's deadline. A failed or
 * stalled peer makes the wait fail (MT_ERR_COMM or MT_ERR_TIMEOUT, naming the collective, its
 * sequence number and, through MPI, the ranks that never started it); the NCCL communicator is
 * then aborted and comm is broken. int16/uint16 arrays and arrays on other devices are staged
 * as before; every rank must make the same choice (same dtype, arrays on the bound device on
 * every rank or on none). Calling it again replaces the binding (after the requests of the
 * old one were waited for); dev NULL removes it. A communicator made by mt_comm_split starts
 * unbound. The device must stay open while comm is bound to it (comm holds a reference). */
mt_status mt_comm_use_device(mt_comm *comm, mt_device *dev, const char *how);
/* "nccl" when arrays on the bound device go through NCCL, else "staged". */
const char *mt_comm_device_path(const mt_comm *comm);

/* GPU binding: the device a rank opens when the user asked for `requested`. "cuda" and
 * "cuda:auto" become "cuda:<local rank>" (the rank's index on its node from
 * OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or SLURM_LOCALID, see mt_launch_info), so the
 * ranks of a node get
 * one GPU each; any other name is copied unchanged. The GPUs counted are the ones the CUDA
 * driver shows this process, after CUDA_VISIBLE_DEVICES. When the launcher gave each rank a
 * single GPU of its own (CUDA_VISIBLE_DEVICES set and one device visible), that is cuda:0.
 * Fails with MT_ERR_NOT_FOUND when no CUDA device is visible (naming the driver's reason), and
 * with MT_ERR_RANGE when the ranks on this node outnumber the GPUs ("4 ranks on this node but
 * 2 CUDA devices: start at most 2 ranks per node or pass --device explicitly"). */
mt_status mt_launch_pick_device(char *name, size_t len, const char *requested);
/* The same decision from explicit inputs: li (local_rank, local_size) and the number of CUDA
 * devices visible (cuda_devices); reads only CUDA_VISIBLE_DEVICES. For tests and tools. */
mt_status mt_launch_pick_device_for(char *name, size_t len, const char *requested,
                                    const mt_launch_info *li, int32_t cuda_devices);

/* The MPI communicator behind comm, as a pointer to its MPI_Comm (for parallel HDF5 and other
 * MPI-aware libraries), or NULL for the local backend. Borrowed. */
const void *mt_comm_mpi_handle(const mt_comm *comm);

/* Stops every rank of the job after a fatal error: prints "mltrain: rank R: <message>" to
 * stderr and terminates the whole job (MPI_Abort with `code`; local: returns). For executables
 * only: library code returns errors, the CLI calls this. */
void mt_comm_abort(mt_comm *comm, int code, const char *message);

#ifdef __cplusplus
}
#endif
#endif
