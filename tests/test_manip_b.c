/* Tests for the manipulation tasks of part B (envs/manip_b.c): hammer,
 * faucet-close/-open, handle-press(-side), window-close/-open,
 * peg-unplug-side, drawer-open, button-press-topdown.
 *
 * The reference facts are the task specification's (docs/tasks-manip-b.md),
 * turned into joint conditions by hand, and checked against the joint
 * positions directly rather than against the task code's own distances:
 *   hammer          nail slide > 0.09
 *   faucet          knob on a 0.1 m arm: within 0.07 of the goal position
 *                   <=> |q - q_goal| <= 2 asin(0.07 / (2 * 0.1)) = 0.7152 rad
 *   window          |q - q_goal| <= 0.05 (the handle moves with the sash)
 *   handle press    slide <= -0.12 + 0.02
 *   peg unplug      slide >= 0.15 - 0.07
 *   drawer open     slide <= -0.15 + 0.03
 *   button press    slide <= -0.06 + 0.024 */
#include "crl/env.h"

#include <check.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Count allocations made anywhere in the process (crl and MuJoCo alike) by
 * interposing the allocator in this executable (glibc: forwarded to
 * __libc_*). Not under AddressSanitizer, which owns malloc itself. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_MALLOC_COUNT 0
#endif
#endif
#if !defined(HAVE_MALLOC_COUNT) && defined(__SANITIZE_ADDRESS__)
#define HAVE_MALLOC_COUNT 0
#endif
#if !defined(HAVE_MALLOC_COUNT) && defined(__GLIBC__)
#define HAVE_MALLOC_COUNT 1
#endif
#ifndef HAVE_MALLOC_COUNT
#define HAVE_MALLOC_COUNT 0
#endif

#if HAVE_MALLOC_COUNT
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile long g_alloc_calls;
void *malloc(size_t n) {
    g_alloc_calls++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    g_alloc_calls++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    g_alloc_calls++;
    return __libc_realloc(p, n);
}
#endif

/* The scripted policy hook (envs/task.h; not in the public header). */
int crl_env_scripted_action(crl_env *e, float *act);

#define OBS_DIM    39
#define ACT_DIM    4
#define EP_STEPS   200
#define REWARD_MAX 10.0f
#define FAUCET_TOL 0.7152 /* 2 asin(0.35), see the top of this file */

typedef struct {
    const char *name;
    const char *group;
    const char *joint; /* the joint whose position decides success */
    double lo, hi;     /* success <=> lo <= q <= hi */
    /* Randomisation of the object (hammer) or fixture, from the spec. */
    double xlo, xhi, ylo, yhi;
    double hand_lo_z; /* lowest mocap z the action mapping allows */
} task_fact;

static const task_fact TASKS[] = {
    {"hammer", "manipulation", "nail_slide", 0.09, 1.0, -0.1, 0.1, 0.4, 0.5, 0.05},
    {"faucet-close", "manipulation", "faucet_hinge", -FAUCET_TOL, FAUCET_TOL, -0.1, 0.1,
     0.8, 0.85, -0.15},
    {"handle-press-side", "manipulation", "handle_slide", -1.0, -0.10, -0.35, -0.25, 0.65,
     0.75, 0.05},
    {"window-close", "manipulation", "window_slide", -1.0, 0.05, 0.0, 0.0, 0.75, 0.9,
     0.05},
    {"peg-unplug-side", "manipulation", "peg_slide", 0.08, 1.0, -0.25, -0.15, 0.6, 0.8,
     0.05},
    {"faucet-open", "pretrain", "faucet_hinge", -M_PI / 2 - FAUCET_TOL,
     -M_PI / 2 + FAUCET_TOL, -0.1, 0.1, 0.8, 0.85, -0.15},
    {"window-open", "pretrain", "window_slide", 0.15, 1.0, 0.0, 0.0, 0.75, 0.9, 0.05},
    {"handle-press", "pretrain", "handle_slide", -1.0, -0.10, -0.1, 0.1, 0.8, 0.9, 0.05},
    {"drawer-open", "pretrain", "drawer_slide", -1.0, -0.12, -0.1, 0.1, 0.9, 0.9, 0.05},
    {"button-press-topdown", "pretrain", "button_slide", -1.0, -0.036, -0.1, 0.1, 0.8,
     0.9, 0.05},
};
#define NTASKS ((int)(sizeof TASKS / sizeof TASKS[0]))

