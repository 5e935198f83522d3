/* A learned router: query -> modulator index by a small classifier (linear or
 * one tanh hidden layer), trained with Adam on mean cross-entropy over a
 * memory of (query, label) pairs. See include/crl/routers.h and
 * docs/routers.md. */
#include "crl/routers.h"

#include "core/blob.h"
#include "crl/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char L2R_MAGIC[8] = {'C', 'R', 'L', 'L', '2', 'R', '0', '1'};

static void layout(crl_l2r *r) {
    size_t off = 0;
    if (r->H > 0) {
        r->W1 = off;
        off += (size_t)r->D * r->H;
        r->b1 = off;
        off += (size_t)r->H;
    } else {
        r->W1 = r->b1 = 0;
    }
    r->W2 = off;
    off += (size_t)(r->H > 0 ? r->H : r->D) * r->K;
    r->b2 = off;
    off += (size_t)r->K;
    r->n_params = off;
}

static int alloc_bufs(crl_l2r *r, crl_err *err) {
    r->params = calloc(r->n_params, sizeof *r->params);
    r->grads = calloc(r->n_params, sizeof *r->grads);
    r->ws = calloc((size_t)r->max_batch * (2 * (size_t)r->H + r->K), sizeof *r->ws);
    if (!r->params || !r->grads || !r->ws) {
        crl_l2r_free(r);
        return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
    }
    int rc = crl_adam_init(&r->adam, r->n_params, 1e-3f, err);
    if (rc != CRL_OK) crl_l2r_free(r);
    return rc;
}

static int check_sizes(int D, int K, int hidden, int max_batch, crl_err *err) {
    if (D < 1 || K < 2 || hidden < 0 || max_batch < 1)
        return crl_errf(
            err, CRL_EINVAL,
            "l2r: sizes D %d (>= 1), K %d (>= 2), hidden %d (>= 0), max batch "
            "%d (>= 1)",
            D, K, hidden, max_batch);
    if ((size_t)D * (size_t)(hidden > 0 ? hidden : K) > ((size_t)1 << 28))
        return crl_errf(err, CRL_EINVAL, "l2r: %d x %d weights is too large", D,
                        hidden > 0 ? hidden : K);
    return CRL_OK;
}

static void glorot(float *w, int fan_in, int fan_out, crl_rng *g) {
    const double b = sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < (size_t)fan_in * fan_out; i++)
        w[i] = (float)crl_rng_range(g, -b, b);
}

int crl_l2r_init(crl_l2r *r, int D, int K, int hidden, int max_batch, uint64_t seed,
                 crl_err *err) {
    if (!r) return crl_errf(err, CRL_EINVAL, "l2r: NULL router");
    memset(r, 0, sizeof *r);
    int rc = check_sizes(D, K, hidden, max_batch, err);
    if (rc != CRL_OK) return rc;
    r->D = D;
    r->K = K;
    r->H = hidden;
    r->max_batch = max_batch;
    r->seed = seed;
    layout(r);
    rc = alloc_bufs(r, err);
    if (rc != CRL_OK) return rc;
    crl_rng g;
    crl_rng_seed_stream(&g, seed, 0);
    if (r->H > 0) glorot(r->params + r->W1, D, r->H, &g);
    glorot(r->params + r->W2, r->H > 0 ? r->H : D, K, &g);
    return CRL_OK;
}

void crl_l2r_free(crl_l2r *r) {
    if (!r) return;
    free(r->params);
    free(r->grads);
    free(r->ws);
    free(r->mem_q);
    free(r->mem_y);
    crl_adam_free(&r->adam);
    memset(r, 0, sizeof *r);
}

