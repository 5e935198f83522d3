/* crl plot: figures of a run store drawn with cairo (PNG or SVG), from the
 * store alone: the Continual World curves of a run, its task x evaluation
 * matrix, and the methods of a scenario side by side (analysis/plot.c; see
 * docs/viz.md). */
#ifndef CRL_PLOT_H
#define CRL_PLOT_H

#include <stdint.h>

#include "base.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CRL_PLOT_CURVES = 0,     /* Continual World figure: success of every task over
                                training steps, task boundaries marked */
    CRL_PLOT_MATRIX = 1,     /* task x evaluation-point success heatmap */
    CRL_PLOT_COMPARE = 2,    /* methods of a scenario side by side: mean and 90%
                                bootstrap CI over seeds */
    CRL_PLOT_DIAGNOSTICS = 3 /* a run's training diagnostics (the diag/...
                                metrics, docs/diagnostics.md): one panel per
                                quantity over env steps, task boundaries
                                marked */
} crl_plot_kind;

/* The number plotted per (task, evaluation). AUTO: success when any
 * evaluation of the data succeeded at all, else the return (locomotion). */
typedef enum {
    CRL_PLOT_AUTO = 0,
    CRL_PLOT_SUCCESS = 1, /* success_rate of the stochastic episodes */
    CRL_PLOT_RETURN = 2   /* det_return (mean_return where a row has none) */
} crl_plot_metric;

typedef struct {
    crl_plot_kind kind;
    crl_plot_metric metric;
    int64_t run_id;       /* CURVES, MATRIX, DIAGNOSTICS */
    const char *scenario; /* COMPARE */
    int width, height;    /* pixels (PNG) or points (SVG); 0 = per-kind default */
    const char *title;    /* NULL = made from the run / scenario */
} crl_plot_opts;

/* "curves" (also "cw"), "matrix", "compare", "diagnostics" (also "diag") ->
 * *kind; CRL_EINVAL otherwise. */
int crl_plot_kind_parse(const char *name, crl_plot_kind *kind, crl_err *err);

/* Draw the plot from the store alone and write it to path; the format comes
 * from the extension (.png, .svg). CRL_EINVAL (bad options or extension),
 * CRL_ENOTFOUND (no such run, no evals, no diagnostics rows, no runs of the
 * scenario: the message says which; nothing is written), CRL_EIO (cannot
 * write). */
int crl_plot_write(crl_store *store, const crl_plot_opts *o, const char *path,
                   crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
