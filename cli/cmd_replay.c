/* crl replay: logged episodes simulated again from their stored initial state
 * with their stored actions (docs/replay.md).
 *
 *   --verify        every step's reward and success and the final state must
 *                   match the record bit for bit
 *   --all --run ID  every episode of a run
 *   --list --run ID the episodes of a run
 *   --view          a GLFW window (include/crl/viz.h)
 *   --frames DIR    one PNG per state, headless (OSMesa)
 *   --video FILE    those frames encoded by ffmpeg */
#include <errno.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/episode.h"
#include "crl/store.h"
#include "crl/viz.h"

/* ---- the task an episode ran on ------------------------------------------- */

/* Specs made so far: a run's episodes share a few tasks. */
#define SPEC_CACHE 64
typedef struct {
    char *key; /* env + "\n" + modifiers */
    crl_env_spec *spec;
} spec_slot;

typedef struct {
    crl_store *store;
    spec_slot slot[SPEC_CACHE];
    int n;
} spec_cache;

static void spec_cache_free(spec_cache *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->slot[i].key);
        crl_env_spec_free(c->slot[i].spec);
    }
    c->n = 0;
}

/* A task from a user's MJCF file is made again from the options its
 * modifiers recorded (crl_env_modifiers). */
typedef struct {
    crl_env_spec **out;
    crl_err *err;
    int rc;
} xml_make;

static int make_xml_spec(const crl_json_value *v, void *ctx) {
    xml_make *m = ctx;
    const char *path = v[0].text;
    const char *reward = v[1].text;
    crl_xml_task o = {0};
    o.reward = reward && !strcmp(reward, "reach") ? CRL_XML_REWARD_REACH
                                                  : CRL_XML_REWARD_FORWARD;
    o.body = v[2].text;
    o.site = v[3].text;
    for (int k = 0; k < 3; k++) o.target[k] = v[4 + k].num;
    o.max_steps = (int)v[7].i;
    o.frame_skip = (int)v[8].i;
    m->rc = path ? crl_env_spec_create_xml(path, &o, m->out, m->err)
                 : crl_errf(m->err, CRL_ECORRUPT, "the episode's modifiers name no file");
    return 0;
}

static int xml_spec(crl_store *store, const char *mods, crl_env_spec **out,
                    crl_err *err) {
    static const char *const paths[] = {"$.xml",       "$.reward",    "$.body",
                                        "$.site",      "$.target[0]", "$.target[1]",
                                        "$.target[2]", "$.max_steps", "$.frame_skip"};
    xml_make m = {out, err, CRL_OK};
    if (crl_store_json_extract(store, mods, paths, 9, make_xml_spec, &m, NULL))
        return crl_errf(err, CRL_ECORRUPT, "the episode's modifiers are not valid JSON");
    return m.rc;
}

static int is_xml(const char *mods) {
    return strncmp(mods, "{\"xml\":", 7) == 0;
}

/* The spec an episode row ran on (owned by the cache). */
static int spec_get(spec_cache *c, const crl_episode_row *r, crl_env_spec **out,
                    crl_err *err) {
    size_t n = strlen(r->env) + strlen(r->modifiers) + 2;
    char *key = malloc(n);
    if (!key) return crl_errf(err, CRL_ENOMEM, "out of memory");
    snprintf(key, n, "%s\n%s", r->env, r->modifiers);
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->slot[i].key, key)) {
            free(key);
            *out = c->slot[i].spec;
            return CRL_OK;
        }
    crl_env_spec *spec = NULL;
    int rc = is_xml(r->modifiers) ? xml_spec(c->store, r->modifiers, &spec, err)
                                  : crl_env_spec_create(r->env, &spec, err);
    if (rc) {
        free(key);
        return rc;
    }
    if (c->n == SPEC_CACHE) spec_cache_free(c);
    c->slot[c->n].key = key;
    c->slot[c->n++].spec = spec;
    *out = spec;
    return CRL_OK;
}

/* ---- one episode -------------------------------------------------------------- */

typedef struct {
    int64_t id, run_id, step;
    int task_idx, episode, deterministic, length;
    char kind[8];
    char env[300];
} ep_meta;

/* A decoded episode with its spec, ready to replay. */
typedef struct {
    ep_meta meta;
    crl_env_spec *spec; /* in the cache */
    crl_episode_data data;
    int rc;
    crl_err err;
    spec_cache *cache;
} ep_loaded;

