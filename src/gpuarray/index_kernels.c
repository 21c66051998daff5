/* Advanced indexing on any device (mt_array_take, mt_array_scatter_add and mt_array_take_labels
 * of gpuarray.h): generated kernels, so that gather (np.take), scatter-add (np.add.at on a copy)
 * and the take-along-axis of integer-label crossentropies run where the operands live instead
 * of through a host copy.
 *
 * Kernels are written once in the common subset of C, OpenCL C and CUDA C, as in conv.c: only
 * the entry point's signature and the loop over work items differ (grid-stride on devices, no
 * barriers, no shared memory, no atomics), and they are built through the device's kernel cache
 * (mt__kernel_get). Gathers copy elements as unsigned integers of the element's size, so every
 * dtype (bool, the integers, float16 / bfloat16 / float32 / float64) is moved bit for bit.
 * Indices are int32 or int64 in the kernels (other integer dtypes are converted to int64 first,
 * as the host path does); index arithmetic is int32 when every element index fits.
 *
 * Validation: each work item that reads an index checks it (negative indices of take and
 * scatter-add count from the end, labels must be in [0, n)) and, when it is out of range, sets
 * a 4-byte flag buffer and writes nothing meaningful. After the kernels the flag is read back (4
 * bytes); only when it is set are the indices copied to the host to find the first bad one in
 * C order, so the error names index, axis, size and flat position exactly as the host loops of
 * src/jit/ref_index.c do, and no result is returned.
 *
 * Scatter-add is deterministic without atomics: the index array becomes a CSR, for every row k
 * of the axis the positions j with idx[j] == k in increasing order, and every output element
 * adds its row's values in that order, x + y[j0] + y[j1] + ..., which is the order of
 * np.add.at and of the host loops. Float sums therefore equal the host's bit for bit (a float
 * add is correctly rounded on every backend and has no multiply to contract); float16 /
 * bfloat16 round after each addition like the host, integers wrap, bool ORs. On GPUs the CSR is
 * built in parallel: the indices are normalized (one work item each), every row counts its
 * matches (O(n m) comparisons for n rows and m indices, n work items), one work item turns the
 * counts into row starts, and every row lists its matches. CPU devices (PoCL), where each
 * launch costs tens of microseconds and a work item is a fast core, build it in one work item
 * (a counting sort, O(n + m)). Row copies and sums run in chunks of consecutive elements, so
 * the index divisions are paid once per chunk (bench/RESULTS.md, "Device indexing"). */
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- kernel sources */

typedef enum ikind {
    K_TAKE = 0, /* out[o, j, i] = x[o, norm(idx[j]), i] */
    K_CHECK,    /* validates idx[w] (take with an empty result) */
    K_LABELS,   /* out[o, i] = x[o, lab[o, i], i] */
    K_NORM,     /* nidx[w] = norm(idx[w]), -1 when out of range */
    K_COUNT,    /* cnt[k] = #{j : nidx[j] == k} */
    K_SCAN,     /* start[k] = sum of cnt[< k], start[n] = total (one work item) */
    K_FILL,     /* list[start[k] ...] = the j with nidx[j] == k, in increasing order */
    K_ADD,      /* out[o, k, i] = x[o, k, i] + sum over the list of row k of y[o, j, i] */
    K_CSR,      /* start and list in one work item (CPU devices), validating like K_NORM */
    K_ZERO,     /* flag[0] = 0 (one work item) */
    K_KINDS
} ikind;

typedef struct kparam {
    const char *name;
    const char *type; /* MT_T (element), MT_IX (index as given), MT_I (index arithmetic), int32_t */
    bool out;
} kparam;

typedef struct kdesc {
    const char *name;
    kparam bufs[5];
    const char *scalars[4]; /* int64 scalars before nwork */
    const char *body;
} kdesc;

/* Row copies and sums work on chunks of up to CHUNK consecutive elements of one row (row r =
 * w / NCH, elements [i0, i1)): one index computation per chunk instead of per element. */
#define CHUNK 32
#define MT_CHUNK_HEAD                                                                          \
    "const MT_I c = w % NCH, r = w / NCH;\n"                                                     \
    "const MT_I i0 = c * " MT__STR(CHUNK) ", i1 = INNER - i0 > " MT__STR(CHUNK) " ? i0 + "      \
    MT__STR(CHUNK) " : INNER;\n"
