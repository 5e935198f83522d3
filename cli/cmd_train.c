/* crl train: one SAC run, recorded in the store. */
#include <ctype.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/blas.h"
#include "crl/continual.h"
#include "crl/runner.h"
#include "crl/scenario.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
    g_stop = 1;
    /* A second Ctrl-C falls back to the default action: the store's
     * transactions keep the file consistent even then. */
    signal(sig, SIG_DFL);
}

int cli_exit_code(int status) {
    switch (status) {
    case CRL_OK:
        return 0;
    case CRL_EINVAL:
        return 2;
    case CRL_EINTR:
        return 130;
    default:
        return 1;
    }
}

typedef struct {
    int tty;
    int quiet;
    double last_print;
} progress_ctx;

/* "45s", "12m07s" or "3h05m": whole seconds first, so 719.6 s is 12m00s, not
 * 11m60s. */
void cli_fmt_eta(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0 || s > 1e9) {
        snprintf(buf, n, "--");
        return;
    }
    long t = lround(s);
    if (t < 120)
        snprintf(buf, n, "%lds", t);
    else if (t < 7200)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
}

static void on_progress(const crl_progress *p, void *vctx) {
    progress_ctx *ctx = vctx;
    if (ctx->quiet) return;
    double now = crl_now();
    int final = p->step == p->total;
    /* Not a terminal: a line every 10 s keeps logs readable. */
    if (!ctx->tty && !final && now - ctx->last_print < 10.0) return;
    ctx->last_print = now;
    char eta[32], ret[48] = "return --";
    cli_fmt_eta(p->eta_s, eta, sizeof eta);
    if (isfinite(p->recent_return))
        snprintf(ret, sizeof ret, "return %.1f, success %.2f", p->recent_return,
                 p->recent_success);
    fprintf(stderr, "%stask %d/%d %s | step %lld/%lld | %.0f steps/s | %s | ETA %s%s",
            ctx->tty ? "\r\033[K" : "", p->task + 1, p->n_tasks, p->task_name,
            (long long)p->step, (long long)p->total, p->steps_per_s, ret, eta,
            ctx->tty && !final ? "" : "\n");
    fflush(stderr);
}

#define TRAIN_MAX_OPTS 64
#define CRL_STR_(x)    #x
#define CRL_STR(x)     CRL_STR_(x)

/* The flag table of `crl train`, pointing into the caller's variables. It
 * also restores a run's stored configuration (resume, eval). */
