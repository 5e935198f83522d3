/* Tests for the routers' math (include/crl/routers.h).
 *
 *  - crl_sgesvd is resolved from OpenBLAS and gives a known SVD;
 *  - arrow: prototypes on hand cases where Delta has rank 1 (v known
 *    exactly), a fresh modulator's zero prototype, and random LoRA / (IA)^3
 *    pools against an independent power iteration in double on
 *    Delta Delta^T; scores against the formula computed here in double;
 *  - l2r: a gradient check of the loss by finite differences; 3 Gaussian
 *    clusters in 8-D (Bayes accuracy bounded in the test) reached on held-out
 *    points; determinism; save/load; predict does not allocate;
 *  - soft: top-k selection and softmax weights by hand, the k = 1 merge equal
 *    to the chosen modulator bit for bit, the merge against a double sum, and
 *    the backward (to parameters and to scores) against finite differences. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/nn.h"
#include "crl/pool.h"
#include "crl/routers.h"
#include "fd.h"

#include "malloc_count.h"
#include "pool_fixture.h"

#define RTOL 1e-2
#define ATOL 5e-4
#define H    1e-3f

static void make_base(crl_mlp *m, float **params, crl_rng *rng) {
    pool_make_base(m, params, rng, 2);
}

static int in_of(const crl_pool *p, int l) {
    return l == 0 ? p->base.spec.in_dim : p->base.spec.hidden[l - 1];
}

/* ---- sgesvd ------------------------------------------------------------------ */

START_TEST(test_sgesvd_known) {
    /* column-major 2 x 2 [[3, 0], [0, -5]]: singular values 5, 3; the top left
     * singular vector is +-e1. */
    float a[4] = {3, 0, 0, -5}, s[2], u[4], vt[4], work[64];
    crl_err err = {0};
    ck_assert_int_eq(crl_sgesvd('S', 'S', 2, 2, a, 2, s, u, 2, vt, 2, work, 64, &err), 0);
    ck_assert_float_eq_tol(s[0], 5.0f, 1e-6f);
    ck_assert_float_eq_tol(s[1], 3.0f, 1e-6f);
    ck_assert_float_eq_tol(fabsf(u[1]), 1.0f, 1e-6f);
    ck_assert_float_eq_tol(u[0], 0.0f, 1e-6f);
    /* A bad argument is an error, not a crash. */
    ck_assert_int_eq(crl_sgesvd('S', 'S', 2, 2, a, 1, s, u, 2, vt, 2, work, 64, &err),
                     CRL_EINVAL);
    ck_assert(strstr(err.msg, "lda 1") != NULL);
}
END_TEST

/* ---- arrow -------------------------------------------------------------------- */

/* Delta_l of modulator m in double, in x out row major. */
static void delta_of(const crl_pool *p, const float *base, const float *params, int m,
                     int l, double *d) {
    const int in = in_of(p, l), out = p->base.spec.hidden[l];
    const float *mod = params + crl_pool_mod_offset(p, m);
    for (int i = 0; i < in; i++)
        for (int j = 0; j < out; j++) {
            double acc = 0.0;
            if (p->kind == CRL_POOL_LORA) {
                for (int k = 0; k < p->rank; k++)
                    acc += (double)mod[p->A[l] + (size_t)i * p->rank + k] *
                           mod[p->B[l] + (size_t)k * out + j];
                acc *= p->scale;
            } else {
                acc = (double)base[p->base.W[l] + (size_t)i * out + j] *
                      ((double)mod[p->g[l] + j] - 1.0);
            }
            d[(size_t)i * out + j] = acc;
        }
}

/* Top eigenvector of Delta Delta^T by power iteration in double, iterated
 * until successive unit vectors differ by < 1e-12 (fails otherwise). */
static void power_top(const double *d, int in, int out, double *v) {
    double *g = dbuf((size_t)in * in), *w = dbuf((size_t)in);
    for (int i = 0; i < in; i++)
        for (int k = 0; k < in; k++) {
            double acc = 0.0;
            for (int j = 0; j < out; j++)
                acc += d[(size_t)i * out + j] * d[(size_t)k * out + j];
            g[(size_t)i * in + k] = acc;
        }
    for (int i = 0; i < in; i++) v[i] = 1.0 + 0.01 * i;
    int done = 0;
    for (int it = 0; it < 2000000 && !done; it++) {
        double nn = 0.0;
        for (int i = 0; i < in; i++) {
            double acc = 0.0;
            for (int k = 0; k < in; k++) acc += g[(size_t)i * in + k] * v[k];
            w[i] = acc;
            nn += acc * acc;
        }
        nn = sqrt(nn);
        ck_assert(nn > 0.0);
        double diff = 0.0;
        for (int i = 0; i < in; i++) {
            w[i] /= nn;
            diff += (w[i] - v[i]) * (w[i] - v[i]);
            v[i] = w[i];
        }
        done = sqrt(diff) < 1e-12;
    }
    ck_assert_msg(done, "power iteration did not converge");
    free(g);
    free(w);
}

