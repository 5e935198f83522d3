/* Two-lane fork-join: one persistent worker, generation counter, spin then
 * sleep. */
#include "core/lanes.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Both sides spin briefly (tens of microseconds: longer than the usual gap
 * between two phases of an update) and then block, so that a machine running
 * more threads than cores loses no CPU to spinning. */
enum { WORKER_SPINS = 4000, MAIN_SPINS = 4000 };

struct crl_lanes {
    int n;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* worker waits here for work */
    pthread_cond_t done_cv; /* caller waits here for the worker */
    int sleeping, main_sleeping, quit;
    atomic_uint gen;  /* bumped by the caller for each run */
    atomic_uint done; /* generation the worker finished */
    crl_lane_fn fn;
    void *ctx;
};

static void *worker(void *arg) {
    crl_lanes *l = arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&l->gen, memory_order_acquire)) == seen) {
            if (++spins < WORKER_SPINS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&l->mu);
            l->sleeping = 1;
            while (atomic_load_explicit(&l->gen, memory_order_acquire) == seen &&
                   !l->quit)
                pthread_cond_wait(&l->cv, &l->mu);
            l->sleeping = 0;
            int quit = l->quit;
            pthread_mutex_unlock(&l->mu);
            if (quit) return NULL;
            spins = 0;
        }
        seen = g;
        if (l->quit) return NULL;
        l->fn(l->ctx, 1);
        atomic_store_explicit(&l->done, g, memory_order_release);
        pthread_mutex_lock(&l->mu);
        if (l->main_sleeping) pthread_cond_signal(&l->done_cv);
        pthread_mutex_unlock(&l->mu);
    }
}

int crl_lanes_create(int n, crl_lanes **out, crl_err *err) {
    *out = NULL;
    crl_lanes *l = calloc(1, sizeof *l);
    if (!l) return crl_errf(err, CRL_ENOMEM, "lanes: out of memory");
    l->n = n >= 2 ? 2 : 1;
    atomic_init(&l->gen, 0);
    atomic_init(&l->done, 0);
    if (l->n == 2) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        pthread_cond_init(&l->done_cv, NULL);
        if (pthread_create(&l->thread, NULL, worker, l) != 0) {
            /* No thread: run both lanes on the caller, same results. */
            pthread_mutex_destroy(&l->mu);
            pthread_cond_destroy(&l->cv);
            pthread_cond_destroy(&l->done_cv);
            l->n = 1;
        }
    }
    *out = l;
    return CRL_OK;
}

void crl_lanes_free(crl_lanes *l) {
    if (!l) return;
    if (l->n == 2) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        atomic_fetch_add_explicit(&l->gen, 1, memory_order_release);
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        pthread_cond_destroy(&l->done_cv);
    }
    free(l);
}

int crl_lanes_count(const crl_lanes *l) {
    return l->n;
}

void crl_lanes_run(crl_lanes *l, crl_lane_fn fn, void *ctx) {
    if (l->n == 1) {
        fn(ctx, 0);
        fn(ctx, 1);
        return;
    }
    l->fn = fn;
    l->ctx = ctx;
    unsigned g = atomic_fetch_add_explicit(&l->gen, 1, memory_order_release) + 1;
    pthread_mutex_lock(&l->mu);
    if (l->sleeping) pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    fn(ctx, 0);
    for (int spins = 0; spins < MAIN_SPINS; spins++) {
        if (atomic_load_explicit(&l->done, memory_order_acquire) == g) return;
        cpu_relax();
    }
    pthread_mutex_lock(&l->mu);
    l->main_sleeping = 1;
    while (atomic_load_explicit(&l->done, memory_order_acquire) != g)
        pthread_cond_wait(&l->done_cv, &l->mu);
    l->main_sleeping = 0;
    pthread_mutex_unlock(&l->mu);
}
