/* crl envs: the shared machinery of the manipulation suite (see manip.h). */
#include "manip.h"

#include <math.h>
#include <string.h>

/* ---- setup ---------------------------------------------------------------- */

static int find_obj(const crl_env_spec *s, int type, const char *what, const char *name,
                    int *id, crl_err *err) {
    int i = mj_name2id(s->m, type, name);
    if (i < 0)
        return crl_errf(err, CRL_EMUJOCO, "task '%s': model '%s' has no %s '%s'",
                        s->task->name, s->task->model, what, name);
    *id = i;
    return CRL_OK;
}

/* Looking at (0.05, 0.70, 0.08), 0.8 away, from azimuth 95 (the robot's
 * side, a little to the right), 60 degrees down: the table's working area
 * fills a 4:3 frame (the shelf's top boards and the window frame's top bar
 * are cut, their goals and handles are in). The
 * models' own camera "front" (1.25 away, 37 degrees down) left about 60 %
 * of the frame to the sky and the table's legs. Chosen by looking at
 * renders of all 17 tasks (docs/tasks-gallery.md). */
const double manip_view[6] = {0.05, 0.70, 0.08, 0.80, 95.0, -60.0};

int manip_find_body(const crl_env_spec *s, const char *name, int *id, crl_err *err) {
    return find_obj(s, mjOBJ_BODY, "body", name, id, err);
}
int manip_find_site(const crl_env_spec *s, const char *name, int *id, crl_err *err) {
    return find_obj(s, mjOBJ_SITE, "site", name, id, err);
}
int manip_find_joint(const crl_env_spec *s, const char *name, int *id, crl_err *err) {
    return find_obj(s, mjOBJ_JOINT, "joint", name, id, err);
}
int manip_find_geom(const crl_env_spec *s, const char *name, int *id, crl_err *err) {
    return find_obj(s, mjOBJ_GEOM, "geom", name, id, err);
}

int manip_find_joint_type(const crl_env_spec *s, const char *name, int type, int *id,
                          crl_err *err) {
    int rc = manip_find_joint(s, name, id, err);
    if (rc) return rc;
    if (s->m->jnt_type[*id] != type)
        return crl_errf(err, CRL_EMUJOCO,
                        "task '%s': joint '%s' of model '%s' has type %d, expected %d",
                        s->task->name, name, s->task->model, s->m->jnt_type[*id], type);
    return CRL_OK;
}

int manip_setup(crl_env_spec *s, crl_err *err) {
    const struct crl_task_def *t = s->task;
    const mjModel *m = s->m;
    if (!s->task_data || t->data_size < sizeof(manip_data))
        return crl_errf(err, CRL_EINVAL,
                        "task '%s': task data must begin with manip_data", t->name);
    if (t->state_size < sizeof(manip_state))
        return crl_errf(err, CRL_EINVAL,
                        "task '%s': task state must begin with manip_state", t->name);
    if (s->obs_dim != MANIP_OBS_DIM || s->act_dim != MANIP_ACT_DIM)
        return crl_errf(err, CRL_EINVAL,
                        "task '%s': manipulation tasks have obs %d, act %d", t->name,
                        MANIP_OBS_DIM, MANIP_ACT_DIM);
    manip_data *md = s->task_data;
    int rc, id, mocap_body, jnt;
    if ((rc = manip_find_body(s, "mocap", &mocap_body, err))) return rc;
    md->mocap = m->body_mocapid[mocap_body];
    if (md->mocap < 0)
        return crl_errf(err, CRL_EMUJOCO, "task '%s': body 'mocap' is not a mocap body",
                        t->name);
    if ((rc = manip_find_body(s, "hand", &md->hand_body, err))) return rc;
    if ((rc = manip_find_joint_type(s, "hand_free", mjJNT_FREE, &jnt, err))) return rc;
    md->hand_qpos = m->jnt_qposadr[jnt];
    md->hand_dof = m->jnt_dofadr[jnt];
    if ((rc = manip_find_joint_type(s, "lfinger", mjJNT_SLIDE, &jnt, err))) return rc;
    md->lfinger_qpos = m->jnt_qposadr[jnt];
    md->lfinger_dof = m->jnt_dofadr[jnt];
    if ((rc = manip_find_joint_type(s, "rfinger", mjJNT_SLIDE, &jnt, err))) return rc;
    md->rfinger_qpos = m->jnt_qposadr[jnt];
    md->rfinger_dof = m->jnt_dofadr[jnt];
    if ((rc = manip_find_body(s, "lfinger", &md->lpad_body, err))) return rc;
    if ((rc = manip_find_body(s, "rfinger", &md->rpad_body, err))) return rc;
    if ((rc = manip_find_geom(s, "lfinger_pad", &md->lpad_geom, err))) return rc;
    if ((rc = manip_find_geom(s, "rfinger_pad", &md->rpad_geom, err))) return rc;
    if ((rc = manip_find_site(s, "tcp", &md->tcp_site, err))) return rc;
    md->grip_act = mj_name2id(m, mjOBJ_ACTUATOR, "grip");
    if (md->grip_act < 0)
        return crl_errf(err, CRL_EMUJOCO, "task '%s': model '%s' has no actuator 'grip'",
                        t->name, t->model);
    static const char *const placeholders[3] = {"act_x", "act_y", "act_z"};
    for (int k = 0; k < 3; k++) {
        id = mj_name2id(m, mjOBJ_ACTUATOR, placeholders[k]);
        if (id != k)
            return crl_errf(err, CRL_EMUJOCO,
                            "task '%s': actuator %d of model '%s' must be '%s'", t->name,
                            k, t->model, placeholders[k]);
    }
    if (md->grip_act != 3 || m->nu != MANIP_ACT_DIM)
        return crl_errf(err, CRL_EMUJOCO,
                        "task '%s': model '%s' must have exactly the base's 4 actuators",
                        t->name, t->model);
    if (m->site_bodyid[md->tcp_site] != md->hand_body)
        return crl_errf(err, CRL_EMUJOCO, "task '%s': site 'tcp' must be on the hand",
                        t->name);
    for (int k = 0; k < 3; k++) md->tcp_offset[k] = m->site_pos[3 * md->tcp_site + k];

    md->lo[0] = MANIP_HAND_LO_X;
    md->lo[1] = MANIP_HAND_LO_Y;
    md->lo[2] = MANIP_HAND_LO_Z;
    md->hi[0] = MANIP_HAND_HI_X;
    md->hi[1] = MANIP_HAND_HI_Y;
    md->hi[2] = MANIP_HAND_HI_Z;
    md->hand_init[0] = 0.0;
    md->hand_init[1] = 0.6;
    md->hand_init[2] = 0.2;
    md->obj[0].kind = md->obj[1].kind = MANIP_NONE;
    md->obj[0].id = md->obj[1].id = -1;
    return CRL_OK;
}

