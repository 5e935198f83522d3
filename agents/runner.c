/* The training loop: env -> replay -> SAC update, evaluation on schedule,
 * everything recorded in the run store. */
#include "crl/runner.h"

#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/checkpoint_check.h"
#include "agents/diag.h"
#include "agents/diverge.h"
#include "agents/evaluator.h"
#include "crl/replay.h"

void crl_train_config_default(crl_train_config *c) {
    memset(c, 0, sizeof *c);
    c->env = "pendulum";
    c->seed = 0;
    c->steps = 100000;
    c->eval_every = 20000;
    c->eval_episodes = 10;
    c->log_train_every = CRL_LOG_TRAIN_EVERY;
    c->threads = 0;
    c->diag_every = CRL_DIAG_EVERY;
    crl_sac_config_default(&c->sac, 0, 0, 1);
}

/* ---- batched evaluation (agents/evaluator.h) -------------------------------- */

void evaluator_free(evaluator *ev) {
    crl_vecenv_free(ev->venv);
    if (ev->rec)
        for (int i = 0; i < ev->n; i++) crl_episode_free(ev->rec[i]);
    free(ev->rec);
    free(ev->obs);
    free(ev->act);
    free(ev->ret);
    free(ev->done);
    free(ev->succ);
    memset(ev, 0, sizeof *ev);
}

int evaluator_init(evaluator *ev, const crl_env_spec *spec, int n, int lanes,
                   crl_err *err) {
    memset(ev, 0, sizeof *ev);
    ev->n = n;
    const int O = crl_env_obs_dim(spec), A = crl_env_act_dim(spec);
    ev->obs = malloc(sizeof(float) * (size_t)n * O);
    ev->act = malloc(sizeof(float) * (size_t)n * A);
    ev->ret = malloc(sizeof(float) * (size_t)n);
    ev->done = malloc(sizeof(int) * (size_t)n);
    ev->succ = malloc(sizeof(int) * (size_t)n);
    ev->rec = calloc((size_t)n, sizeof *ev->rec);
    if (!ev->obs || !ev->act || !ev->ret || !ev->done || !ev->succ || !ev->rec) {
        evaluator_free(ev);
        return crl_errf(err, CRL_ENOMEM, "eval: out of memory");
    }
    int rc = crl_vecenv_create(spec, n, lanes >= 2 ? 2 : 1, &ev->venv, err);
    for (int i = 0; !rc && i < n; i++) rc = crl_episode_create(spec, &ev->rec[i], err);
    if (rc) {
        evaluator_free(ev);
        return rc;
    }
    /* Each episode runs to its end once; nothing starts after it. */
    crl_vecenv_set_autoreset(ev->venv, 0);
    return CRL_OK;
}

/* Run the n episodes to their end. Rows [0, n_stoch) act stochastically with
 * noise from rng, the rest deterministically. The envs step side by side in
 * the vecenv (on its lanes); each episode is recorded as it goes. */
void evaluator_run(evaluator *ev, crl_sac *sac, int task, int n_stoch,
                   const uint64_t *seeds, crl_rng *rng) {
    const crl_env_spec *spec = crl_vecenv_spec(ev->venv);
    const int O = crl_env_obs_dim(spec), A = crl_env_act_dim(spec);
    crl_vecenv_reset_each(ev->venv, seeds, ev->obs);
    for (int i = 0; i < ev->n; i++) {
        crl_episode_begin(ev->rec[i], crl_vecenv_env(ev->venv, i), seeds[i]);
        ev->ret[i] = 0;
        ev->done[i] = 0;
        ev->succ[i] = 0;
    }
    ev->n_stoch = n_stoch;
    /* L2M's history query: these rows are the envs, every one at its
     * episode's start. */
    crl_sac_l2m_envs(sac, ev->obs, ev->n);
    while (crl_vecenv_running(ev->venv) > 0) {
        if (n_stoch > 0) crl_sac_act(sac, n_stoch, ev->obs, task, 0, rng, ev->act);
        if (ev->n > n_stoch)
            crl_sac_act(sac, ev->n - n_stoch, ev->obs + (size_t)n_stoch * O, task, 1,
                        NULL, ev->act + (size_t)n_stoch * A);
        crl_vecenv_step(ev->venv, ev->act, ev->obs, NULL, NULL, NULL, NULL, NULL);
        for (int i = 0; i < ev->n; i++) {
            if (ev->done[i]) continue;
            const crl_step_info *info = crl_vecenv_last_info(ev->venv, i);
            crl_episode_add(ev->rec[i], ev->act + (size_t)i * A, info);
            ev->ret[i] += info->reward;
            if (info->success) ev->succ[i] = 1;
            if (crl_vecenv_ended(ev->venv, i)) {
                crl_episode_end(ev->rec[i], crl_vecenv_env(ev->venv, i));
                ev->done[i] = 1;
            }
        }
    }
}

