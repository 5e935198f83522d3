/* crl merge: shard stores into one (include/crl/store.h, docs/sweeps.md).
 *
 * The copy is generic over the schema: every table of a shard that refers to
 * runs(id) (a declared foreign key, or a column named run_id) is copied run
 * by run, with the run id renumbered. A table's INTEGER PRIMARY KEY (a rowid
 * alias, like episodes.id) is left to the output to number, and columns that
 * refer to such a key in another table are mapped through the ids given out
 * for that run. A table a shard has that refers to no run cannot be split by
 * run and refuses the merge (a new table must say how it merges).
 *
 * Shards are only read (opened read-only); the output is written in one
 * transaction, so a failed merge leaves it as it was (or absent). */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crl/store.h"
#include "store/internal.h"

#define MAX_TABLES 64
#define MAX_COLS   64

/* Tables that describe a database, not its runs. */
static int skipped_table(const char *name) {
    return !strncmp(name, "sqlite_", 7) || !strcmp(name, "schema_migrations") ||
           !strcmp(name, "merge_runs") || !strcmp(name, "leases");
}

static const char MERGE_RUNS_SQL[] =
    "CREATE TABLE IF NOT EXISTS merge_runs (\n"
    "  run_key       TEXT PRIMARY KEY,\n"
    "  run_id        INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  content       TEXT NOT NULL,\n"
    "  finished      INTEGER NOT NULL,\n"
    "  last_step     INTEGER NOT NULL,\n"
    "  n_rows        INTEGER NOT NULL,\n"
    "  source        TEXT NOT NULL,\n"
    "  source_run_id INTEGER NOT NULL,\n"
    "  merged_at     TEXT NOT NULL\n"
    ")";

/* ------------------------------------------------------------------------ */
/* A 128-bit content hash (two independent 64-bit lanes, 8 bytes at a time). */

typedef struct {
    uint64_t a, b;
} hash128;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void hash_word(hash128 *h, uint64_t w) {
    h->a = mix64(h->a ^ w) + 0x9e3779b97f4a7c15ULL;
    h->b = mix64(h->b + (w ^ 0x632be59bd9b4e019ULL)) ^ (h->b << 7);
}

static void hash_bytes(hash128 *h, const void *p, size_t n) {
    const unsigned char *c = p;
    hash_word(h, (uint64_t)n);
    for (; n >= 8; n -= 8, c += 8) {
        uint64_t w;
        memcpy(&w, c, 8);
        hash_word(h, w);
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)c[i] << (8 * i);
    hash_word(h, w);
}

static void hash_str(hash128 *h, const char *s) {
    hash_bytes(h, s, strlen(s));
}

/* A value with its type, so 1, 1.0, '1' and x'31' all differ. */
static void hash_value(hash128 *h, sqlite3_stmt *st, int col) {
    int t = sqlite3_column_type(st, col);
    hash_word(h, (uint64_t)t);
    switch (t) {
    case SQLITE_INTEGER:
        hash_word(h, (uint64_t)sqlite3_column_int64(st, col));
        break;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, col);
        uint64_t w;
        memcpy(&w, &d, 8);
        hash_word(h, w);
        break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const void *p = t == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, col)
                                         : sqlite3_column_blob(st, col);
        hash_bytes(h, p ? p : "", (size_t)sqlite3_column_bytes(st, col));
        break;
    }
    default:
        break;
    }
}

static void hash_hex(const hash128 *h, char out[33]) {
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h->a,
             (unsigned long long)h->b);
}

/* ------------------------------------------------------------------------ */
/* Table plans                                                               */

typedef struct {
    char name[64];
    int n_cols;
    char col[MAX_COLS][64];
    int role[MAX_COLS]; /* ROLE_* */
    int ref[MAX_COLS];  /* ROLE_REF: index of the referenced table */
    int run_col;        /* the column that holds the run id (-1: runs itself) */
    int has_step;       /* a column named step */
    int pk_col;         /* rowid-alias primary key, or -1 */
    int referenced;     /* some table refers to its pk: keep an id map */
    /* The ids given out to this table's rows for the current run. */
    int64_t *map_old, *map_new;
    size_t map_n, map_cap;
} table_plan;

