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
    c->prior_alphas = 0;
    c->q_batches = CRL_CSP_Q_BATCHES;
    c->shortlist = CRL_CSP_SHORTLIST;
    c->rollouts = 0;
    c->criterion = "auto";
    c->check = 0;
}

void crl_csp_config_old(crl_csp_config *c) {
    c->q_batches = 1;
    c->rollouts = 1;
    c->criterion = "return";
    c->check = 0;
}

static int by_return_only(const crl_csp_config *c) {
    return c->criterion && !strcmp(c->criterion, "return");
}

int crl_csp_rollouts(const crl_csp_config *c, int success) {
    if (c->rollouts > 0) return c->rollouts;
    return success && !by_return_only(c) ? CRL_CSP_ROLLOUTS_SUCCESS
                                         : CRL_CSP_ROLLOUTS_RETURN;
}

int crl_csp_init(crl_csp *m, const crl_csp_config *c, int K, int n_tasks, crl_err *err) {
    memset(m, 0, sizeof *m);
    if (K < 1 || n_tasks < 1)
        return crl_errf(err, CRL_EINVAL, "csp: needs at least one task");
    if (c->repeat_alpha < 1 || c->n_scored < 1 || c->n_candidates < 2 ||
        c->val_steps < 0 || !(c->epsilon >= 0) || c->q_batches < 1 || c->shortlist < 1 ||
        c->rollouts < 0 || c->check < 0)
        return crl_errf(err, CRL_EINVAL,
                        "csp: csp-repeat-alpha, csp-scored, csp-q-batches, "
                        "csp-shortlist >= 1, csp-candidates >= 2, csp-val-steps, "
                        "csp-rollouts, csp-check, csp-epsilon >= 0");
    if (!c->criterion || (strcmp(c->criterion, "auto") && strcmp(c->criterion, "return")))
        return crl_errf(err, CRL_EINVAL,
                        "csp: csp-criterion must be auto or return, got '%s'",
                        c->criterion ? c->criterion : "");
    m->c = *c;
    m->K = K;
    m->n_tasks = n_tasks;
    m->max_cand = c->shortlist + K + 1 + n_tasks;
    int n_scores = c->n_scored > m->max_cand ? c->n_scored : m->max_cand;
    m->table = calloc((size_t)n_tasks * K, sizeof(float));
    m->has = calloc((size_t)n_tasks, 1);
    m->cur = calloc((size_t)K, sizeof(float));
    m->scratch = malloc((size_t)c->n_scored * K * sizeof(float));
    m->scores = malloc((size_t)n_scores * sizeof(double));
    m->cand = malloc((size_t)m->max_cand * K * sizeof(float));
    m->fin = calloc(2 * (size_t)K, sizeof(float));
    if (!m->table || !m->has || !m->cur || !m->scratch || !m->scores || !m->cand ||
        !m->fin) {
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
    free(m->cand);
    free(m->fin);
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

/* Is stored alpha t the first of its value among the stored alphas (other
 * than `skip`)? Tasks that reused the same point are scored once. */
static int first_of_its_value(const crl_csp *m, int t, int skip) {
    const size_t bytes = sizeof(float) * (size_t)m->K;
    for (int u = 0; u < t; u++)
        if (u != skip && m->has[u] &&
            !memcmp(m->table + (size_t)u * m->K, m->table + (size_t)t * m->K, bytes))
            return 0;
    return 1;
}

int64_t crl_csp_validation_budget(const crl_csp *m, int n_anchors, int episode_len,
                                  int success) {
    if (n_anchors < 2) return 0;
    int len =
        m->c.val_steps > 0 && m->c.val_steps < episode_len ? m->c.val_steps : episode_len;
    return 2 * (int64_t)crl_csp_rollouts(&m->c, success) * len;
}

uint64_t crl_csp_rollout_seed(uint64_t seed, int r) {
    return crl_eval_seed(seed, 0, r);
}

int crl_csp_beats(double new_score, double old_score, double eps) {
    return new_score > old_score + eps * fabs(old_score);
}

int crl_csp_keep(int criterion, double new_success, double old_success, double new_return,
                 double old_return, double eps, int *by) {
    if (criterion == CRL_CSP_BY_SUCCESS && new_success != old_success) {
        *by = CRL_CSP_BY_SUCCESS;
        return crl_csp_beats(new_success, old_success, eps);
    }
    *by = CRL_CSP_BY_RETURN;
    return crl_csp_beats(new_return, old_return, eps);
}

int crl_csp_q_average(crl_sac *sac, int task, const crl_replay *rb, crl_batch *batch,
                      crl_rng *rng, int n_batches, int n_mix, const float *mixes,
                      double *scores, crl_err *err) {
    const crl_subspace *sub = crl_sac_subspace(sac);
    if (!sub) return crl_errf(err, CRL_EINVAL, "csp: the learner has no subspace");
    if (rb->size < 1 || n_batches < 1)
        return crl_errf(err, CRL_EINVAL, "csp: no transitions to score alphas on");
    const int K = crl_sac_get_config(sac)->csp_anchors, B = batch->cap;
    for (int i = 0; i < n_mix; i++) scores[i] = 0;
    for (int b = 0; b < n_batches; b++) {
        crl_replay_sample(rb, rng, B, batch);
        for (int i = 0; i < n_mix; i++) {
            double q;
            int rc = crl_sac_score_mix(sac, batch->obs, B, task, 1, mixes + (size_t)i * K,
                                       &q, err);
            if (rc) return rc;
            scores[i] += q;
        }
    }
    for (int i = 0; i < n_mix; i++) scores[i] /= n_batches;
    return CRL_OK;
}

/* The candidate a subspace offers (its finalist): n_sub anchors (the new
 * subspace: all n; the old one: the first n - 1, 0 on the newest).
 * Screening on one batch, the best `shortlist` plus the midpoint and the
 * corners (and, for the old subspace with prior_alphas, the stored alphas),
 * then the mean Q over q_batches batches; the best goes to out, its mean Q
 * to *q. */
static int finalist(crl_csp *m, crl_sac *sac, int task, const crl_replay *rb,
                    crl_batch *batch, crl_rng *rng, int n_sub, int old, float *out,
                    double *q, crl_err *err) {
    const int K = m->K, N = m->c.n_scored;
    const size_t row = sizeof(float) * (size_t)K;
    int nc = 0;
    if (n_sub > 1) {
        for (int i = 0; i < N; i++) {
            float *a = m->scratch + (size_t)i * K;
            memset(a, 0, row);
            crl_dirichlet_flat(rng, n_sub, a, NULL);
        }
        crl_replay_sample(rb, rng, batch->cap, batch);
        int rc = crl_sac_score_mix(sac, batch->obs, batch->cap, task, N, m->scratch,
                                   m->scores, err);
        if (rc) return rc;
        int keep = m->c.shortlist < N ? m->c.shortlist : N;
        for (int k = 0; k < keep; k++) {
            int best = -1;
            for (int i = 0; i < N; i++) {
                if (isnan(m->scores[i])) continue;
                if (best < 0 || m->scores[i] > m->scores[best]) best = i;
            }
            if (best < 0)
                return crl_errf(err, CRL_ENAN, "csp: the critic scores are not finite");
            memcpy(m->cand + (size_t)nc++ * K, m->scratch + (size_t)best * K, row);
            m->scores[best] = NAN; /* taken */
        }
        float *mid = m->cand + (size_t)nc++ * K;
        memset(mid, 0, row);
        for (int i = 0; i < n_sub; i++) mid[i] = 1.0f / (float)n_sub;
    }
    /* The corners: with one anchor the only point, else every anchor of the
     * subspace (the new subspace's last corner is the new anchor). */
    for (int i = 0; i < n_sub; i++) {
        float *e = m->cand + (size_t)nc++ * K;
        memset(e, 0, row);
        e[i] = 1.0f;
    }
    for (int t = 0; old && m->c.prior_alphas && t < m->n_tasks; t++)
        if (t != task && m->has[t] && first_of_its_value(m, t, task))
            memcpy(m->cand + (size_t)nc++ * K, m->table + (size_t)t * K, row);
    int rc = crl_csp_q_average(sac, task, rb, batch, rng, m->c.q_batches, nc, m->cand,
                               m->scores, err);
    if (rc) return rc;
    int best = -1;
    for (int i = 0; i < nc; i++) {
        if (isnan(m->scores[i])) continue;
        if (best < 0 || m->scores[i] > m->scores[best]) best = i;
    }
    if (best < 0) return crl_errf(err, CRL_ENAN, "csp: the critic scores are not finite");
    memcpy(out, m->cand + (size_t)best * K, row);
    *q = m->scores[best];
    return CRL_OK;
}

/* R rollouts of alpha from seeds r0 .. r0 + R - 1: mean return and success. */
static void roll(crl_csp_rollout_fn rollout, void *ctx, const float *mix, uint64_t seed,
                 int r0, int R, int max_steps, int64_t *steps, double *ret,
                 double *succ) {
    double r_sum = 0, s_sum = 0;
    for (int r = r0; r < r0 + R; r++) {
        int s = 0;
        r_sum += rollout(ctx, mix, crl_csp_rollout_seed(seed, r), max_steps, steps, &s);
        s_sum += s != 0;
    }
    *ret = r_sum / R;
    *succ = s_sum / R;
}

int crl_csp_task_end(crl_csp *m, crl_sac *sac, int task, const crl_replay *rb,
                     crl_batch *batch, uint64_t seed, int success,
                     crl_csp_rollout_fn rollout, void *ctx, crl_csp_decision *d,
                     crl_err *err) {
    crl_subspace *sub = crl_sac_subspace(sac);
    if (!sub) return crl_errf(err, CRL_EINVAL, "csp: the learner has no subspace");
    if (task < 0 || task >= m->n_tasks)
        return crl_errf(err, CRL_EINVAL, "csp: task %d out of range", task);
    const int n = sub->n_anchors, K = m->K;
    float *alpha = m->table + (size_t)task * K;
    memset(d, 0, sizeof *d);
    d->task = task;
    d->best_old = d->best_new = NAN;
    d->new_success = d->old_success = NAN;
    d->q_new = d->q_old = NAN;
    d->check_new = d->check_old = NAN;
    d->check_kept = -1;
    d->criterion =
        success && !by_return_only(&m->c) ? CRL_CSP_BY_SUCCESS : CRL_CSP_BY_RETURN;
    d->alpha_new = m->fin;
    d->alpha_old = m->fin + K;
    if (n == 1) { /* the first task: plain SAC on one anchor */
        memset(alpha, 0, sizeof(float) * K);
        alpha[0] = 1.0f;
        m->has[task] = 1;
        d->kept = 1;
        d->n_anchors = 1;
        memcpy(m->fin, alpha, sizeof(float) * K);
        memset(m->fin + K, 0, sizeof(float) * K);
        return CRL_OK;
    }
    if (rb->size < 1)
        return crl_errf(err, CRL_EINVAL, "csp: no transitions to score alphas on");
    if (batch->cap < 1 || batch->cap > crl_sac_get_config(sac)->batch)
        return crl_errf(err, CRL_EINVAL, "csp: scoring batch of %d rows", batch->cap);
    /* Everything random in the decision comes from (seed): the candidate
     * draws, the batches and the rollouts' episodes. */
    crl_rng rng;
    crl_rng_seed_stream(&rng, seed, 31);
    int rc = finalist(m, sac, task, rb, batch, &rng, n, 0, m->fin, &d->q_new, err);
    if (!rc)
        rc =
            finalist(m, sac, task, rb, batch, &rng, n - 1, 1, m->fin + K, &d->q_old, err);
    if (rc) return rc;
    const int R = crl_csp_rollouts(&m->c, success), max_steps = m->c.val_steps;
    int64_t steps = 0, extra = 0;
    roll(rollout, ctx, m->fin, seed, 0, R, max_steps, &steps, &d->best_new,
         &d->new_success);
    roll(rollout, ctx, m->fin + K, seed, 0, R, max_steps, &steps, &d->best_old,
         &d->old_success);
    int by;
    d->kept = crl_csp_keep(d->criterion, d->new_success, d->old_success, d->best_new,
                           d->best_old, m->c.epsilon, &by);
    d->criterion = by;
    d->rollouts = R;
    if (m->c.check > 0) {
        /* What a fuller evaluation of the same two finalists decides: other
         * seeds, check episodes each; not counted in the budget. */
        double nr, ns, o_r, os;
        int cby;
        roll(rollout, ctx, m->fin, seed, R, m->c.check, max_steps, &extra, &nr, &ns);
        roll(rollout, ctx, m->fin + K, seed, R, m->c.check, max_steps, &extra, &o_r, &os);
        int crit =
            success && !by_return_only(&m->c) ? CRL_CSP_BY_SUCCESS : CRL_CSP_BY_RETURN;
        d->check_kept = crl_csp_keep(crit, ns, os, nr, o_r, m->c.epsilon, &cby);
        d->check_new = cby == CRL_CSP_BY_SUCCESS ? ns : nr;
        d->check_old = cby == CRL_CSP_BY_SUCCESS ? os : o_r;
    }
    if (!d->kept) {
        rc = crl_subspace_remove_last(sub, crl_sac_actor_params(sac), err);
        crl_sac_subspace_changed(sac);
    }
    memcpy(alpha, d->kept ? m->fin : m->fin + K, sizeof(float) * K);
    m->has[task] = 1;
    d->n_anchors = sub->n_anchors;
    d->val_steps = steps;
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
    /* csp is the paper's rule; crl's variant with the earlier tasks' alphas
     * among the old candidates gets its own report row. (Runs made before
     * issue 21 are labelled csp for that variant and csp-paper for the
     * paper's candidates, both with the older decision: their labels stay.) */
    snprintf(buf, n, "%s%s", name, csp->prior_alphas ? "-prior" : "");
}

/* Does the task report success (manipulation; pretrain tasks are
 * manipulation too)? Then success decides its grow-or-prune. */
static int reports_success(const char *name) {
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name))
            return !strcmp(list[i].group, "manipulation") ||
                   !strcmp(list[i].group, "pretrain");
    return 0;
}

