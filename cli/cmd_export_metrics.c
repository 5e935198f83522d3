/* crl export-metrics: a run's metrics and evaluations as scalars for the
 * tools people already use (docs/tracking.md): one CSV file, a TensorBoard
 * event file, or a Parquet file.
 *
 * The TensorBoard writer is small and written here from the public format
 * descriptions (docs/tracking.md "TensorBoard event files"):
 *   - the file is a sequence of TFRecord records: uint64 length (little
 *     endian), uint32 masked CRC32C of those 8 bytes, the data, uint32
 *     masked CRC32C of the data; masked(c) = ((c >> 15) | (c << 17)) +
 *     0xa282ead8;
 *   - each record's data is a protobuf-encoded Event: wall_time (field 1,
 *     double), step (2, int64), file_version (3, string; the first record,
 *     "brain.Event:2") or summary (5, Summary); a Summary holds repeated
 *     value (1, Value), and a Value a tag (1, string) and simple_value (2,
 *     float).
 * Five fields of three messages do not justify a code generator at build
 * time and a runtime library in libcrl's link line (protobuf-c), and
 * Debian 12 has no C library for CRC32C (only python3-crc32c): the
 * Castagnoli CRC is table-driven below and checked against its standard
 * check value in the tests. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"

/* ------------------------------------------------------------------------ */
/* The scalars                                                               */

typedef struct {
    int64_t step;
    char *key;
    double value; /* NaN: stored NULL */
} scalar;

typedef struct {
    scalar *v;
    size_t n, cap;
    crl_task_row *tasks;
    int n_tasks;
    int oom;
} scalars;

static void add(scalars *s, int64_t step, const char *key, double value) {
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        scalar *p = realloc(s->v, cap * sizeof *p);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->v = p;
        s->cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        s->oom = 1;
        return;
    }
    scalar *e = &s->v[s->n++];
    e->step = step;
    e->key = k;
    e->value = value;
}

static void scalars_free(scalars *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i].key);
    free(s->v);
    crl_store_tasks_free(s->tasks);
}

static int on_metric(const crl_metric_row *r, void *ctx) {
    add(ctx, r->step, r->key, r->value);
    return 0;
}

/* Evaluations as eval/<position>_<task>/<column> (the stored 0-based
 * scenario position). */
static int on_eval(const crl_eval_row *e, void *ctx) {
    scalars *s = ctx;
    const char *name = NULL;
    for (int i = 0; i < s->n_tasks; i++)
        if (s->tasks[i].idx == e->eval_task_idx) name = s->tasks[i].name;
    char base[192], key[256];
    if (name)
        snprintf(base, sizeof base, "eval/%d_%s", e->eval_task_idx, name);
    else
        snprintf(base, sizeof base, "eval/%d", e->eval_task_idx);
    snprintf(key, sizeof key, "%s/success_rate", base);
    add(s, e->step, key, e->success_rate);
    snprintf(key, sizeof key, "%s/mean_return", base);
    add(s, e->step, key, e->mean_return);
    if (isfinite(e->det_return)) {
        snprintf(key, sizeof key, "%s/det_return", base);
        add(s, e->step, key, e->det_return);
    }
    return 0;
}

static int by_step_key(const void *a, const void *b) {
    const scalar *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* ------------------------------------------------------------------------ */
/* Output buffer                                                             */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ------------------------------------------------------------------------ */
/* CSV: step,key,value (long form; docs/tracking.md)                         */

static void csv_text(buf *b, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        put(b, s, strlen(s));
        return;
    }
    put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') put(b, "\"", 1);
        put(b, s, 1);
    }
    put(b, "\"", 1);
}

static void write_csv(buf *b, const scalars *s) {
    putf(b, "step,key,value\n");
    for (size_t i = 0; i < s->n; i++) {
        putf(b, "%lld,", (long long)s->v[i].step);
        csv_text(b, s->v[i].key);
        /* %.17g reads back as the same double; NULL is an empty field. */
        if (isfinite(s->v[i].value))
            putf(b, ",%.17g\n", s->v[i].value);
        else if (isnan(s->v[i].value))
            putf(b, ",\n");
        else
            putf(b, ",%s\n", s->v[i].value > 0 ? "inf" : "-inf");
    }
}

