/* viz: plots of a run store, drawn with cairo (PNG or SVG).
 *
 * Everything comes from the store: the run row, its tasks, its evals and,
 * for the comparison, crl_report_build's Continual World metrics. Reads are
 * the store's typed reads, like the report's. */
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/methods.h"
#include "crl/metrics.h"
#include "crl/report.h"
#include "crl/plot.h"

#define FONT "DejaVu Sans"

int crl_plot_kind_parse(const char *name, crl_plot_kind *kind, crl_err *err) {
    if (name && (!strcmp(name, "curves") || !strcmp(name, "cw")))
        *kind = CRL_PLOT_CURVES;
    else if (name && !strcmp(name, "matrix"))
        *kind = CRL_PLOT_MATRIX;
    else if (name && !strcmp(name, "compare"))
        *kind = CRL_PLOT_COMPARE;
    else if (name && (!strcmp(name, "diagnostics") || !strcmp(name, "diag")))
        *kind = CRL_PLOT_DIAGNOSTICS;
    else
        return crl_errf(err, CRL_EINVAL,
                        "unknown plot kind '%s' (curves, matrix, compare or diagnostics)",
                        name ? name : "");
    return CRL_OK;
}

/* ---- one run's data --------------------------------------------------------- */

typedef struct {
    crl_run_info info;
    int n_tasks;
    char (*name)[64];     /* [n_tasks] */
    int64_t *start, *end; /* [n_tasks] training window; -1 unknown */
    crl_eval_row *rows;
    size_t n_rows, cap;
    int oom; /* collecting the rows ran out of memory */
    int n_steps;
    int64_t *step;   /* [n_steps] distinct evaluation steps, ascending */
    int *train;      /* [n_steps] task trained at that evaluation, -1 unknown */
    double *success; /* [n_tasks * n_steps] NaN = missing */
    double *ret;     /* [n_tasks * n_steps] det_return, else mean_return */
} run_data;

static void run_free(run_data *r) {
    free(r->name);
    free(r->start);
    free(r->end);
    free(r->rows);
    free(r->step);
    free(r->train);
    free(r->success);
    free(r->ret);
    memset(r, 0, sizeof *r);
}

static int collect_row(const crl_eval_row *row, void *ctx) {
    run_data *r = ctx;
    if (r->n_rows == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        crl_eval_row *p = realloc(r->rows, cap * sizeof *p);
        if (!p) return r->oom = 1;
        r->rows = p;
        r->cap = cap;
    }
    r->rows[r->n_rows++] = *row;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int run_load(crl_store *store, int64_t run_id, run_data *r, crl_err *err) {
    memset(r, 0, sizeof *r);
    int rc = crl_store_run_get(store, run_id, &r->info, NULL, err);
    if (rc) return rc;
    crl_task_row *tasks = NULL;
    int n_task_rows = 0;
    if ((rc = crl_store_evals(store, run_id, collect_row, r, err))) goto fail;
    if (r->oom) goto oom;
    if (r->n_rows == 0) {
        rc = crl_errf(err, CRL_ENOTFOUND, "run %lld has no evaluations yet",
                      (long long)run_id);
        goto fail;
    }
    int n = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].eval_task_idx + 1 > n) n = r->rows[i].eval_task_idx + 1;
    /* The tasks table names the positions (and may know more of them). */
    if ((rc = crl_store_tasks(store, run_id, &tasks, &n_task_rows, err))) goto fail;
    if (n_task_rows > 0 && tasks[n_task_rows - 1].idx + 1 > n)
        n = tasks[n_task_rows - 1].idx + 1;
    if (n > 10000) {
        rc = crl_errf(err, CRL_ECORRUPT, "run %lld: %d tasks", (long long)run_id, n);
        goto fail;
    }
    r->n_tasks = n;
    r->name = calloc((size_t)n, sizeof *r->name);
    r->start = malloc((size_t)n * sizeof *r->start);
    r->end = malloc((size_t)n * sizeof *r->end);
    if (!r->name || !r->start || !r->end) goto oom;
    for (int i = 0; i < n; i++) {
        snprintf(r->name[i], sizeof r->name[i], "task %d", i);
        r->start[i] = r->end[i] = -1;
    }
    for (int k = 0; k < n_task_rows; k++) {
        int i = tasks[k].idx;
        if (i < 0 || i >= n) continue;
        /* Cut to the plot's label size. */
        snprintf(r->name[i], sizeof r->name[i], "%.*s", (int)sizeof r->name[i] - 1,
                 tasks[k].name);
        r->start[i] = tasks[k].start_step;
        if (tasks[k].end_step >= 0) r->end[i] = tasks[k].end_step;
    }
    crl_store_tasks_free(tasks);
    tasks = NULL;

    /* Distinct steps, then the score matrices. */
    r->step = malloc(r->n_rows * sizeof *r->step);
    if (!r->step) goto oom;
    for (size_t i = 0; i < r->n_rows; i++) r->step[i] = r->rows[i].step;
    qsort(r->step, r->n_rows, sizeof *r->step, cmp_i64);
    int ns = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        if (ns == 0 || r->step[ns - 1] != r->step[i]) r->step[ns++] = r->step[i];
    r->n_steps = ns;
    size_t cells = (size_t)n * ns;
    r->train = malloc((size_t)ns * sizeof *r->train);
    r->success = malloc(cells * sizeof *r->success);
    r->ret = malloc(cells * sizeof *r->ret);
    if (!r->train || !r->success || !r->ret) goto oom;
    for (int t = 0; t < ns; t++) r->train[t] = -1;
    for (size_t c = 0; c < cells; c++) r->success[c] = r->ret[c] = NAN;
    for (size_t i = 0; i < r->n_rows; i++) {
        const crl_eval_row *e = &r->rows[i];
        const int64_t *hit =
            bsearch(&e->step, r->step, (size_t)ns, sizeof *r->step, cmp_i64);
        if (!hit || e->eval_task_idx < 0) continue;
        int t = (int)(hit - r->step);
        size_t c = (size_t)e->eval_task_idx * ns + t;
        r->train[t] = e->train_task_idx;
        r->success[c] = e->success_rate;
        r->ret[c] = isfinite(e->det_return) ? e->det_return : e->mean_return;
    }
    /* Windows the tasks table does not give: from the evaluations. */
    for (int i = 0; i < n; i++) {
        if (r->start[i] >= 0 && r->end[i] >= 0) continue;
        int first = -1, last = -1;
        for (int t = 0; t < ns; t++)
            if (r->train[t] == i) {
                if (first < 0) first = t;
                last = t;
            }
        if (first < 0) continue;
        if (r->start[i] < 0) r->start[i] = first > 0 ? r->step[first - 1] : 0;
        if (r->end[i] < 0) r->end[i] = r->step[last];
    }
    return CRL_OK;
oom:
    rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
fail:
    crl_store_tasks_free(tasks);
    run_free(r);
    return rc;
}

/* Success when any evaluation succeeded at all, else the return. */
static crl_plot_metric pick_metric(crl_plot_metric want, const run_data *runs, int n) {
    if (want != CRL_PLOT_AUTO) return want;
    for (int k = 0; k < n; k++)
        for (size_t c = 0; c < (size_t)runs[k].n_tasks * runs[k].n_steps; c++)
            if (runs[k].success[c] > 0) return CRL_PLOT_SUCCESS;
    return CRL_PLOT_RETURN;
}

static const double *scores(const run_data *r, crl_plot_metric m) {
    return m == CRL_PLOT_SUCCESS ? r->success : r->ret;
}

/* ---- drawing ----------------------------------------------------------------- */

typedef struct {
    cairo_surface_t *s;
    cairo_t *cr;
    int png;
    double w, h;
    const char *path;
    crl_atomic out; /* the output file: written to a temporary, renamed (base.h) */
    int open;
} canvas;

