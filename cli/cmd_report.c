/* crl report: the Continual World table (performance, forgetting, forward
 * transfer, model size) of the finished runs in a store. docs/report.md. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/report.h"

int cmd_report(int argc, char **argv) {
    const char *db = NULL, *scenario = NULL, *format = "table";
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"scenario", OPT_STR, &scenario, 0, 0, "only this scenario (default: all)", 0},
        {"format", OPT_STR, &format, 0, 0, "table, csv or json", 0},
    };
    int rc = opts_parse("report", defs, 3, argc, argv,
                        "--db FILE [--scenario S] [--format table|csv|json]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl report: --db FILE is required\n");
        return 2;
    }
    crl_err err = {0};
    crl_report_format fmt;
    if (crl_report_format_parse(format, &fmt, &err)) {
        fprintf(stderr, "crl report: --format: %s\n", err.msg);
        return 2;
    }
    crl_store *store = NULL;
    if (crl_store_open(db, 0, &store, &err)) {
        fprintf(stderr, "crl report: %s\n", err.msg);
        return 1;
    }
    crl_report rep;
    rc = crl_report_build(store, scenario, &rep, &err);
    crl_store_close(store);
    if (rc) {
        fprintf(stderr, "crl report: %s: %s\n", db, err.msg);
        return 1;
    }
    char *text = NULL;
    rc = crl_report_format_text(&rep, fmt, &text, &err);
    if (rc) {
        crl_report_free(&rep);
        fprintf(stderr, "crl report: %s\n", err.msg);
        return 1;
    }
    fputs(text, stdout);
    /* The table carries its notes; csv has no place for them. */
    if (fmt == CRL_REPORT_CSV)
        for (int i = 0; i < rep.n_notes; i++)
            fprintf(stderr, "crl report: note: %s\n", rep.notes[i]);
    free(text);
    crl_report_free(&rep);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "crl report: cannot write the report\n");
        return 1;
    }
    return 0;
}
