/* Data-parallel training over a communicator (include/mltrain/parallel.h).
 *
 * Fast mode rewrites the training graph: each gradient g_i becomes allreduce(weight * g_i,
 * bucket), where weight (a 0-d float32 shared variable "dp.weight") is this rank's share
 * n_local / n_global of the global batch, so the sum over ranks is the gradient of the global
 * batch's mean cost. Buckets are formed from the LAST parameter backwards (the backward pass
 * produces those gradients first): a small first bucket (first_bucket_bytes), then bucket_bytes
 * each. The jit (src/jit/collective.c) starts a bucket when all its gradients exist and waits
 * for it where an update reads it; the hooks here turn a started bucket into non-blocking
 * all-reduces on the communicator's progress thread: one per run of arrays that are
 * consecutive views of one buffer with one dtype (the executor lays a bucket out that way, so
 * normally one flat all-reduce per bucket and no packing), else one per array.
 *
 * Deterministic mode does not put collectives into the graph: the caller computes each
 * shard's weighted gradients, adds them (mt_dp_ordered_add), and mt_dp_ordered_finish gathers
 * every shard's flat gradient vector in shard order (an all-gather on N ranks, plain copies on
 * one process) and sums the rows 0, 1, ..., N-1 with one elementwise add kernel, the same code
 * on every rank and in the single-process reference, so the results are bit-identical.
 *
 * Consistency checks hash every array's bytes (FNV-style 64-bit hash of the host copy), gather
 * the hashes and name the ranks that differ from rank 0. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mltrain/parallel.h"

#define DP_MAX_SEGMENTS 64

struct mt_dp {
    mt_comm *comm; /* borrowed; NULL: one process */
    int32_t rank, size, shards;
    mt_dp_options o;
    mt_collective_hooks hooks;
    /* fast mode */
    mt_var weight;    /* the shard weight placeholder of the rewritten graph, or 0 */
    const mt_function *weight_f; /* the function whose weight was last bound, and its value */
    float weight_value;
    /* deterministic mode */
    int32_t ord_n;        /* arrays per shard in the current step, -1 outside a step */
    mt_dtype ord_dtype;
    int64_t ord_count;    /* elements of one shard's flat vector (-1: not known yet) */
    int32_t ord_cap;      /* arrays the shape tables hold */
    int32_t *ord_ndim;    /* per array: its shape */
    int64_t (*ord_dims)[MT_MAX_DIMS];
    mt_device *ord_dev;   /* the gradients' device (borrowed from them) */
    mt_array ord_local;   /* [count] this rank's shard (N ranks) */
    mt_array ord_all;     /* [shards, count] */
    bool *ord_have;       /* per shard: added this step */
    mt_kexpr add_kx;
    bool have_kx;
    mt_device *host;      /* for checksums */
};

/* ---------------------------------------------------------------- options and lifecycle */

void mt_dp_options_init(mt_dp_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->bucket_bytes = 25ll << 20;
    const char *e = getenv("MLTRAIN_BUCKET_MB");
    if (e && *e) {
        char *end = NULL;
        double mb = strtod(e, &end);
        if (end && *end == '\0' && mb > 0) opts->bucket_bytes = (int64_t)(mb * 1048576.0);
        else mt_log(MT_LOG_WARN, "ignoring MLTRAIN_BUCKET_MB='%s' (not a positive number)", e);
    }
    opts->first_bucket_bytes = 1ll << 20;
    opts->checksum_every = 100;
}

static mt_status dp_start(void *ctx, int32_t bucket, int32_t n, mt_array *const *arrays,
                          void **req);
static mt_status dp_wait(void *ctx, void *req);

