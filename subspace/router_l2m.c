/* The key routers of L2M: l2m (keys, key pull, usage weight on training
 * rows of later tasks), oracle (cosine inside the task's slice) and cos
 * (plain cosine). All three score from the pool's keys through
 * crl_pool_route_rows; they differ only in the pool route they build for a
 * forward. */
#include "crl/router.h"

#include <stdlib.h>
#include <string.h>

enum { V_L2M, V_ORACLE, V_COS };

typedef struct {
    int variant;
    int task;    /* the training task (task_start) */
    int eval_on; /* acting rows are evaluation rows */
    int pinned;  /* set_routes: train / act below, until the next task_start */
    crl_pool_route train, act;
    double *w; /* M: usage weights frozen at the task's start */
} keyrt;

static int kr_init(crl_router *r, int variant, crl_err *err) {
    keyrt *k = calloc(1, sizeof *k);
    double *w = k ? calloc((size_t)r->pool->M, sizeof *w) : NULL;
    if (!w) {
        free(k);
        return crl_errf(err, CRL_ENOMEM, "l2m router: out of memory");
    }
    k->variant = variant;
    k->w = w;
    for (int m = 0; m < r->pool->M; m++) w[m] = 1.0 / r->pool->M;
    r->impl = k;
    if (variant == V_ORACLE && r->cfg.n_tasks > r->pool->M)
        return crl_errf(err, CRL_EINVAL,
                        "l2m oracle: %d modulators cannot be split over %d tasks",
                        r->pool->M, r->cfg.n_tasks);
    return CRL_OK;
}

static int l2m_init(crl_router *r, crl_err *err) {
    return kr_init(r, V_L2M, err);
}
static int oracle_init(crl_router *r, crl_err *err) {
    return kr_init(r, V_ORACLE, err);
}
static int cos_init(crl_router *r, crl_err *err) {
    return kr_init(r, V_COS, err);
}

static void kr_destroy(crl_router *r) {
    keyrt *k = r->impl;
    if (k) free(k->w);
    free(k);
    r->impl = NULL;
}

/* The training route of the current task. */
static crl_pool_route train_route(const crl_router *r, const keyrt *k) {
    crl_pool_route p = {0};
    if (k->variant == V_ORACLE) {
        p.mode = CRL_POOL_ROUTE_ORACLE;
        p.task = k->task;
        p.n_tasks = r->cfg.n_tasks;
    } else if (k->variant == V_L2M && k->task > 0) {
        p.mode = CRL_POOL_ROUTE_USAGE;
        p.counts = r->counts;
        if (r->cfg.weights == CRL_ROUTER_WEIGHTS_FROZEN) p.weights = k->w;
    } else {
        p.mode = CRL_POOL_ROUTE_COS;
    }
    return p;
}

/* The route of acting rows of task `task`: evaluation (and, with
 * COLLECT_EVAL, collection) plain cosine or the oracle slice of the acting
 * task; collection with COLLECT_TRAIN the training route. */
static crl_pool_route act_route(const crl_router *r, const keyrt *k, int task) {
    crl_pool_route p = {0};
    if (k->pinned) {
        p = k->act;
        p.counts = r->counts;
    } else if (!k->eval_on && r->cfg.collect == CRL_ROUTER_COLLECT_TRAIN) {
        p = train_route(r, k);
    } else {
        p.mode = k->variant == V_ORACLE ? CRL_POOL_ROUTE_ORACLE : CRL_POOL_ROUTE_COS;
        p.n_tasks = r->cfg.n_tasks;
    }
    /* The oracle acts in the acting task's slice; a task outside the slices
     * falls back to plain cosine. */
    if (p.mode == CRL_POOL_ROUTE_ORACLE) {
        p.task = task;
        if (task < 0 || task >= p.n_tasks) p.mode = CRL_POOL_ROUTE_COS;
    }
    return p;
}

crl_pool_route crl__key_router_route(const crl_router *r, const crl_router_rows *rows) {
    const keyrt *k = r->impl;
    crl_pool_route p;
    if (rows->acting) {
        p = act_route(r, k, rows->task);
    } else if (k->pinned) {
        p = k->train;
        p.counts = r->counts;
    } else {
        p = train_route(r, k);
    }
    return p;
}

static int kr_route(crl_router *r, const float *params, const crl_router_rows *rows,
                    crl_router_out *out, crl_err *err) {
    const crl_pool_route p = crl__key_router_route(r, rows);
    return crl_pool_route_rows(r->pool, params, rows->q, rows->B, &p, out->sel, err);
}

static void kr_task_start(crl_router *r, int task, const int64_t *start_counts) {
    keyrt *k = r->impl;
    k->task = task;
    k->pinned = 0;
    k->eval_on = 0;
    if (r->cfg.weights == CRL_ROUTER_WEIGHTS_FROZEN)
        crl_pool_usage_weights(r->pool, start_counts ? start_counts : r->counts, k->w);
}

static void kr_eval(crl_router *r, int on) {
    keyrt *k = r->impl;
    k->eval_on = on;
}

static double kr_extra_loss(crl_router *r, const float *params, const crl_pool_ws *ws,
                            int n, int B, float *grads) {
    return crl_pool_pull(r->pool, params, ws, r->pull * (float)n / (float)B, grads);
}

static int kr_set_routes(crl_router *r, const crl_pool_route *train,
                         const crl_pool_route *act, crl_err *err) {
    keyrt *k = r->impl;
    crl_pool_route t = *train, a = *act;
    t.counts = a.counts = r->counts;
    if (a.mode == CRL_POOL_ROUTE_ORACLE) a.task = 0; /* checked per call */
    if (t.mode == CRL_POOL_ROUTE_FIXED || a.mode == CRL_POOL_ROUTE_FIXED ||
        t.mode == CRL_POOL_ROUTE_CALL || a.mode == CRL_POOL_ROUTE_CALL)
        return crl_errf(err, CRL_EINVAL, "sac: L2M routes cannot be FIXED");
    int rc = crl_pool_route_rows(r->pool, NULL, NULL, 0, &t, NULL, err);
    if (!rc) rc = crl_pool_route_rows(r->pool, NULL, NULL, 0, &a, NULL, err);
    if (rc) return rc;
    k->train = *train;
    k->act = *act;
    k->pinned = 1;
    return CRL_OK;
}

#define KEY_ROUTER(sym, nm, text, needs_, init_)                                         \
    const crl_router_ops sym = {                                                         \
        .name = nm,                                                                      \
        .what = text,                                                                    \
        .needs = needs_,                                                                 \
        .top_k = 1,                                                                      \
        .init = init_,                                                                   \
        .destroy = kr_destroy,                                                           \
        .route = kr_route,                                                               \
        .task_start = kr_task_start,                                                     \
        .eval = kr_eval,                                                                 \
        .extra_loss = kr_extra_loss,                                                     \
        .set_routes = kr_set_routes,                                                     \
    }

KEY_ROUTER(crl_router_l2m_ops, "l2m",
           "learned keys + pull; usage-weighted training routes after the first task",
           CRL_ROUTER_NEEDS_KEYS, l2m_init);
KEY_ROUTER(crl_router_oracle_ops, "oracle",
           "cosine inside the task's slice of the pool (task id needed)",
           CRL_ROUTER_NEEDS_KEYS | CRL_ROUTER_NEEDS_TASK_ID, oracle_init);
KEY_ROUTER(crl_router_cos_ops, "cos", "learned keys + pull, plain cosine everywhere",
           CRL_ROUTER_NEEDS_KEYS, cos_init);
