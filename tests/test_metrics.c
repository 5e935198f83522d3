/* Metrics: performance, forgetting, AUC and forward transfer on hand-built
 * score matrices whose answers are worked out below, locomotion
 * normalisation, growth, and the bootstrap CI against a direct re-computation. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crl/metrics.h"

#define TOL 1e-12

/* The main example (docs/metrics.md uses it too): 3 tasks x 9 evaluations at
 * steps 10, 20, ..., 90; task 0 trains over steps (0, 30], task 1 over
 * (30, 60], task 2 over (60, 90].
 *
 *   t            0    1    2  | 3    4    5  | 6    7    8
 *   step        10   20   30  |40   50   60  |70   80   90
 *   training     0    0    0  | 1    1    1  | 2    2    2
 *   task 0     0.2  0.6  1.0  |0.8  0.6  0.4 |0.4  0.2  0.0
 *   task 1     0    0    0    |0.2  0.4  0.6 |0.6  0.6  0.6
 *   task 2     0    0    0    |0    0    0   |0.5  1.0  1.0
 */
static const double M_S[3][9] = {
    {0.2, 0.6, 1.0, 0.8, 0.6, 0.4, 0.4, 0.2, 0.0},
    {0.0, 0.0, 0.0, 0.2, 0.4, 0.6, 0.6, 0.6, 0.6},
    {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0},
};

static void build_main(crl_scores *m) {
    ck_assert_int_eq(crl_scores_alloc(m, 3, 9, NULL), 0);
    for (int t = 0; t < 9; t++) {
        m->step[t] = 10 * (t + 1);
        m->train_task[t] = t / 3;
        for (int i = 0; i < 3; i++) m->s[i * 9 + t] = M_S[i][t];
    }
    for (int i = 0; i < 3; i++) {
        m->task_start[i] = 30 * i;
        m->task_end[i] = 30 * (i + 1);
    }
}

/* 2 tasks x 8 evaluations at steps 10..80: task 0 trains over (0, 70] (7
 * evaluations, more than CRL_METRIC_LAST), task 1 over (70, 80].
 *   task 0  0.1 0.2 0.3 0.4 0.5 0.6 0.7 | 0.0
 *   task 1  0   0   0   0   0   0   0   | 0.9 */
static void build_long(crl_scores *m) {
    static const double s[2][8] = {{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.0},
                                   {0, 0, 0, 0, 0, 0, 0, 0.9}};
    ck_assert_int_eq(crl_scores_alloc(m, 2, 8, NULL), 0);
    for (int t = 0; t < 8; t++) {
        m->step[t] = 10 * (t + 1);
        m->train_task[t] = t < 7 ? 0 : 1;
        for (int i = 0; i < 2; i++) m->s[i * 8 + t] = s[i][t];
    }
    m->task_start[0] = 0;
    m->task_end[0] = 70;
    m->task_start[1] = 70;
    m->task_end[1] = 80;
}

START_TEST(test_performance) {
    crl_scores m;
    build_main(&m);
    /* Final = mean of the last 5 evaluations (t = 4..8):
     *   task 0: (0.6 + 0.4 + 0.4 + 0.2 + 0.0) / 5 = 1.6 / 5 = 0.32
     *   task 1: (0.4 + 0.6 + 0.6 + 0.6 + 0.6) / 5 = 2.8 / 5 = 0.56
     *   task 2: (0 + 0 + 0.5 + 1.0 + 1.0) / 5     = 2.5 / 5 = 0.50
     * performance = (0.32 + 0.56 + 0.50) / 3 = 0.46.
     * (The last 6 would give task 0 2.4 / 6 = 0.4, so the window size shows.) */
    double fin[3], perf;
    ck_assert_int_eq(crl_metric_final(&m, fin, NULL), 0);
    ck_assert_double_eq_tol(fin[0], 0.32, TOL);
    ck_assert_double_eq_tol(fin[1], 0.56, TOL);
    ck_assert_double_eq_tol(fin[2], 0.50, TOL);
    ck_assert_int_eq(crl_metric_performance(&m, &perf, NULL), 0);
    ck_assert_double_eq_tol(perf, 0.46, TOL);
    crl_scores_free(&m);

    /* Fewer than 5 evaluations: all 3 are averaged.
     *   task 0: (0.2 + 0.4 + 0.9) / 3 = 0.5;  task 1: (0 + 0.3 + 0.3) / 3 = 0.2
     *   performance = 0.35 */
    ck_assert_int_eq(crl_scores_alloc(&m, 2, 3, NULL), 0);
    const double s[2][3] = {{0.2, 0.4, 0.9}, {0.0, 0.3, 0.3}};
    for (int t = 0; t < 3; t++) {
        m.step[t] = 100 * (t + 1);
        for (int i = 0; i < 2; i++) m.s[i * 3 + t] = s[i][t];
    }
    ck_assert_int_eq(crl_metric_final(&m, fin, NULL), 0);
    ck_assert_double_eq_tol(fin[0], 0.5, TOL);
    ck_assert_double_eq_tol(fin[1], 0.2, TOL);
    ck_assert_int_eq(crl_metric_performance(&m, &perf, NULL), 0);
    ck_assert_double_eq_tol(perf, 0.35, TOL);

    /* A missing cell or a non-increasing step is an error, not a zero. */
    crl_err err = {0};
    m.s[4] = NAN;
    ck_assert_int_eq(crl_metric_performance(&m, &perf, &err), CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "task 1 at step 200"));
    m.s[4] = 0.3;
    m.step[2] = 200;
    ck_assert_int_eq(crl_metric_final(&m, fin, &err), CRL_EINVAL);
    crl_scores_free(&m);
}
END_TEST

