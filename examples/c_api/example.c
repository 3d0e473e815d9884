/*
 * example.c — the smallest complete libkp program: a Gaussian kernel product
 *
 *     g_i = sum_j exp(-|x_i - y_j|^2 * s) * b_j
 *
 * on a few points, checked against a direct loop. Build it against an
 * installed libkp with the Makefile next to it (pkg-config), or in-tree as the
 * target kp_example_c_api. Exits 0 when libkp agrees with the direct loop.
 */
#include <kp.h>
#include <math.h>
#include <stdio.h>

#define N 5
#define M 7

int main(void)
{
    float x[N * 3], y[M * 3], b[M], g[N], s = 0.5f;
    for (int i = 0; i < N * 3; i++)
        x[i] = (float)(i % 7) * 0.25f;
    for (int j = 0; j < M * 3; j++)
        y[j] = (float)(j % 5) * 0.3f;
    for (int j = 0; j < M; j++)
        b[j] = 1.0f + (float)j;

    kp_context *ctx = NULL;
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    kp_status st = kp_context_new(&ctx);
    if (st == KP_OK)
        st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", aliases, 4, &f);
    if (st == KP_OK)
        st = kp_plan_new(ctx, f, KP_FLOAT32, &plan);
    if (st == KP_OK) {
        kp_array args[4] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3),
                            kp_array_1d(&s, KP_FLOAT32, 1), kp_array_2d(b, KP_FLOAT32, M, 1)};
        kp_array out = kp_array_2d(g, KP_FLOAT32, N, 1);
        st = kp_plan_exec(plan, args, 4, &out, NULL, NULL);
    }
    if (st != KP_OK) {
        fprintf(stderr, "libkp: %s: %s\n", kp_status_string(st),
                ctx ? kp_context_message(ctx) : "");
        kp_plan_free(plan);
        kp_formula_free(f);
        kp_context_free(ctx);
        return 1;
    }

    double max_err = 0;
    for (int i = 0; i < N; i++) {
        double ref = 0;
        for (int j = 0; j < M; j++) {
            double d2 = 0;
            for (int k = 0; k < 3; k++) {
                const double d = (double)x[i * 3 + k] - (double)y[j * 3 + k];
                d2 += d * d;
            }
            ref += exp(-d2 * (double)s) * (double)b[j];
        }
        const double err = fabs((double)g[i] - ref) / fabs(ref);
        if (err > max_err)
            max_err = err;
        printf("g[%d] = %.6f   (direct loop: %.6f)\n", i, (double)g[i], ref);
    }
    printf("libkp %d.%d.%d, max relative error %.2e\n", KP_VERSION_MAJOR, KP_VERSION_MINOR,
           KP_VERSION_PATCH, max_err);

    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    return max_err < 1e-5 ? 0 : 1;
}
