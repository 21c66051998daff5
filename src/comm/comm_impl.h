/* comm internals: the backend vtable, one collective as the progress thread runs it, and the
 * fingerprint of the debug mode. Backends ("local", "mpi", and "nccl" for device arrays) fill
 * mt__comm_ops; comm.c owns queueing, staging, deadlines and error messages, so a backend
 * only runs one collective on buffers it can address and answers a few questions about its
 * ranks. */
#ifndef MT_COMM_IMPL_H
#define MT_COMM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/comm.h"
#include "mltrain/core.h"

#define MT__COMM_ABI_VERSION 1

/* X(NAME, "name") of every collective kind; the name appears in messages. */
#define MT__COMM_KIND_MAP(X)              \
    X(ALLREDUCE, "allreduce")             \
    X(BROADCAST, "broadcast")             \
    X(ALLGATHER, "allgather")             \
    X(REDUCE_SCATTER, "reduce_scatter")   \
    X(BARRIER, "barrier")                 \
    X(SPLIT, "split")

typedef enum mt__comm_kind {
#define MT__COMM_KIND_ENUM(name, str) MT__COMM_##name,
    MT__COMM_KIND_MAP(MT__COMM_KIND_ENUM)
#undef MT__COMM_KIND_ENUM
    MT__COMM_KIND_COUNT
} mt__comm_kind;

const char *mt__comm_kind_name(mt__comm_kind k);
const char *mt__comm_reduce_name(mt_reduce_op op);

/* One collective on buffers the backend can address (host memory for "local" and "mpi").
 * count: elements this rank sends (allreduce, broadcast, allgather, reduce_scatter: the full
 * input; reduce_scatter receives count / size). send == recv means in place. */
typedef struct mt__comm_op {
    mt__comm_kind kind;
    mt_reduce_op op;
    mt_dtype dtype;
    int64_t count;
    int32_t root;
    const void *send;
    void *recv;
    /* split only */
    int32_t color, key;
    void *split_impl; /* out: backend state of the new communicator, NULL for color < 0 */
    int32_t split_rank, split_size;
    /* device backends only: the arrays themselves (send NULL for broadcast; send and recv
     * are then NULL) */
    const mt_array *send_arr;
    mt_array *recv_arr;
} mt__comm_op;

/* What every rank publishes before a collective in debug mode. Plain integers so that the
 * exchange is a byte all-gather. */
typedef struct mt__comm_fp {
    uint64_t seq;
    int64_t count;
    int32_t kind, op, dtype, root;
    int32_t color, key; /* split: not compared (they differ by design) */
} mt__comm_fp;

typedef struct mt__comm_ops {
    int abi_version;
    const char *name;
    /* A device backend (the dev_* members below; "nccl"); when false comm.c stages arrays on
     * non-host devices through host memory. */
    bool device_buffers;
    /* Collectives run on the communicator's progress thread (false: inline, at start). */
    bool progress_thread;
    /* Runs one collective to completion (blocking). Records a message on failure. */
    mt_status (*run)(void *impl, mt__comm_op *op);
    /* All-gathers fingerprints: all[r] = rank r's fp. NULL: debug mode has nothing to check. */
    mt_status (*exchange_fp)(void *impl, const mt__comm_fp *mine, mt__comm_fp *all);
    /* Publishes "this rank started collective #seq" where other ranks can read it without
     * this rank's help (cheap: called on every collective). NULL ok. */
    void (*mark_entered)(void *impl, uint64_t seq);
    /* Fills entered[r] with the last collective rank r started (UINT64_MAX where unknown),
     * spending at most about budget_s seconds. Called from a thread other than the progress
     * thread while that one may be blocked inside the backend. NULL: unknown. */
    mt_status (*read_entered)(void *impl, uint64_t *entered, double budget_s);
    const void *(*native_handle)(const void *impl);
    void (*abort)(void *impl, int code);
    /* Releases the backend state; `healthy` false after a timeout (the progress thread may
     * still be blocked inside the backend: release nothing that needs the peers). */
    void (*free)(void *impl, bool healthy);

    /* Device backends (device_buffers true: "nccl") sit next to a communicator's host backend
     * (mt_comm_use_device) and run collectives asynchronously on device memory; comm.c owns
     * numbering, deadlines and messages, and polls. NULL in host backends. */
    /* Whether the backend takes this collective (kind, dtype, op); false: comm.c stages it. */
    bool (*dev_accepts)(void *impl, mt__comm_kind kind, mt_dtype dt, mt_reduce_op op);
    /* Enqueues op (arrays in send_arr / recv_arr) after the work queued on the device so
     * far; *pending identifies it until dev_release. */
    mt_status (*dev_start)(void *impl, mt__comm_op *op, void **pending);
    /* Orders the device's compute stream after the collective (device side, host does not
     * wait). */
    mt_status (*dev_order)(void *impl, void *pending);
    /* *done once the collective completed; an error when it failed (an asynchronous error
     * of the library, e.g. a peer that died). Never blocks for long. */
    mt_status (*dev_poll)(void *impl, void *pending, bool *done);
    void (*dev_release)(void *impl, void *pending);
    /* Stops the device communicator after a failure or a timeout: queued work is dropped
     * and every later collective fails. */
    void (*dev_abort)(void *impl);
    /* The deadline (seconds, <= 0: none) of the device backend's own waits (enqueueing,
     * leaving the communicator), after mt_comm_set_timeout. NULL ok. */
    void (*dev_set_timeout)(void *impl, double timeout_s);

    /* Point-to-point control messages (mt_comm_send_host / mt_comm_recv_host), on the
     * caller's thread. NULL: unsupported. send: completes or fails by `deadline` (monotonic
     * seconds, INFINITY = none). probe_recv: one non-blocking attempt; *got false when no
     * matching message is there, else *data (mt_malloc, nbytes + 1 bytes, zero-terminated),
     * *nbytes, *src, *tag. */
    mt_status (*p2p_send)(void *impl, int32_t dst, int32_t tag, const void *data, size_t nbytes,
                          double deadline);
    mt_status (*p2p_probe_recv)(void *impl, int32_t src, int32_t tag, bool *got, void **data,
                                size_t *nbytes, int32_t *src_out, int32_t *tag_out);
} mt__comm_ops;