START_TEST(test_forgetting) {
    crl_scores m;
    build_main(&m);
    /* Windows hold 3 evaluations each (fewer than 5, so all are averaged):
     *   task 0: t 0..2: (0.2 + 0.6 + 1.0) / 3 = 0.6;  0.6 - 0.32 =  0.28
     *   task 1: t 3..5: (0.2 + 0.4 + 0.6) / 3 = 0.4;  0.4 - 0.56 = -0.16
     *           (it kept improving after its window: negative forgetting)
     *   task 2: t 6..8: (0.5 + 1 + 1) / 3 = 5/6;      5/6 - 0.5 =  1/3
     *   mean = (0.28 - 0.16 + 1/3) / 3 = 0.45333... / 3 = 0.151111... */
    double f[3], mean;
    ck_assert_int_eq(crl_metric_forgetting(&m, f, &mean, NULL), 0);
    ck_assert_double_eq_tol(f[0], 0.28, TOL);
    ck_assert_double_eq_tol(f[1], -0.16, TOL);
    ck_assert_double_eq_tol(f[2], 1.0 / 3.0, TOL);
    ck_assert_double_eq_tol(mean, (0.28 - 0.16 + 1.0 / 3.0) / 3.0, TOL);
    ck_assert_double_eq_tol(mean, 0.1511111111111111, TOL);
    /* per_task may be NULL. */
    ck_assert_int_eq(crl_metric_forgetting(&m, NULL, &mean, NULL), 0);
    ck_assert_double_eq_tol(mean, 0.1511111111111111, TOL);
    crl_scores_free(&m);

    /* Window longer than 5: only its last 5 count.
     *   task 0: window t 0..6, last 5 = t 2..6: (0.3+0.4+0.5+0.6+0.7)/5 = 0.5
     *           final t 3..7: (0.4+0.5+0.6+0.7+0.0)/5 = 0.44;  F = 0.06
     *           (all 7 of the window would give 0.4 - 0.44 = -0.04)
     *   task 1: window t 7: 0.9; final (0+0+0+0+0.9)/5 = 0.18;  F = 0.72
     *   mean = 0.39 */
    build_long(&m);
    ck_assert_int_eq(crl_metric_forgetting(&m, f, &mean, NULL), 0);
    ck_assert_double_eq_tol(f[0], 0.06, TOL);
    ck_assert_double_eq_tol(f[1], 0.72, TOL);
    ck_assert_double_eq_tol(mean, 0.39, TOL);
    crl_scores_free(&m);
}
END_TEST