static int train_defs(opt_def *defs, crl_train_config *c, crl_continual_config *cc,
                      const char **db, const char **xml_reward, const char **xml_target,
                      int *quiet, int64_t *resume, int64_t *single_task,
                      const char **log_train) {
    crl_sac_config *s = &c->sac;
    const opt_def tmp[] = {
        {"scenario", OPT_STR, &cc->scenario, 0, 0,
         "continual run through a scenario (see 'crl scenarios')", 1},
        {"method", OPT_STR, &cc->method, 0, 0,
         "with --scenario: ft1, ftn, l2, ewc, packnet, pm, single, csp, l2m or mt "
         "(multi-task)",
         1},
        {"steps-per-task", OPT_I64, &cc->steps_per_task, 1, 1e12,
         "with --scenario: env steps per task", 1},
        {"l2-coef", OPT_DOUBLE, &cc->l2_coef, 0, 1e12, "l2 penalty coefficient", 1},
        {"ewc-coef", OPT_DOUBLE, &cc->ewc_coef, 0, 1e12, "ewc penalty coefficient", 1},
        {"packnet-retrain", OPT_DOUBLE, &cc->packnet_retrain, 0, 10,
         "packnet retraining updates after a prune, as a fraction of steps per task", 1},
        {"csp-repeat-alpha", OPT_INT, &cc->csp.repeat_alpha, 1, 1e9,
         "csp: env steps between draws of the collection alpha", 1},
        {"csp-peaked", OPT_INT, &cc->csp.peaked, 0, 1,
         "csp: 1 draws new-subspace alphas from Dirichlet(1,..,1,n^2), 0 flat", 1},
        {"csp-scored", OPT_INT, &cc->csp.n_scored, 1, 1e7,
         "csp: alphas scored by the critic per subspace at a task end", 1},
        {"csp-candidates", OPT_INT, &cc->csp.n_candidates, 2, 1e5,
         "csp: best-scored alphas rolled out at a task end (half new, half old)", 1},
        {"csp-val-steps", OPT_INT, &cc->csp.val_steps, 0, 1e9,
         "csp: env steps per validation rollout (0: one episode)", 1},
        {"csp-epsilon", OPT_DOUBLE, &cc->csp.epsilon, 0, 1e6,
         "csp: keep a new anchor iff best_new > best_old + epsilon |best_old|", 1},
        {"csp-prior-alphas", OPT_INT, &cc->csp.prior_alphas, 0, 1,
         "csp: 1 also validates the alphas of earlier tasks as old candidates, 0 the "
         "paper's rule",
         1},
        {"modulator", OPT_STR, &cc->l2m.modulator, 0, 0, "l2m: lora or ia3", 1},
        {"l2m-pool", OPT_INT, &cc->l2m.pool, 1, 4096, "l2m: modulators in the pool", 1},
        {"l2m-rank", OPT_INT, &cc->l2m.rank, 1, 4096, "l2m: LoRA rank", 1},
        {"l2m-scale", OPT_FLOAT, &cc->l2m.scale, 0, 1e6, "l2m: LoRA scale", 1},
        {"l2m-pull", OPT_FLOAT, &cc->l2m.pull, 0, 1e6,
         "l2m: key pull coefficient (loss - c mean cos(query, key))", 1},
        {"l2m-oracle", OPT_FLAG, &cc->l2m.oracle, 0, 0,
         "l2m: split the pool per task by task id (the oracle variant)", 1},
        {"base", OPT_STR, &cc->l2m.base, 0, 0,
         "l2m: the frozen base, RUN[:TASK] (a stored learner's actor; TASK = its head, "
         "default 0)",
         1},
        {"base-db", OPT_STR, &cc->l2m.base_db, 0, 0,
         "l2m: store holding the --base run (default: --db)", 1},
        {"eval-fixed", OPT_FLAG, &cc->eval_fixed, 0, 0,
         "scenarios: every evaluation of a task runs the same episodes (initial states "
         "and action noise), so an unchanged policy scores exactly the same",
         1},
        {"single-task", OPT_I64, single_task, -1, 1e6,
         "with --method single: only this scenario position (default: all)", 1},
        {"resume", OPT_I64, resume, 1, 9e18,
         "continue an interrupted continual run from its last checkpoint", 0},
        {"env", OPT_STR, &c->env, 0, 0, "task to train on (see 'crl tasks')", 1},
        {"env-xml", OPT_STR, &c->env_xml, 0, 0, "your own MJCF file instead of --env", 1},
        {"xml-reward", OPT_STR, xml_reward, 0, 0,
         "with --env-xml: forward (x-velocity of --xml-body) or reach", 1},
        {"xml-body", OPT_STR, &c->xml.body, 0, 0, "with --env-xml: body for forward", 1},
        {"xml-site", OPT_STR, &c->xml.site, 0, 0, "with --env-xml: site for reach", 1},
        {"xml-target", OPT_STR, xml_target, 0, 0, "with --env-xml: reach target x,y,z",
         1},
        {"xml-steps", OPT_INT, &c->xml.max_steps, 0, 1e8,
         "with --env-xml: episode length (0: 1000)", 1},
        {"seed", OPT_U64, &c->seed, 0, 9.0e18, "run seed", 1},
        {"steps", OPT_I64, &c->steps, 1, 1e12, "env steps to train", 1},
        {"db", OPT_STR, db, 0, 0, "SQLite run store (created if missing)", 0},
        {"eval-every", OPT_I64, &c->eval_every, 1, 1e12, "env steps between evaluations",
         1},
        {"eval-episodes", OPT_INT, &c->eval_episodes, 0, 1000,
         "stochastic episodes per evaluation (+1 deterministic)", 1},
        {"log-train-episodes", OPT_STR, log_train, 0, 0,
         "training episodes kept for 'crl replay': every:N (the 1st, N+1th, ... of "
         "a task) or none; evaluation episodes are always kept",
         1},
        {"threads", OPT_INT, &c->threads, 0, 256,
         "compute threads (0: one per core; the update uses up to 2)", 1},
        {"lr", OPT_FLOAT, &s->lr, 1e-8, 10, "Adam learning rate", 1},
        {"batch", OPT_INT, &s->batch, 1, 65536, "minibatch size", 1},
        {"hidden", OPT_INT, &s->hidden, 1, 65536, "width of hidden layers", 1},
        {"layers", OPT_INT, &s->layers, 1, CRL_MLP_MAX_HIDDEN, "hidden layers", 1},
        {"gamma", OPT_FLOAT, &s->gamma, 0, 1, "discount", 1},
        {"polyak", OPT_FLOAT, &s->polyak, 0, 1, "target averaging coefficient", 1},
        {"buffer-size", OPT_I64, &s->buffer_size, 1, 1e10, "replay capacity", 1},
        {"start-steps", OPT_I64, &s->start_steps, 0, 1e12, "uniform-random steps first",
         1},
        {"update-after", OPT_I64, &s->update_after, 0, 1e12,
         "steps before the first update", 1},
        {"update-every", OPT_I64, &s->update_every, 1, 1e9,
         "env steps between update rounds (= updates per round)", 1},
        {"init-log-alpha", OPT_FLOAT, &s->init_log_alpha, -20, 20,
         "initial log entropy coefficient", 1},
        {"quiet", OPT_FLAG, quiet, 0, 0, "no progress line", 0},
    };
    const int n = (int)(sizeof tmp / sizeof tmp[0]);
    _Static_assert(sizeof tmp / sizeof tmp[0] <= TRAIN_MAX_OPTS, "raise TRAIN_MAX_OPTS");
    memcpy(defs, tmp, sizeof tmp);
    return n;
}

