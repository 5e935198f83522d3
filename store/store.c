/* crl store: the SQLite run store. Schema, migrations, batched writes,
 * queries and checkpoints. See include/crl/store.h for the contract and
 * docs/schema.md for the tables as other programs see them.
 *
 * Two rules shape this file:
 *  - A file that is not ours, or is newer than us, is never written to. Open
 *    therefore only reads until the identity checks pass; even switching to
 *    WAL (a header write) waits until then.
 *  - A crash loses at most the current batch. Metrics and evals go into one
 *    lazily started BEGIN IMMEDIATE transaction that is committed by flush,
 *    by any non-batched write (run, status, task, checkpoint), by close, or
 *    automatically once it holds BATCH_MAX_ROWS rows or is BATCH_MAX_SECONDS
 *    old (checked at the next batched write, and by crl_store_tick, which the
 *    trainers call every step: the batch holds the write lock, and a trainer
 *    that logs only every few seconds would otherwise hold it that long and
 *    lock out a second trainer writing to the same file). */
#include "crl/store.h"

#include "store/internal.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BATCH_MAX_ROWS          1000
#define BATCH_MAX_SECONDS       2.0
#define DEFAULT_BUSY_TIMEOUT_MS 5000
/* A status that ends a run waits this many busy timeouts (at least
 * STATUS_BUSY_MIN_MS) on its retry. */
#define STATUS_BUSY_FACTOR 12
#define STATUS_BUSY_MIN_MS 10000

/* ------------------------------------------------------------------------ */
/* Schema and migrations                                                     */

/* MIGRATIONS[i] upgrades a file from schema version i to i + 1. Version 0 is
 * an empty database (or one that carries our application_id and nothing
 * else). Each migration runs in its own transaction together with the
 * user_version bump and a row in schema_migrations, so a crash leaves the
 * file at version i or i + 1, never in between. Append only: a migration
 * that has shipped is never edited. Migrations run with foreign_keys OFF (the
 * pragma cannot change inside a transaction, and SQLite's table-rebuild
 * recipe needs it off); PRAGMA foreign_key_check runs before each commit. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1: the initial schema. */
    "CREATE TABLE runs (\n"
    "  id          INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  created_at  TEXT NOT NULL,\n"
    "  status      TEXT NOT NULL DEFAULT 'running'\n"
    "              CHECK (status IN ('running','finished','failed','interrupted')),\n"
    "  method      TEXT NOT NULL,\n"
    "  scenario    TEXT NOT NULL,\n"
    "  seed        INTEGER NOT NULL,\n"
    "  config_json TEXT NOT NULL DEFAULT '{}'\n"
    ");\n"
    "CREATE TABLE tasks (\n"
    "  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  idx        INTEGER NOT NULL CHECK (idx >= 0),\n"
    "  name       TEXT NOT NULL,\n"
    "  start_step INTEGER NOT NULL CHECK (start_step >= 0),\n"
    "  end_step   INTEGER CHECK (end_step IS NULL OR end_step >= start_step),\n"
    "  PRIMARY KEY (run_id, idx)\n"
    ");\n"
    "CREATE TABLE metrics (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step   INTEGER NOT NULL CHECK (step >= 0),\n"
    "  key    TEXT NOT NULL,\n"
    "  value  REAL,\n"
    "  UNIQUE (run_id, key, step)\n"
    ");\n"
    "CREATE INDEX metrics_run_step ON metrics(run_id, step);\n"
    "CREATE TABLE evals (\n"
    "  run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step           INTEGER NOT NULL CHECK (step >= 0),\n"
    "  train_task_idx INTEGER NOT NULL CHECK (train_task_idx >= 0),\n"
    "  eval_task_idx  INTEGER NOT NULL CHECK (eval_task_idx >= 0),\n"
    "  episodes       INTEGER NOT NULL CHECK (episodes >= 0),\n"
    "  success_rate   REAL CHECK (success_rate BETWEEN 0 AND 1),\n"
    "  mean_return    REAL,\n"
    "  UNIQUE (run_id, step, eval_task_idx)\n"
    ");\n"
    "CREATE TABLE checkpoints (\n"
    "  run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  task_idx INTEGER NOT NULL CHECK (task_idx >= 0),\n"
    "  step     INTEGER NOT NULL CHECK (step >= 0),\n"
    "  blob     BLOB NOT NULL,\n"
    "  PRIMARY KEY (run_id, step)\n"
    ");\n"
    "CREATE TABLE schema_migrations (\n"
    "  version    INTEGER PRIMARY KEY,\n"
    "  applied_at TEXT NOT NULL\n"
    ");\n",
    /* 1 -> 2: the deterministic episode's return of each evaluation (the
     * locomotion score). NULL in rows written before. */
    "ALTER TABLE evals ADD COLUMN det_return REAL;\n",
    /* 2 -> 3: logged episodes, each with the record that replays it exactly
     * (docs/replay.md). The unique key lets a resumed run replace an
     * episode it logs again. */
    "CREATE TABLE episodes (\n"
    "  id             INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step           INTEGER NOT NULL CHECK (step >= 0),\n"
    "  task_idx       INTEGER NOT NULL CHECK (task_idx >= 0),\n"
    "  kind           TEXT NOT NULL CHECK (kind IN ('eval','train')),\n"
    "  episode        INTEGER NOT NULL CHECK (episode >= 0),\n"
    "  deterministic  INTEGER NOT NULL CHECK (deterministic IN (0,1)),\n"
    "  env            TEXT NOT NULL,\n"
    "  env_seed       INTEGER NOT NULL,\n"
    "  length         INTEGER NOT NULL CHECK (length >= 0),\n"
    "  ep_return      REAL,\n"
    "  success        INTEGER NOT NULL CHECK (success IN (0,1)),\n"
    "  mujoco_version TEXT NOT NULL,\n"
    "  model_hash     TEXT NOT NULL,\n"
    "  modifiers      TEXT NOT NULL DEFAULT '{}',\n"
    "  data           BLOB NOT NULL,\n"
    "  UNIQUE (run_id, kind, task_idx, step, episode)\n"
    ");\n",
    /* 3 -> 4: CSP's grow-or-prune decision at every task end (docs/subspace.md):
     * whether the new anchor stayed, the best validation returns of the new
     * and the old subspace, the anchors after the decision and the alpha the
     * task keeps (a JSON array over the anchors). */
    "CREATE TABLE csp_decisions (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  task_idx  INTEGER NOT NULL CHECK (task_idx >= 0),\n"
    "  step      INTEGER NOT NULL CHECK (step >= 0),\n"
    "  kept      INTEGER NOT NULL CHECK (kept IN (0,1)),\n"
    "  best_new  REAL,\n"
    "  best_old  REAL,\n"
    "  n_anchors INTEGER NOT NULL CHECK (n_anchors >= 1),\n"
    "  alpha     TEXT NOT NULL,\n"
    "  PRIMARY KEY (run_id, task_idx)\n"
    ");\n",
    /* 4 -> 5: how CSP decided (issue 21, docs/csp.md): the deciding
     * criterion, the rollouts per finalist, the finalists' mean success and
     * mean Q, the decision a check on more episodes makes, the decision's
     * wall time. NULL in rows of decisions made before. */
    "ALTER TABLE csp_decisions ADD COLUMN criterion TEXT"
    " CHECK (criterion IS NULL OR criterion IN ('success','return'));\n"
    "ALTER TABLE csp_decisions ADD COLUMN rollouts INTEGER"
    " CHECK (rollouts IS NULL OR rollouts >= 1);\n"
    "ALTER TABLE csp_decisions ADD COLUMN new_success REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN old_success REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN q_new REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN q_old REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN check_kept INTEGER"
    " CHECK (check_kept IS NULL OR check_kept IN (0,1));\n"
    "ALTER TABLE csp_decisions ADD COLUMN check_new REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN check_old REAL;\n"
    "ALTER TABLE csp_decisions ADD COLUMN wall_s REAL;\n",
    /* 5 -> 6: issue 23. A run being trained has one owner: its lease (host,
     * pid, the pid's start time, when it took the run, its last heartbeat;
     * times are Unix seconds). Checkpoint and episode blobs carry zlib's
     * crc32 of their bytes, checked on every read; NULL in rows written
     * before (read unchecked). */
    "CREATE TABLE leases (\n"
    "  run_id       INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  host         TEXT NOT NULL,\n"
    "  pid          INTEGER NOT NULL,\n"
    "  pid_start    INTEGER NOT NULL DEFAULT 0,\n"
    "  since        REAL NOT NULL,\n"
    "  heartbeat    REAL NOT NULL\n"
    ");\n"
    "ALTER TABLE checkpoints ADD COLUMN crc32 INTEGER;\n"
    "ALTER TABLE episodes ADD COLUMN crc32 INTEGER;\n",
    /* 6 -> 7: issue 24, run tracking (docs/tracking.md). A run's name
     * (`crl train --name`; NULL: none) and its tags (`--tag`, repeatable),
     * in the order given. Labels, not configuration: they are not in
     * config_json, so that `crl diff` and a resume see only what trains. */
    "ALTER TABLE runs ADD COLUMN name TEXT CHECK (name IS NULL OR length(name) >= 1);\n"
    "CREATE TABLE run_tags (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  pos    INTEGER NOT NULL CHECK (pos >= 0),\n"
    "  tag    TEXT NOT NULL CHECK (length(tag) >= 1),\n"
    "  PRIMARY KEY (run_id, tag)\n"
    ");\n"
    "CREATE INDEX run_tags_tag ON run_tags(tag);\n",
};
_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == CRL_STORE_SCHEMA_VERSION,
               "one migration per schema version");

#define NOW_ISO "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

/* ------------------------------------------------------------------------ */
/* Cached statements                                                         */

