/* crl runs: list the runs of a store. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/opts.h"

static int print_run(const crl_run_info *r, void *ctx) {
    int *count = ctx;
    if ((*count)++ == 0)
        printf("%-5s %-24s %-11s %-8s %-30s %-10s %s\n", "id", "created (UTC)", "status",
               "method", "scenario", "seed", "last step");
    printf("%-5lld %-24s %-11s %-8s %-30s %-10llu %lld\n", (long long)r->id,
           r->created_at, r->status, r->method, r->scenario, (unsigned long long)r->seed,
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
    int count = 0;
    rc = crl_store_runs(store, print_run, &count, &err);
    crl_store_close(store);
    if (rc) {
        fprintf(stderr, "crl runs: %s\n", err.msg);
        return 1;
    }
    if (count == 0) printf("no runs in %s\n", db);
    return 0;
}