/* --log-train-episodes every:N | none -> N (0 for none); -1 if malformed. */
static int parse_log_train(const char *s) {
    if (!s) return CRL_LOG_TRAIN_EVERY;
    if (!strcmp(s, "none")) return 0;
    char *end = NULL;
    if (strncmp(s, "every:", 6) != 0 || !isdigit((unsigned char)s[6])) return -1;
    long v = strtol(s + 6, &end, 10);
    if (*end || v < 1 || v > 1000000000L) return -1;
    return (int)v;
}

static int bad_log_train(const char *s) {
    fprintf(stderr,
            "crl train: --log-train-episodes must be every:N (N >= 1) or none, got "
            "'%s'\n",
            s);
    return 2;
}

typedef struct {
    const opt_def *defs;
    int n;
    opt_strs *keep;
    int64_t run_id;
    crl_err *err;
    int rc;
} config_load;

static int set_stored_option(const char *key, const crl_json_value *v, void *ctx) {
    config_load *c = ctx;
    if (v->text && opts_set(c->defs, c->n, key, v->text, c->keep) < 0) {
        c->rc =
            crl_errf(c->err, CRL_ECORRUPT, "run %lld: stored option %s = '%s' is invalid",
                     (long long)c->run_id, key, v->text);
        return 1;
    }
    return 0;
}

/* Restore the options of run_id from its stored config_json (so a resumed
 * run continues with exactly the configuration it started with). */
static int load_run_config(crl_store *store, int64_t run_id, const opt_def *defs, int n,
                           char *status, opt_strs *keep, crl_err *err) {
    crl_run_info info;
    char *json = NULL;
    int rc = crl_store_run_get(store, run_id, &info, &json, err);
    if (rc) return rc;
    config_load c = {defs, n, keep, run_id, err, CRL_OK};
    /* A config_json that does not parse restores nothing, as it always did. */
    int jr = crl_store_json_each(store, json, set_stored_option, &c, NULL);
    if (c.rc)
        rc = c.rc;
    else if (jr && jr != CRL_ECORRUPT)
        rc = crl_errf(err, CRL_EIO, "cannot read the configuration of run %lld",
                      (long long)run_id);
    free(json);
    if (!rc && status) snprintf(status, 16, "%s", info.status);
    return rc;
}

/* l2m: the frozen base named by --base RUN[:TASK] (--base-db, default db):
 * the actor of the run's latest checkpoint (a single-env or a continual
 * run), head TASK. */
