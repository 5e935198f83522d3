/* FIFO transition buffer. */
#include "crl/replay.h"

#include <stdlib.h>
#include <string.h>

int crl_batch_alloc(crl_batch *b, int max_B, int obs_dim, int act_dim, crl_err *err) {
    memset(b, 0, sizeof *b);
    if (max_B <= 0 || obs_dim <= 0 || act_dim <= 0)
        return crl_errf(err, CRL_EINVAL, "batch: bad size %d x (%d, %d)", max_B, obs_dim,
                        act_dim);
    size_t n = (size_t)max_B * (2 * (size_t)obs_dim + (size_t)act_dim + 2);
    float *mem = malloc(n * sizeof(float));
    int *task = malloc((size_t)max_B * sizeof(int));
    if (!mem || !task) {
        free(mem);
        free(task);
        return crl_errf(err, CRL_ENOMEM, "batch: out of memory");
    }
    b->B = max_B;
    b->cap = max_B;
    b->obs = mem;
    b->obs2 = b->obs + (size_t)max_B * obs_dim;
    b->act = b->obs2 + (size_t)max_B * obs_dim;
    b->rew = b->act + (size_t)max_B * act_dim;
    b->done = b->rew + max_B;
    b->task = task;
    return CRL_OK;
}

int crl_batch_alloc_mix(crl_batch *b, int mix_dim, crl_err *err) {
    if (mix_dim <= 0)
        return crl_errf(err, CRL_EINVAL, "batch: bad mix width %d", mix_dim);
    free(b->mix);
    b->mix = calloc((size_t)b->cap * mix_dim, sizeof(float));
    b->mix_dim = b->mix ? mix_dim : 0;
    return b->mix ? CRL_OK : crl_errf(err, CRL_ENOMEM, "batch: out of memory");
}

int crl_batch_alloc_history(crl_batch *b, int H, int obs_dim, crl_err *err) {
    if (H < 1 || obs_dim <= 0)
        return crl_errf(err, CRL_EINVAL, "batch: bad history %d", H);
    free(b->hist_obs);
    free(b->hist_n);
    b->hist_obs = b->hist_obs2 = NULL;
    b->hist_n = b->hist_n2 = NULL;
    b->hist_cap = 0;
    if (H == 1) return CRL_OK;
    const size_t rows = (size_t)b->cap * (size_t)(H - 1);
    b->hist_obs = calloc(2 * rows * (size_t)obs_dim, sizeof(float));
    b->hist_n = calloc(2 * (size_t)b->cap, sizeof(int));
    if (!b->hist_obs || !b->hist_n) {
        free(b->hist_obs);
        free(b->hist_n);
        b->hist_obs = NULL;
        b->hist_n = NULL;
        return crl_errf(err, CRL_ENOMEM, "batch: out of memory");
    }
    b->hist_obs2 = b->hist_obs + rows * (size_t)obs_dim;
    b->hist_n2 = b->hist_n + b->cap;
    b->hist_cap = H - 1;
    return CRL_OK;
}

void crl_batch_free(crl_batch *b) {
    if (b) free(b->hist_obs);
    if (b) free(b->hist_n);
    if (b) free(b->obs);
    if (b) free(b->task);
    if (b) free(b->mix);
    if (b) memset(b, 0, sizeof *b);
}

int crl_replay_init(crl_replay *r, int obs_dim, int act_dim, int64_t capacity,
                    crl_err *err) {
    memset(r, 0, sizeof *r);
    if (obs_dim <= 0 || act_dim <= 0 || capacity <= 0)
        return crl_errf(err, CRL_EINVAL,
                        "replay: bad size (obs %d, act %d, capacity %lld)", obs_dim,
                        act_dim, (long long)capacity);
    r->obs_dim = obs_dim;
    r->act_dim = act_dim;
    r->capacity = capacity;
    size_t c = (size_t)capacity;
    r->obs = malloc(c * obs_dim * sizeof(float));
    r->obs2 = malloc(c * obs_dim * sizeof(float));
    r->act = malloc(c * act_dim * sizeof(float));
    r->rew = malloc(c * sizeof(float));
    r->done = malloc(c * sizeof(float));
    r->task = malloc(c * sizeof(int32_t));
    r->ep_step = malloc(c * sizeof(int32_t));
    if (!r->obs || !r->obs2 || !r->act || !r->rew || !r->done || !r->task ||
        !r->ep_step) {
        crl_replay_free(r);
        return crl_errf(err, CRL_ENOMEM, "replay: cannot allocate %lld transitions",
                        (long long)capacity);
    }
    return CRL_OK;
}

int crl_replay_init_mix(crl_replay *r, int mix_dim, crl_err *err) {
    if (mix_dim <= 0)
        return crl_errf(err, CRL_EINVAL, "replay: bad mix width %d", mix_dim);
    free(r->mix);
    r->mix = calloc((size_t)r->capacity * mix_dim, sizeof(float));
    r->mix_dim = r->mix ? mix_dim : 0;
    return r->mix ? CRL_OK
                  : crl_errf(err, CRL_ENOMEM, "replay: cannot allocate the mix column");
}

