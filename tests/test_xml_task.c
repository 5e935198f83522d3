/* Tests for crl_env_spec_create_xml (envs/xml_task.c): a user's own MJCF
 * file as a task. Tiny models are written to a temp dir; their physics is
 * simple enough to check by hand (a 2 kg cart on a frictionless slide, no
 * gravity, no contacts), and every unusable file gives one clear line that
 * names it. */
#include "crl/env.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_xml_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    char p[600];
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(dp);
    rmdir(dir);
}

static const char *write_file(const char *name, const char *text) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A cart of 2 kg on an x slide with two motors: "push" (ctrlrange -4..4)
 * and "bias" (0..2), both gear 1, so the force is ctrl0 + ctrl1 newtons.
 * A site 0.1 m ahead of the cart. Timestep 0.01 s. */
#define CART_BODY                                                                        \
    "<option timestep='0.01' gravity='0 0 0'><flag contact='disable'/></option>"         \
    "<worldbody><body name='cart'>"                                                      \
    "<joint name='slide' type='slide' axis='1 0 0'/>"                                    \
    "<geom type='sphere' size='0.1' mass='2'/>"                                          \
    "<site name='tip' pos='0.1 0 0'/>"                                                   \
    "</body></worldbody>"                                                                \
    "<actuator>"                                                                         \
    "<motor name='push' joint='slide' gear='1' ctrllimited='true' ctrlrange='-4 4'/>"    \
    "<motor name='bias' joint='slide' gear='1' ctrllimited='true' ctrlrange='0 2'/>"     \
    "</actuator>"

static const char CART[] = "<mujoco model='cart'>" CART_BODY "</mujoco>";
static const char CART_SENSORS[] =
    "<mujoco model='cart'>" CART_BODY
    "<sensor><jointpos joint='slide'/><jointvel joint='slide'/>"
    "<framepos objtype='site' objname='tip'/></sensor></mujoco>";

static crl_env_spec *load(const char *path, const crl_xml_task *o) {
    crl_env_spec *s = NULL;
    crl_err err = {0};
    int rc = crl_env_spec_create_xml(path, o, &s, &err);
    ck_assert_msg(rc == CRL_OK, "%s: %s", path, err.msg);
    ck_assert_ptr_nonnull(s);
    return s;
}

static crl_env *make_env(const crl_env_spec *s) {
    crl_env *e = NULL;
    ck_assert_int_eq(crl_env_create(s, &e, NULL), CRL_OK);
    return e;
}

/* Sizes, defaults, the action map onto ctrlrange, and the forward reward:
 * constant force F on mass m from velocity v0, five semi-implicit Euler
 * substeps of h: displacement h (5 v0 + 15 h F/m), so the reward (its rate
 * over 5h) is v0 + 3 h F/m. */
