/* crl export: a run's latest checkpoint as a policy file for the embedding
 * API (include/crl/policy.h, docs/embedding.md), or a task's MJCF for a
 * program that runs the physics itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/export.h"
#include "crl/policy.h"
#include "crl/run.h"
#include "crl/scenario.h"
#include "envs/external.h"

/* --task-xml NAME: the task's MJCF to out ("-" = stdout). */
static int export_task_xml(const char *task, const char *out) {
    crl_err err = {0};
    crl_env_spec *s = NULL;
    char *text = NULL;
    size_t n = 0;
    int rc = crl_env_spec_create(task, &s, &err);
    if (!rc) rc = crl_env_task_xml(s, &text, &n, &err);
    crl_env_spec_free(s);
    if (rc) {
        fprintf(stderr, "crl export: %s\n", err.msg);
        return rc == CRL_ENOTFOUND ? 2 : cli_exit_code(rc);
    }
    if (!strcmp(out, "-")) {
        int ok = fwrite(text, 1, n, stdout) == n && fflush(stdout) == 0;
        free(text);
        if (!ok) {
            fprintf(stderr, "crl export: cannot write to stdout: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    /* A temporary file in out's folder, renamed when complete (base.h). */
    rc = crl_atomic_write_file(out, text, n, &err);
    free(text);
    if (rc) {
        fprintf(stderr, "crl export: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    return 0;
}

/* --task NAME|POS against run `run`'s scenario (a single-task run: its task
 * is position 0). A run that is not there is crl_policy_export's to name. */
static int task_position(const char *db, int64_t run, const char *arg, int *pos) {
    crl_store *store = NULL;
    crl_run_config r;
    crl_err err = {0};
    *pos = -1;
    if (crl_store_open(db, 0, &store, &err) ||
        crl_run_config_load(store, run, &r, NULL, &err)) {
        crl_store_close(store);
        return 0;
    }
    crl_store_close(store);
    const crl_scenario *sc =
        crl_run_config_is_scenario(&r) ? crl_scenario_find(r.scenario) : NULL;
    const char *one[1] = {r.env ? r.env : r.env_xml ? r.env_xml : "?"};
    char label[64];
    snprintf(label, sizeof label, "run %lld", (long long)run);
    int rc = opts_task_pos("export", arg, sc ? sc->name : label, sc ? sc->n_tasks : 1,
                           sc ? sc->tasks : one, pos);
    crl_run_config_free(&r);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *db = NULL, *out = NULL, *task_xml = NULL, *task_arg = NULL;
    int64_t run = 0;
    int task = -1;
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id (see 'crl runs')", 0},
        {"task", OPT_STR, &task_arg, 0, 0,
         "only this task of the run's scenario: its name or 0-based position (default: "
         "every task)",
         0},
        {"output", OPT_STR, &out, 0, 0, "output file; '-' is stdout for --task-xml", 0},
        {"task-xml", OPT_STR, &task_xml, 0, 0,
         "write this task's MJCF instead of a policy (see 'crl tasks')", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse("export", defs, nd, argc, argv,
                        "--db FILE --run ID [--task NAME|POS] -o agent.crlp\n"
                        "       crl export --task-xml TASK -o task.xml");
    if (rc) return rc == 1 ? 0 : rc;
    if (task_xml) {
        if (db || run) {
            fprintf(stderr, "crl export: --task-xml takes no --db or --run\n");
            return 2;
        }
        if (!out) {
            fprintf(stderr, "crl export: -o FILE is required ('-' for stdout)\n");
            return 2;
        }
        return export_task_xml(task_xml, out);
    }
    if (!db || !run || !out) {
        fprintf(stderr, "crl export: --db FILE, --run ID and -o FILE are required\n");
        return 2;
    }
    if (access(db, F_OK) != 0) {
        fprintf(stderr, "crl export: %s: no such file\n", db);
        return 2;
    }
    if (task_arg && (rc = task_position(db, run, task_arg, &task))) return rc;
    char msg[600] = "";
    rc = crl_policy_export(db, run, task, out, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "crl export: %s\n", msg);
        return rc == CRL_ENOTFOUND || rc == CRL_EINVAL ? 2 : 1;
    }
    crl_policy *p = NULL;
    if ((rc = crl_policy_load(out, &p, msg, sizeof msg))) {
        fprintf(stderr, "crl export: the written file does not load back: %s\n", msg);
        return 1;
    }
    printf("%s: %s policy, %d task%s, obs %d, act %d\n", out, crl_policy_method(p),
           crl_policy_num_tasks(p), crl_policy_num_tasks(p) == 1 ? "" : "s",
           crl_policy_obs_dim(p), crl_policy_act_dim(p));
    for (int i = 0; i < crl_policy_num_tasks(p); i++)
        printf("  task %d: %s (scenario position %d)\n", i, crl_policy_task_name(p, i),
               crl_policy_task_position(p, i));
    crl_policy_free(p);
    return 0;
}
