/* crl methods: the building blocks of the continual baselines that plug into
 * the one SAC update through crl_sac_hooks (see docs/methods.md for what the
 * runner calls when).
 *
 *  - ft1: nothing (one learner, multi-head, fine-tuned).
 *  - ftn: nothing (a fresh crl_sac per task).
 *  - l2, ewc: crl_reg, a weighted quadratic pull of the actor's shared trunk
 *    towards its value at the last task end; ewc's weights come from
 *    crl_ewc_fisher.
 *  - packnet: crl_packnet, per-weight task ownership of the actor's trunk
 *    kernels, magnitude pruning, the trainable mask and evaluation views.
 *  - pm: crl_reservoir (reservoir.h).
 *
 * All of these act on the ACTOR only (Continual World's default,
 * regularize_critic = False) and only on its shared trunk: the per-task
 * output heads are never penalised, pruned or masked. Nothing here keeps
 * global state or draws random numbers. */
#ifndef CRL_METHODS_H
#define CRL_METHODS_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "nn.h"
#include "pool.h"
#include "sac.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the shared trunk as ranges of the flat parameter buffer ------------- */

typedef enum {
    CRL_TRUNK_KERNEL = 0, /* a hidden Linear layer's W (in x out) */
    CRL_TRUNK_BIAS = 1,   /* a hidden Linear layer's b */
    CRL_TRUNK_NORM = 2    /* LayerNorm gain or bias */
} crl_trunk_kind;

typedef struct {
    size_t lo, hi; /* [lo, hi) in the flat buffer */
    int kind;      /* crl_trunk_kind */
    int layer;     /* hidden layer index */
} crl_range;

#define CRL_TRUNK_MAX_RANGES (2 * CRL_MLP_MAX_HIDDEN + 2)

/* Write the trunk's ranges (every hidden layer's W, b and the LayerNorm
 * gain/bias; never the heads) into out[CRL_TRUNK_MAX_RANGES], in layer
 * order. Returns the number written. Derived from the crl_mlp offsets, so it
 * follows any change of layout in nn. */
int crl_trunk_ranges(const crl_mlp *m, crl_range *out);
/* Parameters in the trunk (sum of the ranges' lengths). */
size_t crl_trunk_size(const crl_mlp *m);

/* ---- l2 / ewc: weighted quadratic penalty ---------------------------------
 * penalty = coef * sum_{trunk} w_i (theta_i - old_i)^2, added to the actor
 * loss (a batch MEAN, as in Continual World, so CW's coefficients carry over
 * unchanged: l2 1e5, ewc 1e4). old is the trunk at the LAST task end; w is
 * the SUM over finished tasks of each task's importance (1 for l2, the
 * diagonal Fisher for ewc). As in CW, l2's weight after k tasks is therefore
 * k, not 1. Before the first task end w = 0 and the penalty is 0. */

#define CRL_L2_COEF  1e5
#define CRL_EWC_COEF 1e4

typedef struct {
    size_t n; /* actor parameters */
    int n_ranges;
    crl_range ranges[CRL_TRUNK_MAX_RANGES];
    double coef;
    int tasks;     /* task ends folded in */
    float *old;    /* n: trunk at the last task end (0 off the trunk) */
    float *weight; /* n: summed importance (0 off the trunk) */
} crl_reg;

/* Sized for actor; both buffers start at zero. CRL_EINVAL on a negative or
 * non-finite coef, CRL_ENOMEM. */
int crl_reg_init(crl_reg *r, const crl_mlp *actor, double coef, crl_err *err);
void crl_reg_free(crl_reg *r);
/* At a task end: old = the trunk of params, weight += importance on the
 * trunk. importance (actor layout, n entries; only trunk entries are read)
 * is the ewc Fisher, or NULL for l2 (importance 1). */
void crl_reg_task_end(crl_reg *r, const float *params, const float *importance);
/* The crl_sac_hooks.actor_penalty callback (ctx = crl_reg*): adds
 * 2 coef w (theta - old) into grads and returns the penalty, accumulated in
 * double. Returns NAN (the update then refuses with CRL_ENAN) if n is not the
 * size the regulariser was made for. */
