/* SAC: finite-difference checks of the three losses, checkpoints, NaN
 * handling, determinism and a real learning run on pendulum. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl/blas.h"
#include "crl/methods.h"
#include "crl/replay.h"
#include "crl/runner.h"
#include "crl/sac.h"
#include "malloc_count.h"

enum { O = 5, A = 2, T = 2, B = 12 };

static crl_sac *small_sac(uint64_t seed) {
    crl_sac_config c;
    crl_sac_config_default(&c, O, A, T);
    c.hidden = 24;
    c.layers = 3;
    c.batch = B;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    /* Distinct per-task alphas, so the per-task indexing is exercised. */
    crl_sac_log_alpha(s)[0] = -0.7f;
    crl_sac_log_alpha(s)[1] = 0.3f;
    /* Targets differ from critics, as they do after training starts. */
    float *t = crl_sac_critic_params(s, 2);
    size_t nc = crl_sac_critic(s)->n_params;
    crl_rng r;
    crl_rng_seed(&r, 99);
    for (size_t i = 0; i < 2 * nc; i++) t[i] += 0.05f * (float)crl_rng_normal(&r);
    return s;
}

static void fill_batch(crl_batch *b, uint64_t seed) {
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (int i = 0; i < B * O; i++) b->obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * O; i++) b->obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B * A; i++) b->act[i] = (float)crl_rng_range(&r, -0.95, 0.95);
    for (int i = 0; i < B; i++) {
        b->rew[i] = (float)crl_rng_normal(&r);
        b->done[i] = (i % 5 == 0) ? 1.0f : 0.0f;
        b->task[i] = i % 3 == 0 ? 1 : 0;
    }
    b->B = B;
}

enum { LOSS_Q, LOSS_PI, LOSS_ALPHA };

static double loss_of(crl_sac *s, const crl_batch *b, const float *eps, int which) {
    crl_sac_stats st;
    crl_sac_compute_grads(s, b, eps, &st);
    return which == LOSS_Q ? st.q_loss : which == LOSS_PI ? st.pi_loss : st.alpha_loss;
}

static double central_diff(crl_sac *s, const crl_batch *b, const float *eps,
                           float *params, size_t i, int which, float h) {
    float keep = params[i];
    params[i] = keep + h;
    double lp = loss_of(s, b, eps, which);
    params[i] = keep - h;
    double lm = loss_of(s, b, eps, which);
    params[i] = keep;
    return (lp - lm) / (2.0 * h);
}

/* (L(p + h) - L(p)) / h: the one-sided slope on the side of h's sign. */
static double one_sided(crl_sac *s, const crl_batch *b, const float *eps, float *params,
                        size_t i, int which, float h) {
    float keep = params[i];
    double l0 = loss_of(s, b, eps, which);
    params[i] = keep + h;
    double l1 = loss_of(s, b, eps, which);
    params[i] = keep;
    return (l1 - l0) / (double)h;
}

/* Central differences on `count` parameters spread over the buffer (always
 * including the first and last). Returns the number of mismatches.
 *
 * Leaky ReLU has a kink at 0: when a perturbation of h moves some row's
 * pre-activation across it, the difference quotient averages two slopes and
 * disagrees with the (correct) one-sided gradient. Such entries are found by
 * repeating the difference with h / 4: on a smooth stretch the two agree;
 * across a kink they do not. Those entries are skipped, but at most a tenth
 * of them may be (more counts as mismatches), so that a wrong gradient
 * cannot hide behind the kink test. When a kink sits almost at the point,
 * both central quotients average the same two slopes; the one-sided
 * quotients then disagree with each other and the gradient must equal one
 * of them. */
static int fd_check(crl_sac *s, const crl_batch *b, const float *eps, float *params,
                    const float *grad, size_t n, int which, int count, const char *what) {
    int bad = 0, kinked = 0;
    for (int k = 0; k < count; k++) {
        size_t i = k == count - 1 ? n - 1 : (size_t)k * (n / (size_t)count);
        const float h = 2e-3f;
        double fd = central_diff(s, b, eps, params, i, which, h);
        double an = grad[i];
        double tol = 2e-2 * fmax(fabs(fd), fabs(an)) + 2e-4;
        if (fabs(fd - an) <= tol) continue;
        double fd4 = central_diff(s, b, eps, params, i, which, h / 4);
        double tol4 = 2e-2 * fmax(fabs(fd), fabs(fd4)) + 8e-4; /* h/4: 4x the noise */
        if (fabs(fd4 - an) <= tol4) continue; /* h / 4 stays clear of the kink */
        if (fabs(fd4 - fd) > tol4) {          /* the two disagree: a kink */
            kinked++;
            continue;
        }
        /* A kink within a small fraction of h of the point itself: both
         * central quotients straddle it and agree on the average of the two
         * slopes. Then the one-sided quotients differ from each other, and the
         * analytic gradient is one of them. */
        double r4 = one_sided(s, b, eps, params, i, which, h / 4);
        double l4 = one_sided(s, b, eps, params, i, which, -h / 4);
        double tol1 = 2e-2 * fmax(fabs(r4), fabs(l4)) + 8e-4;
        if (fabs(r4 - l4) > tol1 && fmin(fabs(r4 - an), fabs(l4 - an)) <= tol1) {
            kinked++;
            continue;
        }
        if (bad < 5)
            fprintf(stderr, "%s[%zu]: analytic %.6g, finite difference %.6g\n", what, i,
                    an, fd);
        bad++;
    }
    if (kinked > count / 10) {
        fprintf(stderr, "%s: %d of %d entries cross a kink\n", what, kinked, count);
        bad += kinked;
    }
    return bad;
}

