/* CSP subspace MLP: layout, anchor management, the forward/backward with one
 * alpha per row. See include/crl/subspace.h for the layout and docs/subspace.md
 * for the math.
 *
 * A per-row alpha means a per-row weight matrix sum_i alpha_ri W_i. Building
 * it would cost B * in * out floats per layer; instead each anchor's output
 * Y_i = X W_i + b_i comes from one sgemm over the whole batch and the rows are
 * mixed afterwards. The cost is n sgemms per layer, the same FLOPs as one
 * sgemm against the anchors concatenated along the output dim, without
 * interleaving anchors in memory (which would break "anchor i is one block").
 *
 * Forward and backward never allocate: everything lives in the workspace. */
#include "crl/subspace.h"

#include "crl/blas.h"
#include "nn/net.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ----------------------------------------------------------------- */

int crl_subspace_init(crl_subspace *s, const crl_mlp_spec *spec, int max_anchors,
                      crl_err *err) {
    if (!s || !spec) return crl_errf(err, CRL_EINVAL, "subspace: NULL argument");
    if (max_anchors < 1)
        return crl_errf(err, CRL_EINVAL, "subspace: max_anchors %d must be >= 1",
                        max_anchors);
    /* One validation of the spec, shared with the plain MLP; its layout is the
     * per-anchor layout plus the LayerNorm, which we move in front. */
    crl_mlp m;
    int rc = crl_mlp_init(&m, spec, err);
    if (rc != CRL_OK) return rc;

    memset(s, 0, sizeof *s);
    s->spec = m.spec;
    s->max_anchors = max_anchors;
    s->n_anchors = 1;
    s->n_frozen = 0;
    const crl_mlp_spec *p = &s->spec;
    size_t off = 0;
    if (p->layernorm_first) {
        s->ln_g = 0;
        s->ln_b = (size_t)p->hidden[0];
        s->n_shared = 2 * (size_t)p->hidden[0];
    }
    int prev = p->in_dim;
    for (int i = 0; i < p->n_hidden; i++) {
        const int h = p->hidden[i];
        s->W[i] = off;
        off += (size_t)prev * h;
        s->b[i] = off;
        off += (size_t)h;
        prev = h;
    }
    s->head_W = off;
    off += (size_t)p->n_heads * prev * p->out_dim;
    s->head_b = off;
    off += (size_t)p->n_heads * p->out_dim;
    s->anchor_size = off;
    s->capacity = s->n_shared + (size_t)max_anchors * off;
    return CRL_OK;
}

size_t crl_subspace_n_params(const crl_subspace *s) {
    return s->n_shared + (size_t)s->n_anchors * s->anchor_size;
}

size_t crl_subspace_anchor_offset(const crl_subspace *s, int i) {
    return s->n_shared + (size_t)i * s->anchor_size;
}

void crl_subspace_init_params(crl_subspace *s, float *params, crl_rng *rng) {
    const crl_mlp_spec *p = &s->spec;
    s->n_anchors = 1;
    s->n_frozen = 0;
    memset(params, 0, s->capacity * sizeof *params);
    /* Same draw order as crl_mlp_init_params (hidden layers, then heads), so a
     * CSP run starts from the very network a SAC run with that seed would. */
    float *a0 = params + crl_subspace_anchor_offset(s, 0);
    int prev = p->in_dim;
    for (int i = 0; i < p->n_hidden; i++) {
        crl_net_glorot(a0 + s->W[i], prev, p->hidden[i], rng);
        prev = p->hidden[i];
    }
    if (p->layernorm_first)
        for (int j = 0; j < p->hidden[0]; j++) params[s->ln_g + j] = 1.0f;
    for (int h = 0; h < p->n_heads; h++)
        crl_net_glorot(a0 + s->head_W + (size_t)h * prev * p->out_dim, prev, p->out_dim,
                       rng);
}

void crl_subspace_freeze_all(crl_subspace *s) {
    s->n_frozen = s->n_anchors;
}

