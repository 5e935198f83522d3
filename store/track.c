/* crl store: run tracking reads (include/crl/store.h, docs/tracking.md):
 * the runs as `crl runs` lists them, the difference of two runs'
 * configurations and every metric of a run for export. Removal is in
 * store.c, with the transactions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/store.h"
#include "store/internal.h"

/* ------------------------------------------------------------------------ */
/* Runs with their labels and current score                                  */

/* ?1 the method (NULL: any); ?2 the number of tags asked for; ?3.. the
 * tags. The last evaluation is the highest step of the run's evals; its
 * score is the mean over the tasks evaluated at that step. */
#define SUMMARY_SQL                                                                      \
    "SELECT r.id, r.created_at, r.name,"                                                 \
    " (SELECT group_concat(tag, ',') FROM"                                               \
    "   (SELECT tag FROM run_tags t WHERE t.run_id = r.id ORDER BY t.pos)),"             \
    " r.status, r.method, r.scenario, r.seed,"                                           \
    " max(coalesce((SELECT max(step) FROM evals e WHERE e.run_id = r.id), 0),"           \
    "     coalesce((SELECT max(step) FROM metrics m WHERE m.run_id = r.id), 0)),"        \
    " le.step,"                                                                          \
    " (SELECT count(*) FROM evals e WHERE e.run_id = r.id AND e.step = le.step),"        \
    " (SELECT avg(success_rate) FROM evals e WHERE e.run_id = r.id AND e.step = "        \
    "le.step),"                                                                          \
    " (SELECT avg(mean_return) FROM evals e WHERE e.run_id = r.id AND e.step = "         \
    "le.step),"                                                                          \
    " (SELECT value FROM metrics m WHERE m.run_id = r.id AND m.key = 'wall_time_s'"      \
    "   ORDER BY m.step DESC LIMIT 1)"                                                   \
    " FROM runs r LEFT JOIN (SELECT run_id, max(step) AS step FROM evals"                \
    "   GROUP BY run_id) le ON le.run_id = r.id"                                         \
    " WHERE (?1 IS NULL OR r.method = ?1)"                                               \
    " AND (?2 = 0 OR (SELECT count(*) FROM run_tags t WHERE t.run_id = r.id"             \
    "   AND t.tag IN (SELECT value FROM json_each(?3))) = ?2)"                           \
    " ORDER BY r.id"

