/* crl metrics: the Continual World metrics (performance, forgetting, forward
 * transfer, model growth) and the bootstrap confidence interval over seeds.
 *
 * Pure arithmetic: no SQLite, no I/O, no global state. The report reads evals
 * from the store, builds a crl_scores matrix per run and calls these. Every
 * allocation is named below; only crl_scores_*, crl_metric_bootstrap_ci and
 * crl_metric_ceiling allocate (the last two for the duration of the call).
 * The definitions, with a worked example, are in docs/metrics.md. */
#ifndef CRL_METRICS_H
#define CRL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "store.h" /* crl_eval_row: a plain struct, no SQLite needed */

#ifdef __cplusplus
extern "C" {
#endif

#define CRL_METRIC_LAST         5    /* evaluations averaged for "final" scores */
#define CRL_BOOTSTRAP_RESAMPLES 4000 /* Continual World's count */
#define CRL_BOOTSTRAP_LEVEL     0.90
#define CRL_STEP_OPEN           INT64_MAX /* task_end of a task that never ended */

/* Which number of an eval row is the score. */
typedef enum { CRL_SCORE_SUCCESS, CRL_SCORE_RETURN } crl_score_kind;

/* Scores of one run: s(i, t) for task i at evaluation t.
 * Task i's training window holds the evaluations with
 *     task_start[i] < step[t] <= task_end[i],
 * i.e. the evaluation taken right after its last training step belongs to it
 * and the one taken at its first step (before any training on it) does not.
 * All arrays are owned by the struct once crl_scores_alloc has run. */
typedef struct {
    int n_tasks, n_evals;
    double *s;           /* [n_tasks * n_evals], s[i * n_evals + t]; NaN = missing */
    int64_t *step;       /* [n_evals] env step of evaluation t, strictly increasing */
    int *train_task;     /* [n_evals] task being trained at evaluation t */
    int64_t *task_start; /* [n_tasks] window (task_start, task_end] in env steps */
    int64_t *task_end;   /* [n_tasks] CRL_STEP_OPEN: the window runs to the end */
} crl_scores;

/* Allocate an n_tasks x n_evals matrix: s = NaN, step = 0, train_task = -1,
 * empty windows (start = end = -1). Free with crl_scores_free.
 * CRL_EINVAL for sizes < 1, CRL_ENOMEM. On failure *m is zeroed. */
int crl_scores_alloc(crl_scores *m, int n_tasks, int n_evals, crl_err *err);
/* Free the arrays and zero *m. Safe on a zeroed struct and with NULL. */
void crl_scores_free(crl_scores *m);

/* Build *m (allocated as by crl_scores_alloc) from eval rows in any order:
 * one evaluation per distinct step, s(eval_task_idx, t) from success_rate or
 * mean_return. Windows are derived from train_task_idx: task i's window ends
 * at its last evaluation and starts at the step of the evaluation before its
 * first one (-1 if none); a task never trained gets an empty window (-1, -1).
 * Overwrite task_start/task_end with the tasks table's values when known.
 * CRL_EINVAL (message names step and task): an index outside [0, n_tasks), a
 * non-finite score, a duplicate (step, task), a task not evaluated at some
 * step, rows of one step disagreeing on train_task_idx, or a task trained in
 * two separate stretches. CRL_ENOMEM. On failure *m is zeroed. */
int crl_scores_from_evals(crl_scores *m, int n_tasks, const crl_eval_row *rows,
                          size_t n_rows, crl_score_kind kind, crl_err *err);

/* Locomotion: s(i, t) /= ref[i] for every t, where ref[i] is single-task SAC's
 * score on task i (so SAC-N scores 1.0). CRL_EINVAL, and *m untouched, if any
 * ref[i] is not finite and > 0. */
int crl_scores_normalise(crl_scores *m, const double *ref, crl_err *err);

/* Final score of each task: mean of s(i, t) over the last CRL_METRIC_LAST
 * evaluations of the run (all of them if fewer). final is [n_tasks].
 * CRL_EINVAL for a malformed matrix (steps not increasing, a missing score). */
int crl_metric_final(const crl_scores *m, double *final, crl_err *err);
/* Performance: mean over tasks of crl_metric_final. Errors as crl_metric_final. */
int crl_metric_performance(const crl_scores *m, double *perf, crl_err *err);
/* Forgetting of task i: mean of s(i, t) over the last CRL_METRIC_LAST
 * evaluations inside its window (all of them if fewer) minus its final score.
 * per_task ([n_tasks], may be NULL) gets each, *mean their mean. Negative when
 * a task improved after its window. CRL_EINVAL if a window holds no
 * evaluation, or as crl_metric_final. */
int crl_metric_forgetting(const crl_scores *m, double *per_task, double *mean,
                          crl_err *err);
/* AUC_i: mean of s(i, t) over all evaluations inside task i's window. auc is
 * [n_tasks]. For a single-task reference run (n_tasks = 1) this is AUC^b.
 * CRL_EINVAL if a window holds no evaluation, or as crl_metric_final. */
int crl_metric_auc(const crl_scores *m, double *auc, crl_err *err);

/* Forward transfer over seeds. auc is [n_seeds * n_tasks] (row s = seed s),
 * auc_ref is [n_ref_seeds * n_tasks] for the reference runs. Seed means come
 * first: A_i = mean_s auc, B_i = mean_r auc_ref, FT_i = (A_i - B_i) / (1 - B_i),
 * *ft = mean_i FT_i. ft_task ([n_tasks]) and ft_seed ([n_seeds]) may be NULL;
 * ft_seed[s] = mean_i (auc[s, i] - B_i) / (1 - B_i) uses the same fixed B_i,
 * so its mean is *ft: feed it to crl_metric_bootstrap_ci for the CI.
 * B_i >= 1 leaves FT_i undefined: returns CRL_EINVAL naming the task, with
 * NaN in ft_task[i], every ft_seed and *ft, the other ft_task entries still
 * written. CRL_EINVAL also for counts < 1 or a non-finite AUC. With unequal
 * reference seed counts per task, pass the per-task means with n_ref_seeds = 1. */
int crl_metric_forward_transfer(int n_tasks, int n_seeds, const double *auc,
                                int n_ref_seeds, const double *auc_ref, double *ft_task,
                                double *ft_seed, double *ft, crl_err *err);

/* Growth factor: size[n - 1] / size[0], where size[k] is the number of
 * parameters needed at inference for all tasks after task k. CRL_EINVAL for
 * n < 1, a size < 0 or size[0] == 0. */
int crl_metric_growth(const int64_t *size, int n, double *growth, crl_err *err);

/* A mean and its confidence interval [lo, hi]. */
typedef struct {
    double mean, lo, hi;
} crl_ci;

/* Mean of x[0..n) and its percentile-bootstrap CI at `level` (0.90 in the
 * specs) from `resamples` resamples (CRL_BOOTSTRAP_RESAMPLES). Resample r
 * draws n indices j = crl_rng_below(rng, n) in order and takes the mean of
 * x[j] (summed in draw order, divided by n). With the R means sorted
 * ascending, lo = m[floor(a R)] and hi = m[ceil((1 - a) R) - 1], a =
 * (1 - level) / 2: for 0.90 and 4,000, m[200] and m[3799], so 200 means lie
 * below lo and 200 above hi. n = 1: lo = hi = mean = x[0] and rng is not
 * advanced. Allocates R doubles for the duration of the call. CRL_EINVAL for
 * n < 1, resamples < 1, level outside (0, 1), a non-finite x; CRL_ENOMEM. */
int crl_metric_bootstrap_ci(const double *x, int n, int resamples, double level,
                            crl_rng *rng, crl_ci *ci, crl_err *err);

/* Separability ceiling of an L2M run's routing (docs/metrics.md): the
 * nearest-centroid task accuracy of n labelled query vectors q (n x dim,
 * row-major; label[p] in [0, n_tasks)). Task t's centroid is the mean of its
 * queries; for query p, its own task's centroid leaves p out (leave one
 * out), the other tasks' are their full means. Distance: Euclidean. Query p
 * is right when its own task's centroid is strictly nearer than every other
 * task's that has a query (a tie is wrong; a query alone in its task has no
 * centroid of its own and is wrong). *acc = right / n (so 1 when a single
 * task has queries, at least two of them). Allocates n_tasks x (dim + 1)
 * numbers for the call. The one implementation is crl_l2m_nearest_centroid
 * (agents/method_l2m.c, which logs it at task ends). CRL_EINVAL for a NULL pointer, n,
 * dim or n_tasks < 1, a label out of range or a non-finite value; CRL_ENOMEM. */
int crl_metric_ceiling(const float *q, const int *label, int n, int dim, int n_tasks,
                       double *acc, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
