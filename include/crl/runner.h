/* crl runner: drives a SAC learner through an environment, evaluates on
 * schedule and records everything in the run store. */
#ifndef CRL_RUNNER_H
#define CRL_RUNNER_H

#include <signal.h>
#include <stdint.h>

#include "base.h"
#include "env.h"
#include "sac.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- training diagnostics (docs/diagnostics.md) --------------------------
 * Every run writes diag/... metrics rows, averaged over the updates since the
 * previous row; CRL_DIAG_EVERY is the default interval in updates. */
#define CRL_DIAG_EVERY 1000

/* What a runner tells its caller besides progress: one evaluation of one
 * task, or a warning (crl train prints both as one line each). */
typedef enum { CRL_NOTE_EVAL = 0, CRL_NOTE_WARNING = 1 } crl_note_kind;

typedef struct {
    crl_note_kind kind;
    int task, n_tasks;     /* local position of the task (0-based) of the run's tasks */
    const char *task_name; /* that task */
    int64_t step;          /* global env step (offline: update) */
    /* CRL_NOTE_EVAL */
    int has_success; /* the task reports success: value is a success rate, else a
                        return */
    double value;    /* the stochastic episodes' mean (the deterministic
                        episode's when there are none) */
    double prev;     /* the previous evaluation of this task, NAN if none */
    /* CRL_NOTE_WARNING: one line, no newline */
    const char *message;
} crl_note;

/* Called with the progress callback's ctx. */
typedef void (*crl_note_fn)(const crl_note *n, void *ctx);

/* 1 if task `name` reports a success notion (its registered group is not
 * locomotion; a user's MJCF task has none), else 0. */
int crl_task_has_success(const char *name);

/* The runaway detector: a critic loss that explodes or a Q that runs away
 * is flagged once per task, before the values reach NaN
 * (docs/diagnostics.md). Two rules, checked on every update's stats:
 * 1. Bounds. With Q_max = (R + E) / (1 - gamma), R the largest |reward|
 *    the run has collected so far and E the largest |alpha * mean log pi|
 *    of an update so far (the entropy bonus), no soft Q value can
 *    legitimately exceed Q_max in size, nor a critic loss 0.5 (e1^2 + e2^2)
 *    exceed 4 Q_max^2. Flagged, with margin, when
 *      |mean Q| > 10 Q_max + 1   or   critic loss > 100 Q_max^2 + 1
 *    (gamma >= 1: no bound), or when either is not finite.
 * 2. Growth. After CRL_RUNAWAY_WARMUP updates of the task, a fast moving
 *    average of log critic loss (over about 5 updates) more than
 *    log CRL_RUNAWAY_RATIO above a slow one (about 1,000 updates), with
 *    the loss beyond (R / (1 - gamma))^2 + 1: an explosion the bound
 *    misses because the entropy bonus explodes with it (a runaway alpha).
 *    One bad batch does not move the fast average that far, and the floor
 *    keeps a loss that rises from nearly 0 as the first rewards come in
 *    from being flagged. */
#define CRL_RUNAWAY_WARMUP 20
#define CRL_RUNAWAY_RATIO  1000.0
typedef struct {
    double max_abs_reward, max_abs_bonus;
    double fast, slow; /* moving averages of this task's critic loss */
    int64_t n;         /* updates of this task */
    int warned;        /* this task's warning was given */
} crl_runaway;

/* Fresh state (nothing seen). */
void crl_runaway_init(crl_runaway *d);
/* A new task: its warning may be given again, its averages restart (the
 * maxima are kept). */
void crl_runaway_task_start(crl_runaway *d);
/* A collected reward. */
void crl_runaway_reward(crl_runaway *d, double reward);
/* One update's stats: returns 1, with a one-line message in msg, the first
 * time in this task that the rule holds; 0 otherwise (and after that). */
int crl_runaway_update(crl_runaway *d, const crl_sac_stats *st, double gamma, char *msg,
                       size_t cap);

typedef struct {
    const char *env;     /* environment name, or NULL with env_xml */
    const char *env_xml; /* a user's MJCF file instead of a named env */
    crl_xml_task xml;    /* how to make a task of env_xml */
    uint64_t seed;
    int64_t steps;      /* env steps to train */
    int64_t eval_every; /* env steps between evaluations */
    int eval_episodes;  /* stochastic episodes per evaluation (+1 deterministic) */
    int threads;        /* BLAS threads (recorded; set by the caller) */
    crl_sac_config sac; /* obs/act dims are filled from the env */
    /* Log training episodes 0, N, 2N, ... for replay (0: none). */
    int log_train_every;
    /* Continue run_id from its latest checkpoint instead of starting it
     * (crl train --resume of a single-env run). */
    int resume;
    int64_t diag_every; /* updates between diagnostics rows (0: none) */
    crl_note_fn note;   /* evaluations and warnings (may be NULL) */
} crl_train_config;

/* Default of --log-train-episodes: every 10th training episode. */
#define CRL_LOG_TRAIN_EVERY 10

/* Defaults: CW SAC, eval every 20,000 steps with 10 + 1 episodes. */
void crl_train_config_default(crl_train_config *c);

typedef struct {
    int task, n_tasks;
    const char *task_name;
    int64_t step, total;   /* env steps done / planned */
    double steps_per_s;    /* recent rate */
    double recent_return;  /* mean of the last 10 training episodes (NAN: none yet) */
    double recent_success; /* fraction of those that succeeded */
    double eta_s;          /* seconds left, NAN if unknown */
    int64_t updates;
    int has_success; /* the task reports success (crl_task_has_success) */
} crl_progress;

typedef void (*crl_progress_fn)(const crl_progress *p, void *ctx);

/* Train run_id (already created in the store with status running) to
 * completion. Writes tasks, evals, episodes (every evaluation episode, and
 * training episodes per log_train_every), metrics and checkpoints (after every
 * evaluation, only the latest kept); marks the run finished, interrupted (when
 * *stop becomes non-zero: returns CRL_EINTR after a checkpoint) or failed
 * (NaN and other errors, after a checkpoint of the last good state). With
 * c->resume it restores the latest checkpoint (learner, step, episode count,
 * generators) and continues from its step in a fresh episode; the replay
 * buffer is not checkpointed, so updates wait until update_after new steps
 * have refilled it. progress is called about once a second. */
int crl_train_run(const crl_train_config *c, crl_store *store, int64_t run_id,
                  crl_progress_fn progress, void *ctx, volatile sig_atomic_t *stop,
                  crl_err *err);

/* Mean return and success rate of `episodes` deterministic (or stochastic)
 * episodes of env for a learner, episodes run side by side in one batch.
 * Episode k starts from seed crl_eval_seed(seed, k). */
int crl_evaluate(crl_sac *sac, const crl_env_spec *env, int task, int episodes,
                 int deterministic, uint64_t seed, double *mean_return,
                 double *success_rate, crl_err *err);

/* The learner part of a runner checkpoint (as stored by crl_train_run):
 * points *sac_blob into blob for crl_sac_load, and returns the step it was
 * taken at in *step (may be NULL). CRL_ECORRUPT if blob is not one. */
int crl_checkpoint_learner(const void *blob, size_t n, const void **sac_blob,
                           size_t *sac_n, int64_t *step, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
