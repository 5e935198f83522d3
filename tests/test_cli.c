/* The crl command as a user meets it: bad input gets one clear line and a
 * non-zero exit, Ctrl-C leaves an interrupted run with a checkpoint, and a
 * finished run is listed with its effective config. Runs the real binary
 * (CRL_BIN, set by CMake). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crl/store.h"

static char dir[256];
static char out_path[300], err_path[300];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_cli_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
}

static pid_t spawn(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen(out_path, "w", stdout);
        freopen(err_path, "w", stderr);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_code(pid_t pid) {
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run crl with args (NULL-terminated); returns the exit code. */
#define RUN(...) wait_code(spawn((char *const[]){(char *)bin(), __VA_ARGS__, NULL}))

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert(f != NULL);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void expect_one_line_error(int code, int want, const char *needle) {
    char *e = slurp(err_path);
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, e);
    ck_assert_msg(count_lines(e) == 1, "stderr is not one line: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
}

START_TEST(test_bad_usage) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/x.db", dir);
    expect_one_line_error(RUN("frobnicate"), 2, "unknown command");
    expect_one_line_error(RUN("train", "--db", db, "--bogus", "1"), 2, "--bogus");
    expect_one_line_error(RUN("train", "--db", db, "--lr", "abc"), 2, "--lr");
    expect_one_line_error(RUN("train", "--db", db, "--batch", "-3"), 2, "--batch");
    expect_one_line_error(RUN("train", "--db", db, "--steps", "1.5"), 2, "--steps");
    expect_one_line_error(RUN("train", "--db", db, "--gamma", "nan"), 2, "--gamma");
    expect_one_line_error(RUN("train", "--db", db, "--lr"), 2, "--lr");
    expect_one_line_error(RUN("train", "--steps", "10"), 2, "--db");
    expect_one_line_error(RUN("train", "--db", db, "--env", "nope"), 2, "pendulum");
    /* A flag of the other kind of run is refused, not silently ignored (the
     * tiny budgets keep a run short if it wrongly starts). */
    expect_one_line_error(
        RUN("train", "--db", db, "--env", "push", "--steps", "1", "--method", "ewc"), 2,
        "--method applies only to continual runs");
    /* getopt_long takes abbreviations: so does the check. */
    expect_one_line_error(
        RUN("train", "--db", db, "--env", "push", "--steps", "1", "--meth", "ewc"), 2,
        "--method applies only to continual runs");
    expect_one_line_error(
        RUN("train", "--db", db, "--env", "push", "--steps", "1", "--eval-fixed"), 2,
        "--eval-fixed");
    expect_one_line_error(RUN("train", "--db", db, "--scenario", "cw10",
                              "--steps-per-task", "1", "--steps=100"),
                          2, "--steps does not apply to a continual run");
    expect_one_line_error(RUN("train", "--db", db, "--scenario", "cw10",
                              "--steps-per-task", "1", "--task", "push"),
                          2, "--task does not apply");
    /* --env is --task's alias, named as --task. */
    expect_one_line_error(RUN("train", "--db", db, "--scenario", "cw10",
                              "--steps-per-task", "1", "--env", "push"),
                          2, "--task does not apply");
    /* None of those created the database. */
    struct stat sb;
    ck_assert(stat(db, &sb) != 0);
    ck_assert_int_eq(RUN("train", "--help"), 0);
    ck_assert(strstr(slurp(out_path), "--update-every") != NULL);
    ck_assert_int_eq(RUN("--help"), 0);
}
END_TEST

START_TEST(test_version_names_kernel) {
    setup();
    ck_assert_int_eq(RUN("--version"), 0);
    char *o = slurp(out_path);
    ck_assert(strstr(o, "MuJoCo 2.2") != NULL);
    ck_assert(strstr(o, "kernel") != NULL);
    ck_assert(strstr(o, "threads") != NULL);
    /* A user's OPENBLAS_CORETYPE wins, and crl says so. */
    setenv("OPENBLAS_CORETYPE", "Sandybridge", 1);
    int code = RUN("--version");
    unsetenv("OPENBLAS_CORETYPE");
    ck_assert_int_eq(code, 0);
    o = slurp(out_path);
    ck_assert_msg(strstr(o, "kernel Sandybridge") != NULL, "%s", o);
    ck_assert(strstr(o, "set by the user") != NULL);
}
END_TEST

