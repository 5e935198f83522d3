/* Gamma and Dirichlet sampling for CSP's alphas, from an explicit crl_rng.
 *
 * Gamma(a) for a >= 1 is Marsaglia and Tsang's squeeze method ("A simple
 * method for generating gamma variables", ACM TOMS 2000): d = a - 1/3,
 * c = 1/sqrt(9d), v = (1 + c x)^3 with x ~ N(0,1); accept d*v. For a < 1 it
 * uses the same paper's boost, Gamma(a) = Gamma(a + 1) * U^(1/a).
 *
 * A Dirichlet draw is normalised gammas. It is done in log space, because for
 * small concentrations U^(1/a) underflows double (a = 0.01 gives U^100) and
 * every component could round to 0; the normalisation is a log-sum-exp. */
#include "crl/subspace.h"

#include <math.h>

/* Marsaglia-Tsang for shape >= 1. */
static double gamma_mt(crl_rng *rng, double shape) {
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = crl_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        const double u = crl_rng_uniform(rng), x2 = x * x;
        /* The squeeze accepts ~98% of draws without a log. */
        if (u < 1.0 - 0.0331 * x2 * x2) return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) return d * v;
    }
}

/* 1 - U lies in (0, 1], so the boost never takes log(0) or gives 0^(1/a). */
static double boost_u(crl_rng *rng) {
    return 1.0 - crl_rng_uniform(rng);
}

double crl_gamma_sample(crl_rng *rng, double shape) {
    if (!(shape > 0.0) || isinf(shape)) return NAN;
    if (shape >= 1.0) return gamma_mt(rng, shape);
    const double g = gamma_mt(rng, shape + 1.0);
    return g * pow(boost_u(rng), 1.0 / shape);
}

/* log Gamma(shape) draw, the same random stream as crl_gamma_sample. */
static double log_gamma_sample(crl_rng *rng, double shape) {
    if (shape >= 1.0) return log(gamma_mt(rng, shape));
    const double lg = log(gamma_mt(rng, shape + 1.0));
    return lg + log(boost_u(rng)) / shape;
}

/* Concentration i: conc[i], or (conc == NULL) 1 for all but the last, which
 * gets c_last. */
static double conc_at(const double *conc, double c_last, int n, int i) {
    if (conc) return conc[i];
    return i == n - 1 ? c_last : 1.0;
}

/* The log-gammas are needed twice (for the log-sum-exp, then for each
 * component), and n is not bounded, so instead of a buffer the second pass
 * replays the same draws from a copy of the generator (crl_rng is a value
 * type). Dirichlet draws are a few per environment step or per batch row,
 * so the second pass costs nothing that matters. */
static void dirichlet(crl_rng *rng, const double *conc, double c_last, int n,
                      float *out) {
    const crl_rng start = *rng;
    /* Running log-sum-exp, sum * e^m, started from the first draw (n >= 1), so
     * sum >= 1 throughout. */
    double m = log_gamma_sample(rng, conc_at(conc, c_last, n, 0)), sum = 1.0;
    for (int i = 1; i < n; i++) {
        const double l = log_gamma_sample(rng, conc_at(conc, c_last, n, i));
        if (l > m) {
            sum = sum * exp(m - l) + 1.0;
            m = l;
        } else {
            sum += exp(l - m);
        }
    }
    const double lse = m + log(sum);
    crl_rng replay = start;
    for (int i = 0; i < n; i++)
        out[i] = (float)exp(log_gamma_sample(&replay, conc_at(conc, c_last, n, i)) - lse);
}

int crl_dirichlet_sample(crl_rng *rng, const double *conc, int n, float *out,
                         crl_err *err) {
    if (!rng || !out || !conc || n < 1)
        return crl_errf(err, CRL_EINVAL, "dirichlet: bad arguments (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (!(conc[i] > 0.0) || isinf(conc[i]))
            return crl_errf(err, CRL_EINVAL, "dirichlet: concentration %d is %g", i,
                            conc[i]);
    dirichlet(rng, conc, 0.0, n, out);
    return CRL_OK;
}

int crl_dirichlet_flat(crl_rng *rng, int n, float *out, crl_err *err) {
    if (!rng || !out || n < 1)
        return crl_errf(err, CRL_EINVAL, "dirichlet: bad arguments (n = %d)", n);
    dirichlet(rng, NULL, 1.0, n, out);
    return CRL_OK;
}

int crl_dirichlet_peaked(crl_rng *rng, int n, float *out, crl_err *err) {
    if (!rng || !out || n < 1)
        return crl_errf(err, CRL_EINVAL, "dirichlet: bad arguments (n = %d)", n);
    dirichlet(rng, NULL, (double)n * n, n, out);
    return CRL_OK;
}

int crl_dirichlet_old(crl_rng *rng, int n, float *out, crl_err *err) {
    if (!rng || !out || n < 1)
        return crl_errf(err, CRL_EINVAL, "dirichlet: bad arguments (n = %d)", n);
    if (n == 1) {
        out[0] = 1.0f;
        return CRL_OK;
    }
    dirichlet(rng, NULL, 1.0, n - 1, out);
    out[n - 1] = 0.0f;
    return CRL_OK;
}