#define MT__STR2(x) #x
#define MT__STR(x) MT__STR2(x)

static const kdesc k_desc[K_KINDS] = {
    [K_TAKE] = {"take",
                {{"x", "MT_T", false}, {"idx", "MT_IX", false}, {"out", "MT_T", true},
                 {"flag", "int32_t", true}},
                {"N", "M", "INNER", "NCH"},
                MT_CHUNK_HEAD
                "const MT_I j = r % M, o = r / M;\n"
                "int64_t k = (int64_t)idx[j];\n"
                "if (k < 0) k += N_;\n"
                "MT_G MT_T *op = out + r * INNER;\n"
                "if (k < 0 || k >= N_) {\n"
                "    MT_SET_FLAG(flag);\n"
                "    for (MT_I i = i0; i < i1; i++) op[i] = (MT_T)0;\n"
                "} else {\n"
                "    MT_G const MT_T *xp = x + (o * N + (MT_I)k) * INNER;\n"
                "    for (MT_I i = i0; i < i1; i++) op[i] = xp[i];\n"
                "}\n"},
    [K_CHECK] = {"check",
                 {{"idx", "MT_IX", false}, {"flag", "int32_t", true}},
                 {"N"},
                 "int64_t k = (int64_t)idx[w];\n"
                 "if (k < 0) k += N_;\n"
                 "if (k < 0 || k >= N_) MT_SET_FLAG(flag);\n"},
    [K_LABELS] = {"labels",
                  {{"x", "MT_T", false}, {"lab", "MT_IX", false}, {"out", "MT_T", true},
                   {"flag", "int32_t", true}},
                  {"N", "INNER"},
                  "const MT_I i = w % INNER, o = w / INNER;\n"
                  "const int64_t k = (int64_t)lab[w];\n"
                  "if (k < 0 || k >= N_) {\n"
                  "    MT_SET_FLAG(flag);\n"
                  "    out[w] = (MT_T)0;\n"
                  "} else {\n"
                  "    out[w] = x[(o * N + (MT_I)k) * INNER + i];\n"
                  "}\n"},
    [K_NORM] = {"norm",
                {{"idx", "MT_IX", false}, {"nidx", "MT_I", true}, {"flag", "int32_t", true}},
                {"N"},
                "int64_t k = (int64_t)idx[w];\n"
                "if (k < 0) k += N_;\n"
                "if (k < 0 || k >= N_) {\n"
                "    MT_SET_FLAG(flag);\n"
                "    k = -1;\n"
                "}\n"
                "nidx[w] = (MT_I)k;\n"},
    [K_COUNT] = {"count",
                 {{"nidx", "MT_I", false}, {"cnt", "MT_I", true}},
                 {"M"},
                 "MT_I c = 0;\n"
                 "for (MT_I j = 0; j < M; j++) c += nidx[j] == w ? 1 : 0;\n"
                 "cnt[w] = c;\n"},
    [K_SCAN] = {"scan",
                {{"cnt", "MT_I", false}, {"start", "MT_I", true}},
                {"N"},
                "MT_I s = 0;\n"
                "for (MT_I k = 0; k < N; k++) {\n"
                "    start[k] = s;\n"
                "    s += cnt[k];\n"
                "}\n"
                "start[N] = s;\n"},
    [K_FILL] = {"fill",
                {{"nidx", "MT_I", false}, {"start", "MT_I", false}, {"list", "MT_I", true}},
                {"M"},
                "MT_I p = start[w];\n"
                "for (MT_I j = 0; j < M; j++)\n"
                "    if (nidx[j] == w) list[p++] = j;\n"},
    [K_ADD] = {"add",
               {{"x", "MT_T", false}, {"y", "MT_T", false}, {"start", "MT_I", false},
                {"list", "MT_I", false}, {"out", "MT_T", true}},
               {"N", "M", "INNER", "NCH"},
               MT_CHUNK_HEAD
               "const MT_I k = r % N, o = r / N;\n"
               "MT_G MT_T *op = out + r * INNER;\n"
               "MT_G const MT_T *xp = x + r * INNER;\n"
               "for (MT_I i = i0; i < i1; i++) op[i] = xp[i];\n"
               "const MT_I p1 = start[k + 1];\n"
               "for (MT_I p = start[k]; p < p1; p++) {\n"
               "    MT_G const MT_T *yp = y + (o * M + list[p]) * INNER;\n"
               "    for (MT_I i = i0; i < i1; i++) op[i] = MT_ADD(op[i], yp[i]);\n"
               "}\n"},
    [K_CSR] = {"csr",
               {{"idx", "MT_IX", false}, {"cur", "MT_I", true}, {"start", "MT_I", true},
                {"list", "MT_I", true}, {"flag", "int32_t", true}},
               {"N", "M"},
               "for (MT_I k = 0; k <= N; k++) start[k] = 0;\n"
               "for (MT_I j = 0; j < M; j++) {\n"
               "    int64_t k = (int64_t)idx[j];\n"
               "    if (k < 0) k += N_;\n"
               "    if (k < 0 || k >= N_) MT_SET_FLAG(flag);\n"
               "    else start[k + 1] += 1;\n"
               "}\n"
               "for (MT_I k = 0; k < N; k++) {\n"
               "    start[k + 1] += start[k];\n"
               "    cur[k] = start[k];\n"
               "}\n"
               "for (MT_I j = 0; j < M; j++) {\n"
               "    int64_t k = (int64_t)idx[j];\n"
               "    if (k < 0) k += N_;\n"
               "    if (k >= 0 && k < N_) list[cur[k]++] = j;\n"
               "}\n"},
    [K_ZERO] = {"zero", {{"flag", "int32_t", true}}, {NULL}, "flag[0] = 0;\n"},
};

