/* Tests for subspace/: the CSP subspace MLP and the Dirichlet samplers.
 *
 *  - alpha = e_i reproduces a plain crl_mlp holding anchor i, bit for bit;
 *  - the mixed forward against a reference in double that materialises each
 *    row's convex combination of weights (the definition, not our method);
 *  - backward (weights of every anchor, x, alpha) against central finite
 *    differences with a different alpha on every row;
 *  - anchor add / freeze / remove on the flat buffer, through real Adam steps;
 *  - gamma and Dirichlet moments against theory, with tolerances derived
 *    from the standard error of each estimator. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/nn.h"
#include "crl/subspace.h"
#include "fd.h"

#include "malloc_count.h"

#define RTOL 1e-2
#define ATOL 5e-4 /* FD noise <= ~1e-4 at these sizes; see fd.h */
#define H    1e-3f

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

/* A subspace with n anchors that all differ, non-trivial biases, heads and
 * LayerNorm: anchors grown by add_anchor (means), then every float of the
 * first n anchors and the shared block perturbed. */
static void random_subspace(crl_subspace *s, float *params, int n, crl_rng *rng) {
    crl_subspace_init_params(s, params, rng);
    for (int k = 1; k < n; k++)
        ck_assert_int_eq(crl_subspace_add_anchor(s, params, NULL), 0);
    const size_t P = crl_subspace_n_params(s);
    for (size_t k = 0; k < P; k++) params[k] += (float)crl_rng_range(rng, -0.3, 0.3);
}

/* ---- reference forward in double ------------------------------------------------- */

#define REF_MAXW 64

static double ref_act(crl_act a, double slope, double v) {
    switch (a) {
    case CRL_ACT_TANH:
        return tanh(v);
    case CRL_ACT_RELU:
        return v > 0 ? v : 0;
    case CRL_ACT_LRELU:
        return v > 0 ? v : slope * v;
    default:
        return v;
    }
}

/* One row, by the definition: build the row's weights sum_i a_i W_i and
 * biases sum_i a_i b_i in double, then run the plain MLP in double. Writes
 * out[out_dim] and lowers *min_kink to the smallest |pre-activation| of any
 * relu / leaky relu. */
static void ref_forward(const crl_subspace *s, const float *params, const float *x,
                        const float *alpha, int head, double *out, double *min_kink) {
    const crl_mlp_spec *p = &s->spec;
    const int n = s->n_anchors;
    double in[REF_MAXW], y[REF_MAXW];
    int prev = p->in_dim;
    for (int k = 0; k < prev; k++) in[k] = x[k];
    for (int l = 0; l <= p->n_hidden; l++) {
        const int is_head = l == p->n_hidden;
        const int o = is_head ? p->out_dim : p->hidden[l];
        ck_assert_int_le(o, REF_MAXW);
        const size_t woff = is_head ? s->head_W + (size_t)head * prev * o : s->W[l];
        const size_t boff = is_head ? s->head_b + (size_t)head * o : s->b[l];
        for (int j = 0; j < o; j++) {
            double bj = 0;
            for (int i = 0; i < n; i++)
                bj += (double)alpha[i] *
                      params[crl_subspace_anchor_offset(s, i) + boff + (size_t)j];
            y[j] = bj;
            for (int k = 0; k < prev; k++) {
                double wkj = 0;
                for (int i = 0; i < n; i++)
                    wkj += (double)alpha[i] * params[crl_subspace_anchor_offset(s, i) +
                                                     woff + (size_t)k * o + j];
                y[j] += in[k] * wkj;
            }
        }
        if (is_head) {
            for (int j = 0; j < o; j++) out[j] = y[j];
            return;
        }
        const crl_act a = l == 0 ? p->first_act : p->act;
        if (l == 0 && p->layernorm_first) {
            double mu = 0, var = 0;
            for (int j = 0; j < o; j++) mu += y[j];
            mu /= o;
            for (int j = 0; j < o; j++) var += (y[j] - mu) * (y[j] - mu);
            var /= o;
            const double rs = 1.0 / sqrt(var + p->ln_eps);
            for (int j = 0; j < o; j++)
                y[j] = (y[j] - mu) * rs * params[s->ln_g + j] + params[s->ln_b + j];
        } else if (a == CRL_ACT_RELU || a == CRL_ACT_LRELU) {
            for (int j = 0; j < o; j++) *min_kink = fmin(*min_kink, fabs(y[j]));
        }
        for (int j = 0; j < o; j++) in[j] = ref_act(a, p->lrelu_slope, y[j]);
        prev = o;
    }
}

/* ---- layout ------------------------------------------------------------------------ */

