/* crl tasks / scenarios / scripted. (Being written.) */
#include <stdio.h>

#include "cli/cli.h"

int cmd_tasks(int argc, char **argv) {
    fprintf(stderr, "crl tasks: not implemented yet\n");
    return 1;
}
int cmd_scenarios(int argc, char **argv) {
    fprintf(stderr, "crl scenarios: not implemented yet\n");
    return 1;
}
int cmd_scripted(int argc, char **argv) {
    fprintf(stderr, "crl scripted: not implemented yet\n");
    return 1;
}
