/* Files written by an earlier crl still work (tests/data/v0/README.md):
 * the database reports, evaluates, exports, replays and resumes with the
 * numbers the old build gave, and the old .crlp files are exactly what the
 * new build exports. Runs the real binary (CRL_BIN) on a copy of the
 * fixture, so the fixture itself is never written. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/blas.h"
#include "crl/policy.h"

static char dir[256], db[300];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static const char *data(const char *name) {
    static char p[2][600];
    static int k;
    const char *src = getenv("CRL_SOURCE_DIR");
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/tests/data/v0/%s", src ? src : "..", name);
    return p[k];
}

/* Run a shell command; returns its exit code. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_compat_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(db, sizeof db, "%s/v0.db", dir);
    ck_assert_int_eq(sh("cp '%s' '%s'", data("v0.db"), db), 0);
}

static void teardown(void) {
    sh("rm -rf '%s'", dir);
}

/* A fixture whose numbers depend on the BLAS kernel (actions, a resumed
 * run's evaluations): the old build ran with Haswell's (the fixtures'
 * machine had AVX2); for another kernel, NAME.KERNEL.txt holds the numbers
 * the same code gives with that kernel (tests/data/v0/README.md). A kernel
 * without its file fails, naming where this run's output was kept so that
 * it can be checked and added. */
static const char *kdata(const char *name, const char *got) {
    crl_err e = {0};
    ck_assert_msg(crl_blas_init(1, &e) == CRL_OK, "%s", e.msg);
    const char *k = crl_blas_kernel();
    if (!strcmp(k, "Haswell")) return data(name);
    char alt[128];
    const char *dot = strrchr(name, '.');
    snprintf(alt, sizeof alt, "%.*s.%s%s", (int)(dot - name), name, k, dot);
    const char *path = data(alt);
    if (access(path, F_OK) != 0) {
        sh("cp '%s' '/tmp/crl_compat_%s'", got, alt);
        ck_abort_msg("no fixture for the %s kernel: tests/data/v0/%s (this run's output "
                     "is in /tmp/crl_compat_%s)",
                     k, alt, alt);
    }
    return path;
}

/* The command's stdout equals the fixture file byte for byte. */
static void same_output_k(const char *expect, const char *cmd, int by_kernel) {
    char out[400];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    int rc = sh("%s > '%s' 2> '%s/err.txt'", cmd, out, dir);
    ck_assert_msg(rc == 0, "'%s' exited %d", cmd, rc);
    const char *want = by_kernel ? kdata(expect, out) : data(expect);
    ck_assert_msg(sh("cmp -s '%s' '%s'", out, want) == 0, "'%s' differs from %s", cmd,
                  want);
}

static void same_output(const char *expect, const char *cmd) {
    same_output_k(expect, cmd, 0);
}

START_TEST(test_report_unchanged) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s'", bin(), db);
    same_output("report.txt", cmd);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --format json", bin(), db);
    same_output("report.json", cmd);
}
END_TEST

START_TEST(test_eval_unchanged) {
    /* Every kind of learner checkpoint: plain, packnet, CSP, multi-task,
     * L2M, and an interrupted run's. */
    for (int r = 1; r <= 6; r++) {
        char cmd[1024], name[32];
        snprintf(cmd, sizeof cmd, "'%s' eval --db '%s' --run %d --deterministic", bin(),
                 db, r);
        snprintf(name, sizeof name, "eval%d.txt", r);
        same_output(name, cmd);
    }
}
END_TEST

/* crl eval scores on stochastic episodes by default, as Continual World
 * does (its sac.py tests num_test_eps_stochastic episodes and its results
 * read test/stochastic): the default output equals --stochastic's, differs
 * from --deterministic's (run 2, window-close, a continual run), and the
 * two flags together are refused. */
START_TEST(test_eval_default_is_stochastic) {
    char out[3][400];
    const char *flags[3] = {"", "--stochastic", "--deterministic"};
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s/eval%d.out", dir, k);
        ck_assert_int_eq(sh("'%s' eval --db '%s' --run 2 --episodes 3 %s > '%s'", bin(),
                            db, flags[k], out[k]),
                         0);
    }
    ck_assert_msg(sh("cmp -s '%s' '%s'", out[0], out[1]) == 0, "default != --stochastic");
    ck_assert_msg(sh("grep -q '3 stochastic episodes' '%s'", out[0]) == 0,
                  "the default does not say stochastic");
    ck_assert_msg(sh("cmp -s '%s' '%s'", out[0], out[2]) != 0,
                  "default == --deterministic");
    ck_assert_int_eq(sh("'%s' eval --db '%s' --run 2 --stochastic --deterministic "
                        "2> '%s/err.txt'",
                        bin(), db, dir),
                     2);
}
END_TEST

START_TEST(test_export_unchanged) {
    const int runs[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "run%d.crlp", runs[i]);
        ck_assert_int_eq(sh("'%s' export --db '%s' --run %d -o '%s/%s' > /dev/null",
                            bin(), db, runs[i], dir, name),
                         0);
        ck_assert_msg(sh("cmp -s '%s/%s' '%s'", dir, name, data(name)) == 0,
                      "export of run %d differs from the old .crlp", runs[i]);
    }
}
END_TEST

/* Deterministic actions of every task of an old .crlp on fixed
 * observations, printed as the old build printed them. */
