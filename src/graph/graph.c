/* The graph object: arena, sticky errors, provenance origins, hash-consed node creation and
 * read-only accessors, plus type and index helpers and the leaf builders (placeholders and
 * constants). Every other builder ends in mt__create, which runs the op's type inference,
 * looks the (op, attributes, operands) key up in the hash-consing table and only appends a
 * node when it is new; that keeps creation order a topological order and makes equal
 * subexpressions one node without a merge pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- types, shapes, indexes */

mt_type mt_type_make(mt_dtype dt, int32_t ndim, const int64_t *shape)
{
    mt_type t;
    memset(&t, 0, sizeof(t));
    t.dtype = dt;
    if (ndim < 0) ndim = 0;
    if (ndim > MT_MAX_DIMS) ndim = MT_MAX_DIMS;
    t.ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) t.shape[i] = shape ? shape[i] : MT_DIM_UNKNOWN;
    return t;
}

bool mt_type_equal(const mt_type *a, const mt_type *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->weak != b->weak) return false;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int64_t mt_type_numel(const mt_type *t)
{
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return -1;
        n *= t->shape[i];
    }
    return n;
}

bool mt_type_is_static(const mt_type *t)
{
    return mt_type_numel(t) >= 0;
}

void mt_shape_format(int32_t ndim, const int64_t *shape, mt_strbuf *sb)
{
    mt_strbuf_append(sb, "(");
    for (int32_t i = 0; i < ndim; i++) {
        if (i) mt_strbuf_append(sb, ", ");
        if (shape[i] < 0)
            mt_strbuf_append(sb, "?");
        else
            mt_strbuf_appendf(sb, "%lld", (long long)shape[i]);
    }
    mt_strbuf_append(sb, ndim == 1 ? ",)" : ")");
}

void mt_type_format(const mt_type *t, mt_strbuf *sb)
{
    mt_strbuf_appendf(sb, "%s[", mt_dtype_name(t->dtype));
    for (int32_t i = 0; i < t->ndim; i++) {
        if (i) mt_strbuf_append(sb, ",");
        if (t->shape[i] < 0)
            mt_strbuf_append(sb, "?");
        else
            mt_strbuf_appendf(sb, "%lld", (long long)t->shape[i]);
    }
    mt_strbuf_append(sb, "]");
    if (t->weak) mt_strbuf_append(sb, " weak");
}

const char *mt__shape_str(int32_t ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t k = 0;
    if (len == 0) return buf;
    buf[0] = 0;
#define APP(...)                                                                  \
    do {                                                                          \
        if (k < len) {                                                            \
            int w = snprintf(buf + k, len - k, __VA_ARGS__);                      \
            if (w > 0) k += (size_t)w;                                            \
        }                                                                         \
    } while (0)
    APP("(");
    for (int32_t i = 0; i < ndim; i++) {
        if (i) APP(", ");
        if (shape[i] < 0)
            APP("?");
        else
            APP("%lld", (long long)shape[i]);
    }
    APP(ndim == 1 ? ",)" : ")");
#undef APP
    return buf;
}

mt_idx mt_idx_slice(int64_t start, int64_t stop, int64_t step)
{
    mt_idx r;
    memset(&r, 0, sizeof(r));
    r.kind = MT_IDX_SLICE;
    r.start = start;
    r.stop = stop;
    r.step = step;
    return r;
}

mt_idx mt_idx_all(void)
{
    return mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, MT_IDX_NONE);
}

mt_idx mt_idx_int(int64_t index)
{
    mt_idx r = mt_idx_slice(index, MT_IDX_NONE, MT_IDX_NONE);
    r.kind = MT_IDX_INT;
    return r;
}

mt_idx mt_idx_newaxis(void)
{
    mt_idx r = mt_idx_all();
    r.kind = MT_IDX_NEWAXIS;
    return r;
}

mt_idx mt_idx_ellipsis(void)
{
    mt_idx r = mt_idx_all();
    r.kind = MT_IDX_ELLIPSIS;
    return r;
}

int64_t mt__broadcast_dim(int64_t a, int64_t b, bool *rtcheck)
{
    if (a == 1) return b;
    if (b == 1) return a;
    if (a < 0 || b < 0) {
        *rtcheck = true;
        return a < 0 ? b : a; /* unknown vs k -> k; unknown vs unknown -> unknown */
    }
    return a == b ? a : -2;
}

/* ---------------------------------------------------------------- lifecycle and errors */