/* The body whose placement is randomised: the free hammer, or the fixture's
 * mocap body. */
static const char *const PLACED[NTASKS] = {
    "hammer",      "faucet_base",  "handle_housing", "window_frame",   "peg_socket",
    "faucet_base", "window_frame", "handle_housing", "drawer_cabinet", "button_box"};

static crl_env_spec *make_spec(const char *name) {
    crl_env_spec *s = NULL;
    crl_err err = {0};
    int rc = crl_env_spec_create(name, &s, &err);
    ck_assert_msg(rc == CRL_OK, "spec %s: %s", name, err.msg);
    return s;
}

static crl_env *make_env(const crl_env_spec *s) {
    crl_env *e = NULL;
    crl_err err = {0};
    int rc = crl_env_create(s, &e, &err);
    ck_assert_msg(rc == CRL_OK, "env: %s", err.msg);
    return e;
}

static int joint_qadr(const crl_env_spec *s, const char *joint) {
    const mjModel *m = crl_env_model(s);
    int j = mj_name2id(m, mjOBJ_JOINT, joint);
    ck_assert_msg(j >= 0, "no joint %s", joint);
    return m->jnt_qposadr[j];
}

/* Position of the placed body after reset (mocap or free joint). */
static void placed_xy(crl_env *e, const char *body, double xy[2]) {
    const mjModel *m = crl_env_model(crl_env_get_spec(e));
    const mjData *d = crl_env_data(e);
    int b = mj_name2id(m, mjOBJ_BODY, body);
    ck_assert_int_ge(b, 0);
    xy[0] = d->xpos[3 * b];
    xy[1] = d->xpos[3 * b + 1];
}

/* ---- registry and sizes ------------------------------------------------------ */

START_TEST(test_listed) {
    const task_fact *f = &TASKS[_i];
    const crl_env_entry *list;
    int n = crl_env_list(&list), found = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i].name, f->name)) continue;
        found++;
        ck_assert_str_eq(list[i].group, f->group);
        ck_assert_int_eq(list[i].obs_dim, OBS_DIM);
        ck_assert_int_eq(list[i].act_dim, ACT_DIM);
        ck_assert_int_eq(list[i].has_scripted, 1);
    }
    ck_assert_int_eq(found, 1);
    crl_env_spec *s = make_spec(f->name);
    ck_assert_int_eq(crl_env_obs_dim(s), OBS_DIM);
    ck_assert_int_eq(crl_env_act_dim(s), ACT_DIM);
    ck_assert_int_eq(crl_env_max_steps(s), EP_STEPS);
    ck_assert_int_eq(crl_env_frame_skip(s), 5);
    ck_assert_double_eq(crl_env_model(s)->opt.timestep, 0.0025);
    crl_env_spec_free(s);
}
END_TEST

/* ---- the scripted policy solves the task; success is the joint test --------- */

/* Check one step's outcome against the joint: success <=> lo <= q <= hi
 * (with a hair of slack either way so that rounding at the boundary cannot
 * flip the verdict), reward in [0, 10] and exactly 10 on success. */
static void check_outcome(const task_fact *f, double q, const crl_step_info *info,
                          int t) {
    const double eps = 1e-6;
    ck_assert_msg(info->reward >= 0.0f && info->reward <= REWARD_MAX, "%s t %d reward %g",
                  f->name, t, info->reward);
    if (info->success) {
        ck_assert_msg(q >= f->lo - eps && q <= f->hi + eps,
                      "%s t %d: success with q = %.5f outside [%g, %g]", f->name, t, q,
                      f->lo, f->hi);
        ck_assert_msg(info->reward >= 9.99f, "%s t %d: success but reward %g", f->name, t,
                      info->reward);
    } else {
        ck_assert_msg(!(q >= f->lo + eps && q <= f->hi - eps),
                      "%s t %d: q = %.5f in [%g, %g] but no success", f->name, t, q,
                      f->lo, f->hi);
        ck_assert_msg(info->reward < REWARD_MAX, "%s t %d", f->name, t);
    }
    ck_assert_int_eq(info->terminal, 0);
    ck_assert_int_eq(info->truncated, t == EP_STEPS - 1);
}