static void print_actions(FILE *f, const char *path) {
    crl_policy *p = NULL;
    char err[256];
    ck_assert_msg(crl_policy_load(path, &p, err, sizeof err) == CRL_OK, "%s: %s", path,
                  err);
    const int O = crl_policy_obs_dim(p), A = crl_policy_act_dim(p);
    float obs[64], act[16];
    ck_assert(O <= 64 && A <= 16);
    for (int t = 0; t < crl_policy_num_tasks(p); t++) {
        for (int i = 0; i < O; i++)
            obs[i] = 0.05f * (float)((i * 7 + t * 3) % 11) - 0.25f;
        ck_assert_int_eq(crl_policy_act(p, t, obs, act, CRL_POLICY_DETERMINISTIC, NULL),
                         CRL_OK);
        fprintf(f, "%s task %d:", strrchr(path, '/') + 1, t);
        for (int j = 0; j < A; j++) fprintf(f, " %.9g", act[j]);
        fprintf(f, "\n");
    }
    crl_policy_free(p);
}

START_TEST(test_old_policies_act_unchanged) {
    char out[400];
    snprintf(out, sizeof out, "%s/actions.txt", dir);
    FILE *f = fopen(out, "w");
    ck_assert(f != NULL);
    const int runs[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "run%d.crlp", runs[i]);
        print_actions(f, data(name));
    }
    fclose(f);
    const char *want = kdata("actions.txt", out);
    ck_assert_msg(sh("cmp -s '%s' '%s'", out, want) == 0,
                  "old policies act differently (diff %s %s)", out, want);
}
END_TEST

START_TEST(test_replay_verifies) {
    for (int r = 1; r <= 6; r++)
        ck_assert_msg(sh("'%s' replay --db '%s' --run %d --all --verify > /dev/null",
                         bin(), db, r) == 0,
                      "run %d's episodes do not re-simulate", r);
}
END_TEST

START_TEST(test_resume_unchanged) {
    char cmd[1024];
    ck_assert_int_eq(sh("'%s' train --db '%s' --resume 6 --quiet > /dev/null", bin(), db),
                     0);
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"select step, train_task_idx, eval_task_idx, episodes, "
             "printf('%%.9g',success_rate), printf('%%.9g', mean_return), "
             "printf('%%.9g', det_return) from evals where run_id=6 order by step, "
             "eval_task_idx\"",
             db);
    same_output_k("resume6.txt", cmd, 1);
}
END_TEST

/* Run tracking (schema v7, docs/tracking.md) on the old file: it migrates,
 * its runs list with no name and no tags, two of them diff, one is removed
 * with everything it owns and the others keep theirs. */
START_TEST(test_tracking_on_old_runs) {
    char out[400];
    snprintf(out, sizeof out, "%s/runs.csv", dir);
    ck_assert_int_eq(sh("'%s' runs --db '%s' --format csv > '%s'", bin(), db, out), 0);
    ck_assert_int_eq(sh("test \"$(sqlite3 '%s' 'PRAGMA user_version')\" = 7", db), 0);
    /* six runs, each with empty name and tags (fields 2 and 3) */
    ck_assert_int_eq(sh("test \"$(tail -n +2 '%s' | cut -d, -f1-3 | tr '\\n' ' ')\" = "
                        "'1,, 2,, 3,, 4,, 5,, 6,, '",
                        out),
                     0);
    ck_assert_int_eq(sh("'%s' diff --db '%s' 2 6 | grep -qx 'method: \"packnet\" -> "
                        "\"ewc\"'",
                        bin(), db),
                     0);
    const char *count6 =
        "(select count(*) from metrics where run_id=6)||' '||(select count(*) from evals "
        "where run_id=6)||' '||(select count(*) from checkpoints where run_id=6)||' '||"
        "(select count(*) from episodes where run_id=6)";
    char before[128] = "", cmd[1024];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"select %s\"", db, count6);
    FILE *p = popen(cmd, "r");
    ck_assert(p && fgets(before, sizeof before, p));
    pclose(p);
    ck_assert_int_eq(sh("'%s' rm --db '%s' --run 3 > /dev/null", bin(), db), 0);
    ck_assert_int_eq(
        sh("test \"$(sqlite3 '%s' \"select (select count(*) from runs where "
           "id=3)+(select count(*) from metrics where run_id=3)+(select "
           "count(*) from evals where run_id=3)+(select count(*) from "
           "checkpoints where run_id=3)+(select count(*) from episodes where "
           "run_id=3)+(select count(*) from csp_decisions where run_id=3)+"
           "(select count(*) from tasks where run_id=3)\")\" = 0",
           db),
        0);
    char after[128] = "";
    p = popen(cmd, "r");
    ck_assert(p && fgets(after, sizeof after, p));
    pclose(p);
    ck_assert_str_eq(before, after);
}
END_TEST

int main(void) {
    Suite *s = suite_create("compat");
    TCase *tc = tcase_create("v0");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_report_unchanged);
    tcase_add_test(tc, test_eval_unchanged);
    tcase_add_test(tc, test_eval_default_is_stochastic);
    tcase_add_test(tc, test_export_unchanged);
    tcase_add_test(tc, test_old_policies_act_unchanged);
    tcase_add_test(tc, test_replay_verifies);
    tcase_add_test(tc, test_resume_unchanged);
    tcase_add_test(tc, test_tracking_on_old_runs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