mt_status mt_dp_new(mt_dp **out, mt_comm *comm, const mt_dp_options *opts)
{
    if (!out) return mt_err_set(MT_ERR_INVALID, "dp: NULL output");
    *out = NULL;
    mt_dp_options o;
    if (opts) o = *opts;
    else mt_dp_options_init(&o);
    int32_t size = comm ? mt_comm_size(comm) : 1;
    if (o.bucket_bytes <= 0 || o.first_bucket_bytes <= 0)
        return mt_err_set(MT_ERR_INVALID, "dp: bucket sizes must be positive (bucket_bytes %lld, "
                          "first_bucket_bytes %lld)", (long long)o.bucket_bytes,
                          (long long)o.first_bucket_bytes);
    if (o.checksum_every < 0)
        return mt_err_set(MT_ERR_INVALID, "dp: checksum_every %lld is negative",
                          (long long)o.checksum_every);
    int32_t shards = o.shards == 0 ? size : o.shards;
    if (shards < 1)
        return mt_err_set(MT_ERR_INVALID, "dp: shards %d must be >= 1", (int)o.shards);
    if (shards != size && !(size == 1 && o.deterministic))
        return mt_err_set(MT_ERR_INVALID, "dp: %d shards on %d processes: a shard count other "
                          "than the number of processes is only valid for the single-process "
                          "deterministic reference (1 process, deterministic = true)",
                          (int)shards, (int)size);
    mt_dp *dp = mt_calloc(1, sizeof *dp);
    if (!dp) return MT_ERR_NOMEM;
    dp->comm = comm;
    dp->rank = comm ? mt_comm_rank(comm) : 0;
    dp->size = size;
    dp->shards = shards;
    dp->o = o;
    dp->o.shards = shards;
    dp->hooks = (mt_collective_hooks){dp, dp_start, dp_wait};
    dp->ord_n = -1;
    dp->ord_have = mt_calloc((size_t)shards, sizeof *dp->ord_have);
    mt_status st = dp->ord_have ? MT_OK : MT_ERR_NOMEM;
    if (st == MT_OK) st = mt_device_open(&dp->host, "host");
    if (st != MT_OK) {
        mt_dp_free(dp);
        return st;
    }
    *out = dp;
    return MT_OK;
}

void mt_dp_free(mt_dp *dp)
{
    if (!dp) return;
    mt_array_clear(&dp->ord_local);
    mt_array_clear(&dp->ord_all);
    if (dp->have_kx) mt_kexpr_deinit(&dp->add_kx);
    mt_free(dp->ord_have);
    mt_free(dp->ord_ndim);
    mt_free(dp->ord_dims);
    mt_device_release(dp->host);
    mt_free(dp);
}

int32_t mt_dp_rank(const mt_dp *dp) { return dp ? dp->rank : 0; }
int32_t mt_dp_size(const mt_dp *dp) { return dp ? dp->size : 1; }
int32_t mt_dp_n_shards(const mt_dp *dp) { return dp ? dp->shards : 1; }
bool mt_dp_deterministic(const mt_dp *dp) { return dp && dp->o.deterministic; }
mt_comm *mt_dp_comm(const mt_dp *dp) { return dp ? dp->comm : NULL; }

void mt_dp_shard_rows(const mt_dp *dp, int64_t n, int32_t shard, int64_t *begin, int64_t *end)
{
    int32_t k = dp ? dp->shards : 1;
    if (n < 0) n = 0;
    if (shard < 0) shard = 0;
    if (shard > k) shard = k;
    int64_t base = n / k, rem = n % k;
    int64_t b = (int64_t)shard * base + (shard < rem ? shard : rem);
    if (begin) *begin = b;
    if (end) *end = shard >= k ? b : b + base + (shard < rem ? 1 : 0);
}

/* ---------------------------------------------------------------- broadcast */

mt_status mt_dp_broadcast(mt_dp *dp, int32_t n, mt_array *const *arrays)
{
    if (!dp || n < 0 || (n > 0 && !arrays))
        return mt_err_set(MT_ERR_INVALID, "dp broadcast: invalid arguments");
    if (!dp->comm || dp->size == 1) return MT_OK;
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        mt_array *a = arrays[i];
        if (mt_array_is_c_contiguous(a)) {
            st = mt_comm_broadcast(dp->comm, a, 0);
        } else { /* through a contiguous copy */
            mt_array c = {0};
            st = mt_array_copy_to(&c, a, NULL);
            if (st == MT_OK) st = mt_comm_broadcast(dp->comm, &c, 0);
            if (st == MT_OK) st = mt_array_copy(a, &c);
            mt_array_clear(&c);
        }
        if (st != MT_OK) st = mt_err_prefix(st, "dp broadcast of array %d from rank 0: ", (int)i);
    }
    return st;
}

/* ---------------------------------------------------------------- fast mode: the graph */

static int64_t var_bytes(const mt_graph *g, mt_var v)
{
    const mt_type *t = mt_graph_type(g, v);
    int64_t n = t ? mt_type_numel(t) : -1;
    return n < 0 ? 0 : n * (int64_t)mt_dtype_size(t->dtype);
}

