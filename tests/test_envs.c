/* Tests for envs/: registry, determinism, and the physics and rewards of the
 * built-in tasks checked against facts derived by hand (the pendulum's
 * equation of motion, the cheetah's forward velocity from qpos). */
#include "crl/env.h"

#include <check.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Facts from the task specification, not read back from the model. */
#define PEND_G          10.0
#define PEND_L          1.0
#define PEND_M          1.0
#define PEND_MAX_TORQUE 2.0
#define PHYS_DT         0.01
#define FRAME_SKIP      5

static crl_env_spec *make_spec(const char *name) {
    crl_env_spec *s = NULL;
    crl_err err = {0};
    int rc = crl_env_spec_create(name, &s, &err);
    ck_assert_msg(rc == CRL_OK, "spec %s: %s", name, err.msg);
    ck_assert_ptr_nonnull(s);
    return s;
}

static crl_env *make_env(const crl_env_spec *s) {
    crl_env *e = NULL;
    crl_err err = {0};
    int rc = crl_env_create(s, &e, &err);
    ck_assert_msg(rc == CRL_OK, "env: %s", err.msg);
    return e;
}

static float clipf(float a) {
    return a > 1.0f ? 1.0f : (a < -1.0f ? -1.0f : a);
}

/* ---- registry and sizes --------------------------------------------------- */

START_TEST(test_list_and_dims) {
    const crl_env_entry *list = NULL;
    int n = crl_env_list(&list);
    ck_assert_int_ge(n, 2);
    int seen_pend = 0, seen_cheetah = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(list[i].name);
        ck_assert_ptr_nonnull(list[i].description);
        ck_assert_int_gt((int)strlen(list[i].description), 0);
        seen_pend += strcmp(list[i].name, "pendulum") == 0;
        seen_cheetah += strcmp(list[i].name, "halfcheetah") == 0;

        /* Every listed env compiles, and its model agrees with its sizes. */
        crl_env_spec *s = make_spec(list[i].name);
        ck_assert_str_eq(crl_env_spec_name(s), list[i].name);
        const mjModel *m = crl_env_model(s);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(crl_env_act_dim(s), m->nu);
        ck_assert_int_gt(crl_env_obs_dim(s), 0);
        ck_assert_int_gt(crl_env_max_steps(s), 0);
        ck_assert_int_gt(crl_env_frame_skip(s), 0);
        crl_env *e = make_env(s);
        ck_assert_ptr_eq(crl_env_get_spec(e), s);
        int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
        float *obs = calloc((size_t)od, sizeof *obs),
              *act = calloc((size_t)ad, sizeof *act);
        crl_step_info info;
        crl_env_reset(e, 1, obs);
        ck_assert_int_eq(crl_env_steps_taken(e), 0);
        crl_env_step(e, act, obs, &info);
        ck_assert_int_eq(crl_env_steps_taken(e), 1);
        for (int k = 0; k < od; k++) ck_assert(isfinite(obs[k]));
        ck_assert(isfinite(info.reward));
        free(obs);
        free(act);
        crl_env_free(e);
        crl_env_spec_free(s);
    }
    ck_assert_int_eq(seen_pend, 1);
    ck_assert_int_eq(seen_cheetah, 1);

    crl_env_spec *p = make_spec("pendulum");
    ck_assert_int_eq(crl_env_obs_dim(p), 3);
    ck_assert_int_eq(crl_env_act_dim(p), 1);
    ck_assert_int_eq(crl_env_max_steps(p), 200);
    ck_assert_int_eq(crl_env_frame_skip(p), 5);
    ck_assert_double_eq(crl_env_model(p)->opt.timestep, PHYS_DT);
    crl_env_spec_free(p);

    crl_env_spec *c = make_spec("halfcheetah");
    ck_assert_int_eq(crl_env_obs_dim(c), 17);
    ck_assert_int_eq(crl_env_act_dim(c), 6);
    ck_assert_int_eq(crl_env_max_steps(c), 1000);
    ck_assert_int_eq(crl_env_frame_skip(c), 5);
    ck_assert_double_eq(crl_env_model(c)->opt.timestep, PHYS_DT);
    crl_env_spec_free(c);
}
END_TEST