enum { ROLE_COPY, ROLE_PK, ROLE_RUN, ROLE_REF };

typedef struct {
    int n;
    table_plan t[MAX_TABLES]; /* t[0] is runs; the rest in reference order */
} plan;

typedef struct {
    const char *path;
    sqlite3 *db;
    crl_err *err;
} src;

static int sq_fail(src *s, int rc, const char *what) {
    const char *m = sqlite3_errmsg(s->db);
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return crl_errf(s->err, CRL_ECORRUPT, "%s is corrupt (%s: %s)", s->path, what, m);
    case SQLITE_NOMEM:
        return crl_errf(s->err, CRL_ENOMEM, "%s: %s: out of memory", s->path, what);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return crl_errf(s->err, CRL_EBUSY, "%s is locked (%s: %s)", s->path, what, m);
    default:
        return crl_errf(s->err, CRL_EIO, "%s: %s: %s", s->path, what, m);
    }
}

static int find_table(const plan *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return i;
    return -1;
}

static int load_columns(src *s, table_plan *t) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT name, type, pk FROM pragma_table_info('%s')",
             t->name);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    int n_pk = 0, pk = -1;
    t->n_cols = 0;
    t->pk_col = -1;
    t->run_col = -1;
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (t->n_cols >= MAX_COLS) {
                sqlite3_finalize(st);
                return crl_errf(s->err, CRL_EINVAL, "%s: table %s has too many columns",
                                s->path, t->name);
            }
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *type = (const char *)sqlite3_column_text(st, 1);
            int i = t->n_cols++;
            snprintf(t->col[i], sizeof t->col[i], "%s", name ? name : "");
            t->role[i] = ROLE_COPY;
            t->ref[i] = -1;
            if (sqlite3_column_int(st, 2) > 0) {
                n_pk++;
                if (type && !strcasecmp(type, "INTEGER")) pk = i;
            }
            if (!strcmp(t->col[i], "step")) t->has_step = 1;
        }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sq_fail(s, rc, "cannot read the columns of a table");
    if (n_pk == 1 && pk >= 0) {
        t->pk_col = pk;
        t->role[pk] = ROLE_PK;
    }
    return CRL_OK;
}

/* Foreign keys of table i: to runs (its run column) or to another table's
 * renumbered key. */
static int load_refs(src *s, plan *p, int i) {
    table_plan *t = &p->t[i];
    char sql[128];
    snprintf(sql, sizeof sql,
             "SELECT \"from\", \"table\" FROM pragma_foreign_key_list('%s')", t->name);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *from = (const char *)sqlite3_column_text(st, 0);
            const char *to = (const char *)sqlite3_column_text(st, 1);
            int c = -1;
            for (int k = 0; from && k < t->n_cols; k++)
                if (!strcmp(t->col[k], from)) c = k;
            int j = to ? find_table(p, to) : -1;
            if (c < 0 || j < 0 || p->t[j].pk_col < 0) {
                sqlite3_finalize(st);
                return crl_errf(
                    s->err, CRL_EINVAL,
                    "%s: table %s refers to %s, which crl merge cannot renumber", s->path,
                    t->name, to ? to : "?");
            }
            if (j == 0) {
                t->role[c] = ROLE_RUN;
                t->run_col = c;
            } else {
                t->role[c] = ROLE_REF;
                t->ref[c] = j;
                p->t[j].referenced = 1;
            }
        }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sq_fail(s, rc, "cannot read foreign keys");
    /* A run_id column without a declared key still names a run. */
    for (int k = 0; i > 0 && t->run_col < 0 && k < t->n_cols; k++)
        if (!strcmp(t->col[k], "run_id") && t->role[k] == ROLE_COPY) {
            t->role[k] = ROLE_RUN;
            t->run_col = k;
        }
    return CRL_OK;
}

