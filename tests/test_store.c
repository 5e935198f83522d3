/* Tests of the SQLite run store. Besides round trips, they cover what goes
 * wrong in real use: foreign and newer files (which must stay untouched),
 * crashes between writes, two processes writing one file, and locks. Every
 * test works in its own mkdtemp directory. The database is inspected through
 * independent raw sqlite3 connections, not through the store's own readers. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "crl/store.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static char g_dir[64];
static char g_path[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_store_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    unsetenv("CRL_BUSY_TIMEOUT_MS");
}

static void teardown(void) {
    if (g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

/* Path of a file in this test's directory (static buffer). */
static const char *tpath(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    return g_path;
}

#define OK(call)                                                                         \
    do {                                                                                 \
        e.msg[0] = 0;                                                                    \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == CRL_OK, "%s -> %d (%s)", #call, rc_, e.msg);                \
    } while (0)

#define FAILS(want, call)                                                                \
    do {                                                                                 \
        e.msg[0] = 0;                                                                    \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == (want), "%s -> %d, expected %d (%s)", #call, rc_, (want),   \
                      e.msg);                                                            \
        ck_assert_msg(e.code == (want) && e.msg[0], "no message for %s", #call);         \
    } while (0)

static crl_store *open_store(const char *path, int create) {
    crl_err e = {0};
    crl_store *s = NULL;
    int rc = crl_store_open(path, create, &s, &e);
    ck_assert_msg(rc == CRL_OK && s, "open %s: %d %s", path, rc, e.msg);
    return s;
}

