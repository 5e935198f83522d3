/* The network skeleton shared by the plain MLP, the CSP subspace and the L2M
 * pool: the hidden layers' LayerNorm and activations and the output heads'
 * choice between one common head (sgemm) and per-row heads (a row loop) are
 * written once here; each network supplies only its own Linear operation per
 * layer (crl_net_ops). Internal to crl (nn/, subspace/). */
#ifndef CRL_NN_NET_H
#define CRL_NN_NET_H

#include "crl/nn.h"

/* The activations a forward saves and a backward reads. post[l] may alias
 * pre[l] (activations run in place except after the LayerNorm). */
typedef struct {
    float *const *pre, *const *post;
    float *ln_xhat, *ln_rstd;
    float *d0, *d1; /* backward deltas, rows x max width */
} crl_net_bufs;

typedef struct {
    /* Hidden Linear layer l: y (B x out) from x (B x in). Nonzero aborts the
     * forward with that status. */
    int (*fwd)(void *ctx, int l, int B, int in, int out, const float *x, float *y);
    /* Output heads: y (B x O) from x (B x H); hc is the head every row shares,
     * or -1 for per-row heads head[r]. */
    void (*head_fwd)(void *ctx, int B, int H, int O, const float *x, const int *head,
                     int hc, float *y);
    /* Backward of hidden layer l over R rows: dy = dL/dy (R x out, may be
     * used as scratch); weight gradients from the first dw_rows rows; dx
     * (R x in) overwritten, or NULL (layer 0: the caller's input gradient). */
    void (*bwd)(void *ctx, int l, int R, int in, int out, const float *x, float *dy,
                float *dx, int dw_rows);
    void (*head_bwd)(void *ctx, int R, int H, int O, const float *x, const int *head,
                     int hc, const float *dout, float *dx, int dw_rows);
} crl_net_ops;

/* Forward B rows of x through the hidden layers and the heads into out. The
 * first layer's LayerNorm uses ln_g/ln_b (if spec->layernorm_first). */
int crl_net_forward(const crl_mlp_spec *spec, const float *ln_g, const float *ln_b,
                    const crl_net_bufs *bufs, const crl_net_ops *ops, void *ctx,
                    const float *x, int B, const int *head, float *out);
/* Backward over R rows of the last forward. ln_dg/ln_db (may be NULL) are
 * ACCUMULATED from the first dw_rows rows; dx is passed to layer 0's bwd.
 * Calls only the backward ops (fwd/head_fwd may be NULL). */
void crl_net_backward(const crl_mlp_spec *spec, const float *ln_g, float *ln_dg,
                      float *ln_db, const crl_net_bufs *bufs, const crl_net_ops *ops,
                      void *ctx, const float *x, int R, const int *head,
                      const float *dout, int dw_rows, float *dx);

/* Sees d = dL/d(first LayerNorm output) (R x h, after the first activation's
 * backward) before the LayerNorm backward overwrites it. */
typedef void (*crl_net_ln_seen_fn)(void *ctx, int R, int h, const float *d);
/* crl_net_backward that also calls ln_seen(ctx, ...) (may be NULL; never
 * without LayerNorm): EWC's Fisher needs those deltas per sample. */
void crl_net_backward_seen(const crl_mlp_spec *spec, const float *ln_g, float *ln_dg,
                           float *ln_db, const crl_net_bufs *bufs, const crl_net_ops *ops,
                           void *ctx, const float *x, int R, const int *head,
                           const float *dout, int dw_rows, float *dx,
                           crl_net_ln_seen_fn ln_seen);

/* The first layer's normalisation: y = first_act(LayerNorm(x)) saving
 * xhat/rstd, or y = first_act(x) without LayerNorm (B x h). */
void crl_net_first_norm(const crl_mlp_spec *spec, int B, const float *x, const float *g,
                        const float *b, float *y, float *xhat, float *rstd);

/* Heads stored as blocks W [H x O] and b [O] per head. hc >= 0: every row
 * uses head hc (one sgemm); hc < 0: row r uses head[r] (a row loop, which
 * costs what the sgemm would for a head this small), skipping rows whose
 * keep[r * keep_stride] is 0 when keep is non-NULL. */
void crl_net_head_forward(int B, int H, int O, const float *x, const float *W,
                          const float *b, const int *head, int hc, const float *keep,
                          int keep_stride, float *y);
/* Backward of crl_net_head_forward (keep NULL): dx (R x H) overwritten; gW/gb
 * (may be NULL) ACCUMULATED from the first dw_rows rows. */
void crl_net_head_backward(int R, int H, int O, const float *x, const float *W,
                           const int *head, int hc, const float *dout, float *gW,
                           float *gb, float *dx, int dw_rows);

/* Head shared by rows [0, n), or -1 if they differ. NULL means head 0. */
int crl_net_common_head(const int *head, int n);
/* Glorot-uniform fan_in x fan_out weights from rng. */
void crl_net_glorot(float *W, int fan_in, int fan_out, crl_rng *rng);
/* n rounded up to a multiple of 16 floats (64-byte workspace slices). */
size_t crl_net_pad16(size_t n);
/* Widest of the input, hidden and output layers. */
int crl_net_max_width(const crl_mlp_spec *spec);

#endif
