/* The method registry: the one place that names the continual methods.
 *
 * To add a method, write its crl_method_impl in one new file
 * (agents/method_<name>.c, declared in agents/continual_state.h) and add ONE
 * line to METHODS below; the runner, crl train --help, sweep, report, plot
 * and export pick it up from here. The rows' order is the report's order of
 * methods. Names are stored in run databases: never rename one. */
#include <stdio.h>
#include <string.h>

#include "agents/continual_state.h"

static const crl_method METHODS[] = {
    {"ft1", "one learner with a head per task, fine-tuned through the tasks",
     &crl_method_ft1_impl},
    {"ftn", "a fresh learner per task (an actor per task at inference)",
     &crl_method_ftn_impl},
    {"l2", "fine-tuning with an L2 pull of the actor's trunk to its last task end",
     &crl_method_l2_impl},
    {"ewc", "fine-tuning with an EWC (diagonal Fisher) pull of the actor's trunk",
     &crl_method_ewc_impl},
    {"packnet", "per-task ownership of the trunk's weights by pruning (PackNet)",
     &crl_method_packnet_impl},
    {"pm", "perfect memory: one reservoir buffer over every task", &crl_method_pm_impl},
    {"single", "one fresh learner on one scenario position (the references)",
     &crl_method_single_impl},
    {"csp", "a growing subspace of policies (CSP)", &crl_method_csp_impl},
    {"l2m", "a pool of modulators over a frozen pre-trained base (L2M)",
     &crl_method_l2m_impl},
    {"mt", "multi-task SAC over every task of the scenario at once", &crl_method_mt_impl},
};
#define N_METHODS (int)(sizeof METHODS / sizeof METHODS[0])

int crl_method_count(void) {
    return N_METHODS;
}

const crl_method *crl_method_at(int i) {
    return i >= 0 && i < N_METHODS ? &METHODS[i] : NULL;
}

const crl_method *crl_method_find(const char *name) {
    for (int i = 0; name && i < N_METHODS; i++)
        if (!strcmp(METHODS[i].name, name)) return &METHODS[i];
    return NULL;
}

const crl_method *crl_method_of_label(const char *label) {
    if (!label) return NULL;
    size_t len = strcspn(label, "-");
    for (int i = 0; i < N_METHODS; i++)
        if (strlen(METHODS[i].name) == len && !strncmp(METHODS[i].name, label, len))
            return &METHODS[i];
    return NULL;
}

const crl_method *crl_method_with(unsigned flags) {
    for (int i = 0; i < N_METHODS; i++)
        if ((METHODS[i].impl->flags & flags) == flags) return &METHODS[i];
    return NULL;
}

int crl_method_rank(const char *name) {
    int r = 0;
    for (int i = 0; name && i < N_METHODS; i++) {
        if (!(METHODS[i].impl->flags & CRL_METHOD_CONTINUAL)) continue;
        if (!strcmp(METHODS[i].name, name)) return r;
        r++;
    }
    return -1;
}

const char *crl_method_list(unsigned flags, const char *last_sep, char *buf, size_t n) {
    int total = 0, k = 0;
    for (int i = 0; i < N_METHODS; i++)
        total += (METHODS[i].impl->flags & flags) == flags;
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < N_METHODS && len < n; i++) {
        if ((METHODS[i].impl->flags & flags) != flags) continue;
        const char *sep = k == 0 ? "" : k == total - 1 ? last_sep : ", ";
        int w = snprintf(buf + len, n - len, "%s%s", sep, METHODS[i].name);
        if (w < 0) break;
        len += (size_t)w;
        k++;
    }
    return buf;
}
