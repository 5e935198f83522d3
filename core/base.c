/* crl base: errors, the random generator, the clock. */
#include "crl/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int crl_errf(crl_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *crl_strerror(int code) {
    switch (code) {
    case CRL_OK:
        return "ok";
    case CRL_EINVAL:
        return "invalid argument";
    case CRL_ENOMEM:
        return "out of memory";
    case CRL_EIO:
        return "I/O error";
    case CRL_ECORRUPT:
        return "corrupt or foreign file";
    case CRL_EBUSY:
        return "database is locked";
    case CRL_ENOTFOUND:
        return "not found";
    case CRL_EMUJOCO:
        return "MuJoCo error";
    case CRL_ENAN:
        return "non-finite value";
    case CRL_EINTR:
        return "interrupted";
    case CRL_EVERSION:
        return "unsupported version";
    default:
        return "unknown error";
    }
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void crl_rng_seed(crl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

void crl_rng_seed_stream(crl_rng *r, uint64_t seed, uint64_t stream) {
    /* Mix the stream id through splitmix so nearby (seed, stream) pairs give
     * unrelated states. */
    uint64_t x = stream * 0xD1342543DE82EF95ull + 0x2545F4914F6CDD1Dull;
    crl_rng_seed(r, seed ^ splitmix64(&x));
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t crl_rng_u64(crl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double crl_rng_uniform(crl_rng *r) {
    return (double)(crl_rng_u64(r) >> 11) * 0x1.0p-53;
}

double crl_rng_range(crl_rng *r, double lo, double hi) {
    return lo + (hi - lo) * crl_rng_uniform(r);
}

double crl_rng_normal(crl_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do { /* Marsaglia polar method: no trig, exact in distribution */
        u = 2.0 * crl_rng_uniform(r) - 1.0;
        v = 2.0 * crl_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

uint64_t crl_rng_below(crl_rng *r, uint64_t n) {
    /* Lemire's rejection keeps the draw unbiased. */
    uint64_t x = crl_rng_u64(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = crl_rng_u64(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* A pure function of (run seed, eval index, episode), so every evaluation of
 * every run is reproducible on its own; the trainer (agents/) and the policy
 * runtime (embed/) must agree on it, hence it lives here. */
uint64_t crl_eval_seed(uint64_t seed, int64_t eval_idx, int ep) {
    crl_rng r;
    crl_rng_seed_stream(&r, seed ^ 0xE7A1ull, (uint64_t)eval_idx * 4096u + (uint64_t)ep);
    return crl_rng_u64(&r);
}

double crl_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
