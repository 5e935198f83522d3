/* crl pool: the L2M modulation pool over a FROZEN base actor (a crl_mlp and
 * its parameters, which this module only reads). M modulators, each holding
 * for every hidden Linear layer l (in_l x out_l) either
 *   - LoRA:   A_l [in_l x r], B_l [r x out_l]; y = x W + b + s * (x A) B, or
 *   - (IA)^3: g_l [out_l];                      y = (x W + b) * g (elementwise),
 * applied to the Linear output BEFORE LayerNorm / activation. The output heads
 * and the LayerNorm are not modulated. Plus one learnable key per modulator
 * and the routing that picks a modulator per row from the base's first-layer
 * embedding (the query). See docs/pool.md.
 *
 * Flat parameter layout (n_params floats, one buffer for keys + modulators):
 *
 *   [ keys: M x D ][ modulator 0 ][ modulator 1 ] ... [ modulator M-1 ]
 *
 * with D = hidden[0] (the query dimension). Every modulator block is, per
 * hidden layer l in order: A_l, B_l (LoRA) or g_l (IA3). Gradients and Adam
 * moments use the same layout.
 *
 * The forward/backward supply the modulated Linear layer to nn/net.c's layer
 * loop; behind the actor interface the pool is the CRL_ACTOR_L2M kind
 * (subspace/l2m_actor.c, crl_actor_pool, crl_actor_l2m_*).
 *
 * Knows nothing of SAC or the L2M schedule (agents/ does that). */
#ifndef CRL_POOL_H
#define CRL_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "base.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CRL_POOL_LORA = 0, CRL_POOL_IA3 = 1 } crl_pool_kind;

#define CRL_POOL_DEFAULT_M     30
#define CRL_POOL_DEFAULT_RANK  8
#define CRL_POOL_DEFAULT_SCALE 2.0f

typedef struct crl_pool {
    crl_mlp base; /* copy of the base's layout (offsets into the base buffer) */
    crl_pool_kind kind;
    int M;           /* modulators */
    int rank;        /* LoRA rank r (0 for IA3) */
    float scale;     /* LoRA scale s */
    int key_dim;     /* D = base hidden[0] */
    size_t keys;     /* offset of the keys block (0) */
    size_t mod_size; /* floats per modulator */
    /* Offsets INSIDE a modulator block (add crl_pool_mod_offset). */
    size_t A[CRL_MLP_MAX_HIDDEN], B[CRL_MLP_MAX_HIDDEN]; /* LoRA */
    size_t g[CRL_MLP_MAX_HIDDEN];                        /* IA3 */
    size_t n_params;                                     /* M * D + M * mod_size */
} crl_pool;

/* Layout for M modulators of `kind` over the base layout `base` (rank and
 * scale are read for LoRA only; CRL_POOL_DEFAULT_* are the L2M values).
 * CRL_EINVAL on M < 1, rank < 1 (LoRA), or a bad base. */
int crl_pool_init(crl_pool *p, const crl_mlp *base, crl_pool_kind kind, int M, int rank,
                  float scale, crl_err *err);
/* Offset of modulator m's block in the flat buffer. */
size_t crl_pool_mod_offset(const crl_pool *p, int m);
/* Keys uniform(-1, 1); LoRA A_l uniform(-1/sqrt(in_l), 1/sqrt(in_l)) (the
 * LoRA reference's kaiming-uniform bound) and B_l = 0; IA3 g_l = 1. So every
 * modulator starts as the identity. Draw order: keys, then modulators in
 * order. params holds p->n_params floats. */
void crl_pool_init_params(const crl_pool *p, float *params, crl_rng *rng);

/* ---- routing ------------------------------------------------------------------ */

typedef enum {
    /* argmax_m cos(q, k_m): evaluation, and training on the first task. */
    CRL_POOL_ROUTE_COS = 0,
    /* argmax_m ((cos + 1) / 2) * w_m with the usage weight
     * w_m = (1 / (1 + c_m)) / max_k (1 / (1 + c_k)) = (1 + min_k c_k) / (1 + c_m),
     * c = route.counts: training on tasks after the first. */
    CRL_POOL_ROUTE_USAGE = 1,
    /* argmax cos inside task t's slice [t*M/T, (t+1)*M/T) (integer division),
     * t = route.task, T = route.n_tasks (needs 1 <= T <= M, 0 <= t < T). */
    CRL_POOL_ROUTE_ORACLE = 2,
    /* route.sel[r] given by the caller (tests, replays). */
    CRL_POOL_ROUTE_FIXED = 3,
    /* route.call(route.ctx, ...) picks sel from the queries: a router of
     * include/crl/router.h (the L2M actor routes through this). */
    CRL_POOL_ROUTE_CALL = 4
} crl_pool_route_mode;

