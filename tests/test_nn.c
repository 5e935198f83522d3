/* Tests for nn/: every backward against central finite differences, forward
 * passes against numbers worked out by hand or by an independent formula in
 * double, Adam against a hand-computed trajectory.
 *
 * "No allocation in forward/backward" is checked by interposing malloc,
 * calloc and realloc in this executable (glibc: forwarded to __libc_*) and
 * counting calls around the hot paths. It is skipped under AddressSanitizer,
 * which owns malloc itself. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/nn.h"
#include "fd.h"
#include "nn/vec.h" /* the portable kernels behind the AVX2 dispatch */

#include "malloc_count.h"

#define RTOL 1e-2
#define ATOL 5e-4 /* observed FD noise <= ~1e-4 here; see fd.h */
#define H    1e-3f

/* ---- Linear ---------------------------------------------------------------- */

START_TEST(test_linear_forward_hand) {
    /* x = [1 2; 3 4], W = [1 0 -1; 2 1 0] (in 2 x out 3), b = [0.5 -1 2]
     * row 0: [1*1+2*2, 1*0+2*1, 1*-1+2*0] + b = [5, 2, -1] + b = [5.5, 1, 1]
     * row 1: [3*1+4*2, 3*0+4*1, 3*-1+4*0] + b = [11, 4, -3] + b = [11.5, 3, -1] */
    const float x[4] = {1, 2, 3, 4}, W[6] = {1, 0, -1, 2, 1, 0}, b[3] = {0.5f, -1, 2};
    const float want[6] = {5.5f, 1, 1, 11.5f, 3, -1};
    const float want_nob[6] = {5, 2, -1, 11, 4, -3};
    float y[6];
    crl_linear_forward(2, 2, 3, x, W, b, y);
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(y[i], want[i], 1e-6f);
    crl_linear_forward(2, 2, 3, x, W, NULL, y);
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(y[i], want_nob[i], 1e-6f);
}
END_TEST

typedef struct {
    int B, in, out, rows; /* loss over the first `rows` rows */
    float *x, *W, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    crl_linear_forward(c->B, c->in, c->out, c->x, c->W, c->b, c->y);
    return fd_dot(c->y, c->r, (size_t)c->rows * c->out);
}

START_TEST(test_linear_backward_fd) {
    const int B = 6, in = 5, out = 7, dw_rows = 4;
    crl_rng rng;
    crl_rng_seed(&rng, 11);
    lin_ctx c = {B,
                 in,
                 out,
                 B,
                 fbuf(B * in),
                 fbuf(in * out),
                 fbuf(out),
                 fbuf(B * out),
                 fbuf(B * out)};
    fd_uniform(&rng, c.x, B * in, -1, 1);
    fd_uniform(&rng, c.W, in * out, -1, 1);
    fd_uniform(&rng, c.b, out, -1, 1);
    fd_uniform(&rng, c.r, B * out, -1, 1);

    /* Accumulation: start from a non-zero gradient and subtract it after. */
    float *dW = fbuf(in * out), *db = fbuf(out), *dx = fbuf(B * in);
    for (int i = 0; i < in * out; i++) dW[i] = 0.25f;
    for (int i = 0; i < out; i++) db[i] = -0.5f;
    for (int i = 0; i < B * in; i++) dx[i] = 1e3f; /* must be overwritten */
    crl_linear_backward(B, in, out, c.x, c.W, c.r, dW, db, dx, dw_rows);
    for (int i = 0; i < in * out; i++) dW[i] -= 0.25f;
    for (int i = 0; i < out; i++) db[i] += 0.5f;

    double *num = dbuf(B * in + in * out);
    c.rows = dw_rows; /* weight gradient: only the first dw_rows rows count */
    fd_grad(c.W, in * out, H, lin_loss, &c, num);
    CHECK_GRAD("dW", dW, num, in * out, RTOL, ATOL);
    fd_grad(c.b, out, H, lin_loss, &c, num);
    CHECK_GRAD("db", db, num, out, RTOL, ATOL);
    c.rows = B; /* input gradient: all rows */
    fd_grad(c.x, B * in, H, lin_loss, &c, num);
    CHECK_GRAD("dx", dx, num, B * in, RTOL, ATOL);

    /* The rows past dw_rows really are excluded (their dy is not zero). */
    c.rows = B;
    fd_grad(c.b, out, H, lin_loss, &c, num);
    int differs = 0;
    for (int i = 0; i < out; i++) differs |= fabs(num[i] - db[i]) > 0.1;
    ck_assert_msg(differs, "test is blind: all-row and first-row db coincide");

    /* dw_rows = 0: no weight gradient at all, dx still computed. */
    float *dW2 = fbuf(in * out), *dx2 = fbuf(B * in);
    crl_linear_backward(B, in, out, c.x, c.W, c.r, dW2, NULL, dx2, 0);
    for (int i = 0; i < in * out; i++) ck_assert_float_eq(dW2[i], 0.0f);
    for (int i = 0; i < B * in; i++) ck_assert_float_eq_tol(dx2[i], dx[i], 1e-6f);

    free(c.x), free(c.W), free(c.b), free(c.y), free(c.r);
    free(dW), free(db), free(dx), free(dW2), free(dx2), free(num);
}
END_TEST

/* ---- LayerNorm ------------------------------------------------------------- */

typedef struct {
    int B, D, rows;
    float eps;
    float *x, *g, *b, *y, *xhat, *rstd, *r;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    crl_layernorm_forward(c->B, c->D, c->x, c->g, c->b, c->eps, c->y, c->xhat, c->rstd);
    return fd_dot(c->y, c->r, (size_t)c->rows * c->D);
}

