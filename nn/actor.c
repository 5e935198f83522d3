/* The generic part of the actor interface: dispatch through the kind's
 * table, with the optional operations defaulting to "nothing". */
#include "crl/actor.h"

#include <stdlib.h>
#include <string.h>

int crl_actor_base_init(crl_actor *a, const crl_actor_ops *ops,
                        const crl_actor_config *cfg, crl_err *err) {
    memset(a, 0, sizeof *a);
    a->ops = ops;
    a->cfg = *cfg;
    int rc = crl_mlp_init(&a->net, &cfg->spec, err);
    if (rc) return rc;
    a->cfg.spec = a->net.spec;
    if (cfg->max_act_batch < 1)
        return crl_errf(err, CRL_EINVAL, "actor: max_act_batch %d must be >= 1",
                        cfg->max_act_batch);
    return CRL_OK;
}

void crl_actor_free(crl_actor *a) {
    if (!a) return;
    if (a->ops && a->ops->destroy) a->ops->destroy(a);
    if (!a->cfg.borrowed) free(a->params);
    free(a);
}

int crl_actor_ws_alloc(const crl_actor *a, crl_actor_ws *ws, int max_batch,
                       crl_err *err) {
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1)
        return crl_errf(err, CRL_EINVAL, "actor ws: max_batch %d must be >= 1",
                        max_batch);
    int rc = a->ops->ws_alloc(a, ws, max_batch, err);
    if (rc) return rc;
    ws->max_batch = max_batch;
    return CRL_OK;
}

void crl_actor_ws_free(const crl_actor *a, crl_actor_ws *ws) {
    if (!ws) return;
    if (a && ws->impl) a->ops->ws_free(ws);
    memset(ws, 0, sizeof *ws);
}

const float *crl_actor_forward(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                               const crl_actor_rows *rows) {
    static const crl_actor_rows none = {0};
    ws->out = a->ops->forward(a, ws, x, B, rows ? rows : &none);
    return ws->out;
}

void crl_actor_backward(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                        int dw_rows) {
    a->ops->backward(a, ws, grads, dout, dw_rows);
}

void crl_actor_init_params(crl_actor *a, crl_rng *rng) {
    a->ops->init_params(a, rng);
}

void crl_actor_draw_cond(crl_actor *a, crl_rng *rng, int rows, float *cond) {
    if (a->ops->draw_cond) a->ops->draw_cond(a, rng, rows, cond);
}

double crl_actor_extra_loss(crl_actor *a, const crl_actor_ws *ws, int n, int B,
                            float *grads) {
    return a->ops->extra_loss ? a->ops->extra_loss(a, ws, n, B, grads) : 0.0;
}

void crl_actor_tally(crl_actor *a, const crl_actor_ws *ws) {
    if (a->ops->tally) a->ops->tally(a, ws);
}

double crl_actor_update_macs(const crl_actor *a, int B, int obs_dim) {
    return a->ops->update_macs(a, B, obs_dim);
}

void crl_actor_changed(crl_actor *a) {
    if (a->ops->changed) a->ops->changed(a);
}

void crl_actor_ckpt_describe(const crl_actor *a, crl_actor_ckpt *ck) {
    memset(ck, 0, sizeof *ck);
    ck->kind = a->cfg.kind;
    ck->used = a->n_params;
    ck->n_base = a->n_base;
    ck->n_counts = a->n_counts;
    if (a->ops->ckpt_describe) a->ops->ckpt_describe(a, ck);
}

int crl_actor_ckpt_check(const crl_actor *a, const crl_actor_ckpt *ck, crl_err *err) {
    if (ck->kind != a->cfg.kind)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: plain, CSP and L2M learners do not mix");
    if (ck->n_base != a->n_base || ck->n_counts != a->n_counts)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: the actor's state does not match");
    if (a->ops->ckpt_check) return a->ops->ckpt_check(a, ck, err);
    if (ck->used != a->n_params)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: the actor does not match");
    return CRL_OK;
}

void crl_actor_ckpt_apply(crl_actor *a, const crl_actor_ckpt *ck) {
    if (a->ops->ckpt_apply) a->ops->ckpt_apply(a, ck);
}

void crl_actor_set_act_cond(crl_actor *a, const float *cond) {
    if (a->act_cond) memcpy(a->act_cond, cond, sizeof(float) * (size_t)a->cond_dim);
}

const float *crl_actor_act_cond(const crl_actor *a) {
    return a->act_cond;
}
