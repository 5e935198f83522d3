/* CSP, the method's side: collection alphas, the alpha table and the
 * grow-or-prune decision. The subspace and its update live in the learner
 * (crl_sac with csp_anchors > 0, subspace/csp_subspace.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "crl/methods.h"
#include "crl/subspace.h"

#include "agents/continual_state.h"

void crl_csp_config_default(crl_csp_config *c) {
    c->repeat_alpha = CRL_CSP_REPEAT_ALPHA;
    c->peaked = 0;
    c->n_scored = CRL_CSP_SCORED;
    c->n_candidates = CRL_CSP_CANDIDATES;
    c->val_steps = 0;
    c->epsilon = CRL_CSP_EPSILON;
    c->prior_alphas = 1;
}

int crl_csp_init(crl_csp *m, const crl_csp_config *c, int K, int n_tasks, crl_err *err) {
    memset(m, 0, sizeof *m);
    if (K < 1 || n_tasks < 1)
        return crl_errf(err, CRL_EINVAL, "csp: needs at least one task");
    if (c->repeat_alpha < 1 || c->n_scored < 1 || c->n_candidates < 2 ||
        c->val_steps < 0 || !(c->epsilon >= 0))
        return crl_errf(err, CRL_EINVAL,
                        "csp: csp-repeat-alpha, csp-scored >= 1, csp-candidates >= 2, "
                        "csp-val-steps >= 0, csp-epsilon >= 0");
    m->c = *c;
    m->K = K;
    m->n_tasks = n_tasks;
    m->table = calloc((size_t)n_tasks * K, sizeof(float));
    m->has = calloc((size_t)n_tasks, 1);
    m->cur = calloc((size_t)K, sizeof(float));
    m->scratch = malloc((size_t)c->n_scored * K * sizeof(float));
    m->scores = malloc((size_t)c->n_scored * sizeof(double));
    m->order = malloc((size_t)c->n_candidates * sizeof(int));
    if (!m->table || !m->has || !m->cur || !m->scratch || !m->scores || !m->order) {
        crl_csp_free(m);
        return crl_errf(err, CRL_ENOMEM, "csp: out of memory");
    }
    m->cur[0] = 1.0f;
    m->since = c->repeat_alpha;
    return CRL_OK;
}

void crl_csp_free(crl_csp *m) {
    free(m->table);
    free(m->has);
    free(m->cur);
    free(m->scratch);
    free(m->scores);
    free(m->order);
    memset(m, 0, sizeof *m);
}

/* One alpha of the collection distribution into out (K floats): the new
 * subspace (all n anchors, flat or peaked) or the old one (n - 1 anchors,
 * 0 on the newest). With one anchor there is only [1]. */
static void draw(const crl_csp *m, crl_rng *rng, int n, int new_half, float *out) {
    memset(out, 0, sizeof(float) * (size_t)m->K);
    if (n == 1) {
        out[0] = 1.0f;
        return;
    }
    if (!new_half)
        crl_dirichlet_old(rng, n, out, NULL);
    else if (m->c.peaked)
        crl_dirichlet_peaked(rng, n, out, NULL);
    else
        crl_dirichlet_flat(rng, n, out, NULL);
}

static void draw_mix(void *ctx, crl_rng *rng, int rows, int n, float *mix) {
    const crl_csp *m = ctx;
    for (int r = 0; r < rows; r++) draw(m, rng, n, r % 2 == 0, mix + (size_t)r * m->K);
}

void crl_csp_hooks(crl_csp *m, crl_sac_hooks *hooks) {
    memset(hooks, 0, sizeof *hooks);
    hooks->ctx = m;
    hooks->draw_mix = draw_mix;
}

int crl_csp_task_start(crl_csp *m, crl_sac *sac, int task, uint64_t seed, crl_err *err) {
    crl_subspace *sub = crl_sac_subspace(sac);
    if (!sub) return crl_errf(err, CRL_EINVAL, "csp: the learner has no subspace");
    m->episodes = 0;
    m->since = m->c.repeat_alpha;
    if (task > 0) {
        crl_subspace_freeze_all(sub);
        int rc = crl_subspace_add_anchor(sub, crl_sac_actor_params(sac), err);
        if (rc) return rc;
        crl_sac_subspace_changed(sac);
        crl_sac_reset_critics(sac, seed);
    }
    return CRL_OK;
}

