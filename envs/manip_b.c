/* crl envs: manipulation tasks, part B (scenes envs/models/manip_*.xml).
 *
 *   CW10 ("manipulation"): hammer, faucet-close, handle-press-side,
 *                          window-close, peg-unplug-side
 *   pre-training ("pretrain"): faucet-open, window-open, handle-press,
 *                          drawer-open, button-press-topdown
 *
 * Every task but hammer is an articulated fixture: a mocap body placed (and
 * for handle-press-side turned) at each reset, carrying one moving part on a
 * slide or hinge joint. One description (struct mb_variant, the def's
 * .variant) covers a scene and its twin: the joint's start and goal values,
 * the fixture's placement range, the success radius. Positions of the
 * tracked site at the start and at the goal are computed once at setup in
 * the fixture's own frame, so reset only rotates and translates them.
 *
 * Rewards (docs/tasks-manip-b.md has the formulas): a weighted sum of
 * manip_tolerance terms, reach (tcp to the contact point) + grasp where the
 * task needs one + progress of the part towards the goal, bounded by 10 and
 * exactly 10 on success. The scripted policies read the joint and the sites
 * (privileged state) and walk through waypoints; their phase is in
 * manip_state.phase. */
#include "manip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared description and state ---------------------------------------- */

enum { MB_HAMMER, MB_FAUCET, MB_HANDLE, MB_WINDOW, MB_PEG, MB_DRAWER, MB_BUTTON };

typedef struct {
    int scene;           /* MB_* */
    const char *fixture; /* mocap body placed at reset (NULL: hammer) */
    const char *joint;   /* the moving part's joint */
    const char *site;    /* tracked site (observation object 1) */
    const char *contact; /* site the tcp reaches for */
    const char *part;    /* body of the moving part (contacts, grasp) */
    double q_start, q_goal;
    double lo[2], hi[2]; /* fixture xy range */
    double yaw;          /* fixture yaw about z (radians) */
    double success;      /* success radius of the tracked site to the goal */
    double hand_lo_z;    /* hand z bound (0: the default) */
} mb_variant;

typedef struct {
    manip_data md;
    const mb_variant *v;
    int jnt, qadr, dadr; /* the moving part's joint */
    int fix_mocap;       /* mocap index of the fixture, or -1 */
    int part_body;
    int site, contact; /* site ids */
    int free_jnt;      /* hammer: its free joint */
    int hammer_body, face_site, nail_site, head_geom;
    double site_start[3]; /* tracked site in the fixture frame, q = q_start */
    double site_goal[3];  /* ... and at q = q_goal */
    double contact_start[3];
    double pivot[3];  /* faucet: hinge axis point in the fixture frame */
    double pad_below; /* how far the pad bottoms hang below the tcp */
} mb_data;

typedef struct {
    manip_state ms;
    double fix_pos[3]; /* fixture placement of this episode */
    double fix_quat[4];
    double start[3]; /* tracked site at reset (world) */
} mb_state;

static inline const mb_data *mb_d(const crl_env *e) {
    return (const mb_data *)e->spec->task_data;
}
static inline mb_state *mb_s(const crl_env *e) {
    return (mb_state *)e->task_state;
}

/* Site position (world) when the fixture sits at the origin, unturned, and
 * the part's joint is at q; everything else at qpos0. Setup-time only (it
 * allocates an mjData). */
static int site_at(const crl_env_spec *s, const mb_data *bd, int site, double q,
                   double out[3]) {
    const mjModel *m = s->m;
    mjData *d = mj_makeData(m);
    if (!d) return -1;
    mju_copy(d->qpos, m->qpos0, m->nq);
    if (bd->fix_mocap >= 0) {
        mju_zero3(d->mocap_pos + 3 * bd->fix_mocap);
        d->mocap_quat[4 * bd->fix_mocap] = 1.0;
        d->mocap_quat[4 * bd->fix_mocap + 1] = 0.0;
        d->mocap_quat[4 * bd->fix_mocap + 2] = 0.0;
        d->mocap_quat[4 * bd->fix_mocap + 3] = 0.0;
    }
    d->qpos[bd->qadr] = q;
    mj_kinematics(m, d);
    mju_copy3(out, d->site_xpos + 3 * site);
    mj_deleteData(d);
    return 0;
}

