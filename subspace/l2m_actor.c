/* The L2M actor: a crl_pool of modulators over a frozen base crl_mlp, behind
 * the actor interface. The actor's parameters are the pool's flat buffer
 * [keys | modulators]; the base lives in a->base, which nothing writes but
 * its owner (after creation) and checkpoint loading. Every row goes through
 * base head cfg.head, so acting needs no task id. Update rows are routed
 * with the train route, acting rows with the act route. */
#include "crl/actor.h"
#include "crl/pool.h"
#include "crl/router.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    crl_pool pool;
    crl_router router;        /* picks each row's modulator (router.h) */
    uintptr_t trk_lo, trk_hi; /* crl_actor_l2m_track: the tracked obs rows */
    int32_t *trk_hist;
    int cap; /* H - 1: earlier observations a query averages (0: none) */
} l2m_state;

/* Acting history of one workspace (so that every acting handle, e.g. each
 * clone of a runtime policy, keeps its own), per env (2 x max_batch envs):
 * the H - 1 observations acted on before, oldest first; acting steps of the
 * episode so far; the modulator held from step H on (--l2m-hold), -1 before. */
typedef struct {
    int n_env;
    float *ring;
    int *ring_n, *steps, *held;
    uintptr_t env_lo, env_hi; /* crl_actor_l2m_envs: rows inside are envs */
} acting_hist;

typedef struct {
    crl_pool_ws w; /* first: tests read the queries through it */
    int *heads;    /* max_batch x cfg.head */
    int fixed;     /* every row goes through cfg.head (else rows carry theirs) */
    acting_hist h;
} l2m_ws;

static l2m_state *st_of(const crl_actor *a) {
    return a->impl;
}

static int l2m_ws_alloc(const crl_actor *a, crl_actor_ws *ws, int max_batch,
                        crl_err *err) {
    l2m_ws *w = calloc(1, sizeof *w);
    if (!w) return crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
    w->heads = calloc((size_t)max_batch, sizeof(int));
    int rc = w->heads ? crl_pool_ws_alloc(&w->w, &st_of(a)->pool, max_batch, err)
                      : crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
    if (rc) {
        free(w->heads);
        free(w);
        return rc;
    }
    if (st_of(a)->cap > 0)
        rc = crl_pool_ws_history(&w->w, &st_of(a)->pool, st_of(a)->cap, err);
    if (!rc && (st_of(a)->router.ops->needs & CRL_ROUTER_NEEDS_LAYERS))
        rc = crl_pool_ws_layers(&w->w, &st_of(a)->pool, err);
    if (!rc && st_of(a)->router.top_k > 1)
        rc = crl_pool_ws_soft(&w->w, &st_of(a)->pool, st_of(a)->router.top_k, err);
    if (rc) {
        crl_pool_ws_free(&w->w);
        free(w->heads);
        free(w);
        return rc;
    }
    if (st_of(a)->cap > 0 || a->cfg.hold) {
        acting_hist *h = &w->h;
        h->n_env = 2 * max_batch;
        const size_t in = (size_t)a->net.spec.in_dim;
        h->ring =
            calloc((size_t)h->n_env * (size_t)st_of(a)->cap * in + 1, sizeof(float));
        h->ring_n = calloc(3 * (size_t)h->n_env, sizeof(int));
        if (!h->ring || !h->ring_n) {
            free(h->ring);
            free(h->ring_n);
            crl_pool_ws_free(&w->w);
            free(w->heads);
            free(w);
            return crl_errf(err, CRL_ENOMEM, "actor ws: out of memory");
        }
        h->steps = h->ring_n + h->n_env;
        h->held = h->steps + h->n_env;
        for (int e = 0; e < h->n_env; e++) h->held[e] = -1;
    }
    for (int i = 0; i < max_batch; i++) w->heads[i] = a->cfg.head;
    w->fixed = a->cfg.head >= 0;
    ws->impl = w;
    ws->out = w->w.out;
    return CRL_OK;
}

static void l2m_ws_free(crl_actor_ws *ws) {
    l2m_ws *w = ws->impl;
    crl_pool_ws_free(&w->w);
    free(w->h.ring);
    free(w->h.ring_n);
    free(w->heads);
    free(w);
}

/* The pool's routing of one forward: a call into the router with the rows'
 * role and task (on the caller's stack: the two update lanes forward at
 * once on their own workspaces), then, for acting rows with --l2m-hold, the
 * modulator each env holds from its episode's step H on. */
typedef struct {
    crl_router *rt;
    crl_router_rows rows;
    const int *steps, *held; /* acting rows' envs, or NULL */
    int H;
    int k;    /* soft: modulators merged per row (1: one) */
    int *idx; /* soft: B x k indices, */
    float *w; /* and weights (the pool workspace's kidx, kw) */
} call_ctx;

