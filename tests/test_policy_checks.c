/* The policy runtime refuses what would make it act with NaN (issue 23,
 * item 7; docs/robustness.md): weights that are not finite or larger than
 * CRL_POLICY_MAX_WEIGHT, an `info` section of a version this crl does not
 * read, non-finite observations; and it never returns a NaN action with
 * CRL_OK. The files are real exported policies (tests/data/v0, written by
 * `crl export`), patched in memory with their CRC-32 recomputed, so each
 * refusal is the loader's value check, not the checksum. */
#include <check.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl/policy.h"
#include "embed/format.h"

static const char *const FILES[] = {"run1", "run2", "run3", "run5"};

static const char *data(const char *name) {
    static char p[600];
    const char *src = getenv("CRL_SOURCE_DIR");
    snprintf(p, sizeof p, "%s/tests/data/v0/%s.crlp", src ? src : "..", name);
    return p;
}

static unsigned char *slurp(const char *name, size_t *n) {
    FILE *f = fopen(data(name), "rb");
    ck_assert_msg(f != NULL, "cannot open %s", data(name));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    ck_assert(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Offset of the payload of the first section with tag (and its length). */
static size_t section(const unsigned char *b, const char *tag, size_t *len) {
    uint32_t count = pol_get_u32(b + 24);
    size_t off = POL_HEADER_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        size_t l = (size_t)pol_get_u64(b + off + 8);
        if (!memcmp(b + off, tag, 4)) {
            if (len) *len = l;
            return off;
        }
        off += POL_SECTION_HEAD + l;
    }
    ck_abort_msg("no section %s", tag);
    return 0;
}

static void fix_crc(unsigned char *b, size_t n) {
    pol_put_u32(b + n - POL_TRAILER, crl_pf_crc32(0, b, n - POL_TRAILER));
}

/* The first parameter of the first network: the payload starts with in, out,
 * heads, n_hidden, the widths, 6 u32/f32 options and a u64 count. */
static size_t first_weight(const unsigned char *b) {
    size_t off = section(b, "NET ", NULL) + POL_SECTION_HEAD;
    uint32_t nh = pol_get_u32(b + off + 12);
    return off + 16 + 4 * (size_t)nh + 4 * 6 + 8;
}

static int load_with_weight(float w, char *msg, size_t ml) {
    size_t n;
    unsigned char *b = slurp("run1", &n);
    size_t at = first_weight(b);
    /* Sanity: the patched place holds a trained weight now. */
    ck_assert(fabsf(pol_bits_f32(pol_get_u32(b + at))) < 100.0f);
    pol_put_u32(b + at, pol_f32_bits(w));
    fix_crc(b, n);
    crl_policy *p = NULL;
    int rc = crl_policy_load_mem(b, n, &p, msg, ml);
    ck_assert(rc == CRL_OK ? p != NULL : p == NULL);
    crl_policy_free(p);
    free(b);
    return rc;
}

START_TEST(real_policies_load) {
    /* The bound leaves real policies alone: every exported fixture loads,
     * and its largest weight is far below the bound. */
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        crl_policy *p = NULL;
        char msg[512] = "";
        int rc = crl_policy_load(data(FILES[i]), &p, msg, sizeof msg);
        ck_assert_msg(rc == CRL_OK, "%s: %s", FILES[i], msg);
        crl_policy_free(p);
    }
}
END_TEST

START_TEST(huge_weight_refused) {
    char msg[512] = "";
    ck_assert_int_eq(load_with_weight(3e38f, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "network 0: parameter 0 is") && strstr(msg, "|w|"), "%s",
                  msg);
    ck_assert_int_eq(load_with_weight(-2e6f, msg, sizeof msg), CRL_ECORRUPT);
    /* At and below the bound: loads. */
    ck_assert_int_eq(load_with_weight(CRL_POLICY_MAX_WEIGHT, msg, sizeof msg), CRL_OK);
    ck_assert_int_eq(load_with_weight(-1000.0f, msg, sizeof msg), CRL_OK);
}
END_TEST

