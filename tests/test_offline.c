/* Offline training (crl train --offline, docs/offline.md): the behaviour-
 * cloning loss of the SAC learner checked by finite differences and against
 * an independent double-precision value, the update touching the actor
 * alone through the methods' hooks, and (below) the offline runner. */
#include <check.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "crl/actor.h"
#include "crl/continual.h"
#include "crl/dataset.h"
#include "crl/env.h"
#include "crl/methods.h"
#include "crl/run.h"
#include "crl/pool.h"
#include "crl/replay.h"
#include "crl/sac.h"
#include "malloc_count.h"

enum { O = 5, A = 3, T = 2, B = 12 };

/* Updates of the reach learning run (docs/offline.md). */
#ifndef OFFLINE_UPDATES
#define OFFLINE_UPDATES 1500
#endif

static crl_sac *small_sac(uint64_t seed) {
    crl_sac_config c;
    crl_sac_config_default(&c, O, A, T);
    c.hidden = 24;
    c.layers = 3;
    c.batch = B;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    /* Biases and log-stds away from their initial zeros, as after training:
     * every head output (mean and log-std) takes part. */
    crl_rng r;
    crl_rng_seed(&r, seed + 100);
    float *p = crl_sac_actor_params(s);
    for (size_t i = 0; i < crl_sac_actor_size(s); i++)
        p[i] += 0.05f * (float)crl_rng_normal(&r);
    return s;
}

/* Expert actions in [-1, 1] with some exactly at the bounds (the clamp). */
static void fill_batch(crl_batch *b, int rows, uint64_t seed, int tasks) {
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (int i = 0; i < rows * O; i++) b->obs[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < rows * O; i++) b->obs2[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < rows * A; i++)
        b->act[i] = i % 7 == 0    ? 1.0f
                    : i % 11 == 0 ? -1.0f
                                  : (float)crl_rng_range(&r, -0.9, 0.9);
    for (int i = 0; i < rows; i++) {
        b->rew[i] = 0;
        b->done[i] = 0;
        b->task[i] = i % tasks;
    }
    b->B = rows;
}

static double bc_loss_of(crl_sac *s, const crl_batch *b, int loss) {
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_bc_compute_grads(s, b, loss, &st), CRL_OK);
    return st.pi_loss;
}

/* Central differences of the BC loss (with any penalty) on `count` entries
 * of params spread over [lo, hi). Leaky ReLU kinks: an entry whose h and
 * h/4 quotients disagree is skipped, at most a tenth of them. Returns the
 * number of mismatches. */
