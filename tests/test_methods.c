/* Continual baselines: the trunk ranges, the l2 / ewc penalty and its
 * gradient (finite differences, and through the SAC update), the ewc Fisher
 * against the Gaussian-policy formula evaluated by double-precision finite
 * differences of an independent forward pass, PackNet's prune fractions,
 * masks and views, and PackNet's no-forgetting guarantee through real SAC
 * updates. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/methods.h"
#include "crl/replay.h"
#include "crl/sac.h"
#include "fd.h"

/* ---- a tiny actor with uneven widths, so transposed layouts show up -------- */

enum { IN = 4, ACT = 2, OUT = 2 * ACT, HEADS = 2 };

static void tiny_actor(crl_mlp *m) {
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, IN, OUT, HEADS, 3, 6);
    s.hidden[1] = 5;
    s.hidden[2] = 4;
    ck_assert_int_eq(crl_mlp_init(m, &s, NULL), 0);
}

/* Glorot weights plus non-trivial biases and LayerNorm, so that every
 * parameter matters. */
static float *tiny_params(const crl_mlp *m, uint64_t seed) {
    float *p = malloc(m->n_params * sizeof(float));
    crl_rng r;
    crl_rng_seed(&r, seed);
    crl_mlp_init_params(m, p, &r);
    for (int i = 0; i < m->spec.n_hidden; i++)
        fd_uniform(&r, p + m->b[i], (size_t)m->spec.hidden[i], -0.3, 0.3);
    fd_uniform(&r, p + m->ln_g, (size_t)m->spec.hidden[0], 0.6, 1.4);
    fd_uniform(&r, p + m->ln_b, (size_t)m->spec.hidden[0], -0.3, 0.3);
    fd_uniform(&r, p + m->head_b, (size_t)HEADS * OUT, -0.3, 0.3);
    return p;
}

START_TEST(test_trunk_ranges) {
    crl_mlp m;
    tiny_actor(&m);
    crl_range r[CRL_TRUNK_MAX_RANGES];
    int k = crl_trunk_ranges(&m, r);
    /* W0 b0 g beta | W1 b1 | W2 b2 */
    ck_assert_int_eq(k, 8);
    const int kinds[8] = {CRL_TRUNK_KERNEL, CRL_TRUNK_BIAS,   CRL_TRUNK_NORM,
                          CRL_TRUNK_NORM,   CRL_TRUNK_KERNEL, CRL_TRUNK_BIAS,
                          CRL_TRUNK_KERNEL, CRL_TRUNK_BIAS};
    /* By hand: 4x6 + 6 + 6 + 6, 6x5 + 5, 5x4 + 4. */
    const size_t len[8] = {24, 6, 6, 6, 30, 5, 20, 4};
    size_t at = 0;
    for (int i = 0; i < k; i++) {
        ck_assert_int_eq(r[i].kind, kinds[i]);
        ck_assert_uint_eq(r[i].hi - r[i].lo, len[i]);
        /* nn lays the trunk out contiguously, heads after it. */
        ck_assert_uint_eq(r[i].lo, at);
        at = r[i].hi;
    }
    ck_assert_uint_eq(at, m.head_W);
    ck_assert_uint_eq(crl_trunk_size(&m), 101);
    ck_assert_int_eq(r[4].layer, 1);
    ck_assert_int_eq(r[6].layer, 2);
    /* The CW actor: obs 39, 4 x 256 trunk. */
    crl_mlp cw;
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 39, 8, 10, 4, 256);
    ck_assert_int_eq(crl_mlp_init(&cw, &s, NULL), 0);
    ck_assert_uint_eq(crl_trunk_size(&cw), 39 * 256 + 256 * 3 + 3 * (256 * 256 + 256));
}
END_TEST

/* ---- the penalty ------------------------------------------------------------ */

typedef struct {
    crl_reg *r;
    float *params, *scratch;
} pen_ctx;

static double pen_value(void *vctx) {
    pen_ctx *c = vctx;
    return crl_reg_penalty(c->r, c->params, c->scratch, c->r->n);
}

/* The hook's gradient (what it adds to a random starting gradient) against
 * central differences of its value, over every parameter. */
static void check_penalty_fd(crl_reg *r, float *params, uint64_t seed) {
    const size_t n = r->n;
    float *g0 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *scratch = calloc(n, sizeof(float)), *added = malloc(n * sizeof(float));
    double *num = malloc(n * sizeof(double));
    crl_rng rng;
    crl_rng_seed(&rng, seed);
    fd_uniform(&rng, g0, n, -1, 1);
    memcpy(g, g0, n * sizeof(float));
    crl_reg_penalty(r, params, g, n);
    for (size_t i = 0; i < n; i++) added[i] = g[i] - g0[i];
    pen_ctx c = {r, params, scratch};
    const float h = 1e-3f;
    fd_grad(params, n, h, pen_value, &c, num);
    /* The penalty is quadratic, so central differences are exact but for
     * rounding. The one that matters: p + h and p - h are rounded to float
     * independently, so the step is off-centre by up to one ulp u of
     * |p| + h, which shifts the quotient by up to 2 coef w u. The double sum
     * and the float gradient add ~1e-7 relative. */
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float big = fabsf(params[i]) + h, u = nextafterf(big, INFINITY) - big;
        const double tol = 1e-6 * fabs(num[i]) + 2.0 * r->coef * r->weight[i] * u + 1e-9;
        if (!(fabs(added[i] - num[i]) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "dpenalty[%zu]: analytic %.9g numeric %.9g tol %.3g\n", i,
                        (double)added[i], num[i], tol);
            bad++;
        }
    }
    ck_assert_int_eq(bad, 0);
    free(g0);
    free(g);
    free(scratch);
    free(added);
    free(num);
}

