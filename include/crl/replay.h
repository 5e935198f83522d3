/* crl replay: transition buffers. */
#ifndef CRL_REPLAY_H
#define CRL_REPLAY_H

#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A minibatch laid out for the learner: row-major arrays of B rows. */
typedef struct {
    int B;       /* rows in use */
    int cap;     /* rows allocated */
    float *obs;  /* B x obs_dim */
    float *act;  /* B x act_dim */
    float *rew;  /* B */
    float *obs2; /* B x obs_dim */
    float *done; /* B, 1 = terminal (not truncation) */
    int *task;   /* B, task index (selects heads and entropy coefficient) */
} crl_batch;

/* Allocate a batch of up to max_B rows (one allocation). */
int crl_batch_alloc(crl_batch *b, int max_B, int obs_dim, int act_dim, crl_err *err);
void crl_batch_free(crl_batch *b);

/* FIFO ring buffer of transitions with task ids. The arrays are allocated
 * once at init (untouched pages cost no memory until written). */
typedef struct {
    int obs_dim, act_dim;
    int64_t capacity;
    int64_t size;  /* valid transitions */
    int64_t next;  /* slot the next add writes */
    int64_t added; /* total ever added */
    float *obs, *act, *rew, *obs2, *done;
    int32_t *task;
} crl_replay;

int crl_replay_init(crl_replay *r, int obs_dim, int act_dim, int64_t capacity,
                    crl_err *err);
void crl_replay_free(crl_replay *r);
/* Forget every transition (Continual World clears at a task change). */
void crl_replay_clear(crl_replay *r);
/* Append one transition, overwriting the oldest when full. No allocation. */
void crl_replay_add(crl_replay *r, const float *obs, const float *act, float rew,
                    const float *obs2, int done, int task);
/* Draw B transitions uniformly with replacement into out (B <= its size).
 * Requires r->size > 0. No allocation. */
void crl_replay_sample(const crl_replay *r, crl_rng *rng, int B, crl_batch *out);

#ifdef __cplusplus
}
#endif
#endif