double crl_reg_penalty(void *ctx, const float *params, float *grads, size_t n);
/* hooks = {ctx = r, actor_penalty = crl_reg_penalty, actor_trainable = NULL}. */
void crl_reg_hooks(crl_reg *r, crl_sac_hooks *hooks);
/* Checkpoint: old, weight and tasks (coef is configuration, not state).
 * *blob is malloc'd. load: CRL_ECORRUPT if the blob does not fit r. */
int crl_reg_save(const crl_reg *r, void **blob, size_t *n, crl_err *err);
int crl_reg_load(crl_reg *r, const void *blob, size_t n, crl_err *err);

/* ---- ewc: diagonal Fisher of the Gaussian policy ---------------------------
 * For every trunk parameter theta:
 *   F = mean_samples max(clip, sum_j [(dm_j/dtheta)^2 + 2 (dsigma_j/dtheta)^2]
 *                                     / (sigma_j^2 + var_eps))
 * with sigma_j = exp(clipped log-std) of the pre-tanh Gaussian (zero
 * derivative where the clip is active). m_j is tanh(mu_j), the deterministic
 * action, in CRL_FISHER_CW (what Continual World's ewc.py differentiates),
 * or the pre-tanh mean mu_j in CRL_FISHER_GAUSS (the textbook Fisher of
 * N(mu, sigma^2)). The clip is per sample and parameter, before the mean,
 * as in CW. */

#define CRL_FISHER_CLIP    1e-5f
#define CRL_FISHER_VAR_EPS 1e-6f
#define CRL_EWC_SAMPLES    2560 /* CW: 10 batches of 256 from the task's buffer */

typedef enum { CRL_FISHER_CW = 0, CRL_FISHER_GAUSS = 1 } crl_fisher_kind;

/* Fisher of actor (out_dim = 2 act_dim: mean, log-std) at params over n
 * observations (n x in_dim) through head `task`. fisher: actor layout
 * (n_params), overwritten: trunk entries get F, all others 0. Allocates its
 * workspace (call it at a task end, not in the update loop). Cost: one
 * forward and 2 act_dim input-gradient backward passes per sample, plus one
 * pass over the trunk per sample for the clip. CRL_EINVAL, CRL_ENOMEM. */
int crl_ewc_fisher(const crl_mlp *actor, const float *params, const float *obs, int n,
                   int task, crl_fisher_kind kind, float *fisher, crl_err *err);

/* ---- packnet ----------------------------------------------------------------
 * Every trunk KERNEL weight is owned by one task or free. Task k trains the
 * free weights; at its end, crl_packnet_prune zeroes the smallest-magnitude
 * fraction tasks_left / (tasks_left + 1) of the free weights of each kernel
 * (they stay free for later tasks) and gives the rest to task k, which then
 * retrains only its own weights; after that they are frozen for good. Trunk
 * biases and LayerNorm train during task 0 only (frozen from task 0's prune
 * on, as in CW). Heads are never masked. */

#define CRL_PACKNET_FREE   (-1) /* kernel weight not owned yet */
#define CRL_PACKNET_SHARED (-2) /* not a trunk kernel: bias, LayerNorm, head */

enum { CRL_PACKNET_TRAIN = 0, CRL_PACKNET_RETRAIN = 1 };

typedef struct {
    crl_mlp actor;
    int n_ranges;
    crl_range ranges[CRL_TRUNK_MAX_RANGES];
    int n_tasks;        /* tasks in the sequence: sets the prune fractions */
    int task;           /* current task, -1 before the first task_start */
    int phase;          /* CRL_PACKNET_TRAIN or CRL_PACKNET_RETRAIN */
    int16_t *owner;     /* n_params: task, CRL_PACKNET_FREE or CRL_PACKNET_SHARED */
    uint8_t *trainable; /* n_params: the mask for crl_sac_hooks.actor_trainable */
} crl_packnet;

/* All kernel weights free. n_tasks in [1, 32767]. CRL_EINVAL, CRL_ENOMEM. */
int crl_packnet_init(crl_packnet *p, const crl_mlp *actor, int n_tasks, crl_err *err);
void crl_packnet_free(crl_packnet *p);
/* Enter task (0 first, then each next task after the previous one's prune):
 * phase TRAIN, mask = free kernels + heads (+ biases and LayerNorm on task 0).
 * CRL_EINVAL for any other order, so a forgotten prune cannot silently hand
 * a task's weights to the next one. */
