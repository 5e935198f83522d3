/* crl store: the SQLite run store. One file holds every run.
 *
 * The file is marked with PRAGMA application_id and versioned with
 * PRAGMA user_version; older schemas are migrated on open, newer ones and
 * foreign files are refused without being touched. WAL journal, busy
 * timeout, and small writes (metrics, evals) batched into one transaction
 * that is committed by crl_store_flush, by a checkpoint, or on close.
 * The store only stores: it knows nothing of nn, envs or agents. */
#ifndef CRL_STORE_H
#define CRL_STORE_H

#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRL_STORE_APP_ID         0x43524C31 /* "CRL1" */
#define CRL_STORE_SCHEMA_VERSION 4

typedef struct crl_store crl_store;

/* Open a store. create != 0 makes a new file when none exists. Refuses
 * (CRL_ECORRUPT) a file that is not SQLite or is a SQLite database of another
 * program, and (CRL_EVERSION) a newer schema; such files are not modified.
 * CRL_EBUSY if it stays locked past the busy timeout. */
int crl_store_open(const char *path, int create, crl_store **out, crl_err *err);
/* Commit pending writes and close. Safe with NULL. */
void crl_store_close(crl_store *s);
/* Commit the pending batch of metrics/evals writes. */
int crl_store_flush(crl_store *s, crl_err *err);
/* Commit the pending batch if it is older than the batch age limit (2 s);
 * otherwise do nothing (one clock read). A batch holds the file's write
 * lock, so a long loop that writes rows only now and then calls this often
 * (the trainers: every env step) to let other processes write. */
int crl_store_tick(crl_store *s, crl_err *err);

/* One configuration entry: a number or a string (str != NULL). */
typedef struct {
    const char *key;
    const char *str;
    double num;
} crl_kv;

/* Insert a run with status 'running'; config_json is built from kv with
 * SQLite's JSON functions. Committed at once. */
int crl_store_run_create(crl_store *s, const char *method, const char *scenario,
                         uint64_t seed, const crl_kv *kv, int n_kv, int64_t *run_id,
                         crl_err *err);
/* status: "running", "finished", "failed" or "interrupted". Commits the
 * pending batch with it. */
int crl_store_run_set_status(crl_store *s, int64_t run_id, const char *status,
                             crl_err *err);

int crl_store_task_start(crl_store *s, int64_t run_id, int idx, const char *name,
                         int64_t start_step, crl_err *err);
int crl_store_task_end(crl_store *s, int64_t run_id, int idx, int64_t end_step,
                       crl_err *err);

/* Batched: become durable at the next flush / checkpoint / status change. */
int crl_store_metric(crl_store *s, int64_t run_id, int64_t step, const char *key,
                     double value, crl_err *err);

typedef struct {
    int64_t run_id;
    int64_t step;
    int train_task_idx;
    int eval_task_idx;
    int episodes;
    double success_rate; /* of the stochastic episodes */
    double mean_return;  /* of the stochastic episodes */
    double det_return;   /* of the deterministic episode; NAN if none (v2) */
} crl_eval_row;
int crl_store_eval(crl_store *s, const crl_eval_row *row, crl_err *err);

/* CSP's decision at the end of task task_idx (table csp_decisions; a row
 * written again for the same task, e.g. after a resume, replaces it). alpha:
 * the n_alpha weights the task keeps, stored as a JSON array. */
typedef struct {
    int64_t run_id;
    int task_idx;
    int64_t step;
    int kept;
    double best_new, best_old; /* NaN is stored as NULL */
    int n_anchors;
    const float *alpha;
    int n_alpha;
} crl_csp_row;
int crl_store_csp_decision(crl_store *s, const crl_csp_row *row, crl_err *err);

/* One logged episode (docs/schema.md, table episodes; docs/replay.md for
 * data). On insert, id is ignored; the strings and data are copied. */
typedef struct {
    int64_t id;
    int64_t run_id;
    int64_t step;      /* eval: the evaluation's step; train: the step it ended at */
    int task_idx;      /* scenario position of the episode's task */
    const char *kind;  /* "eval" or "train" */
    int episode;       /* eval: index in its evaluation; train: index in its task */
    int deterministic; /* 1: the policy's mean action */
    uint64_t env_seed;
    int length; /* env steps */
    double ret; /* undiscounted return (NaN is stored as NULL) */
    int success;
    const char *env;            /* task name (or the MJCF file) */
    const char *mujoco_version; /* mj_versionString() at record time */
    const char *model_hash;     /* crl_env_model_hash */
    const char *modifiers;      /* JSON object, crl_env_modifiers */
    const void *data;           /* the episode record (crl_episode_get) */
    size_t data_n;
} crl_episode_row;