static int bc_fd_check(crl_sac *s, const crl_batch *b, int loss, float *params,
                       const float *grad, size_t lo, size_t hi, int count,
                       const char *what) {
    int bad = 0, kinked = 0;
    for (int k = 0; k < count; k++) {
        size_t i = lo + (k == count - 1 ? hi - lo - 1 : (size_t)k * ((hi - lo) / count));
        const float keep = params[i];
        const float h = 2e-3f;
        params[i] = keep + h;
        double lp = bc_loss_of(s, b, loss);
        params[i] = keep - h;
        double lm = bc_loss_of(s, b, loss);
        params[i] = keep + h / 4;
        double lp4 = bc_loss_of(s, b, loss);
        params[i] = keep - h / 4;
        double lm4 = bc_loss_of(s, b, loss);
        params[i] = keep;
        const double fd = (lp - lm) / (2.0 * h), fd4 = (lp4 - lm4) / (h / 2.0);
        const double an = grad[i];
        const double tol = 2e-2 * fmax(fabs(fd), fabs(an)) + 3e-4;
        if (fabs(fd - an) <= tol) continue;
        const double tol4 = 2e-2 * fmax(fabs(fd4), fabs(an)) + 1.2e-3;
        if (fabs(fd4 - an) <= tol4) continue;
        if (fabs(fd4 - fd) > tol4) {
            kinked++;
            continue;
        }
        /* A kink (or two) within h/4 of the point: both central quotients
         * straddle it. The one-sided quotients then differ, and the analytic
         * gradient (the slope at the point) lies between them. */
        const double l0 = bc_loss_of(s, b, loss);
        params[i] = keep + h / 4;
        const double r4 = (bc_loss_of(s, b, loss) - l0) / (h / 4.0);
        params[i] = keep - h / 4;
        const double q4 = (l0 - bc_loss_of(s, b, loss)) / (h / 4.0);
        params[i] = keep;
        const double tol1 = 2e-2 * fmax(fabs(r4), fabs(q4)) + 2.4e-3;
        if (fabs(r4 - q4) > tol1 && an >= fmin(r4, q4) - tol1 &&
            an <= fmax(r4, q4) + tol1) {
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

static void plain_fd(int loss) {
    crl_sac *s = small_sac(loss ? 31 : 41);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, B, 5, T);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_bc_compute_grads(s, &b, loss, &st), CRL_OK);
    float *g;
    crl_sac_grads(s, &g, NULL, NULL);
    const size_t na = crl_sac_actor_size(s);
    float *ga = malloc(na * sizeof(float));
    memcpy(ga, g, na * sizeof(float));
    double norm = 0;
    for (size_t i = 0; i < na; i++) norm += (double)ga[i] * ga[i];
    ck_assert(norm > 1e-8);
    int bad = bc_fd_check(s, &b, loss, crl_sac_actor_params(s), ga, 0, na, 200,
                          loss ? "dMSE/dactor" : "dNLL/dactor");
    ck_assert_int_eq(bad, 0);
    free(ga);
    crl_batch_free(&b);
    crl_sac_free(s);
}

START_TEST(test_bc_nll_fd) {
    plain_fd(CRL_BC_NLL);
}
END_TEST

START_TEST(test_bc_mse_fd) {
    plain_fd(CRL_BC_MSE);
}
END_TEST

/* The loss value against an independent computation in double from the
 * actor's head output (a separate forward): the clamp at 1 - 1e-3, the
 * Gaussian NLL of atanh(a) and the tanh Jacobian term, and the MSE. */
START_TEST(test_bc_value) {
    crl_sac *s = small_sac(51);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, B, 6, T);
    crl_actor *ac = crl_sac_get_actor(s);
    crl_actor_ws ws;
    ck_assert_int_eq(crl_actor_ws_alloc(ac, &ws, B, NULL), CRL_OK);
    const crl_actor_rows rows = {.head = b.task};
    const float *out = crl_actor_forward(ac, &ws, b.obs, B, &rows);
    double nll = 0, mse = 0;
    for (int r = 0; r < B; r++)
        for (int j = 0; j < A; j++) {
            double mu = out[r * 2 * A + j], ls = out[r * 2 * A + A + j];
            ls = fmin(fmax(ls, -20.0), 2.0);
            double a = b.act[r * A + j];
            double ac2 = fmin(fmax(a, -0.999), 0.999);
            double u = 0.5 * log((1 + ac2) / (1 - ac2));
            double sd = exp(ls);
            /* -log of the density of a' = tanh(u), u ~ N(mu, sd) */
            nll += 0.5 * (u - mu) * (u - mu) / (sd * sd) + log(sd) + 0.5 * log(2 * M_PI) +
                   log(1 - ac2 * ac2);
            mse += (tanh(mu) - a) * (tanh(mu) - a);
        }
    nll /= B;
    mse /= B;
    double got_nll = bc_loss_of(s, &b, CRL_BC_NLL);
    double got_mse = bc_loss_of(s, &b, CRL_BC_MSE);
    ck_assert_msg(fabs(got_nll - nll) < 1e-4 * fmax(1, fabs(nll)), "nll %.9g vs %.9g",
                  got_nll, nll);
    ck_assert_msg(fabs(got_mse - mse) < 1e-5 * fmax(1, fabs(mse)), "mse %.9g vs %.9g",
                  got_mse, mse);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_bc_compute_grads(s, &b, CRL_BC_NLL, &st), CRL_OK);
    ck_assert(fabs(st.logp + nll) < 1e-4 * fmax(1, fabs(nll)));
    crl_actor_ws_free(ac, &ws);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* l2/ewc's penalty hook joins the loss and its gradient (FD on the sum),
 * packnet's mask freezes entries, and only the actor changes: critics,
 * targets and log-alphas are bit-for-bit untouched. No allocation. */
static double penalty_hook(void *ctx, const float *params, float *grads, size_t n) {
    const float *ref = ctx;
    double v = 0;
    for (size_t i = 0; i < n; i += 3) {
        const double d = (double)params[i] - ref[i];
        v += 0.7 * d * d;
        grads[i] += (float)(1.4 * d);
    }
    return v;
}