void crl_replay_free(crl_replay *r) {
    free(r->mix);
    free(r->obs);
    free(r->obs2);
    free(r->act);
    free(r->rew);
    free(r->done);
    free(r->task);
    free(r->ep_step);
    memset(r, 0, sizeof *r);
}

void crl_replay_clear(crl_replay *r) {
    r->size = 0;
    r->next = 0;
}

void crl_replay_add(crl_replay *r, const float *obs, const float *act, float rew,
                    const float *obs2, int done, int task) {
    crl_replay_add_mix(r, obs, act, rew, obs2, done, task, NULL);
}

void crl_replay_add_mix(crl_replay *r, const float *obs, const float *act, float rew,
                        const float *obs2, int done, int task, const float *mix) {
    int64_t i = r->next;
    if (r->mix_dim) {
        float *m = r->mix + i * r->mix_dim;
        if (mix)
            memcpy(m, mix, sizeof(float) * r->mix_dim);
        else
            memset(m, 0, sizeof(float) * r->mix_dim);
    }
    /* Does it continue the episode of the transition before it? */
    const int64_t prev = (i + r->capacity - 1) % r->capacity;
    const int cont =
        r->size > 0 && r->done[prev] == 0.0f &&
        !memcmp(r->obs2 + prev * r->obs_dim, obs, sizeof(float) * r->obs_dim);
    r->ep_step[i] = cont && r->ep_step[prev] < INT32_MAX ? r->ep_step[prev] + 1 : 0;
    memcpy(r->obs + i * r->obs_dim, obs, sizeof(float) * r->obs_dim);
    memcpy(r->obs2 + i * r->obs_dim, obs2, sizeof(float) * r->obs_dim);
    memcpy(r->act + i * r->act_dim, act, sizeof(float) * r->act_dim);
    r->rew[i] = rew;
    r->done[i] = done ? 1.0f : 0.0f;
    r->task[i] = task;
    r->next = (i + 1) % r->capacity;
    if (r->size < r->capacity) r->size++;
    r->added++;
}

void crl_replay_window(const crl_replay *r, int64_t i, int cap, float *dst, int *n,
                       float *dst2, int *n2) {
    const int od = r->obs_dim;
    /* Earlier slots still held: all before i until the oldest (slot 0 while
     * the buffer fills, slot `next` once it wraps). */
    const int64_t oldest = r->size < r->capacity ? 0 : r->next;
    const int64_t held = (i - oldest + r->capacity) % r->capacity;
    int64_t k = r->ep_step[i];
    if (k > held) k = held;
    /* obs: the k' = min(cap, k) transitions before i. */
    const int a = (int)(k < cap ? k : cap);
    for (int j = 0; dst && j < a; j++) {
        const int64_t s = (i - a + j + r->capacity) % r->capacity;
        memcpy(dst + (size_t)j * od, r->obs + s * od, sizeof(float) * od);
    }
    if (n) *n = a;
    /* obs2: the cap observations before obs2[i] end with obs[i]. */
    const int b = (int)(k + 1 < cap ? k + 1 : cap);
    for (int j = 0; dst2 && j < b; j++) {
        const int64_t s = (i - b + 1 + j + r->capacity) % r->capacity;
        memcpy(dst2 + (size_t)j * od, r->obs + s * od, sizeof(float) * od);
    }
    if (n2) *n2 = cap > 0 ? b : 0;
}

void crl_replay_sample(const crl_replay *r, crl_rng *rng, int B, crl_batch *out) {
    const int od = r->obs_dim, ad = r->act_dim, hc = out->hist_cap;
    for (int k = 0; k < B; k++) {
        int64_t i = (int64_t)crl_rng_below(rng, (uint64_t)r->size);
        if (hc > 0)
            crl_replay_window(r, i, hc, out->hist_obs + (size_t)k * hc * od,
                              out->hist_n + k, out->hist_obs2 + (size_t)k * hc * od,
                              out->hist_n2 + k);
        memcpy(out->obs + (size_t)k * od, r->obs + i * od, sizeof(float) * od);
        memcpy(out->obs2 + (size_t)k * od, r->obs2 + i * od, sizeof(float) * od);
        memcpy(out->act + (size_t)k * ad, r->act + i * ad, sizeof(float) * ad);
        out->rew[k] = r->rew[i];
        out->done[k] = r->done[i];
        out->task[k] = r->task[i];
        if (out->mix_dim && out->mix_dim == r->mix_dim)
            memcpy(out->mix + (size_t)k * r->mix_dim, r->mix + i * r->mix_dim,
                   sizeof(float) * r->mix_dim);
    }
    out->B = B;
}