/* Batched like evals. The same (run, kind, task, step, episode) again (a
 * resumed run) replaces the row. CRL_ENOTFOUND if the run does not exist. */
int crl_store_episode(crl_store *s, const crl_episode_row *row, crl_err *err);
/* Episode id: cb is called once with the row, whose pointers stay valid
 * during the call. CRL_ENOTFOUND if there is no such episode. */
int crl_store_episode_get(crl_store *s, int64_t id,
                          int (*cb)(const crl_episode_row *, void *), void *ctx,
                          crl_err *err);
/* Episodes of a run in id order (with_data 0: data NULL, data_n still set);
 * a non-zero return from cb stops. */
int crl_store_episodes(crl_store *s, int64_t run_id, int with_data,
                       int (*cb)(const crl_episode_row *, void *), void *ctx,
                       crl_err *err);

/* Store a checkpoint blob; commits the pending batch in the same transaction,
 * so a checkpoint never refers to evals that were lost. */
int crl_store_checkpoint_put(crl_store *s, int64_t run_id, int task_idx, int64_t step,
                             const void *blob, size_t n, crl_err *err);
/* Delete the run's checkpoints taken before before_step (long runs keep only
 * their latest one). */
int crl_store_checkpoint_prune(crl_store *s, int64_t run_id, int64_t before_step,
                               crl_err *err);
/* Latest checkpoint of a run (highest step). *blob is malloc'd; caller frees.
 * CRL_ENOTFOUND if the run has none. */
int crl_store_checkpoint_latest(crl_store *s, int64_t run_id, int *task_idx,
                                int64_t *step, void **blob, size_t *n, crl_err *err);

typedef struct {
    int64_t id;
    char created_at[32]; /* UTC, ISO 8601 */
    char status[16];
    char method[32];
    char scenario[64];
    uint64_t seed;
    int64_t last_step; /* highest step seen in evals/metrics, 0 if none */
} crl_run_info;

/* Calls cb for each run in id order; a non-zero return from cb stops. */
int crl_store_runs(crl_store *s, int (*cb)(const crl_run_info *, void *), void *ctx,
                   crl_err *err);
/* One run. config_json (may be NULL) receives a malloc'd copy. */
int crl_store_run_get(crl_store *s, int64_t run_id, crl_run_info *info,
                      char **config_json, crl_err *err);
/* Evals of a run in (step, eval_task_idx) order. */
int crl_store_evals(crl_store *s, int64_t run_id, int (*cb)(const crl_eval_row *, void *),
                    void *ctx, crl_err *err);

/* Merge shard stores into one (store/merge.c, docs/sweeps.md). Every shard
 * is checked first (a crl database of exactly this schema version, passing
 * SQLite's quick_check); one that is not refuses the whole merge and out is
 * not created or touched. Then, in one transaction, each shard run is copied
 * with a new run id (rows of every table keyed by run id, INTEGER PRIMARY
 * KEYs renumbered and references to them followed). Table merge_runs of out
 * remembers each run by identity (created_at, method, scenario, seed,
 * config_json) and content: a run merged again unchanged adds nothing, a
 * copy that got further (finished, later step, more rows) replaces the
 * merged one under the same id, an older copy is left out. note (may be
 * NULL) receives one line per shard skipped or run left out. */
typedef struct {
    int shards;       /* shards read */
    int runs_added;   /* new runs */
    int runs_updated; /* merged before, replaced by a copy that got further */
    int runs_same;    /* merged before, unchanged: nothing added */
    int runs_older;   /* a copy behind (or beside) the merged one: left out */
    int64_t rows;     /* rows written, runs included */
} crl_merge_stats;
int crl_store_merge(const char *out_path, const char *const *shards, int n_shards,
                    void (*note)(const char *msg, void *ctx), void *ctx,
                    crl_merge_stats *stats, crl_err *err);

/* The JSON object crl_store_run_create stores for kv (same keys, order and
 * number formats). *json is malloc'd. */
int crl_store_config_json(crl_store *s, const crl_kv *kv, int n_kv, char **json,
                          crl_err *err);
/* The top-level members of a JSON object (a run's config_json), in order,
 * through SQLite's json_each: fn gets each key, its value as text (a
 * number's JSON text, a string's contents, NULL for null) and whether the
 * value is a string. A non-zero return of fn stops and is returned. Not an
 * object: no members; CRL_ECORRUPT if json is not JSON. */
typedef int (*crl_json_member_fn)(void *ctx, const char *key, const char *text,
                                  int is_string, crl_err *err);
int crl_store_json_members(crl_store *s, const char *json, crl_json_member_fn fn,
                           void *ctx, crl_err *err);

/* The underlying handle, for read-only queries by report code. */
struct sqlite3;
struct sqlite3 *crl_store_db(crl_store *s);

#ifdef __cplusplus
}
#endif
#endif
