/* The continual runner: a scenario of tasks, one method, every task evaluated
 * on schedule (Continual World protocol). What each method does at which
 * moment is written down in docs/methods.md ("What the runner calls"). */
#include "crl/continual.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/checkpoint_check.h"
#include "agents/continual_state.h"
#include "agents/diverge.h"
#include "core/blob.h"
#include "crl/dataset.h"
#include "crl/scenario.h"

void crl_continual_config_default(crl_continual_config *c) {
    memset(c, 0, sizeof *c);
    c->scenario = "t1";
    c->method = crl_method_at(0)->name;
    c->steps_per_task = 1000000;
    c->eval_every = 20000;
    c->eval_episodes = 10;
    c->log_train_every = CRL_LOG_TRAIN_EVERY;
    c->l2_coef = CRL_L2_COEF;
    c->ewc_coef = CRL_EWC_COEF;
    c->packnet_retrain = 0.1;
    c->diag_every = CRL_DIAG_EVERY;
    crl_csp_config_default(&c->csp);
    crl_l2m_config_default(&c->l2m);
    crl_sac_config_default(&c->sac, 0, 0, 1);
}

double crl_continual_model_params(const char *method, double actor_params,
                                  int tasks_done) {
    const crl_method *m = crl_method_find(method);
    if (m && m->impl->model_params)
        return m->impl->model_params(actor_params, tasks_done);
    return actor_params;
}

/* ---- checkpoints ------------------------------------------------------------
 * "CRLCON01", i32 task, i32 n_ftn, i64 steps done in the task, i64 global
 * step, i64 eval index, four generators (44 bytes each), u64 + learner blob,
 * u64 + method blob (crl_method_impl.save, may be empty), n_ftn actors (the
 * finished tasks' actors of a per-task method). Only this file reads these
 * bytes; everyone else uses crl_continual_checkpoint_view. */

static const char CON_MAGIC[8] = {'C', 'R', 'L', 'C', 'O', 'N', '0', '1'};

static int save_checkpoint(cstate *st, crl_store *store, int64_t run_id, int k, int64_t t,
                           crl_err *err) {
    void *sb = NULL, *mb = NULL;
    size_t sn = 0, mn = 0;
    int rc = crl_sac_save(st->sac, &sb, &sn, err);
    if (!rc && st->m->save) rc = st->m->save(st, &mb, &mn, err);
    if (rc) {
        free(sb);
        return rc;
    }
    int32_t task = k, n_ftn = 0;
    for (int i = 0; i < st->n; i++) n_ftn += st->ftn_actors[i] != NULL;
    uint64_t sn64 = sn, mn64 = mn;
    crl_wbuf w = {0};
    crl_wbuf_put(&w, CON_MAGIC, 8);
    crl_wbuf_put(&w, &task, 4);
    crl_wbuf_put(&w, &n_ftn, 4);
    crl_wbuf_put(&w, &t, 8);
    crl_wbuf_put(&w, &st->step, 8);
    crl_wbuf_put(&w, &st->eval_idx, 8);
    crl_wbuf_put_rng(&w, &st->env_rng);
    crl_wbuf_put_rng(&w, &st->rng);
    crl_wbuf_put_rng(&w, &st->eval_rng);
    crl_wbuf_put_rng(&w, &st->res_rng);
    crl_wbuf_put(&w, &sn64, 8);
    crl_wbuf_put(&w, sb, sn);
    crl_wbuf_put(&w, &mn64, 8);
    crl_wbuf_put(&w, mb, mn);
    for (int i = 0; i < st->n; i++)
        if (st->ftn_actors[i])
            crl_wbuf_put(&w, st->ftn_actors[i], st->na * sizeof(float));
    free(sb);
    free(mb);
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "checkpoint: out of memory");
    }
    rc = crl_store_checkpoint_put(store, run_id, st->pos[k < st->n ? k : st->n - 1],
                                  st->step, w.p, w.n, err);
    free(w.p);
    /* Keep the last two (the previous one is a resume's fallback when the
     * latest is corrupt): the file does not grow by one learner per
     * evaluation. */
    if (rc == CRL_OK) rc = crl_store_checkpoint_prune(store, run_id, st->step, err);
    return rc;
}

int crl_continual_checkpoint_view(const void *blob, size_t n, crl_continual_view *v,
                                  crl_err *err) {
    memset(v, 0, sizeof *v);
    crl_rbuf r = {blob, n, 0, 0};
    char magic[8];
    int32_t task = 0, n_actors = 0;
    uint64_t sn = 0, mn = 0;
    crl_rng g;
    crl_rbuf_get(&r, magic, 8);
    crl_rbuf_get(&r, &task, 4);
    crl_rbuf_get(&r, &n_actors, 4);
    crl_rbuf_get(&r, &v->task_steps, 8);
    crl_rbuf_get(&r, &v->step, 8);
    crl_rbuf_get(&r, &v->eval_idx, 8);
    for (int i = 0; i < 4; i++) crl_rbuf_get_rng(&r, &g);
    crl_rbuf_get(&r, &sn, 8);
    v->learner = crl_rbuf_take(&r, sn);
    crl_rbuf_get(&r, &mn, 8);
    v->method = crl_rbuf_take(&r, mn);
    if (r.bad || memcmp(magic, CON_MAGIC, 8) != 0 || task < 0 || n_actors < 0)
        return crl_errf(err, CRL_ECORRUPT, "not a continual-run checkpoint");
    v->task = task;
    v->learner_n = (size_t)sn;
    v->method_n = (size_t)mn;
    v->n_task_actors = n_actors;
    v->task_actors = (const unsigned char *)blob + r.off;
    v->task_actors_n = n - r.off;
    /* eval, export and resume all read through here: a learner (or a
     * finished task's actor) that is not finite is refused. */
    int rc = crl_checkpoint_check_learner(v->learner, v->learner_n, err);
    if (!rc && v->task_actors_n % sizeof(float) == 0)
        rc = crl_checkpoint_check_floats(v->task_actors, v->task_actors_n / sizeof(float),
                                         "corrupt checkpoint: a finished task's actor "
                                         "parameter",
                                         err);
    return rc;
}

