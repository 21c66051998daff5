/* mt_elemwise: fused elementwise kernels over broadcast, strided arrays on any device.
 *
 * A call validates the arguments (counts, dtypes, shapes, devices, writeability), broadcasts the
 * inputs to the output shape (stride 0), copies an input that partially overlaps an output (an
 * exact alias, as in x = x * y, is fine), orders the dimensions by the first output's strides
 * when the result does not depend on the iteration order, collapses dimensions that are
 * contiguous for every argument, and runs one generated kernel. Inputs the expression never
 * reads are left out of the kernel entirely.
 *
 * Kernels are cached per device by a key holding the language, the collapsed rank, the layout
 * class and an exact text of the expression (so two expressions never share a kernel by hash
 * collision). Layouts:
 *   - contiguous: every argument is one dense run (rank <= 1 after collapsing); the kernel is
 *     one flat loop over [begin, end) on typed restrict pointers, which gcc vectorizes.
 *   - strided: the host kernel walks the collapsed N-d index with per-argument byte strides
 *     passed as scalar arguments, updating row pointers incrementally; its inner loop runs along
 *     the last dimension and is specialised per argument on the last stride (== itemsize: a
 *     typed restrict pointer that vectorizes; 0: a value loaded once per row; else byte stride),
 *     so row broadcasts like x[N,C] + b[C] stay vectorized. OpenCL and CUDA kernels decompose
 *     the flat index of each work item instead (one kernel per rank, fewer compiles).
 * Work items are elements in both layouts: host chunks are [begin, end) of the flat C-order
 * index (a chunk may start and end mid-row), and INDEX / RAND nodes read that index.
 * On the host without a working C compiler (or with MLTRAIN_NO_CC=1) the same plan runs in the
 * interpreter (kinterp.c), split over the device's thread pool.
 *
 * mt_elemwise_memo_run keeps the plan and kernel handle of a caller's previous call and, when
 * the next call's arguments have the same dtypes, shapes and strides, launches that kernel on
 * the new buffers directly: no validation of the expression, no planning and no key text,
 * which for the tiny kernels of a small training step cost as much as the kernels. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

#define EW_MAX_ARGS 64
#define EW_MAX_PARAMS 64

/* ---------------------------------------------------------------- dimension collapsing */

int32_t mt__collapse_dims(int32_t ndim, int64_t *dims, int32_t nsets, int64_t **strides)
{
    for (int32_t d = 0; d < ndim; d++) {
        if (dims[d] == 0) {
            dims[0] = 0;
            for (int32_t s = 0; s < nsets; s++) strides[s][0] = 0;
            return 1;
        }
    }
    int32_t n = 0; /* drop length-1 dims */
    for (int32_t d = 0; d < ndim; d++) {
        if (dims[d] == 1) continue;
        dims[n] = dims[d];
        for (int32_t s = 0; s < nsets; s++) strides[s][n] = strides[s][d];
        n++;
    }
    if (n == 0) return 0;
    int32_t m = 0; /* merge d into the run ending at m when every set allows it */
    for (int32_t d = 1; d < n; d++) {
        bool ok = true;
        for (int32_t s = 0; s < nsets && ok; s++)
            ok = strides[s][m] == strides[s][d] * dims[d];
        if (ok) {
            dims[m] *= dims[d];
            for (int32_t s = 0; s < nsets; s++) strides[s][m] = strides[s][d];
        } else {
            m++;
            dims[m] = dims[d];
            for (int32_t s = 0; s < nsets; s++) strides[s][m] = strides[s][d];
        }
    }
    return m + 1;
}

/* ---------------------------------------------------------------- the plan */

typedef struct ew_arg {
    int32_t src;       /* input index, or nin + output index */
    mt_dtype dt;       /* storage dtype */
    const mt_array *arr;
    int64_t strides[MT_MAX_DIMS]; /* broadcast to the output shape, then permuted/collapsed */
    char cls;          /* host strided kernels: 'c' dense, 'z' stride 0, 's' other */
} ew_arg;

typedef struct ew_plan {
    const mt_kexpr *e;
    mt_klang lang;
    int32_t nin, nact, nd;
    bool contig, uses_index, uses_f64;
    int64_t size;
    int64_t dims[MT_MAX_DIMS];
    ew_arg args[EW_MAX_ARGS];
    int32_t nprm;
    int32_t prm_idx[EW_MAX_PARAMS];
    mt_dtype prm_dt[EW_MAX_PARAMS];
} ew_plan;

static const char *shape_of(const mt_array *a, char *buf, size_t len)
{
    return mt_shape_str(a->ndim, a->dims, buf, len);
}

/* Checks the outputs: present, dtype of their node, one shape, writeable. */
static mt_status check_outputs(const mt_kexpr *e, mt_array *const *outputs)
{
    char b1[160], b2[160];
    for (int32_t j = 0; j < e->nouts; j++) {
        const mt_array *o = outputs[j];
        if (!o || !o->buf)
            return mt_err_set(MT_ERR_INVALID, "elemwise: output %d is %s", j,
                              o ? "an empty array" : "NULL");
        mt_dtype want = e->nodes[e->outs[j]].dtype;
        if (o->dtype != want)
            return mt_err_set(MT_ERR_DTYPE, "elemwise: output %d has dtype %s but the expression "
                              "produces %s (node %d)", j, mt_dtype_name(o->dtype),
                              mt_dtype_name(want), e->outs[j]);
        if (o->ndim != outputs[0]->ndim ||
            memcmp(o->dims, outputs[0]->dims, (size_t)o->ndim * sizeof o->dims[0]) != 0)
            return mt_err_set(MT_ERR_SHAPE, "elemwise: output %d has shape %s but output 0 has "
                              "%s", j, shape_of(o, b1, sizeof b1),
                              shape_of(outputs[0], b2, sizeof b2));
        if (!(o->flags & MT_ARRAY_WRITEABLE))
            return mt_err_set(MT_ERR_INVALID, "elemwise: output %d (%s) is read-only", j,
                              mt_array_describe(o, b1, sizeof b1));
    }
    return MT_OK;
}

