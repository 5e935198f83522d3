/* crl envs: the public env interface on top of the task vtable (task.h). */
#include "task.h"

#include "core/blob.h"

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
        return crl_errf(err, CRL_ENOTFOUND, "unknown task '%.60s' (known: %s)", name,
                        names);
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
int crl_env_view(const crl_env_spec *s, double view[6]) {
    if (!s || !s->task || !s->task->view) return 0;
    memcpy(view, s->task->view, 6 * sizeof *view);
    return 1;
}
const struct mjModel_ *crl_env_model(const crl_env_spec *s) {
    return s->m;
}

/* ---- instances ------------------------------------------------------------ */

/* ---- MuJoCo's warnings (docs/robustness.md) --------------------------------
 * MuJoCo reports an unstable simulation (a NaN or huge qpos/qvel/qacc, which
 * it answers by resetting mjData) through mju_warning, whose default prints
 * a line to stdout and appends to MUJOCO_LOG.TXT in the working directory -
 * on every env step, since crl clears the warning counters before each step
 * (crl_task_step_begin). crl counts them per episode from mjData's counters
 * instead (the runners fail a run whose physics diverges repeatedly, with
 * one line holding mju_warningText), so the hook installed here, once per
 * process and only if the program has not installed its own, prints
 * nothing: it counts. */
static unsigned long g_mj_warnings;

static void count_mujoco_warning(const char *msg) {
    (void)msg;
    __atomic_add_fetch(&g_mj_warnings, 1, __ATOMIC_RELAXED);
}

static void install_warning_hook(void) {
    if (!mju_user_warning) mju_user_warning = count_mujoco_warning;
}

int crl_env_create(const crl_env_spec *s, crl_env **out, crl_err *err) {
    static pthread_once_t hook_once = PTHREAD_ONCE_INIT;
    pthread_once(&hook_once, install_warning_hook);
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

    crl_task_step_begin(e);
    for (int k = 0; k < s->frame_skip; k++) mj_step(m, d);
    crl_step_info out;
    crl_task_step_end(e, s->max_steps, &out);
    if (obs) t->observe(e, obs);
    if (info) *info = out;
}

void crl_task_step_begin(crl_env *e) {
    /* MuJoCo answers a NaN/Inf state by resetting mjData and counting a
     * warning. Clear the counters so a divergence in this step is visible. */
    e->d->warning[mjWARN_BADQPOS].number = 0;
    e->d->warning[mjWARN_BADQVEL].number = 0;
    e->d->warning[mjWARN_BADQACC].number = 0;
}

void crl_task_step_end(crl_env *e, int max_steps, crl_step_info *out) {
    const mjData *d = e->d;
    e->steps++;
    int diverged = d->warning[mjWARN_BADQPOS].number ||
                   d->warning[mjWARN_BADQVEL].number || d->warning[mjWARN_BADQACC].number;
    memset(out, 0, sizeof *out);
    e->spec->task->reward(e, e->act, out);
    if (diverged) {
        /* The physics was reset under us: the transition is meaningless, so
         * end the episode without a reward and without claiming a terminal. */
        out->reward = 0.0f;
        out->success = 0;
        out->terminal = 0;
        out->truncated = 1;
    } else if (!isfinite(out->reward)) {
        out->reward = 0.0f;
        out->truncated = 1;
    }
    if (!out->terminal && e->steps >= max_steps) out->truncated = 1;
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

/* ---- state snapshots (crl_env_get_state / set_state) -----------------------
 * Little-endian, explicit byte order; layout in docs/replay.md. A 56-byte
 * header (magic, flags, the model's sizes, the step count, time), then the
 * f64 arrays, the last action (f32), the generator and the task's state. */

#define STATE_MAGIC 0x31535243u /* "CRS1" */
#define STATE_HEAD  56
#define STATE_RNG   44 /* 4 x u64, i32 has_spare, f64 spare */
enum { STATE_APPLIED = 1, STATE_USERDATA = 2 };

static void put_f64s(unsigned char *p, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &x[i], 8);
        crl_le_put_u64(p + 8 * i, u);
    }
}
static void get_f64s(const unsigned char *p, double *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t u = crl_le_get_u64(p + 8 * i);
        memcpy(&x[i], &u, 8);
    }
}

