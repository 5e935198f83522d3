/* crl sweep: a study (methods x seeds of one scenario, plus the single-task
 * reference runs) as jobs. Each job is one `crl train` process writing its
 * own shard database DIR/shards/<job>.db; `crl merge` combines them.
 *
 * Locally, --jobs N processes run side by side. Under mpirun (a crl built
 * with MPI), rank 0 hands jobs out one at a time to the other ranks, which
 * run them as child processes and report back; jobs differ in length, so
 * there is no static split. A worker that goes silent loses only the jobs it
 * was running. Rerunning the same command skips finished jobs and resumes
 * interrupted ones from their checkpoints. docs/sweeps.md.
 *
 * MPI is used here only: the library knows nothing of it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#ifdef CRL_HAVE_MPI
#include <mpi.h>
#endif

#include "cli/cli.h"
#include "crl/continual.h"
#include "crl/run.h"
#include "crl/methods.h"
#include "crl/scenario.h"
#include "crl/store.h"

#define MAX_METHODS 16
#define MAX_SEEDS   1000
#define PATH_CAP    4096
#define WHY_CAP     (PATH_CAP + 640)

/* J_INT: the job stopped on SIGINT/SIGTERM (exit 130) with a checkpoint. */
enum { J_WAIT, J_RUN, J_DONE, J_SKIP, J_FAIL, J_LOST, J_INT, J__N };

typedef struct {
    char name[64];
    const char *method;
    uint64_t seed;
    int pos;       /* single: the scenario position; else -1 */
    int64_t steps; /* env steps of the whole job */
    double cost;   /* steps x the method's cost per step */
    int state;
    int64_t resume; /* run to resume (0: a fresh run) */
    pid_t pid;      /* local child */
    int rank;       /* MPI: the worker running it */
    double t0;
    int64_t step; /* progress, from the job's log */
    int code;     /* exit status (128 + signal when killed) */
    char why[WHY_CAP];
} job;

typedef struct {
    const char *scenario, *methods, *seeds, *single_seeds, *out;
    int jobs, dry_run, quiet;
    double worker_timeout;
    const char **pass; /* crl train flags, passed through verbatim */
    int n_pass;
    int64_t steps_per_task;
    const crl_scenario *sc;
    char exe[PATH_CAP];
    job *job;
    int n_jobs;
    int *order; /* job indices in dispatch order (longest first) */
    int lock_fd;
    int tty;
    double t_start, last_line;
    double work_total; /* cost units of the jobs this run has to do */
    int lost_workers;  /* MPI: ranks that went silent */
} sweep;

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
    (void)sig;
    g_stop++;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

/* Cost of an env step relative to a plain SAC update (the registry's), or
 * -1 for a method a sweep does not run (unknown, or not a continual agent or
 * a reference). */
static double method_cost(const char *m) {
    const crl_method *x = crl_method_find(m);
    if (!x || !(x->impl->flags & (CRL_METHOD_CONTINUAL | CRL_METHOD_REFERENCE)))
        return -1;
    return x->impl->cost;
}

/* The reference method: its runs are jobs of their own (--single-seeds). */
static const char *ref_method(void) {
    return crl_method_with(CRL_METHOD_REFERENCE)->name;
}

