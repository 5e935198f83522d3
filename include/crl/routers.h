/* crl routers: the math of three routers for the L2M pool (include/crl/pool.h),
 * as plain functions over the pool's flat layout and raw float buffers. No
 * routing table here: wiring them into the pool's routing is a later step.
 * See docs/routers.md.
 *
 *  - arrow (Ostapenko et al. 2024, "Towards Modular LLMs by Building and
 *    Reusing a Library of LoRAs"): zero-shot routing from the modulators
 *    themselves. Per modulator m and hidden layer l, the prototype v_{m,l}
 *    (in_l floats, unit norm) is the top singular direction of the layer's
 *    update on the INPUT side: the top eigenvector of Delta Delta^T, where
 *    Delta (in_l x out_l) is the input-dependent change of the Linear output,
 *    z = x W + b  ->  z + x Delta.  Rows are scored by sum_l |<h_l, v_{m,l}>|.
 *  - l2r ("learning to route"): a small classifier query -> modulator index,
 *    trained with Adam on cross-entropy over a memory of (query, label) pairs.
 *  - soft (SMEAR, Muqeeth et al. 2023, "Soft Merging of Experts with Adaptive
 *    Routing"): the top-k modulators' parameter blocks averaged with softmax
 *    weights, and the backward of that average.
 *
 * Allocation: workspaces are sized once (crl_arrow_ws_floats, crl_l2r_init);
 * scoring, predicting, merging and their backward never allocate. */
#ifndef CRL_ROUTERS_H
#define CRL_ROUTERS_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "nn.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- arrow (subspace/router_arrow.c) ---------------------------------------- */

/* Floats of one modulator's prototype: sum over hidden layers of in_l
 * (in_0 = the base's in_dim, in_l = hidden[l-1]). Prototypes are stored
 * M x crl_arrow_proto_dim, modulator m's row holding v_{m,0} | v_{m,1} | ... */
size_t crl_arrow_proto_dim(const crl_pool *p);
/* Offset of layer l's part inside a prototype row. */
size_t crl_arrow_proto_offset(const crl_pool *p, int l);

/* Workspace floats crl_arrow_prototypes needs for this pool (LAPACK's own
 * workspace included, found by its size query). CRL_ENOTFOUND if OpenBLAS has
 * no LAPACK. */
int crl_arrow_ws_floats(const crl_pool *p, size_t *n, crl_err *err);

/* Prototypes of modulators [m0, m1) into protos + m * proto_dim (the other
 * rows are not touched). Per layer l, with s the LoRA scale:
 *   LoRA:   Delta = s A_l B_l, whose left singular vectors are U_A times those
 *           of the r x out core diag(S_A) V_A^T (s B_l), A_l = U_A S_A V_A^T
 *           (two small SVDs; exact, see docs/routers.md);
 *   (IA)^3: Delta = W_l diag(g_l - 1), W_l from base_params (in_l x out_l).
 * v = the top left singular vector of Delta (in_l floats, unit norm), with the
 * sign that makes its largest-magnitude entry positive (first such entry on a
 * tie). Delta = 0 (a fresh modulator: LoRA B_l = 0, IA3 g_l = 1) gives v = 0,
 * hence a score of 0 for that layer. base_params is read for IA3 only (may be
 * NULL for LoRA). ws: ws_n >= crl_arrow_ws_floats floats. CRL_EINVAL on bad
 * arguments or a too-small workspace, errors of crl_sgesvd otherwise. */
int crl_arrow_prototypes(const crl_pool *p, const float *base_params, const float *params,
                         int m0, int m1, float *protos, float *ws, size_t ws_n,
                         crl_err *err);

/* Scores of B rows against every modulator: scores[r * M + m] (doubles) =
 *   sum_l |<h_l[r], v_{m,l}>| / (normalise ? |h_l[r]| : 1),
 * with h[l] the B x in_l inputs of hidden layer l (h[0] = the observations);
 * a row with h_l[r] = 0 adds 0 for that layer when normalising. The dot
 * products are float with eight partial sums in a fixed order (as the pool's
 * cosine), the sums and norms double. normalise = 1 makes every layer count
 * equally (each term is |cos| in [0, 1]); 0 is the paper's raw |<h, v>|. */
void crl_arrow_scores(const crl_pool *p, const float *protos, const float *const *h,
                      int B, int normalise, double *scores);

/* ---- l2r (subspace/router_l2r.c) -------------------------------------------- */

#define CRL_L2R_DEFAULT_PER_TASK 200
#define CRL_L2R_DEFAULT_HIDDEN   64

typedef struct crl_l2r {
    int D;         /* query floats */
    int K;         /* classes (modulators) */
    int H;         /* hidden units (tanh); 0 = linear (logits = q W + b) */
    int max_batch; /* rows per workspace pass (predict, loss chunks) */
    uint64_t seed;
    int64_t n_trains; /* crl_l2r_train calls so far (each shuffles its own stream) */
    /* Parameter layout (offsets in params): H > 0: W1 [D x H], b1 [H],
     * W2 [H x K], b2 [K]; H = 0: W2 [D x K], b2 [K] (W1, b1 unused). */
    size_t W1, b1, W2, b2, n_params;
    float *params, *grads;
    crl_adam adam;
    float *ws; /* max_batch x (2 H + K) floats */
    /* Memory of (query, label) pairs: n_mem rows. */
    int n_mem, cap_mem;
    float *mem_q;   /* n_mem x D */
    int32_t *mem_y; /* n_mem */
} crl_l2r;

