/* crl subspace: the CSP subspace of policies. An MLP with the crl_mlp
 * architecture whose every Linear layer (output heads included) holds n
 * anchors (W_i, b_i); a forward pass takes one alpha per row, a point of the
 * simplex, and computes sum_i alpha_i (x W_i + b_i) at every Linear layer.
 * Plus anchor management on the flat buffer and the Dirichlet samplers CSP
 * draws its alphas from. See docs/subspace.md.
 *
 * Flat parameter layout (capacity = n_shared + max_anchors * anchor_size):
 *
 *   [ shared: ln_g [h0], ln_b [h0] ][ anchor 0 ][ anchor 1 ] ... [ anchor max-1 ]
 *
 * Every anchor block has the crl_mlp layout minus LayerNorm:
 *   W0 [in x h0], b0 [h0], W1 [h0 x h1], b1, ..., head_W (n_heads x [H x out]),
 *   head_b (n_heads x [out]).
 * Anchors are appended, so the parameters of a subspace with n anchors are the
 * prefix [0, crl_subspace_n_params) of the buffer: adding or removing the last
 * anchor never moves another parameter, and anchor i is one contiguous block.
 * The LayerNorm gain and bias are not a Linear layer and are SHARED by all
 * anchors; they are trainable only while no anchor is frozen (task 1), so that
 * frozen anchors really pin every policy of the old subspace.
 *
 * The forward/backward supply the mixed Linear layer to nn/net.c's layer loop;
 * behind the actor interface the subspace is the CRL_ACTOR_CSP kind
 * (subspace/csp_actor.c, crl_actor_subspace).
 *
 * Knows nothing of MuJoCo, SAC or the CSP schedule (agents/ does that). */
#ifndef CRL_SUBSPACE_H
#define CRL_SUBSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layout and anchor state ---------------------------------------------- */

typedef struct crl_subspace {
    crl_mlp_spec spec;
    int max_anchors;    /* capacity of the buffer, fixed at init */
    int n_anchors;      /* anchors in use, 1..max_anchors */
    int n_frozen;       /* anchors [0, n_frozen) are frozen; >0 also freezes ln_g/ln_b */
    size_t n_shared;    /* floats before anchor 0 (LayerNorm gain + bias, or 0) */
    size_t anchor_size; /* floats per anchor */
    size_t capacity;    /* n_shared + max_anchors * anchor_size */
    size_t ln_g, ln_b;  /* absolute offsets, valid if spec.layernorm_first */
    /* Offsets INSIDE an anchor block (add crl_subspace_anchor_offset). */
    size_t W[CRL_MLP_MAX_HIDDEN], b[CRL_MLP_MAX_HIDDEN];
    size_t head_W, head_b; /* n_heads blocks of [H x out] and [out] */
} crl_subspace;

/* Validate spec (as crl_mlp_init does) and compute the layout for up to
 * max_anchors anchors. Starts with 1 anchor, none frozen. CRL_EINVAL on a bad
 * spec or max_anchors < 1. */
int crl_subspace_init(crl_subspace *s, const crl_mlp_spec *spec, int max_anchors,
                      crl_err *err);

/* Floats in use now: n_shared + n_anchors * anchor_size (a prefix of the
 * buffer; the model size CSP reports). */
size_t crl_subspace_n_params(const crl_subspace *s);
/* Offset of anchor i's block in the flat buffer. */
size_t crl_subspace_anchor_offset(const crl_subspace *s, int i);

/* Anchor 0 with exactly the values crl_mlp_init_params draws from the same
 * rng state (Glorot-uniform weights, zero biases, LayerNorm gain 1 / bias 0);
 * the rest of the capacity is zeroed. params holds s->capacity floats. Sets
 * n_anchors = 1, n_frozen = 0. */
void crl_subspace_init_params(crl_subspace *s, float *params, crl_rng *rng);

/* Mark every anchor in use (and the shared LayerNorm) frozen. */
void crl_subspace_freeze_all(crl_subspace *s);

/* Append an anchor initialised at the mean of the existing ones, element by
 * element: (float)(sum_i (double)theta_i / n), summed in anchor order. No
 * other float of params changes. The new anchor is trainable. CRL_EINVAL if
 * the buffer is full (n_anchors == max_anchors). */
int crl_subspace_add_anchor(crl_subspace *s, float *params, crl_err *err);

/* Drop the last anchor and zero its block, so that after add + remove the
 * whole buffer is bit for bit what it was before the add (as long as frozen
 * entries were left alone, e.g. by the crl_subspace_mask mask). CRL_EINVAL if
 * only one anchor is left. */
int crl_subspace_remove_last(crl_subspace *s, float *params, crl_err *err);

/* Trainable mask over all s->capacity entries, for crl_adam_step: 1 for the
 * anchors [n_frozen, n_anchors) and, if n_frozen == 0, the shared
 * LayerNorm; 0 for frozen anchors and for unused capacity. An optimiser sized
 * crl_subspace_n_params reads the prefix it needs. */
void crl_subspace_mask(const crl_subspace *s, uint8_t *mask);

/* Copy anchor i (and the shared LayerNorm) into the buffer of a plain crl_mlp
 * m with the same spec, so that m computes that anchor's policy. */