static int call_route(void *ctx, const float *params, const float *q,
                      const float *const *layer_in, int B, int *sel, crl_err *err) {
    call_ctx *c = ctx;
    c->rows.B = B;
    c->rows.q = q;
    c->rows.layer_in = layer_in;
    crl_router_out o = {sel, 1, c->k > 1 ? c->idx : NULL, c->k > 1 ? c->w : NULL};
    int rc = crl_router_route(c->rt, params, &c->rows, &o, err);
    if (!rc && o.k != c->k)
        rc = crl_errf(err, CRL_EINVAL, "l2m: router gave %d modulators per row, not %d",
                      o.k, c->k);
    /* A held row runs its held modulator alone (weight 1, the others 0). */
    for (int i = 0; !rc && c->held && i < B; i++)
        if (c->steps[i] >= c->H && c->held[i] >= 0) {
            sel[i] = c->held[i];
            for (int j = 0; c->k > 1 && j < c->k; j++) {
                c->idx[(size_t)i * c->k + j] =
                    j ? c->idx[(size_t)i * c->k + j] : c->held[i];
                c->w[(size_t)i * c->k + j] = j ? 0.0f : 1.0f;
            }
        }
    return rc;
}

/* The history slot of acting rows starting at x: inside the registered env
 * array, its row (slots [0, n_env / 2)); any other rows are slots n_env / 2
 * + 0, 1, ... -1 if B rows from there do not fit. */
static int env_of(const crl_actor *a, const acting_hist *st, const float *x, int B) {
    const uintptr_t o = (uintptr_t)x, row = sizeof(float) * (size_t)a->net.spec.in_dim;
    const int half = st->n_env / 2;
    if (st->env_hi > st->env_lo && o >= st->env_lo && o < st->env_hi &&
        (o - st->env_lo) % row == 0) {
        const int e0 = (int)((o - st->env_lo) / row);
        return e0 + B <= half ? e0 : -1;
    }
    return B <= half ? half : -1;
}

/* After acting rows of envs [e0, e0 + B): their observations join the
 * histories, and at step H the modulator to hold is recorded. */
static void push_history(const crl_actor *a, acting_hist *st, const float *x, int B,
                         int e0, const int *sel) {
    const size_t in = (size_t)a->net.spec.in_dim, cap = (size_t)st_of(a)->cap;
    const int H = a->cfg.history > 1 ? a->cfg.history : 1;
    for (int i = 0; i < B; i++) {
        const int e = e0 + i;
        if (cap > 0) {
            float *ring = st->ring + (size_t)e * cap * in;
            if ((size_t)st->ring_n[e] == cap)
                memmove(ring, ring + in, (cap - 1) * in * sizeof(float));
            else
                st->ring_n[e]++;
            memcpy(ring + (size_t)(st->ring_n[e] - 1) * in, x + (size_t)i * in,
                   in * sizeof(float));
        }
        if (st->steps[e] < INT32_MAX) st->steps[e]++;
        if (st->steps[e] == H) st->held[e] = sel[i];
    }
}

/* Update rows route on the windows they bring (crl_actor_rows.hist);
 * acting rows on their envs' histories, and are tallied when inside the
 * tracked observation array. */
static const float *l2m_forward(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                                const crl_actor_rows *rows) {
    l2m_state *st = st_of(a);
    l2m_ws *w = ws->impl;
    const int k = st->router.top_k > 1 ? st->router.top_k : 1;
    call_ctx c = {&st->router, {0, NULL, NULL, rows->acting, rows->task},
                  NULL,        NULL,
                  0,           k,
                  w->w.kidx,   w->w.kw};
    w->w.k = k;
    acting_hist *h = &w->h;
    const int e0 = rows->acting && h->steps ? env_of(a, h, x, B) : -1;
    w->w.hist = NULL;
    w->w.hist_n = NULL;
    w->w.hist_cap = 0;
    if (!rows->acting && rows->hist && rows->hist_n && st->cap > 0) {
        w->w.hist = rows->hist;
        w->w.hist_n = rows->hist_n;
        w->w.hist_cap = rows->hist_cap;
    } else if (e0 >= 0 && st->cap > 0) {
        w->w.hist = h->ring + (size_t)e0 * st->cap * (size_t)a->net.spec.in_dim;
        w->w.hist_n = h->ring_n + e0;
        w->w.hist_cap = st->cap;
    }
    if (e0 >= 0 && a->cfg.hold) {
        c.steps = h->steps + e0;
        c.held = h->held + e0;
        c.H = a->cfg.history > 1 ? a->cfg.history : 1;
    }
    crl_pool_route r = {.mode = CRL_POOL_ROUTE_CALL,
                        .call = call_route,
                        .ctx = &c,
                        .layers = (st->router.ops->needs & CRL_ROUTER_NEEDS_LAYERS) != 0};
    crl_pool_forward(&st->pool, a->base, rows->params ? rows->params : a->params, &w->w,
                     x, B, w->fixed ? w->heads : rows->head, &r, NULL);
    if (!rows->acting) return w->w.out;
    if (e0 >= 0) push_history(a, h, x, B, e0, w->w.sel);
    const uintptr_t o = (uintptr_t)x, row = sizeof(float) * (size_t)a->net.spec.in_dim;
    if (st->trk_hist && o >= st->trk_lo && o < st->trk_hi &&
        (o - st->trk_lo) % row == 0) {
        const size_t r0 = (o - st->trk_lo) / row, nr = (st->trk_hi - st->trk_lo) / row;
        for (size_t i = 0; i < (size_t)B && r0 + i < nr; i++)
            st->trk_hist[(r0 + i) * (size_t)st->pool.M + (size_t)w->w.sel[i]]++;
    }
    return w->w.out;
}