START_TEST(test_bc_hooks_actor_only) {
    crl_sac *s = small_sac(61);
    const size_t na = crl_sac_actor_size(s);
    const size_t nc = crl_sac_critic(s)->n_params;
    float *ref = malloc(na * sizeof(float));
    uint8_t *mask = malloc(na);
    for (size_t i = 0; i < na; i++) {
        ref[i] = crl_sac_actor_params(s)[i] + 0.1f * (float)((int)(i % 5) - 2);
        mask[i] = i % 4 != 0;
    }
    crl_sac_hooks h = {
        .ctx = ref, .actor_penalty = penalty_hook, .actor_trainable = mask};
    crl_sac_set_hooks(s, &h);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
    fill_batch(&b, B, 7, T);
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_bc_compute_grads(s, &b, CRL_BC_NLL, &st), CRL_OK);
    ck_assert(st.penalty > 0);
    float *g;
    crl_sac_grads(s, &g, NULL, NULL);
    float *ga = malloc(na * sizeof(float));
    memcpy(ga, g, na * sizeof(float));
    ck_assert_int_eq(
        bc_fd_check(s, &b, CRL_BC_NLL, crl_sac_actor_params(s), ga, 0, na, 120, "dL/dp"),
        0);
    float *c0 = malloc(4 * nc * sizeof(float)), *p0 = malloc(na * sizeof(float));
    float la0[T];
    memcpy(c0, crl_sac_critic_params(s, 0), 2 * nc * sizeof(float));
    memcpy(c0 + 2 * nc, crl_sac_critic_params(s, 2), 2 * nc * sizeof(float));
    memcpy(la0, crl_sac_log_alpha(s), sizeof la0);
    memcpy(p0, crl_sac_actor_params(s), na * sizeof(float));
    crl_err err = {0};
#if HAVE_MALLOC_COUNT
    long before = alloc_calls();
#endif
    int bad_updates = 0; /* no ck_assert in the loop: Check allocates */
    for (int k = 0; k < 5; k++)
        bad_updates += crl_sac_bc_update(s, &b, CRL_BC_NLL, &st, &err) != CRL_OK;
#if HAVE_MALLOC_COUNT
    ck_assert_int_eq(alloc_calls() - before, 0);
#endif
    ck_assert_int_eq(bad_updates, 0);
    ck_assert_int_eq(memcmp(c0, crl_sac_critic_params(s, 0), 2 * nc * sizeof(float)), 0);
    ck_assert_int_eq(
        memcmp(c0 + 2 * nc, crl_sac_critic_params(s, 2), 2 * nc * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(la0, crl_sac_log_alpha(s), sizeof la0), 0);
    size_t moved = 0;
    for (size_t i = 0; i < na; i++) {
        if (!mask[i]) ck_assert(crl_sac_actor_params(s)[i] == p0[i]);
        moved += crl_sac_actor_params(s)[i] != p0[i];
    }
    ck_assert(moved > na / 2);
    free(c0);
    free(p0);
    free(ga);
    free(ref);
    free(mask);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* Behaviour cloning learns: 1500 updates on a fixed linear expert bring the
 * deterministic action close to it on held-out states (both losses). */
START_TEST(test_bc_fits_expert) {
    for (int loss = 0; loss < 2; loss++) {
        crl_sac *s = small_sac(71);
        crl_batch b;
        ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
        crl_rng r;
        crl_rng_seed(&r, 72);
        crl_err err = {0};
        for (int k = 0; k < 1500; k++) {
            for (int i = 0; i < B * O; i++) b.obs[i] = (float)crl_rng_normal(&r);
            for (int i = 0; i < B; i++) {
                b.task[i] = 0;
                for (int j = 0; j < A; j++)
                    b.act[i * A + j] = tanhf(0.8f * b.obs[i * O + j] - 0.3f * (float)j);
            }
            b.B = B;
            ck_assert_int_eq(crl_sac_bc_update(s, &b, loss, NULL, &err), CRL_OK);
        }
        float obs[16 * O], act[16 * A];
        for (int i = 0; i < 16 * O; i++) obs[i] = (float)crl_rng_normal(&r);
        crl_sac_act(s, 16, obs, 0, 1, NULL, act);
        double e = 0;
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < A; j++) {
                double d = act[i * A + j] - tanh(0.8 * obs[i * O + j] - 0.3 * j);
                e += d * d;
            }
        e /= 16 * A;
        ck_assert_msg(e < 0.01, "%s: mean squared action error %g", loss ? "mse" : "nll",
                      e);
        crl_batch_free(&b);
        crl_sac_free(s);
    }
}
END_TEST

/* An L2M pool actor: the BC loss plus the key pull, by finite differences on
 * the pool's entries (keys and modulators), rows of two tasks (oracle). */
