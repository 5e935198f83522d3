/* MLP over a flat parameter buffer: hidden Linear layers (LayerNorm + first_act
 * after the first, act after the others) and n_heads linear output heads.
 *
 * Parameter layout, in order:
 *   W0 [in x h0], b0 [h0], (ln_g [h0], ln_b [h0]), W1 [h0 x h1], b1, ...,
 *   head_W: n_heads blocks of [H x out], head_b: n_heads blocks of [out].
 *
 * Forward and backward never allocate: everything lives in the workspace. */
#include "crl/blas.h"
#include "crl/nn.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void crl_mlp_spec_cw(crl_mlp_spec *s, int in_dim, int out_dim, int n_heads, int n_hidden,
                     int width) {
    memset(s, 0, sizeof *s);
    s->in_dim = in_dim;
    s->n_hidden = n_hidden;
    for (int i = 0; i < n_hidden && i < CRL_MLP_MAX_HIDDEN; i++) s->hidden[i] = width;
    s->out_dim = out_dim;
    s->n_heads = n_heads;
    s->layernorm_first = 1;
    s->first_act = CRL_ACT_TANH;
    s->act = CRL_ACT_LRELU;
    s->lrelu_slope = 0.2f;
    s->ln_eps = 1e-3f;
}

static int act_ok(crl_act a) {
    return a >= CRL_ACT_NONE && a <= CRL_ACT_LRELU;
}

int crl_mlp_init(crl_mlp *m, const crl_mlp_spec *s, crl_err *err) {
    if (!m || !s) return crl_errf(err, CRL_EINVAL, "mlp: NULL argument");
    if (s->in_dim < 1 || s->out_dim < 1 || s->n_heads < 1)
        return crl_errf(err, CRL_EINVAL,
                        "mlp: in_dim %d, out_dim %d, n_heads %d must be >= 1", s->in_dim,
                        s->out_dim, s->n_heads);
    if (s->n_hidden < 1 || s->n_hidden > CRL_MLP_MAX_HIDDEN)
        return crl_errf(err, CRL_EINVAL, "mlp: n_hidden %d not in [1, %d]", s->n_hidden,
                        CRL_MLP_MAX_HIDDEN);
    for (int i = 0; i < s->n_hidden; i++)
        if (s->hidden[i] < 1)
            return crl_errf(err, CRL_EINVAL, "mlp: hidden[%d] = %d must be >= 1", i,
                            s->hidden[i]);
    if (!act_ok(s->first_act) || !act_ok(s->act))
        return crl_errf(err, CRL_EINVAL, "mlp: unknown activation");
    /* Backward works from the activation output, which needs slope > 0. */
    if ((s->first_act == CRL_ACT_LRELU || (s->act == CRL_ACT_LRELU && s->n_hidden > 1)) &&
        !(s->lrelu_slope > 0.0f))
        return crl_errf(err, CRL_EINVAL, "mlp: leaky relu slope %g must be > 0",
                        (double)s->lrelu_slope);
    if (s->layernorm_first && !(s->ln_eps > 0.0f))
        return crl_errf(err, CRL_EINVAL, "mlp: LayerNorm eps %g must be > 0",
                        (double)s->ln_eps);

    memset(m, 0, sizeof *m);
    m->spec = *s;
    for (int i = s->n_hidden; i < CRL_MLP_MAX_HIDDEN; i++) m->spec.hidden[i] = 0;
    size_t off = 0;
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        int h = s->hidden[i];
        m->W[i] = off;
        off += (size_t)prev * h;
        m->b[i] = off;
        off += (size_t)h;
        if (i == 0 && s->layernorm_first) {
            m->ln_g = off;
            off += (size_t)h;
            m->ln_b = off;
            off += (size_t)h;
        }
        prev = h;
    }
    m->head_W = off;
    off += (size_t)s->n_heads * prev * s->out_dim;
    m->head_b = off;
    off += (size_t)s->n_heads * s->out_dim;
    m->n_params = off;
    return CRL_OK;
}

