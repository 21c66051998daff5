/* Printers: the text form (one line per node, with attributes, type, run-time-check marker
 * and provenance; what `mltrain eval --print-graph` shows) and Graphviz dot. Both walk the
 * outputs' subgraph in creation order, which is a topological order. */
#include <math.h>
#include <string.h>

#include "graph_impl.h"

static void append_int_list(mt_strbuf *sb, int32_t n, const int32_t *v)
{
    mt_strbuf_append(sb, "[");
    for (int32_t i = 0; i < n; i++) mt_strbuf_appendf(sb, "%s%d", i ? "," : "", (int)v[i]);
    mt_strbuf_append(sb, "]");
}

static void append_bound(mt_strbuf *sb, int64_t v)
{
    if (v != MT_IDX_NONE) mt_strbuf_appendf(sb, "%lld", (long long)v);
}

static void append_scalar(mt_strbuf *sb, const mt_scalar *s)
{
    switch (mt_dtype_kind(s->dtype)) {
    case 'b': mt_strbuf_append(sb, s->v.b ? "True" : "False"); break;
    case 'i': mt_strbuf_appendf(sb, "%lld", (long long)s->v.i); break;
    case 'u': mt_strbuf_appendf(sb, "%llu", (unsigned long long)s->v.u); break;
    default:
        if (isnan(s->v.f))
            mt_strbuf_append(sb, "nan");
        else if (isinf(s->v.f))
            mt_strbuf_append(sb, s->v.f > 0 ? "inf" : "-inf");
        else
            mt_strbuf_appendf(sb, "%.9g", s->v.f);
        break;
    }
}

static void append_const(mt_strbuf *sb, const mt__node *n)
{
    int64_t numel = mt_type_numel(&n->type);
    if (numel > 8) {
        mt_strbuf_appendf(sb, " <%lld elements #%08llx>", (long long)numel,
                          (unsigned long long)(n->attrs.data_hash & 0xffffffffull));
        return;
    }
    mt_strbuf_append(sb, n->type.ndim ? " [" : " ");
    for (int64_t i = 0; i < numel; i++) {
        mt_scalar s = mt__const_elem(n, i);
        if (i) mt_strbuf_append(sb, ", ");
        append_scalar(sb, &s);
    }
    if (n->type.ndim) mt_strbuf_append(sb, "]");
}