static int check_con_blob(const void *blob, size_t n, crl_err *err) {
    crl_continual_view v;
    return crl_continual_checkpoint_view(blob, n, &v, err);
}

int crl_continual_task_actor(const crl_continual_view *v, int i, size_t na, float *out,
                             crl_err *err) {
    if (i < 0 || i >= v->n_task_actors ||
        v->task_actors_n != (size_t)v->n_task_actors * na * sizeof(float))
        return crl_errf(err, CRL_EINVAL, "checkpoint: no task actor %d of %zu floats", i,
                        na);
    memcpy(out, (const unsigned char *)v->task_actors + (size_t)i * na * sizeof(float),
           na * sizeof(float));
    return CRL_OK;
}

int crl_continual_checkpoint_learner(const void *blob, size_t n, const void **sac_blob,
                                     size_t *sac_n, crl_err *err) {
    crl_continual_view v;
    int rc = crl_continual_checkpoint_view(blob, n, &v, err);
    if (rc) return rc;
    *sac_blob = v.learner;
    *sac_n = v.learner_n;
    return CRL_OK;
}

/* Restore from the latest intact checkpoint; *k and *t say where to
 * continue. fallback (a resume): a corrupt latest checkpoint is reported in
 * one line and the previous one used; without (an evaluation) refused. */
static int load_checkpoint(cstate *st, crl_store *store, int64_t run_id, int fallback,
                           int *k, int64_t *t, crl_err *err) {
    void *blob = NULL;
    size_t n = 0;
    int task_idx;
    int64_t step;
    int rc = crl_checkpoint_fetch(store, run_id, fallback, check_con_blob, &task_idx,
                                  &step, &blob, &n, err);
    if (rc == CRL_ENOTFOUND) return CRL_OK; /* nothing done yet: start over */
    if (rc) return rc;
    crl_rbuf r = {blob, n, 0, 0};
    char magic[8];
    int32_t task = 0, n_ftn = 0;
    uint64_t sn = 0, mn = 0;
    crl_rbuf_get(&r, magic, 8);
    crl_rbuf_get(&r, &task, 4);
    crl_rbuf_get(&r, &n_ftn, 4);
    crl_rbuf_get(&r, t, 8);
    crl_rbuf_get(&r, &st->step, 8);
    crl_rbuf_get(&r, &st->eval_idx, 8);
    crl_rbuf_get_rng(&r, &st->env_rng);
    crl_rbuf_get_rng(&r, &st->rng);
    crl_rbuf_get_rng(&r, &st->eval_rng);
    crl_rbuf_get_rng(&r, &st->res_rng);
    crl_rbuf_get(&r, &sn, 8);
    const void *sb = crl_rbuf_take(&r, sn);
    crl_rbuf_get(&r, &mn, 8);
    const void *mb = crl_rbuf_take(&r, mn);
    if (r.bad || memcmp(magic, CON_MAGIC, 8) != 0 || task < 0 || task > st->n ||
        n_ftn < 0 || n_ftn > st->n) {
        free(blob);
        return crl_errf(
            err, CRL_ECORRUPT,
            "run %lld: its latest checkpoint is not a continual-run checkpoint",
            (long long)run_id);
    }
    rc = crl_sac_load(st->sac, sb, sn, err);
    if (!rc && st->m->load) rc = st->m->load(st, mb, mn, err);
    for (int i = 0; !rc && i < n_ftn; i++) {
        st->ftn_actors[i] = malloc(st->na * sizeof(float));
        if (!st->ftn_actors[i]) rc = crl_errf(err, CRL_ENOMEM, "resume: out of memory");
        if (!rc) crl_rbuf_get(&r, st->ftn_actors[i], st->na * sizeof(float));
    }
    if (!rc && (r.bad || r.off != n))
        rc = crl_errf(err, CRL_ECORRUPT, "run %lld: truncated checkpoint",
                      (long long)run_id);
    free(blob);
    st->last_eval_step = st->step;
    *k = task;
    return rc;
}

/* ---- evaluation of every task ---------------------------------------------- */

void cstate_restore_actor(cstate *st) {
    memcpy(crl_sac_actor_params(st->sac), st->saved, st->na * sizeof(float));
}

/* The policy that serves task j (the method's eval_begin: 1 if it swapped
 * the actor's parameters; undo with cstate_restore_actor). */
static int eval_begin(cstate *st, int j, int track_rows) {
    return st->m->eval_begin ? st->m->eval_begin(st, j, track_rows) : 0;
}

static int eval_all_tasks(cstate *st, crl_store *store, int64_t run_id, int cur,
                          crl_err *err);

/* Every task evaluated (below); the time it takes does not count toward the
 * diagnostics' rates. */
static int eval_all(cstate *st, crl_store *store, int64_t run_id, int cur, crl_err *err) {
    const double t0 = crl_now();
    int rc = eval_all_tasks(st, store, run_id, cur, err);
    diag_pause(&st->diag, crl_now() - t0);
    return rc;
}