/* Fixture frame to world for this episode. */
static void to_world(const mb_state *st, const double local[3], double out[3]) {
    double r[3];
    mju_rotVecQuat(r, local, st->fix_quat);
    for (int k = 0; k < 3; k++) out[k] = st->fix_pos[k] + r[k];
}

static int mb_setup(crl_env_spec *s, crl_err *err) {
    int rc = manip_setup(s, err);
    if (rc) return rc;
    mb_data *bd = s->task_data;
    const mb_variant *v = s->task->variant;
    const mjModel *m = s->m;
    bd->v = v;
    bd->fix_mocap = -1;
    bd->free_jnt = bd->hammer_body = bd->face_site = bd->nail_site = -1;
    if (v->fixture) {
        int b;
        if ((rc = manip_find_body(s, v->fixture, &b, err))) return rc;
        bd->fix_mocap = m->body_mocapid[b];
        if (bd->fix_mocap < 0)
            return crl_errf(err, CRL_EMUJOCO, "task '%s': body '%s' is not a mocap body",
                            s->task->name, v->fixture);
    }
    if ((rc = manip_find_joint(s, v->joint, &bd->jnt, err))) return rc;
    int jt = m->jnt_type[bd->jnt];
    if (jt != mjJNT_SLIDE && jt != mjJNT_HINGE)
        return crl_errf(err, CRL_EMUJOCO,
                        "task '%s': joint '%s' must be a slide or hinge", s->task->name,
                        v->joint);
    bd->qadr = m->jnt_qposadr[bd->jnt];
    bd->dadr = m->jnt_dofadr[bd->jnt];
    if ((rc = manip_find_site(s, v->site, &bd->site, err))) return rc;
    if ((rc = manip_find_site(s, v->contact, &bd->contact, err))) return rc;
    if ((rc = manip_find_body(s, v->part, &bd->part_body, err))) return rc;

    if (v->scene == MB_HAMMER) {
        if ((rc =
                 manip_find_joint_type(s, "hammer_free", mjJNT_FREE, &bd->free_jnt, err)))
            return rc;
        if ((rc = manip_find_body(s, "hammer", &bd->hammer_body, err))) return rc;
        if ((rc = manip_find_site(s, "hammer_face", &bd->face_site, err))) return rc;
        if ((rc = manip_find_geom(s, "hammer_head", &bd->head_geom, err))) return rc;
        bd->nail_site = bd->site;
        bd->md.obj[0].kind = MANIP_BODY;
        bd->md.obj[0].id = bd->hammer_body;
        bd->md.obj[1].kind = MANIP_SITE;
        bd->md.obj[1].id = bd->nail_site;
    } else {
        bd->md.obj[0].kind = MANIP_SITE;
        bd->md.obj[0].id = bd->site;
    }
    if (site_at(s, bd, bd->site, v->q_start, bd->site_start) ||
        site_at(s, bd, bd->site, v->q_goal, bd->site_goal) ||
        site_at(s, bd, bd->contact, v->q_start, bd->contact_start))
        return crl_errf(err, CRL_ENOMEM, "task '%s': out of memory", s->task->name);
    if (v->scene == MB_FAUCET) {
        /* The lever body's origin is on the hinge axis. */
        int lever = m->jnt_bodyid[bd->jnt];
        for (int k = 0; k < 3; k++) bd->pivot[k] = m->body_pos[3 * lever + k];
    }
    if (v->hand_lo_z != 0.0) bd->md.lo[2] = v->hand_lo_z;
    /* Pads and tcp both hang from the hand at fixed heights (the fingers
     * slide sideways only). */
    int pad = bd->md.lpad_geom;
    bd->pad_below =
        bd->md.tcp_offset[2] - (m->body_pos[3 * m->geom_bodyid[pad] + 2] +
                                m->geom_pos[3 * pad + 2] - m->geom_size[3 * pad + 2]);
    return CRL_OK;
}

