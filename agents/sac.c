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
    /* acting scratch */
    float *act_out_eps;
    int *act_heads;
    crl_rng rng;     /* update noise and nothing else */
    crl_rng act_rng; /* exploration noise */
    crl_sac_hooks hooks;
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
    const int Q = O + A;

    crl_mlp_spec as, cs;
    crl_mlp_spec_cw(&as, O, 2 * A, T, c->layers, c->hidden);
    crl_mlp_spec_cw(&cs, Q, 1, T, c->layers, c->hidden);
    if ((rc = crl_mlp_init(&s->actor, &as, err)) ||
        (rc = crl_mlp_init(&s->critic, &cs, err)))
        goto fail;
    s->na = s->actor.n_params;
    s->nc = s->critic.n_params;

    const size_t B2 = 2 * (size_t)B;
    size_t nf = 2 * s->na + 6 * s->nc + 2 * (size_t)T;
    nf += s->na + B2 * A + B2 * A + B2 + B2 * Q + (size_t)B * Q + B + B2 + B2 +
          2 * (size_t)B * A + (size_t)B * A + B + (size_t)B * 2 * A + B;
    nf += (size_t)c->max_act_batch * A;
    s->mem = calloc(nf, sizeof(float));
    s->heads2 = calloc(B2, sizeof(int));
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
    TAKE(s->dlogp, B);
    TAKE(s->dout, (size_t)B * 2 * A);
    TAKE(s->alpha_row, B);
    TAKE(s->act_out_eps, (size_t)c->max_act_batch * A);
#undef TAKE

    if ((rc = crl_mlp_ws_alloc(&s->ws_lo, &s->actor, B / 2 > 0 ? B / 2 : 1, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_hi, &s->actor, B - B / 2, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_o2, &s->actor, B, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_t1, &s->critic, B, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_t2, &s->critic, B, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_q1, &s->critic, (int)B2, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_q2, &s->critic, (int)B2, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_act, &s->actor, c->max_act_batch, err)) ||
        (rc = crl_adam_init(&s->opt_actor, s->na, c->lr, err)) ||
        (rc = crl_adam_init(&s->opt_critic, 2 * s->nc, c->lr, err)) ||
        (rc = crl_adam_init(&s->opt_alpha, (size_t)T, c->lr, err)) ||
        (rc = crl_lanes_create(c->threads, &s->lanes, err)))
        goto fail;

    /* Separate streams so that, e.g., changing the eval schedule does not
     * change the update noise. */
    crl_rng init;
    crl_rng_seed_stream(&init, seed, 1);
    crl_mlp_init_params(&s->actor, s->actor_p, &init);
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

void crl_sac_act(crl_sac *s, int B, const float *obs, int task, int deterministic,
                 crl_rng *rng, float *act) {
    const int A = s->c.act_dim;
    if (B > s->c.max_act_batch) B = s->c.max_act_batch;
    for (int i = 0; i < B; i++) s->act_heads[i] = task;
    const float *out =
        crl_mlp_forward(&s->actor, s->actor_p, &s->ws_act, obs, B, s->act_heads);
    if (deterministic) {
        crl_tgauss_forward(B, A, out, NULL, act, NULL);
        return;
    }
    if (!rng) rng = &s->act_rng;
    for (int i = 0; i < B * A; i++) s->act_out_eps[i] = (float)crl_rng_normal(rng);
    crl_tgauss_forward(B, A, out, s->act_out_eps, act, NULL);
}

/* Build rows [obs_i, act_i] of the critic input. */
static void cat_rows(int B, int O, int A, const float *obs, const float *act, float *x) {
    for (int i = 0; i < B; i++) {
        memcpy(x + (size_t)i * (O + A), obs + (size_t)i * O, sizeof(float) * O);
        memcpy(x + (size_t)i * (O + A) + O, act + (size_t)i * A, sizeof(float) * A);
    }
}

