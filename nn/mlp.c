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
#include "nn/net.h"

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

void crl_mlp_init_params(const crl_mlp *m, float *params, crl_rng *rng) {
    const crl_mlp_spec *s = &m->spec;
    memset(params, 0, m->n_params * sizeof *params); /* biases, LN bias */
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        crl_net_glorot(params + m->W[i], prev, s->hidden[i], rng);
        prev = s->hidden[i];
    }
    if (s->layernorm_first)
        for (int j = 0; j < s->hidden[0]; j++) params[m->ln_g + j] = 1.0f;
    for (int h = 0; h < s->n_heads; h++)
        crl_net_glorot(params + m->head_W + (size_t)h * prev * s->out_dim, prev,
                       s->out_dim, rng);
}

int crl_mlp_ws_alloc(crl_mlp_ws *ws, const crl_mlp *m, int max_batch, crl_err *err) {
    if (!ws || !m) return crl_errf(err, CRL_EINVAL, "mlp ws: NULL argument");
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1)
        return crl_errf(err, CRL_EINVAL, "mlp ws: max_batch %d must be >= 1", max_batch);
    const crl_mlp_spec *s = &m->spec;
    const size_t Bm = (size_t)max_batch;
    size_t total = 0;
    for (int i = 0; i < s->n_hidden; i++) total += crl_net_pad16(Bm * s->hidden[i]);
    if (s->layernorm_first) total += crl_net_pad16(Bm * s->hidden[0]); /* post[0] */
    if (s->layernorm_first) total += crl_net_pad16(Bm * s->hidden[0]) + crl_net_pad16(Bm);
    total += crl_net_pad16(Bm * s->out_dim);
    total += 2 * crl_net_pad16(Bm * crl_net_max_width(&m->spec));

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
        p += crl_net_pad16(Bm * s->hidden[i]);
        /* Activations run in place except after LayerNorm: backward needs only
         * the activation output, and a smaller workspace stays in cache. */
        if (i == 0 && s->layernorm_first) {
            ws->post[i] = p;
            p += crl_net_pad16(Bm * s->hidden[i]);
        } else {
            ws->post[i] = ws->pre[i];
        }
    }
    if (s->layernorm_first) {
        ws->ln_xhat = p;
        p += crl_net_pad16(Bm * s->hidden[0]);
        ws->ln_rstd = p;
        p += crl_net_pad16(Bm);
    }
    ws->out = p;
    p += crl_net_pad16(Bm * s->out_dim);
    ws->d0 = p;
    p += crl_net_pad16(Bm * crl_net_max_width(&m->spec));
    ws->d1 = p;
    return CRL_OK;
}

void crl_mlp_ws_free(crl_mlp_ws *ws) {
    if (!ws) return;
    free(ws->mem);
    memset(ws, 0, sizeof *ws);
}

/* ---- the Linear operations the skeleton (nn/net.h) calls -------------------- */

typedef struct {
    const crl_mlp *m;
    const float *params;
    float *grads; /* NULL: no weight gradients */
    /* backward: the input-gradient block of layer 0 */
    int dx_row0, dx_col0, dx_cols;
} mlp_ctx;

static int mlp_fwd(void *vc, int l, int B, int in, int out, const float *x, float *y) {
    const mlp_ctx *c = vc;
    crl_linear_forward(B, in, out, x, c->params + c->m->W[l], c->params + c->m->b[l], y);
    return 0;
}

static void mlp_head_fwd(void *vc, int B, int H, int O, const float *x, const int *head,
                         int hc, float *y) {
    const mlp_ctx *c = vc;
    assert(hc < c->m->spec.n_heads);
    crl_net_head_forward(B, H, O, x, c->params + c->m->head_W, c->params + c->m->head_b,
                         head, hc, NULL, 0, y);
}

/* Layer 0's dprev is the caller's dx: whole (R x in) or, for a block request,
 * only rows [dx_row0, R) and columns [dx_col0, dx_col0 + dx_cols). */
static void mlp_bwd(void *vc, int l, int R, int in, int out, const float *x, float *d,
                    float *dprev, int dw_rows) {
    const mlp_ctx *c = vc;
    const crl_mlp *m = c->m;
    float *g = c->grads;
    const size_t Wl = m->W[l], bl = m->b[l];
    const int block =
        l == 0 && !(c->dx_row0 == 0 && c->dx_col0 == 0 && c->dx_cols == m->spec.in_dim);
    crl_linear_backward(R, in, out, x, c->params + Wl, d, g ? g + Wl : NULL,
                        g ? g + bl : NULL, block ? NULL : dprev, dw_rows);
    if (block && dprev && c->dx_row0 < R && c->dx_cols > 0)
        /* dx block = d[rows r0..R) x W0[cols c0..c0+k)^T; W0 is in x h, so
         * its rows c0.. are the wanted input columns. */
        crl_sgemm(
            'N', 'T', R - c->dx_row0, c->dx_cols, out, 1.0f, d + (size_t)c->dx_row0 * out,
            out, c->params + Wl + (size_t)c->dx_col0 * out, out, 0.0f, dprev, c->dx_cols);
}

static void mlp_head_bwd(void *vc, int R, int H, int O, const float *x, const int *head,
                         int hc, const float *dout, float *d, int dw_rows) {
    const mlp_ctx *c = vc;
    float *g = c->grads;
    crl_net_head_backward(R, H, O, x, c->params + c->m->head_W, head, hc, dout,
                          g ? g + c->m->head_W : NULL, g ? g + c->m->head_b : NULL, d,
                          dw_rows);
}

static const crl_net_ops mlp_ops = {mlp_fwd, mlp_head_fwd, mlp_bwd, mlp_head_bwd};

static crl_net_bufs mlp_bufs(crl_mlp_ws *ws) {
    return (crl_net_bufs){ws->pre, ws->post, ws->ln_xhat, ws->ln_rstd, ws->d0, ws->d1};
}

const float *crl_mlp_forward(const crl_mlp *m, const float *params, crl_mlp_ws *ws,
                             const float *x, int B, const int *head) {
    assert(B >= 0 && B <= ws->max_batch);
    ws->B = B;
    ws->x = x;
    ws->head = head;
    if (B <= 0) return ws->out;
    mlp_ctx c = {.m = m, .params = params};
    const crl_net_bufs bufs = mlp_bufs(ws);
    crl_net_forward(&m->spec, params + m->ln_g, params + m->ln_b, &bufs, &mlp_ops, &c, x,
                    B, head, ws->out);
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
    mlp_ctx c = {m, params, grads, dx_row0, dx_col0, dx_cols};
    const crl_net_bufs bufs = mlp_bufs(ws);
    crl_net_backward(s, params + m->ln_g, grads ? grads + m->ln_g : NULL,
                     grads ? grads + m->ln_b : NULL, &bufs, &mlp_ops, &c, ws->x, R,
                     ws->head, dout, dw_rows, dx);
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
