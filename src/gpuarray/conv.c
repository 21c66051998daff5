/* Convolution and pooling on any device (mt_conv2d_* and mt_pool2d_* of gpuarray.h): generated
 * im2col / col2im and pooling kernels plus the device's GEMM, with the backend's vendor library
 * (the optional conv2d / pool2d members of the vtable, cuDNN on CUDA) tried first.
 *
 * Convolution is lowered to GEMM over chunks of nb images (the column matrices of a chunk stay
 * within COLS_BUDGET bytes), K = C KH KW, P = OH OW:
 *   forward      cols [K, nb P] = im2col(x chunk);  t [O, nb P] = w [O, K] @ cols (one wide
 *                GEMM: a batch of narrow [O, P] products runs far slower on CLBlast);  y chunk
 *                [nb, O, P] = t with its first two axes swapped (a device copy)
 *   data grad    cols [nb, K, P] = w^T [K, O] @ dy [nb, O, P] (batched);  dx = col2im(cols)
 *   filter grad  cols [K, nb P] = im2col(x chunk);  dyp [O, nb P] = dy chunk with its first two
 *                axes swapped (a device copy);  dw [O, K] (+)= dyp @ cols^T, the first chunk
 *                writing and the next ones adding, in order
 * 1x1 kernels with stride 1 and no padding read x / write dx directly. col2im is a gather:
 * every element of dx sums the column entries that read it, in the order (kh, kw) in which the
 * host path (src/jit/ref_conv.c) adds them, so there are no atomics and results do not depend
 * on the launch.
 *
 * Pooling runs one work item per output element (forward) or per input element (gradient,
 * again a gather over the windows that contain it). The semantics are the host path's, term
 * for term: windows clipped to the input; max takes the first maximal element in C order, a
 * NaN replacing a number and the first NaN staying; the gradient recomputes that position from
 * x and adds dy there; mean divides by the clipped window's element count, multiplying by its
 * reciprocal on the interior columns (windows inside the input horizontally) and dividing on
 * the edge columns, as the host loops do, and the gradient adds the windows' shares in the
 * host's order (per output row: interior columns, then edge columns).
 *
 * Kernels are written once in the common subset of C, OpenCL C and CUDA C: only the entry
 * point's signature and the loop over work items differ (grid-stride on devices, no barriers,
 * no shared memory). They are built through the device's kernel cache (mt__kernel_get) and
 * work on float32 and float64; float16 and bfloat16 operands are converted to float32 first and
 * the result converted back. Products in CUDA go through __fmul_rn / __dmul_rn so that NVRTC
 * does not contract them into FMAs. */
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

#define COLS_BUDGET ((int64_t)64 << 20)

/* ---------------------------------------------------------------- kernel sources */

typedef enum ckind {
    K_IM2COL = 0,
    K_COL2IM,
    K_POOL_FWD_MAX,
    K_POOL_FWD_MEAN,
    K_POOL_BWD_MAX,
    K_POOL_BWD_MEAN,
    K_COUNT
} ckind;

static const char *const k_names[K_COUNT] = {"im2col",        "col2im",        "pool_fwd_max",
                                             "pool_fwd_mean", "pool_bwd_max", "pool_bwd_mean"};

/* Buffers (first) and int64 scalars (nwork last) of each kernel. */
static const char *const k_bufs[K_COUNT][3] = {
    {"x", "cols", NULL}, {"cols", "dx", NULL},    {"x", "v", "y"},
    {"x", "v", "y"},     {"x", "dy", "dx"},       {"x", "dy", "dx"},
};
#define CONV_SCALARS "C", "H", "W", "KH", "KW", "OH", "OW", "SH", "SW", "PH", "PW"
#define POOL_SCALARS "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW", "C0", "C1"
static const char *const k_scalars[K_COUNT][16] = {
    {CONV_SCALARS, "NB", "RS", "BS", "nwork", NULL},
    {CONV_SCALARS, "nwork", NULL},
    {POOL_SCALARS, "nwork", NULL},
    {POOL_SCALARS, "nwork", NULL},
    {POOL_SCALARS, "nwork", NULL},
    {POOL_SCALARS, "nwork", NULL},
};

/* Element (k, b, p) of the column matrix at k RS + b BS + p: RS = P, BS = K P gives [nb, K, P];
 * RS = nb P, BS = P gives [K, nb P]. Work item w = (k, b, p). */
static const char body_im2col[] =
    "const MT_I P = OH * OW;\n"
    "const MT_I p = w % P, t = w / P;\n"
    "const MT_I b = t % NB, k = t / NB;\n"
    "const MT_I kw = k % KW, kh = (k / KW) % KH, c = k / (KW * KH);\n"
    "const MT_I ih = (p / OW) * SH - PH + kh, iw = (p % OW) * SW - PW + kw;\n"
    "MT_T v = (MT_T)0;\n"
    "if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[((b * C + c) * H + ih) * W + iw];\n"
    "cols[k * RS + b * BS + p] = v;\n";

