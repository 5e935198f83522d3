/* The router table: one row per kind, picked once by name. A new router is
 * one file filling a crl_router_ops and one line here (docs/design.md). */
#include "crl/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const crl_router_ops *const KINDS[] = {
    &crl_router_l2m_ops,  &crl_router_oracle_ops, &crl_router_cos_ops,
    &crl_router_soft_ops, &crl_router_arrow_ops,  &crl_router_l2r_ops,
};
#define N_KINDS (int)(sizeof KINDS / sizeof KINDS[0])

const crl_router_ops *crl_router_kind(int i) {
    return i >= 0 && i < N_KINDS ? KINDS[i] : NULL;
}

const crl_router_ops *crl_router_find(const char *name) {
    if (!name) name = "l2m";
    for (int i = 0; i < N_KINDS; i++)
        if (!strcmp(KINDS[i]->name, name)) return KINDS[i];
    return NULL;
}

int crl_router_init(crl_router *r, const crl_router_config *cfg, const crl_pool *pool,
                    const int64_t *counts, float pull, crl_err *err) {
    memset(r, 0, sizeof *r);
    if (!cfg || !pool) return crl_errf(err, CRL_EINVAL, "l2m router: NULL argument");
    const crl_router_ops *ops = crl_router_find(cfg->kind);
    if (!ops) {
        char names[128] = "";
        for (int i = 0; i < N_KINDS; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     i ? ", " : "", KINDS[i]->name);
        return crl_errf(err, CRL_EINVAL, "l2m router '%s' unknown (kinds: %s)", cfg->kind,
                        names);
    }
    if (cfg->n_tasks < 1)
        return crl_errf(err, CRL_EINVAL, "l2m router: %d tasks", cfg->n_tasks);
    r->ops = ops;
    r->pool = pool;
    r->cfg = *cfg;
    r->cfg.kind = ops->name;
    r->counts = counts;
    r->pull = pull;
    r->top_k = ops->top_k;
    int rc = ops->init ? ops->init(r, err) : CRL_OK;
    if (rc) crl_router_free(r);
    return rc;
}

void crl_router_free(crl_router *r) {
    if (!r) return;
    if (r->ops && r->ops->destroy) r->ops->destroy(r);
    memset(r, 0, sizeof *r);
}

int crl_router_route(crl_router *r, const float *params, const crl_router_rows *rows,
                     crl_router_out *out, crl_err *err) {
    out->k = 1;
    return r->ops->route(r, params, rows, out, err);
}

void crl_router_task_start(crl_router *r, int task, const int64_t *start_counts) {
    if (r->ops->task_start) r->ops->task_start(r, task, start_counts);
}

void crl_router_eval(crl_router *r, int on) {
    if (r->ops->eval) r->ops->eval(r, on);
}

int crl_router_task_end(crl_router *r, const float *params, int task, crl_err *err) {
    return r->ops->task_end ? r->ops->task_end(r, params, task, err) : CRL_OK;
}

void crl_router_changed(crl_router *r, const float *params) {
    if (r->ops->changed) r->ops->changed(r, params);
}

double crl_router_extra_loss(crl_router *r, const float *params, const crl_pool_ws *ws,
                             int n, int B, float *grads) {
    return r->ops->extra_loss ? r->ops->extra_loss(r, params, ws, n, B, grads) : 0.0;
}

int crl_router_set_routes(crl_router *r, const crl_pool_route *train,
                          const crl_pool_route *act, crl_err *err) {
    if (!r->ops->set_routes)
        return crl_errf(err, CRL_EINVAL, "l2m router %s takes no fixed routes",
                        r->ops->name);
    return r->ops->set_routes(r, train, act, err);
}

int crl_router_learn(crl_router *r, const float *q, int n, int label, crl_err *err) {
    return r->ops->learn ? r->ops->learn(r, q, n, label, err) : CRL_OK;
}

size_t crl_router_state_size(const crl_router *r) {
    return r->ops->state_size ? r->ops->state_size(r) : 0;
}

void crl_router_state_save(const crl_router *r, void *dst) {
    if (r->ops->state_save) r->ops->state_save(r, dst);
}

int crl_router_state_load(crl_router *r, const void *src, size_t n, crl_err *err) {
    if (n == 0) return CRL_OK;
    if (!r->ops->state_load)
        return crl_errf(err, CRL_ECORRUPT, "l2m router %s has no state to load",
                        r->ops->name);
    return r->ops->state_load(r, src, n, err);
}
