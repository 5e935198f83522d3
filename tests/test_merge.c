/* Tests of crl_store_merge and `crl merge`: shards built through the store
 * API (runs with tasks, metrics, evals, episodes and checkpoints) are merged
 * and the output is read back through independent sqlite3 connections. What
 * is checked: the merged file holds exactly the union of the shards with new
 * run ids (every table, every run-keyed row, episode ids renumbered); merging
 * again adds nothing; a run that got further replaces its merged copy under
 * the same id and an older copy is left out; a foreign, corrupt, empty,
 * non-SQLite or other-version shard refuses the whole merge and leaves the
 * output byte for byte as it was (or absent). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "crl/store.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/crl_test_merge_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void) {
    if (g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

/* Path of a file in this test's directory (rotating static buffers, for
 * arguments; paths kept across calls are copied with KEEP). */
static const char *tp(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

#define KEEP(var, name)                                                                  \
    char var[256];                                                                       \
    snprintf(var, sizeof var, "%s/%s", g_dir, name)

#define OK(call)                                                                         \
    do {                                                                                 \
        e.msg[0] = 0;                                                                    \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == CRL_OK, "%s -> %d (%s)", #call, rc_, e.msg);                \
    } while (0)

/* One integer from a query on a file (read-only, independent connection). */
static long long q1(const char *path, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(h));
    long long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void exec_on(const char *path, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql,
                  msg ? msg : "?");
    sqlite3_close(h);
}

/* Every row of a query as one sorted text (the order-free content). */
static char *rows_text(const char *path, const char *sql) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char full[1024];
    snprintf(full, sizeof full, "SELECT group_concat(x, char(10)) FROM (%s ORDER BY 1)",
             sql);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, full, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(h));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const char *t = (const char *)sqlite3_column_text(st, 0);
    char *out = strdup(t ? t : "");
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

/* A run as a shard would hold it: 2 tasks, metrics, evals, episodes (with a
 * recognisable payload) and a checkpoint. steps: evaluations done. */
static int64_t make_run(crl_store *s, const char *method, uint64_t seed, int steps,
                        const char *status) {
    crl_err e = {0};
    int64_t id = 0;
    crl_kv kv[] = {{"steps_per_task", NULL, 100}, {"tag", method, 0}};
    OK(crl_store_run_create(s, method, "t1", seed, kv, 2, &id, &e));
    for (int k = 0; k < 2; k++) OK(crl_store_task_start(s, id, k, "push", 100 * k, &e));
    OK(crl_store_task_end(s, id, 0, 100, &e));
    for (int t = 1; t <= steps; t++) {
        int64_t step = 50 * t;
        OK(crl_store_metric(s, id, step, "loss", 1.0 / t + (double)seed, &e));
        for (int k = 0; k < 2; k++) {
            crl_eval_row r = {id,
                              step,
                              step > 100,
                              k,
                              3,
                              0.25 * (double)((t + k + (int)seed) % 5),
                              10.0 * t + k + 0.5 * (double)seed,
                              NAN};
            OK(crl_store_eval(s, &r, &e));
        }
        unsigned char data[64];
        for (int b = 0; b < 64; b++) data[b] = (unsigned char)(b * 7 + t + (int)seed);
        crl_episode_row ep = {0,       id,     step,   0,       "eval",     t,
                              1,       seed,   10 + t, 1.5 * t, t % 2,      "push",
                              "2.2.2", "abc1", "{}",   data,    sizeof data};
        OK(crl_store_episode(s, &ep, &e));
    }
    unsigned char blob[32];
    memset(blob, (int)seed, sizeof blob);
    OK(crl_store_checkpoint_put(s, id, 0, 50 * steps, blob, sizeof blob, &e));
    if (status) OK(crl_store_run_set_status(s, id, status, &e));
    return id;
}

static void make_shard(const char *path, int n_runs, uint64_t seed0) {
    crl_err e = {0};
    crl_store *s = NULL;
    OK(crl_store_open(path, 1, &s, &e));
    for (int i = 0; i < n_runs; i++)
        make_run(s, i % 2 ? "packnet" : "ft1", seed0 + (uint64_t)i, 4, "finished");
    crl_store_close(s);
}

