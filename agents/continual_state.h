/* The continual runner's state, shared by agents/continual.c and the method
 * files (agents/method_*.c) whose crl_method_impl operations act on it.
 * Private to agents/. */
#ifndef CRL_AGENTS_CONTINUAL_STATE_H
#define CRL_AGENTS_CONTINUAL_STATE_H

#include "agents/diag.h"
#include "agents/evaluator.h"
#include "crl/continual.h"
#include "crl/dataset.h"
#include "crl/methods.h"
#include "crl/replay.h"
#include "crl/reservoir.h"

struct crl_cstate {
    const crl_continual_config *c;
    const crl_method_impl *m; /* the run's method */
    int n;                    /* tasks in this run */
    int *pos; /* scenario position of local task k (the stored task idx) */
    const char **names;
    crl_env_spec **specs;
    crl_env **envs;
    evaluator *evs;
    uint64_t *seeds;
    crl_sac_config sc;
    crl_sac *sac;
    size_t na;
    crl_replay rb;
    crl_reservoir res;
    crl_batch batch, fbatch;
    crl_reg reg;
    crl_packnet pk;
    crl_csp csp;
    crl_l2m l2m;
    int has_reg, has_pk, has_csp, has_l2m, has_res;
    float **ftn_actors; /* per-task learners: the actor of every finished task */
    float *saved, *fisher;
    crl_rng env_rng, rng, eval_rng, res_rng;
    int64_t step, eval_idx, last_eval_step;
    crl_episode *trec; /* --log-train-episodes: the current task's recorder */
    crl_dataset *ds;   /* offline: the dataset, open for the run */
    /* Training diagnostics (agents/diag.h; every = 0 outside a training run)
     * and what crl train is told of evaluations and warnings. */
    diag_state diag;
    double *prev_eval; /* [n] the last evaluation note's value of each task */
    int *has_success;  /* [n] crl_task_has_success of each task */
    crl_note_fn note;
    void *note_ctx;
};
typedef struct crl_cstate cstate;

/* `updates` SAC updates on batches from the run's buffer. */
int cstate_update_round(cstate *st, int64_t updates, crl_err *err);
/* Undo an eval_begin that swapped the actor's parameters (st->saved). */
void cstate_restore_actor(cstate *st);

/* The registered methods' operations (agents/method_*.c); agents/registry.c
 * names them. */
extern const crl_method_impl crl_method_ft1_impl, crl_method_ftn_impl, crl_method_l2_impl,
    crl_method_ewc_impl, crl_method_packnet_impl, crl_method_pm_impl,
    crl_method_single_impl, crl_method_csp_impl, crl_method_l2m_impl, crl_method_mt_impl;

#endif
