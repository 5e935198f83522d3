/* Tests of crl datasets (include/crl/dataset.h, docs/dataset.md).
 *
 * (a) Round trip: hand-made episodes with awkward float bit patterns come
 *     back bit for bit, and the flattened transitions are the ones computed
 *     by hand (next_obs is the following row, done only from terminal).
 * (c) Corrupt and mismatched files: random bytes, a run store, another
 *     program's database, a newer dataset are refused and left untouched; a
 *     blob cut short by an UPDATE, a wrong obs_dim and an unknown task give
 *     clear errors.
 * (b) Collected episodes (scripted + noise, random) replay: each record
 *     through crl_episode_verify, and the stored observations, rewards and
 *     flags by stepping a fresh env from reset(seed) with the stored actions,
 *     bit for bit; the stored actions are the scripted ones plus the noise,
 *     clipped after it, recomputed here from the same generator.
 * The CLI refuses bad input with one line and exit 2 and writes nothing,
 * and stops on Ctrl-C with what it committed.
 * The file is inspected through independent raw sqlite3 connections. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "crl/collect.h"
#include "crl/dataset.h"
#include "crl/env.h"
#include "crl/episode.h"
#include "crl/policy.h"
#include "crl/store.h"

#include <check.h>
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

#include "malloc_count.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static char g_dir[64];
static char g_path[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_dataset_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    unsetenv("CRL_BUSY_TIMEOUT_MS");
}

static void teardown(void) {
    if (g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

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
        ck_assert_msg(!strchr(e.msg, '\n'), "message is not one line: %s", e.msg);       \
    } while (0)

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

static int sibling_exists(const char *path, const char *suffix) {
    char p[300];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return access(p, F_OK) == 0;
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

static crl_dataset *open_ds(const char *path, int create) {
    crl_err e = {0};
    crl_dataset *d = NULL;
    int rc = crl_dataset_open(path, create, &d, &e);
    ck_assert_msg(rc == CRL_OK && d, "open %s: %d %s", path, rc, e.msg);
    return d;
}

static sqlite3 *raw_open(const char *path) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
        SQLITE_OK);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A hand-made episode: T steps, values that differ in every element and
 * include bit patterns a lossy path would change (-0, a subnormal, a NaN
 * with a payload, an infinity, the largest float). */
typedef struct {
    crl_ds_episode ep;
    float obs[64], act[32], reward[8];
    unsigned char flags[8];
    unsigned char record[40];
} hand_ep;

static void make_ep(hand_ep *h, const char *task, int T, int od, int ad, float base,
                    unsigned last_flags, int with_record) {
    ck_assert(T <= 8 && (T + 1) * od <= 64 && T * ad <= 32);
    memset(h, 0, sizeof *h);
    for (int i = 0; i < (T + 1) * od; i++) h->obs[i] = base + 0.25f * (float)i;
    for (int i = 0; i < T * ad; i++) h->act[i] = -base + 0.125f * (float)i;
    for (int t = 0; t < T; t++) h->reward[t] = base * 0.5f + (float)t;
    h->obs[0] = -0.0f;
    h->obs[1] = bits_f32(0x00000001u);                 /* smallest subnormal */
    h->act[0] = bits_f32(0x7fc12345u);                 /* NaN with a payload */
    if (T * ad > 1) h->act[1] = bits_f32(0x7f7fffffu); /* FLT_MAX */
    h->reward[0] = INFINITY;
    for (int t = 0; t + 1 < T; t++) h->flags[t] = (t == 1) ? CRL_DS_SUCCESS : 0;
    h->flags[T - 1] = (unsigned char)last_flags;
    for (size_t i = 0; i < sizeof h->record; i++)
        h->record[i] = (unsigned char)(i * 7 + T);
    h->ep.task = task;
    h->ep.model_hash = "0123456789abcdef";
    h->ep.mujoco_version = "2.2.2";
    h->ep.source = "scripted+noise 0.1";
    h->ep.seed = 0xfedcba9876543210ull; /* above INT64_MAX: the bits survive */
    h->ep.length = T;
    h->ep.obs_dim = od;
    h->ep.act_dim = ad;
    h->ep.ret = 1.0 / 3.0;
    h->ep.success = (last_flags & CRL_DS_SUCCESS) != 0 || T > 2;
    h->ep.obs = h->obs;
    h->ep.act = h->act;
    h->ep.reward = h->reward;
    h->ep.flags = h->flags;
    h->ep.record = with_record ? h->record : NULL;
    h->ep.record_n = with_record ? sizeof h->record : 0;
}

static void assert_same_episode(const crl_ds_episode *a, const crl_ds_episode *b) {
    ck_assert_str_eq(a->task, b->task);
    ck_assert_str_eq(a->model_hash, b->model_hash);
    ck_assert_str_eq(a->mujoco_version, b->mujoco_version);
    ck_assert_str_eq(a->source, b->source);
    ck_assert(a->seed == b->seed);
    ck_assert_int_eq(a->length, b->length);
    ck_assert_int_eq(a->obs_dim, b->obs_dim);
    ck_assert_int_eq(a->act_dim, b->act_dim);
    ck_assert(memcmp(&a->ret, &b->ret, sizeof a->ret) == 0);
    ck_assert_int_eq(a->success, b->success);
    size_t T = (size_t)a->length;
    ck_assert(memcmp(a->obs, b->obs, (T + 1) * (size_t)a->obs_dim * 4) == 0);
    ck_assert(memcmp(a->act, b->act, T * (size_t)a->act_dim * 4) == 0);
    ck_assert(memcmp(a->reward, b->reward, T * 4) == 0);
    ck_assert(memcmp(a->flags, b->flags, T) == 0);
    ck_assert_uint_eq(a->record_n, b->record_n);
    if (a->record_n)
        ck_assert(memcmp(a->record, b->record, a->record_n) == 0);
    else
        ck_assert_ptr_null(b->record);
}

/* ------------------------------------------------------------------------ */
/* (a) Round trip                                                            */

