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
#include "crl/actor.h"
#include "crl/router.h"

#include "core/lanes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Sum of squares of x[0..n), for the gradient norms of crl_sac_stats: four
 * float lanes over blocks of 512 entries, each block added into a double
 * (one pass, no allocation; a NaN or Inf entry makes it non-finite). */
typedef float sac_v4f __attribute__((vector_size(16)));
static double sum_sq(const float *x, size_t n) {
    double total = 0;
    size_t i = 0;
    while (i + 8 <= n) {
        size_t end = i + 512 <= n ? i + 512 : n - (n - i) % 8;
        sac_v4f a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
        for (; i < end; i += 8) {
            sac_v4f p, q;
            memcpy(&p, x + i, sizeof p);
            memcpy(&q, x + i + 4, sizeof q);
            a += p * p;
            b += q * q;
        }
        a += b;
        total += (double)a[0] + a[1] + a[2] + a[3];
    }
    for (; i < n; i++) total += (double)x[i] * x[i];
    return total;
}

struct crl_sac {
    crl_sac_config c;
    crl_mlp critic;
    /* The actor, of the kind the config asks for (crl_sac_actor_config). Its
     * parameters are actor->params; it may read conditioning columns (the
     * cond_dim the critics also read after [obs, act]). */
    crl_actor *actor;
    int ncond;     /* actor->cond_dim */
    size_t na, nc; /* parameters of the actor (its capacity), of ONE critic */
    float *mem;    /* every float buffer below, one allocation */
    float *actor_g;
    float *critic_p, *critic_g, *target_p; /* [q1 | q2] */
    float *log_alpha, *log_alpha_g;
    crl_adam opt_actor, opt_critic, opt_alpha;
    /* actor on pi(o) rows [0,B0) and [B0,B), on o2, acting; targets; critics
     * on 2B rows */
    crl_actor_ws aws[3], aws_act;
    crl_mlp_ws ws_t1, ws_t2, ws_q1, ws_q2;
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
    float *mix_u; /* 2B x K: conditioning of the pi(o) rows (B; scoring: any rows) */
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
    crl_actor_config ac;
    int rc = check_config(c, err);
    if (!rc) rc = crl_sac_actor_config(c, &ac, err);
    if (rc) return rc;
    crl_sac *s = calloc(1, sizeof *s);
    if (!s) return crl_errf(err, CRL_ENOMEM, "sac: out of memory");
    s->c = *c;
    const int O = c->obs_dim, A = c->act_dim, B = c->batch, T = c->n_tasks;
    if ((rc = crl_actor_create(&ac, &s->actor, err))) goto fail;
    const int K = s->actor->cond_dim;
    const int Q = O + A + K;
    s->ncond = K;

    crl_mlp_spec cs;
    crl_mlp_spec_cw(&cs, Q, 1, T, c->layers, c->hidden);
    if ((rc = crl_mlp_init(&s->critic, &cs, err))) goto fail;
    s->na = s->actor->n_params;
    s->nc = s->critic.n_params;

    const size_t B2 = 2 * (size_t)B;
    size_t nf = s->na + 6 * s->nc + 2 * (size_t)T;
    nf += s->na + B2 * A + B2 * A + B2 + B2 * Q + (size_t)B * Q + B + B2 + B2 +
          2 * (size_t)B * A + (size_t)B * A + B + (size_t)B * 2 * A + B;
    nf += 2 * (size_t)B * A;
    nf += (size_t)c->max_act_batch * A;
    nf += 2 * B2 * K;
    s->mem = calloc(nf, sizeof(float));
    s->heads2 = calloc(B2 + 2 * B2 + 2 * (size_t)B, sizeof(int));
    s->act_heads = calloc((size_t)c->max_act_batch, sizeof(int));
    if (!s->mem || !s->heads2 || !s->act_heads) {
        rc = crl_errf(err, CRL_ENOMEM, "sac: out of memory");
        goto fail;
    }
    float *p = s->mem;
#define TAKE(ptr, n) (ptr = p, p += (n))
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
#undef TAKE
    s->keep_heads = s->heads2 + B2;
    s->keep_rows = s->keep_heads + 2 * B2;

