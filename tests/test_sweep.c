/* crl sweep through the real binary, with tiny budgets: under
 * `mpirun -np 3` (2 methods x 2 seeds + references), then merged, reported
 * and compared with the shards; the same sweep run locally with --jobs 2
 * gives the same evaluation rows job for job; a job killed in the middle
 * of a local sweep, and a worker rank killed in the middle of an MPI sweep,
 * are reported, and rerunning the command completes them; a job killed
 * under MPI fails the sweep (mpirun exits non-zero). The MPI parts are
 * skipped (with a note) when mpirun is missing or crl was built without MPI. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_sweep_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void) {
    if (g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

#define TINY                                                                             \
    "--steps-per-task", "300", "--hidden", "16", "--layers", "1", "--eval-every", "300", \
        "--eval-episodes", "1", "--start-steps", "100", "--update-after", "100",         \
        "--threads", "1", "--log-train-episodes", "none"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Start argv with stdout/stderr into files of the test directory. */
static pid_t spawn(char *const argv[], const char *tag) {
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/%s.out", g_dir, tag);
    snprintf(err, sizeof err, "%s/%s.err", g_dir, tag);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        if (!strcmp(argv[0], "mpirun")) {
            /* Under ASan: OpenMPI's own allocations are never freed (a bare
             * MPI_Init + MPI_Finalize leaks 120 kB), so ranks do not check
             * leaks; the local sweeps of this file still do, for the same
             * crl sweep, crl train and crl merge code. */
            const char *a = getenv("ASAN_OPTIONS");
            char opts[512];
            snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", a ? a : "",
                     a && *a ? ":" : "");
            setenv("ASAN_OPTIONS", opts, 1);
        }
        if (argv[1] && !strcmp(argv[1], "plot")) {
            /* fontconfig's caches, as for test_viz (tests/lsan.supp). */
            const char *src = getenv("CRL_SOURCE_DIR");
            char opts[512];
            snprintf(opts, sizeof opts,
                     "suppressions=%s/tests/lsan.supp:print_suppressions=0",
                     src ? src : "..");
            setenv("LSAN_OPTIONS", opts, 1);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Exit code (128 + signal), or -1 after timeout_s (the process is killed). */
static int wait_for(pid_t pid, double timeout_s) {
    double t0 = now_s();
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_s() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        nap(0.05);
    }
}

#define RUN(tag, timeout, ...)                                                           \
    wait_for(spawn((char *const[]){__VA_ARGS__, NULL}, tag), timeout)

/* A file of the test directory as text (malloc'd, "" if missing). */
static char *slurp(const char *rel) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)n + 1, 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = 0;
    fclose(f);
    return b;
}

static void assert_has(const char *rel, const char *needle) {
    char *t = slurp(rel);
    ck_assert_msg(strstr(t, needle) != NULL, "%s lacks '%s':\n%s", rel, needle, t);
    free(t);
}