START_TEST(test_auc_windows) {
    crl_scores m;
    build_main(&m);
    /* AUC over (start, end]: task 0 t 0..2 = 0.6, task 1 t 3..5 = 0.4, task 2
     * t 6..8 = 5/6. With [start, end) instead, task 1 would average t 2..4
     * (0 + 0.2 + 0.4) / 3 = 0.2 and task 0 only t 0..1 = 0.4. */
    double auc[3];
    ck_assert_int_eq(crl_metric_auc(&m, auc, NULL), 0);
    ck_assert_double_eq_tol(auc[0], 0.6, TOL);
    ck_assert_double_eq_tol(auc[1], 0.4, TOL);
    ck_assert_double_eq_tol(auc[2], 5.0 / 6.0, TOL);

    /* A task that never ended: the window runs to the last evaluation. */
    m.task_end[2] = CRL_STEP_OPEN;
    ck_assert_int_eq(crl_metric_auc(&m, auc, NULL), 0);
    ck_assert_double_eq_tol(auc[2], 5.0 / 6.0, TOL);
    /* A window with no evaluation in it is an error naming the task. */
    crl_err err = {0};
    m.task_start[2] = 90;
    ck_assert_int_eq(crl_metric_auc(&m, auc, &err), CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "task 2"));
    double f, fa[3];
    ck_assert_int_eq(crl_metric_forgetting(&m, fa, &f, &err), CRL_EINVAL);
    /* A window that ends before it starts. */
    m.task_start[2] = 60;
    m.task_end[1] = 20;
    ck_assert_int_eq(crl_metric_auc(&m, auc, &err), CRL_EINVAL);
    crl_scores_free(&m);

    /* AUC averages the whole window, not its last 5: task 0 of the long
     * example is (0.1 + ... + 0.7) / 7 = 2.8 / 7 = 0.4 (last 5 would be 0.5). */
    build_long(&m);
    double a2[2];
    ck_assert_int_eq(crl_metric_auc(&m, a2, NULL), 0);
    ck_assert_double_eq_tol(a2[0], 0.4, TOL);
    ck_assert_double_eq_tol(a2[1], 0.9, TOL);
    crl_scores_free(&m);
}
END_TEST

/* Eval rows of the main example, in a scrambled order (k -> 7k mod 27 is a
 * permutation), with mean_return = 100 s + 1 so the two fields differ. */
static void main_rows(crl_eval_row *rows) {
    for (int k = 0; k < 27; k++) {
        int c = (7 * k) % 27, i = c / 9, t = c % 9;
        rows[k] = (crl_eval_row){.run_id = 1,
                                 .step = 10 * (t + 1),
                                 .train_task_idx = t / 3,
                                 .eval_task_idx = i,
                                 .episodes = 10,
                                 .success_rate = M_S[i][t],
                                 .mean_return = 100 * M_S[i][t] + 1};
    }
}

START_TEST(test_from_evals) {
    crl_eval_row rows[27];
    main_rows(rows);
    crl_scores m;
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, rows, 27, CRL_SCORE_SUCCESS, NULL), 0);
    ck_assert_int_eq(m.n_tasks, 3);
    ck_assert_int_eq(m.n_evals, 9);
    for (int t = 0; t < 9; t++) {
        ck_assert_int_eq(m.step[t], 10 * (t + 1));
        ck_assert_int_eq(m.train_task[t], t / 3);
        for (int i = 0; i < 3; i++) ck_assert(m.s[i * 9 + t] == M_S[i][t]);
    }
    /* Derived windows: task 0 (-1, 30] (no evaluation before it), task 1
     * (30, 60], task 2 (60, 90]: the same evaluations as the tasks table's
     * (0, 30], (30, 60], (60, 90]. */
    const int64_t start[3] = {-1, 30, 60}, end[3] = {30, 60, 90};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(m.task_start[i], start[i]);
        ck_assert_int_eq(m.task_end[i], end[i]);
    }
    double auc[3], perf;
    ck_assert_int_eq(crl_metric_auc(&m, auc, NULL), 0);
    ck_assert_double_eq_tol(auc[1], 0.4, TOL);
    ck_assert_int_eq(crl_metric_performance(&m, &perf, NULL), 0);
    ck_assert_double_eq_tol(perf, 0.46, TOL);
    crl_scores_free(&m);

    /* Returns instead of success: performance = 100 * 0.46 + 1 = 47. */
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, rows, 27, CRL_SCORE_RETURN, NULL), 0);
    ck_assert(m.s[0 * 9 + 2] == 101.0);
    ck_assert_int_eq(crl_metric_performance(&m, &perf, NULL), 0);
    ck_assert_double_eq_tol(perf, 47.0, 1e-10);
    crl_scores_free(&m);

    crl_err err = {0};
    crl_eval_row bad[27];
    /* A task not evaluated at some step: drop one row. */
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, rows, 26, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    ck_assert_ptr_null(m.s); /* zeroed on failure */
    /* Duplicate (step, task). */
    memcpy(bad, rows, sizeof bad);
    bad[26] = bad[0];
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, bad, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "twice"));
    /* Task index out of range. */
    memcpy(bad, rows, sizeof bad);
    bad[5].eval_task_idx = 3;
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, bad, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    /* Non-finite score. */
    memcpy(bad, rows, sizeof bad);
    bad[5].success_rate = NAN;
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, bad, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    /* Rows of one step disagree on the task being trained. */
    memcpy(bad, rows, sizeof bad);
    bad[5].train_task_idx = (bad[5].train_task_idx + 1) % 3;
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, bad, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "disagree"));
    /* Task 0 trained again after task 1: every row at step 90 says task 0. */
    memcpy(bad, rows, sizeof bad);
    for (int k = 0; k < 27; k++)
        if (bad[k].step == 90) bad[k].train_task_idx = 0;
    ck_assert_int_eq(crl_scores_from_evals(&m, 3, bad, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "task 0 is trained again"));
    ck_assert_int_eq(crl_scores_from_evals(&m, 0, rows, 27, CRL_SCORE_SUCCESS, &err),
                     CRL_EINVAL);
    crl_scores_free(&m); /* safe on the zeroed struct */
}
END_TEST