int crl_subspace_add_anchor(crl_subspace *s, float *params, crl_err *err) {
    if (s->n_anchors >= s->max_anchors)
        return crl_errf(err, CRL_EINVAL, "subspace: all %d anchors in use",
                        s->max_anchors);
    const int n = s->n_anchors;
    const size_t A = s->anchor_size;
    const float *base = params + crl_subspace_anchor_offset(s, 0);
    float *dst = params + crl_subspace_anchor_offset(s, n);
    /* The sum in double is exact to ~2^-29 relative for the few anchors CSP
     * grows, so the rounded mean is (almost always) the correctly rounded
     * one, and n identical anchors give that anchor back exactly. */
    for (size_t k = 0; k < A; k++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += (double)base[(size_t)i * A + k];
        dst[k] = (float)(acc / n);
    }
    s->n_anchors = n + 1;
    return CRL_OK;
}

int crl_subspace_remove_last(crl_subspace *s, float *params, crl_err *err) {
    if (s->n_anchors <= 1)
        return crl_errf(err, CRL_EINVAL, "subspace: cannot remove the only anchor");
    const int n = s->n_anchors - 1;
    /* Zero, not leave: unused capacity is zero after init, and keeping it so
     * makes "add then remove" restore the whole buffer bit for bit. */
    memset(params + crl_subspace_anchor_offset(s, n), 0, s->anchor_size * sizeof *params);
    s->n_anchors = n;
    if (s->n_frozen > n) s->n_frozen = n;
    return CRL_OK;
}

void crl_subspace_mask(const crl_subspace *s, uint8_t *mask) {
    memset(mask, 0, s->capacity);
    if (s->n_frozen == 0 && s->n_shared) memset(mask, 1, s->n_shared);
    for (int i = s->n_frozen; i < s->n_anchors; i++)
        memset(mask + crl_subspace_anchor_offset(s, i), 1, s->anchor_size);
}

/* Copy (or mix) the per-anchor tensors into crl_mlp's layout. In both layouts
 * a hidden layer's W and b are adjacent, as are all head weights and all head
 * biases, so each run below is one contiguous block in both. */
typedef struct {
    size_t src, dst, n;
} run;

static int mlp_runs(const crl_subspace *s, const crl_mlp *m, run *r) {
    const crl_mlp_spec *p = &s->spec;
    int k = 0;
    for (int i = 0; i < p->n_hidden; i++)
        r[k++] = (run){s->W[i], m->W[i], s->b[i] - s->W[i] + (size_t)p->hidden[i]};
    r[k++] = (run){s->head_W, m->head_W, s->anchor_size - s->head_W};
    return k;
}

static void copy_ln(const crl_subspace *s, const float *params, const crl_mlp *m,
                    float *mlp_params) {
    if (!s->spec.layernorm_first) return;
    const size_t h = (size_t)s->spec.hidden[0];
    memcpy(mlp_params + m->ln_g, params + s->ln_g, h * sizeof *params);
    memcpy(mlp_params + m->ln_b, params + s->ln_b, h * sizeof *params);
}

void crl_subspace_anchor_to_mlp(const crl_subspace *s, const float *params, int i,
                                const crl_mlp *m, float *mlp_params) {
    assert(i >= 0 && i < s->n_anchors && m->n_params == s->n_shared + s->anchor_size);
    run r[CRL_MLP_MAX_HIDDEN + 1];
    const int nr = mlp_runs(s, m, r);
    const float *a = params + crl_subspace_anchor_offset(s, i);
    for (int k = 0; k < nr; k++)
        memcpy(mlp_params + r[k].dst, a + r[k].src, r[k].n * sizeof *a);
    copy_ln(s, params, m, mlp_params);
}

void crl_subspace_mix_to_mlp(const crl_subspace *s, const float *params,
                             const float *alpha, const crl_mlp *m, float *mlp_params) {
    assert(m->n_params == s->n_shared + s->anchor_size);
    run r[CRL_MLP_MAX_HIDDEN + 1];
    const int nr = mlp_runs(s, m, r);
    for (int k = 0; k < nr; k++) {
        float *restrict d = mlp_params + r[k].dst;
        int started = 0;
        for (int i = 0; i < s->n_anchors; i++) {
            const float a = alpha[i];
            if (a == 0.0f) continue;
            const float *restrict w =
                params + crl_subspace_anchor_offset(s, i) + r[k].src;
            if (!started)
                for (size_t j = 0; j < r[k].n; j++) d[j] = a * w[j];
            else
                for (size_t j = 0; j < r[k].n; j++) d[j] += a * w[j];
            started = 1;
        }
        if (!started) memset(d, 0, r[k].n * sizeof *d);
    }
    copy_ln(s, params, m, mlp_params);
}

