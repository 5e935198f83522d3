/* crl store: JSON read and written with SQLite's JSON functions
 * (include/crl/store.h). Reading config_json and episode modifiers through
 * SQLite gives back exactly what its json_object wrote; building output
 * documents through it renders numbers as every earlier crl report did. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/store.h"
#include "store/internal.h"

/* Column col as a crl_json_value; text stays valid until st moves on. */
static void json_value(sqlite3_stmt *st, int col, crl_json_value *v) {
    /* Type first: the conversions below may change what SQLite reports. */
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        v->type = CRL_JSON_INT;
        break;
    case SQLITE_FLOAT:
        v->type = CRL_JSON_REAL;
        break;
    case SQLITE_NULL:
        v->type = CRL_JSON_NULL;
        break;
    default:
        v->type = CRL_JSON_TEXT;
    }
    v->i = sqlite3_column_int64(st, col);
    v->num = sqlite3_column_double(st, col);
    v->text = (const char *)sqlite3_column_text(st, col);
}

int crl_store_json_each(crl_store *s, const char *json,
                        int (*cb)(const char *key, const crl_json_value *v, void *ctx),
                        void *ctx, crl_err *err) {
    if (!cb) return crl_errf(err, CRL_EINVAL, "crl_store_json_each: bad argument");
    sqlite3_stmt *st;
    /* A number's text is its JSON text (-> keeps it verbatim), so that a
     * value reads back exactly as it was written; i and num come from the
     * atom, with SQL's conversions. */
    int ret =
        crl_store_prepare(s,
                          "SELECT key, atom, CASE WHEN type IN ('integer', 'real') THEN"
                          " ?1 -> fullkey ELSE atom END FROM json_each(?1)",
                          &st, "cannot read JSON members", err);
    if (ret) return ret;
    int rc = sqlite3_bind_text(st, 1, json ? json : "{}", -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        crl_json_value v;
        json_value(st, 1, &v);
        v.text = (const char *)sqlite3_column_text(st, 2);
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (cb(key ? key : "", &v, ctx)) rc = SQLITE_DONE;
    }
    if (rc == SQLITE_ERROR)
        ret = crl_errf(err, CRL_ECORRUPT, "not valid JSON: %.80s", json ? json : "");
    else if (rc != SQLITE_DONE)
        ret = crl_store_fail(s, err, rc, "cannot read JSON members");
    sqlite3_finalize(st);
    return ret;
}