START_TEST(test_forward_transfer) {
    /* One seed: AUC of the main example (0.6, 0.4, 5/6) against references
     * (0.5, 0.6, 0.5):
     *   FT_0 = (0.6 - 0.5) / 0.5 = 0.2
     *   FT_1 = (0.4 - 0.6) / 0.4 = -0.5
     *   FT_2 = (5/6 - 0.5) / 0.5 = 2/3
     *   FT   = (0.2 - 0.5 + 2/3) / 3 = 0.12222... */
    crl_scores m;
    build_main(&m);
    double auc[3];
    ck_assert_int_eq(crl_metric_auc(&m, auc, NULL), 0);
    crl_scores_free(&m);
    const double ref[3] = {0.5, 0.6, 0.5};
    double ft_task[3], ft_seed[1], ft;
    ck_assert_int_eq(
        crl_metric_forward_transfer(3, 1, auc, 1, ref, ft_task, ft_seed, &ft, NULL), 0);
    ck_assert_double_eq_tol(ft_task[0], 0.2, TOL);
    ck_assert_double_eq_tol(ft_task[1], -0.5, TOL);
    ck_assert_double_eq_tol(ft_task[2], 2.0 / 3.0, TOL);
    ck_assert_double_eq_tol(ft, 0.1222222222222222, TOL);
    ck_assert_double_eq_tol(ft_seed[0], ft, TOL);

    /* Two seeds, one task: AUC 0.6 and 0.9, reference seeds 0.5 and 0.8.
     * Ratio of seed means: A = 0.75, B = 0.65, FT = 0.1 / 0.35 = 0.285714...
     * Mean of per-seed ratios: (0.1/0.5 + 0.1/0.2) / 2 = (0.2 + 0.5) / 2 = 0.35.
     * The spec asks for the first. Per-seed values against the fixed B:
     * (0.6 - 0.65) / 0.35 = -1/7 and (0.9 - 0.65) / 0.35 = 5/7, mean 2/7. */
    const double a2[2] = {0.6, 0.9}, b2[2] = {0.5, 0.8};
    double fs[2], ft1[1];
    ck_assert_int_eq(crl_metric_forward_transfer(1, 2, a2, 2, b2, ft1, fs, &ft, NULL), 0);
    ck_assert_double_eq_tol(ft, 2.0 / 7.0, TOL);
    ck_assert_double_eq_tol(ft1[0], 2.0 / 7.0, TOL);
    ck_assert(fabs(ft - 0.35) > 0.06);
    ck_assert_double_eq_tol(fs[0], -1.0 / 7.0, TOL);
    ck_assert_double_eq_tol(fs[1], 5.0 / 7.0, TOL);
    /* Outputs other than *ft may be NULL. */
    ck_assert_int_eq(crl_metric_forward_transfer(1, 2, a2, 2, b2, NULL, NULL, &ft, NULL),
                     0);
    ck_assert_double_eq_tol(ft, 2.0 / 7.0, TOL);

    /* Seeds are laid out row = seed: 2 seeds x 2 tasks, 3 reference seeds.
     *   task 0: A = (0.2 + 0.4) / 2 = 0.3, B = (0.1 + 0.2 + 0.3) / 3 = 0.2
     *           FT_0 = 0.1 / 0.8 = 0.125
     *   task 1: A = (0.9 + 0.7) / 2 = 0.8, B = (0.5 + 0.6 + 0.7) / 3 = 0.6
     *           FT_1 = 0.2 / 0.4 = 0.5
     *   FT = 0.3125 */
    const double a3[4] = {0.2, 0.9, 0.4, 0.7}, b3[6] = {0.1, 0.5, 0.2, 0.6, 0.3, 0.7};
    double f3[2];
    ck_assert_int_eq(crl_metric_forward_transfer(2, 2, a3, 3, b3, f3, fs, &ft, NULL), 0);
    ck_assert_double_eq_tol(f3[0], 0.125, TOL);
    ck_assert_double_eq_tol(f3[1], 0.5, TOL);
    ck_assert_double_eq_tol(ft, 0.3125, TOL);
    ck_assert_double_eq_tol((fs[0] + fs[1]) / 2, ft, TOL);

    /* One reference seed at AUC 1 is fine when the seed mean is below 1:
     * B = (1.0 + 0.8) / 2 = 0.9, A = (0.95 + 0.97) / 2 = 0.96, FT = 0.06 / 0.1. */
    const double a4[2] = {0.95, 0.97}, b4[2] = {1.0, 0.8};
    ck_assert_int_eq(crl_metric_forward_transfer(1, 2, a4, 2, b4, NULL, NULL, &ft, NULL),
                     0);
    ck_assert_double_eq_tol(ft, 0.6, 1e-10);
}
END_TEST

