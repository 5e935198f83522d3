/* The run configuration: one table of keys drives the encoder, the decoder
 * and the range checks, so the stored format (docs/schema.md) is written
 * down once. The keys are the run-config format's; the command line happens
 * to spell its flags the same way, but nothing here knows about flags. */
#include "crl/run.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crl/blas.h"
#include "crl/scenario.h"

typedef enum { K_STR, K_INT, K_I64, K_U64, K_FLOAT, K_DOUBLE } key_type;

typedef struct {
    const char *key;
    key_type type;
    size_t off; /* in crl_run_config */
    double min, max;
} key_def;

#define F(field)    offsetof(crl_run_config, field)
#define CRL_STR_(x) #x
#define CRL_STR(x)  CRL_STR_(x)

/* The stored keys, in the stored order (json_patch keeps insertion order, so
 * this order is the text's). */
static const key_def KEYS[] = {
    {"scenario", K_STR, F(scenario), 0, 0},
    {"method", K_STR, F(method), 0, 0},
    {"steps-per-task", K_I64, F(steps_per_task), 1, 1e12},
    {"l2-coef", K_DOUBLE, F(l2_coef), 0, 1e12},
    {"ewc-coef", K_DOUBLE, F(ewc_coef), 0, 1e12},
    {"packnet-retrain", K_DOUBLE, F(packnet_retrain), 0, 10},
    {"offline", K_STR, F(offline), 0, 0},
    {"bc-loss", K_STR, F(bc_loss), 0, 0},
    {"offline-bytes", K_I64, F(offline_bytes), 0, 9e18},
    {"csp-repeat-alpha", K_INT, F(csp.repeat_alpha), 1, 1e9},
    {"csp-peaked", K_INT, F(csp.peaked), 0, 1},
    {"csp-scored", K_INT, F(csp.n_scored), 1, 1e7},
    {"csp-candidates", K_INT, F(csp.n_candidates), 2, 1e5},
    {"csp-val-steps", K_INT, F(csp.val_steps), 0, 1e9},
    {"csp-epsilon", K_DOUBLE, F(csp.epsilon), 0, 1e6},
    {"csp-prior-alphas", K_INT, F(csp.prior_alphas), 0, 1},
    {"csp-q-batches", K_INT, F(csp.q_batches), 1, 1e6},
    {"csp-shortlist", K_INT, F(csp.shortlist), 1, 1e6},
    {"csp-rollouts", K_INT, F(csp.rollouts), 0, 1e6},
    {"csp-criterion", K_STR, F(csp.criterion), 0, 0},
    {"csp-check", K_INT, F(csp.check), 0, 1e6},
    {"modulator", K_STR, F(l2m.modulator), 0, 0},
    {"l2m-pool", K_INT, F(l2m.pool), 1, 4096},
    {"l2m-rank", K_INT, F(l2m.rank), 1, 4096},
    {"l2m-scale", K_FLOAT, F(l2m.scale), 0, 1e6},
    {"l2m-pull", K_FLOAT, F(l2m.pull), 0, 1e6},
    {"l2m-oracle", K_INT, F(l2m.oracle), 0, 1},
    {"l2m-router", K_STR, F(l2m.router), 0, 0},
    {"l2m-weights", K_STR, F(l2m.weights), 0, 0},
    {"l2m-collect", K_STR, F(l2m.collect), 0, 0},
    {"l2m-history", K_INT, F(l2m.history), 1, CRL_L2M_MAX_HISTORY},
    {"l2m-hold", K_INT, F(l2m.hold), 0, 1},
    {"l2m-soft-k", K_INT, F(l2m.soft_k), 1, 4096},
    {"l2m-soft-temp", K_FLOAT, F(l2m.soft_temp), 0, 1e6},
    {"base", K_STR, F(l2m.base), 0, 0},
    {"base-db", K_STR, F(l2m.base_db), 0, 0},
    {"eval-fixed", K_INT, F(eval_fixed), 0, 1},
    {"single-task", K_INT, F(single_task), -1, 1e6},
    {"env", K_STR, F(env), 0, 0},
    {"env-xml", K_STR, F(env_xml), 0, 0},
    {"xml-reward", K_STR, F(xml_reward), 0, 0},
    {"xml-body", K_STR, F(xml_body), 0, 0},
    {"xml-site", K_STR, F(xml_site), 0, 0},
    {"xml-target", K_STR, F(xml_target), 0, 0},
    {"xml-steps", K_INT, F(xml_steps), 0, 1e8},
    {"seed", K_U64, F(seed), 0, 9.0e18},
    {"steps", K_I64, F(steps), 1, 1e12},
    {"eval-every", K_I64, F(eval_every), 1, 1e12},
    {"eval-episodes", K_INT, F(eval_episodes), 0, 1000},
    {"diag-every", K_I64, F(diag_every), 0, 1e12},
    {"log-train-episodes", K_STR, F(log_train), 0, 0},
    {"threads", K_INT, F(threads), 0, 1e6}, /* resolved: one per core */
    {"lr", K_FLOAT, F(sac.lr), 1e-8, 10},
    {"batch", K_INT, F(sac.batch), 1, 65536},
    {"hidden", K_INT, F(sac.hidden), 1, 65536},
    {"layers", K_INT, F(sac.layers), 1, CRL_MLP_MAX_HIDDEN},
    {"gamma", K_FLOAT, F(sac.gamma), 0, 1},
    {"polyak", K_FLOAT, F(sac.polyak), 0, 1},
    {"buffer-size", K_I64, F(sac.buffer_size), 1, 1e10},
    {"start-steps", K_I64, F(sac.start_steps), 0, 1e12},
    {"update-after", K_I64, F(sac.update_after), 0, 1e12},
    {"update-every", K_I64, F(sac.update_every), 1, 1e9},
    {"init-log-alpha", K_FLOAT, F(sac.init_log_alpha), -20, 20},
};
#define N_KEYS (int)(sizeof KEYS / sizeof KEYS[0])