START_TEST(test_bc_l2m_fd) {
    for (int oracle = 0; oracle < 2; oracle++) {
        crl_sac_config pc;
        crl_sac_config_default(&pc, O, A, 2);
        pc.hidden = 16;
        pc.layers = 3;
        pc.batch = B;
        crl_sac *plain = NULL;
        crl_err err = {0};
        ck_assert_int_eq(crl_sac_create(&pc, 81, &plain, &err), CRL_OK);
        crl_rng r;
        crl_rng_seed(&r, 82);
        float *pp = crl_sac_actor_params(plain);
        for (size_t i = 0; i < crl_sac_actor_size(plain); i++)
            pp[i] += 0.1f * (float)crl_rng_normal(&r);
        void *blob = NULL;
        size_t n = 0;
        ck_assert_int_eq(crl_sac_save(plain, &blob, &n, &err), CRL_OK);
        crl_l2m_base base;
        ck_assert_int_eq(crl_l2m_base_parse(blob, n, 0, &base, &err), CRL_OK);
        free(blob);
        crl_l2m_config lc;
        crl_l2m_config_default(&lc);
        lc.pool = 4;
        lc.rank = 3;
        lc.oracle = oracle;
        crl_sac_config c;
        crl_sac_config_default(&c, O, A, T);
        c.hidden = 16;
        c.layers = 3;
        c.batch = B;
        ck_assert_msg(crl_l2m_sac_config(&lc, &base, &c, &err) == CRL_OK, "%s", err.msg);
        crl_sac *s = NULL;
        ck_assert_msg(crl_sac_create(&c, 83, &s, &err) == CRL_OK, "%s", err.msg);
        memcpy(crl_sac_l2m_base(s), base.params, base.n * sizeof(float));
        crl_l2m_base_free(&base);
        const crl_pool *pool = crl_sac_pool(s);
        float *p = crl_sac_actor_params(s);
        for (size_t i = (size_t)lc.pool * pool->key_dim; i < pool->n_params; i++)
            p[i] += 0.3f * (float)crl_rng_normal(&r);
        crl_batch b;
        ck_assert_int_eq(crl_batch_alloc(&b, B, O, A, NULL), 0);
        fill_batch(&b, B, 84, T);
        crl_sac_stats st;
        ck_assert_int_eq(crl_sac_bc_compute_grads(s, &b, CRL_BC_NLL, &st), CRL_OK);
        if (!oracle) ck_assert(st.penalty < 0); /* the key pull is in */
        float *g;
        crl_sac_grads(s, &g, NULL, NULL);
        const size_t np = pool->n_params;
        float *ga = malloc(np * sizeof(float));
        memcpy(ga, g, np * sizeof(float));
        double norm = 0;
        for (size_t i = 0; i < np; i++) norm += fabs(ga[i]);
        ck_assert(norm > 0);
        ck_assert_int_eq(bc_fd_check(s, &b, CRL_BC_NLL, p, ga, 0, np, 150, "dL/dpool"),
                         0);
        ck_assert_int_eq(crl_sac_bc_update(s, &b, CRL_BC_MSE, NULL, &err), CRL_OK);
        free(ga);
        crl_batch_free(&b);
        crl_sac_free(s);
        crl_sac_free(plain);
    }
}
END_TEST

/* ---- the offline runner --------------------------------------------------------- */

static char dir[256];

static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_offline_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

/* `episodes` episodes per task of the task's scripted policy with Gaussian
 * action noise `noise` (clipped to the bounds), written with
 * crl_dataset_add. obs_dim_delta != 0 stores observations that many floats
 * short (a mismatched dataset). Returns the success rate of the data. */
