/* crl report: reads finished runs from the store and computes the Continual
 * World table with the metrics of analysis/metrics.c. Definitions:
 * docs/report.md. */
#include "crl/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/methods.h"
#include "crl/run.h"
#include "crl/scenario.h"

#define NAME_CAP 128

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* The registry's order of the continual methods, then everything else. */
static int method_rank(const char *m) {
    int r = crl_method_rank(m);
    return r >= 0 ? r : 100;
}

static int is_locomotion(const char *scenario) {
    return !strncmp(scenario, "halfcheetah", 11) || !strncmp(scenario, "ant", 3);
}

/* Append a formatted note to r->notes. */
static int add_note(crl_report *r, crl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add_note(crl_report *r, crl_err *err, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Reference runs are read once per group: say each thing once. */
    for (int i = 0; i < r->n_notes; i++)
        if (!strcmp(r->notes[i], buf)) return CRL_OK;
    char **n = realloc(r->notes, (size_t)(r->n_notes + 1) * sizeof *n);
    if (!n) return crl_errf(err, CRL_ENOMEM, "report: out of memory");
    r->notes = n;
    if (!(n[r->n_notes] = strdup(buf)))
        return crl_errf(err, CRL_ENOMEM, "report: out of memory");
    r->n_notes++;
    return CRL_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading the store                                                         */

typedef struct {
    int64_t id;
    char method[32];
    char scenario[64];
    uint64_t seed;
    int64_t spt; /* steps per task, -1 unknown */
} run_key;

static int cmp_key(const void *pa, const void *pb) {
    const run_key *a = pa, *b = pb;
    int c = strcmp(a->scenario, b->scenario);
    if (c) return c;
    int ra = method_rank(a->method), rb = method_rank(b->method);
    if (ra != rb) return ra - rb;
    if ((c = strcmp(a->method, b->method))) return c;
    if (a->spt != b->spt) return a->spt < b->spt ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int same_group(const run_key *a, const run_key *b) {
    return !strcmp(a->scenario, b->scenario) && !strcmp(a->method, b->method) &&
           a->spt == b->spt;
}

/* Finished runs (optionally of one scenario), sorted by group. steps_per_task
 * comes from config_json, or else from the first task's window. */
static int list_finished(crl_store *store, const char *scenario, run_key **out, int *n,
                         crl_err *err) {
    crl_finished_run *runs = NULL;
    *out = NULL;
    *n = 0;
    int rc = crl_store_finished_runs(store, scenario, &runs, n, err);
    if (rc) return rc;
    *out = malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*out) {
        crl_store_finished_runs_free(runs);
        *n = 0;
        return crl_errf(err, CRL_ENOMEM, "report: out of memory");
    }
    for (int i = 0; i < *n; i++) {
        const crl_finished_run *f = &runs[i];
        run_key *k = &(*out)[i];
        memset(k, 0, sizeof *k);
        k->id = f->id;
        snprintf(k->method, sizeof k->method, "%s", f->method);
        snprintf(k->scenario, sizeof k->scenario, "%s", f->scenario);
        k->seed = f->seed;
        k->spt = -1;
        if (f->has_spt) {
            double v = f->spt;
            if (isfinite(v) && v > 0 && v < 9e18) k->spt = llround(v);
        } else if (f->first_window > 0) {
            k->spt = f->first_window;
        }
    }
    crl_store_finished_runs_free(runs);
    if (*n > 1) qsort(*out, (size_t)*n, sizeof **out, cmp_key);
    return CRL_OK;
}

/* "2 unfinished runs ignored (1 running, 1 failed)". */
static int note_unfinished(crl_store *store, const char *scenario, crl_report *r,
                           int *total, crl_err *err) {
    crl_status_count *counts = NULL;
    int n = 0;
    *total = 0;
    int rc = crl_store_unfinished_runs(store, scenario, &counts, &n, err);
    if (rc) return rc;
    char parts[256] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        *total += counts[i].count;
        if (len < sizeof parts)
            len += (size_t)snprintf(parts + len, sizeof parts - len, "%s%d %s",
                                    len ? ", " : "", counts[i].count, counts[i].status);
    }
    crl_store_status_counts_free(counts);
    if (*total == 0) return CRL_OK;
    return add_note(r, err, "%d unfinished run%s ignored (%s)", *total,
                    *total == 1 ? "" : "s", parts);
}

typedef struct {
    int idx;
    char name[NAME_CAP];
    int64_t start, end; /* end -1: never ended */
} task_row;

typedef struct {
    int n_tasks;
    task_row *tasks;
    crl_eval_row *evals;
    size_t n_evals, cap_evals;
    double *params; /* "model/params" in step order */
    int n_params, cap_params;
    double wall; /* last "wall_time_s", NaN if none */
    int nomem;
} run_data;

static void run_data_free(run_data *d) {
    free(d->tasks);
    free(d->evals);
    free(d->params);
    memset(d, 0, sizeof *d);
}

static int collect_eval(const crl_eval_row *row, void *ctx) {
    run_data *d = ctx;
    if (d->n_evals == d->cap_evals) {
        size_t cap = d->cap_evals ? 2 * d->cap_evals : 256;
        crl_eval_row *e = realloc(d->evals, cap * sizeof *e);
        if (!e) {
            d->nomem = 1;
            return 1;
        }
        d->evals = e;
        d->cap_evals = cap;
    }
    d->evals[d->n_evals++] = *row;
    return 0;
}

static int collect_metric(const crl_metric_row *m, void *ctx) {
    run_data *d = ctx;
    if (!strcmp(m->key, "wall_time_s")) {
        d->wall = m->value;
        return 0;
    }
    if (d->n_params == d->cap_params) {
        int cap = d->cap_params ? 2 * d->cap_params : 8;
        double *p = realloc(d->params, (size_t)cap * sizeof *p);
        if (!p) {
            d->nomem = 1;
            return 1;
        }
        d->params = p;
        d->cap_params = cap;
    }
    d->params[d->n_params++] = m->value;
    return 0;
}

/* Tasks, evals, model size and wall time of one run. */
static int load_run(crl_store *store, int64_t id, run_data *d, crl_err *err) {
    memset(d, 0, sizeof *d);
    d->wall = NAN;
    crl_task_row *tasks = NULL;
    int rc = crl_store_tasks(store, id, &tasks, &d->n_tasks, err);
    if (rc) goto fail;
    d->tasks = malloc((size_t)(d->n_tasks ? d->n_tasks : 1) * sizeof *d->tasks);
    if (!d->tasks) {
        crl_store_tasks_free(tasks);
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
        goto fail;
    }
    for (int i = 0; i < d->n_tasks; i++) {
        task_row *t = &d->tasks[i];
        t->idx = tasks[i].idx;
        snprintf(t->name, sizeof t->name, "%s", tasks[i].name);
        t->start = tasks[i].start_step;
        t->end = tasks[i].end_step;
    }
    crl_store_tasks_free(tasks);

    if ((rc = crl_store_evals(store, id, collect_eval, d, err))) goto fail;
    if (d->nomem) {
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory for evals");
        goto fail;
    }

    static const char *const keys[] = {"model/params", "wall_time_s"};
    if ((rc = crl_store_metrics(store, id, keys, 2, collect_metric, d, err))) goto fail;
    if (d->nomem) {
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
        goto fail;
    }
    return CRL_OK;
fail:
    run_data_free(d);
    return rc;
}

/* Score rows: success_rate as is, or det_return moved into mean_return so that
 * crl_scores_from_evals(CRL_SCORE_RETURN) reads the deterministic return. */
static int build_scores(const run_data *d, int n_tasks, int loco, int remap_to,
                        crl_scores *m, crl_err *err) {
    memset(m, 0, sizeof *m);
    for (size_t k = 0; loco && k < d->n_evals; k++)
        if (isnan(d->evals[k].det_return))
            return crl_errf(err, CRL_EINVAL,
                            "no deterministic return (det_return) for task %d at step "
                            "%lld; stores older than schema v2 do not have it",
                            d->evals[k].eval_task_idx, (long long)d->evals[k].step);
    crl_eval_row *rows = malloc((d->n_evals ? d->n_evals : 1) * sizeof *rows);
    if (!rows) return crl_errf(err, CRL_ENOMEM, "report: out of memory");
    for (size_t k = 0; k < d->n_evals; k++) {
        rows[k] = d->evals[k];
        if (loco) rows[k].mean_return = rows[k].det_return;
        if (remap_to >= 0) {
            rows[k].eval_task_idx -= remap_to;
            rows[k].train_task_idx -= remap_to;
        }
    }
    int rc = crl_scores_from_evals(m, n_tasks, rows, d->n_evals,
                                   loco ? CRL_SCORE_RETURN : CRL_SCORE_SUCCESS, err);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* One group: the runs of one (scenario, method, steps_per_task)             */

typedef struct {
    int n_pos;
    const char *const *names; /* [n_pos] task name of each scenario position */
    int n_runs;               /* usable reference runs */
    char (*run_name)[NAME_CAP];
    double *final; /* [n_runs] raw final score (mean of last 5 evals) */
    double *auc;   /* [n_runs] raw AUC over the run's window */
} ref_set;

static void ref_set_free(ref_set *r) {
    free(r->run_name);
    free(r->final);
    free(r->auc);
    memset(r, 0, sizeof *r);
}

static const char *spt_text(int64_t spt, char *buf, size_t cap) {
    if (spt < 0)
        snprintf(buf, cap, "unknown steps per task");
    else
        snprintf(buf, cap, "%lld steps per task", (long long)spt);
    return buf;
}

/* Reference runs of (scenario, spt) among keys[0..n): CRL_REPORT_REF_METHOD, one
 * task row at a scenario position whose name it carries, evals of that task
 * only. Runs that do not fit are noted and left out. */
static int load_refs(crl_store *store, const run_key *keys, int n, const char *scenario,
                     int64_t spt, int n_pos, const char *const *names, int loco,
                     crl_report *rep, ref_set *out, crl_err *err) {
    memset(out, 0, sizeof *out);
    out->n_pos = n_pos;
    out->names = names;
    int cap = 0;
    for (int k = 0; k < n; k++) {
        if (strcmp(keys[k].method, CRL_REPORT_REF_METHOD) ||
            strcmp(keys[k].scenario, scenario) || keys[k].spt != spt)
            continue;
        if (cap == 0) {
            cap = n;
            out->run_name = malloc((size_t)cap * sizeof *out->run_name);
            out->final = malloc((size_t)cap * sizeof *out->final);
            out->auc = malloc((size_t)cap * sizeof *out->auc);
            if (!out->run_name || !out->final || !out->auc) {
                ref_set_free(out);
                return crl_errf(err, CRL_ENOMEM, "report: out of memory");
            }
        }
        run_data d;
        int rc = load_run(store, keys[k].id, &d, err);
        if (rc) {
            ref_set_free(out);
            return rc;
        }
        crl_err e = {0};
        char why[sizeof e.msg] = "";
        crl_scores m = {0};
        double fin = NAN, auc = NAN;
        int pos = d.n_tasks == 1 ? d.tasks[0].idx : -1;
        if (d.n_tasks != 1)
            snprintf(why, sizeof why, "has %d task rows, a reference has 1", d.n_tasks);
        else if (pos < 0 || pos >= n_pos)
            snprintf(why, sizeof why, "task position %d is outside the scenario's %d",
                     pos, n_pos);
        else if (strcmp(d.tasks[0].name, names[pos]))
            snprintf(why, sizeof why, "task '%s' at position %d, where %s has '%s'",
                     d.tasks[0].name, pos, scenario, names[pos]);
        else if (d.tasks[0].end < 0)
            snprintf(why, sizeof why, "its task never ended");
        else if (build_scores(&d, 1, loco, pos, &m, &e))
            snprintf(why, sizeof why, "%s", e.msg);
        else {
            m.task_start[0] = d.tasks[0].start;
            m.task_end[0] = d.tasks[0].end;
            if (crl_metric_final(&m, &fin, &e) || crl_metric_auc(&m, &auc, &e))
                snprintf(why, sizeof why, "%s", e.msg);
        }
        crl_scores_free(&m);
        if (why[0]) {
            rc = add_note(rep, err, "reference run %lld (%s, seed %llu) skipped: %s",
                          (long long)keys[k].id, scenario,
                          (unsigned long long)keys[k].seed, why);
        } else {
            snprintf(out->run_name[out->n_runs], NAME_CAP, "%s", d.tasks[0].name);
            out->final[out->n_runs] = fin;
            out->auc[out->n_runs] = auc;
            out->n_runs++;
        }
        run_data_free(&d);
        if (rc) {
            ref_set_free(out);
            return rc;
        }
    }
    return CRL_OK;
}

/* Pooled over every reference run carrying the task name of position i:
 * *count runs, mean raw final score and mean raw AUC. */
static void ref_pool(const ref_set *r, int i, int *count, double *final, double *auc) {
    double f = 0, a = 0;
    int c = 0;
    for (int k = 0; k < r->n_runs; k++)
        if (!strcmp(r->run_name[k], r->names[i])) {
            f += r->final[k];
            a += r->auc[k];
            c++;
        }
    *count = c;
    *final = c ? f / c : NAN;
    *auc = c ? a / c : NAN;
}

static int bootstrap(const double *x, int n, crl_ci *ci, crl_err *err) {
    crl_rng rng;
    crl_rng_seed(&rng, CRL_REPORT_BOOT_SEED);
    return crl_metric_bootstrap_ci(x, n, CRL_BOOTSTRAP_RESAMPLES, CRL_BOOTSTRAP_LEVEL,
                                   &rng, ci, err);
}

/* Append " name" for position i to a list (at most the buffer). */
static void list_task(char *buf, size_t cap, const char *name, int pos) {
    size_t len = strlen(buf);
    if (len < cap)
        snprintf(buf + len, cap - len, "%s%s (%d)", len ? ", " : "", name, pos);
}

typedef struct {
    char *buf;
    size_t cap, len;
    double sum;
    int n;
} acc_text;

static int add_route_acc(const crl_metric_row *m, void *ctx) {
    acc_text *a = ctx;
    if (a->len >= a->cap) return 1;
    /* A NULL value (a NaN written) has always counted as 0 here. */
    double v = isnan(m->value) ? 0 : m->value;
    a->len +=
        (size_t)snprintf(a->buf + a->len, a->cap - a->len, "%s%.2f", a->n ? ", " : "", v);
    a->sum += v;
    a->n++;
    return 0;
}

/* The routing accuracy of each task at run_id's last evaluation (metrics
 * "l2m/route_acc/<pos>" at their highest step, in position order), as
 * "a, b, c (mean m)" in buf; "-" if none was stored. */
static void l2m_route_acc(crl_store *store, int64_t run_id, char *buf, size_t cap) {
    snprintf(buf, cap, "-");
    acc_text a = {buf, cap, 0, 0, 0};
    /* What could be read is shown; a failed read leaves "-" or a shorter list. */
    (void)crl_store_metrics_family_last(store, run_id, "l2m/route_acc/", add_route_acc,
                                        &a, NULL);
    if (a.n && a.len < cap)
        snprintf(buf + a.len, cap - a.len, " (mean %.2f)", a.sum / a.n);
}

#define L2M_STEPS_PREFIX "l2m/route_acc_steps/"

static int add_route_acc_steps(const crl_metric_row *m, void *ctx) {
    crl_report_l2m *l = ctx;
    if (l->n_acc >= CRL_REPORT_L2M_TASKS) return 1;
    l->acc_pos[l->n_acc] = atoi(m->key + strlen(L2M_STEPS_PREFIX));
    l->acc[l->n_acc++] = m->value;
    return 0;
}

/* The step routing accuracy of run_id at its last evaluation (metrics
 * "l2m/route_acc_steps/<pos>" at their highest step) into l; n_acc = 0 if
 * the run has none (made before the metric). */
static void l2m_route_acc_steps(crl_store *store, int64_t run_id, crl_report_l2m *l) {
    l->n_acc = 0;
    l->acc_mean = NAN;
    (void)crl_store_metrics_family_last(store, run_id, L2M_STEPS_PREFIX,
                                        add_route_acc_steps, l, NULL);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < l->n_acc; i++)
        if (!isnan(l->acc[i])) {
            sum += l->acc[i];
            n++;
        }
    if (n) l->acc_mean = sum / n;
}

/* x truncated (not rounded) to 3 decimals, so that a ceiling below the
 * threshold never prints as the threshold. */
static double trunc3(double x) {
    return floor(x * 1000.0) / 1000.0;
}

/* l2m groups: a note per run with the pool (size, modulator, rank), the
 * parameter counts (metrics l2m/base_params and l2m/pool_params; their sum
 * is the run's "model/params"), the modulators used (the last "l2m/used")
 * and the routing accuracy per task at the last evaluation: over evaluation
 * steps (l2m/route_acc_steps) when the run logged it, else the old
 * per-episode one (l2m/route_acc); and the separability ceiling when the
 * run logged one. Runs with either of the new metrics also get an entry in
 * rep->l2m. */
static int l2m_note(crl_store *store, const run_key *keys, int g0, int g1,
                    crl_report *rep, crl_err *err) {
    static const char *const last[] = {"l2m/used", "l2m/base_params", "l2m/pool_params",
                                       "l2m/ceiling", "l2m/ceiling_n"};
    int rc = CRL_OK;
    for (int g = g0; g < g1 && !rc; g++) {
        double m[5];
        /* The pool's configuration (crl_run_config_load); a run that cannot
         * be read gets no note, as before. */
        crl_run_config cfg;
        if (crl_run_config_load(store, keys[g].id, &cfg, NULL, NULL) != CRL_OK) continue;
        if (crl_store_metrics_last(store, keys[g].id, last, 5, m, NULL)) {
            crl_run_config_free(&cfg);
            continue;
        }
        crl_report_l2m l = {.run_id = keys[g].id,
                            .seed = keys[g].seed,
                            .used = m[0],
                            .ceiling = m[3],
                            .ceiling_n = m[4]};
        snprintf(l.scenario, sizeof l.scenario, "%s", keys[g].scenario);
        snprintf(l.method, sizeof l.method, "%s", keys[g].method);
        l2m_route_acc_steps(store, keys[g].id, &l);
        const char *mod = cfg.l2m.modulator, *base = cfg.l2m.base;
        int oracle = cfg.l2m.oracle;
        char used[32] = "?", params[96] = "?";
        if (!isnan(m[0])) snprintf(used, sizeof used, "%d", (int)(int64_t)m[0]);
        if (!isnan(m[1]) && !isnan(m[2]))
            snprintf(params, sizeof params, "%.0f (base) + %.0f (pool)", m[1], m[2]);
        char acc[480], rank[32] = "", ceil[160] = "";
        const char *what = "";
        if (l.n_acc) {
            /* The new definition: a, b, c (mean m). */
            size_t len = 0;
            acc[0] = 0;
            for (int i = 0; i < l.n_acc && len < sizeof acc; i++)
                len += (size_t)snprintf(acc + len, sizeof acc - len, "%s%.2f",
                                        i ? ", " : "", l.acc[i]);
            if (len < sizeof acc)
                snprintf(acc + len, sizeof acc - len, " (mean %.2f)", l.acc_mean);
            what = " (share of evaluation steps on modulators the task owns)";
        } else {
            l2m_route_acc(store, keys[g].id, acc, sizeof acc);
        }
        if (!isnan(l.ceiling)) {
            const double c = trunc3(l.ceiling);
            int len = snprintf(ceil, sizeof ceil, "; separability ceiling %.3f", c);
            if (!isnan(l.ceiling_n))
                len += snprintf(ceil + len, sizeof ceil - (size_t)len, " (%.0f queries)",
                                l.ceiling_n);
            if (l.ceiling < CRL_REPORT_CEILING_LOW)
                snprintf(ceil + len, sizeof ceil - (size_t)len,
                         ": the base embedding cannot tell these tasks apart (ceiling "
                         "%.3f < %.1f)",
                         c, CRL_REPORT_CEILING_LOW);
        }
        int ia3 = crl_l2m_kind(mod) == CRL_POOL_IA3;
        if (!ia3) snprintf(rank, sizeof rank, " (rank %d)", cfg.l2m.rank);
        rc = add_note(
            rep, err,
            "l2m run %lld (%s, seed %llu): pool of %d %s modulators%s%s, "
            "base %s; parameters at inference %s; %s modulators used; routing accuracy"
            "%s per task at the last evaluation %s%s",
            (long long)keys[g].id, keys[g].scenario, (unsigned long long)keys[g].seed,
            cfg.l2m.pool, mod ? mod : "lora", oracle ? " split per task" : "", rank,
            base ? base : "?", params, used, what, acc, ceil);
        crl_run_config_free(&cfg);
        if (!rc && (l.n_acc || !isnan(l.ceiling))) {
            crl_report_l2m *ls = realloc(rep->l2m, (size_t)(rep->n_l2m + 1) * sizeof *ls);
            if (!ls) return crl_errf(err, CRL_ENOMEM, "report: out of memory");
            rep->l2m = ls;
            ls[rep->n_l2m++] = l;
        }
    }
    return rc;
}

/* The decisions of one csp run, summed up; v5 rows (with a criterion) also
 * fill the structured record. */
typedef struct {
    int n, last_anchors, n_v5;
    char kept[512];
    size_t len;
    crl_report_csp rec;
} csp_sum;

static int add_decision(const crl_csp_decision_row *d, void *ctx) {
    csp_sum *c = ctx;
    c->n++;
    c->last_anchors = d->n_anchors;
    if (d->kept && d->task_idx > 0 && c->len < sizeof c->kept)
        c->len += (size_t)snprintf(c->kept + c->len, sizeof c->kept - c->len, "%s%d",
                                   c->len ? "," : "", d->task_idx);
    crl_report_csp *r = &c->rec;
    if (d->criterion) c->n_v5++;
    if (r->n_tasks < CRL_REPORT_CSP_TASKS) {
        int i = r->n_tasks++;
        r->pos[i] = d->task_idx;
        r->anchors[i] = d->n_anchors;
        r->kept[i] = d->kept;
        snprintf(r->criterion[i], sizeof r->criterion[i], "%s",
                 d->criterion && d->rollouts > 0 ? d->criterion : "");
        r->check_kept[i] = d->check_kept;
        if (d->check_kept >= 0) {
            r->n_checked++;
            r->n_agree += d->check_kept == d->kept;
        }
        if (!isnan(d->wall_s)) r->decision_s += d->wall_s;
    }
    return 0;
}

/* csp groups: a note per run with the anchors it ended with (table
 * csp_decisions), the tasks, which tasks kept their new anchor, and the
 * growth factor of the model (last / first "model/params"); for runs
 * decided by the rule of issue 21 also the anchors per task, what decided,
 * the decision accuracy against the check and the decisions' share of the
 * run's wall time (and a crl_report_csp record for the JSON). */
static int csp_note(crl_store *store, const run_key *keys, const run_data *runs, int g0,
                    int g1, crl_report *rep, crl_err *err) {
    int rc = CRL_OK;
    for (int g = g0; g < g1 && !rc; g++) {
        csp_sum c;
        memset(&c, 0, sizeof c);
        if (crl_store_csp_decisions(store, keys[g].id, add_decision, &c, NULL) || !c.n)
            continue;
        /* As SQL divides: NULL (shown "?") for a missing value, a zero divisor
         * or a NaN quotient. */
        const run_data *d = &runs[g - g0];
        char growth[32] = "?";
        if (d->n_params > 0) {
            double first = d->params[0], lastp = d->params[d->n_params - 1];
            double q = isnan(first) || isnan(lastp) || first == 0 ? NAN : lastp / first;
            if (!isnan(q)) snprintf(growth, sizeof growth, "%.2f", q);
        }
        char more[900] = "";
        if (c.n_v5) {
            crl_report_csp *r = &c.rec;
            r->run_id = keys[g].id;
            snprintf(r->scenario, sizeof r->scenario, "%s", keys[g].scenario);
            snprintf(r->method, sizeof r->method, "%s", keys[g].method);
            r->seed = keys[g].seed;
            r->accuracy = r->n_checked ? (double)r->n_agree / r->n_checked : NAN;
            r->decision_share =
                isfinite(d->wall) && d->wall > 0 ? r->decision_s / d->wall : NAN;
            char per[300] = "", acc[96] = "no check (--csp-check)", share[48] = "?";
            int by_s = 0, by_r = 0;
            size_t len = 0;
            for (int i = 0; i < r->n_tasks && len < sizeof per; i++) {
                len += (size_t)snprintf(per + len, sizeof per - len, "%s%d", i ? "," : "",
                                        r->anchors[i]);
                by_s += !strcmp(r->criterion[i], "success");
                by_r += !strcmp(r->criterion[i], "return");
            }
            if (r->n_checked)
                snprintf(acc, sizeof acc, "%d/%d (%.2f) against the check", r->n_agree,
                         r->n_checked, r->accuracy);
            if (!isnan(r->decision_share))
                snprintf(share, sizeof share, "%.1f%%", 100.0 * r->decision_share);
            snprintf(more, sizeof more,
                     "; anchors per task %s; decided on success %d, on return %d; "
                     "decision accuracy %s; decisions %.1f s (%s of the run)",
                     per, by_s, by_r, acc, r->decision_s, share);
            crl_report_csp *cs = realloc(rep->csp, (size_t)(rep->n_csp + 1) * sizeof *cs);
            if (!cs) return crl_errf(err, CRL_ENOMEM, "report: out of memory");
            rep->csp = cs;
            cs[rep->n_csp++] = *r;
        }
        rc = add_note(rep, err,
                      "csp run %lld (%s, seed %llu): %d anchors after %d tasks "
                      "(new anchor kept on tasks: %s), growth factor %s%s",
                      (long long)keys[g].id, keys[g].scenario,
                      (unsigned long long)keys[g].seed, c.last_anchors, c.n,
                      c.len ? c.kept : "none", growth, more);
    }
    return rc;
}

static int do_group(crl_store *store, const run_key *keys, int n_keys, int g0, int g1,
                    crl_report *rep, crl_err *err) {
    const run_key *k0 = &keys[g0];
    char sptb[48];
    spt_text(k0->spt, sptb, sizeof sptb);

    /* Task names: the scenario's list, or for a scenario crl does not know,
     * the first run's tasks table. */
    const crl_scenario *sc = crl_scenario_find(k0->scenario);
    int n_pos = 0;
    const char *const *names = NULL;
    char(*own)[NAME_CAP] = NULL;
    const char **own_ptr = NULL;
    int rc = CRL_OK;
    run_data *runs = calloc((size_t)(g1 - g0), sizeof *runs);
    ref_set refs = {0};
    crl_report_row row;
    memset(&row, 0, sizeof row);
    double *perf = NULL, *forg = NULL, *auc = NULL, *ft_seed = NULL, *ft_task = NULL;
    double *norm = NULL, *bref = NULL;
    if (!runs) {
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
        goto out;
    }
    for (int g = g0; g < g1; g++)
        if ((rc = load_run(store, keys[g].id, &runs[g - g0], err))) goto out;
    if (sc) {
        n_pos = sc->n_tasks;
        names = sc->tasks;
    } else {
        n_pos = runs[0].n_tasks;
        own = calloc((size_t)(n_pos ? n_pos : 1), sizeof *own);
        own_ptr = calloc((size_t)(n_pos ? n_pos : 1), sizeof *own_ptr);
        if (!own || !own_ptr) {
            rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
            goto out;
        }
        for (int i = 0; i < n_pos; i++) {
            snprintf(own[i], NAME_CAP, "%s", runs[0].tasks[i].name);
            own_ptr[i] = own[i];
        }
        names = own_ptr;
    }
    if (n_pos < 1) {
        rc = add_note(rep, err, "%s %s (%s): skipped, the first run (%lld) has no tasks",
                      k0->scenario, k0->method, sptb, (long long)k0->id);
        goto out;
    }

    int loco = is_locomotion(k0->scenario);
    if ((rc = load_refs(store, keys, n_keys, k0->scenario, k0->spt, n_pos, names, loco,
                        rep, &refs, err)))
        goto out;

    /* Reference pools per position: B_i (raw AUC) and the locomotion
     * normaliser (raw final score). */
    norm = malloc((size_t)n_pos * sizeof *norm);
    bref = malloc((size_t)n_pos * sizeof *bref);
    perf = malloc((size_t)(g1 - g0) * sizeof *perf);
    forg = malloc((size_t)(g1 - g0) * sizeof *forg);
    ft_seed = malloc((size_t)(g1 - g0) * sizeof *ft_seed);
    auc = malloc((size_t)(g1 - g0) * (size_t)n_pos * sizeof *auc);
    ft_task = malloc((size_t)n_pos * sizeof *ft_task);
    if (!norm || !bref || !perf || !forg || !ft_seed || !auc || !ft_task) {
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
        goto out;
    }
    char missing[200] = "", nonpos[200] = "";
    for (int i = 0; i < n_pos; i++) {
        int c;
        ref_pool(&refs, i, &c, &norm[i], &bref[i]);
        if (!c)
            list_task(missing, sizeof missing, names[i], i);
        else if (loco && !(norm[i] > 0))
            list_task(nonpos, sizeof nonpos, names[i], i);
    }
    int normalise = loco && !missing[0] && !nonpos[0];
    if (normalise)
        for (int i = 0; i < n_pos; i++) bref[i] /= norm[i];

    snprintf(row.scenario, sizeof row.scenario, "%s", k0->scenario);
    snprintf(row.method, sizeof row.method, "%s", k0->method);
    row.steps_per_task = k0->spt;
    row.n_tasks = n_pos;
    row.n_ref_runs = refs.n_runs;
    snprintf(row.score, sizeof row.score, "%s",
             !loco       ? "success"
             : normalise ? "return/ref"
                         : "return");
    if (loco && !normalise) {
        if (refs.n_runs == 0)
            snprintf(
                row.score_note, sizeof row.score_note,
                "raw deterministic return: no single reference runs to normalise by");
        else if (missing[0])
            snprintf(row.score_note, sizeof row.score_note,
                     "raw deterministic return: no single reference run for %s", missing);
        else
            snprintf(row.score_note, sizeof row.score_note,
                     "raw deterministic return: reference score <= 0 on %s", nonpos);
    }

    /* Per run: score matrix with the tasks table's windows, then the metrics. */
    int ns = 0;
    double params_sum = 0, growth_sum = 0, wall_sum = 0;
    int n_params = 0, n_growth = 0, n_wall = 0;
    for (int g = g0; g < g1; g++) {
        run_data *d = &runs[g - g0];
        crl_err e = {0};
        char why[sizeof e.msg] = "";
        crl_scores m = {0};
        if (d->n_tasks != n_pos)
            snprintf(why, sizeof why, "has %d task rows, %s has %d tasks", d->n_tasks,
                     k0->scenario, n_pos);
        for (int i = 0; !why[0] && i < n_pos; i++) {
            if (d->tasks[i].idx != i)
                snprintf(why, sizeof why, "task positions are not 0..%d", n_pos - 1);
            else if (strcmp(d->tasks[i].name, names[i]))
                snprintf(why, sizeof why, "task %d is '%s', %s has '%s'", i,
                         d->tasks[i].name, k0->scenario, names[i]);
            else if (d->tasks[i].end < 0)
                snprintf(why, sizeof why, "task %d never ended", i);
        }
        if (!why[0] && !d->n_evals) snprintf(why, sizeof why, "no evaluations");
        if (!why[0] && build_scores(d, n_pos, loco, -1, &m, &e))
            snprintf(why, sizeof why, "%s", e.msg);
        if (!why[0]) {
            for (int i = 0; i < n_pos; i++) {
                m.task_start[i] = d->tasks[i].start;
                m.task_end[i] = d->tasks[i].end;
            }
            if ((normalise && crl_scores_normalise(&m, norm, &e)) ||
                crl_metric_performance(&m, &perf[ns], &e) ||
                crl_metric_forgetting(&m, NULL, &forg[ns], &e) ||
                crl_metric_auc(&m, &auc[(size_t)ns * (size_t)n_pos], &e))
                snprintf(why, sizeof why, "%s", e.msg);
        }
        crl_scores_free(&m);
        if (why[0]) {
            if ((rc = add_note(rep, err, "run %lld (%s %s, seed %llu) skipped: %s",
                               (long long)keys[g].id, k0->scenario, k0->method,
                               (unsigned long long)keys[g].seed, why)))
                goto out;
            continue;
        }
        ns++;
        if (d->n_params > 0 && isfinite(d->params[d->n_params - 1])) {
            params_sum += d->params[d->n_params - 1];
            n_params++;
            int64_t *sz = malloc((size_t)d->n_params * sizeof *sz);
            int fine = sz != NULL;
            for (int j = 0; fine && j < d->n_params; j++) {
                if (!isfinite(d->params[j]))
                    fine = 0;
                else
                    sz[j] = llround(d->params[j]);
            }
            double gf;
            if (fine && crl_metric_growth(sz, d->n_params, &gf, NULL) == CRL_OK) {
                growth_sum += gf;
                n_growth++;
            }
            free(sz);
        }
        if (isfinite(d->wall)) {
            wall_sum += d->wall;
            n_wall++;
        }
    }
    if (ns == 0) {
        rc = add_note(rep, err, "%s %s (%s): no usable run, no row", k0->scenario,
                      k0->method, sptb);
        goto out;
    }
    row.n_seeds = ns;
    row.params = n_params ? params_sum / n_params : NAN;
    row.growth = n_growth ? growth_sum / n_growth : NAN;
    row.wall_time_s = n_wall ? wall_sum / n_wall : NAN;
    if ((rc = bootstrap(perf, ns, &row.performance, err))) goto out;
    if ((rc = bootstrap(forg, ns, &row.forgetting, err))) goto out;

    row.forward_transfer = (crl_ci){NAN, NAN, NAN};
    if (refs.n_runs == 0) {
        snprintf(row.ft_note, sizeof row.ft_note,
                 "no single reference runs (method %s, scenario %s, %s)",
                 CRL_REPORT_REF_METHOD, k0->scenario, sptb);
    } else if (missing[0]) {
        snprintf(row.ft_note, sizeof row.ft_note, "no single reference run for %s",
                 missing);
    } else if (loco && !normalise) {
        snprintf(row.ft_note, sizeof row.ft_note,
                 "reference score <= 0 on %s: returns cannot be normalised", nonpos);
    } else {
        double ft;
        crl_err e = {0};
        int frc = crl_metric_forward_transfer(n_pos, ns, auc, 1, bref, ft_task, ft_seed,
                                              &ft, &e);
        if (frc == CRL_OK) {
            if ((rc = bootstrap(ft_seed, ns, &row.forward_transfer, err))) goto out;
        } else {
            char bad[200] = "";
            for (int i = 0; i < n_pos; i++)
                if (isnan(ft_task[i]) && bref[i] >= 1) {
                    size_t len = strlen(bad);
                    if (len < sizeof bad)
                        snprintf(bad + len, sizeof bad - len, "%s%s (%d, AUC %.3g)",
                                 len ? ", " : "", names[i], i, bref[i]);
                }
            if (bad[0])
                snprintf(row.ft_note, sizeof row.ft_note,
                         "reference AUC >= 1 on %s: forward transfer undefined", bad);
            else
                snprintf(row.ft_note, sizeof row.ft_note, "%.200s", e.msg);
        }
    }

    const crl_method *m0 = crl_method_of_label(k0->method);
    const unsigned f0 = m0 ? m0->impl->flags : 0;
    if ((f0 & CRL_METHOD_L2M_BASE) && (rc = l2m_note(store, keys, g0, g1, rep, err)))
        goto out;
    if ((f0 & CRL_METHOD_SUBSPACE) &&
        (rc = csp_note(store, keys, runs, g0, g1, rep, err)))
        goto out;
    crl_report_row *rows = realloc(rep->rows, (size_t)(rep->n_rows + 1) * sizeof *rows);
    if (!rows) {
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
        goto out;
    }
    rep->rows = rows;
    rows[rep->n_rows++] = row;
out:
    if (runs)
        for (int g = g0; g < g1; g++) run_data_free(&runs[g - g0]);
    free(runs);
    free(own);
    free(own_ptr);
    ref_set_free(&refs);
    free(perf);
    free(forg);
    free(auc);
    free(ft_seed);
    free(ft_task);
    free(norm);
    free(bref);
    return rc;
}

static int has_v5_decision(const crl_csp_decision_row *d, void *ctx) {
    if (d->criterion) {
        *(int *)ctx = 1;
        return 1;
    }
    return 0;
}

/* A csp label that names runs decided before issue 21 (no v5 decision
 * rows) and runs decided after would pool two decision rules in one row:
 * when a group has both, its older runs get the label "<label>-pre21" (a
 * row of their own) and a note says so. Groups of one kind keep their
 * label, so older databases report as before. */
static int split_old_csp(crl_store *store, run_key *keys, int n, crl_report *rep,
                         crl_err *err) {
    int changed = 0, rc = CRL_OK;
    for (int g0 = 0, g1; g0 < n && !rc; g0 = g1) {
        for (g1 = g0 + 1; g1 < n && same_group(&keys[g0], &keys[g1]); g1++) {
        }
        const crl_method *m = crl_method_of_label(keys[g0].method);
        if (!m || !(m->impl->flags & CRL_METHOD_SUBSPACE)) continue;
        int v5[256], n_new = 0, n_old = 0;
        if (g1 - g0 > 256) continue;
        for (int g = g0; g < g1; g++) {
            v5[g - g0] = 0;
            crl_store_csp_decisions(store, keys[g].id, has_v5_decision, &v5[g - g0],
                                    NULL);
            n_new += v5[g - g0];
        }
        n_old = g1 - g0 - n_new;
        if (!n_new || !n_old) continue;
        char label[32];
        snprintf(label, sizeof label, "%s", keys[g0].method);
        for (int g = g0; g < g1; g++)
            if (!v5[g - g0])
                snprintf(keys[g].method, sizeof keys[g].method, "%.24s-pre21", label);
        rc = add_note(rep, err,
                      "%s %s: %d run%s decided by the rule before issue 21 reported as "
                      "%.24s-pre21",
                      keys[g0].scenario, label, n_old, n_old == 1 ? "" : "s", label);
        changed = 1;
    }
    if (changed && n > 1) qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    return rc;
}

int crl_report_build(crl_store *store, const char *scenario, crl_report *out,
                     crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "report: NULL output");
    memset(out, 0, sizeof *out);
    if (!store) return crl_errf(err, CRL_EINVAL, "report: NULL store");
    /* Other processes may be writing: read everything from one snapshot. */
    int in_txn = crl_store_read_begin(store);

    run_key *keys = NULL;
    int n_keys = 0, unfinished = 0, n_single = 0, rc;
    if ((rc = note_unfinished(store, scenario, out, &unfinished, err))) goto out;
    if ((rc = list_finished(store, scenario, &keys, &n_keys, err))) goto out;
    if ((rc = split_old_csp(store, keys, n_keys, out, err))) goto out;
    for (int g0 = 0, g1; g0 < n_keys; g0 = g1) {
        for (g1 = g0 + 1; g1 < n_keys && same_group(&keys[g0], &keys[g1]); g1++) {
        }
        if (!strcmp(keys[g0].method, CRL_REPORT_REF_METHOD)) {
            n_single += g1 - g0;
            continue;
        }
        if ((rc = do_group(store, keys, n_keys, g0, g1, out, err))) goto out;
    }
    if (out->n_rows == 0) {
        char what[128], extra[300] = "";
        if (scenario)
            snprintf(what, sizeof what, "no finished continual runs of scenario %s",
                     scenario);
        else
            snprintf(what, sizeof what, "no finished continual runs");
        size_t len = 0;
        if (n_single && n_keys == n_single)
            len += (size_t)snprintf(extra + len, sizeof extra - len,
                                    "only %d single-task reference run%s", n_single,
                                    n_single == 1 ? "" : "s");
        if (unfinished && len < sizeof extra)
            len += (size_t)snprintf(extra + len, sizeof extra - len,
                                    "%s%d unfinished run%s ignored", len ? "; " : "",
                                    unfinished, unfinished == 1 ? "" : "s");
        /* The first note after the unfinished count says why a run was skipped. */
        int first = unfinished ? 1 : 0;
        if (n_keys > n_single && out->n_notes > first && len < sizeof extra)
            snprintf(extra + len, sizeof extra - len, "%s%s", len ? "; " : "",
                     out->notes[first]);
        rc = crl_errf(err, CRL_ENOTFOUND, "%s%s%s%s", what, extra[0] ? " (" : "", extra,
                      extra[0] ? ")" : "");
    }
out:
    crl_store_read_end(store, in_txn);
    free(keys);
    if (rc) crl_report_free(out);
    return rc;
}