enum {
    ST_CONFIG_ADD,
    ST_CONFIG_ADD_NUM,
    ST_RUN_INSERT,
    ST_RUN_TAG,
    ST_RUN_STATUS,
    ST_TASK_START,
    ST_TASK_END,
    ST_METRIC,
    ST_EVAL,
    ST_CKPT_PUT,
    ST_CKPT_LATEST,
    ST_RUNS,
    ST_RUN_GET,
    ST_EVALS,
    ST_EPISODE,
    ST_EPISODE_GET,
    ST_EPISODES,
    ST_EPISODES_META,
    ST_CSP_DECISION,
    ST_LEASE_RENEW,
    ST__COUNT
};

#define RUN_COLUMNS                                                                      \
    "SELECT r.id, r.created_at, r.status, r.method, r.scenario, r.seed,"                 \
    " max(coalesce((SELECT max(step) FROM evals e WHERE e.run_id = r.id), 0),"           \
    "     coalesce((SELECT max(step) FROM metrics m WHERE m.run_id = r.id), 0)),"        \
    " r.config_json FROM runs r "

static const char *const SQL[ST__COUNT] = {
    /* json_object takes any key verbatim (a json_set path would need quoting
     * of '"' and '.'); json_patch merges it in, last duplicate wins. */
    [ST_CONFIG_ADD] = "SELECT json_patch(?1, json_object(?2, ?3))",
    /* json() turns the decimal text into a JSON number verbatim (SQLite 3.40
     * renders a bound REAL with only 15 digits). */
    [ST_CONFIG_ADD_NUM] = "SELECT json_patch(?1, json_object(?2, json(?3)))",
    [ST_RUN_INSERT] =
        "INSERT INTO runs (created_at, status, method, scenario, seed,"
        " config_json, name) VALUES (" NOW_ISO ", 'running', ?1, ?2, ?3, ?4,"
        " ?5)",
    [ST_RUN_TAG] = "INSERT INTO run_tags (run_id, pos, tag) VALUES (?1, ?2, ?3)",
    [ST_RUN_STATUS] = "UPDATE runs SET status = ?2 WHERE id = ?1",
    /* Restarting a task (a resumed run) replaces it and reopens it. */
    [ST_TASK_START] = "INSERT INTO tasks (run_id, idx, name, start_step, end_step)"
                      " VALUES (?1, ?2, ?3, ?4, NULL)"
                      " ON CONFLICT (run_id, idx) DO UPDATE SET name = excluded.name,"
                      " start_step = excluded.start_step, end_step = NULL",
    [ST_TASK_END] = "UPDATE tasks SET end_step = ?3 WHERE run_id = ?1 AND idx = ?2",
    [ST_CSP_DECISION] =
        "INSERT OR REPLACE INTO csp_decisions (run_id, task_idx, step, kept,"
        " best_new, best_old, n_anchors, alpha, criterion, rollouts, new_success,"
        " old_success, q_new, q_old, check_kept, check_new, check_old, wall_s)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
        " ?16, ?17, ?18)",
    [ST_METRIC] = "INSERT INTO metrics (run_id, step, key, value) VALUES (?1, ?2, ?3, ?4)"
                  " ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value",
    [ST_EVAL] =
        "INSERT INTO evals (run_id, step, train_task_idx, eval_task_idx, episodes,"
        " success_rate, mean_return, det_return) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (run_id, step, eval_task_idx) DO UPDATE SET"
        " train_task_idx = excluded.train_task_idx, episodes = excluded.episodes,"
        " success_rate = excluded.success_rate,"
        " mean_return = excluded.mean_return, det_return = excluded.det_return",
    [ST_CKPT_PUT] =
        "INSERT INTO checkpoints (run_id, task_idx, step, blob, crc32)"
        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, step) DO UPDATE SET"
        " task_idx = excluded.task_idx, blob = excluded.blob,"
        " crc32 = excluded.crc32",
    [ST_CKPT_LATEST] = "SELECT task_idx, step, blob, crc32 FROM checkpoints"
                       " WHERE run_id = ?1 AND step < ?2 ORDER BY step DESC LIMIT 1",
    [ST_LEASE_RENEW] = "UPDATE leases SET heartbeat = ?4 WHERE run_id = ?1 AND host = ?2"
                       " AND pid = ?3",
    [ST_RUNS] = RUN_COLUMNS "ORDER BY r.id",
    [ST_RUN_GET] = RUN_COLUMNS "WHERE r.id = ?1",
    [ST_EVALS] = "SELECT run_id, step, train_task_idx, eval_task_idx, episodes,"
                 " success_rate, mean_return, det_return FROM evals WHERE run_id = ?1"
                 " ORDER BY step, eval_task_idx",
    [ST_EPISODE] =
        "INSERT INTO episodes (run_id, step, task_idx, kind, episode, deterministic, env,"
        " env_seed, length, ep_return, success, mujoco_version, model_hash, modifiers,"
        " data, crc32) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16)"
        " ON CONFLICT (run_id, kind, task_idx, step, episode) DO UPDATE SET"
        " deterministic = excluded.deterministic, env = excluded.env,"
        " env_seed = excluded.env_seed, length = excluded.length,"
        " ep_return = excluded.ep_return, success = excluded.success,"
        " mujoco_version = excluded.mujoco_version, model_hash = excluded.model_hash,"
        " modifiers = excluded.modifiers, data = excluded.data, crc32 = excluded.crc32",
#define EPISODE_COLUMNS                                                                  \
    "SELECT id, run_id, step, task_idx, kind, episode, deterministic, env, env_seed,"    \
    " length, ep_return, success, mujoco_version, model_hash, modifiers, "
    [ST_EPISODE_GET] =
        EPISODE_COLUMNS "data, length(data), crc32 FROM episodes WHERE id = ?1",
    [ST_EPISODES] = EPISODE_COLUMNS
    "data, length(data), crc32 FROM episodes WHERE run_id = ?1 ORDER BY id",
    [ST_EPISODES_META] = EPISODE_COLUMNS
    "NULL, length(data), crc32 FROM episodes WHERE run_id = ?1 ORDER BY id",
};

