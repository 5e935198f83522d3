/* crl envs: the environment interface.
 *
 * A crl_env_spec is the immutable description of a task (compiled mjModel,
 * sizes, task logic), shared read-only by any number of crl_env instances.
 * A crl_env owns its mjData and its seeded generator; instances are
 * independent, so several can step side by side (also on separate threads).
 * Observations and actions are float; physics is mjtNum (double).
 * Stepping never allocates. Knows nothing of nn. */
#ifndef CRL_ENV_H
#define CRL_ENV_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mjModel_;
struct mjData_;

typedef struct crl_env_spec crl_env_spec;
typedef struct crl_env crl_env;

typedef struct {
    float reward;
    int success;   /* task success at this step (0 for pure locomotion) */
    int terminal;  /* a true terminal state (bootstrap with 0) */
    int truncated; /* the episode hit its step limit (not terminal) */
} crl_step_info;

/* Registered environments, in listing order. */
typedef struct {
    const char *name;
    const char *description; /* one line */
    const char *group;       /* control, manipulation, pretrain, locomotion */
    int obs_dim, act_dim;
    int has_scripted; /* a scripted (privileged) policy exists */
} crl_env_entry;
/* Returns the number of entries and points *list at a static table. */
int crl_env_list(const crl_env_entry **list);

/* Compile the named environment. CRL_ENOTFOUND for an unknown name (the
 * message lists the known ones), CRL_EMUJOCO if the model fails to compile. */
int crl_env_spec_create(const char *name, crl_env_spec **out, crl_err *err);
void crl_env_spec_free(crl_env_spec *s);

/* A task from a user's own MJCF file: the actuators are the actions (mapped
 * from [-1, 1] onto their ctrlrange), the observation is the model's sensors
 * if it has any, else qpos and qvel. The reward is one of two built-in
 * choices. */
typedef enum {
    CRL_XML_REWARD_FORWARD = 0, /* x-velocity of `body` (default: first body) */
    CRL_XML_REWARD_REACH = 1    /* -distance of `site` to `target` */
} crl_xml_reward;

typedef struct {
    crl_xml_reward reward;
    const char *body; /* CRL_XML_REWARD_FORWARD, NULL = first non-world body */
    const char *site; /* CRL_XML_REWARD_REACH */
    double target[3]; /* CRL_XML_REWARD_REACH */
    int max_steps;    /* 0 = 1000 */
    int frame_skip;   /* 0 = 5 */
} crl_xml_task;

/* Compile path as a task. CRL_ENOTFOUND (no such file), CRL_EMUJOCO (MuJoCo's
 * message), CRL_EINVAL (no actuators, unknown body/site, ...): one clear
 * line naming the file. */
int crl_env_spec_create_xml(const char *path, const crl_xml_task *opts,
                            crl_env_spec **out, crl_err *err);

const char *crl_env_spec_name(const crl_env_spec *s);
int crl_env_obs_dim(const crl_env_spec *s);
int crl_env_act_dim(const crl_env_spec *s);
int crl_env_max_steps(const crl_env_spec *s);  /* episode length */
int crl_env_frame_skip(const crl_env_spec *s); /* mj_step calls per env step */
/* The task's own picture of its scene: 1 and view = {lookat x, y, z,
 * distance, azimuth, elevation (degrees, negative looks down)} of a free
 * camera that frames the workspace (every manipulation task has one), or 0
 * (view untouched): use the model's cameras. */
int crl_env_view(const crl_env_spec *s, double view[6]);
const struct mjModel_ *crl_env_model(const crl_env_spec *s);

/* A new instance of spec (which must outlive it). */
int crl_env_create(const crl_env_spec *s, crl_env **out, crl_err *err);
void crl_env_free(crl_env *e);

/* Start an episode. The initial state is a pure function of seed. Writes
 * the first observation (obs_dim floats). */
void crl_env_reset(crl_env *e, uint64_t seed, float *obs);
/* Apply act (act_dim floats in [-1, 1], clipped), advance frame_skip physics
 * steps, write the next observation and the step's outcome. */
void crl_env_step(crl_env *e, const float *act, float *obs, crl_step_info *info);

/* The task's scripted policy: a hand-written controller reading privileged
 * state (object and goal positions). Writes act_dim floats. CRL_ENOTFOUND if
 * the task has none. No allocation. */
int crl_env_scripted_action(crl_env *e, float *act);

int crl_env_steps_taken(const crl_env *e); /* in this episode */
struct mjData_ *crl_env_data(crl_env *e);  /* physics state */
const crl_env_spec *crl_env_get_spec(const crl_env *e);

/* ---- state snapshots (exact replay) ---------------------------------------
 * A snapshot holds everything the next crl_env_step reads, so that restoring
 * it into any instance of the same spec continues bit for bit: the physics
 * state MuJoCo 2.2's mj_step reads (time, qpos, qvel, act, ctrl,
 * qacc_warmstart, mocap pose, applied forces, userdata), the episode's step
 * count, the last action, the env's generator and the task's own state
 * (goal, per-episode draws, ...). Byte layout: docs/replay.md. */

/* Largest snapshot of an instance of s, in bytes. */
size_t crl_env_state_size(const crl_env_spec *s);
/* Write a snapshot of e into buf (crl_env_state_size bytes); returns the
 * bytes written (applied forces and userdata are left out while all zero).
 * Reads only; no allocation. */
size_t crl_env_get_state(const crl_env *e, void *buf);
/* Restore a snapshot of n bytes taken from an instance of the same task.
 * Derived quantities are recomputed (mj_forward) without disturbing the
 * solver's warm start. CRL_ECORRUPT (e unchanged) if the snapshot is
 * malformed or its sizes do not match this spec. No allocation. */
int crl_env_set_state(crl_env *e, const void *buf, size_t n, crl_err *err);
/* Compare two snapshots of spec s bit for bit: 0 if identical, else 1 with
 * the first difference described in what ("qpos[3] 0.25 vs 0.5"). */
int crl_env_state_diff(const crl_env_spec *s, const void *a, size_t na, const void *b,
                       size_t nb, char *what, size_t n);

/* Hash of the compiled model (64-bit FNV-1a of MuJoCo's binary model
 * format), written as 16 lowercase hex digits into hex[17]. It covers every
 * physics modifier, which edit the model. CRL_ENOMEM. */
int crl_env_model_hash(const crl_env_spec *s, char hex[17], crl_err *err);
/* The task's modifiers and options as a one-line JSON object ("{}" for a
 * task without any); for a task from an MJCF file, what
 * crl_env_spec_create_xml needs to make it again. Truncated to n bytes. */
void crl_env_modifiers(const crl_env_spec *s, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
