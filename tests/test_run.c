/* The method registry and the library-owned run configuration: every method
 * is registered with a name and a description and found by name; a run's
 * config encodes, decodes and encodes again to the same text; the configs
 * of the old database (tests/data/v0) decode and re-encode to exactly what
 * is stored; a run the library creates is the one `crl train` creates; and
 * `crl train --help` lists every registered method. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/blas.h"
#include "crl/continual.h"
#include "crl/methods.h"
#include "crl/run.h"
#include "crl/store.h"

static char dir[256];

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/crl_test_run_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

START_TEST(test_registry_lists_every_method) {
    /* The methods the stored data names (never renamed). */
    const char *const stored[] = {"ft1", "ftn",    "l2",  "ewc", "packnet",
                                  "pm",  "single", "csp", "l2m", "mt"};
    const int n = (int)(sizeof stored / sizeof stored[0]);
    ck_assert_int_eq(crl_method_count(), n);
    for (int i = 0; i < n; i++) {
        const crl_method *m = crl_method_find(stored[i]);
        ck_assert_msg(m != NULL, "%s is not registered", stored[i]);
        ck_assert_str_eq(m->name, stored[i]);
        ck_assert_ptr_eq(crl_method_at(i), m); /* the report's order */
        ck_assert_msg(m->description && strlen(m->description) > 10, "%s", stored[i]);
        ck_assert(m->impl != NULL && m->impl->cost > 0);
    }
    ck_assert_ptr_null(crl_method_find("sac"));
    ck_assert_ptr_null(crl_method_find(NULL));
    ck_assert_ptr_null(crl_method_at(n));
    /* Labels of variants name their method; the reference is one method. */
    ck_assert_str_eq(crl_method_of_label("l2m-oracle-ia3")->name, "l2m");
    ck_assert_str_eq(crl_method_of_label("csp-paper")->name, "csp");
    ck_assert_str_eq(crl_method_of_label("csp-prior")->name, "csp");
    /* csp is the paper's rule; the prior-alphas variant has its own label. */
    {
        const crl_method *csp = crl_method_find("csp");
        crl_csp_config cc;
        crl_csp_config_default(&cc);
        crl_l2m_config lc = {0};
        char lab[96];
        ck_assert_int_eq(cc.prior_alphas, 0);
        csp->impl->label("csp", &cc, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "csp");
        cc.prior_alphas = 1;
        csp->impl->label("csp", &cc, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "csp-prior");
    }
    ck_assert_ptr_null(crl_method_of_label("l2mx"));
    /* Each l2m routing gets its own label, the reference routing the plain
     * name: a report must not pool two routers into one row. */
    {
        const crl_method *l2m = crl_method_find("l2m");
        crl_csp_config csp = {0};
        char lab[96];
        crl_l2m_config lc = {.router = "l2m",
                             .weights = "frozen",
                             .collect = "eval",
                             .history = 5,
                             .modulator = "lora"};
        l2m->impl->label("l2m", &csp, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "l2m");
        lc.router = "arrow";
        l2m->impl->label("l2m", &csp, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "l2m-arrow");
        lc.router = "l2m", lc.oracle = 1, lc.modulator = "ia3";
        l2m->impl->label("l2m", &csp, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "l2m-oracle-ia3");
        lc.oracle = 0, lc.modulator = "lora", lc.history = 1, lc.weights = "live",
        lc.collect = "train", lc.hold = 1;
        l2m->impl->label("l2m", &csp, &lc, lab, sizeof lab);
        ck_assert_str_eq(lab, "l2m-h1-live-collect-train-hold");
        ck_assert_str_eq(crl_method_of_label(lab)->name, "l2m");
    }
    ck_assert_str_eq(crl_method_with(CRL_METHOD_REFERENCE)->name, "single");
    /* The report's rows: the continual agents, in order. */
    ck_assert_int_eq(crl_method_rank("ft1"), 0);
    ck_assert_int_eq(crl_method_rank("l2m"), 7);
    ck_assert_int_eq(crl_method_rank("single"), -1);
    ck_assert_int_eq(crl_method_rank("mt"), -1);
    char buf[128];
    ck_assert_str_eq(crl_method_list(CRL_METHOD_PER_TASK, " or ", buf, sizeof buf),
                     "ftn");
    ck_assert_str_eq(crl_method_list(CRL_METHOD_SUBSPACE | CRL_METHOD_EXPORTABLE, " or ",
                                     buf, sizeof buf),
                     "csp");
    /* The inference-parameter model (crl_continual_model_params). */
    ck_assert(crl_continual_model_params("ftn", 10, 3) == 30);
    ck_assert(crl_continual_model_params("ft1", 10, 3) == 10);
}
END_TEST

