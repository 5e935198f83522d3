/* Tests for envs/vecenv.c: n vectorised envs equal n single crl_env stepped
 * one by one with the documented episode seeds, bit for bit, over episodes
 * that end (terminal and truncated) and auto-reset, on one lane and two;
 * stepping allocates nothing; bad arguments are refused. */
#include "crl/vecenv.h"

#include <check.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdlib.h>
#include <string.h>

#include "malloc_count.h"

static crl_env_spec *make_spec(const char *name) {
    crl_env_spec *s = NULL;
    crl_err err = {0};
    int rc = crl_env_spec_create(name, &s, &err);
    ck_assert_msg(rc == CRL_OK, "spec %s: %s", name, err.msg);
    return s;
}

/* pendulum: 200-step episodes (truncations); ant: random actions with gear
 * 150 throw the torso out of [0.2, 1] (terminals); halfcheetah-moon: a
 * modified task, 1000-step episodes. */
static const struct {
    const char *name;
    int steps;
} CASES[] = {{"pendulum", 450}, {"ant", 400}, {"halfcheetah-moon", 1030}};
#define N_ENVS 5 /* odd: the two lanes get 2 and 3 envs */

/* Case _i / 2 on (_i % 2) + 1 lanes. */
START_TEST(test_equals_single_envs) {
    const char *name = CASES[_i / 2].name;
    const int steps = CASES[_i / 2].steps, threads = _i % 2 + 1;
    const uint64_t seed = 20261207;
    crl_env_spec *s = make_spec(name);
    const int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s), n = N_ENVS;
    crl_err err = {0};
    crl_vecenv *v = NULL;
    ck_assert_msg(crl_vecenv_create(s, n, threads, &v, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(crl_vecenv_size(v), n);
    ck_assert_int_eq(crl_vecenv_threads(v), threads);
    ck_assert_ptr_eq(crl_vecenv_spec(v), s);
    crl_env *single[N_ENVS];
    int64_t episode[N_ENVS];
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(crl_env_create(s, &single[i], &err), CRL_OK);
        episode[i] = 0;
    }
    float *obs = malloc(sizeof(float) * (size_t)(n * od));
    float *fin = malloc(sizeof(float) * (size_t)(n * od));
    float *act = malloc(sizeof(float) * (size_t)(n * ad));
    float *so = malloc(sizeof(float) * (size_t)od);
    float rew[N_ENVS];
    unsigned char term[N_ENVS], trunc[N_ENVS], succ[N_ENVS];

    crl_vecenv_reset(v, seed, obs);
    for (int i = 0; i < n; i++) {
        crl_env_reset(single[i], crl_vecenv_episode_seed(seed, i, episode[i]++), so);
        ck_assert_msg(!memcmp(so, obs + i * od, sizeof(float) * (size_t)od),
                      "%s env %d: reset obs differs", name, i);
        ck_assert_int_eq(crl_vecenv_episodes(v, i), 1);
    }
    crl_rng r;
    crl_rng_seed(&r, 5);
    int n_term = 0, n_trunc = 0;
    for (int t = 0; t < steps; t++) {
        for (int k = 0; k < n * ad; k++) act[k] = (float)crl_rng_range(&r, -1.3, 1.3);
        if (t == 7) act[1] = NAN; /* read as 0 by both paths */
        crl_vecenv_step(v, act, obs, rew, term, trunc, succ, fin);
        for (int i = 0; i < n; i++) {
            crl_step_info info;
            crl_env_step(single[i], act + i * ad, so, &info);
            ck_assert_msg(!memcmp(so, fin + i * od, sizeof(float) * (size_t)od),
                          "%s env %d step %d: final obs differs", name, i, t);
            ck_assert_msg(!memcmp(&info.reward, &rew[i], sizeof(float)),
                          "%s env %d step %d: reward %.9g vs %.9g", name, i, t,
                          (double)info.reward, (double)rew[i]);
            ck_assert_int_eq(term[i], info.terminal != 0);
            ck_assert_int_eq(trunc[i], info.truncated != 0);
            ck_assert_int_eq(succ[i], info.success != 0);
            if (info.terminal || info.truncated) {
                n_term += info.terminal != 0;
                n_trunc += info.truncated != 0;
                crl_env_reset(single[i], crl_vecenv_episode_seed(seed, i, episode[i]++),
                              so);
            }
            ck_assert_msg(!memcmp(so, obs + i * od, sizeof(float) * (size_t)od),
                          "%s env %d step %d: obs differs", name, i, t);
            ck_assert_int_eq(crl_vecenv_episodes(v, i), episode[i]);
            ck_assert_int_eq(crl_vecenv_episode_steps(v, i),
                             crl_env_steps_taken(single[i]));
        }
    }
    /* The comparison covered auto-resets of the kind each task has. */
    if (!strcmp(name, "ant"))
        ck_assert_msg(n_term > 0, "ant: no terminal episode end in %d steps", steps);
    else
        ck_assert_msg(n_trunc >= n, "%s: %d truncations", name, n_trunc);

    /* NULL outputs are allowed (obs only). */
    crl_vecenv_step(v, act, obs, NULL, NULL, NULL, NULL, NULL);
    for (int i = 0; i < n; i++) crl_env_free(single[i]);
    free(obs);
    free(fin);
    free(act);
    free(so);
    crl_vecenv_free(v);
    crl_env_spec_free(s);
}
END_TEST