typedef struct kspec {
    ikind kind;
    mt_dtype dt;  /* K_ADD: the element dtype; gathers: any dtype of the element's size */
    mt_dtype idt; /* MT_INT32 or MT_INT64 (kernels reading MT_IX) */
    mt_klang lang;
    bool i32;
} kspec;

static int32_t count_bufs(const kdesc *d)
{
    int32_t n = 0;
    while (n < 5 && d->bufs[n].name) n++;
    return n;
}

static int32_t count_scalars(const kdesc *d)
{
    int32_t n = 0;
    while (n < 4 && d->scalars[n]) n++;
    return n;
}

/* The element type and MT_ADD of a spec: gathers move unsigned integers of the element's size;
 * the scatter-add's sum follows the dtype (integers wrap as unsigned, bool ORs, halves round
 * after every addition). */
static void elem_defs(mt_strbuf *sb, const kspec *k)
{
    static const char *const by_size[9] = {NULL, "uint8_t", "uint16_t", NULL, "uint32_t",
                                           NULL, NULL,      NULL,       "uint64_t"};
    mt_dtype dt = k->dt;
    size_t es = mt_dtype_size(dt);
    const char *t = es < 9 ? by_size[es] : NULL, *add = "((MT_T)((a) + (b)))";
    if (k->kind == K_ADD) {
        if (dt == MT_FLOAT32) t = "float";
        else if (dt == MT_FLOAT64) t = "double";
        if (dt == MT_BOOL) add = "((MT_T)((((a) | (b)) != 0) ? 1 : 0))";
        else if (dt == MT_FLOAT16) add = "mt_f2h(mt_h2f(a) + mt_h2f(b))";
        else if (dt == MT_BFLOAT16) add = "mt_f2bf(mt_bf2f(a) + mt_bf2f(b))";
    }
    mt_strbuf_appendf(sb, "#define MT_T %s\n", t ? t : "uint8_t");
    mt_strbuf_appendf(sb, "#define MT_ADD(a, b) %s\n", add);
}

static const char *const k_langs[MT_KLANG_COUNT] = {"c", "opencl", "cuda"};

static void entry_name(const kspec *k, char *entry, size_t len)
{
    snprintf(entry, len, "mt_index_%s_%s_%s_%s", k_desc[k->kind].name, mt_dtype_name(k->dt),
             k->idt == MT_INT32 ? "ix32" : "ix64", k->i32 ? "i32" : "i64");
}

