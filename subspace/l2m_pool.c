/* L2M modulation pool: layout, routing, and the modulated forward/backward of
 * a frozen crl_mlp. See include/crl/pool.h for the layout and docs/pool.md
 * for the math.
 *
 * Rows of one batch use different modulators, i.e. different weights. A
 * per-row matrix product would turn every LoRA sgemm into B matrix-vector
 * products. Instead the rows are grouped by modulator once per batch (a
 * counting sort, stored in the workspace); per layer, the layer input is
 * gathered into grouped order, each group does one sgemm x A and one (xA) B
 * on its contiguous slice, and the result is scattered back. The BASE part of
 * every layer stays one sgemm over the whole batch in the caller's row
 * order, with exactly the calls crl_mlp_forward makes: that is what makes a
 * fresh pool reproduce the base bit for bit.
 *
 * Forward and backward never allocate: everything lives in the workspace. */
#include "crl/pool.h"

#include "crl/blas.h"
#include "crl/routers.h"
#include "nn/net.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ----------------------------------------------------------------- */

int crl_pool_init(crl_pool *p, const crl_mlp *base, crl_pool_kind kind, int M, int rank,
                  float scale, crl_err *err) {
    if (!p || !base) return crl_errf(err, CRL_EINVAL, "pool: NULL argument");
    if (M < 1) return crl_errf(err, CRL_EINVAL, "pool: M %d must be >= 1", M);
    if (kind != CRL_POOL_LORA && kind != CRL_POOL_IA3)
        return crl_errf(err, CRL_EINVAL, "pool: unknown modulator kind %d", (int)kind);
    if (kind == CRL_POOL_LORA && rank < 1)
        return crl_errf(err, CRL_EINVAL, "pool: LoRA rank %d must be >= 1", rank);
    /* Re-derive the base layout from its spec: validates the spec and catches a
     * crl_mlp that was not made by crl_mlp_init. */
    crl_mlp chk;
    int rc = crl_mlp_init(&chk, &base->spec, err);
    if (rc != CRL_OK) return rc;
    if (chk.n_params != base->n_params)
        return crl_errf(err, CRL_EINVAL, "pool: base layout does not match its spec");

    memset(p, 0, sizeof *p);
    p->base = chk;
    p->kind = kind;
    p->M = M;
    p->rank = kind == CRL_POOL_LORA ? rank : 0;
    p->scale = kind == CRL_POOL_LORA ? scale : 1.0f;
    const crl_mlp_spec *s = &chk.spec;
    p->key_dim = s->hidden[0];
    p->keys = 0;
    size_t off = 0;
    int prev = s->in_dim;
    for (int l = 0; l < s->n_hidden; l++) {
        const int h = s->hidden[l];
        if (kind == CRL_POOL_LORA) {
            p->A[l] = off;
            off += (size_t)prev * p->rank;
            p->B[l] = off;
            off += (size_t)p->rank * h;
        } else {
            p->g[l] = off;
            off += (size_t)h;
        }
        prev = h;
    }
    p->mod_size = off;
    p->n_params = (size_t)M * p->key_dim + (size_t)M * off;
    return CRL_OK;
}

size_t crl_pool_mod_offset(const crl_pool *p, int m) {
    return (size_t)p->M * p->key_dim + (size_t)m * p->mod_size;
}

void crl_pool_init_params(const crl_pool *p, float *params, crl_rng *rng) {
    const crl_mlp_spec *s = &p->base.spec;
    const size_t nk = (size_t)p->M * p->key_dim;
    for (size_t i = 0; i < nk; i++)
        params[p->keys + i] = (float)crl_rng_range(rng, -1, 1);
    for (int m = 0; m < p->M; m++) {
        float *mod = params + crl_pool_mod_offset(p, m);
        int prev = s->in_dim;
        for (int l = 0; l < s->n_hidden; l++) {
            const int h = s->hidden[l];
            if (p->kind == CRL_POOL_LORA) {
                const double lim = 1.0 / sqrt((double)prev);
                const size_t na = (size_t)prev * p->rank;
                for (size_t i = 0; i < na; i++)
                    mod[p->A[l] + i] = (float)crl_rng_range(rng, -lim, lim);
                /* B = 0: the modulator starts as the identity. */
                memset(mod + p->B[l], 0, (size_t)p->rank * h * sizeof *mod);
            } else {
                for (int j = 0; j < h; j++) mod[p->g[l] + j] = 1.0f;
            }
            prev = h;
        }
    }
}

/* ---- routing ----------------------------------------------------------------- */

static int route_check(const crl_pool *p, const crl_pool_route *route, crl_err *err) {
    if (!route) return crl_errf(err, CRL_EINVAL, "pool: NULL route");
    switch (route->mode) {
    case CRL_POOL_ROUTE_COS:
        return CRL_OK;
    case CRL_POOL_ROUTE_USAGE:
        if (!route->counts && !route->weights)
            return crl_errf(err, CRL_EINVAL, "pool: usage routing without counts");
        return CRL_OK;
    case CRL_POOL_ROUTE_ORACLE:
        if (route->n_tasks < 1 || route->n_tasks > p->M || route->task < 0 ||
            route->task >= route->n_tasks)
            return crl_errf(err, CRL_EINVAL,
                            "pool: oracle task %d of %d with %d modulators (need "
                            "0 <= task < n_tasks <= M)",
                            route->task, route->n_tasks, p->M);
        return CRL_OK;
    case CRL_POOL_ROUTE_FIXED:
        if (!route->sel)
            return crl_errf(err, CRL_EINVAL, "pool: fixed routing without sel");
        return CRL_OK;
    case CRL_POOL_ROUTE_CALL:
        if (!route->call)
            return crl_errf(err, CRL_EINVAL, "pool: router routing without a router");
        return CRL_OK;
    }
    return crl_errf(err, CRL_EINVAL, "pool: unknown routing mode %d", (int)route->mode);
}