/* "{...}" attributes after the op label. */
static void append_attrs(mt_strbuf *sb, const mt__node *n)
{
    const mt_op_attrs *a = &n->attrs;
    switch (n->op) {
    case MT_OP_ELEMWISE:
        if (a->sop == MT_SOP_CAST) mt_strbuf_appendf(sb, "{%s}", mt_dtype_name(a->dtype));
        break;
    case MT_OP_REDUCE: case MT_OP_LOGSUMEXP: case MT_OP_SIZE:
        mt_strbuf_append(sb, "{axes=");
        append_int_list(sb, a->naxes, a->axes);
        if (a->keepdims) mt_strbuf_append(sb, ", keepdims");
        mt_strbuf_append(sb, "}");
        break;
    case MT_OP_SOFTMAX: case MT_OP_LOGSOFTMAX: case MT_OP_XENT: case MT_OP_XENT_LABELS:
    case MT_OP_SOFTMAX_XENT: case MT_OP_SOFTMAX_XENT_LABELS: case MT_OP_CONCAT:
    case MT_OP_SOFTMAX_XENT_LABELS_DX:
    case MT_OP_GATHER: case MT_OP_SCATTER_ADD:
        mt_strbuf_appendf(sb, "{axis=%d}", (int)a->axes[0]);
        break;
    case MT_OP_GEMM:
        mt_strbuf_appendf(sb, "{alpha=%g, beta=%g%s%s}", a->alpha, a->beta,
                          a->trans_a ? ", trans_a" : "", a->trans_b ? ", trans_b" : "");
        break;
    case MT_OP_RESHAPE: case MT_OP_BROADCAST_TO: case MT_OP_SHAPE_ASSERT:
        mt_strbuf_append(sb, "{");
        for (int32_t i = 0; i < a->nshape; i++) {
            if (i) mt_strbuf_append(sb, ",");
            if (a->shape[i] == MT_RESHAPE_KEEP && n->op == MT_OP_RESHAPE)
                mt_strbuf_append(sb, "keep");
            else if (a->shape[i] == -1 && n->op == MT_OP_SHAPE_ASSERT)
                mt_strbuf_append(sb, "?");
            else
                mt_strbuf_appendf(sb, "%lld", (long long)a->shape[i]);
        }
        mt_strbuf_append(sb, "}");
        break;
    case MT_OP_DIMSHUFFLE:
        mt_strbuf_append(sb, "{");
        for (int32_t i = 0; i < a->nperm; i++) {
            if (i) mt_strbuf_append(sb, ",");
            if (a->perm[i] < 0)
                mt_strbuf_append(sb, "x");
            else
                mt_strbuf_appendf(sb, "%d", (int)a->perm[i]);
        }
        mt_strbuf_append(sb, "}");
        break;
    case MT_OP_SLICE: case MT_OP_SET_SUBTENSOR: case MT_OP_INC_SUBTENSOR:
        mt_strbuf_append(sb, "{");
        for (int32_t i = 0; i < a->nidx; i++) {
            const mt_idx *it = &a->idx[i];
            if (i) mt_strbuf_append(sb, ", ");
            if (it->kind == MT_IDX_INT) {
                mt_strbuf_appendf(sb, "%lld", (long long)it->start);
                continue;
            }
            append_bound(sb, it->start);
            mt_strbuf_append(sb, ":");
            append_bound(sb, it->stop);
            if (it->step != 1) mt_strbuf_appendf(sb, ":%lld", (long long)it->step);
        }
        mt_strbuf_append(sb, "}");
        break;
    case MT_OP_ONE_HOT:
        mt_strbuf_appendf(sb, "{depth=%lld, %s}", (long long)a->depth, mt_dtype_name(a->dtype));
        break;
    case MT_OP_ARANGE:
        mt_strbuf_appendf(sb, "{%g, %g, %g}", a->start, a->stop, a->step);
        break;
    case MT_OP_RANDOM: {
        static const char *const dist[] = {"uniform", "normal", "binomial"};
        mt_strbuf_appendf(sb, "{%s(%g, %g), seed=%llu, stream=%llu}",
                          (unsigned)a->dist < 3 ? dist[a->dist] : "?", a->p0, a->p1,
                          (unsigned long long)a->seed, (unsigned long long)a->stream);
        break;
    }
    case MT_OP_GRAD_CLIP:
        mt_strbuf_appendf(sb, "{%g, %g}", a->p0, a->p1);
        break;
    case MT_OP_ALLREDUCE:
        mt_strbuf_appendf(sb, "{bucket=%d}", (int)a->bucket);
        break;
    case MT_OP_SCAN: {
        const struct mt_scan_body *b = a->body;
        const mt_scan_spec *s = &b->spec;
        int64_t o = a->output, ns = s->n_state, ne = s->n_extra;
        mt_strbuf_appendf(sb, "{loop=#%llu, %s %lld%s}", (unsigned long long)b->id,
                          o < ns ? "states" : o < ns + ne ? "output" : "final state",
                          (long long)(o < ns ? o : o < ns + ne ? o - ns : o - ns - ne),
                          s->reverse ? ", reverse" : "");
        break;
    }
    case MT_OP_CONV2D: case MT_OP_CONV2D_GRAD_INPUT: case MT_OP_CONV2D_GRAD_WEIGHT:
    case MT_OP_POOL2D: case MT_OP_POOL2D_GRAD: {
        const mt_window *w = &a->win;
        bool pool = n->op == MT_OP_POOL2D || n->op == MT_OP_POOL2D_GRAD;
        mt_strbuf_append(sb, "{");
        if (pool)
            mt_strbuf_appendf(sb, "%s, pool=(%d,%d), ", w->mode == MT_POOL_MAX ? "max" : "mean",
                              (int)w->size[0], (int)w->size[1]);
        else if (n->op == MT_OP_CONV2D_GRAD_WEIGHT)
            mt_strbuf_appendf(sb, "kernel=(%d,%d), ", (int)w->size[0], (int)w->size[1]);
        mt_strbuf_appendf(sb, "stride=(%d,%d), pad=(%d,%d)%s}", (int)w->stride[0],
                          (int)w->stride[1], (int)w->pad[0], (int)w->pad[1],
                          pool && w->ceil_mode ? ", ceil_mode" : "");
        break;
    }
    default:
        break;
    }
}

void mt_graph_print_node(const mt_graph *g, mt_var v, mt_strbuf *sb)
{
    const mt__node *n = mt__graph_node(g, v);
    if (!n) {
        mt_strbuf_appendf(sb, "v%d = <invalid>", (int)v);
        return;
    }
    mt_strbuf_appendf(sb, "v%d", (int)v);
    if (n->name && n->op != MT_OP_INPUT) mt_strbuf_appendf(sb, " '%s'", n->name);
    mt_strbuf_appendf(sb, " = %s", mt__op_label(n->op, &n->attrs));
    if (n->op == MT_OP_INPUT) {
        mt_strbuf_appendf(sb, " '%s'", n->name ? n->name : "");
    } else if (n->op == MT_OP_CONST) {
        append_const(sb, n);
    } else {
        append_attrs(sb, n);
        mt_strbuf_append(sb, "(");
        for (int32_t i = 0; i < n->nin; i++) mt_strbuf_appendf(sb, "%sv%d", i ? ", " : "", (int)n->in[i]);
        mt_strbuf_append(sb, ")");
    }
    mt_strbuf_append(sb, " : ");
    mt_type_format(&n->type, sb);
    if (n->flags & MT_NODE_RTCHECK) mt_strbuf_append(sb, " !check");
    if (n->prov.file || n->prov.source >= 0 || n->prov.nrules) {
        mt_strbuf_append(sb, "   # ");
        mt_graph_format_provenance(g, v, sb);
    }
}

