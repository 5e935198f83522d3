/* crl base: error reporting, status codes, the explicit random generator.
 * Every other module includes this. Nothing here allocates. */
#ifndef CRL_BASE_H
#define CRL_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRL_VERSION_STRING "0.1.0"

/* Status codes: 0 is success, errors are negative. */
enum {
    CRL_OK = 0,
    CRL_EINVAL = -1,    /* bad argument or bad user input */
    CRL_ENOMEM = -2,    /* allocation failed */
    CRL_EIO = -3,       /* file or database I/O failed */
    CRL_ECORRUPT = -4,  /* file exists but is not what we expect */
    CRL_EBUSY = -5,     /* database locked by another writer */
    CRL_ENOTFOUND = -6, /* named thing does not exist */
    CRL_EMUJOCO = -7,   /* MuJoCo refused a model or diverged */
    CRL_ENAN = -8,      /* NaN or Inf in a network or loss */
    CRL_EINTR = -9,     /* interrupted by the user (Ctrl-C) */
    CRL_EVERSION = -10  /* schema or format version we cannot read */
};

/* A caller-owned error slot. Functions that can fail take a crl_err* (may be
 * NULL) and fill it with a one-line, human-readable message. */
typedef struct {
    int code;
    char msg[512];
} crl_err;

/* Fill err (if non-NULL) with code and a printf-style message; returns code,
 * so a failing function can `return crl_errf(err, CRL_EINVAL, "...")`. */
int crl_errf(crl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short name of a status code ("invalid argument", ...). Static storage. */
const char *crl_strerror(int code);

/* ---- atomic output files (core/atomic.c) -------------------------------------
 * Every file crl writes for the user goes to a temporary file in the
 * destination's folder ("<dir>/.<name>.tmp-<pid>-<n><ext>"), is fsync'ed and
 * renamed over the destination only when complete; a failure removes the
 * temporary file, so a full disk leaves nothing behind and an existing
 * destination untouched. Errors are CRL_EIO with "cannot write PATH: <OS
 * reason>" (or CRL_ENOMEM, CRL_EINVAL for an empty path). */
typedef struct {
    char *path, *tmp;
    int fd;
    int error; /* errno of the first failed write, 0 if none */
} crl_atomic;

/* Create the temporary file for path (mode 0666 less the umask). */
int crl_atomic_open(crl_atomic *a, const char *path, crl_err *err);
/* Append n bytes; 0, or -1 after a failure (kept for commit to report). */
int crl_atomic_write(crl_atomic *a, const void *data, size_t n);
/* fsync, close and rename over the destination; on any failure (also an
 * earlier write's) the temporary file is removed. Frees a's memory. */
int crl_atomic_commit(crl_atomic *a, crl_err *err);
/* Remove the temporary file and free a (safe after a failed open). */
void crl_atomic_abort(crl_atomic *a);
/* The whole of an in-memory file in one call. */
int crl_atomic_write_file(const char *path, const void *data, size_t n, crl_err *err);
/* For files another library writes by name (SQLite databases): a free
 * temporary name next to path in *tmp (malloc'd; the file is not created),
 * and the final step: fsync tmp and rename it over path (tmp is removed if
 * that fails). */
int crl_atomic_temp(const char *path, char **tmp, crl_err *err);
int crl_atomic_rename(const char *tmp, const char *path, crl_err *err);

/* xoshiro256** generator, seeded through splitmix64. Plain value type: copy it
 * to fork a stream, store it in a checkpoint to resume one. */
typedef struct {
    uint64_t s[4];
    int has_spare; /* Box-Muller keeps its second normal */
    double spare;
} crl_rng;

void crl_rng_seed(crl_rng *r, uint64_t seed);
/* Independent stream derived from (seed, stream id), for envs, eval, etc. */
void crl_rng_seed_stream(crl_rng *r, uint64_t seed, uint64_t stream);
uint64_t crl_rng_u64(crl_rng *r);
double crl_rng_uniform(crl_rng *r);                     /* [0, 1) */
double crl_rng_range(crl_rng *r, double lo, double hi); /* [lo, hi) */
double crl_rng_normal(crl_rng *r);                      /* N(0, 1) */
uint64_t crl_rng_below(crl_rng *r, uint64_t n);         /* uniform in [0, n), n > 0 */

/* Seed of episode ep of evaluation eval_idx of a run seeded with seed (crl's
 * evaluations and `crl eval`, which is evaluation 0). */
uint64_t crl_eval_seed(uint64_t seed, int64_t eval_idx, int ep);

/* Monotonic wall clock in seconds. */
double crl_now(void);

#ifdef __cplusplus
}
#endif
#endif
