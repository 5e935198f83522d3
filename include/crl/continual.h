/* crl continual: one method through a scenario of tasks, every task evaluated
 * on schedule, everything recorded in the run store (the Continual World
 * protocol). The SAC update exists once (sac.h); methods plug in through its
 * hooks (methods.h). */
#ifndef CRL_CONTINUAL_H
#define CRL_CONTINUAL_H

#include <signal.h>
#include <stdint.h>

#include "base.h"
#include "methods.h"
#include "runner.h"
#include "sac.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *scenario; /* crl_scenario_find name */
    const char *method;   /* a registered method's name (crl_method_find) */
    int single_task;      /* CRL_METHOD_ONE_TASK methods: the scenario position */
    uint64_t seed;
    int64_t steps_per_task; /* env steps per task */
    int64_t eval_every;     /* env steps between evaluations of every task */
    int eval_episodes;      /* stochastic episodes per task (+1 deterministic) */
    int eval_fixed;         /* every evaluation of a task runs the same episodes
                               (initial states and action noise), so an unchanged
                               policy scores exactly the same (default 0: fresh
                               episodes at every evaluation) */
    int log_train_every;    /* log training episodes 0, N, 2N, ... of a task (0: none) */
    double l2_coef;         /* CW 1e5 */
    double ewc_coef;        /* CW 1e4 */
    double packnet_retrain; /* retraining updates after a prune, as a fraction of
                               steps_per_task (CW: 100k of 1M = 0.1) */
    /* Offline (docs/offline.md): the dataset file (dataset.h), NULL for an
     * online run. Every env step of the online loop becomes one behaviour-
     * cloning update (crl_sac_bc_update with bc_loss) on a batch of the
     * task's transitions: steps_per_task and eval_every count updates. */
    const char *offline;
    int bc_loss;        /* crl_bc_loss */
    crl_csp_config csp; /* method csp */
    crl_l2m_config l2m; /* method l2m */
    crl_sac_config sac; /* obs/act/n_tasks are filled from the scenario */
    /* l2m: the frozen base (crl_l2m_base_parse of a stored learner); the
     * caller keeps it alive during the call. Resumes and evaluations need
     * it too (for its shape); the parameters then come from the run's own
     * checkpoint, which holds the base. */
    const crl_l2m_base *l2m_base;
    int64_t diag_every; /* updates between diagnostics rows (0: none; runner.h) */
    crl_note_fn note;   /* evaluations and warnings, with the progress ctx (may be
                           NULL) */
} crl_continual_config;

/* Continual World defaults: eval every 20,000 steps with 10 + 1 episodes,
 * 1M steps per task, CW coefficients. */
void crl_continual_config_default(crl_continual_config *c);

/* Train run_id through the scenario. resume != 0 continues from the run's
 * latest checkpoint (the replay buffer of the interrupted task restarts
 * empty; evaluation rows at the same steps are replaced, never duplicated).
 * Writes tasks, evals, episodes (every evaluation episode, and training
 * episodes per log_train_every), metrics ("model/params" at each task end,
 * "wall_time_s") and a checkpoint at every task end and on interruption.
 * Marks the run finished, interrupted (CRL_EINTR) or failed. */
int crl_continual_run(const crl_continual_config *c, crl_store *store, int64_t run_id,
                      int resume, crl_progress_fn progress, void *ctx,
                      volatile sig_atomic_t *stop, crl_err *err);

/* csp's refusal of offline training (one line). */
#define CRL_OFFLINE_CSP_REFUSAL                                                          \
    "csp cannot train offline: its task end picks anchors with the critic's scores, "    \
    "and behaviour cloning trains no critic"

/* "nll" -> CRL_BC_NLL, "mse" -> CRL_BC_MSE, else -1 (NULL: nll). */
int crl_bc_loss_kind(const char *name);

/* Check an offline configuration against its dataset before anything is
 * written: the file opens as a dataset, every task the run trains on is in
 * it, and every episode of those tasks reads back whole with the env's
 * observation and action sizes (crl_dataset_transitions). The method must
 * work offline (csp does not). CRL_EINVAL with one line naming what is
 * wrong (the dataset's own errors are mapped to it). */
int crl_continual_offline_check(const crl_continual_config *c, crl_err *err);

/* Re-evaluate a continual run's latest checkpoint on scenario position
 * `task` (c must be the run's configuration): `episodes` episodes side by
 * side, deterministic or stochastic, seeded from `seed`, with the policy the
 * method uses for that task (packnet: the weights it owns; ftn: its own
 * actor). CRL_ENOTFOUND if the run has no checkpoint. */
int crl_continual_eval(const crl_continual_config *c, crl_store *store, int64_t run_id,
                       int task, int episodes, int deterministic, uint64_t seed,
                       double *mean_return, double *success_rate, crl_err *err);

/* A continual-run checkpoint, read in place: agents/continual.c alone knows
 * its bytes. Every pointer points into the blob it was read from. */
typedef struct {
    int task;            /* local task being trained (n: all done) */
    int64_t task_steps;  /* env steps done in that task */
    int64_t step;        /* global env step */
    int64_t eval_idx;    /* evaluations done */
    const void *learner; /* the crl_sac_save blob (sac.h reads it) */
    size_t learner_n;
    const void *method; /* the method's own blob (crl_method_impl.save) */
    size_t method_n;
    int n_task_actors;       /* per-task methods: actors of the finished tasks */
    const void *task_actors; /* n_task_actors actors back to back (unaligned) */
    size_t task_actors_n;    /* bytes */
} crl_continual_view;

/* Read a continual-run checkpoint's parts (no copy). CRL_ECORRUPT if blob is
 * not one; the actors' size is checked by the caller (it knows the actor). */
int crl_continual_checkpoint_view(const void *blob, size_t n, crl_continual_view *v,
                                  crl_err *err);

/* Copy per-task actor i (na floats) of a view into out. CRL_EINVAL if i is out
 * of range or the view's actors are not n_task_actors x na floats. */
int crl_continual_task_actor(const crl_continual_view *v, int i, size_t na, float *out,
                             crl_err *err);

/* The learner part of a continual-run checkpoint: points *sac_blob into
 * blob (for crl_sac_load, or crl_l2m_base_parse). CRL_ECORRUPT if blob is
 * not one. */
int crl_continual_checkpoint_learner(const void *blob, size_t n, const void **sac_blob,
                                     size_t *sac_n, crl_err *err);

/* Parameters needed at inference for all tasks trained so far, for a method
 * after `tasks_done` tasks (the method's model_params: one actor per task
 * for per-task methods; others: one actor). */
double crl_continual_model_params(const char *method, double actor_params,
                                  int tasks_done);

#ifdef __cplusplus
}
#endif
#endif