/* An independent read-only connection, as another program would use. */
static sqlite3 *raw_open(const char *path, int readonly) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             readonly ? SQLITE_OPEN_READONLY
                                      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             NULL);
    ck_assert_msg(rc == SQLITE_OK, "raw open %s: %s", path, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

/* First column of the first row of sql, as int64 (fails the test if no row). */
static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW, "%s: no row (%s)", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double q_double(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* First column as text into buf ("<NULL>" for SQL NULL). */
static const char *q_text(sqlite3 *db, const char *sql, char *buf, size_t cap) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: no row", sql);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, cap, "%s", t ? (const char *)t : "<NULL>");
    sqlite3_finalize(st);
    return buf;
}

static int64_t raw_count(const char *path, const char *sql) {
    sqlite3 *db = raw_open(path, 1);
    int64_t n = q_int(db, sql);
    sqlite3_close(db);
    return n;
}

static int count_row(const crl_metric_row *m, void *ctx) {
    (void)m;
    (*(int64_t *)ctx)++;
    return 0;
}

/* Rows of metric key of run id as the store itself reads them (its pending
 * batch included). */
static int64_t count_metrics(crl_store *s, int64_t id, const char *key) {
    crl_err e = {0};
    int64_t n = 0;
    const char *keys[] = {key};
    int rc = crl_store_metrics(s, id, keys, 1, count_row, &n, &e);
    ck_assert_msg(rc == CRL_OK, "metrics: %s", e.msg);
    return n;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int sibling_exists(const char *path, const char *suffix) {
    char p[300];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return file_exists(p);
}

/* Bytes and mtime of a file, to prove a refused file was not touched. */
typedef struct {
    unsigned char *bytes;
    size_t n;
    struct timespec mtime;
} snapshot;

static snapshot snap(const char *path) {
    snapshot sn = {0};
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    sn.mtime = sb.st_mtim;
    sn.n = (size_t)sb.st_size;
    sn.bytes = malloc(sn.n + 1);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(sn.bytes, 1, sn.n, f), sn.n);
    fclose(f);
    return sn;
}

static void assert_unchanged(const char *path, snapshot *before) {
    snapshot now = snap(path);
    ck_assert_msg(now.n == before->n, "%s changed size %zu -> %zu", path, before->n,
                  now.n);
    ck_assert_msg(memcmp(now.bytes, before->bytes, now.n) == 0, "%s bytes changed", path);
    ck_assert_msg(now.mtime.tv_sec == before->mtime.tv_sec &&
                      now.mtime.tv_nsec == before->mtime.tv_nsec,
                  "%s mtime changed", path);
    ck_assert_msg(!sibling_exists(path, "-wal") && !sibling_exists(path, "-journal"),
                  "journal files left next to %s", path);
    free(now.bytes);
    free(before->bytes);
    before->bytes = NULL;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A crl file must carry our identity, our version and WAL mode. */
static void assert_is_crl_db(const char *path) {
    sqlite3 *db = raw_open(path, 1);
    char buf[64];
    ck_assert_int_eq(q_int(db, "PRAGMA application_id"), CRL_STORE_APP_ID);
    ck_assert_int_eq(q_int(db, "PRAGMA user_version"), CRL_STORE_SCHEMA_VERSION);
    ck_assert_str_eq(q_text(db, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                               " AND name IN ('runs','tasks','metrics','evals',"
                               "'checkpoints','schema_migrations')"),
                     6);
    ck_assert_str_eq(q_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    sqlite3_close(db);
}

static int64_t new_run(crl_store *s, const char *method, uint64_t seed) {
    crl_err e = {0};
    int64_t id = -1;
    OK(crl_store_run_create(s, method, "cw10", seed, NULL, 0, &id, &e));
    ck_assert_int_gt(id, 0);
    return id;
}

static crl_eval_row eval_row(int64_t run, int64_t step, int train, int ev, double sr) {
    crl_eval_row r = {run, step, train, ev, 10, sr, 100.0 * sr - 3.0, 50.0 * sr};
    return r;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

START_TEST(test_run_config_roundtrip) {
    crl_err e = {0};
    const char *path = tpath("runs.db");
    crl_store *s = open_store(path, 1);
    const double third = 1.0 / 3.0;
    crl_kv kv[] = {
        {"lr", NULL, 3e-4},
        {"steps", NULL, 1e6},
        {"budget", NULL, 1e15}, /* integral, but "%.15g" would print 1e+15 */
        {"third", NULL, third},
        {"neg", NULL, -2.5},
        {"huge", NULL, 1e300},
        {"env", "hopper \"v2\" \xc3\xbc\\n", 0},
        {"a.b \"c\"", "dotted key", 0},
        {"dup", "first", 0},
        {"dup", "second", 0},
    };
    int64_t id = 0;
    OK(crl_store_run_create(s, "csp", "cw10", UINT64_MAX, kv, 10, &id, &e));
    ck_assert_int_gt(id, 0);
    /* Committed at once: visible to another connection without a flush. */
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM runs"), 1);

    sqlite3 *db = raw_open(path, 1);
    char buf[256];
    ck_assert_int_eq(q_int(db, "SELECT json_valid(config_json) FROM runs"), 1);
    ck_assert_str_eq(
        q_text(db, "SELECT json_type(config_json, '$.lr') FROM runs", buf, sizeof buf),
        "real");
    ck_assert(q_double(db, "SELECT json_extract(config_json, '$.lr') FROM runs") == 3e-4);
    ck_assert_str_eq(
        q_text(db, "SELECT json_type(config_json, '$.steps') FROM runs", buf, sizeof buf),
        "integer");
    ck_assert_int_eq(q_int(db, "SELECT json_extract(config_json, '$.steps') FROM runs"),
                     1000000);
    ck_assert_str_eq(q_text(db, "SELECT json_type(config_json, '$.budget') FROM runs",
                            buf, sizeof buf),
                     "integer");
    ck_assert_int_eq(q_int(db, "SELECT json_extract(config_json, '$.budget') FROM runs"),
                     1000000000000000LL);
    /* Exact, not SQLite's 15-digit rendering of a REAL. */
    ck_assert(q_double(db, "SELECT json_extract(config_json, '$.third') FROM runs") ==
              third);
    ck_assert(q_double(db, "SELECT json_extract(config_json, '$.neg') FROM runs") ==
              -2.5);
    ck_assert(q_double(db, "SELECT json_extract(config_json, '$.huge') FROM runs") ==
              1e300);
    ck_assert_str_eq(
        q_text(db, "SELECT json_type(config_json, '$.env') FROM runs", buf, sizeof buf),
        "text");
    ck_assert_str_eq(q_text(db, "SELECT json_extract(config_json, '$.env') FROM runs",
                            buf, sizeof buf),
                     "hopper \"v2\" \xc3\xbc\\n");
    ck_assert_str_eq(q_text(db,
                            "SELECT value FROM runs, json_each(config_json)"
                            " WHERE json_each.key = 'a.b \"c\"'",
                            buf, sizeof buf),
                     "dotted key");
    ck_assert_str_eq(q_text(db, "SELECT json_extract(config_json, '$.dup') FROM runs",
                            buf, sizeof buf),
                     "second");
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM runs, json_each(config_json)"), 9);
    /* The uint64 seed is stored as its int64 bit pattern. */
    ck_assert_int_eq(q_int(db, "SELECT seed FROM runs"), -1);
    ck_assert_str_eq(q_text(db, "SELECT status FROM runs", buf, sizeof buf), "running");
    sqlite3_close(db);

    crl_run_info info;
    char *cfg = NULL;
    OK(crl_store_run_get(s, id, &info, &cfg, &e));
    ck_assert_int_eq(info.id, id);
    ck_assert_str_eq(info.method, "csp");
    ck_assert_str_eq(info.scenario, "cw10");
    ck_assert_str_eq(info.status, "running");
    ck_assert(info.seed == UINT64_MAX);
    ck_assert_int_eq(info.last_step, 0);
    /* created_at: UTC ISO-8601, e.g. 2024-05-01T12:34:56.789Z, and now-ish. */
    ck_assert_uint_eq(strlen(info.created_at), 24);
    ck_assert(info.created_at[4] == '-' && info.created_at[10] == 'T' &&
              info.created_at[23] == 'Z');
    struct tm tm = {0};
    ck_assert_int_eq(sscanf(info.created_at, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    ck_assert_msg(llabs((long long)(t - time(NULL))) < 120, "created_at %s not now",
                  info.created_at);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_nonnull(strstr(cfg, "\"steps\":1000000"));
    free(cfg);

    /* Other seeds keep their bits; an empty config is '{}'. */
    const uint64_t seeds[] = {0, 42, 1ull << 63, 0x8000000000000001ull};
    for (int i = 0; i < 4; i++) {
        int64_t r;
        OK(crl_store_run_create(s, "ft1", "cw10", seeds[i], NULL, 0, &r, &e));
        OK(crl_store_run_get(s, r, &info, &cfg, &e));
        ck_assert(info.seed == seeds[i]);
        ck_assert_str_eq(cfg, "{}");
        free(cfg);
    }
    FAILS(CRL_ENOTFOUND, crl_store_run_get(s, 9999, &info, NULL, &e));

    /* Bad configs and names are refused, and nothing is written. */
    crl_kv nan_kv[] = {{"lr", NULL, NAN}};
    crl_kv inf_kv[] = {{"lr", NULL, INFINITY}};
    crl_kv nokey[] = {{NULL, "x", 0}};
    int64_t r;
    FAILS(CRL_EINVAL, crl_store_run_create(s, "sac", "cw10", 1, nan_kv, 1, &r, &e));
    FAILS(CRL_EINVAL, crl_store_run_create(s, "sac", "cw10", 1, inf_kv, 1, &r, &e));
    FAILS(CRL_EINVAL, crl_store_run_create(s, "sac", "cw10", 1, nokey, 1, &r, &e));
    FAILS(CRL_EINVAL, crl_store_run_create(s, "sac", "cw10", 1, NULL, 2, &r, &e));
    FAILS(CRL_EINVAL, crl_store_run_create(s, NULL, "cw10", 1, NULL, 0, &r, &e));
    FAILS(CRL_EINVAL, crl_store_run_create(
                          s, "a-method-name-that-is-way-too-long-for-the-info-struct",
                          "cw10", 1, NULL, 0, &r, &e));
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM runs"), 5);
    crl_store_close(s);
    assert_is_crl_db(path);
}
END_TEST

START_TEST(test_run_status) {
    crl_err e = {0};
    const char *path = tpath("status.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 7);
    const char *st[] = {"finished", "failed", "interrupted", "running", "finished"};
    for (int i = 0; i < 5; i++) {
        OK(crl_store_run_set_status(s, id, st[i], &e));
        sqlite3 *db = raw_open(path, 1); /* committed at once */
        char buf[32];
        ck_assert_str_eq(q_text(db, "SELECT status FROM runs", buf, sizeof buf), st[i]);
        sqlite3_close(db);
    }
    FAILS(CRL_EINVAL, crl_store_run_set_status(s, id, "done", &e));
    FAILS(CRL_EINVAL, crl_store_run_set_status(s, id, NULL, &e));
    FAILS(CRL_ENOTFOUND, crl_store_run_set_status(s, id + 100, "failed", &e));
    crl_run_info info;
    OK(crl_store_run_get(s, id, &info, NULL, &e));
    ck_assert_str_eq(info.status, "finished");
    /* The CHECK constraint guards the column against other writers too. */
    sqlite3 *db = raw_open(path, 0);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE runs SET status = 'bogus'", 0, 0, 0) & 0xff,
                     SQLITE_CONSTRAINT);
    sqlite3_close(db);
    crl_store_close(s);
}
END_TEST

START_TEST(test_tasks) {
    crl_err e = {0};
    const char *path = tpath("tasks.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    OK(crl_store_task_start(s, id, 0, "hopper-gravity", 0, &e));
    OK(crl_store_task_start(s, id, 1, "hopper-friction", 1000, &e));
    OK(crl_store_task_end(s, id, 0, 999, &e));

    sqlite3 *db = raw_open(path, 1);
    char buf[64];
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM tasks"), 2);
    ck_assert_str_eq(q_text(db, "SELECT name FROM tasks WHERE idx = 1", buf, sizeof buf),
                     "hopper-friction");
    ck_assert_int_eq(q_int(db, "SELECT start_step FROM tasks WHERE idx = 1"), 1000);
    ck_assert_int_eq(q_int(db, "SELECT end_step FROM tasks WHERE idx = 0"), 999);
    ck_assert_int_eq(q_int(db, "SELECT end_step IS NULL FROM tasks WHERE idx = 1"), 1);
    sqlite3_close(db);

    FAILS(CRL_ENOTFOUND, crl_store_task_end(s, id, 5, 10, &e));
    FAILS(CRL_ENOTFOUND, crl_store_task_start(s, id + 1, 0, "x", 0, &e));
    FAILS(CRL_EINVAL, crl_store_task_start(s, id, -1, "x", 0, &e));
    FAILS(CRL_EINVAL, crl_store_task_start(s, id, 2, NULL, 0, &e));
    /* end before start violates the schema's CHECK. */
    FAILS(CRL_EINVAL, crl_store_task_end(s, id, 1, 10, &e));

    /* A resumed run restarts task 0: replaced and reopened, not duplicated. */
    OK(crl_store_task_start(s, id, 0, "hopper-gravity", 0, &e));
    db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM tasks"), 2);
    ck_assert_int_eq(q_int(db, "SELECT end_step IS NULL FROM tasks WHERE idx = 0"), 1);
    sqlite3_close(db);
    crl_store_close(s);
}
END_TEST

START_TEST(test_metrics) {
    crl_err e = {0};
    const char *path = tpath("metrics.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "sac", 1);
    for (int i = 0; i < 50; i++) {
        OK(crl_store_metric(s, id, i * 100, "loss/q", 1.0 / (i + 1), &e));
        OK(crl_store_metric(s, id, i * 100, "alpha", 0.2, &e));
    }
    OK(crl_store_metric(s, id, 5000, "loss/pi", NAN, &e));
    OK(crl_store_metric(s, id, 5000, "ret", INFINITY, &e));
    OK(crl_store_metric(s, id, 100, "alpha", 0.125, &e)); /* same (key, step): replaces */
    FAILS(CRL_EINVAL, crl_store_metric(s, id, -1, "x", 1, &e));
    FAILS(CRL_EINVAL, crl_store_metric(s, id, 1, NULL, 1, &e));
    FAILS(CRL_ENOTFOUND, crl_store_metric(s, id + 1, 1, "x", 1, &e));
    OK(crl_store_flush(s, &e));

    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics"), 102);
    ck_assert(
        q_double(db, "SELECT value FROM metrics WHERE key = 'loss/q' AND step = 700") ==
        1.0 / 8);
    ck_assert(
        q_double(db, "SELECT value FROM metrics WHERE key = 'alpha' AND step = 100") ==
        0.125);
    /* NaN has no SQL value: it is stored as NULL. Inf survives. */
    ck_assert_int_eq(q_int(db, "SELECT value IS NULL FROM metrics WHERE key = 'loss/pi'"),
                     1);
    ck_assert(isinf(q_double(db, "SELECT value FROM metrics WHERE key = 'ret'")));
    sqlite3_close(db);
    crl_store_close(s);
}
END_TEST

START_TEST(test_csp_decisions) {
    crl_err e = {0};
    const char *path = tpath("csp.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    const float a0[1] = {1.0f}, a1[2] = {0.25f, 0.75f}, a1b[1] = {1.0f};
    crl_csp_row r0 = {.run_id = id,
                      .task_idx = 0,
                      .step = 1000,
                      .kept = 1,
                      .best_new = NAN,
                      .best_old = NAN,
                      .n_anchors = 1,
                      .alpha = a0,
                      .n_alpha = 1};
    crl_csp_row r1 = {.run_id = id,
                      .task_idx = 1,
                      .step = 2000,
                      .kept = 1,
                      .best_new = 5.5,
                      .best_old = -3.25,
                      .n_anchors = 2,
                      .alpha = a1,
                      .n_alpha = 2};
    OK(crl_store_csp_decision(s, &r0, &e));
    OK(crl_store_csp_decision(s, &r1, &e));
    /* Written again for the same task (a resumed run): replaced. */
    crl_csp_row r1b = {.run_id = id,
                       .task_idx = 1,
                       .step = 2000,
                       .kept = 0,
                       .best_new = 1.0,
                       .best_old = 2.0,
                       .n_anchors = 1,
                       .alpha = a1b,
                       .n_alpha = 1};
    OK(crl_store_csp_decision(s, &r1b, &e));
    OK(crl_store_csp_decision(s, &r1, &e));
    crl_csp_row bad = r1;
    bad.n_alpha = 0;
    FAILS(CRL_EINVAL, crl_store_csp_decision(s, &bad, &e));
    bad = r1;
    bad.run_id = id + 1;
    FAILS(CRL_ENOTFOUND, crl_store_csp_decision(s, &bad, &e));
    OK(crl_store_flush(s, &e));
    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM csp_decisions"), 2);
    ck_assert_int_eq(q_int(db, "SELECT best_new IS NULL AND best_old IS NULL "
                               "FROM csp_decisions WHERE task_idx = 0"),
                     1);
    ck_assert(q_double(db, "SELECT best_old FROM csp_decisions WHERE task_idx = 1") ==
              -3.25);
    ck_assert_int_eq(q_int(db, "SELECT kept * 10 + n_anchors FROM csp_decisions "
                               "WHERE task_idx = 1"),
                     12);
    ck_assert(q_double(db, "SELECT json_extract(alpha, '$[1]') FROM csp_decisions "
                           "WHERE task_idx = 1") == 0.75);
    ck_assert_int_eq(q_int(db, "SELECT json_array_length(alpha) FROM csp_decisions "
                               "WHERE task_idx = 1"),
                     2);
    sqlite3_close(db);
    crl_store_close(s);
}
END_TEST

typedef struct {
    int n;
    crl_eval_row rows[16];
} eval_sink;

static int collect_eval(const crl_eval_row *r, void *ctx) {
    eval_sink *k = ctx;
    if (k->n < 16) k->rows[k->n] = *r;
    k->n++;
    return 0;
}

START_TEST(test_evals) {
    crl_err e = {0};
    const char *path = tpath("evals.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    int64_t other = new_run(s, "ewc", 1);
    /* Out of order on purpose: the reader sorts by (step, eval_task_idx). */
    crl_eval_row in[] = {eval_row(id, 2000, 1, 1, 0.9), eval_row(id, 1000, 0, 1, 0.0),
                         eval_row(id, 1000, 0, 0, 0.8), eval_row(id, 2000, 1, 0, 0.7),
                         eval_row(other, 1000, 0, 0, 0.1)};
    for (int i = 0; i < 5; i++) OK(crl_store_eval(s, &in[i], &e));
    crl_eval_row nan_row = eval_row(id, 3000, 2, 0, NAN);
    nan_row.mean_return = NAN;
    OK(crl_store_eval(s, &nan_row, &e));

    eval_sink k = {0};
    OK(crl_store_evals(s, id, collect_eval, &k, &e));
    ck_assert_int_eq(k.n, 5);
    const int64_t steps[] = {1000, 1000, 2000, 2000, 3000};
    const int evs[] = {0, 1, 0, 1, 0};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(k.rows[i].step, steps[i]);
        ck_assert_int_eq(k.rows[i].eval_task_idx, evs[i]);
        ck_assert_int_eq(k.rows[i].run_id, id);
    }
    ck_assert(k.rows[0].success_rate == 0.8 && k.rows[0].mean_return == 77.0);
    ck_assert_int_eq(k.rows[2].train_task_idx, 1);
    ck_assert_int_eq(k.rows[2].episodes, 10);
    ck_assert(isnan(k.rows[4].success_rate) && isnan(k.rows[4].mean_return));

    /* The same (run, step, eval task) again replaces the row, within a batch... */
    crl_eval_row again = eval_row(id, 1000, 0, 0, 0.25);
    again.episodes = 20;
    OK(crl_store_eval(s, &again, &e));
    OK(crl_store_flush(s, &e));
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM evals"), 6);
    ck_assert_int_eq(raw_count(path, "SELECT episodes FROM evals WHERE run_id = 1 AND"
                                     " step = 1000 AND eval_task_idx = 0"),
                     20);
    /* ...and after a reopen, as when a run is resumed. */
    crl_store_close(s);
    s = open_store(path, 0);
    again.success_rate = 0.5;
    OK(crl_store_eval(s, &again, &e));
    OK(crl_store_eval(s, &again, &e));
    crl_store_close(s);
    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM evals"), 6);
    ck_assert(q_double(db,
                       "SELECT success_rate FROM evals WHERE run_id = 1 AND step = 1000"
                       " AND eval_task_idx = 0") == 0.5);
    sqlite3_close(db);

    s = open_store(path, 0);
    crl_eval_row bad = eval_row(id, 10, 0, 0, 1.5);
    FAILS(CRL_EINVAL, crl_store_eval(s, &bad, &e));
    bad = eval_row(id, -10, 0, 0, 0.5);
    FAILS(CRL_EINVAL, crl_store_eval(s, &bad, &e));
    bad = eval_row(id, 10, 0, -1, 0.5);
    FAILS(CRL_EINVAL, crl_store_eval(s, &bad, &e));
    bad = eval_row(999, 10, 0, 0, 0.5);
    FAILS(CRL_ENOTFOUND, crl_store_eval(s, &bad, &e));
    FAILS(CRL_EINVAL, crl_store_eval(s, NULL, &e));
    k.n = 0;
    OK(crl_store_evals(s, 999, collect_eval, &k, &e)); /* no run: no rows, no error */
    ck_assert_int_eq(k.n, 0);
    crl_store_close(s);
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM evals"), 6);
}
END_TEST

static void fill_bytes(unsigned char *p, size_t n, uint64_t seed) {
    crl_rng r;
    crl_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)crl_rng_u64(&r);
}

START_TEST(test_checkpoints) {
    crl_err e = {0};
    const char *path = tpath("ckpt.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    int64_t other = new_run(s, "csp", 2);
    void *blob = (void *)1;
    size_t n = 123;
    int task = -1;
    int64_t step = -1;
    FAILS(CRL_ENOTFOUND, crl_store_checkpoint_latest(s, id, &task, &step, &blob, &n, &e));
    ck_assert_ptr_null(blob);

    enum { N = 100000 };
    static unsigned char a[N], b[N], c[N];
    fill_bytes(a, N, 1);
    fill_bytes(b, N, 2);
    fill_bytes(c, N, 3);
    OK(crl_store_checkpoint_put(s, id, 0, 100, a, N, &e));
    OK(crl_store_checkpoint_put(s, id, 2, 300, b, N / 2, &e));
    OK(crl_store_checkpoint_put(s, id, 1, 200, c, N, &e));
    OK(crl_store_checkpoint_put(s, other, 0, 999, a, 10, &e));
    OK(crl_store_checkpoint_latest(s, id, &task, &step, &blob, &n, &e));
    ck_assert_int_eq(step, 300);
    ck_assert_int_eq(task, 2);
    ck_assert_uint_eq(n, N / 2);
    ck_assert(memcmp(blob, b, N / 2) == 0);
    free(blob);

    /* Same step again: replaced, not duplicated. */
    OK(crl_store_checkpoint_put(s, id, 3, 300, c, N, &e));
    OK(crl_store_checkpoint_latest(s, id, &task, &step, &blob, &n, &e));
    ck_assert_int_eq(task, 3);
    ck_assert_uint_eq(n, N);
    ck_assert(memcmp(blob, c, N) == 0);
    free(blob);
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM checkpoints WHERE run_id = 1"),
                     3);

    /* An empty checkpoint is an empty blob, not NULL. */
    OK(crl_store_checkpoint_put(s, id, 3, 400, NULL, 0, &e));
    OK(crl_store_checkpoint_latest(s, id, NULL, &step, &blob, &n, &e));
    ck_assert_int_eq(step, 400);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(blob);
    free(blob);

    FAILS(CRL_ENOTFOUND, crl_store_checkpoint_put(s, 77, 0, 1, a, 4, &e));
    FAILS(CRL_EINVAL, crl_store_checkpoint_put(s, id, 0, 1, NULL, 4, &e));
    FAILS(CRL_ENOTFOUND, crl_store_checkpoint_latest(s, 77, NULL, NULL, &blob, &n, &e));
    crl_store_close(s);

    /* Durable across reopen, byte for byte. */
    s = open_store(path, 0);
    OK(crl_store_checkpoint_latest(s, other, &task, &step, &blob, &n, &e));
    ck_assert_uint_eq(n, 10);
    ck_assert(memcmp(blob, a, 10) == 0 && step == 999);
    free(blob);
    crl_store_close(s);
}
END_TEST

typedef struct {
    int n, stop_after;
    crl_run_info runs[8];
    crl_store *s;
    int nested_ok;
} run_sink;

static int collect_run(const crl_run_info *r, void *ctx) {
    run_sink *k = ctx;
    if (k->n < 8) k->runs[k->n] = *r;
    k->n++;
    if (k->s) {
        /* Re-entering the store from the callback must work. */
        crl_err e = {0};
        crl_run_info again;
        run_sink inner = {0};
        k->nested_ok += crl_store_run_get(k->s, r->id, &again, NULL, &e) == CRL_OK &&
                        again.id == r->id &&
                        crl_store_runs(k->s, collect_run, &inner, &e) == CRL_OK &&
                        inner.n == 3;
    }
    return k->stop_after && k->n >= k->stop_after;
}

START_TEST(test_runs_listing) {
    crl_err e = {0};
    const char *path = tpath("list.db");
    crl_store *s = open_store(path, 1);
    run_sink k = {0};
    OK(crl_store_runs(s, collect_run, &k, &e));
    ck_assert_int_eq(k.n, 0);

    int64_t a = new_run(s, "csp", 1), b = new_run(s, "l2m", 2), c = new_run(s, "ft1", 3);
    /* a: evals up to 5000, metrics up to 7000; b: only evals; c: nothing. */
    crl_eval_row r = eval_row(a, 5000, 0, 0, 0.5);
    OK(crl_store_eval(s, &r, &e));
    r = eval_row(a, 4000, 0, 0, 0.5);
    OK(crl_store_eval(s, &r, &e));
    OK(crl_store_metric(s, a, 7000, "loss", 1.0, &e));
    OK(crl_store_metric(s, a, 10, "loss", 1.0, &e));
    r = eval_row(b, 1234, 0, 0, 0.5);
    OK(crl_store_eval(s, &r, &e));
    OK(crl_store_run_set_status(s, b, "finished", &e));

    k = (run_sink){.s = s};
    OK(crl_store_runs(s, collect_run, &k, &e));
    ck_assert_int_eq(k.n, 3);
    ck_assert_int_eq(k.nested_ok, 3);
    ck_assert_int_eq(k.runs[0].id, a);
    ck_assert_int_eq(k.runs[1].id, b);
    ck_assert_int_eq(k.runs[2].id, c);
    ck_assert_int_eq(k.runs[0].last_step, 7000);
    ck_assert_int_eq(k.runs[1].last_step, 1234);
    ck_assert_int_eq(k.runs[2].last_step, 0);
    ck_assert_str_eq(k.runs[1].method, "l2m");
    ck_assert_str_eq(k.runs[1].status, "finished");
    ck_assert_str_eq(k.runs[2].scenario, "cw10");
    ck_assert(k.runs[2].seed == 3);

    /* A non-zero return stops the walk. */
    k = (run_sink){.stop_after = 2};
    OK(crl_store_runs(s, collect_run, &k, &e));
    ck_assert_int_eq(k.n, 2);

    crl_run_info info;
    OK(crl_store_run_get(s, a, &info, NULL, &e));
    ck_assert_int_eq(info.last_step, 7000);
    FAILS(CRL_EINVAL, crl_store_runs(s, NULL, NULL, &e));
    crl_store_close(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Batching and crashes                                                      */

START_TEST(test_batch_visibility) {
    crl_err e = {0};
    const char *path = tpath("batch.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    sqlite3 *other = raw_open(path, 1);
    for (int i = 0; i < 10; i++) OK(crl_store_metric(s, id, i, "loss", i, &e));
    crl_eval_row r = eval_row(id, 9, 0, 0, 0.5);
    OK(crl_store_eval(s, &r, &e));
    /* Pending: the writer sees its rows, another connection does not. */
    ck_assert_int_eq(count_metrics(s, id, "loss"), 10);
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 0);
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM evals"), 0);
    OK(crl_store_flush(s, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 10);
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM evals"), 1);
    OK(crl_store_flush(s, &e)); /* nothing pending: a no-op */

    /* Unflushed rows are committed by close. */
    for (int i = 10; i < 20; i++) OK(crl_store_metric(s, id, i, "loss", i, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 10);
    crl_store_close(s);
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 20);
    sqlite3_close(other);
    s = open_store(path, 0);
    ck_assert_int_eq(count_metrics(s, id, "loss"), 20);
    crl_store_close(s);
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM metrics"), 20);
}
END_TEST

START_TEST(test_batch_autocommit_rows) {
    crl_err e = {0};
    const char *path = tpath("rows.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    sqlite3 *other = raw_open(path, 1);
    for (int i = 0; i < 999; i++) OK(crl_store_metric(s, id, i, "loss", i, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 0);
    OK(crl_store_metric(s, id, 999, "loss", 0, &e)); /* the 1000th row commits */
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 1000);
    OK(crl_store_metric(s, id, 1000, "loss", 0, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 1000);
    sqlite3_close(other);
    crl_store_close(s);
}
END_TEST

START_TEST(test_batch_autocommit_time) {
    crl_err e = {0};
    const char *path = tpath("time.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    sqlite3 *other = raw_open(path, 1);
    OK(crl_store_metric(s, id, 0, "loss", 0, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 0);
    struct timespec ts = {2, 200000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    /* The batch is over 2 s old: this write commits it. */
    crl_eval_row r = eval_row(id, 1, 0, 0, 0.5);
    OK(crl_store_eval(s, &r, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 1);
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM evals"), 1);
    sqlite3_close(other);
    crl_store_close(s);
}
END_TEST

START_TEST(test_own_writes_commit_batch) {
    crl_err e = {0};
    const char *path = tpath("own.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "csp", 1);
    sqlite3 *other = raw_open(path, 1);
    int64_t step = 0;
    /* Each non-batched write commits the pending batch with itself. */
    for (int w = 0; w < 5; w++) {
        OK(crl_store_metric(s, id, step++, "loss", 1, &e));
        ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), w);
        switch (w) {
        case 0:
            OK(crl_store_checkpoint_put(s, id, 0, step, "ab", 2, &e));
            break;
        case 1:
            OK(crl_store_run_set_status(s, id, "interrupted", &e));
            break;
        case 2:
            OK(crl_store_task_start(s, id, 0, "t0", 0, &e));
            break;
        case 3:
            OK(crl_store_task_end(s, id, 0, step, &e));
            break;
        case 4: {
            int64_t r;
            OK(crl_store_run_create(s, "ewc", "cw10", 2, NULL, 0, &r, &e));
        } break;
        }
        ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), w + 1);
    }

    /* A failed non-batched write keeps the pending batch for the next flush. */
    OK(crl_store_metric(s, id, step++, "loss", 1, &e));
    FAILS(CRL_ENOTFOUND, crl_store_run_set_status(s, 999, "failed", &e));
    FAILS(CRL_ENOTFOUND, crl_store_metric(s, 999, step, "loss", 1, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 5);
    OK(crl_store_flush(s, &e));
    ck_assert_int_eq(q_int(other, "SELECT count(*) FROM metrics"), 6);
    sqlite3_close(other);

    /* ...and with no batch pending, a failed write gives the write lock back:
     * another writer with a short timeout gets in at once. */
    FAILS(CRL_ENOTFOUND, crl_store_task_end(s, id, 9, 1, &e));
    FAILS(CRL_ENOTFOUND, crl_store_metric(s, 999, 1, "loss", 1, &e));
    setenv("CRL_BUSY_TIMEOUT_MS", "100", 1);
    crl_store *b = open_store(path, 0);
    OK(crl_store_metric(b, id, 1000, "other", 1, &e));
    OK(crl_store_flush(b, &e));
    crl_store_close(b);
    crl_store_close(s);
}
END_TEST

/* A process killed mid-run loses only its unflushed batch; the file stays
 * consistent and opens normally. */
START_TEST(test_crash_loses_only_pending_batch) {
    crl_err e = {0};
    const char *path = tpath("crash.db");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        crl_store *s = NULL;
        int64_t id;
        if (crl_store_open(path, 1, &s, &e) != 0) _exit(2);
        if (crl_store_run_create(s, "csp", "cw10", 1, NULL, 0, &id, &e) != 0) _exit(3);
        for (int i = 0; i < 10; i++)
            if (crl_store_metric(s, id, i, "loss", i, &e) != 0) _exit(4);
        if (crl_store_checkpoint_put(s, id, 0, 9, "ckpt", 4, &e) != 0) _exit(5);
        for (int i = 10; i < 500; i++)
            if (crl_store_metric(s, id, i, "loss", i, &e) != 0) _exit(6);
        kill(getpid(), SIGKILL);
        _exit(7);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "child did not reach the crash (status %d)", status);
    ck_assert(sibling_exists(path, "-wal")); /* it really died with the file open */

    crl_store *s = open_store(path, 0);
    sqlite3 *db = raw_open(path, 1); /* beside the store, which recovered the WAL */
    char buf[16];
    ck_assert_str_eq(q_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics"), 10);
    ck_assert_int_eq(q_int(db, "SELECT max(step) FROM metrics"), 9);
    sqlite3_close(db);
    void *blob;
    size_t n;
    int64_t step;
    OK(crl_store_checkpoint_latest(s, 1, NULL, &step, &blob, &n, &e));
    ck_assert(n == 4 && memcmp(blob, "ckpt", 4) == 0 && step == 9);
    free(blob);
    /* The crashed run can be marked and continued. */
    OK(crl_store_run_set_status(s, 1, "interrupted", &e));
    OK(crl_store_metric(s, 1, 10, "loss", 10, &e));
    crl_store_close(s);
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM metrics"), 11);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Identity: refusing what is not ours                                      */

START_TEST(test_refuse_random_bytes) {
    crl_err e = {0};
    /* 1 byte matters: SQLite itself takes a 1-byte file for an empty database
     * and would overwrite it. */
    const size_t sizes[] = {1, 15, 100, 511, 4096, 65536};
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "random%zu.db", sizes[i]);
        const char *path = tpath(name);
        unsigned char *p = malloc(sizes[i]);
        fill_bytes(p, sizes[i], 100 + i);
        write_file(path, p, sizes[i]);
        free(p);
        snapshot before = snap(path);
        for (int create = 0; create <= 1; create++) {
            crl_store *s = (crl_store *)1;
            FAILS(CRL_ECORRUPT, crl_store_open(path, create, &s, &e));
            ck_assert_ptr_null(s);
            ck_assert_ptr_nonnull(strstr(e.msg, path));
            ck_assert_ptr_nonnull(strstr(e.msg, "not a crl database (not SQLite)"));
        }
        assert_unchanged(path, &before);
    }
    /* A SQLite header on a file too short to be a database. */
    const char *path = tpath("truncated.db");
    char head[100] = "SQLite format 3";
    write_file(path, head, sizeof head);
    snapshot before = snap(path);
    crl_store *s;
    FAILS(CRL_ECORRUPT, crl_store_open(path, 1, &s, &e));
    assert_unchanged(path, &before);
}
END_TEST

START_TEST(test_refuse_corrupt_page) {
    crl_err e = {0};
    const char *path = tpath("corrupt.db");
    crl_store *s = open_store(path, 1);
    new_run(s, "csp", 1);
    crl_store_close(s);
    /* Garbage over the schema page, after the 100-byte header. */
    snapshot sn = snap(path);
    fill_bytes(sn.bytes + 100, 400, 5);
    write_file(path, sn.bytes, sn.n);
    free(sn.bytes);
    snapshot before = snap(path);
    FAILS(CRL_ECORRUPT, crl_store_open(path, 0, &s, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    assert_unchanged(path, &before);
}
END_TEST

static void make_foreign_db(const char *path, const char *sql) {
    sqlite3 *db = raw_open(path, 0);
    raw_exec(db, sql);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

START_TEST(test_refuse_foreign_sqlite) {
    crl_err e = {0};
    const char *cases[] = {
        /* another program's tables, no application_id */
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO users (name) VALUES ('alice');",
        /* same, in WAL mode */
        "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        /* another program's application_id on an otherwise empty database */
        "PRAGMA application_id = 1234;",
        /* even tables named like ours are not ours without our id */
        "CREATE TABLE runs (id INTEGER PRIMARY KEY);",
    };
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "foreign%d.db", i);
        const char *path = tpath(name);
        make_foreign_db(path, cases[i]);
        snapshot before = snap(path);
        for (int create = 0; create <= 1; create++) {
            crl_store *s = (crl_store *)1;
            FAILS(CRL_ECORRUPT, crl_store_open(path, create, &s, &e));
            ck_assert_ptr_null(s);
            ck_assert_msg(strstr(e.msg, path) &&
                              strstr(e.msg, "is a SQLite database of another program"),
                          "%s", e.msg);
        }
        assert_unchanged(path, &before);
    }
}
END_TEST

START_TEST(test_refuse_newer_version) {
    crl_err e = {0};
    /* The version right after ours, and a far one. */
    char next_sql[128], next_msg[32];
    snprintf(next_sql, sizeof next_sql,
             "PRAGMA application_id = 1129466929; PRAGMA user_version = %d;",
             CRL_STORE_SCHEMA_VERSION + 1);
    snprintf(next_msg, sizeof next_msg, "version %d", CRL_STORE_SCHEMA_VERSION + 1);
    const char *sql[] = {
        "PRAGMA application_id = 1129466929; PRAGMA user_version = 99;"
        "CREATE TABLE runs_v99 (x);",
        next_sql,
    };
    ck_assert_int_eq(1129466929, CRL_STORE_APP_ID);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "future%d.db", i);
        const char *path = tpath(name);
        make_foreign_db(path, sql[i]);
        snapshot before = snap(path);
        crl_store *s = (crl_store *)1;
        FAILS(CRL_EVERSION, crl_store_open(path, 1, &s, &e));
        ck_assert_ptr_null(s);
        ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, i ? next_msg : "version 99"),
                      "%s", e.msg);
        assert_unchanged(path, &before);
    }
}
END_TEST

START_TEST(test_open_missing) {
    crl_err e = {0};
    crl_store *s = (crl_store *)1;
    const char *path = tpath("missing.db");
    FAILS(CRL_ENOTFOUND, crl_store_open(path, 0, &s, &e));
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert(!file_exists(path));

    /* A path in a directory that does not exist: opening it is refused and
     * makes nothing; creating it makes the folders (crl train --db
     * runs/x.db, docs/cli.md). */
    char p[300];
    snprintf(p, sizeof p, "%s/no/such/dir/x.db", g_dir);
    FAILS(CRL_ENOTFOUND, crl_store_open(p, 0, &s, &e));
    snprintf(p, sizeof p, "%s/no", g_dir);
    ck_assert(!file_exists(p));
    snprintf(p, sizeof p, "%s/no/such/dir/x.db", g_dir);
    OK(crl_store_open(p, 1, &s, &e));
    crl_store_close(s);
    s = NULL;
    ck_assert(file_exists(p));

    /* A directory where the file should be; a file where a directory should be. */
    FAILS(CRL_EIO, crl_store_open(g_dir, 1, &s, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "directory"));
    FAILS(CRL_EIO, crl_store_open("/dev/null", 0, &s, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "regular file"));
    write_file(tpath("plain"), "x", 1);
    snprintf(p, sizeof p, "%s/plain/x.db", g_dir);
    FAILS(CRL_EIO, crl_store_open(p, 1, &s, &e));

    /* Names SQLite would take for a URI or an in-memory database are files. */
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(g_dir), 0);
    const char *odd[] = {"file:uri.db?mode=memory", ":memory:"};
    for (int i = 0; i < 2; i++) {
        s = open_store(odd[i], 1);
        new_run(s, "csp", 1);
        crl_store_close(s);
        ck_assert_msg(file_exists(odd[i]), "%s not created as a file", odd[i]);
        ck_assert_int_eq(raw_count(tpath(odd[i]), "SELECT count(*) FROM runs"), 1);
    }
    ck_assert_int_eq(chdir(cwd), 0);

    FAILS(CRL_EINVAL, crl_store_open("", 1, &s, &e));
    FAILS(CRL_EINVAL, crl_store_open(NULL, 1, &s, &e));
    ck_assert_int_eq(crl_store_open(tpath("x.db"), 1, NULL, &e), CRL_EINVAL);
    crl_store_close(NULL);
    crl_task_row *tasks = (crl_task_row *)1;
    int n_tasks = 1;
    FAILS(CRL_EINVAL, crl_store_tasks(NULL, 1, &tasks, &n_tasks, &e));
    ck_assert(tasks == NULL && n_tasks == 0);
    FAILS(CRL_EINVAL, crl_store_flush(NULL, &e));

    setenv("CRL_BUSY_TIMEOUT_MS", "soon", 1);
    FAILS(CRL_EINVAL, crl_store_open(tpath("x.db"), 1, &s, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "CRL_BUSY_TIMEOUT_MS"));
    unsetenv("CRL_BUSY_TIMEOUT_MS");
    ck_assert(!file_exists(tpath("x.db")));
}
END_TEST

START_TEST(test_initialise_empty) {
    crl_err e = {0};
    /* A 0-byte file (e.g. from mktemp) and an empty SQLite database. */
    const char *zero = tpath("zero.db");
    write_file(zero, "", 0);
    crl_store *s = open_store(zero, 0);
    new_run(s, "csp", 1);
    crl_store_close(s);
    assert_is_crl_db(zero);

    const char *empty = tpath("empty.db");
    make_foreign_db(empty, "CREATE TABLE t (x); DROP TABLE t;");
    struct stat sb;
    ck_assert_int_eq(stat(empty, &sb), 0);
    ck_assert_int_gt(sb.st_size, 0);
    s = open_store(empty, 0);
    new_run(s, "csp", 1);
    crl_store_close(s);
    assert_is_crl_db(empty);
    ck_assert_int_eq(raw_count(empty, "SELECT count(*) FROM runs"), 1);

    const char *fresh = tpath("fresh.db");
    s = open_store(fresh, 1);
    new_run(s, "csp", 1);
    ck_assert(sibling_exists(fresh, "-wal")); /* writes go through the WAL */
    crl_store_close(s);
    ck_assert(!sibling_exists(fresh, "-wal")); /* checkpointed and removed on close */
    assert_is_crl_db(fresh);
    ck_assert_int_eq(raw_count(fresh, "SELECT count(*) FROM schema_migrations"),
                     CRL_STORE_SCHEMA_VERSION);
    (void)e;
}
END_TEST

static int keep_first_eval(const crl_eval_row *r, void *ctx) {
    crl_eval_row *out = ctx;
    if (out->run_id == 0) *out = *r;
    return 0;
}

/* A v1 file with data (made by dropping v2's column from a fresh file) is
 * migrated on open: its rows survive and read det_return as NaN; new rows
 * carry det_return. */
START_TEST(test_migrate_v1_to_v2) {
    crl_err e = {0};
    const char *path = tpath("v1.db");
    crl_store *s = open_store(path, 1);
    int64_t id = new_run(s, "ft1", 3);
    crl_eval_row row = eval_row(id, 100, 0, 0, 0.5);
    OK(crl_store_eval(s, &row, &e));
    crl_store_close(s);
    sqlite3 *db = raw_open(path, 0);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "ALTER TABLE evals DROP COLUMN det_return;"
                                  " DROP TABLE episodes;"      /* v3 */
                                  " DROP TABLE csp_decisions;" /* v4 */
                                  " DROP TABLE leases;"        /* v6 */
                                  " ALTER TABLE checkpoints DROP COLUMN crc32;"
                                  " DROP TABLE run_tags;" /* v7 */
                                  " ALTER TABLE runs DROP COLUMN name;"
                                  " DELETE FROM schema_migrations WHERE version >= 2;"
                                  " PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(raw_count(path, "PRAGMA user_version"), 1);

    s = open_store(path, 0);
    ck_assert_int_eq(raw_count(path, "PRAGMA user_version"), CRL_STORE_SCHEMA_VERSION);
    crl_eval_row got = {0};
    OK(crl_store_evals(s, id, keep_first_eval, &got, &e));
    ck_assert(got.step == 100 && got.success_rate == 0.5 && got.mean_return == 47.0);
    ck_assert(isnan(got.det_return));
    row = eval_row(id, 200, 0, 0, 0.25);
    OK(crl_store_eval(s, &row, &e));
    OK(crl_store_flush(s, &e));
    crl_store_close(s);
    ck_assert_int_eq(
        raw_count(path, "SELECT count(*) FROM evals WHERE det_return = 12.5"), 1);
}
END_TEST

START_TEST(test_migrations) {
    crl_err e = {0};
    /* A file marked as ours at version 0 (the migration array's start). */
    const char *v0 = tpath("v0.db");
    make_foreign_db(v0, "PRAGMA application_id = 1129466929;");
    ck_assert_int_eq(raw_count(v0, "PRAGMA user_version"), 0);
    crl_store *s = open_store(v0, 0);
    crl_store_close(s);
    assert_is_crl_db(v0);
    ck_assert_int_eq(raw_count(v0, "SELECT count(*) FROM schema_migrations"),
                     CRL_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(raw_count(v0, "SELECT max(version) FROM schema_migrations"),
                     CRL_STORE_SCHEMA_VERSION);

    /* Up to date: opening again runs no migration and writes nothing. */
    snapshot before = snap(v0);
    for (int i = 0; i < 2; i++) {
        s = open_store(v0, 0);
        crl_store_close(s);
    }
    assert_unchanged(v0, &before);
    ck_assert_int_eq(raw_count(v0, "SELECT count(*) FROM schema_migrations"),
                     CRL_STORE_SCHEMA_VERSION);

    /* A migration that fails half-way leaves the file exactly as it was: the
     * tables it created before failing are rolled back with it. */
    const char *bad = tpath("badv0.db");
    make_foreign_db(bad, "PRAGMA application_id = 1129466929; CREATE TABLE metrics (x);");
    before = snap(bad);
    FAILS(CRL_ECORRUPT, crl_store_open(bad, 0, &s, &e));
    ck_assert_msg(strstr(e.msg, bad) && strstr(e.msg, "migration"), "%s", e.msg);
    assert_unchanged(bad, &before);
    ck_assert_int_eq(
        raw_count(bad, "SELECT count(*) FROM sqlite_master WHERE name = 'runs'"), 0);
    ck_assert_int_eq(raw_count(bad, "PRAGMA user_version"), 0);

    /* Our id and version but a damaged schema: refused at open. */
    const char *damaged = tpath("damaged.db");
    s = open_store(damaged, 1);
    crl_store_close(s);
    make_foreign_db(damaged, "DROP TABLE checkpoints;");
    FAILS(CRL_ECORRUPT, crl_store_open(damaged, 0, &s, &e));
    ck_assert_msg(strstr(e.msg, damaged) && strstr(e.msg, "checkpoints"), "%s", e.msg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Concurrency                                                               */

enum { PROC_RUNS = 8, PROC_STEPS = 40, PROC_EVAL_TASKS = 3 };

/* One writer process: runs with tasks, evals, metrics and checkpoints.
 * Returns 0, or a line number on failure (printed to stderr). */
static int writer(const char *path, int who) {
    crl_err e = {0};
    crl_store *s = NULL;
#define W(call)                                                                          \
    do {                                                                                 \
        if ((call) != CRL_OK) {                                                          \
            fprintf(stderr, "writer %d line %d: %s\n", who, __LINE__, e.msg);            \
            crl_store_close(s);                                                          \
            return __LINE__;                                                             \
        }                                                                                \
    } while (0)
    W(crl_store_open(path, 1, &s, &e));
    for (int r = 0; r < PROC_RUNS; r++) {
        int64_t id;
        crl_kv kv[] = {{"who", NULL, who}, {"r", NULL, r}};
        W(crl_store_run_create(s, who ? "child" : "parent", "cw10",
                               (uint64_t)(who * 100 + r), kv, 2, &id, &e));
        W(crl_store_task_start(s, id, 0, "t0", 0, &e));
        for (int step = 0; step < PROC_STEPS; step++) {
            for (int t = 0; t < PROC_EVAL_TASKS; t++) {
                crl_eval_row row = eval_row(id, step, 0, t, 0.5);
                W(crl_store_eval(s, &row, &e));
            }
            W(crl_store_metric(s, id, step, "loss", step, &e));
            if (step % 10 == 9) W(crl_store_flush(s, &e));
        }
        W(crl_store_task_end(s, id, 0, PROC_STEPS, &e));
        W(crl_store_checkpoint_put(s, id, 0, PROC_STEPS, &id, sizeof id, &e));
        W(crl_store_run_set_status(s, id, "finished", &e));
    }
    crl_store_close(s);
    return 0;
#undef W
}

START_TEST(test_two_processes) {
    /* Both processes create the same, not yet existing, file and then write
     * concurrently: creation must not race and no row may be lost. */
    const char *path = tpath("shared.db");
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(100);
        _exit(writer(path, 1) ? 1 : 0);
    }
    close(go[0]);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    close(go[1]);
    int mine = writer(path, 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(mine == 0, "parent writer failed at line %d", mine);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (%d)",
                  status);

    assert_is_crl_db(path);
    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM schema_migrations"),
                     CRL_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM runs"), 2 * PROC_RUNS);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM runs WHERE method = 'child'"
                               " AND status = 'finished'"),
                     PROC_RUNS);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM evals"),
                     2 * PROC_RUNS * PROC_STEPS * PROC_EVAL_TASKS);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics"),
                     2 * PROC_RUNS * PROC_STEPS);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM checkpoints"), 2 * PROC_RUNS);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM tasks WHERE end_step = 40"),
                     2 * PROC_RUNS);
    /* Each run's config names its own process. */
    ck_assert_int_eq(q_int(db,
                           "SELECT count(*) FROM runs WHERE"
                           " json_extract(config_json, '$.who') = (method = 'child')"),
                     2 * PROC_RUNS);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_lock_gives_ebusy) {
    crl_err e = {0};
    const char *path = tpath("lock.db");
    crl_store *a = open_store(path, 1);
    int64_t id = new_run(a, "csp", 1);
    OK(crl_store_metric(a, id, 1, "before", 1, &e));
    OK(crl_store_flush(a, &e));

    setenv("CRL_BUSY_TIMEOUT_MS", "200", 1);
    crl_store *b = open_store(path, 0);

    /* Another connection holds an exclusive write transaction. */
    sqlite3 *w = raw_open(path, 0);
    raw_exec(w, "BEGIN EXCLUSIVE;"
                "INSERT INTO metrics (run_id, step, key, value)"
                " VALUES (1, 2, 'held', 2);");
    /* Opening while a writer holds the lock only reads, so it works. */
    crl_store *c = open_store(path, 0);
    crl_store_close(c);
    FAILS(CRL_EBUSY, crl_store_metric(b, id, 3, "blocked", 3, &e));
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "is locked by another process"),
                  "%s", e.msg);
    int64_t r;
    FAILS(CRL_EBUSY, crl_store_run_create(b, "ewc", "cw10", 1, NULL, 0, &r, &e));
    FAILS(CRL_EBUSY, crl_store_checkpoint_put(b, id, 0, 5, "x", 1, &e));
    OK(crl_store_flush(b, &e)); /* nothing pending, nothing to lock */
    /* Reading still works under WAL. */
    crl_run_info info;
    OK(crl_store_run_get(b, id, &info, NULL, &e));
    raw_exec(w, "COMMIT;");
    sqlite3_close(w);

    /* Lock released: b retries and succeeds; nothing was lost or duplicated. */
    OK(crl_store_metric(b, id, 3, "blocked", 3, &e));
    OK(crl_store_run_create(b, "ewc", "cw10", 1, NULL, 0, &r, &e));
    OK(crl_store_flush(b, &e));
    crl_store_close(b);
    crl_store_close(a);
    unsetenv("CRL_BUSY_TIMEOUT_MS");
    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics"), 3);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics WHERE key IN"
                               " ('before', 'held', 'blocked')"),
                     3);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM runs"), 2);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM checkpoints"), 0);
    sqlite3_close(db);
}
END_TEST