/* ---- reset ---------------------------------------------------------------- */

void manip_draw(crl_rng *rng, int n, const double *lo, const double *hi, double *out) {
    for (int i = 0; i < n; i++) out[i] = crl_rng_range(rng, lo[i], hi[i]);
}

void manip_draw_apart(crl_rng *rng, const double alo[2], const double ahi[2],
                      const double blo[2], const double bhi[2], double min_dist,
                      double a[2], double b[2]) {
    for (int tries = 0; tries < 1000; tries++) {
        manip_draw(rng, 2, alo, ahi, a);
        manip_draw(rng, 2, blo, bhi, b);
        if (hypot(a[0] - b[0], a[1] - b[1]) >= min_dist) return;
    }
}

void manip_set_free(crl_env *e, int joint, const double pos[3], const double quat[4]) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    int qa = m->jnt_qposadr[joint], va = m->jnt_dofadr[joint];
    static const double unit[4] = {1, 0, 0, 0};
    if (!quat) quat = unit;
    for (int k = 0; k < 3; k++) d->qpos[qa + k] = pos[k];
    for (int k = 0; k < 4; k++) d->qpos[qa + 3 + k] = quat[k];
    for (int k = 0; k < 6; k++) d->qvel[va + k] = 0.0;
}

void manip_reset_hand(crl_env *e, const double pos[3]) {
    const mjModel *m = e->spec->m;
    const manip_data *md = manip_md(e);
    manip_state *ms = manip_ms(e);
    mjData *d = e->d;
    if (!pos) pos = md->hand_init;
    double p[3];
    for (int k = 0; k < 3; k++) p[k] = manip_clamp(pos[k], md->lo[k], md->hi[k]);
    for (int k = 0; k < 3; k++) {
        d->mocap_pos[3 * md->mocap + k] = p[k];
        d->qpos[md->hand_qpos + k] = p[k];
    }
    d->mocap_quat[4 * md->mocap] = 1.0;
    for (int k = 1; k < 4; k++) d->mocap_quat[4 * md->mocap + k] = 0.0;
    d->qpos[md->hand_qpos + 3] = 1.0;
    for (int k = 4; k < 7; k++) d->qpos[md->hand_qpos + k] = 0.0;
    for (int k = 0; k < 6; k++) d->qvel[md->hand_dof + k] = 0.0;
    d->qpos[md->lfinger_qpos] = d->qpos[md->rfinger_qpos] = MANIP_FINGER_MAX;
    d->qvel[md->lfinger_dof] = d->qvel[md->rfinger_dof] = 0.0;
    for (int k = 0; k < 3; k++) d->ctrl[k] = 0.0;
    d->ctrl[md->grip_act] = m->actuator_ctrlrange[2 * md->grip_act + 1]; /* open */
    for (int k = 0; k < MANIP_SETTLE_STEPS; k++) mj_step(m, d);
    mj_forward(m, d);
    manip_frame(e, ms->prev);
}

