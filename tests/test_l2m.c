/* L2M through the one SAC update (agents/sac.c with l2m_pool > 0) and the
 * method (agents/method_l2m.c, the continual runner, the CLI).
 *
 * Pool-level properties are tested in tests/test_pool.c and not repeated
 * here: routing picks the argmax cosine with ties to the lowest index
 * (test_routing_argmax_and_ties), the inverse-count penalty on a worked
 * example (test_usage_penalty_worked_example), oracle slices
 * (test_oracle_slices), grouped batches equal per-row computation
 * (test_grouped_equals_per_sample), LoRA / IA3 backward and key pull
 * gradients by finite differences at the pool level (test_backward_fd,
 * test_pull_fd). Here: the same properties seen through the learner. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/continual.h"
#include "crl/methods.h"
#include "crl/metrics.h"
#include "crl/replay.h"
#include "crl/pool.h"
#include "crl/router.h"
#include "crl/routers.h"
#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/store.h"
#include "malloc_count.h"

enum { O = 5, A = 2, TB = 2, T = 3, B = 12, M = 4, R = 3, H = 16, L = 3 };

static void base_config(crl_sac_config *c, int n_tasks) {
    crl_sac_config_default(c, O, A, n_tasks);
    c->hidden = H;
    c->layers = L;
    c->batch = B;
}

/* A plain learner with TB heads whose actor is the base; its blob. */
static crl_sac *plain_base(uint64_t seed, void **blob, size_t *n) {
    crl_sac_config c;
    base_config(&c, TB);
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    /* Nonzero biases and LayerNorm away from 1/0, as after training. */
    crl_rng r;
    crl_rng_seed(&r, seed + 1);
    float *p = crl_sac_actor_params(s);
    for (size_t i = 0; i < crl_sac_actor(s)->n_params; i++)
        p[i] += 0.1f * (float)crl_rng_normal(&r);
    if (blob) ck_assert_int_eq(crl_sac_save(s, blob, n, &err), CRL_OK);
    return s;
}

/* An L2M learner (T tasks) over the base of `plain`, head `head`. */
/* The learner with the routing of lc_route (router, weights, collect,
 * oracle), or of the defaults if NULL. */
static crl_sac *l2m_learner_r(crl_sac *plain, int kind, int head, int threads,
                              uint64_t seed, const crl_l2m_config *lc_route) {
    void *blob = NULL;
    size_t n = 0;
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_save(plain, &blob, &n, &err), CRL_OK);
    crl_l2m_base base;
    ck_assert_msg(crl_l2m_base_parse(blob, n, head, &base, &err) == CRL_OK, "%s",
                  err.msg);
    free(blob);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    lc.pool = M;
    lc.rank = R;
    lc.modulator = kind == CRL_POOL_IA3 ? "ia3" : "lora";
    if (lc_route) {
        lc.oracle = lc_route->oracle;
        lc.router = lc_route->router;
        lc.weights = lc_route->weights;
        lc.collect = lc_route->collect;
        lc.history = lc_route->history;
        lc.hold = lc_route->hold;
        if (lc_route->soft_k) lc.soft_k = lc_route->soft_k;
        if (lc_route->soft_temp > 0.0f) lc.soft_temp = lc_route->soft_temp;
    }
    crl_sac_config c;
    base_config(&c, T);
    c.threads = threads;
    ck_assert_msg(crl_l2m_sac_config(&lc, &base, &c, &err) == CRL_OK, "%s", err.msg);
    crl_sac *s = NULL;
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    ck_assert_uint_eq(crl_sac_pool(s)->base.n_params, base.n);
    memcpy(crl_sac_l2m_base(s), base.params, base.n * sizeof(float));
    crl_l2m_base_free(&base);
    return s;
}

static crl_sac *l2m_learner(crl_sac *plain, int kind, int head, int threads,
                            uint64_t seed) {
    return l2m_learner_r(plain, kind, head, threads, seed, NULL);
}

static void fill_batch(crl_batch *b, uint64_t seed, int task) {
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (int i = 0; i < B * O; i++) b->obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * O; i++) b->obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * A; i++) b->act[i] = (float)crl_rng_range(&r, -0.95, 0.95);
    for (int i = 0; i < B; i++) {
        b->rew[i] = (float)crl_rng_normal(&r);
        b->done[i] = (i % 5 == 0) ? 1.0f : 0.0f;
        b->task[i] = task;
    }
    b->B = B;
}

/* A fresh pool is the identity: crl_sac_act of the L2M learner equals the
 * plain learner's on the base head, bit for bit, for LoRA and IA3,
 * deterministic and stochastic (same noise), whatever the routing. */
START_TEST(test_fresh_pool_is_base) {
    for (int kind = 0; kind < 2; kind++) {
        crl_sac *plain = plain_base(11, NULL, NULL);
        crl_sac *s = l2m_learner(plain, kind, 1, 1, 12);
        float obs[8 * O], a0[8 * A], a1[8 * A];
        crl_rng r;
        crl_rng_seed(&r, 13);
        for (int i = 0; i < 8 * O; i++) obs[i] = 2.0f * (float)crl_rng_normal(&r);
        /* Task ids differ on purpose: L2M always uses base head 1. */
        crl_sac_act(plain, 8, obs, 1, 1, NULL, a0);
        crl_sac_act(s, 8, obs, 0, 1, NULL, a1);
        ck_assert_int_eq(memcmp(a0, a1, sizeof a0), 0);
        crl_rng r0, r1;
        crl_rng_seed(&r0, 14);
        crl_rng_seed(&r1, 14);
        crl_sac_act(plain, 8, obs, 1, 0, &r0, a0);
        crl_sac_act(s, 8, obs, 2, 0, &r1, a1);
        ck_assert_int_eq(memcmp(a0, a1, sizeof a0), 0);
        /* And the plain learner's other head differs (the test can fail). */
        crl_sac_act(plain, 8, obs, 0, 1, NULL, a0);
        crl_sac_act(s, 8, obs, 0, 1, NULL, a1);
        ck_assert_int_ne(memcmp(a0, a1, sizeof a0), 0);
        crl_sac_free(s);
        crl_sac_free(plain);
    }
}
END_TEST

/* Central differences of the full actor loss (SAC actor loss + key pull)
 * against crl_sac_compute_grads, on modulator and key entries. Modulators
 * are randomised first so that LoRA's A gets a gradient (B = 0 at init). */
static void grads_fd(int kind) {
    crl_sac *plain = plain_base(21, NULL, NULL);
    crl_sac *s = l2m_learner(plain, kind, 0, 1, 22);
    const crl_pool *pool = crl_sac_pool(s);
    float *p = crl_sac_actor_params(s);
    crl_rng r;
    crl_rng_seed(&r, 23);
    for (size_t i = (size_t)M * pool->key_dim; i < pool->n_params; i++)
        p[i] += 0.3f * (float)crl_rng_normal(&r);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 24, 1);
    float eps[2 * B * A];
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);
    ck_assert(st.penalty < 0); /* the pull term is in */
    float *g;
    crl_sac_grads(s, &g, NULL, NULL);
    const size_t n = pool->n_params;
    float *ga = malloc(n * sizeof(float));
    memcpy(ga, g, n * sizeof(float));
    /* Rows route to at least two modulators: gradients in >= 2 blocks. */
    int live = 0;
    for (int m = 0; m < M; m++) {
        size_t o = crl_pool_mod_offset(pool, m);
        double nm = 0;
        for (size_t i = 0; i < pool->mod_size; i++) nm += fabs(ga[o + i]);
        live += nm > 0;
    }
    ck_assert_int_ge(live, 2);
    int bad = 0, checked = 0;
    for (size_t i = 0; i < n; i += 1 + n / 150) {
        if (i < (size_t)M * pool->key_dim && ga[i] == 0.0f) continue; /* unrouted key */
        const float keep = p[i], h = 2e-3f;
        crl_sac_stats sp, sm;
        p[i] = keep + h;
        crl_sac_compute_grads(s, &b, eps, &sp);
        p[i] = keep - h;
        crl_sac_compute_grads(s, &b, eps, &sm);
        p[i] = keep;
        double fd = (sp.pi_loss - sm.pi_loss) / (2.0 * h), an = ga[i];
        double tol = 2e-2 * fmax(fabs(fd), fabs(an)) + 2e-4;
        checked++;
        if (fabs(fd - an) > tol) {
            if (bad < 5)
                fprintf(stderr, "%s dL/dpool[%zu]: analytic %.6g, fd %.6g\n",
                        kind ? "ia3" : "lora", i, an, fd);
            bad++;
        }
    }
    ck_assert_int_ge(checked, 100);
    ck_assert_int_eq(bad, 0);
    free(ga);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
}

START_TEST(test_grads_fd_lora) {
    grads_fd(CRL_POOL_LORA);
}
END_TEST

START_TEST(test_grads_fd_ia3) {
    grads_fd(CRL_POOL_IA3);
}
END_TEST

/* The pull term's value, worked out independently: q = the base's layer-1
 * embedding from crl_mlp_forward (post[0]), cos in double against every
 * key, routed to the max (plain cosine), penalty = -0.5 mean cos. */
START_TEST(test_pull_value_by_hand) {
    crl_sac *plain = plain_base(31, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 1, 32);
    const crl_pool *pool = crl_sac_pool(s);
    const int D = pool->key_dim;
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 33, 0);
    float eps[2 * B * A] = {0};
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, crl_sac_actor(s), B, NULL), 0);
    crl_mlp_forward(crl_sac_actor(s), crl_sac_l2m_base(s), &ws, b.obs, B, NULL);
    const float *keys = crl_sac_actor_params(s);
    double sum = 0;
    for (int r = 0; r < B; r++) {
        const float *q = ws.post[0] + (size_t)r * D;
        double best = -2;
        for (int m = 0; m < M; m++) {
            double qk = 0, qq = 0, kk = 0;
            for (int j = 0; j < D; j++) {
                qk += (double)q[j] * keys[m * D + j];
                qq += (double)q[j] * q[j];
                kk += (double)keys[m * D + j] * keys[m * D + j];
            }
            best = fmax(best, qk / sqrt(qq * kk));
        }
        sum += best;
    }
    ck_assert_double_eq_tol(st.penalty, -0.5 * sum / B, 1e-9);
    crl_mlp_ws_free(&ws);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* Usage counts through the learner: every update adds its B actor rows;
 * with the usage route a heavily used modulator is avoided. Worked case:
 * counts (10^6, 0, 0, 0) give modulator 0 a weight of 1/(10^6+1), so no row
 * can pick it (its score is at most 1e-6, another's is (cos+1)/2, which is
 * above that unless cos = -1). */
START_TEST(test_counts_and_usage_route) {
    crl_sac *plain = plain_base(41, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 1, 42);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    crl_err err = {0};
    int64_t *c = crl_sac_l2m_counts(s);
    /* Plain cosine first: find where the batch goes. */
    fill_batch(&b, 43, 0);
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, &err), CRL_OK);
    int64_t tot = 0, top = 0;
    int topm = 0;
    for (int m = 0; m < M; m++) {
        tot += c[m];
        if (c[m] > top) top = c[m], topm = m;
    }
    ck_assert_int_eq(tot, B);
    /* Usage route with the top modulator "worn out". */
    for (int m = 0; m < M; m++) c[m] = m == topm ? 1000000 : 0;
    crl_pool_route r = {.mode = CRL_POOL_ROUTE_USAGE};
    ck_assert_int_eq(crl_sac_l2m_set_route(s, &r, &r, &err), CRL_OK);
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, &err), CRL_OK);
    tot = 0;
    for (int m = 0; m < M; m++) tot += c[m];
    ck_assert_int_eq(c[topm], 1000000);
    ck_assert_int_eq(tot, 1000000 + B);
    ck_assert_int_ge(crl_pool_n_used(crl_sac_pool(s), c), 2);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* Several tasks of training (usage routing, fresh critics, an oracle
 * learner too): the base stays bit-identical to the checkpoint it came
 * from, the pool moves, and a checkpoint round trip restores everything
 * (base, pool, counts). */
