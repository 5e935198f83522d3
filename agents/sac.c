/* Soft actor-critic, Continual World configuration.
 *
 * Semantics follow Continual World's TF2 SAC: the critic, actor and alpha
 * losses are all computed with the same parameters (one gradient tape), then
 * the three optimisers step, then the targets move.
 *
 * Layout trick: the critic is evaluated on two row blocks stacked into one
 * 2B-row batch, [o, a] (critic loss) and [o, pi(o)] (actor loss). One
 * backward pass carries both losses; only the first B rows feed the critic's
 * weight gradient (crl_mlp_backward's dw_rows), the last B rows give dQ/da for
 * the actor. The actor likewise runs [o; o2] as one 2B-row forward. Bigger
 * GEMMs run closer to the BLAS peak than twice as many small ones. */
#include "crl/sac.h"

#include "core/blob.h"
#include "crl/subspace.h"

#include "core/lanes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct crl_sac {
    crl_sac_config c;
    crl_mlp actor, critic;
    size_t na, nc; /* parameters of the actor, of ONE critic */
    float *mem;    /* every float buffer below, one allocation */
    float *actor_p, *actor_g;
    float *critic_p, *critic_g, *target_p; /* [q1 | q2] */
    float *log_alpha, *log_alpha_g;
    crl_adam opt_actor, opt_critic, opt_alpha;
    /* actor on pi(o) rows [0,B0) and [B0,B), on o2; targets; critics on 2B
     * rows; acting */
    crl_mlp_ws ws_lo, ws_hi, ws_o2, ws_t1, ws_t2, ws_q1, ws_q2, ws_act;
    crl_lanes *lanes;
    /* update scratch */
    float *actor_g2; /* lane 1's share of the actor gradient */
    float *eps, *pi, *logp, *xq, *xt, *y, *dq1, *dq2, *dxq1, *dxq2, *dpi, *dlogp, *dout,
        *alpha_row;
    int *heads2;
    /* critic backward, per lane: the actor-loss rows it keeps, their heads,
     * and its compact dQ/da over those rows */
    int *keep_rows, *keep_heads;
    float *dxc;
    /* acting scratch */
    float *act_out_eps;
    int *act_heads;
    crl_rng rng;     /* update noise and nothing else */
    crl_rng act_rng; /* exploration noise */
    crl_sac_hooks hooks;
    /* CSP (c.csp_anchors = K > 0): the actor is a subspace with room for K
     * anchors and the critics read K alpha columns after [obs, act]. The
     * plain actor spec above still describes one anchor. The CSP actor has
     * one output head, shared by every task: a task is told apart by its
     * alpha alone, so an earlier task's alpha is a usable policy for a new
     * task (with a head per task, every old anchor would hold an untrained
     * head for it). The critics keep a head per task. */
    int K;
    crl_subspace sub;
    crl_subspace_ws sws_lo, sws_hi, sws_o2, sws_act;
    size_t tr_lo, tr_hi; /* the actor entries that train: [tr_lo, tr_hi) */
    float *mix_u;        /* 2B x K: alphas of the pi(o) rows, then the pi(o2) rows */
    float *mix_cmp;      /* 2B x n: the same, compacted to the n anchors in use */
    float *act_mix;      /* K: the alpha crl_sac_act uses */
    float *act_cmp;      /* max_act_batch x n */
    /* L2M (c.l2m_pool = M > 0): the actor spec above is the frozen base's;
     * actor_p is the pool's flat buffer and base_p the base's parameters. */
    int L;
    crl_pool pool;
    crl_pool_ws pws_lo, pws_hi, pws_o2, pws_act;
    float *base_p;
    int64_t *counts; /* M usage counts */
    int *l2m_heads;  /* max(2B, max_act_batch) x c.l2m_head */
    crl_pool_route rt_train, rt_act;
    uintptr_t trk_lo, trk_hi; /* crl_sac_l2m_track: the tracked obs rows */
    int32_t *trk_hist;
};

void crl_sac_config_default(crl_sac_config *c, int obs_dim, int act_dim, int n_tasks) {
    memset(c, 0, sizeof *c);
    c->obs_dim = obs_dim;
    c->act_dim = act_dim;
    c->n_tasks = n_tasks;
    c->hidden = 256;
    c->layers = 4;
    c->lr = 1e-3f;
    c->batch = 128;
    c->gamma = 0.99f;
    c->polyak = 0.995f;
    c->init_log_alpha = 1.0f;
    c->target_entropy = NAN;
    c->buffer_size = 1000000;
    c->start_steps = 10000;
    c->update_after = 1000;
    c->update_every = 50;
    c->max_act_batch = 32;
    c->threads = 1;
}

float crl_sac_target_entropy(const crl_sac_config *c) {
    if (!isnan(c->target_entropy)) return c->target_entropy;
    /* Continual World: the entropy of N(0, 0.089^2) per action dimension. */
    return (float)(c->act_dim * log(0.089 * sqrt(2.0 * M_PI * M_E)));
}

static int check_config(const crl_sac_config *c, crl_err *err) {
    if (c->obs_dim <= 0 || c->act_dim <= 0 || c->n_tasks <= 0)
        return crl_errf(err, CRL_EINVAL,
                        "sac: obs, act and task counts must be positive");
    if (c->hidden <= 0 || c->layers <= 0 || c->layers > CRL_MLP_MAX_HIDDEN)
        return crl_errf(err, CRL_EINVAL,
                        "sac: --layers must be in 1..%d and --hidden > 0",
                        CRL_MLP_MAX_HIDDEN);
    if (c->batch <= 0) return crl_errf(err, CRL_EINVAL, "sac: --batch must be > 0");
    if (!(c->lr > 0) || !isfinite(c->lr))
        return crl_errf(err, CRL_EINVAL, "sac: --lr must be a positive number");
    if (!(c->gamma >= 0 && c->gamma <= 1))
        return crl_errf(err, CRL_EINVAL, "sac: --gamma must be in [0, 1]");
    if (!(c->polyak >= 0 && c->polyak <= 1))
        return crl_errf(err, CRL_EINVAL, "sac: --polyak must be in [0, 1]");
    if (c->buffer_size <= 0)
        return crl_errf(err, CRL_EINVAL, "sac: --buffer-size must be > 0");
    if (c->update_every <= 0)
        return crl_errf(err, CRL_EINVAL, "sac: --update-every must be > 0");
    if (c->start_steps < 0 || c->update_after < 0)
        return crl_errf(err, CRL_EINVAL,
                        "sac: --start-steps and --update-after must be >= 0");
    if (c->threads < 1) return crl_errf(err, CRL_EINVAL, "sac: threads must be >= 1");
    if (c->batch < 2) return crl_errf(err, CRL_EINVAL, "sac: --batch must be >= 2");
    if (c->max_act_batch <= 0)
        return crl_errf(err, CRL_EINVAL, "sac: max_act_batch must be > 0");
    if (c->l2m_pool < 0) return crl_errf(err, CRL_EINVAL, "sac: --l2m-pool must be >= 1");
    if (c->l2m_pool > 0) {
        if (c->csp_anchors > 0)
            return crl_errf(err, CRL_EINVAL, "sac: an actor is CSP or L2M, not both");
        if (c->l2m_base_tasks < 1 || c->l2m_head < 0 || c->l2m_head >= c->l2m_base_tasks)
            return crl_errf(err, CRL_EINVAL,
                            "sac: L2M base head %d not in 0..%d (the base's heads)",
                            c->l2m_head, c->l2m_base_tasks - 1);
        if (!isfinite(c->l2m_pull) || c->l2m_pull < 0)
            return crl_errf(err, CRL_EINVAL, "sac: --l2m-pull must be >= 0");
    }
    return CRL_OK;
}