int crl_store_json_extract(crl_store *s, const char *json, const char *const *paths,
                           int n_paths,
                           int (*cb)(const crl_json_value *values, void *ctx), void *ctx,
                           crl_err *err) {
    if (!json || !paths || !cb || n_paths < 1 || n_paths > CRL_STORE_MAX_KEYS)
        return crl_errf(err, CRL_EINVAL, "crl_store_json_extract: bad argument");
    char sql[32 * CRL_STORE_MAX_KEYS];
    size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT ");
    for (int i = 0; i < n_paths; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%sjson_extract(?1, ?%d)",
                                i ? ", " : "", i + 2);
    sqlite3_stmt *st;
    int ret = crl_store_prepare(s, sql, &st, "cannot read JSON values", err);
    if (ret) return ret;
    int rc = sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    for (int i = 0; rc == SQLITE_OK && i < n_paths; i++)
        rc = sqlite3_bind_text(st, i + 2, paths[i] ? paths[i] : "$", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        crl_json_value v[CRL_STORE_MAX_KEYS];
        for (int i = 0; i < n_paths; i++) json_value(st, i, &v[i]);
        /* Text pointers of earlier columns stay valid: each column converts
         * its own value only. */
        (void)cb(v, ctx);
    } else if (rc == SQLITE_ERROR) {
        ret = crl_errf(err, CRL_ECORRUPT, "not valid JSON: %.80s", json);
    } else {
        ret = crl_store_fail(s, err, rc, "cannot read JSON values");
    }
    sqlite3_finalize(st);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Documents                                                                 */

struct crl_json_doc {
    sqlite3 *db;
    char *text;
};

int crl_json_doc_create(const char *json, crl_json_doc **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_json_doc_create: bad argument");
    *out = NULL;
    crl_json_doc *d = calloc(1, sizeof *d);
    if (!d || !(d->text = strdup(json ? json : "{}"))) {
        free(d);
        return crl_errf(err, CRL_ENOMEM, "json: out of memory");
    }
    if (sqlite3_open_v2(":memory:", &d->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        crl_json_doc_free(d);
        return crl_errf(err, CRL_ENOMEM, "json: cannot open an in-memory database");
    }
    *out = d;
    return CRL_OK;
}

void crl_json_doc_free(crl_json_doc *d) {
    if (!d) return;
    if (d->db) (void)sqlite3_close(d->db);
    free(d->text);
    free(d);
}

const char *crl_json_doc_text(const crl_json_doc *d) {
    return d ? d->text : "";
}

typedef struct {
    char *sql;
    size_t len, cap;
    int n_params;
    int bad;
} sql_buf;

static void put(sql_buf *b, const char *t) {
    size_t n = strlen(t);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->sql, cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->sql = p;
        b->cap = cap;
    }
    memcpy(b->sql + b->len, t, n + 1);
    b->len += n;
}

static void put_param(sql_buf *b) {
    char p[16];
    snprintf(p, sizeof p, "?%d", ++b->n_params);
    put(b, p);
}

/* SQL for v: a parameter per leaf (keys too), json_object(...) per object;
 * binding walks v in the same order. */
static void value_sql(sql_buf *b, const crl_json_member *v, int depth) {
    if (v->type != CRL_JSON_OBJECT) {
        put_param(b);
        return;
    }
    if (depth > 8 || v->n_members < 0 || (v->n_members > 0 && !v->members)) {
        b->bad = 1;
        return;
    }
    put(b, "json_object(");
    for (int i = 0; i < v->n_members; i++) {
        if (i) put(b, ", ");
        put_param(b);
        put(b, ", ");
        value_sql(b, &v->members[i], depth + 1);
    }
    put(b, ")");
}

static int bind_value(sqlite3_stmt *st, int *k, const crl_json_member *v) {
    int rc = SQLITE_OK;
    switch (v->type) {
    case CRL_JSON_OBJECT:
        for (int i = 0; rc == SQLITE_OK && i < v->n_members; i++) {
            const crl_json_member *m = &v->members[i];
            rc = sqlite3_bind_text(st, ++*k, m->key ? m->key : "", -1, SQLITE_STATIC);
            if (rc == SQLITE_OK) rc = bind_value(st, k, m);
        }
        return rc;
    case CRL_JSON_INT:
        return sqlite3_bind_int64(st, ++*k, v->i);
    case CRL_JSON_REAL:
        return isfinite(v->num) ? sqlite3_bind_double(st, ++*k, v->num)
                                : sqlite3_bind_null(st, ++*k);
    case CRL_JSON_TEXT:
        return v->text ? sqlite3_bind_text(st, ++*k, v->text, -1, SQLITE_STATIC)
                       : sqlite3_bind_null(st, ++*k);
    default:
        return sqlite3_bind_null(st, ++*k);
    }
}

int crl_json_doc_append(crl_json_doc *d, const char *path, const crl_json_member *v,
                        crl_err *err) {
    if (!d || !path || !v)
        return crl_errf(err, CRL_EINVAL, "crl_json_doc_append: bad argument");
    sql_buf b = {0};
    /* ?1 the document, ?2 the path + "[#]" (the array's end). */
    b.n_params = 2;
    put(&b, "SELECT json_insert(?1, ?2 || '[#]', ");
    value_sql(&b, v, 0);
    put(&b, ")");
    if (b.bad) {
        free(b.sql);
        return crl_errf(err, CRL_EINVAL, "json: cannot build the value to append");
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, b.sql, -1, &st, NULL);
    free(b.sql);
    int k = 2;
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, d->text, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_value(st, &k, v);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ret = CRL_OK;
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!t) {
        ret = crl_errf(err, CRL_EIO, "json: %s", sqlite3_errmsg(d->db));
    } else {
        char *next = strdup((const char *)t);
        if (!next) {
            ret = crl_errf(err, CRL_ENOMEM, "json: out of memory");
        } else {
            /* d->text was bound SQLITE_STATIC: release the statement first. */
            sqlite3_finalize(st);
            st = NULL;
            free(d->text);
            d->text = next;
        }
    }
    sqlite3_finalize(st);
    return ret;
}

int crl_json_doc_set_array(crl_json_doc *d, const char *path, crl_err *err) {
    if (!d || !path)
        return crl_errf(err, CRL_EINVAL, "crl_json_doc_set_array: bad argument");
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(d->db, "SELECT json_set(?1, ?2, json_array())", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, d->text, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    char *next = t ? strdup((const char *)t) : NULL;
    int ret = next ? CRL_OK
                   : crl_errf(err, t ? CRL_ENOMEM : CRL_EIO, "json: %s",
                              t ? "out of memory" : sqlite3_errmsg(d->db));
    sqlite3_finalize(st);
    if (next) {
        free(d->text);
        d->text = next;
    }
    return ret;
}
