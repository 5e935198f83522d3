/* crl report: stores written through the crl_store API exactly as the
 * continual runner writes them (docs/report.md), with scores chosen so every
 * number of the table can be worked out by hand; the worked values are in the
 * comments. Also the csv/json formats (parsed back) and the command itself
 * (cli/cmd_report.c, run in a child process). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "crl/report.h"

#include <check.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/scenario.h"

/* The command is compiled in here so it can be tested before it is wired
 * into cli/main.c. */
#include "cli/cmd_report.c"
#include "cli/opts.c"

#define TOL 1e-9

/* ------------------------------------------------------------------------ */
/* Building stores                                                           */

static char g_dir[64];
static char g_db[128];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_report_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_db, sizeof g_db, "%s/runs.db", g_dir);
}

static void teardown(void) {
    if (g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

#define OK(call)                                                                         \
    do {                                                                                 \
        crl_err e_ = {0};                                                                \
        int rc_ = (call);                                                                \
        (void)e_;                                                                        \
        ck_assert_msg(rc_ == CRL_OK, "%s -> %d", #call, rc_);                            \
    } while (0)

static crl_store *open_db(int create) {
    crl_store *s = NULL;
    crl_err e = {0};
    ck_assert_msg(crl_store_open(g_db, create, &s, &e) == CRL_OK, "%s", e.msg);
    return s;
}

static int64_t new_run(crl_store *s, const char *method, const char *scenario,
                       uint64_t seed, int spt, int every) {
    crl_kv kv[] = {{"steps_per_task", NULL, spt},
                   {"eval_every", NULL, every},
                   {"eval_episodes", NULL, 10},
                   {"lr", NULL, 1e-3}};
    int64_t id = 0;
    crl_err e = {0};
    ck_assert_msg(crl_store_run_create(s, method, scenario, seed, kv, 4, &id, &e) == 0,
                  "%s", e.msg);
    return id;
}

/* The score goes where the report must read it; the other two numbers of the
 * row are decoys, so reading the wrong column changes the result:
 * manipulation: success_rate = v (mean_return, det_return decoys);
 * locomotion:   det_return = v (mean_return -7, success 0 decoys). */
static void put_eval(crl_store *s, int64_t id, int64_t step, int train, int task,
                     double v, int loco) {
    crl_eval_row r = {id, step, train, task, 10, 0, 0, 0};
    if (loco) {
        r.success_rate = 0;
        r.mean_return = -7;
        r.det_return = v;
    } else {
        r.success_rate = v;
        r.mean_return = 100 * v + 3;
        r.det_return = -5;
    }
    crl_err e = {0};
    ck_assert_msg(crl_store_eval(s, &r, &e) == 0, "%s", e.msg);
}

/* A continual run of scenario as the runner writes it: task i trains over
 * (i*spt, (i+1)*spt]; every `every` steps all tasks are evaluated; v is
 * [n_tasks x n_evals] row-major with n_evals = n_tasks*spt/every. params
 * (may be NULL) is "model/params" at each task end; wall (NaN: none) is
 * "wall_time_s" at the end. skip_task >= 0 leaves that task out of the last
 * evaluation (a malformed run). */
static int64_t add_run_x(crl_store *s, const char *method, const char *scenario,
                         uint64_t seed, int spt, int every, const double *v, int loco,
                         const double *params, double wall, const char *status,
                         int skip_task) {
    const crl_scenario *sc = crl_scenario_find(scenario);
    ck_assert_ptr_nonnull(sc);
    int n = sc->n_tasks, ne = n * spt / every;
    int64_t id = new_run(s, method, scenario, seed, spt, every);
    crl_err e = {0};
    for (int i = 0; i < n; i++) {
        ck_assert(crl_store_task_start(s, id, i, sc->tasks[i], (int64_t)i * spt, &e) ==
                  0);
        for (int t = 0; t < ne; t++) {
            int64_t step = (int64_t)(t + 1) * every;
            if (step <= (int64_t)i * spt || step > (int64_t)(i + 1) * spt) continue;
            for (int j = 0; j < n; j++) {
                if (t == ne - 1 && j == skip_task) continue;
                put_eval(s, id, step, i, j, v[j * ne + t], loco);
            }
            crl_store_metric(s, id, step, "loss/q", 1.5, NULL);
        }
        ck_assert(crl_store_task_end(s, id, i, (int64_t)(i + 1) * spt, &e) == 0);
        if (params)
            ck_assert(crl_store_metric(s, id, (int64_t)(i + 1) * spt, "model/params",
                                       params[i], &e) == 0);
    }
    if (!isnan(wall))
        ck_assert(crl_store_metric(s, id, (int64_t)n * spt, "wall_time_s", wall, &e) ==
                  0);
    ck_assert_msg(crl_store_run_set_status(s, id, status, &e) == 0, "%s", e.msg);
    return id;
}

static int64_t add_run(crl_store *s, const char *method, const char *scenario,
                       uint64_t seed, int spt, int every, const double *v, int loco,
                       const double *params, double wall) {
    return add_run_x(s, method, scenario, seed, spt, every, v, loco, params, wall,
                     "finished", -1);
}

/* A single-task reference run for scenario position pos: one task row (idx
 * pos, window (0, spt]), evals of that task only at every, 2*every, ... spt.
 * v has spt/every values. name NULL: the scenario's task name. */
static int64_t add_ref(crl_store *s, const char *scenario, uint64_t seed, int spt,
                       int every, int pos, const char *name, const double *v, int loco) {
    const crl_scenario *sc = crl_scenario_find(scenario);
    ck_assert_ptr_nonnull(sc);
    int64_t id = new_run(s, CRL_REPORT_REF_METHOD, scenario, seed, spt, every);
    crl_err e = {0};
    ck_assert(crl_store_task_start(s, id, pos, name ? name : sc->tasks[pos], 0, &e) == 0);
    for (int t = 0; t < spt / every; t++)
        put_eval(s, id, (int64_t)(t + 1) * every, pos, pos, v[t], loco);
    ck_assert(crl_store_task_end(s, id, pos, spt, &e) == 0);
    ck_assert(crl_store_run_set_status(s, id, "finished", &e) == 0);
    return id;
}

/* "Staircase": task i scores 0 before its window and val[i] from its window on
 * (3 evaluations per task here), so its AUC is val[i]. */
static void stair(double *v, int n, int per, const double *val) {
    int ne = n * per;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ne; t++) v[i * ne + t] = t >= i * per ? val[i] : 0;
}

static crl_report build(const char *scenario) {
    crl_store *s = open_db(0);
    crl_report r;
    crl_err e = {0};
    int rc = crl_report_build(s, scenario, &r, &e);
    crl_store_close(s);
    ck_assert_msg(rc == CRL_OK, "build: %d %s", rc, e.msg);
    return r;
}

static const crl_report_row *find_row(const crl_report *r, const char *scenario,
                                      const char *method, int64_t spt) {
    for (int i = 0; i < r->n_rows; i++)
        if (!strcmp(r->rows[i].scenario, scenario) &&
            !strcmp(r->rows[i].method, method) && r->rows[i].steps_per_task == spt)
            return &r->rows[i];
    ck_abort_msg("no row %s %s %lld", scenario, method, (long long)spt);
    return NULL;
}

static int has_note(const crl_report *r, const char *needle) {
    for (int i = 0; i < r->n_notes; i++)
        if (strstr(r->notes[i], needle)) return 1;
    return 0;
}

static void ci_eq(crl_ci c, double mean, double lo, double hi) {
    ck_assert_msg(fabs(c.mean - mean) < TOL && fabs(c.lo - lo) < TOL &&
                      fabs(c.hi - hi) < TOL,
                  "got %.12g [%.12g, %.12g], want %.12g [%.12g, %.12g]", c.mean, c.lo,
                  c.hi, mean, lo, hi);
}

/* ------------------------------------------------------------------------ */
/* The manipulation store: t1 = push, window-close, hammer                    */

/* 30 steps per task, an evaluation every 10: steps 10..90, 9 evaluations,
 * task 0 over (0, 30] (t = 0..2), task 1 (30, 60] (t = 3..5), task 2 (60, 90]
 * (t = 6..8). "Final" = last 5 evaluations, t = 4..8.
 *
 * pm seed 1 = the worked example of docs/metrics.md:
 *   task 0: .2 .6 1 .8 .6 .4 .4 .2 0   window mean .6, final 1.6/5 = .32
 *   task 1: 0 0 0 .2 .4 .6 .6 .6 .6    window mean .4, final 2.8/5 = .56
 *   task 2: 0 0 0 0 0 0 .5 1 1         window mean 5/6, final 2.5/5 = .5
 *   performance (.32+.56+.5)/3 = .46; forgetting (.28 - .16 + 1/3)/3 = .151111
 *   AUC (.6, .4, 5/6)
 * pm seed 2:
 *   task 0: .4 .6 .8 .8 .8 .8 .8 .8 .8  window .6, final .8, forgetting -.2
 *   task 1: 0 0 0 .4 .4 .4 .4 .4 .4     window .4, final .4, forgetting 0
 *   task 2: 0 0 0 0 0 0 1 1 1           window 1, final .6, forgetting .4
 *   performance 1.8/3 = .6; forgetting .2/3 = .066667; AUC (.6, .4, 1)
 * pm: performance (.46 + .6)/2 = .53, forgetting (.151111 + .066667)/2 =
 * .108889. With 2 seeds a resample mean is the low value with probability
 * 1/4 (~1000 of 4000), so m[200] is the lower and m[3799] the higher seed:
 * the CI is [min, max].
 *
 * References (method single, 30 steps, evals at 10, 20, 30):
 *   position 0 (push):         seeds (.2 .4 .6) and (.4 .6 .8): AUC .4, .6
 *   position 1 (window-close): (.4 .6 .8): AUC .6
 *   position 2 (hammer):       (.2 .6 .7): AUC .5
 *   B = (.5, .6, .5) (seed means first).
 *   A decoy "reference" at position 1 named hammer (AUC 1) must be skipped:
 *   pooled by name it would make B_2 = .75.
 * pm FT: A = (.6, .4, 11/12); FT_i = (.1/.5, -.2/.4, (5/12)/.5) = (.2, -.5, 5/6)
 *   FT = (.2 - .5 + .833333)/3 = .177778.
 *   Per seed against fixed B: seed 1 (.2 - .5 + 2/3)/3 = .122222,
 *   seed 2 (.2 - .5 + 1)/3 = .233333.
 *
 * csp: staircases, seed 1 at .5, seed 2 at .9:
 *   seed 1: final (.5, .5, (0+0+.5+.5+.5)/5 = .3), performance 1.3/3 = .433333,
 *           forgetting (0 + 0 + .2)/3 = .066667, AUC (.5 .5 .5)
 *   seed 2: final (.9, .9, .54), performance 2.34/3 = .78, forgetting .12,
 *           AUC (.9 .9 .9)
 *   performance .606667 [.433333, .78], forgetting .093333 [.066667, .12]
 *   FT: A = (.7 .7 .7), FT_i = (.4, .25, .4), FT = .35;
 *       seed 1 (0 - .25 + 0)/3 = -.083333, seed 2 (.8 + .75 + .8)/3 = .783333
 *   model/params 1000, 1500, 2100 (growth 2.1) and 1000, 1500, 2000 (2.0):
 *   params 2050, growth 2.05; wall time 300 and 500: 400.
 * pm: params 1000 at every task end (growth 1), wall 100 and 200: 150. */
static const double M1[27] = {.2, .6, 1, .8, .6, .4, .4, .2, 0,  /**/
                              0,  0,  0, .2, .4, .6, .6, .6, .6, /**/
                              0,  0,  0, 0,  0,  0,  .5, 1,  1};
static const double M2[27] = {.4, .6, .8, .8, .8, .8, .8, .8, .8, /**/
                              0,  0,  0,  .4, .4, .4, .4, .4, .4, /**/
                              0,  0,  0,  0,  0,  0,  1,  1,  1};

static void make_manip_store(void) {
    crl_store *s = open_db(1);
    const double p_pm[3] = {1000, 1000, 1000};
    const double p_csp1[3] = {1000, 1500, 2100}, p_csp2[3] = {1000, 1500, 2000};
    double c1[27], c2[27];
    stair(c1, 3, 3, (const double[]){.5, .5, .5});
    stair(c2, 3, 3, (const double[]){.9, .9, .9});
    /* csp is created first: the table orders methods ft1 ftn l2 ewc packnet
     * pm csp l2m, not by name or id. */
    add_run(s, "csp", "t1", 1, 30, 10, c1, 0, p_csp1, 300);
    add_run(s, "pm", "t1", 1, 30, 10, M1, 0, p_pm, 100);
    add_run(s, "pm", "t1", 2, 30, 10, M2, 0, p_pm, 200);
    add_run(s, "csp", "t1", 2, 30, 10, c2, 0, p_csp2, 500);
    /* Skipped: task 2 has no evaluation at the last step. */
    add_run_x(s, "pm", "t1", 3, 30, 10, M2, 0, p_pm, 1e6, "finished", 2);
    /* Ignored: not finished. */
    add_run_x(s, "pm", "t1", 4, 30, 10, M2, 0, p_pm, 1e6, "running", -1);
    add_run_x(s, "csp", "t1", 4, 30, 10, M2, 0, p_pm, 1e6, "failed", -1);
    /* Same method, another budget: its own row, and the 30-step references
     * are not its references. Same scores at half the evaluation density. */
    add_run(s, "pm", "t1", 1, 60, 20, M1, 0, p_pm, 100);
    /* Another scenario without references. */
    add_run(s, "ft1", "t2", 1, 30, 10, M1, 0, NULL, NAN);

    add_ref(s, "t1", 1, 30, 10, 0, NULL, (const double[]){.2, .4, .6}, 0);
    add_ref(s, "t1", 2, 30, 10, 0, NULL, (const double[]){.4, .6, .8}, 0);
    add_ref(s, "t1", 1, 30, 10, 1, NULL, (const double[]){.4, .6, .8}, 0);
    add_ref(s, "t1", 1, 30, 10, 2, NULL, (const double[]){.2, .6, .7}, 0);
    add_ref(s, "t1", 9, 30, 10, 1, "hammer", (const double[]){1, 1, 1}, 0);
    crl_store_close(s);
}

START_TEST(test_manip_numbers) {
    setup();
    make_manip_store();
    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 4);
    /* Order: scenario, then the method order, then steps per task. */
    ck_assert_str_eq(r.rows[0].method, "pm");
    ck_assert_int_eq(r.rows[0].steps_per_task, 30);
    ck_assert_str_eq(r.rows[1].method, "pm");
    ck_assert_int_eq(r.rows[1].steps_per_task, 60);
    ck_assert_str_eq(r.rows[2].method, "csp");
    ck_assert_str_eq(r.rows[3].scenario, "t2");

    const crl_report_row *pm = find_row(&r, "t1", "pm", 30);
    ck_assert_int_eq(pm->n_seeds, 2);
    ck_assert_int_eq(pm->n_tasks, 3);
    ck_assert_str_eq(pm->score, "success");
    ck_assert_str_eq(pm->score_note, "");
    ci_eq(pm->performance, .53, .46, .6);
    ci_eq(pm->forgetting, ((0.28 - 0.16 + 1.0 / 3) / 3 + 0.2 / 3) / 2, 0.2 / 3,
          (0.28 - 0.16 + 1.0 / 3) / 3);
    ck_assert_msg(pm->ft_note[0] == 0, "%s", pm->ft_note);
    ci_eq(pm->forward_transfer, (0.2 - 0.5 + 5.0 / 6) / 3, (0.2 - 0.5 + 2.0 / 3) / 3,
          (0.2 - 0.5 + 1.0) / 3);
    ck_assert_int_eq(pm->n_ref_runs, 4);
    ck_assert_double_eq_tol(pm->params, 1000, TOL);
    ck_assert_double_eq_tol(pm->growth, 1, TOL);
    ck_assert_double_eq_tol(pm->wall_time_s, 150, TOL);

    const crl_report_row *csp = find_row(&r, "t1", "csp", 30);
    ck_assert_int_eq(csp->n_seeds, 2);
    ci_eq(csp->performance, (1.3 / 3 + 0.78) / 2, 1.3 / 3, 0.78);
    ci_eq(csp->forgetting, (0.2 / 3 + 0.12) / 2, 0.2 / 3, 0.12);
    ci_eq(csp->forward_transfer, 0.35, -0.25 / 3, 2.35 / 3);
    ck_assert_double_eq_tol(csp->params, 2050, TOL);
    ck_assert_double_eq_tol(csp->growth, 2.05, TOL);
    ck_assert_double_eq_tol(csp->wall_time_s, 400, TOL);

    /* One seed: the CI is the point. No 60-step references. */
    const crl_report_row *pm60 = find_row(&r, "t1", "pm", 60);
    ck_assert_int_eq(pm60->n_seeds, 1);
    ci_eq(pm60->performance, .46, .46, .46);
    ck_assert(isnan(pm60->forward_transfer.mean) && isnan(pm60->forward_transfer.lo));
    ck_assert_msg(strstr(pm60->ft_note, "no single reference runs") &&
                      strstr(pm60->ft_note, "60 steps per task"),
                  "%s", pm60->ft_note);
    ck_assert_int_eq(pm60->n_ref_runs, 0);

    const crl_report_row *t2 = find_row(&r, "t2", "ft1", 30);
    ci_eq(t2->performance, .46, .46, .46);
    ck_assert(isnan(t2->forward_transfer.mean));
    ck_assert(strstr(t2->ft_note, "no single reference runs") != NULL);
    ck_assert(isnan(t2->params) && isnan(t2->growth) && isnan(t2->wall_time_s));

    ck_assert(has_note(&r, "2 unfinished runs ignored (1 failed, 1 running)"));
    ck_assert(has_note(&r, "seed 3) skipped: scores: task 2 has no eval at step 90"));
    ck_assert(has_note(&r, "reference run") && has_note(&r, "'hammer' at position 1"));
    crl_report_free(&r);
    ck_assert_int_eq(r.n_rows, 0);
    crl_report_free(&r); /* twice is fine */

    /* The scenario filter. */
    r = build("t2");
    ck_assert_int_eq(r.n_rows, 1);
    ck_assert_str_eq(r.rows[0].scenario, "t2");
    ck_assert_int_eq(r.n_notes, 0);
    crl_report_free(&r);
}
END_TEST

/* The l2m note: modulators used, and the routing accuracy per task read at
 * the run's last evaluation, in position order. */
START_TEST(test_l2m_note) {
    setup();
    crl_store *s = open_db(1);
    const double p_pm[3] = {1000, 1000, 1000};
    /* l2m: routing accuracy stored at steps 60 and 90 (positions out of
     * order, and pos 10 after pos 2); the note reads the step-90 values in
     * position order: 1, 0.5, 0 and 0.25 (mean 0.4375). */
    int64_t l2m = add_run(s, "l2m", "t1", 1, 30, 10, M1, 0, p_pm, 100);
    const char *keys[4] = {"l2m/route_acc/10", "l2m/route_acc/2", "l2m/route_acc/0",
                           "l2m/route_acc/1"};
    const double at90[4] = {0.25, 0, 1, 0.5};
    for (int k = 0; k < 4; k++) {
        crl_store_metric(s, l2m, 60, keys[k], 0.75, NULL);
        crl_store_metric(s, l2m, 90, keys[k], at90[k], NULL);
    }
    crl_store_metric(s, l2m, 90, "l2m/used", 7, NULL);
    crl_store_close(s);
    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 1);
    ck_assert_str_eq(r.rows[0].method, "l2m");
    ck_assert(has_note(&r, "; 7 modulators used; routing accuracy per task at the last "
                           "evaluation 1.00, 0.50, 0.00, 0.25 (mean 0.44)"));
    crl_report_free(&r);
}
END_TEST