/* A batch holds the write lock. A writer that logs a row only now and then
 * must not keep it past the batch age: crl_store_tick commits an old batch
 * (and leaves a young one alone), so a second writer gets in. */
START_TEST(test_tick_releases_old_batch) {
    crl_err e = {0};
    const char *path = tpath("tick.db");
    crl_store *a = open_store(path, 1);
    int64_t id = new_run(a, "ft1", 1);
    setenv("CRL_BUSY_TIMEOUT_MS", "100", 1);
    crl_store *b = open_store(path, 0);
    OK(crl_store_metric(a, id, 1, "sparse", 1, &e)); /* opens a batch */
    OK(crl_store_tick(a, &e));                       /* young: kept */
    FAILS(CRL_EBUSY, crl_store_metric(b, id, 2, "other", 2, &e));
    usleep(2100 * 1000);
    /* Without the tick, a would hold the lock until its next batched row. */
    FAILS(CRL_EBUSY, crl_store_metric(b, id, 2, "other", 2, &e));
    OK(crl_store_tick(a, &e));
    OK(crl_store_metric(b, id, 2, "other", 2, &e));
    OK(crl_store_flush(b, &e));
    OK(crl_store_tick(NULL, &e));
    crl_store_close(b);
    crl_store_close(a);
    unsetenv("CRL_BUSY_TIMEOUT_MS");
    sqlite3 *db = raw_open(path, 1);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM metrics WHERE key IN"
                               " ('sparse', 'other')"),
                     2);
    sqlite3_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Typed reads: what the report, plots, replay, sweeps and export read       */

