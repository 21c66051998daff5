/* Collective steps of a schedule: the graph's ALLREDUCE nodes, grouped by bucket, started and
 * completed through the function's collective hooks (jit.h, mt_collective_hooks).
 *
 * Placement. After a schedule's steps are built (reference or fused), every ALLREDUCE node
 * step is removed and each bucket gets two steps: COLL_START, which reads the operands of all
 * the bucket's nodes, and COLL_WAIT, which "produces" the nodes' values for the steps after
 * it. The steps are then re-sorted topologically (Kahn) with priorities: a START whose operands
 * all exist runs at once; otherwise the ready ordinary step that came first in the original
 * order runs; a WAIT runs only when nothing else is ready (or, for a synchronous schedule, right
 * after its START). So in a training step the last layer's bucket starts while the backward
 * pass continues through the earlier layers, and the first wait comes only when the updates
 * need the reduced gradients. The order depends on the graph alone, so every process compiling
 * the same graph starts the same buckets in the same order (a collective requirement).
 *
 * Buffers. START copies the bucket's operands into one fresh buffer (consecutive C-contiguous
 * views, one per node, back to back when they share a dtype) that the hook may overwrite, so
 * the operands stay valid for other readers and a flat all-reduce of the whole buffer needs no
 * further packing. The views become the nodes' values at WAIT.
 *
 * Errors. A failed step leaves buckets in flight: mt__coll_drain waits for them before the
 * schedule's values are released (the hooks may still write into them). */
#include <string.h>

#include "jit_impl.h"

/* ---------------------------------------------------------------- planning */

typedef struct coll_units {
    int32_t n;          /* ordinary steps, then START b (n0 + b), then WAIT b (n0 + nb + b) */
    int32_t n0, nb;
    int32_t *indeg;
    int32_t *start, *adj; /* CSR successors */
} coll_units;

static bool is_allreduce_step(const mt_function *f, const mt__jstep *s)
{
    return s->kind == MT__STEP_NODE && mt_graph_op(f->g, s->v) == MT_OP_ALLREDUCE;
}

/* Builds the START and WAIT steps of bucket b from its node steps (in schedule order). */
static mt_status make_coll_steps(mt_function *f, const mt__jstep *steps, const int32_t *members,
                                 int32_t nm, int32_t b, mt__jstep *st, mt__jstep *wt)
{
    memset(st, 0, sizeof *st);
    memset(wt, 0, sizeof *wt);
    st->kind = MT__STEP_COLL_START;
    wt->kind = MT__STEP_COLL_WAIT;
    st->coll = wt->coll = b;
    st->nin = nm;
    st->ncoll_vars = nm;
    wt->nout = nm;
    st->in = mt_calloc((size_t)nm + 1, sizeof *st->in);
    st->out_vars = mt_calloc((size_t)nm + 1, sizeof *st->out_vars);
    wt->out = mt_calloc((size_t)nm + 1, sizeof *wt->out);
    wt->in = mt_calloc((size_t)nm + 1, sizeof *wt->in); /* the same slots: kept alive (and
                                                          not freed by liveness) until here */
    wt->out_vars = mt_calloc((size_t)nm + 1, sizeof *wt->out_vars);
    wt->nin = nm;
    if (!st->in || !st->out_vars || !wt->out || !wt->in || !wt->out_vars) return MT_ERR_NOMEM;
    for (int32_t j = 0; j < nm; j++) {
        const mt__jstep *s = &steps[members[j]];
        st->in[j] = s->in[0];
        st->out_vars[j] = wt->out_vars[j] = s->v;
        wt->out[j] = wt->in[j] = s->out[0];
    }
    st->v = wt->v = st->out_vars[0];
    (void)f;
    return MT_OK;
}

/* Operand i of node v is read for its shape only (its values are not used). */
static bool shape_only(const mt_graph *g, mt_var v, int32_t i)
{
    mt_op op = mt_graph_op(g, v);
    return (op == MT_OP_BROADCAST_LIKE && i == 1) || (op == MT_OP_CONV2D_GRAD_INPUT && i == 2);
}

/* The unit that operand i of unit x waits for, or -1 (a leaf). A shape-only read of a bucket's
 * result waits for its START only: the result's array (and shape) exists from then on. */