static void plan_free(plan *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->t[i].map_old);
        free(p->t[i].map_new);
    }
    p->n = 0;
}

/* The tables of a shard, runs first, then each table after the tables it
 * refers to. */
static int build_plan(src *s, plan *p) {
    memset(p, 0, sizeof *p);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT name FROM sqlite_master WHERE type = 'table'"
                                " ORDER BY name = 'runs' DESC, rowid",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            if (!name || skipped_table(name)) continue;
            if (p->n >= MAX_TABLES || strlen(name) >= sizeof p->t[0].name) {
                sqlite3_finalize(st);
                return crl_errf(s->err, CRL_EINVAL,
                                "%s: too many tables or too long a name", s->path);
            }
            snprintf(p->t[p->n++].name, sizeof p->t[0].name, "%s", name);
        }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sq_fail(s, rc, "cannot list tables");
    if (p->n == 0 || strcmp(p->t[0].name, "runs"))
        return crl_errf(s->err, CRL_ECORRUPT, "%s has no runs table", s->path);
    int ret = CRL_OK;
    for (int i = 0; ret == CRL_OK && i < p->n; i++) ret = load_columns(s, &p->t[i]);
    if (ret == CRL_OK && p->t[0].pk_col < 0)
        ret = crl_errf(s->err, CRL_ECORRUPT, "%s: runs has no integer id", s->path);
    for (int i = 0; ret == CRL_OK && i < p->n; i++) ret = load_refs(s, p, i);
    for (int i = 1; ret == CRL_OK && i < p->n; i++)
        if (p->t[i].run_col < 0)
            ret = crl_errf(s->err, CRL_EINVAL,
                           "%s: table %s refers to no run; crl merge does not know how "
                           "to merge it",
                           s->path, p->t[i].name);
    if (ret != CRL_OK) return ret;
    /* Order: a table after every table it refers to (selection sort over the
     * "all references placed" condition; cycles are refused). */
    int placed[MAX_TABLES] = {1}, order[MAX_TABLES] = {0}, n_order = 1;
    while (n_order < p->n) {
        int pick = -1;
        for (int i = 1; i < p->n && pick < 0; i++) {
            if (placed[i]) continue;
            int ready = 1;
            for (int c = 0; c < p->t[i].n_cols; c++)
                if (p->t[i].role[c] == ROLE_REF && !placed[p->t[i].ref[c]] &&
                    p->t[i].ref[c] != i)
                    ready = 0;
            if (ready) pick = i;
        }
        if (pick < 0)
            return crl_errf(s->err, CRL_EINVAL,
                            "%s: its tables refer to each other in a cycle", s->path);
        placed[pick] = 1;
        order[n_order++] = pick;
    }
    plan sorted;
    memset(&sorted, 0, sizeof sorted);
    sorted.n = p->n;
    int new_index[MAX_TABLES];
    for (int k = 0; k < p->n; k++) {
        sorted.t[k] = p->t[order[k]];
        new_index[order[k]] = k;
    }
    for (int k = 0; k < p->n; k++)
        for (int c = 0; c < sorted.t[k].n_cols; c++)
            if (sorted.t[k].role[c] == ROLE_REF)
                sorted.t[k].ref[c] = new_index[sorted.t[k].ref[c]];
    *p = sorted;
    return CRL_OK;
}

/* ------------------------------------------------------------------------ */
/* Shard checks                                                              */

static int pragma_int(src *s, const char *sql, int64_t *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CRL_OK : sq_fail(s, rc, sql);
}

