/* crl episode records: one episode kept as its initial state, the actions
 * that drove it and what every step returned, which is enough to simulate it
 * again bit for bit (crl replay --verify) and to watch it.
 *
 * A recorder is made once per env and reused for every episode: begin()
 * snapshots the state right after crl_env_reset, add() appends each step
 * into memory allocated up front (no allocation per step), end() snapshots
 * the final state and encodes the record as one little-endian blob (layout:
 * docs/replay.md), which the runners store in the episodes table. */
#ifndef CRL_EPISODE_H
#define CRL_EPISODE_H

#include <stdint.h>

#include "base.h"
#include "env.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crl_episode crl_episode;

/* A recorder for episodes of spec (up to crl_env_max_steps steps); spec must
 * outlive it. Computes the model hash and the modifiers once. CRL_ENOMEM. */
int crl_episode_create(const crl_env_spec *spec, crl_episode **out, crl_err *err);
void crl_episode_free(crl_episode *r); /* safe with NULL */

/* Start a record: snapshot e (call right after crl_env_reset(e, seed, ..)). */
void crl_episode_begin(crl_episode *r, const crl_env *e, uint64_t seed);
/* Append one step: the action given to crl_env_step (as given, before
 * clipping) and the outcome it returned. Ignored unless a record is open. */
void crl_episode_add(crl_episode *r, const float *act, const crl_step_info *info);
/* Close the record: snapshot e's final state and encode the blob. */
void crl_episode_end(crl_episode *r, const crl_env *e);
/* 1 between begin and end. */
int crl_episode_recording(const crl_episode *r);

/* A closed record, as the store keeps it. Pointers stay valid until the
 * recorder's next begin or free. */
typedef struct {
    uint64_t seed;
    int length;                 /* env steps */
    double ret;                 /* sum of the rewards, in step order, in double */
    int success;                /* success at any step */
    const char *env;            /* crl_env_spec_name */
    const char *mujoco_version; /* mj_versionString() */
    const char *model_hash;     /* crl_env_model_hash */
    const char *modifiers;      /* crl_env_modifiers */
    const void *blob;
    size_t blob_n;
} crl_episode_info;

/* CRL_EINVAL if no record was closed since the last begin, or it has more
 * steps than the env allows (it cannot be replayed). */
int crl_episode_get(const crl_episode *r, crl_episode_info *info, crl_err *err);

/* ---- reading records back ------------------------------------------------ */

typedef struct {
    int length, act_dim;
    uint64_t seed;
    char model_hash[17];
    char mujoco_version[17];
    int ended;     /* the last step ended the episode */
    int terminal;  /* ... in a terminal state */
    int truncated; /* ... by its step limit (or a diverged simulation) */
    double ret;
    float *act;             /* length x act_dim, as given to crl_env_step */
    float *reward;          /* length */
    unsigned char *success; /* length, 0 or 1 */
    void *s0, *s1;          /* initial and final snapshots (crl_env_get_state) */
    size_t n0, n1;
} crl_episode_data;

/* Decode a blob into owned arrays (free with crl_episode_data_free).
 * CRL_ECORRUPT with a message saying what is wrong (not a record, truncated,
 * sections that do not add up); CRL_EVERSION for a newer record format;
 * CRL_ENOMEM. Never reads outside blob. */
int crl_episode_decode(const void *blob, size_t n, crl_episode_data *out, crl_err *err);
void crl_episode_data_free(crl_episode_data *d); /* safe on a zeroed struct */

/* Can ep be replayed exactly on spec with this MuJoCo? CRL_EVERSION if it
 * was recorded with another MuJoCo version or another model (hash), naming
 * both; CRL_ECORRUPT if its sizes do not fit the spec. */
int crl_episode_check(const crl_env_spec *spec, const crl_episode_data *ep, crl_err *err);
/* crl_episode_check, then put ep's initial state into e (to step through it
 * with ep's actions, e.g. to render it). */
int crl_episode_restore(crl_env *e, const crl_episode_data *ep, crl_err *err);

typedef struct {
    int verified;   /* every reward, success flag, the end and the final state match */
    int step;       /* first step (0-based action index) that differs; -1 if none
                       or if only the final state differs */
    char what[400]; /* what differed, one line ("" when verified) */
} crl_episode_result;

/* Re-simulate ep on a fresh instance of spec from its initial state with its
 * actions, comparing each step's reward (bit for bit) and success, where the
 * episode ends, and the final state (bit for bit). Returns 0 with *res
 * filled whether or not it matched; an error (crl_episode_check's, CRL_ENOMEM)
 * only when it could not run. */
int crl_episode_verify(const crl_env_spec *spec, const crl_episode_data *ep,
                       crl_episode_result *res, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