/* Input strides broadcast to the output shape (right-aligned, stride 0 on broadcast dims). */
static mt_status broadcast_strides(const mt_array *in, int32_t idx, const mt_array *out,
                                   int64_t *strides)
{
    char b1[160], b2[160];
    int32_t nd = out->ndim, off = nd - in->ndim;
    if (off < 0) goto bad;
    for (int32_t d = 0; d < nd; d++) {
        if (d < off) {
            strides[d] = 0;
            continue;
        }
        int64_t n = in->dims[d - off];
        if (n == out->dims[d] && n != 1)
            strides[d] = in->strides[d - off];
        else if (n == 1)
            strides[d] = 0;
        else
            goto bad;
    }
    return MT_OK;
bad:
    return mt_err_set(MT_ERR_SHAPE, "elemwise: input %d of shape %s does not broadcast to the "
                      "output shape %s", idx, shape_of(in, b1, sizeof b1),
                      shape_of(out, b2, sizeof b2));
}

/* Byte range [lo, hi) an array view touches. */
static void byte_range(const mt_array *a, const int64_t *strides, int32_t nd, const int64_t *dims,
                       int64_t *lo, int64_t *hi)
{
    int64_t l = (int64_t)a->offset, h = (int64_t)a->offset;
    for (int32_t d = 0; d < nd; d++) {
        int64_t ext = (dims[d] - 1) * strides[d];
        if (ext < 0) l += ext; else h += ext;
    }
    *lo = l;
    *hi = h + (int64_t)mt_dtype_size(a->dtype);
}

/* Whether input view (with broadcast strides) partially overlaps an output: an exact alias
 * (same place, same strides, same item size) is safe for an elementwise kernel. */
static bool bad_overlap(const mt_array *in, const int64_t *in_str, const mt_array *out, int32_t nd)
{
    if (in->buf != out->buf) return false;
    if (in->offset == out->offset && mt_dtype_size(in->dtype) == mt_dtype_size(out->dtype) &&
        memcmp(in_str, out->strides, (size_t)nd * sizeof *in_str) == 0)
        return false;
    int64_t l1, h1, l2, h2;
    byte_range(in, in_str, nd, out->dims, &l1, &h1);
    byte_range(out, out->strides, nd, out->dims, &l2, &h2);
    return l1 < h2 && l2 < h1;
}

/* Orders dims by decreasing |stride| of the first output (stable), so that an F-ordered or
 * transposed output is walked in memory order. Only when the result does not depend on the
 * iteration order (no INDEX / RAND). */
static void order_dims(ew_plan *p, int32_t out0)
{
    int32_t perm[MT_MAX_DIMS];
    for (int32_t d = 0; d < p->nd; d++) perm[d] = d;
    const int64_t *ref = p->args[out0].strides;
    for (int32_t i = 1; i < p->nd; i++) {
        int32_t v = perm[i], j = i;
        int64_t sv = ref[v] < 0 ? -ref[v] : ref[v];
        while (j > 0) {
            int64_t sp = ref[perm[j - 1]] < 0 ? -ref[perm[j - 1]] : ref[perm[j - 1]];
            if (sp >= sv || p->dims[perm[j - 1]] == 1 || p->dims[v] == 1) break;
            perm[j] = perm[j - 1];
            j--;
        }
        perm[j] = v;
    }
    int64_t tmp[MT_MAX_DIMS];
    for (int32_t d = 0; d < p->nd; d++) tmp[d] = p->dims[perm[d]];
    memcpy(p->dims, tmp, (size_t)p->nd * sizeof tmp[0]);
    for (int32_t a = 0; a < p->nact; a++) {
        for (int32_t d = 0; d < p->nd; d++) tmp[d] = p->args[a].strides[perm[d]];
        memcpy(p->args[a].strides, tmp, (size_t)p->nd * sizeof tmp[0]);
    }
}

/* Fills dims, collapses, and decides the layout class. */
static void plan_layout(ew_plan *p, const mt_array *out0, int32_t out0_act)
{
    p->nd = out0->ndim;
    memcpy(p->dims, out0->dims, (size_t)p->nd * sizeof p->dims[0]);
    if (!p->uses_index && p->nd > 1) order_dims(p, out0_act);
    int64_t *sets[EW_MAX_ARGS];
    for (int32_t a = 0; a < p->nact; a++) sets[a] = p->args[a].strides;
    p->nd = mt__collapse_dims(p->nd, p->dims, p->nact, sets);
    p->contig = true;
    for (int32_t a = 0; a < p->nact; a++) {
        ew_arg *g = &p->args[a];
        int64_t isz = (int64_t)mt_dtype_size(g->dt);
        int64_t last = p->nd > 0 ? g->strides[p->nd - 1] : isz;
        g->cls = last == isz ? 'c' : (last == 0 && g->src < p->nin) ? 'z' : 's';
        if (p->nd > 1 || (p->nd == 1 && g->cls != 'c')) p->contig = false;
    }
}

/* ---------------------------------------------------------------- source generation */

static const char *st_type(const ew_arg *g)
{
    return mt__kgen_storage_type(g->dt, MT_KLANG_C);
}

static void var_name(const ew_plan *p, const ew_arg *g, char *buf, size_t len)
{
    if (g->src < p->nin)
        snprintf(buf, len, "in%d", g->src);
    else
        snprintf(buf, len, "out%d", g->src - p->nin);
}

/* Declarations of the expression's out<j> variables, then the expression itself. */
static mt_status gen_body(mt_strbuf *sb, const ew_plan *p, const char *ind)
{
    for (int32_t a = 0; a < p->nact; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src >= p->nin) mt_strbuf_appendf(sb, "%s%s out%d;\n", ind, st_type(g), g->src - p->nin);
    }
    return mt__kgen_expr(sb, p->e, p->lang, ind);
}

static void gen_c_params(mt_strbuf *sb, const ew_plan *p, int32_t first)
{
    for (int32_t k = 0; k < p->nprm; k++) {
        const char *t = mt__kgen_param_type(p->prm_dt[k], MT_KLANG_C);
        mt_strbuf_appendf(sb, "    const %s prm%d = *(const %s *)args[%d];\n", t, p->prm_idx[k], t,
                          first + k);
    }
}

/* Before a host kernel's element loop: its iterations are independent (an output is never an
 * input at another position: partial overlaps are copied first, fix_overlaps), which the
 * compiler cannot prove with many streams: GCC gives up vectorizing when a loop needs more than
 * 10 run-time alias checks (--param vect-max-version-for-alias-checks), as a fused kernel with 7
 * inputs and 5 outputs does (45 checks), and block-scope restrict does not tell it. */
static void gen_c_ivdep(mt_strbuf *sb)
{
    mt_strbuf_append(sb, "#if defined(__clang__)\n#pragma clang loop vectorize(assume_safety)\n"
                         "#elif defined(__GNUC__)\n#pragma GCC ivdep\n#endif\n");
}

