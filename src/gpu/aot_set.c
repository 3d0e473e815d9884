/* aot_set.c — the standard formulas of the ahead-of-time kernels (see aot_set.h). */
#include "gpu/aot_set.h"

#include <stdio.h>
#include <string.h>

/* pykp/kernels.py KERNELS, verbatim: (value formula, log formula, uses sigma).
 * {x}, {y}, {p} are replaced as kernel_product does. Keep in sync: the test
 * bindings/python/tests/test_cuda_aot.py fails if pykp's text stops hitting. */
typedef struct {
    const char *name, *value, *log;
    int sigma;
} pykp_kernel;

static const pykp_kernel KERNELS[] = {
    {"gaussian", "Exp(-SqDist({x},{y})*Inv(Square({p})))", "(-SqDist({x},{y})*Inv(Square({p})))", 1},
    {"laplacian", "Exp(-Norm2({x}-{y})*Inv({p}))", "(-Norm2({x}-{y})*Inv({p}))", 1},
    {"cauchy", "Inv(1+SqDist({x},{y})*Inv(Square({p})))", "(-Log(1+SqDist({x},{y})*Inv(Square({p}))))", 1},
    {"inverse_multiquadric", "Rsqrt(1+SqDist({x},{y})*Inv(Square({p})))",
     "(-0.5*Log(1+SqDist({x},{y})*Inv(Square({p}))))", 1},
    {"energy", "(-Norm2({x}-{y}))", NULL /* Log(-Norm2): NaN, nobody runs it */, 0},
};
#define NKERNELS (sizeof KERNELS / sizeof KERNELS[0])

static const int DIMS[][2] = {{1, 1}, {2, 1}, {3, 1}, {2, 2}, {3, 3}}; /* (D, E) */
#define NDIMS (sizeof DIMS / sizeof DIMS[0])

/* Families: (kernel, sum) and (kernel, lse) for each pykp kernel that has
 * them, then the kp.h example. Returns 1 and the pykp kernel for a pykp family. */
static int pykp_family(size_t fam, size_t *kernel, int *lse) {
    size_t n = 0;
    for (size_t k = 0; k < NKERNELS; k++)
        for (int l = 0; l < 2; l++) {
            if (l && !KERNELS[k].log) continue;
            if (n++ == fam) {
                *kernel = k;
                *lse = l;
                return 1;
            }
        }
    return 0;
}

size_t kp__aot_set_count(void) {
    size_t nfam = 0, k;
    int l;
    while (pykp_family(nfam, &k, &l))
        nfam++;
    return (nfam + 1) * NDIMS;
}

/* dst <- fmt with {x}, {y}, {p} replaced. */
static void substitute(char *dst, size_t size, const char *fmt, const char *x, const char *y, const char *p) {
    size_t n = 0;
    for (const char *s = fmt; *s && n + 1 < size; s++) {
        const char *rep = NULL;
        if (s[0] == '{' && s[1] && s[2] == '}') rep = s[1] == 'x' ? x : s[1] == 'y' ? y : s[1] == 'p' ? p : NULL;
        if (rep) {
            for (; *rep && n + 1 < size; rep++)
                dst[n++] = *rep;
            s += 2;
        } else {
            dst[n++] = *s;
        }
    }
    dst[n] = 0;
}

static void add_alias(kp_aot_formula *f, const char *name, const char *kind, int dim) {
    char *a = f->alias_text[f->n_aliases];
    snprintf(a, sizeof f->alias_text[0], "%s = %s(%d)", name, kind, dim);
    f->aliases[f->n_aliases++] = a;
}

void kp__aot_set_get(size_t i, kp_aot_formula *out) {
    memset(out, 0, sizeof *out);
    size_t kernel = 0;
    int lse = 0, pykp = pykp_family(i / NDIMS, &kernel, &lse);
    int D = DIMS[i % NDIMS][0], E = DIMS[i % NDIMS][1];
    out->D = D;
    out->E = E;
    if (!pykp) { /* the kp.h worked example */
        add_alias(out, "x", "Vi", D);
        add_alias(out, "y", "Vj", D);
        add_alias(out, "s", "Pm", 1);
        add_alias(out, "b", "Vj", E);
        snprintf(out->text, sizeof out->text, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)");
        snprintf(out->label, sizeof out->label, "kp.h gaussian sum D=%d E=%d", D, E);
    } else { /* pykp kernel_product: _compile() in kernels.py */
        const pykp_kernel *kn = &KERNELS[kernel];
        add_alias(out, "xi0", "Vi", D);
        add_alias(out, "yj1", "Vj", D);
        if (kn->sigma) add_alias(out, "pm0", "Pm", 1);
        add_alias(out, "bj", "Vj", E);
        char F[200];
        substitute(F, sizeof F, lse ? kn->log : kn->value, "xi0", "yj1", "pm0");
        snprintf(out->text, sizeof out->text, lse ? "LogSumExp_Reduction((%s)+bj,1)" : "Sum_Reduction((%s)*bj,1)", F);
        snprintf(out->label, sizeof out->label, "pykp %s %s D=%d E=%d", kn->name, lse ? "lse" : "sum", D, E);
    }
    out->nargs = (int)out->n_aliases;
    /* x (0), y (1) and b (last); not the sigma parameter (2, when present). */
    out->grads[out->ngrads++] = 0;
    out->grads[out->ngrads++] = 1;
    out->grads[out->ngrads++] = out->nargs - 1;
}