static double make_dataset(const char *path, const char *const *tasks, int n_tasks,
                           int episodes, double noise, uint64_t seed, int obs_dim_delta) {
    crl_err err = {0};
    crl_dataset *ds = NULL;
    ck_assert_msg(crl_dataset_open(path, 1, &ds, &err) == CRL_OK, "%s", err.msg);
    crl_rng rng;
    crl_rng_seed(&rng, seed);
    int succ = 0;
    for (int k = 0; k < n_tasks; k++) {
        crl_env_spec *spec = NULL;
        crl_env *env = NULL;
        ck_assert_msg(crl_env_spec_create(tasks[k], &spec, &err) == CRL_OK, "%s",
                      err.msg);
        ck_assert_int_eq(crl_env_create(spec, &env, &err), CRL_OK);
        char hash[17];
        ck_assert_int_eq(crl_env_model_hash(spec, hash, &err), CRL_OK);
        const int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
        const int tmax = crl_env_max_steps(spec), od_s = od - obs_dim_delta;
        float *obs = malloc(sizeof(float) * (size_t)(tmax + 1) * od);
        float *obs_s = malloc(sizeof(float) * (size_t)(tmax + 1) * od);
        float *act = malloc(sizeof(float) * (size_t)tmax * ad);
        float *rew = malloc(sizeof(float) * (size_t)tmax);
        unsigned char *flags = malloc((size_t)tmax);
        for (int e = 0; e < episodes; e++) {
            const uint64_t es = crl_rng_u64(&rng);
            crl_env_reset(env, es, obs);
            int len = 0, ok = 0;
            double ret = 0;
            for (; len < tmax; len++) {
                float *a = act + (size_t)len * ad;
                crl_env_scripted_action(env, a);
                for (int j = 0; j < ad; j++) {
                    float v = a[j] + (float)(noise * crl_rng_normal(&rng));
                    a[j] = v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
                }
                crl_step_info info;
                crl_env_step(env, a, obs + (size_t)(len + 1) * od, &info);
                rew[len] = (float)info.reward;
                ret += info.reward;
                ok |= info.success != 0;
                flags[len] = (info.terminal ? CRL_DS_TERMINAL : 0) |
                             (info.truncated ? CRL_DS_TRUNCATED : 0) |
                             (info.success ? CRL_DS_SUCCESS : 0);
                if (info.terminal || info.truncated) {
                    len++;
                    break;
                }
            }
            for (int i = 0; i <= len; i++)
                memcpy(obs_s + (size_t)i * od_s, obs + (size_t)i * od,
                       sizeof(float) * od_s);
            succ += ok;
            crl_ds_episode ep = {.task = tasks[k],
                                 .model_hash = hash,
                                 .mujoco_version = "test",
                                 .source = "scripted+noise (test)",
                                 .seed = es,
                                 .length = len,
                                 .obs_dim = od_s,
                                 .act_dim = ad,
                                 .ret = ret,
                                 .success = ok,
                                 .obs = obs_s,
                                 .act = act,
                                 .reward = rew,
                                 .flags = flags};
            ck_assert_msg(crl_dataset_add(ds, &ep, &err) == CRL_OK, "%s", err.msg);
        }
        free(obs);
        free(obs_s);
        free(act);
        free(rew);
        free(flags);
        crl_env_free(env);
        crl_env_spec_free(spec);
    }
    crl_dataset_close(ds);
    return (double)succ / (episodes * n_tasks);
}

/* A small offline run config: CW layers but narrower, on scenario positions
 * of `scenario` through method `method`. */
static void small_run(crl_run_config *r, const char *scenario, const char *method,
                      const char *data, int64_t updates, int64_t eval_every) {
    crl_run_config_default(r);
    r->scenario = scenario;
    r->method = method;
    r->offline = data;
    r->steps_per_task = updates;
    r->eval_every = eval_every;
    r->eval_episodes = 10;
    r->log_train = "none";
    r->threads = 1;
    r->sac.hidden = 128;
    r->sac.layers = 2;
    r->sac.batch = 128;
}

