/* Names and result types of the shared vocabularies in core.h: the scalar operations used by
 * the graph's elementwise ops and gpuarray's kernel expressions, and the reductions. One
 * definition here serves the graph (which links only core) and gpuarray alike. */
#include "mltrain/core.h"

static const char *const sop_names[MT_SOP_COUNT] = {
#define MT__SOP_NAME(name, arity, text) text,
    MT_SOP_MAP(MT__SOP_NAME)
#undef MT__SOP_NAME
};
static const signed char sop_arity[MT_SOP_COUNT] = {
#define MT__SOP_ARITY(name, arity, text) arity,
    MT_SOP_MAP(MT__SOP_ARITY)
#undef MT__SOP_ARITY
};

const char *mt_sop_name(mt_sop op)
{
    return (unsigned)op < MT_SOP_COUNT ? sop_names[op] : "invalid";
}

int mt_sop_arity(mt_sop op)
{
    return (unsigned)op < MT_SOP_COUNT ? sop_arity[op] : -1;
}

static const char *const reduce_names[MT_REDUCE_OP_COUNT] = {
    [MT_REDUCE_SUM] = "sum",   [MT_REDUCE_PROD] = "prod",     [MT_REDUCE_MAX] = "max",
    [MT_REDUCE_MIN] = "min",   [MT_REDUCE_ARGMAX] = "argmax", [MT_REDUCE_ARGMIN] = "argmin",
    [MT_REDUCE_MEAN] = "mean", [MT_REDUCE_ALL] = "all",       [MT_REDUCE_ANY] = "any",
};

const char *mt_reduce_op_name(mt_reduce_op op)
{
    return (unsigned)op < MT_REDUCE_OP_COUNT ? reduce_names[op] : "invalid";
}

mt_dtype mt_reduce_result_dtype(mt_reduce_op op, mt_dtype in)
{
    if (!mt_dtype_valid(in) || (unsigned)op >= MT_REDUCE_OP_COUNT) return MT_DTYPE_COUNT;
    char kind = mt_dtype_kind(in);
    switch (op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_PROD:
        if (kind == 'f') return in;
        return kind == 'u' ? MT_UINT64 : MT_INT64;
    case MT_REDUCE_MEAN:
        return kind == 'f' ? in : MT_FLOAT64;
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN:
        return in;
    case MT_REDUCE_ARGMAX:
    case MT_REDUCE_ARGMIN:
        return MT_INT64;
    case MT_REDUCE_ALL:
    case MT_REDUCE_ANY:
        return MT_BOOL;
    default:
        return MT_DTYPE_COUNT;
    }
}
