/* crl SAC: the soft actor-critic learner, Continual World configuration.
 *
 * One learner holds an actor (tanh-Gaussian, multi-head), two critics with
 * Polyak-averaged targets and one log-alpha per task index. The update exists
 * once; continual methods plug into it through crl_sac_hooks. All buffers are
 * allocated at creation: acting and updating never allocate. */
#ifndef CRL_SAC_H
#define CRL_SAC_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "base.h"
#include "nn.h"
#include "pool.h"
#include "replay.h"
#include "subspace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int obs_dim, act_dim;
    int n_tasks;          /* heads and entropy coefficients */
    int hidden;           /* width of every hidden layer (CW: 256) */
    int layers;           /* hidden layers (CW: 4) */
    float lr;             /* Adam lr of actor, critics, alpha (1e-3) */
    int batch;            /* 128 */
    float gamma;          /* 0.99 */
    float polyak;         /* 0.995 */
    float init_log_alpha; /* 1.0, so alpha = e */
    float target_entropy; /* per task; NAN = act_dim * log(0.089 sqrt(2 pi e)) */
    int64_t buffer_size;  /* 1e6 */
    int64_t start_steps;  /* uniform-random steps at the start of each task (1e4) */
    int64_t update_after; /* first update after this many task steps (1e3) */
    int64_t update_every; /* env steps between update rounds = updates per round (50) */
    int max_act_batch;    /* rows crl_sac_act may take at once (eval batches) */
    int threads;          /* 1, or 2: the update runs on two lanes of single-
                             threaded BLAS (results do not depend on it) */
    int csp_anchors;      /* 0: a plain MLP actor. K > 0: a CSP subspace actor
                             with room for K anchors (starts with 1), and critics
                             that read [obs, act, alpha] with alpha zero-padded
                             to K columns. */
    /* L2M (l2m_pool = M > 0): the actor is a FROZEN base crl_mlp (obs ->
     * 2 act, l2m_base_tasks heads, the same layers x hidden) modulated by a
     * pool of M modulators (pool.h). The actor parameters (crl_sac_actor_params,
     * gradients, Adam) are the pool's flat buffer [keys | modulators]; the
     * base lives in its own buffer (crl_sac_l2m_base) that nothing writes
     * but crl_sac_load. Every row goes through base head l2m_head, so acting
     * needs no task id. Critics are plain. */
    int l2m_pool;
    int l2m_kind;           /* crl_pool_kind: CRL_POOL_LORA or CRL_POOL_IA3 */
    int l2m_rank;           /* LoRA rank r (8) */
    float l2m_scale;        /* LoRA scale s (2) */
    float l2m_pull;         /* key pull coefficient (0.5) */
    int l2m_base_tasks;     /* heads of the base network */
    int l2m_head;           /* the base head every row uses */
    const char *l2m_router; /* router kind (router.h), NULL = "l2m" */
    int l2m_tasks;          /* tasks of the run (oracle slices), 0 = 1 */
    int l2m_weights;        /* crl_router_weights: 0 live (old), 1 frozen */
    int l2m_collect;        /* crl_router_collect: 0 training route (old), 1 eval */
    int l2m_history;        /* H: observations the routing query averages (0, 1:
                               the current one, the old behaviour) */
    int l2m_hold;           /* 1: acting keeps the modulator of step H */
    int l2m_soft_k;         /* soft router: modulators merged per row (0 = 2) */
    float l2m_soft_temp;    /* soft router: softmax temperature (0 = 1) */
} crl_sac_config;

/* The actor configuration c asks for (plain MLP with n_tasks heads, CSP
 * subspace with one shared head, or L2M pool over a base): the one place
 * that maps the learner's config to an actor kind (agents/sac_actor.c).
 * CRL_EINVAL on bad CSP/L2M settings. */
int crl_sac_actor_config(const crl_sac_config *c, crl_actor_config *ac, crl_err *err);

/* The Continual World defaults (Wolczyk et al. 2021, their SAC configuration;
 * docs/sac.md lists each with its flag). */
void crl_sac_config_default(crl_sac_config *c, int obs_dim, int act_dim, int n_tasks);
/* Resolved target entropy (applies the NAN default). */
float crl_sac_target_entropy(const crl_sac_config *c);

typedef struct crl_sac crl_sac;

/* Hooks through which continual methods change the update without copying
 * it. All optional. */
