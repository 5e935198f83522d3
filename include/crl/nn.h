/* crl nn: flat parameter buffers, layers with explicit forward/backward pairs,
 * MLPs with multi-head outputs, the tanh-Gaussian policy head, and Adam.
 *
 * Layout conventions (llm.c style):
 *  - Every network's parameters live in ONE contiguous float buffer owned by
 *    the caller; a crl_mlp only records offsets into it. Gradients and Adam
 *    moments are buffers of the same length and layout.
 *  - Activations are row-major B x D. Linear weights are stored in x out, so
 *    y = x W + b is a plain sgemm.
 *  - A workspace (crl_mlp_ws) is sized once for the largest batch; forward
 *    and backward never allocate.
 * Knows nothing of MuJoCo or environments. */
#ifndef CRL_NN_H
#define CRL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CRL_ACT_NONE = 0,
    CRL_ACT_TANH = 1,
    CRL_ACT_RELU = 2,
    CRL_ACT_LRELU = 3
} crl_act;

/* ---- single layers (exposed for tests, CSP and L2M) ---------------------- */

/* y[B x out] = x[B x in] W[in x out] + b[out] (b may be NULL). */
void crl_linear_forward(int B, int in, int out, const float *x, const float *W,
                        const float *b, float *y);
/* Backward of crl_linear_forward. dW/db (may be NULL) are ACCUMULATED (+=)
 * from the first dw_rows rows only; dx (may be NULL) is OVERWRITTEN for all B
 * rows. Using only the first rows for dW lets one stacked batch carry two
 * losses of which only the first trains the weights. */
void crl_linear_backward(int B, int in, int out, const float *x, const float *W,
                         const float *dy, float *dW, float *db, float *dx, int dw_rows);

/* LayerNorm over the last dim with gain g and bias b. Saves xhat[B x D] and
 * rstd[B] for backward. */
void crl_layernorm_forward(int B, int D, const float *x, const float *g, const float *b,
                           float eps, float *y, float *xhat, float *rstd);
/* dg/db accumulated (+=) over the first dw_rows rows; dx overwritten, may
 * alias dy. */
void crl_layernorm_backward(int B, int D, const float *dy, const float *xhat,
                            const float *rstd, const float *g, float *dg, float *db,
                            float *dx, int dw_rows);

/* Elementwise activation; y may alias x. */
void crl_act_forward(crl_act a, float slope, size_t n, const float *x, float *y);
/* Backward from the activation OUTPUT y (valid for tanh, relu and leaky relu
 * with slope > 0); dx may alias dy. */
void crl_act_backward(crl_act a, float slope, size_t n, const float *y, const float *dy,
                      float *dx);

/* ---- MLP ------------------------------------------------------------------
 * The layer loop (LayerNorm, activations, heads) is nn/net.c's, shared with
 * the CSP subspace and the L2M pool; an MLP supplies plain Linear layers.
 * Behind the actor interface it is the CRL_ACTOR_MLP kind (actor.h). */

#define CRL_MLP_MAX_HIDDEN 8

typedef struct {
    int in_dim;
    int n_hidden;                   /* hidden layers, >= 1 */
    int hidden[CRL_MLP_MAX_HIDDEN]; /* widths */
    int out_dim;                    /* outputs per head */
    int n_heads;                    /* >= 1: one output head per task index */
    int layernorm_first;            /* LayerNorm after the first Linear */
    crl_act first_act;              /* activation after layer 1 (CW: tanh) */
    crl_act act;                    /* activation after layers 2.. (CW: lrelu) */
    float lrelu_slope;              /* CW: 0.2 */
    float ln_eps;                   /* CW (Keras default): 1e-3 */
} crl_mlp_spec;

/* Fill spec with the Continual World shape: hidden layers of `width`,
 * LayerNorm + tanh after layer 1, leaky ReLU(0.2) after the others. */
void crl_mlp_spec_cw(crl_mlp_spec *s, int in_dim, int out_dim, int n_heads, int n_hidden,
                     int width);

/* Offsets of each tensor in the flat parameter buffer. */
typedef struct {
    crl_mlp_spec spec;
    size_t n_params;
    size_t W[CRL_MLP_MAX_HIDDEN], b[CRL_MLP_MAX_HIDDEN]; /* hidden Linear layers */
    size_t ln_g, ln_b;     /* valid if spec.layernorm_first */
    size_t head_W, head_b; /* n_heads blocks of [H x out] and [out] */
} crl_mlp;

/* Validate spec and compute the layout. CRL_EINVAL on a bad spec. */
int crl_mlp_init(crl_mlp *m, const crl_mlp_spec *s, crl_err *err);
/* Glorot-uniform weights, zero biases, LayerNorm gain 1 / bias 0. */
void crl_mlp_init_params(const crl_mlp *m, float *params, crl_rng *rng);

/* Workspace for one MLP at up to max_batch rows. Holds the activations of the
 * last forward call, which backward reads. */
typedef struct {
    int max_batch;
    int B;           /* rows of the last forward */
    const float *x;  /* input of the last forward (caller keeps it alive) */
    const int *head; /* per-row head of the last forward, NULL = head 0 */
    float *mem;      /* one allocation for everything below */
    float *pre[CRL_MLP_MAX_HIDDEN];  /* Linear outputs */
    float *post[CRL_MLP_MAX_HIDDEN]; /* after LayerNorm/activation */
    float *ln_xhat, *ln_rstd;
    float *out;     /* B x out_dim */
    float *d0, *d1; /* backward scratch, B x max width */
} crl_mlp_ws;