/* ------------------------------------------------------------------------ */
/* TensorBoard: TFRecord framing, CRC32C, protobuf wire format               */

static uint32_t crc32c_table[256];

static void crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
}

static uint32_t crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc32c_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t masked_crc(const unsigned char *p, size_t n) {
    const uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static void put_le(buf *b, uint64_t v, int bytes) {
    unsigned char t[8];
    for (int i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

static void put_varint(buf *b, uint64_t v) {
    unsigned char t[10];
    int n = 0;
    do {
        t[n] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, (size_t)n);
}

/* Field number f with wire type w (0 varint, 1 64-bit, 2 bytes, 5 32-bit). */
static void put_key(buf *b, int f, int w) {
    put_varint(b, (uint64_t)(f << 3 | w));
}

static void put_bytes(buf *b, int f, const void *p, size_t n) {
    put_key(b, f, 2);
    put_varint(b, n);
    put(b, p, n);
}

static void put_double(buf *b, int f, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, f, 1);
    put_le(b, u, 8);
}

static void put_float(buf *b, int f, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(b, f, 5);
    put_le(b, u, 4);
}

/* One TFRecord holding data. */
static void put_record(buf *out, const buf *data) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)data->n >> (8 * i));
    put(out, len, 8);
    put_le(out, masked_crc(len, 8), 4);
    put(out, data->p, data->n);
    put_le(out, masked_crc(data->p, data->n), 4);
}

/* One Event per step with every finite scalar of that step as a Value
 * (NULL values are left out; simple_value is a float, as TensorBoard
 * stores scalars). */
static int write_events(buf *out, const scalars *s, double wall_time) {
    crc32c_init();
    buf ev = {0}, sum = {0}, val = {0};
    put_double(&ev, 1, wall_time);
    put_bytes(&ev, 3, "brain.Event:2", 13);
    put_record(out, &ev);
    for (size_t i = 0; i < s->n;) {
        const int64_t step = s->v[i].step;
        sum.n = 0;
        for (; i < s->n && s->v[i].step == step; i++) {
            if (isnan(s->v[i].value)) continue;
            val.n = 0;
            put_bytes(&val, 1, s->v[i].key, strlen(s->v[i].key));
            put_float(&val, 2, (float)s->v[i].value);
            put_bytes(&sum, 1, val.p, val.n);
        }
        if (sum.n == 0) continue;
        ev.n = 0;
        put_double(&ev, 1, wall_time);
        put_key(&ev, 2, 0);
        put_varint(&ev, (uint64_t)step);
        put_bytes(&ev, 5, sum.p, sum.n);
        put_record(out, &ev);
    }
    const int oom = ev.oom || sum.oom || val.oom;
    free(ev.p);
    free(sum.p);
    free(val.p);
    return oom;
}

/* ------------------------------------------------------------------------ */
/* Parquet: one row group, PLAIN, uncompressed (docs/tracking.md)            */

/* Thrift compact protocol, the parts FileMetaData and PageHeader need: a
 * field header is (id delta << 4 | type) when the delta is 1..15, else the
 * type byte and the id as a zigzag varint; i32/i64 are zigzag varints,
 * binary is a varint length and the bytes, a list is (size << 4 | element
 * type) below 15 elements, else (0xF0 | type) and a varint size; a struct
 * ends with a 0 byte. */
enum { T_I32 = 5, T_I64 = 6, T_BINARY = 8, T_LIST = 9, T_STRUCT = 12 };

typedef struct {
    buf *b;
    int last[8]; /* the last field id of each open struct */
    int depth;
} thrift;

static void tf_field(thrift *t, int id, int type) {
    const int delta = id - t->last[t->depth];
    unsigned char c =
        (unsigned char)(delta > 0 && delta <= 15 ? delta << 4 | type : type);
    put(t->b, &c, 1);
    if (!(delta > 0 && delta <= 15)) put_varint(t->b, (uint64_t)(id << 1));
    t->last[t->depth] = id;
}

