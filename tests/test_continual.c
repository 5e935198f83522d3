/* The continual runner through the real binary: every method completes a
 * scenario with one evaluation row per (step, task); a run killed with
 * SIGKILL in task 2 resumes to complete rows without duplicates; single
 * writes one reference run per scenario position; a single-env run killed
 * after an evaluation resumes from it. */
#include "crl/sac.h"

#include <check.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], db[300];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_continual_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(db, sizeof db, "%s/c.db", dir);
}

#define SMALL                                                                            \
    "--steps-per-task", "900", "--eval-every", "300", "--eval-episodes", "2",            \
        "--hidden", "32", "--layers", "2", "--start-steps", "200", "--update-after",     \
        "200", "--threads", "1", "--quiet", "--db", db

static pid_t spawn(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
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

#define RUN(...) wait_code(spawn((char *const[]){(char *)bin(), __VA_ARGS__, NULL}))

static long q(const char *sql) {
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(h));
    long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* q() for polling a database another process is still creating: -1 while
 * the file or its schema does not exist yet (the assertions after a poll
 * use q()). */
static long q_poll(const char *sql) {
    sqlite3 *h;
    if (access(db, F_OK) != 0) return -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return -1;
    }
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    long v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

START_TEST(test_every_method_completes) {
    setup();
    const char *methods[] = {"ft1", "ftn", "l2", "ewc", "packnet", "pm"};
    for (int i = 0; i < 6; i++) {
        int code =
            RUN("train", "--scenario", "t1", "--method", (char *)methods[i], SMALL);
        ck_assert_msg(code == 0, "%s exit %d", methods[i], code);
    }
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished'"), 6);
    /* 3 tasks x 900 steps, evaluated every 300: 9 evaluations of 3 tasks. */
    ck_assert_int_eq(q("SELECT count(*) FROM evals"), 6 * 27);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE end_step - start_step = 900"),
                     18);
    /* ftn keeps one actor per task: its model is 3x ft1's. */
    ck_assert_int_eq(
        q("SELECT (SELECT value FROM metrics m JOIN runs r ON r.id = m.run_id "
          "WHERE r.method = 'ftn' AND key = 'model/params' AND step = 2700) / "
          "(SELECT value FROM metrics m JOIN runs r ON r.id = m.run_id "
          "WHERE r.method = 'ft1' AND key = 'model/params' AND step = 2700)"),
        3);
    /* Checkpoints at every evaluation, but only the last two of a run are
     * kept (the previous one is the fallback of a corrupt latest one). */
    ck_assert_int_eq(q("SELECT count(*) FROM checkpoints"), 12);
    ck_assert_int_eq(q("SELECT min(step) FROM checkpoints"), 2400);
    ck_assert_int_eq(q("SELECT count(*) FROM checkpoints WHERE step = 2700"), 6);
    /* The report reads the same file: one row per method, every format. */
    ck_assert_int_eq(RUN("report", "--db", db), 0);
    ck_assert_int_eq(RUN("report", "--db", db, "--format", "json"), 0);
    ck_assert_int_eq(RUN("report", "--db", db, "--format", "yaml"), 2);
    /* crl eval re-evaluates a stored checkpoint (packnet: run 5). */
    ck_assert_int_eq(RUN("eval", "--db", db, "--run", "5", "--episodes", "2"), 0);
    ck_assert_int_eq(RUN("eval", "--db", db, "--run", "5", "--task", "7"), 2);
    ck_assert_int_eq(RUN("eval", "--db", db, "--run", "42"), 2);
    /* Unknown method and scenario: one line, exit 2. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "nope", SMALL), 2);
    ck_assert_int_eq(RUN("train", "--scenario", "t99", "--method", "ft1", SMALL), 2);
}
END_TEST

START_TEST(test_resume_after_sigkill) {
    setup();
    pid_t pid = spawn((char *const[]){(char *)bin(), "train", "--scenario", "t1",
                                      "--method", "ewc", SMALL, NULL});
    /* Wait until task 2 (idx 1) has started, then kill without warning. */
    int started = 0;
    for (int i = 0; i < 600 && !started; i++) {
        usleep(100000);
        started = q_poll("SELECT count(*) FROM tasks WHERE idx = 1") == 1;
    }
    ck_assert(started);
    usleep(300000);
    kill(pid, SIGKILL);
    wait_code(pid);
    ck_assert(q("SELECT count(*) FROM tasks WHERE end_step IS NOT NULL") < 3);
    ck_assert_int_eq(RUN("train", "--resume", "1", "--db", db, "--quiet"), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE end_step - start_step = 900"),
                     3);
    ck_assert_int_eq(q("SELECT count(*) FROM evals"), 27);
    ck_assert_int_eq(q("SELECT count(DISTINCT step || '/' || eval_task_idx) FROM evals"),
                     27);
    ck_assert_int_eq(q("SELECT max(step) FROM evals"), 2700);
    /* A finished run cannot be resumed. */
    ck_assert_int_eq(RUN("train", "--resume", "1", "--db", db, "--quiet"), 2);
}
END_TEST