static void glorot(float *W, int fan_in, int fan_out, crl_rng *rng) {
    double lim = sqrt(6.0 / (double)(fan_in + fan_out));
    size_t n = (size_t)fan_in * fan_out;
    for (size_t i = 0; i < n; i++) W[i] = (float)crl_rng_range(rng, -lim, lim);
}

void crl_mlp_init_params(const crl_mlp *m, float *params, crl_rng *rng) {
    const crl_mlp_spec *s = &m->spec;
    memset(params, 0, m->n_params * sizeof *params); /* biases, LN bias */
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        glorot(params + m->W[i], prev, s->hidden[i], rng);
        prev = s->hidden[i];
    }
    if (s->layernorm_first)
        for (int j = 0; j < s->hidden[0]; j++) params[m->ln_g + j] = 1.0f;
    for (int h = 0; h < s->n_heads; h++)
        glorot(params + m->head_W + (size_t)h * prev * s->out_dim, prev, s->out_dim, rng);
}

static size_t pad16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static int max_width(const crl_mlp *m) {
    int w = m->spec.out_dim > m->spec.in_dim ? m->spec.out_dim : m->spec.in_dim;
    for (int i = 0; i < m->spec.n_hidden; i++)
        if (m->spec.hidden[i] > w) w = m->spec.hidden[i];
    return w;
}

int crl_mlp_ws_alloc(crl_mlp_ws *ws, const crl_mlp *m, int max_batch, crl_err *err) {
    if (!ws || !m) return crl_errf(err, CRL_EINVAL, "mlp ws: NULL argument");
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1)
        return crl_errf(err, CRL_EINVAL, "mlp ws: max_batch %d must be >= 1", max_batch);
    const crl_mlp_spec *s = &m->spec;
    const size_t Bm = (size_t)max_batch;
    size_t total = 0;
    for (int i = 0; i < s->n_hidden; i++) total += pad16(Bm * s->hidden[i]);
    if (s->layernorm_first) total += pad16(Bm * s->hidden[0]); /* post[0] */
    if (s->layernorm_first) total += pad16(Bm * s->hidden[0]) + pad16(Bm);
    total += pad16(Bm * s->out_dim);
    total += 2 * pad16(Bm * max_width(m));

    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, total * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "mlp ws: cannot allocate %zu floats", total);
    /* Zeroed so that a backward without a forward reads numbers, not garbage. */
    memset(mem, 0, total * sizeof(float));
    ws->mem = mem;
    ws->max_batch = max_batch;
    float *p = mem;
    for (int i = 0; i < s->n_hidden; i++) {
        ws->pre[i] = p;
        p += pad16(Bm * s->hidden[i]);
        /* Activations run in place except after LayerNorm: backward needs only
         * the activation output, and a smaller workspace stays in cache. */
        if (i == 0 && s->layernorm_first) {
            ws->post[i] = p;
            p += pad16(Bm * s->hidden[i]);
        } else {
            ws->post[i] = ws->pre[i];
        }
    }
    if (s->layernorm_first) {
        ws->ln_xhat = p;
        p += pad16(Bm * s->hidden[0]);
        ws->ln_rstd = p;
        p += pad16(Bm);
    }
    ws->out = p;
    p += pad16(Bm * s->out_dim);
    ws->d0 = p;
    p += pad16(Bm * max_width(m));
    ws->d1 = p;
    return CRL_OK;
}

void crl_mlp_ws_free(crl_mlp_ws *ws) {
    if (!ws) return;
    free(ws->mem);
    memset(ws, 0, sizeof *ws);
}

/* Head shared by rows [0, n), or -1 if they differ. NULL means head 0. */
static int common_head(const int *head, int n) {
    if (!head || n <= 0) return 0;
    const int h0 = head[0];
    int diff = 0;
    for (int r = 1; r < n; r++) diff |= head[r] ^ h0;
    return diff ? -1 : h0;
}

