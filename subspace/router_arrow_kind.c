/* The `arrow` router kind (docs/routers.md "arrow, wired"): zero-shot routing
 * of acting rows by the modulators' own prototypes (crl_arrow_prototypes,
 * crl_arrow_scores with per-layer normalisation), and a fixed training
 * modulator per task: the least-used one at the task's start (first of
 * ties), held for the whole task. No keys, no pull.
 *
 * Prototypes are recomputed for every modulator at the `changed` hook
 * (before evaluations and at each task end), at every task start, and on the
 * first route after creation (a resumed run: the checkpoint's parameters
 * are those of the last `changed`, so the prototypes come out the same; no
 * router state is saved). Routing never allocates and, once the prototypes
 * are fresh, only reads the router (the policy runtime computes them when it
 * loads, so that clones may act on several threads). LoRA pools only: (IA)^3 prototypes
 * need the base weights, which the router does not see. */
#include "crl/router.h"
#include "crl/routers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scores of a chunk of rows live on the caller's stack (routing may run on
 * several threads at once: the clones of a runtime policy share the
 * router), at most ARROW_STACK doubles: ARROW_STACK / M rows per pass. */
#define ARROW_STACK 4096

typedef struct {
    float *protos; /* M x crl_arrow_proto_dim */
    float *ws;     /* crl_arrow_ws_floats */
    size_t ws_n;
    int *live;     /* M: the prototype is nonzero (the modulator has an update) */
    int stale;     /* recompute before the next route */
    int train_mod; /* the current task's training modulator */
    int eval_on;
    int n_live;
} arrow_rt;

static int arrow_init(crl_router *r, crl_err *err) {
    const crl_pool *p = r->pool;
    if (p->kind != CRL_POOL_LORA)
        return crl_errf(err, CRL_EINVAL,
                        "l2m router arrow: needs LoRA modulators (l2m-modulator lora)");
    if (p->M > ARROW_STACK)
        return crl_errf(err, CRL_EINVAL,
                        "l2m router arrow: at most %d modulators, not %d", ARROW_STACK,
                        p->M);
    arrow_rt *a = calloc(1, sizeof *a);
    if (!a) return crl_errf(err, CRL_ENOMEM, "l2m router: out of memory");
    r->impl = a;
    int rc = crl_arrow_ws_floats(p, &a->ws_n, err);
    if (rc) return rc;
    a->protos = calloc((size_t)p->M * crl_arrow_proto_dim(p), sizeof(float));
    a->ws = malloc((a->ws_n ? a->ws_n : 1) * sizeof(float));
    a->live = calloc((size_t)p->M, sizeof(int));
    if (!a->protos || !a->ws || !a->live)
        return crl_errf(err, CRL_ENOMEM, "l2m router: out of memory");
    a->stale = 1;
    a->train_mod = 0;
    return CRL_OK;
}

static void arrow_destroy(crl_router *r) {
    arrow_rt *a = r->impl;
    if (a) {
        free(a->protos);
        free(a->ws);
        free(a->live);
    }
    free(a);
    r->impl = NULL;
}

/* Every modulator's prototype from params; live[m] = any nonzero float. */
static int recompute(crl_router *r, const float *params, crl_err *err) {
    arrow_rt *a = r->impl;
    const crl_pool *p = r->pool;
    int rc =
        crl_arrow_prototypes(p, NULL, params, 0, p->M, a->protos, a->ws, a->ws_n, err);
    if (rc) return rc;
    const size_t dim = crl_arrow_proto_dim(p);
    a->n_live = 0;
    for (int m = 0; m < p->M; m++) {
        const float *v = a->protos + (size_t)m * dim;
        int nz = 0;
        for (size_t i = 0; i < dim && !nz; i++) nz = v[i] != 0.0f;
        a->live[m] = nz;
        a->n_live += nz;
    }
    a->stale = 0;
    return CRL_OK;
}

static int arrow_route(crl_router *r, const float *params, const crl_router_rows *rows,
                       crl_router_out *out, crl_err *err) {
    arrow_rt *a = r->impl;
    const crl_pool *p = r->pool;
    const int M = p->M;
    /* Training rows, and collection rows that route as training. */
    if (!rows->acting || (!a->eval_on && r->cfg.collect == CRL_ROUTER_COLLECT_TRAIN)) {
        for (int i = 0; i < rows->B; i++) out->sel[i] = a->train_mod;
        return CRL_OK;
    }
    if (a->stale && params) {
        int rc = recompute(r, params, err);
        if (rc) return rc;
    }
    if (a->n_live == 0 || !rows->layer_in) {
        for (int i = 0; i < rows->B; i++) out->sel[i] = a->train_mod;
        return CRL_OK;
    }
    const int L = p->base.spec.n_hidden, chunk = ARROW_STACK / M;
    double scores[ARROW_STACK];
    for (int r0 = 0; r0 < rows->B; r0 += chunk) {
        const int n = rows->B - r0 < chunk ? rows->B - r0 : chunk;
        const float *h[CRL_MLP_MAX_HIDDEN];
        for (int l = 0; l < L; l++) {
            const int in = l == 0 ? p->base.spec.in_dim : p->base.spec.hidden[l - 1];
            h[l] = rows->layer_in[l] + (size_t)r0 * in;
        }
        crl_arrow_scores(p, a->protos, h, n, 1, scores);
        for (int i = 0; i < n; i++) {
            const double *s = scores + (size_t)i * M;
            int best = -1;
            for (int m = 0; m < M; m++)
                if (a->live[m] && (best < 0 || s[m] > s[best])) best = m;
            out->sel[r0 + i] = best;
        }
    }
    return CRL_OK;
}

/* The least-used modulator at the task's start (first of ties). */
static void arrow_task_start(crl_router *r, int task, const int64_t *start_counts) {
    (void)task;
    arrow_rt *a = r->impl;
    const int64_t *c = start_counts ? start_counts : r->counts;
    int best = 0;
    for (int m = 1; c && m < r->pool->M; m++)
        if (c[m] < c[best]) best = m;
    a->train_mod = best;
    a->eval_on = 0;
    a->stale = 1; /* recomputed on the next acting route */
}

static void arrow_eval(crl_router *r, int on) {
    arrow_rt *a = r->impl;
    a->eval_on = on;
}

static void arrow_changed(crl_router *r, const float *params) {
    arrow_rt *a = r->impl;
    crl_err e;
    if (!params || recompute(r, params, &e)) a->stale = 1;
}

const crl_router_ops crl_router_arrow_ops = {
    .name = "arrow",
    .what = "zero-shot: SVD prototypes of the LoRA updates; a fixed least-used modulator "
            "trains each task",
    .needs = CRL_ROUTER_NEEDS_LAYERS,
    .top_k = 1,
    .init = arrow_init,
    .destroy = arrow_destroy,
    .route = arrow_route,
    .task_start = arrow_task_start,
    .eval = arrow_eval,
    .changed = arrow_changed,
};