double crl_subspace_macs_per_row(const crl_subspace *s) {
    const crl_mlp_spec *p = &s->spec;
    double macs = 0.0;
    int prev = p->in_dim;
    for (int i = 0; i < p->n_hidden; i++) {
        macs += (double)prev * p->hidden[i];
        prev = p->hidden[i];
    }
    return s->n_anchors * (macs + (double)prev * p->out_dim);
}

/* ---- workspace -------------------------------------------------------------- */

int crl_subspace_ws_alloc(crl_subspace_ws *ws, const crl_subspace *s, int max_batch,
                          crl_err *err) {
    if (!ws || !s) return crl_errf(err, CRL_EINVAL, "subspace ws: NULL argument");
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1)
        return crl_errf(err, CRL_EINVAL, "subspace ws: max_batch %d must be >= 1",
                        max_batch);
    const crl_mlp_spec *p = &s->spec;
    const size_t Bm = (size_t)max_batch, wide = crl_net_pad16(Bm * crl_net_max_width(p));
    size_t total = 0;
    for (int i = 0; i < p->n_hidden; i++) total += crl_net_pad16(Bm * p->hidden[i]);
    if (p->layernorm_first)
        total += 2 * crl_net_pad16(Bm * p->hidden[0]) + crl_net_pad16(Bm);
    total += crl_net_pad16(Bm * p->out_dim) + 4 * wide;

    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, total * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "subspace ws: cannot allocate %zu floats",
                        total);
    int *first = malloc(Bm * sizeof *first);
    if (!first) {
        free(mem);
        return crl_errf(err, CRL_ENOMEM, "subspace ws: cannot allocate %d ints",
                        max_batch);
    }
    /* Zeroed so that a backward without a forward reads numbers, not garbage. */
    memset(mem, 0, total * sizeof(float));
    for (size_t r = 0; r < Bm; r++) first[r] = -1;
    ws->mem = mem;
    ws->first = first;
    ws->max_batch = max_batch;
    float *q = mem;
    for (int i = 0; i < p->n_hidden; i++) {
        ws->pre[i] = q;
        q += crl_net_pad16(Bm * p->hidden[i]);
        /* As in crl_mlp: activations in place except after LayerNorm. */
        if (i == 0 && p->layernorm_first) {
            ws->post[i] = q;
            q += crl_net_pad16(Bm * p->hidden[i]);
        } else {
            ws->post[i] = ws->pre[i];
        }
    }
    if (p->layernorm_first) {
        ws->ln_xhat = q;
        q += crl_net_pad16(Bm * p->hidden[0]);
        ws->ln_rstd = q;
        q += crl_net_pad16(Bm);
    }
    ws->out = q;
    q += crl_net_pad16(Bm * p->out_dim);
    ws->d0 = q, q += wide;
    ws->d1 = q, q += wide;
    ws->t0 = q, q += wide;
    ws->t1 = q;
    return CRL_OK;
}

void crl_subspace_ws_free(crl_subspace_ws *ws) {
    if (!ws) return;
    free(ws->mem);
    free(ws->first);
    memset(ws, 0, sizeof *ws);
}

/* ---- mixed Linear layer ----------------------------------------------------- */

/* What every layer of one forward/backward shares. Anchor i's tensor sits at
 * base + i * stride for every tensor, so a layer is (offset, stride). */
typedef struct {
    int n;              /* anchors */
    const float *alpha; /* B x n */
    const int *first;   /* per row: first nonzero alpha, -1 if none */
    const float *a0;    /* params of anchor 0 */
    float *g0;          /* grads of anchor 0, NULL for no weight gradients */
    size_t stride;      /* anchor_size */
    int n_frozen;
} mix;