START_TEST(test_base_frozen_through_training) {
    for (int oracle = 0; oracle < 2; oracle++) {
        void *blob = NULL;
        size_t n = 0;
        crl_sac *plain = plain_base(51, &blob, &n);
        crl_err err = {0};
        crl_l2m_base ref;
        ck_assert_int_eq(crl_l2m_base_parse(blob, n, 1, &ref, &err), CRL_OK);
        free(blob);
        crl_l2m_config lc;
        crl_l2m_config_default(&lc);
        lc.oracle = oracle;
        crl_sac *s =
            l2m_learner_r(plain, oracle ? CRL_POOL_IA3 : CRL_POOL_LORA, 1, 2, 52, &lc);
        crl_l2m m;
        ck_assert_int_eq(crl_l2m_init(&m, &lc, M, T, 4, &err), CRL_OK);
        const size_t np = crl_sac_pool(s)->n_params;
        float *p0 = malloc(np * sizeof(float));
        float *ends = malloc((size_t)T * np * sizeof(float));
        memcpy(p0, crl_sac_actor_params(s), np * sizeof(float));
        crl_batch b;
        ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
        for (int task = 0; task < T; task++) {
            ck_assert_int_eq(crl_l2m_task_start(&m, s, task, 1, 60 + task, &err), CRL_OK);
            for (int u = 0; u < 40; u++) {
                fill_batch(&b, 1000 * task + u, task);
                ck_assert_msg(crl_sac_update(s, &b, NULL, &err) == CRL_OK, "%s", err.msg);
            }
            int mod = crl_l2m_task_end(&m, s, task);
            ck_assert_int_ge(mod, 0);
            if (oracle) /* inside the task's slice [t*M/T, (t+1)*M/T) */
                ck_assert(mod >= task * M / T && mod < (task + 1) * M / T);
            memcpy(ends + (size_t)task * np, crl_sac_actor_params(s), np * sizeof(float));
        }
        /* Oracle: a finished task's modulators and keys never move again
         * (zero gradients with moments zeroed at each task change). */
        const crl_pool *pl = crl_sac_pool(s);
        for (int task = 0; oracle && task < T - 1; task++) {
            const float *now = crl_sac_actor_params(s), *then = ends + (size_t)task * np;
            for (int j = task * M / T; j < (task + 1) * M / T; j++) {
                size_t o = crl_pool_mod_offset(pl, j), ko = (size_t)j * pl->key_dim;
                ck_assert_int_eq(memcmp(now + o, then + o, pl->mod_size * sizeof(float)),
                                 0);
                ck_assert_int_eq(memcmp(now + ko, then + ko, pl->key_dim * sizeof(float)),
                                 0);
            }
            /* ... while its own slice did move during its task. */
            ck_assert_int_ne(memcmp(then + crl_pool_mod_offset(pl, task * M / T),
                                    p0 + crl_pool_mod_offset(pl, task * M / T),
                                    pl->mod_size * sizeof(float)),
                             0);
        }
        ck_assert_int_eq(memcmp(crl_sac_l2m_base(s), ref.params, ref.n * sizeof(float)),
                         0);
        ck_assert_int_ne(memcmp(crl_sac_actor_params(s), p0, np * sizeof(float)), 0);
        int64_t tot = 0;
        for (int i = 0; i < M; i++) tot += crl_sac_l2m_counts(s)[i];
        ck_assert_int_eq(tot, (int64_t)T * 40 * B);
        /* Round trip. */
        void *sb = NULL;
        size_t sn = 0;
        ck_assert_int_eq(crl_sac_save(s, &sb, &sn, &err), CRL_OK);
        crl_sac *s2 =
            l2m_learner_r(plain, oracle ? CRL_POOL_IA3 : CRL_POOL_LORA, 1, 1, 99, &lc);
        memset(crl_sac_l2m_base(s2), 0, ref.n * sizeof(float));
        ck_assert_msg(crl_sac_load(s2, sb, sn, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(memcmp(crl_sac_l2m_base(s2), ref.params, ref.n * sizeof(float)),
                         0);
        ck_assert_int_eq(
            memcmp(crl_sac_actor_params(s2), crl_sac_actor_params(s), np * sizeof(float)),
            0);
        ck_assert_int_eq(
            memcmp(crl_sac_l2m_counts(s2), crl_sac_l2m_counts(s), M * sizeof(int64_t)),
            0);
        /* A plain learner refuses the blob. */
        ck_assert_int_eq(crl_sac_load(plain, sb, sn, &err), CRL_ECORRUPT);
        /* And the L2M blob is not a base. */
        crl_l2m_base bad;
        ck_assert_int_eq(crl_l2m_base_parse(sb, sn, 0, &bad, &err), CRL_EINVAL);
        free(sb);
        crl_sac_free(s2);
        crl_batch_free(&b);
        free(p0);
        free(ends);
        crl_l2m_free(&m);
        crl_l2m_base_free(&ref);
        crl_sac_free(s);
        crl_sac_free(plain);
    }
}
END_TEST

/* One lane or two: the same pool, counts and critics bit for bit (the
 * lanes split the rows, never the arithmetic of a row or a sum). */
START_TEST(test_lanes_bit_identical) {
    crl_sac *plain = plain_base(81, NULL, NULL);
    crl_sac *s1 = l2m_learner(plain, CRL_POOL_LORA, 0, 1, 82);
    crl_sac *s2 = l2m_learner(plain, CRL_POOL_LORA, 0, 2, 82);
    crl_err err = {0};
    crl_pool_route r = {.mode = CRL_POOL_ROUTE_USAGE};
    ck_assert_int_eq(crl_sac_l2m_set_route(s1, &r, &r, &err), CRL_OK);
    ck_assert_int_eq(crl_sac_l2m_set_route(s2, &r, &r, &err), CRL_OK);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    for (int u = 0; u < 30; u++) {
        fill_batch(&b, 90 + u, u % T);
        ck_assert_int_eq(crl_sac_update(s1, &b, NULL, &err), CRL_OK);
        ck_assert_int_eq(crl_sac_update(s2, &b, NULL, &err), CRL_OK);
    }
    const size_t np = crl_sac_pool(s1)->n_params, nc = crl_sac_critic(s1)->n_params;
    ck_assert_int_eq(
        memcmp(crl_sac_actor_params(s1), crl_sac_actor_params(s2), np * sizeof(float)),
        0);
    ck_assert_int_eq(memcmp(crl_sac_critic_params(s1, 0), crl_sac_critic_params(s2, 0),
                            2 * nc * sizeof(float)),
                     0);
    ck_assert_int_eq(
        memcmp(crl_sac_l2m_counts(s1), crl_sac_l2m_counts(s2), M * sizeof(int64_t)), 0);
    crl_batch_free(&b);
    crl_sac_free(s1);
    crl_sac_free(s2);
    crl_sac_free(plain);
}
END_TEST

/* crl_l2m_route_summary on a hand-made tally: 5 episodes of M = 4. */
START_TEST(test_route_summary) {
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_l2m m;
    ck_assert_int_eq(crl_l2m_init(&m, &lc, 4, 2, 6, NULL), CRL_OK);
    const int32_t h[6][4] = {{0, 9, 1, 0}, {0, 5, 5, 0}, {0, 0, 7, 1},
                             {3, 4, 0, 0}, {0, 0, 0, 0}, {0, 0, 8, 0}};
    memcpy(m.hist, h, sizeof h);
    int modal;
    double frac, acc;
    /* Modes: 1, 1 (tie -> lowest), 2, 1, none, 2: modal 1 with 3 of 5. */
    crl_l2m_route_summary(&m, 6, 2, &modal, &frac, &acc);
    ck_assert_int_eq(modal, 1);
    ck_assert_double_eq_tol(frac, 3.0 / 5.0, 1e-12);
    ck_assert_double_eq_tol(acc, 2.0 / 5.0, 1e-12);
    crl_l2m_route_summary(&m, 6, -1, &modal, &frac, &acc);
    ck_assert(isnan(acc));
    crl_l2m_free(&m);
}
END_TEST

/* The L2M training step allocates nothing (two lanes, usage routing, acting
 * with the tally on). */
START_TEST(test_l2m_step_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_sac *plain = plain_base(61, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 2, 62);
    crl_err err = {0};
    crl_pool_route r = {.mode = CRL_POOL_ROUTE_USAGE};
    ck_assert_int_eq(crl_sac_l2m_set_route(s, &r, &r, &err), CRL_OK);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    float obs[3 * O] = {0.1f, -0.2f, 0.3f}, act[3 * A];
    int32_t hist[3 * M] = {0};
    crl_sac_l2m_track(s, obs, 3, hist);
    long before = 0;
    int bad = 0;
    for (int u = 0; u < 60; u++) {
        if (u == 20) before = alloc_calls();
        fill_batch(&b, 70 + u, 1);
        bad += crl_sac_update(s, &b, NULL, &err) != CRL_OK;
        crl_sac_act(s, 3, obs, 1, 0, NULL, act);
    }
    long calls = alloc_calls() - before;
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(calls == 0, "%ld allocations in 40 L2M steps", calls);
    int32_t tally = 0;
    for (int i = 0; i < 3 * M; i++) tally += hist[i];
    ck_assert_int_eq(tally, 3 * 60);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
#else
    fprintf(stderr, "test_l2m_step_no_malloc: skipped (no malloc interposition)\n");
#endif
}
END_TEST

/* A blob of crl_sac_save (version 2) rewritten with the version-1 header of
 * its kind (CRLSAC01 / CRLSACS1 / CRLSACL1): the sections after the header
 * are the same in both versions. */
static void *to_v1(const void *blob, size_t n, size_t *n1) {
    const unsigned char *b = blob;
    uint32_t kind, dims[5], cfg[8];
    uint64_t sizes[2], tail[3];
    memcpy(&kind, b + 8, 4);
    memcpy(dims, b + 12, 20);
    memcpy(sizes, b + 32, 16);
    memcpy(cfg, b + 48, 32);
    memcpy(tail, b + 84, 24);
    const size_t h2 = 108;
    unsigned char *o = malloc(n + 64);
    size_t k = 0;
    memcpy(o, kind == 0 ? "CRLSAC01" : kind == 1 ? "CRLSACS1" : "CRLSACL1", 8);
    k = 8;
    memcpy(o + k, dims, 20), k += 20;
    memcpy(o + k, sizes, 16), k += 16;
    if (kind == 1) {
        memcpy(o + k, cfg, 12), k += 12;
        memcpy(o + k, &tail[0], 8), k += 8;
    } else if (kind == 2) {
        uint32_t l2m[5] = {cfg[3], cfg[4], cfg[5], cfg[6], cfg[7]};
        memcpy(o + k, l2m, 20), k += 20;
        memcpy(o + k, &tail[1], 8), k += 8;
    }
    memcpy(o + k, b + h2, n - h2);
    *n1 = k + n - h2;
    return o;
}

/* An L2M learner's blob records the pool's configuration, its base and usage
 * counts are views into it, and its version-1 form (CRLSACL1) loads to the
 * same learner; crl_l2m_base_parse reads plain blobs of both versions. */
START_TEST(test_l2m_blob_versions) {
    void *pb;
    size_t pn, pn1;
    crl_sac *plain = plain_base(61, &pb, &pn);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 1, 1, 62);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 63, 0);
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    void *blob, *again;
    size_t n, n1, n2;
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_save(s, &blob, &n, &err), CRL_OK);
    crl_sac_blob info;
    ck_assert_msg(crl_sac_blob_info(blob, n, &info, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(info.version, 2);
    ck_assert_int_eq(info.actor.kind, CRL_ACTOR_L2M);
    ck_assert_uint_eq(info.actor.M, M);
    ck_assert_uint_eq(info.actor.pool_kind, CRL_POOL_LORA);
    ck_assert_uint_eq(info.actor.rank, R);
    ck_assert_uint_eq(info.actor.base_tasks, TB);
    ck_assert_uint_eq(info.actor.head, 1);
    ck_assert(info.actor.scale == crl_sac_pool(s)->scale);
    ck_assert_uint_eq(info.actor.n_base, crl_sac_pool(s)->base.n_params);
    ck_assert_uint_eq(info.actor.n_counts, M);
    ck_assert(memcmp(info.base, crl_sac_l2m_base(s), info.actor.n_base * 4) == 0);
    ck_assert(memcmp(info.counts, crl_sac_l2m_counts(s), M * 8) == 0);
    int64_t total = 0;
    for (int m = 0; m < M; m++) total += crl_sac_l2m_counts(s)[m];
    ck_assert_int_eq(total, B);
    void *v1 = to_v1(blob, n, &n1);
    ck_assert(memcmp(v1, "CRLSACL1", 8) == 0);
    crl_sac *t = l2m_learner(plain, CRL_POOL_LORA, 1, 1, 999);
    ck_assert_msg(crl_sac_load(t, v1, n1, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(crl_sac_save(t, &again, &n2, &err), CRL_OK);
    ck_assert_uint_eq(n2, n);
    ck_assert(memcmp(blob, again, n) == 0);
    /* The base from a plain blob, version 2 and version 1. */
    void *pv1 = to_v1(pb, pn, &pn1);
    ck_assert(memcmp(pv1, "CRLSAC01", 8) == 0);
    crl_l2m_base b2, b1;
    ck_assert_int_eq(crl_l2m_base_parse(pb, pn, 1, &b2, &err), CRL_OK);
    ck_assert_int_eq(crl_l2m_base_parse(pv1, pn1, 1, &b1, &err), CRL_OK);
    ck_assert_uint_eq(b1.n, b2.n);
    ck_assert(memcmp(b1.params, b2.params, b1.n * 4) == 0);
    ck_assert(memcmp(b1.params, crl_sac_actor_params(plain), b1.n * 4) == 0);
    crl_l2m_base_free(&b1);
    crl_l2m_base_free(&b2);
    free(pv1);
    free(again);
    free(v1);
    free(blob);
    free(pb);
    crl_batch_free(&b);
    crl_sac_free(t);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* ---- routing: the router table, frozen usage weights, old routes ---------- */

/* The base's first-layer embedding tanh(LN(x W0 + b0)) of one observation,
 * with plain loops in double (independent of nn/ and the pool). */
static void embed_by_hand(const crl_mlp *m, const float *bp, const float *x, double *e) {
    const crl_mlp_spec *sp = &m->spec;
    const int D = sp->hidden[0], I = sp->in_dim;
    double z[256], mean = 0, var = 0;
    ck_assert_int_le(D, 256);
    for (int j = 0; j < D; j++) {
        z[j] = bp[m->b[0] + j];
        for (int i = 0; i < I; i++)
            z[j] += (double)x[i] * bp[m->W[0] + (size_t)i * D + j];
        mean += z[j] / D;
    }
    for (int j = 0; j < D; j++) var += (z[j] - mean) * (z[j] - mean) / D;
    for (int j = 0; j < D; j++)
        e[j] = tanh((z[j] - mean) / sqrt(var + sp->ln_eps) * bp[m->ln_g + j] +
                    bp[m->ln_b + j]);
}

/* argmax_m ((cos(q, k_m) + 1) / 2) * w_m (w NULL: plain cosine), by hand. */
static int route_by_hand(const crl_pool *p, const float *params, const double *q,
                         const double *w) {
    const int D = p->key_dim;
    int best = -1;
    double bs = -INFINITY;
    for (int m = 0; m < p->M; m++) {
        const float *k = params + p->keys + (size_t)m * D;
        double d = 0, qq = 0, kk = 0;
        for (int j = 0; j < D; j++) {
            d += q[j] * k[j];
            qq += q[j] * q[j];
            kk += (double)k[j] * k[j];
        }
        const double c = d / sqrt(qq * kk);
        const double sc = w ? 0.5 * (c + 1) * w[m] : c;
        if (sc > bs) {
            bs = sc;
            best = m;
        }
    }
    return best;
}

/* The reference's weights by hand: normalise(1 / (counts / total + 1e-6)). */
static void ref_weights(const int64_t *c, double *w) {
    double tot = 0, sum = 0;
    for (int m = 0; m < M; m++) tot += (double)c[m];
    for (int m = 0; m < M; m++) sum += w[m] = 1.0 / ((double)c[m] / tot + 1e-6);
    for (int m = 0; m < M; m++) w[m] /= sum;
}

/* The modulator each of n acting rows routes to (the learner's tally). */
static void acting_sel(crl_sac *s, const float *obs, int n, int *sel) {
    int32_t hist[8 * M];
    memset(hist, 0, sizeof hist);
    crl_sac_l2m_track(s, obs, n, hist);
    crl_sac_act(s, n, obs, 1, 1, NULL, (float[8 * A]){0});
    crl_sac_l2m_track(s, NULL, 0, NULL);
    for (int r = 0; r < n; r++) {
        sel[r] = -1;
        for (int m = 0; m < M; m++)
            if (hist[r * M + m]) sel[r] = m;
    }
}

/* Frozen usage weights (the reference): within a task the training route
 * does not change when the counts do; the next task start re-reads them.
 * The route equals a by-hand argmax of ((cos + 1) / 2) * w with the
 * reference's weights of the counts at the task start. Live weights (the
 * old behaviour) follow the counts at once. Training routes are seen
 * through acting rows with --l2m-collect train. */
START_TEST(test_frozen_weights_hold_within_task) {
    crl_sac *plain = plain_base(71, NULL, NULL);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    lc.collect = "train";
    lc.history = 1; /* the same observations act repeatedly below */
    for (int live = 0; live < 2; live++) {
        lc.weights = live ? "live" : "frozen";
        crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 1, 1, 72, &lc);
        const crl_pool *p = crl_sac_pool(s);
        const float *bp = crl_sac_l2m_base(s), *pp = crl_sac_actor_params(s);
        crl_rng r;
        crl_rng_seed(&r, 73);
        float obs[8 * O];
        for (int i = 0; i < 8 * O; i++) obs[i] = (float)crl_rng_normal(&r);
        double q[8][H];
        for (int i = 0; i < 8; i++) embed_by_hand(&p->base, bp, obs + i * O, q[i]);
        int64_t *c = crl_sac_l2m_counts(s);
        const int64_t start[M] = {400, 30, 250, 120};
        memcpy(c, start, sizeof start);
        crl_err err = {0};
        ck_assert_int_eq(crl_sac_l2m_task_start(s, 1, start, &err), CRL_OK);
        int sel0[8], sel1[8], sel2[8];
        acting_sel(s, obs, 8, sel0);
        double w[M];
        ref_weights(start, w);
        if (!live)
            for (int i = 0; i < 8; i++)
                ck_assert_int_eq(sel0[i], route_by_hand(p, pp, q[i], w));
        /* The task trains: the rows' modulators get many more counts. */
        for (int i = 0; i < 8; i++) c[sel0[i]] += 100000;
        acting_sel(s, obs, 8, sel1);
        int moved = 0;
        for (int i = 0; i < 8; i++) moved += sel1[i] != sel0[i];
        if (live)
            ck_assert_int_gt(moved, 0); /* live weights follow the counts */
        else
            ck_assert_int_eq(moved, 0); /* frozen: held for the whole task */
        /* The next task start freezes the new counts. */
        int64_t now[M];
        memcpy(now, c, sizeof now);
        ck_assert_int_eq(crl_sac_l2m_task_start(s, 2, now, &err), CRL_OK);
        acting_sel(s, obs, 8, sel2);
        ref_weights(now, w);
        moved = 0;
        for (int i = 0; i < 8; i++) {
            moved += sel2[i] != sel0[i];
            if (!live) ck_assert_int_eq(sel2[i], route_by_hand(p, pp, q[i], w));
        }
        if (!live) ck_assert_int_gt(moved, 0);
        /* Evaluation routes by plain cosine whatever the weights. */
        crl_sac_l2m_eval(s, 1);
        acting_sel(s, obs, 8, sel2);
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(sel2[i], route_by_hand(p, pp, q[i], NULL));
        crl_sac_free(s);
    }
    crl_sac_free(plain);
}
END_TEST

/* The reference's weight formula against its definition on a worked
 * example: counts (10, 2, 4, 0): freq (10, 2, 4, 0) / 16, 1 / (freq + 1e-6)
 * normalised by its sum, so the unused modulator weighs ~1 - 1e-5. */
START_TEST(test_reference_weights_worked_example) {
    crl_sac *plain = plain_base(74, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 1, 1, 75);
    const int64_t c[M] = {10, 2, 4, 0};
    double w[M];
    crl_pool_usage_weights(crl_sac_pool(s), c, w);
    const double inv[M] = {1 / (0.625 + 1e-6), 1 / (0.125 + 1e-6), 1 / (0.25 + 1e-6),
                           1e6};
    const double sum = inv[0] + inv[1] + inv[2] + inv[3];
    for (int m = 0; m < M; m++) ck_assert(fabs(w[m] - inv[m] / sum) < 1e-15);
    const int64_t z[M] = {0, 0, 0, 0};
    crl_pool_usage_weights(crl_sac_pool(s), z, w);
    for (int m = 0; m < M; m++) ck_assert(w[m] == 0.25);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* A run with the old routing (a stored configuration without the new keys:
 * live weights, collection with the training route) routes exactly as the
 * explicit routes of the code before the router table did: task 0 plain
 * cosine, later tasks USAGE with the live counts, evaluation plain cosine;
 * the reference is crl_pool_route_rows on the pool's own queries. */
START_TEST(test_old_routing_reproduced) {
    crl_sac *plain = plain_base(76, NULL, NULL);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_l2m_config_old_routing(&lc);
    crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 1, 1, 77, &lc);
    const crl_pool *p = crl_sac_pool(s);
    crl_l2m m;
    crl_err err = {0};
    ck_assert_int_eq(crl_l2m_init(&m, &lc, M, T, 8, &err), CRL_OK);
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, p, 8, &err), CRL_OK);
    crl_rng r;
    crl_rng_seed(&r, 78);
    int64_t *c = crl_sac_l2m_counts(s);
    for (int task = 0; task < T; task++) {
        ck_assert_int_eq(crl_l2m_task_start(&m, s, task, 1, 5, &err), CRL_OK);
        for (int round = 0; round < 3; round++) {
            float obs[8 * O];
            for (int i = 0; i < 8 * O; i++) obs[i] = (float)crl_rng_normal(&r);
            for (int k = 0; k < M; k++) c[k] += (int64_t)crl_rng_below(&r, 50);
            const crl_pool_route old = {.mode = task > 0 ? CRL_POOL_ROUTE_USAGE
                                                         : CRL_POOL_ROUTE_COS,
                                        .counts = c};
            const crl_pool_route cosr = {.mode = CRL_POOL_ROUTE_COS};
            ck_assert_int_eq(crl_pool_forward(p, crl_sac_l2m_base(s),
                                              crl_sac_actor_params(s), &ws, obs, 8, NULL,
                                              &cosr, &err),
                             CRL_OK);
            int want[8], got[8];
            ck_assert_int_eq(crl_pool_route_rows(p, crl_sac_actor_params(s), ws.q, 8,
                                                 &old, want, &err),
                             CRL_OK);
            acting_sel(s, obs, 8, got); /* collection: the training route */
            for (int i = 0; i < 8; i++) ck_assert_int_eq(got[i], want[i]);
            crl_l2m_eval_route(&m, s, &err);
            acting_sel(s, obs, 8, got);
            ck_assert_int_eq(crl_pool_route_rows(p, crl_sac_actor_params(s), ws.q, 8,
                                                 &cosr, want, &err),
                             CRL_OK);
            for (int i = 0; i < 8; i++) ck_assert_int_eq(got[i], want[i]);
            ck_assert_int_eq(crl_l2m_task_start(&m, s, task, 0, 0, &err), CRL_OK);
        }
    }
    crl_pool_ws_free(&ws);
    crl_l2m_free(&m);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* The router table: every kind is found by its name, unknown names are
 * refused with the list; the l2m kind is the default. */
START_TEST(test_router_table) {
    ck_assert_ptr_eq(crl_router_find(NULL), &crl_router_l2m_ops);
    for (int i = 0; crl_router_kind(i); i++)
        ck_assert_ptr_eq(crl_router_find(crl_router_kind(i)->name), crl_router_kind(i));
    ck_assert_ptr_null(crl_router_find("nope"));
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_err err = {0};
    ck_assert_int_eq(crl_l2m_check_routing(&lc, &err), CRL_OK);
    lc.router = "nope";
    ck_assert_int_eq(crl_l2m_check_routing(&lc, &err), CRL_EINVAL);
    ck_assert(strstr(err.msg, "l2m, oracle, cos") != NULL);
    lc.router = "l2m";
    lc.weights = "sometimes";
    ck_assert_int_eq(crl_l2m_check_routing(&lc, &err), CRL_EINVAL);
}
END_TEST

/* ---- the history query --------------------------------------------------- */

/* An L2M actor over a random base with history H (acting scratch for 8 rows). */
static crl_actor *hist_actor(int Hh, int hold, uint64_t seed) {
    crl_actor_config ac;
    memset(&ac, 0, sizeof ac);
    ac.kind = CRL_ACTOR_L2M;
    crl_mlp_spec_cw(&ac.spec, O, 2 * A, TB, L, H);
    ac.M = M;
    ac.pool_kind = CRL_POOL_LORA;
    ac.rank = R;
    ac.scale = 2.0f;
    ac.pull = 0.5f;
    ac.head = 0;
    ac.max_act_batch = 8;
    ac.history = Hh;
    ac.hold = hold;
    ac.collect = CRL_ROUTER_COLLECT_EVAL;
    crl_actor *a = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_actor_create(&ac, &a, &err) == CRL_OK, "%s", err.msg);
    crl_rng r;
    crl_rng_seed(&r, seed);
    crl_mlp_init_params(&a->net, a->base, &r);
    for (size_t i = 0; i < a->n_base; i++) a->base[i] += 0.2f * (float)crl_rng_normal(&r);
    crl_actor_init_params(a, &r);
    return a;
}

/* The queries of the last forward on ws (the L2M workspace starts with the
 * pool's, pool.h). */
static const float *last_q(const crl_actor_ws *ws) {
    return ((const crl_pool_ws *)ws->impl)->q;
}

/* mean of embed_by_hand over n observations (rows of O floats). */
static void mean_embed(const crl_actor *a, const float *rows, int n, double *q) {
    double e[H];
    for (int j = 0; j < H; j++) q[j] = 0;
    for (int i = 0; i < n; i++) {
        embed_by_hand(&a->net, a->base, rows + (size_t)i * O, e);
        for (int j = 0; j < H; j++) q[j] += e[j] / n;
    }
}

/* mean_embed for a network and base parameters given apart. */
static void mean_embed_net(const crl_mlp *net, const float *bp, const float *rows, int n,
                           double *q) {
    double e[H];
    for (int j = 0; j < H; j++) q[j] = 0;
    for (int i = 0; i < n; i++) {
        embed_by_hand(net, bp, rows + (size_t)i * O, e);
        for (int j = 0; j < H; j++) q[j] += e[j] / n;
    }
}

/* Acting: each env's query is the mean of the base embeddings of its last H
 * observations (fewer at an episode start), checked against a by-hand mean
 * of the envs' own observation lists; an episode start of one env empties
 * only its history; rows outside the registered array (a collection env)
 * keep their own history apart. */
START_TEST(test_history_query_acting) {
    enum { HH = 3, NE = 3, STEPS = 7 };
    crl_actor *a = hist_actor(HH, 0, 81);
    crl_actor_ws ws;
    crl_err err = {0};
    ck_assert_int_eq(crl_actor_ws_alloc(a, &ws, 8, &err), CRL_OK);
    float obs[NE * O], past[NE][STEPS][O], solo[O];
    int len[NE] = {0};
    crl_rng r;
    crl_rng_seed(&r, 82);
    crl_actor_l2m_envs(a, &ws, obs, NE);
    const crl_actor_rows act = {.acting = 1, .task = 0};
    for (int t = 0; t < STEPS; t++) {
        if (t == 4) { /* env 1 starts a new episode */
            crl_actor_l2m_episode_start(a, &ws, obs + O, 1);
            len[1] = 0;
        }
        for (int e = 0; e < NE; e++)
            for (int j = 0; j < O; j++)
                obs[e * O + j] = past[e][len[e]][j] = (float)crl_rng_normal(&r);
        for (int j = 0; j < O; j++) solo[j] = (float)crl_rng_normal(&r);
        /* stochastic rows [0, 2) and deterministic [2, 3), as the evaluator */
        crl_actor_forward(a, &ws, obs, 2, &act);
        double q[H];
        for (int e = 0; e < 2; e++) {
            const int n = len[e] + 1 < HH ? len[e] + 1 : HH;
            mean_embed(a, past[e][len[e] + 1 - n], n, q);
            for (int j = 0; j < H; j++)
                ck_assert_msg(fabs(last_q(&ws)[e * H + j] - q[j]) < 2e-5,
                              "t %d env %d: %g vs %g", t, e, last_q(&ws)[e * H + j],
                              q[j]);
        }
        crl_actor_forward(a, &ws, obs + 2 * O, 1, &act);
        {
            const int n = len[2] + 1 < HH ? len[2] + 1 : HH;
            mean_embed(a, past[2][len[2] + 1 - n], n, q);
            for (int j = 0; j < H; j++) ck_assert(fabs(last_q(&ws)[j] - q[j]) < 2e-5);
        }
        /* A single collection env acting on its own buffer: only its current
         * observation at its first step, unaffected by the envs above. */
        if (t == 0) crl_actor_l2m_episode_start(a, &ws, solo, 1);
        crl_actor_forward(a, &ws, solo, 1, &act);
        if (t == 0) {
            mean_embed(a, solo, 1, q);
            for (int j = 0; j < H; j++) ck_assert(fabs(last_q(&ws)[j] - q[j]) < 2e-5);
        }
        for (int e = 0; e < NE; e++) len[e]++;
    }
    crl_actor_ws_free(a, &ws);
    crl_actor_free(a);
}
END_TEST

/* Update windows from the replay buffer: for every slot, the window of obs
 * is the last H - 1 earlier transitions of the same episode still held, and
 * that of obs2 ends with obs; episodes end by a terminal flag or by a reset
 * (obs no longer the previous obs2); the buffer wraps. Checked against a
 * by-hand list of every transition added. Then the actor's query of update
 * rows with those windows equals the by-hand mean. */
START_TEST(test_history_windows_from_buffer) {
    enum { CAP = 9, HH = 3, N = 17 };
    crl_replay rb;
    ck_assert_int_eq(crl_replay_init(&rb, O, A, CAP, NULL), CRL_OK);
    float all_obs[N][O], all_obs2[N][O];
    int ep[N];
    crl_rng r;
    crl_rng_seed(&r, 83);
    /* Episodes of 4, 5 (terminal), 3 (truncated: a reset follows), 5; the
     * buffer keeps the last 9 (8..16), so both kinds of ends are inside. */
    const int lens[4] = {4, 5, 3, 5}, term[4] = {1, 1, 0, 0};
    int n = 0;
    for (int e = 0; e < 4; e++) {
        float cur[O];
        for (int j = 0; j < O; j++) cur[j] = (float)crl_rng_normal(&r);
        /* After a terminal step the next episode starts where it ended: only
         * the terminal flag tells the two apart. */
        if (e > 0 && term[e - 1]) memcpy(cur, all_obs2[n - 1], sizeof cur);
        for (int k = 0; k < lens[e]; k++, n++) {
            memcpy(all_obs[n], cur, sizeof cur);
            for (int j = 0; j < O; j++) cur[j] = (float)crl_rng_normal(&r);
            memcpy(all_obs2[n], cur, sizeof cur);
            ep[n] = e;
            const float act[A] = {0};
            crl_replay_add(&rb, all_obs[n], act, 0, all_obs2[n],
                           term[e] && k == lens[e] - 1, 0);
        }
    }
    ck_assert_int_eq(n, N);
    crl_actor *a = hist_actor(HH, 0, 84);
    crl_actor_ws ws;
    ck_assert_int_eq(crl_actor_ws_alloc(a, &ws, 8, NULL), CRL_OK);
    /* slot s holds transition g = the last added with g % CAP == s */
    for (int s = 0; s < CAP; s++) {
        const int g = N - 1 - ((N - 1 - s) % CAP);
        float w[HH - 1][O], w2[HH - 1][O];
        int nw = -1, nw2 = -1;
        crl_replay_window(&rb, s, HH - 1, &w[0][0], &nw, &w2[0][0], &nw2);
        /* by hand: earlier transitions of g's episode still held */
        int first = g;
        while (first > 0 && ep[first - 1] == ep[g] && first - 1 >= N - CAP) first--;
        const int before = g - first;
        const int want = before < HH - 1 ? before : HH - 1;
        ck_assert_int_eq(nw, want);
        for (int j = 0; j < want; j++)
            ck_assert(!memcmp(w[j], all_obs[g - want + j], sizeof w[j]));
        const int want2 = before + 1 < HH - 1 ? before + 1 : HH - 1;
        ck_assert_int_eq(nw2, want2);
        for (int j = 0; j < want2; j++)
            ck_assert(!memcmp(w2[j], all_obs[g - want2 + 1 + j], sizeof w2[j]));
        /* the actor's query of these update rows: obs and obs2 */
        const crl_actor_rows up = {.hist = &w[0][0], .hist_n = &nw, .hist_cap = HH - 1};
        crl_actor_forward(a, &ws, all_obs[g], 1, &up);
        float rows[HH][O];
        memcpy(rows, w, sizeof(float) * O * (size_t)want);
        memcpy(rows[want], all_obs[g], sizeof rows[0]);
        double q[H];
        mean_embed(a, &rows[0][0], want + 1, q);
        for (int j = 0; j < H; j++) ck_assert(fabs(last_q(&ws)[j] - q[j]) < 2e-5);
        const crl_actor_rows up2 = {
            .hist = &w2[0][0], .hist_n = &nw2, .hist_cap = HH - 1};
        crl_actor_forward(a, &ws, all_obs2[g], 1, &up2);
        memcpy(rows, w2, sizeof(float) * O * (size_t)want2);
        memcpy(rows[want2], all_obs2[g], sizeof rows[0]);
        mean_embed(a, &rows[0][0], want2 + 1, q);
        for (int j = 0; j < H; j++) ck_assert(fabs(last_q(&ws)[j] - q[j]) < 2e-5);
    }
    crl_actor_ws_free(a, &ws);
    crl_actor_free(a);
    crl_replay_free(&rb);
}
END_TEST

/* H = 1 routes exactly as without history (the old behaviour): the same
 * queries bit for bit, whatever windows the rows bring. */
START_TEST(test_history_one_is_old_query) {
    crl_actor *a1 = hist_actor(1, 0, 85), *a0 = hist_actor(0, 0, 85);
    crl_actor_ws w1, w0;
    ck_assert_int_eq(crl_actor_ws_alloc(a1, &w1, 8, NULL), CRL_OK);
    ck_assert_int_eq(crl_actor_ws_alloc(a0, &w0, 8, NULL), CRL_OK);
    crl_rng r;
    crl_rng_seed(&r, 86);
    float x[8 * O], h[8 * 4 * O];
    int hn[8];
    for (int i = 0; i < 8 * O; i++) x[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < 8 * 4 * O; i++) h[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < 8; i++) hn[i] = i % 5;
    const crl_actor_rows up = {.hist = h, .hist_n = hn, .hist_cap = 4}, plain = {0};
    crl_actor_forward(a1, &w1, x, 8, &up);
    crl_actor_forward(a0, &w0, x, 8, &plain);
    ck_assert(!memcmp(last_q(&w1), last_q(&w0), sizeof(float) * 8 * H));
    const crl_actor_rows act = {.acting = 1};
    for (int t = 0; t < 3; t++) {
        crl_actor_forward(a1, &w1, x, 8, &act);
        crl_actor_forward(a0, &w0, x, 8, &plain);
        ck_assert(!memcmp(last_q(&w1), last_q(&w0), sizeof(float) * 8 * H));
    }
    crl_actor_ws_free(a1, &w1);
    crl_actor_ws_free(a0, &w0);
    crl_actor_free(a1);
    crl_actor_free(a0);
}
END_TEST

/* --l2m-hold: from an episode's step H on, acting keeps the modulator
 * chosen at step H, whatever the observations; an episode start releases
 * it. Without hold the same observations move the routing. */
START_TEST(test_hold_keeps_step_h) {
    enum { HH = 2 };
    for (int hold = 0; hold < 2; hold++) {
        crl_actor *a = hist_actor(HH, hold, 87);
        crl_actor_ws ws;
        ck_assert_int_eq(crl_actor_ws_alloc(a, &ws, 8, NULL), CRL_OK);
        crl_rng r;
        crl_rng_seed(&r, 88);
        float x[O];
        const crl_actor_rows act = {.acting = 1};
        int at_h = -1, moved = 0;
        for (int t = 0; t < 40; t++) {
            for (int j = 0; j < O; j++) x[j] = 3.0f * (float)crl_rng_normal(&r);
            crl_actor_forward(a, &ws, x, 1, &act);
            const int sel = ((const crl_pool_ws *)ws.impl)->sel[0];
            if (t == HH - 1) at_h = sel;
            if (t >= HH) moved += sel != at_h;
        }
        if (hold)
            ck_assert_int_eq(moved, 0);
        else
            ck_assert_int_gt(moved, 0);
        crl_actor_ws_free(a, &ws);
        crl_actor_free(a);
    }
}
END_TEST

/* The update with history windows (H = 5) does not allocate. */
START_TEST(test_l2m_history_step_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_sac *plain = plain_base(89, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 2, 90);
    ck_assert_int_eq(crl_sac_l2m_history(s), CRL_L2M_HISTORY);
    crl_err err = {0};
    crl_replay rb;
    ck_assert_int_eq(crl_replay_init(&rb, O, A, 50, NULL), CRL_OK);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    ck_assert_int_eq(crl_batch_alloc_history(&b, crl_sac_l2m_history(s), O, NULL), 0);
    crl_rng r;
    crl_rng_seed(&r, 91);
    float o[O], o2[O], act[A] = {0};
    for (int j = 0; j < O; j++) o[j] = (float)crl_rng_normal(&r);
    long before = 0;
    int bad = 0;
    for (int u = 0; u < 80; u++) {
        if (u == 20) before = alloc_calls();
        for (int j = 0; j < O; j++) o2[j] = (float)crl_rng_normal(&r);
        crl_replay_add(&rb, o, act, 1.0f, o2, u % 9 == 8, u % 2);
        memcpy(o, o2, sizeof o);
        crl_replay_sample(&rb, &r, B, &b);
        bad += crl_sac_update(s, &b, NULL, &err) != CRL_OK;
        crl_sac_act(s, 1, o, 1, 0, NULL, act);
    }
    long calls = alloc_calls() - before;
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(calls == 0, "%ld allocations in 60 L2M steps with history", calls);
    crl_batch_free(&b);
    crl_replay_free(&rb);
    crl_sac_free(s);
    crl_sac_free(plain);
#else
    fprintf(stderr,
            "test_l2m_history_step_no_malloc: skipped (no malloc interposition)\n");
#endif
}
END_TEST

/* The SAC update routes its pi(o) rows on the batch's windows: the usage
 * counts one update adds are the histogram of a by-hand cosine routing of
 * the mean embedding of each row's window and observation (task 0). */
START_TEST(test_update_routes_on_windows) {
    crl_sac *plain = plain_base(92, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 2, 93);
    const int Hh = crl_sac_l2m_history(s);
    ck_assert_int_eq(Hh, CRL_L2M_HISTORY);
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_l2m_task_start(s, 0, NULL, &err), CRL_OK);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    ck_assert_int_eq(crl_batch_alloc_history(&b, Hh, O, NULL), 0);
    fill_batch(&b, 94, 0);
    crl_rng r;
    crl_rng_seed(&r, 95);
    for (int i = 0; i < B * (Hh - 1) * O; i++) {
        b.hist_obs[i] = 2.0f * (float)crl_rng_normal(&r);
        b.hist_obs2[i] = (float)crl_rng_normal(&r);
    }
    for (int i = 0; i < B; i++) {
        b.hist_n[i] = i % Hh;
        b.hist_n2[i] = (i + 1) % Hh;
    }
    const crl_pool *p = crl_sac_pool(s);
    int64_t want[M] = {0}, before[M];
    memcpy(before, crl_sac_l2m_counts(s), sizeof before);
    for (int i = 0; i < B; i++) {
        float rows[CRL_L2M_HISTORY][O];
        const int n = b.hist_n[i];
        memcpy(rows, b.hist_obs + (size_t)i * (Hh - 1) * O,
               sizeof(float) * O * (size_t)n);
        memcpy(rows[n], b.obs + (size_t)i * O, sizeof rows[0]);
        double q[H], e[H];
        for (int j = 0; j < H; j++) q[j] = 0;
        for (int k = 0; k <= n; k++) {
            embed_by_hand(&p->base, crl_sac_l2m_base(s), rows[k], e);
            for (int j = 0; j < H; j++) q[j] += e[j] / (n + 1);
        }
        want[route_by_hand(p, crl_sac_actor_params(s), q, NULL)]++;
    }
    ck_assert_msg(crl_sac_update(s, &b, NULL, &err) == CRL_OK, "%s", err.msg);
    for (int m = 0; m < M; m++)
        ck_assert_int_eq(crl_sac_l2m_counts(s)[m] - before[m], want[m]);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* A router that reads every layer (CRL_ROUTER_NEEDS_LAYERS, e.g. prototypes
 * taken from the modulators) gets the UNMODULATED base's layer inputs:
 * x, tanh(LN(x W0 + b0)), lrelu(. W1 + b1), ... checked by hand; the pool
 * refuses such a route without the room for them. */
typedef struct {
    int called;
    float lin[3][4 * H];
    const float *const *seen;
} layers_probe;

static int probe_call(void *ctx, const float *params, const float *q,
                      const float *const *layer_in, int rows, int *sel, crl_err *err) {
    (void)params, (void)q, (void)err;
    layers_probe *pr = ctx;
    pr->called++;
    pr->seen = layer_in;
    for (int l = 1; layer_in && l < L; l++)
        memcpy(pr->lin[l], layer_in[l], sizeof(float) * (size_t)rows * H);
    for (int r = 0; r < rows; r++) sel[r] = r % M;
    return CRL_OK;
}

START_TEST(test_router_layer_inputs) {
    crl_actor *a = hist_actor(1, 0, 96);
    const crl_pool *p = crl_actor_pool(a);
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, p, 4, NULL), CRL_OK);
    crl_rng r;
    crl_rng_seed(&r, 97);
    float x[4 * O];
    for (int i = 0; i < 4 * O; i++) x[i] = (float)crl_rng_normal(&r);
    layers_probe pr = {0};
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_CALL, .call = probe_call, .ctx = &pr};
    crl_err err = {0};
    /* Without layers: NULL. */
    ck_assert_int_eq(crl_pool_forward(p, a->base, a->params, &ws, x, 4, NULL, &rt, &err),
                     CRL_OK);
    ck_assert_int_eq(pr.called, 1);
    ck_assert_ptr_null(pr.seen);
    rt.layers = 1;
    ck_assert_int_eq(crl_pool_forward(p, a->base, a->params, &ws, x, 4, NULL, &rt, &err),
                     CRL_EINVAL);
    ck_assert_int_eq(crl_pool_ws_layers(&ws, p, &err), CRL_OK);
    ck_assert_int_eq(crl_pool_forward(p, a->base, a->params, &ws, x, 4, NULL, &rt, &err),
                     CRL_OK);
    ck_assert_int_eq(pr.called, 2);
    const crl_mlp *m = &p->base;
    for (int i = 0; i < 4; i++) {
        double h1[H];
        embed_by_hand(m, a->base, x + i * O, h1);
        for (int j = 0; j < H; j++) ck_assert(fabs(pr.lin[1][i * H + j] - h1[j]) < 2e-5);
        for (int j = 0; j < H; j++) {
            double z = a->base[m->b[1] + j];
            for (int k = 0; k < H; k++) z += h1[k] * a->base[m->W[1] + (size_t)k * H + j];
            const double h2 = z > 0 ? z : m->spec.lrelu_slope * z;
            ck_assert_msg(fabs(pr.lin[2][i * H + j] - h2) < 1e-4,
                          "row %d unit %d: %g vs %g", i, j, pr.lin[2][i * H + j], h2);
        }
    }
    /* The routing it chose is the one the pool applied. */
    for (int i = 0; i < 4; i++) ck_assert_int_eq(ws.sel[i], i % M);
    crl_pool_ws_free(&ws);
    crl_actor_free(a);
}
END_TEST