/* "1-10", "1,3,5", "1-3,7": up to MAX_SEEDS seeds; -1 if malformed. */
static int parse_seeds(const char *s, uint64_t *out) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p)) return -1;
        errno = 0;
        unsigned long long a = strtoull(p, &end, 10), b = a;
        if (errno) return -1;
        p = end;
        if (*p == '-') {
            if (!isdigit((unsigned char)p[1])) return -1;
            b = strtoull(p + 1, &end, 10);
            if (errno || b < a) return -1;
            p = end;
        }
        for (unsigned long long v = a; v <= b; v++) {
            if (n >= MAX_SEEDS) return -1;
            for (int k = 0; k < n; k++)
                if (out[k] == v) return -1;
            out[n++] = v;
            if (v == b) break;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

static const char *const OWN[] = {"scenario", "methods", "seeds",         "single-seeds",
                                  "output",   "jobs",    "worker-timeout"};
static const char *const OWN_FLAGS[] = {"dry-run", "quiet"};
/* crl train flags a sweep sets itself for every job. */
static const char *const FORBIDDEN[] = {"db",          "resume",  "method", "seed", "env",
                                        "single-task", "env-xml", "steps",  "task"};

static void sweep_usage(FILE *f) {
    static const char *const lines[] = {
        "usage: crl sweep --scenario S --methods M1,M2,... --seeds 1-10 -o DIR",
        "                 [--jobs N] [--single-seeds SEEDS|none] [crl train flags]",
        "",
        "Runs every method x seed through scenario S, plus the single-task reference",
        "runs forward transfer needs (one per distinct task and seed), each job a",
        "`crl train` process with its own shard DIR/shards/JOB.db and log",
        "DIR/logs/JOB.log. Under mpirun (crl built with MPI) rank 0 hands out jobs",
        "to the other ranks. Rerunning the same command skips finished jobs and",
        "resumes interrupted ones. Then: crl merge DIR/shards/*.db -o DIR/study.db",
        "(docs/sweeps.md).",
        "",
        "options:",
        "  --scenario S           scenario (see 'crl scenarios')",
        "  --methods LIST         comma-separated: ft1 ftn l2 ewc packnet pm csp l2m",
        "  --seeds SEEDS          e.g. 1-10 or 1,3,5",
        "  --single-seeds SEEDS   seeds of the reference runs (default: --seeds;",
        "                         none: no references)",
        "  -o, --output DIR       sweep directory (created; also --out)",
        "  --jobs N               jobs at a time: locally (default: one per two",
        "                         cores) or per MPI worker (default 1)",
        "  --worker-timeout S     MPI: seconds of silence after which a worker and",
        "                         its jobs are lost (default 120)",
        "  --dry-run              list the jobs and what a run would do with each",
        "  --quiet                job events only, no progress line",
        "  --help                 show this help",
        "Any other flag goes to every `crl train` (e.g. --steps-per-task 100000",
        "--threads 1); see 'crl train --help'.",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        fprintf(f, "%s\n", lines[i]);
}

static int parse_args(sweep *sw, int argc, char **argv) {
    sw->pass = calloc((size_t)argc + 1, sizeof *sw->pass);
    if (!sw->pass) return 1;
    const char **own_val[] = {&sw->scenario, &sw->methods, &sw->seeds, &sw->single_seeds,
                              &sw->out,      NULL,         NULL};
    const char *jobs = NULL, *timeout = NULL;
    own_val[5] = &jobs;
    own_val[6] = &timeout;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sweep_usage(stdout);
            return -1;
        }
        /* -o DIR and --out DIR are --output DIR, as in every command. */
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) a = "--output";
        if (!strncmp(a, "--out=", 6)) {
            if (!a[6]) {
                fprintf(stderr, "crl sweep: option '--output' needs a value\n");
                return 2;
            }
            sw->out = a + 6;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            sw->pass[sw->n_pass++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int hit = 0;
        for (int k = 0; k < (int)(sizeof OWN / sizeof OWN[0]); k++) {
            if (strlen(OWN[k]) != len || strncmp(OWN[k], name, len)) continue;
            hit = 1;
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                fprintf(stderr, "crl sweep: option '--%s' needs a value\n", OWN[k]);
                return 2;
            }
            *own_val[k] = v;
        }
        for (int k = 0; k < (int)(sizeof OWN_FLAGS / sizeof OWN_FLAGS[0]) && !hit; k++)
            if (!strcmp(name, OWN_FLAGS[k])) {
                hit = 1;
                if (k == 0) sw->dry_run = 1;
                if (k == 1) sw->quiet = 1;
            }
        for (int k = 0; k < (int)(sizeof FORBIDDEN / sizeof FORBIDDEN[0]) && !hit; k++)
            if (strlen(FORBIDDEN[k]) == len && !strncmp(FORBIDDEN[k], name, len)) {
                fprintf(stderr,
                        "crl sweep: --%s is set by the sweep for each job; it cannot be "
                        "passed to crl train\n",
                        FORBIDDEN[k]);
                return 2;
            }
        if (hit) continue;
        sw->pass[sw->n_pass++] = a;
        /* The budget is needed for the time estimate. */
        if (len == 14 && !strncmp(name, "steps-per-task", 14)) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : "");
            double d = strtod(v, NULL);
            if (d >= 1) sw->steps_per_task = (int64_t)d;
        }
    }
    if (!sw->scenario || !sw->methods || !sw->seeds || !sw->out) {
        fprintf(stderr,
                "crl sweep: --scenario, --methods, --seeds and -o DIR are required "
                "(see 'crl sweep --help')\n");
        return 2;
    }
    if (jobs) {
        char *end;
        long v = strtol(jobs, &end, 10);
        if (*end || v < 1 || v > 1024) {
            fprintf(stderr, "crl sweep: --jobs must be in [1, 1024], got %s\n", jobs);
            return 2;
        }
        sw->jobs = (int)v;
    }
    if (timeout) {
        char *end;
        double v = strtod(timeout, &end);
        if (*end || !(v >= 1 && v <= 1e6)) {
            fprintf(stderr, "crl sweep: --worker-timeout must be in [1, 1e6] s, got %s\n",
                    timeout);
            return 2;
        }
        sw->worker_timeout = v;
    }
    sw->sc = crl_scenario_find(sw->scenario);
    if (!sw->sc) {
        fprintf(stderr, "crl sweep: unknown scenario '%s' (see 'crl scenarios')\n",
                sw->scenario);
        return 2;
    }
    return 0;
}

/* Every method x seed, then one reference per distinct task name and seed
 * (the report pools references by task name, so cw20's second pass needs
 * none of its own). */
