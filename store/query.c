/* crl store: typed reads for the report, plots, replay, sweeps and export
 * (include/crl/store.h). Each function is one query (or one per call, as its
 * caller ran it before), with the SQL's NULL handling made explicit in the
 * row types. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/store.h"
#include "store/internal.h"

/* Grow *arr (of *cap elements of size sz) to hold n + 1. */
static int grow(void **arr, int *cap, int n, size_t sz, crl_err *err) {
    if (n < *cap) return CRL_OK;
    int c = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, (size_t)c * sz);
    if (!p) return crl_errf(err, CRL_ENOMEM, "store: out of memory");
    *arr = p;
    *cap = c;
    return CRL_OK;
}

/* After a query of run_id found no rows: CRL_ENOTFOUND if there is no such
 * run (asked only then, so a run with rows costs no second query). */
static int check_run(crl_store *s, int64_t run_id, crl_err *err) {
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, "SELECT 1 FROM runs WHERE id = ?1", &st,
                                "cannot read runs", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld does not exist",
                       crl_store_path(s), (long long)run_id);
    else if (rc != SQLITE_ROW)
        ret = crl_store_fail(s, err, rc, "cannot read run %lld", (long long)run_id);
    sqlite3_finalize(st);
    return ret;
}

const char *crl_store_sqlite_version(void) {
    return sqlite3_libversion();
}

