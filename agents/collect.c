/* crl collect: episodes of a task into a dataset (include/crl/collect.h,
 * docs/dataset.md). */
#include "crl/collect.h"

#include <math.h>
#include <stdarg.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl/episode.h"
#include "crl/export.h"
#include "crl/vecenv.h"

/* One episode in flight: its arrays (of up to max_steps steps), its
 * recorder and, for the scripted source, what the scripted policy changed
 * in its env's state. */
typedef struct {
    crl_episode *rec;
    float *obs;                     /* (max_steps + 1) x obs_dim */
    float *act;                     /* max_steps x act_dim */
    float *rew;                     /* max_steps */
    unsigned char *flags;           /* max_steps */
    unsigned char *snap0, *touched; /* scripted: the state after reset, and
                                       the bytes any scripted call changed */
    crl_policy *policy;             /* the collector's policy (slot 0) or a clone of it:
                                       each episode acts with its own workspace and, for
                                       L2M, its own observation history */
    int t, touched_any, random;
    size_t n0;
} slot;

struct crl_collector {
    const crl_env_spec *spec;
    crl_vecenv *venv; /* width envs side by side, auto-reset off */
    int width;
    slot *slots;
    float *vobs, *vact; /* width x obs_dim, width x act_dim: the vecenv's rows */
    crl_policy *policy; /* NULL: scripted */
    int policy_task;
    int obs_dim, act_dim, max_steps;
    /* Snapshots before and after each scripted call (one call at a time). */
    unsigned char *snap_a, *snap_b;
    size_t snap_cap;
    char task[64];
};

void crl_collector_free(crl_collector *c) {
    if (!c) return;
    if (c->slots)
        for (int j = 0; j < c->width; j++) {
            slot *sl = &c->slots[j];
            crl_episode_free(sl->rec);
            free(sl->obs);
            free(sl->act);
            free(sl->rew);
            free(sl->flags);
            free(sl->snap0);
            free(sl->touched);
            if (j > 0) crl_policy_free(sl->policy);
        }
    free(c->slots);
    crl_vecenv_free(c->venv);
    free(c->vobs);
    free(c->vact);
    free(c->snap_a);
    free(c->snap_b);
    free(c);
}

static int task_has_scripted(const char *name) {
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0) return list[i].has_scripted;
    return 0;
}

int crl_collector_create_batch(const crl_env_spec *spec, crl_policy *policy,
                               int policy_task, int width, int lanes, crl_collector **out,
                               crl_err *err) {
    if (!spec || !out)
        return crl_errf(err, CRL_EINVAL, "crl_collector_create: NULL argument");
    *out = NULL;
    if (width < 1 || width > CRL_COLLECT_MAX_WIDTH)
        return crl_errf(err, CRL_EINVAL,
                        "collector: %d episodes side by side (must be 1 .. %d)", width,
                        CRL_COLLECT_MAX_WIDTH);
    if (lanes != 1 && lanes != 2)
        return crl_errf(err, CRL_EINVAL, "collector: %d lanes (must be 1 or 2)", lanes);
    const char *name = crl_env_spec_name(spec);
    int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
    int T = crl_env_max_steps(spec);
    if (!policy && !task_has_scripted(name))
        return crl_errf(err, CRL_ENOTFOUND, "task '%s' has no scripted policy", name);
    if (policy) {
        if (policy_task < 0 || policy_task >= crl_policy_num_tasks(policy))
            return crl_errf(err, CRL_EINVAL, "the policy has no task %d (it has %d)",
                            policy_task, crl_policy_num_tasks(policy));
        if (crl_policy_obs_dim(policy) != od || crl_policy_act_dim(policy) != ad)
            return crl_errf(err, CRL_EINVAL,
                            "the policy takes %d observations and gives %d actions, task "
                            "'%s' has %d and %d",
                            crl_policy_obs_dim(policy), crl_policy_act_dim(policy), name,
                            od, ad);
    }
    if (T < 1) return crl_errf(err, CRL_EINVAL, "task '%s' has no step limit", name);
    crl_collector *c = calloc(1, sizeof *c);
    if (!c) return crl_errf(err, CRL_ENOMEM, "out of memory");
    c->spec = spec;
    c->policy = policy;
    c->policy_task = policy_task;
    c->obs_dim = od;
    c->act_dim = ad;
    c->max_steps = T;
    c->width = width;
    snprintf(c->task, sizeof c->task, "%s", name);
    c->snap_cap = crl_env_state_size(spec);
    c->slots = calloc((size_t)width, sizeof *c->slots);
    c->vobs = malloc((size_t)width * (size_t)od * sizeof(float));
    c->vact = malloc((size_t)width * (size_t)ad * sizeof(float));
    int bad = !c->slots || !c->vobs || !c->vact;
    if (!policy) {
        c->snap_a = malloc(c->snap_cap);
        c->snap_b = malloc(c->snap_cap);
        bad |= !c->snap_a || !c->snap_b;
    }
    for (int j = 0; !bad && j < width; j++) {
        slot *sl = &c->slots[j];
        sl->obs = malloc((size_t)(T + 1) * (size_t)od * sizeof(float));
        sl->act = malloc((size_t)T * (size_t)ad * sizeof(float));
        sl->rew = malloc((size_t)T * sizeof(float));
        sl->flags = malloc((size_t)T);
        bad |= !sl->obs || !sl->act || !sl->rew || !sl->flags;
        if (!policy) {
            sl->snap0 = malloc(c->snap_cap);
            sl->touched = malloc(c->snap_cap);
            bad |= !sl->snap0 || !sl->touched;
        }
    }
    int rc = CRL_OK;
    if (bad) rc = crl_errf(err, CRL_ENOMEM, "out of memory for episodes of '%s'", name);
    for (int j = 0; !rc && policy && j < width; j++) {
        char ebuf[256] = "";
        if (j == 0)
            c->slots[0].policy = policy;
        else if (crl_policy_clone(policy, &c->slots[j].policy, ebuf, sizeof ebuf))
            rc = crl_errf(err, CRL_ENOMEM, "cannot clone the policy: %s", ebuf);
    }
    if (!rc) rc = crl_vecenv_create(spec, width, lanes, &c->venv, err);
    for (int j = 0; !rc && j < width; j++)
        rc = crl_episode_create(spec, &c->slots[j].rec, err);
    if (rc) {
        crl_collector_free(c);
        return rc;
    }
    crl_vecenv_set_autoreset(c->venv, 0);
    *out = c;
    return CRL_OK;
}

