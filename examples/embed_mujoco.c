/* embed_mujoco: run a trained crl agent in a MuJoCo loop that this program
 * owns. Only the public API is used (crl/policy.h and MuJoCo).
 *
 *   crl export --db runs.db --run 3 -o agent.crlp        # the agent
 *   crl export --task-xml push -o push.xml               # the task's MJCF
 *   embed_mujoco agent.crlp push.xml --episodes 10 --seed 12345
 *
 * prints every episode's return and success and the same summary line as
 * `crl eval --db runs.db --run 3 --task P --episodes 10 --seed 12345`, with
 * the same numbers: the episodes start from the states crl's evaluation
 * starts from, and act on one batch of all episodes as crl eval does. The
 * rounding of a matrix product depends on the batch size, so the batch must
 * have as many rows as crl's: crl eval on a single-env run (crl train
 * --env) acts on N rows for N episodes, on a continual run (--scenario) on
 * N + 1 (its evaluator keeps a row for training's deterministic episode):
 * pass --rows N+1 for those. Extra rows act on zeros and are ignored.
 *
 * --one-by-one runs the episodes one after another with the simplest loop
 * (crl_policy_act_mj, one row).
 *
 * Build: see examples/README.md (pkg-config or CMake). */
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <crl/policy.h>

typedef struct {
    const char *policy, *xml;
    int task, episodes, rows, one_by_one;
    unsigned long long seed;
} options;

static int usage(void) {
    fprintf(stderr, "usage: embed_mujoco POLICY.crlp TASK.xml [--task I] [--episodes N] "
                    "[--seed S] [--rows R] [--one-by-one]\n");
    return 2;
}

static int parse(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->episodes = 10;
    o->seed = 12345; /* crl eval's default */
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--task") && v) {
            o->task = atoi(v);
            i++;
        } else if (!strcmp(a, "--episodes") && v) {
            o->episodes = atoi(v);
            i++;
        } else if (!strcmp(a, "--rows") && v) {
            o->rows = atoi(v);
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            o->seed = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--one-by-one")) {
            o->one_by_one = 1;
        } else if (a[0] != '-' && pos == 0) {
            o->policy = a;
            pos++;
        } else if (a[0] != '-' && pos == 1) {
            o->xml = a;
            pos++;
        } else {
            return -1;
        }
    }
    if (!o->rows) o->rows = o->episodes;
    return o->policy && o->xml && o->episodes >= 1 && o->episodes <= 1000 &&
                   o->rows >= o->episodes && o->rows <= 1001
               ? 0
               : -1;
}

/* The episodes side by side, acting on one batch of R rows (as crl eval
 * does). */
static int run_batched(crl_policy *p, const options *o, const mjModel *m, float *ret,
                       int *succ, int *steps) {
    const int N = o->episodes, R = o->rows;
    const int O = crl_policy_obs_dim(p), A = crl_policy_act_dim(p);
    const int frame_skip = crl_policy_task_frame_skip(p, o->task);
    char err[512];
    int rc = crl_policy_set_batch(p, R);
    mjData **d = calloc((size_t)N, sizeof *d);
    crl_policy_env **env = calloc((size_t)N, sizeof *env);
    float *obs = calloc((size_t)R * O, sizeof *obs),
          *act = calloc((size_t)R * A, sizeof *act);
    int *done = calloc((size_t)N, sizeof *done);
    if (rc || !d || !env || !obs || !act || !done) {
        fprintf(stderr, "embed_mujoco: out of memory\n");
        rc = -1;
        goto out;
    }
    for (int k = 0; k < N; k++) {
        if (!(d[k] = mj_makeData(m)) ||
            crl_policy_env_create(p, o->task, m, &env[k], err, sizeof err)) {
            fprintf(stderr, "embed_mujoco: %s\n", d[k] ? err : "mj_makeData failed");
            rc = -1;
            goto out;
        }
        /* Episode k of crl eval --seed S starts from this seed. */
        crl_policy_env_reset(env[k], d[k], crl_policy_eval_seed(o->seed, k),
                             obs + (size_t)k * O);
    }
    for (int active = N; active > 0;) {
        /* Rows of finished episodes (and extra rows) are computed too and
         * ignored, so that the batch keeps crl eval's size. */
        if ((rc = crl_policy_act_batch(p, o->task, R, obs, act, CRL_POLICY_DETERMINISTIC,
                                       NULL))) {
            fprintf(stderr, "embed_mujoco: %s\n", crl_policy_error(p));
            goto out;
        }
        for (int k = 0; k < N; k++) {
            if (done[k]) continue;
            crl_policy_env_apply(env[k], d[k], act + (size_t)k * A);
            for (int s = 0; s < frame_skip; s++) mj_step(m, d[k]);
            crl_policy_step st;
            crl_policy_env_outcome(env[k], d[k], &st);
            crl_policy_env_observe(env[k], d[k], obs + (size_t)k * O);
            ret[k] += st.reward; /* crl sums rewards in float: so do we */
            succ[k] |= st.success != 0;
            steps[k] = st.steps;
            if (st.terminal || st.truncated) {
                done[k] = 1;
                active--;
            }
        }
    }
out:
    for (int k = 0; env && k < N; k++) crl_policy_env_free(env[k]);
    for (int k = 0; d && k < N; k++)
        if (d[k]) mj_deleteData(d[k]);
    free(d);
    free(env);
    free(obs);
    free(act);
    free(done);
    return rc;
}