static void gen_signature(mt_strbuf *sb, const kspec *k, const char *entry)
{
    const kdesc *d = &k_desc[k->kind];
    int32_t nb = count_bufs(d), ns = count_scalars(d);
    if (k->lang == MT_KLANG_C) {
        mt_strbuf_appendf(sb, "void %s(void **args, int64_t begin, int64_t end)\n{\n", entry);
        for (int32_t i = 0; i < nb; i++) {
            const char *cq = d->bufs[i].out ? "" : "const ";
            mt_strbuf_appendf(sb, "    %s%s *%s = (%s%s *)args[%d];\n", cq, d->bufs[i].type,
                              d->bufs[i].name, cq, d->bufs[i].type, (int)i);
        }
        for (int32_t i = 0; i <= ns; i++)
            mt_strbuf_appendf(sb, "    const int64_t %s_ = *(const int64_t *)args[%d];\n",
                              i < ns ? d->scalars[i] : "nwork", (int)(nb + i));
        return;
    }
    bool cl = k->lang == MT_KLANG_OPENCL;
    mt_strbuf_appendf(sb, cl ? "__kernel void %s(" : "extern \"C\" __global__ void %s(", entry);
    for (int32_t i = 0; i < nb; i++) {
        const char *cq = d->bufs[i].out ? "" : "const ";
        if (cl)
            mt_strbuf_appendf(sb, "%s__global %schar *%s_, ulong %s_off", i ? ", " : "", cq,
                              d->bufs[i].name, d->bufs[i].name);
        else
            mt_strbuf_appendf(sb, "%s%schar *%s_", i ? ", " : "", cq, d->bufs[i].name);
    }
    for (int32_t i = 0; i <= ns; i++)
        mt_strbuf_appendf(sb, ", int64_t %s_", i < ns ? d->scalars[i] : "nwork");
    mt_strbuf_append(sb, ")\n{\n");
    for (int32_t i = 0; i < nb; i++) {
        const kparam *p = &d->bufs[i];
        const char *cq = p->out ? "" : "const ";
        if (cl)
            mt_strbuf_appendf(sb, "    __global %s%s *%s = (__global %s%s *)(%s_ + %s_off);\n",
                              cq, p->type, p->name, cq, p->type, p->name, p->name);
        else
            mt_strbuf_appendf(sb, "    %s%s *%s = (%s%s *)%s_;\n", cq, p->type, p->name, cq,
                              p->type, p->name);
    }
}

static mt_status gen_source(void *ctx, mt_strbuf *sb, char *entry, size_t entry_len)
{
    const kspec *k = ctx;
    const kdesc *d = &k_desc[k->kind];
    entry_name(k, entry, entry_len);
    if (k->lang == MT_KLANG_OPENCL && !(k->kind == K_ADD && k->dt == MT_FLOAT64))
        mt_strbuf_append(sb, "#define MT_NO_FP64 1\n");
    mt__kgen_prelude(sb, k->lang);
    elem_defs(sb, k);
    mt_strbuf_appendf(sb, "#define MT_IX %s\n", k->idt == MT_INT32 ? "int32_t" : "int64_t");
    mt_strbuf_appendf(sb, "#define MT_I %s\n", k->i32 ? "int32_t" : "int64_t");
    mt_strbuf_appendf(sb, "#define MT_G %s\n", k->lang == MT_KLANG_OPENCL ? "__global" : "");
    /* several work items may set the flag at once; they all store 1 */
    if (k->lang == MT_KLANG_C)
        mt_strbuf_append(sb, "#define MT_SET_FLAG(f) __atomic_store_n(&(f)[0], 1, "
                             "__ATOMIC_RELAXED)\n");
    else
        mt_strbuf_append(sb, "#define MT_SET_FLAG(f) ((f)[0] = 1)\n");
    gen_signature(sb, k, entry);
    int32_t ns = count_scalars(d);
    for (int32_t i = 0; i < ns; i++)
        mt_strbuf_appendf(sb, "    const MT_I %s = (MT_I)%s_;\n    (void)%s;\n    (void)%s_;\n",
                          d->scalars[i], d->scalars[i], d->scalars[i], d->scalars[i]);
    mt__kgen_work_loop(sb, k->lang);
    mt_strbuf_append(sb, "        const MT_I w = (MT_I)w_;\n        (void)w;\n");
    mt_strbuf_append_indented(sb, d->body, "        ");
    mt_strbuf_append(sb, "    }\n}\n");
    return mt_strbuf_status(sb);
}

/* The dtype a kernel is generated for, so that kernels doing the same work are shared: gathers
 * move unsigned integers of the element's size, the integer sums wrap as unsigned ones, and
 * the index-only kernels do not depend on the element at all. */