static void mb_reset(crl_env *e, crl_rng *rng) {
    const mb_data *bd = mb_d(e);
    const mb_variant *v = bd->v;
    mb_state *st = mb_s(e);
    mjData *d = e->d;
    double xy[2];
    manip_draw(rng, 2, v->lo, v->hi, xy);
    st->fix_quat[0] = cos(0.5 * v->yaw);
    st->fix_quat[1] = st->fix_quat[2] = 0.0;
    st->fix_quat[3] = sin(0.5 * v->yaw);
    if (v->scene == MB_HAMMER) {
        /* The hammer lies flat on the table; the nail mount is fixed. */
        double pos[3] = {xy[0], xy[1], 0.02};
        manip_set_free(e, bd->free_jnt, pos, NULL);
        mju_zero3(st->fix_pos);
        st->fix_quat[0] = 1.0;
        st->fix_quat[3] = 0.0;
    } else {
        st->fix_pos[0] = xy[0];
        st->fix_pos[1] = xy[1];
        st->fix_pos[2] = 0.0;
        mju_copy3(d->mocap_pos + 3 * bd->fix_mocap, st->fix_pos);
        mju_copy4(d->mocap_quat + 4 * bd->fix_mocap, st->fix_quat);
    }
    d->qpos[bd->qadr] = v->q_start;
    d->qvel[bd->dadr] = 0.0;
    to_world(st, bd->site_start, st->start);
    to_world(st, bd->site_goal, st->ms.goal);
    manip_reset_hand(e, NULL);
}

/* ---- helpers --------------------------------------------------------------- */

static double joint_q(const crl_env *e) {
    return e->d->qpos[mb_d(e)->qadr];
}
static const double *site_pos(const crl_env *e, int site) {
    return e->d->site_xpos + 3 * site;
}
/* Reach term: 1 within `bound` of the target, long tail to 0.1 at 0.25 m
 * beyond it. */
static double reach_term(const double *tcp, const double *target, double bound) {
    return manip_tolerance(manip_dist(tcp, target), 0.0, bound, 0.25, MANIP_LONG_TAIL,
                           0.1);
}
/* Progress term: 1 within the success radius of the goal, Gaussian to 0.1 at
 * `margin` beyond it. */
static double goal_term(double dist, double radius, double margin) {
    return manip_tolerance(dist, 0.0, radius, margin, MANIP_GAUSSIAN, 0.1);
}
static void finish(crl_step_info *info, double r, int success) {
    info->success = success;
    info->reward = success ? (float)MANIP_REWARD_MAX
                           : (float)manip_clamp(r, 0.0, 0.999 * MANIP_REWARD_MAX);
}
static void offset(const double *p, double dx, double dy, double dz, double out[3]) {
    out[0] = p[0] + dx;
    out[1] = p[1] + dy;
    out[2] = p[2] + dz;
}

/* ---- hammer ---------------------------------------------------------------- */

#define HAMMER_DRIVEN 0.09 /* nail slide position counted as driven in */

static void hammer_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const double *tcp = manip_tcp(e);
    double q = joint_q(e);
    double reach = reach_term(tcp, site_pos(e, bd->contact), 0.02);
    int pads = manip_pad_contacts(e, bd->hammer_body);
    double held = 0.5 * (pads & 1) + 0.5 * ((pads >> 1) & 1);
    double lifted = manip_tolerance(e->d->xpos[3 * bd->hammer_body + 2], 0.04, 1.0, 0.02,
                                    MANIP_GAUSSIAN, 0.1);
    double carry = manip_tolerance(
        manip_dist(site_pos(e, bd->face_site), site_pos(e, bd->nail_site)), 0.0, 0.02,
        0.4, MANIP_LONG_TAIL, 0.1);
    double drive =
        manip_tolerance(q, HAMMER_DRIVEN, 1.0, HAMMER_DRIVEN, MANIP_GAUSSIAN, 0.05);
    double r =
        1.0 * reach + 1.0 * held * (0.5 + 0.5 * lifted) + 3.0 * carry + 5.0 * drive;
    finish(info, r, q > HAMMER_DRIVEN);
}

enum { HP_ABOVE, HP_DESCEND, HP_CLOSE, HP_LIFT, HP_ALIGN, HP_STRIKE };

/* Limit how fast the commanded hand velocity changes while the hammer is
 * held: the grip is a soft servo, and a sudden jerk of the hand would shake
 * the hammer loose. */
static void smooth(const float *prev, float *act, float step) {
    for (int k = 0; k < 3; k++) {
        float lo = prev[k] - step, hi = prev[k] + step;
        act[k] = act[k] < lo ? lo : (act[k] > hi ? hi : act[k]);
    }
}

