/* L2M, the method's side (docs/l2m.md): the frozen base taken from a stored
 * learner, the routes of each task, each task's training rows per modulator
 * and the modulator it trained, and the routing tally of evaluations with
 * the routing accuracies it gives. The modulated actor itself is part of the
 * one SAC update (agents/sac.c, l2m_pool > 0) on top of the pool
 * (subspace/l2m_pool.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "crl/methods.h"
#include "crl/router.h"

#include "agents/continual_state.h"

void crl_l2m_config_default(crl_l2m_config *c) {
    c->pool = CRL_POOL_DEFAULT_M;
    c->modulator = "lora";
    c->rank = CRL_POOL_DEFAULT_RANK;
    c->scale = CRL_POOL_DEFAULT_SCALE;
    c->pull = CRL_L2M_PULL;
    c->oracle = 0;
    /* New runs: the reference's routing (docs/l2m.md). */
    c->router = "l2m";
    c->weights = "frozen";
    c->collect = "eval";
    c->history = CRL_L2M_HISTORY;
    c->hold = 0;
    c->soft_k = CRL_ROUTER_SOFT_K;
    c->soft_temp = CRL_ROUTER_SOFT_TEMP;
}

void crl_l2m_config_old_routing(crl_l2m_config *c) {
    c->router = "l2m";
    c->weights = "live";
    c->collect = "train";
    c->history = 1;
    c->hold = 0;
}

static int weights_of(const char *w) {
    if (w && !strcmp(w, "frozen")) return CRL_ROUTER_WEIGHTS_FROZEN;
    if (w && !strcmp(w, "live")) return CRL_ROUTER_WEIGHTS_LIVE;
    return -1;
}

static int collect_of(const char *w) {
    if (w && !strcmp(w, "eval")) return CRL_ROUTER_COLLECT_EVAL;
    if (w && !strcmp(w, "train")) return CRL_ROUTER_COLLECT_TRAIN;
    return -1;
}

int crl_l2m_check_routing(const crl_l2m_config *c, crl_err *err) {
    if (!crl_router_find(c->router && *c->router ? c->router : NULL)) {
        char names[128] = "";
        const crl_router_ops *o;
        for (int i = 0; (o = crl_router_kind(i)); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     i ? ", " : "", o->name);
        return crl_errf(err, CRL_EINVAL, "l2m: router must be one of %s, got '%s'", names,
                        c->router);
    }
    if (weights_of(c->weights) < 0)
        return crl_errf(err, CRL_EINVAL,
                        "l2m: l2m-weights must be frozen or live, got '%s'",
                        c->weights ? c->weights : "");
    if (collect_of(c->collect) < 0)
        return crl_errf(err, CRL_EINVAL,
                        "l2m: l2m-collect must be eval or train, got '%s'",
                        c->collect ? c->collect : "");
    if (c->history < 1 || c->history > CRL_L2M_MAX_HISTORY)
        return crl_errf(err, CRL_EINVAL, "l2m: l2m-history must be in 1..%d, got %d",
                        CRL_L2M_MAX_HISTORY, c->history);
    const int soft = c->router && !strcmp(c->router, "soft") && !c->oracle;
    if (soft && (c->soft_k < 1 || c->soft_k > c->pool))
        return crl_errf(err, CRL_EINVAL,
                        "l2m: l2m-soft-k must be in 1..%d (the pool), got %d", c->pool,
                        c->soft_k);
    if (soft && (!(c->soft_temp > 0.0f) || !isfinite(c->soft_temp)))
        return crl_errf(err, CRL_EINVAL, "l2m: l2m-soft-temp must be > 0, got %g",
                        (double)c->soft_temp);
    return CRL_OK;
}

int crl_l2m_kind(const char *modulator) {
    if (modulator && !strcmp(modulator, "lora")) return CRL_POOL_LORA;
    if (modulator && !strcmp(modulator, "ia3")) return CRL_POOL_IA3;
    return -1;
}

/* ---- the base ---------------------------------------------------------------
 * The actor of a stored plain learner, read through the blob view
 * (crl_sac_blob_info). */