int crl_l2r_add(crl_l2r *r, const float *q, int n, int label, int keep, crl_err *err) {
    if (!r || (!q && n > 0) || n < 0) return crl_errf(err, CRL_EINVAL, "l2r: bad rows");
    if (label < 0 || label >= r->K)
        return crl_errf(err, CRL_EINVAL, "l2r: label %d outside [0, %d)", label, r->K);
    for (size_t i = 0; i < (size_t)n * r->D; i++)
        if (!isfinite(q[i]))
            return crl_errf(err, CRL_EINVAL, "l2r: query row %zu is not finite",
                            i / (size_t)r->D);
    const int take = (keep < 0 || keep >= n) ? n : keep;
    if (take == 0) return CRL_OK;
    if (r->n_mem > INT32_MAX - take) return crl_errf(err, CRL_EINVAL, "l2r: memory full");
    if (r->n_mem + take > r->cap_mem) {
        int cap = r->cap_mem ? r->cap_mem : 256;
        while (cap < r->n_mem + take) cap = cap > INT32_MAX / 2 ? INT32_MAX : cap * 2;
        float *nq = realloc(r->mem_q, (size_t)cap * r->D * sizeof *nq);
        if (!nq) return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
        r->mem_q = nq;
        int32_t *ny = realloc(r->mem_y, (size_t)cap * sizeof *ny);
        if (!ny) return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
        r->mem_y = ny;
        r->cap_mem = cap;
    }
    /* Selection sampling (Knuth's algorithm S): each row kept with probability
     * (still needed) / (still left); `take` rows in ascending order. */
    crl_rng g;
    crl_rng_seed_stream(&g, r->seed, 0x4c3252u + (uint64_t)r->n_mem);
    int need = take;
    for (int i = 0; i < n && need > 0; i++) {
        if (take < n && crl_rng_below(&g, (uint64_t)(n - i)) >= (uint64_t)need) continue;
        memcpy(r->mem_q + (size_t)r->n_mem * r->D, q + (size_t)i * r->D,
               (size_t)r->D * sizeof *q);
        r->mem_y[r->n_mem++] = label;
        need--;
    }
    return CRL_OK;
}

/* Forward of n <= max_batch rows into the workspace: hidden activations a
 * (n x H) and logits (n x K). */
static void forward(crl_l2r *r, const float *X, int n, float **a_out, float **lg_out) {
    const int H = r->H, K = r->K, D = r->D;
    float *a = r->ws, *lg = r->ws + (size_t)r->max_batch * H;
    const float *in = X;
    int in_w = D;
    if (H > 0) {
        const float *b1 = r->params + r->b1;
        for (int i = 0; i < n; i++) memcpy(a + (size_t)i * H, b1, (size_t)H * sizeof *a);
        crl_sgemm('N', 'N', n, H, D, 1.0f, X, D, r->params + r->W1, H, 1.0f, a, H);
        for (size_t i = 0; i < (size_t)n * H; i++) a[i] = tanhf(a[i]);
        in = a;
        in_w = H;
    }
    const float *b2 = r->params + r->b2;
    for (int i = 0; i < n; i++) memcpy(lg + (size_t)i * K, b2, (size_t)K * sizeof *lg);
    crl_sgemm('N', 'N', n, K, in_w, 1.0f, in, in_w, r->params + r->W2, K, 1.0f, lg, K);
    *a_out = a;
    *lg_out = lg;
}

double crl_l2r_loss(crl_l2r *r, const float *X, const int32_t *y, int n, float *grads) {
    const int H = r->H, K = r->K, D = r->D;
    if (grads) memset(grads, 0, r->n_params * sizeof *grads);
    if (n <= 0) return 0.0;
    double loss = 0.0;
    const double inv_n = 1.0 / n;
    for (int r0 = 0; r0 < n; r0 += r->max_batch) {
        const int nb = n - r0 < r->max_batch ? n - r0 : r->max_batch;
        const float *x = X + (size_t)r0 * D;
        float *a, *lg;
        forward(r, x, nb, &a, &lg);
        /* Log-softmax in double; lg becomes dL/dlogits = (p - onehot) / n. */
        for (int i = 0; i < nb; i++) {
            float *row = lg + (size_t)i * K;
            double mx = row[0];
            for (int k = 1; k < K; k++) mx = row[k] > mx ? row[k] : mx;
            double z = exp(row[0] - mx);
            for (int k = 1; k < K; k++) z += exp(row[k] - mx);
            const int yi = y[r0 + i];
            loss += -((double)row[yi] - mx - log(z));
            for (int k = 0; k < K; k++)
                row[k] = (float)((exp(row[k] - mx) / z - (k == yi)) * inv_n);
        }
        if (!grads) continue;
        const float *in = H > 0 ? a : x;
        const int in_w = H > 0 ? H : D;
        crl_sgemm('T', 'N', in_w, K, nb, 1.0f, in, in_w, lg, K, 1.0f, grads + r->W2, K);
        float *gb2 = grads + r->b2;
        for (int i = 0; i < nb; i++)
            for (int k = 0; k < K; k++) gb2[k] += lg[(size_t)i * K + k];
        if (H == 0) continue;
        float *da = r->ws + (size_t)r->max_batch * (H + K);
        crl_sgemm('N', 'T', nb, H, K, 1.0f, lg, K, r->params + r->W2, K, 0.0f, da, H);
        for (size_t i = 0; i < (size_t)nb * H; i++) da[i] *= 1.0f - a[i] * a[i];
        crl_sgemm('T', 'N', D, H, nb, 1.0f, x, D, da, H, 1.0f, grads + r->W1, H);
        float *gb1 = grads + r->b1;
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < H; j++) gb1[j] += da[(size_t)i * H + j];
    }
    return loss * inv_n;
}