static int col_any(const mix *c, int i, int rows) {
    for (int r = 0; r < rows; r++)
        if (c->alpha[(size_t)r * c->n + i] != 0.0f) return 1;
    return 0;
}

/* y[r] (+)= a * Y[r]: a plain product for the row's first nonzero anchor, so a
 * one-hot alpha passes Y through exactly (sign of zero included). */
static void mix_rows(const mix *c, int i, int B, int d, const float *Y, float *y) {
    for (int r = 0; r < B; r++) {
        const float a = c->alpha[(size_t)r * c->n + i];
        if (a == 0.0f) continue;
        const float *restrict src = Y + (size_t)r * d;
        float *restrict dst = y + (size_t)r * d;
        if (c->first[r] == i)
            for (int j = 0; j < d; j++) dst[j] = a * src[j];
        else
            for (int j = 0; j < d; j++) dst[j] += a * src[j];
    }
}

/* Rows without any nonzero alpha get 0 (the empty sum). */
static void zero_dead_rows(const mix *c, int B, int d, float *y) {
    for (int r = 0; r < B; r++)
        if (c->first[r] < 0) memset(y + (size_t)r * d, 0, (size_t)d * sizeof *y);
}

static float dot(int n, const float *restrict a, const float *restrict b) {
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += a[j] * b[j];
    return s;
}

/* y = sum_i alpha_i (X W_i + b_i) with W_i = a0 + W + i*stride. */
static void sub_linear_forward(const mix *c, int B, int in, int out, const float *X,
                               size_t W, size_t b, float *Y, float *y) {
    zero_dead_rows(c, B, out, y);
    for (int i = 0; i < c->n; i++) {
        if (!col_any(c, i, B)) continue;
        const float *a = c->a0 + (size_t)i * c->stride;
        /* The very call crl_mlp makes, so alpha = e_i is crl_mlp bit for bit. */
        crl_linear_forward(B, in, out, X, a + W, a + b, Y);
        mix_rows(c, i, B, out, Y, y);
    }
}

/* Backward of sub_linear_forward over R rows, dy = dL/dy (R x out):
 *   dW_i += X^T (alpha_:i . dy)   over the first dw_rows rows (trainable i)
 *   db_i += colsum(alpha_:i . dy)
 *   G_i   = dy W_i^T               (R x in)
 *   dx    = sum_i alpha_:i . G_i    (overwritten; may be NULL)
 *   dalpha_:i += <X, G_i> + <b_i, dy> = <Y_i, dy> row by row (may be NULL)
 * T0 (R x out) and T1 (R x in) are scratch. */
static void sub_linear_backward(const mix *c, int R, int in, int out, const float *X,
                                size_t W, size_t b, const float *dy, float *dx,
                                float *dalpha, int dw_rows, float *T0, float *T1) {
    if (dx) zero_dead_rows(c, R, in, dx);
    for (int i = 0; i < c->n; i++) {
        const float *Wi = c->a0 + (size_t)i * c->stride + W;
        const float *bi = c->a0 + (size_t)i * c->stride + b;
        if (c->g0 && i >= c->n_frozen && dw_rows > 0 && col_any(c, i, dw_rows)) {
            for (int r = 0; r < dw_rows; r++) {
                const float a = c->alpha[(size_t)r * c->n + i];
                const float *restrict src = dy + (size_t)r * out;
                float *restrict dst = T0 + (size_t)r * out;
                for (int j = 0; j < out; j++) dst[j] = a * src[j];
            }
            float *gi = c->g0 + (size_t)i * c->stride;
            crl_linear_backward(dw_rows, in, out, X, Wi, T0, gi + W, gi + b, NULL,
                                dw_rows);
        }
        if (!dalpha && !(dx && col_any(c, i, R))) continue;
        crl_sgemm('N', 'T', R, in, out, 1.0f, dy, out, Wi, out, 0.0f, T1, in);
        if (dx) mix_rows(c, i, R, in, T1, dx);
        if (dalpha)
            for (int r = 0; r < R; r++)
                dalpha[(size_t)r * c->n + i] +=
                    dot(in, X + (size_t)r * in, T1 + (size_t)r * in) +
                    dot(out, bi, dy + (size_t)r * out);
    }
}

