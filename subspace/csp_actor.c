/* The CSP actor: a crl_subspace behind the actor interface. Rows carry
 * K = cond_dim alpha columns (zero beyond the anchors in use); the forward
 * compacts them to the n anchors in use in its workspace, where they stay
 * for the backward. */
#include "crl/actor.h"
#include "crl/subspace.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    crl_subspace_ws w;
    float *cmp; /* max_batch x K: the rows' alphas over the anchors in use */
} csp_ws;

static crl_subspace *sub_of(crl_actor *a) {
    return a->impl;
}

static int csp_ws_alloc(const crl_actor *a, crl_actor_ws *ws, int max_batch,
                        crl_err *err) {
    csp_ws *w = calloc(1, sizeof *w);
    if (!w) return crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
    w->cmp = calloc((size_t)max_batch * (size_t)a->cond_dim, sizeof(float));
    int rc = w->cmp ? crl_subspace_ws_alloc(&w->w, a->impl, max_batch, err)
                    : crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
    if (rc) {
        free(w->cmp);
        free(w);
        return rc;
    }
    ws->impl = w;
    ws->out = w->w.out;
    return CRL_OK;
}

static void csp_ws_free(crl_actor_ws *ws) {
    csp_ws *w = ws->impl;
    crl_subspace_ws_free(&w->w);
    free(w->cmp);
    free(w);
}

static const float *csp_forward(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                                const crl_actor_rows *rows) {
    crl_subspace *sub = sub_of(a);
    csp_ws *w = ws->impl;
    const int n = sub->n_anchors, K = a->cond_dim;
    for (int i = 0; i < B; i++)
        memcpy(w->cmp + (size_t)i * n,
               rows->cond ? rows->cond + (size_t)i * K : a->act_cond, sizeof(float) * n);
    /* One head is shared by every task (a task is told apart by its alpha). */
    const int *head = sub->spec.n_heads > 1 ? rows->head : NULL;
    return crl_subspace_forward(sub, rows->params ? rows->params : a->params, &w->w, x, B,
                                w->cmp, head);
}

static void csp_backward(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                         int dw_rows) {
    csp_ws *w = ws->impl;
    crl_subspace_backward(sub_of(a), a->params, grads, &w->w, dout, dw_rows, NULL, NULL);
}

static void csp_changed(crl_actor *a) {
    const crl_subspace *sub = sub_of(a);
    /* Trainable anchors are the contiguous block [n_frozen, n_anchors); the
     * shared LayerNorm in front of anchor 0 trains only while nothing is
     * frozen, which is also contiguous with that block. */
    a->tr_lo = sub->n_frozen ? crl_subspace_anchor_offset(sub, sub->n_frozen) : 0;
    a->tr_hi = crl_subspace_n_params(sub);
    if (a->tr_hi < a->tr_lo) a->tr_hi = a->tr_lo;
    a->cond_live = sub->n_anchors;
    /* Acting defaults to the centre of the subspace. */
    memset(a->act_cond, 0, sizeof(float) * (size_t)a->cond_dim);
    for (int i = 0; i < sub->n_anchors; i++) a->act_cond[i] = 1.0f / sub->n_anchors;
}

static void csp_init_params(crl_actor *a, crl_rng *rng) {
    /* Anchor 0 draws exactly what crl_mlp_init_params would. */
    crl_subspace_init_params(sub_of(a), a->params, rng);
    csp_changed(a);
}

/* CSP's default: a flat Dirichlet over the anchors in use. */
static void csp_draw_cond(crl_actor *a, crl_rng *rng, int rows, float *cond) {
    const int n = sub_of(a)->n_anchors, K = a->cond_dim;
    for (int r = 0; r < rows; r++) {
        float *m = cond + (size_t)r * K;
        memset(m, 0, sizeof(float) * K);
        crl_dirichlet_flat(rng, n, m, NULL);
    }
}

/* Forward 2B rows through n anchors, weight gradients of the trainable
 * anchor only, input gradients above the first layer through all n. */
static double csp_update_macs(const crl_actor *a, int B, int obs_dim) {
    const double n = ((const crl_subspace *)a->impl)->n_anchors;
    const double Ma = crl_mlp_macs_per_row(&a->net);
    const double fa = (double)obs_dim * a->net.spec.hidden[0];
    return 2.0 * B * n * Ma + (double)B * Ma + (double)B * n * (Ma - fa);
}

static void csp_ckpt_describe(const crl_actor *a, crl_actor_ckpt *ck) {
    const crl_subspace *sub = a->impl;
    ck->K = (uint32_t)a->cond_dim;
    ck->n_anchors = (uint32_t)sub->n_anchors;
    ck->n_frozen = (uint32_t)sub->n_frozen;
    ck->used = crl_subspace_n_params(sub);
}

static int csp_ckpt_check(const crl_actor *a, const crl_actor_ckpt *ck, crl_err *err) {
    const crl_subspace *sub = a->impl;
    if (ck->K != (uint32_t)a->cond_dim || ck->n_anchors < 1 || ck->n_anchors > ck->K ||
        ck->n_frozen > ck->n_anchors ||
        ck->used != sub->n_shared + (uint64_t)ck->n_anchors * sub->anchor_size)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad subspace header");
    return CRL_OK;
}

static void csp_ckpt_apply(crl_actor *a, const crl_actor_ckpt *ck) {
    crl_subspace *sub = sub_of(a);
    sub->n_anchors = (int)ck->n_anchors;
    sub->n_frozen = (int)ck->n_frozen;
    csp_changed(a);
}

static void csp_destroy(crl_actor *a) {
    free(a->impl);
    free(a->act_cond);
}

static const crl_actor_ops csp_ops = {
    .name = "csp-subspace",
    .ws_alloc = csp_ws_alloc,
    .ws_free = csp_ws_free,
    .forward = csp_forward,
    .backward = csp_backward,
    .init_params = csp_init_params,
    .draw_cond = csp_draw_cond,
    .update_macs = csp_update_macs,
    .changed = csp_changed,
    .ckpt_describe = csp_ckpt_describe,
    .ckpt_check = csp_ckpt_check,
    .ckpt_apply = csp_ckpt_apply,
    .destroy = csp_destroy,
};

int crl__actor_csp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);
int crl__actor_csp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err) {
    int rc = crl_actor_base_init(a, &csp_ops, cfg, err);
    if (rc) return rc;
    crl_subspace *sub = calloc(1, sizeof *sub);
    a->act_cond = calloc(cfg->K > 0 ? (size_t)cfg->K : 1, sizeof(float));
    a->impl = sub;
    if (!sub || !a->act_cond) return crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    if ((rc = crl_subspace_init(sub, &cfg->spec, cfg->K, err))) return rc;
    a->n_params = sub->capacity;
    a->cond_dim = cfg->K;
    csp_changed(a);
    return CRL_OK;
}

crl_subspace *crl_actor_subspace(crl_actor *a) {
    return a && a->ops == &csp_ops ? a->impl : NULL;
}