static int eval_all_tasks(cstate *st, crl_store *store, int64_t run_id, int cur,
                          crl_err *err) {
    const int ne = st->c->eval_episodes;
    const int64_t idx = st->c->eval_fixed ? 0 : st->eval_idx;
    /* The batch holds the database's write lock: commit it before each
     * task's episodes run, so that an evaluation (seconds) never keeps
     * another trainer of the same file waiting (tests/test_shared_db.sh). */
    int frc = crl_store_flush(store, err);
    if (frc) return frc;
    for (int j = 0; j < st->n; j++) {
        for (int e = 0; e <= ne; e++)
            st->seeds[e] = crl_eval_seed(st->c->seed, idx, 1000 * st->pos[j] + e);
        /* --eval-fixed: the action noise of task j's episodes restarts from
         * the same state at every evaluation. */
        crl_rng fixed, *noise = &st->eval_rng;
        if (st->c->eval_fixed) {
            crl_rng_seed_stream(&fixed, st->c->seed ^ 0xE7A2ull, (uint64_t)st->pos[j]);
            noise = &fixed;
        }
        int swapped = eval_begin(st, j, ne + 1);
        evaluator_run(&st->evs[j], st->sac, j, ne, st->seeds, noise);
        if (swapped) cstate_restore_actor(st);
        if (st->m->eval_end) {
            int rc = st->m->eval_end(st, store, run_id, j, ne + 1, err);
            if (rc) return rc;
        }
        double r = 0, s = 0;
        for (int e = 0; e < ne; e++) {
            r += st->evs[j].ret[e];
            s += st->evs[j].succ[e];
        }
        crl_eval_row row = {
            run_id, st->step,          st->pos[cur],      st->pos[j],
            ne,     ne ? s / ne : 0.0, ne ? r / ne : 0.0, st->evs[j].ret[ne]};
        /* crl train's line per evaluation: the tasks trained so far (every
         * task of a multi-task run), with the change since the last one. */
        if (st->prev_eval && (j <= cur || (st->m->flags & CRL_METHOD_MULTITASK))) {
            const double v =
                diag_eval_value(st->has_success[j], ne, row.success_rate, row.mean_return,
                                row.det_return, st->evs[j].succ[ne]);
            diag_note_eval(st->note, st->note_ctx, j, st->n, st->names[j], st->step,
                           st->has_success[j], v, st->prev_eval[j]);
            st->prev_eval[j] = v;
        }
        int rc = crl_store_eval(store, &row, err);
        if (!rc)
            rc = evaluator_log(&st->evs[j], store, run_id, st->step, st->pos[j], err);
        if (!rc) rc = crl_store_flush(store, err);
        if (rc) return rc;
    }
    st->eval_idx++;
    st->last_eval_step = st->step;
    if (st->m->eval_done) {
        int rc = st->m->eval_done(st, cur, err);
        if (rc) return rc;
    }
    return crl_store_flush(store, err);
}

/* ---- setup ------------------------------------------------------------------ */

static void cstate_free(cstate *st) {
    if (st->evs)
        for (int i = 0; i < st->n; i++) evaluator_free(&st->evs[i]);
    if (st->envs)
        for (int i = 0; i < st->n; i++)
            if (st->envs[i]) crl_env_free(st->envs[i]);
    if (st->specs)
        for (int i = 0; i < st->n; i++)
            if (st->specs[i]) crl_env_spec_free(st->specs[i]);
    if (st->ftn_actors)
        for (int i = 0; i < st->n; i++) free(st->ftn_actors[i]);
    if (st->m && st->m->free) st->m->free(st);
    crl_sac_free(st->sac);
    crl_episode_free(st->trec);
    crl_dataset_close(st->ds);
    crl_replay_free(&st->rb);
    if (st->has_res) crl_reservoir_free(&st->res);
    crl_batch_free(&st->batch);
    crl_batch_free(&st->fbatch);
    free(st->evs);
    free(st->envs);
    free(st->specs);
    free(st->ftn_actors);
    free(st->pos);
    free(st->names);
    free(st->seeds);
    free(st->saved);
    free(st->fisher);
    free(st->prev_eval);
    free(st->has_success);
}

static int new_learner(cstate *st, int task, crl_err *err) {
    crl_sac_free(st->sac);
    st->sac = NULL;
    /* A per-task learner k is a fresh network with its own initialisation. */
    const int per_task = (st->m->flags & CRL_METHOD_PER_TASK) != 0;
    uint64_t seed = st->c->seed + (per_task ? 7919u * (uint64_t)task : 0);
    int rc = crl_sac_create(&st->sc, seed, &st->sac, err);
    if (rc) return rc;
    crl_sac_hooks h = {0};
    if (st->m->attach) st->m->attach(st, &h);
    crl_sac_set_hooks(st->sac, &h);
    return CRL_OK;
}

/* ---- offline: the dataset ----------------------------------------------------
 * docs/offline.md. The run's buffers are filled from the dataset's
 * transitions of a task (crl_dataset_transitions, read once per task) and the
 * updates sample them as they would sample collected steps. */

int crl_bc_loss_kind(const char *name) {
    if (!name || !strcmp(name, "nll")) return CRL_BC_NLL;
    if (!strcmp(name, "mse")) return CRL_BC_MSE;
    return -1;
}

/* A dataset error as one line naming the file; every one is bad input. */
static int ds_fail(const char *path, crl_err *err) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    if (strstr(msg, path)) return crl_errf(err, CRL_EINVAL, "%s", msg);
    return crl_errf(err, CRL_EINVAL, "dataset %s: %s", path, msg);
}

/* Open the dataset and check that it has every task of the run with the
 * env's sizes; *max and *sum: transitions of the largest task, of all. */
static int offline_open(cstate *st, int64_t *max, int64_t *sum, crl_err *err) {
    const char *path = st->c->offline;
    if (st->m->flags & CRL_METHOD_SUBSPACE)
        return crl_errf(err, CRL_EINVAL, "%s", CRL_OFFLINE_CSP_REFUSAL);
    if (crl_dataset_open(path, 0, &st->ds, err)) return ds_fail(path, err);
    crl_ds_task_summary *sum_rows = NULL;
    int n_rows = 0;
    if (crl_dataset_summary(st->ds, &sum_rows, &n_rows, err)) return ds_fail(path, err);
    int rc = CRL_OK;
    *max = *sum = 0;
    for (int k = 0; k < st->n && !rc; k++) {
        const crl_ds_task_summary *row = NULL;
        for (int i = 0; i < n_rows; i++)
            if (!strcmp(sum_rows[i].task, st->names[k])) row = &sum_rows[i];
        const int O = crl_env_obs_dim(st->specs[k]), A = crl_env_act_dim(st->specs[k]);
        if (!row || row->steps < 1)
            rc = crl_errf(err, CRL_EINVAL, "dataset %s has no episodes of task %s", path,
                          st->names[k]);
        else if (row->obs_dim != O || row->act_dim != A)
            rc = crl_errf(err, CRL_EINVAL,
                          "dataset %s: task %s has observation/action sizes %d/%d, the "
                          "env %d/%d",
                          path, st->names[k], row->obs_dim, row->act_dim, O, A);
        else {
            *max = row->steps > *max ? row->steps : *max;
            *sum += row->steps;
        }
    }
    free(sum_rows);
    return rc;
}