START_TEST(nan_weight_refused) {
    char msg[512] = "";
    ck_assert_int_eq(load_with_weight(NAN, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "parameter 0 is nan"), "%s", msg);
    ck_assert_int_eq(load_with_weight(-INFINITY, msg, sizeof msg), CRL_ECORRUPT);
}
END_TEST

START_TEST(huge_pool_weight_refused) {
    /* L2M's pool parameters are weights too (run5 is an L2M export): the
     * last float of the L2MP section. */
    size_t n, len;
    unsigned char *b = slurp("run5", &n);
    size_t at = section(b, "L2MP", &len) + POL_SECTION_HEAD + len - 4;
    pol_put_u32(b + at, pol_f32_bits(3e38f));
    fix_crc(b, n);
    crl_policy *p = NULL;
    char msg[512] = "";
    ck_assert_int_eq(crl_policy_load_mem(b, n, &p, msg, sizeof msg), CRL_ECORRUPT);
    ck_assert_msg(strstr(msg, "L2M: pool parameter"), "%s", msg);
    ck_assert_ptr_null(p);
    free(b);
}
END_TEST

START_TEST(info_version_2_refused) {
    /* docs/policy-format.md: "A known section with a version above 1 is
     * refused"; version 1 defines the ancillary `info`. */
    size_t n;
    unsigned char *b = slurp("run1", &n);
    size_t at = section(b, "info", NULL);
    ck_assert_int_eq(pol_get_u32(b + at + 4), 1);
    pol_put_u32(b + at + 4, 2);
    fix_crc(b, n);
    crl_policy *p = NULL;
    char msg[512] = "";
    ck_assert_int_eq(crl_policy_load_mem(b, n, &p, msg, sizeof msg), CRL_EVERSION);
    ck_assert_msg(strstr(msg, "'info' version 2"), "%s", msg);
    ck_assert_ptr_null(p);
    /* An unknown ancillary section of any version is still skipped. */
    memcpy(b + at, "note", 4);
    fix_crc(b, n);
    ck_assert_int_eq(crl_policy_load_mem(b, n, &p, msg, sizeof msg), CRL_OK);
    crl_policy_free(p);
    free(b);
}
END_TEST

static crl_policy *load(const char *name) {
    crl_policy *p = NULL;
    char msg[512] = "";
    ck_assert_msg(crl_policy_load(data(name), &p, msg, sizeof msg) == CRL_OK, "%s", msg);
    return p;
}

START_TEST(nan_observation_is_an_error) {
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        crl_policy *p = load(FILES[i]);
        const int O = crl_policy_obs_dim(p), A = crl_policy_act_dim(p);
        float obs[256], act[64];
        ck_assert(O <= 256 && A <= 64);
        const float bad[] = {NAN, INFINITY, -INFINITY};
        for (int k = 0; k < 3; k++)
            for (int j = 0; j<O; j += O - 1> 0 ? O - 1 : 1) {
                for (int q = 0; q < O; q++) obs[q] = 0.1f;
                obs[j] = bad[k];
                for (int q = 0; q < A; q++) act[q] = 7.0f;
                int rc = crl_policy_act(p, 0, obs, act, CRL_POLICY_DETERMINISTIC, NULL);
                ck_assert_msg(rc == CRL_EINVAL, "%s: obs[%d] = %g gave %d", FILES[i], j,
                              (double)bad[k], rc);
                ck_assert_msg(strstr(crl_policy_error(p), "must be finite"), "%s",
                              crl_policy_error(p));
                /* Nothing computed: the action buffer is as it was. */
                for (int q = 0; q < A; q++) ck_assert(act[q] == 7.0f);
                if (O == 1) break;
            }
        /* A batch with one bad row is refused as a whole. */
        ck_assert_int_eq(crl_policy_set_batch(p, 2), CRL_OK);
        float ob2[512], ac2[128];
        for (int q = 0; q < 2 * O; q++) ob2[q] = 0.1f;
        ob2[O] = NAN;
        ck_assert_int_eq(
            crl_policy_act_batch(p, 0, 2, ob2, ac2, CRL_POLICY_DETERMINISTIC, NULL),
            CRL_EINVAL);
        /* A finite observation still acts. */
        for (int q = 0; q < O; q++) obs[q] = 0.1f;
        ck_assert_int_eq(crl_policy_act(p, 0, obs, act, CRL_POLICY_DETERMINISTIC, NULL),
                         CRL_OK);
        for (int q = 0; q < A; q++) ck_assert(isfinite(act[q]));
        crl_policy_free(p);
    }
}
END_TEST