mt_status mt_dp_insert_allreduce(mt_dp *dp, mt_graph *g, int32_t n, const mt_var *params,
                                 const mt_var *grads, mt_var *reduced)
{
    if (!dp || !g || n < 0 || (n > 0 && (!params || !grads || !reduced)))
        return mt_err_set(MT_ERR_INVALID, "dp insert_allreduce: invalid arguments");
    if (dp->o.deterministic)
        return mt_err_set(MT_ERR_INVALID, "dp insert_allreduce: deterministic mode reduces "
                          "gradients with mt_dp_ordered_* instead of graph all-reduces");
    for (int32_t i = 0; i < n; i++)
        if (!mt_graph_valid(g, params[i]) || !mt_graph_valid(g, grads[i]))
            return mt_err_set(MT_ERR_INVALID, "dp insert_allreduce: parameter %d or its gradient "
                              "is not a valid variable%s%s", (int)i,
                              mt_graph_status(g) ? ": " : "", mt_graph_last_error(g));
    if (dp->size == 1 && dp->shards == 1) {
        for (int32_t i = 0; i < n; i++) reduced[i] = grads[i];
        return MT_OK;
    }
    if (!dp->weight) {
        dp->weight = mt_graph_find_placeholder(g, "dp.weight");
        if (!dp->weight) dp->weight = mt_graph_placeholder(g, "dp.weight", MT_FLOAT32, 0, NULL);
    }
    int32_t bucket = 0;
    int64_t filled = 0, cap = dp->o.first_bucket_bytes;
    for (int32_t i = n - 1; i >= 0; i--) {
        int64_t b = var_bytes(g, params[i]);
        if (filled > 0 && filled + b > cap) {
            bucket++;
            filled = 0;
            cap = dp->o.bucket_bytes;
        }
        filled += b;
        const mt_type *t = mt_graph_type(g, grads[i]);
        mt_var w = mt_graph_mul(g, grads[i], dp->weight);
        if (t && mt_graph_type(g, w) && mt_graph_type(g, w)->dtype != t->dtype)
            w = mt_graph_cast(g, w, t->dtype);
        reduced[i] = mt_graph_allreduce(g, w, bucket);
        if (filled >= cap) { /* full: the next parameter opens a new bucket */
            bucket++;
            filled = 0;
            cap = dp->o.bucket_bytes;
        }
    }
    if (mt_graph_status(g) != MT_OK)
        return mt_err_set(mt_graph_status(g), "dp insert_allreduce: %s", mt_graph_last_error(g));
    return MT_OK;
}

void mt_dp_function_options(mt_dp *dp, mt_function_options *opts)
{
    if (dp && opts) opts->collectives = &dp->hooks;
}

mt_status mt_dp_set_step(mt_dp *dp, mt_function *f, int64_t n_local, int64_t n_global)
{
    if (!dp || !f) return mt_err_set(MT_ERR_INVALID, "dp set_step: NULL argument");
    if (n_local < 0 || n_global <= 0 || n_local > n_global)
        return mt_err_set(MT_ERR_INVALID, "dp set_step: %lld local rows of a global batch of %lld",
                          (long long)n_local, (long long)n_global);
    if (!dp->weight || !mt_function_var_type(f, dp->weight)) return MT_OK;
    float w = (float)((double)n_local / (double)n_global);
    if (dp->weight_f == f && dp->weight_value == w && mt_function_has_shared_value(f, dp->weight))
        return MT_OK;
    mt_array a = {0};
    mt_status st = mt_array_from_host(&a, mt_function_device(f), MT_FLOAT32, 0, NULL, &w);
    if (st == MT_OK) st = mt_function_set_shared(f, dp->weight, &a);
    mt_array_clear(&a);
    if (st != MT_OK) return mt_err_prefix(st, "dp set_step: ");
    dp->weight_f = f;
    dp->weight_value = w;
    return MT_OK;
}

/* ---------------------------------------------------------------- fast mode: the hooks */

typedef struct dp_req {
    int32_t bucket, n;
    mt_comm_req *reqs[DP_MAX_SEGMENTS];
    mt_array flat[DP_MAX_SEGMENTS];
} dp_req;