START_TEST(test_layout_and_init) {
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 39, 8, 3, 4, 256);
    crl_subspace s;
    crl_err err = {0};
    ck_assert_int_eq(crl_subspace_init(&s, &sp, 5, &err), CRL_OK);
    /* Per anchor: 39*256+256 + 3*(256*256+256) + 3*(256*8) + 3*8; shared: 2*256. */
    const size_t A = 39 * 256 + 256 + 3 * (256 * 256 + 256) + 3 * 256 * 8 + 3 * 8;
    ck_assert_uint_eq(s.anchor_size, A);
    ck_assert_uint_eq(s.n_shared, 512);
    ck_assert_uint_eq(s.capacity, 512 + 5 * A);
    ck_assert_int_eq(s.n_anchors, 1);
    ck_assert_int_eq(s.n_frozen, 0);
    ck_assert_uint_eq(crl_subspace_n_params(&s), 512 + A);
    ck_assert_uint_eq(crl_subspace_anchor_offset(&s, 3), 512 + 3 * A);
    /* One anchor plus the LayerNorm is exactly one crl_mlp. */
    crl_mlp m;
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), CRL_OK);
    ck_assert_uint_eq(m.n_params, crl_subspace_n_params(&s));
    ck_assert_double_eq(crl_subspace_macs_per_row(&s), crl_mlp_macs_per_row(&m));

    /* Anchor 0 is the network crl_mlp_init_params draws from the same rng. */
    crl_rng r1, r2;
    crl_rng_seed(&r1, 77);
    r2 = r1;
    float *sub = fbuf(s.capacity), *mlp = fbuf(m.n_params), *got = fbuf(m.n_params);
    for (size_t k = 0; k < s.capacity; k++) sub[k] = NAN; /* must all be written */
    crl_subspace_init_params(&s, sub, &r1);
    crl_mlp_init_params(&m, mlp, &r2);
    crl_subspace_anchor_to_mlp(&s, sub, 0, &m, got);
    ck_assert_int_eq(memcmp(got, mlp, m.n_params * sizeof *mlp), 0);
    size_t nonzero = 0;
    for (size_t k = crl_subspace_n_params(&s); k < s.capacity; k++)
        nonzero += sub[k] != 0;
    ck_assert_uint_eq(nonzero, 0);
    ck_assert_uint_eq(crl_rng_u64(&r1), crl_rng_u64(&r2)); /* same number of draws */

    ck_assert_int_eq(crl_subspace_init(&s, &sp, 0, &err), CRL_EINVAL);
    crl_mlp_spec bad = sp;
    bad.n_heads = 0;
    ck_assert_int_eq(crl_subspace_init(&s, &bad, 3, &err), CRL_EINVAL);
    bad = sp, bad.layernorm_first = 0;
    ck_assert_int_eq(crl_subspace_init(&s, &bad, 3, &err), CRL_OK);
    ck_assert_uint_eq(s.n_shared, 0);
    crl_subspace_ws ws;
    ck_assert_int_eq(crl_subspace_ws_alloc(&ws, &s, 0, &err), CRL_EINVAL);
    free(sub), free(mlp), free(got);
}
END_TEST

/* ---- alpha = e_i is anchor i's crl_mlp, bit for bit ---------------------------------
 */

/* Copy anchor i into crl_mlp's layout with our own loop over the offsets (not
 * crl_subspace_anchor_to_mlp, which is checked against this). */
static void copy_anchor(const crl_subspace *s, const float *params, int i,
                        const crl_mlp *m, float *dst) {
    const crl_mlp_spec *p = &s->spec;
    const float *a = params + crl_subspace_anchor_offset(s, i);
    int prev = p->in_dim;
    for (int l = 0; l < p->n_hidden; l++) {
        const int h = p->hidden[l];
        memcpy(dst + m->W[l], a + s->W[l], (size_t)prev * h * sizeof *a);
        memcpy(dst + m->b[l], a + s->b[l], (size_t)h * sizeof *a);
        prev = h;
    }
    memcpy(dst + m->head_W, a + s->head_W,
           (size_t)p->n_heads * prev * p->out_dim * sizeof *a);
    memcpy(dst + m->head_b, a + s->head_b, (size_t)p->n_heads * p->out_dim * sizeof *a);
    if (p->layernorm_first) {
        memcpy(dst + m->ln_g, params + s->ln_g, (size_t)p->hidden[0] * sizeof *a);
        memcpy(dst + m->ln_b, params + s->ln_b, (size_t)p->hidden[0] * sizeof *a);
    }
}

