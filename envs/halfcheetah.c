/* crl envs: the halfcheetah body (envs/models/halfcheetah.xml): model check,
 * initial-state draw and observation. The task definitions (normal and the
 * modifier variants), the reward and the modifiers live in envs/locomotion.c.
 *
 * qpos = [rootx, rootz, rooty, bthigh, bshin, bfoot, fthigh, fshin, ffoot],
 * qvel the same 9 velocities.
 * obs    qpos[1..8] (8) + qvel (9) = 17
 * reset  qpos = qpos0 + U(-0.1, 0.1), qvel = 0.1 N(0, 1). */
#include "task.h"

/* Used by envs/locomotion.c. */
int crl_halfcheetah_check(const mjModel *m, crl_err *err);
void crl_halfcheetah_reset(crl_env *e, crl_rng *rng);
void crl_halfcheetah_observe(const crl_env *e, float *obs);

int crl_halfcheetah_check(const mjModel *m, crl_err *err) {
    if (m->nq != 9 || m->nv != 9)
        return crl_errf(err, CRL_EMUJOCO, "halfcheetah: model must have 9 dofs, has %d",
                        m->nv);
    if (m->jnt_type[0] != mjJNT_SLIDE)
        return crl_errf(err, CRL_EMUJOCO,
                        "halfcheetah: first joint must be the rootx slide");
    return CRL_OK;
}

void crl_halfcheetah_reset(crl_env *e, crl_rng *rng) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    for (int i = 0; i < m->nq; i++)
        d->qpos[i] = m->qpos0[i] + crl_rng_range(rng, -0.1, 0.1);
    for (int i = 0; i < m->nv; i++) d->qvel[i] = 0.1 * crl_rng_normal(rng);
}

void crl_halfcheetah_observe(const crl_env *e, float *obs) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    int k = 0;
    for (int i = 1; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
    for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
}
