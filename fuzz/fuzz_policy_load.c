/* libFuzzer target of the policy loader (fuzz/README.md).
 *
 * The input is loaded twice: as it is (exercising the framing and the
 * checksum), and with its file size field and CRC-32 trailer made right, so
 * that mutations get past those checks and reach the section parsers. A policy that loads
 * is also used: one deterministic action of every task, and a clone. */
#include <stdlib.h>
#include <string.h>

#include "crl/policy.h"
#include "embed/format.h"

static void exercise(const unsigned char *data, size_t n) {
    char err[256];
    crl_policy *p = NULL;
    if (crl_policy_load_mem(data, n, &p, err, sizeof err) != CRL_OK) return;
    const int O = crl_policy_obs_dim(p), A = crl_policy_act_dim(p);
    float *obs = calloc((size_t)O, sizeof *obs), *act = calloc((size_t)A, sizeof *act);
    crl_policy *q = NULL;
    if (obs && act && crl_policy_clone(p, &q, err, sizeof err) == CRL_OK)
        for (int t = 0; t < crl_policy_num_tasks(q); t++)
            crl_policy_act(q, t, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
    crl_policy_free(q);
    free(obs);
    free(act);
    crl_policy_free(p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n) {
    exercise(data, n);
    if (n >= POL_MIN_SIZE) {
        unsigned char *fixed = malloc(n);
        if (!fixed) return 0;
        memcpy(fixed, data, n);
        pol_put_u64(fixed + 16, (uint64_t)n); /* the header's file size */
        pol_put_u32(fixed + n - POL_TRAILER, crl_pf_crc32(0, fixed, n - POL_TRAILER));
        exercise(fixed, n);
        free(fixed);
    }
    return 0;
}