START_TEST(test_l2_penalty) {
    crl_mlp m;
    tiny_actor(&m);
    float *t0 = tiny_params(&m, 1), *t1 = tiny_params(&m, 2), *p = tiny_params(&m, 3);
    const size_t n = m.n_params, T = m.head_W; /* trunk = [0, head_W) */
    crl_reg r;
    ck_assert_int_eq(crl_reg_init(&r, &m, CRL_L2_COEF, NULL), 0);

    /* Before any task end: no penalty, gradient untouched. */
    float *g = calloc(n, sizeof(float));
    ck_assert(crl_reg_penalty(&r, p, g, n) == 0.0);
    for (size_t i = 0; i < n; i++) ck_assert(g[i] == 0.0f);

    crl_reg_task_end(&r, t0, NULL);
    crl_reg_task_end(&r, t1, NULL);
    ck_assert_int_eq(r.tasks, 2);
    /* CW's _merge_weights sums the ones: weight 2 after two tasks; old is
     * the LAST snapshot; heads are neither stored nor weighted. */
    for (size_t i = 0; i < n; i++) {
        ck_assert(r.weight[i] == (i < T ? 2.0f : 0.0f));
        ck_assert(r.old[i] == (i < T ? t1[i] : 0.0f));
    }

    /* params = t1 + small noise everywhere, heads included. */
    crl_rng rng;
    crl_rng_seed(&rng, 4);
    for (size_t i = 0; i < n; i++) p[i] = t1[i] + 0.01f * (float)crl_rng_normal(&rng);
    double expect = 0;
    for (size_t i = 0; i < T; i++) {
        double d = (double)p[i] - t1[i];
        expect += 2.0 * d * d;
    }
    expect *= CRL_L2_COEF;
    double got = crl_reg_penalty(&r, p, g, n);
    ck_assert_msg(fabs(got - expect) <= 1e-12 * expect, "%.17g vs %.17g", got, expect);
    ck_assert(expect > 1.0); /* not a vacuous comparison */
    check_penalty_fd(&r, p, 5);
    /* A head parameter far from anything changes nothing. */
    p[m.head_W + 3] += 10.0f;
    ck_assert(crl_reg_penalty(&r, p, g, n) == got);
    /* A wrong size is refused as NaN, which crl_sac_update turns into
     * CRL_ENAN with nothing applied. */
    ck_assert(isnan(crl_reg_penalty(&r, p, g, n - 1)));

    crl_reg_free(&r);
    free(g);
    free(t0);
    free(t1);
    free(p);
}
END_TEST

START_TEST(test_reg_bad_coef) {
    crl_mlp m;
    tiny_actor(&m);
    crl_reg r;
    crl_err e = {0};
    ck_assert_int_eq(crl_reg_init(&r, &m, -1.0, &e), CRL_EINVAL);
    ck_assert(strstr(e.msg, "coefficient") != NULL);
    ck_assert_int_eq(crl_reg_init(&r, &m, NAN, NULL), CRL_EINVAL);
    ck_assert_int_eq(crl_reg_init(&r, &m, 0.0, NULL), 0);
    crl_reg_free(&r);
}
END_TEST

/* ---- the Fisher, against an independent double-precision forward ---------- */

static void ref_forward(const crl_mlp *m, const double *p, const float *x, int head,
                        double *out) {
    const crl_mlp_spec *s = &m->spec;
    double a[64], z[64];
    int prev = s->in_dim;
    for (int k = 0; k < prev; k++) a[k] = x[k];
    for (int i = 0; i < s->n_hidden; i++) {
        const int h = s->hidden[i];
        for (int o = 0; o < h; o++) {
            z[o] = p[m->b[i] + o];
            for (int k = 0; k < prev; k++) z[o] += a[k] * p[m->W[i] + (size_t)k * h + o];
        }
        if (i == 0 && s->layernorm_first) {
            double mean = 0, var = 0;
            for (int o = 0; o < h; o++) mean += z[o] / h;
            for (int o = 0; o < h; o++) var += (z[o] - mean) * (z[o] - mean) / h;
            for (int o = 0; o < h; o++)
                z[o] = (z[o] - mean) / sqrt(var + s->ln_eps) * p[m->ln_g + o] +
                       p[m->ln_b + o];
        }
        const crl_act act = i == 0 ? s->first_act : s->act;
        for (int o = 0; o < h; o++)
            a[o] = act == CRL_ACT_TANH ? tanh(z[o])
                                       : (z[o] > 0 ? z[o] : s->lrelu_slope * z[o]);
        prev = h;
    }
    const int O = s->out_dim;
    for (int c = 0; c < O; c++) {
        out[c] = p[m->head_b + (size_t)head * O + c];
        for (int k = 0; k < prev; k++)
            out[c] += a[k] * p[m->head_W + ((size_t)head * prev + k) * O + c];
    }
}

