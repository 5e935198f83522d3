/* crl export: write policy files (.crlp, read by policy.h) from a run store.
 * Part of the full library (libcrl) only: it reads the SQLite run store,
 * which the policy runtime (libcrl_policy) does not link. */
#ifndef CRL_EXPORT_H
#define CRL_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Export the latest checkpoint of run_id in the run store db as a policy
 * file at path: every task of the run, or only scenario position task
 * (>= 0). Written to a temporary file and renamed, so path is never left
 * half-written. CRL_ENOTFOUND (no such run or no checkpoint), CRL_EINVAL,
 * CRL_EIO, CRL_ECORRUPT. */
int crl_policy_export(const char *db, int64_t run_id, int task, const char *path,
                      char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