static void l2m_backward(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                         int dw_rows) {
    (void)dw_rows; /* the pool's grouping covers every row of the forward */
    l2m_ws *w = ws->impl;
    crl_pool_backward(&st_of(a)->pool, a->base, a->params, grads, &w->w, dout);
}

static void l2m_init_params(crl_actor *a, crl_rng *rng) {
    crl_pool_init_params(&st_of(a)->pool, a->params, rng);
}

/* The router's loss term over n of the B actor-loss rows (l2m: the key
 * pull, as its n/B share of the mean; its gradient lands in the keys block
 * only). */
static double l2m_extra_loss(crl_actor *a, const crl_actor_ws *ws, int n, int B,
                             float *grads) {
    const l2m_ws *w = ws->impl;
    return crl_router_extra_loss(&st_of(a)->router, a->params, &w->w, n, B, grads);
}

/* Usage counts: the routing of the actor-loss rows. */
static void l2m_tally(crl_actor *a, const crl_actor_ws *ws) {
    const l2m_ws *w = ws->impl;
    crl_pool_count(&st_of(a)->pool, &w->w, a->counts);
}

/* The base's MACs plus, per row and hidden layer, r (in + out) for LoRA's
 * x A and (x A) B forward, twice that backward (no base dW). */
static double l2m_update_macs(const crl_actor *a, int B, int obs_dim) {
    const crl_pool *p = &st_of(a)->pool;
    const crl_mlp_spec *s = &a->net.spec;
    const double Ma = crl_mlp_macs_per_row(&a->net);
    const double fa = (double)obs_dim * s->hidden[0];
    double lora = 0;
    if (p->kind == CRL_POOL_LORA)
        for (int l = 0, in = obs_dim; l < s->n_hidden; l++, in = s->hidden[l - 1])
            lora += (double)p->rank * (in + (double)s->hidden[l]);
    return 2.0 * B * (Ma + lora) + (double)B * (Ma - fa) + 2.0 * B * lora;
}

static void l2m_ckpt_describe(const crl_actor *a, crl_actor_ckpt *ck) {
    const crl_pool *p = &st_of(a)->pool;
    ck->M = (uint32_t)p->M;
    ck->pool_kind = (uint32_t)p->kind;
    ck->rank = (uint32_t)p->rank;
    ck->base_tasks = (uint32_t)a->net.spec.n_heads;
    ck->head = (uint32_t)a->cfg.head;
    ck->scale = p->scale;
}

static int l2m_ckpt_check(const crl_actor *a, const crl_actor_ckpt *ck, crl_err *err) {
    const crl_pool *p = &st_of(a)->pool;
    if (ck->M != (uint32_t)p->M || ck->pool_kind != (uint32_t)p->kind ||
        ck->rank != (uint32_t)p->rank ||
        ck->base_tasks != (uint32_t)a->net.spec.n_heads ||
        ck->head != (uint32_t)a->cfg.head || ck->used != a->n_params)
        return crl_errf(err, CRL_ECORRUPT,
                        "sac checkpoint: the L2M pool or base does not match");
    return CRL_OK;
}

static void l2m_destroy(crl_actor *a) {
    l2m_state *st = a->impl;
    if (st) crl_router_free(&st->router);
    free(a->impl);
    if (!a->cfg.borrowed) free(a->base);
    free(a->counts);
}

static const crl_actor_ops l2m_ops = {
    .name = "l2m-pool",
    .ws_alloc = l2m_ws_alloc,
    .ws_free = l2m_ws_free,
    .forward = l2m_forward,
    .backward = l2m_backward,
    .init_params = l2m_init_params,
    .extra_loss = l2m_extra_loss,
    .tally = l2m_tally,
    .update_macs = l2m_update_macs,
    .ckpt_describe = l2m_ckpt_describe,
    .ckpt_check = l2m_ckpt_check,
    .destroy = l2m_destroy,
};