int episode_log(crl_store *store, const crl_episode *rec, int64_t run_id, int64_t step,
                int task_idx, const char *kind, int episode, int deterministic,
                crl_err *err) {
    crl_episode_info in;
    int rc = crl_episode_get(rec, &in, err);
    if (rc) return rc;
    crl_episode_row row = {.run_id = run_id,
                           .step = step,
                           .task_idx = task_idx,
                           .kind = kind,
                           .episode = episode,
                           .deterministic = deterministic,
                           .env_seed = in.seed,
                           .length = in.length,
                           .ret = in.ret,
                           .success = in.success,
                           .env = in.env,
                           .mujoco_version = in.mujoco_version,
                           .model_hash = in.model_hash,
                           .modifiers = in.modifiers,
                           .data = in.blob,
                           .data_n = in.blob_n};
    return crl_store_episode(store, &row, err);
}

int evaluator_log(const evaluator *ev, crl_store *store, int64_t run_id, int64_t step,
                  int task_idx, crl_err *err) {
    for (int i = 0; i < ev->n; i++) {
        int rc = episode_log(store, ev->rec[i], run_id, step, task_idx, "eval", i,
                             i >= ev->n_stoch, err);
        if (rc) return rc;
    }
    return CRL_OK;
}

int crl_evaluate(crl_sac *sac, const crl_env_spec *env, int task, int episodes,
                 int deterministic, uint64_t seed, double *mean_return,
                 double *success_rate, crl_err *err) {
    if (episodes <= 0 || episodes > crl_sac_get_config(sac)->max_act_batch)
        return crl_errf(err, CRL_EINVAL, "evaluate: episodes must be in 1..%d",
                        crl_sac_get_config(sac)->max_act_batch);
    evaluator ev;
    int rc = evaluator_init(&ev, env, episodes, crl_sac_get_config(sac)->threads, err);
    if (rc) return rc;
    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)episodes);
    if (!seeds) {
        evaluator_free(&ev);
        return crl_errf(err, CRL_ENOMEM, "evaluate: out of memory");
    }
    for (int k = 0; k < episodes; k++) seeds[k] = crl_eval_seed(seed, 0, k);
    crl_rng rng;
    crl_rng_seed_stream(&rng, seed, 7);
    evaluator_run(&ev, sac, task, deterministic ? 0 : episodes, seeds, &rng);
    double r = 0, s = 0;
    for (int k = 0; k < episodes; k++) {
        r += ev.ret[k];
        s += ev.succ[k];
    }
    *mean_return = r / episodes;
    *success_rate = s / episodes;
    free(seeds);
    evaluator_free(&ev);
    return CRL_OK;
}

/* ---- checkpoint checks (agents/checkpoint_check.h) ----------------------------- */

int crl_checkpoint_check_floats(const void *p, size_t n, const char *what, crl_err *err) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, b + i * sizeof f, sizeof f);
        if (!isfinite(f))
            return crl_errf(err, CRL_ECORRUPT, "%s %zu is %g, not finite", what, i,
                            (double)f);
    }
    return CRL_OK;
}

