/* EWC's diagonal Fisher of the Gaussian policy, per Continual World's ewc.py.
 *
 * CW forms the full per-sample Jacobians of the mean and the std with respect
 * to every shared parameter, then F = mean_s clip(sum_j (m_j'^2 + 2 s_j'^2) /
 * (s_j^2 + 1e-6)). The clip is per sample, so the per-sample squared
 * gradients are needed one by one; a batched backward only gives their sum.
 *
 * They are cheap all the same. For a Linear layer y = x W + b the gradient
 * of output column c of sample s is dW_s = x_s^T delta_{s,c}, so
 *   sum_c w_{s,c} (dW_s[a,o])^2 = x_s[a]^2 * S_s[o],
 *   S_s[o] = sum_c w_{s,c} delta_{s,c}[o]^2
 * (and b: S_s[o]; LayerNorm gain: xhat^2 S, bias: S). Per sample the Fisher
 * is a rank-one outer product, and only the deltas delta_{s,c} at each layer
 * need a backward pass: 2 act_dim input-gradient passes over a batch of
 * samples, one-hot in the output column, weight sqrt(w_{s,c}) folded into
 * the starting delta. The trunk is walked by the network skeleton
 * (crl_net_backward) with EWC's own ops: the head's delta is set from the
 * weight and the head column, each layer's squared deltas are summed before
 * its input gradient is formed, and the LayerNorm's are seen through
 * crl_net_backward_seen.
 *
 * At the CW shape (obs 39, 4 x 256, act 4: 208k trunk parameters) 2,560
 * samples cost about 4 GMAC of backward GEMMs plus 0.53 G clip-and-add
 * steps: 0.37 s on one core of the 2-core VM (measured while two training
 * runs shared it), once per task. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "agents/continual_state.h"
#include "crl/methods.h"
#include "nn/net.h"

#define FISHER_CHUNK 256 /* rows per forward/backward; CW's batch size */

/* max(v, c) for the clip. A ternary, not fmaxf: gcc calls libm's fmaxf. */
static inline float clip_at(float v, float c) {
    return v > c ? v : c;
}

/* f[o] += max(a * S[o], c) for o < n: the per-sample clip over one row of a
 * kernel, the loop that runs once per sample and trunk weight (0.53 G times
 * at the CW shape). GCC 12 at -O2 leaves it scalar and branchy (see
 * nn/vec.h), so it is spelled out 4-wide; the scalar tail rounds the same. */
static void clip_acc(int n, float a, const float *restrict S, float c,
                     float *restrict f) {
    int o = 0;
#if defined(__SSE__)
    const __m128 va = _mm_set1_ps(a), vc = _mm_set1_ps(c);
    for (; o + 4 <= n; o += 4) {
        __m128 v = _mm_max_ps(_mm_mul_ps(va, _mm_loadu_ps(S + o)), vc);
        _mm_storeu_ps(f + o, _mm_add_ps(_mm_loadu_ps(f + o), v));
    }
#endif
    for (; o < n; o++) f[o] += clip_at(a * S[o], c);
}

/* The backward of one output column c for the skeleton: its deltas are
 * squared into S (per layer) and Sln (LayerNorm output). */
typedef struct {
    const crl_mlp *m;
    const float *params, *headW; /* headW: the task's head block, H x O */
    const float *scale;          /* per row: sqrt of column c's Fisher weight */
    int c;
    float *const *S;
    float *Sln;
} fisher_ctx;

/* d = scale[r] * headW[:, c] per row; dout is unused (one-hot column c). */
static void fisher_head_bwd(void *vc, int R, int H, int O, const float *x,
                            const int *head, int hc, const float *dout, float *d,
                            int dw_rows) {
    (void)x, (void)head, (void)hc, (void)dout, (void)dw_rows;
    const fisher_ctx *f = vc;
    for (int r = 0; r < R; r++)
        for (int k = 0; k < H; k++)
            d[(size_t)r * H + k] = f->scale[r] * f->headW[(size_t)k * O + f->c];
}

static void sq_acc(size_t n, const float *restrict d, float *restrict S) {
    for (size_t e = 0; e < n; e++) S[e] += d[e] * d[e];
}

/* Layer l: S[l] += d^2 at the Linear output, then dL/dx without weight
 * gradients; layer 0 gets the caller's dx, NULL here: not needed. */
static void fisher_bwd(void *vc, int l, int R, int in, int out, const float *x, float *d,
                       float *dx, int dw_rows) {
    (void)dw_rows;
    const fisher_ctx *f = vc;
    sq_acc((size_t)R * out, d, f->S[l]);
    if (dx)
        crl_linear_backward(R, in, out, x, f->params + f->m->W[l], d, NULL, NULL, dx, 0);
}

