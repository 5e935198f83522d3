/* Adam, Polyak averaging, finiteness check over flat buffers. */
#include "crl/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/vec.h"

int crl_adam_init(crl_adam *a, size_t n, float lr, crl_err *err) {
    if (!a) return crl_errf(err, CRL_EINVAL, "adam: NULL argument");
    memset(a, 0, sizeof *a);
    a->n = n;
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-7f;
    a->t = 0;
    size_t bytes = (n ? n : 1) * sizeof(float);
    a->m = calloc(1, bytes);
    a->v = calloc(1, bytes);
    if (!a->m || !a->v) {
        crl_adam_free(a);
        return crl_errf(err, CRL_ENOMEM,
                        "adam: cannot allocate moments for %zu parameters", n);
    }
    return CRL_OK;
}

void crl_adam_free(crl_adam *a) {
    if (!a) return;
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void crl_adam_reset(crl_adam *a) {
    if (a->n) {
        memset(a->m, 0, a->n * sizeof *a->m);
        memset(a->v, 0, a->n * sizeof *a->v);
    }
    a->t = 0;
}

/* Kingma & Ba with bias correction folded into two scalars:
 *   p -= lr * (m * c1) / (sqrt(v) * c2 + eps),  c1 = 1/(1-b1^t), c2 = 1/sqrt(1-b2^t)
 * which is lr * mhat / (sqrt(vhat) + eps); lr_c1 = lr * c1. Frozen entries
 * (trainable[i] == 0) keep their old bits exactly, moments included. */
#define ADAM_SCALAR_TAIL()                                                               \
    for (; i < n; i++) {                                                                 \
        if (trainable && !trainable[i]) continue;                                        \
        const float gi = g[i];                                                           \
        const float mn = b1 * m[i] + (1.0f - b1) * gi;                                   \
        const float vn = b2 * v[i] + (1.0f - b2) * (gi * gi);                            \
        m[i] = mn;                                                                       \
        v[i] = vn;                                                                       \
        p[i] = p[i] - lr_c1 * mn / (sqrtf(vn) * c2 + eps);                               \
    }

/* One vector of lanes; VF/VI vector types, SQRT a lane-wise square root,
 * MASK an expression giving the VI lane mask of trainable entries. */
#define ADAM_VEC(VF, VI, SQRT, MASK)                                                     \
    do {                                                                                 \
        VF gi, mi, vi, pi;                                                               \
        memcpy(&gi, g + i, sizeof gi);                                                   \
        memcpy(&mi, m + i, sizeof mi);                                                   \
        memcpy(&vi, v + i, sizeof vi);                                                   \
        memcpy(&pi, p + i, sizeof pi);                                                   \
        VF mn = b1 * mi + (1.0f - b1) * gi;                                              \
        VF vn = b2 * vi + (1.0f - b2) * (gi * gi);                                       \
        VF pn = pi - lr_c1 * mn / (SQRT(vn) * c2 + eps);                                 \
        if (trainable) {                                                                 \
            VI k_ = MASK;                                                                \
            mn = (VF)((k_ & (VI)mn) | (~k_ & (VI)mi));                                   \
            vn = (VF)((k_ & (VI)vn) | (~k_ & (VI)vi));                                   \
            pn = (VF)((k_ & (VI)pn) | (~k_ & (VI)pi));                                   \
        }                                                                                \
        memcpy(m + i, &mn, sizeof mn);                                                   \
        memcpy(v + i, &vn, sizeof vn);                                                   \
        memcpy(p + i, &pn, sizeof pn);                                                   \
    } while (0)

#define TR(k) (-(int32_t)(trainable[i + (k)] != 0))

void crl__adam_update_generic(size_t n, float *restrict p, float *restrict m,
                              float *restrict v, const float *restrict g,
                              const uint8_t *restrict trainable, float b1, float b2,
                              float lr_c1, float c2, float eps) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        ADAM_VEC(v4f, v4i, v4_sqrt, ((v4i){TR(0), TR(1), TR(2), TR(3)}));
    ADAM_SCALAR_TAIL()
}

#if CRL_NN_AVX2
static inline __attribute__((always_inline, target("avx2"))) v8f v8_sqrt(v8f x) {
    return (v8f)_mm256_sqrt_ps((__m256)x);
}

__attribute__((target("avx2"))) static void
adam_update_avx2(size_t n, float *restrict p, float *restrict m, float *restrict v,
                 const float *restrict g, const uint8_t *restrict trainable, float b1,
                 float b2, float lr_c1, float c2, float eps) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        ADAM_VEC(v8f, v8i, v8_sqrt,
                 ((v8i){TR(0), TR(1), TR(2), TR(3), TR(4), TR(5), TR(6), TR(7)}));
    ADAM_SCALAR_TAIL()
}
#endif

void crl_adam_tick(crl_adam *a) {
    a->t++;
}

void crl_adam_step_range(const crl_adam *a, float *params, const float *grads,
                         const uint8_t *trainable, size_t lo, size_t hi) {
    if (hi <= lo) return;
    const double t = (double)a->t;
    const float lr_c1 = (float)((double)a->lr / (1.0 - pow((double)a->beta1, t)));
    const float c2 = (float)(1.0 / sqrt(1.0 - pow((double)a->beta2, t)));
    const uint8_t *tr = trainable ? trainable + lo : NULL;
#if CRL_NN_AVX2
    if (__builtin_cpu_supports("avx2")) {
        adam_update_avx2(hi - lo, params + lo, a->m + lo, a->v + lo, grads + lo, tr,
                         a->beta1, a->beta2, lr_c1, c2, a->eps);
        return;
    }
#endif
    crl__adam_update_generic(hi - lo, params + lo, a->m + lo, a->v + lo, grads + lo, tr,
                             a->beta1, a->beta2, lr_c1, c2, a->eps);
}

void crl_adam_step(crl_adam *a, float *params, const float *grads,
                   const uint8_t *trainable) {
    crl_adam_tick(a);
    crl_adam_step_range(a, params, grads, trainable, 0, a->n);
}

void crl_polyak(float *target, const float *src, size_t n, float polyak) {
    float *restrict t = target;
    const float *restrict s = src;
    const float q = 1.0f - polyak;
    const v4f vp = v4_set1(polyak), vq = v4_set1(q);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) v4_store(t + i, vp * v4_load(t + i) + vq * v4_load(s + i));
    for (; i < n; i++) t[i] = polyak * t[i] + q * s[i];
}

/* A float is non-finite iff its exponent bits are all ones. */
int crl_all_finite(const float *x, size_t n) {
    const v4i ex = {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000};
    size_t i = 0;
    while (i + 4 <= n) {
        /* Blocks of 1024 keep the loop tight and still exit early. */
        size_t end = i + 1024 <= n ? i + 1024 : n - (n - i) % 4;
        v4i bad = {0, 0, 0, 0};
        for (; i < end; i += 4) {
            v4i b;
            memcpy(&b, x + i, sizeof b);
            bad |= (b & ex) == ex;
        }
        if (bad[0] | bad[1] | bad[2] | bad[3]) return 0;
    }
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        if ((b & 0x7f800000u) == 0x7f800000u) return 0;
    }
    return 1;
}
