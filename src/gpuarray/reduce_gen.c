/* Source of the reduction kernel, for the host (C), OpenCL C and CUDA C, from one description
 * (mt__rsig, see reduce_impl.h for the arguments and the chunking scheme).
 *
 * The map's statements come from kgen (mt__kgen_expr), evaluated per reduced element with in<i>
 * loaded from the inputs and out0 converted into the accumulator's domain: double for every
 * float and for means, uint64_t arithmetic for integer sums and products (wrapping like NumPy's
 * int64), int64_t/uint64_t for integer max/min/arg. Float sums are pairwise: elements are
 * summed in blocks of MT__RED_BLOCK (several independent accumulators, so the host compiler
 * vectorises the loop, converting float to double in the vector unit), and block sums are
 * combined by a binary counter over a small stack, which adds them as a balanced tree. The
 * error then grows with log2(K / block), like NumPy's pairwise sum. max/min propagate NaN
 * with m = (v > m || v != v) ? v : m; argmax/argmin keep the first maximum and the first NaN,
 * and stage 2 breaks ties between partials by the smaller index.
 *
 * On the host, max/min/argmax/argmin over doubles, which gcc does not vectorise as scalar code,
 * first evaluate the map for a block of elements into a small array and then scan it with GCC
 * vector extensions (also understood by clang); argmax then rescans only blocks that beat the
 * best value so far. Tiled kernels (see reduce_impl.h) serve column-like reductions: a work
 * item adds a band of whole rows into a float64 row (a plain loop over the contiguous kept
 * axis, which the host compiler vectorises), and stage 2 adds the bands' rows in fixed order.
 *
 * The body is written once in the common subset of the three languages; only the entry point's
 * signature, the loop over work items and the address-space qualifier differ. */
#include <stdio.h>
#include <string.h>

#include "reduce_impl.h"

typedef struct rgen {
    mt_strbuf *sb;
    const mt__rsig *sig;
    const char *G;       /* "__global " for OpenCL pointers, "" elsewhere */
    bool pairwise;       /* float sum/mean: blocked pairwise summation */
    bool arg;            /* argmax/argmin */
    bool vec;            /* host max/min/argmax/argmin over doubles: block buffer + vector scan */
    const char *px, *ps; /* names of the inner loop's pointers and strides ("x"/"xs", "y"/"ts") */
} rgen;

#define MTR_VBLOCK 512 /* elements per block of the host max/min/arg scan */