int crl_l2r_train(crl_l2r *r, int epochs, float lr, int batch, double *last_loss,
                  crl_err *err) {
    if (!r || epochs < 1 || !(lr > 0.0f) || !isfinite(lr))
        return crl_errf(err, CRL_EINVAL, "l2r: train needs epochs >= 1 and lr > 0");
    if (r->n_mem == 0) return crl_errf(err, CRL_EINVAL, "l2r: empty memory");
    const int n = r->n_mem;
    const int full = batch <= 0 || batch >= n;
    const int nb = full ? n : batch;
    int *perm = NULL;
    float *xb = NULL;
    int32_t *yb = NULL;
    if (!full) {
        perm = malloc((size_t)n * sizeof *perm);
        xb = malloc((size_t)nb * r->D * sizeof *xb);
        yb = malloc((size_t)nb * sizeof *yb);
        if (!perm || !xb || !yb) {
            free(perm);
            free(xb);
            free(yb);
            return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
        }
    }
    crl_adam_reset(&r->adam);
    r->adam.lr = lr;
    crl_rng g;
    crl_rng_seed_stream(&g, r->seed, 1 + (uint64_t)r->n_trains);
    r->n_trains++;
    int rc = CRL_OK;
    double ep_loss = 0.0;
    for (int e = 0; e < epochs && rc == CRL_OK; e++) {
        ep_loss = 0.0;
        if (full) {
            ep_loss = crl_l2r_loss(r, r->mem_q, r->mem_y, n, r->grads);
            crl_adam_step(&r->adam, r->params, r->grads, NULL);
        } else {
            for (int i = 0; i < n; i++) perm[i] = i;
            for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
                const int j = (int)crl_rng_below(&g, (uint64_t)i + 1);
                const int t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            double tot = 0.0;
            for (int s = 0; s < n; s += nb) {
                const int m = n - s < nb ? n - s : nb;
                for (int i = 0; i < m; i++) {
                    memcpy(xb + (size_t)i * r->D, r->mem_q + (size_t)perm[s + i] * r->D,
                           (size_t)r->D * sizeof *xb);
                    yb[i] = r->mem_y[perm[s + i]];
                }
                tot += crl_l2r_loss(r, xb, yb, m, r->grads) * m;
                crl_adam_step(&r->adam, r->params, r->grads, NULL);
            }
            ep_loss = tot / n;
        }
        if (!isfinite(ep_loss) || !crl_all_finite(r->params, r->n_params))
            rc =
                crl_errf(err, CRL_ENAN, "l2r: loss or weights not finite at epoch %d", e);
    }
    free(perm);
    free(xb);
    free(yb);
    if (rc == CRL_OK && last_loss) *last_loss = ep_loss;
    return rc;
}

void crl_l2r_logits(crl_l2r *r, const float *q, int B, float *logits) {
    for (int r0 = 0; r0 < B; r0 += r->max_batch) {
        const int nb = B - r0 < r->max_batch ? B - r0 : r->max_batch;
        float *a, *lg;
        forward(r, q + (size_t)r0 * r->D, nb, &a, &lg);
        memcpy(logits + (size_t)r0 * r->K, lg, (size_t)nb * r->K * sizeof *lg);
    }
}