static void hammer_scripted(crl_env *e, float *act) {
    const mb_data *bd = mb_d(e);
    manip_state *ms = &mb_s(e)->ms;
    const double *tcp = manip_tcp(e);
    const double *grip = site_pos(e, bd->contact);
    const double *head = e->d->geom_xpos + 3 * bd->head_geom;
    const double *nail = site_pos(e, bd->nail_site);
    double t[3];
    memset(act, 0, 4 * sizeof *act);
    ms->timer++;
    /* Dropped it (or never got it): open up and start over. */
    if (ms->phase >= HP_LIFT && manip_dist(tcp, grip) > 0.03) manip_phase(ms, HP_ABOVE);
    switch (ms->phase) {
    case HP_ABOVE:
        offset(grip, 0, 0, 0.08, t);
        manip_move_towards(e, t, 1.0, act);
        manip_grip(act, 0);
        if (manip_dist_xy(tcp, t) < 0.01) manip_phase(ms, HP_DESCEND);
        break;
    case HP_DESCEND:
        manip_move_towards(e, grip, 1.0, act);
        manip_grip(act, 0);
        if (manip_at(e, grip, 0.008) || ms->timer > 25) manip_phase(ms, HP_CLOSE);
        break;
    case HP_CLOSE:
        manip_move_towards(e, grip, 1.0, act);
        manip_grip(act, 1);
        if (ms->timer >= 8) manip_phase(ms, HP_LIFT);
        break;
    case HP_LIFT:
        mju_copy3(t, tcp);
        t[2] = nail[2] + 0.03;
        manip_move_towards(e, t, 1.0, act);
        manip_grip(act, 1);
        if (tcp[2] > nail[2] + 0.015) manip_phase(ms, HP_ALIGN);
        break;
    case HP_ALIGN:
    case HP_STRIKE: {
        /* Steer the head (its centre is on the handle's axis), not the hand:
         * the hammer may sit a little askew in the grasp. */
        double hy = 0.045; /* head half-length along y */
        double want[3] = {nail[0], nail[1] - hy - 0.04, nail[2]};
        if (ms->phase == HP_STRIKE) want[1] = nail[1] - hy + 0.03;
        for (int k = 0; k < 3; k++) t[k] = tcp[k] + want[k] - head[k];
        manip_move_towards(e, t, 1.0, act);
        manip_grip(act, 1);
        if (ms->phase == HP_ALIGN && manip_dist(head, want) < 0.012)
            manip_phase(ms, HP_STRIKE);
        break;
    }
    }
    if (ms->phase >= HP_LIFT) {
        const float *prev = e->act; /* the previous step's clipped action */
        smooth(prev, act, 0.2f);
    }
}

/* ---- faucet ---------------------------------------------------------------- */

static void faucet_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const mb_state *st = mb_s(e);
    const double *tcp = manip_tcp(e);
    const double *end = site_pos(e, bd->site);
    double dist = manip_dist(end, st->ms.goal);
    double reach = reach_term(tcp, end, 0.04);
    double start_dist = manip_dist(st->start, st->ms.goal);
    double turn = goal_term(dist, bd->v->success, start_dist - bd->v->success);
    finish(info, 2.0 * reach + 8.0 * turn, dist <= bd->v->success);
}

/* Push the knob round the hinge: stand behind it (angle `lag` back along the
 * arc, on the lever's circle) and aim ahead of it. */
enum { FP_ABOVE, FP_DESCEND, FP_PUSH };

static void faucet_scripted(crl_env *e, float *act) {
    const mb_data *bd = mb_d(e);
    mb_state *st = mb_s(e);
    manip_state *ms = &st->ms;
    const double *tcp = manip_tcp(e);
    double dir = bd->v->q_goal > bd->v->q_start ? 1.0 : -1.0;
    double q = joint_q(e);
    double hub[3];
    to_world(st, bd->pivot, hub);
    double R = 0.1, zp = hub[2] - 0.01;
    double behind = q - dir * 0.42, ahead = q + dir * 0.35;
    double pb[3] = {hub[0] + R * cos(behind), hub[1] + R * sin(behind), zp};
    double pa[3] = {hub[0] + R * cos(ahead), hub[1] + R * sin(ahead), zp};
    double t[3];
    memset(act, 0, 4 * sizeof *act);
    manip_grip(act, 1);
    ms->timer++;
    switch (ms->phase) {
    case FP_ABOVE:
        offset(pb, 0, 0, 0.07, t);
        manip_move_towards(e, t, 1.0, act);
        if (manip_dist_xy(tcp, t) < 0.01) manip_phase(ms, FP_DESCEND);
        break;
    case FP_DESCEND:
        manip_move_towards(e, pb, 1.0, act);
        if (manip_at(e, pb, 0.01) || ms->timer > 20) manip_phase(ms, FP_PUSH);
        break;
    case FP_PUSH:
        manip_move_towards(e, pa, 1.0, act);
        break;
    }
}

