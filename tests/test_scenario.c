/* Tests for envs/scenario.c: every scenario's task list against the lists
 * of the task specification (written out here), the structure rules
 * (cw20 = cw10 twice; locomotion = 4 tasks twice, -short = once), lookup,
 * and that every named task is a registered env. */
#include "crl/scenario.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "crl/env.h"

static const char *const CW10[] = {"hammer",         "push-wall",   "faucet-close",
                                   "push-back",      "stick-pull",  "handle-press-side",
                                   "push",           "shelf-place", "window-close",
                                   "peg-unplug-side"};
static const char *const PRETRAIN[] = {
    "reach",        "pick-place",  "faucet-open",         "window-open",
    "handle-press", "drawer-open", "button-press-topdown"};
static const char *const TRIPLETS[8][3] = {
    {"push", "window-close", "hammer"},
    {"hammer", "window-close", "faucet-close"},
    {"stick-pull", "push-back", "push-wall"},
    {"push-wall", "shelf-place", "push-back"},
    {"faucet-close", "shelf-place", "push-back"},
    {"stick-pull", "peg-unplug-side", "stick-pull"},
    {"window-close", "handle-press-side", "peg-unplug-side"},
    {"faucet-close", "shelf-place", "peg-unplug-side"},
};

typedef struct {
    const char *name;
    const char *tasks[4];
} loco_case;

static const loco_case LOCO[] = {
    {"halfcheetah-forgetting",
     {"halfcheetah-hugefoot", "halfcheetah-moon", "halfcheetah-carry_stuff",
      "halfcheetah-rainfall"}},
    {"halfcheetah-transfer",
     {"halfcheetah-carry_stuff_hugegravity", "halfcheetah-moon",
      "halfcheetah-defective_module", "halfcheetah-hugefoot_rainfall"}},
    {"halfcheetah-robustness",
     {"halfcheetah-normal", "halfcheetah-inverted_actions", "halfcheetah-normal",
      "halfcheetah-inverted_actions"}},
    {"halfcheetah-compositionality",
     {"halfcheetah-tinyfoot", "halfcheetah-moon", "halfcheetah-carry_stuff_hugegravity",
      "halfcheetah-tinyfoot_moon"}},
    {"ant-forgetting", {"ant-normal", "ant-hugefoot", "ant-rainfall", "ant-moon"}},
    {"ant-transfer",
     {"ant-disabled_first_diagonal", "ant-disabled_second_diagonal",
      "ant-disabled_forefeet", "ant-disabled_backfeet"}},
    {"ant-robustness",
     {"ant-normal", "ant-inverted_actions", "ant-normal", "ant-inverted_actions"}},
    {"ant-compositionality",
     {"ant-disabled_hard1", "ant-disabled_hard2", "ant-disabled_forefeet",
      "ant-disabled_backfeet"}},
};
#define N_LOCO (int)(sizeof LOCO / sizeof LOCO[0])

static const crl_scenario *find(const char *name) {
    const crl_scenario *sc = crl_scenario_find(name);
    ck_assert_msg(sc != NULL, "no scenario %s", name);
    ck_assert_str_eq(sc->name, name);
    ck_assert(sc->description && strlen(sc->description) > 0);
    return sc;
}

static void expect_tasks(const crl_scenario *sc, const char *const *want, int n) {
    ck_assert_msg(sc->n_tasks == n, "%s has %d tasks, want %d", sc->name, sc->n_tasks, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(strcmp(sc->tasks[i], want[i]) == 0, "%s[%d] = %s, want %s",
                      sc->name, i, sc->tasks[i], want[i]);
}

START_TEST(test_continual_world) {
    expect_tasks(find("cw10"), CW10, 10);
    const crl_scenario *cw20 = find("cw20");
    ck_assert_int_eq(cw20->n_tasks, 20);
    for (int i = 0; i < 20; i++) ck_assert_str_eq(cw20->tasks[i], CW10[i % 10]);
    expect_tasks(find("pretrain"), PRETRAIN, 7);
    /* None of the pre-training tasks is in CW10. */
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 10; j++) ck_assert_str_ne(PRETRAIN[i], CW10[j]);
    for (int t = 0; t < 8; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t + 1);
        expect_tasks(find(name), TRIPLETS[t], 3);
    }
}
END_TEST

START_TEST(test_locomotion) {
    const loco_case *c = &LOCO[_i];
    const crl_scenario *full = find(c->name);
    char short_name[64];
    snprintf(short_name, sizeof short_name, "%s-short", c->name);
    const crl_scenario *brief = find(short_name);
    expect_tasks(brief, c->tasks, 4);
    ck_assert_int_eq(full->n_tasks, 8);
    for (int i = 0; i < 8; i++) ck_assert_str_eq(full->tasks[i], c->tasks[i % 4]);
}
END_TEST

START_TEST(test_list_and_find) {
    const crl_scenario *list = NULL;
    int n = crl_scenario_list(&list);
    /* cw10, cw20, t1..t8, pretrain, and 8 locomotion scenarios x 2. */
    ck_assert_int_eq(n, 2 + 8 + 1 + 2 * N_LOCO);
    ck_assert_int_eq(crl_scenario_list(NULL), n);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_eq(crl_scenario_find(list[i].name), &list[i]);
        ck_assert_int_gt(list[i].n_tasks, 0);
        for (int j = i + 1; j < n; j++) ck_assert_str_ne(list[i].name, list[j].name);
    }
    ck_assert_ptr_null(crl_scenario_find("cw30"));
    ck_assert_ptr_null(crl_scenario_find(""));
    ck_assert_ptr_null(crl_scenario_find(NULL));
    ck_assert_ptr_null(crl_scenario_find("CW10"));
}
END_TEST

/* Every task of every scenario is a registered env. (The manipulation tasks
 * are registered by envs/manip_*.c.) */
START_TEST(test_tasks_registered) {
    const crl_scenario *list;
    int n = crl_scenario_list(&list);
    const crl_env_entry *envs;
    int ne = crl_env_list(&envs);
    char missing[2048] = " ", key[128];
    size_t used = 1;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < list[i].n_tasks; k++) {
            int found = 0;
            for (int j = 0; j < ne; j++)
                found |= strcmp(envs[j].name, list[i].tasks[k]) == 0;
            snprintf(key, sizeof key, " %s ", list[i].tasks[k]);
            if (!found && !strstr(missing, key) && used + 64 < sizeof missing)
                used += (size_t)snprintf(missing + used, sizeof missing - used, "%s ",
                                         list[i].tasks[k]);
        }
    ck_assert_msg(used == 1, "scenario tasks not registered:%s", missing);
}
END_TEST

int main(void) {
    Suite *s = suite_create("scenario");
    TCase *tc = tcase_create("scenario");
    tcase_add_test(tc, test_continual_world);
    tcase_add_loop_test(tc, test_locomotion, 0, N_LOCO);
    tcase_add_test(tc, test_list_and_find);
    tcase_add_test(tc, test_tasks_registered);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