int crl_checkpoint_check_learner(const void *sac_blob, size_t n, crl_err *err) {
    crl_sac_blob info;
    int rc = crl_sac_blob_info(sac_blob, n, &info, err);
    if (rc) return rc;
    /* crl_sac_save's sections after the header (agents/sac.c): floats, and
     * before each optimiser's two moments its i64 step count. */
    const size_t used = (size_t)info.actor.used, nc = (size_t)info.nc,
                 T = (size_t)info.n_tasks, nb = (size_t)info.actor.n_base;
    const struct {
        const char *what;
        size_t n;
        int skip; /* bytes before it */
    } parts[] = {
        {"frozen base", nb, 0},
        {"actor parameter", used, 0},
        {"critic parameter", 2 * nc, 0},
        {"target critic parameter", 2 * nc, 0},
        {"log alpha", T, 0},
        {"actor Adam moment", 2 * used, 8},
        {"critic Adam moment", 4 * nc, 8},
        {"alpha Adam moment", 2 * T, 8},
    };
    const unsigned char *p =
        (const unsigned char *)info.actor_params - nb * sizeof(float);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        p += parts[i].skip;
        char what[64];
        snprintf(what, sizeof what, "corrupt checkpoint: the learner's %s",
                 parts[i].what);
        if ((rc = crl_checkpoint_check_floats(p, parts[i].n, what, err))) return rc;
        p += parts[i].n * sizeof(float);
    }
    return CRL_OK;
}

int crl_checkpoint_fetch(crl_store *store, int64_t run_id, int fallback,
                         int (*check)(const void *blob, size_t n, crl_err *err),
                         int *task_idx, int64_t *step, void **blob, size_t *n,
                         crl_err *err) {
    int64_t before = INT64_MAX;
    for (int tries = 0;; tries++) {
        int64_t at = -1;
        int rc = crl_store_checkpoint_before(store, run_id, before, task_idx, &at, blob,
                                             n, err);
        if (rc == CRL_ENOTFOUND && tries > 0)
            return crl_errf(err, CRL_ECORRUPT,
                            "run %lld has no intact checkpoint left to resume from",
                            (long long)run_id);
        if (rc == CRL_OK && check && (rc = check(*blob, *n, err)) != CRL_OK) {
            free(*blob);
            *blob = NULL;
            *n = 0;
            if (rc == CRL_ECORRUPT) {
                /* One line: the run, the step, what is wrong, what to do. */
                char why[sizeof err->msg];
                snprintf(why, sizeof why, "%s", err ? err->msg : "");
                char what[160];
                crl_store_checkpoint_fallback(store, run_id, at, what, sizeof what);
                crl_errf(err, CRL_ECORRUPT, "run %lld, step %lld: %.300s; %s",
                         (long long)run_id, (long long)at, why, what);
            }
        }
        if (rc == CRL_OK) {
            if (step) *step = at;
            return CRL_OK;
        }
        if (!fallback || rc != CRL_ECORRUPT || at < 0) return rc;
        fprintf(stderr, "crl: %s\n", err ? err->msg : "a checkpoint is corrupt");
        before = at;
    }
}

/* ---- runner checkpoints ------------------------------------------------------
 * "CRLRUN01", i64 step, i64 episodes, two generators (32+4+8 bytes each),
 * then the learner's own blob (crl_sac_save). */

static const char RUN_MAGIC[8] = {'C', 'R', 'L', 'R', 'U', 'N', '0', '1'};
#define RUN_HEAD (8 + 16 + 2 * (32 + 4 + 8)) /* bytes before the learner's blob */

typedef struct {
    int64_t step, episodes;
    crl_rng env_rng, rng;
} runner_state;

