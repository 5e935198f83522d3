/* crl envs: a built-in task on a caller's own mjModel / mjData (see
 * envs/external.h). Runs the task's own hooks, in the order crl_env_reset
 * and crl_env_step run them (envs/env.c), so nothing here re-implements a
 * task. */
#include "external.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

struct crl_env_ext {
    crl_env_spec spec; /* the task's spec, with m = the caller's model */
    crl_env env;       /* env.spec = &spec; env.d = the caller's data of the call */
    int pending;       /* a step was applied and its outcome not computed yet */
    crl_step_info last;
};

/* The task is one of the registry's (not a user-MJCF task, whose definition
 * lives in its spec). */
static int builtin(const crl_env_spec *s, crl_err *err) {
    if (s && s->task && s->task->name && crl_task_find(s->task->name) == s->task)
        return CRL_OK;
    return crl_errf(err, CRL_EINVAL,
                    "task '%s' is not a built-in crl task (a user MJCF task has no "
                    "embedded model)",
                    s && s->task && s->task->name ? s->task->name : "?");
}

/* ---- the task's MJCF as one text ------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
    int bad;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->bad) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static const struct crl_model_src *find_src(const char *name, size_t len) {
    for (int i = 0; i < crl_model_count; i++)
        if (strlen(crl_model_srcs[i].name) == len &&
            memcmp(crl_model_srcs[i].name, name, len) == 0)
            return &crl_model_srcs[i];
    return NULL;
}

static int at(const char *t, size_t n, size_t i, const char *lit) {
    size_t l = strlen(lit);
    return i + l <= n && memcmp(t + i, lit, l) == 0;
}

/* Index of the first occurrence of lit at or after i, or n. */
static size_t find(const char *t, size_t n, size_t i, const char *lit) {
    for (; i < n; i++)
        if (at(t, n, i, lit)) return i;
    return n;
}

/* [lo, hi): the children of the root <mujoco> element of a model file. */
static int root_body(const char *t, size_t n, size_t *lo, size_t *hi) {
    size_t i = 0;
    while (i < n) {
        if (at(t, n, i, "<!--")) {
            i = find(t, n, i + 4, "-->") + 3;
            continue;
        }
        if (at(t, n, i, "<mujoco")) {
            size_t e = find(t, n, i, ">");
            size_t close = n, k = e;
            while ((k = find(t, n, k, "</mujoco>")) < n) close = k++;
            if (e >= n || close >= n || t[e - 1] == '/') return -1;
            *lo = e + 1;
            *hi = close;
            return 0;
        }
        i++;
    }
    return -1;
}

/* Copy t[0, n) to out, replacing every <include file="X"/> outside comments
 * by the children of X's root element (what MuJoCo's include does). */
static int inline_includes(sbuf *out, const char *t, size_t n, int depth, crl_err *err) {
    if (depth > 8) return crl_errf(err, CRL_EINVAL, "model includes nest too deep");
    size_t i = 0, start = 0;
    while (i < n) {
        if (at(t, n, i, "<!--")) {
            i = find(t, n, i + 4, "-->") + 3;
            continue;
        }
        if (at(t, n, i, "<include") && i + 8 < n && isspace((unsigned char)t[i + 8])) {
            size_t e = find(t, n, i, ">");
            size_t f = find(t, e, i, "file=\"");
            size_t fe = f < e ? find(t, e, f + 6, "\"") : e;
            if (e >= n || f >= e || fe >= e)
                return crl_errf(err, CRL_EINVAL, "embedded model: malformed <include>");
            const struct crl_model_src *src = find_src(t + f + 6, fe - (f + 6));
            size_t lo, hi;
            if (!src || root_body(src->text, src->len, &lo, &hi))
                return crl_errf(err, CRL_EINVAL,
                                "embedded model: cannot inline included file '%.*s'",
                                (int)(fe - (f + 6)), t + f + 6);
            put(out, t + start, i - start);
            char note[200];
            int k = snprintf(note, sizeof note, "<!-- begin %s -->", src->name);
            put(out, note, (size_t)k);
            int rc = inline_includes(out, src->text + lo, hi - lo, depth + 1, err);
            if (rc) return rc;
            k = snprintf(note, sizeof note, "<!-- end %s -->", src->name);
            put(out, note, (size_t)k);
            i = start = e + 1;
            continue;
        }
        i++;
    }
    put(out, t + start, n - start);
    return CRL_OK;
}

int crl_env_task_xml(const crl_env_spec *s, char **text, size_t *len, crl_err *err) {
    *text = NULL;
    *len = 0;
    int rc = builtin(s, err);
    if (rc) return rc;
    const struct crl_model_src *src = find_src(s->task->model, strlen(s->task->model));
    if (!src)
        return crl_errf(err, CRL_ENOTFOUND, "no embedded model named '%s'",
                        s->task->model);
    sbuf b = {0};
    char head[600];
    int k = snprintf(head, sizeof head,
                     "<!-- crl %s, task '%s': the embedded model %s with its includes "
                     "inlined. Task modifiers (physics factors of locomotion variants) "
                     "are not in this file: crl_policy_prepare_model applies them to "
                     "the compiled model. -->\n",
                     CRL_VERSION_STRING, s->task->name, src->name);
    put(&b, head, (size_t)k);
    rc = inline_includes(&b, src->text, src->len, 0, err);
    if (!rc && b.bad) rc = crl_errf(err, CRL_ENOMEM, "out of memory writing the model");
    if (rc) {
        free(b.p);
        return rc;
    }
    *text = b.p;
    *len = b.n;
    return CRL_OK;
}

/* ---- the caller's model ------------------------------------------------------ */