static int load_l2m_base(const crl_continual_config *cc, const char *db, crl_l2m_base *b,
                         crl_err *err) {
    if (!cc->l2m.base || !*cc->l2m.base)
        return crl_errf(err, CRL_EINVAL,
                        "--method l2m needs --base RUN[:TASK] (e.g. a 'crl train "
                        "--scenario pretrain --method mt' run)");
    char *end = NULL;
    long long run = strtoll(cc->l2m.base, &end, 10);
    long task = 0;
    if (end && *end == ':') task = strtol(end + 1, &end, 10);
    if (run < 1 || task < 0 || task > 1000000 || !end || *end)
        return crl_errf(err, CRL_EINVAL, "--base must be RUN[:TASK], got '%s'",
                        cc->l2m.base);
    const char *path = cc->l2m.base_db && *cc->l2m.base_db ? cc->l2m.base_db : db;
    crl_store *st = NULL;
    void *blob = NULL;
    size_t n = 0, sn = 0;
    const void *sb = NULL;
    int idx;
    int64_t step;
    int rc = crl_store_open(path, 0, &st, err);
    if (!rc) rc = crl_store_checkpoint_latest(st, run, &idx, &step, &blob, &n, err);
    if (rc == CRL_ENOTFOUND)
        rc = crl_errf(err, CRL_EINVAL, "--base %s: run %lld has no checkpoint in %s",
                      cc->l2m.base, run, path);
    if (!rc && crl_checkpoint_learner(blob, n, &sb, &sn, NULL, err) != CRL_OK)
        rc = crl_continual_checkpoint_learner(blob, n, &sb, &sn, err);
    if (!rc) rc = crl_l2m_base_parse(sb, sn, (int)task, b, err);
    free(blob);
    crl_store_close(st);
    return rc;
}