int crl_packnet_task_start(crl_packnet *p, int task, crl_err *err);
/* End of the current task's TRAIN phase: prune params (the actor's) in
 * place as above, then phase RETRAIN with mask = the task's own kernels +
 * heads. On the last task tasks_left = 0: nothing is pruned and every free
 * weight goes to it. Allocates sort scratch. CRL_EINVAL if not in TRAIN. */
int crl_packnet_prune(crl_packnet *p, float *params, crl_err *err);
/* The actor to evaluate task i with: params with every kernel weight that
 * task i does not use set to 0 (owned by a task > i, or free while i is
 * before the current task; free weights being trained belong to the current
 * task). out may alias params. The placement, owner check and this rule
 * are nn/packnet.h's, which the policy runtime's .crlp loader shares. */
void crl_packnet_view(const crl_packnet *p, const float *params, int task, float *out);
/* hooks = {ctx = NULL, actor_penalty = NULL, actor_trainable = p->trainable};
 * the mask is updated in place by task_start and prune. */
void crl_packnet_hooks(crl_packnet *p, crl_sac_hooks *hooks);
/* Checkpoint of task, phase and owners (the mask is recomputed on load).
 * load: CRL_ECORRUPT if the blob does not fit p. */
int crl_packnet_save(const crl_packnet *p, void **blob, size_t *n, crl_err *err);
int crl_packnet_load(crl_packnet *p, const void *blob, size_t n, crl_err *err);

/* ---- csp: a growing subspace of policies (docs/subspace.md) ---------------
 * The subspace itself lives in the learner (crl_sac with csp_anchors = K,
 * K = the scenario's length: at most one anchor per task). crl_csp holds the
 * method's side: the alpha of every finished task, the alpha used for data
 * collection, and the grow-or-prune decision at a task end. */

#define CRL_CSP_MAX_K            64 /* tasks (anchors) a CSP run can have */
#define CRL_CSP_REPEAT_ALPHA     25 /* env steps between collection alpha draws */
#define CRL_CSP_SCORED           4096
#define CRL_CSP_CANDIDATES       20
#define CRL_CSP_EPSILON          0.1
#define CRL_CSP_Q_BATCHES        64 /* replay batches the shortlist's Q is averaged over */
#define CRL_CSP_SHORTLIST        16 /* best-screened alphas per subspace re-scored */
#define CRL_CSP_ROLLOUTS_SUCCESS 10 /* rollouts per finalist, success criterion */
#define CRL_CSP_ROLLOUTS_RETURN  3  /* rollouts per finalist, return criterion */

/* What decides grow-or-prune: "auto" (success on tasks that report it,
 * i.e. manipulation; return on locomotion and control) or "return". */
enum { CRL_CSP_BY_RETURN = 0, CRL_CSP_BY_SUCCESS = 1 };

typedef struct {
    int repeat_alpha;      /* redraw the collection alpha every this many steps */
    int peaked;            /* new-subspace draws: 0 flat Dirichlet(1..1), 1 peaked */
    int n_scored;          /* alphas screened by the critic per subspace (one batch) */
    int n_candidates;      /* runs made before issue 21 only: candidates rolled out */
    int val_steps;         /* env steps per validation rollout, 0 = one episode */
    double epsilon;        /* keep iff new > old + eps |old| (on the deciding score) */
    int prior_alphas;      /* 1: also score the stored alphas of earlier tasks as
                              old-subspace candidates (crl's variant, label csp-prior) */
    int q_batches;         /* replay batches the shortlist's mean Q is averaged over */
    int shortlist;         /* best-screened alphas per subspace that are re-scored */
    int rollouts;          /* deterministic rollouts per finalist; 0: auto (10 when
                              success decides, 3 when returns do) */
    const char *criterion; /* "auto" or "return" */
    int check;             /* > 0: also roll each finalist out this many more times
                              on other seeds (outside the budget) and record the
                              decision that check makes (decision accuracy) */
} crl_csp_config;

void crl_csp_config_default(crl_csp_config *c);
/* What a stored configuration without the keys of issue 21 means: one Q
 * batch, one rollout per finalist, returns decide, no check. */
void crl_csp_config_old(crl_csp_config *c);

