/* Diverging physics, shared by the single-env and continual runners
 * (private to agents/; the rule is in agents/runner.c and
 * docs/robustness.md). */
#ifndef CRL_AGENTS_DIVERGE_H
#define CRL_AGENTS_DIVERGE_H

#include <stdint.h>

#include "crl/env.h"

/* Training episodes in a row whose physics diverged that fail a run. */
#define CRL_DIVERGED_IN_A_ROW 5

typedef struct {
    int warning;  /* the mjWARN_* of this episode's first divergence, -1 if none */
    int info;     /* its MuJoCo info (the DOF) */
    int in_a_row; /* diverged episodes in a row so far */
} diverge_state;

#define DIVERGE_INIT                                                                     \
    { -1, 0, 0 }

/* After each env step: notes a divergence MuJoCo counted in this step. */
void diverge_step(diverge_state *dv, crl_env *env);
/* At each episode end: CRL_EMUJOCO with one line naming the task, the env
 * step and MuJoCo's warning text when the rule is met, else CRL_OK. */
int diverge_episode_end(diverge_state *dv, const char *task, int64_t step, crl_err *err);

#endif
