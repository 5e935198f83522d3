/* crl_policy_export: a run's latest checkpoint as a policy file.
 *
 * The run's stored configuration says what it trained (a single env, or a
 * scenario with a method) and the network shape; the checkpoint holds the
 * weights. The learner is restored with the training code (crl_sac_load,
 * crl_packnet_load), so the exported weights are the ones crl eval acts
 * with. The continual checkpoint is read through its view
 * (crl_continual_checkpoint_view): agents/continual.c owns its layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl/blas.h"
#include "crl/continual.h"
#include "crl/env.h"
#include "crl/export.h"
#include "crl/methods.h"
#include "crl/policy.h"
#include "crl/run.h"
#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/scenario.h"
#include "crl/store.h"
#include "embed/format.h"
#include "embed/internal.h"

/* ---- the run's configuration ---------------------------------------------------- */

typedef struct {
    char scenario[128], method[32], env[256], env_xml[1024];
    int single_task, hidden, layers, obs_dim, act_dim, xml_steps;
    int l2m_oracle;      /* l2m: routes by task id when evaluating */
    int l2m_history;     /* l2m: the routing query's H (1 for runs before it) */
    int l2m_hold;        /* l2m: acting holds the modulator of step H */
    double l2m_scale;    /* l2m: the LoRA scale (not in the learner blob) */
    char l2m_router[16]; /* l2m: router kind ("l2m" for runs before it) */
} run_cfg;

static void copy_text(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
}

/* The parts of the run's configuration (crl_run_config_load) an export
 * needs. */
static int read_config(crl_store *store, int64_t run_id, run_cfg *cfg, crl_err *err) {
    crl_run_config r;
    int rc = crl_run_config_load(store, run_id, &r, NULL, err);
    if (rc) return rc;
    /* The policy format routes one modulator per row: a soft (merged) run
     * would not act as it was evaluated. */
    if (r.l2m.router && !strcmp(r.l2m.router, "soft")) {
        crl_run_config_free(&r);
        return crl_errf(err, CRL_EINVAL,
                        "export: run %lld uses the soft router, which the policy format "
                        "cannot hold yet",
                        (long long)run_id);
    }
    memset(cfg, 0, sizeof *cfg);
    copy_text(cfg->scenario, sizeof cfg->scenario, r.scenario);
    copy_text(cfg->method, sizeof cfg->method, r.method);
    copy_text(cfg->env, sizeof cfg->env, r.env);
    copy_text(cfg->env_xml, sizeof cfg->env_xml, r.env_xml);
    cfg->single_task = r.single_task;
    cfg->hidden = r.sac.hidden;
    cfg->layers = r.sac.layers;
    cfg->obs_dim = r.sac.obs_dim;
    cfg->act_dim = r.sac.act_dim;
    cfg->xml_steps = r.xml_steps;
    cfg->l2m_oracle = r.l2m.oracle;
    cfg->l2m_history = r.l2m.history;
    cfg->l2m_hold = r.l2m.hold;
    cfg->l2m_scale = r.l2m.scale;
    copy_text(cfg->l2m_router, sizeof cfg->l2m_router, r.l2m.router);
    crl_run_config_free(&r);
    return CRL_OK;
}

/* ---- what the file will hold ------------------------------------------------------ */

typedef struct {
    crl_pf_desc d;
    crl_pf_task *tasks;
    const float **nets;
    char **mods;
    int n_alloc; /* entries of tasks and mods (the file's tasks once it succeeds) */
    crl_env_spec **specs;
    int n_specs;
    crl_sac *sac;
    crl_packnet pk;
    int has_pk;
    float **ftn; /* continual ftn actors (owned) */
    int n_ftn;
    float **anchors; /* csp: each anchor as a plain network (owned) */
    int n_anchors;
    float *alpha; /* csp: the alpha table (owned) */
    char info[600];
} export_state;