static int32_t unit_pred(const mt_function *f, const mt__jplan *p, const int32_t *unit_step,
                         const mt__jstep *extra, const int32_t *prod, int32_t n0, int32_t nb,
                         int32_t x, int32_t i)
{
    if (x < n0) {
        const mt__jstep *s = &p->steps[unit_step[x]];
        int32_t pu = prod[s->in[i]];
        if (pu >= n0 + nb && s->kind == MT__STEP_NODE && shape_only(f->g, s->v, i)) pu -= nb;
        return pu;
    }
    if (x < n0 + nb) return prod[extra[x - n0].in[i]];
    return x - nb; /* WAIT b: its START */
}

mt_status mt__plan_collectives(mt_function *f, mt__jplan *p, bool sync)
{
    int32_t nar = 0;
    for (int32_t k = 0; k < p->nsteps; k++) nar += is_allreduce_step(f, &p->steps[k]);
    if (nar == 0) return MT_OK;
    if (!f->has_coll)
        return mt_err_set(MT_ERR_INVALID, "jit: the schedule has all-reduce nodes but the "
                          "function has no collective hooks");
    int32_t ns = p->nsteps;
    /* distinct bucket ids, ascending */
    int32_t *ids = mt_malloc((size_t)nar * sizeof *ids);
    int32_t *bidx = mt_malloc((size_t)ns * sizeof *bidx);      /* step -> bucket index or -1 */
    int32_t *prod = mt_malloc(((size_t)p->nslots + 1) * sizeof *prod); /* slot -> unit */
    int32_t *members = mt_malloc((size_t)nar * sizeof *members);
    int32_t *mstart = NULL, *unit_step = NULL, *order = NULL, *special = NULL, *key = NULL;
    int32_t *indeg0 = NULL;
    int64_t *heap = NULL;
    mt__jstep *nsteps = NULL, *extra = NULL;
    coll_units u = {0};
    mt_status st = ids && bidx && prod && members ? MT_OK : MT_ERR_NOMEM;
    int32_t nb = 0;
    for (int32_t k = 0; st == MT_OK && k < ns; k++) {
        bidx[k] = -1;
        if (!is_allreduce_step(f, &p->steps[k])) continue;
        int32_t id = mt_graph_attrs(f->g, p->steps[k].v)->bucket, pos = 0;
        while (pos < nb && ids[pos] < id) pos++;
        if (pos < nb && ids[pos] == id) continue;
        memmove(ids + pos + 1, ids + pos, (size_t)(nb - pos) * sizeof *ids);
        ids[pos] = id;
        nb++;
    }
    for (int32_t k = 0; st == MT_OK && k < ns; k++) {
        if (!is_allreduce_step(f, &p->steps[k])) continue;
        int32_t id = mt_graph_attrs(f->g, p->steps[k].v)->bucket;
        for (int32_t b = 0; b < nb; b++)
            if (ids[b] == id) bidx[k] = b;
    }
    /* members of each bucket, in schedule order (CSR) */
    if (st == MT_OK) {
        mstart = mt_calloc((size_t)nb + 2, sizeof *mstart);
        if (!mstart) st = MT_ERR_NOMEM;
    }
    for (int32_t k = 0; st == MT_OK && k < ns; k++)
        if (bidx[k] >= 0) mstart[bidx[k] + 1]++;
    for (int32_t b = 0; st == MT_OK && b < nb; b++) mstart[b + 1] += mstart[b];
    if (st == MT_OK) {
        int32_t *fill = mt_calloc((size_t)nb + 1, sizeof *fill);
        if (!fill) st = MT_ERR_NOMEM;
        for (int32_t k = 0; st == MT_OK && k < ns; k++)
            if (bidx[k] >= 0) members[mstart[bidx[k]] + fill[bidx[k]]++] = k;
        mt_free(fill);
    }
    /* units: ordinary steps keep their relative order (priority = index) */
    int32_t n0 = ns - nar;
    u.n0 = n0;
    u.nb = nb;
    u.n = n0 + 2 * nb;
    if (st == MT_OK) {
        unit_step = mt_malloc(((size_t)n0 + 1) * sizeof *unit_step);
        u.indeg = mt_calloc((size_t)u.n + 1, sizeof *u.indeg);
        u.start = mt_calloc((size_t)u.n + 2, sizeof *u.start);
        extra = mt_calloc(2 * (size_t)nb + 1, sizeof *extra);
        if (!unit_step || !u.indeg || !u.start || !extra) st = MT_ERR_NOMEM;
    }
    for (int32_t i = 0; st == MT_OK && i < p->nslots; i++) prod[i] = -1;
    if (st == MT_OK) {
        int32_t j = 0;
        for (int32_t k = 0; k < ns; k++) {
            const mt__jstep *s = &p->steps[k];
            if (bidx[k] >= 0) {
                prod[s->out[0]] = n0 + nb + bidx[k];
                continue;
            }
            unit_step[j] = k;
            for (int32_t o = 0; o < s->nout; o++) prod[s->out[o]] = j;
            j++;
        }
    }
    for (int32_t b = 0; st == MT_OK && b < nb; b++)
        st = make_coll_steps(f, p->steps, members + mstart[b], mstart[b + 1] - mstart[b], b,
                             &extra[b], &extra[nb + b]);
    /* edges: producer unit -> consumer unit (duplicates are harmless: counted both ways) */
#define UNIT_NIN(x) ((x) < n0 ? p->steps[unit_step[x]].nin : (x) < n0 + nb ? extra[(x) - n0].nin : 1)
#define UNIT_IN(x, i) unit_pred(f, p, unit_step, extra, prod, n0, nb, x, i)
    int32_t nedges = 0;
    for (int32_t x = 0; st == MT_OK && x < u.n; x++)
        for (int32_t i = 0; i < UNIT_NIN(x); i++) {
            int32_t pu = UNIT_IN(x, i);
            if (pu < 0) continue;
            if (pu == n0 + nb + (x - n0) && x >= n0 && x < n0 + nb) {
                st = mt_err_set(MT_ERR_INVALID, "jit: an operand of all-reduce bucket %d "
                                "depends on a result of the same bucket (v%d); put them in "
                                "different buckets", (int)ids[x - n0],
                                (int)extra[x - n0].out_vars[0]);
                break;
            }
            u.start[pu + 1]++;
            u.indeg[x]++;
            nedges++;
        }
    if (st == MT_OK) {
        u.adj = mt_malloc(((size_t)nedges + 1) * sizeof *u.adj);
        order = mt_malloc(((size_t)u.n + 1) * sizeof *order);
        heap = mt_malloc(((size_t)u.n + 1) * sizeof *heap);
        special = mt_malloc(((size_t)u.n + 1) * sizeof *special);
        key = mt_malloc(((size_t)u.n + 1) * sizeof *key);
        indeg0 = mt_malloc(((size_t)u.n + 1) * sizeof *indeg0);
        if (!u.adj || !order || !heap || !special || !key || !indeg0) st = MT_ERR_NOMEM;
    }
    if (st == MT_OK) {
        for (int32_t x = 0; x < u.n; x++) u.start[x + 1] += u.start[x];
        int32_t *fill = mt_calloc((size_t)u.n + 1, sizeof *fill);
        if (!fill) st = MT_ERR_NOMEM;
        for (int32_t x = 0; st == MT_OK && x < u.n; x++)
            for (int32_t i = 0; i < UNIT_NIN(x); i++) {
                int32_t pu = UNIT_IN(x, i);
                if (pu >= 0) u.adj[u.start[pu] + fill[pu]++] = x;
            }
        mt_free(fill);
    }
#undef UNIT_NIN
#undef UNIT_IN
    /* Priority of an ordinary step: the first bucket (in bucket order) that needs it, nb when
     * none does. A plain topological order first (FIFO Kahn), then keys from the sinks up. */
    int32_t done = 0;
    if (st == MT_OK) {
        memcpy(indeg0, u.indeg, (size_t)u.n * sizeof *indeg0);
        int32_t head = 0;
        for (int32_t x = 0; x < u.n; x++)
            if (u.indeg[x] == 0) order[done++] = x;
        while (head < done) {
            int32_t x = order[head++];
            for (int32_t e = u.start[x]; e < u.start[x + 1]; e++)
                if (--u.indeg[u.adj[e]] == 0) order[done++] = u.adj[e];
        }
        for (int32_t r = done - 1; r >= 0; r--) {
            int32_t x = order[r];
            key[x] = x >= n0 && x < n0 + nb ? x - n0 : nb;
            for (int32_t e = u.start[x]; e < u.start[x + 1]; e++)
                if (key[u.adj[e]] < key[x]) key[x] = key[u.adj[e]];
        }
        if (done != u.n) { /* a cycle: name a bucket on it */
            int32_t b = 0;
            while (b < nb && u.indeg[n0 + b] == 0) b++;
            st = mt_err_set(MT_ERR_INVALID, "jit: an operand of all-reduce bucket %d (v%d) "
                            "depends on a result of the same bucket, directly or through "
                            "another bucket; put them in different buckets",
                            (int)ids[b < nb ? b : 0], (int)extra[b < nb ? b : 0].out_vars[0]);
        }
        memcpy(u.indeg, indeg0, (size_t)u.n * sizeof *indeg0);
        done = 0;
    }
    /* Kahn with priorities: ready STARTs first, then (sync) ready WAITs, then ordinary steps
     * by (key, original position), then WAITs. */
    if (st == MT_OK) {
        int32_t nh = 0, nsp = 0; /* special: ready START/WAIT units */
        for (int32_t x = 0; x < u.n; x++)
            if (u.indeg[x] == 0) {
                if (x < n0) mt__jheap_push(heap, &nh, (int64_t)key[x] << 32 | x);
                else special[nsp++] = x;
            }
        while (nh > 0 || nsp > 0) {
            int32_t pick = -1, at = -1;
            for (int32_t i = 0; i < nsp; i++) /* START (lowest bucket) */
                if (special[i] < n0 + nb && (pick < 0 || special[i] < pick)) pick = special[i], at = i;
            for (int32_t i = 0; pick < 0 && sync && i < nsp; i++)
                if (at < 0 || special[i] < special[at]) at = i;
            if (pick < 0 && at >= 0) pick = special[at];
            if (pick < 0 && nh > 0) pick = (int32_t)(mt__jheap_pop(heap, &nh) & 0x7fffffff);
            if (pick < 0) { /* only WAITs are ready: the lowest bucket */
                for (int32_t i = 0; i < nsp; i++)
                    if (at < 0 || special[i] < special[at]) at = i;
                pick = special[at];
            }
            if (at >= 0 && special[at] == pick) special[at] = special[--nsp];
            order[done++] = pick;
            for (int32_t e = u.start[pick]; e < u.start[pick + 1]; e++) {
                int32_t y = u.adj[e];
                if (--u.indeg[y] == 0) {
                    if (y < n0) mt__jheap_push(heap, &nh, (int64_t)key[y] << 32 | y);
                    else special[nsp++] = y;
                }
            }
        }
        if (done != u.n)
            st = mt_err_set(MT_ERR_INTERNAL, "jit: ordering the all-reduce steps left %d of %d "
                            "steps out", (int)(u.n - done), (int)u.n);
    }
    if (st == MT_OK) {
        nsteps = mt_calloc((size_t)u.n + 1, sizeof *nsteps);
        p->coll_bucket = mt_calloc((size_t)nb + 1, sizeof *p->coll_bucket);
        p->coll_req = mt_calloc((size_t)nb + 1, sizeof *p->coll_req);
        p->coll_t0 = mt_calloc((size_t)nb + 1, sizeof *p->coll_t0);
        p->coll_arrays = mt_calloc((size_t)nar + 1, sizeof *p->coll_arrays);
        if (!nsteps || !p->coll_bucket || !p->coll_req || !p->coll_t0 || !p->coll_arrays)
            st = MT_ERR_NOMEM;
    }
    if (st == MT_OK) {
        for (int32_t r = 0; r < u.n; r++) {
            int32_t x = order[r];
            mt__jstep *src = x < n0 ? &p->steps[unit_step[x]] : &extra[x - n0];
            nsteps[r] = *src;
            memset(src, 0, sizeof *src);
        }
        for (int32_t k = 0; k < ns; k++) mt__step_free(&p->steps[k]); /* the node steps */
        mt_free(p->steps);
        p->steps = nsteps;
        p->nsteps = u.n;
        nsteps = NULL;
        p->ncoll = nb;
        memcpy(p->coll_bucket, ids, (size_t)nb * sizeof *ids);
    }
    if (extra)
        for (int32_t i = 0; i < 2 * nb; i++) mt__step_free(&extra[i]);
    mt_free(extra);
    mt_free(nsteps);
    mt_free(ids);
    mt_free(bidx);
    mt_free(prod);
    mt_free(members);
    mt_free(mstart);
    mt_free(unit_step);
    mt_free(order);
    mt_free(heap);
    mt_free(special);
    mt_free(key);
    mt_free(indeg0);
    mt_free(u.indeg);
    mt_free(u.start);
    mt_free(u.adj);
    return st;
}

