/* crl envs: the public env interface on top of the task vtable (task.h). */
#include "task.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- registry listing ---------------------------------------------------- */

/* crl_env_list hands out a static table; it is derived once from the task
 * defs so that each name and description is written in one place. */
#define CRL_ENV_LIST_MAX 256
static crl_env_entry env_entries[CRL_ENV_LIST_MAX];
static int env_entry_count;
static pthread_once_t env_entries_once = PTHREAD_ONCE_INIT;

static void build_entries(void) {
    const struct crl_task_def *const *reg;
    int n = crl_task_registry(&reg);
    if (n > CRL_ENV_LIST_MAX) n = CRL_ENV_LIST_MAX;
    for (int i = 0; i < n; i++) {
        env_entries[i].name = reg[i]->name;
        env_entries[i].description = reg[i]->description;
        env_entries[i].group = reg[i]->group ? reg[i]->group : "control";
        env_entries[i].obs_dim = reg[i]->obs_dim;
        env_entries[i].act_dim = reg[i]->act_dim;
        env_entries[i].has_scripted = reg[i]->scripted != NULL;
    }
    env_entry_count = n;
}

int crl_env_list(const crl_env_entry **list) {
    pthread_once(&env_entries_once, build_entries);
    if (list) *list = env_entries;
    return env_entry_count;
}

/* ---- model loading -------------------------------------------------------- */

/* MuJoCo 2.2 keeps the last loaded model in a global (for mj_saveLastXML);
 * rather than rely on its locking, crl runs one load at a time. Stepping
 * needs no lock. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

int crl_envs_load_embedded(const char *file, mjModel **out, crl_err *err) {
    *out = NULL;
    int found = 0;
    for (int i = 0; i < crl_model_count; i++)
        if (strcmp(crl_model_srcs[i].name, file) == 0) found = 1;
    if (!found) return crl_errf(err, CRL_ENOTFOUND, "no embedded model named '%s'", file);

    /* mjVFS holds 2000 fixed-size names (about 2 MB): never on the stack. */
    mjVFS *vfs = malloc(sizeof *vfs);
    if (!vfs) return crl_errf(err, CRL_ENOMEM, "out of memory loading model '%s'", file);
    mj_defaultVFS(vfs);
    for (int i = 0; i < crl_model_count; i++) {
        const struct crl_model_src *src = &crl_model_srcs[i];
        if (mj_makeEmptyFileVFS(vfs, src->name, (int)src->len) != 0) {
            mj_deleteVFS(vfs);
            free(vfs);
            return crl_errf(err, CRL_EMUJOCO, "cannot add model '%s' to MuJoCo's VFS",
                            src->name);
        }
        int id = mj_findFileVFS(vfs, src->name);
        memcpy(vfs->filedata[id], src->text, src->len);
    }
    char msg[1000] = "";
    pthread_mutex_lock(&load_lock);
    mjModel *m = mj_loadXML(file, vfs, msg, sizeof msg);
    pthread_mutex_unlock(&load_lock);
    mj_deleteVFS(vfs);
    free(vfs);
    if (!m) {
        /* MuJoCo's messages span lines; keep the error one line. */
        for (char *p = msg; *p; p++)
            if (*p == '\n') *p = ' ';
        return crl_errf(err, CRL_EMUJOCO, "model '%s' does not compile: %s", file, msg);
    }
    *out = m;
    return CRL_OK;
}

/* ---- shared task helpers -------------------------------------------------- */

void crl_task_map_actions(crl_env *e, const float *act) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    for (int i = 0; i < m->nu; i++) {
        double a = act[i];
        if (m->actuator_ctrllimited[i]) {
            double lo = m->actuator_ctrlrange[2 * i],
                   hi = m->actuator_ctrlrange[2 * i + 1];
            /* Same map as lo + (a+1)/2 (hi-lo), but exact (ctrl == a) for the
             * common symmetric range [-1, 1]. */
            d->ctrl[i] = 0.5 * (lo + hi) + a * 0.5 * (hi - lo);
        } else {
            d->ctrl[i] = a;
        }
    }
}

double crl_wrap_angle(double a) {
    /* remainder() is exact and lands in [-pi, pi]. */
    return remainder(a, 2.0 * M_PI);
}

/* ---- specs ---------------------------------------------------------------- */

