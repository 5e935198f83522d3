/* Tests for subspace/l2m_pool.c: the L2M modulation pool over a frozen base.
 *
 *  - a fresh pool (LoRA B = 0, IA3 g = 1) reproduces crl_mlp_forward bit for
 *    bit, whatever the routing and heads;
 *  - backward (A, B or g of every modulator) against central finite
 *    differences, with non-trivial modulators and mixed routing and heads;
 *  - routing: argmax cosine on hand-built keys (ties to the lowest index),
 *    the usage penalty on a worked example, oracle slices;
 *  - the grouped batch equals each row computed alone with its modulator;
 *  - the key pull term and its gradient against finite differences;
 *  - the base parameters are never written; no allocation in hot paths. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/blas.h"
#include "crl/nn.h"
#include "crl/pool.h"
#include "crl/subspace.h"
#include "fd.h"

#include "malloc_count.h"
#include "pool_fixture.h"

#define RTOL 1e-2
#define ATOL 5e-4 /* FD noise <= ~1e-4 at these sizes; see fd.h */
#define H    1e-3f

static void small_spec(crl_mlp_spec *s) {
    pool_small_spec(s, 3);
}
static void make_base(crl_mlp *m, float **params, crl_rng *rng) {
    pool_make_base(m, params, rng, 3);
}

/* Make every modulator non-trivial: LoRA B random, IA3 g in [0.5, 1.5). */
static void perturb_mods(const crl_pool *p, float *params, crl_rng *rng) {
    const size_t k0 = crl_pool_mod_offset(p, 0);
    for (size_t k = k0; k < p->n_params; k++)
        params[k] += (float)crl_rng_range(rng, -0.5, 0.5);
}

static int pool_kind(int i) {
    return i == 0 ? CRL_POOL_LORA : CRL_POOL_IA3;
}

/* ---- layout ---------------------------------------------------------------------- */

START_TEST(test_layout_and_init) {
    crl_rng rng;
    crl_rng_seed(&rng, 1);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_LORA, 4, 3, 2.0f, NULL), 0);
    ck_assert_int_eq(p.key_dim, 9);
    /* A: 5x3 + 9x3 + 6x3, B: 3x9 + 3x6 + 3x7. */
    ck_assert_uint_eq(p.mod_size, 15 + 27 + 18 + 27 + 18 + 21);
    ck_assert_uint_eq(p.n_params, 4 * 9 + 4 * p.mod_size);
    ck_assert_uint_eq(crl_pool_mod_offset(&p, 1), 36 + p.mod_size);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    for (int k = 0; k < 36; k++) ck_assert(pp[k] >= -1.0f && pp[k] < 1.0f);
    for (int mm = 0; mm < 4; mm++) {
        const float *mod = pp + crl_pool_mod_offset(&p, mm);
        for (int l = 0; l < 3; l++) {
            const int in = l == 0 ? 5 : m.spec.hidden[l - 1], h = m.spec.hidden[l];
            int nz = 0;
            for (int k = 0; k < in * 3; k++) {
                ck_assert(fabsf(mod[p.A[l] + k]) <= 1.0f / sqrtf((float)in));
                nz += mod[p.A[l] + k] != 0.0f;
            }
            ck_assert_int_gt(nz, 0);
            for (int k = 0; k < 3 * h; k++) ck_assert(mod[p.B[l] + k] == 0.0f);
        }
    }
    crl_pool q;
    ck_assert_int_eq(crl_pool_init(&q, &m, CRL_POOL_IA3, 30, 0, 0.0f, NULL), 0);
    ck_assert_uint_eq(q.mod_size, 9 + 6 + 7);
    float *qp = fbuf(q.n_params);
    crl_pool_init_params(&q, qp, &rng);
    for (size_t k = crl_pool_mod_offset(&q, 0); k < q.n_params; k++)
        ck_assert(qp[k] == 1.0f);
    /* Bad input. */
    crl_err err = {0};
    ck_assert_int_eq(crl_pool_init(&q, &m, CRL_POOL_LORA, 0, 8, 2.0f, &err), CRL_EINVAL);
    ck_assert_int_eq(crl_pool_init(&q, &m, CRL_POOL_LORA, 3, 0, 2.0f, &err), CRL_EINVAL);
    free(bp), free(pp), free(qp);
}
END_TEST

/* ---- a fresh pool is the base, bit for bit ----------------------------------------- */

