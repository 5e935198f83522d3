/* viz: plots of a run store, drawn with cairo. */
#include <string.h>

#include "crl/viz.h"

int crl_plot_kind_parse(const char *name, crl_plot_kind *kind, crl_err *err) {
    if (name && (!strcmp(name, "curves") || !strcmp(name, "cw")))
        *kind = CRL_PLOT_CURVES;
    else if (name && !strcmp(name, "matrix"))
        *kind = CRL_PLOT_MATRIX;
    else if (name && !strcmp(name, "compare"))
        *kind = CRL_PLOT_COMPARE;
    else
        return crl_errf(err, CRL_EINVAL,
                        "unknown plot kind '%s' (curves, matrix or compare)",
                        name ? name : "");
    return CRL_OK;
}

int crl_plot_write(crl_store *store, const crl_plot_opts *o, const char *path,
                   crl_err *err) {
    return crl_errf(err, CRL_EINVAL, "plots are not implemented yet");
}
