/* Env stepping in C: one crl_env, and a crl_vecenv of n envs on one and two
 * lanes (include/crl/vecenv.h). bench/bench_python.py runs it as the C
 * reference of the Python package.
 *
 *   env_step_cpu_<task>       crl_env_step in a C loop: microseconds of this
 *                             thread's CPU time per step (a neighbour taking
 *                             the core does not count), best round
 *   env_1_<task>              the same loop in steps/s of wall time
 *   vecenv_<n>_t<k>_<task>    crl_vecenv_step of n envs on k lanes: env steps/s
 *                             of wall time (all envs), best round
 *   vecenv_cpu_<n>_t<k>_<task> the process's CPU microseconds (both lanes)
 *                             per env step of that vecenv: near
 *                             env_step_cpu when the lanes waste little
 *                             waiting on each other, whatever the load
 *   vecenv_speedup_<n>_t<k>   over env_1 (needs k free cores to show)
 * Actions are drawn once (a bank of 1024 random rows); episodes reset at
 * their ends. Rounds of the loops alternate, so a loaded machine hurts all.
 *
 * usage: bench_vecenv [--task NAME] [--envs N] [--seconds S] [--rounds R]
 *                     [--only-step]
 *   --only-step  print env_step_cpu_<task> only (one round of S seconds) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crl/env.h"
#include "crl/vecenv.h"

#define BANK 1024

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu_now(void) {
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

/* Returns wall steps/s; *cpu_us gets CPU microseconds per step. */
static double time_env(crl_env *e, const float *bank, int ad, float *obs, double seconds,
                       double *cpu_us) {
    crl_step_info info;
    long n = 0;
    uint64_t seed = 1;
    double t0 = crl_now(), c0 = cpu_now(), t;
    do {
        for (int k = 0; k < 32; k++, n++) {
            crl_env_step(e, bank + (size_t)(n % BANK) * (size_t)ad, obs, &info);
            if (info.terminal || info.truncated) crl_env_reset(e, ++seed, obs);
        }
        t = crl_now();
    } while (t - t0 < seconds);
    *cpu_us = 1e6 * (cpu_now() - c0) / (double)n;
    return (double)n / (t - t0);
}

static double time_vec(crl_vecenv *v, const float *bank, int ad, float *obs, float *fin,
                       float *rew, unsigned char *flags, double seconds, double *cpu_us) {
    const int n = crl_vecenv_size(v);
    long steps = 0, r = 0;
    double t0 = crl_now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t;
    do {
        for (int k = 0; k < 4; k++, r++) {
            /* rows r*n .. of the bank, wrapping */
            const float *a = bank + (size_t)((r * n) % (BANK - n)) * (size_t)ad;
            crl_vecenv_step(v, a, obs, rew, flags, flags + n, flags + 2 * n, fin);
            steps += n;
        }
        t = crl_now();
    } while (t - t0 < seconds);
    *cpu_us = 1e6 * (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)steps;
    return (double)steps / (t - t0);
}

int main(int argc, char **argv) {
    const char *task = "halfcheetah";
    int n = 16, rounds = 5, only_step = 0;
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--task") && i + 1 < argc)
            task = argv[++i];
        else if (!strcmp(argv[i], "--envs") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only-step"))
            only_step = 1;
        else {
            fprintf(stderr, "usage: bench_vecenv [--task NAME] [--envs N] [--seconds S] "
                            "[--rounds R] [--only-step]\n");
            return 2;
        }
    }
    if (n < 1 || n > BANK / 2 || rounds < 1 || !(seconds > 0)) {
        fprintf(stderr, "bench_vecenv: bad --envs, --rounds or --seconds\n");
        return 2;
    }
    crl_err err = {0};
    crl_env_spec *s = NULL;
    crl_env *e = NULL;
    crl_vecenv *v[2] = {NULL, NULL};
    if (crl_env_spec_create(task, &s, &err) || crl_env_create(s, &e, &err) ||
        (!only_step && (crl_vecenv_create(s, n, 1, &v[0], &err) ||
                        crl_vecenv_create(s, n, 2, &v[1], &err)))) {
        fprintf(stderr, "bench_vecenv: %s\n", err.msg);
        return 1;
    }
    const int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    float *bank = malloc(sizeof(float) * (size_t)(BANK * ad));
    float *obs = malloc(sizeof(float) * (size_t)(n * od));
    float *fin = malloc(sizeof(float) * (size_t)(n * od));
    float *rew = malloc(sizeof(float) * (size_t)n);
    unsigned char *flags = malloc((size_t)(3 * n));
    crl_rng r;
    crl_rng_seed(&r, 1);
    for (int k = 0; k < BANK * ad; k++) bank[k] = (float)crl_rng_range(&r, -1, 1);
    crl_env_reset(e, 1, obs);
    if (only_step) {
        double cpu;
        time_env(e, bank, ad, obs, seconds, &cpu);
        printf("env_step_cpu_%s: %.3f us\n", task, cpu);
        return 0;
    }
    crl_vecenv_reset(v[0], 1, obs);
    crl_vecenv_reset(v[1], 1, obs);
    double best_cpu = 1e30, best1 = 0, bestv[2] = {0, 0}, vcpu[2] = {1e30, 1e30};
    for (int k = 0; k < rounds; k++) {
        double cpu, w = time_env(e, bank, ad, obs, seconds, &cpu);
        if (cpu < best_cpu) best_cpu = cpu;
        if (w > best1) best1 = w;
        for (int j = 0; j < 2; j++) {
            double c, x = time_vec(v[j], bank, ad, obs, fin, rew, flags, seconds, &c);
            if (x > bestv[j]) bestv[j] = x;
            if (c < vcpu[j]) vcpu[j] = c;
        }
    }
    printf("env_step_cpu_%s: %.3f us\n", task, best_cpu);
    printf("env_1_%s: %.0f steps/s\n", task, best1);
    for (int j = 0; j < 2; j++)
        printf("vecenv_%d_t%d_%s: %.0f steps/s\n", n, j + 1, task, bestv[j]);
    for (int j = 0; j < 2; j++)
        printf("vecenv_cpu_%d_t%d_%s: %.3f us\n", n, j + 1, task, vcpu[j]);
    for (int j = 0; j < 2; j++)
        printf("vecenv_speedup_%d_t%d: %.2f x\n", n, j + 1, bestv[j] / best1);
    free(bank);
    free(obs);
    free(fin);
    free(rew);
    free(flags);
    crl_vecenv_free(v[0]);
    crl_vecenv_free(v[1]);
    crl_env_free(e);
    crl_env_spec_free(s);
    return 0;
}