const float *crl_mlp_forward(const crl_mlp *m, const float *params, crl_mlp_ws *ws,
                             const float *x, int B, const int *head) {
    const crl_mlp_spec *s = &m->spec;
    assert(B >= 0 && B <= ws->max_batch);
    ws->B = B;
    ws->x = x;
    ws->head = head;
    if (B <= 0) return ws->out;

    const float *in = x;
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        const int h = s->hidden[i];
        const size_t n = (size_t)B * h;
        crl_linear_forward(B, prev, h, in, params + m->W[i], params + m->b[i],
                           ws->pre[i]);
        if (i == 0 && s->layernorm_first) {
            crl_layernorm_forward(B, h, ws->pre[0], params + m->ln_g, params + m->ln_b,
                                  s->ln_eps, ws->post[0], ws->ln_xhat, ws->ln_rstd);
            crl_act_forward(s->first_act, s->lrelu_slope, n, ws->post[0], ws->post[0]);
        } else {
            crl_act_forward(i == 0 ? s->first_act : s->act, s->lrelu_slope, n, ws->pre[i],
                            ws->post[i]);
        }
        in = ws->post[i];
        prev = h;
    }

    const int H = prev, O = s->out_dim;
    const size_t blk = (size_t)H * O;
    const int hc = common_head(head, B);
    if (hc >= 0) {
        assert(hc < s->n_heads);
        crl_linear_forward(B, H, O, in, params + m->head_W + hc * blk,
                           params + m->head_b + (size_t)hc * O, ws->out);
    } else {
        /* Mixed heads: the head is small (H x out), so a row loop costs
         * B*H*out multiply-adds, the same as the sgemm would. */
        for (int r = 0; r < B; r++) {
            const int hr = head[r];
            assert(hr >= 0 && hr < s->n_heads);
            const float *W = params + m->head_W + hr * blk;
            const float *xr = in + (size_t)r * H;
            float *restrict yr = ws->out + (size_t)r * O;
            memcpy(yr, params + m->head_b + (size_t)hr * O, (size_t)O * sizeof *yr);
            for (int k = 0; k < H; k++) {
                const float xk = xr[k];
                const float *restrict wk = W + (size_t)k * O;
                for (int j = 0; j < O; j++) yr[j] += xk * wk[j];
            }
        }
    }
    return ws->out;
}

void crl_mlp_backward(const crl_mlp *m, const float *params, float *grads, crl_mlp_ws *ws,
                      const float *dout, int dw_rows, float *dx) {
    crl_mlp_backward_dx_block(m, params, grads, ws, dout, dw_rows, dx, 0, 0,
                              m->spec.in_dim);
}

