/* Replay: FIFO order, wrap-around, clear, uniform sampling. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "crl/replay.h"

START_TEST(test_fifo_wraps) {
    crl_replay r;
    ck_assert_int_eq(crl_replay_init(&r, 2, 1, 5, NULL), 0);
    for (int i = 0; i < 8; i++) {
        float o[2] = {(float)i, (float)-i}, o2[2] = {(float)i + 0.5f, 0},
              a = (float)i * 0.1f;
        crl_replay_add(&r, o, &a, (float)i, o2, i == 7, i % 3);
    }
    ck_assert_int_eq(r.size, 5);
    ck_assert_int_eq(r.added, 8);
    /* Slots 0..2 hold transitions 5..7, slots 3..4 hold 3..4: the oldest
     * (0, 1, 2) were overwritten in order. */
    float expect[5] = {5, 6, 7, 3, 4};
    for (int s = 0; s < 5; s++) {
        ck_assert(r.rew[s] == expect[s]);
        ck_assert(r.obs[2 * s] == expect[s]);
        ck_assert(r.obs[2 * s + 1] == -expect[s]);
        ck_assert(r.obs2[2 * s] == expect[s] + 0.5f);
        ck_assert_int_eq(r.task[s], (int)expect[s] % 3);
        ck_assert(r.done[s] == (expect[s] == 7 ? 1.0f : 0.0f));
    }
    crl_replay_clear(&r);
    ck_assert_int_eq(r.size, 0);
    crl_replay_free(&r);
}
END_TEST

START_TEST(test_sample_uniform) {
    crl_replay r;
    ck_assert_int_eq(crl_replay_init(&r, 1, 1, 10, NULL), 0);
    for (int i = 0; i < 10; i++) {
        float o = (float)i, a = 0;
        crl_replay_add(&r, &o, &a, (float)i, &o, 0, 0);
    }
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, 100, 1, 1, NULL), 0);
    crl_rng g;
    crl_rng_seed(&g, 1);
    int count[10] = {0};
    const int rounds = 2000;
    for (int k = 0; k < rounds; k++) {
        crl_replay_sample(&r, &g, 100, &b);
        for (int i = 0; i < 100; i++) {
            ck_assert(b.obs[i] == b.rew[i]); /* rows stay together */
            count[(int)b.rew[i]]++;
        }
    }
    /* 200,000 draws over 10 slots: each count is Binomial(2e5, 0.1), sd 134;
     * 5 sd = 670. */
    for (int i = 0; i < 10; i++)
        ck_assert_msg(abs(count[i] - 20000) < 670, "%d", count[i]);
    crl_batch_free(&b);
    crl_replay_free(&r);
}
END_TEST

START_TEST(test_bad_sizes) {
    crl_replay r;
    crl_err err = {0};
    ck_assert_int_eq(crl_replay_init(&r, 0, 1, 10, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_replay_init(&r, 3, 1, 0, &err), CRL_EINVAL);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, 0, 1, 1, &err), CRL_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("fifo");
    tcase_add_test(tc, test_fifo_wraps);
    tcase_add_test(tc, test_sample_uniform);
    tcase_add_test(tc, test_bad_sizes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
