/* Running a function in a forked child process with a deadline and a memory limit, for the
 * modules above core that hand untrusted files to a library which may crash, hang or allocate
 * without bound on them (io: checkpoints parsed by libhdf5; data: HDF5 dataset files probed
 * before they are opened). Not part of the public API: those modules include it as
 * "../core/isolate.h", as graph and gpuarray include core's kscalar.h. src/core/isolate.c
 * describes the child's environment, the deadline and the memory limit, and the risks of a fork
 * in a process with threads or MPI: a lock another thread held at the fork (libhdf5's, say)
 * makes the child wait forever, reported as a timeout at the deadline; RDMA memory of verbs
 * transports is not fork-safe without their fork support. */
#ifndef MT_CORE_ISOLATE_H
#define MT_CORE_ISOLATE_H

#include "mltrain/core.h"

/* The receiving end of the child's result (a pipe read with the deadline); opaque. */
typedef struct mt__isolate_rx mt__isolate_rx;

/* What to run and how its failures read. The messages are
 *   "<subject>: <worker> did not finish <task> within S s (<timeout_var>); <hint>"
 *   "<subject>: <worker> crashed (SIGSEGV) while <task>; <hint>"
 *   "<subject>: the process in which <worker> was <task> ended with exit status N ...; <hint>"
 *   "<subject>: the process in which <worker> was <task> sent a malformed result (<why>); <hint>"
 *   "<subject>: <worker> ran out of memory within the limit of N MiB while <task> ...; <hint>"
 * e.g. subject "checkpoint 'run.h5'", worker "the HDF5 library", task "reading it". */
typedef struct mt__isolate_spec {
    const char *subject;
    const char *worker;
    const char *task;
    const char *hint;
    const char *timeout_var; /* the environment variable that sets timeout_s */
    const char *start_fix; /* appended when the child cannot be started ("; X=0 skips it"), or "" */
    double timeout_s;      /* the deadline, from the start, for the whole result */
    uint64_t file_bytes;   /* the size of the input: the default memory limit is max(1 GiB, 8x) */
    /* In the child: writes the result to fd and returns the exit status (0: the result is
     * complete). It may call any library function, but leaves by returning (the runner
     * _exits), never by exit(). */
    int (*child)(int fd, void *ctx);
    /* In this process: reads the result with mt__isolate_read. MT_OK when it read a complete
     * result; after mt__isolate_read returned false (the stream ended) or
     * mt__isolate_malformed, its status is not used (the child's end is reported instead);
     * any other error is a failure of this process and is returned as it is. */
    mt_status (*parent)(mt__isolate_rx *rx, void *ctx);
    void *ctx;
} mt__isolate_spec;

/* Forks, runs spec->child in the child and spec->parent here, then reaps the child (killing it
 * at the deadline, or at once when this side stops reading early). MT_OK when the parent read a
 * complete result and the child exited with status 0 (or its status was lost because SIGCHLD is
 * ignored); else ERR_TIMEOUT, or ERR_FORMAT naming the crash (signal name), the exit status,
 * the malformed or missing result; ERR_IO / ERR_NOMEM when the pipe or the fork fails. */
mt_status mt__isolate_run(const mt__isolate_spec *spec);

/* Exactly n bytes of the child's result into dst: false when the stream ends first or the
 * deadline passes (the runner then reports how the child ended). */
bool mt__isolate_read(mt__isolate_rx *rx, void *dst, size_t n);

/* Marks the result malformed (why: a short phrase, static storage); returns ERR_FORMAT. The
 * child is killed and the run fails with the malformed-result message. */
mt_status mt__isolate_malformed(mt__isolate_rx *rx, const char *why);

/* In the child: writes n bytes to fd (retrying short writes and EINTR); false when the pipe is
 * gone (this process stopped reading: the child has nothing left to do). */
bool mt__isolate_write(int fd, const void *data, size_t n);

/* In the child, on the status of its work: when the work failed with ERR_NOMEM (an allocation
 * failed: the caller maps a library's allocation failure to ERR_NOMEM) while a memory limit is
 * in force, an ERR_NOMEM with the out-of-memory message above naming the limit (recorded in
 * the error slot); otherwise st as it is (another failure keeps its own status and message,
 * whatever errno says). */
mt_status mt__isolate_child_result(mt_status st);

/* The largest MLTRAIN_ISOLATE_MAX_MB honoured (2^40 MiB = 1 EiB; larger values are clamped to
 * it), so that the limit in bytes and small multiples of it (4x: the checkpoint reader's
 * budget for what a child may send) stay far from overflowing 64 bits. */
#define MT__ISOLATE_MAX_MB ((uint64_t)1 << 40)

/* The child's memory limit in bytes for an input of file_bytes (0: none): MLTRAIN_ISOLATE_MAX_MB
 * MiB when set (0 turns the limit off), else max(1 GiB, 8 x file_bytes); at most
 * MT__ISOLATE_MAX_MB MiB either way; always 0 under AddressSanitizer, which reserves
 * terabytes of address space. */
uint64_t mt__isolate_mem_limit(uint64_t file_bytes);

#endif