START_TEST(no_nan_action_with_ok) {
    /* Finite but extreme observations: either an error, or finite actions. */
    const float big[] = {1e30f, -1e30f, 3.4e38f, -3.4e38f, 1e10f};
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        crl_policy *p = load(FILES[i]);
        const int O = crl_policy_obs_dim(p), A = crl_policy_act_dim(p);
        float obs[256], act[64];
        crl_rng rng;
        crl_rng_seed(&rng, 3);
        for (int t = 0; t < crl_policy_num_tasks(p); t++)
            for (size_t k = 0; k < sizeof big / sizeof *big; k++)
                for (int mode = 0; mode < 2; mode++) {
                    for (int q = 0; q < O; q++) obs[q] = big[k] * (q % 2 ? -1.0f : 1.0f);
                    int rc = crl_policy_act(p, t, obs, act, (crl_policy_mode)mode, &rng);
                    ck_assert_msg(rc == CRL_OK || rc == CRL_ENAN, "%s: %d", FILES[i], rc);
                    for (int q = 0; q < A; q++)
                        ck_assert_msg(isfinite(act[q]), "%s task %d obs %g: action %g",
                                      FILES[i], t, (double)big[k], (double)act[q]);
                }
        crl_policy_free(p);
    }
}
END_TEST

START_TEST(diverged_simulation_act_mj) {
    /* act_mj on a simulation whose state is NaN: CRL_EMUJOCO, nothing
     * applied (run1 is a pendulum policy: a built-in task). */
    crl_policy *p = load("run1");
    char xml[] = "/tmp/crl_test_policy_checks_XXXXXX";
    int fd = mkstemp(xml);
    ck_assert(fd >= 0);
    close(fd);
    char msg[512] = "";
    ck_assert_msg(crl_policy_write_task_xml(p, 0, xml, msg, sizeof msg) == CRL_OK, "%s",
                  msg);
    char err[1000] = "";
    mjModel *m = mj_loadXML(xml, NULL, err, sizeof err);
    unlink(xml);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(crl_policy_prepare_model(p, 0, m, msg, sizeof msg), CRL_OK);
    mjData *d = mj_makeData(m);
    ck_assert_int_eq(crl_policy_reset_mj(p, 0, m, d, 1), CRL_OK);
    ck_assert_int_eq(crl_policy_act_mj(p, 0, m, d), CRL_OK);
    for (int i = 0; i < m->nu; i++) ck_assert(isfinite(d->ctrl[i]));
    d->qvel[0] = NAN;
    for (int i = 0; i < m->nu; i++) d->ctrl[i] = 0.25;
    ck_assert_int_eq(crl_policy_act_mj(p, 0, m, d), CRL_EMUJOCO);
    ck_assert_msg(strstr(crl_policy_error(p), "diverged"), "%s", crl_policy_error(p));
    for (int i = 0; i < m->nu; i++) ck_assert(d->ctrl[i] == 0.25);
    mj_deleteData(d);
    mj_deleteModel(m);
    crl_policy_free(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("policy_checks");
    TCase *tc = tcase_create("checks");
    tcase_add_test(tc, real_policies_load);
    tcase_add_test(tc, huge_weight_refused);
    tcase_add_test(tc, nan_weight_refused);
    tcase_add_test(tc, huge_pool_weight_refused);
    tcase_add_test(tc, info_version_2_refused);
    tcase_add_test(tc, nan_observation_is_an_error);
    tcase_add_test(tc, no_nan_action_with_ok);
    tcase_add_test(tc, diverged_simulation_act_mj);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