static int load_cb(const crl_episode_row *r, void *vctx) {
    ep_loaded *l = vctx;
    l->meta.id = r->id;
    l->meta.run_id = r->run_id;
    l->meta.step = r->step;
    l->meta.task_idx = r->task_idx;
    l->meta.episode = r->episode;
    l->meta.deterministic = r->deterministic;
    l->meta.length = r->length;
    snprintf(l->meta.kind, sizeof l->meta.kind, "%s", r->kind);
    snprintf(l->meta.env, sizeof l->meta.env, "%s", r->env);
    crl_err e2 = {0};
    l->rc = crl_episode_decode(r->data, r->data_n, &l->data, &e2);
    if (l->rc) {
        crl_errf(&l->err, l->rc, "corrupt record: %s", e2.msg);
        return 1;
    }
    /* The row's own MuJoCo version is the one to name if it differs. */
    if (strcmp(r->mujoco_version, l->data.mujoco_version) != 0 ||
        strcmp(r->model_hash, l->data.model_hash) != 0) {
        l->rc = crl_errf(&l->err, CRL_ECORRUPT,
                         "corrupt episode: its row (MuJoCo %s, model %s) and its record "
                         "(MuJoCo %.16s, model %.16s) disagree",
                         r->mujoco_version, r->model_hash, l->data.mujoco_version,
                         l->data.model_hash);
        return 1;
    }
    l->rc = spec_get(l->cache, r, &l->spec, &l->err);
    if (!l->rc) l->rc = crl_episode_check(l->spec, &l->data, &l->err);
    return 1;
}

static void describe(const ep_meta *m, char *buf, size_t n) {
    snprintf(buf, n, "episode %lld (run %lld, %s%s, task %d %s, step %lld, %d steps)",
             (long long)m->id, (long long)m->run_id, m->kind,
             m->deterministic ? " deterministic" : "", m->task_idx, m->env,
             (long long)m->step, m->length);
}

/* Verify one loaded episode; prints one line unless quiet_ok and it
 * verified. Returns 0 verified, 1 differs, -1 could not replay. */
static int verify_one(ep_loaded *l, int quiet_ok) {
    char who[512];
    describe(&l->meta, who, sizeof who);
    if (l->rc) {
        printf("%s: cannot replay: %s\n", who, l->err.msg);
        return -1;
    }
    crl_episode_result res;
    crl_err err = {0};
    int rc = crl_episode_verify(l->spec, &l->data, &res, &err);
    if (rc) {
        printf("%s: cannot replay: %s\n", who, err.msg);
        return -1;
    }
    if (res.verified) {
        if (!quiet_ok) printf("%s: verified\n", who);
        return 0;
    }
    if (res.step >= 0)
        printf("%s: differs at step %d: %s\n", who, res.step, res.what);
    else
        printf("%s: differs: %s\n", who, res.what);
    return 1;
}

/* ---- listing and --all ---------------------------------------------------------- */

typedef struct {
    int64_t *ids;
    int n, cap;
    int oom;
} id_list;

static int collect_cb(const crl_episode_row *r, void *vctx) {
    id_list *l = vctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        int64_t *p = realloc(l->ids, sizeof *p * (size_t)cap);
        if (!p) {
            l->oom = 1;
            return 1;
        }
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = r->id;
    return 0;
}

static int list_cb(const crl_episode_row *r, void *vctx) {
    int *count = vctx;
    if ((*count)++ == 0)
        printf("%-7s %-9s %-4s %-5s %-4s %-3s %-28s %-20s %-6s %-11s %-4s %s\n", "id",
               "step", "task", "kind", "ep", "det", "env", "seed", "len", "return",
               "succ", "bytes");
    printf("%-7lld %-9lld %-4d %-5s %-4d %-3d %-28s %-20llu %-6d %-11.3f %-4d %zu\n",
           (long long)r->id, (long long)r->step, r->task_idx, r->kind, r->episode,
           r->deterministic, r->env, (unsigned long long)r->env_seed, r->length, r->ret,
           r->success, r->data_n);
    return 0;
}

static int load(crl_store *store, spec_cache *cache, int64_t id, ep_loaded *l,
                crl_err *err) {
    memset(l, 0, sizeof *l);
    l->cache = cache;
    int rc = crl_store_episode_get(store, id, load_cb, l, err);
    return rc;
}

