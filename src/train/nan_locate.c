/* Finding where a non-finite value comes from: after training met a NaN or an infinity, the
 * algorithm restores the state of the batch that produced it and asks for the first graph
 * node, in topological order, whose value has a non-finite element. The nodes are evaluated
 * with mt_graph_eval (the reference executor on the literal, unrewritten graph), so the node
 * named is one the user's model or cost built, with its provenance. */
#include <math.h>
#include <string.h>

#include "train_impl.h"

/* Index of the first non-finite element of a float array, or -1 (*val receives it). */
static mt_status first_bad(const mt_array *a, int64_t *idx, double *val)
{
    *idx = -1;
    int64_t n = mt_array_size(a);
    if (n == 0 || !mt_dtype_is_float(a->dtype)) return MT_OK;
    mt_array d;
    memset(&d, 0, sizeof(d));
    mt_status st = mt_array_astype(&d, a, MT_FLOAT64);
    if (st) return st;
    double *h = mt_malloc((size_t)n * sizeof(double));
    if (!h) {
        mt_array_clear(&d);
        return mt_err_set(MT_ERR_NOMEM, "non-finite check (%lld elements)", (long long)n);
    }
    st = mt_array_to_host(h, (size_t)n * sizeof(double), &d);
    for (int64_t i = 0; !st && i < n; i++)
        if (!isfinite(h[i])) {
            *idx = i;
            *val = h[i];
            break;
        }
    mt_free(h);
    mt_array_clear(&d);
    return st;
}

mt_status mt__array_all_finite(const mt_array *a, bool *finite)
{
    int64_t idx;
    double v;
    mt_status st = first_bad(a, &idx, &v);
    *finite = idx < 0;
    return st;
}

mt_status mt__first_nonfinite(mt_graph *g, int32_t n_roots, const mt_var *roots, int32_t n_in,
                              const mt_var *in_vars, const mt_array *const *in_arrays,
                              mt_device *dev, mt_strbuf *desc, bool *found)
{
    *found = false;
    mt_var *order = NULL;
    int32_t n_order = 0;
    mt_status st = mt_graph_toposort(g, n_roots, roots, &order, &n_order);
    if (st) return st;
    mt_var *cand = mt_calloc((size_t)n_order + 1, sizeof(*cand));
    mt_array *vals = mt_calloc((size_t)n_order + 1, sizeof(*vals));
    int32_t nc = 0;
    if (!cand || !vals) {
        st = mt_err_set(MT_ERR_NOMEM, "locating a non-finite value");
        goto done;
    }
    for (int32_t i = 0; i < n_order; i++) {
        mt_var v = order[i];
        const mt_type *t = mt_graph_type(g, v);
        if (!t || !mt_dtype_is_float(t->dtype) || mt_graph_op(g, v) == MT_OP_CONST) continue;
        cand[nc++] = v;
    }
    st = mt_graph_eval(g, nc, cand, n_in, in_vars, in_arrays, dev, vals);
    if (st) goto done;
    for (int32_t i = 0; i < nc && !*found; i++) {
        int64_t idx;
        double bad;
        if ((st = first_bad(&vals[i], &idx, &bad))) break;
        if (idx < 0) continue;
        *found = true;
        mt_graph_print_node(g, cand[i], desc);
        mt_strbuf_appendf(desc, ": %s at element %lld", isnan(bad) ? "nan" : bad > 0 ? "inf"
                                                                                   : "-inf",
                          (long long)idx);
        if (mt_graph_op(g, cand[i]) == MT_OP_INPUT)
            mt_strbuf_appendf(desc, " (the input '%s' itself)",
                              mt_graph_name(g, cand[i]) ? mt_graph_name(g, cand[i]) : "?");
    }
    for (int32_t i = 0; i < nc; i++) mt_array_clear(&vals[i]);
done:
    mt_free(cand);
    mt_free(vals);
    mt_free(order);
    return st;
}