static void arrow_protos(const crl_pool *p, const float *base, const float *params,
                         float *protos) {
    size_t n = 0;
    crl_err err = {0};
    ck_assert_int_eq(crl_arrow_ws_floats(p, &n, &err), 0);
    ck_assert(n > 0);
    float *ws = fbuf(n);
    ck_assert_msg(crl_arrow_prototypes(p, base, params, 0, p->M, protos, ws, n, &err) ==
                      0,
                  "%s", err.msg);
    free(ws);
}

/* Rank-1 hand cases: LoRA with only A[:,1] = a and B[1,:] = b nonzero gives
 * Delta = s a b^T, so v = a / |a|; (IA)^3 with g = 1 except g_j gives
 * Delta = W[:,j] (g_j - 1) e_j^T, so v = W[:,j] / |W[:,j]|; signs such that
 * the largest-magnitude entry is positive. A fresh modulator gives v = 0. */
START_TEST(test_arrow_rank1_hand) {
    crl_rng rng;
    crl_rng_seed(&rng, 11);
    crl_mlp base;
    float *bp;
    make_base(&base, &bp, &rng);
    const int kind = _i == 0 ? CRL_POOL_LORA : CRL_POOL_IA3;
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &base, kind, 3, 4, 2.0f, NULL), 0);
    float *params = fbuf(p.n_params);
    crl_pool_init_params(&p, params, &rng); /* fresh: B = 0 / g = 1 */
    const size_t dim = crl_arrow_proto_dim(&p);
    float *protos = fbuf(p.M * dim);
    for (size_t i = 0; i < p.M * dim; i++) protos[i] = 99.0f;
    /* Modulator 1, every layer: the rank-1 update; modulator 0 stays fresh;
     * modulator 2: layer 1 only. */
    double expect[3][CRL_MLP_MAX_HIDDEN][16]; /* [m][l][i] */
    for (int l = 0; l < p.base.spec.n_hidden; l++) {
        const int in = in_of(&p, l), out = p.base.spec.hidden[l];
        for (int m = 1; m < 3; m++) {
            if (m == 2 && l != 1) continue;
            float *mod = params + crl_pool_mod_offset(&p, m);
            double nn = 0.0;
            int big = 0;
            if (kind == CRL_POOL_LORA) {
                memset(mod + p.A[l], 0, (size_t)in * p.rank * sizeof(float));
                for (int i = 0; i < in; i++) {
                    /* a: entries in (-1, 1) but entry 2 is -3: the sign flips. */
                    const float a = i == 2 ? -3.0f : (float)crl_rng_range(&rng, -1, 1);
                    mod[p.A[l] + (size_t)i * p.rank + 1] = a;
                    expect[m][l][i] = a;
                }
                for (int j = 0; j < out; j++)
                    mod[p.B[l] + (size_t)1 * out + j] = (float)crl_rng_range(&rng, -1, 1);
            } else {
                const int jj = out - 2;
                mod[p.g[l] + jj] = 1.75f;
                for (int i = 0; i < in; i++)
                    expect[m][l][i] = bp[base.W[l] + (size_t)i * out + jj];
            }
            double *e = expect[m][l];
            for (int i = 0; i < in; i++) {
                nn += e[i] * e[i];
                if (fabs(e[i]) > fabs(e[big])) big = i;
            }
            const double sg = e[big] < 0 ? -1.0 : 1.0;
            for (int i = 0; i < in; i++) e[i] *= sg / sqrt(nn);
        }
    }
    arrow_protos(&p, bp, params, protos);
    for (int l = 0; l < p.base.spec.n_hidden; l++) {
        const int in = in_of(&p, l);
        const size_t off = crl_arrow_proto_offset(&p, l);
        for (int i = 0; i < in; i++) {
            ck_assert_float_eq(protos[0 * dim + off + i], 0.0f); /* fresh */
            ck_assert_msg(fabs(protos[1 * dim + off + i] - expect[1][l][i]) < 1e-5,
                          "l %d i %d: %g vs %g", l, i, protos[dim + off + i],
                          expect[1][l][i]);
            if (l == 1)
                ck_assert(fabs(protos[2 * dim + off + i] - expect[2][l][i]) < 1e-5);
            else
                ck_assert_float_eq(protos[2 * dim + off + i], 0.0f);
        }
    }
    /* A row through a fresh modulator scores 0; modulator 1's layer-0 score of
     * h_0 = v is exactly |v| = 1 (normalised and raw alike). */
    const int B = 1;
    float *h[CRL_MLP_MAX_HIDDEN];
    for (int l = 0; l < p.base.spec.n_hidden; l++) h[l] = fbuf((size_t)in_of(&p, l));
    for (int i = 0; i < in_of(&p, 0); i++) h[0][i] = (float)expect[1][0][i];
    double sc[3];
    crl_arrow_scores(&p, protos, (const float *const *)h, B, 0, sc);
    ck_assert(sc[0] == 0.0);
    ck_assert(fabs(sc[1] - 1.0) < 1e-6);
    ck_assert(sc[2] == 0.0); /* layer 0 of modulator 2 is fresh, other h are 0 */
    for (int l = 0; l < p.base.spec.n_hidden; l++) free(h[l]);
    free(protos);
    free(params);
    free(bp);
}
END_TEST