START_TEST(test_layernorm_forward_direct) {
    /* Against the definition, in double. D = 11: vector body + scalar tail. */
    const int B = 3, D = 11;
    const float eps = 1e-3f;
    crl_rng rng;
    crl_rng_seed(&rng, 5);
    float *x = fbuf(B * D), *g = fbuf(D), *b = fbuf(D), *y = fbuf(B * D),
          *xh = fbuf(B * D), rstd[3];
    fd_uniform(&rng, x, B * D, -2, 3);
    for (int j = 0; j < D; j++) x[D + j] = 100.0f + 0.01f * x[D + j]; /* offset row */
    fd_uniform(&rng, g, D, 0.5, 1.5);
    fd_uniform(&rng, b, D, -1, 1);
    crl_layernorm_forward(B, D, x, g, b, eps, y, xh, rstd);
    for (int r = 0; r < B; r++) {
        double mu = 0, var = 0;
        for (int j = 0; j < D; j++) mu += x[r * D + j];
        mu /= D;
        for (int j = 0; j < D; j++) var += (x[r * D + j] - mu) * (x[r * D + j] - mu);
        var /= D;
        double rs = 1.0 / sqrt(var + eps);
        ck_assert_double_eq_tol(rstd[r], rs, 1e-4 * rs);
        for (int j = 0; j < D; j++) {
            double want = (x[r * D + j] - mu) * rs * g[j] + b[j];
            ck_assert_double_eq_tol(y[r * D + j], want, 2e-4);
        }
    }
    free(x), free(g), free(b), free(y), free(xh);
}
END_TEST

START_TEST(test_layernorm_backward_fd) {
    const int B = 5, D = 11, dw_rows = 3;
    crl_rng rng;
    crl_rng_seed(&rng, 6);
    float rstd[5];
    ln_ctx c = {B,       D,           B,           1e-3f, fbuf(B * D), fbuf(D),
                fbuf(D), fbuf(B * D), fbuf(B * D), rstd,  fbuf(B * D)};
    fd_uniform(&rng, c.x, B * D, -2, 2);
    fd_uniform(&rng, c.g, D, 0.5, 1.5);
    fd_uniform(&rng, c.b, D, -1, 1);
    fd_uniform(&rng, c.r, B * D, -1, 1);
    ln_loss(&c);

    float *dg = fbuf(D), *db = fbuf(D), *dx = fbuf(B * D);
    for (int j = 0; j < D; j++) dg[j] = 1.0f, db[j] = 2.0f;
    crl_layernorm_backward(B, D, c.r, c.xhat, c.rstd, c.g, dg, db, dx, dw_rows);
    for (int j = 0; j < D; j++) dg[j] -= 1.0f, db[j] -= 2.0f;

    double *num = dbuf(B * D);
    c.rows = dw_rows;
    fd_grad(c.g, D, H, ln_loss, &c, num);
    CHECK_GRAD("dg", dg, num, D, RTOL, ATOL);
    fd_grad(c.b, D, H, ln_loss, &c, num);
    CHECK_GRAD("db", db, num, D, RTOL, ATOL);
    c.rows = B;
    fd_grad(c.x, B * D, H, ln_loss, &c, num);
    CHECK_GRAD("dx", dx, num, B * D, RTOL, ATOL);

    /* dx may alias dy. */
    ln_loss(&c);
    float *d = fbuf(B * D);
    memcpy(d, c.r, B * D * sizeof *d);
    crl_layernorm_backward(B, D, d, c.xhat, c.rstd, c.g, NULL, NULL, d, 0);
    for (int i = 0; i < B * D; i++) ck_assert_float_eq_tol(d[i], dx[i], 1e-6f);

    free(c.x), free(c.g), free(c.b), free(c.y), free(c.xhat), free(c.r);
    free(dg), free(db), free(dx), free(d), free(num);
}
END_TEST

/* ---- activations ------------------------------------------------------------ */

typedef struct {
    crl_act a;
    float slope;
    size_t n;
    float *x, *y, *r;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    crl_act_forward(c->a, c->slope, c->n, c->x, c->y);
    return fd_dot(c->y, c->r, c->n);
}

START_TEST(test_act_backward_fd) {
    const size_t n = 23; /* vector body + tail */
    const crl_act acts[4] = {CRL_ACT_NONE, CRL_ACT_TANH, CRL_ACT_RELU, CRL_ACT_LRELU};
    crl_rng rng;
    crl_rng_seed(&rng, 7);
    act_ctx c = {0, 0.2f, n, fbuf(n), fbuf(n), fbuf(n)};
    float *dx = fbuf(n), *d = fbuf(n);
    double *num = dbuf(n);
    for (int k = 0; k < 4; k++) {
        c.a = acts[k];
        /* Away from the relu kink: |x| >= 0.05 >> H. */
        for (size_t i = 0; i < n; i++) {
            double v = crl_rng_range(&rng, 0.05, 3.0);
            c.x[i] = (float)(crl_rng_uniform(&rng) < 0.5 ? -v : v);
        }
        fd_uniform(&rng, c.r, n, -1, 1);
        act_loss(&c);
        crl_act_backward(c.a, c.slope, n, c.y, c.r, dx);
        fd_grad(c.x, n, H, act_loss, &c, num);
        act_loss(&c); /* c.y back at the unperturbed x */
        char what[16];
        snprintf(what, sizeof what, "act%d", (int)c.a);
        CHECK_GRAD(what, dx, num, n, RTOL, ATOL);
        /* In place: y aliases x, dx aliases dy. */
        memcpy(d, c.x, n * sizeof *d);
        crl_act_forward(c.a, c.slope, n, d, d);
        for (size_t i = 0; i < n; i++) ck_assert_float_eq(d[i], c.y[i]);
        memcpy(d, c.r, n * sizeof *d);
        crl_act_backward(c.a, c.slope, n, c.y, d, d);
        for (size_t i = 0; i < n; i++) ck_assert_float_eq(d[i], dx[i]);
    }
    free(c.x), free(c.y), free(c.r), free(dx), free(d), free(num);
}
END_TEST

