/* SAC update throughput at the Continual World shape and a small shape.
 * Prints `name: value unit` lines: the best one-second window (what the code
 * can do) and the median (what a possibly shared machine gave it). Usage:
 * bench_sac_update [--threads N] [--seconds S] [--method sac|csp|l2m]
 * [--anchors N] [--pool M]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/sac.h"

static double sgemm_rate_once(double seconds) {
    const int M = 128, N = 256, K = 256;
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)K * N, 4),
          *c = calloc((size_t)M * N, 4);
    for (int i = 0; i < M * K; i++) a[i] = (float)(i % 17) * 0.01f;
    for (int i = 0; i < K * N; i++) b[i] = (float)(i % 13) * 0.01f;
    for (int i = 0; i < 50; i++) crl_sgemm('N', 'N', M, N, K, 1, a, K, b, N, 0, c, N);
    long it = 0;
    double t0 = crl_now(), t;
    do {
        for (int i = 0; i < 50; i++) crl_sgemm('N', 'N', M, N, K, 1, a, K, b, N, 0, c, N);
        it += 50;
    } while ((t = crl_now() - t0) < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * it / t / 1e9;
}

/* anchors > 0: a CSP learner grown to that many anchors (all but the last
 * frozen), every row with its own alpha. l2m > 0: an L2M learner with that
 * many LoRA modulators of rank 8 over a random base, every modulator
 * non-zero (a zero B is skipped) and random keys, so that rows spread over
 * many modulators (the worst case of grouping); l2m_one: every row routes
 * to one modulator (a task that has settled on its modulator). Returns the
 * best rate. */
static double bench_shape(const char *name, int obs, int act, int layers, int hidden,
                          int batch, double seconds, double sgemm, int lanes, int anchors,
                          int l2m, int l2m_one) {
    crl_sac_config c;
    crl_sac_config_default(&c, obs, act, 1);
    c.threads = lanes;
    c.csp_anchors = anchors;
    if (l2m > 0) {
        c.l2m_pool = l2m;
        c.l2m_kind = CRL_POOL_LORA;
        c.l2m_rank = CRL_POOL_DEFAULT_RANK;
        c.l2m_scale = CRL_POOL_DEFAULT_SCALE;
        c.l2m_pull = 0.5f;
        c.l2m_base_tasks = 1;
    }
    c.layers = layers;
    c.hidden = hidden;
    c.batch = batch;
    crl_sac *s = NULL;
    crl_err err = {0};
    if (crl_sac_create(&c, 1, &s, &err)) {
        fprintf(stderr, "bench_sac_update: %s\n", err.msg);
        exit(1);
    }
    crl_batch b;
    crl_batch_alloc(&b, batch, obs, act, NULL);
    crl_rng r;
    crl_rng_seed(&r, 5);
    if (l2m > 0) {
        const crl_pool *pool = crl_sac_pool(s);
        crl_mlp_init_params(&pool->base, crl_sac_l2m_base(s), &r);
        float *p = crl_sac_actor_params(s);
        for (size_t i = (size_t)pool->M * pool->key_dim; i < pool->n_params; i++)
            p[i] += 0.01f * (float)crl_rng_normal(&r);
        if (l2m_one) /* every key equal: every row ties and takes modulator 0 */
            for (int m = 1; m < pool->M; m++)
                memcpy(p + (size_t)m * pool->key_dim, p, sizeof(float) * pool->key_dim);
    }
    if (anchors > 0) {
        crl_subspace *sub = crl_sac_subspace(s);
        while (sub->n_anchors < anchors) {
            crl_subspace_freeze_all(sub);
            crl_subspace_add_anchor(sub, crl_sac_actor_params(s), NULL);
        }
        crl_sac_subspace_changed(s);
        crl_batch_alloc_mix(&b, anchors, NULL);
        for (int i = 0; i < batch; i++)
            crl_dirichlet_flat(&r, anchors, b.mix + (size_t)i * anchors, NULL);
    }
    for (int i = 0; i < batch * obs; i++) b.obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < batch * obs; i++) b.obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < batch * act; i++) b.act[i] = (float)crl_rng_range(&r, -1, 1);
    for (int i = 0; i < batch; i++) {
        b.rew[i] = (float)crl_rng_normal(&r);
        b.done[i] = 0;
        b.task[i] = 0;
    }
    for (int i = 0; i < 20; i++) crl_sac_update(s, &b, NULL, NULL);
    /* Rate in windows of about one second: the best window is what the code
     * can do, the median what a shared machine gave it. */
    enum { MAXW = 64 };
    double rates[MAXW];
    int nw = 0;
    double t_end = crl_now() + seconds;
    while (nw < MAXW && (nw < 3 || crl_now() < t_end)) {
        long n = 0;
        double t0 = crl_now(), t;
        do {
            for (int i = 0; i < 10; i++) crl_sac_update(s, &b, NULL, NULL);
            n += 10;
        } while ((t = crl_now() - t0) < 1.0);
        rates[nw++] = n / t;
    }
    for (int i = 1; i < nw; i++) /* insertion sort, nw is small */
        for (int k = i; k > 0 && rates[k] < rates[k - 1]; k--) {
            double tmp = rates[k];
            rates[k] = rates[k - 1];
            rates[k - 1] = tmp;
        }
    double ups = rates[nw - 1], med = rates[nw / 2];
    double flops = crl_sac_flops_per_update(s);
    printf("sac_update_%s: %.1f updates/s\n", name, ups);
    printf("sac_update_%s_median: %.1f updates/s\n", name, med);
    printf("sac_update_%s_flops: %.1f MFLOP/update\n", name, flops / 1e6);
    printf("sac_update_%s_gflops: %.1f GFLOPS\n", name, ups * flops / 1e9);
    printf("sac_update_%s_sgemm_fraction: %.1f %%\n", name,
           100.0 * ups * flops / 1e9 / sgemm);
    crl_batch_free(&b);
    crl_sac_free(s);
    return ups;
}

