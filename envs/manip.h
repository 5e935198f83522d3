/* crl envs, private: the shared machinery of the manipulation suite.
 *
 * HOW TO WRITE A MANIPULATION TASK (see envs/manip_a.c for examples)
 *
 * Scene. envs/models/manip_<task>.xml is a full <mujoco> whose first child is
 *   <include file="manip_base.xml"/>
 * (table, gripper, options, default classes "obj", "fixture", "visual",
 * "pad"); it then adds its own <worldbody> with objects and fixtures. Free
 * objects use class="obj" and a <freejoint name="..."/>. The table top is
 * z = 0. The base gives the model nu = 4 (act_x/y/z placeholders + grip), so
 * the env's act_dim == nu check holds with act_dim = 4.
 *
 * State and data. The task's per-instance state struct MUST begin with a
 * `manip_state` member, its per-spec data struct with a `manip_data` member:
 *     typedef struct { manip_data md; int puck_jnt; } push_data;
 *     typedef struct { manip_state ms; double start_dist; } push_state;
 * and the def sets .state_size / .data_size to their sizes.
 *
 * Task def. Use MANIP_TASK_DEFAULTS (obs 39, act 4, 200 steps, frame_skip 5,
 * apply_action = manip_apply_action, observe = manip_observe), plus your own
 * .setup, .reset, .reward, .scripted, .name, .model, .group ...
 *
 * setup:  call manip_setup(s, err) first (gripper ids, default hand bounds
 *         and start), then look up your ids with manip_find_* (clear errors),
 *         set md->obj[0..1] (what the observation shows as object 1 and 2),
 *         and override md->lo/hi (hand bounds) or md->hand_init if needed.
 * reset:  place objects (manip_set_free / qpos), draw positions from rng
 *         (manip_draw_*), set ms->goal, then call manip_reset_hand(e, NULL)
 *         LAST: it places the hand at md->hand_init with the gripper open,
 *         settles the physics for a few steps and records the "previous"
 *         observation frame (on reset, prev = current).
 * reward: call manip_sync(e) FIRST (refreshes positions after mj_step so that
 *         reward, success and the observation all see the post-step state),
 *         then compute info->success and info->reward in [0, 10] (10 on
 *         success) from manip_tolerance terms. Never set terminal.
 * scripted: read privileged state, keep a phase in ms->phase / ms->timer,
 *         use manip_move_smooth() (or manip_move_towards()) and
 *         manip_grip() to write the 4 actions.
 *
 * Lessons from part A (MuJoCo 2.2): a cylinder against a box gets ONE
 * contact point (it lands on the rim and wedges objects): give round
 * objects a box-union collision proxy (manip_push.xml's puck). Objects held
 * in the pads and dragged along the table jam: carry them ~2 cm up. Heavy
 * objects roll or slip out under full-speed jerks: raise their rotational
 * inertia and use manip_move_smooth. The palm is 0.06 x 0.13 (y) and its
 * underside 0.03 above the tcp: leave room for it near walls. Bodies
 * that must move per episode but are static (shelves, goal markers) are
 * mocap bodies placed at reset. Collision bits: see manip_base.xml.
 *
 * Action mapping (manip_apply_action): mocap += 0.01 m * act[0..2], clipped
 * to [md->lo, md->hi]; act[3] = +1 closes, -1 opens the fingers (the grip
 * servo target goes linearly from open (q = 0.05) to closed-and-squeezing
 * (q = -0.01)). ctrl[0..2] record act[0..2].
 *
 * Observation (manip_observe), 39 floats:
 *   [0..2]   tcp xyz (the point between the finger pads)
 *   [3]      gripper opening in [0, 1] (0 closed, 1 fully open)
 *   [4..10]  object 1 position + quaternion (w x y z)   (md->obj[0])
 *   [11..17] object 2 position + quaternion             (md->obj[1])
 *            (zeros where md->obj[i].kind == MANIP_NONE)
 *   [18..35] the same 18 from the previous env step
 *   [36..38] goal xyz (ms->goal)
 *
 * Nothing here allocates after setup. */
#ifndef CRL_ENVS_MANIP_H
#define CRL_ENVS_MANIP_H

#include "task.h"

/* The manipulation tasks' picture (crl_env_view): the table's working
 * area from the robot's side, a little to the right, filling the frame. */
extern const double manip_view[6];

#define MANIP_OBS_DIM    39
#define MANIP_FRAME_DIM  18
#define MANIP_ACT_DIM    4
#define MANIP_MAX_STEPS  200
#define MANIP_FRAME_SKIP 5
#define MANIP_ACT_SCALE  0.01 /* metres of mocap motion per unit action */
#define MANIP_FINGER_MAX 0.05 /* opening of one finger joint, fully open */
#define MANIP_REWARD_MAX 10.0

