/*
 * kernel_reduce.h — the reduction monoids on the CPU: init, accumulate a tile,
 * merge two states, finalize. Included by kernel_impl.h only.
 *
 * State of one output row (reals, then int64 indices), D = dim F, DG = dim G:
 *   Sum               s[D], comp[D]            Kahan-compensated sum
 *   LogSumExp         m[D], s[D], comp[D]      sum_j exp(F_j - m), m the running max
 *   SumSoftMaxWeight  m, s, comp_s, num[DG], comp_num[DG]
 *   Min/Max family    v[D]           idx[D]    idx = -1 while empty
 *   KMin family       v[K*D]         idx[K*D]  sorted, slot k*D+d
 * Merge(a, b) assumes a covers smaller indices than b: on ties a wins, which
 * gives "ties resolve to the smallest index" for every split of the work.
 */
#ifndef KP_CPU_KERNEL_REDUCE_H
#define KP_CPU_KERNEL_REDUCE_H

#include "plan/reduction.h"

static void state_size(const kp_program *prog, int *nreal, int *nidx) { kp__state_size(prog, nreal, nidx); }


static void state_init(const kp_program *prog, REAL *s, int64_t *ix) {
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: memset(s, 0, (size_t)nreal * sizeof *s); break;
    case KP_FAMILY_LOGSUMEXP:
        memset(s, 0, (size_t)nreal * sizeof *s);
        for (int d = 0; d < D; d++) s[d] = (REAL)-INFINITY;
        break;
    case KP_FAMILY_SOFTMAX:
        memset(s, 0, (size_t)nreal * sizeof *s);
        s[0] = (REAL)-INFINITY;
        break;
    case KP_FAMILY_SELECT:
        for (int k = 0; k < nreal; k++) s[k] = (REAL)(kp__red(prog->red)->is_max ? -INFINITY : INFINITY);
        for (int k = 0; k < nidx; k++) ix[k] = -1;
        break;
    }
}

/* Kahan: adds x to (*s, *c) (device/monoid.h, shared with the GPU kernels). */
static inline void kahan_add(REAL *s, REAL *c, REAL x) { KP_KAHAN(*s, *c, x); }

/* Sum over k in [0, len) of TERM (an expression of k), in NP = 4 VL partial
 * sums (plain or Kahan per lane): four independent vector accumulators hide
 * the add latency; the lanes are combined pairwise at the end. */
#define NP (4 * VL)
#define KP_TILE_SUM_BODY(TERM)                                         \
    REAL part[NP], comp[NP];                                           \
    for (int l = 0; l < NP; l++) part[l] = comp[l] = 0;                \
    int full = len - len % NP;                                         \
    if (kahan) {                                                       \
        for (int k0 = 0; k0 < full; k0 += NP)                          \
            for (int l = 0; l < NP; l++) {                             \
                int k = k0 + l;                                        \
                REAL y = (TERM)-comp[l];                               \
                REAL t = part[l] + y;                                  \
                REAL cc = (t - part[l]) - y;                           \
                comp[l] = t - t == 0 ? cc : (REAL)0;                   \
                part[l] = t;                                           \
            }                                                          \
    } else {                                                           \
        for (int k0 = 0; k0 < full; k0 += NP)                          \
            for (int l = 0; l < NP; l++) {                             \
                int k = k0 + l;                                        \
                part[l] += (TERM);                                     \
            }                                                          \
    }                                                                  \
    for (int k = full; k < len; k++) part[k - full] += (TERM);         \
    for (int w = NP / 2; w >= 1; w /= 2)                               \
        for (int l = 0; l < w; l++) part[l] += part[l + w];            \
    return part[0];

static REAL tile_sum(const REAL *restrict f, int len, int kahan) { KP_TILE_SUM_BODY(f[k]) }

/* Sum of a[k] * b[k]. */
static REAL tile_dot(const REAL *restrict a, const REAL *restrict b, int len, int kahan) {
    KP_TILE_SUM_BODY(a[k] * b[k])
}

/* Sum of a[k] * b[k] * c[k] (joint programs' three-factor terms). */
static REAL tile_dot3(const REAL *restrict a, const REAL *restrict b, const REAL *restrict c, int len, int kahan) {
    KP_TILE_SUM_BODY(a[k] * b[k] * c[k])
}