struct crl_store {
    sqlite3 *db;
    char *path;
    int busy_ms;
    int in_txn;      /* we hold a BEGIN IMMEDIATE transaction */
    int batch_rows;  /* batched rows written in it, not yet committed */
    double batch_t0; /* crl_now() when it began */
    sqlite3_stmt *st[ST__COUNT];
    /* The run lease this process holds (0: none), crl_now() at its last
     * heartbeat, and the owner identity written into it. lease_lost: a run
     * whose lease another process took over; nothing more is written for it. */
    int64_t lease_run, lease_lost;
    double lease_t;
    int64_t pid, pid_start;
    char host[256];
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* Turn a failed sqlite3 call into a crl status with a one-line message that
 * names the file. Also notices when SQLite rolled our transaction back on its
 * own (I/O error, disk full, ...), so the caller learns the batch is gone. */
static int vfail(crl_store *s, crl_err *err, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int vfail(crl_store *s, crl_err *err, int rc, const char *fmt, va_list ap) {
    char what[192];
    vsnprintf(what, sizeof what, fmt, ap);
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    char lost[128] = "";
    if (s->in_txn && s->db && sqlite3_get_autocommit(s->db)) {
        if (s->batch_rows > 0)
            snprintf(lost, sizeof lost,
                     "; the transaction was rolled back, %d batched rows were lost",
                     s->batch_rows);
        s->in_txn = 0;
        s->batch_rows = 0;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return crl_errf(err, CRL_EBUSY,
                        "database %s is locked by another process (%s: %s after %d ms)%s",
                        s->path, what, msg, s->busy_ms, lost);
    case SQLITE_NOMEM:
        return crl_errf(err, CRL_ENOMEM, "%s: %s: out of memory%s", s->path, what, lost);
    case SQLITE_NOTADB:
        return crl_errf(err, CRL_ECORRUPT, "%s is not a crl database (not SQLite)",
                        s->path);
    case SQLITE_CORRUPT:
        return crl_errf(err, CRL_ECORRUPT, "database %s is corrupt (%s: %s)%s", s->path,
                        what, msg, lost);
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return crl_errf(err, CRL_EINVAL, "%s: %s: %s%s", s->path, what, msg, lost);
    case SQLITE_READONLY:
        return crl_errf(err, CRL_EIO, "database %s is read-only (%s: %s)%s", s->path,
                        what, msg, lost);
    case SQLITE_FULL:
        return crl_errf(err, CRL_EIO, "%s: %s: disk full (%s)%s", s->path, what, msg,
                        lost);
    default:
        return crl_errf(err, CRL_EIO, "%s: %s: %s%s", s->path, what, msg, lost);
    }
}

static int fail(crl_store *s, crl_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(crl_store *s, crl_err *err, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int ret = vfail(s, err, rc, fmt, ap);
    va_end(ap);
    return ret;
}

int crl_store_fail(crl_store *s, crl_err *err, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int ret = vfail(s, err, rc, fmt, ap);
    va_end(ap);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */

static int txn_begin(crl_store *s, crl_err *err) {
    if (s->in_txn) return CRL_OK;
    /* IMMEDIATE takes the write lock now (waiting up to the busy timeout), so
     * no later statement of this transaction can fail with SQLITE_BUSY. */
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return fail(s, err, rc, "cannot begin a write transaction");
    s->in_txn = 1;
    s->batch_rows = 0;
    s->batch_t0 = crl_now();
    return CRL_OK;
}

static int txn_commit(crl_store *s, crl_err *err) {
    if (!s->in_txn) return CRL_OK;
    int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(s, err, rc, "cannot commit %d batched rows", s->batch_rows);
    s->in_txn = 0;
    s->batch_rows = 0;
    return CRL_OK;
}

/* After a failed non-batched write: hand the write lock back, unless batched
 * rows are waiting in the transaction (they stay pending for the next flush). */
static void txn_release_if_empty(crl_store *s) {
    if (!s->in_txn || s->batch_rows > 0) return;
    if (sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK ||
        sqlite3_get_autocommit(s->db))
        s->in_txn = 0;
}

/* Finish a non-batched write that ran inside txn_begin: commit it together
 * with the pending batch, or on failure keep the batch and return rc. */
static int txn_finish(crl_store *s, int rc, crl_err *err) {
    if (rc != CRL_OK) {
        txn_release_if_empty(s);
        return rc;
    }
    return txn_commit(s, err);
}

/* ------------------------------------------------------------------------ */
/* Statements                                                                */

/* The cached statement, or a fresh one if the cached one is mid-iteration
 * (a callback of crl_store_runs/evals calling back into the store). */
static int stmt_get(crl_store *s, int which, sqlite3_stmt **out, int *temp,
                    crl_err *err) {
    *temp = 0;
    if (s->st[which] && !sqlite3_stmt_busy(s->st[which])) {
        *out = s->st[which];
        return CRL_OK;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(s->db, SQL[which], -1,
                                s->st[which] ? 0 : SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return fail(s, err, rc, "cannot prepare statement");
    }
    if (s->st[which])
        *temp = 1;
    else
        s->st[which] = st;
    *out = st;
    return CRL_OK;
}

static void stmt_put(sqlite3_stmt *st, int temp) {
    if (temp) {
        sqlite3_finalize(st);
        return;
    }
    /* Their return values repeat the error of the last step, which the caller
     * has already reported. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

/* Step a write statement to completion. A foreign-key failure means the run
 * does not exist, which is the caller's error, not the database's. */
static int step_write(crl_store *s, sqlite3_stmt *st, int64_t run_id, crl_err *err,
                      const char *what) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return CRL_OK;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return crl_errf(err, CRL_ENOTFOUND, "%s: %s: run %lld does not exist", s->path,
                        what, (long long)run_id);
    return fail(s, err, rc, "%s", what);
}

/* The shortest decimal text that reads back as exactly v, independent of
 * the process locale (a ',' decimal point would not be JSON). */
static int format_double(double v, char *buf, size_t cap) {
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c) return -1;
    locale_t old = uselocale(c);
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    uselocale(old);
    freelocale(c);
    return 0;
}

/* uint64 seeds are stored as the int64 with the same bits. */
static int64_t u64_to_i64(uint64_t u) {
    int64_t i;
    memcpy(&i, &u, sizeof i);
    return i;
}
static uint64_t i64_to_u64(int64_t i) {
    uint64_t u;
    memcpy(&u, &i, sizeof u);
    return u;
}

void crl_store_column_text(char *dst, size_t cap, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

double crl_store_column_real(sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return NAN;
    return sqlite3_column_double(st, col);
}

int crl_store_prepare(crl_store *s, const char *sql, sqlite3_stmt **st, const char *what,
                      crl_err *err) {
    *st = NULL;
    if (!s) return crl_errf(err, CRL_EINVAL, "%s: store is NULL", what);
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc == SQLITE_OK) return CRL_OK;
    sqlite3_finalize(*st);
    *st = NULL;
    return fail(s, err, rc, "%s", what);
}

static void fill_run_info(crl_run_info *info, sqlite3_stmt *st) {
    memset(info, 0, sizeof *info);
    info->id = sqlite3_column_int64(st, 0);
    crl_store_column_text(info->created_at, sizeof info->created_at, st, 1);
    crl_store_column_text(info->status, sizeof info->status, st, 2);
    crl_store_column_text(info->method, sizeof info->method, st, 3);
    crl_store_column_text(info->scenario, sizeof info->scenario, st, 4);
    info->seed = i64_to_u64(sqlite3_column_int64(st, 5));
    info->last_step = sqlite3_column_int64(st, 6);
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */

/* Run one single-value integer query (a pragma or count) during open. */
static int query_int(crl_store *s, const char *sql, int64_t *out, crl_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_INTERNAL; /* a pragma this SQLite lacks */
    }
    int ret = rc == SQLITE_OK ? CRL_OK : fail(s, err, rc, "cannot read %s", sql);
    sqlite3_finalize(st);
    return ret;
}

/* Decide what the file is, from reads only. *version receives the schema
 * version to migrate from (0 for an empty database). */
static int identify(crl_store *s, int *version, crl_err *err) {
    int64_t app_id = 0, user_version = 0, n_objects = 0;
    /* The three reads must see one snapshot: another process creating the
     * same new file may commit its first migration between two separate
     * reads, and (id 0, tables present) would look like a foreign file. A
     * deferred transaction holds its read snapshot from the first read on. */
    int in_txn = sqlite3_get_autocommit(s->db) &&
                 sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = query_int(s, "PRAGMA application_id", &app_id, err);
    if (rc == CRL_OK) rc = query_int(s, "PRAGMA user_version", &user_version, err);
    if (rc == CRL_OK)
        rc = query_int(s, "SELECT count(*) FROM sqlite_master", &n_objects, err);
    if (in_txn) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != CRL_OK) return rc;
    /* PRAGMA application_id reads the header as a signed 32-bit integer. */
    if ((uint32_t)app_id == (uint32_t)CRL_STORE_APP_ID) {
        if (user_version > CRL_STORE_SCHEMA_VERSION)
            return crl_errf(err, CRL_EVERSION,
                            "%s has crl schema version %lld, newer than this crl "
                            "understands (%d); upgrade crl to open it",
                            s->path, (long long)user_version, CRL_STORE_SCHEMA_VERSION);
        if (user_version < 0)
            return crl_errf(err, CRL_ECORRUPT, "%s has invalid crl schema version %lld",
                            s->path, (long long)user_version);
        *version = (int)user_version;
        return CRL_OK;
    }
    /* Only a database with nothing in it is ours to take. One that another
     * program has marked (application_id or user_version), even if it has no
     * tables yet, is not. */
    if (app_id == 0 && user_version == 0 && n_objects == 0) {
        *version = 0;
        return CRL_OK;
    }
    return crl_errf(err, CRL_ECORRUPT,
                    "%s is a SQLite database of another program (application_id "
                    "0x%08x, %lld schema objects), not a crl database",
                    s->path, (unsigned)app_id, (long long)n_objects);
}

/* Apply MIGRATIONS[from..] one transaction each. The identity is re-read
 * inside each transaction, so two processes creating or upgrading the same
 * file at once do not both apply a migration. */
static int migrate(crl_store *s, crl_err *err) {
    for (;;) {
        int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) return fail(s, err, rc, "cannot begin schema migration");
        int v = 0;
        int ret = identify(s, &v, err);
        if (ret == CRL_OK && v == CRL_STORE_SCHEMA_VERSION) {
            /* Up to date (perhaps another process just did it): nothing to write. */
            rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
            return rc == SQLITE_OK ? CRL_OK
                                   : fail(s, err, rc, "cannot end migration check");
        }
        if (ret == CRL_OK) {
            char bump[256];
            snprintf(
                bump, sizeof bump,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %s);"
                " PRAGMA application_id = %d; PRAGMA user_version = %d;",
                v + 1, NOW_ISO, (int)CRL_STORE_APP_ID, v + 1);
            rc = sqlite3_exec(s->db, MIGRATIONS[v], NULL, NULL, NULL);
            if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, bump, NULL, NULL, NULL);
            if (rc != SQLITE_OK) {
                const char *m = sqlite3_errmsg(s->db);
                /* A schema error here means the file is not the version it
                 * claims to be. */
                ret = (rc & 0xff) == SQLITE_ERROR
                          ? crl_errf(err, CRL_ECORRUPT,
                                     "%s: migration of the crl schema from v%d to v%d "
                                     "failed: %s",
                                     s->path, v, v + 1, m)
                          : fail(s, err, rc, "migration from v%d to v%d", v, v + 1);
            }
        }
        if (ret == CRL_OK) {
            sqlite3_stmt *st = NULL;
            rc = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL);
            if (rc == SQLITE_OK) rc = sqlite3_step(st);
            if (rc == SQLITE_ROW)
                ret = crl_errf(err, CRL_ECORRUPT,
                               "%s: migration to v%d left rows with dangling run ids",
                               s->path, v + 1);
            else if (rc != SQLITE_DONE)
                ret = fail(s, err, rc, "foreign key check after migration");
            sqlite3_finalize(st);
        }
        if (ret != CRL_OK) {
            /* Errors that already rolled back make this ROLLBACK fail; either
             * way nothing of the migration is left. */
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return ret;
        }
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            ret = fail(s, err, rc, "cannot commit migration to v%d", v + 1);
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return ret;
        }
    }
}

/* Files SQLite would take for an empty database but are not: SQLite treats
 * some very short files (a single byte, say) as empty and would overwrite
 * them. A real database is empty or at least one 512-byte page long and
 * starts with the magic string. */
