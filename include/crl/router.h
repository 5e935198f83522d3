/* crl router: how an L2M pool picks the modulator of each row.
 *
 * A router is a table of operations (crl_router_ops) and an instance
 * (crl_router) owned by the L2M actor (subspace/l2m_actor.c). The actor
 * picks the kind ONCE by name (crl_router_find, the table in
 * subspace/router.c) and afterwards only calls operations: the forward,
 * the SAC update, the continual runner and the policy runtime never test
 * which router they hold. See docs/pool.md ("Routers") and docs/design.md
 * ("How to extend crl: a router").
 *
 * What every router gets per forward: the B queries (B x D, D = the base's
 * hidden[0]; the query is the mean of the frozen base's first-layer
 * embeddings over the row's history window, pool.h), whether the rows act
 * or train, and the task the rows belong to (used by the oracle only). A
 * router that scores from the per-layer inputs (the `arrow` prototypes)
 * sets CRL_ROUTER_NEEDS_LAYERS; one that merges several modulators per row
 * (`soft`) returns top_k > 1 indices and weights per row.
 *
 * The kinds built here (subspace/router_l2m.c):
 *   l2m     learned keys and the key pull; training rows of tasks after the
 *           first score ((cos + 1) / 2) * w_m with the usage weight (frozen
 *           at each task start, or live), acting rows plain cosine;
 *   oracle  cosine inside the task's slice of the pool (needs the task id);
 *   cos     plain cosine everywhere (keys and pull, no usage weight).
 * And in subspace/router_soft_kind.c:
 *   soft    l2m's scores of every modulator, the top k (--l2m-soft-k) with
 *           softmax(score / T) weights; the pool merges them per row.
 * arrow (subspace/router_arrow_kind.c): zero-shot SVD prototypes of the
 *         LoRA updates for acting rows; a fixed least-used modulator per task
 *         for training rows (docs/routers.md).
 * l2r (subspace/router_l2r_kind.c): a linear classifier of the query trained
 *         on the method's query memory at task ends (docs/routers.md). */
#ifndef CRL_ROUTER_H
#define CRL_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Usage weights of the l2m router. */
typedef enum {
    /* (1 + min_k c_k) / (1 + c_m) from the counts as they are at every
     * update (crl builds before issue 19; old runs decode to it). */
    CRL_ROUTER_WEIGHTS_LIVE = 0,
    /* The reference (ml-jku/L2M): normalise(1 / (freq + 1e-6)) from the
     * counts at the task's start, held for the whole task. */
    CRL_ROUTER_WEIGHTS_FROZEN = 1
} crl_router_weights;

/* How collection (acting while training) routes. */
typedef enum {
    CRL_ROUTER_COLLECT_TRAIN = 0, /* with the training route (old runs) */
    CRL_ROUTER_COLLECT_EVAL = 1   /* as evaluation: plain cosine (the reference) */
} crl_router_collect;

typedef struct {
    const char *kind; /* a name of the table; NULL = "l2m" */
    int n_tasks;      /* tasks of the run (oracle slices), >= 1 */
    int weights;      /* crl_router_weights */
    int collect;      /* crl_router_collect */
    int soft_k;       /* soft: modulators merged per row (0 = CRL_ROUTER_SOFT_K) */
    float soft_temp;  /* soft: softmax temperature (0 = CRL_ROUTER_SOFT_TEMP) */
} crl_router_config;

#define CRL_ROUTER_SOFT_K    2
#define CRL_ROUTER_SOFT_TEMP 1.0f

/* What a router needs beyond the queries (crl_router_ops.needs). */
enum {
    CRL_ROUTER_NEEDS_KEYS = 1,    /* the keys block of the pool is used */
    CRL_ROUTER_NEEDS_LAYERS = 2,  /* per-layer inputs (crl_router_rows.layer_in) */
    CRL_ROUTER_NEEDS_TASK_ID = 4, /* the rows' task (oracle) */
};

/* Rows to route. */
typedef struct {
    int B;
    const float *q;               /* B x D queries */
    const float *const *layer_in; /* NEEDS_LAYERS: layer l's input, B x in_l; else NULL */
    int acting;                   /* 0: update rows, 1: acting rows */
    int task;                     /* the rows' task, -1 unknown */
} crl_router_rows;

/* A choice per row: sel[r] (the top-1). Routers with top_k > 1 also fill
 * idx (B x k) and w (B x k, summing to 1 per row). */
typedef struct {
    int *sel;
    int k;
    int *idx;
    float *w;
} crl_router_out;

typedef struct crl_router crl_router;