/* Max of f[0..len), or NaN if any is NaN: branch-free lanes, so it vectorizes. */
static REAL tile_max(const REAL *restrict f, int len) {
    REAL part[NP];
    int nan = 0;
    for (int l = 0; l < NP; l++) part[l] = (REAL)-INFINITY;
    int full = len - len % NP;
    for (int k = 0; k < full; k += NP)
        for (int l = 0; l < NP; l++) {
            REAL v = f[k + l];
            nan |= v != v;
            part[l] = v > part[l] ? v : part[l];
        }
    for (int k = full; k < len; k++) {
        nan |= f[k] != f[k];
        part[k - full] = f[k] > part[k - full] ? f[k] : part[k - full];
    }
    if (nan) return (REAL)NAN;
    for (int w = NP / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) part[l] = part[l + w] > part[l] ? part[l + w] : part[l];
    return part[0];
}

/* Rescales a running (m, s, comp) of exp-sums to a new max mnew >= m. */
static inline void rescale(REAL m, REAL mnew, REAL *s, REAL *c) {
    if (m == mnew) return;
    REAL f = m == (REAL)-INFINITY ? (REAL)0 : LM(exp)(m - mnew);
    *s *= f;
    *c *= f;
}

/* tmp: TILE scratch. f: the F tile for component d (stride TILE between comps). */
static void lse_tile(REAL *st, int D, const REAL *f, int len, REAL *restrict tmp, int kahan) {
    for (int d = 0; d < D; d++) {
        const REAL *fd = f + (size_t)d * TILE;
        REAL *m = &st[d], *s = &st[D + d], *c = &st[2 * D + d];
        REAL mt = tile_max(fd, len);
        if (mt != mt || *m != *m) {
            *m = mt != mt ? mt : *m;
            continue;
        }
        if (mt == (REAL)-INFINITY) continue;
        if (mt == (REAL)INFINITY || *m == (REAL)INFINITY) {
            *m = (REAL)INFINITY;
            *s = 1;
            *c = 0;
            continue;
        }
        if (mt > *m) {
            rescale(*m, mt, s, c);
            *m = mt;
        }
        for (int k = 0; k < len; k++) tmp[k] = fd[k] - *m;
        for (int k = len; k < TILE; k++) tmp[k] = (REAL)-INFINITY;
        vm_exp(tmp, tmp);
        kahan_add(s, c, tile_sum(tmp, len, kahan));
    }
}

static void lse_merge(REAL *m, REAL *s, REAL *c, REAL m2, REAL s2, REAL c2) {
    if (*m != *m || m2 != m2) {
        *m = *m != *m ? *m : m2;
        return;
    }
    if (m2 == (REAL)-INFINITY) return;
    if (*m == (REAL)INFINITY || m2 == (REAL)INFINITY) {
        *m = (REAL)INFINITY;
        *s = 1;
        *c = 0;
        return;
    }
    REAL mn = *m > m2 ? *m : m2;
    rescale(*m, mn, s, c);
    rescale(m2, mn, &s2, &c2);
    *m = mn;
    kahan_add(s, c, s2);
    kahan_add(s, c, -c2);
}

static void ssmw_tile(REAL *st, int DG, const REAL *f, const REAL *g, int len, REAL *restrict tmp, int kahan) {
    REAL *m = &st[0], *s = &st[1], *cs = &st[2], *num = &st[3], *cn = &st[3 + DG];
    REAL mt = tile_max(f, len);
    if (mt != mt || *m != *m) {
        *m = mt != mt ? mt : *m;
        return;
    }
    if (mt == (REAL)-INFINITY) return;
    if (mt == (REAL)INFINITY || *m == (REAL)INFINITY) { /* weights are 0/0: undefined */
        *m = (REAL)NAN;
        return;
    }
    if (mt > *m) {
        REAL fct = *m == (REAL)-INFINITY ? (REAL)0 : LM(exp)(*m - mt);
        *s *= fct;
        *cs *= fct;
        for (int d = 0; d < DG; d++) {
            num[d] *= fct;
            cn[d] *= fct;
        }
        *m = mt;
    }
    for (int k = 0; k < len; k++) tmp[k] = f[k] - *m;
    for (int k = len; k < TILE; k++) tmp[k] = (REAL)-INFINITY;
    vm_exp(tmp, tmp);
    kahan_add(s, cs, tile_sum(tmp, len, kahan));
    REAL *w = tmp + TILE; /* second scratch tile */
    for (int d = 0; d < DG; d++) {
        const REAL *gd = g + (size_t)d * TILE;
        for (int k = 0; k < len; k++) w[k] = tmp[k] * gd[k];
        kahan_add(&num[d], &cn[d], tile_sum(w, len, kahan));
    }
}

