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
#define CRL_STORE_SCHEMA_VERSION 7

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
/* A run's labels (schema v7, docs/tracking.md): a name (NULL: none; 1 to
 * CRL_RUN_NAME_MAX bytes, no control characters) and up to CRL_RUN_MAX_TAGS
 * distinct tags (1 to CRL_RUN_TAG_MAX bytes each, one word: no spaces,
 * commas, quotes or control characters). They are not configuration: they
 * live in runs.name and table run_tags, not in config_json. */
#define CRL_RUN_NAME_MAX 128
#define CRL_RUN_TAG_MAX  64
#define CRL_RUN_MAX_TAGS 32
/* CRL_EINVAL with one line saying what is wrong with the labels; writes
 * nothing (callers check before they create anything). */
int crl_store_run_labels_check(const char *name, const char *const *tags, int n_tags,
                               crl_err *err);
/* crl_store_run_create with the run's labels, all in one transaction. */
int crl_store_run_create_labeled(crl_store *s, const char *method, const char *scenario,
                                 uint64_t seed, const crl_kv *kv, int n_kv,
                                 const char *name, const char *const *tags, int n_tags,
                                 int64_t *run_id, crl_err *err);
/* Delete run_id and every row it owns, in one transaction: the rows of
 * every table with a run_id column (found from the schema, so a table added
 * later is covered), then the run. CRL_ENOTFOUND if there is no such run,
 * CRL_EBUSY (nothing deleted) while a live lease holds it (it is being
 * trained); a stale lease is deleted with the run. *rows (may be NULL): the
 * rows deleted, the run's included. */
int crl_store_run_delete(crl_store *s, int64_t run_id, int64_t *rows, crl_err *err);

/* status: "running", "finished", "failed" or "interrupted". Commits the
 * pending batch with it. A status other than "running" gives back the run's
 * lease held by this store, and when the write times out on a lock it is
 * retried once with a longer wait (12 busy timeouts, at least 10 s): a run
 * that failed on a lock still gets its status. */
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
 * the n_alpha weights the task keeps, stored as a JSON array. The fields
 * from criterion on are schema v5 (docs/schema.md); criterion NULL stores
 * them all as NULL (a decision made the old way). */