/* Random non-trivial modulators: every prototype equals the power iteration's
 * top eigenvector of Delta Delta^T up to sign, to 1e-4, has unit norm, and its
 * largest-magnitude entry is positive. */
START_TEST(test_arrow_matches_power_iteration) {
    crl_rng rng;
    crl_rng_seed(&rng, 21 + (uint64_t)_i);
    crl_mlp base;
    float *bp;
    make_base(&base, &bp, &rng);
    const int kind = _i == 0 ? CRL_POOL_LORA : CRL_POOL_IA3;
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &base, kind, 4, 8, 2.0f, NULL), 0);
    float *params = fbuf(p.n_params);
    crl_pool_init_params(&p, params, &rng);
    for (size_t k = crl_pool_mod_offset(&p, 0); k < p.n_params; k++)
        params[k] += (float)crl_rng_range(&rng, -0.5, 0.5);
    const size_t dim = crl_arrow_proto_dim(&p);
    float *protos = fbuf(p.M * dim);
    arrow_protos(&p, bp, params, protos);
    double *d = dbuf(16 * 16), v[16];
    for (int m = 0; m < p.M; m++)
        for (int l = 0; l < p.base.spec.n_hidden; l++) {
            const int in = in_of(&p, l), out = p.base.spec.hidden[l];
            delta_of(&p, bp, params, m, l, d);
            power_top(d, in, out, v);
            const float *pv = protos + (size_t)m * dim + crl_arrow_proto_offset(&p, l);
            double dot = 0.0, nn = 0.0, e_pos = 0.0, e_neg = 0.0;
            int big = 0;
            for (int i = 0; i < in; i++) {
                dot += pv[i] * v[i];
                nn += (double)pv[i] * pv[i];
                e_pos = fmax(e_pos, fabs(pv[i] - v[i]));
                e_neg = fmax(e_neg, fabs(pv[i] + v[i]));
                if (fabsf(pv[i]) > fabsf(pv[big])) big = i;
            }
            ck_assert_msg(fmin(e_pos, e_neg) < 1e-4, "m %d l %d: max err %g (dot %g)", m,
                          l, fmin(e_pos, e_neg), dot);
            ck_assert(fabs(nn - 1.0) < 1e-5);
            ck_assert(pv[big] > 0.0f);
        }
    free(d);
    free(protos);
    free(params);
    free(bp);
}
END_TEST

/* Scores: the formula in double here, for raw and normalised; a zero row
 * adds 0 when normalising. Prototypes are arbitrary buffers (the scores do
 * not care where they come from). No allocation. */
START_TEST(test_arrow_scores_formula) {
    crl_rng rng;
    crl_rng_seed(&rng, 31);
    crl_mlp base;
    float *bp;
    make_base(&base, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &base, CRL_POOL_LORA, 5, 2, 2.0f, NULL), 0);
    const size_t dim = crl_arrow_proto_dim(&p);
    float *protos = fbuf(p.M * dim);
    fd_uniform(&rng, protos, p.M * dim, -1, 1);
    const int B = 6, L = p.base.spec.n_hidden;
    float *h[CRL_MLP_MAX_HIDDEN];
    for (int l = 0; l < L; l++) {
        h[l] = fbuf((size_t)B * in_of(&p, l));
        fd_uniform(&rng, h[l], (size_t)B * in_of(&p, l), -2, 2);
    }
    memset(h[1] + (size_t)3 * in_of(&p, 1), 0, (size_t)in_of(&p, 1) * sizeof(float));
    double *s0 = dbuf((size_t)B * p.M), *s1 = dbuf((size_t)B * p.M);
#if HAVE_MALLOC_COUNT
    const long before = alloc_calls();