const float *crl_csp_collect(crl_csp *m, crl_sac *sac, crl_rng *rng, int episode_start) {
    const crl_subspace *sub = crl_sac_subspace(sac);
    if (episode_start) {
        m->episodes++;
        m->since = m->c.repeat_alpha;
    }
    if (m->since >= m->c.repeat_alpha) {
        /* Episode 1, 3, 5, ... of the task: the new subspace. */
        draw(m, rng, sub->n_anchors, m->episodes % 2 == 1, m->cur);
        m->since = 0;
    }
    m->since++;
    crl_sac_set_act_mix(sac, m->cur);
    return m->cur;
}

void crl_csp_eval_mix(const crl_csp *m, const crl_sac *sac, int task, float *out) {
    if (task >= 0 && task < m->n_tasks && m->has[task]) {
        memcpy(out, m->table + (size_t)task * m->K, sizeof(float) * (size_t)m->K);
        return;
    }
    const crl_subspace *sub = crl_sac_subspace((crl_sac *)sac);
    memset(out, 0, sizeof(float) * (size_t)m->K);
    for (int i = 0; i < sub->n_anchors; i++) out[i] = 1.0f / (float)sub->n_anchors;
}

static int n_old_candidates(const crl_csp *m, int n) {
    /* With two anchors the old subspace is the single point [1, 0]. */
    return n - 1 == 1 ? 1 : m->c.n_candidates / 2;
}

/* Is stored alpha t the first of its value among the stored alphas (other
 * than `skip`)? Tasks that reused the same point are rolled out once. */
static int first_of_its_value(const crl_csp *m, int t, int skip) {
    const size_t bytes = sizeof(float) * (size_t)m->K;
    for (int u = 0; u < t; u++)
        if (u != skip && m->has[u] &&
            !memcmp(m->table + (size_t)u * m->K, m->table + (size_t)t * m->K, bytes))
            return 0;
    return 1;
}

/* Distinct stored alphas of the tasks other than `task`. */
static int n_priors(const crl_csp *m, int task) {
    if (!m->c.prior_alphas) return 0;
    int n = 0;
    for (int t = 0; t < m->n_tasks; t++)
        n += t != task && m->has[t] && first_of_its_value(m, t, task);
    return n;
}

int64_t crl_csp_validation_budget(const crl_csp *m, int n_anchors, int episode_len) {
    if (n_anchors < 2) return 0;
    int len =
        m->c.val_steps > 0 && m->c.val_steps < episode_len ? m->c.val_steps : episode_len;
    return (int64_t)(m->c.n_candidates / 2 + n_old_candidates(m, n_anchors) +
                     n_priors(m, -1)) *
           len;
}

/* Draw n_scored alphas of one subspace, score them with the critic and put
 * the best `keep` (by descending score) into m->order as indices into
 * m->scratch. */
static int best_by_critic(crl_csp *m, crl_sac *sac, int task, crl_rng *rng, int n,
                          int new_half, const float *obs, int B, int keep, crl_err *err) {
    const int N = m->c.n_scored, K = m->K;
    for (int i = 0; i < N; i++) {
        float *a = m->scratch + (size_t)i * K;
        if (new_half) {
            memset(a, 0, sizeof(float) * K);
            crl_dirichlet_flat(rng, n, a, NULL);
        } else {
            draw(m, rng, n, 0, a);
        }
    }
    int rc = crl_sac_score_mix(sac, obs, B, task, N, m->scratch, m->scores, err);
    if (rc) return rc;
    for (int k = 0; k < keep; k++) {
        int best = -1;
        for (int i = 0; i < N; i++) {
            if (isnan(m->scores[i])) continue;
            if (best < 0 || m->scores[i] > m->scores[best]) best = i;
        }
        if (best < 0)
            return crl_errf(err, CRL_ENAN, "csp: the critic scores are not finite");
        m->order[k] = best;
        m->scores[best] = NAN; /* taken */
    }
    return CRL_OK;
}

