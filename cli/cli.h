/* Sub-commands of the crl tool. Each returns the process exit code:
 * 0 ok, 1 failure, 2 bad usage, 130 interrupted. */
#ifndef CRL_CLI_H
#define CRL_CLI_H

int cmd_train(int argc, char **argv);          /* cli/cmd_train.c */
int cmd_eval(int argc, char **argv);           /* cli/cmd_train.c */
int cmd_runs(int argc, char **argv);           /* cli/cmd_runs.c */
int cmd_rm(int argc, char **argv);             /* cli/cmd_rm.c */
int cmd_diff(int argc, char **argv);           /* cli/cmd_diff.c */
int cmd_export_metrics(int argc, char **argv); /* cli/cmd_export_metrics.c */
int cmd_report(int argc, char **argv);         /* cli/cmd_report.c */
int cmd_tasks(int argc, char **argv);          /* cli/cmd_tasks.c */
int cmd_scenarios(int argc, char **argv);      /* cli/cmd_tasks.c */
int cmd_scripted(int argc, char **argv);       /* cli/cmd_tasks.c */
int cmd_replay(int argc, char **argv);         /* cli/cmd_replay.c */
int cmd_render(int argc, char **argv);         /* cli/cmd_viz.c */
int cmd_view(int argc, char **argv);           /* cli/cmd_viz.c */
int cmd_plot(int argc, char **argv);           /* cli/cmd_viz.c */
int cmd_sweep(int argc, char **argv);          /* cli/cmd_sweep.c */
int cmd_merge(int argc, char **argv);          /* cli/cmd_merge.c */
int cmd_export(int argc, char **argv);         /* cli/cmd_export.c */
int cmd_dataset(int argc, char **argv);        /* cli/cmd_dataset.c */

/* The MPI library crl sweep uses under mpirun, NULL if built without one. */
const char *cli_mpi_version(void); /* cli/cmd_sweep.c */

/* A progress line's time left: "45s", "12m07s" or "3h05m" ("--" if unknown). */
void cli_fmt_eta(double s, char *buf, size_t n); /* cli/cmd_train.c */

/* crl train --dry-run: the resolved configuration and an estimated wall
 * time from a 2-second calibration; writes nothing. Returns the exit code. */
int cli_dry_run(const void *run_config); /* cli/dry_run.c, a crl_run_config */

/* Exit code for a crl status. */
int cli_exit_code(int status);

#endif