typedef struct {
    crl_csp_config c;
    int K, n_tasks;
    float *table;     /* n_tasks x K: the alpha each finished task uses */
    uint8_t *has;     /* n_tasks: 1 once a task's alpha is stored */
    float *cur;       /* K: the collection alpha now */
    int64_t since;    /* env steps since cur was drawn */
    int64_t episodes; /* collection episodes so far in the task (even: new half) */
    float *scratch;   /* screening: n_scored x K alphas */
    double *scores;   /* their scores (n_scored), then the candidates' */
    float *cand;      /* max_cand x K: one subspace's candidates */
    int max_cand;     /* shortlist + K + 1 + n_tasks */
    float *fin;       /* 2 x K: the new and the old finalist */
} crl_csp;

typedef struct {
    int task;        /* scenario-local task index */
    int kept;        /* 1: the new anchor stays; 0: pruned */
    int criterion;   /* CRL_CSP_BY_SUCCESS or CRL_CSP_BY_RETURN: what decided */
    int rollouts;    /* per finalist (0 on the first task) */
    double best_new; /* mean validation return of the new finalist (NAN: task 1) */
    double best_old; /* ... of the old finalist */
    double new_success, old_success; /* mean success of the finalists' rollouts */
    double q_new, q_old;             /* the finalists' mean Q over q_batches */
    int check_kept;                  /* the check's decision, -1 without a check */
    double check_new, check_old;     /* the check's deciding scores (NAN: none) */
    int n_anchors;                   /* after the decision */
    int64_t val_steps;               /* env steps the (budgeted) rollouts took */
    float *alpha_new, *alpha_old;    /* K: the finalists (inside crl_csp) */
} crl_csp_decision;

/* Rollout callback of the decision: one deterministic episode (at most
 * max_steps env steps, 0 = a whole episode) of the learner acting with
 * alpha `mix` from the env seed `seed`; returns its return, sets *success
 * (success at any step) and adds the env steps taken to *steps. */
typedef double (*crl_csp_rollout_fn)(void *ctx, const float *mix, uint64_t seed,
                                     int max_steps, int64_t *steps, int *success);

/* The environment seed of validation rollout r of the decision seeded
 * `seed`: both finalists roll out from the same R seeds; the check uses
 * r = R, R + 1, ... */
uint64_t crl_csp_rollout_seed(uint64_t seed, int r);

/* The keep rule on one score: new > old + eps |old| (for positive scores
 * the spec's new > (1 + eps) old; for negative ones the same margin, a
 * fraction eps of the old score's size). */
int crl_csp_beats(double new_score, double old_score, double eps);

/* The decision on finalists' means: with criterion CRL_CSP_BY_SUCCESS the
 * success rates decide unless they are equal, then the returns do; with
 * CRL_CSP_BY_RETURN the returns decide. *by: what decided. */
int crl_csp_keep(int criterion, double new_success, double old_success, double new_return,
                 double old_return, double eps, int *by);

int crl_csp_init(crl_csp *m, const crl_csp_config *c, int K, int n_tasks, crl_err *err);
void crl_csp_free(crl_csp *m);
/* hooks.draw_mix = the collection distribution, per row (even rows: the
 * new subspace, flat or peaked; odd rows: the old one). */
void crl_csp_hooks(crl_csp *m, crl_sac_hooks *hooks);
/* Task start: for task > 0 freeze every anchor, add one at their mean and
 * build new critics (seeded from seed); task 0 keeps the single anchor.
 * CRL_EINVAL if the subspace is full. */
int crl_csp_task_start(crl_csp *m, crl_sac *sac, int task, uint64_t seed, crl_err *err);
/* The collection alpha for the next env step (K floats): redrawn at an
 * episode start (episode_start != 0) and every repeat_alpha steps,
 * alternating new / old subspace by episode. Also sets the learner's act
 * alpha. */
const float *crl_csp_collect(crl_csp *m, crl_sac *sac, crl_rng *rng, int episode_start);
/* The alpha that evaluates task j now (K floats): its stored alpha, or the
 * centre of the current subspace for a task without one. */