/* The caller's model has the task model's structure, so that the ids the
 * task looked up in its own model are valid in it. */
static int same_structure(const crl_env_spec *s, const mjModel *m, crl_err *err) {
    const mjModel *r = s->m;
    if (!m) return crl_errf(err, CRL_EINVAL, "task '%s': model is NULL", s->task->name);
#define SAME(f)                                                                          \
    if (r->f != m->f)                                                                    \
        return crl_errf(err, CRL_EINVAL,                                                 \
                        "the model is not task '%s' (" #f " %d, the task has %d): "      \
                        "compile the task's MJCF (crl export --task-xml)",               \
                        s->task->name, (int)m->f, (int)r->f);
    SAME(nq)
    SAME(nv)
    SAME(nu)
    SAME(na)
    SAME(nbody)
    SAME(njnt)
    SAME(ngeom)
    SAME(nsite)
    SAME(nmocap)
    SAME(nsensor)
    SAME(nsensordata)
    SAME(ntendon)
    SAME(neq)
    SAME(nnames)
#undef SAME
    if (memcmp(r->names, m->names, (size_t)r->nnames) != 0)
        return crl_errf(err, CRL_EINVAL,
                        "the model is not task '%s' (its names differ): compile the "
                        "task's MJCF (crl export --task-xml)",
                        s->task->name);
    return CRL_OK;
}

int crl_env_prepare_model(const crl_env_spec *s, mjModel *m, crl_err *err) {
    int rc = builtin(s, err);
    if (!rc) rc = same_structure(s, m, err);
    if (rc) return rc;
    const struct crl_task_def *t = s->task;
    crl_env_spec tmp = *s;
    tmp.m = m;
    tmp.obs_dim = t->obs_dim;
    tmp.act_dim = t->act_dim;
    tmp.max_steps = t->max_steps;
    tmp.frame_skip = t->frame_skip;
    tmp.task_data = NULL;
    if (t->data_size && !(tmp.task_data = calloc(1, t->data_size)))
        return crl_errf(err, CRL_ENOMEM, "out of memory preparing the model");
    if (t->setup) rc = t->setup(&tmp, err);
    free(tmp.task_data);
    return rc;
}

/* ---- a task bound to the caller's model ------------------------------------ */

int crl_env_ext_create(const crl_env_spec *s, const mjModel *m, crl_env_ext **out,
                       crl_err *err) {
    *out = NULL;
    int rc = builtin(s, err);
    if (!rc) rc = same_structure(s, m, err);
    if (rc) return rc;
    crl_env_ext *x = calloc(1, sizeof *x);
    if (!x)
        return crl_errf(err, CRL_ENOMEM, "out of memory binding task '%s'",
                        s->task->name);
    x->spec = *s;
    x->spec.m = (mjModel *)m; /* the hooks only read the model */
    x->env.spec = &x->spec;
    x->env.act = calloc((size_t)s->act_dim, sizeof *x->env.act);
    if (s->task->state_size) x->env.task_state = calloc(1, s->task->state_size);
    if (!x->env.act || (s->task->state_size && !x->env.task_state)) {
        crl_env_ext_free(x);
        return crl_errf(err, CRL_ENOMEM, "out of memory binding task '%s'",
                        s->task->name);
    }
    *out = x;
    return CRL_OK;
}

void crl_env_ext_free(crl_env_ext *x) {
    if (!x) return;
    free(x->env.act);
    free(x->env.task_state);
    free(x);
}

const mjModel *crl_env_ext_model(const crl_env_ext *x) {
    return x->spec.m;
}

const crl_env_spec *crl_env_ext_spec(const crl_env_ext *x) {
    return &x->spec;
}

int crl_env_ext_steps(const crl_env_ext *x) {
    return x->env.steps;
}

void crl_env_ext_reset(crl_env_ext *x, mjData *d, uint64_t seed, float *obs) {
    const struct crl_task_def *t = x->spec.task;
    crl_env *e = &x->env;
    e->d = d;
    crl_rng_seed(&e->rng, seed);
    mj_resetData(x->spec.m, d);
    if (t->state_size) memset(e->task_state, 0, t->state_size);
    memset(e->act, 0, (size_t)x->spec.act_dim * sizeof *e->act);
    e->steps = 0;
    x->pending = 0;
    memset(&x->last, 0, sizeof x->last);
    t->reset(e, &e->rng);
    mj_forward(x->spec.m, d);
    if (obs) t->observe(e, obs);
}

void crl_env_ext_apply(crl_env_ext *x, mjData *d, const float *act) {
    const struct crl_task_def *t = x->spec.task;
    crl_env *e = &x->env;
    e->d = d;
    for (int i = 0; i < x->spec.act_dim; i++) {
        float a = act[i];
        if (isnan(a)) a = 0.0f;
        e->act[i] = a > 1.0f ? 1.0f : (a < -1.0f ? -1.0f : a);
    }
    if (t->apply_action)
        t->apply_action(e, e->act);
    else
        crl_task_map_actions(e, e->act);
    /* As crl_env_step: a divergence in this step shows as a non-zero count. */
    crl_task_step_begin(e);
    x->pending = 1;
}

static void complete(crl_env_ext *x, mjData *d) {
    if (!x->pending) return;
    crl_env *e = &x->env;
    e->d = d;
    crl_task_step_end(e, x->spec.max_steps, &x->last);
    x->pending = 0;
}

void crl_env_ext_outcome(crl_env_ext *x, mjData *d, crl_step_info *info) {
    complete(x, d);
    *info = x->last;
}

void crl_env_ext_observe(crl_env_ext *x, mjData *d, float *obs) {
    complete(x, d);
    x->env.d = d;
    x->spec.task->observe(&x->env, obs);
}
