/* Finite-difference gradient checks for float code, shared by the tests.
 *
 * Pattern: write a loss callback that runs the forward pass and returns a
 * scalar in double, typically L = sum_i r_i * y_i with a fixed random
 * projection r (fd_dot). The analytic gradient comes from the backward pass
 * with dy = r; fd_grad perturbs each parameter in place (restoring it bit for
 * bit) and fd_check compares the two.
 *
 * The step is divided by the difference of the float values actually used,
 * (float)(p+h) - (float)(p-h), not by 2h, which removes the representation
 * error of the step. With h ~ 1e-3, O(1) activations and a few dozen output
 * terms, float rounding in the forward pass leaves an absolute noise of about
 * 1e-5..1e-4 in the numerical gradient: an atol of ~5e-4 plus a relative
 * tolerance of ~1e-2 separates noise from real errors. Keep the function away
 * from kinks (relu at 0) by more than h, or the check is meaningless there. */
#ifndef CRL_TESTS_FD_H
#define CRL_TESTS_FD_H

#include <check.h>

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "crl/base.h"

typedef double (*fd_loss_fn)(void *ctx);

/* d loss / d p[0], by central differences. */
static inline double fd_partial(float *p, float h, fd_loss_fn loss, void *ctx) {
    const float orig = *p;
    const float hp = orig + h, hm = orig - h;
    *p = hp;
    const double lp = loss(ctx);
    *p = hm;
    const double lm = loss(ctx);
    *p = orig;
    return (lp - lm) / ((double)hp - (double)hm);
}

/* out[i] = d loss / d p[i] for i < n. */
static inline void fd_grad(float *p, size_t n, float h, fd_loss_fn loss, void *ctx,
                           double *out) {
    for (size_t i = 0; i < n; i++) out[i] = fd_partial(p + i, h, loss, ctx);
}

/* sum_i r[i] * y[i] in double. */
static inline double fd_dot(const float *y, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * (double)y[i];
    return s;
}

static inline void fd_uniform(crl_rng *rng, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)crl_rng_range(rng, lo, hi);
}

static inline void fd_normal(crl_rng *rng, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)crl_rng_normal(rng);
}

/* Number of i with |a[i] - num[i]| > atol + rtol * max(|a[i]|, |num[i]|).
 * The first few mismatches are described in msg (may be NULL). Also counts
 * any non-finite analytic value as a mismatch. */
static inline size_t fd_check(const char *what, const float *a, const double *num,
                              size_t n, double rtol, double atol, char *msg, size_t cap) {
    size_t bad = 0, used = 0;
    if (msg && cap) msg[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const double x = a[i], y = num[i];
        const double tol = atol + rtol * fmax(fabs(x), fabs(y));
        if (isfinite(x) && fabs(x - y) <= tol) continue;
        if (msg && used < cap && bad < 4) {
            int k = snprintf(msg + used, cap - used,
                             "%s[%zu]: analytic %.6g numeric %.6g; ", what, i, x, y);
            if (k > 0) used += (size_t)k < cap - used ? (size_t)k : cap - used - 1;
        }
        bad++;
    }
    return bad;
}

/* Zeroed buffers that fail the test when allocation fails (tests only). */
static inline float *fbuf(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}
static inline double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

#define CHECK_GRAD(what, a, num, n, rtol, atol)                                          \
    do {                                                                                 \
        char msg_[600];                                                                  \
        size_t bad_ = fd_check(what, a, num, n, rtol, atol, msg_, sizeof msg_);          \
        ck_assert_msg(bad_ == 0, "%zu/%zu mismatches: %s", bad_, (size_t)(n), msg_);     \
    } while (0)

#endif