/* One episode after another: the smallest loop that runs a crl agent. */
static int run_one_by_one(crl_policy *p, const options *o, const mjModel *m, float *ret,
                          int *succ, int *steps) {
    const int frame_skip = crl_policy_task_frame_skip(p, o->task);
    mjData *d = mj_makeData(m);
    if (!d) return -1;
    int rc = 0;
    for (int k = 0; !rc && k < o->episodes; k++) {
        rc = crl_policy_reset_mj(p, o->task, m, d, crl_policy_eval_seed(o->seed, k));
        for (crl_policy_step st = {0}; !rc && !st.terminal && !st.truncated;) {
            if ((rc = crl_policy_act_mj(p, o->task, m, d))) break;
            for (int s = 0; s < frame_skip; s++) mj_step(m, d);
            if ((rc = crl_policy_outcome_mj(p, o->task, m, d, &st))) break;
            ret[k] += st.reward;
            succ[k] |= st.success != 0;
            steps[k] = st.steps;
        }
    }
    if (rc) fprintf(stderr, "embed_mujoco: %s\n", crl_policy_error(p));
    mj_deleteData(d);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o)) return usage();
    char err[1000] = "";
    crl_policy *p = NULL;
    if (crl_policy_load(o.policy, &p, err, sizeof err)) {
        fprintf(stderr, "embed_mujoco: %s\n", err);
        return 1;
    }
    if (o.task < 0 || o.task >= crl_policy_num_tasks(p)) {
        fprintf(stderr, "embed_mujoco: task %d not in 0..%d\n", o.task,
                crl_policy_num_tasks(p) - 1);
        crl_policy_free(p);
        return 2;
    }
    /* The task's MJCF, compiled by this program, then the task's modifiers. */
    mjModel *m = mj_loadXML(o.xml, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "embed_mujoco: %s: %s\n", o.xml, err);
        crl_policy_free(p);
        return 1;
    }
    if (crl_policy_prepare_model(p, o.task, m, err, sizeof err)) {
        fprintf(stderr, "embed_mujoco: %s\n", err);
        mj_deleteModel(m);
        crl_policy_free(p);
        return 1;
    }
    const int N = o.episodes;
    float *ret = calloc((size_t)N, sizeof *ret);
    int *succ = calloc((size_t)N, sizeof *succ),
        *steps = calloc((size_t)N, sizeof *steps);
    int rc = !ret || !succ || !steps ? -1
             : o.one_by_one          ? run_one_by_one(p, &o, m, ret, succ, steps)
                                     : run_batched(p, &o, m, ret, succ, steps);
    if (!rc) {
        double r = 0, s = 0;
        for (int k = 0; k < N; k++) {
            printf("episode %d: return %.6f success %d steps %d\n", k, (double)ret[k],
                   succ[k], steps[k]);
            r += ret[k];
            s += succ[k];
        }
        int pos = crl_policy_task_position(p, o.task);
        printf("task %d %s: mean_return %.3f success_rate %.3f (%d deterministic "
               "episodes)\n",
               pos >= 0 ? pos : 0, crl_policy_task_name(p, o.task), r / N, s / N, N);
        printf("mean_return_exact %.17g\n", r / N);
    }
    free(ret);
    free(succ);
    free(steps);
    mj_deleteModel(m);
    crl_policy_free(p);
    return rc ? 1 : 0;
}
