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
#include "cpu/kernel_exact.h"

static void state_size(const kp_program *prog, int *nreal, int *nidx) { kp__state_size(prog, nreal, nidx); }


static void state_init(const kp_program *prog, REAL *s, int64_t *ix) {
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        memset(s, 0, (size_t)nreal * sizeof *s);
        if (prog->exact)
            for (int d = 0; d < D; d++) kp__xsum_init(ix + (size_t)d * KP_XSUM_WORDS);
        break;
    case KP_FAMILY_LOGSUMEXP:
        if (prog->exact) {
            exact_lse_init(ix, D);
            break;
        }
        memset(s, 0, (size_t)nreal * sizeof *s);
        for (int d = 0; d < D; d++) s[d] = (REAL)-INFINITY;
        break;
    case KP_FAMILY_SOFTMAX:
        if (prog->exact) {
            exact_ssmw_init(ix, prog->red_g.dim);
            break;
        }
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
        for (int k = len; k < tile_lanes(len); k++) tmp[k] = (REAL)-INFINITY;
        vm_exp(tmp, tmp, tile_lanes(len));
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
    for (int k = len; k < tile_lanes(len); k++) tmp[k] = (REAL)-INFINITY;
    vm_exp(tmp, tmp, tile_lanes(len));
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

/* kmin_insert for short lists, without data-dependent branches: a candidate
 * lands at a position that looks random to the branch predictor, and a
 * mispredicted loop exit costs more than walking all K slots. p counts the
 * kept entries x does not beat, a prefix as the list is sorted; p = K leaves
 * the list as it is. Empty slots (last) hold the identity, +inf (max: -inf),
 * which a number short of it beats, so for such an x the count needs no
 * look at the indices; any other x (NaN, the identity) takes kmin_insert. */
enum { KMIN_BRANCHLESS_MAX = 16 };
static inline void kmin_insert_short(REAL *v, int64_t *ix, int K, int D, REAL x, int64_t j, int is_max) {
    if (!(is_max ? x > (REAL)-INFINITY : x < (REAL)INFINITY)) {
        kmin_insert(v, ix, K, D, x, j, is_max);
        return;
    }
    int p = 0;
    if (is_max)
        for (int q = 0; q < K; q++) p += !(x > v[q * D]);
    else
        for (int q = 0; q < K; q++) p += !(x < v[q * D]);
    /* Slots after p take their predecessor's entry, then x goes to p. The
     * moves are written as index arithmetic, not selects of values, which
     * the compiler would turn back into branches. */
    for (int q = K - 1; q > 0; q--) {
        int src = q - (q > p);
        v[q * D] = v[src * D];
        ix[q * D] = ix[src * D];
    }
    int at = p - (p == K), enter = p < K;
    REAL xv[2] = {v[at * D], x};
    int64_t xj[2] = {ix[at * D], j};
    v[at * D] = xv[enter];
    ix[at * D] = xj[enter];
}

/* Stripes of tile_bound: the K-th of BOUND_LANES stripe minima is a useful
 * bound while K is at most half of them. */
enum { BOUND_LANES = 16 };

_Static_assert(BOUND_LANES % VL == 0, "stripes fill whole vectors");

/* lm[l] = the least (max: greatest) number among f[k], k = l mod BOUND_LANES,
 * k < full (a multiple of BOUND_LANES); +inf (max: -inf) if none. The
 * blocks of BOUND_LANES go round STRIPE_CHAINS sets of accumulators, so
 * that the min/max latencies overlap instead of forming one chain. */
enum { STRIPE_CHAINS = 4 };
static inline void stripe_extrema(const REAL *restrict f, int full, int is_max, REAL *restrict lm) {
    REAL none = is_max ? (REAL)-INFINITY : (REAL)INFINITY;
#if VL > 1
    enum { A = BOUND_LANES / VL, STEP = STRIPE_CHAINS * BOUND_LANES };
    VT acc[STRIPE_CHAINS][A];
    for (int c = 0; c < STRIPE_CHAINS; c++)
        for (int a = 0; a < A; a++) acc[c][a] = VSET(none);
    /* is_max is the same throughout: -O3 unswitches the loops on it. */
#define KP_EXTREME(a, b) (is_max ? VMAX(a, b) : VMIN(a, b))
    int k = 0;
    for (; k + STEP <= full; k += STEP)
        for (int c = 0; c < STRIPE_CHAINS; c++)
            for (int a = 0; a < A; a++) acc[c][a] = KP_EXTREME(VLD(f + k + c * BOUND_LANES + a * VL), acc[c][a]);
    for (int c = 0; k < full; k += BOUND_LANES, c++)
        for (int a = 0; a < A; a++) acc[c][a] = KP_EXTREME(VLD(f + k + a * VL), acc[c][a]);
    for (int c = 1; c < STRIPE_CHAINS; c++)
        for (int a = 0; a < A; a++) acc[0][a] = KP_EXTREME(acc[c][a], acc[0][a]);
#undef KP_EXTREME
    for (int a = 0; a < A; a++) VST(lm + a * VL, acc[0][a]);
#else
    for (int l = 0; l < BOUND_LANES; l++) lm[l] = none;
    for (int k = 0; k < full; k += BOUND_LANES)
        for (int l = 0; l < BOUND_LANES; l++)
            lm[l] = is_max ? (f[k + l] > lm[l] ? f[k + l] : lm[l]) : (f[k + l] < lm[l] ? f[k + l] : lm[l]);
#endif
}

/* A bound t on what can enter a K-list from f[0..len) alone: lane l's stripe
 * (the elements k = l mod BOUND_LANES) has its minimum (max: maximum) among
 * its numbers, or a NaN, which beats every number; so when the K-th smallest
 * stripe minimum is t, K distinct elements are at or below t or NaN, and any
 * number above t is beaten by K elements of the tile. No bound (+inf; max:
 * -inf) when K is too large or fewer than K stripes hold a number. */
static REAL tile_bound(const REAL *restrict f, int len, int K, int is_max) {
    REAL none = is_max ? (REAL)-INFINITY : (REAL)INFINITY;
    if (2 * K > BOUND_LANES || len < BOUND_LANES) return none;
    REAL lm[BOUND_LANES];
    int full = len - len % BOUND_LANES;
    stripe_extrema(f, full, is_max, lm);
    for (int k = full; k < len; k++) {
        REAL *m = &lm[k - full];
        *m = is_max ? (f[k] > *m ? f[k] : *m) : (f[k] < *m ? f[k] : *m);
    }
    /* The K-th best stripe extremum: the best lm[i] with at least K stripes
     * at or beyond it (lm holds no NaN, so vwithin counts exactly those). */
    REAL t = none;
    for (int i = 0; i < BOUND_LANES; i++) {
        int count = 0;
        for (int l = 0; l < BOUND_LANES; l += VL) count += __builtin_popcount(vwithin(lm + l, lm[i], is_max));
        REAL pick[2] = {none, lm[i]}; /* an index, not a select: it would become a branch */
        REAL c = pick[count >= K];
        t = is_max ? (c > t ? c : t) : (c < t ? c : t);
    }
    return t;
}

/* The lanes of block f[0..NP) worth offering to the K-list: not beyond the
 * tile's bound t (tile_bound), and, once the list is full (full), beating its
 * worst kept value worst (min: below; max: above), NaN included; one bit each.
 * Most blocks of a nearest-neighbour search have none, so the exact, ordered
 * insertion runs on few elements; and as the kept list only tightens while a
 * block is inserted, a lane outside the mask would be refused by it anyway. */
_Static_assert(NP <= 64, "block_candidates keeps one bit per lane");
static inline uint64_t block_candidates(const REAL *f, REAL t, int full, REAL worst, int is_max) {
    uint64_t mask = 0;
    if (full)
        for (int l = 0; l < NP; l += VL)
            mask |= (uint64_t)(vwithin(f + l, t, is_max) & vbeats(f + l, worst, is_max)) << l;
    else
        for (int l = 0; l < NP; l += VL) mask |= (uint64_t)vwithin(f + l, t, is_max) << l;
    return mask;
}

#ifdef KP_VKMIN_MAX
/* select_tile for one component's list of K <= KP_VKMIN_MAX contiguous
 * slots: the tile's candidates (block_candidates' test, against the list as
 * it was before the tile) are gathered without branches, then enter the list
 * in order, which stays in registers meanwhile. Where a block-by-block
 * filter mispredicts on every block with a candidate, this pays for a few
 * more candidates, which the list refuses. */
static void select_tile_vkmin(REAL *v, int64_t *vi, int K, const REAL *fd, int len, int64_t j0, const int64_t *jmap,
                              int is_max) {
    REAL none = (REAL)(is_max ? -INFINITY : INFINITY);
    int32_t co[TILE + 16];
    int full = vi[K - 1] >= 0;
    REAL worst = v[K - 1], t = full ? none : tile_bound(fd, len, K, is_max);
    int n = 0;
    if (full) /* t is then no bound: the lanes that beat the worst kept value */
        for (int k = 0; k < len; k += 16) n += vkmin_offsets(fd + k, len - k, worst, 1, is_max, co + n, k);
    else
        for (int k = 0; k < len; k += 16) n += vkmin_offsets(fd + k, len - k, t, 0, is_max, co + n, k);
    vkmin_list L = vkmin_load(v, vi, K);
    for (int c = 0; c < n; c++) {
        REAL x = fd[co[c]];
        int64_t j = jmap ? jmap[co[c]] : j0 + co[c];
        if (is_max ? x > none : x < none) {
            vkmin_push(&L, K, x, j, is_max);
            continue;
        }
        vkmin_store(&L, v, vi, K); /* NaN or the identity: kmin_insert's rules */
        kmin_insert(v, vi, K, 1, x, j, is_max);
        L = vkmin_load(v, vi, K);
    }
    vkmin_store(&L, v, vi, K);
}
#endif

/* Lane k holds reduced point j0 + k, or jmap[k] when jmap is not NULL (a
 * tile gathered from several ranges, in increasing order). Each lane within
 * the tile's bound is offered in increasing order, except that blocks offer
 * only their candidate lanes (block_candidates); a value equal to the worst
 * kept one never enters (earlier wins). */
static void select_tile(const kp_program *prog, REAL *st, int64_t *ix, const REAL *f, int len, int64_t j0,
                        const int64_t *jmap) {
    int D = prog->fdim;
    int is_max = kp__red(prog->red)->is_max;
    int K = kp__kept_per_component(prog);
    int last = (K - 1) * D;
    int short_list = K <= KMIN_BRANCHLESS_MAX;
#ifdef KP_VKMIN_MAX
    if (D == 1 && K <= KP_VKMIN_MAX) {
        select_tile_vkmin(st, ix, K, f, len, j0, jmap, is_max);
        return;
    }
#endif
    for (int d = 0; d < D; d++) {
        const REAL *fd = f + (size_t)d * TILE;
        REAL *v = st + d;
        int64_t *vi = ix + d;
        /* Once the list is full its worst value filters the tile about as
         * well as the tile's own bound would. */
        REAL t = vi[last] >= 0 ? (REAL)(is_max ? -INFINITY : INFINITY) : tile_bound(fd, len, K, is_max);
        int k = 0;
        for (; k + NP <= len; k += NP)
            for (uint64_t m = block_candidates(fd + k, t, vi[last] >= 0, v[last], is_max); m; m &= m - 1) {
                int l = __builtin_ctzll(m);
                int64_t j = jmap ? jmap[k + l] : j0 + k + l;
                if (short_list) kmin_insert_short(v, vi, K, D, fd[k + l], j, is_max);
                else kmin_insert(v, vi, K, D, fd[k + l], j, is_max);
            }
        for (; k < len; k++)
            if (is_max ? !(fd[k] < t) : !(fd[k] > t))
                kmin_insert(v, vi, K, D, fd[k], jmap ? jmap[k] : j0 + k, is_max);
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
    if (prog->exact && kp__red(prog->red)->family != KP_FAMILY_SELECT) {
        exact_accumulate(prog, ix, f, f2, g, len, tmp);
        return;
    }
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

/* Whether the states are a Sum's (sum, compensation) reals, the common case
 * that the loops over rows of states take without state_init's or
 * state_merge's dispatch. */
static int sums_in_reals(const kp_program *prog) { return kp__red(prog->red)->family == KP_FAMILY_SUM && !prog->exact; }

/* state_merge of two such states of D components. */
static inline void sum_state_merge(int D, REAL *a, const REAL *b) {
    for (int d = 0; d < D; d++) {
        kahan_add(&a[d], &a[D + d], b[d]);
        kahan_add(&a[d], &a[D + d], -b[D + d]);
    }
}

static void state_merge(const kp_program *prog, REAL *a, int64_t *ai, const REAL *b, const int64_t *bi) {
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        if (prog->exact) {
            for (int d = 0; d < D; d++) kp__xsum_merge(ai + (size_t)d * KP_XSUM_WORDS, bi + (size_t)d * KP_XSUM_WORDS);
            break;
        }
        sum_state_merge(D, a, b);
        break;
    case KP_FAMILY_LOGSUMEXP:
        if (prog->exact) exact_lse_merge(ai, bi, D);
        else
            for (int d = 0; d < D; d++) lse_merge(&a[d], &a[D + d], &a[2 * D + d], b[d], b[D + d], b[2 * D + d]);
        break;
    case KP_FAMILY_SOFTMAX:
        if (prog->exact) exact_ssmw_merge(ai, bi, prog->red_g.dim);
        else ssmw_merge(a, b, prog->red_g.dim);
        break;
    case KP_FAMILY_SELECT: select_merge(prog, a, ai, b, bi); break;
    }
}

/* Writes one row's outputs. out: values (stride cs), oi: indices (stride ics). */
static void state_finalize(const kp_program *prog, const REAL *st, const int64_t *ix, REAL *out, int64_t cs,
                           int64_t *oi, int64_t ics) {
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        if (prog->exact)
            for (int d = 0; d < D; d++) out[d * cs] = (REAL)kp__xsum_value(ix + (size_t)d * KP_XSUM_WORDS, KP_REAL_F32);
        else
            for (int d = 0; d < D; d++) out[d * cs] = st[d];
        return;
    case KP_FAMILY_LOGSUMEXP:
        if (prog->exact) {
            exact_lse_finalize(ix, D, out, cs);
            return;
        }
        for (int d = 0; d < D; d++) {
            REAL m = st[d];
            out[d * cs] = (m != m || m == (REAL)-INFINITY || m == (REAL)INFINITY) ? m : m + LM(log)(st[D + d]);
        }
        return;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        if (prog->exact) {
            exact_ssmw_finalize(ix, DG, out, cs);
            return;
        }
        for (int d = 0; d < DG; d++)
            out[d * cs] = st[0] != st[0] ? st[0] : st[0] == (REAL)-INFINITY ? (REAL)NAN : st[3 + d] / st[1];
        return;
    }
    case KP_FAMILY_SELECT: {
        int nreal, nidx;
        state_size(prog, &nreal, &nidx);
        if (kp__red(prog->red)->value != KP_WIDTH_NONE)
            for (int k = 0; k < nreal; k++) out[k * cs] = st[k];
        if (kp__red(prog->red)->index != KP_WIDTH_NONE)
            for (int k = 0; k < nidx; k++) oi[k * ics] = ix[k];
        return;
    }
    }
}

#endif