void crl_report_free(crl_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_notes; i++) free(r->notes[i]);
    free(r->notes);
    free(r->rows);
    free(r->l2m);
    free(r->csp);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                   */

int crl_report_format_parse(const char *name, crl_report_format *fmt, crl_err *err) {
    if (name && !strcmp(name, "table"))
        *fmt = CRL_REPORT_TABLE;
    else if (name && !strcmp(name, "csv"))
        *fmt = CRL_REPORT_CSV;
    else if (name && !strcmp(name, "json"))
        *fmt = CRL_REPORT_JSON;
    else
        return crl_errf(err, CRL_EINVAL, "unknown format '%s' (table, csv or json)",
                        name ? name : "");
    return CRL_OK;
}

/* ---- table ---- */

enum { COLS = 11 };
static const char *const HEAD[COLS] = {
    "scenario",   "method",           "steps/task", "seeds",  "score",    "performance",
    "forgetting", "forward transfer", "params",     "growth", "wall time"};
static const int RIGHT[COLS] = {0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1};

static void fmt_ci(char *b, size_t cap, crl_ci c, int mark) {
    if (!isfinite(c.mean))
        snprintf(b, cap, mark ? "n/a [%d]" : "n/a", mark);
    else
        snprintf(b, cap, "%.3f [%.3f, %.3f]", c.mean, c.lo, c.hi);
}