/* Keys added after runs were stored, with the value a configuration
 * without the key means (the old behaviour; crl_l2m_config_old_routing).
 * Encoded only when the value differs from it, so an old configuration
 * re-encodes to its stored text. */
static const struct {
    const char *key, *old;
} ADDED[] = {
    {"l2m-router", "l2m"},
    {"l2m-weights", "live"},
    {"l2m-collect", "train"},
    {"l2m-history", "1"},
    {"l2m-hold", "0"},
    {"l2m-soft-k", "2"},
    {"l2m-soft-temp", "1"},
    /* issue 21 (crl_csp_config_old) */
    {"csp-q-batches", "1"},
    {"csp-shortlist", "16"},
    {"csp-rollouts", "1"},
    {"csp-criterion", "return"},
    {"csp-check", "0"},
    /* issue 24: diagnostics rows; the default (runs without the key get
     * it too: the rows are written beside the training, never change it) */
    {"diag-every", "1000"},
};

static int is_old_value(const crl_kv *e) {
    for (size_t i = 0; i < sizeof ADDED / sizeof ADDED[0]; i++)
        if (!strcmp(e->key, ADDED[i].key))
            return e->str ? !strcmp(e->str, ADDED[i].old) : e->num == atof(ADDED[i].old);
    return 0;
}

/* Recorded after the keys: a single-env run's shape and resolved learner
 * facts, then (every run) the build; a scenario run ends with
 * steps_per_task, the report's name for its budget. */
static const key_def SHAPE[] = {
    {"obs_dim", K_INT, F(sac.obs_dim), 0, 1e6},
    {"act_dim", K_INT, F(sac.act_dim), 0, 1e6},
};
static const key_def BUILD[] = {
    {"blas_kernel", K_STR, F(blas_kernel), 0, 0},
    {"crl_version", K_STR, F(crl_version), 0, 0},
    {"mujoco_version", K_STR, F(mujoco_version), 0, 0},
};
static const key_def BUDGET = {"steps_per_task", K_I64, F(steps_per_task), 1, 1e12};

/* A key's field, read and written through memcpy: the table holds offsets
 * of fields of several types. */
#define KEY_GET(c, d, var) memcpy(&(var), (const char *)(c) + (d)->off, sizeof(var))
#define KEY_SET(c, d, var) memcpy((char *)(c) + (d)->off, &(var), sizeof(var))

void crl_run_config_default(crl_run_config *c) {
    memset(c, 0, sizeof *c);
    c->method = crl_method_at(0)->name;
    c->single_task = -1;
    c->env = "pendulum";
    c->xml_reward = "forward";
    c->steps = 100000;
    c->steps_per_task = 1000000;
    c->eval_every = 20000;
    c->eval_episodes = 10;
    c->log_train = "every:" CRL_STR(CRL_LOG_TRAIN_EVERY);
    c->diag_every = CRL_DIAG_EVERY;
    c->l2_coef = CRL_L2_COEF;
    c->ewc_coef = CRL_EWC_COEF;
    c->packnet_retrain = 0.1;
    c->bc_loss = "nll";
    crl_csp_config_default(&c->csp);
    crl_l2m_config_default(&c->l2m);
    crl_sac_config_default(&c->sac, 0, 0, 1);
}

void crl_run_config_free(crl_run_config *c) {
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    c->n_owned = 0;
}

int crl_run_config_is_scenario(const crl_run_config *c) {
    return c->scenario && *c->scenario;
}

static crl_kv kv_of(const crl_run_config *c, const key_def *d) {
    crl_kv e = {d->key, NULL, 0};
    const char *sv;
    int iv;
    int64_t lv;
    uint64_t uv;
    float fv;
    double dv;
    switch (d->type) {
    case K_STR:
        KEY_GET(c, d, sv);
        e.str = sv ? sv : "";
        break;
    case K_INT:
        KEY_GET(c, d, iv);
        e.num = iv;
        break;
    case K_I64:
        KEY_GET(c, d, lv);
        e.num = (double)lv;
        break;
    case K_U64:
        KEY_GET(c, d, uv);
        e.num = (double)uv;
        break;
    case K_FLOAT:
        KEY_GET(c, d, fv);
        e.num = fv;
        break;
    case K_DOUBLE:
        KEY_GET(c, d, dv);
        e.num = dv;
        break;
    }
    return e;
}