START_TEST(test_roundtrip) {
    crl_err e = {0};
    const char *path = tpath("rt.db");
    hand_ep h[3];
    make_ep(&h[0], "reach", 3, 4, 2, 1.5f, CRL_DS_TERMINAL | CRL_DS_SUCCESS, 1);
    make_ep(&h[1], "push", 2, 5, 3, -7.0f, CRL_DS_TRUNCATED, 0);
    make_ep(&h[2], "reach", 4, 4, 2, 100.0f, CRL_DS_TRUNCATED, 1);
    crl_dataset *d = open_ds(path, 1);
    for (int i = 0; i < 3; i++) OK(crl_dataset_add(d, &h[i].ep, &e));
    crl_dataset_close(d);

    /* Reopen read-only-style (create = 0) and read everything back. */
    d = open_ds(path, 0);
    int64_t *ids = NULL;
    int n = 0;
    OK(crl_dataset_episode_ids(d, "reach", &ids, &n, &e));
    ck_assert_int_eq(n, 2);
    ck_assert(ids[0] < ids[1]);
    const int which[2] = {0, 2};
    for (int i = 0; i < 2; i++) {
        crl_ds_episode got;
        OK(crl_dataset_episode(d, ids[i], &got, &e));
        ck_assert(got.id == ids[i]);
        assert_same_episode(&h[which[i]].ep, &got);
        crl_ds_episode_free(&got);
    }
    free(ids);
    OK(crl_dataset_episode_ids(d, "push", &ids, &n, &e));
    ck_assert_int_eq(n, 1);
    crl_ds_episode got;
    OK(crl_dataset_episode(d, ids[0], &got, &e));
    assert_same_episode(&h[1].ep, &got);
    crl_ds_episode_free(&got);
    crl_ds_episode_free(&got); /* twice: safe on the zeroed struct */
    free(ids);
    OK(crl_dataset_episode_ids(d, "nothing", &ids, &n, &e));
    ck_assert_int_eq(n, 0);
    free(ids);
    FAILS(CRL_ENOTFOUND, crl_dataset_episode(d, 999, &got, &e));

    /* The summary, per task in first-seen order, against hand counts. */
    crl_ds_task_summary *sum = NULL;
    OK(crl_dataset_summary(d, &sum, &n, &e));
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(sum[0].task, "reach");
    ck_assert_str_eq(sum[1].task, "push");
    ck_assert_int_eq(sum[0].episodes, 2);
    ck_assert_int_eq(sum[0].steps, 3 + 4);
    ck_assert_int_eq(sum[0].obs_dim, 4);
    ck_assert_int_eq(sum[0].act_dim, 2);
    ck_assert_int_eq(sum[1].episodes, 1);
    ck_assert_int_eq(sum[1].steps, 2);
    ck_assert_int_eq(sum[1].obs_dim, 5);
    ck_assert_int_eq(sum[1].act_dim, 3);
    ck_assert_double_eq_tol(sum[0].success_rate, 1.0, 1e-12);
    ck_assert_double_eq_tol(sum[1].success_rate, 0.0, 1e-12);
    ck_assert_double_eq_tol(sum[0].mean_return, 1.0 / 3.0, 1e-12);
    ck_assert_str_eq(sum[0].model_hash, "0123456789abcdef");
    /* reach: obs (4 + 5) * 4 * 4, act (3 + 4) * 2 * 4, reward 7 * 4, flags 7,
     * two records of 40. */
    ck_assert_int_eq(sum[0].bytes, 9 * 16 + 7 * 8 + 28 + 7 + 80);
    ck_assert_int_eq(sum[1].bytes, 3 * 5 * 4 + 2 * 3 * 4 + 8 + 2);
    free(sum);
    crl_dataset_close(d);
}
END_TEST

START_TEST(test_transitions) {
    crl_err e = {0};
    const char *path = tpath("tr.db");
    hand_ep h[3];
    make_ep(&h[0], "reach", 3, 4, 2, 1.5f, CRL_DS_TERMINAL | CRL_DS_SUCCESS, 1);
    make_ep(&h[1], "push", 2, 5, 3, -7.0f, CRL_DS_TERMINAL, 0);
    make_ep(&h[2], "reach", 4, 4, 2, 100.0f, CRL_DS_TRUNCATED, 1);
    /* Step 1 of episode 2 carries the success bit only: not done. */
    crl_dataset *d = open_ds(path, 1);
    for (int i = 0; i < 3; i++) OK(crl_dataset_add(d, &h[i].ep, &e));
    /* Readable before the batch is committed, by the writer itself. */
    crl_ds_transitions tr;
    OK(crl_dataset_transitions(d, "reach", 4, 2, &tr, &e));
    ck_assert_int_eq(tr.n, 7);
    ck_assert_int_eq(tr.obs_dim, 4);
    ck_assert_int_eq(tr.act_dim, 2);
    /* Row r: episode 0 steps 0..2, then episode 2 steps 0..3. */
    int row = 0;
    for (int k = 0; k < 2; k++) {
        const hand_ep *x = &h[k == 0 ? 0 : 2];
        for (int t = 0; t < x->ep.length; t++, row++) {
            ck_assert(memcmp(tr.obs + row * 4, x->obs + t * 4, 16) == 0);
            ck_assert(memcmp(tr.next_obs + row * 4, x->obs + (t + 1) * 4, 16) == 0);
            ck_assert(memcmp(tr.act + row * 2, x->act + t * 2, 8) == 0);
            ck_assert(memcmp(&tr.reward[row], &x->reward[t], 4) == 0);
        }
    }
    ck_assert_int_eq(row, 7);
    /* done: the terminal last step of episode 0 only; the truncated end of
     * episode 2 and the success-only steps are not done. */
    const unsigned char want_done[7] = {0, 0, 1, 0, 0, 0, 0};
    ck_assert(memcmp(tr.done, want_done, 7) == 0);
    crl_ds_transitions_free(&tr);
    crl_ds_transitions_free(&tr);

    OK(crl_dataset_transitions(d, "push", 5, 3, &tr, &e));
    ck_assert_int_eq(tr.n, 2);
    ck_assert_int_eq(tr.done[0], 0);
    ck_assert_int_eq(tr.done[1], 1);
    ck_assert(memcmp(tr.next_obs + 5, h[1].obs + 10, 20) == 0);
    crl_ds_transitions_free(&tr);
    crl_dataset_close(d);
}
END_TEST

/* Writes are batched: another connection sees nothing until the flush, and
 * everything after it. */
START_TEST(test_batch_and_flush) {
    crl_err e = {0};
    const char *path = tpath("batch.db");
    hand_ep h;
    make_ep(&h, "reach", 3, 4, 2, 1.0f, CRL_DS_TERMINAL, 1);
    crl_dataset *d = open_ds(path, 1);
    OK(crl_dataset_add(d, &h.ep, &e));
    OK(crl_dataset_add(d, &h.ep, &e));
    sqlite3 *raw = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(
        sqlite3_prepare_v2(raw, "SELECT count(*) FROM episodes", -1, &st, NULL),
        SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_reset(st);
    OK(crl_dataset_flush(d, &e));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    /* The pragmas docs/dataset.md names. */
    ck_assert_int_eq(sqlite3_prepare_v2(raw, "PRAGMA application_id", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), CRL_DATASET_APP_ID);
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(raw);
    crl_dataset_close(d);
}
END_TEST

/* A writer killed mid-collection (SIGKILL: no close) leaves a valid file
 * with every batch committed so far: batches commit every 2 s on their own. */
START_TEST(test_crash_keeps_committed) {
    const char *path = tpath("crash.db");
    char p[256];
    snprintf(p, sizeof p, "%s", path);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        crl_err e = {0};
        crl_dataset *d = NULL;
        if (crl_dataset_open(p, 1, &d, &e)) _exit(3);
        hand_ep h;
        make_ep(&h, "reach", 3, 4, 2, 1.0f, CRL_DS_TERMINAL, 1);
        for (;;) {
            if (crl_dataset_add(d, &h.ep, &e)) _exit(4);
            usleep(2000);
        }
    }
    sleep(5);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, WNOHANG), 0); /* still writing */
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st));
    crl_err e = {0};
    crl_dataset *d = open_ds(path, 0);
    crl_ds_task_summary *sum = NULL;
    int n = 0;
    OK(crl_dataset_summary(d, &sum, &n, &e));
    ck_assert_int_eq(n, 1);
    ck_assert_int_gt(sum[0].episodes, 0);
    int64_t *ids = NULL;
    int m = 0;
    OK(crl_dataset_episode_ids(d, "reach", &ids, &m, &e));
    ck_assert_int_eq(m, sum[0].episodes);
    for (int i = 0; i < m; i++) {
        crl_ds_episode ep;
        OK(crl_dataset_episode(d, ids[i], &ep, &e));
        crl_ds_episode_free(&ep);
    }
    free(ids);
    free(sum);
    crl_dataset_close(d);
}
END_TEST

