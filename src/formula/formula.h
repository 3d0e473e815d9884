/* formula.h — a parsed reduction: the DAG of F (and G), the reduction, the argument table. */
#ifndef KP_FORMULA_FORMULA_H
#define KP_FORMULA_FORMULA_H

#include "formula/node.h"
#include "formula/reductions.h"


typedef struct kp_arg_info {
    int used;
    kp_var_category cat;
    int dim;
} kp_arg_info;

struct kp_formula {
    kp_context *ctx;
    kp_reduction red;
    int axis;             /* 1: reduce over j, 0: reduce over i */
    int K;                /* KMin family */
    const kp_node *f;     /* the reduced formula F */
    const kp_node *g;     /* the weight G of SumSoftMaxWeight, else NULL */
    int sum_rows;         /* sum the output rows into one (parameter gradients): RowSum(...) */
    int nargs;            /* 1 + largest position used */
    kp_arg_info args[KP_MAX_ARGS];
};

/* KP_OK if ctx is the context f was made in, else KP_ERR_ARGUMENT with a
 * message in ctx. f's nodes live in its context's store (ids, hash-consing):
 * calls that build nodes or lower f need that store, hence that context. */
kp_status kp__formula_check_context(kp_context *ctx, const kp_formula *f);


#endif