START_TEST(test_single_references) {
    setup();
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "single", SMALL), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE method = 'single'"), 3);
    /* Run i trained position i only, evaluated only on it. */
    ck_assert_int_eq(
        q("SELECT count(*) FROM tasks t JOIN runs r ON r.id = t.run_id "
          "WHERE t.idx = r.id - 1 AND t.start_step = 0 AND t.end_step = 900"),
        3);
    ck_assert_int_eq(
        q("SELECT count(*) FROM evals e WHERE e.eval_task_idx <> e.run_id - 1"), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM evals"), 3 * 3);
    /* Each run's stored configuration names its own position, */
    ck_assert_int_eq(q("SELECT count(*) FROM runs "
                       "WHERE json_extract(config_json, '$.single-task') = id - 1"),
                     3);
    /* so an interrupted reference of one position resumes where it was. */
    /* SMALL's flags but 6000 steps (a flag may not be given twice). */
    pid_t pid = spawn((char *const[]){(char *)bin(),
                                      "train",
                                      "--scenario",
                                      "t1",
                                      "--method",
                                      "single",
                                      "--single-task",
                                      "2",
                                      "--steps-per-task",
                                      "6000",
                                      "--eval-every",
                                      "300",
                                      "--eval-episodes",
                                      "2",
                                      "--hidden",
                                      "32",
                                      "--layers",
                                      "2",
                                      "--start-steps",
                                      "200",
                                      "--update-after",
                                      "200",
                                      "--threads",
                                      "1",
                                      "--quiet",
                                      "--db",
                                      db,
                                      NULL});
    int started = 0;
    for (int i = 0; i < 600 && !started; i++) {
        usleep(100000);
        started = q_poll("SELECT count(*) FROM evals WHERE run_id = 4") >= 1;
    }
    ck_assert(started);
    kill(pid, SIGKILL);
    wait_code(pid);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE run_id = 4 AND end_step = 6000"),
                     0);
    ck_assert_int_eq(RUN("train", "--resume", "4", "--db", db, "--quiet"), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE run_id = 4 AND idx = 2 "
                       "AND start_step = 0 AND end_step = 6000"),
                     1);
    ck_assert_int_eq(q("SELECT count(*) FROM evals WHERE run_id = 4 AND "
                       "eval_task_idx = 2"),
                     20);
    ck_assert_int_eq(q("SELECT count(*) FROM evals WHERE run_id = 4"), 20);
}
END_TEST

/* A single-env run (crl train --env) checkpoints at every evaluation: killed
 * after its first one, it resumes from there to a complete, finished run
 * with one evaluation row per step and only the latest checkpoint kept. */