static int save_checkpoint(crl_store *store, int64_t run_id, int task, crl_sac *sac,
                           const runner_state *rs, crl_err *err) {
    void *sblob = NULL;
    size_t sn = 0;
    int rc = crl_sac_save(sac, &sblob, &sn, err);
    if (rc) return rc;
    size_t head = RUN_HEAD;
    unsigned char *blob = malloc(head + sn);
    if (!blob) {
        free(sblob);
        return crl_errf(err, CRL_ENOMEM, "checkpoint: out of memory");
    }
    unsigned char *p = blob;
    memcpy(p, RUN_MAGIC, 8);
    p += 8;
    memcpy(p, &rs->step, 8);
    p += 8;
    memcpy(p, &rs->episodes, 8);
    p += 8;
    const crl_rng *g[2] = {&rs->env_rng, &rs->rng};
    for (int i = 0; i < 2; i++) {
        int32_t hs = g[i]->has_spare;
        memcpy(p, g[i]->s, 32);
        memcpy(p + 32, &hs, 4);
        memcpy(p + 36, &g[i]->spare, 8);
        p += 44;
    }
    memcpy(p, sblob, sn);
    free(sblob);
    rc = crl_store_checkpoint_put(store, run_id, task, rs->step, blob, head + sn, err);
    free(blob);
    /* Keep the last two: the previous one is a resume's fallback when the
     * latest is corrupt. */
    if (rc == CRL_OK) rc = crl_store_checkpoint_prune(store, run_id, rs->step, err);
    return rc;
}

/* A single-env checkpoint whose learner is finite. */
static int check_run_blob(const void *blob, size_t n, crl_err *err) {
    const void *sb;
    size_t sn;
    return crl_checkpoint_learner(blob, n, &sb, &sn, NULL, err);
}

/* The inverse of save_checkpoint: the learner and the runner state of
 * run_id's latest intact checkpoint (a corrupt one is reported and the
 * previous one used). */
static int load_checkpoint(crl_store *store, int64_t run_id, crl_sac *sac,
                           runner_state *rs, crl_err *err) {
    void *blob = NULL;
    size_t n = 0;
    int idx;
    int64_t step;
    int rc = crl_checkpoint_fetch(store, run_id, 1, check_run_blob, &idx, &step, &blob,
                                  &n, err);
    if (rc == CRL_ENOTFOUND)
        return crl_errf(err, CRL_EINVAL,
                        "run %lld has no checkpoint to resume from (it stopped before "
                        "its first evaluation)",
                        (long long)run_id);
    if (rc) return rc;
    const size_t head = RUN_HEAD;
    if (n < head || memcmp(blob, RUN_MAGIC, 8) != 0) {
        free(blob);
        return crl_errf(err, CRL_ECORRUPT,
                        "run %lld: its checkpoint is not a single-env one",
                        (long long)run_id);
    }
    const unsigned char *p = blob;
    memcpy(&rs->step, p + 8, 8);
    memcpy(&rs->episodes, p + 16, 8);
    p += 24;
    crl_rng *g[2] = {&rs->env_rng, &rs->rng};
    for (int i = 0; i < 2; i++) {
        int32_t hs;
        memcpy(g[i]->s, p, 32);
        memcpy(&hs, p + 32, 4);
        memcpy(&g[i]->spare, p + 36, 8);
        g[i]->has_spare = hs;
        p += 44;
    }
    rc = crl_sac_load(sac, (const unsigned char *)blob + head, n - head, err);
    free(blob);
    if (!rc && rs->step < 0)
        rc = crl_errf(err, CRL_ECORRUPT, "run %lld: checkpoint step %lld",
                      (long long)run_id, (long long)rs->step);
    return rc;
}

int crl_checkpoint_learner(const void *blob, size_t n, const void **sac_blob,
                           size_t *sac_n, int64_t *step, crl_err *err) {
    const size_t head = RUN_HEAD;
    if (n < head || memcmp(blob, RUN_MAGIC, 8) != 0)
        return crl_errf(err, CRL_ECORRUPT, "not a crl run checkpoint");
    if (step) memcpy(step, (const char *)blob + 8, 8);
    *sac_blob = (const char *)blob + head;
    *sac_n = n - head;
    /* eval, export and resume all come here: a non-finite learner is refused. */
    return crl_checkpoint_check_learner(*sac_blob, *sac_n, err);
}

