/*
 * main.c — uses an installed libkp found by find_package(libkp): for each x_i,
 * the index of its nearest y_j (ArgMin_Reduction), checked against a direct
 * loop. Exits 0 when they agree.
 */
#include <kp.h>
#include <stdint.h>
#include <stdio.h>

#define N 6
#define M 9

int main(void)
{
    double x[N * 2], y[M * 2];
    for (int i = 0; i < N * 2; i++)
        x[i] = (double)((i * 7) % 11) / 11.0;
    for (int j = 0; j < M * 2; j++)
        y[j] = (double)((j * 5) % 13) / 13.0;
    int64_t nearest[N];

    kp_context *ctx = NULL;
    const char *aliases[] = {"x = Vi(2)", "y = Vj(2)"};
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT64, N, 2), kp_array_2d(y, KP_FLOAT64, M, 2)};
    kp_array idx = kp_array_2d(nearest, KP_INT64, N, 1);
    kp_status st = kp_context_new(&ctx);
    if (st == KP_OK)
        st = kp_reduce(ctx, "ArgMin_Reduction(SqDist(x,y), 1)", aliases, 2, KP_FLOAT64, args, 2,
                       NULL, &idx);
    if (st != KP_OK) {
        fprintf(stderr, "libkp: %s: %s\n", kp_status_string(st),
                ctx ? kp_context_message(ctx) : "");
        kp_context_free(ctx);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int64_t best = 0;
        double best_d = 1e300;
        for (int j = 0; j < M; j++) {
            const double d0 = x[2 * i] - y[2 * j], d1 = x[2 * i + 1] - y[2 * j + 1];
            const double d = d0 * d0 + d1 * d1;
            if (d < best_d) {
                best_d = d;
                best = j;
            }
        }
        printf("nearest y to x[%d]: %lld (direct loop: %lld)\n", i, (long long)nearest[i],
               (long long)best);
        bad |= nearest[i] != best;
    }
    kp_context_free(ctx);
    printf(bad ? "MISMATCH\n" : "ok\n");
    return bad;
}
