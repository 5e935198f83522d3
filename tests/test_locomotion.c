/* Tests for the locomotion tasks (envs/locomotion.c, halfcheetah.c, ant.c)
 * against facts stated by the task specification: the modifier factors,
 * which bodies and action dims they touch, the ant's sizes, reward and
 * termination. The facts are written here, not read back from the code.
 * Also the CLI commands that list tasks and scenarios and run scripted or
 * random policies (spawned through CRL_BIN, as in tests/test_cli.c). */
#include "crl/env.h"

#include <check.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PHYS_DT    0.01
#define FRAME_SKIP 5
#define ENV_DT     (PHYS_DT * FRAME_SKIP)

static crl_env_spec *make_spec(const char *name) {
    crl_env_spec *s = NULL;
    crl_err err = {0};
    int rc = crl_env_spec_create(name, &s, &err);
    ck_assert_msg(rc == CRL_OK, "spec %s: %s", name, err.msg);
    return s;
}

static crl_env *make_env(const crl_env_spec *s) {
    crl_env *e = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_env_create(s, &e, &err) == CRL_OK, "env: %s", err.msg);
    return e;
}

static float clipf(float a) {
    return a > 1.0f ? 1.0f : (a < -1.0f ? -1.0f : a);
}

static int body_id(const mjModel *m, const char *name) {
    int b = mj_name2id(m, mjOBJ_BODY, name);
    ck_assert_msg(b >= 0, "no body %s", name);
    return b;
}

static int close_rel(double a, double b) {
    return fabs(a - b) <= 1e-12 * (1.0 + fabs(b));
}

/* ---- names and sizes ---------------------------------------------------------- */

static const char *const CHEETAH_TASKS[] = {
    "halfcheetah",
    "halfcheetah-normal",
    "halfcheetah-moon",
    "halfcheetah-rainfall",
    "halfcheetah-hugefoot",
    "halfcheetah-tinyfoot",
    "halfcheetah-carry_stuff",
    "halfcheetah-carry_stuff_hugegravity",
    "halfcheetah-hugefoot_rainfall",
    "halfcheetah-tinyfoot_moon",
    "halfcheetah-defective_module",
    "halfcheetah-inverted_actions",
};
static const char *const ANT_TASKS[] = {
    "ant",
    "ant-normal",
    "ant-moon",
    "ant-rainfall",
    "ant-hugefoot",
    "ant-disabled_hard1",
    "ant-disabled_hard2",
    "ant-disabled_forefeet",
    "ant-disabled_backfeet",
    "ant-disabled_first_diagonal",
    "ant-disabled_second_diagonal",
    "ant-inverted_actions",
};
#define N_CHEETAH (int)(sizeof CHEETAH_TASKS / sizeof CHEETAH_TASKS[0])
#define N_ANT     (int)(sizeof ANT_TASKS / sizeof ANT_TASKS[0])

START_TEST(test_registered) {
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int body = 0; body < 2; body++) {
        const char *const *names = body ? ANT_TASKS : CHEETAH_TASKS;
        int count = body ? N_ANT : N_CHEETAH;
        for (int t = 0; t < count; t++) {
            int found = 0;
            for (int i = 0; i < n; i++) {
                if (strcmp(list[i].name, names[t]) != 0) continue;
                found++;
                ck_assert_str_eq(list[i].group, "locomotion");
                ck_assert_int_eq(list[i].obs_dim, body ? 27 : 17);
                ck_assert_int_eq(list[i].act_dim, body ? 8 : 6);
                ck_assert_int_eq(list[i].has_scripted, 0);
                ck_assert(strlen(list[i].description) > 0);
            }
            ck_assert_msg(found == 1, "%s registered %d times", names[t], found);
            crl_env_spec *s = make_spec(names[t]);
            ck_assert_int_eq(crl_env_obs_dim(s), body ? 27 : 17);
            ck_assert_int_eq(crl_env_act_dim(s), body ? 8 : 6);
            ck_assert_int_eq(crl_env_max_steps(s), 1000);
            ck_assert_int_eq(crl_env_frame_skip(s), FRAME_SKIP);
            ck_assert_double_eq(crl_env_model(s)->opt.timestep, PHYS_DT);
            crl_env_spec_free(s);
        }
    }
}
END_TEST

