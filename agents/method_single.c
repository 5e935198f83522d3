/* single: a fresh learner on one scenario position; its runs are the
 * forward-transfer references of the report. */
#include "agents/continual_state.h"

const crl_method_impl crl_method_single_impl = {
    .flags = CRL_METHOD_REFERENCE | CRL_METHOD_ONE_TASK | CRL_METHOD_TASK_IDS |
             CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
};
