/* The policy runtime makes packnet's per-task views without the trainer
 * (embed/packnet.h, so libcrl_policy links no agents/ code): its kernel
 * placement equals crl_packnet's, and its views equal crl_packnet_view bit
 * for bit at every point of a run (before the first task, training,
 * retraining, every task and one past the last). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "crl/methods.h"
#include "embed/packnet.h"

enum { TASKS = 4 };

static void actor(crl_mlp *m, int layernorm) {
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 5, 6, TASKS, 3, 7);
    s.hidden[1] = 6;
    s.hidden[2] = 4;
    s.layernorm_first = layernorm;
    ck_assert_int_eq(crl_mlp_init(m, &s, NULL), 0);
}

/* Views of every task by both sides, compared bitwise. */
static void same_views(const crl_packnet *pk, const crl_mlp *m, const float *params) {
    pol_packnet pp;
    ck_assert_int_eq(pol_packnet_init(&pp, m), CRL_OK);
    /* Both place the kernels alike: FREE on trunk kernels, SHARED elsewhere. */
    crl_packnet fresh;
    ck_assert_int_eq(crl_packnet_init(&fresh, m, TASKS, NULL), 0);
    ck_assert_mem_eq(pp.owner, fresh.owner, m->n_params * sizeof *pp.owner);
    crl_packnet_free(&fresh);
    memcpy(pp.owner, pk->owner, m->n_params * sizeof *pp.owner);
    pp.task = pk->task;
    float *a = malloc(m->n_params * sizeof(float)),
          *b = malloc(m->n_params * sizeof(float));
    ck_assert(a && b);
    for (int t = 0; t <= TASKS; t++) {
        crl_packnet_view(pk, params, t, a);
        pol_packnet_view(&pp, params, t, b);
        ck_assert_mem_eq(a, b, m->n_params * sizeof(float));
    }
    /* In place, as the trainer allows. */
    memcpy(b, params, m->n_params * sizeof(float));
    pol_packnet_view(&pp, b, 1, b);
    crl_packnet_view(pk, params, 1, a);
    ck_assert_mem_eq(a, b, m->n_params * sizeof(float));
    free(a);
    free(b);
    pol_packnet_free(&pp);
}

START_TEST(test_views_equal_the_trainers) {
    for (int ln = 0; ln <= 1; ln++) {
        crl_mlp m;
        actor(&m, ln);
        float *params = malloc(m.n_params * sizeof(float));
        ck_assert(params != NULL);
        crl_rng r;
        crl_rng_seed(&r, 11 + (uint64_t)ln);
        crl_mlp_init_params(&m, params, &r);
        crl_packnet pk;
        ck_assert_int_eq(crl_packnet_init(&pk, &m, TASKS, NULL), 0);
        same_views(&pk, &m, params);
        for (int t = 0; t < TASKS; t++) {
            ck_assert_int_eq(crl_packnet_task_start(&pk, t, NULL), 0);
            /* New values where the task trains, as its updates would. */
            for (size_t i = 0; i < m.n_params; i++)
                if (pk.trainable[i]) params[i] = (float)crl_rng_range(&r, -1.0, 1.0);
            same_views(&pk, &m, params);
            ck_assert_int_eq(crl_packnet_prune(&pk, params, NULL), 0);
            same_views(&pk, &m, params);
        }
        crl_packnet_free(&pk);
        free(params);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("policy_packnet");
    TCase *tc = tcase_create("views");
    tcase_add_test(tc, test_views_equal_the_trainers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