/* q . k in float with eight independent partial sums, combined in a fixed
 * order: the same bits on every machine (no reassociation is left to the
 * compiler), and no 4-cycle dependency chain per term as a single running
 * sum would have. Routing calls it B x M times per forward. */
static float dot8(int D, const float *q, const float *k) {
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= D; j += 8)
        for (int l = 0; l < 8; l++) a[l] += q[j + l] * k[j + l];
    for (int l = 0; j < D; j++, l++) a[l] += q[j] * k[j];
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* |v|^2 in double. */
static double sqnorm(int D, const float *v) {
    double s = 0.0;
    for (int j = 0; j < D; j++) s += (double)v[j] * v[j];
    return s;
}

/* cos from the dot product and the squared norms; 0 when either vector is 0
 * (no direction to match). */
static double cos_of(float dot, double qq, double kk) {
    if (qq == 0.0 || kk == 0.0) return 0.0;
    return (double)dot / (sqrt(qq) * sqrt(kk));
}

/* cos(q, k) as routing computes it (crl_pool_route_rows, crl_pool_scores). */
static double route_cos(int D, const float *q, const float *k) {
    return cos_of(dot8(D, q, k), sqnorm(D, q), sqnorm(D, k));
}

/* cos(q, k) all in double, for the pull term's value and gradient. */
static double cosine(int D, const float *q, const float *k, double *qq_out,
                     double *kk_out) {
    double dot = 0.0;
    for (int j = 0; j < D; j++) dot += (double)q[j] * k[j];
    const double qq = sqnorm(D, q), kk = sqnorm(D, k);
    *qq_out = qq;
    *kk_out = kk;
    if (qq == 0.0 || kk == 0.0) return 0.0;
    return dot / (sqrt(qq) * sqrt(kk));
}

/* Oracle slice of task t: [t*M/T, (t+1)*M/T); all of [0, M) otherwise. */
static void route_range(const crl_pool *p, const crl_pool_route *route, int *lo,
                        int *hi) {
    *lo = 0;
    *hi = p->M;
    if (route->mode == CRL_POOL_ROUTE_ORACLE) {
        *lo = route->task * p->M / route->n_tasks;
        *hi = (route->task + 1) * p->M / route->n_tasks;
    }
}

/* min_k c_k, the numerator of the normalised usage weight (0 if unused). */
static double usage_cmin(const crl_pool *p, const crl_pool_route *route) {
    if (route->mode != CRL_POOL_ROUTE_USAGE || route->weights) return 0.0;
    double cmin = (double)route->counts[0];
    for (int m = 1; m < p->M; m++)
        if ((double)route->counts[m] < cmin) cmin = (double)route->counts[m];
    return cmin;
}

/* Score of modulator m given its cosine c. USAGE:
 * w_m = (1/(1+c_m)) / max_k (1/(1+c_k)) = (1 + min_k c_k) / (1 + c_m), so the
 * least used modulator has weight 1 and the others < 1. */
static double score_of(const crl_pool_route *route, int m, double c, double cmin) {
    if (route->mode != CRL_POOL_ROUTE_USAGE) return c;
    if (route->weights) return 0.5 * (c + 1.0) * route->weights[m];
    return 0.5 * (c + 1.0) * ((1.0 + cmin) / (1.0 + (double)route->counts[m]));
}

int crl_pool_scores(const crl_pool *p, const float *params, const float *q,
                    const crl_pool_route *route, double *scores, crl_err *err) {
    int rc = route_check(p, route, err);
    if (rc != CRL_OK) return rc;
    const int D = p->key_dim;
    int lo, hi;
    route_range(p, route, &lo, &hi);
    const double cmin = usage_cmin(p, route);
    for (int m = 0; m < p->M; m++)
        scores[m] =
            m < lo || m >= hi
                ? -INFINITY
                : score_of(route, m, route_cos(D, q, params + p->keys + (size_t)m * D),
                           cmin);
    return CRL_OK;
}

