/* N instances of one task stepped in one call, with auto-reset, on one or
 * two lanes (include/crl/vecenv.h). */
#include "crl/vecenv.h"

#include <stdlib.h>
#include <string.h>

#include "core/lanes.h"

struct crl_vecenv {
    const crl_env_spec *spec;
    int n, obs_dim, act_dim;
    crl_env **envs;
    int64_t *episodes;    /* episodes started per env since the last reset */
    uint64_t *seeds;      /* per env: the seed its later episodes derive from */
    crl_step_info *info;  /* per env: its last step */
    unsigned char *ended; /* per env: episode over, waiting (auto-reset off) */
    int autoreset;
    crl_lanes *lanes; /* NULL: one lane, no thread */
    /* The arguments of the step in flight, read by both lanes. */
    const float *act;
    float *obs, *reward, *final_obs;
    unsigned char *terminated, *truncated, *success;
};

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t crl_vecenv_episode_seed(uint64_t seed, int i, int64_t k) {
    if (i == 0 && k == 0) return seed;
    uint64_t z = mix64(seed + 0x9e3779b97f4a7c15ull * ((uint64_t)(uint32_t)i + 1));
    return mix64(z ^ ((uint64_t)k * 0xd1b54a32d192ed03ull + 0x8cb92ba72f3d8dd7ull));
}