/* The quantities whose derivatives make the Fisher: m_j (tanh(mu_j) for CW,
 * mu_j for GAUSS) and sigma_j = exp(clip(log_std_j)). */
static void ref_m_sigma(const crl_mlp *m, const double *p, const float *x, int head,
                        int cw, double *mv, double *sv) {
    double out[OUT];
    ref_forward(m, p, x, head, out);
    for (int j = 0; j < ACT; j++) {
        mv[j] = cw ? tanh(out[j]) : out[j];
        double ls = fmin(fmax(out[ACT + j], CRL_LOG_STD_MIN), CRL_LOG_STD_MAX);
        sv[j] = exp(ls);
    }
}

/* ref[e]: F with the per-sample clip (CW); alt[e]: the clip applied to the
 * mean instead, to show the test tells them apart. */
static void ref_fisher(const crl_mlp *m, const float *params, const float *obs, int n,
                       int head, int cw, double *ref, double *alt) {
    const size_t np = m->n_params, T = m->head_W;
    double *p = malloc(np * sizeof(double));
    for (size_t i = 0; i < np; i++) p[i] = params[i];
    double *sig = malloc((size_t)n * ACT * sizeof(double));
    for (int s = 0; s < n; s++) {
        double mv[ACT];
        ref_m_sigma(m, p, obs + (size_t)s * IN, head, cw, mv, sig + (size_t)s * ACT);
    }
    for (size_t e = 0; e < T; e++) {
        const double keep = p[e], h = 1e-6;
        double sum = 0, raw = 0;
        for (int s = 0; s < n; s++) {
            double mp[ACT], sp[ACT], mm[ACT], sm[ACT];
            p[e] = keep + h;
            ref_m_sigma(m, p, obs + (size_t)s * IN, head, cw, mp, sp);
            p[e] = keep - h;
            ref_m_sigma(m, p, obs + (size_t)s * IN, head, cw, mm, sm);
            p[e] = keep;
            double f = 0;
            for (int j = 0; j < ACT; j++) {
                double dm = (mp[j] - mm[j]) / (2 * h), ds = (sp[j] - sm[j]) / (2 * h);
                double sg = sig[(size_t)s * ACT + j];
                f += (dm * dm + 2 * ds * ds) / (sg * sg + 1e-6);
            }
            sum += fmax(f, 1e-5);
            raw += f;
        }
        ref[e] = sum / n;
        alt[e] = fmax(raw / n, 1e-5);
    }
    free(p);
    free(sig);
}