/* ---- the CLI: pretrain with mt, then l2m and l2m-oracle on t1 ------------- */

static char dir[256], db[300];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static pid_t spawn(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_code(pid_t pid) {
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!getenv("CRL_TEST_VERBOSE")) {
            if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
                _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define RUN(...) run((char *const[]){(char *)bin(), __VA_ARGS__, NULL})
#define TINY                                                                             \
    "--eval-every", "400", "--eval-episodes", "2", "--hidden", "16", "--layers", "2",    \
        "--start-steps", "100", "--update-after", "100", "--batch", "32", "--threads",   \
        "1", "--quiet", "--db", db

static double q(const char *sql) {
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(h));
    double v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

START_TEST(test_cli_pretrain_then_l2m) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_l2m_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(db, sizeof db, "%s/l.db", dir);
    /* Multi-task pre-training: 7 tasks x 200 steps, one episode each. */
    ck_assert_int_eq(RUN("train", "--scenario", "pretrain", "--method", "mt",
                         "--steps-per-task", "200", TINY),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE id = 1 AND status = 'finished'"),
                     1);
    /* Every task had a window over the whole run and was evaluated. */
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE run_id = 1 AND start_step = 0 "
                       "AND end_step = 1400"),
                     7);
    ck_assert_int_eq(
        q("SELECT count(DISTINCT eval_task_idx) FROM evals WHERE run_id = 1"), 7);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1:2",
                         "--l2m-pool", "6", "--l2m-rank", "2", "--steps-per-task", "400",
                         TINY),
                     0);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-oracle", "--modulator", "ia3", "--l2m-pool", "6",
                         "--steps-per-task", "400", TINY),
                     0);
    /* The variants are labelled apart (the report's rows). */
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished' AND ((id = 2 "
                       "AND method = 'l2m') OR (id = 3 AND method = 'l2m-oracle-ia3'))"),
                     2);
    /* 3 tasks x 400 steps, eval every 400: 3 evaluations of 3 tasks each. */
    ck_assert_int_eq(q("SELECT count(*) FROM evals WHERE run_id = 2"), 9);
    ck_assert_int_eq(q("SELECT count(*) FROM evals WHERE run_id = 3"), 9);
    /* Routing is stored per (eval step, task); oracle tasks stay in their
     * slices of 6 / 3 = 2 modulators. */
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 2 AND key LIKE "
                       "'l2m/route/%'"),
                     9);
    /* Routing accuracy from the evaluation at a task's last step on (which
     * already knows the task's trained modulator): 1 + 2 + 3 rows. */
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 2 AND key LIKE "
                       "'l2m/route_acc/%'"),
                     6);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 2 AND key = "
                       "'l2m/route_acc/2' AND step = 1200"),
                     1);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 3 AND key = "
                       "'l2m/train_mod/2' AND value >= 4 AND value < 6"),
                     1);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 3 AND key = "
                       "'l2m/route/0' AND value >= 0 AND value < 2"),
                     3);
    ck_assert(q("SELECT max(value) FROM metrics WHERE run_id = 2 AND key = 'l2m/used'") >=
              1);
    /* A bad base is a clear flag error. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "9",
                         "--steps-per-task", "400", TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m",
                         "--steps-per-task", "400", TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--modulator", "lorra", "--steps-per-task", "400", TINY),
                     2);
    ck_assert_int_eq(q("SELECT count(*) FROM runs"), 3); /* none was created */
    /* crl eval re-creates the l2m learner from the run's record. */
    ck_assert_int_eq(
        RUN("eval", "--db", db, "--run", "2", "--task", "1", "--episodes", "1"), 0);
    /* Resume: an l2m run killed without warning in its second task
     * continues to complete rows, none twice. */
    /* TINY's flags but an evaluation every 1000 steps (a flag may not be
     * given twice). */
    pid_t pid = spawn((char *const[]){(char *)bin(),
                                      "train",
                                      "--scenario",
                                      "t1",
                                      "--method",
                                      "l2m",
                                      "--base",
                                      "1:2",
                                      "--steps-per-task",
                                      "5000",
                                      "--eval-every",
                                      "1000",
                                      "--eval-episodes",
                                      "2",
                                      "--hidden",
                                      "16",
                                      "--layers",
                                      "2",
                                      "--start-steps",
                                      "100",
                                      "--update-after",
                                      "100",
                                      "--batch",
                                      "32",
                                      "--threads",
                                      "1",
                                      "--quiet",
                                      "--db",
                                      db,
                                      NULL});
    int started = 0;
    for (int i = 0; i < 20000 && !started; i++) {
        usleep(5000);
        started = q("SELECT count(*) FROM tasks WHERE run_id = 4 AND idx = 1") == 1;
    }
    ck_assert(started);
    kill(pid, SIGKILL);
    ck_assert_int_eq(wait_code(pid), 128 + SIGKILL);
    ck_assert(q("SELECT count(*) FROM tasks WHERE run_id = 4 AND end_step IS NOT NULL") <
              3);
    ck_assert_int_eq(RUN("train", "--resume", "4", "--db", db, "--quiet"), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM evals WHERE run_id = 4"), 45);
    ck_assert_int_eq(q("SELECT count(DISTINCT step || '/' || eval_task_idx) FROM evals "
                       "WHERE run_id = 4"),
                     45);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 4 AND key LIKE "
                       "'l2m/route/%'"),
                     45);
    /* The query memory came through the resume: 200 queries of each of the
     * three tasks at the end (task 0's from the checkpoint). */
    ck_assert_int_eq(q("SELECT value FROM metrics WHERE run_id = 4 AND key = "
                       "'l2m/ceiling_n' ORDER BY step DESC LIMIT 1"),
                     600);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 4 AND key = "
                       "'l2m/ceiling'"),
                     2);
    /* After three tasks and a resume, the base in the run's checkpoint is
     * bit for bit run 1's actor. */
    crl_store *st = NULL;
    crl_err err = {0};
    void *b1 = NULL, *b4 = NULL;
    size_t n1 = 0, n4 = 0, s1 = 0, s4 = 0;
    const void *l1 = NULL, *l4 = NULL;
    int idx;
    int64_t step;
    ck_assert_int_eq(crl_store_open(db, 0, &st, &err), CRL_OK);
    ck_assert_int_eq(crl_store_checkpoint_latest(st, 1, &idx, &step, &b1, &n1, &err), 0);
    ck_assert_int_eq(crl_store_checkpoint_latest(st, 4, &idx, &step, &b4, &n4, &err), 0);
    crl_store_close(st);
    ck_assert_int_eq(crl_continual_checkpoint_learner(b1, n1, &l1, &s1, &err), CRL_OK);
    ck_assert_int_eq(crl_continual_checkpoint_learner(b4, n4, &l4, &s4, &err), CRL_OK);
    crl_l2m_base base;
    ck_assert_int_eq(crl_l2m_base_parse(l1, s1, 2, &base, &err), CRL_OK);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_sac_config sc;
    crl_sac_config_default(&sc, base.obs_dim, base.act_dim, 3);
    sc.hidden = 16;
    sc.layers = 2;
    sc.batch = 32;
    ck_assert_int_eq(crl_l2m_sac_config(&lc, &base, &sc, &err), CRL_OK);
    crl_sac *s4l = NULL;
    ck_assert_int_eq(crl_sac_create(&sc, 0, &s4l, &err), CRL_OK);
    ck_assert_msg(crl_sac_load(s4l, l4, s4, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(crl_sac_l2m_base(s4l), base.params, base.n * sizeof(float)),
                     0);
    int64_t rows = 0;
    for (int i = 0; i < lc.pool; i++) rows += crl_sac_l2m_counts(s4l)[i];
    ck_assert(rows > 0);
    crl_sac_free(s4l);
    crl_l2m_base_free(&base);
    free(b1);
    free(b4);

    /* Oracle with --eval-fixed (run 5): task 0's modulators are never touched
     * after it, and its evaluations rerun the same episodes, so its scores
     * after its end are identical (forgetting exactly 0); task 1's change
     * between 400 and 800, while it trains. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-oracle", "--l2m-pool", "6", "--steps-per-task", "400",
                         "--eval-fixed", TINY),
                     0);
    ck_assert_int_eq(
        q("SELECT count(*) FROM evals WHERE run_id = 5 AND eval_task_idx = 0 "
          "AND step >= 400"),
        3);
    ck_assert_int_eq(q("SELECT count(DISTINCT mean_return || '/' || det_return || '/' || "
                       "success_rate) FROM evals WHERE run_id = 5 AND eval_task_idx = 0 "
                       "AND step >= 400"),
                     1);
    ck_assert_int_eq(q("SELECT count(DISTINCT mean_return) FROM evals WHERE run_id = 5 "
                       "AND eval_task_idx = 1 AND step IN (400, 800)"),
                     2);

    /* crl report: the pool, the parameter counts and the modulators used. */
    char cmd[700], out[8192] = "";
    snprintf(cmd, sizeof cmd, "%s report --db %s --scenario t1 2>&1", bin(), db);
    FILE *f = popen(cmd, "r");
    ck_assert(f != NULL);
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = 0;
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_msg(
        strstr(out, "l2m run 2 (t1, seed 0): pool of 6 lora modulators (rank 2)"), "%s",
        out);
    ck_assert_msg(strstr(out, "pool of 6 ia3 modulators split per task, base 1;"), "%s",
                  out);
    ck_assert_msg(strstr(out, "(base) + "), "%s", out);
    /* The oracle's slices hold only their task's rows: every evaluation of a
     * trained task routes all its steps to modulators the task owns (runs
     * 3 and 5). */
    ck_assert(q("SELECT count(*) FROM metrics WHERE run_id IN (3, 5) AND key LIKE "
                "'l2m/route_acc_steps/%'") >= 12);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id IN (3, 5) AND key LIKE "
                       "'l2m/route_acc_steps/%' AND value < 0.99"),
                     0);
    /* The separability ceiling at the ends of tasks 2 and 3 of every l2m
     * run; over 200 queries per finished task (each task's buffer holds
     * 400 rows). */
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 2 AND key = "
                       "'l2m/ceiling' AND step IN (800, 1200)"),
                     2);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 2 AND key = "
                       "'l2m/ceiling'"),
                     2);
    ck_assert_int_eq(q("SELECT value FROM metrics WHERE run_id = 2 AND key = "
                       "'l2m/ceiling_n' AND step = 1200"),
                     600);
    /* The arrow router (run 6): task k trains modulator k (the least used at
     * its start), no key is trained, and the ceiling logged at the end equals
     * crl_metric_ceiling over the memory of the final checkpoint. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1:2",
                         "--l2m-router", "arrow", "--l2m-pool", "6", "--l2m-rank", "2",
                         "--steps-per-task", "400", TINY),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 6 AND key LIKE "
                       "'l2m/train_mod/%' AND CAST(substr(key, 15) AS INT) = value"),
                     3);
    {
        crl_store *s6 = NULL;
        crl_err e6 = {0};
        void *b6 = NULL;
        size_t n6 = 0;
        int i6;
        int64_t st6;
        ck_assert_int_eq(crl_store_open(db, 0, &s6, &e6), CRL_OK);
        ck_assert_int_eq(crl_store_checkpoint_latest(s6, 6, &i6, &st6, &b6, &n6, &e6), 0);
        crl_store_close(s6);
        crl_continual_view v6;
        ck_assert_int_eq(crl_continual_checkpoint_view(b6, n6, &v6, &e6), CRL_OK);
        crl_l2m_config lc6;
        crl_l2m_config_default(&lc6);
        crl_l2m m6;
        ck_assert_int_eq(crl_l2m_init(&m6, &lc6, 6, 3, 4, &e6), CRL_OK);
        ck_assert_msg(crl_l2m_load(&m6, v6.method, v6.method_n, &e6) == CRL_OK, "%s",
                      e6.msg);
        ck_assert_int_eq(m6.n_mem, 600);
        int *lab = malloc(sizeof(int) * 600);
        for (int i = 0; i < 600; i++) lab[i] = m6.mem_y[i];
        double want = -1;
        ck_assert_int_eq(crl_metric_ceiling(m6.mem_q, lab, 600, m6.mem_D, 3, &want, &e6),
                         CRL_OK);
        ck_assert_double_eq_tol(q("SELECT value FROM metrics WHERE run_id = 6 AND key = "
                                  "'l2m/ceiling' AND step = 1200"),
                                want, 1e-12);
        free(lab);
        crl_l2m_free(&m6);
        free(b6);
    }
    ck_assert_int_eq(
        RUN("eval", "--db", db, "--run", "6", "--task", "0", "--episodes", "1"), 0);
    /* The l2r router (run 7) trains, evaluates from its checkpoint (its
     * classifier is in the method blob), and is refused by export (the
     * policy format cannot hold it yet) with nothing written. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1:2",
                         "--l2m-router", "l2r", "--l2m-pool", "6", "--l2m-rank", "2",
                         "--steps-per-task", "400", TINY),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE run_id = 7 AND key LIKE "
                       "'l2m/train_mod/%' AND CAST(substr(key, 15) AS INT) = value"),
                     3);
    ck_assert_int_eq(
        RUN("eval", "--db", db, "--run", "7", "--task", "1", "--episodes", "1"), 0);
    {
        /* The final checkpoint's router state: the classifier learned each
         * task's 200 queries, once per task end. */
        crl_store *s7 = NULL;
        crl_err e7 = {0};
        void *b7 = NULL;
        size_t n7 = 0;
        int i7;
        int64_t st7;
        ck_assert_int_eq(crl_store_open(db, 0, &s7, &e7), CRL_OK);
        ck_assert_int_eq(crl_store_checkpoint_latest(s7, 7, &i7, &st7, &b7, &n7, &e7), 0);
        crl_store_close(s7);
        crl_continual_view v7;
        ck_assert_int_eq(crl_continual_checkpoint_view(b7, n7, &v7, &e7), CRL_OK);
        crl_l2m_config lc7;
        crl_l2m_config_default(&lc7);
        crl_l2m m7;
        ck_assert_int_eq(crl_l2m_init(&m7, &lc7, 6, 3, 4, &e7), CRL_OK);
        ck_assert_msg(crl_l2m_load(&m7, v7.method, v7.method_n, &e7) == CRL_OK, "%s",
                      e7.msg);
        ck_assert(m7.rstate_n > 0);
        crl_l2r clf;
        ck_assert_int_eq(crl_l2r_load(&clf, m7.rstate, m7.rstate_n, 16, &e7), CRL_OK);
        ck_assert_int_eq(clf.n_mem, 600);
        ck_assert_int_eq(clf.n_trains, 3);
        for (int i = 0; i < 600; i++) ck_assert_int_eq(clf.mem_y[i], i / 200);
        ck_assert_int_eq(memcmp(clf.mem_q, m7.mem_q, sizeof(float) * 600 * m7.mem_D), 0);
        crl_l2r_free(&clf);
        crl_l2m_free(&m7);
        free(b7);
    }
    {
        char pol[400];
        snprintf(pol, sizeof pol, "%s/l2r.crlp", dir);
        ck_assert_int_ne(RUN("export", "--db", db, "--run", "7", "-o", pol), 0);
        ck_assert_int_ne(access(pol, F_OK), 0);
    }
    /* Bad routing flags: exit 2 before anything is written. */
    const double runs = q("SELECT count(*) FROM runs");
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-weights", "sometimes", TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-router", "nope", TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-history", "65", TINY),
                     2);
    /* soft: k outside 1..pool, or k / temperature out of range, refused. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-pool", "6", "--l2m-router", "soft", "--l2m-soft-k", "7",
                         TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-router", "soft", "--l2m-soft-k", "0", TINY),
                     2);
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-router", "soft", "--l2m-soft-temp", "0", TINY),
                     2);
    ck_assert(q("SELECT count(*) FROM runs") == runs);
    /* ... with one line on stderr naming the flag. */
    snprintf(cmd, sizeof cmd,
             "%s train --scenario t1 --method l2m --base 1 --l2m-pool 6 --l2m-router "
             "soft --l2m-soft-k 7 --quiet --db %s 2>&1 >/dev/null",
             bin(), db);
    f = popen(cmd, "r");
    ck_assert(f != NULL);
    got = fread(out, 1, sizeof out - 1, f);
    out[got] = 0;
    ck_assert_int_eq(WEXITSTATUS(pclose(f)), 2);
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    ck_assert_msg(lines == 1 && strstr(out, "l2m-soft-k"), "%s", out);
    ck_assert(q("SELECT count(*) FROM runs") == runs);
    /* A soft run (k = 3, T = 0.5) trains, and its settings are stored. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--l2m-pool", "6", "--l2m-rank", "2", "--l2m-router", "soft",
                         "--l2m-soft-k", "3", "--l2m-soft-temp", "0.5",
                         "--steps-per-task", "400", TINY),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished' AND "
                       "json_extract(config_json, '$.\"l2m-router\"') = 'soft' AND "
                       "json_extract(config_json, '$.\"l2m-soft-k\"') = 3 AND "
                       "json_extract(config_json, '$.\"l2m-soft-temp\"') = 0.5"),
                     1);
    /* Its export is refused (the policy format routes one modulator per row),
     * and nothing is written. */
    char soft_id[24], pol[600];
    snprintf(soft_id, sizeof soft_id, "%.0f", q("SELECT max(id) FROM runs"));
    snprintf(pol, sizeof pol, "%s/soft.crlp", dir);
    ck_assert_int_ne(RUN("export", "--db", db, "--run", soft_id, "-o", pol), 0);
    ck_assert_int_ne(access(pol, F_OK), 0);
    /* Runs without the soft keys store none (old configurations re-encode). */
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE config_json LIKE '%l2m-soft%'"),
                     1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- routing accuracy over evaluation steps (docs/l2m.md section 6) ---------
 *
 * A hand-made case, 3 tasks x 5 modulators. Training rows per task:
 *
 *              mod 0  mod 1  mod 2  mod 3  mod 4
 *   task 0       10      5      0      0      0
 *   task 1        0      5      4      0      0
 *   task 2        0      0      6      8      0
 *   sum S_i      10     10     10      8      0
 *
 * mod 1 is shared 50/50 by tasks 0 and 1: 5 >= 0.5 * 10, owned by both.
 * mod 2 is shared 40/60 by tasks 1 and 2: 4 < 5, owned by task 2 only.
 * mod 4 took no row: owned by nobody.
 *   owned(0) = {0, 1}, owned(1) = {1}, owned(2) = {2, 3}.
 *
 * Evaluation tallies (one row per episode, steps per modulator):
 *   task 0: {5, 3, 2, 0, 0}, {0, 0, 0, 0, 10}, {4, 4, 0, 2, 0}
 *           owned steps 5 + 3 + 4 + 4 = 16 of 30       -> 16 / 30
 *   task 1: {0, 6, 4, 0, 0}, {2, 2, 2, 2, 2}
 *           owned steps 6 + 2 = 8 of 20                -> 0.4
 *           (the 4 + 2 steps on mod 2, 40% its own, do not count)
 *   task 2: {0, 0, 5, 5, 0}, {0, 1, 0, 0, 9}
 *           owned steps 5 + 5 = 10 of 20               -> 0.5
 */