#endif
    crl_arrow_scores(&p, protos, (const float *const *)h, B, 0, s0);
    crl_arrow_scores(&p, protos, (const float *const *)h, B, 1, s1);
#if HAVE_MALLOC_COUNT
    ck_assert_int_eq(alloc_calls() - before, 0);
#endif
    for (int r = 0; r < B; r++)
        for (int m = 0; m < p.M; m++) {
            double raw = 0.0, nrm = 0.0;
            for (int l = 0; l < L; l++) {
                const int in = in_of(&p, l);
                const float *x = h[l] + (size_t)r * in;
                const float *v = protos + (size_t)m * dim + crl_arrow_proto_offset(&p, l);
                double dot = 0.0, xx = 0.0;
                for (int i = 0; i < in; i++) {
                    dot += (double)x[i] * v[i];
                    xx += (double)x[i] * x[i];
                }
                raw += fabs(dot);
                if (xx > 0) nrm += fabs(dot) / sqrt(xx);
            }
            ck_assert_msg(fabs(s0[r * p.M + m] - raw) < 1e-5 * (1 + raw), "raw r %d m %d",
                          r, m);
            ck_assert_msg(fabs(s1[r * p.M + m] - nrm) < 1e-5 * (1 + nrm), "nrm r %d m %d",
                          r, m);
        }
    for (int l = 0; l < L; l++) free(h[l]);
    free(s0);
    free(s1);
    free(protos);
    free(bp);
}
END_TEST

START_TEST(test_arrow_bad_args) {
    crl_rng rng;
    crl_rng_seed(&rng, 41);
    crl_mlp base;
    float *bp;
    make_base(&base, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &base, CRL_POOL_IA3, 2, 0, 1.0f, NULL), 0);
    float *params = fbuf(p.n_params);
    crl_pool_init_params(&p, params, &rng);
    size_t n = 0;
    crl_err err = {0};
    ck_assert_int_eq(crl_arrow_ws_floats(&p, &n, &err), 0);
    float *ws = fbuf(n), *protos = fbuf(p.M * crl_arrow_proto_dim(&p));
    ck_assert_int_eq(crl_arrow_prototypes(&p, NULL, params, 0, 2, protos, ws, n, &err),
                     CRL_EINVAL);
    ck_assert(strstr(err.msg, "base") != NULL);
    ck_assert_int_eq(crl_arrow_prototypes(&p, bp, params, 0, 2, protos, ws, n - 1, &err),
                     CRL_EINVAL);
    ck_assert(strstr(err.msg, "workspace") != NULL);
    ck_assert_int_eq(crl_arrow_prototypes(&p, bp, params, 1, 3, protos, ws, n, &err),
                     CRL_EINVAL);
    ck_assert_int_eq(crl_arrow_prototypes(&p, bp, params, 0, 2, protos, ws, n, &err), 0);
    free(ws);
    free(protos);
    free(params);
    free(bp);
}
END_TEST

/* ---- l2r ------------------------------------------------------------------------ */

typedef struct {
    crl_l2r *r;
    const float *X;
    const int32_t *y;
    int n;
} l2r_ctx;

static double l2r_loss_cb(void *c) {
    l2r_ctx *x = c;
    return crl_l2r_loss(x->r, x->X, x->y, x->n, NULL);
}

/* dL/dparams of the mean cross-entropy against central differences, linear
 * and one hidden layer, with chunks (n = 7 rows, max_batch 3). */
START_TEST(test_l2r_grad_fd) {
    const int hidden = _i == 0 ? 0 : 5, D = 4, K = 3, n = 7;
    crl_l2r r;
    crl_err err = {0};
    ck_assert_int_eq(crl_l2r_init(&r, D, K, hidden, 3, 7, &err), 0);
    crl_rng rng;
    crl_rng_seed(&rng, 51);
    fd_uniform(&rng, r.params, r.n_params, -0.8, 0.8);
    float X[7 * 4];
    int32_t y[7] = {0, 1, 2, 2, 1, 0, 1};
    fd_uniform(&rng, X, sizeof X / sizeof *X, -1.5, 1.5);
    float *g = fbuf(r.n_params);
    const double L = crl_l2r_loss(&r, X, y, n, g);
    ck_assert(L > 0.0 && isfinite(L));
    l2r_ctx c = {&r, X, y, n};
    double *num = dbuf(r.n_params);
    fd_grad(r.params, r.n_params, H, l2r_loss_cb, &c, num);
    CHECK_GRAD("l2r", g, num, r.n_params, RTOL, ATOL);
    /* The loss value itself: independent log-sum-exp of the logits. */
    float lg[7 * 3];
    crl_l2r_logits(&r, X, n, lg);
    double ref = 0.0;
    for (int i = 0; i < n; i++) {
        double z = 0.0;
        for (int k = 0; k < K; k++) z += exp((double)lg[i * K + k]);
        ref += log(z) - lg[i * K + y[i]];
    }
    ck_assert(fabs(ref / n - L) < 1e-6);
    free(num);
    free(g);
    crl_l2r_free(&r);
}
END_TEST

