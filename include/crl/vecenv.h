/* crl vecenv: N instances of one task stepped in one call.
 *
 * A crl_vecenv holds n crl_env instances of one spec and steps them on
 * batched, row-major float arrays (row i is env i), optionally on two
 * worker lanes (the calling thread and one persistent worker, core's
 * two-lane fork-join). Every env resets itself when its episode ends
 * (auto-reset), so a caller only ever calls step after the first reset.
 * The instances are independent and each uses only its own seeds, so the
 * results are the same bit for bit with one lane or two, and equal to n
 * single crl_env stepped one by one with the seeds of
 * crl_vecenv_episode_seed. Stepping allocates nothing. Used by the Python
 * package (crl.VecEnv, docs/python.md) and by crl's own evaluation, which
 * runs a batch of episodes with given seeds to their ends (auto-reset off,
 * crl_vecenv_reset_each). */
#ifndef CRL_VECENV_H
#define CRL_VECENV_H

#include <stdint.h>

#include "base.h"
#include "env.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crl_vecenv crl_vecenv;

/* Largest number of envs in one crl_vecenv. */
#define CRL_VECENV_MAX 4096

/* n instances of spec (which must outlive the vecenv), stepped on `threads`
 * lanes (1: the caller only; 2: the caller and one worker thread, each
 * stepping half of the envs). CRL_EINVAL for n outside [1, CRL_VECENV_MAX]
 * or threads not 1 or 2; CRL_ENOMEM. */
int crl_vecenv_create(const crl_env_spec *spec, int n, int threads, crl_vecenv **out,
                      crl_err *err);
/* Free the envs and stop the worker. Safe with NULL. */
void crl_vecenv_free(crl_vecenv *v);

int crl_vecenv_size(const crl_vecenv *v);    /* n */
int crl_vecenv_threads(const crl_vecenv *v); /* lanes actually running: 1 or 2 */
const crl_env_spec *crl_vecenv_spec(const crl_vecenv *v);
/* Env i (0 .. n-1), e.g. to render it or read its state; NULL for a bad i.
 * Stepping or resetting it directly bypasses the vecenv's episode seeds. */
crl_env *crl_vecenv_env(crl_vecenv *v, int i);

/* The seed of episode k (0, 1, ...) of env i of a vecenv reset with seed:
 * seed itself for env 0's first episode (so a vecenv of one env starts as
 * crl_env_reset(e, seed) does), otherwise a splitmix64 hash of
 * (seed, i, k). */
uint64_t crl_vecenv_episode_seed(uint64_t seed, int i, int64_t k);

/* Start episode 0 of every env: env i resets with
 * crl_vecenv_episode_seed(seed, i, 0) and writes its first observation to
 * row i of obs (n x obs_dim; may be NULL). */
void crl_vecenv_reset(crl_vecenv *v, uint64_t seed, float *obs);

/* One step of every env: act is n x act_dim (clipped to [-1, 1], NaN read
 * as 0, as crl_env_step does). Writes, per env i:
 *   reward[i], terminated[i], truncated[i], success[i] (0 or 1) of this step;
 *   final_obs row i: the observation this step reached (may be NULL);
 *   obs row i: the same observation if the episode goes on, else the first
 *     observation of env i's next episode, which starts here with the next
 *     episode seed (auto-reset; terminated or truncated say that it
 *     happened, final_obs holds where the old episode ended).
 * Any of reward, terminated, truncated, success may be NULL. No allocation. */
void crl_vecenv_step(crl_vecenv *v, const float *act, float *obs, float *reward,
                     unsigned char *terminated, unsigned char *truncated,
                     unsigned char *success, float *final_obs);

/* Start one episode in every env with its own seed: env i resets with
 * seeds[i] and writes its first observation to row i of obs (may be NULL).
 * With auto-reset on, env i's later episodes take the seeds
 * crl_vecenv_episode_seed(seeds[i], i, k), k = 1, 2, ... */
void crl_vecenv_reset_each(crl_vecenv *v, const uint64_t *seeds, float *obs);

/* Auto-reset on (the default) or off. Off: an env whose episode ended is
 * not stepped again until the next reset; crl_vecenv_step leaves its rows
 * of every output untouched and it keeps the state the episode ended in
 * (to be read or recorded). Takes effect at once. */
void crl_vecenv_set_autoreset(crl_vecenv *v, int on);
/* End env i's episode now: it is not stepped again until the next reset
 * (whatever the auto-reset setting), as if its episode had ended. */
void crl_vecenv_end(crl_vecenv *v, int i);
/* Envs whose current episode has not ended (n when auto-reset is on). */
int crl_vecenv_running(const crl_vecenv *v);
/* 1 if env i's episode ended and it waits for a reset (auto-reset off),
 * else 0 (also for a bad i). */
int crl_vecenv_ended(const crl_vecenv *v, int i);
/* What env i's last step returned (reward, success, terminal, truncated);
 * all zero after a reset; NULL for a bad i. With auto-reset on it is the
 * step that ended the old episode when that step reset the env. */
const crl_step_info *crl_vecenv_last_info(const crl_vecenv *v, int i);

/* Episodes env i has started since the last crl_vecenv_reset (1 after it),
 * and the steps taken in its current episode. -1 / -1 for a bad i. */
int64_t crl_vecenv_episodes(const crl_vecenv *v, int i);
int crl_vecenv_episode_steps(const crl_vecenv *v, int i);

#ifdef __cplusplus
}
#endif
#endif
