/* crl train: one SAC run, recorded in the store. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/blas.h"
#include "crl/continual.h"
#include "crl/methods.h"
#include "crl/run.h"
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
    int offline; /* steps are behaviour-cloning updates */
    int env;     /* a single-env run */
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
    /* A task without a success notion (locomotion) shows its return alone. */
    if (isfinite(p->recent_return) && p->has_success)
        snprintf(ret, sizeof ret, "return %.1f, success %.2f", p->recent_return,
                 p->recent_success);
    else if (isfinite(p->recent_return))
        snprintf(ret, sizeof ret, "return %.1f", p->recent_return);
    const char *unit = ctx->offline ? "update" : "step";
    /* The task's 0-based scenario position, its name, then how far along
     * the scenario is (docs/cli.md). */
    fprintf(stderr, "%stask %d %s (%d/%d) | %s %lld/%lld | %.0f %ss/s | %s | ETA %s%s",
            ctx->tty ? "\r\033[K" : "", p->task, p->task_name, p->task + 1, p->n_tasks,
            unit, (long long)p->step, (long long)p->total, p->steps_per_s, unit, ret, eta,
            ctx->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* One line per evaluation of a task (the tasks trained so far), and the
 * runner's warnings, on stderr beside the progress line (which a terminal
 * redraws below them). */
static void on_note(const crl_note *n, void *vctx) {
    progress_ctx *ctx = vctx;
    if (ctx->quiet && n->kind == CRL_NOTE_EVAL) return;
    const char *unit = ctx->offline ? "update" : "step";
    const char *clear = ctx->tty ? "\r\033[K" : "";
    if (n->kind == CRL_NOTE_WARNING) {
        fprintf(stderr, "%scrl train: warning: task %d %s (%d/%d), %s %lld: %s\n", clear,
                n->task, n->task_name, n->task + 1, n->n_tasks, unit, (long long)n->step,
                n->message);
    } else {
        /* The change since this task's previous evaluation. */
        char diff[48] = "first evaluation";
        if (isfinite(n->value) && isfinite(n->prev))
            snprintf(diff, sizeof diff, n->has_success ? "%+.2f" : "%+.1f",
                     n->value - n->prev);
        fprintf(stderr,
                n->has_success
                    ? "%seval task %d %s (%d/%d) | %s %lld | success %.2f (%s)\n"
                    : "%seval task %d %s (%d/%d) | %s %lld | return %.1f (%s)\n",
                clear, n->task, n->task_name, n->task + 1, n->n_tasks, unit,
                (long long)n->step, n->value, diff);
    }
    fflush(stderr);
}

#define TRAIN_MAX_OPTS 96

/* --tag's values (the one repeatable flag, OPT_STRLIST). */
static opt_list g_tags;

/* The flag table of `crl train`: each flag sets a field of the run's
 * configuration (crl_run_config, whose stored keys the flags are named
 * after), or one of the command's own variables. */
