/* SAC update throughput at the Continual World shape and a small shape, and
 * the behaviour-cloning update of offline training (--method bc: only it).
 * Prints `name: value unit` lines: the best one-second window (what the code
 * can do) and the median (what a possibly shared machine gave it). Usage:
 * bench_sac_update [--threads N] [--seconds S] [--method sac|bc|csp|l2m]
 * [--anchors N] [--pool M]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/methods.h"
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

/* One learner with a fixed random batch. anchors > 0: a CSP learner grown to
 * that many anchors (all but the last frozen), every row with its own alpha.
 * l2m > 0: an L2M learner with that many LoRA modulators of rank 8 over a
 * random base, every modulator non-zero (a zero B is skipped) and random
 * keys, so that rows spread over many modulators (the worst case of
 * grouping); l2m_one: every row routes to one modulator (a task that has
 * settled on its modulator). */
typedef struct {
    crl_sac *s;
    crl_batch b;
} learner;

/* > 0: L2M learners made next use the soft router with this k (rows merge
 * their k best modulators, pool.h "soft rows"); 0: the default l2m router. */
static int g_soft_k;
/* Non-NULL: L2M learners made next use this router kind (arrow). */
static const char *g_router;

/* hist > 1: the L2M query averages hist observations; every row brings a
 * full window (hist - 1 earlier observations), the most work it can be. */
static void learner_make_h(learner *L, int obs, int act, int layers, int hidden,
                           int batch, int lanes, int anchors, int l2m, int l2m_one,
                           int hist) {
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
        c.l2m_history = hist;
        if (g_soft_k > 0) {
            c.l2m_router = "soft";
            c.l2m_soft_k = g_soft_k;
        }
        if (g_router) c.l2m_router = g_router;
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
    crl_batch *b = &L->b;
    crl_batch_alloc(b, batch, obs, act, NULL);
    crl_rng r;
    crl_rng_seed(&r, 5);
    if (l2m > 0 && hist > 1) {
        crl_batch_alloc_history(b, hist, obs, NULL);
        for (int i = 0; i < batch * (hist - 1) * obs; i++) {
            b->hist_obs[i] = (float)crl_rng_normal(&r);
            b->hist_obs2[i] = (float)crl_rng_normal(&r);
        }
        for (int i = 0; i < batch; i++) b->hist_n[i] = b->hist_n2[i] = hist - 1;
    }
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
        crl_batch_alloc_mix(b, anchors, NULL);
        for (int i = 0; i < batch; i++)
            crl_dirichlet_flat(&r, anchors, b->mix + (size_t)i * anchors, NULL);
    }
    for (int i = 0; i < batch * obs; i++) b->obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < batch * obs; i++) b->obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < batch * act; i++) b->act[i] = (float)crl_rng_range(&r, -1, 1);
    for (int i = 0; i < batch; i++) {
        b->rew[i] = (float)crl_rng_normal(&r);
        b->done[i] = 0;
        b->task[i] = 0;
    }
    for (int i = 0; i < 20; i++) crl_sac_update(s, b, NULL, NULL);
    L->s = s;
}

static void learner_make(learner *L, int obs, int act, int layers, int hidden, int batch,
                         int lanes, int anchors, int l2m, int l2m_one) {
    learner_make_h(L, obs, act, layers, hidden, batch, lanes, anchors, l2m, l2m_one, 1);
}

static void learner_free(learner *L) {
    crl_batch_free(&L->b);
    crl_sac_free(L->s);
}

/* Updates per second over one window of about `len` seconds. */
static double window(learner *L, double len) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        for (int i = 0; i < 10; i++) crl_sac_update(L->s, &L->b, NULL, NULL);
        n += 10;
    } while ((t = crl_now() - t0) < len);
    return n / t;
}

/* The same for behaviour-cloning updates (crl_sac_bc_update, NLL). */
static double window_bc(learner *L, double len) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        for (int i = 0; i < 10; i++)
            crl_sac_bc_update(L->s, &L->b, CRL_BC_NLL, NULL, NULL);
        n += 10;
    } while ((t = crl_now() - t0) < len);
    return n / t;
}

static void sort(double *v, int n) { /* insertion sort, n is small */
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k] < v[k - 1]; k--) {
            double tmp = v[k];
            v[k] = v[k - 1];
            v[k - 1] = tmp;
        }
}

/* The lines of one shape from its window rates: the best window is what the
 * code can do, the median what a shared machine gave it. Returns the best. */