START_TEST(test_act_forward_values) {
    const float x[5] = {-2.0f, -0.5f, 0.0f, 0.25f, 3.0f};
    const float lrelu[5] = {-0.4f, -0.1f, 0.0f, 0.25f, 3.0f};
    const float relu[5] = {0.0f, 0.0f, 0.0f, 0.25f, 3.0f};
    float y[5];
    crl_act_forward(CRL_ACT_LRELU, 0.2f, 5, x, y);
    for (int i = 0; i < 5; i++) ck_assert_float_eq_tol(y[i], lrelu[i], 1e-7f);
    crl_act_forward(CRL_ACT_RELU, 0.2f, 5, x, y);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(y[i], relu[i]);

    /* tanh is a rational approximation: check it against tanh in double on a
     * dense grid (both code paths: 4-wide body and scalar tail). */
    enum { N = 60003 };
    float *g = fbuf(N), *t = fbuf(N);
    for (int i = 0; i < N; i++) g[i] = -15.0f + 30.0f * (float)i / (N - 1);
    for (int path = 0; path < 2; path++) { /* dispatched (AVX2 here?), portable */
        if (path == 0)
            crl_act_forward(CRL_ACT_TANH, 0, N, g, t);
        else
            crl__tanh_forward_generic(N, g, t);
        double maxerr = 0;
        for (int i = 0; i < N; i++) {
            maxerr = fmax(maxerr, fabs(t[i] - tanh((double)g[i])));
            ck_assert_msg(fabsf(t[i]) <= 1.0f, "|tanh(%g)| = %.9g > 1", g[i], t[i]);
            if (g[i] != 0.0f) ck_assert_msg(t[i] * g[i] > 0, "tanh sign at %g", g[i]);
        }
        ck_assert_msg(maxerr < 1e-6, "path %d: tanh max abs error %g", path, maxerr);
    }
    /* Odd symmetry and tiny arguments. */
    const float tiny[3] = {1e-20f, -3e-8f, 1e-4f};
    crl_act_forward(CRL_ACT_TANH, 0, 3, tiny, y);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(y[i], tiny[i], fabsf(tiny[i]) * 1e-5f);
    /* NaN must survive (crl_all_finite has to see a diverged net). */
    float nan4[5] = {NAN, 1, NAN, -1, NAN};
    crl_act_forward(CRL_ACT_TANH, 0, 5, nan4, nan4);
    ck_assert(isnan(nan4[0]) && isnan(nan4[2]) && isnan(nan4[4]));
    free(g), free(t);
}
END_TEST

/* ---- MLP ---------------------------------------------------------------------- */

typedef struct {
    const crl_mlp *m;
    crl_mlp_ws *ws;
    float *params, *x, *r;
    const int *head;
    int B, rows;
} mlp_ctx;

static double mlp_loss(void *p) {
    mlp_ctx *c = p;
    const float *y = crl_mlp_forward(c->m, c->params, c->ws, c->x, c->B, c->head);
    return fd_dot(y, c->r, (size_t)c->rows * c->m->spec.out_dim);
}

static void small_spec(crl_mlp_spec *s) {
    memset(s, 0, sizeof *s);
    s->in_dim = 5;
    s->n_hidden = 3;
    s->hidden[0] = 9; /* not multiples of 4: tails everywhere */
    s->hidden[1] = 6;
    s->hidden[2] = 7;
    s->out_dim = 3;
    s->n_heads = 3;
    s->layernorm_first = 1;
    s->first_act = CRL_ACT_TANH;
    s->act = CRL_ACT_LRELU;
    s->lrelu_slope = 0.2f;
    s->ln_eps = 1e-3f;
}

/* _i = 0: mixed per-row heads, dw_rows < B (row loop path for the head)
 * _i = 1: every row on head 2 (one sgemm into head block 2), dw_rows = B
 * _i = 2: head NULL (head 0), dw_rows < B
 * _i = 3: no LayerNorm, relu after layer 1, mixed heads */