/* ---- handle press ------------------------------------------------------------ */

static void handle_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const mb_state *st = mb_s(e);
    const double *tcp = manip_tcp(e);
    double t[3];
    offset(site_pos(e, bd->contact), 0, 0, bd->pad_below, t); /* pads on the top face */
    double reach = reach_term(tcp, t, 0.02);
    double depth = site_pos(e, bd->site)[2] - st->ms.goal[2];
    double travel = st->start[2] - st->ms.goal[2];
    double press = goal_term(depth, bd->v->success, travel - bd->v->success);
    finish(info, 2.0 * reach + 8.0 * press, depth <= bd->v->success);
}

enum { PP_ABOVE, PP_PRESS };

/* Shared by handle-press(-side) and button-press-topdown: closed fingers come
 * down on the contact site from above and press past the goal depth. */
static void press_scripted(crl_env *e, float *act) {
    const mb_data *bd = mb_d(e);
    mb_state *st = mb_s(e);
    manip_state *ms = &st->ms;
    const double *tcp = manip_tcp(e);
    const double *c = site_pos(e, bd->contact);
    double t[3];
    memset(act, 0, 4 * sizeof *act);
    manip_grip(act, 1);
    ms->timer++;
    switch (ms->phase) {
    case PP_ABOVE:
        offset(c, 0, 0, 0.08, t);
        manip_move_towards(e, t, 1.0, act);
        if (manip_dist_xy(tcp, t) < 0.008) manip_phase(ms, PP_PRESS);
        break;
    case PP_PRESS: {
        /* Aim the pads 2 cm below the goal depth of the contact point. */
        double drop = st->start[2] - st->ms.goal[2];
        t[0] = c[0];
        t[1] = c[1];
        t[2] = bd->contact_start[2] + st->fix_pos[2] - drop + bd->pad_below - 0.02;
        manip_move_towards(e, t, 1.0, act);
        break;
    }
    }
}

/* ---- window -------------------------------------------------------------------- */

static void window_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const mb_state *st = mb_s(e);
    const double *tcp = manip_tcp(e);
    const double *h = site_pos(e, bd->site);
    double dir = bd->v->q_goal > bd->v->q_start ? 1.0 : -1.0;
    double push[3];
    offset(h, -dir * 0.033, 0, 0, push); /* pads against the bar, behind it */
    double reach = reach_term(tcp, push, 0.015);
    double dist = manip_dist(h, st->ms.goal);
    double start_dist = manip_dist(st->start, st->ms.goal);
    double slide = goal_term(dist, bd->v->success, start_dist - bd->v->success);
    finish(info, 2.0 * reach + 8.0 * slide, dist <= bd->v->success);
}

enum { WP_ABOVE, WP_DESCEND, WP_PUSH };

static void window_scripted(crl_env *e, float *act) {
    const mb_data *bd = mb_d(e);
    mb_state *st = mb_s(e);
    manip_state *ms = &st->ms;
    const double *tcp = manip_tcp(e);
    const double *h = site_pos(e, bd->site);
    double dir = bd->v->q_goal > bd->v->q_start ? 1.0 : -1.0;
    double t[3];
    memset(act, 0, 4 * sizeof *act);
    manip_grip(act, 1);
    ms->timer++;
    switch (ms->phase) {
    case WP_ABOVE:
        offset(h, -dir * 0.04, 0, 0.08, t);
        manip_move_towards(e, t, 1.0, act);
        if (manip_dist_xy(tcp, t) < 0.008) manip_phase(ms, WP_DESCEND);
        break;
    case WP_DESCEND:
        offset(h, -dir * 0.04, 0, 0, t);
        manip_move_towards(e, t, 1.0, act);
        if (manip_at(e, t, 0.008) || ms->timer > 20) manip_phase(ms, WP_PUSH);
        break;
    case WP_PUSH:
        offset(st->ms.goal, dir * 0.03 - dir * 0.033, 0, 0, t);
        t[1] = h[1];
        t[2] = h[2];
        manip_move_towards(e, t, 1.0, act);
        break;
    }
}