static mt_status gen_c_contig(mt_strbuf *sb, const ew_plan *p, const char *entry)
{
    char v[16];
    mt_strbuf_appendf(sb, "void %s(void **args, int64_t begin, int64_t end)\n{\n", entry);
    for (int32_t a = 0; a < p->nact; a++) {
        const ew_arg *g = &p->args[a];
        var_name(p, g, v, sizeof v);
        bool in = g->src < p->nin;
        mt_strbuf_appendf(sb, "    %s%s *restrict p%s = (%s%s *)args[%d];\n", in ? "const " : "",
                          st_type(g), v, in ? "const " : "", st_type(g), a);
    }
    gen_c_params(sb, p, p->nact);
    gen_c_ivdep(sb);
    mt_strbuf_append(sb, "    for (int64_t i = begin; i < end; i++) {\n");
    if (p->uses_index) mt_strbuf_append(sb, "        const int64_t idx = i;\n");
    for (int32_t a = 0; a < p->nact; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src >= p->nin) continue;
        var_name(p, g, v, sizeof v);
        mt_strbuf_appendf(sb, "        const %s %s = p%s[i];\n", st_type(g), v, v);
    }
    mt_status st = gen_body(sb, p, "        ");
    for (int32_t a = 0; a < p->nact; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src < p->nin) continue;
        var_name(p, g, v, sizeof v);
        mt_strbuf_appendf(sb, "        p%s[i] = %s;\n", v, v);
    }
    mt_strbuf_append(sb, "    }\n}\n");
    return st;
}

/* Host strided kernel: rows of the last dim, row pointers q<a> updated with carries. */
static mt_status gen_c_strided(mt_strbuf *sb, const ew_plan *p, const char *entry)
{
    int32_t nd = p->nd, L = nd - 1, na = p->nact;
    char v[16];
    mt_strbuf_appendf(sb, "void %s(void **args, int64_t begin, int64_t end)\n{\n", entry);
    for (int32_t a = 0; a < na; a++) mt_strbuf_appendf(sb, "    char *p%d = (char *)args[%d];\n", a, a);
    for (int32_t d = 0; d < nd; d++)
        mt_strbuf_appendf(sb, "    const int64_t d%d = *(const int64_t *)args[%d];\n", d, na + d);
    for (int32_t a = 0; a < na; a++)
        for (int32_t d = 0; d < nd; d++)
            mt_strbuf_appendf(sb, "    const int64_t s%d_%d = *(const int64_t *)args[%d];\n", a, d,
                              na + nd + a * nd + d);
    gen_c_params(sb, p, na + nd + na * nd);
    /* the N-d index of begin: i0..i{L-1} outer, j inner */
    mt_strbuf_appendf(sb, "    int64_t r_ = begin;\n    int64_t j = r_ %% d%d;\n    r_ /= d%d;\n", L, L);
    for (int32_t d = L - 1; d >= 0; d--)
        mt_strbuf_appendf(sb, "    int64_t i%d = r_ %% d%d;\n    r_ /= d%d;\n", d, d, d);
    for (int32_t a = 0; a < na; a++) {
        mt_strbuf_appendf(sb, "    char *q%d = p%d", a, a);
        for (int32_t d = 0; d < L; d++) mt_strbuf_appendf(sb, " + i%d * s%d_%d", d, a, d);
        mt_strbuf_append(sb, ";\n");
    }
    mt_strbuf_appendf(sb, "    int64_t pos = begin;\n    while (pos < end) {\n"
                          "        int64_t n = d%d - j;\n        if (n > end - pos) n = end - pos;\n", L);
    for (int32_t a = 0; a < na; a++) {
        const ew_arg *g = &p->args[a];
        bool in = g->src < p->nin;
        const char *t = st_type(g);
        if (g->cls == 'c')
            mt_strbuf_appendf(sb, "        %s%s *restrict r%d = (%s%s *)q%d + j;\n", in ? "const " : "",
                              t, a, in ? "const " : "", t, a);
        else if (g->cls == 'z')
            mt_strbuf_appendf(sb, "        const %s z%d = *(const %s *)q%d;\n", t, a, t, a);
        else
            mt_strbuf_appendf(sb, "        char *r%d = q%d + j * s%d_%d;\n", a, a, a, L);
    }
    gen_c_ivdep(sb);
    mt_strbuf_append(sb, "        for (int64_t el = 0; el < n; el++) {\n");
    if (p->uses_index) mt_strbuf_append(sb, "            const int64_t idx = pos + el;\n");
    for (int32_t a = 0; a < na; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src >= p->nin) continue;
        var_name(p, g, v, sizeof v);
        const char *t = st_type(g);
        if (g->cls == 'c') mt_strbuf_appendf(sb, "            const %s %s = r%d[el];\n", t, v, a);
        else if (g->cls == 'z') mt_strbuf_appendf(sb, "            const %s %s = z%d;\n", t, v, a);
        else mt_strbuf_appendf(sb, "            const %s %s = *(const %s *)(r%d + el * s%d_%d);\n", t, v, t, a, a, L);
    }
    mt_status st = gen_body(sb, p, "            ");
    for (int32_t a = 0; a < na; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src < p->nin) continue;
        var_name(p, g, v, sizeof v);
        if (g->cls == 'c') mt_strbuf_appendf(sb, "            r%d[el] = %s;\n", a, v);
        else mt_strbuf_appendf(sb, "            *(%s *)(r%d + el * s%d_%d) = %s;\n", st_type(g), a, a, L, v);
    }
    mt_strbuf_append(sb, "        }\n        pos += n;\n        j += n;\n");
    if (L > 0) {
        /* end of a row: advance the outer index with carries (nested from dim L-1 down) */
        mt_strbuf_appendf(sb, "        if (j == d%d) {\n            j = 0;\n", L);
        for (int32_t d = L - 1; d >= 0; d--) {
            mt_strbuf_appendf(sb, "            if (++i%d < d%d) {\n", d, d);
            for (int32_t a = 0; a < na; a++) mt_strbuf_appendf(sb, "                q%d += s%d_%d;\n", a, a, d);
            mt_strbuf_appendf(sb, "            } else {\n                i%d = 0;\n", d);
            for (int32_t a = 0; a < na; a++)
                mt_strbuf_appendf(sb, "                q%d -= (d%d - 1) * s%d_%d;\n", a, d, a, d);
        }
        for (int32_t d = L - 1; d >= 0; d--) mt_strbuf_append(sb, "            }\n");
        mt_strbuf_append(sb, "        }\n");
    }
    mt_strbuf_append(sb, "    }\n}\n");
    return st;
}

