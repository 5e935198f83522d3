/* BLAS loading: crl picks a fast kernel by itself on AVX2/AVX-512 CPUs and
 * says how it chose; sgemm agrees with a naive product. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crl/crl.h"

START_TEST(test_kernel_chosen) {
    crl_err err = {0};
    ck_assert_msg(crl_blas_init(1, &err) == CRL_OK, "%s", err.msg);
    const char *k = crl_blas_kernel();
    const char *how = crl_blas_how();
    ck_assert(k && *k);
    ck_assert(how && *how);
    __builtin_cpu_init();
    const char *user = getenv("CRL_TEST_USER_CORETYPE");
    if (!user && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        /* The slow fallbacks OpenBLAS picks when it misdetects a CPU. */
        ck_assert_msg(strcmp(k, "Prescott") && strcmp(k, "Core2") &&
                          strcmp(k, "Nehalem") && strcmp(k, "Sandybridge"),
                      "slow kernel %s on an AVX2 CPU (%s)", k, how);
        ck_assert(strstr(how, "forced by crl") || strstr(how, "set by the user"));
    }
    ck_assert_int_eq(crl_blas_threads(), 1);
    crl_blas_set_threads(2);
    ck_assert_int_eq(crl_blas_threads(), 2);
}
END_TEST

START_TEST(test_sgemm_matches_naive) {
    /* Row-major, all four transpose combinations, with alpha and beta. */
    enum { M = 7, N = 5, K = 9 };
    float A[M * K], At[K * M], B[K * N], Bt[N * K], C0[M * N];
    for (int i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 11) - 5.0f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((i * 17) % 7) - 3.0f;
    for (int i = 0; i < M * N; i++) C0[i] = (float)(i % 3);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) At[k * M + i] = A[i * K + k];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) Bt[j * K + k] = B[k * N + j];
    for (int t = 0; t < 4; t++) {
        char ta = t & 1 ? 'T' : 'N', tb = t & 2 ? 'T' : 'N';
        float C[M * N];
        memcpy(C, C0, sizeof C);
        crl_sgemm(ta, tb, M, N, K, 2.0f, ta == 'T' ? At : A, ta == 'T' ? M : K,
                  tb == 'T' ? Bt : B, tb == 'T' ? K : N, 0.5f, C, N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
                /* integers: exact in float */
                ck_assert(C[i * N + j] == (float)(2.0 * s + 0.5 * C0[i * N + j]));
            }
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("blas");
    tcase_add_test(tc, test_kernel_chosen);
    tcase_add_test(tc, test_sgemm_matches_naive);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