/* cols [nb, K, P] -> dx [nb, C, H, W]; work item w = the element of dx. */
static const char body_col2im[] =
    "const MT_I iw = w % W, ih = (w / W) % H, c = (w / (W * H)) % C, b = w / (W * H * C);\n"
    "const MT_I P = OH * OW;\n"
    "MT_G const MT_T *cb = cols + (b * C + c) * KH * KW * P;\n"
    "MT_T s = (MT_T)0;\n"
    "for (MT_I kh = 0; kh < KH; kh++) {\n"
    "    const MT_I th = ih + PH - kh;\n"
    "    if (th < 0 || th % SH != 0 || th / SH >= OH) continue;\n"
    "    for (MT_I kw = 0; kw < KW; kw++) {\n"
    "        const MT_I tw = iw + PW - kw;\n"
    "        if (tw < 0 || tw % SW != 0 || tw / SW >= OW) continue;\n"
    "        s += cb[(kh * KW + kw) * P + (th / SH) * OW + tw / SW];\n"
    "    }\n"
    "}\n"
    "dx[w] = s;\n";

/* The clipped window of output (oh, ow) and the plane's base pointers, for pooling. */
static const char pool_helpers[] =
    "/* offset of the first maximal element of the window (the first NaN if any) */\n"
    "MT_KFN MT_I mt_pool_argmax(MT_G const MT_T *xp, MT_I W, MT_I h0, MT_I h1,\n"
    "                              MT_I w0, MT_I w1)\n"
    "{\n"
    "    MT_I best = h0 * W + w0;\n"
    "    MT_T m = xp[best];\n"
    "    for (MT_I i = h0; i < h1; i++)\n"
    "        for (MT_I j = w0; j < w1; j++) {\n"
    "            const MT_T v = xp[i * W + j];\n"
    "            if (v > m || (v != v && m == m)) {\n"
    "                m = v;\n"
    "                best = i * W + j;\n"
    "            }\n"
    "        }\n"
    "    return best;\n"
    "}\n"
    "MT_KFN void mt_pool_span(MT_I o, MT_I s, MT_I p, MT_I k, MT_I n,\n"
    "                         MT_I *lo, MT_I *hi)\n"
    "{\n"
    "    const MT_I a = o * s - p, b = a + k;\n"
    "    *lo = a < 0 ? 0 : a;\n"
    "    *hi = b > n ? n : b;\n"
    "}\n";

static const char body_pool_fwd_head[] =
    "const MT_I ow = w % OW, oh = (w / OW) % OH, pl = w / (OW * OH);\n"
    "MT_I h0, h1, w0, w1;\n"
    "mt_pool_span(oh, SH, PH, KH, H, &h0, &h1);\n"
    "mt_pool_span(ow, SW, PW, KW, W, &w0, &w1);\n"
    "MT_G const MT_T *xp = x + pl * H * W;\n"
    "MT_G const MT_T *vp = v + pl * H * W;\n"
    "(void)xp;\n";

static const char body_pool_fwd_max[] = "y[w] = vp[mt_pool_argmax(xp, W, h0, h1, w0, w1)];\n";

static const char body_pool_fwd_mean[] =
    "MT_T s = (MT_T)0;\n"
    "for (MT_I i = h0; i < h1; i++)\n"
    "    for (MT_I j = w0; j < w1; j++) s += vp[i * W + j];\n"
    "if (ow >= C0 && ow < C1)\n"
    "    y[w] = MT_MUL(s, (MT_T)1 / (MT_T)((h1 - h0) * KW));\n"
    "else\n"
    "    y[w] = s / (MT_T)((h1 - h0) * (w1 - w0));\n";

/* Gradient: the windows containing input (ih, iw) are oh in [oa, ob], ow in [wa, wb]; per
 * output row the interior columns [C0, C1) come first, then the others (the host's order).
 * POOL_TERM adds the share of window (oh, ow) into s. */
static const char body_pool_bwd_head[] =
    "const MT_I iw = w % W, ih = (w / W) % H, pl = w / (W * H);\n"
    "MT_G const MT_T *xp = x + pl * H * W;\n"
    "MT_G const MT_T *gp = dy + pl * OH * OW;\n"
    "(void)xp;\n"
    "const MT_I nh = ih + PH - KH, nw = iw + PW - KW;\n"
    "const MT_I oa = nh < 0 ? 0 : nh / SH + 1, wa = nw < 0 ? 0 : nw / SW + 1;\n"
    "MT_I ob = (ih + PH) / SH, wb = (iw + PW) / SW;\n"
    "if (ob > OH - 1) ob = OH - 1;\n"
    "if (wb > OW - 1) wb = OW - 1;\n"
    "const MT_I ia = wa > C0 ? wa : C0, ib = wb < C1 - 1 ? wb : C1 - 1;\n"
    "MT_T s = (MT_T)0;\n"
    "for (MT_I oh = oa; oh <= ob; oh++) {\n"
    "    MT_I h0, h1, w0, w1;\n"
    "    mt_pool_span(oh, SH, PH, KH, H, &h0, &h1);\n"
    "    for (MT_I pass = 0; pass < 2; pass++) {\n"
    "        const MT_I lo = pass == 0 ? ia : wa, hi = pass == 0 ? ib : wb;\n"
    "        for (MT_I ow = lo; ow <= hi; ow++) {\n"
    "            const int inner = ow >= C0 && ow < C1;\n"
    "            if (pass == 1 && inner) continue;\n"
    "            mt_pool_span(ow, SW, PW, KW, W, &w0, &w1);\n";

static const char body_pool_bwd_max[] =
    "            if (mt_pool_argmax(xp, W, h0, h1, w0, w1) == ih * W + iw) s += gp[oh * OW + ow];\n";