/* ---- physics modifiers ------------------------------------------------------- */

typedef struct {
    const char *task, *base;
    double gravity, friction, feet, torso;
} phys_case;

/* Factors from the specification. Feet: halfcheetah bfoot + ffoot; ant:
 * every leg segment. Torso: the torso body. */
static const phys_case PHYS[] = {
    {"halfcheetah-normal", "halfcheetah", 1, 1, 1, 1},
    {"halfcheetah-moon", "halfcheetah", 0.15, 1, 1, 1},
    {"halfcheetah-rainfall", "halfcheetah", 1, 0.4, 1, 1},
    {"halfcheetah-hugefoot", "halfcheetah", 1, 1, 1.5, 1},
    {"halfcheetah-tinyfoot", "halfcheetah", 1, 1, 0.5, 1},
    {"halfcheetah-carry_stuff", "halfcheetah", 1, 1, 1, 4},
    {"halfcheetah-carry_stuff_hugegravity", "halfcheetah", 1.5, 1, 1, 4},
    {"halfcheetah-hugefoot_rainfall", "halfcheetah", 1, 0.4, 1.5, 1},
    {"halfcheetah-tinyfoot_moon", "halfcheetah", 0.15, 1, 0.5, 1},
    {"halfcheetah-defective_module", "halfcheetah", 1, 1, 1, 1},
    {"halfcheetah-inverted_actions", "halfcheetah", 1, 1, 1, 1},
    {"ant-normal", "ant", 1, 1, 1, 1},
    {"ant-moon", "ant", 0.7, 1, 1, 1},
    {"ant-rainfall", "ant", 1, 0.375, 1, 1},
    {"ant-hugefoot", "ant", 1, 1, 1.5, 1},
    {"ant-disabled_hard1", "ant", 1, 1, 1, 1},
    {"ant-inverted_actions", "ant", 1, 1, 1, 1},
};
#define N_PHYS (int)(sizeof PHYS / sizeof PHYS[0])

static const char *const CHEETAH_FEET[] = {"bfoot", "ffoot", NULL};
static const char *const ANT_LEGS[] = {"fl_thigh", "fl_shin",  "fr_thigh",
                                       "fr_shin",  "br_thigh", "br_shin",
                                       "bl_thigh", "bl_shin",  NULL};

static int in_list(const char *const *list, const char *name) {
    for (int i = 0; list[i]; i++)
        if (name && strcmp(list[i], name) == 0) return 1;
    return 0;
}