/* Forward transfer's notes, and references pooled by task name. Every run is
 * a staircase (AUC_i = val[i]); 30 steps per task, an eval every 10. */
START_TEST(test_ft_notes_and_pooling) {
    setup();
    crl_store *s = open_db(1);
    double v[27];
    const double up[3] = {.2, .4, .6}, up2[3] = {.4, .6, .8}, one[3] = {1, 1, 1};

    /* t6 = stick-pull, peg-unplug-side, stick-pull. References: position 0
     * (stick-pull) AUC .4, position 1 AUC .6, position 2 (stick-pull) AUC .6.
     * Pooled by name, B = (.5, .6, .5); per position it would be (.4, .6, .6).
     * Run AUC (.75, .8, .5): FT_i = (.25/.5, .2/.4, 0) = (.5, .5, 0), FT = 1/3
     * (per position: (.35/.6 + .5 - .1/.4)/3 = .277778). */
    stair(v, 3, 3, (const double[]){.75, .8, .5});
    int64_t id = add_run(s, "ewc", "t6", 1, 30, 10, v, 0, NULL, NAN);
    /* An evaluation before any training (step 0, "training" task 0) belongs
     * to no window: the tasks table says task 0 is (0, 30]. Counted, it would
     * make AUC_0 (1 + 3 x .75)/4 = .8125. */
    for (int j = 0; j < 3; j++) put_eval(s, id, 0, 0, j, 1, 0);
    OK(crl_store_flush(s, &e_));
    add_ref(s, "t6", 1, 30, 10, 0, NULL, up, 0);
    add_ref(s, "t6", 1, 30, 10, 1, NULL, up2, 0);
    add_ref(s, "t6", 1, 30, 10, 2, NULL, up2, 0);

    /* t3: position 1's reference is perfect (AUC 1): FT is undefined. */
    stair(v, 3, 3, (const double[]){.5, .5, .5});
    add_run(s, "l2", "t3", 1, 30, 10, v, 0, NULL, NAN);
    add_ref(s, "t3", 1, 30, 10, 0, NULL, up, 0);
    add_ref(s, "t3", 1, 30, 10, 1, NULL, one, 0);
    add_ref(s, "t3", 1, 30, 10, 2, NULL, up, 0);

    /* t4: no reference for position 2 (push-back). */
    add_run(s, "l2", "t4", 1, 30, 10, v, 0, NULL, NAN);
    add_ref(s, "t4", 1, 30, 10, 0, NULL, up, 0);
    add_ref(s, "t4", 1, 30, 10, 1, NULL, up, 0);

    /* t5: references exist, but for another budget only. */
    add_run(s, "l2", "t5", 1, 30, 10, v, 0, NULL, NAN);
    for (int i = 0; i < 3; i++) add_ref(s, "t5", 1, 60, 20, i, NULL, up, 0);
    crl_store_close(s);

    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 4);
    const crl_report_row *t6 = find_row(&r, "t6", "ewc", 30);
    ck_assert_msg(!t6->ft_note[0], "%s", t6->ft_note);
    ci_eq(t6->forward_transfer, 1.0 / 3, 1.0 / 3, 1.0 / 3);
    ck_assert_int_eq(t6->n_ref_runs, 3);

    const crl_report_row *t3 = find_row(&r, "t3", "l2", 30);
    ck_assert(isnan(t3->forward_transfer.mean));
    ck_assert_msg(strstr(t3->ft_note, "reference AUC >= 1 on push-back (1, AUC 1)"), "%s",
                  t3->ft_note);
    ck_assert(isfinite(t3->performance.mean)); /* the rest of the row stands */

    const crl_report_row *t4 = find_row(&r, "t4", "l2", 30);
    ck_assert(isnan(t4->forward_transfer.mean));
    ck_assert_msg(strstr(t4->ft_note, "no single reference run for push-back (2)"), "%s",
                  t4->ft_note);

    const crl_report_row *t5 = find_row(&r, "t5", "l2", 30);
    ck_assert(isnan(t5->forward_transfer.mean));
    ck_assert_msg(strstr(t5->ft_note, "no single reference runs (method single, scenario "
                                      "t5, 30 steps per task)"),
                  "%s", t5->ft_note);
    crl_report_free(&r);
}
END_TEST