START_TEST(test_mlp_backward_fd) {
    crl_mlp_spec s;
    small_spec(&s);
    if (_i == 3) {
        s.layernorm_first = 0;
        s.first_act = CRL_ACT_RELU;
    }
    crl_mlp m;
    crl_err err = {0};
    ck_assert_int_eq(crl_mlp_init(&m, &s, &err), CRL_OK);
    enum { B = 6 };
    const int mixed[B] = {2, 0, 1, 2, 2, 0}, all2[B] = {2, 2, 2, 2, 2, 2};
    const int *head = _i == 1 ? all2 : _i == 2 ? NULL : mixed;
    const int dw_rows = _i == 1 ? B : 4;

    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, B, &err), CRL_OK);
    const size_t P = m.n_params;
    float *params = fbuf(P), *grads = fbuf(P), *x = fbuf(B * s.in_dim),
          *r = fbuf(B * s.out_dim), *dx = fbuf(B * s.in_dim);
    mlp_ctx c = {&m, &ws, params, x, r, head, B, B};
    /* Central differences across a relu kink are meaningless, so take the
     * first seed whose rectified pre-activations all clear 0 by >> H. */
    int tries = 0;
    for (;; tries++) {
        ck_assert_msg(tries < 200, "no seed keeps the pre-activations off the kink");
        crl_rng rng;
        crl_rng_seed(&rng, 1000 * (uint64_t)_i + tries);
        crl_mlp_init_params(&m, params, &rng);
        /* Non-trivial biases and LayerNorm parameters, so their gradients are
         * exercised away from the init point. */
        for (size_t k = 0; k < P; k++)
            if (params[k] == 0.0f || params[k] == 1.0f)
                params[k] += (float)crl_rng_range(&rng, -0.3, 0.3);
        fd_uniform(&rng, x, B * s.in_dim, -1.5, 1.5);
        fd_uniform(&rng, r, B * s.out_dim, -1, 1);
        mlp_loss(&c);
        /* Recompute each layer's pre-activation from its input: the
         * workspace keeps activations in place, so it holds only outputs. */
        float min_pre = INFINITY;
        for (int l = 0; l < s.n_hidden; l++) {
            crl_act a = l == 0 ? s.first_act : s.act;
            if (a != CRL_ACT_RELU && a != CRL_ACT_LRELU) continue;
            if (l == 0 && s.layernorm_first) continue; /* pre-LN values, not inputs */
            int in = l == 0 ? s.in_dim : s.hidden[l - 1];
            float *pre = fbuf((size_t)B * s.hidden[l]);
            crl_linear_forward(B, in, s.hidden[l], l == 0 ? x : ws.post[l - 1],
                               params + m.W[l], params + m.b[l], pre);
            for (int k = 0; k < B * s.hidden[l]; k++)
                min_pre = fminf(min_pre, fabsf(pre[k]));
            free(pre);
        }
        if (min_pre > 5e-3f) break;
    }
    for (size_t k = 0; k < P; k++) grads[k] = 0.125f;
    for (int k = 0; k < B * s.in_dim; k++) dx[k] = 1e3f;
    crl_mlp_backward(&m, params, grads, &ws, r, dw_rows, dx);
    for (size_t k = 0; k < P; k++) grads[k] -= 0.125f;

    double *num = dbuf(P > (size_t)B * s.in_dim ? P : (size_t)B * s.in_dim);
    c.rows = dw_rows;
    fd_grad(params, P, H, mlp_loss, &c, num);
    CHECK_GRAD("dparams", grads, num, P, RTOL, ATOL);
    /* Heads not used by any of the first dw_rows rows get exactly nothing. */
    const size_t blk = (size_t)s.hidden[2] * s.out_dim;
    for (int h = 0; h < s.n_heads; h++) {
        int used = 0;
        for (int k = 0; k < dw_rows; k++) used |= (head ? head[k] : 0) == h;
        if (used) continue;
        for (size_t k = 0; k < blk; k++)
            ck_assert_float_eq(grads[m.head_W + h * blk + k], 0.0f);
    }
    c.rows = B;
    fd_grad(x, B * s.in_dim, H, mlp_loss, &c, num);
    CHECK_GRAD("dx", dx, num, B * s.in_dim, RTOL, ATOL);

    /* grads == NULL gives the same dx; dx == NULL gives the same grads. */
    float *dx2 = fbuf(B * s.in_dim), *grads2 = fbuf(P);
    mlp_loss(&c);
    crl_mlp_backward(&m, params, NULL, &ws, r, dw_rows, dx2);
    for (int k = 0; k < B * s.in_dim; k++) ck_assert_float_eq_tol(dx2[k], dx[k], 1e-6f);
    crl_mlp_backward(&m, params, grads2, &ws, r, dw_rows, NULL);
    for (size_t k = 0; k < P; k++) ck_assert_float_eq_tol(grads2[k], grads[k], 1e-5f);

    crl_mlp_ws_free(&ws);
    free(params), free(grads), free(x), free(r), free(dx), free(dx2), free(grads2),
        free(num);
}
END_TEST

START_TEST(test_mlp_mixed_heads_match_uniform) {
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 9, 4, 5, 4, 32);
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &s, NULL), CRL_OK);
    enum { B = 20 };
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, B, NULL), CRL_OK);
    crl_rng rng;
    crl_rng_seed(&rng, 8);
    float *params = fbuf(m.n_params), *x = fbuf(B * 9), *mixed = fbuf(B * 4);
    crl_mlp_init_params(&m, params, &rng);
    for (size_t k = m.head_b; k < m.n_params; k++)
        params[k] = (float)crl_rng_range(&rng, -1, 1);
    fd_uniform(&rng, x, B * 9, -2, 2);
    int head[B], uni[B];
    for (int k = 0; k < B; k++) head[k] = (int)crl_rng_below(&rng, 5);
    head[0] = 0, head[1] = 4; /* mixed for sure */
    memcpy(mixed, crl_mlp_forward(&m, params, &ws, x, B, head), B * 4 * sizeof *mixed);
    for (int h = 0; h < 5; h++) {
        for (int k = 0; k < B; k++) uni[k] = h;
        const float *y = crl_mlp_forward(&m, params, &ws, x, B, uni);
        for (int k = 0; k < B; k++)
            if (head[k] == h)
                for (int j = 0; j < 4; j++)
                    ck_assert_float_eq_tol(mixed[k * 4 + j], y[k * 4 + j], 1e-5f);
    }
    /* Distinct heads really give distinct outputs (else the test is blind). */
    for (int k = 0; k < B; k++) uni[k] = 1;
    const float *y1 = crl_mlp_forward(&m, params, &ws, x, B, uni);
    ck_assert(fabsf(y1[0] - mixed[0]) > 1e-3f);
    /* NULL means head 0. */
    const float *y0 = crl_mlp_forward(&m, params, &ws, x, B, NULL);
    for (int j = 0; j < 4; j++) ck_assert_float_eq_tol(y0[j], mixed[j], 1e-5f);
    crl_mlp_ws_free(&ws);
    free(params), free(x), free(mixed);
}
END_TEST