START_TEST(test_fisher_matches_formula) {
    crl_mlp m;
    tiny_actor(&m);
    float *params = tiny_params(&m, 11);
    const int head = 1; /* not head 0, so the head indexing is exercised */
    float *hb = params + m.head_b + (size_t)head * OUT;
    hb[0] = 0.8f;  /* mean of dim 0 away from 0, where tanh' < 1 matters */
    hb[2] = -0.5f; /* log-std of dim 0 inside the clip */
    hb[3] = 6.0f;  /* log-std of dim 1 clipped at 2 for every sample: no gradient */
    /* 300 samples: more than one 256-row chunk. Input 0 is small, so the
     * per-sample Fisher of W0's first row straddles the 1e-5 clip. */
    const int n = 300;
    float *obs = malloc((size_t)n * IN * sizeof(float));
    crl_rng rng;
    crl_rng_seed(&rng, 12);
    fd_normal(&rng, obs, (size_t)n * IN);
    for (int s = 0; s < n; s++) obs[(size_t)s * IN] *= 1e-2f;
    for (int s = 0; s < n; s += 7) obs[(size_t)s * IN] = 0.0f;

    /* The reference forward is the library's forward. */
    crl_mlp_ws ws;
    ck_assert_int_eq(crl_mlp_ws_alloc(&ws, &m, 8, NULL), 0);
    int heads[8];
    for (int i = 0; i < 8; i++) heads[i] = head;
    const float *out = crl_mlp_forward(&m, params, &ws, obs, 8, heads);
    double *pd = malloc(m.n_params * sizeof(double));
    for (size_t i = 0; i < m.n_params; i++) pd[i] = params[i];
    for (int s = 0; s < 8; s++) {
        double o[OUT];
        ref_forward(&m, pd, obs + (size_t)s * IN, head, o);
        for (int c = 0; c < OUT; c++)
            ck_assert_msg(fabs(o[c] - out[s * OUT + c]) < 1e-5, "%g vs %g", o[c],
                          (double)out[s * OUT + c]);
        ck_assert(out[s * OUT + 3] > CRL_LOG_STD_MAX); /* the clip is active */
    }
    crl_mlp_ws_free(&ws);
    free(pd);

    const size_t np = m.n_params, T = m.head_W;
    float *F = malloc(np * sizeof(float));
    double *ref = malloc(T * sizeof(double)), *alt = malloc(T * sizeof(double));
    double *ref_g = malloc(T * sizeof(double)), *alt_g = malloc(T * sizeof(double));
    ref_fisher(&m, params, obs, n, head, 1, ref, alt);
    ref_fisher(&m, params, obs, n, head, 0, ref_g, alt_g);

    for (int kind = 0; kind < 2; kind++) {
        const double *R = kind == CRL_FISHER_CW ? ref : ref_g;
        const double *Alt = kind == CRL_FISHER_CW ? alt : alt_g;
        for (size_t i = 0; i < np; i++) F[i] = NAN;
        ck_assert_int_eq(crl_ewc_fisher(&m, params, obs, n, head, kind, F, NULL), 0);
        /* Float arithmetic in the library against double finite differences
         * (truncation ~1e-12, rounding ~1e-10): measured worst relative
         * error about 2e-6; 1e-4 leaves room and still separates the
         * alternatives below by orders of magnitude. */
        const double rtol = 1e-4, atol = 1e-10;
        int bad = 0, apart = 0;
        for (size_t e = 0; e < T; e++) {
            const double err = fabs(F[e] - R[e]), tol = rtol * fabs(R[e]) + atol;
            if (!(err <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "fisher kind %d [%zu]: %.9g vs reference %.9g\n",
                            kind, e, (double)F[e], R[e]);
                bad++;
            }
            if (fabs(Alt[e] - R[e]) > 100 * tol) apart++;
        }
        ck_assert_int_eq(bad, 0);
        /* The per-sample clip is visible: clipping the mean instead would
         * be 15-70% off on every weight of W0's first row (input 0). */
        ck_assert_msg(apart >= 6, "only %d parameters tell the clips apart", apart);
        for (size_t e = T; e < np; e++) ck_assert(F[e] == 0.0f); /* heads */
        for (size_t e = 0; e < T; e++) ck_assert(F[e] >= CRL_FISHER_CLIP);
    }
    /* CW's tanh'd mean and the textbook pre-tanh mean differ. */
    int differ = 0;
    for (size_t e = 0; e < T; e++)
        if (fabs(ref[e] - ref_g[e]) > 1e-2 * ref_g[e]) differ++;
    ck_assert(differ > (int)T / 4);

    crl_err er = {0};
    ck_assert_int_eq(crl_ewc_fisher(&m, params, obs, n, HEADS, CRL_FISHER_CW, F, &er),
                     CRL_EINVAL);
    ck_assert_int_eq(crl_ewc_fisher(&m, params, obs, 0, 0, CRL_FISHER_CW, F, &er),
                     CRL_EINVAL);
    free(F);
    free(ref);
    free(alt);
    free(ref_g);
    free(alt_g);
    free(obs);
    free(params);
}
END_TEST

START_TEST(test_ewc_accumulates) {
    crl_mlp m;
    tiny_actor(&m);
    float *t0 = tiny_params(&m, 21), *t1 = tiny_params(&m, 22), *p = tiny_params(&m, 23);
    const size_t n = m.n_params, T = m.head_W;
    const int N = 64;
    float *obs = malloc((size_t)N * IN * sizeof(float));
    crl_rng rng;
    crl_rng_seed(&rng, 24);
    fd_normal(&rng, obs, (size_t)N * IN);
    float *F0 = malloc(n * sizeof(float)), *F1 = malloc(n * sizeof(float));
    ck_assert_int_eq(crl_ewc_fisher(&m, t0, obs, N, 0, CRL_FISHER_CW, F0, NULL), 0);
    ck_assert_int_eq(crl_ewc_fisher(&m, t1, obs, N, 1, CRL_FISHER_CW, F1, NULL), 0);
    crl_reg r;
    ck_assert_int_eq(crl_reg_init(&r, &m, CRL_EWC_COEF, NULL), 0);
    crl_reg_task_end(&r, t0, F0);
    crl_reg_task_end(&r, t1, F1);
    for (size_t i = 0; i < n; i++) {
        ck_assert(r.weight[i] == (i < T ? F0[i] + F1[i] : 0.0f));
        ck_assert(r.old[i] == (i < T ? t1[i] : 0.0f));
    }
    for (size_t i = 0; i < n; i++) p[i] = t1[i] + 0.02f * (float)crl_rng_normal(&rng);
    double expect = 0;
    for (size_t i = 0; i < T; i++) {
        double d = (double)p[i] - t1[i];
        expect += ((double)F0[i] + F1[i]) * d * d;
    }
    expect *= CRL_EWC_COEF;
    float *g = calloc(n, sizeof(float));
    double got = crl_reg_penalty(&r, p, g, n);
    ck_assert_msg(fabs(got - expect) <= 1e-6 * expect, "%.17g vs %.17g", got, expect);
    check_penalty_fd(&r, p, 25);

    /* Checkpoint round trip; corrupt blobs change nothing. */
    void *blob;
    size_t bn;
    ck_assert_int_eq(crl_reg_save(&r, &blob, &bn, NULL), 0);
    crl_reg r2;
    ck_assert_int_eq(crl_reg_init(&r2, &m, CRL_EWC_COEF, NULL), 0);
    crl_err e = {0};
    ck_assert_int_eq(crl_reg_load(&r2, blob, bn - 1, &e), CRL_ECORRUPT);
    ck_assert_int_eq(r2.tasks, 0);
    ((unsigned char *)blob)[0] ^= 1;
    ck_assert_int_eq(crl_reg_load(&r2, blob, bn, &e), CRL_ECORRUPT);
    ((unsigned char *)blob)[0] ^= 1;
    ck_assert_int_eq(crl_reg_load(&r2, blob, bn, &e), 0);
    ck_assert_int_eq(r2.tasks, 2);
    ck_assert(memcmp(r2.weight, r.weight, n * sizeof(float)) == 0);
    ck_assert(memcmp(r2.old, r.old, n * sizeof(float)) == 0);
    ck_assert(crl_reg_penalty(&r2, p, g, n) == got);
    free(blob);
    crl_reg_free(&r2);

    crl_reg_free(&r);
    free(g);
    free(F0);
    free(F1);
    free(obs);
    free(t0);
    free(t1);
    free(p);
}
END_TEST

