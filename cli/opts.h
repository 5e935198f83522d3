/* Flag tables: one row per option drives parsing and --help. A run's
 * stored configuration is the library's (crl_run_config, crl/run.h): the
 * flags of crl train only set its fields. */
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
    OPT_FLAG,
    OPT_GROUP, /* not an option: a heading of --help (name = the heading) */
    /* The one repeatable kind: each occurrence appends its value to an
     * opt_list (ptr). Only for flags that are lists by nature (train's and
     * runs' --tag); every other flag given twice is refused. */
    OPT_STRLIST
} opt_type;

#define OPT_LIST_MAX 32
typedef struct {
    const char *v[OPT_LIST_MAX];
    int n;
} opt_list;

typedef struct {
    const char *name; /* long flag without "--" */
    opt_type type;
    void *ptr; /* int*, int64_t*, uint64_t*, float*, const char**, int*, opt_list* */
    double min, max; /* accepted range for numbers */
    const char *help;
    int stored; /* sets a field of the run's configuration (crl_run_config) */
} opt_def;

/* Spelling shared by every command (docs/cli.md):
 * - an option named "output" (or "out") is -o, --output, and --out too;
 * - an option named "env" (a task name) is --task, and --env too, where the
 *   command has no "task" option of its own;
 * - --help shows a metavar that says what a value is (FILE, ID, NAME, N, X).
 * The flag a def is shown as: */
const char *opts_flag_name(const opt_def *defs, int n, int i);

/* Parse argv (argv[0] is the sub-command) against defs. Prints one error line
 * "crl CMD: ..." to stderr and returns 2 on a bad flag or value, or a flag
 * given twice, abbreviated or not (one value would silently replace the
 * other; only an OPT_STRLIST flag accumulates values, up to OPT_LIST_MAX);
 * returns 1 if --help was printed; 0 on success. */
int opts_parse(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
               const char *usage);
/* opts_parse that also sets given[i] (n entries) to 1 for each option i on
 * the command line (abbreviated or not) and 0 for the others. */
int opts_parse_given(const char *cmd, const opt_def *defs, int n, int argc, char **argv,
                     const char *usage, unsigned char *given);
/* --task of a command that picks a task of a run's scenario: a 0-based
 * scenario position or a task name (a name that appears at several
 * positions must be given as a position). arg NULL: *pos = -1 (every task).
 * sc NULL (a single-task run): position 0 or the run's task name `single`.
 * Prints one line "crl CMD: ..." and returns 2 when it names no task. */
int opts_task_pos(const char *cmd, const char *arg, const char *scenario_name,
                  int n_tasks, const char *const *tasks, int *pos);

void opts_help(FILE *f, const char *cmd, const opt_def *defs, int n, const char *usage);
#endif