typedef struct {
    void *ctx;
    /* Add an extra actor-loss term's gradient into grads (same layout as the
     * actor parameters) and return the term's value. */
    double (*actor_penalty)(void *ctx, const float *params, float *grads, size_t n);
    /* Actor entries that Adam may change (0 = frozen), or NULL. */
    const uint8_t *actor_trainable;
    /* CSP: fill rows x K alphas (zero beyond the n anchors in use) for the
     * update's pi(o) rows [0,B), drawing from rng (the target's pi(o2) rows
     * use each transition's own alpha, the batch's mix column). NULL: flat
     * Dirichlet over the n anchors. */
    void (*draw_mix)(void *ctx, crl_rng *rng, int rows, int n, float *mix);
} crl_sac_hooks;

typedef struct {
    double q_loss, pi_loss, alpha_loss, penalty;
    double alpha;  /* mean alpha over the batch's tasks */
    double logp;   /* mean log pi of the batch */
    double q_mean; /* mean Q1 on the batch's actions */
    /* L2 norms of the gradients the update applies (before Adam): the
     * actor's over its trainable entries (penalty terms included) and both
     * critics' together. Behaviour cloning: the critic's is NAN. Filled
     * only when the caller passes stats (no allocation either way). */
    double grad_norm_actor, grad_norm_critic;
} crl_sac_stats;

int crl_sac_create(const crl_sac_config *c, uint64_t seed, crl_sac **out, crl_err *err);
void crl_sac_free(crl_sac *s);
const crl_sac_config *crl_sac_get_config(const crl_sac *s);
void crl_sac_set_hooks(crl_sac *s, const crl_sac_hooks *h);

/* Actions for B <= max_act_batch observations of one task. deterministic:
 * tanh(mean); else a sample with noise from rng, or from the learner's own
 * acting generator when rng is NULL (evaluation passes its own, so that the
 * eval schedule never changes the training noise). */
void crl_sac_act(crl_sac *s, int B, const float *obs, int task, int deterministic,
                 crl_rng *rng, float *act);

/* One gradient step on a batch (b->B == config batch). CRL_ENAN, with nothing
 * applied, if a loss or gradient is not finite. */
int crl_sac_update(crl_sac *s, const crl_batch *b, crl_sac_stats *st, crl_err *err);

/* ---- behaviour cloning (crl train --offline, docs/offline.md) -------------
 * An update of the ACTOR alone on a batch of expert transitions (obs, act,
 * task): critics, targets and log-alphas are untouched (nor are their Adam
 * moments). The loss is the batch mean of
 *   CRL_BC_NLL  -log pi(a | o): the negative log-likelihood of the expert
 *               action under the tanh-Gaussian actor, with the action
 *               clamped to +-(1 - CRL_BC_CLAMP) before atanh; the value
 *               includes the tanh Jacobian term sum log(1 - a^2), which is
 *               constant in the parameters;
 *   CRL_BC_MSE  sum_j (tanh(mu_j) - a_j)^2 on the deterministic action (the
 *               log-std gets no gradient).
 * It runs through the same hooks as the SAC actor update: the actor's rows
 * are routed as update rows with the batch's task (heads, L2M oracle
 * slices, history windows), the actor's own term (L2M key pull) and
 * hooks.actor_penalty (l2/ewc) are added, hooks.actor_trainable masks the
 * Adam step (packnet), and the update rows are tallied (L2M counts). Stats:
 * pi_loss = BC loss + penalty, penalty, logp = mean log pi(a) (NLL only; NAN
 * for MSE), the rest 0. No allocation; the same split over two lanes. */
typedef enum { CRL_BC_NLL = 0, CRL_BC_MSE = 1 } crl_bc_loss;
/* 1e-3: atanh(1 - 1e-3) = 3.80. Scripted experts often output actions at
 * the bounds; in float atanh(1) is infinite and atanh(1 - 1e-6) = 7.25 puts
 * the mean's target where tanh's slope is 4e-6. A 1e-3 margin moves a
 * saturated action by 0.05% of its range (the env clips at the bounds
 * anyway) and keeps the targets within 3.8 of the origin, where the
 * Gaussian's errors on saturated dims do not swamp the others. */
#define CRL_BC_CLAMP 1e-3
int crl_sac_bc_update(crl_sac *s, const crl_batch *b, int loss, crl_sac_stats *st,
                      crl_err *err);
/* The BC loss and its gradient (crl_sac_grads' actor buffer) without
 * applying anything, for finite-difference tests. CRL_ENAN if not finite.
 * CSP learners: set the rows' alphas with crl_sac_update_mix first. */