static const char body_pool_bwd_mean[] =
    "            if (inner)\n"
    "                s += MT_MUL(gp[oh * OW + ow], (MT_T)1 / (MT_T)((h1 - h0) * KW));\n"
    "            else\n"
    "                s += gp[oh * OW + ow] / (MT_T)((h1 - h0) * (w1 - w0));\n";

static const char body_pool_bwd_tail[] = "        }\n"
                                         "    }\n"
                                         "}\n"
                                         "dx[w] = s;\n";

typedef struct kspec {
    ckind kind;
    mt_dtype dt;
    mt_klang lang;
    bool i32; /* index arithmetic in int32_t (every index < 2^31): 64-bit divisions are slow */
} kspec;

static mt_status gen_source(void *ctx, mt_strbuf *sb, char *entry, size_t entry_len)
{
    const kspec *k = ctx;
    bool f64 = k->dt == MT_FLOAT64;
    snprintf(entry, entry_len, "mt_conv_%s_%s_%s", k_names[k->kind], f64 ? "f64" : "f32",
             k->i32 ? "i32" : "i64");
    if (k->lang == MT_KLANG_OPENCL && !f64) mt_strbuf_append(sb, "#define MT_NO_FP64 1\n");
    mt__kgen_prelude(sb, k->lang);
    mt_strbuf_appendf(sb, "#define MT_T %s\n", f64 ? "double" : "float");
    mt_strbuf_appendf(sb, "#define MT_G %s\n", k->lang == MT_KLANG_OPENCL ? "__global" : "");
    mt_strbuf_appendf(sb, "#define MT_I %s\n", k->i32 ? "int32_t" : "int64_t");
    if (k->lang == MT_KLANG_CUDA)
        mt_strbuf_appendf(sb, "#define MT_MUL(a, b) %s(a, b)\n", f64 ? "__dmul_rn" : "__fmul_rn");
    else
        mt_strbuf_append(sb, "#define MT_MUL(a, b) ((a) * (b))\n");
    if (k->kind >= K_POOL_FWD_MAX) {
        /* helper names of this kernel's own: several kernels (each with its own MT_T and MT_I)
         * may share one source when compiled as a batch */
        mt_strbuf_appendf(sb, "#undef mt_pool_argmax\n#define mt_pool_argmax %s_argmax\n", entry);
        mt_strbuf_appendf(sb, "#undef mt_pool_span\n#define mt_pool_span %s_span\n", entry);
        mt_strbuf_append(sb, pool_helpers);
    }

    const char *const *bufs = k_bufs[k->kind], *const *sc = k_scalars[k->kind];
    int nb = 0, ns = 0;
    while (nb < 3 && bufs[nb]) nb++;
    while (ns < 16 && sc[ns]) ns++;
    if (k->lang == MT_KLANG_C) {
        mt_strbuf_appendf(sb, "void %s(void **args, int64_t begin, int64_t end)\n{\n", entry);
        for (int i = 0; i < nb; i++) {
            const char *cq = i < nb - 1 ? "const " : "";
            mt_strbuf_appendf(sb, "    %sMT_T *%s = (%sMT_T *)args[%d];\n", cq, bufs[i], cq, i);
        }
        for (int i = 0; i < ns; i++)
            mt_strbuf_appendf(sb, "    const int64_t %s_ = *(const int64_t *)args[%d];\n", sc[i],
                              nb + i);
    } else {
        bool cl = k->lang == MT_KLANG_OPENCL;
        mt_strbuf_appendf(sb, cl ? "__kernel void %s(" : "extern \"C\" __global__ void %s(",
                          entry);
        for (int i = 0; i < nb; i++) {
            const char *cq = i < nb - 1 ? "const " : "";
            if (cl)
                mt_strbuf_appendf(sb, "%s__global %schar *%s_, ulong %s_off", i ? ", " : "", cq,
                                  bufs[i], bufs[i]);
            else
                mt_strbuf_appendf(sb, "%s%schar *%s_", i ? ", " : "", cq, bufs[i]);
        }
        for (int i = 0; i < ns; i++) mt_strbuf_appendf(sb, ", int64_t %s_", sc[i]);
        mt_strbuf_append(sb, ")\n{\n");
        for (int i = 0; i < nb; i++) {
            const char *cq = i < nb - 1 ? "const " : "";
            if (cl)
                mt_strbuf_appendf(sb, "    __global %sMT_T *%s = (__global %sMT_T *)(%s_ + %s_off);\n",
                                  cq, bufs[i], cq, bufs[i], bufs[i]);
            else
                mt_strbuf_appendf(sb, "    %sMT_T *%s = (%sMT_T *)%s_;\n", cq, bufs[i], cq,
                                  bufs[i]);
        }
    }
    for (int i = 0; i < ns - 1; i++)
        mt_strbuf_appendf(sb, "    const MT_I %s = (MT_I)%s_;\n    (void)%s;\n", sc[i], sc[i],
                          sc[i]);
    mt__kgen_work_loop(sb, k->lang);
    mt_strbuf_append(sb, "        const MT_I w = (MT_I)w_;\n");
    const char *in = "        ";
    switch (k->kind) {
    case K_IM2COL: mt_strbuf_append_indented(sb, body_im2col, in); break;
    case K_COL2IM: mt_strbuf_append_indented(sb, body_col2im, in); break;
    case K_POOL_FWD_MAX:
    case K_POOL_FWD_MEAN:
        mt_strbuf_append_indented(sb, body_pool_fwd_head, in);
        mt_strbuf_append_indented(sb, k->kind == K_POOL_FWD_MAX ? body_pool_fwd_max : body_pool_fwd_mean,
                        in);
        break;
    default:
        mt_strbuf_append_indented(sb, body_pool_bwd_head, in);
        mt_strbuf_append_indented(sb, k->kind == K_POOL_BWD_MAX ? body_pool_bwd_max : body_pool_bwd_mean,
                        in);
        mt_strbuf_append_indented(sb, body_pool_bwd_tail, in);
        break;
    }
    mt_strbuf_append(sb, "    }\n}\n");
    return mt_strbuf_status(sb);
}

