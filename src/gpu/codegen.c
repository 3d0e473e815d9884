/* codegen.c — kp_program to CUDA C++ / OpenCL C kernel source (contract in codegen.h): the string
 * builder, the kernels' skeleton and kp__gpu_codegen; the other parts are named in codegen_internal.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "gpu/codegen_internal.h"
#include "plan/reduction.h"

/* ------------------------------------------------------------ string builder */

void kp__sb_printf(kp_sbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            s->oom = 1;
            return;
        }
        if (s->p && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        size_t cap = s->cap ? s->cap : 4096;
        while (cap <= s->n + (size_t)k) cap *= 2;
        char *q = kp__realloc(s->ctx, s->p, cap);
        if (!q) {
            s->oom = 1;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
}

/* "for (int rq = 0; rq < R; rq++)" over the thread's rows (no newline), at
 * indent, unrolled in CUDA so that the per-row arrays stay in registers. */
static void rows_loop(kp_sbuf *s, kp_gpu_dialect dia, const char *indent, int R) {
    if (dia == KP_GPU_CUDA) kp__sb_printf(s, "%s#pragma unroll\n", indent);
    kp__sb_printf(s, "%sfor (int rq = 0; rq < %d; rq++)", indent, R);
}

/* ------------------------------------------------------------ kernels */

/* The reduce kernel's signature, its thread's rows, per-row arrays and ROW
 * program, and the opening of the loop over chunks (or ranges). Each thread
 * keeps R rows, r0 + rq * B for rq < R (coalesced row loads), and runs the
 * pair program of every one on each point it reads from the tile; every loop
 * over rq is unrolled in CUDA so their arrays stay in registers. */
static void emit_reduce_head(kp_cg_gen *g) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    const int B = g->B, R = g->R, rg = g->rg;
    kp__sb_printf(s, "KP_KERNEL void %s_reduce(", g->name);
    for (int u = 0; u < info->nused; u++)
        kp__sb_printf(s, "const KP_GLOBAL real *a%d, kp_i64 bs%d, ", info->used[u], info->used[u]);
    /* Block-sparse ranges: the work-group's rows, batch and list of reduced
       ranges come from its entry of rg_blk; rows end at rend_, and each range
       takes the place of a chunk. */
    kp__sb_printf(s, "KP_GLOBAL real *out, KP_GLOBAL kp_i64 *out_idx, KP_GLOBAL real *part, KP_GLOBAL kp_i64 *part_idx,\n"
                 "    kp_i64 nrows, kp_i64 ncols, kp_i64 chunk, kp_i64 nchunks, int split%s%s) {\n",
              rg ? ", const KP_GLOBAL kp_i64 *rg_blk, const KP_GLOBAL kp_i64 *rg_cols" : "",
              g->states ? ", kp_i64 row_off, kp_i64 col_off" : "");
    kp__sb_printf(s, "  const int lid = KP_LID;\n");
    if (g->states) kp__sb_printf(s, "  (void)row_off; (void)col_off;\n");
    if (rg)
        kp__sb_printf(s, "  const KP_GLOBAL kp_i64 *e_ = rg_blk + KP_GROUP(0) * %d; /* rows, ranges and batch of this group */\n"
                     "  const kp_i64 r0 = e_[0] + lid, rend_ = e_[1], bz = e_[4]; /* R = %d rows, B = %d apart */\n",
                  g->states ? 6 : 5, R, B);
    else
        kp__sb_printf(s, "  const kp_i64 r0 = KP_GROUP(0) * %d + lid; /* the thread's first row; R = %d rows, B = %d apart */\n"
                     "  const kp_i64 bz = KP_GROUP(2);\n",
                  B * R, R, B);
    kp__sb_printf(s, "  real rv[%d][%d], pv[%d], cv[%d], ts[%d][%d];\n"
                 "  %s real cb[%d]%s;\n"
                 "  real st[%d][%d], pst[%d][%d];\n  kp_i64 sx[%d][%d], psx[%d][%d];\n"
                 "  (void)pv; (void)cv; (void)ts; (void)cb; (void)sx; (void)psx; (void)part_idx; (void)out_idx; "
                 "(void)out;\n",
              R, kp__cg_imax1(prog->row_size), kp__cg_imax1(prog->pair_size), kp__cg_imax1(prog->col_size), R, g->NT,
              g->dia == KP_GPU_CUDA ? "__shared__ __align__(16)" : "__local", kp__cg_imax1(g->W * B),
              g->dia == KP_GPU_CUDA ? "" : " __attribute__((aligned(16)))", R, g->NR, R, g->NR, R, g->NX, R, g->NX);
    kp__sb_printf(s, "  /* ROW program (row variables guarded: the whole group computes the uniform values) */\n");
    rows_loop(s, g->dia, "  ", R);
    kp__sb_printf(s, " {\n  const kp_i64 r = r0 + rq * %d;\n  const int active = r < %s;\n", B, g->rlim);
    kp__cg_part(g, &prog->row, KP_LOC_ROW);
    kp__cg_init(s, prog, "st[rq]", "sx[rq]");
    if (rg)
        kp__sb_printf(s, "  }\n"
                     "  const kp_i64 ch0 = e_[2], ch1 = e_[3];\n"
                     "  for (kp_i64 ch = ch0; ch < ch1; ch++) {\n"
                     "    const kp_i64 jstart = rg_cols[2 * ch], jend = rg_cols[2 * ch + 1];\n");
    else
        kp__sb_printf(s, "  }\n"
                     "  const kp_i64 ch0 = split ? KP_GROUP(1) : 0, ch1 = split ? ch0 + 1 : nchunks;\n"
                     "  for (kp_i64 ch = ch0; ch < ch1; ch++) {\n"
                     "    const kp_i64 jstart = ch * chunk, jend = jstart + chunk < ncols ? jstart + chunk : ncols;\n");
}

