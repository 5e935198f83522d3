/* The learner's actor, chosen from its config: the only place that reads the
 * CSP and L2M settings of crl_sac_config (agents/sac.c only sees the actor
 * interface). */
#include "crl/sac.h"

#include <math.h>
#include <string.h>

int crl_sac_actor_config(const crl_sac_config *c, crl_actor_config *ac, crl_err *err) {
    memset(ac, 0, sizeof *ac);
    if (c->l2m_pool < 0) return crl_errf(err, CRL_EINVAL, "sac: --l2m-pool must be >= 1");
    const int K = c->csp_anchors > 0 ? c->csp_anchors : 0;
    if (c->l2m_pool > 0) {
        if (K > 0)
            return crl_errf(err, CRL_EINVAL, "sac: an actor is CSP or L2M, not both");
        if (c->l2m_base_tasks < 1 || c->l2m_head < 0 || c->l2m_head >= c->l2m_base_tasks)
            return crl_errf(err, CRL_EINVAL,
                            "sac: L2M base head %d not in 0..%d (the base's heads)",
                            c->l2m_head, c->l2m_base_tasks - 1);
        if (!isfinite(c->l2m_pull) || c->l2m_pull < 0)
            return crl_errf(err, CRL_EINVAL, "sac: --l2m-pull must be >= 0");
        ac->kind = CRL_ACTOR_L2M;
        ac->M = c->l2m_pool;
        ac->pool_kind = c->l2m_kind;
        ac->rank = c->l2m_rank;
        ac->scale = c->l2m_scale;
        ac->pull = c->l2m_pull;
        ac->head = c->l2m_head;
        ac->router = c->l2m_router;
        ac->n_tasks = c->l2m_tasks;
        ac->weights = c->l2m_weights;
        ac->collect = c->l2m_collect;
        ac->history = c->l2m_history;
        ac->hold = c->l2m_hold;
        ac->soft_k = c->l2m_soft_k;
        ac->soft_temp = c->l2m_soft_temp;
    } else if (K > 0) {
        ac->kind = CRL_ACTOR_CSP;
        ac->K = K;
    } else {
        ac->kind = CRL_ACTOR_MLP;
    }
    /* The CSP actor has one output head, shared by every task: a task is told
     * apart by its alpha alone, so an earlier task's alpha is a usable policy
     * for a new task (with a head per task, every old anchor would hold an
     * untrained head for it). The L2M base keeps its own heads. */
    const int heads = ac->kind == CRL_ACTOR_L2M   ? c->l2m_base_tasks
                      : ac->kind == CRL_ACTOR_CSP ? 1
                                                  : c->n_tasks;
    crl_mlp_spec_cw(&ac->spec, c->obs_dim, 2 * c->act_dim, heads, c->layers, c->hidden);
    ac->max_act_batch = c->max_act_batch;
    return CRL_OK;
}
