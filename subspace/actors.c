/* The actor factory: one table from kind to implementation. It lives here,
 * above nn/ and beside the subspace and the pool, because it knows all
 * three kinds. */
#include "crl/actor.h"

#include <stdlib.h>

int crl__actor_mlp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);
int crl__actor_csp_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);
int crl__actor_l2m_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);

static int (*const create_of[CRL_ACTOR_N_KINDS])(const crl_actor_config *, crl_actor *,
                                                 crl_err *) = {
    [CRL_ACTOR_MLP] = crl__actor_mlp_create,
    [CRL_ACTOR_CSP] = crl__actor_csp_create,
    [CRL_ACTOR_L2M] = crl__actor_l2m_create,
};

int crl_actor_create(const crl_actor_config *cfg, crl_actor **out, crl_err *err) {
    *out = NULL;
    if (!cfg || (unsigned)cfg->kind >= CRL_ACTOR_N_KINDS)
        return crl_errf(err, CRL_EINVAL, "actor: unknown kind");
    crl_actor *a = calloc(1, sizeof *a);
    if (!a) return crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    int rc = create_of[cfg->kind](cfg, a, err);
    if (!rc && !cfg->borrowed) {
        a->params = calloc(a->n_params ? a->n_params : 1, sizeof(float));
        if (!a->params) rc = crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    }
    if (rc) {
        crl_actor_free(a);
        return rc;
    }
    *out = a;
    return CRL_OK;
}