static int csp_configure(cstate *st, crl_err *err) {
    /* Room for one anchor per task; the critics read that many alpha
     * columns. */
    if (st->n > CRL_CSP_MAX_K)
        return crl_errf(err, CRL_EINVAL, "csp: at most %d tasks", CRL_CSP_MAX_K);
    st->sc.csp_anchors = st->n;
    int rc = crl_csp_init(&st->csp, &st->c->csp, st->n, st->n, err);
    if (!rc) st->has_csp = 1;
    /* The decision's rollouts come out of every later task's budget: refuse
     * a budget they do not fit before anything trains. */
    for (int k = 1; !rc && k < st->n; k++) {
        int64_t need = crl_csp_validation_budget(
            &st->csp, 2, crl_env_max_steps(st->specs[k]), reports_success(st->names[k]));
        if (need >= st->c->steps_per_task)
            rc = crl_errf(err, CRL_EINVAL,
                          "csp: the validation rollouts of task %d (%s) take %lld env "
                          "steps, more than steps-per-task; lower csp-rollouts or "
                          "csp-val-steps",
                          k + 1, st->names[k], (long long)need);
    }
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
                                     crl_env_max_steps(st->specs[k]),
                                     reports_success(st->names[k]));
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
} csp_roll;

/* One deterministic validation episode of the learner at alpha `mix`. */
static double csp_rollout(void *vctx, const float *mix, uint64_t seed, int max_steps,
                          int64_t *steps, int *success) {
    csp_roll *r = vctx;
    cstate *st = r->st;
    crl_env *env = st->envs[r->k];
    float obs[256], act[64]; /* sizes checked by the runner */
    crl_sac_set_act_mix(st->sac, mix);
    crl_env_reset(env, seed, obs);
    int len = crl_env_max_steps(st->specs[r->k]);
    if (max_steps > 0 && max_steps < len) len = max_steps;
    double ret = 0;
    *success = 0;
    for (int i = 0; i < len; i++) {
        crl_step_info info;
        crl_sac_act(st->sac, 1, obs, r->k, 1, NULL, act);
        crl_env_step(env, act, obs, &info);
        ret += info.reward;
        if (info.success) *success = 1;
        (*steps)++;
        if (info.terminal || info.truncated) break;
    }
    return ret;
}