typedef struct {
    crl_pool_route_mode mode;
    int task, n_tasks;     /* ORACLE */
    const int64_t *counts; /* USAGE: M usage counts (live weights) */
    const int *sel;        /* FIXED: B modulator indices */
    /* USAGE: if non-NULL, M weights held fixed by the caller (the reference's
     * inverse-frequency weights frozen at a task start, router.h); the score
     * is then ((cos + 1) / 2) * weights[m] and counts are not read. */
    const double *weights;
    /* CALL: sel[0..B) from the B x D queries q; returns CRL_OK or an error.
     * With layers = 1 (room made by crl_pool_ws_layers) layer_in[l] is the
     * input of hidden layer l of the UNMODULATED base for every row (B x
     * in_l: x itself for l = 0), else layer_in is NULL. */
    int (*call)(void *ctx, const float *params, const float *q,
                const float *const *layer_in, int B, int *sel, crl_err *err);
    void *ctx;
    int layers;
} crl_pool_route;

/* Route B queries q (B x D) with the keys in params: sel[r] for each row.
 * Cosine is computed in double, and 0 if |q| or |k| is 0. Ties go to the
 * LOWEST modulator index (strict > while scanning m upwards). CRL_EINVAL on a
 * bad route (mode, task/n_tasks, NULL counts/sel, sel out of range). */
int crl_pool_route_rows(const crl_pool *p, const float *params, const float *q, int B,
                        const crl_pool_route *route, int *sel, crl_err *err);

/* The routing scores of ONE query q (D floats) against every modulator:
 * scores[m] (M doubles) is cos, ((cos + 1) / 2) * w_m, or cos inside the
 * oracle slice and -INFINITY outside it, per route->mode (FIXED: cos). The
 * routed modulator is the first argmax of these. CRL_EINVAL on a bad route. */
int crl_pool_scores(const crl_pool *p, const float *params, const float *q,
                    const crl_pool_route *route, double *scores, crl_err *err);

/* Add each of the last forward's ws->B routing choices to counts (M int64).
 * The caller decides which forwards count (L2M: the actor-update batches). */
struct crl_pool_ws;
void crl_pool_count(const crl_pool *p, const struct crl_pool_ws *ws, int64_t *counts);
/* Modulators with a nonzero count (the "used" number L2M reports). */
int crl_pool_n_used(const crl_pool *p, const int64_t *counts);
/* The reference's usage weights (ml-jku/L2M, base_prompt.py update_inv_counts):
 * freq_m = counts_m / sum_k counts_k, w_m = (1 / (freq_m + 1e-6)) normalised
 * to sum 1. All weights 1/M when every count is 0. w: M doubles. */
void crl_pool_usage_weights(const crl_pool *p, const int64_t *counts, double *w);

/* ---- forward / backward -------------------------------------------------------- */

typedef struct crl_pool_ws {
    int max_batch;
    int B;
    const float *x;  /* input of the last forward (caller keeps it alive) */
    const int *head; /* per-row head of the last forward, NULL = head 0 */
    int *sel;        /* B: modulator of each row */
    int *perm;       /* B: rows grouped by modulator (stable: ascending rows) */
    int *gstart;     /* M + 1: group m is perm[gstart[m] .. gstart[m+1]) */
    int *live;       /* M: LoRA group has a nonzero B_l (per layer, scratch) */
    float *mem;      /* one allocation for every float buffer below */
    float *q;        /* B x D: queries of the last forward (base only) */
    float *z[CRL_MLP_MAX_HIDDEN];    /* IA3: unscaled Linear outputs */
    float *pre[CRL_MLP_MAX_HIDDEN];  /* modulated Linear outputs */
    float *post[CRL_MLP_MAX_HIDDEN]; /* after LayerNorm/activation */
    float *xa[CRL_MLP_MAX_HIDDEN];   /* LoRA: x A, B x r, in GROUPED row order */
    float *ln_xhat, *ln_rstd;
    float *out;     /* B x out_dim */
    float *d0, *d1; /* backward deltas, B x max width */
    float *s0, *s1; /* grouped gathers, B x max width */
    float *sxa;     /* B x r backward scratch */
    /* History query: set hist / hist_n / hist_cap before a forward (NULL:
     * the query is the current row's embedding alone). hist holds up to
     * hist_cap earlier observations per row (B x hist_cap x in_dim, row r's
     * hist_n[r] first, oldest first); the query of row r is then the mean
     * of the embeddings of those and of x_r. */
    const float *hist;
    const int *hist_n;
    int hist_cap;
    int hist_max;                   /* capacity (crl_pool_ws_history) */
    float *lin[CRL_MLP_MAX_HIDDEN]; /* base layer inputs (crl_pool_ws_layers) */
    float *lmem;
    float *hmem, *hx, *hz, *he, *hxh, *hr; /* its scratch */
    /* Soft merging (crl_pool_ws_soft, the `soft` router): set k > 1 before
     * a forward and every row runs its own merged modulator
     * blk_r = sum_i kw[r k + i] theta_{kidx[r k + i]} (crl_soft_merge);
     * the CALL route fills kidx and kw (B x k) besides sel (= kidx[r k]).
     * k <= 1 is the grouped one-modulator path. The backward writes each
     * row's merged-block gradient into gblk and hands it to the k
     * modulators with crl_soft_merge_backward (weights held constant). */
    int k, kmax;
    int *kidx;
    float *kw, *blk, *gblk; /* kw: B x kmax; blk, gblk: B x mod_size */
    float *smem;
} crl_pool_ws;

