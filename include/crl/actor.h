/* crl actor: one interface over the networks a SAC learner can act with.
 *
 * An actor is a table of operations (crl_actor_ops) and an instance
 * (crl_actor) that owns its flat parameter buffer [0, n_params) plus any
 * state of its kind (CSP: the anchors in use and the acting alpha; L2M: the
 * frozen base, the routes and the usage counts). Three kinds:
 *   CRL_ACTOR_MLP  a plain crl_mlp (nn/actor_mlp.c),
 *   CRL_ACTOR_CSP  a CSP subspace of policies (subspace/csp_actor.c),
 *   CRL_ACTOR_L2M  an L2M pool of modulators over a frozen base
 *                  (subspace/l2m_actor.c).
 * crl_actor_create (subspace/actors.c) picks the implementation from the
 * configuration's kind, once. Callers (SAC, the embedding runtime) go
 * through the crl_actor_* functions below and never test the kind; what
 * differs between kinds is data of the instance (cond_dim, the trainable
 * range, base/counts) or an operation.
 *
 * Workspaces are sized once for a max batch; forward and backward never
 * allocate. */
#ifndef CRL_ACTOR_H
#define CRL_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CRL_ACTOR_MLP = 0, CRL_ACTOR_CSP = 1, CRL_ACTOR_L2M = 2 } crl_actor_kind;
#define CRL_ACTOR_N_KINDS 3

/* What an actor is: its kind, the network shape and the kind's settings. */
typedef struct {
    crl_actor_kind kind;
    crl_mlp_spec spec;  /* the network (CSP: one anchor; L2M: the frozen base) */
    int K;              /* CSP: anchor capacity */
    int M;              /* L2M: modulators */
    int pool_kind;      /* L2M: crl_pool_kind */
    int rank;           /* L2M: LoRA rank */
    float scale;        /* L2M: LoRA scale */
    float pull;         /* L2M: key pull coefficient of the actor loss */
    int head;           /* L2M: the base head every row goes through, or -1: each
                           row's own (crl_actor_rows.head) */
    const char *router; /* L2M: router kind (router.h), NULL = "l2m" */
    int n_tasks;        /* L2M: tasks of the run (oracle slices), 0 = 1 */
    int weights;        /* L2M: crl_router_weights (0 = live, the old behaviour) */
    int collect;        /* L2M: crl_router_collect (0 = the training route) */
    int history;        /* L2M: H, observations the query averages (0, 1 = the
                           current one only, the old behaviour) */
    int hold;           /* L2M: acting rows keep the modulator chosen at their
                           episode's step H for the rest of the episode */
    int soft_k;         /* L2M soft router: modulators merged per row (0 = 2) */
    float soft_temp;    /* L2M soft router: softmax temperature (0 = 1) */
    int max_act_batch;  /* rows one acting call may take (sizes acting scratch) */
    int borrowed;       /* 1: the actor allocates no parameters (nor L2M base):
                           the caller sets params (and base) and keeps them
                           alive; crl_actor_free leaves them */
} crl_actor_config;

/* The kind's part of a checkpoint header (crl_sac_save records it; see
 * sac.h crl_sac_blob). Fields of other kinds are 0. */
typedef struct {
    crl_actor_kind kind;
    uint32_t K, n_anchors, n_frozen;               /* CSP */
    uint32_t M, pool_kind, rank, base_tasks, head; /* L2M */
    float scale;                                   /* L2M (0 = not recorded, v1) */
    uint64_t used;     /* leading actor parameters stored (the rest is zero) */
    uint64_t n_base;   /* floats of the frozen base stored before them (L2M) */
    uint64_t n_counts; /* int64 usage counts stored at the end (L2M) */
} crl_actor_ckpt;

typedef struct crl_actor crl_actor;

/* One workspace: the kind's buffers (impl) and the output of its last
 * forward (out, B x out_dim). */
typedef struct {
    int max_batch;
    const float *out;
    void *impl;
} crl_actor_ws;

/* How a forward's rows are routed. */
typedef struct {
    const int *head;     /* per-row task index (NULL: 0); kinds with one head or a
                            fixed base head ignore it */
    const float *cond;   /* rows x cond_dim conditioning columns (CSP: alpha,
                            zero beyond the anchors in use), or NULL: the
                            actor's acting condition (crl_actor_set_act_cond) */
    int acting;          /* 0: update rows, 1: acting rows (L2M routes them with
                            its act route, oracle task = task) */
    int task;            /* acting task */
    const float *params; /* parameters to use instead of the actor's own (same
                            layout), or NULL (a runtime acting with several
                            parameter sets of one shape) */
    /* Update rows (L2M history query): up to hist_cap earlier observations
     * of each row's episode, rows x hist_cap x in_dim, row r's hist_n[r]
     * valid ones first, oldest first (crl_batch's windows). NULL: none.
     * Acting rows take them from the actor's own per-env history. */
    const float *hist;
    const int *hist_n;
    int hist_cap;
} crl_actor_rows;