START_TEST(test_onehot_is_plain_mlp) {
    enum { N = 3, B = 20, IN = 9, OUT = 4, NH = 3 };
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, IN, OUT, NH, 4, 32);
    crl_subspace s;
    crl_mlp m;
    ck_assert_int_eq(crl_subspace_init(&s, &sp, N, NULL), CRL_OK);
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), CRL_OK);
    crl_rng rng;
    crl_rng_seed(&rng, 31);
    float *params = fbuf(s.capacity), *mp = fbuf(m.n_params), *mp2 = fbuf(m.n_params);
    float *x = fbuf(B * IN), *alpha = fbuf(B * N), *ysub = fbuf(B * OUT);
    random_subspace(&s, params, N, &rng);
    fd_uniform(&rng, x, B * IN, -2, 2);
    crl_subspace_ws ws;
    crl_mlp_ws mws;
    ck_assert_int_eq(crl_subspace_ws_alloc(&ws, &s, B, NULL), CRL_OK);
    ck_assert_int_eq(crl_mlp_ws_alloc(&mws, &m, B, NULL), CRL_OK);
    int mixed[B], all2[B];
    for (int r = 0; r < B; r++) mixed[r] = (int)crl_rng_below(&rng, NH), all2[r] = 2;
    mixed[0] = 0, mixed[1] = 1;
    const int *heads[3] = {NULL, all2, mixed};

    for (int i = 0; i < N; i++) {
        copy_anchor(&s, params, i, &m, mp);
        crl_subspace_anchor_to_mlp(&s, params, i, &m, mp2);
        ck_assert_int_eq(memcmp(mp, mp2, m.n_params * sizeof *mp), 0);
        memset(alpha, 0, B * N * sizeof *alpha);
        for (int r = 0; r < B; r++) alpha[r * N + i] = 1.0f;
        crl_subspace_mix_to_mlp(&s, params, alpha, &m, mp2);
        ck_assert_int_eq(memcmp(mp, mp2, m.n_params * sizeof *mp), 0);
        for (int hv = 0; hv < 3; hv++) {
            memcpy(ysub, crl_subspace_forward(&s, params, &ws, x, B, alpha, heads[hv]),
                   B * OUT * sizeof *ysub);
            const float *ym = crl_mlp_forward(&m, mp, &mws, x, B, heads[hv]);
            ck_assert_msg(memcmp(ysub, ym, B * OUT * sizeof *ym) == 0,
                          "anchor %d, head variant %d: not bit-identical", i, hv);
        }
    }
    /* One batch, a different one-hot per row: row r matches anchor r % N. */
    memset(alpha, 0, B * N * sizeof *alpha);
    for (int r = 0; r < B; r++) alpha[r * N + r % N] = 1.0f;
    for (int hv = 0; hv < 3; hv++) {
        memcpy(ysub, crl_subspace_forward(&s, params, &ws, x, B, alpha, heads[hv]),
               B * OUT * sizeof *ysub);
        for (int i = 0; i < N; i++) {
            copy_anchor(&s, params, i, &m, mp);
            const float *ym = crl_mlp_forward(&m, mp, &mws, x, B, heads[hv]);
            for (int r = i; r < B; r += N)
                ck_assert_msg(memcmp(ysub + r * OUT, ym + r * OUT, OUT * sizeof *ym) == 0,
                              "row %d (anchor %d), head variant %d", r, i, hv);
        }
    }
    /* The anchors really differ (else the test is blind). */
    copy_anchor(&s, params, 0, &m, mp);
    const float *y0 = crl_mlp_forward(&m, mp, &mws, x, B, NULL);
    ck_assert(fabsf(y0[1 * OUT] - ysub[1 * OUT]) > 1e-3f);
    crl_subspace_ws_free(&ws);
    crl_mlp_ws_free(&mws);
    free(params), free(mp), free(mp2), free(x), free(alpha), free(ysub);
}
END_TEST

/* ---- mixed forward against the definition -------------------------------------------
 */

START_TEST(test_forward_matches_definition) {
    enum { N = 4, B = 12, NH = 3 };
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 7, 5, NH, 3, 24);
    crl_subspace s;
    crl_mlp m;
    ck_assert_int_eq(crl_subspace_init(&s, &sp, N + 1, NULL), CRL_OK);
    ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), CRL_OK);
    crl_rng rng;
    crl_rng_seed(&rng, 41);
    float *params = fbuf(s.capacity), *x = fbuf(B * 7), *alpha = fbuf(B * N),
          *mp = fbuf(m.n_params), *y = fbuf(B * 5);
    random_subspace(&s, params, N, &rng);
    fd_uniform(&rng, x, B * 7, -2, 2);
    for (int r = 0; r < B; r++) {
        if (r % 3 == 0)
            crl_dirichlet_flat(&rng, N, alpha + r * N, NULL);
        else if (r % 3 == 1)
            crl_dirichlet_peaked(&rng, N, alpha + r * N, NULL);
        else
            crl_dirichlet_old(&rng, N, alpha + r * N, NULL);
    }
    /* Off the simplex too: the output is linear in alpha, not just convex. */
    alpha[5 * N + 0] = -0.5f, alpha[5 * N + 2] = 1.25f;
    int head[B];
    for (int r = 0; r < B; r++) head[r] = (r * 7) % NH;
    crl_subspace_ws ws;
    crl_mlp_ws mws;
    ck_assert_int_eq(crl_subspace_ws_alloc(&ws, &s, B, NULL), CRL_OK);
    ck_assert_int_eq(crl_mlp_ws_alloc(&mws, &m, 1, NULL), CRL_OK);
    for (int hv = 0; hv < 2; hv++) {
        const int *hd = hv ? head : NULL;
        memcpy(y, crl_subspace_forward(&s, params, &ws, x, B, alpha, hd),
               B * 5 * sizeof *y);
        for (int r = 0; r < B; r++) {
            double want[5], kink = INFINITY;
            ref_forward(&s, params, x + r * 7, alpha + r * N, hd ? hd[r] : 0, want,
                        &kink);
            for (int j = 0; j < 5; j++)
                ck_assert_msg(fabs(y[r * 5 + j] - want[j]) <= 1e-5 + 1e-5 * fabs(want[j]),
                              "row %d out %d: %.8g want %.8g", r, j, y[r * 5 + j],
                              want[j]);
            /* The materialised policy (for inference/export) agrees too. */
            crl_subspace_mix_to_mlp(&s, params, alpha + r * N, &m, mp);
            const int hr = hd ? hd[r] : 0;
            const float *ym = crl_mlp_forward(&m, mp, &mws, x + r * 7, 1, &hr);
            for (int j = 0; j < 5; j++)
                ck_assert_msg(fabs(ym[j] - want[j]) <= 1e-5 + 1e-5 * fabs(want[j]),
                              "mix_to_mlp row %d out %d: %.8g want %.8g", r, j, ym[j],
                              want[j]);
        }
    }
    /* A row whose alpha is all zero is the empty sum: every Linear gives 0. */
    memset(alpha, 0, N * sizeof *alpha);
    crl_subspace_forward(&s, params, &ws, x, B, alpha, NULL);
    double want[5], kink = INFINITY;
    ref_forward(&s, params, x, alpha, 0, want, &kink);
    for (int j = 0; j < 5; j++) ck_assert_double_eq_tol(ws.out[j], want[j], 1e-5);
    crl_subspace_ws_free(&ws);
    crl_mlp_ws_free(&mws);
    free(params), free(x), free(alpha), free(mp), free(y);
}
END_TEST

