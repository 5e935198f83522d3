/* ft1: one learner with a head per task, fine-tuned through the scenario with
 * nothing against forgetting (the lower bound of Continual World). */
#include "agents/continual_state.h"

const crl_method_impl crl_method_ft1_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_TASK_IDS | CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
};
