/* crl train --dry-run: the resolved configuration and the run's cost on
 * this machine, from a 2-second calibration, with nothing written
 * (docs/experiments.md, "What a run costs"). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "crl/blas.h"
#include "crl/continual.h"
#include "crl/env.h"
#include "crl/methods.h"
#include "crl/replay.h"
#include "crl/base.h"
#include "crl/run.h"
#include "crl/runner.h"
#include "crl/sac.h"
#include "crl/scenario.h"

typedef struct {
    double env_per_s; /* env steps/s, random actions */
    double act_per_s; /* one-observation actions/s (acting while training) */
    double upd_per_s; /* SAC (or behaviour-cloning) updates/s */
} rates;

/* Step env with random actions for about `secs`. */
static double env_rate(const crl_env_spec *spec, double secs) {
    crl_env *e = NULL;
    if (crl_env_create(spec, &e, NULL)) return NAN;
    float obs[1024], act[64];
    const int A = crl_env_act_dim(spec);
    if (crl_env_obs_dim(spec) > 1024 || A > 64) {
        crl_env_free(e);
        return NAN;
    }
    crl_rng rng;
    crl_rng_seed(&rng, 1);
    crl_env_reset(e, 1, obs);
    long n = 0;
    const double t0 = crl_now();
    double t = t0;
    while (t - t0 < secs) {
        for (int k = 0; k < 50; k++, n++) {
            for (int j = 0; j < A; j++) act[j] = (float)crl_rng_range(&rng, -1, 1);
            crl_step_info info;
            crl_env_step(e, act, obs, &info);
            if (info.terminal || info.truncated) crl_env_reset(e, (uint64_t)n, obs);
        }
        t = crl_now();
    }
    crl_env_free(e);
    return (double)n / (t - t0);
}

/* Updates and single actions of a learner of configuration c (obs/act/
 * n_tasks set) on random rows. */
static int learner_rates(const crl_sac_config *c, int offline, int bc_loss, rates *out,
                         crl_err *err) {
    crl_sac *s = NULL;
    crl_batch b = {0};
    int rc = crl_sac_create(c, 1, &s, err);
    if (!rc) rc = crl_batch_alloc(&b, c->batch, c->obs_dim, c->act_dim, err);
    if (rc) {
        crl_sac_free(s);
        return rc;
    }
    crl_rng r;
    crl_rng_seed(&r, 3);
    for (int i = 0; i < c->batch * c->obs_dim; i++) {
        b.obs[i] = (float)crl_rng_normal(&r);
        b.obs2[i] = (float)crl_rng_normal(&r);
    }
    for (int i = 0; i < c->batch * c->act_dim; i++)
        b.act[i] = (float)crl_rng_range(&r, -0.9, 0.9);
    for (int i = 0; i < c->batch; i++)
        b.rew[i] = (float)crl_rng_normal(&r), b.task[i] = 0;
    b.B = c->batch;
    /* Warm up first (the first updates touch fresh pages and start the
     * second lane): they ran 2-3x slower and made the estimate too long. */
    for (double w0 = crl_now(); !rc && crl_now() - w0 < 0.3;)
        rc = offline ? crl_sac_bc_update(s, &b, bc_loss, NULL, err)
                     : crl_sac_update(s, &b, NULL, err);
    long n = 0;
    double t0 = crl_now(), t = t0;
    while (!rc && t - t0 < 1.0) {
        rc = offline ? crl_sac_bc_update(s, &b, bc_loss, NULL, err)
                     : crl_sac_update(s, &b, NULL, err);
        n++;
        t = crl_now();
    }
    out->upd_per_s = (double)n / (t - t0);
    float act[64];
    n = 0;
    t0 = t = crl_now();
    while (!rc && t - t0 < 0.2 && c->act_dim <= 64) {
        for (int k = 0; k < 20; k++, n++) crl_sac_act(s, 1, b.obs, 0, 0, NULL, act);
        t = crl_now();
    }
    out->act_per_s = (double)n / (t - t0);
    crl_batch_free(&b);
    crl_sac_free(s);
    return rc;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!isfinite(s))
        snprintf(buf, n, "unknown");
    else if (s < 120)
        snprintf(buf, n, "%.0f s", s);
    else if (s < 7200)
        snprintf(buf, n, "%.0f min", s / 60);
    else
        snprintf(buf, n, "%.1f h", s / 3600);
}