int crl_pool_route_rows(const crl_pool *p, const float *params, const float *q, int B,
                        const crl_pool_route *route, int *sel, crl_err *err) {
    int rc = route_check(p, route, err);
    if (rc != CRL_OK) return rc;
    const int M = p->M, D = p->key_dim;
    if (B <= 0) return CRL_OK;
    const float *keys = params + p->keys;
    if (route->mode == CRL_POOL_ROUTE_CALL)
        return route->call(route->ctx, params, q, NULL, B, sel, err);
    if (route->mode == CRL_POOL_ROUTE_FIXED) {
        for (int r = 0; r < B; r++) {
            if (route->sel[r] < 0 || route->sel[r] >= M)
                return crl_errf(err, CRL_EINVAL, "pool: sel[%d] = %d not in [0, %d)", r,
                                route->sel[r], M);
            sel[r] = route->sel[r];
        }
        return CRL_OK;
    }
    int lo, hi;
    route_range(p, route, &lo, &hi);
    const double cmin = usage_cmin(p, route);
    /* Keys in blocks of KB, each key's squared norm computed once per block
     * (not once per row); each row's best so far carries over in sel and
     * best_s. Strict >: ties go to the lowest index. */
    enum { KB = 64 };
    double kk[KB];
    for (int m0 = lo; m0 < hi; m0 += KB) {
        const int m1 = m0 + KB < hi ? m0 + KB : hi;
        for (int m = m0; m < m1; m++) kk[m - m0] = sqnorm(D, keys + (size_t)m * D);
        for (int r = 0; r < B; r++) {
            const float *qr = q + (size_t)r * D;
            const double qq = sqnorm(D, qr);
            int best = m0 == lo ? lo : sel[r];
            double best_s = m0 == lo
                                ? -INFINITY
                                : score_of(route, best,
                                           cos_of(dot8(D, qr, keys + (size_t)best * D),
                                                  qq, sqnorm(D, keys + (size_t)best * D)),
                                           cmin);
            for (int m = m0; m < m1; m++) {
                const double sc = score_of(
                    route, m, cos_of(dot8(D, qr, keys + (size_t)m * D), qq, kk[m - m0]),
                    cmin);
                if (sc > best_s) {
                    best_s = sc;
                    best = m;
                }
            }
            sel[r] = best;
        }
    }
    return CRL_OK;
}

void crl_pool_count(const crl_pool *p, const crl_pool_ws *ws, int64_t *counts) {
    (void)p;
    for (int r = 0; r < ws->B; r++) counts[ws->sel[r]]++;
}

void crl_pool_usage_weights(const crl_pool *p, const int64_t *counts, double *w) {
    double total = 0.0, sum = 0.0;
    for (int m = 0; m < p->M; m++) total += (double)counts[m];
    for (int m = 0; m < p->M; m++) {
        const double freq = total > 0.0 ? (double)counts[m] / total : 0.0;
        w[m] = 1.0 / (freq + 1e-6);
        sum += w[m];
    }
    for (int m = 0; m < p->M; m++) w[m] /= sum;
}

int crl_pool_n_used(const crl_pool *p, const int64_t *counts) {
    int n = 0;
    for (int m = 0; m < p->M; m++) n += counts[m] != 0;
    return n;
}

/* ---- workspace ---------------------------------------------------------------- */

int crl_pool_ws_alloc(crl_pool_ws *ws, const crl_pool *p, int max_batch, crl_err *err) {
    if (!ws || !p) return crl_errf(err, CRL_EINVAL, "pool ws: NULL argument");
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1)
        return crl_errf(err, CRL_EINVAL, "pool ws: max_batch %d must be >= 1", max_batch);
    const crl_mlp_spec *s = &p->base.spec;
    const size_t Bm = (size_t)max_batch, W = (size_t)crl_net_max_width(&p->base.spec);
    const int lora = p->kind == CRL_POOL_LORA, ln = s->layernorm_first;
    size_t total = crl_net_pad16(Bm * p->key_dim);
    for (int l = 0; l < s->n_hidden; l++) {
        total += crl_net_pad16(Bm * s->hidden[l]);            /* pre */
        if (!lora) total += crl_net_pad16(Bm * s->hidden[l]); /* z */
        if (lora) total += crl_net_pad16(Bm * p->rank);       /* xa */
    }
    if (ln)
        total += 2 * crl_net_pad16(Bm * s->hidden[0]) +
                 crl_net_pad16(Bm); /* post0, xhat, rstd */
    total += crl_net_pad16(Bm * s->out_dim) + 4 * crl_net_pad16(Bm * W) +
             crl_net_pad16(Bm * (lora ? p->rank : 1));

    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, total * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate %zu floats", total);
    int *ints = malloc((2 * Bm + 2 * (size_t)p->M + 1) * sizeof *ints);
    if (!ints) {
        free(mem);
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate index buffers");
    }
    /* Zeroed so that a backward without a forward reads numbers, not garbage. */
    memset(mem, 0, total * sizeof(float));
    memset(ints, 0, (2 * Bm + 2 * (size_t)p->M + 1) * sizeof *ints);
    ws->mem = mem;
    ws->max_batch = max_batch;
    ws->sel = ints;
    ws->perm = ints + Bm;
    ws->gstart = ints + 2 * Bm;
    ws->live = ints + 2 * Bm + p->M + 1;
    float *f = mem;
#define TAKE(ptr, n)                                                                     \
    do {                                                                                 \
        (ptr) = f;                                                                       \
        f += crl_net_pad16(n);                                                           \
    } while (0)
    TAKE(ws->q, Bm * p->key_dim);
    for (int l = 0; l < s->n_hidden; l++) {
        const size_t h = (size_t)s->hidden[l];
        TAKE(ws->pre[l], Bm * h);
        if (!lora) TAKE(ws->z[l], Bm * h);
        if (lora) TAKE(ws->xa[l], Bm * p->rank);
        /* Activations run in place except after LayerNorm, as in crl_mlp. */
        if (l == 0 && ln)
            TAKE(ws->post[0], Bm * h);
        else
            ws->post[l] = ws->pre[l];
    }
    if (ln) {
        TAKE(ws->ln_xhat, Bm * s->hidden[0]);
        TAKE(ws->ln_rstd, Bm);
    }
    TAKE(ws->out, Bm * s->out_dim);
    TAKE(ws->d0, Bm * W);
    TAKE(ws->d1, Bm * W);
    TAKE(ws->s0, Bm * W);
    TAKE(ws->s1, Bm * W);
    TAKE(ws->sxa, Bm * (lora ? p->rank : 1));