/* Open a shard read-only and check what it is. */
static int shard_open(src *s, const char *path, int full_check, crl_err *err) {
    s->path = path;
    s->db = NULL;
    s->err = err;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return crl_errf(err, CRL_ENOTFOUND, "shard %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return crl_errf(err, CRL_EINVAL, "shard %s is not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return crl_errf(err, CRL_EIO, "cannot read shard %s: %s", path, strerror(errno));
    char head[16] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (sb.st_size < 512 || got < sizeof head || memcmp(head, "SQLite format 3", 16))
        return crl_errf(err, CRL_ECORRUPT,
                        "shard %s is not a crl database (not SQLite%s)", path,
                        sb.st_size == 0 ? ": empty file" : "");
    /* "./" keeps a relative name from being read as a URI or ":memory:". */
    size_t n = strlen(path) + 3;
    char *name = malloc(n);
    if (!name) return crl_errf(err, CRL_ENOMEM, "out of memory");
    snprintf(name, n, "%s%s", path[0] == '/' ? "" : "./", path);
    int rc = sqlite3_open_v2(name, &s->db, SQLITE_OPEN_READONLY, NULL);
    free(name);
    if (rc != SQLITE_OK) {
        int ret = crl_errf(err, CRL_EIO, "cannot open shard %s: %s", path,
                           s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_close(s->db);
        s->db = NULL;
        return ret;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    int64_t app = 0, ver = 0;
    int ret = pragma_int(s, "PRAGMA application_id", &app);
    if (ret == CRL_OK && (uint32_t)app != (uint32_t)CRL_STORE_APP_ID)
        ret = crl_errf(err, CRL_ECORRUPT,
                       "shard %s is not a crl database (a SQLite database of another "
                       "program, application_id 0x%08x)",
                       path, (unsigned)app);
    if (ret == CRL_OK) ret = pragma_int(s, "PRAGMA user_version", &ver);
    if (ret == CRL_OK && ver != CRL_STORE_SCHEMA_VERSION)
        ret =
            crl_errf(err, CRL_EVERSION,
                     "shard %s has crl schema version %lld, this crl merges version %d "
                     "only: %s",
                     path, (long long)ver, CRL_STORE_SCHEMA_VERSION,
                     ver < CRL_STORE_SCHEMA_VERSION
                         ? "open it once with this crl (crl runs --db FILE) to upgrade it"
                         : "merge with the newer crl that wrote it");
    if (ret == CRL_OK && full_check) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(st, 0);
            if (!r || strcmp(r, "ok"))
                ret = crl_errf(err, CRL_ECORRUPT, "shard %s is corrupt (quick_check: %s)",
                               path, r ? r : "?");
        } else {
            ret = sq_fail(s, rc, "quick_check");
        }
        sqlite3_finalize(st);
    }
    if (ret != CRL_OK) {
        sqlite3_close(s->db);
        s->db = NULL;
    }
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Copy                                                                      */

typedef struct {
    sqlite3 *out;
    const char *out_path;
    crl_merge_stats *stats;
    void (*note)(const char *, void *);
    void *ctx;
    crl_err *err;
} merger;

static void notef(merger *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notef(merger *m, const char *fmt, ...) {
    if (!m->note) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->note(buf, m->ctx);
}

static int out_fail(merger *m, int rc, const char *what) {
    const char *msg = sqlite3_errmsg(m->out);
    if ((rc & 0xff) == SQLITE_FULL)
        return crl_errf(m->err, CRL_EIO, "%s: %s: disk full", m->out_path, what);
    return crl_errf(m->err, (rc & 0xff) == SQLITE_CONSTRAINT ? CRL_EINVAL : CRL_EIO,
                    "%s: %s: %s", m->out_path, what, msg);
}

/* SELECT of table t's columns for one run, in insertion order. */
static int prepare_select(src *s, const table_plan *t, int by_run, sqlite3_stmt **st) {
    char sql[MAX_COLS * 70 + 256];
    size_t off = (size_t)snprintf(sql, sizeof sql, "SELECT ");
    for (int c = 0; c < t->n_cols; c++)
        off += (size_t)snprintf(sql + off, sizeof sql - off, "%s\"%s\"", c ? ", " : "",
                                t->col[c]);
    snprintf(sql + off, sizeof sql - off, " FROM \"%s\" WHERE \"%s\" = ?1 ORDER BY rowid",
             t->name, t->col[by_run ? t->run_col : t->pk_col]);
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? CRL_OK : sq_fail(s, rc, "cannot read a table");
}

/* Identity, content and progress of one shard run. */
typedef struct {
    char key[33], content[33];
    int finished;
    int64_t last_step, n_rows;
} run_sum;

static int summarize(src *s, const plan *p, int64_t run, run_sum *out) {
    hash128 key = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};
    hash128 h = {0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
    memset(out, 0, sizeof *out);
    int ret = CRL_OK;
    for (int i = 0; ret == CRL_OK && i < p->n; i++) {
        const table_plan *t = &p->t[i];
        sqlite3_stmt *st = NULL;
        if ((ret = prepare_select(s, t, i > 0, &st))) break;
        sqlite3_bind_int64(st, 1, run);
        hash_str(&h, t->name);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            out->n_rows++;
            for (int c = 0; c < t->n_cols; c++) {
                if (t->role[c] != ROLE_COPY) continue;
                hash_value(&h, st, c);
                if (i == 0 && strcmp(t->col[c], "status")) {
                    hash_str(&key, t->col[c]);
                    hash_value(&key, st, c);
                }
                if (i == 0 && !strcmp(t->col[c], "status")) {
                    const unsigned char *v = sqlite3_column_text(st, c);
                    out->finished = v && !strcmp((const char *)v, "finished");
                }
                if (t->has_step && !strcmp(t->col[c], "step") &&
                    sqlite3_column_int64(st, c) > out->last_step)
                    out->last_step = sqlite3_column_int64(st, c);
            }
        }
        if (rc != SQLITE_DONE) ret = sq_fail(s, rc, "cannot read a run");
        sqlite3_finalize(st);
    }
    hash_hex(&key, out->key);
    hash_hex(&h, out->content);
    return ret;
}

static int map_add(table_plan *t, int64_t old, int64_t nid) {
    if (t->map_n == t->map_cap) {
        size_t cap = t->map_cap ? 2 * t->map_cap : 256;
        int64_t *a = realloc(t->map_old, cap * sizeof *a);
        if (!a) return -1;
        t->map_old = a;
        int64_t *b = realloc(t->map_new, cap * sizeof *b);
        if (!b) return -1;
        t->map_new = b;
        t->map_cap = cap;
    }
    t->map_old[t->map_n] = old;
    t->map_new[t->map_n++] = nid;
    return 0;
}

/* Rows are read in rowid order, so each map is sorted by old id. */
static int map_find(const table_plan *t, int64_t old, int64_t *nid) {
    size_t lo = 0, hi = t->map_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->map_old[mid] < old)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->map_n && t->map_old[lo] == old) {
        *nid = t->map_new[lo];
        return 1;
    }
    return 0;
}