int crl_l2m_base_parse(const void *sac_blob, size_t n, int head, crl_l2m_base *b,
                       crl_err *err) {
    memset(b, 0, sizeof *b);
    crl_sac_blob info;
    if (crl_sac_blob_info(sac_blob, n, &info, NULL) != CRL_OK)
        return crl_errf(err, CRL_ECORRUPT, "l2m base: not a learner checkpoint");
    if (info.actor.kind != CRL_ACTOR_MLP)
        return crl_errf(err, CRL_EINVAL,
                        "l2m base: a %s learner; the base must be a plain SAC actor",
                        info.actor.kind == CRL_ACTOR_CSP ? "CSP" : "L2M");
    const uint32_t dims[5] = {(uint32_t)info.obs_dim, (uint32_t)info.act_dim,
                              (uint32_t)info.n_tasks, (uint32_t)info.hidden,
                              (uint32_t)info.layers};
    const uint64_t sizes[1] = {info.na};
    crl_mlp_spec as;
    crl_mlp m;
    if (dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1 || dims[4] < 1 ||
        dims[4] > CRL_MLP_MAX_HIDDEN || dims[0] > 65536 || dims[1] > 65536 ||
        dims[2] > 65536 || dims[3] > 65536)
        return crl_errf(err, CRL_ECORRUPT, "l2m base: bad learner shape");
    crl_mlp_spec_cw(&as, (int)dims[0], 2 * (int)dims[1], (int)dims[2], (int)dims[4],
                    (int)dims[3]);
    int rc = crl_mlp_init(&m, &as, err);
    if (rc) return rc;
    if (sizes[0] != m.n_params)
        return crl_errf(err, CRL_ECORRUPT,
                        "l2m base: %llu actor parameters, expected %zu",
                        (unsigned long long)sizes[0], m.n_params);
    if (head < 0 || head >= (int)dims[2])
        return crl_errf(err, CRL_EINVAL, "l2m base: task %d not in 0..%u (its heads)",
                        head, dims[2] - 1);
    const void *p = info.actor_params;
    b->params = malloc(m.n_params * sizeof(float));
    if (!b->params) return crl_errf(err, CRL_ENOMEM, "l2m base: out of memory");
    memcpy(b->params, p, m.n_params * sizeof(float));
    b->obs_dim = (int)dims[0];
    b->act_dim = (int)dims[1];
    b->n_tasks = (int)dims[2];
    b->hidden = (int)dims[3];
    b->layers = (int)dims[4];
    b->head = head;
    b->n = m.n_params;
    return CRL_OK;
}

void crl_l2m_base_free(crl_l2m_base *b) {
    if (!b) return;
    free(b->params);
    memset(b, 0, sizeof *b);
}

int crl_l2m_sac_config(const crl_l2m_config *c, const crl_l2m_base *b, crl_sac_config *sc,
                       crl_err *err) {
    const int kind = crl_l2m_kind(c->modulator);
    if (kind < 0)
        return crl_errf(err, CRL_EINVAL, "l2m: modulator must be lora or ia3, got '%s'",
                        c->modulator ? c->modulator : "");
    if (!b || !b->params)
        return crl_errf(err, CRL_EINVAL, "l2m needs a base actor (crl_l2m_base_load)");
    if (b->obs_dim != sc->obs_dim || b->act_dim != sc->act_dim)
        return crl_errf(err, CRL_EINVAL,
                        "l2m: the base acts on obs %d / act %d, the scenario has %d / %d",
                        b->obs_dim, b->act_dim, sc->obs_dim, sc->act_dim);
    if (b->hidden != sc->hidden || b->layers != sc->layers)
        return crl_errf(
            err, CRL_EINVAL,
            "l2m: the base is %d x %d (layers x hidden); run with layers %d and "
            "hidden %d",
            b->layers, b->hidden, b->layers, b->hidden);
    int rc = crl_l2m_check_routing(c, err);
    if (rc) return rc;
    if (c->pool < 1 || (kind == CRL_POOL_LORA && c->rank < 1))
        return crl_errf(err, CRL_EINVAL, "l2m: l2m-pool and l2m-rank must be >= 1");
    if (c->oracle && c->pool < sc->n_tasks)
        return crl_errf(err, CRL_EINVAL,
                        "l2m oracle: %d modulators cannot be split over %d tasks",
                        c->pool, sc->n_tasks);
    sc->l2m_pool = c->pool;
    sc->l2m_kind = kind;
    sc->l2m_rank = kind == CRL_POOL_LORA ? c->rank : 0;
    sc->l2m_scale = c->scale;
    sc->l2m_pull = c->pull;
    sc->l2m_base_tasks = b->n_tasks;
    sc->l2m_head = b->head;
    /* --l2m-oracle is the oracle router (kept as a flag for old runs). */
    sc->l2m_router = c->oracle ? "oracle" : c->router && *c->router ? c->router : "l2m";
    sc->l2m_tasks = sc->n_tasks;
    sc->l2m_weights = weights_of(c->weights);
    sc->l2m_collect = collect_of(c->collect);
    sc->l2m_history = c->history;
    sc->l2m_hold = c->hold;
    sc->l2m_soft_k = c->soft_k;
    sc->l2m_soft_temp = c->soft_temp;
    return CRL_OK;
}

/* ---- the method state --------------------------------------------------------- */

int crl_l2m_init(crl_l2m *m, const crl_l2m_config *c, int M, int n_tasks, int max_rows,
                 crl_err *err) {
    memset(m, 0, sizeof *m);
    if (M < 1 || n_tasks < 1 || max_rows < 1)
        return crl_errf(err, CRL_EINVAL, "l2m: bad sizes");
    m->c = *c;
    m->M = M;
    m->n_tasks = n_tasks;
    m->max_rows = max_rows;
    m->start = calloc((size_t)M, sizeof *m->start);
    m->train_mod = malloc((size_t)n_tasks * sizeof *m->train_mod);
    m->hist = calloc((size_t)max_rows * (size_t)M, sizeof *m->hist);
    m->rows = calloc((size_t)n_tasks * (size_t)M, sizeof *m->rows);
    m->acc_now = malloc((size_t)n_tasks * sizeof *m->acc_now);
    if (!m->start || !m->train_mod || !m->hist || !m->rows || !m->acc_now) {
        crl_l2m_free(m);
        return crl_errf(err, CRL_ENOMEM, "l2m: out of memory");
    }
    for (int i = 0; i < n_tasks; i++) m->train_mod[i] = -1;
    for (int i = 0; i < n_tasks; i++) m->acc_now[i] = NAN;
    m->rows_known = 1;
    m->cur = -1;
    return CRL_OK;
}

