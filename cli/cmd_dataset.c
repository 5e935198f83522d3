/* crl dataset: collect episodes into a dataset file for offline training,
 * show what a dataset holds, or re-simulate its episodes (docs/dataset.md).
 *
 *   crl dataset (--tasks A,B | --scenario NAME) -o FILE [--episodes N]
 *               [--noise S] [--random-frac F] [--seed S]
 *               [--policy FILE.crlp | --run-db DB --run ID [--run-task T]]
 *   crl dataset --info FILE
 *   crl dataset --verify FILE [--task T]
 *
 * Everything is checked before the output is opened: a bad flag, an unknown
 * task or scenario, a task without the chosen source, an output that is not
 * a dataset give one line and exit 2 and leave no file. An existing dataset
 * is appended to. Ctrl-C stops after the current episodes, commits and exits
 * 130. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/blas.h"
#include "crl/collect.h"
#include "crl/dataset.h"
#include "crl/env.h"
#include "crl/policy.h"
#include "crl/scenario.h"

#define MAX_TASKS 64
/* Episodes of a task collected side by side (one vecenv of this width). */
#define WIDTH 16

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Progress on stderr: every second on a terminal, every 10 s in a log. */
typedef struct {
    int tty;
    double last;
} progress;

static int progress_due(progress *p, int final) {
    double now = crl_now();
    if (!final && now - p->last < (p->tty ? 1.0 : 10.0)) return 0;
    p->last = now;
    return 1;
}

/* ---- --info ------------------------------------------------------------------ */