int crl_collector_create(const crl_env_spec *spec, crl_policy *policy, int policy_task,
                         crl_collector **out, crl_err *err) {
    return crl_collector_create_batch(spec, policy, policy_task, 1, 1, out, err);
}

int crl_collector_width(const crl_collector *c) {
    return c->width;
}

int crl_collect_is_random(int64_t i, double frac) {
    if (!(frac > 0)) return 0;
    if (frac >= 1) return 1;
    /* Episode i is random when the running count round((i + 1) * frac)
     * steps up at it. */
    return llround((double)(i + 1) * frac) > llround((double)i * frac);
}

static float clip1(float x) {
    return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

/* The action of slot j's step t into a (its row of the episode's actions). */
static int slot_action(crl_collector *c, int j, double noise, crl_rng *rng, float *a,
                       crl_err *err) {
    slot *sl = &c->slots[j];
    crl_env *env = crl_vecenv_env(c->venv, j);
    const int ad = c->act_dim;
    if (sl->random) {
        for (int k = 0; k < ad; k++) a[k] = (float)crl_rng_range(rng, -1.0, 1.0);
        return CRL_OK;
    }
    if (c->policy) {
        const float *o = sl->obs + (size_t)sl->t * (size_t)c->obs_dim;
        int rc = crl_policy_act(sl->policy, c->policy_task, o, a,
                                CRL_POLICY_DETERMINISTIC, NULL);
        if (rc)
            return crl_errf(err, rc, "%s: the policy failed: %s", c->task,
                            crl_policy_error(sl->policy));
    } else {
        size_t na = crl_env_get_state(env, c->snap_a);
        crl_env_scripted_action(env, a);
        size_t nb = crl_env_get_state(env, c->snap_b);
        if (na != nb || na > c->snap_cap)
            return crl_errf(err, CRL_EINVAL,
                            "%s: the scripted policy changed the size of the env state "
                            "(%zu to %zu bytes)",
                            c->task, na, nb);
        if (memcmp(c->snap_a, c->snap_b, na) != 0) {
            for (size_t i = 0; i < na; i++)
                sl->touched[i] |= (unsigned char)(c->snap_a[i] != c->snap_b[i]);
            sl->touched_any = 1;
        }
    }
    if (noise > 0)
        for (int k = 0; k < ad; k++)
            a[k] = clip1((float)((double)a[k] + noise * crl_rng_normal(rng)));
    else
        for (int k = 0; k < ad; k++) a[k] = clip1(a[k]);
    return CRL_OK;
}

/* Slot j's episode ended: close its record (see crl_collector_run_many). */
static int slot_close(crl_collector *c, int j, crl_err *err) {
    slot *sl = &c->slots[j];
    crl_env *env = crl_vecenv_env(c->venv, j);
    if (sl->touched_any) {
        /* The scripted policy keeps its phase, timer and last command in the
         * task's state, which snapshots hold but no env step reads. A
         * replay (which does not run the policy) ends with those bytes as
         * they were after reset: put them back so that the final snapshot
         * is the one a replay reaches. Every other byte is the env's own. */
        size_t nf = crl_env_get_state(env, c->snap_a);
        if (nf != sl->n0)
            return crl_errf(err, CRL_EINVAL,
                            "%s: the env state changed size during the episode (%zu to "
                            "%zu bytes)",
                            c->task, sl->n0, nf);
        for (size_t i = 0; i < nf; i++)
            if (sl->touched[i]) c->snap_a[i] = sl->snap0[i];
        int rc = crl_env_set_state(env, c->snap_a, nf, err);
        if (rc) return rc;
    }
    crl_episode_end(sl->rec, env);
    return CRL_OK;
}

int crl_collector_run_many(crl_collector *c, int count, const uint64_t *seeds,
                           const int *random, double noise, crl_rng *rngs,
                           const char *const *sources, crl_dataset *ds,
                           crl_ds_episode *eps, crl_err *err) {
    if (!c || !seeds || !random || !rngs || !sources || !eps)
        return crl_errf(err, CRL_EINVAL, "crl_collector_run: NULL argument");
    if (count < 1 || count > c->width)
        return crl_errf(err, CRL_EINVAL, "collector: %d episodes at once (it holds %d)",
                        count, c->width);
    const int od = c->obs_dim, ad = c->act_dim;
    /* Every env starts; those past count end at once and are not stepped. */
    uint64_t seed_row[CRL_COLLECT_MAX_WIDTH];
    for (int j = 0; j < c->width; j++) seed_row[j] = seeds[j < count ? j : 0];
    crl_vecenv_reset_each(c->venv, seed_row, c->vobs);
    for (int j = count; j < c->width; j++) crl_vecenv_end(c->venv, j);
    for (int j = 0; j < count; j++) {
        slot *sl = &c->slots[j];
        if (sl->policy) crl_policy_episode_start(sl->policy);
        crl_env *env = crl_vecenv_env(c->venv, j);
        memcpy(sl->obs, c->vobs + (size_t)j * (size_t)od, sizeof(float) * (size_t)od);
        crl_episode_begin(sl->rec, env, seeds[j]);
        sl->t = 0;
        sl->touched_any = 0;
        sl->random = random[j];
        sl->n0 = 0;
        if (!c->policy && !random[j]) {
            sl->n0 = crl_env_get_state(env, sl->snap0);
            memset(sl->touched, 0, sl->n0);
        }
    }
    while (crl_vecenv_running(c->venv) > 0) {
        for (int j = 0; j < count; j++) {
            if (crl_vecenv_ended(c->venv, j)) continue;
            slot *sl = &c->slots[j];
            float *a = sl->act + (size_t)sl->t * (size_t)ad;
            int rc = slot_action(c, j, noise, &rngs[j], a, err);
            if (rc) return rc;
            memcpy(c->vact + (size_t)j * (size_t)ad, a, sizeof(float) * (size_t)ad);
        }
        crl_vecenv_step(c->venv, c->vact, c->vobs, NULL, NULL, NULL, NULL, NULL);
        for (int j = 0; j < count; j++) {
            slot *sl = &c->slots[j];
            if (sl->t < 0) continue; /* closed */
            const crl_step_info *info = crl_vecenv_last_info(c->venv, j);
            const int t = sl->t;
            memcpy(sl->obs + (size_t)(t + 1) * (size_t)od,
                   c->vobs + (size_t)j * (size_t)od, sizeof(float) * (size_t)od);
            crl_episode_add(sl->rec, sl->act + (size_t)t * (size_t)ad, info);
            sl->rew[t] = info->reward;
            sl->flags[t] = (unsigned char)((info->terminal ? CRL_DS_TERMINAL : 0) |
                                           (info->truncated ? CRL_DS_TRUNCATED : 0) |
                                           (info->success ? CRL_DS_SUCCESS : 0));
            sl->t = t + 1;
            if (!crl_vecenv_ended(c->venv, j) && sl->t >= c->max_steps)
                crl_vecenv_end(c->venv,
                               j); /* the step limit, should the env not say so */
            if (crl_vecenv_ended(c->venv, j)) {
                int rc = slot_close(c, j, err);
                if (rc) return rc;
                eps[j].length = sl->t; /* remembered past the marker below */
                sl->t = -1;
            }
        }
    }
    for (int j = 0; j < count; j++) {
        slot *sl = &c->slots[j];
        crl_episode_info ri;
        int rc = crl_episode_get(sl->rec, &ri, err);
        if (rc) return rc;
        crl_ds_episode v = {0};
        v.task = c->task;
        v.model_hash = ri.model_hash;
        v.mujoco_version = ri.mujoco_version;
        v.source = sources[j];
        v.seed = seeds[j];
        v.length = eps[j].length;
        v.obs_dim = od;
        v.act_dim = ad;
        v.ret = ri.ret;
        v.success = ri.success;
        v.obs = sl->obs;
        v.act = sl->act;
        v.reward = sl->rew;
        v.flags = sl->flags;
        /* The recorder's buffer stays valid until its next begin. */
        memcpy(&v.record, &ri.blob, sizeof v.record);
        v.record_n = ri.blob_n;
        eps[j] = v;
    }
    /* In order, after all of them ended: a failure leaves whole episodes. */
    for (int j = 0; ds && j < count; j++) {
        int rc = crl_dataset_add(ds, &eps[j], err);
        if (rc) return rc;
    }
    return CRL_OK;
}

int crl_collector_run(crl_collector *c, uint64_t env_seed, int random, double noise,
                      crl_rng *rng, const char *source, crl_dataset *ds,
                      crl_ds_episode *ep, crl_err *err) {
    if (!c || !rng || !source)
        return crl_errf(err, CRL_EINVAL, "crl_collector_run: NULL argument");
    crl_ds_episode v;
    const char *src[1] = {source};
    int rc =
        crl_collector_run_many(c, 1, &env_seed, &random, noise, rng, src, ds, &v, err);
    if (!rc && ep) *ep = v;
    return rc;
}

int crl_collect_run_policy(const char *db, int64_t run_id, int pos, crl_policy **out,
                           crl_err *err) {
    if (!db || !out)
        return crl_errf(err, CRL_EINVAL, "crl_collect_run_policy: NULL argument");
    *out = NULL;
    char path[4096], ebuf[512] = "";
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/crl-collect-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return crl_errf(err, CRL_EIO, "cannot make a temporary file in %s", path);
    close(fd);
    int rc = crl_policy_export(db, run_id, pos, path, ebuf, sizeof ebuf);
    if (!rc) rc = crl_policy_load(path, out, ebuf, sizeof ebuf);
    unlink(path);
    if (rc) return crl_errf(err, rc, "%s", ebuf);
    return CRL_OK;
}

/* ---- verification ----------------------------------------------------------- */

static int same_f32(const float *a, const float *b, int n, int *at) {
    for (int i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            *at = i;
            return 0;
        }
    return 1;
}

static void set_what(crl_collect_check *res, int step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_what(crl_collect_check *res, int step, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->what, sizeof res->what, fmt, ap);
    va_end(ap);
    res->verified = 0;
    res->step = step;
}

int crl_collect_verify(const crl_env_spec *spec, const crl_ds_episode *ep,
                       crl_collect_check *res, crl_err *err) {
    if (!spec || !ep || !res)
        return crl_errf(err, CRL_EINVAL, "crl_collect_verify: NULL argument");
    memset(res, 0, sizeof *res);
    res->step = -1;
    const int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
    const int T = ep->length;
    /* Can it be replayed here at all? */
    if (!ep->record) {
        snprintf(res->what, sizeof res->what, "episode %lld has no replay record",
                 (long long)ep->id);
        return CRL_OK;
    }
    if (strcmp(ep->mujoco_version, mj_versionString()) != 0) {
        snprintf(res->what, sizeof res->what,
                 "episode %lld was collected with MuJoCo %s, this crl runs MuJoCo %s: "
                 "the simulation may differ in the last bit",
                 (long long)ep->id, ep->mujoco_version, mj_versionString());
        return CRL_OK;
    }
    char hash[17];
    int rc = crl_env_model_hash(spec, hash, err);
    if (rc) return rc;
    if (strcmp(hash, ep->model_hash) != 0) {
        snprintf(res->what, sizeof res->what,
                 "episode %lld was collected on another model of '%s' (model hash %s, "
                 "this crl builds %s): the task or its modifiers changed",
                 (long long)ep->id, crl_env_spec_name(spec), ep->model_hash, hash);
        return CRL_OK;
    }
    if (ep->obs_dim != od || ep->act_dim != ad || T < 1 || T > crl_env_max_steps(spec)) {
        snprintf(res->what, sizeof res->what,
                 "episode %lld has %d steps of %d observations and %d actions; task '%s' "
                 "has at most %d steps of %d and %d",
                 (long long)ep->id, T, ep->obs_dim, ep->act_dim, crl_env_spec_name(spec),
                 crl_env_max_steps(spec), od, ad);
        return CRL_OK;
    }
    crl_episode_data d = {0};
    rc = crl_episode_decode(ep->record, ep->record_n, &d, err);
    if (rc) return rc;
    crl_episode_result vr;
    crl_err e2 = {0};
    rc = crl_episode_verify(spec, &d, &vr, &e2);
    if (rc == CRL_EVERSION || rc == CRL_ECORRUPT) {
        snprintf(res->what, sizeof res->what, "episode %lld: %.400s", (long long)ep->id,
                 e2.msg);
        crl_episode_data_free(&d);
        return CRL_OK;
    }
    if (rc) {
        crl_episode_data_free(&d);
        return crl_errf(err, rc, "%s", e2.msg);
    }
    res->replayable = 1;
    res->verified = 1;
    int at = 0;
    if (!vr.verified) {
        set_what(res, vr.step, "episode %lld: the record does not replay: %.380s",
                 (long long)ep->id, vr.what);
    } else if (d.length != T || d.seed != ep->seed) {
        set_what(res, -1,
                 "episode %lld: the record has %d steps from seed %llu, the row %d from "
                 "seed %llu",
                 (long long)ep->id, d.length, (unsigned long long)d.seed, T,
                 (unsigned long long)ep->seed);
    } else if (!same_f32(d.act, ep->act, T * ad, &at)) {
        set_what(res, at / ad,
                 "episode %lld: stored action %d of step %d is not the record's",
                 (long long)ep->id, at % ad, at / ad);
    }
    crl_episode_data_free(&d);
    if (!res->verified) return CRL_OK;

    /* The stored arrays against reset(seed) and the stored actions. */
    crl_env *e = NULL;
    float *obs = malloc((size_t)od * sizeof(float));
    if (!obs) return crl_errf(err, CRL_ENOMEM, "out of memory");
    rc = crl_env_create(spec, &e, err);
    if (rc) {
        free(obs);
        return rc;
    }
    crl_env_reset(e, ep->seed, obs);
    if (!same_f32(obs, ep->obs, od, &at))
        set_what(
            res, -1,
            "episode %lld: the observation after reset differs at [%d] (%.9g stored, "
            "%.9g simulated)",
            (long long)ep->id, at, (double)ep->obs[at], (double)obs[at]);
    for (int t = 0; res->verified && t < T; t++) {
        crl_step_info info = {0};
        crl_env_step(e, ep->act + (size_t)t * (size_t)ad, obs, &info);
        const float *so = ep->obs + (size_t)(t + 1) * (size_t)od;
        unsigned char fl = (unsigned char)((info.terminal ? CRL_DS_TERMINAL : 0) |
                                           (info.truncated ? CRL_DS_TRUNCATED : 0) |
                                           (info.success ? CRL_DS_SUCCESS : 0));
        int ended = info.terminal || info.truncated;
        if (!same_f32(obs, so, od, &at))
            set_what(res, t,
                     "episode %lld: observation [%d] after step %d differs (%.9g stored, "
                     "%.9g simulated)",
                     (long long)ep->id, at, t, (double)so[at], (double)obs[at]);
        else if (memcmp(&info.reward, &ep->reward[t], sizeof(float)) != 0)
            set_what(
                res, t,
                "episode %lld: reward of step %d differs (%.9g stored, %.9g simulated)",
                (long long)ep->id, t, (double)ep->reward[t], (double)info.reward);
        else if (fl != ep->flags[t])
            set_what(res, t,
                     "episode %lld: flags of step %d differ (%u stored, %u simulated)",
                     (long long)ep->id, t, (unsigned)ep->flags[t], (unsigned)fl);
        else if (ended != (t == T - 1))
            set_what(res, t, "episode %lld: the simulation %s at step %d of %d",
                     (long long)ep->id, ended ? "ends" : "does not end", t, T);
    }
    crl_env_free(e);
    free(obs);
    return CRL_OK;
}