START_TEST(test_forward_transfer_ref_one) {
    /* Task 0's reference solved it from the first evaluation: B_0 = 1 leaves
     * 1 - B_0 = 0, so FT_0 is undefined. Task 1 is still reported:
     * (0.7 - 0.5) / 0.5 = 0.4. */
    const double a[2] = {0.9, 0.7}, b[2] = {1.0, 0.5};
    double ft_task[2], ft_seed[1], ft = 0;
    crl_err err = {0};
    ck_assert_int_eq(
        crl_metric_forward_transfer(2, 1, a, 1, b, ft_task, ft_seed, &ft, &err),
        CRL_EINVAL);
    ck_assert_int_eq(err.code, CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "task 0"));
    ck_assert(isnan(ft_task[0]));
    ck_assert_double_eq_tol(ft_task[1], 0.4, TOL);
    ck_assert(isnan(ft_seed[0]));
    ck_assert(isnan(ft));
    /* Both seeds at 1 is the same case through the seed mean; above 1 too. */
    const double b2[4] = {0.2, 1.0, 0.4, 1.0};
    const double a2[2] = {0.5, 0.5};
    ck_assert_int_eq(crl_metric_forward_transfer(2, 1, a2, 2, b2, NULL, NULL, &ft, &err),
                     CRL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "task 1"));
    const double b3[1] = {1.25};
    ck_assert_int_eq(crl_metric_forward_transfer(1, 1, a, 1, b3, NULL, NULL, &ft, &err),
                     CRL_EINVAL);
    /* Bad counts and non-finite input. */
    ck_assert_int_eq(crl_metric_forward_transfer(1, 0, a, 1, b, NULL, NULL, &ft, &err),
                     CRL_EINVAL);
    const double an[1] = {NAN};
    ck_assert_int_eq(
        crl_metric_forward_transfer(1, 1, an, 1, b + 1, NULL, NULL, &ft, &err),
        CRL_EINVAL);
}
END_TEST

START_TEST(test_locomotion) {
    /* Returns of a 2-task run, 6 evaluations, normalised by single-task SAC's
     * scores (2000, 500):
     *   task 0  1000 2000 3000 2500 2000 1000  ->  0.5 1 1.5 1.25 1 0.5
     *   task 1     0    0    0  100  300  500  ->  0   0 0   0.2  0.6 1
     * finals (last 5, t 1..5): task 0 5.25 / 5 = 1.05, task 1 1.8 / 5 = 0.36;
     * performance 0.705. */
    const double ret[2][6] = {{1000, 2000, 3000, 2500, 2000, 1000},
                              {0, 0, 0, 100, 300, 500}};
    const double norm[2][6] = {{0.5, 1, 1.5, 1.25, 1, 0.5}, {0, 0, 0, 0.2, 0.6, 1}};
    crl_scores m;
    ck_assert_int_eq(crl_scores_alloc(&m, 2, 6, NULL), 0);
    for (int t = 0; t < 6; t++) {
        m.step[t] = 1000 * (t + 1);
        for (int i = 0; i < 2; i++) m.s[i * 6 + t] = ret[i][t];
    }
    /* A bad reference is refused and leaves the matrix as it was. */
    crl_err err = {0};
    const double bad[3][2] = {{2000, 0}, {-5, 500}, {2000, NAN}};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(crl_scores_normalise(&m, bad[k], &err), CRL_EINVAL);
        for (int t = 0; t < 6; t++) ck_assert(m.s[t] == ret[0][t]);
    }
    const double ref[2] = {2000, 500};
    ck_assert_int_eq(crl_scores_normalise(&m, ref, NULL), 0);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 6; t++)
            ck_assert_double_eq_tol(m.s[i * 6 + t], norm[i][t], TOL);
    double perf;
    ck_assert_int_eq(crl_metric_performance(&m, &perf, NULL), 0);
    ck_assert_double_eq_tol(perf, 0.705, TOL);
    crl_scores_free(&m);

    /* SAC-N scores 1.0: two single-task reference seeds of one task.
     *   seed A  100 500 1000 1500 1800 2000 2200: final (1000+...+2200)/5 = 1700
     *   seed B  200 400  800 1200 1300 1400 1300: final 6000 / 5 = 1200
     * ref = seed mean of finals = 1450; normalised performances 1700/1450 and
     * 1200/1450, whose mean is exactly 1. */
    const double seeds[2][7] = {{100, 500, 1000, 1500, 1800, 2000, 2200},
                                {200, 400, 800, 1200, 1300, 1400, 1300}};
    crl_scores r[2];
    double fin[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(crl_scores_alloc(&r[k], 1, 7, NULL), 0);
        for (int t = 0; t < 7; t++) {
            r[k].step[t] = 1000 * (t + 1);
            r[k].s[t] = seeds[k][t];
        }
        ck_assert_int_eq(crl_metric_final(&r[k], &fin[k], NULL), 0);
    }
    ck_assert_double_eq_tol(fin[0], 1700, 1e-9);
    ck_assert_double_eq_tol(fin[1], 1200, 1e-9);
    double ref1 = (fin[0] + fin[1]) / 2, p[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(crl_scores_normalise(&r[k], &ref1, NULL), 0);
        ck_assert_int_eq(crl_metric_performance(&r[k], &p[k], NULL), 0);
        crl_scores_free(&r[k]);
    }
    ck_assert_double_eq_tol(p[0], 1700.0 / 1450.0, TOL);
    ck_assert_double_eq_tol(p[1], 1200.0 / 1450.0, TOL);
    ck_assert_double_eq_tol((p[0] + p[1]) / 2, 1.0, TOL);
}
END_TEST