/* Bitwise: -0.0 is not zero here, so that leaving an array out and restoring
 * zeros is exact. */
static int all_zero_bits(const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &x[i], 8);
        if (u) return 0;
    }
    return 1;
}

typedef struct {
    uint32_t flags, nq, nv, na, nu, nmocap, nbody, nuser, act_dim, task_size;
    size_t qpos, qvel, act, ctrl, warm, mpos, mquat, qfrc, xfrc, user, last, rng, task,
        total;
} state_layout;

/* Offsets from the sizes and flags (0 = section absent). */
static void layout_finish(state_layout *L) {
    size_t o = STATE_HEAD;
    L->qpos = o, o += 8 * (size_t)L->nq;
    L->qvel = o, o += 8 * (size_t)L->nv;
    L->act = o, o += 8 * (size_t)L->na;
    L->ctrl = o, o += 8 * (size_t)L->nu;
    L->warm = o, o += 8 * (size_t)L->nv;
    L->mpos = o, o += 24 * (size_t)L->nmocap;
    L->mquat = o, o += 32 * (size_t)L->nmocap;
    L->qfrc = L->xfrc = L->user = 0;
    if (L->flags & STATE_APPLIED) {
        L->qfrc = o, o += 8 * (size_t)L->nv;
        L->xfrc = o, o += 48 * (size_t)L->nbody;
    }
    if (L->flags & STATE_USERDATA) L->user = o, o += 8 * (size_t)L->nuser;
    L->last = o, o += 4 * (size_t)L->act_dim;
    L->rng = o, o += STATE_RNG;
    L->task = o, o += L->task_size;
    L->total = o;
}

static void layout_of_spec(const crl_env_spec *s, uint32_t flags, state_layout *L) {
    const mjModel *m = s->m;
    memset(L, 0, sizeof *L);
    L->flags = flags;
    L->nq = (uint32_t)m->nq;
    L->nv = (uint32_t)m->nv;
    L->na = (uint32_t)m->na;
    L->nu = (uint32_t)m->nu;
    L->nmocap = (uint32_t)m->nmocap;
    L->nbody = (uint32_t)m->nbody;
    L->nuser = (uint32_t)m->nuserdata;
    L->act_dim = (uint32_t)s->act_dim;
    L->task_size = (uint32_t)s->task->state_size;
    layout_finish(L);
}

/* The layout a snapshot's header claims; CRL_ECORRUPT if it cannot be one. */
static int layout_of_buf(const unsigned char *p, size_t n, state_layout *L,
                         crl_err *err) {
    memset(L, 0, sizeof *L);
    if (n < STATE_HEAD || crl_le_get_u32(p) != STATE_MAGIC)
        return crl_errf(err, CRL_ECORRUPT, "not an env state snapshot");
    uint32_t *f[] = {&L->flags,  &L->nq,    &L->nv,    &L->na,      &L->nu,
                     &L->nmocap, &L->nbody, &L->nuser, &L->act_dim, &L->task_size};
    for (int i = 0; i < 10; i++) {
        *f[i] = crl_le_get_u32(p + 4 + 4 * i);
        /* Keeps every offset below 2^40: no size_t overflow. */
        if (i > 0 && *f[i] > (1u << 24))
            return crl_errf(err, CRL_ECORRUPT, "env state snapshot: implausible sizes");
    }
    if (L->flags & ~(uint32_t)(STATE_APPLIED | STATE_USERDATA))
        return crl_errf(err, CRL_ECORRUPT, "env state snapshot: unknown flags 0x%x",
                        (unsigned)L->flags);
    layout_finish(L);
    if (L->total != n)
        return crl_errf(err, CRL_ECORRUPT,
                        "env state snapshot is %zu bytes, its header says %zu", n,
                        L->total);
    return CRL_OK;
}

