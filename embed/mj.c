/* The MuJoCo side of the policy API: a task of a policy bound to the
 * caller's mjModel / mjData (envs/external.h runs the task's own hooks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/format.h"
#include "embed/internal.h"
#include "envs/external.h"

struct crl_policy_env {
    pol_core *c;
    int task;
    crl_env_ext *x;
};

/* crl's own model of task (compiled once per core, on first use), after
 * checking that this crl's task is the one the file was trained on. */
static int task_spec(pol_core *c, int task, const crl_env_spec **out, char *eb,
                     size_t el) {
    pol_task *t = &c->tasks[task];
    if (t->env_kind != POL_ENV_BUILTIN)
        return pol_fail(
            eb, el, CRL_EINVAL,
            "task %d ('%s') was trained on a user MJCF (crl train --env-xml): "
            "build its observation (sensordata, or qpos then qvel) yourself "
            "and call crl_policy_act",
            task, t->name);
    int rc = CRL_OK;
    pthread_mutex_lock(&c->lock);
    if (!t->spec) {
        crl_err err = {0};
        crl_env_spec *s = NULL;
        char mods[2048] = "";
        if ((rc = crl_env_spec_create(t->name, &s, &err))) {
            pol_fail(eb, el, rc, "task %d: %s", task, err.msg);
        } else if (crl_env_obs_dim(s) != t->obs_dim || crl_env_act_dim(s) != t->act_dim ||
                   (t->frame_skip && crl_env_frame_skip(s) != t->frame_skip) ||
                   (t->max_steps && crl_env_max_steps(s) != t->max_steps)) {
            rc = pol_fail(
                eb, el, CRL_EINVAL,
                "task '%s' of this crl (obs %d, act %d, frame skip %d, %d steps) "
                "is not the one the policy was trained on (obs %d, act %d, %d, "
                "%d)",
                t->name, crl_env_obs_dim(s), crl_env_act_dim(s), crl_env_frame_skip(s),
                crl_env_max_steps(s), t->obs_dim, t->act_dim, t->frame_skip,
                t->max_steps);
        } else if (crl_env_modifiers(s, mods, sizeof mods), strcmp(mods, t->modifiers)) {
            rc =
                pol_fail(eb, el, CRL_EINVAL,
                         "task '%s' of this crl has modifiers %s, the policy was trained "
                         "with %s",
                         t->name, mods, t->modifiers);
        }
        if (rc)
            crl_env_spec_free(s);
        else
            t->spec = s;
    }
    pthread_mutex_unlock(&c->lock);
    *out = t->spec;
    return rc;
}

static int check_task(const crl_policy *p, int task, char *eb, size_t el) {
    if (!p) return pol_fail(eb, el, CRL_EINVAL, "policy is NULL");
    if (task < 0 || task >= p->c->n_tasks)
        return pol_fail(eb, el, CRL_EINVAL, "task %d not in 0..%d", task,
                        p->c->n_tasks - 1);
    return CRL_OK;
}

int crl_policy_write_task_xml(const crl_policy *p, int task, const char *path,
                              char *errbuf, size_t errlen) {
    const crl_env_spec *s = NULL;
    int rc = check_task(p, task, errbuf, errlen);
    if (!rc && !path) rc = pol_fail(errbuf, errlen, CRL_EINVAL, "path is NULL");
    if (!rc) rc = task_spec(p->c, task, &s, errbuf, errlen);
    if (rc) return rc;
    char *text = NULL;
    size_t n = 0;
    crl_err err = {0};
    if ((rc = crl_env_task_xml(s, &text, &n, &err)))
        return pol_fail(errbuf, errlen, rc, "%s", err.msg);
    rc = crl_atomic_write_file(path, text, n, &err);
    free(text);
    if (rc) return pol_fail(errbuf, errlen, rc, "%s", err.msg);
    return CRL_OK;
}

int crl_policy_prepare_model(const crl_policy *p, int task, struct mjModel_ *m,
                             char *errbuf, size_t errlen) {
    const crl_env_spec *s = NULL;
    int rc = check_task(p, task, errbuf, errlen);
    if (!rc) rc = task_spec(p->c, task, &s, errbuf, errlen);
    if (rc) return rc;
    crl_err err = {0};
    if ((rc = crl_env_prepare_model(s, m, &err)))
        return pol_fail(errbuf, errlen, rc, "%s", err.msg);
    return CRL_OK;
}

/* ---- crl_policy_env ------------------------------------------------------------ */