/* Locomotion: det_return normalised by the reference's final score.
 * halfcheetah-forgetting-short: 4 tasks, 30 steps each, an eval every 10
 * (12 evaluations, final = t 7..11 = steps 80..120). The ftn run's task i
 * returns 0 before its window and 100 k_i from it on, k = (1, 2, 3, 4).
 * Reference of position i (evals every 5: 6 of them): (0, 50, 100, 100, 100,
 * 100) x k_i. Its final score is the mean of the last 5: 90 k_i (the mean of
 * all 6 would be 75 k_i); its AUC 75 k_i, normalised B = 75/90 = 5/6.
 * Normalised, the run scores 10/9 from each window on:
 *   final (10/9, 10/9, 10/9, (0+0+3*10/9)/5 = 2/3): performance
 *   (10/3 + 2/3)/4 = 1; forgetting (0 + 0 + 0 + 10/9 - 2/3)/4 = 1/9;
 *   FT_i = (10/9 - 5/6)/(1/6) = 5/3, FT = 5/3.
 * ant-forgetting-short, same run, no references: raw returns,
 *   performance (100 + 200 + 300 + 0.6*400)/4 = 210, forgetting 160/4 = 40.
 * halfcheetah-transfer-short: references score 0: raw, with a note. */
START_TEST(test_locomotion) {
    setup();
    crl_store *s = open_db(1);
    double v[48];
    stair(v, 4, 3, (const double[]){100, 200, 300, 400});
    add_run(s, "ftn", "halfcheetah-forgetting-short", 1, 30, 10, v, 1, NULL, NAN);
    add_run(s, "ftn", "ant-forgetting-short", 1, 30, 10, v, 1, NULL, NAN);
    add_run(s, "ftn", "halfcheetah-transfer-short", 1, 30, 10, v, 1, NULL, NAN);
    /* A deterministic return that was never measured (NULL): skipped. */
    double w[48];
    memcpy(w, v, sizeof w);
    w[5] = NAN; /* task 0 at step 60 */
    add_run(s, "ftn", "ant-robustness-short", 1, 30, 10, w, 1, NULL, NAN);
    for (int i = 0; i < 4; i++) {
        double k = i + 1;
        double ref[6] = {0, 50 * k, 100 * k, 100 * k, 100 * k, 100 * k};
        add_ref(s, "halfcheetah-forgetting-short", 1, 30, 5, i, NULL, ref, 1);
        add_ref(s, "halfcheetah-transfer-short", 1, 30, 5, i, NULL,
                (const double[]){0, 0, 0, 0, 0, 0}, 1);
    }
    crl_store_close(s);

    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 3);
    const crl_report_row *hc = find_row(&r, "halfcheetah-forgetting-short", "ftn", 30);
    ck_assert_str_eq(hc->score, "return/ref");
    ck_assert_str_eq(hc->score_note, "");
    ci_eq(hc->performance, 1, 1, 1);
    ci_eq(hc->forgetting, 1.0 / 9, 1.0 / 9, 1.0 / 9);
    ck_assert_msg(!hc->ft_note[0], "%s", hc->ft_note);
    ci_eq(hc->forward_transfer, 5.0 / 3, 5.0 / 3, 5.0 / 3);

    const crl_report_row *ant = find_row(&r, "ant-forgetting-short", "ftn", 30);
    ck_assert_str_eq(ant->score, "return");
    ck_assert(strstr(ant->score_note, "no single reference runs") != NULL);
    ci_eq(ant->performance, 210, 210, 210);
    ci_eq(ant->forgetting, 40, 40, 40);
    ck_assert(isnan(ant->forward_transfer.mean));

    const crl_report_row *tr = find_row(&r, "halfcheetah-transfer-short", "ftn", 30);
    ck_assert_str_eq(tr->score, "return");
    ck_assert_msg(strstr(tr->score_note,
                         "reference score <= 0 on halfcheetah-carry_stuff_"
                         "hugegravity (0)"),
                  "%s", tr->score_note);
    ci_eq(tr->performance, 210, 210, 210);
    ck_assert(isnan(tr->forward_transfer.mean) && strstr(tr->ft_note, "<= 0"));
    ck_assert(has_note(&r, "skipped: no deterministic return (det_return) for task 0 at "
                           "step 60"));
    ck_assert(
        has_note(&r, "ant-robustness-short ftn (30 steps per task): no usable run"));
    crl_report_free(&r);
}
END_TEST