START_TEST(test_scripted_succeeds) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    int qa = joint_qadr(s, f->joint);
    float obs[OBS_DIM], act[ACT_DIM];
    int successes = 0;
    float first_r = 0.0f, last_r = 0.0f;
    for (int ep = 0; ep < 10; ep++) {
        crl_env_reset(e, (uint64_t)ep, obs);
        int success = 0;
        for (int t = 0; t < EP_STEPS; t++) {
            ck_assert_int_eq(crl_env_scripted_action(e, act), CRL_OK);
            for (int k = 0; k < ACT_DIM; k++)
                ck_assert(act[k] >= -1.0f && act[k] <= 1.0f);
            crl_step_info info;
            crl_env_step(e, act, obs, &info);
            check_outcome(f, crl_env_data(e)->qpos[qa], &info, t);
            success |= info.success;
            if (t == 0) first_r = info.reward;
            if (!success) last_r = info.reward;
        }
        successes += success;
        /* The reward climbs along the scripted path: the last reward before
         * success is well above the first one. */
        if (success)
            ck_assert_msg(last_r > first_r + 2.0f, "%s ep %d: %g -> %g", f->name, ep,
                          first_r, last_r);
    }
    ck_assert_msg(successes >= 8, "%s: scripted %d/10", f->name, successes);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_random_fails) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    int qa = joint_qadr(s, f->joint);
    float obs[OBS_DIM], act[ACT_DIM];
    crl_rng r;
    crl_rng_seed(&r, 0);
    int successes = 0;
    for (int ep = 0; ep < 10; ep++) {
        crl_env_reset(e, (uint64_t)ep, obs);
        int success = 0;
        for (int t = 0; t < EP_STEPS; t++) {
            for (int k = 0; k < ACT_DIM; k++)
                act[k] = (float)crl_rng_range(&r, -1.0, 1.0);
            crl_step_info info;
            crl_env_step(e, act, obs, &info);
            check_outcome(f, crl_env_data(e)->qpos[qa], &info, t);
            success |= info.success;
        }
        successes += success;
    }
    ck_assert_msg(successes <= 1, "%s: random %d/10", f->name, successes);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- robustness: finite, bounded, nothing through the table ----------------------- */