void crl_l2m_free(crl_l2m *m) {
    free(m->rstate);
    free(m->mem_q);
    free(m->mem_y);
    free(m->start);
    free(m->train_mod);
    free(m->hist);
    free(m->rows);
    free(m->acc_now);
    memset(m, 0, sizeof *m);
}

int crl_l2m_task_start(crl_l2m *m, crl_sac *sac, int task, int fresh, uint64_t seed,
                       crl_err *err) {
    if (fresh) memcpy(m->start, crl_sac_l2m_counts(sac), sizeof(int64_t) * (size_t)m->M);
    /* The router's routes for the task; the l2m router freezes its usage
     * weights from the counts at the task's first step (kept in the method's
     * checkpoint, so a resumed task routes as before). */
    int rc = crl_sac_l2m_task_start(sac, task, m->start, err);
    if (rc) return rc;
    if (fresh) {
        /* A fresh, unmodulated critic per task. */
        if (task > 0) crl_sac_reset_critics(sac, seed);
        crl_sac_reset_optimizers(sac);
    }
    return CRL_OK;
}

int crl_l2m_eval_route(crl_l2m *m, crl_sac *sac, crl_err *err) {
    (void)m, (void)err;
    crl_sac_l2m_eval(sac, 1);
    return CRL_OK;
}

void crl_l2m_rows_now(crl_l2m *m, const int64_t *counts, int task) {
    if (task < 0 || task >= m->n_tasks) return;
    int64_t *r = m->rows + (size_t)task * m->M;
    for (int i = 0; i < m->M; i++) r[i] = counts[i] - m->start[i];
}

double crl_l2m_route_acc_steps(const int64_t *rows, int n_tasks, int M, int k,
                               const int32_t *hist, int n_hist) {
    if (k < 0 || k >= n_tasks) return NAN;
    int64_t own_rows = 0, owned_steps = 0, all_steps = 0;
    for (int i = 0; i < M; i++) own_rows += rows[(size_t)k * M + i];
    if (own_rows <= 0) return NAN;
    for (int i = 0; i < M; i++) {
        int64_t s = 0;
        for (int j = 0; j < n_tasks; j++) s += rows[(size_t)j * M + i];
        /* Compared in integers: 2 rows[k][i] >= S_i. */
        const int owned = s > 0 && 2 * rows[(size_t)k * M + i] >= s;
        for (int r = 0; r < n_hist; r++) {
            const int64_t h = hist[(size_t)r * M + i];
            all_steps += h;
            if (owned) owned_steps += h;
        }
    }
    return all_steps > 0 ? (double)owned_steps / (double)all_steps : NAN;
}

int crl_l2m_task_end(crl_l2m *m, crl_sac *sac, int task) {
    const int64_t *c = crl_sac_l2m_counts(sac);
    crl_l2m_rows_now(m, c, task);
    int best = -1;
    int64_t best_n = 0;
    for (int i = 0; i < m->M; i++)
        if (c[i] - m->start[i] > best_n) {
            best_n = c[i] - m->start[i];
            best = i;
        }
    if (task >= 0 && task < m->n_tasks) m->train_mod[task] = best;
    return best;
}

/* ---- the query memory and the separability ceiling --------------------------- */

/* Room for n more rows of D floats. */
static int mem_reserve(crl_l2m *m, int D, int n, crl_err *err) {
    if (m->n_mem > 0 && m->mem_D != D)
        return crl_errf(err, CRL_EINVAL, "l2m memory: queries of %d floats, not %d",
                        m->mem_D, D);
    m->mem_D = D;
    if (m->n_mem + n <= m->cap_mem) return CRL_OK;
    const int cap = m->n_mem + n;
    float *q = realloc(m->mem_q, sizeof(float) * (size_t)cap * (size_t)D);
    if (!q) return crl_errf(err, CRL_ENOMEM, "l2m memory: out of memory");
    m->mem_q = q;
    int32_t *y = realloc(m->mem_y, sizeof(int32_t) * (size_t)cap);
    if (!y) return crl_errf(err, CRL_ENOMEM, "l2m memory: out of memory");
    m->mem_y = y;
    m->cap_mem = cap;
    return CRL_OK;
}