/* Builds (once per device) and launches kernel `kind` over nwork items; bufs as k_bufs lists
 * them (arrays: buffer + offset), sc the scalars without nwork. */
static mt_status launch(mt_device *dev, ckind kind, mt_dtype dt, const mt_array *const *bufs,
                        const int64_t *sc, int64_t nwork)
{
    if (nwork <= 0) return MT_OK;
    static const char *const langs[] = {"c", "opencl", "cuda"};
    int32_t nb = 0, ns = 0;
    while (nb < 3 && k_bufs[kind][nb]) nb++;
    while (ns < 16 && k_scalars[kind][ns]) ns++;
    /* 32-bit indices when every element index of every buffer (from the view's start to the
     * buffer's end) and the work size are below 2^31 */
    bool i32 = nwork < INT32_MAX;
    for (int32_t i = 0; i < nb && i32; i++)
        i32 = (mt_buffer_size(bufs[i]->buf) - bufs[i]->offset) / mt_dtype_size(dt) < INT32_MAX;
    kspec spec = {kind, dt, dev->ops->klang, i32};
    char key[96];
    snprintf(key, sizeof key, "conv2|%s|%s|%s|%s", k_names[kind], mt_dtype_name(dt),
             langs[spec.lang % 3], i32 ? "i32" : "i64");
    void *kernel = NULL;
    mt_status st = mt__kernel_get(dev, key, gen_source, &spec, &kernel);
    if (st != MT_OK) return mt_err_prefix(st, "%s kernel on %s: ", k_names[kind],
                                          dev->info.name);
    mt_karg args[3 + 16];
    int32_t n = 0;
    for (int32_t i = 0; i < nb; i++)
        args[n++] = (mt_karg){.kind = MT_KARG_BUFFER, .buf = bufs[i]->buf,
                              .offset = bufs[i]->offset};
    for (int32_t i = 0; i < ns - 1; i++)
        args[n++] = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &sc[i], .size = 8};
    args[n++] = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &nwork, .size = 8};
    return dev->ops->kernel_launch(dev, kernel, n, args, nwork, 4096, NULL);
}

/* ---------------------------------------------------------------- operands */

/* A borrowed C-contiguous view of base's elements from element `off` on (no reference taken:
 * never cleared). */
static mt_array view_at(const mt_array *base, int64_t off, int32_t nd, const int64_t *dims)
{
    mt_array v = *base;
    size_t es = mt_dtype_size(base->dtype);
    v.offset = base->offset + (size_t)off * es;
    v.ndim = nd;
    int64_t s = (int64_t)es;
    for (int32_t d = nd - 1; d >= 0; d--) {
        v.dims[d] = dims[d];
        v.strides[d] = s;
        s *= dims[d];
    }
    v.flags |= MT_ARRAY_WRITEABLE;
    mt_array_update_flags(&v);
    return v;
}

static mt_array view3(const mt_array *base, int64_t off, int64_t a, int64_t b, int64_t c)
{
    const int64_t d[3] = {a, b, c};
    return view_at(base, off, 3, d);
}

static mt_array view2(const mt_array *base, int64_t off, int64_t a, int64_t b)
{
    const int64_t d[2] = {a, b};
    return view_at(base, off, 2, d);
}

/* The operands of one call: inputs as C-contiguous arrays of the compute dtype, and the array
 * the result is computed into (the output itself when it has that layout and dtype). */
typedef struct ops_ctx {
    const char *what;
    mt_device *dev;
    mt_dtype cdt;
    mt_array in[3];
    mt_array res;
    mt_array *out;
    bool direct;
} ops_ctx;

static void ctx_clear(ops_ctx *c)
{
    for (int i = 0; i < 3; i++) mt_array_clear(&c->in[i]);
    if (!c->direct) mt_array_clear(&c->res);
}

static mt_status check_4d(const char *what, const char *name, const mt_array *a)
{
    if (!a || !a->buf) return mt_err_set(MT_ERR_INVALID, "%s: %s is NULL or empty", what, name);
    if (a->ndim != 4) {
        char b[96];
        return mt_err_set(MT_ERR_SHAPE, "%s: %s must be 4-d, got %s", what, name,
                          mt_shape_str(a->ndim, a->dims, b, sizeof b));
    }
    return MT_OK;
}