/* ---- the loop ---------------------------------------------------------------- */

typedef struct {
    double ret[10];
    int succ[10];
    int n, next;
} recent;

static void recent_push(recent *r, double ret, int succ) {
    r->ret[r->next] = ret;
    r->succ[r->next] = succ;
    r->next = (r->next + 1) % 10;
    if (r->n < 10) r->n++;
}

/* ---- diverging physics (docs/robustness.md) ----------------------------------
 * MuJoCo answers a NaN or huge qpos/qvel/qacc by resetting mjData and
 * counting a warning; crl then truncates the episode (envs/env.c). A model
 * whose physics does that in CRL_DIVERGED_IN_A_ROW training episodes in a
 * row is unstable, not unlucky: the run fails with one line naming the task,
 * the env step and MuJoCo's warning text. Shared with agents/continual.c. */
static const int diverge_warnings[] = {mjWARN_BADQPOS, mjWARN_BADQVEL, mjWARN_BADQACC};

void diverge_step(diverge_state *dv, crl_env *env) {
    const mjData *d = crl_env_data(env);
    if (dv->warning >= 0) return;
    for (size_t i = 0; i < sizeof diverge_warnings / sizeof *diverge_warnings; i++) {
        int w = diverge_warnings[i];
        if (d->warning[w].number > 0) {
            dv->warning = w;
            dv->info = d->warning[w].lastinfo;
            return;
        }
    }
}

int diverge_episode_end(diverge_state *dv, const char *task, int64_t step, crl_err *err) {
    int w = dv->warning;
    dv->warning = -1;
    if (w < 0) {
        dv->in_a_row = 0;
        return CRL_OK;
    }
    if (++dv->in_a_row < CRL_DIVERGED_IN_A_ROW) return CRL_OK;
    return crl_errf(err, CRL_EMUJOCO,
                    "task '%s': the physics diverged in %d episodes in a row, the last "
                    "at env step %lld (MuJoCo: %s); try a smaller timestep or weaker "
                    "actuators",
                    task, dv->in_a_row, (long long)step, mju_warningText(w, dv->info));
}

/* A resumed run's last evaluation value (for its first evaluation note). */
typedef struct {
    int has_success;
    int64_t step;
    double value;
} last_eval;

static int collect_last_eval(const crl_eval_row *row, void *vctx) {
    last_eval *x = vctx;
    if (row->step >= x->step) {
        x->step = row->step;
        x->value = diag_eval_value(x->has_success, row->episodes, row->success_rate,
                                   row->mean_return, row->det_return, -1);
    }
    return 0;
}