/* Mixed-head backward: the head is small (H x out), so a row loop per anchor
 * costs what the sgemms would. Same contract as sub_linear_backward. */
static void heads_backward_rows(const crl_subspace *s, const mix *c, const int *head,
                                int R, const float *hin, const float *dout, float *d,
                                float *dalpha, int dw_rows, float *G) {
    const int H = s->spec.hidden[s->spec.n_hidden - 1], O = s->spec.out_dim;
    const size_t blk = (size_t)H * O;
    zero_dead_rows(c, R, H, d);
    for (int r = 0; r < R; r++) {
        const int hr = head[r];
        const float *restrict dr = dout + (size_t)r * O;
        const float *restrict xr = hin + (size_t)r * H;
        for (int i = 0; i < c->n; i++) {
            const float a = c->alpha[(size_t)r * c->n + i];
            const float *restrict W =
                c->a0 + (size_t)i * c->stride + s->head_W + hr * blk;
            const float *restrict b =
                c->a0 + (size_t)i * c->stride + s->head_b + (size_t)hr * O;
            if (a != 0.0f || dalpha) {
                for (int k = 0; k < H; k++) G[k] = dot(O, dr, W + (size_t)k * O);
                float *restrict dxr = d + (size_t)r * H;
                if (a != 0.0f) {
                    if (c->first[r] == i)
                        for (int k = 0; k < H; k++) dxr[k] = a * G[k];
                    else
                        for (int k = 0; k < H; k++) dxr[k] += a * G[k];
                }
                if (dalpha) dalpha[(size_t)r * c->n + i] += dot(H, xr, G) + dot(O, b, dr);
            }
            if (r < dw_rows && c->g0 && i >= c->n_frozen && a != 0.0f) {
                float *gi = c->g0 + (size_t)i * c->stride;
                float *restrict gW = gi + s->head_W + hr * blk;
                float *restrict gb = gi + s->head_b + (size_t)hr * O;
                for (int j = 0; j < O; j++) gb[j] += a * dr[j];
                for (int k = 0; k < H; k++) {
                    const float xk = a * xr[k];
                    float *restrict gk = gW + (size_t)k * O;
                    for (int j = 0; j < O; j++) gk[j] += xk * dr[j];
                }
            }
        }
    }
}

/* ---- the layers the skeleton (nn/net.h) calls ------------------------------------- */

typedef struct {
    mix c;
    const crl_subspace *s;
    crl_subspace_ws *ws;
    float *dalpha; /* backward: B x n, or NULL */
} sub_ctx;

static int sub_fwd(void *vc, int l, int B, int in, int out, const float *x, float *y) {
    sub_ctx *k = vc;
    sub_linear_forward(&k->c, B, in, out, x, k->s->W[l], k->s->b[l], k->ws->t0, y);
    return 0;
}

/* Common head: a mixed Linear layer. Mixed heads: per anchor, the plain
 * network's row loop over the rows that use it, then the mix. */
static void sub_head_fwd(void *vc, int B, int H, int O, const float *x, const int *head,
                         int hc, float *y) {
    sub_ctx *k = vc;
    const crl_subspace *s = k->s;
    const mix *c = &k->c;
    const size_t blk = (size_t)H * O;
    if (hc >= 0) {
        assert(hc < s->spec.n_heads);
        sub_linear_forward(c, B, H, O, x, s->head_W + hc * blk,
                           s->head_b + (size_t)hc * O, k->ws->t0, y);
        return;
    }
    zero_dead_rows(c, B, O, y);
    for (int i = 0; i < c->n; i++) {
        if (!col_any(c, i, B)) continue;
        const float *a = c->a0 + (size_t)i * c->stride;
        crl_net_head_forward(B, H, O, x, a + s->head_W, a + s->head_b, head, -1,
                             c->alpha + i, c->n, k->ws->t0);
        mix_rows(c, i, B, O, k->ws->t0, y);
    }
}

