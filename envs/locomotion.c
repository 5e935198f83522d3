/* crl envs: the locomotion tasks (CSP scenarios). A task is a body
 * (halfcheetah or ant: model, initial-state draw and observation, in
 * envs/halfcheetah.c and envs/ant.c) plus a list of modifiers.
 *
 * Physics modifiers edit the compiled mjModel once, in setup:
 *   gravity  opt.gravity x factor
 *   friction the (slide, spin, roll) friction of every geom, floor included,
 *            x factor. MuJoCo takes the larger of two geoms' frictions for a
 *            contact, so scaling only the floor would change nothing.
 *   scale    each listed body: mass and diagonal inertia x factor, and the
 *            radius of its sphere / capsule / cylinder geoms x factor (the
 *            lengths stay). Then mj_setConst refreshes the derived constants.
 * Action modifiers act on the clipped action before it reaches ctrl:
 *   inverted every value x -1
 *   disabled the listed dims are 0
 * The observation modifier:
 *   defective a fixed half (obs_dim / 2, rounded down) of the observation
 *            dims read 0. The dims are drawn from a generator seeded with a
 *            hash of the task name, so every spec, instance and run agrees.
 *
 * Reward, the same for both bodies with their own constants:
 *   (x_after - x_before) / (frame_skip * timestep)   forward velocity, x = qpos[0]
 *   + healthy       while the torso height is inside [z_min, z_max] (ant: 1)
 *   - ctrl_cost |u|^2   u = the action after the action modifiers, i.e. what
 *                       reaches the motors (halfcheetah 0.1, ant 0.5)
 * terminal when the torso height (qpos[2]) leaves [z_min, z_max] (ant only).
 * success is always 0. */
#include <stdio.h>
#include <string.h>

#include "task.h"

/* ---- bodies ----------------------------------------------------------------- */

/* envs/halfcheetah.c */
int crl_halfcheetah_check(const mjModel *m, crl_err *err);
void crl_halfcheetah_reset(crl_env *e, crl_rng *rng);
void crl_halfcheetah_observe(const crl_env *e, float *obs);
/* envs/ant.c */
int crl_ant_check(const mjModel *m, crl_err *err);
void crl_ant_reset(crl_env *e, crl_rng *rng);
void crl_ant_observe(const crl_env *e, float *obs);

#define LOCO_MAX_ACT 8
#define LOCO_MAX_OBS 32

typedef struct {
    const char *name;
    int (*check)(const mjModel *m, crl_err *err);
    void (*reset)(crl_env *e, crl_rng *rng);
    void (*observe)(const crl_env *e, float *obs);
    double ctrl_cost;
    double healthy;          /* reward per step while healthy */
    double z_min, z_max;     /* healthy torso height (qpos[2]); z_max 0: always healthy */
    const char *const *feet; /* bodies of hugefoot / tinyfoot */
    const char *const *torso; /* bodies of carry_stuff */
} loco_body;

static const char *const cheetah_feet[] = {"bfoot", "ffoot", NULL};
static const char *const cheetah_torso[] = {"torso", NULL};
/* The ant's "hugefoot" grows every segment of every leg. */
static const char *const ant_legs[] = {"fl_thigh", "fl_shin",  "fr_thigh",
                                       "fr_shin",  "br_thigh", "br_shin",
                                       "bl_thigh", "bl_shin",  NULL};
static const char *const ant_torso[] = {"torso", NULL};

static const loco_body body_cheetah = {
    .name = "halfcheetah",
    .check = crl_halfcheetah_check,
    .reset = crl_halfcheetah_reset,
    .observe = crl_halfcheetah_observe,
    .ctrl_cost = 0.1,
    .feet = cheetah_feet,
    .torso = cheetah_torso,
};

static const loco_body body_ant = {
    .name = "ant",
    .check = crl_ant_check,
    .reset = crl_ant_reset,
    .observe = crl_ant_observe,
    .ctrl_cost = 0.5,
    .healthy = 1.0,
    .z_min = 0.2,
    .z_max = 1.0,
    .feet = ant_legs,
    .torso = ant_torso,
};

/* ---- modifiers -------------------------------------------------------------- */

/* A task's modifiers. Factors of 0 mean "unchanged" (1), so that a variant
 * names only what it changes. */
typedef struct {
    const loco_body *body;
    double gravity, friction; /* opt.gravity, geom friction */
    double feet, torso;       /* mass and radius of body->feet / body->torso */
    int inverted;             /* action x -1 */
    unsigned disabled;        /* bit i: action dim i is 0 */
    int defective;            /* half of the observation dims are 0 */
} loco_variant;