#undef TAKE
    assert((size_t)(f - mem) == total);
    return CRL_OK;
}

int crl_pool_ws_history(crl_pool_ws *ws, const crl_pool *p, int cap, crl_err *err) {
    free(ws->hmem);
    ws->hmem = NULL;
    ws->hist_max = 0;
    if (cap <= 0) return CRL_OK;
    const size_t n = (size_t)ws->max_batch * (size_t)cap, D = (size_t)p->key_dim;
    const size_t in = (size_t)p->base.spec.in_dim;
    const size_t total =
        crl_net_pad16(n * in) + 3 * crl_net_pad16(n * D) + crl_net_pad16(n);
    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, total * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate the history scratch");
    memset(mem, 0, total * sizeof(float));
    ws->hmem = mem;
    ws->hx = mem;
    ws->hz = ws->hx + crl_net_pad16(n * in);
    ws->he = ws->hz + crl_net_pad16(n * D);
    ws->hxh = ws->he + crl_net_pad16(n * D);
    ws->hr = ws->hxh + crl_net_pad16(n * D);
    ws->hist_max = cap;
    return CRL_OK;
}

int crl_pool_ws_layers(crl_pool_ws *ws, const crl_pool *p, crl_err *err) {
    const crl_mlp_spec *s = &p->base.spec;
    free(ws->lmem);
    ws->lmem = NULL;
    size_t total = 0;
    for (int l = 1; l < s->n_hidden; l++)
        total += crl_net_pad16((size_t)ws->max_batch * s->hidden[l - 1]);
    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, (total + 16) * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate the layer inputs");
    memset(mem, 0, (total + 16) * sizeof(float));
    ws->lmem = mem;
    for (int l = 1; l < s->n_hidden; l++) {
        ws->lin[l] = mem;
        mem += crl_net_pad16((size_t)ws->max_batch * s->hidden[l - 1]);
    }
    return CRL_OK;
}

int crl_pool_ws_soft(crl_pool_ws *ws, const crl_pool *p, int kmax, crl_err *err) {
    free(ws->smem);
    free(ws->kidx);
    ws->smem = ws->kw = ws->blk = ws->gblk = NULL;
    ws->kidx = NULL;
    ws->k = ws->kmax = 0;
    if (kmax < 1 || kmax > p->M)
        return crl_errf(err, CRL_EINVAL, "pool ws: soft k %d not in [1, %d]", kmax, p->M);
    const size_t Bm = (size_t)ws->max_batch, nb = crl_net_pad16(Bm * p->mod_size);
    const size_t nw = crl_net_pad16(Bm * (size_t)kmax), total = nw + 2 * nb;
    float *mem = NULL;
    if (posix_memalign((void **)&mem, 64, total * sizeof(float)) != 0 || !mem)
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate the soft scratch");
    int *idx = calloc(Bm * (size_t)kmax, sizeof *idx);
    if (!idx) {
        free(mem);
        return crl_errf(err, CRL_ENOMEM, "pool ws: cannot allocate the soft scratch");
    }
    memset(mem, 0, total * sizeof(float));
    ws->smem = mem;
    ws->kw = mem;
    ws->blk = mem + nw;
    ws->gblk = ws->blk + nb;
    ws->kidx = idx;
    ws->kmax = kmax;
    return CRL_OK;
}

void crl_pool_ws_free(crl_pool_ws *ws) {
    if (!ws) return;
    free(ws->smem);
    free(ws->kidx);
    free(ws->lmem);
    free(ws->hmem);
    free(ws->mem);
    free(ws->sel);
    memset(ws, 0, sizeof *ws);
}

/* ---- forward ------------------------------------------------------------------- */

/* Counting sort of the rows by modulator: group m is
 * perm[gstart[m] .. gstart[m+1]), rows ascending inside a group. */
static void group_rows(const crl_pool *p, crl_pool_ws *ws) {
    const int M = p->M, B = ws->B;
    int *gs = ws->gstart, *cur = ws->live; /* live is free until the layers run */
    memset(gs, 0, (size_t)(M + 1) * sizeof *gs);
    for (int r = 0; r < B; r++) gs[ws->sel[r] + 1]++;
    for (int m = 0; m < M; m++) gs[m + 1] += gs[m];
    memcpy(cur, gs, (size_t)M * sizeof *cur);
    for (int r = 0; r < B; r++) ws->perm[cur[ws->sel[r]]++] = r;
}

/* dst[i] = src[perm[i]] for rows of n floats. */
static void gather(int B, const int *perm, size_t n, const float *src, float *dst) {
    for (int i = 0; i < B; i++)
        memcpy(dst + (size_t)i * n, src + (size_t)perm[i] * n, n * sizeof *dst);
}

static int all_zero(size_t n, const float *x) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