void crl_subspace_anchor_to_mlp(const crl_subspace *s, const float *params, int i,
                                const crl_mlp *m, float *mlp_params);
/* Materialise the policy at one point alpha (n_anchors floats) as a plain
 * crl_mlp: every Linear tensor = sum_i alpha_i theta_i (zero terms skipped, so
 * a one-hot alpha copies its anchor exactly). For inference and export with a
 * stored alpha: one ordinary MLP forward instead of n sgemms per layer. */
void crl_subspace_mix_to_mlp(const crl_subspace *s, const float *params,
                             const float *alpha, const crl_mlp *m, float *mlp_params);

/* Multiply-accumulates of one forward row (n_anchors times the MLP's). */
double crl_subspace_macs_per_row(const crl_subspace *s);

/* ---- forward / backward with a per-row alpha ------------------------------ */

/* Workspace for up to max_batch rows, any number of anchors. Holds the last
 * forward's activations, which backward reads. */
typedef struct {
    int max_batch;
    int B;
    int n;              /* anchors of the last forward */
    const float *x;     /* inputs of the last forward (caller keeps them alive) */
    const float *alpha; /* B x n of the last forward (caller keeps it alive) */
    const int *head;    /* per-row head of the last forward, NULL = head 0 */
    int *first;         /* per row: first anchor with alpha != 0, or -1 */
    float *mem;         /* one allocation for all float buffers below */
    float *pre[CRL_MLP_MAX_HIDDEN];  /* mixed Linear outputs */
    float *post[CRL_MLP_MAX_HIDDEN]; /* after LayerNorm/activation */
    float *ln_xhat, *ln_rstd;
    float *out;     /* B x out_dim */
    float *d0, *d1; /* backward deltas, B x max width */
    float *t0, *t1; /* per-anchor scratch (Y_i forward; alpha*dY, dY W_i^T backward) */
} crl_subspace_ws;

int crl_subspace_ws_alloc(crl_subspace_ws *ws, const crl_subspace *s, int max_batch,
                          crl_err *err);
void crl_subspace_ws_free(crl_subspace_ws *ws);

/* Forward B rows of x (B x in_dim); row r uses alpha[r*n .. r*n+n) with
 * n = s->n_anchors (rows are meant to lie on the simplex, which is not
 * checked: the output is linear in alpha). head: per-row head or NULL for
 * head 0. Per Linear layer and anchor one sgemm Y_i = X W_i + b_i, then
 * y_r = sum_i alpha_ri Y_ir over the nonzero alpha_ri in anchor order, the
 * first term a plain product: alpha = e_i reproduces anchor i's crl_mlp bit for
 * bit. Anchors with alpha 0 on every row are skipped. Returns ws->out
 * (B x out_dim). B <= ws->max_batch. */
const float *crl_subspace_forward(const crl_subspace *s, const float *params,
                                  crl_subspace_ws *ws, const float *x, int B,
                                  const float *alpha, const int *head);

/* Backward of the last forward on ws over its first ws->B rows (the caller
 * may lower ws->B first, as for crl_mlp_backward). dout: B x out_dim.
 *  - grads (params layout, >= crl_subspace_n_params floats, may be NULL):
 *    ACCUMULATED from the first dw_rows rows, and only for trainable
 *    entries (anchors [n_frozen, n_anchors), the LayerNorm iff
 *    n_frozen == 0); frozen entries are left untouched and cost nothing.
 *  - dx (B x in_dim, may be NULL): overwritten, all B rows.
 *  - dalpha (B x n_anchors, may be NULL): overwritten, all B rows; the
 *    gradient w.r.t. the (unconstrained) alpha, sum over Linear layers of
 *    <Y_ir, dY_r>. */
void crl_subspace_backward(const crl_subspace *s, const float *params, float *grads,
                           crl_subspace_ws *ws, const float *dout, int dw_rows, float *dx,
                           float *dalpha);

/* ---- Dirichlet sampling ----------------------------------------------------- */

/* Gamma(shape, 1) by Marsaglia-Tsang (shape >= 1) and, for shape < 1, a
 * Gamma(shape + 1) draw times U^(1/shape). NaN if shape is not > 0. */
double crl_gamma_sample(crl_rng *rng, double shape);

/* Dirichlet(conc[0..n)) into out[0..n) (floats, >= 0, summing to 1 up to
 * float rounding): normalised Gamma(conc_i) draws. CRL_EINVAL if n < 1 or a
 * concentration is not > 0. */
int crl_dirichlet_sample(crl_rng *rng, const double *conc, int n, float *out,
                         crl_err *err);
/* Flat Dirichlet(1, ..., 1) over n anchors. */
int crl_dirichlet_flat(crl_rng *rng, int n, float *out, crl_err *err);
/* Peaked Dirichlet(1, ..., 1, n^2): leans to the last (newest) anchor. */
int crl_dirichlet_peaked(crl_rng *rng, int n, float *out, crl_err *err);
/* The old subspace: flat Dirichlet over the first n - 1 anchors, exactly 0 on
 * the last. For n == 1 (no old subspace) out = [1]. */
int crl_dirichlet_old(crl_rng *rng, int n, float *out, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