/* ---- backward against finite differences ----------------------------------------------
 */

typedef struct {
    const crl_subspace *s;
    crl_subspace_ws *ws;
    float *params, *x, *alpha, *r;
    const int *head;
    int B, rows;
} sub_ctx;

static double sub_loss(void *p) {
    sub_ctx *c = p;
    const float *y =
        crl_subspace_forward(c->s, c->params, c->ws, c->x, c->B, c->alpha, c->head);
    return fd_dot(y, c->r, (size_t)c->rows * c->s->spec.out_dim);
}

/* _i = 0: mixed per-row heads, dw_rows < B (row-loop head path)
 * _i = 1: every row on head 2 (sgemm head path), dw_rows = B
 * _i = 2: head NULL (head 0), dw_rows < B
 * _i = 3: no LayerNorm, relu after layer 1, mixed heads
 * Three anchors in a buffer of four, so unused capacity is checked as well.
 * The rows' alphas: flat, flat, old subspace (last = 0), one-hot, peaked,
 * flat; d/dalpha is checked at the zero entries too. */
START_TEST(test_backward_fd) {
    enum { N = 3, B = 6 };
    crl_mlp_spec sp;
    small_spec(&sp);
    if (_i == 3) {
        sp.layernorm_first = 0;
        sp.first_act = CRL_ACT_RELU;
    }
    crl_subspace s;
    crl_err err = {0};
    ck_assert_int_eq(crl_subspace_init(&s, &sp, N + 1, &err), CRL_OK);
    const int mixed[B] = {2, 0, 1, 2, 2, 0}, all2[B] = {2, 2, 2, 2, 2, 2};
    const int *head = _i == 1 ? all2 : _i == 2 ? NULL : mixed;
    const int dw_rows = _i == 1 ? B : 4;
    const int IN = sp.in_dim, O = sp.out_dim;

    crl_subspace_ws ws;
    ck_assert_int_eq(crl_subspace_ws_alloc(&ws, &s, B, &err), CRL_OK);
    const size_t C = s.capacity;
    float *params = fbuf(C), *grads = fbuf(C), *x = fbuf(B * IN), *r = fbuf(B * O),
          *dx = fbuf(B * IN), *alpha = fbuf(B * N), *dal = fbuf(B * N);
    sub_ctx c = {&s, &ws, params, x, alpha, r, head, B, B};
    /* Central differences across a relu kink are meaningless: take the first
     * seed whose rectified pre-activations (from the double reference) all
     * clear 0 by >> H. */
    int tries = 0;
    for (;; tries++) {
        ck_assert_msg(tries < 200, "no seed keeps the pre-activations off the kink");
        crl_rng rng;
        crl_rng_seed(&rng, 1000 * (uint64_t)_i + tries);
        random_subspace(&s, params, N, &rng);
        fd_uniform(&rng, x, B * IN, -1.5, 1.5);
        fd_uniform(&rng, r, B * O, -1, 1);
        crl_dirichlet_flat(&rng, N, alpha + 0 * N, NULL);
        crl_dirichlet_flat(&rng, N, alpha + 1 * N, NULL);
        crl_dirichlet_old(&rng, N, alpha + 2 * N, NULL);
        alpha[3 * N + 0] = 0, alpha[3 * N + 1] = 1, alpha[3 * N + 2] = 0;
        crl_dirichlet_peaked(&rng, N, alpha + 4 * N, NULL);
        crl_dirichlet_flat(&rng, N, alpha + 5 * N, NULL);
        double kink = INFINITY, yref[8];
        for (int k = 0; k < B; k++)
            ref_forward(&s, params, x + k * IN, alpha + k * N, head ? head[k] : 0, yref,
                        &kink);
        if (kink > 5e-3) break;
    }
    const size_t P = crl_subspace_n_params(&s);
    sub_loss(&c);
    for (size_t k = 0; k < C; k++) grads[k] = 0.125f;
    for (int k = 0; k < B * IN; k++) dx[k] = 1e3f;
    for (int k = 0; k < B * N; k++) dal[k] = 1e3f;
    crl_subspace_backward(&s, params, grads, &ws, r, dw_rows, dx, dal);
    float *graw = fbuf(C);
    memcpy(graw, grads, C * sizeof *grads);
    for (size_t k = P; k < C; k++) ck_assert_float_eq(grads[k], 0.125f); /* unused */
    for (size_t k = 0; k < C; k++) grads[k] -= 0.125f;

    double *num = dbuf(P);
    c.rows = dw_rows;
    fd_grad(params, P, H, sub_loss, &c, num);
    CHECK_GRAD("dparams", grads, num, P, RTOL, ATOL);
    /* Every anchor's weights are exercised (else the test is blind). */
    for (int i = 0; i < N; i++) {
        double mx = 0;
        const size_t off = crl_subspace_anchor_offset(&s, i);
        for (size_t k = 0; k < s.anchor_size; k++) mx = fmax(mx, fabs(grads[off + k]));
        ck_assert_msg(mx > 1e-2, "anchor %d has no gradient", i);
    }
    c.rows = B;
    fd_grad(x, B * IN, H, sub_loss, &c, num);
    CHECK_GRAD("dx", dx, num, B * IN, RTOL, ATOL);
    fd_grad(alpha, B * N, H, sub_loss, &c, num);
    CHECK_GRAD("dalpha", dal, num, B * N, RTOL, ATOL);

    /* Frozen anchor 0 (hence the LayerNorm): their gradient entries are not
     * touched, the others and dx, dalpha are bit for bit the same. */
    float *g2 = fbuf(C), *dx2 = fbuf(B * IN), *dal2 = fbuf(B * N);
    for (size_t k = 0; k < C; k++) g2[k] = 0.125f;
    s.n_frozen = 1;
    sub_loss(&c);
    crl_subspace_backward(&s, params, g2, &ws, r, dw_rows, dx2, dal2);
    const size_t a1 = crl_subspace_anchor_offset(&s, 1);
    for (size_t k = 0; k < a1; k++) ck_assert_float_eq(g2[k], 0.125f);
    ck_assert_int_eq(memcmp(g2 + a1, graw + a1, (C - a1) * sizeof *g2), 0);
    ck_assert_int_eq(memcmp(dx2, dx, B * IN * sizeof *dx), 0);
    ck_assert_int_eq(memcmp(dal2, dal, B * N * sizeof *dal), 0);
    /* Everything frozen: no weight gradient, same dx and dalpha. */
    s.n_frozen = N;
    for (size_t k = 0; k < C; k++) g2[k] = 0.125f;
    crl_subspace_backward(&s, params, g2, &ws, r, dw_rows, dx2, dal2);
    for (size_t k = 0; k < C; k++) ck_assert_float_eq(g2[k], 0.125f);
    ck_assert_int_eq(memcmp(dx2, dx, B * IN * sizeof *dx), 0);
    s.n_frozen = 0;

    /* grads == NULL gives the same dx/dalpha; dx == dalpha == NULL the same
     * grads (only the first dw_rows rows are propagated then). */
    crl_subspace_backward(&s, params, NULL, &ws, r, dw_rows, dx2, dal2);
    ck_assert_int_eq(memcmp(dx2, dx, B * IN * sizeof *dx), 0);
    ck_assert_int_eq(memcmp(dal2, dal, B * N * sizeof *dal), 0);
    memset(g2, 0, C * sizeof *g2);
    crl_subspace_backward(&s, params, g2, &ws, r, dw_rows, NULL, NULL);
    for (size_t k = 0; k < C; k++) ck_assert_float_eq_tol(g2[k], grads[k], 1e-5f);

    crl_subspace_ws_free(&ws);
    free(params), free(grads), free(graw), free(x), free(r), free(dx), free(alpha),
        free(dal), free(num), free(g2), free(dx2), free(dal2);
}
END_TEST