mt_status mt_graph_new(mt_graph **out)
{
    *out = NULL;
    mt_graph *g = mt_calloc(1, sizeof(*g));
    if (!g) return mt_err_set(MT_ERR_NOMEM, "graph_new: out of memory");
    g->table_cap = 256;
    g->table = mt_calloc((size_t)g->table_cap, sizeof(int32_t));
    if (!g->table) {
        mt_free(g);
        return mt_err_set(MT_ERR_NOMEM, "graph_new: out of memory");
    }
    g->origin.source = -1;
    *out = g;
    return MT_OK;
}

void mt_graph_free(mt_graph *g)
{
    if (!g) return;
    for (int32_t i = 0; i < g->nbodies; i++) mt__scan_body_release(g->bodies[i]);
    mt_free(g->bodies);
    for (int32_t i = 0; i < g->npages; i++) mt_free(g->pages[i]);
    mt_free(g->pages);
    mt_free(g->table);
    mt_free(g->sources);
    mt_free(g->error);
    mt_arena_free(&g->arena);
    mt_free(g);
}

mt_status mt_graph_status(const mt_graph *g)
{
    return g ? g->status : MT_ERR_INVALID;
}

const char *mt_graph_last_error(const mt_graph *g)
{
    return g && g->error ? g->error : "";
}

void mt_graph_clear_error(mt_graph *g)
{
    if (!g) return;
    g->status = MT_OK;
    mt_free(g->error);
    g->error = NULL;
}

int32_t mt_graph_size(const mt_graph *g)
{
    return g ? g->n : 0;
}

bool mt_graph_valid(const mt_graph *g, mt_var v)
{
    return mt__graph_node(g, v) != NULL;
}

size_t mt_graph_mem_used(const mt_graph *g)
{
    if (!g) return 0;
    return sizeof(*g) + (size_t)g->npages * (sizeof(mt__node *) + MT__PAGE_SIZE * sizeof(mt__node)) +
           (size_t)g->table_cap * sizeof(int32_t) + g->arena.reserved;
}

void mt_graph_set_seed(mt_graph *g, uint64_t seed)
{
    if (g) g->seed = seed;
}

uint64_t mt_graph_seed(const mt_graph *g)
{
    return g ? g->seed : 0;
}

/* Appends " (at file:line)" / " (from 'text' col a-b via r...)" for a provenance. */
static void append_prov(const mt_graph *g, const mt_provenance *p, mt_strbuf *sb)
{
    bool any = false;
    if (p->source >= 0 && p->source < g->nsources) {
        const char *text = g->sources[p->source];
        size_t len = strlen(text);
        int32_t b = p->col_begin < 1 ? 1 : p->col_begin;
        int32_t e = p->col_end < b ? b : p->col_end;
        if ((size_t)b <= len) {
            size_t n = (size_t)e > len ? len - (size_t)(b - 1) : (size_t)(e - b + 1);
            mt_strbuf_append(sb, "from '");
            mt_strbuf_appendn(sb, text + b - 1, n);
            mt_strbuf_appendf(sb, "' col %d-%d", (int)b, (int)e);
        } else {
            mt_strbuf_appendf(sb, "from source %d col %d-%d", (int)p->source, (int)b, (int)e);
        }
        any = true;
    }
    if (p->file) {
        mt_strbuf_appendf(sb, "%sat %s:%d", any ? " " : "", p->file, (int)p->line);
        any = true;
    }
    if (p->nrules > 0) {
        mt_strbuf_append(sb, any ? " via " : "via ");
        for (int32_t i = 0; i < p->nrules; i++)
            mt_strbuf_appendf(sb, "%s%s", i ? ", " : "", p->rules[i]);
    }
}

void mt_graph_format_provenance(const mt_graph *g, mt_var v, mt_strbuf *sb)
{
    const mt__node *n = mt__graph_node(g, v);
    if (n) append_prov(g, &n->prov, sb);
}

/* Records msg (already formatted) with the current origin appended. */
static void record_error(mt_graph *g, mt_status code, const char *msg)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_append(&sb, msg);
    if (g && (g->origin.file || g->origin.source >= 0 || g->origin.nrules)) {
        mt_strbuf_append(&sb, " (");
        append_prov(g, &g->origin, &sb);
        mt_strbuf_append(&sb, ")");
    }
    const char *text = sb.data ? sb.data : msg;
    mt_err_set(code, "%s", text);
    if (g && g->status == MT_OK) {
        g->status = code;
        mt_free(g->error);
        g->error = mt_strdup(text);
    }
    mt_strbuf_deinit(&sb);
}