/* Best of five windows, like the update rates. */
static double sgemm_rate(double seconds) {
    double best = 0;
    for (int i = 0; i < 5; i++) {
        double r = sgemm_rate_once(seconds / 5);
        if (r > best) best = r;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = 0, anchors = 8, pool = CRL_POOL_DEFAULT_M;
    double seconds = 8.0;
    const char *method = "sac";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--method") && i + 1 < argc)
            method = argv[++i];
        else if (!strcmp(argv[i], "--anchors") && i + 1 < argc)
            anchors = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pool") && i + 1 < argc)
            pool = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sac_update [--threads N] [--seconds S] "
                            "[--method sac|csp|l2m] [--anchors N] [--pool M]\n");
            return 2;
        }
    }
    if (strcmp(method, "sac") && strcmp(method, "csp") && strcmp(method, "l2m")) {
        fprintf(stderr, "bench_sac_update: unknown --method '%s' (sac, csp or l2m)\n",
                method);
        return 2;
    }
    if (pool < 1 || pool > 4096) {
        fprintf(stderr, "bench_sac_update: --pool must be in 1..4096\n");
        return 2;
    }
    if (anchors < 1 || anchors > 64) {
        fprintf(stderr, "bench_sac_update: --anchors must be in 1..64\n");
        return 2;
    }
    crl_err err = {0};
    if (crl_blas_init(threads, &err)) {
        fprintf(stderr, "bench_sac_update: %s\n", err.msg);
        return 1;
    }
    if (threads <= 0) threads = 2;
    printf("blas_kernel: %s\n", crl_blas_kernel());
    printf("blas_how: %s\n", crl_blas_how());
    printf("threads: %d\n", threads);
    /* The reference: OpenBLAS's own rate with all the threads. */
    crl_blas_set_threads(threads);
    double sg = sgemm_rate(1.0);
    printf("sgemm_128x256x256_%dt: %.1f GFLOPS\n", threads, sg);
    /* crl's way: the update on `threads` lanes of single-threaded BLAS. */
    crl_blas_set_threads(1);
    double plain = bench_shape("cw", 39, 4, 4, 256, 128, seconds, sg, threads, 0, 0, 0);
    if (!strcmp(method, "csp")) {
        /* CSP at the CW shape: the actor holds `anchors` anchors. */
        char name[32];
        snprintf(name, sizeof name, "cw_csp%d", anchors);
        double csp =
            bench_shape(name, 39, 4, 4, 256, 128, seconds, sg, threads, anchors, 0, 0);
        printf("sac_update_%s_cost_ratio: %.2f x plain\n", name, plain / csp);
        return 0;
    }
    if (!strcmp(method, "l2m")) {
        /* L2M at the CW shape: M LoRA modulators of rank 8 (spec: <= 1.5x),
         * rows spread over the pool, then all rows on one modulator. */
        char name[32];
        snprintf(name, sizeof name, "cw_l2m%d", pool);
        double l2m =
            bench_shape(name, 39, 4, 4, 256, 128, seconds, sg, threads, 0, pool, 0);
        printf("sac_update_%s_cost_ratio: %.2f x plain\n", name, plain / l2m);
        snprintf(name, sizeof name, "cw_l2m%d_one", pool);
        l2m = bench_shape(name, 39, 4, 4, 256, 128, seconds, sg, threads, 0, pool, 1);
        printf("sac_update_%s_cost_ratio: %.2f x plain\n", name, plain / l2m);
        return 0;
    }
    bench_shape("small", 17, 6, 2, 256, 256, seconds, sg, threads, 0, 0, 0);
    if (threads > 1) {
        /* For comparison: one lane, OpenBLAS splitting each GEMM. */
        crl_blas_set_threads(threads);
        bench_shape("cw_openblas_threads", 39, 4, 4, 256, 128, seconds, sg, 1, 0, 0, 0);
    }
    return 0;
}