static double report(const char *name, const learner *L, double *rates, int nw,
                     double sgemm) {
    sort(rates, nw);
    double ups = rates[nw - 1], med = rates[nw / 2];
    double flops = crl_sac_flops_per_update(L->s);
    printf("sac_update_%s: %.1f updates/s\n", name, ups);
    printf("sac_update_%s_median: %.1f updates/s\n", name, med);
    printf("sac_update_%s_flops: %.1f MFLOP/update\n", name, flops / 1e6);
    printf("sac_update_%s_gflops: %.1f GFLOPS\n", name, ups * flops / 1e9);
    printf("sac_update_%s_sgemm_fraction: %.1f %%\n", name,
           100.0 * ups * flops / 1e9 / sgemm);
    return ups;
}

enum { MAXW = 64 };

/* One learner alone, in windows of one second. */
static double bench_shape(const char *name, int obs, int act, int layers, int hidden,
                          int batch, double seconds, double sgemm, int lanes) {
    learner L;
    learner_make(&L, obs, act, layers, hidden, batch, lanes, 0, 0, 0);
    double rates[MAXW];
    int nw = 0;
    double t_end = crl_now() + seconds;
    while (nw < MAXW && (nw < 3 || crl_now() < t_end)) rates[nw++] = window(&L, 1.0);
    double best = report(name, &L, rates, nw, sgemm);
    learner_free(&L);
    return best;
}

/* The BC update at the CW shape (4 x 256, batch 128) in one-second windows:
 * updates/s and the fraction of the sgemm rate measured in the same run
 * (crl_sac_bc_flops_per_update: the actor's forward, weight gradient and
 * input gradient). */
static void bench_bc(double seconds, double sgemm, int lanes) {
    learner L;
    learner_make(&L, 39, 4, 4, 256, 128, lanes, 0, 0, 0);
    for (int i = 0; i < 20; i++) crl_sac_bc_update(L.s, &L.b, CRL_BC_NLL, NULL, NULL);
    double rates[MAXW];
    int nw = 0;
    double t_end = crl_now() + seconds;
    while (nw < MAXW && (nw < 3 || crl_now() < t_end)) rates[nw++] = window_bc(&L, 1.0);
    sort(rates, nw);
    const double ups = rates[nw - 1], flops = crl_sac_bc_flops_per_update(L.s);
    printf("bc_update_per_s: %.1f updates/s\n", ups);
    printf("bc_update_per_s_median: %.1f updates/s\n", rates[nw / 2]);
    printf("bc_update_flops: %.1f MFLOP/update\n", flops / 1e6);
    printf("bc_update_gflops: %.1f GFLOPS\n", ups * flops / 1e9);
    printf("bc_update_sgemm_fraction: %.1f %%\n", 100.0 * ups * flops / 1e9 / sgemm);
    learner_free(&L);
}

/* A plain learner and a variant at the same shape, in alternating
 * half-second windows, so that the machine's drift (up to 30% over tens of
 * seconds on a shared VM) hits both alike. The cost ratio is the median of
 * the ratios of adjacent windows; the ratio of the two best windows is
 * printed beside it. */
static void bench_pair(const char *name, learner *plain, learner *var, double seconds,
                       double sgemm) {
    double rp[MAXW], rv[MAXW], ratio[MAXW];
    int nw = 0;
    double t_end = crl_now() + 2 * seconds;
    while (nw < MAXW && (nw < 5 || crl_now() < t_end)) {
        rp[nw] = window(plain, 0.5);
        rv[nw] = window(var, 0.5);
        ratio[nw] = rp[nw] / rv[nw];
        nw++;
    }
    double bp = report("cw", plain, rp, nw, sgemm);
    double bv = report(name, var, rv, nw, sgemm);
    sort(ratio, nw);
    printf("sac_update_%s_cost_ratio: %.2f x plain\n", name, ratio[nw / 2]);
    printf("sac_update_%s_cost_ratio_range: %.2f-%.2f x plain\n", name, ratio[0],
           ratio[nw - 1]);
    printf("sac_update_%s_cost_ratio_best_windows: %.2f x plain\n", name, bp / bv);
}

/* The plain learner, L2M with the query of one observation (H = 1) and L2M
 * with the history query (H = 5), in alternating half-second windows; each
 * L2M cost as the median of adjacent-window ratios to plain, and H = 5 to
 * H = 1 likewise. */