int crl_l2m_memory_add(crl_l2m *m, crl_sac *sac, const crl_replay *rb, int task,
                       int per_task, uint64_t seed, crl_err *err) {
    const crl_pool *p = crl_sac_pool(sac);
    if (!p) return crl_errf(err, CRL_EINVAL, "l2m memory: not an L2M learner");
    if (!rb || rb->size <= 0 || per_task <= 0) return CRL_OK;
    const int64_t size = rb->size;
    const int n = size < per_task ? (int)size : per_task;
    const int D = p->key_dim, in = p->base.spec.in_dim;
    const int H = crl_sac_l2m_history(sac), cap = H > 1 ? H - 1 : 0;
    int rc = mem_reserve(m, D, n, err);
    if (rc) return rc;
    /* The slots: a partial Fisher-Yates shuffle of 0..size-1 from the stream
     * (seed, task), the chosen n sorted back into slot order. */
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)size);
    enum { CHUNK = 64 };
    float *hist = malloc(sizeof(float) * (size_t)CHUNK * (size_t)(cap ? cap : 1) * in);
    float *x = malloc(sizeof(float) * (size_t)CHUNK * in);
    int *hn = malloc(sizeof(int) * CHUNK), *sel = calloc(CHUNK, sizeof(int));
    crl_pool_ws ws = {0};
    if (!idx || !hist || !x || !hn || !sel) {
        rc = crl_errf(err, CRL_ENOMEM, "l2m memory: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < size; i++) idx[i] = i;
    if (n < size) {
        crl_rng rng;
        crl_rng_seed_stream(&rng, seed, 0x4d454d00u + (uint64_t)task);
        for (int i = 0; i < n; i++) {
            const int64_t j = i + (int64_t)crl_rng_below(&rng, (uint64_t)(size - i));
            const int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        /* insertion sort of n <= per_task slots */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
                const int64_t t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            }
    }
    if ((rc = crl_pool_ws_alloc(&ws, p, CHUNK, err)) ||
        (cap && (rc = crl_pool_ws_history(&ws, p, cap, err))))
        goto out;
    const crl_pool_route fixed = {.mode = CRL_POOL_ROUTE_FIXED, .sel = sel};
    const float *base = crl_sac_l2m_base(sac), *params = crl_sac_actor_params(sac);
    for (int r0 = 0; r0 < n; r0 += CHUNK) {
        const int b = n - r0 < CHUNK ? n - r0 : CHUNK;
        for (int i = 0; i < b; i++) {
            const int64_t s = idx[r0 + i];
            memcpy(x + (size_t)i * in, rb->obs + s * in, sizeof(float) * (size_t)in);
            hn[i] = 0;
            if (cap)
                crl_replay_window(rb, s, cap, hist + (size_t)i * cap * in, &hn[i], NULL,
                                  NULL);
        }
        ws.hist = cap ? hist : NULL;
        ws.hist_n = cap ? hn : NULL;
        ws.hist_cap = cap;
        if ((rc = crl_pool_forward(p, base, params, &ws, x, b, NULL, &fixed, err)))
            goto out;
        memcpy(m->mem_q + (size_t)(m->n_mem + r0) * D, ws.q,
               sizeof(float) * (size_t)b * D);
        for (int i = 0; i < b; i++) m->mem_y[m->n_mem + r0 + i] = task;
    }
    m->n_mem += n;
out:
    crl_pool_ws_free(&ws);
    free(idx);
    free(hist);
    free(x);
    free(hn);
    free(sel);
    return rc;
}

int crl_l2m_nearest_centroid(const float *q, const int *label, int n, int dim,
                             int n_tasks, double *acc, crl_err *err) {
    if (!q || !label || !acc || n < 1 || dim < 1 || n_tasks < 1)
        return crl_errf(
            err, CRL_EINVAL,
            "nearest centroid: need queries, labels and n, dim, tasks >= 1 (got %d, "
            "%d, %d)",
            n, dim, n_tasks);
    for (int p = 0; p < n; p++) {
        if (label[p] < 0 || label[p] >= n_tasks)
            return crl_errf(err, CRL_EINVAL,
                            "nearest centroid: query %d has task %d, not in 0..%d", p,
                            label[p], n_tasks - 1);
        for (int d = 0; d < dim; d++)
            if (!isfinite(q[(size_t)p * dim + d]))
                return crl_errf(err, CRL_EINVAL,
                                "nearest centroid: query %d is not finite", p);
    }
    double *sum = calloc((size_t)n_tasks * (size_t)dim, sizeof *sum);
    int *cnt = calloc((size_t)n_tasks, sizeof *cnt);
    if (!sum || !cnt) {
        free(sum);
        free(cnt);
        return crl_errf(err, CRL_ENOMEM, "nearest centroid: out of memory");
    }
    for (int p = 0; p < n; p++) {
        cnt[label[p]]++;
        for (int d = 0; d < dim; d++)
            sum[(size_t)label[p] * dim + d] += q[(size_t)p * dim + d];
    }
    int right = 0;
    for (int p = 0; p < n; p++) {
        const int y = label[p];
        const float *x = q + (size_t)p * dim;
        /* Leave one out: the query's own task's centroid without it; a task
         * with no query left has no centroid, and the query counts as wrong. */
        if (cnt[y] < 2) continue;
        double own = 0;
        for (int d = 0; d < dim; d++) {
            const double c = (sum[(size_t)y * dim + d] - x[d]) / (cnt[y] - 1);
            own += (x[d] - c) * (x[d] - c);
        }
        int ok = 1;
        for (int t = 0; t < n_tasks && ok; t++) {
            if (t == y || cnt[t] == 0) continue;
            double dist = 0;
            for (int d = 0; d < dim; d++) {
                const double c = sum[(size_t)t * dim + d] / cnt[t];
                dist += (x[d] - c) * (x[d] - c);
            }
            ok = own < dist; /* a tie is a wrong answer */
        }
        right += ok;
    }
    free(sum);
    free(cnt);
    *acc = (double)right / n;
    return CRL_OK;
}

int crl_l2m_ceiling(const crl_l2m *m, double *acc, int *n, crl_err *err) {
    *acc = NAN;
    *n = m->n_mem;
    if (m->n_mem == 0) return CRL_OK;
    int seen[2] = {-1, -1};
    for (int i = 0; i < m->n_mem && seen[1] < 0; i++)
        if (seen[0] < 0)
            seen[0] = m->mem_y[i];
        else if (m->mem_y[i] != seen[0])
            seen[1] = m->mem_y[i];
    if (seen[1] < 0) return CRL_OK; /* one task: nothing to separate */
    return crl_l2m_nearest_centroid(m->mem_q, m->mem_y, m->n_mem, m->mem_D, m->n_tasks,
                                    acc, err);
}

/* The modulator row r of the tally used most (first of ties), -1 if none. */
static int row_mode(const crl_l2m *m, int r) {
    const int32_t *h = m->hist + (size_t)r * m->M;
    int mode = -1;
    int32_t best = 0;
    for (int j = 0; j < m->M; j++)
        if (h[j] > best) {
            best = h[j];
            mode = j;
        }
    return mode;
}

void crl_l2m_route_summary(const crl_l2m *m, int rows, int trained, int *modal,
                           double *frac, double *acc) {
    if (rows > m->max_rows) rows = m->max_rows;
    int n_valid = 0, n_trained = 0, best_m = -1, best_v = 0;
    for (int r = 0; r < rows; r++) {
        const int mode = row_mode(m, r);
        n_valid += mode >= 0;
        n_trained += mode >= 0 && mode == trained;
    }
    /* Each episode votes for its own mode; M and rows are small. */
    for (int cand = 0; cand < m->M; cand++) {
        int v = 0;
        for (int r = 0; r < rows; r++) v += row_mode(m, r) == cand;
        if (v > best_v) {
            best_v = v;
            best_m = cand;
        }
    }
    *modal = best_m;
    *frac = n_valid ? (double)best_v / n_valid : NAN;
    *acc = trained >= 0 && n_valid ? (double)n_trained / n_valid : NAN;
}

/* ---- checkpoint: "CRLL2M03", i32 M, i32 n_tasks, start counts (M x i64),
 * train_mod (n_tasks x i32), rows (n_tasks x M x i64), i32 mem_D, i32 n_mem,
 * the memory's queries (n_mem x mem_D f32) and tasks (n_mem x i32), u64
 * router state bytes and the state (crl_router_state_save: 0 for routers
 * without state).
 * "CRLL2M02" (before the memory) is the same without the last four fields;
 * it loads with an empty memory. "CRLL2M01" (before the rows matrix) also
 * lacks rows; it loads with rows_known = 0. */

static const char L2M_MAGIC[8] = {'C', 'R', 'L', 'L', '2', 'M', '0', '3'};
static const char L2M_MAGIC_V2[8] = {'C', 'R', 'L', 'L', '2', 'M', '0', '2'};
static const char L2M_MAGIC_V1[8] = {'C', 'R', 'L', 'L', '2', 'M', '0', '1'};

int crl_l2m_take_router_state(crl_l2m *m, crl_sac *sac, crl_err *err) {
    crl_router *rt = crl_actor_router(crl_sac_get_actor(sac));
    const size_t n = rt ? crl_router_state_size(rt) : 0;
    free(m->rstate);
    m->rstate = NULL;
    m->rstate_n = 0;
    if (n == 0) return CRL_OK;
    if (!(m->rstate = malloc(n))) return crl_errf(err, CRL_ENOMEM, "l2m: out of memory");
    crl_router_state_save(rt, m->rstate);
    m->rstate_n = n;
    return CRL_OK;
}

int crl_l2m_save(const crl_l2m *m, void **blob, size_t *n, crl_err *err) {
    crl_wbuf w = {0};
    int32_t dims[2] = {m->M, m->n_tasks};
    crl_wbuf_put(&w, L2M_MAGIC, 8);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, m->start, sizeof(int64_t) * (size_t)m->M);
    for (int i = 0; i < m->n_tasks; i++) {
        int32_t t = m->train_mod[i];
        crl_wbuf_put(&w, &t, 4);
    }
    crl_wbuf_put(&w, m->rows, sizeof(int64_t) * (size_t)m->n_tasks * (size_t)m->M);
    const int32_t mem[2] = {m->n_mem ? m->mem_D : 0, m->n_mem};
    crl_wbuf_put(&w, mem, sizeof mem);
    if (m->n_mem) {
        crl_wbuf_put(&w, m->mem_q, sizeof(float) * (size_t)m->n_mem * (size_t)m->mem_D);
        crl_wbuf_put(&w, m->mem_y, sizeof(int32_t) * (size_t)m->n_mem);
    }
    const uint64_t rs = m->rstate ? m->rstate_n : 0;
    crl_wbuf_put(&w, &rs, sizeof rs);
    if (rs) crl_wbuf_put(&w, m->rstate, rs);
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "l2m: out of memory while saving");
    }
    *blob = w.p;
    *n = w.n;
    return CRL_OK;
}

