/* PackNet's per-task view of an actor, written once for the trainer
 * (agents/method_packnet.c: crl_packnet_init, crl_packnet_load and
 * crl_packnet_view, include/crl/methods.h) and the policy runtime (the .crlp
 * loader, embed/policy.c), which may not link agents/.
 *
 * An owner array holds one int16 per parameter of a crl_mlp's flat buffer:
 * the trunk kernels (every hidden Linear layer's W, in the crl_mlp layout)
 * hold a task or CRL_PKVIEW_FREE, everything else CRL_PKVIEW_SHARED. These
 * are the values of crl_packnet.owner, its checkpoint and the .crlp's PKNT
 * section. Internal to crl (nn/, agents/, embed/). */
#ifndef CRL_NN_PACKNET_H
#define CRL_NN_PACKNET_H

#include <stdint.h>

#include "crl/nn.h"

#define CRL_PKVIEW_FREE   (-1) /* = CRL_PACKNET_FREE */
#define CRL_PKVIEW_SHARED (-2) /* = CRL_PACKNET_SHARED */

/* owner (m->n_params) = CRL_PKVIEW_FREE on every trunk kernel weight,
 * CRL_PKVIEW_SHARED elsewhere: the owners before the first task. */
void crl_pkview_place(const crl_mlp *m, int16_t *owner);
/* 1 if owner is possible at a parameter placed as kernel (1: a trunk kernel
 * weight, 0: anything else) while cur_task is the current task: a kernel
 * weight is free or owned by a task that has started, the rest shared. */
int crl_pkview_owner_ok(int kernel, int owner, int cur_task);
/* out (m->n_params) = params with every trunk kernel weight that task does
 * not use set to 0: used are the weights owned by a task <= task, and the
 * free ones when task >= cur_task (they are the current task's until its
 * prune). out may alias params. */
void crl_pkview(const crl_mlp *m, const int16_t *owner, int cur_task, const float *params,
                int task, float *out);

#endif
