/* crl dataset: expert episodes in their own SQLite file (include/crl/dataset.h,
 * docs/dataset.md).
 *
 * The file follows the run store's rules (store/store.c) with its own
 * identity: application_id "CRLD", its own user_version and migrations.
 *  - A file that is not a dataset (not SQLite, a run store, another
 *    program's database) or a newer dataset is never written to: open only
 *    reads until the identity checks pass, and a file open created is
 *    removed again if they fail.
 *  - Episodes go into one lazily started BEGIN IMMEDIATE transaction that is
 *    committed every BATCH_MAX_SECONDS (checked at each add), by
 *    crl_dataset_flush and by close; a killed process loses at most that
 *    batch and leaves a valid file (WAL).
 *  - Every blob read is checked against the row's length and dims before a
 *    byte of it is used. */
#include "crl/dataset.h"

#include "core/blob.h"
#include "crl/store.h"
#include "store/internal.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_MAX_SECONDS 2.0
/* Limits that keep every blob size computation far from overflow. */
#define MAX_LENGTH 100000000
#define MAX_DIM    100000

/* MIGRATIONS[i] upgrades a dataset from version i to i + 1 (append only). */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1: the initial layout. */
    "CREATE TABLE episodes (\n"
    "  id             INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  created_at     TEXT NOT NULL,\n"
    "  task           TEXT NOT NULL,\n"
    "  model_hash     TEXT NOT NULL,\n"
    "  mujoco_version TEXT NOT NULL,\n"
    "  source         TEXT NOT NULL,\n"
    "  seed           INTEGER NOT NULL,\n"
    "  length         INTEGER NOT NULL CHECK (length >= 1),\n"
    "  obs_dim        INTEGER NOT NULL CHECK (obs_dim >= 1),\n"
    "  act_dim        INTEGER NOT NULL CHECK (act_dim >= 1),\n"
    "  ep_return      REAL,\n"
    "  success        INTEGER NOT NULL CHECK (success IN (0,1)),\n"
    "  obs            BLOB NOT NULL,\n"
    "  act            BLOB NOT NULL,\n"
    "  reward         BLOB NOT NULL,\n"
    "  flags          BLOB NOT NULL,\n"
    "  record         BLOB\n"
    ");\n"
    "CREATE INDEX episodes_task ON episodes(task, id);\n"
    "CREATE TABLE schema_migrations (\n"
    "  version    INTEGER PRIMARY KEY,\n"
    "  applied_at TEXT NOT NULL\n"
    ");\n",
};
_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == CRL_DATASET_SCHEMA_VERSION,
               "one migration per dataset schema version");

#define NOW_ISO "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

enum { ST_INSERT, ST_GET, ST_IDS, ST_SUMMARY, ST_TASK_TOTAL, ST_TASK_ROWS, ST__COUNT };

#define ROW_COLUMNS                                                                      \
    "id, task, model_hash, mujoco_version, source, seed, length, obs_dim, act_dim,"      \
    " ep_return, success, obs, act, reward, flags"

static const char *const SQL[ST__COUNT] = {
    [ST_INSERT] = "INSERT INTO episodes (created_at, task, model_hash, mujoco_version,"
                  " source, seed, length, obs_dim, act_dim, ep_return, success, obs, act,"
                  " reward, flags, record) VALUES (" NOW_ISO ", ?1, ?2, ?3, ?4, ?5, ?6,"
                  " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [ST_GET] = "SELECT " ROW_COLUMNS ", record FROM episodes WHERE id = ?1",
    [ST_IDS] = "SELECT id FROM episodes WHERE task = ?1 ORDER BY id",
    /* Per task in first-seen order. The dims and hash are those of the
     * task's first episode (crl_dataset_transitions checks every one). */
    [ST_SUMMARY] =
        "SELECT g.task, g.n, g.steps, g.succ, g.ret, f.obs_dim, f.act_dim, f.model_hash,"
        " g.bytes FROM (SELECT task, min(id) AS first, count(*) AS n, sum(length) AS "
        "steps,"
        " avg(success) AS succ, avg(ep_return) AS ret,"
        " sum(length(obs) + length(act) + length(reward) + length(flags)"
        " + coalesce(length(record), 0)) AS bytes FROM episodes GROUP BY task) g"
        " JOIN episodes f ON f.id = g.first ORDER BY g.first",
    [ST_TASK_TOTAL] = "SELECT count(*), coalesce(sum(length), 0) FROM episodes"
                      " WHERE task = ?1",
    [ST_TASK_ROWS] = "SELECT " ROW_COLUMNS ", NULL FROM episodes WHERE task = ?1"
                     " ORDER BY id",
};