START_TEST(test_growth) {
    /* Sizes after each task 100, 150, 150, 300: growth 300 / 100 = 3. */
    const int64_t size[4] = {100, 150, 150, 300};
    double g = 0;
    ck_assert_int_eq(crl_metric_growth(size, 4, &g, NULL), 0);
    ck_assert_double_eq_tol(g, 3.0, TOL);
    ck_assert_int_eq(crl_metric_growth(size, 1, &g, NULL), 0);
    ck_assert_double_eq_tol(g, 1.0, TOL);
    crl_err err = {0};
    const int64_t zero[2] = {0, 10}, neg[2] = {10, -1};
    ck_assert_int_eq(crl_metric_growth(zero, 2, &g, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_growth(neg, 2, &g, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_growth(size, 0, &g, &err), CRL_EINVAL);
}
END_TEST

/* The bootstrap written out plainly: R resamples of n draws from the same
 * generator sequence, insertion-sorted, and the two order statistics the
 * caller names. */
static void direct_ci(const double *x, int n, int R, uint64_t seed, int lo_idx,
                      int hi_idx, double *lo, double *hi, crl_rng *after) {
    crl_rng g;
    crl_rng_seed(&g, seed);
    double *m = malloc((size_t)R * sizeof *m);
    ck_assert_ptr_nonnull(m);
    for (int r = 0; r < R; r++) {
        double acc = 0;
        for (int j = 0; j < n; j++) acc += x[crl_rng_below(&g, (uint64_t)n)];
        m[r] = acc / n;
    }
    for (int a = 1; a < R; a++) {
        double v = m[a];
        int b = a - 1;
        while (b >= 0 && m[b] > v) {
            m[b + 1] = m[b];
            b--;
        }
        m[b + 1] = v;
    }
    *lo = m[lo_idx];
    *hi = m[hi_idx];
    *after = g;
    free(m);
}

START_TEST(test_bootstrap_direct) {
    const double x[6] = {0.12, 0.55, 0.31, 0.9, 0.2, 0.47};
    const double mean = (0.12 + 0.55 + 0.31 + 0.9 + 0.2 + 0.47) / 6;
    /* 90% from 4,000 resamples: sorted means m[200] and m[3799]. */
    crl_rng g, after;
    crl_rng_seed(&g, 12345);
    crl_ci ci;
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 6, CRL_BOOTSTRAP_RESAMPLES,
                                             CRL_BOOTSTRAP_LEVEL, &g, &ci, NULL),
                     0);
    double lo, hi;
    direct_ci(x, 6, 4000, 12345, 200, 3799, &lo, &hi, &after);
    ck_assert_double_eq_tol(ci.mean, mean, TOL);
    ck_assert(ci.lo == lo);
    ck_assert(ci.hi == hi);
    /* Same number of draws consumed: the generators agree afterwards. */
    ck_assert(memcmp(g.s, after.s, sizeof g.s) == 0);
    /* Sanity: the interval brackets the mean and is not degenerate. */
    ck_assert(ci.lo < ci.mean && ci.mean < ci.hi);
    ck_assert(ci.lo > 0.12 && ci.hi < 0.9);

    /* The index rule at other sizes: R = 20 at 90% -> m[1], m[18];
     * R = 8 at 50% -> a = 0.25: m[2], m[ceil(6) - 1] = m[5];
     * R = 30 at 90% -> m[floor(1.5)] = m[1], m[ceil(28.5) - 1] = m[28];
     * R = 25 at 68% -> a = 0.16: m[4], m[ceil(21) - 1] = m[20]. In doubles
     * a R is 3.9999999999999996 and (1 - a) R is 21.000000000000004 here (and
     * a R is 0.9999999999999998 for R = 20 at 90%), so a rule applied to the
     * raw products would pick m[3] and m[21]. */
    const struct {
        int R;
        double level;
        int lo, hi;
    } cases[4] = {
        {20, 0.90, 1, 18}, {8, 0.50, 2, 5}, {30, 0.90, 1, 28}, {25, 0.68, 4, 20}};
    for (int k = 0; k < 4; k++) {
        crl_rng_seed(&g, 99 + (uint64_t)k);
        ck_assert_int_eq(
            crl_metric_bootstrap_ci(x, 6, cases[k].R, cases[k].level, &g, &ci, NULL), 0);
        direct_ci(x, 6, cases[k].R, 99 + (uint64_t)k, cases[k].lo, cases[k].hi, &lo, &hi,
                  &after);
        ck_assert_msg(ci.lo == lo && ci.hi == hi, "case %d", k);
    }

    /* Same seed, same interval. */
    crl_ci c1, c2;
    crl_rng_seed(&g, 7);
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 6, 4000, 0.9, &g, &c1, NULL), 0);
    crl_rng_seed(&g, 7);
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 6, 4000, 0.9, &g, &c2, NULL), 0);
    ck_assert(c1.lo == c2.lo && c1.hi == c2.hi && c1.mean == c2.mean);
}
END_TEST