static mt_dtype canon_dtype(ikind kind, mt_dtype dt)
{
    static const mt_dtype by_size[9] = {MT_UINT8,  MT_UINT8,  MT_UINT16, MT_UINT8, MT_UINT32,
                                        MT_UINT8,  MT_UINT8,  MT_UINT8,  MT_UINT64};
    size_t es = mt_dtype_size(dt);
    switch (kind) {
    case K_TAKE:
    case K_LABELS: return by_size[es < 9 ? es : 0];
    case K_ADD: return mt_dtype_is_int(dt) ? by_size[es < 9 ? es : 0] : dt;
    default: return MT_UINT8;
    }
}

/* Builds (once per device) and launches kernel `kind` over nwork items: bufs in the order
 * k_desc lists them, sc the scalars without nwork. idt: the dtype of the MT_IX buffer. */
static mt_status launch(mt_device *dev, ikind kind, mt_dtype dt, mt_dtype idt, bool i32,
                        const mt_array *const *bufs, const int64_t *sc, int64_t nwork)
{
    if (nwork <= 0) return MT_OK;
    const kdesc *d = &k_desc[kind];
    int32_t nb = count_bufs(d), ns = count_scalars(d);
    bool reads_ix = kind == K_TAKE || kind == K_CHECK || kind == K_LABELS || kind == K_NORM ||
                    kind == K_CSR;
    kspec spec = {kind, canon_dtype(kind, dt), reads_ix ? idt : MT_INT64, dev->ops->klang, i32};
    char key[128], entry[96];
    entry_name(&spec, entry, sizeof entry);
    snprintf(key, sizeof key, "index1|%s|%s", entry, k_langs[spec.lang % MT_KLANG_COUNT]);
    void *kernel = NULL;
    mt_status st = mt__kernel_get(dev, key, gen_source, &spec, &kernel);
    if (st != MT_OK)
        return mt_err_prefix(st, "%s kernel on %s: ", d->name, dev->info.name);
    mt_karg args[5 + 5];
    int32_t n = 0;
    for (int32_t i = 0; i < nb; i++)
        args[n++] = (mt_karg){.kind = MT_KARG_BUFFER, .buf = bufs[i]->buf,
                              .offset = bufs[i]->offset};
    for (int32_t i = 0; i < ns; i++)
        args[n++] = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &sc[i], .size = 8};
    args[n++] = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &nwork, .size = 8};
    return dev->ops->kernel_launch(dev, kernel, n, args, nwork, 4096, NULL);
}

/* ---------------------------------------------------------------- operands */

/* Everything one call allocates, released by call_clear. */
typedef struct icall {
    mt_device *dev;
    mt_array x, idx, y, flag;
    mt_array tmp[4]; /* scatter-add's nidx, cnt, start, list */
} icall;

static void call_clear(icall *c)
{
    mt_array_clear(&c->x);
    mt_array_clear(&c->idx);
    mt_array_clear(&c->y);
    mt_array_clear(&c->flag);
    for (int i = 0; i < 4; i++) mt_array_clear(&c->tmp[i]);
}

static int64_t prod(const int64_t *dims, int32_t from, int32_t to)
{
    int64_t p = 1;
    for (int32_t d = from; d < to; d++) p *= dims[d];
    return p;
}

/* True when every element index of a (from its start to its buffer's end) is below 2^31. */
static bool fits_i32(const mt_array *a)
{
    size_t es = mt_dtype_size(a->dtype);
    return a->buf == NULL || es == 0 ||
           (mt_buffer_size(a->buf) - a->offset) / es < (size_t)INT32_MAX;
}

static mt_status check_array(const char *what, const char *name, const mt_array *a)
{
    if (!a || !a->buf) return mt_err_set(MT_ERR_INVALID, "%s: %s is NULL or empty", what, name);
    return MT_OK;
}

/* x (C-contiguous) and the indices (C-contiguous int32 or int64 on x's device) of a call;
 * *axis normalized. */
