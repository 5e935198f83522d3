/* Continual baselines, part 1: the actor's shared trunk as ranges of the flat
 * buffer, and the l2 / ewc quadratic penalty (agents/method_ewc.c computes
 * the Fisher, agents/method_packnet.c holds PackNet).
 *
 * Continual World's Regularization_SAC is the model: on each task change it
 * copies the shared ("common") actor variables to old_params and ADDS the new
 * task's importance to reg_weights (_merge_weights), and the auxiliary loss
 * coef * sum w (theta - old)^2 joins the batch-mean actor loss. */
#include "crl/methods.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int crl_trunk_ranges(const crl_mlp *m, crl_range *out) {
    const crl_mlp_spec *s = &m->spec;
    int k = 0;
    int prev = s->in_dim;
    for (int i = 0; i < s->n_hidden; i++) {
        const size_t h = (size_t)s->hidden[i];
        out[k++] = (crl_range){m->W[i], m->W[i] + (size_t)prev * h, CRL_TRUNK_KERNEL, i};
        out[k++] = (crl_range){m->b[i], m->b[i] + h, CRL_TRUNK_BIAS, i};
        if (i == 0 && s->layernorm_first) {
            out[k++] = (crl_range){m->ln_g, m->ln_g + h, CRL_TRUNK_NORM, 0};
            out[k++] = (crl_range){m->ln_b, m->ln_b + h, CRL_TRUNK_NORM, 0};
        }
        prev = s->hidden[i];
    }
    return k;
}

size_t crl_trunk_size(const crl_mlp *m) {
    crl_range r[CRL_TRUNK_MAX_RANGES];
    int k = crl_trunk_ranges(m, r);
    size_t n = 0;
    for (int i = 0; i < k; i++) n += r[i].hi - r[i].lo;
    return n;
}

/* ---- l2 / ewc -------------------------------------------------------------- */

int crl_reg_init(crl_reg *r, const crl_mlp *actor, double coef, crl_err *err) {
    memset(r, 0, sizeof *r);
    if (!(coef >= 0) || !isfinite(coef))
        return crl_errf(err, CRL_EINVAL, "l2/ewc: coefficient %g must be >= 0 and finite",
                        coef);
    r->n = actor->n_params;
    r->coef = coef;
    r->n_ranges = crl_trunk_ranges(actor, r->ranges);
    r->old = calloc(r->n, sizeof(float));
    r->weight = calloc(r->n, sizeof(float));
    if (!r->old || !r->weight) {
        crl_reg_free(r);
        return crl_errf(err, CRL_ENOMEM, "l2/ewc: out of memory");
    }
    return CRL_OK;
}

void crl_reg_free(crl_reg *r) {
    if (!r) return;
    free(r->old);
    free(r->weight);
    memset(r, 0, sizeof *r);
}

void crl_reg_task_end(crl_reg *r, const float *params, const float *importance) {
    for (int k = 0; k < r->n_ranges; k++) {
        const size_t lo = r->ranges[k].lo, hi = r->ranges[k].hi;
        memcpy(r->old + lo, params + lo, (hi - lo) * sizeof(float));
        if (importance)
            for (size_t i = lo; i < hi; i++) r->weight[i] += importance[i];
        else
            for (size_t i = lo; i < hi; i++) r->weight[i] += 1.0f;
    }
    r->tasks++;
}

double crl_reg_penalty(void *ctx, const float *params, float *grads, size_t n) {
    crl_reg *r = ctx;
    if (n != r->n) return NAN;
    if (r->tasks == 0) return 0.0; /* nothing to protect yet: w = 0 */
    const double c = r->coef;
    const float c2 = (float)(2.0 * c);
    double sum = 0.0;
    for (int k = 0; k < r->n_ranges; k++) {
        for (size_t i = r->ranges[k].lo; i < r->ranges[k].hi; i++) {
            /* The difference in double is exact for floats of similar
             * magnitude, which keeps the value smooth enough for finite
             * differences at any coefficient. */
            const double d = (double)params[i] - (double)r->old[i];
            sum += (double)r->weight[i] * d * d;
            grads[i] += c2 * r->weight[i] * (float)d;
        }
    }
    return c * sum;
}

void crl_reg_hooks(crl_reg *r, crl_sac_hooks *hooks) {
    memset(hooks, 0, sizeof *hooks);
    hooks->ctx = r;
    hooks->actor_penalty = crl_reg_penalty;
}

/* Checkpoint layout (little-endian host, like crl_sac_save):
 *   "CRLREG01", u64 n, i32 tasks, i32 0, f32 old[n], f32 weight[n]. */
static const char REG_MAGIC[8] = {'C', 'R', 'L', 'R', 'E', 'G', '0', '1'};

int crl_reg_save(const crl_reg *r, void **blob, size_t *n, crl_err *err) {
    const size_t bytes = 8 + 8 + 8 + 2 * r->n * sizeof(float);
    unsigned char *p = malloc(bytes);
    if (!p) return crl_errf(err, CRL_ENOMEM, "l2/ewc: out of memory while saving");
    uint64_t nn = r->n;
    int32_t head[2] = {r->tasks, 0};
    memcpy(p, REG_MAGIC, 8);
    memcpy(p + 8, &nn, 8);
    memcpy(p + 16, head, 8);
    memcpy(p + 24, r->old, r->n * sizeof(float));
    memcpy(p + 24 + r->n * sizeof(float), r->weight, r->n * sizeof(float));
    *blob = p;
    *n = bytes;
    return CRL_OK;
}

int crl_reg_load(crl_reg *r, const void *blob, size_t n, crl_err *err) {
    const unsigned char *p = blob;
    const size_t bytes = 8 + 8 + 8 + 2 * r->n * sizeof(float);
    uint64_t nn = 0;
    int32_t head[2] = {0, 0};
    if (n < 24 || memcmp(p, REG_MAGIC, 8) != 0)
        return crl_errf(err, CRL_ECORRUPT, "l2/ewc checkpoint: bad magic");
    memcpy(&nn, p + 8, 8);
    memcpy(head, p + 16, 8);
    if (nn != r->n || n != bytes || head[0] < 0)
        return crl_errf(err, CRL_ECORRUPT,
                        "l2/ewc checkpoint: %zu bytes for %llu parameters, expected %zu "
                        "for %zu",
                        n, (unsigned long long)nn, bytes, r->n);
    memcpy(r->old, p + 24, r->n * sizeof(float));
    memcpy(r->weight, p + 24 + r->n * sizeof(float), r->n * sizeof(float));
    r->tasks = head[0];
    return CRL_OK;
}