/* Checks devices, dtypes and ranks; fills c (inputs prepared, result array chosen). */
static mt_status ctx_init(ops_ctx *c, const char *what, mt_array *out, int32_t nin,
                          const mt_array *const *ins, const char *const *names)
{
    memset(c, 0, sizeof *c);
    c->what = what;
    c->out = out;
    mt_status st = check_4d(what, names[0], out);
    for (int32_t i = 0; i < nin && st == MT_OK; i++) st = check_4d(what, names[i + 1], ins[i]);
    if (st != MT_OK) return st;
    c->dev = mt_array_device(out);
    mt_dtype dt = out->dtype;
    if (!mt_dtype_is_float(dt))
        return mt_err_set(MT_ERR_DTYPE, "%s: %s must be a float array, got %s", what, names[0],
                          mt_dtype_name(dt));
    for (int32_t i = 0; i < nin; i++) {
        if (ins[i]->dtype != dt)
            return mt_err_set(MT_ERR_DTYPE, "%s: %s (%s) and %s (%s) must have one dtype", what,
                              names[i + 1], mt_dtype_name(ins[i]->dtype), names[0],
                              mt_dtype_name(dt));
        if (mt_array_device(ins[i]) != c->dev)
            return mt_err_set(MT_ERR_INVALID, "%s: %s is on %s but %s on %s", what, names[i + 1],
                              mt_device_name(mt_array_device(ins[i])), names[0],
                              mt_device_name(c->dev));
    }
    if (!(out->flags & MT_ARRAY_WRITEABLE))
        return mt_err_set(MT_ERR_INVALID, "%s: %s is not writeable", what, names[0]);
    c->cdt = dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32;
    for (int32_t i = 0; i < nin && st == MT_OK; i++)
        st = ins[i]->dtype == c->cdt ? mt_array_contiguous(&c->in[i], ins[i])
                                     : mt_array_astype(&c->in[i], ins[i], c->cdt);
    c->direct = out->dtype == c->cdt && mt_array_is_c_contiguous(out);
    if (st == MT_OK && c->direct) c->res = *out;
    else if (st == MT_OK) st = mt_array_empty(&c->res, c->dev, c->cdt, 4, out->dims, 'C');
    if (st != MT_OK) ctx_clear(c);
    return st;
}

/* Copies the result into the output when it was computed elsewhere, and cleans up. */
static mt_status ctx_finish(ops_ctx *c, mt_status st)
{
    if (st == MT_OK && !c->direct) st = mt_array_copy(c->out, &c->res);
    ctx_clear(c);
    return st;
}

static mt_status zero_result(ops_ctx *c)
{
    mt_scalar z = mt_scalar_f64(0.0);
    return mt_array_fill(&c->res, z);
}

/* ---------------------------------------------------------------- convolution */

typedef struct cgeom {
    int64_t n, c, h, w, o, kh, kw, oh, ow, k, p;
    int64_t sh, sw, ph, pw;
    bool identity;
} cgeom;

static mt_status conv_geom(cgeom *g, const char *what, const int64_t *xd, const int64_t *wd,
                           const int64_t *yd, const mt_conv2d_params *p)
{
    if (!p) return mt_err_set(MT_ERR_INVALID, "%s: params is NULL", what);
    for (int d = 0; d < 2; d++)
        if (p->stride[d] < 1 || p->pad[d] < 0)
            return mt_err_set(MT_ERR_INVALID, "%s: stride (%d, %d) must be >= 1 and pad (%d, %d) "
                              ">= 0", what, (int)p->stride[0], (int)p->stride[1],
                              (int)p->pad[0], (int)p->pad[1]);
    memset(g, 0, sizeof *g);
    g->n = xd[0], g->c = xd[1], g->h = xd[2], g->w = xd[3];
    g->o = wd[0], g->kh = wd[2], g->kw = wd[3];
    g->sh = p->stride[0], g->sw = p->stride[1], g->ph = p->pad[0], g->pw = p->pad[1];
    bool fits = g->h + 2 * g->ph >= g->kh && g->w + 2 * g->pw >= g->kw && g->kh >= 1 &&
                g->kw >= 1;
    g->oh = fits ? (g->h + 2 * g->ph - g->kh) / g->sh + 1 : -1;
    g->ow = fits ? (g->w + 2 * g->pw - g->kw) / g->sw + 1 : -1;
    if (!fits || wd[1] != g->c || yd[0] != g->n || yd[1] != g->o || yd[2] != g->oh ||
        yd[3] != g->ow) {
        char bx[96], bw[96], by[96];
        return mt_err_set(MT_ERR_SHAPE, "%s: shapes do not match a convolution with stride (%d, "
                          "%d) and pad (%d, %d): x %s, w %s, y %s", what, (int)g->sh, (int)g->sw,
                          (int)g->ph, (int)g->pw, mt_shape_str(4, xd, bx, sizeof bx),
                          mt_shape_str(4, wd, bw, sizeof bw), mt_shape_str(4, yd, by, sizeof by));
    }
    g->k = g->c * g->kh * g->kw;
    g->p = g->oh * g->ow;
    g->identity = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
                  g->pw == 0;
    return MT_OK;
}

static void conv_scalars(const cgeom *g, int64_t *sc)
{
    const int64_t v[11] = {g->c, g->h, g->w, g->kh, g->kw, g->oh, g->ow, g->sh, g->sw, g->ph,
                           g->pw};
    memcpy(sc, v, sizeof v);
}

/* Images per chunk: the column matrix within COLS_BUDGET (at least one image). */
static int64_t conv_chunk(const cgeom *g, size_t es, int64_t extra_per_image)
{
    int64_t per = (g->k * g->p + extra_per_image) * (int64_t)es;
    int64_t nb = per > 0 ? COLS_BUDGET / per : g->n;
    if (nb > g->n) nb = g->n;
    return nb < 1 ? 1 : nb;
}