START_TEST(test_nothing_to_report) {
    setup();
    crl_store *s = open_db(1);
    add_run_x(s, "pm", "t1", 1, 30, 10, M1, 0, NULL, NAN, "running", -1);
    add_ref(s, "t1", 1, 30, 10, 0, NULL, (const double[]){.2, .4, .6}, 0);
    crl_report r;
    crl_err e = {0};
    ck_assert_int_eq(crl_report_build(s, NULL, &r, &e), CRL_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "no finished continual runs") &&
                      strstr(e.msg, "only 1 single-task reference run") &&
                      strstr(e.msg, "1 unfinished run ignored"),
                  "%s", e.msg);
    ck_assert_int_eq(r.n_rows, 0);
    ck_assert_ptr_null(r.notes);
    ck_assert_int_eq(crl_report_build(s, "cw10", &r, &e), CRL_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "scenario cw10"), "%s", e.msg);
    /* Only a malformed run: the reason is in the message. */
    add_run_x(s, "pm", "t1", 2, 30, 10, M1, 0, NULL, NAN, "finished", 1);
    ck_assert_int_eq(crl_report_build(s, NULL, &r, &e), CRL_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "task 1 has no eval at step 90"), "%s", e.msg);
    crl_store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Formats                                                                   */

/* Split one CSV record (RFC 4180) starting at *p into fields; returns the
 * count and moves *p past the line end. */