/* Per-spec constants. */
typedef struct {
    int n_zero;                       /* defective: number of zeroed obs dims */
    unsigned char zero[LOCO_MAX_OBS]; /* defective: 1 = this obs dim reads 0 */
} loco_data;

/* Per-instance state. */
typedef struct {
    double x_before; /* qpos[0] when the current step began */
} loco_state;

static double factor(double f) {
    return f == 0.0 ? 1.0 : f;
}

static const loco_variant *variant_of(const crl_env_spec *s) {
    return s->task->variant;
}

/* Bounding-sphere radius of a geom after its size changed (broad phase). */
static void update_rbound(mjModel *m, int g) {
    const mjtNum *sz = m->geom_size + 3 * g;
    switch (m->geom_type[g]) {
    case mjGEOM_SPHERE:
        m->geom_rbound[g] = sz[0];
        break;
    case mjGEOM_CAPSULE:
        m->geom_rbound[g] = sz[0] + sz[1];
        break;
    case mjGEOM_CYLINDER:
        m->geom_rbound[g] = mju_sqrt(sz[0] * sz[0] + sz[1] * sz[1]);
        break;
    default:
        break;
    }
}

static int scale_bodies(crl_env_spec *s, const char *const *names, double k,
                        crl_err *err) {
    mjModel *m = s->m;
    for (int i = 0; names[i]; i++) {
        int b = mj_name2id(m, mjOBJ_BODY, names[i]);
        if (b < 0)
            return crl_errf(err, CRL_EMUJOCO, "%s: model has no body '%s'", s->task->name,
                            names[i]);
        m->body_mass[b] *= k;
        for (int j = 0; j < 3; j++) m->body_inertia[3 * b + j] *= k;
        for (int g = 0; g < m->ngeom; g++) {
            if (m->geom_bodyid[g] != b) continue;
            int t = m->geom_type[g];
            if (t == mjGEOM_SPHERE || t == mjGEOM_CAPSULE || t == mjGEOM_CYLINDER) {
                m->geom_size[3 * g] *= k;
                update_rbound(m, g);
            }
        }
    }
    return CRL_OK;
}

/* FNV-1a: a stable seed from the task name. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int loco_setup(crl_env_spec *s, crl_err *err) {
    const loco_variant *v = variant_of(s);
    const loco_body *b = v->body;
    mjModel *m = s->m;
    int rc = b->check(m, err);
    if (rc) return rc;
    if (s->act_dim > LOCO_MAX_ACT || s->obs_dim > LOCO_MAX_OBS)
        return crl_errf(err, CRL_EINVAL, "%s: sizes exceed the locomotion limits",
                        s->task->name);

    double g = factor(v->gravity), f = factor(v->friction);
    for (int i = 0; i < 3; i++) m->opt.gravity[i] *= g;
    for (int i = 0; i < 3 * m->ngeom; i++) m->geom_friction[i] *= f;

    double kf = factor(v->feet), kt = factor(v->torso);
    if (kf != 1.0 && (rc = scale_bodies(s, b->feet, kf, err))) return rc;
    if (kt != 1.0 && (rc = scale_bodies(s, b->torso, kt, err))) return rc;
    if (kf != 1.0 || kt != 1.0) {
        /* Subtree masses and the constraint solver's inverse weights derive
         * from the masses; recompute them as the compiler would. */
        mjData *d = mj_makeData(m);
        if (!d) return crl_errf(err, CRL_ENOMEM, "%s: out of memory", s->task->name);
        mj_setConst(m, d);
        mj_deleteData(d);
    }

    loco_data *data = s->task_data;
    if (v->defective) {
        int n = s->obs_dim, idx[LOCO_MAX_OBS];
        for (int i = 0; i < n; i++) idx[i] = i;
        crl_rng r;
        crl_rng_seed(&r, name_hash(s->task->name));
        data->n_zero = n / 2;
        /* The first n_zero entries of a partial Fisher-Yates shuffle. */
        for (int i = 0; i < data->n_zero; i++) {
            int j = i + (int)crl_rng_below(&r, (uint64_t)(n - i));
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            data->zero[idx[i]] = 1;
        }
    }
    return CRL_OK;
}

/* The action that reaches the motors (in [-1, 1] units). */
static void motor_action(const loco_variant *v, const float *act, float *u, int n) {
    for (int i = 0; i < n; i++) {
        float a = v->inverted ? -act[i] : act[i];
        u[i] = (v->disabled >> i) & 1u ? 0.0f : a;
    }
}

static void loco_reset(crl_env *e, crl_rng *rng) {
    variant_of(e->spec)->body->reset(e, rng);
}