/* The first env's first episode is the plain seed; the others all differ. */
START_TEST(test_episode_seeds) {
    ck_assert_uint_eq(crl_vecenv_episode_seed(42, 0, 0), 42);
    ck_assert_uint_eq(crl_vecenv_episode_seed(7, 0, 0), 7);
    uint64_t seen[4 * 6 + 1];
    int m = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 6; k++) seen[m++] = crl_vecenv_episode_seed(42, i, k);
    seen[m++] = crl_vecenv_episode_seed(43, 0, 1);
    for (int a = 0; a < m; a++)
        for (int b = a + 1; b < m; b++) ck_assert_uint_ne(seen[a], seen[b]);
    /* Pure function. */
    ck_assert_uint_eq(crl_vecenv_episode_seed(42, 3, 5), seen[3 * 6 + 5]);
}
END_TEST

static long mj_allocs;
static void *counting_malloc(size_t n) {
    mj_allocs++;
    return malloc(n);
}

/* No allocation per step, auto-resets included, on both lane counts. */
START_TEST(test_step_does_not_allocate) {
    crl_env_spec *s = make_spec("pendulum");
    crl_vecenv *v = NULL;
    crl_err err = {0};
    ck_assert_int_eq(crl_vecenv_create(s, 4, _i + 1, &v, &err), CRL_OK);
    float obs[4 * 8], fin[4 * 8], act[4 * 4] = {0}, rew[4];
    unsigned char term[4], trunc[4], succ[4];
    ck_assert_int_le(crl_env_obs_dim(s), 8);
    ck_assert_int_le(crl_env_act_dim(s), 4);
    crl_vecenv_reset(v, 3, obs);
    crl_vecenv_step(v, act, obs, rew, term, trunc, succ, fin); /* worker warm */
    mj_allocs = 0;
    mju_user_malloc = counting_malloc;
#if HAVE_MALLOC_COUNT
    long before = alloc_calls();
#endif
    int resets = 0;
    for (int t = 0; t < 450; t++) {
        for (int k = 0; k < 16; k++) act[k] = (float)sin(0.1 * t + k);
        crl_vecenv_step(v, act, obs, rew, term, trunc, succ, fin);
        resets += trunc[0];
    }
#if HAVE_MALLOC_COUNT
    ck_assert_int_eq(alloc_calls() - before, 0);
#endif
    mju_user_malloc = NULL;
    ck_assert_int_eq(mj_allocs, 0);
    ck_assert_int_ge(resets, 2);
    crl_vecenv_free(v);
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_bad_arguments) {
    crl_env_spec *s = make_spec("pendulum");
    crl_vecenv *v = (crl_vecenv *)&v;
    crl_err err = {0};
    ck_assert_int_eq(crl_vecenv_create(s, 0, 1, &v, &err), CRL_EINVAL);
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(strstr(err.msg, "0 envs"));
    ck_assert_int_eq(crl_vecenv_create(s, CRL_VECENV_MAX + 1, 1, &v, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_vecenv_create(s, 2, 3, &v, &err), CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "threads"));
    ck_assert_int_eq(crl_vecenv_create(NULL, 2, 1, &v, &err), CRL_EINVAL);
    /* One env on two lanes runs on the caller only. */
    ck_assert_int_eq(crl_vecenv_create(s, 1, 2, &v, &err), CRL_OK);
    ck_assert_int_eq(crl_vecenv_threads(v), 1);
    ck_assert_ptr_null(crl_vecenv_env(v, 1));
    ck_assert_ptr_null(crl_vecenv_env(v, -1));
    ck_assert_ptr_nonnull(crl_vecenv_env(v, 0));
    ck_assert_int_eq(crl_vecenv_episodes(v, 2), -1);
    crl_vecenv_free(v);
    crl_vecenv_free(NULL);
    crl_env_spec_free(s);
}
END_TEST