/* The offline keys are stored for offline runs only, so that an online
 * configuration re-encodes to the text it always had. */
static int is_offline_key(const char *key) {
    return !strcmp(key, "offline") || !strcmp(key, "bc-loss") ||
           !strcmp(key, "offline-bytes");
}

int crl_run_config_is_offline(const crl_run_config *c) {
    return c->offline && *c->offline;
}

int crl_run_config_encode(const crl_run_config *c, crl_kv *kv) {
    int n = 0;
    for (int i = 0; i < N_KEYS; i++) {
        if (!crl_run_config_is_offline(c) && is_offline_key(KEYS[i].key)) continue;
        const crl_kv e = kv_of(c, &KEYS[i]);
        if (!is_old_value(&e)) kv[n++] = e;
    }
    if (!crl_run_config_is_scenario(c)) {
        for (int i = 0; i < 2; i++) kv[n++] = kv_of(c, &SHAPE[i]);
        kv[n++] = (crl_kv){"target_entropy", NULL, crl_sac_target_entropy(&c->sac)};
        /* The update's lanes follow from the threads (crl_run_train_config). */
        kv[n++] = (crl_kv){"update_lanes", NULL, c->threads >= 2 ? 2 : 1};
    }
    for (int i = 0; i < 3; i++) kv[n++] = kv_of(c, &BUILD[i]);
    if (crl_run_config_is_scenario(c)) kv[n++] = kv_of(c, &BUDGET);
    return n;
}

int crl_run_config_json(crl_store *store, const crl_run_config *c, char **json,
                        crl_err *err) {
    crl_kv kv[CRL_RUN_MAX_KEYS];
    int n = crl_run_config_encode(c, kv);
    return crl_store_config_json(store, kv, n, json, err);
}

/* ---- decoding ------------------------------------------------------------------ */

/* The encoder writes scenario and method together (every stored
 * configuration since the first, tests/data/v0, has both): a configuration
 * with a method but no scenario is damaged (without the rule it would read
 * as a single-env run). Hand-written configurations (tests) may have
 * neither; a missing key then means its default. */
static const char *const REQUIRED[] = {"scenario", "method"};
#define N_REQUIRED (int)(sizeof REQUIRED / sizeof REQUIRED[0])

typedef struct {
    crl_run_config *c;
    int has_env;
    crl_err *err;
    int rc;                        /* the first bad member's error */
    unsigned char has[N_REQUIRED]; /* REQUIRED[i] was read */
} decode_ctx;

static const key_def *find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].key, key)) return &KEYS[i];
    for (int i = 0; i < 2; i++)
        if (!strcmp(SHAPE[i].key, key)) return &SHAPE[i];
    for (int i = 0; i < 3; i++)
        if (!strcmp(BUILD[i].key, key)) return &BUILD[i];
    if (!strcmp(BUDGET.key, key)) return &BUDGET;
    return NULL;
}