static void list_names(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    const struct crl_task_def *const *reg;
    int count = crl_task_registry(&reg);
    for (int i = 0; i < count && used + 1 < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", reg[i]->name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

int crl_env_spec_create(const char *name, crl_env_spec **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_env_spec_create: out is NULL");
    *out = NULL;
    if (!name) return crl_errf(err, CRL_EINVAL, "crl_env_spec_create: name is NULL");
    const struct crl_task_def *t = crl_task_find(name);
    if (!t) {
        char names[1200];
        list_names(names, sizeof names);
        return crl_errf(err, CRL_ENOTFOUND, "unknown environment '%.60s' (known: %s)",
                        name, names);
    }

    crl_env_spec *s = calloc(1, sizeof *s);
    if (!s) return crl_errf(err, CRL_ENOMEM, "out of memory creating env '%s'", name);
    s->task = t;
    s->obs_dim = t->obs_dim;
    s->act_dim = t->act_dim;
    s->max_steps = t->max_steps;
    s->frame_skip = t->frame_skip;
    int rc = crl_envs_load_embedded(t->model, &s->m, err);
    if (rc) goto fail;
    if (t->data_size) {
        s->task_data = calloc(1, t->data_size);
        if (!s->task_data) {
            rc = crl_errf(err, CRL_ENOMEM, "out of memory creating env '%s'", name);
            goto fail;
        }
    }
    if (t->setup && (rc = t->setup(s, err)) != 0) goto fail;
    if (s->act_dim != s->m->nu) {
        rc = crl_errf(err, CRL_EMUJOCO,
                      "env '%s': model has %d actuators, task expects %d", name, s->m->nu,
                      s->act_dim);
        goto fail;
    }
    if (s->obs_dim <= 0 || s->max_steps <= 0 || s->frame_skip <= 0) {
        rc = crl_errf(err, CRL_EINVAL, "env '%s': bad task sizes", name);
        goto fail;
    }
    *out = s;
    return CRL_OK;
fail:
    crl_env_spec_free(s);
    return rc;
}

void crl_env_spec_free(crl_env_spec *s) {
    if (!s) return;
    if (s->m) mj_deleteModel(s->m);
    free(s->task_data);
    free(s);
}

const char *crl_env_spec_name(const crl_env_spec *s) {
    return s->task->name;
}
int crl_env_obs_dim(const crl_env_spec *s) {
    return s->obs_dim;
}
int crl_env_act_dim(const crl_env_spec *s) {
    return s->act_dim;
}
int crl_env_max_steps(const crl_env_spec *s) {
    return s->max_steps;
}
int crl_env_frame_skip(const crl_env_spec *s) {
    return s->frame_skip;
}
const struct mjModel_ *crl_env_model(const crl_env_spec *s) {
    return s->m;
}

/* ---- instances ------------------------------------------------------------ */

int crl_env_create(const crl_env_spec *s, crl_env **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_env_create: out is NULL");
    *out = NULL;
    if (!s) return crl_errf(err, CRL_EINVAL, "crl_env_create: spec is NULL");
    crl_env *e = calloc(1, sizeof *e);
    if (!e) return crl_errf(err, CRL_ENOMEM, "out of memory creating env");
    e->spec = s;
    e->act = calloc((size_t)s->act_dim, sizeof *e->act);
    if (s->task->state_size) e->task_state = calloc(1, s->task->state_size);
    e->d = mj_makeData(s->m);
    if ((s->act_dim && !e->act) || (s->task->state_size && !e->task_state) || !e->d) {
        crl_env_free(e);
        return crl_errf(err, CRL_ENOMEM, "out of memory creating env '%s'",
                        s->task->name);
    }
    /* A fresh instance is in a valid episode start (seed 0), so that stepping
     * before the first reset is defined. */
    crl_env_reset(e, 0, NULL);
    *out = e;
    return CRL_OK;
}

void crl_env_free(crl_env *e) {
    if (!e) return;
    if (e->d) mj_deleteData(e->d);
    free(e->act);
    free(e->task_state);
    free(e);
}

void crl_env_reset(crl_env *e, uint64_t seed, float *obs) {
    const crl_env_spec *s = e->spec;
    const struct crl_task_def *t = s->task;
    crl_rng_seed(&e->rng, seed);
    mj_resetData(s->m, e->d);
    if (t->state_size) memset(e->task_state, 0, t->state_size);
    memset(e->act, 0, (size_t)s->act_dim * sizeof *e->act);
    e->steps = 0;
    t->reset(e, &e->rng);
    mj_forward(s->m, e->d);
    if (obs) t->observe(e, obs);
}

void crl_env_step(crl_env *e, const float *act, float *obs, crl_step_info *info) {
    const crl_env_spec *s = e->spec;
    const struct crl_task_def *t = s->task;
    const mjModel *m = s->m;
    mjData *d = e->d;

    for (int i = 0; i < s->act_dim; i++) {
        float a = act[i];
        if (isnan(a)) a = 0.0f;
        e->act[i] = a > 1.0f ? 1.0f : (a < -1.0f ? -1.0f : a);
    }
    if (t->apply_action)
        t->apply_action(e, e->act);
    else
        crl_task_map_actions(e, e->act);

    /* MuJoCo answers a NaN/Inf state by resetting mjData and counting a
     * warning. Clear the counters so a divergence in this step is visible. */
    d->warning[mjWARN_BADQPOS].number = 0;
    d->warning[mjWARN_BADQVEL].number = 0;
    d->warning[mjWARN_BADQACC].number = 0;
    for (int k = 0; k < s->frame_skip; k++) mj_step(m, d);
    e->steps++;
    int diverged = d->warning[mjWARN_BADQPOS].number ||
                   d->warning[mjWARN_BADQVEL].number || d->warning[mjWARN_BADQACC].number;

    crl_step_info out = {0};
    t->reward(e, e->act, &out);
    if (diverged) {
        /* The physics was reset under us: the transition is meaningless, so
         * end the episode without a reward and without claiming a terminal. */
        out.reward = 0.0f;
        out.success = 0;
        out.terminal = 0;
        out.truncated = 1;
    } else if (!isfinite(out.reward)) {
        out.reward = 0.0f;
        out.truncated = 1;
    }
    if (!out.terminal && e->steps >= s->max_steps) out.truncated = 1;
    if (obs) t->observe(e, obs);
    if (info) *info = out;
}

int crl_env_steps_taken(const crl_env *e) {
    return e->steps;
}
struct mjData_ *crl_env_data(crl_env *e) {
    return e->d;
}
const crl_env_spec *crl_env_get_spec(const crl_env *e) {
    return e->spec;
}

int crl_env_scripted_action(crl_env *e, float *act) {
    const struct crl_task_def *t = e->spec->task;
    if (!t->scripted) return CRL_ENOTFOUND;
    t->scripted(e, act);
    return CRL_OK;
}