/* The tables a crl database holds runs in (everything but bookkeeping). */
static int data_tables(const char *path, char names[][64], int cap) {
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(h,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name"
                           " NOT LIKE 'sqlite_%' AND name NOT IN ('schema_migrations',"
                           " 'merge_runs') ORDER BY name",
                           -1, &st, NULL),
        SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < cap)
        snprintf(names[n++], 64, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static long long count(const char *path, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%.63s\"", table);
    return q1(path, sql);
}

/* Rows keyed by what identifies the run (method, seed), not its id. */
#define EVALS_BY_RUN                                                                     \
    "SELECT r.method || ' ' || r.seed || ' ' || e.step || ' ' || e.train_task_idx || "   \
    "' ' || e.eval_task_idx || ' ' || e.episodes || ' ' || quote(e.success_rate) || "    \
    "' ' || quote(e.mean_return) || ' ' || quote(e.det_return) AS x FROM evals e JOIN "  \
    "runs r ON r.id = e.run_id"
#define EPISODES_BY_RUN                                                                  \
    "SELECT r.method || ' ' || r.seed || ' ' || p.step || ' ' || p.episode || ' ' || "   \
    "hex(p.data) || ' ' || p.env_seed AS x FROM episodes p JOIN runs r ON r.id = "       \
    "p.run_id"

static void add_text(char **acc, char *more) {
    if (!*more) {
        free(more);
        return;
    }
    size_t a = *acc ? strlen(*acc) : 0, b = strlen(more);
    *acc = realloc(*acc, a + b + 2);
    ck_assert_ptr_nonnull(*acc);
    if (a) (*acc)[a++] = '\n';
    memcpy(*acc + a, more, b + 1);
    free(more);
}

/* Sort the lines of a text (so a union of shards compares with a merge);
 * takes t and gives back a new malloc'd text. */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static char *sorted_lines(char *t) {
    size_t n = 1, len = strlen(t) + 2;
    for (char *p = t; *p; p++) n += *p == '\n';
    char **v = malloc(n * sizeof *v);
    size_t k = 0;
    for (char *save = NULL, *l = strtok_r(t, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save))
        v[k++] = l;
    qsort(v, k, sizeof *v, cmp_str);
    char *out = calloc(len, 1);
    for (size_t i = 0; i < k; i++) {
        strcat(out, v[i]);
        if (i + 1 < k) strcat(out, "\n");
    }
    free(v);
    free(t);
    return out;
}