/* Backends. mt__comm_mpi_* exist in every build and answer MT_ERR_NOT_BUILT without MPI. */
extern const mt__comm_ops mt__comm_local_ops;
extern const mt__comm_ops mt__comm_mpi_ops;
bool mt__comm_mpi_built(void);
bool mt__comm_mpi_initialized(void); /* MPI_Initialized and not finalized */
/* Initialises MPI when needed and creates the world's backend state (a duplicate of
 * MPI_COMM_WORLD with MPI_ERRORS_RETURN, a side communicator and the arrival window). */
mt_status mt__comm_mpi_world(void **impl, int32_t *rank, int32_t *size);
/* One more communicator uses the MPI runtime (split); paired with release_runtime. */
void mt__comm_mpi_retain_runtime(void);
/* Called when an MPI communicator made by comm was freed (MPI itself is finalised at exit). */
void mt__comm_mpi_release_runtime(void);
/* Aborts the MPI job through MPI_COMM_WORLD when MPI is initialised (used without a comm). */
void mt__comm_mpi_abort_world(int code);

/* The "nccl" device backend (comm_nccl.c; answers MT_ERR_NOT_BUILT without MT_HAVE_NCCL). */
extern const mt__comm_ops mt__comm_nccl_ops;
#define MT__NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) */
/* Whether NCCL can serve collectives on dev in this process: false with the reason and the
 * status a required NCCL would fail with (NOT_BUILT, NOT_FOUND, UNSUPPORTED). */
bool mt__comm_nccl_usable(mt_device *dev, mt_status *code, char *why, size_t len);
/* ncclGetUniqueId (works without a GPU). */
mt_status mt__comm_nccl_unique_id(uint8_t id[MT__NCCL_ID_BYTES]);
/* Setting up rank's side of an NCCL communicator on dev in two steps, so that the ranks can
 * agree in between and a rank that fails alone before joining does not leave the others
 * waiting in NCCL (a failed join costs the others the join's deadline):
 * prepare does what can fail locally (binds dev, creates the communication stream) and gives
 * *impl, for mt__comm_nccl_ops (free it with .free(impl, false) when not joining); join calls
 * ncclCommInitRankConfig (non-blocking communicator) with rank 0's unique id and polls until
 * every rank joined or timeout_s passed (<= 0: no limit). After a failed join, impl holds no
 * communicator and is freed the same way. new = prepare + join (freeing on failure). */
mt_status mt__comm_nccl_prepare(void **impl, mt_device *dev, int32_t rank, int32_t size,
                                double timeout_s);
mt_status mt__comm_nccl_join(void *impl, const uint8_t id[MT__NCCL_ID_BYTES]);
mt_status mt__comm_nccl_new(void **impl, mt_device *dev, const uint8_t id[MT__NCCL_ID_BYTES],
                            int32_t rank, int32_t size, double timeout_s);
/* NCCL's version code (e.g. 22809 for 2.28.9) after loading the library. */
mt_status mt__comm_nccl_version(int *version);
/* Every NCCL entry point the backend resolves with dlsym, NULL-terminated (also without
 * MT_HAVE_NCCL), and the library names it tries. */
const char *const *mt__comm_nccl_symbols(void);

#endif