static void fisher_ln_seen(void *vc, int R, int h, const float *d) {
    const fisher_ctx *f = vc;
    sq_acc((size_t)R * h, d, f->Sln);
}

static const crl_net_ops fisher_ops = {.bwd = fisher_bwd, .head_bwd = fisher_head_bwd};

int crl_ewc_fisher(const crl_mlp *m, const float *params, const float *obs, int n,
                   int task, crl_fisher_kind kind, float *fisher, crl_err *err) {
    if (!m || !params || !obs || !fisher)
        return crl_errf(err, CRL_EINVAL, "ewc fisher: NULL argument");
    const crl_mlp_spec *s = &m->spec;
    if (n < 1) return crl_errf(err, CRL_EINVAL, "ewc fisher: need at least one sample");
    if (s->out_dim % 2 != 0)
        return crl_errf(err, CRL_EINVAL,
                        "ewc fisher: actor output %d is not mean + log-std", s->out_dim);
    if (task < 0 || task >= s->n_heads)
        return crl_errf(err, CRL_EINVAL, "ewc fisher: task %d outside the %d heads", task,
                        s->n_heads);
    if (kind != CRL_FISHER_CW && kind != CRL_FISHER_GAUSS)
        return crl_errf(err, CRL_EINVAL, "ewc fisher: unknown kind %d", (int)kind);

    const int L = s->n_hidden, A = s->out_dim / 2, O = s->out_dim, In = s->in_dim;
    const int H = s->hidden[L - 1];
    const int C = n < FISHER_CHUNK ? n : FISHER_CHUNK;
    const size_t np = m->n_params;
    const int ln = s->layernorm_first;

    /* S[i]: C x hidden[i] summed squared deltas at layer i's Linear output;
     * Sln: at the LayerNorm output. */
    size_t nS = 0;
    for (int i = 0; i < L; i++) nS += (size_t)C * s->hidden[i];
    if (ln) nS += (size_t)C * s->hidden[0];
    crl_mlp_ws ws;
    int rc = crl_mlp_ws_alloc(&ws, m, C, err);
    if (rc) return rc;
    float *fmem = malloc((nS + (size_t)C + np) * sizeof(float));
    double *acc = calloc(np, sizeof(double));
    int *heads = malloc((size_t)C * sizeof(int));
    if (!fmem || !acc || !heads) {
        rc = crl_errf(err, CRL_ENOMEM, "ewc fisher: out of memory");
        goto done;
    }
    float *S[CRL_MLP_MAX_HIDDEN], *Sln = NULL;
    float *p = fmem;
    for (int i = 0; i < L; i++) {
        S[i] = p;
        p += (size_t)C * s->hidden[i];
    }
    if (ln) {
        Sln = p;
        p += (size_t)C * s->hidden[0];
    }
    float *scale = p;
    float *facc = scale + C; /* this chunk's clipped sums, float is enough */
    for (int r = 0; r < C; r++) heads[r] = task;
    crl_range rg[CRL_TRUNK_MAX_RANGES];
    const int nr = crl_trunk_ranges(m, rg);
    fisher_ctx fc = {m, params, params + m->head_W + (size_t)task * H * O, scale, 0,
                     S, Sln};
    const crl_net_bufs bufs = {ws.pre, ws.post, ws.ln_xhat, ws.ln_rstd, ws.d0, ws.d1};

    for (int r0 = 0; r0 < n; r0 += C) {
        const int B = n - r0 < C ? n - r0 : C;
        const float *x0 = obs + (size_t)r0 * In;
        const float *out = crl_mlp_forward(m, params, &ws, x0, B, heads);
        memset(fmem, 0, nS * sizeof(float));

        for (int c = 0; c < O; c++) {
            /* sqrt of the weight of column c in the Fisher, per sample. */
            const int j = c < A ? c : c - A;
            for (int r = 0; r < B; r++) {
                const float raw = out[(size_t)r * O + A + j];
                const float ls = fminf(fmaxf(raw, CRL_LOG_STD_MIN), CRL_LOG_STD_MAX);
                const float sd = expf(ls);
                const float inv = 1.0f / sqrtf(sd * sd + CRL_FISHER_VAR_EPS);
                if (c < A) {
                    float g = 1.0f;
                    if (kind == CRL_FISHER_CW) {
                        const float t = tanhf(out[(size_t)r * O + j]);
                        g = 1.0f - t * t;
                    }
                    scale[r] = g * inv;
                } else {
                    /* dsigma = sigma dlogstd; a clipped log-std has no
                     * gradient (TF's clip_by_value). */
                    const int live = raw >= CRL_LOG_STD_MIN && raw <= CRL_LOG_STD_MAX;
                    scale[r] = live ? sqrtf(2.0f) * sd * inv : 0.0f;
                }
            }
            fc.c = c;
            crl_net_backward_seen(s, params + m->ln_g, NULL, NULL, &bufs, &fisher_ops,
                                  &fc, x0, B, heads, NULL, 0, NULL, fisher_ln_seen);
        }

        /* Per sample and parameter: clip, then sum over the chunk. */
        for (int k = 0; k < nr; k++)
            memset(facc + rg[k].lo, 0, (rg[k].hi - rg[k].lo) * sizeof(float));
        const float clip = CRL_FISHER_CLIP;
        for (int i = 0; i < L; i++) {
            const int h = s->hidden[i], in = i == 0 ? In : s->hidden[i - 1];
            const float *x = i == 0 ? x0 : ws.post[i - 1];
            float *fW = facc + m->W[i], *fb = facc + m->b[i];
            for (int r = 0; r < B; r++) {
                const float *Sr = S[i] + (size_t)r * h;
                for (int a = 0; a < in; a++) {
                    const float xa = x[(size_t)r * in + a];
                    clip_acc(h, xa * xa, Sr, clip, fW + (size_t)a * h);
                }
                clip_acc(h, 1.0f, Sr, clip, fb);
            }
        }
        if (ln) {
            const int h = s->hidden[0];
            float *fg = facc + m->ln_g, *fbeta = facc + m->ln_b;
            for (int r = 0; r < B; r++) {
                const float *Sr = Sln + (size_t)r * h, *xh = ws.ln_xhat + (size_t)r * h;
                for (int o = 0; o < h; o++) {
                    fg[o] += clip_at(xh[o] * xh[o] * Sr[o], clip);
                    fbeta[o] += clip_at(Sr[o], clip);
                }
            }
        }
        for (int k = 0; k < nr; k++)
            for (size_t e = rg[k].lo; e < rg[k].hi; e++) acc[e] += facc[e];
    }

    memset(fisher, 0, np * sizeof(float));
    for (int k = 0; k < nr; k++)
        for (size_t e = rg[k].lo; e < rg[k].hi; e++) fisher[e] = (float)(acc[e] / n);
    rc = CRL_OK;
done:
    crl_mlp_ws_free(&ws);
    free(fmem);
    free(acc);
    free(heads);
    return rc;
}