int crl_pool_ws_alloc(crl_pool_ws *ws, const crl_pool *p, int max_batch, crl_err *err);
/* Room for the unmodulated base's per-layer inputs that a CALL route with
 * layers = 1 hands its router (allocated once). */
int crl_pool_ws_layers(crl_pool_ws *ws, const crl_pool *p, crl_err *err);
/* Room for history queries of up to cap earlier observations per row
 * (allocated once; forwards never allocate). */
int crl_pool_ws_history(crl_pool_ws *ws, const crl_pool *p, int cap, crl_err *err);
/* Room for soft merging of up to kmax modulators per row (allocated once:
 * 2 x max_batch x mod_size floats plus the indices and weights). */
int crl_pool_ws_soft(crl_pool_ws *ws, const crl_pool *p, int kmax, crl_err *err);
void crl_pool_ws_free(crl_pool_ws *ws);

/* Forward B rows of x (B x in_dim) through the base modulated per row:
 * computes the queries (ws->q: the base's first-layer embedding of x_r, or
 * with ws->hist the mean of it and its earlier observations' embeddings),
 * routes (ws->sel), groups the rows
 * (ws->perm/gstart), and runs the network. head: per-row head or NULL for
 * head 0. Output in ws->out (B x out_dim). base_params is never written.
 * CRL_EINVAL on B out of [0, max_batch] or a bad route (nothing computed). */
int crl_pool_forward(const crl_pool *p, const float *base_params, const float *params,
                     crl_pool_ws *ws, const float *x, int B, const int *head,
                     const crl_pool_route *route, crl_err *err);

/* Backward of the last forward over its ws->B rows (unlike crl_mlp, do not
 * lower ws->B: the stored grouping covers every row). dout: B x out_dim.
 * grads (pool layout) is ACCUMULATED for the modulators' A/B or g only; the
 * keys block is not touched (keys learn from crl_pool_pull only) and the base
 * gets no gradient. No dx. A soft forward (ws->k > 1) gives modulator
 * kidx[r k + i] the share kw[r k + i] of row r's merged-block gradient; the
 * weights are constants here (no gradient reaches the keys through them). */
void crl_pool_backward(const crl_pool *p, const float *base_params, const float *params,
                       float *grads, crl_pool_ws *ws, const float *dout);

/* Key pull term of the last forward: returns
 *   L_pull = -coef * (1/B) * sum_r cos(q_r, k_sel[r])   (L2M: coef = 0.5),
 * and, if grads is non-NULL, ACCUMULATES dL_pull/dk into the keys block of
 * grads (only selected keys get a gradient; none if |q| or |k| is 0). */
double crl_pool_pull(const crl_pool *p, const float *params, const crl_pool_ws *ws,
                     float coef, float *grads);

/* ---- the L2M actor (subspace/l2m_actor.c) ------------------------------------ */

/* Pin the routing of the actor's update rows (train) and acting rows (act),
 * instead of the router's own, until its next task start. counts is ignored
 * (the actor's own counts are used); for an ORACLE act route the task is the
 * acting rows' task. CRL_EINVAL for a bad, FIXED or CALL route, a router
 * without pool routes, or an actor that is not L2M. */
int crl_actor_l2m_set_route(crl_actor *a, const crl_pool_route *train,
                            const crl_pool_route *act, crl_err *err);
/* The actor's router (router.h), NULL for an actor that is not L2M. Tell it
 * task starts (crl_router_task_start) and evaluations (crl_router_eval). */
struct crl_router;
struct crl_router *crl_actor_router(crl_actor *a);
/* History query of acting rows (cfg.history = H > 1) and --l2m-hold: each
 * acting workspace keeps, per env, the observations it acted on in the
 * current episode (the last H - 1; max_batch envs of each kind). Acting rows
 * whose x lies inside the array registered by crl_actor_l2m_envs (n_env
 * rows, e.g. the evaluator's) are those envs, and registering resets their
 * histories; any other acting rows (a single collection env's buffer) are
 * a second set of envs 0, 1, ... in row order. At an episode start call
 * crl_actor_l2m_episode_start with the obs row(s) the env acts on (NULL:
 * every env). No-ops for an actor that is not L2M or has no history. */
#define CRL_L2M_MAX_HISTORY 64
void crl_actor_l2m_envs(crl_actor *a, crl_actor_ws *ws, const float *obs_base, int n_env);
void crl_actor_l2m_episode_start(crl_actor *a, crl_actor_ws *ws, const float *obs,
                                 int rows);
/* Tally, per row of the caller's observation array obs_base (rows x in_dim),
 * the modulator every acting forward on rows inside it routes to:
 * hist[r * M + m] += 1 (hist: rows x M, zeroed by the caller). NULL stops.
 * No-op for an actor that is not L2M. */
void crl_actor_l2m_track(crl_actor *a, const float *obs_base, int rows, int32_t *hist);

#ifdef __cplusplus
}
#endif
#endif