static int csv_record(const char **p, char fields[][300], int max) {
    int n = 0;
    const char *s = *p;
    for (;;) {
        char *out = fields[n];
        size_t k = 0;
        if (*s == '"') {
            s++;
            for (;;) {
                ck_assert_msg(*s, "unterminated quoted field");
                if (*s == '"' && s[1] == '"') {
                    out[k++] = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    out[k++] = *s++;
                }
            }
        } else {
            while (*s && *s != ',' && *s != '\n') out[k++] = *s++;
        }
        out[k] = 0;
        n++;
        ck_assert(n < max);
        if (*s == ',') {
            s++;
            continue;
        }
        ck_assert_msg(*s == '\n', "field ends with '%c'", *s);
        *p = s + 1;
        return n;
    }
}

static int col_of(char hdr[][300], int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(hdr[i], name)) return i;
    ck_abort_msg("no column %s", name);
    return -1;
}

static double json_num(sqlite3 *db, const char *json, const char *path) {
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT json_extract(?1, ?2)", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    double v =
        sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *json_str(sqlite3 *db, const char *sql, const char *json, char *buf,
                      size_t cap) {
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, cap, "%s", t ? (const char *)t : "<NULL>");
    sqlite3_finalize(st);
    return buf;
}

/* A scenario crl does not know (its tasks come from the tasks table), with
 * characters CSV and JSON must escape. */
#define ODD_SCENARIO "we\"ird,\\name\n2"

static void add_odd_run(void) {
    crl_store *s = open_db(0);
    int64_t id = new_run(s, "ft1", ODD_SCENARIO, 1, 10, 10);
    crl_err e = {0};
    ck_assert(crl_store_task_start(s, id, 0, "push", 0, &e) == 0);
    put_eval(s, id, 10, 0, 0, .25, 0);
    ck_assert(crl_store_task_end(s, id, 0, 10, &e) == 0);
    ck_assert(crl_store_run_set_status(s, id, "finished", &e) == 0);
    crl_store_close(s);
}

