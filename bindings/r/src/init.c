/* init.c: registration of the .Call entry points (no dynamic symbol lookup). */
#include <R_ext/Rdynload.h>

#include "rkp.h"

static const R_CallMethodDef call_methods[] = {
    {"rkp_parse", (DL_FUNC)&rkp_parse, 2},
    {"rkp_info", (DL_FUNC)&rkp_info, 1},
    {"rkp_derive", (DL_FUNC)&rkp_derive, 3},
    {"rkp_version", (DL_FUNC)&rkp_version, 0},
    {"rkp_set_engine", (DL_FUNC)&rkp_set_engine, 1},
    {"rkp_reductions", (DL_FUNC)&rkp_reductions, 0},
    {"rkp_constant", (DL_FUNC)&rkp_constant, 1},
    {"rkp_exec", (DL_FUNC)&rkp_exec, 7},
    {"rkp_c_exec_time", (DL_FUNC)&rkp_c_exec_time, 6},
    {NULL, NULL, 0}};

void R_init_rkp(DllInfo *dll) {
    R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
    R_useDynamicSymbols(dll, FALSE);
    R_forceSymbols(dll, TRUE);
}