static int train_defs(opt_def *defs, crl_run_config *r, const char **db, int *quiet,
                      int64_t *resume, int64_t *updates, int *dry) {
    crl_sac_config *s = &r->sac;
    const opt_def tmp[] = {
        {"task and schedule", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"env", OPT_STR, &r->env, 0, 0, "task to train on (see 'crl tasks')", 1},
        {"scenario", OPT_STR, &r->scenario, 0, 0,
         "continual run through a scenario (see 'crl scenarios')", 1},
        {"method", OPT_STR, &r->method, 0, 0,
         "with --scenario: a method (listed below; default the first)", 1},
        {"steps", OPT_I64, &r->steps, 1, 1e12, "env steps to train", 1},
        {"steps-per-task", OPT_I64, &r->steps_per_task, 1, 1e12,
         "with --scenario: env steps per task", 1},
        {"single-task", OPT_INT, &r->single_task, -1, 1e6,
         "with --method single: only this scenario position (default: all)", 1},
        {"seed", OPT_U64, &r->seed, 0, 9.0e18, "run seed", 1},
        {"eval-every", OPT_I64, &r->eval_every, 1, 1e12, "env steps between evaluations",
         1},
        {"eval-episodes", OPT_INT, &r->eval_episodes, 0, 1000,
         "stochastic episodes per evaluation (+1 deterministic)", 1},
        {"eval-fixed", OPT_FLAG, &r->eval_fixed, 0, 0,
         "scenarios: every evaluation of a task runs the same episodes (initial states "
         "and action noise), so an unchanged policy scores exactly the same",
         1},
        {"resume", OPT_I64, resume, 1, 9e18,
         "continue an interrupted continual run from its last checkpoint", 0},
        {"threads", OPT_INT, &r->threads, 0, 256,
         "compute threads (0: one per core; the update uses up to 2)", 1},
        {"offline (behaviour cloning)", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"offline", OPT_STR, &r->offline, 0, 0,
         "train offline by behaviour cloning on a dataset file ('crl dataset'); "
         "evaluation stays online (docs/offline.md)",
         1},
        {"updates-per-task", OPT_I64, updates, 1, 1e12,
         "with --offline: behaviour-cloning updates per task (default 100000); "
         "--eval-every then counts updates",
         1},
        {"bc-loss", OPT_STR, &r->bc_loss, 0, 0,
         "with --offline: nll (the expert action's negative log-likelihood) or mse "
         "(on tanh(mean))",
         1},
        {"continual methods", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"l2-coef", OPT_DOUBLE, &r->l2_coef, 0, 1e12, "l2 penalty coefficient", 1},
        {"ewc-coef", OPT_DOUBLE, &r->ewc_coef, 0, 1e12, "ewc penalty coefficient", 1},
        {"packnet-retrain", OPT_DOUBLE, &r->packnet_retrain, 0, 10,
         "packnet retraining updates after a prune, as a fraction of steps per task", 1},
        {"CSP", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"csp-repeat-alpha", OPT_INT, &r->csp.repeat_alpha, 1, 1e9,
         "csp: env steps between draws of the collection alpha", 1},
        {"csp-peaked", OPT_INT, &r->csp.peaked, 0, 1,
         "csp: 1 draws new-subspace alphas from Dirichlet(1,..,1,n^2), 0 flat", 1},
        {"csp-scored", OPT_INT, &r->csp.n_scored, 1, 1e7,
         "csp: alphas scored by the critic per subspace at a task end", 1},
        {"csp-candidates", OPT_INT, &r->csp.n_candidates, 2, 1e5,
         "csp: best-scored alphas rolled out at a task end (half new, half old)", 1},
        {"csp-val-steps", OPT_INT, &r->csp.val_steps, 0, 1e9,
         "csp: env steps per validation rollout (0: one episode)", 1},
        {"csp-epsilon", OPT_DOUBLE, &r->csp.epsilon, 0, 1e6,
         "csp: keep a new anchor iff best_new > best_old + epsilon |best_old|", 1},
        {"csp-prior-alphas", OPT_INT, &r->csp.prior_alphas, 0, 1,
         "csp: 1 also scores the alphas of earlier tasks as old candidates (label "
         "csp-prior), 0 the paper's rule",
         1},
        {"csp-q-batches", OPT_INT, &r->csp.q_batches, 1, 1e6,
         "csp: replay batches the shortlisted alphas' mean Q is averaged over", 1},
        {"csp-shortlist", OPT_INT, &r->csp.shortlist, 1, 1e6,
         "csp: best-screened alphas per subspace re-scored over csp-q-batches", 1},
        {"csp-rollouts", OPT_INT, &r->csp.rollouts, 0, 1e6,
         "csp: rollouts per finalist (0: 10 when success decides, 3 on returns)", 1},
        {"csp-criterion", OPT_STR, &r->csp.criterion, 0, 0,
         "csp: auto (success on manipulation, returns break ties) or return", 1},
        {"csp-check", OPT_INT, &r->csp.check, 0, 1e6,
         "csp: extra rollouts per finalist on other seeds to measure decision "
         "accuracy (outside the budget)",
         1},
        {"L2M", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"modulator", OPT_STR, &r->l2m.modulator, 0, 0, "l2m: lora or ia3", 1},
        {"l2m-pool", OPT_INT, &r->l2m.pool, 1, 4096, "l2m: modulators in the pool", 1},
        {"l2m-rank", OPT_INT, &r->l2m.rank, 1, 4096, "l2m: LoRA rank", 1},
        {"l2m-scale", OPT_FLOAT, &r->l2m.scale, 0, 1e6, "l2m: LoRA scale", 1},
        {"l2m-pull", OPT_FLOAT, &r->l2m.pull, 0, 1e6,
         "l2m: key pull coefficient (loss - c mean cos(query, key))", 1},
        {"l2m-oracle", OPT_FLAG, &r->l2m.oracle, 0, 0,
         "l2m: split the pool per task by task id (the oracle variant)", 1},
        {"l2m-router", OPT_STR, &r->l2m.router, 0, 0,
         "l2m: router kind: l2m (keys + pull + usage weight), cos, oracle, arrow "
         "(zero-shot "
         "from the LoRA updates' singular vectors), l2r (a classifier trained on stored "
         "queries), soft (top-k merged, SMEAR)",
         1},
        {"l2m-weights", OPT_STR, &r->l2m.weights, 0, 0,
         "l2m: usage weights: frozen (the reference: from the counts at each task "
         "start) or live (re-read after every update)",
         1},
        {"l2m-collect", OPT_STR, &r->l2m.collect, 0, 0,
         "l2m: collection routes: eval (plain cosine, the reference) or train (the "
         "training route)",
         1},
        {"l2m-history", OPT_INT, &r->l2m.history, 1, CRL_L2M_MAX_HISTORY,
         "l2m: the routing query averages the base embeddings of the episode's last H "
         "observations (1: the current one)",
         1},
        {"l2m-hold", OPT_FLAG, &r->l2m.hold, 0, 0,
         "l2m: acting keeps the modulator chosen at an episode's step H until its end",
         1},
        {"l2m-soft-k", OPT_INT, &r->l2m.soft_k, 1, 4096,
         "l2m soft router: modulators merged per row (top k, 1..pool; default 2)", 1},
        {"l2m-soft-temp", OPT_FLOAT, &r->l2m.soft_temp, 0, 1e6,
         "l2m soft router: softmax temperature of the top-k scores (> 0; default 1)", 1},
        {"base", OPT_STR, &r->l2m.base, 0, 0,
         "l2m: the frozen base, RUN[:TASK] (a stored learner's actor; TASK = its head, "
         "default 0)",
         1},
        {"base-db", OPT_STR, &r->l2m.base_db, 0, 0,
         "l2m: store holding the --base run (default: --db)", 1},
        {"SAC", OPT_GROUP, NULL, 0, 0, NULL, 0},
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
        {"your own MJCF (--env-xml)", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"env-xml", OPT_STR, &r->env_xml, 0, 0, "your own MJCF file instead of --task",
         1},
        {"xml-reward", OPT_STR, &r->xml_reward, 0, 0,
         "with --env-xml: forward (x-velocity of --xml-body) or reach", 1},
        {"xml-body", OPT_STR, &r->xml_body, 0, 0, "with --env-xml: body for forward", 1},
        {"xml-site", OPT_STR, &r->xml_site, 0, 0, "with --env-xml: site for reach", 1},
        {"xml-target", OPT_STR, &r->xml_target, 0, 0,
         "with --env-xml: reach target x,y,z", 1},
        {"xml-steps", OPT_INT, &r->xml_steps, 0, 1e8,
         "with --env-xml: episode length (0: 1000)", 1},
        {"output", OPT_GROUP, NULL, 0, 0, NULL, 0},
        {"db", OPT_STR, db, 0, 0, "SQLite run store (created if missing)", 0},
        {"name", OPT_STR, &r->name, 0, 0, "the run's name, shown by 'crl runs'", 0},
        {"tag", OPT_STRLIST, &g_tags, 0, 0, "a tag of the run, for 'crl runs --tag'", 0},
        {"diag-every", OPT_I64, &r->diag_every, 0, 1e12,
         "updates between rows of training diagnostics (diag/* metrics, 'crl plot --kind "
         "diagnostics'; 0: none)",
         1},
        {"log-train-episodes", OPT_STR, &r->log_train, 0, 0,
         "training episodes kept for 'crl replay': every:N (the 1st, N+1th, ... of "
         "a task) or none; evaluation episodes are always kept",
         1},
        {"quiet", OPT_FLAG, quiet, 0, 0, "no progress line", 0},
        {"dry-run", OPT_FLAG, dry, 0, 0,
         "print the resolved configuration and the run's estimated wall time on this "
         "machine (a 2-second calibration); write nothing",
         0},
    };
    const int n = (int)(sizeof tmp / sizeof tmp[0]);
    _Static_assert(sizeof tmp / sizeof tmp[0] <= TRAIN_MAX_OPTS, "raise TRAIN_MAX_OPTS");
    memcpy(defs, tmp, sizeof tmp);
    return n;
}