int crl_store_read_begin(crl_store *s) {
    sqlite3 *db = crl_store_sqlite(s);
    return db && sqlite3_get_autocommit(db) &&
           sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

void crl_store_read_end(crl_store *s, int began) {
    sqlite3 *db = crl_store_sqlite(s);
    if (db && began) (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */

int crl_store_finished_runs(crl_store *s, const char *scenario, crl_finished_run **runs,
                            int *n, crl_err *err) {
    if (!runs || !n)
        return crl_errf(err, CRL_EINVAL, "crl_store_finished_runs: bad argument");
    *runs = NULL;
    *n = 0;
    static const char *sql =
        "SELECT r.id, r.method, r.scenario, r.seed,"
        " CASE WHEN json_valid(r.config_json)"
        "  THEN json_extract(r.config_json, '$.steps_per_task') END,"
        " (SELECT t.end_step - t.start_step FROM tasks t WHERE t.run_id = r.id"
        "  ORDER BY t.idx LIMIT 1)"
        " FROM runs r WHERE r.status = 'finished' AND (?1 IS NULL OR r.scenario = ?1)"
        " ORDER BY r.id";
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, sql, &st, "cannot list finished runs", err);
    if (ret) return ret;
    int rc = scenario ? sqlite3_bind_text(st, 1, scenario, -1, SQLITE_STATIC) : SQLITE_OK;
    int cap = 0;
    while (ret == CRL_OK && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if ((ret = grow((void **)runs, &cap, *n, sizeof **runs, err))) break;
        crl_finished_run *r = &(*runs)[(*n)++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        crl_store_column_text(r->method, sizeof r->method, st, 1);
        crl_store_column_text(r->scenario, sizeof r->scenario, st, 2);
        r->seed = (uint64_t)sqlite3_column_int64(st, 3);
        int ty = sqlite3_column_type(st, 4);
        r->has_spt = ty == SQLITE_INTEGER || ty == SQLITE_FLOAT;
        r->spt = r->has_spt ? sqlite3_column_double(st, 4) : NAN;
        r->first_window = sqlite3_column_type(st, 5) == SQLITE_INTEGER
                              ? sqlite3_column_int64(st, 5)
                              : -1;
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot list finished runs");
    sqlite3_finalize(st);
    if (ret) {
        free(*runs);
        *runs = NULL;
        *n = 0;
    }
    return ret;
}

void crl_store_finished_runs_free(crl_finished_run *runs) {
    free(runs);
}

int crl_store_unfinished_runs(crl_store *s, const char *scenario,
                              crl_status_count **counts, int *n, crl_err *err) {
    if (!counts || !n)
        return crl_errf(err, CRL_EINVAL, "crl_store_unfinished_runs: bad argument");
    *counts = NULL;
    *n = 0;
    static const char *sql =
        "SELECT status, count(*) FROM runs WHERE status <> 'finished'"
        " AND (?1 IS NULL OR scenario = ?1) GROUP BY status"
        " ORDER BY status";
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, sql, &st, "cannot count unfinished runs", err);
    if (ret) return ret;
    int rc = scenario ? sqlite3_bind_text(st, 1, scenario, -1, SQLITE_STATIC) : SQLITE_OK;
    int cap = 0;
    while (ret == CRL_OK && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if ((ret = grow((void **)counts, &cap, *n, sizeof **counts, err))) break;
        crl_status_count *c = &(*counts)[(*n)++];
        crl_store_column_text(c->status, sizeof c->status, st, 0);
        c->count = sqlite3_column_int(st, 1);
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot count unfinished runs");
    sqlite3_finalize(st);
    if (ret) {
        free(*counts);
        *counts = NULL;
        *n = 0;
    }
    return ret;
}

void crl_store_status_counts_free(crl_status_count *counts) {
    free(counts);
}

/* ------------------------------------------------------------------------ */
/* Tasks and checkpoints                                                     */

int crl_store_tasks(crl_store *s, int64_t run_id, crl_task_row **tasks, int *n,
                    crl_err *err) {
    if (!tasks || !n) return crl_errf(err, CRL_EINVAL, "crl_store_tasks: bad argument");
    *tasks = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s,
                                "SELECT idx, name, start_step, end_step FROM tasks"
                                " WHERE run_id = ?1 ORDER BY idx",
                                &st, "cannot read tasks", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id), cap = 0;
    while (ret == CRL_OK && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if ((ret = grow((void **)tasks, &cap, *n, sizeof **tasks, err))) break;
        crl_task_row *t = &(*tasks)[(*n)++];
        t->idx = sqlite3_column_int(st, 0);
        crl_store_column_text(t->name, sizeof t->name, st, 1);
        t->start_step = sqlite3_column_int64(st, 2);
        t->end_step =
            sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
    }
    if (ret == CRL_OK && rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot read the tasks of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && *n == 0) ret = check_run(s, run_id, err);
    if (ret) {
        free(*tasks);
        *tasks = NULL;
        *n = 0;
    }
    return ret;
}

void crl_store_tasks_free(crl_task_row *tasks) {
    free(tasks);
}

int crl_store_checkpoint_count(crl_store *s, int64_t run_id, int64_t *n, crl_err *err) {
    if (!n) return crl_errf(err, CRL_EINVAL, "crl_store_checkpoint_count: bad argument");
    *n = 0;
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, "SELECT count(*) FROM checkpoints WHERE run_id = ?1",
                                &st, "cannot count checkpoints", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        ret = crl_store_fail(s, err, rc, "cannot count the checkpoints of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && *n == 0) ret = check_run(s, run_id, err);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */

/* Step st (bound, rc its binding status) calling cb per row; SQLITE_DONE at
 * the end or when cb stops. */
static int metric_rows(sqlite3_stmt *st, int rc,
                       int (*cb)(const crl_metric_row *, void *), void *ctx, int *rows) {
    *rows = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        crl_metric_row m = {
            .step = sqlite3_column_int64(st, 0),
            .value = crl_store_column_real(st, 2),
            .key = (const char *)sqlite3_column_text(st, 1),
        };
        if (!m.key) m.key = "";
        ++*rows;
        if (cb(&m, ctx)) return SQLITE_DONE;
    }
    return rc;
}

int crl_store_metrics(crl_store *s, int64_t run_id, const char *const *keys, int n_keys,
                      int (*cb)(const crl_metric_row *, void *), void *ctx,
                      crl_err *err) {
    if (!keys || !cb || n_keys < 1 || n_keys > CRL_STORE_MAX_KEYS)
        return crl_errf(err, CRL_EINVAL, "crl_store_metrics: bad argument");
    char sql[256 + 4 * CRL_STORE_MAX_KEYS];
    size_t len = (size_t)snprintf(sql, sizeof sql,
                                  "SELECT step, key, value FROM metrics WHERE run_id = ?1"
                                  " AND key IN (");
    for (int i = 0; i < n_keys; i++)
        len +=
            (size_t)snprintf(sql + len, sizeof sql - len, "%s?%d", i ? ", " : "", i + 2);
    snprintf(sql + len, sizeof sql - len, ") ORDER BY step");
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, sql, &st, "cannot read metrics", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    for (int i = 0; rc == SQLITE_OK && i < n_keys; i++)
        rc = sqlite3_bind_text(st, i + 2, keys[i] ? keys[i] : "", -1, SQLITE_STATIC);
    int rows;
    rc = metric_rows(st, rc, cb, ctx, &rows);
    if (rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot read the metrics of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && rows == 0) ret = check_run(s, run_id, err);
    return ret;
}

int crl_store_metrics_last(crl_store *s, int64_t run_id, const char *const *keys,
                           int n_keys, double *values, crl_err *err) {
    if (!keys || !values || n_keys < 1 || n_keys > CRL_STORE_MAX_KEYS)
        return crl_errf(err, CRL_EINVAL, "crl_store_metrics_last: bad argument");
    for (int i = 0; i < n_keys; i++) values[i] = NAN;
    char sql[120 * CRL_STORE_MAX_KEYS];
    size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT ");
    for (int i = 0; i < n_keys; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len,
                                "%s(SELECT value FROM metrics WHERE run_id = ?1 AND"
                                " key = ?%d ORDER BY step DESC LIMIT 1)",
                                i ? ", " : "", i + 2);
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, sql, &st, "cannot read metrics", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    for (int i = 0; rc == SQLITE_OK && i < n_keys; i++)
        rc = sqlite3_bind_text(st, i + 2, keys[i] ? keys[i] : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW)
        for (int i = 0; i < n_keys; i++)
            found |= !isnan(values[i] = crl_store_column_real(st, i));
    else
        ret = crl_store_fail(s, err, rc, "cannot read the metrics of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && !found) ret = check_run(s, run_id, err);
    return ret;
}

int crl_store_metrics_family_last(crl_store *s, int64_t run_id, const char *prefix,
                                  int (*cb)(const crl_metric_row *, void *), void *ctx,
                                  crl_err *err) {
    if (!prefix || !cb)
        return crl_errf(err, CRL_EINVAL, "crl_store_metrics_family_last: bad argument");
    sqlite3_stmt *st;
    int ret = crl_store_prepare(
        s,
        "SELECT step, key, value FROM metrics WHERE run_id = ?1 AND key LIKE"
        " ?2 || '%' AND step = (SELECT max(step) FROM metrics"
        " WHERE run_id = ?1 AND key LIKE ?2 || '%')"
        " ORDER BY CAST(substr(key, length(?2) + 1) AS INTEGER)",
        &st, "cannot read metrics", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    int rows;
    rc = metric_rows(st, rc, cb, ctx, &rows);
    if (rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot read the metrics of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && rows == 0) ret = check_run(s, run_id, err);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* CSP decisions                                                             */

int crl_store_csp_decisions(crl_store *s, int64_t run_id,
                            int (*cb)(const crl_csp_decision_row *, void *), void *ctx,
                            crl_err *err) {
    if (!cb) return crl_errf(err, CRL_EINVAL, "crl_store_csp_decisions: bad argument");
    sqlite3_stmt *st;
    int ret = crl_store_prepare(
        s,
        "SELECT run_id, task_idx, step, kept, best_new, best_old, n_anchors,"
        " alpha, criterion, rollouts, new_success, old_success, q_new, q_old,"
        " check_kept, check_new, check_old, wall_s"
        " FROM csp_decisions WHERE run_id = ?1 ORDER BY task_idx",
        &st, "cannot read csp decisions", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id), rows = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        rows++;
        crl_csp_decision_row d = {
            .run_id = sqlite3_column_int64(st, 0),
            .task_idx = sqlite3_column_int(st, 1),
            .step = sqlite3_column_int64(st, 2),
            .kept = sqlite3_column_int(st, 3),
            .best_new = crl_store_column_real(st, 4),
            .best_old = crl_store_column_real(st, 5),
            .n_anchors = sqlite3_column_int(st, 6),
            .alpha_json = (const char *)sqlite3_column_text(st, 7),
            .criterion = (const char *)sqlite3_column_text(st, 8),
            .rollouts = sqlite3_column_int(st, 9),
            .new_success = crl_store_column_real(st, 10),
            .old_success = crl_store_column_real(st, 11),
            .q_new = crl_store_column_real(st, 12),
            .q_old = crl_store_column_real(st, 13),
            .check_kept = sqlite3_column_type(st, 14) == SQLITE_NULL
                              ? -1
                              : sqlite3_column_int(st, 14),
            .check_new = crl_store_column_real(st, 15),
            .check_old = crl_store_column_real(st, 16),
            .wall_s = crl_store_column_real(st, 17),
        };
        if (!d.alpha_json) d.alpha_json = "[]";
        if (cb(&d, ctx)) rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot read the csp decisions of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    if (ret == CRL_OK && rows == 0) ret = check_run(s, run_id, err);
    return ret;
}
