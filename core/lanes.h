/* Two-lane fork-join for the SAC update (private to crl).
 *
 * The update's GEMMs are small (128 x 256 x 256): OpenBLAS splitting each one
 * over two threads pays a synchronisation per call and leaves cores idle in
 * between. Instead crl runs two independent streams of work (critic 1 and
 * critic 2, the two halves of the actor batch) on two lanes, each calling
 * single-threaded BLAS. Lane 0 is the calling thread; lane 1 is one
 * persistent worker that spins briefly, then sleeps, between phases. */
#ifndef CRL_CORE_LANES_H
#define CRL_CORE_LANES_H

#include "crl/base.h"

typedef struct crl_lanes crl_lanes;
typedef void (*crl_lane_fn)(void *ctx, int lane);

/* n = 1: no thread, crl_lanes_run calls fn(ctx, 0) then fn(ctx, 1).
 * n = 2: one worker thread. */
int crl_lanes_create(int n, crl_lanes **out, crl_err *err);
void crl_lanes_free(crl_lanes *l);
int crl_lanes_count(const crl_lanes *l);
/* Run fn(ctx, 0) and fn(ctx, 1) concurrently; return when both are done.
 * The two calls must touch disjoint memory (or only read shared memory). */
void crl_lanes_run(crl_lanes *l, crl_lane_fn fn, void *ctx);

#endif