/* pre[l] += s * (in A_m) B_m for every row, grouped by modulator. Saves
 * xa = in A_m (grouped order) for backward. Groups whose B_m is exactly zero
 * add nothing at all (not even +0.0f, which would turn a -0.0f into +0.0f):
 * a fresh modulator leaves the base's numbers untouched, bit for bit. */
static void lora_forward(const crl_pool *p, const float *params, crl_pool_ws *ws, int l,
                         const float *in, int prev, int h) {
    const int B = ws->B, r = p->rank;
    float *xs = ws->s0, *ys = ws->s1;
    gather(B, ws->perm, (size_t)prev, in, xs);
    for (int m = 0; m < p->M; m++) {
        const int g0 = ws->gstart[m], n = ws->gstart[m + 1] - g0;
        ws->live[m] = 0;
        if (n == 0) continue;
        const float *mod = params + crl_pool_mod_offset(p, m);
        float *xa = ws->xa[l] + (size_t)g0 * r;
        crl_sgemm('N', 'N', n, r, prev, 1.0f, xs + (size_t)g0 * prev, prev, mod + p->A[l],
                  r, 0.0f, xa, r);
        if (all_zero((size_t)r * h, mod + p->B[l])) continue;
        ws->live[m] = 1;
        crl_sgemm('N', 'N', n, h, r, p->scale, xa, r, mod + p->B[l], h, 0.0f,
                  ys + (size_t)g0 * h, h);
    }
    for (int i = 0; i < B; i++) {
        const int row = ws->perm[i];
        if (!ws->live[ws->sel[row]]) continue;
        float *restrict y = ws->pre[l] + (size_t)row * h;
        const float *restrict d = ys + (size_t)i * h;
        for (int j = 0; j < h; j++) y[j] += d[j];
    }
}

/* pre[l] = z[l] * g_m row by row: elementwise, so no grouping is needed. */
static void ia3_forward(const crl_pool *p, const float *params, crl_pool_ws *ws, int l,
                        int h) {
    for (int r = 0; r < ws->B; r++) {
        const float *restrict g = params + crl_pool_mod_offset(p, ws->sel[r]) + p->g[l];
        const float *restrict z = ws->z[l] + (size_t)r * h;
        float *restrict y = ws->pre[l] + (size_t)r * h;
        for (int j = 0; j < h; j++) y[j] = z[j] * g[j];
    }
}

/* Soft rows: each row r runs its own merged block blk_r (built once per
 * forward by merge_rows), so the LoRA products are per row; xa is in the
 * caller's row order. As in lora_forward, a merged B_l that is exactly zero
 * adds nothing. */
static int soft_on(const crl_pool_ws *ws) {
    return ws->k > 1;
}

static void merge_rows(const crl_pool *p, const float *params, crl_pool_ws *ws) {
    const int k = ws->k;
    for (int r = 0; r < ws->B; r++)
        crl_soft_merge(p, params, ws->kidx + (size_t)r * k, ws->kw + (size_t)r * k, k,
                       ws->blk + (size_t)r * p->mod_size);
}

static void soft_lora_forward(const crl_pool *p, crl_pool_ws *ws, int l, const float *in,
                              int prev, int h) {
    const int r = p->rank;
    for (int row = 0; row < ws->B; row++) {
        const float *blk = ws->blk + (size_t)row * p->mod_size;
        const float *xr = in + (size_t)row * prev;
        float *xa = ws->xa[l] + (size_t)row * r;
        crl_sgemm('N', 'N', 1, r, prev, 1.0f, xr, prev, blk + p->A[l], r, 0.0f, xa, r);
        if (all_zero((size_t)r * h, blk + p->B[l])) continue;
        crl_sgemm('N', 'N', 1, h, r, p->scale, xa, r, blk + p->B[l], h, 1.0f,
                  ws->pre[l] + (size_t)row * h, h);
    }
}

static void soft_ia3_forward(const crl_pool *p, crl_pool_ws *ws, int l, int h) {
    for (int r = 0; r < ws->B; r++) {
        const float *restrict g = ws->blk + (size_t)r * p->mod_size + p->g[l];
        const float *restrict z = ws->z[l] + (size_t)r * h;
        float *restrict y = ws->pre[l] + (size_t)r * h;
        for (int j = 0; j < h; j++) y[j] = z[j] * g[j];
    }
}

/* ---- the layers the skeleton (nn/net.h) calls ------------------------------------- */

typedef struct {
    const crl_pool *p;
    const float *base, *params;
    float *grads;
    crl_pool_ws *ws;
    const crl_pool_route *route;
    crl_err *err;
} pool_ctx;

/* The history query: q_r = (e(h_r,0) + ... + e(h_r,n-1) + e(x_r)) / (n + 1)
 * with e the base's first-layer embedding and n = ws->hist_n[r], summed in
 * float oldest first (rows without history keep e(x_r) untouched). The
 * earlier observations are packed and embedded as one batch. */
