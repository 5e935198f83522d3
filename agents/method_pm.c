/* pm: perfect memory, one reservoir buffer over every task (reservoir.h),
 * sampled in larger batches. */
#include "agents/continual_state.h"

static int pm_configure(cstate *st, crl_err *err) {
    (void)err;
    st->sc.batch = CRL_PM_BATCH;
    return CRL_OK;
}

const crl_method_impl crl_method_pm_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_RESERVOIR | CRL_METHOD_TASK_IDS |
             CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
    .configure = pm_configure,
};