/* A whole number (1e6 and 1000000.0 included) in [min, max]. */
static int parse_whole(const char *t, double min, double max, double *out) {
    char *end = NULL;
    double v = strtod(t, &end);
    if (end == t || *end || !isfinite(v) || v != floor(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int set_key(crl_run_config *c, const key_def *d, const char *text, int is_string,
                   crl_err *err) {
    if (!text) text = "";
    if (d->type == K_STR) {
        if (c->n_owned >= (int)(sizeof c->owned / sizeof c->owned[0]))
            return crl_errf(err, CRL_ECORRUPT, "configuration: too many strings");
        char *copy = strdup(text);
        if (!copy) return crl_errf(err, CRL_ENOMEM, "configuration: out of memory");
        c->owned[c->n_owned++] = copy;
        const char *sv = copy;
        KEY_SET(c, d, sv);
        return CRL_OK;
    }
    double v = 0;
    char *end = NULL;
    if (is_string) goto bad;
    if (d->type == K_FLOAT || d->type == K_DOUBLE) {
        v = strtod(text, &end);
        if (end == text || *end || !isfinite(v) || v < d->min || v > d->max) goto bad;
        if (d->type == K_FLOAT) {
            float fv = (float)v;
            KEY_SET(c, d, fv);
        } else {
            KEY_SET(c, d, v);
        }
        return CRL_OK;
    }
    if (d->type == K_U64 || d->type == K_I64) {
        /* Beyond 2^53 a double is not exact: read the digits themselves. */
        errno = 0;
        long long iv = strtoll(text, &end, 10);
        if (end != text && !*end && !errno) {
            if ((double)iv < d->min || (double)iv > d->max) goto bad;
            if (d->type == K_U64) {
                uint64_t uv = (uint64_t)iv;
                KEY_SET(c, d, uv);
            } else {
                int64_t lv = iv;
                KEY_SET(c, d, lv);
            }
            return CRL_OK;
        }
    }
    if (parse_whole(text, d->min, d->max, &v)) goto bad;
    int iv = (int)v;
    int64_t lv = (int64_t)v;
    uint64_t uv = (uint64_t)v;
    if (d->type == K_INT) KEY_SET(c, d, iv);
    if (d->type == K_I64) KEY_SET(c, d, lv);
    if (d->type == K_U64) KEY_SET(c, d, uv);
    return CRL_OK;
bad:
    if (d->type == K_FLOAT || d->type == K_DOUBLE)
        return crl_errf(err, CRL_ECORRUPT,
                        "config key '%s' is '%s' (must be a number in [%g, %g])", d->key,
                        text, d->min, d->max);
    return crl_errf(err, CRL_ECORRUPT,
                    "config key '%s' is '%s' (must be a whole number in [%.0f, %.0f])",
                    d->key, text, d->min, d->max);
}

static int decode_member(const char *key, const crl_json_value *v, void *vctx) {
    decode_ctx *x = vctx;
    const key_def *d = find_key(key);
    if (!d) return 0; /* derived (target_entropy, update_lanes) or newer */
    if (!strcmp(key, "env")) x->has_env = 1;
    for (int i = 0; i < N_REQUIRED; i++)
        if (!strcmp(key, REQUIRED[i])) x->has[i] = 1;
    x->rc = set_key(x->c, d, v->text, v->type == CRL_JSON_TEXT, x->err);
    return x->rc != CRL_OK;
}

/* The members of a stored configuration through the store's JSON reader. */
static int decode_json(crl_store *store, const char *json, decode_ctx *x) {
    int rc = crl_store_json_each(store, json, decode_member, x, x->err);
    if (x->rc) return x->rc;
    /* The reader's own failure: the text is no JSON object. */
    if (rc == CRL_ECORRUPT)
        return crl_errf(x->err, CRL_ECORRUPT, "config_json is not a valid JSON object");
    if (rc) return rc;
    if (x->has[0] != x->has[1])
        return crl_errf(x->err, CRL_ECORRUPT, "config_json has no key '%s'",
                        REQUIRED[x->has[0] ? 1 : 0]);
    /* Names the runners look up: refused here with the key, not later as an
     * unknown task. */
    if (crl_run_config_is_scenario(x->c)) {
        if (!crl_scenario_find(x->c->scenario))
            return crl_errf(x->err, CRL_ECORRUPT,
                            "config key 'scenario' is '%s' (not a known scenario)",
                            x->c->scenario);
        if (!crl_method_find(x->c->method))
            return crl_errf(x->err, CRL_ECORRUPT,
                            "config key 'method' is '%s' (not a known method)",
                            x->c->method ? x->c->method : "");
    }
    const char *env = x->c->env;
    if (!crl_run_config_is_scenario(x->c) && x->has_env && env && *env &&
        !(x->c->env_xml && *x->c->env_xml)) {
        const crl_env_entry *list;
        const int n = crl_env_list(&list);
        int known = 0;
        for (int i = 0; i < n && !known; i++) known = !strcmp(list[i].name, env);
        if (!known)
            return crl_errf(x->err, CRL_ECORRUPT,
                            "config key 'env' is '%s' (not a known task)", env);
    }
    if (crl_run_log_train_every(x->c->log_train) < 0)
        return crl_errf(
            x->err, CRL_ECORRUPT,
            "config key 'log-train-episodes' is '%s' (must be every:N or none)",
            x->c->log_train ? x->c->log_train : "");
    return CRL_OK;
}

int crl_run_config_decode(crl_store *store, const char *json, crl_run_config *c,
                          crl_err *err) {
    crl_run_config_default(c);
    /* A configuration stored before the routing keys existed routes as it
     * did then; the keys it has overwrite these. */
    crl_l2m_config_old_routing(&c->l2m);
    crl_csp_config_old(&c->csp);
    decode_ctx x = {c, 0, err, CRL_OK, {0}};
    int rc = decode_json(store, json, &x);
    if (rc) crl_run_config_free(c);
    return rc;
}

int crl_run_config_set(crl_run_config *c, const char *key, const char *value,
                       crl_err *err) {
    if (!c || !key) return crl_errf(err, CRL_EINVAL, "crl_run_config_set: bad argument");
    const key_def *d = NULL;
    for (int i = 0; i < N_KEYS && !d; i++)
        if (!strcmp(KEYS[i].key, key)) d = &KEYS[i];
    if (!d) return crl_errf(err, CRL_EINVAL, "unknown option '%s'", key);
    if (!value) value = "";
    int rc = set_key(c, d, value, 0, err);
    if (rc == CRL_ECORRUPT) {
        const char *kind =
            d->type == K_FLOAT || d->type == K_DOUBLE ? "a number" : "a whole number";
        rc = crl_errf(err, CRL_EINVAL, "%s must be %s in [%g, %g], got '%s'", key, kind,
                      d->min, d->max, value);
    }
    return rc;
}

/* ---- validation ------------------------------------------------------------------ */

int crl_run_log_train_every(const char *s) {
    if (!s) return CRL_LOG_TRAIN_EVERY;
    if (!strcmp(s, "none")) return 0;
    char *end = NULL;
    if (strncmp(s, "every:", 6) != 0 || !isdigit((unsigned char)s[6])) return -1;
    long v = strtol(s + 6, &end, 10);
    if (*end || v < 1 || v > 1000000000L) return -1;
    return (int)v;
}

/* c->log_train as a logging interval into *every; CRL_EINVAL if malformed. */
static int log_train_of(const crl_run_config *c, int *every, crl_err *err) {
    if ((*every = crl_run_log_train_every(c->log_train)) >= 0) return CRL_OK;
    return crl_errf(err, CRL_EINVAL,
                    "log-train-episodes must be every:N (N >= 1) or none, got '%s'",
                    c->log_train);
}

/* Does task `name` report success (manipulation, pretrain)? CSP's
 * grow-or-prune decides by success there (method_csp.c). */
static int task_reports_success(const char *name) {
    const crl_env_entry *list;
    const int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name))
            return !strcmp(list[i].group, "manipulation") ||
                   !strcmp(list[i].group, "pretrain");
    return 0;
}

/* CSP's budgets: an anchor per task, and the grow-or-prune rollouts of every
 * task after the first taken out of its steps (as csp_configure checks
 * them once the run exists). */
static int check_csp_budget(const crl_run_config *c, const crl_scenario *sc,
                            crl_err *err) {
    if (sc->n_tasks > CRL_CSP_MAX_K)
        return crl_errf(err, CRL_EINVAL, "csp: at most %d tasks, %s has %d",
                        CRL_CSP_MAX_K, sc->name, sc->n_tasks);
    for (int k = 1; k < sc->n_tasks; k++) {
        crl_env_spec *spec = NULL;
        crl_err e2 = {0};
        if (crl_env_spec_create(sc->tasks[k], &spec, &e2)) continue; /* the runner's */
        const int len = crl_env_max_steps(spec);
        crl_env_spec_free(spec);
        const int roll =
            c->csp.val_steps > 0 && c->csp.val_steps < len ? c->csp.val_steps : len;
        const int64_t need =
            2 * (int64_t)crl_csp_rollouts(&c->csp, task_reports_success(sc->tasks[k])) *
            roll;
        if (need >= c->steps_per_task)
            return crl_errf(err, CRL_EINVAL,
                            "csp: the validation rollouts of task %d (%s) take %lld env "
                            "steps, more than steps-per-task %lld; lower csp-rollouts or "
                            "csp-val-steps",
                            k + 1, sc->tasks[k], (long long)need,
                            (long long)c->steps_per_task);
    }
    return CRL_OK;
}

/* L2M: a base named RUN[:TASK] and a pool the oracle can split. */
static int check_l2m(const crl_run_config *c, const crl_scenario *sc, crl_err *err) {
    const char *b = c->l2m.base;
    if (!b || !*b)
        return crl_errf(err, CRL_EINVAL,
                        "--method l2m needs --base RUN[:TASK] (e.g. a 'crl train "
                        "--scenario pretrain --method mt' run)");
    char *end = NULL;
    errno = 0;
    const long long run = strtoll(b, &end, 10);
    long task = 0;
    if (end && *end == ':' && isdigit((unsigned char)end[1]))
        task = strtol(end + 1, &end, 10);
    if (errno || run < 1 || task < 0 || task > 1000000 || end == b || *end)
        return crl_errf(err, CRL_EINVAL, "l2m base must be RUN[:TASK], got '%s'", b);
    if (c->l2m.oracle && c->l2m.pool < sc->n_tasks)
        return crl_errf(err, CRL_EINVAL,
                        "l2m oracle: %d modulators (l2m-pool) cannot be split over the "
                        "%d tasks of %s",
                        c->l2m.pool, sc->n_tasks, sc->name);
    return CRL_OK;
}

int crl_run_config_validate(const crl_run_config *c, crl_err *err) {
    int lrc = crl_store_run_labels_check(c->name, c->tags, c->n_tags, err);
    if (lrc) return lrc;
    for (int i = 0; i < N_KEYS; i++) {
        crl_kv e = kv_of(c, &KEYS[i]);
        if (!e.str && (e.num < KEYS[i].min || e.num > KEYS[i].max || isnan(e.num)))
            return crl_errf(err, CRL_EINVAL, "%s must be in [%g, %g], got %g",
                            KEYS[i].key, KEYS[i].min, KEYS[i].max, e.num);
    }
    /* What the learner's constructor refuses (sac.c check_config) beyond
     * the keys' ranges. */
    if (c->sac.batch < 2)
        return crl_errf(err, CRL_EINVAL, "batch must be >= 2, got %d", c->sac.batch);
    int every;
    int rc = log_train_of(c, &every, err);
    if (rc) return rc;
    if (crl_run_config_is_scenario(c)) {
        const crl_scenario *sc = crl_scenario_find(c->scenario);
        if (!sc)
            return crl_errf(err, CRL_EINVAL,
                            "unknown scenario '%s' (see 'crl scenarios')", c->scenario);
        const crl_method *m = crl_method_find(c->method);
        if (!m) {
            char known[256];
            return crl_errf(err, CRL_EINVAL, "unknown method '%s' (known: %s)",
                            c->method ? c->method : "",
                            crl_method_list(0, ", ", known, sizeof known));
        }
        if ((m->impl->flags & CRL_METHOD_ONE_TASK) && c->single_task >= sc->n_tasks)
            return crl_errf(err, CRL_EINVAL, "single-task %d: %s has %d tasks",
                            c->single_task, sc->name, sc->n_tasks);
        if ((m->impl->flags & CRL_METHOD_L2M_BASE) && crl_l2m_kind(c->l2m.modulator) < 0)
            return crl_errf(err, CRL_EINVAL, "modulator must be lora or ia3, got '%s'",
                            c->l2m.modulator ? c->l2m.modulator : "");
        if ((m->impl->flags & CRL_METHOD_SUBSPACE) &&
            (!c->csp.criterion ||
             (strcmp(c->csp.criterion, "auto") && strcmp(c->csp.criterion, "return"))))
            return crl_errf(err, CRL_EINVAL,
                            "csp-criterion must be auto or return, got '%s'",
                            c->csp.criterion ? c->csp.criterion : "");
        if (m->impl->flags & CRL_METHOD_L2M_BASE) {
            int rrc = crl_l2m_check_routing(&c->l2m, err);
            if (!rrc) rrc = check_l2m(c, sc, err);
            if (rrc) return rrc;
        }
        if ((m->impl->flags & CRL_METHOD_SUBSPACE) && !crl_run_config_is_offline(c) &&
            (rc = check_csp_budget(c, sc, err)))
            return rc;
        if (crl_run_config_is_offline(c) && crl_bc_loss_kind(c->bc_loss) < 0)
            return crl_errf(err, CRL_EINVAL, "bc-loss must be nll or mse, got '%s'",
                            c->bc_loss ? c->bc_loss : "");
        if (crl_run_config_is_offline(c) && (m->impl->flags & CRL_METHOD_SUBSPACE))
            return crl_errf(err, CRL_EINVAL, "%s", CRL_OFFLINE_CSP_REFUSAL);
        return CRL_OK;
    }
    if (crl_run_config_is_offline(c))
        return crl_errf(err, CRL_EINVAL,
                        "offline training needs a scenario (--scenario); one task: "
                        "--scenario NAME --method single --single-task POS");
    crl_train_config t;
    return crl_run_train_config(c, &t, err);
}

/* ---- keys given explicitly ----------------------------------------------------- */

/* Keys of one kind of run that the other kind would silently ignore. */
static const char *const CONTINUAL_ONLY[] = {
    "scenario",         "method",          "steps-per-task",   "l2-coef",
    "ewc-coef",         "packnet-retrain", "csp-repeat-alpha", "csp-peaked",
    "csp-scored",       "csp-candidates",  "csp-val-steps",    "csp-epsilon",
    "csp-prior-alphas", "csp-q-batches",   "csp-shortlist",    "csp-rollouts",
    "csp-criterion",    "csp-check",       "modulator",        "l2m-pool",
    "l2m-rank",         "l2m-scale",       "l2m-pull",         "l2m-oracle",
    "l2m-router",       "l2m-weights",     "l2m-collect",      "l2m-history",
    "l2m-hold",         "l2m-soft-k",      "l2m-soft-temp",    "base",
    "base-db",          "eval-fixed",      "single-task",      NULL};
static const char *const ENV_ONLY[] = {"env",       "env-xml",  "xml-reward",
                                       "xml-body",  "xml-site", "xml-target",
                                       "xml-steps", "steps",    NULL};

static int in_list(const char *const *list, const char *key) {
    for (; *list; list++)
        if (!strcmp(*list, key)) return 1;
    return 0;
}

/* The methods a method's own key applies to, as a test of the method; NULL
 * for keys of every method. */
static const char *key_method(const char *key, const crl_method *m, int *applies) {
    const unsigned f = m ? m->impl->flags : 0;
    const char *name = m ? m->name : "";
    if (!strncmp(key, "csp-", 4)) {
        *applies = (f & CRL_METHOD_SUBSPACE) != 0;
        return "csp";
    }
    if (!strncmp(key, "l2m-", 4) || !strcmp(key, "modulator") || !strcmp(key, "base") ||
        !strcmp(key, "base-db")) {
        *applies = (f & CRL_METHOD_L2M_BASE) != 0;
        return "l2m";
    }
    if (!strcmp(key, "single-task")) {
        *applies = (f & CRL_METHOD_ONE_TASK) != 0;
        return "single";
    }
    static const char *const OWN[][2] = {
        {"l2-coef", "l2"}, {"ewc-coef", "ewc"}, {"packnet-retrain", "packnet"}};
    for (size_t i = 0; i < sizeof OWN / sizeof OWN[0]; i++)
        if (!strcmp(key, OWN[i][0])) {
            *applies = !strcmp(name, OWN[i][1]);
            return OWN[i][1];
        }
    *applies = 1;
    return NULL;
}

/* A key as the caller spells it: "--key" (a flag) or "key_name" (an
 * option of crl.train). */
static const char *spelled(const char *key, int style, char *buf, size_t n) {
    if (!style) { /* the task's flag is --task (--env is its old spelling) */
        snprintf(buf, n, "--%s", strcmp(key, "env") ? key : "task");
        return buf;
    }
    snprintf(buf, n, "%s", key);
    for (char *p = buf; *p; p++)
        if (*p == '-') *p = '_';
    return buf;
}

int crl_run_config_check_given(const crl_run_config *c, const char *const *keys, int n,
                               int continual, int style, crl_err *err) {
    char a[64], b[64];
    int env = -1, xml = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(keys[i], "env")) env = i;
        if (!strcmp(keys[i], "env-xml")) xml = i;
    }
    if (env >= 0 && xml >= 0)
        return crl_errf(err, CRL_EINVAL,
                        "%s and %s conflict: a single-task run is a named task or an "
                        "MJCF file, give one",
                        spelled("env", style, a, sizeof a),
                        spelled("env-xml", style, b, sizeof b));
    for (int i = 0; i < n; i++) {
        const char *k = keys[i];
        const char *f = spelled(k, style, a, sizeof a);
        if (continual && in_list(ENV_ONLY, k))
            return crl_errf(
                err, CRL_EINVAL, "%s does not apply to a continual run (%s)%s", f,
                style ? "scenario or its resume" : "--scenario or its --resume",
                strcmp(k, "steps") ? ""
                : style            ? "; use steps_per_task"
                                   : "; use --steps-per-task");
        if (!continual && in_list(CONTINUAL_ONLY, k))
            return crl_errf(err, CRL_EINVAL,
                            "%s applies only to continual runs (%s); this is a "
                            "single-task run (%s)",
                            f, style ? "scenario=..." : "--scenario",
                            style ? "env, env_xml or its resume"
                                  : "--task, --env-xml or its --resume");
    }
    if (!continual || !crl_run_config_is_scenario(c)) return CRL_OK;
    const crl_method *m = crl_method_find(c->method);
    if (!m) return CRL_OK; /* crl_run_config_validate names it */
    for (int i = 0; i < n; i++) {
        int applies = 1;
        const char *owner = key_method(keys[i], m, &applies);
        if (!applies)
            return crl_errf(err, CRL_EINVAL,
                            "%s is an option of method %s, not of %s %s (it would be "
                            "ignored)",
                            spelled(keys[i], style, a, sizeof a), owner,
                            spelled("method", style, b, sizeof b), m->name);
    }
    return CRL_OK;
}