static void state_free(export_state *x) {
    for (int i = 0; x->mods && i < x->n_alloc; i++) free(x->mods[i]);
    for (int i = 0; x->specs && i < x->n_specs; i++) crl_env_spec_free(x->specs[i]);
    for (int i = 0; x->ftn && i < x->n_ftn; i++) free(x->ftn[i]);
    for (int i = 0; x->anchors && i < x->n_anchors; i++) free(x->anchors[i]);
    free(x->anchors);
    free(x->alpha);
    if (x->has_pk) crl_packnet_free(&x->pk);
    crl_sac_free(x->sac);
    free(x->tasks);
    free((void *)x->nets);
    free(x->mods);
    free(x->specs);
    free(x->ftn);
}

static int alloc_tasks(export_state *x, int n, crl_err *err) {
    x->tasks = calloc((size_t)n, sizeof *x->tasks);
    x->nets = calloc((size_t)n, sizeof *x->nets);
    x->mods = calloc((size_t)n, sizeof *x->mods);
    x->specs = calloc((size_t)n, sizeof *x->specs);
    if (!x->tasks || !x->nets || !x->mods || !x->specs)
        return crl_errf(err, CRL_ENOMEM, "export: out of memory");
    x->n_alloc = n;
    return CRL_OK;
}

/* Task entry k of the file for a built-in env (its spec kept in x->specs). */
static int builtin_task(export_state *x, int k, const char *name, int position,
                        crl_err *err) {
    crl_env_spec *s = NULL;
    int rc = crl_env_spec_create(name, &s, err);
    if (rc) return rc;
    x->specs[x->n_specs++] = s;
    char *mods = malloc(2048);
    if (!mods) return crl_errf(err, CRL_ENOMEM, "export: out of memory");
    crl_env_modifiers(s, mods, 2048);
    x->mods[k] = mods;
    crl_pf_task *t = &x->tasks[k];
    t->position = position;
    t->env_kind = POL_ENV_BUILTIN;
    t->obs_dim = crl_env_obs_dim(s);
    t->act_dim = crl_env_act_dim(s);
    t->frame_skip = crl_env_frame_skip(s);
    t->max_steps = crl_env_max_steps(s);
    t->name = crl_env_spec_name(s);
    t->modifiers = mods;
    t->view = -1;
    t->norm = POL_NORM_NONE;
    return CRL_OK;
}

/* The learner of the run's shape. csp_anchors > 0: a CSP learner with room
 * for that many anchors; l2m (5 values, or NULL): an L2M learner with the
 * pool shape its blob records (crl_sac_save: M, kind, rank, base heads,
 * base head) and the run's LoRA scale. */
static int make_learner(export_state *x, const run_cfg *cfg, int obs, int act,
                        int n_tasks, int csp_anchors, const uint32_t *l2m, crl_err *err) {
    crl_sac_config sc;
    crl_sac_config_default(&sc, obs, act, n_tasks);
    sc.hidden = cfg->hidden;
    sc.layers = cfg->layers;
    sc.max_act_batch = 1;
    sc.threads = 1;
    sc.csp_anchors = csp_anchors;
    if (l2m) {
        if (l2m[0] < 1 || l2m[0] > POL_MAX_POOL || l2m[1] > CRL_POOL_IA3 ||
            l2m[2] > POL_MAX_RANK || l2m[3] < 1 || l2m[3] > POL_MAX_HEADS ||
            l2m[4] >= l2m[3])
            return crl_errf(err, CRL_ECORRUPT,
                            "the L2M learner's pool header is corrupt");
        sc.l2m_pool = (int)l2m[0];
        sc.l2m_kind = (int)l2m[1];
        sc.l2m_rank = (int)l2m[2];
        sc.l2m_scale = (float)cfg->l2m_scale;
        sc.l2m_pull = CRL_L2M_PULL;
        sc.l2m_base_tasks = (int)l2m[3];
        sc.l2m_head = (int)l2m[4];
    }
    return crl_sac_create(&sc, 0, &x->sac, err);
}