/* Add local task k's transitions to the run's buffer (pm: its reservoir). */
static int offline_load(cstate *st, int k, crl_err *err) {
    crl_ds_transitions tr;
    memset(&tr, 0, sizeof tr);
    const int O = st->sc.obs_dim, A = st->sc.act_dim;
    if (crl_dataset_transitions(st->ds, st->names[k], O, A, &tr, err))
        return ds_fail(st->c->offline, err);
    for (int64_t i = 0; i < tr.n; i++) {
        const float *o = tr.obs + i * O, *o2 = tr.next_obs + i * O, *a = tr.act + i * A;
        if (st->has_res)
            crl_reservoir_add(&st->res, &st->res_rng, o, a, tr.reward[i], o2, tr.done[i],
                              k);
        else
            crl_replay_add(&st->rb, o, a, tr.reward[i], o2, tr.done[i], k);
    }
    crl_ds_transitions_free(&tr);
    return CRL_OK;
}

int crl_continual_offline_check(const crl_continual_config *c, crl_err *err) {
    if (!c->offline || !*c->offline)
        return crl_errf(err, CRL_EINVAL, "offline: no dataset given");
    const crl_method *method = crl_method_find(c->method);
    const crl_scenario *sc = crl_scenario_find(c->scenario ? c->scenario : "");
    if (!method || !sc)
        return crl_errf(err, CRL_EINVAL, "unknown method '%s' or scenario '%s'",
                        c->method ? c->method : "", c->scenario ? c->scenario : "");
    if (method->impl->flags & CRL_METHOD_SUBSPACE)
        return crl_errf(err, CRL_EINVAL, "%s", CRL_OFFLINE_CSP_REFUSAL);
    const int one = (method->impl->flags & CRL_METHOD_ONE_TASK) != 0;
    if (one && (c->single_task < -1 || c->single_task >= sc->n_tasks))
        return crl_errf(err, CRL_EINVAL, "single-task %d: %s has %d tasks",
                        c->single_task, sc->name, sc->n_tasks);
    const int p0 = one && c->single_task >= 0 ? c->single_task : 0;
    const int p1 = one && c->single_task >= 0 ? c->single_task + 1 : sc->n_tasks;
    crl_dataset *ds = NULL;
    if (crl_dataset_open(c->offline, 0, &ds, err)) return ds_fail(c->offline, err);
    int rc = CRL_OK;
    for (int p = p0; p < p1 && !rc; p++) {
        crl_env_spec *spec = NULL;
        if ((rc = crl_env_spec_create(sc->tasks[p], &spec, err))) break;
        crl_ds_transitions tr;
        memset(&tr, 0, sizeof tr);
        rc = crl_dataset_transitions(ds, sc->tasks[p], crl_env_obs_dim(spec),
                                     crl_env_act_dim(spec), &tr, err);
        if (rc == CRL_ENOTFOUND)
            rc = crl_errf(err, CRL_EINVAL, "dataset %s has no episodes of task %s",
                          c->offline, sc->tasks[p]);
        else if (rc)
            rc = ds_fail(c->offline, err);
        crl_ds_transitions_free(&tr);
        crl_env_spec_free(spec);
    }
    crl_dataset_close(ds);
    return rc;
}