int cli_dry_run(const void *run_config) {
    const crl_run_config *r = run_config;
    crl_err err = {0};
    int rc = crl_run_config_validate(r, &err);
    if (rc) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 2;
    }
    /* The resolved configuration, as the run would store it. */
    crl_kv kv[CRL_RUN_MAX_KEYS];
    const int nk = crl_run_config_encode(r, kv);
    printf("configuration (as config_json would hold it):\n");
    for (int i = 0; i < nk; i++) {
        if (kv[i].str)
            printf("  %-24s %s\n", kv[i].key, kv[i].str);
        else
            printf("  %-24s %.10g\n", kv[i].key, kv[i].num);
    }

    /* The shape of the work. */
    const int scen = crl_run_config_is_scenario(r);
    const int offline = crl_run_config_is_offline(r);
    crl_sac_config sac;
    const crl_scenario *sc = NULL;
    crl_env_spec *spec = NULL;
    int64_t per_task, eval_every;
    int n_train = 1, n_eval = 1, eval_eps, update_every, bc_loss = 0;
    int64_t update_after;
    if (scen) {
        crl_continual_config cc;
        sc = crl_scenario_find(r->scenario);
        if ((rc = crl_run_continual_config(r, &cc, &err))) goto fail;
        sac = cc.sac;
        per_task = cc.steps_per_task;
        eval_every = cc.eval_every;
        eval_eps = cc.eval_episodes;
        bc_loss = cc.bc_loss;
        const crl_method *m = crl_method_find(r->method);
        n_train = m && (m->impl->flags & CRL_METHOD_ONE_TASK) && r->single_task >= 0
                      ? 1
                      : sc->n_tasks;
        n_eval = m && (m->impl->flags & CRL_METHOD_ONE_TASK) ? 1 : sc->n_tasks;
        sac.n_tasks = sc->n_tasks;
        rc = crl_env_spec_create(sc->tasks[0], &spec, &err);
    } else {
        crl_train_config tc;
        if ((rc = crl_run_train_config(r, &tc, &err))) goto fail;
        sac = tc.sac;
        per_task = tc.steps;
        eval_every = tc.eval_every;
        eval_eps = tc.eval_episodes;
        sac.n_tasks = 1;
        rc = tc.env_xml ? crl_env_spec_create_xml(tc.env_xml, &tc.xml, &spec, &err)
                        : crl_env_spec_create(tc.env, &spec, &err);
    }
    if (rc) goto fail;
    update_every = (int)sac.update_every;
    update_after = sac.update_after;
    sac.obs_dim = crl_env_obs_dim(spec);
    sac.act_dim = crl_env_act_dim(spec);
    sac.max_act_batch = eval_eps + 1 > 1 ? eval_eps + 1 : 1;
    const int lanes = r->threads == 1 ? 1 : 2;
    sac.threads = lanes;
    if ((rc = crl_blas_init(lanes, &err))) goto fail;

    /* Calibrate: about 2 s. */
    rates rt = {0};
    const double w0 = crl_now(), c0 = cpu_now();
    rt.env_per_s = env_rate(spec, 0.6);
    if ((rc = learner_rates(&sac, offline, bc_loss, &rt, &err))) goto fail;
    const double share = (cpu_now() - c0) / (crl_now() - w0); /* of one core */
    const int horizon = crl_env_max_steps(spec);

    /* The estimate. Online: every env step acts and steps; one update per
     * env step after update_after; evaluations step (episodes + 1) x
     * horizon per evaluated task. Offline: updates only, evaluations the
     * same. */
    const double total = (double)per_task * n_train;
    const double updates =
        offline ? total : fmax(0.0, total - (double)update_after * n_train);
    const double evals = floor((double)per_task / (double)eval_every) * n_train;
    const double eval_steps = evals * n_eval * (eval_eps + 1) * horizon;
    const double t_env =
        offline ? 0.0 : total * (1.0 / rt.env_per_s + 1.0 / rt.act_per_s);
    const double t_upd = updates / rt.upd_per_s;
    const double t_eval = eval_steps / rt.env_per_s;
    char a[32], b[32], c[32], d[32];
    fmt_time(t_env, a, sizeof a);
    fmt_time(t_upd, b, sizeof b);
    fmt_time(t_eval, c, sizeof c);
    fmt_time(t_env + t_upd + t_eval, d, sizeof d);
    printf("\nwork: %.0f %s (%d task%s x %lld), %.0f updates (every %d, after %lld), "
           "%.0f evaluations of %d task%s x %d episodes x %d steps\n",
           total, offline ? "updates" : "env steps", n_train, n_train == 1 ? "" : "s",
           (long long)per_task, updates, update_every, (long long)update_after, evals,
           n_eval, n_eval == 1 ? "" : "s", eval_eps + 1, horizon);
    printf("calibration (this machine, now): env %.0f steps/s, acting %.0f/s, %s %.0f "
           "updates/s (batch %d, %d x %d, OpenBLAS %s, %d thread%s)\n",
           rt.env_per_s, rt.act_per_s, offline ? "behaviour-cloning" : "SAC",
           rt.upd_per_s, sac.batch, sac.layers, sac.hidden, crl_blas_kernel(), lanes,
           lanes > 1 ? "s" : "");
    printf("estimate: %s (env and acting %s, updates %s, evaluations %s)\n", d, a, b, c);
    if (share < 0.7 * lanes && share < 0.9)
        printf("note: the machine is busy: the calibration got %.0f%% of a core, so the "
               "estimate holds while the load lasts; on idle cores it would be about %s "
               "or less\n",
               100 * share, (fmt_time((t_env + t_upd + t_eval) * share, d, sizeof d), d));
    if (scen && r->method &&
        (!strncmp(r->method, "csp", 3) || !strncmp(r->method, "l2m", 3) ||
         !strcmp(r->method, "packnet") || !strcmp(r->method, "ewc")))
        printf("not counted: the %s method's own work (its update is timed as plain "
               "SAC; task-end steps such as CSP's decision or PackNet's retraining "
               "add to it)\n",
               r->method);
    printf("nothing was written (--dry-run)\n");
    crl_env_spec_free(spec);
    return 0;
fail:
    if (spec) crl_env_spec_free(spec);
    fprintf(stderr, "crl train: %s\n", err.msg);
    return rc == CRL_EINVAL || rc == CRL_ENOTFOUND ? 2 : 1;
}