/* ---- single-env runs (crl train --env / --env-xml)
 * -------------------------------------- */

static int export_single(export_state *x, const run_cfg *cfg, int task, const void *blob,
                         size_t bn, crl_err *err) {
    if (task > 0)
        return crl_errf(err, CRL_EINVAL,
                        "a single-env run has only task 0 (asked for task %d)", task);
    int rc = alloc_tasks(x, 1, err);
    if (rc) return rc;
    crl_pf_task *t = &x->tasks[0];
    if (cfg->env_xml[0]) {
        if (cfg->obs_dim < 1 || cfg->act_dim < 1)
            return crl_errf(err, CRL_ECORRUPT,
                            "the run's configuration lacks its observation/action sizes");
        char *mods = malloc(8);
        if (!mods) return crl_errf(err, CRL_ENOMEM, "export: out of memory");
        strcpy(mods, "{}");
        x->mods[0] = mods;
        *t = (crl_pf_task){.position = -1,
                           .env_kind = POL_ENV_USER_MJCF,
                           .obs_dim = cfg->obs_dim,
                           .act_dim = cfg->act_dim,
                           .frame_skip = 5,
                           .max_steps = cfg->xml_steps > 0 ? cfg->xml_steps : 1000,
                           .name = cfg->env_xml,
                           .modifiers = mods,
                           .view = -1};
    } else if ((rc = builtin_task(x, 0, cfg->env, -1, err))) {
        return rc;
    }
    const void *sb = NULL;
    size_t sn = 0;
    if ((rc = make_learner(x, cfg, t->obs_dim, t->act_dim, 1, 0, NULL, err)) ||
        (rc = crl_checkpoint_learner(blob, bn, &sb, &sn, NULL, err)) ||
        (rc = crl_sac_load(x->sac, sb, sn, err)))
        return rc;
    x->nets[0] = crl_sac_actor_params(x->sac);
    x->d.method = POL_METHOD_PLAIN;
    x->d.n_nets = 1;
    x->d.n_tasks = 1;
    return CRL_OK;
}

/* ---- continual runs
 * ------------------------------------------------------------------------ */

/* CSP: each anchor in use as a plain network (the shared LayerNorm in
 * each), and per file task the alpha crl evaluates it with
 * (crl_csp_eval_mix: its stored alpha, or the centre of the subspace),
 * restricted to the anchors in use (crl_sac_act reads no more). */
static int export_csp(export_state *x, int n, int count, const void *mb, size_t mn,
                      crl_err *err) {
    crl_subspace *sub = crl_sac_subspace(x->sac);
    const crl_mlp *m = crl_sac_actor(x->sac);
    const float *params = crl_sac_actor_params(x->sac);
    crl_csp_config cc;
    crl_csp_config_default(&cc);
    crl_csp csp;
    int rc = crl_csp_init(&csp, &cc, n, n, err);
    if (rc) return rc;
    if ((rc = crl_csp_load(&csp, mb, mn, err))) {
        crl_csp_free(&csp);
        return rc;
    }
    const int na = sub->n_anchors;
    free((void *)x->nets);
    x->nets = calloc((size_t)na, sizeof *x->nets);
    x->anchors = calloc((size_t)na, sizeof *x->anchors);
    float mix[CRL_CSP_MAX_K];
    x->alpha = malloc(sizeof(float) * (size_t)na * (size_t)count);
    if (!x->nets || !x->anchors || !x->alpha) rc = CRL_ENOMEM;
    for (int i = 0; !rc && i < na; i++) {
        if (!(x->anchors[i] = malloc(sizeof(float) * m->n_params))) {
            rc = CRL_ENOMEM;
            break;
        }
        x->n_anchors++;
        crl_subspace_anchor_to_mlp(sub, params, i, m, x->anchors[i]);
        x->nets[i] = x->anchors[i];
    }
    for (int k = 0; !rc && k < count; k++) {
        crl_csp_eval_mix(&csp, x->sac, x->tasks[k].head, mix);
        memcpy(x->alpha + (size_t)k * na, mix, sizeof(float) * (size_t)na);
        x->tasks[k].net = 0;
        x->tasks[k].head = 0; /* the CSP actor's one head (agents/sac.c) */
    }
    crl_csp_free(&csp);
    if (rc) return crl_errf(err, CRL_ENOMEM, "export: out of memory");
    x->d.method = POL_METHOD_CSP;
    x->d.n_nets = na;
    x->d.csp_alpha = x->alpha;
    return CRL_OK;
}