START_TEST(test_fresh_is_identity) {
    crl_rng rng;
    crl_rng_seed(&rng, 2 + _i);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, pool_kind(_i), 30, 8, 2.0f, NULL), 0);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    enum { B = 37 };
    float *x = fbuf(B * 5);
    fd_normal(&rng, x, B * 5);
    int head[B];
    for (int r = 0; r < B; r++) head[r] = (r * 7) % 3;
    crl_mlp_ws mw;
    crl_pool_ws pw;
    ck_assert_int_eq(crl_mlp_ws_alloc(&mw, &m, B, NULL), 0);
    ck_assert_int_eq(crl_pool_ws_alloc(&pw, &p, B, NULL), 0);
    for (int hv = 0; hv < 2; hv++) {
        const int *hd = hv ? head : NULL;
        const float *ref = crl_mlp_forward(&m, bp, &mw, x, B, hd);
        crl_pool_route rt = {.mode = CRL_POOL_ROUTE_COS};
        ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &pw, x, B, hd, &rt, NULL), 0);
        ck_assert(memcmp(ref, pw.out, sizeof(float) * B * 3) == 0);
        /* The query is the base's embedding, so it equals the base's post[0]. */
        ck_assert(memcmp(mw.post[0], pw.q, sizeof(float) * B * 9) == 0);
        /* Rows did go to several modulators (the identity is not trivial). */
        int distinct = 0;
        for (int r = 1; r < B; r++) distinct |= pw.sel[r] != pw.sel[0];
        ck_assert(distinct);
    }
    crl_mlp_ws_free(&mw);
    crl_pool_ws_free(&pw);
    free(bp), free(pp), free(x);
}
END_TEST

/* ---- finite differences ------------------------------------------------------------ */

typedef struct {
    const crl_pool *p;
    const float *bp;
    float *pp;
    crl_pool_ws *ws;
    const float *x, *r;
    int B;
    const int *head;
    const crl_pool_route *rt;
} fd_ctx;

static double fd_loss(void *c) {
    fd_ctx *f = c;
    int rc =
        crl_pool_forward(f->p, f->bp, f->pp, f->ws, f->x, f->B, f->head, f->rt, NULL);
    ck_assert_int_eq(rc, 0);
    return fd_dot(f->ws->out, f->r, (size_t)f->B * 3);
}

START_TEST(test_backward_fd) {
    crl_rng rng;
    crl_rng_seed(&rng, 10 + _i);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, pool_kind(_i), 4, 3, 2.0f, NULL), 0);
    float *pp = fbuf(p.n_params), *g = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    perturb_mods(&p, pp, &rng);
    enum { B = 7 };
    float *x = fbuf(B * 5), *r = fbuf(B * 3);
    fd_normal(&rng, x, B * 5);
    fd_normal(&rng, r, B * 3);
    /* Modulators 0, 1, 3 used (2 unused: its gradient must stay 0), mixed heads. */
    const int sel[B] = {3, 0, 1, 3, 0, 3, 1};
    const int head[B] = {0, 2, 1, 1, 0, 2, 2};
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_FIXED, .sel = sel};
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, B, NULL), 0);
    fd_ctx f = {&p, bp, pp, &ws, x, r, B, head, &rt};
    fd_loss(&f);
    crl_pool_backward(&p, bp, pp, g, &ws, r);
    const size_t k0 = crl_pool_mod_offset(&p, 0), n = p.n_params - k0;
    double *num = dbuf(n);
    fd_grad(pp + k0, n, H, fd_loss, &f, num);
    CHECK_GRAD(_i ? "ia3" : "lora", g + k0, num, n, RTOL, ATOL);
    /* Non-trivial: most entries of used modulators have a real gradient. */
    size_t big = 0;
    for (size_t k = 0; k < n; k++) big += fabs(num[k]) > 1e-3;
    ck_assert_uint_gt(big, n / 2);
    const float *g2 = g + crl_pool_mod_offset(&p, 2);
    for (size_t k = 0; k < p.mod_size; k++) ck_assert(g2[k] == 0.0f);
    /* Keys learn only from the pull term. */
    for (size_t k = 0; k < k0; k++) ck_assert(g[k] == 0.0f);
    crl_pool_ws_free(&ws);
    free(bp), free(pp), free(g), free(x), free(r), free(num);
}
END_TEST

/* ---- routing ----------------------------------------------------------------------- */

static void set_key(const crl_pool *p, float *pp, int m, float a, float b) {
    float *k = pp + p->keys + (size_t)m * p->key_dim;
    memset(k, 0, sizeof(float) * p->key_dim);
    k[0] = a;
    k[1] = b;
}