static void set_config_raw(const char *path, int64_t id, const char *json) {
    sqlite3 *db = raw_open(path, 0);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE runs SET config_json = '%s' WHERE id = %lld", json,
             (long long)id);
    raw_exec(db, sql);
    sqlite3_close(db);
}

static int64_t run_in(crl_store *s, const char *scenario, uint64_t seed, const crl_kv *kv,
                      int n_kv, const char *status) {
    crl_err e = {0};
    int64_t id = -1;
    OK(crl_store_run_create(s, "ewc", scenario, seed, kv, n_kv, &id, &e));
    if (status) OK(crl_store_run_set_status(s, id, status, &e));
    return id;
}

START_TEST(test_typed_runs) {
    crl_err e = {0};
    const char *path = tpath("typed_runs.db");
    crl_store *s = open_store(path, 1);
    crl_kv spt400 = {"steps_per_task", NULL, 400};
    crl_kv spt_text = {"steps_per_task", "400", 0};
    crl_kv spt_frac = {"steps_per_task", NULL, 2.5};
    int64_t a = run_in(s, "t1", 11, &spt400, 1, "finished");
    int64_t b = run_in(s, "t1", 12, NULL, 0, "finished");
    int64_t c = run_in(s, "t2", UINT64_MAX, &spt_text, 1, "finished");
    int64_t d = run_in(s, "t1", 14, NULL, 0, NULL); /* running */
    int64_t f1 = run_in(s, "t1", 15, NULL, 0, "failed");
    int64_t f2 = run_in(s, "t2", 16, NULL, 0, "failed");
    int64_t in = run_in(s, "t2", 17, NULL, 0, "interrupted");
    int64_t h = run_in(s, "t1", 18, NULL, 0, "finished");
    int64_t k = run_in(s, "t1", 19, &spt_frac, 1, "finished");
    (void)d, (void)f1, (void)f2, (void)in;
    /* Windows: a 0..300; b's lowest idx is inserted second, 0..500; c never ends. */
    OK(crl_store_task_start(s, a, 0, "push", 0, &e));
    OK(crl_store_task_end(s, a, 0, 300, &e));
    OK(crl_store_task_start(s, b, 1, "reach", 500, &e));
    OK(crl_store_task_end(s, b, 1, 650, &e));
    OK(crl_store_task_start(s, b, 0, "push", 0, &e));
    OK(crl_store_task_end(s, b, 0, 500, &e));
    OK(crl_store_task_start(s, c, 0, "push", 0, &e));
    set_config_raw(path, h, "not json {");

    crl_finished_run *runs = NULL;
    int n = -1;
    OK(crl_store_finished_runs(s, NULL, &runs, &n, &e));
    ck_assert_int_eq(n, 5);
    const int64_t ids[] = {a, b, c, h, k};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(runs[i].id, ids[i]);
    ck_assert_str_eq(runs[0].method, "ewc");
    ck_assert_str_eq(runs[0].scenario, "t1");
    ck_assert_uint_eq(runs[0].seed, 11);
    ck_assert(runs[0].has_spt && runs[0].spt == 400 && runs[0].first_window == 300);
    ck_assert(!runs[1].has_spt && isnan(runs[1].spt) && runs[1].first_window == 500);
    /* A string is not a number; a task that never ended has no window. */
    ck_assert_str_eq(runs[2].scenario, "t2");
    ck_assert(runs[2].seed == UINT64_MAX);
    ck_assert(!runs[2].has_spt && runs[2].first_window == -1);
    /* config_json that is not JSON reads as no steps_per_task, not an error. */
    ck_assert(!runs[3].has_spt && runs[3].first_window == -1);
    ck_assert(runs[4].has_spt && runs[4].spt == 2.5);
    crl_store_finished_runs_free(runs);

    OK(crl_store_finished_runs(s, "t1", &runs, &n, &e));
    ck_assert_int_eq(n, 4);
    ck_assert(runs[0].id == a && runs[1].id == b && runs[2].id == h && runs[3].id == k);
    crl_store_finished_runs_free(runs);
    OK(crl_store_finished_runs(s, "nowhere", &runs, &n, &e));
    ck_assert_int_eq(n, 0);
    crl_store_finished_runs_free(runs);

    crl_status_count *cnt = NULL;
    OK(crl_store_unfinished_runs(s, NULL, &cnt, &n, &e));
    ck_assert_int_eq(n, 3);
    ck_assert(!strcmp(cnt[0].status, "failed") && cnt[0].count == 2);
    ck_assert(!strcmp(cnt[1].status, "interrupted") && cnt[1].count == 1);
    ck_assert(!strcmp(cnt[2].status, "running") && cnt[2].count == 1);
    crl_store_status_counts_free(cnt);
    OK(crl_store_unfinished_runs(s, "t2", &cnt, &n, &e));
    ck_assert_int_eq(n, 2);
    ck_assert(!strcmp(cnt[0].status, "failed") && cnt[0].count == 1);
    ck_assert(!strcmp(cnt[1].status, "interrupted") && cnt[1].count == 1);
    crl_store_status_counts_free(cnt);

    FAILS(CRL_EINVAL, crl_store_finished_runs(s, NULL, NULL, &n, &e));
    FAILS(CRL_EINVAL, crl_store_unfinished_runs(NULL, NULL, &cnt, &n, &e));
    crl_store_close(s);
}
END_TEST