START_TEST(test_formats) {
    setup();
    make_manip_store();
    add_odd_run();
    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 5);
    char *text = NULL;
    crl_err e = {0};

    /* csv: a header and one record per row, every record as wide. */
    ck_assert_int_eq(crl_report_format_text(&r, CRL_REPORT_CSV, &text, &e), 0);
    static char hdr[64][300], rec[64][300];
    const char *p = text;
    int nh = csv_record(&p, hdr, 64);
    ck_assert_int_eq(nh, 21);
    int c_perf = col_of(hdr, nh, "performance"),
        c_ft = col_of(hdr, nh, "forward_transfer"),
        c_note = col_of(hdr, nh, "forward_transfer_note"),
        c_sc = col_of(hdr, nh, "scenario"), c_lo = col_of(hdr, nh, "performance_lo"),
        c_par = col_of(hdr, nh, "params");
    int nrec = 0;
    while (*p) {
        ck_assert_int_eq(csv_record(&p, rec, 64), nh);
        const crl_report_row *w = &r.rows[nrec];
        ck_assert_str_eq(rec[c_sc], w->scenario);
        ck_assert_double_eq_tol(strtod(rec[c_perf], NULL), w->performance.mean, 1e-9);
        ck_assert_double_eq_tol(strtod(rec[c_lo], NULL), w->performance.lo, 1e-9);
        if (isnan(w->forward_transfer.mean)) {
            ck_assert_str_eq(rec[c_ft], ""); /* NaN is an empty field */
            ck_assert_str_eq(rec[c_note], w->ft_note);
        } else {
            ck_assert_double_eq_tol(strtod(rec[c_ft], NULL), w->forward_transfer.mean,
                                    1e-9);
        }
        if (isnan(w->params))
            ck_assert_str_eq(rec[c_par], "");
        else
            ck_assert_double_eq_tol(strtod(rec[c_par], NULL), w->params, 1e-6);
        nrec++;
    }
    ck_assert_int_eq(nrec, r.n_rows);
    free(text);

    /* json: valid, and the numbers and strings read back. */
    ck_assert_int_eq(crl_report_format_text(&r, CRL_REPORT_JSON, &text, &e), 0);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    char buf[512];
    ck_assert_str_eq(json_str(db, "SELECT json_valid(?1)", text, buf, sizeof buf), "1");
    ck_assert_str_eq(
        json_str(db, "SELECT json_array_length(?1, '$.rows')", text, buf, sizeof buf),
        "5");
    ck_assert_str_eq(
        json_str(db, "SELECT json_array_length(?1, '$.notes')", text, buf, sizeof buf),
        "3");
    ck_assert_double_eq_tol(json_num(db, text, "$.rows[0].performance.mean"), .53, 1e-12);
    ck_assert_double_eq_tol(json_num(db, text, "$.rows[0].forward_transfer.hi"), 0.7 / 3,
                            1e-12);
    ck_assert_double_eq_tol(json_num(db, text, "$.rows[2].growth"), 2.05, 1e-12);
    ck_assert_str_eq(json_str(db, "SELECT json_type(?1, '$.rows[1].forward_transfer')",
                              text, buf, sizeof buf),
                     "null");
    ck_assert(
        strstr(json_str(db, "SELECT json_extract(?1, '$.rows[1].forward_transfer_note')",
                        text, buf, sizeof buf),
               "no single reference runs"));
    ck_assert_str_eq(json_str(db, "SELECT json_type(?1, '$.rows[0].score_note')", text,
                              buf, sizeof buf),
                     "null");
    /* Rows sort by scenario name: "w..." after "t2". */
    ck_assert_str_eq(json_str(db, "SELECT json_extract(?1, '$.rows[4].scenario')", text,
                              buf, sizeof buf),
                     ODD_SCENARIO);
    ck_assert_str_eq(
        json_str(db, "SELECT json_extract(?1, '$.notes[0]')", text, buf, sizeof buf),
        "2 unfinished runs ignored (1 failed, 1 running)");
    sqlite3_close(db);
    free(text);

    /* table: aligned (the last column is right-aligned, so the header and
     * every row have one width), n/a with a footnote, the notes below. */
    ck_assert_int_eq(crl_report_format_text(&r, CRL_REPORT_TABLE, &text, &e), 0);
    const char *line = text;
    size_t width = strcspn(line, "\n");
    ck_assert(strstr(text, "forward transfer") != NULL);
    for (int i = 0; i < 1 + 5; i++) { /* the odd row's newline is shown as '?' */
        size_t w = strcspn(line, "\n");
        ck_assert_msg(w == width, "line %d is %zu wide, header %zu:\n%s", i, w, width,
                      text);
        line += w + 1;
    }
    ck_assert(strstr(text, "0.530 [0.460, 0.600]") != NULL);
    ck_assert(strstr(text, "0.178 [0.122, 0.233]") != NULL);
    ck_assert(strstr(text, "n/a [1]") &&
              strstr(text, "\n[1] t1 pm: no single reference"));
    ck_assert(strstr(text, "2.05k") == NULL && strstr(text, "2050") != NULL);
    ck_assert(strstr(text, "note: 2 unfinished runs ignored") != NULL);
    ck_assert(strstr(text, "we\"ird,\\name?2") != NULL);
    free(text);

    crl_report_format fmt;
    ck_assert_int_eq(crl_report_format_parse("json", &fmt, &e), 0);
    ck_assert_int_eq(fmt, CRL_REPORT_JSON);
    ck_assert_int_eq(crl_report_format_parse("xml", &fmt, &e), CRL_EINVAL);
    ck_assert(strstr(e.msg, "xml") != NULL);
    crl_report_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static char g_out[160], g_err[160];

static int run_cmd(char **argv) {
    snprintf(g_out, sizeof g_out, "%s/out", g_dir);
    snprintf(g_err, sizeof g_err, "%s/err", g_dir);
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(g_out, "w", stdout) || !freopen(g_err, "w", stderr)) _exit(126);
        int code = cmd_report(argc, argv);
        fflush(NULL);
        _exit(code);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#define CMD(...) run_cmd((char *[]){"report", __VA_ARGS__, NULL})