void crl_csp_eval_mix(const crl_csp *m, const crl_sac *sac, int task, float *out);
/* Task end, grow or prune (docs/csp.md). For each subspace (the new one,
 * then the old one with 0 on the newest anchor): screen n_scored Dirichlet
 * alphas on one replay batch, keep the best `shortlist` and add the
 * subspace's midpoint and corners (with prior_alphas, the old subspace also
 * gets every distinct stored alpha), score those by Q1 averaged over
 * q_batches replay batches (the same batches for every alpha), and take the
 * best as the subspace's finalist. Roll each finalist out R times from the
 * seeds crl_csp_rollout_seed(seed, 0..R-1) and keep or prune by
 * crl_csp_keep. Batches come from rb through `batch` (B = batch->cap rows,
 * its mix column ignored); the candidate draws and the batch sampling use a
 * generator seeded from (seed, task), so the decision is a function of the
 * learner, the buffer and seed. `success` says whether the task reports
 * success (criterion "auto"). On the first task there is nothing to
 * decide: alpha = [1]. */
int crl_csp_task_end(crl_csp *m, crl_sac *sac, int task, const crl_replay *rb,
                     crl_batch *batch, uint64_t seed, int success,
                     crl_csp_rollout_fn rollout, void *ctx, crl_csp_decision *d,
                     crl_err *err);
/* Mean of Q1(s, pi_det(s, alpha), alpha) over n_batches replay batches
 * (mean over each batch's rows, then over batches) for each of n_mix
 * alphas (K floats each), batches drawn from rb with rng into batch.
 * scores: n_mix. */
int crl_csp_q_average(crl_sac *sac, int task, const crl_replay *rb, crl_batch *batch,
                      crl_rng *rng, int n_batches, int n_mix, const float *mixes,
                      double *scores, crl_err *err);
/* Rollouts per finalist for a task (config rollouts, or its auto value). */
int crl_csp_rollouts(const crl_csp_config *c, int success);
/* Env steps the decision of a task with n_anchors (after the add) takes at
 * most, given the episode length and whether the task reports success: the
 * rollouts are counted inside the task's budget (the check's are not). */
int64_t crl_csp_validation_budget(const crl_csp *m, int n_anchors, int episode_len,
                                  int success);
int crl_csp_save(const crl_csp *m, void **blob, size_t *n, crl_err *err);
int crl_csp_load(crl_csp *m, const void *blob, size_t n, crl_err *err);

/* ---- l2m: a modulation pool over a frozen pre-trained actor (docs/l2m.md) ----
 * The base is the actor of a stored plain learner (crl_l2m_base_parse); the
 * pool and the routing live in the learner (crl_sac with l2m_pool = M > 0,
 * pool.h). crl_l2m holds the method's side: routes per task, each task's
 * update rows per modulator and the modulator it trained (the modal one of
 * those rows), and the per-episode routing tally of evaluations. */

#define CRL_L2M_PULL    0.5f
#define CRL_L2M_HISTORY 5 /* the reference's query window (new runs) */

typedef struct {
    int pool;              /* M modulators (30) */
    const char *modulator; /* "lora" (default) or "ia3" */
    int rank;              /* LoRA rank (8) */
    float scale;           /* LoRA scale (2) */
    float pull;            /* key pull coefficient (0.5) */
    int oracle;            /* 1: per-task slices of the pool by task id */
    const char *router;    /* router kind (router.h): "l2m" (default), "cos", ... */
    const char *weights;   /* usage weights: "frozen" (new runs) or "live" (old) */
    const char *collect;   /* collection routes: "eval" (new runs) or "train" (old) */
    int history;           /* H: the query averages the last H observations (5; old 1) */
    int hold;              /* 1: acting keeps the modulator of step H (default 0) */
    int soft_k;            /* soft router: modulators merged per row (2) */
    float soft_temp;       /* soft router: softmax temperature (1) */
    /* Where the base comes from, for the command line and the run record
     * (the library takes the base itself, crl_l2m_base): "RUN[:TASK]" and
     * the store holding RUN (NULL: the run's own store). */
    const char *base, *base_db;
} crl_l2m_config;

void crl_l2m_config_default(crl_l2m_config *c);
/* "lora" -> CRL_POOL_LORA, "ia3" -> CRL_POOL_IA3, else -1. */
int crl_l2m_kind(const char *modulator);
/* The routing settings checked: CRL_EINVAL with one line naming the bad
 * one (router kind, weights frozen|live, collect eval|train, soft k in
 * 1..pool, soft temperature > 0). */