/* Hand bounds and start defaults (per task: override md->lo/hi/hand_init). */
#define MANIP_HAND_LO_X (-0.5)
#define MANIP_HAND_LO_Y 0.40
#define MANIP_HAND_LO_Z 0.05
#define MANIP_HAND_HI_X 0.5
#define MANIP_HAND_HI_Y 1.0
#define MANIP_HAND_HI_Z 0.5

#define MANIP_TASK_DEFAULTS                                                              \
    .obs_dim = MANIP_OBS_DIM, .act_dim = MANIP_ACT_DIM, .max_steps = MANIP_MAX_STEPS,    \
    .frame_skip = MANIP_FRAME_SKIP, .apply_action = manip_apply_action,                  \
    .observe = manip_observe

/* What an observation slot shows. */
enum { MANIP_NONE = 0, MANIP_BODY = 1, MANIP_SITE = 2, MANIP_GEOM = 3 };
typedef struct {
    int kind; /* MANIP_NONE / BODY / SITE / GEOM */
    int id;   /* body, site or geom id */
} manip_ref;

/* Per-spec constants: ids of the gripper, bounds, observation slots.
 * Must be the first member of the task's data struct. */
typedef struct {
    int mocap;     /* mocap index (into d->mocap_pos), of body "mocap" */
    int hand_body; /* body "hand" */
    int hand_qpos; /* qpos address of the hand's free joint */
    int hand_dof;  /* dof address of the hand's free joint */
    int lfinger_qpos, rfinger_qpos, lfinger_dof, rfinger_dof;
    int lpad_body, rpad_body; /* the finger bodies (pads are their geoms) */
    int lpad_geom, rpad_geom;
    int tcp_site;
    int grip_act;         /* actuator "grip" */
    double tcp_offset[3]; /* tcp - hand origin (fixed orientation) */
    double lo[3], hi[3];  /* mocap (hand origin) bounds */
    double hand_init[3];  /* hand origin (mocap) position at reset */
    manip_ref obj[2];     /* observation slots: object 1, object 2 */
} manip_data;

/* Per-instance state. Must be the first member of the task's state struct.
 * Zeroed by the env before every reset. */
typedef struct {
    float prev[MANIP_FRAME_DIM]; /* observation frame of the previous step */
    double goal[3];              /* shown in obs[36..38] */
    int phase;                   /* scripted policy phase */
    int timer;                   /* scripted policy: steps in this phase */
    double aux[6];               /* scripted policy ([0..2]: last xyz command) */
} manip_state;

static inline manip_data *manip_md(const crl_env *e) {
    return (manip_data *)e->spec->task_data;
}
static inline manip_state *manip_ms(const crl_env *e) {
    return (manip_state *)e->task_state;
}

/* ---- setup ---------------------------------------------------------------- */

/* Look up the gripper in s->m, set the defaults (bounds, hand_init
 * (0, 0.6, 0.2), obj slots NONE) in s->task_data, check the sizes of the
 * task's state and data. CRL_EMUJOCO / CRL_EINVAL with a message naming the
 * task. */
int manip_setup(crl_env_spec *s, crl_err *err);
/* Id of a named body / site / joint / geom of s->m, or an error
 * "task 'x': model 'y' has no body 'z'". */
int manip_find_body(const crl_env_spec *s, const char *name, int *id, crl_err *err);
int manip_find_site(const crl_env_spec *s, const char *name, int *id, crl_err *err);
int manip_find_joint(const crl_env_spec *s, const char *name, int *id, crl_err *err);
int manip_find_geom(const crl_env_spec *s, const char *name, int *id, crl_err *err);
/* As manip_find_joint, also checking the joint's type (mjJNT_FREE, ...). */
int manip_find_joint_type(const crl_env_spec *s, const char *name, int type, int *id,
                          crl_err *err);

/* ---- reset ---------------------------------------------------------------- */

/* Uniform draw of a point in the box [lo, hi] (n coordinates). */
void manip_draw(crl_rng *rng, int n, const double *lo, const double *hi, double *out);
/* Draw a in [alo, ahi] and b in [blo, bhi] (xy, 2 coordinates each) until
 * their xy distance is >= min_dist (at most 1000 tries; the last draw is
 * kept). */
void manip_draw_apart(crl_rng *rng, const double alo[2], const double ahi[2],
                      const double blo[2], const double bhi[2], double min_dist,
                      double a[2], double b[2]);
/* Set a free joint's position (and quaternion; NULL = identity), zero its
 * velocity. */
