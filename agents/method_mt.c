/* mt: multi-task SAC over every task of the scenario at once (tasks
 * interleaved per episode, round-robin; one buffer; budget steps_per_task x
 * tasks). A pre-training base for L2M, not a continual agent. */
#include "agents/continual_state.h"

const crl_method_impl crl_method_mt_impl = {
    .flags = CRL_METHOD_MULTITASK | CRL_METHOD_TASK_IDS,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
};