/* OpenCL and CUDA: a grid-stride loop over elements, flat index decomposed per element. */
static mt_status gen_device(mt_strbuf *sb, const ew_plan *p, const char *entry)
{
    bool cl = p->lang == MT_KLANG_OPENCL;
    const char *i64 = cl ? "long" : "long long";
    int32_t nd = p->nd, na = p->nact;
    char v[16];
    if (cl)
        mt_strbuf_appendf(sb, "__kernel void %s(", entry);
    else
        mt_strbuf_appendf(sb, "extern \"C\" __global__ void %s(", entry);
    for (int32_t a = 0; a < na; a++) {
        if (cl) mt_strbuf_appendf(sb, "%s__global char *p%d, ulong o%d", a ? ", " : "", a, a);
        else mt_strbuf_appendf(sb, "%schar *p%d", a ? ", " : "", a);
    }
    if (!p->contig) {
        for (int32_t d = 0; d < nd; d++) mt_strbuf_appendf(sb, ", %s d%d", i64, d);
        for (int32_t a = 0; a < na; a++)
            for (int32_t d = 0; d < nd; d++) mt_strbuf_appendf(sb, ", %s s%d_%d", i64, a, d);
    }
    for (int32_t k = 0; k < p->nprm; k++)
        mt_strbuf_appendf(sb, ", %s prm%d", mt__kgen_param_type(p->prm_dt[k], p->lang), p->prm_idx[k]);
    mt_strbuf_appendf(sb, ", %s nwork)\n{\n", i64);
    if (cl)
        mt_strbuf_append(sb, "    for (long w = get_global_id(0); w < nwork; w += get_global_size(0)) {\n");
    else
        mt_strbuf_append(sb, "    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
                             "w < nwork; w += (long long)blockDim.x * gridDim.x) {\n");
    if (p->uses_index) mt_strbuf_append(sb, "        const int64_t idx = w;\n");
    if (!p->contig && nd > 0) {
        mt_strbuf_appendf(sb, "        %s r_ = w;\n", i64);
        for (int32_t d = nd - 1; d > 0; d--)
            mt_strbuf_appendf(sb, "        const %s c%d = r_ %% d%d;\n        r_ /= d%d;\n", i64, d, d, d);
        mt_strbuf_appendf(sb, "        const %s c0 = r_;\n", i64);
    }
    /* element address of arg a */
    for (int32_t a = 0; a < na; a++) {
        const ew_arg *g = &p->args[a];
        bool in = g->src < p->nin;
        var_name(p, g, v, sizeof v);
        mt_strbuf_appendf(sb, "        %s%s%s *e%d = (%s%s%s *)(p%d", cl ? "__global " : "",
                          in ? "const " : "", st_type(g), a, cl ? "__global " : "",
                          in ? "const " : "", st_type(g), a);
        if (cl) mt_strbuf_appendf(sb, " + o%d", a);
        if (!p->contig)
            for (int32_t d = 0; d < nd; d++) mt_strbuf_appendf(sb, " + c%d * s%d_%d", d, a, d);
        mt_strbuf_appendf(sb, ")%s;\n", p->contig ? " + w" : "");
        if (in) mt_strbuf_appendf(sb, "        const %s %s = *e%d;\n", st_type(g), v, a);
    }
    mt_status st = gen_body(sb, p, "        ");
    for (int32_t a = 0; a < na; a++) {
        const ew_arg *g = &p->args[a];
        if (g->src < p->nin) continue;
        var_name(p, g, v, sizeof v);
        mt_strbuf_appendf(sb, "        *e%d = %s;\n", a, v);
    }
    mt_strbuf_append(sb, "    }\n}\n");
    return st;
}

typedef struct gen_ctx {
    const ew_plan *p;
    uint64_t key_hash;
} gen_ctx;

static mt_status gen_source(void *vctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    const gen_ctx *g = vctx;
    const ew_plan *p = g->p;
    snprintf(entry, entry_len, "mt_ew_%016" PRIx64, g->key_hash);
    if (p->lang == MT_KLANG_OPENCL && !p->uses_f64) mt_strbuf_append(src, "#define MT_NO_FP64 1\n");
    mt__kgen_prelude(src, p->lang);
    mt_strbuf_append(src, "\n");
    if (p->lang != MT_KLANG_C) return gen_device(src, p, entry);
    return p->contig ? gen_c_contig(src, p, entry) : gen_c_strided(src, p, entry);
}

/* ---------------------------------------------------------------- running */

/* Work per element, roughly, for choosing the host chunk size. */
static int64_t node_cost(const mt_knode *n)
{
    switch (n->op) {
    case MT_SOP_INPUT: case MT_SOP_PARAM: case MT_SOP_CONST: case MT_SOP_INDEX: return 0;
    case MT_SOP_DIV: case MT_SOP_FLOORDIV: case MT_SOP_MOD: case MT_SOP_SQRT: case MT_SOP_RSQRT:
    case MT_SOP_RECIP: return 4;
    case MT_SOP_ADD: case MT_SOP_SUB: case MT_SOP_MUL: case MT_SOP_NEG: case MT_SOP_ABS:
    case MT_SOP_MAX: case MT_SOP_MIN: case MT_SOP_WHERE: case MT_SOP_RELU: case MT_SOP_SQUARE:
    case MT_SOP_CAST: return 1;
    default:
        return mt_sop_arity(n->op) == 0 || n->op >= MT_SOP_EQ ? 1 : 16;
    }
}

static int64_t grain_for(const mt_kexpr *e, bool interp)
{
    int64_t cost = 1;
    for (int32_t k = 0; k < e->n; k++) cost += node_cost(&e->nodes[k]);
    int64_t g = (int64_t)1 << 18;
    g /= cost * (interp ? 8 : 1);
    return g < 1024 ? 1024 : g > 65536 ? 65536 : g;
}

typedef struct interp_ctx {
    const ew_plan *p;
    char *ptrs[EW_MAX_ARGS];
    const int64_t *strides[EW_MAX_ARGS];
    const mt_scalar *params;
    atomic_int status;
} interp_ctx;

static void interp_chunk(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    interp_ctx *c = vctx;
    const ew_plan *p = c->p;
    mt_status st = mt__kinterp_run(p->e, p->nact, c->ptrs, c->strides, p->nd, p->dims, c->params,
                                   begin, end);
    if (st != MT_OK) {
        int expect = MT_OK;
        atomic_compare_exchange_strong(&c->status, &expect, (int)st);
    }
}

/* The interpreter works on active args in kernel order: inputs then outputs (as in the plan),
 * with expression input indices remapped to these positions. */