START_TEST(test_forward_reward) {
    const char *path = write_file("cart.xml", CART);
    crl_env_spec *s = load(path, NULL);
    ck_assert_str_eq(crl_env_spec_name(s), path);
    ck_assert_int_eq(crl_env_act_dim(s), 2);
    ck_assert_int_eq(crl_env_obs_dim(s), 2); /* qpos + qvel of one slide */
    ck_assert_int_eq(crl_env_max_steps(s), 1000);
    ck_assert_int_eq(crl_env_frame_skip(s), 5);
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[2];
    crl_step_info info;
    const float acts[][2] = {{0.5f, -1.0f}, {-1.0f, 1.0f}, {0.0f, 0.0f}, {1.0f, 1.0f}};
    const double ctrl[][2] = {{2.0, 0.0}, {-4.0, 2.0}, {0.0, 1.0}, {4.0, 2.0}};
    crl_env_reset(e, 1, obs);
    for (int c = 0; c < 4; c++) {
        double v0 = d->qvel[0], x0 = d->qpos[0];
        ck_assert(obs[0] == (float)x0 && obs[1] == (float)v0);
        crl_env_step(e, acts[c], obs, &info);
        ck_assert(d->ctrl[0] == ctrl[c][0] && d->ctrl[1] == ctrl[c][1]);
        double acc = (ctrl[c][0] + ctrl[c][1]) / 2.0, h = 0.01;
        double want = v0 + 3 * h * acc;
        ck_assert_msg(fabs(info.reward - want) < 1e-5, "case %d: %g vs %g", c,
                      info.reward, want);
        ck_assert(fabs(d->qvel[0] - (v0 + 5 * h * acc)) < 1e-12);
        ck_assert(obs[0] == (float)d->qpos[0] && obs[1] == (float)d->qvel[0]);
        ck_assert_int_eq(info.success, 0);
        ck_assert_int_eq(info.terminal, 0);
        ck_assert_int_eq(info.truncated, 0);
    }
    /* A named body works the same way. */
    crl_xml_task o = {.reward = CRL_XML_REWARD_FORWARD, .body = "cart"};
    crl_env_spec *s2 = load(path, &o);
    crl_env_spec_free(s2);
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* Reach: -|site - target|, from the position after the step. */
START_TEST(test_reach_reward) {
    const char *path = write_file("cart.xml", CART);
    crl_xml_task o = {.reward = CRL_XML_REWARD_REACH,
                      .site = "tip",
                      .target = {1.0, 0.5, 0.0},
                      .max_steps = 7,
                      .frame_skip = 2};
    crl_env_spec *s = load(path, &o);
    ck_assert_int_eq(crl_env_max_steps(s), 7);
    ck_assert_int_eq(crl_env_frame_skip(s), 2);
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[2], a[2] = {1.0f, 1.0f};
    crl_step_info info;
    crl_env_reset(e, 2, obs);
    for (int t = 1; t <= 7; t++) {
        crl_env_step(e, a, obs, &info);
        double x = d->qpos[0] + 0.1; /* the site, from the state by hand */
        double want = -sqrt((x - 1.0) * (x - 1.0) + 0.25);
        ck_assert_msg(fabs(info.reward - want) < 1e-6, "t %d: %g vs %g", t, info.reward,
                      want);
        ck_assert(fabs(d->time - t * 0.02) < 1e-12);
        ck_assert_int_eq(info.truncated, t == 7);
    }
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* With sensors the observation is the sensordata, up to date with the state
 * after the step (not one substep behind). */
START_TEST(test_sensor_obs) {
    const char *path = write_file("cart_sensors.xml", CART_SENSORS);
    crl_env_spec *s = load(path, NULL);
    ck_assert_int_eq(crl_env_obs_dim(s), 5);
    crl_env *e = make_env(s);
    mjData *d = crl_env_data(e);
    float obs[5], a[2] = {0.7f, 0.3f};
    crl_step_info info;
    crl_env_reset(e, 3, obs);
    for (int t = 0; t < 5; t++) {
        ck_assert(obs[0] == (float)d->qpos[0]);
        ck_assert(obs[1] == (float)d->qvel[0]);
        ck_assert(fabs(obs[2] - (d->qpos[0] + 0.1)) < 1e-6);
        ck_assert(obs[3] == 0.0f && obs[4] == 0.0f);
        crl_env_step(e, a, obs, &info);
    }
    crl_env_free(e);
    crl_env_spec_free(s);
}
END_TEST

/* The initial state is a function of the seed; files may <include> files
 * next to them. */
START_TEST(test_seed_and_include) {
    write_file("part.xml", "<mujoco>" CART_BODY "</mujoco>");
    const char *path = write_file(
        "main.xml", "<mujoco model='main'><include file='part.xml'/></mujoco>");
    crl_env_spec *s = load(path, NULL);
    crl_env *a = make_env(s), *b = make_env(s);
    float oa[2], ob[2];
    crl_env_reset(a, 10, oa);
    crl_env_reset(b, 10, ob);
    ck_assert_int_eq(memcmp(oa, ob, sizeof oa), 0);
    ck_assert(fabs(oa[0]) <= 0.01 && oa[0] != 0.0f);
    crl_env_reset(b, 11, ob);
    ck_assert_int_ne(memcmp(oa, ob, sizeof oa), 0);
    crl_env_free(a);
    crl_env_free(b);
    crl_env_spec_free(s);
}
END_TEST

static void expect_error(const char *path, const crl_xml_task *o, int code,
                         const char *needle) {
    crl_env_spec *s = (crl_env_spec *)&s; /* must come back NULL */
    crl_err err = {0};
    int rc = crl_env_spec_create_xml(path, o, &s, &err);
    ck_assert_msg(rc == code, "%s: rc %d, want %d (%s)", path, rc, code, err.msg);
    ck_assert_int_eq(err.code, code);
    ck_assert_ptr_null(s);
    ck_assert_msg(strchr(err.msg, '\n') == NULL, "not one line: %s", err.msg);
    ck_assert_msg(path == NULL || strstr(err.msg, path) != NULL, "no file name: %s",
                  err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "lacks '%s': %s", needle, err.msg);
}

START_TEST(test_errors) {
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.xml", dir);
    expect_error(missing, NULL, CRL_ENOTFOUND, "No such file");
    expect_error(dir, NULL, CRL_EINVAL, "directory");

    expect_error(write_file("garbage.xml", "this is not XML at all \x01\x02\n"), NULL,
                 CRL_EMUJOCO, "MJCF");
    expect_error(write_file("empty.xml", ""), NULL, CRL_EMUJOCO, "MJCF");
    /* MuJoCo's own message comes through (it names the unknown joint). */
    expect_error(write_file("badjoint.xml",
                            "<mujoco><worldbody><body><joint name='j' type='hinge'/>"
                            "<geom type='sphere' size='.1'/></body></worldbody>"
                            "<actuator><motor joint='nojoint'/></actuator></mujoco>"),
                 NULL, CRL_EMUJOCO, "nojoint");
    expect_error(write_file("multiline.xml",
                            "<mujoco>\n<worldbody>\n<body>\n<geom type='sphere'/>\n"
                            "</body>\n</worldbody>\n<bogus_element/>\n</mujoco>\n"),
                 NULL, CRL_EMUJOCO, "bogus_element");

    expect_error(
        write_file("noact.xml",
                   "<mujoco><worldbody><body><joint type='hinge'/>"
                   "<geom type='sphere' size='.1'/></body></worldbody></mujoco>"),
        NULL, CRL_EINVAL, "actuator");

    const char *cart = write_file("cart.xml", CART);
    crl_xml_task o = {.reward = CRL_XML_REWARD_FORWARD, .body = "nobody"};
    expect_error(cart, &o, CRL_EINVAL, "'nobody'");
    o = (crl_xml_task){.reward = CRL_XML_REWARD_REACH, .site = "nosite"};
    expect_error(cart, &o, CRL_EINVAL, "'nosite'");
    o = (crl_xml_task){.reward = CRL_XML_REWARD_REACH};
    expect_error(cart, &o, CRL_EINVAL, "site");
    o = (crl_xml_task){.reward = (crl_xml_reward)7};
    expect_error(cart, &o, CRL_EINVAL, "reward");
    o = (crl_xml_task){.max_steps = -1};
    expect_error(cart, &o, CRL_EINVAL, "max_steps");

    crl_env_spec *s = NULL;
    ck_assert_int_eq(crl_env_spec_create_xml(NULL, NULL, &s, NULL), CRL_EINVAL);
    ck_assert_int_eq(crl_env_spec_create_xml(cart, NULL, NULL, NULL), CRL_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("xml_task");
    TCase *tc = tcase_create("xml_task");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_forward_reward);
    tcase_add_test(tc, test_reach_reward);
    tcase_add_test(tc, test_sensor_obs);
    tcase_add_test(tc, test_seed_and_include);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
