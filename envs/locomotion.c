/* Locomotion tasks: halfcheetah (and later ant) with their modifiers. */
#include "task.h"

extern const struct crl_task_def crl_task_halfcheetah;

const struct crl_task_def *const crl_tasks_locomotion[] = {&crl_task_halfcheetah, NULL};
