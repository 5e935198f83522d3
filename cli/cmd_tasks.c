/* crl tasks / scenarios / scripted: what can be trained on, and a check that
 * a task is solvable (its scripted policy's success rate) or not trivially
 * so (random actions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/scenario.h"

/* Defined in envs/env.c (not yet declared in include/crl/env.h): writes the
 * task's scripted action, CRL_ENOTFOUND if it has no scripted policy. */

int cmd_tasks(int argc, char **argv) {
    int rc = opts_parse("tasks", NULL, 0, argc, argv, "");
    if (rc) return rc == 1 ? 0 : rc;
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    int w = 4;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(list[i].name);
        if (l > w) w = l;
    }
    printf("%-*s  %-12s %4s %4s  %-8s %s\n", w, "task", "group", "obs", "act", "scripted",
           "description");
    for (int i = 0; i < n; i++)
        printf("%-*s  %-12s %4d %4d  %-8s %s\n", w, list[i].name, list[i].group,
               list[i].obs_dim, list[i].act_dim, list[i].has_scripted ? "yes" : "no",
               list[i].description);
    return 0;
}

int cmd_scenarios(int argc, char **argv) {
    int rc = opts_parse("scenarios", NULL, 0, argc, argv, "");
    if (rc) return rc == 1 ? 0 : rc;
    const crl_scenario *list;
    int n = crl_scenario_list(&list);
    for (int i = 0; i < n; i++) {
        const crl_scenario *sc = &list[i];
        printf("%s (%d tasks): %s\n  ", sc->name, sc->n_tasks, sc->description);
        for (int k = 0; k < sc->n_tasks; k++) printf("%s%s", k ? ", " : "", sc->tasks[k]);
        printf("\n");
    }
    return 0;
}

/* Success rate of `episodes` episodes of task (episode i seeded seed + i;
 * success = success at any step) under its scripted policy, or uniform
 * random actions drawn from a generator seeded with seed. */
static int success_rate(const char *task, int episodes, uint64_t seed, int random,
                        int progress, double *out, crl_err *err) {
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    int rc;
    if ((rc = crl_env_spec_create(task, &spec, err)) ||
        (rc = crl_env_create(spec, &env, err))) {
        if (spec) crl_env_spec_free(spec);
        return rc;
    }
    int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
    float *obs = calloc((size_t)od, sizeof *obs), *act = calloc((size_t)ad, sizeof *act);
    if (!obs || !act) {
        rc = crl_errf(err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    crl_rng rng;
    crl_rng_seed(&rng, seed);
    int successes = 0;
    for (int ep = 0; ep < episodes; ep++) {
        crl_env_reset(env, seed + (uint64_t)ep, obs);
        crl_step_info info = {0};
        int success = 0;
        while (!info.terminal && !info.truncated) {
            if (random)
                for (int k = 0; k < ad; k++)
                    act[k] = (float)crl_rng_range(&rng, -1.0, 1.0);
            else
                crl_env_scripted_action(env, act);
            crl_env_step(env, act, obs, &info);
            success |= info.success != 0;
        }
        successes += success;
        if (progress)
            fprintf(stderr, "\r%s%s: episode %d/%d, %d successes", task,
                    random ? " (random)" : "", ep + 1, episodes, successes);
    }
    if (progress) fprintf(stderr, "\r\033[K");
    *out = (double)successes / episodes;
out:
    free(obs);
    free(act);
    crl_env_free(env);
    crl_env_spec_free(spec);
    return rc;
}

int cmd_scripted(int argc, char **argv) {
    const char *task = NULL;
    int episodes = 100, random = 0, all = 0;
    uint64_t seed = 0;
    const opt_def defs[] = {
        {"task", OPT_STR, &task, 0, 0, "task name (see 'crl tasks')", 0},
        {"all", OPT_FLAG, &all, 0, 0,
         "every task with a scripted policy: a table of scripted and random success", 0},
        {"episodes", OPT_INT, &episodes, 1, 1e7, "number of episodes", 0},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "episode i is reset with seed S+i", 0},
        {"random", OPT_FLAG, &random, 0, 0,
         "uniform random actions (seeded by --seed) instead of the scripted policy", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse("scripted", defs, nd, argc, argv,
                        "--task NAME | --all [--episodes N] [--seed S] [--random]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!task && !all) {
        fprintf(stderr,
                "crl scripted: --task NAME or --all is required (see 'crl tasks')\n");
        return 2;
    }
    const crl_env_entry *list;
    int n = crl_env_list(&list), progress = isatty(STDERR_FILENO);
    crl_err err = {0};
    if (all) {
        printf("| task | group | scripted | random |\n|---|---|---|---|\n");
        for (int i = 0; i < n; i++) {
            if (!list[i].has_scripted) continue;
            double sr = 0, rr = 0;
            if ((rc = success_rate(list[i].name, episodes, seed, 0, progress, &sr,
                                   &err)) ||
                (rc = success_rate(list[i].name, episodes, seed, 1, progress, &rr,
                                   &err))) {
                fprintf(stderr, "crl scripted: %s: %s\n", list[i].name, err.msg);
                return cli_exit_code(rc);
            }
            printf("| %s | %s | %.2f | %.2f |\n", list[i].name, list[i].group, sr, rr);
            fflush(stdout);
        }
        return 0;
    }
    int found = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].name, task) == 0) found = i;
    if (found < 0) {
        fprintf(stderr, "crl scripted: unknown task '%s' (see 'crl tasks')\n", task);
        return 2;
    }
    if (!random && !list[found].has_scripted) {
        fprintf(stderr, "crl scripted: task '%s' has no scripted policy (use --random)\n",
                task);
        return 2;
    }
    double rate = 0;
    if ((rc = success_rate(task, episodes, seed, random, progress, &rate, &err))) {
        fprintf(stderr, "crl scripted: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    printf("success_rate: %.3f\n", rate);
    return 0;
}