int crl_train_run(const crl_train_config *cfg, crl_store *store, int64_t run_id,
                  crl_progress_fn progress, void *ctx, volatile sig_atomic_t *stop,
                  crl_err *err) {
    int rc;
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    crl_sac *sac = NULL;
    crl_replay rb = {0};
    crl_batch batch = {0};
    evaluator ev = {0};
    crl_episode *trec = NULL; /* --log-train-episodes */
    uint64_t *eval_seeds = NULL;
    float *obs = NULL, *obs2 = NULL, *act = NULL;
    const int task = 0;

    if (cfg->steps <= 0) return crl_errf(err, CRL_EINVAL, "steps must be > 0");
    if (cfg->eval_every <= 0) return crl_errf(err, CRL_EINVAL, "eval-every must be > 0");
    if (cfg->eval_episodes < 0 || cfg->eval_episodes > 1000)
        return crl_errf(err, CRL_EINVAL, "eval-episodes must be in 0..1000");

    if ((rc = cfg->env_xml ? crl_env_spec_create_xml(cfg->env_xml, &cfg->xml, &spec, err)
                           : crl_env_spec_create(cfg->env, &spec, err)))
        goto out;
    const char *env_name = crl_env_spec_name(spec);
    const int O = crl_env_obs_dim(spec), A = crl_env_act_dim(spec);
    crl_sac_config sc = cfg->sac;
    sc.obs_dim = O;
    sc.act_dim = A;
    sc.n_tasks = 1;
    if (sc.max_act_batch < cfg->eval_episodes) sc.max_act_batch = cfg->eval_episodes;
    if ((rc = crl_sac_create(&sc, cfg->seed, &sac, err))) goto out;
    int64_t cap = sc.buffer_size < cfg->steps ? sc.buffer_size : cfg->steps;
    if ((rc = crl_replay_init(&rb, O, A, cap, err))) goto out;
    if ((rc = crl_batch_alloc(&batch, sc.batch, O, A, err))) goto out;
    if ((rc = crl_env_create(spec, &env, err))) goto out;
    if (cfg->log_train_every > 0 && (rc = crl_episode_create(spec, &trec, err))) goto out;
    const int n_eval = cfg->eval_episodes + 1;
    if ((rc = evaluator_init(&ev, spec, n_eval, cfg->sac.threads, err))) goto out;
    eval_seeds = malloc(sizeof(uint64_t) * (size_t)n_eval);
    obs = malloc(sizeof(float) * (size_t)O);
    obs2 = malloc(sizeof(float) * (size_t)O);
    act = malloc(sizeof(float) * (size_t)A);
    if (!eval_seeds || !obs || !obs2 || !act) {
        rc = crl_errf(err, CRL_ENOMEM, "train: out of memory");
        goto out;
    }

    runner_state rs = {0};
    crl_rng_seed_stream(&rs.env_rng, cfg->seed, 10);
    crl_rng_seed_stream(&rs.rng, cfg->seed, 11);
    crl_rng eval_rng;
    crl_rng_seed_stream(&eval_rng, cfg->seed, 12);

    if (cfg->resume) {
        if ((rc = load_checkpoint(store, run_id, sac, &rs, err))) goto out;
        /* The evaluation noise is not checkpointed: a stream of its own per
         * resume step. */
        crl_rng_seed_stream(&eval_rng, cfg->seed ^ (uint64_t)rs.step, 12);
        if ((rc = crl_store_run_set_status(store, run_id, "running", err))) goto out;
    } else if ((rc = crl_store_task_start(store, run_id, task, env_name, 0, err))) {
        goto out;
    }

    /* Fault injection for tests, in SQLite's spirit: CRL_TEST_NAN_AT_STEP=N
     * turns the reward of env step N into NaN, which must fail the run with a
     * clear message and a checkpoint of the last good state. */
    int64_t nan_step = -1;
    const char *inj = getenv("CRL_TEST_NAN_AT_STEP");
    if (inj) nan_step = strtoll(inj, NULL, 10);

    /* Training diagnostics and the evaluation notes (agents/diag.h). */
    const int has_success = crl_task_has_success(env_name);
    diag_state dg;
    diag_init(&dg, cfg->diag_every, 0, sc.gamma, rs.step);
    last_eval prev = {has_success, -1, NAN};
    if (cfg->resume &&
        (rc = crl_store_evals(store, run_id, collect_last_eval, &prev, err)))
        goto out;

    recent rec = {0};
    diverge_state dv = DIVERGE_INIT;
    double ep_ret = 0;
    int ep_succ = 0;
    uint64_t ep_seed = crl_rng_u64(&rs.env_rng);
    crl_env_reset(env, ep_seed, obs);
    if (trec && train_episode_logged(cfg->log_train_every, rs.episodes))
        crl_episode_begin(trec, env, ep_seed);
    double t0 = crl_now(), t_last = t0, rate = 0;
    const int64_t step0 = rs.step; /* 0, or the resumed checkpoint's step */
    int64_t step_last = step0, updates = 0, eval_idx = step0 / cfg->eval_every;
    double sum_q = 0, sum_pi = 0, sum_alpha = 0, sum_logp = 0;
    int n_stats = 0;

    while (rs.step < cfg->steps) {
        if (rs.step < sc.start_steps) {
            for (int j = 0; j < A; j++) act[j] = (float)crl_rng_range(&rs.rng, -1.0, 1.0);
        } else {
            crl_sac_act(sac, 1, obs, task, 0, NULL, act);
        }
        crl_step_info info;
        crl_env_step(env, act, obs2, &info);
        diverge_step(&dv, env);
        if (trec) crl_episode_add(trec, act, &info);
        if (rs.step + 1 == nan_step) info.reward = NAN;
        diag_reward(&dg, info.reward);
        crl_replay_add(&rb, obs, act, info.reward, obs2, info.terminal, task);
        ep_ret += info.reward;
        if (info.success) ep_succ = 1;
        memcpy(obs, obs2, sizeof(float) * (size_t)O);
        rs.step++;
        /* Batched rows hold the file's write lock: release it within the
         * batch age, so that other runs can write to the same file. */
        if ((rc = crl_store_tick(store, err))) goto out;
        if (info.terminal || info.truncated) {
            if ((rc = diverge_episode_end(&dv, env_name, rs.step, err))) goto out;
            recent_push(&rec, ep_ret, ep_succ);
            diag_episode(&dg, ep_ret, ep_succ);
            crl_store_metric(store, run_id, rs.step, "train/return", ep_ret, NULL);
            crl_store_metric(store, run_id, rs.step, "train/success", ep_succ, NULL);
            if (crl_episode_recording(trec)) {
                crl_episode_end(trec, env);
                if ((rc = episode_log(store, trec, run_id, rs.step, task, "train",
                                      (int)rs.episodes, 0, err)))
                    goto out;
            }
            rs.episodes++;
            ep_ret = 0;
            ep_succ = 0;
            ep_seed = crl_rng_u64(&rs.env_rng);
            crl_env_reset(env, ep_seed, obs);
            if (trec && train_episode_logged(cfg->log_train_every, rs.episodes))
                crl_episode_begin(trec, env, ep_seed);
        }

        /* A resumed run refills its (empty) buffer before updating again. */
        if (rs.step >= sc.update_after &&
            rs.step - step0 >= (step0 ? sc.update_after : 0) &&
            rs.step % sc.update_every == 0) {
            for (int64_t k = 0; k < sc.update_every; k++) {
                crl_replay_sample(&rb, &rs.rng, sc.batch, &batch);
                crl_sac_stats st;
                rc = crl_sac_update(sac, &batch, &st, err);
                if (rc) {
                    crl_err e2;
                    /* A runaway seen in this round is said before the
                     * failure. */
                    diag_warn_flush(&dg, store, run_id, rs.step, task, 1, env_name,
                                    cfg->note, ctx);
                    /* Nothing was applied: the checkpoint holds the last
                     * good parameters. */
                    save_checkpoint(store, run_id, task, sac, &rs, &e2);
                    goto out;
                }
                updates++;
                sum_q += st.q_loss;
                sum_pi += st.pi_loss;
                sum_alpha += st.alpha;
                sum_logp += st.logp;
                n_stats++;
                if (dg.every > 0) diag_update(&dg, &st);
            }
            if (diag_due(&dg)) diag_write(&dg, store, run_id, rs.step, has_success);
            diag_warn_flush(&dg, store, run_id, rs.step, task, 1, env_name, cfg->note,
                            ctx);
        }
        if (n_stats > 0 && rs.step % 1000 == 0) {
            crl_store_metric(store, run_id, rs.step, "loss/q", sum_q / n_stats, NULL);
            crl_store_metric(store, run_id, rs.step, "loss/pi", sum_pi / n_stats, NULL);
            crl_store_metric(store, run_id, rs.step, "alpha", sum_alpha / n_stats, NULL);
            crl_store_metric(store, run_id, rs.step, "logp", sum_logp / n_stats, NULL);
            sum_q = sum_pi = sum_alpha = sum_logp = 0;
            n_stats = 0;
        }

        if (rs.step % cfg->eval_every == 0 || rs.step == cfg->steps) {
            for (int k = 0; k < n_eval; k++)
                eval_seeds[k] = crl_eval_seed(cfg->seed, eval_idx, k);
            /* No write lock held while the episodes run (the batch of
             * training metrics would hold it): see continual.c eval_all. */
            /* Evaluating, committing and checkpointing do not count toward
             * the diagnostics' rates. */
            const double t_eval = crl_now();
            if ((rc = crl_store_flush(store, err))) goto out;
            evaluator_run(&ev, sac, task, cfg->eval_episodes, eval_seeds, &eval_rng);
            double r = 0, s = 0;
            for (int k = 0; k < cfg->eval_episodes; k++) {
                r += ev.ret[k];
                s += ev.succ[k];
            }
            int ne = cfg->eval_episodes;
            crl_eval_row row = {run_id,          rs.step,         task,      task, ne,
                                ne ? s / ne : 0, ne ? r / ne : 0, ev.ret[ne]};
            const double v =
                diag_eval_value(has_success, ne, row.success_rate, row.mean_return,
                                row.det_return, ev.succ[ne]);
            diag_note_eval(cfg->note, ctx, task, 1, env_name, rs.step, has_success, v,
                           prev.value);
            prev.value = v;
            if ((rc = crl_store_eval(store, &row, err))) goto out;
            if ((rc = evaluator_log(&ev, store, run_id, rs.step, task, err))) goto out;
            crl_store_metric(store, run_id, rs.step, "eval/det_success", ev.succ[ne],
                             NULL);
            if ((rc = crl_store_flush(store, err))) goto out;
            eval_idx++;
            /* A crash or SIGKILL loses at most the steps since this point. */
            if (rs.step < cfg->steps &&
                (rc = save_checkpoint(store, run_id, task, sac, &rs, err)))
                goto out;
            diag_pause(&dg, crl_now() - t_eval);
        }

        double now = crl_now();
        if (progress && (now - t_last >= 1.0 || rs.step == cfg->steps)) {
            double inst = (double)(rs.step - step_last) / (now - t_last);
            rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
            t_last = now;
            step_last = rs.step;
            crl_progress p = {task, 1,   env_name, rs.step, cfg->steps, rate,
                              NAN,  NAN, NAN,      updates, has_success};
            if (rec.n > 0) {
                double r = 0, s = 0;
                for (int k = 0; k < rec.n; k++) {
                    r += rec.ret[k];
                    s += rec.succ[k];
                }
                p.recent_return = r / rec.n;
                p.recent_success = s / rec.n;
            }
            if (rate > 0) p.eta_s = (double)(cfg->steps - rs.step) / rate;
            progress(&p, ctx);
        }
        if (stop && *stop) {
            if ((rc = save_checkpoint(store, run_id, task, sac, &rs, err))) goto out;
            if ((rc = crl_store_run_set_status(store, run_id, "interrupted", err)))
                goto out;
            rc = crl_errf(err, CRL_EINTR, "interrupted at step %lld; checkpoint written",
                          (long long)rs.step);
            goto out;
        }
    }

    /* The last diagnostics row: the updates since the previous one. */
    if (dg.every > 0 && dg.n > 0) diag_write(&dg, store, run_id, rs.step, has_success);
    if ((rc = crl_store_task_end(store, run_id, task, rs.step, err))) goto out;
    if ((rc = save_checkpoint(store, run_id, task, sac, &rs, err))) goto out;
    crl_store_metric(store, run_id, rs.step, "wall_time_s", crl_now() - t0, NULL);
    rc = crl_store_run_set_status(store, run_id, "finished", err);

out:
    if (rc && rc != CRL_EINTR) {
        crl_err e2;
        crl_store_run_set_status(store, run_id, "failed", &e2);
    }
    free(eval_seeds);
    free(obs);
    free(obs2);
    free(act);
    evaluator_free(&ev);
    crl_episode_free(trec);
    crl_batch_free(&batch);
    crl_replay_free(&rb);
    if (env) crl_env_free(env);
    crl_sac_free(sac);
    if (spec) crl_env_spec_free(spec);
    return rc;
}