static int verify_all(crl_store *store, spec_cache *cache, int64_t run, const char *db) {
    crl_err err = {0};
    crl_run_info info;
    int rc = crl_store_run_get(store, run, &info, NULL, &err);
    if (rc) {
        fprintf(stderr, "crl replay: %s\n", err.msg);
        return rc == CRL_ENOTFOUND ? 2 : 1;
    }
    id_list ids = {0};
    rc = crl_store_episodes(store, run, 0, collect_cb, &ids, &err);
    if (!rc && ids.oom) rc = crl_errf(&err, CRL_ENOMEM, "out of memory listing episodes");
    if (rc) {
        free(ids.ids);
        fprintf(stderr, "crl replay: %s\n", err.msg);
        return 1;
    }
    if (ids.n == 0) {
        free(ids.ids);
        fprintf(stderr, "crl replay: run %lld in %s has no logged episodes\n",
                (long long)run, db);
        return 1;
    }
    int ok = 0, differ = 0, broken = 0;
    for (int i = 0; i < ids.n; i++) {
        ep_loaded l;
        rc = load(store, cache, ids.ids[i], &l, &err);
        if (rc) {
            printf("episode %lld: cannot read: %s\n", (long long)ids.ids[i], err.msg);
            broken++;
            continue;
        }
        int v = verify_one(&l, 1);
        crl_episode_data_free(&l.data);
        ok += v == 0;
        differ += v == 1;
        broken += v < 0;
    }
    free(ids.ids);
    if (ok == ids.n) {
        printf("run %lld: %d of %d episodes verified\n", (long long)run, ok, ids.n);
        return 0;
    }
    printf("run %lld: %d of %d episodes verified, %d differ, %d could not be replayed\n",
           (long long)run, ok, ids.n, differ, broken);
    return 1;
}

/* ---- watching: frames, video, window ------------------------------------------- */

/* Locomotion (and user) tasks have no success to show. */
static int shows_success(const crl_env_spec *spec) {
    const crl_env_entry *list;
    int n = crl_env_list(&list);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, crl_env_spec_name(spec)))
            return strcmp(list[i].group, "locomotion") != 0;
    return 0;
}

/* Real time: one env step lasts timestep x frame_skip. */
static double real_time_fps(const crl_env_spec *spec) {
    const mjModel *m = crl_env_model(spec);
    double fps = 1.0 / (m->opt.timestep * crl_env_frame_skip(spec));
    return fps < 1 ? 1 : fps > 240 ? 240 : fps;
}

/* Steps an episode through its actions, for frames and the window. */
typedef struct {
    ep_loaded *l;
    crl_env *env;
    int t; /* actions applied */
    double ret;
    int success, show_success;
    char text[160];
    crl_err err; /* why a reset failed */
} player;

static int player_reset(void *vctx, mjData **d) {
    player *p = vctx;
    int rc = crl_episode_restore(p->env, &p->l->data, &p->err);
    if (rc) return rc;
    p->t = 0;
    p->ret = 0;
    p->success = 0;
    *d = crl_env_data(p->env);
    return 0;
}

static void player_overlay(const player *p, float reward, crl_render_overlay *ov) {
    crl_render_overlay_init(ov);
    ov->task = p->l->meta.env;
    ov->step = p->t;
    ov->reward = reward;
    ov->ret = p->ret;
    ov->success = p->show_success ? p->success : -1;
    ov->text = p->text;
}

/* Applies action t; 1 while more follow, 0 after the last one. */
static int player_step(void *vctx, mjData **d, crl_render_overlay *ov) {
    player *p = vctx;
    const crl_episode_data *ep = &p->l->data;
    if (p->t >= ep->length) return 0;
    crl_step_info info;
    crl_env_step(p->env, ep->act + (size_t)p->t * ep->act_dim, NULL, &info);
    p->t++;
    p->ret += info.reward;
    p->success |= info.success != 0;
    player_overlay(p, info.reward, ov);
    *d = crl_env_data(p->env);
    return p->t < ep->length ? 1 : 0;
}

static int player_init(player *p, ep_loaded *l, crl_err *err) {
    memset(p, 0, sizeof *p);
    p->l = l;
    p->show_success = shows_success(l->spec);
    snprintf(p->text, sizeof p->text, "episode %lld: run %lld, %s %d, step %lld",
             (long long)l->meta.id, (long long)l->meta.run_id, l->meta.kind,
             l->meta.episode, (long long)l->meta.step);
    return crl_env_create(l->spec, &p->env, err);
}

static int make_dir(const char *dir, crl_err *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return CRL_OK;
        return crl_errf(err, CRL_EIO, "%s exists and is not a directory", dir);
    }
    if (mkdir(dir, 0777) != 0)
        return crl_errf(err, CRL_EIO, "cannot create %s: %s", dir, strerror(errno));
    return CRL_OK;
}