/* ---- step ----------------------------------------------------------------- */

void manip_apply_action(crl_env *e, const float *act) {
    const mjModel *m = e->spec->m;
    const manip_data *md = manip_md(e);
    manip_state *ms = manip_ms(e);
    mjData *d = e->d;
    manip_frame(e, ms->prev);
    double *mp = d->mocap_pos + 3 * md->mocap;
    for (int k = 0; k < 3; k++) {
        mp[k] = manip_clamp(mp[k] + MANIP_ACT_SCALE * act[k], md->lo[k], md->hi[k]);
        d->ctrl[k] = act[k];
    }
    /* +1 closes: the servo target goes from open (hi) to closed (lo). */
    double lo = m->actuator_ctrlrange[2 * md->grip_act],
           hi = m->actuator_ctrlrange[2 * md->grip_act + 1];
    d->ctrl[md->grip_act] = 0.5 * (lo + hi) - 0.5 * (hi - lo) * act[3];
}

static void ref_pose(const crl_env *e, manip_ref r, float *out7) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    const double *p = NULL;
    double q[4] = {0, 0, 0, 0};
    switch (r.kind) {
    case MANIP_BODY:
        p = d->xpos + 3 * r.id;
        for (int k = 0; k < 4; k++) q[k] = d->xquat[4 * r.id + k];
        break;
    case MANIP_SITE:
        p = d->site_xpos + 3 * r.id;
        mju_mat2Quat(q, d->site_xmat + 9 * r.id);
        break;
    case MANIP_GEOM:
        p = d->geom_xpos + 3 * r.id;
        mju_mat2Quat(q, d->geom_xmat + 9 * r.id);
        break;
    default:
        break;
    }
    (void)m;
    for (int k = 0; k < 3; k++) out7[k] = p ? (float)p[k] : 0.0f;
    for (int k = 0; k < 4; k++) out7[3 + k] = (float)q[k];
}

void manip_frame(const crl_env *e, float *out) {
    const manip_data *md = manip_md(e);
    const double *tcp = manip_tcp(e);
    for (int k = 0; k < 3; k++) out[k] = (float)tcp[k];
    out[3] = (float)manip_opening(e);
    ref_pose(e, md->obj[0], out + 4);
    ref_pose(e, md->obj[1], out + 11);
}

void manip_observe(const crl_env *e, float *obs) {
    const manip_state *ms = manip_ms(e);
    manip_frame(e, obs);
    memcpy(obs + MANIP_FRAME_DIM, ms->prev, sizeof ms->prev);
    for (int k = 0; k < 3; k++) obs[2 * MANIP_FRAME_DIM + k] = (float)ms->goal[k];
}

void manip_sync(crl_env *e) {
    mj_kinematics(e->spec->m, e->d);
}

/* ---- geometry and contacts ----------------------------------------------- */

const double *manip_tcp(const crl_env *e) {
    return e->d->site_xpos + 3 * manip_md(e)->tcp_site;
}

double manip_opening(const crl_env *e) {
    const manip_data *md = manip_md(e);
    const mjData *d = e->d;
    double q = 0.5 * (d->qpos[md->lfinger_qpos] + d->qpos[md->rfinger_qpos]);
    return manip_clamp(q / MANIP_FINGER_MAX, 0.0, 1.0);
}

const double *manip_ref_pos(const crl_env *e, manip_ref r) {
    static const double zero[3] = {0, 0, 0};
    const mjData *d = e->d;
    switch (r.kind) {
    case MANIP_BODY:
        return d->xpos + 3 * r.id;
    case MANIP_SITE:
        return d->site_xpos + 3 * r.id;
    case MANIP_GEOM:
        return d->geom_xpos + 3 * r.id;
    default:
        return zero;
    }
}

double manip_dist(const double *a, const double *b) {
    double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    return sqrt(dx * dx + dy * dy + dz * dz);
}

double manip_dist_xy(const double *a, const double *b) {
    return hypot(a[0] - b[0], a[1] - b[1]);
}