static void loco_apply(crl_env *e, const float *act) {
    const crl_env_spec *s = e->spec;
    loco_state *st = e->task_state;
    float u[LOCO_MAX_ACT];
    st->x_before = e->d->qpos[0];
    motor_action(variant_of(s), act, u, s->act_dim);
    crl_task_map_actions(e, u);
}

static void loco_observe(const crl_env *e, float *obs) {
    const crl_env_spec *s = e->spec;
    const loco_variant *v = variant_of(s);
    v->body->observe(e, obs);
    if (v->defective) {
        const loco_data *data = s->task_data;
        for (int i = 0; i < s->obs_dim; i++)
            if (data->zero[i]) obs[i] = 0.0f;
    }
}

static void loco_reward(crl_env *e, const float *act, crl_step_info *info) {
    const crl_env_spec *s = e->spec;
    const loco_variant *v = variant_of(s);
    const loco_body *b = v->body;
    const loco_state *st = e->task_state;
    const mjData *d = e->d;
    double dt = s->m->opt.timestep * s->frame_skip;
    double vel = (d->qpos[0] - st->x_before) / dt;
    float u[LOCO_MAX_ACT];
    motor_action(v, act, u, s->act_dim);
    double ctrl = 0.0;
    for (int i = 0; i < s->act_dim; i++) ctrl += (double)u[i] * u[i];
    int healthy = 1;
    if (b->z_max > 0.0) healthy = d->qpos[2] >= b->z_min && d->qpos[2] <= b->z_max;
    info->reward = (float)(vel + (healthy ? b->healthy : 0.0) - b->ctrl_cost * ctrl);
    info->terminal = !healthy;
    info->success = 0;
}

/* The modifiers of an episode record (crl_env_modifiers): every factor (1 =
 * unchanged), the disabled action dims and the zeroed observation dims. */
static void loco_modifiers(const crl_env_spec *s, char *buf, size_t n) {
    const loco_variant *v = variant_of(s);
    const loco_data *data = s->task_data;
    size_t k = 0;
#define LOCO_PUT(...)                                                                    \
    do {                                                                                 \
        int w_ = snprintf(k < n ? buf + k : NULL, k < n ? n - k : 0, __VA_ARGS__);       \
        if (w_ > 0) k += (size_t)w_;                                                     \
    } while (0)
    LOCO_PUT("{\"body\":\"%s\",\"gravity\":%.17g,\"friction\":%.17g,\"feet\":%.17g,"
             "\"torso\":%.17g,\"inverted\":%d,\"disabled\":[",
             v->body->name, factor(v->gravity), factor(v->friction), factor(v->feet),
             factor(v->torso), v->inverted);
    for (int i = 0, first = 1; i < s->act_dim; i++)
        if ((v->disabled >> i) & 1u) {
            LOCO_PUT("%s%d", first ? "" : ",", i);
            first = 0;
        }
    LOCO_PUT("],\"defective\":[");
    for (int i = 0, first = 1; v->defective && i < s->obs_dim; i++)
        if (data->zero[i]) {
            LOCO_PUT("%s%d", first ? "" : ",", i);
            first = 0;
        }
    LOCO_PUT("]}");
#undef LOCO_PUT
}

/* ---- the tasks ---------------------------------------------------------------- */

#define LOCO_TASK(id, name_, desc_, model_, obs_, act_, body_, ...)                      \
    static const loco_variant id##_v = {.body = &body_, __VA_ARGS__};                    \
    static const struct crl_task_def id = {                                              \
        .name = name_,                                                                   \
        .description = desc_,                                                            \
        .model = model_,                                                                 \
        .obs_dim = obs_,                                                                 \
        .act_dim = act_,                                                                 \
        .max_steps = 1000,                                                               \
        .frame_skip = 5,                                                                 \
        .state_size = sizeof(loco_state),                                                \
        .data_size = sizeof(loco_data),                                                  \
        .setup = loco_setup,                                                             \
        .reset = loco_reset,                                                             \
        .apply_action = loco_apply,                                                      \
        .observe = loco_observe,                                                         \
        .reward = loco_reward,                                                           \
        .group = "locomotion",                                                           \
        .variant = &id##_v,                                                              \
        .modifiers = loco_modifiers,                                                     \
    };

#define CHEETAH(id, name_, desc_, ...)                                                   \
    LOCO_TASK(id, name_, desc_, "halfcheetah.xml", 17, 6, body_cheetah, __VA_ARGS__)
#define ANT(id, name_, desc_, ...)                                                       \
    LOCO_TASK(id, name_, desc_, "ant.xml", 27, 8, body_ant, __VA_ARGS__)