/* ---------------------------------------------------------------- running */

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

mt_status mt__coll_start(mt_function *f, mt__jplan *p, const mt__jstep *s,
                         const mt_array *const *ins, mt_array *values)
{
    int32_t b = s->coll, n = s->nin;
    size_t total = 0;
    for (int32_t j = 0; j < n; j++) {
        if (j > 0 && ins[j]->dtype != ins[j - 1]->dtype) total = align_up(total, 64);
        total += mt_array_nbytes(ins[j]);
    }
    mt_buffer *buf = NULL;
    mt_status st = mt_buffer_new(&buf, f->dev, total);
    size_t off = 0;
    for (int32_t j = 0; j < n && st == MT_OK; j++) {
        const mt_array *x = ins[j];
        if (j > 0 && x->dtype != ins[j - 1]->dtype) off = align_up(off, 64);
        mt_array *a = &values[mt__order_pos(f, s->out_vars[j])];
        mt_array_clear(a);
        mt_buffer_retain(buf);
        a->buf = buf;
        a->offset = off;
        a->dtype = x->dtype;
        a->ndim = x->ndim;
        int64_t stride = (int64_t)mt_dtype_size(x->dtype);
        for (int32_t d = x->ndim - 1; d >= 0; d--) {
            a->dims[d] = x->dims[d];
            a->strides[d] = stride;
            stride *= x->dims[d];
        }
        a->flags = MT_ARRAY_WRITEABLE;
        mt_array_update_flags(a);
        off += mt_array_nbytes(x);
        st = mt_array_copy(a, x);
        p->coll_arrays[j] = a;
    }
    /* A device whose memory the host can address: the hook may read the buffer from another
     * thread through that address, so the copies above must be done. Other devices order the
     * hook's own reads after them (staging copies on the compute stream, NCCL after an event
     * on it): no sync, so the host keeps queueing the backward pass while buckets travel, and a
     * stalled peer is met by the collective's deadline, not by a wait on the whole device. */
    const mt_device_info *info = mt_device_get_info(f->dev);
    if (st == MT_OK && !(info && strcmp(info->backend, "host") == 0) && mt_buffer_host_ptr(buf))
        st = mt_device_sync(f->dev);
    mt_buffer_release(buf);
    double t0 = mt_now_seconds();
    if (st == MT_OK) {
        void *req = NULL;
        st = f->coll.start(f->coll.ctx, p->coll_bucket[b], n, p->coll_arrays, &req);
        if (st == MT_OK) {
            p->coll_req[b] = req;
            p->coll_t0[b] = t0;
        }
        f->coll_wait_seconds += mt_now_seconds() - t0;
    }
    if (st != MT_OK) {
        for (int32_t j = 0; j < n; j++) mt_array_clear(&values[mt__order_pos(f, s->out_vars[j])]);
        return mt_err_prefix(st, "all-reduce of bucket %d (%d arrays, first v%d): ",
                             (int)p->coll_bucket[b], (int)n, (int)s->out_vars[0]);
    }
    return MT_OK;
}

