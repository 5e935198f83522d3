/* The trainer and the policy runtime make packnet's per-task views by one
 * rule (nn/packnet.h, so libcrl_policy links no agents/ code): the runtime's
 * kernel placement equals crl_packnet's and the trainer's kernel ranges
 * (crl_trunk_ranges), its owner check is the checkpoint's, and its views equal
 * crl_packnet_view bit for bit, and the rule as the trainer documents it, at
 * every point of a run (before the first task, training, retraining, every
 * task and one past the last). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "crl/methods.h"
#include "nn/packnet.h"

enum { TASKS = 4 };

static void actor(crl_mlp *m, int layernorm) {
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 5, 6, TASKS, 3, 7);
    s.hidden[1] = 6;
    s.hidden[2] = 4;
    s.layernorm_first = layernorm;
    ck_assert_int_eq(crl_mlp_init(m, &s, NULL), 0);
}

/* 1 if parameter i is in one of the trainer's trunk kernel ranges. */
static int in_kernel(const crl_mlp *m, size_t i) {
    crl_range r[CRL_TRUNK_MAX_RANGES];
    const int n = crl_trunk_ranges(m, r);
    for (int k = 0; k < n; k++)
        if (r[k].kind == CRL_TRUNK_KERNEL && i >= r[k].lo && i < r[k].hi) return 1;
    return 0;
}

/* Views of every task by both sides, compared bitwise with each other and
 * with crl_packnet_view's documented rule. */
static void same_views(const crl_packnet *pk, const crl_mlp *m, const float *params) {
    int16_t *owner = malloc(m->n_params * sizeof *owner);
    ck_assert(owner != NULL);
    crl_pkview_place(m, owner);
    /* Both place the kernels alike: FREE on trunk kernels, SHARED elsewhere. */
    crl_packnet fresh;
    ck_assert_int_eq(crl_packnet_init(&fresh, m, TASKS, NULL), 0);
    ck_assert_mem_eq(owner, fresh.owner, m->n_params * sizeof *owner);
    crl_packnet_free(&fresh);
    for (size_t i = 0; i < m->n_params; i++)
        ck_assert_int_eq(owner[i],
                         in_kernel(m, i) ? CRL_PACKNET_FREE : CRL_PACKNET_SHARED);
    memcpy(owner, pk->owner, m->n_params * sizeof *owner);
    float *a = malloc(m->n_params * sizeof(float)),
          *b = malloc(m->n_params * sizeof(float));
    ck_assert(a && b);
    for (int t = 0; t <= TASKS; t++) {
        crl_packnet_view(pk, params, t, a);
        crl_pkview(m, owner, pk->task, params, t, b);
        ck_assert_mem_eq(a, b, m->n_params * sizeof(float));
        /* Task t uses the kernels owned by tasks <= t, and the free ones
         * once t is the current task or later; all else is untouched. */
        for (size_t i = 0; i < m->n_params; i++) {
            const int o = owner[i];
            const int used = o == CRL_PACKNET_SHARED ? 1
                             : o == CRL_PACKNET_FREE ? t >= pk->task
                                                     : o <= t;
            ck_assert(memcmp(&b[i], used ? &params[i] : &(float){0.0f}, sizeof(float)) ==
                      0);
        }
    }
    /* In place, as the trainer allows. */
    memcpy(b, params, m->n_params * sizeof(float));
    crl_pkview(m, owner, pk->task, b, 1, b);
    crl_packnet_view(pk, params, 1, a);
    ck_assert_mem_eq(a, b, m->n_params * sizeof(float));
    free(a);
    free(b);
    free(owner);
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

/* The owners a file may hold (the loader's check) are the ones a checkpoint
 * may hold (crl_packnet_load's): a kernel weight is free or owned by a task
 * that has started, everything else is shared. */
START_TEST(test_owner_check) {
    const int cur = 2;
    ck_assert(crl_pkview_owner_ok(1, CRL_PACKNET_FREE, cur));
    ck_assert(crl_pkview_owner_ok(1, 0, cur));
    ck_assert(crl_pkview_owner_ok(1, cur, cur));
    ck_assert(!crl_pkview_owner_ok(1, cur + 1, cur));
    ck_assert(!crl_pkview_owner_ok(1, CRL_PACKNET_SHARED, cur));
    ck_assert(!crl_pkview_owner_ok(1, -3, cur));
    ck_assert(!crl_pkview_owner_ok(1, 0, -1));
    ck_assert(crl_pkview_owner_ok(1, CRL_PACKNET_FREE, -1));
    ck_assert(crl_pkview_owner_ok(0, CRL_PACKNET_SHARED, cur));
    ck_assert(!crl_pkview_owner_ok(0, CRL_PACKNET_FREE, cur));
    ck_assert(!crl_pkview_owner_ok(0, 0, cur));

    /* The checkpoint loader agrees on a real actor: one task-2 owner on a
     * kernel is refused before task 2 starts, accepted after. */
    crl_mlp m;
    actor(&m, 1);
    crl_packnet pk;
    ck_assert_int_eq(crl_packnet_init(&pk, &m, TASKS, NULL), 0);
    float *params = calloc(m.n_params, sizeof(float));
    ck_assert(params != NULL);
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(crl_packnet_task_start(&pk, t, NULL), 0);
        ck_assert_int_eq(crl_packnet_prune(&pk, params, NULL), 0);
    }
    void *blob;
    size_t n;
    ck_assert_int_eq(crl_packnet_save(&pk, &blob, &n, NULL), 0);
    size_t k = 0;
    while (k < m.n_params && pk.owner[k] != CRL_PACKNET_FREE) k++;
    ck_assert(k < m.n_params);
    int16_t two = 2;
    memcpy((unsigned char *)blob + 32 + k * sizeof two, &two, sizeof two);
    ck_assert_int_eq(crl_packnet_load(&pk, blob, n, NULL), CRL_ECORRUPT);
    ck_assert_int_eq(crl_packnet_task_start(&pk, 2, NULL), 0);
    int32_t task = 2;
    memcpy((unsigned char *)blob + 20, &task, sizeof task);
    ck_assert_int_eq(crl_packnet_load(&pk, blob, n, NULL), 0);
    ck_assert_int_eq(pk.owner[k], 2);
    free(blob);
    free(params);
    crl_packnet_free(&pk);
}
END_TEST

int main(void) {
    Suite *s = suite_create("policy_packnet");
    TCase *tc = tcase_create("views");
    tcase_add_test(tc, test_views_equal_the_trainers);
    tcase_add_test(tc, test_owner_check);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