/* ---- the runners' configs ------------------------------------------------------- */

int crl_run_train_config(const crl_run_config *c, crl_train_config *t, crl_err *err) {
    crl_train_config_default(t);
    t->env = c->env;
    t->env_xml = c->env_xml && *c->env_xml ? c->env_xml : NULL;
    t->seed = c->seed;
    t->steps = c->steps;
    t->eval_every = c->eval_every;
    t->eval_episodes = c->eval_episodes;
    t->threads = c->threads;
    t->diag_every = c->diag_every;
    t->sac = c->sac;
    t->sac.threads = c->threads >= 2 ? 2 : 1;
    int rc = log_train_of(c, &t->log_train_every, err);
    if (rc) return rc;
    t->xml.body = c->xml_body;
    t->xml.site = c->xml_site;
    t->xml.max_steps = c->xml_steps;
    if (t->env_xml) {
        const char *reward = c->xml_reward ? c->xml_reward : "forward";
        if (!strcmp(reward, "forward")) {
            t->xml.reward = CRL_XML_REWARD_FORWARD;
        } else if (!strcmp(reward, "reach")) {
            t->xml.reward = CRL_XML_REWARD_REACH;
            char tail;
            if (!c->xml_target || !*c->xml_target ||
                sscanf(c->xml_target, "%lf,%lf,%lf%c", &t->xml.target[0],
                       &t->xml.target[1], &t->xml.target[2], &tail) != 3)
                return crl_errf(err, CRL_EINVAL, "xml reward reach needs a target x,y,z");
        } else {
            return crl_errf(err, CRL_EINVAL,
                            "xml reward must be forward or reach, got '%s'", reward);
        }
    }
    return CRL_OK;
}