START_TEST(test_random_finite) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    const mjModel *m = crl_env_model(s);
    const mjData *d = crl_env_data(e);
    float obs[OBS_DIM], act[ACT_DIM];
    crl_rng r;
    crl_rng_seed(&r, 1000 + (uint64_t)_i);
    uint64_t seed = 100;
    crl_env_reset(e, seed, obs);
    /* The task's moving bodies: those with joints, but not the gripper. */
    int hand = mj_name2id(m, mjOBJ_BODY, "hand");
    int lf = mj_name2id(m, mjOBJ_BODY, "lfinger"),
        rf = mj_name2id(m, mjOBJ_BODY, "rfinger");
    ck_assert(hand > 0 && lf > 0 && rf > 0);
    for (int t = 0; t < 2000; t++) {
        /* Wide, sticky actions as well as uniform ones, and NaN now and then. */
        for (int k = 0; k < ACT_DIM; k++)
            act[k] = (t / 20) % 3 == 0 ? (float)(crl_rng_uniform(&r) < 0.5 ? -1.5 : 1.5)
                                       : (float)crl_rng_range(&r, -1.0, 1.0);
        if (t % 97 == 0) act[t % ACT_DIM] = NAN;
        crl_step_info info;
        crl_env_step(e, act, obs, &info);
        ck_assert_msg(isfinite(info.reward) && info.reward >= 0.0f &&
                          info.reward <= REWARD_MAX,
                      "%s t %d reward %g", f->name, t, info.reward);
        for (int k = 0; k < OBS_DIM; k++)
            ck_assert_msg(isfinite(obs[k]), "%s t %d obs[%d]", f->name, t, k);
        for (int b = 1; b < m->nbody; b++) {
            if (b == hand || b == lf || b == rf || m->body_jntnum[b] == 0) continue;
            ck_assert_msg(d->xpos[3 * b + 2] > 0.01, "%s t %d: body %s at z %g", f->name,
                          t, mj_id2name(m, mjOBJ_BODY, b), d->xpos[3 * b + 2]);
        }
        ck_assert_int_eq(info.truncated, (t + 1) % EP_STEPS == 0);
        if (info.truncated) crl_env_reset(e, ++seed, obs);
    }
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* The hand's bounds: z down to -0.15 for the faucet tasks, 0.05 elsewhere. */
START_TEST(test_hand_bounds) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    const mjData *d = crl_env_data(e);
    float obs[OBS_DIM], down[ACT_DIM] = {0, 0, -1, 0};
    crl_env_reset(e, 3, obs);
    crl_step_info info;
    for (int t = 0; t < 60; t++) crl_env_step(e, down, obs, &info);
    ck_assert_double_eq_tol(d->mocap_pos[2], f->hand_lo_z, 1e-9);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- determinism and randomisation ------------------------------------------------- */

START_TEST(test_determinism) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s1 = make_spec(f->name), *s2 = make_spec(f->name);
    crl_env *a = make_env(s1), *b = make_env(s2);
    float oa[OBS_DIM], ob[OBS_DIM], act[ACT_DIM];
    crl_step_info ia, ib;
    /* Put b somewhere else first: reset must erase history, including the
     * scripted policy's phase. */
    crl_env_reset(b, 77, ob);
    for (int t = 0; t < 60; t++) {
        crl_env_scripted_action(b, act);
        crl_env_step(b, act, ob, &ib);
    }
    crl_env_reset(a, 5, oa);
    crl_env_reset(b, 5, ob);
    ck_assert_int_eq(memcmp(oa, ob, sizeof oa), 0);
    crl_rng r;
    crl_rng_seed(&r, 9);
    for (int t = 0; t < EP_STEPS; t++) {
        if (t < 120) { /* scripted first, then random */
            float a2[ACT_DIM];
            crl_env_scripted_action(a, act);
            crl_env_scripted_action(b, a2);
            ck_assert_int_eq(memcmp(act, a2, sizeof act), 0);
        } else {
            for (int k = 0; k < ACT_DIM; k++) act[k] = (float)crl_rng_range(&r, -1, 1);
        }
        crl_env_step(a, act, oa, &ia);
        crl_env_step(b, act, ob, &ib);
        ck_assert_msg(memcmp(oa, ob, sizeof oa) == 0, "%s: obs differ at %d", f->name, t);
        ck_assert_int_eq(memcmp(&ia, &ib, sizeof ia), 0);
    }
    /* Different seeds: different initial object (or fixture) positions. */
    crl_env_reset(a, 1, oa);
    crl_env_reset(b, 2, ob);
    ck_assert_int_ne(memcmp(oa + 4, ob + 4, 3 * sizeof(float)), 0);
    crl_env_free(a);
    crl_env_free(b);
    crl_env_spec_free(s1);
    crl_env_spec_free(s2);
}
END_TEST

/* Every reset draws the placement uniformly from the spec's ranges, and the
 * observation is laid out as documented. */
