/* crl envs, private: the task vtable and the layout of specs and instances.
 *
 * A task is a constant struct crl_task_def: which model to load, the sizes,
 * and five hooks. To add a task, write envs/<task>.c defining one
 * `const struct crl_task_def crl_task_<name>` and list it in envs/registry.c.
 *
 * The order of work in one env step (envs/env.c):
 *   clip act to [-1, 1] (NaN -> 0)
 *   task->apply_action(e, act)         write ctrl (and record pre-step values)
 *   frame_skip x mj_step
 *   task->reward(e, act, info)         reward, success, terminal
 *   task->observe(e, obs)
 *   truncated = !terminal && steps >= max_steps
 * and in reset:
 *   mj_resetData, task->reset(e, rng), mj_forward, task->observe.
 * Hooks must not allocate; per-instance memory is e->task_state (state_size
 * bytes, zeroed at create), per-spec constants are s->task_data. */
#ifndef CRL_ENVS_TASK_H
#define CRL_ENVS_TASK_H

#include "crl/env.h"

#include <mujoco/mujoco.h>

struct crl_task_def {
    const char *name;
    const char *description; /* one line, shown by crl_env_list */
    const char *model;       /* file name of an embedded model (envs/models/) */
    int obs_dim, act_dim;    /* act_dim must equal the model's nu */
    int max_steps;           /* episode length (truncation) */
    int frame_skip;          /* mj_step calls per env step */
    size_t state_size;       /* bytes of per-instance task state */
    size_t data_size;        /* bytes of per-spec constant task data */

    /* Optional. After the model is compiled: edit the model (modifiers),
     * look up ids into s->task_data, adjust s->obs_dim etc. and check that the
     * model is what the hooks expect. Returns 0 or a crl error via err. */
    int (*setup)(crl_env_spec *s, crl_err *err);
    /* Set the initial state after mj_resetData; draw only from rng. */
    void (*reset)(crl_env *e, crl_rng *rng);
    /* Optional (NULL: crl_task_map_actions). act is clipped to [-1, 1]. */
    void (*apply_action)(crl_env *e, const float *act);
    void (*observe)(const crl_env *e, float *obs);
    /* Fill info->reward, ->success, ->terminal (info arrives zeroed). */
    void (*reward)(crl_env *e, const float *act, crl_step_info *info);

    /* Optional: the task's scripted policy, reading privileged state
     * (object and goal positions). Writes act_dim floats in [-1, 1]. May keep
     * its own phase in task_state. Must not allocate. */
    void (*scripted)(crl_env *e, float *act);
    /* Listing group: "control", "manipulation", "pretrain", "locomotion". */
    const char *group;
    /* Optional per-definition constant (e.g. a modifier list for a
     * locomotion variant), read by setup. */
    const void *variant;
    /* Optional: write the task's modifiers / options as a one-line JSON
     * object into buf (n bytes), for episode records (crl_env_modifiers).
     * NULL: "{}". Everything an episode needs beyond that lives in
     * task_state, which snapshots copy byte for byte: so task state must be
     * plain data (no pointers). */
    void (*modifiers)(const crl_env_spec *s, char *buf, size_t n);
    /* Optional: the task's picture as a free camera, {lookat x, y, z,
     * distance, azimuth, elevation} (crl_env_view). Kept out of the model,
     * whose hash episode records carry. */
    const double *view;
};

struct crl_env_spec {
    const struct crl_task_def *task;
    mjModel *m; /* owned */
    int obs_dim, act_dim, max_steps, frame_skip;
    void *task_data; /* owned, data_size bytes, or NULL */
};

struct crl_env {
    const crl_env_spec *spec;
    mjData *d; /* owned */
    crl_rng rng;
    int steps;        /* env steps in this episode */
    float *act;       /* act_dim floats: the clipped action of this step */
    void *task_state; /* owned, state_size bytes, or NULL */
};

/* The generated table of embedded models (cmake/EmbedModels.cmake). */
struct crl_model_src {
    const char *name;
    const char *text;
    size_t len;
};
extern const struct crl_model_src crl_model_srcs[];
extern const int crl_model_count;

/* Task groups, each a NULL-terminated array defined in its own file:
 *   crl_tasks_control      envs/registry.c      pendulum
 *   crl_tasks_locomotion   envs/locomotion.c    halfcheetah and ant variants
 *   crl_tasks_manip_a      envs/manip_a.c       manipulation tasks, part A
 *   crl_tasks_manip_b      envs/manip_b.c       manipulation tasks, part B */
extern const struct crl_task_def *const crl_tasks_control[];
extern const struct crl_task_def *const crl_tasks_locomotion[];
extern const struct crl_task_def *const crl_tasks_manip_a[];
extern const struct crl_task_def *const crl_tasks_manip_b[];

/* All registered tasks, in listing order (built once, thread-safe). */
int crl_task_registry(const struct crl_task_def *const **list);
/* The task with this name, or NULL. */
const struct crl_task_def *crl_task_find(const char *name);

/* Compile an embedded model by file name. All embedded files are visible to
 * the compiler, so a model may <include> another. CRL_ENOTFOUND if no such
 * file, CRL_EMUJOCO with MuJoCo's message if it does not compile. */
int crl_envs_load_embedded(const char *file, mjModel **out, crl_err *err);

/* The default action mapping: a in [-1, 1] goes affinely onto each
 * actuator's ctrlrange (ctrl = mid + a * half-width); an actuator without a
 * ctrlrange gets ctrl = a. */
void crl_task_map_actions(crl_env *e, const float *act);

/* The two halves of one env step around the caller's mj_step calls, shared
 * by crl_env_step and the embedding API's caller-owned loop (external.c):
 * crl_task_step_begin clears MuJoCo's divergence counters; crl_task_step_end
 * counts the step, asks the task for reward and success, and turns a
 * divergence or a non-finite reward into a truncation without reward. */
void crl_task_step_begin(crl_env *e);
void crl_task_step_end(crl_env *e, int max_steps, crl_step_info *out);

/* Angle wrapped to [-pi, pi]. */
double crl_wrap_angle(double a);

#endif
