/* Batched evaluation episodes, shared by the single-env and continual
 * runners (private to agents/). */
#ifndef CRL_AGENTS_EVALUATOR_H
#define CRL_AGENTS_EVALUATOR_H

#include "crl/env.h"
#include "crl/sac.h"

typedef struct {
    int n; /* episodes side by side */
    crl_env **envs;
    float *obs, *act, *ret;
    int *done, *succ;
} evaluator;

/* n instances of spec; CRL_ENOMEM or the env's error. */
int evaluator_init(evaluator *ev, const crl_env_spec *spec, int n, crl_err *err);
void evaluator_free(evaluator *ev);
/* Run the n episodes to their end with head `task`. Rows [0, n_stoch) act
 * stochastically with noise from rng, the rest deterministically. Leaves
 * each episode's return in ret[] and success (at any step) in succ[]. */
void evaluator_run(evaluator *ev, crl_sac *sac, int task, int n_stoch,
                   const uint64_t *seeds, crl_rng *rng);
/* Seed of evaluation episode ep of evaluation eval_idx of a run. */
uint64_t eval_seed(uint64_t seed, int64_t eval_idx, int ep);

#endif
