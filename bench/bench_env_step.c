/* Env stepping throughput against raw MuJoCo on the same model.
 *
 * For every registered env, single thread:
 *   env_step_<name>        crl_env_step with random actions, resetting at
 *                          episode ends (steps/s)
 *   raw_mjstep_x<k>_<name> a loop of random ctrl + k = frame_skip mj_step
 *                          calls on the same model, with mj_resetData at the
 *                          same episode length (steps/s)
 *   env_overhead_<name>    how much slower the wrapper is (%)
 * The two loops run in alternating rounds and the best round of each counts,
 * so a noisy neighbour hurts both alike.
 *
 * usage: bench_env_step [--task NAME] [--seconds S]
 *   --task     only this env (default: every registered env)
 *   --seconds  time per env, split over both loops and all rounds (default
 *              0.3, so the full list takes well under a minute) */
#include "crl/env.h"

#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 10
#define CHUNK  32 /* steps between clock reads */

static double round_seconds;

static double time_env(crl_env *e, crl_rng *r, float *act, float *obs, int ad,
                       uint64_t *seed) {
    crl_step_info info;
    long n = 0;
    double t0 = crl_now(), t;
    do {
        for (int c = 0; c < CHUNK; c++) {
            for (int k = 0; k < ad; k++) act[k] = (float)(2.0 * crl_rng_uniform(r) - 1.0);
            crl_env_step(e, act, obs, &info);
            if (info.terminal || info.truncated) crl_env_reset(e, ++*seed, obs);
        }
        n += CHUNK;
        t = crl_now();
    } while (t - t0 < round_seconds);
    return (double)n / (t - t0);
}

static double time_raw(const mjModel *m, mjData *d, crl_rng *r, int frame_skip,
                       int max_steps, int *ep_steps) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        for (int c = 0; c < CHUNK; c++) {
            for (int k = 0; k < m->nu; k++) d->ctrl[k] = 2.0 * crl_rng_uniform(r) - 1.0;
            for (int s = 0; s < frame_skip; s++) mj_step(m, d);
            if (++*ep_steps == max_steps) { /* same episode structure as the env */
                *ep_steps = 0;
                mj_resetData(m, d);
                mj_forward(m, d);
            }
        }
        n += CHUNK;
        t = crl_now();
    } while (t - t0 < round_seconds);
    return (double)n / (t - t0);
}

int main(int argc, char **argv) {
    const char *only = NULL;
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--task") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            char *end;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0.0)) {
                fprintf(stderr, "bench_env_step: --seconds expects a positive number\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_env_step [--task NAME] [--seconds S]\n");
            return 2;
        }
    }
    round_seconds = seconds / (2.0 * ROUNDS);

    const crl_env_entry *list;
    int n = crl_env_list(&list), matched = 0;
    for (int i = 0; i < n; i++) {
        if (only && strcmp(list[i].name, only) != 0) continue;
        matched++;
        crl_env_spec *s;
        crl_env *e;
        crl_err err;
        if (crl_env_spec_create(list[i].name, &s, &err) || crl_env_create(s, &e, &err)) {
            fprintf(stderr, "bench_env_step: %s\n", err.msg);
            return 1;
        }
        const mjModel *m = crl_env_model(s);
        mjData *d = mj_makeData(m);
        int ad = crl_env_act_dim(s), fs = crl_env_frame_skip(s);
        float *act = calloc((size_t)ad, sizeof *act);
        float *obs = calloc((size_t)crl_env_obs_dim(s), sizeof *obs);
        if (!d || !act || !obs) return 1;
        crl_rng r;
        crl_rng_seed(&r, 1);
        uint64_t seed = 1;
        int raw_ep_steps = 0;
        crl_env_reset(e, seed, obs);
        mj_forward(m, d);

        double best_env = 0, best_raw = 0;
        for (int round = 0; round < ROUNDS; round++) {
            /* Alternate which loop goes first, so drift favours neither. */
            double ve, vr;
            if (round % 2) {
                vr = time_raw(m, d, &r, fs, crl_env_max_steps(s), &raw_ep_steps);
                ve = time_env(e, &r, act, obs, ad, &seed);
            } else {
                ve = time_env(e, &r, act, obs, ad, &seed);
                vr = time_raw(m, d, &r, fs, crl_env_max_steps(s), &raw_ep_steps);
            }
            if (ve > best_env) best_env = ve;
            if (vr > best_raw) best_raw = vr;
        }
        printf("env_step_%s: %.0f steps/s\n", list[i].name, best_env);
        printf("raw_mjstep_x%d_%s: %.0f steps/s\n", fs, list[i].name, best_raw);
        printf("env_overhead_%s: %.1f %%\n", list[i].name,
               100.0 * (best_raw / best_env - 1.0));
        fflush(stdout);

        free(act);
        free(obs);
        mj_deleteData(d);
        crl_env_free(e);
        crl_env_spec_free(s);
    }
    if (only && !matched) {
        fprintf(stderr, "bench_env_step: unknown task '%s'\n", only);
        return 2;
    }
    return 0;
}
