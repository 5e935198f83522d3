/* The `soft` router (SMEAR, docs/routers.md): the l2m router's keys, pull,
 * usage weights and schedule, but each row takes its k best modulators by
 * the l2m router's scores, weighted by a softmax with temperature T, and the
 * pool runs their merged block (pool.h, crl_pool_ws.k). The state is the
 * l2m router's own (r->impl), so every hook but the route is its hook. */
#include "crl/router.h"
#include "crl/routers.h"

#include <math.h>

/* Scores of one row live on the stack (two update lanes route at once). */
#define SOFT_MAX_M 4096

static int soft_init(crl_router *r, crl_err *err) {
    int rc = crl_router_l2m_ops.init(r, err);
    if (rc) return rc;
    const int M = r->pool->M;
    const int k = r->cfg.soft_k ? r->cfg.soft_k : CRL_ROUTER_SOFT_K;
    const float T = r->cfg.soft_temp != 0.0f ? r->cfg.soft_temp : CRL_ROUTER_SOFT_TEMP;
    if (M > SOFT_MAX_M)
        return crl_errf(err, CRL_EINVAL, "l2m soft: %d modulators, at most %d", M,
                        SOFT_MAX_M);
    if (k < 1 || k > M)
        return crl_errf(err, CRL_EINVAL, "l2m soft: k %d not in 1..%d (the pool)", k, M);
    if (!(T > 0.0f) || !isfinite(T))
        return crl_errf(err, CRL_EINVAL, "l2m soft: temperature %g must be > 0",
                        (double)T);
    r->cfg.soft_k = k;
    r->cfg.soft_temp = T;
    r->top_k = k;
    return CRL_OK;
}

static void soft_destroy(crl_router *r) {
    crl_router_l2m_ops.destroy(r);
}

/* Per row: the l2m route's scores of every modulator (crl_pool_scores: the
 * same cosine and usage weight the l2m router takes the argmax of), the k
 * best and their softmax weights (crl_soft_select). sel is the best one, so
 * k = 1 routes exactly as l2m. Without room for idx / w (a caller that
 * runs one modulator per row) only sel is written. */
static int soft_route(crl_router *r, const float *params, const crl_router_rows *rows,
                      crl_router_out *out, crl_err *err) {
    const crl_pool *p = r->pool;
    const int M = p->M, D = p->key_dim;
    const int k = out->idx && out->w ? r->top_k : 1;
    const crl_pool_route route = crl__key_router_route(r, rows);
    double scores[SOFT_MAX_M];
    int one_idx = 0;
    float one_w = 1.0f;
    for (int i = 0; i < rows->B; i++) {
        int *idx = out->idx && out->w ? out->idx + (size_t)i * k : &one_idx;
        float *w = out->idx && out->w ? out->w + (size_t)i * k : &one_w;
        int rc = crl_pool_scores(p, params, rows->q + (size_t)i * D, &route, scores, err);
        if (!rc) rc = crl_soft_select(scores, M, k, r->cfg.soft_temp, idx, w, err);
        if (rc) return rc;
        out->sel[i] = idx[0];
    }
    out->k = k;
    return CRL_OK;
}

static void soft_task_start(crl_router *r, int task, const int64_t *start_counts) {
    crl_router_l2m_ops.task_start(r, task, start_counts);
}

static void soft_eval(crl_router *r, int on) {
    crl_router_l2m_ops.eval(r, on);
}

/* The key pull of the top-1 keys (sel), as l2m. */
static double soft_extra_loss(crl_router *r, const float *params, const crl_pool_ws *ws,
                              int n, int B, float *grads) {
    return crl_router_l2m_ops.extra_loss(r, params, ws, n, B, grads);
}

static int soft_set_routes(crl_router *r, const crl_pool_route *train,
                           const crl_pool_route *act, crl_err *err) {
    return crl_router_l2m_ops.set_routes(r, train, act, err);
}

const crl_router_ops crl_router_soft_ops = {
    .name = "soft",
    .what =
        "l2m's scores, top-k softmax weights, the k modulators merged per row (SMEAR)",
    .needs = CRL_ROUTER_NEEDS_KEYS,
    .top_k = CRL_ROUTER_SOFT_K,
    .init = soft_init,
    .destroy = soft_destroy,
    .route = soft_route,
    .task_start = soft_task_start,
    .eval = soft_eval,
    .extra_loss = soft_extra_loss,
    .set_routes = soft_set_routes,
};