int crl_policy_env_create(const crl_policy *p, int task, const struct mjModel_ *m,
                          crl_policy_env **out, char *errbuf, size_t errlen) {
    if (!out) return pol_fail(errbuf, errlen, CRL_EINVAL, "out is NULL");
    *out = NULL;
    const crl_env_spec *s = NULL;
    int rc = check_task(p, task, errbuf, errlen);
    if (!rc && !m) rc = pol_fail(errbuf, errlen, CRL_EINVAL, "model is NULL");
    if (!rc) rc = task_spec(p->c, task, &s, errbuf, errlen);
    if (rc) return rc;
    crl_policy_env *env = calloc(1, sizeof *env);
    if (!env) return pol_fail(errbuf, errlen, CRL_ENOMEM, "out of memory");
    crl_err err = {0};
    if ((rc = crl_env_ext_create(s, m, &env->x, &err))) {
        free(env);
        return pol_fail(errbuf, errlen, rc, "%s", err.msg);
    }
    env->c = p->c;
    env->task = task;
    pol_core_ref(p->c);
    *out = env;
    return CRL_OK;
}

void crl_policy_env_free(crl_policy_env *env) {
    if (!env) return;
    crl_env_ext_free(env->x);
    pol_core_unref(env->c);
    free(env);
}

static void to_step(const crl_step_info *i, int steps, crl_policy_step *out) {
    out->reward = i->reward;
    out->success = i->success;
    out->terminal = i->terminal;
    out->truncated = i->truncated;
    out->steps = steps;
}

void crl_policy_env_reset(crl_policy_env *env, struct mjData_ *d, uint64_t seed,
                          float *obs) {
    crl_env_ext_reset(env->x, d, seed, obs);
}

void crl_policy_env_observe(crl_policy_env *env, struct mjData_ *d, float *obs) {
    crl_env_ext_observe(env->x, d, obs);
}

void crl_policy_env_apply(crl_policy_env *env, struct mjData_ *d, const float *action) {
    crl_env_ext_apply(env->x, d, action);
}

void crl_policy_env_outcome(crl_policy_env *env, struct mjData_ *d,
                            crl_policy_step *out) {
    crl_step_info i;
    crl_env_ext_outcome(env->x, d, &i);
    to_step(&i, crl_env_ext_steps(env->x), out);
}

/* ---- the one-episode-per-task convenience on a policy ----------------------------- */

void pol_free_envs(crl_policy *p) {
    for (int i = 0; p->envs && i < p->c->n_tasks; i++) {
        crl_policy_env_free(p->envs[i]);
        p->envs[i] = NULL;
    }
}

/* p's environment of task on model m: bound on first use, bound again when
 * the caller switches to another model. */
static int env_of(crl_policy *p, int task, const struct mjModel_ *m, struct mjData_ *d,
                  crl_policy_env **out) {
    char eb[sizeof p->err];
    int rc = check_task(p, task, eb, sizeof eb);
    if (!rc && (!m || !d))
        rc = pol_fail(eb, sizeof eb, CRL_EINVAL, "model or data is NULL");
    if (rc) return p ? pol_set_err(p, rc, "%s", eb) : rc;
    crl_policy_env *env = p->envs[task];
    if (env && crl_env_ext_model(env->x) == (const mjModel *)m) {
        *out = env;
        return CRL_OK;
    }
    crl_policy_env_free(env);
    p->envs[task] = NULL;
    if ((rc = crl_policy_env_create(p, task, m, &p->envs[task], eb, sizeof eb)))
        return pol_set_err(p, rc, "%s", eb);
    *out = p->envs[task];
    return CRL_OK;
}

int crl_policy_reset_mj(crl_policy *p, int task, const struct mjModel_ *m,
                        struct mjData_ *d, uint64_t seed) {
    crl_policy_env *env;
    int rc = env_of(p, task, m, d, &env);
    if (!rc) crl_policy_env_reset(env, d, seed, NULL);
    if (!rc) crl_policy_episode_start(p);
    return rc;
}

int crl_policy_act_mj(crl_policy *p, int task, const struct mjModel_ *m,
                      struct mjData_ *d) {
    crl_policy_env *env;
    int rc = env_of(p, task, m, d, &env);
    if (rc) return rc;
    crl_policy_env_observe(env, d, p->obs1);
    for (int k = 0; k < p->c->obs_dim; k++)
        if (!isfinite(p->obs1[k]))
            return pol_set_err(p, CRL_EMUJOCO,
                               "task %d: observation %d of the simulation is %g: the "
                               "physics diverged (reset the episode)",
                               task, k, (double)p->obs1[k]);
    rc = crl_policy_act(p, task, p->obs1, p->act1, CRL_POLICY_DETERMINISTIC, NULL);
    if (!rc) crl_policy_env_apply(env, d, p->act1);
    return rc;
}

int crl_policy_outcome_mj(crl_policy *p, int task, const struct mjModel_ *m,
                          struct mjData_ *d, crl_policy_step *out) {
    crl_policy_env *env;
    if (!out) return p ? pol_set_err(p, CRL_EINVAL, "out is NULL") : CRL_EINVAL;
    int rc = env_of(p, task, m, d, &env);
    if (!rc) crl_policy_env_outcome(env, d, out);
    return rc;
}