START_TEST(test_corrupt_db_untouched) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/garbage.db", dir);
    FILE *f = fopen(db, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    expect_one_line_error(RUN("runs", "--db", db), 1, "garbage.db");
    expect_one_line_error(RUN("train", "--db", db, "--steps", "10"), 1, "garbage.db");
    struct stat sb;
    ck_assert(stat(db, &sb) == 0 && sb.st_size == 4096);
    f = fopen(db, "rb");
    for (int i = 0; i < 4096; i++) ck_assert_int_eq(fgetc(f), (i * 131 + 7) & 0xff);
    fclose(f);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    expect_one_line_error(RUN("runs", "--db", missing), 1, "none.db");
}
END_TEST

static crl_run_info get_run(const char *db, int64_t id, char **cfg) {
    crl_store *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_store_open(db, 0, &s, &err) == 0, "%s", err.msg);
    crl_run_info info;
    ck_assert_msg(crl_store_run_get(s, id, &info, cfg, &err) == 0, "%s", err.msg);
    crl_store_close(s);
    return info;
}

START_TEST(test_short_run_finishes) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/ok.db", dir);
    int code =
        RUN("train", "--env", "pendulum", "--steps", "1500", "--db", db, "--hidden", "32",
            "--layers", "2", "--start-steps", "500", "--update-after", "500",
            "--eval-every", "500", "--eval-episodes", "2", "--lr", "0.0005");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    ck_assert(strstr(slurp(out_path), "run 1") != NULL);
    char *cfg = NULL;
    crl_run_info info = get_run(db, 1, &cfg);
    ck_assert_str_eq(info.status, "finished");
    ck_assert_int_eq(info.last_step, 1500);
    ck_assert(strstr(cfg, "\"lr\":0.0005") != NULL);
    ck_assert(strstr(cfg, "\"hidden\":32") != NULL);
    ck_assert(strstr(cfg, "\"blas_kernel\"") != NULL);
    free(cfg);
    ck_assert_int_eq(RUN("runs", "--db", db), 0);
    char *o = slurp(out_path);
    ck_assert(strstr(o, "finished") != NULL && strstr(o, "pendulum") != NULL);
    /* crl eval re-evaluates a single-env run's checkpoint (it once took the
     * stored empty scenario for a continual run and crashed). */
    ck_assert_int_eq(RUN("eval", "--db", db, "--run", "1", "--episodes", "2"), 0);
    o = slurp(out_path);
    ck_assert_msg(strstr(o, "task 0 pendulum: mean_return") != NULL, "%s", o);
}
END_TEST

START_TEST(test_ctrl_c_interrupts_cleanly) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/int.db", dir);
    pid_t pid =
        spawn((char *const[]){(char *)bin(), "train", "--env", "halfcheetah", "--steps",
                              "1000000", "--db", db, "--hidden", "64", "--layers", "2",
                              "--start-steps", "1000", "--update-after", "1000", NULL});
    /* Wait until training is well under way (past the first updates), as
     * the database shows it: loss metrics are written every 1000 steps once
     * updates run. Polling, not a fixed sleep, keeps this right on a loaded
     * machine. */
    int under_way = 0;
    for (int i = 0; i < 1200 && !under_way; i++) {
        usleep(100000);
        sqlite3 *h = NULL;
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(h, 2000);
            sqlite3_stmt *q = NULL;
            if (sqlite3_prepare_v2(h, "SELECT count(*) FROM metrics WHERE key = 'loss/q'",
                                   -1, &q, NULL) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW)
                under_way = sqlite3_column_int(q, 0) > 0;
            sqlite3_finalize(q);
        }
        sqlite3_close(h);
    }
    ck_assert_msg(under_way, "training did not get under way in 120 s");
    kill(pid, SIGINT);
    int code = wait_code(pid);
    char *e = slurp(err_path);
    ck_assert_msg(code == 130, "exit %d: %s", code, e);
    ck_assert(strstr(e, "interrupted") != NULL);
    crl_run_info info = get_run(db, 1, NULL);
    ck_assert_str_eq(info.status, "interrupted");
    crl_store *s = NULL;
    ck_assert_int_eq(crl_store_open(db, 0, &s, NULL), 0);
    void *blob;
    size_t n;
    int task;
    int64_t step;
    ck_assert_int_eq(crl_store_checkpoint_latest(s, 1, &task, &step, &blob, &n, NULL), 0);
    ck_assert(step > 1000 && step < 1000000);
    free(blob);
    /* Nothing corrupt: SQLite's own check of every page and index, through a
     * connection of our own (the store is still open, so the WAL is read). */
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(h);
    crl_store_close(s);
}
END_TEST