int crl_run_continual_config(const crl_run_config *c, crl_continual_config *o,
                             crl_err *err) {
    crl_continual_config_default(o);
    o->scenario = c->scenario;
    o->method = c->method;
    o->single_task = c->single_task;
    o->seed = c->seed;
    o->steps_per_task = c->steps_per_task;
    o->eval_every = c->eval_every;
    o->eval_episodes = c->eval_episodes;
    o->eval_fixed = c->eval_fixed;
    o->diag_every = c->diag_every;
    o->l2_coef = c->l2_coef;
    o->ewc_coef = c->ewc_coef;
    o->packnet_retrain = c->packnet_retrain;
    o->offline = crl_run_config_is_offline(c) ? c->offline : NULL;
    o->bc_loss = crl_bc_loss_kind(c->bc_loss) == CRL_BC_MSE ? CRL_BC_MSE : CRL_BC_NLL;
    o->csp = c->csp;
    o->l2m = c->l2m;
    o->sac = c->sac;
    o->sac.threads = c->threads >= 2 ? 2 : 1;
    return log_train_of(c, &o->log_train_every, err);
}

/* ---- runs ---------------------------------------------------------------------------
 */

int crl_run_config_set_labels(crl_run_config *c, const char *name,
                              const char *const *tags, int n_tags, crl_err *err) {
    if (!c) return crl_errf(err, CRL_EINVAL, "crl_run_config_set_labels: c is NULL");
    int rc = crl_store_run_labels_check(name, tags, n_tags, err);
    if (rc) return rc;
    c->name = name;
    c->tags = tags;
    c->n_tags = n_tags;
    return CRL_OK;
}