static int cstate_init(cstate *st, const crl_continual_config *c, crl_err *err) {
    memset(st, 0, sizeof *st);
    st->c = c;
    const crl_method *method = crl_method_find(c->method);
    if (!method) {
        char known[256];
        return crl_errf(err, CRL_EINVAL, "unknown method '%s' (known: %s)",
                        c->method ? c->method : "",
                        crl_method_list(0, ", ", known, sizeof known));
    }
    st->m = method->impl;
    const int one_task = (st->m->flags & CRL_METHOD_ONE_TASK) != 0;
    const crl_scenario *sc = crl_scenario_find(c->scenario ? c->scenario : "");
    if (!sc)
        return crl_errf(err, CRL_ENOTFOUND, "unknown scenario '%s' (see 'crl scenarios')",
                        c->scenario ? c->scenario : "");
    if (c->steps_per_task <= 0 || c->eval_every <= 0 || c->eval_episodes < 0 ||
        c->eval_episodes > 1000)
        return crl_errf(
            err, CRL_EINVAL,
            "steps-per-task and eval-every must be > 0, eval-episodes in 0..1000");
    if (one_task && (c->single_task < 0 || c->single_task >= sc->n_tasks))
        return crl_errf(err, CRL_EINVAL, "%s: task position %d not in 0..%d",
                        method->name, c->single_task, sc->n_tasks - 1);
    st->n = one_task ? 1 : sc->n_tasks;
    const int n = st->n;
    st->pos = calloc((size_t)n, sizeof *st->pos);
    st->names = calloc((size_t)n, sizeof *st->names);
    st->specs = calloc((size_t)n, sizeof *st->specs);
    st->envs = calloc((size_t)n, sizeof *st->envs);
    st->evs = calloc((size_t)n, sizeof *st->evs);
    st->ftn_actors = calloc((size_t)n, sizeof *st->ftn_actors);
    st->seeds = calloc((size_t)c->eval_episodes + 1, sizeof *st->seeds);
    if (!st->pos || !st->names || !st->specs || !st->envs || !st->evs ||
        !st->ftn_actors || !st->seeds)
        return crl_errf(err, CRL_ENOMEM, "continual: out of memory");
    int rc;
    for (int k = 0; k < n; k++) {
        st->pos[k] = one_task ? c->single_task : k;
        st->names[k] = sc->tasks[st->pos[k]];
        if ((rc = crl_env_spec_create(st->names[k], &st->specs[k], err)) ||
            (rc = crl_env_create(st->specs[k], &st->envs[k], err)) ||
            (rc = evaluator_init(&st->evs[k], st->specs[k], c->eval_episodes + 1,
                                 c->sac.threads, err)))
            return rc;
        if (crl_env_obs_dim(st->specs[k]) != crl_env_obs_dim(st->specs[0]) ||
            crl_env_act_dim(st->specs[k]) != crl_env_act_dim(st->specs[0]))
            return crl_errf(err, CRL_EINVAL,
                            "scenario %s mixes observation or action sizes (%s vs %s)",
                            sc->name, st->names[0], st->names[k]);
    }
    st->sc = c->sac;
    st->sc.obs_dim = crl_env_obs_dim(st->specs[0]);
    st->sc.act_dim = crl_env_act_dim(st->specs[0]);
    st->sc.n_tasks = n; /* one head and one entropy coefficient per position */
    if (st->sc.max_act_batch < c->eval_episodes + 1)
        st->sc.max_act_batch = c->eval_episodes + 1;
    if (st->m->configure && (rc = st->m->configure(st, err))) return rc;
    const int O = st->sc.obs_dim, A = st->sc.act_dim;

    /* Method state needs the actor's layout: make a learner first. */
    if ((rc = crl_sac_create(&st->sc, c->seed, &st->sac, err))) return rc;
    st->na = crl_sac_actor_size(st->sac);
    if (st->m->init && (rc = st->m->init(st, err))) return rc;
    if ((rc = new_learner(st, 0, err))) return rc;
    st->saved = malloc(st->na * sizeof(float));
    if (!st->saved) return crl_errf(err, CRL_ENOMEM, "continual: out of memory");
    int64_t cap = st->sc.buffer_size;
    /* Offline: the buffers hold a task's whole data (pm and mt: every
     * task's), whatever --buffer-size says. */
    int64_t data_max = 0, data_sum = 0;
    if (c->offline && (rc = offline_open(st, &data_max, &data_sum, err))) return rc;
    if (st->m->flags & CRL_METHOD_RESERVOIR) {
        int64_t total = c->steps_per_task * n;
        if (c->offline) cap = total = data_sum;
        if ((rc = crl_reservoir_init(&st->res, O, A, cap < total ? cap : total, err)))
            return rc;
        st->has_res = 1;
    } else {
        /* mt: one buffer holds every task's transitions. */
        int64_t per = c->steps_per_task * ((st->m->flags & CRL_METHOD_MULTITASK) ? n : 1);
        if (c->offline)
            cap = per = (st->m->flags & CRL_METHOD_MULTITASK) ? data_sum : data_max;
        if ((rc = crl_replay_init(&st->rb, O, A, cap < per ? cap : per, err))) return rc;
    }
    if ((rc = crl_batch_alloc(&st->batch, st->sc.batch, O, A, err)) ||
        (rc = crl_batch_alloc_history(&st->batch, crl_sac_l2m_history(st->sac), O, err)))
        return rc;
    if ((st->m->flags & CRL_METHOD_SUBSPACE) &&
        ((rc = crl_replay_init_mix(&st->rb, st->sc.csp_anchors, err)) ||
         (rc = crl_batch_alloc_mix(&st->batch, st->sc.csp_anchors, err))))
        return rc;
    crl_rng_seed_stream(&st->env_rng, c->seed, 20);
    crl_rng_seed_stream(&st->rng, c->seed, 21);
    crl_rng_seed_stream(&st->eval_rng, c->seed, 22);
    crl_rng_seed_stream(&st->res_rng, c->seed, 23);
    return CRL_OK;
}

/* ---- diagnostics (agents/diag.h) -------------------------------------------------- */

typedef struct {
    cstate *st;
    int64_t *last_step; /* [n] step of the value in prev_eval */
} prev_ctx;

/* A resumed run's last evaluation of each task, so that its first
 * evaluation note shows the change too. */
static int collect_prev(const crl_eval_row *row, void *vctx) {
    prev_ctx *x = vctx;
    cstate *st = x->st;
    for (int j = 0; j < st->n; j++)
        if (st->pos[j] == row->eval_task_idx && row->step >= x->last_step[j]) {
            x->last_step[j] = row->step;
            st->prev_eval[j] =
                diag_eval_value(st->has_success[j], row->episodes, row->success_rate,
                                row->mean_return, row->det_return, -1);
        }
    return 0;
}

static int diag_setup(cstate *st, crl_store *store, int64_t run_id, int resume, void *ctx,
                      crl_err *err) {
    const crl_continual_config *c = st->c;
    st->prev_eval = malloc((size_t)st->n * sizeof *st->prev_eval);
    st->has_success = malloc((size_t)st->n * sizeof *st->has_success);
    int64_t *last = malloc((size_t)st->n * sizeof *last);
    if (!st->prev_eval || !st->has_success || !last) {
        free(last);
        return crl_errf(err, CRL_ENOMEM, "continual: out of memory");
    }
    for (int j = 0; j < st->n; j++) {
        st->prev_eval[j] = NAN;
        st->has_success[j] = crl_task_has_success(st->names[j]);
        last[j] = -1;
    }
    st->note = c->note;
    st->note_ctx = ctx;
    diag_init(&st->diag, c->diag_every, c->offline != NULL, st->sc.gamma, st->step);
    int rc = CRL_OK;
    if (resume) {
        prev_ctx x = {st, last};
        rc = crl_store_evals(store, run_id, collect_prev, &x, err);
    }
    free(last);
    return rc;
}

/* Does a row of phase k report training success (mt: any of its tasks)? */
static int phase_success(const cstate *st, int k, int mt) {
    if (!mt) return st->has_success[k];
    for (int j = 0; j < st->n; j++)
        if (st->has_success[j]) return 1;
    return 0;
}

/* After updates: a diagnostics row when one is due (force: whatever has
 * accumulated, at a task's end), and a pending runaway warning. */
static void diag_tick(cstate *st, crl_store *store, int64_t run_id, int k, int cur,
                      int mt, int force) {
    if (force || diag_due(&st->diag))
        diag_write(&st->diag, store, run_id, st->step, phase_success(st, k, mt));
    diag_warn_flush(&st->diag, store, run_id, st->step, cur, st->n, st->names[cur],
                    st->note, st->note_ctx);
}

/* ---- the loop ------------------------------------------------------------------ */