static void ssmw_merge(REAL *a, const REAL *b, int DG) {
    if (a[0] != a[0] || b[0] != b[0]) {
        a[0] = a[0] != a[0] ? a[0] : b[0];
        return;
    }
    if (b[0] == (REAL)-INFINITY) return;
    REAL mn = a[0] > b[0] ? a[0] : b[0];
    REAL fa = a[0] == (REAL)-INFINITY ? (REAL)0 : LM(exp)(a[0] - mn);
    REAL fb = LM(exp)(b[0] - mn);
    a[0] = mn;
    for (int k = 1; k < 3 + 2 * DG; k++) a[k] *= fa;
    kahan_add(&a[1], &a[2], b[1] * fb);
    kahan_add(&a[1], &a[2], -b[2] * fb);
    for (int d = 0; d < DG; d++) {
        kahan_add(&a[3 + d], &a[3 + DG + d], b[3 + d] * fb);
        kahan_add(&a[3 + d], &a[3 + DG + d], -b[3 + DG + d] * fb);
    }
}

/* Inserts (v, j) into the sorted K-list (stride D). Earlier entries win ties. */
static inline void kmin_insert(REAL *v, int64_t *ix, int K, int D, REAL x, int64_t j, int is_max) {
    int last = (K - 1) * D;
    if (ix[last] >= 0 && !(is_max ? BETTER_MAX(x, v[last]) : BETTER_MIN(x, v[last]))) return;
    int p = K - 1;
    while (p > 0) {
        int q = (p - 1) * D;
        if (ix[q] >= 0 && !(is_max ? BETTER_MAX(x, v[q]) : BETTER_MIN(x, v[q]))) break;
        v[p * D] = v[q];
        ix[p * D] = ix[q];
        p--;
    }
    v[p * D] = x;
    ix[p * D] = j;
}

/* The lanes of block f[0..NP) that beat thr (min: below; max: above) or are
 * NaN, one bit each. Most blocks of a nearest-neighbour search have none, so
 * the exact, ordered insertion below runs on few elements; and as the kept
 * list only tightens while a block is inserted, a lane outside the mask would
 * be refused by kmin_insert anyway. */
_Static_assert(NP <= 64, "block_candidates keeps one bit per lane");
static inline uint64_t block_candidates(const REAL *f, REAL thr, int is_max) {
    uint64_t mask = 0;
    for (int l = 0; l < NP; l += VL) mask |= (uint64_t)vbeats(f + l, thr, is_max) << l;
    return mask;
}

/* Lane k holds reduced point j0 + k, or jmap[k] when jmap is not NULL (a
 * tile gathered from several ranges, in increasing order). */
static void select_tile(const kp_program *prog, REAL *st, int64_t *ix, const REAL *f, int len, int64_t j0,
                        const int64_t *jmap) {
    int D = prog->fdim;
    int is_max = kp__red(prog->red)->is_max;
    int K = kp__kept_per_component(prog);
    int last = (K - 1) * D;
    for (int d = 0; d < D; d++) {
        const REAL *fd = f + (size_t)d * TILE;
        REAL *v = st + d;
        int64_t *vi = ix + d;
        int k = 0;
        /* Once the list is full and its worst kept value is a number, only a
         * block's candidate lanes are offered; a value equal to it never enters
         * (earlier wins). */
        for (; k + NP <= len; k += NP) {
            if (vi[last] < 0 || v[last] != v[last]) {
                for (int l = 0; l < NP; l++)
                    kmin_insert(v, vi, K, D, fd[k + l], jmap ? jmap[k + l] : j0 + k + l, is_max);
                continue;
            }
            for (uint64_t m = block_candidates(fd + k, v[last], is_max); m; m &= m - 1) {
                int l = __builtin_ctzll(m);
                kmin_insert(v, vi, K, D, fd[k + l], jmap ? jmap[k + l] : j0 + k + l, is_max);
            }
        }
        for (; k < len; k++) kmin_insert(v, vi, K, D, fd[k], jmap ? jmap[k] : j0 + k, is_max);
    }
}