mt_var mt__fail(mt_graph *g, mt_status code, const char *fmt, ...)
{
    char msg[MT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    record_error(g, code, msg);
    return MT_VAR_NONE;
}

mt_status mt__fail_status(mt_graph *g, mt_status code, const char *fmt, ...)
{
    char msg[MT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    record_error(g, code, msg);
    return code;
}

mt_var mt__fail_current(mt_graph *g)
{
    char msg[MT_ERR_MSG_MAX];
    mt_status code = mt_last_status();
    if (code == MT_OK) code = MT_ERR_INTERNAL;
    snprintf(msg, sizeof(msg), "%s", mt_last_error());
    record_error(g, code, msg);
    return MT_VAR_NONE;
}

bool mt__check_vars(mt_graph *g, const char *opname, int32_t n, const mt_var *vs)
{
    if (!g) {
        mt_err_set(MT_ERR_INVALID, "%s: graph is NULL", opname);
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        if (vs[i] == MT_VAR_NONE) return false; /* earlier failure already recorded */
        if (!mt__graph_node(g, vs[i])) {
            mt__fail(g, MT_ERR_INVALID, "%s: operand %d is not a variable of this graph (handle %d)",
                     opname, (int)i, (int)vs[i]);
            return false;
        }
    }
    return true;
}

bool mt__norm_axis(mt_graph *g, const char *opname, int32_t axis, int32_t ndim, int32_t *out)
{
    int32_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
        mt__fail(g, MT_ERR_INVALID, "%s: axis %d is out of range for %d dimensions", opname,
                 (int)axis, (int)ndim);
        return false;
    }
    *out = a;
    return true;
}

bool mt__norm_axes(mt_graph *g, const char *opname, int32_t naxes, const int32_t *axes,
                   int32_t ndim, int32_t *nout, int32_t *out)
{
    bool seen[MT_MAX_DIMS] = {false};
    if (naxes <= 0 || !axes) {
        for (int32_t i = 0; i < ndim; i++) out[i] = i;
        *nout = ndim;
        return true;
    }
    if (naxes > MT_MAX_DIMS) {
        mt__fail(g, MT_ERR_INVALID, "%s: %d axes given, at most %d", opname, (int)naxes,
                 MT_MAX_DIMS);
        return false;
    }
    for (int32_t i = 0; i < naxes; i++) {
        int32_t a;
        if (!mt__norm_axis(g, opname, axes[i], ndim, &a)) return false;
        if (seen[a]) {
            mt__fail(g, MT_ERR_INVALID, "%s: axis %d is repeated", opname, (int)axes[i]);
            return false;
        }
        seen[a] = true;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < ndim; i++)
        if (seen[i]) out[k++] = i;
    *nout = k;
    return true;
}

/* ---------------------------------------------------------------- origins */

int32_t mt_graph_add_source(mt_graph *g, const char *text)
{
    if (!g || !text) return -1;
    if (g->nsources == g->sources_cap) {
        int32_t cap = g->sources_cap ? 2 * g->sources_cap : 8;
        char **s = mt_realloc(g->sources, (size_t)cap * sizeof(char *));
        if (!s) {
            mt__fail(g, MT_ERR_NOMEM, "graph_add_source: out of memory");
            return -1;
        }
        g->sources = s;
        g->sources_cap = cap;
    }
    char *copy = mt_arena_strdup(&g->arena, text);
    if (!copy) {
        mt__fail(g, MT_ERR_NOMEM, "graph_add_source: out of memory");
        return -1;
    }
    g->sources[g->nsources] = copy;
    return g->nsources++;
}

const char *mt_graph_source_text(const mt_graph *g, int32_t source)
{
    if (!g || source < 0 || source >= g->nsources) return NULL;
    return g->sources[source];
}

void mt_graph_set_origin(mt_graph *g, const char *file, int32_t line)
{
    if (!g) return;
    /* The same __FILE__ literal comes back on every MT_AT call: reuse the last copy. */
    const char *copy = g->origin.file;
    if (file && (!copy || strcmp(copy, file) != 0)) copy = mt_arena_strdup(&g->arena, file);
    memset(&g->origin, 0, sizeof(g->origin));
    g->origin.source = -1;
    g->origin.file = file ? copy : NULL;
    g->origin.line = line;
}

mt_graph *mt_graph_at(mt_graph *g, const char *file, int32_t line)
{
    mt_graph_set_origin(g, file, line);
    return g;
}

void mt_graph_set_origin_span(mt_graph *g, int32_t source, int32_t col_begin, int32_t col_end)
{
    if (!g) return;
    memset(&g->origin, 0, sizeof(g->origin));
    g->origin.source = source;
    g->origin.col_begin = col_begin;
    g->origin.col_end = col_end;
}

void mt_graph_set_origin_from(mt_graph *g, mt_var v, const char *rule)
{
    if (!g) return;
    const mt__node *n = mt__graph_node(g, v);
    if (!n) {
        mt_graph_clear_origin(g);
        return;
    }
    g->origin = n->prov;
    if (!rule) return;
    const char **rules = mt_arena_alloc(&g->arena, (size_t)(n->prov.nrules + 1) * sizeof(char *),
                                         _Alignof(char *));
    const char *r = mt_arena_strdup(&g->arena, rule);
    if (!rules || !r) {
        mt__fail(g, MT_ERR_NOMEM, "graph_set_origin_from: out of memory");
        return;
    }
    for (int32_t i = 0; i < n->prov.nrules; i++) rules[i] = n->prov.rules[i];
    rules[n->prov.nrules] = r;
    g->origin.rules = rules;
    g->origin.nrules = n->prov.nrules + 1;
}

void mt_graph_clear_origin(mt_graph *g)
{
    if (!g) return;
    memset(&g->origin, 0, sizeof(g->origin));
    g->origin.source = -1;
}

/* ---------------------------------------------------------------- attribute canonicalization */

void mt__attrs_canon(mt_op op, const mt_op_attrs *in, mt_op_attrs *out)
{
    memset(out, 0, sizeof(*out));
    if (!in || (unsigned)op >= MT_OP_COUNT) return;
    uint32_t f = mt__op_table[op].attr_fields;
    if (f & MT__A_SOP) out->sop = in->sop;
    if (f & MT__A_REDUCE) out->reduce = in->reduce;
    if (f & MT__A_DTYPE) out->dtype = in->dtype;
    if (op == MT_OP_ELEMWISE && in->sop != MT_SOP_CAST) out->dtype = (mt_dtype)0;
    if (f & MT__A_AXES) {
        out->naxes = in->naxes < 0 ? 0 : in->naxes > MT_MAX_DIMS ? MT_MAX_DIMS : in->naxes;
        for (int32_t i = 0; i < out->naxes; i++) out->axes[i] = in->axes[i];
    }
    if (f & MT__A_KEEPDIMS) out->keepdims = in->keepdims;
    if (f & MT__A_PERM) {
        out->nperm = in->nperm < 0 ? 0 : in->nperm > MT_MAX_DIMS ? MT_MAX_DIMS : in->nperm;
        for (int32_t i = 0; i < out->nperm; i++) out->perm[i] = in->perm[i];
    }
    if (f & MT__A_SHAPE) {
        out->nshape = in->nshape < 0 ? 0 : in->nshape > MT_MAX_DIMS ? MT_MAX_DIMS : in->nshape;
        for (int32_t i = 0; i < out->nshape; i++) out->shape[i] = in->shape[i];
    }
    if (f & MT__A_IDX) {
        out->nidx = in->nidx < 0 ? 0 : in->nidx > MT_MAX_DIMS ? MT_MAX_DIMS : in->nidx;
        for (int32_t i = 0; i < out->nidx; i++) {
            out->idx[i].kind = in->idx[i].kind;
            out->idx[i].start = in->idx[i].start;
            out->idx[i].stop = in->idx[i].kind == MT_IDX_INT ? MT_IDX_NONE : in->idx[i].stop;
            out->idx[i].step = in->idx[i].kind == MT_IDX_INT ? MT_IDX_NONE : in->idx[i].step;
        }
    }
    if (f & MT__A_GEMM) {
        out->alpha = in->alpha;
        out->beta = in->beta;
        out->trans_a = in->trans_a;
        out->trans_b = in->trans_b;
    }
    if (f & MT__A_RANGE) {
        out->start = in->start;
        out->stop = in->stop;
        out->step = in->step;
    }
    if (f & MT__A_PARAMS) {
        out->p0 = in->p0;
        out->p1 = in->p1;
    }
    if (f & MT__A_RANDOM) {
        out->dist = in->dist;
        out->seed = in->seed;
        out->stream = in->stream;
    }
    if (f & MT__A_WINDOW) {
        out->win = in->win;
        bool pool = op == MT_OP_POOL2D || op == MT_OP_POOL2D_GRAD;
        if (!pool) out->win.mode = out->win.ceil_mode = 0;
        if (pool) out->win.ceil_mode = in->win.ceil_mode != 0;
        if (op == MT_OP_CONV2D || op == MT_OP_CONV2D_GRAD_INPUT)
            out->win.size[0] = out->win.size[1] = 0;
    }
    if (f & MT__A_DEPTH) out->depth = in->depth;
    if (f & MT__A_BUCKET) out->bucket = in->bucket;
    if (f & MT__A_BODY) {
        out->body = in->body;
        out->output = in->output;
    }
    if (f & MT__A_UID) out->uid = in->uid;
    if (f & MT__A_CONST) {
        out->data = in->data;
        out->nbytes = in->nbytes;
        out->data_hash = in->data_hash;
        out->weak = in->weak;
    }
}

/* ---------------------------------------------------------------- hash-consing */

#define ATTR_HEAD offsetof(mt_op_attrs, data)
#define ATTR_TAIL offsetof(mt_op_attrs, nbytes)

static uint64_t key_hash(mt_op op, const mt_op_attrs *a, int32_t nin, const mt_var *in)
{
    uint64_t h = mt_hash64(a, ATTR_HEAD, 0x6d74677261706831ull ^ (uint64_t)op);
    h = mt_hash64((const char *)a + ATTR_TAIL, sizeof(*a) - ATTR_TAIL, h);
    h = mt_hash64_combine(h, (uint64_t)nin);
    if (nin > 0) h = mt_hash64(in, (size_t)nin * sizeof(mt_var), h);
    return h;
}

static bool key_equal(const mt__node *n, mt_op op, const mt_op_attrs *a, int32_t nin,
                      const mt_var *in)
{
    if (n->op != op || n->nin != nin) return false;
    if (nin > 0 && memcmp(n->in, in, (size_t)nin * sizeof(mt_var)) != 0) return false;
    if (memcmp(&n->attrs, a, ATTR_HEAD) != 0) return false;
    if (memcmp((const char *)&n->attrs + ATTR_TAIL, (const char *)a + ATTR_TAIL,
               sizeof(*a) - ATTR_TAIL) != 0)
        return false;
    if (op == MT_OP_CONST && a->nbytes > 0 && memcmp(n->attrs.data, a->data, a->nbytes) != 0)
        return false;
    return true;
}

static mt_var table_find(const mt_graph *g, uint64_t h, mt_op op, const mt_op_attrs *a,
                         int32_t nin, const mt_var *in)
{
    uint32_t mask = (uint32_t)g->table_cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        mt_var v = g->table[i];
        if (v == 0) return MT_VAR_NONE;
        const mt__node *n = mt__graph_node(g, v);
        if (n->hash == h && key_equal(n, op, a, nin, in)) return v;
    }
}