static cairo_status_t atomic_sink(void *closure, const unsigned char *data,
                                  unsigned int n) {
    return crl_atomic_write(closure, data, n) ? CAIRO_STATUS_WRITE_ERROR
                                              : CAIRO_STATUS_SUCCESS;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static int canvas_open(canvas *c, const char *path, double w, double h, crl_err *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->w = w;
    c->h = h;
    int png = ends_with(path, ".png");
    if (!png && !ends_with(path, ".svg"))
        return crl_errf(err, CRL_EINVAL, "%s: the plot file must end in .png or .svg",
                        path);
    int rc = crl_atomic_open(&c->out, path, err);
    if (rc) return rc;
    c->open = 1;
    if (png) {
        c->png = 1;
        c->s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h);
    } else {
        c->s = cairo_svg_surface_create_for_stream(atomic_sink, &c->out, w, h);
    }
    if (cairo_surface_status(c->s) != CAIRO_STATUS_SUCCESS) {
        cairo_status_t st = cairo_surface_status(c->s);
        cairo_surface_destroy(c->s);
        c->s = NULL;
        int e = c->out.error;
        crl_atomic_abort(&c->out);
        c->open = 0;
        return crl_errf(err, CRL_EIO, "cannot write %s: %s", path,
                        e ? strerror(e) : cairo_status_to_string(st));
    }
    c->cr = cairo_create(c->s);
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_select_font_face(c->cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_NORMAL);
    return CRL_OK;
}

/* Finish the drawing and, when ok, commit the output file; otherwise (or
 * on any failure) the temporary file is removed and nothing is left. */
static int canvas_close(canvas *c, int ok, crl_err *err) {
    int rc = CRL_OK;
    if (!c->s) {
        if (c->open) crl_atomic_abort(&c->out);
        c->open = 0;
        return rc;
    }
    cairo_status_t st = c->cr ? cairo_status(c->cr) : CAIRO_STATUS_SUCCESS;
    cairo_destroy(c->cr);
    if (ok && st != CAIRO_STATUS_SUCCESS)
        rc = crl_errf(err, CRL_EIO, "drawing %s failed: %s", c->path,
                      cairo_status_to_string(st));
    if (ok && !rc && c->png) {
        st = cairo_surface_write_to_png_stream(c->s, atomic_sink, &c->out);
        if (st != CAIRO_STATUS_SUCCESS)
            rc = crl_errf(err, CRL_EIO, "cannot write %s: %s", c->path,
                          c->out.error ? strerror(c->out.error)
                                       : cairo_status_to_string(st));
    }
    cairo_surface_finish(c->s);
    st = cairo_surface_status(c->s);
    if (ok && !rc && st != CAIRO_STATUS_SUCCESS)
        rc = crl_errf(err, CRL_EIO, "cannot write %s: %s", c->path,
                      c->out.error ? strerror(c->out.error) : cairo_status_to_string(st));
    cairo_surface_destroy(c->s);
    c->s = NULL;
    if (ok && !rc)
        rc = crl_atomic_commit(&c->out, err);
    else
        crl_atomic_abort(&c->out);
    c->open = 0;
    return rc;
}

/* Text anchored at (x, y): ax, ay in [0, 1] pick the anchor inside the
 * text's box (0, 0 = top left; 0.5, 0.5 = centre). angle in radians. */