/* ---- grasp-and-pull: peg-unplug-side and drawer-open ------------------------------ */

static void pull_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const mb_state *st = mb_s(e);
    const double *tcp = manip_tcp(e);
    const double *p = site_pos(e, bd->site);
    double reach = reach_term(tcp, site_pos(e, bd->contact), 0.015);
    /* Half a point per pad on the part: a pull with one pad hooked behind
     * the handle is worth something too. */
    int pads = manip_pad_contacts(e, bd->part_body);
    double grasp = 0.5 * (pads & 1) + 0.5 * ((pads >> 1) & 1);
    double dist = manip_dist(p, st->ms.goal);
    double start_dist = manip_dist(st->start, st->ms.goal);
    double pull = goal_term(dist, bd->v->success, start_dist - bd->v->success);
    finish(info, 1.5 * reach + 1.5 * grasp + 7.0 * pull, dist <= bd->v->success);
}

enum { GP_ABOVE, GP_DESCEND, GP_CLOSE, GP_PULL };

static void pull_scripted(crl_env *e, float *act) {
    const mb_data *bd = mb_d(e);
    mb_state *st = mb_s(e);
    manip_state *ms = &st->ms;
    const double *tcp = manip_tcp(e);
    const double *c = site_pos(e, bd->contact);
    double t[3];
    memset(act, 0, 4 * sizeof *act);
    ms->timer++;
    switch (ms->phase) {
    case GP_ABOVE:
        offset(c, 0, 0, 0.08, t);
        manip_move_towards(e, t, 1.0, act);
        manip_grip(act, 0);
        if (manip_dist_xy(tcp, t) < 0.008) manip_phase(ms, GP_DESCEND);
        break;
    case GP_DESCEND:
        manip_move_towards(e, c, 1.0, act);
        manip_grip(act, 0);
        if (manip_at(e, c, 0.008) || ms->timer > 20) manip_phase(ms, GP_CLOSE);
        break;
    case GP_CLOSE:
        manip_move_towards(e, c, 1.0, act);
        manip_grip(act, 1);
        if (ms->timer >= 8) manip_phase(ms, GP_PULL);
        break;
    case GP_PULL: {
        /* Carry the contact point past the goal by 3 cm along the pull. */
        double d[3];
        for (int k = 0; k < 3; k++) d[k] = st->ms.goal[k] - st->start[k];
        double n = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        for (int k = 0; k < 3; k++)
            t[k] = st->ms.goal[k] + (c[k] - site_pos(e, bd->site)[k]) + 0.03 * d[k] / n;
        manip_move_towards(e, t, 1.0, act);
        manip_grip(act, 1);
        break;
    }
    }
}

/* ---- button -------------------------------------------------------------------- */

static void button_reward(crl_env *e, const float *act, crl_step_info *info) {
    manip_sync(e);
    const mb_data *bd = mb_d(e);
    const mb_state *st = mb_s(e);
    const double *tcp = manip_tcp(e);
    const double *top = site_pos(e, bd->site);
    double t[3];
    offset(top, 0, 0, bd->pad_below, t);
    double reach = reach_term(tcp, t, 0.015);
    double depth = top[2] - st->ms.goal[2];
    double travel = st->start[2] - st->ms.goal[2];
    double press = goal_term(depth, bd->v->success, travel - bd->v->success);
    finish(info, 2.0 * reach + 8.0 * press, depth <= bd->v->success);
}

/* ---- the task list ----------------------------------------------------------------- */

#define MB_DEFAULTS                                                                      \
    MANIP_TASK_DEFAULTS, .state_size = sizeof(mb_state), .data_size = sizeof(mb_data),   \
                         .setup = mb_setup, .reset = mb_reset

static const mb_variant v_hammer = {.scene = MB_HAMMER,
                                    .joint = "nail_slide",
                                    .site = "nail_head",
                                    .contact = "hammer_grip",
                                    .part = "hammer",
                                    .q_start = 0.0,
                                    .q_goal = 0.1,
                                    .lo = {-0.1, 0.4},
                                    .hi = {0.1, 0.5},
                                    .success = 0.01};