static void table_put(int32_t *table, int32_t cap, uint64_t h, mt_var v)
{
    uint32_t mask = (uint32_t)cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (table[i]) i = (i + 1) & mask;
    table[i] = v;
}

static bool table_insert(mt_graph *g, mt_var v)
{
    if ((g->table_count + 1) * 2 > g->table_cap) {
        int32_t cap = g->table_cap * 2;
        int32_t *t = mt_calloc((size_t)cap, sizeof(int32_t));
        if (!t) return false;
        for (int32_t i = 0; i < g->table_cap; i++)
            if (g->table[i]) table_put(t, cap, mt__graph_node(g, g->table[i])->hash, g->table[i]);
        mt_free(g->table);
        g->table = t;
        g->table_cap = cap;
    }
    table_put(g->table, g->table_cap, mt__graph_node(g, v)->hash, v);
    g->table_count++;
    return true;
}

bool mt__node_key_equal(const mt__node *a, const mt__node *b)
{
    return key_equal(a, b->op, &b->attrs, b->nin, b->in);
}

uint64_t mt__node_key_hash(const mt__node *n)
{
    return key_hash(n->op, &n->attrs, n->nin, n->in);
}

mt_var mt__table_lookup(const mt_graph *g, const mt__node *n)
{
    return table_find(g, n->hash, n->op, &n->attrs, n->nin, n->in);
}