int crl_store_check_magic(const char *path, const char *kind, crl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return crl_errf(err, CRL_EIO, "cannot read %s: %s", path, strerror(errno));
    unsigned char head[16];
    size_t n = fread(head, 1, sizeof head, f);
    int bad = ferror(f);
    int at_end = fseek(f, 0, SEEK_END) == 0;
    long size = at_end ? ftell(f) : -1;
    fclose(f);
    if (bad || size < 0) return crl_errf(err, CRL_EIO, "cannot read %s", path);
    if (size == 0) return CRL_OK;
    if (size < 512 || n < sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
        return crl_errf(err, CRL_ECORRUPT, "%s is not a %s (not SQLite)", path, kind);
    return CRL_OK;
}

/* Open path's SQLite connection the way every crl file is opened: a
 * relative path gets "./" (Debian's SQLite is built with SQLITE_USE_URI,
 * and ":memory:" is special, so "file:x.db" and ":memory:" stay the files
 * the caller named); extended result codes, the busy timeout, and no
 * trusted schema (our schemas have no triggers or views; don't let a
 * hostile file's run functions with side effects). kind names the file in
 * errors ("database", "dataset"). *db may be set on failure: the caller
 * closes it. */
int crl_store_sqlite_open(const char *path, const char *kind, int flags, int busy_ms,
                          sqlite3 **db, crl_err *err) {
    char *name = malloc(strlen(path) + 3);
    if (!name) return crl_errf(err, CRL_ENOMEM, "out of memory opening %s", path);
    snprintf(name, strlen(path) + 3, "%s%s", path[0] == '/' ? "" : "./", path);
    int rc = sqlite3_open_v2(name, db, flags, NULL);
    free(name);
    if (rc != SQLITE_OK) {
        int sys = *db ? sqlite3_system_errno(*db) : 0;
        return crl_errf(err, CRL_EIO, "cannot open %s %s: %s%s%s", kind, path,
                        *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc), sys ? ": " : "",
                        sys ? strerror(sys) : "");
    }
    rc = sqlite3_extended_result_codes(*db, 1);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(*db, busy_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(*db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    if (rc != SQLITE_OK)
        return crl_errf(err, CRL_EIO, "%s: cannot configure connection: %s", path,
                        sqlite3_errmsg(*db));
    return CRL_OK;
}

int crl_store_busy_timeout_ms(int *out, crl_err *err) {
    const char *e = getenv("CRL_BUSY_TIMEOUT_MS");
    *out = DEFAULT_BUSY_TIMEOUT_MS;
    if (!e || !*e) return CRL_OK;
    char *end;
    errno = 0;
    long v = strtol(e, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX)
        return crl_errf(err, CRL_EINVAL,
                        "CRL_BUSY_TIMEOUT_MS='%s' is not a number of milliseconds", e);
    *out = (int)v;
    return CRL_OK;
}

int crl_store_check_parent_dir(const char *path, const char *what, crl_err *err) {
    const char *slash = strrchr(path, '/');
    if (!slash) return CRL_OK;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir) return crl_errf(err, CRL_ENOMEM, "out of memory");
    memcpy(dir, path, len);
    dir[len] = 0;
    struct stat sb;
    int ret = CRL_OK;
    /* A missing folder is made, as `mkdir -p` would (--db runs/x.db on a
     * fresh checkout): only now, after the caller validated its input. */
    if (stat(dir, &sb) != 0 && errno == ENOENT) {
        for (char *p = dir + 1;; p++) {
            if (*p != '/' && *p) continue;
            const char c = *p;
            *p = 0;
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                ret = crl_errf(err, CRL_EIO, "cannot create %s %s: folder %s: %s", what,
                               path, dir, strerror(errno));
                free(dir);
                return ret;
            }
            *p = c;
            if (!c) break;
        }
    }
    if (stat(dir, &sb) != 0)
        ret = crl_errf(err, CRL_EIO, "cannot create %s %s: directory %s: %s", what, path,
                       dir, strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        ret = crl_errf(err, CRL_EIO, "cannot create %s %s: %s is not a directory", what,
                       path, dir);
    /* SQLite would say only "unable to open database file" (and errno
     * "No such file or directory") for a folder it cannot write. */
    else if (access(dir, W_OK | X_OK) != 0)
        ret = crl_errf(err, CRL_EIO, "cannot create database %s: folder %s: %s", path,
                       dir, strerror(errno));
    free(dir);
    return ret;
}

static int set_pragma(crl_store *s, const char *sql, const char *want, crl_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ret = CRL_OK;
    if (rc == SQLITE_ROW && want) {
        const unsigned char *got = sqlite3_column_text(st, 0);
        if (!got || strcmp((const char *)got, want) != 0)
            ret = crl_errf(err, CRL_EIO, "%s: '%s' gave '%s', not '%s'", s->path, sql,
                           got ? (const char *)got : "(null)", want);
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = fail(s, err, rc, "%s", sql);
    }
    sqlite3_finalize(st);
    return ret;
}

int crl_store_open(const char *path, int create, crl_store **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_store_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return crl_errf(err, CRL_EINVAL, "crl_store_open: empty path");
    int busy_ms;
    int ret = crl_store_busy_timeout_ms(&busy_ms, err);
    if (ret != CRL_OK) return ret;

    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (!exists) {
        if (errno != ENOENT)
            return crl_errf(err, CRL_EIO, "cannot open database %s: %s", path,
                            strerror(errno));
        if (!create)
            return crl_errf(err, CRL_ENOTFOUND, "database %s does not exist", path);
        ret = crl_store_check_parent_dir(path, "database", err);
        if (ret != CRL_OK) return ret;
    } else {
        if (S_ISDIR(sb.st_mode))
            return crl_errf(err, CRL_EIO, "cannot open database %s: it is a directory",
                            path);
        /* /dev/null would read as an empty database and be "initialised". */
        if (!S_ISREG(sb.st_mode))
            return crl_errf(err, CRL_EIO, "cannot open database %s: not a regular file",
                            path);
        ret = crl_store_check_magic(path, "crl database", err);
        if (ret != CRL_OK) return ret;
    }

    crl_store *s = calloc(1, sizeof *s);
    if (!s) return crl_errf(err, CRL_ENOMEM, "out of memory opening %s", path);
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return crl_errf(err, CRL_ENOMEM, "out of memory opening %s", path);
    }
    s->busy_ms = busy_ms;

    /* Without SQLITE_OPEN_CREATE an existing file is never replaced, even if
     * it vanished since the stat above. */
    int flags = SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
    ret = crl_store_sqlite_open(path, "database", flags, busy_ms, &s->db, err);
    if (ret != CRL_OK) goto fail_open;

    /* Reads only until we know the file is ours and not newer. */
    int version = 0;
    ret = identify(s, &version, err);
    if (ret != CRL_OK) goto fail_open;
    if (version < CRL_STORE_SCHEMA_VERSION) {
        ret = migrate(s, err);
        if (ret != CRL_OK) goto fail_open;
    }
    /* After the migration, not before: a failed migration leaves the file
     * byte-for-byte as it was. */
    ret = set_pragma(s, "PRAGMA journal_mode = WAL", "wal", err);
    if (ret == CRL_OK) ret = set_pragma(s, "PRAGMA synchronous = NORMAL", NULL, err);
    if (ret == CRL_OK) ret = set_pragma(s, "PRAGMA foreign_keys = ON", NULL, err);
    if (ret != CRL_OK) goto fail_open;

    for (int i = 0; i < ST__COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            ret = (rc & 0xff) == SQLITE_ERROR
                      ? crl_errf(err, CRL_ECORRUPT, "%s has a damaged crl schema: %s",
                                 path, sqlite3_errmsg(s->db))
                      : fail(s, err, rc, "cannot prepare statement");
            goto fail_open;
        }
    }
    *out = s;
    return CRL_OK;

fail_open:
    crl_store_close(s);
    return ret;
}

static void lease_release(crl_store *s);