int crl_sac_create(const crl_sac_config *c, uint64_t seed, crl_sac **out, crl_err *err) {
    *out = NULL;
    int rc = check_config(c, err);
    if (rc) return rc;
    crl_sac *s = calloc(1, sizeof *s);
    if (!s) return crl_errf(err, CRL_ENOMEM, "sac: out of memory");
    s->c = *c;
    const int O = c->obs_dim, A = c->act_dim, B = c->batch, T = c->n_tasks;
    const int K = c->csp_anchors > 0 ? c->csp_anchors : 0;
    const int Q = O + A + K;
    s->K = K;
    s->L = c->l2m_pool > 0 ? c->l2m_pool : 0;

    crl_mlp_spec as, cs;
    crl_mlp_spec_cw(&as, O, 2 * A,
                    s->L ? c->l2m_base_tasks
                    : K  ? 1
                         : T,
                    c->layers, c->hidden);
    crl_mlp_spec_cw(&cs, Q, 1, T, c->layers, c->hidden);
    if ((rc = crl_mlp_init(&s->actor, &as, err)) ||
        (rc = crl_mlp_init(&s->critic, &cs, err)))
        goto fail;
    s->na = s->actor.n_params;
    s->nc = s->critic.n_params;
    if (K) {
        if ((rc = crl_subspace_init(&s->sub, &as, K, err))) goto fail;
        s->na = s->sub.capacity;
    }
    if (s->L) {
        if ((rc = crl_pool_init(&s->pool, &s->actor, (crl_pool_kind)c->l2m_kind, s->L,
                                c->l2m_rank, c->l2m_scale, err)))
            goto fail;
        s->na = s->pool.n_params;
        const size_t nh = (size_t)(2 * B > c->max_act_batch ? 2 * B : c->max_act_batch);
        s->base_p = calloc(s->actor.n_params, sizeof(float));
        s->counts = calloc((size_t)s->L, sizeof(int64_t));
        s->l2m_heads = calloc(nh, sizeof(int));
        if (!s->base_p || !s->counts || !s->l2m_heads) {
            rc = crl_errf(err, CRL_ENOMEM, "sac: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < nh; i++) s->l2m_heads[i] = c->l2m_head;
        if ((rc = crl_pool_ws_alloc(&s->pws_lo, &s->pool, B / 2 > 0 ? B / 2 : 1, err)) ||
            (rc = crl_pool_ws_alloc(&s->pws_hi, &s->pool, B - B / 2, err)) ||
            (rc = crl_pool_ws_alloc(&s->pws_o2, &s->pool, B, err)) ||
            (rc = crl_pool_ws_alloc(&s->pws_act, &s->pool, c->max_act_batch, err)))
            goto fail;
    }

    const size_t B2 = 2 * (size_t)B;
    size_t nf = 2 * s->na + 6 * s->nc + 2 * (size_t)T;
    nf += s->na + B2 * A + B2 * A + B2 + B2 * Q + (size_t)B * Q + B + B2 + B2 +
          2 * (size_t)B * A + (size_t)B * A + B + (size_t)B * 2 * A + B;
    nf += 2 * (size_t)B * A;
    nf += (size_t)c->max_act_batch * A;
    nf += 4 * B2 * K + (size_t)K + (size_t)c->max_act_batch * K;
    s->mem = calloc(nf, sizeof(float));
    s->heads2 = calloc(B2 + 2 * B2 + 2 * (size_t)B, sizeof(int));
    s->act_heads = calloc((size_t)c->max_act_batch, sizeof(int));
    if (!s->mem || !s->heads2 || !s->act_heads) {
        rc = crl_errf(err, CRL_ENOMEM, "sac: out of memory");
        goto fail;
    }
    float *p = s->mem;
#define TAKE(ptr, n) (ptr = p, p += (n))
    TAKE(s->actor_p, s->na);
    TAKE(s->actor_g, s->na);
    TAKE(s->critic_p, 2 * s->nc);
    TAKE(s->critic_g, 2 * s->nc);
    TAKE(s->target_p, 2 * s->nc);
    TAKE(s->log_alpha, T);
    TAKE(s->log_alpha_g, T);
    TAKE(s->actor_g2, s->na);
    TAKE(s->eps, B2 * A);
    TAKE(s->pi, B2 * A);
    TAKE(s->logp, B2);
    TAKE(s->xq, B2 * Q);
    TAKE(s->xt, (size_t)B * Q);
    TAKE(s->y, B);
    TAKE(s->dq1, B2);
    TAKE(s->dq2, B2);
    TAKE(s->dxq1, (size_t)B * A);
    TAKE(s->dxq2, (size_t)B * A);
    TAKE(s->dpi, (size_t)B * A);
    TAKE(s->dxc, 2 * (size_t)B * A);
    TAKE(s->dlogp, B);
    TAKE(s->dout, (size_t)B * 2 * A);
    TAKE(s->alpha_row, B);
    TAKE(s->act_out_eps, (size_t)c->max_act_batch * A);
    TAKE(s->mix_u, 2 * B2 * K);
    TAKE(s->mix_cmp, 2 * B2 * K);
    TAKE(s->act_mix, (size_t)K);
    TAKE(s->act_cmp, (size_t)c->max_act_batch * K);
#undef TAKE
    s->keep_heads = s->heads2 + B2;
    s->keep_rows = s->keep_heads + 2 * B2;

    if (K ? ((rc = crl_subspace_ws_alloc(&s->sws_lo, &s->sub, B / 2 > 0 ? B / 2 : 1,
                                         err)) ||
             (rc = crl_subspace_ws_alloc(&s->sws_hi, &s->sub, B - B / 2, err)) ||
             (rc = crl_subspace_ws_alloc(&s->sws_o2, &s->sub, B, err)) ||
             (rc = crl_subspace_ws_alloc(&s->sws_act, &s->sub, c->max_act_batch, err)))
          : !s->L &&
                ((rc = crl_mlp_ws_alloc(&s->ws_lo, &s->actor, B / 2 > 0 ? B / 2 : 1,
                                        err)) ||
                 (rc = crl_mlp_ws_alloc(&s->ws_hi, &s->actor, B - B / 2, err)) ||
                 (rc = crl_mlp_ws_alloc(&s->ws_o2, &s->actor, B, err)) ||
                 (rc = crl_mlp_ws_alloc(&s->ws_act, &s->actor, c->max_act_batch, err))))
        goto fail;
    if ((rc = crl_mlp_ws_alloc(&s->ws_t1, &s->critic, B, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_t2, &s->critic, B, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_q1, &s->critic, (int)B2, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_q2, &s->critic, (int)B2, err)) ||
        (rc = crl_adam_init(&s->opt_actor, s->na, c->lr, err)) ||
        (rc = crl_adam_init(&s->opt_critic, 2 * s->nc, c->lr, err)) ||
        (rc = crl_adam_init(&s->opt_alpha, (size_t)T, c->lr, err)) ||
        (rc = crl_lanes_create(c->threads, &s->lanes, err)))
        goto fail;

    /* Separate streams so that, e.g., changing the eval schedule does not
     * change the update noise. */
    crl_rng init;
    crl_rng_seed_stream(&init, seed, 1);
    if (K) {
        /* Anchor 0 draws exactly what crl_mlp_init_params would. */
        crl_subspace_init_params(&s->sub, s->actor_p, &init);
        crl_sac_subspace_changed(s);
    } else if (s->L) {
        crl_pool_init_params(&s->pool, s->actor_p, &init);
        s->tr_lo = 0;
        s->tr_hi = s->na;
    } else {
        crl_mlp_init_params(&s->actor, s->actor_p, &init);
        s->tr_lo = 0;
        s->tr_hi = s->na;
    }
    crl_mlp_init_params(&s->critic, s->critic_p, &init);
    crl_mlp_init_params(&s->critic, s->critic_p + s->nc, &init);
    memcpy(s->target_p, s->critic_p, 2 * s->nc * sizeof(float));
    for (int t = 0; t < T; t++) s->log_alpha[t] = c->init_log_alpha;
    crl_rng_seed_stream(&s->rng, seed, 2);
    crl_rng_seed_stream(&s->act_rng, seed, 3);
    *out = s;
    return CRL_OK;
fail:
    crl_sac_free(s);
    return rc;
}

void crl_sac_free(crl_sac *s) {
    if (!s) return;
    crl_lanes_free(s->lanes);
    crl_mlp_ws_free(&s->ws_lo);
    crl_mlp_ws_free(&s->ws_hi);
    crl_mlp_ws_free(&s->ws_o2);
    crl_mlp_ws_free(&s->ws_t1);
    crl_mlp_ws_free(&s->ws_t2);
    crl_mlp_ws_free(&s->ws_q1);
    crl_mlp_ws_free(&s->ws_q2);
    crl_mlp_ws_free(&s->ws_act);
    crl_subspace_ws_free(&s->sws_lo);
    crl_subspace_ws_free(&s->sws_hi);
    crl_subspace_ws_free(&s->sws_o2);
    crl_subspace_ws_free(&s->sws_act);
    crl_pool_ws_free(&s->pws_lo);
    crl_pool_ws_free(&s->pws_hi);
    crl_pool_ws_free(&s->pws_o2);
    crl_pool_ws_free(&s->pws_act);
    free(s->base_p);
    free(s->counts);
    free(s->l2m_heads);
    crl_adam_free(&s->opt_actor);
    crl_adam_free(&s->opt_critic);
    crl_adam_free(&s->opt_alpha);
    free(s->mem);
    free(s->heads2);
    free(s->act_heads);
    free(s);
}

const crl_sac_config *crl_sac_get_config(const crl_sac *s) {
    return &s->c;
}
void crl_sac_set_hooks(crl_sac *s, const crl_sac_hooks *h) {
    if (h)
        s->hooks = *h;
    else
        memset(&s->hooks, 0, sizeof s->hooks);
}
const crl_mlp *crl_sac_actor(const crl_sac *s) {
    return &s->actor;
}
const crl_mlp *crl_sac_critic(const crl_sac *s) {
    return &s->critic;
}
float *crl_sac_actor_params(crl_sac *s) {
    return s->actor_p;
}
float *crl_sac_critic_params(crl_sac *s, int which) {
    return which < 2 ? s->critic_p + (size_t)which * s->nc
                     : s->target_p + (size_t)(which - 2) * s->nc;
}
float *crl_sac_log_alpha(crl_sac *s) {
    return s->log_alpha;
}
void crl_sac_grads(crl_sac *s, float **actor, float **critics, float **log_alpha) {
    if (actor) *actor = s->actor_g;
    if (critics) *critics = s->critic_g;
    if (log_alpha) *log_alpha = s->log_alpha_g;
}

/* The train (act = 0) or act route, with the learner's counts and, for an
 * oracle act route, the acting task. */
static crl_pool_route l2m_route(const crl_sac *s, int act, int task) {
    crl_pool_route r = act ? s->rt_act : s->rt_train;
    r.counts = s->counts;
    if (act && r.mode == CRL_POOL_ROUTE_ORACLE) r.task = task;
    return r;
}

/* L2M acting: the modulated base on B rows, and the tally of
 * crl_sac_l2m_track. An oracle task outside the route's slices falls back
 * to plain cosine routing. */
static const float *l2m_act(crl_sac *s, int B, const float *obs, int task) {
    crl_pool_route r = l2m_route(s, 1, task);
    if (r.mode == CRL_POOL_ROUTE_ORACLE && (task < 0 || task >= r.n_tasks))
        r.mode = CRL_POOL_ROUTE_COS;
    crl_pool_forward(&s->pool, s->base_p, s->actor_p, &s->pws_act, obs, B, s->l2m_heads,
                     &r, NULL);
    const uintptr_t o = (uintptr_t)obs, row = sizeof(float) * (size_t)s->c.obs_dim;
    if (s->trk_hist && o >= s->trk_lo && o < s->trk_hi && (o - s->trk_lo) % row == 0) {
        const size_t r0 = (o - s->trk_lo) / row, rows = (s->trk_hi - s->trk_lo) / row;
        for (size_t i = 0; i < (size_t)B && r0 + i < rows; i++)
            s->trk_hist[(r0 + i) * (size_t)s->L + (size_t)s->pws_act.sel[i]]++;
    }
    return s->pws_act.out;
}

void crl_sac_act(crl_sac *s, int B, const float *obs, int task, int deterministic,
                 crl_rng *rng, float *act) {
    const int A = s->c.act_dim;
    if (B > s->c.max_act_batch) B = s->c.max_act_batch;
    for (int i = 0; i < B; i++) s->act_heads[i] = task;
    const float *out;
    if (s->L) {
        out = l2m_act(s, B, obs, task);
    } else if (s->K) {
        const int n = s->sub.n_anchors;
        for (int i = 0; i < B; i++)
            memcpy(s->act_cmp + (size_t)i * n, s->act_mix, sizeof(float) * n);
        out = crl_subspace_forward(&s->sub, s->actor_p, &s->sws_act, obs, B, s->act_cmp,
                                   NULL);
    } else {
        out = crl_mlp_forward(&s->actor, s->actor_p, &s->ws_act, obs, B, s->act_heads);
    }
    if (deterministic) {
        crl_tgauss_forward(B, A, out, NULL, act, NULL);
        return;
    }
    if (!rng) rng = &s->act_rng;
    for (int i = 0; i < B * A; i++) s->act_out_eps[i] = (float)crl_rng_normal(rng);
    crl_tgauss_forward(B, A, out, s->act_out_eps, act, NULL);
}

/* Build rows [obs_i, act_i] of the critic input, and for CSP the K alpha
 * columns [obs_i, act_i, mix_i] (mix rows of K floats). */
static void cat_rows(int B, int O, int A, int K, const float *obs, const float *act,
                     const float *mix, float *x) {
    const int Q = O + A + K;
    for (int i = 0; i < B; i++) {
        memcpy(x + (size_t)i * Q, obs + (size_t)i * O, sizeof(float) * O);
        memcpy(x + (size_t)i * Q + O, act + (size_t)i * A, sizeof(float) * A);
        if (K) memcpy(x + (size_t)i * Q + O + A, mix + (size_t)i * K, sizeof(float) * K);
    }
}

/* ---- the actor, plain or a CSP subspace --------------------------------------
 * Workspaces by role: 0 = pi(o) rows [0,B0), 1 = pi(o) rows [B0,B), 2 = pi(o2).
 * mix: rows x K alphas (CSP only), compacted into cmp (rows x n), which must
 * stay alive until the backward of the same role. */
static const float *actor_fwd(crl_sac *s, int role, const float *x, int rows,
                              const int *heads, const float *mix, float *cmp) {
    if (s->L) {
        crl_pool_ws *ws = role == 0 ? &s->pws_lo : role == 1 ? &s->pws_hi : &s->pws_o2;
        const crl_pool_route r = l2m_route(s, 0, 0);
        crl_pool_forward(&s->pool, s->base_p, s->actor_p, ws, x, rows, s->l2m_heads, &r,
                         NULL);
        return ws->out;
    }
    if (!s->K) {
        crl_mlp_ws *ws = role == 0 ? &s->ws_lo : role == 1 ? &s->ws_hi : &s->ws_o2;
        return crl_mlp_forward(&s->actor, s->actor_p, ws, x, rows, heads);
    }
    const int n = s->sub.n_anchors, K = s->K;
    for (int i = 0; i < rows; i++)
        memcpy(cmp + (size_t)i * n, mix + (size_t)i * K, sizeof(float) * n);
    crl_subspace_ws *ws = role == 0 ? &s->sws_lo : role == 1 ? &s->sws_hi : &s->sws_o2;
    return crl_subspace_forward(&s->sub, s->actor_p, ws, x, rows, cmp, NULL);
}

static const float *actor_out(const crl_sac *s, int role) {
    if (s->L)
        return role == 0 ? s->pws_lo.out : role == 1 ? s->pws_hi.out : s->pws_o2.out;
    if (!s->K) return role == 0 ? s->ws_lo.out : role == 1 ? s->ws_hi.out : s->ws_o2.out;
    return role == 0 ? s->sws_lo.out : role == 1 ? s->sws_hi.out : s->sws_o2.out;
}

/* Weight gradients of the last forward of a role, accumulated into g. */
static void actor_bwd(crl_sac *s, int role, float *g, const float *dout, int rows) {
    if (s->L)
        crl_pool_backward(&s->pool, s->base_p, s->actor_p, g,
                          role == 0 ? &s->pws_lo : &s->pws_hi, dout);
    else if (!s->K)
        crl_mlp_backward(&s->actor, s->actor_p, g, role == 0 ? &s->ws_lo : &s->ws_hi,
                         dout, rows, NULL);
    else
        crl_subspace_backward(&s->sub, s->actor_p, g, role == 0 ? &s->sws_lo : &s->sws_hi,
                              dout, rows, NULL, NULL);
}

/* ---- the update, in phases run on two lanes ---------------------------------
 * Each phase gives lane 0 and lane 1 equal, independent work; a phase ends
 * when both lanes are done. The arithmetic does not depend on the number of
 * lanes (with one lane the two halves run one after the other), so results
 * are identical for any thread count. Rows of pi(o) are split in two halves,
 * lo = [0, B0) and hi = [B0, B), each with its own actor workspace, so that
 * the actor backward also splits over the lanes. */

enum { PH_ACTOR, PH_CRITIC_FWD, PH_CRITIC_BWD, PH_ACTOR_BWD, PH_SUM, PH_APPLY };

typedef struct {
    crl_sac *s;
    const crl_batch *b;
    const float *eps;
    int phase;
    int finite[2]; /* gradients of each lane's half are finite */
    double q_loss, pi_loss, logp_sum, q_sum, alpha_sum, alpha_loss;
    double pull[2]; /* L2M: each lane's share of the key pull term */
} update_ctx;

static void phase(void *vctx, int lane) {
    update_ctx *u = vctx;
    crl_sac *s = u->s;
    const crl_batch *b = u->b;
    const int O = s->c.obs_dim, A = s->c.act_dim, B = b->B, K = s->K, Q = O + A + K;
    const int B0 = B / 2, B1 = B - B0;
    const float invB = 1.0f / (float)B;
    const size_t nc = s->nc;

    switch (u->phase) {
    case PH_ACTOR:
        if (lane == 0) { /* pi(o) on both halves, then the critic input rows */
            const float *lo = actor_fwd(s, 0, b->obs, B0, b->task, s->mix_u, s->mix_cmp);
            crl_tgauss_forward(B0, A, lo, u->eps, s->pi, s->logp);
            const float *hi =
                actor_fwd(s, 1, b->obs + (size_t)B0 * O, B1, b->task + B0,
                          s->mix_u + (size_t)B0 * K, s->mix_cmp + (size_t)B0 * K);
            crl_tgauss_forward(B1, A, hi, u->eps + (size_t)B0 * A, s->pi + (size_t)B0 * A,
                               s->logp + B0);
            cat_rows(B, O, A, K, b->obs, b->act, b->mix, s->xq);
            cat_rows(B, O, A, K, b->obs, s->pi, s->mix_u, s->xq + (size_t)B * Q);
            for (int i = 0; i < B; i++) s->heads2[i] = s->heads2[B + i] = b->task[i];
        } else { /* pi(o2) and the target input rows */
            const float *o2 =
                actor_fwd(s, 2, b->obs2, B, b->task, s->mix_u + (size_t)B * K,
                          s->mix_cmp + (size_t)B * K);
            crl_tgauss_forward(B, A, o2, u->eps + (size_t)B * A, s->pi + (size_t)B * A,
                               s->logp + B);
            cat_rows(B, O, A, K, b->obs2, s->pi + (size_t)B * A, s->mix_u + (size_t)B * K,
                     s->xt);
        }
        break;
    case PH_CRITIC_FWD:
        /* This lane's target critic on [o2, pi(o2)], then its critic on the
         * 2B rows [o, a; o, pi(o)]. The Bellman target, which needs both
         * target critics, is formed at the start of the next phase. */
        crl_mlp_forward(&s->critic, s->target_p + (size_t)lane * nc,
                        lane ? &s->ws_t2 : &s->ws_t1, s->xt, B, b->task);
        crl_mlp_forward(&s->critic, s->critic_p + (size_t)lane * nc,
                        lane ? &s->ws_q2 : &s->ws_q1, s->xq, 2 * B, s->heads2);
        break;
    case PH_CRITIC_BWD: {
        /* Rows [0,B): value loss 0.5 mean (q - y)^2 for this critic. Rows
         * [B,2B): pi loss = mean(alpha logp - min(q1, q2)), whose gradient
         * goes to the smaller critic. */
        const float *q = lane ? s->ws_q2.out : s->ws_q1.out;
        const float *q1 = s->ws_q1.out, *q2 = s->ws_q2.out;
        float *dq = lane ? s->dq2 : s->dq1;
        int *rows = s->keep_rows + (size_t)lane * B;
        int m = 0;
        const float gamma = s->c.gamma;
        const float *t1 = s->ws_t1.out, *t2 = s->ws_t2.out;
        for (int i = 0; i < B; i++) {
            /* The Bellman target; both lanes form it, lane 0 keeps it. */
            float qt = t1[i] < t2[i] ? t1[i] : t2[i];
            float y = b->rew[i] + gamma * (1.0f - b->done[i]) *
                                      (qt - s->alpha_row[i] * s->logp[B + i]);
            if (lane == 0) s->y[i] = y;
            dq[i] = (q[i] - y) * invB;
            int first = q1[B + i] <= q2[B + i];
            if (first == (lane == 0)) rows[m++] = B + i;
        }
        for (int k = 0; k < m; k++) dq[B + k] = -invB;
        if (lane == 0) {
            double ql = 0, pl = 0, lp = 0, qs = 0, as = 0;
            for (int i = 0; i < B; i++) {
                double e1 = q1[i] - s->y[i], e2 = q2[i] - s->y[i];
                ql += 0.5 * (e1 * e1 + e2 * e2);
                float qm = q1[B + i] <= q2[B + i] ? q1[B + i] : q2[B + i];
                pl += (double)s->alpha_row[i] * s->logp[i] - qm;
                lp += s->logp[i];
                qs += q1[i];
                as += s->alpha_row[i];
            }
            u->q_loss = ql;
            u->pi_loss = pl;
            u->logp_sum = lp;
            u->q_sum = qs;
            u->alpha_sum = as;
        }
        float *g = s->critic_g + (size_t)lane * nc;
        memset(g, 0, sizeof(float) * nc);
        /* The actor-loss rows where the other critic is the smaller one carry
         * no gradient here: drop them (about B/2 of the 2B rows), then take
         * dQ/da of the kept ones, columns [O, O+A), and scatter it back. */
        crl_mlp_ws *ws = lane ? &s->ws_q2 : &s->ws_q1;
        crl_mlp_ws_keep_rows(&s->critic, ws, B, rows, m,
                             s->keep_heads + (size_t)lane * 2 * B);
        float *dxc = s->dxc + (size_t)lane * B * A;
        crl_mlp_backward_dx_block(&s->critic, s->critic_p + (size_t)lane * nc, g, ws, dq,
                                  B, dxc, B, O, A);
        float *dx = lane ? s->dxq2 : s->dxq1;
        memset(dx, 0, sizeof(float) * (size_t)B * A);
        for (int k = 0; k < m; k++)
            memcpy(dx + (size_t)(rows[k] - B) * A, dxc + (size_t)k * A,
                   sizeof(float) * A);
        break;
    }
    case PH_ACTOR_BWD: {
        /* dL/dpi from both critics' action inputs, dL/dlogp = alpha / B, on
         * this lane's half of the pi(o) rows. */
        int r0 = lane ? B0 : 0, n = lane ? B1 : B0;
        for (int i = r0; i < r0 + n; i++) {
            const float *g1 = s->dxq1 + (size_t)i * A;
            const float *g2 = s->dxq2 + (size_t)i * A;
            for (int j = 0; j < A; j++) s->dpi[(size_t)i * A + j] = g1[j] + g2[j];
            s->dlogp[i] = s->alpha_row[i] * invB;
        }
        float *dout = s->dout + (size_t)r0 * 2 * A;
        crl_tgauss_backward(n, A, actor_out(s, lane), u->eps + (size_t)r0 * A,
                            s->dpi + (size_t)r0 * A, s->dlogp + r0, dout);
        float *g = lane ? s->actor_g2 : s->actor_g;
        memset(g + s->tr_lo, 0, sizeof(float) * (s->tr_hi - s->tr_lo));
        actor_bwd(s, lane, g, dout, n);
        /* L2M: the key pull term over all B pi(o) rows, as this lane's n/B
         * share of the mean; its gradient lands in the keys block only. */
        if (s->L)
            u->pull[lane] =
                crl_pool_pull(&s->pool, s->actor_p, lane ? &s->pws_hi : &s->pws_lo,
                              s->c.l2m_pull * (float)n / (float)B, g);
        break;
    }
    case PH_SUM: { /* actor_g += actor_g2 and the finiteness checks, by halves */
        size_t h = s->tr_lo + (s->tr_hi - s->tr_lo) / 2;
        size_t lo = lane ? h : s->tr_lo, hi = lane ? s->tr_hi : h;
        for (size_t i = lo; i < hi; i++) s->actor_g[i] += s->actor_g2[i];
        u->finite[lane] = crl_all_finite(s->actor_g + lo, hi - lo) &&
                          crl_all_finite(s->critic_g + (size_t)lane * nc, nc);
        break;
    }
    case PH_APPLY: {
        /* Balance: Adam costs about 1 unit per entry and Polyak 0.5. Lane 0
         * takes the actor, alpha and critic entries [0, r); lane 1 the
         * critic entries [r, 2nc). */
        size_t n2 = 2 * nc, ntr = s->tr_hi - s->tr_lo;
        size_t r = nc > ntr / 3 ? nc - ntr / 3 : 0;
        if (lane == 0) {
            crl_adam_step_range(&s->opt_actor, s->actor_p, s->actor_g,
                                s->hooks.actor_trainable, s->tr_lo, s->tr_hi);
            crl_adam_step_range(&s->opt_alpha, s->log_alpha, s->log_alpha_g, NULL, 0,
                                (size_t)s->c.n_tasks);
            crl_adam_step_range(&s->opt_critic, s->critic_p, s->critic_g, NULL, 0, r);
            crl_polyak(s->target_p, s->critic_p, r, s->c.polyak);
        } else {
            crl_adam_step_range(&s->opt_critic, s->critic_p, s->critic_g, NULL, r, n2);
            crl_polyak(s->target_p + r, s->critic_p + r, n2 - r, s->c.polyak);
        }
        break;
    }
    }
}

static void run_phase(update_ctx *u, int ph) {
    u->phase = ph;
    crl_lanes_run(u->s->lanes, phase, u);
}

int crl_sac_compute_grads(crl_sac *s, const crl_batch *b, const float *eps,
                          crl_sac_stats *st) {
    const int B = b->B;
    const float H = crl_sac_target_entropy(&s->c);
    const float invB = 1.0f / (float)B;
    update_ctx u = {.s = s, .b = b, .eps = eps};
    for (int i = 0; i < B; i++) s->alpha_row[i] = expf(s->log_alpha[b->task[i]]);
    run_phase(&u, PH_ACTOR);
    run_phase(&u, PH_CRITIC_FWD);
    run_phase(&u, PH_CRITIC_BWD);
    run_phase(&u, PH_ACTOR_BWD);
    run_phase(&u, PH_SUM);
    double penalty = 0;
    if (s->hooks.actor_penalty)
        penalty = s->hooks.actor_penalty(s->hooks.ctx, s->actor_p, s->actor_g, s->na);
    if (s->L) penalty += u.pull[0] + u.pull[1];

    /* alpha loss = -mean(log_alpha[task] * (logp + H)), logp held fixed. */
    double alpha_loss = 0;
    memset(s->log_alpha_g, 0, sizeof(float) * (size_t)s->c.n_tasks);
    for (int i = 0; i < B; i++) {
        double t = (double)s->logp[i] + H;
        alpha_loss -= s->log_alpha[b->task[i]] * t;
        s->log_alpha_g[b->task[i]] -= (float)(t * invB);
    }
    if (st) {
        st->q_loss = u.q_loss / B;
        st->pi_loss = u.pi_loss / B + penalty;
        st->alpha_loss = alpha_loss / B;
        st->penalty = penalty;
        st->alpha = u.alpha_sum / B;
        st->logp = u.logp_sum / B;
        st->q_mean = u.q_sum / B;
    }
    int finite = u.finite[0] && u.finite[1] &&
                 crl_all_finite(s->log_alpha_g, (size_t)s->c.n_tasks);
    /* A penalty hook wrote into the actor gradient after the lanes checked it. */
    if (s->hooks.actor_penalty) finite = finite && crl_all_finite(s->actor_g, s->na);
    if (!isfinite(u.q_loss) || !isfinite(u.pi_loss) || !isfinite(alpha_loss) ||
        !isfinite(penalty) || !finite)
        return CRL_ENAN;
    return CRL_OK;
}

/* CSP: one alpha per row of pi(o) and pi(o2), from the method's collection
 * distribution (hooks.draw_mix), else flat over the anchors in use. */
static void draw_update_mix(crl_sac *s, int rows) {
    const int n = s->sub.n_anchors, K = s->K;
    if (s->hooks.draw_mix) {
        s->hooks.draw_mix(s->hooks.ctx, &s->rng, rows, n, s->mix_u);
        return;
    }
    for (int r = 0; r < rows; r++) {
        float *m = s->mix_u + (size_t)r * K;
        memset(m, 0, sizeof(float) * K);
        crl_dirichlet_flat(&s->rng, n, m, NULL);
    }
}

int crl_sac_update(crl_sac *s, const crl_batch *b, crl_sac_stats *st, crl_err *err) {
    const int A = s->c.act_dim;
    if (b->B != s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: batch of %d rows, configured %d", b->B,
                        s->c.batch);
    if (s->K && b->mix_dim != s->K)
        return crl_errf(err, CRL_EINVAL, "sac: CSP batch needs %d alpha columns, has %d",
                        s->K, b->mix_dim);
    for (int i = 0; i < 2 * b->B * A; i++) s->eps[i] = (float)crl_rng_normal(&s->rng);
    if (s->K) draw_update_mix(s, 2 * b->B);
    crl_sac_stats local;
    if (!st) st = &local;
    int rc = crl_sac_compute_grads(s, b, s->eps, st);
    if (rc == CRL_ENAN)
        return crl_errf(err, CRL_ENAN,
                        "sac: non-finite loss or gradient (q_loss %g, pi_loss %g); "
                        "nothing applied",
                        st->q_loss, st->pi_loss);
    if (s->L) { /* usage counts: the routing of the actor-loss rows */
        crl_pool_count(&s->pool, &s->pws_lo, s->counts);
        crl_pool_count(&s->pool, &s->pws_hi, s->counts);
    }
    crl_adam_tick(&s->opt_critic);
    crl_adam_tick(&s->opt_actor);
    crl_adam_tick(&s->opt_alpha);
    update_ctx u = {.s = s, .b = b, .eps = s->eps};
    run_phase(&u, PH_APPLY);
    return CRL_OK;
}

void crl_sac_reset_optimizers(crl_sac *s) {
    crl_adam_reset(&s->opt_actor);
    crl_adam_reset(&s->opt_critic);
    crl_adam_reset(&s->opt_alpha);
}

/* ---- CSP access ------------------------------------------------------------- */

crl_subspace *crl_sac_subspace(crl_sac *s) {
    return s->K ? &s->sub : NULL;
}

size_t crl_sac_actor_size(const crl_sac *s) {
    return s->na;
}

void crl_sac_subspace_changed(crl_sac *s) {
    if (!s->K) return;
    /* Trainable anchors are the contiguous block [n_frozen, n_anchors); the
     * shared LayerNorm in front of anchor 0 trains only while nothing is
     * frozen, which is also contiguous with that block. */
    s->tr_lo = s->sub.n_frozen ? crl_subspace_anchor_offset(&s->sub, s->sub.n_frozen) : 0;
    s->tr_hi = crl_subspace_n_params(&s->sub);
    if (s->tr_hi < s->tr_lo) s->tr_hi = s->tr_lo;
    /* Acting defaults to the centre of the subspace. */
    memset(s->act_mix, 0, sizeof(float) * (size_t)s->K);
    for (int i = 0; i < s->sub.n_anchors; i++) s->act_mix[i] = 1.0f / s->sub.n_anchors;
}

void crl_sac_set_act_mix(crl_sac *s, const float *mix) {
    if (s->K) memcpy(s->act_mix, mix, sizeof(float) * (size_t)s->K);
}

const float *crl_sac_act_mix(const crl_sac *s) {
    return s->K ? s->act_mix : NULL;
}

float *crl_sac_update_mix(crl_sac *s) {
    return s->K ? s->mix_u : NULL;
}

void crl_sac_reset_critics(crl_sac *s, uint64_t seed) {
    crl_rng init;
    crl_rng_seed_stream(&init, seed, 4);
    crl_mlp_init_params(&s->critic, s->critic_p, &init);
    crl_mlp_init_params(&s->critic, s->critic_p + s->nc, &init);
    memcpy(s->target_p, s->critic_p, 2 * s->nc * sizeof(float));
    crl_adam_reset(&s->opt_critic);
}

int crl_sac_score_mix(crl_sac *s, const float *obs, int B, int task, int n_mix,
                      const float *mixes, double *scores, crl_err *err) {
    if (!s->K) return crl_errf(err, CRL_EINVAL, "sac: not a CSP learner");
    if (B < 1 || B > s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: score batch %d outside 1..%d", B,
                        s->c.batch);
    const int O = s->c.obs_dim, A = s->c.act_dim, K = s->K, n = s->sub.n_anchors;
    for (int i = 0; i < B; i++) s->heads2[i] = task;
    for (int m = 0; m < n_mix; m++) {
        const float *mix = mixes + (size_t)m * K;
        for (int i = 0; i < B; i++) {
            memcpy(s->mix_cmp + (size_t)i * n, mix, sizeof(float) * n);
            memcpy(s->mix_u + (size_t)i * K, mix, sizeof(float) * K);
        }
        const float *out = crl_subspace_forward(&s->sub, s->actor_p, &s->sws_o2, obs, B,
                                                s->mix_cmp, NULL);
        crl_tgauss_forward(B, A, out, NULL, s->pi, NULL);
        cat_rows(B, O, A, K, obs, s->pi, s->mix_u, s->xt);
        const float *q =
            crl_mlp_forward(&s->critic, s->critic_p, &s->ws_t1, s->xt, B, s->heads2);
        double sum = 0;
        for (int i = 0; i < B; i++) sum += q[i];
        scores[m] = sum / B;
    }
    return CRL_OK;
}

/* ---- L2M access ---------------------------------------------------------------- */

const crl_pool *crl_sac_pool(const crl_sac *s) {
    return s->L ? &s->pool : NULL;
}

float *crl_sac_l2m_base(crl_sac *s) {
    return s->L ? s->base_p : NULL;
}

int64_t *crl_sac_l2m_counts(crl_sac *s) {
    return s->L ? s->counts : NULL;
}

int crl_sac_l2m_set_route(crl_sac *s, const crl_pool_route *train,
                          const crl_pool_route *act, crl_err *err) {
    if (!s->L) return crl_errf(err, CRL_EINVAL, "sac: not an L2M learner");
    crl_pool_route t = *train, a = *act;
    t.counts = a.counts = s->counts;
    if (a.mode == CRL_POOL_ROUTE_ORACLE) a.task = 0; /* checked per call */
    if (t.mode == CRL_POOL_ROUTE_FIXED || a.mode == CRL_POOL_ROUTE_FIXED)
        return crl_errf(err, CRL_EINVAL, "sac: L2M routes cannot be FIXED");
    int rc = crl_pool_route_rows(&s->pool, s->actor_p, NULL, 0, &t, NULL, err);
    if (!rc) rc = crl_pool_route_rows(&s->pool, s->actor_p, NULL, 0, &a, NULL, err);
    if (rc) return rc;
    s->rt_train = *train;
    s->rt_act = *act;
    return CRL_OK;
}

void crl_sac_l2m_track(crl_sac *s, const float *obs_base, int rows, int32_t *hist) {
    s->trk_hist = s->L && obs_base && hist && rows > 0 ? hist : NULL;
    s->trk_lo = (uintptr_t)obs_base;
    s->trk_hi =
        s->trk_lo + sizeof(float) * (size_t)s->c.obs_dim * (size_t)(rows > 0 ? rows : 0);
}

double crl_sac_flops_per_update(const crl_sac *s) {
    const double B = s->c.batch;
    if (s->K) {
        /* Actor: forward 2B rows through n anchors, weight gradients of the
         * trainable anchor only, input gradients above the first layer
         * through all n; critics as below (wider input). */
        const double n = s->sub.n_anchors;
        const double Ma = crl_mlp_macs_per_row(&s->actor);
        const double Mq = crl_mlp_macs_per_row(&s->critic);
        const double H = s->c.hidden;
        const double fa = s->c.obs_dim * H, fq = (s->c.obs_dim + s->c.act_dim + s->K) * H;
        double macs = 2 * B * n * Ma + 2 * B * Mq + 4 * B * Mq + 2 * B * Mq +
                      3 * B * (Mq - fq) + B * s->c.act_dim * H + B * Ma +
                      B * n * (Ma - fa);
        return 2.0 * macs;
    }
    const double Ma = crl_mlp_macs_per_row(&s->actor);
    const double Mq = crl_mlp_macs_per_row(&s->critic);
    const double H = s->c.hidden;
    const double fa = s->c.obs_dim * H, fq = (s->c.obs_dim + s->c.act_dim) * H;
    /* L2M: the base's MACs plus, per row and hidden layer, r (in + out) for
     * LoRA's x A and (x A) B forward, twice that backward (no base dW). */
    double lora = 0;
    if (s->L && s->pool.kind == CRL_POOL_LORA)
        for (int l = 0, in = s->c.obs_dim; l < s->c.layers; l++, in = s->c.hidden)
            lora += (double)s->pool.rank * (in + H);
    if (s->L)
        return 2.0 *
               (2 * B * (Ma + lora) + 2 * B * Mq + 4 * B * Mq + 2 * B * Mq +
                3 * B * (Mq - fq) + B * s->c.act_dim * H + B * (Ma - fa) + 2 * B * lora);
    /* actor fwd 2B rows; targets 2 x B; critics fwd 2 x 2B; critics dW 2 x B;
     * critics dX above the first layer for the B value-loss rows each plus
     * the actor-loss rows where that critic is the minimum (B between the
     * two), and the action block of the first layer for those B rows; actor
     * dW B rows and dX above the first layer. */
    double macs = 2 * B * Ma + 2 * B * Mq + 4 * B * Mq + 2 * B * Mq + 3 * B * (Mq - fq) +
                  B * s->c.act_dim * H + B * Ma + B * (Ma - fa);
    return 2.0 * macs;
}

/* ---- checkpoints ----------------------------------------------------------
 * Little-endian host layout (crl targets x86-64 and aarch64 Linux):
 *   "CRLSAC01", u32 obs, act, tasks, hidden, layers, u64 na, nc,
 *   actor, critics, targets, log_alpha, then for each optimiser (actor,
 *   critic, alpha) i64 t, m, v, then the two generators.
 * A CSP learner writes "CRLSACS1" and, after the sizes, u32 K, n_anchors,
 * n_frozen and u64 used; its actor parameters and actor moments are written
 * for the first `used` entries only (the anchors in use; the rest of the
 * capacity is zero). */

static const char SAC_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', '0', '1'};
static const char CSP_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', 'S', '1'};
static const char L2M_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', 'L', '1'};

static const char *sac_magic(const crl_sac *s) {
    return s->K ? CSP_MAGIC : s->L ? L2M_MAGIC : SAC_MAGIC;
}

static void put_adam(crl_wbuf *w, const crl_adam *a, size_t n) {
    crl_wbuf_put(w, &a->t, 8);
    crl_wbuf_put(w, a->m, n * sizeof(float));
    crl_wbuf_put(w, a->v, n * sizeof(float));
}

static void get_adam(crl_rbuf *r, crl_adam *a, size_t n) {
    crl_rbuf_get(r, &a->t, 8);
    crl_rbuf_get(r, a->m, n * sizeof(float));
    crl_rbuf_get(r, a->v, n * sizeof(float));
    memset(a->m + n, 0, (a->n - n) * sizeof(float));
    memset(a->v + n, 0, (a->n - n) * sizeof(float));
}

int crl_sac_save(const crl_sac *s, void **blob, size_t *n, crl_err *err) {
    crl_wbuf w = {0};
    uint32_t dims[5] = {(uint32_t)s->c.obs_dim, (uint32_t)s->c.act_dim,
                        (uint32_t)s->c.n_tasks, (uint32_t)s->c.hidden,
                        (uint32_t)s->c.layers};
    uint64_t sizes[2] = {s->na, s->nc};
    size_t used = s->K ? crl_subspace_n_params(&s->sub) : s->na;
    crl_wbuf_put(&w, sac_magic(s), 8);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, sizes, sizeof sizes);
    if (s->K) {
        uint32_t sub[3] = {(uint32_t)s->K, (uint32_t)s->sub.n_anchors,
                           (uint32_t)s->sub.n_frozen};
        uint64_t u = used;
        crl_wbuf_put(&w, sub, sizeof sub);
        crl_wbuf_put(&w, &u, 8);
    }
    if (s->L) { /* the pool's shape, then the frozen base */
        uint32_t l2m[5] = {(uint32_t)s->L, (uint32_t)s->pool.kind, (uint32_t)s->pool.rank,
                           (uint32_t)s->c.l2m_base_tasks, (uint32_t)s->c.l2m_head};
        uint64_t nb = s->actor.n_params;
        crl_wbuf_put(&w, l2m, sizeof l2m);
        crl_wbuf_put(&w, &nb, 8);
        crl_wbuf_put(&w, s->base_p, nb * sizeof(float));
    }
    crl_wbuf_put(&w, s->actor_p, used * sizeof(float));
    crl_wbuf_put(&w, s->critic_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->target_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    put_adam(&w, &s->opt_actor, used);
    put_adam(&w, &s->opt_critic, s->opt_critic.n);
    put_adam(&w, &s->opt_alpha, s->opt_alpha.n);
    crl_wbuf_put_rng(&w, &s->rng);
    crl_wbuf_put_rng(&w, &s->act_rng);
    if (s->L) crl_wbuf_put(&w, s->counts, (size_t)s->L * sizeof(int64_t));
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "sac: out of memory while saving");
    }
    *blob = w.p;
    *n = w.n;
    return CRL_OK;
}

