/* crl scenarios: ordered lists of tasks (Continual World, CSP locomotion). */
#ifndef CRL_SCENARIO_H
#define CRL_SCENARIO_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *name;        /* "cw10", "t1", "halfcheetah-forgetting-short", ... */
    const char *description; /* one line */
    int n_tasks;
    const char *const *tasks; /* env names, in training order (may repeat) */
} crl_scenario;

/* All scenarios, in listing order; *list points at a static table. */
int crl_scenario_list(const crl_scenario **list);
/* The named scenario, or NULL. */
const crl_scenario *crl_scenario_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif
