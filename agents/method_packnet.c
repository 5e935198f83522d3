/* PackNet over the actor's trunk, after Continual World's packnet.py.
 *
 * CW encodes "free" as "owned by the current task" (owner = k + 1 for what
 * task k prunes); here free is explicit, which reads the same at every step:
 *   train task k:   kernels that are free train (CW: owner == k);
 *   prune task k:   per kernel tensor, the smallest |w| fraction
 *                   tasks_left / (tasks_left + 1) of the free weights -> 0,
 *                   still free; the rest -> owned by k;
 *   retrain task k: only k's own kernels train;
 *   view of task i: kernels owned by tasks <= i, plus the free ones when i
 *                   is the current task or later (they are the current
 *                   task's weights until its prune).
 * CW prunes each kernel tensor separately, so every layer gives each task the
 * same share; so do we. CW's threshold (|w| <= the floor(n p)-th smallest)
 * prunes floor(n p) + 1 weights and every tie; we prune exactly
 * floor(n p), ties broken by index, so the shares are exact and the result
 * does not depend on the sort. */
#include "crl/methods.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agents/continual_state.h"
#include "nn/packnet.h"

/* The owners, their check and the views are nn/packnet.h's, shared with the
 * policy runtime, so its values are ours. */
_Static_assert(CRL_PACKNET_FREE == CRL_PKVIEW_FREE, "packnet: free owner");
_Static_assert(CRL_PACKNET_SHARED == CRL_PKVIEW_SHARED, "packnet: shared owner");

static void update_mask(crl_packnet *p) {
    /* Heads (and anything else off the trunk) always train: each task's head
     * only receives gradients from its own samples. */
    memset(p->trainable, 1, p->actor.n_params);
    const int train = p->phase == CRL_PACKNET_TRAIN;
    for (int k = 0; k < p->n_ranges; k++) {
        const crl_range *r = &p->ranges[k];
        if (r->kind != CRL_TRUNK_KERNEL) {
            /* CW freezes biases and normalisation at task 0's end, before
             * its retraining. */
            const uint8_t on = p->task <= 0 && train;
            memset(p->trainable + r->lo, on, r->hi - r->lo);
            continue;
        }
        for (size_t i = r->lo; i < r->hi; i++)
            p->trainable[i] =
                train ? p->owner[i] == CRL_PACKNET_FREE : p->owner[i] == p->task;
    }
}

int crl_packnet_init(crl_packnet *p, const crl_mlp *actor, int n_tasks, crl_err *err) {
    memset(p, 0, sizeof *p);
    if (n_tasks < 1 || n_tasks > INT16_MAX)
        return crl_errf(err, CRL_EINVAL, "packnet: %d tasks, must be in [1, %d]", n_tasks,
                        INT16_MAX);
    p->actor = *actor;
    p->n_ranges = crl_trunk_ranges(actor, p->ranges);
    p->n_tasks = n_tasks;
    p->task = -1;
    p->phase = CRL_PACKNET_TRAIN;
    p->owner = malloc(actor->n_params * sizeof *p->owner);
    p->trainable = malloc(actor->n_params);
    if (!p->owner || !p->trainable) {
        crl_packnet_free(p);
        return crl_errf(err, CRL_ENOMEM, "packnet: out of memory");
    }
    crl_pkview_place(actor, p->owner);
    update_mask(p);
    return CRL_OK;
}

void crl_packnet_free(crl_packnet *p) {
    if (!p) return;
    free(p->owner);
    free(p->trainable);
    memset(p, 0, sizeof *p);
}

int crl_packnet_task_start(crl_packnet *p, int task, crl_err *err) {
    const int first = p->task < 0 && task == 0;
    const int next =
        p->task >= 0 && task == p->task + 1 && p->phase == CRL_PACKNET_RETRAIN;
    if (task >= p->n_tasks || (!first && !next))
        return crl_errf(err, CRL_EINVAL,
                        "packnet: cannot start task %d (current %d, %s, %d tasks): tasks "
                        "run in order and each ends with a prune",
                        task, p->task,
                        p->phase == CRL_PACKNET_TRAIN ? "training" : "pruned",
                        p->n_tasks);
    p->task = task;
    p->phase = CRL_PACKNET_TRAIN;
    update_mask(p);
    return CRL_OK;
}