int crl_sac_bc_compute_grads(crl_sac *s, const crl_batch *b, int loss, crl_sac_stats *st);
/* FLOPs of one BC update of a plain actor, for benchmarks. */
double crl_sac_bc_flops_per_update(const crl_sac *s);

/* Continual World task change: zero the Adam moments of all optimisers. */
void crl_sac_reset_optimizers(crl_sac *s);

/* Parameter access for methods, checkpoints and tests. crl_sac_actor is the
 * actor's network layout (CSP: one anchor; L2M: the frozen base). */
const crl_mlp *crl_sac_actor(const crl_sac *s);
/* The learner's actor (owned by the learner). */
crl_actor *crl_sac_get_actor(crl_sac *s);
const crl_mlp *crl_sac_critic(const crl_sac *s);
float *crl_sac_actor_params(crl_sac *s);
float *crl_sac_critic_params(crl_sac *s, int which); /* 0, 1; +2 for targets */
float *crl_sac_log_alpha(crl_sac *s);                /* n_tasks entries */

/* Losses and their gradients on a batch with explicit noise, without
 * applying anything: the pieces crl_sac_update applies. eps: 2B x act_dim
 * standard normals (rows [0,B) for pi(o), [B,2B) for pi(o2)). Gradients are
 * written into the learner's gradient buffers, readable with
 * crl_sac_grads. Exposed so tests can check them by finite differences. */
int crl_sac_compute_grads(crl_sac *s, const crl_batch *b, const float *eps,
                          crl_sac_stats *st);
void crl_sac_grads(crl_sac *s, float **actor, float **critics, float **log_alpha);

/* ---- CSP (csp_anchors > 0) ----------------------------------------------
 * Thin views over the actor (crl_actor_subspace, crl_actor_changed,
 * crl_actor_set_act_cond); for another kind they return NULL or do nothing.
 * The subspace is owned by the learner; a method freezes, adds or removes
 * anchors on it (subspace.h, on crl_sac_actor_params) and then calls
 * crl_sac_subspace_changed. Batches must carry a mix column of K floats
 * (the alpha each transition was collected with). */
/* The actor's subspace, or NULL for a plain learner. */
crl_subspace *crl_sac_subspace(crl_sac *s);
/* Floats of crl_sac_actor_params (the subspace capacity for CSP). */
size_t crl_sac_actor_size(const crl_sac *s);
/* Re-read the anchor counts after a freeze / add / remove: the trainable
 * block becomes anchors [n_frozen, n_anchors) and acting resets to the
 * centre of the subspace. */
void crl_sac_subspace_changed(crl_sac *s);
/* The alpha (K floats, zero beyond n) crl_sac_act uses from now on. */
void crl_sac_set_act_mix(crl_sac *s, const float *mix);
const float *crl_sac_act_mix(const crl_sac *s);
/* The update's alphas of the pi(o) rows (B x K; room for 2B): drawn by
 * crl_sac_update; tests that call crl_sac_compute_grads directly set them
 * here. The target rows read the batch's mix instead. NULL for a plain
 * learner. */
float *crl_sac_update_mix(crl_sac *s);
/* New critics (fresh initialisation from seed, targets = critics, zeroed
 * critic moments): CSP builds a new critic at every task. */
void crl_sac_reset_critics(crl_sac *s, uint64_t seed);
/* Score each of n_mix alphas (rows of K floats) by the mean over the B
 * states obs of Q1(o, a, alpha) with a the deterministic action of the
 * policy at alpha (B <= batch). CRL_EINVAL for a plain learner. */
int crl_sac_score_mix(crl_sac *s, const float *obs, int B, int task, int n_mix,
                      const float *mixes, double *scores, crl_err *err);

/* ---- L2M (l2m_pool > 0) --------------------------------------------------
 * Thin views over the L2M actor (crl_actor_pool, crl_actor_l2m_*) and its
 * router (router.h, picked by l2m_router). The update routes its pi(o) and
 * pi(o2) rows as training rows (on the batch's history windows, if it has
 * them), crl_sac_act as acting rows; crl_sac_l2m_task_start / _eval /
 * _task_end tell the router the schedule, crl_sac_l2m_set_route pins fixed
 * routes instead. The actor loss gets the key
 * pull term -l2m_pull * mean_r cos(q_r, k_sel[r]) over the pi(o) rows: its
 * value is crl_sac_stats.penalty and its gradient goes to the keys only;
 * the modulators learn from the SAC actor loss only. Every crl_sac_update
 * adds the routing of its pi(o) rows to the usage counts. */