static char *encode(crl_store *s, const crl_run_config *c) {
    char *json = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_run_config_json(s, c, &json, &err) == CRL_OK, "%s", err.msg);
    return json;
}

START_TEST(test_config_round_trips) {
    setup();
    char path[300];
    snprintf(path, sizeof path, "%s/r.db", dir);
    crl_store *s = NULL;
    crl_err err = {0};
    ck_assert_int_eq(crl_store_open(path, 1, &s, &err), CRL_OK);
    crl_run_config c;
    crl_run_config_default(&c);
    c.scenario = "t1";
    c.method = "l2m";
    c.l2m.base = "4:1";
    c.l2m.scale = 0.3f;
    c.sac.lr = 3e-4f;
    c.l2_coef = 0.1;
    c.seed = 123456789;
    c.threads = 2;
    for (int scenario = 0; scenario < 2; scenario++) {
        if (!scenario) c.scenario = "";
        char *a = encode(s, &c);
        crl_run_config d;
        ck_assert_msg(crl_run_config_decode(s, a, &d, &err) == CRL_OK, "%s", err.msg);
        char *b = encode(s, &d);
        ck_assert_str_eq(a, b);
        ck_assert(d.sac.lr == c.sac.lr && d.l2m.scale == c.l2m.scale);
        ck_assert_str_eq(d.l2m.base, "4:1");
        crl_run_config_free(&d);
        free(a);
        free(b);
        c.scenario = "t1";
    }
    /* A value of the wrong kind is refused, not read as 0. */
    crl_run_config d;
    ck_assert_int_eq(crl_run_config_decode(s, "{\"hidden\":\"wide\"}", &d, &err),
                     CRL_ECORRUPT);
    ck_assert_int_eq(crl_run_config_decode(s, "{\"layers\":99}", &d, &err), CRL_ECORRUPT);
    /* Validation happens before anything is written. */
    c.method = "nope";
    int64_t id = 0;
    ck_assert_int_eq(crl_run_create(s, &c, &id, &err), CRL_EINVAL);
    ck_assert(strstr(err.msg, "nope") != NULL);
    ck_assert_int_eq(crl_store_run_get(s, 1, &(crl_run_info){0}, NULL, NULL),
                     CRL_ENOTFOUND);
    crl_store_close(s);
    teardown();
}
END_TEST

START_TEST(test_v0_configs_decode) {
    setup();
    char path[600], cmd[1400];
    const char *src = getenv("CRL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/v0.db", dir);
    snprintf(cmd, sizeof cmd, "cp '%s/tests/data/v0/v0.db' '%s'", src ? src : "..", path);
    ck_assert_int_eq(sh(cmd), 0);
    crl_store *s = NULL;
    crl_err err = {0};
    ck_assert_int_eq(crl_store_open(path, 0, &s, &err), CRL_OK);
    for (int64_t id = 1; id <= 6; id++) {
        crl_run_info info;
        char *stored = NULL;
        ck_assert_int_eq(crl_store_run_get(s, id, &info, &stored, &err), CRL_OK);
        crl_run_config c;
        char status[16];
        ck_assert_msg(crl_run_config_load(s, id, &c, status, &err) == CRL_OK, "%s",
                      err.msg);
        ck_assert_str_eq(status, info.status);
        char *again = encode(s, &c);
        ck_assert_str_eq(again, stored);
        ck_assert_int_eq(c.sac.hidden, 16);
        ck_assert_int_eq(c.sac.layers, 2);
        ck_assert_int_eq(crl_run_config_is_scenario(&c), id != 1);
        if (id == 5) ck_assert_str_eq(c.l2m.base, "4:0");
        /* The continual checkpoint's view (its one reader is continual.c). */
        void *blob = NULL;
        size_t bn = 0;
        int task_idx;
        int64_t step;
        if (id != 1 && crl_store_checkpoint_latest(s, id, &task_idx, &step, &blob, &bn,
                                                   &err) == CRL_OK) {
            crl_continual_view v;
            ck_assert_int_eq(crl_continual_checkpoint_view(blob, bn, &v, &err), CRL_OK);
            ck_assert(v.step == step && v.learner_n > 0 && v.n_task_actors == 0);
            ck_assert_int_eq(crl_continual_checkpoint_view(blob, bn / 2, &v, &err),
                             CRL_ECORRUPT);
        }
        free(blob);
        crl_run_config_free(&c);
        free(again);
        free(stored);
    }
    crl_store_close(s);
    teardown();
}
END_TEST