/* Arrays j..k-1 are consecutive in one buffer with one dtype: the flat 1-D view over them. */
static void flat_view(mt_array *out, mt_array *const *arrays, int32_t j, int32_t k)
{
    int64_t count = 0;
    for (int32_t i = j; i < k; i++) count += mt_array_size(arrays[i]);
    memset(out, 0, sizeof *out);
    mt_buffer_retain(arrays[j]->buf);
    out->buf = arrays[j]->buf;
    out->offset = arrays[j]->offset;
    out->dtype = arrays[j]->dtype;
    out->ndim = 1;
    out->dims[0] = count;
    out->strides[0] = (int64_t)mt_dtype_size(arrays[j]->dtype);
    out->flags = MT_ARRAY_WRITEABLE;
    mt_array_update_flags(out);
}

static bool follows(const mt_array *a, const mt_array *b)
{
    return b->buf == a->buf && b->dtype == a->dtype && mt_array_is_c_contiguous(a) &&
           mt_array_is_c_contiguous(b) && b->offset == a->offset + mt_array_nbytes(a);
}

static mt_status dp_wait(void *ctx, void *vreq)
{
    (void)ctx;
    dp_req *r = vreq;
    if (!r) return MT_OK;
    mt_status st = MT_OK;
    for (int32_t i = 0; i < r->n; i++) {
        mt_status w = r->reqs[i] ? mt_comm_wait(r->reqs[i]) : MT_OK;
        if (st == MT_OK && w != MT_OK) st = w;
        mt_array_clear(&r->flat[i]);
    }
    mt_free(r);
    return st;
}

static mt_status dp_start(void *ctx, int32_t bucket, int32_t n, mt_array *const *arrays,
                          void **req)
{
    mt_dp *dp = ctx;
    *req = NULL;
    if (!dp->comm || dp->size == 1) return MT_OK; /* the sum over one process */
    dp_req *r = mt_calloc(1, sizeof *r);
    if (!r) return MT_ERR_NOMEM;
    r->bucket = bucket;
    mt_status st = MT_OK;
    for (int32_t j = 0; j < n && st == MT_OK;) {
        int32_t k = j + 1;
        while (k < n && follows(arrays[k - 1], arrays[k])) k++;
        if (r->n == DP_MAX_SEGMENTS) { /* too fragmented for one request: finish these */
            st = mt_err_set(MT_ERR_INVALID, "dp: bucket %d has more than %d separate segments",
                            (int)bucket, DP_MAX_SEGMENTS);
            break;
        }
        mt_array *fl = &r->flat[r->n];
        if (mt_array_is_c_contiguous(arrays[j])) {
            flat_view(fl, arrays, j, k);
        } else {
            k = j + 1;
            st = mt_err_set(MT_ERR_INVALID, "dp: bucket %d: array %d is not C-contiguous",
                            (int)bucket, (int)j);
            break;
        }
        st = mt_comm_iallreduce(dp->comm, fl, fl, MT_REDUCE_SUM, &r->reqs[r->n]);
        r->n++;
        j = k;
    }
    if (st != MT_OK) {
        (void)dp_wait(dp, r);
        return mt_err_prefix(st, "dp: all-reduce of bucket %d: ", (int)bucket);
    }
    *req = r;
    return MT_OK;
}

/* ---------------------------------------------------------------- deterministic mode */

mt_status mt_dp_ordered_begin(mt_dp *dp, int32_t n)
{
    if (!dp || n < 0) return mt_err_set(MT_ERR_INVALID, "dp ordered_begin: invalid arguments");
    if (!dp->o.deterministic)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_begin: the ordered reduction belongs to "
                          "deterministic mode (mt_dp_options.deterministic)");
    if (n > dp->ord_cap) {
        int32_t *nd = mt_realloc(dp->ord_ndim, (size_t)n * sizeof *nd);
        if (!nd) return MT_ERR_NOMEM;
        dp->ord_ndim = nd;
        int64_t(*dims)[MT_MAX_DIMS] = mt_realloc(dp->ord_dims, (size_t)n * sizeof *dims);
        if (!dims) return MT_ERR_NOMEM;
        dp->ord_dims = dims;
        dp->ord_cap = n;
    }
    dp->ord_n = n;
    dp->ord_count = -1;
    for (int32_t s = 0; s < dp->shards; s++) dp->ord_have[s] = false;
    return MT_OK;
}