/* ---- through the SAC update ------------------------------------------------ */

enum { SO = 5, SA = 2, SB = 12 };

static crl_sac *small_sac(int tasks, uint64_t seed) {
    crl_sac_config c;
    crl_sac_config_default(&c, SO, SA, tasks);
    c.hidden = 16;
    c.layers = 3;
    c.batch = SB;
    crl_sac *s = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_sac_create(&c, seed, &s, &err) == CRL_OK, "%s", err.msg);
    return s;
}

static void random_batch(crl_batch *b, crl_rng *r, int task) {
    fd_normal(r, b->obs, (size_t)SB * SO);
    fd_normal(r, b->obs2, (size_t)SB * SO);
    fd_uniform(r, b->act, (size_t)SB * SA, -0.95, 0.95);
    for (int i = 0; i < SB; i++) {
        b->rew[i] = (float)crl_rng_normal(r);
        b->done[i] = (i % 5 == 0) ? 1.0f : 0.0f;
        b->task[i] = task;
    }
    b->B = SB;
}

/* The hook adds exactly its value to the reported actor loss and exactly
 * its gradient to the actor's, and nothing to the heads. */
START_TEST(test_penalty_in_sac_update) {
    crl_sac *s = small_sac(2, 31);
    const crl_mlp *am = crl_sac_actor(s);
    const size_t na = am->n_params, T = am->head_W;
    float *theta = crl_sac_actor_params(s);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, SB, SO, SA, NULL), 0);
    crl_rng rng;
    crl_rng_seed(&rng, 32);
    random_batch(&b, &rng, 1);
    float eps[2 * SB * SA];
    fd_normal(&rng, eps, 2 * SB * SA);

    crl_reg r;
    ck_assert_int_eq(crl_reg_init(&r, am, CRL_L2_COEF, NULL), 0);
    float *old = malloc(na * sizeof(float));
    for (size_t i = 0; i < na; i++)
        old[i] = theta[i] + 0.01f * (float)crl_rng_normal(&rng);
    crl_reg_task_end(&r, old, NULL);

    crl_sac_stats st0, st1;
    float *g, *g0 = malloc(na * sizeof(float));
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st0), 0);
    crl_sac_grads(s, &g, NULL, NULL);
    memcpy(g0, g, na * sizeof(float));
    crl_sac_hooks h;
    crl_reg_hooks(&r, &h);
    crl_sac_set_hooks(s, &h);
    ck_assert_int_eq(crl_sac_compute_grads(s, &b, eps, &st1), 0);

    double expect = 0;
    for (size_t i = 0; i < T; i++) {
        double d = (double)theta[i] - old[i];
        expect += d * d;
    }
    expect *= CRL_L2_COEF;
    ck_assert(expect > 1.0);
    ck_assert_msg(fabs(st1.penalty - expect) <= 1e-12 * expect, "%g vs %g", st1.penalty,
                  expect);
    ck_assert(fabs(st1.pi_loss - st0.pi_loss - st1.penalty) <= 1e-9 * expect);
    for (size_t i = 0; i < na; i++) {
        double want = i < T ? 2.0 * CRL_L2_COEF * ((double)theta[i] - old[i]) : 0.0;
        double diff = (double)g[i] - g0[i];
        ck_assert_msg(fabs(diff - want) <= 1e-5 * fabs(want) + 1e-3, "[%zu] %g vs %g", i,
                      diff, want);
        if (i >= T) ck_assert(g[i] == g0[i]);
    }
    crl_sac_stats st;
    ck_assert_int_eq(crl_sac_update(s, &b, &st, NULL), 0);
    ck_assert(st.penalty > 0);
    free(old);
    free(g0);
    crl_reg_free(&r);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

/* ---- PackNet ------------------------------------------------------------------ */