START_TEST(test_reset_distribution) {
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    const mjData *d = crl_env_data(e);
    float obs[OBS_DIM], obs2[OBS_DIM], zero[ACT_DIM] = {0};
    double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9;
    const int N = 60;
    for (int i = 0; i < N; i++) {
        crl_env_reset(e, 1000 + (uint64_t)i, obs);
        double xy[2];
        placed_xy(e, PLACED[_i], xy);
        xmin = fmin(xmin, xy[0]), xmax = fmax(xmax, xy[0]);
        ymin = fmin(ymin, xy[1]), ymax = fmax(ymax, xy[1]);
        /* obs: tcp, gripper open, prev frame = current at reset, goal in
         * 36..38, no second object except for the hammer. The hand starts
         * at (0, 0.6, 0.2). */
        int hand = mj_name2id(crl_env_model(s), mjOBJ_BODY, "hand");
        int tcp = mj_name2id(crl_env_model(s), mjOBJ_SITE, "tcp");
        for (int k = 0; k < 3; k++)
            ck_assert_double_eq_tol(obs[k], d->site_xpos[3 * tcp + k], 1e-6);
        ck_assert_double_eq_tol(d->xpos[3 * hand + 0], 0.0, 2e-3);
        ck_assert_double_eq_tol(d->xpos[3 * hand + 1], 0.6, 2e-3);
        ck_assert_double_eq_tol(d->xpos[3 * hand + 2], 0.2, 2e-3);
        ck_assert_float_eq_tol(obs[3], 1.0f, 0.02f);
        ck_assert_int_eq(memcmp(obs, obs + 18, 18 * sizeof(float)), 0);
        if (strcmp(f->name, "hammer") != 0)
            for (int k = 11; k < 18; k++) ck_assert_float_eq(obs[k], 0.0f);
        crl_step_info info;
        crl_env_step(e, zero, obs2, &info);
        ck_assert_int_eq(memcmp(obs, obs2 + 18, 18 * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(obs + 36, obs2 + 36, 3 * sizeof(float)), 0);
    }
    const double slack = 0.25; /* of each range: 60 draws reach into both ends */
    ck_assert(xmin >= f->xlo - 1e-3 && xmax <= f->xhi + 1e-3);
    ck_assert(ymin >= f->ylo - 1e-3 && ymax <= f->yhi + 1e-3);
    ck_assert(xmin <= f->xlo + slack * (f->xhi - f->xlo) + 1e-9);
    ck_assert(xmax >= f->xhi - slack * (f->xhi - f->xlo) - 1e-9);
    ck_assert(ymin <= f->ylo + slack * (f->yhi - f->ylo) + 1e-9);
    ck_assert(ymax >= f->yhi - slack * (f->yhi - f->ylo) - 1e-9);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- no allocation in step (or reset) ---------------------------------------------- */

START_TEST(test_step_does_not_allocate) {
#if HAVE_MALLOC_COUNT
    const task_fact *f = &TASKS[_i];
    crl_env_spec *s = make_spec(f->name);
    crl_env *e = make_env(s);
    float obs[OBS_DIM], act[ACT_DIM];
    crl_step_info info;
    crl_env_reset(e, 1, obs);
    long before = g_alloc_calls;
    for (int t = 0; t < 400; t++) {
        crl_env_scripted_action(e, act);
        crl_env_step(e, act, obs, &info);
        if (info.truncated) crl_env_reset(e, 2, obs);
    }
    long calls = g_alloc_calls - before;
    ck_assert_msg(calls == 0, "%s: %ld allocations in step/reset", f->name, calls);
    crl_env_free(e);
    crl_env_spec_free(s);
#else
    fprintf(stderr, "test_step_does_not_allocate: skipped (no malloc interposition)\n");
#endif
}
END_TEST

static Suite *manip_b_suite(void) {
    Suite *s = suite_create("manip_b");
    TCase *tc = tcase_create("manip_b");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_listed, 0, NTASKS);
    tcase_add_loop_test(tc, test_scripted_succeeds, 0, NTASKS);
    tcase_add_loop_test(tc, test_random_fails, 0, NTASKS);
    tcase_add_loop_test(tc, test_random_finite, 0, NTASKS);
    tcase_add_loop_test(tc, test_hand_bounds, 0, NTASKS);
    tcase_add_loop_test(tc, test_determinism, 0, NTASKS);
    tcase_add_loop_test(tc, test_reset_distribution, 0, NTASKS);
    tcase_add_loop_test(tc, test_step_does_not_allocate, 0, NTASKS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(manip_b_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