void crl_store_close(crl_store *s) {
    if (!s) return;
    if (s->in_txn && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = 0;
    if (s->db) lease_release(s);
    for (int i = 0; i < ST__COUNT; i++) sqlite3_finalize(s->st[i]);
    /* close_v2: a statement store/ code prepared on crl_store_sqlite() and
     * forgot does not keep the file open forever. */
    if (s->db) (void)sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

static int lease_renew(crl_store *s, crl_err *err);

int crl_store_flush(crl_store *s, crl_err *err) {
    if (!s) return crl_errf(err, CRL_EINVAL, "crl_store_flush: store is NULL");
    if (s->lease_run && crl_now() - s->lease_t >= CRL_LEASE_HEARTBEAT_S)
        return lease_renew(s, err); /* commits the batch with it */
    return txn_commit(s, err);
}

int crl_store_tick(crl_store *s, crl_err *err) {
    if (!s) return CRL_OK;
    const double now = crl_now();
    if (s->lease_run && now - s->lease_t >= CRL_LEASE_HEARTBEAT_S)
        return lease_renew(s, err); /* commits the batch with it */
    if (!s->in_txn || now - s->batch_t0 < BATCH_MAX_SECONDS) return CRL_OK;
    return txn_commit(s, err);
}

sqlite3 *crl_store_sqlite(crl_store *s) {
    return s ? s->db : NULL;
}

const char *crl_store_path(const crl_store *s) {
    return s ? s->path : "";
}

/* ------------------------------------------------------------------------ */
/* Run leases                                                                */

/* zlib's crc32 of a blob of any length (crc32 takes a uInt length). */
static uint32_t blob_crc(const void *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)c;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void host_name(char *buf, size_t cap) {
    if (gethostname(buf, cap) != 0) snprintf(buf, cap, "?");
    buf[cap - 1] = 0;
}

/* Start time of process pid (field 22 of /proc/PID/stat, clock ticks after
 * boot), which tells a reused pid from the owner; 0 when unknown. */
static int64_t pid_start_time(int64_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || !p[1]) return 0;
    p += 2; /* field 3 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return 0;
        p++;
    }
    return strtoll(p, NULL, 10);
}

static void iso_time(double t, char *buf, size_t cap) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "?");
}

/* Whether the lease's owner still holds it: on this host, while its pid
 * lives (and is the same process); on another host, until CRL_LEASE_EXPIRY_S
 * after its last heartbeat. */
static void lease_judge(crl_lease *l, double now) {
    char host[256];
    host_name(host, sizeof host);
    l->alive = 1;
    l->why[0] = 0;
    if (!strcmp(host, l->host)) {
        if (l->pid <= 0 || (kill((pid_t)l->pid, 0) != 0 && errno == ESRCH)) {
            l->alive = 0;
            snprintf(l->why, sizeof l->why, "owner pid %lld gone", (long long)l->pid);
        } else if (l->pid_start && pid_start_time(l->pid) != l->pid_start) {
            l->alive = 0;
            snprintf(l->why, sizeof l->why, "owner pid %lld gone, its pid reused",
                     (long long)l->pid);
        }
    } else if (now - l->heartbeat > CRL_LEASE_EXPIRY_S) {
        l->alive = 0;
        snprintf(l->why, sizeof l->why, "owner %.64s pid %lld silent for %.0f s", l->host,
                 (long long)l->pid, now - l->heartbeat);
    }
}

int crl_store_lease_get(crl_store *s, int64_t run_id, crl_lease *out, crl_err *err) {
    if (!s || !out) return crl_errf(err, CRL_EINVAL, "crl_store_lease_get: bad argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->db,
                           "SELECT host, pid, pid_start, since, heartbeat FROM leases"
                           " WHERE run_id = ?1",
                           -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ret = CRL_OK;
    if (rc == SQLITE_ROW) {
        out->run_id = run_id;
        crl_store_column_text(out->host, sizeof out->host, st, 0);
        out->pid = sqlite3_column_int64(st, 1);
        out->pid_start = sqlite3_column_int64(st, 2);
        out->since = sqlite3_column_double(st, 3);
        out->heartbeat = sqlite3_column_double(st, 4);
        lease_judge(out, wall_now());
    } else if (rc == SQLITE_DONE) {
        ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld has no lease", s->path,
                       (long long)run_id);
    } else {
        ret = fail(s, err, rc, "cannot read the lease of run %lld", (long long)run_id);
    }
    sqlite3_finalize(st);
    return ret;
}

int crl_store_lease_acquire(crl_store *s, int64_t run_id, crl_err *err) {
    if (!s || run_id <= 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_lease_acquire: bad argument");
    if (s->lease_run == run_id) return CRL_OK;
    if (s->lease_run)
        return crl_errf(err, CRL_EINVAL,
                        "crl_store_lease_acquire: this store holds run %lld's lease",
                        (long long)s->lease_run);
    if (!s->host[0]) {
        host_name(s->host, sizeof s->host);
        s->pid = (int64_t)getpid();
        s->pid_start = pid_start_time(s->pid);
    }
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    crl_lease l;
    const double now = wall_now();
    ret = crl_store_lease_get(s, run_id, &l, err);
    if (ret == CRL_ENOTFOUND) {
        ret = CRL_OK;
    } else if (ret == CRL_OK && l.alive &&
               !(l.pid == s->pid && !strcmp(l.host, s->host))) {
        char since[32];
        iso_time(l.since, since, sizeof since);
        ret =
            crl_errf(err, CRL_EBUSY,
                     "run %lld is being trained by another process (host %.64s, pid "
                     "%lld, since %s, last heartbeat %.0f s ago); wait for it to end "
                     "or stop it (a lease on another host expires %d s after its last "
                     "heartbeat)",
                     (long long)run_id, l.host, (long long)l.pid, since,
                     now - l.heartbeat < 0 ? 0.0 : now - l.heartbeat, CRL_LEASE_EXPIRY_S);
    }
    if (ret == CRL_OK) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db,
                                    "INSERT OR REPLACE INTO leases (run_id, host, pid,"
                                    " pid_start, since, heartbeat)"
                                    " VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, s->host, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, s->pid);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, s->pid_start);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 5, now);
        ret = rc == SQLITE_OK ? step_write(s, st, run_id, err, "cannot write run lease")
                              : fail(s, err, rc, "cannot prepare run lease");
        sqlite3_finalize(st);
    }
    ret = txn_finish(s, ret, err);
    if (ret == CRL_OK) {
        s->lease_run = run_id;
        s->lease_lost = 0;
        s->lease_t = crl_now();
    }
    return ret;
}

/* The heartbeat: one UPDATE, committed with the pending batch. A lease
 * another process took over (this one was silent past the expiry) stops
 * this process's writes for the run: its batch is dropped. */
static int lease_renew(crl_store *s, crl_err *err) {
    s->lease_t = crl_now();
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_LEASE_RENEW, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, s->lease_run);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, s->host, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, s->pid);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 4, wall_now());
        ret = rc == SQLITE_OK
                  ? step_write(s, st, s->lease_run, err, "cannot renew run lease")
                  : fail(s, err, rc, "cannot bind run lease");
        stmt_put(st, temp);
    }
    if (ret == CRL_OK && sqlite3_changes(s->db) == 0) {
        crl_lease l;
        const int64_t run = s->lease_run;
        int known = crl_store_lease_get(s, run, &l, NULL) == CRL_OK;
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->in_txn = 0;
        s->batch_rows = 0;
        s->lease_run = 0;
        s->lease_lost = run;
        return crl_errf(err, CRL_EBUSY,
                        "run %lld was taken over by another process (host %.64s, pid "
                        "%lld) while this one was silent; stopping without writing more",
                        (long long)run, known ? l.host : "?",
                        (long long)(known ? l.pid : 0));
    }
    return txn_finish(s, ret, err);
}

/* Give the lease back unless the run is still 'running' (its status write
 * failed: the lease stays so that `crl runs` can tell it is stale). */
static void lease_release(crl_store *s) {
    if (!s->lease_run) return;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "DELETE FROM leases WHERE run_id = ?1 AND host = ?2 AND"
                                " pid = ?3 AND (SELECT status FROM runs WHERE id = ?1)"
                                " <> 'running'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, s->lease_run);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, s->host, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, s->pid);
    if (rc == SQLITE_OK) (void)sqlite3_step(st);
    sqlite3_finalize(st);
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */

static const char *const STATUSES[] = {"running", "finished", "failed", "interrupted"};

/* Builds config JSON inside SQLite; *out is malloc'd. */
static int build_config(crl_store *s, const crl_kv *kv, int n_kv, char **out,
                        crl_err *err) {
    char *json = strdup("{}");
    if (!json) return crl_errf(err, CRL_ENOMEM, "out of memory");
    for (int i = 0; i < n_kv; i++) {
        /* Integral values become JSON integers ("steps": 1000000, not
         * 1000000.0); beyond 2^53 a double is not an exact integer anyway. */
        double v = kv[i].num;
        int integral = !kv[i].str && v == floor(v) && fabs(v) <= 9007199254740992.0;
        char num[40];
        if (!kv[i].str && !integral && format_double(v, num, sizeof num) != 0) {
            free(json);
            return crl_errf(err, CRL_ENOMEM, "cannot format config value '%s'",
                            kv[i].key);
        }
        sqlite3_stmt *st;
        int temp,
            ret = stmt_get(s, kv[i].str || integral ? ST_CONFIG_ADD : ST_CONFIG_ADD_NUM,
                           &st, &temp, err);
        if (ret != CRL_OK) {
            free(json);
            return ret;
        }
        int rc = sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, kv[i].key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = kv[i].str  ? sqlite3_bind_text(st, 3, kv[i].str, -1, SQLITE_STATIC)
                 : integral ? sqlite3_bind_int64(st, 3, (sqlite3_int64)v)
                            : sqlite3_bind_text(st, 3, num, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        char *next = NULL;
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            next = t ? strdup((const char *)t) : NULL;
            if (!next) ret = crl_errf(err, CRL_ENOMEM, "out of memory building config");
        } else {
            ret = fail(s, err, rc, "cannot build config_json (key '%s')", kv[i].key);
        }
        stmt_put(st, temp);
        free(json);
        if (ret != CRL_OK) return ret;
        json = next;
    }
    *out = json;
    return CRL_OK;
}

int crl_store_run_labels_check(const char *name, const char *const *tags, int n_tags,
                               crl_err *err) {
    if (name) {
        size_t n = strlen(name);
        if (n == 0) return crl_errf(err, CRL_EINVAL, "a run name must not be empty");
        if (n > CRL_RUN_NAME_MAX)
            return crl_errf(err, CRL_EINVAL, "a run name has at most %d bytes, got %zu",
                            CRL_RUN_NAME_MAX, n);
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return crl_errf(err, CRL_EINVAL,
                                "a run name must not hold control characters (tab, "
                                "newline, ...)");
    }
    if (n_tags < 0 || (n_tags > 0 && !tags))
        return crl_errf(err, CRL_EINVAL, "run tags: bad argument");
    if (n_tags > CRL_RUN_MAX_TAGS)
        return crl_errf(err, CRL_EINVAL, "a run has at most %d tags, got %d",
                        CRL_RUN_MAX_TAGS, n_tags);
    for (int i = 0; i < n_tags; i++) {
        const char *t = tags[i];
        size_t n = t ? strlen(t) : 0;
        if (n == 0) return crl_errf(err, CRL_EINVAL, "a tag must not be empty");
        if (n > CRL_RUN_TAG_MAX)
            return crl_errf(err, CRL_EINVAL, "tag '%.40s...' is longer than %d bytes", t,
                            CRL_RUN_TAG_MAX);
        for (const unsigned char *p = (const unsigned char *)t; *p; p++)
            if (*p <= 0x20 || *p == 0x7f || *p == ',' || *p == '"')
                return crl_errf(err, CRL_EINVAL,
                                "tag '%s': a tag is one word without spaces, commas, "
                                "quotes or control characters",
                                t);
        for (int j = 0; j < i; j++)
            if (!strcmp(tags[j], t))
                return crl_errf(err, CRL_EINVAL, "tag '%s' is given twice", t);
    }
    return CRL_OK;
}

int crl_store_run_create(crl_store *s, const char *method, const char *scenario,
                         uint64_t seed, const crl_kv *kv, int n_kv, int64_t *run_id,
                         crl_err *err) {
    return crl_store_run_create_labeled(s, method, scenario, seed, kv, n_kv, NULL, NULL,
                                        0, run_id, err);
}

int crl_store_run_create_labeled(crl_store *s, const char *method, const char *scenario,
                                 uint64_t seed, const crl_kv *kv, int n_kv,
                                 const char *name, const char *const *tags, int n_tags,
                                 int64_t *run_id, crl_err *err) {
    if (!s || !method || !scenario || !run_id || n_kv < 0 || (n_kv > 0 && !kv))
        return crl_errf(err, CRL_EINVAL, "crl_store_run_create: bad argument");
    int lrc = crl_store_run_labels_check(name, tags, n_tags, err);
    if (lrc != CRL_OK) return lrc;
    /* crl_run_info has fixed fields; refuse what it could not give back. */
    if (strlen(method) >= sizeof((crl_run_info *)0)->method ||
        strlen(scenario) >= sizeof((crl_run_info *)0)->scenario)
        return crl_errf(err, CRL_EINVAL,
                        "%s: method name (max %zu chars) or scenario name (max %zu) too "
                        "long",
                        s->path, sizeof((crl_run_info *)0)->method - 1,
                        sizeof((crl_run_info *)0)->scenario - 1);
    for (int i = 0; i < n_kv; i++) {
        if (!kv[i].key) return crl_errf(err, CRL_EINVAL, "config entry %d has no key", i);
        if (!kv[i].str && !isfinite(kv[i].num))
            return crl_errf(err, CRL_EINVAL,
                            "config value '%s' is not finite (JSON has no NaN/Inf)",
                            kv[i].key);
    }
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    char *json = NULL;
    ret = build_config(s, kv, n_kv, &json, err);
    if (ret == CRL_OK) {
        sqlite3_stmt *st;
        int temp;
        ret = stmt_get(s, ST_RUN_INSERT, &st, &temp, err);
        if (ret == CRL_OK) {
            int rc = sqlite3_bind_text(st, 1, method, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 2, scenario, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, u64_to_i64(seed));
            if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, json, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = name ? sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC)
                          : sqlite3_bind_null(st, 5);
            ret = rc == SQLITE_OK ? step_write(s, st, 0, err, "cannot insert run")
                                  : fail(s, err, rc, "cannot bind run");
            if (ret == CRL_OK) *run_id = sqlite3_last_insert_rowid(s->db);
            stmt_put(st, temp);
        }
    }
    /* The tags in the run's transaction: a run never exists without them. */
    for (int i = 0; ret == CRL_OK && i < n_tags; i++) {
        sqlite3_stmt *st;
        int temp;
        ret = stmt_get(s, ST_RUN_TAG, &st, &temp, err);
        if (ret != CRL_OK) break;
        int rc = sqlite3_bind_int64(st, 1, *run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, i);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, tags[i], -1, SQLITE_STATIC);
        ret = rc == SQLITE_OK ? step_write(s, st, *run_id, err, "cannot insert run tag")
                              : fail(s, err, rc, "cannot bind run tag");
        stmt_put(st, temp);
    }
    free(json);
    return txn_finish(s, ret, err);
}

