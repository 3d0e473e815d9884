/* codegen_exact.c — the states of Sum, LogSumExp and SumSoftMaxWeight under KP_SUM_EXACT in kernel
 * source: each pair's term goes into the row's exact accumulators (device/exact.h, embedded by the
 * prelude), which live in the int64 words of the state (sx), in the CPU engine's layout. */
#include "gpu/codegen_internal.h"
#include "plan/exact_exp.h"
#include "plan/reduction.h"

/* Words per component (Sum, LogSumExp); SumSoftMaxWeight has one state. */
static int words_per_component(const kp_program *prog) {
    return kp__red(prog->red)->family == KP_FAMILY_SUM ? KP_XSUM_WORDS : KP_XEXP_LSE_WORDS;
}

void kp__cg_exact_init(kp_sbuf *s, const kp_program *prog, const char *sx) {
    if (kp__red(prog->red)->family == KP_FAMILY_SOFTMAX) {
        kp__sb_printf(s, "    kp__xs_ssmw_init(%s, %d);\n", sx, prog->red_g.dim);
        return;
    }
    kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) kp__xs_%sinit(%s + d_ * %d);\n", prog->fdim,
                  kp__red(prog->red)->family == KP_FAMILY_SUM ? "" : "lse_", sx, words_per_component(prog));
}

/* The pair's terms: a Sum's F (times F2, rounded in the kernel's real type as
 * the CPU rounds it; a row factor multiplies the rounded sum at the end), the
 * x of LogSumExp, the x and g of SumSoftMaxWeight (as doubles). */
void kp__cg_exact_accumulate(kp_cg_gen *g, const char *sx) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { real t_ = ", prog->fdim);
        kp__cg_operand(g, prog->red_f, "d_");
        if (prog->red_f2.dim) {
            kp__sb_printf(s, " * ");
            kp__cg_operand(g, prog->red_f2, "d_");
        }
        kp__sb_printf(s, "; kp__xs_add_%s(%s + d_ * %d, t_); }\n", g->dtype == KP_FLOAT32 ? "f32" : "f64", sx,
                      KP_XSUM_WORDS);
        break;
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) kp__xs_lse_add(%s + d_ * %d, (double)(", prog->fdim, sx,
                      KP_XEXP_LSE_WORDS);
        kp__cg_operand(g, prog->red_f, "d_");
        kp__sb_printf(s, "));\n");
        break;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        kp__sb_printf(s, "    { double g_[%d];\n      for (int d_ = 0; d_ < %d; d_++) g_[d_] = (double)(", DG, DG);
        kp__cg_operand(g, prog->red_g, "d_");
        kp__sb_printf(s, ");\n      kp__xs_ssmw_add(%s, %d, (double)(", sx, DG);
        kp__cg_operand(g, prog->red_f, "0");
        kp__sb_printf(s, "), g_); }\n");
        break;
    }
    case KP_FAMILY_SELECT: break;
    }
}

void kp__cg_exact_merge(kp_sbuf *s, const kp_program *prog, const char *ax, const char *bx) {
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) kp__xs_%smerge(%s + d_ * %d, %s + d_ * %d);\n",
                      prog->fdim, kp__red(prog->red)->family == KP_FAMILY_SUM ? "" : "lse_", ax,
                      words_per_component(prog), bx, words_per_component(prog));
        break;
    case KP_FAMILY_SOFTMAX: kp__sb_printf(s, "    kp__xs_ssmw_merge(%s, %s, %d);\n", ax, bx, prog->red_g.dim); break;
    case KP_FAMILY_SELECT: break;
    }
}

/* Rounded to the kernel's real type: float32 kernels round once to float32, not twice. */
void kp__cg_exact_finalize(kp_sbuf *s, const kp_program *prog, const char *sx) {
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        kp__sb_printf(s,
                      "    for (int d_ = 0; d_ < %d; d_++)\n"
                      "      out[o_ + d_] = (real)kp__xs_value(%s + d_ * %d, sizeof(real) == 4);\n",
                      prog->fdim, sx, KP_XSUM_WORDS);
        break;
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = (real)kp__xs_lse_value(%s + d_ * %d);\n",
                      prog->fdim, sx, KP_XEXP_LSE_WORDS);
        break;
    case KP_FAMILY_SOFTMAX:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = (real)kp__xs_ssmw_value(%s, %d, d_);\n",
                      prog->red_g.dim, sx, prog->red_g.dim);
        break;
    case KP_FAMILY_SELECT: break;
    }
}
