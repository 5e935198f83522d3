/* The network skeleton (nn/net.h): the one layer loop of every network. */
#include "nn/net.h"

#include <assert.h>
#include <math.h>
#include <string.h>

int crl_net_common_head(const int *head, int n) {
    if (!head || n <= 0) return 0;
    const int h0 = head[0];
    int diff = 0;
    for (int r = 1; r < n; r++) diff |= head[r] ^ h0;
    return diff ? -1 : h0;
}

void crl_net_glorot(float *W, int fan_in, int fan_out, crl_rng *rng) {
    double lim = sqrt(6.0 / (double)(fan_in + fan_out));
    size_t n = (size_t)fan_in * fan_out;
    for (size_t i = 0; i < n; i++) W[i] = (float)crl_rng_range(rng, -lim, lim);
}

size_t crl_net_pad16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

int crl_net_max_width(const crl_mlp_spec *p) {
    int w = p->out_dim > p->in_dim ? p->out_dim : p->in_dim;
    for (int i = 0; i < p->n_hidden; i++)
        if (p->hidden[i] > w) w = p->hidden[i];
    return w;
}

void crl_net_first_norm(const crl_mlp_spec *s, int B, const float *x, const float *g,
                        const float *b, float *y, float *xhat, float *rstd) {
    const int h = s->hidden[0];
    if (s->layernorm_first) {
        crl_layernorm_forward(B, h, x, g, b, s->ln_eps, y, xhat, rstd);
        crl_act_forward(s->first_act, s->lrelu_slope, (size_t)B * h, y, y);
    } else {
        crl_act_forward(s->first_act, s->lrelu_slope, (size_t)B * h, x, y);
    }
}

void crl_net_head_forward(int B, int H, int O, const float *x, const float *W,
                          const float *b, const int *head, int hc, const float *keep,
                          int keep_stride, float *y) {
    const size_t blk = (size_t)H * O;
    if (hc >= 0) {
        crl_linear_forward(B, H, O, x, W + hc * blk, b + (size_t)hc * O, y);
        return;
    }
    for (int r = 0; r < B; r++) {
        if (keep && keep[(size_t)r * keep_stride] == 0.0f) continue;
        const int hr = head[r];
        assert(hr >= 0);
        const float *Wr = W + hr * blk;
        const float *xr = x + (size_t)r * H;
        float *restrict yr = y + (size_t)r * O;
        memcpy(yr, b + (size_t)hr * O, (size_t)O * sizeof *yr);
        for (int k = 0; k < H; k++) {
            const float xk = xr[k];
            const float *restrict wk = Wr + (size_t)k * O;
            for (int j = 0; j < O; j++) yr[j] += xk * wk[j];
        }
    }
}

void crl_net_head_backward(int R, int H, int O, const float *x, const float *W,
                           const int *head, int hc, const float *dout, float *gW,
                           float *gb, float *dx, int dw_rows) {
    const size_t blk = (size_t)H * O;
    if (hc >= 0) {
        crl_linear_backward(R, H, O, x, W + hc * blk, dout, gW ? gW + hc * blk : NULL,
                            gb ? gb + (size_t)hc * O : NULL, dx, dw_rows);
        return;
    }
    for (int r = 0; r < R; r++) {
        const int hr = head[r];
        const float *restrict Wr = W + hr * blk;
        const float *restrict dr = dout + (size_t)r * O;
        const float *restrict xr = x + (size_t)r * H;
        float *restrict dxr = dx + (size_t)r * H;
        for (int k = 0; k < H; k++) {
            const float *restrict wk = Wr + (size_t)k * O;
            float acc = 0.0f;
            for (int j = 0; j < O; j++) acc += dr[j] * wk[j];
            dxr[k] = acc;
        }
        if (r < dw_rows && gW) {
            float *restrict gWr = gW + hr * blk;
            float *restrict gbr = gb + (size_t)hr * O;
            for (int j = 0; j < O; j++) gbr[j] += dr[j];
            for (int k = 0; k < H; k++) {
                const float xk = xr[k];
                float *restrict gk = gWr + (size_t)k * O;
                for (int j = 0; j < O; j++) gk[j] += xk * dr[j];
            }
        }
    }
}

int crl_net_forward(const crl_mlp_spec *s, const float *ln_g, const float *ln_b,
                    const crl_net_bufs *bufs, const crl_net_ops *ops, void *ctx,
                    const float *x, int B, const int *head, float *out) {
    const float *in = x;
    int prev = s->in_dim;
    for (int l = 0; l < s->n_hidden; l++) {
        const int h = s->hidden[l];
        int rc = ops->fwd(ctx, l, B, prev, h, in, bufs->pre[l]);
        if (rc) return rc;
        if (l == 0)
            crl_net_first_norm(s, B, bufs->pre[0], ln_g, ln_b, bufs->post[0],
                               bufs->ln_xhat, bufs->ln_rstd);
        else
            crl_act_forward(s->act, s->lrelu_slope, (size_t)B * h, bufs->pre[l],
                            bufs->post[l]);
        in = bufs->post[l];
        prev = h;
    }
    ops->head_fwd(ctx, B, prev, s->out_dim, in, head, crl_net_common_head(head, B), out);
    return 0;
}

void crl_net_backward_seen(const crl_mlp_spec *s, const float *ln_g, float *ln_dg,
                           float *ln_db, const crl_net_bufs *bufs, const crl_net_ops *ops,
                           void *ctx, const float *x, int R, const int *head,
                           const float *dout, int dw_rows, float *dx,
                           crl_net_ln_seen_fn ln_seen) {
    const int L = s->n_hidden, H = s->hidden[L - 1], O = s->out_dim;
    float *d = bufs->d0, *dn = bufs->d1;
    ops->head_bwd(ctx, R, H, O, bufs->post[L - 1], head, crl_net_common_head(head, R),
                  dout, d, dw_rows);
    /* Hidden layers, last to first; d holds dL/d(post[l]) for R rows. */
    for (int l = L - 1; l >= 0; l--) {
        const int h = s->hidden[l];
        const size_t n = (size_t)R * h;
        if (l == 0 && s->layernorm_first) {
            crl_act_backward(s->first_act, s->lrelu_slope, n, bufs->post[0], d, d);
            if (ln_seen) ln_seen(ctx, R, h, d);
            crl_layernorm_backward(R, h, d, bufs->ln_xhat, bufs->ln_rstd, ln_g, ln_dg,
                                   ln_db, d, dw_rows);
        } else {
            crl_act_backward(l == 0 ? s->first_act : s->act, s->lrelu_slope, n,
                             bufs->post[l], d, d);
        }
        const int prev = l == 0 ? s->in_dim : s->hidden[l - 1];
        const float *in = l == 0 ? x : bufs->post[l - 1];
        ops->bwd(ctx, l, R, prev, h, in, d, l == 0 ? dx : dn, dw_rows);
        float *t = d;
        d = dn;
        dn = t;
    }
}

void crl_net_backward(const crl_mlp_spec *s, const float *ln_g, float *ln_dg,
                      float *ln_db, const crl_net_bufs *bufs, const crl_net_ops *ops,
                      void *ctx, const float *x, int R, const int *head,
                      const float *dout, int dw_rows, float *dx) {
    crl_net_backward_seen(s, ln_g, ln_dg, ln_db, bufs, ops, ctx, x, R, head, dout,
                          dw_rows, dx, NULL);
}