mt_status mt_graph_print(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                         mt_strbuf *sb)
{
    mt_var *order;
    int32_t n;
    mt_status st = mt_graph_toposort(g, n_outputs, outputs, &order, &n);
    if (st) return st;
    for (int32_t i = 0; i < n; i++) {
        mt_graph_print_node(g, order[i], sb);
        mt_strbuf_append(sb, "\n");
    }
    if (n_outputs > 0 && outputs) {
        mt_strbuf_append(sb, "outputs:");
        for (int32_t i = 0; i < n_outputs; i++)
            mt_strbuf_appendf(sb, "%s v%d", i ? "," : "", (int)outputs[i]);
        mt_strbuf_append(sb, "\n");
    }
    /* each loop's body once, after the graph (nested loops print theirs in turn) */
    for (int32_t i = 0; st == MT_OK && i < n; i++) {
        const mt__node *nd = mt__graph_node(g, order[i]);
        if (nd->op != MT_OP_SCAN) continue;
        bool first = true;
        for (int32_t j = 0; j < i && first; j++) {
            const mt__node *m = mt__graph_node(g, order[j]);
            first = !(m->op == MT_OP_SCAN && m->attrs.body == nd->attrs.body);
        }
        if (!first) continue;
        const struct mt_scan_body *b = nd->attrs.body;
        mt_strbuf_appendf(sb, "loop #%llu body (inputs:", (unsigned long long)b->id);
        for (int32_t k = 0; k < b->nin; k++)
            mt_strbuf_appendf(sb, "%s v%d", k ? "," : "", (int)b->in[k]);
        mt_strbuf_append(sb, "):\n");
        st = mt_graph_print(b->g, b->nout, b->out, sb);
    }
    mt_free(order);
    return st ? st : mt_strbuf_status(sb);
}

/* Appends s with dot string escapes. */
static void append_escaped(mt_strbuf *sb, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            mt_strbuf_appendf(sb, "\\%c", *s);
        else if (*s == '\n')
            mt_strbuf_append(sb, "\\n");
        else
            mt_strbuf_appendn(sb, s, 1);
    }
}

mt_status mt_graph_print_dot(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                             mt_strbuf *sb)
{
    mt_var *order;
    int32_t n;
    mt_status st = mt_graph_toposort(g, n_outputs, outputs, &order, &n);
    if (st) return st;
    mt_strbuf_append(sb, "digraph mltrain {\n  rankdir=TB;\n"
                         "  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    mt_strbuf tmp;
    mt_strbuf_init(&tmp);
    for (int32_t i = 0; i < n; i++) {
        mt_var v = order[i];
        const mt__node *nd = mt__graph_node(g, v);
        bool is_out = false;
        for (int32_t k = 0; k < n_outputs && outputs; k++) is_out = is_out || outputs[k] == v;
        mt_strbuf_clear(&tmp);
        mt_strbuf_appendf(&tmp, "v%d ", (int)v);
        if (nd->op == MT_OP_INPUT)
            mt_strbuf_appendf(&tmp, "input '%s'", nd->name ? nd->name : "");
        else if (nd->op == MT_OP_CONST) {
            mt_strbuf_append(&tmp, "const");
            append_const(&tmp, nd);
        } else {
            mt_strbuf_append(&tmp, mt__op_label(nd->op, &nd->attrs));
            append_attrs(&tmp, nd);
        }
        mt_strbuf_append(&tmp, "\n");
        mt_type_format(&nd->type, &tmp);
        if (nd->prov.file || nd->prov.source >= 0 || nd->prov.nrules) {
            mt_strbuf_append(&tmp, "\n");
            mt_graph_format_provenance(g, v, &tmp);
        }
        mt_strbuf_appendf(sb, "  v%d [label=\"", (int)v);
        append_escaped(sb, tmp.data);
        mt_strbuf_append(sb, "\"");
        if (nd->op == MT_OP_INPUT || nd->op == MT_OP_CONST) mt_strbuf_append(sb, ", style=rounded");
        if (is_out) mt_strbuf_append(sb, ", peripheries=2");
        mt_strbuf_append(sb, "];\n");
        for (int32_t k = 0; k < nd->nin; k++)
            mt_strbuf_appendf(sb, "  v%d -> v%d;\n", (int)nd->in[k], (int)v);
    }
    mt_strbuf_append(sb, "}\n");
    mt_strbuf_deinit(&tmp);
    mt_free(order);
    return mt_strbuf_status(sb);
}
