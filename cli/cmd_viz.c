/* crl render / view / plot: pictures of tasks, live policies, and runs. */
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/export.h"
#include "crl/policy.h"
#include "crl/plot.h"
#include "crl/viz.h"

/* ---- camera flags (render, view) ------------------------------------------ */

typedef struct {
    int fixed;          /* -1: the task's framing camera */
    const char *lookat; /* "x,y,z" */
    double distance, azimuth, elevation;
} cam_flags;

#define CAM_FLAGS(cf)                                                                     \
    {"camera",                                                                            \
     OPT_INT,                                                                             \
     &(cf).fixed,                                                                         \
     -1,                                                                                  \
     64,                                                                                  \
     "fixed camera index of the model (0: the models' own); -1: the task's framing",      \
     0},                                                                                  \
        {"lookat", OPT_STR, &(cf).lookat,                                                 \
         0,        0,       "free camera looking at X,Y,Z (world coordinates)",           \
         0},                                                                              \
        {"distance", OPT_DOUBLE, &(cf).distance,                                          \
         0,          1e4,        "free camera distance (0: fit the model)",               \
         0},                                                                              \
        {"azimuth", OPT_DOUBLE, &(cf).azimuth, -360, 360, "free camera azimuth, degrees", \
         0},                                                                              \
    {                                                                                     \
        "elevation", OPT_DOUBLE, &(cf).elevation, -90, 90,                                \
            "free camera elevation, degrees (negative: from above)", 0                    \
    }

static void cam_flags_default(cam_flags *cf) {
    cf->fixed = -1;
    cf->lookat = NULL;
    cf->distance = 0;
    cf->azimuth = 90;
    cf->elevation = -30;
}

/* The camera the flags ask for: a free camera as soon as any free-camera flag
 * is on the command line, else the fixed one of --camera, else the task's own
 * framing (crl_camera_for_task). -1 if --lookat is malformed. */
static int cam_from_flags(const cam_flags *cf, int argc, char **argv,
                          const crl_env_spec *spec, crl_camera *cam) {
    const mjModel *m = crl_env_model(spec);
    memset(cam, 0, sizeof *cam);
    int free_cam = 0;
    for (int i = 1; i < argc; i++)
        free_cam |=
            !strncmp(argv[i], "--lookat", 8) || !strncmp(argv[i], "--distance", 10) ||
            !strncmp(argv[i], "--azimuth", 9) || !strncmp(argv[i], "--elevation", 11);
    if (!free_cam && cf->fixed < 0) {
        crl_camera_for_task(spec, cam);
        return 0;
    }
    if (!free_cam) {
        cam->mode = CRL_CAMERA_FIXED;
        cam->id = cf->fixed;
        return 0;
    }
    cam->mode = CRL_CAMERA_FREE;
    cam->azimuth = cf->azimuth;
    cam->elevation = cf->elevation;
    cam->distance = cf->distance;
    if (cf->lookat) {
        char tail;
        if (sscanf(cf->lookat, "%lf,%lf,%lf%c", &cam->lookat[0], &cam->lookat[1],
                   &cam->lookat[2], &tail) != 3)
            return -1;
        /* A lookat point needs a distance: default to the model's size. */
        if (cam->distance <= 0) cam->distance = 1.5 * m->stat.extent;
    }
    return 0;
}

/* ---- crl render ----------------------------------------------------------- */