START_TEST(test_physics_modifiers) {
    const phys_case *c = &PHYS[_i];
    crl_env_spec *sb = make_spec(c->base), *sm = make_spec(c->task);
    const mjModel *b = crl_env_model(sb), *m = crl_env_model(sm);
    int ant = strcmp(c->base, "ant") == 0;
    const char *const *feet = ant ? ANT_LEGS : CHEETAH_FEET;
    ck_assert_int_eq(b->nbody, m->nbody);
    ck_assert_int_eq(b->ngeom, m->ngeom);

    /* Gravity: exactly the factor, on the whole vector. */
    for (int k = 0; k < 3; k++)
        ck_assert_msg(close_rel(m->opt.gravity[k], c->gravity * b->opt.gravity[k]),
                      "%s gravity[%d] %g", c->task, k, m->opt.gravity[k]);
    ck_assert(b->opt.gravity[2] < -9.8);

    /* Friction of every geom, floor included. */
    for (int g = 0; g < m->ngeom; g++)
        for (int k = 0; k < 3; k++)
            ck_assert_msg(close_rel(m->geom_friction[3 * g + k],
                                    c->friction * b->geom_friction[3 * g + k]),
                          "%s geom %d friction", c->task, g);

    /* Mass, inertia and capsule/sphere radius of the scaled bodies; every
     * other body as it was. Lengths never change. */
    double total_b = 0, total_m = 0;
    int scaled_feet = 0, scaled_torso = 0;
    for (int i = 1; i < m->nbody; i++) {
        const char *name = mj_id2name(m, mjOBJ_BODY, i);
        double k = 1.0;
        if (in_list(feet, name)) {
            k = c->feet;
            scaled_feet++;
        } else if (name && strcmp(name, "torso") == 0) {
            k = c->torso;
            scaled_torso++;
        }
        ck_assert_msg(close_rel(m->body_mass[i], k * b->body_mass[i]), "%s body %s mass",
                      c->task, name);
        for (int j = 0; j < 3; j++)
            ck_assert(
                close_rel(m->body_inertia[3 * i + j], k * b->body_inertia[3 * i + j]));
        for (int g = 0; g < m->ngeom; g++) {
            if (m->geom_bodyid[g] != i) continue;
            ck_assert_msg(close_rel(m->geom_size[3 * g], k * b->geom_size[3 * g]),
                          "%s geom %d radius", c->task, g);
            ck_assert(close_rel(m->geom_size[3 * g + 1], b->geom_size[3 * g + 1]));
            /* The broad phase sees the new size. */
            if (m->geom_type[g] == mjGEOM_CAPSULE)
                ck_assert(close_rel(m->geom_rbound[g],
                                    m->geom_size[3 * g] + m->geom_size[3 * g + 1]));
        }
        total_b += b->body_mass[i];
        total_m += m->body_mass[i];
    }
    ck_assert_int_eq(scaled_feet, ant ? 8 : 2);
    ck_assert_int_eq(scaled_torso, 1);
    /* Derived constants follow: the root's subtree mass is the new total. */
    ck_assert(fabs(m->body_subtreemass[1] - total_m) < 1e-9);
    if (!ant) ck_assert(fabs(total_b - 14.0) < 1e-9);
    crl_env_spec_free(sb);
    crl_env_spec_free(sm);
}
END_TEST

/* A sanity check that the edits reach the physics. From qpos0 (leg springs
 * at rest) and zero velocity, 0.7 m up and out of reach of the floor, the
 * cheetah falls as one rigid piece: the rootz velocity after one env step
 * is -g t exactly, with g scaled by the gravity factor. */
START_TEST(test_moon_falls_slower) {
    const char *names[] = {"halfcheetah", "halfcheetah-moon"};
    const double g[] = {9.81, 0.15 * 9.81};
    for (int k = 0; k < 2; k++) {
        crl_env_spec *s = make_spec(names[k]);
        crl_env *e = make_env(s);
        const mjModel *m = crl_env_model(s);
        mjData *d = crl_env_data(e);
        float obs[17], zero[6] = {0};
        crl_step_info info;
        crl_env_reset(e, 1, obs);
        mju_copy(d->qpos, m->qpos0, m->nq);
        mju_zero(d->qvel, m->nv);
        mj_forward(m, d);
        crl_env_step(e, zero, obs, &info);
        ck_assert_int_eq(d->ncon, 0);
        ck_assert_msg(fabs(d->qvel[1] + g[k] * ENV_DT) < 1e-9, "%s: vz %.12f", names[k],
                      d->qvel[1]);
        for (int i = 2; i < 9; i++) ck_assert(fabs(d->qvel[i]) < 1e-9);
        crl_env_free(e);
        crl_env_spec_free(s);
    }
}
END_TEST

/* ---- action modifiers -------------------------------------------------------- */

typedef struct {
    const char *task;
    int act_dim;
    int inverted;
    int disabled[8]; /* 1 = this dim reaches ctrl as 0 */
} act_case;

static const act_case ACTS[] = {
    {"halfcheetah", 6, 0, {0}},
    {"halfcheetah-inverted_actions", 6, 1, {0}},
    {"ant", 8, 0, {0}},
    {"ant-inverted_actions", 8, 1, {0}},
    {"ant-disabled_hard1", 8, 0, {0, 0, 1, 1, 1, 1, 1, 1}},
    {"ant-disabled_hard2", 8, 0, {1, 1, 0, 0, 1, 1, 1, 1}},
    {"ant-disabled_forefeet", 8, 0, {1, 1, 1, 1, 0, 0, 0, 0}},
    {"ant-disabled_backfeet", 8, 0, {0, 0, 0, 0, 1, 1, 1, 1}},
    {"ant-disabled_first_diagonal", 8, 0, {1, 1, 0, 0, 1, 1, 0, 0}},
    {"ant-disabled_second_diagonal", 8, 0, {0, 0, 1, 1, 0, 0, 1, 1}},
};
#define N_ACTS (int)(sizeof ACTS / sizeof ACTS[0])