#define FRAME_PATTERN "frame_%05d.png"

/* Frame k shows the state after k actions (frame 0: the initial state). */
static int write_frames(ep_loaded *l, const char *dir, int w, int h, int *written,
                        crl_err *err) {
    player p;
    crl_renderer *r = NULL;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    char path[4096];
    *written = 0;
    int rc = rgb ? player_init(&p, l, err)
                 : crl_errf(err, CRL_ENOMEM, "out of memory for a %dx%d frame", w, h);
    if (!rgb) p.env = NULL;
    if (!rc) rc = make_dir(dir, err);
    if (!rc) rc = crl_render_open(&r, crl_env_model(l->spec), w, h, err);
    if (!rc) {
        crl_camera cam;
        crl_camera_for_task(l->spec, &cam);
        rc = crl_render_set_camera(r, &cam, err);
    }
    mjData *d = NULL;
    crl_render_overlay ov;
    if (!rc && (rc = player_reset(&p, &d)) != 0) *err = p.err;
    if (!rc) player_overlay(&p, 0.0f, &ov);
    for (int k = 0; !rc; k++) {
        snprintf(path, sizeof path, "%s/" FRAME_PATTERN, dir, k);
        if ((rc = crl_render_frame(r, d, &ov, rgb, err)) ||
            (rc = crl_png_write(path, rgb, w, h, err)))
            break;
        (*written)++;
        if (p.t >= l->data.length) break;
        player_step(&p, &d, &ov);
    }
    crl_render_close(r);
    crl_env_free(p.env);
    free(rgb);
    return rc;
}

static int remove_frames(const char *dir, int n) {
    char path[4096];
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof path, "%s/" FRAME_PATTERN, dir, k);
        unlink(path);
    }
    return rmdir(dir);
}

/* --frames DIR and/or --video FILE.mp4: the frames go to DIR, or to a
 * temporary directory that is removed once the video is made. */
static int watch_headless(ep_loaded *l, const char *frames, const char *video, int w,
                          int h, double fps) {
    crl_err err = {0};
    if (video && !crl_video_available()) {
        /* Say so before rendering frames for nothing. */
        fprintf(stderr,
                "crl replay: ffmpeg not found, so no %s: install ffmpeg, or write the "
                "frames with --frames DIR\n",
                video);
        return 1;
    }
    char tmp[] = "/tmp/crl_replay_XXXXXX";
    const char *dir = frames;
    if (!dir) {
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "crl replay: cannot make a directory for the frames: %s\n",
                    strerror(errno));
            return 1;
        }
        dir = tmp;
    }
    if (fps <= 0) fps = real_time_fps(l->spec);
    int n = 0;
    int rc = write_frames(l, dir, w, h, &n, &err);
    if (rc) {
        fprintf(stderr, "crl replay: %s\n", err.msg);
        if (!frames) remove_frames(dir, n);
        return 1;
    }
    if (frames) printf("%s: %d frames (%dx%d)\n", frames, n, w, h);
    if (!video) return 0;
    rc = crl_video_encode(dir, FRAME_PATTERN, (int)lround(fps), video, &err);
    if (rc) {
        fprintf(stderr, "crl replay: %s\n", err.msg);
        if (!frames && rc != CRL_ENOTFOUND) remove_frames(dir, n);
        return 1;
    }
    if (!frames) remove_frames(dir, n);
    printf("%s: %d frames at %.0f fps\n", video, n, round(fps));
    return 0;
}

static int watch_window(ep_loaded *l, double fps) {
    crl_err err = {0};
    player p;
    int rc = player_init(&p, l, &err);
    if (!rc) {
        crl_viewer_source src = {&p, player_reset, player_step};
        crl_viewer_opts o;
        crl_viewer_opts_default(&o);
        char title[400];
        snprintf(title, sizeof title, "crl replay: episode %lld (%s)",
                 (long long)l->meta.id, l->meta.env);
        o.title = title;
        o.fps = fps > 0 ? fps : real_time_fps(l->spec);
        crl_camera_for_task(l->spec, &o.camera);
        rc = crl_viewer_run(crl_env_model(l->spec), &src, &o, &err);
    }
    crl_env_free(p.env);
    if (rc) {
        fprintf(stderr, "crl replay: %s\n", err.msg[0] ? err.msg : p.err.msg);
        return 1;
    }
    return 0;
}

/* ---- the command ----------------------------------------------------------------- */