int crl_l2m_check_routing(const crl_l2m_config *c, crl_err *err);
/* What a stored configuration without the routing keys (runs made before
 * issue 19) means: live weights, collection with the training route, a
 * query of the current observation alone (H = 1), no hold. */
void crl_l2m_config_old_routing(crl_l2m_config *c);

/* A frozen base: the actor of a plain learner. */
typedef struct {
    int obs_dim, act_dim, n_tasks, hidden, layers;
    int head;      /* the head L2M uses (RUN:TASK) */
    size_t n;      /* actor parameters */
    float *params; /* malloc'd */
} crl_l2m_base;

/* Take the actor out of a crl_sac_save blob of a PLAIN learner (CRL_EINVAL
 * for CSP or L2M learners, CRL_ECORRUPT for anything else). */
int crl_l2m_base_parse(const void *sac_blob, size_t n, int head, crl_l2m_base *b,
                       crl_err *err);
void crl_l2m_base_free(crl_l2m_base *b);
/* Fill the L2M fields of a learner config (shape checked against the base:
 * CRL_EINVAL with a message naming the mismatch). */
int crl_l2m_sac_config(const crl_l2m_config *c, const crl_l2m_base *b, crl_sac_config *sc,
                       crl_err *err);

typedef struct {
    crl_l2m_config c;
    int n_tasks, M;
    int64_t *start; /* M: usage counts at the current task's start */
    int *train_mod; /* n_tasks: modal modulator of each finished task, -1 */
    int32_t *hist;  /* max_rows x M: the evaluation tally */
    int max_rows;
    /* rows[k * M + i]: update rows task k routed to modulator i (the usage
     * count delta over the task; the task being trained holds its rows so
     * far, crl_l2m_rows_now). rows_known = 0 after loading a checkpoint
     * written before the matrix existed: finished tasks' rows are unknown and
     * no step accuracy is computed for the rest of the run. */
    int64_t *rows;
    int rows_known;
    int cur;         /* the task being trained (-1 before the first) */
    double *acc_now; /* n_tasks: step accuracies of the evaluation under way */
    /* Query memory (crl_l2m_memory_add): n_mem rows of (query, task), the
     * queries mem_D floats each (the pool's query dimension; 0 while
     * empty). Kept in the checkpoint (CRLL2M03). */
    int mem_D, n_mem, cap_mem;
    float *mem_q;   /* n_mem x mem_D */
    int32_t *mem_y; /* n_mem: the local task of each query */
    /* The router's checkpoint state (crl_router_state_save; l2r: its
     * classifier), carried through crl_l2m_save / _load: rstate_n bytes. */
    unsigned char *rstate;
    size_t rstate_n;
} crl_l2m;

#define CRL_L2M_MEMORY_PER_TASK 200

/* Nearest-centroid task accuracy of n labelled query vectors q (n x dim,
 * row-major; label[p] in [0, n_tasks)), with leave-one-out: the query's own
 * task's centroid leaves it out, the other tasks' are their full means;
 * Euclidean distance; a query is right when its own centroid is strictly
 * nearer than every other task's that has a query (a tie, or a query alone
 * in its task, is wrong). *acc = right / n. The separability ceiling of
 * docs/metrics.md (crl_metric_ceiling is this function). CRL_EINVAL for a
 * NULL pointer, n, dim or n_tasks < 1, a label out of range or a non-finite
 * value; CRL_ENOMEM. */
int crl_l2m_nearest_centroid(const float *q, const int *label, int n, int dim,
                             int n_tasks, double *acc, crl_err *err);
/* At a task's end: the routing queries of up to per_task transitions of
 * the replay buffer rb (which holds the ended task's rows only: the runner
 * clears it at each task change), drawn without replacement from the
 * stream (seed, task) and taken in slot order (all of them when rb holds
 * no more than per_task), each the query the learner's pool computes for
 * the row's history window (crl_replay_window, H - 1 earlier observations
 * of its episode), appended to the memory with label `task`. The queries
 * come from the frozen base only (no modulator enters them). CRL_EINVAL if
 * the learner is not L2M; CRL_ENOMEM. */