static void history_query(const crl_pool *p, const float *base, crl_pool_ws *ws, int B) {
    const crl_mlp *m = &p->base;
    const int in = m->spec.in_dim, D = p->key_dim, cap = ws->hist_cap;
    int n = 0;
    for (int r = 0; r < B; r++)
        for (int j = 0; j < ws->hist_n[r]; j++, n++)
            memcpy(ws->hx + (size_t)n * in, ws->hist + ((size_t)r * cap + j) * in,
                   sizeof(float) * (size_t)in);
    if (n == 0) return;
    crl_linear_forward(n, in, D, ws->hx, base + m->W[0], base + m->b[0], ws->hz);
    crl_net_first_norm(&m->spec, n, ws->hz, base + m->ln_g, base + m->ln_b, ws->he,
                       ws->hxh, ws->hr);
    for (int r = 0, t = 0; r < B; r++) {
        const int nr = ws->hist_n[r];
        if (nr == 0) continue;
        float *restrict q = ws->q + (size_t)r * D;
        const float *e = ws->he + (size_t)t * D, inv = 1.0f / (float)(nr + 1);
        for (int d = 0; d < D; d++) {
            float acc = e[d];
            for (int j = 1; j < nr; j++) acc += e[(size_t)j * D + d];
            q[d] = (acc + q[d]) * inv;
        }
        t += nr;
    }
}

/* lin[l] = the input of hidden layer l of the UNMODULATED base: x, the
 * first-layer embedding (ws->q as just computed), then Linear + activation
 * per layer, into ws->lin. */
static void base_layer_inputs(const crl_pool *p, const float *base, crl_pool_ws *ws,
                              const float *x, int B, const float **lin) {
    const crl_mlp *m = &p->base;
    const crl_mlp_spec *s = &m->spec;
    lin[0] = x;
    for (int j = 1; j < s->n_hidden; j++) {
        float *o = ws->lin[j];
        const size_t n = (size_t)B * s->hidden[j - 1];
        if (j == 1) {
            memcpy(o, ws->q, sizeof(float) * n);
        } else {
            crl_linear_forward(B, s->hidden[j - 2], s->hidden[j - 1], ws->lin[j - 1],
                               base + m->W[j - 1], base + m->b[j - 1], o);
            crl_act_forward(s->act, s->lrelu_slope, n, o, o);
        }
        lin[j] = o;
    }
}

/* The base Linear, exactly as crl_mlp_forward computes it, then the
 * modulation. On layer 0, in between, the query and the routing: the query is
 * the UNMODULATED first-layer embedding, so routing never depends on the
 * modulators (and needs no extra pass). */
static int pool_fwd(void *vc, int l, int B, int in, int out, const float *x, float *y) {
    const pool_ctx *k = vc;
    const crl_pool *p = k->p;
    const crl_mlp *m = &p->base;
    crl_pool_ws *ws = k->ws;
    const int lora = p->kind == CRL_POOL_LORA;
    float *z = lora ? y : ws->z[l];
    crl_linear_forward(B, in, out, x, k->base + m->W[l], k->base + m->b[l], z);
    if (l == 0) {
        crl_net_first_norm(&m->spec, B, z, k->base + m->ln_g, k->base + m->ln_b, ws->q,
                           ws->ln_xhat, ws->ln_rstd);
        /* A router that reads every layer gets the unmodulated base's
         * layer inputs, computed before the history mean replaces q. */
        const float *lin[CRL_MLP_MAX_HIDDEN];
        const int layers = k->route->mode == CRL_POOL_ROUTE_CALL && k->route->layers;
        if (layers) base_layer_inputs(p, k->base, ws, x, B, lin);
        if (ws->hist && ws->hist_n) history_query(p, k->base, ws, B);
        int rc =
            layers
                ? k->route->call(k->route->ctx, k->params, ws->q, lin, B, ws->sel, k->err)
                : crl_pool_route_rows(p, k->params, ws->q, B, k->route, ws->sel, k->err);
        if (rc != CRL_OK) return rc;
        group_rows(p, ws);
        if (soft_on(ws)) merge_rows(p, k->params, ws);
    }
    if (soft_on(ws) && lora)
        soft_lora_forward(p, ws, l, x, in, out);
    else if (soft_on(ws))
        soft_ia3_forward(p, ws, l, out);
    else if (lora)
        lora_forward(p, k->params, ws, l, x, in, out);
    else
        ia3_forward(p, k->params, ws, l, out);
    return 0;
}

/* Output heads: not modulated; the plain network's heads on the base. */
static void pool_head_fwd(void *vc, int B, int H, int O, const float *x, const int *head,
                          int hc, float *y) {
    const pool_ctx *k = vc;
    const crl_mlp *m = &k->p->base;
    assert(hc < m->spec.n_heads);
    crl_net_head_forward(B, H, O, x, k->base + m->head_W, k->base + m->head_b, head, hc,
                         NULL, 0, y);
}

/* ---- backward ------------------------------------------------------------------ */

/* d = dL/dpre[l] (caller's row order). Accumulates dA_m, dB_m; if dn is
 * non-NULL, ADDS the LoRA path's dL/din to it (the base path is already there). */
