/* getopt_long over a descriptor table. */
#include "cli/opts.h"

#include <stdio.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS    128
#define MAX_ALIASES 2 /* extra long names per option */

static int has_def(const opt_def *defs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (defs[i].type != OPT_GROUP && !strcmp(defs[i].name, name)) return 1;
    return 0;
}

const char *opts_flag_name(const opt_def *defs, int n, int i) {
    const char *name = defs[i].name;
    if (!strcmp(name, "out")) return "output";
    if (!strcmp(name, "env") && !has_def(defs, n, "task")) return "task";
    return name;
}

/* The other long names def i answers to (NULL-terminated). */
static void flag_aliases(const opt_def *defs, int n, int i, const char **al) {
    int k = 0;
    const char *shown = opts_flag_name(defs, n, i);
    if (strcmp(shown, defs[i].name)) al[k++] = defs[i].name; /* --out, --env */
    if (!strcmp(shown, "output") && strcmp(defs[i].name, "out") &&
        !has_def(defs, n, "out"))
        al[k++] = "out";
    al[k] = NULL;
}

/* What a value is, in --help: by name, else by type. */
static const char *metavar(const opt_def *d, const char *shown) {
    static const struct {
        const char *name, *mv;
    } T[] = {{"db", "FILE"},
             {"output", "PATH"},
             {"run", "ID"},
             {"task", "NAME"},
             {"tasks", "NAME,..."},
             {"scenario", "NAME"},
             {"method", "NAME"},
             {"methods", "NAME,..."},
             {"seed", "S"},
             {"seeds", "S,..."},
             {"resume", "ID"},
             {"base", "RUN[:TASK]"},
             {"base-db", "FILE"},
             {"env-xml", "FILE"},
             {"task-xml", "NAME"},
             {"policy", "FILE"},
             {"offline", "DATA.db"},
             {"run-db", "FILE"},
             {"episode", "ID"},
             {"video", "FILE"},
             {"format", "FORMAT"},
             {"kind", "KIND"},
             {"lookat", "X,Y,Z"},
             {"xml-target", "X,Y,Z"},
             {"metric", "NAME"},
             {"title", "TEXT"},
             {"modulator", "KIND"},
             {"l2m-router", "KIND"},
             {"l2m-weights", "MODE"},
             {"l2m-collect", "MODE"},
             {"bc-loss", "LOSS"},
             {"xml-reward", "KIND"},
             {"xml-body", "BODY"},
             {"xml-site", "SITE"},
             {"csp-criterion", "CRITERION"},
             {"frames", "DIR"},
             {"info", "FILE"},
             {"verify", "FILE"},
             {"name", "NAME"},
             {"tag", "TAG"},
             {"status", "STATUS"},
             {"log-train-episodes", "every:N|none"}};
    for (size_t k = 0; k < sizeof T / sizeof T[0]; k++)
        if (!strcmp(shown, T[k].name)) return T[k].mv;
    switch (d->type) {
    case OPT_INT:
    case OPT_I64:
    case OPT_U64:
        return "N";
    case OPT_FLOAT:
    case OPT_DOUBLE:
        return "X";
    default:
        return "VALUE";
    }
}