int crl_run_create(crl_store *store, crl_run_config *c, int64_t *run_id, crl_err *err) {
    int rc = crl_run_config_validate(c, err);
    if (rc) return rc;
    c->blas_kernel = crl_blas_kernel();
    c->crl_version = CRL_VERSION_STRING;
    struct stat sb;
    if (crl_run_config_is_offline(c))
        c->offline_bytes = stat(c->offline, &sb) == 0 ? (int64_t)sb.st_size : 0;
    c->mujoco_version = mj_versionString();
    char label[64];
    const char *where;
    if (crl_run_config_is_scenario(c)) {
        const crl_method *m = crl_method_find(c->method);
        if (m->impl->label)
            m->impl->label(m->name, &c->csp, &c->l2m, label, sizeof label);
        else
            snprintf(label, sizeof label, "%s", m->name);
        where = crl_scenario_find(c->scenario)->name;
    } else {
        crl_train_config t;
        crl_env_spec *spec = NULL;
        if ((rc = crl_run_train_config(c, &t, err)) ||
            (rc = t.env_xml ? crl_env_spec_create_xml(t.env_xml, &t.xml, &spec, err)
                            : crl_env_spec_create(t.env, &spec, err)))
            return rc;
        c->sac.obs_dim = crl_env_obs_dim(spec);
        c->sac.act_dim = crl_env_act_dim(spec);
        crl_env_spec_free(spec);
        snprintf(label, sizeof label, "sac");
        /* The scenario column names the file; the full path is in the config. */
        where = c->env;
        if (t.env_xml) {
            const char *slash = strrchr(t.env_xml, '/');
            where = slash ? slash + 1 : t.env_xml;
        }
    }
    crl_kv kv[CRL_RUN_MAX_KEYS];
    int n = crl_run_config_encode(c, kv);
    return crl_store_run_create_labeled(store, label, where, c->seed, kv, n, c->name,
                                        c->tags, c->n_tags, run_id, err);
}