static int bad_log_train(const char *s) {
    fprintf(stderr,
            "crl train: --log-train-episodes must be every:N (N >= 1) or none, got "
            "'%s'\n",
            s);
    return 2;
}

/* Train (or resume) through the library's one path (crl_run_train), with
 * the command's progress line and messages. env: a single-env run. */
static void on_started(int64_t run_id, int resumed, const crl_run_config *c, void *vctx) {
    progress_ctx *ctx = vctx;
    ctx->offline = crl_run_config_is_offline(c); /* a resumed run's own */
    printf(ctx->env && resumed ? "run %lld (resumed)\n" : "run %lld\n",
           (long long)run_id);
    fflush(stdout);
    if (ctx->env && !ctx->quiet) {
        const int lanes = c->threads >= 2 ? 2 : 1;
        fprintf(stderr, "crl: OpenBLAS kernel %s, SAC update on %d thread%s\n",
                crl_blas_kernel(), lanes, lanes > 1 ? "s" : "");
    }
}

static int train_run(crl_run_config *r, const char *db, int64_t resume, int quiet,
                     int env) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    progress_ctx pctx = {isatty(2), quiet, 0, crl_run_config_is_offline(r), env};
    crl_run_hooks hooks = {on_progress, on_started, &pctx, &g_stop, on_note};
    crl_err err = {0};
    int64_t id = 0;
    const double t0 = crl_now();
    int rc = crl_run_train(db, r, resume, &hooks, &id, &err);
    if (rc == CRL_EINTR && id) {
        if (env)
            fprintf(stderr, "crl train: run %lld %s; status 'interrupted'\n",
                    (long long)id, err.msg);
        else
            fprintf(stderr, "crl train: run %lld %s (--resume %lld)\n", (long long)id,
                    err.msg, (long long)id);
        return 130;
    }
    if (rc == CRL_EINTR) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        return 130;
    }
    if (rc) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        /* Before a run: a bad configuration or run id is a usage error. */
        if (!id) return rc == CRL_EINVAL || rc == CRL_ENOTFOUND ? 2 : 1;
        return !env && rc == CRL_EINVAL ? 2 : 1;
    }
    if (env && !quiet)
        fprintf(stderr, "crl train: run %lld finished in %.1f s\n", (long long)id,
                crl_now() - t0);
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

