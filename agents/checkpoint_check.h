/* Checks of a checkpoint read back from the store (issue 23): the learner
 * it holds is finite, and a resume falls back past a corrupt checkpoint to
 * the previous one the store keeps (docs/robustness.md, "Checksums and kept
 * checkpoints"). Implemented in agents/runner.c. */
#ifndef CRL_AGENTS_CHECKPOINT_CHECK_H
#define CRL_AGENTS_CHECKPOINT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "crl/store.h"

/* CRL_ECORRUPT (one line naming the part and index) unless every weight,
 * target, alpha and Adam moment of the crl_sac_save blob is finite; the
 * blob's header and length are checked too (crl_sac_blob_info). */
int crl_checkpoint_check_learner(const void *sac_blob, size_t n, crl_err *err);

/* CRL_ECORRUPT unless n floats at p (any alignment) are finite. */
int crl_checkpoint_check_floats(const void *p, size_t n, const char *what, crl_err *err);

/* The newest checkpoint of run_id that reads back intact: its checksum
 * matches and check (if not NULL) accepts it. With fallback, a checkpoint
 * that fails either is reported in one line on stderr and the previous one
 * is tried; without, the failure is returned with one line naming the run,
 * the step and what to do. CRL_ENOTFOUND if the run has no checkpoint. */
int crl_checkpoint_fetch(crl_store *store, int64_t run_id, int fallback,
                         int (*check)(const void *blob, size_t n, crl_err *err),
                         int *task_idx, int64_t *step, void **blob, size_t *n,
                         crl_err *err);

#endif