START_TEST(test_mlp_layout_and_init) {
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 39, 8, 3, 4, 256);
    ck_assert_int_eq(s.layernorm_first, 1);
    ck_assert_int_eq(s.first_act, CRL_ACT_TANH);
    ck_assert_int_eq(s.act, CRL_ACT_LRELU);
    ck_assert_float_eq(s.lrelu_slope, 0.2f);
    ck_assert_float_eq(s.ln_eps, 1e-3f);
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &s, NULL), CRL_OK);
    /* 39*256+256 + 2*256 (LN) + 3*(256*256+256) + 3*(256*8) + 3*8 */
    const size_t want =
        39 * 256 + 256 + 512 + 3 * (256 * 256 + 256) + 3 * 256 * 8 + 3 * 8;
    ck_assert_uint_eq(m.n_params, want);
    ck_assert_double_eq(crl_mlp_macs_per_row(&m),
                        39.0 * 256 + 3.0 * 256 * 256 + 256.0 * 8);

    float *p = fbuf(m.n_params), *q = fbuf(m.n_params);
    crl_rng a, b;
    crl_rng_seed(&a, 42);
    crl_rng_seed(&b, 42);
    crl_mlp_init_params(&m, p, &a);
    crl_mlp_init_params(&m, q, &b);
    ck_assert(memcmp(p, q, m.n_params * sizeof *p) == 0);
    crl_rng_seed(&b, 43);
    crl_mlp_init_params(&m, q, &b);
    ck_assert(memcmp(p, q, m.n_params * sizeof *p) != 0);

    /* Glorot uniform per layer: inside +-limit, filling it (max close to the
     * limit, variance limit^2/3), zero biases, LN gain 1 bias 0. */
    const int fin[5] = {39, 256, 256, 256, 256}, fout[5] = {256, 256, 256, 256, 8};
    for (int l = 0; l < 5 + 2; l++) {
        const int L = l < 5 ? l : 4; /* 5, 6: the other heads */
        const size_t off = l < 4 ? m.W[l] : m.head_W + (size_t)(l - 4) * 256 * 8;
        const size_t n = (size_t)fin[L] * fout[L];
        const double lim = sqrt(6.0 / (fin[L] + fout[L]));
        double mx = 0, s1 = 0, s2 = 0;
        for (size_t k = 0; k < n; k++) {
            double w = p[off + k];
            ck_assert_msg(fabs(w) <= lim, "layer %d |w| %g > %g", l, w, lim);
            mx = fmax(mx, fabs(w));
            s1 += w;
            s2 += w * w;
        }
        ck_assert_msg(mx > 0.97 * lim, "layer %d max %g lim %g", l, mx, lim);
        ck_assert_msg(fabs(s1 / n) < 0.05 * lim, "layer %d mean %g", l, s1 / n);
        ck_assert_msg(fabs(s2 / n / (lim * lim / 3) - 1) < 0.1, "layer %d var", l);
    }
    for (int l = 0; l < 4; l++)
        for (int j = 0; j < 256; j++) ck_assert_float_eq(p[m.b[l] + j], 0.0f);
    for (int j = 0; j < 256; j++) {
        ck_assert_float_eq(p[m.ln_g + j], 1.0f);
        ck_assert_float_eq(p[m.ln_b + j], 0.0f);
    }
    for (int j = 0; j < 3 * 8; j++) ck_assert_float_eq(p[m.head_b + j], 0.0f);
    /* Heads are distinct draws. */
    ck_assert(memcmp(p + m.head_W, p + m.head_W + 256 * 8, 256 * 8 * sizeof *p) != 0);
    free(p), free(q);
}
END_TEST

START_TEST(test_mlp_bad_spec) {
    crl_mlp_spec s;
    crl_mlp m;
    crl_err err = {0};
    crl_mlp_spec_cw(&s, 4, 2, 1, 2, 8);
    ck_assert_int_eq(crl_mlp_init(&m, &s, &err), CRL_OK);
    crl_mlp_spec bad = s;
    bad.n_hidden = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    ck_assert(strlen(err.msg) > 0);
    bad = s, bad.n_hidden = CRL_MLP_MAX_HIDDEN + 1;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.hidden[1] = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.in_dim = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.out_dim = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.n_heads = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.ln_eps = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.lrelu_slope = 0;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    bad = s, bad.act = (crl_act)7;
    ck_assert_int_eq(crl_mlp_init(&m, &bad, &err), CRL_EINVAL);
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, 0, &err), CRL_EINVAL);
}
END_TEST

START_TEST(test_no_alloc_in_hot_paths) {
#if HAVE_MALLOC_COUNT
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 39, 8, 3, 4, 64);
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &s, NULL), CRL_OK);
    enum { B = 32 };
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, B, NULL), CRL_OK);
    crl_adam adam;
    ck_assert_int_eq(crl_adam_init(&adam, m.n_params, 1e-3f, NULL), CRL_OK);
    crl_rng rng;
    crl_rng_seed(&rng, 9);
    float *p = fbuf(m.n_params), *g = fbuf(m.n_params), *x = fbuf(B * 39),
          *dout = fbuf(B * 8), *dx = fbuf(B * 39), *eps = fbuf(B * 4), *act = fbuf(B * 4),
          logp[B], dlogp[B];
    crl_mlp_init_params(&m, p, &rng);
    fd_normal(&rng, x, B * 39);
    fd_normal(&rng, eps, B * 4);
    int head[B];
    for (int k = 0; k < B; k++) head[k] = k % 3, dlogp[k] = 1.0f;
    /* Warm up: BLAS loads and builds its buffers on first use. */
    crl_mlp_forward(&m, p, &ws, x, B, NULL);
    crl_mlp_backward(&m, p, g, &ws, dout, B, dx);
    const long before = alloc_calls();
    for (int it = 0; it < 3; it++) {
        const float *out = crl_mlp_forward(&m, p, &ws, x, B, it == 1 ? head : NULL);
        crl_tgauss_forward(B, 4, out, eps, act, logp);
        crl_tgauss_backward(B, 4, out, eps, act, dlogp, dout);
        crl_mlp_backward(&m, p, g, &ws, dout, B / 2, dx);
        crl_adam_step(&adam, p, g, NULL);
        crl_polyak(g, p, m.n_params, 0.995f);
    }
    const long calls = alloc_calls() - before;
    ck_assert_msg(calls == 0, "%ld allocations in forward/backward/step", calls);
    crl_adam_free(&adam);
    crl_mlp_ws_free(&ws);
    free(p), free(g), free(x), free(dout), free(dx), free(eps), free(act);
#else
    fprintf(stderr, "test_no_alloc_in_hot_paths: skipped (no malloc interposition)\n");
#endif
}
END_TEST

/* ---- tanh-Gaussian head ------------------------------------------------------ */

typedef struct {
    int B, A;
    float *out, *eps, *act, *logp, *ra, *rl; /* ra/rl may be NULL */
} tg_ctx;

static double tg_loss(void *p) {
    tg_ctx *c = p;
    crl_tgauss_forward(c->B, c->A, c->out, c->eps, c->act, c->logp);
    double L = 0;
    if (c->ra) L += fd_dot(c->act, c->ra, (size_t)c->B * c->A);
    if (c->rl) L += fd_dot(c->logp, c->rl, (size_t)c->B);
    return L;
}