int cstate_update_round(cstate *st, int64_t updates, crl_err *err) {
    for (int64_t u = 0; u < updates; u++) {
        if (st->has_res)
            crl_reservoir_sample(&st->res, &st->rng, st->sc.batch, &st->batch);
        else
            crl_replay_sample(&st->rb, &st->rng, st->sc.batch, &st->batch);
        /* Stats (and their gradient norms) only for the diagnostics. */
        crl_sac_stats ss = {0}, *sp = st->diag.every > 0 ? &ss : NULL;
        int rc = st->c->offline
                     ? crl_sac_bc_update(st->sac, &st->batch, st->c->bc_loss, sp, err)
                     : crl_sac_update(st->sac, &st->batch, sp, err);
        if (rc) return rc;
        if (sp) diag_update(&st->diag, sp);
    }
    return CRL_OK;
}

/* ---- the offline loop ----------------------------------------------------------
 * The online loop with the env step replaced by one behaviour-cloning update
 * on the task's data: st->step counts updates, and evaluations, checkpoints,
 * progress and Ctrl-C follow the same schedule. */
static int offline_phase(cstate *st, crl_store *store, int64_t run_id, int k, int64_t t,
                         int64_t budget, int64_t total, int mt, crl_progress_fn progress,
                         void *ctx, volatile sig_atomic_t *stop, int64_t *updates,
                         crl_err *err) {
    const crl_continual_config *c = st->c;
    int rc;
    /* The task's data (mt: every task's). pm's reservoir keeps the earlier
     * tasks' data; after a resume it starts empty and reloads them. */
    const int j0 = mt || (st->has_res && st->res.buf.size == 0) ? 0 : k;
    const int j1 = mt ? st->n : k + 1;
    for (int j = j0; j < j1; j++)
        if ((rc = offline_load(st, j, err))) return rc;
    double t_last = crl_now(), rate = 0;
    int64_t step_last = st->step;
    while (t < budget) {
        /* Up to 16 updates, never past an evaluation. */
        int64_t chunk = budget - t;
        const int64_t to_eval = c->eval_every - st->step % c->eval_every;
        if (chunk > to_eval) chunk = to_eval;
        if (chunk > 16) chunk = 16;
        for (int64_t u = 0; u < chunk; u++) {
            if ((rc = cstate_update_round(st, 1, err))) {
                crl_err e2;
                save_checkpoint(st, store, run_id, k, t, &e2);
                return rc;
            }
            t++;
            st->step++;
            (*updates)++;
            diag_tick(st, store, run_id, k, k, mt, 0);
        }
        if (st->step % c->eval_every == 0) {
            if (st->m->last_step && t == budget) st->m->last_step(st, k);
            if ((rc = eval_all(st, store, run_id, k, err))) return rc;
            const double t_ck = crl_now();
            if (t < budget && (rc = save_checkpoint(st, store, run_id, k, t, err)))
                return rc;
            diag_pause(&st->diag, crl_now() - t_ck);
        }
        if ((rc = crl_store_tick(store, err))) return rc;
        double now = crl_now();
        if (progress && now - t_last >= 1.0) {
            double inst = (double)(st->step - step_last) / (now - t_last);
            rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
            t_last = now;
            step_last = st->step;
            crl_progress pr = {k,
                               st->n,
                               st->names[k],
                               st->step,
                               total,
                               rate,
                               NAN,
                               NAN,
                               rate > 0 ? (double)(total - st->step) / rate : NAN,
                               *updates,
                               phase_success(st, k, mt)};
            progress(&pr, ctx);
        }
        if (stop && *stop && t < budget) { /* at budget: after the task end */
            if ((rc = save_checkpoint(st, store, run_id, k, t, err))) return rc;
            if ((rc = crl_store_run_set_status(store, run_id, "interrupted", err)))
                return rc;
            return crl_errf(err, CRL_EINTR,
                            "interrupted in task %d (%d/%d) at update %lld; checkpoint "
                            "written, resume run %lld to continue",
                            k, k + 1, st->n, (long long)st->step, (long long)run_id);
        }
    }
    return CRL_OK;
}

