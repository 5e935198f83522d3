/* Arrow routing: prototypes from the modulators' own updates, and the scores
 * of rows against them. See include/crl/routers.h and docs/routers.md.
 *
 * Shapes, in crl's row-vector convention (z = x W + b, W stored in x out row
 * major): a modulator changes layer l's Linear output by x Delta with Delta
 * in x out. The input directions that Delta amplifies most are the top
 * eigenvectors of Delta Delta^T, i.e. the LEFT singular vectors of Delta as
 * stored (in PyTorch's out x in convention the same vectors are the RIGHT
 * singular vectors of Delta^T, which is how the paper phrases it).
 *
 * LAPACK is column major: a row-major in x r matrix is its column-major
 * transpose, so every matrix handed to sgesvd is copied into column-major
 * order first (copies are tiny next to the SVD). */
#include "crl/routers.h"

#include "crl/blas.h"

#include <math.h>
#include <string.h>

static int layer_in(const crl_pool *p, int l) {
    return l == 0 ? p->base.spec.in_dim : p->base.spec.hidden[l - 1];
}

static int imin(int a, int b) {
    return a < b ? a : b;
}

size_t crl_arrow_proto_dim(const crl_pool *p) {
    size_t n = 0;
    for (int l = 0; l < p->base.spec.n_hidden; l++) n += (size_t)layer_in(p, l);
    return n;
}

size_t crl_arrow_proto_offset(const crl_pool *p, int l) {
    size_t n = 0;
    for (int k = 0; k < l; k++) n += (size_t)layer_in(p, k);
    return n;
}

/* LAPACK's optimal workspace for one sgesvd shape (query mode). */
static int svd_lwork(char jobu, char jobvt, int m, int n, int ldu, int ldvt, int *lwork,
                     crl_err *err) {
    float a = 0, s = 0, u = 0, vt = 0, w = 0;
    int rc = crl_sgesvd(jobu, jobvt, m, n, &a, m, &s, &u, ldu, &vt, ldvt, &w, -1, err);
    if (rc != CRL_OK) return rc;
    *lwork = (int)w + 1;
    return CRL_OK;
}

/* Floats of layer l's buffers (without LAPACK's work) and its lwork. */
static int layer_need(const crl_pool *p, int l, size_t *floats, int *lwork,
                      crl_err *err) {
    const int in = layer_in(p, l), out = p->base.spec.hidden[l];
    if (p->kind == CRL_POOL_LORA) {
        const int r = p->rank, kk = imin(in, r), kc = imin(kk, out);
        *floats = (size_t)in * r + kk + (size_t)in * kk + (size_t)kk * r +
                  (size_t)kk * out + kc + (size_t)kk * kc;
        int w1 = 0, w2 = 0;
        int rc = svd_lwork('S', 'S', in, r, in, kk, &w1, err);
        if (rc == CRL_OK) rc = svd_lwork('S', 'N', kk, out, kk, 1, &w2, err);
        *lwork = w1 > w2 ? w1 : w2;
        return rc;
    }
    const int mn = imin(in, out);
    *floats = (size_t)in * out + mn + (size_t)in * mn;
    return svd_lwork('S', 'N', in, out, in, 1, lwork, err);
}

int crl_arrow_ws_floats(const crl_pool *p, size_t *n, crl_err *err) {
    size_t best = 0;
    for (int l = 0; l < p->base.spec.n_hidden; l++) {
        size_t f = 0;
        int lw = 0;
        int rc = layer_need(p, l, &f, &lw, err);
        if (rc != CRL_OK) return rc;
        if (f + (size_t)lw > best) best = f + (size_t)lw;
    }
    *n = best;
    return CRL_OK;
}

/* Unit norm (in double), then the sign that makes the largest-magnitude entry
 * positive (the first one on a tie). */
static void fix_direction(int n, float *v) {
    double nn = 0.0;
    for (int i = 0; i < n; i++) nn += (double)v[i] * v[i];
    if (nn == 0.0) return;
    const double inv = 1.0 / sqrt(nn);
    int big = 0;
    for (int i = 1; i < n; i++)
        if (fabsf(v[i]) > fabsf(v[big])) big = i;
    const double sg = v[big] < 0 ? -inv : inv;
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * sg);
}

/* LoRA, layer l of one modulator: Delta = s A B. With A = U_A S_A V_A^T (thin
 * SVD, U_A in x kk with orthonormal columns), Delta = U_A C where
 * C = S_A V_A^T (s B) is kk x out, so Delta Delta^T = U_A (C C^T) U_A^T and the
 * top left singular vector of Delta is U_A u_C, u_C the top left singular
 * vector of C, with the same singular value. */
