/* crl_pyref: reference numbers for the Python package's tests
 * (tests/python), computed through the C API directly, not through the
 * package.
 *
 *   crl_pyref env TASK SEED ACTIONS OUT
 *       TASK is a task name, or an MJCF file (ending in .xml, forward reward
 *       with default options). crl_env_reset(SEED), then one crl_env_step per
 *       row of ACTIONS (float32, act_dim per row); an episode that ends is
 *       reset with crl_vecenv_episode_seed(SEED, 0, k) for k = 1, 2, ...
 *       OUT (float32): the first observation, then per step the observation,
 *       reward, terminal, truncated, success (0/1), and after an episode end
 *       the next episode's first observation.
 *   crl_pyref policy FILE TASK B MODE SEED OBS OUT
 *       crl_policy_load, crl_policy_set_batch(B), then the rows of OBS
 *       (float32, obs_dim per row) B at a time through crl_policy_act_batch
 *       (B = 1: crl_policy_act), MODE 0 deterministic or 1 sample with one
 *       crl_rng seeded with SEED. OUT: the actions (float32). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/env.h"
#include "crl/policy.h"
#include "crl/vecenv.h"

static float *read_f32(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)bytes + sizeof(float));
    if (x && fread(x, 1, (size_t)bytes, f) != (size_t)bytes) {
        free(x);
        x = NULL;
    }
    fclose(f);
    *n = bytes / (long)sizeof(float);
    return x;
}

static int run_env(char **argv) {
    const char *task = argv[0], *out_path = argv[3];
    const uint64_t seed = strtoull(argv[1], NULL, 10);
    crl_err err = {0};
    crl_env_spec *s = NULL;
    size_t len = strlen(task);
    int rc = len > 4 && !strcmp(task + len - 4, ".xml")
                 ? crl_env_spec_create_xml(task, NULL, &s, &err)
                 : crl_env_spec_create(task, &s, &err);
    if (rc) {
        fprintf(stderr, "crl_pyref: %s\n", err.msg);
        return 1;
    }
    crl_env *e = NULL;
    if (crl_env_create(s, &e, &err)) {
        fprintf(stderr, "crl_pyref: %s\n", err.msg);
        return 1;
    }
    const int od = crl_env_obs_dim(s), ad = crl_env_act_dim(s);
    long n = 0;
    float *act = read_f32(argv[2], &n);
    FILE *out = fopen(out_path, "wb");
    if (!act || !out || n % ad) {
        fprintf(stderr, "crl_pyref: cannot read %s or write %s\n", argv[2], out_path);
        return 1;
    }
    float *obs = malloc(sizeof(float) * (size_t)od);
    crl_env_reset(e, seed, obs);
    fwrite(obs, sizeof(float), (size_t)od, out);
    int64_t episode = 1;
    for (long t = 0; t < n / ad; t++) {
        crl_step_info info;
        crl_env_step(e, act + t * ad, obs, &info);
        float row[4] = {info.reward, (float)(info.terminal != 0),
                        (float)(info.truncated != 0), (float)(info.success != 0)};
        fwrite(obs, sizeof(float), (size_t)od, out);
        fwrite(row, sizeof(float), 4, out);
        if (info.terminal || info.truncated) {
            crl_env_reset(e, crl_vecenv_episode_seed(seed, 0, episode++), obs);
            fwrite(obs, sizeof(float), (size_t)od, out);
        }
    }
    fclose(out);
    free(obs);
    free(act);
    crl_env_free(e);
    crl_env_spec_free(s);
    return 0;
}

static int run_policy(char **argv) {
    char msg[512];
    crl_policy *p = NULL;
    if (crl_policy_load(argv[0], &p, msg, sizeof msg)) {
        fprintf(stderr, "crl_pyref: %s\n", msg);
        return 1;
    }
    const int task = atoi(argv[1]), B = atoi(argv[2]);
    const crl_policy_mode mode =
        atoi(argv[3]) ? CRL_POLICY_SAMPLE : CRL_POLICY_DETERMINISTIC;
    crl_rng rng;
    crl_rng_seed(&rng, strtoull(argv[4], NULL, 10));
    const int od = crl_policy_obs_dim(p), ad = crl_policy_act_dim(p);
    long n = 0;
    float *obs = read_f32(argv[5], &n);
    FILE *out = fopen(argv[6], "wb");
    if (!obs || !out || B < 1 || n % ((long)od * B) || crl_policy_set_batch(p, B)) {
        fprintf(stderr, "crl_pyref: bad input\n");
        return 1;
    }
    const long rows = n / od;
    float *act = malloc(sizeof(float) * (size_t)(B * ad));
    for (long r = 0; r < rows; r += B) {
        int rc = B == 1 ? crl_policy_act(p, task, obs + r * od, act, mode, &rng)
                        : crl_policy_act_batch(p, task, B, obs + r * od, act, mode, &rng);
        if (rc) {
            fprintf(stderr, "crl_pyref: %s\n", crl_policy_error(p));
            return 1;
        }
        fwrite(act, sizeof(float), (size_t)(B * ad), out);
    }
    fclose(out);
    free(act);
    free(obs);
    crl_policy_free(p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "env")) return run_env(argv + 2);
    if (argc == 9 && !strcmp(argv[1], "policy")) return run_policy(argv + 2);
    fprintf(stderr, "usage: crl_pyref env TASK SEED ACTIONS OUT\n"
                    "       crl_pyref policy FILE TASK B MODE SEED OBS OUT\n");
    return 2;
}
