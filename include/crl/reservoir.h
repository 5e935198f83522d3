/* crl reservoir: the perfect-memory (pm) buffer. One buffer for the whole
 * task sequence, never cleared; once full, Vitter's Algorithm R keeps every
 * transition ever offered with the same probability capacity / offered, so
 * each past task keeps a share proportional to its number of transitions. */
#ifndef CRL_RESERVOIR_H
#define CRL_RESERVOIR_H

#include <stdint.h>

#include "base.h"
#include "replay.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CW's pm trains with batches of 512 (set crl_sac_config.batch to match). */
#define CRL_PM_BATCH 512

typedef struct {
    crl_replay buf; /* storage: buf.size grows to buf.capacity, then stays */
    int64_t seen;   /* transitions ever offered */
} crl_reservoir;

/* Allocate capacity transitions (pages cost memory only once written).
 * CRL_EINVAL on bad sizes, CRL_ENOMEM. */
int crl_reservoir_init(crl_reservoir *r, int obs_dim, int act_dim, int64_t capacity,
                       crl_err *err);
void crl_reservoir_free(crl_reservoir *r);
/* Offer one transition. While the buffer has room it is appended; after
 * that the t-th offer (t counted from 0) replaces a uniformly chosen slot
 * with probability capacity / (t + 1) and is dropped otherwise. Draws from
 * rng only once full. Returns the slot written, or -1 if dropped. No
 * allocation. */
int64_t crl_reservoir_add(crl_reservoir *r, crl_rng *rng, const float *obs,
                          const float *act, float rew, const float *obs2, int done,
                          int task);
/* Draw B transitions uniformly with replacement from what the buffer holds
 * (requires at least one). Rows carry their task index, so a batch mixes
 * tasks in proportion. No allocation. */
void crl_reservoir_sample(const crl_reservoir *r, crl_rng *rng, int B, crl_batch *out);

#ifdef __cplusplus
}
#endif
#endif
