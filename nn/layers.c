/* Single layers: Linear (sgemm), LayerNorm, elementwise activations.
 * Each forward has a backward that reads only what the forward saved. */
#include "crl/blas.h"
#include "crl/nn.h"

#include <math.h>
#include <string.h>

#include "nn/vec.h"

/* ---- Linear --------------------------------------------------------------- */

void crl_linear_forward(int B, int in, int out, const float *x, const float *W,
                        const float *b, float *y) {
    if (B <= 0 || out <= 0) return;
    if (in <= 0) { /* empty product: y = b */
        for (int r = 0; r < B; r++) {
            if (b)
                memcpy(y + (size_t)r * out, b, (size_t)out * sizeof *y);
            else
                memset(y + (size_t)r * out, 0, (size_t)out * sizeof *y);
        }
        return;
    }
    float beta = 0.0f;
    if (b) {
        /* Seed y with the bias and let sgemm accumulate onto it: one pass less
         * than adding the bias afterwards. */
        for (int r = 0; r < B; r++)
            memcpy(y + (size_t)r * out, b, (size_t)out * sizeof *y);
        beta = 1.0f;
    }
    crl_sgemm('N', 'N', B, out, in, 1.0f, x, in, W, out, beta, y, out);
}

/* db[j] += sum over rows of dy[r][j]. */
static void colsum_acc(int rows, int n, const float *restrict dy, float *restrict db) {
    for (int r = 0; r < rows; r++) {
        const float *d = dy + (size_t)r * n;
        int j = 0;
        for (; j + 4 <= n; j += 4) v4_store(db + j, v4_load(db + j) + v4_load(d + j));
        for (; j < n; j++) db[j] += d[j];
    }
}

void crl_linear_backward(int B, int in, int out, const float *x, const float *W,
                         const float *dy, float *dW, float *db, float *dx, int dw_rows) {
    if (B <= 0) return;
    if (dw_rows > B) dw_rows = B;
    if (dw_rows > 0 && in > 0 && out > 0 && dW)
        crl_sgemm('T', 'N', in, out, dw_rows, 1.0f, x, in, dy, out, 1.0f, dW, out);
    if (dw_rows > 0 && out > 0 && db) colsum_acc(dw_rows, out, dy, db);
    if (dx && in > 0) {
        if (out > 0)
            crl_sgemm('N', 'T', B, in, out, 1.0f, dy, out, W, out, 0.0f, dx, in);
        else
            memset(dx, 0, (size_t)B * in * sizeof *dx);
    }
}

/* ---- LayerNorm ------------------------------------------------------------ */

static inline float row_sum(int D, const float *restrict x) {
    v4f acc0 = v4_set1(0.0f), acc1 = v4_set1(0.0f);
    int j = 0;
    for (; j + 8 <= D; j += 8) {
        acc0 += v4_load(x + j);
        acc1 += v4_load(x + j + 4);
    }
    float s = v4_hsum(acc0 + acc1);
    for (; j < D; j++) s += x[j];
    return s;
}

void crl_layernorm_forward(int B, int D, const float *x, const float *g, const float *b,
                           float eps, float *y, float *xhat, float *rstd) {
    if (B <= 0 || D <= 0) return;
    const float invD = 1.0f / (float)D;
    for (int r = 0; r < B; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = y + (size_t)r * D, *hr = xhat + (size_t)r * D;
        const float mean = row_sum(D, xr) * invD;
        /* Two-pass variance: centred values are written to xhat first, so the
         * second pass sums squares of small numbers (no cancellation). */
        const v4f vm = v4_set1(mean);
        v4f a0 = v4_set1(0.0f), a1 = v4_set1(0.0f);
        int j = 0;
        for (; j + 8 <= D; j += 8) {
            v4f c0 = v4_load(xr + j) - vm, c1 = v4_load(xr + j + 4) - vm;
            v4_store(hr + j, c0);
            v4_store(hr + j + 4, c1);
            a0 += c0 * c0;
            a1 += c1 * c1;
        }
        float ss = v4_hsum(a0 + a1);
        for (; j < D; j++) {
            float c = xr[j] - mean;
            hr[j] = c;
            ss += c * c;
        }
        const float rs = 1.0f / sqrtf(ss * invD + eps);
        rstd[r] = rs;
        const v4f vr = v4_set1(rs);
        for (j = 0; j + 4 <= D; j += 4) {
            v4f h = v4_load(hr + j) * vr;
            v4_store(hr + j, h);
            v4_store(yr + j, h * v4_load(g + j) + v4_load(b + j));
        }
        for (; j < D; j++) {
            float h = hr[j] * rs;
            hr[j] = h;
            yr[j] = h * g[j] + b[j];
        }
    }
}

/* With h = xhat, dh = dy * g:
 *   dx = rstd * (dh - mean(dh) - h * mean(dh * h)).
 * Per row, all reads of dy happen in the first pass, so dx may alias dy. */