static const mb_variant v_faucet_close = {.scene = MB_FAUCET,
                                          .fixture = "faucet_base",
                                          .joint = "faucet_hinge",
                                          .site = "faucet_handle",
                                          .contact = "faucet_handle",
                                          .part = "faucet_lever",
                                          .q_start = -M_PI / 2,
                                          .q_goal = 0.0,
                                          .lo = {-0.1, 0.8},
                                          .hi = {0.1, 0.85},
                                          .success = 0.07,
                                          .hand_lo_z = -0.15};
static const mb_variant v_faucet_open = {.scene = MB_FAUCET,
                                         .fixture = "faucet_base",
                                         .joint = "faucet_hinge",
                                         .site = "faucet_handle",
                                         .contact = "faucet_handle",
                                         .part = "faucet_lever",
                                         .q_start = 0.0,
                                         .q_goal = -M_PI / 2,
                                         .lo = {-0.1, 0.8},
                                         .hi = {0.1, 0.85},
                                         .success = 0.07,
                                         .hand_lo_z = -0.15};
static const mb_variant v_handle_side = {.scene = MB_HANDLE,
                                         .fixture = "handle_housing",
                                         .joint = "handle_slide",
                                         .site = "handle_end",
                                         .contact = "handle_press",
                                         .part = "handle",
                                         .q_start = 0.0,
                                         .q_goal = -0.12,
                                         .lo = {-0.35, 0.65},
                                         .hi = {-0.25, 0.75},
                                         .yaw = M_PI / 2,
                                         .success = 0.02};
static const mb_variant v_handle_front = {.scene = MB_HANDLE,
                                          .fixture = "handle_housing",
                                          .joint = "handle_slide",
                                          .site = "handle_end",
                                          .contact = "handle_press",
                                          .part = "handle",
                                          .q_start = 0.0,
                                          .q_goal = -0.12,
                                          .lo = {-0.1, 0.8},
                                          .hi = {0.1, 0.9},
                                          .success = 0.02};
static const mb_variant v_window_close = {.scene = MB_WINDOW,
                                          .fixture = "window_frame",
                                          .joint = "window_slide",
                                          .site = "window_handle",
                                          .contact = "window_handle",
                                          .part = "window_sash",
                                          .q_start = 0.2,
                                          .q_goal = 0.0,
                                          .lo = {0.0, 0.75},
                                          .hi = {0.0, 0.9},
                                          .success = 0.05};
static const mb_variant v_window_open = {.scene = MB_WINDOW,
                                         .fixture = "window_frame",
                                         .joint = "window_slide",
                                         .site = "window_handle",
                                         .contact = "window_handle",
                                         .part = "window_sash",
                                         .q_start = 0.0,
                                         .q_goal = 0.2,
                                         .lo = {0.0, 0.75},
                                         .hi = {0.0, 0.9},
                                         .success = 0.05};
static const mb_variant v_peg = {.scene = MB_PEG,
                                 .fixture = "peg_socket",
                                 .joint = "peg_slide",
                                 .site = "peg_end",
                                 .contact = "peg_grip",
                                 .part = "peg",
                                 .q_start = 0.0,
                                 .q_goal = 0.15,
                                 .lo = {-0.25, 0.6},
                                 .hi = {-0.15, 0.8},
                                 .success = 0.07};
static const mb_variant v_drawer = {.scene = MB_DRAWER,
                                    .fixture = "drawer_cabinet",
                                    .joint = "drawer_slide",
                                    .site = "drawer_handle",
                                    .contact = "drawer_handle",
                                    .part = "drawer",
                                    .q_start = 0.0,
                                    .q_goal = -0.15,
                                    .lo = {-0.1, 0.9},
                                    .hi = {0.1, 0.9},
                                    .success = 0.03};
static const mb_variant v_button = {.scene = MB_BUTTON,
                                    .fixture = "button_box",
                                    .joint = "button_slide",
                                    .site = "button_top",
                                    .contact = "button_top",
                                    .part = "button",
                                    .q_start = 0.0,
                                    .q_goal = -0.06,
                                    .lo = {-0.1, 0.8},
                                    .hi = {0.1, 0.9},
                                    .success = 0.024};