START_TEST(test_routing_argmax_and_ties) {
    crl_rng rng;
    crl_rng_seed(&rng, 20);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_IA3, 5, 0, 0, NULL), 0);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    /* Keys in the (e0, e1) plane: cos with q = (1, 0) is
     * 0: (0, 1) -> 0;  1: (1, 1) -> 0.707;  2: (3, 0) -> 1;  3: (0.5, 0) -> 1 (tie
     * with 2: the lower index wins);  4: (-1, 0) -> -1. */
    set_key(&p, pp, 0, 0, 1);
    set_key(&p, pp, 1, 1, 1);
    set_key(&p, pp, 2, 3, 0);
    set_key(&p, pp, 3, 0.5f, 0);
    set_key(&p, pp, 4, -1, 0);
    float q[4 * 9] = {0};
    q[0] = 1;              /* row 0: (1, 0)      -> 2 (tie 2/3 -> 2) */
    q[9 + 1] = 2;          /* row 1: (0, 2)      -> 0 */
    q[18] = -1, q[19] = 0; /* row 2: (-1, 0)     -> 4 */
    /* row 3: the zero query: every cos is 0 (defined), tie -> 0. */
    int sel[4];
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_COS};
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, 4, &rt, sel, NULL), 0);
    ck_assert_int_eq(sel[0], 2);
    ck_assert_int_eq(sel[1], 0);
    ck_assert_int_eq(sel[2], 4);
    ck_assert_int_eq(sel[3], 0);
    double sc[5];
    ck_assert_int_eq(crl_pool_scores(&p, pp, q, &rt, sc, NULL), 0);
    ck_assert(fabs(sc[1] - sqrt(0.5)) < 1e-12 && sc[2] == 1.0 && sc[4] == -1.0);

    /* Random keys and queries: the routed modulator is the argmax of an
     * independent double cosine. */
    crl_pool_init_params(&p, pp, &rng);
    enum { B = 50 };
    float *qr = fbuf(B * 9);
    fd_normal(&rng, qr, B * 9);
    int sr[B];
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, qr, B, &rt, sr, NULL), 0);
    for (int r = 0; r < B; r++) {
        int best = -1;
        double bc = -2;
        for (int k = 0; k < 5; k++) {
            double d = 0, a = 0, b = 0;
            for (int j = 0; j < 9; j++) {
                const double u = qr[r * 9 + j], v = pp[k * 9 + j];
                d += u * v, a += u * u, b += v * v;
            }
            const double c = d / sqrt(a * b);
            if (c > bc) bc = c, best = k;
        }
        ck_assert_int_eq(sr[r], best);
    }
    free(bp), free(pp), free(qr);
}
END_TEST

/* More keys than routing's block of 64 norms: the best of each row carries
 * across blocks, ties across blocks still go to the lowest index, and the
 * usage-weighted and oracle routes agree with an independent double argmax
 * of crl_pool_scores' formula. */
START_TEST(test_routing_many_keys) {
    crl_rng rng;
    crl_rng_seed(&rng, 23);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    enum { M = 150, B = 40 };
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_IA3, M, 0, 0, NULL), 0);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    const int D = p.key_dim;
    float *q = fbuf(B * D);
    fd_normal(&rng, q, B * D);
    /* Row 0 points exactly along key 10, which keys 100 and 140 repeat (at
     * other lengths): a three-way tie across blocks 0, 1 and 2 -> 10. Row 1
     * points along key 120 (block 1), which nothing repeats -> 120. */
    float *k10 = pp + p.keys + 10 * D;
    for (int j = 0; j < D; j++) {
        pp[p.keys + 100 * D + j] = 2.0f * k10[j];
        pp[p.keys + 140 * D + j] = 0.5f * k10[j];
        q[j] = 4.0f * k10[j];
        q[D + j] = pp[p.keys + 120 * D + j];
    }
    int64_t counts[M];
    for (int k = 0; k < M; k++) counts[k] = (k * 7919) % 13;
    const crl_pool_route routes[3] = {
        {.mode = CRL_POOL_ROUTE_COS},
        {.mode = CRL_POOL_ROUTE_USAGE, .counts = counts},
        {.mode = CRL_POOL_ROUTE_ORACLE, .task = 1, .n_tasks = 2}};
    for (int v = 0; v < 3; v++) {
        int sel[B];
        ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, B, &routes[v], sel, NULL), 0);
        if (v == 0) {
            ck_assert_int_eq(sel[0], 10);
            ck_assert_int_eq(sel[1], 120);
        }
        const int lo = v == 2 ? M / 2 : 0;
        int cmin = counts[0];
        for (int k = 1; k < M; k++) cmin = counts[k] < cmin ? (int)counts[k] : cmin;
        for (int r = 2; r < B; r++) {
            int best = -1;
            double bs = -INFINITY;
            for (int k = lo; k < M; k++) {
                double d = 0, a = 0, b = 0;
                for (int j = 0; j < D; j++) {
                    const double u = q[r * D + j], w = pp[p.keys + k * D + j];
                    d += u * w, a += u * u, b += w * w;
                }
                double c = d / sqrt(a * b);
                if (v == 1) c = 0.5 * (c + 1.0) * ((1.0 + cmin) / (1.0 + counts[k]));
                if (c > bs) bs = c, best = k;
            }
            ck_assert_msg(sel[r] == best, "route %d row %d: %d, argmax %d", v, r, sel[r],
                          best);
        }
    }
    free(bp), free(pp), free(q);
}
END_TEST