/* --env-xml's reward flags, refused with the flags' names. */
static int xml_flags(const crl_run_config *r) {
    if (!r->env_xml || !*r->env_xml) return 0;
    const char *reward = r->xml_reward ? r->xml_reward : "forward";
    if (!strcmp(reward, "reach")) {
        double x[3];
        char tail;
        if (!r->xml_target ||
            sscanf(r->xml_target, "%lf,%lf,%lf%c", &x[0], &x[1], &x[2], &tail) != 3) {
            fprintf(stderr, "crl train: --xml-reward reach needs --xml-target x,y,z\n");
            return 2;
        }
    } else if (strcmp(reward, "forward") != 0) {
        fprintf(stderr, "crl train: --xml-reward must be forward or reach, got '%s'\n",
                reward);
        return 2;
    }
    return 0;
}

/* The first of names that the command line gave (given[] from
 * opts_parse_given over defs), or NULL. */
static const char *given_flag(const opt_def *defs, int n, const unsigned char *given,
                              const char *const *names) {
    for (const char *const *nm = names; *nm; nm++)
        for (int i = 0; i < n; i++)
            if (given[i] && strcmp(defs[i].name, *nm) == 0) return *nm;
    return NULL;
}

/* Flags of one kind of run given to the other kind, of another method, or
 * conflicting, would be silently ignored: refused with one line instead
 * (crl_run_config_check_given, the library's rule that crl.train shares). */
