/* tanh-Gaussian policy head (SAC).
 *
 * Per action dim, with s = clip(raw log-std), sd = exp(s), u = mu + sd*eps,
 * a = tanh(u):
 *   logp = sum_j [-eps^2/2 - s - log(2 pi)/2] - sum_j 2 (log 2 - u - softplus(-2u))
 * where the second sum is log(1 - tanh(u)^2) in a form that stays finite for
 * large |u|. Derivatives with eps held fixed (reparameterisation):
 *   d/du [-2 (log 2 - u - softplus(-2u))] = 2 - 4 sigmoid(-2u) = 2 tanh(u)
 *   da/du = 1 - tanh(u)^2,  du/dmu = 1,  du/ds = sd * eps
 *   dlogp/ds has an extra -1 from the Gaussian normaliser.
 * Outside the clip range s does not depend on the raw value: zero gradient. */
#include "crl/nn.h"

#include <math.h>

#define HALF_LOG_2PI 0.91893853320467274178f
#define LOG2         0.69314718055994530942f

static inline float clip_logstd(float s) {
    /* NaN passes through (both comparisons false). */
    s = s < CRL_LOG_STD_MIN ? CRL_LOG_STD_MIN : s;
    return s > CRL_LOG_STD_MAX ? CRL_LOG_STD_MAX : s;
}

/* softplus(z) = log(1 + e^z), without overflow. */
static inline float softplus(float z) {
    return (z > 0.0f ? z : 0.0f) + log1pf(expf(-fabsf(z)));
}

void crl_tgauss_forward(int B, int A, const float *out, const float *eps, float *act,
                        float *logp) {
    for (int r = 0; r < B; r++) {
        const float *mu = out + (size_t)r * 2 * A, *ls = mu + A;
        const float *er = eps ? eps + (size_t)r * A : NULL;
        float *ar = act + (size_t)r * A;
        float lp = 0.0f;
        for (int j = 0; j < A; j++) {
            const float s = clip_logstd(ls[j]);
            const float e = er ? er[j] : 0.0f;
            const float u = mu[j] + expf(s) * e;
            ar[j] = tanhf(u);
            if (logp)
                lp += (-0.5f * e * e - s - HALF_LOG_2PI) -
                      2.0f * (LOG2 - u - softplus(-2.0f * u));
        }
        if (logp) logp[r] = lp;
    }
}

void crl_tgauss_backward(int B, int A, const float *out, const float *eps,
                         const float *dact, const float *dlogp, float *dout) {
    for (int r = 0; r < B; r++) {
        const float *mu = out + (size_t)r * 2 * A, *ls = mu + A;
        const float *er = eps ? eps + (size_t)r * A : NULL;
        const float *da = dact ? dact + (size_t)r * A : NULL;
        const float dl = dlogp ? dlogp[r] : 0.0f;
        float *dmu = dout + (size_t)r * 2 * A, *dls = dmu + A;
        for (int j = 0; j < A; j++) {
            const float raw = ls[j];
            const float s = clip_logstd(raw);
            const float e = er ? er[j] : 0.0f;
            const float sd = expf(s);
            const float t = tanhf(mu[j] + sd * e);
            const float du = (da ? da[j] * (1.0f - t * t) : 0.0f) + dl * 2.0f * t;
            dmu[j] = du;
            const int inside = raw >= CRL_LOG_STD_MIN && raw <= CRL_LOG_STD_MAX;
            dls[j] = inside ? du * sd * e - dl : 0.0f;
        }
    }
}