/* Tries the backend's vendor path; true when it produced the result. */
static bool try_vendor_conv(ops_ctx *c, int32_t kind, const mt_conv2d_params *p)
{
    if (!c->dev->ops->conv2d) return false;
    return c->dev->ops->conv2d(c->dev, kind, &c->res, &c->in[0], &c->in[1], p) == MT_OK;
}

static mt_status conv_forward(ops_ctx *c, const cgeom *g, const mt_conv2d_params *prm)
{
    if (try_vendor_conv(c, MT__CONV_FWD, prm)) return MT_OK;
    const mt_array *x = &c->in[0], *w = &c->in[1];
    size_t es = mt_dtype_size(c->cdt);
    int64_t nb = conv_chunk(g, es, 0);
    mt_array cols = {0}, tmp = {0};
    mt_status st = MT_OK;
    if (!g->identity) {
        const int64_t d[1] = {nb * g->k * g->p}, t[1] = {nb * g->o * g->p};
        st = mt_array_empty(&cols, c->dev, c->cdt, 1, d, 'C');
        if (st == MT_OK && nb > 1) st = mt_array_empty(&tmp, c->dev, c->cdt, 1, t, 'C');
    }
    mt_array wv = view3(w, 0, 1, g->o, g->k);
    int64_t sc[14];
    conv_scalars(g, sc);
    for (int64_t s0 = 0; s0 < g->n && st == MT_OK; s0 += nb) {
        int64_t m = g->n - s0 < nb ? g->n - s0 : nb;
        mt_array yv = view3(&c->res, s0 * g->o * g->p, m, g->o, g->p);
        if (g->identity) {
            mt_array b = view3(x, s0 * g->c * g->h * g->w, m, g->k, g->p);
            st = mt_array_gemm(&yv, &wv, &b, 1.0, 0.0, false, false);
            continue;
        }
        /* one wide GEMM: cols [K, m P], t [O, m P] = w @ cols, then y chunk = t with its first
         * two axes swapped (a single image writes y directly) */
        mt_array xs = view_at(x, s0 * g->c * g->h * g->w, 1, (int64_t[]){m});
        sc[11] = m, sc[12] = m * g->p, sc[13] = g->p;
        const mt_array *bufs[2] = {&xs, &cols};
        st = launch(c->dev, K_IM2COL, c->cdt, bufs, sc, g->k * m * g->p);
        mt_array w2 = view2(w, 0, g->o, g->k), b = view2(&cols, 0, g->k, m * g->p);
        mt_array t2 = m > 1 ? view2(&tmp, 0, g->o, m * g->p) : view2(&c->res, s0 * g->o * g->p,
                                                                     g->o, g->p);
        if (st == MT_OK) st = mt_array_gemm(&t2, &w2, &b, 1.0, 0.0, false, false);
        if (st == MT_OK && m > 1) {
            mt_array tv = view3(&tmp, 0, g->o, m, g->p), tt = {0};
            static const int32_t perm[3] = {1, 0, 2};
            st = mt_array_transpose(&tt, &tv, perm);
            if (st == MT_OK) st = mt_array_copy(&yv, &tt);
            mt_array_clear(&tt);
        }
    }
    mt_array_clear(&cols);
    mt_array_clear(&tmp);
    return st;
}

static mt_status conv_backward_data(ops_ctx *c, const cgeom *g, const mt_conv2d_params *prm)
{
    if (try_vendor_conv(c, MT__CONV_BWD_DATA, prm)) return MT_OK;
    const mt_array *dy = &c->in[0], *w = &c->in[1];
    size_t es = mt_dtype_size(c->cdt);
    int64_t nb = conv_chunk(g, es, 0);
    mt_array cols = {0};
    mt_status st = MT_OK;
    if (!g->identity) {
        const int64_t d[1] = {nb * g->k * g->p};
        st = mt_array_empty(&cols, c->dev, c->cdt, 1, d, 'C');
    }
    mt_array wv = view3(w, 0, 1, g->o, g->k);
    int64_t sc[11];
    conv_scalars(g, sc);
    int64_t chw = g->c * g->h * g->w;
    for (int64_t s0 = 0; s0 < g->n && st == MT_OK; s0 += nb) {
        int64_t m = g->n - s0 < nb ? g->n - s0 : nb;
        mt_array dyv = view3(dy, s0 * g->o * g->p, m, g->o, g->p);
        mt_array cv = g->identity ? view3(&c->res, s0 * chw, m, g->k, g->p)
                                  : view3(&cols, 0, m, g->k, g->p);
        st = mt_array_gemm(&cv, &wv, &dyv, 1.0, 0.0, true, false);
        if (st == MT_OK && !g->identity) {
            mt_array dxs = view_at(&c->res, s0 * chw, 1, (int64_t[]){m * chw});
            const mt_array *bufs[2] = {&cols, &dxs};
            st = launch(c->dev, K_COL2IM, c->cdt, bufs, sc, m * chw);
        }
    }
    mt_array_clear(&cols);
    return st;
}