static int misplaced_flag(const crl_run_config *r, const opt_def *defs, int n,
                          const unsigned char *given, int continual) {
    const char *keys[TRAIN_MAX_OPTS];
    int nk = 0;
    for (int i = 0; i < n; i++)
        if (given[i]) keys[nk++] = defs[i].name;
    crl_err err = {0};
    if (crl_run_config_check_given(r, keys, nk, continual, 0, &err) == CRL_OK) return 0;
    fprintf(stderr, "crl train: %s\n", err.msg);
    return 2;
}

/* --offline: --updates-per-task is the budget (steps_per_task counts
 * updates), --bc-loss applies, and --task NAME becomes the one-task run of
 * the first scenario that has TASK (method single). Flags of offline runs
 * without --offline, and online-only flags with it, are refused. */
static int offline_flags(const opt_def *defs, int n, const unsigned char *given,
                         crl_run_config *r, int64_t updates, int64_t resume) {
    static const char *const OFFLINE_ONLY[] = {"updates-per-task", "bc-loss", NULL};
    static const char *const ONLINE_ONLY[] = {
        "steps-per-task", "start-steps", "update-after",
        "update-every",   "buffer-size", "log-train-episodes",
        "env-xml",        "steps",       NULL};
    const int offline = r->offline && *r->offline;
    const char *f = given_flag(defs, n, given, offline ? ONLINE_ONLY : OFFLINE_ONLY);
    if (f) {
        fprintf(
            stderr,
            offline ? "crl train: --%s does not apply to an offline run%s\n"
                    : "crl train: --%s applies only with --offline DATA.db%s\n",
            f, offline && !strcmp(f, "steps-per-task") ? "; use --updates-per-task" : "");
        return 2;
    }
    if (!offline) return 0;
    if (resume) {
        fprintf(stderr,
                "crl train: --offline does not apply to --resume (the run keeps its "
                "own dataset)\n");
        return 2;
    }
    r->steps_per_task = updates > 0 ? updates : 100000;
    /* Stored absolute, so that a resume from another directory finds it. */
    static char abs_path[PATH_MAX];
    if (realpath(r->offline, abs_path)) r->offline = abs_path;
    if (crl_bc_loss_kind(r->bc_loss) < 0) {
        fprintf(stderr, "crl train: --bc-loss must be nll or mse, got '%s'\n",
                r->bc_loss);
        return 2;
    }
    if (!r->scenario && given_flag(defs, n, given, (const char *const[]){"env", NULL})) {
        const crl_scenario *list;
        const int ns = crl_scenario_list(&list);
        for (int i = 0; i < ns && !r->scenario; i++)
            for (int p = 0; p < list[i].n_tasks; p++)
                if (!strcmp(list[i].tasks[p], r->env)) {
                    r->scenario = list[i].name;
                    r->method = "single";
                    r->single_task = p;
                    break;
                }
        if (!r->scenario) {
            fprintf(
                stderr,
                "crl train: --offline --task %s: the task is in no scenario (see 'crl "
                "scenarios')\n",
                r->env);
            return 2;
        }
        r->env = "pendulum"; /* the default: a scenario run names no env */
    } else if (!r->scenario) {
        fprintf(stderr, "crl train: --offline needs --scenario NAME or --task NAME\n");
        return 2;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    crl_run_config r;
    crl_run_config_default(&r);
    r.scenario = NULL;
    const char *db = NULL;
    int quiet = 0;
    int64_t resume = 0, updates = 0;
    int dry = 0;
    opt_def defs[TRAIN_MAX_OPTS];
    const int n = train_defs(defs, &r, &db, &quiet, &resume, &updates, &dry);
    const char *usage = "--db FILE [--task NAME | --env-xml FILE] [--steps N] [options]";
    unsigned char given[TRAIN_MAX_OPTS];
    int rc = opts_parse_given("train", defs, n, argc, argv, usage, given);
    if (rc == 1) {
        printf("\nmethods (--method):\n");
        for (int i = 0; i < crl_method_count(); i++)
            printf("  %-22s %s\n", crl_method_at(i)->name, crl_method_at(i)->description);
    }
    if (rc) return rc == 1 ? 0 : rc;
    if (!db && !dry) {
        fprintf(stderr, "crl train: --db FILE is required (see 'crl train --help')\n");
        return 2;
    }
    if (dry && resume) {
        fprintf(stderr,
                "crl train: --dry-run estimates a new run; it takes no --resume\n");
        return 2;
    }

    if ((rc = offline_flags(defs, n, given, &r, updates, resume))) return rc;

    /* Labels are a new run's (docs/tracking.md): checked before anything
     * is created. */
    r.tags = g_tags.v;
    r.n_tags = g_tags.n;
    if (resume && (r.name || r.n_tags)) {
        fprintf(stderr,
                "crl train: --%s does not apply to --resume (the run keeps its "
                "name and tags)\n",
                r.name ? "name" : "tag");
        return 2;
    }
    crl_err lerr = {0};
    if (crl_store_run_labels_check(r.name, r.tags, r.n_tags, &lerr)) {
        fprintf(stderr, "crl train: %s\n", lerr.msg);
        return 2;
    }

    /* Checked before anything is created (a resumed run's stored value is
     * checked again once restored). */
    if (crl_run_log_train_every(r.log_train) < 0) return bad_log_train(r.log_train);

    /* A resumed single-env run (method "sac") continues here; every other
     * resume goes through the continual runner, which reports unknown runs. */
    const int env_resume = resume && resumed_env_run(db, resume);
    for (int i = 0; i < n && r.offline && *r.offline; i++)
        if (!strcmp(defs[i].name, "env")) given[i] = 0; /* mapped to a scenario */
    if (misplaced_flag(&r, defs, n, given, !env_resume && (resume || r.scenario)))
        return 2;
    const int env = env_resume || (!resume && !r.scenario);
    if (env && !resume && (rc = xml_flags(&r))) return rc;
    if (dry) {
        rc = cli_dry_run(&r);
        crl_run_config_free(&r);
        return rc;
    }
    rc = train_run(&r, db, resume, quiet, env);
    crl_run_config_free(&r);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *db = NULL, *task_arg = NULL;
    int64_t run = 0;
    int task = -1;
    int episodes = 10, stochastic = 0, deterministic = 0;
    uint64_t seed = 12345;
    const opt_def ed[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id (see 'crl runs')", 0},
        {"task", OPT_STR, &task_arg, 0, 0,
         "a task of the run's scenario: its name or 0-based position (default: every "
         "task)",
         0},
        {"episodes", OPT_INT, &episodes, 1, 1000, "episodes per task", 0},
        {"seed", OPT_U64, &seed, 0, 9.0e18, "seed of the evaluation episodes", 0},
        {"stochastic", OPT_FLAG, &stochastic, 0, 0,
         "sample actions (the default: Continual World scores tasks on stochastic "
         "episodes)",
         0},
        {"deterministic", OPT_FLAG, &deterministic, 0, 0, "act with the mean action", 0},
    };
    int rc = opts_parse("eval", ed, (int)(sizeof ed / sizeof ed[0]), argc, argv,
                        "--db FILE --run ID [--task NAME|POS] [--episodes N] "
                        "[--deterministic]");
    if (rc) return rc == 1 ? 0 : rc;
    if (stochastic && deterministic) {
        fprintf(stderr,
                "crl eval: --stochastic and --deterministic exclude each other\n");
        return 2;
    }
    stochastic = !deterministic;
    if (!db || !run) {
        fprintf(stderr, "crl eval: --db FILE and --run ID are required\n");
        return 2;
    }
    /* The run's own configuration. */
    crl_run_config r;
    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_blas_init(1, &err)) || (rc = crl_store_open(db, 0, &store, &err)) ||
        (rc = crl_run_config_load(store, run, &r, NULL, &err))) {
        fprintf(stderr, "crl eval: %s\n", err.msg);
        crl_store_close(store);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    double ret = 0, sr = 0;
    /* A single-env run (crl train --task) stores an empty scenario: its one
     * task is position 0. */
    const crl_scenario *sc =
        crl_run_config_is_scenario(&r) ? crl_scenario_find(r.scenario) : NULL;
    if (crl_run_config_is_scenario(&r) && !sc) {
        fprintf(stderr, "crl eval: run %lld names unknown scenario '%s'\n",
                (long long)run, r.scenario);
        crl_store_close(store);
        crl_run_config_free(&r);
        return 1;
    }
    {
        const char *one[1] = {r.env ? r.env : r.env_xml ? r.env_xml : "?"};
        char label[64];
        snprintf(label, sizeof label, "run %lld", (long long)run);
        if ((rc = opts_task_pos("eval", task_arg, sc ? sc->name : label,
                                sc ? sc->n_tasks : 1, sc ? sc->tasks : one, &task))) {
            crl_store_close(store);
            crl_run_config_free(&r);
            return rc;
        }
    }
    if (!sc) {
        crl_train_config c;
        crl_env_spec *spec = NULL;
        crl_sac *sac = NULL;
        void *blob = NULL;
        size_t bn = 0, sn = 0;
        const void *sb = NULL;
        int tidx;
        int64_t step;
        if (!(rc = crl_run_train_config(&r, &c, &err)) &&
            !(rc = c.env_xml ? crl_env_spec_create_xml(c.env_xml, &c.xml, &spec, &err)
                             : crl_env_spec_create(c.env, &spec, &err))) {
            c.sac.threads = 1;
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
        int t0 = task >= 0 ? task : 0, t1 = task >= 0 ? task + 1 : sc->n_tasks;
        const crl_method *meth = crl_method_find(r.method);
        const unsigned mflags = meth ? meth->impl->flags : 0;
        if (mflags & CRL_METHOD_ONE_TASK) t0 = r.single_task, t1 = t0 + 1;
        crl_continual_config cc;
        rc = crl_run_continual_config(&r, &cc, &err);
        cc.sac.threads = 1;
        crl_l2m_base base = {0};
        if (!rc && (mflags & CRL_METHOD_L2M_BASE)) {
            rc = crl_run_l2m_base(&cc, db, store, &base, &err);
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
    crl_run_config_free(&r);
    if (rc) {
        fprintf(stderr, "crl eval: %s\n", err.msg);
        return rc == CRL_EINVAL ? 2 : 1;
    }
    return 0;
}