/* ---- the update, in phases run on two lanes ---------------------------------
 * Each phase gives lane 0 and lane 1 equal, independent work; a phase ends
 * when both lanes are done. The arithmetic does not depend on the number of
 * lanes (with one lane the two halves run one after the other), so results
 * are identical for any thread count. Rows of pi(o) are split in two halves,
 * lo = [0, B0) and hi = [B0, B), each with its own actor workspace, so that
 * the actor backward also splits over the lanes. */

enum {
    PH_ACTOR,
    PH_TARGET,
    PH_CRITIC_FWD,
    PH_CRITIC_BWD,
    PH_ACTOR_BWD,
    PH_SUM,
    PH_APPLY
};

typedef struct {
    crl_sac *s;
    const crl_batch *b;
    const float *eps;
    int phase;
    int finite[2]; /* gradients of each lane's half are finite */
    double q_loss, pi_loss, logp_sum, q_sum, alpha_sum, alpha_loss;
} update_ctx;

static void phase(void *vctx, int lane) {
    update_ctx *u = vctx;
    crl_sac *s = u->s;
    const crl_batch *b = u->b;
    const int O = s->c.obs_dim, A = s->c.act_dim, B = b->B, Q = O + A;
    const int B0 = B / 2, B1 = B - B0;
    const float invB = 1.0f / (float)B;
    const size_t nc = s->nc;

    switch (u->phase) {
    case PH_ACTOR:
        if (lane == 0) { /* pi(o) on both halves, then the critic input rows */
            const float *lo =
                crl_mlp_forward(&s->actor, s->actor_p, &s->ws_lo, b->obs, B0, b->task);
            crl_tgauss_forward(B0, A, lo, u->eps, s->pi, s->logp);
            const float *hi = crl_mlp_forward(&s->actor, s->actor_p, &s->ws_hi,
                                              b->obs + (size_t)B0 * O, B1, b->task + B0);
            crl_tgauss_forward(B1, A, hi, u->eps + (size_t)B0 * A, s->pi + (size_t)B0 * A,
                               s->logp + B0);
            cat_rows(B, O, A, b->obs, b->act, s->xq);
            cat_rows(B, O, A, b->obs, s->pi, s->xq + (size_t)B * Q);
            for (int i = 0; i < B; i++) s->heads2[i] = s->heads2[B + i] = b->task[i];
        } else { /* pi(o2) and the target input rows */
            const float *o2 =
                crl_mlp_forward(&s->actor, s->actor_p, &s->ws_o2, b->obs2, B, b->task);
            crl_tgauss_forward(B, A, o2, u->eps + (size_t)B * A, s->pi + (size_t)B * A,
                               s->logp + B);
            cat_rows(B, O, A, b->obs2, s->pi + (size_t)B * A, s->xt);
        }
        break;
    case PH_TARGET:
        crl_mlp_forward(&s->critic, s->target_p + (size_t)lane * nc,
                        lane ? &s->ws_t2 : &s->ws_t1, s->xt, B, b->task);
        break;
    case PH_CRITIC_FWD:
        if (lane == 0) { /* the Bellman target; lane 1 reads it next phase */
            const float gamma = s->c.gamma;
            const float *t1 = s->ws_t1.out, *t2 = s->ws_t2.out;
            for (int i = 0; i < B; i++) {
                float qt = t1[i] < t2[i] ? t1[i] : t2[i];
                s->y[i] = b->rew[i] + gamma * (1.0f - b->done[i]) *
                                          (qt - s->alpha_row[i] * s->logp[B + i]);
            }
        }
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
        for (int i = 0; i < B; i++) {
            dq[i] = (q[i] - s->y[i]) * invB;
            int first = q1[B + i] <= q2[B + i];
            dq[B + i] = (first == (lane == 0)) ? -invB : 0.0f;
        }
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
        /* dQ/da of the actor-loss rows only: rows [B, 2B), columns [O, O+A). */
        crl_mlp_backward_dx_block(&s->critic, s->critic_p + (size_t)lane * nc, g,
                                  lane ? &s->ws_q2 : &s->ws_q1, dq, B,
                                  lane ? s->dxq2 : s->dxq1, B, O, A);
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
        crl_mlp_ws *ws = lane ? &s->ws_hi : &s->ws_lo;
        float *dout = s->dout + (size_t)r0 * 2 * A;
        crl_tgauss_backward(n, A, ws->out, u->eps + (size_t)r0 * A,
                            s->dpi + (size_t)r0 * A, s->dlogp + r0, dout);
        float *g = lane ? s->actor_g2 : s->actor_g;
        memset(g, 0, sizeof(float) * s->na);
        crl_mlp_backward(&s->actor, s->actor_p, g, ws, dout, n, NULL);
        break;
    }
    case PH_SUM: { /* actor_g += actor_g2 and the finiteness checks, by halves */
        size_t h = s->na / 2, lo = lane ? h : 0, hi = lane ? s->na : h;
        for (size_t i = lo; i < hi; i++) s->actor_g[i] += s->actor_g2[i];
        u->finite[lane] = crl_all_finite(s->actor_g + lo, hi - lo) &&
                          crl_all_finite(s->critic_g + (size_t)lane * nc, nc);
        break;
    }
    case PH_APPLY: {
        /* Balance: Adam costs about 1 unit per entry and Polyak 0.5. Lane 0
         * takes the actor, alpha and critic entries [0, r); lane 1 the
         * critic entries [r, 2nc). */
        size_t n2 = 2 * nc;
        size_t r = nc > s->na / 3 ? nc - s->na / 3 : 0;
        if (lane == 0) {
            crl_adam_step_range(&s->opt_actor, s->actor_p, s->actor_g,
                                s->hooks.actor_trainable, 0, s->na);
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
    run_phase(&u, PH_TARGET);
    run_phase(&u, PH_CRITIC_FWD);
    run_phase(&u, PH_CRITIC_BWD);
    run_phase(&u, PH_ACTOR_BWD);
    run_phase(&u, PH_SUM);
    double penalty = 0;
    if (s->hooks.actor_penalty)
        penalty = s->hooks.actor_penalty(s->hooks.ctx, s->actor_p, s->actor_g, s->na);

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

int crl_sac_update(crl_sac *s, const crl_batch *b, crl_sac_stats *st, crl_err *err) {
    const int A = s->c.act_dim;
    if (b->B != s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: batch of %d rows, configured %d", b->B,
                        s->c.batch);
    for (int i = 0; i < 2 * b->B * A; i++) s->eps[i] = (float)crl_rng_normal(&s->rng);
    crl_sac_stats local;
    if (!st) st = &local;
    int rc = crl_sac_compute_grads(s, b, s->eps, st);
    if (rc == CRL_ENAN)
        return crl_errf(err, CRL_ENAN,
                        "sac: non-finite loss or gradient (q_loss %g, pi_loss %g); "
                        "nothing applied",
                        st->q_loss, st->pi_loss);
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

double crl_sac_flops_per_update(const crl_sac *s) {
    const double B = s->c.batch;
    const double Ma = crl_mlp_macs_per_row(&s->actor);
    const double Mq = crl_mlp_macs_per_row(&s->critic);
    const double H = s->c.hidden;
    const double fa = s->c.obs_dim * H, fq = (s->c.obs_dim + s->c.act_dim) * H;
    /* actor fwd 2B rows; targets 2 x B; critics fwd 2 x 2B; critics dW 2 x B;
     * critics dX 2 x 2B rows above the first layer plus the action block of
     * the first layer for B rows; actor dW B rows and dX above the first
     * layer. */
    double macs = 2 * B * Ma + 2 * B * Mq + 4 * B * Mq + 2 * B * Mq +
                  2 * (2 * B * (Mq - fq) + B * s->c.act_dim * H) + B * Ma + B * (Ma - fa);
    return 2.0 * macs;
}

/* ---- checkpoints ----------------------------------------------------------
 * Little-endian host layout (crl targets x86-64 and aarch64 Linux):
 *   "CRLSAC01", u32 obs, act, tasks, hidden, layers, u64 na, nc,
 *   actor, critics, targets, log_alpha, then for each optimiser (actor,
 *   critic, alpha) i64 t, m, v, then the two generators. */

static const char SAC_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', '0', '1'};

static void put_adam(crl_wbuf *w, const crl_adam *a) {
    crl_wbuf_put(w, &a->t, 8);
    crl_wbuf_put(w, a->m, a->n * sizeof(float));
    crl_wbuf_put(w, a->v, a->n * sizeof(float));
}

static void get_adam(crl_rbuf *r, crl_adam *a) {
    crl_rbuf_get(r, &a->t, 8);
    crl_rbuf_get(r, a->m, a->n * sizeof(float));
    crl_rbuf_get(r, a->v, a->n * sizeof(float));
}

int crl_sac_save(const crl_sac *s, void **blob, size_t *n, crl_err *err) {
    crl_wbuf w = {0};
    uint32_t dims[5] = {(uint32_t)s->c.obs_dim, (uint32_t)s->c.act_dim,
                        (uint32_t)s->c.n_tasks, (uint32_t)s->c.hidden,
                        (uint32_t)s->c.layers};
    uint64_t sizes[2] = {s->na, s->nc};
    crl_wbuf_put(&w, SAC_MAGIC, 8);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, sizes, sizeof sizes);
    crl_wbuf_put(&w, s->actor_p, s->na * sizeof(float));
    crl_wbuf_put(&w, s->critic_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->target_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    put_adam(&w, &s->opt_actor);
    put_adam(&w, &s->opt_critic);
    put_adam(&w, &s->opt_alpha);
    crl_wbuf_put_rng(&w, &s->rng);
    crl_wbuf_put_rng(&w, &s->act_rng);
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
    if (r.bad || memcmp(magic, SAC_MAGIC, 8) != 0)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad magic");
    if (dims[0] != (uint32_t)s->c.obs_dim || dims[1] != (uint32_t)s->c.act_dim ||
        dims[2] != (uint32_t)s->c.n_tasks || dims[3] != (uint32_t)s->c.hidden ||
        dims[4] != (uint32_t)s->c.layers || sizes[0] != s->na || sizes[1] != s->nc)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: shape %u/%u/%u tasks/%ux%u does not match the "
                        "configured %d/%d/%d tasks/%dx%d",
                        dims[0], dims[1], dims[2], dims[4], dims[3], s->c.obs_dim,
                        s->c.act_dim, s->c.n_tasks, s->c.layers, s->c.hidden);
    /* Check the exact size before writing anything, so a truncated or padded
     * blob leaves the learner untouched. */
    const size_t T = (size_t)s->c.n_tasks;
    size_t expect = r.off + (s->na + 4 * s->nc + T) * sizeof(float) + 3 * 8 +
                    (2 * s->na + 4 * s->nc + 2 * T) * sizeof(float) +
                    2 * (sizeof s->rng.s + 4 + 8);
    if (n != expect)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: %zu bytes, expected %zu", n,
                        expect);
    crl_rbuf_get(&r, s->actor_p, s->na * sizeof(float));
    crl_rbuf_get(&r, s->critic_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->target_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    get_adam(&r, &s->opt_actor);
    get_adam(&r, &s->opt_critic);
    get_adam(&r, &s->opt_alpha);
    crl_rbuf_get_rng(&r, &s->rng);
    crl_rbuf_get_rng(&r, &s->act_rng);
    if (r.bad || r.off != n)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: truncated or trailing bytes");
    return CRL_OK;
}
