/* Counting malloc/calloc/realloc in a test executable (glibc: forwarded to
 * __libc_*), to check that hot paths do not allocate. Include in ONE test
 * file per executable. HAVE_MALLOC_COUNT is 0 under AddressSanitizer, which
 * owns malloc itself; tests then skip the check and say so. */
#ifndef CRL_TEST_MALLOC_COUNT_H
#define CRL_TEST_MALLOC_COUNT_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_MALLOC_COUNT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_MALLOC_COUNT 0
#endif
#endif
#if !defined(HAVE_MALLOC_COUNT) && defined(__GLIBC__)
#define HAVE_MALLOC_COUNT 1
#endif
#ifndef HAVE_MALLOC_COUNT
#define HAVE_MALLOC_COUNT 0
#endif

#if HAVE_MALLOC_COUNT
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
/* Relaxed atomic: the SAC update's second lane allocates (or not) too. */
static long g_alloc_calls;
void *malloc(size_t n) {
    __atomic_add_fetch(&g_alloc_calls, 1, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    __atomic_add_fetch(&g_alloc_calls, 1, __ATOMIC_RELAXED);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    __atomic_add_fetch(&g_alloc_calls, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}
static inline long alloc_calls(void) {
    return __atomic_load_n(&g_alloc_calls, __ATOMIC_RELAXED);
}
#endif

#endif
