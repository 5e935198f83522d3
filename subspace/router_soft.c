/* Soft merging of modulators (SMEAR): top-k selection with softmax weights,
 * the weighted average of the chosen parameter blocks, and its backward.
 * See include/crl/routers.h and docs/routers.md. */
#include "crl/routers.h"

#include <math.h>
#include <string.h>

int crl_soft_select(const double *scores, int M, int k, float temperature, int *idx,
                    float *w, crl_err *err) {
    if (!scores || !idx || !w) return crl_errf(err, CRL_EINVAL, "soft: NULL argument");
    if (k < 1 || k > M)
        return crl_errf(err, CRL_EINVAL, "soft: k %d outside [1, %d]", k, M);
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return crl_errf(err, CRL_EINVAL, "soft: temperature %g must be > 0 and finite",
                        (double)temperature);
    int finite = 0;
    for (int m = 0; m < M; m++) {
        if (isnan(scores[m]))
            return crl_errf(err, CRL_EINVAL, "soft: score of modulator %d is NaN", m);
        if (scores[m] != -INFINITY) finite++;
    }
    if (finite < k)
        return crl_errf(err, CRL_EINVAL, "soft: %d selectable modulators, k = %d", finite,
                        k);
    /* k passes of a first-argmax over the unchosen: O(k M), k is small. */
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int m = 0; m < M; m++) {
            if (scores[m] == -INFINITY) continue;
            int taken = 0;
            for (int j = 0; j < i; j++) taken |= idx[j] == m;
            if (taken) continue;
            if (best < 0 || scores[m] > scores[best]) best = m;
        }
        idx[i] = best;
    }
    if (k == 1) {
        w[0] = 1.0f;
        return CRL_OK;
    }
    const double top = scores[idx[0]], T = (double)temperature;
    double z = 0.0;
    for (int i = 0; i < k; i++) z += exp((scores[idx[i]] - top) / T);
    for (int i = 0; i < k; i++) w[i] = (float)(exp((scores[idx[i]] - top) / T) / z);
    return CRL_OK;
}

void crl_soft_merge(const crl_pool *p, const float *params, const int *idx,
                    const float *w, int k, float *block) {
    const size_t n = p->mod_size;
    const float *t0 = params + crl_pool_mod_offset(p, idx[0]);
    if (k == 1) {
        memcpy(block, t0, n * sizeof *block);
        return;
    }
    const float w0 = w[0];
    for (size_t j = 0; j < n; j++) block[j] = w0 * t0[j];
    for (int i = 1; i < k; i++) {
        const float *t = params + crl_pool_mod_offset(p, idx[i]);
        const float wi = w[i];
        for (size_t j = 0; j < n; j++) block[j] += wi * t[j];
    }
}

void crl_soft_merge_backward(const crl_pool *p, const float *gblock, const int *idx,
                             const float *w, int k, float *grads) {
    const size_t n = p->mod_size;
    for (int i = 0; i < k; i++) {
        float *g = grads + crl_pool_mod_offset(p, idx[i]);
        if (k == 1) {
            for (size_t j = 0; j < n; j++) g[j] += gblock[j];
        } else {
            const float wi = w[i];
            for (size_t j = 0; j < n; j++) g[j] += wi * gblock[j];
        }
    }
}

void crl_soft_weight_grads(const crl_pool *p, const float *params, const float *gblock,
                           const int *idx, int k, double *dw) {
    const size_t n = p->mod_size;
    for (int i = 0; i < k; i++) {
        const float *t = params + crl_pool_mod_offset(p, idx[i]);
        double s = 0.0;
        for (size_t j = 0; j < n; j++) s += (double)gblock[j] * t[j];
        dw[i] = s;
    }
}

void crl_soft_score_grads(const float *w, const double *dw, int k, float temperature,
                          double *dscore) {
    double mean = 0.0;
    for (int j = 0; j < k; j++) mean += (double)w[j] * dw[j];
    for (int i = 0; i < k; i++)
        dscore[i] = (double)w[i] * (dw[i] - mean) / (double)temperature;
}