/* A 1-D view of `count` elements of a at element offset `off`, reshaped to (nd, dims). */
static void sub_view(mt_array *out, const mt_array *a, int64_t off, int32_t nd,
                     const int64_t *dims)
{
    memset(out, 0, sizeof *out);
    mt_buffer_retain(a->buf);
    out->buf = a->buf;
    size_t isz = mt_dtype_size(a->dtype);
    out->offset = a->offset + (size_t)off * isz;
    out->dtype = a->dtype;
    out->ndim = nd;
    int64_t stride = (int64_t)isz;
    for (int32_t d = nd - 1; d >= 0; d--) {
        out->dims[d] = dims[d];
        out->strides[d] = stride;
        stride *= dims[d];
    }
    out->flags = MT_ARRAY_WRITEABLE;
    mt_array_update_flags(out);
}

/* The first add of a step fixes the layout: dtype, shapes, count, device; the buffers are
 * (re)allocated when it changed. Later adds must match it. */
static mt_status ordered_layout(mt_dp *dp, int32_t n, const mt_array *const *grads)
{
    mt_dtype dt = n > 0 ? grads[0]->dtype : MT_FLOAT32;
    mt_device *dev = n > 0 ? mt_array_device(grads[0]) : dp->host;
    int64_t count = 0;
    for (int32_t i = 0; i < n; i++) {
        const mt_array *a = grads[i];
        if (!a || !a->buf)
            return mt_err_set(MT_ERR_INVALID, "dp ordered_add: gradient %d is empty", (int)i);
        if (a->dtype != dt)
            return mt_err_set(MT_ERR_DTYPE, "dp ordered_add: gradient %d is %s but gradient 0 "
                              "is %s (one dtype per step)", (int)i, mt_dtype_name(a->dtype),
                              mt_dtype_name(dt));
        if (dp->ord_count < 0) {
            dp->ord_ndim[i] = a->ndim;
            memcpy(dp->ord_dims[i], a->dims, sizeof dp->ord_dims[i]);
        } else {
            bool same = dp->ord_ndim[i] == a->ndim;
            for (int32_t d = 0; same && d < a->ndim; d++) same = dp->ord_dims[i][d] == a->dims[d];
            if (!same) {
                char b1[96], b2[96];
                return mt_err_set(MT_ERR_SHAPE, "dp ordered_add: gradient %d has shape %s, "
                                  "another shard's has %s", (int)i,
                                  mt_shape_str(a->ndim, a->dims, b1, sizeof b1),
                                  mt_shape_str(dp->ord_ndim[i], dp->ord_dims[i], b2, sizeof b2));
            }
        }
        count += mt_array_size(a);
    }
    if (dp->ord_count >= 0) {
        if (count != dp->ord_count || dt != dp->ord_all.dtype)
            return mt_err_set(MT_ERR_SHAPE, "dp ordered_add: %lld gradient elements of %s, "
                              "another shard had %lld of %s", (long long)count,
                              mt_dtype_name(dt), (long long)dp->ord_count,
                              mt_dtype_name(dp->ord_all.dtype));
        return MT_OK;
    }
    dp->ord_count = count;
    dp->ord_dev = dev;
    int64_t all[1] = {(int64_t)dp->shards * count}, one[1] = {count};
    mt_status st = MT_OK;
    if (!dp->ord_all.buf || dp->ord_all.dtype != dt || dp->ord_all.dims[0] != all[0] ||
        mt_array_device(&dp->ord_all) != dev) {
        mt_array_clear(&dp->ord_all);
        st = mt_array_empty(&dp->ord_all, dev, dt, 1, all, 'C');
    }
    if (st == MT_OK && dp->size > 1 &&
        (!dp->ord_local.buf || dp->ord_local.dtype != dt || dp->ord_local.dims[0] != count ||
         mt_array_device(&dp->ord_local) != dev)) {
        mt_array_clear(&dp->ord_local);
        st = mt_array_empty(&dp->ord_local, dev, dt, 1, one, 'C');
    }
    if (st != MT_OK) dp->ord_count = -1;
    return st;
}

