/* crl envs: pendulum swing-up (envs/models/pendulum.xml).
 *
 * A point mass m = 1 kg at the tip of a massless pole l = 1 m on a frictionless
 * hinge, g = 10, motor torque u = 2 a N m for action a in [-1, 1]. Angle 0 is
 * upright, so theta'' = (g/l) sin(theta) + u / (m l^2). The torque (2) is below
 * m g l (10): swinging up takes several swings.
 *
 * obs    [cos theta, sin theta, theta_dot] after the step
 * reward -(wrap(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2), from the state the
 *        action led to (the post-step state) and the torque u applied
 * success |wrap(theta)| < 0.3 and |theta_dot| < 1 after the step
 * reset  theta ~ U[-pi, pi], theta_dot ~ U[-1, 1]; 200 steps of 0.05 s. */
#include "task.h"

#include <math.h>

#define PEND_SUCCESS_ANGLE 0.3
#define PEND_SUCCESS_SPEED 1.0

static void pend_reset(crl_env *e, crl_rng *rng) {
    mjData *d = e->d;
    d->qpos[0] = crl_rng_range(rng, -M_PI, M_PI);
    d->qvel[0] = crl_rng_range(rng, -1.0, 1.0);
}

static void pend_observe(const crl_env *e, float *obs) {
    const mjData *d = e->d;
    obs[0] = (float)cos(d->qpos[0]);
    obs[1] = (float)sin(d->qpos[0]);
    obs[2] = (float)d->qvel[0];
}

static void pend_reward(crl_env *e, const float *act, crl_step_info *info) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    double th = crl_wrap_angle(d->qpos[0]);
    double thdot = d->qvel[0];
    double u = m->actuator_gear[0] * d->ctrl[0]; /* N m */
    info->reward = (float)-(th * th + 0.1 * thdot * thdot + 0.001 * u * u);
    info->success = fabs(th) < PEND_SUCCESS_ANGLE && fabs(thdot) < PEND_SUCCESS_SPEED;
}

static int pend_setup(crl_env_spec *s, crl_err *err) {
    const mjModel *m = s->m;
    if (m->nq != 1 || m->nv != 1 || m->nu != 1)
        return crl_errf(err, CRL_EMUJOCO,
                        "pendulum: model must have one hinge and one motor");
    return CRL_OK;
}

const struct crl_task_def crl_task_pendulum = {
    .name = "pendulum",
    .description = "swing up and balance a pole with a weak torque motor (obs 3, act 1)",
    .model = "pendulum.xml",
    .obs_dim = 3,
    .act_dim = 1,
    .max_steps = 200,
    .frame_skip = 5,
    .setup = pend_setup,
    .reset = pend_reset,
    .observe = pend_observe,
    .reward = pend_reward,
};