/* Roll out the `keep` candidates of m->order; the best return and its alpha. */
static double rollout_best(crl_csp *m, int keep, crl_csp_rollout_fn rollout, void *ctx,
                           int max_steps, int64_t *steps, float *best_mix) {
    double best = -INFINITY;
    for (int k = 0; k < keep; k++) {
        const float *a = m->scratch + (size_t)m->order[k] * m->K;
        double r = rollout(ctx, a, max_steps, steps);
        if (r > best || k == 0) {
            best = r;
            memcpy(best_mix, a, sizeof(float) * (size_t)m->K);
        }
    }
    return best;
}

int crl_csp_task_end(crl_csp *m, crl_sac *sac, int task, crl_rng *rng, const float *obs,
                     int B, crl_csp_rollout_fn rollout, void *ctx, crl_csp_decision *d,
                     crl_err *err) {
    crl_subspace *sub = crl_sac_subspace(sac);
    if (!sub) return crl_errf(err, CRL_EINVAL, "csp: the learner has no subspace");
    if (task < 0 || task >= m->n_tasks)
        return crl_errf(err, CRL_EINVAL, "csp: task %d out of range", task);
    const int n = sub->n_anchors, K = m->K;
    float *alpha = m->table + (size_t)task * K;
    memset(d, 0, sizeof *d);
    d->task = task;
    d->best_old = NAN;
    d->best_new = NAN;
    if (n == 1) { /* the first task: plain SAC on one anchor */
        memset(alpha, 0, sizeof(float) * K);
        alpha[0] = 1.0f;
        m->has[task] = 1;
        d->kept = 1;
        d->n_anchors = 1;
        return CRL_OK;
    }
    const int max_steps = m->c.val_steps;
    float *best_new = malloc(2 * sizeof(float) * (size_t)K);
    if (!best_new) return crl_errf(err, CRL_ENOMEM, "csp: out of memory");
    float *best_old = best_new + K;
    int keep_new = m->c.n_candidates / 2, keep_old = n_old_candidates(m, n);
    int64_t steps = 0;
    int rc = best_by_critic(m, sac, task, rng, n, 1, obs, B, keep_new, err);
    if (!rc)
        d->best_new =
            rollout_best(m, keep_new, rollout, ctx, max_steps, &steps, best_new);
    if (!rc) rc = best_by_critic(m, sac, task, rng, n, 0, obs, B, keep_old, err);
    if (!rc)
        d->best_old =
            rollout_best(m, keep_old, rollout, ctx, max_steps, &steps, best_old);
    /* crl's adaptation: the alphas earlier tasks settled on are known-good
     * points of the old subspace, so they are candidates too (a repeated
     * task then finds its old policy even when the fresh critic ranks the
     * Dirichlet samples near it low). Rolled out once per distinct value,
     * and not again when the critic already picked the same point. */
    for (int t = 0; !rc && m->c.prior_alphas && t < m->n_tasks; t++) {
        if (t == task || !m->has[t] || !first_of_its_value(m, t, task)) continue;
        const float *a = m->table + (size_t)t * K;
        int seen = 0;
        for (int k = 0; k < keep_old && !seen; k++)
            seen = !memcmp(a, m->scratch + (size_t)m->order[k] * K, sizeof(float) * K);
        if (seen) continue;
        double r = rollout(ctx, a, max_steps, &steps);
        if (r > d->best_old) {
            d->best_old = r;
            memcpy(best_old, a, sizeof(float) * (size_t)K);
        }
    }
    if (!rc) {
        /* (1 + eps) * best_old for positive returns, and the same margin,
         * eps * |best_old|, when returns are negative: the new anchor must
         * beat the old subspace by a fraction of its return's magnitude. */
        d->kept = d->best_new > d->best_old + m->c.epsilon * fabs(d->best_old);
        if (!d->kept) {
            rc = crl_subspace_remove_last(sub, crl_sac_actor_params(sac), err);
            crl_sac_subspace_changed(sac);
        }
        memcpy(alpha, d->kept ? best_new : best_old, sizeof(float) * K);
        m->has[task] = 1;
        d->n_anchors = sub->n_anchors;
        d->val_steps = steps;
    }
    free(best_new);
    return rc;
}

