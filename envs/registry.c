/* crl envs: the list of built-in tasks, in the order crl_env_list shows them.
 * Each group lives in its own file (see task.h); a new task is one entry in
 * its group's array plus its own code. */
#include <pthread.h>
#include <string.h>

#include "task.h"

extern const struct crl_task_def crl_task_pendulum;

const struct crl_task_def *const crl_tasks_control[] = {&crl_task_pendulum, NULL};

enum { MAX_TASKS = 256 };
static const struct crl_task_def *g_tasks[MAX_TASKS + 1];
static int g_count;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build(void) {
    const struct crl_task_def *const *groups[] = {
        crl_tasks_control, crl_tasks_manip_a, crl_tasks_manip_b, crl_tasks_locomotion};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (int i = 0; groups[g][i] && g_count < MAX_TASKS; i++)
            g_tasks[g_count++] = groups[g][i];
}

int crl_task_registry(const struct crl_task_def *const **list) {
    pthread_once(&g_once, build);
    *list = g_tasks;
    return g_count;
}

const struct crl_task_def *crl_task_find(const char *name) {
    const struct crl_task_def *const *list;
    int n = crl_task_registry(&list);
    for (int i = 0; i < n; i++)
        if (strcmp(list[i]->name, name) == 0) return list[i];
    return NULL;
}