size_t crl_env_state_size(const crl_env_spec *s) {
    state_layout L;
    layout_of_spec(s, STATE_APPLIED | STATE_USERDATA, &L);
    return L.total;
}

size_t crl_env_get_state(const crl_env *e, void *buf) {
    const crl_env_spec *s = e->spec;
    const mjModel *m = s->m;
    const mjData *d = e->d;
    uint32_t flags = 0;
    if (!all_zero_bits(d->qfrc_applied, (size_t)m->nv) ||
        !all_zero_bits(d->xfrc_applied, 6 * (size_t)m->nbody))
        flags |= STATE_APPLIED;
    if (!all_zero_bits(d->userdata, (size_t)m->nuserdata)) flags |= STATE_USERDATA;
    state_layout L;
    layout_of_spec(s, flags, &L);
    unsigned char *p = buf;
    const uint32_t head[11] = {STATE_MAGIC, L.flags, L.nq,    L.nv,      L.na,       L.nu,
                               L.nmocap,    L.nbody, L.nuser, L.act_dim, L.task_size};
    for (int i = 0; i < 11; i++) crl_le_put_u32(p + 4 * i, head[i]);
    crl_le_put_u32(p + 44, (uint32_t)e->steps);
    put_f64s(p + 48, &d->time, 1);
    put_f64s(p + L.qpos, d->qpos, L.nq);
    put_f64s(p + L.qvel, d->qvel, L.nv);
    put_f64s(p + L.act, d->act, L.na);
    put_f64s(p + L.ctrl, d->ctrl, L.nu);
    put_f64s(p + L.warm, d->qacc_warmstart, L.nv);
    put_f64s(p + L.mpos, d->mocap_pos, 3 * (size_t)L.nmocap);
    put_f64s(p + L.mquat, d->mocap_quat, 4 * (size_t)L.nmocap);
    if (L.qfrc) {
        put_f64s(p + L.qfrc, d->qfrc_applied, L.nv);
        put_f64s(p + L.xfrc, d->xfrc_applied, 6 * (size_t)L.nbody);
    }
    if (L.user) put_f64s(p + L.user, d->userdata, L.nuser);
    for (uint32_t i = 0; i < L.act_dim; i++) {
        uint32_t u;
        memcpy(&u, &e->act[i], 4);
        crl_le_put_u32(p + L.last + 4 * i, u);
    }
    for (int i = 0; i < 4; i++) crl_le_put_u64(p + L.rng + 8 * i, e->rng.s[i]);
    crl_le_put_u32(p + L.rng + 32, (uint32_t)e->rng.has_spare);
    put_f64s(p + L.rng + 36, &e->rng.spare, 1);
    if (L.task_size) memcpy(p + L.task, e->task_state, L.task_size);
    return L.total;
}

/* The physics part of a snapshot into d. */
static void put_physics(const mjModel *m, mjData *d, const unsigned char *p,
                        const state_layout *L) {
    get_f64s(p + 48, &d->time, 1);
    get_f64s(p + L->qpos, d->qpos, L->nq);
    get_f64s(p + L->qvel, d->qvel, L->nv);
    get_f64s(p + L->act, d->act, L->na);
    get_f64s(p + L->ctrl, d->ctrl, L->nu);
    get_f64s(p + L->warm, d->qacc_warmstart, L->nv);
    get_f64s(p + L->mpos, d->mocap_pos, 3 * (size_t)L->nmocap);
    get_f64s(p + L->mquat, d->mocap_quat, 4 * (size_t)L->nmocap);
    if (L->qfrc) {
        get_f64s(p + L->qfrc, d->qfrc_applied, L->nv);
        get_f64s(p + L->xfrc, d->xfrc_applied, 6 * (size_t)L->nbody);
    } else {
        memset(d->qfrc_applied, 0, sizeof(mjtNum) * (size_t)m->nv);
        memset(d->xfrc_applied, 0, sizeof(mjtNum) * 6 * (size_t)m->nbody);
    }
    if (L->user)
        get_f64s(p + L->user, d->userdata, L->nuser);
    else if (m->nuserdata)
        memset(d->userdata, 0, sizeof(mjtNum) * (size_t)m->nuserdata);
}