/* _i = 0: dact and dlogp; 1: dlogp only; 2: dact only; 3: eps = NULL */
START_TEST(test_tgauss_backward_fd) {
    enum { B = 4, A = 3 };
    crl_rng rng;
    crl_rng_seed(&rng, 200 + _i);
    float out[B * 2 * A], eps[B * A], act[B * A], logp[B], ra[B * A], rl[B],
        dout[B * 2 * A];
    for (int r = 0; r < B; r++)
        for (int j = 0; j < A; j++) {
            out[r * 2 * A + j] = (float)crl_rng_range(&rng, -1.5, 1.5);
            out[r * 2 * A + A + j] = (float)crl_rng_range(&rng, -1.5, 1.0);
        }
    /* Outside the clip range: zero gradient for those log-stds. */
    out[0 * 2 * A + A + 1] = 3.0f;
    out[2 * 2 * A + A + 0] = -25.0f;
    fd_normal(&rng, eps, B * A);
    fd_uniform(&rng, ra, B * A, -1, 1);
    fd_uniform(&rng, rl, B, -1, 1);
    tg_ctx c = {B,
                A,
                out,
                _i == 3 ? NULL : eps,
                act,
                logp,
                _i == 1 ? NULL : ra,
                _i == 2 ? NULL : rl};
    tg_loss(&c);
    for (int k = 0; k < B * 2 * A; k++) dout[k] = 1e3f;
    crl_tgauss_backward(B, A, out, c.eps, c.ra, c.rl, dout);
    double num[B * 2 * A];
    fd_grad(out, B * 2 * A, H, tg_loss, &c, num);
    CHECK_GRAD("dout", dout, num, B * 2 * A, RTOL, ATOL);
    ck_assert_float_eq(dout[0 * 2 * A + A + 1], 0.0f);
    ck_assert_float_eq(dout[2 * 2 * A + A + 0], 0.0f);
    /* ...and the test sees the log-std gradient elsewhere. */
    ck_assert(fabsf(dout[1 * 2 * A + A]) > 1e-3f);
}
END_TEST

START_TEST(test_tgauss_logp_direct) {
    /* 1-D: density of a = tanh(u), u ~ N(mu, sigma), in double, directly:
     * log p(a) = log N(u; mu, sigma) - log(1 - tanh(u)^2). */
    const double mus[4] = {0.3, 4.0, -1.2, 0.0}, lss[4] = {-0.5, 0.0, 1.5, -3.0},
                 es[4] = {0.8, 1.5, -2.0, 0.1};
    for (int k = 0; k < 4; k++) {
        const double sigma = exp(lss[k]), u = mus[k] + sigma * es[k];
        const double want = -0.5 * pow((u - mus[k]) / sigma, 2) - log(sigma) -
                            0.5 * log(2 * M_PI) - log(1 - tanh(u) * tanh(u));
        const float out[2] = {(float)mus[k], (float)lss[k]}, e = (float)es[k];
        float a, lp;
        crl_tgauss_forward(1, 1, out, &e, &a, &lp);
        ck_assert_msg(fabs(lp - want) < 2e-4 * fmax(1, fabs(want)),
                      "case %d: logp %.7g want %.7g", k, lp, want);
        ck_assert_double_eq_tol(a, tanh(u), 1e-6);
    }
    /* Dims add up; log-std above the max behaves as the max. */
    const float out2[4] = {0.3f, 4.0f, -0.5f, 0.0f}, e2[2] = {0.8f, 1.5f};
    float a2[2], lp2, a1, lp1a, lp1b;
    crl_tgauss_forward(1, 2, out2, e2, a2, &lp2);
    const float o1[2] = {0.3f, -0.5f}, o2[2] = {4.0f, 0.0f};
    crl_tgauss_forward(1, 1, o1, &e2[0], &a1, &lp1a);
    crl_tgauss_forward(1, 1, o2, &e2[1], &a1, &lp1b);
    ck_assert_float_eq_tol(lp2, lp1a + lp1b, 1e-5f);
    const float hi[2] = {0.1f, 7.0f}, at[2] = {0.1f, CRL_LOG_STD_MAX};
    float lh, la, ah, aa;
    crl_tgauss_forward(1, 1, hi, &e2[0], &ah, &lh);
    crl_tgauss_forward(1, 1, at, &e2[0], &aa, &la);
    ck_assert_float_eq(lh, la);
    ck_assert_float_eq(ah, aa);
    /* Deterministic: act = tanh(mean), whatever the log-std. */
    const float od[4] = {0.7f, -2.5f, 1.9f, 0.3f};
    float ad[2];
    crl_tgauss_forward(1, 2, od, NULL, ad, NULL);
    ck_assert_double_eq_tol(ad[0], tanh(0.7), 1e-6);
    ck_assert_double_eq_tol(ad[1], tanh(-2.5), 1e-6);
}
END_TEST

/* ---- Adam, Polyak, finiteness -------------------------------------------------- */

/* p = [1, -2], lr 0.1, g1 = [0.5, -1], g2 = [0.1, 2], b1 .9, b2 .999, eps 1e-7.
 * Step 1: m = [.05, -.1], v = [2.5e-4, 1e-3]; mhat = g1, vhat = g1^2, so
 *   p -= .1 * g / (|g| + 1e-7):  p = [0.90000002, -1.90000001]
 * Step 2: m = .9 m + .1 g2 = [.055, .11]
 *   v = .999 v + .001 g2^2 = [2.5975e-4, 4.999e-3]
 *   mhat = m / (1 - .81) = [.28947368, .57894737]
 *   vhat = v / (1 - .998001) = [.12993997, 2.50075038]
 *   step = .1 * mhat / (sqrt(vhat) + 1e-7) = [.08030408, .03661035]
 *   p = [.81969594, -1.93661036] */
static const float ADAM_P1[2] = {0.90000002f, -1.90000001f};
static const float ADAM_P2[2] = {0.81969594f, -1.93661036f};