static const int64_t ACC_ROWS[3][5] = {
    {10, 5, 0, 0, 0}, {0, 5, 4, 0, 0}, {0, 0, 6, 8, 0}};
static const int32_t ACC_H0[3][5] = {{5, 3, 2, 0, 0}, {0, 0, 0, 0, 10}, {4, 4, 0, 2, 0}};
static const int32_t ACC_H1[2][5] = {{0, 6, 4, 0, 0}, {2, 2, 2, 2, 2}};
static const int32_t ACC_H2[2][5] = {{0, 0, 5, 5, 0}, {0, 1, 0, 0, 9}};

START_TEST(test_route_acc_steps_by_hand) {
    const int64_t *r = &ACC_ROWS[0][0];
    ck_assert_double_eq_tol(crl_l2m_route_acc_steps(r, 3, 5, 0, &ACC_H0[0][0], 3),
                            16.0 / 30.0, 1e-12);
    ck_assert_double_eq_tol(crl_l2m_route_acc_steps(r, 3, 5, 1, &ACC_H1[0][0], 2), 0.4,
                            1e-12);
    ck_assert_double_eq_tol(crl_l2m_route_acc_steps(r, 3, 5, 2, &ACC_H2[0][0], 2), 0.5,
                            1e-12);
    /* The task being trained: only its rows so far count. Before task 2's
     * first row, S_2 = 4 (task 1's), so mod 2 is task 1's: task 1 owns
     * {1, 2} and scores (6 + 4 + 2 + 2) / 20 = 0.7; task 2 has no row: NaN. */
    int64_t before[3][5];
    memcpy(before, ACC_ROWS, sizeof before);
    memset(before[2], 0, sizeof before[2]);
    ck_assert_double_eq_tol(
        crl_l2m_route_acc_steps(&before[0][0], 3, 5, 1, &ACC_H1[0][0], 2), 0.7, 1e-12);
    ck_assert(isnan(crl_l2m_route_acc_steps(&before[0][0], 3, 5, 2, &ACC_H2[0][0], 2)));
    /* No evaluation step, or a task out of range: NaN. */
    const int32_t zero[5] = {0};
    ck_assert(isnan(crl_l2m_route_acc_steps(r, 3, 5, 0, zero, 1)));
    ck_assert(isnan(crl_l2m_route_acc_steps(r, 3, 5, 0, &ACC_H0[0][0], 0)));
    ck_assert(isnan(crl_l2m_route_acc_steps(r, 3, 5, 3, &ACC_H0[0][0], 3)));
    /* The old definition on the same tally of task 1 (train_mod = 1, the
     * modulator with most of its rows): modes 1 and 0 -> 1 / 2. */
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_l2m m;
    ck_assert_int_eq(crl_l2m_init(&m, &lc, 5, 3, 2, NULL), CRL_OK);
    memcpy(m.hist, ACC_H1, sizeof ACC_H1);
    int modal;
    double frac, acc;
    crl_l2m_route_summary(&m, 2, 1, &modal, &frac, &acc);
    ck_assert_double_eq_tol(acc, 0.5, 1e-12);
    crl_l2m_free(&m);
}
END_TEST

