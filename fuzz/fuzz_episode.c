/* libFuzzer target of the episode blob decoder (fuzz/README.md): the
 * `data` of a run store's episodes row and a dataset's replay record, as
 * crl replay, crl dataset --verify and the training readers decode them.
 *
 * Each input goes through crl_episode_decode; a decoded episode is checked
 * against the pendulum task (crl_episode_check) and, when it fits, replayed
 * (crl_episode_verify) for at most a short episode, so that decoded values
 * reach the simulator too. */
#include <stdlib.h>

#include "crl/env.h"
#include "crl/episode.h"

static crl_env_spec *g_spec;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n) {
    crl_err err = {0};
    if (!g_spec && crl_env_spec_create("pendulum", &g_spec, &err) != CRL_OK) abort();
    crl_episode_data ep = {0};
    if (crl_episode_decode(data, n, &ep, &err) == CRL_OK) {
        crl_episode_result res;
        if (ep.length <= 256 && crl_episode_check(g_spec, &ep, &err) == CRL_OK)
            crl_episode_verify(g_spec, &ep, &res, &err);
    }
    crl_episode_data_free(&ep);
    return 0;
}
