/* OpenBLAS, loaded at run time so that crl can pick its kernel first.
 * See include/crl/blas.h for why. This is the one piece of process-wide
 * state in crl: a BLAS library is a process-wide resource. */
#include "crl/blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cblas enums, as in cblas.h (row-major 101, no-trans 111, trans 112). */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*corename_fn)(void);
/* LAPACK's Fortran sgesvd_ (Debian's OpenBLAS exports the LAPACK symbols but
 * not LAPACKE): every argument by reference, then the hidden lengths of the
 * two CHARACTER arguments (gfortran's convention; 1 each). */
typedef void (*sgesvd_fn)(const char *, const char *, const int *, const int *, float *,
                          const int *, float *, float *, const int *, float *,
                          const int *, float *, const int *, int *, size_t, size_t);

static struct {
    pthread_once_t once;
    int status;
    char msg[256];
    void *handle;
    sgemm_fn sgemm;
    sgemv_fn sgemv;
    set_threads_fn set_threads;
    get_threads_fn get_threads;
    corename_fn corename;
    sgesvd_fn sgesvd; /* optional: NULL if the library has no LAPACK */
    char how[200];
    int small_by_rows; /* see crl_sgemm */
} g_blas = {PTHREAD_ONCE_INIT, 0, "", NULL, NULL, NULL, NULL, NULL, NULL, NULL, "", 0};

/* The kernel OpenBLAS should use on this CPU, from the CPU's own feature
 * bits, or NULL when OpenBLAS's detection is good enough (no AVX2). */
static const char *wanted_core(const char **why) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        *why = "CPU has AVX-512";
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *why = "CPU has AVX2+FMA";
        return "Haswell"; /* also best on AMD Zen here: 71 vs 67 GFLOPS/core */
    }
    *why = "CPU has no AVX2";
    return NULL;
}

const char *crl_blas_preferred_core(void) {
    const char *why = "";
    return wanted_core(&why);
}

static void blas_load(void) {
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so",
                                  "libopenblasp.so.0", NULL};
    /* Already in the process (the host program linked it)? Then its kernel is
     * fixed; use it and say so. */
    void *h = NULL;
    for (int i = 0; names[i] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (h) {
        snprintf(g_blas.how, sizeof g_blas.how,
                 "OpenBLAS was already loaded by the host program");
    } else if (env && *env) {
        snprintf(g_blas.how, sizeof g_blas.how, "OPENBLAS_CORETYPE=%s set by the user",
                 env);
    } else {
        const char *why = "";
        const char *core = wanted_core(&why);
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 0);
            snprintf(g_blas.how, sizeof g_blas.how,
                     "forced by crl (%s); set OPENBLAS_CORETYPE to override", why);
        } else {
            snprintf(g_blas.how, sizeof g_blas.how, "OpenBLAS auto-detection (%s)", why);
        }
    }
    for (int i = 0; names[i] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        g_blas.status = CRL_ENOTFOUND;
        snprintf(g_blas.msg, sizeof g_blas.msg,
                 "cannot load OpenBLAS (libopenblas.so.0): %s; install libopenblas0",
                 dlerror());
        return;
    }
    g_blas.handle = h;
    g_blas.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    g_blas.sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
    g_blas.set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    g_blas.get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    g_blas.corename = (corename_fn)dlsym(h, "openblas_get_corename");
    /* LAPACK is needed only by crl_sgesvd (Arrow prototypes); a BLAS-only
     * OpenBLAS still runs everything else, and crl_sgesvd says what is missing. */
    g_blas.sgesvd = (sgesvd_fn)dlsym(h, "sgesvd_");
    if (!g_blas.sgemm || !g_blas.sgemv || !g_blas.set_threads || !g_blas.get_threads ||
        !g_blas.corename) {
        g_blas.status = CRL_ENOTFOUND;
        snprintf(g_blas.msg, sizeof g_blas.msg,
                 "the loaded BLAS is not OpenBLAS (missing cblas_sgemm, cblas_sgemv "
                 "or openblas_get_corename)");
        return;
    }
    /* OpenBLAS 0.3.21's AVX-512 kernels send small products (M N K up to
     * 10^6) to sgemm_small_kernel_*, whose NN variant mallocs on every call
     * (seen with gdb: 256 bytes, 4 times per SAC update at the heads), which
     * breaks the no-allocation rule of the training step and of acting.
     * crl_sgemm computes those products row by row with sgemv instead. */
    const char *core = g_blas.corename();
    g_blas.small_by_rows =
        core && (!strcmp(core, "SkylakeX") || !strcmp(core, "Cooperlake") ||
                 !strcmp(core, "SapphireRapids"));
    g_blas.status = CRL_OK;
}

