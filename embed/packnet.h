/* crl embed, private: PackNet's per-task views for the policy runtime.
 *
 * A .crlp of a packnet run stores the owner of every actor parameter (the
 * trainer's crl_packnet.owner, include/crl/methods.h); the loader turns it
 * into one parameter vector per task. The rule is crl_packnet_view's, kept
 * here so that libcrl_policy links no trainer code (agents/): a weight of a
 * trunk kernel is used by task i iff its owner is a task <= i, or it is free
 * and i is the current task or later; everything else is always used. The
 * export tests (test_policy, test_compat) hold the two equal bit for bit. */
#ifndef CRL_EMBED_PACKNET_H
#define CRL_EMBED_PACKNET_H

#include <stdint.h>

#include "crl/nn.h"

/* The owner values of the file format (equal to CRL_PACKNET_FREE and
 * CRL_PACKNET_SHARED). */
#define POL_PACKNET_FREE   (-1)
#define POL_PACKNET_SHARED (-2)

typedef struct {
    const crl_mlp *mlp; /* borrowed: must outlive this */
    int task;           /* the current task of the run, -1 before the first */
    int16_t *owner;     /* mlp->n_params */
} pol_packnet;

/* owner = POL_PACKNET_FREE on every trunk kernel weight (every hidden
 * Linear layer's W), POL_PACKNET_SHARED elsewhere: what the loader checks a
 * file's owners against. CRL_ENOMEM. */
int pol_packnet_init(pol_packnet *p, const crl_mlp *mlp);
void pol_packnet_free(pol_packnet *p);
/* out (n_params) = params with every trunk kernel weight that task does not
 * use set to 0. */
void pol_packnet_view(const pol_packnet *p, const float *params, int task, float *out);

#endif