/* Checkpoint: "CSP1", i32 K, n_tasks, the alpha table, has, cur, i64 since,
 * episodes. */
int crl_csp_save(const crl_csp *m, void **blob, size_t *n, crl_err *err) {
    crl_wbuf w = {0};
    int32_t dims[2] = {m->K, m->n_tasks};
    crl_wbuf_put(&w, "CSP1", 4);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, m->table, (size_t)m->n_tasks * m->K * sizeof(float));
    crl_wbuf_put(&w, m->has, (size_t)m->n_tasks);
    crl_wbuf_put(&w, m->cur, (size_t)m->K * sizeof(float));
    crl_wbuf_put(&w, &m->since, 8);
    crl_wbuf_put(&w, &m->episodes, 8);
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "csp: out of memory while saving");
    }
    *blob = w.p;
    *n = w.n;
    return CRL_OK;
}

int crl_csp_load(crl_csp *m, const void *blob, size_t n, crl_err *err) {
    crl_rbuf r = {blob, n, 0, 0};
    char magic[4];
    int32_t dims[2];
    crl_rbuf_get(&r, magic, 4);
    crl_rbuf_get(&r, dims, sizeof dims);
    if (r.bad || memcmp(magic, "CSP1", 4) != 0 || dims[0] != m->K ||
        dims[1] != m->n_tasks)
        return crl_errf(err, CRL_ECORRUPT, "csp checkpoint: does not fit this run");
    size_t expect = r.off + (size_t)m->n_tasks * m->K * sizeof(float) +
                    (size_t)m->n_tasks + (size_t)m->K * sizeof(float) + 16;
    if (n != expect)
        return crl_errf(err, CRL_ECORRUPT, "csp checkpoint: %zu bytes, expected %zu", n,
                        expect);
    crl_rbuf_get(&r, m->table, (size_t)m->n_tasks * m->K * sizeof(float));
    crl_rbuf_get(&r, m->has, (size_t)m->n_tasks);
    crl_rbuf_get(&r, m->cur, (size_t)m->K * sizeof(float));
    crl_rbuf_get(&r, &m->since, 8);
    crl_rbuf_get(&r, &m->episodes, 8);
    return r.bad ? crl_errf(err, CRL_ECORRUPT, "csp checkpoint: truncated") : CRL_OK;
}

/* ---- the method ------------------------------------------------------------------ */

static void csp_label(const char *name, const crl_csp_config *csp,
                      const crl_l2m_config *l2m, char *buf, size_t n) {
    (void)l2m;
    /* The paper's candidate rule gets its own report row. */
    snprintf(buf, n, "%s%s", name, csp->prior_alphas ? "" : "-paper");
}

static int csp_configure(cstate *st, crl_err *err) {
    /* Room for one anchor per task; the critics read that many alpha
     * columns. */
    if (st->n > CRL_CSP_MAX_K)
        return crl_errf(err, CRL_EINVAL, "csp: at most %d tasks", CRL_CSP_MAX_K);
    st->sc.csp_anchors = st->n;
    int rc = crl_csp_init(&st->csp, &st->c->csp, st->n, st->n, err);
    if (!rc) st->has_csp = 1;
    return rc;
}

static void csp_attach(cstate *st, crl_sac_hooks *h) {
    crl_csp_hooks(&st->csp, h);
}

static int csp_task_start(cstate *st, int k, int64_t t, crl_err *err) {
    if (t != 0) return CRL_OK;
    return crl_csp_task_start(&st->csp, st->sac, k,
                              st->c->seed + 104729u * (uint64_t)(k + 1), err);
}

/* The grow-or-prune rollouts are counted in the task's steps. */
static int64_t csp_reserve(cstate *st, int k) {
    return crl_csp_validation_budget(&st->csp, crl_sac_subspace(st->sac)->n_anchors,
                                     crl_env_max_steps(st->specs[k]));
}