START_TEST(test_add_rejects_bad_sizes) {
    crl_err e = {0};
    const char *path = tpath("bad.db");
    crl_dataset *d = open_ds(path, 1);
    hand_ep h;
    make_ep(&h, "reach", 3, 4, 2, 1.0f, CRL_DS_TERMINAL, 1);
    crl_ds_episode x = h.ep;
    x.length = 0;
    FAILS(CRL_EINVAL, crl_dataset_add(d, &x, &e));
    x = h.ep;
    x.obs_dim = 0;
    FAILS(CRL_EINVAL, crl_dataset_add(d, &x, &e));
    x = h.ep;
    x.reward = NULL;
    FAILS(CRL_EINVAL, crl_dataset_add(d, &x, &e));
    x = h.ep;
    x.task = "";
    FAILS(CRL_EINVAL, crl_dataset_add(d, &x, &e));
    crl_dataset_close(d);
    d = open_ds(path, 0);
    crl_ds_task_summary *sum = NULL;
    int n = -1;
    OK(crl_dataset_summary(d, &sum, &n, &e));
    ck_assert_int_eq(n, 0);
    free(sum);
    crl_dataset_close(d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (c) Corrupt and mismatched files                                          */

START_TEST(test_refuse_random_bytes) {
    crl_err e = {0};
    const size_t sizes[] = {1, 100, 4096};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "random%zu.db", sizes[i]);
        const char *path = tpath(name);
        unsigned char *p = malloc(sizes[i]);
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        for (size_t k = 0; k < sizes[i]; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[k] = (unsigned char)x;
        }
        write_file(path, p, sizes[i]);
        free(p);
        snapshot before = snap(path);
        for (int create = 0; create <= 1; create++) {
            crl_dataset *d = (crl_dataset *)1;
            FAILS(CRL_ECORRUPT, crl_dataset_open(path, create, &d, &e));
            ck_assert_ptr_null(d);
            ck_assert_ptr_nonnull(strstr(e.msg, "not a crl dataset"));
        }
        assert_unchanged(path, &before);
    }
}
END_TEST

START_TEST(test_refuse_run_store) {
    crl_err e = {0};
    const char *path = tpath("runs.db");
    crl_store *s = NULL;
    OK(crl_store_open(path, 1, &s, &e));
    crl_store_close(s);
    /* The store leaves WAL side files only while open. */
    snapshot before = snap(path);
    for (int create = 0; create <= 1; create++) {
        crl_dataset *d = NULL;
        FAILS(CRL_ECORRUPT, crl_dataset_open(path, create, &d, &e));
        ck_assert_ptr_nonnull(strstr(e.msg, "run store, not a crl dataset"));
    }
    assert_unchanged(path, &before);
    /* And the other way round: a dataset is not a run store. */
    const char *dpath = tpath("ds.db");
    crl_dataset_close(open_ds(dpath, 1));
    before = snap(dpath);
    FAILS(CRL_ECORRUPT, crl_store_open(dpath, 1, &s, &e));
    assert_unchanged(dpath, &before);
}
END_TEST