int crl_run_config_load(crl_store *store, int64_t run_id, crl_run_config *c, char *status,
                        crl_err *err) {
    crl_run_info info;
    char *json = NULL;
    int rc = crl_store_run_get(store, run_id, &info, &json, err);
    if (rc) return rc;
    crl_run_config_default(c);
    /* A configuration stored before the routing keys existed routes as it
     * did then; the keys it has overwrite these. */
    crl_l2m_config_old_routing(&c->l2m);
    crl_csp_config_old(&c->csp);
    decode_ctx x = {c, 0, err, CRL_OK, {0}};
    rc = decode_json(store, json, &x);
    free(json);
    if (rc == CRL_ECORRUPT && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        crl_errf(err, CRL_ECORRUPT, "run %lld: %s", (long long)run_id, msg);
    }
    if (rc) {
        crl_run_config_free(c);
        return rc;
    }
    /* A config without the env names it only in the runs row. */
    if (!x.has_env && !crl_run_config_is_scenario(c) && c->n_owned < 40) {
        char *copy = strdup(info.scenario);
        if (copy) c->env = c->owned[c->n_owned++] = copy;
    }
    if (status) snprintf(status, 16, "%s", info.status);
    return CRL_OK;
}

/* ---- the L2M base --------------------------------------------------------------- */

int crl_l2m_base_load(crl_store *store, const char *spec, crl_l2m_base *b, crl_err *err) {
    char *end = NULL;
    long long run = spec ? strtoll(spec, &end, 10) : 0;
    long task = 0;
    if (end && *end == ':') task = strtol(end + 1, &end, 10);
    if (run < 1 || task < 0 || task > 1000000 || !end || *end)
        return crl_errf(err, CRL_EINVAL, "l2m base must be RUN[:TASK], got '%s'",
                        spec ? spec : "");
    void *blob = NULL;
    size_t n = 0, sn = 0;
    const void *sb = NULL;
    int idx;
    int64_t step;
    int rc = crl_store_checkpoint_latest(store, run, &idx, &step, &blob, &n, err);
    if (rc == CRL_ENOTFOUND)
        rc = crl_errf(err, CRL_EINVAL, "l2m base %s: run %lld has no checkpoint", spec,
                      run);
    if (!rc && crl_checkpoint_learner(blob, n, &sb, &sn, NULL, err) != CRL_OK)
        rc = crl_continual_checkpoint_learner(blob, n, &sb, &sn, err);
    if (!rc) rc = crl_l2m_base_parse(sb, sn, (int)task, b, err);
    free(blob);
    return rc;
}
