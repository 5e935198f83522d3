/* Reservoir (perfect memory): append until full, then Algorithm R, so that
 * every transition ever offered is kept with the same probability and each
 * past task keeps a share proportional to its size. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crl/reservoir.h"

/* Transition number t of task k: obs = (k, t), obs2 = (k, -t), rew = t. */
static void offer(crl_reservoir *r, crl_rng *g, int k, int t, int64_t *slot) {
    float o[2] = {(float)k, (float)t}, o2[2] = {(float)k, (float)-t}, a = 0.5f;
    int64_t s = crl_reservoir_add(r, g, o, &a, (float)t, o2, t % 3 == 0, k);
    if (slot) *slot = s;
}

START_TEST(test_fills_in_order_then_replaces) {
    crl_reservoir r;
    ck_assert_int_eq(crl_reservoir_init(&r, 2, 1, 4, NULL), 0);
    crl_rng g, g0;
    crl_rng_seed(&g, 1);
    g0 = g;
    int64_t slot;
    for (int t = 0; t < 4; t++) {
        offer(&r, &g, 0, t, &slot);
        ck_assert_int_eq(slot, t);
    }
    /* No draw while there is room: the generator is untouched. */
    ck_assert(memcmp(&g, &g0, sizeof g) == 0);
    ck_assert_int_eq(r.buf.size, 4);
    int kept = 0;
    for (int t = 4; t < 400; t++) {
        offer(&r, &g, 1, t, &slot);
        ck_assert(slot >= -1 && slot < 4);
        if (slot >= 0) {
            kept++;
            /* The row was written whole into that slot. */
            ck_assert(r.buf.obs[2 * slot] == 1.0f && r.buf.obs[2 * slot + 1] == (float)t);
            ck_assert(r.buf.obs2[2 * slot + 1] == (float)-t);
            ck_assert(r.buf.rew[slot] == (float)t);
            ck_assert_int_eq(r.buf.task[slot], 1);
            ck_assert(r.buf.done[slot] == (t % 3 == 0 ? 1.0f : 0.0f));
        }
    }
    ck_assert_int_eq(r.buf.size, 4);
    ck_assert_int_eq(r.seen, 400);
    /* Offer t is kept with probability 4 / (t + 1): about 4 (H_400 - H_4)
     * = 4 (6.57 - 2.08) = 18 of them; far fewer than 396, far more than 0. */
    ck_assert(kept > 3 && kept < 60);
    crl_reservoir_free(&r);
    crl_err e = {0};
    ck_assert_int_eq(crl_reservoir_init(&r, 2, 1, 0, &e), CRL_EINVAL);
}
END_TEST

/* Four tasks of unequal length offered in sequence into a buffer of
 * capacity C << N. Algorithm R leaves a uniformly random C-subset of the N
 * offers, so the count of task k is hypergeometric:
 *   mean C p_k, variance C p_k (1 - p_k) (N - C) / (N - 1), p_k = N_k / N.
 * With C = 3000, N = 60000: p = 0.1, 0.3, 0.2, 0.4 give means 300, 900,
 * 600, 1200 and sd 16.0, 24.4, 21.3, 26.2; the bound is 5 sd (a false
 * failure has probability below 6e-7 per task). A FIFO buffer would hold
 * 3000 of task 3 and none of the others. */
START_TEST(test_task_shares_proportional) {
    const int C = 3000, Nk[4] = {6000, 18000, 12000, 24000};
    const int N = 60000;
    crl_reservoir r;
    ck_assert_int_eq(crl_reservoir_init(&r, 2, 1, C, NULL), 0);
    crl_rng g;
    crl_rng_seed(&g, 7);
    for (int k = 0; k < 4; k++)
        for (int t = 0; t < Nk[k]; t++) offer(&r, &g, k, t, NULL);
    ck_assert_int_eq(r.seen, N);
    ck_assert_int_eq(r.buf.size, C);
    int count[4] = {0};
    char *seen = calloc((size_t)N, 1);
    for (int s = 0; s < C; s++) {
        int k = r.buf.task[s], t = (int)r.buf.obs[2 * s + 1];
        ck_assert(k >= 0 && k < 4 && t >= 0 && t < Nk[k]);
        ck_assert((int)r.buf.obs[2 * s] == k);
        ck_assert(r.buf.obs2[2 * s + 1] == (float)-t); /* rows stay whole */
        int id = 0;
        for (int j = 0; j < k; j++) id += Nk[j];
        ck_assert_msg(!seen[id + t], "transition %d of task %d stored twice", t, k);
        seen[id + t] = 1;
        count[k]++;
    }
    for (int k = 0; k < 4; k++) {
        double p = (double)Nk[k] / N, mean = C * p;
        double sd = sqrt(C * p * (1 - p) * (double)(N - C) / (N - 1));
        ck_assert_msg(fabs(count[k] - mean) < 5 * sd,
                      "task %d: %d kept, expected %.0f +- %.1f", k, count[k], mean, sd);
    }

    /* Batches mix the tasks in the same proportions: 200 batches of 512
     * rows are 102,400 draws from the held counts; each task's draw count
     * is binomial, sd < sqrt(102400 / 4) = 160, bound 5 sd = 800. */
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, CRL_PM_BATCH, 2, 1, NULL), 0);
    int drawn[4] = {0};
    for (int k = 0; k < 200; k++) {
        crl_reservoir_sample(&r, &g, CRL_PM_BATCH, &b);
        ck_assert_int_eq(b.B, CRL_PM_BATCH);
        for (int i = 0; i < b.B; i++) {
            ck_assert((int)b.obs[2 * i] == b.task[i]);
            drawn[b.task[i]]++;
        }
    }
    for (int k = 0; k < 4; k++) {
        double expect = 200.0 * CRL_PM_BATCH * count[k] / C;
        ck_assert_msg(fabs(drawn[k] - expect) < 800, "task %d drawn %d, expected %.0f", k,
                      drawn[k], expect);
    }
    crl_batch_free(&b);
    free(seen);
    crl_reservoir_free(&r);
}
END_TEST

/* The defining property, offer by offer: capacity 8, 32 offers (4 tasks of
 * 8), 20,000 independent runs. Each offer must be kept in 8/32 of the runs:
 * binomial mean 5000, sd sqrt(20000 * 0.25 * 0.75) = 61.2, bound 5 sd = 306.
 * Drawing the slot from [0, t) instead of [0, t] keeps offer 8 in every run
 * (and shifts the others by hundreds), far outside the bound. */
START_TEST(test_every_offer_equally_likely) {
    enum { CAP = 8, N = 32, RUNS = 20000 };
    int kept[N] = {0};
    crl_rng g;
    crl_rng_seed(&g, 11);
    for (int run = 0; run < RUNS; run++) {
        crl_reservoir r;
        ck_assert_int_eq(crl_reservoir_init(&r, 2, 1, CAP, NULL), 0);
        for (int t = 0; t < N; t++) offer(&r, &g, t / 8, t, NULL);
        for (int s = 0; s < CAP; s++) kept[(int)r.buf.rew[s]]++;
        crl_reservoir_free(&r);
    }
    for (int t = 0; t < N; t++)
        ck_assert_msg(abs(kept[t] - RUNS * CAP / N) < 306, "offer %d kept %d times", t,
                      kept[t]);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("reservoir");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fills_in_order_then_replaces);
    tcase_add_test(tc, test_task_shares_proportional);
    tcase_add_test(tc, test_every_offer_equally_likely);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