static void fmt_params(char *b, size_t cap, double p) {
    if (!isfinite(p))
        snprintf(b, cap, "-");
    else if (p < 1e4)
        snprintf(b, cap, "%.0f", p);
    else if (p < 1e6)
        snprintf(b, cap, "%.1fk", p / 1e3);
    else
        snprintf(b, cap, "%.2fM", p / 1e6);
}

static void fmt_time(char *b, size_t cap, double s) {
    if (!isfinite(s))
        snprintf(b, cap, "-");
    else if (s < 120)
        snprintf(b, cap, "%.0fs", s);
    else if (s < 7200)
        snprintf(b, cap, "%.1fm", s / 60);
    else
        snprintf(b, cap, "%.1fh", s / 3600);
}

/* Control characters (a newline in a scenario name) would break the layout. */
static void clean(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void put_clean(FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put_clean(FILE *f, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    clean(buf);
    fprintf(f, "%s\n", buf);
}

static int format_table(const crl_report *r, FILE *f) {
    int n = r->n_rows;
    char(*cell)[COLS][64] = calloc((size_t)n + 1, sizeof *cell);
    if (!cell) return CRL_ENOMEM;
    int width[COLS];
    for (int c = 0; c < COLS; c++) {
        snprintf(cell[0][c], 64, "%s", HEAD[c]);
    }
    int mark = 0;
    for (int i = 0; i < n; i++) {
        const crl_report_row *w = &r->rows[i];
        char(*c)[64] = cell[i + 1];
        snprintf(c[0], 64, "%s", w->scenario);
        snprintf(c[1], 64, "%s", w->method);
        if (w->steps_per_task < 0)
            snprintf(c[2], 64, "?");
        else
            snprintf(c[2], 64, "%lld", (long long)w->steps_per_task);
        snprintf(c[3], 64, "%d", w->n_seeds);
        if (w->score_note[0])
            snprintf(c[4], 64, "%s [%d]", w->score, ++mark);
        else
            snprintf(c[4], 64, "%s", w->score);
        fmt_ci(c[5], 64, w->performance, 0);
        fmt_ci(c[6], 64, w->forgetting, 0);
        fmt_ci(c[7], 64, w->forward_transfer, w->ft_note[0] ? ++mark : 0);
        fmt_params(c[8], 64, w->params);
        if (isfinite(w->growth))
            snprintf(c[9], 64, "%.2f", w->growth);
        else
            snprintf(c[9], 64, "-");
        fmt_time(c[10], 64, w->wall_time_s);
        for (int k = 0; k < COLS; k++) clean(c[k]);
    }
    for (int c = 0; c < COLS; c++) {
        width[c] = 0;
        for (int i = 0; i <= n; i++) {
            int l = (int)strlen(cell[i][c]);
            if (l > width[c]) width[c] = l;
        }
    }
    for (int i = 0; i <= n; i++) {
        char line[1024];
        size_t len = 0;
        for (int c = 0; c < COLS && len < sizeof line; c++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%s%*s", c ? "  " : "",
                                    RIGHT[c] ? width[c] : -width[c], cell[i][c]);
        while (len > 0 && line[len - 1] == ' ') line[--len] = 0;
        fprintf(f, "%s\n", line);
    }
    free(cell);
    fprintf(f,
            "\nperformance, forgetting, forward transfer: mean over seeds [%.0f%% "
            "bootstrap CI, %d resamples]\n",
            CRL_BOOTSTRAP_LEVEL * 100, CRL_BOOTSTRAP_RESAMPLES);
    mark = 0;
    for (int i = 0; i < n; i++) {
        const crl_report_row *w = &r->rows[i];
        if (w->score_note[0])
            put_clean(f, "[%d] %s %s: %s", ++mark, w->scenario, w->method, w->score_note);
        if (w->ft_note[0])
            put_clean(f, "[%d] %s %s: %s", ++mark, w->scenario, w->method, w->ft_note);
    }
    for (int i = 0; i < r->n_notes; i++) put_clean(f, "note: %s", r->notes[i]);
    return CRL_OK;
}

/* ---- csv ---- */

static void csv_text(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) {
    fputc(',', f);
    if (isfinite(v)) fprintf(f, "%.10g", v);
}

static int format_csv(const crl_report *r, FILE *f) {
    fputs("scenario,method,steps_per_task,n_tasks,seeds,score,performance,"
          "performance_lo,performance_hi,forgetting,forgetting_lo,forgetting_hi,"
          "forward_transfer,forward_transfer_lo,forward_transfer_hi,"
          "forward_transfer_note,score_note,reference_runs,params,growth,wall_time_s\n",
          f);
    for (int i = 0; i < r->n_rows; i++) {
        const crl_report_row *w = &r->rows[i];
        csv_text(f, w->scenario);
        fputc(',', f);
        csv_text(f, w->method);
        fputc(',', f);
        if (w->steps_per_task >= 0) fprintf(f, "%lld", (long long)w->steps_per_task);
        fprintf(f, ",%d,%d,", w->n_tasks, w->n_seeds);
        csv_text(f, w->score);
        const crl_ci *cis[3] = {&w->performance, &w->forgetting, &w->forward_transfer};
        for (int k = 0; k < 3; k++) {
            csv_num(f, cis[k]->mean);
            csv_num(f, cis[k]->lo);
            csv_num(f, cis[k]->hi);
        }
        fputc(',', f);
        csv_text(f, w->ft_note);
        fputc(',', f);
        csv_text(f, w->score_note);
        fprintf(f, ",%d", w->n_ref_runs);
        csv_num(f, w->params);
        csv_num(f, w->growth);
        csv_num(f, w->wall_time_s);
        fputc('\n', f);
    }
    return CRL_OK;
}

/* ---- json, through SQLite's JSON functions (crl_json_doc) ---- */

static crl_json_member json_num(const char *key, double v) {
    return (crl_json_member){.key = key, .type = CRL_JSON_REAL, .num = v};
}

static crl_json_member json_int(const char *key, int64_t v) {
    return (crl_json_member){.key = key, .type = CRL_JSON_INT, .i = v};
}

static crl_json_member json_str_or_null(const char *key, const char *s) {
    return (crl_json_member){
        .key = key, .type = CRL_JSON_TEXT, .text = s && *s ? s : NULL};
}

/* A CI is an object only when its mean is a number. */
static crl_json_member json_ci(const char *key, const crl_ci *c, crl_json_member m[3]) {
    m[0] = json_num("mean", c->mean);
    m[1] = json_num("lo", c->lo);
    m[2] = json_num("hi", c->hi);
    if (!isfinite(c->mean)) return (crl_json_member){.key = key, .type = CRL_JSON_NULL};
    return (crl_json_member){
        .key = key, .type = CRL_JSON_OBJECT, .members = m, .n_members = 3};
}

/* A count stored as a metric (a double): an integer, or null if NaN. */
static crl_json_member json_count(const char *key, double v) {
    if (isnan(v)) return (crl_json_member){.key = key, .type = CRL_JSON_NULL};
    return json_int(key, (int64_t)v);
}

/* "l2m": one object per run with the new routing metrics (absent when no
 * run has them, so that older stores report as before). The per-task
 * accuracies are an object keyed by scenario position. */
static int json_l2m(crl_json_doc *doc, const crl_report *r, crl_err *err) {
    int rc = CRL_OK;
    for (int i = 0; rc == CRL_OK && i < r->n_l2m; i++) {
        const crl_report_l2m *l = &r->l2m[i];
        char keys[CRL_REPORT_L2M_TASKS][16];
        crl_json_member acc[CRL_REPORT_L2M_TASKS];
        for (int t = 0; t < l->n_acc; t++) {
            snprintf(keys[t], sizeof keys[t], "%d", l->acc_pos[t]);
            acc[t] = json_num(keys[t], l->acc[t]);
        }
        crl_json_member m[] = {
            json_int("run_id", l->run_id),
            json_str_or_null("scenario", l->scenario),
            json_str_or_null("method", l->method),
            json_int("seed", (int64_t)l->seed),
            l->n_acc
                ? (crl_json_member){.key = "routing_accuracy",
                                    .type = CRL_JSON_OBJECT,
                                    .members = acc,
                                    .n_members = l->n_acc}
                : (crl_json_member){.key = "routing_accuracy", .type = CRL_JSON_NULL},
            json_num("routing_accuracy_mean", l->acc_mean),
            json_count("modulators_used", l->used),
            json_num("ceiling", l->ceiling),
            json_count("ceiling_queries", l->ceiling_n),
        };
        crl_json_member obj = {.type = CRL_JSON_OBJECT,
                               .members = m,
                               .n_members = (int)(sizeof m / sizeof m[0])};
        rc = crl_json_doc_append(doc, "$.l2m", &obj, err);
    }
    return rc;
}

/* "csp": one object per run decided by the rule of issue 21 (absent when
 * no run was, so that older stores report as before). */
static int json_csp(crl_json_doc *doc, const crl_report *r, crl_err *err) {
    int rc = CRL_OK;
    for (int i = 0; rc == CRL_OK && i < r->n_csp; i++) {
        const crl_report_csp *c = &r->csp[i];
        crl_json_member tasks[CRL_REPORT_CSP_TASKS], t[CRL_REPORT_CSP_TASKS][5];
        char keys[CRL_REPORT_CSP_TASKS][16];
        for (int k = 0; k < c->n_tasks; k++) {
            snprintf(keys[k], sizeof keys[k], "%d", c->pos[k]);
            t[k][0] = json_int("task", c->pos[k]);
            t[k][1] = json_int("anchors", c->anchors[k]);
            t[k][2] = json_int("kept", c->kept[k]);
            t[k][3] = json_str_or_null("criterion", c->criterion[k]);
            t[k][4] = c->check_kept[k] >= 0
                          ? json_int("check_kept", c->check_kept[k])
                          : (crl_json_member){.key = "check_kept", .type = CRL_JSON_NULL};
            tasks[k] = (crl_json_member){
                .key = keys[k], .type = CRL_JSON_OBJECT, .members = t[k], .n_members = 5};
        }
        crl_json_member m[] = {
            json_int("run_id", c->run_id),
            json_str_or_null("scenario", c->scenario),
            json_str_or_null("method", c->method),
            json_int("seed", (int64_t)c->seed),
            (crl_json_member){.key = "decisions",
                              .type = CRL_JSON_OBJECT,
                              .members = tasks,
                              .n_members = c->n_tasks},
            json_int("checked", c->n_checked),
            json_num("decision_accuracy", c->accuracy),
            json_num("decision_s", c->decision_s),
            json_num("decision_share", c->decision_share),
        };
        crl_json_member obj = {.type = CRL_JSON_OBJECT,
                               .members = m,
                               .n_members = (int)(sizeof m / sizeof m[0])};
        rc = crl_json_doc_append(doc, "$.csp", &obj, err);
    }
    return rc;
}

static int format_json(const crl_report *r, FILE *f, crl_err *err) {
    crl_json_doc *doc = NULL;
    /* The "l2m" array only when a run has its metrics (older stores report
     * byte for byte as before). */
    char skel[64];
    snprintf(skel, sizeof skel, "{\"rows\":[],\"notes\":[]%s%s}",
             r->n_l2m > 0 ? ",\"l2m\":[]" : "", r->n_csp > 0 ? ",\"csp\":[]" : "");
    int rc = crl_json_doc_create(skel, &doc, err);
    for (int i = 0; rc == CRL_OK && i < r->n_rows; i++) {
        const crl_report_row *w = &r->rows[i];
        crl_json_member ci[3][3];
        crl_json_member m[] = {
            json_str_or_null("scenario", w->scenario),
            json_str_or_null("method", w->method),
            w->steps_per_task >= 0
                ? json_int("steps_per_task", w->steps_per_task)
                : (crl_json_member){.key = "steps_per_task", .type = CRL_JSON_NULL},
            json_int("n_tasks", w->n_tasks),
            json_int("seeds", w->n_seeds),
            json_str_or_null("score", w->score),
            json_str_or_null("score_note", w->score_note),
            json_ci("performance", &w->performance, ci[0]),
            json_ci("forgetting", &w->forgetting, ci[1]),
            json_ci("forward_transfer", &w->forward_transfer, ci[2]),
            json_str_or_null("forward_transfer_note", w->ft_note),
            json_int("reference_runs", w->n_ref_runs),
            json_num("params", w->params),
            json_num("growth", w->growth),
            json_num("wall_time_s", w->wall_time_s),
        };
        /* scenario, method and score are always text, even when empty. */
        m[0].text = w->scenario;
        m[1].text = w->method;
        m[5].text = w->score;
        crl_json_member row = {.type = CRL_JSON_OBJECT,
                               .members = m,
                               .n_members = (int)(sizeof m / sizeof m[0])};
        rc = crl_json_doc_append(doc, "$.rows", &row, err);
    }
    for (int i = 0; rc == CRL_OK && i < r->n_notes; i++) {
        crl_json_member note = {.type = CRL_JSON_TEXT, .text = r->notes[i]};
        rc = crl_json_doc_append(doc, "$.notes", &note, err);
    }
    if (rc == CRL_OK && r->n_l2m > 0) rc = json_l2m(doc, r, err);
    if (rc == CRL_OK && r->n_csp > 0) rc = json_csp(doc, r, err);
    if (rc == CRL_OK) fprintf(f, "%s\n", crl_json_doc_text(doc));
    crl_json_doc_free(doc);
    if (rc && err && strncmp(err->msg, "report: ", 8)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        crl_errf(err, rc, "report: %s", msg);
    }
    return rc;
}

int crl_report_format_text(const crl_report *r, crl_report_format fmt, char **text,
                           crl_err *err) {
    if (!text) return crl_errf(err, CRL_EINVAL, "report: NULL output");
    *text = NULL;
    if (!r) return crl_errf(err, CRL_EINVAL, "report: NULL report");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return crl_errf(err, CRL_ENOMEM, "report: out of memory");
    int rc;
    switch (fmt) {
    case CRL_REPORT_TABLE:
        rc = format_table(r, f);
        if (rc) crl_errf(err, rc, "report: out of memory");
        break;
    case CRL_REPORT_CSV:
        rc = format_csv(r, f);
        break;
    case CRL_REPORT_JSON:
        rc = format_json(r, f, err);
        break;
    default:
        rc = crl_errf(err, CRL_EINVAL, "report: unknown format %d", (int)fmt);
    }
    if (fclose(f) != 0 && rc == CRL_OK)
        rc = crl_errf(err, CRL_ENOMEM, "report: out of memory");
    if (rc) {
        free(buf);
        return rc;
    }
    *text = buf;
    return CRL_OK;
}