static long long q1(const char *path, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* All rows of a query, sorted, one per line (malloc'd). */
static char *rows(const char *path, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char full[1024];
    snprintf(full, sizeof full,
             "SELECT coalesce(group_concat(x, char(10)), '') FROM (%s ORDER BY 1)", sql);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, full, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(h));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    char *out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

/* Evaluation rows of one run with what identifies the job, not the run id. */
#define JOB_EVALS                                                                        \
    "SELECT r.method || ' ' || r.seed || ' ' || coalesce(json_extract(r.config_json,"    \
    " '$.single-task'), '') || ' ' || e.step || ' ' || e.train_task_idx || ' ' ||"       \
    " e.eval_task_idx || ' ' || e.episodes || ' ' || quote(e.success_rate) || ' ' ||"    \
    " quote(e.mean_return) || ' ' || quote(e.det_return) AS x FROM evals e JOIN runs r"  \
    " ON r.id = e.run_id"

static int cmp_line(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

/* Shard file names of a sweep directory, sorted. */
static int shards(const char *sweep, char names[][64], int cap) {
    char d[256];
    snprintf(d, sizeof d, "%s/%s/shards", g_dir, sweep);
    DIR *dir = opendir(d);
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) && n < cap) {
        size_t len = strlen(de->d_name);
        if (len > 3 && !strcmp(de->d_name + len - 3, ".db"))
            snprintf(names[n++], 64, "%.63s", de->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, 64, cmp_name);
    return n;
}

/* A process that exists and is not a zombie. */
static int alive(pid_t pid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

static int have_mpi(void) {
    if (system("command -v mpirun >/dev/null 2>&1") != 0) return 0;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --version | grep -q '^MPI: none'", bin());
    return system(cmd) != 0;
}

/* mpirun -np N [root flags] crl sweep ...: argv prefix. */
static int mpi_prefix(char **a, int recovery) {
    int n = 0;
    a[n++] = "mpirun";
    a[n++] = "-np";
    a[n++] = "3";
    a[n++] = "--oversubscribe";
    if (geteuid() == 0) a[n++] = "--allow-run-as-root";
    if (recovery) a[n++] = "--enable-recovery";
    a[n++] = (char *)bin();
    return n;
}

START_TEST(test_mpi_sweep_merge_and_local) {
    char d1[128], d2[128], study[160];
    snprintf(d1, sizeof d1, "%s/mpi", g_dir);
    snprintf(d2, sizeof d2, "%s/local", g_dir);
    snprintf(study, sizeof study, "%s/study.db", d1);
    int mpi = have_mpi();
    if (!mpi) {
        fprintf(stderr, "test_sweep: no mpirun or crl without MPI: the MPI sweep is run "
                        "locally instead\n");
    }
    char *argv[64];
    int n = mpi ? mpi_prefix(argv, 0) : 0;
    if (!mpi) argv[n++] = (char *)bin();
    char *sweep[] = {"sweep",   "--scenario", "t1",    "--methods", "ft1,packnet",
                     "--seeds", "1-2",        "--out", d1,          "--single-seeds",
                     "1",       TINY};
    for (size_t i = 0; i < sizeof sweep / sizeof sweep[0]; i++) argv[n++] = sweep[i];
    argv[n] = NULL;
    int code = wait_for(spawn(argv, "mpi"), 120);
    ck_assert_msg(code == 0, "mpi sweep exit %d", code);
    assert_has("mpi.err", "crl sweep: all 7 jobs finished");
    if (mpi) assert_has("mpi.err", "2 MPI workers");
    assert_has("mpi/sweep.status", "ok finished 7 failed 0 lost 0");

    /* Merge every shard, then report. */
    char names[16][64], paths[16][256];
    int ns = shards("mpi", names, 16);
    ck_assert_int_eq(ns, 7);
    char *margv[24];
    int m = 0;
    margv[m++] = (char *)bin();
    margv[m++] = "merge";
    for (int i = 0; i < ns; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/shards/%s", d1, names[i]);
        margv[m++] = paths[i];
    }
    margv[m++] = "-o";
    margv[m++] = study;
    margv[m] = NULL;
    ck_assert_int_eq(wait_for(spawn(margv, "merge"), 60), 0);
    assert_has("merge.err", "7 shards into");
    assert_has("merge.err", "7 runs added");
    ck_assert_int_eq(
        RUN("report", 60, (char *)bin(), "report", "--db", study, "--format", "csv"), 0);
    /* Both methods with 2 seeds, 3 tasks, and the 3 references. */
    assert_has("report.out", "\nt1,ft1,300,3,2,");
    assert_has("report.out", "\nt1,packnet,300,3,2,");
    assert_has("report.out", ",3,1080,");
    snprintf(paths[15], sizeof paths[15], "%s/compare.png", d1);
    ck_assert_int_eq(RUN("plot", 60, (char *)bin(), "plot", "--db", study, "--kind",
                         "compare", "--scenario", "t1", "-o", paths[15]),
                     0);
    snprintf(paths[14], sizeof paths[14], "%s/matrix.png", d1);
    ck_assert_int_eq(RUN("plot2", 60, (char *)bin(), "plot", "--db", study, "--run", "4",
                         "--kind", "matrix", "-o", paths[14]),
                     0);
    struct stat sb;
    ck_assert_int_eq(stat(paths[15], &sb), 0);
    ck_assert_int_gt(sb.st_size, 1000);

    /* The merged file is the union of the shards: every table's rows, and
     * the evaluation rows by job. */
    const char *tables[] = {"runs",  "tasks",       "metrics",
                            "evals", "checkpoints", "episodes"};
    for (int t = 0; t < 6; t++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[t]);
        long long sum = 0;
        for (int i = 0; i < ns; i++) sum += q1(paths[i], sql);
        ck_assert_msg(q1(study, sql) == sum, "%s: merged %lld rows, shards %lld",
                      tables[t], q1(study, sql), sum);
        ck_assert_int_gt(sum, 0);
    }
    ck_assert_int_eq(q1(study, "SELECT count(*) FROM runs WHERE status = 'finished'"), 7);
    char *merged = rows(study, JOB_EVALS);
    char **lines = calloc(4096, sizeof *lines);
    int nl = 0;
    size_t total = 1;
    for (int i = 0; i < ns; i++) {
        char *r = rows(paths[i], JOB_EVALS);
        for (char *save = NULL, *l = strtok_r(r, "\n", &save); l && nl < 4096;
             l = strtok_r(NULL, "\n", &save)) {
            lines[nl++] = strdup(l);
            total += strlen(l) + 1;
        }
        free(r);
    }
    qsort(lines, (size_t)nl, sizeof *lines, cmp_line);
    char *uni = calloc(total, 1);
    for (int i = 0; i < nl; i++) {
        if (i) strcat(uni, "\n");
        strcat(uni, lines[i]);
        free(lines[i]);
    }
    free(lines);
    ck_assert_str_eq(merged, uni);
    free(uni);
    ck_assert_int_eq(q1(study, "SELECT count(*) FROM evals"),
                     2 * 2 * 9 + 3); /* continual: 3 evaluations x 3 tasks; single: 1 */
    free(merged);

    /* The same sweep locally, 2 jobs at a time: the same rows, job by job. */
    ck_assert_int_eq(RUN("local", 120, (char *)bin(), "sweep", "--scenario", "t1",
                         "--methods", "ft1,packnet", "--seeds", "1-2", "--out", d2,
                         "--single-seeds", "1", "--jobs", "2", TINY),
                     0);
    char names2[16][64];
    ck_assert_int_eq(shards("local", names2, 16), ns);
    for (int i = 0; i < ns; i++) {
        ck_assert_str_eq(names[i], names2[i]);
        char p2[256];
        snprintf(p2, sizeof p2, "%s/shards/%s", d2, names[i]);
        char *a = rows(paths[i], JOB_EVALS), *b = rows(p2, JOB_EVALS);
        ck_assert_msg(*a && !strcmp(a, b), "%s differs:\n%s\n--\n%s", names[i], a, b);
        free(a);
        free(b);
    }
    /* Rerun: nothing to do. Other train flags in the same directory: refused. */
    ck_assert_int_eq(RUN("again", 60, (char *)bin(), "sweep", "--scenario", "t1",
                         "--methods", "ft1,packnet", "--seeds", "1-2", "--out", d2,
                         "--single-seeds", "1", "--jobs", "2", TINY),
                     0);
    assert_has("again.err", "7 finished already, 0 to resume, 0 new");
    ck_assert_int_eq(RUN("other", 60, (char *)bin(), "sweep", "--scenario", "t1",
                         "--methods", "ft1", "--seeds", "1", "--out", d2,
                         "--steps-per-task", "400"),
                     2);
    assert_has("other.err", "was started with other settings");
}
END_TEST

/* Wait until the shard of job `name` in sweep dir has a checkpoint, return
 * the pid named by `what` ("job pid" or "worker pid") in its log. */
static pid_t pid_after_checkpoint(const char *sweep, const char *name, const char *what) {
    char shard[256], log[256];
    snprintf(shard, sizeof shard, "%s/%s/shards/%s.db", g_dir, sweep, name);
    snprintf(log, sizeof log, "%s/logs/%s.log", sweep, name);
    double t0 = now_s();
    for (;;) {
        ck_assert_msg(now_s() - t0 < 60, "%s never wrote a checkpoint", name);
        struct stat sb;
        if (stat(shard, &sb) == 0 && q1(shard, "SELECT count(*) FROM checkpoints") > 0)
            break;
        nap(0.02);
    }
    char *t = slurp(log);
    char *p = strstr(t, what);
    ck_assert_msg(p != NULL, "%s has no '%s':\n%s", log, what, t);
    pid_t pid = (pid_t)atol(p + strlen(what) + 1);
    free(t);
    ck_assert_int_gt(pid, 1);
    return pid;
}

#define FAULT_ARGS                                                                       \
    "--scenario", "t1", "--methods", "ft1,packnet", "--seeds", "1", "--single-seeds",    \
        "none", "--steps-per-task", "600", "--hidden", "16", "--layers", "1",            \
        "--eval-every", "300", "--eval-episodes", "1", "--start-steps", "100",           \
        "--update-after", "100", "--threads", "1", "--log-train-episodes", "none"

START_TEST(test_killed_job_local) {
    char d[128], shard[192];
    snprintf(d, sizeof d, "%s/f", g_dir);
    snprintf(shard, sizeof shard, "%s/shards/packnet-seed1.db", d);
    pid_t sweep = spawn((char *const[]){(char *)bin(), "sweep", "--out", d, "--jobs", "2",
                                        FAULT_ARGS, NULL},
                        "f1");
    pid_t job = pid_after_checkpoint("f", "packnet-seed1", "== job pid");
    ck_assert_int_eq(kill(job, SIGKILL), 0);
    ck_assert_int_eq(wait_for(sweep, 120), 1);
    assert_has("f1.err", "crl sweep: packnet-seed1 FAILED: killed by signal 9");
    assert_has("f1.err", "crl sweep: ft1-seed1 finished");
    assert_has("f1.err", "1 of 2 jobs finished, 1 failed, 0 lost");
    assert_has("f/sweep.status", "incomplete finished 1 failed 1 lost 0");
    assert_has("f/sweep.status", "failed packnet-seed1");
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
    /* The rerun resumes it from its checkpoint: one run, complete rows. */
    ck_assert_int_eq(
        RUN("f2", 120, (char *)bin(), "sweep", "--out", d, "--jobs", "2", FAULT_ARGS), 0);
    assert_has("f2.err", "1 finished already, 1 to resume, 0 new");
    assert_has("f2.err", "packnet-seed1 resumes run 1");
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs"), 1);
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
    /* 1800 steps, evaluated every 300 on 3 tasks. */
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM evals"), 6 * 3);
    assert_has("f/sweep.status", "ok finished 2");
}
END_TEST

/* A method's own flags go to that method's jobs only: crl train refuses
 * another method's flag, so a sweep of ft1 and ewc with --ewc-coef passed
 * it to every job and the ft1 job failed. Both finish, and the ewc run
 * keeps the coefficient. */
START_TEST(test_method_flags_go_to_their_jobs) {
    char d[128], ewc[192], ft1[192];
    snprintf(d, sizeof d, "%s/m", g_dir);
    snprintf(ewc, sizeof ewc, "%s/shards/ewc-seed1.db", d);
    snprintf(ft1, sizeof ft1, "%s/shards/ft1-seed1.db", d);
    ck_assert_int_eq(
        RUN("m1", 120, (char *)bin(), "sweep", "--out", d, "--jobs", "2", "--scenario",
            "t1", "--methods", "ft1,ewc", "--seeds", "1", "--single-seeds", "none",
            "--ewc-coef", "123", "--steps-per-task", "300", "--hidden", "16", "--layers",
            "1", "--eval-every", "300", "--eval-episodes", "1", "--start-steps", "100",
            "--update-after", "100", "--threads", "1", "--log-train-episodes", "none"),
        0);
    assert_has("m1.err", "all 2 jobs finished");
    ck_assert_int_eq(
        q1(ewc, "SELECT json_extract(config_json, '$.ewc-coef') FROM runs WHERE id = 1"),
        123);
    ck_assert_int_eq(q1(ft1, "SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
}
END_TEST

START_TEST(test_interrupted_local) {
    char d[128], shard[192];
    snprintf(d, sizeof d, "%s/i", g_dir);
    snprintf(shard, sizeof shard, "%s/shards/packnet-seed1.db", d);
    pid_t sweep = spawn((char *const[]){(char *)bin(), "sweep", "--out", d, "--jobs", "2",
                                        FAULT_ARGS, NULL},
                        "i1");
    pid_after_checkpoint("i", "packnet-seed1", "== job pid");
    /* Ctrl-C: every job checkpoints and stops, the sweep says so. */
    ck_assert_int_eq(kill(sweep, SIGINT), 0);
    ck_assert_int_eq(wait_for(sweep, 60), 130);
    assert_has("i1.err", "crl sweep: packnet-seed1 interrupted after");
    assert_has("i1.err", "rerun the same command to resume them");
    assert_has("i/sweep.status", "unfinished packnet-seed1");
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs WHERE status = 'interrupted'"),
                     1);
}
END_TEST

START_TEST(test_killed_worker_mpi) {
    if (!have_mpi()) {
        fprintf(stderr, "test_sweep: no mpirun or crl without MPI: worker fault test "
                        "skipped\n");
        return;
    }
    char d[128], shard[192];
    snprintf(d, sizeof d, "%s/w", g_dir);
    snprintf(shard, sizeof shard, "%s/shards/packnet-seed1.db", d);
    char *argv[64];
    int n = mpi_prefix(argv, 1);
    char *rest[] = {"sweep", "--out", d, "--worker-timeout", "3", FAULT_ARGS};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) argv[n++] = rest[i];
    argv[n] = NULL;
    pid_t sweep = spawn(argv, "w1");
    pid_t worker = pid_after_checkpoint("w", "packnet-seed1", "worker pid");
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    /* (mpirun --enable-recovery does not pass rank 0's exit code on once a
     * rank died; sweep.status and the lines are what tell.) */
    ck_assert_int_ge(wait_for(sweep, 120), 0);
    assert_has("w1.err", "crl sweep: packnet-seed1 LOST: worker rank");
    assert_has("w1.err", "rerun the sweep to resume it");
    assert_has("w1.err", "1 of 2 jobs finished, 0 failed, 1 lost");
    assert_has("w/sweep.status", "lost packnet-seed1");
    /* The worker's job does not outlive it (it gets SIGTERM when its parent
     * dies, checkpoints and says so): nothing keeps writing the shard. */
    char *log = slurp("w/logs/packnet-seed1.log");
    char *jp = strstr(log, "== job pid ");
    ck_assert_ptr_nonnull(jp);
    pid_t job = (pid_t)atol(jp + 11);
    free(log);
    double t0 = now_s();
    while (alive(job) && now_s() - t0 < 30) nap(0.1);
    ck_assert_msg(!alive(job), "the lost worker's job %d still runs", (int)job);
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs WHERE status = 'finished'"), 0);
    if (q1(shard, "SELECT count(*) FROM runs WHERE status = 'interrupted'") != 1)
        fprintf(stderr, "test_sweep: note: the lost job ended without marking its run "
                        "interrupted (killed outright); it resumes all the same\n");
    /* Rerun (locally: the same directory, whatever ran it before). */
    ck_assert_int_eq(RUN("w2", 120, (char *)bin(), "sweep", "--out", d, FAULT_ARGS), 0);
    assert_has("w2.err", "1 finished already, 1 to resume, 0 new");
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs WHERE status = 'finished'"), 1);
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM runs"), 1);
    ck_assert_int_eq(q1(shard, "SELECT count(*) FROM evals"), 6 * 3);
}
END_TEST

START_TEST(test_killed_job_mpi) {
    if (!have_mpi()) {
        fprintf(stderr, "test_sweep: no mpirun or crl without MPI: MPI job fault test "
                        "skipped\n");
        return;
    }
    char d[128];
    snprintf(d, sizeof d, "%s/j", g_dir);
    char *argv[64];
    int n = mpi_prefix(argv, 0);
    char *rest[] = {"sweep", "--out", d, FAULT_ARGS};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) argv[n++] = rest[i];
    argv[n] = NULL;
    pid_t sweep = spawn(argv, "j1");
    pid_t job = pid_after_checkpoint("j", "packnet-seed1", "== job pid");
    ck_assert_int_eq(kill(job, SIGKILL), 0);
    /* The worker lives on and reports; rank 0's exit code is mpirun's. */
    int code = wait_for(sweep, 120);
    ck_assert_msg(code != 0 && code != -1, "mpirun exit %d", code);
    assert_has("j1.err", "crl sweep: packnet-seed1 FAILED on rank ");
    assert_has("j1.err", "killed by signal 9");
    assert_has("j1.err", "crl sweep: ft1-seed1 finished");
    assert_has("j/sweep.status", "incomplete finished 1 failed 1 lost 0");
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_mpi_sweep_merge_and_local);
    tcase_add_test(tc, test_killed_job_local);
    tcase_add_test(tc, test_interrupted_local);
    tcase_add_test(tc, test_method_flags_go_to_their_jobs);
    tcase_add_test(tc, test_killed_worker_mpi);
    tcase_add_test(tc, test_killed_job_mpi);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