int crl_l2m_memory_add(crl_l2m *m, crl_sac *sac, const crl_replay *rb, int task,
                       int per_task, uint64_t seed, crl_err *err);
/* The separability ceiling of the memory (crl_metric_ceiling over its rows,
 * classes = tasks): *acc, and the rows in *n. *acc = NAN while fewer than
 * two tasks have queries (one class separates trivially; docs/l2m.md). */
int crl_l2m_ceiling(const crl_l2m *m, double *acc, int *n, crl_err *err);

int crl_l2m_init(crl_l2m *m, const crl_l2m_config *c, int M, int n_tasks, int max_rows,
                 crl_err *err);
void crl_l2m_free(crl_l2m *m);
/* Task start: routes for training task `task` (first task plain cosine,
 * later ones the usage-weighted score; oracle: the task's slice), and the
 * counts snapshot. fresh != 0 (a task's first step) also gives the learner
 * new critics seeded from seed, and zeroes its Adam moments. */
int crl_l2m_task_start(crl_l2m *m, crl_sac *sac, int task, int fresh, uint64_t seed,
                       crl_err *err);
/* Evaluation routing (plain cosine, or oracle by the acting task); undo with
 * crl_l2m_task_start(..., fresh = 0). */
int crl_l2m_eval_route(crl_l2m *m, crl_sac *sac, crl_err *err);
/* Task end: train_mod[task] = the modulator with the most update rows
 * during the task (-1 if none). Returns it. */
int crl_l2m_task_end(crl_l2m *m, crl_sac *sac, int task);
/* Of the tally of `rows` episodes (hist): *modal = the modulator most
 * episodes mostly used, *frac = the fraction of episodes whose own mode it
 * is, *acc = the fraction whose mode is `trained` (NAN if trained < 0). */
void crl_l2m_route_summary(const crl_l2m *m, int rows, int trained, int *modal,
                           double *frac, double *acc);
/* Refresh rows[task] = usage counts now - counts at the task's start (the
 * rows of the task so far; its final rows once it ended). */
void crl_l2m_rows_now(crl_l2m *m, const int64_t *counts, int task);
/* Routing accuracy of task k over its evaluation steps (docs/l2m.md section
 * 6): with rows the n_tasks x M matrix of training rows,
 *     owned(k) = { i : S_i > 0 and rows[k][i] >= 0.5 * S_i },
 *     S_i = sum_j rows[j][i],
 * the fraction of the steps in hist (n_hist rows x M, each row an episode's
 * steps per modulator) routed to a modulator of owned(k). NAN if task k has
 * no training rows or hist no step. */
double crl_l2m_route_acc_steps(const int64_t *rows, int n_tasks, int M, int k,
                               const int32_t *hist, int n_hist);
/* Copy the router's checkpoint state (crl_router_state_save of the
 * learner's router) into m->rstate. CRL_ENOMEM. */
int crl_l2m_take_router_state(crl_l2m *m, crl_sac *sac, crl_err *err);
int crl_l2m_save(const crl_l2m *m, void **blob, size_t *n, crl_err *err);
int crl_l2m_load(crl_l2m *m, const void *blob, size_t n, crl_err *err);

/* ---- the method registry (agents/registry.c) ---------------------------------
 * Every continual method is one crl_method_impl (its file agents/method_*.c)
 * plus one row of the registry, which gives it its name and description.
 * The continual runner (agents/continual.c) calls the impl's operations and
 * branches on its flags only; report, sweep, plot, export and `crl train
 * --help` take names, descriptions and flags from here. Stored data names a
 * method by crl_method.name. */

enum {
    CRL_METHOD_CONTINUAL = 1u << 0, /* a continual agent of the report's table */
    CRL_METHOD_REFERENCE = 1u << 1, /* its runs are the forward-transfer references */
    CRL_METHOD_ONE_TASK = 1u << 2,  /* one scenario position per run */
    CRL_METHOD_MULTITASK = 1u << 3, /* every task at once, in one phase */
    CRL_METHOD_PER_TASK = 1u << 4,  /* one fresh learner per task */
    CRL_METHOD_SUBSPACE = 1u << 5,  /* the learner's actor is a CSP subspace */
    CRL_METHOD_L2M_BASE = 1u << 6,  /* needs a frozen L2M base (crl_l2m_base) */
    CRL_METHOD_RESERVOIR = 1u << 7, /* one reservoir buffer kept across tasks */
    CRL_METHOD_TASK_IDS = 1u << 8,  /* acts with the task id (heads, views) */
    CRL_METHOD_EXPORTABLE = 1u << 9 /* crl_policy_export writes its policy */
};

