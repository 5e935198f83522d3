/* crl run: everything a run is made from, owned by the library.
 *
 * A crl_run_config describes a single-env run (env or env_xml) or a scenario
 * run (scenario + method). It has ONE encoder (the key/values stored as
 * runs.config_json, docs/schema.md) and ONE decoder (config_json back into
 * the struct, through SQLite's JSON functions). crl_run_create validates a
 * config and creates its run; crl_run_config_load reads one back for
 * resume, eval, export and report; crl_run_train_config and
 * crl_run_continual_config turn it into what the runners take. */
#ifndef CRL_RUN_H
#define CRL_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "continual.h"
#include "methods.h"
#include "runner.h"
#include "sac.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRL_RUN_MAX_KEYS 64 /* entries of an encoded config */

typedef struct {
    /* What runs: a scenario (with a method), or else a single env. */
    const char *scenario;   /* crl_scenario_find name; NULL or "": single-env run */
    const char *method;     /* a registered method (crl_method_find) */
    int single_task;        /* CRL_METHOD_ONE_TASK: the scenario position (-1: all) */
    const char *env;        /* single-env run: a named task */
    const char *env_xml;    /* or a user's MJCF file (NULL or "": none) */
    const char *xml_reward; /* env_xml: "forward" or "reach" */
    const char *xml_body, *xml_site;
    const char *xml_target; /* env_xml reach: "x,y,z" */
    int xml_steps;          /* env_xml: episode length (0: 1000) */
    uint64_t seed;
    int64_t steps;          /* single-env run: env steps */
    int64_t steps_per_task; /* scenario run: env steps per task */
    int64_t eval_every;
    int eval_episodes;
    int eval_fixed;
    int64_t diag_every;    /* updates between diagnostics rows (0: none) */
    const char *log_train; /* training episodes kept: "every:N" or "none" */
    int threads;           /* compute threads as resolved for the run */
    double l2_coef, ewc_coef, packnet_retrain;
    /* Offline (behaviour-cloning) scenario runs, docs/offline.md: the
     * dataset file (NULL or "": an online run), the loss ("nll" or "mse")
     * and the file's size in bytes when the run was created. Stored only for
     * offline runs; steps_per_task then counts updates. */
    const char *offline;
    const char *bc_loss;
    int64_t offline_bytes;
    crl_csp_config csp;
    crl_l2m_config l2m;
    crl_sac_config sac;
    /* Recorded with the run (filled by crl_run_create, read back by the
     * decoder; 0 / NULL: not recorded). obs_dim and act_dim of a
     * single-env run are in sac. */
    const char *blas_kernel, *crl_version, *mujoco_version;
    /* The new run's labels (docs/tracking.md): a name (NULL: none) and
     * n_tags tags. Not configuration: stored in runs.name and table
     * run_tags, not encoded into config_json, and NULL / 0 in a decoded
     * config. Checked by crl_run_config_validate
     * (crl_store_run_labels_check); the strings are the caller's. */
    const char *name;
    const char *const *tags;
    int n_tags;
    /* Strings the decoder allocated (crl_run_config_free). */
    char *owned[40];
    int n_owned;
} crl_run_config;

/* The defaults of a new run (CW SAC and budgets, the first registered
 * method, no scenario: a pendulum single-env run). */
void crl_run_config_default(crl_run_config *c);
/* Free the strings a decoded config owns (its pointers become invalid). */
void crl_run_config_free(crl_run_config *c);
/* 1 for a scenario run, 0 for a single-env run. */
int crl_run_config_is_scenario(const crl_run_config *c);
/* 1 for an offline (behaviour-cloning) run. */
int crl_run_config_is_offline(const crl_run_config *c);

/* The training-episode logging of a log_train value: "every:N" -> N,
 * "none" -> 0, NULL -> the default CRL_LOG_TRAIN_EVERY; -1 if malformed. */
int crl_run_log_train_every(const char *log_train);

/* Check a config before anything is written: names (scenario, method, env,
 * modulator), ranges, log_train, the xml reward and target. CRL_EINVAL
 * with one line saying what is wrong. */
int crl_run_config_validate(const crl_run_config *c, crl_err *err);

/* The keys a caller was given explicitly (a command's flags, crl.train's
 * options; keys[n], stored keys of crl_run_config_set) checked against the
 * run c describes, before anything is written: --env with --env-xml, keys
 * of a continual run given to a single-task run and the reverse
 * (continual: the run is a scenario run or its resume), and keys of another
 * method than c's (csp-* with method ewc; not checked for a resume, whose
 * method is the stored one). CRL_EINVAL with one line naming the keys as
 * the caller spells them: style 0 "--key", style 1 "key_name". */
int crl_run_config_check_given(const crl_run_config *c, const char *const *keys, int n,
                               int continual, int style, crl_err *err);

/* THE encoder: c as key/values in the stored order (keys and number
 * formats of docs/schema.md). Strings point into c (NULL as ""). Returns the
 * number of entries written to kv[CRL_RUN_MAX_KEYS]. */