int crl_l2m_load(crl_l2m *m, const void *blob, size_t n, crl_err *err) {
    crl_rbuf r = {blob, n, 0, 0};
    char magic[8];
    int32_t dims[2];
    crl_rbuf_get(&r, magic, 8);
    crl_rbuf_get(&r, dims, sizeof dims);
    const int v1 = !r.bad && memcmp(magic, L2M_MAGIC_V1, 8) == 0;
    const int v2 = !r.bad && memcmp(magic, L2M_MAGIC_V2, 8) == 0;
    const int v3 = !r.bad && memcmp(magic, L2M_MAGIC, 8) == 0;
    const size_t n1 = 16 + sizeof(int64_t) * (size_t)m->M + 4 * (size_t)m->n_tasks;
    const size_t nrows = sizeof(int64_t) * (size_t)m->n_tasks * (size_t)m->M;
    /* Version 3: the memory's size is read from the blob after the rows. */
    int32_t mem[2] = {0, 0};
    size_t nmem = 0;
    if (v3 && n >= n1 + nrows + sizeof mem) {
        memcpy(mem, (const char *)blob + n1 + nrows, sizeof mem);
        if (mem[0] < 0 || mem[1] < 0 || mem[0] > (1 << 20) || mem[1] > (1 << 24) ||
            (mem[1] > 0 && mem[0] < 1))
            return crl_errf(err, CRL_ECORRUPT, "l2m checkpoint: bad query memory");
        nmem = sizeof mem + (size_t)mem[1] * ((size_t)mem[0] * sizeof(float) + 4);
    }
    /* ... then the router state's size and bytes. */
    uint64_t rs = 0;
    if (v3 && nmem && n >= n1 + nrows + nmem + 8) {
        memcpy(&rs, (const char *)blob + n1 + nrows + nmem, 8);
        if (rs > n)
            return crl_errf(err, CRL_ECORRUPT, "l2m checkpoint: bad router state");
        nmem += 8 + (size_t)rs;
    } else if (v3) {
        nmem = 0;
    }
    if (r.bad || !(v1 || v2 || v3) || dims[0] != m->M || dims[1] != m->n_tasks ||
        (v3 && nmem == 0) || n != n1 + (v1 ? 0 : nrows) + nmem)
        return crl_errf(err, CRL_ECORRUPT, "l2m checkpoint: does not match the run");
    crl_rbuf_get(&r, m->start, sizeof(int64_t) * (size_t)m->M);
    for (int i = 0; i < m->n_tasks; i++) {
        int32_t t = -1;
        crl_rbuf_get(&r, &t, 4);
        m->train_mod[i] = t >= -1 && t < m->M ? t : -1;
    }
    if (v1)
        memset(m->rows, 0, nrows);
    else
        crl_rbuf_get(&r, m->rows, nrows);
    m->rows_known = !v1;
    m->n_mem = 0;
    m->mem_D = 0;
    if (v3) {
        crl_rbuf_get(&r, mem, sizeof mem);
        if (mem[1] > 0) {
            int rc = mem_reserve(m, mem[0], mem[1], err);
            if (rc) return rc;
            crl_rbuf_get(&r, m->mem_q, sizeof(float) * (size_t)mem[1] * (size_t)mem[0]);
            crl_rbuf_get(&r, m->mem_y, sizeof(int32_t) * (size_t)mem[1]);
            for (int i = 0; i < mem[1]; i++)
                if (m->mem_y[i] < 0 || m->mem_y[i] >= m->n_tasks)
                    return crl_errf(err, CRL_ECORRUPT,
                                    "l2m checkpoint: memory task out of range");
            m->n_mem = mem[1];
        }
        free(m->rstate);
        m->rstate = NULL;
        m->rstate_n = 0;
        crl_rbuf_get(&r, &rs, 8);
        if (rs) {
            m->rstate = malloc((size_t)rs);
            if (!m->rstate) return crl_errf(err, CRL_ENOMEM, "l2m: out of memory");
            crl_rbuf_get(&r, m->rstate, (size_t)rs);
            m->rstate_n = (size_t)rs;
        }
    }
    return r.bad ? crl_errf(err, CRL_ECORRUPT, "l2m checkpoint: truncated") : CRL_OK;
}