START_TEST(test_grad_critic_loss) {
    crl_sac *s = small_sac(1);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 2);
    float eps[2 * B * A];
    crl_rng r;
    crl_rng_seed(&r, 3);
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, NULL), CRL_OK);
    float *g;
    crl_sac_grads(s, NULL, &g, NULL);
    size_t nc = crl_sac_critic(s)->n_params;
    float *gc = malloc(sizeof(float) * 2 * nc);
    memcpy(gc, g, sizeof(float) * 2 * nc);
    int bad = fd_check(s, &b, eps, crl_sac_critic_params(s, 0), gc, 2 * nc, LOSS_Q, 120,
                       "dLq/dcritic");
    ck_assert_int_eq(bad, 0);
    /* The target networks receive no gradient: perturbing them changes y but
     * the analytic critic gradient must not include them, checked above; and
     * the critic loss must not depend on the actor's pi(o) rows. */
    free(gc);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

START_TEST(test_grad_actor_loss) {
    crl_sac *s = small_sac(4);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 5);
    float eps[2 * B * A];
    crl_rng r;
    crl_rng_seed(&r, 6);
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, NULL), CRL_OK);
    float *g;
    crl_sac_grads(s, &g, NULL, NULL);
    size_t na = crl_sac_actor(s)->n_params;
    float *ga = malloc(sizeof(float) * na);
    memcpy(ga, g, sizeof(float) * na);
    /* The gradient is not all zero (a dead actor would pass any FD check). */
    double norm = 0;
    for (size_t i = 0; i < na; i++) norm += (double)ga[i] * ga[i];
    ck_assert(norm > 1e-8);
    int bad = fd_check(s, &b, eps, crl_sac_actor_params(s), ga, na, LOSS_PI, 150,
                       "dLpi/dactor");
    ck_assert_int_eq(bad, 0);
    free(ga);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

START_TEST(test_grad_alpha_loss) {
    crl_sac *s = small_sac(7);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 8);
    float eps[2 * B * A];
    crl_rng r;
    crl_rng_seed(&r, 9);
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);
    float *g;
    crl_sac_grads(s, NULL, NULL, &g);
    float ga[T];
    memcpy(ga, g, sizeof ga);
    /* Both task indices appear in the batch, so both get a gradient. */
    ck_assert(fabsf(ga[0]) > 0 && fabsf(ga[1]) > 0);
    int bad = fd_check(s, &b, eps, crl_sac_log_alpha(s), ga, T, LOSS_ALPHA, T,
                       "dLalpha/dlog_alpha");
    ck_assert_int_eq(bad, 0);
    /* Independent value: the target entropy default is about -1 per dim. */
    crl_sac_config c;
    crl_sac_config_default(&c, O, 4, 1);
    ck_assert(fabs(crl_sac_target_entropy(&c) - 4 * log(0.089 * sqrt(2 * M_PI * M_E))) <
              1e-5);
    ck_assert(fabs(crl_sac_target_entropy(&c) / 4 + 1.0) < 1e-3);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* The critic target by hand for one sample, against the loss the code
 * reports: y = r + gamma (1 - d)(min Qt - alpha logp'). */
START_TEST(test_critic_target_by_hand) {
    crl_sac *s = small_sac(10);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 11);
    float eps[2 * B * A];
    for (int i = 0; i < 2 * B * A; i++) eps[i] = 0.1f * (float)(i % 7 - 3);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st), CRL_OK);

    /* Recompute q_loss from the public pieces: actor forward + tgauss for
     * pi(o2), target critics, critics. */
    const crl_mlp *am = crl_sac_actor(s), *cm = crl_sac_critic(s);
    crl_mlp_ws wa, wc;
    ck_assert_int_eq(crl_mlp_ws_alloc(&wa, am, B, NULL), 0);
    ck_assert_int_eq(crl_mlp_ws_alloc(&wc, cm, B, NULL), 0);
    const float *out =
        crl_mlp_forward(am, crl_sac_actor_params(s), &wa, b.obs2, B, b.task);
    float pi2[B * A], logp2[B];
    crl_tgauss_forward(B, A, out, eps + B * A, pi2, logp2);
    float xq[B * (O + A)];
    double loss = 0;
    float y[B];
    for (int i = 0; i < B; i++) {
        memcpy(xq + i * (O + A), b.obs2 + i * O, sizeof(float) * O);
        memcpy(xq + i * (O + A) + O, pi2 + i * A, sizeof(float) * A);
    }
    float qt1[B], qt2[B];
    memcpy(qt1, crl_mlp_forward(cm, crl_sac_critic_params(s, 2), &wc, xq, B, b.task),
           sizeof qt1);
    memcpy(qt2, crl_mlp_forward(cm, crl_sac_critic_params(s, 3), &wc, xq, B, b.task),
           sizeof qt2);
    for (int i = 0; i < B; i++) {
        double alpha = exp(crl_sac_log_alpha(s)[b.task[i]]);
        y[i] = (float)(b.rew[i] + 0.99 * (1 - b.done[i]) *
                                      (fmin(qt1[i], qt2[i]) - alpha * logp2[i]));
        memcpy(xq + i * (O + A), b.obs + i * O, sizeof(float) * O);
        memcpy(xq + i * (O + A) + O, b.act + i * A, sizeof(float) * A);
    }
    for (int k = 0; k < 2; k++) {
        const float *q =
            crl_mlp_forward(cm, crl_sac_critic_params(s, k), &wc, xq, B, b.task);
        for (int i = 0; i < B; i++) loss += 0.5 * (q[i] - y[i]) * (q[i] - y[i]) / B;
    }
    ck_assert_msg(fabs(loss - st.q_loss) <= 1e-4 * fabs(loss) + 1e-6, "q_loss %g vs %g",
                  st.q_loss, loss);
    crl_mlp_ws_free(&wa);
    crl_mlp_ws_free(&wc);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