START_TEST(test_adam_hand) {
    crl_adam a;
    ck_assert_int_eq(crl_adam_init(&a, 2, 0.1f, NULL), CRL_OK);
    ck_assert_float_eq(a.beta1, 0.9f);
    ck_assert_float_eq(a.beta2, 0.999f);
    ck_assert_float_eq(a.eps, 1e-7f);
    float p[2] = {1, -2};
    const float g1[2] = {0.5f, -1}, g2[2] = {0.1f, 2};
    crl_adam_step(&a, p, g1, NULL);
    ck_assert_int_eq(a.t, 1);
    for (int i = 0; i < 2; i++) ck_assert_float_eq_tol(p[i], ADAM_P1[i], 1e-6f);
    crl_adam_step(&a, p, g2, NULL);
    ck_assert_int_eq(a.t, 2);
    for (int i = 0; i < 2; i++) ck_assert_float_eq_tol(p[i], ADAM_P2[i], 2e-6f);
    ck_assert_float_eq_tol(a.m[0], 0.055f, 1e-7f);
    /* beta2 is the float 0.999f = 0.999000013, so 1 - beta2 = 9.99987e-4 and
     * v[1] = 0.999000013 * 9.99987e-4 + 9.99987e-4 * 4 = 4.998936e-3 (the
     * 4.999e-3 above is for beta2 = 0.999 exactly). */
    ck_assert_float_eq_tol(a.v[1], 4.998936e-3f, 2e-9f);
    crl_adam_reset(&a);
    ck_assert_int_eq(a.t, 0);
    ck_assert(a.m[0] == 0 && a.m[1] == 0 && a.v[0] == 0 && a.v[1] == 0);
    /* After reset the trajectory restarts: first step is again ~lr*sign(g). */
    float q[2] = {1, -2};
    crl_adam_step(&a, q, g1, NULL);
    for (int i = 0; i < 2; i++) ck_assert_float_eq_tol(q[i], ADAM_P1[i], 1e-6f);
    crl_adam_free(&a);
}
END_TEST

/* _i = 0: crl_adam_step (AVX2 where available); 1: the portable kernel. */
START_TEST(test_adam_mask) {
    /* 19 entries (8- and 4-wide bodies + tails), the 2-element case repeated;
     * frozen entries carry a NaN gradient and must stay bit-identical. */
    enum { N = 19 };
    const uint8_t tr[N] = {1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1};
    float p[N], g[N], p0[N];
    crl_adam a;
    ck_assert_int_eq(crl_adam_init(&a, N, 0.1f, NULL), CRL_OK);
    for (int i = 0; i < N; i++) p[i] = i % 2 ? -2.0f : 1.0f;
    p[2] = 0.123456789f, p[10] = -7e-30f;
    memcpy(p0, p, sizeof p);
    for (int step = 0; step < 2; step++) {
        for (int i = 0; i < N; i++) {
            g[i] = step == 0 ? (i % 2 ? -1.0f : 0.5f) : (i % 2 ? 2.0f : 0.1f);
            if (!tr[i]) g[i] = NAN;
        }
        if (_i == 0) {
            crl_adam_step(&a, p, g, tr);
        } else { /* same scalars as crl_adam_step computes for this step */
            a.t++;
            const float lr_c1 = (float)(0.1 / (1.0 - pow(0.9f, (double)a.t)));
            const float c2 = (float)(1.0 / sqrt(1.0 - pow(0.999f, (double)a.t)));
            crl__adam_update_generic(N, p, a.m, a.v, g, tr, a.beta1, a.beta2, lr_c1, c2,
                                     a.eps);
        }
    }
    for (int i = 0; i < N; i++) {
        if (tr[i]) {
            ck_assert_float_eq_tol(p[i], ADAM_P2[i % 2], 2e-6f);
        } else {
            ck_assert(memcmp(&p[i], &p0[i], sizeof p[i]) == 0);
            ck_assert(a.m[i] == 0.0f && a.v[i] == 0.0f && !signbit(a.m[i]));
        }
    }
    crl_adam_free(&a);
}
END_TEST

START_TEST(test_polyak_finite) {
    /* 0.75 * t + 0.25 * s */
    float t[5] = {1, 2, -4, 8, 0}, s[5] = {3, -2, 4, 0, 1};
    const float want[5] = {1.5f, 1.0f, -2.0f, 6.0f, 0.25f};
    crl_polyak(t, s, 5, 0.75f);
    for (int i = 0; i < 5; i++) ck_assert_float_eq_tol(t[i], want[i], 1e-7f);
    crl_polyak(t, s, 5, 1.0f);
    for (int i = 0; i < 5; i++) ck_assert_float_eq_tol(t[i], want[i], 1e-7f);

    enum { N = 2051 };
    float *x = fbuf(N);
    ck_assert_int_eq(crl_all_finite(x, 0), 1);
    for (int i = 0; i < N; i++) x[i] = (float)(i - 1000) * 1e30f;
    x[7] = -FLT_MAX;
    ck_assert_int_eq(crl_all_finite(x, N), 1);
    const int pos[6] = {0, 3, 4, 1030, 2048, N - 1};
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 6; k++)
        for (int b = 0; b < 3; b++) {
            float keep = x[pos[k]];
            x[pos[k]] = bad[b];
            ck_assert_msg(crl_all_finite(x, N) == 0, "missed %g at %d", bad[b], pos[k]);
            ck_assert_int_eq(crl_all_finite(x, (size_t)pos[k]), 1);
            x[pos[k]] = keep;
        }
    free(x);
}
END_TEST

/* The dx block of crl_mlp_backward_dx_block equals the same block of the
 * full input gradient, and the weight gradients are unchanged by it. */
