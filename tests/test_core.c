/* core: the random generator's statistics and the two-lane fork-join. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/lanes.h"
#include "crl/base.h"

START_TEST(test_rng_moments) {
    crl_rng r;
    crl_rng_seed(&r, 12345);
    const int n = 400000;
    double s = 0, s2 = 0, u = 0, u2 = 0;
    for (int i = 0; i < n; i++) {
        double x = crl_rng_normal(&r);
        s += x;
        s2 += x * x;
        double v = crl_rng_uniform(&r);
        ck_assert(v >= 0.0 && v < 1.0);
        u += v;
        u2 += v * v;
    }
    /* Standard errors: mean 1/sqrt(n) = 0.0016, variance sqrt(2/n) = 0.0022;
     * uniform mean sqrt(1/12n) = 0.00046. Bounds at about 5 sigma. */
    ck_assert(fabs(s / n) < 0.008);
    ck_assert(fabs(s2 / n - 1.0) < 0.011);
    ck_assert(fabs(u / n - 0.5) < 0.0025);
    ck_assert(fabs(u2 / n - 1.0 / 3.0) < 0.0025);
}
END_TEST

START_TEST(test_rng_below_and_streams) {
    crl_rng r;
    crl_rng_seed(&r, 1);
    int count[3] = {0};
    for (int i = 0; i < 300000; i++) count[crl_rng_below(&r, 3)]++;
    /* sd of each count = sqrt(3e5 * 2/9) = 258 */
    for (int k = 0; k < 3; k++) ck_assert(abs(count[k] - 100000) < 1300);
    crl_rng a, b, c;
    crl_rng_seed_stream(&a, 7, 1);
    crl_rng_seed_stream(&b, 7, 1);
    crl_rng_seed_stream(&c, 7, 2);
    uint64_t xa = crl_rng_u64(&a), xb = crl_rng_u64(&b), xc = crl_rng_u64(&c);
    ck_assert(xa == xb);
    ck_assert(xa != xc);
}
END_TEST

typedef struct {
    long hits[2];
    long round;
    long seen[2];
} lane_ctx;

static void lane_fn(void *vctx, int lane) {
    lane_ctx *c = vctx;
    c->hits[lane]++;
    c->seen[lane] = c->round; /* both lanes see the round set before the run */
}

START_TEST(test_lanes_fork_join) {
    for (int n = 1; n <= 2; n++) {
        crl_lanes *l = NULL;
        ck_assert_int_eq(crl_lanes_create(n, &l, NULL), CRL_OK);
        ck_assert_int_eq(crl_lanes_count(l), n);
        lane_ctx c;
        memset(&c, 0, sizeof c);
        for (long i = 1; i <= 3000; i++) {
            c.round = i;
            crl_lanes_run(l, lane_fn, &c);
            /* Returned only after both lanes ran this round. */
            ck_assert(c.seen[0] == i && c.seen[1] == i);
        }
        ck_assert(c.hits[0] == 3000 && c.hits[1] == 3000);
        crl_lanes_free(l);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rng_moments);
    tcase_add_test(tc, test_rng_below_and_streams);
    tcase_add_test(tc, test_lanes_fork_join);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