/* ---------------------------------------------------------------- node creation */

static mt__node *new_node_slot(mt_graph *g, mt_var *v_out)
{
    mt_var v = g->n + 1;
    int32_t page = v >> MT__PAGE_BITS;
    if (page >= g->npages) {
        mt__node **pages = mt_realloc(g->pages, (size_t)(page + 1) * sizeof(mt__node *));
        if (!pages) return NULL;
        g->pages = pages;
        pages[page] = mt_calloc(MT__PAGE_SIZE, sizeof(mt__node));
        if (!pages[page]) return NULL;
        g->npages = page + 1;
    }
    *v_out = v;
    return &g->pages[page][v & (MT__PAGE_SIZE - 1)];
}

/* Runs op's inference on operand types; returns status (thread-local error set). */
static mt_status run_infer(mt_op op, const mt_op_attrs *a, int32_t nin,
                           const mt_type *const *types, mt_type *out, bool *rtcheck)
{
    mt__infer_ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.op = op;
    cx.opname = mt__op_label(op, a);
    cx.attrs = a;
    cx.nin = nin;
    cx.in = types;
    mt_status st = mt__op_table[op].infer(&cx);
    if (st) return st;
    *out = cx.out;
    for (int32_t i = cx.out.ndim; i < MT_MAX_DIMS; i++) out->shape[i] = 0;
    *rtcheck = cx.rtcheck;
    return MT_OK;
}