/* ---- anchor management ----------------------------------------------------------------
 */

START_TEST(test_anchor_add_freeze_remove) {
    crl_mlp_spec sp;
    small_spec(&sp);
    crl_subspace s;
    crl_err err = {0};
    ck_assert_int_eq(crl_subspace_init(&s, &sp, 4, &err), CRL_OK);
    const size_t C = s.capacity, A = s.anchor_size;
    float *p = fbuf(C), *snap = fbuf(C), *g = fbuf(C);
    uint8_t *mask = malloc(C);
    ck_assert_ptr_nonnull(mask);
    crl_rng rng;
    crl_rng_seed(&rng, 3);
    crl_subspace_init_params(&s, p, &rng);
    for (size_t k = 0; k < crl_subspace_n_params(&s); k++)
        p[k] += (float)crl_rng_range(&rng, -0.3, 0.3);

    /* Task 1: one anchor, everything trainable, the rest of capacity not. */
    crl_subspace_mask(&s, mask);
    for (size_t k = 0; k < C; k++)
        ck_assert_int_eq(mask[k], k < crl_subspace_n_params(&s) ? 1 : 0);

    /* From one anchor, the mean is that anchor exactly. */
    crl_subspace_freeze_all(&s);
    memcpy(snap, p, C * sizeof *p);
    ck_assert_int_eq(crl_subspace_add_anchor(&s, p, &err), CRL_OK);
    ck_assert_int_eq(s.n_anchors, 2);
    const size_t o0 = crl_subspace_anchor_offset(&s, 0), o1 = o0 + A, o2 = o1 + A;
    ck_assert_int_eq(memcmp(p, snap, o1 * sizeof *p), 0);
    ck_assert_int_eq(memcmp(p + o1, p + o0, A * sizeof *p), 0);
    /* Anchor 1 learns something of its own (stand-in for task 2). */
    for (size_t k = 0; k < A; k++) p[o1 + k] += (float)crl_rng_range(&rng, -0.5, 0.5);

    /* Task 3 start: freeze, add; snapshot first. */
    crl_subspace_freeze_all(&s);
    ck_assert_int_eq(s.n_frozen, 2);
    memcpy(snap, p, C * sizeof *p);
    ck_assert_int_eq(crl_subspace_add_anchor(&s, p, &err), CRL_OK);
    ck_assert_int_eq(s.n_anchors, 3);
    ck_assert_int_eq(memcmp(p, snap, o2 * sizeof *p), 0); /* old: untouched */
    for (size_t k = 0; k < A; k++) {
        /* Documented formula, and within one ulp of the exact mean. */
        const float want = (float)(((double)p[o0 + k] + (double)p[o1 + k]) / 2);
        ck_assert_msg(memcmp(&p[o2 + k], &want, sizeof want) == 0, "mean at %zu", k);
        const long double exact = ((long double)p[o0 + k] + p[o1 + k]) / 2;
        ck_assert(fabsl(p[o2 + k] - exact) <=
                  fabsl((long double)nextafterf(p[o2 + k], INFINITY) - p[o2 + k]));
    }

    /* Mask: only the new anchor trains; LayerNorm is frozen from task 2 on. */
    crl_subspace_mask(&s, mask);
    for (size_t k = 0; k < C; k++)
        ck_assert_int_eq(mask[k], (k >= o2 && k < o2 + A) ? 1 : 0);

    /* Train the new anchor with real Adam steps and gradients everywhere. */
    crl_adam adam;
    ck_assert_int_eq(crl_adam_init(&adam, C, 1e-2f, &err), CRL_OK);
    float *before_train = fbuf(C);
    memcpy(before_train, p, C * sizeof *p);
    for (int it = 0; it < 5; it++) {
        fd_uniform(&rng, g, C, -1, 1);
        crl_adam_step(&adam, p, g, mask);
    }
    ck_assert_int_eq(memcmp(p, snap, o2 * sizeof *p), 0); /* frozen: bit-identical */
    for (size_t k = o2 + A; k < C; k++) ck_assert_float_eq(p[k], 0.0f);
    size_t changed = 0;
    for (size_t k = o2; k < o2 + A; k++) changed += p[k] != before_train[k];
    ck_assert_uint_eq(changed, A);

    /* Prune: the whole buffer is what it was before the add, bit for bit. */
    ck_assert_int_eq(crl_subspace_remove_last(&s, p, &err), CRL_OK);
    ck_assert_int_eq(s.n_anchors, 2);
    ck_assert_int_eq(s.n_frozen, 2);
    ck_assert_int_eq(memcmp(p, snap, C * sizeof *p), 0);

    /* Capacity and the last anchor are guarded. */
    ck_assert_int_eq(crl_subspace_add_anchor(&s, p, &err), CRL_OK);
    ck_assert_int_eq(crl_subspace_add_anchor(&s, p, &err), CRL_OK);
    ck_assert_int_eq(crl_subspace_add_anchor(&s, p, &err), CRL_EINVAL);
    ck_assert_int_eq(s.n_anchors, 4);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(crl_subspace_remove_last(&s, p, &err), 0);
    ck_assert_int_eq(s.n_frozen, 1);
    ck_assert_int_eq(crl_subspace_remove_last(&s, p, &err), CRL_EINVAL);
    ck_assert_int_eq(s.n_anchors, 1);
    crl_adam_free(&adam);
    free(p), free(snap), free(g), free(mask), free(before_train);
}
END_TEST