START_TEST(test_usage_penalty_worked_example) {
    crl_rng rng;
    crl_rng_seed(&rng, 21);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_IA3, 3, 0, 0, NULL), 0);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    /* q = (1, 0); keys with cos 1, 0, 0.6; counts (10, 2, 4), min count 2:
     *   w = (1 + 2) / (1 + c) = (3/11, 1, 3/5)
     *   score = ((cos + 1) / 2) * w = (1 * 3/11, 0.5 * 1, 0.8 * 0.6)
     *         = (0.2727.., 0.5, 0.48)  -> modulator 1,
     * while plain cosine routing picks modulator 0. */
    set_key(&p, pp, 0, 2, 0);
    set_key(&p, pp, 1, 0, 1);
    set_key(&p, pp, 2, 0.6f, 0.8f);
    float q[9] = {1};
    const int64_t counts[3] = {10, 2, 4};
    crl_pool_route ru = {.mode = CRL_POOL_ROUTE_USAGE, .counts = counts};
    double sc[3];
    ck_assert_int_eq(crl_pool_scores(&p, pp, q, &ru, sc, NULL), 0);
    ck_assert(fabs(sc[0] - 3.0 / 11.0) < 1e-12);
    ck_assert(fabs(sc[1] - 0.5) < 1e-12);
    /* cos of the float key (0.6f, 0.8f) is 0.6 to ~1e-8. */
    ck_assert(fabs(sc[2] - 0.48) < 1e-7);
    int sel;
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, 1, &ru, &sel, NULL), 0);
    ck_assert_int_eq(sel, 1);
    crl_pool_route rc = {.mode = CRL_POOL_ROUTE_COS};
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, 1, &rc, &sel, NULL), 0);
    ck_assert_int_eq(sel, 0);
    /* Counts through crl_pool_count: a forward routed to 0 and 2. */
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, 4, NULL), 0);
    float x[4 * 5] = {0};
    const int fs[4] = {0, 2, 2, 0};
    crl_pool_route rf = {.mode = CRL_POOL_ROUTE_FIXED, .sel = fs};
    ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &ws, x, 4, NULL, &rf, NULL), 0);
    int64_t c2[3] = {0, 0, 0};
    ck_assert_int_eq(crl_pool_n_used(&p, c2), 0);
    crl_pool_count(&p, &ws, c2);
    crl_pool_count(&p, &ws, c2);
    ck_assert(c2[0] == 4 && c2[1] == 0 && c2[2] == 4);
    ck_assert_int_eq(crl_pool_n_used(&p, c2), 2);
    crl_pool_ws_free(&ws);
    free(bp), free(pp);
}
END_TEST

START_TEST(test_oracle_slices) {
    crl_rng rng;
    crl_rng_seed(&rng, 22);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_IA3, 10, 0, 0, NULL), 0);
    float *pp = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    enum { B = 40 };
    float *q = fbuf(B * 9);
    fd_normal(&rng, q, B * 9);
    /* M = 10, T = 3: slices [0, 3), [3, 6), [6, 10). */
    const int lo[3] = {0, 3, 6}, hi[3] = {3, 6, 10};
    for (int t = 0; t < 3; t++) {
        crl_pool_route ro = {.mode = CRL_POOL_ROUTE_ORACLE, .task = t, .n_tasks = 3};
        int sel[B];
        ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, B, &ro, sel, NULL), 0);
        for (int r = 0; r < B; r++) {
            ck_assert(sel[r] >= lo[t] && sel[r] < hi[t]);
            double sc[10];
            crl_pool_scores(&p, pp, q + r * 9, &ro, sc, NULL);
            for (int k = 0; k < 10; k++) {
                if (k < lo[t] || k >= hi[t])
                    ck_assert(isinf(sc[k]) && sc[k] < 0);
                else
                    ck_assert(sc[k] <= sc[sel[r]]);
            }
        }
    }
    crl_err err = {0};
    int sel[B];
    crl_pool_route bad = {.mode = CRL_POOL_ROUTE_ORACLE, .task = 3, .n_tasks = 3};
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, B, &bad, sel, &err), CRL_EINVAL);
    bad.n_tasks = 11, bad.task = 0; /* more tasks than modulators */
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, B, &bad, sel, &err), CRL_EINVAL);
    crl_pool_route nocount = {.mode = CRL_POOL_ROUTE_USAGE};
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, B, &nocount, sel, &err), CRL_EINVAL);
    const int oob[1] = {10};
    crl_pool_route fx = {.mode = CRL_POOL_ROUTE_FIXED, .sel = oob};
    ck_assert_int_eq(crl_pool_route_rows(&p, pp, q, 1, &fx, sel, &err), CRL_EINVAL);
    free(bp), free(pp), free(q);
}
END_TEST