static void sub_bwd(void *vc, int l, int R, int in, int out, const float *x, float *d,
                    float *dprev, int dw_rows) {
    sub_ctx *k = vc;
    sub_linear_backward(&k->c, R, in, out, x, k->s->W[l], k->s->b[l], d, dprev, k->dalpha,
                        dw_rows, k->ws->t0, k->ws->t1);
}

static void sub_head_bwd(void *vc, int R, int H, int O, const float *x, const int *head,
                         int hc, const float *dout, float *d, int dw_rows) {
    sub_ctx *k = vc;
    const size_t blk = (size_t)H * O;
    if (hc >= 0)
        sub_linear_backward(&k->c, R, H, O, x, k->s->head_W + hc * blk,
                            k->s->head_b + (size_t)hc * O, dout, d, k->dalpha, dw_rows,
                            k->ws->t0, k->ws->t1);
    else
        heads_backward_rows(k->s, &k->c, head, R, x, dout, d, k->dalpha, dw_rows,
                            k->ws->t1);
}

static const crl_net_ops sub_ops = {sub_fwd, sub_head_fwd, sub_bwd, sub_head_bwd};

static crl_net_bufs sub_bufs(crl_subspace_ws *ws) {
    return (crl_net_bufs){ws->pre, ws->post, ws->ln_xhat, ws->ln_rstd, ws->d0, ws->d1};
}

/* ---- forward ---------------------------------------------------------------- */

const float *crl_subspace_forward(const crl_subspace *s, const float *params,
                                  crl_subspace_ws *ws, const float *x, int B,
                                  const float *alpha, const int *head) {
    const int n = s->n_anchors;
    assert(B >= 0 && B <= ws->max_batch);
    ws->B = B;
    ws->n = n;
    ws->x = x;
    ws->alpha = alpha;
    ws->head = head;
    if (B <= 0) return ws->out;
    for (int r = 0; r < B; r++) {
        int f = -1;
        for (int i = 0; i < n && f < 0; i++)
            if (alpha[(size_t)r * n + i] != 0.0f) f = i;
        ws->first[r] = f;
    }
    sub_ctx k = {{n, alpha, ws->first, params + crl_subspace_anchor_offset(s, 0), NULL,
                  s->anchor_size, s->n_frozen},
                 s,
                 ws,
                 NULL};
    const crl_net_bufs bufs = sub_bufs(ws);
    crl_net_forward(&s->spec, params + s->ln_g, params + s->ln_b, &bufs, &sub_ops, &k, x,
                    B, head, ws->out);
    return ws->out;
}

/* ---- backward --------------------------------------------------------------- */

void crl_subspace_backward(const crl_subspace *s, const float *params, float *grads,
                           crl_subspace_ws *ws, const float *dout, int dw_rows, float *dx,
                           float *dalpha) {
    const int B = ws->B, n = ws->n;
    assert(n == s->n_anchors);
    if (B <= 0) return;
    if (dalpha) memset(dalpha, 0, (size_t)B * n * sizeof *dalpha);
    /* Every anchor frozen (hence the LayerNorm too): no weight gradient. */
    if (s->n_frozen >= n) grads = NULL;
    if (!grads || dw_rows < 0) dw_rows = 0;
    if (dw_rows > B) dw_rows = B;
    /* Without dx or dalpha, rows past dw_rows influence nothing. */
    const int R = (dx || dalpha) ? B : dw_rows;
    if (R == 0) return;

    sub_ctx k = {{n, ws->alpha, ws->first, params + crl_subspace_anchor_offset(s, 0),
                  grads ? grads + crl_subspace_anchor_offset(s, 0) : NULL, s->anchor_size,
                  s->n_frozen},
                 s,
                 ws,
                 dalpha};
    const int ln_train = grads && s->n_frozen == 0;
    const crl_net_bufs bufs = sub_bufs(ws);
    crl_net_backward(&s->spec, params + s->ln_g, ln_train ? grads + s->ln_g : NULL,
                     ln_train ? grads + s->ln_b : NULL, &bufs, &sub_ops, &k, ws->x, R,
                     ws->head, dout, dw_rows, dx);
}