START_TEST(test_bootstrap_edges) {
    crl_rng g, before;
    crl_rng_seed(&g, 3);
    before = g;
    crl_ci ci;
    /* n = 1: the interval collapses to the value and no draw is made. */
    const double one = 0.42;
    ck_assert_int_eq(crl_metric_bootstrap_ci(&one, 1, 4000, 0.9, &g, &ci, NULL), 0);
    ck_assert(ci.mean == 0.42 && ci.lo == 0.42 && ci.hi == 0.42);
    ck_assert(memcmp(g.s, before.s, sizeof g.s) == 0);
    /* Equal values: every resample mean is the value. */
    const double same[4] = {0.25, 0.25, 0.25, 0.25};
    ck_assert_int_eq(crl_metric_bootstrap_ci(same, 4, 4000, 0.9, &g, &ci, NULL), 0);
    ck_assert(ci.mean == 0.25 && ci.lo == 0.25 && ci.hi == 0.25);

    /* Per-seed forward transfer feeds the bootstrap; its CI brackets FT. */
    const double a[3] = {0.3, 0.5, 0.7}, b[2] = {0.4, 0.2};
    double fs[3], ft;
    ck_assert_int_eq(crl_metric_forward_transfer(1, 3, a, 2, b, NULL, fs, &ft, NULL), 0);
    /* B = 0.3: FT = (0.5 - 0.3) / 0.7 = 2/7; per seed 0, 2/7, 4/7. */
    ck_assert_double_eq_tol(ft, 2.0 / 7.0, TOL);
    ck_assert_double_eq_tol(fs[2], 4.0 / 7.0, TOL);
    ck_assert_int_eq(crl_metric_bootstrap_ci(fs, 3, 4000, 0.9, &g, &ci, NULL), 0);
    ck_assert_double_eq_tol(ci.mean, ft, TOL);
    ck_assert(ci.lo <= ci.mean && ci.mean <= ci.hi && ci.lo < ci.hi);

    crl_err err = {0};
    const double x[2] = {0.1, 0.2}, xn[2] = {0.1, NAN};
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 0, 4000, 0.9, &g, &ci, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 2, 0, 0.9, &g, &ci, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 2, 4000, 1.0, &g, &ci, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_bootstrap_ci(x, 2, 4000, 0.0, &g, &ci, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_bootstrap_ci(xn, 2, 4000, 0.9, &g, &ci, &err),
                     CRL_EINVAL);
}
END_TEST

