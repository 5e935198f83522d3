/* getopt_long over a descriptor table. */
#include "cli/opts.h"

#include <stdio.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 128

static int parse_value(const char *cmd, const opt_def *d, const char *arg) {
    char *end = NULL;
    errno = 0;
    switch (d->type) {
    case OPT_INT:
    case OPT_I64:
    case OPT_U64: {
        if (d->type == OPT_U64 && arg[0] == '-') goto bad_int;
        long long v = strtoll(arg, &end, 10);
        /* allow 1e6-style integers: parse as double if it is integral */
        if (end && (*end == 'e' || *end == 'E' || *end == '.')) {
            double dv = strtod(arg, &end);
            if (*end || dv != floor(dv) || fabs(dv) > 9.0e18) goto bad_int;
            v = (long long)dv;
        }
        if (errno || !end || *end || end == arg) goto bad_int;
        if ((double)v < d->min || (double)v > d->max) {
            fprintf(stderr, "crl %s: --%s must be in [%.0f, %.0f], got %s\n", cmd,
                    d->name, d->min, d->max, arg);
            return 2;
        }
        if (d->type == OPT_INT) *(int *)d->ptr = (int)v;
        if (d->type == OPT_I64) *(int64_t *)d->ptr = v;
        if (d->type == OPT_U64) *(uint64_t *)d->ptr = (uint64_t)v;
        return 0;
    bad_int:
        fprintf(stderr, "crl %s: --%s expects a whole number, got '%s'\n", cmd, d->name,
                arg);
        return 2;
    }
    case OPT_FLOAT: {
        double v = strtod(arg, &end);
        if (errno || !end || *end || end == arg || !isfinite(v)) {
            fprintf(stderr, "crl %s: --%s expects a finite number, got '%s'\n", cmd,
                    d->name, arg);
            return 2;
        }
        if (v < d->min || v > d->max) {
            fprintf(stderr, "crl %s: --%s must be in [%g, %g], got %s\n", cmd, d->name,
                    d->min, d->max, arg);
            return 2;
        }
        *(float *)d->ptr = (float)v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v = strtod(arg, &end);
        if (errno || !end || *end || end == arg || !isfinite(v)) {
            fprintf(stderr, "crl %s: --%s expects a finite number, got '%s'\n", cmd,
                    d->name, arg);
            return 2;
        }
        if (v < d->min || v > d->max) {
            fprintf(stderr, "crl %s: --%s must be in [%g, %g], got %s\n", cmd, d->name,
                    d->min, d->max, arg);
            return 2;
        }
        *(double *)d->ptr = v;
        return 0;
    }
    case OPT_STR:
        if (!*arg) {
            fprintf(stderr, "crl %s: --%s expects a value\n", cmd, d->name);
            return 2;
        }
        *(const char **)d->ptr = arg;
        return 0;
    case OPT_FLAG:
        *(int *)d->ptr = 1;
        return 0;
    case OPT_STRLIST: {
        opt_list *l = d->ptr;
        if (!*arg) {
            fprintf(stderr, "crl %s: --%s expects a value\n", cmd, d->name);
            return 2;
        }
        if (l->n >= OPT_LIST_MAX) {
            fprintf(stderr, "crl %s: --%s is given more than %d times\n", cmd, d->name,
                    OPT_LIST_MAX);
            return 2;
        }
        l->v[l->n++] = arg;
        return 0;
    }
    }
    return 2;
}

void opts_help(FILE *f, const char *cmd, const opt_def *defs, int n, const char *usage) {
    fprintf(f, "usage: crl %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < n; i++) {
        const opt_def *d = &defs[i];
        char flag[64], def[64] = "";
        snprintf(flag, sizeof flag, "--%s%s", d->name, d->type == OPT_FLAG ? "" : " X");
        switch (d->type) {
        case OPT_INT:
            snprintf(def, sizeof def, " (default %d)", *(int *)d->ptr);
            break;
        case OPT_I64:
            snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)d->ptr);
            break;
        case OPT_U64:
            snprintf(def, sizeof def, " (default %llu)",
                     (unsigned long long)*(uint64_t *)d->ptr);
            break;
        case OPT_FLOAT:
            snprintf(def, sizeof def, " (default %g)", *(float *)d->ptr);
            break;
        case OPT_DOUBLE:
            snprintf(def, sizeof def, " (default %g)", *(double *)d->ptr);
            break;
        case OPT_STR:
            if (*(const char **)d->ptr)
                snprintf(def, sizeof def, " (default %s)", *(const char **)d->ptr);
            break;
        case OPT_FLAG:
            break;
        case OPT_STRLIST:
            snprintf(def, sizeof def, " (repeatable)");
            break;
        }
        fprintf(f, "  %-22s %s%s\n", flag, d->help, def);
    }
    fprintf(f, "  %-22s %s\n", "--help", "show this help");
}

int opts_parse(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
               const char *usage) {
    return opts_parse_given(cmd, defs, n, argc, argv, usage, NULL);
}

int opts_parse_given(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
                     const char *usage, unsigned char *given) {
    struct option lo[MAX_OPTS + 2];
    if (n > MAX_OPTS) {
        /* A programming error, not a user's: never drop options silently
         * (a table past 64 once made `--quiet` "unknown"). */
        fprintf(stderr, "crl %s: internal error: %d options, at most %d\n", cmd, n,
                MAX_OPTS);
        return 2;
    }
    if (given) memset(given, 0, (size_t)n);
    const char *seen[MAX_OPTS]; /* the value each option was given, once given */
    unsigned char had[MAX_OPTS];
    memset(had, 0, sizeof had);
    for (int i = 0; i < n; i++) {
        lo[i].name = defs[i].name;
        lo[i].has_arg = defs[i].type == OPT_FLAG ? no_argument : required_argument;
        lo[i].flag = NULL;
        lo[i].val = 1000 + i;
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    optind = 1;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, ":h", lo, &idx);
        if (c == -1) break;
        if (c == 'h') {
            opts_help(stdout, cmd, defs, n, usage);
            return 1;
        }
        if (c == '?') {
            char shortopt[3] = {'-', (char)optopt, 0};
            const char *bad = optopt > 0 && optopt < 128 ? shortopt : argv[optind - 1];
            fprintf(stderr, "crl %s: unknown option '%s' (see 'crl %s --help')\n", cmd,
                    bad, cmd);
            return 2;
        }
        if (c == ':') {
            fprintf(stderr, "crl %s: option '%s' needs a value\n", cmd, argv[optind - 1]);
            return 2;
        }
        const int k = c - 1000;
        const opt_def *d = &defs[k];
        if (had[k] && d->type != OPT_STRLIST) {
            if (d->type == OPT_FLAG)
                fprintf(stderr, "crl %s: --%s is given twice; give it once\n", cmd,
                        d->name);
            else
                fprintf(stderr,
                        "crl %s: --%s is given twice (--%s %s and --%s %s); give it "
                        "once\n",
                        cmd, d->name, d->name, seen[k], d->name, optarg ? optarg : "");
            return 2;
        }
        had[k] = 1;
        seen[k] = optarg ? optarg : "";
        int rc = parse_value(cmd, d, optarg ? optarg : "");
        if (rc) return rc;
        if (given) given[c - 1000] = 1;
    }
    if (optind < argc) {
        fprintf(stderr, "crl %s: unexpected argument '%s' (see 'crl %s --help')\n", cmd,
                argv[optind], cmd);
        return 2;
    }
    return 0;
}