    if ((rc = crl_actor_ws_alloc(s->actor, &s->aws[0], B / 2 > 0 ? B / 2 : 1, err)) ||
        (rc = crl_actor_ws_alloc(s->actor, &s->aws[1], B - B / 2, err)) ||
        (rc = crl_actor_ws_alloc(s->actor, &s->aws[2], B, err)) ||
        (rc = crl_actor_ws_alloc(s->actor, &s->aws_act, c->max_act_batch, err)) ||
        (rc = crl_mlp_ws_alloc(&s->ws_t1, &s->critic, B, err)) ||
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
    crl_actor_init_params(s->actor, &init);
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
    for (int i = 0; i < 3; i++) crl_actor_ws_free(s->actor, &s->aws[i]);
    crl_actor_ws_free(s->actor, &s->aws_act);
    crl_actor_free(s->actor);
    crl_mlp_ws_free(&s->ws_t1);
    crl_mlp_ws_free(&s->ws_t2);
    crl_mlp_ws_free(&s->ws_q1);
    crl_mlp_ws_free(&s->ws_q2);
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
    return &s->actor->net;
}
crl_actor *crl_sac_get_actor(crl_sac *s) {
    return s->actor;
}
const crl_mlp *crl_sac_critic(const crl_sac *s) {
    return &s->critic;
}
float *crl_sac_actor_params(crl_sac *s) {
    return s->actor->params;
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
    const crl_actor_rows rows = {.head = s->act_heads, .acting = 1, .task = task};
    const float *out = crl_actor_forward(s->actor, &s->aws_act, obs, B, &rows);
    if (deterministic) {
        crl_tgauss_forward(B, A, out, NULL, act, NULL);
        return;
    }
    if (!rng) rng = &s->act_rng;
    for (int i = 0; i < B * A; i++) s->act_out_eps[i] = (float)crl_rng_normal(rng);
    crl_tgauss_forward(B, A, out, s->act_out_eps, act, NULL);
}

/* Build rows [obs_i, act_i] of the critic input, and with K conditioning
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

/* ---- the actor ------------------------------------------------------------------
 * Workspaces by role: 0 = pi(o) rows [0,B0), 1 = pi(o) rows [B0,B), 2 = pi(o2).
 * mix: rows x K conditioning columns (ignored by an actor without them). */
static const float *actor_fwd(crl_sac *s, int role, const float *x, int rows,
                              const int *heads, const float *mix) {
    const crl_actor_rows r = {.head = heads, .cond = mix};
    return crl_actor_forward(s->actor, &s->aws[role], x, rows, &r);
}

/* The same for update rows r0.. of batch b that carry history windows
 * (L2M's query): of obs (o2 = 0) or of obs2 (o2 = 1). */
static const float *actor_fwd_b(crl_sac *s, int role, const crl_batch *b, int o2, int r0,
                                int rows, const float *mix) {
    const size_t O = (size_t)s->c.obs_dim, hc = (size_t)b->hist_cap;
    const float *x = (o2 ? b->obs2 : b->obs) + (size_t)r0 * O;
    crl_actor_rows r = {.head = b->task + r0, .cond = mix};
    if (hc > 0) {
        r.hist = (o2 ? b->hist_obs2 : b->hist_obs) + (size_t)r0 * hc * O;
        r.hist_n = (o2 ? b->hist_n2 : b->hist_n) + r0;
        r.hist_cap = b->hist_cap;
    }
    return crl_actor_forward(s->actor, &s->aws[role], x, rows, &r);
}

/* ---- behaviour cloning -----------------------------------------------------
 * Loss of n rows of expert actions act (n x A) under the actor's head output
 * out (n x 2A: mean, raw log-std), summed over rows and action dims; its
 * gradient w.r.t. out, scaled by invB (the batch mean), goes to dout.
 *
 * NLL: with c = CRL_BC_CLAMP, a' = clamp(a, -(1-c), 1-c), u = atanh(a'),
 * s = clip(raw log-std), sd = e^s, z = (u - mu) / sd, per action dim
 *   -log pi(a') = z^2 / 2 + s + log(2 pi) / 2 + log(1 - a'^2)
 * (the last term is the tanh Jacobian: constant in the parameters, kept so
 * that the value is the action-space NLL; it adds no gradient). Gradients
 * dmu = -z / sd, ds = 1 - z^2 (0 outside the log-std clip, as in
 * crl_tgauss_backward).
 * MSE: (tanh(mu) - a)^2 per dim, dmu = 2 (tanh(mu) - a)(1 - tanh(mu)^2),
 * no gradient to the log-std. */
static double bc_rows(int kind, int n, int A, const float *out, const float *act,
                      float invB, float *dout) {
    const double lim = 1.0 - CRL_BC_CLAMP, half_log_2pi = 0.91893853320467274178;
    double sum = 0;
    for (int r = 0; r < n; r++) {
        const float *mu = out + (size_t)r * 2 * A, *ls = mu + A;
        const float *a = act + (size_t)r * A;
        float *dmu = dout + (size_t)r * 2 * A, *dls = dmu + A;
        for (int j = 0; j < A; j++) {
            if (kind == CRL_BC_MSE) {
                const float t = tanhf(mu[j]), e = t - a[j];
                sum += (double)e * e;
                dmu[j] = 2.0f * e * (1.0f - t * t) * invB;
                dls[j] = 0.0f;
                continue;
            }
            double ac = a[j];
            ac = ac > lim ? lim : ac < -lim ? -lim : ac;
            const float u = (float)atanh(ac);
            const float raw = ls[j];
            const float sl = raw < CRL_LOG_STD_MIN   ? CRL_LOG_STD_MIN
                             : raw > CRL_LOG_STD_MAX ? CRL_LOG_STD_MAX
                                                     : raw;
            const float sd = expf(sl), z = (u - mu[j]) / sd;
            sum += 0.5 * (double)z * z + sl + half_log_2pi + log1p(-ac * ac);
            dmu[j] = -z / sd * invB;
            const int inside = raw >= CRL_LOG_STD_MIN && raw <= CRL_LOG_STD_MAX;
            dls[j] = inside ? (1.0f - z * z) * invB : 0.0f;
        }
    }
    return sum;
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
    PH_CRITIC_FWD,
    PH_CRITIC_BWD,
    PH_ACTOR_BWD,
    PH_SUM,
    PH_APPLY,
    PH_BC,
    PH_BC_APPLY
};

typedef struct {
    crl_sac *s;
    const crl_batch *b;
    const float *eps;
    int phase;
    int finite[2];                      /* gradients of each lane's half are finite */
    int norms;                          /* fill gsq_* (the caller wants stats) */
    double gsq_actor[2], gsq_critic[2]; /* each lane's sum of squared gradients */
    double q_loss, pi_loss, logp_sum, q_sum, alpha_sum, alpha_loss;
    double extra[2];  /* each lane's share of the actor's own loss term */
    int bc;           /* behaviour cloning (crl_bc_loss + 1), 0: SAC */
    double bc_sum[2]; /* each lane's share of the BC loss (times B) */
} update_ctx;

static void phase(void *vctx, int lane) {
    update_ctx *u = vctx;
    crl_sac *s = u->s;
    const crl_batch *b = u->b;
    const int O = s->c.obs_dim, A = s->c.act_dim, B = b->B, K = s->ncond, Q = O + A + K;
    const int B0 = B / 2, B1 = B - B0;
    const float invB = 1.0f / (float)B;
    const size_t nc = s->nc;

    switch (u->phase) {
    case PH_ACTOR:
        if (lane == 0) { /* pi(o) on both halves, then the critic input rows */
            const float *lo = actor_fwd_b(s, 0, b, 0, 0, B0, s->mix_u);
            crl_tgauss_forward(B0, A, lo, u->eps, s->pi, s->logp);
            const float *hi = actor_fwd_b(s, 1, b, 0, B0, B1, s->mix_u + (size_t)B0 * K);
            crl_tgauss_forward(B1, A, hi, u->eps + (size_t)B0 * A, s->pi + (size_t)B0 * A,
                               s->logp + B0);
            cat_rows(B, O, A, K, b->obs, b->act, b->mix, s->xq);
            cat_rows(B, O, A, K, b->obs, s->pi, s->mix_u, s->xq + (size_t)B * Q);
            for (int i = 0; i < B; i++) s->heads2[i] = s->heads2[B + i] = b->task[i];
        } else { /* pi(o2) and the target input rows */
            /* CSP: a target row uses its transition's own alpha (b->mix), so
             * Q(s, a, alpha) is regressed toward the value of the same policy
             * alpha, not of a freshly drawn one. */
            const float *m2 = K ? b->mix : NULL;
            const float *o2 = actor_fwd_b(s, 2, b, 1, 0, B, m2);
            crl_tgauss_forward(B, A, o2, u->eps + (size_t)B * A, s->pi + (size_t)B * A,
                               s->logp + B);
            cat_rows(B, O, A, K, b->obs2, s->pi + (size_t)B * A, m2, s->xt);
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
        crl_tgauss_backward(n, A, s->aws[lane].out, u->eps + (size_t)r0 * A,
                            s->dpi + (size_t)r0 * A, s->dlogp + r0, dout);
        float *g = lane ? s->actor_g2 : s->actor_g;
        const crl_actor *ac = s->actor;
        memset(g + ac->tr_lo, 0, sizeof(float) * (ac->tr_hi - ac->tr_lo));
        crl_actor_backward(s->actor, &s->aws[lane], g, dout, n);
        /* The actor's own loss term (L2M: the key pull), over this lane's n
         * of the B pi(o) rows. */
        u->extra[lane] = crl_actor_extra_loss(s->actor, &s->aws[lane], n, B, g);
        break;
    }
    case PH_SUM: { /* actor_g += actor_g2 and the finiteness checks, by halves */
        const size_t tr_lo = s->actor->tr_lo, tr_hi = s->actor->tr_hi;
        size_t h = tr_lo + (tr_hi - tr_lo) / 2;
        size_t lo = lane ? h : tr_lo, hi = lane ? tr_hi : h;
        for (size_t i = lo; i < hi; i++) s->actor_g[i] += s->actor_g2[i];
        u->finite[lane] = crl_all_finite(s->actor_g + lo, hi - lo) &&
                          (u->bc || crl_all_finite(s->critic_g + (size_t)lane * nc, nc));
        if (u->norms) {
            u->gsq_actor[lane] = sum_sq(s->actor_g + lo, hi - lo);
            u->gsq_critic[lane] = u->bc ? 0 : sum_sq(s->critic_g + (size_t)lane * nc, nc);
        }
        break;
    }
    case PH_APPLY: {
        /* Balance: Adam costs about 1 unit per entry and Polyak 0.5. Lane 0
         * takes the actor, alpha and critic entries [0, r); lane 1 the
         * critic entries [r, 2nc). */
        const size_t tr_lo = s->actor->tr_lo, tr_hi = s->actor->tr_hi;
        size_t n2 = 2 * nc, ntr = tr_hi - tr_lo;
        size_t r = nc > ntr / 3 ? nc - ntr / 3 : 0;
        if (lane == 0) {
            crl_adam_step_range(&s->opt_actor, s->actor->params, s->actor_g,
                                s->hooks.actor_trainable, tr_lo, tr_hi);
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
    case PH_BC: {
        /* Behaviour cloning on this lane's half of the batch rows (the same
         * split and workspaces as the pi(o) rows of the SAC update): the
         * actor's forward on obs, the loss of the batch's actions and its
         * gradient w.r.t. the head output, the actor's backward and its own
         * loss term. */
        const int r0 = lane ? B0 : 0, n = lane ? B1 : B0;
        const float *out = actor_fwd_b(s, lane, b, 0, r0, n, s->mix_u + (size_t)r0 * K);
        float *dout = s->dout + (size_t)r0 * 2 * A;
        u->bc_sum[lane] =
            bc_rows(u->bc - 1, n, A, out, b->act + (size_t)r0 * A, invB, dout);
        float *g = lane ? s->actor_g2 : s->actor_g;
        const crl_actor *ac = s->actor;
        memset(g + ac->tr_lo, 0, sizeof(float) * (ac->tr_hi - ac->tr_lo));
        crl_actor_backward(s->actor, &s->aws[lane], g, dout, n);
        u->extra[lane] = crl_actor_extra_loss(s->actor, &s->aws[lane], n, B, g);
        break;
    }
    case PH_BC_APPLY: { /* the actor's Adam step only, its trainable range by halves */
        const size_t tr_lo = s->actor->tr_lo, tr_hi = s->actor->tr_hi;
        const size_t h = tr_lo + (tr_hi - tr_lo) / 2;
        crl_adam_step_range(&s->opt_actor, s->actor->params, s->actor_g,
                            s->hooks.actor_trainable, lane ? h : tr_lo, lane ? tr_hi : h);
        break;
    }
    }
}

static void run_phase(update_ctx *u, int ph) {
    u->phase = ph;
    crl_lanes_run(u->s->lanes, phase, u);
}

/* The actor gradient's norm after the update's phases: the lanes' halves,
 * or, when a penalty hook added its term after them, one more pass. */
static double actor_grad_norm(const crl_sac *s, const update_ctx *u) {
    if (s->hooks.actor_penalty)
        return sqrt(
            sum_sq(s->actor_g + s->actor->tr_lo, s->actor->tr_hi - s->actor->tr_lo));
    return sqrt(u->gsq_actor[0] + u->gsq_actor[1]);
}

/* norms: fill the gradient norms of *st (NAN otherwise: a caller that
 * passed no stats does not pay for them). */
static int compute_grads(crl_sac *s, const crl_batch *b, const float *eps,
                         crl_sac_stats *st, int norms) {
    const int B = b->B;
    const float H = crl_sac_target_entropy(&s->c);
    const float invB = 1.0f / (float)B;
    update_ctx u = {.s = s, .b = b, .eps = eps, .norms = st && norms};
    for (int i = 0; i < B; i++) s->alpha_row[i] = expf(s->log_alpha[b->task[i]]);
    run_phase(&u, PH_ACTOR);
    run_phase(&u, PH_CRITIC_FWD);
    run_phase(&u, PH_CRITIC_BWD);
    run_phase(&u, PH_ACTOR_BWD);
    run_phase(&u, PH_SUM);
    double penalty = 0;
    if (s->hooks.actor_penalty)
        penalty =
            s->hooks.actor_penalty(s->hooks.ctx, s->actor->params, s->actor_g, s->na);
    penalty += u.extra[0] + u.extra[1];

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
        st->grad_norm_actor = u.norms ? actor_grad_norm(s, &u) : NAN;
        st->grad_norm_critic = u.norms ? sqrt(u.gsq_critic[0] + u.gsq_critic[1]) : NAN;
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

int crl_sac_compute_grads(crl_sac *s, const crl_batch *b, const float *eps,
                          crl_sac_stats *st) {
    return compute_grads(s, b, eps, st, 1);
}

/* One row of conditioning per row of pi(o) and pi(o2): from the method's
 * collection distribution (hooks.draw_mix), else the actor's default. */
static void draw_update_mix(crl_sac *s, int rows) {
    if (s->hooks.draw_mix) {
        s->hooks.draw_mix(s->hooks.ctx, &s->rng, rows, s->actor->cond_live, s->mix_u);
        return;
    }
    crl_actor_draw_cond(s->actor, &s->rng, rows, s->mix_u);
}

int crl_sac_update(crl_sac *s, const crl_batch *b, crl_sac_stats *st, crl_err *err) {
    const int A = s->c.act_dim;
    if (b->B != s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: batch of %d rows, configured %d", b->B,
                        s->c.batch);
    if (s->ncond && b->mix_dim != s->ncond)
        return crl_errf(
            err, CRL_EINVAL,
            "sac: the actor needs %d conditioning (alpha) columns, batch has %d",
            s->ncond, b->mix_dim);
    for (int i = 0; i < 2 * b->B * A; i++) s->eps[i] = (float)crl_rng_normal(&s->rng);
    if (s->ncond) draw_update_mix(s, b->B); /* the pi(o) rows; targets use b->mix */
    crl_sac_stats local;
    const int norms = st != NULL;
    if (!st) st = &local;
    int rc = compute_grads(s, b, s->eps, st, norms);
    if (rc == CRL_ENAN)
        return crl_errf(err, CRL_ENAN,
                        "sac: non-finite loss or gradient (q_loss %g, pi_loss %g); "
                        "nothing applied",
                        st->q_loss, st->pi_loss);
    crl_actor_tally(s->actor, &s->aws[0]);
    crl_actor_tally(s->actor, &s->aws[1]);
    crl_adam_tick(&s->opt_critic);
    crl_adam_tick(&s->opt_actor);
    crl_adam_tick(&s->opt_alpha);
    update_ctx u = {.s = s, .b = b, .eps = s->eps};
    run_phase(&u, PH_APPLY);
    return CRL_OK;
}

/* ---- behaviour cloning: the actor alone --------------------------------------- */

static int bc_compute_grads(crl_sac *s, const crl_batch *b, int loss, crl_sac_stats *st,
                            int norms) {
    const int B = b->B;
    update_ctx u = {.s = s, .b = b, .bc = loss + 1, .norms = st && norms};
    run_phase(&u, PH_BC);
    run_phase(&u, PH_SUM);
    double penalty = 0;
    if (s->hooks.actor_penalty)
        penalty =
            s->hooks.actor_penalty(s->hooks.ctx, s->actor->params, s->actor_g, s->na);
    penalty += u.extra[0] + u.extra[1];
    const double bc = (u.bc_sum[0] + u.bc_sum[1]) / B;
    if (st) {
        memset(st, 0, sizeof *st);
        st->pi_loss = bc + penalty;
        st->penalty = penalty;
        st->logp = loss == CRL_BC_NLL ? -bc : NAN;
        st->grad_norm_actor = u.norms ? actor_grad_norm(s, &u) : NAN;
        st->grad_norm_critic = NAN;
    }
    int finite = u.finite[0] && u.finite[1];
    if (s->hooks.actor_penalty) finite = finite && crl_all_finite(s->actor_g, s->na);
    if (!isfinite(bc) || !isfinite(penalty) || !finite) return CRL_ENAN;
    return CRL_OK;
}

int crl_sac_bc_compute_grads(crl_sac *s, const crl_batch *b, int loss,
                             crl_sac_stats *st) {
    return bc_compute_grads(s, b, loss, st, 1);
}

int crl_sac_bc_update(crl_sac *s, const crl_batch *b, int loss, crl_sac_stats *st,
                      crl_err *err) {
    if (b->B != s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: batch of %d rows, configured %d", b->B,
                        s->c.batch);
    if (loss != CRL_BC_NLL && loss != CRL_BC_MSE)
        return crl_errf(err, CRL_EINVAL, "sac: unknown behaviour-cloning loss %d", loss);
    /* CSP: the rows' conditioning is drawn as for the SAC actor loss. */
    if (s->ncond) draw_update_mix(s, b->B);
    crl_sac_stats local;
    const int norms = st != NULL;
    if (!st) st = &local;
    int rc = bc_compute_grads(s, b, loss, st, norms);
    if (rc == CRL_ENAN)
        return crl_errf(err, CRL_ENAN,
                        "sac: non-finite behaviour-cloning loss or gradient (loss %g); "
                        "nothing applied",
                        st->pi_loss);
    crl_actor_tally(s->actor, &s->aws[0]);
    crl_actor_tally(s->actor, &s->aws[1]);
    crl_adam_tick(&s->opt_actor);
    update_ctx u = {.s = s, .b = b, .bc = loss + 1};
    run_phase(&u, PH_BC_APPLY);
    return CRL_OK;
}

double crl_sac_bc_flops_per_update(const crl_sac *s) {
    /* The actor's forward on B rows, its weight gradient and its input
     * gradient above the first layer: the pi(o) part of the SAC update. */
    const crl_mlp *m = &s->actor->net;
    const double B = s->c.batch, Ma = crl_mlp_macs_per_row(m);
    const double fa = (double)s->c.obs_dim * m->spec.hidden[0];
    return 2.0 * (B * Ma + B * Ma + B * (Ma - fa));
}

void crl_sac_reset_optimizers(crl_sac *s) {
    crl_adam_reset(&s->opt_actor);
    crl_adam_reset(&s->opt_critic);
    crl_adam_reset(&s->opt_alpha);
}

/* ---- kind-specific access: thin views over the actor ------------------------ */

crl_subspace *crl_sac_subspace(crl_sac *s) {
    return crl_actor_subspace(s->actor);
}

size_t crl_sac_actor_size(const crl_sac *s) {
    return s->na;
}

void crl_sac_subspace_changed(crl_sac *s) {
    crl_actor_changed(s->actor);
}

void crl_sac_set_act_mix(crl_sac *s, const float *mix) {
    crl_actor_set_act_cond(s->actor, mix);
}

const float *crl_sac_act_mix(const crl_sac *s) {
    return crl_actor_act_cond(s->actor);
}

float *crl_sac_update_mix(crl_sac *s) {
    return s->ncond ? s->mix_u : NULL;
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
    if (!s->ncond) return crl_errf(err, CRL_EINVAL, "sac: not a CSP learner");
    if (B < 1 || B > s->c.batch)
        return crl_errf(err, CRL_EINVAL, "sac: score batch %d outside 1..%d", B,
                        s->c.batch);
    const int O = s->c.obs_dim, A = s->c.act_dim, K = s->ncond;
    for (int i = 0; i < B; i++) s->heads2[i] = task;
    for (int m = 0; m < n_mix; m++) {
        const float *mix = mixes + (size_t)m * K;
        for (int i = 0; i < B; i++)
            memcpy(s->mix_u + (size_t)i * K, mix, sizeof(float) * K);
        const float *out = actor_fwd(s, 2, obs, B, s->heads2, s->mix_u);
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

const crl_pool *crl_sac_pool(const crl_sac *s) {
    return crl_actor_pool(s->actor);
}

float *crl_sac_l2m_base(crl_sac *s) {
    return s->actor->base;
}

int64_t *crl_sac_l2m_counts(crl_sac *s) {
    return s->actor->counts;
}

int crl_sac_l2m_set_route(crl_sac *s, const crl_pool_route *train,
                          const crl_pool_route *act, crl_err *err) {
    return crl_actor_l2m_set_route(s->actor, train, act, err);
}

int crl_sac_l2m_task_start(crl_sac *s, int task, const int64_t *start_counts,
                           crl_err *err) {
    crl_router *r = crl_actor_router(s->actor);
    if (!r) return crl_errf(err, CRL_EINVAL, "sac: not an L2M learner");
    crl_router_task_start(r, task, start_counts);
    return CRL_OK;
}

void crl_sac_l2m_eval(crl_sac *s, int on) {
    crl_router *r = crl_actor_router(s->actor);
    if (r && on) crl_router_changed(r, crl_sac_actor_params(s));
    if (r) crl_router_eval(r, on);
}

int crl_sac_l2m_task_end(crl_sac *s, int task, crl_err *err) {
    crl_router *r = crl_actor_router(s->actor);
    if (!r) return crl_errf(err, CRL_EINVAL, "sac: not an L2M learner");
    crl_router_changed(r, crl_sac_actor_params(s));
    return crl_router_task_end(r, crl_sac_actor_params(s), task, err);
}

int crl_sac_l2m_history(const crl_sac *s) {
    return s->c.l2m_pool > 0 && s->c.l2m_history > 1 ? s->c.l2m_history : 1;
}

void crl_sac_l2m_envs(crl_sac *s, const float *obs_base, int n_env) {
    crl_actor_l2m_envs(s->actor, &s->aws_act, obs_base, n_env);
}

void crl_sac_l2m_episode_start(crl_sac *s, const float *obs, int rows) {
    crl_actor_l2m_episode_start(s->actor, &s->aws_act, obs, rows);
}

void crl_sac_l2m_track(crl_sac *s, const float *obs_base, int rows, int32_t *hist) {
    crl_actor_l2m_track(s->actor, obs_base, rows, hist);
}

double crl_sac_flops_per_update(const crl_sac *s) {
    const double B = s->c.batch;
    const double Mq = crl_mlp_macs_per_row(&s->critic);
    const double H = s->c.hidden;
    const double fq = (s->c.obs_dim + s->c.act_dim + s->ncond) * H;
    /* targets 2 x B; critics fwd 2 x 2B; critics dW 2 x B; critics dX above
     * the first layer for the B value-loss rows each plus the actor-loss rows
     * where that critic is the minimum (B between the two), and the action
     * block of the first layer for those B rows; plus the actor's part. */
    double macs = 2 * B * Mq + 4 * B * Mq + 2 * B * Mq + 3 * B * (Mq - fq) +
                  B * s->c.act_dim * H +
                  crl_actor_update_macs(s->actor, s->c.batch, s->c.obs_dim);
    return 2.0 * macs;
}

/* ---- checkpoints ----------------------------------------------------------
 * Little-endian host layout (crl targets x86-64 and aarch64 Linux). Version 2:
 *   "CRLSAC02", u32 actor kind, u32 obs, act, tasks, hidden, layers,
 *   u64 na, nc, u32 K, n_anchors, n_frozen, M, pool kind, rank, base heads,
 *   base head, f32 scale, u64 used, n_base, n_counts (crl_actor_ckpt),
 * then the sections: n_base floats of frozen base, the first `used` actor
 * parameters (the rest of the capacity is zero), critics, targets,
 * log_alpha, for each optimiser (actor over `used` entries, critic, alpha)
 * i64 t, m, v, the two generators, and n_counts i64 usage counts.
 * Version 1 ("CRLSAC01" plain, "CRLSACS1" CSP, "CRLSACL1" L2M) has the same
 * sections after a header that depends on the kind (crl_sac_blob_info reads
 * both). */

static const char SAC_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', '0', '1'};
static const char CSP_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', 'S', '1'};
static const char L2M_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', 'L', '1'};
static const char V2_MAGIC[8] = {'C', 'R', 'L', 'S', 'A', 'C', '0', '2'};

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
    crl_actor_ckpt ck;
    crl_actor_ckpt_describe(s->actor, &ck);
    const uint32_t kind = (uint32_t)ck.kind;
    uint32_t dims[5] = {(uint32_t)s->c.obs_dim, (uint32_t)s->c.act_dim,
                        (uint32_t)s->c.n_tasks, (uint32_t)s->c.hidden,
                        (uint32_t)s->c.layers};
    uint64_t sizes[2] = {s->na, s->nc};
    uint32_t cfg[8] = {ck.K,         ck.n_anchors, ck.n_frozen,   ck.M,
                       ck.pool_kind, ck.rank,      ck.base_tasks, ck.head};
    uint64_t tail[3] = {ck.used, ck.n_base, ck.n_counts};
    const size_t used = (size_t)ck.used;
    crl_wbuf_put(&w, V2_MAGIC, 8);
    crl_wbuf_put(&w, &kind, 4);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, sizes, sizeof sizes);
    crl_wbuf_put(&w, cfg, sizeof cfg);
    crl_wbuf_put(&w, &ck.scale, 4);
    crl_wbuf_put(&w, tail, sizeof tail);
    crl_wbuf_put(&w, s->actor->base, (size_t)ck.n_base * sizeof(float));
    crl_wbuf_put(&w, s->actor->params, used * sizeof(float));
    crl_wbuf_put(&w, s->critic_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->target_p, 2 * s->nc * sizeof(float));
    crl_wbuf_put(&w, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    put_adam(&w, &s->opt_actor, used);
    put_adam(&w, &s->opt_critic, s->opt_critic.n);
    put_adam(&w, &s->opt_alpha, s->opt_alpha.n);
    crl_wbuf_put_rng(&w, &s->rng);
    crl_wbuf_put_rng(&w, &s->act_rng);
    crl_wbuf_put(&w, s->actor->counts, (size_t)ck.n_counts * sizeof(int64_t));
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "sac: out of memory while saving");
    }
    *blob = w.p;
    *n = w.n;
    return CRL_OK;
}

/* Bytes of one generator in a blob (crl_wbuf_put_rng). */
static size_t rng_bytes(void) {
    crl_rng g;
    return sizeof g.s + 4 + 8;
}

int crl_sac_blob_info(const void *blob, size_t n, crl_sac_blob *info, crl_err *err) {
    memset(info, 0, sizeof *info);
    crl_rbuf r = {blob, n, 0, 0};
    char magic[8];
    uint32_t dims[5];
    uint64_t sizes[2];
    crl_actor_ckpt *ck = &info->actor;
    crl_rbuf_get(&r, magic, 8);
    if (r.bad) return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad magic");
    if (!memcmp(magic, V2_MAGIC, 8)) {
        uint32_t kind = 0, cfg[8];
        uint64_t tail[3];
        info->version = 2;
        crl_rbuf_get(&r, &kind, 4);
        crl_rbuf_get(&r, dims, sizeof dims);
        crl_rbuf_get(&r, sizes, sizeof sizes);
        crl_rbuf_get(&r, cfg, sizeof cfg);
        crl_rbuf_get(&r, &ck->scale, 4);
        crl_rbuf_get(&r, tail, sizeof tail);
        if (r.bad || kind >= CRL_ACTOR_N_KINDS)
            return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad header");
        ck->kind = (crl_actor_kind)kind;
        ck->K = cfg[0];
        ck->n_anchors = cfg[1];
        ck->n_frozen = cfg[2];
        ck->M = cfg[3];
        ck->pool_kind = cfg[4];
        ck->rank = cfg[5];
        ck->base_tasks = cfg[6];
        ck->head = cfg[7];
        ck->used = tail[0];
        ck->n_base = tail[1];
        ck->n_counts = tail[2];
    } else {
        info->version = 1;
        crl_rbuf_get(&r, dims, sizeof dims);
        crl_rbuf_get(&r, sizes, sizeof sizes);
        if (r.bad) return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad magic");
        ck->used = sizes[0];
        if (!memcmp(magic, SAC_MAGIC, 8)) {
            ck->kind = CRL_ACTOR_MLP;
        } else if (!memcmp(magic, CSP_MAGIC, 8)) {
            uint32_t sub[3] = {0, 0, 0};
            ck->kind = CRL_ACTOR_CSP;
            crl_rbuf_get(&r, sub, sizeof sub);
            crl_rbuf_get(&r, &ck->used, 8);
            ck->K = sub[0];
            ck->n_anchors = sub[1];
            ck->n_frozen = sub[2];
        } else if (!memcmp(magic, L2M_MAGIC, 8)) {
            uint32_t l2m[5] = {0, 0, 0, 0, 0};
            ck->kind = CRL_ACTOR_L2M;
            crl_rbuf_get(&r, l2m, sizeof l2m);
            crl_rbuf_get(&r, &ck->n_base, 8);
            ck->M = l2m[0];
            ck->pool_kind = l2m[1];
            ck->rank = l2m[2];
            ck->base_tasks = l2m[3];
            ck->head = l2m[4];
            ck->n_counts = l2m[0];
        } else {
            return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad magic");
        }
        if (r.bad) return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad header");
    }
    info->obs_dim = (int)dims[0];
    info->act_dim = (int)dims[1];
    info->n_tasks = (int)dims[2];
    info->hidden = (int)dims[3];
    info->layers = (int)dims[4];
    info->na = sizes[0];
    info->nc = sizes[1];
    /* Sizes are bounded before any product, so a corrupt header cannot wrap
     * the expected length around. */
    const uint64_t big = (uint64_t)1 << 40;
    if (dims[0] > (1u << 20) || dims[1] > (1u << 20) || dims[2] > (1u << 20) ||
        sizes[0] > big || sizes[1] > big || ck->used > sizes[0] || ck->n_base > big ||
        ck->n_counts > big)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: bad header");
    /* A plain actor stores all of its parameters (only CSP's subspace stores
     * the anchors it uses): readers copy na floats from actor_params. Found
     * by fuzz_checkpoint (an L2M base read past the blob). */
    if (ck->kind == CRL_ACTOR_MLP && ck->used != sizes[0])
        return crl_errf(
            err, CRL_ECORRUPT,
            "sac checkpoint: a plain actor stores %llu of its %llu parameters",
            (unsigned long long)ck->used, (unsigned long long)sizes[0]);
    const uint64_t used = ck->used, nc = sizes[1], T = dims[2];
    const uint64_t rest = (used + 4 * nc + T) * sizeof(float) + 3 * 8 +
                          (2 * used + 4 * nc + 2 * T) * sizeof(float) + 2 * rng_bytes() +
                          ck->n_counts * sizeof(int64_t);
    const uint64_t expect = r.off + ck->n_base * sizeof(float) + rest;
    if ((uint64_t)n != expect)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: %zu bytes, expected %llu", n,
                        (unsigned long long)expect);
    const unsigned char *p = (const unsigned char *)blob + r.off;
    info->base = ck->n_base ? p : NULL;
    p += ck->n_base * sizeof(float);
    info->actor_params = p;
    info->counts = ck->n_counts
                       ? (const unsigned char *)blob + n - ck->n_counts * sizeof(int64_t)
                       : NULL;
    return CRL_OK;
}

int crl_sac_load(crl_sac *s, const void *blob, size_t n, crl_err *err) {
    crl_sac_blob info;
    int rc = crl_sac_blob_info(blob, n, &info, err);
    if (rc) return rc;
    if ((rc = crl_actor_ckpt_check(s->actor, &info.actor, err))) return rc;
    if (info.obs_dim != s->c.obs_dim || info.act_dim != s->c.act_dim ||
        info.n_tasks != s->c.n_tasks || info.hidden != s->c.hidden ||
        info.layers != s->c.layers || info.na != s->na || info.nc != s->nc)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: shape %d/%d/%d tasks/%dx%d does not match the "
                        "configured %d/%d/%d tasks/%dx%d",
                        info.obs_dim, info.act_dim, info.n_tasks, info.layers,
                        info.hidden, s->c.obs_dim, s->c.act_dim, s->c.n_tasks,
                        s->c.layers, s->c.hidden);
    /* Everything is checked: from here on nothing fails. */
    const size_t used = (size_t)info.actor.used;
    crl_actor *a = s->actor;
    if (a->n_base) memcpy(a->base, info.base, a->n_base * sizeof(float));
    crl_rbuf r = {
        blob, n,
        (size_t)((const unsigned char *)info.actor_params - (const unsigned char *)blob),
        0};
    crl_rbuf_get(&r, a->params, used * sizeof(float));
    memset(a->params + used, 0, (s->na - used) * sizeof(float));
    crl_rbuf_get(&r, s->critic_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->target_p, 2 * s->nc * sizeof(float));
    crl_rbuf_get(&r, s->log_alpha, (size_t)s->c.n_tasks * sizeof(float));
    get_adam(&r, &s->opt_actor, used);
    get_adam(&r, &s->opt_critic, s->opt_critic.n);
    get_adam(&r, &s->opt_alpha, s->opt_alpha.n);
    crl_rbuf_get_rng(&r, &s->rng);
    crl_rbuf_get_rng(&r, &s->act_rng);
    if (a->n_counts) crl_rbuf_get(&r, a->counts, a->n_counts * sizeof(int64_t));
    if (r.bad || r.off != n)
        return crl_errf(err, CRL_ECORRUPT, "sac checkpoint: truncated or trailing bytes");
    crl_actor_ckpt_apply(a, &info.actor);
    return CRL_OK;
}