int cmd_replay(int argc, char **argv) {
    const char *db = NULL;
    int64_t episode = 0, run = 0;
    int verify = 0, all = 0, list = 0, view = 0, width = 640, height = 480;
    const char *frames = NULL, *video = NULL;
    double fps = 0;
    const opt_def defs[] = {
        {"db", OPT_STR, &db, 0, 0, "SQLite run store", 0},
        {"episode", OPT_I64, &episode, 1, 9e18, "episode id (see --list)", 0},
        {"run", OPT_I64, &run, 1, 9e18, "run id, with --all or --list", 0},
        {"verify", OPT_FLAG, &verify, 0, 0,
         "simulate again and compare every step and the final state bit for bit", 0},
        {"all", OPT_FLAG, &all, 0, 0, "with --verify: every episode of --run", 0},
        {"list", OPT_FLAG, &list, 0, 0, "list the logged episodes of --run", 0},
        {"view", OPT_FLAG, &view, 0, 0,
         "watch the episode in a window (space pause, right arrow step, +/- speed, r "
         "reset, mouse camera)",
         0},
        {"frames", OPT_STR, &frames, 0, 0,
         "write one PNG per state into this directory (headless)", 0},
        {"video", OPT_STR, &video, 0, 0, "encode the frames into this MP4 with ffmpeg",
         0},
        {"width", OPT_INT, &width, 16, 4096, "frame width (--frames, --video)", 0},
        {"height", OPT_INT, &height, 16, 4096, "frame height (--frames, --video)", 0},
        {"fps", OPT_DOUBLE, &fps, 0, 1000,
         "env steps per second (--view, --video); 0 = real time", 0},
    };
    const char *usage =
        "--db FILE --episode ID (--verify | --view | --frames DIR | "
        "--video FILE.mp4) | --db FILE --run ID (--all --verify | --list)";
    int rc = opts_parse("replay", defs, (int)(sizeof defs / sizeof defs[0]), argc, argv,
                        usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (!db) {
        fprintf(stderr, "crl replay: --db FILE is required (see 'crl replay --help')\n");
        return 2;
    }
    if ((all || list) && !run) {
        fprintf(stderr, "crl replay: --%s needs --run ID\n", all ? "all" : "list");
        return 2;
    }
    if (all && !verify) {
        fprintf(stderr, "crl replay: --all goes with --verify\n");
        return 2;
    }
    if (!list && !all && !episode) {
        fprintf(stderr, "crl replay: give --episode ID (or --run ID --all / --list)\n");
        return 2;
    }
    int watch = view || frames || video;
    if (!list && !verify && !watch) {
        fprintf(stderr, "crl replay: say what to do with the episode: --verify, --view, "
                        "--frames DIR or --video FILE.mp4\n");
        return 2;
    }
    if (watch && (all || list)) {
        fprintf(stderr, "crl replay: --view, --frames and --video take one --episode\n");
        return 2;
    }
    if (view && (frames || video)) {
        /* MuJoCo 2.2 binds one OpenGL platform per process. */
        fprintf(stderr, "crl replay: --view cannot be combined with --frames or --video "
                        "in one run\n");
        return 2;
    }

    crl_err err = {0};
    crl_store *store = NULL;
    if ((rc = crl_store_open(db, 0, &store, &err))) {
        fprintf(stderr, "crl replay: %s\n", err.msg);
        return 1;
    }
    spec_cache cache = {store, {{0}}, 0};
    int code = 0;
    if (list) {
        int count = 0;
        if ((rc = crl_store_episodes(store, run, 0, list_cb, &count, &err))) {
            fprintf(stderr, "crl replay: %s\n", err.msg);
            code = 1;
        } else if (count == 0) {
            printf("run %lld has no logged episodes in %s\n", (long long)run, db);
        }
    } else if (all) {
        code = verify_all(store, &cache, run, db);
    } else {
        ep_loaded l;
        if ((rc = load(store, &cache, episode, &l, &err))) {
            fprintf(stderr, "crl replay: %s\n", err.msg);
            code = rc == CRL_ENOTFOUND ? 2 : 1;
        } else if (l.rc) {
            char who[512];
            describe(&l.meta, who, sizeof who);
            fprintf(stderr, "crl replay: %s: %s\n", who, l.err.msg);
            code = 1;
        } else {
            if (verify) code = verify_one(&l, 0) == 0 ? 0 : 1;
            if (!code && (frames || video))
                code = watch_headless(&l, frames, video, width, height, fps);
            if (!code && view) code = watch_window(&l, fps);
        }
        crl_episode_data_free(&l.data);
    }
    spec_cache_free(&cache);
    crl_store_close(store);
    return code;
}
