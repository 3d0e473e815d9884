/* rkp.h: shared declarations of the .Call glue (rkp.c: operators, exec.c: runs). */
#ifndef RKP_H
#define RKP_H

#include <R.h>
#include <Rinternals.h>

#include <kp.h>

SEXP rkp_parse(SEXP text, SEXP aliases);
SEXP rkp_info(SEXP ptr);
SEXP rkp_derive(SEXP ptr, SEXP kind, SEXP k);
SEXP rkp_version(void);
SEXP rkp_set_engine(SEXP engine);
SEXP rkp_reductions(void);
SEXP rkp_constant(SEXP name);
SEXP rkp_exec(SEXP ptr, SEXP args, SEXP dtype, SEXP layout, SEXP nthreads, SEXP sizes, SEXP scheme);
SEXP rkp_c_exec_time(SEXP ptr, SEXP args, SEXP dtype, SEXP reps, SEXP nthreads, SEXP col_major);

kp_status rkp__plan(SEXP ptr, kp_dtype dtype, kp_plan **plan);
SEXP rkp__failure(kp_status st);
kp_context *rkp__context(void);
/* A dtype code from R (kp.h's value, which R asks of kp_constant): float32 or float64. */
kp_dtype rkp__dtype(SEXP code);

#endif