int cmd_render(int argc, char **argv) {
    const char *task = NULL, *out = NULL;
    int width = 640, height = 480, steps = 0, random = 0, overlay = 0;
    uint64_t seed = 0;
    cam_flags cf;
    cam_flags_default(&cf);
    const opt_def defs[] = {
        {"task", OPT_STR, &task, 0, 0, "task name (see 'crl tasks')", 0},
        {"steps", OPT_INT, &steps, 0, 1e6,
         "first play N env steps of the scripted policy (random actions with --random or "
         "when the task has none)",
         0},
        {"random", OPT_FLAG, &random, 0, 0, "with --steps: uniform random actions", 0},
        {"overlay", OPT_FLAG, &overlay, 0, 0, "draw task, step, reward and success", 0},
        {"output", OPT_STR, &out, 0, 0, "output PNG file", 0},
        {"width", OPT_INT, &width, 16, 4096, "image width in pixels", 0},
        {"height", OPT_INT, &height, 16, 4096, "image height in pixels", 0},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "reset seed of the initial scene", 0},
        CAM_FLAGS(cf),
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse(
        "render", defs, nd, argc, argv,
        "--task NAME -o FILE.png [--width W] [--height H] [--seed S] [--steps N] "
        "[--overlay] [camera flags]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!task || !out) {
        fprintf(stderr, "crl render: --task NAME and -o FILE.png are required\n");
        return 2;
    }
    const crl_env_entry *list;
    int n = crl_env_list(&list), known = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, task)) known = i;
    if (known < 0) {
        fprintf(stderr, "crl render: unknown task '%s' (see 'crl tasks')\n", task);
        return 2;
    }
    if (!list[known].has_scripted) random = 1;
    crl_err err = {0};
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    crl_renderer *r = NULL;
    float *obs = NULL, *act = NULL;
    unsigned char *rgb = NULL;
    if ((rc = crl_env_spec_create(task, &spec, &err)) ||
        (rc = crl_env_create(spec, &env, &err)))
        goto out;
    obs = calloc((size_t)crl_env_obs_dim(spec), sizeof *obs);
    act = calloc((size_t)crl_env_act_dim(spec), sizeof *act);
    rgb = malloc((size_t)width * height * 3);
    if (!obs || !act || !rgb) {
        rc = crl_errf(&err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    crl_env_reset(env, seed, obs);
    crl_render_overlay ov;
    crl_render_overlay_init(&ov);
    ov.task = task;
    ov.step = 0;
    int show_success =
        strcmp(list[known].group, "locomotion") && strcmp(list[known].group, "control");
    ov.success = show_success ? 0 : -1;
    crl_rng rng;
    crl_rng_seed(&rng, seed);
    for (int t = 0; t < steps; t++) {
        if (random)
            for (int k = 0; k < crl_env_act_dim(spec); k++)
                act[k] = (float)crl_rng_range(&rng, -1, 1);
        else
            crl_env_scripted_action(env, act);
        crl_step_info info = {0};
        crl_env_step(env, act, obs, &info);
        ov.step = crl_env_steps_taken(env);
        ov.reward = info.reward;
        ov.ret += info.reward;
        if (show_success) ov.success |= info.success != 0;
        if (info.terminal || info.truncated) break;
    }
    if ((rc = crl_render_open(&r, crl_env_model(spec), width, height, &err))) goto out;
    crl_camera cam;
    if (cam_from_flags(&cf, argc, argv, spec, &cam)) {
        rc = crl_errf(&err, CRL_EINVAL, "--lookat expects X,Y,Z, got '%s'", cf.lookat);
        goto out;
    }
    if ((rc = crl_render_set_camera(r, &cam, &err))) goto out;
    if ((rc = crl_render_frame(r, crl_env_data(env), overlay ? &ov : NULL, rgb, &err)) ||
        (rc = crl_png_write(out, rgb, width, height, &err)))
        goto out;
    printf("%s: %dx%d\n", out, width, height);
out:
    if (rc) fprintf(stderr, "crl render: %s\n", err.msg);
    crl_render_close(r);
    free(rgb);
    free(obs);
    free(act);
    crl_env_free(env);
    crl_env_spec_free(spec);
    return cli_exit_code(rc);
}

/* ---- crl view ------------------------------------------------------------- */

typedef enum { POLICY_SCRIPTED, POLICY_RANDOM, POLICY_RUN } policy_kind;

/* A live episode source for the viewer: an env and a policy. */
typedef struct {
    crl_env_spec *spec;
    crl_env *env;
    float *obs, *act;
    int ad;
    policy_kind kind;
    crl_policy *pol; /* POLICY_RUN */
    int pol_task, deterministic;
    crl_rng rng;
    uint64_t seed;
    int episode, show_success, succeeded;
    double ret;
    const char *task;
    crl_err err;
} view_src;

static int view_reset(void *ctx, struct mjData_ **d) {
    view_src *v = ctx;
    crl_env_reset(v->env, v->seed + (uint64_t)v->episode, v->obs);
    if (v->pol) crl_policy_episode_start(v->pol);
    v->ret = 0;
    v->succeeded = 0;
    v->episode++;
    *d = crl_env_data(v->env);
    return CRL_OK;
}

static int view_step(void *ctx, struct mjData_ **d, crl_render_overlay *ov) {
    view_src *v = ctx;
    if (v->kind == POLICY_SCRIPTED) {
        int rc = crl_env_scripted_action(v->env, v->act);
        if (rc) return crl_errf(&v->err, rc, "task %s has no scripted policy", v->task);
    } else if (v->kind == POLICY_RANDOM) {
        for (int k = 0; k < v->ad; k++) v->act[k] = (float)crl_rng_range(&v->rng, -1, 1);
    } else {
        int rc = crl_policy_act(
            v->pol, v->pol_task, v->obs, v->act,
            v->deterministic ? CRL_POLICY_DETERMINISTIC : CRL_POLICY_SAMPLE, &v->rng);
        if (rc) return crl_errf(&v->err, rc, "policy: %s", crl_policy_error(v->pol));
    }
    crl_step_info info = {0};
    crl_env_step(v->env, v->act, v->obs, &info);
    v->ret += info.reward;
    v->succeeded |= info.success != 0;
    *d = crl_env_data(v->env);
    crl_render_overlay_init(ov);
    ov->task = v->task;
    ov->episode = v->episode - 1;
    ov->step = crl_env_steps_taken(v->env);
    ov->reward = info.reward;
    ov->ret = v->ret;
    if (v->show_success) ov->success = v->succeeded;
    return !(info.terminal || info.truncated);
}

/* The policy of a run's latest checkpoint through the embedding API (the
 * same export `crl export` writes, so every method it can export can be
 * watched): scenario position pos, or every task when pos < 0. The file is
 * written to a temporary path and removed once loaded. */
static int load_run_policy(const char *db, int64_t run, int pos, crl_policy **out,
                           crl_err *err) {
    char path[4096], ebuf[512] = "";
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/crl-view-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return crl_errf(err, CRL_EIO, "cannot make a temporary file in %s", path);
    close(fd);
    int rc = crl_policy_export(db, run, pos, path, ebuf, sizeof ebuf);
    if (!rc) rc = crl_policy_load(path, out, ebuf, sizeof ebuf);
    unlink(path);
    if (rc) return crl_errf(err, rc, "%s", ebuf);
    return CRL_OK;
}

int cmd_view(int argc, char **argv) {
    const char *task = NULL, *policy = NULL, *db = NULL;
    int episodes = 0, scripted = 0, random = 0, stochastic = 0, paused = 0, width = 1024,
        height = 768;
    int64_t max_steps = 0;
    double timeout = 0, speed = 1;
    uint64_t seed = 0;
    cam_flags cf;
    cam_flags_default(&cf);
    const opt_def defs[] = {
        {"task", OPT_STR, &task, 0, 0, "task name (see 'crl tasks'); default: the run's",
         0},
        {"policy", OPT_STR, &policy, 0, 0,
         "RUN_ID[:TASK]: the latest checkpoint of a run in --db", 0},
        {"db", OPT_STR, &db, 0, 0, "SQLite run store (with --policy)", 0},
        {"episodes", OPT_INT, &episodes, 0, 1e6, "close after N episodes (0: never)", 0},
        {"scripted", OPT_FLAG, &scripted, 0, 0, "the task's scripted policy (default)",
         0},
        {"random", OPT_FLAG, &random, 0, 0, "uniform random actions", 0},
        {"stochastic", OPT_FLAG, &stochastic, 0, 0,
         "with --policy: sample actions (default: deterministic)", 0},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "episode i is reset with seed S+i", 0},
        {"speed", OPT_DOUBLE, &speed, 1.0 / 64, 64, "start at this multiple of real time",
         0},
        {"paused", OPT_FLAG, &paused, 0, 0, "start paused", 0},
        {"max-steps", OPT_I64, &max_steps, 0, 1e12,
         "close after N env steps (0: never; env CRL_VIEWER_EXIT_AFTER)", 0},
        {"timeout", OPT_DOUBLE, &timeout, 0, 1e9,
         "close after S seconds (0: never; env CRL_VIEWER_TIMEOUT)", 0},
        {"width", OPT_INT, &width, 64, 8192, "window width", 0},
        {"height", OPT_INT, &height, 64, 8192, "window height", 0},
        CAM_FLAGS(cf),
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse("view", defs, nd, argc, argv,
                        "--task NAME [--policy RUN_ID[:TASK] --db FILE] [--episodes N] "
                        "[--scripted | --random]");
    if (rc) return rc == 1 ? 0 : rc;
    if (scripted + random + (policy != NULL) > 1) {
        fprintf(stderr, "crl view: choose one of --policy, --scripted and --random\n");
        return 2;
    }
    if (policy && !db) {
        fprintf(stderr, "crl view: --policy needs --db FILE\n");
        return 2;
    }
    if (!task && !policy) {
        fprintf(stderr, "crl view: --task NAME is required (see 'crl tasks')\n");
        return 2;
    }
    crl_err err = {0};
    view_src v = {0};
    char run_env[128] = "", info[400] = "";
    if (policy) {
        char *end = NULL;
        long long run = strtoll(policy, &end, 10);
        long pos = 0;
        int has_pos = end && *end == ':';
        if (has_pos) pos = strtol(end + 1, &end, 10);
        if (run < 1 || !end || *end || pos < 0) {
            fprintf(stderr,
                    "crl view: --policy expects RUN_ID or RUN_ID:TASK, got '%s'\n",
                    policy);
            return 2;
        }
        if ((rc = load_run_policy(db, run, has_pos ? (int)pos : -1, &v.pol, &err))) {
            fprintf(stderr, "crl view: %s\n", err.msg);
            return cli_exit_code(rc);
        }
        /* Which of the file's tasks: the one exported, or the one named by
         * --task, or the first. */
        int nt = crl_policy_num_tasks(v.pol);
        v.pol_task = 0;
        if (task && !has_pos) {
            v.pol_task = -1;
            for (int i = 0; i < nt && v.pol_task < 0; i++)
                if (!strcmp(crl_policy_task_name(v.pol, i), task)) v.pol_task = i;
            if (v.pol_task < 0) v.pol_task = 0; /* e.g. a modifier of the run's task */
        }
        snprintf(run_env, sizeof run_env, "%s", crl_policy_task_name(v.pol, v.pol_task));
        v.kind = POLICY_RUN;
        v.deterministic = !stochastic;
        if (!task) task = run_env;
        int at = crl_policy_task_position(v.pol, v.pol_task);
        char where[192] = "";
        if (at >= 0) snprintf(where, sizeof where, ", task %d (%s)", at, run_env);
        snprintf(info, sizeof info, "run %lld %s%s, %s", run, crl_policy_method(v.pol),
                 where, stochastic ? "stochastic" : "deterministic");
    } else {
        v.kind = random ? POLICY_RANDOM : POLICY_SCRIPTED;
    }
    const crl_env_entry *list;
    int n = crl_env_list(&list), found = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, task)) found = i;
    if (found < 0) {
        fprintf(stderr, "crl view: unknown task '%s' (see 'crl tasks')\n", task);
        crl_policy_free(v.pol);
        return 2;
    }
    if (v.kind == POLICY_SCRIPTED && !list[found].has_scripted) {
        if (scripted) {
            fprintf(stderr, "crl view: task '%s' has no scripted policy (use --random)\n",
                    task);
            return 2;
        }
        v.kind = POLICY_RANDOM;
    }
    if (!info[0])
        snprintf(info, sizeof info, "%s policy",
                 v.kind == POLICY_SCRIPTED ? "scripted" : "random");
    v.task = task;
    v.seed = seed;
    v.show_success =
        strcmp(list[found].group, "locomotion") && strcmp(list[found].group, "control");
    crl_rng_seed(&v.rng, seed);
    if ((rc = crl_env_spec_create(task, &v.spec, &err)) ||
        (rc = crl_env_create(v.spec, &v.env, &err)))
        goto out;
    if (v.pol && (crl_policy_obs_dim(v.pol) != crl_env_obs_dim(v.spec) ||
                  crl_policy_act_dim(v.pol) != crl_env_act_dim(v.spec))) {
        rc =
            crl_errf(&err, CRL_EINVAL,
                     "the run's policy takes %d observations and %d actions; task %s has "
                     "%d and %d",
                     crl_policy_obs_dim(v.pol), crl_policy_act_dim(v.pol), task,
                     crl_env_obs_dim(v.spec), crl_env_act_dim(v.spec));
        goto out;
    }
    v.ad = crl_env_act_dim(v.spec);
    v.obs = calloc((size_t)crl_env_obs_dim(v.spec), sizeof *v.obs);
    v.act = calloc((size_t)v.ad, sizeof *v.act);
    if (!v.obs || !v.act) {
        rc = crl_errf(&err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    const struct mjModel_ *m = crl_env_model(v.spec);
    crl_viewer_opts o;
    crl_viewer_opts_default(&o);
    char title[640];
    snprintf(title, sizeof title, "crl view: %s (%s)", task, info);
    o.title = title;
    o.width = width;
    o.height = height;
    /* Real time: one env step lasts frame_skip physics steps. */
    o.fps = 1.0 / (m->opt.timestep * crl_env_frame_skip(v.spec));
    o.speed = speed;
    o.paused = paused;
    o.episodes = episodes;
    o.max_steps = max_steps;
    o.timeout_s = timeout;
    o.info = info;
    if (cam_from_flags(&cf, argc, argv, v.spec, &o.camera)) {
        rc = crl_errf(&err, CRL_EINVAL, "--lookat expects X,Y,Z, got '%s'", cf.lookat);
        goto out;
    }
    crl_viewer_stats stats = {0};
    o.stats = &stats;
    crl_viewer_source src = {&v, view_reset, view_step};
    rc = crl_viewer_run(m, &src, &o, &err);
    if (rc && v.err.code) err = v.err;
    if (!rc)
        printf("viewer closed: %lld steps, %d episode%s finished, %d frames in %.1f s, "
               "speed %gx\n",
               (long long)stats.steps, stats.episodes, stats.episodes == 1 ? "" : "s",
               stats.frames, stats.seconds, stats.speed);
out:
    if (rc) fprintf(stderr, "crl view: %s\n", err.msg);
    free(v.obs);
    free(v.act);
    crl_env_free(v.env);
    crl_env_spec_free(v.spec);
    crl_policy_free(v.pol);
    return cli_exit_code(rc);
}

/* ---- crl plot ------------------------------------------------------------- */

int cmd_plot(int argc, char **argv) {
    const char *db = NULL, *out = NULL, *kind_s = "curves", *scenario = NULL,
               *title = NULL, *metric_s = "auto";
    int64_t run = 0;
    int width = 0, height = 0;
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"run", OPT_I64, &run, 1, 9e18,
         "run id (curves, matrix, diagnostics; see 'crl runs')", 0},
        {"output", OPT_STR, &out, 0, 0, "output file, .png or .svg", 0},
        {"kind", OPT_STR, &kind_s, 0, 0,
         "curves (success of every task over training), matrix (task x evaluation "
         "heatmap), compare (methods of --scenario) or diagnostics (losses, Q, "
         "entropy, gradient norms, training returns and rates over training)",
         0},
        {"scenario", OPT_STR, &scenario, 0, 0, "scenario whose methods to compare", 0},
        {"metric", OPT_STR, &metric_s, 0, 0,
         "auto, success or return (auto: success unless no evaluation ever succeeded)",
         0},
        {"width", OPT_INT, &width, 0, 10000,
         "width in pixels (PNG) or points (SVG); 0: default", 0},
        {"height", OPT_INT, &height, 0, 10000, "height; 0: default", 0},
        {"title", OPT_STR, &title, 0, 0, "title instead of the generated one", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    int rc = opts_parse(
        "plot", defs, nd, argc, argv,
        "--db FILE --run ID -o FILE.png|svg [--kind curves|matrix|diagnostics]\n"
        "       crl plot --db FILE --kind compare --scenario S -o FILE.png|svg");
    if (rc) return rc == 1 ? 0 : rc;
    crl_err err = {0};
    crl_plot_opts o = {0};
    if ((rc = crl_plot_kind_parse(kind_s, &o.kind, &err))) {
        fprintf(stderr, "crl plot: %s\n", err.msg);
        return 2;
    }
    if (!strcmp(metric_s, "auto"))
        o.metric = CRL_PLOT_AUTO;
    else if (!strcmp(metric_s, "success"))
        o.metric = CRL_PLOT_SUCCESS;
    else if (!strcmp(metric_s, "return"))
        o.metric = CRL_PLOT_RETURN;
    else {
        fprintf(stderr, "crl plot: --metric must be auto, success or return, got '%s'\n",
                metric_s);
        return 2;
    }
    if (!db || !out) {
        fprintf(stderr, "crl plot: --db FILE and -o FILE.png|svg are required\n");
        return 2;
    }
    if (o.kind == CRL_PLOT_COMPARE && !scenario) {
        fprintf(stderr, "crl plot: --kind compare needs --scenario S\n");
        return 2;
    }
    if (o.kind != CRL_PLOT_COMPARE && !run) {
        fprintf(stderr, "crl plot: --run ID is required (see 'crl runs')\n");
        return 2;
    }
    if ((width && width < 200) || (height && height < 150)) {
        fprintf(stderr, "crl plot: --width must be >= 200 and --height >= 150\n");
        return 2;
    }
    o.run_id = run;
    o.scenario = scenario;
    o.width = width;
    o.height = height;
    o.title = title;
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err)) == CRL_OK) {
        rc = crl_plot_write(store, &o, out, &err);
        crl_store_close(store);
    }
    if (rc) {
        fprintf(stderr, "crl plot: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    printf("%s\n", out);
    return 0;
}