mt_status mt__infer_node(mt_op op, const mt_op_attrs *a, int32_t nin, const mt_type *const *types,
                         mt_type *out, bool *rtcheck)
{
    return run_infer(op, a, nin, types, out, rtcheck);
}

mt_var mt__create(mt_graph *g, mt_op op, const mt_op_attrs *attrs_in, int32_t nin,
                  const mt_var *in)
{
    if ((unsigned)op >= MT_OP_COUNT)
        return mt__fail(g, MT_ERR_INVALID, "graph: invalid op %d", (int)op);
    const mt_op_info *info = &mt__op_table[op];
    mt_op_attrs a;
    mt__attrs_canon(op, attrs_in, &a);
    const char *label = mt__op_label(op, &a);
    if (nin < info->min_in || (info->max_in >= 0 && nin > info->max_in) || (nin > 0 && !in))
        return mt__fail(g, MT_ERR_INVALID, "%s: %d operands given, expects %d%s", label, (int)nin,
                        (int)info->min_in, info->max_in != info->min_in ? " or more" : "");
    if (!mt__check_vars(g, label, nin, in)) return MT_VAR_NONE;

    if (op == MT_OP_CONST) {
        if (nin == 0 && a.nbytes > 0 && !a.data)
            return mt__fail(g, MT_ERR_INVALID, "const: data is NULL");
        a.data_hash = a.nbytes ? mt_hash64(a.data, a.nbytes, 0x636f6e7374ull) : 0;
    }

    /* type inference */
    const mt_type *tbuf[8];
    const mt_type **types = tbuf;
    if (nin > 8) {
        types = mt_malloc((size_t)nin * sizeof(*types));
        if (!types) return mt__fail(g, MT_ERR_NOMEM, "%s: out of memory", label);
    }
    for (int32_t i = 0; i < nin; i++) types[i] = &mt__graph_node(g, in[i])->type;
    mt_type type;
    bool rtcheck = false;
    mt_status st = run_infer(op, &a, nin, types, &type, &rtcheck);
    if (types != tbuf) mt_free(types);
    if (st) return mt__fail_current(g);
    if (op == MT_OP_CONST) {
        int64_t numel = mt_type_numel(&type);
        if (numel < 0 || (size_t)numel * mt_dtype_size(type.dtype) != a.nbytes)
            return mt__fail(g, MT_ERR_INVALID, "const: %zu bytes of data for %lld elements of %s",
                            a.nbytes, (long long)numel, mt_dtype_name(type.dtype));
    }

    /* hash-consing */
    uint64_t h = key_hash(op, &a, nin, in);
    if (!info->never_merge) {
        mt_var found = table_find(g, h, op, &a, nin, in);
        if (found) return found;
    }

    /* a new loop node: the graph holds its body (kept even if the node fails below) */
    if (op == MT_OP_SCAN && !mt__graph_hold_body(g, (struct mt_scan_body *)a.body))
        return MT_VAR_NONE;
    mt_var v;
    mt__node *n = new_node_slot(g, &v);
    mt_var *ins = nin ? mt_arena_alloc(&g->arena, (size_t)nin * sizeof(mt_var), _Alignof(mt_var))
                      : NULL;
    if (!n || (nin && !ins)) return mt__fail(g, MT_ERR_NOMEM, "%s: out of memory", label);
    if (op == MT_OP_CONST && a.nbytes > 0) {
        void *copy = mt_arena_alloc(&g->arena, a.nbytes, 16);
        if (!copy) return mt__fail(g, MT_ERR_NOMEM, "const: out of memory (%zu bytes)", a.nbytes);
        memcpy(copy, a.data, a.nbytes);
        a.data = copy;
    }
    if (nin) memcpy(ins, in, (size_t)nin * sizeof(mt_var));
    memset(n, 0, sizeof(*n));
    n->op = op;
    n->nin = nin;
    n->in = ins;
    n->flags = rtcheck ? MT_NODE_RTCHECK : 0;
    n->type = type;
    memcpy(&n->attrs, &a, sizeof(a));
    n->prov = g->origin;
    n->hash = h;
    n->nout = 1;
    g->n = v;
    if (!info->never_merge && !table_insert(g, v)) {
        g->n = v - 1;
        return mt__fail(g, MT_ERR_NOMEM, "%s: out of memory", label);
    }
    return v;
}

