/* PackNet's per-task view of an actor (nn/packnet.h). */
#include "nn/packnet.h"

#include <string.h>

/* [lo, hi) of hidden layer k's kernel W in the flat buffer: in x out floats
 * from W[k] (crl_mlp's layout). */
static void kernel_range(const crl_mlp *m, int k, size_t *lo, size_t *hi) {
    const size_t in = (size_t)(k ? m->spec.hidden[k - 1] : m->spec.in_dim);
    *lo = m->W[k];
    *hi = m->W[k] + in * (size_t)m->spec.hidden[k];
}

void crl_pkview_place(const crl_mlp *m, int16_t *owner) {
    for (size_t i = 0; i < m->n_params; i++) owner[i] = CRL_PKVIEW_SHARED;
    for (int k = 0; k < m->spec.n_hidden; k++) {
        size_t lo, hi;
        kernel_range(m, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) owner[i] = CRL_PKVIEW_FREE;
    }
}

int crl_pkview_owner_ok(int kernel, int owner, int cur_task) {
    return kernel ? owner == CRL_PKVIEW_FREE || (owner >= 0 && owner <= cur_task)
                  : owner == CRL_PKVIEW_SHARED;
}

void crl_pkview(const crl_mlp *m, const int16_t *owner, int cur_task, const float *params,
                int task, float *out) {
    if (out != params) memcpy(out, params, m->n_params * sizeof *out);
    for (int k = 0; k < m->spec.n_hidden; k++) {
        size_t lo, hi;
        kernel_range(m, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const int o = owner[i];
            const int used = o >= 0 ? o <= task : task >= cur_task;
            if (!used) out[i] = 0.0f;
        }
    }
}