static void lora_backward(const crl_pool *p, const float *params, float *grads,
                          crl_pool_ws *ws, int l, const float *in, int prev, int h,
                          const float *d, float *dn) {
    const int B = ws->B, r = p->rank;
    float *xs = ws->s0, *ds = ws->s1;
    gather(B, ws->perm, (size_t)h, d, ds);
    gather(B, ws->perm, (size_t)prev, in, xs);
    for (int m = 0; m < p->M; m++) {
        const int g0 = ws->gstart[m], n = ws->gstart[m + 1] - g0;
        if (n == 0) continue;
        const size_t mo = crl_pool_mod_offset(p, m);
        const float *A = params + mo + p->A[l], *Bw = params + mo + p->B[l];
        const float *xa = ws->xa[l] + (size_t)g0 * r, *dg = ds + (size_t)g0 * h;
        float *xg = xs + (size_t)g0 * prev, *dxa = ws->sxa + (size_t)g0 * r;
        /* y = s (x A) B: d(xA) = s dY B^T, dB += s (xA)^T dY, dA += x^T d(xA). */
        crl_sgemm('N', 'T', n, r, h, p->scale, dg, h, Bw, h, 0.0f, dxa, r);
        crl_sgemm('T', 'N', r, h, n, p->scale, xa, r, dg, h, 1.0f, grads + mo + p->B[l],
                  h);
        crl_sgemm('T', 'N', prev, r, n, 1.0f, xg, prev, dxa, r, 1.0f,
                  grads + mo + p->A[l], r);
        /* dx = d(xA) A^T, into the gathered input's slice (read above). */
        if (dn) crl_sgemm('N', 'T', n, prev, r, 1.0f, dxa, r, A, r, 0.0f, xg, prev);
    }
    if (!dn) return;
    for (int i = 0; i < B; i++) {
        float *restrict y = dn + (size_t)ws->perm[i] * prev;
        const float *restrict a = xs + (size_t)i * prev;
        for (int j = 0; j < prev; j++) y[j] += a[j];
    }
}

/* d = dL/dpre[l] in, dL/dz[l] out (in place); accumulates dg_m. */
static void ia3_backward(const crl_pool *p, const float *params, float *grads,
                         crl_pool_ws *ws, int l, int h, float *d) {
    for (int r = 0; r < ws->B; r++) {
        const size_t mo = crl_pool_mod_offset(p, ws->sel[r]) + p->g[l];
        const float *restrict g = params + mo;
        float *restrict dg = grads + mo;
        const float *restrict z = ws->z[l] + (size_t)r * h;
        float *restrict dr = d + (size_t)r * h;
        for (int j = 0; j < h; j++) {
            dg[j] += dr[j] * z[j];
            dr[j] *= g[j];
        }
    }
}

/* Soft rows: the gradient of each row's merged block, WRITTEN into gblk
 * (every layer's part is written once per backward), and for LoRA the
 * LoRA path's dL/din ADDED to dn. */
static void soft_lora_backward(const crl_pool *p, crl_pool_ws *ws, int l, const float *in,
                               int prev, int h, const float *d, float *dn) {
    const int r = p->rank;
    for (int row = 0; row < ws->B; row++) {
        const size_t bo = (size_t)row * p->mod_size;
        const float *A = ws->blk + bo + p->A[l], *Bw = ws->blk + bo + p->B[l];
        const float *xr = in + (size_t)row * prev, *dr = d + (size_t)row * h;
        const float *xa = ws->xa[l] + (size_t)row * r;
        float *dxa = ws->sxa + (size_t)row * r;
        /* y = s (x A) B: d(xA) = s dY B^T, dB = s (xA)^T dY, dA = x^T d(xA). */
        crl_sgemm('N', 'T', 1, r, h, p->scale, dr, h, Bw, h, 0.0f, dxa, r);
        crl_sgemm('T', 'N', r, h, 1, p->scale, xa, r, dr, h, 0.0f,
                  ws->gblk + bo + p->B[l], h);
        crl_sgemm('T', 'N', prev, r, 1, 1.0f, xr, prev, dxa, r, 0.0f,
                  ws->gblk + bo + p->A[l], r);
        if (dn)
            crl_sgemm('N', 'T', 1, prev, r, 1.0f, dxa, r, A, r, 1.0f,
                      dn + (size_t)row * prev, prev);
    }
}

static void soft_ia3_backward(const crl_pool *p, crl_pool_ws *ws, int l, int h,
                              float *d) {
    for (int r = 0; r < ws->B; r++) {
        const size_t bo = (size_t)r * p->mod_size + p->g[l];
        const float *restrict g = ws->blk + bo;
        float *restrict dg = ws->gblk + bo;
        const float *restrict z = ws->z[l] + (size_t)r * h;
        float *restrict dr = d + (size_t)r * h;
        for (int j = 0; j < h; j++) {
            dg[j] = dr[j] * z[j];
            dr[j] *= g[j];
        }
    }
}

/* d = dL/dpre[l]: the modulation's backward, and the base Linear's input
 * gradient into dn (none below layer 0: the pool has no dx). */
static void pool_bwd(void *vc, int l, int R, int in, int out, const float *x, float *d,
                     float *dn, int dw_rows) {
    (void)R, (void)dw_rows; /* always every row of the forward */
    const pool_ctx *k = vc;
    const crl_pool *p = k->p;
    const float *W = k->base + p->base.W[l];
    if (soft_on(k->ws) && p->kind == CRL_POOL_LORA) {
        if (dn) crl_linear_backward(k->ws->B, in, out, x, W, d, NULL, NULL, dn, 0);
        soft_lora_backward(p, k->ws, l, x, in, out, d, dn);
    } else if (soft_on(k->ws)) {
        soft_ia3_backward(p, k->ws, l, out, d);
        if (dn) crl_linear_backward(k->ws->B, in, out, x, W, d, NULL, NULL, dn, 0);
    } else if (p->kind == CRL_POOL_LORA) {
        /* Base path first (overwrites dn), then the LoRA path adds to it. */
        if (dn) crl_linear_backward(k->ws->B, in, out, x, W, d, NULL, NULL, dn, 0);
        lora_backward(p, k->params, k->grads, k->ws, l, x, in, out, d, dn);
    } else {
        ia3_backward(p, k->params, k->grads, k->ws, l, out, d);
        if (dn) crl_linear_backward(k->ws->B, in, out, x, W, d, NULL, NULL, dn, 0);
    }
}