/* One try at the status write; a status other than 'running' also gives
 * the run's lease back in the same transaction. */
static int set_status_once(crl_store *s, int64_t run_id, const char *status,
                           crl_err *err) {
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_RUN_STATUS, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        ret = rc == SQLITE_OK ? step_write(s, st, run_id, err, "cannot set run status")
                              : fail(s, err, rc, "cannot bind status");
        if (ret == CRL_OK && sqlite3_changes(s->db) == 0)
            ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld does not exist", s->path,
                           (long long)run_id);
        stmt_put(st, temp);
    }
    const int release =
        ret == CRL_OK && s->lease_run == run_id && strcmp(status, "running");
    if (release) lease_release(s);
    ret = txn_finish(s, ret, err);
    if (ret == CRL_OK && release) s->lease_run = 0;
    return ret;
}

int crl_store_run_set_status(crl_store *s, int64_t run_id, const char *status,
                             crl_err *err) {
    if (!s || !status)
        return crl_errf(err, CRL_EINVAL, "crl_store_run_set_status: bad argument");
    int known = 0;
    for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        known |= strcmp(status, STATUSES[i]) == 0;
    if (!known)
        return crl_errf(
            err, CRL_EINVAL,
            "unknown run status '%s' (running, finished, failed, interrupted)", status);
    if (run_id == s->lease_lost)
        return crl_errf(err, CRL_EBUSY,
                        "run %lld belongs to another process now; its status was not "
                        "changed",
                        (long long)run_id);
    int ret = set_status_once(s, run_id, status, err);
    /* A status that ends the run must be written even after a long lock made
     * the run fail (the failing transaction is rolled back by now): retry
     * once with a longer wait. */
    if (ret == CRL_EBUSY && strcmp(status, "running") != 0) {
        long long ms = (long long)s->busy_ms * STATUS_BUSY_FACTOR;
        if (ms < STATUS_BUSY_MIN_MS) ms = STATUS_BUSY_MIN_MS;
        if (ms > INT_MAX) ms = INT_MAX;
        txn_release_if_empty(s);
        (void)sqlite3_busy_timeout(s->db, (int)ms);
        ret = set_status_once(s, run_id, status, err);
        (void)sqlite3_busy_timeout(s->db, s->busy_ms);
    }
    return ret;
}

/* Quote a table name for SQL ("a""b"). */
static int quote_ident(const char *name, char *buf, size_t cap) {
    size_t k = 0;
    if (cap < 3) return -1;
    buf[k++] = '"';
    for (const char *p = name; *p; p++) {
        if (k + 3 >= cap) return -1;
        if (*p == '"') buf[k++] = '"';
        buf[k++] = *p;
    }
    buf[k++] = '"';
    buf[k] = 0;
    return 0;
}

int crl_store_run_delete(crl_store *s, int64_t run_id, int64_t *rows, crl_err *err) {
    if (!s || run_id <= 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_run_delete: bad argument");
    if (rows) *rows = 0;
    /* The cascades are a second line only (every table is deleted from
     * explicitly below); still, a connection without them is not ours. */
    int64_t fk = 0;
    int ret = query_int(s, "PRAGMA foreign_keys", &fk, err);
    if (ret != CRL_OK) return ret;
    if (fk != 1)
        return crl_errf(err, CRL_EIO, "%s: foreign keys are off on this connection",
                        s->path);
    ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    /* Inside the write transaction: nothing can take the run between the
     * checks and the deletes. */
    crl_run_info info;
    ret = crl_store_run_get(s, run_id, &info, NULL, err);
    crl_lease l;
    if (ret == CRL_OK && crl_store_lease_get(s, run_id, &l, NULL) == CRL_OK && l.alive)
        ret = crl_errf(err, CRL_EBUSY,
                       "run %lld is being trained (host %.64s, pid %lld); stop it before "
                       "removing it",
                       (long long)run_id, l.host, (long long)l.pid);
    /* Every table with a run_id column, whatever its foreign keys say: a
     * table added later is covered without a change here. */
    char tables[64][128];
    int n_tables = 0;
    if (ret == CRL_OK) {
        sqlite3_stmt *st = NULL;
        int rc =
            sqlite3_prepare_v2(s->db,
                               "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'"
                               " AND m.name <> 'runs' AND m.name NOT LIKE 'sqlite_%'"
                               " AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c"
                               "  WHERE c.name = 'run_id') ORDER BY m.name",
                               -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            rc = SQLITE_OK;
            if (n_tables == 64 || quote_ident((const char *)sqlite3_column_text(st, 0),
                                              tables[n_tables], sizeof tables[0])) {
                ret = crl_errf(err, CRL_EIO, "%s: too many tables or a too long name",
                               s->path);
                break;
            }
            n_tables++;
        }
        if (ret == CRL_OK && rc != SQLITE_DONE)
            ret =
                fail(s, err, rc, "cannot list the tables of run %lld", (long long)run_id);
        sqlite3_finalize(st);
    }
    int64_t total = 0;
    for (int i = 0; ret == CRL_OK && i <= n_tables; i++) {
        char sql[256];
        if (i < n_tables)
            snprintf(sql, sizeof sql, "DELETE FROM %s WHERE run_id = ?1", tables[i]);
        else
            snprintf(sql, sizeof sql, "DELETE FROM runs WHERE id = ?1");
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            total += sqlite3_changes(s->db);
        else
            ret = fail(s, err, rc, "cannot delete run %lld (%s)", (long long)run_id, sql);
        sqlite3_finalize(st);
    }
    if (ret != CRL_OK) {
        /* Nothing of a failed removal stays: the whole transaction goes
         * (a pending batch of this store's own, if any, with it). */
        if (s->in_txn) (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->in_txn = 0;
        s->batch_rows = 0;
        return ret;
    }
    ret = txn_commit(s, err);
    if (ret == CRL_OK && rows) *rows = total;
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */

int crl_store_task_start(crl_store *s, int64_t run_id, int idx, const char *name,
                         int64_t start_step, crl_err *err) {
    if (!s || !name || idx < 0 || start_step < 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_task_start: bad argument");
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_TASK_START, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, start_step);
        ret = rc == SQLITE_OK ? step_write(s, st, run_id, err, "cannot start task")
                              : fail(s, err, rc, "cannot bind task");
        stmt_put(st, temp);
    }
    return txn_finish(s, ret, err);
}

int crl_store_task_end(crl_store *s, int64_t run_id, int idx, int64_t end_step,
                       crl_err *err) {
    if (!s || idx < 0 || end_step < 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_task_end: bad argument");
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_TASK_END, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, end_step);
        ret = rc == SQLITE_OK ? step_write(s, st, run_id, err, "cannot end task")
                              : fail(s, err, rc, "cannot bind task");
        if (ret == CRL_OK && sqlite3_changes(s->db) == 0)
            ret =
                crl_errf(err, CRL_ENOTFOUND, "%s: task %d of run %lld was never started",
                         s->path, idx, (long long)run_id);
        stmt_put(st, temp);
    }
    return txn_finish(s, ret, err);
}

/* ------------------------------------------------------------------------ */
/* Batched writes                                                            */

/* Count a batched row; commit when the batch is big or old enough. */
static int batch_account(crl_store *s, int ret, crl_err *err) {
    if (ret != CRL_OK) {
        txn_release_if_empty(s);
        return ret;
    }
    s->batch_rows++;
    if (s->batch_rows >= BATCH_MAX_ROWS || crl_now() - s->batch_t0 >= BATCH_MAX_SECONDS)
        return txn_commit(s, err);
    return CRL_OK;
}

int crl_store_metric(crl_store *s, int64_t run_id, int64_t step, const char *key,
                     double value, crl_err *err) {
    if (!s || !key || step < 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_metric: bad argument");
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_METRIC, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, step);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 4, value); /* NaN -> NULL */
        ret = rc == SQLITE_OK ? step_write(s, st, run_id, err, "cannot insert metric")
                              : fail(s, err, rc, "cannot bind metric");
        stmt_put(st, temp);
    }
    return batch_account(s, ret, err);
}

