/* crl runs: list the runs of a store. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"

typedef struct {
    crl_store *store;
    int count;
} runs_ctx;

static int print_run(const crl_run_info *r, void *ctx) {
    runs_ctx *c = ctx;
    if (c->count++ == 0)
        printf("%-5s %-24s %-11s %-8s %-30s %-10s %s\n", "id", "created (UTC)", "status",
               "method", "scenario", "seed", "last step");
    /* A 'running' row whose owner is gone (its trainer was killed, or could
     * not write its status): the lease tells the truth. */
    char status[200];
    snprintf(status, sizeof status, "%s", r->status);
    crl_lease l;
    if (!strcmp(r->status, "running") &&
        crl_store_lease_get(c->store, r->id, &l, NULL) == CRL_OK && !l.alive)
        snprintf(status, sizeof status, "stale (%s)", l.why);
    printf("%-5lld %-24s %-11s %-8s %-30s %-10llu %lld\n", (long long)r->id,
           r->created_at, status, r->method, r->scenario, (unsigned long long)r->seed,
           (long long)r->last_step);
    return 0;
}

int cmd_runs(int argc, char **argv) {
    const char *db = NULL;
    const opt_def defs[] = {{"db", OPT_STR, &db, 0, 0, "SQLite run store", 0}};
    int rc = opts_parse("runs", defs, 1, argc, argv, "--db FILE");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl runs: --db FILE is required\n");
        return 2;
    }
    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    runs_ctx c = {store, 0};
    rc = crl_store_runs(store, print_run, &c, &err);
    const int count = c.count;
    crl_store_close(store);
    if (rc) {
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    if (count == 0) printf("no runs in %s\n", db);
    return 0;
}