static int dataset_info(const char *path) {
    crl_err err = {0};
    crl_dataset *ds = NULL;
    int rc = crl_dataset_open(path, 0, &ds, &err);
    if (rc) {
        fprintf(stderr, "crl dataset: %s\n", err.msg);
        return rc == CRL_ENOTFOUND || rc == CRL_ECORRUPT || rc == CRL_EVERSION ? 2 : 1;
    }
    crl_ds_task_summary *s = NULL;
    int n = 0;
    rc = crl_dataset_summary(ds, &s, &n, &err);
    crl_dataset_close(ds);
    if (rc) {
        fprintf(stderr, "crl dataset: %s\n", err.msg);
        return 1;
    }
    int64_t eps = 0, steps = 0;
    for (int i = 0; i < n; i++) eps += s[i].episodes, steps += s[i].steps;
    long long size = file_size(path);
    printf("%s: %lld episodes, %lld steps of %d task%s; file %lld bytes", path,
           (long long)eps, (long long)steps, n, n == 1 ? "" : "s", size);
    if (eps > 0)
        printf(" (%.0f bytes per 1,000 episodes)", 1000.0 * (double)size / (double)eps);
    printf("\n");
    if (n > 0) {
        printf("| task | obs | act | episodes | steps | success | mean return | "
               "bytes per 1,000 episodes | model "
               "|\n|---|---|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < n; i++)
            printf("| %s | %d | %d | %lld | %lld | %.3f | %.2f | %.0f | %s |\n",
                   s[i].task, s[i].obs_dim, s[i].act_dim, (long long)s[i].episodes,
                   (long long)s[i].steps, s[i].success_rate, s[i].mean_return,
                   1000.0 * (double)s[i].bytes / (double)s[i].episodes, s[i].model_hash);
    }
    free(s);
    return 0;
}

/* ---- --verify ---------------------------------------------------------------- */

static int dataset_verify(const char *path, const char *only) {
    crl_err err = {0};
    crl_dataset *ds = NULL;
    int rc = crl_dataset_open(path, 0, &ds, &err);
    if (rc) {
        fprintf(stderr, "crl dataset: %s\n", err.msg);
        return rc == CRL_ENOTFOUND || rc == CRL_ECORRUPT || rc == CRL_EVERSION ? 2 : 1;
    }
    crl_ds_task_summary *s = NULL;
    int n = 0;
    rc = crl_dataset_summary(ds, &s, &n, &err);
    if (rc) {
        fprintf(stderr, "crl dataset: %s\n", err.msg);
        crl_dataset_close(ds);
        return 1;
    }
    int found = !only;
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        if (!only || !strcmp(s[i].task, only)) found = 1, total += s[i].episodes;
    if (!found) {
        fprintf(stderr,
                "crl dataset: %s has no episodes of task '%s' (see 'crl dataset --info "
                "%s')\n",
                path, only, path);
        free(s);
        crl_dataset_close(ds);
        return 2;
    }
    catch_signals();
    progress pg = {isatty(2), crl_now()};
    int64_t done = 0, verified = 0, shown = 0, corrupt = 0;
    double t0 = crl_now();
    int code = 0;
    for (int i = 0; i < n && !code && !g_stop; i++) {
        if (only && strcmp(s[i].task, only)) continue;
        crl_env_spec *spec = NULL;
        crl_err e2 = {0};
        int have_spec = crl_env_spec_create(s[i].task, &spec, &e2) == CRL_OK;
        int64_t *ids = NULL;
        int m = 0;
        rc = crl_dataset_episode_ids(ds, s[i].task, &ids, &m, &err);
        if (rc) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            code = 1;
        }
        for (int k = 0; !code && k < m && !g_stop; k++) {
            crl_ds_episode ep;
            rc = crl_dataset_episode(ds, ids[k], &ep, &err);
            crl_collect_check res = {0};
            if (rc) {
                snprintf(res.what, sizeof res.what, "%.470s", err.msg);
                corrupt += rc == CRL_ECORRUPT;
            } else if (!have_spec) {
                snprintf(
                    res.what, sizeof res.what,
                    "episode %lld: this crl has no task '%.60s': it cannot be replayed",
                    (long long)ids[k], s[i].task);
            } else {
                rc = crl_collect_verify(spec, &ep, &res, &err);
                if (rc) snprintf(res.what, sizeof res.what, "%.470s", err.msg);
                corrupt += rc == CRL_ECORRUPT;
            }
            crl_ds_episode_free(&ep);
            done++;
            if (res.verified)
                verified++;
            else if (shown++ < 10)
                fprintf(stderr, "%s%s: %s%s\n", pg.tty ? "\r\033[K" : "", s[i].task,
                        res.replayable ? "" : "not replayable: ", res.what);
            if (progress_due(&pg, 0)) {
                double el = crl_now() - t0;
                char eta[32];
                cli_fmt_eta(done > 0 ? el / (double)done * (double)(total - done) : -1,
                            eta, sizeof eta);
                fprintf(stderr,
                        "%stask %d %s (%d/%d) | episode %lld/%lld | %.0f episodes/s | "
                        "verified %lld | ETA %s%s",
                        pg.tty ? "\r\033[K" : "", i, s[i].task, i + 1, n, (long long)done,
                        (long long)total, el > 0 ? (double)done / el : 0.0,
                        (long long)verified, eta, pg.tty ? "" : "\n");
                fflush(stderr);
            }
        }
        free(ids);
        crl_env_spec_free(spec);
    }
    if (pg.tty) fprintf(stderr, "\r\033[K");
    if (shown > 10)
        fprintf(stderr, "... and %lld more that do not verify\n",
                (long long)(shown - 10));
    free(s);
    crl_dataset_close(ds);
    if (code) return code;
    printf("verified: %lld/%lld\n", (long long)verified, (long long)done);
    if (g_stop) {
        fprintf(stderr, "crl dataset: interrupted after %lld of %lld episodes\n",
                (long long)done, (long long)total);
        return 130;
    }
    /* A damaged file is bad input (exit 2); episodes that read but do not
     * replay are a failed check (exit 1). */
    if (corrupt) {
        fprintf(stderr, "crl dataset: %s: %lld episode%s could not be read (corrupt)\n",
                path, (long long)corrupt, corrupt == 1 ? "" : "s");
        return 2;
    }
    return verified == done ? 0 : 1;
}

/* ---- collection -------------------------------------------------------------- */

/* Split a comma-separated list into unique names (in place; repeats, as in
 * a scenario that visits a task twice, are kept once). */
static int add_task(const char **tasks, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(tasks[i], name)) return 0;
    if (*n >= MAX_TASKS) return -1;
    tasks[(*n)++] = name;
    return 0;
}

static const crl_env_entry *find_entry(const char *name) {
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name)) return &list[i];
    return NULL;
}

/* Does a file exist at path (a dangling one too)? */
static int exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

