/* ftn: a fresh learner per task; each finished task acts with its own actor
 * (kept in the runner's checkpoint, st->ftn_actors). */
#include <stdlib.h>
#include <string.h>

#include "agents/continual_state.h"

static double ftn_model_params(double actor_params, int tasks_done) {
    return actor_params * (tasks_done > 0 ? tasks_done : 1);
}

static int ftn_eval_begin(cstate *st, int j, int track_rows) {
    (void)track_rows;
    if (!st->ftn_actors[j]) return 0;
    float *p = crl_sac_actor_params(st->sac);
    memcpy(st->saved, p, st->na * sizeof(float));
    memcpy(p, st->ftn_actors[j], st->na * sizeof(float));
    return 1;
}

static int ftn_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                        int64_t reserve, crl_err *err) {
    (void)store, (void)run_id, (void)reserve;
    st->ftn_actors[k] = malloc(st->na * sizeof(float));
    if (!st->ftn_actors[k]) return crl_errf(err, CRL_ENOMEM, "ftn: out of memory");
    memcpy(st->ftn_actors[k], crl_sac_actor_params(st->sac), st->na * sizeof(float));
    return CRL_OK;
}

static double ftn_params_now(cstate *st, int k) {
    return ftn_model_params((double)st->na, k + 1);
}

const crl_method_impl crl_method_ftn_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_PER_TASK | CRL_METHOD_TASK_IDS |
             CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PER_TASK,
    .cost = 1.0,
    .model_params = ftn_model_params,
    .eval_begin = ftn_eval_begin,
    .task_end = ftn_task_end,
    .params_now = ftn_params_now,
};
