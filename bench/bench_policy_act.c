/* Latency of crl_policy_act at the Continual World shape: obs 39, act 4,
 * 4 hidden layers of 256 with LayerNorm + tanh after the first and leaky
 * ReLU after the others, 10 task heads (the SAC actor of a CW10 run).
 * Single-threaded, deterministic mode; the policy goes through the file
 * format (written in memory, then loaded) like an exported one.
 *
 *   bench_policy_act [--seconds S]
 *
 * Prints `name: value unit` lines: the median (and best) of several timing
 * rounds of single calls, a sampled-mode call, and a 16-row batch per row;
 * each also in thread CPU time (_cpu), which a loaded machine inflates
 * less than the wall clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crl/blas.h"
#include "crl/policy.h"
#include "embed/format.h"

#define ROUNDS 7

static crl_policy *cw_policy(void) {
    crl_mlp_spec sp;
    crl_mlp m;
    crl_mlp_spec_cw(&sp, 39, 8, 10, 4, 256);
    if (crl_mlp_init(&m, &sp, NULL) != CRL_OK) return NULL;
    float *params = malloc(m.n_params * sizeof *params);
    if (!params) return NULL;
    crl_rng rng;
    crl_rng_seed(&rng, 1);
    crl_mlp_init_params(&m, params, &rng);
    crl_pf_task tasks[10];
    for (int i = 0; i < 10; i++)
        tasks[i] = (crl_pf_task){.net = 0,
                                 .head = i,
                                 .view = -1,
                                 .position = i,
                                 .env_kind = POL_ENV_BUILTIN,
                                 .obs_dim = 39,
                                 .act_dim = 4,
                                 .frame_skip = 5,
                                 .max_steps = 200,
                                 .name = "push",
                                 .modifiers = "{}"};
    const float *nets[1] = {params};
    crl_pf_desc d = {.method = POL_METHOD_PLAIN,
                     .method_name = "bench",
                     .scenario = "cw10",
                     .mlp = &m,
                     .n_nets = 1,
                     .net_params = nets,
                     .n_tasks = 10,
                     .tasks = tasks};
    unsigned char *buf = NULL;
    size_t n = 0;
    crl_policy *p = NULL;
    char msg[600];
    if (crl_pf_write(&d, &buf, &n, NULL) != CRL_OK ||
        crl_policy_load_mem(buf, n, &p, msg, sizeof msg) != CRL_OK) {
        fprintf(stderr, "bench_policy_act: %s\n", buf ? msg : "cannot write the policy");
        p = NULL;
    }
    free(buf);
    free(params);
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU time of this thread: unlike the wall clock, it does not count the
 * time the thread waits for a core on a loaded machine. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Microseconds per row over rounds of `seconds / ROUNDS`: median and best,
 * in wall-clock and in thread CPU time. */
static void time_act(crl_policy *p, int B, crl_policy_mode mode, const float *obs,
                     double seconds, double *median, double *best, double *cpu_median) {
    float act[16 * 4];
    crl_rng rng;
    crl_rng_seed(&rng, 2);
    for (int i = 0; i < 200; i++) /* warm-up: caches, clocks */
        crl_policy_act_batch(p, i % 10, B, obs, act, mode, &rng);
    double us[ROUNDS], cpu[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        long calls = 0;
        const double t0 = crl_now(), c0 = cpu_now();
        double t = t0;
        while (t - t0 < seconds / ROUNDS) {
            for (int i = 0; i < 100; i++)
                crl_policy_act_batch(p, (int)((calls + i) % 10), B, obs, act, mode, &rng);
            calls += 100;
            t = crl_now();
        }
        us[r] = (t - t0) * 1e6 / ((double)calls * B);
        cpu[r] = (cpu_now() - c0) * 1e6 / ((double)calls * B);
    }
    qsort(us, ROUNDS, sizeof us[0], cmp_double);
    qsort(cpu, ROUNDS, sizeof cpu[0], cmp_double);
    *median = us[ROUNDS / 2];
    *best = us[0];
    *cpu_median = cpu[ROUNDS / 2];
}

int main(int argc, char **argv) {
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            char *end;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0.0)) {
                fprintf(stderr,
                        "bench_policy_act: --seconds expects a positive number\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_policy_act [--seconds S]\n");
            return 2;
        }
    }
    crl_policy *p = cw_policy();
    if (!p || crl_policy_set_batch(p, 16) != CRL_OK) return 1;
    float obs[16 * 39];
    crl_rng rng;
    crl_rng_seed(&rng, 3);
    for (int i = 0; i < 16 * 39; i++) obs[i] = (float)crl_rng_normal(&rng);
    double med, best, cpu;
    printf("blas_kernel: %s\n", crl_blas_kernel());
    time_act(p, 1, CRL_POLICY_DETERMINISTIC, obs, seconds, &med, &best, &cpu);
    printf("policy_act_cw_deterministic: %.2f us/call\n", med);
    printf("policy_act_cw_deterministic_best: %.2f us/call\n", best);
    printf("policy_act_cw_deterministic_cpu: %.2f us/call\n", cpu);
    time_act(p, 1, CRL_POLICY_SAMPLE, obs, seconds / 2, &med, &best, &cpu);
    printf("policy_act_cw_sampled: %.2f us/call\n", med);
    printf("policy_act_cw_sampled_cpu: %.2f us/call\n", cpu);
    time_act(p, 16, CRL_POLICY_DETERMINISTIC, obs, seconds / 2, &med, &best, &cpu);
    printf("policy_act_cw_batch16: %.2f us/row\n", med);
    printf("policy_act_cw_batch16_cpu: %.2f us/row\n", cpu);
    crl_policy_free(p);
    return 0;
}