static char *slurp(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void one_line_error(int code, int want, const char *needle) {
    char *e = slurp(g_err);
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, e);
    ck_assert_msg(strchr(e, '\n') && !strchr(e, '\n')[1], "not one line: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
    ck_assert_str_eq(slurp(g_out), "");
}

START_TEST(test_command) {
    setup();
    char missing[160], garbage[160];
    snprintf(missing, sizeof missing, "%s/none.db", g_dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.db", g_dir);
    one_line_error(CMD("--db", missing), 1, "none.db");
    struct stat sb;
    ck_assert(stat(missing, &sb) != 0); /* not created */
    FILE *f = fopen(garbage, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    one_line_error(CMD("--db", garbage), 1, "garbage.db");
    one_line_error(CMD("--scenario", "t1"), 2, "--db");
    one_line_error(CMD("--db", g_db, "--format", "xml"), 2, "unknown format 'xml'");
    one_line_error(CMD("--db", g_db, "--bogus"), 2, "--bogus");

    /* A store with nothing finished. */
    crl_store *s = open_db(1);
    add_run_x(s, "pm", "t1", 1, 30, 10, M1, 0, NULL, NAN, "interrupted", -1);
    crl_store_close(s);
    one_line_error(CMD("--db", g_db), 1, "no finished continual runs (1 unfinished run");
    remove(g_db);

    make_manip_store();
    ck_assert_int_eq(CMD("--db", g_db), 0);
    char *o = slurp(g_out);
    ck_assert(strstr(o, "performance") && strstr(o, "0.530 [0.460, 0.600]"));
    ck_assert_str_eq(slurp(g_err), "");

    ck_assert_int_eq(CMD("--db", g_db, "--scenario", "t2", "--format", "csv"), 0);
    o = slurp(g_out);
    ck_assert_msg(!strncmp(o, "scenario,method,", 16), "%s", o);
    ck_assert(strstr(o, "\nt2,ft1,30,3,1,success,0.46,") != NULL);
    ck_assert_str_eq(slurp(g_err), ""); /* t2 alone has no notes */

    ck_assert_int_eq(CMD("--db", g_db, "--format", "csv"), 0);
    ck_assert(strstr(slurp(g_err), "crl report: note: 2 unfinished runs ignored") !=
              NULL);

    ck_assert_int_eq(CMD("--db", g_db, "--format", "json", "--scenario", "t1"), 0);
    o = slurp(g_out);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    char buf[64];
    ck_assert_str_eq(json_str(db, "SELECT json_valid(?1)", o, buf, sizeof buf), "1");
    ck_assert_str_eq(
        json_str(db, "SELECT json_array_length(?1, '$.rows')", o, buf, sizeof buf), "3");
    sqlite3_close(db);

    ck_assert_int_eq(CMD("--help"), 0);
    ck_assert(strstr(slurp(g_out), "--format") != NULL);
}
END_TEST

/* The l2m routing metrics of new runs (docs/report.md, "l2m runs"): the
 * routing accuracy over evaluation steps (l2m/route_acc_steps/<pos>) read at
 * the run's last evaluation replaces the old per-episode one in the note,
 * the separability ceiling is shown with its query count, and below 0.9 the
 * note says that the base embedding cannot tell the tasks apart. The JSON
 * gets an "l2m" array only when a run has these metrics. */
static int64_t l2m_old_run(crl_store *s, uint64_t seed) {
    const double p_pm[3] = {1000, 1000, 1000};
    int64_t id = add_run(s, "l2m", "t1", seed, 30, 10, M1, 0, p_pm, 100);
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "l2m/route_acc/%d", k);
        crl_store_metric(s, id, 90, key, k == 0 ? 1.0 : 0.0, NULL);
    }
    crl_store_metric(s, id, 90, "l2m/used", 6, NULL);
    return id;
}

static char *report_json(void) {
    crl_report r = build(NULL);
    char *text = NULL;
    crl_err e = {0};
    ck_assert_msg(crl_report_format_text(&r, CRL_REPORT_JSON, &text, &e) == CRL_OK, "%s",
                  e.msg);
    crl_report_free(&r);
    return text;
}

START_TEST(test_l2m_routing_new) {
    setup();
    crl_store *s = open_db(1);
    int64_t old = l2m_old_run(s, 1);
    crl_store_close(s);
    /* Only an old run: no "l2m" array, and its note as before. */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    char *js = report_json(), buf[256];
    ck_assert_str_eq(json_str(db, "SELECT json_type(?1, '$.l2m')", js, buf, sizeof buf),
                     "<NULL>");
    free(js);
    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_l2m, 0);
    ck_assert(has_note(&r, "; 6 modulators used; routing accuracy per task at the last "
                           "evaluation 1.00, 0.00, 0.00 (mean 0.33)"));
    crl_report_free(&r);

    /* Run 2 (seed 2): step accuracies at steps 60 (decoys) and 90: 0.9, 0.6,
     * 0.3 (mean 0.6); old-definition keys too (0, 0, 0), which the note no
     * longer shows; ceiling 0.95 at 30 (a decoy), 0.8996 over 600 queries at
     * 90: shown truncated, 0.899, and below 0.9. Run 3 (seed 3): one task
     * with an accuracy, 1.0; ceiling 0.95 over 300 queries: no sentence. */
    s = open_db(0);
    int64_t a = l2m_old_run(s, 2), b = l2m_old_run(s, 3);
    const double at90[3] = {0.9, 0.6, 0.3};
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "l2m/route_acc_steps/%d", k);
        crl_store_metric(s, a, 60, key, 0.1, NULL);
        crl_store_metric(s, a, 90, key, at90[k], NULL);
    }
    crl_store_metric(s, a, 90, "l2m/route_acc_steps_mean", 0.6, NULL);
    crl_store_metric(s, a, 30, "l2m/ceiling", 0.95, NULL);
    crl_store_metric(s, a, 30, "l2m/ceiling_n", 200, NULL);
    crl_store_metric(s, a, 90, "l2m/ceiling", 0.8996, NULL);
    crl_store_metric(s, a, 90, "l2m/ceiling_n", 600, NULL);
    crl_store_metric(s, a, 90, "l2m/used", 5, NULL);
    crl_store_metric(s, b, 90, "l2m/route_acc_steps/0", 1.0, NULL);
    crl_store_metric(s, b, 90, "l2m/ceiling", 0.95, NULL);
    crl_store_metric(s, b, 90, "l2m/ceiling_n", 300, NULL);
    crl_store_close(s);

    r = build(NULL);
    ck_assert(has_note(&r, "; 6 modulators used; routing accuracy per task at the last "
                           "evaluation 1.00, 0.00, 0.00 (mean 0.33)"));
    char want[512];
    snprintf(want, sizeof want,
             "l2m run %lld (t1, seed 2): pool of 30 lora modulators (rank 8), base ?; "
             "parameters at inference ?; 5 modulators used; routing accuracy (share of "
             "evaluation steps on modulators the task owns) per task at the last "
             "evaluation 0.90, 0.60, 0.30 (mean 0.60); separability ceiling 0.899 (600 "
             "queries): the base embedding cannot tell these tasks apart (ceiling 0.899 "
             "< 0.9)",
             (long long)a);
    int found = 0;
    for (int i = 0; i < r.n_notes; i++) found |= !strcmp(r.notes[i], want);
    ck_assert_msg(found, "no note\n%s\namong %d, e.g.\n%s", want, r.n_notes,
                  r.n_notes ? r.notes[r.n_notes - 1] : "");
    ck_assert(has_note(&r, "at the last evaluation 1.00 (mean 1.00); separability "
                           "ceiling 0.950 (300 queries)"));
    ck_assert(!has_note(&r, "(ceiling 0.950"));
    ck_assert_int_eq(r.n_l2m, 2);
    ck_assert_int_eq(r.l2m[0].run_id, a);
    ck_assert_int_eq(r.l2m[0].n_acc, 3);
    ck_assert_double_eq_tol(r.l2m[0].acc_mean, 0.6, TOL);
    ck_assert_double_eq_tol(r.l2m[0].ceiling, 0.8996, TOL);
    ck_assert_int_eq(r.l2m[1].run_id, b);
    crl_report_free(&r);
    (void)old;

    js = report_json();
    ck_assert_str_eq(
        json_str(db, "SELECT json_array_length(?1, '$.l2m')", js, buf, sizeof buf), "2");
    ck_assert_int_eq((int)json_num(db, js, "$.l2m[0].run_id"), (int)a);
    ck_assert_int_eq((int)json_num(db, js, "$.l2m[0].seed"), 2);
    ck_assert_double_eq_tol(json_num(db, js, "$.l2m[0].routing_accuracy.\"0\""), 0.9,
                            TOL);
    ck_assert_double_eq_tol(json_num(db, js, "$.l2m[0].routing_accuracy.\"2\""), 0.3,
                            TOL);
    ck_assert_double_eq_tol(json_num(db, js, "$.l2m[0].routing_accuracy_mean"), 0.6, TOL);
    ck_assert_str_eq(json_str(db, "SELECT json_extract(?1, '$.l2m[0].modulators_used')",
                              js, buf, sizeof buf),
                     "5");
    ck_assert_double_eq_tol(json_num(db, js, "$.l2m[0].ceiling"), 0.8996, TOL);
    ck_assert_int_eq((int)json_num(db, js, "$.l2m[0].ceiling_queries"), 600);
    ck_assert_double_eq_tol(json_num(db, js, "$.l2m[1].routing_accuracy.\"0\""), 1.0,
                            TOL);
    ck_assert_int_eq((int)json_num(db, js, "$.l2m[1].modulators_used"), 6);
    free(js);
    sqlite3_close(db);
}
END_TEST