/* ctrl is exactly the (clipped) action, negated or zeroed as stated; the
 * control cost is on what reaches the motors. */
START_TEST(test_action_modifiers) {
    const act_case *c = &ACTS[_i];
    crl_env_spec *s = make_spec(c->task);
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    int ant = c->act_dim == 8;
    double ctrl_cost = ant ? 0.5 : 0.1;
    crl_rng r;
    crl_rng_seed(&r, 5);
    float obs[27], a[8];
    crl_step_info info;
    crl_env_reset(e, 3, obs);
    for (int t = 0; t < 40; t++) {
        for (int k = 0; k < c->act_dim; k++) a[k] = (float)crl_rng_range(&r, -1.2, 1.2);
        double x0 = d->qpos[0];
        crl_env_step(e, a, obs, &info);
        if (info.terminal) break;
        double cost = 0;
        for (int k = 0; k < c->act_dim; k++) {
            double want =
                c->disabled[k] ? 0.0 : (c->inverted ? -clipf(a[k]) : clipf(a[k]));
            ck_assert_msg(d->ctrl[k] == want, "%s dim %d: ctrl %g want %g", c->task, k,
                          d->ctrl[k], want);
            cost += want * want;
        }
        double want_r = (d->qpos[0] - x0) / ENV_DT + (ant ? 1.0 : 0.0) - ctrl_cost * cost;
        ck_assert_msg(fabs(info.reward - want_r) < 1e-5 * (1 + fabs(want_r)),
                      "%s step %d reward %g by hand %g", c->task, t, info.reward, want_r);
    }
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* ---- defective module -------------------------------------------------------- */

START_TEST(test_defective_module) {
    crl_env_spec *sd1 = make_spec("halfcheetah-defective_module");
    crl_env_spec *sd2 = make_spec("halfcheetah-defective_module");
    crl_env_spec *sn = make_spec("halfcheetah");
    crl_env *e1 = make_env(sd1), *e2 = make_env(sd2), *en = make_env(sn);
    float o1[17], o2[17], on[17], a[6];
    crl_step_info i1, i2, in;
    int zero_count[17] = {0};
    crl_rng r;
    crl_rng_seed(&r, 9);
    crl_env_reset(e1, 4, o1);
    crl_env_reset(e2, 4, o2);
    crl_env_reset(en, 4, on);
    const int T = 60;
    for (int t = 0; t <= T; t++) {
        /* Two separately created specs: the same mask. */
        ck_assert_int_eq(memcmp(o1, o2, sizeof o1), 0);
        for (int k = 0; k < 17; k++) {
            if (o1[k] == 0.0f && on[k] != 0.0f)
                zero_count[k]++;
            else /* The other dims are the unmodified observation, bit for bit. */
                ck_assert_msg(o1[k] == on[k], "dim %d step %d: %g vs %g", k, t, o1[k],
                              on[k]);
        }
        if (t == T) break;
        for (int k = 0; k < 6; k++) a[k] = (float)crl_rng_range(&r, -1, 1);
        crl_env_step(e1, a, o1, &i1);
        crl_env_step(e2, a, o2, &i2);
        crl_env_step(en, a, on, &in);
        /* The physics and the reward are the normal task's. */
        ck_assert(i1.reward == in.reward);
    }
    int masked = 0;
    for (int k = 0; k < 17; k++) {
        /* A dim is masked at every step or at none. */
        ck_assert_msg(zero_count[k] == 0 || zero_count[k] == T + 1,
                      "dim %d zero %d times", k, zero_count[k]);
        masked += zero_count[k] == T + 1;
    }
    ck_assert_int_eq(masked, 17 / 2);
    crl_env_free(e1);
    crl_env_free(e2);
    crl_env_free(en);
    crl_env_spec_free(sd1);
    crl_env_spec_free(sd2);
    crl_env_spec_free(sn);
}
END_TEST

/* ---- ant ------------------------------------------------------------------------ */

START_TEST(test_ant_model_facts) {
    crl_env_spec *s = make_spec("ant");
    const mjModel *m = crl_env_model(s);
    ck_assert_int_eq(m->nq, 15);
    ck_assert_int_eq(m->nv, 14);
    ck_assert_int_eq(m->nu, 8);
    ck_assert_int_eq(m->jnt_type[0], mjJNT_FREE);
    int torso = body_id(m, "torso");
    int sphere = -1;
    for (int g = 0; g < m->ngeom; g++)
        if (m->geom_bodyid[g] == torso && m->geom_type[g] == mjGEOM_SPHERE) sphere = g;
    ck_assert_int_ge(sphere, 0);
    ck_assert_double_eq(m->geom_size[3 * sphere], 0.25);
    for (int i = 0; i < 8; i++) {
        ck_assert_double_eq(m->actuator_gear[6 * i], 150.0);
        ck_assert_int_eq(m->actuator_ctrllimited[i], 1);
        ck_assert_double_eq(m->actuator_ctrlrange[2 * i], -1.0);
        ck_assert_double_eq(m->actuator_ctrlrange[2 * i + 1], 1.0);
        int j = m->actuator_trnid[2 * i];
        ck_assert_int_eq(m->jnt_type[j], mjJNT_HINGE);
    }
    /* Motor order: front legs first (dims 0-3), then back legs (4-7), each
     * as hip then ankle; the first diagonal is front-left + back-right. */
    const char *joints[8] = {"fl_hip", "fl_ankle", "fr_hip", "fr_ankle",
                             "br_hip", "br_ankle", "bl_hip", "bl_ankle"};
    for (int i = 0; i < 8; i++) {
        int j = m->actuator_trnid[2 * i];
        ck_assert_str_eq(mj_id2name(m, mjOBJ_JOINT, j), joints[i]);
        /* Front joints sit at x > 0, back joints at x < 0. */
        int b = m->jnt_bodyid[j];
        double x = 0;
        for (int p = b; p > 0; p = m->body_parentid[p]) x += m->body_pos[3 * p];
        x -= m->body_pos[3 * torso];
        ck_assert_msg(i < 4 ? x > 0.1 : x < -0.1, "joint %s at x %g", joints[i], x);
    }
    crl_env_spec_free(s);
}
END_TEST

START_TEST(test_ant_obs_and_healthy_reward) {
    crl_env_spec *s = make_spec("ant");
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    crl_rng r;
    crl_rng_seed(&r, 12);
    float obs[27], a[8];
    crl_step_info info;
    crl_env_reset(e, 8, obs);
    ck_assert(fabs(d->qpos[2] - 0.75) <= 0.1);
    for (int i = 2; i < 15; i++) ck_assert(obs[i - 2] == (float)d->qpos[i]);
    int healthy_steps = 0;
    for (int t = 0; t < 200; t++) {
        for (int k = 0; k < 8; k++) a[k] = 0.3f * (float)crl_rng_range(&r, -1, 1);
        double x0 = d->qpos[0];
        crl_env_step(e, a, obs, &info);
        for (int i = 2; i < 15; i++) ck_assert(obs[i - 2] == (float)d->qpos[i]);
        for (int i = 0; i < 14; i++) ck_assert(obs[13 + i] == (float)d->qvel[i]);
        double z = d->qpos[2];
        int healthy = z >= 0.2 && z <= 1.0;
        double cost = 0;
        for (int k = 0; k < 8; k++) cost += (double)a[k] * a[k];
        double want = (d->qpos[0] - x0) / ENV_DT + (healthy ? 1.0 : 0.0) - 0.5 * cost;
        ck_assert(fabs(info.reward - want) < 1e-5 * (1 + fabs(want)));
        ck_assert_int_eq(info.terminal, !healthy);
        ck_assert_int_eq(info.success, 0);
        if (info.terminal) break;
        healthy_steps++;
    }
    /* Gentle actions keep it standing. */
    ck_assert_int_eq(healthy_steps, 200);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* With no action the ant drops onto its legs and stands, never terminal. */
START_TEST(test_ant_stands) {
    crl_env_spec *s = make_spec("ant");
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[27], zero[8] = {0};
    crl_step_info info;
    crl_env_reset(e, 2, obs);
    for (int t = 0; t < 300; t++) {
        crl_env_step(e, zero, obs, &info);
        ck_assert_int_eq(info.terminal, 0);
        ck_assert(fabs(info.reward - 1.0) < 0.5); /* healthy, hardly moving */
    }
    ck_assert_msg(d->qpos[2] > 0.3 && d->qpos[2] < 0.75, "z %g", d->qpos[2]);
    /* Upright: the quaternion's w dominates. */
    ck_assert(fabs(d->qpos[3]) > 0.95);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* Terminal exactly when the torso height after the step is outside
 * [0.2, 1.0]: too low, too high (thrown up), and, because the range is the
 * whole rule, a flipped ant lying on its back whose torso is still above
 * 0.2 m is not terminal. Contacts are turned off in this private model so
 * that the height after the step is free fall from where the test put it. */
START_TEST(test_ant_terminal) {
    crl_env_spec *s = make_spec("ant");
    mjModel *m = (mjModel *)crl_env_model(s);
    m->opt.disableflags |= mjDSBL_CONTACT;
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[27], zero[8] = {0};
    crl_step_info info;
    const double z0[] = {0.10, 0.19, 0.30, 0.95, 1.05, 1.5};
    for (int c = 0; c < 6; c++) {
        crl_env_reset(e, 1, obs);
        mju_zero(d->qvel, m->nv);
        d->qpos[2] = z0[c];
        mj_forward(m, d);
        crl_env_step(e, zero, obs, &info);
        double z = d->qpos[2];
        /* Free fall over 0.05 s moves it about 1.2 cm. */
        ck_assert(fabs(z - z0[c]) < 0.02);
        int want = z < 0.2 || z > 1.0;
        ck_assert_msg(info.terminal == want, "z0 %g: z %g terminal %d", z0[c], z,
                      info.terminal);
        ck_assert_int_eq(info.truncated, 0);
        double want_r = (want ? 0.0 : 1.0) + 0.0;
        ck_assert(fabs(info.reward - want_r) < 0.05); /* no forward motion */
    }
    m->opt.disableflags &= ~mjDSBL_CONTACT;

    /* Flipped (upside down, quaternion (0, 1, 0, 0)) and resting on the
     * floor: the height decides, not the orientation. */
    crl_env_reset(e, 1, obs);
    mju_zero(d->qvel, m->nv);
    d->qpos[2] = 0.6;
    d->qpos[3] = 0.0;
    d->qpos[4] = 1.0;
    d->qpos[5] = d->qpos[6] = 0.0;
    mj_forward(m, d);
    int terminal = 0;
    for (int t = 0; t < 100 && !terminal; t++) {
        crl_env_step(e, zero, obs, &info);
        ck_assert_int_eq(info.terminal, d->qpos[2] < 0.2 || d->qpos[2] > 1.0);
        terminal = info.terminal;
    }
    ck_assert_msg(d->qpos[2] >= 0.2 && d->qpos[2] < 0.6, "flipped z %g", d->qpos[2]);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* Random actions: a full second of episodes, everything finite; with the
 * classic gear the ant can throw itself above 1 m, which ends an episode. */
START_TEST(test_ant_random) {
    crl_env_spec *s = make_spec("ant");
    crl_env *e = make_env(s);
    float obs[27], a[8];
    crl_step_info info;
    crl_rng r;
    crl_rng_seed(&r, 1);
    int episodes = 0, steps_in_ep = 0;
    crl_env_reset(e, 1, obs);
    for (int t = 0; t < 4000; t++) {
        for (int k = 0; k < 8; k++) a[k] = (float)crl_rng_range(&r, -1, 1);
        crl_env_step(e, a, obs, &info);
        steps_in_ep++;
        ck_assert(isfinite(info.reward));
        for (int k = 0; k < 27; k++) ck_assert(isfinite(obs[k]));
        ck_assert(!(info.terminal && info.truncated));
        if (info.terminal || info.truncated) {
            ck_assert(info.truncated == (steps_in_ep == 1000));
            episodes++;
            steps_in_ep = 0;
            crl_env_reset(e, 100 + (uint64_t)t, obs);
        }
    }
    ck_assert_int_gt(episodes, 0);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* Every variant, two specs: the same seed and actions give the same episode. */
START_TEST(test_variants_deterministic) {
    const char *name = _i < N_CHEETAH ? CHEETAH_TASKS[_i] : ANT_TASKS[_i - N_CHEETAH];
    crl_env_spec *s1 = make_spec(name), *s2 = make_spec(name);
    crl_env *a = make_env(s1), *b = make_env(s2);
    int od = crl_env_obs_dim(s1), ad = crl_env_act_dim(s1);
    float oa[27], ob[27], act[8];
    crl_step_info ia, ib;
    crl_rng r;
    crl_rng_seed(&r, 77);
    crl_env_reset(a, 31, oa);
    crl_env_reset(b, 31, ob);
    for (int t = 0; t < 100; t++) {
        for (int k = 0; k < ad; k++) act[k] = (float)crl_rng_range(&r, -1, 1);
        crl_env_step(a, act, oa, &ia);
        crl_env_step(b, act, ob, &ib);
        ck_assert_int_eq(memcmp(oa, ob, sizeof(float) * (size_t)od), 0);
        ck_assert_int_eq(memcmp(&ia, &ib, sizeof ia), 0);
        for (int k = 0; k < od; k++) ck_assert(isfinite(oa[k]));
        if (ia.terminal) {
            crl_env_reset(a, 40 + (uint64_t)t, oa);
            crl_env_reset(b, 40 + (uint64_t)t, ob);
        }
    }
    crl_env_free(a);
    crl_env_free(b);
    crl_env_spec_free(s1);
    crl_env_spec_free(s2);
}
END_TEST

/* ---- CLI: crl tasks / scenarios / scripted ------------------------------------ */

static char dir[256], out_path[300], err_path[300];

/* CRL_BIN (set by ctest), else the crl next to this test binary. */
static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    if (b) return b;
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 8);
    if (n <= 0) return "./crl";
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "crl");
    return path;
}

static void cli_setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_loco_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
}

static void cli_teardown(void) {
    unlink(out_path);
    unlink(err_path);
    rmdir(dir);
}

static int run(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define RUN(...) run((char *const[]){(char *)bin(), __VA_ARGS__, NULL})

static char *slurp(const char *path) {
    static char buf[1 << 17];
    FILE *f = fopen(path, "r");
    ck_assert(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void expect_error(int code, int want, const char *needle) {
    char *e = slurp(err_path);
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, e);
    ck_assert_msg(count_lines(e) == 1, "stderr is not one line: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
    ck_assert_str_eq(slurp(out_path), "");
}

START_TEST(test_cli_tasks) {
    ck_assert_int_eq(RUN("tasks"), 0);
    char *o = slurp(out_path);
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    ck_assert_int_eq(count_lines(o), n + 1); /* header + one line per task */
    /* The line of a task names it, its group, sizes and scripted flag. */
    char line[512];
    const char *p = strstr(o, "\nant-disabled_hard1 ");
    ck_assert(p != NULL);
    sscanf(p + 1, "%511[^\n]", line);
    char name[64], group[32], scripted[8];
    int od, ad;
    ck_assert_int_eq(sscanf(line, "%63s %31s %d %d %7s", name, group, &od, &ad, scripted),
                     5);
    ck_assert_str_eq(name, "ant-disabled_hard1");
    ck_assert_str_eq(group, "locomotion");
    ck_assert_int_eq(od, 27);
    ck_assert_int_eq(ad, 8);
    ck_assert_str_eq(scripted, "no");
    for (int i = 0; i < n; i++) {
        char key[200];
        snprintf(key, sizeof key, "\n%s ", list[i].name);
        ck_assert_msg(strstr(o, key) != NULL, "%s not listed", list[i].name);
        ck_assert(strstr(o, list[i].description) != NULL);
    }
    cli_teardown();
}
END_TEST

START_TEST(test_cli_scenarios) {
    ck_assert_int_eq(RUN("scenarios"), 0);
    char *o = slurp(out_path);
    ck_assert(strstr(o, "cw20 (20 tasks)") != NULL);
    ck_assert(strstr(o, "ant-transfer-short (4 tasks)") != NULL);
    ck_assert(strstr(o, "halfcheetah-robustness (8 tasks)") != NULL);
    ck_assert(strstr(o, "ant-disabled_first_diagonal, ant-disabled_second_diagonal, "
                        "ant-disabled_forefeet, ant-disabled_backfeet") != NULL);
    cli_teardown();
}
END_TEST

START_TEST(test_cli_scripted) {
    /* Errors: one line, exit 2, nothing on stdout. */
    expect_error(RUN("scripted", "--task", "no-such-task"), 2, "no-such-task");
    expect_error(RUN("scripted", "--task", "ant"), 2, "scripted");
    expect_error(RUN("scripted"), 2, "--task");
    expect_error(RUN("scripted", "--task", "ant", "--episodes", "0", "--random"), 2,
                 "--episodes");
    expect_error(RUN("scripted", "--task", "ant", "--bogus"), 2, "--bogus");

    /* Random actions: exactly one line on stdout, a rate in [0, 1],
     * repeatable for a seed. The pendulum succeeds now and then at random. */
    ck_assert_int_eq(RUN("scripted", "--task", "pendulum", "--episodes", "40", "--seed",
                         "3", "--random"),
                     0);
    char first[128];
    snprintf(first, sizeof first, "%s", slurp(out_path));
    ck_assert_int_eq(count_lines(first), 1);
    double rate = -1;
    ck_assert_int_eq(sscanf(first, "success_rate: %lf", &rate), 1);
    ck_assert(rate > 0.0 && rate < 0.6);
    ck_assert_str_eq(slurp(err_path), ""); /* no progress when stderr is a file */
    ck_assert_int_eq(RUN("scripted", "--task", "pendulum", "--episodes", "40", "--seed",
                         "3", "--random"),
                     0);
    ck_assert_str_eq(slurp(out_path), first);

    /* A locomotion task never succeeds. */
    ck_assert_int_eq(RUN("scripted", "--task", "ant", "--episodes", "1", "--random"), 0);
    ck_assert_str_eq(slurp(out_path), "success_rate: 0.000\n");

    /* With a scripted policy, if any task has one. */
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int i = 0; i < n; i++) {
        if (!list[i].has_scripted) continue;
        ck_assert_int_eq(
            RUN("scripted", "--task", (char *)list[i].name, "--episodes", "2"), 0);
        ck_assert_int_eq(sscanf(slurp(out_path), "success_rate: %lf", &rate), 1);
        ck_assert_int_eq(count_lines(slurp(out_path)), 1);
        break;
    }
    cli_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("locomotion");
    TCase *tc = tcase_create("envs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registered);
    tcase_add_loop_test(tc, test_physics_modifiers, 0, N_PHYS);
    tcase_add_test(tc, test_moon_falls_slower);
    tcase_add_loop_test(tc, test_action_modifiers, 0, N_ACTS);
    tcase_add_test(tc, test_defective_module);
    tcase_add_test(tc, test_ant_model_facts);
    tcase_add_test(tc, test_ant_obs_and_healthy_reward);
    tcase_add_test(tc, test_ant_stands);
    tcase_add_test(tc, test_ant_terminal);
    tcase_add_test(tc, test_ant_random);
    tcase_add_loop_test(tc, test_variants_deterministic, 0, N_CHEETAH + N_ANT);
    suite_add_tcase(s, tc);

    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);
    tcase_add_checked_fixture(cli, cli_setup, NULL);
    tcase_add_test(cli, test_cli_tasks);
    tcase_add_test(cli, test_cli_scenarios);
    tcase_add_test(cli, test_cli_scripted);
    suite_add_tcase(s, cli);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