/* ---- grouped batch == per sample ------------------------------------------------------
 */

static int close_rel(double a, double b, double rtol) {
    return fabs(a - b) <= rtol * fmax(1.0, fmax(fabs(a), fabs(b)));
}

START_TEST(test_grouped_equals_per_sample) {
    crl_rng rng;
    crl_rng_seed(&rng, 30 + _i);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, pool_kind(_i), 6, 4, 2.0f, NULL), 0);
    float *pp = fbuf(p.n_params), *gb = fbuf(p.n_params), *gs = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    perturb_mods(&p, pp, &rng);
    enum { B = 23 };
    float *x = fbuf(B * 5), *dout = fbuf(B * 3), *yb = fbuf(B * 3);
    fd_normal(&rng, x, B * 5);
    fd_normal(&rng, dout, B * 3);
    int head[B];
    for (int r = 0; r < B; r++) head[r] = (int)crl_rng_below(&rng, 3);
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, B, NULL), 0);
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_COS};
    ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &ws, x, B, head, &rt, NULL), 0);
    memcpy(yb, ws.out, sizeof(float) * B * 3);
    crl_pool_backward(&p, bp, pp, gb, &ws, dout);
    int sel[B], used = 0;
    memcpy(sel, ws.sel, sizeof sel);
    /* The grouping: perm lists the rows by modulator, ascending inside a group. */
    for (int mm = 0; mm < 6; mm++) {
        used += ws.gstart[mm + 1] > ws.gstart[mm];
        for (int i = ws.gstart[mm]; i < ws.gstart[mm + 1]; i++) {
            ck_assert_int_eq(sel[ws.perm[i]], mm);
            if (i > ws.gstart[mm]) ck_assert_int_lt(ws.perm[i - 1], ws.perm[i]);
        }
    }
    ck_assert_int_eq(ws.gstart[6], B);
    ck_assert_int_ge(used, 3);
    /* Every row alone, routed to its modulator explicitly. */
    for (int r = 0; r < B; r++) {
        crl_pool_route rf = {.mode = CRL_POOL_ROUTE_FIXED, .sel = &sel[r]};
        ck_assert_int_eq(
            crl_pool_forward(&p, bp, pp, &ws, x + r * 5, 1, &head[r], &rf, NULL), 0);
        for (int j = 0; j < 3; j++)
            ck_assert_msg(close_rel(ws.out[j], yb[r * 3 + j], 1e-6), "row %d: %g vs %g",
                          r, ws.out[j], yb[r * 3 + j]);
        crl_pool_backward(&p, bp, pp, gs, &ws, dout + r * 3);
    }
    /* Gradients sum over rows in a different order (one sgemm per group vs
     * row after row), so they agree to float summation error, not 1e-6. */
    for (size_t k = 0; k < p.n_params; k++)
        ck_assert_msg(close_rel(gb[k], gs[k], 1e-5), "grad %zu: %g vs %g", k, gb[k],
                      gs[k]);
    crl_pool_ws_free(&ws);
    free(bp), free(pp), free(gb), free(gs), free(x), free(dout), free(yb);
}
END_TEST

/* ---- key pull
 * -------------------------------------------------------------------------- */

typedef struct {
    const crl_pool *p;
    float *pp;
    const crl_pool_ws *ws;
} pull_ctx;

static double pull_loss(void *c) {
    pull_ctx *f = c;
    return crl_pool_pull(f->p, f->pp, f->ws, 0.5f, NULL);
}