/* Copy run `run` of the shard as run `new_id` of the output (new_id 0: a new
 * id). */
static int copy_run(merger *m, src *s, plan *p, int64_t run, int64_t *new_id) {
    int ret = CRL_OK;
    for (int i = 0; i < p->n; i++) p->t[i].map_n = 0;
    for (int i = 0; ret == CRL_OK && i < p->n; i++) {
        table_plan *t = &p->t[i];
        char sql[MAX_COLS * 70 + 256];
        size_t off = (size_t)snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (", t->name);
        int n_bind = 0, keep_pk = i == 0 && *new_id > 0;
        for (int c = 0; c < t->n_cols; c++) {
            if (t->role[c] == ROLE_PK && !keep_pk) continue;
            off += (size_t)snprintf(sql + off, sizeof sql - off, "%s\"%s\"",
                                    n_bind++ ? ", " : "", t->col[c]);
        }
        off += (size_t)snprintf(sql + off, sizeof sql - off, ") VALUES (");
        for (int k = 0; k < n_bind; k++)
            off += (size_t)snprintf(sql + off, sizeof sql - off, "%s?", k ? ", " : "");
        snprintf(sql + off, sizeof sql - off, ")");
        sqlite3_stmt *ins = NULL, *sel = NULL;
        int rc = sqlite3_prepare_v2(m->out, sql, -1, &ins, NULL);
        if (rc != SQLITE_OK) {
            ret = crl_errf(m->err, CRL_EINVAL,
                           "shard %s: table %s does not fit the output %s (%s)", s->path,
                           t->name, m->out_path, sqlite3_errmsg(m->out));
            break;
        }
        if ((ret = prepare_select(s, t, i > 0, &sel))) {
            sqlite3_finalize(ins);
            break;
        }
        sqlite3_bind_int64(sel, 1, run);
        while (ret == CRL_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
            int k = 0, skip = 0;
            rc = SQLITE_OK;
            for (int c = 0; c < t->n_cols && rc == SQLITE_OK; c++) {
                switch (t->role[c]) {
                case ROLE_PK:
                    if (keep_pk) rc = sqlite3_bind_int64(ins, ++k, *new_id);
                    break;
                case ROLE_RUN:
                    rc = sqlite3_bind_int64(ins, ++k, *new_id);
                    break;
                case ROLE_REF: {
                    int64_t to = 0;
                    if (sqlite3_column_type(sel, c) == SQLITE_NULL)
                        rc = sqlite3_bind_null(ins, ++k);
                    else if (map_find(&p->t[t->ref[c]], sqlite3_column_int64(sel, c),
                                      &to))
                        rc = sqlite3_bind_int64(ins, ++k, to);
                    else
                        skip = 1, ++k; /* refers to a row of another run: dangling */
                    break;
                }
                default:
                    rc = sqlite3_bind_value(ins, ++k, sqlite3_column_value(sel, c));
                }
            }
            if (skip) {
                ret = crl_errf(m->err, CRL_ECORRUPT,
                               "shard %s: a row of %s refers to a row outside its run",
                               s->path, t->name);
                break;
            }
            if (rc == SQLITE_OK) rc = sqlite3_step(ins);
            if (rc != SQLITE_DONE) {
                ret = out_fail(m, rc, "cannot insert a merged row");
                break;
            }
            rc = SQLITE_OK;
            m->stats->rows++;
            int64_t id = sqlite3_last_insert_rowid(m->out);
            if (i == 0 && !keep_pk) *new_id = id;
            if (t->referenced && t->pk_col >= 0 &&
                map_add(t, sqlite3_column_int64(sel, t->pk_col), id))
                ret = crl_errf(m->err, CRL_ENOMEM, "merge: out of memory");
            sqlite3_reset(ins);
            sqlite3_clear_bindings(ins);
        }
        if (ret == CRL_OK && rc != SQLITE_DONE && rc != SQLITE_OK)
            ret = sq_fail(s, rc, "cannot read a run");
        sqlite3_finalize(sel);
        sqlite3_finalize(ins);
    }
    return ret;
}

static int exec_out(merger *m, const char *sql) {
    int rc = sqlite3_exec(m->out, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CRL_OK : out_fail(m, rc, sql);
}

/* What merge_runs knows of a run key: merged run id and its summary. */
static int lookup(merger *m, const run_sum *r, int64_t *id, run_sum *old) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(m->out,
                                "SELECT run_id, content, finished, last_step, n_rows"
                                " FROM merge_runs WHERE run_key = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    *id = 0;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        const unsigned char *c = sqlite3_column_text(st, 1);
        snprintf(old->content, sizeof old->content, "%s", c ? (const char *)c : "");
        old->finished = sqlite3_column_int(st, 2);
        old->last_step = sqlite3_column_int64(st, 3);
        old->n_rows = sqlite3_column_int64(st, 4);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CRL_OK : out_fail(m, rc, "cannot read merge_runs");
}

static int record(merger *m, const run_sum *r, int64_t id, const char *shard,
                  int64_t shard_run) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        m->out,
        "INSERT OR REPLACE INTO merge_runs (run_key, run_id, content, finished,"
        " last_step, n_rows, source, source_run_id, merged_at) VALUES (?1, ?2, ?3, ?4,"
        " ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
        -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, r->content, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 4, r->finished);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, r->last_step);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, r->n_rows);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 7, shard, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, shard_run);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CRL_OK : out_fail(m, rc, "cannot write merge_runs");
}