START_TEST(test_union_and_renumbering) {
    crl_err e = {0};
    KEEP(a, "a.db");
    KEEP(b, "b.db");
    KEEP(out, "out.db");
    make_shard(a, 2, 1); /* runs 1, 2 of a: ft1 seed 1, packnet seed 2 */
    make_shard(b, 2, 3); /* runs 1, 2 of b: ft1 seed 3, packnet seed 4 */
    const char *shards[] = {a, b};
    crl_merge_stats st;
    OK(crl_store_merge(out, shards, 2, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.shards, 2);
    ck_assert_int_eq(st.runs_added, 4);
    ck_assert_int_eq(st.runs_same + st.runs_updated + st.runs_older, 0);
    /* New ids 1..4 in shard order; b's runs 1, 2 became 3, 4. */
    ck_assert_int_eq(
        q1(out, "SELECT group_concat(id, '') FROM (SELECT id FROM runs ORDER BY id)"),
        1234);
    ck_assert_int_eq(q1(out, "SELECT id FROM runs WHERE seed = 3"), 3);
    ck_assert_int_eq(q1(out, "SELECT id FROM runs WHERE seed = 4"), 4);
    /* Every table: merged rows = sum of the shards' rows. */
    char names[32][64];
    int n = data_tables(out, names, 32);
    ck_assert_int_ge(n, 6); /* runs, tasks, metrics, evals, checkpoints, episodes */
    long long rows = 0;
    for (int i = 0; i < n; i++) {
        long long want = count(a, names[i]) + count(b, names[i]);
        ck_assert_msg(count(out, names[i]) == want, "table %s: %lld rows, want %lld",
                      names[i], count(out, names[i]), want);
        rows += want;
    }
    ck_assert_int_eq(st.rows, rows);
    /* Content modulo run ids: evals and episodes (payload included). */
    const char *qs[] = {EVALS_BY_RUN, EPISODES_BY_RUN};
    for (int k = 0; k < 2; k++) {
        char *u = NULL;
        add_text(&u, rows_text(a, qs[k]));
        add_text(&u, rows_text(b, qs[k]));
        char *want = sorted_lines(u), *got = sorted_lines(rows_text(out, qs[k]));
        ck_assert_str_eq(got, want);
        free(want);
        free(got);
    }
    /* Episode ids are the output's own (1..16), each with its run. */
    ck_assert_int_eq(q1(out, "SELECT count(DISTINCT id) FROM episodes"), 16);
    ck_assert_int_eq(q1(out, "SELECT max(id) FROM episodes"), 16);
    ck_assert_int_eq(q1(out, "SELECT count(*) FROM episodes p JOIN runs r ON r.id ="
                             " p.run_id WHERE r.seed = 3 AND p.env_seed = 3"),
                     4);
    /* Checkpoint blobs went with their run. */
    ck_assert_int_eq(q1(out, "SELECT count(*) FROM checkpoints c JOIN runs r ON r.id ="
                             " c.run_id WHERE c.blob = zeroblob(0) OR"
                             " hex(substr(c.blob, 1, 1)) != printf('%02X', r.seed)"),
                     0);
    ck_assert_int_eq(q1(out, "PRAGMA foreign_key_check"), -1); /* no rows */
    /* The other order numbers the runs the other way, same content. */
    const char *rev[] = {b, a};
    KEEP(out2, "out2.db");
    OK(crl_store_merge(out2, rev, 2, NULL, NULL, &st, &e));
    ck_assert_int_eq(q1(out2, "SELECT id FROM runs WHERE seed = 3"), 1);
    char *x = sorted_lines(rows_text(out, EVALS_BY_RUN));
    char *y = sorted_lines(rows_text(out2, EVALS_BY_RUN));
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
    /* The merged store reads like any other. */
    crl_store *s = NULL;
    OK(crl_store_open(out, 0, &s, &e));
    crl_run_info info;
    OK(crl_store_run_get(s, 4, &info, NULL, &e));
    ck_assert_str_eq(info.method, "packnet");
    ck_assert_int_eq((int)info.seed, 4);
    crl_store_close(s);
}
END_TEST

START_TEST(test_idempotent) {
    crl_err e = {0};
    KEEP(a, "a.db");
    KEEP(b, "b.db");
    KEEP(out, "out.db");
    make_shard(a, 2, 1);
    make_shard(b, 1, 7);
    const char *both[] = {a, b};
    crl_merge_stats st;
    OK(crl_store_merge(out, both, 2, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_added, 3);
    char *before = rows_text(out, EVALS_BY_RUN);
    long long n_ep = count(out, "episodes"), n_m = count(out, "metrics");
    /* Again, the same shard twice in one call, and a copy of a shard under
     * another name: nothing is added. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s %s", a, tp("a-copy.db"));
    ck_assert_int_eq(system(cmd), 0);
    const char *again[] = {a, b, a, tp("a-copy.db")};
    OK(crl_store_merge(out, again, 4, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_added, 0);
    ck_assert_int_eq(st.runs_same, 7);
    ck_assert_int_eq(st.rows, 0);
    ck_assert_int_eq(count(out, "runs"), 3);
    ck_assert_int_eq(count(out, "episodes"), n_ep);
    ck_assert_int_eq(count(out, "metrics"), n_m);
    char *after = rows_text(out, EVALS_BY_RUN);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    /* The merged file as a shard of another merge (a study of studies), and
     * merged back into itself: still the same three runs. */
    KEEP(out2, "out2.db");
    const char *m1[] = {out, a};
    OK(crl_store_merge(out2, m1, 2, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_added, 3);
    ck_assert_int_eq(st.runs_same, 2);
    const char *self[] = {out};
    OK(crl_store_merge(out, self, 1, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.shards, 0);
    ck_assert_int_eq(count(out, "runs"), 3);
}
END_TEST

START_TEST(test_progress_replaces_older_left_out) {
    crl_err e = {0};
    KEEP(a, "a.db");
    KEEP(out, "out.db");
    crl_store *s = NULL;
    OK(crl_store_open(a, 1, &s, &e));
    int64_t other = make_run(s, "ft1", 5, 4, "finished");
    int64_t id = make_run(s, "ewc", 9, 2, "interrupted");
    crl_store_close(s);
    ck_assert_int_eq(other, 1);
    /* An early copy of the shard, as a sweep's merge while it runs. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s %s", a, tp("early.db"));
    ck_assert_int_eq(system(cmd), 0);
    const char *sa[] = {a};
    crl_merge_stats st;
    OK(crl_store_merge(out, sa, 1, NULL, NULL, &st, &e));
    ck_assert_int_eq(q1(out, "SELECT id FROM runs WHERE method = 'ewc'"), 2);
    ck_assert_int_eq(count(out, "evals"), 12);
    /* The run goes on (resumed) and finishes. */
    OK(crl_store_open(a, 0, &s, &e));
    for (int t = 3; t <= 6; t++) {
        crl_eval_row r = {id, 50 * t, 1, 0, 3, 0.5, 1.0 * t, 2.0};
        OK(crl_store_eval(s, &r, &e));
    }
    OK(crl_store_run_set_status(s, id, "finished", &e));
    crl_store_close(s);
    OK(crl_store_merge(out, sa, 1, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_updated, 1);
    ck_assert_int_eq(st.runs_same, 1);
    ck_assert_int_eq(count(out, "runs"), 2);
    /* Same id, the new content, nothing of the old copy left over. */
    ck_assert_int_eq(q1(out, "SELECT id FROM runs WHERE method = 'ewc'"), 2);
    ck_assert_int_eq(q1(out, "SELECT status = 'finished' FROM runs WHERE id = 2"), 1);
    ck_assert_int_eq(q1(out, "SELECT count(*) FROM evals WHERE run_id = 2"), 8);
    ck_assert_int_eq(q1(out, "SELECT count(*) FROM episodes WHERE run_id = 2"), 2);
    ck_assert_int_eq(count(out, "evals"), 8 + 8);
    char *want = sorted_lines(rows_text(a, EVALS_BY_RUN));
    char *got = sorted_lines(rows_text(out, EVALS_BY_RUN));
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
    /* The early copy now is behind: left out, with a note. */
    const char *se[] = {tp("early.db")};
    OK(crl_store_merge(out, se, 1, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_older, 1);
    ck_assert_int_eq(st.runs_same, 1);
    ck_assert_int_eq(q1(out, "SELECT count(*) FROM evals WHERE run_id = 2"), 8);
}
END_TEST

/* Bytes of a file, for "untouched" checks. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(text, 1, n, f), n);
    fclose(f);
}

/* Merging good + bad shards fails with want and message part `msg`, and
 * leaves out as it was. */
static void refused(const char *out, const char *bad, int want, const char *msg) {
    crl_err e = {0};
    size_t n0 = 0, n1 = 0;
    char *before = slurp(out, &n0);
    const char *shards[] = {tp("good.db"), bad};
    crl_merge_stats st;
    int rc = crl_store_merge(out, shards, 2, NULL, NULL, &st, &e);
    ck_assert_msg(rc == want, "%s: rc %d, want %d (%s)", bad, rc, want, e.msg);
    ck_assert_msg(strstr(e.msg, msg) != NULL, "message '%s' lacks '%s'", e.msg, msg);
    ck_assert_msg(strstr(e.msg, bad) != NULL, "message '%s' does not name the shard",
                  e.msg);
    char *after = slurp(out, &n1);
    if (!before) {
        ck_assert_msg(after == NULL, "%s was created by a refused merge", out);
    } else {
        ck_assert_int_eq(n0, n1);
        ck_assert_msg(memcmp(before, after, n0) == 0, "%s changed", out);
    }
    free(before);
    free(after);
}

START_TEST(test_refusals) {
    crl_err e = {0};
    make_shard(tp("good.db"), 1, 1);
    make_shard(tp("other.db"), 1, 2);
    KEEP(out, "out.db");
    KEEP(fresh, "fresh.db");
    const char *first[] = {tp("other.db")};
    OK(crl_store_merge(out, first, 1, NULL, NULL, NULL, &e));
    /* Not SQLite, empty, a foreign SQLite database. */
    char text[2000];
    memset(text, 'x', sizeof text);
    write_file(tp("text.db"), text, sizeof text);
    write_file(tp("empty.db"), "", 0);
    exec_on(tp("foreign.db"), "CREATE TABLE runs (id INTEGER PRIMARY KEY, x TEXT);"
                              " INSERT INTO runs (x) VALUES ('a')");
    const char *bad[] = {"text.db", "empty.db", "foreign.db"};
    for (int i = 0; i < 3; i++) {
        refused(out, tp(bad[i]), CRL_ECORRUPT, "not a crl database");
        refused(fresh, tp(bad[i]), CRL_ECORRUPT, "not a crl database");
    }
    /* Other schema versions, older and newer. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s %s && cp %s %s", tp("good.db"), tp("old.db"),
             tp("good.db"), tp("new.db"));
    ck_assert_int_eq(system(cmd), 0);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", CRL_STORE_SCHEMA_VERSION - 1);
    exec_on(tp("old.db"), sql);
    exec_on(tp("new.db"), "PRAGMA user_version = 99");
    refused(out, tp("old.db"), CRL_EVERSION, "schema version");
    refused(out, tp("new.db"), CRL_EVERSION, "schema version 99");
    refused(fresh, tp("new.db"), CRL_EVERSION, "schema version 99");
    /* Corrupt: a page in the middle overwritten. */
    snprintf(cmd, sizeof cmd, "cp %s %s", tp("good.db"), tp("corrupt.db"));
    ck_assert_int_eq(system(cmd), 0);
    long long pages = q1(tp("corrupt.db"), "PRAGMA page_count");
    long long psz = q1(tp("corrupt.db"), "PRAGMA page_size");
    ck_assert_int_ge(pages, 4);
    int fd = open(tp("corrupt.db"), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    char junk[512];
    memset(junk, 0xA5, sizeof junk);
    for (long long p = 1; p < pages; p++)
        ck_assert_int_eq(pwrite(fd, junk, sizeof junk, (off_t)(p * psz)), sizeof junk);
    close(fd);
    refused(out, tp("corrupt.db"), CRL_ECORRUPT, "corrupt");
    /* A table that refers to no run cannot be split by run. */
    snprintf(cmd, sizeof cmd, "cp %s %s", tp("good.db"), tp("extra.db"));
    ck_assert_int_eq(system(cmd), 0);
    exec_on(tp("extra.db"), "CREATE TABLE notes (x TEXT)");
    refused(out, tp("extra.db"), CRL_EINVAL, "refers to no run");
    /* A missing shard. */
    refused(out, tp("missing.db"), CRL_ENOTFOUND, "No such file");
    /* And the good one still merges. */
    const char *g[] = {tp("good.db")};
    crl_merge_stats st;
    OK(crl_store_merge(out, g, 1, NULL, NULL, &st, &e));
    ck_assert_int_eq(st.runs_added, 1);
    ck_assert_int_eq(count(out, "runs"), 2);
}
END_TEST

/* The command: exit codes, one clear line, the summary. */
static int run_cli(const char *args, char *err_out, size_t cap) {
    const char *bin = getenv("CRL_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s merge %s 2>%s/stderr.txt >/dev/null",
             bin ? bin : "./crl", args, g_dir);
    int st = system(cmd);
    size_t n = 0;
    char *t = slurp(tp("stderr.txt"), &n);
    snprintf(err_out, cap, "%.*s", (int)n, t ? t : "");
    free(t);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli) {
    make_shard(tp("a.db"), 2, 1);
    make_shard(tp("b.db"), 1, 5);
    write_file(tp("junk.db"), "junk", 4);
    char args[1024], err[4096];
    snprintf(args, sizeof args, "%s %s -o %s", tp("a.db"), tp("b.db"), tp("m.db"));
    ck_assert_int_eq(run_cli(args, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "3 runs added") != NULL, "%s", err);
    ck_assert_int_eq(run_cli(args, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "0 runs added, 0 updated, 3 already merged") != NULL, "%s",
                  err);
    snprintf(args, sizeof args, "%s %s -o %s", tp("a.db"), tp("junk.db"), tp("m.db"));
    ck_assert_int_eq(run_cli(args, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "junk.db is not a crl database") != NULL &&
                      strstr(err, "m.db was not changed") != NULL,
                  "%s", err);
    snprintf(args, sizeof args, "%s", tp("a.db"));
    ck_assert_int_eq(run_cli(args, err, sizeof err), 2);
    ck_assert_msg(strstr(err, "-o OUT.db is required") != NULL, "%s", err);
    snprintf(args, sizeof args, "--bogus -o %s", tp("m.db"));
    ck_assert_int_eq(run_cli(args, err, sizeof err), 2);
    ck_assert_int_eq(q1(tp("m.db"), "SELECT count(*) FROM runs"), 3);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("merge");
    TCase *tc = tcase_create("merge");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_union_and_renumbering);
    tcase_add_test(tc, test_idempotent);
    tcase_add_test(tc, test_progress_replaces_older_left_out);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_cli);
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