START_TEST(test_typed_tasks_checkpoints) {
    crl_err e = {0};
    crl_store *s = open_store(tpath("typed_tasks.db"), 1);
    int64_t id = new_run(s, "ewc", 1), empty = new_run(s, "ewc", 2);
    OK(crl_store_task_start(s, id, 2, "window-open", 2000, &e));
    OK(crl_store_task_start(s, id, 0, "push", 0, &e));
    OK(crl_store_task_end(s, id, 0, 1000, &e));
    OK(crl_store_task_start(s, id, 1, "reach", 1000, &e));
    OK(crl_store_task_end(s, id, 1, 2000, &e));
    crl_task_row *t = NULL;
    int n = -1;
    OK(crl_store_tasks(s, id, &t, &n, &e));
    ck_assert_int_eq(n, 3);
    ck_assert(t[0].idx == 0 && !strcmp(t[0].name, "push") && t[0].start_step == 0 &&
              t[0].end_step == 1000);
    ck_assert(t[1].idx == 1 && !strcmp(t[1].name, "reach") && t[1].start_step == 1000 &&
              t[1].end_step == 2000);
    /* Not ended: NULL in the table, -1 here. */
    ck_assert(t[2].idx == 2 && !strcmp(t[2].name, "window-open") &&
              t[2].start_step == 2000 && t[2].end_step == -1);
    crl_store_tasks_free(t);
    OK(crl_store_tasks(s, empty, &t, &n, &e));
    ck_assert(n == 0 && t == NULL);
    t = (crl_task_row *)1;
    n = 7;
    FAILS(CRL_ENOTFOUND, crl_store_tasks(s, empty + 1, &t, &n, &e));
    ck_assert(n == 0 && t == NULL);

    int64_t c = -1;
    OK(crl_store_checkpoint_put(s, id, 0, 1000, "a", 1, &e));
    OK(crl_store_checkpoint_put(s, id, 1, 2000, "bb", 2, &e));
    OK(crl_store_checkpoint_count(s, id, &c, &e));
    ck_assert_int_eq(c, 2);
    OK(crl_store_checkpoint_count(s, empty, &c, &e));
    ck_assert_int_eq(c, 0);
    FAILS(CRL_ENOTFOUND, crl_store_checkpoint_count(s, empty + 1, &c, &e));
    crl_store_close(s);
}
END_TEST

