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
    int mix_dim; /* CSP: columns of mix, 0 if none */
    float *mix;  /* B x mix_dim: the CSP alpha the transition was collected with */
    /* History windows (L2M's query, crl_batch_alloc_history): up to hist_cap
     * observations of the same episode BEFORE obs (hist_obs, B x hist_cap x
     * obs_dim, row r's n = hist_n[r] valid ones first, oldest first) and
     * before obs2 (hist_obs2, hist_n2: they end with obs itself). 0 / NULL
     * if none. */
    int hist_cap;
    float *hist_obs, *hist_obs2;
    int *hist_n, *hist_n2;
} crl_batch;

/* Allocate a batch of up to max_B rows (one allocation). */
int crl_batch_alloc(crl_batch *b, int max_B, int obs_dim, int act_dim, crl_err *err);
void crl_batch_free(crl_batch *b);
/* Give a batch a mix column of mix_dim floats per row (CSP's alpha). */
int crl_batch_alloc_mix(crl_batch *b, int mix_dim, crl_err *err);
/* Give a batch history windows of up to H - 1 earlier observations per row
 * (H >= 2; H = 1 frees them: no windows), filled by crl_replay_sample. */
int crl_batch_alloc_history(crl_batch *b, int H, int obs_dim, crl_err *err);

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
    /* Step of each transition inside its episode (0 = the episode's first):
     * a transition continues the episode of the one added before it iff
     * that one is not terminal and its obs2 is bit for bit this obs (a reset
     * starts from a new state). History windows never cross an episode
     * start nor reach a slot already overwritten. */
    int32_t *ep_step;
    int mix_dim; /* 0, or floats of mix per transition (crl_replay_init_mix) */
    float *mix;
} crl_replay;

int crl_replay_init(crl_replay *r, int obs_dim, int act_dim, int64_t capacity,
                    crl_err *err);
/* Store a mix vector (CSP's alpha, mix_dim floats) with every transition,
 * written by crl_replay_add_mix and sampled into batches that have a mix
 * column of the same width. Call after crl_replay_init. */
int crl_replay_init_mix(crl_replay *r, int mix_dim, crl_err *err);
void crl_replay_free(crl_replay *r);
/* Forget every transition (Continual World clears at a task change). */
void crl_replay_clear(crl_replay *r);
/* Append one transition, overwriting the oldest when full. No allocation. */
void crl_replay_add(crl_replay *r, const float *obs, const float *act, float rew,
                    const float *obs2, int done, int task);
/* Draw B transitions uniformly with replacement into out (B <= its size).
 * Requires r->size > 0. No allocation. */
/* crl_replay_add plus the transition's mix (mix_dim floats, or NULL = 0). */
void crl_replay_add_mix(crl_replay *r, const float *obs, const float *act, float rew,
                        const float *obs2, int done, int task, const float *mix);
/* With history windows in out (crl_batch_alloc_history), each row's window
 * is the contiguous earlier transitions of its episode that are still in
 * the buffer, at most out->hist_cap. */
void crl_replay_sample(const crl_replay *r, crl_rng *rng, int B, crl_batch *out);
/* The window of transition i (a slot): up to cap earlier transitions of its
 * episode still in the buffer, oldest first, copied as observations into
 * dst (for obs) and dst2 (for obs2: ending with obs[i]); returns their
 * counts in *n and *n2. Either dst may be NULL. No allocation. */
void crl_replay_window(const crl_replay *r, int64_t i, int cap, float *dst, int *n,
                       float *dst2, int *n2);

#ifdef __cplusplus
}
#endif
#endif