static mt_status call_init(icall *c, const char *what, const mt_array *x, const mt_array *idx,
                           const char *idx_name, int32_t *axis)
{
    memset(c, 0, sizeof *c);
    mt_status st = check_array(what, "x", x);
    if (st == MT_OK) st = check_array(what, idx_name, idx);
    if (st != MT_OK) return st;
    if (*axis < -x->ndim || *axis >= x->ndim)
        return mt_err_set(MT_ERR_INVALID, "%s: axis %d is out of range for %d dimensions", what,
                          (int)*axis, (int)x->ndim);
    if (*axis < 0) *axis += x->ndim;
    char k = mt_dtype_kind(idx->dtype);
    if (k != 'i' && k != 'u')
        return mt_err_set(MT_ERR_DTYPE, "%s: %s must be integers, got %s", what, idx_name,
                          mt_dtype_name(idx->dtype));
    c->dev = mt_array_device(x);
    mt_array moved = {0};
    const mt_array *src = idx;
    if (mt_array_device(idx) != c->dev) { /* indices given on another device: bring them */
        st = mt_array_copy_to(&moved, idx, c->dev);
        src = &moved;
    }
    if (st == MT_OK)
        st = src->dtype == MT_INT32 || src->dtype == MT_INT64
                 ? mt_array_contiguous(&c->idx, src)
                 : mt_array_astype(&c->idx, src, MT_INT64);
    mt_array_clear(&moved);
    if (st == MT_OK) st = mt_array_contiguous(&c->x, x);
    /* the flag starts at 0: on CPU devices a 4-byte write (it waits for the queue, which costs
     * less there than a launch), elsewhere a one-item kernel, so the queue keeps running */
    if (st == MT_OK) st = mt_array_empty(&c->flag, c->dev, MT_INT32, 1, (int64_t[]){1}, 'C');
    if (st == MT_OK && c->dev->info.cpu) st = mt_array_fill(&c->flag, mt_scalar_i64(0));
    else if (st == MT_OK) {
        const mt_array *fb[1] = {&c->flag};
        st = launch(c->dev, K_ZERO, MT_UINT8, MT_INT64, true, fb, NULL, 1);
    }
    if (st != MT_OK) call_clear(c);
    return st;
}

/* After the kernels: reads the flag and, when set, finds the first bad entry of idx (the
 * caller's array) on the host and reports it as the host path does. */
static mt_status check_flag(icall *c, const mt_array *idx, int64_t n, int32_t axis, bool wrap,
                            const char *what)
{
    int32_t flag = 0;
    mt_status st = mt_array_to_host(&flag, sizeof flag, &c->flag);
    if (st != MT_OK || flag == 0) return st;
    size_t m = (size_t)mt_array_size(idx), raw = m * mt_dtype_size(idx->dtype);
    int64_t *v = mt_malloc(m * sizeof *v + 1);
    char *tmp = mt_malloc(raw + 1);
    if (!v || !tmp) {
        mt_free(v);
        mt_free(tmp);
        return mt_err_set(MT_ERR_NOMEM, "%s: out of memory reading %zu indices", what, m);
    }
    st = mt_array_to_host(tmp, raw, idx);
    if (st == MT_OK) {
        mt_dtype_convert(v, MT_INT64, sizeof *v, tmp, idx->dtype,
                         (ptrdiff_t)mt_dtype_size(idx->dtype), m);
        st = mt_err_set(MT_ERR_INTERNAL, "%s: the device reported an index out of range that "
                        "the host does not find", what);
        for (size_t j = 0; j < m; j++) {
            int64_t k = v[j] < 0 && wrap ? v[j] + n : v[j];
            if (k < 0 || k >= n) {
                st = mt_err_set(MT_ERR_RANGE, "%s %lld is out of range for axis %d of size %lld "
                                "(at flat position %lld)", what, (long long)v[j], (int)axis,
                                (long long)n, (long long)j);
                break;
            }
        }
    }
    mt_free(v);
    mt_free(tmp);
    return st;
}

/* ---------------------------------------------------------------- entry points */

