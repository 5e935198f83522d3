/* crl BLAS: OpenBLAS loaded at run time with the right kernel.
 *
 * OpenBLAS 0.3.21 (DYNAMIC_ARCH) misdetects some recent CPUs and falls back to
 * its SSE3 "Prescott" kernels, 5-6x slower. The core type can only be forced
 * through OPENBLAS_CORETYPE before the library initialises, so crl does not
 * link OpenBLAS: it dlopen()s it on first use, after choosing the kernel from
 * the CPU's own feature bits (AVX-512 -> SkylakeX, AVX2+FMA -> Haswell).
 * A user-set OPENBLAS_CORETYPE always wins. */
#ifndef CRL_BLAS_H
#define CRL_BLAS_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load OpenBLAS once per process and set its thread count (threads <= 0:
 * one per online core). Safe to call again: later calls only change the
 * thread count. Errors: CRL_ENOTFOUND if libopenblas cannot be loaded. */
int crl_blas_init(int threads, crl_err *err);

/* The kernel crl asks OpenBLAS for on this CPU ("SkylakeX", "Haswell"), or
 * NULL when OpenBLAS's own detection is used. OpenBLAS reads
 * OPENBLAS_CORETYPE once, when it is loaded: a host that loads it before
 * crl (Python's numpy does) can set the variable to this first, unless
 * the user set it (crl's Python package does, docs/python.md). */
const char *crl_blas_preferred_core(void);

/* Kernel OpenBLAS runs ("Haswell", "SkylakeX", ...), after crl_blas_init. */
const char *crl_blas_kernel(void);
/* How the kernel was chosen, one line ("forced by crl: CPU has AVX2+FMA"). */
const char *crl_blas_how(void);
int crl_blas_threads(void);
void crl_blas_set_threads(int threads);

/* Row-major C = alpha * op(A) op(B) + beta * C, op = 'N' or 'T'.
 * Initialises BLAS with default threads if nobody did. */
void crl_sgemm(char ta, char tb, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* LAPACK's sgesvd (column-major, as in LAPACK): A = U S V^T of the m x n
 * matrix a (overwritten), jobu / jobvt 'A', 'S', 'O' or 'N' as in LAPACK.
 * lwork = -1 is LAPACK's workspace query (the size is returned in work[0]).
 * Resolved from the same OpenBLAS as crl_sgemm, whose LAPACK part is optional
 * at load: CRL_ENOTFOUND if it is missing, CRL_EINVAL for a bad argument,
 * CRL_ENAN if the iteration did not converge. */
int crl_sgesvd(char jobu, char jobvt, int m, int n, float *a, int lda, float *s, float *u,
               int ldu, float *vt, int ldvt, float *work, int lwork, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