/* CSP runs decided by the rule of issue 21 (v5 decision rows): the note
 * lists the anchors per task, what decided, the decision accuracy against
 * the check and the decisions' share of the wall time, and the JSON has
 * them under "csp"; a run decided the old way in the same group gets a row
 * of its own ("csp-pre21") instead of being pooled. */
static void csp_rows(crl_store *s, int64_t id, int v5) {
    crl_err e = {0};
    const float a0[1] = {1}, a1[2] = {0.5f, 0.5f}, a2[2] = {0, 1};
    const float *al[3] = {a0, a1, a2};
    const int anchors[3] = {1, 2, 2}, kept[3] = {1, 1, 0}, check[3] = {-1, 1, 1};
    const char *crit[3] = {"success", "success", "return"};
    for (int t = 0; t < 3; t++) {
        crl_csp_row r = {.run_id = id,
                         .task_idx = t,
                         .step = 30 * (t + 1),
                         .kept = kept[t],
                         .best_new = t ? 1.0 : NAN,
                         .best_old = t ? 2.0 : NAN,
                         .n_anchors = anchors[t],
                         .alpha = al[t],
                         .n_alpha = anchors[t]};
        if (v5) {
            r.criterion = crit[t];
            r.rollouts = t ? 10 : 0;
            r.new_success = r.old_success = t ? 0.5 : NAN;
            r.q_new = r.q_old = NAN;
            r.check_kept = check[t];
            r.check_new = r.check_old = NAN;
            r.wall_s = 2.5 * t; /* 0 + 2.5 + 5 = 7.5 s */
        }
        ck_assert_msg(crl_store_csp_decision(s, &r, &e) == CRL_OK, "%s", e.msg);
    }
}

START_TEST(test_csp_v5_note) {
    setup();
    crl_store *s = open_db(1);
    const double p[3] = {1000, 2000, 2000};
    double c1[27];
    stair(c1, 3, 3, (const double[]){.5, .5, .5});
    int64_t a = add_run(s, "csp", "t1", 1, 30, 10, c1, 0, p, 150);
    int64_t b = add_run(s, "csp", "t1", 2, 30, 10, c1, 0, p, 300);
    csp_rows(s, a, 1);
    csp_rows(s, b, 0);
    crl_store_close(s);
    crl_report r = build(NULL);
    ck_assert_int_eq(r.n_rows, 2);
    ck_assert_int_eq(find_row(&r, "t1", "csp", 30)->n_seeds, 1);
    ck_assert_int_eq(find_row(&r, "t1", "csp-pre21", 30)->n_seeds, 1);
    ck_assert(has_note(&r, "t1 csp: 1 run decided by the rule before issue 21 reported "
                           "as csp-pre21"));
    ck_assert(has_note(&r, "anchors per task 1,2,2; decided on success 1, on return 1; "
                           "decision accuracy 1/2 (0.50) against the check; decisions "
                           "7.5 s (5.0% of the run)"));
    /* The old run keeps the old note. */
    ck_assert(has_note(&r, "csp run 2 (t1, seed 2): 2 anchors after 3 tasks (new anchor "
                           "kept on tasks: 1), growth factor 2.00"));
    ck_assert_int_eq(r.n_csp, 1);
    ck_assert(r.csp[0].run_id == a && r.csp[0].n_tasks == 3);
    ck_assert(r.csp[0].anchors[1] == 2 && r.csp[0].kept[2] == 0);
    ck_assert_str_eq(r.csp[0].criterion[0], ""); /* task 1: nothing decided */
    ck_assert_str_eq(r.csp[0].criterion[2], "return");
    ck_assert_double_eq_tol(r.csp[0].accuracy, 0.5, 1e-12);
    ck_assert_double_eq_tol(r.csp[0].decision_s, 7.5, 1e-12);
    ck_assert_double_eq_tol(r.csp[0].decision_share, 0.05, 1e-12);
    crl_report_free(&r);
    char *json = report_json();
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ck_assert_double_eq_tol(json_num(db, json, "$.csp[0].decision_accuracy"), 0.5, 1e-12);
    ck_assert_double_eq_tol(json_num(db, json, "$.csp[0].decisions.\"1\".anchors"), 2,
                            1e-12);
    ck_assert_double_eq_tol(json_num(db, json, "$.csp[0].decisions.\"2\".check_kept"), 1,
                            1e-12);
    ck_assert_double_eq_tol(json_num(db, json, "$.csp[0].decision_share"), 0.05, 1e-12);
    sqlite3_close(db);
    free(json);
}
END_TEST

int main(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_manip_numbers);
    tcase_add_test(tc, test_csp_v5_note);
    tcase_add_test(tc, test_l2m_note);
    tcase_add_test(tc, test_ft_notes_and_pooling);
    tcase_add_test(tc, test_locomotion);
    tcase_add_test(tc, test_nothing_to_report);
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_command);
    tcase_add_test(tc, test_l2m_routing_new);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