START_TEST(test_refuse_foreign_and_newer) {
    crl_err e = {0};
    const char *path = tpath("foreign.db");
    sqlite3 *raw = raw_open(path);
    raw_exec(raw, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    sqlite3_close(raw);
    snapshot before = snap(path);
    crl_dataset *d = NULL;
    FAILS(CRL_ECORRUPT, crl_dataset_open(path, 1, &d, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "another program"));
    assert_unchanged(path, &before);

    const char *npath = tpath("newer.db");
    crl_dataset_close(open_ds(npath, 1));
    raw = raw_open(npath);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", CRL_DATASET_SCHEMA_VERSION + 1);
    raw_exec(raw, sql);
    raw_exec(raw, "PRAGMA journal_mode = DELETE");
    sqlite3_close(raw);
    before = snap(npath);
    FAILS(CRL_EVERSION, crl_dataset_open(npath, 1, &d, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "newer"));
    assert_unchanged(npath, &before);
}
END_TEST

START_TEST(test_open_missing) {
    crl_err e = {0};
    const char *path = tpath("missing.db");
    crl_dataset *d = NULL;
    FAILS(CRL_ENOTFOUND, crl_dataset_open(path, 0, &d, &e));
    ck_assert_int_ne(access(path, F_OK), 0);
    /* Creating makes the missing folders (as crl train --db does) ... */
    ck_assert_int_eq(crl_dataset_open(tpath("no/such/dir.db"), 1, &d, &e), CRL_OK);
    crl_dataset_close(d);
    d = NULL;
    ck_assert_int_eq(access(tpath("no/such/dir.db"), F_OK), 0);
    /* ... but not under a file. */
    FAILS(CRL_EIO, crl_dataset_open(tpath("no/such/dir.db/x.db"), 1, &d, &e));
}
END_TEST

/* A blob cut short behind the library's back is caught on every read, with
 * the episode and the blob named. */
START_TEST(test_truncated_blob) {
    crl_err e = {0};
    const char *path = tpath("trunc.db");
    hand_ep h;
    make_ep(&h, "reach", 3, 4, 2, 1.0f, CRL_DS_TERMINAL, 1);
    crl_dataset *d = open_ds(path, 1);
    OK(crl_dataset_add(d, &h.ep, &e));
    OK(crl_dataset_add(d, &h.ep, &e));
    crl_dataset_close(d);
    static const char *const cols[4] = {"obs", "act", "reward", "flags"};
    for (int c = 0; c < 4; c++) {
        /* Fresh copy of the rows, then cut blob c of episode 2 by one byte. */
        sqlite3 *raw = raw_open(path);
        char sql[320];
        snprintf(sql, sizeof sql,
                 "UPDATE episodes SET obs = (SELECT obs FROM episodes WHERE id = 1),"
                 " act = (SELECT act FROM episodes WHERE id = 1),"
                 " reward = (SELECT reward FROM episodes WHERE id = 1),"
                 " flags = (SELECT flags FROM episodes WHERE id = 1) WHERE id = 2");
        raw_exec(raw, sql);
        snprintf(sql, sizeof sql,
                 "UPDATE episodes SET %s = substr(%s, 1, length(%s) - 1) WHERE id = 2",
                 cols[c], cols[c], cols[c]);
        raw_exec(raw, sql);
        sqlite3_close(raw);

        d = open_ds(path, 0);
        crl_ds_episode got;
        OK(crl_dataset_episode(d, 1, &got, &e));
        crl_ds_episode_free(&got);
        FAILS(CRL_ECORRUPT, crl_dataset_episode(d, 2, &got, &e));
        ck_assert_ptr_null(got.obs);
        char want[64];
        snprintf(want, sizeof want, "the %s blob has", cols[c]);
        ck_assert_msg(strstr(e.msg, want) && strstr(e.msg, "episode 2"), "%s", e.msg);
        crl_ds_transitions tr;
        FAILS(CRL_ECORRUPT, crl_dataset_transitions(d, "reach", 4, 2, &tr, &e));
        ck_assert_msg(strstr(e.msg, want), "%s", e.msg);
        ck_assert_ptr_null(tr.obs);
        crl_dataset_close(d);
    }
    /* A blob stored as text is not a blob either. */
    sqlite3 *raw = raw_open(path);
    raw_exec(raw, "UPDATE episodes SET reward = 'abcdefghijkl' WHERE id = 2");
    sqlite3_close(raw);
    d = open_ds(path, 0);
    crl_ds_episode got;
    FAILS(CRL_ECORRUPT, crl_dataset_episode(d, 2, &got, &e));
    crl_dataset_close(d);
}
END_TEST

START_TEST(test_mismatch_and_unknown_task) {
    crl_err e = {0};
    const char *path = tpath("mm.db");
    hand_ep h[2];
    make_ep(&h[0], "reach", 3, 4, 2, 1.0f, CRL_DS_TERMINAL, 1);
    make_ep(&h[1], "reach", 2, 5, 2, 2.0f, CRL_DS_TERMINAL, 1); /* other obs_dim */
    crl_dataset *d = open_ds(path, 1);
    OK(crl_dataset_add(d, &h[0].ep, &e));
    crl_dataset_close(d);
    d = open_ds(path, 0);
    crl_ds_transitions tr;
    FAILS(CRL_EINVAL, crl_dataset_transitions(d, "reach", 5, 2, &tr, &e));
    ck_assert_msg(strstr(e.msg, "obs_dim 4") && strstr(e.msg, "obs_dim 5") &&
                      strstr(e.msg, "reach"),
                  "%s", e.msg);
    ck_assert_ptr_null(tr.obs);
    FAILS(CRL_EINVAL, crl_dataset_transitions(d, "reach", 4, 3, &tr, &e));
    ck_assert_msg(strstr(e.msg, "act_dim 2") && strstr(e.msg, "act_dim 3"), "%s", e.msg);
    FAILS(CRL_ENOTFOUND, crl_dataset_transitions(d, "stick-pull", 4, 2, &tr, &e));
    ck_assert_msg(strstr(e.msg, "stick-pull"), "%s", e.msg);
    /* One episode of another size in the task fails the whole read. */
    OK(crl_dataset_add(d, &h[1].ep, &e));
    FAILS(CRL_EINVAL, crl_dataset_transitions(d, "reach", 4, 2, &tr, &e));
    ck_assert_msg(strstr(e.msg, "episode 2"), "%s", e.msg);
    crl_dataset_close(d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (b) Collected episodes replay bit for bit                                 */

static float clip1(float x) {
    return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

START_TEST(test_collected_episodes_replay) {
    crl_err e = {0};
    const char *path = tpath("collect.db");
    const char *tasks[2] = {"reach", "push"};
    const int n_ep = 3;
    const double noise = 0.3, frac = 1.0 / 3.0;
    const uint64_t seed = 77;
    crl_dataset *d = open_ds(path, 1);
    for (int i = 0; i < 2; i++) {
        crl_env_spec *spec = NULL;
        crl_collector *c = NULL;
        OK(crl_env_spec_create(tasks[i], &spec, &e));
        OK(crl_collector_create(spec, NULL, 0, &c, &e));
        crl_rng rng;
        crl_rng_seed_stream(&rng, seed, (uint64_t)i);
        for (int k = 0; k < n_ep; k++) {
            int random = crl_collect_is_random(k, frac);
            OK(crl_collector_run(c, seed + (uint64_t)k, random, noise, &rng,
                                 random ? "random" : "scripted+noise 0.3", d, NULL, &e));
        }
        crl_collector_free(c);
        crl_env_spec_free(spec);
    }
    crl_dataset_close(d);

    d = open_ds(path, 0);
    int n_random = 0, n_clipped = 0;
    for (int i = 0; i < 2; i++) {
        crl_env_spec *spec = NULL;
        crl_env *env = NULL, *script = NULL;
        OK(crl_env_spec_create(tasks[i], &spec, &e));
        OK(crl_env_create(spec, &env, &e));
        OK(crl_env_create(spec, &script, &e));
        const int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec);
        float *obs = malloc((size_t)od * sizeof(float));
        float *sobs = malloc((size_t)od * sizeof(float));
        float sa[16];
        ck_assert_int_le(ad, 16);
        crl_rng rng;
        crl_rng_seed_stream(&rng, seed, (uint64_t)i);
        int64_t *ids = NULL;
        int n = 0;
        OK(crl_dataset_episode_ids(d, tasks[i], &ids, &n, &e));
        ck_assert_int_eq(n, n_ep);
        for (int k = 0; k < n; k++) {
            crl_ds_episode ep;
            OK(crl_dataset_episode(d, ids[k], &ep, &e));
            ck_assert_str_eq(ep.task, tasks[i]);
            ck_assert(ep.seed == seed + (uint64_t)k);
            ck_assert_int_eq(ep.obs_dim, od);
            ck_assert_int_eq(ep.act_dim, ad);
            ck_assert_ptr_nonnull(ep.record);
            const int random = crl_collect_is_random(k, frac);
            n_random += random;
            ck_assert_str_eq(ep.source, random ? "random" : "scripted+noise 0.3");
            /* The stored actions: the scripted action on a second env that
             * follows the same actions, plus the noise, clipped after it. */
            crl_env_reset(script, ep.seed, sobs);
            for (int t = 0; t < ep.length; t++) {
                const float *a = ep.act + (size_t)t * (size_t)ad;
                if (random) {
                    for (int j = 0; j < ad; j++)
                        sa[j] = (float)crl_rng_range(&rng, -1.0, 1.0);
                } else {
                    OK(crl_env_scripted_action(script, sa));
                    for (int j = 0; j < ad; j++) {
                        float raw = (float)((double)sa[j] + noise * crl_rng_normal(&rng));
                        sa[j] = clip1(raw);
                        n_clipped += raw != sa[j];
                    }
                }
                ck_assert_msg(
                    memcmp(a, sa, (size_t)ad * 4) == 0,
                    "%s episode %d step %d: stored action is not scripted+noise",
                    tasks[i], k, t);
                crl_step_info si;
                crl_env_step(script, a, sobs, &si);
            }
            /* The stored observations, rewards, flags: reset(seed) and the
             * stored actions, bit for bit. */
            crl_env_reset(env, ep.seed, obs);
            ck_assert(memcmp(obs, ep.obs, (size_t)od * 4) == 0);
            double ret = 0;
            int success = 0;
            for (int t = 0; t < ep.length; t++) {
                crl_step_info si = {0};
                crl_env_step(env, ep.act + (size_t)t * (size_t)ad, obs, &si);
                ck_assert_msg(memcmp(obs, ep.obs + (size_t)(t + 1) * (size_t)od,
                                     (size_t)od * 4) == 0,
                              "%s episode %d: observation after step %d differs",
                              tasks[i], k, t);
                ck_assert(memcmp(&si.reward, &ep.reward[t], 4) == 0);
                unsigned fl = (si.terminal ? CRL_DS_TERMINAL : 0u) |
                              (si.truncated ? CRL_DS_TRUNCATED : 0u) |
                              (si.success ? CRL_DS_SUCCESS : 0u);
                ck_assert_uint_eq(fl, ep.flags[t]);
                ck_assert_int_eq(si.terminal || si.truncated, t == ep.length - 1);
                ret += si.reward;
                success |= si.success != 0;
            }
            ck_assert(ret == ep.ret);
            ck_assert_int_eq(success, ep.success);
            /* The record replays with the replay machinery, and holds the
             * stored actions. */
            crl_episode_data rd = {0};
            OK(crl_episode_decode(ep.record, ep.record_n, &rd, &e));
            ck_assert_int_eq(rd.length, ep.length);
            ck_assert(rd.seed == ep.seed);
            ck_assert(memcmp(rd.act, ep.act, (size_t)ep.length * (size_t)ad * 4) == 0);
            crl_episode_result vr;
            OK(crl_episode_verify(spec, &rd, &vr, &e));
            ck_assert_msg(vr.verified, "%s episode %d: record does not replay: %s",
                          tasks[i], k, vr.what);
            crl_episode_data_free(&rd);
            /* And the library's check agrees, and catches a changed value. */
            crl_collect_check cc;
            OK(crl_collect_verify(spec, &ep, &cc, &e));
            ck_assert_msg(cc.verified && cc.replayable, "%s", cc.what);
            const int t_bad = ep.length / 2;
            float keep = ep.obs[(size_t)(t_bad + 1) * (size_t)od + 3];
            ep.obs[(size_t)(t_bad + 1) * (size_t)od + 3] = nextafterf(keep, INFINITY);
            OK(crl_collect_verify(spec, &ep, &cc, &e));
            ck_assert(!cc.verified);
            ck_assert_int_eq(cc.step, t_bad);
            ck_assert_ptr_nonnull(strstr(cc.what, "observation [3]"));
            ep.obs[(size_t)(t_bad + 1) * (size_t)od + 3] = keep;
            ep.act[5] = nextafterf(ep.act[5], 0.0f);
            OK(crl_collect_verify(spec, &ep, &cc, &e));
            ck_assert(!cc.verified);
            crl_ds_episode_free(&ep);
        }
        free(ids);
        free(obs);
        free(sobs);
        crl_env_free(env);
        crl_env_free(script);
        crl_env_spec_free(spec);
    }
    ck_assert_int_eq(n_random, 2);  /* 1 of 3 per task */
    ck_assert_int_gt(n_clipped, 0); /* noise 0.3 pushes some actions past the bounds */
    crl_dataset_close(d);
}
END_TEST

/* An episode from a record made on another model is not replayable, and
 * says why. */

/* Episodes side by side (crl_collector_run_many) hold exactly what one
 * episode at a time holds: each uses only its seed and its own generator,
 * whatever the width and the lanes. push, scripted plus noise, a third of
 * the episodes random: 5 episodes one by one on a width-1 collector, then
 * as 4 + 1 on a width-4 collector on 2 lanes. Every array and the replay
 * record must be equal byte for byte, and each episode must verify. */
START_TEST(test_collect_side_by_side) {
    crl_err e = {0};
    crl_env_spec *spec = NULL;
    OK(crl_env_spec_create("push", &spec, &e));
    const int od = crl_env_obs_dim(spec), ad = crl_env_act_dim(spec), n = 5;
    const double noise = 0.3, frac = 1.0 / 3.0;
    crl_collector *one = NULL, *wide = NULL;
    OK(crl_collector_create(spec, NULL, 0, &one, &e));
    OK(crl_collector_create_batch(spec, NULL, 0, 4, 2, &wide, &e));
    ck_assert_int_eq(crl_collector_width(wide), 4);
    /* One at a time: copies of each episode's arrays and record. */
    struct {
        int length;
        float *obs, *act, *rew;
        unsigned char *flags, *rec;
        size_t rec_n;
    } ref[5];
    for (int k = 0; k < n; k++) {
        crl_rng rng;
        crl_rng_seed_stream(&rng, 100 + (uint64_t)k, 0);
        crl_ds_episode ep;
        OK(crl_collector_run(one, 100 + (uint64_t)k, crl_collect_is_random(k, frac),
                             noise, &rng, "s", NULL, &ep, &e));
        ref[k].length = ep.length;
        size_t T = (size_t)ep.length;
        ref[k].obs = malloc((T + 1) * (size_t)od * sizeof(float));
        ref[k].act = malloc(T * (size_t)ad * sizeof(float));
        ref[k].rew = malloc(T * sizeof(float));
        ref[k].flags = malloc(T);
        ref[k].rec = malloc(ep.record_n);
        ref[k].rec_n = ep.record_n;
        memcpy(ref[k].obs, ep.obs, (T + 1) * (size_t)od * sizeof(float));
        memcpy(ref[k].act, ep.act, T * (size_t)ad * sizeof(float));
        memcpy(ref[k].rew, ep.reward, T * sizeof(float));
        memcpy(ref[k].flags, ep.flags, T);
        memcpy(ref[k].rec, ep.record, ep.record_n);
    }
    int n_random = 0;
    for (int k0 = 0; k0 < n; k0 += 4) {
        const int m = n - k0 < 4 ? n - k0 : 4;
        uint64_t seeds[4];
        int random[4];
        crl_rng rngs[4];
        const char *src[4];
        crl_ds_episode eps[4];
        for (int j = 0; j < m; j++) {
            seeds[j] = 100 + (uint64_t)(k0 + j);
            random[j] = crl_collect_is_random(k0 + j, frac);
            crl_rng_seed_stream(&rngs[j], seeds[j], 0);
            src[j] = "s";
        }
        OK(crl_collector_run_many(wide, m, seeds, random, noise, rngs, src, NULL, eps,
                                  &e));
        for (int j = 0; j < m; j++) {
            const int k = k0 + j;
            const size_t T = (size_t)ref[k].length;
            n_random += random[j];
            ck_assert_int_eq(eps[j].length, ref[k].length);
            ck_assert(eps[j].seed == seeds[j]);
            ck_assert_mem_eq(eps[j].obs, ref[k].obs,
                             (T + 1) * (size_t)od * sizeof(float));
            ck_assert_mem_eq(eps[j].act, ref[k].act, T * (size_t)ad * sizeof(float));
            ck_assert_mem_eq(eps[j].reward, ref[k].rew, T * sizeof(float));
            ck_assert_mem_eq(eps[j].flags, ref[k].flags, T);
            ck_assert_uint_eq(eps[j].record_n, ref[k].rec_n);
            ck_assert_mem_eq(eps[j].record, ref[k].rec, ref[k].rec_n);
            crl_collect_check cc;
            OK(crl_collect_verify(spec, &eps[j], &cc, &e));
            ck_assert_msg(cc.verified, "episode %d: %s", k, cc.what);
        }
    }
    ck_assert_int_ge(n_random, 1);
    ck_assert_int_lt(n_random, n);
    for (int k = 0; k < n; k++) {
        free(ref[k].obs);
        free(ref[k].act);
        free(ref[k].rew);
        free(ref[k].flags);
        free(ref[k].rec);
    }
    /* Bad widths and counts are refused. */
    crl_collector *bad = NULL;
    ck_assert_int_eq(crl_collector_create_batch(spec, NULL, 0, 0, 1, &bad, &e),
                     CRL_EINVAL);
    ck_assert_int_eq(crl_collector_create_batch(spec, NULL, 0, 2, 3, &bad, &e),
                     CRL_EINVAL);
    uint64_t s5[5] = {1, 2, 3, 4, 5};
    int r5[5] = {0};
    crl_rng g5[5];
    const char *src5[5] = {"s", "s", "s", "s", "s"};
    crl_ds_episode e5[5];
    ck_assert_int_eq(crl_collector_run_many(wide, 5, s5, r5, 0, g5, src5, NULL, e5, &e),
                     CRL_EINVAL);
    crl_collector_free(one);
    crl_collector_free(wide);
    crl_env_spec_free(spec);
}
END_TEST

START_TEST(test_verify_says_why_not) {
    crl_err e = {0};
    crl_env_spec *spec = NULL;
    crl_collector *c = NULL;
    OK(crl_env_spec_create("reach", &spec, &e));
    OK(crl_collector_create(spec, NULL, 0, &c, &e));
    crl_rng rng;
    crl_rng_seed(&rng, 1);
    crl_ds_episode ep;
    OK(crl_collector_run(c, 5, 0, 0.0, &rng, "scripted", NULL, &ep, &e));
    crl_collect_check cc;
    OK(crl_collect_verify(spec, &ep, &cc, &e));
    ck_assert_msg(cc.verified, "%s", cc.what);
    crl_ds_episode x = ep;
    x.model_hash = "0000000000000000";
    OK(crl_collect_verify(spec, &x, &cc, &e));
    ck_assert(!cc.replayable && !cc.verified);
    ck_assert_ptr_nonnull(strstr(cc.what, "model hash"));
    x = ep;
    x.mujoco_version = "9.9.9";
    OK(crl_collect_verify(spec, &x, &cc, &e));
    ck_assert(!cc.replayable && strstr(cc.what, "MuJoCo 9.9.9"));
    x = ep;
    x.record = NULL;
    x.record_n = 0;
    OK(crl_collect_verify(spec, &x, &cc, &e));
    ck_assert(!cc.replayable && strstr(cc.what, "no replay record"));
    crl_collector_free(c);
    crl_env_spec_free(spec);
}
END_TEST

/* Collection allocates once per collector, not per episode or step. */
START_TEST(test_collect_no_malloc) {
#if HAVE_MALLOC_COUNT
    crl_err e = {0};
    crl_env_spec *spec = NULL;
    crl_collector *c = NULL;
    OK(crl_env_spec_create("push", &spec, &e));
    OK(crl_collector_create(spec, NULL, 0, &c, &e));
    crl_rng rng;
    crl_rng_seed(&rng, 3);
    OK(crl_collector_run(c, 1, 0, 0.1, &rng, "s", NULL, NULL, &e));
    /* Check's assertions allocate: none between the two counts. */
    long before = alloc_calls();
    crl_ds_episode ep;
    int rc1 = crl_collector_run(c, 2, 0, 0.1, &rng, "s", NULL, &ep, &e);
    int rc2 = crl_collector_run(c, 3, 1, 0.1, &rng, "s", NULL, &ep, &e);
    long during = alloc_calls() - before;
    ck_assert_int_eq(rc1, CRL_OK);
    ck_assert_int_eq(rc2, CRL_OK);
    ck_assert_msg(during == 0, "%ld allocations in two episodes", during);
    ck_assert_int_gt(ep.length, 10);
    crl_collector_free(c);
    crl_env_spec_free(spec);
#else
    fprintf(stderr, "test_collect_no_malloc: skipped (no malloc counting under ASan)\n");
#endif
}
END_TEST

START_TEST(test_random_fraction) {
    const double fracs[] = {0, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.999, 1};
    for (int f = 0; f < 7; f++)
        for (int n = 1; n <= 60; n++) {
            long count = 0;
            for (int i = 0; i < n; i++) count += crl_collect_is_random(i, fracs[f]);
            ck_assert_msg(count == llround(n * fracs[f]), "frac %g n %d: %ld random",
                          fracs[f], n, count);
        }
    /* Spread, not bunched: 10% of 100 is one episode in every ten. */
    for (int b = 0; b < 10; b++) {
        int in = 0;
        for (int i = 10 * b; i < 10 * b + 10; i++) in += crl_collect_is_random(i, 0.1);
        ck_assert_int_eq(in, 1);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The CLI                                                                   */

static char g_out[300], g_errp[300];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static pid_t spawn(char *const argv[]) {
    snprintf(g_out, sizeof g_out, "%s/stdout", g_dir);
    snprintf(g_errp, sizeof g_errp, "%s/stderr", g_dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(g_out, "w", stdout) || !freopen(g_errp, "w", stderr)) _exit(126);
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

static char *slurp(const char *path) {
    static char buf[65536];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void expect_one_line(int code, int want, const char *needle) {
    char *err = slurp(g_errp);
    int lines = 0;
    for (const char *q = err; *q; q++) lines += *q == '\n';
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, err);
    ck_assert_msg(lines == 1, "stderr is not one line: %s", err);
    ck_assert_msg(strstr(err, needle) != NULL, "stderr lacks '%s': %s", needle, err);
    ck_assert_msg(!strncmp(err, "crl dataset: ", 13), "no prefix: %s", err);
}

START_TEST(test_cli_refuses_bad_input) {
    char out[300];
    snprintf(out, sizeof out, "%s/new.db", g_dir);
    expect_one_line(RUN("dataset", "--tasks", "reach,nope", "-o", out), 2,
                    "unknown task 'nope'");
    expect_one_line(RUN("dataset", "--scenario", "cw99", "-o", out), 2,
                    "unknown scenario");
    expect_one_line(RUN("dataset", "--tasks", "reach", "--episodes", "0", "-o", out), 2,
                    "--episodes");
    expect_one_line(RUN("dataset", "--tasks", "reach", "--noise", "-0.5", "-o", out), 2,
                    "--noise");
    expect_one_line(RUN("dataset", "--tasks", "reach", "--random-frac", "1.5", "-o", out),
                    2, "--random-frac");
    expect_one_line(RUN("dataset", "--tasks", "reach", "--seed", "x", "-o", out), 2,
                    "--seed");
    expect_one_line(RUN("dataset", "--tasks", "pendulum", "-o", out), 2,
                    "no scripted policy");
    expect_one_line(RUN("dataset", "--tasks", "reach"), 2, "-o FILE");
    expect_one_line(
        RUN("dataset", "--tasks", "reach", "--policy", "nope.crlp", "-o", out), 2,
        "nope.crlp");
    ck_assert_msg(access(out, F_OK) != 0, "a refused command created %s", out);

    /* An output that is not a dataset: a run store, random bytes. Untouched. */
    char runs[300], rnd[300];
    snprintf(runs, sizeof runs, "%s/runs.db", g_dir);
    snprintf(rnd, sizeof rnd, "%s/random.bin", g_dir);
    crl_err e = {0};
    crl_store *st = NULL;
    OK(crl_store_open(runs, 1, &st, &e));
    crl_store_close(st);
    unsigned char bytes[3000];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)(i * 131u + 7u);
    write_file(rnd, bytes, sizeof bytes);
    snapshot b1 = snap(runs), b2 = snap(rnd);
    expect_one_line(RUN("dataset", "--tasks", "reach", "--episodes", "1", "-o", runs), 2,
                    "run store, not a crl dataset");
    expect_one_line(RUN("dataset", "--tasks", "reach", "--episodes", "1", "-o", rnd), 2,
                    "not a crl dataset");
    expect_one_line(RUN("dataset", "--info", rnd), 2, "not a crl dataset");
    expect_one_line(RUN("dataset", "--verify", runs), 2, "run store");
    assert_unchanged(runs, &b1);
    assert_unchanged(rnd, &b2);

    /* A dataset whose episodes of the task have another observation size. */
    char mm[300];
    snprintf(mm, sizeof mm, "%s/mismatch.db", g_dir);
    hand_ep h;
    make_ep(&h, "reach", 3, 5, 4, 1.0f, CRL_DS_TERMINAL, 0);
    crl_dataset *d = open_ds(mm, 1);
    OK(crl_dataset_add(d, &h.ep, &e));
    crl_dataset_close(d);
    snapshot b3 = snap(mm);
    expect_one_line(RUN("dataset", "--tasks", "reach", "--episodes", "1", "-o", mm), 2,
                    "5 observations");
    assert_unchanged(mm, &b3);
    expect_one_line(RUN("dataset", "--verify", mm, "--task", "push"), 2,
                    "no episodes of task");
}
END_TEST

START_TEST(test_cli_collect_info_verify) {
    char out[300];
    snprintf(out, sizeof out, "%s/ok.db", g_dir);
    int code = RUN("dataset", "--tasks", "reach,push", "--episodes", "2", "--noise",
                   "0.2", "--random-frac", "0.5", "--seed", "9", "-o", out, "--quiet");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(g_errp));
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "bytes per 1,000 episodes"));
    code = RUN("dataset", "--info", out);
    ck_assert_int_eq(code, 0);
    char *info = slurp(g_out);
    ck_assert_msg(strstr(info, "4 episodes") && strstr(info, "| reach | 39 | 4 | 2 |") &&
                      strstr(info, "| push | 39 | 4 | 2 |"),
                  "%s", info);
    code = RUN("dataset", "--verify", out);
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(g_errp));
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "verified: 4/4"));

    /* One observation changed in the last bit: verify finds it, exit 1. */
    crl_err e = {0};
    crl_dataset *d = open_ds(out, 0);
    crl_ds_episode ep;
    OK(crl_dataset_episode(d, 2, &ep, &e));
    crl_dataset_close(d);
    size_t on = (size_t)(ep.length + 1) * (size_t)ep.obs_dim;
    ep.obs[on - 1] = nextafterf(ep.obs[on - 1], INFINITY);
    sqlite3 *raw = raw_open(out);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(raw, "UPDATE episodes SET obs = ?1 WHERE id = 2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, ep.obs, (int)(on * 4), SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    crl_ds_episode_free(&ep);
    code = RUN("dataset", "--verify", out);
    ck_assert_int_eq(code, 1);
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "verified: 3/4"));
    ck_assert_ptr_nonnull(strstr(slurp(g_errp), "episode 2: observation"));
    code = RUN("dataset", "--verify", out, "--task", "push");
    ck_assert_int_eq(code, 0);
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "verified: 2/2"));

    /* A blob cut short: the episode is named, exit 2 (a damaged file). */
    raw = raw_open(out);
    raw_exec(raw, "UPDATE episodes SET act = substr(act, 1, 100) WHERE id = 3");
    sqlite3_close(raw);
    code = RUN("dataset", "--verify", out);
    ck_assert_int_eq(code, 2);
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "verified: 2/4"));
    ck_assert_msg(
        strstr(slurp(g_errp), "episode 3 (task push): the act blob has 100 bytes") &&
            strstr(slurp(g_errp), "1 episode could not be read (corrupt)"),
        "%s", slurp(g_errp));
    raw = raw_open(out);
    raw_exec(raw, "DELETE FROM episodes WHERE id IN (2, 3)");
    sqlite3_close(raw);

    /* Appending keeps the earlier episodes. */
    code = RUN("dataset", "--tasks", "push", "--episodes", "1", "--seed", "100", "-o",
               out, "--quiet");
    ck_assert_int_eq(code, 0);
    ck_assert_ptr_nonnull(strstr(slurp(g_out), "1 episodes written (3 in the file)"));
}
END_TEST