static int parse_value(const char *cmd, const opt_def *d, const char *flag,
                       const char *arg) {
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
            fprintf(stderr, "crl %s: --%s must be in [%.0f, %.0f], got %s\n", cmd, flag,
                    d->min, d->max, arg);
            return 2;
        }
        if (d->type == OPT_INT) *(int *)d->ptr = (int)v;
        if (d->type == OPT_I64) *(int64_t *)d->ptr = v;
        if (d->type == OPT_U64) *(uint64_t *)d->ptr = (uint64_t)v;
        return 0;
    bad_int:
        fprintf(stderr, "crl %s: --%s expects a whole number, got '%s'\n", cmd, flag,
                arg);
        return 2;
    }
    case OPT_FLOAT: {
        double v = strtod(arg, &end);
        if (errno || !end || *end || end == arg || !isfinite(v)) {
            fprintf(stderr, "crl %s: --%s expects a finite number, got '%s'\n", cmd, flag,
                    arg);
            return 2;
        }
        if (v < d->min || v > d->max) {
            fprintf(stderr, "crl %s: --%s must be in [%g, %g], got %s\n", cmd, flag,
                    d->min, d->max, arg);
            return 2;
        }
        *(float *)d->ptr = (float)v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v = strtod(arg, &end);
        if (errno || !end || *end || end == arg || !isfinite(v)) {
            fprintf(stderr, "crl %s: --%s expects a finite number, got '%s'\n", cmd, flag,
                    arg);
            return 2;
        }
        if (v < d->min || v > d->max) {
            fprintf(stderr, "crl %s: --%s must be in [%g, %g], got %s\n", cmd, flag,
                    d->min, d->max, arg);
            return 2;
        }
        *(double *)d->ptr = v;
        return 0;
    }
    case OPT_STR:
        if (!*arg) {
            fprintf(stderr, "crl %s: --%s expects a value\n", cmd, flag);
            return 2;
        }
        *(const char **)d->ptr = arg;
        return 0;
    case OPT_FLAG:
        *(int *)d->ptr = 1;
        return 0;
    case OPT_GROUP:
        break;
    case OPT_STRLIST: {
        opt_list *l = d->ptr;
        if (!*arg) {
            fprintf(stderr, "crl %s: --%s expects a value\n", cmd, flag);
            return 2;
        }
        if (l->n >= OPT_LIST_MAX) {
            fprintf(stderr, "crl %s: --%s is given more than %d times\n", cmd, flag,
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
    fprintf(f, "usage: crl %s %s\n\n%s", cmd, usage,
            n > 0 && defs[0].type == OPT_GROUP ? "" : "options:\n");
    for (int i = 0; i < n; i++) {
        const opt_def *d = &defs[i];
        if (d->type == OPT_GROUP) {
            fprintf(f, "%s%s:\n", i ? "\n" : "", d->name);
            continue;
        }
        char flag[96], def[64] = "", also[96] = "";
        const char *shown = opts_flag_name(defs, n, i);
        const char *al[MAX_ALIASES + 1];
        flag_aliases(defs, n, i, al);
        for (int k = 0; al[k]; k++)
            snprintf(also + strlen(also), sizeof also - strlen(also), "%s--%s",
                     k ? ", " : " (also ", al[k]);
        if (*also) snprintf(also + strlen(also), sizeof also - strlen(also), ")");
        snprintf(flag, sizeof flag, "%s--%s%s%s", strcmp(shown, "output") ? "" : "-o, ",
                 shown, d->type == OPT_FLAG ? "" : " ",
                 d->type == OPT_FLAG ? "" : metavar(d, shown));
        switch (strstr(d->help, "default") ? OPT_GROUP : d->type) { /* said already */
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
        case OPT_GROUP:
            break;
        case OPT_STRLIST:
            snprintf(def, sizeof def, " (repeatable)");
            break;
        }
        if (strlen(flag) > 24)
            fprintf(f, "  %s\n  %-24s %s%s%s\n", flag, "", d->help, def, also);
        else
            fprintf(f, "  %-24s %s%s%s\n", flag, d->help, def, also);
    }
    fprintf(f, "%s  %-24s %s\n", n > 0 && defs[0].type == OPT_GROUP ? "\n" : "", "--help",
            "show this help");
}

int opts_parse(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
               const char *usage) {
    return opts_parse_given(cmd, defs, n, argc, argv, usage, NULL);
}

int opts_parse_given(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
                     const char *usage, unsigned char *given) {
    struct option lo[MAX_OPTS * (1 + MAX_ALIASES) + 2];
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
    int m = 0, out = -1;
    for (int i = 0; i < n; i++) {
        if (defs[i].type == OPT_GROUP) continue;
        const char *names[MAX_ALIASES + 2] = {opts_flag_name(defs, n, i)};
        flag_aliases(defs, n, i, names + 1);
        if (!strcmp(names[0], "output")) out = i;
        for (int k = 0; names[k]; k++)
            lo[m++] = (struct option){
                names[k], defs[i].type == OPT_FLAG ? no_argument : required_argument,
                NULL, 1000 + i};
    }
    lo[m] = (struct option){"help", no_argument, NULL, 'h'};
    lo[m + 1] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    optind = 1;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, out >= 0 ? ":ho:" : ":h", lo, &idx);
        if (c == -1) break;
        if (c == 'o') c = 1000 + out; /* -o FILE: --output FILE */
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
        const char *shown = opts_flag_name(defs, n, k);
        if (had[k] && d->type != OPT_STRLIST) {
            if (d->type == OPT_FLAG)
                fprintf(stderr, "crl %s: --%s is given twice; give it once\n", cmd,
                        shown);
            else
                fprintf(stderr,
                        "crl %s: --%s is given twice (--%s %s and --%s %s); give it "
                        "once\n",
                        cmd, shown, shown, seen[k], shown, optarg ? optarg : "");
            return 2;
        }
        had[k] = 1;
        seen[k] = optarg ? optarg : "";
        int rc = parse_value(cmd, d, shown, optarg ? optarg : "");
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

int opts_task_pos(const char *cmd, const char *arg, const char *scenario_name,
                  int n_tasks, const char *const *tasks, int *pos) {
    *pos = -1;
    if (!arg) return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end != arg && !*end && !errno) {
        if (v < 0 || v >= n_tasks) {
            fprintf(stderr, "crl %s: --task %s: %s has positions 0 to %d (0-based)\n",
                    cmd, arg, scenario_name, n_tasks - 1);
            return 2;
        }
        *pos = (int)v;
        return 0;
    }
    int found = 0;
    char where[256] = "";
    for (int i = 0; i < n_tasks; i++)
        if (!strcmp(tasks[i], arg)) {
            if (!found) *pos = i;
            snprintf(where + strlen(where), sizeof where - strlen(where), "%s%d",
                     found ? ", " : "", i);
            found++;
        }
    if (found == 1) return 0;
    *pos = -1;
    if (found > 1) {
        fprintf(stderr, "crl %s: --task %s is at positions %s of %s; give one position\n",
                cmd, arg, where, scenario_name);
        return 2;
    }
    char list[512] = "";
    for (int i = 0; i < n_tasks && strlen(list) < sizeof list - 64; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d %s",
                 i ? ", " : "", i, tasks[i]);
    fprintf(stderr, "crl %s: --task %s is not a task of %s (%s)\n", cmd, arg,
            scenario_name, list);
    return 2;
}
