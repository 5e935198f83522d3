/* crl report: the Continual World table of a run store.
 *
 * Reads finished runs from a store, groups them by (scenario, method,
 * steps_per_task), computes performance, forgetting and forward transfer per
 * seed with include/crl/metrics.h, and gives the seed mean with a bootstrap
 * 90% CI, beside model size, growth and wall time. Single-task reference runs
 * (CRL_REPORT_REF_METHOD) give the forward-transfer baseline and, for locomotion,
 * the score normaliser. Every definition is in docs/report.md. */
#ifndef CRL_REPORT_H
#define CRL_REPORT_H

#include <stdint.h>

#include "base.h"
#include "methods.h"
#include "metrics.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Method name of reference runs (the registry's CRL_METHOD_REFERENCE). */
#define CRL_REPORT_REF_METHOD (crl_method_with(CRL_METHOD_REFERENCE)->name)
#define CRL_REPORT_BOOT_SEED  0x43524C52u /* every CI uses a generator seeded so */

/* One line of the table: the finished runs of one method on one scenario with
 * one budget. A value that cannot be computed is NaN, and for forward transfer
 * ft_note says why. */
typedef struct {
    char scenario[64];
    char method[32];
    int64_t steps_per_task; /* config_json "steps_per_task"; -1 if unknown */
    int n_tasks;
    int n_seeds;          /* runs whose metrics were computed */
    char score[24];       /* "success", "return/ref" (normalised det_return) or
                             "return" (raw det_return: no usable normaliser) */
    char score_note[256]; /* why a locomotion score is raw; "" otherwise */
    crl_ci performance;   /* seed mean and bootstrap 90% CI */
    crl_ci forgetting;
    crl_ci forward_transfer; /* NaN when undefined: see ft_note */
    char ft_note[256];       /* "" when forward_transfer is a number */
    int n_ref_runs;          /* reference runs used (pooled over positions) */
    double params;           /* last "model/params", mean over seeds; NaN if none */
    double growth;           /* last / first "model/params", mean over seeds */
    double wall_time_s;      /* last "wall_time_s", mean over seeds; NaN if none */
} crl_report_row;

/* The routing of one L2M run that logged the step routing accuracy
 * ("l2m/route_acc_steps/<pos>") or the separability ceiling ("l2m/ceiling");
 * runs made before those metrics existed have none (their note keeps the
 * old routing accuracy). docs/report.md. */
#define CRL_REPORT_L2M_TASKS 64
typedef struct {
    int64_t run_id;
    char scenario[64];
    char method[32];
    uint64_t seed;
    int n_acc;                         /* tasks with an accuracy, <= L2M_TASKS */
    int acc_pos[CRL_REPORT_L2M_TASKS]; /* their scenario positions, ascending */
    double acc[CRL_REPORT_L2M_TASKS];  /* at the run's last evaluation */
    double acc_mean;                   /* mean of acc; NaN if n_acc = 0 */
    double used;                       /* last "l2m/used"; NaN if none */
    double ceiling, ceiling_n;         /* last "l2m/ceiling", "l2m/ceiling_n"; NaN */
} crl_report_l2m;

/* The grow-or-prune decisions of one CSP run made with the rule of issue
 * 21 (csp_decisions rows with a criterion; older runs have none and keep
 * their old note). docs/csp.md, docs/report.md. */
#define CRL_REPORT_CSP_TASKS 64
typedef struct {
    int64_t run_id;
    char scenario[64];
    char method[32];
    uint64_t seed;
    int n_tasks;                             /* decisions, <= CSP_TASKS */
    int pos[CRL_REPORT_CSP_TASKS];           /* scenario position of each */
    int anchors[CRL_REPORT_CSP_TASKS];       /* anchors after each decision */
    int kept[CRL_REPORT_CSP_TASKS];          /* 1: the new anchor stayed */
    char criterion[CRL_REPORT_CSP_TASKS][8]; /* "success", "return"; "" task 1 */
    int check_kept[CRL_REPORT_CSP_TASKS];    /* the check's decision; -1 none */
    int n_checked, n_agree;                  /* decisions with a check, agreeing */
    double accuracy;                         /* n_agree / n_checked; NaN if none */
    double decision_s;                       /* wall time of all decisions */
    double decision_share;                   /* of the run's wall time; NaN */
} crl_report_csp;

/* Below this separability ceiling the report says that the base embedding
 * cannot tell the tasks apart. */
#define CRL_REPORT_CEILING_LOW 0.9

typedef struct {
    int n_rows;
    crl_report_row *rows; /* by scenario, method (ft1 ftn l2 ewc packnet pm csp
                             l2m, then others by name), steps_per_task */
    int n_notes;
    char **notes; /* footnotes: runs ignored or skipped, and why */
    int n_l2m;
    crl_report_l2m *l2m; /* in the rows' order, then by run id */
    int n_csp;
    crl_report_csp *csp; /* in the rows' order, then by run id */
} crl_report;

/* Build the report of every finished run in store, or only of scenario when
 * it is not NULL. Runs that are not finished are counted in a note; a
 * finished run whose data cannot be read as a continual run (tasks missing,
 * an evaluation missing a task, ...) is skipped with a note naming it.
 * CRL_ENOTFOUND (message says what was there instead) if no finished
 * continual run remains; CRL_EIO / CRL_ENOMEM. On failure *out is zeroed. */
int crl_report_build(crl_store *store, const char *scenario, crl_report *out,
                     crl_err *err);
/* Free and zero. Safe on a zeroed struct and with NULL. */
void crl_report_free(crl_report *r);

typedef enum { CRL_REPORT_TABLE, CRL_REPORT_CSV, CRL_REPORT_JSON } crl_report_format;

/* "table", "csv", "json" -> *fmt; CRL_EINVAL for anything else. */
int crl_report_format_parse(const char *name, crl_report_format *fmt, crl_err *err);

/* Render r into a malloc'd NUL-terminated string (*text; caller frees).
 * TABLE: aligned columns, 3 decimals, "mean [lo, hi]", footnotes below.
 * CSV: RFC 4180, one header line, one line per row, empty field for NaN;
 *      report notes are not in it (the CLI prints them to stderr).
 * JSON: {"rows": [...], "notes": [...]} built with SQLite's JSON functions,
 *      plus "l2m": [...] (one object per crl_report_l2m) when n_l2m > 0
 *      and "csp": [...] (one per crl_report_csp) when n_csp > 0;
 *      NaN is null. Field names in docs/report.md. */
int crl_report_format_text(const crl_report *r, crl_report_format fmt, char **text,
                           crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