/* ---- gamma and Dirichlet moments
 * ------------------------------------------------------- */

/* Sample mean m and (1/N) variance v of N draws are checked against theory
 * within 5 standard errors: SE(m) = sqrt(var / N) and, for the variance,
 * SE(v) = sqrt((mu4 - var^2) / N), with mu4 the 4th central moment of the
 * distribution. A correct sampler fails one such check with probability
 * ~6e-7, so the suite's ~100 checks are reliable; a sampler off by a few
 * percent in mean or variance fails (at N = 1e5 the tolerances are ~1%). */
#define NSAMP 100000
#define NSE   5.0

static void check_moments(const char *what, double sum, double sumsq, double mean,
                          double var, double mu4) {
    const double m = sum / NSAMP, v = sumsq / NSAMP - m * m;
    const double se_m = sqrt(var / NSAMP), se_v = sqrt((mu4 - var * var) / NSAMP);
    ck_assert_msg(fabs(m - mean) <= NSE * se_m, "%s: mean %.6g, theory %.6g (SE %.2g)",
                  what, m, mean, se_m);
    ck_assert_msg(fabs(v - var) <= NSE * se_v, "%s: var %.6g, theory %.6g (SE %.2g)",
                  what, v, var, se_v);
}

START_TEST(test_gamma_moments) {
    /* Gamma(k, 1): mean k, var k, mu4 = 3k^2 + 6k (excess kurtosis 6/k). */
    const double shapes[4] = {0.5, 1.0, 3.0, 0.1};
    crl_rng rng;
    crl_rng_seed(&rng, 17);
    for (int t = 0; t < 4; t++) {
        const double k = shapes[t];
        double sum = 0, sumsq = 0;
        long bad = 0;
        for (int i = 0; i < NSAMP; i++) {
            const double g = crl_gamma_sample(&rng, k);
            bad += !(g >= 0 && isfinite(g));
            sum += g, sumsq += g * g;
        }
        ck_assert_int_eq(bad, 0);
        char what[64];
        snprintf(what, sizeof what, "gamma(%g)", k);
        check_moments(what, sum, sumsq, k, k, 3 * k * k + 6 * k);
    }
    ck_assert(isnan(crl_gamma_sample(&rng, 0.0)));
    ck_assert(isnan(crl_gamma_sample(&rng, -1.0)));
}
END_TEST