int crl_continual_run(const crl_continual_config *c, crl_store *store, int64_t run_id,
                      int resume, crl_progress_fn progress, void *ctx,
                      volatile sig_atomic_t *stop, crl_err *err) {
    cstate st;
    int rc = cstate_init(&st, c, err);
    int k0 = 0;
    int64_t t0 = 0;
    if (!rc && resume) rc = load_checkpoint(&st, store, run_id, 1, &k0, &t0, err);
    if (!rc) rc = diag_setup(&st, store, run_id, resume, ctx, err);
    /* mt: one phase over every task, with all the tasks' budget. */
    const int mt = rc == CRL_OK && (st.m->flags & CRL_METHOD_MULTITASK),
              n_phases = mt ? 1 : st.n;
    const int64_t budget = c->steps_per_task * (mt ? st.n : 1);
    if (!rc && resume && k0 < n_phases && t0 >= budget) {
        k0++; /* the checkpoint is a task end */
        t0 = 0;
    }
    if (rc) goto out;
    if (resume) crl_store_run_set_status(store, run_id, "running", NULL);

    const crl_sac_config *sc = &st.sc;
    const int O = sc->obs_dim, A = sc->act_dim;
    float obs[256], obs2[256], act[64];
    if (O > 256 || A > 64) {
        rc = crl_errf(err, CRL_EINVAL, "continual: obs %d / act %d too large", O, A);
        goto out;
    }
    const int64_t total = c->steps_per_task * st.n;
    double t_start = crl_now(), t_last = t_start, rate = 0;
    int64_t step_last = st.step, updates = 0;
    double rec_ret[10] = {0};
    int rec_succ[10] = {0}, rec_n = 0, rec_next = 0;

    for (int k = k0; k < n_phases; k++) {
        int64_t t = k == k0 ? t0 : 0;
        int cur = k; /* the task acting now (mt: changes every episode) */
        /* Task start (CW): fresh buffer and optimiser moments, same networks. */
        if ((st.m->flags & CRL_METHOD_PER_TASK) && k > 0 && t == 0 &&
            (rc = new_learner(&st, k, err)))
            goto out;
        crl_sac_reset_optimizers(st.sac);
        diag_task_start(&st.diag);
        if (!st.has_res) crl_replay_clear(&st.rb);
        if (st.m->task_start && (rc = st.m->task_start(&st, k, t, err))) goto out;
        /* Env steps the method's task end takes (CSP's grow-or-prune
         * rollouts) are counted in the task's steps. */
        const int64_t reserve = st.m->reserve ? st.m->reserve(&st, k) : 0;
        if (reserve >= budget) {
            rc = crl_errf(err, CRL_EINVAL,
                          "csp: the validation rollouts take %lld env steps, more than "
                          "steps-per-task; lower csp-rollouts or csp-val-steps",
                          (long long)reserve);
            goto out;
        }
        int ep_start =
            1; /* a collection alpha is redrawn its collection alpha at episode starts */
        for (int j = mt ? 0 : k; j < (mt ? st.n : k + 1); j++)
            if ((rc = crl_store_task_start(store, run_id, st.pos[j], st.names[j],
                                           st.step - t, err)))
                goto out;
        if (c->offline) {
            if ((rc = offline_phase(&st, store, run_id, k, t, budget, total, mt, progress,
                                    ctx, stop, &updates, err)))
                goto out;
        } else {
            crl_env *env = st.envs[k];
            crl_episode_free(st.trec);
            st.trec = NULL;
            /* mt switches envs every episode: no training-episode records. */
            if (c->log_train_every > 0 && !mt &&
                (rc = crl_episode_create(st.specs[k], &st.trec, err)))
                goto out;
            int64_t ep_no = 0; /* training episodes of this task (since a resume) */
            uint64_t ep_seed = crl_rng_u64(&st.env_rng);
            crl_env_reset(env, ep_seed, obs);
            crl_sac_l2m_episode_start(st.sac, obs, 1);
            if (st.trec && train_episode_logged(c->log_train_every, ep_no))
                crl_episode_begin(st.trec, env, ep_seed);
            double ep_ret = 0;
            int ep_succ = 0;
            int64_t since_resume = 0;
            diverge_state dv = DIVERGE_INIT; /* diverging physics (agents/runner.c) */
            for (; t < budget - reserve; t++) {
                const float *mix = st.m->collect ? st.m->collect(&st, ep_start) : NULL;
                ep_start = 0;
                if (t < sc->start_steps)
                    for (int j = 0; j < A; j++)
                        act[j] = (float)crl_rng_range(&st.rng, -1.0, 1.0);
                else
                    crl_sac_act(st.sac, 1, obs, cur, 0, NULL, act);
                crl_step_info info;
                crl_env_step(env, act, obs2, &info);
                diverge_step(&dv, env);
                diag_reward(&st.diag, info.reward);
                if (st.trec) crl_episode_add(st.trec, act, &info);
                if (st.has_res)
                    crl_reservoir_add(&st.res, &st.res_rng, obs, act, info.reward, obs2,
                                      info.terminal, cur);
                else
                    crl_replay_add_mix(&st.rb, obs, act, info.reward, obs2, info.terminal,
                                       cur, mix);
                ep_ret += info.reward;
                ep_succ |= info.success != 0;
                memcpy(obs, obs2, sizeof(float) * (size_t)O);
                st.step++;
                since_resume++;
                if (info.terminal || info.truncated) {
                    if ((rc = diverge_episode_end(&dv, st.names[cur], st.step, err)))
                        goto out;
                    rec_ret[rec_next] = ep_ret;
                    rec_succ[rec_next] = ep_succ;
                    rec_next = (rec_next + 1) % 10;
                    if (rec_n < 10) rec_n++;
                    diag_episode(&st.diag, ep_ret, ep_succ);
                    ep_ret = 0;
                    ep_succ = 0;
                    if (crl_episode_recording(st.trec)) {
                        crl_episode_end(st.trec, env);
                        if ((rc = episode_log(store, st.trec, run_id, st.step, st.pos[k],
                                              "train", (int)ep_no, 0, err)))
                            goto out;
                    }
                    ep_no++;
                    ep_start = 1;
                    if (mt) { /* the next task, round-robin */
                        cur = (cur + 1) % st.n;
                        env = st.envs[cur];
                    }
                    ep_seed = crl_rng_u64(&st.env_rng);
                    crl_env_reset(env, ep_seed, obs);
                    crl_sac_l2m_episode_start(st.sac, obs, 1);
                    if (st.trec && train_episode_logged(c->log_train_every, ep_no))
                        crl_episode_begin(st.trec, env, ep_seed);
                }
                /* A resumed task refills its buffer before updating again. */
                if (t + 1 >= sc->update_after && since_resume >= sc->update_after &&
                    (t + 1) % sc->update_every == 0) {
                    if ((rc = cstate_update_round(&st, sc->update_every, err))) {
                        crl_err e2;
                        /* A runaway seen in this round is said before the
                         * failure. */
                        diag_warn_flush(&st.diag, store, run_id, st.step, cur, st.n,
                                        st.names[cur], st.note, st.note_ctx);
                        save_checkpoint(&st, store, run_id, k, t + 1, &e2);
                        goto out;
                    }
                    updates += sc->update_every;
                    diag_tick(&st, store, run_id, k, cur, mt, 0);
                }
                if (st.step % c->eval_every == 0) {
                    if (st.m->last_step && t + 1 == budget) st.m->last_step(&st, k);
                    if ((rc = eval_all(&st, store, run_id, k, err))) goto out;
                    /* A checkpoint at every evaluation, so that a run cut off (a
                     * crash, the end of a working session) resumes from there. */
                    const double t_ck = crl_now();
                    if (t + 1 < budget &&
                        (rc = save_checkpoint(&st, store, run_id, k, t + 1, err)))
                        goto out;
                    diag_pause(&st.diag, crl_now() - t_ck);
                }
                /* Batched rows hold the file's write lock: release it within
                 * the batch age, so that other runs can write to the same file. */
                if ((rc = crl_store_tick(store, err))) goto out;
                double now = crl_now();
                if (progress && now - t_last >= 1.0) {
                    double inst = (double)(st.step - step_last) / (now - t_last);
                    rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
                    t_last = now;
                    step_last = st.step;
                    crl_progress pr = {k,
                                       st.n,
                                       st.names[k],
                                       st.step,
                                       total,
                                       rate,
                                       NAN,
                                       NAN,
                                       rate > 0 ? (double)(total - st.step) / rate : NAN,
                                       updates,
                                       phase_success(&st, k, mt)};
                    if (rec_n) {
                        double r = 0, s = 0;
                        for (int i = 0; i < rec_n; i++) {
                            r += rec_ret[i];
                            s += rec_succ[i];
                        }
                        pr.recent_return = r / rec_n;
                        pr.recent_success = s / rec_n;
                    }
                    progress(&pr, ctx);
                }
                /* Not on a task's last step: a checkpoint there would read as
                 * the task's end (t == budget) although the task end (the
                 * method's, and tasks.end_step) has not run; the stop is
                 * taken after it instead (found by scripts/fault-inject). */
                if (stop && *stop && t + 1 < budget) {
                    if ((rc = save_checkpoint(&st, store, run_id, k, t + 1, err)))
                        goto out;
                    if ((rc =
                             crl_store_run_set_status(store, run_id, "interrupted", err)))
                        goto out;
                    rc = crl_errf(err, CRL_EINTR,
                                  "interrupted in task %d (%d/%d) at step %lld; "
                                  "checkpoint written, "
                                  "resume run %lld to continue",
                                  k, k + 1, st.n, (long long)st.step, (long long)run_id);
                    goto out;
                }
            }
        }
        /* A method's task end can run for a while (CSP's rollouts, EWC's
         * Fisher, PackNet's retraining): not under the batch's write lock. */
        if (st.m->task_end &&
            ((rc = crl_store_flush(store, err)) ||
             (rc = st.m->task_end(&st, store, run_id, k, reserve, err))))
            goto out;
        /* The task's last diagnostics row: the updates since the previous
         * one (retraining at the task end included). */
        diag_tick(&st, store, run_id, k, k, mt, 1);
        /* The reserved steps may have crossed an evaluation. */
        if (reserve && st.step / c->eval_every != (st.step - reserve) / c->eval_every &&
            (rc = eval_all(&st, store, run_id, k, err)))
            goto out;
        for (int j = mt ? 0 : k; j < (mt ? st.n : k + 1); j++)
            if ((rc = crl_store_task_end(store, run_id, st.pos[j], st.step, err)))
                goto out;
        crl_store_metric(store, run_id, st.step, "model/params",
                         st.m->params_now ? st.m->params_now(&st, k) : (double)st.na,
                         NULL);
        if ((rc = save_checkpoint(&st, store, run_id, k, budget, err))) goto out;
        if (stop && *stop && k + 1 < n_phases) {
            if ((rc = crl_store_run_set_status(store, run_id, "interrupted", err)))
                goto out;
            rc = crl_errf(
                err, CRL_EINTR,
                "interrupted at the end of task %d (%d/%d) (step %lld); checkpoint "
                "written, resume run %lld to continue",
                k, k + 1, st.n, (long long)st.step, (long long)run_id);
            goto out;
        }
    }
    if (st.last_eval_step != st.step &&
        (rc = eval_all(&st, store, run_id, st.n - 1, err)))
        goto out;
    crl_store_metric(store, run_id, st.step, "wall_time_s", crl_now() - t_start, NULL);
    if (progress) {
        crl_progress pr = {st.n - 1,
                           st.n,
                           st.names[st.n - 1],
                           st.step,
                           total,
                           rate,
                           NAN,
                           NAN,
                           0,
                           updates,
                           phase_success(&st, st.n - 1, mt)};
        progress(&pr, ctx);
    }
    rc = crl_store_run_set_status(store, run_id, "finished", err);
out:
    if (rc && rc != CRL_EINTR) {
        crl_err e2;
        crl_store_run_set_status(store, run_id, "failed", &e2);
    }
    cstate_free(&st);
    return rc;
}

