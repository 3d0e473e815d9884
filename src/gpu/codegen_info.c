/* codegen_info.c — the launch facts of the generated kernels: block size B, rows per thread R,
 * the shared tile's stride, the pair loop's unroll factor, and the argument list (codegen.h). */
#include <string.h>

#include "gpu/codegen_internal.h"
#include "plan/reduction.h"

/* Reals per point in the shared tile: the COL values padded to a multiple of
 * 16 bytes (from 3 values on; 1 and 2 stay as they are), so that the pair loop
 * reads a point with vector loads (ld.shared.v4 / v2) broadcast to the warp. */
int kp__cg_tile_stride(const kp_program *prog, kp_dtype dtype) {
    int per16 = dtype == KP_FLOAT32 ? 4 : 2, n = prog->col_size;
    return n <= 2 ? n : (n + per16 - 1) / per16 * per16;
}

int kp__gpu_default_block(const kp_program *prog, kp_dtype dtype) {
    int b = 128;
    size_t esz = dtype == KP_FLOAT32 ? 4 : 8;
    while (b > 16 && (size_t)kp__cg_tile_stride(prog, dtype) * (size_t)b * esz > 16384) b /= 2;
    return b;
}

/* Components the pair program computes: what one copy of the pair loop's body costs. */
static int pair_components(const kp_program *prog) {
    int size = 0;
    for (int i = 0; i < prog->pair.n; i++) size += prog->pair.code[i].out.dim;
    return size;
}

/* Group sums ts per row (grouped Sum, LogSumExp, SumSoftMaxWeight). */
int kp__cg_group_sums(const kp_program *prog) {
    return kp__red(prog->red)->family == KP_FAMILY_SOFTMAX ? 1 + prog->red_g.dim : kp__cg_imax1(prog->fdim);
}

int kp__gpu_default_rows(const kp_program *prog, kp_dtype dtype) {
    int nreal, nidx, words = dtype == KP_FLOAT32 ? 1 : 2;
    kp__state_size(prog, &nreal, &nidx);
    /* 32-bit registers a row holds for the whole loop: ROW values, chunk and
       running states, group sums (64-bit indices take two). */
    int per_row = (prog->row_size + 2 * nreal + kp__cg_group_sums(prog)) * words + 4 * nidx;
    int size = pair_components(prog);
    if (size <= 16 && 4 * per_row <= KP_GPU_ROW_REGS) return 4;
    if (size <= 48 && 2 * per_row <= KP_GPU_ROW_REGS) return 2;
    return 1;
}

/* Unroll factor of the CUDA pair loop: KP_GPU_UNROLL copies for small pair
 * programs (the kernel products: loop overhead matters there), fewer for large
 * ones, whose body amortizes the loop anyway and whose compile time (NVRTC, on
 * the first call) grows with every copy. Each copy runs the body for R rows. */
int kp__cg_pair_unroll(const kp_program *prog, int R) {
    int size = pair_components(prog);
    int u = size <= 16 ? KP_GPU_UNROLL : size <= 48 ? KP_GPU_UNROLL / 2 : KP_GPU_UNROLL / 4;
    return R >= 4 && u > 4 ? u / 2 : u;
}

/* The launch facts of the kernels: B, R, state and output widths, and the
 * argument positions read by VAR instructions, in increasing order. */
void kp__cg_kernel_info(const kp_program *prog, int B, int R, kp_gpu_kernel_info *info) {
    memset(info, 0, sizeof *info);
    info->block = B;
    info->rows = R;
    kp__state_size(prog, &info->nreal, &info->nidx);
    kp__out_widths(prog, &info->out_dim, &info->out_idx_dim);
    info->no_split = prog->exact && prog->red_scale.dim;
    int dim_of[KP_MAX_ARGS];
    kp_var_category cat_of[KP_MAX_ARGS];
    for (int p = 0; p < KP_MAX_ARGS; p++) dim_of[p] = 0;
    const kp_program_part *parts[3] = {&prog->row, &prog->col, &prog->pair};
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < parts[q]->n; i++)
            if (parts[q]->code[i].op == KP_OP_VAR) {
                int p = parts[q]->code[i].ip[1];
                if (p >= 0 && p < KP_MAX_ARGS) {
                    dim_of[p] = parts[q]->code[i].out.dim;
                    cat_of[p] = (kp_var_category)parts[q]->code[i].ip[0];
                }
            }
    for (int p = 0; p < KP_MAX_ARGS; p++)
        if (dim_of[p]) {
            info->used[info->nused] = p;
            info->used_dim[info->nused] = dim_of[p];
            info->used_cat[info->nused] = cat_of[p];
            info->nused++;
        }
}