int crl_sac_load(crl_sac *s, const void *blob, size_t n, crl_err *err) {
    crl_rbuf r = {blob, n, 0, 0};
    char magic[8];
    uint32_t dims[5];
    uint64_t sizes[2];
    crl_rbuf_get(&r, magic, 8);
    crl_rbuf_get(&r, dims, sizeof dims);
    crl_rbuf_get(&r, sizes, sizeof sizes);
    if (r.bad || memcmp(magic, sac_magic(s), 8) != 0)
        return crl_errf(err, CRL_ECORRUPT,
                        !memcmp(magic, SAC_MAGIC, 8) || !memcmp(magic, CSP_MAGIC, 8) ||
                                !memcmp(magic, L2M_MAGIC, 8)
                            ? "sac checkpoint: plain, CSP and L2M learners do not mix"
                            : "sac checkpoint: bad magic");
    if (dims[0] != (uint32_t)s->c.obs_dim || dims[1] != (uint32_t)s->c.act_dim ||
        dims[2] != (uint32_t)s->c.n_tasks || dims[3] != (uint32_t)s->c.hidden ||
        dims[4] != (uint32_t)s->c.layers || sizes[0] != s->na || sizes[1] != s->nc)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: shape %u/%u/%u tasks/%ux%u does not match the "
                        "configured %d/%d/%d tasks/%dx%d",
                        dims[0], dims[1], dims[2], dims[4], dims[3], s->c.obs_dim,
                        s->c.act_dim, s->c.n_tasks, s->c.layers, s->c.hidden);
    size_t used = s->na;
    uint32_t sub[3] = {0, 0, 0};
    if (s->K) {
        uint64_t u = 0;
        crl_rbuf_get(&r, sub, sizeof sub);
        crl_rbuf_get(&r, &u, 8);
        if (r.bad || sub[0] != (uint32_t)s->K || sub[1] < 1 || sub[1] > sub[0] ||
            sub[2] > sub[1] ||
            u != s->sub.n_shared + (uint64_t)sub[1] * s->sub.anchor_size)
            return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad subspace header");
        used = (size_t)u;
    }
    size_t nb = 0, l2m_off = 0;
    if (s->L) {
        uint32_t l2m[5];
        uint64_t nb64 = 0;
        crl_rbuf_get(&r, l2m, sizeof l2m);
        crl_rbuf_get(&r, &nb64, 8);
        if (r.bad || l2m[0] != (uint32_t)s->L || l2m[1] != (uint32_t)s->pool.kind ||
            l2m[2] != (uint32_t)s->pool.rank || l2m[3] != (uint32_t)s->c.l2m_base_tasks ||
            l2m[4] != (uint32_t)s->c.l2m_head || nb64 != s->actor.n_params)
            return crl_errf(err, CRL_ECORRUPT,
                            "sac checkpoint: the L2M pool or base does not match");
        nb = (size_t)nb64;
        l2m_off = r.off;
        r.off += nb * sizeof(float);
    }
    /* Check the exact size before writing anything, so a truncated or padded
     * blob leaves the learner untouched. */
    const size_t T = (size_t)s->c.n_tasks;
    size_t expect = r.off + (used + 4 * s->nc + T) * sizeof(float) + 3 * 8 +
                    (2 * used + 4 * s->nc + 2 * T) * sizeof(float) +
                    2 * (sizeof s->rng.s + 4 + 8) + (size_t)s->L * sizeof(int64_t);
    if (n != expect)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: %zu bytes, expected %zu", n,
                        expect);
    if (s->L) memcpy(s->base_p, (const char *)blob + l2m_off, nb * sizeof(float));
    crl_rbuf_get(&r, s->actor_p, used * sizeof(float));
    memset(s->actor_p + used, 0, (s->na - used) * sizeof(float));
    crl_rbuf_get(&r, s->critic_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->target_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    get_adam(&r, &s->opt_actor, used);
    get_adam(&r, &s->opt_critic, s->opt_critic.n);
    get_adam(&r, &s->opt_alpha, s->opt_alpha.n);
    crl_rbuf_get_rng(&r, &s->rng);
    crl_rbuf_get_rng(&r, &s->act_rng);
    if (s->L) crl_rbuf_get(&r, s->counts, (size_t)s->L * sizeof(int64_t));
    if (r.bad || r.off != n)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: truncated or trailing bytes");
    if (s->K) {
        s->sub.n_anchors = (int)sub[1];
        s->sub.n_frozen = (int)sub[2];
        crl_sac_subspace_changed(s);
    }
    return CRL_OK;
}