typedef struct {
    int64_t run_id;
    int task_idx;
    int64_t step;
    int kept;
    double best_new, best_old; /* mean validation returns; NaN is stored as NULL */
    int n_anchors;
    const float *alpha;
    int n_alpha;
    const char *criterion;           /* "success" or "return": what decided */
    int rollouts;                    /* per finalist */
    double new_success, old_success; /* mean success of the finalists' rollouts */
    double q_new, q_old;             /* the finalists' mean Q */
    int check_kept;                  /* the check's decision; -1: no check (NULL) */
    double check_new, check_old;     /* the check's deciding scores */
    double wall_s;                   /* the decision's wall time */
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
 * during the call. CRL_ENOTFOUND if there is no such episode. Reads with data
 * check the blob's crc32 (schema v6; older rows unchecked): CRL_ECORRUPT
 * with one line naming the episode, run and step. */
int crl_store_episode_get(crl_store *s, int64_t id,
                          int (*cb)(const crl_episode_row *, void *), void *ctx,
                          crl_err *err);
/* Episodes of a run in id order (with_data 0: data NULL, data_n still set);
 * a non-zero return from cb stops. */
int crl_store_episodes(crl_store *s, int64_t run_id, int with_data,
                       int (*cb)(const crl_episode_row *, void *), void *ctx,
                       crl_err *err);

/* Store a checkpoint blob with its crc32 (schema v6); commits the pending
 * batch in the same transaction, so a checkpoint never refers to evals that
 * were lost. */
int crl_store_checkpoint_put(crl_store *s, int64_t run_id, int task_idx, int64_t step,
                             const void *blob, size_t n, crl_err *err);
/* Delete the run's checkpoints taken before before_step except the newest
 * of them: called with the step just stored, a run keeps its last two, so
 * that one corrupt checkpoint never loses the run. */
int crl_store_checkpoint_prune(crl_store *s, int64_t run_id, int64_t before_step,
                               crl_err *err);
/* Latest checkpoint of a run (highest step). *blob is malloc'd; caller frees.
 * CRL_ENOTFOUND if the run has none. The blob's crc32 is checked (rows
 * written before schema v6 have none and are read unchecked): a mismatch is
 * CRL_ECORRUPT with one line naming the run, the step and the previous
 * checkpoint; *task_idx and *step are then still set (blob NULL). */
int crl_store_checkpoint_latest(crl_store *s, int64_t run_id, int *task_idx,
                                int64_t *step, void **blob, size_t *n, crl_err *err);
/* The same for the newest checkpoint with step < before_step. */
int crl_store_checkpoint_before(crl_store *s, int64_t run_id, int64_t before_step,
                                int *task_idx, int64_t *step, void **blob, size_t *n,
                                crl_err *err);
/* What a user can do about run_id's bad checkpoint at step `at`, for an
 * error line: "'crl train --resume R' falls back to the previous one (step
 * S)" or "the run keeps no earlier checkpoint". */
void crl_store_checkpoint_fallback(crl_store *s, int64_t run_id, int64_t at, char *buf,
                                   size_t n);

/* Run leases (schema v6, docs/robustness.md "Run leases"). A run being
 * trained is owned by one process: its host, pid (and the pid's start
 * time), since when, and a heartbeat that crl_store_tick / crl_store_flush
 * renew every CRL_LEASE_HEARTBEAT_S seconds. The owner holds the lease while
 * it lives: on the same host while its pid exists (and is the same
 * process), on another host until CRL_LEASE_EXPIRY_S seconds after its last
 * heartbeat. A status other than "running" gives the lease back. */
#define CRL_LEASE_HEARTBEAT_S 5
#define CRL_LEASE_EXPIRY_S    60
typedef struct {
    int64_t run_id;
    char host[256];
    int64_t pid, pid_start;
    double since, heartbeat; /* Unix seconds */
    int alive;               /* its owner still holds it */
    char why[160];           /* when not: "owner pid 123 gone", ... */
} crl_lease;
/* Take run_id for this store (this process): CRL_EBUSY, with one line
 * naming the owner, when a live owner holds it (nothing is written then); a
 * dead owner's lease is taken over. The heartbeat then runs from
 * crl_store_tick; a lease that another process took over in between makes
 * the next tick fail (CRL_EBUSY) and stops this store's writes for the run. */
int crl_store_lease_acquire(crl_store *s, int64_t run_id, crl_err *err);
/* run_id's lease, judged now (alive, why); CRL_ENOTFOUND if it has none. */
int crl_store_lease_get(crl_store *s, int64_t run_id, crl_lease *out, crl_err *err);

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

/* ------------------------------------------------------------------------ */
/* Typed reads (store/query.c). Code outside store/ reads the tables only
 * through these and the queries above; SQL stays in store/. Arrays are
 * malloc'd by the store and freed with the matching _free (NULL is fine);
 * row callbacks get pointers valid during the call, and a non-zero return
 * stops the rows. Per-run reads of a run that does not exist give CRL_ENOTFOUND;
 * an existing run with no rows gives an empty result. */

/* The SQLite library's version string (static). */
const char *crl_store_sqlite_version(void);

/* Read from one snapshot until crl_store_read_end, while other processes
 * may be writing. Returns 1 if it began a read transaction, 0 if the store
 * is inside one already (a pending batch, whose rows it then sees). */
int crl_store_read_begin(crl_store *s);
/* End the snapshot crl_store_read_begin began (began: its return value). */
void crl_store_read_end(crl_store *s, int began);

/* A finished run with its steps per task as stored. */
typedef struct {
    int64_t id;
    char method[32];
    char scenario[64];
    uint64_t seed;
    int has_spt;          /* config_json (valid JSON) has a numeric steps_per_task */
    double spt;           /* that number (JSON true reads as 1) */
    int64_t first_window; /* end_step - start_step of the lowest task idx; -1 if the
                             run has no task or that task never ended */
} crl_finished_run;
/* The runs with status 'finished' (of scenario; NULL: every scenario) in id
 * order into *runs (*n of them). */
int crl_store_finished_runs(crl_store *s, const char *scenario, crl_finished_run **runs,
                            int *n, crl_err *err);
void crl_store_finished_runs_free(crl_finished_run *runs);

typedef struct {
    char status[16];
    int count;
} crl_status_count;
/* Runs that are not finished (of scenario; NULL: all), counted per status
 * in status order into *counts (*n statuses). */
int crl_store_unfinished_runs(crl_store *s, const char *scenario,
                              crl_status_count **counts, int *n, crl_err *err);
void crl_store_status_counts_free(crl_status_count *counts);

/* One row of table tasks. */
typedef struct {
    int idx;
    char name[128];
    int64_t start_step;
    int64_t end_step; /* -1: the task has not ended (NULL) */
} crl_task_row;
/* The tasks of run_id in idx order into *tasks (*n of them). */
int crl_store_tasks(crl_store *s, int64_t run_id, crl_task_row **tasks, int *n,
                    crl_err *err);
void crl_store_tasks_free(crl_task_row *tasks);

/* Number of checkpoints stored for run_id. */
int crl_store_checkpoint_count(crl_store *s, int64_t run_id, int64_t *n, crl_err *err);

/* One metric value; value is NaN when stored NULL. */
typedef struct {
    int64_t step;
    const char *key;
    double value;
} crl_metric_row;
#define CRL_STORE_MAX_KEYS 16
/* The metrics of run_id with one of keys[0..n_keys) (1..CRL_STORE_MAX_KEYS)
 * in step order (rows of one step in no set order). */
int crl_store_metrics(crl_store *s, int64_t run_id, const char *const *keys, int n_keys,
                      int (*cb)(const crl_metric_row *, void *), void *ctx, crl_err *err);
/* values[i]: the value of keys[i] at its highest step for run_id; NaN if
 * it has none (or that value is NULL). One query. */
int crl_store_metrics_last(crl_store *s, int64_t run_id, const char *const *keys,
                           int n_keys, double *values, crl_err *err);
/* A numbered family of keys prefix<i> (matched as SQL LIKE 'prefix%'): the
 * rows at the highest step any of them has, in order of the integer i. */
int crl_store_metrics_family_last(crl_store *s, int64_t run_id, const char *prefix,
                                  int (*cb)(const crl_metric_row *, void *), void *ctx,
                                  crl_err *err);

/* Every metric of run_id, ordered by key then step (value NaN when NULL). */
int crl_store_metrics_all(crl_store *s, int64_t run_id,
                          int (*cb)(const crl_metric_row *, void *), void *ctx,
                          crl_err *err);

/* A run as `crl runs` lists it (store/track.c). */
typedef struct {
    int64_t id;
    char created_at[32];
    char name[CRL_RUN_NAME_MAX + 1];                         /* "" if none */
    char tags[CRL_RUN_MAX_TAGS * (CRL_RUN_TAG_MAX + 1) + 1]; /* "a,b" in given order */
    char status[16];
    char method[32];
    char scenario[64];
    uint64_t seed;
    int64_t last_step;   /* highest step in evals/metrics, 0 if none */
    int64_t eval_step;   /* step of the last evaluation, -1 if none */
    int eval_tasks;      /* tasks evaluated then */
    double eval_success; /* their mean success_rate (NaN if none) */
    double eval_return;  /* their mean mean_return (NaN if none) */
    double wall_s;       /* the last wall_time_s metric (NaN if none) */
} crl_run_summary;
/* Filters of crl_store_run_summaries; NULL / 0 members match every run. */
typedef struct {
    const char *method;      /* runs.method equal to this */
    const char *const *tags; /* runs with every one of these tags */
    int n_tags;
} crl_run_filter;
/* The runs that pass f (NULL: all) in id order, one snapshot. */
int crl_store_run_summaries(crl_store *s, const crl_run_filter *f,
                            int (*cb)(const crl_run_summary *, void *), void *ctx,
                            crl_err *err);

/* The difference between two runs' configurations (config_json, through
 * SQLite's json_each): cb once per key that only one has (a or b NULL) or
 * whose values differ, in key order. Values are rendered as JSON (strings
 * quoted, numbers in their shortest exact form). CRL_ENOTFOUND for a run
 * that does not exist, CRL_ECORRUPT for a config_json that is not a JSON
 * object. */
int crl_store_config_diff(crl_store *s, int64_t run_a, int64_t run_b,
                          int (*cb)(const char *key, const char *a, const char *b,
                                    void *ctx),
                          void *ctx, crl_err *err);

/* One row of table csp_decisions as read back. */
typedef struct {
    int64_t run_id;
    int task_idx;
    int64_t step;
    int kept;
    double best_new, best_old; /* NaN when NULL */
    int n_anchors;
    const char *alpha_json; /* the kept weights as stored, a JSON array */
    /* Schema v5 (NULL in rows of older decisions: criterion NULL, rollouts
     * 0, check_kept -1, the reals NaN). */
    const char *criterion;
    int rollouts;
    double new_success, old_success, q_new, q_old;
    int check_kept;
    double check_new, check_old, wall_s;
} crl_csp_decision_row;
/* The CSP decisions of run_id in task order. */
int crl_store_csp_decisions(crl_store *s, int64_t run_id,
                            int (*cb)(const crl_csp_decision_row *, void *), void *ctx,
                            crl_err *err);

/* ------------------------------------------------------------------------ */
/* JSON through SQLite's JSON functions (store/json.c), so that text the
 * store wrote (config_json, modifiers) reads back, and JSON output renders
 * numbers, exactly as SQLite does. */

typedef enum {
    CRL_JSON_NULL, /* null, or a path that is absent */
    CRL_JSON_INT,
    CRL_JSON_REAL,
    CRL_JSON_TEXT,  /* a string; an array or object read whole is its JSON text */
    CRL_JSON_OBJECT /* only in crl_json_member: an object of members */
} crl_json_type;

/* A value read from JSON, with SQLite's conversions: text renders numbers
 * (NULL for null), i and num convert text and numbers as SQL would. */
typedef struct {
    crl_json_type type;
    const char *text;
    int64_t i;
    double num;
} crl_json_value;

/* Top-level members of the JSON text json (NULL reads as "{}") in order:
 * cb(key, value) per member, value as SQL json_each's atom (a member that
 * is an array or object reads as null). CRL_ECORRUPT if json is not valid
 * JSON. */
int crl_store_json_each(crl_store *s, const char *json,
                        int (*cb)(const char *key, const crl_json_value *v, void *ctx),
                        void *ctx, crl_err *err);
/* values of paths[0..n_paths) ("$.a", "$.b[0]", ... at most
 * CRL_STORE_MAX_KEYS) in json, passed to cb in one call. CRL_ECORRUPT if
 * json is not valid JSON. */
int crl_store_json_extract(crl_store *s, const char *json, const char *const *paths,
                           int n_paths,
                           int (*cb)(const crl_json_value *values, void *ctx), void *ctx,
                           crl_err *err);

/* A member of a JSON object being built: key and a value of type. REAL
 * values that are not finite and TEXT that is NULL are written as null. */
typedef struct crl_json_member {
    const char *key;
    crl_json_type type;
    int64_t i;
    double num;
    const char *text;
    const struct crl_json_member *members; /* CRL_JSON_OBJECT */
    int n_members;
} crl_json_member;

/* A JSON document built by appending to its arrays (its own in-memory
 * SQLite; needs no store). */
typedef struct crl_json_doc crl_json_doc;
/* A document starting as the JSON text json. */
int crl_json_doc_create(const char *json, crl_json_doc **out, crl_err *err);
/* Append v (its key is ignored) to the array at path ("$.rows"). */
int crl_json_doc_append(crl_json_doc *d, const char *path, const crl_json_member *v,
                        crl_err *err);
/* Set the member at path ("$[0].tags") to an empty array (for appending). */
int crl_json_doc_set_array(crl_json_doc *d, const char *path, crl_err *err);
/* The document's text, owned by d (valid until the next append or free). */
const char *crl_json_doc_text(const crl_json_doc *d);
void crl_json_doc_free(crl_json_doc *d);

/* The JSON object crl_store_run_create stores for kv (same keys, order and
 * number formats). *json is malloc'd. */
int crl_store_config_json(crl_store *s, const crl_kv *kv, int n_kv, char **json,
                          crl_err *err);
#ifdef __cplusplus
}
#endif
#endif
