/* crl merge: shard databases (crl sweep's DIR/shards/NAME.db, or any crl
 * databases) into one, with renumbered run ids. docs/sweeps.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crl/store.h"

static void print_note(const char *msg, void *ctx) {
    (void)ctx;
    fprintf(stderr, "crl merge: note: %s\n", msg);
}

static void merge_usage(FILE *f) {
    fprintf(f,
            "usage: crl merge SHARD.db... -o OUT.db\n\n"
            "Copies every run of the shards into OUT.db (created if missing) with new\n"
            "run ids. Merging a shard again adds nothing; a run that got further since\n"
            "it was merged replaces its merged copy. Shards that are not crl databases\n"
            "of this schema version, or are corrupt, refuse the whole merge and leave\n"
            "OUT.db untouched.\n\n"
            "options:\n"
            "  -o, --output FILE      the merged database (also --out)\n"
            "  -q, --quiet            no summary line\n"
            "  --help                 show this help\n");
}

int cmd_merge(int argc, char **argv) {
    const char *out = NULL;
    int quiet = 0;
    const char **shards = calloc((size_t)argc + 1, sizeof *shards);
    int n = 0, only_files = 0;
    if (!shards) {
        fprintf(stderr, "crl merge: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_files &&
            (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--out"))) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "crl merge: option '%s' needs a value\n", a);
                free(shards);
                return 2;
            }
            out = argv[++i];
        } else if (!only_files &&
                   (!strncmp(a, "--out=", 6) || !strncmp(a, "--output=", 9))) {
            out = strchr(a, '=') + 1;
        } else if (!only_files && (!strcmp(a, "-q") || !strcmp(a, "--quiet"))) {
            quiet = 1;
        } else if (!only_files && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            merge_usage(stdout);
            free(shards);
            return 0;
        } else if (!only_files && !strcmp(a, "--")) {
            only_files = 1;
        } else if (!only_files && a[0] == '-' && a[1]) {
            fprintf(stderr, "crl merge: unknown option '%s' (see 'crl merge --help')\n",
                    a);
            free(shards);
            return 2;
        } else {
            shards[n++] = a;
        }
    }
    if (!out || !*out) {
        fprintf(stderr, "crl merge: -o OUT.db is required (see 'crl merge --help')\n");
        free(shards);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "crl merge: no shard databases given\n");
        free(shards);
        return 2;
    }
    crl_err err = {0};
    crl_merge_stats st;
    /* A new output is written to a temporary file and renamed when complete;
     * an existing one is merged into in one transaction: either way a
     * failure leaves nothing behind. */
    int existed = access(out, F_OK) == 0;
    int rc = crl_store_merge(out, shards, n, print_note, NULL, &st, &err);
    free(shards);
    if (rc) {
        fprintf(stderr, "crl merge: %s; %s was %s\n", err.msg, out,
                existed ? "not changed" : "not created");
        return rc == CRL_EINVAL && strstr(err.msg, "bad argument") ? 2 : 1;
    }
    if (!quiet)
        fprintf(stderr,
                "crl merge: %d shard%s into %s: %d run%s added, %d updated, %d already "
                "merged, %d left out; %lld rows written\n",
                st.shards, st.shards == 1 ? "" : "s", out, st.runs_added,
                st.runs_added == 1 ? "" : "s", st.runs_updated, st.runs_same,
                st.runs_older, (long long)st.rows);
    return 0;
}