const struct crl_task_def crl_task_hammer = {
    MB_DEFAULTS,
    .name = "hammer",
    .description = "grasp the hammer and drive the nail into its mount (CW10)",
    .model = "manip_hammer.xml",
    .reward = hammer_reward,
    .scripted = hammer_scripted,
    .group = "manipulation",
    .view = manip_view,
    .variant = &v_hammer};
const struct crl_task_def crl_task_faucet_close = {
    MB_DEFAULTS,
    .name = "faucet-close",
    .description = "turn the faucet lever from open to closed (CW10)",
    .model = "manip_faucet.xml",
    .reward = faucet_reward,
    .scripted = faucet_scripted,
    .group = "manipulation",
    .view = manip_view,
    .variant = &v_faucet_close};
const struct crl_task_def crl_task_handle_press_side = {
    MB_DEFAULTS,
    .name = "handle-press-side",
    .description = "press down a handle sticking out sideways from its housing (CW10)",
    .model = "manip_handle_press.xml",
    .reward = handle_reward,
    .scripted = press_scripted,
    .group = "manipulation",
    .view = manip_view,
    .variant = &v_handle_side};
const struct crl_task_def crl_task_window_close = {
    MB_DEFAULTS,
    .name = "window-close",
    .description = "slide the open window shut by its handle bar (CW10)",
    .model = "manip_window.xml",
    .reward = window_reward,
    .scripted = window_scripted,
    .group = "manipulation",
    .view = manip_view,
    .variant = &v_window_close};
const struct crl_task_def crl_task_peg_unplug_side = {
    MB_DEFAULTS,
    .name = "peg-unplug-side",
    .description = "grasp the peg and pull it out of its socket sideways (CW10)",
    .model = "manip_peg_unplug.xml",
    .reward = pull_reward,
    .scripted = pull_scripted,
    .group = "manipulation",
    .view = manip_view,
    .variant = &v_peg};
const struct crl_task_def crl_task_faucet_open = {
    MB_DEFAULTS,
    .name = "faucet-open",
    .description = "turn the faucet lever from closed to open (pre-training)",
    .model = "manip_faucet.xml",
    .reward = faucet_reward,
    .scripted = faucet_scripted,
    .group = "pretrain",
    .view = manip_view,
    .variant = &v_faucet_open};
const struct crl_task_def crl_task_window_open = {
    MB_DEFAULTS,
    .name = "window-open",
    .description = "slide the closed window open by its handle bar (pre-training)",
    .model = "manip_window.xml",
    .reward = window_reward,
    .scripted = window_scripted,
    .group = "pretrain",
    .view = manip_view,
    .variant = &v_window_open};
const struct crl_task_def crl_task_handle_press = {
    MB_DEFAULTS,
    .name = "handle-press",
    .description = "press down a handle facing the robot (pre-training)",
    .model = "manip_handle_press.xml",
    .reward = handle_reward,
    .scripted = press_scripted,
    .group = "pretrain",
    .view = manip_view,
    .variant = &v_handle_front};
const struct crl_task_def crl_task_drawer_open = {
    MB_DEFAULTS,
    .name = "drawer-open",
    .description = "grasp the drawer handle and pull the drawer open (pre-training)",
    .model = "manip_drawer.xml",
    .reward = pull_reward,
    .scripted = pull_scripted,
    .group = "pretrain",
    .view = manip_view,
    .variant = &v_drawer};
const struct crl_task_def crl_task_button_press_topdown = {
    MB_DEFAULTS,
    .name = "button-press-topdown",
    .description = "press a button down from above (pre-training)",
    .model = "manip_button.xml",
    .reward = button_reward,
    .scripted = press_scripted,
    .group = "pretrain",
    .view = manip_view,
    .variant = &v_button};

const struct crl_task_def *const crl_tasks_manip_b[] = {&crl_task_hammer,
                                                        &crl_task_faucet_close,
                                                        &crl_task_handle_press_side,
                                                        &crl_task_window_close,
                                                        &crl_task_peg_unplug_side,
                                                        &crl_task_faucet_open,
                                                        &crl_task_window_open,
                                                        &crl_task_handle_press,
                                                        &crl_task_drawer_open,
                                                        &crl_task_button_press_topdown,
                                                        NULL};