typedef struct {
    const char *name;
    const char *what; /* one line for --help */
    unsigned needs;   /* CRL_ROUTER_NEEDS_* */
    int top_k;        /* modulators merged per row (1: hard routing) */
    /* Kind state (r->impl) for r->pool; NULL: none. */
    int (*init)(crl_router *r, crl_err *err);
    void (*destroy)(crl_router *r);
    /* Required: choose per row. params: the pool's flat buffer. */
    int (*route)(crl_router *r, const float *params, const crl_router_rows *rows,
                 crl_router_out *out, crl_err *err);
    /* Optional hooks (NULL: nothing to do). */
    /* A task starts (or resumes: the same task again). start_counts are the
     * usage counts at the task's first step (the l2m router freezes its
     * weights from them). */
    void (*task_start)(crl_router *r, int task, const int64_t *start_counts);
    /* Evaluation begins (on = 1) or ends (on = 0). */
    void (*eval)(crl_router *r, int on);
    /* A task ended (a learned router trains on its memory here). */
    int (*task_end)(crl_router *r, const float *params, int task, crl_err *err);
    /* The modulators changed (prototypes taken from them are stale). */
    void (*changed)(crl_router *r, const float *params);
    /* Extra actor-loss term of the last forward on ws over n of B rows (the
     * l2m key pull); gradient ACCUMULATED into grads (pool layout). */
    double (*extra_loss)(crl_router *r, const float *params, const crl_pool_ws *ws, int n,
                         int B, float *grads);
    /* Fixed routes instead of the kind's own (tests, the policy runtime):
     * CRL_EINVAL if the kind has none. */
    int (*set_routes)(crl_router *r, const crl_pool_route *train,
                      const crl_pool_route *act, crl_err *err);
    /* The method's query memory: n queries (n x D) of a finished task whose
     * rows trained modulator `label` (a learned router trains on them). */
    int (*learn)(crl_router *r, const float *q, int n, int label, crl_err *err);
    /* Checkpoint state: bytes, write, read back. */
    size_t (*state_size)(const crl_router *r);
    void (*state_save)(const crl_router *r, void *dst);
    int (*state_load)(crl_router *r, const void *src, size_t n, crl_err *err);
} crl_router_ops;

struct crl_router {
    const crl_router_ops *ops;
    const crl_pool *pool;  /* the actor's pool (layout) */
    crl_router_config cfg; /* kind points at the table's name */
    const int64_t *counts; /* the actor's usage counts (M), read only */
    float pull;            /* key pull coefficient (l2m, oracle, cos, soft) */
    int top_k;             /* modulators merged per row (ops->top_k, or soft's k) */
    void *impl;
};

/* The table: the kind named name, or NULL. crl_router_kind(i) lists them
 * (NULL past the end). */
const crl_router_ops *crl_router_find(const char *name);
const crl_router_ops *crl_router_kind(int i);

/* Build a router of cfg->kind over pool (kept by pointer), reading counts.
 * CRL_EINVAL (one line naming the kinds) for an unknown kind. */
int crl_router_init(crl_router *r, const crl_router_config *cfg, const crl_pool *pool,
                    const int64_t *counts, float pull, crl_err *err);
void crl_router_free(crl_router *r);

/* The operations, with the NULL hooks as no-ops. */
int crl_router_route(crl_router *r, const float *params, const crl_router_rows *rows,
                     crl_router_out *out, crl_err *err);
void crl_router_task_start(crl_router *r, int task, const int64_t *start_counts);
void crl_router_eval(crl_router *r, int on);
int crl_router_task_end(crl_router *r, const float *params, int task, crl_err *err);
void crl_router_changed(crl_router *r, const float *params);
double crl_router_extra_loss(crl_router *r, const float *params, const crl_pool_ws *ws,
                             int n, int B, float *grads);
int crl_router_set_routes(crl_router *r, const crl_pool_route *train,
                          const crl_pool_route *act, crl_err *err);
int crl_router_learn(crl_router *r, const float *q, int n, int label, crl_err *err);
/* Checkpoint state of the kind (0 bytes: none). load: CRL_ECORRUPT on a
 * state that does not fit; n = 0 keeps the router as it is. */
size_t crl_router_state_size(const crl_router *r);
void crl_router_state_save(const crl_router *r, void *dst);
int crl_router_state_load(crl_router *r, const void *src, size_t n, crl_err *err);

/* The router kinds of subspace/router_l2m.c. */
extern const crl_router_ops crl_router_l2m_ops, crl_router_oracle_ops, crl_router_cos_ops;
/* soft (subspace/router_soft_kind.c): the l2m router's scores, top-k + softmax,
 * the chosen modulators merged per row (SMEAR). */
extern const crl_router_ops crl_router_soft_ops;
/* The pool route a key router (l2m, oracle, cos; r->impl theirs) gives these
 * rows: what its route op scores with (soft scores every modulator by it). */
crl_pool_route crl__key_router_route(const crl_router *r, const crl_router_rows *rows);
/* subspace/router_arrow_kind.c */
extern const crl_router_ops crl_router_arrow_ops;
/* subspace/router_l2r_kind.c */
extern const crl_router_ops crl_router_l2r_ops;

#ifdef __cplusplus
}
#endif
#endif