/* ---- the method: l2's pull weighted by the Fisher of each finished task ---- */

static int ewc_init(cstate *st, crl_err *err) {
    int rc = crl_reg_init(&st->reg, crl_sac_actor(st->sac), st->c->ewc_coef, err);
    if (rc) return rc;
    st->has_reg = 1;
    st->fisher = malloc(st->na * sizeof(float));
    if (!st->fisher) return crl_errf(err, CRL_ENOMEM, "continual: out of memory");
    return crl_batch_alloc(&st->fbatch, CRL_EWC_SAMPLES, st->sc.obs_dim, st->sc.act_dim,
                           err);
}

static void ewc_attach(cstate *st, crl_sac_hooks *h) {
    crl_reg_hooks(&st->reg, h);
}

static int ewc_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                        int64_t reserve, crl_err *err) {
    (void)store, (void)run_id, (void)reserve;
    float *p = crl_sac_actor_params(st->sac);
    crl_replay_sample(&st->rb, &st->rng, CRL_EWC_SAMPLES, &st->fbatch);
    int rc = crl_ewc_fisher(crl_sac_actor(st->sac), p, st->fbatch.obs, CRL_EWC_SAMPLES, k,
                            CRL_FISHER_CW, st->fisher, err);
    if (!rc) crl_reg_task_end(&st->reg, p, st->fisher);
    return rc;
}

static int ewc_save(cstate *st, void **blob, size_t *n, crl_err *err) {
    return crl_reg_save(&st->reg, blob, n, err);
}

static int ewc_load(cstate *st, const void *blob, size_t n, crl_err *err) {
    return crl_reg_load(&st->reg, blob, n, err);
}

static void ewc_free(cstate *st) {
    if (st->has_reg) crl_reg_free(&st->reg);
    st->has_reg = 0;
}

const crl_method_impl crl_method_ewc_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_TASK_IDS | CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PLAIN,
    .cost = 1.0,
    .init = ewc_init,
    .attach = ewc_attach,
    .task_end = ewc_task_end,
    .save = ewc_save,
    .load = ewc_load,
    .free = ewc_free,
};
