/* Reservoir buffer for perfect memory (Vitter's Algorithm R, as in Continual
 * World's ReservoirReplayBuffer). Storage and sampling are the FIFO buffer's:
 * a reservoir only decides WHICH slot an offer writes, so it steers
 * crl_replay_add through its documented `next` slot instead of keeping a
 * second copy of the write code. */
#include "crl/reservoir.h"

#include <string.h>

int crl_reservoir_init(crl_reservoir *r, int obs_dim, int act_dim, int64_t capacity,
                       crl_err *err) {
    memset(r, 0, sizeof *r);
    return crl_replay_init(&r->buf, obs_dim, act_dim, capacity, err);
}

void crl_reservoir_free(crl_reservoir *r) {
    crl_replay_free(&r->buf);
    r->seen = 0;
}

int64_t crl_reservoir_add(crl_reservoir *r, crl_rng *rng, const float *obs,
                          const float *act, float rew, const float *obs2, int done,
                          int task) {
    const int64_t t = r->seen++, cap = r->buf.capacity;
    int64_t slot = t;
    if (t >= cap) {
        /* Uniform in [0, t] inclusive: offer t survives with probability
         * cap / (t + 1), which keeps every earlier offer at cap / (t + 1)
         * too (by induction). [0, t) would favour late offers. */
        slot = (int64_t)crl_rng_below(rng, (uint64_t)t + 1);
        if (slot >= cap) return -1;
    }
    r->buf.next = slot;
    crl_replay_add(&r->buf, obs, act, rew, obs2, done, task);
    return slot;
}

void crl_reservoir_sample(const crl_reservoir *r, crl_rng *rng, int B, crl_batch *out) {
    crl_replay_sample(&r->buf, rng, B, out);
}
