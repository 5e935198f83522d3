/* Dataset collection throughput against the raw env step rate of the same
 * policy (issue 20: collection within 20% of the raw rate).
 *
 * One task, single thread, whole episodes of the scripted policy with
 * Gaussian action noise (clipped after it), in alternating rounds:
 *   env_steps_per_s         reset + scripted action + noise + crl_env_step:
 *                           the raw loop, nothing kept (steps/s)
 *   collect_nostore_steps_per_s
 *                           crl_collector_run without a dataset: the
 *                           arrays, the replay record (steps/s)
 *   collect_steps_per_s     crl_collector_run into a dataset file in a
 *                           temporary directory: what `crl dataset` does
 *                           (steps/s)
 *   collect_overhead        1 - collect / env (%)
 *   bytes_per_1000_episodes the dataset file's size per 1,000 episodes
 * The best round of each loop counts, so a busy neighbour hurts all alike.
 *
 * usage: bench_dataset [--task NAME] [--seconds S] [--noise S]
 *   --task     default push (a Continual World task)
 *   --seconds  total time, split over the loops and rounds (default 6)
 *   --noise    action noise (default 0.1) */
#define _XOPEN_SOURCE 700
#include "crl/collect.h"
#include "crl/dataset.h"
#include "crl/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROUNDS 5

static double round_seconds;

static float clip1(float x) {
    return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

static double time_raw(crl_env *e, crl_rng *r, double noise, float *act, float *obs,
                       int ad, uint64_t *seed) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        crl_env_reset(e, (*seed)++, obs);
        crl_step_info info = {0};
        while (!info.terminal && !info.truncated) {
            crl_env_scripted_action(e, act);
            for (int k = 0; k < ad; k++)
                act[k] = clip1((float)((double)act[k] + noise * crl_rng_normal(r)));
            crl_env_step(e, act, obs, &info);
            n++;
        }
        t = crl_now();
    } while (t - t0 < round_seconds);
    return (double)n / (t - t0);
}

static double time_collect(crl_collector *c, crl_rng *r, double noise, crl_dataset *ds,
                           uint64_t *seed, long *episodes) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        crl_ds_episode ep;
        crl_err err = {0};
        if (crl_collector_run(c, (*seed)++, 0, noise, r, "scripted+noise", ds, &ep,
                              &err)) {
            fprintf(stderr, "bench_dataset: %s\n", err.msg);
            exit(1);
        }
        n += ep.length;
        if (ds) ++*episodes;
        t = crl_now();
    } while (t - t0 < round_seconds);
    return (double)n / (t - t0);
}

int main(int argc, char **argv) {
    const char *task = "push";
    double seconds = 6, noise = 0.1;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--task") && i + 1 < argc) {
            task = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0)) {
                fprintf(stderr, "bench_dataset: --seconds expects a positive number\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--noise") && i + 1 < argc) {
            noise = strtod(argv[++i], &end);
            if (*end || !(noise >= 0)) {
                fprintf(stderr, "bench_dataset: --noise expects a number >= 0\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: bench_dataset [--task NAME] [--seconds S] [--noise S]\n");
            return 2;
        }
    }
    round_seconds = seconds / (3.0 * ROUNDS);
    crl_err err = {0};
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    crl_collector *col = NULL;
    crl_dataset *ds = NULL;
    char dir[] = "/tmp/crl_bench_dataset_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_dataset: cannot make a temporary directory\n");
        return 1;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/bench.db", dir);
    if (crl_env_spec_create(task, &spec, &err) || crl_env_create(spec, &env, &err) ||
        crl_collector_create(spec, NULL, 0, &col, &err) ||
        crl_dataset_open(path, 1, &ds, &err)) {
        fprintf(stderr, "bench_dataset: %s\n", err.msg);
        return 1;
    }
    int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
    float *obs = malloc(sizeof(float) * (size_t)od),
          *act = malloc(sizeof(float) * (size_t)ad);
    if (!obs || !act) return 1;
    crl_rng r1, r2, r3;
    crl_rng_seed(&r1, 1);
    crl_rng_seed(&r2, 1);
    crl_rng_seed(&r3, 1);
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    long episodes = 0;
    double best_raw = 0, best_nostore = 0, best_collect = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double a = time_raw(env, &r1, noise, act, obs, ad, &s1);
        double b = time_collect(col, &r2, noise, NULL, &s2, &episodes);
        double c = time_collect(col, &r3, noise, ds, &s3, &episodes);
        if (a > best_raw) best_raw = a;
        if (b > best_nostore) best_nostore = b;
        if (c > best_collect) best_collect = c;
    }
    if (crl_dataset_flush(ds, &err)) {
        fprintf(stderr, "bench_dataset: %s\n", err.msg);
        return 1;
    }
    crl_dataset_close(ds);
    struct stat sb;
    double bytes = stat(path, &sb) == 0 ? (double)sb.st_size : 0;
    printf("task: %s\n", task);
    printf("env_steps_per_s: %.0f steps/s\n", best_raw);
    printf("collect_nostore_steps_per_s: %.0f steps/s\n", best_nostore);
    printf("collect_steps_per_s: %.0f steps/s\n", best_collect);
    printf("collect_overhead: %.1f %%\n", 100.0 * (1.0 - best_collect / best_raw));
    printf("bytes_per_1000_episodes: %.0f bytes\n",
           episodes ? 1000.0 * bytes / (double)episodes : 0.0);
    unlink(path);
    rmdir(dir);
    free(obs);
    free(act);
    crl_collector_free(col);
    crl_env_free(env);
    crl_env_spec_free(spec);
    return 0;
}
