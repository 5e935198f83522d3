/* Batched evaluation episodes, shared by the single-env and continual
 * runners (private to agents/). */
#ifndef CRL_AGENTS_EVALUATOR_H
#define CRL_AGENTS_EVALUATOR_H

#include "crl/env.h"
#include "crl/episode.h"
#include "crl/sac.h"
#include "crl/store.h"
#include "crl/vecenv.h"

typedef struct {
    int n;            /* episodes side by side */
    crl_vecenv *venv; /* their envs, auto-reset off */
    float *obs, *act, *ret;
    int *done, *succ;
    crl_episode **rec; /* one recorder per env: every episode is recorded */
    int n_stoch;       /* of the last run */
} evaluator;

/* n instances of spec, stepped on `lanes` lanes (1, or 2: the calling
 * thread and one worker; the results are the same bit for bit);
 * CRL_ENOMEM or the env's error. */
int evaluator_init(evaluator *ev, const crl_env_spec *spec, int n, int lanes,
                   crl_err *err);
void evaluator_free(evaluator *ev);
/* Run the n episodes to their end with head `task`. Rows [0, n_stoch) act
 * stochastically with noise from rng, the rest deterministically. Leaves
 * each episode's return in ret[] and success (at any step) in succ[]. */
void evaluator_run(evaluator *ev, crl_sac *sac, int task, int n_stoch,
                   const uint64_t *seeds, crl_rng *rng);

/* Store the closed record of rec as one episode row (batched). */
int episode_log(crl_store *store, const crl_episode *rec, int64_t run_id, int64_t step,
                int task_idx, const char *kind, int episode, int deterministic,
                crl_err *err);
/* Store the n episodes of the last evaluator_run as eval episodes of
 * scenario position task_idx at step. */
int evaluator_log(const evaluator *ev, crl_store *store, int64_t run_id, int64_t step,
                  int task_idx, crl_err *err);

/* --log-train-episodes: log training episode k of a task when every > 0
 * and k % every == 0 (crl_train_config.log_train_every). */
static inline int train_episode_logged(int every, int64_t k) {
    return every > 0 && k % every == 0;
}

#endif