static mt_status run_interp(const ew_plan *p, mt_device *dev, const mt_scalar *params)
{
    /* a copy of the expression whose INPUT args are active positions */
    mt_kexpr ex = *p->e;
    ex.nodes = mt_malloc((size_t)p->e->n * sizeof *ex.nodes);
    if (!ex.nodes) return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    memcpy(ex.nodes, p->e->nodes, (size_t)p->e->n * sizeof *ex.nodes);
    int32_t nin_act = 0;
    for (int32_t a = 0; a < p->nact; a++)
        if (p->args[a].src < p->nin) nin_act++;
    for (int32_t k = 0; k < ex.n; k++) {
        if (ex.nodes[k].op != MT_SOP_INPUT) continue;
        for (int32_t a = 0; a < nin_act; a++) {
            if (p->args[a].src == ex.nodes[k].arg) {
                ex.nodes[k].arg = a;
                break;
            }
        }
    }
    interp_ctx *c = mt_calloc(1, sizeof *c);
    if (!c) {
        mt_free(ex.nodes);
        return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    }
    ew_plan *q = mt_malloc(sizeof *q);
    if (!q) {
        mt_free(c);
        mt_free(ex.nodes);
        return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    }
    *q = *p;
    q->e = &ex;
    c->p = q;
    c->params = params;
    atomic_init(&c->status, MT_OK);
    for (int32_t a = 0; a < p->nact; a++) {
        const mt_array *arr = p->args[a].arr;
        c->ptrs[a] = (char *)mt_buffer_host_ptr(arr->buf) + arr->offset;
        c->strides[a] = p->args[a].strides;
    }
    int64_t grain = grain_for(p->e, true);
    if (dev->pool && p->size > grain)
        mt_threadpool_run(dev->pool, p->size, grain, interp_chunk, c);
    else
        interp_chunk(c, 0, p->size, 0);
    mt_status st = (mt_status)atomic_load(&c->status);
    mt_free(q);
    mt_free(c);
    mt_free(ex.nodes);
    return st;
}

static mt_status run_kernel(const ew_plan *p, mt_device *dev, void *kernel,
                            const mt_scalar *params)
{
    /* the argument list on the stack unless a strided kernel has many arguments */
    enum { NSTACK = 96 };
    mt_karg kstack[NSTACK];
    uint64_t pvals[EW_MAX_PARAMS];
    size_t need = (size_t)p->nact + (p->contig ? 0 : (size_t)p->nd * (size_t)(p->nact + 1)) +
                  (size_t)p->nprm + 1;
    mt_karg *k = kstack;
    if (need > NSTACK && !(k = mt_calloc(need, sizeof *k)))
        return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    if (k == kstack) memset(kstack, 0, need * sizeof *k);
    memset(pvals, 0, (size_t)p->nprm * sizeof *pvals);
    int32_t n = 0;
    for (int32_t a = 0; a < p->nact; a++) {
        k[n].kind = MT_KARG_BUFFER;
        k[n].buf = p->args[a].arr->buf;
        k[n].offset = p->args[a].arr->offset;
        n++;
    }
    if (!p->contig) {
        for (int32_t d = 0; d < p->nd; d++) {
            k[n].kind = MT_KARG_SCALAR;
            k[n].scalar = &p->dims[d];
            k[n].size = 8;
            n++;
        }
        for (int32_t a = 0; a < p->nact; a++)
            for (int32_t d = 0; d < p->nd; d++) {
                k[n].kind = MT_KARG_SCALAR;
                k[n].scalar = &p->args[a].strides[d];
                k[n].size = 8;
                n++;
            }
    }
    for (int32_t j = 0; j < p->nprm; j++) {
        k[n].kind = MT_KARG_SCALAR;
        k[n].size = mt__kgen_param_pack(p->prm_dt[j], &params[p->prm_idx[j]], &pvals[j]);
        k[n].scalar = &pvals[j];
        n++;
    }
    if (p->lang != MT_KLANG_C) {
        k[n].kind = MT_KARG_SCALAR;
        k[n].scalar = &p->size;
        k[n].size = 8;
        n++;
    }
    mt_status st = dev->ops->kernel_launch(dev, kernel, n, k, p->size,
                                           grain_for(p->e, false), NULL);
    if (k != kstack) mt_free(k);
    if (st != MT_OK) return mt_err_prefix(st, "elemwise on %s: ", dev->info.name);
    return MT_OK;
}

/* ---------------------------------------------------------------- mt_elemwise */

static mt_status check_args(const mt_kexpr *e, int32_t nin, const mt_array *const *inputs,
                            mt_array *const *outputs, int32_t nparams, const mt_scalar *params,
                            mt_dtype *in_dt)
{
    if (!e) return mt_err_set(MT_ERR_INVALID, "elemwise: NULL expression");
    mt_status st = mt_kexpr_validate(e);
    if (st != MT_OK) return mt_err_prefix(st, "elemwise: ");
    if (nin < 0 || (nin > 0 && !inputs) || !outputs || nparams < 0 || (nparams > 0 && !params))
        return mt_err_set(MT_ERR_INVALID, "elemwise: bad argument lists (nin %d, nparams %d)",
                          nin, nparams);
    if (nin + e->nouts > EW_MAX_ARGS)
        return mt_err_set(MT_ERR_RANGE, "elemwise: %d inputs + %d outputs exceed %d arguments",
                          nin, e->nouts, EW_MAX_ARGS);
    st = mt__kexpr_input_types(e, nin, in_dt);
    if (st != MT_OK) return mt_err_prefix(st, "elemwise: ");
    st = check_outputs(e, outputs);
    if (st != MT_OK) return st;
    mt_device *dev = mt_array_device(outputs[0]);
    for (int32_t i = 0; i < nin + e->nouts; i++) {
        const mt_array *a = i < nin ? inputs[i] : outputs[i - nin];
        const char *what = i < nin ? "input" : "output";
        int32_t idx = i < nin ? i : i - nin;
        if (i < nin) {
            if (!a || !a->buf)
                return mt_err_set(MT_ERR_INVALID, "elemwise: input %d is %s", i,
                                  a ? "an empty array" : "NULL");
            if (in_dt[i] != MT_DTYPE_COUNT && a->dtype != in_dt[i])
                return mt_err_set(MT_ERR_DTYPE, "elemwise: input %d has dtype %s but the "
                                  "expression reads it as %s", i, mt_dtype_name(a->dtype),
                                  mt_dtype_name(in_dt[i]));
        }
        if (mt_array_device(a) != dev)
            return mt_err_set(MT_ERR_DEVICE, "elemwise: %s %d is on %s but output 0 is on %s",
                              what, idx, mt_device_name(mt_array_device(a)), mt_device_name(dev));
    }
    return MT_OK;
}