int crl_env_set_state(crl_env *e, const void *buf, size_t n, crl_err *err) {
    const crl_env_spec *s = e->spec;
    const mjModel *m = s->m;
    mjData *d = e->d;
    const unsigned char *p = buf;
    state_layout L, want;
    if (!buf) return crl_errf(err, CRL_EINVAL, "crl_env_set_state: no snapshot");
    int rc = layout_of_buf(p, n, &L, err);
    if (rc) return rc;
    layout_of_spec(s, L.flags, &want);
    if (memcmp(&L, &want, sizeof L) != 0)
        return crl_errf(err, CRL_ECORRUPT,
                        "env state snapshot does not fit task '%s' (nq %u nv %u na %u nu "
                        "%u nmocap %u act %u task state %u bytes, the task has %u %u %u "
                        "%u %u %u %u)",
                        s->task->name, (unsigned)L.nq, (unsigned)L.nv, (unsigned)L.na,
                        (unsigned)L.nu, (unsigned)L.nmocap, (unsigned)L.act_dim,
                        (unsigned)L.task_size, (unsigned)want.nq, (unsigned)want.nv,
                        (unsigned)want.na, (unsigned)want.nu, (unsigned)want.nmocap,
                        (unsigned)want.act_dim, (unsigned)want.task_size);
    e->steps = (int)crl_le_get_u32(p + 44);
    for (uint32_t i = 0; i < L.act_dim; i++) {
        uint32_t u = crl_le_get_u32(p + L.last + 4 * i);
        memcpy(&e->act[i], &u, 4);
    }
    for (int i = 0; i < 4; i++) e->rng.s[i] = crl_le_get_u64(p + L.rng + 8 * i);
    e->rng.has_spare = (int)crl_le_get_u32(p + L.rng + 32);
    get_f64s(p + L.rng + 36, &e->rng.spare, 1);
    if (L.task_size) memcpy(e->task_state, p + L.task, L.task_size);
    /* Positions, contacts and sensors for the hooks that read them (the
     * observation, a task's pre-step frame). But mj_forward writes state too:
     * it saves its solution as the next warm start, and MuJoCo 2.2's
     * kinematics normalises free and ball joint quaternions in qpos in place,
     * which is not idempotent in the last bit. The next mj_step must start
     * from the recorded state, so all of it is written again afterwards. */
    put_physics(m, d, p, &L);
    mj_forward(m, d);
    put_physics(m, d, p, &L);
    return CRL_OK;
}

/* First bitwise difference of two f64 arrays (NULL = absent = zeros). */
static int diff_f64(const char *name, const unsigned char *a, const unsigned char *b,
                    size_t count, char *what, size_t n) {
    for (size_t i = 0; i < count; i++) {
        uint64_t ua = a ? crl_le_get_u64(a + 8 * i) : 0,
                 ub = b ? crl_le_get_u64(b + 8 * i) : 0;
        if (ua == ub) continue;
        double x, y;
        memcpy(&x, &ua, 8);
        memcpy(&y, &ub, 8);
        snprintf(what, n, "%s[%zu] %.17g vs %.17g", name, i, x, y);
        return 1;
    }
    return 0;
}