/* The other two sources: an exported policy and a run's checkpoint. A tiny
 * run is trained and exported; the stored actions must be the policy's
 * deterministic actions on the stored observations, the same through
 * --policy and --run-db/--run, and the episodes must verify. */
/* A hash of every byte the rows of sql (one row expected per call site's
 * query) hold in their columns, in order: equal for equal contents. */
static uint64_t rows_hash(const char *path, const char *sql, int *rows) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    uint64_t h = 1469598103934665603ull;
    *rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ++*rows;
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *b = sqlite3_column_blob(st, c);
            int nb = sqlite3_column_bytes(st, c);
            for (int i = 0; i < nb; i++) h = (h ^ b[i]) * 1099511628211ull;
            h = (h ^ (uint64_t)nb) * 1099511628211ull;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return h;
}

START_TEST(test_cli_policy_sources) {
    char db[300], pol[300], d1[300], d2[300];
    snprintf(db, sizeof db, "%s/runs.db", g_dir);
    snprintf(pol, sizeof pol, "%s/p.crlp", g_dir);
    snprintf(d1, sizeof d1, "%s/from_policy.db", g_dir);
    snprintf(d2, sizeof d2, "%s/from_run.db", g_dir);
    int code = RUN("train", "--scenario", "t1", "--method", "ft1", "--steps-per-task",
                   "300", "--eval-every", "300", "--eval-episodes", "1", "--hidden", "32",
                   "--layers", "2", "--start-steps", "100", "--update-after", "100",
                   "--threads", "1", "--quiet", "--db", db);
    ck_assert_msg(code == 0, "train: exit %d: %s", code, slurp(g_errp));
    code = RUN("export", "--db", db, "--run", "1", "-o", pol);
    ck_assert_msg(code == 0, "export: exit %d: %s", code, slurp(g_errp));
    code = RUN("dataset", "--policy", pol, "--tasks", "hammer,push", "--episodes", "2",
               "--seed", "4", "-o", d1, "--quiet");
    ck_assert_msg(code == 0, "dataset --policy: exit %d: %s", code, slurp(g_errp));
    code = RUN("dataset", "--run-db", db, "--run", "1", "--tasks", "hammer,push",
               "--episodes", "2", "--seed", "4", "-o", d2, "--quiet");
    ck_assert_msg(code == 0, "dataset --run-db: exit %d: %s", code, slurp(g_errp));
    code = RUN("dataset", "--verify", d1);
    ck_assert_msg(code == 0, "verify: exit %d: %s", code, slurp(g_errp));
    /* A policy source, episodes side by side (each acting through its own
     * clone of the policy, with its own noise): the second of three (seed
     * 5, beside two others, on two lanes) holds what a collection of that
     * one episode alone holds. (ft1's policy keeps no state between steps;
     * the clones matter for L2M's history routing.) */
    char d4[300], d5[300];
    snprintf(d4, sizeof d4, "%s/three.db", g_dir);
    snprintf(d5, sizeof d5, "%s/alone.db", g_dir);
    code = RUN("dataset", "--policy", pol, "--tasks", "push", "--episodes", "3", "--seed",
               "4", "--noise", "0.1", "--threads", "2", "-o", d4, "--quiet");
    ck_assert_msg(code == 0, "dataset: exit %d: %s", code, slurp(g_errp));
    code = RUN("dataset", "--policy", pol, "--tasks", "push", "--episodes", "1", "--seed",
               "5", "--noise", "0.1", "--threads", "1", "-o", d5, "--quiet");
    ck_assert_msg(code == 0, "dataset: exit %d: %s", code, slurp(g_errp));
    const char *row =
        "SELECT length, obs, act, reward, flags, record FROM episodes WHERE "
        "seed = 5";
    int r4 = 0, r5 = 0;
    uint64_t h4 = rows_hash(d4, row, &r4), h5 = rows_hash(d5, row, &r5);
    ck_assert_int_eq(r4, 1);
    ck_assert_int_eq(r5, 1);
    ck_assert_msg(h4 == h5, "episode seed 5 differs beside others");
    int r6 = 0;
    ck_assert(rows_hash(d4, "SELECT act FROM episodes WHERE seed = 4", &r6) !=
              rows_hash(d4, "SELECT act FROM episodes WHERE seed = 5", &r5));
    /* A task the policy does not have: exit 2, nothing written. */
    char d3[300];
    snprintf(d3, sizeof d3, "%s/none.db", g_dir);
    expect_one_line(RUN("dataset", "--policy", pol, "--tasks", "reach", "-o", d3), 2,
                    "no task 'reach'");
    ck_assert_int_ne(access(d3, F_OK), 0);

    crl_err e = {0};
    char ebuf[256] = "";
    crl_policy *p = NULL;
    ck_assert_msg(crl_policy_load(pol, &p, ebuf, sizeof ebuf) == CRL_OK, "%s", ebuf);
    crl_dataset *a = open_ds(d1, 0), *b = open_ds(d2, 0);
    const char *tasks[2] = {"hammer", "push"};
    for (int i = 0; i < 2; i++) {
        int pt = -1;
        for (int k = 0; k < crl_policy_num_tasks(p); k++)
            if (!strcmp(crl_policy_task_name(p, k), tasks[i])) pt = k;
        ck_assert_int_ge(pt, 0);
        int64_t *ia = NULL, *ib = NULL;
        int na = 0, nb = 0;
        OK(crl_dataset_episode_ids(a, tasks[i], &ia, &na, &e));
        OK(crl_dataset_episode_ids(b, tasks[i], &ib, &nb, &e));
        ck_assert_int_eq(na, 2);
        ck_assert_int_eq(nb, 2);
        for (int k = 0; k < na; k++) {
            crl_ds_episode x, y;
            OK(crl_dataset_episode(a, ia[k], &x, &e));
            OK(crl_dataset_episode(b, ib[k], &y, &e));
            ck_assert_int_eq(x.length, y.length);
            ck_assert(memcmp(x.act, y.act, (size_t)x.length * 4 * 4) == 0);
            ck_assert(memcmp(x.obs, y.obs, (size_t)(x.length + 1) * 39 * 4) == 0);
            ck_assert_ptr_nonnull(strstr(x.source, "policy "));
            ck_assert_ptr_nonnull(strstr(y.source, "run "));
            crl_policy_episode_start(p);
            for (int t = 0; t < x.length; t++) {
                float act[4];
                ck_assert_int_eq(crl_policy_act(p, pt, x.obs + (size_t)t * 39, act,
                                                CRL_POLICY_DETERMINISTIC, NULL),
                                 CRL_OK);
                ck_assert_msg(memcmp(act, x.act + (size_t)t * 4, sizeof act) == 0,
                              "%s episode %d step %d: not the policy's action", tasks[i],
                              k, t);
            }
            crl_ds_episode_free(&x);
            crl_ds_episode_free(&y);
        }
        free(ia);
        free(ib);
    }
    crl_dataset_close(a);
    crl_dataset_close(b);
    crl_policy_free(p);
}
END_TEST