static int export_continual(export_state *x, const run_cfg *cfg, int64_t run_id, int task,
                            const void *blob, size_t bn, crl_err *err) {
    const crl_scenario *sc = crl_scenario_find(cfg->scenario);
    if (!sc)
        return crl_errf(err, CRL_ECORRUPT, "run %lld: unknown scenario '%s'",
                        (long long)run_id, cfg->scenario);
    /* The registry says which methods' policies a file can hold and how
     * (crl_method_policy); a pre-training base (mt) is not one. */
    const crl_method *meth = crl_method_find(cfg->method);
    if (!meth || !(meth->impl->flags & CRL_METHOD_EXPORTABLE)) {
        char known[256];
        return crl_errf(
            err, CRL_EINVAL, "run %lld: exporting method '%s' is not supported (%s are)",
            (long long)run_id, cfg->method,
            crl_method_list(CRL_METHOD_EXPORTABLE, " and ", known, sizeof known));
    }
    const int policy = meth->impl->policy;
    const int single = (meth->impl->flags & CRL_METHOD_ONE_TASK) != 0;
    if (single && (cfg->single_task < 0 || cfg->single_task >= sc->n_tasks))
        return crl_errf(err, CRL_ECORRUPT, "run %lld: single-task position %d",
                        (long long)run_id, cfg->single_task);
    const int n = single ? 1 : sc->n_tasks; /* the run's local tasks */
    int first = 0, count = n;
    if (task >= 0) {
        first = -1;
        for (int j = 0; j < n; j++)
            if ((single ? cfg->single_task : j) == task) first = j;
        if (first < 0)
            return crl_errf(err, CRL_EINVAL, "run %lld has no task %d", (long long)run_id,
                            task);
        count = 1;
    }
    int rc = alloc_tasks(x, count, err);
    for (int k = 0; !rc && k < count; k++) {
        int j = first + k, pos = single ? cfg->single_task : j;
        rc = builtin_task(x, k, sc->tasks[pos], pos, err);
        x->tasks[k].head = j;
    }
    if (rc) return rc;
    const int O = x->tasks[0].obs_dim, A = x->tasks[0].act_dim;

    /* The checkpoint's parts (agents/continual.c owns its layout). */
    crl_continual_view cv;
    crl_err verr = {0};
    const int bad = crl_continual_checkpoint_view(blob, bn, &cv, &verr) != CRL_OK;
    /* A view that parsed but holds a non-finite learner: say so (the shape
     * message below would hide it). */
    if (bad && strstr(verr.msg, "not finite"))
        return crl_errf(err, CRL_ECORRUPT, "run %lld: its latest checkpoint: %s",
                        (long long)run_id, verr.msg);
    const void *sb = cv.learner, *mb = cv.method;
    const size_t sn = cv.learner_n, mn = cv.method_n;
    const int n_ftn = cv.n_task_actors;
    const int is_csp = policy == CRL_METHOD_POLICY_SUBSPACE,
              is_l2m = policy == CRL_METHOD_POLICY_L2M;
    /* L2M: the pool's shape from the learner blob's view (M, kind, rank,
     * base heads, base head); crl_sac_load checks the rest. */
    uint32_t l2m[5] = {0, 0, 0, 0, 0};
    if (is_l2m && !strcmp(cfg->l2m_router, "l2r"))
        return crl_errf(err, CRL_EINVAL,
                        "run %lld routes with l2r, which a policy file cannot hold yet",
                        (long long)run_id);
    if (is_l2m && !bad) {
        crl_sac_blob lv;
        if (crl_sac_blob_info(sb, sn, &lv, NULL) != CRL_OK ||
            lv.actor.kind != CRL_ACTOR_L2M)
            return crl_errf(err, CRL_ECORRUPT,
                            "run %lld: its latest checkpoint holds no L2M learner",
                            (long long)run_id);
        l2m[0] = lv.actor.M;
        l2m[1] = lv.actor.pool_kind;
        l2m[2] = lv.actor.rank;
        l2m[3] = lv.actor.base_tasks;
        l2m[4] = lv.actor.head;
    }
    if (!bad &&
        (rc = make_learner(x, cfg, O, A, n, is_csp ? n : 0, is_l2m ? l2m : NULL, err)))
        return rc;
    const size_t na = x->sac ? crl_sac_actor(x->sac)->n_params : 0;
    if (bad || n_ftn > n || cv.task_actors_n != (size_t)n_ftn * na * sizeof(float))
        return crl_errf(
            err, CRL_ECORRUPT,
            "run %lld: its latest checkpoint is not a continual-run checkpoint "
            "of this shape",
            (long long)run_id);
    if ((rc = crl_sac_load(x->sac, sb, sn, err))) return rc;
    const float *learner = crl_sac_actor_params(x->sac);

    x->d.method = POL_METHOD_PLAIN;
    x->d.n_nets = 1;
    x->nets[0] = learner;
    if (policy == CRL_METHOD_POLICY_PACKNET) {
        if ((rc = crl_packnet_init(&x->pk, crl_sac_actor(x->sac), n, err))) return rc;
        x->has_pk = 1;
        if ((rc = crl_packnet_load(&x->pk, mb, mn, err))) return rc;
        if (x->pk.task >= 0) {
            x->d.method = POL_METHOD_PACKNET;
            x->d.pk_owner = x->pk.owner;
            x->d.pk_task = x->pk.task;
            x->d.pk_tasks = n;
            for (int k = 0; k < count; k++) x->tasks[k].view = x->tasks[k].head;
        }
    } else if (is_csp) {
        if ((rc = export_csp(x, n, count, mb, mn, err))) return rc;
    } else if (is_l2m) {
        const crl_pool *pool = crl_sac_pool(x->sac);
        x->nets[0] = crl_sac_l2m_base(x->sac);
        x->d.method = POL_METHOD_L2M;
        x->d.l2m_kind = (int)pool->kind;
        x->d.l2m_M = pool->M;
        x->d.l2m_rank = pool->rank;
        x->d.l2m_scale = pool->scale;
        /* Evaluation routes: the oracle's slices, arrow's prototypes (taken
         * from the pool's parameters by the runtime), else plain cosine. */
        const int oracle = cfg->l2m_oracle || !strcmp(cfg->l2m_router, "oracle");
        x->d.l2m_route = oracle                              ? POL_ROUTE_ORACLE
                         : !strcmp(cfg->l2m_router, "arrow") ? POL_ROUTE_ARROW
                                                             : POL_ROUTE_COSINE;
        x->d.l2m_route_tasks = oracle ? n : 0;
        x->d.l2m_history = cfg->l2m_history;
        x->d.l2m_hold = cfg->l2m_hold;
        x->d.l2m_n_params = pool->n_params;
        x->d.l2m_params = learner;
        /* Every row goes through the base head L2M trained with; evaluation
         * routes by cosine, or by task id inside the task's slice (oracle),
         * as crl_l2m_eval_route sets it. */
        for (int k = 0; k < count; k++) {
            x->tasks[k].view = cfg->l2m_oracle ? x->tasks[k].head : -1;
            x->tasks[k].head = (int)l2m[4];
        }
    } else if (policy == CRL_METHOD_POLICY_PER_TASK) {
        /* Task j acts with its own finished actor, a task not finished yet
         * with the current learner (as crl's evaluation does). */
        x->ftn = calloc((size_t)n_ftn + 1, sizeof *x->ftn);
        if (!x->ftn) return crl_errf(err, CRL_ENOMEM, "export: out of memory");
        for (int i = 0; i < n_ftn; i++) {
            if (!(x->ftn[i] = malloc(na * sizeof(float))))
                return crl_errf(err, CRL_ENOMEM, "export: out of memory");
            x->n_ftn++;
            if ((rc = crl_continual_task_actor(&cv, i, na, x->ftn[i], err))) return rc;
        }
        x->d.method = POL_METHOD_FTN;
        x->d.n_nets = count;
        for (int k = 0; k < count; k++) {
            int j = x->tasks[k].head;
            x->nets[k] = j < n_ftn ? x->ftn[j] : learner;
            x->tasks[k].net = k;
        }
    }
    x->d.n_tasks = count;
    return CRL_OK;
}