START_TEST(test_update_nan_rejected) {
    crl_sac *s = small_sac(12);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 13);
    size_t na = crl_sac_actor(s)->n_params;
    float *before = malloc(sizeof(float) * na);
    memcpy(before, crl_sac_actor_params(s), sizeof(float) * na);
    b.rew[3] = NAN;
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, &err), CRL_ENAN);
    ck_assert(strstr(err.msg, "non-finite") != NULL);
    /* Nothing applied. */
    ck_assert(memcmp(before, crl_sac_actor_params(s), sizeof(float) * na) == 0);
    b.rew[3] = 0.5f;
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, &err), CRL_OK);
    ck_assert(memcmp(before, crl_sac_actor_params(s), sizeof(float) * na) != 0);
    free(before);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* Save, keep updating; load into a fresh learner and repeat the same
 * updates: the parameters must match bit for bit. */
START_TEST(test_checkpoint_roundtrip) {
    crl_sac *s = small_sac(14);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 15);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);

    crl_sac *t = small_sac(999); /* different init, overwritten by load */
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_load(t, blob, n - 1, &err), CRL_ECORRUPT);
    ck_assert_int_eq(crl_sac_load(t, blob, n, &err), CRL_OK);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(t, &b, NULL, NULL), 0);
    size_t na = crl_sac_actor(s)->n_params, nc = crl_sac_critic(s)->n_params;
    ck_assert(memcmp(crl_sac_actor_params(s), crl_sac_actor_params(t), na * 4) == 0);
    ck_assert(memcmp(crl_sac_critic_params(s, 0), crl_sac_critic_params(t, 0),
                     2 * nc * 4) == 0);
    ck_assert(memcmp(crl_sac_critic_params(s, 2), crl_sac_critic_params(t, 2),
                     2 * nc * 4) == 0);
    ck_assert(memcmp(crl_sac_log_alpha(s), crl_sac_log_alpha(t), T * 4) == 0);
    /* A blob of another shape is refused. */
    crl_sac_config c;
    crl_sac_config_default(&c, O + 1, A, T);
    c.hidden = 24;
    c.layers = 3;
    c.batch = B;
    crl_sac *u = NULL;
    ck_assert_int_eq(crl_sac_create(&c, 1, &u, NULL), 0);
    ck_assert_int_eq(crl_sac_load(u, blob, n, &err), CRL_ECORRUPT);
    ck_assert(strstr(err.msg, "does not match") != NULL);
    crl_sac_free(u);
    free(blob);
    crl_sac_free(t);
    crl_sac_free(s);
    crl_batch_free(&b);
}
END_TEST

START_TEST(test_task_heads_and_alphas_separate) {
    /* An update on task-0 samples only must not change task 1's head or
     * log-alpha. */
    crl_sac *s = small_sac(16);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, 17);
    for (int i = 0; i < B; i++) b.task[i] = 0;
    const crl_mlp *am = crl_sac_actor(s);
    size_t hsz = (size_t)am->spec.hidden[am->spec.n_hidden - 1] * am->spec.out_dim;
    float *h1 = crl_sac_actor_params(s) + am->head_W + hsz; /* head 1 weights */
    float keep[64];
    memcpy(keep, h1, sizeof keep);
    float la1 = crl_sac_log_alpha(s)[1], la0 = crl_sac_log_alpha(s)[0];
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    ck_assert(memcmp(keep, h1, sizeof keep) == 0);
    ck_assert(crl_sac_log_alpha(s)[1] == la1);
    ck_assert(crl_sac_log_alpha(s)[0] != la0);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* The training step allocates nothing: replay sampling, the two-lane update,
 * acting and the env step, after a warm-up (BLAS builds its buffers on first
 * use in each thread). */