int crl_store_run_summaries(crl_store *s, const crl_run_filter *f,
                            int (*cb)(const crl_run_summary *, void *), void *ctx,
                            crl_err *err) {
    if (!s || !cb)
        return crl_errf(err, CRL_EINVAL, "crl_store_run_summaries: bad argument");
    const int n_tags = f ? f->n_tags : 0;
    int ret = crl_store_run_labels_check(NULL, f ? f->tags : NULL, n_tags, err);
    if (ret) return ret;
    /* The tags asked for as a JSON array, built by SQLite (no quoting here). */
    char *tags_json = NULL;
    if (n_tags > 0) {
        crl_json_doc *d = NULL;
        ret = crl_json_doc_create("[]", &d, err);
        for (int i = 0; ret == CRL_OK && i < n_tags; i++) {
            crl_json_member m = {.type = CRL_JSON_TEXT, .text = f->tags[i]};
            ret = crl_json_doc_append(d, "$", &m, err);
        }
        if (ret == CRL_OK && !(tags_json = strdup(crl_json_doc_text(d))))
            ret = crl_errf(err, CRL_ENOMEM, "out of memory");
        crl_json_doc_free(d);
        if (ret) return ret;
    }
    sqlite3_stmt *st;
    ret = crl_store_prepare(s, SUMMARY_SQL, &st, "cannot list runs", err);
    if (ret) {
        free(tags_json);
        return ret;
    }
    const int began = crl_store_read_begin(s);
    int rc = f && f->method ? sqlite3_bind_text(st, 1, f->method, -1, SQLITE_STATIC)
                            : sqlite3_bind_null(st, 1);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 2, n_tags);
    if (rc == SQLITE_OK)
        rc = tags_json ? sqlite3_bind_text(st, 3, tags_json, -1, SQLITE_STATIC)
                       : sqlite3_bind_text(st, 3, "[]", -1, SQLITE_STATIC);
    while (ret == CRL_OK && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        crl_run_summary r;
        memset(&r, 0, sizeof r);
        r.id = sqlite3_column_int64(st, 0);
        crl_store_column_text(r.created_at, sizeof r.created_at, st, 1);
        crl_store_column_text(r.name, sizeof r.name, st, 2);
        crl_store_column_text(r.tags, sizeof r.tags, st, 3);
        crl_store_column_text(r.status, sizeof r.status, st, 4);
        crl_store_column_text(r.method, sizeof r.method, st, 5);
        crl_store_column_text(r.scenario, sizeof r.scenario, st, 6);
        int64_t seed = sqlite3_column_int64(st, 7);
        memcpy(&r.seed, &seed, sizeof seed);
        r.last_step = sqlite3_column_int64(st, 8);
        r.eval_step =
            sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 9);
        r.eval_tasks = sqlite3_column_int(st, 10);
        r.eval_success = crl_store_column_real(st, 11);
        r.eval_return = crl_store_column_real(st, 12);
        r.wall_s = crl_store_column_real(st, 13);
        if (cb(&r, ctx)) break;
    }
    if (ret == CRL_OK && rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = crl_store_fail(s, err, rc, "cannot list runs");
    sqlite3_finalize(st);
    crl_store_read_end(s, began);
    free(tags_json);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Configuration difference                                                  */

/* A json_each value as JSON text: strings quoted, reals in their shortest
 * form that reads back exactly, objects and arrays as their text. */
#define RENDER(t, v)                                                                     \
    "CASE " t " WHEN 'text' THEN json_quote(" v ")"                                      \
    " WHEN 'real' THEN CASE WHEN CAST(printf('%!.15g', " v ") AS REAL) = " v             \
    "  THEN printf('%!.15g', " v ") WHEN CAST(printf('%!.16g', " v ") AS REAL) = " v     \
    "  THEN printf('%!.16g', " v ") ELSE printf('%!.17g', " v ") END"                    \
    " WHEN 'null' THEN 'null' WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"         \
    " ELSE CAST(" v " AS TEXT) END"

#define DIFF_SQL                                                                         \
    "WITH a AS (SELECT key, type, value FROM runs r, json_each(r.config_json)"           \
    "   WHERE r.id = ?1),"                                                               \
    " b AS (SELECT key, type, value FROM runs r, json_each(r.config_json)"               \
    "   WHERE r.id = ?2),"                                                               \
    " k AS (SELECT key FROM a UNION SELECT key FROM b)"                                  \
    " SELECT k.key, " RENDER("a.type", "a.value") ", " RENDER(                           \
        "b.type",                                                                        \
        "b.value") " FROM k LEFT JOIN a ON a.key = k.key LEFT JOIN b ON b.key = k.key"   \
                   " WHERE a.key IS NULL OR b.key IS NULL OR a.type IS NOT b.type"       \
                   "  OR a.value IS NOT b.value ORDER BY k.key"

/* The run exists and its config_json is a JSON object. */
static int check_config(crl_store *s, int64_t id, crl_err *err) {
    sqlite3_stmt *st;
    int ret = crl_store_prepare(
        s,
        "SELECT json_valid(config_json) AND json_type(config_json) = 'object'"
        " FROM runs WHERE id = ?1",
        &st, "cannot read runs", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        ret = crl_errf(err, CRL_ENOTFOUND, "%s: run %lld does not exist",
                       crl_store_path(s), (long long)id);
    else if (rc != SQLITE_ROW)
        ret = crl_store_fail(s, err, rc, "cannot read run %lld", (long long)id);
    else if (!sqlite3_column_int(st, 0))
        ret =
            crl_errf(err, CRL_ECORRUPT, "%s: run %lld's config_json is not a JSON object",
                     crl_store_path(s), (long long)id);
    sqlite3_finalize(st);
    return ret;
}

int crl_store_config_diff(crl_store *s, int64_t run_a, int64_t run_b,
                          int (*cb)(const char *key, const char *a, const char *b,
                                    void *ctx),
                          void *ctx, crl_err *err) {
    if (!s || !cb)
        return crl_errf(err, CRL_EINVAL, "crl_store_config_diff: bad argument");
    const int began = crl_store_read_begin(s);
    int ret = check_config(s, run_a, err);
    if (!ret) ret = check_config(s, run_b, err);
    sqlite3_stmt *st = NULL;
    if (!ret)
        ret = crl_store_prepare(s, DIFF_SQL, &st, "cannot compare configurations", err);
    if (!ret) {
        int rc = sqlite3_bind_int64(st, 1, run_a);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, run_b);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            rc = SQLITE_OK;
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const char *a = (const char *)sqlite3_column_text(st, 1);
            const char *b = (const char *)sqlite3_column_text(st, 2);
            if (cb(k ? k : "", a, b, ctx)) break;
        }
        if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
            ret = crl_store_fail(s, err, rc, "cannot compare configurations");
    }
    sqlite3_finalize(st);
    crl_store_read_end(s, began);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Every metric of a run                                                     */

int crl_store_metrics_all(crl_store *s, int64_t run_id,
                          int (*cb)(const crl_metric_row *, void *), void *ctx,
                          crl_err *err) {
    if (!s || !cb)
        return crl_errf(err, CRL_EINVAL, "crl_store_metrics_all: bad argument");
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s,
                                "SELECT step, key, value FROM metrics WHERE run_id = ?1"
                                " ORDER BY key, step",
                                &st, "cannot read metrics", err);
    if (ret) return ret;
    int rc = sqlite3_bind_int64(st, 1, run_id);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const unsigned char *k = sqlite3_column_text(st, 1);
        crl_metric_row r = {sqlite3_column_int64(st, 0), k ? (const char *)k : "",
                            crl_store_column_real(st, 2)};
        if (cb(&r, ctx)) break;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = crl_store_fail(s, err, rc, "cannot read the metrics of run %lld",
                             (long long)run_id);
    sqlite3_finalize(st);
    return ret;
}