struct crl_dataset {
    sqlite3 *db;
    char *path;
    int busy_ms;
    int in_txn;
    int batch_rows;
    double batch_t0;
    sqlite3_stmt *st[ST__COUNT];
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static int fail(crl_dataset *d, crl_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(crl_dataset *d, crl_err *err, int rc, const char *fmt, ...) {
    char what[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *msg = d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc);
    char lost[128] = "";
    if (d->in_txn && d->db && sqlite3_get_autocommit(d->db)) {
        if (d->batch_rows > 0)
            snprintf(lost, sizeof lost,
                     "; the transaction was rolled back, %d batched episodes were lost",
                     d->batch_rows);
        d->in_txn = 0;
        d->batch_rows = 0;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return crl_errf(err, CRL_EBUSY,
                        "dataset %s is locked by another process (%s: %s after %d ms)%s",
                        d->path, what, msg, d->busy_ms, lost);
    case SQLITE_NOMEM:
        return crl_errf(err, CRL_ENOMEM, "%s: %s: out of memory%s", d->path, what, lost);
    case SQLITE_NOTADB:
        return crl_errf(err, CRL_ECORRUPT, "%s is not a crl dataset (not SQLite)",
                        d->path);
    case SQLITE_CORRUPT:
        return crl_errf(err, CRL_ECORRUPT, "dataset %s is corrupt (%s: %s)%s", d->path,
                        what, msg, lost);
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return crl_errf(err, CRL_EINVAL, "%s: %s: %s%s", d->path, what, msg, lost);
    case SQLITE_READONLY:
        return crl_errf(err, CRL_EIO, "dataset %s is read-only (%s: %s)%s", d->path, what,
                        msg, lost);
    case SQLITE_FULL:
        return crl_errf(err, CRL_EIO, "%s: %s: disk full (%s)%s", d->path, what, msg,
                        lost);
    default:
        return crl_errf(err, CRL_EIO, "%s: %s: %s%s", d->path, what, msg, lost);
    }
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */

static int txn_begin(crl_dataset *d, crl_err *err) {
    if (d->in_txn) return CRL_OK;
    int rc = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return fail(d, err, rc, "cannot begin a write transaction");
    d->in_txn = 1;
    d->batch_rows = 0;
    d->batch_t0 = crl_now();
    return CRL_OK;
}

static int txn_commit(crl_dataset *d, crl_err *err) {
    if (!d->in_txn) return CRL_OK;
    int rc = sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(d, err, rc, "cannot commit %d batched episodes", d->batch_rows);
    d->in_txn = 0;
    d->batch_rows = 0;
    return CRL_OK;
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */

static int query_int(crl_dataset *d, const char *sql, int64_t *out, crl_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_INTERNAL;
    }
    int ret = rc == SQLITE_OK ? CRL_OK : fail(d, err, rc, "cannot read %s", sql);
    sqlite3_finalize(st);
    return ret;
}

/* What the file is, from reads only (one snapshot). *version: the dataset
 * version to migrate from (0: an empty database). */
static int identify(crl_dataset *d, int *version, crl_err *err) {
    int64_t app_id = 0, user_version = 0, n_objects = 0;
    int in_txn = sqlite3_get_autocommit(d->db) &&
                 sqlite3_exec(d->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = query_int(d, "PRAGMA application_id", &app_id, err);
    if (rc == CRL_OK) rc = query_int(d, "PRAGMA user_version", &user_version, err);
    if (rc == CRL_OK)
        rc = query_int(d, "SELECT count(*) FROM sqlite_master", &n_objects, err);
    if (in_txn) sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
    if (rc != CRL_OK) return rc;
    if ((uint32_t)app_id == (uint32_t)CRL_DATASET_APP_ID) {
        if (user_version > CRL_DATASET_SCHEMA_VERSION)
            return crl_errf(err, CRL_EVERSION,
                            "%s has crl dataset version %lld, newer than this crl "
                            "understands (%d); upgrade crl to read it",
                            d->path, (long long)user_version, CRL_DATASET_SCHEMA_VERSION);
        if (user_version < 0)
            return crl_errf(err, CRL_ECORRUPT, "%s has invalid crl dataset version %lld",
                            d->path, (long long)user_version);
        *version = (int)user_version;
        return CRL_OK;
    }
    if ((uint32_t)app_id == (uint32_t)CRL_STORE_APP_ID)
        return crl_errf(err, CRL_ECORRUPT,
                        "%s is a crl run store, not a crl dataset (write datasets to "
                        "their own file)",
                        d->path);
    if (app_id == 0 && user_version == 0 && n_objects == 0) {
        *version = 0;
        return CRL_OK;
    }
    return crl_errf(err, CRL_ECORRUPT,
                    "%s is a SQLite database of another program (application_id "
                    "0x%08x, %lld schema objects), not a crl dataset",
                    d->path, (unsigned)app_id, (long long)n_objects);
}

static int migrate(crl_dataset *d, crl_err *err) {
    for (;;) {
        int rc = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) return fail(d, err, rc, "cannot begin dataset migration");
        int v = 0;
        int ret = identify(d, &v, err);
        if (ret == CRL_OK && v == CRL_DATASET_SCHEMA_VERSION) {
            rc = sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
            return rc == SQLITE_OK ? CRL_OK
                                   : fail(d, err, rc, "cannot end migration check");
        }
        if (ret == CRL_OK) {
            char bump[256];
            snprintf(
                bump, sizeof bump,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %s);"
                " PRAGMA application_id = %d; PRAGMA user_version = %d;",
                v + 1, NOW_ISO, (int)CRL_DATASET_APP_ID, v + 1);
            rc = sqlite3_exec(d->db, MIGRATIONS[v], NULL, NULL, NULL);
            if (rc == SQLITE_OK) rc = sqlite3_exec(d->db, bump, NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                ret = (rc & 0xff) == SQLITE_ERROR
                          ? crl_errf(err, CRL_ECORRUPT,
                                     "%s: migration of the crl dataset from v%d to v%d "
                                     "failed: %s",
                                     d->path, v, v + 1, sqlite3_errmsg(d->db))
                          : fail(d, err, rc, "migration from v%d to v%d", v, v + 1);
        }
        if (ret != CRL_OK) {
            (void)sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
            return ret;
        }
        rc = sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            ret = fail(d, err, rc, "cannot commit migration to v%d", v + 1);
            (void)sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
            return ret;
        }
    }
}

static int set_pragma(crl_dataset *d, const char *sql, const char *want, crl_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ret = CRL_OK;
    if (rc == SQLITE_ROW && want) {
        const unsigned char *got = sqlite3_column_text(st, 0);
        if (!got || strcmp((const char *)got, want) != 0)
            ret = crl_errf(err, CRL_EIO, "%s: '%s' gave '%s', not '%s'", d->path, sql,
                           got ? (const char *)got : "(null)", want);
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = fail(d, err, rc, "%s", sql);
    }
    sqlite3_finalize(st);
    return ret;
}

/* Remove a file this open created (and SQLite's side files) after a
 * failure, so that a failed open leaves nothing behind. */
static void unlink_created(const char *path) {
    size_t n = strlen(path) + 8;
    char *side = malloc(n);
    if (side) {
        snprintf(side, n, "%s-wal", path);
        (void)unlink(side);
        snprintf(side, n, "%s-shm", path);
        (void)unlink(side);
        snprintf(side, n, "%s-journal", path);
        (void)unlink(side);
        free(side);
    }
    (void)unlink(path);
}

static void close_db(crl_dataset *d) {
    for (int i = 0; i < ST__COUNT; i++) sqlite3_finalize(d->st[i]);
    if (d->db) (void)sqlite3_close_v2(d->db);
    free(d->path);
    free(d);
}

int crl_dataset_open(const char *path, int create, crl_dataset **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_dataset_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return crl_errf(err, CRL_EINVAL, "crl_dataset_open: empty path");
    int busy_ms;
    int ret = crl_store_busy_timeout_ms(&busy_ms, err);
    if (ret != CRL_OK) return ret;

    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (!exists) {
        if (errno != ENOENT)
            return crl_errf(err, CRL_EIO, "cannot open dataset %s: %s", path,
                            strerror(errno));
        if (!create)
            return crl_errf(err, CRL_ENOTFOUND, "dataset %s does not exist", path);
        ret = crl_store_check_parent_dir(path, "dataset", err);
        if (ret != CRL_OK) return ret;
    } else {
        if (S_ISDIR(sb.st_mode))
            return crl_errf(err, CRL_EIO, "cannot open dataset %s: it is a directory",
                            path);
        if (!S_ISREG(sb.st_mode))
            return crl_errf(err, CRL_EIO, "cannot open dataset %s: not a regular file",
                            path);
        ret = crl_store_check_magic(path, "crl dataset", err);
        if (ret != CRL_OK) return ret;
        if (sb.st_size == 0 && !create)
            return crl_errf(err, CRL_ECORRUPT, "%s is an empty file, not a crl dataset",
                            path);
    }

    crl_dataset *d = calloc(1, sizeof *d);
    if (!d) return crl_errf(err, CRL_ENOMEM, "out of memory opening %s", path);
    d->path = strdup(path);
    if (!d->path) {
        free(d);
        return crl_errf(err, CRL_ENOMEM, "out of memory opening %s", path);
    }
    d->busy_ms = busy_ms;

    int flags = SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
    ret = crl_store_sqlite_open(path, "dataset", flags, busy_ms, &d->db, err);
    if (ret != CRL_OK) goto fail_open;

    int version = 0;
    ret = identify(d, &version, err);
    if (ret != CRL_OK) goto fail_open;
    if (version < CRL_DATASET_SCHEMA_VERSION) {
        ret = migrate(d, err);
        if (ret != CRL_OK) goto fail_open;
    }
    ret = set_pragma(d, "PRAGMA journal_mode = WAL", "wal", err);
    if (ret == CRL_OK) ret = set_pragma(d, "PRAGMA synchronous = NORMAL", NULL, err);
    if (ret != CRL_OK) goto fail_open;

    for (int i = 0; i < ST__COUNT; i++) {
        int rc = sqlite3_prepare_v3(d->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &d->st[i], NULL);
        if (rc != SQLITE_OK) {
            ret = (rc & 0xff) == SQLITE_ERROR
                      ? crl_errf(err, CRL_ECORRUPT,
                                 "%s has a damaged crl dataset schema: %s", path,
                                 sqlite3_errmsg(d->db))
                      : fail(d, err, rc, "cannot prepare statement");
            goto fail_open;
        }
    }
    *out = d;
    return CRL_OK;

fail_open:
    close_db(d);
    if (!exists) unlink_created(path);
    return ret;
}

void crl_dataset_close(crl_dataset *ds) {
    if (!ds) return;
    if (ds->in_txn && sqlite3_exec(ds->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        (void)sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
    close_db(ds);
}

int crl_dataset_flush(crl_dataset *ds, crl_err *err) {
    if (!ds) return crl_errf(err, CRL_EINVAL, "crl_dataset_flush: dataset is NULL");
    return txn_commit(ds, err);
}

/* ------------------------------------------------------------------------ */
/* Blobs: little-endian float32 arrays                                       */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

/* Bind n floats as a little-endian blob. *tmp receives a converted copy on
 * a big-endian host (free after the step). */
static int bind_f32(sqlite3_stmt *st, int col, const float *x, size_t n, void **tmp) {
    *tmp = NULL;
    size_t bytes = n * sizeof(float);
    if (HOST_LE) return sqlite3_bind_blob64(st, col, x, bytes, SQLITE_STATIC);
    unsigned char *b = malloc(bytes ? bytes : 1);
    if (!b) return SQLITE_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        crl_le_put_u32(b + 4 * i, u);
    }
    *tmp = b;
    return sqlite3_bind_blob64(st, col, b, bytes, SQLITE_STATIC);
}

static void get_f32(float *dst, const void *src, size_t n) {
    if (HOST_LE) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = crl_le_get_u32(p + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

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

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

int crl_dataset_add(crl_dataset *ds, const crl_ds_episode *ep, crl_err *err) {
    if (!ds || !ep) return crl_errf(err, CRL_EINVAL, "crl_dataset_add: NULL argument");
    if (!ep->task || !*ep->task || !ep->model_hash || !ep->mujoco_version || !ep->source)
        return crl_errf(err, CRL_EINVAL,
                        "crl_dataset_add: task, model hash, MuJoCo version and source "
                        "are required");
    if (ep->length < 1 || ep->length > MAX_LENGTH || ep->obs_dim < 1 ||
        ep->obs_dim > MAX_DIM || ep->act_dim < 1 || ep->act_dim > MAX_DIM)
        return crl_errf(err, CRL_EINVAL,
                        "crl_dataset_add: task %s: length %d, obs_dim %d, act_dim %d "
                        "(need length in 1..%d, dims in 1..%d)",
                        ep->task, ep->length, ep->obs_dim, ep->act_dim, MAX_LENGTH,
                        MAX_DIM);
    if (!ep->obs || !ep->act || !ep->reward || !ep->flags)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_add: task %s: an array is missing",
                        ep->task);
    if (ep->record && ep->record_n == 0)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_add: task %s: empty record",
                        ep->task);
    size_t T = (size_t)ep->length;
    int ret = txn_begin(ds, err);
    if (ret != CRL_OK) return ret;
    sqlite3_stmt *st = ds->st[ST_INSERT];
    void *tmp[4] = {NULL, NULL, NULL, NULL};
    int rc = sqlite3_bind_text(st, 1, ep->task, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, ep->model_hash, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, ep->mujoco_version, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, ep->source, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, u64_to_i64(ep->seed));
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 6, ep->length);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 7, ep->obs_dim);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 8, ep->act_dim);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(st, 9, ep->ret);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 10, ep->success ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = bind_f32(st, 11, ep->obs, (T + 1) * (size_t)ep->obs_dim, &tmp[0]);
    if (rc == SQLITE_OK) rc = bind_f32(st, 12, ep->act, T * (size_t)ep->act_dim, &tmp[1]);
    if (rc == SQLITE_OK) rc = bind_f32(st, 13, ep->reward, T, &tmp[2]);
    if (rc == SQLITE_OK) rc = sqlite3_bind_blob64(st, 14, ep->flags, T, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = ep->record
                 ? sqlite3_bind_blob64(st, 15, ep->record, ep->record_n, SQLITE_STATIC)
                 : sqlite3_bind_null(st, 15);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        ret = fail(ds, err, rc, "cannot write an episode of task %s", ep->task);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    for (int i = 0; i < 4; i++) free(tmp[i]);
    if (ret != CRL_OK) return ret;
    ds->batch_rows++;
    if (crl_now() - ds->batch_t0 >= BATCH_MAX_SECONDS) return txn_commit(ds, err);
    return CRL_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

int crl_dataset_summary(crl_dataset *ds, crl_ds_task_summary **out, int *n,
                        crl_err *err) {
    if (!ds || !out || !n)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_summary: NULL argument");
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = ds->st[ST_SUMMARY];
    crl_ds_task_summary *v = NULL;
    int cap = 0, count = 0, ret = CRL_OK, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            int nc = cap ? 2 * cap : 16;
            crl_ds_task_summary *q = realloc(v, (size_t)nc * sizeof *q);
            if (!q) {
                ret = crl_errf(err, CRL_ENOMEM, "out of memory reading %s", ds->path);
                break;
            }
            v = q;
            cap = nc;
        }
        crl_ds_task_summary *s = &v[count++];
        memset(s, 0, sizeof *s);
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(s->task, sizeof s->task, "%s", t ? (const char *)t : "");
        s->episodes = sqlite3_column_int64(st, 1);
        s->steps = sqlite3_column_int64(st, 2);
        s->success_rate = sqlite3_column_double(st, 3);
        s->mean_return = sqlite3_column_double(st, 4);
        s->obs_dim = sqlite3_column_int(st, 5);
        s->act_dim = sqlite3_column_int(st, 6);
        const unsigned char *h = sqlite3_column_text(st, 7);
        snprintf(s->model_hash, sizeof s->model_hash, "%s", h ? (const char *)h : "");
        s->bytes = sqlite3_column_int64(st, 8);
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = fail(ds, err, rc, "cannot read the summary");
    (void)sqlite3_reset(st);
    if (ret != CRL_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n = count;
    return CRL_OK;
}

int crl_dataset_episode_ids(crl_dataset *ds, const char *task, int64_t **ids, int *n,
                            crl_err *err) {
    if (!ds || !task || !ids || !n)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_episode_ids: NULL argument");
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = ds->st[ST_IDS];
    int64_t *v = NULL;
    int cap = 0, count = 0, ret = CRL_OK, rc;
    rc = sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) break;
        if (count == cap) {
            int nc = cap ? 2 * cap : 64;
            int64_t *q = realloc(v, (size_t)nc * sizeof *q);
            if (!q) {
                ret = crl_errf(err, CRL_ENOMEM, "out of memory reading %s", ds->path);
                break;
            }
            v = q;
            cap = nc;
        }
        v[count++] = sqlite3_column_int64(st, 0);
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = fail(ds, err, rc, "cannot list the episodes of task %s", task);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    if (ret != CRL_OK) {
        free(v);
        return ret;
    }
    *ids = v;
    *n = count;
    return CRL_OK;
}

/* The sizes of the row under st (ROW_COLUMNS order), checked: the dims and
 * length in range and every blob exactly as long as they say. */
typedef struct {
    int64_t id;
    int length, obs_dim, act_dim;
} row_shape;

static int check_row(crl_dataset *ds, sqlite3_stmt *st, row_shape *r, crl_err *err) {
    r->id = sqlite3_column_int64(st, 0);
    const unsigned char *task = sqlite3_column_text(st, 1);
    const char *tn = task ? (const char *)task : "?";
    int64_t T = sqlite3_column_int64(st, 6), od = sqlite3_column_int64(st, 7),
            ad = sqlite3_column_int64(st, 8);
    if (T < 1 || T > MAX_LENGTH || od < 1 || od > MAX_DIM || ad < 1 || ad > MAX_DIM)
        return crl_errf(err, CRL_ECORRUPT,
                        "%s: episode %lld (task %s) has length %lld, obs_dim %lld, "
                        "act_dim %lld: not a valid episode",
                        ds->path, (long long)r->id, tn, (long long)T, (long long)od,
                        (long long)ad);
    r->length = (int)T;
    r->obs_dim = (int)od;
    r->act_dim = (int)ad;
    static const char *const names[4] = {"obs", "act", "reward", "flags"};
    const int64_t want[4] = {(T + 1) * od * 4, T * ad * 4, T * 4, T};
    for (int b = 0; b < 4; b++) {
        int col = 11 + b;
        int type = sqlite3_column_type(st, col);
        int64_t got = type == SQLITE_BLOB ? sqlite3_column_bytes(st, col) : -1;
        if (got != want[b])
            return crl_errf(err, CRL_ECORRUPT,
                            "%s: episode %lld (task %s): the %s blob has %lld bytes, "
                            "expected %lld (length %lld, obs_dim %lld, act_dim %lld)",
                            ds->path, (long long)r->id, tn, names[b], (long long)got,
                            (long long)want[b], (long long)T, (long long)od,
                            (long long)ad);
    }
    return CRL_OK;
}

static char *dup_col(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

/* The const char * fields of a read episode point at strings it owns. */
static void free_str(const char *s) {
    char *p;
    memcpy(&p, &s, sizeof p);
    free(p);
}

void crl_ds_episode_free(crl_ds_episode *ep) {
    if (!ep) return;
    free_str(ep->task);
    free_str(ep->model_hash);
    free_str(ep->mujoco_version);
    free_str(ep->source);
    free(ep->obs);
    free(ep->act);
    free(ep->reward);
    free(ep->flags);
    free(ep->record);
    memset(ep, 0, sizeof *ep);
}

int crl_dataset_episode(crl_dataset *ds, int64_t id, crl_ds_episode *out, crl_err *err) {
    if (!ds || !out)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_episode: NULL argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = ds->st[ST_GET];
    int ret = CRL_OK;
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret =
            crl_errf(err, CRL_ENOTFOUND, "%s: no episode %lld", ds->path, (long long)id);
        goto done;
    }
    if (rc != SQLITE_ROW) {
        ret = fail(ds, err, rc, "cannot read episode %lld", (long long)id);
        goto done;
    }
    row_shape r;
    ret = check_row(ds, st, &r, err);
    if (ret != CRL_OK) goto done;
    size_t T = (size_t)r.length;
    out->id = r.id;
    out->task = dup_col(st, 1);
    out->model_hash = dup_col(st, 2);
    out->mujoco_version = dup_col(st, 3);
    out->source = dup_col(st, 4);
    out->seed = i64_to_u64(sqlite3_column_int64(st, 5));
    out->length = r.length;
    out->obs_dim = r.obs_dim;
    out->act_dim = r.act_dim;
    out->ret = sqlite3_column_double(st, 9);
    out->success = sqlite3_column_int(st, 10) != 0;
    out->obs = malloc((T + 1) * (size_t)r.obs_dim * sizeof(float));
    out->act = malloc(T * (size_t)r.act_dim * sizeof(float));
    out->reward = malloc(T * sizeof(float));
    out->flags = malloc(T);
    size_t rec_n = 0;
    if (sqlite3_column_type(st, 15) == SQLITE_BLOB) {
        rec_n = (size_t)sqlite3_column_bytes(st, 15);
        if (rec_n == 0) {
            ret =
                crl_errf(err, CRL_ECORRUPT, "%s: episode %lld: the record blob is empty",
                         ds->path, (long long)id);
            goto done;
        }
        out->record = malloc(rec_n);
    }
    if (!out->task || !out->model_hash || !out->mujoco_version || !out->source ||
        !out->obs || !out->act || !out->reward || !out->flags ||
        (rec_n && !out->record)) {
        ret = crl_errf(err, CRL_ENOMEM, "out of memory reading episode %lld",
                       (long long)id);
        goto done;
    }
    get_f32(out->obs, sqlite3_column_blob(st, 11), (T + 1) * (size_t)r.obs_dim);
    get_f32(out->act, sqlite3_column_blob(st, 12), T * (size_t)r.act_dim);
    get_f32(out->reward, sqlite3_column_blob(st, 13), T);
    memcpy(out->flags, sqlite3_column_blob(st, 14), T);
    if (rec_n) memcpy(out->record, sqlite3_column_blob(st, 15), rec_n);
    out->record_n = rec_n;
done:
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    if (ret != CRL_OK) crl_ds_episode_free(out);
    return ret;
}

void crl_ds_transitions_free(crl_ds_transitions *t) {
    if (!t) return;
    free(t->obs);
    free(t->act);
    free(t->reward);
    free(t->next_obs);
    free(t->done);
    memset(t, 0, sizeof *t);
}

static int transitions_read(crl_dataset *ds, const char *task, int obs_dim, int act_dim,
                            crl_ds_transitions *out, crl_err *err);

int crl_dataset_transitions(crl_dataset *ds, const char *task, int obs_dim, int act_dim,
                            crl_ds_transitions *out, crl_err *err) {
    if (!ds || !task || !out)
        return crl_errf(err, CRL_EINVAL, "crl_dataset_transitions: NULL argument");
    memset(out, 0, sizeof *out);
    if (obs_dim < 1 || obs_dim > MAX_DIM || act_dim < 1 || act_dim > MAX_DIM)
        return crl_errf(err, CRL_EINVAL,
                        "crl_dataset_transitions: obs_dim %d, act_dim %d out of range",
                        obs_dim, act_dim);
    /* The total first, to allocate once; both reads in one snapshot. */
    int snap = sqlite3_get_autocommit(ds->db) &&
               sqlite3_exec(ds->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int ret = transitions_read(ds, task, obs_dim, act_dim, out, err);
    if (snap) (void)sqlite3_exec(ds->db, "COMMIT", NULL, NULL, NULL);
    return ret;
}

static int transitions_read(crl_dataset *ds, const char *task, int obs_dim, int act_dim,
                            crl_ds_transitions *out, crl_err *err) {
    sqlite3_stmt *st = ds->st[ST_TASK_TOTAL];
    int64_t n_eps = 0, total = 0;
    int rc = sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        n_eps = sqlite3_column_int64(st, 0);
        total = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    int ret = rc == SQLITE_OK
                  ? CRL_OK
                  : fail(ds, err, rc, "cannot count the episodes of task %s", task);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    if (ret != CRL_OK) return ret;
    if (n_eps == 0)
        return crl_errf(err, CRL_ENOTFOUND, "%s has no episodes of task %s", ds->path,
                        task);
    if (total < 1 || total > (int64_t)1 << 40)
        return crl_errf(err, CRL_ECORRUPT, "%s: task %s has %lld steps in total",
                        ds->path, task, (long long)total);
    size_t N = (size_t)total;
    out->obs_dim = obs_dim;
    out->act_dim = act_dim;
    out->obs = malloc(N * (size_t)obs_dim * sizeof(float));
    out->next_obs = malloc(N * (size_t)obs_dim * sizeof(float));
    out->act = malloc(N * (size_t)act_dim * sizeof(float));
    out->reward = malloc(N * sizeof(float));
    out->done = malloc(N);
    if (!out->obs || !out->next_obs || !out->act || !out->reward || !out->done) {
        crl_ds_transitions_free(out);
        return crl_errf(err, CRL_ENOMEM, "out of memory: %lld transitions of task %s",
                        (long long)total, task);
    }

    st = ds->st[ST_TASK_ROWS];
    size_t at = 0;
    rc = sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
    while (ret == CRL_OK && rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) break;
        rc = SQLITE_OK;
        row_shape r;
        ret = check_row(ds, st, &r, err);
        if (ret != CRL_OK) break;
        if (r.obs_dim != obs_dim || r.act_dim != act_dim) {
            ret = crl_errf(err, CRL_EINVAL,
                           "%s: task %s, episode %lld has obs_dim %d and act_dim %d, but "
                           "the env has obs_dim %d and act_dim %d",
                           ds->path, task, (long long)r.id, r.obs_dim, r.act_dim, obs_dim,
                           act_dim);
            break;
        }
        size_t T = (size_t)r.length;
        if (at + T > N) {
            ret = crl_errf(err, CRL_ECORRUPT, "%s: task %s changed while being read",
                           ds->path, task);
            break;
        }
        const unsigned char *ob = sqlite3_column_blob(st, 11);
        size_t ob_row = (size_t)obs_dim * 4;
        get_f32(out->obs + at * (size_t)obs_dim, ob, T * (size_t)obs_dim);
        get_f32(out->next_obs + at * (size_t)obs_dim, ob + ob_row, T * (size_t)obs_dim);
        get_f32(out->act + at * (size_t)act_dim, sqlite3_column_blob(st, 12),
                T * (size_t)act_dim);
        get_f32(out->reward + at, sqlite3_column_blob(st, 13), T);
        const unsigned char *fl = sqlite3_column_blob(st, 14);
        for (size_t t = 0; t < T; t++)
            out->done[at + t] = (fl[t] & CRL_DS_TERMINAL) ? 1 : 0;
        at += T;
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = fail(ds, err, rc, "cannot read the episodes of task %s", task);
    if (ret == CRL_OK && at != N)
        ret = crl_errf(err, CRL_ECORRUPT, "%s: task %s changed while being read",
                       ds->path, task);
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    if (ret != CRL_OK) {
        crl_ds_transitions_free(out);
        return ret;
    }
    out->n = (int64_t)N;
    return CRL_OK;
}
