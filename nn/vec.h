/* Internal to nn/: 4-wide float vectors for the elementwise loops.
 *
 * The project builds with -O2 and no -march. GCC 12 at -O2 only vectorises
 * loops whose trip count is a known multiple of the vector width and does not
 * if-convert float selects, so the activation, LayerNorm and Adam loops would
 * run scalar. GCC/Clang vector extensions make the 4-wide SSE code explicit
 * and stay portable to other targets (the compiler lowers them). Unaligned
 * loads and stores go through memcpy, which compiles to movups. */
#ifndef CRL_NN_VEC_H
#define CRL_NN_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v4_store(float *p, v4f v) {
    memcpy(p, &v, sizeof v);
}
static inline v4f v4_set1(float a) {
    return (v4f){a, a, a, a};
}
/* m lanes are all-ones (true) or zero, as produced by vector comparisons. */
static inline v4f v4_sel(v4i m, v4f a, v4f b) {
    return (v4f)((m & (v4i)a) | (~m & (v4i)b));
}
static inline float v4_hsum(v4f v) {
    return (v[0] + v[1]) + (v[2] + v[3]);
}
static inline v4f v4_sqrt(v4f v) {
#if defined(__SSE__)
    return (v4f)_mm_sqrt_ps((__m128)v);
#else
    return (v4f){__builtin_sqrtf(v[0]), __builtin_sqrtf(v[1]), __builtin_sqrtf(v[2]),
                 __builtin_sqrtf(v[3])};
#endif
}

/* tanh as a 13/6 rational function (the coefficients of Eigen's float
 * tanh), max abs error about 4e-7 against tanh in double, |result| <= 1.
 * The clamp is written so that NaN passes through: a diverging network must
 * still show up in crl_all_finite. Same operation order as crl__tanh_v4, so
 * scalar tails agree bit for bit with vector lanes. */
#define CRL__TANH_CLAMP 7.90531110763549805f
#define CRL__TANH_POLY(T, xc, out)                                                       \
    do {                                                                                 \
        T x2_ = (xc) * (xc);                                                             \
        T p_ = x2_ * -2.76076847742355e-16f + 2.00018790482477e-13f;                     \
        p_ = p_ * x2_ + -8.60467152213735e-11f;                                          \
        p_ = p_ * x2_ + 5.12229709037114e-08f;                                           \
        p_ = p_ * x2_ + 1.48572235717979e-05f;                                           \
        p_ = p_ * x2_ + 6.37261928875436e-04f;                                           \
        p_ = p_ * x2_ + 4.89352455891786e-03f;                                           \
        p_ = p_ * (xc);                                                                  \
        T q_ = x2_ * 1.19825839466702e-06f + 1.18534705686654e-04f;                      \
        q_ = q_ * x2_ + 2.26843463243900e-03f;                                           \
        q_ = q_ * x2_ + 4.89352518554385e-03f;                                           \
        (out) = p_ / q_;                                                                 \
    } while (0)

static inline float crl__tanh1(float x) {
    float xc = x > CRL__TANH_CLAMP ? CRL__TANH_CLAMP : x;
    xc = xc < -CRL__TANH_CLAMP ? -CRL__TANH_CLAMP : xc;
    float y;
    CRL__TANH_POLY(float, xc, y);
    return y;
}

/* Clamp then polynomial for any vector type VF with int lanes VI. */
#define CRL__TANH_VEC(VF, VI, x, out)                                                    \
    do {                                                                                 \
        const VF c_ = (VF){0} + CRL__TANH_CLAMP;                                         \
        VI m_ = (x) > c_;                                                                \
        VF xc_ = (VF)((m_ & (VI)c_) | (~m_ & (VI)(x)));                                  \
        m_ = xc_ < -c_;                                                                  \
        xc_ = (VF)((m_ & (VI)(-c_)) | (~m_ & (VI)xc_));                                  \
        CRL__TANH_POLY(VF, xc_, out);                                                    \
    } while (0)

static inline v4f crl__tanh_v4(v4f x) {
    v4f y;
    CRL__TANH_VEC(v4f, v4i, x, y);
    return y;
}

/* 8-wide AVX2 variants of the heaviest loops (tanh, Adam), chosen at run time
 * with __builtin_cpu_supports: about 3x faster than SSE for tanh. Only locals
 * are 8-wide, so the baseline ABI is untouched. */
#if defined(__GNUC__) && defined(__x86_64__)
#define CRL_NN_AVX2 1
#include <immintrin.h>
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#else
#define CRL_NN_AVX2 0
#endif

/* The portable (SSE) kernels, exported under internal names so the tests can
 * check them against the dispatched ones on AVX2 machines. */
void crl__tanh_forward_generic(size_t n, const float *x, float *y);
void crl__adam_update_generic(size_t n, float *p, float *m, float *v, const float *g,
                              const uint8_t *trainable, float b1, float b2, float lr_c1,
                              float c2, float eps);

#endif