int cmd_dataset(int argc, char **argv) {
    const char *tasks_arg = NULL, *scenario = NULL, *out = NULL, *info = NULL,
               *verify = NULL, *only = NULL, *policy_path = NULL, *run_db = NULL;
    int episodes = 100, quiet = 0, threads = 0;
    int64_t run = 0, run_task = -1;
    double noise = 0, random_frac = 0;
    uint64_t seed = 0;
    const opt_def defs[] = {
        {"tasks", OPT_STR, &tasks_arg, 0, 0,
         "comma-separated task names (see 'crl tasks')", 0},
        {"scenario", OPT_STR, &scenario, 0, 0,
         "every task of a scenario (see 'crl scenarios'), each once", 0},
        {"episodes", OPT_INT, &episodes, 1, 1e8, "episodes per task", 0},
        {"noise", OPT_DOUBLE, &noise, 0, 10,
         "std of the Gaussian noise added to every action component (then clipped to "
         "[-1, 1])",
         0},
        {"random-frac", OPT_DOUBLE, &random_frac, 0, 1,
         "fraction of the episodes with uniform random actions", 0},
        {"seed", OPT_U64, &seed, 0, 1.8e19,
         "episode i of a task is reset with seed S+i and draws its noise from its own "
         "stream",
         0},
        {"threads", OPT_INT, &threads, 0, 256,
         "env threads (0: one per core; up to 2 step the episodes side by side)", 0},
        {"output", OPT_STR, &out, 0, 0,
         "the dataset file; an existing dataset is appended to", 0},
        {"policy", OPT_STR, &policy_path, 0, 0,
         "act with an exported policy (.crlp) instead of the scripted policy", 0},
        {"run-db", OPT_STR, &run_db, 0, 0,
         "act with the latest checkpoint of --run in this run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id in --run-db (see 'crl runs')", 0},
        {"run-task", OPT_I64, &run_task, -1, 1e6,
         "with --run: only this scenario position's policy (-1: every task)", 0},
        {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress lines", 0},
        {"info", OPT_STR, &info, 0, 0,
         "show what a dataset holds, per task (episodes, steps, success, size)", 0},
        {"verify", OPT_STR, &verify, 0, 0,
         "re-simulate every episode of a dataset; exit 1 if one differs", 0},
        {"task", OPT_STR, &only, 0, 0, "with --verify: only this task", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    unsigned char given[sizeof defs / sizeof defs[0]];
    int rc = opts_parse_given(
        "dataset", defs, nd, argc, argv,
        "(--tasks A,B | --scenario NAME) -o FILE [--episodes N] [--noise S]\n"
        "         [--random-frac F] [--seed S] [--threads N]\n"
        "         [--policy FILE.crlp | --run-db DB --run ID [--run-task T]]\n"
        "       crl dataset --info FILE\n"
        "       crl dataset --verify FILE [--task T]",
        given);
    if (rc) return rc == 1 ? 0 : rc;

    /* ---- the modes and their flags */
    int n_modes = !!info + !!verify;
    if (n_modes > 1) {
        fprintf(stderr, "crl dataset: --info and --verify are separate commands\n");
        return 2;
    }
    if (n_modes) {
        for (int i = 0; i < nd; i++) {
            const char *f = defs[i].name;
            if (!given[i] || !strcmp(f, "info") || !strcmp(f, "verify") ||
                (verify && (!strcmp(f, "task") || !strcmp(f, "quiet"))))
                continue;
            fprintf(stderr, "crl dataset: --%s does not go with --%s\n", f,
                    info ? "info" : "verify");
            return 2;
        }
        return info ? dataset_info(info) : dataset_verify(verify, only);
    }
    if (only) {
        fprintf(stderr,
                "crl dataset: --task goes with --verify (collect with --tasks)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "crl dataset: the output file is required (-o FILE.db)\n");
        return 2;
    }
    if (tasks_arg && scenario) {
        fprintf(stderr, "crl dataset: give --tasks or --scenario, not both\n");
        return 2;
    }
    if (policy_path && (run_db || run)) {
        fprintf(stderr, "crl dataset: give --policy or --run-db/--run, not both\n");
        return 2;
    }
    if (!!run_db != !!run) {
        fprintf(stderr, "crl dataset: --run-db DB and --run ID go together\n");
        return 2;
    }
    int run_task_given = 0;
    for (int i = 0; i < nd; i++)
        if (!strcmp(defs[i].name, "run-task")) run_task_given = given[i];
    if (run_task_given && !run) {
        fprintf(stderr, "crl dataset: --run-task goes with --run-db and --run\n");
        return 2;
    }
    const int use_policy = policy_path || run_db;
    if (!tasks_arg && !scenario && !use_policy) {
        fprintf(stderr, "crl dataset: --tasks A,B or --scenario NAME is required\n");
        return 2;
    }

    /* ---- the tasks */
    const char *tasks[MAX_TASKS];
    int n_tasks = 0;
    char *tasks_copy = NULL;
    if (scenario) {
        const crl_scenario *sc = crl_scenario_find(scenario);
        if (!sc) {
            fprintf(stderr, "crl dataset: unknown scenario '%s' (see 'crl scenarios')\n",
                    scenario);
            return 2;
        }
        for (int i = 0; i < sc->n_tasks; i++)
            if (add_task(tasks, &n_tasks, sc->tasks[i])) {
                fprintf(stderr, "crl dataset: more than %d tasks\n", MAX_TASKS);
                return 2;
            }
    } else if (tasks_arg) {
        tasks_copy = strdup(tasks_arg);
        if (!tasks_copy) return 1;
        char *save = NULL;
        for (char *t = strtok_r(tasks_copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            if (add_task(tasks, &n_tasks, t)) {
                fprintf(stderr, "crl dataset: more than %d tasks\n", MAX_TASKS);
                free(tasks_copy);
                return 2;
            }
        if (n_tasks == 0) {
            fprintf(stderr, "crl dataset: --tasks names no task\n");
            free(tasks_copy);
            return 2;
        }
    }
    for (int i = 0; i < n_tasks; i++) {
        const crl_env_entry *en = find_entry(tasks[i]);
        if (!en) {
            fprintf(stderr, "crl dataset: unknown task '%s' (see 'crl tasks')\n",
                    tasks[i]);
            free(tasks_copy);
            return 2;
        }
        if (!use_policy && !en->has_scripted) {
            fprintf(stderr,
                    "crl dataset: task '%s' has no scripted policy (use --policy or "
                    "--run-db/--run)\n",
                    tasks[i]);
            free(tasks_copy);
            return 2;
        }
    }

    /* ---- the output must be a dataset or nothing; read-only checks */
    crl_err err = {0};
    int out_existed = exists(out);
    crl_ds_task_summary *have = NULL;
    int n_have = 0;
    if (out_existed) {
        crl_dataset *probe = NULL;
        rc = crl_dataset_open(out, 0, &probe, &err);
        if (!rc) rc = crl_dataset_summary(probe, &have, &n_have, &err);
        crl_dataset_close(probe);
        if (rc) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            free(tasks_copy);
            return rc == CRL_ECORRUPT || rc == CRL_EVERSION || rc == CRL_EINVAL ? 2 : 1;
        }
    } else {
        /* The directory must exist: checked now, not after the collection. */
        char *dir = strdup(out);
        if (!dir) return 1;
        char *slash = strrchr(dir, '/');
        if (slash) {
            if (slash == dir)
                slash[1] = 0;
            else
                *slash = 0;
            struct stat sb;
            if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "crl dataset: cannot create %s: %s is not a directory\n",
                        out, dir);
                free(dir);
                free(tasks_copy);
                return 2;
            }
        }
        free(dir);
    }

    /* ---- the source */
    crl_policy *policy = NULL;
    char source[600];
    if (use_policy) {
        if ((rc = crl_blas_init(1, &err))) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            free(have);
            free(tasks_copy);
            return 1;
        }
        if (policy_path) {
            char ebuf[512] = "";
            rc = crl_policy_load(policy_path, &policy, ebuf, sizeof ebuf);
            if (rc) crl_errf(&err, rc, "%s", ebuf);
            snprintf(source, sizeof source, "policy %.500s", policy_path);
        } else {
            rc = crl_collect_run_policy(run_db, run, (int)run_task, &policy, &err);
            snprintf(source, sizeof source, "run %.500s:%lld", run_db, (long long)run);
        }
        if (rc) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            free(have);
            free(tasks_copy);
            return rc == CRL_ENOMEM || rc == CRL_EIO ? 1 : 2;
        }
        if (n_tasks == 0) {
            for (int k = 0; k < crl_policy_num_tasks(policy); k++) {
                const char *nm = crl_policy_task_name(policy, k);
                if (nm && find_entry(nm)) add_task(tasks, &n_tasks, nm);
            }
            if (n_tasks == 0) {
                fprintf(stderr, "crl dataset: the policy has no built-in crl task\n");
                crl_policy_free(policy);
                free(have);
                return 2;
            }
        }
    } else {
        snprintf(source, sizeof source, "scripted");
    }
    int policy_task[MAX_TASKS];
    for (int i = 0; i < n_tasks; i++) {
        policy_task[i] = -1;
        if (!policy) continue;
        for (int k = 0; k < crl_policy_num_tasks(policy); k++) {
            const char *nm = crl_policy_task_name(policy, k);
            if (nm && !strcmp(nm, tasks[i])) {
                policy_task[i] = k;
                break;
            }
        }
        if (policy_task[i] < 0) {
            fprintf(stderr,
                    "crl dataset: the policy has no task '%s' (it has %d tasks)\n",
                    tasks[i], crl_policy_num_tasks(policy));
            crl_policy_free(policy);
            free(have);
            free(tasks_copy);
            return 2;
        }
    }
    char noisy[640], *src_noisy = source;
    if (noise > 0) {
        snprintf(noisy, sizeof noisy, "%s+noise %g", source, noise);
        src_noisy = noisy;
    }

    /* ---- every task's env and collector; its earlier episodes must match */
    crl_env_spec *specs[MAX_TASKS] = {0};
    crl_collector *cols[MAX_TASKS] = {0};
    int code = 0;
    const int lanes =
        (threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN)) >= 2 ? 2 : 1;
    for (int i = 0; i < n_tasks && !code; i++) {
        rc = crl_env_spec_create(tasks[i], &specs[i], &err);
        if (!rc)
            rc = crl_collector_create_batch(specs[i], policy, policy_task[i],
                                            episodes < WIDTH ? episodes : WIDTH, lanes,
                                            &cols[i], &err);
        if (rc) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            code = rc == CRL_EINVAL || rc == CRL_ENOTFOUND ? 2 : 1;
            break;
        }
        for (int h = 0; h < n_have; h++) {
            if (strcmp(have[h].task, tasks[i])) continue;
            char hash[17];
            rc = crl_env_model_hash(specs[i], hash, &err);
            if (rc) {
                fprintf(stderr, "crl dataset: %s\n", err.msg);
                code = 1;
            } else if (have[h].obs_dim != crl_env_obs_dim(specs[i]) ||
                       have[h].act_dim != crl_env_act_dim(specs[i]) ||
                       strcmp(have[h].model_hash, hash)) {
                fprintf(stderr,
                        "crl dataset: %s holds episodes of '%s' with %d observations, %d "
                        "actions, model %s; this crl's task has %d, %d, model %s: write "
                        "to another file\n",
                        out, tasks[i], have[h].obs_dim, have[h].act_dim,
                        have[h].model_hash, crl_env_obs_dim(specs[i]),
                        crl_env_act_dim(specs[i]), hash);
                code = 2;
            }
        }
    }
    int64_t before = 0;
    for (int h = 0; h < n_have; h++) before += have[h].episodes;
    free(have);

    /* ---- collect */
    crl_dataset *ds = NULL;
    int opened = 0;
    if (!code) {
        rc = crl_dataset_open(out, 1, &ds, &err);
        opened = rc == CRL_OK;
        if (rc) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            code = rc == CRL_ECORRUPT || rc == CRL_EVERSION ? 2 : 1;
        }
    }
    int64_t written = 0;
    if (!code) {
        if (out_existed && !quiet)
            fprintf(stderr, "crl dataset: appending to %s (%lld episodes already)\n", out,
                    (long long)before);
        catch_signals();
        progress pg = {isatty(2), crl_now()};
        const int64_t total = (int64_t)n_tasks * episodes;
        double t0 = crl_now();
        int64_t steps = 0;
        for (int i = 0; i < n_tasks && !code && !g_stop; i++) {
            int succ = 0;
            const int width = crl_collector_width(cols[i]);
            for (int k0 = 0; k0 < episodes && !g_stop; k0 += width) {
                /* Episodes k0 .. k0 + m - 1 side by side, each with its
                 * own seed and generator (what it holds does not depend on
                 * the width or the threads). */
                const int m = episodes - k0 < width ? episodes - k0 : width;
                uint64_t seeds[WIDTH];
                int random[WIDTH];
                crl_rng rngs[WIDTH];
                const char *src[WIDTH];
                crl_ds_episode eps[WIDTH];
                for (int j = 0; j < m; j++) {
                    const int k = k0 + j;
                    seeds[j] = seed + (uint64_t)k;
                    random[j] = crl_collect_is_random(k, random_frac);
                    crl_rng_seed_stream(&rngs[j], seed + (uint64_t)k, (uint64_t)i);
                    src[j] = random[j] ? "random" : src_noisy;
                }
                rc = crl_collector_run_many(cols[i], m, seeds, random, noise, rngs, src,
                                            ds, eps, &err);
                if (rc) {
                    fprintf(stderr, "%scrl dataset: %s\n",
                            pg.tty && !quiet ? "\r\033[K" : "", err.msg);
                    code = cli_exit_code(rc) == 2 ? 1 : cli_exit_code(rc);
                    break;
                }
                for (int j = 0; j < m; j++) {
                    written++;
                    steps += eps[j].length;
                    succ += eps[j].success;
                }
                const int k = k0 + m - 1;
                int final = i == n_tasks - 1 && k == episodes - 1;
                if (!quiet && progress_due(&pg, final)) {
                    double el = crl_now() - t0;
                    char eta[32];
                    cli_fmt_eta(el / (double)written * (double)(total - written), eta,
                                sizeof eta);
                    fprintf(stderr,
                            "%stask %d %s (%d/%d) | episode %d/%d | %.0f env steps/s | "
                            "success "
                            "%.2f | ETA %s%s",
                            pg.tty ? "\r\033[K" : "", i, tasks[i], i + 1, n_tasks, k + 1,
                            episodes, el > 0 ? (double)steps / el : 0.0,
                            (double)succ / (double)(k + 1), eta,
                            pg.tty && !final ? "" : "\n");
                    fflush(stderr);
                }
            }
        }
        if (!quiet && pg.tty && (g_stop || code)) fprintf(stderr, "\r\033[K");
        rc = crl_dataset_flush(ds, &err);
        if (rc && !code) {
            fprintf(stderr, "crl dataset: %s\n", err.msg);
            code = 1;
        }
        crl_dataset_close(ds);
    }
    for (int i = 0; i < n_tasks; i++) {
        crl_collector_free(cols[i]);
        crl_env_spec_free(specs[i]);
    }
    crl_policy_free(policy);
    free(tasks_copy);
    /* A file this command created goes when it never got an episode or when
     * the collection failed (a full disk: docs/robustness.md), so a failure
     * leaves nothing behind. It is made in place, not under a temporary
     * name, because it is a valid dataset after every commit: it can be
     * read while it grows, and Ctrl-C keeps what was collected. */
    if (opened && !out_existed && (written == 0 || code)) {
        char side[4200];
        snprintf(side, sizeof side, "%s-wal", out);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", out);
        unlink(side);
        unlink(out);
    }
    if (code) return code;
    long long size = file_size(out);
    int64_t all = before + written;
    if (g_stop) {
        if (written)
            fprintf(
                stderr,
                "crl dataset: interrupted; %s keeps the %lld episodes collected (%lld in "
                "the file)\n",
                out, (long long)written, (long long)all);
        else
            fprintf(stderr, "crl dataset: interrupted before the first episode; %s\n",
                    out_existed ? "the dataset is unchanged" : "no file written");
        return 130;
    }
    printf(
        "%s: %lld episodes written (%lld in the file), %lld bytes, %.0f bytes per 1,000 "
        "episodes\n",
        out, (long long)written, (long long)all, size,
        all > 0 ? 1000.0 * (double)size / (double)all : 0.0);
    return 0;
}