START_TEST(test_library_run_is_the_cli_run) {
    setup();
    char path[300], cmd[1200];
    snprintf(path, sizeof path, "%s/c.db", dir);
    /* A tiny run through the command line, then the same configuration
     * through the library: the two records must be the same. */
    snprintf(
        cmd, sizeof cmd,
        "'%s' train --db '%s' --scenario t1 --method packnet --steps-per-task 200 "
        "--eval-every 200 --eval-episodes 0 --hidden 8 --layers 1 --batch 8 "
        "--start-steps 50 --update-after 50 --threads 1 --seed 3 --packnet-retrain 0.2 "
        "--log-train-episodes none --quiet > /dev/null",
        bin(), path);
    ck_assert_int_eq(sh(cmd), 0);
    crl_store *s = NULL;
    crl_err err = {0};
    ck_assert_int_eq(crl_blas_init(1, &err), CRL_OK); /* as crl train does */
    ck_assert_int_eq(crl_store_open(path, 0, &s, &err), CRL_OK);
    crl_run_config c;
    crl_run_config_default(&c);
    c.scenario = "t1";
    c.method = "packnet";
    c.steps_per_task = 200;
    c.eval_every = 200;
    c.eval_episodes = 0;
    c.sac.hidden = 8;
    c.sac.layers = 1;
    c.sac.batch = 8;
    c.sac.start_steps = 50;
    c.sac.update_after = 50;
    c.threads = 1;
    c.seed = 3;
    c.packnet_retrain = 0.2; /* a method key of packnet (--l2-coef is refused) */
    c.log_train = "none";
    int64_t id = 0;
    ck_assert_msg(crl_run_create(s, &c, &id, &err) == CRL_OK, "%s", err.msg);
    ck_assert_int_eq(id, 2);
    crl_run_info a, b;
    char *ja = NULL, *jb = NULL;
    ck_assert_int_eq(crl_store_run_get(s, 1, &a, &ja, &err), CRL_OK);
    ck_assert_int_eq(crl_store_run_get(s, 2, &b, &jb, &err), CRL_OK);
    ck_assert_str_eq(a.method, b.method);
    ck_assert_str_eq(a.scenario, b.scenario);
    ck_assert(a.seed == b.seed);
    ck_assert_str_eq(ja, jb);
    free(ja);
    free(jb);
    crl_store_close(s);
    teardown();
}
END_TEST

START_TEST(test_train_help_lists_methods) {
    setup();
    char cmd[600], out[300];
    snprintf(out, sizeof out, "%s/help.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' train --help > '%s'", bin(), out);
    ck_assert_int_eq(sh(cmd), 0);
    FILE *f = fopen(out, "r");
    ck_assert(f != NULL);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    for (int i = 0; i < crl_method_count(); i++) {
        const crl_method *m = crl_method_at(i);
        char line[256];
        snprintf(line, sizeof line, "  %-22s %s\n", m->name, m->description);
        ck_assert_msg(strstr(text, line) != NULL, "--help lacks method %s", m->name);
    }
    teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("run");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_registry_lists_every_method);
    tcase_add_test(tc, test_config_round_trips);
    tcase_add_test(tc, test_v0_configs_decode);
    tcase_add_test(tc, test_library_run_is_the_cli_run);
    tcase_add_test(tc, test_train_help_lists_methods);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
