/* l2: fine-tuning with a quadratic pull (weight 1 per finished task) of the
 * actor's trunk towards its value at the last task end (crl_reg,
 * agents/methods.c). */
#include "agents/continual_state.h"

static int l2_init(cstate *st, crl_err *err) {
    int rc = crl_reg_init(&st->reg, crl_sac_actor(st->sac), st->c->l2_coef, err);
    if (!rc) st->has_reg = 1;
    return rc;
}

static void l2_attach(cstate *st, crl_sac_hooks *h) {
    crl_reg_hooks(&st->reg, h);
}

static int l2_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                       int64_t reserve, crl_err *err) {
    (void)store, (void)run_id, (void)k, (void)reserve, (void)err;
    crl_reg_task_end(&st->reg, crl_sac_actor_params(st->sac), NULL);
    return CRL_OK;
}

static int l2_save(cstate *st, void **blob, size_t *n, crl_err *err) {
    return crl_reg_save(&st->reg, blob, n, err);
}

static int l2_load(cstate *st, const void *blob, size_t n, crl_err *err) {
    return crl_reg_load(&st->reg, blob, n, err);
}

static void l2_free(cstate *st) {
    if (st->has_reg) crl_reg_free(&st->reg);
    st->has_reg = 0;
}

const crl_method_impl crl_method_l2_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_TASK_IDS | CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
    .init = l2_init,
    .attach = l2_attach,
    .task_end = l2_task_end,
    .save = l2_save,
    .load = l2_load,
    .free = l2_free,
};