mt_status mt_array_take(mt_array *out, const mt_array *x, const mt_array *idx, int32_t axis)
{
    icall c;
    mt_status st = call_init(&c, "take", x, idx, "indices", &axis);
    if (st != MT_OK) return st;
    if (x->ndim - 1 + idx->ndim > MT_MAX_DIMS) {
        call_clear(&c);
        return mt_err_set(MT_ERR_INVALID, "take: result would have %d dimensions (maximum %d)",
                          (int)(x->ndim - 1 + idx->ndim), MT_MAX_DIMS);
    }
    int64_t n = x->dims[axis], outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->ndim), m = mt_array_size(idx);
    int64_t dims[MT_MAX_DIMS];
    int32_t nd = 0;
    for (int32_t d = 0; d < axis; d++) dims[nd++] = x->dims[d];
    for (int32_t d = 0; d < idx->ndim; d++) dims[nd++] = idx->dims[d];
    for (int32_t d = axis + 1; d < x->ndim; d++) dims[nd++] = x->dims[d];
    mt_array o = {0};
    st = mt_array_empty(&o, c.dev, x->dtype, nd, dims, 'C');
    /* only once the result exists: its size outer * m * inner then fits in 63 bits (a failed
     * mt_array_empty may have refused exactly that product) */
    int64_t nch = (inner + CHUNK - 1) / CHUNK, nwork = st == MT_OK ? outer * m * nch : 0;
    bool i32 = st == MT_OK && outer * m * inner < INT32_MAX - CHUNK && fits_i32(&c.x) &&
               fits_i32(&o);
    if (st == MT_OK && nwork > 0) {
        const mt_array *bufs[4] = {&c.x, &c.idx, &o, &c.flag};
        const int64_t sc[4] = {n, m, inner, nch};
        st = launch(c.dev, K_TAKE, x->dtype, c.idx.dtype, i32, bufs, sc, nwork);
    } else if (st == MT_OK && m > 0) { /* nothing to gather: the indices are still checked */
        const mt_array *bufs[2] = {&c.idx, &c.flag};
        st = launch(c.dev, K_CHECK, x->dtype, c.idx.dtype, m < INT32_MAX, bufs, &n, m);
    }
    if (st == MT_OK && m > 0) st = check_flag(&c, idx, n, axis, true, "index");
    call_clear(&c);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

