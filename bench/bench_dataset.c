/* Dataset collection throughput against the raw env step rate of the same
 * policy (issue 20: collection within 20% of the raw rate).
 *
 * One task, single thread (but the side-by-side loop), whole episodes of the scripted
 * policy with Gaussian action noise (clipped after it), in alternating rounds:
 *   env_steps_per_s         reset + scripted action + noise + crl_env_step:
 *                           the raw loop, nothing kept (steps/s)
 *   collect_nostore_steps_per_s
 *                           crl_collector_run without a dataset: the
 *                           arrays, the replay record (steps/s)
 *   collect_steps_per_s     crl_collector_run into a dataset file in a
 *                           temporary directory: what `crl dataset` does
 *                           (steps/s)
 *   collect_overhead        1 - collect / env (%)
 *   collect_16_side_by_side_2_lanes_steps_per_s
 *                           crl_collector_run_many, 16 episodes side by
 *                           side on two lanes, into the dataset: what
 *                           `crl dataset` does on two cores (wall steps/s)
 *   collect_16_2_lanes_vs_env
 *                           that rate over env_steps_per_s (x)
 *   *_steps_per_cpu_s, collect_overhead_cpu
 *                           the same per second of the thread's CPU time
 *                           (CLOCK_THREAD_CPUTIME_ID): steadier than wall
 *                           time when other processes share the cores, but
 *                           blind to time spent waiting for the disk
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
#include <time.h>
#include <unistd.h>

#define ROUNDS 10

static double round_seconds;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Steps per wall second and per CPU second of one round. */
typedef struct {
    double wall, cpu;
} rate;

static float clip1(float x) {
    return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

static rate time_raw(crl_env *e, crl_rng *r, double noise, float *act, float *obs, int ad,
                     uint64_t *seed) {
    long n = 0;
    double c0 = cpu_now(), t0 = crl_now(), t;
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
    return (rate){(double)n / (t - t0), (double)n / (cpu_now() - c0)};
}

static rate time_collect(crl_collector *c, crl_rng *r, double noise, crl_dataset *ds,
                         uint64_t *seed, long *episodes) {
    long n = 0;
    double c0 = cpu_now(), t0 = crl_now(), t;
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
    return (rate){(double)n / (t - t0), (double)n / (cpu_now() - c0)};
}

/* 16 episodes side by side on two lanes (what `crl dataset` does on two
 * cores), into ds. Wall time only (two threads). */
#define WIDE 16
static rate time_collect_wide(crl_collector *c, double noise, crl_dataset *ds,
                              uint64_t *seed, long *episodes) {
    long n = 0;
    double t0 = crl_now(), t;
    do {
        uint64_t seeds[WIDE];
        int random[WIDE] = {0};
        crl_rng rngs[WIDE];
        const char *src[WIDE];
        crl_ds_episode eps[WIDE];
        for (int j = 0; j < WIDE; j++) {
            seeds[j] = (*seed)++;
            crl_rng_seed(&rngs[j], seeds[j]);
            src[j] = "scripted+noise";
        }
        crl_err err = {0};
        if (crl_collector_run_many(c, WIDE, seeds, random, noise, rngs, src, ds, eps,
                                   &err)) {
            fprintf(stderr, "bench_dataset: %s\n", err.msg);
            exit(1);
        }
        for (int j = 0; j < WIDE; j++) n += eps[j].length;
        *episodes += WIDE;
        t = crl_now();
    } while (t - t0 < round_seconds);
    return (rate){(double)n / (t - t0), 0};
}

static void keep_best(rate *best, rate r) {
    if (r.wall > best->wall) best->wall = r.wall;
    if (r.cpu > best->cpu) best->cpu = r.cpu;
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
    round_seconds = seconds / (4.0 * ROUNDS);
    crl_err err = {0};
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    crl_collector *col = NULL, *wide = NULL;
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
        crl_collector_create_batch(spec, NULL, 0, WIDE, 2, &wide, &err) ||
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
    uint64_t s1 = 0, s2 = 0, s3 = 0, s4 = 1u << 30;
    long episodes = 0;
    rate raw = {0, 0}, nostore = {0, 0}, collect = {0, 0}, wide16 = {0, 0};
    for (int round = 0; round < ROUNDS; round++) {
        keep_best(&raw, time_raw(env, &r1, noise, act, obs, ad, &s1));
        keep_best(&nostore, time_collect(col, &r2, noise, NULL, &s2, &episodes));
        keep_best(&collect, time_collect(col, &r3, noise, ds, &s3, &episodes));
        keep_best(&wide16, time_collect_wide(wide, noise, ds, &s4, &episodes));
    }
    if (crl_dataset_flush(ds, &err)) {
        fprintf(stderr, "bench_dataset: %s\n", err.msg);
        return 1;
    }
    crl_dataset_close(ds);
    struct stat sb;
    double bytes = stat(path, &sb) == 0 ? (double)sb.st_size : 0;
    printf("task: %s\n", task);
    printf("env_steps_per_s: %.0f steps/s\n", raw.wall);
    printf("collect_nostore_steps_per_s: %.0f steps/s\n", nostore.wall);
    printf("collect_steps_per_s: %.0f steps/s\n", collect.wall);
    printf("collect_overhead: %.1f %%\n", 100.0 * (1.0 - collect.wall / raw.wall));
    printf("collect_16_side_by_side_2_lanes_steps_per_s: %.0f steps/s\n", wide16.wall);
    printf("collect_16_2_lanes_vs_env: %.2f x\n", wide16.wall / raw.wall);
    printf("env_steps_per_cpu_s: %.0f steps/s\n", raw.cpu);
    printf("collect_nostore_steps_per_cpu_s: %.0f steps/s\n", nostore.cpu);
    printf("collect_steps_per_cpu_s: %.0f steps/s\n", collect.cpu);
    printf("collect_overhead_cpu: %.1f %%\n", 100.0 * (1.0 - collect.cpu / raw.cpu));
    printf("bytes_per_1000_episodes: %.0f bytes\n",
           episodes ? 1000.0 * bytes / (double)episodes : 0.0);
    unlink(path);
    rmdir(dir);
    free(obs);
    free(act);
    crl_collector_free(col);
    crl_collector_free(wide);
    crl_env_free(env);
    crl_env_spec_free(spec);
    return 0;
}