/* Progress order: finished beats unfinished, then later step, then more rows. */
static int further(const run_sum *a, const run_sum *b) {
    if (a->finished != b->finished) return a->finished > b->finished;
    if (a->last_step != b->last_step) return a->last_step > b->last_step;
    return a->n_rows > b->n_rows;
}

static int merge_shard(merger *m, const char *path) {
    src s;
    int ret = shard_open(&s, path, 0, m->err);
    if (ret != CRL_OK) return ret;
    plan *p = calloc(1, sizeof *p);
    if (!p) {
        sqlite3_close(s.db);
        return crl_errf(m->err, CRL_ENOMEM, "merge: out of memory");
    }
    /* One read transaction: a shard still being written is read as of one
     * moment. */
    sqlite3_exec(s.db, "BEGIN", NULL, NULL, NULL);
    ret = build_plan(&s, p);
    int64_t *runs = NULL;
    size_t n_runs = 0, cap = 0;
    if (ret == CRL_OK) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT \"%s\" FROM runs ORDER BY 1",
                 p->t[0].col[p->t[0].pk_col]);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s.db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n_runs == cap) {
                    cap = cap ? 2 * cap : 16;
                    int64_t *r = realloc(runs, cap * sizeof *r);
                    if (!r) {
                        rc = SQLITE_NOMEM;
                        break;
                    }
                    runs = r;
                }
                runs[n_runs++] = sqlite3_column_int64(st, 0);
            }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) ret = sq_fail(&s, rc, "cannot list runs");
    }
    for (size_t r = 0; ret == CRL_OK && r < n_runs; r++) {
        run_sum sum, old;
        int64_t id = 0;
        if ((ret = summarize(&s, p, runs[r], &sum))) break;
        if ((ret = lookup(m, &sum, &id, &old))) break;
        if (id && !strcmp(old.content, sum.content)) {
            m->stats->runs_same++;
            continue;
        }
        if (id && !further(&sum, &old)) {
            m->stats->runs_older++;
            notef(m,
                  "%s: run %lld left out: the merged copy (run %lld, %s, step %lld) is "
                  "as far or further than this one (%s, step %lld)",
                  path, (long long)runs[r], (long long)id,
                  old.finished ? "finished" : "unfinished", (long long)old.last_step,
                  sum.finished ? "finished" : "unfinished", (long long)sum.last_step);
            continue;
        }
        if (id) {
            /* Every run-keyed table, not only those that cascade. */
            for (int i = p->n - 1; ret == CRL_OK && i >= 0; i--) {
                char sql[256];
                snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE \"%s\" = %lld",
                         p->t[i].name,
                         p->t[i].col[i == 0 ? p->t[i].pk_col : p->t[i].run_col],
                         (long long)id);
                ret = exec_out(m, sql);
            }
            if (ret) break;
        }
        int64_t new_id = id;
        if ((ret = copy_run(m, &s, p, runs[r], &new_id))) break;
        if ((ret = record(m, &sum, new_id, path, runs[r]))) break;
        if (id)
            m->stats->runs_updated++;
        else
            m->stats->runs_added++;
    }
    sqlite3_exec(s.db, "COMMIT", NULL, NULL, NULL);
    free(runs);
    plan_free(p);
    free(p);
    sqlite3_close(s.db);
    if (ret == CRL_OK) m->stats->shards++;
    return ret;
}

