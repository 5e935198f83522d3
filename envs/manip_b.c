/* Manipulation tasks, part B. */
#include "task.h"

const struct crl_task_def *const crl_tasks_manip_b[] = {NULL};