START_TEST(test_env_run_resumes_after_sigkill) {
    setup();
    pid_t pid = spawn((char *const[]){(char *)bin(),
                                      "train",
                                      "--env",
                                      "pendulum",
                                      "--steps",
                                      "30000",
                                      "--eval-every",
                                      "1000",
                                      "--eval-episodes",
                                      "1",
                                      "--hidden",
                                      "32",
                                      "--layers",
                                      "2",
                                      "--start-steps",
                                      "200",
                                      "--update-after",
                                      "200",
                                      "--threads",
                                      "1",
                                      "--quiet",
                                      "--db",
                                      db,
                                      NULL});
    int started = 0;
    for (int i = 0; i < 600 && !started; i++) {
        usleep(50000);
        /* The first evaluation's checkpoint, not just its rows: a kill
         * between the two would leave nothing to resume from. */
        started = q_poll("SELECT count(*) FROM checkpoints") >= 1;
    }
    ck_assert(started);
    kill(pid, SIGKILL);
    wait_code(pid);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'running'"), 1);
    long done = q("SELECT max(step) FROM evals");
    ck_assert(done >= 1000 && done < 30000);
    /* The checkpoint of an evaluation (the kill may fall between an
     * evaluation's rows and its checkpoint). */
    long nck = q("SELECT count(*) FROM checkpoints");
    ck_assert(nck == 1 || nck == 2); /* the last two are kept */
    long ck = q("SELECT max(step) FROM checkpoints");
    ck_assert(ck % 1000 == 0 && ck >= done - 1000 && ck <= done);
    ck_assert_int_eq(RUN("train", "--resume", "1", "--db", db, "--quiet"), 0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
    ck_assert_int_eq(q("SELECT count(*) FROM evals"), 30);
    ck_assert_int_eq(q("SELECT count(DISTINCT step) FROM evals"), 30);
    ck_assert_int_eq(
        q("SELECT count(*) FROM tasks WHERE start_step = 0 AND end_step = 30000"), 1);
    ck_assert_int_eq(q("SELECT count(*) FROM checkpoints WHERE step = 30000"), 1);
    ck_assert_int_eq(q("SELECT count(*) FROM checkpoints"), 2);
    /* A finished run cannot be resumed; an unknown one is a clear error. */
    ck_assert_int_eq(RUN("train", "--resume", "1", "--db", db, "--quiet"), 2);
    ck_assert_int_eq(RUN("train", "--resume", "7", "--db", db, "--quiet"), 2);
}
END_TEST

/* The checkpoint's trailing ftn actors (see the layout comment in
 * agents/continual.c: the blob ends with one actor per finished task). */
static float *ckpt_tail(size_t nbytes) {
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert(
        sqlite3_prepare_v2(h, "SELECT blob FROM checkpoints ORDER BY step DESC LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK);
    ck_assert(sqlite3_step(st) == SQLITE_ROW);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    ck_assert(n > nbytes);
    float *out = malloc(nbytes);
    memcpy(out, (const char *)sqlite3_column_blob(st, 0) + n - nbytes, nbytes);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

/* ftn learns every task with a fresh network. With updates pushed past the
 * end of each task, the actor kept for task k must be exactly the
 * initialisation of a new learner seeded for task k (run seed + 7919 k), and
 * no two of them may be equal; a learner carried over from task k-1 would
 * keep task 0's initialisation. */
START_TEST(test_ftn_trains_fresh_networks) {
    setup();
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "ftn", "--seed", "5",
                         "--steps-per-task", "300", "--eval-every", "300",
                         "--eval-episodes", "1", "--hidden", "32", "--layers", "2",
                         "--start-steps", "100", "--update-after", "1000", "--threads",
                         "1", "--quiet", "--db", db),
                     0);
    crl_sac_config c;
    crl_sac_config_default(&c, 39, 4, 3);
    c.hidden = 32;
    c.layers = 2;
    c.buffer_size = 1000;
    crl_sac *fresh[3];
    crl_err err = {0};
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(crl_sac_create(&c, 5 + 7919u * (uint64_t)k, &fresh[k], &err), 0);
    size_t na = crl_sac_actor(fresh[0])->n_params;
    float *kept = ckpt_tail(3 * na * sizeof(float));
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(memcmp(kept + k * na, crl_sac_actor_params(fresh[k]),
                             na * sizeof(float)) == 0,
                      "task %d actor is not a fresh initialisation", k);
        for (int j = 0; j < k; j++)
            ck_assert(memcmp(kept + k * na, kept + j * na, na * sizeof(float)) != 0);
    }
    free(kept);
    for (int k = 0; k < 3; k++) crl_sac_free(fresh[k]);
}
END_TEST

/* CSP through the runner: a decision row per task, the anchors it reports
 * match the model size, every task is evaluated at every point, and the
 * rollouts are counted inside each task's steps. */
START_TEST(test_csp_run) {
    setup();
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "csp", "--csp-rollouts",
                         "2", "--csp-val-steps", "50", "--csp-scored", "64",
                         "--csp-q-batches", "4", "--csp-check", "1", SMALL),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
    ck_assert_int_eq(q("SELECT count(*) FROM evals"), 27);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE end_step - start_step = 900"),
                     3);
    ck_assert_int_eq(q("SELECT count(*) FROM csp_decisions"), 3);
    /* Task 0 keeps its single anchor with alpha [1]. */
    ck_assert_int_eq(
        q("SELECT kept * 10 + n_anchors FROM csp_decisions WHERE task_idx = 0"), 11);
    ck_assert_int_eq(q("SELECT alpha = '[1]' FROM csp_decisions WHERE task_idx = 0"), 1);
    /* Later tasks: 2 rollouts of each finalist, 50 steps each (the check's
     * rollouts are outside the budget); anchors grow by one exactly when
     * kept. t1 is manipulation: success decides (returns on a tie). */
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE key = 'csp/validation_steps' "
                       "AND value = 200"),
                     2);
    ck_assert_int_eq(q("SELECT count(*) FROM csp_decisions WHERE task_idx > 0 AND "
                       "criterion IN ('success', 'return') AND rollouts = 2 AND "
                       "check_kept IS NOT NULL AND wall_s >= 0 AND q_new IS NOT NULL "
                       "AND new_success BETWEEN 0 AND 1"),
                     2);
    ck_assert_int_eq(q("SELECT count(*) FROM metrics WHERE key = 'csp/decision_s'"), 3);
    ck_assert_int_eq(q("SELECT method = 'csp' FROM runs"), 1); /* the paper's rule */
    ck_assert_int_eq(q("SELECT count(*) FROM csp_decisions a JOIN csp_decisions b "
                       "ON b.task_idx = a.task_idx + 1 "
                       "WHERE b.n_anchors <> a.n_anchors + b.kept"),
                     0);
    ck_assert_int_eq(q("SELECT count(*) FROM csp_decisions "
                       "WHERE json_array_length(alpha) <> n_anchors"),
                     0);
    /* Model size = shared LayerNorm + anchors x anchor size: the same
     * increment for every added anchor, none when pruned. */
    long p0 = q("SELECT value FROM metrics WHERE key = 'model/params' AND step = 900");
    long p2 = q("SELECT value FROM metrics WHERE key = 'model/params' AND step = 2700");
    long a2 = q("SELECT n_anchors FROM csp_decisions WHERE task_idx = 2");
    ck_assert(p0 > 0);
    ck_assert_int_eq(p2 == p0, a2 == 1);
    /* crl report names the anchors and the growth factor of the run. */
    ck_assert_int_eq(RUN("report", "--db", db, "--format", "csv"), 0);
    ck_assert_int_eq(RUN("report", "--db", db), 0);
    /* crl eval restores the subspace and the alpha table. */
    ck_assert_int_eq(RUN("eval", "--db", db, "--run", "1", "--episodes", "2"), 0);
    /* The default rollouts (10 per finalist of 200 steps on t1) do not fit
     * 900 steps per task: refused before anything trains. */
    ck_assert_int_eq(RUN("train", "--scenario", "t1", "--method", "csp", SMALL), 2);
    ck_assert_int_eq(q("SELECT count(*) FROM tasks WHERE run_id = 2"), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("continual");
    TCase *tc = tcase_create("continual");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_every_method_completes);
    tcase_add_test(tc, test_resume_after_sigkill);
    tcase_add_test(tc, test_single_references);
    tcase_add_test(tc, test_env_run_resumes_after_sigkill);
    tcase_add_test(tc, test_ftn_trains_fresh_networks);
    tcase_add_test(tc, test_csp_run);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