START_TEST(test_mlp_dx_block_matches_full) {
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 9, 1, 2, 3, 16);
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), 0);
    float *p = malloc(sizeof(float) * m.n_params);
    float *g1 = calloc(m.n_params, sizeof(float)),
          *g2 = calloc(m.n_params, sizeof(float));
    crl_rng r;
    crl_rng_seed(&r, 77);
    crl_mlp_init_params(&m, p, &r);
    enum { B = 10 };
    float x[B * 9], dout[B], full[B * 9], block[B * 3];
    int head[B];
    for (int i = 0; i < B * 9; i++) x[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        dout[i] = (float)crl_rng_normal(&r);
        head[i] = i % 2;
    }
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, B, NULL), 0);
    crl_mlp_forward(&m, p, &ws, x, B, head);
    crl_mlp_backward(&m, p, g1, &ws, dout, 6, full);
    crl_mlp_forward(&m, p, &ws, x, B, head);
    crl_mlp_backward_dx_block(&m, p, g2, &ws, dout, 6, block, 4, 5, 3);
    for (int i = 4; i < B; i++)
        for (int j = 0; j < 3; j++)
            ck_assert_msg(fabsf(block[(i - 4) * 3 + j] - full[i * 9 + 5 + j]) <=
                              1e-6f * (1 + fabsf(full[i * 9 + 5 + j])),
                          "row %d col %d", i, j);
    ck_assert(memcmp(g1, g2, sizeof(float) * m.n_params) == 0);
    crl_mlp_ws_free(&ws);
    free(p);
    free(g1);
    free(g2);
}
END_TEST

/* Dropping rows whose output gradient is zero changes nothing: the weight
 * gradient from the first rows and the input gradient of the kept rows
 * equal a full backward where the dropped rows carry dout = 0 (mixed heads,
 * so that the kept rows' heads must move with them). */
START_TEST(test_mlp_keep_rows_matches_zero_dout) {
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 9, 2, 3, 3, 16);
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), 0);
    float *p = malloc(sizeof(float) * m.n_params);
    float *g1 = calloc(m.n_params, sizeof(float)),
          *g2 = calloc(m.n_params, sizeof(float));
    crl_rng r;
    crl_rng_seed(&r, 78);
    crl_mlp_init_params(&m, p, &r);
    enum { B = 12, R0 = 4 };
    const int keep[] = {5, 8, 9, 11}; /* of rows [R0, B) */
    const int n = 4;
    float x[B * 9], dout[B * 2], dk[B * 2], full[B * 9], block[B * 9];
    int head[B], head_out[B];
    for (int i = 0; i < B * 9; i++) x[i] = (float)crl_rng_normal(&r);
    for (int i = 0; i < B; i++) head[i] = (i * 7) % 3;
    for (int i = 0; i < B * 2; i++) dout[i] = (float)crl_rng_normal(&r);
    /* The full backward sees zeros on the rows [R0, B) not kept. */
    for (int i = R0; i < B; i++) {
        int kept = 0;
        for (int k = 0; k < n; k++) kept |= keep[k] == i;
        if (!kept) dout[i * 2] = dout[i * 2 + 1] = 0.0f;
    }
    memcpy(dk, dout, sizeof(float) * R0 * 2);
    for (int k = 0; k < n; k++) {
        dk[(R0 + k) * 2] = dout[keep[k] * 2];
        dk[(R0 + k) * 2 + 1] = dout[keep[k] * 2 + 1];
    }
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, B, NULL), 0);
    crl_mlp_forward(&m, p, &ws, x, B, head);
    crl_mlp_backward(&m, p, g1, &ws, dout, R0, full);
    const float *out = crl_mlp_forward(&m, p, &ws, x, B, head);
    float out_before[B * 2];
    memcpy(out_before, out, sizeof out_before);
    crl_mlp_ws_keep_rows(&m, &ws, R0, keep, n, head_out);
    ck_assert_int_eq(ws.B, R0 + n);
    ck_assert(ws.head == head_out);
    for (int k = 0; k < n; k++) ck_assert_int_eq(head_out[R0 + k], head[keep[k]]);
    ck_assert(memcmp(ws.out, out_before, sizeof out_before) == 0); /* untouched */
    crl_mlp_backward(&m, p, g2, &ws, dk, R0, block);
    for (size_t i = 0; i < m.n_params; i++)
        ck_assert_msg(fabsf(g1[i] - g2[i]) <= 1e-6f * (1 + fabsf(g1[i])), "param %zu", i);
    for (int i = 0; i < R0 + n; i++) {
        const int src = i < R0 ? i : keep[i - R0];
        for (int j = 0; j < 9; j++)
            ck_assert_msg(fabsf(block[i * 9 + j] - full[src * 9 + j]) <=
                              1e-6f * (1 + fabsf(full[src * 9 + j])),
                          "row %d col %d", i, j);
    }
    crl_mlp_ws_free(&ws);
    free(p);
    free(g1);
    free(g2);
}
END_TEST

static Suite *nn_suite(void) {
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_linear_forward_hand);
    tcase_add_test(tc, test_linear_backward_fd);
    tcase_add_test(tc, test_layernorm_forward_direct);
    tcase_add_test(tc, test_layernorm_backward_fd);
    tcase_add_test(tc, test_act_backward_fd);
    tcase_add_test(tc, test_act_forward_values);
    tcase_add_loop_test(tc, test_mlp_backward_fd, 0, 4);
    tcase_add_test(tc, test_mlp_mixed_heads_match_uniform);
    tcase_add_test(tc, test_mlp_layout_and_init);
    tcase_add_test(tc, test_mlp_bad_spec);
    tcase_add_test(tc, test_mlp_dx_block_matches_full);
    tcase_add_test(tc, test_mlp_keep_rows_matches_zero_dout);
    tcase_add_test(tc, test_no_alloc_in_hot_paths);
    tcase_add_loop_test(tc, test_tgauss_backward_fd, 0, 4);
    tcase_add_test(tc, test_tgauss_logp_direct);
    tcase_add_test(tc, test_adam_hand);
    tcase_add_loop_test(tc, test_adam_mask, 0, 2);
    tcase_add_test(tc, test_polyak_finite);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    /* One BLAS thread: tests are about numbers, and it keeps runs reproducible. */
    crl_err err = {0};
    if (crl_blas_init(1, &err) != CRL_OK) {
        fprintf(stderr, "test_nn: %s\n", err.msg);
        return 1;
    }
    SRunner *sr = srunner_create(nn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