void crl_layernorm_backward(int B, int D, const float *dy, const float *xhat,
                            const float *rstd, const float *g, float *dg, float *db,
                            float *dx, int dw_rows) {
    if (B <= 0 || D <= 0) return;
    const float invD = 1.0f / (float)D;
    for (int r = 0; r < B; r++) {
        const float *dr = dy + (size_t)r * D, *hr = xhat + (size_t)r * D;
        const int acc = r < dw_rows;
        v4f s1 = v4_set1(0.0f), s2 = v4_set1(0.0f);
        int j = 0;
        for (; j + 4 <= D; j += 4) {
            v4f d = v4_load(dr + j), h = v4_load(hr + j);
            v4f dh = d * v4_load(g + j);
            s1 += dh;
            s2 += dh * h;
            if (acc) {
                if (dg) v4_store(dg + j, v4_load(dg + j) + d * h);
                if (db) v4_store(db + j, v4_load(db + j) + d);
            }
        }
        float m1 = v4_hsum(s1), m2 = v4_hsum(s2);
        for (; j < D; j++) {
            float d = dr[j], h = hr[j], dh = d * g[j];
            m1 += dh;
            m2 += dh * h;
            if (acc) {
                if (dg) dg[j] += d * h;
                if (db) db[j] += d;
            }
        }
        m1 *= invD;
        m2 *= invD;
        if (!dx) continue;
        float *xr = dx + (size_t)r * D;
        const float rs = rstd[r];
        const v4f vm1 = v4_set1(m1), vm2 = v4_set1(m2), vr = v4_set1(rs);
        for (j = 0; j + 4 <= D; j += 4) {
            v4f dh = v4_load(dr + j) * v4_load(g + j);
            v4_store(xr + j, vr * (dh - vm1 - v4_load(hr + j) * vm2));
        }
        for (; j < D; j++) xr[j] = rs * (dr[j] * g[j] - m1 - hr[j] * m2);
    }
}

/* ---- activations ------------------------------------------------------------ */

void crl__tanh_forward_generic(size_t n, const float *x, float *y) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) v4_store(y + i, crl__tanh_v4(v4_load(x + i)));
    for (; i < n; i++) y[i] = crl__tanh1(x[i]);
}

#if CRL_NN_AVX2
__attribute__((target("avx2"))) static void tanh_forward_avx2(size_t n, const float *x,
                                                              float *y) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v, r;
        memcpy(&v, x + i, sizeof v);
        CRL__TANH_VEC(v8f, v8i, v, r);
        memcpy(y + i, &r, sizeof r);
    }
    for (; i < n; i++) y[i] = crl__tanh1(x[i]);
}
#endif

void crl_act_forward(crl_act a, float slope, size_t n, const float *x, float *y) {
    size_t i = 0;
    switch (a) {
    case CRL_ACT_TANH:
#if CRL_NN_AVX2
        if (__builtin_cpu_supports("avx2")) {
            tanh_forward_avx2(n, x, y);
            break;
        }
#endif
        crl__tanh_forward_generic(n, x, y);
        break;
    case CRL_ACT_RELU: {
        const v4f z = v4_set1(0.0f);
        for (; i + 4 <= n; i += 4) {
            v4f v = v4_load(x + i);
            v4_store(y + i, v4_sel(v > z, v, z));
        }
        for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    }
    case CRL_ACT_LRELU: {
        const v4f z = v4_set1(0.0f), s = v4_set1(slope);
        for (; i + 4 <= n; i += 4) {
            v4f v = v4_load(x + i);
            v4_store(y + i, v4_sel(v > z, v, v * s));
        }
        for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
        break;
    }
    default:
        if (y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

void crl_act_backward(crl_act a, float slope, size_t n, const float *y, const float *dy,
                      float *dx) {
    size_t i = 0;
    switch (a) {
    case CRL_ACT_TANH: {
        const v4f one = v4_set1(1.0f);
        for (; i + 4 <= n; i += 4) {
            v4f t = v4_load(y + i);
            v4_store(dx + i, v4_load(dy + i) * (one - t * t));
        }
        for (; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    }
    case CRL_ACT_RELU: {
        const v4f z = v4_set1(0.0f);
        for (; i + 4 <= n; i += 4)
            v4_store(dx + i, v4_sel(v4_load(y + i) > z, v4_load(dy + i), z));
        for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    }
    case CRL_ACT_LRELU: {
        /* y > 0 iff x > 0 because slope > 0. */
        const v4f z = v4_set1(0.0f), s = v4_set1(slope);
        for (; i + 4 <= n; i += 4) {
            v4f d = v4_load(dy + i);
            v4_store(dx + i, v4_sel(v4_load(y + i) > z, d, d * s));
        }
        for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * slope;
        break;
    }
    default:
        if (dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}
