/* crl runs: list the runs of a store, with their labels, status and
 * current score (docs/tracking.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/scenario.h"

enum { FMT_TABLE, FMT_CSV, FMT_JSON };

typedef struct {
    crl_store *store;
    int format;
    const char *status; /* filter on the status shown (NULL: any) */
    int count;
    crl_json_doc *doc; /* --format json */
    crl_err err;
    int failed;
} runs_ctx;

/* Whether a run is scored by success: its (first) task is a manipulation
 * task. Locomotion, control and a user's MJCF are scored by return. */
static int scored_by_success(const char *scenario) {
    const char *task = scenario;
    const crl_scenario *sc = crl_scenario_find(scenario);
    if (sc && sc->n_tasks > 0) task = sc->tasks[0];
    const crl_env_entry *list;
    const int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, task))
            return !strcmp(list[i].group, "manipulation") ||
                   !strcmp(list[i].group, "pretrain");
    return 0;
}

/* The status shown: a 'running' row whose owner is gone (its trainer was
 * killed, or could not write its status) is stale; the lease tells the
 * truth. */
static void shown_status(crl_store *store, const crl_run_summary *r, char *status,
                         size_t cap, int *stale) {
    snprintf(status, cap, "%s", r->status);
    *stale = 0;
    crl_lease l;
    if (!strcmp(r->status, "running") &&
        crl_store_lease_get(store, r->id, &l, NULL) == CRL_OK && !l.alive) {
        snprintf(status, cap, "stale (%s)", l.why);
        *stale = 1;
    }
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static int print_run(const crl_run_summary *r, void *vctx) {
    runs_ctx *c = vctx;
    char status[200];
    int stale;
    shown_status(c->store, r, status, sizeof status, &stale);
    if (c->status && strcmp(c->status, stale ? "stale" : r->status) != 0) return 0;
    const int by_success = scored_by_success(r->scenario);
    const double score = by_success ? r->eval_success : r->eval_return;
    const char *kind = by_success ? "success" : "return";
    c->count++;
    if (c->format == FMT_JSON) {
        crl_json_member m[] = {
            {"id", CRL_JSON_INT, r->id, 0, NULL, NULL, 0},
            {"name", CRL_JSON_TEXT, 0, 0, r->name[0] ? r->name : NULL, NULL, 0},
            {"tags", CRL_JSON_NULL, 0, 0, NULL, NULL, 0},
            {"method", CRL_JSON_TEXT, 0, 0, r->method, NULL, 0},
            {"scenario", CRL_JSON_TEXT, 0, 0, r->scenario, NULL, 0},
            {"status", CRL_JSON_TEXT, 0, 0, stale ? "stale" : r->status, NULL, 0},
            {"status_detail", CRL_JSON_TEXT, 0, 0, status, NULL, 0},
            {"created_at", CRL_JSON_TEXT, 0, 0, r->created_at, NULL, 0},
            {"seed", CRL_JSON_TEXT, 0, 0, NULL, NULL, 0},
            {"last_step", CRL_JSON_INT, r->last_step, 0, NULL, NULL, 0},
            {"eval_step", CRL_JSON_REAL, 0,
             r->eval_step >= 0 ? (double)r->eval_step : NAN, NULL, NULL, 0},
            {"score", CRL_JSON_REAL, 0, score, NULL, NULL, 0},
            {"score_kind", CRL_JSON_TEXT, 0, 0, kind, NULL, 0},
            {"wall_s", CRL_JSON_REAL, 0, r->wall_s, NULL, NULL, 0},
        };
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
        m[8].text = seed;
        if (r->eval_step >= 0) {
            m[10].type = CRL_JSON_INT;
            m[10].i = r->eval_step;
        }
        crl_json_member obj = {
            NULL, CRL_JSON_OBJECT, 0, 0, NULL, m, (int)(sizeof m / sizeof m[0])};
        char path[64];
        snprintf(path, sizeof path, "$[%d].tags", c->count - 1);
        if (crl_json_doc_append(c->doc, "$", &obj, &c->err)) goto fail;
        /* tags: the null placeholder becomes an array of the tags. */
        char tags[sizeof r->tags];
        snprintf(tags, sizeof tags, "%s", r->tags);
        if (crl_json_doc_set_array(c->doc, path, &c->err)) goto fail;
        for (char *save = NULL, *tok = strtok_r(tags, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            crl_json_member v = {NULL, CRL_JSON_TEXT, 0, 0, tok, NULL, 0};
            if (crl_json_doc_append(c->doc, path, &v, &c->err)) goto fail;
        }
        return 0;
    }
    char score_s[32] = "", wall_s[32] = "", step_s[32] = "";
    if (isfinite(score))
        snprintf(score_s, sizeof score_s,
                 c->format == FMT_CSV ? "%.17g"
                 : by_success         ? "%.2f"
                                      : "%.1f",
                 score);
    if (isfinite(r->wall_s))
        snprintf(wall_s, sizeof wall_s, c->format == FMT_CSV ? "%.17g" : "%.1f",
                 r->wall_s);
    if (r->eval_step >= 0)
        snprintf(step_s, sizeof step_s, "%lld", (long long)r->eval_step);
    if (c->format == FMT_CSV) {
        if (c->count == 1)
            printf("id,name,tags,method,scenario,status,last_step,score,score_kind,"
                   "eval_step,wall_s,created_at\n");
        printf("%lld,", (long long)r->id);
        csv_field(r->name);
        putchar(',');
        csv_field(r->tags);
        putchar(',');
        csv_field(r->method);
        putchar(',');
        csv_field(r->scenario);
        putchar(',');
        csv_field(stale ? "stale" : r->status);
        printf(",%lld,%s,%s,%s,%s,%s\n", (long long)r->last_step, score_s, kind, step_s,
               wall_s, r->created_at);
        return 0;
    }
    if (c->count == 1)
        printf("%-5s %-16s %-16s %-8s %-24s %-11s %10s %-16s %8s\n", "id", "name", "tags",
               "method", "scenario", "status", "last step", "score", "wall s");
    char score_col[48] = "--";
    if (isfinite(score)) snprintf(score_col, sizeof score_col, "%s %s", kind, score_s);
    printf("%-5lld %-16s %-16s %-8s %-24s %-11s %10lld %-16s %8s\n", (long long)r->id,
           r->name[0] ? r->name : "-", r->tags[0] ? r->tags : "-", r->method, r->scenario,
           status, (long long)r->last_step, score_col, wall_s[0] ? wall_s : "--");
    return 0;
fail:
    c->failed = 1;
    return 1;
}

int cmd_runs(int argc, char **argv) {
    const char *db = NULL, *status = NULL, *method = NULL, *format = "table";
    opt_list tags = {{0}, 0};
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"status", OPT_STR, &status, 0, 0,
         "only runs with this status: running, finished, failed, interrupted or stale",
         0},
        {"method", OPT_STR, &method, 0, 0, "only runs of this method (as listed)", 0},
        {"tag", OPT_STRLIST, &tags, 0, 0,
         "only runs with this tag; repeated: with all of them", 0},
        {"format", OPT_STR, &format, 0, 0, "table, csv or json", 0},
    };
    const int n = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse("runs", defs, n, argc, argv,
                        "--db FILE [--status S] [--method M] [--tag T ...] "
                        "[--format table|csv|json]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl runs: --db FILE is required\n");
        return 2;
    }
    runs_ctx c = {0};
    if (!strcmp(format, "table"))
        c.format = FMT_TABLE;
    else if (!strcmp(format, "csv"))
        c.format = FMT_CSV;
    else if (!strcmp(format, "json"))
        c.format = FMT_JSON;
    else {
        fprintf(stderr, "crl runs: --format must be table, csv or json, got '%s'\n",
                format);
        return 2;
    }
    static const char *const STATUSES[] = {"running", "finished", "failed", "interrupted",
                                           "stale"};
    int known = !status;
    for (size_t i = 0; !known && i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        known = !strcmp(status, STATUSES[i]);
    if (!known) {
        fprintf(stderr,
                "crl runs: --status must be running, finished, failed, interrupted or "
                "stale, got '%s'\n",
                status);
        return 2;
    }
    crl_err err = {0};
    if (crl_store_run_labels_check(NULL, tags.v, tags.n, &err)) {
        fprintf(stderr, "crl runs: --tag: %s\n", err.msg);
        return 2;
    }
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    c.store = store;
    c.status = status;
    if (c.format == FMT_JSON && crl_json_doc_create("[]", &c.doc, &err)) {
        crl_store_close(store);
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    crl_run_filter f = {method, tags.v, tags.n};
    rc = crl_store_run_summaries(store, &f, print_run, &c, &err);
    crl_store_close(store);
    if (!rc && c.failed) {
        rc = 1;
        err = c.err;
    }
    if (rc) {
        crl_json_doc_free(c.doc);
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    if (c.format == FMT_JSON) {
        printf("%s\n", crl_json_doc_text(c.doc));
        crl_json_doc_free(c.doc);
    } else if (c.count == 0 && c.format == FMT_TABLE) {
        printf(status || method || tags.n ? "no runs in %s match\n" : "no runs in %s\n",
               db);
    }
    return 0;
}