typedef struct {
    float mag;
    uint32_t idx;
} mag_idx;

static int by_magnitude(const void *a, const void *b) {
    const mag_idx *x = a, *y = b;
    if (x->mag != y->mag) return x->mag < y->mag ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int crl_packnet_prune(crl_packnet *p, float *params, crl_err *err) {
    if (p->task < 0 || p->phase != CRL_PACKNET_TRAIN)
        return crl_errf(err, CRL_EINVAL, "packnet: prune needs a task in training");
    size_t biggest = 0;
    for (int k = 0; k < p->n_ranges; k++)
        if (p->ranges[k].hi - p->ranges[k].lo > biggest)
            biggest = p->ranges[k].hi - p->ranges[k].lo;
    mag_idx *v = malloc((biggest ? biggest : 1) * sizeof *v);
    if (!v) return crl_errf(err, CRL_ENOMEM, "packnet: out of memory while pruning");
    const int64_t left = (int64_t)p->n_tasks - 1 - p->task;
    for (int k = 0; k < p->n_ranges; k++) {
        const crl_range *r = &p->ranges[k];
        if (r->kind != CRL_TRUNK_KERNEL) continue;
        size_t nf = 0;
        for (size_t i = r->lo; i < r->hi; i++)
            if (p->owner[i] == CRL_PACKNET_FREE)
                v[nf++] = (mag_idx){fabsf(params[i]), (uint32_t)(i - r->lo)};
        qsort(v, nf, sizeof *v, by_magnitude);
        const size_t cut = (size_t)((int64_t)nf * left / (left + 1));
        for (size_t e = 0; e < nf; e++) {
            const size_t i = r->lo + v[e].idx;
            if (e < cut)
                params[i] = 0.0f;
            else
                p->owner[i] = (int16_t)p->task;
        }
    }
    free(v);
    p->phase = CRL_PACKNET_RETRAIN;
    update_mask(p);
    return CRL_OK;
}

void crl_packnet_view(const crl_packnet *p, const float *params, int task, float *out) {
    crl_pkview(&p->actor, p->owner, p->task, params, task, out);
}

void crl_packnet_hooks(crl_packnet *p, crl_sac_hooks *hooks) {
    memset(hooks, 0, sizeof *hooks);
    hooks->actor_trainable = p->trainable;
}

/* Checkpoint layout (little-endian host):
 *   "CRLPKN01", u64 n_params, i32 n_tasks, task, phase, 0, i16 owner[n]. */
static const char PKN_MAGIC[8] = {'C', 'R', 'L', 'P', 'K', 'N', '0', '1'};

int crl_packnet_save(const crl_packnet *p, void **blob, size_t *n, crl_err *err) {
    const size_t np = p->actor.n_params, bytes = 32 + np * sizeof(int16_t);
    unsigned char *b = malloc(bytes);
    if (!b) return crl_errf(err, CRL_ENOMEM, "packnet: out of memory while saving");
    uint64_t nn = np;
    int32_t head[4] = {p->n_tasks, p->task, p->phase, 0};
    memcpy(b, PKN_MAGIC, 8);
    memcpy(b + 8, &nn, 8);
    memcpy(b + 16, head, 16);
    memcpy(b + 32, p->owner, np * sizeof(int16_t));
    *blob = b;
    *n = bytes;
    return CRL_OK;
}

int crl_packnet_load(crl_packnet *p, const void *blob, size_t n, crl_err *err) {
    const unsigned char *b = blob;
    const size_t np = p->actor.n_params, bytes = 32 + np * sizeof(int16_t);
    uint64_t nn = 0;
    int32_t head[4];
    if (n < 32 || memcmp(b, PKN_MAGIC, 8) != 0)
        return crl_errf(err, CRL_ECORRUPT, "packnet checkpoint: bad magic");
    memcpy(&nn, b + 8, 8);
    memcpy(head, b + 16, 16);
    if (nn != np || n != bytes || head[0] != p->n_tasks)
        return crl_errf(err, CRL_ECORRUPT,
                        "packnet checkpoint: %llu parameters / %d tasks in %zu bytes, "
                        "expected %zu / %d",
                        (unsigned long long)nn, head[0], n, np, p->n_tasks);
    if (head[1] < -1 || head[1] >= p->n_tasks ||
        (head[2] != CRL_PACKNET_TRAIN && head[2] != CRL_PACKNET_RETRAIN))
        return crl_errf(err, CRL_ECORRUPT, "packnet checkpoint: bad task %d or phase %d",
                        head[1], head[2]);
    /* Validate every owner before touching p, so a bad blob changes nothing:
     * kernels hold a task that has started (or free), all else is shared. */
    const unsigned char *own = b + 32;
    for (size_t i = 0; i < np; i++) {
        int16_t o;
        memcpy(&o, own + i * sizeof o, sizeof o);
        int kernel = 0;
        for (int k = 0; k < p->n_ranges; k++)
            if (p->ranges[k].kind == CRL_TRUNK_KERNEL && i >= p->ranges[k].lo &&
                i < p->ranges[k].hi)
                kernel = 1;
        if (!crl_pkview_owner_ok(kernel, o, head[1]))
            return crl_errf(err, CRL_ECORRUPT,
                            "packnet checkpoint: owner %d of parameter %zu is impossible",
                            o, i);
    }
    memcpy(p->owner, own, np * sizeof(int16_t));
    p->task = head[1];
    p->phase = head[2];
    update_mask(p);
    return CRL_OK;
}

/* ---- the method ----------------------------------------------------------------- */

static int pk_init(cstate *st, crl_err *err) {
    int rc = crl_packnet_init(&st->pk, crl_sac_actor(st->sac), st->n, err);
    if (!rc) st->has_pk = 1;
    return rc;
}

static void pk_attach(cstate *st, crl_sac_hooks *h) {
    crl_packnet_hooks(&st->pk, h);
}

static int pk_task_start(cstate *st, int k, int64_t t, crl_err *err) {
    return t == 0 ? crl_packnet_task_start(&st->pk, k, err) : CRL_OK;
}

/* The weights task j owns. */
static int pk_eval_begin(cstate *st, int j, int track_rows) {
    (void)track_rows;
    if (st->pk.task < 0) return 0;
    float *p = crl_sac_actor_params(st->sac);
    memcpy(st->saved, p, st->na * sizeof(float));
    crl_packnet_view(&st->pk, st->saved, j, p);
    return 1;
}

static int pk_task_end(cstate *st, crl_store *store, int64_t run_id, int k,
                       int64_t reserve, crl_err *err) {
    (void)store, (void)run_id, (void)reserve;
    int rc = crl_packnet_prune(&st->pk, crl_sac_actor_params(st->sac), err);
    if (rc || k >= st->n - 1) return rc;
    /* Retraining lets the kept weights recover from the prune. */
    crl_sac_reset_optimizers(st->sac);
    rc = cstate_update_round(
        st, (int64_t)(st->c->packnet_retrain * st->c->steps_per_task), err);
    crl_sac_reset_optimizers(st->sac);
    return rc;
}

static int pk_save(cstate *st, void **blob, size_t *n, crl_err *err) {
    return crl_packnet_save(&st->pk, blob, n, err);
}

static int pk_load(cstate *st, const void *blob, size_t n, crl_err *err) {
    return crl_packnet_load(&st->pk, blob, n, err);
}

static void pk_free(cstate *st) {
    if (st->has_pk) crl_packnet_free(&st->pk);
    st->has_pk = 0;
}

const crl_method_impl crl_method_packnet_impl = {
    .flags = CRL_METHOD_CONTINUAL | CRL_METHOD_TASK_IDS | CRL_METHOD_EXPORTABLE,
    .policy = CRL_METHOD_POLICY_PACKNET,
    .cost = 1.1,
    .init = pk_init,
    .attach = pk_attach,
    .task_start = pk_task_start,
    .eval_begin = pk_eval_begin,
    .task_end = pk_task_end,
    .save = pk_save,
    .load = pk_load,
    .free = pk_free,
};