/* Heads are frozen: only the delta dL/dpost[L-1] = dout W_head^T. */
static void pool_head_bwd(void *vc, int R, int H, int O, const float *x, const int *head,
                          int hc, const float *dout, float *d, int dw_rows) {
    (void)dw_rows;
    const pool_ctx *k = vc;
    crl_net_head_backward(R, H, O, x, k->base + k->p->base.head_W, head, hc, dout, NULL,
                          NULL, d, 0);
}

static const crl_net_ops pool_ops = {pool_fwd, pool_head_fwd, pool_bwd, pool_head_bwd};

static crl_net_bufs pool_bufs(crl_pool_ws *ws) {
    return (crl_net_bufs){ws->pre, ws->post, ws->ln_xhat, ws->ln_rstd, ws->d0, ws->d1};
}

int crl_pool_forward(const crl_pool *p, const float *base_params, const float *params,
                     crl_pool_ws *ws, const float *x, int B, const int *head,
                     const crl_pool_route *route, crl_err *err) {
    if (B < 0 || B > ws->max_batch)
        return crl_errf(err, CRL_EINVAL, "pool: batch %d not in [0, %d]", B,
                        ws->max_batch);
    int rc = route_check(p, route, err);
    if (rc != CRL_OK) return rc;
    if (route->mode == CRL_POOL_ROUTE_CALL && route->layers &&
        p->base.spec.n_hidden > 1 && !ws->lmem)
        return crl_errf(err, CRL_EINVAL,
                        "pool: per-layer inputs without crl_pool_ws_layers");
    if (ws->k > 1 && (ws->k > ws->kmax || !ws->smem))
        return crl_errf(err, CRL_EINVAL,
                        "pool: soft k %d, room for %d (crl_pool_ws_soft)", ws->k,
                        ws->kmax);
    if (ws->hist && ws->hist_n) {
        if (ws->hist_cap < 0 || ws->hist_cap > ws->hist_max)
            return crl_errf(err, CRL_EINVAL, "pool: history of %d rows, room for %d",
                            ws->hist_cap, ws->hist_max);
        for (int r = 0; r < B; r++)
            if (ws->hist_n[r] < 0 || ws->hist_n[r] > ws->hist_cap)
                return crl_errf(err, CRL_EINVAL, "pool: row %d has %d history rows", r,
                                ws->hist_n[r]);
    }
    const crl_mlp *m = &p->base;
    ws->B = B;
    ws->x = x;
    ws->head = head;
    if (B == 0) return CRL_OK;
    pool_ctx k = {p, base_params, params, NULL, ws, route, err};
    const crl_net_bufs bufs = pool_bufs(ws);
    rc = crl_net_forward(&m->spec, base_params + m->ln_g, base_params + m->ln_b, &bufs,
                         &pool_ops, &k, x, B, head, ws->out);
    if (rc != CRL_OK) ws->B = 0;
    return rc;
}

void crl_pool_backward(const crl_pool *p, const float *base_params, const float *params,
                       float *grads, crl_pool_ws *ws, const float *dout) {
    const crl_mlp *m = &p->base;
    if (ws->B <= 0 || !grads) return;
    pool_ctx k = {p, base_params, params, grads, ws, NULL, NULL};
    const crl_net_bufs bufs = pool_bufs(ws);
    crl_net_backward(&m->spec, base_params + m->ln_g, NULL, NULL, &bufs, &pool_ops, &k,
                     ws->x, ws->B, ws->head, dout, 0, NULL);
    if (!soft_on(ws)) return;
    const int kk = ws->k;
    for (int r = 0; r < ws->B; r++)
        crl_soft_merge_backward(p, ws->gblk + (size_t)r * p->mod_size,
                                ws->kidx + (size_t)r * kk, ws->kw + (size_t)r * kk, kk,
                                grads);
}

/* ---- key pull ------------------------------------------------------------------ */

double crl_pool_pull(const crl_pool *p, const float *params, const crl_pool_ws *ws,
                     float coef, float *grads) {
    const int B = ws->B, D = p->key_dim;
    if (B <= 0) return 0.0;
    /* d cos(q, k) / dk = q / (|q| |k|) - cos * k / |k|^2. */
    const double f = -(double)coef / B;
    double sum = 0.0;
    for (int r = 0; r < B; r++) {
        const size_t ko = p->keys + (size_t)ws->sel[r] * D;
        const float *q = ws->q + (size_t)r * D, *k = params + ko;
        double qq, kk;
        const double c = cosine(D, q, k, &qq, &kk);
        sum += c;
        if (!grads || qq == 0.0 || kk == 0.0) continue;
        const double inv = 1.0 / (sqrt(qq) * sqrt(kk)), ck = c / kk;
        float *gk = grads + ko;
        for (int j = 0; j < D; j++)
            gk[j] += (float)(f * ((double)q[j] * inv - ck * k[j]));
    }
    return f * sum;
}
