/* The op descriptor table (one row per mt_op, generated in enum order and guarded by
 * _Static_assert) and the name tables the printers and error messages use. The scalar-op and
 * reduction names are kept here too because the graph links only mt_core, whose header
 * declares but does not define them. */
#include <string.h>

#include "graph_impl.h"

#define A_NONE 0u
#define A_LEAF_IN (MT__A_UID | MT__A_DTYPE | MT__A_SHAPE)
#define A_LEAF_CONST (MT__A_CONST | MT__A_DTYPE | MT__A_SHAPE)
#define A_RED (MT__A_REDUCE | MT__A_AXES | MT__A_KEEPDIMS)
#define A_AXIS MT__A_AXES

/* name, arity, min, max, lowering, attribute groups, never_merge, infer */
const mt_op_info mt__op_table[MT_OP_COUNT] = {
    [MT_OP_INPUT] = {"input", 0, 0, 0, MT_LOWER_LEAF, A_LEAF_IN, true, mt__infer_leaf},
    [MT_OP_CONST] = {"const", 0, 0, 0, MT_LOWER_LEAF, A_LEAF_CONST, false, mt__infer_leaf},
    [MT_OP_ELEMWISE] = {"elemwise", -1, 1, 3, MT_LOWER_ELEMWISE, MT__A_SOP | MT__A_DTYPE, false,
                        mt__infer_elemwise},
    [MT_OP_REDUCE] = {"reduce", 1, 1, 1, MT_LOWER_REDUCTION, A_RED, false, mt__infer_reduce},
    [MT_OP_LOGSUMEXP] = {"logsumexp", 1, 1, 1, MT_LOWER_OTHER, MT__A_AXES | MT__A_KEEPDIMS, false,
                         mt__infer_reduce},
    [MT_OP_SIZE] = {"size", 1, 1, 1, MT_LOWER_OTHER, MT__A_AXES, false, mt__infer_reduce},
    [MT_OP_SOFTMAX] = {"softmax", 1, 1, 1, MT_LOWER_OTHER, A_AXIS, false, mt__infer_softmax},
    [MT_OP_LOGSOFTMAX] = {"logsoftmax", 1, 1, 1, MT_LOWER_OTHER, A_AXIS, false, mt__infer_softmax},
    [MT_OP_XENT] = {"crossentropy", 2, 2, 2, MT_LOWER_OTHER, A_AXIS, false, mt__infer_xent},
    [MT_OP_XENT_LABELS] = {"crossentropy_labels", 2, 2, 2, MT_LOWER_OTHER, A_AXIS, false,
                           mt__infer_xent},
    [MT_OP_SOFTMAX_XENT] = {"softmax_crossentropy", 2, 2, 2, MT_LOWER_OTHER, A_AXIS, false,
                            mt__infer_xent},
    [MT_OP_SOFTMAX_XENT_LABELS] = {"softmax_crossentropy_labels", 2, 2, 2, MT_LOWER_OTHER, A_AXIS,
                                   false, mt__infer_xent},
    [MT_OP_SOFTMAX_XENT_LABELS_DX] = {"softmax_crossentropy_labels_dx", 3, 3, 3, MT_LOWER_OTHER,
                                      A_AXIS, false, mt__infer_xent},
    [MT_OP_MATMUL] = {"matmul", 2, 2, 2, MT_LOWER_LIBRARY, A_NONE, false, mt__infer_matmul},
    [MT_OP_GEMM] = {"gemm", 3, 3, 3, MT_LOWER_LIBRARY, MT__A_GEMM, false, mt__infer_matmul},
    [MT_OP_RESHAPE] = {"reshape", 1, 1, 1, MT_LOWER_VIEW, MT__A_SHAPE, false, mt__infer_reshape},
    [MT_OP_DIMSHUFFLE] = {"dimshuffle", 1, 1, 1, MT_LOWER_VIEW, MT__A_PERM, false,
                          mt__infer_dimshuffle},
    [MT_OP_BROADCAST_TO] = {"broadcast_to", 1, 1, 1, MT_LOWER_VIEW, MT__A_SHAPE, false,
                            mt__infer_broadcast},
    [MT_OP_BROADCAST_LIKE] = {"broadcast_like", 2, 2, 2, MT_LOWER_VIEW, A_NONE, false,
                              mt__infer_broadcast},
    [MT_OP_CONCAT] = {"concatenate", -1, 1, -1, MT_LOWER_OTHER, A_AXIS, false, mt__infer_concat},
    [MT_OP_SLICE] = {"slice", 1, 1, 1, MT_LOWER_VIEW, MT__A_IDX, false, mt__infer_slice},
    [MT_OP_SET_SUBTENSOR] = {"set_subtensor", 2, 2, 2, MT_LOWER_OTHER, MT__A_IDX, false,
                             mt__infer_slice},
    [MT_OP_INC_SUBTENSOR] = {"inc_subtensor", 2, 2, 2, MT_LOWER_OTHER, MT__A_IDX, false,
                             mt__infer_slice},
    [MT_OP_GATHER] = {"gather", 2, 2, 2, MT_LOWER_OTHER, A_AXIS, false, mt__infer_gather},
    [MT_OP_SCATTER_ADD] = {"scatter_add", 3, 3, 3, MT_LOWER_OTHER, A_AXIS, false,
                           mt__infer_gather},
    [MT_OP_ONE_HOT] = {"one_hot", 1, 1, 1, MT_LOWER_OTHER, MT__A_DEPTH | MT__A_DTYPE, false,
                       mt__infer_gather},
    [MT_OP_ARANGE] = {"arange", 0, 0, 0, MT_LOWER_OTHER, MT__A_RANGE | MT__A_DTYPE, false,
                      mt__infer_generator},
    [MT_OP_RANDOM] = {"random", -1, 0, 1, MT_LOWER_OTHER,
                      MT__A_RANDOM | MT__A_PARAMS | MT__A_DTYPE | MT__A_SHAPE, true,
                      mt__infer_generator},
    [MT_OP_STOP_GRADIENT] = {"stop_gradient", 1, 1, 1, MT_LOWER_VIEW, A_NONE, false,
                             mt__infer_identity},
    [MT_OP_GRAD_CLIP] = {"grad_clip", 1, 1, 1, MT_LOWER_VIEW, MT__A_PARAMS, false,
                         mt__infer_identity},
    [MT_OP_SHAPE_ASSERT] = {"shape_assert", 1, 1, 1, MT_LOWER_VIEW, MT__A_SHAPE, false,
                            mt__infer_identity},
    [MT_OP_CONV2D] = {"conv2d", 2, 2, 2, MT_LOWER_OTHER, MT__A_WINDOW, false, mt__infer_conv},
    [MT_OP_CONV2D_GRAD_INPUT] = {"conv2d_grad_input", 3, 3, 3, MT_LOWER_OTHER, MT__A_WINDOW,
                                 false, mt__infer_conv},
    [MT_OP_CONV2D_GRAD_WEIGHT] = {"conv2d_grad_weight", 2, 2, 2, MT_LOWER_OTHER, MT__A_WINDOW,
                                  false, mt__infer_conv},
    [MT_OP_POOL2D] = {"pool2d", -1, 1, 2, MT_LOWER_OTHER, MT__A_WINDOW, false, mt__infer_pool},
    [MT_OP_POOL2D_GRAD] = {"pool2d_grad", 3, 3, 3, MT_LOWER_OTHER, MT__A_WINDOW, false,
                           mt__infer_pool},
    [MT_OP_ALLREDUCE] = {"allreduce", 1, 1, 1, MT_LOWER_COLLECTIVE, MT__A_BUCKET, false,
                         mt__infer_collective},
    [MT_OP_SCAN] = {"scan", -1, 0, -1, MT_LOWER_OTHER, MT__A_BODY, false, mt__infer_scan},
};

