/* Test helpers shared by tests/test_pool.c and tests/test_routers.c: a small
 * CW-shaped base MLP (widths not multiples of 4, in_dim 5 below the LoRA
 * rank 8) with non-trivial biases and LayerNorm (not just Glorot + zeros).
 * Needs fd.h (fbuf) included before it. */
#ifndef CRL_TESTS_POOL_FIXTURE_H
#define CRL_TESTS_POOL_FIXTURE_H

static void pool_small_spec(crl_mlp_spec *s, int heads) {
    crl_mlp_spec_cw(s, 5, 3, heads, 3, 8);
    s->hidden[0] = 9;
    s->hidden[1] = 6;
    s->hidden[2] = 7;
}

static void pool_make_base(crl_mlp *m, float **params, crl_rng *rng, int heads) {
    crl_mlp_spec s;
    pool_small_spec(&s, heads);
    ck_assert_int_eq(crl_mlp_init(m, &s, NULL), 0);
    *params = fbuf(m->n_params);
    crl_mlp_init_params(m, *params, rng);
    for (size_t k = 0; k < m->n_params; k++)
        (*params)[k] += (float)crl_rng_range(rng, -0.2, 0.2);
}

#endif