void crl_l2r_predict(crl_l2r *r, const float *q, int B, int *sel) {
    const int K = r->K;
    for (int r0 = 0; r0 < B; r0 += r->max_batch) {
        const int nb = B - r0 < r->max_batch ? B - r0 : r->max_batch;
        float *a, *lg;
        forward(r, q + (size_t)r0 * r->D, nb, &a, &lg);
        for (int i = 0; i < nb; i++) {
            const float *row = lg + (size_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            sel[r0 + i] = best;
        }
    }
}

/* Blob: magic, u32 D K H, u64 seed, i64 n_trains, u64 n_params, u32 n_mem,
 * params, mem_q (n_mem x D), mem_y (n_mem int32). Host byte order (a
 * checkpoint, as core/blob.h says). */
int crl_l2r_save(const crl_l2r *r, unsigned char **blob, size_t *n, crl_err *err) {
    if (!r || !blob || !n) return crl_errf(err, CRL_EINVAL, "l2r: NULL argument");
    crl_wbuf w = {0};
    const uint32_t dims[4] = {(uint32_t)r->D, (uint32_t)r->K, (uint32_t)r->H,
                              (uint32_t)r->n_mem};
    const uint64_t np = r->n_params;
    crl_wbuf_put(&w, L2R_MAGIC, sizeof L2R_MAGIC);
    crl_wbuf_put(&w, dims, sizeof dims);
    crl_wbuf_put(&w, &r->seed, sizeof r->seed);
    crl_wbuf_put(&w, &r->n_trains, sizeof r->n_trains);
    crl_wbuf_put(&w, &np, sizeof np);
    crl_wbuf_put(&w, r->params, r->n_params * sizeof *r->params);
    crl_wbuf_put(&w, r->mem_q, (size_t)r->n_mem * r->D * sizeof *r->mem_q);
    crl_wbuf_put(&w, r->mem_y, (size_t)r->n_mem * sizeof *r->mem_y);
    if (w.bad) {
        free(w.p);
        return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
    }
    *blob = w.p;
    *n = w.n;
    return CRL_OK;
}

int crl_l2r_load(crl_l2r *r, const void *blob, size_t n, int max_batch, crl_err *err) {
    if (!r || !blob) return crl_errf(err, CRL_EINVAL, "l2r: NULL argument");
    memset(r, 0, sizeof *r);
    crl_rbuf rb = {blob, n, 0, 0};
    char magic[8];
    uint32_t dims[4];
    uint64_t seed = 0, np = 0;
    int64_t ntr = 0;
    crl_rbuf_get(&rb, magic, sizeof magic);
    crl_rbuf_get(&rb, dims, sizeof dims);
    crl_rbuf_get(&rb, &seed, sizeof seed);
    crl_rbuf_get(&rb, &ntr, sizeof ntr);
    crl_rbuf_get(&rb, &np, sizeof np);
    if (rb.bad || memcmp(magic, L2R_MAGIC, sizeof magic) != 0)
        return crl_errf(err, CRL_ECORRUPT, "l2r: not a router blob");
    if (dims[0] > INT32_MAX || dims[1] > INT32_MAX || dims[2] > INT32_MAX ||
        dims[3] > INT32_MAX || ntr < 0 ||
        check_sizes((int)dims[0], (int)dims[1], (int)dims[2], max_batch, NULL) != CRL_OK)
        return crl_errf(err, CRL_ECORRUPT, "l2r: bad sizes in the router blob");
    crl_l2r t;
    memset(&t, 0, sizeof t);
    t.D = (int)dims[0];
    t.K = (int)dims[1];
    t.H = (int)dims[2];
    t.max_batch = max_batch;
    t.seed = seed;
    t.n_trains = ntr;
    layout(&t);
    const size_t n_mem = dims[3];
    if (np != t.n_params || n - rb.off != t.n_params * sizeof(float) +
                                              n_mem * t.D * sizeof(float) +
                                              n_mem * sizeof(int32_t))
        return crl_errf(err, CRL_ECORRUPT, "l2r: router blob has the wrong length");
    int rc = alloc_bufs(&t, err);
    if (rc != CRL_OK) return rc;
    crl_rbuf_get(&rb, t.params, t.n_params * sizeof *t.params);
    if (n_mem > 0) {
        t.mem_q = malloc(n_mem * t.D * sizeof *t.mem_q);
        t.mem_y = malloc(n_mem * sizeof *t.mem_y);
        if (!t.mem_q || !t.mem_y) {
            crl_l2r_free(&t);
            return crl_errf(err, CRL_ENOMEM, "l2r: out of memory");
        }
        t.n_mem = t.cap_mem = (int)n_mem;
        crl_rbuf_get(&rb, t.mem_q, n_mem * t.D * sizeof *t.mem_q);
        crl_rbuf_get(&rb, t.mem_y, n_mem * sizeof *t.mem_y);
    }
    int bad = rb.bad || !crl_all_finite(t.params, t.n_params);
    for (size_t i = 0; i < n_mem && !bad; i++) bad = t.mem_y[i] < 0 || t.mem_y[i] >= t.K;
    if (bad) {
        crl_l2r_free(&t);
        return crl_errf(err, CRL_ECORRUPT, "l2r: router blob holds bad values");
    }
    *r = t;
    return CRL_OK;
}