static void unlink_db(const char *path) {
    size_t n = strlen(path) + 8;
    char *b = malloc(n);
    unlink(path);
    if (!b) return;
    snprintf(b, n, "%s-wal", path);
    unlink(b);
    snprintf(b, n, "%s-shm", path);
    unlink(b);
    free(b);
}

int crl_store_merge(const char *out_path, const char *const *shards, int n_shards,
                    void (*note)(const char *msg, void *ctx), void *ctx,
                    crl_merge_stats *stats, crl_err *err) {
    if (!out_path || !*out_path || n_shards < 0 || (n_shards > 0 && !shards))
        return crl_errf(err, CRL_EINVAL, "crl_store_merge: bad argument");
    crl_merge_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    merger m = {NULL, out_path, stats, note, ctx, err};

    struct stat ob;
    int out_exists = stat(out_path, &ob) == 0;
    char *use = calloc((size_t)n_shards + 1, 1);
    if (!use) return crl_errf(err, CRL_ENOMEM, "merge: out of memory");
    /* Every shard is checked before the output is opened. */
    for (int i = 0; i < n_shards; i++) {
        struct stat sb;
        if (!shards[i]) {
            free(use);
            return crl_errf(err, CRL_EINVAL, "crl_store_merge: shard %d is NULL", i);
        }
        if (out_exists && stat(shards[i], &sb) == 0 && sb.st_dev == ob.st_dev &&
            sb.st_ino == ob.st_ino) {
            notef(&m, "%s is the output; skipped", shards[i]);
            continue;
        }
        src s;
        int ret = shard_open(&s, shards[i], 1, err);
        if (ret != CRL_OK) {
            free(use);
            return ret;
        }
        sqlite3_close(s.db);
        use[i] = 1;
    }
    /* A new output is made under a temporary name in its folder and renamed
     * only when complete (base.h's atomic outputs): a failure (a full disk)
     * leaves no file. An existing output is merged into in place, inside
     * one transaction, so a failure leaves it as it was. */
    char *tmp = NULL;
    int ret = out_exists ? CRL_OK : crl_atomic_temp(out_path, &tmp, err);
    crl_store *store = NULL;
    if (ret == CRL_OK) ret = crl_store_open(tmp ? tmp : out_path, 1, &store, err);
    if (ret != CRL_OK) {
        if (tmp) unlink_db(tmp);
        free(tmp);
        free(use);
        return ret;
    }
    m.out = crl_store_sqlite(store);
    ret = exec_out(&m, "BEGIN IMMEDIATE");
    if (ret == CRL_OK) ret = exec_out(&m, MERGE_RUNS_SQL);
    for (int i = 0; ret == CRL_OK && i < n_shards; i++)
        if (use[i]) ret = merge_shard(&m, shards[i]);
    if (ret == CRL_OK) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(m.out, "PRAGMA foreign_key_check", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            ret = crl_errf(err, CRL_ECORRUPT,
                           "merge into %s would leave rows of table %s without their "
                           "run; nothing was merged",
                           out_path, (const char *)sqlite3_column_text(st, 0));
        else if (rc != SQLITE_DONE)
            ret = out_fail(&m, rc, "foreign key check");
        sqlite3_finalize(st);
    }
    if (ret == CRL_OK)
        ret = exec_out(&m, "COMMIT");
    else
        (void)sqlite3_exec(m.out, "ROLLBACK", NULL, NULL, NULL);
    /* The new file must be whole before it is renamed: its WAL checkpointed
     * into it (a checkpoint that fails on a full disk is a failure). */
    if (ret == CRL_OK && tmp) {
        int nlog = 0, nckpt = 0;
        int rc = sqlite3_wal_checkpoint_v2(m.out, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog,
                                           &nckpt);
        if (rc != SQLITE_OK) ret = out_fail(&m, rc, "checkpoint");
    }
    crl_store_close(store);
    if (tmp) {
        size_t n = strlen(tmp) + 8;
        char *wal = malloc(n);
        struct stat wb;
        if (wal) snprintf(wal, n, "%s-wal", tmp);
        if (ret == CRL_OK && (!wal || (stat(wal, &wb) == 0 && wb.st_size > 0)))
            ret = crl_errf(err, CRL_EIO,
                           "cannot write %s: the database could not be "
                           "completed (its write-ahead log was not merged into it)",
                           out_path);
        free(wal);
        if (ret == CRL_OK) ret = crl_atomic_rename(tmp, out_path, err);
        if (ret != CRL_OK) unlink_db(tmp);
        free(tmp);
    }
    free(use);
    if (ret != CRL_OK) memset(stats, 0, sizeof *stats);
    return ret;
}