static int build_jobs(sweep *sw) {
    const char *m[MAX_METHODS];
    int n_m = 0;
    static char methods_copy[1024];
    snprintf(methods_copy, sizeof methods_copy, "%s", sw->methods);
    for (char *save = NULL, *tok = strtok_r(methods_copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (method_cost(tok) < 0) {
            char known[256], refs[64];
            fprintf(stderr, "crl sweep: unknown method '%s' (%s, %s)\n", tok,
                    crl_method_list(CRL_METHOD_CONTINUAL, ", ", known, sizeof known),
                    crl_method_list(CRL_METHOD_REFERENCE, ", ", refs, sizeof refs));
            return 2;
        }
        /* The references are jobs of their own (--single-seeds). */
        if (!strcmp(tok, ref_method())) continue;
        for (int k = 0; k < n_m; k++)
            if (!strcmp(m[k], tok)) {
                fprintf(stderr, "crl sweep: method '%s' is listed twice\n", tok);
                return 2;
            }
        if (n_m == MAX_METHODS) {
            fprintf(stderr, "crl sweep: at most %d methods\n", MAX_METHODS);
            return 2;
        }
        m[n_m++] = tok;
    }
    static uint64_t seeds[MAX_SEEDS], sseeds[MAX_SEEDS];
    int n_s = parse_seeds(sw->seeds, seeds), n_ss = 0;
    if (n_s <= 0) {
        fprintf(stderr,
                "crl sweep: --seeds must be like 1-10 or 1,3,5 (distinct, at most %d), "
                "got '%s'\n",
                MAX_SEEDS, sw->seeds);
        return 2;
    }
    if (!sw->single_seeds) {
        memcpy(sseeds, seeds, sizeof seeds);
        n_ss = n_s;
    } else if (strcmp(sw->single_seeds, "none") != 0 &&
               (n_ss = parse_seeds(sw->single_seeds, sseeds)) <= 0) {
        fprintf(stderr, "crl sweep: --single-seeds must be like 1-10, 1,3,5 or none\n");
        return 2;
    }
    const crl_scenario *sc = sw->sc;
    int n_pos = 0, pos[256];
    for (int p = 0; p < sc->n_tasks && p < 256; p++) {
        int seen = 0;
        for (int q = 0; q < p; q++) seen |= !strcmp(sc->tasks[q], sc->tasks[p]);
        if (!seen) pos[n_pos++] = p;
    }
    sw->n_jobs = n_m * n_s + n_pos * n_ss;
    if (sw->n_jobs == 0) {
        fprintf(stderr, "crl sweep: no jobs (no method and --single-seeds none)\n");
        return 2;
    }
    sw->job = calloc((size_t)sw->n_jobs, sizeof *sw->job);
    sw->order = calloc((size_t)sw->n_jobs, sizeof *sw->order);
    if (!sw->job || !sw->order) return 1;
    int k = 0;
    for (int i = 0; i < n_m; i++)
        for (int s = 0; s < n_s; s++, k++) {
            job *j = &sw->job[k];
            snprintf(j->name, sizeof j->name, "%s-seed%llu", m[i],
                     (unsigned long long)seeds[s]);
            j->method = m[i];
            j->seed = seeds[s];
            j->pos = -1;
            j->steps = sw->steps_per_task * sc->n_tasks;
            j->cost = (double)j->steps * method_cost(m[i]);
        }
    for (int p = 0; p < n_pos; p++)
        for (int s = 0; s < n_ss; s++, k++) {
            job *j = &sw->job[k];
            snprintf(j->name, sizeof j->name, "single-pos%d-seed%llu", pos[p],
                     (unsigned long long)sseeds[s]);
            j->method = ref_method();
            j->seed = sseeds[s];
            j->pos = pos[p];
            j->steps = sw->steps_per_task;
            j->cost = (double)j->steps;
        }
    /* Longest first: with jobs of unequal length this keeps the last one from
     * starting when everything else is done. Ties keep list order. */
    for (int i = 0; i < sw->n_jobs; i++) sw->order[i] = i;
    for (int i = 1; i < sw->n_jobs; i++)
        for (int q = i;
             q > 0 && sw->job[sw->order[q]].cost > sw->job[sw->order[q - 1]].cost; q--) {
            int t = sw->order[q];
            sw->order[q] = sw->order[q - 1];
            sw->order[q - 1] = t;
        }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

static void path_of(const sweep *sw, const job *j, const char *kind, char *buf,
                    size_t cap) {
    snprintf(buf, cap, "%s/%s/%s.%s", sw->out, kind, j->name,
             strcmp(kind, "shards") ? "log" : "db");
}

static int mkdir_p(const char *dir) {
    char buf[PATH_CAP];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}

/* DIR/sweep.conf keeps the scenario and train flags of the sweep, so a
 * rerun with other flags does not mix two configurations in one study. */
static int check_conf(sweep *sw) {
    char path[PATH_CAP], want[8192];
    size_t off = (size_t)snprintf(want, sizeof want, "crl sweep 1\nscenario %s\nflags",
                                  sw->scenario);
    for (int i = 0; i < sw->n_pass && off < sizeof want; i++)
        off += (size_t)snprintf(want + off, sizeof want - off, " %s", sw->pass[i]);
    if (off < sizeof want) snprintf(want + off, sizeof want - off, "\n");
    snprintf(path, sizeof path, "%s/sweep.conf", sw->out);
    FILE *f = fopen(path, "r");
    if (f) {
        char have[8192];
        size_t n = fread(have, 1, sizeof have - 1, f);
        fclose(f);
        have[n] = 0;
        if (strcmp(have, want) != 0) {
            fprintf(stderr,
                    "crl sweep: %s was started with other settings (%s); a sweep "
                    "directory holds one configuration: use another --out, or the same "
                    "scenario and train flags\n",
                    sw->out, path);
            return 2;
        }
        return 0;
    }
    if (sw->dry_run) return 0;
    char tmp[PATH_CAP + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f || fputs(want, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "crl sweep: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* One sweep at a time per directory (best effort on network filesystems). */
static int take_lock(sweep *sw) {
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/sweep.lock", sw->out);
    sw->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (sw->lock_fd < 0) {
        fprintf(stderr, "crl sweep: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (flock(sw->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "crl sweep: another crl sweep is running in %s (%s is locked)\n",
                sw->out, path);
        return 1;
    }
    return 0;
}

static void unlink_db(const char *path) {
    char b[PATH_CAP + 8];
    unlink(path);
    snprintf(b, sizeof b, "%s-wal", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", path);
    unlink(b);
}

typedef struct {
    const job *j;
    const char *scenario;
    int64_t finished, latest, mismatch;
    char other[128];
} shard_scan;

static int scan_run(const crl_run_info *r, void *vctx) {
    shard_scan *s = vctx;
    if (strcmp(r->method, s->j->method) || strcmp(r->scenario, s->scenario) ||
        r->seed != s->j->seed) {
        s->mismatch = r->id;
        snprintf(s->other, sizeof s->other, "%s, %s, seed %llu", r->method, r->scenario,
                 (unsigned long long)r->seed);
        return 0;
    }
    if (!strcmp(r->status, "finished")) s->finished = r->id;
    if (r->id > s->latest) s->latest = r->id;
    return 0;
}

/* What a job's shard says: finished (skip), a run to resume, or nothing
 * useful (fresh). A shard that is not this job's is a failure to look at. */
static void inspect(sweep *sw, job *j) {
    char path[PATH_CAP];
    path_of(sw, j, "shards", path, sizeof path);
    j->resume = 0;
    j->state = J_WAIT;
    struct stat sb;
    if (stat(path, &sb) != 0) return;
    crl_err err = {0};
    crl_store *st = NULL;
    if (crl_store_open(path, 0, &st, &err)) {
        j->state = J_FAIL;
        snprintf(j->why, sizeof j->why, "%s", err.msg);
        return;
    }
    shard_scan s = {j, sw->sc->name, 0, 0, 0, ""};
    int rc = crl_store_runs(st, scan_run, &s, &err);
    int64_t ckpts = 0;
    if (!rc && !s.finished && !s.mismatch && s.latest) {
        /* Unreadable counts as none: the shard then starts over. */
        if (crl_store_checkpoint_count(st, s.latest, &ckpts, NULL)) ckpts = 0;
    }
    crl_store_close(st);
    if (rc) {
        j->state = J_FAIL;
        snprintf(j->why, sizeof j->why, "%s", err.msg);
    } else if (s.mismatch) {
        j->state = J_FAIL;
        snprintf(j->why, sizeof j->why, "%s holds run %lld (%s), not this job's run",
                 path, (long long)s.mismatch, s.other);
    } else if (s.finished) {
        j->state = J_SKIP;
    } else if (s.latest && ckpts > 0) {
        j->resume = s.latest;
    } else if (!sw->dry_run) {
        /* Stopped before its first checkpoint: nothing to keep. */
        unlink_db(path);
    }
}

/* ------------------------------------------------------------------------ */
/* Jobs as processes                                                         */

/* Does the passed-through flag a ("--key" or "--key=value") apply to a job
 * of method `method`? A method's own flags (--csp-*, --l2m-*, --ewc-coef,
 * ...) go only to that method's jobs: crl train refuses another method's
 * flag (crl_run_config_check_given), and a sweep of several methods takes
 * each method's flags once. */
static int flag_applies(const char *a, const char *scenario, const char *method) {
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char key[96];
    if (len >= sizeof key) return 1;
    memcpy(key, name, len);
    key[len] = 0;
    crl_run_config c;
    crl_run_config_default(&c);
    c.scenario = scenario;
    c.method = method;
    const char *keys[1] = {key};
    return crl_run_config_check_given(&c, keys, 1, 1, 0, NULL) == CRL_OK;
}

static pid_t job_spawn(const sweep *sw, job *j, const char *where, char *why,
                       size_t why_cap) {
    char shard[PATH_CAP], log[PATH_CAP], seed[32], pos[16], resume[32];
    path_of(sw, j, "shards", shard, sizeof shard);
    path_of(sw, j, "logs", log, sizeof log);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->seed);
    snprintf(pos, sizeof pos, "%d", j->pos);
    snprintf(resume, sizeof resume, "%lld", (long long)j->resume);
    const char **argv = calloc((size_t)sw->n_pass + 16, sizeof *argv);
    if (!argv) {
        snprintf(why, why_cap, "out of memory");
        return -1;
    }
    int n = 0;
    argv[n++] = sw->exe;
    argv[n++] = "train";
    if (j->resume) {
        argv[n++] = "--resume";
        argv[n++] = resume;
        argv[n++] = "--db";
        argv[n++] = shard;
    } else {
        argv[n++] = "--scenario";
        argv[n++] = sw->scenario;
        argv[n++] = "--method";
        argv[n++] = j->method;
        argv[n++] = "--seed";
        argv[n++] = seed;
        if (j->pos >= 0) {
            argv[n++] = "--single-task";
            argv[n++] = pos;
        }
        argv[n++] = "--db";
        argv[n++] = shard;
        for (int i = 0; i < sw->n_pass; i++) {
            const char *a = sw->pass[i];
            if (strncmp(a, "--", 2) == 0 && !flag_applies(a, sw->scenario, j->method)) {
                /* Skip the flag and its value (the words up to the next flag). */
                while (i + 1 < sw->n_pass && strncmp(sw->pass[i + 1], "--", 2) != 0) i++;
                continue;
            }
            argv[n++] = a;
        }
    }
    argv[n] = NULL;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(why, why_cap, "cannot open %s: %s", log, strerror(errno));
        free(argv);
        return -1;
    }
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    dprintf(fd, "== crl sweep %s: job %s on %s%s, worker pid %d: crl", stamp, j->name,
            host, where, (int)getpid());
    for (int i = 1; i < n; i++) dprintf(fd, " %s", argv[i]);
    dprintf(fd, "\n");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* The job's own process group: a Ctrl-C at the terminal reaches the
         * sweep, which asks each job once to checkpoint and stop. */
        setpgid(0, 0);
#ifdef __linux__
        /* A worker that dies takes its job down cleanly (crl train
         * checkpoints on SIGTERM); the job is then resumable. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        if (getppid() != parent) _exit(126);
        /* The job's pid in its log (only async-signal-safe calls here: an
         * MPI rank has threads). */
        char line[48] = "== job pid ", digits[24];
        int nd = 0, len = 11;
        for (long v = (long)getpid(); v > 0 && nd < 20; v /= 10)
            digits[nd++] = (char)('0' + v % 10);
        while (nd > 0) line[len++] = digits[--nd];
        line[len++] = '\n';
        if (write(fd, line, (size_t)len) < 0) _exit(126);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(sw->exe, (char *const *)argv);
        static const char msg[] = "crl sweep: cannot run the crl executable\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(127);
        _exit(127);
    }
    int e = errno;
    close(fd);
    free(argv);
    if (pid < 0) snprintf(why, why_cap, "fork: %s", strerror(e));
    return pid;
}

/* The last "step A/B" of a job's log (crl train's progress line). */
static int64_t log_step(const sweep *sw, const job *j) {
    char path[PATH_CAP], buf[2048];
    path_of(sw, j, "logs", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int64_t step = -1;
    for (char *p = buf; (p = strstr(p, "| step ")) != NULL; p += 7) {
        long long a, b;
        if (sscanf(p + 7, "%lld/%lld", &a, &b) == 2) step = a;
    }
    return step;
}

static int status_code(int st) {
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

static void describe_exit(const sweep *sw, job *j) {
    char log[PATH_CAP];
    path_of(sw, j, "logs", log, sizeof log);
    if (j->code > 128)
        snprintf(j->why, sizeof j->why, "killed by signal %d; see %s", j->code - 128,
                 log);
    else if (j->code == 130)
        snprintf(j->why, sizeof j->why, "interrupted; see %s", log);
    else
        snprintf(j->why, sizeof j->why, "crl train exited with %d; see %s", j->code, log);
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                  */

static void status_line(sweep *sw, int final) {
    if (sw->quiet) return;
    double now = crl_now();
    if (!final && now - sw->last_line < (sw->tty ? 0.5 : 30.0)) return;
    sw->last_line = now;
    int c[J__N] = {0};
    double work = 0, dropped = 0;
    for (int i = 0; i < sw->n_jobs; i++) {
        const job *j = &sw->job[i];
        c[j->state]++;
        if (j->state == J_DONE) work += j->cost;
        /* Jobs that failed here will not be done this time. */
        if ((j->state == J_FAIL || j->state == J_LOST || j->state == J_INT) && j->t0 > 0)
            dropped += j->cost;
        if (j->state == J_RUN && j->step > 0 && j->steps > 0)
            work += j->cost * (double)(j->step < j->steps ? j->step : j->steps) /
                    (double)j->steps;
    }
    double total = sw->work_total - dropped;
    double el = now - sw->t_start, left = total - work;
    double eta = work > 0 && el > 1 ? left / (work / el) : NAN;
    char e[32];
    cli_fmt_eta(eta, e, sizeof e);
    fprintf(stderr,
            "%ssweep %s: %d/%d done, %d running, %d failed, %d waiting | %.0f%% | ETA "
            "%s%s",
            sw->tty ? "\r\033[K" : "", sw->scenario, c[J_DONE] + c[J_SKIP], sw->n_jobs,
            c[J_RUN], c[J_FAIL] + c[J_LOST], c[J_WAIT],
            total > 0 ? 100.0 * (work < total ? work : total) / total : 100.0, e,
            sw->tty && !final ? "" : "\n");
    fflush(stderr);
}

static void event(sweep *sw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(sweep *sw, const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%scrl sweep: %s\n", sw->tty && !sw->quiet ? "\r\033[K" : "", buf);
    sw->last_line = 0;
    status_line(sw, 0);
}

static void job_finished(sweep *sw, job *j, int code, const char *where) {
    j->code = code;
    double wall = crl_now() - j->t0;
    if (code == 0) {
        j->state = J_DONE;
        j->step = j->steps;
        event(sw, "%s finished in %.1f s%s", j->name, wall, where);
    } else if (code == 130) {
        j->state = J_INT;
        event(sw, "%s interrupted after %.1f s%s (checkpoint written)", j->name, wall,
              where);
    } else {
        j->state = J_FAIL;
        describe_exit(sw, j);
        event(sw, "%s FAILED%s: %s", j->name, where, j->why);
    }
}

/* ------------------------------------------------------------------------ */
/* Local                                                                     */

static void stop_children(sweep *sw, int sig) {
    for (int i = 0; i < sw->n_jobs; i++)
        if (sw->job[i].state == J_RUN && sw->job[i].pid > 0) kill(sw->job[i].pid, sig);
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

static void run_local(sweep *sw) {
    int next = 0, running = 0, signalled = 0;
    double last_poll = 0;
    for (;;) {
        while (!g_stop && running < sw->jobs && next < sw->n_jobs) {
            job *j = &sw->job[sw->order[next++]];
            if (j->state != J_WAIT) continue;
            char why[WHY_CAP];
            j->t0 = crl_now();
            j->pid = job_spawn(sw, j, "", why, sizeof why);
            if (j->pid < 0) {
                j->state = J_FAIL;
                snprintf(j->why, sizeof j->why, "%s", why);
                event(sw, "%s FAILED to start: %s", j->name, why);
                continue;
            }
            j->state = J_RUN;
            running++;
            if (j->resume)
                event(sw, "%s resumes run %lld", j->name, (long long)j->resume);
        }
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int i = 0; i < sw->n_jobs; i++) {
                job *j = &sw->job[i];
                if (j->state != J_RUN || j->pid != pid) continue;
                running--;
                j->pid = 0;
                job_finished(sw, j, status_code(st), "");
            }
        }
        if (g_stop && signalled < (int)g_stop && signalled < 2) {
            /* First signal: each job checkpoints and stops; second: kill. */
            stop_children(sw, signalled == 0 ? SIGTERM : SIGKILL);
            signalled++;
        }
        if (running == 0 && (g_stop || next >= sw->n_jobs)) break;
        double now = crl_now();
        if (now - last_poll >= 1.0) {
            last_poll = now;
            for (int i = 0; i < sw->n_jobs; i++)
                if (sw->job[i].state == J_RUN) {
                    int64_t s = log_step(sw, &sw->job[i]);
                    if (s >= 0) sw->job[i].step = s;
                }
        }
        status_line(sw, 0);
        nap(0.1);
    }
}

/* ------------------------------------------------------------------------ */
/* MPI                                                                       */

/* Launched by an MPI starter (the environment its ranks get). */
static int under_mpi_launcher(long *size) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                          "MPI_LOCALNRANKS"};
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *size = strtol(v, NULL, 10);
            return 1;
        }
    }
    if (getenv("PMIX_RANK")) {
        *size = 0;
        return 1;
    }
    return 0;
}

#ifdef CRL_HAVE_MPI
enum { T_REQ = 1, T_JOB, T_STOP, T_DONE, T_PROG, T_BYE, T_HELLO, T_EXIT };

static void mpi_send(const int64_t *v, int n, int to, int tag) {
    MPI_Send((void *)v, n, MPI_INT64_T, to, tag, MPI_COMM_WORLD);
}

/* A worker: asks for a job whenever it has a free slot, runs it as a child
 * process, reports its end, and says it is alive every second. */
static void mpi_worker(sweep *sw, int rank) {
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    MPI_Send(host, (int)sizeof host, MPI_CHAR, 0, T_HELLO, MPI_COMM_WORLD);
    int running = 0, asked = 0, stopped = 0, signalled = 0;
    double last_beat = 0;
    char where[32];
    snprintf(where, sizeof where, " (rank %d)", rank);
    for (;;) {
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            for (int i = 0; i < sw->n_jobs; i++) {
                job *j = &sw->job[i];
                if (j->state != J_RUN || j->pid != pid) continue;
                j->state = J_DONE;
                j->pid = 0;
                running--;
                int64_t m[2] = {i, status_code(st)};
                mpi_send(m, 2, 0, T_DONE);
            }
        if (g_stop && signalled < (int)g_stop && signalled < 2) {
            stop_children(sw, signalled == 0 ? SIGTERM : SIGKILL);
            signalled++;
            stopped = 1;
        }
        if (!stopped && !asked && running < sw->jobs) {
            int64_t m[1] = {running};
            mpi_send(m, 1, 0, T_REQ);
            asked = 1;
        }
        int flag = 0;
        MPI_Status ms;
        while (MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ms) == MPI_SUCCESS &&
               flag) {
            int64_t m[2] = {0, 0};
            MPI_Recv(m, 2, MPI_INT64_T, 0, ms.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (ms.MPI_TAG == T_STOP) {
                stopped = 1;
                asked = 0;
            } else if (ms.MPI_TAG == T_JOB && m[0] >= 0 && m[0] < sw->n_jobs) {
                asked = 0;
                job *j = &sw->job[m[0]];
                j->resume = m[1];
                char why[WHY_CAP];
                j->t0 = crl_now();
                j->pid = g_stop ? -1 : job_spawn(sw, j, where, why, sizeof why);
                if (j->pid < 0) {
                    /* Stopping: the job did not start (a rerun runs it). */
                    int64_t d[2] = {m[0], g_stop ? 130 : 127};
                    mpi_send(d, 2, 0, T_DONE);
                } else {
                    j->state = J_RUN;
                    running++;
                }
            }
        }
        if (stopped && running == 0) break;
        double now = crl_now();
        if (now - last_beat >= 1.0) {
            last_beat = now;
            int sent = 0;
            for (int i = 0; i < sw->n_jobs; i++)
                if (sw->job[i].state == J_RUN) {
                    int64_t m[2] = {i, log_step(sw, &sw->job[i])};
                    mpi_send(m, 2, 0, T_PROG);
                    sent = 1;
                }
            if (!sent) {
                int64_t m[2] = {-1, -1};
                mpi_send(m, 2, 0, T_PROG);
            }
        }
        nap(0.05);
    }
    int64_t m[1] = {0};
    mpi_send(m, 1, 0, T_BYE);
    /* Rank 0's verdict: finalize together, or (a worker was lost, and
     * MPI_Finalize would wait for it forever) leave without. */
    for (;;) {
        int flag = 0;
        MPI_Status ms;
        if (MPI_Iprobe(0, T_EXIT, MPI_COMM_WORLD, &flag, &ms) == MPI_SUCCESS && flag) {
            MPI_Recv(m, 1, MPI_INT64_T, 0, T_EXIT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (m[0]) {
                fflush(NULL);
                _exit((int)m[0] - 1);
            }
            return;
        }
        nap(0.05);
    }
}

/* Rank 0: hands out jobs in order, longest first, as workers ask. */
static void mpi_coordinator(sweep *sw, int size) {
    double *heard = calloc((size_t)size, sizeof *heard);
    char(*host)[64] = calloc((size_t)size, sizeof *host);
    int *gone = calloc((size_t)size, sizeof *gone);
    if (!heard || !host || !gone) {
        fprintf(stderr, "crl sweep: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int next = 0, n_gone = 0, signalled = 0;
    double now = crl_now();
    for (int r = 1; r < size; r++) {
        heard[r] = now;
        snprintf(host[r], sizeof host[r], "?");
    }
    while (n_gone < size - 1) {
        int flag = 0;
        MPI_Status ms;
        while (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ms) ==
                   MPI_SUCCESS &&
               flag) {
            int r = ms.MPI_SOURCE;
            heard[r] = crl_now();
            if (ms.MPI_TAG == T_HELLO) {
                MPI_Recv(host[r], (int)sizeof host[r], MPI_CHAR, r, T_HELLO,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                host[r][sizeof host[r] - 1] = 0;
                continue;
            }
            int64_t m[2] = {-1, -1};
            MPI_Recv(m, 2, MPI_INT64_T, r, ms.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (gone[r] && ms.MPI_TAG == T_REQ) {
                /* Declared lost, yet alive: it gets no more jobs. */
                mpi_send(m, 1, r, T_STOP);
                continue;
            }
            if (gone[r] && ms.MPI_TAG != T_DONE) continue;
            char where[96];
            snprintf(where, sizeof where, " on rank %d (%s)", r, host[r]);
            switch (ms.MPI_TAG) {
            case T_REQ: {
                while (next < sw->n_jobs && sw->job[sw->order[next]].state != J_WAIT)
                    next++;
                if (g_stop || next >= sw->n_jobs) {
                    mpi_send(m, 1, r, T_STOP);
                    break;
                }
                int i = sw->order[next++];
                job *j = &sw->job[i];
                j->state = J_RUN;
                j->rank = r;
                j->t0 = crl_now();
                int64_t out[2] = {i, j->resume};
                mpi_send(out, 2, r, T_JOB);
                if (j->resume)
                    event(sw, "%s resumes run %lld%s", j->name, (long long)j->resume,
                          where);
                break;
            }
            case T_DONE:
                if (m[0] >= 0 && m[0] < sw->n_jobs &&
                    (sw->job[m[0]].state == J_RUN || sw->job[m[0]].state == J_LOST))
                    job_finished(sw, &sw->job[m[0]], (int)m[1], where);
                break;
            case T_PROG:
                if (m[0] >= 0 && m[0] < sw->n_jobs && m[1] >= 0)
                    sw->job[m[0]].step = m[1];
                break;
            case T_BYE:
                gone[r] = 1;
                n_gone++;
                break;
            default:
                break;
            }
        }
        now = crl_now();
        for (int r = 1; r < size; r++) {
            if (gone[r] || now - heard[r] < sw->worker_timeout) continue;
            gone[r] = 2;
            n_gone++;
            sw->lost_workers++;
            int lost = 0;
            for (int i = 0; i < sw->n_jobs; i++) {
                job *j = &sw->job[i];
                if (j->state != J_RUN || j->rank != r) continue;
                j->state = J_LOST;
                lost++;
                snprintf(j->why, sizeof j->why,
                         "worker rank %d on %s went silent for %.0f s while running it",
                         r, host[r], now - heard[r]);
                event(sw, "%s LOST: %s; rerun the sweep to resume it", j->name, j->why);
            }
            if (!lost)
                event(sw, "worker rank %d on %s went silent for %.0f s (it had no job)",
                      r, host[r], now - heard[r]);
        }
        if (g_stop && !signalled) {
            signalled = 1;
            event(sw, "stopping: no more jobs are handed out; running jobs finish");
        }
        status_line(sw, 0);
        nap(0.05);
    }
    int bad = 0;
    for (int i = 0; i < sw->n_jobs; i++)
        bad |= sw->job[i].state == J_FAIL || sw->job[i].state == J_LOST;
    for (int r = 1; r < size; r++)
        if (gone[r] == 1) {
            /* 0: finalize; 1 + code: leave with that exit code (every rank
             * leaving with it makes mpirun's own code non-zero). */
            int64_t m[1] = {sw->lost_workers > 0 ? 1 + bad : 0};
            mpi_send(m, 1, r, T_EXIT);
        }
    free(heard);
    free(host);
    free(gone);
}
#endif

const char *cli_mpi_version(void) {
#ifdef CRL_HAVE_MPI
    static char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) return "yes";
    v[strcspn(v, ",\n")] = 0; /* the first clause: "Open MPI v4.1.4" */
    return v;
#else
    return NULL;
#endif
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

/* crl train parses the flags we pass through (its --help stops it before
 * anything is created), so a typo fails the sweep, not every job. */
static int check_train_flags(const sweep *sw) {
    const char **argv = calloc((size_t)sw->n_pass + 8, sizeof *argv);
    if (!argv) return 1;
    int n = 0;
    argv[n++] = sw->exe;
    argv[n++] = "train";
    argv[n++] = "--scenario";
    argv[n++] = sw->scenario;
    for (int i = 0; i < sw->n_pass; i++) argv[n++] = sw->pass[i];
    argv[n++] = "--help";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execv(sw->exe, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return 1;
    return status_code(st) ? 2 : 0;
}

static int prepare(sweep *sw) {
    int rc = check_train_flags(sw);
    if (rc) {
        if (rc == 2)
            fprintf(stderr, "crl sweep: the flags for crl train are not valid (above)\n");
        return rc;
    }
    if (!sw->dry_run) {
        char d[PATH_CAP];
        const char *sub[] = {"", "/shards", "/logs"};
        for (int i = 0; i < 3; i++) {
            snprintf(d, sizeof d, "%s%s", sw->out, sub[i]);
            if (mkdir_p(d)) {
                fprintf(stderr, "crl sweep: cannot create %s: %s\n", d, strerror(errno));
                return 1;
            }
        }
        if ((rc = take_lock(sw))) return rc;
    }
    if ((rc = check_conf(sw))) return rc;
    int c[J__N] = {0}, resumes = 0;
    for (int i = 0; i < sw->n_jobs; i++) {
        inspect(sw, &sw->job[i]);
        c[sw->job[i].state]++;
        resumes += sw->job[i].resume != 0;
        if (sw->job[i].state != J_SKIP && sw->job[i].state != J_FAIL)
            sw->work_total += sw->job[i].cost;
        if (sw->job[i].state == J_FAIL)
            fprintf(stderr, "crl sweep: %s cannot run: %s\n", sw->job[i].name,
                    sw->job[i].why);
    }
    if (!sw->quiet || sw->dry_run)
        fprintf(stderr,
                "crl sweep: %s, %d jobs (%lld env steps per task): %d finished already, "
                "%d to resume, %d new%s\n",
                sw->sc->name, sw->n_jobs, (long long)sw->steps_per_task, c[J_SKIP],
                resumes, c[J_WAIT] - resumes,
                c[J_FAIL] ? ", some that cannot run (above)" : "");
    if (sw->dry_run) {
        for (int k = 0; k < sw->n_jobs; k++) {
            const job *j = &sw->job[sw->order[k]];
            char shard[PATH_CAP];
            path_of(sw, j, "shards", shard, sizeof shard);
            printf("%-28s %-10s crl train ", j->name,
                   j->state == J_SKIP   ? "finished"
                   : j->state == J_FAIL ? "cannot"
                   : j->resume          ? "resume"
                                        : "new");
            if (j->resume)
                printf("--resume %lld --db %s\n", (long long)j->resume, shard);
            else {
                printf("--scenario %s --method %s --seed %llu", sw->scenario, j->method,
                       (unsigned long long)j->seed);
                if (j->pos >= 0) printf(" --single-task %d", j->pos);
                printf(" --db %s", shard);
                for (int i = 0; i < sw->n_pass; i++) printf(" %s", sw->pass[i]);
                printf("\n");
            }
        }
    }
    return 0;
}

static int summary(sweep *sw) {
    int c[J__N] = {0};
    for (int i = 0; i < sw->n_jobs; i++) c[sw->job[i].state]++;
    if (sw->tty) status_line(sw, 1);
    for (int i = 0; i < sw->n_jobs; i++) {
        const job *j = &sw->job[i];
        if (j->state == J_FAIL || j->state == J_LOST)
            fprintf(stderr, "crl sweep: %s %s: %s\n",
                    j->state == J_LOST ? "lost" : "failed", j->name, j->why);
        else if (j->state == J_RUN || j->state == J_INT || (j->state == J_WAIT && g_stop))
            fprintf(stderr, "crl sweep: not finished: %s%s\n", j->name,
                    j->state == J_INT ? " (interrupted)" : "");
    }
    int bad = c[J_FAIL] + c[J_LOST];
    int unfinished = c[J_WAIT] + c[J_RUN] + c[J_INT];
    /* For scripts (mpirun --enable-recovery does not pass our exit code on
     * once a rank died): "ok" or "incomplete", then the jobs left. */
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/sweep.status", sw->out);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s finished %d failed %d lost %d unfinished %d\n",
                bad || unfinished ? "incomplete" : "ok", c[J_DONE] + c[J_SKIP], c[J_FAIL],
                c[J_LOST], unfinished);
        for (int i = 0; i < sw->n_jobs; i++) {
            const job *j = &sw->job[i];
            if (j->state == J_FAIL || j->state == J_LOST || j->state == J_WAIT ||
                j->state == J_RUN || j->state == J_INT)
                fprintf(f, "%s %s\n",
                        j->state == J_FAIL   ? "failed"
                        : j->state == J_LOST ? "lost"
                                             : "unfinished",
                        j->name);
        }
        if (fclose(f) != 0) fprintf(stderr, "crl sweep: cannot write %s\n", path);
    }
    if (bad || unfinished)
        fprintf(stderr,
                "crl sweep: %d of %d jobs finished, %d failed, %d lost, %d unfinished; "
                "rerun the same command to resume them\n",
                c[J_DONE] + c[J_SKIP], sw->n_jobs, c[J_FAIL], c[J_LOST], unfinished);
    else
        fprintf(stderr,
                "crl sweep: all %d jobs finished; merge them with: crl merge "
                "%s/shards/*.db -o %s/study.db\n",
                sw->n_jobs, sw->out, sw->out);
    if (g_stop && !bad) return 130;
    return bad || unfinished ? 1 : 0;
}

int cmd_sweep(int argc, char **argv) {
    sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.lock_fd = -1;
    sw.worker_timeout = 120;
    crl_continual_config cc;
    crl_continual_config_default(&cc);
    sw.steps_per_task = cc.steps_per_task;
    int rc = parse_args(&sw, argc, argv);
    if (rc == 0) rc = build_jobs(&sw);
    if (rc) {
        free(sw.pass);
        free(sw.job);
        free(sw.order);
        return rc < 0 ? 0 : rc;
    }
    sw.tty = isatty(2);
    /* Every rank runs its jobs with the crl it is itself. */
    ssize_t n_exe = readlink("/proc/self/exe", sw.exe, sizeof sw.exe - 1);
    if (n_exe <= 0) {
        fprintf(stderr, "crl sweep: cannot find the crl executable (/proc/self/exe)\n");
        free(sw.pass);
        free(sw.job);
        free(sw.order);
        return 1;
    }
    sw.exe[n_exe] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;

    long mpi_size = 0;
    int mpi = under_mpi_launcher(&mpi_size) && !sw.dry_run;
#ifndef CRL_HAVE_MPI
    if (mpi && mpi_size != 1) {
        fprintf(stderr, "crl sweep: started by an MPI launcher, but this crl was built "
                        "without MPI (every rank would run the whole sweep); install "
                        "libopenmpi-dev and rebuild, or run crl sweep without mpirun\n");
        free(sw.pass);
        free(sw.job);
        free(sw.order);
        return 2;
    }
    mpi = 0;
#endif
    int rank = 0, size = 1;
#ifdef CRL_HAVE_MPI
    if (mpi) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
#endif
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!sw.jobs) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        sw.jobs = mpi && size > 1 ? 1 : cores >= 2 ? (int)(cores / 2) : 1;
    }
    if (rank == 0) rc = prepare(&sw);
#ifdef CRL_HAVE_MPI
    if (mpi) {
        /* Workers wait here for rank 0's checks (a blocking broadcast spins,
         * but only for the seconds the checks take). */
        int go = rc == 0 && !sw.dry_run;
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (go && size > 1) {
            sw.t_start = crl_now();
            if (rank == 0) {
                fprintf(stderr, "crl sweep: %d MPI workers, %d job%s at a time each\n",
                        size - 1, sw.jobs, sw.jobs == 1 ? "" : "s");
                mpi_coordinator(&sw, size);
            } else {
                mpi_worker(&sw, rank);
            }
        } else if (go) {
            sw.t_start = crl_now();
            run_local(&sw);
        }
        if (rank == 0 && go) rc = summary(&sw);
        if (rank == 0 && sw.lost_workers) {
            /* MPI_Finalize would wait for the lost ranks too: every rank
             * leaves without it (the workers were told so), which ends the
             * MPI job with a non-zero code (MPI_Abort's code would be lost
             * under mpirun --enable-recovery). Everything is reported and
             * no job is running. */
            fprintf(stderr, "crl sweep: ending the MPI job (%d worker%s lost)\n",
                    sw.lost_workers, sw.lost_workers == 1 ? "" : "s");
            fflush(stderr);
            fflush(stdout);
            if (sw.lock_fd >= 0) close(sw.lock_fd);
            _exit(rc ? rc : 1);
        }
        MPI_Finalize();
        if (rank != 0) rc = 0;
        goto done;
    }
#endif
    (void)size;
    if (rc == 0 && !sw.dry_run) {
        sw.t_start = crl_now();
        if (!sw.quiet)
            fprintf(stderr, "crl sweep: %d job%s at a time\n", sw.jobs,
                    sw.jobs == 1 ? "" : "s");
        run_local(&sw);
        rc = summary(&sw);
    }
#ifdef CRL_HAVE_MPI
done:
#endif
    if (sw.lock_fd >= 0) close(sw.lock_fd);
    free(sw.pass);
    free(sw.job);
    free(sw.order);
    return rc;
}