START_TEST(test_training_step_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_err err = {0};
    crl_env_spec *spec;
    crl_env *env;
    ck_assert_int_eq(crl_env_spec_create("halfcheetah", &spec, &err), 0);
    ck_assert_int_eq(crl_env_create(spec, &env, &err), 0);
    crl_sac_config c;
    crl_sac_config_default(&c, 17, 6, 2);
    c.hidden = 64;
    c.layers = 3;
    c.batch = 32;
    c.threads = 2;
    crl_sac *s;
    ck_assert_int_eq(crl_sac_create(&c, 3, &s, &err), 0);
    crl_replay rb;
    ck_assert_int_eq(crl_replay_init(&rb, 17, 6, 1000, &err), 0);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, 32, 17, 6, &err), 0);
    crl_rng r;
    crl_rng_seed(&r, 4);
    float obs[17], obs2[17], act[6];
    crl_env_reset(env, 1, obs);
    long before = 0;
    int bad_updates = 0;
    for (int step = 0; step < 400; step++) {
        if (step == 200) before = alloc_calls(); /* after the warm-up */
        crl_sac_act(s, 1, obs, 1, 0, NULL, act);
        crl_step_info info;
        crl_env_step(env, act, obs2, &info);
        crl_replay_add(&rb, obs, act, info.reward, obs2, info.terminal, 1);
        memcpy(obs, obs2, sizeof obs);
        if (rb.size >= 64) {
            crl_replay_sample(&rb, &r, 32, &b);
            /* No ck_assert in the loop: Check's own bookkeeping allocates. */
            bad_updates += crl_sac_update(s, &b, NULL, &err) != CRL_OK;
        }
    }
    long calls = alloc_calls() - before;
    ck_assert_int_eq(bad_updates, 0);
    ck_assert_msg(calls == 0, "%ld allocations in 200 training steps", calls);
    crl_batch_free(&b);
    crl_replay_free(&rb);
    crl_sac_free(s);
    crl_env_free(env);
    crl_env_spec_free(spec);
#else
    fprintf(stderr, "test_training_step_no_malloc: skipped (no malloc interposition)\n");
#endif
}
END_TEST

/* ---- whole runs through the runner ------------------------------------ */

static char tmpdir[256];

static void make_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/crl_test_sac_XXXXXX");
    ck_assert(mkdtemp(tmpdir) != NULL);
}

typedef struct {
    int64_t step[64];
    double sr[64], ret[64];
    int n;
} eval_list;

static int collect(const crl_eval_row *r, void *ctx) {
    eval_list *l = ctx;
    if (l->n < 64) {
        l->step[l->n] = r->step;
        l->sr[l->n] = r->success_rate;
        l->ret[l->n] = r->mean_return;
        l->n++;
    }
    return 0;
}

