/* crl collect: episodes of a task collected into a dataset (dataset.h) for
 * offline training, each with its replay record (episode.h). Used by
 * `crl dataset` (docs/dataset.md).
 *
 * A collector is made once per task and reused for every episode: it owns
 * `width` envs of the task in a vecenv (vecenv.h), stepped side by side on
 * one or two lanes, and per env an episode recorder and the arrays of one
 * episode of up to crl_env_max_steps steps, all allocated at creation
 * (nothing is allocated per step or per episode). Each episode uses only
 * its own seed, its own generator and (a policy source) its own clone of
 * the policy, so an episode's content does not depend on the width, the
 * lanes or the episodes beside it.
 *
 * The actions come from a source: the task's scripted policy, or a policy
 * (.crlp, policy.h; deterministic actions) acting as one of its tasks. On
 * top of the source, Gaussian noise of scale noise is added to every action
 * component and the result is clipped to the action bounds [-1, 1]; a
 * random episode instead draws every component uniformly from [-1, 1]. The
 * stored action is exactly the one crl_env_step was given, so the stored
 * observations follow from reset(seed) and the stored actions. */
#ifndef CRL_COLLECT_H
#define CRL_COLLECT_H

#include <stdint.h>

#include "base.h"
#include "dataset.h"
#include "env.h"
#include "policy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crl_collector crl_collector;

/* A collector for spec (which must outlive it). policy NULL: the scripted
 * policy (CRL_ENOTFOUND if the task has none). Otherwise the policy acts as
 * its task policy_task, whose obs and action sizes must be the env's
 * (CRL_EINVAL naming both); the collector does not own it. */
int crl_collector_create(const crl_env_spec *spec, crl_policy *policy, int policy_task,
                         crl_collector **out, crl_err *err);
void crl_collector_free(crl_collector *c); /* safe with NULL */

/* Largest width of a collector. */
#define CRL_COLLECT_MAX_WIDTH 64
/* A collector of up to width (1 .. CRL_COLLECT_MAX_WIDTH) episodes side by
 * side, stepped on lanes (1 or 2) lanes; crl_collector_create is width 1
 * on one lane. With a policy, width - 1 clones of it are made
 * (crl_policy_clone). CRL_EINVAL for a bad width or lanes. */
int crl_collector_create_batch(const crl_env_spec *spec, crl_policy *policy,
                               int policy_task, int width, int lanes, crl_collector **out,
                               crl_err *err);
int crl_collector_width(const crl_collector *c);

/* count (1 .. width) episodes side by side: episode j resets with seeds[j],
 * acts as random[j] says, draws its random actions or noise from rngs[j]
 * only, and is labelled sources[j]. When all have ended they are appended
 * to ds in order j = 0, 1, ... (ds NULL: not stored), and eps[j] (which
 * must hold count entries) receives a view of episode j, valid until the
 * next call. Errors as crl_collector_run; an error while the episodes run
 * stores none of them, one while appending keeps those appended before. */
int crl_collector_run_many(crl_collector *c, int count, const uint64_t *seeds,
                           const int *random, double noise, crl_rng *rngs,
                           const char *const *sources, crl_dataset *ds,
                           crl_ds_episode *eps, crl_err *err);

/* One episode: reset the env with env_seed, act (random != 0: uniform
 * random actions; else the source plus noise, both drawn from rng), record,
 * and append the episode to ds with the given source label (ds NULL: not
 * stored). *ep (may be NULL) receives a view of the episode, valid until
 * the next call. Errors: the dataset's (CRL_EIO, CRL_EBUSY, ...), a
 * policy's failure (CRL_EINVAL), CRL_EINVAL if the record cannot be
 * closed. */
int crl_collector_run(crl_collector *c, uint64_t env_seed, int random, double noise,
                      crl_rng *rng, const char *source, crl_dataset *ds,
                      crl_ds_episode *ep, crl_err *err);

/* Episode i (0-based) of n is a random-action episode: exactly
 * round(n * frac) of the n are, spread evenly. */
int crl_collect_is_random(int64_t i, double frac);

/* The latest checkpoint of run run_id in the run store db as a policy, by
 * the same export as `crl export` (every method it can export): scenario
 * position pos, or every task if pos < 0. The file is written to a
 * temporary path under $TMPDIR (or /tmp) and removed once loaded. */
int crl_collect_run_policy(const char *db, int64_t run_id, int pos, crl_policy **out,
                           crl_err *err);

/* The outcome of re-simulating a dataset episode. */
typedef struct {
    int replayable; /* 0: it cannot be re-simulated here; what says why */
    int verified;   /* the record replays (crl_episode_verify) and the stored
                       observations, actions, rewards and flags equal the
                       re-simulated ones bit for bit */
    int step;       /* first step that differs (-1: none or not a step) */
    char what[480]; /* one line ("" when verified) */
} crl_collect_check;

/* Re-simulate ep on a fresh env of spec: (1) its record through
 * crl_episode_verify; (2) reset(ep->seed) and ep's actions, comparing every
 * observation, reward and flag with the stored ones bit for bit, and the
 * record's actions with the stored ones. An episode recorded with another
 * MuJoCo version or model (hash) or without a record is not replayable
 * (replayable 0, the reason in what). Returns an error only when it could
 * not run (CRL_ENOMEM, a corrupt record: CRL_ECORRUPT). */
int crl_collect_verify(const crl_env_spec *spec, const crl_ds_episode *ep,
                       crl_collect_check *res, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