/* ---------------------------------------------------------------- accessors */

mt_op mt_graph_op(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? n->op : MT_OP_COUNT;
}

int32_t mt_graph_ninputs(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? n->nin : 0;
}

mt_var mt_graph_input(const mt_graph *g, mt_var v, int32_t i)
{
    const mt__node *n = mt__graph_node(g, v);
    return n && i >= 0 && i < n->nin ? n->in[i] : MT_VAR_NONE;
}

const mt_var *mt_graph_inputs(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? n->in : NULL;
}

const mt_type *mt_graph_type(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? &n->type : NULL;
}

const mt_op_attrs *mt_graph_attrs(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? &n->attrs : NULL;
}

uint32_t mt_graph_flags(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? n->flags : 0;
}

const mt_provenance *mt_graph_provenance(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? &n->prov : NULL;
}

const char *mt_graph_op_label(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? mt__op_label(n->op, &n->attrs) : "invalid";
}

const char *mt_graph_name(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n ? n->name : NULL;
}

void mt_graph_set_name(mt_graph *g, mt_var v, const char *name)
{
    mt__node *n = mt__graph_node(g, v);
    if (!n || n->op == MT_OP_INPUT) return; /* placeholder names identify them */
    n->name = name ? mt_arena_strdup(&g->arena, name) : NULL;
}

/* ---------------------------------------------------------------- placeholders and constants */

mt_var mt_graph_placeholder(mt_graph *g, const char *name, mt_dtype dt, int32_t ndim,
                            const int64_t *shape)
{
    if (!g) return MT_VAR_NONE;
    if (name && mt_graph_find_placeholder(g, name))
        return mt__fail(g, MT_ERR_INVALID, "placeholder: name '%s' is already used (v%d)", name,
                        (int)mt_graph_find_placeholder(g, name));
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt__fail(g, MT_ERR_INVALID, "placeholder '%s': ndim %d is out of range [0, %d]",
                        name ? name : "", (int)ndim, MT_MAX_DIMS);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = dt;
    a.nshape = ndim;
    for (int32_t i = 0; i < ndim; i++) a.shape[i] = shape ? shape[i] : MT_DIM_UNKNOWN;
    a.uid = ++g->next_uid;
    mt_var v = mt__create(g, MT_OP_INPUT, &a, 0, NULL);
    if (!v) return v;
    char auto_name[32];
    if (!name) {
        snprintf(auto_name, sizeof(auto_name), "in%llu", (unsigned long long)a.uid);
        name = auto_name;
    }
    mt__graph_node(g, v)->name = mt_arena_strdup(&g->arena, name);
    return v;
}

mt_var mt_graph_find_placeholder(const mt_graph *g, const char *name)
{
    if (!g || !name) return MT_VAR_NONE;
    for (mt_var v = 1; v <= g->n; v++) {
        const mt__node *n = mt__graph_node(g, v);
        if (n->op == MT_OP_INPUT && n->name && strcmp(n->name, name) == 0) return v;
    }
    return MT_VAR_NONE;
}