/* How an exported policy is built from the checkpoint. */
typedef enum {
    CRL_METHOD_POLICY_PLAIN = 0,    /* the learner's actor, a head per task */
    CRL_METHOD_POLICY_PER_TASK = 1, /* each finished task's own actor */
    CRL_METHOD_POLICY_PACKNET = 2,  /* the learner with per-task weight views */
    CRL_METHOD_POLICY_SUBSPACE = 3, /* CSP anchors and the alpha table */
    CRL_METHOD_POLICY_L2M = 4       /* frozen base + modulation pool */
} crl_method_policy;

/* The continual runner's state, private to agents/ (agents/continual_state.h). */
typedef struct crl_cstate crl_cstate;

/* A method's operations on the runner's state; any may be NULL (nothing to
 * do). Statuses are crl error codes with a message in err. */
typedef struct crl_method_impl {
    unsigned flags; /* CRL_METHOD_* */
    int policy;     /* crl_method_policy */
    double cost;    /* env-step cost relative to plain SAC (sweep scheduling) */
    /* Parameters needed at inference after tasks_done tasks, for a plain
     * actor of actor_params (NULL: one actor). */
    double (*model_params)(double actor_params, int tasks_done);
    /* The runs table's label of a run (variants get their own report rows);
     * NULL: the method's name. */
    void (*label)(const char *name, const crl_csp_config *csp, const crl_l2m_config *l2m,
                  char *buf, size_t n);
    int (*configure)(crl_cstate *st, crl_err *err);   /* before the first learner */
    int (*init)(crl_cstate *st, crl_err *err);        /* once the actor's layout exists */
    void (*attach)(crl_cstate *st, crl_sac_hooks *h); /* each new learner */
    int (*task_start)(crl_cstate *st, int k, int64_t t, crl_err *err);
    int64_t (*reserve)(crl_cstate *st, int k);             /* env steps kept back */
    const float *(*collect)(crl_cstate *st, int ep_start); /* collection alpha */
    /* Before evaluating task j: the policy that serves it (1: the actor's
     * parameters were swapped, st->saved holds them); track_rows > 0 also
     * starts the tally of that many episodes. */
    int (*eval_begin)(crl_cstate *st, int j, int track_rows);
    int (*eval_end)(crl_cstate *st, crl_store *store, int64_t run_id, int j, int rows,
                    crl_err *err);
    int (*eval_done)(crl_cstate *st, int cur, crl_err *err);
    void (*last_step)(crl_cstate *st, int k); /* before the task's last evaluation */
    int (*task_end)(crl_cstate *st, crl_store *store, int64_t run_id, int k,
                    int64_t reserve, crl_err *err);
    double (*params_now)(crl_cstate *st, int k); /* model/params at task k's end */
    int (*save)(crl_cstate *st, void **blob, size_t *n, crl_err *err);
    int (*load)(crl_cstate *st, const void *blob, size_t n, crl_err *err);
    void (*free)(crl_cstate *st);
} crl_method_impl;

typedef struct {
    const char *name;        /* as stored in runs and config_json */
    const char *description; /* one line, for --help */
    const crl_method_impl *impl;
} crl_method;

/* The method called name (NULL: none). */
const crl_method *crl_method_find(const char *name);
/* Registered methods, and the i-th of them (NULL out of range), in the
 * report's order. */
int crl_method_count(void);
const crl_method *crl_method_at(int i);
/* The method a runs-table label names ("l2m-oracle" -> l2m; NULL: none). */
const crl_method *crl_method_of_label(const char *label);
/* The first method with every flag of `flags` (NULL: none). */
const crl_method *crl_method_with(unsigned flags);
/* Position of name among the CRL_METHOD_CONTINUAL methods (the report's
 * row order), -1 for any other name. */
int crl_method_rank(const char *name);
/* "a, b, c or d": the names of the methods with every flag of `flags`, into
 * buf (truncated to n). Returns buf. */
const char *crl_method_list(unsigned flags, const char *last_sep, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
