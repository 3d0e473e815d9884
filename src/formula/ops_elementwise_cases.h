/*
 * ops_elementwise_cases.h — `case KP_OP_...:` for every elementwise row of
 * ops.def (classes EW1, EW2, EW3). Included inside a switch over kp_op whose
 * elementwise ops were handled before it, so that -Wswitch-enum still checks
 * that the switch names every other op:
 *
 *     switch (op) {
 *     #include "formula/ops_elementwise_cases.h"
 *         break;
 *     case KP_OP_SUM: ...
 */
#define KP__CASE_LEAF(e)
#define KP__CASE_VEC(e)
#define KP__CASE_EW1(e) case e:
#define KP__CASE_EW2(e) case e:
#define KP__CASE_EW3(e) case e:
#define X(e, name, arity, cls) KP__CASE_##cls(e)
#include "formula/ops.def"
#undef X
#undef KP__CASE_LEAF
#undef KP__CASE_VEC
#undef KP__CASE_EW1
#undef KP__CASE_EW2
#undef KP__CASE_EW3