/* ---- the file
 * ------------------------------------------------------------------------------ */

/* A temporary file in path's folder, synced and renamed (base.h): a failed
 * write leaves no file and an existing one untouched; the message has the
 * OS reason. */
static int write_atomic(const char *path, const unsigned char *buf, size_t n,
                        crl_err *err) {
    return crl_atomic_write_file(path, buf, n, err);
}

int crl_policy_export(const char *db, int64_t run_id, int task, const char *path,
                      char *errbuf, size_t errlen) {
    if (!db || !path)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "export: database or output is NULL");
    crl_err err = {0};
    crl_store *store = NULL;
    export_state x;
    memset(&x, 0, sizeof x);
    run_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    void *blob = NULL;
    size_t bn = 0;
    int tidx = 0;
    int64_t step = 0;
    unsigned char *out = NULL;
    size_t on = 0;
    crl_run_info info;
    int rc = crl_blas_init(1, &err);
    if (!rc) rc = crl_store_open(db, 0, &store, &err);
    if (!rc) rc = read_config(store, run_id, &cfg, &err);
    if (!rc) rc = crl_store_run_get(store, run_id, &info, NULL, &err);
    if (!rc) {
        rc = crl_store_checkpoint_latest(store, run_id, &tidx, &step, &blob, &bn, &err);
        if (rc == CRL_ENOTFOUND)
            crl_errf(&err, rc, "run %lld has no checkpoint yet", (long long)run_id);
    }
    if (!rc && cfg.hidden < 1) rc = crl_errf(&err, CRL_ECORRUPT, "bad stored shape");
    if (!rc)
        rc = cfg.scenario[0] ? export_continual(&x, &cfg, run_id, task, blob, bn, &err)
                             : export_single(&x, &cfg, task, blob, bn, &err);
    if (!rc) {
        const int single_env = !cfg.scenario[0];
        snprintf(x.info, sizeof x.info,
                 "exported by crl %s from run %lld (%s, %.400s) at step %lld",
                 CRL_VERSION_STRING, (long long)run_id, single_env ? "sac" : cfg.method,
                 single_env ? (cfg.env_xml[0] ? cfg.env_xml : cfg.env) : cfg.scenario,
                 (long long)step);
        x.d.method_name = single_env ? "sac" : cfg.method;
        x.d.scenario = cfg.scenario;
        x.d.run_id = run_id;
        x.d.step = step;
        x.d.seed = info.seed;
        x.d.mlp = crl_sac_actor(x.sac);
        x.d.net_params = x.nets;
        x.d.tasks = x.tasks;
        x.d.info = x.info;
        rc = crl_pf_write(&x.d, &out, &on, &err);
    }
    if (!rc) rc = write_atomic(path, out, on, &err);
    free(out);
    free(blob);
    state_free(&x);
    crl_store_close(store);
    if (rc) return pol_fail(errbuf, errlen, rc, "%s", err.msg);
    return CRL_OK;
}