static mt_status conv_backward_filter(ops_ctx *c, const cgeom *g, const mt_conv2d_params *prm)
{
    if (try_vendor_conv(c, MT__CONV_BWD_FILTER, prm)) return MT_OK;
    const mt_array *x = &c->in[0], *dy = &c->in[1];
    size_t es = mt_dtype_size(c->cdt);
    int64_t nb = conv_chunk(g, es, g->o * g->p);
    mt_array cols = {0}, dyp = {0};
    const int64_t d1[1] = {nb * g->k * g->p}, d2[1] = {nb * g->o * g->p};
    mt_status st = mt_array_empty(&cols, c->dev, c->cdt, 1, d1, 'C');
    if (st == MT_OK) st = mt_array_empty(&dyp, c->dev, c->cdt, 1, d2, 'C');
    mt_array dwv = view2(&c->res, 0, g->o, g->k);
    int64_t sc[14];
    conv_scalars(g, sc);
    int64_t chw = g->c * g->h * g->w;
    for (int64_t s0 = 0; s0 < g->n && st == MT_OK; s0 += nb) {
        int64_t m = g->n - s0 < nb ? g->n - s0 : nb;
        /* dyp [O, m, P] = dy chunk [m, O, P] with the first two axes swapped */
        mt_array src = view3(dy, s0 * g->o * g->p, m, g->o, g->p), srct = {0};
        static const int32_t perm[3] = {1, 0, 2};
        st = mt_array_transpose(&srct, &src, perm);
        mt_array dst = view3(&dyp, 0, g->o, m, g->p);
        if (st == MT_OK) st = mt_array_copy(&dst, &srct);
        mt_array_clear(&srct);
        mt_array xs = view_at(x, s0 * chw, 1, (int64_t[]){m * chw});
        sc[11] = m, sc[12] = m * g->p, sc[13] = g->p;
        const mt_array *bufs[2] = {&xs, &cols};
        if (st == MT_OK) st = launch(c->dev, K_IM2COL, c->cdt, bufs, sc, g->k * m * g->p);
        mt_array av = view2(&dyp, 0, g->o, m * g->p), bv = view2(&cols, 0, g->k, m * g->p);
        if (st == MT_OK) st = mt_array_gemm(&dwv, &av, &bv, 1.0, s0 == 0 ? 0.0 : 1.0, false, true);
    }
    mt_array_clear(&cols);
    mt_array_clear(&dyp);
    return st;
}

/* The three convolutions: the operand names (result first), which of (result, first input,
 * second input) plays x, w and y, and the lowering. */
typedef mt_status (*conv_fn)(ops_ctx *c, const cgeom *g, const mt_conv2d_params *prm);
typedef enum conv_op { CONV_FORWARD = 0, CONV_BACKWARD_DATA, CONV_BACKWARD_FILTER } conv_op;
static const struct {
    const char *what;
    const char *names[3];
    int xi, wi, yi;
    conv_fn run;
} conv_ops[3] = {
    {"conv2d_forward", {"y", "x", "w"}, 1, 2, 0, conv_forward},
    {"conv2d_backward_data", {"dx", "dy", "w"}, 0, 2, 1, conv_backward_data},
    {"conv2d_backward_filter", {"dw", "x", "dy"}, 1, 0, 2, conv_backward_filter},
};

static mt_status conv_entry(conv_op op, mt_array *res, const mt_array *a, const mt_array *b,
                            const mt_conv2d_params *p)
{
    const mt_array *ins[2] = {a, b};
    ops_ctx c;
    cgeom g;
    mt_status st = ctx_init(&c, conv_ops[op].what, res, 2, ins, conv_ops[op].names);
    if (st != MT_OK) return st;
    const mt_array *opnd[3] = {res, a, b};
    st = conv_geom(&g, c.what, opnd[conv_ops[op].xi]->dims, opnd[conv_ops[op].wi]->dims,
                   opnd[conv_ops[op].yi]->dims, p);
    if (st == MT_OK && mt_array_size(res) > 0) {
        /* the dimension each product sums over: empty, the result is zero */
        const int64_t reduced[3] = {g.k, g.o, g.n};
        st = reduced[op] == 0 ? zero_result(&c) : conv_ops[op].run(&c, &g, p);
    }
    return ctx_finish(&c, st);
}

mt_status mt_conv2d_forward(mt_array *y, const mt_array *x, const mt_array *w,
                            const mt_conv2d_params *p)
{
    return conv_entry(CONV_FORWARD, y, x, w, p);
}

mt_status mt_conv2d_backward_data(mt_array *dx, const mt_array *dy, const mt_array *w,
                                  const mt_conv2d_params *p)
{
    return conv_entry(CONV_BACKWARD_DATA, dx, dy, w, p);
}

mt_status mt_conv2d_backward_filter(mt_array *dw, const mt_array *x, const mt_array *dy,
                                    const mt_conv2d_params *p)
{
    return conv_entry(CONV_BACKWARD_FILTER, dw, x, dy, p);
}

/* ---------------------------------------------------------------- pooling */