mt_status mt_array_take_labels(mt_array *out, const mt_array *x, const mt_array *labels,
                               int32_t axis)
{
    icall c;
    mt_status st = call_init(&c, "take_labels", x, labels, "labels", &axis);
    if (st != MT_OK) return st;
    bool ok = labels->ndim == x->ndim - 1;
    for (int32_t d = 0, k = 0; ok && d < x->ndim; d++)
        if (d != axis && labels->dims[k++] != x->dims[d]) ok = false;
    if (!ok) {
        char b1[96], b2[96];
        call_clear(&c);
        return mt_err_set(MT_ERR_SHAPE, "labels of shape %s do not match values of shape %s "
                          "without axis %d", mt_shape_str(labels->ndim, labels->dims, b1,
                          sizeof b1), mt_shape_str(x->ndim, x->dims, b2, sizeof b2),
                          (int)axis);
    }
    int64_t n = x->dims[axis], inner = prod(x->dims, axis + 1, x->ndim);
    int64_t nwork = mt_array_size(labels);
    mt_array o = {0};
    st = mt_array_empty(&o, c.dev, x->dtype, labels->ndim, labels->dims, 'C');
    bool i32 = nwork < INT32_MAX && fits_i32(&c.x) && fits_i32(&o);
    if (st == MT_OK && nwork > 0) {
        const mt_array *bufs[4] = {&c.x, &c.idx, &o, &c.flag};
        const int64_t sc[2] = {n, inner};
        st = launch(c.dev, K_LABELS, x->dtype, c.idx.dtype, i32, bufs, sc, nwork);
        if (st == MT_OK) st = check_flag(&c, labels, n, axis, false, "label");
    }
    call_clear(&c);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* y on the call's device, broadcast to the gathered shape and converted to x's dtype. */
static mt_status scatter_values(icall *c, const mt_array *x, const mt_array *y, int32_t nd,
                                const int64_t *dims)
{
    mt_array moved = {0}, yb = {0};
    const mt_array *src = y;
    mt_status st = MT_OK;
    if (mt_array_device(y) != c->dev) {
        st = mt_array_copy_to(&moved, y, c->dev);
        src = &moved;
    }
    if (st == MT_OK) st = mt_array_broadcast_to(&yb, src, nd, dims);
    if (st == MT_OK)
        st = yb.dtype == x->dtype ? mt_array_contiguous(&c->y, &yb)
                                  : mt_array_astype(&c->y, &yb, x->dtype);
    mt_array_clear(&yb);
    mt_array_clear(&moved);
    return st;
}

mt_status mt_array_scatter_add(mt_array *out, const mt_array *x, const mt_array *idx,
                               const mt_array *y, int32_t axis)
{
    icall c;
    mt_status st = call_init(&c, "scatter_add", x, idx, "indices", &axis);
    if (st == MT_OK) st = check_array("scatter_add", "y", y);
    if (st != MT_OK) {
        call_clear(&c);
        return st;
    }
    if (x->ndim - 1 + idx->ndim > MT_MAX_DIMS) {
        call_clear(&c);
        return mt_err_set(MT_ERR_INVALID, "scatter_add: indices of %d dimensions along axis %d "
                          "of a %d-d array", (int)idx->ndim, (int)axis, (int)x->ndim);
    }
    int64_t n = x->dims[axis], inner = prod(x->dims, axis + 1, x->ndim), m = mt_array_size(idx);
    int64_t gdims[MT_MAX_DIMS];
    int32_t gnd = 0;
    for (int32_t d = 0; d < axis; d++) gdims[gnd++] = x->dims[d];
    for (int32_t d = 0; d < idx->ndim; d++) gdims[gnd++] = idx->dims[d];
    for (int32_t d = axis + 1; d < x->ndim; d++) gdims[gnd++] = x->dims[d];
    mt_array o = {0};
    st = scatter_values(&c, x, y, gnd, gdims);
    if (st == MT_OK) st = mt_array_empty(&o, c.dev, x->dtype, x->ndim, x->dims, 'C');
    int64_t size = mt_array_size(&o);
    if (st == MT_OK && m == 0 && size > 0) st = mt_array_copy(&o, &c.x);
    bool i32 = size < INT32_MAX - CHUNK && n < INT32_MAX - 1 && m < INT32_MAX && fits_i32(&c.x) &&
               fits_i32(&c.y) && fits_i32(&o);
    mt_dtype it = i32 ? MT_INT32 : MT_INT64;
    /* CPU devices build the CSR in one work item (O(n + m), one launch); devices with many
     * slow threads in parallel (O(n m) comparisons over n work items, four launches) */
    bool serial = c.dev->info.cpu && size > 0;
    if (st == MT_OK && m > 0 && !serial) { /* normalize and check the indices */
        st = mt_array_empty(&c.tmp[0], c.dev, it, 1, (int64_t[]){m}, 'C');
        const mt_array *bufs[3] = {&c.idx, &c.tmp[0], &c.flag};
        if (st == MT_OK) st = launch(c.dev, K_NORM, x->dtype, c.idx.dtype, i32, bufs, &n, m);
    }
    if (st == MT_OK && m > 0 && size > 0) { /* the CSR of the indices, then the sums */
        st = mt_array_empty(&c.tmp[1], c.dev, it, 1, (int64_t[]){n}, 'C');
        if (st == MT_OK) st = mt_array_empty(&c.tmp[2], c.dev, it, 1, (int64_t[]){n + 1}, 'C');
        if (st == MT_OK) st = mt_array_empty(&c.tmp[3], c.dev, it, 1, (int64_t[]){m}, 'C');
        const mt_array *cb[2] = {&c.tmp[0], &c.tmp[1]}, *sb[2] = {&c.tmp[1], &c.tmp[2]};
        const mt_array *fb[3] = {&c.tmp[0], &c.tmp[2], &c.tmp[3]};
        const mt_array *rb[5] = {&c.idx, &c.tmp[1], &c.tmp[2], &c.tmp[3], &c.flag};
        const mt_array *ab[5] = {&c.x, &c.y, &c.tmp[2], &c.tmp[3], &o};
        const int64_t nm[2] = {n, m}, nch = (inner + CHUNK - 1) / CHUNK;
        const int64_t sc[4] = {n, m, inner, nch};
        if (st == MT_OK && serial)
            st = launch(c.dev, K_CSR, x->dtype, c.idx.dtype, i32, rb, nm, 1);
        if (st == MT_OK && !serial) st = launch(c.dev, K_COUNT, x->dtype, it, i32, cb, &m, n);
        if (st == MT_OK && !serial) st = launch(c.dev, K_SCAN, x->dtype, it, i32, sb, &n, 1);
        if (st == MT_OK && !serial) st = launch(c.dev, K_FILL, x->dtype, it, i32, fb, &m, n);
        if (st == MT_OK) st = launch(c.dev, K_ADD, x->dtype, it, i32, ab, sc, size / inner * nch);
    }
    if (st == MT_OK && m > 0) st = check_flag(&c, idx, n, axis, true, "index");
    call_clear(&c);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}