mt_status mt__coll_wait(mt_function *f, mt__jplan *p, const mt__jstep *s)
{
    int32_t b = s->coll;
    void *req = p->coll_req[b];
    p->coll_req[b] = NULL;
    double t0 = mt_now_seconds();
    mt_status st = f->coll.wait(f->coll.ctx, req);
    double t1 = mt_now_seconds();
    f->coll_wait_seconds += t1 - t0;
    f->coll_seconds += t1 - p->coll_t0[b];
    f->coll_calls++;
    if (st != MT_OK)
        return mt_err_prefix(st, "all-reduce of bucket %d (first v%d): waiting: ",
                             (int)p->coll_bucket[b], (int)s->out_vars[0]);
    return MT_OK;
}

mt_status mt__coll_drain(mt_function *f, mt__jplan *p, mt_status st)
{
    for (int32_t b = 0; b < p->ncoll; b++) {
        if (!p->coll_req[b]) continue;
        void *req = p->coll_req[b];
        p->coll_req[b] = NULL;
        mt_status w = f->coll.wait(f->coll.ctx, req);
        if (st == MT_OK && w != MT_OK)
            st = mt_err_prefix(w, "all-reduce of bucket %d: waiting: ", (int)p->coll_bucket[b]);
    }
    return st;
}
