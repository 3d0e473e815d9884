/* codegen_monoid.c — the reduction's state in kernel source: identity, accumulation of a pair,
 * group flushes of the sum schemes, merge of two states, outputs (codegen.h; the CPU's twin is
 * cpu/kernel_reduce.h). */
#include "gpu/codegen_internal.h"
#include "plan/reduction.h"

static int kof(const kp_program *prog) { return kp__kept_per_component(prog); }

/* State arrays st (reals) and sx (indices) set to the monoid identity. */
void kp__cg_init(kp_sbuf *s, const kp_program *prog, const char *st, const char *sx) {
    int nreal, nidx, D = prog->fdim;
    kp__state_size(prog, &nreal, &nidx);
    if (prog->exact) {
        kp__cg_exact_init(s, prog, sx);
        return;
    }
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = 0;\n", nreal, st); break;
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = q_ < %d ? -KP_INF : (real)0;\n", nreal, st, D);
        break;
    case KP_FAMILY_SOFTMAX:
        kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = q_ == 0 ? -KP_INF : (real)0;\n", nreal, st);
        break;
    case KP_FAMILY_SELECT:
        kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) { %s[q_] = %sKP_INF; %s[q_] = -1; }\n", nreal, st,
                  kp__red(prog->red)->is_max ? "-" : "", sx);
        break;
    }
}

/* Inserts (x, jj) into the sorted K-list of component d (stride D); earlier entries win ties. */
static void emit_insert(kp_sbuf *s, const kp_program *prog, const char *st, const char *sx, const char *x,
                        const char *jj) {
    int K = kof(prog), D = prog->fdim;
    const char *better = kp__red(prog->red)->is_max ? "KP_BETTER_MAX" : "KP_BETTER_MIN";
    if (K == 1) {
        kp__sb_printf(s, "      if (%s[d_] < 0 || %s(%s, %s[d_])) { %s[d_] = %s; %s[d_] = %s; }\n", sx, better, x, st, st,
                  x, sx, jj);
        return;
    }
    kp__sb_printf(s,
              "      if (!(%s[%d + d_] >= 0 && !%s(%s, %s[%d + d_]))) {\n"
              "        int p_ = %d;\n"
              "        while (p_ > 0) { int q_ = (p_ - 1) * %d + d_;\n"
              "          if (%s[q_] >= 0 && !%s(%s, %s[q_])) break;\n"
              "          %s[p_ * %d + d_] = %s[q_]; %s[p_ * %d + d_] = %s[q_]; p_--; }\n"
              "        %s[p_ * %d + d_] = %s; %s[p_ * %d + d_] = %s;\n      }\n",
              sx, (K - 1) * D, better, x, st, (K - 1) * D, K - 1, D, sx, better, x, st, st, D, st, sx, D, sx, st, D, x,
              sx, D, jj);
}