static int count_owner(const crl_packnet *p, const crl_range *r, int owner) {
    int c = 0;
    for (size_t i = r->lo; i < r->hi; i++) c += p->owner[i] == owner;
    return c;
}

START_TEST(test_packnet_prune_fractions) {
    /* Kernels 4x6 = 24 and 6x5 = 30, four tasks. By hand, per kernel:
     * 24: prune floor(24*3/4) = 18 (keep 6), floor(18*2/3) = 12 (keep 6),
     *     floor(12/2) = 6 (keep 6), last keeps 6;
     * 30: prune floor(90/4) = 22 (keep 8), floor(44/3) = 14 (keep 8),
     *     floor(14/2) = 7 (keep 7), last keeps 7. */
    const int keep[2][4] = {{6, 6, 6, 6}, {8, 8, 7, 7}};
    crl_mlp m;
    crl_mlp_spec s;
    crl_mlp_spec_cw(&s, 4, OUT, 4, 2, 6);
    s.hidden[1] = 5;
    ck_assert_int_eq(crl_mlp_init(&m, &s, NULL), 0);
    float *p = malloc(m.n_params * sizeof(float));
    crl_rng rng;
    crl_rng_seed(&rng, 41);
    crl_mlp_init_params(&m, p, &rng);
    fd_uniform(&rng, p + m.b[0], 6, -0.1, 0.1);
    crl_packnet pk;
    ck_assert_int_eq(crl_packnet_init(&pk, &m, 4, NULL), 0);
    const crl_range *K[2] = {&pk.ranges[0], &pk.ranges[4]};
    ck_assert_int_eq(K[0]->kind, CRL_TRUNK_KERNEL);
    ck_assert_int_eq(K[1]->kind, CRL_TRUNK_KERNEL);
    crl_err e = {0};
    ck_assert_int_eq(crl_packnet_prune(&pk, p, &e), CRL_EINVAL); /* no task yet */
    ck_assert_int_eq(crl_packnet_task_start(&pk, 1, &e), CRL_EINVAL);

    float *before = malloc(m.n_params * sizeof(float));
    for (int t = 0; t < 4; t++) {
        ck_assert_int_eq(crl_packnet_task_start(&pk, t, &e), 0);
        /* Training moves the free weights: give them fresh values. */
        for (int k = 0; k < 2; k++)
            for (size_t i = K[k]->lo; i < K[k]->hi; i++)
                if (pk.owner[i] == CRL_PACKNET_FREE)
                    p[i] = (float)crl_rng_range(&rng, -1, 1);
        /* The mask of the training phase. */
        for (size_t i = 0; i < m.n_params; i++) {
            int want;
            if (pk.owner[i] == CRL_PACKNET_SHARED)
                want = i >= m.head_W || t == 0; /* heads; trunk bias/LN on task 0 */
            else
                want = pk.owner[i] == CRL_PACKNET_FREE;
            ck_assert_int_eq(pk.trainable[i], want);
        }
        memcpy(before, p, m.n_params * sizeof(float));
        int16_t *own_before = malloc(m.n_params * sizeof(int16_t));
        memcpy(own_before, pk.owner, m.n_params * sizeof(int16_t));
        ck_assert_int_eq(crl_packnet_task_start(&pk, t + 1, &e), CRL_EINVAL);
        ck_assert_int_eq(crl_packnet_prune(&pk, p, &e), 0);
        ck_assert_int_eq(crl_packnet_prune(&pk, p, &e), CRL_EINVAL);
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(count_owner(&pk, K[k], t), keep[k][t]);
            float min_kept = INFINITY, max_pruned = 0;
            int pruned = 0;
            for (size_t i = K[k]->lo; i < K[k]->hi; i++) {
                if (own_before[i] != CRL_PACKNET_FREE) {
                    /* Earlier owners untouched. */
                    ck_assert_int_eq(pk.owner[i], own_before[i]);
                    ck_assert(p[i] == before[i]);
                } else if (pk.owner[i] == t) {
                    ck_assert(p[i] == before[i]);
                    min_kept = fminf(min_kept, fabsf(p[i]));
                } else {
                    ck_assert_int_eq(pk.owner[i], CRL_PACKNET_FREE);
                    ck_assert(p[i] == 0.0f);
                    max_pruned = fmaxf(max_pruned, fabsf(before[i]));
                    pruned++;
                }
            }
            ck_assert(min_kept >= max_pruned);
            if (t == 3) ck_assert_int_eq(pruned, 0);
        }
        /* Non-kernels untouched by the prune. */
        for (size_t i = 0; i < m.n_params; i++)
            if (pk.owner[i] == CRL_PACKNET_SHARED) ck_assert(p[i] == before[i]);
        /* The mask of the retraining phase: own kernels and heads only. */
        for (size_t i = 0; i < m.n_params; i++) {
            int want =
                pk.owner[i] == CRL_PACKNET_SHARED ? i >= m.head_W : pk.owner[i] == t;
            ck_assert_int_eq(pk.trainable[i], want);
        }
        free(own_before);
    }
    for (int k = 0; k < 2; k++) ck_assert_int_eq(count_owner(&pk, K[k], -1), 0);

    /* Checkpoint round trip, and refusals. */
    void *blob;
    size_t bn;
    ck_assert_int_eq(crl_packnet_save(&pk, &blob, &bn, NULL), 0);
    crl_packnet q;
    ck_assert_int_eq(crl_packnet_init(&q, &m, 4, NULL), 0);
    ck_assert_int_eq(crl_packnet_load(&q, blob, bn - 2, &e), CRL_ECORRUPT);
    int16_t bogus = 7; /* a task that does not exist */
    int16_t keep0;
    memcpy(&keep0, (char *)blob + 32, 2);
    memcpy((char *)blob + 32, &bogus, 2);
    ck_assert_int_eq(crl_packnet_load(&q, blob, bn, &e), CRL_ECORRUPT);
    ck_assert_int_eq(q.task, -1);
    memcpy((char *)blob + 32, &keep0, 2);
    ck_assert_int_eq(crl_packnet_load(&q, blob, bn, &e), 0);
    ck_assert_int_eq(q.task, 3);
    ck_assert(memcmp(q.owner, pk.owner, m.n_params * sizeof(int16_t)) == 0);
    ck_assert(memcmp(q.trainable, pk.trainable, m.n_params) == 0);
    free(blob);
    crl_packnet_free(&q);

    crl_packnet_free(&pk);
    free(p);
    free(before);
}
END_TEST

