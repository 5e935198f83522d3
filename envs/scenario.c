/* crl scenarios: ordered task lists, one static table.
 *
 * Manipulation (Continual World): cw10, cw20 (cw10 twice, each position its
 * own task index), the CSP triplets t1..t8, and pretrain (L2M's base
 * network). Locomotion (CSP): for each body, forgetting, transfer,
 * robustness and compositionality are 4 tasks run twice (8); the -short
 * variants run the 4 once. */
#include <string.h>

#include "crl/scenario.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The CW10 order. */
#define CW10_TASKS                                                                       \
    "hammer", "push-wall", "faucet-close", "push-back", "stick-pull",                    \
        "handle-press-side", "push", "shelf-place", "window-close", "peg-unplug-side"

static const char *const cw10[] = {CW10_TASKS};
static const char *const cw20[] = {CW10_TASKS, CW10_TASKS};
static const char *const t1[] = {"push", "window-close", "hammer"};
static const char *const t2[] = {"hammer", "window-close", "faucet-close"};
static const char *const t3[] = {"stick-pull", "push-back", "push-wall"};
static const char *const t4[] = {"push-wall", "shelf-place", "push-back"};
static const char *const t5[] = {"faucet-close", "shelf-place", "push-back"};
static const char *const t6[] = {"stick-pull", "peg-unplug-side", "stick-pull"};
static const char *const t7[] = {"window-close", "handle-press-side", "peg-unplug-side"};
static const char *const t8[] = {"faucet-close", "shelf-place", "peg-unplug-side"};
static const char *const pretrain[] = {
    "reach",        "pick-place",  "faucet-open",         "window-open",
    "handle-press", "drawer-open", "button-press-topdown"};

/* A locomotion scenario's four tasks: the full list is them twice, the short
 * list (the first four entries) them once. */
#define TWICE(a, b, c, d) a, b, c, d, a, b, c, d

#define HC(x) "halfcheetah-" x
static const char *const hc_forgetting[] = {
    TWICE(HC("hugefoot"), HC("moon"), HC("carry_stuff"), HC("rainfall"))};
static const char *const hc_transfer[] = {TWICE(HC("carry_stuff_hugegravity"), HC("moon"),
                                                HC("defective_module"),
                                                HC("hugefoot_rainfall"))};
static const char *const hc_robustness[] = {
    TWICE(HC("normal"), HC("inverted_actions"), HC("normal"), HC("inverted_actions"))};
static const char *const hc_compositionality[] = {TWICE(
    HC("tinyfoot"), HC("moon"), HC("carry_stuff_hugegravity"), HC("tinyfoot_moon"))};

#define ANT(x) "ant-" x
static const char *const ant_forgetting[] = {
    TWICE(ANT("normal"), ANT("hugefoot"), ANT("rainfall"), ANT("moon"))};
static const char *const ant_transfer[] = {
    TWICE(ANT("disabled_first_diagonal"), ANT("disabled_second_diagonal"),
          ANT("disabled_forefeet"), ANT("disabled_backfeet"))};
static const char *const ant_robustness[] = {TWICE(
    ANT("normal"), ANT("inverted_actions"), ANT("normal"), ANT("inverted_actions"))};
static const char *const ant_compositionality[] = {
    TWICE(ANT("disabled_hard1"), ANT("disabled_hard2"), ANT("disabled_forefeet"),
          ANT("disabled_backfeet"))};

/* One table row for the full scenario and one for its -short version. */
// clang-format off
#define LOCO(name, list, desc)                                     \
    {name, desc " (4 tasks, twice)", N(list), list},              \
    {name "-short", desc " (4 tasks, once)", N(list) / 2, list}
// clang-format on

static const crl_scenario g_scenarios[] = {
    {"cw10", "Continual World: 10 manipulation tasks", N(cw10), cw10},
    {"cw20", "Continual World: the 10 tasks of cw10, twice", N(cw20), cw20},
    {"t1", "triplet: push, window-close, hammer", N(t1), t1},
    {"t2", "triplet: hammer, window-close, faucet-close", N(t2), t2},
    {"t3", "triplet: stick-pull, push-back, push-wall", N(t3), t3},
    {"t4", "triplet: push-wall, shelf-place, push-back", N(t4), t4},
    {"t5", "triplet: faucet-close, shelf-place, push-back", N(t5), t5},
    {"t6", "triplet: stick-pull, peg-unplug-side, stick-pull", N(t6), t6},
    {"t7", "triplet: window-close, handle-press-side, peg-unplug-side", N(t7), t7},
    {"t8", "triplet: faucet-close, shelf-place, peg-unplug-side", N(t8), t8},
    {"pretrain", "pre-training tasks for L2M's base network (none is in cw10)",
     N(pretrain), pretrain},
    LOCO("halfcheetah-forgetting", hc_forgetting, "half-cheetah, forgetting"),
    LOCO("halfcheetah-transfer", hc_transfer, "half-cheetah, transfer"),
    LOCO("halfcheetah-robustness", hc_robustness, "half-cheetah, robustness"),
    LOCO("halfcheetah-compositionality", hc_compositionality,
         "half-cheetah, compositionality"),
    LOCO("ant-forgetting", ant_forgetting, "ant, forgetting"),
    LOCO("ant-transfer", ant_transfer, "ant, transfer"),
    LOCO("ant-robustness", ant_robustness, "ant, robustness"),
    LOCO("ant-compositionality", ant_compositionality, "ant, compositionality"),
};

int crl_scenario_list(const crl_scenario **list) {
    if (list) *list = g_scenarios;
    return N(g_scenarios);
}

const crl_scenario *crl_scenario_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < N(g_scenarios); i++)
        if (strcmp(g_scenarios[i].name, name) == 0) return &g_scenarios[i];
    return NULL;
}