START_TEST(test_unknown_name) {
    crl_env_spec *s = (crl_env_spec *)&s; /* must be overwritten with NULL */
    crl_err err = {0};
    int rc = crl_env_spec_create("no-such-env", &s, &err);
    ck_assert_int_eq(rc, CRL_ENOTFOUND);
    ck_assert_int_eq(err.code, CRL_ENOTFOUND);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.msg, "no-such-env"));
    ck_assert_ptr_nonnull(strstr(err.msg, "pendulum"));
    ck_assert_ptr_nonnull(strstr(err.msg, "halfcheetah"));
    /* NULL err is allowed. */
    ck_assert_int_eq(crl_env_spec_create("no-such-env", &s, NULL), CRL_ENOTFOUND);
    ck_assert_int_eq(crl_env_spec_create(NULL, &s, NULL), CRL_EINVAL);
}
END_TEST

/* ---- determinism ----------------------------------------------------------- */

static const char *const ENV_NAMES[] = {"pendulum", "halfcheetah"};

/* Same seed, same actions: bit-identical observations and outcomes over a
 * full episode, for two instances of separately compiled specs stepping
 * interleaved. A third instance runs the episode alone afterwards. */
START_TEST(test_determinism_interleaved) {
    const char *name = ENV_NAMES[_i];
    crl_env_spec *s1 = make_spec(name), *s2 = make_spec(name);
    crl_env *a = make_env(s1), *b = make_env(s2), *c = make_env(s1);
    int od = crl_env_obs_dim(s1), ad = crl_env_act_dim(s1), T = crl_env_max_steps(s1);
    float *acts = malloc(sizeof(float) * (size_t)(ad * T));
    crl_rng r;
    crl_rng_seed(&r, 99);
    for (int i = 0; i < ad * T; i++) acts[i] = (float)crl_rng_range(&r, -1.2, 1.2);
    float *oa = malloc(sizeof(float) * (size_t)od * (size_t)(T + 1));
    float *ob = malloc(sizeof(float) * (size_t)od),
          *oc = malloc(sizeof(float) * (size_t)od);
    crl_step_info *ia = malloc(sizeof *ia * (size_t)T);

    /* Put b in a different state first, so reset must erase history. */
    crl_env_reset(b, 5, ob);
    for (int t = 0; t < 17; t++) crl_env_step(b, acts + t * ad, ob, &ia[0]);

    crl_env_reset(a, 1234, oa);
    crl_env_reset(b, 1234, ob);
    ck_assert_int_eq(memcmp(oa, ob, sizeof(float) * (size_t)od), 0);
    ck_assert_double_eq(crl_env_data(b)->time, 0.0);
    ck_assert_int_eq(crl_env_steps_taken(b), 0);
    for (int t = 0; t < T; t++) {
        crl_step_info ib;
        crl_env_step(a, acts + t * ad, oa + (t + 1) * od, &ia[t]);
        crl_env_step(b, acts + t * ad, ob, &ib);
        ck_assert_msg(memcmp(oa + (t + 1) * od, ob, sizeof(float) * (size_t)od) == 0,
                      "%s: obs differ at step %d", name, t);
        ck_assert_int_eq(memcmp(&ia[t], &ib, sizeof ib), 0);
    }
    ck_assert_int_eq(ia[T - 1].truncated, 1);

    crl_env_reset(c, 1234, oc);
    ck_assert_int_eq(memcmp(oa, oc, sizeof(float) * (size_t)od), 0);
    for (int t = 0; t < T; t++) {
        crl_step_info ic;
        crl_env_step(c, acts + t * ad, oc, &ic);
        ck_assert_int_eq(memcmp(oa + (t + 1) * od, oc, sizeof(float) * (size_t)od), 0);
        ck_assert(ic.reward == ia[t].reward);
    }

    /* Different seeds give different starts. */
    crl_env_reset(a, 1, oa);
    crl_env_reset(b, 2, ob);
    ck_assert_int_ne(memcmp(oa, ob, sizeof(float) * (size_t)od), 0);

    free(acts);
    free(oa);
    free(ob);
    free(oc);
    free(ia);
    crl_env_free(a);
    crl_env_free(b);
    crl_env_free(c);
    crl_env_spec_free(s1);
    crl_env_spec_free(s2);
}
END_TEST

/* Instances of one spec stepping on separate threads give the same episode
 * as a serial run (the spec is read-only, all mutable state is per instance). */
typedef struct {
    const crl_env_spec *spec;
    float obs[17];
    double sum;
} thread_run;

static void *run_episode(void *arg) {
    thread_run *tr = arg;
    crl_env *e = NULL;
    if (crl_env_create(tr->spec, &e, NULL)) return NULL;
    crl_rng r;
    crl_rng_seed(&r, 4);
    float a[6];
    crl_step_info info = {0};
    crl_env_reset(e, 21, tr->obs);
    tr->sum = 0;
    while (!info.truncated) {
        for (int k = 0; k < 6; k++) a[k] = (float)crl_rng_range(&r, -1, 1);
        crl_env_step(e, a, tr->obs, &info);
        tr->sum += info.reward;
    }
    crl_env_free(e);
    return tr;
}

START_TEST(test_threads) {
    crl_env_spec *s = make_spec("halfcheetah");
    thread_run serial = {.spec = s}, par[2] = {{.spec = s}, {.spec = s}};
    ck_assert_ptr_nonnull(run_episode(&serial));
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_episode, &par[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *ret = NULL;
        ck_assert_int_eq(pthread_join(th[i], &ret), 0);
        ck_assert_ptr_nonnull(ret);
        ck_assert_int_eq(memcmp(par[i].obs, serial.obs, sizeof serial.obs), 0);
        ck_assert(par[i].sum == serial.sum);
    }
    crl_env_spec_free(s);
}
END_TEST

/* A NaN action is treated as 0 and out-of-range values as the bound. */
START_TEST(test_action_sanitising) {
    const char *name = ENV_NAMES[_i];
    crl_env_spec *s = make_spec(name);
    crl_env *a = make_env(s), *b = make_env(s);
    int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    float bad[8], good[8], oa[32], ob[32];
    for (int k = 0; k < ad; k++) {
        bad[k] = (k % 3 == 0) ? NAN : (k % 3 == 1 ? 7.0f : -INFINITY);
        good[k] = (k % 3 == 0) ? 0.0f : (k % 3 == 1 ? 1.0f : -1.0f);
    }
    crl_step_info ia, ib;
    crl_env_reset(a, 3, oa);
    crl_env_reset(b, 3, ob);
    for (int t = 0; t < 10; t++) {
        crl_env_step(a, bad, oa, &ia);
        crl_env_step(b, good, ob, &ib);
        ck_assert_int_eq(memcmp(oa, ob, sizeof(float) * (size_t)od), 0);
        ck_assert(ia.reward == ib.reward);
        ck_assert(isfinite(ia.reward));
    }
    crl_env_free(a);
    crl_env_free(b);
    crl_env_spec_free(s);
}
END_TEST

/* Stepping allocates nothing through MuJoCo (mj_makeData etc. would show
 * here); crl's own step code has no allocation call by construction. */
static long mj_allocs;
static void *counting_malloc(size_t n) {
    mj_allocs++;
    return malloc(n);
}