START_TEST(test_packnet_view_rule) {
    crl_mlp m;
    tiny_actor(&m);
    float *p = tiny_params(&m, 51), *v = malloc(m.n_params * sizeof(float));
    crl_packnet pk;
    ck_assert_int_eq(crl_packnet_init(&pk, &m, 3, NULL), 0);
    ck_assert_int_eq(crl_packnet_task_start(&pk, 0, NULL), 0);
    ck_assert_int_eq(crl_packnet_prune(&pk, p, NULL), 0);
    ck_assert_int_eq(crl_packnet_task_start(&pk, 1, NULL), 0);
    /* Task 1 trains its free weights: they are non-zero now. */
    crl_rng rng;
    crl_rng_seed(&rng, 52);
    int nfree = 0;
    for (size_t i = 0; i < m.n_params; i++)
        if (pk.owner[i] == CRL_PACKNET_FREE) {
            p[i] = (float)crl_rng_range(&rng, 0.1, 1);
            nfree++;
        }
    ck_assert(nfree > 0);
    for (int t = 0; t < 3; t++) {
        crl_packnet_view(&pk, p, t, v);
        for (size_t i = 0; i < m.n_params; i++) {
            const int o = pk.owner[i];
            /* Task 0 sees its own kernels; tasks 1 and 2 see task 0's and
             * the free weights task 1 is training. */
            const int used = o == CRL_PACKNET_SHARED || o == 0 || (o == -1 && t >= 1);
            ck_assert(v[i] == (used ? p[i] : 0.0f));
        }
    }
    /* In place gives the same. */
    float *w = malloc(m.n_params * sizeof(float));
    memcpy(w, p, m.n_params * sizeof(float));
    crl_packnet_view(&pk, w, 0, w);
    crl_packnet_view(&pk, p, 0, v);
    ck_assert(memcmp(w, v, m.n_params * sizeof(float)) == 0);
    free(w);
    crl_packnet_free(&pk);
    free(p);
    free(v);
}
END_TEST

/* Three tasks through real SAC updates with the PackNet mask, as the runner
 * will drive them. Afterwards every kernel weight a task owns, and the
 * biases and LayerNorm, are bit-identical to what that task left, and the
 * view of task i reproduces the actor exactly as it was at the end of task
 * i: PackNet does not forget. */