void manip_set_free(crl_env *e, int joint, const double pos[3], const double quat[4]);
/* Finish a reset: hand origin and mocap at pos (NULL = md->hand_init), gripper
 * open; settle for MANIP_SETTLE_STEPS physics steps; record prev frame. Call
 * it last in the task's reset. */
#define MANIP_SETTLE_STEPS 10
void manip_reset_hand(crl_env *e, const double pos[3]);

/* ---- step ----------------------------------------------------------------- */

/* The apply_action hook (see the top of this file). Also records the
 * pre-step observation frame as ms->prev. */
void manip_apply_action(crl_env *e, const float *act);
/* The observe hook. */
void manip_observe(const crl_env *e, float *obs);
/* The 18-float frame of the current state. */
void manip_frame(const crl_env *e, float *out);
/* Refresh positions (mj_kinematics) after the physics step: call first in
 * the reward hook. */
void manip_sync(crl_env *e);

/* ---- geometry and contacts ----------------------------------------------- */

const double *manip_tcp(const crl_env *e); /* tcp xyz (site_xpos) */
/* Gripper opening in [0, 1] (mean of the two finger joints / 0.05). */
double manip_opening(const crl_env *e);
/* Position of a ref (body xpos / site xpos / geom xpos). */
const double *manip_ref_pos(const crl_env *e, manip_ref r);
double manip_dist(const double *a, const double *b);    /* 3-D distance */
double manip_dist_xy(const double *a, const double *b); /* xy distance */
/* Which pads touch a geom of `body`: bit 0 left pad, bit 1 right pad. */
int manip_pad_contacts(const crl_env *e, int body);
/* Both pads touch `body`. */
int manip_grasped(const crl_env *e, int body);
/* Any contact between the hand/fingers and `body`. */
int manip_hand_touches(const crl_env *e, int body);

/* ---- rewards -------------------------------------------------------------- */

enum { MANIP_GAUSSIAN = 0, MANIP_LONG_TAIL = 1 };
/* 1 when x is in [lo, hi]; outside, decays smoothly with the distance d to
 * the nearer bound, to value_at_margin (e.g. 0.1) at d = margin:
 *   gaussian   exp(-0.5 (d/margin)^2 s^2),  s^2 = -2 ln v
 *   long tail  1 / (1 + (d/margin)^2 s^2),  s^2 = 1/v - 1
 * margin <= 0 gives a hard 0/1 step. Result in [0, 1]. */
double manip_tolerance(double x, double lo, double hi, double margin, int shape,
                       double value_at_margin);
/* Hamacher product of two values in [0, 1] (a t-norm: 1 only if both are 1,
 * 0 if either is 0). */
double manip_hamacher(double a, double b);
static inline double manip_clamp(double x, double lo, double hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A smooth, contact-free grasp score in [0, 1]: the tcp is at the object
 * (1 within 0.02 of obj, gaussian to 0.1 at 0.07) times the gripper is
 * closed on it (1 once the opening is <= width / 0.1 + 0.05, i.e. the pads
 * are on an object `width` metres wide; 0.1 at fully open). Unlike pad
 * contacts it does not flicker while a held object shifts in the pads. */
double manip_grasp_score(const crl_env *e, const double *obj, double width);

/* ---- scripted policies ---------------------------------------------------- */

/* Write act[0..2]: P-control of the commanded tcp (mocap + tcp offset)
 * towards target, act = clip(gain * (target - cmd) / 0.01, -1, 1) per axis;
 * gain 1 lands the mocap on target without overshoot, the hand follows
 * within a few steps. */
void manip_move_towards(const crl_env *e, const double target[3], double gain,
                        float *act);
/* As manip_move_towards, with a speed profile: the commanded speed (in
 * action units, 1 = 1 cm per step) changes by at most accel per step and
 * slows down in time to stop on the target (speed <= sqrt(accel * dist)).
 * Held objects stay in the pads better without full-speed jerks. Keeps the
 * last command in ms->aux[0..2]. */
void manip_move_smooth(const crl_env *e, manip_state *ms, const double target[3],
                       double accel, float *act);
/* Limit the change of act[0..2] from the previous call to max_delta per
 * step (a speed ramp; keeps the last action in ms->aux[0..2]). */
void manip_rate_limit(manip_state *ms, float *act, double max_delta);
/* tcp within tol of target (3-D). */
int manip_at(const crl_env *e, const double target[3], double tol);
/* Set act[3]: +1 close, -1 open. */
static inline void manip_grip(float *act, int close) {
    act[3] = close ? 1.0f : -1.0f;
}
/* Advance to phase p (resets the timer). */
static inline void manip_phase(manip_state *ms, int p) {
    ms->phase = p;
    ms->timer = 0;
}

#endif
