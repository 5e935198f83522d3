/* sgemm throughput at the shapes of the SAC update (batch 128, width 256),
 * plus one CW-shaped MLP forward+backward for reference.
 *
 *   bench_sgemm [--threads N]     default: 1 thread, then 2 threads
 *
 * Prints `name: value unit` lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/nn.h"

typedef struct {
    const char *name;
    char ta, tb;
    int M, N, K;
} shape;

static double gflops(const shape *s, float *A, float *B, float *C, double seconds) {
    const int lda = s->ta == 'T' ? s->M : s->K;
    const int ldb = s->tb == 'T' ? s->K : s->N;
    for (int i = 0; i < 20; i++) /* warm-up: thread pool, caches, clocks */
        crl_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
    long reps = 0;
    const double t0 = crl_now();
    double t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 50; i++)
            crl_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C,
                      s->N);
        reps += 50;
        t = crl_now();
    }
    return 2.0 * s->M * s->N * s->K * (double)reps / (t - t0) / 1e9;
}

/* One CW critic-sized network (obs 39 + act 4, 4 x 256, out 1), batch 128:
 * forward + backward with weight gradients and dx. Microseconds per pass. */
static double mlp_us(double seconds) {
    crl_mlp_spec sp;
    crl_mlp m;
    crl_mlp_ws ws;
    crl_mlp_spec_cw(&sp, 43, 1, 1, 4, 256);
    if (crl_mlp_init(&m, &sp, NULL) != CRL_OK ||
        crl_mlp_ws_alloc(&ws, &m, 128, NULL) != CRL_OK)
        return -1.0;
    float *p = malloc(m.n_params * sizeof *p), *g = calloc(m.n_params, sizeof *g);
    float *x = malloc(128 * 43 * sizeof *x), *dx = malloc(128 * 43 * sizeof *dx);
    float dout[128];
    crl_rng rng;
    crl_rng_seed(&rng, 1);
    crl_mlp_init_params(&m, p, &rng);
    for (int i = 0; i < 128 * 43; i++) x[i] = (float)crl_rng_normal(&rng);
    for (int i = 0; i < 128; i++) dout[i] = 1.0f / 128;
    for (int i = 0; i < 10; i++) {
        crl_mlp_forward(&m, p, &ws, x, 128, NULL);
        crl_mlp_backward(&m, p, g, &ws, dout, 128, dx);
    }
    long reps = 0;
    const double t0 = crl_now();
    double t = t0;
    while (t - t0 < seconds) {
        crl_mlp_forward(&m, p, &ws, x, 128, NULL);
        crl_mlp_backward(&m, p, g, &ws, dout, 128, dx);
        reps++;
        t = crl_now();
    }
    crl_mlp_ws_free(&ws);
    free(p);
    free(g);
    free(x);
    free(dx);
    return (t - t0) / (double)reps * 1e6;
}

int main(int argc, char **argv) {
    int only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            only = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--threads N]\n", argv[0]);
            return 2;
        }
    }
    crl_err err = {0};
    if (crl_blas_init(only > 0 ? only : 1, &err) != CRL_OK) {
        fprintf(stderr, "bench_sgemm: %s\n", err.msg);
        return 1;
    }
    printf("blas_kernel: %s\n", crl_blas_kernel());
    printf("blas_how: %s\n", crl_blas_how());

    const shape shapes[] = {
        {"sgemm_128x256x256", 'N', 'N', 128, 256, 256},    /* forward  x W    */
        {"sgemm_tn_256x256x128", 'T', 'N', 256, 256, 128}, /* backward x^T dy */
        {"sgemm_nt_128x256x256", 'N', 'T', 128, 256, 256}, /* backward dy W^T */
    };
    const size_t n = 256 * 256;
    float *A = malloc(n * sizeof *A), *B = malloc(n * sizeof *B),
          *C = malloc(n * sizeof *C);
    if (!A || !B || !C) return 1;
    for (size_t i = 0; i < n; i++) {
        A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        C[i] = 0.0f;
    }
    const int counts[2] = {1, 2};
    for (int c = 0; c < 2; c++) {
        const int th = only > 0 ? only : counts[c];
        if (only > 0 && c > 0) break;
        crl_blas_set_threads(th);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            printf("%s_%dt: %.1f GFLOPS\n", shapes[s].name, th,
                   gflops(&shapes[s], A, B, C, 1.0));
        printf("mlp_cw43x256x4_fwd_bwd_b128_%dt: %.0f us\n", th, mlp_us(1.0));
        fflush(stdout);
    }
    free(A);
    free(B);
    free(C);
    return 0;
}