int crl_mlp_ws_alloc(crl_mlp_ws *ws, const crl_mlp *m, int max_batch, crl_err *err);
void crl_mlp_ws_free(crl_mlp_ws *ws);

/* Forward B rows of x (B x in_dim). head: per-row head index, or NULL for
 * head 0. Returns ws->out (B x out_dim). B <= ws->max_batch. */
const float *crl_mlp_forward(const crl_mlp *m, const float *params, crl_mlp_ws *ws,
                             const float *x, int B, const int *head);
/* Backward of the last forward on ws, over its first ws->B rows. A caller
 * may lower ws->B before the call to backprop only a prefix of the batch
 * (row-major buffers make the prefix contiguous). dout: B x out_dim. grads (same layout
 * as params, may be NULL for no weight gradients) is ACCUMULATED from the
 * first dw_rows rows; dx (B x in_dim, may be NULL) is overwritten. */
void crl_mlp_backward(const crl_mlp *m, const float *params, float *grads, crl_mlp_ws *ws,
                      const float *dout, int dw_rows, float *dx);

/* As crl_mlp_backward, but dx receives only rows [dx_row0, B) and input
 * columns [dx_col0, dx_col0 + dx_cols), as a compact (B - dx_row0) x dx_cols
 * block (SAC needs dQ/da for the actor-loss rows only). */
void crl_mlp_backward_dx_block(const crl_mlp *m, const float *params, float *grads,
                               crl_mlp_ws *ws, const float *dout, int dw_rows, float *dx,
                               int dx_row0, int dx_col0, int dx_cols);

/* Keep rows [0, r0) of the last forward on ws and, after them, the n rows
 * listed in rows (ascending, each >= r0), moved up to r0, r0 + 1, ...; ws->B
 * becomes r0 + n. Only what backward reads moves (activations, LayerNorm
 * state, heads), so a following backward may take weight gradients from
 * rows below r0 only: the input x is the caller's and stays where it is.
 * ws->out is not touched (others may still read the forward's outputs). With per-row
 * heads, head_out (ws->max_batch ints) receives the kept rows' heads and ws->head points
 * to it. SAC drops the actor-loss rows that do not reach a critic (the other critic is
 * the minimum). */
void crl_mlp_ws_keep_rows(const crl_mlp *m, crl_mlp_ws *ws, int r0, const int *rows,
                          int n, int *head_out);

/* Multiply-accumulates of one forward row (for FLOP accounting). */
double crl_mlp_macs_per_row(const crl_mlp *m);

/* ---- tanh-Gaussian policy head -------------------------------------------- */

#define CRL_LOG_STD_MIN (-20.0f)
#define CRL_LOG_STD_MAX (2.0f)

/* out: B x 2A, columns [0,A) are the mean, [A,2A) the raw log-std (clipped to
 * [CRL_LOG_STD_MIN, CRL_LOG_STD_MAX]). eps: B x A standard normals, or NULL
 * for the deterministic action tanh(mean). Writes act (B x A) and, if
 * non-NULL, logp (B) = log N(u; mu, std) - sum log(1 - tanh(u)^2) with
 * u = mu + std * eps, computed in the stable softplus form. */
void crl_tgauss_forward(int B, int A, const float *out, const float *eps, float *act,
                        float *logp);
/* Gradient w.r.t. out (B x 2A, overwritten) of a loss with dL/dact (B x A)
 * and dL/dlogp (B); either may be NULL (zero). Same out/eps as forward
 * (reparameterised: eps is held fixed). */
void crl_tgauss_backward(int B, int A, const float *out, const float *eps,
                         const float *dact, const float *dlogp, float *dout);

/* ---- optimisation helpers ------------------------------------------------- */

typedef struct {
    size_t n;
    float lr, beta1, beta2, eps;
    int64_t t;
    float *m, *v;
} crl_adam;

/* Allocates zeroed moments for n parameters. beta 0.9/0.999, eps 1e-7
 * (the Keras defaults Continual World ran with). */
int crl_adam_init(crl_adam *a, size_t n, float lr, crl_err *err);
void crl_adam_free(crl_adam *a);
/* Zero the moments and the step counter (Continual World does this at a task
 * change). */
void crl_adam_reset(crl_adam *a);
/* One Adam step. trainable (may be NULL): entries that are 0 are frozen, and
 * neither the parameter nor its moments change. */
void crl_adam_step(crl_adam *a, float *params, const float *grads,
                   const uint8_t *trainable);

/* The same step split in pieces, so that threads can update disjoint ranges
 * of one optimiser: crl_adam_tick once, then crl_adam_step_range over ranges
 * [lo, hi) that cover [0, n). Equal, bit for bit, to crl_adam_step. */
void crl_adam_tick(crl_adam *a);
void crl_adam_step_range(const crl_adam *a, float *params, const float *grads,
                         const uint8_t *trainable, size_t lo, size_t hi);

/* target = polyak * target + (1 - polyak) * src. */
void crl_polyak(float *target, const float *src, size_t n, float polyak);
/* 1 if every entry is finite. */
int crl_all_finite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
