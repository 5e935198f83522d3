/* crl envs: halfcheetah, the planar runner (envs/models/halfcheetah.xml).
 *
 * qpos = [rootx, rootz, rooty, bthigh, bshin, bfoot, fthigh, fshin, ffoot],
 * qvel the same 9 velocities.
 * obs    qpos[1..8] (8) + qvel (9) = 17
 * reward (rootx_after - rootx_before) / (frame_skip * timestep) - 0.1 |a|^2
 * reset  qpos = qpos0 + U(-0.1, 0.1), qvel = 0.1 N(0, 1); 1000 steps, never
 *        terminal; success is always 0. */
#include "task.h"

typedef struct {
    double x_before; /* rootx when the current step began */
} cheetah_state;

static int cheetah_setup(crl_env_spec *s, crl_err *err) {
    const mjModel *m = s->m;
    if (m->nq != 9 || m->nv != 9)
        return crl_errf(err, CRL_EMUJOCO, "halfcheetah: model must have 9 dofs, has %d",
                        m->nv);
    if (m->jnt_type[0] != mjJNT_SLIDE)
        return crl_errf(err, CRL_EMUJOCO,
                        "halfcheetah: first joint must be the rootx slide");
    return CRL_OK;
}

static void cheetah_reset(crl_env *e, crl_rng *rng) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    for (int i = 0; i < m->nq; i++)
        d->qpos[i] = m->qpos0[i] + crl_rng_range(rng, -0.1, 0.1);
    for (int i = 0; i < m->nv; i++) d->qvel[i] = 0.1 * crl_rng_normal(rng);
}

static void cheetah_apply(crl_env *e, const float *act) {
    cheetah_state *st = e->task_state;
    st->x_before = e->d->qpos[0];
    crl_task_map_actions(e, act);
}

static void cheetah_observe(const crl_env *e, float *obs) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    int k = 0;
    for (int i = 1; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
    for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
}

static void cheetah_reward(crl_env *e, const float *act, crl_step_info *info) {
    const crl_env_spec *s = e->spec;
    const cheetah_state *st = e->task_state;
    double dt = s->m->opt.timestep * s->frame_skip;
    double vel = (e->d->qpos[0] - st->x_before) / dt;
    double ctrl_cost = 0.0;
    for (int i = 0; i < s->act_dim; i++) ctrl_cost += (double)act[i] * act[i];
    info->reward = (float)(vel - 0.1 * ctrl_cost);
    info->success = 0;
}

const struct crl_task_def crl_task_halfcheetah = {
    .name = "halfcheetah",
    .description = "planar half-cheetah running forward (obs 17, act 6)",
    .model = "halfcheetah.xml",
    .obs_dim = 17,
    .act_dim = 6,
    .max_steps = 1000,
    .frame_skip = 5,
    .state_size = sizeof(cheetah_state),
    .setup = cheetah_setup,
    .reset = cheetah_reset,
    .apply_action = cheetah_apply,
    .observe = cheetah_observe,
    .reward = cheetah_reward,
};