/* crl's evaluation mode: explicit seeds and auto-reset off. Each env runs
 * one episode with its own seed to its end, then is no longer stepped: its
 * output rows stay untouched and its last info and state stay as the
 * episode left them. Equal to single envs stepped to their ends, on one
 * lane and two. _i: ant (terminals at different steps) on _i + 1 lanes. */
START_TEST(test_each_seed_no_autoreset) {
    const int threads = _i + 1, n = N_ENVS;
    crl_env_spec *s = make_spec("ant");
    const int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    crl_err err = {0};
    crl_vecenv *v = NULL;
    ck_assert_int_eq(crl_vecenv_create(s, n, threads, &v, &err), CRL_OK);
    crl_vecenv_set_autoreset(v, 0);
    uint64_t seeds[N_ENVS];
    crl_env *single[N_ENVS];
    int done[N_ENVS] = {0}, ended_at[N_ENVS];
    for (int i = 0; i < n; i++) {
        seeds[i] = 1000u + 7u * (uint64_t)i;
        ck_assert_int_eq(crl_env_create(s, &single[i], &err), CRL_OK);
        ended_at[i] = -1;
    }
    float *obs = malloc(sizeof(float) * (size_t)(n * od));
    float *act = malloc(sizeof(float) * (size_t)(n * ad));
    float *so = malloc(sizeof(float) * (size_t)od);
    float rew[N_ENVS];
    crl_vecenv_reset_each(v, seeds, obs);
    ck_assert_int_eq(crl_vecenv_running(v), n);
    for (int i = 0; i < n; i++) {
        crl_env_reset(single[i], seeds[i], so);
        ck_assert_mem_eq(so, obs + (size_t)i * od, sizeof(float) * (size_t)od);
        ck_assert_float_eq(crl_vecenv_last_info(v, i)->reward, 0.0f);
    }
    crl_rng rng;
    crl_rng_seed(&rng, 5);
    int t = 0;
    for (; crl_vecenv_running(v) > 0 && t < 2000; t++) {
        for (int k = 0; k < n * ad; k++) act[k] = (float)crl_rng_range(&rng, -1.0, 1.0);
        for (int i = 0; i < n; i++) rew[i] = -12345.0f; /* must stay for ended envs */
        crl_vecenv_step(v, act, obs, rew, NULL, NULL, NULL, NULL);
        int running = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) {
                ck_assert_float_eq(rew[i], -12345.0f);
                ck_assert_int_eq(crl_vecenv_ended(v, i), 1);
                continue;
            }
            crl_step_info info;
            crl_env_step(single[i], act + (size_t)i * ad, so, &info);
            const crl_step_info *vi = crl_vecenv_last_info(v, i);
            ck_assert_mem_eq(so, obs + (size_t)i * od, sizeof(float) * (size_t)od);
            ck_assert_mem_eq(&info.reward, &vi->reward, sizeof info.reward);
            ck_assert_mem_eq(&info.reward, &rew[i], sizeof info.reward);
            ck_assert_int_eq(info.terminal, vi->terminal);
            ck_assert_int_eq(info.truncated, vi->truncated);
            ck_assert_int_eq(crl_vecenv_ended(v, i), info.terminal || info.truncated);
            if (info.terminal || info.truncated) {
                done[i] = 1;
                ended_at[i] = t;
            } else {
                running++;
            }
        }
        ck_assert_int_eq(crl_vecenv_running(v), running);
    }
    /* Random ant episodes end by a terminal, at different steps. */
    ck_assert_int_eq(crl_vecenv_running(v), 0);
    int differ = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_ge(ended_at[i], 0);
        ck_assert_int_eq(crl_vecenv_episodes(v, i), 1);
        differ |= ended_at[i] != ended_at[0];
    }
    ck_assert_msg(differ, "all episodes ended at step %d", ended_at[0]);
    /* A new reset starts them all again. */
    crl_vecenv_reset_each(v, seeds, obs);
    ck_assert_int_eq(crl_vecenv_running(v), n);
    for (int i = 0; i < n; i++) crl_env_free(single[i]);
    free(obs);
    free(act);
    free(so);
    crl_vecenv_free(v);
    crl_env_spec_free(s);
}
END_TEST

static Suite *vecenv_suite(void) {
    Suite *s = suite_create("vecenv");
    TCase *tc = tcase_create("vecenv");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_equals_single_envs, 0, 6);
    tcase_add_test(tc, test_episode_seeds);
    tcase_add_loop_test(tc, test_each_seed_no_autoreset, 0, 2);
    tcase_add_loop_test(tc, test_step_does_not_allocate, 0, 2);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(vecenv_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
