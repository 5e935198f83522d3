/* crl policy: run a trained crl agent inside your own program.
 *
 * A policy file (.crlp, written by `crl export`; format in
 * docs/policy-format.md) holds everything needed to act: the networks, the
 * method's per-task structure and, per task, the observation and action
 * spec. Load it, then call crl_policy_act with observations you built, or
 * crl_policy_act_mj with your own MuJoCo model and data and let crl build
 * the observation and write the controls. Guide: docs/embedding.md.
 *
 * Errors: functions that can fail return a crl status (CRL_OK = 0, negative
 * on error, see base.h). Loading and binding fill a caller's errbuf with one
 * line; calls on an existing policy leave their message in
 * crl_policy_error(policy).
 *
 * Threads: a crl_policy is used by one thread at a time (it owns a
 * workspace). Separate objects are independent, also on separate threads.
 * crl_policy_clone makes another object that shares the read-only weights
 * (cheap: one workspace) for another thread.
 *
 * This header is the whole API of the policy runtime, libcrl_policy (no run
 * store, plots or windows: it links MuJoCo and, at run time, OpenBLAS); the
 * full libcrl has it too. Writing policy files from a run store is
 * crl_policy_export in export.h (libcrl only). */
#ifndef CRL_POLICY_H
#define CRL_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mjModel_;
struct mjData_;

typedef struct crl_policy crl_policy;

/* Policy file format version this crl writes and reads. */
#define CRL_POLICY_FORMAT_VERSION 1
/* Largest policy file the loader accepts (bytes). */
#define CRL_POLICY_MAX_BYTES ((size_t)1 << 30)
/* Largest magnitude of a network or L2M pool weight the loader accepts.
 * Trained crl policies stay below 20 (docs/robustness.md); a weight above
 * this bound is a damaged or forged file whose actions would overflow. */
#define CRL_POLICY_MAX_WEIGHT 1e6f

typedef enum {
    CRL_POLICY_DETERMINISTIC = 0, /* tanh(mean): what crl evaluates with */
    CRL_POLICY_SAMPLE = 1         /* tanh(mean + std * N(0,1)), noise from your rng */
} crl_policy_mode;

/* ---- loading ---------------------------------------------------------------- */

/* Read and check a policy file. On failure *out is NULL, nothing is leaked
 * and errbuf (errlen bytes, may be NULL) says why in one line: not a file,
 * empty, not a crl policy (magic), a newer format or section version
 * (including an `info` section above version 1), truncated, checksum
 * mismatch, an impossible size or value (checked before anything is
 * allocated from it), or a weight that is NaN, infinite or larger in
 * magnitude than CRL_POLICY_MAX_WEIGHT.
 * CRL_EINVAL (out or path NULL), CRL_ENOTFOUND (no such file, or OpenBLAS
 * cannot be loaded), CRL_EIO (cannot open or read), CRL_ECORRUPT,
 * CRL_EVERSION, CRL_ENOMEM. */
int crl_policy_load(const char *path, crl_policy **out, char *errbuf, size_t errlen);
/* The same from n bytes in memory (copied; data may be freed afterwards).
 * CRL_EINVAL (out NULL, or data NULL with n > 0), CRL_ENOTFOUND (OpenBLAS),
 * CRL_ECORRUPT, CRL_EVERSION, CRL_ENOMEM. */
int crl_policy_load_mem(const void *data, size_t n, crl_policy **out, char *errbuf,
                        size_t errlen);
/* Another policy object sharing p's weights, with its own workspace (same
 * batch size) and no MuJoCo bindings: one per thread. CRL_EINVAL (NULL
 * argument), CRL_ENOMEM. */
int crl_policy_clone(const crl_policy *p, crl_policy **out, char *errbuf, size_t errlen);
/* Free a policy (clones may be freed in any order, on any thread). Safe
 * with NULL. */
void crl_policy_free(crl_policy *p);

/* ---- what is in it ---------------------------------------------------------- */

int crl_policy_obs_dim(const crl_policy *p);
int crl_policy_act_dim(const crl_policy *p);
int crl_policy_num_tasks(const crl_policy *p);
/* The crl task name of a task ("push", "halfcheetah-moon", ...; the MJCF
 * path for a run trained on a user MJCF), or NULL for a bad index. */