static int proto_lora(const crl_pool *p, int l, const float *mod, float *v, float *ws,
                      int lwork, crl_err *err) {
    const int in = layer_in(p, l), out = p->base.spec.hidden[l];
    const int r = p->rank, kk = imin(in, r), kc = imin(kk, out);
    const float *A = mod + p->A[l], *Bm = mod + p->B[l];
    float *acm = ws, *sa = acm + (size_t)in * r, *ua = sa + kk,
          *vta = ua + (size_t)in * kk;
    float *c = vta + (size_t)kk * r, *sc = c + (size_t)kk * out, *uc = sc + kc;
    float *work = uc + (size_t)kk * kc;
    for (int i = 0; i < in; i++)
        for (int k = 0; k < r; k++) acm[i + (size_t)k * in] = A[(size_t)i * r + k];
    int rc = crl_sgesvd('S', 'S', in, r, acm, in, sa, ua, in, vta, kk, work, lwork, err);
    if (rc != CRL_OK) return rc;
    for (int a = 0; a < kk; a++)
        for (int j = 0; j < out; j++) {
            double acc = 0.0;
            for (int k = 0; k < r; k++)
                acc += (double)vta[a + (size_t)k * kk] * Bm[(size_t)k * out + j];
            c[a + (size_t)j * kk] = (float)((double)sa[a] * p->scale * acc);
        }
    float dummy = 0;
    rc = crl_sgesvd('S', 'N', kk, out, c, kk, sc, uc, kk, &dummy, 1, work, lwork, err);
    if (rc != CRL_OK) return rc;
    if (!(sc[0] > 0.0f)) {
        memset(v, 0, (size_t)in * sizeof *v);
        return CRL_OK;
    }
    for (int i = 0; i < in; i++) {
        double acc = 0.0;
        for (int a = 0; a < kk; a++) acc += (double)ua[i + (size_t)a * in] * uc[a];
        v[i] = (float)acc;
    }
    fix_direction(in, v);
    return CRL_OK;
}

/* (IA)^3, layer l: y = (x W + b) g = x W + b + x W diag(g - 1) + b (g - 1), so
 * the input-dependent update is Delta = W diag(g - 1) (in x out); one SVD. */
static int proto_ia3(const crl_pool *p, int l, const float *base_params, const float *mod,
                     float *v, float *ws, int lwork, crl_err *err) {
    const int in = layer_in(p, l), out = p->base.spec.hidden[l], mn = imin(in, out);
    const float *W = base_params + p->base.W[l], *g = mod + p->g[l];
    float *d = ws, *s = d + (size_t)in * out, *u = s + mn, *work = u + (size_t)in * mn;
    for (int i = 0; i < in; i++)
        for (int j = 0; j < out; j++)
            d[i + (size_t)j * in] = W[(size_t)i * out + j] * (g[j] - 1.0f);
    float dummy = 0;
    int rc = crl_sgesvd('S', 'N', in, out, d, in, s, u, in, &dummy, 1, work, lwork, err);
    if (rc != CRL_OK) return rc;
    if (!(s[0] > 0.0f)) {
        memset(v, 0, (size_t)in * sizeof *v);
        return CRL_OK;
    }
    memcpy(v, u, (size_t)in * sizeof *v);
    fix_direction(in, v);
    return CRL_OK;
}

int crl_arrow_prototypes(const crl_pool *p, const float *base_params, const float *params,
                         int m0, int m1, float *protos, float *ws, size_t ws_n,
                         crl_err *err) {
    if (!p || !params || !protos || !ws)
        return crl_errf(err, CRL_EINVAL, "arrow: NULL argument");
    if (p->kind == CRL_POOL_IA3 && !base_params)
        return crl_errf(err, CRL_EINVAL,
                        "arrow: (IA)^3 prototypes need the base weights");
    if (m0 < 0 || m1 > p->M || m0 > m1)
        return crl_errf(err, CRL_EINVAL,
                        "arrow: modulator range [%d, %d) outside [0, %d)", m0, m1, p->M);
    size_t need = 0;
    int rc = crl_arrow_ws_floats(p, &need, err);
    if (rc != CRL_OK) return rc;
    if (ws_n < need)
        return crl_errf(err, CRL_EINVAL, "arrow: workspace of %zu floats, %zu needed",
                        ws_n, need);
    const size_t dim = crl_arrow_proto_dim(p);
    int lworks[CRL_MLP_MAX_HIDDEN] = {0};
    for (int l = 0; l < p->base.spec.n_hidden; l++) {
        size_t f = 0;
        rc = layer_need(p, l, &f, &lworks[l], err);
        if (rc != CRL_OK) return rc;
    }
    for (int m = m0; m < m1; m++) {
        const float *mod = params + crl_pool_mod_offset(p, m);
        for (int l = 0; l < p->base.spec.n_hidden; l++) {
            const int lwork = lworks[l];
            float *v = protos + (size_t)m * dim + crl_arrow_proto_offset(p, l);
            rc = p->kind == CRL_POOL_LORA
                     ? proto_lora(p, l, mod, v, ws, lwork, err)
                     : proto_ia3(p, l, base_params, mod, v, ws, lwork, err);
            if (rc != CRL_OK) return rc;
        }
    }
    return CRL_OK;
}

/* Float dot product with eight partial sums combined in a fixed order (the
 * pool's routing dot product): the same bits on every machine. */
static float dot8(int n, const float *a, const float *b) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) s[l] += a[j + l] * b[j + l];
    for (int l = 0; j < n; j++, l++) s[l] += a[j] * b[j];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void crl_arrow_scores(const crl_pool *p, const float *protos, const float *const *h,
                      int B, int normalise, double *scores) {
    const int M = p->M;
    const size_t dim = crl_arrow_proto_dim(p);
    for (size_t i = 0; i < (size_t)B * M; i++) scores[i] = 0.0;
    size_t off = 0;
    for (int l = 0; l < p->base.spec.n_hidden; l++) {
        const int in = layer_in(p, l);
        for (int r = 0; r < B; r++) {
            const float *x = h[l] + (size_t)r * in;
            double scale = 1.0;
            if (normalise) {
                double nn = 0.0;
                for (int j = 0; j < in; j++) nn += (double)x[j] * x[j];
                if (nn == 0.0) continue; /* no direction: adds 0 */
                scale = 1.0 / sqrt(nn);
            }
            double *sr = scores + (size_t)r * M;
            for (int m = 0; m < M; m++)
                sr[m] +=
                    fabs((double)dot8(in, x, protos + (size_t)m * dim + off)) * scale;
        }
        off += (size_t)in;
    }
}