static void line(rgen *g, int depth, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void line(rgen *g, int depth, const char *fmt, ...)
{
    for (int i = 0; i < depth; i++)
        mt_strbuf_append(g->sb, "    ");
    va_list ap;
    va_start(ap, fmt);
    mt_strbuf_appendv(g->sb, fmt, ap);
    va_end(ap);
    mt_strbuf_append(g->sb, "\n");
}

static const char *stor(mt_dtype dt)
{
    return mt__kgen_storage_type(dt, MT_KLANG_C); /* same names in every language */
}

/* The type of the running state (and of the partials in tmp). */
static const char *state_type(const mt__rsig *s)
{
    switch (s->op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_MEAN:
    case MT_REDUCE_PROD:
        return s->acc == 'd' ? "double" : "uint64_t";
    case MT_REDUCE_ALL:
    case MT_REDUCE_ANY:
        return "int64_t";
    default:
        return s->acc == 'd' ? "double" : s->acc == 'i' ? "int64_t" : "uint64_t";
    }
}

/* Expression converting out0 (map output storage) into the state's domain. */
static void conv_expr(char *buf, size_t len, const mt__rsig *s)
{
    mt_dtype dt = s->map_dt;
    const char *val = dt == MT_FLOAT16    ? "mt_h2f(out0)"
                      : dt == MT_BFLOAT16 ? "mt_bf2f(out0)"
                                          : "out0";
    const char *st = state_type(s);
    if (s->op == MT_REDUCE_ALL || s->op == MT_REDUCE_ANY)
        snprintf(buf, len, "(int64_t)(%s != 0)", val);
    else if (dt == MT_BOOL)
        snprintf(buf, len, "(%s)(out0 != 0)", st);
    else if (strcmp(st, "uint64_t") == 0 && mt_dtype_kind(dt) == 'i')
        snprintf(buf, len, "(uint64_t)(int64_t)out0"); /* sign-extend, then wrap */
    else
        snprintf(buf, len, "(%s)%s", st, val);
}

/* Identity / initial value of the state. */
static const char *init_value(const mt__rsig *s)
{
    bool d = s->acc == 'd', i = s->acc == 'i';
    switch (s->op) {
    case MT_REDUCE_PROD:
        return d ? "1.0" : "(uint64_t)1";
    case MT_REDUCE_ALL:
        return "(int64_t)1";
    case MT_REDUCE_ANY:
        return "(int64_t)0";
    case MT_REDUCE_MAX:
        return d ? "(-MT_INF)" : i ? "(-(int64_t)9223372036854775807 - (int64_t)1)" : "(uint64_t)0";
    case MT_REDUCE_MIN:
        return d ? "MT_INF" : i ? "(int64_t)9223372036854775807" : "(~(uint64_t)0)";
    case MT_REDUCE_ARGMAX:
    case MT_REDUCE_ARGMIN:
        return d ? "0.0" : "0";
    default:
        return d ? "0.0" : "(uint64_t)0";
    }
}

/* Statement folding value `v` into accumulator `a` (not for argmax/argmin). */
static void merge_stmt(char *buf, size_t len, const mt__rsig *s, const char *a, const char *v)
{
    const char *o = s->op == MT_REDUCE_MAX ? ">" : "<";
    switch (s->op) {
    case MT_REDUCE_PROD:
        snprintf(buf, len, "%s *= %s;", a, v);
        break;
    case MT_REDUCE_ALL:
        snprintf(buf, len, "%s &= %s;", a, v);
        break;
    case MT_REDUCE_ANY:
        snprintf(buf, len, "%s |= %s;", a, v);
        break;
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN:
        if (s->acc == 'd') /* NaN sticks: nothing compares greater, and a NaN v is taken */
            snprintf(buf, len, "%s = (%s %s %s || %s != %s) ? %s : %s;", a, v, o, a, v, v, v, a);
        else
            snprintf(buf, len, "%s = %s %s %s ? %s : %s;", a, v, o, a, v, a);
        break;
    default:
        snprintf(buf, len, "%s += %s;", a, v);
        break;
    }
}

/* Whether element (v at index kk) replaces the best so far (acc at bi); elements of one partial
 * arrive in increasing index order, so a tie keeps the earlier one. */
static void arg_take_cond(char *buf, size_t len, const mt__rsig *s, const char *acc, const char *bi)
{
    const char *o = s->op == MT_REDUCE_ARGMAX ? ">" : "<";
    if (s->acc == 'd')
        snprintf(buf, len, "%s < 0 || v %s %s || (v != v && %s == %s)", bi, o, acc, acc, acc);
    else
        snprintf(buf, len, "%s < 0 || v %s %s", bi, o, acc);
}

/* Load of input i at element index expression e of the current inner loop. */
static void load_expr(char *buf, size_t len, const rgen *g, int32_t i, const char *e)
{
    const char *T = stor(g->sig->in_dt[i]);
    switch (g->sig->inner[i]) {
    case 'c':
        snprintf(buf, len, "((%sconst %s *)%s%d)[%s]", g->G, T, g->px, i, e);
        break;
    case 'z':
        snprintf(buf, len, "*(%sconst %s *)%s%d", g->G, T, g->px, i);
        break;
    default:
        snprintf(buf, len, "*(%sconst %s *)(%s%d + (%s) * %s%d)", g->G, T, g->px, i, e, g->ps, i);
        break;
    }
}

/* One element: load the inputs at index e, run the map, convert to v, then `stmt`. */
static mt_status emit_elem(rgen *g, int depth, const char *e, const char *stmt)
{
    const mt__rsig *s = g->sig;
    char buf[256], ind[64];
    line(g, depth, "{");
    for (int32_t i = 0; i < s->nin; i++) {
        load_expr(buf, sizeof buf, g, i, e);
        line(g, depth + 1, "const %s in%d = %s;", stor(s->in_dt[i]), i, buf);
        line(g, depth + 1, "(void)in%d;", i);
    }
    line(g, depth + 1, "%s out0;", stor(s->map_dt));
    snprintf(ind, sizeof ind, "%*s", 4 * (depth + 1), "");
    mt_status st = mt__kgen_expr(g->sb, s->map, s->lang, ind);
    if (st != MT_OK) return st;
    conv_expr(buf, sizeof buf, s);
    line(g, depth + 1, "const %s v = %s;", state_type(s), buf);
    line(g, depth + 1, "%s", stmt);
    line(g, depth, "}");
    return MT_OK;
}

static void advance_ptrs(rgen *g, int depth, const char *m)
{
    for (int32_t i = 0; i < g->sig->nin; i++)
        line(g, depth, "x%d += %s * xs%d;", i, m, i);
}

/* Folds the n elements of the current run (pointers x<i>, strides xs<i>) into `into` through
 * `lanes` independent accumulators; for float sums the caller has bounded n by the block. */
static mt_status emit_lanes(rgen *g, int depth, const char *n, const char *into)
{
    const mt__rsig *s = g->sig;
    int32_t L = s->lanes;
    const char *T = state_type(s);
    char stmt[256], e[64], a[16], b[16];
    mt_strbuf_appendf(g->sb, "%*s%s a0 = %s", 4 * depth, "", T, init_value(s));
    for (int32_t l = 1; l < L; l++)
        mt_strbuf_appendf(g->sb, ", a%d = %s", l, init_value(s));
    mt_strbuf_append(g->sb, ";\n");
    line(g, depth, "int64_t i = 0;");
    mt_status st = MT_OK;
    if (L > 1) {
        line(g, depth, "for (; i + %d <= %s; i += %d) {", L, n, L);
        for (int32_t l = 0; l < L && st == MT_OK; l++) {
            snprintf(a, sizeof a, "a%d", l);
            merge_stmt(stmt, sizeof stmt, s, a, "v");
            snprintf(e, sizeof e, "i + %d", l);
            st = emit_elem(g, depth + 1, e, stmt);
        }
        line(g, depth, "}");
    }
    if (st != MT_OK) return st;
    line(g, depth, "for (; i < %s; i++) {", n);
    merge_stmt(stmt, sizeof stmt, s, "a0", "v");
    st = emit_elem(g, depth + 1, "i", stmt);
    line(g, depth, "}");
    for (int32_t w = 1; w < L; w *= 2) /* a balanced tree over the lanes */
        for (int32_t l = 0; l + w < L; l += 2 * w) {
            snprintf(a, sizeof a, "a%d", l);
            snprintf(b, sizeof b, "a%d", l + w);
            merge_stmt(stmt, sizeof stmt, s, a, b);
            line(g, depth, "%s", stmt);
        }
    merge_stmt(stmt, sizeof stmt, s, into, "a0");
    line(g, depth, "%s", stmt);
    return st;
}

/* Host max/min/argmax/argmin over doubles: blocks of the run are evaluated into vb, scanned
 * with 2 x 4 vector lanes (NaN sticks) and folded into acc; max/min keep the lanes over the
 * whole run, argmax folds each block and locates its best only when that beats acc (first NaN,
 * else the first equal value). */
static mt_status emit_vec_run(rgen *g, int depth, const char *k0, const char *kstep)
{
    const mt__rsig *s = g->sig;
    bool mx = s->op == MT_REDUCE_MAX || s->op == MT_REDUCE_ARGMAX;
    const char *o = mx ? ">" : "<", *I = mx ? "(-MT_INF)" : "MT_INF";
    int d = depth;
    if (g->arg) line(g, d, "int64_t kk = %s;", k0);
    if (!g->arg) {
        line(g, d, "mtr_vd m0 = {%s, %s, %s, %s}, m1 = m0;", I, I, I, I);
        line(g, d, "double bm = %s;", I);
    }
    line(g, d, "for (int64_t left = n; left > 0;) {");
    line(g, d + 1, "const int64_t m = left < %d ? left : %d;", MTR_VBLOCK, MTR_VBLOCK);
    line(g, d + 1, "int64_t i = 0;");
    line(g, d + 1, "for (; i < m; i++)");
    mt_status st = emit_elem(g, d + 2, "i", "vb[i] = v;");
    if (g->arg) {
        line(g, d + 1, "mtr_vd m0 = {%s, %s, %s, %s}, m1 = m0;", I, I, I, I);
        line(g, d + 1, "double bm = %s;", I);
    }
    line(g, d + 1, "for (i = 0; i + 8 <= m; i += 8) {");
    line(g, d + 2, "mtr_vd v0, v1;");
    line(g, d + 2, "memcpy(&v0, vb + i, sizeof v0);");
    line(g, d + 2, "memcpy(&v1, vb + i + 4, sizeof v1);");
    line(g, d + 2, "m0 = MTR_VSEL((v0 %s m0) | (v0 != v0), v0, m0);", o);
    line(g, d + 2, "m1 = MTR_VSEL((v1 %s m1) | (v1 != v1), v1, m1);", o);
    line(g, d + 1, "}");
    line(g, d + 1, "for (; i < m; i++) bm = (vb[i] %s bm || vb[i] != vb[i]) ? vb[i] : bm;", o);
    if (g->arg) {
        line(g, d + 1,
             "for (int l = 0; l < 4; l++) bm = (m0[l] %s bm || m0[l] != m0[l]) ? m0[l] : bm;", o);
        line(g, d + 1,
             "for (int l = 0; l < 4; l++) bm = (m1[l] %s bm || m1[l] != m1[l]) ? m1[l] : bm;", o);
        line(g, d + 1, "if (bi < 0 || bm %s acc || (bm != bm && acc == acc)) {", o);
        line(g, d + 2, "int64_t f = 0;");
        line(g, d + 2, "while (f < m - 1 && !(bm != bm ? vb[f] != vb[f] : vb[f] == bm)) f++;");
        line(g, d + 2, "acc = bm;");
        line(g, d + 2, "bi = kk + f * %s;", kstep);
        line(g, d + 1, "}");
        line(g, d + 1, "kk += m * %s;", kstep);
    }
    advance_ptrs(g, d + 1, "m");
    line(g, d + 1, "left -= m;");
    line(g, d, "}");
    if (!g->arg) {
        line(g, d, "for (int l = 0; l < 4; l++) bm = (m0[l] %s bm || m0[l] != m0[l]) ? m0[l] : bm;",
             o);
        line(g, d, "for (int l = 0; l < 4; l++) bm = (m1[l] %s bm || m1[l] != m1[l]) ? m1[l] : bm;",
             o);
        line(g, d, "acc = (bm %s acc || bm != bm) ? bm : acc;", o);
    }
    return st;
}

/* Pushes the finished block sum onto the pairwise stack (a binary counter of levels); a tiled
 * kernel adds its block row into the chunk's row instead (chunks hold few blocks, and stage 2
 * adds the chunks pairwise). */
static void emit_push(rgen *g, int depth)
{
    if (!g->sig->tiled) {
        line(g, depth, "double u = bs;");
        line(g, depth, "for (int64_t c = nb; c & 1; c >>= 1) u = stk[--top] + u;");
        line(g, depth, "stk[top++] = u;");
        line(g, depth, "bs = 0.0;");
        line(g, depth, "nb++;");
    } else {
        line(g, depth, "for (int64_t t = 0; t < nt; t++) {");
        line(g, depth + 1, "cs[t] += bs[t];");
        line(g, depth + 1, "bs[t] = 0.0;");
        line(g, depth, "}");
    }
    line(g, depth, "bc = 0;");
}

/* Folds the run (n elements from x<i> with byte strides xs<i>, indices k0 + t * kstep). */
static mt_status emit_run(rgen *g, int depth, const char *k0, const char *kstep)
{
    const mt__rsig *s = g->sig;
    char stmt[256], cond[200];
    if (g->vec) return emit_vec_run(g, depth, k0, kstep);
    if (g->arg) {
        arg_take_cond(cond, sizeof cond, s, "acc", "bi");
        line(g, depth, "int64_t kk = %s;", k0);
        line(g, depth, "for (int64_t i = 0; i < n; i++, kk += %s) {", kstep);
        snprintf(stmt, sizeof stmt, "if (%s) { acc = v; bi = kk; }", cond);
        mt_status st = emit_elem(g, depth + 1, "i", stmt);
        line(g, depth, "}");
        return st;
    }
    if (!g->pairwise) {
        line(g, depth, "{");
        mt_status st = emit_lanes(g, depth + 1, "n", "acc");
        line(g, depth, "}");
        return st;
    }
    line(g, depth, "int64_t left = n;");
    line(g, depth, "while (left > 0) {");
    line(g, depth + 1, "int64_t m = %d - bc;", MT__RED_BLOCK);
    line(g, depth + 1, "if (m > left) m = left;");
    line(g, depth + 1, "double s = 0.0;");
    line(g, depth + 1, "{");
    mt_status st = emit_lanes(g, depth + 2, "m", "s");
    line(g, depth + 1, "}");
    line(g, depth + 1, "bs += s;");
    line(g, depth + 1, "bc += m;");
    line(g, depth + 1, "left -= m;");
    advance_ptrs(g, depth + 1, "m");
    line(g, depth + 1, "if (bc == %d) {", MT__RED_BLOCK);
    emit_push(g, depth + 2);
    line(g, depth + 1, "}");
    line(g, depth, "}");
    return st;
}

/* Tiled run: n rows of the reduction (x<i>, stride xs<i> between rows); in each row the nt
 * outputs of the tile (y<i>, stride ts<i>) are the inner, contiguous loop. */
static mt_status emit_rows(rgen *g, int depth, const char *m, const char *stmt)
{
    line(g, depth, "for (int64_t i = 0; i < %s; i++) {", m);
    for (int32_t i = 0; i < g->sig->nin; i++)
        line(g, depth + 1, "%sconst char *y%d = x%d + i * xs%d;", g->G, i, i, i);
    line(g, depth + 1, "for (int64_t t = 0; t < nt; t++)");
    mt_status st = emit_elem(g, depth + 2, "t", stmt);
    if (g->arg) line(g, depth + 1, "kk += kstep_;");
    line(g, depth, "}");
    return st;
}

/* Tiled float sum over m rows: rows go in groups of 4, whose values are added pairwise before
 * they reach the block's row bs (a quarter of the loads and stores of bs, and four streams in
 * flight), then the rest one by one. */
static mt_status emit_rows4(rgen *g, int depth, const char *m)
{
    static const char *const names[4] = {"ya", "yb", "yc", "yd"};
    const mt__rsig *s = g->sig;
    const char *px = g->px;
    char stmt[32];
    mt_status st = MT_OK;
    line(g, depth, "int64_t i = 0;");
    line(g, depth, "for (; i + 4 <= %s; i += 4) {", m);
    for (int32_t i = 0; i < s->nin; i++) {
        line(g, depth + 1, "%sconst char *ya%d = x%d + i * xs%d;", g->G, i, i, i);
        for (int r = 1; r < 4; r++)
            line(g, depth + 1, "%sconst char *%s%d = %s%d + xs%d;", g->G, names[r], i, names[r - 1],
                 i, i);
    }
    line(g, depth + 1, "for (int64_t t = 0; t < nt; t++) {");
    line(g, depth + 2, "double r0, r1, r2, r3;");
    for (int r = 0; r < 4 && st == MT_OK; r++) {
        g->px = names[r];
        snprintf(stmt, sizeof stmt, "r%d = v;", r);
        st = emit_elem(g, depth + 2, "t", stmt);
    }
    g->px = px;
    line(g, depth + 2, "bs[t] += (r0 + r1) + (r2 + r3);");
    line(g, depth + 1, "}");
    line(g, depth, "}");
    if (st != MT_OK) return st;
    line(g, depth, "for (; i < %s; i++) {", m);
    for (int32_t i = 0; i < s->nin; i++)
        line(g, depth + 1, "%sconst char *y%d = x%d + i * xs%d;", g->G, i, i, i);
    line(g, depth + 1, "for (int64_t t = 0; t < nt; t++)");
    st = emit_elem(g, depth + 2, "t", "bs[t] += v;");
    line(g, depth, "}");
    return st;
}

static mt_status emit_run_tiled(rgen *g, int depth, const char *k0, const char *kstep)
{
    const mt__rsig *s = g->sig;
    char stmt[256], cond[200];
    if (g->arg) {
        arg_take_cond(cond, sizeof cond, s, "accv[t]", "biv[t]");
        snprintf(stmt, sizeof stmt, "if (%s) { accv[t] = v; biv[t] = kk; }", cond);
        line(g, depth, "int64_t kk = %s;", k0);
        line(g, depth, "const int64_t kstep_ = %s;", kstep);
        return emit_rows(g, depth, "n", stmt);
    }
    if (!g->pairwise) {
        merge_stmt(stmt, sizeof stmt, s, "accv[t]", "v");
        return emit_rows(g, depth, "n", stmt);
    }
    line(g, depth, "int64_t left = n;");
    line(g, depth, "while (left > 0) {");
    line(g, depth + 1, "int64_t m = %d - bc;", MT__RED_BLOCK);
    line(g, depth + 1, "if (m > left) m = left;");
    line(g, depth + 1, "{");
    mt_status st = emit_rows4(g, depth + 2, "m");
    line(g, depth + 1, "}");
    advance_ptrs(g, depth + 1, "m");
    line(g, depth + 1, "bc += m;");
    line(g, depth + 1, "left -= m;");
    line(g, depth + 1, "if (bc == %d) {", MT__RED_BLOCK);
    emit_push(g, depth + 2);
    line(g, depth + 1, "}");
    line(g, depth, "}");
    return st;
}

/* Chunk p of output j (or tile): reduced indices [p*C, min(K, (p+1)*C)) walked in runs along
 * the innermost reduced dim, carrying into the outer ones. */
static mt_status emit_chunked(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    int32_t L = s->ndk - 1;
    line(g, depth, "int64_t kb = p * C, ke = kb + C;");
    line(g, depth, "if (ke > K) ke = K;");
    for (int32_t t = 0; t <= L; t++)
        line(g, depth, "int64_t ik%d;", t);
    for (int32_t i = 0; i < s->nin; i++)
        line(g, depth, "int64_t ok%d = 0;", i);
    line(g, depth, "{");
    line(g, depth + 1, "int64_t r = kb;");
    for (int32_t t = L; t >= 0; t--) {
        if (t > 0) {
            line(g, depth + 1, "ik%d = r %% dk%d;", t, t);
            line(g, depth + 1, "r /= dk%d;", t);
        } else {
            line(g, depth + 1, "ik0 = r;");
        }
        for (int32_t i = 0; i < s->nin; i++)
            line(g, depth + 1, "ok%d += ik%d * sk%d_%d;", i, t, i, t);
    }
    line(g, depth, "}");
    line(g, depth, "int64_t k = kb;");
    line(g, depth, "while (k < ke) {");
    line(g, depth + 1, "int64_t n = dk%d - ik%d;", L, L);
    line(g, depth + 1, "if (n > ke - k) n = ke - k;");
    for (int32_t i = 0; i < s->nin; i++) {
        line(g, depth + 1, "%sconst char *x%d = p%d + oj%d + ok%d;", g->G, i, i, i, i);
        line(g, depth + 1, "const int64_t xs%d = sk%d_%d;", i, i, L);
    }
    line(g, depth + 1, "{");
    mt_status st =
        s->tiled ? emit_run_tiled(g, depth + 2, "k", "1") : emit_run(g, depth + 2, "k", "1");
    line(g, depth + 1, "}");
    line(g, depth + 1, "k += n;");
    if (L > 0) {
        line(g, depth + 1, "ik%d += n;", L);
        for (int32_t i = 0; i < s->nin; i++)
            line(g, depth + 1, "ok%d += n * sk%d_%d;", i, i, L);
        line(g, depth + 1, "if (ik%d == dk%d) {", L, L);
        line(g, depth + 2, "ik%d = 0;", L);
        for (int32_t i = 0; i < s->nin; i++)
            line(g, depth + 2, "ok%d -= dk%d * sk%d_%d;", i, L, i, L);
        line(g, depth + 2, "do {");
        for (int32_t t = L - 1; t >= 0; t--) {
            line(g, depth + 3, "ik%d++;", t);
            for (int32_t i = 0; i < s->nin; i++)
                line(g, depth + 3, "ok%d += sk%d_%d;", i, i, t);
            line(g, depth + 3, "if (ik%d < dk%d) break;", t, t);
            line(g, depth + 3, "ik%d = 0;", t);
            for (int32_t i = 0; i < s->nin; i++)
                line(g, depth + 3, "ok%d -= dk%d * sk%d_%d;", i, t, i, t);
        }
        line(g, depth + 2, "} while (0);");
        line(g, depth + 1, "}");
    }
    line(g, depth, "}");
    return st;
}

/* Chunk p of output j when interleaved (ndk == 1): indices p, p + P, p + 2P, ... */
static mt_status emit_interleaved(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    line(g, depth, "int64_t n = p < K ? (K - p + P - 1) / P : 0;");
    for (int32_t i = 0; i < s->nin; i++) {
        line(g, depth, "%sconst char *x%d = p%d + oj%d + p * sk%d_0;", g->G, i, i, i, i);
        line(g, depth, "const int64_t xs%d = P * sk%d_0;", i, i);
    }
    return emit_run(g, depth, "p", "P");
}

/* Stores the final value of acc (and bi) through po. */
static void emit_final(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    mt_dtype od = s->out_dt;
    if (g->arg) {
        line(g, depth, "*po = bi;");
        return;
    }
    if (s->op == MT_REDUCE_ALL || s->op == MT_REDUCE_ANY || od == MT_BOOL) {
        line(g, depth, "*po = (uint8_t)(acc != 0);");
        return;
    }
    if (s->acc != 'd') {
        line(g, depth, "*po = (%s)acc;", stor(od));
        return;
    }
    line(g, depth, "const double r = acc%s;", s->op == MT_REDUCE_MEAN ? " / (double)K" : "");
    switch (od) {
    case MT_FLOAT16:
        line(g, depth, "*po = mt_d2h(r);");
        break;
    case MT_BFLOAT16:
        line(g, depth, "*po = mt_d2bf(r);");
        break;
    default:
        line(g, depth, "*po = (%s)r;", stor(od));
        break;
    }
}

static void emit_po(rgen *g, int depth, const char *extra)
{
    const char *OT = stor(g->sig->out_dt);
    line(g, depth, "%s%s *po = (%s%s *)(pout + ojo%s);", g->G, OT, g->G, OT, extra);
}

/* Stage 2: output j combines its P partials in chunk order. */
static void emit_combine(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    const char *T = state_type(s);
    char stmt[256];
    /* partials of output j: tmp[j * P + q], or tmp[q * J + j] for tiled kernels */
    const char *first = s->tiled ? "j" : "j * P", *qs = s->tiled ? "q * (npart / P)" : "q";
    emit_po(g, depth, "");
    line(g, depth, "%s acc = %s;", T, g->pairwise ? "0.0" : init_value(s));
    line(g, depth, "%sconst %s *tv = (%sconst %s *)ptmp + %s;", g->G, T, g->G, T, first);
    if (g->arg) {
        const char *o = s->op == MT_REDUCE_ARGMAX ? ">" : "<";
        line(g, depth, "int64_t bi = -1;");
        line(g, depth, "%sconst int64_t *ti = (%sconst int64_t *)ptmp + npart + %s;", g->G, g->G,
             first);
        line(g, depth, "for (int64_t q = 0; q < P; q++) {");
        line(g, depth + 1, "const %s v = tv[%s];", T, qs);
        line(g, depth + 1, "const int64_t vi = ti[%s];", qs);
        if (s->acc == 'd')
            line(g, depth + 1,
                 "const int better = (v != v) ? (acc == acc || vi < bi) : "
                 "(acc == acc && (v %s acc || (v == acc && vi < bi)));",
                 o);
        else
            line(g, depth + 1, "const int better = v %s acc || (v == acc && vi < bi);", o);
        line(g, depth + 1, "if (vi >= 0 && (bi < 0 || better)) { acc = v; bi = vi; }");
        line(g, depth, "}");
    } else if (g->pairwise) { /* the partials pairwise too (P may be in the thousands) */
        line(g, depth, "double stk[64];");
        line(g, depth, "int top = 0;");
        line(g, depth, "for (int64_t q = 0; q < P; q++) {");
        line(g, depth + 1, "double u = tv[%s];", qs);
        line(g, depth + 1, "for (int64_t c = q; c & 1; c >>= 1) u = stk[--top] + u;");
        line(g, depth + 1, "stk[top++] = u;");
        line(g, depth, "}");
        line(g, depth, "while (top > 0) acc = stk[--top] + acc;");
    } else {
        char tq[48];
        snprintf(tq, sizeof tq, "tv[%s]", qs);
        merge_stmt(stmt, sizeof stmt, s, "acc", tq);
        line(g, depth, "for (int64_t q = 0; q < P; q++) %s", stmt);
    }
    emit_final(g, depth);
}

/* w -> (j, p) (and the tile's width nt), then the kept offsets of output j. */
static void emit_work_split(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    int32_t nin = s->nin, L = s->ndj - 1;
    line(g, depth, "int64_t j = w, p = 0;");
    if (s->tiled) line(g, depth, "int64_t nt = 1;");
    line(g, depth, "if (mode != %d) {", MT__RMODE_COMBINE);
    if (s->tiled) {
        line(g, depth + 1, "const int64_t tix = w / P;");
        int W = s->tile;
        line(g, depth + 1, "const int64_t nti = (dj%d + %d) / %d;", L, W - 1, W);
        line(g, depth + 1, "const int64_t jo = tix / nti, ti = tix - jo * nti;");
        line(g, depth + 1, "p = w - tix * P;");
        line(g, depth + 1, "j = jo * dj%d + ti * %d;", L, W);
        line(g, depth + 1, "nt = dj%d - ti * %d;", L, W);
        line(g, depth + 1, "if (nt > %d) nt = %d;", W, W);
    } else {
        line(g, depth + 1, "j = w / P;");
        line(g, depth + 1, "p = w - j * P;");
    }
    line(g, depth, "}");
    for (int32_t i = 0; i < nin; i++)
        line(g, depth, "int64_t oj%d = 0;", i);
    line(g, depth, "int64_t ojo = 0;");
    if (s->ndj > 0) {
        line(g, depth, "{");
        line(g, depth + 1, "int64_t r = j, q;");
        for (int32_t t = s->ndj - 1; t >= 0; t--) {
            if (t > 0) {
                line(g, depth + 1, "q = r %% dj%d;", t);
                line(g, depth + 1, "r /= dj%d;", t);
            } else {
                line(g, depth + 1, "q = r;");
            }
            for (int32_t i = 0; i < nin; i++)
                line(g, depth + 1, "oj%d += q * sj%d_%d;", i, i, t);
            line(g, depth + 1, "ojo += q * so_%d;", t);
        }
        line(g, depth, "}");
    }
}

/* State of a tiled work item, its traversal and its stores. */
static mt_status emit_tiled(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    const char *T = state_type(s);
    int32_t L = s->ndj - 1, W = s->tile;
    if (g->pairwise) { /* bs: the current block of rows; cs: the chunk's finished blocks */
        line(g, depth, "double bs[%d], cs[%d];", W, W);
        line(g, depth, "int64_t bc = 0;");
        line(g, depth, "for (int64_t t = 0; t < nt; t++) {");
        line(g, depth + 1, "bs[t] = 0.0;");
        line(g, depth + 1, "cs[t] = 0.0;");
        line(g, depth, "}");
    } else {
        line(g, depth, "%s accv[%d];", T, W);
        if (g->arg) line(g, depth, "int64_t biv[%d];", W);
        line(g, depth, "for (int64_t t = 0; t < nt; t++) {");
        line(g, depth + 1, "accv[t] = %s;", init_value(s));
        if (g->arg) line(g, depth + 1, "biv[t] = -1;");
        line(g, depth, "}");
    }
    for (int32_t i = 0; i < s->nin; i++)
        line(g, depth, "const int64_t ts%d = sj%d_%d;", i, i, L);
    line(g, depth, "{");
    mt_status st = emit_chunked(g, depth + 1);
    line(g, depth, "}");
    if (g->pairwise) {
        line(g, depth, "for (int64_t t = 0; t < nt; t++) cs[t] += bs[t];");
        line(g, depth, "const double *accv = cs;");
    }
    line(g, depth, "const int64_t pj = p * (npart / P) + j;");
    line(g, depth, "for (int64_t t = 0; t < nt; t++) {");
    line(g, depth + 1, "const %s acc = accv[t];", T);
    if (g->arg) line(g, depth + 1, "const int64_t bi = biv[t];");
    line(g, depth + 1, "if (mode == %d) {", MT__RMODE_PARTIAL);
    line(g, depth + 2, "((%s%s *)ptmp)[pj + t] = acc;", g->G, T);
    if (g->arg) line(g, depth + 2, "((%sint64_t *)ptmp)[npart + pj + t] = bi;", g->G);
    line(g, depth + 2, "continue;");
    line(g, depth + 1, "}");
    char extra[32];
    snprintf(extra, sizeof extra, " + t * so_%d", L);
    emit_po(g, depth + 1, extra);
    emit_final(g, depth + 1);
    line(g, depth, "}");
    return st;
}

/* The work item's body: w -> (j, p), kept offsets, then combine or reduce a chunk. */
static mt_status emit_body(rgen *g, int depth)
{
    const mt__rsig *s = g->sig;
    emit_work_split(g, depth);
    line(g, depth, "if (mode == %d) {", MT__RMODE_COMBINE);
    emit_combine(g, depth + 1);
    line(g, depth + 1, "continue;");
    line(g, depth, "}");
    if (s->tiled) return emit_tiled(g, depth);
    const char *T = state_type(s);
    if (g->pairwise) {
        line(g, depth, "double stk[64];");
        line(g, depth, "int top = 0;");
        line(g, depth, "int64_t nb = 0, bc = 0;");
        line(g, depth, "double bs = 0.0;");
    } else {
        line(g, depth, "%s acc = %s;", T, init_value(s));
        if (g->arg) line(g, depth, "int64_t bi = -1;");
    }
    line(g, depth, "{");
    mt_status st = s->interleave ? emit_interleaved(g, depth + 1) : emit_chunked(g, depth + 1);
    line(g, depth, "}");
    if (g->pairwise) {
        line(g, depth, "double acc = bs;");
        line(g, depth, "while (top > 0) acc = stk[--top] + acc;");
    }
    line(g, depth, "if (mode == %d) {", MT__RMODE_PARTIAL);
    line(g, depth + 1, "((%s%s *)ptmp)[w] = acc;", g->G, T);
    if (g->arg) line(g, depth + 1, "((%sint64_t *)ptmp)[npart + w] = bi;", g->G);
    line(g, depth + 1, "continue;");
    line(g, depth, "}");
    emit_po(g, depth, "");
    emit_final(g, depth);
    return st;
}

/* The list of int64 scalar names in argument order. */
static void scalar_names(const mt__rsig *s, char (*names)[24], int32_t *count)
{
    int32_t n = 0;
    static const char *const fixed[] = {"nwork", "mode", "P", "C", "K", "npart"};
    for (int32_t t = 0; t < 6; t++)
        snprintf(names[n++], 24, "%s", fixed[t]);
    for (int32_t t = 0; t < s->ndj; t++)
        snprintf(names[n++], 24, "dj%d", t);
    for (int32_t t = 0; t < s->ndk; t++)
        snprintf(names[n++], 24, "dk%d", t);
    for (int32_t i = 0; i < s->nin; i++) {
        for (int32_t t = 0; t < s->ndj; t++)
            snprintf(names[n++], 24, "sj%d_%d", i, t);
        for (int32_t t = 0; t < s->ndk; t++)
            snprintf(names[n++], 24, "sk%d_%d", i, t);
    }
    for (int32_t t = 0; t < s->ndj; t++)
        snprintf(names[n++], 24, "so_%d", t);
    *count = n;
}

#define MAX_SCALARS (6 + 3 * MT_MAX_DIMS + MT__RED_MAX_IN * 2 * MT_MAX_DIMS)

static mt_status emit_entry(rgen *g, const char *entry, const mt_dtype *pdt)
{
    const mt__rsig *s = g->sig;
    int32_t nin = s->nin, nsc = 0;
    char names[MAX_SCALARS][24];
    scalar_names(s, names, &nsc);
    if (s->lang == MT_KLANG_C) {
        line(g, 0, "void %s(void **args, int64_t begin, int64_t end)", entry);
        line(g, 0, "{");
        for (int32_t i = 0; i < nin; i++)
            line(g, 1, "const char *p%d = (const char *)args[%d];", i, i);
        line(g, 1, "char *pout = (char *)args[%d];", nin);
        line(g, 1, "char *ptmp = (char *)args[%d];", nin + 1);
        for (int32_t t = 0; t < nsc; t++)
            line(g, 1, "const int64_t %s = *(const int64_t *)args[%d];", names[t], nin + 2 + t);
        for (int32_t k = 0; k < s->nparams; k++)
            if (pdt[k] != MT_DTYPE_COUNT)
                line(g, 1, "const %s prm%d = *(const %s *)args[%d];",
                     mt__kgen_param_type(pdt[k], s->lang), k, mt__kgen_param_type(pdt[k], s->lang),
                     nin + 2 + nsc + k);
        for (int32_t t = 0; t < nsc; t++)
            line(g, 1, "(void)%s;", names[t]);
        line(g, 1, "for (int64_t w = begin; w < end; w++) {");
    } else {
        bool cl = s->lang == MT_KLANG_OPENCL;
        if (cl)
            mt_strbuf_appendf(g->sb, "__kernel void %s(", entry);
        else
            mt_strbuf_appendf(g->sb, "extern \"C\" __global__ void %s(", entry);
        for (int32_t i = 0; i < nin + 2; i++) {
            char nm[16];
            if (i < nin)
                snprintf(nm, sizeof nm, "p%d", i);
            else
                snprintf(nm, sizeof nm, "%s", i == nin ? "pout" : "ptmp");
            const char *cq = i < nin ? "const " : "";
            if (cl)
                mt_strbuf_appendf(g->sb, "%s__global %schar *%s_, ulong %s_off", i ? ", " : "", cq,
                                  nm, nm);
            else
                mt_strbuf_appendf(g->sb, "%s%schar *%s", i ? ", " : "", cq, nm);
        }
        for (int32_t t = 0; t < nsc; t++)
            mt_strbuf_appendf(g->sb, ", int64_t %s", names[t]);
        for (int32_t k = 0; k < s->nparams; k++) {
            mt_dtype dt = pdt[k] == MT_DTYPE_COUNT ? MT_INT64 : pdt[k];
            mt_strbuf_appendf(g->sb, ", %s prm%d", mt__kgen_param_type(dt, s->lang), k);
        }
        mt_strbuf_append(g->sb, ")\n{\n");
        if (cl) {
            for (int32_t i = 0; i < nin; i++)
                line(g, 1, "__global const char *p%d = p%d_ + p%d_off;", i, i, i);
            line(g, 1, "__global char *pout = pout_ + pout_off;");
            line(g, 1, "__global char *ptmp = ptmp_ + ptmp_off;");
            line(g, 1, "for (int64_t w = get_global_id(0); w < nwork; w += get_global_size(0)) {");
        } else {
            line(g, 1,
                 "for (int64_t w = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; "
                 "w < nwork; w += (int64_t)gridDim.x * blockDim.x) {");
        }
    }
    if (g->vec) line(g, 1, "double vb[%d];", MTR_VBLOCK);
    mt_status st = emit_body(g, 2);
    line(g, 1, "}");
    line(g, 0, "}");
    return st;
}

mt_status mt__reduce_source(mt_strbuf *sb, const mt__rsig *sig, const char *entry)
{
    mt_dtype pdt[64];
    if (sig->nparams > 64 || sig->nin > MT__RED_MAX_IN || sig->ndk < 1)
        return mt_err_set(MT_ERR_INTERNAL, "reduce kernel: bad signature");
    mt_status st = mt__kexpr_param_types(sig->map, sig->nparams, pdt);
    if (st != MT_OK) return st;
    rgen g = {
        .sb = sb,
        .sig = sig,
        .G = sig->lang == MT_KLANG_OPENCL ? "__global " : "",
        .pairwise = sig->acc == 'd' && (sig->op == MT_REDUCE_SUM || sig->op == MT_REDUCE_MEAN),
        .arg = sig->op == MT_REDUCE_ARGMAX || sig->op == MT_REDUCE_ARGMIN,
        .px = sig->tiled ? "y" : "x",
        .ps = sig->tiled ? "ts" : "xs",
    };
    g.vec = sig->lang == MT_KLANG_C && sig->acc == 'd' && !sig->tiled &&
            (sig->op == MT_REDUCE_MAX || sig->op == MT_REDUCE_MIN || g.arg);
    if ((sig->tiled && (sig->lang == MT_KLANG_CUDA || sig->ndj < 1 || sig->tile < 1)) ||
        (sig->interleave && sig->ndk != 1))
        return mt_err_set(MT_ERR_INTERNAL, "reduce kernel: bad signature");
    if (sig->lang == MT_KLANG_OPENCL) {
        bool f64 = sig->acc == 'd' || mt__kexpr_uses_f64(sig->map) || sig->out_dt == MT_FLOAT64;
        for (int32_t i = 0; i < sig->nin; i++)
            f64 = f64 || sig->in_dt[i] == MT_FLOAT64;
        if (!f64) mt_strbuf_append(sb, "#define MT_NO_FP64 1\n");
    }
    mt__kgen_prelude(sb, sig->lang);
    if (g.vec) {
        mt_strbuf_append(sb, "typedef double mtr_vd __attribute__((vector_size(32)));\n"
                             "typedef int64_t mtr_vl __attribute__((vector_size(32)));\n"
                             "#define MTR_VSEL(c, a, b) ((mtr_vd)(((mtr_vl)(a) & (c)) | "
                             "((mtr_vl)(b) & ~(c))))\n");
    }
    mt_strbuf_appendf(sb, "/* reduce %s over %s -> %s */\n", mt_reduce_op_name(sig->op),
                      mt_dtype_name(sig->map_dt), mt_dtype_name(sig->out_dt));
    st = emit_entry(&g, entry, pdt);
    if (st != MT_OK) return st;
    return mt_strbuf_status(sb);
}

void mt__reduce_key(mt_strbuf *sb, const mt__rsig *sig)
{
    static const char *const langs[] = {"c", "opencl", "cuda"};
    mt_strbuf_appendf(sb, "reduce2|%s|%s|%c|%s>%s|nin%d:", langs[sig->lang % 3],
                      mt_reduce_op_name(sig->op), sig->acc, mt_dtype_name(sig->map_dt),
                      mt_dtype_name(sig->out_dt), (int)sig->nin);
    for (int32_t i = 0; i < sig->nin; i++)
        mt_strbuf_appendf(sb, "%s%c,", mt_dtype_name(sig->in_dt[i]), sig->inner[i]);
    mt_strbuf_appendf(sb, "|j%d|k%d|%s|W%d|L%d|np%d|", (int)sig->ndj, (int)sig->ndk,
                      sig->tiled        ? "ti"
                      : sig->interleave ? "il"
                                        : "ch",
                      sig->tiled ? (int)sig->tile : 0, (int)sig->lanes, (int)sig->nparams);
    mt__kgen_key(sb, sig->map);
}