static const float *csp_collect(cstate *st, int ep_start) {
    return crl_csp_collect(&st->csp, st->sac, &st->rng, ep_start);
}

/* The task's alpha; collection sets its own again. */
static int csp_eval_begin(cstate *st, int j, int track_rows) {
    (void)track_rows;
    float mix[CRL_CSP_MAX_K];
    crl_csp_eval_mix(&st->csp, st->sac, j, mix);
    crl_sac_set_act_mix(st->sac, mix);
    return 0;
}

typedef struct {
    cstate *st;
    int k;
    uint64_t seed;
} csp_roll;

/* One deterministic validation episode of the learner at alpha `mix`. */
static double csp_rollout(void *vctx, const float *mix, int max_steps, int64_t *steps) {
    csp_roll *r = vctx;
    cstate *st = r->st;
    crl_env *env = st->envs[r->k];
    float obs[256], act[64]; /* sizes checked by the runner */
    crl_sac_set_act_mix(st->sac, mix);
    crl_env_reset(env, r->seed, obs);
    int len = crl_env_max_steps(st->specs[r->k]);
    if (max_steps > 0 && max_steps < len) len = max_steps;
    double ret = 0;
    for (int i = 0; i < len; i++) {
        crl_step_info info;
        crl_sac_act(st->sac, 1, obs, r->k, 1, NULL, act);
        crl_env_step(env, act, obs, &info);
        ret += info.reward;
        (*steps)++;
        if (info.terminal || info.truncated) break;
    }
    return ret;
}

/* Grow or prune (crl_csp_task_end) on states from the task's buffer, with
 * every validation rollout from the same seeded start; the decision goes to
 * the metrics and the reserved env steps to the step counter. */
static int csp_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                        int64_t reserve, crl_err *err) {
    crl_replay_sample(&st->rb, &st->rng, st->sc.batch, &st->batch);
    csp_roll roll = {st, k, crl_eval_seed(st->c->seed, 999999, k)};
    crl_csp_decision d;
    int rc = crl_csp_task_end(&st->csp, st->sac, k, &st->rng, st->batch.obs, st->batch.B,
                              csp_rollout, &roll, &d, err);
    if (rc) return rc;
    st->step += reserve;
    crl_csp_row row = {
        run_id,     st->pos[k], st->step,    d.kept,
        d.best_new, d.best_old, d.n_anchors, st->csp.table + (size_t)k * st->csp.K,
        d.n_anchors};
    if ((rc = crl_store_csp_decision(store, &row, err))) return rc;
    const char *keys[] = {"csp/kept", "csp/best_new", "csp/best_old", "csp/anchors",
                          "csp/validation_steps"};
    double vals[] = {d.kept, d.best_new, d.best_old, d.n_anchors, (double)d.val_steps};
    for (int i = 0; i < 5; i++)
        if (!isnan(vals[i]) &&
            (rc = crl_store_metric(store, run_id, st->step, keys[i], vals[i], err)))
            return rc;
    return CRL_OK;
}

static double csp_params_now(cstate *st, int k) {
    (void)k;
    return (double)crl_subspace_n_params(crl_sac_subspace(st->sac));
}

static int csp_save(cstate *st, void **blob, size_t *n, crl_err *err) {
    return crl_csp_save(&st->csp, blob, n, err);
}

static int csp_load(cstate *st, const void *blob, size_t n, crl_err *err) {
    return crl_csp_load(&st->csp, blob, n, err);
}

static void csp_free_op(cstate *st) {
    if (st->has_csp) crl_csp_free(&st->csp);
    st->has_csp = 0;
}

const crl_method_impl crl_method_csp_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_SUBSPACE | CRL_METHOD_TASK_IDS |
             CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_SUBSPACE,
    .cost = 2.5,
    .label = csp_label,
    .configure = csp_configure,
    .attach = csp_attach,
    .task_start = csp_task_start,
    .reserve = csp_reserve,
    .collect = csp_collect,
    .eval_begin = csp_eval_begin,
    .task_end = csp_task_end,
    .params_now = csp_params_now,
    .save = csp_save,
    .load = csp_load,
    .free = csp_free_op,
};