int crl_continual_eval(const crl_continual_config *c, crl_store *store, int64_t run_id,
                       int task, int episodes, int deterministic, uint64_t seed,
                       double *mean_return, double *success_rate, crl_err *err) {
    crl_continual_config cc = *c;
    cc.eval_episodes = episodes;
    /* An offline run's policy is in its checkpoint: evaluating it needs no
     * dataset (which may have moved since). */
    cc.offline = NULL;
    if (episodes < 1 || episodes > 1000)
        return crl_errf(err, CRL_EINVAL, "evaluation episodes must be in 1..1000");
    cstate st;
    int rc = cstate_init(&st, &cc, err);
    int k = 0;
    int64_t t = 0;
    void *blob = NULL;
    size_t n = 0;
    int idx;
    int64_t step;
    /* A run without a checkpoint has nothing to evaluate. */
    if (!rc) rc = crl_store_checkpoint_latest(store, run_id, &idx, &step, &blob, &n, err);
    free(blob);
    if (!rc) rc = load_checkpoint(&st, store, run_id, 0, &k, &t, err);
    int j = -1;
    for (int i = 0; !rc && i < st.n; i++)
        if (st.pos[i] == task) j = i;
    if (!rc && j < 0)
        rc =
            crl_errf(err, CRL_EINVAL, "run %lld has no task %d", (long long)run_id, task);
    if (!rc) {
        for (int e = 0; e < episodes; e++) st.seeds[e] = crl_eval_seed(seed, 0, e);
        crl_rng rng;
        crl_rng_seed_stream(&rng, seed, 7);
        int swapped = eval_begin(&st, j, 0);
        evaluator_run(&st.evs[j], st.sac, j, deterministic ? 0 : episodes, st.seeds,
                      &rng);
        if (swapped) cstate_restore_actor(&st);
        double r = 0, sr = 0;
        for (int e = 0; e < episodes; e++) {
            r += st.evs[j].ret[e];
            sr += st.evs[j].succ[e];
        }
        *mean_return = r / episodes;
        *success_rate = sr / episodes;
    }
    cstate_free(&st);
    return rc;
}