int crl_env_state_diff(const crl_env_spec *s, const void *a, size_t na, const void *b,
                       size_t nb, char *what, size_t n) {
    (void)s;
    state_layout A, B;
    const unsigned char *pa = a, *pb = b;
    int ba = layout_of_buf(pa, na, &A, NULL), bb = layout_of_buf(pb, nb, &B, NULL);
    if (ba || bb) {
        snprintf(what, n, "%s snapshot is malformed", ba ? "first" : "second");
        return 1;
    }
    state_layout A0 = A, B0 = B;
    A0.flags = B0.flags = 0;
    layout_finish(&A0);
    layout_finish(&B0);
    if (memcmp(&A0, &B0, sizeof A0) != 0) {
        snprintf(what, n, "snapshot sizes differ (nq %u/%u nv %u/%u nu %u/%u)",
                 (unsigned)A.nq, (unsigned)B.nq, (unsigned)A.nv, (unsigned)B.nv,
                 (unsigned)A.nu, (unsigned)B.nu);
        return 1;
    }
    if (crl_le_get_u32(pa + 44) != crl_le_get_u32(pb + 44)) {
        snprintf(what, n, "step count %u vs %u", (unsigned)crl_le_get_u32(pa + 44),
                 (unsigned)crl_le_get_u32(pb + 44));
        return 1;
    }
    struct {
        const char *name;
        size_t oa, ob, count;
    } f[] = {
        {"time", 48, 48, 1},
        {"qpos", A.qpos, B.qpos, A.nq},
        {"qvel", A.qvel, B.qvel, A.nv},
        {"act", A.act, B.act, A.na},
        {"ctrl", A.ctrl, B.ctrl, A.nu},
        {"qacc_warmstart", A.warm, B.warm, A.nv},
        {"mocap_pos", A.mpos, B.mpos, 3 * (size_t)A.nmocap},
        {"mocap_quat", A.mquat, B.mquat, 4 * (size_t)A.nmocap},
        {"qfrc_applied", A.qfrc, B.qfrc, A.nv},
        {"xfrc_applied", A.xfrc, B.xfrc, 6 * (size_t)A.nbody},
        {"userdata", A.user, B.user, A.nuser},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (diff_f64(f[i].name, f[i].oa ? pa + f[i].oa : NULL,
                     f[i].ob ? pb + f[i].ob : NULL, f[i].count, what, n))
            return 1;
    for (uint32_t i = 0; i < A.act_dim; i++)
        if (crl_le_get_u32(pa + A.last + 4 * i) != crl_le_get_u32(pb + B.last + 4 * i)) {
            snprintf(what, n, "last action[%u]", (unsigned)i);
            return 1;
        }
    if (memcmp(pa + A.rng, pb + B.rng, STATE_RNG) != 0) {
        snprintf(what, n, "the env's random generator");
        return 1;
    }
    for (uint32_t i = 0; i < A.task_size; i++)
        if (pa[A.task + i] != pb[B.task + i]) {
            snprintf(what, n, "task state byte %u of %u", (unsigned)i,
                     (unsigned)A.task_size);
            return 1;
        }
    if (what && n) what[0] = '\0';
    return 0;
}

int crl_env_model_hash(const crl_env_spec *s, char hex[17], crl_err *err) {
    /* mj_sizeModel over-counts and mj_saveModel leaves the last few KB
     * unwritten: zero them, or the hash would depend on the heap. */
    int size = mj_sizeModel(s->m);
    unsigned char *buf = size > 0 ? calloc(1, (size_t)size) : NULL;
    if (!buf) return crl_errf(err, CRL_ENOMEM, "out of memory hashing a model");
    mj_saveModel(s->m, NULL, buf, size);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < size; i++) {
        h ^= buf[i];
        h *= 1099511628211ull;
    }
    free(buf);
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return CRL_OK;
}

void crl_env_modifiers(const crl_env_spec *s, char *buf, size_t n) {
    if (!buf || !n) return;
    snprintf(buf, n, "{}");
    if (s->task->modifiers) s->task->modifiers(s, buf, n);
}
