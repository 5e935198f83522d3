/* crl envs: the list of built-in tasks, in the order crl_env_list shows them.
 * A new task is one line here plus its own envs/<task>.c. */
#include "task.h"

extern const struct crl_task_def crl_task_pendulum;
extern const struct crl_task_def crl_task_halfcheetah;

const struct crl_task_def *const crl_task_registry[] = {
    &crl_task_pendulum,
    &crl_task_halfcheetah,
};
const int crl_task_registry_count =
    (int)(sizeof crl_task_registry / sizeof crl_task_registry[0]);
