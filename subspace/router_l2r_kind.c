/* The `l2r` router kind (docs/routers.md "l2r, wired"): a linear classifier
 * query -> modulator (crl_l2r, hidden 0) trained at each task end on the
 * method's query memory, labelled with the modulator the task trained.
 * Training rows of a task go to one modulator fixed at its start (the
 * least-used, as arrow); acting rows go to the classifier's prediction once
 * it has been trained, to that modulator before. The classifier (weights,
 * its memory, its seed and train count) is the router's checkpoint state. */
#include "crl/router.h"
#include "crl/routers.h"

#include <stdlib.h>
#include <string.h>

#define L2R_HIDDEN 0         /* linear: see docs/routers.md */
#define L2R_BATCH  256       /* rows per workspace pass */
#define L2R_SEED   0x4c3252u /* the router has no run seed; fixed */
#define L2R_EPOCHS 200
#define L2R_LR     1e-2f
#define L2R_MB     64

typedef struct {
    crl_l2r clf;
    int train_mod, eval_on;
} l2r_rt;

static int l2r_init(crl_router *r, crl_err *err) {
    if (r->pool->M < 2)
        return crl_errf(err, CRL_EINVAL, "l2m router l2r: needs at least 2 modulators");
    l2r_rt *k = calloc(1, sizeof *k);
    if (!k) return crl_errf(err, CRL_ENOMEM, "l2m router: out of memory");
    r->impl = k;
    return crl_l2r_init(&k->clf, r->pool->key_dim, r->pool->M, L2R_HIDDEN, L2R_BATCH,
                        L2R_SEED, err);
}

static void l2r_destroy(crl_router *r) {
    l2r_rt *k = r->impl;
    if (k) crl_l2r_free(&k->clf);
    free(k);
    r->impl = NULL;
}

static int l2r_route(crl_router *r, const float *params, const crl_router_rows *rows,
                     crl_router_out *out, crl_err *err) {
    (void)params, (void)err;
    l2r_rt *k = r->impl;
    const int train =
        !rows->acting || (!k->eval_on && r->cfg.collect == CRL_ROUTER_COLLECT_TRAIN);
    if (train || k->clf.n_trains == 0) {
        for (int i = 0; i < rows->B; i++) out->sel[i] = k->train_mod;
        return CRL_OK;
    }
    crl_l2r_predict(&k->clf, rows->q, rows->B, out->sel);
    return CRL_OK;
}

static void l2r_task_start(crl_router *r, int task, const int64_t *start_counts) {
    (void)task;
    l2r_rt *k = r->impl;
    const int64_t *c = start_counts ? start_counts : r->counts;
    int best = 0;
    for (int m = 1; c && m < r->pool->M; m++)
        if (c[m] < c[best]) best = m;
    k->train_mod = best;
    k->eval_on = 0;
}

static void l2r_eval(crl_router *r, int on) {
    l2r_rt *k = r->impl;
    k->eval_on = on;
}

static int l2r_learn(crl_router *r, const float *q, int n, int label, crl_err *err) {
    l2r_rt *k = r->impl;
    if (n <= 0 || label < 0) return CRL_OK;
    int rc = crl_l2r_add(&k->clf, q, n, label, -1, err);
    if (!rc) rc = crl_l2r_train(&k->clf, L2R_EPOCHS, L2R_LR, L2R_MB, NULL, err);
    return rc;
}

static size_t l2r_state_size(const crl_router *r) {
    const l2r_rt *k = r->impl;
    unsigned char *b = NULL;
    size_t n = 0;
    if (crl_l2r_save(&k->clf, &b, &n, NULL)) return 0;
    free(b);
    return n;
}

static void l2r_state_save(const crl_router *r, void *dst) {
    const l2r_rt *k = r->impl;
    unsigned char *b = NULL;
    size_t n = 0;
    if (crl_l2r_save(&k->clf, &b, &n, NULL)) return;
    memcpy(dst, b, n);
    free(b);
}

static int l2r_state_load(crl_router *r, const void *src, size_t n, crl_err *err) {
    l2r_rt *k = r->impl;
    crl_l2r t;
    int rc = crl_l2r_load(&t, src, n, L2R_BATCH, err);
    if (rc) return rc;
    if (t.D != r->pool->key_dim || t.K != r->pool->M) {
        crl_l2r_free(&t);
        return crl_errf(err, CRL_ECORRUPT, "l2m router l2r: state of another pool");
    }
    crl_l2r_free(&k->clf);
    k->clf = t;
    return CRL_OK;
}

const crl_router_ops crl_router_l2r_ops = {
    .name = "l2r",
    .what = "a linear classifier of the query, trained on the query memory at task ends",
    .needs = 0,
    .top_k = 1,
    .init = l2r_init,
    .destroy = l2r_destroy,
    .route = l2r_route,
    .task_start = l2r_task_start,
    .eval = l2r_eval,
    .learn = l2r_learn,
    .state_size = l2r_state_size,
    .state_save = l2r_state_save,
    .state_load = l2r_state_load,
};