/* Fills the plan's active args (read inputs, then all outputs) and params. */
static mt_status plan_args(ew_plan *p, const mt_array *const *inputs, mt_array *const *outputs,
                           const mt_dtype *in_dt, int32_t nparams)
{
    const mt_kexpr *e = p->e;
    const mt_array *out0 = outputs[0];
    p->nact = 0;
    for (int32_t i = 0; i < p->nin; i++) {
        if (in_dt[i] == MT_DTYPE_COUNT) { /* never read: not passed, but must broadcast */
            int64_t scratch[MT_MAX_DIMS];
            mt_status st = broadcast_strides(inputs[i], i, out0, scratch);
            if (st != MT_OK) return st;
            continue;
        }
        ew_arg *g = &p->args[p->nact++];
        g->src = i;
        g->dt = in_dt[i];
        g->arr = inputs[i];
        mt_status st = broadcast_strides(inputs[i], i, out0, g->strides);
        if (st != MT_OK) return st;
    }
    for (int32_t j = 0; j < e->nouts; j++) {
        ew_arg *g = &p->args[p->nact++];
        g->src = p->nin + j;
        g->dt = outputs[j]->dtype;
        g->arr = outputs[j];
        memcpy(g->strides, outputs[j]->strides, (size_t)out0->ndim * sizeof g->strides[0]);
    }
    mt_dtype *pdt = mt_malloc(((size_t)nparams + 1) * sizeof *pdt);
    if (!pdt) return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    mt_status st = mt__kexpr_param_types(e, nparams, pdt);
    p->nprm = 0;
    for (int32_t k = 0; k < nparams && st == MT_OK; k++) {
        if (pdt[k] == MT_DTYPE_COUNT) continue;
        if (p->nprm == EW_MAX_PARAMS) {
            st = mt_err_set(MT_ERR_RANGE, "elemwise: more than %d params are read", EW_MAX_PARAMS);
            break;
        }
        p->prm_idx[p->nprm] = k;
        p->prm_dt[p->nprm] = pdt[k];
        p->nprm++;
    }
    mt_free(pdt);
    return st == MT_OK ? MT_OK : mt_err_prefix(st, "elemwise: ");
}

/* Copies inputs that partially overlap an output (NumPy semantics: as if inputs were read
 * before any output is written). tmps[i] holds the copies, released by the caller. */