int crl_run_config_encode(const crl_run_config *c, crl_kv *kv);
/* The encoded config as JSON text, built by the store as crl_store_run_create
 * stores it. *json is malloc'd. */
int crl_run_config_json(crl_store *store, const crl_run_config *c, char **json,
                        crl_err *err);
/* THE decoder: c = defaults overridden by the keys of config_json (unknown
 * keys are ignored). The strings are c's own (crl_run_config_free).
 * CRL_ECORRUPT for a value of the wrong kind or out of range. */
int crl_run_config_decode(crl_store *store, const char *json, crl_run_config *c,
                          crl_err *err);

/* Set the one key `key` of the stored format (the keys of config_json that
 * the encoder writes, docs/schema.md; not the derived ones) from its text,
 * as the decoder reads it: a number for a number key, checked against the
 * key's range. A string value is c's own copy (crl_run_config_free).
 * CRL_EINVAL: "unknown option 'K'" or "K must be ... got 'V'". */
int crl_run_config_set(crl_run_config *c, const char *key, const char *value,
                       crl_err *err);

/* Set the new run's labels (name may be NULL; n_tags tags), checked as
 * crl_run_config_validate checks them (CRL_EINVAL with one line; c is then
 * unchanged). The strings stay the caller's and must outlive c's use. */
int crl_run_config_set_labels(crl_run_config *c, const char *name,
                              const char *const *tags, int n_tags, crl_err *err);

/* Validate c and create its run (status running) in store (an offline
 * run's offline_bytes is the dataset's size now): the runs table's
 * method is the method's label (crl_method_impl.label), "sac" for a
 * single-env run, and its scenario the scenario, env name or MJCF file
 * name. c's single-env obs_dim/act_dim, blas_kernel, crl_version and
 * mujoco_version are filled in. */
int crl_run_create(crl_store *store, crl_run_config *c, int64_t *run_id, crl_err *err);

/* The stored config of run_id (crl_run_config_decode of its config_json);
 * status (may be NULL, 16 bytes) gets the run's status. CRL_ENOTFOUND. */
int crl_run_config_load(crl_store *store, int64_t run_id, crl_run_config *c, char *status,
                        crl_err *err);

/* The runners' configs from c (strings point into c). The continual
 * config's l2m_base is left NULL (crl_l2m_base_load). CRL_EINVAL as
 * validate. */
int crl_run_train_config(const crl_run_config *c, crl_train_config *out, crl_err *err);
int crl_run_continual_config(const crl_run_config *c, crl_continual_config *out,
                             crl_err *err);

/* ---- training a run (agents/train.c): the one path of `crl train` and of
 * the Python package's crl.train ------------------------------------------ */

/* What crl_run_train calls back; every member may be NULL. */
typedef struct {
    crl_progress_fn progress; /* about once a second, with ctx */
    /* Once per run, after it is created (or resumed) and before it trains;
     * c is the run's configuration as stored. */
    void (*started)(int64_t run_id, int resumed, const crl_run_config *c, void *ctx);
    void *ctx;
    /* Non-zero stops the run after a checkpoint: CRL_EINTR, status
     * interrupted, resumable. */
    volatile sig_atomic_t *stop;
    /* Each evaluation of a task and each warning (crl_note), with ctx. */
    crl_note_fn note;
} crl_run_hooks;

/* Train the run c describes in the store at path db (created when missing),
 * or with resume != 0 continue run `resume` with its stored configuration
 * (c's contents are then replaced by it; free c with crl_run_config_free
 * either way). A method of CRL_METHOD_ONE_TASK without single-task makes
 * one run per scenario position. threads <= 0 is resolved to one per
 * core. Checked before the store is opened or created: the configuration
 * (crl_run_config_validate), an offline run's dataset and a single-env
 * run's task (it must compile; CRL_ENOTFOUND or CRL_EINVAL), so that a bad
 * configuration writes nothing. *run_id (may be NULL) is the last run
 * created or resumed, 0 if none; a failure after it was created is
 * reported as "run N failed: ...". CRL_EINTR when *hooks->stop stopped it
 * (the run is resumable). */
int crl_run_train(const char *db, crl_run_config *c, int64_t resume,
                  const crl_run_hooks *hooks, int64_t *run_id, crl_err *err);

/* l2m: the frozen base named by cc's base RUN[:TASK], read from the store
 * at cc's base_db, or else from db (store: db already open, or NULL).
 * CRL_EINVAL naming the base and the file. b is freed with
 * crl_l2m_base_free. */
int crl_run_l2m_base(const crl_continual_config *cc, const char *db, crl_store *store,
                     crl_l2m_base *b, crl_err *err);

/* sizeof(crl_run_config), for callers that cannot see the struct (FFI). */
size_t crl_run_config_sizeof(void);

/* The frozen L2M base named by spec "RUN[:TASK]" in store: the actor of the
 * run's latest checkpoint (single-env or continual), head TASK (default 0).
 * CRL_EINVAL for a malformed spec, a run without a checkpoint or a learner
 * that is not plain. b is freed with crl_l2m_base_free. */
int crl_l2m_base_load(crl_store *store, const char *spec, crl_l2m_base *b, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