int manip_pad_contacts(const crl_env *e, int body) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    const manip_data *md = manip_md(e);
    int bits = 0;
    for (int i = 0; i < d->ncon; i++) {
        int g1 = d->contact[i].geom1, g2 = d->contact[i].geom2;
        int b1 = m->geom_bodyid[g1], b2 = m->geom_bodyid[g2];
        int other;
        if (g1 == md->lpad_geom || g2 == md->lpad_geom) {
            other = g1 == md->lpad_geom ? b2 : b1;
            if (other == body) bits |= 1;
        }
        if (g1 == md->rpad_geom || g2 == md->rpad_geom) {
            other = g1 == md->rpad_geom ? b2 : b1;
            if (other == body) bits |= 2;
        }
    }
    return bits;
}

int manip_grasped(const crl_env *e, int body) {
    return manip_pad_contacts(e, body) == 3;
}

int manip_hand_touches(const crl_env *e, int body) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    const manip_data *md = manip_md(e);
    for (int i = 0; i < d->ncon; i++) {
        int b1 = m->geom_bodyid[d->contact[i].geom1],
            b2 = m->geom_bodyid[d->contact[i].geom2];
        int h1 = b1 == md->hand_body || b1 == md->lpad_body || b1 == md->rpad_body;
        int h2 = b2 == md->hand_body || b2 == md->lpad_body || b2 == md->rpad_body;
        if ((h1 && b2 == body) || (h2 && b1 == body)) return 1;
    }
    return 0;
}

/* ---- rewards -------------------------------------------------------------- */

double manip_tolerance(double x, double lo, double hi, double margin, int shape,
                       double value_at_margin) {
    if (x >= lo && x <= hi) return 1.0;
    if (margin <= 0.0) return 0.0;
    double dist = (x < lo ? lo - x : x - hi) / margin;
    double v = manip_clamp(value_at_margin, 1e-6, 1.0 - 1e-6);
    if (shape == MANIP_LONG_TAIL) {
        double s2 = 1.0 / v - 1.0;
        return 1.0 / (1.0 + dist * dist * s2);
    }
    double s2 = -2.0 * log(v);
    return exp(-0.5 * dist * dist * s2);
}

double manip_hamacher(double a, double b) {
    a = manip_clamp(a, 0.0, 1.0);
    b = manip_clamp(b, 0.0, 1.0);
    double den = a + b - a * b;
    return den > 0.0 ? a * b / den : 0.0;
}

double manip_grasp_score(const crl_env *e, const double *obj, double width) {
    double near = manip_tolerance(manip_dist(manip_tcp(e), obj), 0.0, 0.02, 0.05,
                                  MANIP_GAUSSIAN, 0.1);
    double full = width / (2.0 * MANIP_FINGER_MAX) + 0.05;
    double closed =
        manip_tolerance(manip_opening(e), 0.0, full, 1.0 - full, MANIP_GAUSSIAN, 0.1);
    return near * closed;
}

/* ---- scripted policies ---------------------------------------------------- */

void manip_move_towards(const crl_env *e, const double target[3], double gain,
                        float *act) {
    /* The error of the commanded tcp (mocap + tcp offset), not of the tcp
     * itself: the hand trails the mocap by about two env steps at full
     * speed, and closing the loop on the trailing tcp overshoots. */
    const manip_data *md = manip_md(e);
    const double *mp = e->d->mocap_pos + 3 * md->mocap;
    for (int k = 0; k < 3; k++) {
        double cmd = mp[k] + md->tcp_offset[k];
        act[k] =
            (float)manip_clamp(gain * (target[k] - cmd) / MANIP_ACT_SCALE, -1.0, 1.0);
    }
}

int manip_at(const crl_env *e, const double target[3], double tol) {
    return manip_dist(manip_tcp(e), target) <= tol;
}

void manip_rate_limit(manip_state *ms, float *act, double max_delta) {
    for (int k = 0; k < 3; k++) {
        double a = manip_clamp(act[k], ms->aux[k] - max_delta, ms->aux[k] + max_delta);
        act[k] = (float)a;
        ms->aux[k] = a;
    }
}

void manip_move_smooth(const crl_env *e, manip_state *ms, const double target[3],
                       double accel, float *act) {
    const manip_data *md = manip_md(e);
    const double *mp = e->d->mocap_pos + 3 * md->mocap;
    double err[3], n = 0.0;
    for (int k = 0; k < 3; k++) {
        err[k] = (target[k] - (mp[k] + md->tcp_offset[k])) / MANIP_ACT_SCALE;
        n += err[k] * err[k];
    }
    n = sqrt(n);
    double speed = n < 1.0 ? n : 1.0, stop = sqrt(accel * n);
    if (stop < speed) speed = stop;
    for (int k = 0; k < 3; k++) {
        double v = n > 0.0 ? err[k] / n * speed : 0.0;
        v = manip_clamp(v, ms->aux[k] - accel, ms->aux[k] + accel);
        act[k] = (float)v;
        ms->aux[k] = v;
    }
}
