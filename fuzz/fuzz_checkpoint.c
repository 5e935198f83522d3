/* libFuzzer target of the checkpoint readers (fuzz/README.md): what a run's
 * latest checkpoint blob (crl_store_checkpoint_latest) is fed to by eval,
 * export, --resume and the L2M base.
 *
 * The input is read as a single-env runner checkpoint
 * (crl_checkpoint_learner), as a continual-run checkpoint
 * (crl_continual_checkpoint_view, crl_continual_checkpoint_learner,
 * crl_continual_task_actor) and as a bare learner blob; every learner part
 * found goes through crl_sac_blob_info, crl_sac_load into learners of the
 * seed corpus's shapes (pendulum 3/1, one task; scenario t1 39/4, three
 * tasks; both 1 x 8) and crl_l2m_base_parse. */
#include <stdint.h>
#include <stdlib.h>

#include "crl/continual.h"
#include "crl/methods.h"
#include "crl/runner.h"
#include "crl/sac.h"

static crl_sac *g_sac[2];

static crl_sac *make(int obs, int act, int tasks) {
    crl_sac_config c;
    crl_sac_config_default(&c, obs, act, tasks);
    c.hidden = 8;
    c.layers = 1;
    c.batch = 8;
    c.buffer_size = 64;
    c.threads = 1;
    crl_sac *s = NULL;
    crl_err err = {0};
    if (crl_sac_create(&c, 1, &s, &err) != CRL_OK) abort();
    return s;
}

static void learner(const void *b, size_t n) {
    crl_err err = {0};
    crl_sac_blob info;
    if (crl_sac_blob_info(b, n, &info, &err) != CRL_OK) return;
    for (int i = 0; i < 2; i++) crl_sac_load(g_sac[i], b, n, &err);
    crl_l2m_base base = {0};
    if (crl_l2m_base_parse(b, n, 0, &base, &err) == CRL_OK) crl_l2m_base_free(&base);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n) {
    if (!g_sac[0]) {
        g_sac[0] = make(3, 1, 1);
        g_sac[1] = make(39, 4, 3);
    }
    crl_err err = {0};
    const void *sb = NULL;
    size_t sn = 0;
    int64_t step = 0;
    if (crl_checkpoint_learner(data, n, &sb, &sn, &step, &err) == CRL_OK) learner(sb, sn);
    crl_continual_view v;
    if (crl_continual_checkpoint_view(data, n, &v, &err) == CRL_OK) {
        learner(v.learner, v.learner_n);
        float actor[4096];
        for (int i = 0; i < v.n_task_actors && i < 4; i++)
            for (size_t na = 1; na <= 4096; na *= 4)
                crl_continual_task_actor(&v, i, na, actor, &err);
    }
    if (crl_continual_checkpoint_learner(data, n, &sb, &sn, &err) == CRL_OK)
        learner(sb, sn);
    learner(data, n);
    return 0;
}
