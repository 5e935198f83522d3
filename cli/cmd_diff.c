/* crl diff: the configuration difference of two runs (docs/tracking.md).
 * The two runs are positional: crl diff --db FILE RUN_A RUN_B. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"

typedef struct {
    int64_t a, b;
    int n;
} diff_ctx;

static int print_key(const char *key, const char *a, const char *b, void *vctx) {
    diff_ctx *c = vctx;
    c->n++;
    printf("%s: %s -> %s\n", key, a ? a : "(absent)", b ? b : "(absent)");
    return 0;
}

/* A run id given as a positional argument. */
static int parse_id(const char *s, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || v < 1) {
        fprintf(stderr, "crl diff: a run id is a whole number >= 1, got '%s'\n", s);
        return 2;
    }
    *out = v;
    return 0;
}

int cmd_diff(int argc, char **argv) {
    const char *db = NULL;
    const opt_def defs[] = {{"db", OPT_STR, &db, 0, 0, "SQLite run store", 0}};
    const char *usage = "--db FILE RUN_A RUN_B";
    /* The options (all take a value) for opts_parse, the run ids apart:
     * opts_parse refuses positional arguments. */
    char *opt_argv[16];
    const char *pos[3];
    int n_opt = 0, n_pos = 0;
    opt_argv[n_opt++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            if (n_opt + 2 >= 16) {
                fprintf(stderr, "crl diff: too many arguments (see 'crl diff --help')\n");
                return 2;
            }
            opt_argv[n_opt++] = argv[i];
            /* "--db FILE": the value goes along (not "--db=FILE", "--help"). */
            if (a[1] == '-' && !strchr(a, '=') && strcmp(a, "--help") && i + 1 < argc)
                opt_argv[n_opt++] = argv[++i];
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            n_pos++;
        }
    }
    opt_argv[n_opt] = NULL;
    int rc = opts_parse("diff", defs, 1, n_opt, opt_argv, usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl diff: --db FILE is required (usage: crl diff %s)\n", usage);
        return 2;
    }
    if (n_pos != 2) {
        fprintf(stderr, "crl diff: give two run ids, got %d (usage: crl diff %s)\n",
                n_pos, usage);
        return 2;
    }
    diff_ctx c = {0, 0, 0};
    if ((rc = parse_id(pos[0], &c.a)) || (rc = parse_id(pos[1], &c.b))) return rc;
    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl diff: %s\n", err.msg);
        return 1;
    }
    rc = crl_store_config_diff(store, c.a, c.b, print_key, &c, &err);
    crl_store_close(store);
    if (rc) {
        fprintf(stderr, "crl diff: %s\n", err.msg);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    if (c.n == 0)
        fprintf(stderr, "crl diff: runs %lld and %lld have the same configuration\n",
                (long long)c.a, (long long)c.b);
    return 0;
}