static void bench_history(const char *name, learner *plain, learner *h1, learner *h5,
                          double seconds, double sgemm) {
    double rp[MAXW], r1[MAXW], r5[MAXW], q1[MAXW], q5[MAXW], q51[MAXW];
    int nw = 0;
    double t_end = crl_now() + 3 * seconds;
    while (nw < MAXW && (nw < 5 || crl_now() < t_end)) {
        rp[nw] = window(plain, 0.5);
        r1[nw] = window(h1, 0.5);
        r5[nw] = window(h5, 0.5);
        q1[nw] = rp[nw] / r1[nw];
        q5[nw] = rp[nw] / r5[nw];
        q51[nw] = r1[nw] / r5[nw];
        nw++;
    }
    char n1[64], n5[64];
    snprintf(n1, sizeof n1, "%s_h1", name);
    snprintf(n5, sizeof n5, "%s_h5", name);
    report("cw", plain, rp, nw, sgemm);
    report(n1, h1, r1, nw, sgemm);
    report(n5, h5, r5, nw, sgemm);
    sort(q1, nw);
    sort(q5, nw);
    sort(q51, nw);
    printf("sac_update_%s_cost_ratio: %.2f x plain (%.2f-%.2f)\n", n1, q1[nw / 2], q1[0],
           q1[nw - 1]);
    printf("sac_update_%s_cost_ratio: %.2f x plain (%.2f-%.2f)\n", n5, q5[nw / 2], q5[0],
           q5[nw - 1]);
    printf("sac_update_%s_vs_h1: %.2f x (%.2f-%.2f)\n", n5, q51[nw / 2], q51[0],
           q51[nw - 1]);
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
                            "[--method sac|bc|csp|l2m] [--anchors N] [--pool M]\n");
            return 2;
        }
    }
    /* sac, or a method whose learner differs from the plain one (a subspace
     * actor, or a modulation pool over a base). */
    const crl_method *m = crl_method_find(method);
    const unsigned mflags = m ? m->impl->flags : 0;
    const int is_sub = (mflags & CRL_METHOD_SUBSPACE) != 0,
              is_pool = (mflags & CRL_METHOD_L2M_BASE) != 0;
    const int is_bc = !strcmp(method, "bc");
    if (strcmp(method, "sac") && !is_bc && !is_sub && !is_pool) {
        fprintf(stderr, "bench_sac_update: unknown --method '%s' (sac, bc, csp or l2m)\n",
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
    if (is_bc) {
        bench_bc(seconds, sg, threads);
        return 0;
    }
    if (is_sub || is_pool) {
        learner plain, var;
        learner_make(&plain, 39, 4, 4, 256, 128, threads, 0, 0, 0);
        char name[32];
        if (is_sub) {
            /* CSP at the CW shape: the actor holds `anchors` anchors. */
            snprintf(name, sizeof name, "cw_csp%d", anchors);
            learner_make(&var, 39, 4, 4, 256, 128, threads, anchors, 0, 0);
            bench_pair(name, &plain, &var, seconds, sg);
            learner_free(&var);
        } else {
            /* L2M at the CW shape: M LoRA modulators of rank 8 (spec: <= 1.5x),
             * rows spread over the pool, with the query of one observation and
             * the history query (H = 5), then all rows on one modulator, then the soft
             * router (k = 2). */
            snprintf(name, sizeof name, "cw_l2m%d", pool);
            learner h5;
            learner_make(&var, 39, 4, 4, 256, 128, threads, 0, pool, 0);
            learner_make_h(&h5, 39, 4, 4, 256, 128, threads, 0, pool, 0, 5);
            bench_history(name, &plain, &var, &h5, seconds, sg);
            learner_free(&h5);
            learner_free(&var);
            snprintf(name, sizeof name, "cw_l2m%d_one", pool);
            learner_make(&var, 39, 4, 4, 256, 128, threads, 0, pool, 1);
            bench_pair(name, &plain, &var, seconds, sg);
            learner_free(&var);
            /* The soft router, k = 2: every row runs its own merged block. */
            snprintf(name, sizeof name, "cw_l2m%d_soft2", pool);
            g_soft_k = 2;
            learner_make(&var, 39, 4, 4, 256, 128, threads, 0, pool, 0);
            g_soft_k = 0;
            bench_pair(name, &plain, &var, seconds, sg);
            learner_free(&var);
            /* The arrow router: training rows on one modulator, and the base's
             * per-layer inputs computed for every forward. */
            snprintf(name, sizeof name, "cw_l2m%d_arrow", pool);
            g_router = "arrow";
            learner_make(&var, 39, 4, 4, 256, 128, threads, 0, pool, 0);
            g_router = NULL;
            bench_pair(name, &plain, &var, seconds, sg);
            learner_free(&var);
        }
        learner_free(&plain);
        return 0;
    }
    bench_shape("cw", 39, 4, 4, 256, 128, seconds, sg, threads);
    bench_bc(seconds, sg, threads);
    bench_shape("small", 17, 6, 2, 256, 256, seconds, sg, threads);
    if (threads > 1) {
        /* For comparison: one lane, OpenBLAS splitting each GEMM. */
        crl_blas_set_threads(threads);
        bench_shape("cw_openblas_threads", 39, 4, 4, 256, 128, seconds, sg, 1);
    }
    return 0;
}