int crl_store_csp_decision(crl_store *s, const crl_csp_row *row, crl_err *err) {
    if (!s || !row || row->task_idx < 0 || row->step < 0 || row->n_anchors < 1 ||
        row->n_alpha < 1 || row->n_alpha > 1024 || !row->alpha ||
        (row->criterion && strcmp(row->criterion, "success") &&
         strcmp(row->criterion, "return")))
        return crl_errf(err, CRL_EINVAL, "crl_store_csp_decision: bad argument");
    char json[1024 * 18 + 4];
    size_t off = 0;
    json[off++] = '[';
    for (int i = 0; i < row->n_alpha; i++)
        off += (size_t)snprintf(json + off, sizeof json - off, "%s%.9g", i ? "," : "",
                                (double)row->alpha[i]);
    snprintf(json + off, sizeof json - off, "]");
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_CSP_DECISION, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, row->run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, row->task_idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, row->step);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 4, row->kept ? 1 : 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_double(st, 5, row->best_new); /* NaN: NULL */
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 6, row->best_old);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 7, row->n_anchors);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 8, json, -1, SQLITE_TRANSIENT);
        /* v5: NULL for a decision made the old way (no criterion). */
        const int v5 = row->criterion != NULL;
        if (rc == SQLITE_OK)
            rc = v5 ? sqlite3_bind_text(st, 9, row->criterion, -1, SQLITE_TRANSIENT)
                    : sqlite3_bind_null(st, 9);
        if (rc == SQLITE_OK)
            rc = v5 && row->rollouts > 0 ? sqlite3_bind_int(st, 10, row->rollouts)
                                         : sqlite3_bind_null(st, 10);
        const double reals[] = {
            row->new_success, row->old_success, row->q_new, row->q_old, NAN,
            row->check_new,   row->check_old,   row->wall_s};
        for (int i = 0; i < 8 && rc == SQLITE_OK; i++)
            rc = i == 4 ? (v5 && row->check_kept >= 0
                               ? sqlite3_bind_int(st, 15, row->check_kept ? 1 : 0)
                               : sqlite3_bind_null(st, 15))
                 : v5   ? sqlite3_bind_double(st, 11 + i, reals[i]) /* NaN: NULL */
                        : sqlite3_bind_null(st, 11 + i);
        ret = rc == SQLITE_OK
                  ? step_write(s, st, row->run_id, err, "cannot insert csp decision")
                  : fail(s, err, rc, "cannot bind csp decision");
        stmt_put(st, temp);
    }
    return batch_account(s, ret, err);
}

int crl_store_eval(crl_store *s, const crl_eval_row *row, crl_err *err) {
    if (!s || !row) return crl_errf(err, CRL_EINVAL, "crl_store_eval: bad argument");
    if (row->step < 0 || row->train_task_idx < 0 || row->eval_task_idx < 0 ||
        row->episodes < 0 ||
        (!isnan(row->success_rate) &&
         !(row->success_rate >= 0 && row->success_rate <= 1)))
        return crl_errf(err, CRL_EINVAL,
                        "%s: bad eval row (run %lld step %lld: negative step/index/"
                        "episodes or success rate %g outside [0, 1])",
                        s->path, (long long)row->run_id, (long long)row->step,
                        row->success_rate);
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_EVAL, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, row->run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, row->step);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 3, row->train_task_idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 4, row->eval_task_idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 5, row->episodes);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 6, row->success_rate);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 7, row->mean_return);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 8, row->det_return);
        ret = rc == SQLITE_OK ? step_write(s, st, row->run_id, err, "cannot insert eval")
                              : fail(s, err, rc, "cannot bind eval");
        stmt_put(st, temp);
    }
    return batch_account(s, ret, err);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */

int crl_store_checkpoint_put(crl_store *s, int64_t run_id, int task_idx, int64_t step,
                             const void *blob, size_t n, crl_err *err) {
    if (!s || (n > 0 && !blob) || task_idx < 0 || step < 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_checkpoint_put: bad argument");
    if (run_id == s->lease_lost)
        return crl_errf(err, CRL_EBUSY,
                        "run %lld belongs to another process now; checkpoint not written",
                        (long long)run_id);
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_CKPT_PUT, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, task_idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, step);
        /* A NULL pointer would bind SQL NULL; an empty blob is zeroblob(0). */
        if (rc == SQLITE_OK)
            rc = n > 0
                     ? sqlite3_bind_blob64(st, 4, blob, (sqlite3_uint64)n, SQLITE_STATIC)
                     : sqlite3_bind_zeroblob(st, 4, 0);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, blob_crc(blob, n));
        ret = rc == SQLITE_OK
                  ? step_write(s, st, run_id, err, "cannot store checkpoint")
                  : fail(s, err, rc, "cannot bind checkpoint of %zu bytes", n);
        stmt_put(st, temp);
    }
    return txn_finish(s, ret, err);
}

int crl_store_checkpoint_prune(crl_store *s, int64_t run_id, int64_t before_step,
                               crl_err *err) {
    if (!s || before_step < 0)
        return crl_errf(err, CRL_EINVAL, "crl_store_checkpoint_prune: bad argument");
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st = NULL;
    /* The newest checkpoint before before_step stays: the fallback when the
     * one at before_step turns out corrupt. */
    int rc = sqlite3_prepare_v2(s->db,
                                "DELETE FROM checkpoints WHERE run_id = ?1 AND step <"
                                " (SELECT max(step) FROM checkpoints WHERE run_id = ?1"
                                " AND step < ?2)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, before_step);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    ret = rc == SQLITE_OK ? CRL_OK
                          : fail(s, err, rc, "cannot prune checkpoints of run %lld",
                                 (long long)run_id);
    return txn_finish(s, ret, err);
}

/* The step of run_id's newest checkpoint before before_step; -1: none. */
static int64_t checkpoint_step_before(crl_store *s, int64_t run_id, int64_t before_step) {
    sqlite3_stmt *st = NULL;
    int64_t step = -1;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT max(step) FROM checkpoints WHERE run_id = ?1 AND"
                                " step < ?2",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, before_step);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        step = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return step;
}

void crl_store_checkpoint_fallback(crl_store *s, int64_t run_id, int64_t at, char *buf,
                                   size_t n) {
    const int64_t prev = s ? checkpoint_step_before(s, run_id, at) : -1;
    if (prev >= 0)
        snprintf(buf, n,
                 "'crl train --resume %lld' falls back to the previous one (step %lld)",
                 (long long)run_id, (long long)prev);
    else
        snprintf(buf, n, "the run keeps no earlier checkpoint");
}

int crl_store_checkpoint_latest(crl_store *s, int64_t run_id, int *task_idx,
                                int64_t *step, void **blob, size_t *n, crl_err *err) {
    return crl_store_checkpoint_before(s, run_id, INT64_MAX, task_idx, step, blob, n,
                                       err);
}

int crl_store_checkpoint_before(crl_store *s, int64_t run_id, int64_t before_step,
                                int *task_idx, int64_t *step, void **blob, size_t *n,
                                crl_err *err) {
    if (!s || !blob || !n)
        return crl_errf(err, CRL_EINVAL, "crl_store_checkpoint_latest: bad argument");
    *blob = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int temp, ret = stmt_get(s, ST_CKPT_LATEST, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, before_step);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 2);
        int len = sqlite3_column_bytes(st, 2);
        const int64_t at = sqlite3_column_int64(st, 1);
        if (task_idx) *task_idx = sqlite3_column_int(st, 0);
        if (step) *step = at;
        if (!p && len > 0) {
            ret = fail(s, err, sqlite3_errcode(s->db), "cannot read checkpoint");
        } else if (sqlite3_column_type(st, 3) != SQLITE_NULL &&
                   (uint32_t)sqlite3_column_int64(st, 3) !=
                       blob_crc(p, (size_t)(len > 0 ? len : 0))) {
            /* Rows of schema v5 and before have no checksum: read unchecked. */
            char what[160];
            crl_store_checkpoint_fallback(s, run_id, at, what, sizeof what);
            ret = crl_errf(err, CRL_ECORRUPT,
                           "run %lld's checkpoint at step %lld in %s is corrupt "
                           "(checksum mismatch); %s",
                           (long long)run_id, (long long)at, s->path, what);
        } else {
            void *copy = malloc(len > 0 ? (size_t)len : 1);
            if (!copy) {
                ret = crl_errf(err, CRL_ENOMEM,
                               "out of memory reading a %d-byte checkpoint", len);
            } else {
                if (len > 0) memcpy(copy, p, (size_t)len);
                *blob = copy;
                *n = (size_t)len;
            }
        }
    } else if (rc == SQLITE_DONE) {
        ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld has no checkpoint", s->path,
                       (long long)run_id);
    } else {
        ret = fail(s, err, rc, "cannot read checkpoint of run %lld", (long long)run_id);
    }
    stmt_put(st, temp);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */

int crl_store_runs(crl_store *s, int (*cb)(const crl_run_info *, void *), void *ctx,
                   crl_err *err) {
    if (!s || !cb) return crl_errf(err, CRL_EINVAL, "crl_store_runs: bad argument");
    sqlite3_stmt *st;
    int temp, ret = stmt_get(s, ST_RUNS, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            ret = fail(s, err, rc, "cannot list runs");
            break;
        }
        crl_run_info info;
        fill_run_info(&info, st);
        if (cb(&info, ctx)) break;
    }
    stmt_put(st, temp);
    return ret;
}

int crl_store_run_get(crl_store *s, int64_t run_id, crl_run_info *info,
                      char **config_json, crl_err *err) {
    if (!s) return crl_errf(err, CRL_EINVAL, "crl_store_run_get: bad argument");
    if (config_json) *config_json = NULL;
    sqlite3_stmt *st;
    int temp, ret = stmt_get(s, ST_RUN_GET, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (info) fill_run_info(info, st);
        if (config_json) {
            const unsigned char *t = sqlite3_column_text(st, 7);
            *config_json = strdup(t ? (const char *)t : "{}");
            if (!*config_json) ret = crl_errf(err, CRL_ENOMEM, "out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld does not exist", s->path,
                       (long long)run_id);
    } else {
        ret = fail(s, err, rc, "cannot read run %lld", (long long)run_id);
    }
    stmt_put(st, temp);
    return ret;
}

int crl_store_evals(crl_store *s, int64_t run_id, int (*cb)(const crl_eval_row *, void *),
                    void *ctx, crl_err *err) {
    if (!s || !cb) return crl_errf(err, CRL_EINVAL, "crl_store_evals: bad argument");
    sqlite3_stmt *st;
    int temp, ret = stmt_get(s, ST_EVALS, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc != SQLITE_OK) ret = fail(s, err, rc, "cannot bind run id");
    while (ret == CRL_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            ret = fail(s, err, rc, "cannot read evals of run %lld", (long long)run_id);
            break;
        }
        crl_eval_row row = {
            .run_id = sqlite3_column_int64(st, 0),
            .step = sqlite3_column_int64(st, 1),
            .train_task_idx = sqlite3_column_int(st, 2),
            .eval_task_idx = sqlite3_column_int(st, 3),
            .episodes = sqlite3_column_int(st, 4),
            .success_rate = crl_store_column_real(st, 5),
            .mean_return = crl_store_column_real(st, 6),
            .det_return = crl_store_column_real(st, 7),
        };
        if (cb(&row, ctx)) break;
    }
    stmt_put(st, temp);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Episodes                                                                  */

int crl_store_episode(crl_store *s, const crl_episode_row *r, crl_err *err) {
    if (!s || !r || !r->kind || !r->env || !r->mujoco_version || !r->model_hash ||
        (r->data_n > 0 && !r->data))
        return crl_errf(err, CRL_EINVAL, "crl_store_episode: bad argument");
    if (r->step < 0 || r->task_idx < 0 || r->episode < 0 || r->length < 0 ||
        (strcmp(r->kind, "eval") != 0 && strcmp(r->kind, "train") != 0))
        return crl_errf(err, CRL_EINVAL,
                        "%s: bad episode row (run %lld step %lld: kind '%s', negative "
                        "step, index or length?)",
                        s->path, (long long)r->run_id, (long long)r->step, r->kind);
    int ret = txn_begin(s, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st;
    int temp;
    ret = stmt_get(s, ST_EPISODE, &st, &temp, err);
    if (ret == CRL_OK) {
        int rc = sqlite3_bind_int64(st, 1, r->run_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, r->step);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 3, r->task_idx);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, r->kind, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 5, r->episode);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 6, r->deterministic != 0);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 7, r->env, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, u64_to_i64(r->env_seed));
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 9, r->length);
        if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 10, r->ret); /* NaN -> NULL */
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 11, r->success != 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 12, r->mujoco_version, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 13, r->model_hash, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 14, r->modifiers ? r->modifiers : "{}", -1,
                                   SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = r->data_n > 0
                     ? sqlite3_bind_blob64(st, 15, r->data, (sqlite3_uint64)r->data_n,
                                           SQLITE_STATIC)
                     : sqlite3_bind_zeroblob(st, 15, 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 16, blob_crc(r->data, r->data_n));
        ret = rc == SQLITE_OK ? step_write(s, st, r->run_id, err, "cannot insert episode")
                              : fail(s, err, rc, "cannot bind episode");
        stmt_put(st, temp);
    }
    return batch_account(s, ret, err);
}

static void fill_episode_row(crl_episode_row *r, sqlite3_stmt *st) {
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->run_id = sqlite3_column_int64(st, 1);
    r->step = sqlite3_column_int64(st, 2);
    r->task_idx = sqlite3_column_int(st, 3);
    r->kind = (const char *)sqlite3_column_text(st, 4);
    r->episode = sqlite3_column_int(st, 5);
    r->deterministic = sqlite3_column_int(st, 6);
    r->env = (const char *)sqlite3_column_text(st, 7);
    r->env_seed = i64_to_u64(sqlite3_column_int64(st, 8));
    r->length = sqlite3_column_int(st, 9);
    r->ret = crl_store_column_real(st, 10);
    r->success = sqlite3_column_int(st, 11);
    r->mujoco_version = (const char *)sqlite3_column_text(st, 12);
    r->model_hash = (const char *)sqlite3_column_text(st, 13);
    r->modifiers = (const char *)sqlite3_column_text(st, 14);
    r->data = sqlite3_column_blob(st, 15);
    r->data_n = (size_t)sqlite3_column_int64(st, 16);
    if (!r->kind) r->kind = "";
    if (!r->env) r->env = "";
    if (!r->mujoco_version) r->mujoco_version = "";
    if (!r->model_hash) r->model_hash = "";
    if (!r->modifiers) r->modifiers = "{}";
}

/* Step an episode query, calling cb per row; *rows counts them. */
static int episode_rows(crl_store *s, sqlite3_stmt *st, int with_data,
                        int (*cb)(const crl_episode_row *, void *), void *ctx, int *rows,
                        const char *what, crl_err *err) {
    *rows = 0;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) return CRL_OK;
        if (rc != SQLITE_ROW) return fail(s, err, rc, "%s", what);
        crl_episode_row r;
        fill_episode_row(&r, st);
        /* A NULL from sqlite3_column_blob with bytes to give is an
         * out-of-memory, not an empty blob. */
        if (with_data && !r.data && r.data_n > 0)
            return crl_errf(err, CRL_ENOMEM, "%s: out of memory reading episode %lld",
                            s->path, (long long)r.id);
        /* Rows of schema v5 and before have no checksum: read unchecked. */
        if (with_data && sqlite3_column_type(st, 17) != SQLITE_NULL &&
            (uint32_t)sqlite3_column_int64(st, 17) != blob_crc(r.data, r.data_n))
            return crl_errf(err, CRL_ECORRUPT,
                            "episode %lld of run %lld (step %lld) in %s is corrupt "
                            "(checksum mismatch): it cannot be replayed; the run's other "
                            "episodes are not affected",
                            (long long)r.id, (long long)r.run_id, (long long)r.step,
                            s->path);
        if (!with_data) r.data = NULL;
        (*rows)++;
        if (cb(&r, ctx)) return CRL_OK;
    }
}

int crl_store_episode_get(crl_store *s, int64_t id,
                          int (*cb)(const crl_episode_row *, void *), void *ctx,
                          crl_err *err) {
    if (!s || !cb)
        return crl_errf(err, CRL_EINVAL, "crl_store_episode_get: bad argument");
    sqlite3_stmt *st;
    int temp, rows = 0, ret = stmt_get(s, ST_EPISODE_GET, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    int rc = sqlite3_bind_int64(st, 1, id);
    ret = rc == SQLITE_OK
              ? episode_rows(s, st, 1, cb, ctx, &rows, "cannot read episode", err)
              : fail(s, err, rc, "cannot bind episode id");
    if (ret == CRL_OK && rows == 0)
        ret = crl_errf(err, CRL_ENOTFOUND, "%s has no episode %lld", s->path,
                       (long long)id);
    stmt_put(st, temp);
    return ret;
}

int crl_store_episodes(crl_store *s, int64_t run_id, int with_data,
                       int (*cb)(const crl_episode_row *, void *), void *ctx,
                       crl_err *err) {
    if (!s || !cb) return crl_errf(err, CRL_EINVAL, "crl_store_episodes: bad argument");
    sqlite3_stmt *st;
    int temp,
        rows = 0,
        ret = stmt_get(s, with_data ? ST_EPISODES : ST_EPISODES_META, &st, &temp, err);
    if (ret != CRL_OK) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    ret = rc == SQLITE_OK ? episode_rows(s, st, with_data, cb, ctx, &rows,
                                         "cannot read episodes", err)
                          : fail(s, err, rc, "cannot bind run id");
    stmt_put(st, temp);
    return ret;
}

int crl_store_config_json(crl_store *s, const crl_kv *kv, int n_kv, char **json,
                          crl_err *err) {
    return build_config(s, kv, n_kv, json, err);
}