int crl__actor_l2m_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err);
int crl__actor_l2m_create(const crl_actor_config *cfg, crl_actor *a, crl_err *err) {
    int rc = crl_actor_base_init(a, &l2m_ops, cfg, err);
    if (rc) return rc;
    l2m_state *st = calloc(1, sizeof *st);
    a->impl = st;
    if (!st) return crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    if ((rc = crl_pool_init(&st->pool, &a->net, (crl_pool_kind)cfg->pool_kind, cfg->M,
                            cfg->rank, cfg->scale, err)))
        return rc;
    a->n_params = st->pool.n_params;
    a->n_counts = (size_t)cfg->M;
    a->counts = calloc(a->n_counts, sizeof(int64_t));
    if (!a->counts) return crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    const crl_router_config rc_cfg = {cfg->router,  cfg->n_tasks > 0 ? cfg->n_tasks : 1,
                                      cfg->weights, cfg->collect,
                                      cfg->soft_k,  cfg->soft_temp};
    if ((rc =
             crl_router_init(&st->router, &rc_cfg, &st->pool, a->counts, cfg->pull, err)))
        return rc;
    if (cfg->history < 0 || cfg->history > CRL_L2M_MAX_HISTORY)
        return crl_errf(err, CRL_EINVAL, "actor: l2m history %d not in 1..%d",
                        cfg->history, CRL_L2M_MAX_HISTORY);
    st->cap = cfg->history > 1 ? cfg->history - 1 : 0;
    a->tr_lo = 0;
    a->tr_hi = a->n_params;
    a->n_base = a->net.n_params;
    if (!cfg->borrowed) a->base = calloc(a->n_base, sizeof(float));
    if (!cfg->borrowed && !a->base)
        return crl_errf(err, CRL_ENOMEM, "actor: out of memory");
    return CRL_OK;
}

const crl_pool *crl_actor_pool(const crl_actor *a) {
    return a && a->ops == &l2m_ops ? &st_of(a)->pool : NULL;
}

int crl_actor_l2m_set_route(crl_actor *a, const crl_pool_route *train,
                            const crl_pool_route *act, crl_err *err) {
    if (!a || a->ops != &l2m_ops)
        return crl_errf(err, CRL_EINVAL, "sac: not an L2M learner");
    return crl_router_set_routes(&st_of(a)->router, train, act, err);
}

crl_router *crl_actor_router(crl_actor *a) {
    return a && a->ops == &l2m_ops ? &st_of(a)->router : NULL;
}

static void reset_slots(acting_hist *st, int e0, int n) {
    for (int e = e0; e < e0 + n && e < st->n_env; e++) {
        st->ring_n[e] = 0;
        st->steps[e] = 0;
        st->held[e] = -1;
    }
}

/* The acting history of ws, or NULL. */
static acting_hist *hist_of(const crl_actor *a, crl_actor_ws *ws) {
    if (!a || a->ops != &l2m_ops || !ws || !ws->impl) return NULL;
    acting_hist *h = &((l2m_ws *)ws->impl)->h;
    return h->steps ? h : NULL;
}

void crl_actor_l2m_episode_start(crl_actor *a, crl_actor_ws *ws, const float *obs,
                                 int rows) {
    acting_hist *h = hist_of(a, ws);
    if (!h) return;
    if (!obs) {
        reset_slots(h, 0, h->n_env);
        return;
    }
    const int e0 = env_of(a, h, obs, rows);
    if (e0 >= 0) reset_slots(h, e0, rows);
}

void crl_actor_l2m_envs(crl_actor *a, crl_actor_ws *ws, const float *obs_base,
                        int n_env) {
    acting_hist *h = hist_of(a, ws);
    if (!h) return;
    h->env_lo = (uintptr_t)obs_base;
    h->env_hi =
        obs_base && n_env > 0
            ? h->env_lo + sizeof(float) * (size_t)a->net.spec.in_dim * (size_t)n_env
            : h->env_lo;
    reset_slots(h, 0, h->n_env / 2);
}

void crl_actor_l2m_track(crl_actor *a, const float *obs_base, int rows, int32_t *hist) {
    if (!a || a->ops != &l2m_ops) return;
    l2m_state *st = st_of(a);
    st->trk_hist = obs_base && hist && rows > 0 ? hist : NULL;
    st->trk_lo = (uintptr_t)obs_base;
    st->trk_hi = st->trk_lo + sizeof(float) * (size_t)a->net.spec.in_dim *
                                  (size_t)(rows > 0 ? rows : 0);
}
