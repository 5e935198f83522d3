/* Flag tables: one row per option drives parsing, --help and the config that
 * is stored with a run. */
#ifndef CRL_CLI_OPTS_H
#define CRL_CLI_OPTS_H

#include <stdint.h>
#include <stdio.h>

#include "crl/store.h"

typedef enum {
    OPT_INT,
    OPT_I64,
    OPT_U64,
    OPT_FLOAT,
    OPT_DOUBLE,
    OPT_STR,
    OPT_FLAG
} opt_type;

typedef struct {
    const char *name; /* long flag without "--" */
    opt_type type;
    void *ptr;       /* int*, int64_t*, uint64_t*, float*, const char**, int* */
    double min, max; /* accepted range for numbers */
    const char *help;
    int stored; /* part of the run's effective config */
} opt_def;

/* Parse argv (argv[0] is the sub-command) against defs. Prints one error line
 * "crl CMD: ..." to stderr and returns 2 on a bad flag or value; returns 1 if
 * --help was printed; 0 on success. */
int opts_parse(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
               const char *usage);
/* opts_parse that also sets given[i] (n entries) to 1 for each option i on
 * the command line (abbreviated or not) and 0 for the others. */
int opts_parse_given(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
                     const char *usage, unsigned char *given);
void opts_help(FILE *f, const char *cmd, const opt_def *defs, int n, const char *usage);
/* Copies of restored string options, owned by the command that restored
 * them: free with opts_strs_free once the options are no longer used. */
typedef struct {
    char *p[64];
    int n;
} opt_strs;
void opts_strs_free(opt_strs *k);

/* Set option `name` from its stored text (a run's config_json). Returns 0,
 * 1 if no option has that name (ignored), -1 if the value is invalid (one
 * line on stderr). Strings are copied into keep. */
int opts_set(const opt_def *defs, int n, const char *name, const char *text,
             opt_strs *keep);
/* The stored options as key/values (strings kept as pointers into defs). */
int opts_to_kv(const opt_def *defs, int n, crl_kv *kv, int max);

#endif