/* Marginal i of Dirichlet(a) is Beta(a_i, a0 - a_i). */
static void beta_moments(double a, double b, double *mean, double *var, double *mu4) {
    const double s = a + b;
    *mean = a / s;
    *var = a * b / (s * s * (s + 1));
    const double exk =
        6 * ((a - b) * (a - b) * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3));
    *mu4 = (exk + 3) * *var * *var;
}

/* kind 0: flat, 1: peaked, 2: old subspace, 3: crl_dirichlet_sample(conc).
 * conc: the concentrations the draw should follow (0 = no mass). */
static void dirichlet_case(int kind, int n, const double *conc, crl_rng *rng) {
    double sum[8] = {0}, sumsq[8] = {0};
    float a[8];
    /* Counted, not asserted per draw: every passing ck_assert costs Check a
     * write to its pipe. */
    long bad_rc = 0, bad_range = 0, bad_sum = 0, bad_zero = 0;
    double worst = 0;
    for (int it = 0; it < NSAMP; it++) {
        int rc = kind == 0   ? crl_dirichlet_flat(rng, n, a, NULL)
                 : kind == 1 ? crl_dirichlet_peaked(rng, n, a, NULL)
                 : kind == 2 ? crl_dirichlet_old(rng, n, a, NULL)
                             : crl_dirichlet_sample(rng, conc, n, a, NULL);
        bad_rc += rc != CRL_OK;
        double tot = 0;
        for (int i = 0; i < n; i++) {
            bad_range += !(a[i] >= 0.0f && a[i] <= 1.0f);
            bad_zero += conc[i] == 0 && a[i] != 0.0f;
            tot += a[i];
            sum[i] += a[i], sumsq[i] += (double)a[i] * a[i];
        }
        /* Each component is rounded to float once: |sum - 1| <= n ulp(1). */
        worst = fmax(worst, fabs(tot - 1));
        bad_sum += fabs(tot - 1) > n * FLT_EPSILON;
    }
    ck_assert_int_eq(bad_rc, 0);
    ck_assert_int_eq(bad_range, 0);
    ck_assert_msg(bad_sum == 0, "%ld sums off 1, worst %.3g", bad_sum, worst);
    ck_assert_int_eq(bad_zero, 0);
    double a0 = 0;
    for (int i = 0; i < n; i++) a0 += conc[i];
    for (int i = 0; i < n; i++) {
        if (conc[i] == 0) continue;
        double mean, var, mu4;
        beta_moments(conc[i], a0 - conc[i], &mean, &var, &mu4);
        char what[80];
        snprintf(what, sizeof what, "kind %d n=%d component %d (a_i %g, a0 %g)", kind, n,
                 i, conc[i], a0);
        check_moments(what, sum[i], sumsq[i], mean, var, mu4);
    }
}

START_TEST(test_dirichlet_moments) {
    crl_rng rng;
    crl_rng_seed(&rng, 23);
    double conc[8];
    for (int n = 2; n <= 5; n++) {
        for (int i = 0; i < n; i++) conc[i] = 1.0;
        dirichlet_case(0, n, conc, &rng); /* flat */
        conc[n - 1] = (double)n * n;
        dirichlet_case(1, n, conc, &rng); /* peaked */
    }
    /* Old subspace of 4 anchors: flat over 3, last exactly 0. */
    const double old[4] = {1, 1, 1, 0};
    dirichlet_case(2, 4, old, &rng);
    /* Concentrations below 1 go through the log-space boost. */
    const double mixed[4] = {0.3, 0.5, 2.0, 1.0};
    dirichlet_case(3, 4, mixed, &rng);
}
END_TEST