/* Ctrl-C: exit 130 with one line; what was collected is committed and
 * valid. */
START_TEST(test_cli_interrupt) {
    char out[300];
    snprintf(out, sizeof out, "%s/int.db", g_dir);
    pid_t pid = spawn((char *const[]){(char *)bin(), "dataset", "--tasks", "reach",
                                      "--episodes", "1000000", "-o", out, NULL});
    /* Wait for the file, then for a first commit (every 2 s). */
    for (int i = 0; i < 400 && access(out, F_OK) != 0; i++) usleep(50000);
    ck_assert_int_eq(access(out, F_OK), 0);
    sleep(3);
    kill(pid, SIGINT);
    int code = wait_code(pid);
    expect_one_line(code, 130, "interrupted");
    crl_err e = {0};
    crl_dataset *d = open_ds(out, 0);
    crl_ds_task_summary *sum = NULL;
    int n = 0;
    OK(crl_dataset_summary(d, &sum, &n, &e));
    ck_assert_int_eq(n, 1);
    ck_assert_int_gt(sum[0].episodes, 0);
    char want[64];
    snprintf(want, sizeof want, "keeps the %lld episodes", (long long)sum[0].episodes);
    ck_assert_msg(strstr(slurp(g_errp), want), "%s", slurp(g_errp));
    crl_ds_transitions tr;
    OK(crl_dataset_transitions(d, "reach", 39, 4, &tr, &e));
    ck_assert_int_eq(tr.n, sum[0].steps);
    crl_ds_transitions_free(&tr);
    free(sum);
    crl_dataset_close(d);
}
END_TEST

static Suite *dataset_suite(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_transitions);
    tcase_add_test(tc, test_batch_and_flush);
    tcase_add_test(tc, test_add_rejects_bad_sizes);
    tcase_add_test(tc, test_crash_keeps_committed);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_refuse_random_bytes);
    tcase_add_test(tc, test_refuse_run_store);
    tcase_add_test(tc, test_refuse_foreign_and_newer);
    tcase_add_test(tc, test_open_missing);
    tcase_add_test(tc, test_truncated_blob);
    tcase_add_test(tc, test_mismatch_and_unknown_task);
    suite_add_tcase(s, tc);

    tc = tcase_create("collect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_collected_episodes_replay);
    tcase_add_test(tc, test_collect_side_by_side);
    tcase_add_test(tc, test_verify_says_why_not);
    tcase_add_test(tc, test_collect_no_malloc);
    tcase_add_test(tc, test_random_fraction);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cli_refuses_bad_input);
    tcase_add_test(tc, test_cli_collect_info_verify);
    tcase_add_test(tc, test_cli_interrupt);
    tcase_add_test(tc, test_cli_policy_sources);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(dataset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