static int train_continual(crl_train_config *c, crl_continual_config *cc,
                           const opt_def *defs, int n, const char *db, int64_t resume,
                           int64_t *single_task_opt, int quiet, opt_strs *keep,
                           const char *const *log_train) {
    crl_err err = {0};
    int rc;
    if ((rc = crl_blas_init(1, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 1;
    }
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, resume ? 0 : 1, &store, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 1;
    }
    char status[16] = "";
    if (resume && !(rc = load_run_config(store, resume, defs, n, status, keep, &err)) &&
        strcmp(status, "finished") == 0)
        rc =
            crl_errf(&err, CRL_EINVAL, "run %lld is already finished", (long long)resume);
    if (resume && rc) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        crl_store_close(store);
        return rc == CRL_ENOTFOUND || rc == CRL_EINVAL ? 2 : 1;
    }
    /* Read after load_run_config: a resumed single run restores its position. */
    int single_task = (int)*single_task_opt;
    const crl_scenario *sc = crl_scenario_find(cc->scenario ? cc->scenario : "");
    if (!sc) {
        fprintf(stderr, "crl train: unknown scenario '%s' (see 'crl scenarios')\n",
                cc->scenario ? cc->scenario : "");
        crl_store_close(store);
        return 2;
    }
    if (c->threads <= 0) c->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    c->sac.threads = c->threads >= 2 ? 2 : 1;
    if ((cc->log_train_every = parse_log_train(*log_train)) < 0) {
        crl_store_close(store);
        return bad_log_train(*log_train);
    }
    cc->seed = c->seed;
    cc->eval_every = c->eval_every;
    cc->eval_episodes = c->eval_episodes;
    cc->sac = c->sac;
    crl_l2m_base base = {0};
    if (!strcmp(cc->method, "l2m")) {
        if (crl_l2m_kind(cc->l2m.modulator) < 0)
            rc = crl_errf(&err, CRL_EINVAL, "--modulator must be lora or ia3, got '%s'",
                          cc->l2m.modulator ? cc->l2m.modulator : "");
        if (rc || (rc = load_l2m_base(cc, db, &base, &err))) {
            fprintf(stderr, "crl train: %s\n", err.msg);
            crl_store_close(store);
            return cli_exit_code(rc) == 2 ? 2 : 1;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    progress_ctx pctx = {isatty(2), quiet, 0};

    /* single: one fresh run per scenario position (the forward-transfer
     * references); everything else: one run. */
    int single = strcmp(cc->method, "single") == 0;
    int p0 = single ? (single_task >= 0 ? single_task : 0) : 0;
    int p1 = single ? (single_task >= 0 ? single_task + 1 : sc->n_tasks) : 1;
    if (single && p0 >= sc->n_tasks) {
        fprintf(stderr, "crl train: --single-task %d: %s has %d tasks\n", p0, sc->name,
                sc->n_tasks);
        crl_store_close(store);
        return 2;
    }
    for (int p = p0; p < p1 && !g_stop; p++) {
        int64_t run_id = resume;
        cc->single_task = p;
        if (!resume) {
            /* The flag table points at *single_task_opt: set it to this run's
             * position so that the stored configuration names it, and a resume
             * finds it again. */
            if (single) *single_task_opt = p;
            /* Every stored flag fits (n <= TRAIN_MAX_OPTS), then the extras. */
            crl_kv kv[TRAIN_MAX_OPTS + 8];
            int nkv = opts_to_kv(defs, n, kv, TRAIN_MAX_OPTS);
            kv[nkv++] = (crl_kv){"blas_kernel", crl_blas_kernel(), 0};
            kv[nkv++] = (crl_kv){"crl_version", CRL_VERSION_STRING, 0};
            kv[nkv++] = (crl_kv){"mujoco_version", mj_versionString(), 0};
            /* The report's key for the budget (flag names use hyphens). */
            kv[nkv++] = (crl_kv){"steps_per_task", NULL, (double)cc->steps_per_task};
            *single_task_opt = single_task;
            /* The runs table's method is the report's row label: the l2m
             * variants get their own rows (l2m-oracle, l2m-ia3, ...), and so
             * does CSP with the paper's candidate rule (csp-paper); the
             * configuration keeps method = l2m / csp and the flags. */
            char label[32];
            const int is_l2m = !strcmp(cc->method, "l2m");
            snprintf(label, sizeof label, "%s%s%s%s", cc->method,
                     is_l2m && cc->l2m.oracle ? "-oracle" : "",
                     is_l2m && crl_l2m_kind(cc->l2m.modulator) == CRL_POOL_IA3 ? "-ia3"
                                                                               : "",
                     !strcmp(cc->method, "csp") && !cc->csp.prior_alphas ? "-paper" : "");
            if ((rc = crl_store_run_create(store, label, sc->name, c->seed, kv, nkv,
                                           &run_id, &err))) {
                fprintf(stderr, "crl train: %s\n", err.msg);
                crl_store_close(store);
                return 1;
            }
        } else if (single) {
            cc->single_task = single_task;
        }
        printf("run %lld\n", (long long)run_id);
        fflush(stdout);
        crl_continual_config run_cc = *cc; /* l2m: with the base loaded above */
        run_cc.l2m_base = base.params ? &base : NULL;
        rc = crl_continual_run(&run_cc, store, run_id, resume != 0, on_progress, &pctx,
                               &g_stop, &err);
        if (rc == CRL_EINTR) {
            fprintf(stderr, "crl train: run %lld %s\n", (long long)run_id, err.msg);
            crl_store_close(store);
            crl_l2m_base_free(&base);
            return 130;
        }
        if (rc) {
            fprintf(stderr, "crl train: run %lld failed: %s\n", (long long)run_id,
                    err.msg);
            crl_store_close(store);
            crl_l2m_base_free(&base);
            return cli_exit_code(rc) == 2 ? 2 : 1;
        }
        if (resume) break;
    }
    crl_store_close(store);
    crl_l2m_base_free(&base);
    return 0;
}

/* Whether run `id` of db is a single-env run (method "sac"). Any failure
 * says no: the continual path then reports it. */
static int resumed_env_run(const char *db, int64_t id) {
    crl_store *st = NULL;
    crl_run_info info;
    int yes = crl_store_open(db, 0, &st, NULL) == CRL_OK &&
              crl_store_run_get(st, id, &info, NULL, NULL) == CRL_OK &&
              strcmp(info.method, "sac") == 0;
    crl_store_close(st);
    return yes;
}

static int train_env(crl_train_config *cp, const opt_def *defs, int n, const char *db,
                     const char *xml_reward, const char *xml_target, int quiet,
                     int64_t resume);

/* The first of names that the command line gave (given[] from
 * opts_parse_given over defs), or NULL. */
static const char *given_flag(const opt_def *defs, int n, const unsigned char *given,
                              const char *const *names) {
    for (const char *const *nm = names; *nm; nm++)
        for (int i = 0; i < n; i++)
            if (given[i] && strcmp(defs[i].name, *nm) == 0) return *nm;
    return NULL;
}

/* Flags of one kind of run given to the other kind would be silently
 * ignored: refuse them with one line instead. */
static const char *const CONTINUAL_ONLY[] = {
    "scenario",         "method",          "steps-per-task",   "l2-coef",
    "ewc-coef",         "packnet-retrain", "csp-repeat-alpha", "csp-peaked",
    "csp-scored",       "csp-candidates",  "csp-val-steps",    "csp-epsilon",
    "csp-prior-alphas", "modulator",       "l2m-pool",         "l2m-rank",
    "l2m-scale",        "l2m-pull",        "l2m-oracle",       "base",
    "base-db",          "eval-fixed",      "single-task",      NULL};
static const char *const ENV_ONLY[] = {"env",       "env-xml",  "xml-reward",
                                       "xml-body",  "xml-site", "xml-target",
                                       "xml-steps", "steps",    NULL};

static int misplaced_flag(const opt_def *defs, int n, const unsigned char *given,
                          int continual) {
    const char *f = given_flag(defs, n, given, continual ? ENV_ONLY : CONTINUAL_ONLY);
    if (!f) return 0;
    if (continual)
        fprintf(stderr,
                "crl train: --%s does not apply to a continual run (--scenario or its "
                "--resume)%s\n",
                f, strcmp(f, "steps") == 0 ? "; use --steps-per-task" : "");
    else
        fprintf(stderr,
                "crl train: --%s applies only to continual runs (--scenario); this is a "
                "single-task run (--env, --env-xml or its --resume)\n",
                f);
    return 2;
}

int cmd_train(int argc, char **argv) {
    crl_train_config c;
    crl_train_config_default(&c);
    const char *db = NULL, *xml_reward = "forward", *xml_target = NULL;
    int quiet = 0;
    crl_continual_config cc;
    crl_continual_config_default(&cc);
    cc.scenario = NULL;
    int64_t resume = 0, single_task = -1;
    const char *log_train = "every:" CRL_STR(CRL_LOG_TRAIN_EVERY);
    opt_def defs[TRAIN_MAX_OPTS];
    const int n = train_defs(defs, &c, &cc, &db, &xml_reward, &xml_target, &quiet,
                             &resume, &single_task, &log_train);
    const char *usage = "--db FILE [--env TASK | --env-xml FILE] [--steps N] [options]";
    unsigned char given[TRAIN_MAX_OPTS];
    int rc = opts_parse_given("train", defs, n, argc, argv, usage, given);
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl train: --db FILE is required (see 'crl train --help')\n");
        return 2;
    }

    /* Checked before anything is created (a resumed run's stored value is
     * checked again once restored). */
    if (parse_log_train(log_train) < 0) return bad_log_train(log_train);
    c.log_train_every = parse_log_train(log_train);

    /* A resumed single-env run (method "sac") continues here; every other
     * resume goes through the continual runner, which reports unknown runs. */
    opt_strs keep = {0};
    const int env_resume = resume && resumed_env_run(db, resume);
    if (misplaced_flag(defs, n, given, !env_resume && (resume || cc.scenario))) return 2;
    if (env_resume) {
        crl_err err = {0};
        crl_store *store = NULL;
        char status[16] = "";
        rc = crl_store_open(db, 0, &store, &err);
        if (!rc) rc = load_run_config(store, resume, defs, n, status, &keep, &err);
        if (!rc && strcmp(status, "finished") == 0)
            rc = crl_errf(&err, CRL_EINVAL, "run %lld is already finished",
                          (long long)resume);
        crl_store_close(store);
        if (rc) {
            fprintf(stderr, "crl train: %s\n", err.msg);
            opts_strs_free(&keep);
            return rc == CRL_ENOTFOUND || rc == CRL_EINVAL ? 2 : 1;
        }
        /* The stored configuration names empty strings for unset flags. */
        if (c.env_xml && !*c.env_xml) c.env_xml = NULL;
        if (xml_target && !*xml_target) xml_target = NULL;
        if (parse_log_train(log_train) < 0) {
            opts_strs_free(&keep);
            return bad_log_train(log_train);
        }
        c.log_train_every = parse_log_train(log_train);
        c.resume = 1;
    } else if (resume || cc.scenario) {
        rc = train_continual(&c, &cc, defs, n, db, resume, &single_task, quiet, &keep,
                             &log_train);
        opts_strs_free(&keep);
        return rc;
    }
    rc = train_env(&c, defs, n, db, xml_reward, xml_target, quiet, resume);
    opts_strs_free(&keep);
    return rc;
}

/* One single-env run (--env or --env-xml), new or resumed (c->resume, run
 * `resume`). */
static int train_env(crl_train_config *cp, const opt_def *defs, int n, const char *db,
                     const char *xml_reward, const char *xml_target, int quiet,
                     int64_t resume) {
    crl_train_config c = *cp;
    int rc;
    crl_err err = {0};
    if (c.env_xml) {
        if (!strcmp(xml_reward, "forward")) {
            c.xml.reward = CRL_XML_REWARD_FORWARD;
        } else if (!strcmp(xml_reward, "reach")) {
            c.xml.reward = CRL_XML_REWARD_REACH;
            char tail;
            if (!xml_target || sscanf(xml_target, "%lf,%lf,%lf%c", &c.xml.target[0],
                                      &c.xml.target[1], &c.xml.target[2], &tail) != 3) {
                fprintf(stderr,
                        "crl train: --xml-reward reach needs --xml-target x,y,z\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "crl train: --xml-reward must be forward or reach, got '%s'\n",
                    xml_reward);
            return 2;
        }
    }
    crl_env_spec *spec = NULL;
    if ((rc = c.env_xml && *c.env_xml
                  ? crl_env_spec_create_xml(c.env_xml, &c.xml, &spec, &err)
                  : crl_env_spec_create(c.env, &spec, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 2;
    }
    /* The scenario column names the file; the full path is in config_json. */
    const char *env_label = c.env;
    if (c.env_xml) {
        const char *slash = strrchr(c.env_xml, '/');
        env_label = slash ? slash + 1 : c.env_xml;
    }
    int obs_dim = crl_env_obs_dim(spec), act_dim = crl_env_act_dim(spec);
    crl_env_spec_free(spec);

    /* crl's parallelism is its own (two update lanes); BLAS runs one thread
     * per lane. */
    if ((rc = crl_blas_init(1, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 1;
    }
    if (c.threads <= 0) c.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    c.sac.threads = c.threads >= 2 ? 2 : 1;
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 1, &store, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return cli_exit_code(rc) == 2 ? 1 : cli_exit_code(rc);
    }

    crl_kv kv[TRAIN_MAX_OPTS + 8]; /* every stored flag, then the extras */
    int nkv = opts_to_kv(defs, n, kv, TRAIN_MAX_OPTS);
    c.sac.obs_dim = obs_dim;
    c.sac.act_dim = act_dim;
    kv[nkv++] = (crl_kv){"obs_dim", NULL, obs_dim};
    kv[nkv++] = (crl_kv){"act_dim", NULL, act_dim};
    kv[nkv++] = (crl_kv){"target_entropy", NULL, crl_sac_target_entropy(&c.sac)};
    kv[nkv++] = (crl_kv){"update_lanes", NULL, c.sac.threads};
    kv[nkv++] = (crl_kv){"blas_kernel", crl_blas_kernel(), 0};
    kv[nkv++] = (crl_kv){"crl_version", CRL_VERSION_STRING, 0};
    kv[nkv++] = (crl_kv){"mujoco_version", mj_versionString(), 0};

    int64_t run_id = resume;
    if (!c.resume && (rc = crl_store_run_create(store, "sac", env_label, c.seed, kv, nkv,
                                                &run_id, &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        crl_store_close(store);
        return 1;
    }
    printf(c.resume ? "run %lld (resumed)\n" : "run %lld\n", (long long)run_id);
    fflush(stdout);
    if (!quiet)
        fprintf(stderr, "crl: OpenBLAS kernel %s, SAC update on %d thread%s\n",
                crl_blas_kernel(), c.sac.threads, c.sac.threads > 1 ? "s" : "");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    progress_ctx pctx = {isatty(2), quiet, 0};
    double t0 = crl_now();
    rc = crl_train_run(&c, store, run_id, on_progress, &pctx, &g_stop, &err);
    double wall = crl_now() - t0;
    crl_store_close(store);
    if (rc == CRL_EINTR) {
        fprintf(stderr, "crl train: run %lld %s; status 'interrupted'\n",
                (long long)run_id, err.msg);
        return 130;
    }
    if (rc) {
        fprintf(stderr, "crl train: run %lld failed: %s\n", (long long)run_id, err.msg);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "crl train: run %lld finished in %.1f s\n", (long long)run_id,
                wall);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *db = NULL;
    int64_t run = 0, task = -1;
    int episodes = 10, stochastic = 0;
    uint64_t seed = 12345;
    const opt_def ed[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id (see 'crl runs')", 0},
        {"task", OPT_I64, &task, -1, 1e6, "scenario position (default: every task)", 0},
        {"episodes", OPT_INT, &episodes, 1, 1000, "episodes per task", 0},
        {"seed", OPT_U64, &seed, 0, 9.0e18, "seed of the evaluation episodes", 0},
        {"stochastic", OPT_FLAG, &stochastic, 0, 0,
         "sample actions (default: deterministic)", 0},
    };
    int rc = opts_parse("eval", ed, (int)(sizeof ed / sizeof ed[0]), argc, argv,
                        "--db FILE --run ID [--task T] [--episodes N] [--stochastic]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db || !run) {
        fprintf(stderr, "crl eval: --db FILE and --run ID are required\n");
        return 2;
    }
    /* The run's own configuration, restored through the train flag table. */
    crl_train_config c;
    crl_train_config_default(&c);
    crl_continual_config cc;
    crl_continual_config_default(&cc);
    cc.scenario = NULL;
    const char *tdb = NULL, *xml_reward = "forward", *xml_target = NULL;
    int quiet = 0;
    int64_t resume = 0, single_task = -1;
    const char *log_train = NULL;
    opt_def defs[TRAIN_MAX_OPTS];
    const int n = train_defs(defs, &c, &cc, &tdb, &xml_reward, &xml_target, &quiet,
                             &resume, &single_task, &log_train);
    crl_err err = {0};
    crl_store *store = NULL;
    opt_strs keep = {0};
    if ((rc = crl_blas_init(1, &err)) || (rc = crl_store_open(db, 0, &store, &err)) ||
        (rc = load_run_config(store, run, defs, n, NULL, &keep, &err))) {
        fprintf(stderr, "crl eval: %s\n", err.msg);
        crl_store_close(store);
        opts_strs_free(&keep);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    c.sac.threads = 1;
    double ret = 0, sr = 0;
    /* A single-env run (crl train --env) stores an empty scenario. */
    if (!cc.scenario || !*cc.scenario) {
        crl_env_spec *spec = NULL;
        crl_sac *sac = NULL;
        void *blob = NULL;
        size_t bn = 0, sn = 0;
        const void *sb = NULL;
        int tidx;
        int64_t step;
        if (!(rc = c.env_xml && *c.env_xml
                       ? crl_env_spec_create_xml(c.env_xml, &c.xml, &spec, &err)
                       : crl_env_spec_create(c.env, &spec, &err))) {
            c.sac.obs_dim = crl_env_obs_dim(spec);
            c.sac.act_dim = crl_env_act_dim(spec);
            c.sac.n_tasks = 1;
            c.sac.max_act_batch = episodes;
        }
        if (!rc) rc = crl_sac_create(&c.sac, 0, &sac, &err);
        if (!rc)
            rc = crl_store_checkpoint_latest(store, run, &tidx, &step, &blob, &bn, &err);
        if (!rc) rc = crl_checkpoint_learner(blob, bn, &sb, &sn, NULL, &err);
        if (!rc) rc = crl_sac_load(sac, sb, sn, &err);
        if (!rc)
            rc = crl_evaluate(sac, spec, 0, episodes, !stochastic, seed, &ret, &sr, &err);
        if (!rc)
            printf("task 0 %s: mean_return %.3f success_rate %.3f (%d %s episodes, step "
                   "%lld)\n",
                   crl_env_spec_name(spec), ret, sr, episodes,
                   stochastic ? "stochastic" : "deterministic", (long long)step);
        free(blob);
        crl_sac_free(sac);
        if (spec) crl_env_spec_free(spec);
    } else {
        const crl_scenario *sc = crl_scenario_find(cc.scenario);
        if (!sc) {
            fprintf(stderr, "crl eval: run %lld names unknown scenario '%s'\n",
                    (long long)run, cc.scenario);
            crl_store_close(store);
            opts_strs_free(&keep);
            return 1;
        }
        int t0 = task >= 0 ? (int)task : 0, t1 = task >= 0 ? (int)task + 1 : sc->n_tasks;
        if (!strcmp(cc.method, "single")) t0 = (int)single_task, t1 = t0 + 1;
        cc.single_task = (int)single_task;
        cc.sac = c.sac;
        cc.seed = c.seed;
        crl_l2m_base base = {0};
        if (!strcmp(cc.method, "l2m")) {
            rc = load_l2m_base(&cc, db, &base, &err);
            cc.l2m_base = &base;
        }
        for (int t = t0; !rc && t < t1; t++) {
            rc = crl_continual_eval(&cc, store, run, t, episodes, !stochastic, seed, &ret,
                                    &sr, &err);
            if (!rc)
                printf(
                    "task %d %s: mean_return %.3f success_rate %.3f (%d %s episodes)\n",
                    t, sc->tasks[t], ret, sr, episodes,
                    stochastic ? "stochastic" : "deterministic");
        }
        crl_l2m_base_free(&base);
    }
    crl_store_close(store);
    opts_strs_free(&keep);
    if (rc) {
        fprintf(stderr, "crl eval: %s\n", err.msg);
        return rc == CRL_EINVAL ? 2 : 1;
    }
    return 0;
}