/* The rows matrix through a learner: each task's rows are its usage-count
 * delta (B rows per update), they add up to the counts, crl_l2m_rows_now
 * gives the task under way its rows so far, and the matrix survives a
 * checkpoint round trip; a checkpoint of the first version (without it)
 * still loads, with rows_known = 0. */
START_TEST(test_rows_matrix_and_checkpoint) {
    crl_sac *plain = plain_base(71, NULL, NULL);
    crl_sac *s = l2m_learner(plain, CRL_POOL_LORA, 0, 1, 72);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    crl_l2m m;
    crl_err err = {0};
    ck_assert_int_eq(crl_l2m_init(&m, &lc, M, T, 4, &err), CRL_OK);
    ck_assert_int_eq(m.rows_known, 1);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    const int updates[T] = {3, 5, 2};
    for (int task = 0; task < T; task++) {
        ck_assert_int_eq(crl_l2m_task_start(&m, s, task, 1, 80 + task, &err), CRL_OK);
        for (int u = 0; u < updates[task]; u++) {
            fill_batch(&b, 2000 * task + u, task);
            ck_assert_msg(crl_sac_update(s, &b, NULL, &err) == CRL_OK, "%s", err.msg);
            if (task == 1 && u == 1) { /* under way: 2 updates so far */
                crl_l2m_rows_now(&m, crl_sac_l2m_counts(s), 1);
                int64_t sum = 0;
                for (int i = 0; i < M; i++) sum += m.rows[M + i];
                ck_assert_int_eq(sum, 2 * B);
            }
        }
        crl_l2m_task_end(&m, s, task);
    }
    for (int i = 0; i < M; i++) {
        int64_t col = 0;
        for (int task = 0; task < T; task++) col += m.rows[task * M + i];
        ck_assert_int_eq(col, crl_sac_l2m_counts(s)[i]);
    }
    for (int task = 0; task < T; task++) {
        int64_t sum = 0;
        for (int i = 0; i < M; i++) sum += m.rows[task * M + i];
        ck_assert_int_eq(sum, (int64_t)updates[task] * B);
    }
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_l2m_save(&m, &blob, &n, &err), CRL_OK);
    /* CRLL2M03 with an empty query memory and no router state: 8 bytes
     * (D = 0, n = 0) and 8 (a state of 0 bytes) after the rows. */
    ck_assert_uint_eq(n, 16 + 8 * M + 4 * T + 8 * T * M + 16);
    crl_l2m m2;
    ck_assert_int_eq(crl_l2m_init(&m2, &lc, M, T, 4, &err), CRL_OK);
    ck_assert_msg(crl_l2m_load(&m2, blob, n, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(m2.rows_known, 1);
    ck_assert_int_eq(memcmp(m2.rows, m.rows, sizeof(int64_t) * T * M), 0);
    ck_assert_int_eq(memcmp(m2.start, m.start, sizeof(int64_t) * M), 0);
    ck_assert_int_eq(memcmp(m2.train_mod, m.train_mod, sizeof(int) * T), 0);
    /* The first version: "CRLL2M01", the same without the rows (and the
     * memory). */
    unsigned char *v1 = malloc(n);
    memcpy(v1, blob, n);
    v1[7] = '1';
    const size_t nv1 = n - 16 - 8 * T * M;
    ck_assert_int_eq(crl_l2m_load(&m2, v1, nv1 + 8 * T * M, &err),
                     CRL_ECORRUPT); /* rows too many */
    ck_assert_msg(crl_l2m_load(&m2, v1, nv1, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(m2.rows_known, 0);
    ck_assert_int_eq(memcmp(m2.train_mod, m.train_mod, sizeof(int) * T), 0);
    ck_assert_int_eq(crl_l2m_load(&m2, blob, n - 8, &err), CRL_ECORRUPT);
    free(v1);
    free(blob);
    crl_l2m_free(&m2);
    crl_l2m_free(&m);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* ---- query memory, separability ceiling, arrow (issue 19 items 2-3) ---------- */

/* The query memory: rows drawn without replacement from the buffer, kept in
 * slot order, each the by-hand mean embedding of its window and itself;
 * the draw depends on the seed only; all rows when the buffer holds fewer
 * than asked. The ceiling equals crl_metric_ceiling over the memory (an
 * independent implementation in analysis/) and is NAN with one task. The
 * memory survives a checkpoint bit for bit; a CRLL2M02 blob loads with an
 * empty memory. */
START_TEST(test_query_memory_and_ceiling) {
    enum { CAP = 50, HH = 3, PER = 20 };
    crl_sac *plain = plain_base(91, NULL, NULL);
    crl_l2m_config lr;
    crl_l2m_config_default(&lr);
    lr.history = HH;
    crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 0, 1, 92, &lr);
    crl_err err = {0};
    crl_replay rb;
    ck_assert_int_eq(crl_replay_init(&rb, O, A, CAP, NULL), CRL_OK);
    crl_rng r;
    crl_rng_seed(&r, 93);
    /* Episodes of 13 steps, 70 steps: the buffer wraps. */
    float cur[O];
    for (int t = 0; t < 70; t++) {
        if (t % 13 == 0)
            for (int j = 0; j < O; j++) cur[j] = (float)crl_rng_normal(&r);
        float nx[O];
        for (int j = 0; j < O; j++) nx[j] = cur[j] + 0.3f * (float)crl_rng_normal(&r);
        const float act[A] = {0};
        crl_replay_add(&rb, cur, act, 0, nx, 0, 0);
        memcpy(cur, nx, sizeof cur);
    }
    crl_l2m m, m2;
    ck_assert_int_eq(crl_l2m_init(&m, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_int_eq(crl_l2m_init(&m2, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_msg(crl_l2m_memory_add(&m, s, &rb, 0, PER, 7, &err) == CRL_OK, "%s",
                  err.msg);
    ck_assert_int_eq(m.n_mem, PER);
    ck_assert_int_eq(m.mem_D, H);
    double acc;
    int nq;
    ck_assert_int_eq(crl_l2m_ceiling(&m, &acc, &nq, &err), CRL_OK);
    ck_assert(isnan(acc)); /* one task */
    ck_assert_int_eq(nq, PER);
    /* Each memory row is the query of a distinct slot, slots increasing. */
    const crl_mlp *net = crl_sac_actor(s);
    const float *bp = crl_sac_l2m_base(s);
    int64_t slot = -1;
    for (int i = 0; i < PER; i++) {
        int found = 0;
        while (!found && ++slot < CAP) {
            float rows[HH][O];
            int nw = 0;
            crl_replay_window(&rb, slot, HH - 1, &rows[0][0], &nw, NULL, NULL);
            memcpy(rows[nw], rb.obs + slot * O, sizeof rows[0]);
            double q[H];
            mean_embed_net(net, bp, &rows[0][0], nw + 1, q);
            found = 1;
            for (int j = 0; j < H; j++)
                found &= fabs(m.mem_q[(size_t)i * H + j] - q[j]) < 2e-5;
        }
        ck_assert_msg(found, "memory row %d is no slot's query", i);
        ck_assert_int_eq(m.mem_y[i], 0);
    }
    /* The same seed draws the same rows; another seed others. */
    ck_assert_int_eq(crl_l2m_memory_add(&m2, s, &rb, 0, PER, 7, &err), CRL_OK);
    ck_assert_int_eq(memcmp(m2.mem_q, m.mem_q, sizeof(float) * PER * H), 0);
    crl_l2m m3;
    ck_assert_int_eq(crl_l2m_init(&m3, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_int_eq(crl_l2m_memory_add(&m3, s, &rb, 0, PER, 8, &err), CRL_OK);
    ck_assert_int_ne(memcmp(m3.mem_q, m.mem_q, sizeof(float) * PER * H), 0);
    crl_l2m_free(&m3);
    /* Task 1: a shifted buffer, asking for more rows than it holds: all 50
     * in slot order. */
    for (int64_t i = 0; i < CAP * O; i++) rb.obs[i] += 1.5f;
    ck_assert_int_eq(crl_l2m_memory_add(&m, s, &rb, 1, 1000, 7, &err), CRL_OK);
    ck_assert_int_eq(m.n_mem, PER + CAP);
    for (int i = 0; i < CAP; i++) {
        float rows[HH][O];
        int nw = 0;
        crl_replay_window(&rb, i, HH - 1, &rows[0][0], &nw, NULL, NULL);
        memcpy(rows[nw], rb.obs + (int64_t)i * O, sizeof rows[0]);
        double q[H];
        mean_embed_net(net, bp, &rows[0][0], nw + 1, q);
        for (int j = 0; j < H; j++)
            ck_assert(fabs(m.mem_q[(size_t)(PER + i) * H + j] - q[j]) < 2e-5);
        ck_assert_int_eq(m.mem_y[PER + i], 1);
    }
    /* The ceiling against analysis/'s implementation. */
    ck_assert_int_eq(crl_l2m_ceiling(&m, &acc, &nq, &err), CRL_OK);
    int lab[PER + CAP];
    for (int i = 0; i < m.n_mem; i++) lab[i] = m.mem_y[i];
    double want;
    ck_assert_int_eq(crl_metric_ceiling(m.mem_q, lab, m.n_mem, H, T, &want, &err),
                     CRL_OK);
    ck_assert_double_eq(acc, want);
    ck_assert_int_eq(nq, PER + CAP);
    ck_assert(acc > 0.0 && acc <= 1.0);
    /* Checkpoint: bit for bit. */
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_l2m_save(&m, &blob, &n, &err), CRL_OK);
    ck_assert_uint_eq(n,
                      16 + 8 * M + 4 * T + 8 * T * M + 8 + (PER + CAP) * (4 * H + 4) + 8);
    crl_l2m_free(&m2);
    ck_assert_int_eq(crl_l2m_init(&m2, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_msg(crl_l2m_load(&m2, blob, n, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(m2.n_mem, m.n_mem);
    ck_assert_int_eq(m2.mem_D, H);
    ck_assert_int_eq(memcmp(m2.mem_q, m.mem_q, sizeof(float) * (PER + CAP) * H), 0);
    ck_assert_int_eq(memcmp(m2.mem_y, m.mem_y, sizeof(int32_t) * (PER + CAP)), 0);
    ck_assert_int_eq(crl_l2m_load(&m2, blob, n - 4, &err), CRL_ECORRUPT);
    /* CRLL2M02: the same up to the rows; an empty memory. */
    const size_t n2 = 16 + 8 * M + 4 * T + 8 * T * M;
    unsigned char *v2 = malloc(n2);
    memcpy(v2, blob, n2);
    v2[7] = '2';
    ck_assert_msg(crl_l2m_load(&m2, v2, n2, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(m2.n_mem, 0);
    ck_assert_int_eq(m2.rows_known, 1);
    ck_assert_int_eq(crl_l2m_ceiling(&m2, &acc, &nq, &err), CRL_OK);
    ck_assert(isnan(acc));
    ck_assert_int_eq(nq, 0);
    ck_assert_int_eq(crl_l2m_load(&m2, v2, n2 + 8, &err), CRL_ECORRUPT);
    free(v2);
    free(blob);
    crl_l2m_free(&m2);
    crl_l2m_free(&m);
    crl_replay_free(&rb);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

/* LoRA modulator m gets, on every layer, the rank-1 update
 * s * e_dir (x) (1, ..., 1): its prototype is +e_dir on every layer. */
static void rank1(const crl_pool *p, float *params, int m, int axis) {
    float *mod = params + crl_pool_mod_offset(p, m);
    for (int l = 0; l < p->base.spec.n_hidden; l++) {
        const int in = l == 0 ? p->base.spec.in_dim : p->base.spec.hidden[l - 1];
        const int out = p->base.spec.hidden[l];
        memset(mod + p->A[l], 0, sizeof(float) * (size_t)in * p->rank);
        memset(mod + p->B[l], 0, sizeof(float) * (size_t)p->rank * out);
        mod[p->A[l] + (size_t)axis * p->rank] = 1.0f;
        for (int j = 0; j < out; j++) mod[p->B[l] + j] = 1.0f;
    }
}

/* The arrow router on a hand-made pool: modulators 1 and 2 have rank-1
 * updates along e_0 and e_1 (every layer), 0 and 3 none. Acting rows in
 * evaluation score sum_l |cos(h_l, e_dir)|:
 *   row 0: h_l = 3 e_0 + e_1 on every layer: 3 L / sqrt(10) vs L / sqrt(10) -> 1
 *   row 1: h_l = e_0 + 3 e_1                                                -> 2
 *   row 2: h_l = e_0 - 5 e_1 (the sign does not count)                     -> 2
 *   row 3: layer 0 e_0, layers 1, 2 e_1: 1 vs 2                             -> 2
 *   row 4: e_2 everywhere: every live score 0, the first live one           -> 1
 *   row 5: layer 0 10 e_0, layers 1, 2 e_1: each layer counts as a cosine,
 *          1 vs 2 (raw dot products would give 10 vs 2)                     -> 2
 * Modulators without an update (0, 3) are never chosen. Training rows go to
 * the least-used modulator at the task start, whatever their input. After
 * modulator 2's update turns to e_2, rows route on the old prototypes until
 * `changed`, then row 1 goes to 1. */
START_TEST(test_arrow_router_by_hand) {
    enum { NR = 6 };
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, O, 2 * A, TB, L, H);
    crl_mlp net;
    crl_err err = {0};
    ck_assert_int_eq(crl_mlp_init(&net, &sp, &err), CRL_OK);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &net, CRL_POOL_LORA, M, R, 2.0f, &err), CRL_OK);
    float *params = calloc(p.n_params, sizeof(float));
    rank1(&p, params, 1, 0);
    rank1(&p, params, 2, 1);
    int64_t counts[M] = {0, 0, 0, 0};
    crl_router rt;
    const crl_router_config cfg = {.kind = "arrow",
                                   .n_tasks = 2,
                                   .weights = CRL_ROUTER_WEIGHTS_FROZEN,
                                   .collect = CRL_ROUTER_COLLECT_EVAL};
    ck_assert_msg(crl_router_init(&rt, &cfg, &p, counts, 0.5f, &err) == CRL_OK, "%s",
                  err.msg);
    ck_assert(rt.ops->needs & CRL_ROUTER_NEEDS_LAYERS);
    ck_assert(!(rt.ops->needs & CRL_ROUTER_NEEDS_KEYS));
    float h0[NR * O] = {0}, h1[NR * H] = {0}, h2[NR * H] = {0};
    float *hl[L] = {h0, h1, h2};
    const int width[L] = {O, H, H};
    const float rows[4][2] = {{3, 1}, {1, 3}, {1, -5}};
    for (int l = 0; l < L; l++)
        for (int i = 0; i < 3; i++) {
            hl[l][i * width[l] + 0] = rows[i][0];
            hl[l][i * width[l] + 1] = rows[i][1];
        }
    h0[3 * O + 0] = 1;
    h1[3 * H + 1] = 1;
    h2[3 * H + 1] = 1;
    for (int l = 0; l < L; l++) hl[l][4 * width[l] + 2] = 1;
    h0[5 * O + 0] = 10;
    h1[5 * H + 1] = 1;
    h2[5 * H + 1] = 1;
    const float *const lin[L] = {h0, h1, h2};
    float q[NR * H] = {0};
    int sel[NR];
    crl_router_out out = {sel, 1, NULL, NULL};
    crl_router_rows act = {NR, q, lin, 1, 0};
    crl_router_task_start(&rt, 0, counts);
    crl_router_eval(&rt, 1);
    ck_assert_int_eq(crl_router_route(&rt, params, &act, &out, &err), CRL_OK);
    const int want[NR] = {1, 2, 2, 2, 1, 2};
    for (int i = 0; i < NR; i++) ck_assert_int_eq(sel[i], want[i]);
    /* Training rows: the least-used modulator at the task's start. */
    crl_router_rows tr = act;
    tr.acting = 0;
    const int64_t start[M] = {5, 0, 2, 0};
    crl_router_task_start(&rt, 1, start);
    ck_assert_int_eq(crl_router_route(&rt, params, &tr, &out, &err), CRL_OK);
    for (int i = 0; i < NR; i++) ck_assert_int_eq(sel[i], 1);
    const int64_t start2[M] = {5, 4, 2, 3};
    crl_router_task_start(&rt, 1, start2);
    ck_assert_int_eq(crl_router_route(&rt, params, &tr, &out, &err), CRL_OK);
    for (int i = 0; i < NR; i++) ck_assert_int_eq(sel[i], 2);
    /* Stale prototypes until `changed`. */
    crl_router_eval(&rt, 1);
    ck_assert_int_eq(crl_router_route(&rt, params, &act, &out, &err), CRL_OK);
    rank1(&p, params, 2, 2);
    ck_assert_int_eq(crl_router_route(&rt, params, &act, &out, &err), CRL_OK);
    ck_assert_int_eq(sel[1], 2);
    crl_router_changed(&rt, params);
    ck_assert_int_eq(crl_router_route(&rt, params, &act, &out, &err), CRL_OK);
    ck_assert_int_eq(sel[1], 1);
    ck_assert_int_eq(sel[4], 2); /* e_2 now */
    crl_router_free(&rt);
    /* A pool without any update: acting rows go to the training modulator. */
    memset(params, 0, sizeof(float) * p.n_params);
    ck_assert_int_eq(crl_router_init(&rt, &cfg, &p, counts, 0.5f, &err), CRL_OK);
    crl_router_task_start(&rt, 0, start2);
    crl_router_eval(&rt, 1);
    ck_assert_int_eq(crl_router_route(&rt, params, &act, &out, &err), CRL_OK);
    for (int i = 0; i < NR; i++) ck_assert_int_eq(sel[i], 2);
    crl_router_free(&rt);
    /* (IA)^3 pools are refused with one line. */
    crl_pool pi;
    ck_assert_int_eq(crl_pool_init(&pi, &net, CRL_POOL_IA3, M, 0, 1.0f, &err), CRL_OK);
    ck_assert_int_eq(crl_router_init(&rt, &cfg, &pi, counts, 0.5f, &err), CRL_EINVAL);
    ck_assert(strstr(err.msg, "LoRA") != NULL);
    free(params);
}
END_TEST

/* The l2r router: before any task end, acting rows go to the training
 * modulator (the least-used at the task start); after learning two tasks'
 * queries (two clusters, labelled with modulators 0 and 2) it routes every
 * stored query to its label: accuracy 1, at least the separability ceiling
 * of those queries (crl_metric_ceiling). Training rows keep the fixed
 * modulator. Its state goes through the method blob (crl_l2m_take_router_state,
 * crl_l2m_save / _load) into another learner's router bit for bit, which
 * then routes the same. */
START_TEST(test_l2r_router_learns_and_checkpoints) {
    enum { NQ = 40 };
    crl_sac *plain = plain_base(95, NULL, NULL);
    crl_l2m_config lr;
    crl_l2m_config_default(&lr);
    lr.router = "l2r";
    crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 0, 1, 96, &lr);
    crl_sac *s2 = l2m_learner_r(plain, CRL_POOL_LORA, 0, 1, 97, &lr);
    crl_router *rt = crl_actor_router(crl_sac_get_actor(s));
    ck_assert_str_eq(rt->ops->name, "l2r");
    crl_err err = {0};
    float qs[2 * NQ * H];
    int lab[2 * NQ], sel[2 * NQ];
    crl_rng r;
    crl_rng_seed(&r, 98);
    for (int i = 0; i < 2 * NQ; i++) {
        const float c = i < NQ ? 1.0f : -1.0f;
        for (int j = 0; j < H; j++)
            qs[i * H + j] = c * (j % 2 ? 0.5f : -0.3f) + 0.2f * (float)crl_rng_normal(&r);
        lab[i] = i < NQ ? 0 : 2;
    }
    crl_router_out out = {sel, 1, NULL, NULL};
    crl_router_rows act = {2 * NQ, qs, NULL, 1, 0};
    const int64_t start[M] = {3, 0, 1, 0};
    crl_router_task_start(rt, 1, start);
    crl_router_eval(rt, 1);
    ck_assert_int_eq(crl_router_route(rt, NULL, &act, &out, &err), CRL_OK);
    for (int i = 0; i < 2 * NQ; i++) ck_assert_int_eq(sel[i], 1);
    ck_assert_int_eq(crl_router_learn(rt, qs, NQ, 0, &err), CRL_OK);
    ck_assert_int_eq(crl_router_learn(rt, qs + NQ * H, NQ, 2, &err), CRL_OK);
    ck_assert_int_eq(crl_router_route(rt, NULL, &act, &out, &err), CRL_OK);
    int right = 0;
    for (int i = 0; i < 2 * NQ; i++) right += sel[i] == lab[i];
    double ceil = 0;
    ck_assert_int_eq(crl_metric_ceiling(qs, lab, 2 * NQ, H, 3, &ceil, &err), CRL_OK);
    ck_assert_double_eq(ceil, 1.0); /* separable by construction */
    ck_assert_int_eq(right, 2 * NQ);
    crl_router_rows tr = act;
    tr.acting = 0;
    ck_assert_int_eq(crl_router_route(rt, NULL, &tr, &out, &err), CRL_OK);
    for (int i = 0; i < 2 * NQ; i++) ck_assert_int_eq(sel[i], 1);
    /* The state through the method blob. */
    crl_l2m m, m2;
    ck_assert_int_eq(crl_l2m_init(&m, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_int_eq(crl_l2m_init(&m2, &lr, M, T, 4, &err), CRL_OK);
    ck_assert_int_eq(crl_l2m_take_router_state(&m, s, &err), CRL_OK);
    ck_assert_uint_eq(m.rstate_n, crl_router_state_size(rt));
    ck_assert(m.rstate_n > 0);
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_l2m_save(&m, &blob, &n, &err), CRL_OK);
    ck_assert_msg(crl_l2m_load(&m2, blob, n, &err) == CRL_OK, "%s", err.msg);
    ck_assert_uint_eq(m2.rstate_n, m.rstate_n);
    crl_router *rt2 = crl_actor_router(crl_sac_get_actor(s2));
    ck_assert_int_eq(crl_router_state_load(rt2, m2.rstate, m2.rstate_n, &err), CRL_OK);
    unsigned char *a1 = malloc(m.rstate_n), *a2 = malloc(m.rstate_n);
    ck_assert_uint_eq(crl_router_state_size(rt2), m.rstate_n);
    crl_router_state_save(rt, a1);
    crl_router_state_save(rt2, a2);
    ck_assert_int_eq(memcmp(a1, a2, m.rstate_n), 0);
    crl_router_eval(rt2, 1);
    ck_assert_int_eq(crl_router_route(rt2, NULL, &act, &out, &err), CRL_OK);
    for (int i = 0; i < 2 * NQ; i++) ck_assert_int_eq(sel[i], lab[i]);
    ck_assert_int_eq(crl_l2m_load(&m2, blob, n - 1, &err), CRL_ECORRUPT);
    free(a1);
    free(a2);
    free(blob);
    crl_l2m_free(&m);
    crl_l2m_free(&m2);
    crl_sac_free(s);
    crl_sac_free(s2);
    crl_sac_free(plain);
}
END_TEST

/* ---- soft (SMEAR) router ------------------------------------------------------ */

/* The soft router with k = 1 trains and acts exactly as the hard router
 * whose scores it takes: l2m (plain cosine on task 0, usage-weighted from
 * task 1), and cos on task 0 (where l2m's training route is plain cosine):
 * same seed, same batches, same task start, and the actor parameters,
 * usage counts, gradients and actions agree bit for bit. */
static crl_sac *soft_pair_learner(crl_sac *plain, const char *router, int k, int threads,
                                  uint64_t seed) {
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    lc.router = router;
    lc.soft_k = k;
    crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 0, threads, seed, &lc);
    /* Non-trivial modulators, so that the routing matters. */
    const crl_pool *pool = crl_sac_pool(s);
    float *p = crl_sac_actor_params(s);
    crl_rng r;
    crl_rng_seed(&r, seed + 7);
    for (size_t i = (size_t)M * pool->key_dim; i < pool->n_params; i++)
        p[i] += 0.3f * (float)crl_rng_normal(&r);
    return s;
}

START_TEST(test_soft_k1_is_hard) {
    const char *hard[2] = {"l2m", "cos"};
    for (int h = 0; h < 2; h++) {
        crl_sac *plain = plain_base(301, NULL, NULL);
        crl_sac *a = soft_pair_learner(plain, hard[h], 0, 1, 302);
        crl_sac *b = soft_pair_learner(plain, "soft", 1, 1, 302);
        crl_err err = {0};
        crl_batch bt;
        ck_assert_int_eq(crl_batch_alloc(&bt, B, O, A, NULL), 0);
        for (int u = 0; u < 24; u++) {
            /* cos is the l2m route of task 0 only: against cos, stay there. */
            if (u == 12 && h == 0) {
                ck_assert_int_eq(crl_sac_l2m_task_start(a, 1, NULL, &err), CRL_OK);
                ck_assert_int_eq(crl_sac_l2m_task_start(b, 1, NULL, &err), CRL_OK);
            }
            fill_batch(&bt, 310 + u, u < 12 || h ? 0 : 1);
            ck_assert_int_eq(crl_sac_update(a, &bt, NULL, &err), CRL_OK);
            ck_assert_int_eq(crl_sac_update(b, &bt, NULL, &err), CRL_OK);
        }
        const size_t np = crl_sac_pool(a)->n_params;
        ck_assert_int_eq(
            memcmp(crl_sac_actor_params(a), crl_sac_actor_params(b), np * sizeof(float)),
            0);
        ck_assert_int_eq(
            memcmp(crl_sac_l2m_counts(a), crl_sac_l2m_counts(b), M * sizeof(int64_t)), 0);
        /* Usage counts spread over >= 2 modulators: the routing was not trivial. */
        int used = 0;
        for (int m = 0; m < M; m++) used += crl_sac_l2m_counts(a)[m] > 0;
        ck_assert_int_ge(used, 2);
        fill_batch(&bt, 399, 1);
        float eps[2 * B * A];
        crl_rng r;
        crl_rng_seed(&r, 398);
        for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
        crl_sac_stats sa, sb;
        ck_assert_int_eq(crl_sac_compute_grads(a, &bt, eps, &sa), CRL_OK);
        ck_assert_int_eq(crl_sac_compute_grads(b, &bt, eps, &sb), CRL_OK);
        ck_assert(memcmp(&sa.pi_loss, &sb.pi_loss, sizeof sa.pi_loss) == 0);
        float *ga, *gb;
        crl_sac_grads(a, &ga, NULL, NULL);
        crl_sac_grads(b, &gb, NULL, NULL);
        ck_assert_int_eq(memcmp(ga, gb, np * sizeof(float)), 0);
        float acta[B * A], actb[B * A];
        crl_sac_act(a, B, bt.obs, 1, 1, NULL, acta);
        crl_sac_act(b, B, bt.obs, 1, 1, NULL, actb);
        ck_assert_int_eq(memcmp(acta, actb, sizeof acta), 0);
        crl_batch_free(&bt);
        crl_sac_free(a);
        crl_sac_free(b);
        crl_sac_free(plain);
    }
}
END_TEST

/* The merged forward / backward of the pool on a tiny pool, k = 2 and 3,
 * LoRA and IA3, with each row's k modulators and weights given by a CALL
 * route: the output against an independent merge (the block summed in
 * double, run through the hard path as modulator 0 of a copy), every
 * modulator gradient against central differences of L = sum out * C, and
 * the keys get nothing from the backward. */
typedef struct {
    crl_pool_ws *ws;
    const int *idx;
    const float *w;
    int k;
} soft_fixed;

static int soft_fixed_call(void *ctx, const float *params, const float *q,
                           const float *const *layer_in, int Bn, int *sel, crl_err *err) {
    (void)params, (void)q, (void)layer_in, (void)err;
    soft_fixed *c = ctx;
    memcpy(c->ws->kidx, c->idx, sizeof(int) * (size_t)Bn * c->k);
    memcpy(c->ws->kw, c->w, sizeof(float) * (size_t)Bn * c->k);
    for (int r = 0; r < Bn; r++) sel[r] = c->idx[r * c->k];
    return CRL_OK;
}

static double soft_loss(const crl_pool *p, const float *base, const float *params,
                        crl_pool_ws *ws, const float *x, int Bn, const crl_pool_route *rt,
                        const float *C) {
    ck_assert_int_eq(crl_pool_forward(p, base, params, ws, x, Bn, NULL, rt, NULL),
                     CRL_OK);
    double loss = 0;
    for (int i = 0; i < Bn * p->base.spec.out_dim; i++) loss += (double)ws->out[i] * C[i];
    return loss;
}

static void soft_fd(int kind, int k) {
    enum { SM = 5, SB = 7, SR = 3 };
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 5, 4, 1, 3, 8);
    sp.hidden[0] = 9;
    sp.hidden[1] = 6;
    sp.hidden[2] = 7;
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), 0);
    crl_rng r;
    crl_rng_seed(&r, 500 + 10 * kind + k);
    float *base = malloc(m.n_params * sizeof(float));
    crl_mlp_init_params(&m, base, &r);
    for (size_t i = 0; i < m.n_params; i++)
        base[i] += (float)crl_rng_range(&r, -0.2, 0.2);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, (crl_pool_kind)kind, SM, SR, 2.0f, NULL), 0);
    float *params = malloc(p.n_params * sizeof(float));
    crl_pool_init_params(&p, params, &r);
    for (size_t i = (size_t)SM * p.key_dim; i < p.n_params; i++)
        params[i] += 0.4f * (float)crl_rng_normal(&r);
    float x[SB * 5], C[SB * 4];
    for (int i = 0; i < SB * 5; i++) x[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < SB * 4; i++) C[i] = (float)crl_rng_normal(&r);
    /* Row r: modulators r, r + 2, r + 4 (mod 5, distinct), weights
     * softmax-like and different per row. */
    int idx[SB * 3];
    float w[SB * 3];
    for (int i = 0; i < SB; i++) {
        double z = 0, e[3];
        for (int j = 0; j < k; j++) z += e[j] = exp(-0.7 * j + 0.1 * i * (j == 1));
        for (int j = 0; j < k; j++) {
            idx[i * k + j] = (i + 2 * j) % SM;
            w[i * k + j] = (float)(e[j] / z);
        }
    }
    crl_pool_ws ws, ws1;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, SB, NULL), 0);
    ck_assert_int_eq(crl_pool_ws_soft(&ws, &p, 3, NULL), 0);
    ck_assert_int_eq(crl_pool_ws_alloc(&ws1, &p, 1, NULL), 0);
    ws.k = k;
    soft_fixed ctx = {&ws, idx, w, k};
    crl_pool_route rt = {
        .mode = CRL_POOL_ROUTE_CALL, .call = soft_fixed_call, .ctx = &ctx};
    soft_loss(&p, base, params, &ws, x, SB, &rt, C);
    float out[SB * 4];
    memcpy(out, ws.out, sizeof out);
    /* Independent merge, one row at a time through the hard path. */
    float *copy = malloc(p.n_params * sizeof(float));
    const size_t o0 = crl_pool_mod_offset(&p, 0);
    const int zero = 0;
    crl_pool_route fx = {.mode = CRL_POOL_ROUTE_FIXED, .sel = &zero};
    for (int i = 0; i < SB; i++) {
        memcpy(copy, params, p.n_params * sizeof(float));
        for (size_t j = 0; j < p.mod_size; j++) {
            double v = 0;
            for (int t = 0; t < k; t++)
                v += (double)w[i * k + t] *
                     params[crl_pool_mod_offset(&p, idx[i * k + t]) + j];
            copy[o0 + j] = (float)v;
        }
        ck_assert_int_eq(
            crl_pool_forward(&p, base, copy, &ws1, x + i * 5, 1, NULL, &fx, NULL),
            CRL_OK);
        for (int o = 0; o < 4; o++)
            ck_assert_msg(fabs(ws1.out[o] - out[i * 4 + o]) <=
                              1e-5 * (1 + fabs(ws1.out[o])),
                          "row %d out %d: merged %g, independent %g", i, o,
                          out[i * 4 + o], ws1.out[o]);
    }
    /* Backward against central differences. */
    float *g = calloc(p.n_params, sizeof(float));
    soft_loss(&p, base, params, &ws, x, SB, &rt, C);
    crl_pool_backward(&p, base, params, g, &ws, C);
    for (size_t i = 0; i < (size_t)SM * p.key_dim; i++) ck_assert(g[i] == 0.0f);
    int bad = 0, nz = 0;
    for (size_t i = (size_t)SM * p.key_dim; i < p.n_params; i++) {
        const float keep = params[i], hh = 4e-3f;
        params[i] = keep + hh;
        const double lp = soft_loss(&p, base, params, &ws, x, SB, &rt, C);
        params[i] = keep - hh;
        const double lm = soft_loss(&p, base, params, &ws, x, SB, &rt, C);
        params[i] = keep;
        const double fd = (lp - lm) / (2.0 * hh), an = g[i];
        nz += an != 0.0;
        if (fabs(fd - an) > 2e-2 * fmax(fabs(fd), fabs(an)) + 2e-3) {
            if (bad < 5)
                fprintf(stderr, "soft %s k=%d dL/dp[%zu]: analytic %.6g, fd %.6g\n",
                        kind ? "ia3" : "lora", k, i, an, fd);
            bad++;
        }
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_ge(nz, (int)(p.n_params - (size_t)SM * p.key_dim) / 2);
    crl_pool_ws_free(&ws);
    crl_pool_ws_free(&ws1);
    free(g);
    free(copy);
    free(params);
    free(base);
}

START_TEST(test_soft_merge_fd) {
    for (int kind = 0; kind < 2; kind++)
        for (int k = 2; k <= 3; k++) soft_fd(kind, k);
}
END_TEST

/* An L2M update with the soft router (k = 2, T = 0.5, two lanes, usage
 * routing from task 1) and acting allocate nothing; gradients reach more
 * modulators than the rows' top-1 choices. */
START_TEST(test_soft_step_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_sac *plain = plain_base(361, NULL, NULL);
    crl_l2m_config lc;
    crl_l2m_config_default(&lc);
    lc.router = "soft";
    lc.soft_k = 2;
    lc.soft_temp = 0.5f;
    crl_sac *s = l2m_learner_r(plain, CRL_POOL_LORA, 0, 2, 362, &lc);
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_l2m_task_start(s, 1, NULL, &err), CRL_OK);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    float obs[3 * O] = {0.1f, -0.2f, 0.3f}, act[3 * A];
    long before = 0;
    int bad = 0;
    for (int u = 0; u < 60; u++) {
        if (u == 20) before = alloc_calls();
        fill_batch(&b, 370 + u, 1);
        bad += crl_sac_update(s, &b, NULL, &err) != CRL_OK;
        crl_sac_act(s, 3, obs, 1, 0, NULL, act);
    }
    long calls = alloc_calls() - before;
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(calls == 0, "%ld allocations in 40 soft L2M steps", calls);
    crl_batch_free(&b);
    crl_sac_free(s);
    crl_sac_free(plain);
#else
    fprintf(stderr, "test_soft_step_no_malloc: skipped (no malloc interposition)\n");
#endif
}
END_TEST

/* With k = 2 every row's second modulator gets a gradient too: on one
 * batch, the modulators with a nonzero gradient are exactly the union of
 * the rows' two choices (computed here from the keys by hand), which holds
 * a modulator that is no row's first choice. */
START_TEST(test_soft_grads_reach_k) {
    crl_sac *plain = plain_base(381, NULL, NULL);
    crl_sac *s = soft_pair_learner(plain, "soft", 2, 1, 382);
    crl_batch bt;
    ck_assert_int_eq(crl_batch_alloc(&bt, B, O, A, NULL), 0);
    fill_batch(&bt, 383, 0);
    float eps[2 * B * A];
    for (int i = 0; i < 2 * B * A; i++) eps[i] = 0.1f * (float)(i % 7 - 3);
    const crl_pool *pool = crl_sac_pool(s);
    float *p = crl_sac_actor_params(s);
    /* Keys around the rows' mean query m: k0 = m, k1 = m + a small offset,
     * k2 = -m, k3 = -m + offset, so that the top 1 is mostly modulator 0
     * and the top 2 reaches modulator 1 (a second choice the top 1 never
     * makes: checked below). */
    double mq[H] = {0}, qv0[H];
    for (int r = 0; r < B; r++) {
        embed_by_hand(&pool->base, crl_sac_l2m_base(s), bt.obs + r * O, qv0);
        for (int d = 0; d < pool->key_dim; d++) mq[d] += qv0[d] / B;
    }
    for (int d = 0; d < pool->key_dim; d++) {
        const double off = 0.3 * (d % 3 - 1);
        p[0 * pool->key_dim + d] = (float)mq[d];
        p[1 * pool->key_dim + d] = (float)(mq[d] + off);
        p[2 * pool->key_dim + d] = (float)-mq[d];
        p[3 * pool->key_dim + d] = (float)(-mq[d] + off);
    }
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &bt, eps, &st), CRL_OK);
    float *g;
    crl_sac_grads(s, &g, NULL, NULL);
    /* By hand: query = the base's first-layer embedding (embed_by_hand),
     * cosine in double, the two best keys of each pi(o) row. */
    int want[M] = {0}, want1[M] = {0};
    for (int r = 0; r < B; r++) {
        double qv[H], best[2] = {-2, -2};
        int bi[2] = {-1, -1};
        embed_by_hand(&pool->base, crl_sac_l2m_base(s), bt.obs + r * O, qv);
        for (int m = 0; m < M; m++) {
            double dot = 0, qq = 0, kk = 0;
            for (int d = 0; d < pool->key_dim; d++) {
                const double kd = p[(size_t)m * pool->key_dim + d];
                dot += qv[d] * kd;
                qq += qv[d] * qv[d];
                kk += kd * kd;
            }
            const double c = dot / sqrt(qq * kk);
            if (c > best[0]) {
                best[1] = best[0], bi[1] = bi[0];
                best[0] = c, bi[0] = m;
            } else if (c > best[1]) {
                best[1] = c, bi[1] = m;
            }
        }
        want[bi[0]] = want[bi[1]] = want1[bi[0]] = 1;
    }
    int second_only = 0;
    for (int m = 0; m < M; m++) second_only += want[m] && !want1[m];
    ck_assert_int_ge(second_only, 1);
    for (int m = 0; m < M; m++) {
        double nm = 0;
        const size_t o = crl_pool_mod_offset(pool, m);
        for (size_t i = 0; i < pool->mod_size; i++) nm += fabs(g[o + i]);
        ck_assert_msg((nm > 0) == want[m], "modulator %d: |grad| %g, chosen %d", m, nm,
                      want[m]);
    }
    crl_batch_free(&bt);
    crl_sac_free(s);
    crl_sac_free(plain);
}
END_TEST

int main(void) {
    Suite *su = suite_create("l2m");
    TCase *tc = tcase_create("learner");
    tcase_add_test(tc, test_fresh_pool_is_base);
    tcase_add_test(tc, test_grads_fd_lora);
    tcase_add_test(tc, test_grads_fd_ia3);
    tcase_add_test(tc, test_pull_value_by_hand);
    tcase_add_test(tc, test_counts_and_usage_route);
    tcase_add_test(tc, test_base_frozen_through_training);
    tcase_add_test(tc, test_route_summary);
    tcase_add_test(tc, test_lanes_bit_identical);
    tcase_add_test(tc, test_l2m_step_no_malloc);
    tcase_add_test(tc, test_l2m_blob_versions);
    tcase_add_test(tc, test_frozen_weights_hold_within_task);
    tcase_add_test(tc, test_reference_weights_worked_example);
    tcase_add_test(tc, test_old_routing_reproduced);
    tcase_add_test(tc, test_router_table);
    tcase_add_test(tc, test_history_query_acting);
    tcase_add_test(tc, test_history_windows_from_buffer);
    tcase_add_test(tc, test_history_one_is_old_query);
    tcase_add_test(tc, test_hold_keeps_step_h);
    tcase_add_test(tc, test_l2m_history_step_no_malloc);
    tcase_add_test(tc, test_update_routes_on_windows);
    tcase_add_test(tc, test_router_layer_inputs);
    suite_add_tcase(su, tc);
    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 600); /* a hang guard: a loaded 2-core machine took > 120 s */
    tcase_add_test(cli, test_cli_pretrain_then_l2m);
    suite_add_tcase(su, cli);
    TCase *soft = tcase_create("soft");
    tcase_add_test(soft, test_soft_k1_is_hard);
    tcase_add_test(soft, test_soft_merge_fd);
    tcase_add_test(soft, test_soft_step_no_malloc);
    tcase_add_test(soft, test_soft_grads_reach_k);
    suite_add_tcase(su, soft);
    TCase *met = tcase_create("route_metrics");
    tcase_add_test(met, test_route_acc_steps_by_hand);
    tcase_add_test(met, test_rows_matrix_and_checkpoint);
    suite_add_tcase(su, met);
    TCase *mem = tcase_create("memory_arrow");
    tcase_add_test(mem, test_query_memory_and_ceiling);
    tcase_add_test(mem, test_arrow_router_by_hand);
    tcase_add_test(mem, test_l2r_router_learns_and_checkpoints);
    suite_add_tcase(su, mem);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
