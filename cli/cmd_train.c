/* crl train: one SAC run, recorded in the store. */
#include <math.h>
#include <mujoco/mujoco.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/blas.h"
#include "crl/runner.h"

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

static void fmt_eta(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "--");
    else if (s < 120)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 7200)
        snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else
        snprintf(buf, n, "%.0fh%02.0fm", floor(s / 3600), fmod(floor(s / 60), 60));
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
    fmt_eta(p->eta_s, eta, sizeof eta);
    if (isfinite(p->recent_return))
        snprintf(ret, sizeof ret, "return %.1f, success %.2f", p->recent_return,
                 p->recent_success);
    fprintf(stderr, "%stask %d/%d %s | step %lld/%lld | %.0f steps/s | %s | ETA %s%s",
            ctx->tty ? "\r\033[K" : "", p->task + 1, p->n_tasks, p->task_name,
            (long long)p->step, (long long)p->total, p->steps_per_s, ret, eta,
            ctx->tty && !final ? "" : "\n");
    fflush(stderr);
}

int cmd_train(int argc, char **argv) {
    crl_train_config c;
    crl_train_config_default(&c);
    const char *db = NULL, *xml_reward = "forward", *xml_target = NULL;
    int quiet = 0;
    crl_sac_config *s = &c.sac;
    const opt_def defs[] = {
        {"env", OPT_STR, &c.env, 0, 0, "task to train on (see 'crl tasks')", 1},
        {"env-xml", OPT_STR, &c.env_xml, 0, 0, "your own MJCF file instead of --env", 1},
        {"xml-reward", OPT_STR, &xml_reward, 0, 0,
         "with --env-xml: forward (x-velocity of --xml-body) or reach", 1},
        {"xml-body", OPT_STR, &c.xml.body, 0, 0, "with --env-xml: body for forward", 1},
        {"xml-site", OPT_STR, &c.xml.site, 0, 0, "with --env-xml: site for reach", 1},
        {"xml-target", OPT_STR, &xml_target, 0, 0, "with --env-xml: reach target x,y,z",
         1},
        {"xml-steps", OPT_INT, &c.xml.max_steps, 0, 1e8,
         "with --env-xml: episode length (0: 1000)", 1},
        {"seed", OPT_U64, &c.seed, 0, 9.0e18, "run seed", 1},
        {"steps", OPT_I64, &c.steps, 1, 1e12, "env steps to train", 1},
        {"db", OPT_STR, &db, 0, 0, "SQLite run store (created if missing)", 0},
        {"eval-every", OPT_I64, &c.eval_every, 1, 1e12, "env steps between evaluations",
         1},
        {"eval-episodes", OPT_INT, &c.eval_episodes, 0, 1000,
         "stochastic episodes per evaluation (+1 deterministic)", 1},
        {"threads", OPT_INT, &c.threads, 0, 256,
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
        {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress line", 0},
    };
    const int n = (int)(sizeof defs / sizeof defs[0]);
    const char *usage = "--db FILE [--env TASK | --env-xml FILE] [--steps N] [options]";
    int rc = opts_parse("train", defs, n, argc, argv, usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl train: --db FILE is required (see 'crl train --help')\n");
        return 2;
    }

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
    if ((rc = c.env_xml ? crl_env_spec_create_xml(c.env_xml, &c.xml, &spec, &err)
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

    crl_kv kv[64];
    int nkv = opts_to_kv(defs, n, kv, 48);
    c.sac.obs_dim = obs_dim;
    c.sac.act_dim = act_dim;
    kv[nkv++] = (crl_kv){"obs_dim", NULL, obs_dim};
    kv[nkv++] = (crl_kv){"act_dim", NULL, act_dim};
    kv[nkv++] = (crl_kv){"target_entropy", NULL, crl_sac_target_entropy(&c.sac)};
    kv[nkv++] = (crl_kv){"update_lanes", NULL, c.sac.threads};
    kv[nkv++] = (crl_kv){"blas_kernel", crl_blas_kernel(), 0};
    kv[nkv++] = (crl_kv){"crl_version", CRL_VERSION_STRING, 0};
    kv[nkv++] = (crl_kv){"mujoco_version", mj_versionString(), 0};

    int64_t run_id = 0;
    if ((rc = crl_store_run_create(store, "sac", env_label, c.seed, kv, nkv, &run_id,
                                   &err))) {
        fprintf(stderr, "crl train: %s\n", err.msg);
        crl_store_close(store);
        return 1;
    }
    printf("run %lld\n", (long long)run_id);
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