/* D >= 1, K >= 2, hidden >= 0 (0: linear), max_batch >= 1. Weights
 * Glorot-uniform from seed, biases 0. CRL_EINVAL / CRL_ENOMEM. */
int crl_l2r_init(crl_l2r *r, int D, int K, int hidden, int max_batch, uint64_t seed,
                 crl_err *err);
void crl_l2r_free(crl_l2r *r);

/* Append n (query, label) rows to the memory (q: n x D). keep < n keeps
 * `keep` rows drawn uniformly without replacement, in ascending row order,
 * from a stream of the router's seed and the memory size (deterministic);
 * keep >= n (or < 0) keeps all. CRL_EINVAL on a label outside [0, K) or a
 * non-finite query; CRL_ENOMEM. Nothing is added on error. */
int crl_l2r_add(crl_l2r *r, const float *q, int n, int label, int keep, crl_err *err);

/* Mean cross-entropy of n rows (X: n x D, y: n labels in [0, K), not
 * checked: the memory's labels are checked when added) and, if grads is
 * non-NULL, its gradient (n_params floats, overwritten). Rows are processed
 * in chunks of max_batch; no allocation. */
double crl_l2r_loss(crl_l2r *r, const float *X, const int32_t *y, int n, float *grads);

/* Adam (moments reset, learning rate lr) for `epochs` passes over the memory
 * in minibatches of `batch` rows (batch <= 0 or >= n_mem: full batch, no
 * shuffle), each epoch in an order drawn from the stream (seed, n_trains).
 * Deterministic for a given seed and call sequence. Returns the mean loss of
 * the last epoch in *last_loss (may be NULL). CRL_EINVAL on an empty memory
 * or bad arguments, CRL_ENAN on a non-finite loss, CRL_ENOMEM. */
int crl_l2r_train(crl_l2r *r, int epochs, float lr, int batch, double *last_loss,
                  crl_err *err);

/* logits (B x K) of B queries. No allocation. */
void crl_l2r_logits(crl_l2r *r, const float *q, int B, float *logits);
/* sel[i] = argmax of row i's logits (first index on ties). Uses the
 * workspace; no allocation. */
void crl_l2r_predict(crl_l2r *r, const float *q, int B, int *sel);

/* Blob of the router (sizes, seed, n_trains, parameters, memory) for a
 * checkpoint; *blob is malloc'ed (free it). Adam's moments are not saved:
 * every train call starts them from zero. */
int crl_l2r_save(const crl_l2r *r, unsigned char **blob, size_t *n, crl_err *err);
/* Rebuild a router from a blob (r is initialised; max_batch as in init).
 * CRL_ECORRUPT on a bad blob (r is left empty). */
int crl_l2r_load(crl_l2r *r, const void *blob, size_t n, int max_batch, crl_err *err);

/* ---- soft merging (subspace/router_soft.c) ------------------------------------ */

/* The k best of M scores (first index on ties; -INFINITY never chosen), in
 * decreasing score order, and their weights w = softmax(score / temperature)
 * over the chosen k (computed in double). k = 1 gives w[0] = 1.0f exactly.
 * CRL_EINVAL on k outside [1, M], temperature <= 0 or not finite, a NaN
 * score, or fewer than k finite scores. */
int crl_soft_select(const double *scores, int M, int k, float temperature, int *idx,
                    float *w, crl_err *err);

/* block (p->mod_size floats) = sum_i w[i] * theta_{idx[i]}: every parameter of
 * the modulator block averaged separately (LoRA: A and B each, not A B).
 * k = 1 copies theta_{idx[0]} (bit for bit, whatever w[0]). */
void crl_soft_merge(const crl_pool *p, const float *params, const int *idx,
                    const float *w, int k, float *block);

/* Backward of the merge for a gradient gblock (mod_size floats) of the merged
 * block: grads (pool layout) += w[i] * gblock in modulator idx[i]'s block
 * (k = 1 adds gblock itself). Keys and other modulators are not touched. */
void crl_soft_merge_backward(const crl_pool *p, const float *gblock, const int *idx,
                             const float *w, int k, float *grads);

/* Gradient of the loss with respect to the weights: dw[i] = <gblock, theta_idx[i]>
 * (double), and through the softmax to the chosen scores:
 * dscore[i] = w[i] (dw[i] - sum_j w[j] dw[j]) / temperature. Unchosen scores
 * have no gradient (top-k is a discrete choice). */
void crl_soft_weight_grads(const crl_pool *p, const float *params, const float *gblock,
                           const int *idx, int k, double *dw);
void crl_soft_score_grads(const float *w, const double *dw, int k, float temperature,
                          double *dscore);

#ifdef __cplusplus
}
#endif
#endif