/* One chunk: its states at the identity, then tile by tile the COL program
 * into the shared tile and the pair loop folding each point into them. */
static void emit_chunk(kp_cg_gen *g) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const int B = g->B, R = g->R, G = g->G;
    rows_loop(s, g->dia, "    ", R);
    kp__sb_printf(s, " {\n");
    kp__cg_init(s, prog, "pst[rq]", "psx[rq]");
    if (g->grouped) kp__sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) %s[d_] = 0;\n", g->NT, TS);
    kp__sb_printf(s, "    }\n"
                 "    for (kp_i64 j0 = jstart; j0 < jend; j0 += %d) {\n"
                 "      const int len = (int)(jend - j0 < %d ? jend - j0 : %d);\n"
                 "      if (lid < len) { /* COL program: one point of the tile per thread */\n"
                 "        const kp_i64 j = j0 + lid;\n",
              B, B, B);
    g->rrow = "0";
    kp__cg_part(g, &prog->col, KP_LOC_COL);
    g->rrow = "rq";
    kp__sb_printf(s, "        for (int c_ = 0; c_ < %d; c_++) cb[lid * %d + c_] = cv[c_];\n      }\n"
                 "      KP_BARRIER();\n"
                 "      if (r0 < %s) for (int k0 = 0; k0 < len; k0 += %d) {\n"
                 "        const int k1 = k0 + %d < len ? k0 + %d : len;\n",
              prog->col_size, g->W, g->rlim, G, G, G);
    /* kp_bench_gpu's static cost per pair divides by this factor and by R (read from the source). */
    if (g->dia == KP_GPU_CUDA) kp__sb_printf(s, "        #pragma unroll %d\n", kp__cg_pair_unroll(prog, R));
    /* The point's COL values first, all together: one vector load, whatever the
       pair program does between its uses (an asm statement splits load chains). */
    kp__sb_printf(s, "        for (int k = k0; k < k1; k++) {\n        const kp_i64 j = j0 + k;\n"
                 "        real cp[%d];\n        for (int c_ = 0; c_ < %d; c_++) cp[c_] = cb[k * %d + c_];\n",
              kp__cg_imax1(prog->col_size), prog->col_size, g->W);
    rows_loop(s, g->dia, "        ", R);
    kp__sb_printf(s, " {\n");
    g->in_pair = 1;
    kp__cg_part(g, &prog->pair, KP_LOC_PAIR);
    kp__cg_accumulate(g, "pst[rq]", "psx[rq]");
    g->in_pair = 0;
    kp__sb_printf(s, "        }\n        }\n");
    if (g->grouped) {
        /* Groups are the KP_GPU_GROUP points from the chunk's start on, whatever B:
         * with B >= KP_GPU_GROUP every inner loop ends one; below, a group spans tiles. */
        if (B < KP_GPU_GROUP)
            kp__sb_printf(s, "        if (((j0 - jstart + k1) & %d) == 0 || j0 + k1 == jend)\n", KP_GPU_GROUP - 1);
        rows_loop(s, g->dia, "        ", R);
        kp__sb_printf(s, "\n");
        kp__cg_flush(g, "pst[rq]");
    }
    kp__sb_printf(s, "      }\n      KP_BARRIER();\n    }\n");
}