static void text(cairo_t *cr, double x, double y, const char *s, double size, int bold,
                 double ax, double ay, double angle) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &te);
    cairo_font_extents(cr, &fe);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    /* Vertical anchoring on the font's ascent/descent, so labels of one row
     * line up whatever their letters. */
    double h = fe.ascent + fe.descent;
    cairo_move_to(cr, -ax * te.x_advance, -ay * h + fe.ascent);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double text_width(cairo_t *cr, const char *s, double size, int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* A qualitative palette of ten well-separated colours; tasks beyond ten
 * reuse them with a dashed line. */
static const double PALETTE[10][3] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055},
                                      {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
                                      {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                                      {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
                                      {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

static void set_colour(cairo_t *cr, int i, double alpha) {
    const double *c = PALETTE[i % 10];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

static void set_dash(cairo_t *cr, int i) {
    static const double dash[] = {7, 4};
    if ((i / 10) % 2)
        cairo_set_dash(cr, dash, 2, 0);
    else
        cairo_set_dash(cr, NULL, 0, 0);
}

/* Sequential colour map (viridis anchors), v in [0, 1]. */
static void colour_map(double v, double rgb[3]) {
    static const double A[9][3] = {
        {0.267, 0.005, 0.329}, {0.279, 0.175, 0.483}, {0.230, 0.322, 0.546},
        {0.173, 0.449, 0.558}, {0.128, 0.567, 0.551}, {0.153, 0.680, 0.504},
        {0.361, 0.785, 0.388}, {0.667, 0.862, 0.196}, {0.993, 0.906, 0.144}};
    if (!(v >= 0)) v = 0;
    if (v > 1) v = 1;
    double x = v * 8;
    int i = (int)x;
    if (i >= 8) i = 7;
    double f = x - i;
    for (int k = 0; k < 3; k++) rgb[k] = A[i][k] * (1 - f) + A[i + 1][k] * f;
}

/* 1-2-5 tick spacing for about `target` ticks over [lo, hi]. */
static double tick_step(double lo, double hi, int target) {
    double range = hi - lo;
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* Environment steps as 0, 250k, 1M, 1.5M. */
static void fmt_steps(char *buf, size_t cap, double v, double span) {
    if (v == 0)
        snprintf(buf, cap, "0");
    else if (span >= 1e6)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (span >= 1e3)
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%g", v);
}

static void fmt_num(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    if (fabs(v) >= 1e4 || (step >= 1e3 && fabs(v) >= 1e3))
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%g", v);
}

typedef struct {
    double x0, y0, x1, y1; /* plot area, device units (y0 top) */
    double xmin, xmax, ymin, ymax;
} axes;

static double ax_x(const axes *a, double v) {
    return a->x0 + (v - a->xmin) / (a->xmax - a->xmin) * (a->x1 - a->x0);
}
static double ax_y(const axes *a, double v) {
    return a->y1 - (v - a->ymin) / (a->ymax - a->ymin) * (a->y1 - a->y0);
}

/* Frame, grid, ticks and labels of a 2-D plot. steps_x: format the x ticks
 * as environment steps. */
static void draw_axes(cairo_t *cr, const axes *a, const char *xlabel, const char *ylabel,
                      int steps_x, double fs) {
    char buf[32];
    cairo_set_dash(cr, NULL, 0, 0);
    double xs = tick_step(a->xmin, a->xmax, 6), ys = tick_step(a->ymin, a->ymax, 5);
    double tick_w = 0;
    cairo_set_line_width(cr, 1);
    for (double v = ceil(a->ymin / ys - 1e-9) * ys; v <= a->ymax + ys * 1e-9; v += ys) {
        double y = ax_y(a, v);
        cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
        cairo_move_to(cr, a->x0, y);
        cairo_line_to(cr, a->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_move_to(cr, a->x0 - 5, y);
        cairo_line_to(cr, a->x0, y);
        cairo_stroke(cr);
        fmt_num(buf, sizeof buf, v, ys);
        tick_w = fmax(tick_w, text_width(cr, buf, fs, 0));
        text(cr, a->x0 - 8, y, buf, fs, 0, 1, 0.5, 0);
    }
    double span = fmax(fabs(a->xmin), fabs(a->xmax));
    for (double v = ceil(a->xmin / xs - 1e-9) * xs; v <= a->xmax + xs * 1e-9; v += xs) {
        double x = ax_x(a, v);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_move_to(cr, x, a->y1);
        cairo_line_to(cr, x, a->y1 + 5);
        cairo_stroke(cr);
        if (steps_x)
            fmt_steps(buf, sizeof buf, v, span);
        else
            fmt_num(buf, sizeof buf, v, xs);
        text(cr, x, a->y1 + 8, buf, fs, 0, 0.5, 0, 0);
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
    cairo_stroke(cr);
    if (xlabel)
        text(cr, (a->x0 + a->x1) / 2, a->y1 + 12 + 1.3 * fs, xlabel, fs * 1.1, 0, 0.5, 0,
             0);
    if (ylabel)
        text(cr, a->x0 - 14 - tick_w - 0.7 * fs, (a->y0 + a->y1) / 2, ylabel, fs * 1.1, 0,
             0.5, 0.5, -M_PI / 2);
}

/* Draw s word-wrapped into lines of at most width, from (x, y) downwards;
 * at most max_lines (the last one cut with "..."). Returns the height used. */
static double wrapped(cairo_t *cr, double x, double y, double width, const char *s,
                      double fs, int max_lines) {
    char line[512];
    const char *p = s;
    int lines = 0;
    while (*p && lines < max_lines) {
        size_t best = 0, k = 0;
        /* Longest prefix ending at a space (or the end) that fits. */
        for (;;) {
            while (p[k] && p[k] != ' ') k++;
            if (k >= sizeof line) break;
            memcpy(line, p, k);
            line[k] = '\0';
            if (best && text_width(cr, line, fs, 0) > width) break;
            best = k;
            if (!p[k]) break;
            k++;
        }
        if (best == 0) best = strlen(p) < sizeof line - 1 ? strlen(p) : sizeof line - 1;
        memcpy(line, p, best);
        line[best] = '\0';
        if (lines == max_lines - 1 && p[best]) {
            size_t n = strlen(line);
            if (n > 3) memcpy(line + n - 3, "...", 4);
        }
        text(cr, x, y + lines * fs * 1.3, line, fs, 0, 0, 0, 0);
        lines++;
        p += best;
        while (*p == ' ') p++;
    }
    return lines * fs * 1.3;
}

static void clip_axes(cairo_t *cr, const axes *a) {
    cairo_save(cr);
    cairo_rectangle(cr, a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
    cairo_clip(cr);
}

static const char *metric_label(crl_plot_metric m) {
    return m == CRL_PLOT_SUCCESS ? "success rate" : "return";
}

/* Range of finite values; lo = hi = 0 when there are none. */
static void finite_range(const double *x, size_t n, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            if (x[i] < *lo) *lo = x[i];
            if (x[i] > *hi) *hi = x[i];
        }
    if (*lo > *hi) *lo = *hi = 0;
}

/* y range of a metric: [0, 1] for success, padded data range for returns. */
static void y_range(crl_plot_metric m, double lo, double hi, double *ymin, double *ymax) {
    if (m == CRL_PLOT_SUCCESS) { /* a little headroom: lines at 0 and 1 stay whole */
        *ymin = -0.02;
        *ymax = 1.02;
        return;
    }
    if (hi - lo < 1e-9) {
        lo -= 1;
        hi += 1;
    }
    double pad = 0.05 * (hi - lo);
    double s = tick_step(lo - pad, hi + pad, 5);
    *ymin = floor((lo - pad) / s) * s;
    *ymax = ceil((hi + pad) / s) * s;
}

static void title_lines(cairo_t *cr, double w, const char *title, const char *sub,
                        double fs) {
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    text(cr, w / 2, 14, title, fs * 1.35, 1, 0.5, 0, 0);
    if (sub) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        text(cr, w / 2, 16 + fs * 1.8, sub, fs * 0.95, 0, 0.5, 0, 0);
    }
}

static void run_title(const run_data *r, const crl_plot_opts *o, char *buf, size_t cap) {
    if (o->title)
        snprintf(buf, cap, "%s", o->title);
    else
        snprintf(buf, cap, "Run %lld: %s on %s (seed %llu, %s)", (long long)r->info.id,
                 r->info.method, r->info.scenario, (unsigned long long)r->info.seed,
                 r->info.status);
}

/* Task label "2 push-wall": the 0-based scenario position, as everywhere in crl
 * (docs/cli.md). */
static void task_label(const run_data *r, int i, char *buf, size_t cap) {
    snprintf(buf, cap, "%d %s", i, r->name[i]);
}

/* ---- CURVES: the Continual World figure ----------------------------------- */

static int plot_curves(const run_data *r, crl_plot_metric m, const crl_plot_opts *o,
                       canvas *c) {
    cairo_t *cr = c->cr;
    double fs = fmax(10, fmin(c->w, c->h * 1.8) / 80);
    char title[256], sub[256], buf[96];
    run_title(r, o, title, sizeof title);
    snprintf(sub, sizeof sub,
             "%s of every task during training; shaded: the task being trained",
             m == CRL_PLOT_SUCCESS ? "success rate (stochastic evaluation episodes)"
                                   : "evaluation return");
    title_lines(cr, c->w, title, sub, fs);

    /* Legend width decides the plot area. */
    double lw = 0;
    for (int i = 0; i < r->n_tasks; i++) {
        task_label(r, i, buf, sizeof buf);
        lw = fmax(lw, text_width(cr, buf, fs, 0));
    }
    axes a;
    a.x0 = 30 + 5.5 * fs;
    a.x1 = c->w - (lw + 40 + 2.5 * fs);
    a.y0 = 30 + 4.6 * fs;
    a.y1 = c->h - (24 + 3.2 * fs);
    a.xmin = 0;
    int64_t last = r->step[r->n_steps - 1];
    for (int i = 0; i < r->n_tasks; i++)
        if (r->end[i] > last) last = r->end[i];
    a.xmax = last > 0 ? (double)last : 1;
    const double *s = scores(r, m);
    double lo, hi;
    finite_range(s, (size_t)r->n_tasks * r->n_steps, &lo, &hi);
    y_range(m, lo, hi, &a.ymin, &a.ymax);

    /* Training windows: a tinted band in the plot, a numbered strip above. */
    double strip = 1.5 * fs;
    for (int i = 0; i < r->n_tasks; i++) {
        if (r->start[i] < 0 || r->end[i] <= r->start[i]) continue;
        double xa = ax_x(&a, (double)r->start[i]), xb = ax_x(&a, (double)r->end[i]);
        set_colour(cr, i, 0.07);
        cairo_rectangle(cr, xa, a.y0, xb - xa, a.y1 - a.y0);
        cairo_fill(cr);
        set_colour(cr, i, 0.85);
        cairo_rectangle(cr, xa, a.y0 - strip - 2, xb - xa, strip);
        cairo_fill(cr);
        snprintf(buf, sizeof buf, "%d", i);
        if (xb - xa > text_width(cr, buf, fs * 0.85, 1) + 4) {
            cairo_set_source_rgb(cr, 1, 1, 1);
            text(cr, (xa + xb) / 2, a.y0 - strip / 2 - 2, buf, fs * 0.85, 1, 0.5, 0.5, 0);
        }
    }
    draw_axes(cr, &a, "environment steps", metric_label(m), 1, fs);
    /* Task boundaries. */
    static const double dash[] = {5, 4};
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, dash, 2, 0);
    for (int i = 0; i < r->n_tasks; i++)
        if (r->start[i] > 0) {
            double x = ax_x(&a, (double)r->start[i]);
            cairo_move_to(cr, x, a.y0);
            cairo_line_to(cr, x, a.y1);
            cairo_stroke(cr);
        }
    cairo_set_dash(cr, NULL, 0, 0);

    clip_axes(cr, &a);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int i = 0; i < r->n_tasks; i++) {
        const double *row = s + (size_t)i * r->n_steps;
        set_colour(cr, i, 1);
        set_dash(cr, i);
        cairo_set_line_width(cr, 2);
        int pen = 0;
        for (int t = 0; t < r->n_steps; t++) {
            if (!isfinite(row[t])) {
                pen = 0;
                continue;
            }
            double x = ax_x(&a, (double)r->step[t]), y = ax_y(&a, row[t]);
            if (pen)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (r->n_steps <= 60)
            for (int t = 0; t < r->n_steps; t++)
                if (isfinite(row[t])) {
                    cairo_arc(cr, ax_x(&a, (double)r->step[t]), ax_y(&a, row[t]), 2.6, 0,
                              2 * M_PI);
                    cairo_fill(cr);
                }
    }
    cairo_restore(cr);

    /* Legend. */
    double lx = a.x1 + 1.6 * fs, ly = a.y0;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, lx, ly, "task", fs, 1, 0, 0, 0);
    for (int i = 0; i < r->n_tasks; i++) {
        double y = ly + (i + 1.5) * fs * 1.45;
        set_colour(cr, i, 1);
        set_dash(cr, i);
        cairo_set_line_width(cr, 2.5);
        cairo_move_to(cr, lx, y);
        cairo_line_to(cr, lx + 1.8 * fs, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        task_label(r, i, buf, sizeof buf);
        text(cr, lx + 2.3 * fs, y, buf, fs, 0, 0, 0.5, 0);
    }
    return CRL_OK;
}

/* ---- MATRIX: task x evaluation heatmap --------------------------------------- */

static int plot_matrix(const run_data *r, crl_plot_metric m, const crl_plot_opts *o,
                       canvas *c) {
    cairo_t *cr = c->cr;
    double fs = fmax(10, fmin(c->w / 80, 15));
    char title[256], sub[256], buf[96];
    run_title(r, o, title, sizeof title);
    snprintf(sub, sizeof sub, "%s of each task (rows) at each evaluation (columns)",
             m == CRL_PLOT_SUCCESS ? "success rate" : "evaluation return");
    title_lines(cr, c->w, title, sub, fs);
    const double *s = scores(r, m);
    double lo, hi;
    finite_range(s, (size_t)r->n_tasks * r->n_steps, &lo, &hi);
    if (m == CRL_PLOT_SUCCESS) {
        lo = 0;
        hi = 1;
    } else if (hi - lo < 1e-9) {
        hi = lo + 1;
    }
    double lw = 0;
    for (int i = 0; i < r->n_tasks; i++) {
        task_label(r, i, buf, sizeof buf);
        lw = fmax(lw, text_width(cr, buf, fs, 0));
    }
    axes a;
    a.x0 = 20 + lw + 10;
    a.x1 = c->w - (40 + 7 * fs);
    a.y0 = 30 + 5.2 * fs;
    a.y1 = c->h - (24 + 3.2 * fs);
    double cw = (a.x1 - a.x0) / r->n_steps, ch = (a.y1 - a.y0) / r->n_tasks;
    for (int i = 0; i < r->n_tasks; i++)
        for (int t = 0; t < r->n_steps; t++) {
            double v = s[(size_t)i * r->n_steps + t];
            double x = a.x0 + t * cw, y = a.y0 + i * ch;
            if (isfinite(v)) {
                double rgb[3];
                colour_map((v - lo) / (hi - lo), rgb);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            } else {
                cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
            }
            /* Whole-pixel cells without antialiasing: no seams between them. */
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
            cairo_rectangle(cr, floor(x), floor(y), ceil(x + cw) - floor(x),
                            ceil(y + ch) - floor(y));
            cairo_fill(cr);
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
            /* Values in the cells when they fit. */
            if (isfinite(v)) {
                snprintf(buf, sizeof buf, m == CRL_PLOT_SUCCESS ? "%.1f" : "%.0f", v);
                double tf = fmin(fs * 0.8, ch * 0.45);
                if (text_width(cr, buf, tf, 0) + 4 < cw && tf >= 7) {
                    double lum = (v - lo) / (hi - lo);
                    cairo_set_source_rgb(cr, lum > 0.6 ? 0 : 1, lum > 0.6 ? 0 : 1,
                                         lum > 0.6 ? 0 : 1);
                    text(cr, x + cw / 2, y + ch / 2, buf, tf, 0, 0.5, 0.5, 0);
                }
            }
        }
    /* Where the trained task changes: a white rule, the new task's number above. */
    double strip = 1.5 * fs;
    int t0 = 0;
    for (int t = 1; t <= r->n_steps; t++) {
        if (t < r->n_steps && r->train[t] == r->train[t0]) continue;
        double xa = a.x0 + t0 * cw, xb = a.x0 + t * cw;
        int k = r->train[t0];
        if (k >= 0) {
            set_colour(cr, k, 0.85);
            cairo_rectangle(cr, xa, a.y0 - strip - 2, xb - xa, strip);
            cairo_fill(cr);
            snprintf(buf, sizeof buf, "%d", k);
            if (xb - xa > text_width(cr, buf, fs * 0.85, 1) + 4) {
                cairo_set_source_rgb(cr, 1, 1, 1);
                text(cr, (xa + xb) / 2, a.y0 - strip / 2 - 2, buf, fs * 0.85, 1, 0.5, 0.5,
                     0);
            }
        }
        if (t < r->n_steps) {
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_set_line_width(cr, 2);
            cairo_move_to(cr, xb, a.y0);
            cairo_line_to(cr, xb, a.y1);
            cairo_stroke(cr);
        }
        t0 = t;
    }
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    text(cr, a.x0, a.y0 - strip - 6, "trained task", fs * 0.85, 0, 0, 1, 0);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
    cairo_stroke(cr);
    /* Row labels. */
    for (int i = 0; i < r->n_tasks; i++) {
        task_label(r, i, buf, sizeof buf);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, a.x0 - 8, a.y0 + (i + 0.5) * ch, buf, fmin(fs, ch * 0.8), 0, 1, 0.5, 0);
    }
    /* Column ticks at round step values (few columns: every column), placed
     * by interpolating between the columns whose steps bracket them. */
    double span = (double)r->step[r->n_steps - 1];
    if (r->n_steps <= 12) {
        for (int t = 0; t < r->n_steps; t++) {
            double x = a.x0 + (t + 0.5) * cw;
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            cairo_set_line_width(cr, 1);
            cairo_move_to(cr, x, a.y1);
            cairo_line_to(cr, x, a.y1 + 5);
            cairo_stroke(cr);
            fmt_steps(buf, sizeof buf, (double)r->step[t], span);
            text(cr, x, a.y1 + 8, buf, fs, 0, 0.5, 0, 0);
        }
    } else {
        double s0 = (double)r->step[0], ts = tick_step(s0, span, 7);
        for (double v = ceil(s0 / ts - 1e-9) * ts; v <= span + ts * 1e-9; v += ts) {
            int t = 0;
            while (t + 1 < r->n_steps && (double)r->step[t + 1] <= v) t++;
            double col = t;
            if (t + 1 < r->n_steps)
                col += (v - (double)r->step[t]) / (double)(r->step[t + 1] - r->step[t]);
            double x = a.x0 + (col + 0.5) * cw;
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            cairo_set_line_width(cr, 1);
            cairo_move_to(cr, x, a.y1);
            cairo_line_to(cr, x, a.y1 + 5);
            cairo_stroke(cr);
            fmt_steps(buf, sizeof buf, v, span);
            text(cr, x, a.y1 + 8, buf, fs, 0, 0.5, 0, 0);
        }
    }
    text(cr, (a.x0 + a.x1) / 2, a.y1 + 12 + 1.3 * fs, "evaluation (environment steps)",
         fs * 1.1, 0, 0.5, 0, 0);
    /* Colour bar. */
    double bx = a.x1 + 1.5 * fs, bw = 1.2 * fs;
    for (int k = 0; k < 100; k++) {
        double rgb[3];
        colour_map(k / 99.0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        double y = a.y1 - (k + 1) * (a.y1 - a.y0) / 100;
        cairo_rectangle(cr, bx, y, bw, (a.y1 - a.y0) / 100 + 0.6);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_rectangle(cr, bx, a.y0, bw, a.y1 - a.y0);
    cairo_stroke(cr);
    double ts = tick_step(lo, hi, 5), tw = 0;
    for (double v = ceil(lo / ts - 1e-9) * ts; v <= hi + ts * 1e-9; v += ts) {
        double y = a.y1 - (v - lo) / (hi - lo) * (a.y1 - a.y0);
        cairo_move_to(cr, bx + bw, y);
        cairo_line_to(cr, bx + bw + 4, y);
        cairo_stroke(cr);
        fmt_num(buf, sizeof buf, v, ts);
        tw = fmax(tw, text_width(cr, buf, fs * 0.9, 0));
        text(cr, bx + bw + 6, y, buf, fs * 0.9, 0, 0, 0.5, 0);
    }
    text(cr, bx + bw + 10 + tw + 0.2 * fs, (a.y0 + a.y1) / 2, metric_label(m), fs * 0.9,
         0, 0.5, 0, -M_PI / 2);
    return CRL_OK;
}

/* ---- COMPARE: methods of a scenario ----------------------------------------- */

typedef struct {
    char label[64]; /* method, with the budget when a method has several */
    char method[32];
    int64_t spt;
    int n_runs;
    int64_t *run_ids;
} group;

typedef struct {
    const char *scenario;
    group *g;
    int n, cap;
    int unfinished;
    int fail;
} group_ctx;

static int collect_run(const crl_run_info *info, void *ctx) {
    group_ctx *gc = ctx;
    if (strcmp(info->scenario, gc->scenario) ||
        !strcmp(info->method, CRL_REPORT_REF_METHOD))
        return 0;
    if (strcmp(info->status, "finished")) {
        gc->unfinished++;
        return 0;
    }
    int k = 0;
    while (k < gc->n && strcmp(gc->g[k].method, info->method)) k++;
    if (k == gc->n) {
        if (gc->n == gc->cap) {
            int cap = gc->cap ? 2 * gc->cap : 8;
            group *p = realloc(gc->g, (size_t)cap * sizeof *p);
            if (!p) return gc->fail = 1;
            gc->g = p;
            gc->cap = cap;
        }
        memset(&gc->g[k], 0, sizeof gc->g[k]);
        snprintf(gc->g[k].method, sizeof gc->g[k].method, "%s", info->method);
        snprintf(gc->g[k].label, sizeof gc->g[k].label, "%s", info->method);
        gc->n++;
    }
    group *g = &gc->g[k];
    int64_t *p = realloc(g->run_ids, (size_t)(g->n_runs + 1) * sizeof *p);
    if (!p) return gc->fail = 1;
    g->run_ids = p;
    g->run_ids[g->n_runs++] = info->id;
    return 0;
}

/* Methods in the report's order (the registry's, then by name). */
static int method_rank(const char *m) {
    int r = crl_method_rank(m);
    return r >= 0 ? r : 1000;
}
static int cmp_group(const void *a, const void *b) {
    const group *x = a, *y = b;
    int rx = method_rank(x->method), ry = method_rank(y->method);
    if (rx != ry) return rx - ry;
    return strcmp(x->method, y->method);
}

typedef struct {
    int n;
    int64_t *step;
    double *mean, *lo, *hi;
} band;

/* Mean over seeds, with the 90% bootstrap CI, of each run's mean-over-tasks
 * score, at every step any run was evaluated. */
static int method_band(run_data *runs, int n_runs, crl_plot_metric m, band *b,
                       crl_err *err) {
    memset(b, 0, sizeof *b);
    size_t total = 0;
    for (int k = 0; k < n_runs; k++) total += (size_t)runs[k].n_steps;
    b->step = malloc(total * sizeof *b->step);
    b->mean = malloc(total * sizeof *b->mean);
    b->lo = malloc(total * sizeof *b->lo);
    b->hi = malloc(total * sizeof *b->hi);
    double *x = malloc((size_t)n_runs * sizeof *x);
    int rc = CRL_OK;
    if (!b->step || !b->mean || !b->lo || !b->hi || !x) {
        rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
        goto out;
    }
    size_t ns = 0;
    for (int k = 0; k < n_runs; k++)
        for (int t = 0; t < runs[k].n_steps; t++) b->step[ns++] = runs[k].step[t];
    qsort(b->step, ns, sizeof *b->step, cmp_i64);
    int n = 0;
    for (size_t i = 0; i < ns; i++)
        if (n == 0 || b->step[n - 1] != b->step[i]) b->step[n++] = b->step[i];
    crl_rng rng;
    crl_rng_seed(&rng, CRL_REPORT_BOOT_SEED);
    int out_n = 0;
    for (int i = 0; i < n; i++) {
        int nx = 0;
        for (int k = 0; k < n_runs; k++) {
            const run_data *r = &runs[k];
            const int64_t *hit = bsearch(&b->step[i], r->step, (size_t)r->n_steps,
                                         sizeof *r->step, cmp_i64);
            if (!hit) continue;
            int t = (int)(hit - r->step);
            const double *s = scores(r, m);
            double sum = 0;
            int cnt = 0;
            for (int j = 0; j < r->n_tasks; j++) {
                double v = s[(size_t)j * r->n_steps + t];
                if (isfinite(v)) {
                    sum += v;
                    cnt++;
                }
            }
            if (cnt) x[nx++] = sum / cnt;
        }
        if (!nx) continue;
        crl_ci ci;
        if ((rc = crl_metric_bootstrap_ci(x, nx, CRL_BOOTSTRAP_RESAMPLES,
                                          CRL_BOOTSTRAP_LEVEL, &rng, &ci, err)))
            goto out;
        b->step[out_n] = b->step[i];
        b->mean[out_n] = ci.mean;
        b->lo[out_n] = ci.lo;
        b->hi[out_n] = ci.hi;
        out_n++;
    }
    b->n = out_n;
out:
    free(x);
    return rc;
}

static void band_free(band *b) {
    free(b->step);
    free(b->mean);
    free(b->lo);
    free(b->hi);
    memset(b, 0, sizeof *b);
}

/* One small bar panel of a report metric: a bar per method with its CI. */
static void bar_panel(cairo_t *cr, const axes *box, const char *name,
                      const crl_report *rep, const group *g, int ng, int which,
                      double fs) {
    /* Values of the methods in our order (NaN where the report has none). */
    double mean[64], lo[64], hi[64];
    int n = ng < 64 ? ng : 64;
    double vmin = 0, vmax = 0;
    int any = 0;
    for (int k = 0; k < n; k++) {
        mean[k] = lo[k] = hi[k] = NAN;
        for (int j = 0; rep && j < rep->n_rows; j++) {
            const crl_report_row *row = &rep->rows[j];
            if (strcmp(row->method, g[k].method)) continue;
            const crl_ci *ci = which == 0   ? &row->performance
                               : which == 1 ? &row->forgetting
                                            : &row->forward_transfer;
            mean[k] = ci->mean;
            lo[k] = ci->lo;
            hi[k] = ci->hi;
        }
        if (isfinite(mean[k])) {
            any = 1;
            vmin = fmin(vmin, fmin(mean[k], isfinite(lo[k]) ? lo[k] : mean[k]));
            vmax = fmax(vmax, fmax(mean[k], isfinite(hi[k]) ? hi[k] : mean[k]));
        }
    }
    axes a = *box;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, (a.x0 + a.x1) / 2, a.y0 - 6, name, fs, 1, 0.5, 1, 0);
    if (!any) {
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_set_line_width(cr, 1.2);
        cairo_rectangle(cr, a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        text(cr, (a.x0 + a.x1) / 2, (a.y0 + a.y1) / 2, "not available", fs * 0.9, 0, 0.5,
             0.5, 0);
        return;
    }
    /* Room above (and below) the bars for their value labels; all-zero
     * values get a unit range rather than a microscopic one. */
    double span = vmax - vmin, pad = 0.14 * span;
    a.ymin = vmin < 0 ? vmin - pad : 0;
    a.ymax = vmax > 0 ? vmax + pad : 0;
    if (span < 1e-9) { /* all zero */
        a.ymin = 0;
        a.ymax = 1;
    }
    double s = tick_step(a.ymin, a.ymax, 4);
    a.xmin = 0;
    a.xmax = n;
    /* y grid and ticks only (x is categorical). */
    char buf[32];
    cairo_set_line_width(cr, 1);
    for (double v = ceil(a.ymin / s - 1e-9) * s; v <= a.ymax + s * 1e-9; v += s) {
        double y = ax_y(&a, v);
        cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
        cairo_move_to(cr, a.x0, y);
        cairo_line_to(cr, a.x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        fmt_num(buf, sizeof buf, v, s);
        text(cr, a.x0 - 6, y, buf, fs * 0.9, 0, 1, 0.5, 0);
    }
    if (a.ymin < 0) {
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_move_to(cr, a.x0, ax_y(&a, 0));
        cairo_line_to(cr, a.x1, ax_y(&a, 0));
        cairo_stroke(cr);
    }
    double slot = (a.x1 - a.x0) / n;
    for (int k = 0; k < n; k++) {
        double xc = a.x0 + (k + 0.5) * slot, bw = slot * 0.6;
        if (isfinite(mean[k])) {
            double y0 = ax_y(&a, 0), y1 = ax_y(&a, mean[k]);
            set_colour(cr, k, 0.85);
            cairo_rectangle(cr, xc - bw / 2, fmin(y0, y1), bw, fabs(y1 - y0));
            cairo_fill(cr);
            /* The value, beyond the CI whisker. */
            double tip = mean[k] >= 0 ? fmax(mean[k], isfinite(hi[k]) ? hi[k] : mean[k])
                                      : fmin(mean[k], isfinite(lo[k]) ? lo[k] : mean[k]);
            char val[32];
            snprintf(val, sizeof val, fabs(mean[k]) >= 100 ? "%.0f" : "%.2f", mean[k]);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text(cr, xc, ax_y(&a, tip) + (mean[k] >= 0 ? -3 : 3), val, fs * 0.8, 0, 0.5,
                 mean[k] >= 0 ? 1 : 0, 0);
            if (isfinite(lo[k]) && isfinite(hi[k]) && hi[k] > lo[k]) {
                cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                cairo_set_line_width(cr, 1.4);
                double ya = ax_y(&a, lo[k]), yb = ax_y(&a, hi[k]);
                cairo_move_to(cr, xc, ya);
                cairo_line_to(cr, xc, yb);
                cairo_move_to(cr, xc - bw / 4, ya);
                cairo_line_to(cr, xc + bw / 4, ya);
                cairo_move_to(cr, xc - bw / 4, yb);
                cairo_line_to(cr, xc + bw / 4, yb);
                cairo_stroke(cr);
            }
        } else {
            cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
            text(cr, xc, ax_y(&a, 0) - 4, "n/a", fs * 0.75, 0, 0.5, 1, 0);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        /* Method names: smaller when they crowd, slanted when still too wide. */
        double lf = fs * 0.85;
        while (lf > fs * 0.72 && text_width(cr, g[k].label, lf, 0) > slot * 0.95)
            lf -= 0.5;
        if (text_width(cr, g[k].label, lf, 0) <= slot * 0.95)
            text(cr, xc, a.y1 + 6, g[k].label, lf, 0, 0.5, 0, 0);
        else
            text(cr, xc + 2, a.y1 + 4, g[k].label, lf, 0, 1, 0, -M_PI / 6);
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
    cairo_stroke(cr);
}

static int plot_compare(crl_store *store, const crl_plot_opts *o, canvas *c,
                        crl_err *err) {
    group_ctx gc = {o->scenario, NULL, 0, 0, 0, 0};
    int rc = crl_store_runs(store, collect_run, &gc, err);
    if (!rc && gc.fail) rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
    if (!rc && gc.n == 0)
        rc = crl_errf(err, CRL_ENOTFOUND,
                      "no finished runs of scenario %s to compare (%d unfinished)",
                      o->scenario, gc.unfinished);
    run_data **runs = NULL;
    band *bands = NULL;
    crl_report rep = {0};
    int have_rep = 0;
    char rep_note[512] = "";
    if (rc) goto out;
    qsort(gc.g, (size_t)gc.n, sizeof *gc.g, cmp_group);
    runs = calloc((size_t)gc.n, sizeof *runs);
    bands = calloc((size_t)gc.n, sizeof *bands);
    if (!runs || !bands) {
        rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
        goto out;
    }
    for (int k = 0; !rc && k < gc.n; k++) {
        runs[k] = calloc((size_t)gc.g[k].n_runs, sizeof **runs);
        if (!runs[k]) rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
        for (int j = 0; !rc && j < gc.g[k].n_runs; j++)
            rc = run_load(store, gc.g[k].run_ids[j], &runs[k][j], err);
    }
    if (rc) goto out;
    crl_plot_metric m = o->metric;
    if (m == CRL_PLOT_AUTO) {
        m = CRL_PLOT_RETURN;
        for (int k = 0; k < gc.n; k++)
            if (pick_metric(CRL_PLOT_AUTO, runs[k], gc.g[k].n_runs) == CRL_PLOT_SUCCESS)
                m = CRL_PLOT_SUCCESS;
    }
    for (int k = 0; !rc && k < gc.n; k++)
        rc = method_band(runs[k], gc.g[k].n_runs, m, &bands[k], err);
    if (rc) goto out;
    crl_err rerr = {0};
    if (crl_report_build(store, o->scenario, &rep, &rerr) == CRL_OK)
        have_rep = 1;
    else
        snprintf(rep_note, sizeof rep_note, "%s", rerr.msg);

    cairo_t *cr = c->cr;
    double fs = fmax(10, fmin(c->w / 95, c->h / 40));
    char title[256], sub[640], buf[128];
    if (o->title)
        snprintf(title, sizeof title, "%s", o->title);
    else
        snprintf(title, sizeof title, "Methods on %s", o->scenario);
    int seeds_min = 1 << 30, seeds_max = 0;
    for (int k = 0; k < gc.n; k++) {
        if (gc.g[k].n_runs < seeds_min) seeds_min = gc.g[k].n_runs;
        if (gc.g[k].n_runs > seeds_max) seeds_max = gc.g[k].n_runs;
    }
    if (seeds_min == seeds_max)
        snprintf(buf, sizeof buf, "%d seed%s", seeds_min, seeds_min == 1 ? "" : "s");
    else
        snprintf(buf, sizeof buf, "%d-%d seeds", seeds_min, seeds_max);
    snprintf(sub, sizeof sub,
             "mean over seeds (%s) with 90%% bootstrap CI; finished runs only", buf);
    title_lines(cr, c->w, title, sub, fs);

    /* Left: average score over tasks against steps. */
    /* Without Continual World metrics the curves take the whole width. */
    axes a;
    a.x0 = 30 + 5.5 * fs;
    a.x1 = have_rep ? c->w * 0.47 : c->w - 30;
    a.y0 = 30 + 5 * fs;
    a.y1 = c->h - (30 + 6 * fs);
    a.xmin = 0;
    a.xmax = 1;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < gc.n; k++)
        for (int i = 0; i < bands[k].n; i++) {
            a.xmax = fmax(a.xmax, (double)bands[k].step[i]);
            lo = fmin(lo, bands[k].lo[i]);
            hi = fmax(hi, bands[k].hi[i]);
        }
    if (lo > hi) lo = hi = 0;
    y_range(m, lo, hi, &a.ymin, &a.ymax);
    snprintf(buf, sizeof buf, "mean %s over tasks", metric_label(m));
    draw_axes(cr, &a, "environment steps", buf, 1, fs);
    /* Task boundaries of the first run (runs of a scenario share them). */
    static const double dash[] = {5, 4};
    const run_data *r0 = &runs[0][0];
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, dash, 2, 0);
    for (int i = 0; i < r0->n_tasks; i++)
        if (r0->start[i] > 0 && r0->start[i] < a.xmax) {
            cairo_move_to(cr, ax_x(&a, (double)r0->start[i]), a.y0);
            cairo_line_to(cr, ax_x(&a, (double)r0->start[i]), a.y1);
            cairo_stroke(cr);
        }
    cairo_set_dash(cr, NULL, 0, 0);
    clip_axes(cr, &a);
    for (int k = 0; k < gc.n; k++) {
        const band *b = &bands[k];
        if (b->n == 0) continue;
        set_colour(cr, k, 0.18);
        for (int i = 0; i < b->n; i++) {
            double x = ax_x(&a, (double)b->step[i]), y = ax_y(&a, b->hi[i]);
            if (i)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
        }
        for (int i = b->n - 1; i >= 0; i--)
            cairo_line_to(cr, ax_x(&a, (double)b->step[i]), ax_y(&a, b->lo[i]));
        cairo_close_path(cr);
        cairo_fill(cr);
        set_colour(cr, k, 1);
        cairo_set_line_width(cr, 2.2);
        for (int i = 0; i < b->n; i++) {
            double x = ax_x(&a, (double)b->step[i]), y = ax_y(&a, b->mean[i]);
            if (i)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    /* Legend inside the top-left corner of the curve panel. */
    double lwid = 0;
    for (int k = 0; k < gc.n; k++) {
        snprintf(buf, sizeof buf, "%s (n=%d)", gc.g[k].label, gc.g[k].n_runs);
        lwid = fmax(lwid, text_width(cr, buf, fs * 0.9, 0));
    }
    double lx = a.x0 + 10, ly = a.y0 + 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, lx - 4, ly - 4, lwid + 2.6 * fs + 8, gc.n * 1.4 * fs + 8);
    cairo_fill(cr);
    for (int k = 0; k < gc.n; k++) {
        double y = ly + (k + 0.5) * 1.4 * fs;
        set_colour(cr, k, 1);
        cairo_set_line_width(cr, 3);
        cairo_move_to(cr, lx, y);
        cairo_line_to(cr, lx + 1.8 * fs, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        snprintf(buf, sizeof buf, "%s (n=%d)", gc.g[k].label, gc.g[k].n_runs);
        text(cr, lx + 2.3 * fs, y, buf, fs * 0.9, 0, 0, 0.5, 0);
    }

    /* Right: the report's metrics, and what the report says about them. */
    char note[1200] = "";
    if (have_rep) {
        static const char *names[3] = {"performance", "forgetting", "forward transfer"};
        double px0 = a.x1 + 7 * fs, px1 = c->w - 20, gap = 5.5 * fs;
        double pw = (px1 - px0 - 2 * gap) / 3;
        for (int w = 0; w < 3; w++) {
            axes box = a;
            box.x0 = px0 + w * (pw + gap);
            box.x1 = box.x0 + pw;
            bar_panel(cr, &box, names[w], &rep, gc.g, gc.n, w, fs);
        }
        for (int j = 0; j < rep.n_rows && j < 1; j++) {
            const crl_report_row *row = &rep.rows[j];
            size_t n = strlen(note);
            if (strcmp(row->score, "success"))
                snprintf(note + n, sizeof note - n, "score: %s%s%s. ", row->score,
                         row->score_note[0] ? ", " : "", row->score_note);
            n = strlen(note);
            if (row->ft_note[0])
                snprintf(note + n, sizeof note - n, "forward transfer: %s.",
                         row->ft_note);
        }
    } else {
        snprintf(note, sizeof note, "no Continual World metrics: %s", rep_note);
    }
    if (note[0]) {
        double nx = have_rep ? a.x1 + 7 * fs : a.x0;
        cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
        wrapped(cr, nx, a.y1 + 3.4 * fs, c->w - 20 - nx, note, fs * 0.8, 2);
    }
out:
    if (have_rep) crl_report_free(&rep);
    for (int k = 0; k < gc.n; k++) {
        if (runs && runs[k]) {
            for (int j = 0; j < gc.g[k].n_runs; j++) run_free(&runs[k][j]);
            free(runs[k]);
        }
        if (bands) band_free(&bands[k]);
        free(gc.g[k].run_ids);
    }
    free(runs);
    free(bands);
    free(gc.g);
    return rc;
}

/* ---- DIAGNOSTICS: a run's training diagnostics ----------------------------------
 * One panel per diag/... quantity the run has (docs/diagnostics.md), x = env
 * step, each point coloured by the task whose window holds it, dashed lines
 * at task boundaries and a red line where the runaway warning was given. */

static const struct {
    const char *key, *label;
    int log; /* log10 scale when every value is > 0 and they span 100x */
} DIAG_KEYS[] = {
    {"diag/critic_loss", "critic loss", 1},
    {"diag/actor_loss", "actor loss", 0},
    {"diag/q_mean", "mean Q", 0},
    {"diag/alpha", "entropy coefficient (alpha)", 1},
    {"diag/entropy", "policy entropy (-log pi)", 0},
    {"diag/grad_norm_critic", "critic gradient norm", 1},
    {"diag/grad_norm_actor", "actor gradient norm", 1},
    {"diag/train_return", "training episode return", 0},
    {"diag/train_success", "training episode success", 0},
    {"diag/env_steps_per_s", "env steps / s", 0},
    {"diag/updates_per_s", "updates / s", 0},
};
#define N_DIAG_KEYS (int)(sizeof DIAG_KEYS / sizeof DIAG_KEYS[0])

typedef struct {
    int64_t *step;
    double *v;
    size_t n, cap;
} diag_series;

typedef struct {
    diag_series s[N_DIAG_KEYS];
    int64_t *warn; /* steps of diag/runaway rows */
    size_t n_warn, cap_warn;
    int oom;
} diag_data;

static int diag_push(int64_t **step, double **v, size_t *n, size_t *cap, int64_t st,
                     double val) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        int64_t *ps = realloc(*step, c * sizeof *ps);
        if (!ps) return 1;
        *step = ps;
        if (v) {
            double *pv = realloc(*v, c * sizeof *pv);
            if (!pv) return 1;
            *v = pv;
        }
        *cap = c;
    }
    (*step)[*n] = st;
    if (v) (*v)[*n] = val;
    (*n)++;
    return 0;
}

static int diag_row(const crl_metric_row *row, void *ctx) {
    diag_data *d = ctx;
    if (!strcmp(row->key, "diag/runaway")) {
        if (diag_push(&d->warn, NULL, &d->n_warn, &d->cap_warn, row->step, 0))
            return d->oom = 1;
        return 0;
    }
    for (int k = 0; k < N_DIAG_KEYS; k++)
        if (!strcmp(row->key, DIAG_KEYS[k].key)) {
            diag_series *s = &d->s[k];
            if (diag_push(&s->step, &s->v, &s->n, &s->cap, row->step, row->value))
                return d->oom = 1;
        }
    return 0;
}

static void diag_free(diag_data *d) {
    for (int k = 0; k < N_DIAG_KEYS; k++) {
        free(d->s[k].step);
        free(d->s[k].v);
    }
    free(d->warn);
    memset(d, 0, sizeof *d);
}

/* The task whose training window (start, end] holds step (the first task
 * for step 0), or -1. */
static int task_at(const crl_task_row *t, int n, int64_t step) {
    for (int i = 0; i < n; i++)
        if (step > t[i].start_step && (t[i].end_step < 0 || step <= t[i].end_step))
            return i;
    return n > 0 && step <= t[0].start_step ? 0 : -1;
}

static int plot_diagnostics(crl_store *store, const crl_plot_opts *o, const char *path,
                            crl_err *err) {
    crl_run_info info;
    int rc = crl_store_run_get(store, o->run_id, &info, NULL, err);
    if (rc) return rc;
    const char *keys[N_DIAG_KEYS + 1];
    for (int k = 0; k < N_DIAG_KEYS; k++) keys[k] = DIAG_KEYS[k].key;
    keys[N_DIAG_KEYS] = "diag/runaway";
    _Static_assert(N_DIAG_KEYS + 1 <= CRL_STORE_MAX_KEYS, "too many diagnostics keys");
    diag_data d;
    memset(&d, 0, sizeof d);
    crl_task_row *tasks = NULL;
    int n_tasks = 0;
    rc = crl_store_metrics(store, o->run_id, keys, N_DIAG_KEYS + 1, diag_row, &d, err);
    if (!rc && d.oom) rc = crl_errf(err, CRL_ENOMEM, "plot: out of memory");
    int panels = 0;
    for (int k = 0; k < N_DIAG_KEYS; k++) panels += d.s[k].n > 0;
    if (!rc && panels == 0)
        rc = crl_errf(err, CRL_ENOTFOUND,
                      "run %lld has no training diagnostics (diag/... metrics: train it "
                      "with --diag-every N > 0)",
                      (long long)o->run_id);
    if (!rc) rc = crl_store_tasks(store, o->run_id, &tasks, &n_tasks, err);
    if (rc) {
        diag_free(&d);
        crl_store_tasks_free(tasks);
        return rc;
    }

    const int cols = panels >= 3 ? 3 : panels, rows = (panels + cols - 1) / cols;
    const double w = o->width ? o->width : 1500;
    const double h = o->height ? o->height : 110 + 290.0 * rows;
    canvas c;
    if ((rc = canvas_open(&c, path, w, h, err))) {
        diag_free(&d);
        crl_store_tasks_free(tasks);
        return rc;
    }
    cairo_t *cr = c.cr;
    const double fs = fmax(10, fmin(w / 110, h / (8.0 + 22.0 * rows)));
    char title[256], buf[192];
    if (o->title)
        snprintf(title, sizeof title, "%s", o->title);
    else
        snprintf(title, sizeof title,
                 "Run %lld: %s on %s (seed %llu, %s): training diagnostics",
                 (long long)info.id, info.method, info.scenario,
                 (unsigned long long)info.seed, info.status);
    title_lines(cr, w, title,
                "averages over the updates of each diagnostics row; colour: the task "
                "being trained; dashed: task boundaries",
                fs);

    /* The task legend, one row under the title. */
    double lx = 30, ly = 22 + 3.6 * fs;
    for (int i = 0; i < n_tasks; i++) {
        snprintf(buf, sizeof buf, "%d %s", i, tasks[i].name);
        double tw = text_width(cr, buf, fs, 0) + 2.6 * fs + 18;
        if (lx + tw > w - 20) break; /* the rest would not fit: the colours repeat */
        set_colour(cr, i, 1);
        cairo_set_line_width(cr, 3);
        cairo_move_to(cr, lx, ly);
        cairo_line_to(cr, lx + 1.8 * fs, ly);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, lx + 2.3 * fs, ly, buf, fs, 0, 0, 0.5, 0);
        lx += tw;
    }
    if (d.n_warn > 0) {
        snprintf(buf, sizeof buf, "red: runaway warning (%zu)", d.n_warn);
        cairo_set_source_rgb(cr, 0.80, 0.05, 0.05);
        text(cr, w - 20, ly, buf, fs, 0, 1, 0.5, 0);
    }

    /* x range: every series and every task window. */
    int64_t xmax = 1;
    for (int k = 0; k < N_DIAG_KEYS; k++)
        for (size_t i = 0; i < d.s[k].n; i++)
            if (d.s[k].step[i] > xmax) xmax = d.s[k].step[i];
    for (int i = 0; i < n_tasks; i++)
        if (tasks[i].end_step > xmax) xmax = tasks[i].end_step;

    const double top = ly + 1.6 * fs, cell_w = (w - 20) / cols,
                 cell_h = (h - top - 10) / rows;
    int p = 0;
    for (int k = 0; k < N_DIAG_KEYS; k++) {
        const diag_series *s = &d.s[k];
        if (s->n == 0) continue;
        const int col = p % cols, row = p / cols;
        p++;
        axes a;
        a.x0 = 20 + col * cell_w + 5.2 * fs;
        a.x1 = 20 + (col + 1) * cell_w - 1.5 * fs;
        a.y0 = top + row * cell_h + 1.8 * fs;
        a.y1 = top + (row + 1) * cell_h - 3.4 * fs;
        a.xmin = 0;
        a.xmax = (double)xmax;
        double lo, hi;
        finite_range(s->v, s->n, &lo, &hi);
        /* Losses, alpha and gradient norms can span decades (a runaway
         * especially): log10 then, so the early values stay readable. */
        const int lg = DIAG_KEYS[k].log && lo > 0 && hi > 100 * lo;
        if (lg) {
            lo = log10(lo);
            hi = log10(hi);
        }
        if (!strcmp(DIAG_KEYS[k].key, "diag/train_success"))
            y_range(CRL_PLOT_SUCCESS, lo, hi, &a.ymin, &a.ymax);
        else {
            y_range(CRL_PLOT_RETURN, lo, hi, &a.ymin, &a.ymax);
            if (!lg && lo >= 0 && a.ymin < 0) a.ymin = 0; /* rates, norms: from 0 */
        }
        /* The panel's name above it. */
        cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
        snprintf(buf, sizeof buf, "%s%s", DIAG_KEYS[k].label, lg ? " (log10)" : "");
        text(cr, (a.x0 + a.x1) / 2, a.y0 - 0.35 * fs, buf, fs * 1.05, 1, 0.5, 1, 0);
        draw_axes(cr, &a,
                  row == rows - 1 || p + cols > panels ? "environment steps" : NULL, NULL,
                  1, fs * 0.9);
        /* Task boundaries, then the warnings. */
        static const double dash[] = {5, 4};
        cairo_set_line_width(cr, 1);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_dash(cr, dash, 2, 0);
        for (int i = 0; i < n_tasks; i++)
            if (tasks[i].start_step > 0 && tasks[i].start_step < xmax) {
                double x = ax_x(&a, (double)tasks[i].start_step);
                cairo_move_to(cr, x, a.y0);
                cairo_line_to(cr, x, a.y1);
                cairo_stroke(cr);
            }
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0.80, 0.05, 0.05);
        cairo_set_line_width(cr, 1.5);
        for (size_t i = 0; i < d.n_warn; i++) {
            double x = ax_x(&a, (double)d.warn[i]);
            cairo_move_to(cr, x, a.y0);
            cairo_line_to(cr, x, a.y1);
            cairo_stroke(cr);
        }
        /* The series: one stroke per task stretch, in the task's colour. */
        clip_axes(cr, &a);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        cairo_set_line_width(cr, 1.8);
        int pen = 0, cur = -2;
        for (size_t i = 0; i < s->n; i++) {
            double v = s->v[i];
            if (lg) v = v > 0 ? log10(v) : NAN;
            const int t = task_at(tasks, n_tasks, s->step[i]);
            if (!isfinite(v) || t != cur) {
                if (pen) cairo_stroke(cr);
                pen = 0;
            }
            if (!isfinite(v)) continue;
            if (t != cur) {
                cur = t;
                if (t >= 0)
                    set_colour(cr, t, 1);
                else
                    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            }
            double x = ax_x(&a, (double)s->step[i]), y = ax_y(&a, v);
            if (pen)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen = 1;
            if (s->n <= 80) { /* few rows: show each one */
                cairo_stroke(cr);
                cairo_arc(cr, x, y, 2.2, 0, 2 * M_PI);
                cairo_fill(cr);
                cairo_move_to(cr, x, y);
            }
        }
        if (pen) cairo_stroke(cr);
        cairo_restore(cr);
    }
    rc = canvas_close(&c, 1, err);
    diag_free(&d);
    crl_store_tasks_free(tasks);
    return rc;
}

/* ---- entry ---------------------------------------------------------------------- */

int crl_plot_write(crl_store *store, const crl_plot_opts *o, const char *path,
                   crl_err *err) {
    if (!store || !o || !path)
        return crl_errf(err, CRL_EINVAL, "plot: missing arguments");
    if (!ends_with(path, ".png") && !ends_with(path, ".svg"))
        return crl_errf(err, CRL_EINVAL, "%s: the plot file must end in .png or .svg",
                        path);
    if ((o->width && (o->width < 200 || o->width > 10000)) ||
        (o->height && (o->height < 150 || o->height > 10000)))
        return crl_errf(err, CRL_EINVAL,
                        "plot size %dx%d outside 200..10000 x 150..10000", o->width,
                        o->height);
    if (o->metric < CRL_PLOT_AUTO || o->metric > CRL_PLOT_RETURN)
        return crl_errf(err, CRL_EINVAL, "unknown plot metric %d", (int)o->metric);
    canvas c;
    int rc;
    if (o->kind == CRL_PLOT_COMPARE) {
        if (!o->scenario || !*o->scenario)
            return crl_errf(err, CRL_EINVAL, "plot compare: a scenario is required");
        double w = o->width ? o->width : 1400, h = o->height ? o->height : 560;
        if ((rc = canvas_open(&c, path, w, h, err))) return rc;
        rc = plot_compare(store, o, &c, err);
        int rc2 = canvas_close(&c, rc == CRL_OK, err); /* nothing written on failure */
        return rc ? rc : rc2;
    }
    if (o->kind == CRL_PLOT_DIAGNOSTICS) return plot_diagnostics(store, o, path, err);
    if (o->kind != CRL_PLOT_CURVES && o->kind != CRL_PLOT_MATRIX)
        return crl_errf(err, CRL_EINVAL, "unknown plot kind %d", (int)o->kind);
    run_data r;
    if ((rc = run_load(store, o->run_id, &r, err))) return rc;
    crl_plot_metric m = pick_metric(o->metric, &r, 1);
    double w = o->width ? o->width : 1100;
    double h = o->height ? o->height
               : o->kind == CRL_PLOT_MATRIX
                   ? fmin(1600, fmax(300, 150 + 30.0 * r.n_tasks))
                   : 560;
    if ((rc = canvas_open(&c, path, w, h, err)) == CRL_OK) {
        rc = o->kind == CRL_PLOT_CURVES ? plot_curves(&r, m, o, &c)
                                        : plot_matrix(&r, m, o, &c);
        int rc2 = canvas_close(&c, rc == CRL_OK, err);
        if (!rc) rc = rc2;
    }
    run_free(&r);
    return rc;
}
