/* crl: the command-line tool. Parses, dispatches, prints. */
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crl/blas.h"
#include "crl/store.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cmd_train, "train a SAC agent and record the run in a database"},
    {"runs", cmd_runs, "list the runs of a database (name, tags, status, score)"},
    {"rm", cmd_rm, "delete a run and everything it owns"},
    {"diff", cmd_diff, "the configuration difference of two runs"},
    {"export-metrics", cmd_export_metrics,
     "a run's metrics and evaluations as CSV, TensorBoard or Parquet"},
    {"eval", cmd_eval, "re-evaluate a run's latest checkpoint"},
    {"report", cmd_report, "Continual World table (performance, forgetting, transfer)"},
    {"tasks", cmd_tasks, "list every task with its sizes"},
    {"scenarios", cmd_scenarios, "list the scenarios and their tasks"},
    {"scripted", cmd_scripted, "success rate of a task's scripted (or random) policy"},
    {"replay", cmd_replay,
     "verify, watch or film a logged episode (exact re-simulation)"},
    {"render", cmd_render, "one headless frame of a task's initial scene (PNG)"},
    {"view", cmd_view,
     "watch a policy, the scripted policy or random actions in a window"},
    {"plot", cmd_plot, "learning curves, success matrix or method comparison (PNG/SVG)"},
    {"dataset", cmd_dataset, "collect expert episodes into a dataset; --info, --verify"},
    {"export", cmd_export, "write a run's policy (.crlp) or a task's MJCF for embedding"},
    {"sweep", cmd_sweep,
     "methods x seeds of a scenario as jobs, locally or under mpirun"},
    {"merge", cmd_merge, "combine shard databases into one (renumbered run ids)"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: crl <command> [options]\n       crl --version | --help\n\n"
               "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'crl <command> --help' shows the options of a command.\n");
}

static int version(void) {
    crl_err err = {0};
    printf("crl %s\n", CRL_VERSION_STRING);
    printf("MuJoCo %s\n", mj_versionString());
    printf("SQLite %s\n", crl_store_sqlite_version());
    if (crl_blas_init(1, &err) != CRL_OK) {
        printf("BLAS: unavailable (%s)\n", err.msg);
        return 1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int lanes = cores >= 2 ? 2 : 1;
    printf("BLAS: OpenBLAS kernel %s (%s)\n", crl_blas_kernel(), crl_blas_how());
    printf("threads: %d (SAC update on %d lane%s of single-threaded BLAS; --threads to "
           "change)\n",
           lanes, lanes, lanes > 1 ? "s" : "");
    const char *mpi = cli_mpi_version();
    printf("MPI: %s\n", mpi ? mpi : "none (crl sweep runs its jobs locally only)");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) return version();
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "crl: unknown command '%s' (see 'crl --help')\n", cmd);
    return 2;
}
