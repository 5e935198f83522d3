/* Continual World metrics over score matrices, and the bootstrap CI over seeds.
 * Definitions and a worked example: docs/metrics.md. */
#include "crl/metrics.h"
#include "crl/methods.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int crl_scores_alloc(crl_scores *m, int n_tasks, int n_evals, crl_err *err) {
    if (!m) return crl_errf(err, CRL_EINVAL, "scores: NULL matrix");
    memset(m, 0, sizeof *m);
    if (n_tasks < 1 || n_evals < 1)
        return crl_errf(err, CRL_EINVAL,
                        "scores: need at least 1 task and 1 evaluation, "
                        "got %d x %d",
                        n_tasks, n_evals);
    size_t cells = (size_t)n_tasks * (size_t)n_evals;
    m->s = malloc(cells * sizeof *m->s);
    m->step = malloc((size_t)n_evals * sizeof *m->step);
    m->train_task = malloc((size_t)n_evals * sizeof *m->train_task);
    m->task_start = malloc((size_t)n_tasks * sizeof *m->task_start);
    m->task_end = malloc((size_t)n_tasks * sizeof *m->task_end);
    if (!m->s || !m->step || !m->train_task || !m->task_start || !m->task_end) {
        crl_scores_free(m);
        return crl_errf(err, CRL_ENOMEM, "scores: out of memory for %d x %d", n_tasks,
                        n_evals);
    }
    m->n_tasks = n_tasks;
    m->n_evals = n_evals;
    /* NaN marks a cell nobody filled, so a metric that reads it fails loudly
     * instead of averaging in a zero. */
    for (size_t k = 0; k < cells; k++) m->s[k] = NAN;
    for (int t = 0; t < n_evals; t++) {
        m->step[t] = 0;
        m->train_task[t] = -1;
    }
    for (int i = 0; i < n_tasks; i++) m->task_start[i] = m->task_end[i] = -1;
    return CRL_OK;
}