/* Ranges and partial states: the entry's ranges (those of one chunk) merged
 * into the rows' states, which are that chunk's states: written out at the
 * entry's chunk e_[5], never finalized (the host merges and finalizes). */
static void emit_ranged_states_tail(kp_cg_gen *g) {
    kp_sbuf *s = g->s;
    const kp_gpu_kernel_info *info = g->info;
    rows_loop(s, g->dia, "    ", g->R);
    kp__sb_printf(s, " {\n"
                 "    const kp_i64 r = r0 + rq * %d;\n"
                 "    if (r >= rend_) break;\n",
              g->B);
    kp__cg_merge(s, g->prog, "st[rq]", "sx[rq]", "pst[rq]", "psx[rq]");
    kp__sb_printf(s, "    }\n  }\n  (void)split;\n");
    rows_loop(s, g->dia, "  ", g->R);
    kp__sb_printf(s, " {\n"
                 "  const kp_i64 r = r0 + rq * %d;\n"
                 "  if (r >= rend_) break;\n"
                 "  const kp_i64 at_ = (bz * nchunks + e_[5]) * nrows + r;\n"
                 "  for (int q_ = 0; q_ < %d; q_++) part[at_ * %d + q_] = st[rq][q_];\n"
                 "  for (int q_ = 0; q_ < %d; q_++) part_idx[at_ * %d + q_] = sx[rq][q_];\n"
                 "  }\n}\n\n",
              g->B, info->nreal, info->nreal, info->nidx, info->nidx);
}

/* The end of a chunk (its state written out when split, else merged into the
 * row's) and of the kernel (the rows' outputs when not split). */
static void emit_reduce_tail(kp_cg_gen *g) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    if (g->rg && g->states) {
        emit_ranged_states_tail(g);
        return;
    }
    rows_loop(s, g->dia, "    ", g->R);
    kp__sb_printf(s, " {\n"
                 "    const kp_i64 r = r0 + rq * %d;\n"
                 "    if (r >= %s) break;\n"
                 "    if (split) {\n"
                 "      const kp_i64 at_ = (bz * nchunks + ch) * nrows + r;\n"
                 "      for (int q_ = 0; q_ < %d; q_++) part[at_ * %d + q_] = pst[rq][q_];\n"
                 "      for (int q_ = 0; q_ < %d; q_++) part_idx[at_ * %d + q_] = psx[rq][q_];\n"
                 "    } else {\n",
              g->B, g->rlim, info->nreal, info->nreal, info->nidx, info->nidx);
    kp__cg_merge(s, prog, "st[rq]", "sx[rq]", "pst[rq]", "psx[rq]");
    kp__sb_printf(s, "    }\n    }\n  }\n"
                 "  if (split) return;\n");
    rows_loop(s, g->dia, "  ", g->R);
    kp__sb_printf(s, " {\n"
                 "  const kp_i64 r = r0 + rq * %d;\n"
                 "  if (r >= %s) break;\n"
                 "  const kp_i64 o_ = (bz * nrows + r) * %d, oi_ = (bz * nrows + r) * %d;\n"
                 "  (void)o_; (void)oi_;\n",
              g->B, g->rlim, info->out_dim, info->out_idx_dim);
    kp__cg_finalize(s, prog, "st[rq]", "sx[rq]");
    if (prog->exact && prog->red_scale.dim && !g->states) { /* as the CPU: the rounded sum times the row factor */
        kp__sb_printf(s, "  if (ch1 > ch0 && ncols > 0) for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] *= ", prog->fdim);
        kp__cg_operand(g, prog->red_scale, "d_");
        kp__sb_printf(s, ";\n");
    }
    kp__sb_printf(s, "  }\n}\n\n");
}

