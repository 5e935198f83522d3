/* PackNet's per-task views for the policy runtime (embed/packnet.h). */
#include "embed/packnet.h"

#include <stdlib.h>
#include <string.h>

/* [lo, hi) of hidden layer k's kernel W in the flat buffer (crl_mlp's layout:
 * in x out, so prev * width floats from W[k]). */
static void kernel_range(const crl_mlp *m, int k, size_t *lo, size_t *hi) {
    const size_t in = (size_t)(k ? m->spec.hidden[k - 1] : m->spec.in_dim);
    *lo = m->W[k];
    *hi = m->W[k] + in * (size_t)m->spec.hidden[k];
}

int pol_packnet_init(pol_packnet *p, const crl_mlp *mlp) {
    memset(p, 0, sizeof *p);
    p->mlp = mlp;
    p->task = -1;
    p->owner = malloc(mlp->n_params * sizeof *p->owner);
    if (!p->owner) return CRL_ENOMEM;
    for (size_t i = 0; i < mlp->n_params; i++) p->owner[i] = POL_PACKNET_SHARED;
    for (int k = 0; k < mlp->spec.n_hidden; k++) {
        size_t lo, hi;
        kernel_range(mlp, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) p->owner[i] = POL_PACKNET_FREE;
    }
    return CRL_OK;
}

void pol_packnet_free(pol_packnet *p) {
    if (!p) return;
    free(p->owner);
    memset(p, 0, sizeof *p);
}

void pol_packnet_view(const pol_packnet *p, const float *params, int task, float *out) {
    if (out != params) memcpy(out, params, p->mlp->n_params * sizeof *out);
    for (int k = 0; k < p->mlp->spec.n_hidden; k++) {
        size_t lo, hi;
        kernel_range(p->mlp, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const int o = p->owner[i];
            const int used = o >= 0 ? o <= task : task >= p->task;
            if (!used) out[i] = 0.0f;
        }
    }
}