static double sql_double(const char *db, const char *q) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(h));
    double v = NAN;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static int run_offline(crl_run_config *r, const char *db, int64_t *id) {
    crl_err err = {0};
    crl_store *store = NULL;
    ck_assert_msg(crl_store_open(db, 1, &store, &err) == CRL_OK, "%s", err.msg);
    crl_continual_config cc;
    ck_assert_msg(crl_run_create(store, r, id, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(crl_run_continual_config(r, &cc, &err), CRL_OK);
    if (cc.single_task < 0) cc.single_task = 0;
    int rc = crl_continual_run(&cc, store, *id, 0, NULL, NULL, NULL, &err);
    if (rc) fprintf(stderr, "offline run: %s\n", err.msg);
    crl_store_close(store);
    return rc;
}

/* Behaviour cloning of noisy scripted reach data (200 episodes) learns reach
 * to success >= 0.9 in the online evaluation. */
START_TEST(test_offline_learns_reach) {
    mkdir_tmp();
    char data[300], db[300];
    snprintf(data, sizeof data, "%s/reach.db", dir);
    snprintf(db, sizeof db, "%s/runs.db", dir);
    const char *tasks[] = {"reach"};
    double t0 = crl_now();
    double ds_succ = make_dataset(data, tasks, 1, 200, 0.1, 1, 0);
    double t1 = crl_now();
    ck_assert(ds_succ >= 0.9);
    crl_run_config r;
    small_run(&r, "pretrain", "single", data, OFFLINE_UPDATES, OFFLINE_UPDATES / 2);
    r.single_task = 0;
    int64_t id = 0;
    ck_assert_int_eq(run_offline(&r, db, &id), CRL_OK);
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT success_rate FROM evals WHERE run_id = %lld ORDER BY step DESC "
             "LIMIT 1",
             (long long)id);
    double sr = sql_double(db, q);
    fprintf(stderr, "offline reach: data %.1f s, %d updates %.1f s, success %.2f\n",
            t1 - t0, OFFLINE_UPDATES, crl_now() - t1, sr);
    ck_assert_msg(sr >= 0.9, "success %.2f after %d updates", sr, OFFLINE_UPDATES);
    /* step counts updates: evaluations at half and all of the budget. */
    snprintf(q, sizeof q, "SELECT max(step) FROM evals WHERE run_id = %lld",
             (long long)id);
    ck_assert_int_eq((int64_t)sql_double(db, q), OFFLINE_UPDATES);
    snprintf(q, sizeof q, "SELECT count(DISTINCT step) FROM evals WHERE run_id = %lld",
             (long long)id);
    ck_assert_int_eq((int)sql_double(db, q), 2);
    snprintf(q, sizeof q,
             "SELECT json_extract(config_json, '$.offline') = '%s' AND "
             "json_extract(config_json, '$.\"bc-loss\"') = 'nll' AND "
             "json_extract(config_json, '$.\"offline-bytes\"') > 0 FROM runs WHERE id = "
             "%lld",
             data, (long long)id);
    ck_assert_int_eq((int)sql_double(db, q), 1);
}
END_TEST

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

/* Run crl with args; stderr into err_path; the exit code. */
static int run_cli(const char *err_path, char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(126);
        execv(bin(), argv);
        _exit(127);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_refusal(const char *db, const char *needle, char *const argv[]) {
    char err_path[300];
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    int code = run_cli(err_path, argv);
    FILE *f = fopen(err_path, "r");
    ck_assert(f != NULL);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    int lines = 0;
    for (char *c = buf; *c; c++) lines += *c == '\n';
    ck_assert_msg(code == 2, "exit %d: %s", code, buf);
    ck_assert_msg(lines == 1, "not one line: %s", buf);
    ck_assert_msg(strncmp(buf, "crl train: ", 11) == 0 && strstr(buf, needle),
                  "[%s] lacks [%s]", buf, needle);
    /* Nothing was written: no run store at all. */
    struct stat sb;
    ck_assert_msg(stat(db, &sb) != 0, "%s exists after: %s", db, buf);
}

/* Missing, foreign, truncated and mismatched datasets, a task the dataset
 * lacks and csp: one line, exit 2, no run store created. */
START_TEST(test_offline_bad_datasets) {
    mkdir_tmp();
    char good[300], small[300], other[300], trunc[300], junk[300], db[300];
    snprintf(good, sizeof good, "%s/good.db", dir);
    snprintf(small, sizeof small, "%s/small.db", dir);
    snprintf(other, sizeof other, "%s/other.db", dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.db", dir);
    snprintf(junk, sizeof junk, "%s/junk.db", dir);
    snprintf(db, sizeof db, "%s/runs.db", dir);
    const char *reach[] = {"reach"}, *push[] = {"push"};
    make_dataset(good, reach, 1, 2, 0.1, 2, 0);
    make_dataset(small, reach, 1, 2, 0.1, 2, 3); /* 3 observation floats short */
    make_dataset(other, push, 1, 2, 0.1, 2, 0);
    make_dataset(trunc, reach, 1, 2, 0.1, 2, 0);
    /* The second episode's observations lose their last 10 bytes. */
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(trunc, &h), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(h,
                     "UPDATE episodes SET obs = substr(obs, 1, length(obs) - "
                     "10) WHERE id = (SELECT max(id) FROM episodes)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(h);
    FILE *f = fopen(junk, "w");
    fputs("not a database\n", f);
    fclose(f);
#define TRAIN(data, ...)                                                                 \
    (char *const[]) {                                                                    \
        (char *)bin(), "train", "--db", db, "--offline", data, "--updates-per-task",     \
            "10", "--quiet", __VA_ARGS__, NULL                                           \
    }
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    expect_refusal(db, missing, TRAIN(missing, "--env", "reach"));
    expect_refusal(db, "not a crl dataset", TRAIN(junk, "--env", "reach"));
    expect_refusal(db, "3", TRAIN(small, "--env", "reach"));
    expect_refusal(db, "reach", TRAIN(other, "--env", "reach"));
    expect_refusal(db, "obs", TRAIN(trunc, "--env", "reach"));
    expect_refusal(db, "pick-place",
                   TRAIN(good, "--scenario", "pretrain", "--method", "ft1"));
    expect_refusal(db, "critic",
                   TRAIN(good, "--scenario", "pretrain", "--method", "csp"));
    expect_refusal(db, "--bc-loss", TRAIN(good, "--env", "reach", "--bc-loss", "l1"));
    expect_refusal(db, "--updates-per-task",
                   TRAIN(good, "--env", "reach", "--steps-per-task", "5"));
    /* The good file passes the same gate (and then trains 10 updates). */
    char err_path[300];
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    ck_assert_int_eq(run_cli(err_path, TRAIN(good, "--env", "reach", "--eval-episodes",
                                             "1", "--hidden", "16", "--layers", "1")),
                     0);
#undef TRAIN
}
END_TEST

/* An offline continual run of two tasks with ft1 (scenario t6: stick-pull,
 * peg-unplug-side, stick-pull again): evaluations of every position at
 * every eval_every updates, task rows at the update counts, and `crl
 * report` reads the run. */
START_TEST(test_offline_continual_report) {
    mkdir_tmp();
    char data[300], db[300];
    snprintf(data, sizeof data, "%s/t6.db", dir);
    snprintf(db, sizeof db, "%s/runs.db", dir);
    const char *tasks[] = {"stick-pull", "peg-unplug-side"};
    make_dataset(data, tasks, 2, 2, 0.1, 3, 0);
    crl_run_config r;
    small_run(&r, "t6", "ft1", data, 40, 20);
    r.eval_episodes = 1;
    r.sac.hidden = 32;
    int64_t id = 0;
    ck_assert_int_eq(run_offline(&r, db, &id), CRL_OK);
    char q[256];
    snprintf(q, sizeof q,
             "SELECT group_concat(step || ':' || eval_task_idx, ' ') FROM (SELECT step, "
             "eval_task_idx FROM evals WHERE run_id = %lld ORDER BY step, eval_task_idx)",
             (long long)id);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    /* 3 positions x 40 updates, an evaluation of all 3 every 20. */
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0),
                     "20:0 20:1 20:2 40:0 40:1 40:2 60:0 60:1 60:2 80:0 80:1 80:2 100:0 "
                     "100:1 100:2 120:0 120:1 120:2");
    sqlite3_finalize(st);
    snprintf(q, sizeof q,
             "SELECT group_concat(idx || ':' || start_step || '-' || end_step, ' ') "
             "FROM (SELECT * FROM tasks WHERE run_id = %lld ORDER BY idx)",
             (long long)id);
    ck_assert_int_eq(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "0:0-40 1:40-80 2:80-120");
    sqlite3_finalize(st);
    sqlite3_close(h);
    char err_path[300];
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    ck_assert_int_eq(
        run_cli(err_path, (char *const[]){(char *)bin(), "report", "--db", db, NULL}), 0);
}
END_TEST

/* Every method of the issue runs offline through the CLI on t1 (push,
 * window-close, hammer), and an offline `--scenario pretrain --method mt`
 * run is a usable L2M base (--base RUN) for offline l2m, l2m-oracle and a
 * second router. Tiny budgets: this checks the plumbing, not learning. */
START_TEST(test_offline_methods_and_base) {
    mkdir_tmp();
    char data[300], db[300], err_path[300];
    snprintf(data, sizeof data, "%s/all.db", dir);
    snprintf(db, sizeof db, "%s/runs.db", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    const char *tasks[] = {
        "reach",        "pick-place",  "faucet-open",          "window-open",
        "handle-press", "drawer-open", "button-press-topdown", "push",
        "window-close", "hammer"};
    make_dataset(data, tasks, 10, 1, 0.1, 4, 0);
#define OFF(...)                                                                         \
    run_cli(err_path, (char *const[]){(char *)bin(), "train", "--db", db, "--offline",   \
                                      data, "--updates-per-task", "20", "--eval-every",  \
                                      "20", "--eval-episodes", "1", "--hidden", "32",    \
                                      "--layers", "2", "--quiet", __VA_ARGS__, NULL})
    ck_assert_int_eq(OFF("--scenario", "pretrain", "--method", "mt"), 0); /* run 1 */
    char *methods[] = {"ft1", "ftn", "l2", "ewc", "packnet", "pm"};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(OFF("--scenario", "t1", "--method", methods[i]) == 0, "%s",
                      methods[i]);
    ck_assert_int_eq(OFF("--scenario", "t1", "--method", "l2m", "--base", "1"), 0);
    ck_assert_int_eq(
        OFF("--scenario", "t1", "--method", "l2m", "--base", "1", "--l2m-oracle"), 0);
    ck_assert_int_eq(
        OFF("--scenario", "t1", "--method", "l2m", "--base", "1", "--l2m-router", "cos"),
        0);
    ck_assert_int_eq(OFF("--scenario", "t1", "--method", "l2m", "--base", "1",
                         "--bc-loss", "mse", "--l2m-history", "4"),
                     0);
#undef OFF
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM runs WHERE status = 'finished'");
    ck_assert_int_eq((int)sql_double(db, q), 11);
    /* every t1 run evaluated its 3 tasks at 20, 40, 60 updates */
    snprintf(q, sizeof q,
             "SELECT min(n) FROM (SELECT count(*) AS n FROM evals WHERE run_id > 1 GROUP "
             "BY run_id)");
    ck_assert_int_eq((int)sql_double(db, q), 9);
    ck_assert_int_eq(
        run_cli(err_path, (char *const[]){(char *)bin(), "report", "--db", db, NULL}), 0);
}
END_TEST

/* Ctrl-C in an offline run: exit 130, status interrupted, a checkpoint
 * inside the task; --resume reloads the task's data and finishes with every
 * evaluation once. */
START_TEST(test_offline_interrupt_resume) {
    mkdir_tmp();
    char data[300], db[300], err_path[300];
    snprintf(data, sizeof data, "%s/reach.db", dir);
    snprintf(db, sizeof db, "%s/runs.db", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    const char *reach[] = {"reach"};
    make_dataset(data, reach, 1, 5, 0.1, 9, 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(126);
        execv(bin(),
              (char *const[]){(char *)bin(),        "train", "--db",         db,
                              "--offline",          data,    "--env",        "reach",
                              "--updates-per-task", "4000",  "--eval-every", "500",
                              "--eval-episodes",    "1",     "--hidden",     "32",
                              "--layers",           "1",     "--quiet",      NULL});
        _exit(127);
    }
    /* Poll until the first evaluation is stored, then interrupt. */
    int evals = 0;
    for (int i = 0; i < 1200 && evals == 0; i++) {
        usleep(50000);
        struct stat sb;
        if (stat(db, &sb) != 0) continue;
        sqlite3 *h = NULL;
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(h, 2000);
            sqlite3_stmt *q = NULL;
            if (sqlite3_prepare_v2(h, "SELECT count(*) FROM evals", -1, &q, NULL) ==
                    SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW)
                evals = sqlite3_column_int(q, 0);
            sqlite3_finalize(q);
        }
        sqlite3_close(h);
    }
    ck_assert_msg(evals > 0, "no evaluation within 60 s");
    kill(pid, SIGINT);
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_int_eq(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 130);
    ck_assert_int_eq((int)sql_double(db, "SELECT status = 'interrupted' FROM runs"), 1);
    double ck = sql_double(db, "SELECT max(step) FROM checkpoints");
    ck_assert_msg(ck >= 500 && ck < 4000, "checkpoint at %g", ck);
    ck_assert_int_eq(run_cli(err_path, (char *const[]){(char *)bin(), "train", "--db", db,
                                                       "--resume", "1", "--quiet", NULL}),
                     0);
    ck_assert_int_eq((int)sql_double(db, "SELECT status = 'finished' FROM runs"), 1);
    ck_assert_int_eq((int)sql_double(db, "SELECT count(*) FROM evals"), 8);
    ck_assert_int_eq((int)sql_double(db, "SELECT count(DISTINCT step) FROM evals"), 8);
    ck_assert_int_eq((int)sql_double(db, "SELECT max(step) FROM evals"), 4000);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("offline");
    TCase *tc = tcase_create("bc");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bc_nll_fd);
    tcase_add_test(tc, test_bc_mse_fd);
    tcase_add_test(tc, test_bc_value);
    tcase_add_test(tc, test_bc_hooks_actor_only);
    tcase_add_test(tc, test_bc_fits_expert);
    tcase_add_test(tc, test_bc_l2m_fd);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("runner");
    tcase_set_timeout(tr, 300);
    tcase_add_test(tr, test_offline_learns_reach);
    tcase_add_test(tr, test_offline_bad_datasets);
    tcase_add_test(tr, test_offline_continual_report);
    tcase_add_test(tr, test_offline_methods_and_base);
    tcase_add_test(tr, test_offline_interrupt_resume);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