/* Folds the current pair (point index j, values in pv / cb) into state (st, sx). */
void kp__cg_accumulate(kp_cg_gen *g, const char *st, const char *sx) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    int D = prog->fdim;
    if (prog->exact) {
        kp__cg_exact_accumulate(g, sx);
        return;
    }
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { real t_ = ", D);
        kp__cg_operand(g, prog->red_f, "d_");
        if (prog->red_f2.dim) {
            kp__sb_printf(s, " * ");
            kp__cg_operand(g, prog->red_f2, "d_");
        }
        if (prog->red_scale.dim && !g->grouped && !g->states) { /* per pair: the merge kernel has no row values */
            kp__sb_printf(s, " * ");
            kp__cg_operand(g, prog->red_scale, "d_");
        }
        if (g->grouped) kp__sb_printf(s, "; %s[d_] += t_; }\n", TS);
        else kp__sb_printf(s, "; KP_KAHAN(%s[d_], %s[%d + d_], t_); }\n", st, st, D);
        break;
    case KP_FAMILY_LOGSUMEXP:
        if (g->grouped)
            kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_ACCG(%s[d_], %s[%d + d_], %s[%d + d_], %s[d_], ", D,
                      st, st, D, st, 2 * D, TS);
        else
            kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_ACC(%s[d_], %s[%d + d_], %s[%d + d_], ", D, st, st,
                      D, st, 2 * D);
        kp__cg_operand(g, prog->red_f, "d_");
        kp__sb_printf(s, ");\n");
        break;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        kp__sb_printf(s, "    { real f_ = ");
        kp__cg_operand(g, prog->red_f, "0");
        if (g->grouped) { /* as KP_LSE_ACCG: weights summed in ts[0], weighted values in ts[1 + d] */
            kp__sb_printf(s,
                      ";\n      const real df_ = f_ - %s[0];\n      const int ok_ = df_ <= 0;\n"
                      "      const real w_ = ok_ ? kp__d_exp(df_) : (real)0;\n      %s[0] += w_;\n"
                      "      for (int d_ = 0; d_ < %d; d_++) %s[1 + d_] += w_ * ",
                      st, TS, DG, TS);
            kp__cg_operand(g, prog->red_g, "d_");
            kp__sb_printf(s,
                      ";\n      if (ok_) { }\n"
                      "      else if (f_ != f_ || %s[0] != %s[0]) { if (f_ != f_) %s[0] = f_; }\n"
                      "      else if (f_ == -KP_INF) { }\n"
                      "      else if (f_ == KP_INF || %s[0] == KP_INF) { %s[0] = KP_NAN; }\n"
                      "      else { real fc_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - f_);\n"
                      "        for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fc_;\n"
                      "        for (int q_ = 0; q_ < %d; q_++) %s[q_] *= fc_;\n"
                      "        %s[0] = f_; %s[0] += (real)1;\n"
                      "        for (int d_ = 0; d_ < %d; d_++) %s[1 + d_] += ",
                      st, st, st, st, st, st, st, 3 + 2 * DG, st, 1 + DG, TS, st, TS, DG, TS);
            kp__cg_operand(g, prog->red_g, "d_");
            kp__sb_printf(s, "; }\n    }\n");
            break;
        }
        kp__sb_printf(s,
                  ";\n      if (f_ != f_ || %s[0] != %s[0]) { if (f_ != f_) %s[0] = f_; }\n"
                  "      else if (f_ == -KP_INF) { }\n"
                  "      else if (f_ == KP_INF || %s[0] == KP_INF) { %s[0] = KP_NAN; }\n"
                  "      else {\n"
                  "        if (f_ > %s[0]) { real fc_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - f_);\n"
                  "          for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fc_;\n          %s[0] = f_; }\n"
                  "        real w_ = kp__d_exp(f_ - %s[0]);\n        KP_KAHAN(%s[1], %s[2], w_);\n"
                  "        for (int d_ = 0; d_ < %d; d_++) { real t_ = w_ * ",
                  st, st, st, st, st, st, st, st, 3 + 2 * DG, st, st, st, st, st, DG);
        kp__cg_operand(g, prog->red_g, "d_");
        kp__sb_printf(s, "; KP_KAHAN(%s[3 + d_], %s[%d + d_], t_); }\n      }\n    }\n", st, st, 3 + DG);
        break;
    }
    case KP_FAMILY_SELECT:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) {\n      real x_ = ", D);
        kp__cg_operand(g, prog->red_f, "d_");
        kp__sb_printf(s, ";\n");
        emit_insert(s, prog, st, sx, "x_", "j");
        kp__sb_printf(s, "    }\n");
        break;
    }
}

/* Adds the group sums ts into state st and clears them (grouped Sum, LogSumExp, SumSoftMaxWeight). */
void kp__cg_flush(kp_cg_gen *g, const char *st) {
    int D = g->prog->fdim;
    if (kp__red(g->prog->red)->family == KP_FAMILY_SOFTMAX)
        kp__sb_printf(g->s, "        { KP_KAHAN(%s[1], %s[2], %s[0]); %s[0] = 0;\n" /* one statement: it may follow an if */
                        "          for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[3 + d_], %s[%d + d_], %s[1 + d_]); "
                        "%s[1 + d_] = 0; } }\n",
                  st, st, TS, TS, g->prog->red_g.dim, st, st, 3 + g->prog->red_g.dim, TS, TS);
    else if (kp__red(g->prog->red)->family == KP_FAMILY_LOGSUMEXP)
        kp__sb_printf(g->s, "        for (int d_ = 0; d_ < %d; d_++) KP_LSE_FLUSH(%s[%d + d_], %s[%d + d_], %s[d_]);\n", D, st,
                  D, st, 2 * D, TS);
    else { /* Sum: a row factor (red_scale) multiplies the group sum, not every term */
        kp__sb_printf(g->s, "        for (int d_ = 0; d_ < %d; d_++) { real g_ = %s[d_]", D, TS);
        if (g->prog->red_scale.dim && !g->states) {
            kp__sb_printf(g->s, " * ");
            kp__cg_operand(g, g->prog->red_scale, "d_");
        }
        if (g->plain) kp__sb_printf(g->s, "; %s[d_] += g_; %s[d_] = 0; }\n", st, TS);
        else kp__sb_printf(g->s, "; KP_KAHAN(%s[d_], %s[%d + d_], g_); %s[d_] = 0; }\n", st, st, D, TS);
    }
}