const char *crl_policy_task_name(const crl_policy *p, int task);
/* Scenario position the task had in its run (-1 for a single-env run). */
int crl_policy_task_position(const crl_policy *p, int task);
/* Episode length and physics steps per env step of a task (0 if unknown). */
int crl_policy_task_max_steps(const crl_policy *p, int task);
int crl_policy_task_frame_skip(const crl_policy *p, int task);
/* The method the agent was trained with (a registered method's name, see
 * crl_method_find, or sac for a single-env run) and the crl version that
 * wrote the file. */
const char *crl_policy_method(const crl_policy *p);
const char *crl_policy_crl_version(const crl_policy *p);
/* Message of the last failed call on p ("" if none). */
const char *crl_policy_error(const crl_policy *p);

/* ---- acting on observations you built -------------------------------------- */

/* One action (act_dim floats in [-1, 1]) for one observation (obs_dim
 * floats) of task (0 .. num_tasks-1). mode CRL_POLICY_SAMPLE draws act_dim
 * normals from rng (required then; ignored otherwise). Allocates nothing.
 * CRL_EINVAL for a bad task, mode or a NULL argument, or an observation
 * with a NaN or infinite value (action is then left as it was; nothing is
 * computed). CRL_ENAN when the network overflows on a finite observation
 * (action is set to 0). A NaN action is never returned with CRL_OK. */
int crl_policy_act(crl_policy *p, int task, const float *obs, float *action,
                   crl_policy_mode mode, crl_rng *rng);
/* B rows at once (obs B x obs_dim, action B x act_dim, row-major), B <= the
 * batch size set with crl_policy_set_batch (1 after loading). Allocates
 * nothing. Floating-point rounding of a batch depends on its size (BLAS
 * blocking): row i equals crl_policy_act on that row only when B is the same,
 * which matters for bit-for-bit comparisons with `crl eval` (it acts on all
 * its episodes as one batch). An L2M policy also groups a batch's rows by the
 * modulator each routes to, so a row's rounding depends on the rows that
 * share it: the same batch gives the same actions. */
int crl_policy_act_batch(crl_policy *p, int task, int B, const float *obs, float *action,
                         crl_policy_mode mode, crl_rng *rng);
/* Size p's workspace for batches of up to max_batch rows (allocates).
 * CRL_EINVAL (p NULL, max_batch not in 1..2^20), CRL_ENOMEM (p keeps its
 * previous workspace). */
int crl_policy_set_batch(crl_policy *p, int max_batch);
/* Episodes start: an L2M policy whose routing query averages the last H
 * observations of an episode (L2MP version 2) forgets the ones p acted on
 * (row i of p's batches is env i; each handle and clone keeps its own).
 * Call it when your episodes start; crl_policy_reset_mj does. No-op for
 * other policies. */
void crl_policy_episode_start(crl_policy *p);

/* ---- acting in your MuJoCo simulation -----------------------------------------
 * For the built-in crl tasks. Your model must be the task's: compile the
 * MJCF that `crl export --task-xml TASK` (or crl_policy_write_task_xml)
 * writes, then call crl_policy_prepare_model once on it. One env step is:
 *
 *     crl_policy_act_mj(p, task, m, d);            observation -> ctrl/mocap
 *     for (k = 0; k < frame_skip; k++) mj_step(m, d);
 *     crl_policy_outcome_mj(p, task, m, d, &out);  reward, success, done
 *
 * and crl_policy_reset_mj starts an episode exactly as crl does for a seed.
 * The outcome call is optional (act_mj completes a step that was not asked
 * for). The first call for a task on a model compiles crl's description of
 * the task and binds it (allocates, may fail); later calls allocate nothing.
 * p keeps one episode state per task: for several mjData side by side use
 * one crl_policy_env each (below). */

typedef struct {
    float reward;  /* of the step (crl's rewards are float) */
    int success;   /* task success at this step */
    int terminal;  /* a true terminal state */
    int truncated; /* episode length reached (or the physics diverged) */
    int steps;     /* env steps in this episode so far */
} crl_policy_step;

