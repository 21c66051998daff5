/* The CUDA backend's private interface for other mltrain modules that hand device memory to a
 * vendor library working on CUDA streams (comm's NCCL backend). Declared without CUDA types
 * (streams and events are void *: a CUstream / CUevent, the same as cudaStream_t /
 * cudaEvent_t), so a module including this needs no CUDA header. Implemented in
 * device_cuda.c, so only code compiled when MT_HAVE_CUDA may call it.
 *
 * Every call makes the device's context current on the calling thread first, so the vendor
 * library called next sees the right device (the CUDA runtime picks up the current driver
 * context). */
#ifndef MT_GPUARRAY_CUDA_INTEROP_H
#define MT_GPUARRAY_CUDA_INTEROP_H

#include <stdbool.h>
#include <stddef.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

/* True when dev is a real CUDA device ("cuda:N"; not the emulation device). */
bool mt__cuda_device_is_cuda(const mt_device *dev);
/* The driver ordinal of a CUDA device (N of "cuda:N"), -1 for other devices. */
int mt__cuda_device_ordinal(const mt_device *dev);
/* Makes dev's context current on the calling thread. */
mt_status mt__cuda_device_bind(mt_device *dev);
/* The device's compute stream (the one mltrain's kernels, copies and GEMMs use by default). */
void *mt__cuda_compute_stream(mt_device *dev);
/* A new non-blocking stream on dev (for communication), and its release. */
mt_status mt__cuda_aux_stream_new(mt_device *dev, void **stream);
void mt__cuda_aux_stream_free(mt_device *dev, void *stream);
mt_status mt__cuda_aux_stream_sync(mt_device *dev, void *stream);
/* Events without timing (cheap), for ordering streams: record on one, wait on another. */
mt_status mt__cuda_sync_event_new(mt_device *dev, void **event);
void mt__cuda_sync_event_free(mt_device *dev, void *event);
mt_status mt__cuda_sync_event_record(mt_device *dev, void *event, void *stream);
/* stream waits (on the device) for the work recorded in event; the host does not wait. */
mt_status mt__cuda_stream_wait_event(mt_device *dev, void *stream, void *event);
/* *done = the work recorded in event has completed (never blocks). */
mt_status mt__cuda_event_query(mt_device *dev, void *event, bool *done);
/* The device address of byte `off` of buf (a buffer on a CUDA device), for vendor calls. */
mt_status mt__cuda_buffer_address(const mt_buffer *buf, size_t off, void **addr);

#endif