START_TEST(test_packnet_sac_no_forgetting) {
    enum { TASKS = 3, TRAIN = 40, RETRAIN = 20 };
    crl_sac *s = small_sac(TASKS, 61);
    const crl_mlp *am = crl_sac_actor(s);
    const size_t na = am->n_params, T = am->head_W;
    float *theta = crl_sac_actor_params(s);
    crl_batch b;
    ck_assert_int_eq(crl_batch_alloc(&b, SB, SO, SA, NULL), 0);
    crl_rng rng;
    crl_rng_seed(&rng, 62);
    crl_packnet pk;
    ck_assert_int_eq(crl_packnet_init(&pk, am, TASKS, NULL), 0);
    crl_sac_hooks h;
    crl_packnet_hooks(&pk, &h);
    crl_sac_set_hooks(s, &h);

    float *snap[TASKS], *shared0 = malloc(na * sizeof(float));
    float *start = malloc(na * sizeof(float));
    for (int t = 0; t < TASKS; t++) {
        crl_sac_reset_optimizers(s);
        ck_assert_int_eq(crl_packnet_task_start(&pk, t, NULL), 0);
        memcpy(start, theta, na * sizeof(float));
        for (int u = 0; u < TRAIN; u++) {
            random_batch(&b, &rng, t);
            ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
        }
        /* Training moved the free weights and nothing it does not own. */
        int moved = 0;
        for (size_t i = 0; i < T; i++) {
            if (pk.owner[i] == CRL_PACKNET_FREE) moved += theta[i] != start[i];
            if (pk.owner[i] >= 0) ck_assert(theta[i] == start[i]);
            if (pk.owner[i] == CRL_PACKNET_SHARED && t > 0)
                ck_assert(theta[i] == start[i]);
        }
        ck_assert_msg(moved > 100, "task %d moved only %d free weights", t, moved);
        if (t == 0) memcpy(shared0, theta, na * sizeof(float));
        ck_assert_int_eq(crl_packnet_prune(&pk, theta, NULL), 0);
        /* CW resets the optimiser before and after retraining, and skips
         * it after the last task (nothing was pruned). */
        crl_sac_reset_optimizers(s);
        if (t < TASKS - 1) {
            memcpy(start, theta, na * sizeof(float));
            for (int u = 0; u < RETRAIN; u++) {
                random_batch(&b, &rng, t);
                ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
            }
            int retrained = 0;
            for (size_t i = 0; i < T; i++) {
                if (pk.owner[i] == t)
                    retrained += theta[i] != start[i];
                else
                    ck_assert(theta[i] == start[i]);
            }
            ck_assert(retrained > 20);
        }
        snap[t] = malloc(na * sizeof(float));
        memcpy(snap[t], theta, na * sizeof(float));
    }

    for (size_t i = 0; i < T; i++) {
        const int o = pk.owner[i];
        if (o >= 0) ck_assert_msg(theta[i] == snap[o][i], "weight %zu of task %d", i, o);
        if (o == CRL_PACKNET_SHARED) ck_assert(theta[i] == shared0[i]);
        ck_assert(o != CRL_PACKNET_FREE); /* the last task took the rest */
    }

    float *view = malloc(na * sizeof(float)), *manual = malloc(na * sizeof(float));
    crl_mlp_ws w1, w2;
    ck_assert_int_eq(crl_mlp_ws_alloc(&w1, am, SB, NULL), 0);
    ck_assert_int_eq(crl_mlp_ws_alloc(&w2, am, SB, NULL), 0);
    int heads[SB];
    for (int t = 0; t < TASKS; t++) {
        crl_packnet_view(&pk, theta, t, view);
        /* Trunk and head t equal the actor at the end of task t. */
        const size_t hw = (size_t)am->spec.hidden[am->spec.n_hidden - 1] * OUT;
        ck_assert(memcmp(view, snap[t], T * sizeof(float)) == 0);
        ck_assert(memcmp(view + am->head_W + t * hw, snap[t] + am->head_W + t * hw,
                         hw * sizeof(float)) == 0);
        ck_assert(memcmp(view + am->head_b + t * OUT, snap[t] + am->head_b + t * OUT,
                         OUT * sizeof(float)) == 0);
        /* The same by hand from the owners. */
        memcpy(manual, theta, na * sizeof(float));
        for (size_t i = 0; i < T; i++)
            if (pk.owner[i] > t) manual[i] = 0.0f;
        ck_assert(memcmp(view, manual, na * sizeof(float)) == 0);
        /* And the forward pass of task t through each is the same. */
        random_batch(&b, &rng, t);
        for (int i = 0; i < SB; i++) heads[i] = t;
        const float *y1 = crl_mlp_forward(am, view, &w1, b.obs, SB, heads);
        const float *y2 = crl_mlp_forward(am, snap[t], &w2, b.obs, SB, heads);
        ck_assert(memcmp(y1, y2, (size_t)SB * OUT * sizeof(float)) == 0);
        if (t < TASKS - 1) {
            /* The full current actor differs: later tasks did change it. */
            const float *y3 = crl_mlp_forward(am, theta, &w2, b.obs, SB, heads);
            ck_assert(memcmp(y1, y3, (size_t)SB * OUT * sizeof(float)) != 0);
        }
    }

    /* Control: without the mask the same update does move task 0's weights,
     * so the mask is what protected them. */
    crl_sac_set_hooks(s, NULL);
    random_batch(&b, &rng, 2);
    ck_assert_int_eq(crl_sac_update(s, &b, NULL, NULL), 0);
    int changed = 0;
    for (size_t i = 0; i < T; i++) changed += pk.owner[i] == 0 && theta[i] != snap[0][i];
    ck_assert(changed > 0);

    crl_mlp_ws_free(&w1);
    crl_mlp_ws_free(&w2);
    for (int t = 0; t < TASKS; t++) free(snap[t]);
    free(view);
    free(manual);
    free(shared0);
    free(start);
    crl_packnet_free(&pk);
    crl_batch_free(&b);
    crl_sac_free(s);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("methods");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_trunk_ranges);
    tcase_add_test(tc, test_l2_penalty);
    tcase_add_test(tc, test_reg_bad_coef);
    tcase_add_test(tc, test_fisher_matches_formula);
    tcase_add_test(tc, test_ewc_accumulates);
    tcase_add_test(tc, test_penalty_in_sac_update);
    tcase_add_test(tc, test_packnet_prune_fractions);
    tcase_add_test(tc, test_packnet_view_rule);
    tcase_add_test(tc, test_packnet_sac_no_forgetting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