static void tf_zigzag(thrift *t, int64_t v) {
    put_varint(t->b, ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

static void tf_i32(thrift *t, int id, int32_t v) {
    tf_field(t, id, T_I32);
    tf_zigzag(t, v);
}

static void tf_i64(thrift *t, int id, int64_t v) {
    tf_field(t, id, T_I64);
    tf_zigzag(t, v);
}

static void tf_str(thrift *t, const char *s) {
    put_varint(t->b, strlen(s));
    put(t->b, s, strlen(s));
}

static void tf_bin(thrift *t, int id, const char *s) {
    tf_field(t, id, T_BINARY);
    tf_str(t, s);
}

static void tf_list(thrift *t, int id, int elem_type, int n) {
    tf_field(t, id, T_LIST);
    unsigned char c = (unsigned char)(n < 15 ? n << 4 | elem_type : 0xF0 | elem_type);
    put(t->b, &c, 1);
    if (n >= 15) put_varint(t->b, (uint64_t)n);
}

/* A struct as a field (id > 0) or as a list element (id 0). */
static void tf_begin(thrift *t, int id) {
    if (id) tf_field(t, id, T_STRUCT);
    t->last[++t->depth] = 0;
}

static void tf_end(thrift *t) {
    unsigned char c = 0;
    put(t->b, &c, 1);
    if (t->depth > 0) t->depth--;
}

enum { PQ_INT64 = 2, PQ_DOUBLE = 5, PQ_BYTE_ARRAY = 6 };
enum { PQ_REQUIRED = 0, PQ_OPTIONAL = 1 };
enum { PQ_PLAIN = 0, PQ_RLE = 3 };

typedef struct {
    const char *name;
    int type, repetition;
    int64_t offset, size; /* of the column chunk (its one page) */
} pq_column;

/* Column c's one data page (v1): the page header, then for the optional
 * column the definition levels (their byte length as uint32 LE, then RLE
 * runs of bit width 1: varint run length << 1, one byte 0 or 1), then the
 * PLAIN values of the rows that are not null. */
static void pq_page(buf *out, pq_column *c, const scalars *s) {
    buf data = {0};
    if (c->repetition == PQ_OPTIONAL) {
        buf lv = {0};
        for (size_t i = 0; i < s->n;) {
            const int def = !isnan(s->v[i].value);
            size_t j = i;
            while (j < s->n && (!isnan(s->v[j].value)) == def) j++;
            put_varint(&lv, (uint64_t)(j - i) << 1);
            unsigned char d = (unsigned char)def;
            put(&lv, &d, 1);
            i = j;
        }
        put_le(&data, lv.n, 4);
        put(&data, lv.p, lv.n);
        data.oom |= lv.oom;
        free(lv.p);
    }
    for (size_t i = 0; i < s->n; i++) {
        const scalar *v = &s->v[i];
        uint64_t u;
        if (c->type == PQ_INT64) {
            put_le(&data, (uint64_t)v->step, 8);
        } else if (c->type == PQ_BYTE_ARRAY) {
            put_le(&data, strlen(v->key), 4);
            put(&data, v->key, strlen(v->key));
        } else if (!isnan(v->value)) {
            memcpy(&u, &v->value, 8);
            put_le(&data, u, 8);
        }
    }
    c->offset = (int64_t)out->n;
    thrift t = {out, {0}, 0};
    tf_i32(&t, 1, 0); /* type: DATA_PAGE */
    tf_i32(&t, 2, (int32_t)data.n);
    tf_i32(&t, 3, (int32_t)data.n);
    tf_begin(&t, 5); /* data_page_header */
    tf_i32(&t, 1, (int32_t)s->n);
    tf_i32(&t, 2, PQ_PLAIN);
    tf_i32(&t, 3, PQ_RLE);
    tf_i32(&t, 4, PQ_RLE);
    tf_end(&t);
    tf_end(&t); /* PageHeader */
    put(out, data.p, data.n);
    out->oom |= data.oom;
    c->size = (int64_t)out->n - c->offset;
    free(data.p);
}

/* Columns step (INT64), key (BYTE_ARRAY, UTF8 string) and value (DOUBLE,
 * optional: a NULL value is null), one row per scalar in (step, key)
 * order, one row group, one page per column. */
static int write_parquet(buf *out, const scalars *s) {
    if (s->n > INT32_MAX / 64) return 1; /* page sizes are int32 */
    pq_column cols[3] = {{"step", PQ_INT64, PQ_REQUIRED, 0, 0},
                         {"key", PQ_BYTE_ARRAY, PQ_REQUIRED, 0, 0},
                         {"value", PQ_DOUBLE, PQ_OPTIONAL, 0, 0}};
    put(out, "PAR1", 4);
    for (int k = 0; k < 3; k++) pq_page(out, &cols[k], s);
    const size_t meta_at = out->n;
    thrift t = {out, {0}, 0};
    tf_i32(&t, 1, 1); /* FileMetaData.version */
    tf_list(&t, 2, T_STRUCT, 4);
    tf_begin(&t, 0); /* the root SchemaElement */
    tf_bin(&t, 4, "schema");
    tf_i32(&t, 5, 3);
    tf_end(&t);
    for (int k = 0; k < 3; k++) {
        tf_begin(&t, 0);
        tf_i32(&t, 1, cols[k].type);
        tf_i32(&t, 3, cols[k].repetition);
        tf_bin(&t, 4, cols[k].name);
        if (cols[k].type == PQ_BYTE_ARRAY) {
            tf_i32(&t, 6, 0); /* converted_type: UTF8 */
            tf_begin(&t, 10); /* logicalType: the union's STRING (1), empty */
            tf_begin(&t, 1);
            tf_end(&t);
            tf_end(&t);
        }
        tf_end(&t);
    }
    tf_i64(&t, 3, (int64_t)s->n);
    tf_list(&t, 4, T_STRUCT, 1);
    tf_begin(&t, 0); /* the RowGroup */
    tf_list(&t, 1, T_STRUCT, 3);
    int64_t total = 0;
    for (int k = 0; k < 3; k++) {
        tf_begin(&t, 0); /* ColumnChunk */
        tf_i64(&t, 2, cols[k].offset);
        tf_begin(&t, 3); /* ColumnMetaData */
        tf_i32(&t, 1, cols[k].type);
        const int opt = cols[k].repetition == PQ_OPTIONAL;
        tf_list(&t, 2, T_I32, opt ? 2 : 1);
        tf_zigzag(&t, PQ_PLAIN);
        if (opt) tf_zigzag(&t, PQ_RLE);
        tf_list(&t, 3, T_BINARY, 1);
        tf_str(&t, cols[k].name);
        tf_i32(&t, 4, 0); /* codec: UNCOMPRESSED */
        tf_i64(&t, 5, (int64_t)s->n);
        tf_i64(&t, 6, cols[k].size);
        tf_i64(&t, 7, cols[k].size);
        tf_i64(&t, 9, cols[k].offset);
        tf_end(&t);
        tf_end(&t);
        total += cols[k].size;
    }
    tf_i64(&t, 2, total);
    tf_i64(&t, 3, (int64_t)s->n);
    tf_end(&t); /* RowGroup */
    tf_bin(&t, 6, "crl " CRL_VERSION_STRING);
    tf_end(&t); /* FileMetaData */
    put_le(out, out->n - meta_at, 4);
    put(out, "PAR1", 4);
    return out->oom;
}

/* created_at ("2026-12-08T03:12:43.123Z") as Unix seconds; 0 if unreadable. */
static double iso_seconds(const char *iso) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    double frac = 0;
    int y, mo, d, h, mi;
    double sec;
    if (sscanf(iso, "%d-%d-%dT%d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6) return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = (int)sec;
    frac = sec - (int)sec;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? 0 : (double)t + frac;
}

/* ------------------------------------------------------------------------ */

static int make_dir(const char *path, int *made) {
    struct stat sb;
    *made = 0;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return 0;
        fprintf(stderr, "crl export-metrics: %s exists and is not a folder\n", path);
        return 1;
    }
    if (mkdir(path, 0777) != 0) {
        fprintf(stderr, "crl export-metrics: cannot create folder %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    *made = 1;
    return 0;
}

int cmd_export_metrics(int argc, char **argv) {
    const char *db = NULL, *format = NULL, *out = NULL;
    int64_t run = 0;
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id (see 'crl runs')", 0},
        {"format", OPT_STR, &format, 0, 0, "csv, tensorboard or parquet", 0},
        {"output", OPT_STR, &out, 0, 0, "output folder (created if missing)", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse("export-metrics", defs, nd, argc, argv,
                        "--db FILE --run ID --format csv|tensorboard|parquet -o DIR");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db || !run || !format || !out) {
        fprintf(stderr,
                "crl export-metrics: --db FILE, --run ID, --format F and -o DIR are "
                "required\n");
        return 2;
    }
    const int tb = !strcmp(format, "tensorboard"), pq = !strcmp(format, "parquet");
    if (!tb && !pq && strcmp(format, "csv") != 0) {
        fprintf(stderr,
                "crl export-metrics: --format must be csv, tensorboard or parquet, got "
                "'%s'\n",
                format);
        return 2;
    }
    if (strlen(out) > 3000) {
        fprintf(stderr, "crl export-metrics: -o: the folder's path is too long\n");
        return 2;
    }
    /* Everything is read before anything is created. */
    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl export-metrics: %s\n", err.msg);
        return 1;
    }
    crl_run_info info;
    scalars s = {0};
    const int began = crl_store_read_begin(store);
    rc = crl_store_run_get(store, run, &info, NULL, &err);
    if (!rc) rc = crl_store_tasks(store, run, &s.tasks, &s.n_tasks, &err);
    if (!rc) rc = crl_store_metrics_all(store, run, on_metric, &s, &err);
    if (!rc) rc = crl_store_evals(store, run, on_eval, &s, &err);
    crl_store_read_end(store, began);
    crl_store_close(store);
    if (rc) {
        scalars_free(&s);
        fprintf(stderr, "crl export-metrics: %s\n", err.msg);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    if (s.oom) {
        scalars_free(&s);
        fprintf(stderr, "crl export-metrics: out of memory\n");
        return 1;
    }
    qsort(s.v, s.n, sizeof *s.v, by_step_key);
    buf b = {0};
    if (tb)
        b.oom |= write_events(&b, &s, iso_seconds(info.created_at));
    else if (pq)
        b.oom |= write_parquet(&b, &s);
    else
        write_csv(&b, &s);
    const size_t n_scalars = s.n;
    scalars_free(&s);
    if (b.oom) {
        free(b.p);
        fprintf(stderr, "crl export-metrics: out of memory\n");
        return 1;
    }
    /* DIR/run-ID.csv, or DIR/run-ID/events.out.tfevents.run-ID.crl (a
     * folder per run: TensorBoard's runs are folders). */
    char sub[3100], path[3200];
    int made_out = 0, made_sub = 0;
    if (make_dir(out, &made_out)) {
        free(b.p);
        return 1;
    }
    if (tb) {
        snprintf(sub, sizeof sub, "%s/run-%lld", out, (long long)run);
        if (make_dir(sub, &made_sub)) {
            if (made_out) rmdir(out);
            free(b.p);
            return 1;
        }
        snprintf(path, sizeof path, "%s/events.out.tfevents.run-%lld.crl", sub,
                 (long long)run);
    } else {
        snprintf(path, sizeof path, "%s/run-%lld.%s", out, (long long)run,
                 pq ? "parquet" : "csv");
    }
    rc = crl_atomic_write_file(path, b.p, b.n, &err);
    free(b.p);
    if (rc) {
        if (made_sub) rmdir(sub);
        if (made_out) rmdir(out);
        fprintf(stderr, "crl export-metrics: %s\n", err.msg);
        return 1;
    }
    printf("%s (%zu scalars)\n", path, n_scalars);
    return 0;
}
