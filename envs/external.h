/* crl envs, private: a built-in task on a caller's own mjModel / mjData
 * (used by the embedding API, embed/; see docs/embedding.md).
 *
 * crl's envs own their model and data. A program that embeds a crl agent
 * owns them instead: it compiled the task's MJCF itself and steps the
 * physics itself. Everything here runs the SAME task hooks (task.h) as
 * crl_env_reset / crl_env_step, on the caller's model and data, so that an
 * episode run in the caller's loop is bit for bit the episode crl runs:
 *
 *   crl_env_step(e, act, obs, info)            caller's loop
 *   ---------------------------------------    ------------------------------
 *   clip act, task->apply_action               crl_env_ext_apply(x, d, act)
 *   frame_skip x mj_step                       frame_skip x mj_step(m, d)
 *   steps++, task->reward, truncation          crl_env_ext_outcome(x, d, info)
 *   task->observe                              crl_env_ext_observe(x, d, obs)
 *
 * crl_env_ext_observe completes a step whose outcome was not asked for (the
 * reward hook also brings positions up to date after mj_step), so a caller
 * that ignores rewards still sees crl's observation.
 *
 * Knows nothing of nn. */
#ifndef CRL_ENVS_EXTERNAL_H
#define CRL_ENVS_EXTERNAL_H

#include "crl/env.h"

#include <mujoco/mujoco.h>

/* ---- the task's model for the caller ------------------------------------ */

/* The task's MJCF as one self-contained text (its embedded model file with
 * every <include> inlined, after a comment naming the task). Compiled with
 * mj_loadXML it gives the task's base model bit for bit; its physics
 * modifiers, if any, are applied by crl_env_prepare_model. *text is malloc'd and
 * NUL-terminated. CRL_EINVAL for a task that has no embedded model (a user
 * MJCF task). */
int crl_env_task_xml(const crl_env_spec *s, char **text, size_t *len, crl_err *err);

/* Run the task's setup on a model the caller compiled from the task's MJCF:
 * applies its physics modifiers (once: a second call applies them again)
 * and checks the model is one the task can drive. */
int crl_env_prepare_model(const crl_env_spec *s, mjModel *m, crl_err *err);

/* ---- a task bound to the caller's model ----------------------------------- */

typedef struct crl_env_ext crl_env_ext;

/* Bind spec's task to the caller's model m, which must have the same
 * structure as the task's own model (sizes and names; CRL_EINVAL with the
 * first difference otherwise). m must outlive x. Allocates the per-episode
 * task state. */
int crl_env_ext_create(const crl_env_spec *s, const mjModel *m, crl_env_ext **out,
                       crl_err *err);
void crl_env_ext_free(crl_env_ext *x);
const mjModel *crl_env_ext_model(const crl_env_ext *x);
const crl_env_spec *crl_env_ext_spec(const crl_env_ext *x);

/* crl_env_reset on the caller's data: mj_resetData, the task's seeded draw,
 * mj_forward. Writes the first observation if obs is not NULL. */
void crl_env_ext_reset(crl_env_ext *x, mjData *d, uint64_t seed, float *obs);
/* The observation crl would hand the agent now (completes a pending step
 * first, see above). */
void crl_env_ext_observe(crl_env_ext *x, mjData *d, float *obs);
/* Clip act (NaN -> 0) and apply it as crl_env_step does (ctrl, mocap, task
 * bookkeeping); the caller then runs frame_skip mj_step calls. */
void crl_env_ext_apply(crl_env_ext *x, mjData *d, const float *act);
/* Finish the step applied last: reward, success, terminal, truncated (as
 * crl_env_step reports them). Asking twice returns the same outcome; with
 * no step applied since the reset, all fields are 0. */
void crl_env_ext_outcome(crl_env_ext *x, mjData *d, crl_step_info *info);
/* Env steps applied in this episode. */
int crl_env_ext_steps(const crl_env_ext *x);

#endif