/* 3 Gaussian clusters in 8-D, unit variance, centres c_k = (8 / sqrt 2) e_k:
 * every pair of centres is d = 8 apart. The Bayes classifier (nearest centre,
 * equal priors and covariances) errs on a point of class k only if it is
 * nearer to one of the two other centres, each with probability
 * Phi(-d / 2), so its accuracy is >= 1 - 2 Phi(-4) = 0.99994. The boundaries
 * are linear, so a linear router can reach it; the bar is 0.99 on 600 held-out
 * points (binomial at 0.99994: P(more than 6 errors) is negligible). */
static void cluster_points(crl_rng *g, int k, int n, float *X) {
    const double c = 8.0 / sqrt(2.0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 8; j++)
            X[(size_t)i * 8 + j] = (float)((j == k ? c : 0.0) + crl_rng_normal(g));
}

START_TEST(test_l2r_clusters) {
    const double bayes = 1.0 - 2.0 * 0.5 * erfc(4.0 / sqrt(2.0));
    ck_assert(bayes > 0.9999);
    const int hidden = _i == 0 ? 0 : 16, batch = _i == 0 ? 0 : 64;
    crl_l2r r;
    crl_err err = {0};
    ck_assert_int_eq(crl_l2r_init(&r, 8, 3, hidden, 128, 1234, &err), 0);
    crl_rng g;
    crl_rng_seed(&g, 61);
    float *X = fbuf(250 * 8);
    for (int k = 0; k < 3; k++) {
        cluster_points(&g, k, 250, X);
        ck_assert_int_eq(crl_l2r_add(&r, X, 250, k, CRL_L2R_DEFAULT_PER_TASK, &err), 0);
    }
    ck_assert_int_eq(r.n_mem, 600);
    double loss = 0.0;
    ck_assert_msg(crl_l2r_train(&r, batch ? 40 : 300, 1e-2f, batch, &loss, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(loss < 0.05, "training loss %g", loss);
    /* held out */
    int correct = 0, sel[200];
    for (int k = 0; k < 3; k++) {
        cluster_points(&g, k, 200, X);
        crl_l2r_predict(&r, X, 200, sel);
        for (int i = 0; i < 200; i++) correct += sel[i] == k;
    }
    const double acc = correct / 600.0;
    ck_assert_msg(acc >= 0.99, "held-out accuracy %g (Bayes >= %g)", acc, bayes);
    if (getenv("CRL_TEST_VERBOSE"))
        fprintf(stderr, "l2r clusters hidden %d: loss %.4g, held-out accuracy %.4f\n",
                hidden, loss, acc);
    free(X);
    crl_l2r_free(&r);
}
END_TEST

/* Same seed and calls: the same weights bit for bit; save/load keeps weights,
 * memory, seed and the train counter (a loaded router trains on as the
 * original does); predict does not allocate; bad blobs are refused. */
START_TEST(test_l2r_determinism_save_load) {
    crl_err err = {0};
    crl_l2r a, b;
    ck_assert_int_eq(crl_l2r_init(&a, 8, 4, 6, 32, 99, &err), 0);
    ck_assert_int_eq(crl_l2r_init(&b, 8, 4, 6, 32, 99, &err), 0);
    crl_rng g;
    crl_rng_seed(&g, 71);
    float X[50 * 8];
    for (int k = 0; k < 3; k++) {
        cluster_points(&g, k, 50, X);
        ck_assert_int_eq(crl_l2r_add(&a, X, 50, k, 30, &err), 0);
        ck_assert_int_eq(crl_l2r_add(&b, X, 50, k, 30, &err), 0);
    }
    ck_assert_int_eq(a.n_mem, 90);
    ck_assert_int_eq(crl_l2r_train(&a, 5, 5e-3f, 16, NULL, &err), 0);
    ck_assert_int_eq(crl_l2r_train(&b, 5, 5e-3f, 16, NULL, &err), 0);
    ck_assert_int_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);

    unsigned char *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(crl_l2r_save(&a, &blob, &n, &err), 0);
    crl_l2r c;
    ck_assert_int_eq(crl_l2r_load(&c, blob, n, 16, &err), 0);
    ck_assert_int_eq(c.n_mem, a.n_mem);
    ck_assert_int_eq(memcmp(c.params, a.params, a.n_params * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(c.mem_q, a.mem_q, (size_t)a.n_mem * 8 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(c.mem_y, a.mem_y, (size_t)a.n_mem * sizeof(int32_t)), 0);
    ck_assert_int_eq(crl_l2r_train(&a, 3, 5e-3f, 16, NULL, &err), 0);
    ck_assert_int_eq(crl_l2r_train(&c, 3, 5e-3f, 16, NULL, &err), 0);
    ck_assert_int_eq(memcmp(c.params, a.params, a.n_params * sizeof(float)), 0);

    int sa[50], sc[50];
#if HAVE_MALLOC_COUNT
    const long before = alloc_calls();
#endif
    crl_l2r_predict(&a, X, 50, sa); /* 50 rows through a 32-row workspace */
    crl_l2r_predict(&c, X, 50, sc); /* and through a 16-row one */
#if HAVE_MALLOC_COUNT
    ck_assert_int_eq(alloc_calls() - before, 0);
#endif
    ck_assert_int_eq(memcmp(sa, sc, sizeof sa), 0);

    crl_l2r d;
    ck_assert_int_eq(crl_l2r_load(&d, blob, n - 1, 16, &err), CRL_ECORRUPT);
    blob[0] ^= 1;
    ck_assert_int_eq(crl_l2r_load(&d, blob, n, 16, &err), CRL_ECORRUPT);
    blob[0] ^= 1;
    ck_assert_int_eq(crl_l2r_add(&a, X, 1, 4, -1, &err), CRL_EINVAL); /* label >= K */
    X[3] = NAN;
    ck_assert_int_eq(crl_l2r_add(&a, X, 2, 0, -1, &err), CRL_EINVAL);
    ck_assert_int_eq(a.n_mem, 90);
    free(blob);
    crl_l2r_free(&a);
    crl_l2r_free(&b);
    crl_l2r_free(&c);
}
END_TEST

/* keep < n: `keep` distinct rows in ascending order, drawn across the whole
 * range (the mean kept index of 100 of 1000 is 499.5 with a standard error
 * of about 27; the first 100 rows would give 49.5), the same on a twin. */
START_TEST(test_l2r_keep_sampling) {
    crl_err err = {0};
    crl_l2r a, b;
    ck_assert_int_eq(crl_l2r_init(&a, 2, 3, 0, 8, 5, &err), 0);
    ck_assert_int_eq(crl_l2r_init(&b, 2, 3, 0, 8, 5, &err), 0);
    float *X = fbuf(1000 * 2);
    for (int i = 0; i < 1000; i++) {
        X[2 * i] = (float)i;
        X[2 * i + 1] = -1.0f;
    }
    ck_assert_int_eq(crl_l2r_add(&a, X, 1000, 2, 100, &err), 0);
    ck_assert_int_eq(crl_l2r_add(&b, X, 1000, 2, 100, &err), 0);
    ck_assert_int_eq(a.n_mem, 100);
    ck_assert_int_eq(memcmp(a.mem_q, b.mem_q, 200 * sizeof(float)), 0);
    double mean = 0.0;
    for (int i = 0; i < 100; i++) {
        ck_assert(a.mem_q[2 * i + 1] == -1.0f);
        ck_assert_int_eq(a.mem_y[i], 2);
        if (i > 0) ck_assert(a.mem_q[2 * i] > a.mem_q[2 * i - 2]);
        mean += a.mem_q[2 * i] / 100.0;
    }
    ck_assert_msg(fabs(mean - 499.5) < 120, "mean kept index %g", mean);
    /* keep >= n and keep < 0 keep everything */
    ck_assert_int_eq(crl_l2r_add(&a, X, 10, 1, 10, &err), 0);
    ck_assert_int_eq(crl_l2r_add(&a, X, 10, 1, -1, &err), 0);
    ck_assert_int_eq(a.n_mem, 120);
    free(X);
    crl_l2r_free(&a);
    crl_l2r_free(&b);
}
END_TEST

/* ---- soft ----------------------------------------------------------------------- */

START_TEST(test_soft_select_hand) {
    const double s[6] = {0.1, 0.9, 0.5, 0.9, -INFINITY, 0.2};
    int idx[6];
    float w[6];
    crl_err err = {0};
    ck_assert_int_eq(crl_soft_select(s, 6, 3, 0.5f, idx, w, &err), 0);
    ck_assert_int_eq(idx[0], 1); /* tie 0.9 / 0.9: lower index first */
    ck_assert_int_eq(idx[1], 3);
    ck_assert_int_eq(idx[2], 2);
    /* softmax(0.9 / 0.5, 0.9 / 0.5, 0.5 / 0.5): e^0 : e^0 : e^-0.8 */
    const double z = 2.0 + exp(-0.8);
    ck_assert(fabs(w[0] - 1.0 / z) < 1e-7);
    ck_assert(fabs(w[1] - 1.0 / z) < 1e-7);
    ck_assert(fabs(w[2] - exp(-0.8) / z) < 1e-7);
    ck_assert_int_eq(crl_soft_select(s, 6, 1, 0.5f, idx, w, &err), 0);
    ck_assert_int_eq(idx[0], 1);
    ck_assert(w[0] == 1.0f);
    /* -inf is never chosen: 5 selectable scores, k = 6 is refused */
    ck_assert_int_eq(crl_soft_select(s, 6, 5, 1.0f, idx, w, &err), 0);
    ck_assert_int_eq(idx[4], 0);
    ck_assert_int_eq(crl_soft_select(s, 6, 6, 1.0f, idx, w, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_soft_select(s, 6, 2, 0.0f, idx, w, &err), CRL_EINVAL);
    const double sn[2] = {0.0, NAN};
    ck_assert_int_eq(crl_soft_select(sn, 2, 1, 1.0f, idx, w, &err), CRL_EINVAL);
}
END_TEST

static void make_pool(crl_pool *p, float **bp, float **params, int kind, int M,
                      crl_rng *rng) {
    crl_mlp base;
    make_base(&base, bp, rng);
    ck_assert_int_eq(crl_pool_init(p, &base, kind, M, 2, 2.0f, NULL), 0);
    *params = fbuf(p->n_params);
    crl_pool_init_params(p, *params, rng);
    for (size_t k = crl_pool_mod_offset(p, 0); k < p->n_params; k++)
        (*params)[k] += (float)crl_rng_range(rng, -0.5, 0.5);
}

/* k = 1: the merged block IS the chosen modulator, bit for bit, including
 * -0.0f, subnormals and a NaN payload; k = 3 against a double sum. */
START_TEST(test_soft_merge_values) {
    crl_rng rng;
    crl_rng_seed(&rng, 81);
    crl_pool p;
    float *bp, *params;
    make_pool(&p, &bp, &params, _i == 0 ? CRL_POOL_LORA : CRL_POOL_IA3, 5, &rng);
    float *mod3 = params + crl_pool_mod_offset(&p, 3);
    mod3[0] = -0.0f;
    mod3[1] = 1e-42f;
    mod3[2] = -0.0f;
    mod3[3] = 3.0e38f;
    float *blk = fbuf(p.mod_size);
    const int idx1[1] = {3};
    const float w1[1] = {1.0f};
    crl_soft_merge(&p, params, idx1, w1, 1, blk);
    ck_assert_int_eq(memcmp(blk, mod3, p.mod_size * sizeof(float)), 0);
    /* and through crl_soft_select's weight */
    const double sc[5] = {0.0, 0.2, 0.1, 0.7, 0.3};
    int idx[3];
    float w[3];
    ck_assert_int_eq(crl_soft_select(sc, 5, 1, 0.1f, idx, w, NULL), 0);
    memset(blk, 0x55, p.mod_size * sizeof(float));
    crl_soft_merge(&p, params, idx, w, 1, blk);
    ck_assert_int_eq(memcmp(blk, mod3, p.mod_size * sizeof(float)), 0);

    mod3[0] = 0.25f;
    mod3[1] = -0.5f;
    mod3[3] = 0.125f;
    ck_assert_int_eq(crl_soft_select(sc, 5, 3, 0.3f, idx, w, NULL), 0);
    crl_soft_merge(&p, params, idx, w, 3, blk);
    for (size_t j = 0; j < p.mod_size; j++) {
        double ref = 0.0;
        for (int i = 0; i < 3; i++)
            ref += (double)w[i] * params[crl_pool_mod_offset(&p, idx[i]) + j];
        ck_assert_msg(fabs(blk[j] - ref) < 1e-6, "j %zu: %g vs %g", j, blk[j], ref);
    }
    free(blk);
    free(params);
    free(bp);
}
END_TEST

/* Backward against finite differences on a tiny pool, with the nonlinear loss
 * L = sum_j r_j b_j + 0.5 sum_j b_j^2 of the merged block b (so dL/db = r + b):
 * (1) with respect to every pool parameter (the chosen modulators get w_i
 * times dL/db, the others and the keys nothing); (2) with respect to the
 * chosen scores, through the softmax (temperature 0.7). */
typedef struct {
    const crl_pool *p;
    float *params;
    const float *r;
    float *blk;
    double scores[4];
    int use_scores;
    int idx[3];
    float w[3];
} soft_ctx;

static double soft_loss(void *c) {
    soft_ctx *x = c;
    if (x->use_scores)
        ck_assert_int_eq(crl_soft_select(x->scores, x->p->M, 3, 0.7f, x->idx, x->w, NULL),
                         0);
    crl_soft_merge(x->p, x->params, x->idx, x->w, 3, x->blk);
    double L = 0.0;
    for (size_t j = 0; j < x->p->mod_size; j++)
        L += (double)x->r[j] * x->blk[j] + 0.5 * (double)x->blk[j] * x->blk[j];
    return L;
}

static double soft_score_loss(void *c) {
    return soft_loss(c);
}

START_TEST(test_soft_backward_fd) {
    crl_rng rng;
    crl_rng_seed(&rng, 91);
    crl_pool p;
    float *bp, *params;
    make_pool(&p, &bp, &params, _i == 0 ? CRL_POOL_LORA : CRL_POOL_IA3, 4, &rng);
    float *r = fbuf(p.mod_size), *blk = fbuf(p.mod_size), *gb = fbuf(p.mod_size);
    fd_uniform(&rng, r, p.mod_size, -1, 1);
    soft_ctx c = {.p = &p,
                  .params = params,
                  .r = r,
                  .blk = blk,
                  .scores = {0.3, 1.1, -0.2, 0.8},
                  .use_scores = 1};
    const double L0 = soft_loss(&c);
    ck_assert(isfinite(L0));
    ck_assert_int_eq(c.idx[0], 1);
    ck_assert_int_eq(c.idx[1], 3);
    ck_assert_int_eq(c.idx[2], 0);
    for (size_t j = 0; j < p.mod_size; j++) gb[j] = r[j] + blk[j];
    /* (1) parameters */
    float *grads = fbuf(p.n_params);
    crl_soft_merge_backward(&p, gb, c.idx, c.w, 3, grads);
    c.use_scores = 0; /* weights fixed while parameters move */
    double *num = dbuf(p.n_params);
    fd_grad(params, p.n_params, H, soft_loss, &c, num);
    CHECK_GRAD("soft params", grads, num, p.n_params, RTOL, ATOL);
    const size_t m2 = crl_pool_mod_offset(&p, 2);
    for (size_t j = 0; j < p.mod_size; j++) ck_assert(grads[m2 + j] == 0.0f);
    for (size_t j = 0; j < crl_pool_mod_offset(&p, 0); j++) ck_assert(grads[j] == 0.0f);
    /* (2) scores, in double steps of 1e-2 (gaps between scores are >= 0.3) */
    double dw[3], ds[3];
    crl_soft_merge(&p, params, c.idx, c.w, 3, blk);
    for (size_t j = 0; j < p.mod_size; j++) gb[j] = r[j] + blk[j];
    crl_soft_weight_grads(&p, params, gb, c.idx, 3, dw);
    crl_soft_score_grads(c.w, dw, 3, 0.7f, ds);
    c.use_scores = 1;
    for (int i = 0; i < 3; i++) {
        double *s = &c.scores[c.idx[i]];
        const double orig = *s, hs = 1e-2;
        *s = orig + hs;
        const double lp = soft_score_loss(&c);
        *s = orig - hs;
        const double lm = soft_score_loss(&c);
        *s = orig;
        soft_score_loss(&c);
        const double numd = (lp - lm) / (2 * hs);
        ck_assert_msg(fabs(numd - ds[i]) <= ATOL + RTOL * fmax(fabs(numd), fabs(ds[i])),
                      "score %d: analytic %g numeric %g", i, ds[i], numd);
    }
    free(num);
    free(grads);
    free(r);
    free(blk);
    free(gb);
    free(params);
    free(bp);
}
END_TEST

static Suite *routers_suite(void) {
    Suite *s = suite_create("routers");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sgesvd_known);
    tcase_add_loop_test(tc, test_arrow_rank1_hand, 0, 2);
    tcase_add_loop_test(tc, test_arrow_matches_power_iteration, 0, 2);
    tcase_add_test(tc, test_arrow_scores_formula);
    tcase_add_test(tc, test_arrow_bad_args);
    tcase_add_loop_test(tc, test_l2r_grad_fd, 0, 2);
    tcase_add_loop_test(tc, test_l2r_clusters, 0, 2);
    tcase_add_test(tc, test_l2r_determinism_save_load);
    tcase_add_test(tc, test_l2r_keep_sampling);
    tcase_add_test(tc, test_soft_select_hand);
    tcase_add_loop_test(tc, test_soft_merge_values, 0, 2);
    tcase_add_loop_test(tc, test_soft_backward_fd, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    crl_err err = {0};
    if (crl_blas_init(1, &err) != CRL_OK) {
        fprintf(stderr, "test_routers: %s\n", err.msg);
        return 1;
    }
    SRunner *sr = srunner_create(routers_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
