/* crl envs: the ant body (envs/models/ant.xml): model check, initial-state
 * draw and observation. The task definitions, the reward (forward velocity
 * + 1 while healthy - 0.5 |a|^2, terminal when the torso height leaves
 * [0.2, 1.0]) and the modifiers live in envs/locomotion.c.
 *
 * qpos = [x, y, z, qw, qx, qy, qz, 8 leg joints] (15),
 * qvel = [linear 3, angular 3, 8 leg joints] (14).
 * obs    qpos[2..14] (13: the root x and y are left out) + qvel (14) = 27
 * reset  position and leg joints = qpos0 + U(-0.1, 0.1), orientation
 *        upright (the quaternion is left at qpos0), qvel = 0.1 N(0, 1). */
#include "task.h"

/* Used by envs/locomotion.c. */
int crl_ant_check(const mjModel *m, crl_err *err);
void crl_ant_reset(crl_env *e, crl_rng *rng);
void crl_ant_observe(const crl_env *e, float *obs);

int crl_ant_check(const mjModel *m, crl_err *err) {
    if (m->nq != 15 || m->nv != 14)
        return crl_errf(err, CRL_EMUJOCO, "ant: model must have nq 15, nv 14, has %d, %d",
                        m->nq, m->nv);
    if (m->jnt_type[0] != mjJNT_FREE)
        return crl_errf(err, CRL_EMUJOCO, "ant: first joint must be the free root");
    return CRL_OK;
}

void crl_ant_reset(crl_env *e, crl_rng *rng) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    for (int i = 0; i < m->nq; i++) {
        double noise = crl_rng_range(rng, -0.1, 0.1);
        /* Noise on a quaternion would leave it unnormalised; the draw is
         * still made so that every coordinate consumes the same stream. */
        d->qpos[i] = m->qpos0[i] + (i >= 3 && i < 7 ? 0.0 : noise);
    }
    for (int i = 0; i < m->nv; i++) d->qvel[i] = 0.1 * crl_rng_normal(rng);
}

void crl_ant_observe(const crl_env *e, float *obs) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    int k = 0;
    for (int i = 2; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
    for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
}