/* Write the task's MJCF (one self-contained file) to path, atomically: a
 * temporary file in path's folder, synced and renamed over path, so a
 * failure (a full disk) leaves no file and any previous path untouched.
 * CRL_EINVAL (NULL argument, bad task, a user-MJCF task or a crl task of
 * other sizes than the file's), CRL_ENOTFOUND (this crl has no task of that
 * name), CRL_EMUJOCO, CRL_ENOMEM, CRL_EIO (the message has the OS reason). */
int crl_policy_write_task_xml(const crl_policy *p, int task, const char *path,
                              char *errbuf, size_t errlen);
/* Apply the task's physics modifiers (locomotion variants: gravity,
 * friction, body scale) to a model you compiled from that MJCF, and check
 * that it is the task's model. Call exactly once per compiled model (a
 * second call applies the factors again); a no-op for tasks without
 * modifiers. The result equals crl's own model of the task field for field.
 * CRL_EINVAL (NULL argument, bad task, not the task's model), CRL_ENOTFOUND,
 * CRL_EMUJOCO, CRL_ENOMEM (making crl's description of the task). */
int crl_policy_prepare_model(const crl_policy *p, int task, struct mjModel_ *m,
                             char *errbuf, size_t errlen);

/* Start an episode on d: mj_resetData, the task's initial state for seed
 * (objects, goal, joint noise: the state crl_env_reset draws), mj_forward.
 * reset_mj, act_mj and outcome_mj return CRL_EINVAL (NULL argument, bad
 * task, a model that is not the task's) or what binding the task on first
 * use returns (CRL_ENOTFOUND, CRL_EMUJOCO, CRL_ENOMEM); the message is in
 * crl_policy_error(p). */
int crl_policy_reset_mj(crl_policy *p, int task, const struct mjModel_ *m,
                        struct mjData_ *d, uint64_t seed);
/* Build the task's observation from m and d, act deterministically, and
 * apply the action as crl does: d->ctrl (through the task's action
 * modifiers) or, for manipulation tasks, the mocap target of the hand.
 * CRL_EMUJOCO when the observation built from d is not finite (the
 * physics diverged: nothing is applied; reset the episode), and
 * crl_policy_act's CRL_ENAN. */
int crl_policy_act_mj(crl_policy *p, int task, const struct mjModel_ *m,
                      struct mjData_ *d);
/* Outcome of the step applied by the last act_mj (after your mj_step calls). */
int crl_policy_outcome_mj(crl_policy *p, int task, const struct mjModel_ *m,
                          struct mjData_ *d, crl_policy_step *out);

/* ---- one episode state per mjData ------------------------------------------- */

typedef struct crl_policy_env crl_policy_env;

/* Bind task of p to model m (as prepared above). m must outlive env; env
 * may outlive p. Allocates. CRL_EINVAL (NULL argument, bad task, a
 * user-MJCF task, not the task's model), CRL_ENOTFOUND, CRL_EMUJOCO,
 * CRL_ENOMEM. */
int crl_policy_env_create(const crl_policy *p, int task, const struct mjModel_ *m,
                          crl_policy_env **out, char *errbuf, size_t errlen);
void crl_policy_env_free(crl_policy_env *env); /* safe with NULL */
/* As crl_policy_reset_mj; writes the first observation if obs is not NULL. */
void crl_policy_env_reset(crl_policy_env *env, struct mjData_ *d, uint64_t seed,
                          float *obs);
/* The observation (obs_dim floats) crl would give the agent now. */
void crl_policy_env_observe(crl_policy_env *env, struct mjData_ *d, float *obs);
/* Apply an action (act_dim floats, clipped to [-1, 1], NaN -> 0). Also
 * zeroes d's bad-qpos/qvel/qacc warning counters, as crl does before its
 * physics steps, to see a divergence in this step. */
void crl_policy_env_apply(crl_policy_env *env, struct mjData_ *d, const float *action);
/* Outcome of the last applied step, after your mj_step calls. */
void crl_policy_env_outcome(crl_policy_env *env, struct mjData_ *d, crl_policy_step *out);

/* ---- episodes as crl evaluates them ----------------------------------------- */

/* The seed of episode k of `crl eval --seed seed` (and of crl's evaluation
 * API): reset episode k with it to reproduce crl's episodes. */
uint64_t crl_policy_eval_seed(uint64_t seed, int k);

#ifdef __cplusplus
}
#endif
#endif