/* The merge kernel: a row's chunk states merged in chunk order, then its outputs. */
static void emit_merge_kernel(kp_cg_gen *g) {
    kp_sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    kp__sb_printf(s, "KP_KERNEL void %s_merge(const KP_GLOBAL real *part, const KP_GLOBAL kp_i64 *part_idx, "
                 "KP_GLOBAL real *out, KP_GLOBAL kp_i64 *out_idx,\n    kp_i64 nrows, kp_i64 nchunks, kp_i64 ntotal) {\n",
              g->name);
    if (g->dia == KP_GPU_CUDA)
        kp__sb_printf(s, "  const kp_i64 t = (kp_i64)blockIdx.x * blockDim.x + threadIdx.x;\n");
    else kp__sb_printf(s, "  const kp_i64 t = (kp_i64)get_global_id(0);\n");
    kp__sb_printf(s, "  if (t >= ntotal) return;\n"
                 "  const kp_i64 bz = t / nrows, r = t %% nrows;\n"
                 "  real st[%d], pst[%d];\n  kp_i64 sx[%d], psx[%d];\n"
                 "  (void)sx; (void)psx; (void)part_idx; (void)out_idx; (void)out;\n",
              g->NR, g->NR, g->NX, g->NX);
    kp__cg_init(s, prog, "st", "sx");
    kp__sb_printf(s, "  for (kp_i64 ch = 0; ch < nchunks; ch++) {\n"
                 "    const kp_i64 at_ = (bz * nchunks + ch) * nrows + r;\n"
                 "    for (int q_ = 0; q_ < %d; q_++) pst[q_] = part[at_ * %d + q_];\n"
                 "    for (int q_ = 0; q_ < %d; q_++) psx[q_] = part_idx[at_ * %d + q_];\n",
              info->nreal, info->nreal, info->nidx, info->nidx);
    kp__cg_merge(s, prog, "st", "sx", "pst", "psx");
    kp__sb_printf(s, "  }\n  const kp_i64 o_ = t * %d, oi_ = t * %d;\n  (void)o_; (void)oi_;\n", info->out_dim,
              info->out_idx_dim);
    kp__cg_finalize(s, prog, "st", "sx");
    kp__sb_printf(s, "}\n");
}

char *kp__gpu_codegen(const kp_program *prog, kp_dtype dtype, const kp_gpu_settings *set, kp_gpu_dialect dialect,
                      int block, int rows, const char *name, kp_gpu_kernel_info *info) {
    kp_sbuf sb = {0};
    sb.ctx = prog->ctx;
    if (!name) name = "kp";
    int B = block > 0 ? block : kp__gpu_default_block(prog, dtype);
    int R = rows > 0 ? rows : kp__gpu_default_rows(prog, dtype);
    kp__cg_kernel_info(prog, B, R, info);
    kp__sb_printf(&sb, "/* libkp generated kernel: %s reduction, axis %d, %s, %s, B = %d */\n",
              kp__reduction_name(prog->red), prog->axis, dtype == KP_FLOAT32 ? "float32" : "float64",
              dialect == KP_GPU_CUDA ? "CUDA" : "OpenCL", B);
    kp__cg_prelude(&sb, dtype, dialect, name, set->math == KP_MATH_FAST && dtype == KP_FLOAT32);
    if (prog->exact) kp__cg_prelude_exact(&sb, dialect);
    kp_red_family fam = kp__red(prog->red)->family;
    int f32_kahan = dtype == KP_FLOAT32 && set->scheme == KP_SUM_KAHAN; /* float64 always sums by groups, as on the CPU */
    kp_cg_gen g = {
        .s = &sb,
        .prog = prog,
        .dtype = dtype,
        .B = B,
        .W = kp__cg_tile_stride(prog, dtype),
        .grouped = (fam == KP_FAMILY_SUM || fam == KP_FAMILY_LOGSUMEXP || fam == KP_FAMILY_SOFTMAX) && !f32_kahan &&
                   !prog->exact, /* exact terms go one by one into the bins */
        .plain = fam == KP_FAMILY_SUM && dtype == KP_FLOAT32 && set->scheme == KP_SUM_PLAIN,
        .states = set->states,
        .rrow = "rq",
        .dia = dialect,
        .name = name,
        .info = info,
        .R = R,
        .NR = kp__cg_imax1(info->nreal),
        .NX = kp__cg_imax1(info->nidx),
        .NT = kp__cg_group_sums(prog),
        .G = B < KP_GPU_GROUP ? B : KP_GPU_GROUP,
        .rg = set->ranges,
        .rlim = set->ranges ? "rend_" : "nrows",
    };
    emit_reduce_head(&g);
    emit_chunk(&g);
    emit_reduce_tail(&g);
    emit_merge_kernel(&g);
    if (dialect == KP_GPU_CUDA) kp__sb_printf(&sb, "} /* namespace %s */\n", name);
    if (sb.oom) {
        kp__free(sb.ctx, sb.p);
        return NULL;
    }
    return sb.p;
}