/* The pool, or NULL for a learner that is not L2M. */
const crl_pool *crl_sac_pool(const crl_sac *s);
/* The frozen base parameters (pool->base.n_params floats; write them once,
 * after creation), or NULL. */
float *crl_sac_l2m_base(crl_sac *s);
/* Usage counts (M int64), kept across tasks and in checkpoints, or NULL. */
int64_t *crl_sac_l2m_counts(crl_sac *s);
/* Routing of the update rows (train) and of crl_sac_act (act). counts is
 * ignored (the learner's own counts are used); for an ORACLE act route the
 * task is crl_sac_act's task argument. CRL_EINVAL for a bad route or a
 * learner that is not L2M. */
int crl_sac_l2m_set_route(crl_sac *s, const crl_pool_route *train,
                          const crl_pool_route *act, crl_err *err);
/* A task starts (again, after an evaluation or a resume): the router's
 * task-start hook with the usage counts at the task's first step (the l2m
 * router freezes its weights from them; NULL = the counts now). Ends a
 * pinning by crl_sac_l2m_set_route. CRL_EINVAL if not L2M. */
int crl_sac_l2m_task_start(crl_sac *s, int task, const int64_t *start_counts,
                           crl_err *err);
/* Evaluation begins (on = 1: the router's `changed` hook, as the modulators
 * moved since the last one, then acting rows route as evaluation) or ends. */
void crl_sac_l2m_eval(crl_sac *s, int on);
/* A task ended: the router's `changed` then `task_end` hooks (a learned
 * router trains here). Call once per task. CRL_EINVAL if not L2M. */
int crl_sac_l2m_task_end(crl_sac *s, int task, crl_err *err);
/* H of the history query (1 for a learner that is not L2M or has none).
 * Batches for crl_sac_update need crl_batch_alloc_history(b, H) to route
 * update rows on their windows (without, they route on obs alone). */
int crl_sac_l2m_history(const crl_sac *s);
/* Acting histories (pool.h crl_actor_l2m_envs / _episode_start): rows of
 * crl_sac_act inside obs_base (n_env rows) are those envs; at an episode
 * start reset the history of the env(s) acting on obs (rows rows; NULL:
 * all). No-ops if not L2M. */
void crl_sac_l2m_envs(crl_sac *s, const float *obs_base, int n_env);
void crl_sac_l2m_episode_start(crl_sac *s, const float *obs, int rows);
/* Tally, per row of the caller's observation array obs_base (rows x obs_dim),
 * the modulator every crl_sac_act call on rows inside it routes to:
 * hist[r * M + m] += 1 (hist: rows x M, zeroed by the caller). NULL stops. */
void crl_sac_l2m_track(crl_sac *s, const float *obs_base, int rows, int32_t *hist);

/* FLOPs of one update (2 per multiply-accumulate), for benchmarks. */
double crl_sac_flops_per_update(const crl_sac *s);

/* Serialise everything needed to continue training bit-exactly (networks,
 * targets, alphas, optimiser moments, generators) as a version-2 blob that
 * records the actor's kind and configuration. *blob is malloc'd. */
int crl_sac_save(const crl_sac *s, void **blob, size_t *n, crl_err *err);
/* Restore from crl_sac_save output (version 2, or a version-1 blob of an
 * older build) into a learner of the same config. CRL_ECORRUPT if the blob
 * does not match; the learner is untouched then. */
int crl_sac_load(crl_sac *s, const void *blob, size_t n, crl_err *err);

/* A read-only view of a learner blob: its version, shape, the actor's kind
 * and configuration, and where its sections lie inside the blob (pointers
 * into blob, unaligned: read them with memcpy). */
typedef struct {
    int version; /* 1 (CRLSAC01/CRLSACS1/CRLSACL1) or 2 (CRLSAC02) */
    int obs_dim, act_dim, n_tasks, hidden, layers;
    uint64_t na, nc;          /* actor capacity, floats of one critic */
    crl_actor_ckpt actor;     /* kind, its configuration, used / n_base / n_counts */
    const void *base;         /* actor.n_base floats of the frozen base, or NULL */
    const void *actor_params; /* actor.used floats */
    const void *counts;       /* actor.n_counts int64, or NULL */
} crl_sac_blob;

/* Parse the header of a learner blob and check that its length is exactly
 * what the header implies. Reads only. CRL_ECORRUPT on a bad magic, header
 * or length. */
int crl_sac_blob_info(const void *blob, size_t n, crl_sac_blob *info, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