mt_status mt_dp_ordered_add(mt_dp *dp, int32_t shard, int32_t n, const mt_array *const *grads)
{
    if (!dp || (n > 0 && !grads))
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: invalid arguments");
    if (dp->ord_n < 0)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: no step begun (mt_dp_ordered_begin)");
    if (n != dp->ord_n)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: %d gradients, the step began with %d",
                          (int)n, (int)dp->ord_n);
    if (shard < 0 || shard >= dp->shards)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: shard %d is out of range [0, %d)",
                          (int)shard, (int)dp->shards);
    if (dp->size > 1 && shard != dp->rank)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: rank %d computes shard %d, not %d",
                          (int)dp->rank, (int)dp->rank, (int)shard);
    if (dp->ord_have[shard])
        return mt_err_set(MT_ERR_INVALID, "dp ordered_add: shard %d was already added this step",
                          (int)shard);
    mt_status st = ordered_layout(dp, n, grads);
    const mt_array *dst = dp->size > 1 ? &dp->ord_local : &dp->ord_all;
    int64_t off = dp->size > 1 ? 0 : (int64_t)shard * dp->ord_count;
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        mt_array v;
        sub_view(&v, dst, off, dp->ord_ndim[i], dp->ord_dims[i]);
        st = mt_array_copy(&v, grads[i]);
        mt_array_clear(&v);
        off += mt_array_size(grads[i]);
    }
    if (st != MT_OK) return mt_err_prefix(st, "dp ordered_add (shard %d): ", (int)shard);
    dp->ord_have[shard] = true;
    return MT_OK;
}

mt_status mt_dp_ordered_finish(mt_dp *dp, int32_t n, mt_array *out)
{
    if (!dp || (n > 0 && !out))
        return mt_err_set(MT_ERR_INVALID, "dp ordered_finish: invalid arguments");
    if (dp->ord_n < 0 || n != dp->ord_n)
        return mt_err_set(MT_ERR_INVALID, "dp ordered_finish: %d arrays, the step began with %d",
                          (int)n, (int)dp->ord_n);
    for (int32_t s = 0; s < dp->shards; s++)
        if (!dp->ord_have[s] && (dp->size == 1 || s == dp->rank))
            return mt_err_set(MT_ERR_INVALID, "dp ordered_finish: shard %d was not added",
                              (int)s);
    dp->ord_n = -1;
    if (dp->ord_count < 0) return MT_OK; /* nothing added: n == 0 */
    mt_status st = MT_OK;
    if (dp->size > 1) st = mt_comm_allgather(dp->comm, &dp->ord_local, &dp->ord_all);
    if (st != MT_OK) return mt_err_prefix(st, "dp ordered_finish: gathering the shards: ");
    mt_dtype dt = dp->ord_all.dtype;
    int64_t count = dp->ord_count;
    if (!dp->have_kx) {
        mt_kexpr_init(&dp->add_kx);
        dp->have_kx = true;
    }
    if (dp->add_kx.n == 0 || dp->add_kx.nodes[0].dtype != dt) {
        mt_kexpr_deinit(&dp->add_kx);
        mt_kexpr_init(&dp->add_kx);
        int32_t r = mt_kexpr_binary(&dp->add_kx, MT_SOP_ADD, mt_kexpr_input(&dp->add_kx, 0, dt),
                                    mt_kexpr_input(&dp->add_kx, 1, dt));
        st = r < 0 ? mt_last_status() : mt_kexpr_add_output(&dp->add_kx, r);
        if (st == MT_OK) st = mt_kexpr_validate(&dp->add_kx);
        if (st != MT_OK) return mt_err_prefix(st, "dp ordered_finish: ");
    }
    /* acc = row 0; acc += row s for s = 1 .. N-1, in that order */
    mt_array acc = {0}, row = {0};
    int64_t one[1] = {count};
    sub_view(&row, &dp->ord_all, 0, 1, one);
    st = mt_array_copy_to(&acc, &row, NULL);
    mt_array_clear(&row);
    for (int32_t s = 1; s < dp->shards && st == MT_OK; s++) {
        sub_view(&row, &dp->ord_all, (int64_t)s * count, 1, one);
        const mt_array *ins[2] = {&acc, &row};
        mt_array *outs[1] = {&acc};
        if (count > 0) st = mt_elemwise(&dp->add_kx, 2, ins, outs, 0, NULL);
        mt_array_clear(&row);
    }
    int64_t off = 0;
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        if (!out[i].buf)
            st = mt_array_empty(&out[i], dp->ord_dev, dt, dp->ord_ndim[i], dp->ord_dims[i], 'C');
        mt_array v;
        if (st == MT_OK) {
            sub_view(&v, &acc, off, dp->ord_ndim[i], dp->ord_dims[i]);
            st = mt_array_copy(&out[i], &v);
            mt_array_clear(&v);
        }
        int64_t m = 1;
        for (int32_t d = 0; d < dp->ord_ndim[i]; d++) m *= dp->ord_dims[i][d];
        off += m;
    }
    mt_array_clear(&acc);
    return st == MT_OK ? MT_OK : mt_err_prefix(st, "dp ordered_finish: ");
}