START_TEST(test_dirichlet_edges) {
    crl_rng rng;
    crl_rng_seed(&rng, 5);
    crl_err err = {0};
    float a[4];
    ck_assert_int_eq(crl_dirichlet_flat(&rng, 1, a, &err), CRL_OK);
    ck_assert_float_eq(a[0], 1.0f);
    ck_assert_int_eq(crl_dirichlet_peaked(&rng, 1, a, &err), CRL_OK);
    ck_assert_float_eq(a[0], 1.0f);
    ck_assert_int_eq(crl_dirichlet_old(&rng, 1, a, &err), CRL_OK);
    ck_assert_float_eq(a[0], 1.0f);
    ck_assert_int_eq(crl_dirichlet_old(&rng, 2, a, &err), CRL_OK);
    ck_assert(a[0] == 1.0f && a[1] == 0.0f);
    ck_assert_int_eq(crl_dirichlet_flat(&rng, 0, a, &err), CRL_EINVAL);
    const double bad[2] = {1.0, 0.0};
    ck_assert_int_eq(crl_dirichlet_sample(&rng, bad, 2, a, &err), CRL_EINVAL);
    /* Tiny concentrations: U^(1/a) underflows double, the log-space draw
     * still gives a point of the simplex. */
    const double tiny[3] = {1e-3, 1e-3, 1e-3};
    for (int it = 0; it < 1000; it++) {
        ck_assert_int_eq(crl_dirichlet_sample(&rng, tiny, 3, a, &err), CRL_OK);
        ck_assert(isfinite(a[0] + a[1] + a[2]));
        ck_assert(fabs((double)a[0] + a[1] + a[2] - 1) <= 3 * FLT_EPSILON);
    }
    /* Same seed, same draws. */
    crl_rng r1, r2;
    crl_rng_seed(&r1, 9), crl_rng_seed(&r2, 9);
    float b[4];
    crl_dirichlet_peaked(&r1, 4, a, NULL);
    crl_dirichlet_peaked(&r2, 4, b, NULL);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
}
END_TEST

/* ---- no allocation in forward/backward ------------------------------------------------
 */

START_TEST(test_no_alloc_in_hot_paths) {
#if HAVE_MALLOC_COUNT
    enum { N = 3, B = 32 };
    crl_mlp_spec sp;
    crl_mlp_spec_cw(&sp, 39, 8, 3, 4, 64);
    crl_subspace s;
    ck_assert_int_eq(crl_subspace_init(&s, &sp, N, NULL), CRL_OK);
    crl_subspace_ws ws;
    ck_assert_int_eq(crl_subspace_ws_alloc(&ws, &s, B, NULL), CRL_OK);
    crl_rng rng;
    crl_rng_seed(&rng, 9);
    float *p = fbuf(s.capacity), *g = fbuf(s.capacity), *x = fbuf(B * 39),
          *dout = fbuf(B * 8), *dx = fbuf(B * 39), *alpha = fbuf(B * N),
          *dal = fbuf(B * N);
    random_subspace(&s, p, N, &rng);
    s.n_frozen = 1;
    fd_normal(&rng, x, B * 39);
    fd_normal(&rng, dout, B * 8);
    int head[B];
    for (int k = 0; k < B; k++) head[k] = k % 3;
    /* Warm up: BLAS loads and builds its buffers on first use. */
    crl_subspace_forward(&s, p, &ws, x, B, alpha, NULL);
    crl_subspace_backward(&s, p, g, &ws, dout, B, dx, dal);
    const long before = alloc_calls();
    for (int it = 0; it < 3; it++) {
        for (int r = 0; r < B; r++) crl_dirichlet_peaked(&rng, N, alpha + r * N, NULL);
        crl_subspace_forward(&s, p, &ws, x, B, alpha, it == 1 ? head : NULL);
        crl_subspace_backward(&s, p, g, &ws, dout, B / 2, dx, dal);
    }
    const long calls = alloc_calls() - before;
    ck_assert_msg(calls == 0, "%ld allocations in forward/backward/sampling", calls);
    crl_subspace_ws_free(&ws);
    free(p), free(g), free(x), free(dout), free(dx), free(alpha), free(dal);
#else
    fprintf(stderr, "test_no_alloc_in_hot_paths: skipped (no malloc interposition)\n");
#endif
}
END_TEST

static Suite *subspace_suite(void) {
    Suite *s = suite_create("subspace");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layout_and_init);
    tcase_add_test(tc, test_onehot_is_plain_mlp);
    tcase_add_test(tc, test_forward_matches_definition);
    tcase_add_loop_test(tc, test_backward_fd, 0, 4);
    tcase_add_test(tc, test_anchor_add_freeze_remove);
    tcase_add_test(tc, test_gamma_moments);
    tcase_add_test(tc, test_dirichlet_moments);
    tcase_add_test(tc, test_dirichlet_edges);
    tcase_add_test(tc, test_no_alloc_in_hot_paths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    /* One BLAS thread: tests are about numbers, and it keeps runs reproducible. */
    crl_err err = {0};
    if (crl_blas_init(1, &err) != CRL_OK) {
        fprintf(stderr, "test_subspace: %s\n", err.msg);
        return 1;
    }
    SRunner *sr = srunner_create(subspace_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
