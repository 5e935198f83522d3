/* Training diagnostics, shared by the single-env and continual runners
 * (private to agents/; the keys are in docs/diagnostics.md and
 * docs/schema.md). Per-update stats are summed into a few accumulators and
 * written as one averaged row of diag/... metrics every `every` updates: no
 * allocation, no store call per update. */
#ifndef CRL_AGENTS_DIAG_H
#define CRL_AGENTS_DIAG_H

#include <stdint.h>

#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/store.h"

typedef struct {
    int64_t every; /* updates between rows; 0: off */
    int bc;        /* offline: no critic, steps are updates */
    double gamma;
    /* sums over the updates since the last row */
    int64_t n;
    double q_loss, pi_loss, alpha, q_mean, logp, gn_actor, gn_critic;
    /* training episodes finished since the last row */
    int64_t n_ep;
    double ep_ret, ep_succ;
    /* rates: wall time since the last row minus the time spent evaluating */
    double t_last, paused;
    int64_t step_last;
    /* the runaway detector and its pending warning */
    crl_runaway rw;
    int warn_pending;
    char warn[256];
} diag_state;

/* Start (or restart after a resume) at env step `step`. */
void diag_init(diag_state *d, int64_t every, int bc, double gamma, int64_t step);
/* One update's stats (also feeds the runaway detector). */
void diag_update(diag_state *d, const crl_sac_stats *st);
/* A collected reward (the runaway detector's reward scale). */
void diag_reward(diag_state *d, double r);
/* A training episode ended. */
void diag_episode(diag_state *d, double ret, int success);
/* Seconds that do not count toward the rates (evaluations). */
void diag_pause(diag_state *d, double seconds);
/* 1 when a row is due (every updates accumulated). */
int diag_due(const diag_state *d);
/* Write the row of the accumulated updates at env step `step` (nothing
 * when no update accumulated) and start the next interval. success:
 * the task reports success (else diag/train_success is not written). */
void diag_write(diag_state *d, crl_store *store, int64_t run_id, int64_t step,
                int success);
/* A new task: its runaway warning may be given again. */
void diag_task_start(diag_state *d);
/* After an update round: if the runaway detector fired, the note (to
 * note(ctx), when set) and a diag/runaway row at `step`; clears it. */
void diag_warn_flush(diag_state *d, crl_store *store, int64_t run_id, int64_t step,
                     int task, int n_tasks, const char *task_name, crl_note_fn note,
                     void *ctx);

/* The number an evaluation note shows: the success rate (has_success) or
 * the mean return of the stochastic episodes, or the deterministic
 * episode's when there are none (det_success < 0: not known, NAN). */
double diag_eval_value(int has_success, int episodes, double success_rate,
                       double mean_return, double det_return, double det_success);
/* An evaluation note to note(ctx) (nothing when note is NULL). */
void diag_note_eval(crl_note_fn note, void *ctx, int task, int n_tasks,
                    const char *task_name, int64_t step, int has_success, double value,
                    double prev);

#endif