static mt_var make_const(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                         const void *data, bool weak)
{
    if (!g) return MT_VAR_NONE;
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt__fail(g, MT_ERR_INVALID, "constant: ndim %d is out of range [0, %d]", (int)ndim,
                        MT_MAX_DIMS);
    if (!mt_dtype_valid(dt))
        return mt__fail(g, MT_ERR_DTYPE, "constant: invalid dtype %d", (int)dt);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = dt;
    a.nshape = ndim;
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (!shape || shape[i] < 0) {
            char buf[128];
            return mt__fail(g, MT_ERR_SHAPE, "constant: shape %s must be static",
                            shape ? mt__shape_str(ndim, shape, buf, sizeof(buf)) : "NULL");
        }
        a.shape[i] = shape[i];
        numel *= shape[i];
    }
    a.nbytes = (size_t)numel * mt_dtype_size(dt);
    a.data = data;
    a.weak = weak;
    return mt__create(g, MT_OP_CONST, &a, 0, NULL);
}

mt_var mt_graph_constant(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                         const void *data)
{
    return make_const(g, dt, ndim, shape, data, false);
}

mt_var mt_graph_scalar(mt_graph *g, mt_dtype dt, double value)
{
    unsigned char buf[16] = {0};
    mt_scalar s = mt_scalar_f64(value);
    if (!mt_dtype_valid(dt)) return g ? mt__fail(g, MT_ERR_DTYPE, "scalar: invalid dtype %d", (int)dt) : 0;
    mt_scalar_store(&s, dt, buf);
    return make_const(g, dt, 0, NULL, buf, false);
}

mt_var mt_graph_scalar_int(mt_graph *g, mt_dtype dt, int64_t value)
{
    unsigned char buf[16] = {0};
    mt_scalar s = mt_scalar_i64(value);
    if (!mt_dtype_valid(dt)) return g ? mt__fail(g, MT_ERR_DTYPE, "scalar: invalid dtype %d", (int)dt) : 0;
    mt_scalar_store(&s, dt, buf);
    return make_const(g, dt, 0, NULL, buf, false);
}

mt_var mt_graph_literal_int(mt_graph *g, int64_t value)
{
    return make_const(g, MT_INT64, 0, NULL, &value, true);
}

mt_var mt_graph_literal_float(mt_graph *g, double value)
{
    return make_const(g, MT_FLOAT64, 0, NULL, &value, true);
}

mt_scalar mt__const_elem(const mt__node *n, int64_t i)
{
    mt_scalar s;
    memset(&s, 0, sizeof(s));
    mt_dtype dt = n->type.dtype;
    const unsigned char *p = (const unsigned char *)n->attrs.data + (size_t)i * mt_dtype_size(dt);
    switch (mt_dtype_kind(dt)) {
    case 'b':
        s = mt_scalar_bool(*p != 0);
        break;
    case 'i': {
        int64_t v = 0;
        mt_dtype_convert(&v, MT_INT64, 8, p, dt, 0, 1);
        s = mt_scalar_i64(v);
        break;
    }
    case 'u': {
        uint64_t v = 0;
        mt_dtype_convert(&v, MT_UINT64, 8, p, dt, 0, 1);
        s = mt_scalar_u64(v);
        break;
    }
    default: {
        double v = 0;
        mt_dtype_convert(&v, MT_FLOAT64, 8, p, dt, 0, 1);
        s = mt_scalar_f64(v);
        break;
    }
    }
    s.dtype = dt;
    return s;
}

mt_status mt__infer_leaf(mt__infer_ctx *cx)
{
    const mt_op_attrs *a = cx->attrs;
    const char *what = cx->op == MT_OP_INPUT ? "placeholder" : "constant";
    if (!mt_dtype_valid(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: invalid dtype %d", what, (int)a->dtype);
    if (a->nshape < 0 || a->nshape > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "%s: ndim %d is out of range", what, (int)a->nshape);
    for (int32_t i = 0; i < a->nshape; i++) {
        if (a->shape[i] < (cx->op == MT_OP_INPUT ? -1 : 0)) {
            char buf[128];
            return mt_err_set(MT_ERR_SHAPE, "%s: invalid shape %s", what,
                              mt__shape_str(a->nshape, a->shape, buf, sizeof(buf)));
        }
    }
    cx->out = mt_type_make(a->dtype, a->nshape, a->shape);
    cx->out.weak = cx->op == MT_OP_CONST && a->weak;
    if (cx->out.weak && a->nshape != 0)
        return mt_err_set(MT_ERR_INVALID, "constant: weak literals must be 0-d");
    return MT_OK;
}