/* Grow or prune (crl_csp_task_end) on batches of the task's buffer, every
 * finalist from the same seeded episodes; the decision goes to
 * csp_decisions and the metrics, the reserved env steps to the step
 * counter. */
static int csp_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                        int64_t reserve, crl_err *err) {
    const double t0 = crl_now();
    csp_roll roll = {st, k};
    crl_csp_decision d;
    int rc = crl_csp_task_end(&st->csp, st->sac, k, &st->rb, &st->batch,
                              crl_eval_seed(st->c->seed, 999999, k),
                              reports_success(st->names[k]), csp_rollout, &roll, &d, err);
    if (rc) return rc;
    const double wall = crl_now() - t0;
    st->step += reserve;
    crl_csp_row row = {.run_id = run_id,
                       .task_idx = st->pos[k],
                       .step = st->step,
                       .kept = d.kept,
                       .best_new = d.best_new,
                       .best_old = d.best_old,
                       .n_anchors = d.n_anchors,
                       .alpha = st->csp.table + (size_t)k * st->csp.K,
                       .n_alpha = d.n_anchors,
                       .criterion =
                           d.criterion == CRL_CSP_BY_SUCCESS ? "success" : "return",
                       .rollouts = d.rollouts,
                       .new_success = d.new_success,
                       .old_success = d.old_success,
                       .q_new = d.q_new,
                       .q_old = d.q_old,
                       .check_kept = d.check_kept,
                       .check_new = d.check_new,
                       .check_old = d.check_old,
                       .wall_s = wall};
    if ((rc = crl_store_csp_decision(store, &row, err))) return rc;
    const char *keys[] = {"csp/kept",        "csp/best_new",         "csp/best_old",
                          "csp/anchors",     "csp/validation_steps", "csp/new_success",
                          "csp/old_success", "csp/decision_s"};
    double vals[] = {
        d.kept,        d.best_new,    d.best_old, d.n_anchors, (double)d.val_steps,
        d.new_success, d.old_success, wall};
    for (int i = 0; i < 8; i++)
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