/* Factors from the CSP locomotion scenarios. */
#define CHEETAH_MOON     0.15
#define CHEETAH_RAIN     0.4
#define CHEETAH_HUGE     1.5
#define CHEETAH_TINY     0.5
#define CHEETAH_CARRY    4.0
#define CHEETAH_HUGEGRAV 1.5
#define ANT_MOON         0.7
#define ANT_RAIN         0.375
#define ANT_HUGE         1.5

CHEETAH(c_plain, "halfcheetah", "planar half-cheetah running forward (obs 17, act 6)",
        .gravity = 0)
CHEETAH(c_normal, "halfcheetah-normal", "half-cheetah, unmodified (same as halfcheetah)",
        .gravity = 0)
CHEETAH(c_moon, "halfcheetah-moon", "half-cheetah, gravity x0.15",
        .gravity = CHEETAH_MOON)
CHEETAH(c_rain, "halfcheetah-rainfall", "half-cheetah, friction x0.4",
        .friction = CHEETAH_RAIN)
CHEETAH(c_huge, "halfcheetah-hugefoot", "half-cheetah, both feet' mass and radius x1.5",
        .feet = CHEETAH_HUGE)
CHEETAH(c_tiny, "halfcheetah-tinyfoot", "half-cheetah, both feet' mass and radius x0.5",
        .feet = CHEETAH_TINY)
CHEETAH(c_carry, "halfcheetah-carry_stuff", "half-cheetah, torso mass and radius x4",
        .torso = CHEETAH_CARRY)
CHEETAH(c_carry_grav, "halfcheetah-carry_stuff_hugegravity",
        "half-cheetah, torso mass and radius x4, gravity x1.5", .torso = CHEETAH_CARRY,
        .gravity = CHEETAH_HUGEGRAV)
CHEETAH(c_huge_rain, "halfcheetah-hugefoot_rainfall",
        "half-cheetah, feet x1.5 and friction x0.4", .feet = CHEETAH_HUGE,
        .friction = CHEETAH_RAIN)
CHEETAH(c_tiny_moon, "halfcheetah-tinyfoot_moon",
        "half-cheetah, feet x0.5 and gravity x0.15", .feet = CHEETAH_TINY,
        .gravity = CHEETAH_MOON)
CHEETAH(c_defective, "halfcheetah-defective_module",
        "half-cheetah, a fixed half of the observation dims read 0", .defective = 1)
CHEETAH(c_inverted, "halfcheetah-inverted_actions", "half-cheetah, actions x-1",
        .inverted = 1)

ANT(a_plain, "ant", "four-legged ant walking forward (obs 27, act 8)", .gravity = 0)
ANT(a_normal, "ant-normal", "ant, unmodified (same as ant)", .gravity = 0)
ANT(a_moon, "ant-moon", "ant, gravity x0.7", .gravity = ANT_MOON)
ANT(a_rain, "ant-rainfall", "ant, friction x0.375", .friction = ANT_RAIN)
ANT(a_huge, "ant-hugefoot", "ant, mass and radius of every leg segment x1.5",
    .feet = ANT_HUGE)
ANT(a_hard1, "ant-disabled_hard1", "ant, action dims 2-7 zeroed (one working leg)",
    .disabled = 0xFCu)
ANT(a_hard2, "ant-disabled_hard2", "ant, action dims 0, 1, 4-7 zeroed (one working leg)",
    .disabled = 0xF3u)
ANT(a_fore, "ant-disabled_forefeet", "ant, action dims 0-3 (front legs) zeroed",
    .disabled = 0x0Fu)
ANT(a_back, "ant-disabled_backfeet", "ant, action dims 4-7 (back legs) zeroed",
    .disabled = 0xF0u)
ANT(a_diag1, "ant-disabled_first_diagonal", "ant, action dims 0, 1, 4, 5 zeroed",
    .disabled = 0x33u)
ANT(a_diag2, "ant-disabled_second_diagonal", "ant, action dims 2, 3, 6, 7 zeroed",
    .disabled = 0xCCu)
ANT(a_inverted, "ant-inverted_actions", "ant, actions x-1", .inverted = 1)

const struct crl_task_def *const crl_tasks_locomotion[] = {
    &c_plain,     &c_normal,   &c_moon,       &c_rain,      &c_huge,
    &c_tiny,      &c_carry,    &c_carry_grav, &c_huge_rain, &c_tiny_moon,
    &c_defective, &c_inverted, &a_plain,      &a_normal,    &a_moon,
    &a_rain,      &a_huge,     &a_hard1,      &a_hard2,     &a_fore,
    &a_back,      &a_diag1,    &a_diag2,      &a_inverted,  NULL};
