/* The plain MLP actor: crl_mlp behind the actor interface. */
#include "crl/actor.h"

#include <stdlib.h>

static int mlp_ws_alloc(const crl_actor *a, crl_actor_ws *ws, int max_batch,
                        crl_err *err) {
    crl_mlp_ws *w = calloc(1, sizeof *w);
    if (!w) return crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
    int rc = crl_mlp_ws_alloc(w, &a->net, max_batch, err);
    if (rc) {
        free(w);
        return rc;
    }
    ws->impl = w;
    ws->out = w->out;
    return CRL_OK;
}

static void mlp_ws_free(crl_actor_ws *ws) {
    crl_mlp_ws_free(ws->impl);
    free(ws->impl);
}

static const float *mlp_forward(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                                const crl_actor_rows *rows) {
    return crl_mlp_forward(&a->net, rows->params ? rows->params : a->params, ws->impl, x,
                           B, rows->head);
}

static void mlp_backward(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                         int dw_rows) {
    crl_mlp_backward(&a->net, a->params, grads, ws->impl, dout, dw_rows, NULL);
}

static void mlp_init_params(crl_actor *a, crl_rng *rng) {
    crl_mlp_init_params(&a->net, a->params, rng);
}

/* Forward 2B rows, weight gradients from B rows and input gradients above
 * the first layer. */
static double mlp_update_macs(const crl_actor *a, int B, int obs_dim) {
    const double Ma = crl_mlp_macs_per_row(&a->net);
    const double fa = (double)obs_dim * a->net.spec.hidden[0];
    return 2.0 * B * Ma + (double)B * Ma + (double)B * (Ma - fa);
}

const crl_actor_ops crl_actor_mlp_ops = {
    .name = "mlp",
    .ws_alloc = mlp_ws_alloc,
    .ws_free = mlp_ws_free,
    .forward = mlp_forward,
    .backward = mlp_backward,
    .init_params = mlp_init_params,
    .update_macs = mlp_update_macs,
};

int crl__actor_mlp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);
int crl__actor_mlp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err) {
    int rc = crl_actor_base_init(a, &crl_actor_mlp_ops, cfg, err);
    if (rc) return rc;
    a->n_params = a->net.n_params;
    a->tr_lo = 0;
    a->tr_hi = a->n_params;
    return CRL_OK;
}
