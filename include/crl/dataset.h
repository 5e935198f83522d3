/* crl dataset: expert episodes for offline training, in one SQLite file.
 *
 * A dataset file is its own kind of SQLite database (PRAGMA application_id
 * CRL_DATASET_APP_ID, "CRLD"; user_version CRL_DATASET_SCHEMA_VERSION), not
 * a run store: `crl dataset` writes it, `crl train --offline` reads it.
 * Layout and queries: docs/dataset.md. This module only stores (it lives in
 * store/ and knows nothing of nn, envs or agents): the caller hands it the
 * arrays of an episode and the episode's replay record (episode.h), and gets
 * them back.
 *
 * One row per episode: the task name, the env's model hash and MuJoCo
 * version, the env seed, the source ("scripted", "scripted+noise 0.1",
 * "random", "policy FILE", "run DB:ID"), the length T, the return, success,
 * and the blobs (little-endian float32 unless said):
 *   obs     (T + 1) x obs_dim  the observation after reset, then after each step
 *   act     T x act_dim        the action given to crl_env_step
 *   reward  T
 *   flags   T bytes            bit 0 terminal, bit 1 truncated, bit 2 success
 *   record  the replay record (crl_episode_info.blob), to re-simulate the
 *           episode bit for bit with crl_episode_verify. */
#ifndef CRL_DATASET_H
#define CRL_DATASET_H

#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRL_DATASET_APP_ID         0x43524C44 /* "CRLD" */
#define CRL_DATASET_SCHEMA_VERSION 1

#define CRL_DS_TERMINAL  1u
#define CRL_DS_TRUNCATED 2u
#define CRL_DS_SUCCESS   4u

typedef struct crl_dataset crl_dataset;

/* Open a dataset. create != 0 makes a new file when none exists. A file that
 * is not SQLite, a run store or another program's database gives
 * CRL_ECORRUPT ("not a crl dataset"), a newer schema CRL_EVERSION; neither is
 * modified. CRL_ENOTFOUND when it does not exist and create == 0. */
int crl_dataset_open(const char *path, int create, crl_dataset **out, crl_err *err);
/* Commit and close. Safe with NULL. */
void crl_dataset_close(crl_dataset *ds);

/* One episode to write or as read back. Arrays are the caller's on write;
 * on read they are owned by the crl_ds_episode (crl_ds_episode_free). */
typedef struct {
    int64_t id; /* on read: the row id */
    const char *task;
    const char *model_hash;     /* 16 hex digits */
    const char *mujoco_version; /* mj_versionString() */
    const char *source;
    uint64_t seed; /* the env seed the episode was reset with */
    int length, obs_dim, act_dim;
    double ret;
    int success; /* success at any step */
    float *obs;
    float *act;
    float *reward;
    unsigned char *flags;
    void *record; /* the replay record; NULL: none (the dataset says why) */
    size_t record_n;
} crl_ds_episode;

/* Append one episode. Writes are batched into one transaction that is
 * committed every few seconds, by crl_dataset_flush and on close; a process
 * killed mid-collection keeps every committed episode and a valid file.
 * Checks the sizes (length >= 1, dims >= 1, arrays present) first:
 * CRL_EINVAL and nothing written. A write that fails (a full disk) gives
 * CRL_EIO with SQLite's message. */
int crl_dataset_add(crl_dataset *ds, const crl_ds_episode *ep, crl_err *err);
int crl_dataset_flush(crl_dataset *ds, crl_err *err);

/* What a dataset holds, per task, in first-seen order. */
typedef struct {
    char task[64];
    int obs_dim, act_dim;
    int64_t episodes, steps;
    double success_rate, mean_return;
    char model_hash[17];
    int64_t
        bytes; /* the blobs of the task's episodes (obs, act, reward, flags, record) */
} crl_ds_task_summary;
/* *out is malloc'd (free()), *n tasks. */
int crl_dataset_summary(crl_dataset *ds, crl_ds_task_summary **out, int *n, crl_err *err);

/* Episode ids of a task in insertion order (*ids malloc'd; *n may be 0). */
int crl_dataset_episode_ids(crl_dataset *ds, const char *task, int64_t **ids, int *n,
                            crl_err *err);
/* Read one episode with every blob checked against its sizes: a truncated
 * or mis-sized blob gives CRL_ECORRUPT naming the episode and the blob. */
int crl_dataset_episode(crl_dataset *ds, int64_t id, crl_ds_episode *out, crl_err *err);
void crl_ds_episode_free(crl_ds_episode *ep); /* safe on a zeroed struct */

/* All transitions of one task, flattened for offline updates: n rows of
 * obs, act, reward, next_obs and done (1 for a terminal step, 0 otherwise;
 * truncation is not done). Every episode is checked as in
 * crl_dataset_episode, and every episode's dims must equal obs_dim and
 * act_dim (the caller's env): a mismatch gives CRL_EINVAL naming the dataset
 * task, the episode and both sizes. A task with no episodes: CRL_ENOTFOUND. */
typedef struct {
    int64_t n;
    int obs_dim, act_dim;
    float *obs, *act, *reward, *next_obs;
    unsigned char *done;
} crl_ds_transitions;
int crl_dataset_transitions(crl_dataset *ds, const char *task, int obs_dim, int act_dim,
                            crl_ds_transitions *out, crl_err *err);
void crl_ds_transitions_free(crl_ds_transitions *t); /* safe on a zeroed struct */

#ifdef __cplusplus
}
#endif
#endif