/* The table must have a row for every op, in the order and with the names and arities of
 * MT_OP_MAP (checked once at startup by mt_graph_verify and the tests; the count here). */
_Static_assert(sizeof(mt__op_table) / sizeof(mt__op_table[0]) == MT_OP_COUNT,
               "mt__op_table needs one row per mt_op");

static const char *const op_names[MT_OP_COUNT] = {
#define MT__OP_NAME(name, text, arity, lower) text,
    MT_OP_MAP(MT__OP_NAME)
#undef MT__OP_NAME
};
static const int32_t op_arity[MT_OP_COUNT] = {
#define MT__OP_ARITY(name, text, arity, lower) arity,
    MT_OP_MAP(MT__OP_ARITY)
#undef MT__OP_ARITY
};
static const mt_lowering op_lowering[MT_OP_COUNT] = {
#define MT__OP_LOWER(name, text, arity, lower) lower,
    MT_OP_MAP(MT__OP_LOWER)
#undef MT__OP_LOWER
};

const char *mt_op_name(mt_op op)
{
    return (unsigned)op < MT_OP_COUNT ? op_names[op] : "invalid";
}

int32_t mt_op_arity(mt_op op)
{
    return (unsigned)op < MT_OP_COUNT ? op_arity[op] : 0;
}

mt_lowering mt_op_lowering(mt_op op)
{
    return (unsigned)op < MT_OP_COUNT ? op_lowering[op] : MT_LOWER_OTHER;
}

const char *mt_lowering_name(mt_lowering k)
{
    static const char *const names[MT_LOWER_COUNT] = {"leaf",    "elemwise", "reduction",
                                                      "library", "view",     "other",
                                                      "collective"};
    return (unsigned)k < MT_LOWER_COUNT ? names[k] : "invalid";
}

mt_status mt__op_table_check(void)
{
    for (int32_t i = 0; i < MT_OP_COUNT; i++) {
        const mt_op_info *o = &mt__op_table[i];
        if (!o->name || strcmp(o->name, op_names[i]) != 0 || o->arity != op_arity[i] ||
            o->lowering != op_lowering[i] || !o->infer ||
            (o->arity >= 0 && (o->min_in != o->arity || o->max_in != o->arity)))
            return mt_err_set(MT_ERR_INTERNAL, "op table row %d (%s) disagrees with MT_OP_MAP",
                              (int)i, op_names[i]);
    }
    return MT_OK;
}


mt_dtype mt__float_dtype(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16: case MT_BFLOAT16: case MT_FLOAT32: case MT_FLOAT64:
        return dt;
    case MT_BOOL: case MT_INT8: case MT_UINT8:
        return MT_FLOAT16;
    case MT_INT16: case MT_UINT16:
        return MT_FLOAT32;
    default:
        return MT_FLOAT64;
    }
}

const char *mt__op_label(mt_op op, const mt_op_attrs *a)
{
    if (op == MT_OP_ELEMWISE && a) return mt__sop_text(a->sop);
    if (op == MT_OP_REDUCE && a) return mt__reduce_text(a->reduce);
    return mt_op_name(op);
}
