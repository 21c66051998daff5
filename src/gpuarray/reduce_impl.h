/* Private interface between reduce.c (argument checks, planning, dispatch, the host fallback)
 * and reduce_gen.c (the reduction kernel's source in C, OpenCL C and CUDA C).
 *
 * A reduction is planned as J outputs x K reduced elements: the reduced axes are moved last,
 * size-1 axes dropped and contiguous axes collapsed, giving ndj kept dims (dj) and ndk >= 1
 * reduced dims (dk). The reduced elements of one output are split into P chunks; stage 1 writes
 * one partial accumulator per (output, chunk) into a temporary buffer and stage 2 combines the P
 * partials of each output in chunk order, so results never depend on thread timing. P = 1 runs
 * as one "direct" stage. One generated kernel serves all three modes.
 *
 * Kernel arguments, in order (every scalar is 8 bytes):
 *   buffers: input 0..nin-1, output, tmp (tmp = the output buffer in direct mode)
 *   scalars: nwork, mode, P, C (chunk length), K, npart (J*P, bytes of the value part / 8),
 *            dj[ndj], dk[ndk], per input i: sj_i[ndj] then sk_i[ndk] (bytes), output sj[ndj],
 *            then the map's parameters (see reduce_gen.c).
 * Work item w: direct/partial mode: output j = w / P, chunk p = w % P; combine mode: output w.
 * Tiled kernels (CPU devices, when the innermost kept dim is contiguous and the reduced
 * elements are far apart, as in a sum over axis 0 of a C-contiguous matrix): work item w of the
 * first stage is tile w / P of sig.tile consecutive outputs along the innermost kept dim (a
 * whole row of a 4096-wide float32 matrix on the host), chunk w % P, i.e. a band of rows; the
 * kernel adds the band row by row into float64 accumulators (arrays of sig.tile on the work
 * item's stack: 2 x 32 KiB on the host), the tile's outputs being the inner, contiguous
 * (vectorised) loop, so the band is read as one stream. Float sums add groups of 4 rows
 * pairwise into blocks of MT__RED_BLOCK rows, at most MT__RED_TILE_BLOCKS blocks per chunk,
 * and stage 2 combines the chunks pairwise, so no output adds more than ~32 + 16 + log2(P)
 * terms in sequence. Partials go to tmp[p * J + j + t] (one contiguous partial row per chunk).
 * Chunked split (CPU devices): chunk p covers reduced indices [p*C, min(K, (p+1)*C)).
 * Interleaved split (GPUs, ndk == 1): chunk p covers p, p+P, p+2P, ... so neighbouring work
 * items read neighbouring addresses. tmp holds npart accumulators (8 bytes: double, int64 or
 * uint64), followed for argmax/argmin by npart int64 indices. */
#ifndef MT_REDUCE_IMPL_H
#define MT_REDUCE_IMPL_H

#include "gpuarray_impl.h"

#define MT__RED_MAX_IN 16
#define MT__RED_BLOCK 128      /* pairwise summation block length */
#define MT__RED_TILE_HOST 4096 /* outputs per work item of a tiled host (C) kernel */
#define MT__RED_TILE_DEV 64    /* the same for OpenCL CPU devices (private memory is scarce) */
#define MT__RED_TILE_BLOCKS 16 /* tiled float sums: at most this many row blocks per chunk */

typedef enum mt__rmode {
    MT__RMODE_DIRECT = 0,
    MT__RMODE_PARTIAL = 1,
    MT__RMODE_COMBINE = 2,
} mt__rmode;

/* Everything the generated source depends on (the kernel cache key is derived from it). */
typedef struct mt__rsig {
    mt_klang lang;
    mt_reduce_op op;
    const mt_kexpr *map; /* single output; no INDEX/RAND nodes */
    int32_t nin;
    mt_dtype in_dt[MT__RED_MAX_IN];
    mt_dtype map_dt; /* dtype of the map's output */
    mt_dtype out_dt; /* mt_reduce_result_dtype(op, map_dt) */
    char acc;        /* accumulator: 'd' double, 'i' int64, 'u' uint64 */
    int32_t ndj, ndk;
    /* byte stride of the inner loop per input: 'c' itemsize, 'z' 0, 'g' other (the innermost
     * reduced dim; for tiled kernels the innermost kept dim) */
    char inner[MT__RED_MAX_IN];
    bool interleave; /* interleaved chunks (requires ndk == 1) */
    bool tiled;      /* CPU devices only: C or OpenCL C (requires ndj >= 1) */
    int32_t tile;    /* tiled: outputs per work item (its accumulator arrays' length) */
    int32_t lanes;   /* independent accumulators in the inner loop (1 or 8) */
    int32_t nparams;
} mt__rsig;

/* Accumulator kind of op over values of dtype dt ('d', 'i' or 'u'). */
char mt__reduce_acc_kind(mt_reduce_op op, mt_dtype dt);
/* Appends the kernel cache key of sig (complete: equal keys give equal sources). */
void mt__reduce_key(mt_strbuf *sb, const mt__rsig *sig);
/* Appends the kernel source of sig with entry point `entry`. */
mt_status mt__reduce_source(mt_strbuf *sb, const mt__rsig *sig, const char *entry);

#endif /* MT_REDUCE_IMPL_H */