typedef struct {
    int n;
    int64_t step[16];
    char key[16][32];
    double value[16];
    int stop_after;
} metric_rows;

static int take_metric(const crl_metric_row *m, void *ctx) {
    metric_rows *r = ctx;
    if (r->n < 16) {
        r->step[r->n] = m->step;
        snprintf(r->key[r->n], sizeof r->key[r->n], "%s", m->key);
        r->value[r->n] = m->value;
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

START_TEST(test_typed_metrics) {
    crl_err e = {0};
    crl_store *s = open_store(tpath("typed_metrics.db"), 1);
    int64_t id = new_run(s, "l2m", 1), other = new_run(s, "l2m", 2);
    /* Written out of step order, with rows the reads must leave out. */
    OK(crl_store_metric(s, id, 300, "model/params", 3000, &e));
    OK(crl_store_metric(s, id, 100, "model/params", 1000, &e));
    OK(crl_store_metric(s, id, 200, "model/params", 2000, &e));
    OK(crl_store_metric(s, id, 300, "wall_time_s", 9.5, &e));
    OK(crl_store_metric(s, id, 150, "wall_time_s", 4.25, &e));
    OK(crl_store_metric(s, id, 50, "loss", 1, &e));
    OK(crl_store_metric(s, other, 400, "model/params", 7, &e));
    OK(crl_store_metric(s, id, 5, "nan_last", 1, &e));
    OK(crl_store_metric(s, id, 6, "nan_last", NAN, &e));
    const char *route[][2] = {{"l2m/route_acc/10", "0.1"},
                              {"l2m/route_acc/2", "0.2"},
                              {"l2m/route_acc/0", "0.3"}};
    for (int i = 0; i < 3; i++) {
        OK(crl_store_metric(s, id, 100, route[i][0], 0.9, &e));
        OK(crl_store_metric(s, id, 300, route[i][0], atof(route[i][1]), &e));
    }
    OK(crl_store_metric(s, id, 200, "l2m/route_acc/5", 0.5,
                        &e)); /* not at the last step */
    OK(crl_store_metric(s, other, 900, "l2m/route_acc/0", 1, &e));

    const char *keys[] = {"model/params", "wall_time_s"};
    metric_rows r = {0};
    OK(crl_store_metrics(s, id, keys, 2, take_metric, &r, &e));
    ck_assert_int_eq(r.n, 5);
    const int64_t steps[] = {100, 150, 200, 300, 300};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(r.step[i], steps[i]);
    ck_assert(!strcmp(r.key[0], "model/params") && r.value[0] == 1000);
    ck_assert(!strcmp(r.key[1], "wall_time_s") && r.value[1] == 4.25);
    ck_assert(!strcmp(r.key[2], "model/params") && r.value[2] == 2000);
    for (int i = 3; i < 5; i++)
        ck_assert(!strcmp(r.key[i], "model/params") ? r.value[i] == 3000
                                                    : r.value[i] == 9.5);
    /* A non-zero return stops. */
    metric_rows stop = {.stop_after = 2};
    OK(crl_store_metrics(s, id, keys, 2, take_metric, &stop, &e));
    ck_assert_int_eq(stop.n, 2);
    const char *nan_key[] = {"nan_last"};
    metric_rows nr = {0};
    OK(crl_store_metrics(s, id, nan_key, 1, take_metric, &nr, &e));
    ck_assert(nr.n == 2 && nr.value[0] == 1 && isnan(nr.value[1]));

    const char *last_keys[] = {"model/params", "wall_time_s", "absent", "nan_last"};
    double v[4] = {0, 0, 0, 0};
    OK(crl_store_metrics_last(s, id, last_keys, 4, v, &e));
    ck_assert(v[0] == 3000 && v[1] == 9.5 && isnan(v[2]));
    ck_assert(isnan(v[3])); /* the NULL at the highest step, not the 1 before it */
    OK(crl_store_metrics_last(s, other, keys, 2, v, &e));
    ck_assert(v[0] == 7 && isnan(v[1]));

    /* The family at its highest step (300), in numeric order of the suffix. */
    metric_rows fr = {0};
    OK(crl_store_metrics_family_last(s, id, "l2m/route_acc/", take_metric, &fr, &e));
    ck_assert_int_eq(fr.n, 3);
    ck_assert_str_eq(fr.key[0], "l2m/route_acc/0");
    ck_assert_str_eq(fr.key[1], "l2m/route_acc/2");
    ck_assert_str_eq(fr.key[2], "l2m/route_acc/10");
    ck_assert(fr.value[0] == 0.3 && fr.value[1] == 0.2 && fr.value[2] == 0.1);
    ck_assert(fr.step[0] == 300 && fr.step[2] == 300);
    metric_rows none = {0};
    OK(crl_store_metrics_family_last(s, id, "nothing/", take_metric, &none, &e));
    ck_assert_int_eq(none.n, 0);

    int64_t missing = other + 1;
    FAILS(CRL_ENOTFOUND, crl_store_metrics(s, missing, keys, 2, take_metric, &r, &e));
    FAILS(CRL_ENOTFOUND, crl_store_metrics_last(s, missing, keys, 2, v, &e));
    FAILS(CRL_ENOTFOUND,
          crl_store_metrics_family_last(s, missing, "l2m/", take_metric, &r, &e));
    FAILS(CRL_EINVAL, crl_store_metrics(s, id, keys, 0, take_metric, &r, &e));
    FAILS(CRL_EINVAL,
          crl_store_metrics(s, id, keys, CRL_STORE_MAX_KEYS + 1, take_metric, &r, &e));
    FAILS(CRL_EINVAL, crl_store_metrics_last(s, id, keys, 0, v, &e));
    crl_store_close(s);
}
END_TEST

typedef struct {
    int n;
    crl_csp_decision_row row[4];
    char alpha[4][64];
    char crit[4][16];
} csp_rows;

static int take_csp(const crl_csp_decision_row *d, void *ctx) {
    csp_rows *c = ctx;
    if (c->n < 4) {
        c->row[c->n] = *d;
        snprintf(c->alpha[c->n], sizeof c->alpha[c->n], "%s", d->alpha_json);
        c->row[c->n].alpha_json = NULL;
        snprintf(c->crit[c->n], sizeof c->crit[c->n], "%s",
                 d->criterion ? d->criterion : "(null)");
        c->row[c->n].criterion = NULL;
    }
    c->n++;
    return 0;
}

START_TEST(test_typed_csp_decisions) {
    crl_err e = {0};
    crl_store *s = open_store(tpath("typed_csp.db"), 1);
    int64_t id = new_run(s, "csp", 1), none = new_run(s, "csp", 2);
    const float a0[1] = {1.0f}, a1[2] = {0.25f, 0.75f};
    crl_csp_row r1 = {.run_id = id,
                      .task_idx = 1,
                      .step = 2000,
                      .kept = 1,
                      .best_new = 5.5,
                      .best_old = -3.25,
                      .n_anchors = 2,
                      .alpha = a1,
                      .n_alpha = 2};
    crl_csp_row r0 = {.run_id = id,
                      .task_idx = 0,
                      .step = 1000,
                      .kept = 0,
                      .best_new = NAN,
                      .best_old = NAN,
                      .n_anchors = 1,
                      .alpha = a0,
                      .n_alpha = 1};
    OK(crl_store_csp_decision(s, &r1, &e)); /* task 1 first: read back in task order */
    OK(crl_store_csp_decision(s, &r0, &e));
    csp_rows c = {0};
    OK(crl_store_csp_decisions(s, id, take_csp, &c, &e));
    ck_assert_int_eq(c.n, 2);
    const crl_csp_decision_row *d0 = &c.row[0], *d1 = &c.row[1];
    ck_assert(d0->run_id == id && d0->task_idx == 0 && d0->step == 1000 &&
              d0->kept == 0 && d0->n_anchors == 1);
    ck_assert(isnan(d0->best_new) && isnan(d0->best_old));
    ck_assert_str_eq(c.alpha[0], "[1]");
    ck_assert(d1->task_idx == 1 && d1->step == 2000 && d1->kept == 1 &&
              d1->n_anchors == 2 && d1->best_new == 5.5 && d1->best_old == -3.25);
    ck_assert_str_eq(c.alpha[1], "[0.25,0.75]");
    /* Rows without a criterion (the old decision) read back v5 as NULL. */
    ck_assert_str_eq(c.crit[0], "(null)");
    ck_assert(d1->rollouts == 0 && d1->check_kept == -1 && isnan(d1->new_success) &&
              isnan(d1->q_old) && isnan(d1->wall_s) && isnan(d1->check_new));
    /* A v5 row: every field round-trips (NaN check scores as NULL). */
    const float a2[2] = {0.0f, 1.0f};
    crl_csp_row r2 = {.run_id = id,
                      .task_idx = 2,
                      .step = 3000,
                      .kept = 0,
                      .best_new = 7.5,
                      .best_old = 8.5,
                      .n_anchors = 2,
                      .alpha = a2,
                      .n_alpha = 2,
                      .criterion = "success",
                      .rollouts = 10,
                      .new_success = 0.3,
                      .old_success = 0.6,
                      .q_new = -1.5,
                      .q_old = 2.25,
                      .check_kept = 1,
                      .check_new = 0.75,
                      .check_old = NAN,
                      .wall_s = 4.5};
    OK(crl_store_csp_decision(s, &r2, &e));
    csp_rows c2 = {0};
    OK(crl_store_csp_decisions(s, id, take_csp, &c2, &e));
    ck_assert_int_eq(c2.n, 3);
    const crl_csp_decision_row *d2 = &c2.row[2];
    ck_assert_str_eq(c2.crit[2], "success");
    ck_assert_str_eq(c2.crit[1], "(null)");
    ck_assert(d2->rollouts == 10 && d2->new_success == 0.3 && d2->old_success == 0.6 &&
              d2->q_new == -1.5 && d2->q_old == 2.25 && d2->check_kept == 1 &&
              d2->check_new == 0.75 && isnan(d2->check_old) && d2->wall_s == 4.5);
    r2.criterion = "bogus";
    FAILS(CRL_EINVAL, crl_store_csp_decision(s, &r2, &e));
    csp_rows z = {0};
    OK(crl_store_csp_decisions(s, none, take_csp, &z, &e));
    ck_assert_int_eq(z.n, 0);
    FAILS(CRL_ENOTFOUND, crl_store_csp_decisions(s, none + 1, take_csp, &z, &e));
    FAILS(CRL_EINVAL, crl_store_csp_decisions(s, id, NULL, NULL, &e));
    crl_store_close(s);
}
END_TEST

typedef struct {
    int n;
    char key[8][16];
    crl_json_value v[8];
    char text[8][32];
} json_rows;

static int take_member(const char *key, const crl_json_value *v, void *ctx) {
    json_rows *j = ctx;
    if (j->n < 8) {
        snprintf(j->key[j->n], sizeof j->key[j->n], "%s", key);
        j->v[j->n] = *v;
        snprintf(j->text[j->n], sizeof j->text[j->n], "%s", v->text ? v->text : "<null>");
        j->v[j->n].text = NULL;
    }
    j->n++;
    return 0;
}

static int take_values(const crl_json_value *v, void *ctx) {
    json_rows *j = ctx;
    for (int i = 0; i < 5; i++) {
        j->v[i] = v[i];
        snprintf(j->text[i], sizeof j->text[i], "%s", v[i].text ? v[i].text : "<null>");
        j->v[i].text = NULL;
    }
    j->n = 5;
    return 0;
}

START_TEST(test_json_reads) {
    crl_err e = {0};
    crl_store *s = open_store(tpath("json.db"), 1);
    const char *doc = "{\"a\":12,\"b\":2.5,\"c\":\"7x\",\"d\":null,\"e\":[1,2],"
                      "\"f\":true,\"a b\":\"sp\"}";
    json_rows j = {0};
    OK(crl_store_json_each(s, doc, take_member, &j, &e));
    ck_assert_int_eq(j.n, 7);
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "a b"};
    for (int i = 0; i < 7; i++) ck_assert_str_eq(j.key[i], keys[i]);
    ck_assert(j.v[0].type == CRL_JSON_INT && j.v[0].i == 12 && j.v[0].num == 12);
    ck_assert_str_eq(j.text[0], "12");
    ck_assert(j.v[1].type == CRL_JSON_REAL && j.v[1].num == 2.5 && j.v[1].i == 2);
    ck_assert_str_eq(j.text[1], "2.5");
    /* SQL's conversions: text "7x" is 7 as an integer. */
    ck_assert(j.v[2].type == CRL_JSON_TEXT && j.v[2].i == 7);
    ck_assert_str_eq(j.text[2], "7x");
    ck_assert(j.v[3].type == CRL_JSON_NULL && j.v[3].i == 0);
    ck_assert_str_eq(j.text[3], "<null>");
    ck_assert(j.v[4].type == CRL_JSON_NULL); /* an array member: no atom */
    ck_assert(j.v[5].type == CRL_JSON_INT && j.v[5].i == 1);
    ck_assert_str_eq(j.text[6], "sp");

    json_rows empty = {0};
    OK(crl_store_json_each(s, NULL, take_member, &empty, &e));
    ck_assert_int_eq(empty.n, 0);
    FAILS(CRL_ECORRUPT, crl_store_json_each(s, "{\"a\":", take_member, &empty, &e));

    const char *paths[] = {"$.e[1]", "$.missing", "$.e", "$.\"a b\"", "$.b"};
    json_rows x = {0};
    OK(crl_store_json_extract(s, doc, paths, 5, take_values, &x, &e));
    ck_assert(x.v[0].type == CRL_JSON_INT && x.v[0].i == 2);
    ck_assert(x.v[1].type == CRL_JSON_NULL);
    ck_assert_str_eq(x.text[1], "<null>");
    ck_assert(x.v[2].type == CRL_JSON_TEXT);
    ck_assert_str_eq(x.text[2], "[1,2]");
    ck_assert_str_eq(x.text[3], "sp");
    ck_assert(x.v[4].type == CRL_JSON_REAL && x.v[4].num == 2.5);
    FAILS(CRL_ECORRUPT, crl_store_json_extract(s, "[1,", paths, 5, take_values, &x, &e));
    FAILS(CRL_EINVAL, crl_store_json_extract(s, doc, paths, 0, take_values, &x, &e));

    /* A run's config reads back exactly as written. */
    crl_kv kv[] = {{"lr", NULL, 3e-4}, {"third", NULL, 1.0 / 3.0}, {"env", "ant", 0}};
    int64_t id;
    OK(crl_store_run_create(s, "sac", "ant", 1, kv, 3, &id, &e));
    char *cfg = NULL;
    OK(crl_store_run_get(s, id, NULL, &cfg, &e));
    json_rows r = {0};
    OK(crl_store_json_each(s, cfg, take_member, &r, &e));
    free(cfg);
    ck_assert_int_eq(r.n, 3);
    ck_assert(r.v[0].num == 3e-4 && r.v[1].num == 1.0 / 3.0);
    ck_assert_str_eq(r.text[2], "ant");
    crl_store_close(s);
}
END_TEST

START_TEST(test_json_doc) {
    crl_err e = {0};
    crl_json_doc *d = NULL;
    OK(crl_json_doc_create("{\"rows\":[],\"notes\":[]}", &d, &e));
    crl_json_member ci[2] = {{.key = "m", .type = CRL_JSON_REAL, .num = 1},
                             {.key = "l", .type = CRL_JSON_REAL, .num = -2.5}};
    crl_json_member m[] = {
        {.key = "i", .type = CRL_JSON_INT, .i = 7},
        {.key = "r", .type = CRL_JSON_REAL, .num = 0.1},
        {.key = "nan", .type = CRL_JSON_REAL, .num = NAN},
        {.key = "inf", .type = CRL_JSON_REAL, .num = INFINITY},
        {.key = "t", .type = CRL_JSON_TEXT, .text = NULL},
        {.key = "e", .type = CRL_JSON_TEXT, .text = ""},
        {.key = "o", .type = CRL_JSON_OBJECT, .members = ci, .n_members = 2},
        {.key = "z", .type = CRL_JSON_NULL},
    };
    crl_json_member row = {.type = CRL_JSON_OBJECT, .members = m, .n_members = 8};
    OK(crl_json_doc_append(d, "$.rows", &row, &e));
    crl_json_member note = {.type = CRL_JSON_TEXT, .text = "x \"q\""};
    OK(crl_json_doc_append(d, "$.notes", &note, &e));
    const char *want =
        "{\"rows\":[{\"i\":7,\"r\":0.1,\"nan\":null,\"inf\":null,\"t\":null,"
        "\"e\":\"\",\"o\":{\"m\":1.0,\"l\":-2.5},\"z\":null}],"
        "\"notes\":[\"x \\\"q\\\"\"]}";
    ck_assert_str_eq(crl_json_doc_text(d), want);
    crl_json_member broken = {.type = CRL_JSON_OBJECT, .members = NULL, .n_members = 1};
    FAILS(CRL_EINVAL, crl_json_doc_append(d, "$.rows", &broken, &e));
    ck_assert_str_eq(crl_json_doc_text(d), want); /* a failed append changes nothing */
    FAILS(CRL_EINVAL, crl_json_doc_append(NULL, "$.rows", &row, &e));
    crl_json_doc_free(d);
    crl_json_doc_free(NULL);
}
END_TEST

static int count_finished(crl_store *s) {
    crl_err e = {0};
    crl_finished_run *runs = NULL;
    int n = -1;
    OK(crl_store_finished_runs(s, NULL, &runs, &n, &e));
    crl_store_finished_runs_free(runs);
    return n;
}

START_TEST(test_read_snapshot) {
    crl_err e = {0};
    const char *path = tpath("snap.db");
    crl_store *a = open_store(path, 1);
    crl_store *b = open_store(path, 0);
    int began = crl_store_read_begin(a);
    ck_assert_int_eq(began, 1);
    ck_assert_int_eq(count_finished(a), 0); /* the snapshot starts at the first read */
    int64_t id = run_in(b, "t1", 1, NULL, 0, "finished");
    ck_assert_int_eq(count_finished(b), 1);
    ck_assert_int_eq(count_finished(a), 0); /* a still reads its snapshot */
    crl_store_read_end(a, began);
    ck_assert_int_eq(count_finished(a), 1);
    /* Inside a pending batch no snapshot begins, and the batch survives. */
    OK(crl_store_metric(a, id, 1, "loss", 1, &e));
    ck_assert_int_eq(crl_store_read_begin(a), 0);
    crl_store_read_end(a, 0);
    ck_assert_int_eq(count_metrics(a, id, "loss"), 1);
    OK(crl_store_flush(a, &e));
    ck_assert_int_eq(raw_count(path, "SELECT count(*) FROM metrics"), 1);
    ck_assert_int_eq(crl_store_read_begin(NULL), 0);
    crl_store_close(b);
    crl_store_close(a);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *store_suite(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_run_config_roundtrip);
    tcase_add_test(tc, test_run_status);
    tcase_add_test(tc, test_tasks);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_csp_decisions);
    tcase_add_test(tc, test_evals);
    tcase_add_test(tc, test_checkpoints);
    tcase_add_test(tc, test_runs_listing);
    suite_add_tcase(s, tc);

    tc = tcase_create("typed reads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_typed_runs);
    tcase_add_test(tc, test_typed_tasks_checkpoints);
    tcase_add_test(tc, test_typed_metrics);
    tcase_add_test(tc, test_typed_csp_decisions);
    tcase_add_test(tc, test_json_reads);
    tcase_add_test(tc, test_json_doc);
    tcase_add_test(tc, test_read_snapshot);
    suite_add_tcase(s, tc);

    tc = tcase_create("batching");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_batch_visibility);
    tcase_add_test(tc, test_batch_autocommit_rows);
    tcase_add_test(tc, test_batch_autocommit_time);
    tcase_add_test(tc, test_own_writes_commit_batch);
    tcase_add_test(tc, test_crash_loses_only_pending_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("identity");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refuse_random_bytes);
    tcase_add_test(tc, test_refuse_corrupt_page);
    tcase_add_test(tc, test_refuse_foreign_sqlite);
    tcase_add_test(tc, test_refuse_newer_version);
    tcase_add_test(tc, test_open_missing);
    tcase_add_test(tc, test_initialise_empty);
    tcase_add_test(tc, test_migrations);
    tcase_add_test(tc, test_migrate_v1_to_v2);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_processes);
    tcase_add_test(tc, test_lock_gives_ebusy);
    tcase_add_test(tc, test_tick_releases_old_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