void crl_mlp_backward_dx_block(const crl_mlp *m, const float *params, float *grads,
                               crl_mlp_ws *ws, const float *dout, int dw_rows, float *dx,
                               int dx_row0, int dx_col0, int dx_cols) {
    const crl_mlp_spec *s = &m->spec;
    const int B = ws->B;
    if (B <= 0) return;
    if (!grads || dw_rows < 0) dw_rows = 0;
    if (dw_rows > B) dw_rows = B;
    /* Without dx, rows past dw_rows influence nothing: propagate only those. */
    const int R = dx ? B : dw_rows;
    if (R == 0) return;

    const int L = s->n_hidden, H = s->hidden[L - 1], O = s->out_dim;
    const size_t blk = (size_t)H * O;
    const float *hin = ws->post[L - 1];
    float *d = ws->d0, *dn = ws->d1;

    /* Output heads: dW into each row's own head block, delta into d. */
    const int hc = common_head(ws->head, R);
    if (hc >= 0) {
        crl_linear_backward(R, H, O, hin, params + m->head_W + hc * blk, dout,
                            grads ? grads + m->head_W + hc * blk : NULL,
                            grads ? grads + m->head_b + (size_t)hc * O : NULL, d,
                            dw_rows);
    } else {
        const int *head = ws->head;
        for (int r = 0; r < R; r++) {
            const int hr = head[r];
            const float *restrict W = params + m->head_W + hr * blk;
            const float *restrict dr = dout + (size_t)r * O;
            const float *restrict xr = hin + (size_t)r * H;
            float *restrict dxr = d + (size_t)r * H;
            for (int k = 0; k < H; k++) {
                const float *restrict wk = W + (size_t)k * O;
                float acc = 0.0f;
                for (int j = 0; j < O; j++) acc += dr[j] * wk[j];
                dxr[k] = acc;
            }
            if (r < dw_rows) {
                float *restrict gW = grads + m->head_W + hr * blk;
                float *restrict gb = grads + m->head_b + (size_t)hr * O;
                for (int j = 0; j < O; j++) gb[j] += dr[j];
                for (int k = 0; k < H; k++) {
                    const float xk = xr[k];
                    float *restrict gk = gW + (size_t)k * O;
                    for (int j = 0; j < O; j++) gk[j] += xk * dr[j];
                }
            }
        }
    }

    /* Hidden layers, last to first; d holds dL/d(post[i]) for R rows. */
    for (int i = L - 1; i >= 0; i--) {
        const int h = s->hidden[i];
        const size_t n = (size_t)R * h;
        if (i == 0 && s->layernorm_first) {
            crl_act_backward(s->first_act, s->lrelu_slope, n, ws->post[0], d, d);
            crl_layernorm_backward(R, h, d, ws->ln_xhat, ws->ln_rstd, params + m->ln_g,
                                   grads ? grads + m->ln_g : NULL,
                                   grads ? grads + m->ln_b : NULL, d, dw_rows);
        } else {
            crl_act_backward(i == 0 ? s->first_act : s->act, s->lrelu_slope, n,
                             ws->post[i], d, d);
        }
        const int prev = i == 0 ? s->in_dim : s->hidden[i - 1];
        const float *in = i == 0 ? ws->x : ws->post[i - 1];
        const int full = dx_row0 == 0 && dx_col0 == 0 && dx_cols == s->in_dim;
        float *dprev = i == 0 ? (full ? dx : NULL) : dn;
        crl_linear_backward(R, prev, h, in, params + m->W[i], d,
                            grads ? grads + m->W[i] : NULL,
                            grads ? grads + m->b[i] : NULL, dprev, dw_rows);
        if (i == 0 && dx && !full && dx_row0 < R && dx_cols > 0)
            /* dx block = d[rows r0..R) x W0[cols c0..c0+k)^T; W0 is in x h, so
             * its rows c0.. are the wanted input columns. */
            crl_sgemm('N', 'T', R - dx_row0, dx_cols, h, 1.0f, d + (size_t)dx_row0 * h, h,
                      params + m->W[0] + (size_t)dx_col0 * h, h, 0.0f, dx, dx_cols);
        float *t = d;
        d = dn;
        dn = t;
    }
}

/* Rows rows[k] of a (ws->B x w) buffer move to r0 + k (ascending, so a row
 * never lands on one still to be read). */
static void keep(float *buf, int w, int r0, const int *rows, int n) {
    for (int k = 0; k < n; k++)
        if (rows[k] != r0 + k)
            memcpy(buf + (size_t)(r0 + k) * w, buf + (size_t)rows[k] * w,
                   (size_t)w * sizeof *buf);
}

void crl_mlp_ws_keep_rows(const crl_mlp *m, crl_mlp_ws *ws, int r0, const int *rows,
                          int n, int *head_out) {
    const crl_mlp_spec *s = &m->spec;
    assert(r0 >= 0 && n >= 0 && r0 + n <= ws->B);
    for (int i = 0; i < s->n_hidden; i++) keep(ws->post[i], s->hidden[i], r0, rows, n);
    if (s->layernorm_first) {
        keep(ws->ln_xhat, s->hidden[0], r0, rows, n);
        keep(ws->ln_rstd, 1, r0, rows, n);
    }
    if (ws->head) {
        if (head_out != ws->head)
            memcpy(head_out, ws->head, (size_t)r0 * sizeof *head_out);
        for (int k = 0; k < n; k++) head_out[r0 + k] = ws->head[rows[k]];
        ws->head = head_out;
    }
    ws->B = r0 + n;
}

double crl_mlp_macs_per_row(const crl_mlp *m) {
    const crl_mlp_spec *s = &m->spec;
    double macs = 0.0;
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        macs += (double)prev * s->hidden[i];
        prev = s->hidden[i];
    }
    return macs + (double)prev * s->out_dim;
}