/* ---- the method ------------------------------------------------------------------ */

static void l2m_label(const char *name, const crl_csp_config *csp,
                      const crl_l2m_config *l2m, char *buf, size_t n) {
    (void)csp;
    /* The variants get their own report rows (the configuration keeps the
     * method's name and the options): the router unless it is the default
     * l2m, the (IA)^3 pool, then each routing option that is not the
     * reference's (docs/l2m.md section 4), so that `crl report` never pools
     * two routings into one row. */
    const char *r = l2m->oracle                   ? "oracle"
                    : l2m->router && *l2m->router ? l2m->router
                                                  : "l2m";
    char h[16] = "";
    if (l2m->history != 5)
        snprintf(h, sizeof h, "-h%d", l2m->history < 1 ? 1 : l2m->history);
    snprintf(buf, n, "%s%s%s%s%s%s%s%s", name, strcmp(r, "l2m") ? "-" : "",
             strcmp(r, "l2m") ? r : "",
             crl_l2m_kind(l2m->modulator) == CRL_POOL_IA3 ? "-ia3" : "", h,
             l2m->weights && !strcmp(l2m->weights, "live") ? "-live" : "",
             l2m->collect && !strcmp(l2m->collect, "train") ? "-collect-train" : "",
             l2m->hold ? "-hold" : "");
}