int crl_blas_init(int threads, crl_err *err) {
    pthread_once(&g_blas.once, blas_load);
    if (g_blas.status != CRL_OK) return crl_errf(err, g_blas.status, "%s", g_blas.msg);
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    g_blas.set_threads(threads);
    return CRL_OK;
}

static int ensure_loaded(void) {
    if (g_blas.sgemm) return 1;
    if (crl_blas_init(0, NULL) == CRL_OK) return 1;
    return 0;
}

const char *crl_blas_kernel(void) {
    return ensure_loaded() ? g_blas.corename() : "unavailable";
}

const char *crl_blas_how(void) {
    return ensure_loaded() ? g_blas.how : g_blas.msg;
}

int crl_blas_threads(void) {
    return ensure_loaded() ? g_blas.get_threads() : 0;
}

void crl_blas_set_threads(int threads) {
    if (ensure_loaded()) g_blas.set_threads(threads > 0 ? threads : 1);
}

void crl_sgemm(char ta, char tb, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!ensure_loaded()) {
        /* No BLAS: crl_blas_init reports this at start-up; never reached in a
         * process that checked it. Fail loudly rather than compute garbage. */
        fprintf(stderr, "crl: %s\n", g_blas.msg);
        abort();
    }
    if (M == 1 && ta == 'N') {
        /* One row (acting on one observation): sgemm would pack B for a
         * single row; sgemv streams it once, about 2x faster at 256 x 256. */
        if (tb == 'N') /* c = a B, B is K x N: c = B^T a */
            g_blas.sgemv(ROW_MAJOR, TRANS, K, N, alpha, B, ldb, A, 1, beta, C, 1);
        else /* c = a B^T, B is N x K: c = B a */
            g_blas.sgemv(ROW_MAJOR, NO_TRANS, N, K, alpha, B, ldb, A, 1, beta, C, 1);
        return;
    }
    if (g_blas.small_by_rows && ta == 'N' && (double)M * N * K <= 1e6) {
        /* The AVX-512 small-matrix path allocates (blas_load): one sgemv per
         * row of A, as for M == 1. */
        for (int i = 0; i < M; i++) {
            const float *a = A + (size_t)i * lda;
            float *c = C + (size_t)i * ldc;
            if (tb == 'N')
                g_blas.sgemv(ROW_MAJOR, TRANS, K, N, alpha, B, ldb, a, 1, beta, c, 1);
            else
                g_blas.sgemv(ROW_MAJOR, NO_TRANS, N, K, alpha, B, ldb, a, 1, beta, c, 1);
        }
        return;
    }
    g_blas.sgemm(ROW_MAJOR, ta == 'T' ? TRANS : NO_TRANS, tb == 'T' ? TRANS : NO_TRANS, M,
                 N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int crl_sgesvd(char jobu, char jobvt, int m, int n, float *a, int lda, float *s, float *u,
               int ldu, float *vt, int ldvt, float *work, int lwork, crl_err *err) {
    if (!ensure_loaded()) return crl_errf(err, g_blas.status, "%s", g_blas.msg);
    if (!g_blas.sgesvd)
        return crl_errf(
            err, CRL_ENOTFOUND,
            "the loaded OpenBLAS has no LAPACK (missing sgesvd_); install "
            "Debian's libopenblas0 (pthread or openmp variant), which has it");
    /* The checks LAPACK would make, so that its error handler (which prints
     * to stdout) is never reached through crl. */
    const int mn = m < n ? m : n;
    const int need_u = jobu == 'A' ? m : (jobu == 'S' ? m : 1);
    const int need_vt = jobvt == 'A' ? n : (jobvt == 'S' ? mn : 1);
    if (m < 0 || n < 0 || lda < (m > 1 ? m : 1) || ldu < (need_u > 1 ? need_u : 1) ||
        ldvt < (need_vt > 1 ? need_vt : 1) || !jobu || !jobvt || !strchr("ASON", jobu) ||
        !strchr("ASON", jobvt))
        return crl_errf(
            err, CRL_EINVAL,
            "sgesvd: bad argument (job %c%c, %d x %d, lda %d, ldu %d, ldvt %d)", jobu,
            jobvt, m, n, lda, ldu, ldvt);
    int info = 0;
    g_blas.sgesvd(&jobu, &jobvt, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork,
                  &info, 1, 1);
    if (info < 0)
        return crl_errf(err, CRL_EINVAL, "sgesvd: argument %d is invalid", -info);
    if (info > 0)
        return crl_errf(err, CRL_ENAN,
                        "sgesvd: %d superdiagonals did not converge (NaN or Inf in the "
                        "matrix?)",
                        info);
    return CRL_OK;
}