void crl_scores_free(crl_scores *m) {
    if (!m) return;
    free(m->s);
    free(m->step);
    free(m->train_task);
    free(m->task_start);
    free(m->task_end);
    memset(m, 0, sizeof *m);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of step v in the sorted, duplicate-free steps[0..n). It is there by
 * construction. */
static int find_step(const int64_t *steps, int n, int64_t v) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (steps[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int crl_scores_from_evals(crl_scores *m, int n_tasks, const crl_eval_row *rows,
                          size_t n_rows, crl_score_kind kind, crl_err *err) {
    if (!m) return crl_errf(err, CRL_EINVAL, "scores: NULL matrix");
    memset(m, 0, sizeof *m);
    if (n_tasks < 1) return crl_errf(err, CRL_EINVAL, "scores: n_tasks %d < 1", n_tasks);
    if (!rows || n_rows == 0) return crl_errf(err, CRL_EINVAL, "scores: no eval rows");
    if (n_rows > (size_t)INT32_MAX)
        return crl_errf(err, CRL_EINVAL, "scores: %zu eval rows is too many", n_rows);

    int64_t *steps = malloc(n_rows * sizeof *steps);
    if (!steps) return crl_errf(err, CRL_ENOMEM, "scores: out of memory");
    for (size_t k = 0; k < n_rows; k++) steps[k] = rows[k].step;
    qsort(steps, n_rows, sizeof *steps, cmp_i64);
    int n_evals = 0;
    for (size_t k = 0; k < n_rows; k++)
        if (k == 0 || steps[k] != steps[n_evals - 1]) steps[n_evals++] = steps[k];

    int rc = crl_scores_alloc(m, n_tasks, n_evals, err);
    if (rc) {
        free(steps);
        return rc;
    }
    memcpy(m->step, steps, (size_t)n_evals * sizeof *steps);
    free(steps);

    for (size_t k = 0; k < n_rows; k++) {
        const crl_eval_row *r = &rows[k];
        double v = kind == CRL_SCORE_RETURN ? r->mean_return : r->success_rate;
        if (r->eval_task_idx < 0 || r->eval_task_idx >= n_tasks ||
            r->train_task_idx < 0 || r->train_task_idx >= n_tasks) {
            rc = crl_errf(err, CRL_EINVAL,
                          "scores: eval at step %lld has task indices (train %d, "
                          "eval %d) outside [0, %d)",
                          (long long)r->step, r->train_task_idx, r->eval_task_idx,
                          n_tasks);
            goto fail;
        }
        if (!isfinite(v)) {
            rc = crl_errf(err, CRL_EINVAL, "scores: eval of task %d at step %lld is %g",
                          r->eval_task_idx, (long long)r->step, v);
            goto fail;
        }
        int t = find_step(m->step, n_evals, r->step);
        double *cell = &m->s[(size_t)r->eval_task_idx * (size_t)n_evals + (size_t)t];
        if (!isnan(*cell)) {
            rc = crl_errf(err, CRL_EINVAL, "scores: task %d evaluated twice at step %lld",
                          r->eval_task_idx, (long long)r->step);
            goto fail;
        }
        *cell = v;
        if (m->train_task[t] >= 0 && m->train_task[t] != r->train_task_idx) {
            rc = crl_errf(err, CRL_EINVAL,
                          "scores: evals at step %lld disagree on the task being "
                          "trained (%d and %d)",
                          (long long)r->step, m->train_task[t], r->train_task_idx);
            goto fail;
        }
        m->train_task[t] = r->train_task_idx;
    }
    for (int i = 0; i < n_tasks; i++)
        for (int t = 0; t < n_evals; t++)
            if (isnan(m->s[(size_t)i * (size_t)n_evals + (size_t)t])) {
                rc = crl_errf(err, CRL_EINVAL, "scores: task %d has no eval at step %lld",
                              i, (long long)m->step[t]);
                goto fail;
            }

    /* A task's evaluations must form one stretch, or "its window" means
     * nothing; a scenario that revisits a task gives it a new index. */
    for (int t = 0; t < n_evals; t++) {
        int i = m->train_task[t];
        if (t > 0 && m->train_task[t - 1] == i) {
            m->task_end[i] = m->step[t];
            continue;
        }
        if (m->task_end[i] != -1) {
            rc = crl_errf(err, CRL_EINVAL,
                          "scores: task %d is trained again at step %lld after other "
                          "tasks",
                          i, (long long)m->step[t]);
            goto fail;
        }
        m->task_start[i] = t > 0 ? m->step[t - 1] : -1;
        m->task_end[i] = m->step[t];
    }
    return CRL_OK;
fail:
    crl_scores_free(m);
    return rc;
}

/* Everything a metric reads must be well formed; the struct is public, so
 * check here rather than trust the builder. */
static int check_scores(const crl_scores *m, int windows, crl_err *err) {
    if (!m || !m->s || !m->step)
        return crl_errf(err, CRL_EINVAL, "metrics: NULL or unallocated score matrix");
    if (m->n_tasks < 1 || m->n_evals < 1)
        return crl_errf(err, CRL_EINVAL, "metrics: empty score matrix (%d x %d)",
                        m->n_tasks, m->n_evals);
    for (int t = 1; t < m->n_evals; t++)
        if (m->step[t] <= m->step[t - 1])
            return crl_errf(err, CRL_EINVAL,
                            "metrics: evaluation steps not increasing (%lld after %lld)",
                            (long long)m->step[t], (long long)m->step[t - 1]);
    for (int i = 0; i < m->n_tasks; i++)
        for (int t = 0; t < m->n_evals; t++)
            if (!isfinite(m->s[(size_t)i * (size_t)m->n_evals + (size_t)t]))
                return crl_errf(err, CRL_EINVAL,
                                "metrics: score of task %d at step %lld is missing or "
                                "not finite",
                                i, (long long)m->step[t]);
    if (!windows) return CRL_OK;
    if (!m->task_start || !m->task_end)
        return crl_errf(err, CRL_EINVAL, "metrics: score matrix has no task windows");
    for (int i = 0; i < m->n_tasks; i++)
        if (m->task_end[i] < m->task_start[i])
            return crl_errf(err, CRL_EINVAL,
                            "metrics: task %d window ends (%lld) before "
                            "it starts (%lld)",
                            i, (long long)m->task_end[i], (long long)m->task_start[i]);
    return CRL_OK;
}

/* Evaluations [*t0, *t1) inside task i's window; steps increase, so they are
 * contiguous. */
static int window(const crl_scores *m, int i, int *t0, int *t1, crl_err *err) {
    int a = 0;
    while (a < m->n_evals && m->step[a] <= m->task_start[i]) a++;
    int b = a;
    while (b < m->n_evals && m->step[b] <= m->task_end[i]) b++;
    if (a == b) {
        if (m->task_end[i] == CRL_STEP_OPEN)
            return crl_errf(
                err, CRL_EINVAL,
                "metrics: task %d has no evaluation in its window (%lld, end]", i,
                (long long)m->task_start[i]);
        return crl_errf(err, CRL_EINVAL,
                        "metrics: task %d has no evaluation in its window (%lld, %lld]",
                        i, (long long)m->task_start[i], (long long)m->task_end[i]);
    }
    *t0 = a;
    *t1 = b;
    return CRL_OK;
}

static double row_mean(const crl_scores *m, int i, int t0, int t1) {
    const double *row = m->s + (size_t)i * (size_t)m->n_evals;
    double sum = 0;
    for (int t = t0; t < t1; t++) sum += row[t];
    return sum / (t1 - t0);
}

int crl_scores_normalise(crl_scores *m, const double *ref, crl_err *err) {
    if (!m || !m->s || m->n_tasks < 1 || m->n_evals < 1 || !ref)
        return crl_errf(err, CRL_EINVAL, "normalise: NULL matrix or reference");
    /* Check every reference first so a bad one leaves the matrix untouched. */
    for (int i = 0; i < m->n_tasks; i++)
        if (!isfinite(ref[i]) || ref[i] <= 0)
            return crl_errf(err, CRL_EINVAL,
                            "normalise: reference score of task %d is %g; it must be "
                            "positive",
                            i, ref[i]);
    for (int i = 0; i < m->n_tasks; i++)
        for (int t = 0; t < m->n_evals; t++)
            m->s[(size_t)i * (size_t)m->n_evals + (size_t)t] /= ref[i];
    return CRL_OK;
}

int crl_metric_final(const crl_scores *m, double *final, crl_err *err) {
    int rc = check_scores(m, 0, err);
    if (rc) return rc;
    if (!final) return crl_errf(err, CRL_EINVAL, "metrics: NULL output");
    int t0 = m->n_evals > CRL_METRIC_LAST ? m->n_evals - CRL_METRIC_LAST : 0;
    for (int i = 0; i < m->n_tasks; i++) final[i] = row_mean(m, i, t0, m->n_evals);
    return CRL_OK;
}

int crl_metric_performance(const crl_scores *m, double *perf, crl_err *err) {
    int rc = check_scores(m, 0, err);
    if (rc) return rc;
    if (!perf) return crl_errf(err, CRL_EINVAL, "metrics: NULL output");
    int t0 = m->n_evals > CRL_METRIC_LAST ? m->n_evals - CRL_METRIC_LAST : 0;
    double sum = 0;
    for (int i = 0; i < m->n_tasks; i++) sum += row_mean(m, i, t0, m->n_evals);
    *perf = sum / m->n_tasks;
    return CRL_OK;
}

int crl_metric_forgetting(const crl_scores *m, double *per_task, double *mean,
                          crl_err *err) {
    int rc = check_scores(m, 1, err);
    if (rc) return rc;
    if (!mean) return crl_errf(err, CRL_EINVAL, "metrics: NULL output");
    int tf = m->n_evals > CRL_METRIC_LAST ? m->n_evals - CRL_METRIC_LAST : 0;
    double sum = 0;
    for (int i = 0; i < m->n_tasks; i++) {
        int t0, t1;
        if ((rc = window(m, i, &t0, &t1, err))) return rc;
        if (t1 - t0 > CRL_METRIC_LAST) t0 = t1 - CRL_METRIC_LAST;
        double f = row_mean(m, i, t0, t1) - row_mean(m, i, tf, m->n_evals);
        if (per_task) per_task[i] = f;
        sum += f;
    }
    *mean = sum / m->n_tasks;
    return CRL_OK;
}

int crl_metric_auc(const crl_scores *m, double *auc, crl_err *err) {
    int rc = check_scores(m, 1, err);
    if (rc) return rc;
    if (!auc) return crl_errf(err, CRL_EINVAL, "metrics: NULL output");
    for (int i = 0; i < m->n_tasks; i++) {
        int t0, t1;
        if ((rc = window(m, i, &t0, &t1, err))) return rc;
        auc[i] = row_mean(m, i, t0, t1);
    }
    return CRL_OK;
}

/* Mean of column i of a [rows x cols] row-major array. */
static double col_mean(const double *x, int rows, int cols, int i) {
    double sum = 0;
    for (int r = 0; r < rows; r++) sum += x[(size_t)r * (size_t)cols + (size_t)i];
    return sum / rows;
}

int crl_metric_forward_transfer(int n_tasks, int n_seeds, const double *auc,
                                int n_ref_seeds, const double *auc_ref, double *ft_task,
                                double *ft_seed, double *ft, crl_err *err) {
    if (n_tasks < 1 || n_seeds < 1 || n_ref_seeds < 1)
        return crl_errf(err, CRL_EINVAL,
                        "forward transfer: need tasks, seeds and reference seeds "
                        "(got %d, %d, %d)",
                        n_tasks, n_seeds, n_ref_seeds);
    if (!auc || !auc_ref || !ft)
        return crl_errf(err, CRL_EINVAL, "forward transfer: NULL argument");
    for (size_t k = 0; k < (size_t)n_seeds * (size_t)n_tasks; k++)
        if (!isfinite(auc[k]))
            return crl_errf(err, CRL_EINVAL,
                            "forward transfer: AUC of seed %zu, task %zu "
                            "is not finite",
                            k / (size_t)n_tasks, k % (size_t)n_tasks);
    for (size_t k = 0; k < (size_t)n_ref_seeds * (size_t)n_tasks; k++)
        if (!isfinite(auc_ref[k]))
            return crl_errf(err, CRL_EINVAL,
                            "forward transfer: reference AUC of seed %zu, task %zu is "
                            "not finite",
                            k / (size_t)n_tasks, k % (size_t)n_tasks);

    /* Seed means before the ratio: a mean of per-seed ratios would weight a
     * seed whose reference happened to be near 1 without bound. */
    int rc = CRL_OK, bad = -1;
    double sum = 0, bad_b = 0;
    for (int i = 0; i < n_tasks; i++) {
        double a = col_mean(auc, n_seeds, n_tasks, i);
        double b = col_mean(auc_ref, n_ref_seeds, n_tasks, i);
        double f = NAN;
        if (b >= 1) {
            if (bad < 0) {
                bad = i;
                bad_b = b;
            }
        } else {
            f = (a - b) / (1 - b);
        }
        if (ft_task) ft_task[i] = f;
        sum += f;
    }
    if (bad >= 0) {
        rc = crl_errf(err, CRL_EINVAL,
                      "forward transfer: undefined for task %d, whose reference AUC is "
                      "%g (>= 1, nothing left to transfer)",
                      bad, bad_b);
        *ft = NAN;
        if (ft_seed)
            for (int s = 0; s < n_seeds; s++) ft_seed[s] = NAN;
        return rc;
    }
    *ft = sum / n_tasks;
    if (ft_seed) {
        /* The reference enters as a fixed baseline (its seed mean), so the
         * per-seed values are linear in AUC and average exactly to *ft. */
        for (int s = 0; s < n_seeds; s++) {
            double acc = 0;
            for (int i = 0; i < n_tasks; i++) {
                double b = col_mean(auc_ref, n_ref_seeds, n_tasks, i);
                acc += (auc[(size_t)s * (size_t)n_tasks + (size_t)i] - b) / (1 - b);
            }
            ft_seed[s] = acc / n_tasks;
        }
    }
    return CRL_OK;
}

int crl_metric_growth(const int64_t *size, int n, double *growth, crl_err *err) {
    if (!size || !growth || n < 1)
        return crl_errf(err, CRL_EINVAL, "growth: need sizes for at least one task");
    for (int k = 0; k < n; k++)
        if (size[k] < 0)
            return crl_errf(err, CRL_EINVAL, "growth: size after task %d is negative", k);
    if (size[0] == 0)
        return crl_errf(err, CRL_EINVAL, "growth: size after the first task is 0");
    *growth = (double)size[n - 1] / (double)size[0];
    return CRL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int crl_metric_bootstrap_ci(const double *x, int n, int resamples, double level,
                            crl_rng *rng, crl_ci *ci, crl_err *err) {
    if (!x || !rng || !ci) return crl_errf(err, CRL_EINVAL, "bootstrap: NULL argument");
    if (n < 1 || resamples < 1)
        return crl_errf(err, CRL_EINVAL,
                        "bootstrap: need n >= 1 and resamples >= 1 "
                        "(got %d, %d)",
                        n, resamples);
    if (!(level > 0 && level < 1))
        return crl_errf(err, CRL_EINVAL, "bootstrap: level %g outside (0, 1)", level);
    double sum = 0;
    for (int j = 0; j < n; j++) {
        if (!isfinite(x[j]))
            return crl_errf(err, CRL_EINVAL, "bootstrap: value %d is not finite", j);
        sum += x[j];
    }
    ci->mean = sum / n;
    if (n == 1) {
        /* Every resample is x[0]; drawing would only move the generator. */
        ci->lo = ci->hi = ci->mean;
        return CRL_OK;
    }
    double *means = malloc((size_t)resamples * sizeof *means);
    if (!means)
        return crl_errf(err, CRL_ENOMEM, "bootstrap: out of memory for %d resamples",
                        resamples);
    for (int r = 0; r < resamples; r++) {
        double acc = 0;
        for (int j = 0; j < n; j++) acc += x[crl_rng_below(rng, (uint64_t)n)];
        means[r] = acc / n;
    }
    qsort(means, (size_t)resamples, sizeof *means, cmp_double);
    /* (1 - 0.90) / 2 * 4000 is 199.99999999999994 in doubles; the 1e-9 nudge
     * makes the index the exact-arithmetic one. */
    double a = (1 - level) / 2;
    double lo = floor(a * resamples + 1e-9), hi = ceil((1 - a) * resamples - 1e-9) - 1;
    if (lo < 0) lo = 0;
    if (hi > resamples - 1) hi = resamples - 1;
    if (hi < lo) hi = lo;
    ci->lo = means[(int)lo];
    ci->hi = means[(int)hi];
    free(means);
    return CRL_OK;
}

/* ---- separability ceiling -------------------------------------------------- */

int crl_metric_ceiling(const float *q, const int *label, int n, int dim, int n_tasks,
                       double *acc, crl_err *err) {
    /* One implementation, in agents/ (the L2M method logs it at task ends and
     * agents/ may not include analysis/). */
    return crl_l2m_nearest_centroid(q, label, n, dim, n_tasks, acc, err);
}