static int l2m_configure(cstate *st, crl_err *err) {
    int rc = crl_l2m_sac_config(&st->c->l2m, st->c->l2m_base, &st->sc, err);
    if (!rc)
        rc = crl_l2m_init(&st->l2m, &st->c->l2m, st->c->l2m.pool, st->n,
                          st->sc.max_act_batch, err);
    if (!rc) st->has_l2m = 1;
    return rc;
}

/* The frozen base (a resumed run's checkpoint brings its own). */
static void l2m_attach(cstate *st, crl_sac_hooks *h) {
    (void)h;
    memcpy(crl_sac_l2m_base(st->sac), st->c->l2m_base->params,
           st->c->l2m_base->n * sizeof(float));
}

static int l2m_task_start_op(cstate *st, int k, int64_t t, crl_err *err) {
    st->l2m.cur = k;
    return crl_l2m_task_start(&st->l2m, st->sac, k, t == 0,
                              st->c->seed + 104729u * (uint64_t)(k + 1), err);
}

/* Evaluation routing (no task id unless oracle), and the tally of each
 * episode's modulators. */
static int l2m_eval_begin(cstate *st, int j, int track_rows) {
    (void)j;
    crl_err e;
    crl_l2m_eval_route(&st->l2m, st->sac, &e);
    if (track_rows > 0) {
        memset(st->l2m.hist, 0, sizeof(int32_t) * (size_t)track_rows * st->l2m.M);
        crl_sac_l2m_track(st->sac, st->evs[j].obs, track_rows, st->l2m.hist);
    }
    return 0;
}

/* Which modulator the `rows` episodes of task j just used (the tally of
 * crl_sac_l2m_track), as metrics at the eval step: l2m/route/<pos> = the
 * modulator most episodes mostly used, l2m/route_frac/<pos> = the fraction
 * of episodes that mostly used it, l2m/route_acc/<pos> = the fraction that
 * mostly used the modulator task j trained (once j has trained),
 * l2m/route_acc_steps/<pos> = the fraction of its steps routed to the
 * modulators task j owns (crl_l2m_route_acc_steps, once j has a training
 * row). After the last task, l2m/route_acc_steps_mean = the mean of the
 * step accuracies of this evaluation. */
static int l2m_eval_end(cstate *st, crl_store *store, int64_t run_id, int j, int rows,
                        crl_err *err) {
    crl_sac_l2m_track(st->sac, NULL, 0, NULL);
    crl_l2m *m = &st->l2m;
    int modal;
    double frac, acc, steps = NAN;
    crl_l2m_route_summary(m, rows, m->train_mod[j], &modal, &frac, &acc);
    if (m->rows_known && m->cur >= 0) {
        crl_l2m_rows_now(m, crl_sac_l2m_counts(st->sac), m->cur);
        if (j <= m->cur)
            steps = crl_l2m_route_acc_steps(m->rows, m->n_tasks, m->M, j, m->hist,
                                            rows < m->max_rows ? rows : m->max_rows);
    }
    m->acc_now[j] = steps;
    const char *what[4] = {"route", "route_frac", "route_acc", "route_acc_steps"};
    const double val[4] = {modal, frac, acc, steps};
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "l2m/%s/%d", what[i], st->pos[j]);
        int rc = isnan(val[i])
                     ? CRL_OK
                     : crl_store_metric(store, run_id, st->step, key, val[i], err);
        if (rc) return rc;
    }
    if (j == st->n - 1) {
        double sum = 0;
        int n = 0;
        for (int i = 0; i < st->n; i++)
            if (!isnan(m->acc_now[i])) {
                sum += m->acc_now[i];
                n++;
            }
        for (int i = 0; i < st->n; i++) m->acc_now[i] = NAN;
        if (n) {
            int rc = crl_store_metric(store, run_id, st->step, "l2m/route_acc_steps_mean",
                                      sum / n, err);
            if (rc) return rc;
        }
    }
    return CRL_OK;
}