static void run_small(const char *db, uint64_t seed, int threads, eval_list *out) {
    crl_train_config c;
    crl_train_config_default(&c);
    c.env = "pendulum";
    c.seed = seed;
    c.steps = 1200;
    c.eval_every = 400;
    c.eval_episodes = 3;
    c.sac.hidden = 32;
    c.sac.layers = 2;
    c.sac.batch = 32;
    c.sac.start_steps = 300;
    c.sac.update_after = 200;
    c.sac.threads = threads;
    crl_err err = {0};
    crl_store *st = NULL;
    ck_assert_msg(crl_store_open(db, 1, &st, &err) == 0, "%s", err.msg);
    int64_t id;
    ck_assert_int_eq(
        crl_store_run_create(st, "sac", "pendulum", seed, NULL, 0, &id, &err), 0);
    ck_assert_msg(crl_train_run(&c, st, id, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
    out->n = 0;
    ck_assert_int_eq(crl_store_evals(st, id, collect, out, &err), 0);
    crl_run_info info;
    ck_assert_int_eq(crl_store_run_get(st, id, &info, NULL, &err), 0);
    ck_assert_str_eq(info.status, "finished");
    crl_store_close(st);
}

START_TEST(test_determinism) {
    make_tmp();
    char a[300], b2[300];
    snprintf(a, sizeof a, "%s/a.db", tmpdir);
    snprintf(b2, sizeof b2, "%s/b.db", tmpdir);
    eval_list ea, eb, ec;
    run_small(a, 42, 1, &ea);
    run_small(b2, 42, 1, &eb);
    ck_assert_int_eq(ea.n, 3);
    ck_assert_int_eq(eb.n, ea.n);
    for (int i = 0; i < ea.n; i++) {
        ck_assert_int_eq(ea.step[i], eb.step[i]);
        ck_assert(ea.ret[i] == eb.ret[i]); /* bit-identical, not approximately */
        ck_assert(ea.sr[i] == eb.sr[i]);
    }
    /* A different seed gives a different run (the test can fail). */
    /* Two update lanes do the same arithmetic: identical rows again. */
    snprintf(b2, sizeof b2, "%s/c.db", tmpdir);
    run_small(b2, 42, 2, &eb);
    ck_assert_int_eq(eb.n, ea.n);
    for (int i = 0; i < ea.n; i++)
        ck_assert(ea.ret[i] == eb.ret[i] && ea.sr[i] == eb.sr[i]);
    run_small(a, 43, 1, &ec);
    int differ = 0;
    for (int i = 0; i < ec.n; i++) differ |= ec.ret[i] != ea.ret[i];
    ck_assert(differ);
}
END_TEST

/* The learning test. Pendulum swing-up from a uniformly random angle:
 * a random policy scores about -1200 per 200-step episode, and a good
 * swing-up policy about -150 (the cost of a few swings from hanging down,
 * near 0 from upright). A mean deterministic return above -250 over 10
 * episodes therefore means the agent swings up and balances from nearly
 * every start. Budget: 12,000 env steps, small networks (2 x 64). */
START_TEST(test_learns_pendulum) {
    crl_train_config c;
    crl_train_config_default(&c);
    c.env = "pendulum";
    c.seed = 1;
    c.steps = 12000;
    c.eval_every = 12000;
    c.eval_episodes = 10;
    c.sac.hidden = 64;
    c.sac.layers = 2;
    c.sac.batch = 128;
    c.sac.start_steps = 2000;
    c.sac.update_after = 1000;
    c.sac.update_every = 50;
    c.sac.init_log_alpha = -1.0f; /* pendulum rewards are ~1/10 of CW's scale */
    make_tmp();
    char db[300];
    snprintf(db, sizeof db, "%s/learn.db", tmpdir);
    crl_err err = {0};
    crl_store *st = NULL;
    ck_assert_int_eq(crl_store_open(db, 1, &st, &err), 0);
    int64_t id;
    ck_assert_int_eq(crl_store_run_create(st, "sac", "pendulum", 1, NULL, 0, &id, &err),
                     0);
    double t0 = crl_now();
    ck_assert_msg(crl_train_run(&c, st, id, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
    double wall = crl_now() - t0;
    crl_store_close(st);

    /* Re-evaluate the final checkpoint independently: 10 deterministic
     * episodes from fresh seeds. */
    crl_store_open(db, 0, &st, &err);
    void *blob;
    size_t n;
    int task;
    int64_t step;
    ck_assert_int_eq(crl_store_checkpoint_latest(st, id, &task, &step, &blob, &n, &err),
                     0);
    ck_assert_int_eq(step, 12000);
    crl_store_close(st);
    crl_env_spec *spec;
    ck_assert_int_eq(crl_env_spec_create("pendulum", &spec, &err), 0);
    crl_sac_config sc = c.sac;
    sc.obs_dim = crl_env_obs_dim(spec);
    sc.act_dim = crl_env_act_dim(spec);
    sc.n_tasks = 1;
    crl_sac *s;
    ck_assert_int_eq(crl_sac_create(&sc, 0, &s, &err), 0);
    const void *sb;
    size_t sn;
    int64_t ck_step;
    ck_assert_int_eq(crl_checkpoint_learner(blob, n, &sb, &sn, &ck_step, &err), 0);
    ck_assert_int_eq(ck_step, 12000);
    ck_assert_msg(crl_sac_load(s, sb, sn, &err) == 0, "%s", err.msg);
    double ret, sr, ret0;
    /* The same 10 episodes with the untrained learner: the bar must be far
     * above what a policy that has not learned gets. */
    crl_sac *fresh;
    ck_assert_int_eq(crl_sac_create(&sc, 1, &fresh, &err), 0);
    ck_assert_int_eq(crl_evaluate(fresh, spec, 0, 10, 1, 777, &ret0, &sr, &err), 0);
    crl_sac_free(fresh);
    fprintf(stderr, "pendulum: untrained deterministic return %.1f\n", ret0);
    ck_assert_msg(ret0 < -500.0, "untrained return %.1f is not far below the bar", ret0);
    ck_assert_int_eq(crl_evaluate(s, spec, 0, 10, 1, 777, &ret, &sr, &err), 0);
    fprintf(stderr,
            "pendulum: mean deterministic return %.1f over 10 episodes after %d "
            "steps (%.1f s)\n",
            ret, 12000, wall);
    ck_assert_msg(ret > -250.0, "pendulum return %.1f <= -250", ret);
    free(blob);
    crl_sac_free(s);
    crl_env_spec_free(spec);
}
END_TEST

/* ---- CSP: the subspace actor inside the one SAC update ------------------- */

enum { KC = 3 };

static crl_sac *csp_sac_tasks(uint64_t seed, int csp, int tasks) {
    crl_sac_config c;
    crl_sac_config_default(&c, O, A, tasks);
    c.hidden = 24;
    c.layers = 3;
    c.batch = B;
    c.csp_anchors = csp;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    return s;
}

static crl_sac *csp_sac(uint64_t seed, int csp) {
    return csp_sac_tasks(seed, csp, T);
}

/* Grow to n anchors (the first n - 1 frozen), each new anchor moved away
 * from the mean so that the anchors differ. */
static void csp_grow(crl_sac *s, int n, uint64_t seed) {
    crl_subspace *sub = crl_sac_subspace(s);
    float *p = crl_sac_actor_params(s);
    crl_rng r;
    crl_rng_seed(&r, seed);
    while (sub->n_anchors < n) {
        crl_subspace_freeze_all(sub);
        ck_assert_int_eq(crl_subspace_add_anchor(sub, p, NULL), 0);
        size_t off = crl_subspace_anchor_offset(sub, sub->n_anchors - 1);
        for (size_t i = 0; i < sub->anchor_size; i++)
            p[off + i] += 0.1f * (float)crl_rng_normal(&r);
    }
    crl_sac_subspace_changed(s);
}

static void random_mix(crl_rng *r, int rows, int n, float *mix) {
    for (int i = 0; i < rows; i++) {
        memset(mix + (size_t)i * KC, 0, sizeof(float) * KC);
        crl_dirichlet_flat(r, n, mix + (size_t)i * KC, NULL);
    }
}

/* alpha = e_i gives exactly the plain one-head learner of the same seed:
 * anchor 0 is drawn like the plain actor, and a grown anchor starts at the
 * mean (of one anchor: itself). The CSP actor has one head for every task:
 * the task index does not change its action, only alpha does. */
START_TEST(test_csp_onehot_is_plain) {
    crl_sac *p = csp_sac_tasks(21, 0, 1), *s = csp_sac(21, KC);
    crl_rng r;
    crl_rng_seed(&r, 22);
    float obs[4 * O], a1[4 * A], a2[4 * A];
    for (int i = 0; i < 4 * O; i++) obs[i] = (float)crl_rng_normal(&r);
    crl_sac_act(p, 4, obs, 0, 1, NULL, a1);
    float e0[KC] = {1, 0, 0}, e1[KC] = {0, 1, 0};
    crl_sac_set_act_mix(s, e0);
    for (int task = 0; task < T; task++) {
        memset(a2, 0, sizeof a2);
        crl_sac_act(s, 4, obs, task, 1, NULL, a2);
        ck_assert_msg(memcmp(a1, a2, sizeof a1) == 0, "task %d", task);
    }
    crl_subspace *sub = crl_sac_subspace(s);
    crl_subspace_freeze_all(sub);
    ck_assert_int_eq(crl_subspace_add_anchor(sub, crl_sac_actor_params(s), NULL), 0);
    crl_sac_subspace_changed(s);
    crl_sac_set_act_mix(s, e1);
    crl_sac_act(s, 4, obs, 1, 1, NULL, a2);
    ck_assert(memcmp(a1, a2, sizeof a1) == 0);
    ck_assert(crl_sac_subspace(p) == NULL);
    crl_sac_free(p);
    crl_sac_free(s);
}
END_TEST

/* Finite differences through the subspace actor and the alpha-conditioned
 * critics, with a different alpha on every row (3 anchors, 2 frozen). */
START_TEST(test_csp_grads_fd) {
    crl_sac *s = csp_sac(23, KC);
    csp_grow(s, 3, 24);
    crl_sac_log_alpha(s)[0] = -0.7f;
    crl_sac_log_alpha(s)[1] = 0.3f;
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    ck_assert_int_eq(crl_batch_alloc_mix(&b, KC, NULL), 0);
    fill_batch(&b, 25);
    crl_rng r;
    crl_rng_seed(&r, 26);
    random_mix(&r, B, 3, b.mix);
    random_mix(&r, 2 * B, 3, crl_sac_update_mix(s));
    float eps[2 * B * A];
    for (int i = 0; i < 2 * B * A; i++) eps[i] = (float)crl_rng_normal(&r);
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, NULL), CRL_OK);
    float *ga, *gc;
    crl_sac_grads(s, &ga, &gc, NULL);
    const crl_subspace *sub = crl_sac_subspace(s);
    size_t lo = crl_subspace_anchor_offset(sub, 2), hi = crl_subspace_n_params(sub);
    size_t nc = crl_sac_critic(s)->n_params, ntr = hi - lo;
    float *gcc = malloc(sizeof(float) * 2 * nc), *gat = malloc(sizeof(float) * ntr);
    memcpy(gcc, gc, sizeof(float) * 2 * nc);
    memcpy(gat, ga + lo, sizeof(float) * ntr);
    /* Frozen anchors and the shared LayerNorm get no gradient at all. */
    for (size_t i = 0; i < lo; i++) ck_assert_msg(ga[i] == 0.0f, "frozen grad at %zu", i);
    double norm = 0;
    for (size_t i = 0; i < ntr; i++) norm += (double)gat[i] * gat[i];
    ck_assert(norm > 1e-8);
    ck_assert_int_eq(fd_check(s, &b, eps, crl_sac_critic_params(s, 0), gcc, 2 * nc,
                              LOSS_Q, 120, "csp dLq/dcritic"),
                     0);
    ck_assert_int_eq(fd_check(s, &b, eps, crl_sac_actor_params(s) + lo, gat, ntr, LOSS_PI,
                              150, "csp dLpi/danchor"),
                     0);
    free(gcc);
    free(gat);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* Training moves only the newest anchor; removing it afterwards gives back
 * every parameter exactly as it was before the anchor was added. */
START_TEST(test_csp_frozen_and_prune) {
    crl_sac *s = csp_sac(27, KC);
    csp_grow(s, 2, 28);
    crl_subspace *sub = crl_sac_subspace(s);
    float *p = crl_sac_actor_params(s);
    size_t cap = crl_sac_actor_size(s), a1 = crl_subspace_anchor_offset(sub, 1);
    /* "Before the task": the subspace with one frozen anchor. */
    ck_assert_int_eq(crl_subspace_remove_last(sub, p, NULL), 0);
    float *before = malloc(sizeof(float) * cap);
    memcpy(before, p, sizeof(float) * cap);
    crl_subspace_freeze_all(sub);
    ck_assert_int_eq(crl_subspace_add_anchor(sub, p, NULL), 0);
    crl_sac_subspace_changed(s);
    float *added = malloc(sizeof(float) * cap);
    memcpy(added, p, sizeof(float) * cap);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    ck_assert_int_eq(crl_batch_alloc_mix(&b, KC, NULL), 0);
    fill_batch(&b, 29);
    crl_rng r;
    crl_rng_seed(&r, 30);
    random_mix(&r, B, 2, b.mix);
    for (int k = 0; k < 10; k++) ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    ck_assert(memcmp(p, added, sizeof(float) * a1) == 0); /* frozen */
    ck_assert(memcmp(p + a1, added + a1, sizeof(float) * sub->anchor_size) != 0);
    ck_assert_int_eq(crl_subspace_remove_last(sub, p, NULL), 0); /* prune */
    crl_sac_subspace_changed(s);
    ck_assert(memcmp(p, before, sizeof(float) * cap) == 0);
    free(before);
    free(added);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* A CSP checkpoint restores the anchors in use and continues bit-exactly;
 * plain and CSP blobs do not load into each other. */
START_TEST(test_csp_checkpoint) {
    crl_sac *s = csp_sac(31, KC);
    csp_grow(s, 2, 32);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    ck_assert_int_eq(crl_batch_alloc_mix(&b, KC, NULL), 0);
    fill_batch(&b, 33);
    crl_rng r;
    crl_rng_seed(&r, 34);
    random_mix(&r, B, 2, b.mix);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    crl_sac *t = csp_sac(999, KC);
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_load(t, blob, n - 1, &err), CRL_ECORRUPT);
    ck_assert_int_eq(crl_sac_load(t, blob, n, &err), CRL_OK);
    ck_assert_int_eq(crl_sac_subspace(t)->n_anchors, 2);
    ck_assert_int_eq(crl_sac_subspace(t)->n_frozen, 1);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(crl_sac_update(t, &b, NULL, NULL), 0);
    ck_assert(memcmp(crl_sac_actor_params(s), crl_sac_actor_params(t),
                     crl_sac_actor_size(s) * 4) == 0);
    crl_sac *plain = csp_sac(1, 0);
    ck_assert_int_eq(crl_sac_load(plain, blob, n, &err), CRL_ECORRUPT);
    ck_assert(strstr(err.msg, "do not mix") != NULL);
    /* A CSP batch without its alpha column is refused, nothing applied. */
    crl_batch nb;
    ck_assert_int_eq(crl_batch_alloc(&nb, B, O, A, NULL), 0);
    fill_batch(&nb, 35);
    ck_assert_int_eq(crl_sac_update(t, &nb, NULL, &err), CRL_EINVAL);
    crl_batch_free(&nb);
    crl_sac_free(plain);
    free(blob);
    crl_sac_free(t);
    crl_sac_free(s);
    crl_batch_free(&b);
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

/* The learner blob is version 2, names its actor kind and configuration, and
 * round-trips byte for byte (plain and CSP). */
START_TEST(test_blob_v2_records_actor) {
    for (int csp = 0; csp < 2; csp++) {
        crl_sac *s = csp ? csp_sac(41, KC) : small_sac(41);
        if (csp) csp_grow(s, 2, 42);
        void *blob, *again;
        size_t n, n2;
        crl_err err = {0};
        ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
        ck_assert(memcmp(blob, "CRLSAC02", 8) == 0);
        crl_sac_blob info;
        ck_assert_msg(crl_sac_blob_info(blob, n, &info, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(info.version, 2);
        ck_assert_int_eq(info.actor.kind, csp ? CRL_ACTOR_CSP : CRL_ACTOR_MLP);
        ck_assert_int_eq(info.obs_dim, O);
        ck_assert_int_eq(info.act_dim, A);
        ck_assert_int_eq(info.n_tasks, T);
        ck_assert_int_eq(info.hidden, 24);
        ck_assert_int_eq(info.layers, 3);
        ck_assert_uint_eq(info.na, crl_sac_actor_size(s));
        if (csp) {
            ck_assert_uint_eq(info.actor.K, KC);
            ck_assert_uint_eq(info.actor.n_anchors, 2);
            ck_assert_uint_eq(info.actor.n_frozen, 1);
            ck_assert_uint_eq(info.actor.used,
                              crl_subspace_n_params(crl_sac_subspace(s)));
        } else {
            ck_assert_uint_eq(info.actor.used, info.na);
        }
        float first;
        memcpy(&first, info.actor_params, 4);
        ck_assert(first == crl_sac_actor_params(s)[0]);
        crl_sac *t = csp ? csp_sac(999, KC) : small_sac(999);
        ck_assert_msg(crl_sac_load(t, blob, n, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(crl_sac_save(t, &again, &n2, NULL), 0);
        ck_assert_uint_eq(n2, n);
        ck_assert(memcmp(blob, again, n) == 0);
        free(again);
        free(blob);
        crl_sac_free(t);
        crl_sac_free(s);
    }
}
END_TEST

/* Version-1 blobs (the old magics and headers) still load: the learner they
 * restore saves the very version-2 blob of the learner that wrote them. */
START_TEST(test_blob_v1_loads) {
    for (int csp = 0; csp < 2; csp++) {
        crl_sac *s = csp ? csp_sac(43, KC) : small_sac(43);
        if (csp) csp_grow(s, 2, 44);
        void *blob, *again;
        size_t n, n1, n2;
        crl_err err = {0};
        ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
        void *v1 = to_v1(blob, n, &n1);
        crl_sac_blob info;
        ck_assert_msg(crl_sac_blob_info(v1, n1, &info, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(info.version, 1);
        ck_assert_int_eq(info.actor.kind, csp ? CRL_ACTOR_CSP : CRL_ACTOR_MLP);
        ck_assert_uint_eq(info.actor.n_anchors, csp ? 2 : 0);
        crl_sac *t = csp ? csp_sac(999, KC) : small_sac(999);
        ck_assert_msg(crl_sac_load(t, v1, n1, &err) == CRL_OK, "%s", err.msg);
        ck_assert_int_eq(crl_sac_save(t, &again, &n2, NULL), 0);
        ck_assert_uint_eq(n2, n);
        ck_assert(memcmp(blob, again, n) == 0);
        /* A v1 blob of the other kind is refused. */
        crl_sac *u = csp ? small_sac(1) : csp_sac(1, KC);
        ck_assert_int_eq(crl_sac_load(u, v1, n1, &err), CRL_ECORRUPT);
        crl_sac_free(u);
        free(again);
        free(v1);
        free(blob);
        crl_sac_free(t);
        crl_sac_free(s);
    }
}
END_TEST

/* The blob view refuses corrupt blobs (magic, kind, lengths, sizes), and
 * crl_sac_load then leaves the learner untouched. */
START_TEST(test_blob_view_refuses_corrupt) {
    crl_sac *s = csp_sac(45, KC);
    void *blob;
    size_t n;
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
    unsigned char *c = malloc(n + 1);
    crl_sac_blob info;
    struct {
        size_t off;
        uint32_t val;
    } bad[] = {{0, 0x4c4c4c4c}, /* magic */
               {8, 7},          /* kind */
               {12, 1u << 30},  /* obs_dim */
               {84, 0x7fffffff} /* used > na */};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        memcpy(c, blob, n);
        memcpy(c + bad[k].off, &bad[k].val, 4);
        ck_assert_int_eq(crl_sac_blob_info(c, n, &info, &err), CRL_ECORRUPT);
    }
    memcpy(c, blob, n);
    c[n] = 0;
    ck_assert_int_eq(crl_sac_blob_info(c, n - 1, &info, &err), CRL_ECORRUPT);
    ck_assert_int_eq(crl_sac_blob_info(c, n + 1, &info, &err), CRL_ECORRUPT);
    ck_assert_int_eq(crl_sac_blob_info(c, 7, &info, &err), CRL_ECORRUPT);
    ck_assert_int_eq(crl_sac_blob_info(c, n, &info, &err), CRL_OK);
    /* A header that fits its length but not the learner: refused, nothing
     * written. */
    crl_sac *t = csp_sac(46, KC);
    const size_t na = crl_sac_actor_size(t);
    float *before = malloc(na * 4);
    memcpy(before, crl_sac_actor_params(t), na * 4);
    uint32_t anchors = KC + 1;
    memcpy(c + 52, &anchors, 4);
    ck_assert_int_eq(crl_sac_load(t, c, n, &err), CRL_ECORRUPT);
    ck_assert(memcmp(before, crl_sac_actor_params(t), na * 4) == 0);
    free(before);
    crl_sac_free(t);
    free(c);
    free(blob);
    crl_sac_free(s);
}
END_TEST

/* A plain (MLP) learner's blob must store all of its actor's parameters:
 * a header that says it stores fewer, with the blob cut to match, is
 * refused by crl_sac_blob_info, and so by crl_l2m_base_parse, which copied
 * all of them and read past the blob (found by fuzz_checkpoint). */
START_TEST(test_blob_plain_actor_stores_all) {
    crl_sac *s = small_sac(47);
    void *blob;
    size_t n;
    crl_err err = {0};
    ck_assert_int_eq(crl_sac_save(s, &blob, &n, NULL), 0);
    crl_sac_blob info;
    ck_assert_int_eq(crl_sac_blob_info(blob, n, &info, &err), CRL_OK);
    ck_assert_int_eq(info.actor.kind, CRL_ACTOR_MLP);
    ck_assert(info.actor.used == info.na);
    /* used (header offset 84) 66 smaller; it is counted three times in the
     * blob's length (parameters, and Adam's two moments). */
    uint64_t used = info.na - 66;
    size_t m = n - 3 * 66 * sizeof(float);
    unsigned char *c = malloc(m);
    memcpy(c, blob, m);
    memcpy(c + 84, &used, 8);
    ck_assert_int_eq(crl_sac_blob_info(c, m, &info, &err), CRL_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "plain actor"));
    crl_l2m_base b;
    ck_assert_int_eq(crl_l2m_base_parse(c, m, 0, &b, &err), CRL_ECORRUPT);
    free(c);
    free(blob);
    crl_sac_free(s);
}
END_TEST

int main(void) {
    crl_blas_init(1, NULL);
    Suite *s = suite_create("sac");
    TCase *g = tcase_create("gradients");
    tcase_add_test(g, test_grad_critic_loss);
    tcase_add_test(g, test_grad_actor_loss);
    tcase_add_test(g, test_grad_alpha_loss);
    tcase_add_test(g, test_critic_target_by_hand);
    tcase_add_test(g, test_update_nan_rejected);
    tcase_add_test(g, test_checkpoint_roundtrip);
    tcase_add_test(g, test_task_heads_and_alphas_separate);
    tcase_add_test(g, test_training_step_no_malloc);
    tcase_add_test(g, test_csp_onehot_is_plain);
    tcase_add_test(g, test_csp_grads_fd);
    tcase_add_test(g, test_csp_frozen_and_prune);
    tcase_add_test(g, test_csp_checkpoint);
    tcase_add_test(g, test_blob_v2_records_actor);
    tcase_add_test(g, test_blob_v1_loads);
    tcase_add_test(g, test_blob_view_refuses_corrupt);
    tcase_add_test(g, test_blob_plain_actor_stores_all);
    suite_add_tcase(s, g);
    TCase *r = tcase_create("runs");
    tcase_set_timeout(r, 600);
    tcase_add_test(r, test_determinism);
    tcase_add_test(r, test_learns_pendulum);
    suite_add_tcase(s, r);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