/* Separability ceiling, worked on paper. Six 2-D queries of three tasks:
 *
 *   task 0: a = (0, 0), b = (4, 0)     centroid (2, 0)
 *   task 1: c = (6, 0), d = (8, 0)     centroid (7, 0)
 *   task 2: e = (0, 4), f = (0, 6)     centroid (0, 5)
 *
 * Leave one out: a query's own centroid is the other query of its task.
 *   a: own b (4, 0) at 4; task 1 (7, 0) at 7; task 2 (0, 5) at 5 -> right
 *   b: own a (0, 0) at 4; task 1 (7, 0) at 3                    -> WRONG
 *      (with b kept in its own centroid (2, 0), at 2, it would be right:
 *      the leave-one-out flip)
 *   c: own d (8, 0) at 2; task 0 (2, 0) at 4; task 2 at sqrt 61  -> right
 *   d: own c (6, 0) at 2; task 0 at 6                            -> right
 *   e: own f (0, 6) at 2; task 0 (2, 0) at sqrt 20; task 1 at sqrt 65
 *                                                                -> right
 *   f: own e (0, 4) at 2; task 0 at sqrt 40; task 1 at sqrt 85   -> right
 * Ceiling 5 / 6 (without leaving b out it would be 6 / 6). */
START_TEST(test_ceiling_by_hand) {
    const float q[6][2] = {{0, 0}, {4, 0}, {6, 0}, {8, 0}, {0, 4}, {0, 6}};
    const int y[6] = {0, 0, 1, 1, 2, 2};
    double acc = -1;
    crl_err err = {0};
    ck_assert_int_eq(crl_metric_ceiling(&q[0][0], y, 6, 2, 3, &acc, &err), CRL_OK);
    ck_assert_double_eq_tol(acc, 5.0 / 6.0, TOL);
    /* Labels in another order (task ids are names only): the same. */
    const int y2[6] = {2, 2, 0, 0, 1, 1};
    ck_assert_int_eq(crl_metric_ceiling(&q[0][0], y2, 6, 2, 3, &acc, &err), CRL_OK);
    ck_assert_double_eq_tol(acc, 5.0 / 6.0, TOL);
    /* Ties are wrong: tasks 0 and 1 each hold (1, 1) twice, so every own
     * centroid and every other centroid is (1, 1), at 0: ceiling 0. */
    const float t[4][2] = {{1, 1}, {1, 1}, {1, 1}, {1, 1}};
    const int yt[4] = {0, 0, 1, 1};
    ck_assert_int_eq(crl_metric_ceiling(&t[0][0], yt, 4, 2, 2, &acc, &err), CRL_OK);
    ck_assert_double_eq_tol(acc, 0.0, TOL);
    /* A query alone in its task has no own centroid: wrong. Task 0 = a, b as
     * above, task 1 = one query (9, 9): a at 4 from b, far from (9, 9) ->
     * right; b at 4 from a, sqrt 106 from (9, 9) -> right; (9, 9) -> wrong.
     * 2 / 3. And one task alone (n_tasks 3, tasks 1 and 2 empty): both of
     * its queries are right. */
    const float s1[3][2] = {{0, 0}, {4, 0}, {9, 9}};
    const int ys[3] = {0, 0, 1};
    ck_assert_int_eq(crl_metric_ceiling(&s1[0][0], ys, 3, 2, 2, &acc, &err), CRL_OK);
    ck_assert_double_eq_tol(acc, 2.0 / 3.0, TOL);
    ck_assert_int_eq(crl_metric_ceiling(&s1[0][0], ys, 2, 2, 3, &acc, &err), CRL_OK);
    ck_assert_double_eq_tol(acc, 1.0, TOL);
    /* Bad input. */
    const int bad[3] = {0, 3, 1};
    ck_assert_int_eq(crl_metric_ceiling(&s1[0][0], bad, 3, 2, 3, &acc, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_ceiling(&s1[0][0], ys, 0, 2, 3, &acc, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_metric_ceiling(&s1[0][0], ys, 3, 0, 3, &acc, &err), CRL_EINVAL);
    const float nanq[2] = {0, NAN};
    ck_assert_int_eq(crl_metric_ceiling(nanq, ys, 1, 2, 1, &acc, &err), CRL_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_performance);
    tcase_add_test(tc, test_forgetting);
    tcase_add_test(tc, test_auc_windows);
    tcase_add_test(tc, test_from_evals);
    tcase_add_test(tc, test_forward_transfer);
    tcase_add_test(tc, test_forward_transfer_ref_one);
    tcase_add_test(tc, test_locomotion);
    tcase_add_test(tc, test_growth);
    tcase_add_test(tc, test_bootstrap_direct);
    tcase_add_test(tc, test_bootstrap_edges);
    tcase_add_test(tc, test_ceiling_by_hand);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