/* Back to the training routes. */
static int l2m_eval_done(cstate *st, int cur, crl_err *err) {
    return crl_l2m_task_start(&st->l2m, st->sac, cur < st->n ? cur : st->n - 1, 0, 0,
                              err);
}

/* The evaluation at a task's last step already knows the modulator trained
 * on it (the counts are final), so that it logs the task's own routing
 * accuracy too. */
static void l2m_last_step(cstate *st, int k) {
    crl_l2m_task_end(&st->l2m, st->sac, k);
}

/* The modulator the task trained, the pool's use so far and the parameter
 * counts (metrics l2m/train_mod/<pos>, l2m/used, l2m/base_params,
 * l2m/pool_params). */
static int l2m_task_end_op(cstate *st, crl_store *store, int64_t run_id, int k,
                           int64_t reserve, crl_err *err) {
    (void)reserve;
    char key[64];
    snprintf(key, sizeof key, "l2m/train_mod/%d", st->pos[k]);
    int mod = crl_l2m_task_end(&st->l2m, st->sac, k);
    /* The query memory of the task's rows; a learned router (l2r) learns
     * them with the label of the modulator the task trained. */
    const int n0 = st->l2m.n_mem;
    int trc = st->has_res ? CRL_OK
                          : crl_l2m_memory_add(&st->l2m, st->sac, &st->rb, k,
                                               CRL_L2M_MEMORY_PER_TASK, st->c->seed, err);
    crl_router *rt = crl_actor_router(crl_sac_get_actor(st->sac));
    if (!trc && rt && mod >= 0 && st->l2m.n_mem > n0)
        trc = crl_router_learn(rt, st->l2m.mem_q + (size_t)n0 * st->l2m.mem_D,
                               st->l2m.n_mem - n0, mod, err);
    if (!trc) trc = crl_sac_l2m_task_end(st->sac, k, err); /* the router's hooks */
    if (trc) return trc;
    int used = crl_pool_n_used(crl_sac_pool(st->sac), crl_sac_l2m_counts(st->sac));
    int rc = mod < 0 ? CRL_OK : crl_store_metric(store, run_id, st->step, key, mod, err);
    /* The separability ceiling of the memory so far (from the second task
     * on: docs/l2m.md). */
    if (!rc) {
        double ceil;
        int n_q;
        rc = crl_l2m_ceiling(&st->l2m, &ceil, &n_q, err);
        if (!rc && !isnan(ceil))
            rc = crl_store_metric(store, run_id, st->step, "l2m/ceiling", ceil, err);
        if (!rc && !isnan(ceil))
            rc = crl_store_metric(store, run_id, st->step, "l2m/ceiling_n", n_q, err);
    }
    if (!rc) rc = crl_store_metric(store, run_id, st->step, "l2m/used", used, err);
    const crl_pool *pool = crl_sac_pool(st->sac);
    if (!rc)
        rc = crl_store_metric(store, run_id, st->step, "l2m/base_params",
                              (double)pool->base.n_params, err);
    if (!rc)
        rc = crl_store_metric(store, run_id, st->step, "l2m/pool_params",
                              (double)pool->n_params, err);
    return rc;
}

static double l2m_params_now(cstate *st, int k) {
    (void)k;
    return (double)(crl_sac_pool(st->sac)->base.n_params + st->na);
}

static int l2m_save_op(cstate *st, void **blob, size_t *n, crl_err *err) {
    int rc = crl_l2m_take_router_state(&st->l2m, st->sac, err);
    return rc ? rc : crl_l2m_save(&st->l2m, blob, n, err);
}

/* The method's part, then the router's state it carries. */
static int l2m_load_op(cstate *st, const void *blob, size_t n, crl_err *err) {
    int rc = crl_l2m_load(&st->l2m, blob, n, err);
    crl_router *rt = crl_actor_router(crl_sac_get_actor(st->sac));
    if (!rc && rt && st->l2m.rstate_n)
        rc = crl_router_state_load(rt, st->l2m.rstate, st->l2m.rstate_n, err);
    return rc;
}

static void l2m_free_op(cstate *st) {
    if (st->has_l2m) crl_l2m_free(&st->l2m);
    st->has_l2m = 0;
}

const crl_method_impl crl_method_l2m_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_L2M_BASE | CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_L2M,
    .cost = 1.5,
    .label = l2m_label,
    .configure = l2m_configure,
    .attach = l2m_attach,
    .task_start = l2m_task_start_op,
    .eval_begin = l2m_eval_begin,
    .eval_end = l2m_eval_end,
    .eval_done = l2m_eval_done,
    .last_step = l2m_last_step,
    .task_end = l2m_task_end_op,
    .params_now = l2m_params_now,
    .save = l2m_save_op,
    .load = l2m_load_op,
    .free = l2m_free_op,
};