int crl_vecenv_create(const crl_env_spec *spec, int n, int threads, crl_vecenv **out,
                      crl_err *err) {
    *out = NULL;
    if (!spec) return crl_errf(err, CRL_EINVAL, "vecenv: no task spec");
    if (n < 1 || n > CRL_VECENV_MAX)
        return crl_errf(err, CRL_EINVAL, "vecenv: %d envs (must be 1 .. %d)", n,
                        CRL_VECENV_MAX);
    if (threads != 1 && threads != 2)
        return crl_errf(err, CRL_EINVAL, "vecenv: %d threads (must be 1 or 2)", threads);
    crl_vecenv *v = calloc(1, sizeof *v);
    if (!v) return crl_errf(err, CRL_ENOMEM, "vecenv: out of memory");
    v->spec = spec;
    v->n = n;
    v->obs_dim = crl_env_obs_dim(spec);
    v->act_dim = crl_env_act_dim(spec);
    v->envs = calloc((size_t)n, sizeof *v->envs);
    v->episodes = calloc((size_t)n, sizeof *v->episodes);
    v->seeds = calloc((size_t)n, sizeof *v->seeds);
    v->info = calloc((size_t)n, sizeof *v->info);
    v->ended = calloc((size_t)n, sizeof *v->ended);
    v->autoreset = 1;
    int rc = CRL_OK;
    if (!v->envs || !v->episodes || !v->seeds || !v->info || !v->ended) {
        rc = crl_errf(err, CRL_ENOMEM, "vecenv: out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if ((rc = crl_env_create(spec, &v->envs[i], err))) goto fail;
    /* Two lanes only pay off with an env for each. */
    if (threads == 2 && n >= 2 && (rc = crl_lanes_create(2, &v->lanes, err))) goto fail;
    crl_vecenv_reset(v, 0, NULL);
    *out = v;
    return CRL_OK;
fail:
    crl_vecenv_free(v);
    return rc;
}

void crl_vecenv_free(crl_vecenv *v) {
    if (!v) return;
    crl_lanes_free(v->lanes);
    if (v->envs)
        for (int i = 0; i < v->n; i++) crl_env_free(v->envs[i]);
    free(v->envs);
    free(v->episodes);
    free(v->seeds);
    free(v->info);
    free(v->ended);
    free(v);
}

int crl_vecenv_size(const crl_vecenv *v) {
    return v->n;
}
int crl_vecenv_threads(const crl_vecenv *v) {
    return v->lanes ? crl_lanes_count(v->lanes) : 1;
}
const crl_env_spec *crl_vecenv_spec(const crl_vecenv *v) {
    return v->spec;
}
crl_env *crl_vecenv_env(crl_vecenv *v, int i) {
    return i >= 0 && i < v->n ? v->envs[i] : NULL;
}
int64_t crl_vecenv_episodes(const crl_vecenv *v, int i) {
    return i >= 0 && i < v->n ? v->episodes[i] : -1;
}
int crl_vecenv_episode_steps(const crl_vecenv *v, int i) {
    return i >= 0 && i < v->n ? crl_env_steps_taken(v->envs[i]) : -1;
}

int crl_vecenv_running(const crl_vecenv *v) {
    int r = 0;
    for (int i = 0; i < v->n; i++) r += !v->ended[i];
    return r;
}
int crl_vecenv_ended(const crl_vecenv *v, int i) {
    return i >= 0 && i < v->n ? v->ended[i] : 0;
}
const crl_step_info *crl_vecenv_last_info(const crl_vecenv *v, int i) {
    return i >= 0 && i < v->n ? &v->info[i] : NULL;
}
void crl_vecenv_end(crl_vecenv *v, int i) {
    if (i >= 0 && i < v->n) v->ended[i] = 1;
}
void crl_vecenv_set_autoreset(crl_vecenv *v, int on) {
    v->autoreset = on ? 1 : 0;
}

/* Env i starts episode 0 with seed; its later episodes derive from base. */
static void reset_one(crl_vecenv *v, int i, uint64_t seed, uint64_t base, float *obs) {
    crl_env_reset(v->envs[i], seed, obs ? obs + (size_t)i * v->obs_dim : NULL);
    v->seeds[i] = base;
    v->episodes[i] = 1;
    v->ended[i] = 0;
    memset(&v->info[i], 0, sizeof v->info[i]);
}

void crl_vecenv_reset(crl_vecenv *v, uint64_t seed, float *obs) {
    for (int i = 0; i < v->n; i++)
        reset_one(v, i, crl_vecenv_episode_seed(seed, i, 0), seed, obs);
}

void crl_vecenv_reset_each(crl_vecenv *v, const uint64_t *seeds, float *obs) {
    for (int i = 0; i < v->n; i++) reset_one(v, i, seeds[i], seeds[i], obs);
}

/* Step envs [lo, hi) with the arguments stored in v. */
static void step_range(crl_vecenv *v, int lo, int hi) {
    const size_t od = (size_t)v->obs_dim, ad = (size_t)v->act_dim;
    for (int i = lo; i < hi; i++) {
        if (v->ended[i]) continue;
        float *o = v->obs + (size_t)i * od;
        crl_step_info info;
        crl_env_step(v->envs[i], v->act + (size_t)i * ad, o, &info);
        v->info[i] = info;
        if (v->final_obs) memcpy(v->final_obs + (size_t)i * od, o, od * sizeof *o);
        if (v->reward) v->reward[i] = info.reward;
        if (v->terminated) v->terminated[i] = info.terminal ? 1 : 0;
        if (v->truncated) v->truncated[i] = info.truncated ? 1 : 0;
        if (v->success) v->success[i] = info.success ? 1 : 0;
        if (!(info.terminal || info.truncated)) continue;
        if (!v->autoreset) {
            v->ended[i] = 1;
            continue;
        }
        crl_env_reset(v->envs[i], crl_vecenv_episode_seed(v->seeds[i], i, v->episodes[i]),
                      o);
        v->episodes[i]++;
    }
}

static void lane_fn(void *ctx, int lane) {
    crl_vecenv *v = ctx;
    const int half = v->n / 2;
    if (lane == 0)
        step_range(v, 0, half);
    else
        step_range(v, half, v->n);
}

void crl_vecenv_step(crl_vecenv *v, const float *act, float *obs, float *reward,
                     unsigned char *terminated, unsigned char *truncated,
                     unsigned char *success, float *final_obs) {
    v->act = act;
    v->obs = obs;
    v->reward = reward;
    v->terminated = terminated;
    v->truncated = truncated;
    v->success = success;
    v->final_obs = final_obs;
    if (v->lanes)
        crl_lanes_run(v->lanes, lane_fn, v);
    else
        step_range(v, 0, v->n);
}