START_TEST(test_nan_fails_cleanly) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/nan.db", dir);
    /* Every transition is sampled sooner or later; with a buffer of 600
     * steps the poisoned one is drawn within the first update rounds. */
    setenv("CRL_TEST_NAN_AT_STEP", "550", 1);
    int code = RUN("train", "--env", "pendulum", "--steps", "5000", "--db", db,
                   "--hidden", "16", "--layers", "1", "--start-steps", "500",
                   "--update-after", "500", "--buffer-size", "600", "--quiet");
    unsetenv("CRL_TEST_NAN_AT_STEP");
    expect_one_line_error(code, 1, "non-finite");
    crl_run_info info = get_run(db, 1, NULL);
    ck_assert_str_eq(info.status, "failed");
    crl_store *s = NULL;
    ck_assert_int_eq(crl_store_open(db, 0, &s, NULL), 0);
    void *blob;
    size_t n;
    int task;
    int64_t step;
    ck_assert_int_eq(crl_store_checkpoint_latest(s, 1, &task, &step, &blob, &n, NULL), 0);
    ck_assert(step >= 550 && step < 5000);
    free(blob);
    crl_store_close(s);
}
END_TEST

START_TEST(test_env_xml) {
    setup();
    char db[300], xml[300], bad[300];
    snprintf(db, sizeof db, "%s/xml.db", dir);
    snprintf(xml, sizeof xml, "%s/slider.xml", dir);
    snprintf(bad, sizeof bad, "%s/broken.xml", dir);
    FILE *f = fopen(xml, "w");
    fputs("<mujoco><worldbody><body name=\"cart\"><joint name=\"x\" type=\"slide\" "
          "axis=\"1 0 0\"/><geom type=\"box\" size=\".1 .1 .1\" mass=\"1\"/>"
          "</body></worldbody><actuator><motor joint=\"x\" gear=\"5\" "
          "ctrllimited=\"true\" ctrlrange=\"-1 1\"/></actuator></mujoco>",
          f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("<mujoco><worldbody><body>", f);
    fclose(f);
    int code =
        RUN("train", "--env-xml", xml, "--xml-body", "cart", "--xml-steps", "100",
            "--steps", "400", "--start-steps", "200", "--update-after", "200", "--hidden",
            "16", "--layers", "1", "--eval-every", "200", "--db", db, "--quiet");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    crl_run_info info = get_run(db, 1, NULL);
    ck_assert_str_eq(info.status, "finished");
    ck_assert_str_eq(info.scenario, "slider.xml");
    expect_one_line_error(RUN("train", "--env-xml", bad, "--db", db), 2, "broken.xml");
    expect_one_line_error(
        RUN("train", "--env-xml", xml, "--xml-body", "nobody", "--db", db), 2, "nobody");
    expect_one_line_error(
        RUN("train", "--env-xml", xml, "--xml-reward", "reach", "--db", db), 2,
        "--xml-target");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_bad_usage);
    tcase_add_test(tc, test_version_names_kernel);
    tcase_add_test(tc, test_corrupt_db_untouched);
    tcase_add_test(tc, test_short_run_finishes);
    tcase_add_test(tc, test_ctrl_c_interrupts_cleanly);
    tcase_add_test(tc, test_nan_fails_cleanly);
    tcase_add_test(tc, test_env_xml);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