START_TEST(test_step_does_not_allocate) {
    const char *name = ENV_NAMES[_i];
    crl_env_spec *s = make_spec(name);
    crl_env *e = make_env(s);
    float obs[32], a[8] = {0};
    crl_step_info info;
    crl_env_reset(e, 1, obs);
    mj_allocs = 0;
    mju_user_malloc = counting_malloc;
    for (int t = 0; t < 300; t++) {
        for (int k = 0; k < crl_env_act_dim(s); k++) a[k] = (float)sin(0.1 * t + k);
        crl_env_step(e, a, obs, &info);
        if (info.truncated) crl_env_reset(e, 2, obs);
    }
    mju_user_malloc = NULL;
    ck_assert_int_eq(mj_allocs, 0);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- pendulum physics ------------------------------------------------------ */

/* MuJoCo's default integrator is semi-implicit Euler: v += h a(q); q += h v.
 * For a point mass m at distance l, angle 0 upright:
 *   theta'' = (g/l) sin(theta) + u / (m l^2). */
static void pend_hand(double *th, double *w, double u, int substeps) {
    for (int k = 0; k < substeps; k++) {
        double acc = PEND_G / PEND_L * sin(*th) + u / (PEND_M * PEND_L * PEND_L);
        *w += PHYS_DT * acc;
        *th += PHYS_DT * *w;
    }
}

static void pend_set(crl_env *e, double th, double w) {
    mjData *d = crl_env_data(e);
    d->qpos[0] = th;
    d->qvel[0] = w;
    mj_forward(crl_env_model(crl_env_get_spec(e)), d);
}

START_TEST(test_pendulum_free_swing) {
    crl_env_spec *s = make_spec("pendulum");
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    const double starts[][2] = {{0.5, 0.0}, {2.8, 0.0}, {-1.3, 2.0}, {3.0, -0.7}};
    for (int c = 0; c < 4; c++) {
        float obs[3], zero[1] = {0.0f};
        crl_step_info info;
        crl_env_reset(e, 7, obs);
        pend_set(e, starts[c][0], starts[c][1]);
        double th = starts[c][0], w = starts[c][1];
        for (int t = 0; t < 6; t++) {
            crl_env_step(e, zero, obs, &info);
            pend_hand(&th, &w, 0.0, FRAME_SKIP);
            /* The bob's rotational inertia (1e-9) is the only difference. */
            ck_assert_msg(fabs(d->qpos[0] - th) < 1e-7, "case %d step %d: %.12f vs %.12f",
                          c, t, d->qpos[0], th);
            ck_assert(fabs(d->qvel[0] - w) < 1e-7);
            ck_assert(fabs(obs[0] - cos(th)) < 1e-6);
            ck_assert(fabs(obs[1] - sin(th)) < 1e-6);
            ck_assert(fabs(obs[2] - w) < 1e-5);
        }
    }
    /* Gravity pulls away from upright: from a small positive angle the pole
     * accelerates further positive, and mostly by (g/l) theta. */
    float obs[3], zero[1] = {0.0f};
    crl_step_info info;
    crl_env_reset(e, 7, obs);
    pend_set(e, 0.01, 0.0);
    crl_env_step(e, zero, obs, &info);
    double w_expect = PEND_G / PEND_L * 0.01 * FRAME_SKIP * PHYS_DT;
    ck_assert(fabs(d->qvel[0] - w_expect) < 0.02 * w_expect);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_pendulum_torque) {
    crl_env_spec *s = make_spec("pendulum");
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[3];
    crl_step_info info;

    /* From upright rest, action +1 is a torque of +2 N m: angular
     * acceleration 2 / (m l^2) = 2 rad/s^2 (gravity adds < 1% in 0.05 s). */
    const float acts[] = {1.0f, -1.0f, 0.5f, 3.0f};
    const double torque[] = {2.0, -2.0, 1.0, 2.0};
    for (int c = 0; c < 4; c++) {
        crl_env_reset(e, 1, obs);
        pend_set(e, 0.0, 0.0);
        float a[1] = {acts[c]};
        crl_env_step(e, a, obs, &info);
        ck_assert(fabs(d->ctrl[0] * 2.0 - torque[c]) < 1e-12);
        double acc = torque[c] / (PEND_M * PEND_L * PEND_L);
        double T = FRAME_SKIP * PHYS_DT;
        ck_assert_msg(fabs(d->qvel[0] - acc * T) < 0.01 * fabs(acc * T),
                      "case %d: %g vs %g", c, d->qvel[0], acc * T);
        double th = 0.0, w = 0.0;
        pend_hand(&th, &w, torque[c], FRAME_SKIP);
        ck_assert(fabs(d->qpos[0] - th) < 1e-9);
        ck_assert(fabs(d->qvel[0] - w) < 1e-9);
    }
    /* Max torque cannot hold the pole horizontal (2 < m g l = 10). */
    crl_env_reset(e, 1, obs);
    pend_set(e, M_PI / 2, 0.0);
    float back[1] = {-1.0f};
    crl_env_step(e, back, obs, &info);
    ck_assert(d->qvel[0] > 0.0);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_pendulum_reward_and_success) {
    crl_env_spec *s = make_spec("pendulum");
    crl_env *e = make_env(s);
    crl_rng r;
    crl_rng_seed(&r, 5);
    int successes = 0;
    for (int ep = 0; ep < 5; ep++) {
        float obs[3];
        crl_step_info info;
        crl_env_reset(e, 100 + (uint64_t)ep, obs);
        for (int t = 0; t < 200; t++) {
            float a[1] = {(float)crl_rng_range(&r, -1.5, 1.5)};
            crl_env_step(e, a, obs, &info);
            double th = atan2(obs[1], obs[0]); /* wrapped to [-pi, pi] */
            double thdot = obs[2];
            double u = PEND_MAX_TORQUE * clipf(a[0]);
            double want = -(th * th + 0.1 * thdot * thdot + 0.001 * u * u);
            ck_assert_msg(fabs(info.reward - want) < 1e-4 * (1.0 + fabs(want)),
                          "step %d: reward %g, by hand %g", t, info.reward, want);
            ck_assert(info.reward <= 0.0f);
            int succ = fabs(th) < 0.3 && fabs(thdot) < 1.0;
            int near_edge = fabs(fabs(th) - 0.3) < 1e-5 || fabs(fabs(thdot) - 1.0) < 1e-5;
            if (!near_edge) ck_assert_int_eq(info.success, succ);
            successes += info.success;
            ck_assert_int_eq(info.terminal, 0);
        }
    }
    (void)successes;

    /* Upright and still, no torque: reward 0 and a success. */
    float obs[3], zero[1] = {0.0f};
    crl_step_info info;
    crl_env_reset(e, 1, obs);
    pend_set(e, 0.0, 0.0);
    crl_env_step(e, zero, obs, &info);
    ck_assert(fabs(info.reward) < 1e-12);
    ck_assert_int_eq(info.success, 1);
    /* Hanging down, still: reward about -pi^2, no success. */
    crl_env_reset(e, 1, obs);
    pend_set(e, M_PI, 0.0);
    crl_env_step(e, zero, obs, &info);
    ck_assert(fabs(info.reward + M_PI * M_PI) < 1e-4);
    ck_assert_int_eq(info.success, 0);
    /* The angle is wrapped: 2 pi + 0.1 is 0.1 from upright. */
    crl_env_reset(e, 1, obs);
    pend_set(e, 2 * M_PI + 0.1, 0.0);
    crl_env_step(e, zero, obs, &info);
    ck_assert(info.reward > -0.02f);
    ck_assert_int_eq(info.success, 1);
    /* Passing upright too fast is no success; nor is resting 0.35 off it. */
    crl_env_reset(e, 1, obs);
    pend_set(e, -0.05, 2.0);
    crl_env_step(e, zero, obs, &info);
    ck_assert(fabs(atan2(obs[1], obs[0])) < 0.3);
    ck_assert_int_eq(info.success, 0);
    crl_env_reset(e, 1, obs);
    pend_set(e, -0.4, 0.8);
    crl_env_step(e, zero, obs, &info);
    ck_assert(fabs(atan2(obs[1], obs[0])) > 0.3 && fabs(obs[2]) < 1.0);
    ck_assert_int_eq(info.success, 0);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* The task is solvable as specified: a hand-written controller that reads
 * only the observation pumps energy (E = w^2/2 + (g/l)(cos th - 1), 0 at
 * upright rest) with bang-bang torque, then catches the pole with PD. */
START_TEST(test_pendulum_scripted_swing_up) {
    crl_env_spec *s = make_spec("pendulum");
    crl_env *e = make_env(s);
    int balanced = 0;
    for (int ep = 0; ep < 20; ep++) {
        float obs[3];
        crl_step_info info = {0};
        int tail_ok = 1;
        crl_env_reset(e, 500 + (uint64_t)ep, obs);
        for (int t = 0; t < 200; t++) {
            double th = atan2(obs[1], obs[0]), w = obs[2];
            double E = 0.5 * w * w + PEND_G / PEND_L * (cos(th) - 1.0), u;
            if (fabs(th) < 0.6 && E > -3.0)
                u = -(40.0 * th + 10.0 * w) / PEND_MAX_TORQUE;
            else
                u = (w * -E >= 0.0) ? 1.0 : -1.0;
            float a[1] = {(float)u};
            crl_env_step(e, a, obs, &info);
            if (t >= 180 && !info.success) tail_ok = 0;
        }
        balanced += tail_ok;
    }
    ck_assert_msg(balanced >= 18, "balanced at the end of only %d/20 episodes", balanced);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_pendulum_reset_distribution) {
    crl_env_spec *s = make_spec("pendulum");
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    double thmin = 10, thmax = -10, wmin = 10, wmax = -10;
    for (uint64_t seed = 0; seed < 2000; seed++) {
        float obs[3];
        crl_env_reset(e, seed, obs);
        double th = d->qpos[0], w = d->qvel[0];
        ck_assert(th >= -M_PI && th <= M_PI);
        ck_assert(w >= -1.0 && w <= 1.0);
        ck_assert(fabs(obs[0] - cos(th)) < 1e-6 && fabs(obs[1] - sin(th)) < 1e-6);
        ck_assert_double_eq(d->time, 0.0);
        thmin = fmin(thmin, th);
        thmax = fmax(thmax, th);
        wmin = fmin(wmin, w);
        wmax = fmax(wmax, w);
    }
    ck_assert(thmin < -3.0 && thmax > 3.0);
    ck_assert(wmin < -0.95 && wmax > 0.95);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- halfcheetah ------------------------------------------------------------ */

START_TEST(test_cheetah_model_facts) {
    crl_env_spec *s = make_spec("halfcheetah");
    const mjModel *m = crl_env_model(s);
    ck_assert_int_eq(m->nq, 9);
    ck_assert_int_eq(m->nv, 9);
    ck_assert_int_eq(m->nu, 6);
    const double gears[6] = {120, 90, 60, 120, 60, 30};
    for (int i = 0; i < 6; i++) {
        ck_assert_double_eq(m->actuator_gear[6 * i], gears[i]);
        ck_assert_int_eq(m->actuator_ctrllimited[i], 1);
        ck_assert_double_eq(m->actuator_ctrlrange[2 * i], -1.0);
        ck_assert_double_eq(m->actuator_ctrlrange[2 * i + 1], 1.0);
    }
    double total = 0;
    for (int b = 0; b < m->nbody; b++) total += m->body_mass[b];
    ck_assert(fabs(total - 14.0) < 1e-9);
    ck_assert_int_eq(m->jnt_type[0], mjJNT_SLIDE);
    ck_assert_int_eq(m->jnt_type[1], mjJNT_SLIDE);
    ck_assert_int_eq(m->jnt_type[2], mjJNT_HINGE);
    ck_assert_int_eq(m->opt.integrator, mjINT_EULER);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_cheetah_reward_obs) {
    crl_env_spec *s = make_spec("halfcheetah");
    crl_env *e = make_env(s);
    const mjModel *m = crl_env_model(s);
    mjData *d = crl_env_data(e);
    crl_rng r;
    crl_rng_seed(&r, 11);
    float obs[17], a[6];
    crl_step_info info;
    crl_env_reset(e, 42, obs);
    double moved = 0;
    for (int t = 0; t < 300; t++) {
        for (int k = 0; k < 6; k++) a[k] = (float)crl_rng_range(&r, -1.3, 1.3);
        double x0 = d->qpos[0];
        crl_env_step(e, a, obs, &info);
        double x1 = d->qpos[0];
        double cost = 0;
        for (int k = 0; k < 6; k++) {
            cost += (double)clipf(a[k]) * clipf(a[k]);
            /* ctrlrange [-1, 1] with gear: the action is the ctrl. */
            ck_assert(d->ctrl[k] == clipf(a[k]));
        }
        double want = (x1 - x0) / (FRAME_SKIP * PHYS_DT) - 0.1 * cost;
        ck_assert_msg(fabs(info.reward - want) < 1e-5 * (1.0 + fabs(want)),
                      "step %d: reward %g, by hand %g", t, info.reward, want);
        ck_assert_int_eq(info.success, 0);
        ck_assert_int_eq(info.terminal, 0);
        moved += fabs(x1 - x0);
        for (int i = 1; i < 9; i++) ck_assert(obs[i - 1] == (float)d->qpos[i]);
        for (int i = 0; i < 9; i++) ck_assert(obs[8 + i] == (float)d->qvel[i]);
        ck_assert_double_eq_tol(d->time, (t + 1) * FRAME_SKIP * PHYS_DT, 1e-9);
    }
    ck_assert(moved > 0.1); /* the reward test is not vacuous */
    (void)m;
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_cheetah_reset_distribution) {
    crl_env_spec *s = make_spec("halfcheetah");
    crl_env *e = make_env(s);
    const mjModel *m = crl_env_model(s);
    mjData *d = crl_env_data(e);
    double sq = 0, maxdev = 0;
    int n = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        float obs[17];
        crl_env_reset(e, seed, obs);
        for (int i = 0; i < 9; i++) {
            double dev = d->qpos[i] - m->qpos0[i];
            ck_assert(fabs(dev) <= 0.1);
            maxdev = fmax(maxdev, fabs(dev));
            sq += d->qvel[i] * d->qvel[i];
            n++;
        }
        for (int i = 1; i < 9; i++) ck_assert(obs[i - 1] == (float)d->qpos[i]);
    }
    ck_assert(maxdev > 0.09);
    /* qvel = 0.1 N(0, 1): mean square 0.01, within a few standard errors. */
    double ms = sq / n;
    ck_assert_msg(fabs(ms - 0.01) < 0.001, "qvel mean square %g", ms);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* With no action the cheetah drops onto the floor and comes to rest on it. */
START_TEST(test_cheetah_settles) {
    crl_env_spec *s = make_spec("halfcheetah");
    crl_env *e = make_env(s);
    const mjModel *m = crl_env_model(s);
    mjData *d = crl_env_data(e);
    float obs[17], zero[6] = {0};
    crl_step_info info;
    crl_env_reset(e, 3, obs);
    int torso = mj_name2id(m, mjOBJ_BODY, "torso");
    ck_assert_int_ge(torso, 0);
    for (int t = 0; t < 200; t++) {
        crl_env_step(e, zero, obs, &info);
        ck_assert(d->xpos[3 * torso + 2] > 0.0); /* never through the floor */
    }
    double speed = 0;
    for (int i = 0; i < 9; i++) speed = fmax(speed, fabs(d->qvel[i]));
    ck_assert_msg(speed < 0.05, "still moving: %g", speed);
    ck_assert(d->xpos[3 * torso + 2] > 0.2 && d->xpos[3 * torso + 2] < 0.8);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- episode ends ------------------------------------------------------------ */

START_TEST(test_truncation) {
    const char *name = ENV_NAMES[_i];
    const int expect_len = _i == 0 ? 200 : 1000;
    crl_env_spec *s = make_spec(name);
    crl_env *e = make_env(s);
    int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    float *obs = calloc((size_t)od, sizeof *obs), *a = calloc((size_t)ad, sizeof *a);
    crl_rng r;
    crl_rng_seed(&r, 8);
    for (int ep = 0; ep < 2; ep++) {
        crl_env_reset(e, (uint64_t)ep, obs);
        for (int t = 1; t <= expect_len; t++) {
            for (int k = 0; k < ad; k++) a[k] = (float)crl_rng_range(&r, -1, 1);
            crl_step_info info;
            crl_env_step(e, a, obs, &info);
            ck_assert_int_eq(crl_env_steps_taken(e), t);
            ck_assert_int_eq(info.terminal, 0);
            ck_assert_msg(info.truncated == (t == expect_len),
                          "%s: truncated=%d at step %d", name, info.truncated, t);
        }
    }
    free(obs);
    free(a);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* Random actions over many episodes: everything stays finite. */
START_TEST(test_random_finite) {
    const char *name = ENV_NAMES[_i];
    crl_env_spec *s = make_spec(name);
    crl_env *e = make_env(s);
    int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    float *obs = calloc((size_t)od, sizeof *obs), *a = calloc((size_t)ad, sizeof *a);
    crl_rng r;
    crl_rng_seed(&r, 77);
    uint64_t seed = 1;
    int episodes = 0;
    crl_env_reset(e, seed, obs);
    for (int t = 0; t < 5000; t++) {
        for (int k = 0; k < ad; k++) a[k] = (float)crl_rng_range(&r, -1, 1);
        crl_step_info info;
        crl_env_step(e, a, obs, &info);
        ck_assert(isfinite(info.reward));
        for (int k = 0; k < od; k++)
            ck_assert_msg(isfinite(obs[k]), "%s step %d", name, t);
        ck_assert_int_eq(info.terminal, 0);
        if (info.truncated) {
            episodes++;
            crl_env_reset(e, ++seed, obs);
        }
    }
    ck_assert_int_eq(episodes, 5000 / crl_env_max_steps(s));
    free(obs);
    free(a);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

static Suite *envs_suite(void) {
    Suite *s = suite_create("envs");
    TCase *tc = tcase_create("envs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_list_and_dims);
    tcase_add_test(tc, test_unknown_name);
    tcase_add_loop_test(tc, test_determinism_interleaved, 0, 2);
    tcase_add_test(tc, test_threads);
    tcase_add_loop_test(tc, test_action_sanitising, 0, 2);
    tcase_add_loop_test(tc, test_step_does_not_allocate, 0, 2);
    tcase_add_test(tc, test_pendulum_free_swing);
    tcase_add_test(tc, test_pendulum_torque);
    tcase_add_test(tc, test_pendulum_reward_and_success);
    tcase_add_test(tc, test_pendulum_scripted_swing_up);
    tcase_add_test(tc, test_pendulum_reset_distribution);
    tcase_add_test(tc, test_cheetah_model_facts);
    tcase_add_test(tc, test_cheetah_reward_obs);
    tcase_add_test(tc, test_cheetah_reset_distribution);
    tcase_add_test(tc, test_cheetah_settles);
    tcase_add_loop_test(tc, test_truncation, 0, 2);
    tcase_add_loop_test(tc, test_random_finite, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(envs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