START_TEST(test_pull_fd) {
    crl_rng rng;
    crl_rng_seed(&rng, 40);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, CRL_POOL_LORA, 5, 3, 2.0f, NULL), 0);
    float *pp = fbuf(p.n_params), *g = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    enum { B = 11 };
    float *x = fbuf(B * 5);
    fd_normal(&rng, x, B * 5);
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, B, NULL), 0);
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_COS};
    ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &ws, x, B, NULL, &rt, NULL), 0);
    const double L = crl_pool_pull(&p, pp, &ws, 0.5f, g);
    /* The value: -0.5 * mean cos, recomputed here. */
    double ref = 0;
    for (int r = 0; r < B; r++) {
        const float *q = ws.q + r * 9, *k = pp + ws.sel[r] * 9;
        double d = 0, a = 0, b = 0;
        for (int j = 0; j < 9; j++)
            d += (double)q[j] * k[j], a += (double)q[j] * q[j], b += (double)k[j] * k[j];
        ref += d / sqrt(a * b);
    }
    ref *= -0.5 / B;
    ck_assert_msg(fabs(L - ref) < 1e-12, "pull %g vs %g", L, ref);
    /* Gradient over all keys, routing held fixed (it is a discrete choice).
     * The pull is in double throughout, so a tight tolerance applies. */
    const size_t nk = (size_t)5 * 9;
    double *num = dbuf(nk);
    pull_ctx f = {&p, pp, &ws};
    fd_grad(pp, nk, H, pull_loss, &f, num);
    CHECK_GRAD("keys", g, num, nk, 1e-3, 1e-6);
    /* Keys not selected by any row get no gradient; modulators get none. */
    int hit[5] = {0};
    for (int r = 0; r < B; r++) hit[ws.sel[r]] = 1;
    for (int mm = 0; mm < 5; mm++)
        for (int j = 0; j < 9; j++)
            if (!hit[mm]) ck_assert(g[mm * 9 + j] == 0.0f);
    for (size_t k = nk; k < p.n_params; k++) ck_assert(g[k] == 0.0f);
    crl_pool_ws_free(&ws);
    free(bp), free(pp), free(g), free(x), free(num);
}
END_TEST

/* ---- the base is never written; no allocation
 * ------------------------------------------- */

START_TEST(test_base_untouched_no_alloc) {
    crl_rng rng;
    crl_rng_seed(&rng, 50 + _i);
    crl_mlp m;
    float *bp;
    make_base(&m, &bp, &rng);
    float *copy = fbuf(m.n_params);
    memcpy(copy, bp, sizeof(float) * m.n_params);
    crl_pool p;
    ck_assert_int_eq(crl_pool_init(&p, &m, pool_kind(_i), 30, 8, 2.0f, NULL), 0);
    float *pp = fbuf(p.n_params), *g = fbuf(p.n_params);
    crl_pool_init_params(&p, pp, &rng);
    perturb_mods(&p, pp, &rng);
    enum { B = 64 };
    float *x = fbuf(B * 5), *dout = fbuf(B * 3);
    int head[B];
    for (int r = 0; r < B; r++) head[r] = r % 3;
    int64_t counts[30] = {0};
    crl_pool_ws ws;
    ck_assert_int_eq(crl_pool_ws_alloc(&ws, &p, B, NULL), 0);
    crl_pool_route rt = {.mode = CRL_POOL_ROUTE_COS};
    ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &ws, x, B, head, &rt, NULL), 0);
    crl_pool_backward(&p, bp, pp, g, &ws, dout); /* warm up BLAS */
    int rcs = 0;
#if HAVE_MALLOC_COUNT
    const long before = alloc_calls();
#endif
    for (int it = 0; it < 40; it++) {
        fd_normal(&rng, x, B * 5);
        fd_normal(&rng, dout, B * 3);
        crl_pool_route r2 = {.mode = CRL_POOL_ROUTE_USAGE, .counts = counts};
        crl_pool_route r3 = {.mode = CRL_POOL_ROUTE_ORACLE, .task = it % 4, .n_tasks = 4};
        const crl_pool_route *use = it % 3 == 0 ? &rt : it % 3 == 1 ? &r2 : &r3;
        /* Check's assertions allocate (they report their location), so the
         * status is collected and asserted after the counted loop. */
        rcs |= crl_pool_forward(&p, bp, pp, &ws, x, B - it % 5, it % 2 ? head : NULL, use,
                                NULL);
        crl_pool_backward(&p, bp, pp, g, &ws, dout);
        crl_pool_pull(&p, pp, &ws, 0.5f, g);
        crl_pool_count(&p, &ws, counts);
    }
