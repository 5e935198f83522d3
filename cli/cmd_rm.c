/* crl rm: delete a run and everything it owns, in one transaction
 * (docs/tracking.md). */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/opts.h"

int cmd_rm(int argc, char **argv) {
    const char *db = NULL;
    int64_t run = 0;
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18, "id of the run to delete (see 'crl runs')", 0},
    };
    int rc = opts_parse("rm", defs, 2, argc, argv, "--db FILE --run ID");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db || !run) {
        fprintf(stderr, "crl rm: --db FILE and --run ID are required\n");
        return 2;
    }
    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl rm: %s\n", err.msg);
        return 1;
    }
    int64_t rows = 0;
    rc = crl_store_run_delete(store, run, &rows, &err);
    crl_store_close(store);
    if (rc) {
        fprintf(stderr, "crl rm: %s\n", err.msg);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    printf("run %lld removed (%lld rows)\n", (long long)run, (long long)rows);
    return 0;
}