typedef struct {
    const char *name;
    int (*ws_alloc)(const crl_actor *a, crl_actor_ws *ws, int max_batch, crl_err *err);
    void (*ws_free)(crl_actor_ws *ws);
    const float *(*forward)(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                            const crl_actor_rows *rows);
    void (*backward)(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                     int dw_rows);
    void (*init_params)(crl_actor *a, crl_rng *rng);
    /* Optional (NULL: nothing to do / no term). */
    void (*draw_cond)(crl_actor *a, crl_rng *rng, int rows, float *cond);
    double (*extra_loss)(crl_actor *a, const crl_actor_ws *ws, int n, int B,
                         float *grads);
    void (*tally)(crl_actor *a, const crl_actor_ws *ws);
    double (*update_macs)(const crl_actor *a, int B, int obs_dim);
    void (*changed)(crl_actor *a);
    void (*ckpt_describe)(const crl_actor *a, crl_actor_ckpt *ck);
    int (*ckpt_check)(const crl_actor *a, const crl_actor_ckpt *ck, crl_err *err);
    void (*ckpt_apply)(crl_actor *a, const crl_actor_ckpt *ck);
    void (*destroy)(crl_actor *a);
} crl_actor_ops;

struct crl_actor {
    const crl_actor_ops *ops;
    crl_actor_config cfg;
    crl_mlp net;         /* layout of cfg.spec (CSP: one anchor; L2M: the base) */
    size_t n_params;     /* floats of params (the capacity) */
    float *params;       /* owned */
    size_t tr_lo, tr_hi; /* the entries that train: [tr_lo, tr_hi) */
    int cond_dim;        /* conditioning columns rows carry (CSP: K; else 0) */
    int cond_live;       /* of which in use (CSP: n_anchors) */
    float *act_cond;     /* cond_dim floats acting rows use (CSP), else NULL */
    float *base;         /* L2M: the frozen base (net.n_params floats), else NULL */
    size_t n_base;
    int64_t *counts; /* L2M: usage counts (M), else NULL */
    size_t n_counts;
    void *impl; /* the kind's own state */
};

/* Build an actor of cfg->kind with zeroed parameters (then
 * crl_actor_init_params). *out is owned by the caller (crl_actor_free).
 * CRL_EINVAL on a bad configuration, CRL_ENOMEM. */
int crl_actor_create(const crl_actor_config *cfg, crl_actor **out, crl_err *err);
void crl_actor_free(crl_actor *a);
/* The plain MLP's table (nn/actor_mlp.c). */
extern const crl_actor_ops crl_actor_mlp_ops;

/* Fill the common part of an instance (cfg, net, ops); kinds call it. */
int crl_actor_base_init(crl_actor *a, const crl_actor_ops *ops,
                        const crl_actor_config *cfg, crl_err *err);

/* Workspace for max_batch rows; freed with crl_actor_ws_free. */
int crl_actor_ws_alloc(const crl_actor *a, crl_actor_ws *ws, int max_batch, crl_err *err);
void crl_actor_ws_free(const crl_actor *a, crl_actor_ws *ws);

/* Forward B <= ws->max_batch rows of x (B x in_dim); returns ws->out
 * (B x out_dim). */
const float *crl_actor_forward(crl_actor *a, crl_actor_ws *ws, const float *x, int B,
                               const crl_actor_rows *rows);
/* Backward of the last forward on ws: weight gradients ACCUMULATED into
 * grads (params layout) from the first dw_rows rows, trainable entries
 * only. No input gradient. */
void crl_actor_backward(crl_actor *a, crl_actor_ws *ws, float *grads, const float *dout,
                        int dw_rows);
/* Initial parameters drawn from rng (the kind's own initialisation). */
void crl_actor_init_params(crl_actor *a, crl_rng *rng);
/* Conditioning of rows update rows (rows x cond_dim, zero beyond
 * cond_live): CSP draws a flat Dirichlet per row; no-op for the others. */
void crl_actor_draw_cond(crl_actor *a, crl_rng *rng, int rows, float *cond);
/* Extra actor-loss term of the last forward on ws, rows being n of the B
 * loss rows; its gradient is ACCUMULATED into grads. 0 if the kind has none
 * (L2M: the key pull). */
double crl_actor_extra_loss(crl_actor *a, const crl_actor_ws *ws, int n, int B,
                            float *grads);
/* After an applied update: tally the update rows of ws (L2M usage counts). */
void crl_actor_tally(crl_actor *a, const crl_actor_ws *ws);
/* Multiply-accumulates of the actor's part of one SAC update of B rows. */
double crl_actor_update_macs(const crl_actor *a, int B, int obs_dim);
/* Re-read the kind's state after its parameters' shape changed (CSP: anchors
 * frozen/added/removed): trainable range, cond_live, acting condition. */
void crl_actor_changed(crl_actor *a);
/* Acting condition (cond_dim floats) used by rows with cond == NULL; NULL for
 * actors without conditioning. */
void crl_actor_set_act_cond(crl_actor *a, const float *cond);
const float *crl_actor_act_cond(const crl_actor *a);

/* Checkpoint section: describe the kind's state, check that a recorded one
 * fits this actor (CRL_ECORRUPT if not), and adopt it after the parameters
 * were restored. */
void crl_actor_ckpt_describe(const crl_actor *a, crl_actor_ckpt *ck);
int crl_actor_ckpt_check(const crl_actor *a, const crl_actor_ckpt *ck, crl_err *err);
void crl_actor_ckpt_apply(crl_actor *a, const crl_actor_ckpt *ck);

/* Kind-specific views (NULL for an actor of another kind). */
struct crl_subspace;
struct crl_pool;
struct crl_subspace *crl_actor_subspace(crl_actor *a);
const struct crl_pool *crl_actor_pool(const crl_actor *a);

#ifdef __cplusplus
}
#endif
#endif