static mt_status fix_overlaps(ew_plan *p, mt_array *tmps, mt_array *const *outputs)
{
    const mt_array *out0 = outputs[0];
    for (int32_t a = 0; a < p->nact; a++) {
        ew_arg *g = &p->args[a];
        if (g->src >= p->nin) break;
        bool bad = false;
        for (int32_t j = 0; j < p->e->nouts && !bad; j++)
            bad = bad_overlap(g->arr, g->strides, outputs[j], out0->ndim);
        if (!bad) continue;
        mt_status st = mt_array_copy_to(&tmps[g->src], g->arr, NULL);
        if (st != MT_OK) return mt_err_prefix(st, "elemwise: copying overlapping input %d: ", g->src);
        g->arr = &tmps[g->src];
        st = broadcast_strides(g->arr, g->src, out0, g->strides);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

static atomic_int g_warned_interp;

/* The plan's kernel from the device's cache, generated and compiled on a miss. */
static mt_status get_kernel(ew_plan *p, mt_device *dev, void **kernel)
{
    bool host = dev->ops->klang == MT_KLANG_C;
    mt_strbuf key;
    mt_strbuf_init(&key);
    /* contiguous kernels do not depend on the rank (0-d and 1-d share one) */
    mt_strbuf_appendf(&key, "ew1|%d|%d|", (int)p->lang, p->contig ? 1 : p->nd);
    if (p->contig) {
        mt_strbuf_append(&key, "contig|");
    } else if (host) {
        for (int32_t a = 0; a < p->nact; a++) mt_strbuf_appendf(&key, "%c", p->args[a].cls);
        mt_strbuf_append(&key, "|");
    }
    mt__kgen_key(&key, p->e);
    mt_status st = mt_strbuf_status(&key);
    if (st == MT_OK) {
        gen_ctx g = {p, mt_hash64(key.data, key.len, 0x65776b6579ull)};
        st = mt__kernel_get(dev, key.data, gen_source, &g, kernel);
    }
    mt_strbuf_deinit(&key);
    return st;
}

/* Runs the plan; *used gets the compiled kernel it launched (NULL when interpreted). */
static mt_status dispatch(ew_plan *p, mt_device *dev, const mt_scalar *params, void **used)
{
    bool host = dev->ops->klang == MT_KLANG_C;
    *used = NULL;
    if (host && mt_device_is_host_addressable(dev) && !mt__hostcc_available())
        return run_interp(p, dev, params);
    void *kernel = NULL;
    mt_status st = get_kernel(p, dev, &kernel);
    if (st == MT_ERR_NOT_BUILT && host && mt_device_is_host_addressable(dev)) {
        /* no warning for a kernel left to an open batch (mt_kernel_batch_begin) */
        if (!mt__hostcc_batch_open() && atomic_exchange(&g_warned_interp, 1) == 0)
            mt_log(MT_LOG_WARN, "elemwise: host kernels are interpreted (%s)", mt_last_error());
        return run_interp(p, dev, params);
    }
    if (st != MT_OK) return mt_err_prefix(st, "elemwise: ");
    *used = kernel;
    return run_kernel(p, dev, kernel, params);
}

/* Validates the call and builds the plan (p->lang must be set); tmps gets overlap copies. */
static mt_status plan_build(ew_plan *p, mt_array *tmps, const mt_kexpr *expr, int32_t nin,
                            const mt_array *const *inputs, mt_array *const *outputs,
                            int32_t nparams, const mt_scalar *params)
{
    mt_dtype in_dt[EW_MAX_ARGS];
    mt_status st = check_args(expr, nin, inputs, outputs, nparams, params, in_dt);
    if (st != MT_OK) return st;
    p->e = expr;
    p->nin = nin;
    p->size = mt_array_size(outputs[0]);
    p->uses_index = mt__kexpr_uses_index(expr);
    p->uses_f64 = mt__kexpr_uses_f64(expr);
    st = plan_args(p, inputs, outputs, in_dt, nparams);
    if (st == MT_OK && p->size > 0) st = fix_overlaps(p, tmps, outputs);
    if (st == MT_OK) {
        int32_t out0 = 0;
        while (p->args[out0].src != nin) out0++;
        plan_layout(p, outputs[0], out0);
    }
    return st;
}

/* One argument's layout as a memo recorded it. */
typedef struct ew_memo_arg {
    mt_dtype dt;
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    int64_t strides[MT_MAX_DIMS];
} ew_memo_arg;

struct mt_elemwise_memo {
    bool valid;
    mt_device *dev;
    const mt_kexpr *e;
    int32_t nin, nparams;
    int64_t hits;
    void *kernel;
    ew_plan plan;             /* arr pointers are rebound on every launch */
    ew_memo_arg args[EW_MAX_ARGS]; /* every input (read or not), then every output */
};

/* The full path; when rec is not NULL and the call ran a compiled kernel on the arguments
 * themselves (no copy of an overlapping input), rec records it, else rec is left invalid. */
static mt_status elemwise_full(const mt_kexpr *expr, int32_t nin, const mt_array *const *inputs,
                               mt_array *const *outputs, int32_t nparams,
                               const mt_scalar *params, mt_elemwise_memo *rec)
{
    if (rec) rec->valid = false;
    ew_plan *p = rec ? &rec->plan : mt_calloc(1, sizeof *p);
    mt_array *tmps = mt_calloc((size_t)(nin > 0 ? nin : 0) + 1, sizeof *tmps);
    if (!p || !tmps) {
        if (!rec) mt_free(p);
        mt_free(tmps);
        return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    }
    if (rec) memset(p, 0, sizeof *p);
    mt_device *dev = outputs && outputs[0] && outputs[0]->buf ? mt_array_device(outputs[0]) : NULL;
    p->lang = dev ? dev->ops->klang : MT_KLANG_C;
    mt_status st = plan_build(p, tmps, expr, nin, inputs, outputs, nparams, params);
    void *kernel = NULL;
    if (st == MT_OK && p->size > 0) st = dispatch(p, dev, params, &kernel);
    bool copied = false;
    for (int32_t i = 0; i < nin; i++) {
        copied |= tmps[i].buf != NULL;
        mt_array_clear(&tmps[i]);
    }
    mt_free(tmps);
    if (rec && st == MT_OK && kernel && !copied) {
        rec->dev = dev;
        rec->e = expr;
        rec->nin = nin;
        rec->nparams = nparams;
        rec->kernel = kernel;
        for (int32_t i = 0; i < nin + expr->nouts; i++) {
            const mt_array *a = i < nin ? inputs[i] : outputs[i - nin];
            ew_memo_arg *m = &rec->args[i];
            m->dt = a->dtype;
            m->ndim = a->ndim;
            memcpy(m->dims, a->dims, (size_t)a->ndim * sizeof a->dims[0]);
            memcpy(m->strides, a->strides, (size_t)a->ndim * sizeof a->strides[0]);
        }
        for (int32_t a = 0; a < p->nact; a++) p->args[a].arr = NULL; /* not kept */
        rec->valid = true;
    }
    if (!rec) mt_free(p);
    return st;
}

mt_status mt_elemwise(const mt_kexpr *expr, int32_t nin, const mt_array *const *inputs,
                      mt_array *const *outputs, int32_t nparams, const mt_scalar *params)
{
    return elemwise_full(expr, nin, inputs, outputs, nparams, params, NULL);
}

static bool memo_arg_same(const ew_memo_arg *m, const mt_array *a, mt_device *dev)
{
    return a && a->buf && a->dtype == m->dt && a->ndim == m->ndim &&
           memcmp(a->dims, m->dims, (size_t)a->ndim * sizeof a->dims[0]) == 0 &&
           memcmp(a->strides, m->strides, (size_t)a->ndim * sizeof a->strides[0]) == 0 &&
           mt_array_device(a) == dev;
}

/* Whether the recorded plan applies to these arguments: same expression, counts, device,
 * dtypes, shapes and strides, writeable outputs, and no input partially overlapping an output
 * (an exact alias is fine, as in the full path; anything else goes through the full path,
 * which copies the input). */
static bool memo_applies(const mt_elemwise_memo *m, const mt_kexpr *expr, int32_t nin,
                         const mt_array *const *inputs, mt_array *const *outputs,
                         int32_t nparams, const mt_scalar *params)
{
    if (!m->valid || m->e != expr || m->nin != nin || m->nparams != nparams ||
        (nin > 0 && !inputs) || !outputs || (nparams > 0 && !params))
        return false;
    for (int32_t i = 0; i < nin; i++)
        if (!memo_arg_same(&m->args[i], inputs[i], m->dev)) return false;
    for (int32_t j = 0; j < expr->nouts; j++) {
        const mt_array *o = outputs[j];
        if (!memo_arg_same(&m->args[nin + j], o, m->dev) || !(o->flags & MT_ARRAY_WRITEABLE))
            return false;
    }
    const mt_array *out0 = outputs[0];
    for (int32_t a = 0; a < m->plan.nact; a++) {
        int32_t src = m->plan.args[a].src;
        if (src >= nin) break;
        const mt_array *in = inputs[src];
        for (int32_t j = 0; j < expr->nouts; j++) {
            if (in->buf != outputs[j]->buf) continue;
            int64_t bstr[MT_MAX_DIMS];
            if (broadcast_strides(in, src, out0, bstr) != MT_OK ||
                bad_overlap(in, bstr, outputs[j], out0->ndim))
                return false;
        }
    }
    return true;
}

mt_status mt_elemwise_memo_run(mt_elemwise_memo **memo, const mt_kexpr *expr, int32_t nin,
                               const mt_array *const *inputs, mt_array *const *outputs,
                               int32_t nparams, const mt_scalar *params)
{
    if (!memo) return mt_err_set(MT_ERR_INVALID, "elemwise: NULL memo");
    mt_elemwise_memo *m = *memo;
    if (m && memo_applies(m, expr, nin, inputs, outputs, nparams, params)) {
        ew_plan *p = &m->plan;
        for (int32_t a = 0; a < p->nact; a++) {
            int32_t src = p->args[a].src;
            p->args[a].arr = src < nin ? inputs[src] : outputs[src - nin];
        }
        mt_status st = run_kernel(p, m->dev, m->kernel, params);
        for (int32_t a = 0; a < p->nact; a++) p->args[a].arr = NULL;
        if (st == MT_OK) m->hits++;
        return st;
    }
    if (!m) {
        if (!(m = mt_calloc(1, sizeof *m))) return mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
        *memo = m;
    }
    return elemwise_full(expr, nin, inputs, outputs, nparams, params, m);
}

int64_t mt_elemwise_memo_hits(const mt_elemwise_memo *memo)
{
    return memo ? memo->hits : 0;
}

void mt_elemwise_memo_free(mt_elemwise_memo *memo)
{
    mt_free(memo);
}

/* Prebuild: tiny C-contiguous stand-ins (every size > 1 becomes 2, which changes neither the
 * collapsed rank nor any argument's layout class, hence not the kernel key), then the same
 * plan and cache lookup as mt_elemwise, without running the kernel. */
static mt_status prebuild_arrays(mt_device *dev, const mt_kexpr *e, int32_t nin,
                                 const mt_dtype *in_dtypes, const int32_t *in_ndim,
                                 const int64_t (*in_dims)[MT_MAX_DIMS], int32_t out_ndim,
                                 const int64_t *out_dims, mt_array *arrs, bool *empty)
{
    for (int32_t i = 0; i <= nin; i++) {
        int32_t nd = i < nin ? in_ndim[i] : out_ndim;
        const int64_t *src = i < nin ? in_dims[i] : out_dims;
        if (nd < 0 || nd > MT_MAX_DIMS)
            return mt_err_set(MT_ERR_INVALID, "elemwise prebuild: %s %d has rank %d",
                              i < nin ? "input" : "output", i < nin ? i : 0, (int)nd);
        int64_t dims[MT_MAX_DIMS];
        for (int32_t d = 0; d < nd; d++) {
            dims[d] = src[d] == 1 ? 1 : 2;
            if (src[d] == 0) *empty = true;
        }
        if (*empty) return MT_OK;
        if (i < nin) {
            mt_status st = mt_array_empty(&arrs[i], dev, in_dtypes[i], nd, dims, 'C');
            if (st != MT_OK) return mt_err_prefix(st, "elemwise prebuild: input %d: ", i);
            continue;
        }
        for (int32_t j = 0; j < e->nouts; j++) {
            mt_status st = mt_array_empty(&arrs[nin + j], dev, e->nodes[e->outs[j]].dtype, nd,
                                          dims, 'C');
            if (st != MT_OK) return mt_err_prefix(st, "elemwise prebuild: output %d: ", j);
        }
    }
    return MT_OK;
}

mt_status mt_elemwise_prebuild(mt_device *dev, const mt_kexpr *expr, int32_t nin,
                               const mt_dtype *in_dtypes, const int32_t *in_ndim,
                               const int64_t (*in_dims)[MT_MAX_DIMS], int32_t out_ndim,
                               const int64_t *out_dims, int32_t nparams)
{
    if (!dev || !expr || nin < 0 || (nin > 0 && (!in_dtypes || !in_ndim || !in_dims)) ||
        (out_ndim > 0 && !out_dims) || nparams < 0)
        return mt_err_set(MT_ERR_INVALID, "elemwise prebuild: NULL or negative argument");
    mt_status vst = mt_kexpr_validate(expr);
    if (vst != MT_OK) return mt_err_prefix(vst, "elemwise prebuild: ");
    if (nin + expr->nouts > EW_MAX_ARGS || expr->nouts < 1)
        return mt_err_set(MT_ERR_RANGE, "elemwise prebuild: %d inputs + %d outputs (1 to %d "
                          "arguments)", nin, expr->nouts, EW_MAX_ARGS);
    int32_t narr = nin + expr->nouts;
    mt_array *arrs = mt_calloc((size_t)narr + nin + 1, sizeof *arrs); /* + overlap tmps */
    mt_scalar *params = mt_calloc((size_t)nparams + 1, sizeof *params);
    ew_plan *p = mt_calloc(1, sizeof *p);
    const mt_array *ins[EW_MAX_ARGS];
    mt_array *outs[EW_MAX_ARGS];
    mt_status st = arrs && params && p ? MT_OK : mt_err_prefix(MT_ERR_NOMEM, "elemwise prebuild: ");
    bool empty = false;
    if (st == MT_OK)
        st = prebuild_arrays(dev, expr, nin, in_dtypes, in_ndim, in_dims, out_ndim, out_dims,
                             arrs, &empty);
    if (st == MT_OK && !empty) {
        for (int32_t i = 0; i < nin; i++) ins[i] = &arrs[i];
        for (int32_t j = 0; j < expr->nouts; j++) outs[j] = &arrs[nin + j];
        p->lang = dev->ops->klang;
        st = plan_build(p, arrs + narr, expr, nin, ins, outs, nparams, params);
        void *kernel = NULL;
        bool interp = dev->ops->klang == MT_KLANG_C && mt_device_is_host_addressable(dev) &&
                      !mt__hostcc_available(); /* nothing to build */
        if (st == MT_OK && p->size > 0 && !interp) st = get_kernel(p, dev, &kernel);
        if (st != MT_OK) st = mt_err_prefix(st, "elemwise prebuild: ");
    }
    for (int32_t i = 0; arrs && i < narr + nin; i++) mt_array_clear(&arrs[i]);
    mt_free(arrs);
    mt_free(params);
    mt_free(p);
    return st;
}

mt_status mt__elemwise_source(mt_strbuf *src, char *entry, size_t entry_len, mt_klang lang,
                              const mt_kexpr *expr, int32_t nin, const mt_array *const *inputs,
                              mt_array *const *outputs, int32_t nparams,
                              const mt_scalar *params)
{
    ew_plan *p = mt_calloc(1, sizeof *p);
    mt_array *tmps = mt_calloc((size_t)(nin > 0 ? nin : 0) + 1, sizeof *tmps);
    mt_status st = MT_OK;
    if (!p || !tmps) st = mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
    mt_scalar *dummy = NULL;
    if (st == MT_OK && !params && nparams > 0) {
        dummy = mt_calloc((size_t)nparams, sizeof *dummy);
        if (!dummy) st = mt_err_prefix(MT_ERR_NOMEM, "elemwise: ");
        params = dummy;
    }
    if (st == MT_OK) {
        p->lang = lang;
        st = plan_build(p, tmps, expr, nin, inputs, outputs, nparams, params);
    }
    if (st == MT_OK) {
        gen_ctx g = {p, mt_kexpr_hash(expr)};
        st = gen_source(&g, src, entry, entry_len);
    }
    for (int32_t i = 0; tmps && i < nin; i++) mt_array_clear(&tmps[i]);
    mt_free(dummy);
    mt_free(tmps);
    mt_free(p);
    return st;
}