/* ---------------------------------------------------------------- consistency */

static uint64_t hash_arrays(int32_t n, const mt_array *const *arrays, mt_status *st)
{
    uint64_t h = 0x6d6c747261696e31ull;
    for (int32_t i = 0; i < n && *st == MT_OK; i++) {
        size_t nb = mt_array_nbytes(arrays[i]);
        void *buf = mt_malloc(nb ? nb : 1);
        if (!buf) {
            *st = MT_ERR_NOMEM;
            break;
        }
        *st = mt_array_to_host(buf, nb, arrays[i]);
        if (*st == MT_OK) h = mt_hash64(buf, nb, h ^ (uint64_t)(i + 1));
        mt_free(buf);
    }
    return h;
}

mt_status mt_dp_check_consistent(mt_dp *dp, int64_t step, int32_t n,
                                 const mt_array *const *arrays)
{
    if (!dp || n < 0 || (n > 0 && !arrays))
        return mt_err_set(MT_ERR_INVALID, "dp check_consistent: invalid arguments");
    if (dp->o.checksum_every == 0 || step % dp->o.checksum_every != 0) return MT_OK;
    if (!dp->comm || dp->size == 1) return MT_OK;
    mt_status st = MT_OK;
    uint64_t h = hash_arrays(n, arrays, &st);
    if (st != MT_OK) return mt_err_prefix(st, "dp checksum at step %lld: ", (long long)step);
    mt_array mine = {0}, all = {0};
    int64_t one[1] = {1}, sz[1] = {dp->size};
    st = mt_array_from_host(&mine, dp->host, MT_UINT64, 1, one, &h);
    if (st == MT_OK) st = mt_array_empty(&all, dp->host, MT_UINT64, 1, sz, 'C');
    if (st == MT_OK) st = mt_comm_allgather(dp->comm, &mine, &all);
    uint64_t *hs = NULL;
    if (st == MT_OK) {
        hs = mt_malloc((size_t)dp->size * sizeof *hs);
        st = hs ? mt_array_to_host(hs, (size_t)dp->size * sizeof *hs, &all) : MT_ERR_NOMEM;
    }
    mt_array_clear(&mine);
    mt_array_clear(&all);
    if (st != MT_OK) {
        mt_free(hs);
        return mt_err_prefix(st, "dp checksum at step %lld: ", (long long)step);
    }
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    int32_t ndiff = 0;
    for (int32_t r = 1; r < dp->size; r++)
        if (hs[r] != hs[0]) {
            mt_strbuf_appendf(&sb, "%s%d", ndiff ? ", " : "", (int)r);
            ndiff++;
        }
    if (ndiff > 0)
        st = mt_err_set(MT_ERR_COMM, "ranks diverged at step %lld: the parameters of rank%s %s "
                        "differ from rank 0's (checksum of %d arrays; this is rank %d)",
                        (long long)step, ndiff > 1 ? "s" : "", sb.data ? sb.data : "?", (int)n,
                        (int)dp->rank);
    mt_strbuf_deinit(&sb);
    mt_free(hs);
    return st;
}

/* ---------------------------------------------------------------- threads */

static int32_t env_positive(const char *name)
{
    const char *e = getenv(name);
    if (!e || !*e) return 0;
    char *end = NULL;
    long v = strtol(e, &end, 10);
    return end && *end == '\0' && v > 0 && v < 4096 ? (int32_t)v : 0;
}

int32_t mt_dp_default_threads(void)
{
    int32_t t = env_positive("MLTRAIN_NUM_THREADS");
    if (t <= 0) t = env_positive("OMP_NUM_THREADS");
    if (t > 0) return t;
    int32_t cpus = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus <= 0) cpus = online > 0 ? (int32_t)online : 1;
    mt_launch_info li;
    mt_launch_info_get(&li);
    /* A mask narrower than the machine was set by the launcher per rank (--bind-to core):
     * those CPUs are this rank's alone. A full mask is shared by the node's ranks. */
    bool bound = online > 0 && cpus < online;
    int32_t local = li.local_size > 0 ? li.local_size : 1;
    int32_t r = bound ? cpus : cpus / local;
    return r > 0 ? r : 1;
}