/* Checks x [N, C, H, W] against y [N, C, OH, OW] and fills the kernel scalars (H .. C1). */
static mt_status pool_geom(const char *what, const int64_t *xd, const int64_t *yd,
                           const mt_pool2d_params *p, int64_t *sc)
{
    if (!p) return mt_err_set(MT_ERR_INVALID, "%s: params is NULL", what);
    for (int d = 0; d < 2; d++)
        if (p->size[d] < 1 || p->stride[d] < 1 || p->pad[d] < 0 || p->pad[d] >= p->size[d])
            return mt_err_set(MT_ERR_INVALID, "%s: window (%d, %d), stride (%d, %d), pad (%d, "
                              "%d): need size >= 1, stride >= 1 and 0 <= pad < size", what,
                              (int)p->size[0], (int)p->size[1], (int)p->stride[0],
                              (int)p->stride[1], (int)p->pad[0], (int)p->pad[1]);
    if (p->kind < 0 || p->kind >= MT_POOL2D_KIND_COUNT)
        return mt_err_set(MT_ERR_INVALID, "%s: invalid pooling kind %d", what, (int)p->kind);
    bool ok = xd[0] == yd[0] && xd[1] == yd[1];
    for (int d = 0; d < 2 && ok; d++) {
        int64_t n = xd[2 + d], o = yd[2 + d];
        /* at least one window, and every window starts inside the padded input */
        ok = o >= 1 && (o - 1) * p->stride[d] - p->pad[d] < n;
    }
    if (!ok) {
        char bx[96], by[96];
        return mt_err_set(MT_ERR_SHAPE, "%s: y %s is not a pooling of x %s with window (%d, %d), "
                          "stride (%d, %d), pad (%d, %d)", what, mt_shape_str(4, yd, by, sizeof by),
                          mt_shape_str(4, xd, bx, sizeof bx), (int)p->size[0], (int)p->size[1],
                          (int)p->stride[0], (int)p->stride[1], (int)p->pad[0], (int)p->pad[1]);
    }
    const int64_t w = xd[3], ow = yd[3], kw = p->size[1], sw = p->stride[1], pw = p->pad[1];
    /* interior columns [c0, c1): windows inside [0, W) horizontally (as the host loops) */
    int64_t c0 = (pw + sw - 1) / sw, c1 = w + pw - kw >= 0 ? (w + pw - kw) / sw + 1 : 0;
    if (c1 > ow) c1 = ow;
    if (c0 > c1) c0 = c1;
    const int64_t v[12] = {xd[2], xd[3], yd[2], yd[3], p->size[0], p->size[1], p->stride[0],
                           p->stride[1], p->pad[0], p->pad[1], c0, c1};
    memcpy(sc, v, sizeof v);
    return MT_OK;
}

mt_status mt_pool2d_forward(mt_array *y, const mt_array *x, const mt_array *v,
                            const mt_pool2d_params *p)
{
    static const char *const names[] = {"y", "x", "v"};
    const mt_array *ins[2] = {x, v};
    ops_ctx c;
    mt_status st = ctx_init(&c, "pool2d_forward", y, v ? 2 : 1, ins, names);
    if (st != MT_OK) return st;
    int64_t sc[12];
    st = pool_geom(c.what, x->dims, y->dims, p, sc);
    if (st == MT_OK && v) {
        for (int d = 0; d < 4; d++)
            if (v->dims[d] != x->dims[d]) {
                char bx[96], bv[96];
                st = mt_err_set(MT_ERR_SHAPE, "%s: v %s must have the shape of x %s", c.what,
                                mt_shape_str(4, v->dims, bv, sizeof bv),
                                mt_shape_str(4, x->dims, bx, sizeof bx));
                break;
            }
    }
    if (st != MT_OK || mt_array_size(y) == 0) return ctx_finish(&c, st);
    if (!v && c.dev->ops->pool2d &&
        c.dev->ops->pool2d(c.dev, false, &c.res, &c.in[0], NULL, NULL, p) == MT_OK)
        return ctx_finish(&c, MT_OK);
    const mt_array *bufs[3] = {&c.in[0], v ? &c.in[1] : &c.in[0], &c.res};
    st = launch(c.dev, p->kind == MT_POOL2D_MAX ? K_POOL_FWD_MAX : K_POOL_FWD_MEAN, c.cdt, bufs,
                sc, mt_array_size(y));
    return ctx_finish(&c, st);
}

mt_status mt_pool2d_backward(mt_array *dx, const mt_array *x, const mt_array *y,
                             const mt_array *dy, const mt_pool2d_params *p)
{
    static const char *const names[] = {"dx", "x", "dy", "y"};
    const mt_array *ins[3] = {x, dy, y};
    ops_ctx c;
    mt_status st = ctx_init(&c, "pool2d_backward", dx, y ? 3 : 2, ins, names);
    if (st != MT_OK) return st;
    int64_t sc[12];
    st = pool_geom(c.what, x->dims, dy->dims, p, sc);
    for (int d = 0; d < 4 && st == MT_OK; d++) {
        if (dx->dims[d] != x->dims[d] || (y && y->dims[d] != dy->dims[d])) {
            char bx[96], bd[96];
            st = mt_err_set(MT_ERR_SHAPE, "%s: dx %s must have the shape of x %s (and y that of "
                            "dy)", c.what, mt_shape_str(4, dx->dims, bd, sizeof bd),
                            mt_shape_str(4, x->dims, bx, sizeof bx));
        }
    }
    if (st != MT_OK || mt_array_size(dx) == 0) return ctx_finish(&c, st);
    if (c.dev->ops->pool2d && c.dev->ops->pool2d(c.dev, true, &c.res, &c.in[0],
                                                 y ? &c.in[2] : NULL, &c.in[1], p) == MT_OK)
        return ctx_finish(&c, MT_OK);
    const mt_array *bufs[3] = {&c.in[0], &c.in[1], &c.res};
    st = launch(c.dev, p->kind == MT_POOL2D_MAX ? K_POOL_BWD_MAX : K_POOL_BWD_MEAN, c.cdt, bufs,
                sc, mt_array_size(dx));
    return ctx_finish(&c, st);
}