static void select_merge(const kp_program *prog, REAL *a, int64_t *ai, const REAL *b, const int64_t *bi) {
    int D = prog->fdim, K = kp__kept_per_component(prog);
    int is_max = kp__red(prog->red)->is_max;
    for (int d = 0; d < D; d++)
        for (int k = 0; k < K && bi[k * D + d] >= 0; k++)
            kmin_insert(a + d, ai + d, K, D, b[k * D + d], bi[k * D + d], is_max);
}

/* Accumulates one tile (len valid lanes, first reduced index j0; jmap: see select_tile). */
static void state_accumulate(const kp_program *prog, kp_sum_scheme scheme, REAL *st, int64_t *ix, const REAL *f,
                             const REAL *f2, const REAL *g, int len, int64_t j0, const int64_t *jmap, REAL *tmp) {
    int D = prog->fdim;
    int lane_kahan = KP_REAL_F32 && scheme == KP_SUM_KAHAN;
    int compensate = !(KP_REAL_F32 && scheme == KP_SUM_PLAIN);
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        for (int d = 0; d < D; d++) {
            REAL t = f2 ? tile_dot(f + (prog->red_f.dim == 1 ? 0 : (size_t)d * TILE),
                                   f2 + (prog->red_f2.dim == 1 ? 0 : (size_t)d * TILE), len, lane_kahan)
                        : tile_sum(f + (size_t)d * TILE, len, lane_kahan);
            if (compensate) kahan_add(&st[d], &st[D + d], t);
            else st[d] += t;
        }
        break;
    case KP_FAMILY_LOGSUMEXP: lse_tile(st, D, f, len, tmp, lane_kahan); break;
    case KP_FAMILY_SOFTMAX: ssmw_tile(st, prog->red_g.dim, f, g, len, tmp, lane_kahan); break;
    case KP_FAMILY_SELECT: select_tile(prog, st, ix, f, len, j0, jmap); break;
    }
}

static void state_merge(const kp_program *prog, REAL *a, int64_t *ai, const REAL *b, const int64_t *bi) {
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        for (int d = 0; d < D; d++) {
            kahan_add(&a[d], &a[D + d], b[d]);
            kahan_add(&a[d], &a[D + d], -b[D + d]);
        }
        break;
    case KP_FAMILY_LOGSUMEXP:
        for (int d = 0; d < D; d++) lse_merge(&a[d], &a[D + d], &a[2 * D + d], b[d], b[D + d], b[2 * D + d]);
        break;
    case KP_FAMILY_SOFTMAX: ssmw_merge(a, b, prog->red_g.dim); break;
    case KP_FAMILY_SELECT: select_merge(prog, a, ai, b, bi); break;
    }
}

/* Writes one row's outputs. out: values (stride cs), oi: indices (stride ics). */
static void state_finalize(const kp_program *prog, const REAL *st, const int64_t *ix, REAL *out, int64_t cs,
                           int64_t *oi, int64_t ics) {
    int D = prog->fdim;
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        for (int d = 0; d < D; d++) out[d * cs] = st[d];
        return;
    case KP_FAMILY_LOGSUMEXP:
        for (int d = 0; d < D; d++) {
            REAL m = st[d];
            out[d * cs] = (m != m || m == (REAL)-INFINITY || m == (REAL)INFINITY) ? m : m + LM(log)(st[D + d]);
        }
        return;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        for (int d = 0; d < DG; d++)
            out[d * cs] = st[0] != st[0] ? st[0] : st[0] == (REAL)-INFINITY ? (REAL)NAN : st[3 + d] / st[1];
        return;
    }
    case KP_FAMILY_SELECT:
        if (kp__red(prog->red)->value != KP_WIDTH_NONE)
            for (int k = 0; k < nreal; k++) out[k * cs] = st[k];
        if (kp__red(prog->red)->index != KP_WIDTH_NONE)
            for (int k = 0; k < nidx; k++) oi[k * ics] = ix[k];
        return;
    }
}

#endif