#if HAVE_MALLOC_COUNT
    const long calls = alloc_calls() - before;
    ck_assert_msg(calls == 0, "%ld allocations in forward/backward/pull", calls);
#else
    fprintf(stderr, "test_base_untouched_no_alloc: allocation check skipped\n");
#endif
    ck_assert_int_eq(rcs, 0);
    ck_assert(memcmp(copy, bp, sizeof(float) * m.n_params) == 0);
    ck_assert(crl_all_finite(g, p.n_params));
    ck_assert_int_ge(crl_pool_n_used(&p, counts), 2);
    crl_err err = {0};
    ck_assert_int_eq(crl_pool_forward(&p, bp, pp, &ws, x, B + 1, NULL, &rt, &err),
                     CRL_EINVAL);
    crl_pool_ws_free(&ws);
    free(bp), free(copy), free(pp), free(g), free(x), free(dout);
}
END_TEST

/* ---- the actor interface ------------------------------------------------------- */

/* Each kind of actor computes, through crl_actor_*, exactly what the direct
 * calls compute: initial parameters, forward (mixed heads; CSP alphas; L2M
 * routing), weight gradients, the L2M pull term and usage tally. */
START_TEST(test_actor_equals_direct) {
    enum { NB = 7 };
    const int kind = _i;
    crl_mlp_spec sp;
    small_spec(&sp);
    crl_actor_config ac;
    memset(&ac, 0, sizeof ac);
    ac.kind = (crl_actor_kind)kind;
    ac.spec = sp;
    ac.max_act_batch = NB;
    ac.K = 3;
    ac.M = 4;
    ac.pool_kind = CRL_POOL_LORA;
    ac.rank = 2;
    ac.scale = 2.0f;
    ac.pull = 0.5f;
    ac.head = 2;
    crl_actor *a = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_actor_create(&ac, &a, &err) == CRL_OK, "%s", err.msg);
    crl_actor_ws ws;
    ck_assert_int_eq(crl_actor_ws_alloc(a, &ws, NB, &err), CRL_OK);
    crl_rng r1, r2, rx;
    crl_rng_seed(&r1, 71);
    crl_rng_seed(&r2, 71);
    crl_rng_seed(&rx, 72);
    float x[NB * 5], dout[NB * 3], cond[NB * 3];
    int heads[NB];
    for (int i = 0; i < NB * 5; i++) x[i] = (float)crl_rng_normal(&rx);
    for (int i = 0; i < NB * 3; i++) dout[i] = (float)crl_rng_normal(&rx);
    for (int i = 0; i < NB; i++) heads[i] = i % 3;
    const size_t np = a->n_params;
    float *ref = fbuf(np), *g0 = fbuf(np), *g1 = fbuf(np);
    memset(g0, 0, np * 4);
    memset(g1, 0, np * 4);
    crl_actor_init_params(a, &r1);
    const float *out = NULL, *want = NULL;
    if (kind == CRL_ACTOR_MLP) {
        crl_mlp m;
        crl_mlp_ws mw;
        ck_assert_int_eq(crl_mlp_init(&m, &sp, NULL), 0);
        ck_assert_int_eq(crl_mlp_ws_alloc(&mw, &m, NB, NULL), 0);
        crl_mlp_init_params(&m, ref, &r2);
        ck_assert(memcmp(ref, a->params, np * 4) == 0);
        const crl_actor_rows rows = {.head = heads};
        out = crl_actor_forward(a, &ws, x, NB, &rows);
        want = crl_mlp_forward(&m, ref, &mw, x, NB, heads);
        ck_assert(memcmp(out, want, NB * 3 * 4) == 0);
        crl_actor_backward(a, &ws, g0, dout, 4);
        crl_mlp_backward(&m, ref, g1, &mw, dout, 4, NULL);
        crl_mlp_ws_free(&mw);
    } else if (kind == CRL_ACTOR_CSP) {
        crl_subspace sub;
        crl_subspace_ws sw;
        ck_assert_int_eq(crl_subspace_init(&sub, &sp, 3, NULL), 0);
        ck_assert_int_eq(crl_subspace_ws_alloc(&sw, &sub, NB, NULL), 0);
        crl_subspace_init_params(&sub, ref, &r2);
        ck_assert(memcmp(ref, a->params, np * 4) == 0);
        /* Two anchors, the first frozen, both moved apart. */
        ck_assert_int_eq(crl_subspace_add_anchor(&sub, ref, NULL), 0);
        sub.n_frozen = 1;
        for (size_t k = 0; k < crl_subspace_n_params(&sub); k++)
            ref[k] += (float)crl_rng_range(&rx, -0.2, 0.2);
        memcpy(a->params, ref, np * 4);
        crl_actor_subspace(a)->n_anchors = 2;
        crl_actor_subspace(a)->n_frozen = 1;
        crl_actor_changed(a);
        ck_assert_int_eq(a->cond_live, 2);
        ck_assert_uint_eq(a->tr_lo, crl_subspace_anchor_offset(&sub, 1));
        float alpha[NB * 2];
        for (int i = 0; i < NB; i++) {
            const float u = (float)crl_rng_range(&rx, 0, 1);
            cond[i * 3] = alpha[i * 2] = i == 0 ? 0.0f : u;
            cond[i * 3 + 1] = alpha[i * 2 + 1] = 1.0f - cond[i * 3];
            cond[i * 3 + 2] = 0.0f;
        }
        const crl_actor_rows rows = {.head = heads, .cond = cond};
        out = crl_actor_forward(a, &ws, x, NB, &rows);
        want = crl_subspace_forward(&sub, ref, &sw, x, NB, alpha, heads);
        ck_assert(memcmp(out, want, NB * 3 * 4) == 0);
        crl_actor_backward(a, &ws, g0, dout, 4);
        crl_subspace_backward(&sub, ref, g1, &sw, dout, 4, NULL, NULL);
        crl_subspace_ws_free(&sw);
    } else {
        crl_mlp m;
        float *base;
        make_base(&m, &base, &rx);
        memcpy(a->base, base, m.n_params * 4);
        crl_pool pool;
        crl_pool_ws pw;
        ck_assert_int_eq(crl_pool_init(&pool, &m, CRL_POOL_LORA, 4, 2, 2.0f, NULL), 0);
        ck_assert_int_eq(crl_pool_ws_alloc(&pw, &pool, NB, NULL), 0);
        crl_pool_init_params(&pool, ref, &r2);
        ck_assert(memcmp(ref, a->params, np * 4) == 0);
        perturb_mods(&pool, ref, &rx);
        memcpy(a->params, ref, np * 4);
        crl_pool_route route = {.mode = CRL_POOL_ROUTE_COS};
        ck_assert_int_eq(crl_actor_l2m_set_route(a, &route, &route, &err), CRL_OK);
        const crl_actor_rows rows = {.head = heads};
        out = crl_actor_forward(a, &ws, x, NB, &rows);
        int fixed[NB];
        for (int i = 0; i < NB; i++) fixed[i] = 2;
        ck_assert_int_eq(
            crl_pool_forward(&pool, base, ref, &pw, x, NB, fixed, &route, NULL), 0);
        ck_assert(memcmp(out, pw.out, NB * 3 * 4) == 0);
        crl_actor_backward(a, &ws, g0, dout, NB);
        crl_pool_backward(&pool, base, ref, g1, &pw, dout);
        const double e0 = crl_actor_extra_loss(a, &ws, 3, NB, g0);
        const double e1 = crl_pool_pull(&pool, ref, &pw, 0.5f * 3.0f / (float)NB, g1);
        ck_assert(e0 == e1);
        int64_t counts[4] = {0, 0, 0, 0};
        crl_pool_count(&pool, &pw, counts);
        crl_actor_tally(a, &ws);
        ck_assert(memcmp(counts, a->counts, sizeof counts) == 0);
        crl_pool_ws_free(&pw);
        free(base);
    }
    ck_assert(memcmp(g0, g1, np * 4) == 0);
    free(ref);
    free(g0);
    free(g1);
    crl_actor_ws_free(a, &ws);
    crl_actor_free(a);
}
END_TEST

static Suite *pool_suite(void) {
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layout_and_init);
    tcase_add_loop_test(tc, test_fresh_is_identity, 0, 2);
    tcase_add_loop_test(tc, test_backward_fd, 0, 2);
    tcase_add_test(tc, test_routing_argmax_and_ties);
    tcase_add_test(tc, test_routing_many_keys);
    tcase_add_test(tc, test_usage_penalty_worked_example);
    tcase_add_test(tc, test_oracle_slices);
    tcase_add_loop_test(tc, test_grouped_equals_per_sample, 0, 2);
    tcase_add_test(tc, test_pull_fd);
    tcase_add_loop_test(tc, test_base_untouched_no_alloc, 0, 2);
    tcase_add_loop_test(tc, test_actor_equals_direct, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    /* One BLAS thread: tests are about numbers, and it keeps runs reproducible. */
    crl_err err = {0};
    if (crl_blas_init(1, &err) != CRL_OK) {
        fprintf(stderr, "test_pool: %s\n", err.msg);
        return 1;
    }
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