/* a <- merge(a, b), b covering larger indices (a wins ties). */
void kp__cg_merge(kp_sbuf *s, const kp_program *prog, const char *a, const char *ax, const char *b, const char *bx) {
    int D = prog->fdim;
    if (prog->exact) {
        kp__cg_exact_merge(s, prog, ax, bx);
        return;
    }
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[d_], %s[%d + d_], %s[d_]); "
                     "KP_KAHAN(%s[d_], %s[%d + d_], -%s[%d + d_]); }\n",
                  D, a, a, D, b, a, a, D, b, D);
        break;
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_MERGE(%s[d_], %s[%d + d_], %s[%d + d_], %s[d_], "
                     "%s[%d + d_], %s[%d + d_]);\n",
                  D, a, a, D, a, 2 * D, b, b, D, b, 2 * D);
        break;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        kp__sb_printf(s,
                  "    if (%s[0] != %s[0] || %s[0] != %s[0]) { if (%s[0] == %s[0]) %s[0] = %s[0]; }\n"
                  "    else if (%s[0] == -KP_INF) { }\n"
                  "    else { real mn_ = %s[0] > %s[0] ? %s[0] : %s[0];\n"
                  "      real fa_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - mn_), fb_ = kp__d_exp(%s[0] - mn_);\n"
                  "      %s[0] = mn_;\n      for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fa_;\n"
                  "      KP_KAHAN(%s[1], %s[2], %s[1] * fb_); KP_KAHAN(%s[1], %s[2], -%s[2] * fb_);\n"
                  "      for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[3 + d_], %s[%d + d_], %s[3 + d_] * fb_);\n"
                  "        KP_KAHAN(%s[3 + d_], %s[%d + d_], -%s[%d + d_] * fb_); }\n    }\n",
                  a, a, b, b, a, a, a, b, b, a, b, a, b, a, a, b, a, 3 + 2 * DG, a, a, a, b, a, a, b, DG, a, a, 3 + DG,
                  b, a, a, 3 + DG, b, 3 + DG);
        break;
    }
    case KP_FAMILY_SELECT: {
        int K = kof(prog);
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) for (int k_ = 0; k_ < %d && %s[k_ * %d + d_] >= 0; k_++) {\n"
                     "      real x_ = %s[k_ * %d + d_]; kp_i64 jx_ = %s[k_ * %d + d_];\n",
                  D, K, bx, D, b, D, bx, D);
        emit_insert(s, prog, a, ax, "x_", "jx_");
        kp__sb_printf(s, "    }\n");
        break;
    }
    }
}

/* Writes the outputs of one row from (st, sx) to out + o_ and out_idx + oi_. */
void kp__cg_finalize(kp_sbuf *s, const kp_program *prog, const char *st, const char *sx) {
    int D = prog->fdim, nreal, nidx;
    kp__state_size(prog, &nreal, &nidx);
    if (prog->exact) {
        kp__cg_exact_finalize(s, prog, sx);
        return;
    }
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = %s[d_];\n", D, st); break;
    case KP_FAMILY_LOGSUMEXP:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { real m_ = %s[d_];\n"
                     "      out[o_ + d_] = (m_ != m_ || m_ == -KP_INF || m_ == KP_INF) ? m_ : m_ + kp__d_log(%s[%d + d_]); }\n",
                  D, st, st, D);
        break;
    case KP_FAMILY_SOFTMAX:
        kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = %s[0] != %s[0] ? %s[0] : "
                     "%s[0] == -KP_INF ? KP_NAN : %s[3 + d_] / %s[1];\n",
                  prog->red_g.dim, st, st, st, st, st, st);
        break;
    case KP_FAMILY_SELECT:
        if (kp__red(prog->red)->value != KP_WIDTH_NONE && kp__red(prog->red)->index != KP_WIDTH_NONE)
            kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) { out[o_ + q_] = %s[q_]; out_idx[oi_ + q_] = %s[q_]; }\n",
                      nreal, st, sx);
        else if (kp__red(prog->red)->value != KP_WIDTH_NONE)
            kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) out[o_ + q_] = %s[q_];\n", nreal, st);
        else
            kp__sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) out_idx[oi_ + q_] = %s[q_];\n", nidx, sx);
        break;
    }
}
