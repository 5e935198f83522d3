/* viz: headless frames checked against an independent pinhole projection of
 * the scene's objects, PNG files read back with cairo and by hand, the
 * viewer under Xvfb, video through a stand-in ffmpeg, and plots of a store
 * written by hand (no training). Needs no display: DISPLAY is unset for
 * everything but the Xvfb test. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <cairo.h>
#include <check.h>
#include <ftw.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/env.h"
#include "crl/store.h"
#include "crl/plot.h"
#include "crl/viz.h"

static char dir[256];
static char out_path[300], err_path[300];

static void setup(void) {
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    snprintf(dir, sizeof dir, "/tmp/crl_test_viz_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    return remove(path);
}

/* Remove the test's directory (left behind when a test fails, to look at). */
static void cleanup(void) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *bin(void) {
    const char *b = getenv("CRL_BIN");
    return b ? b : "./crl";
}

static pid_t spawn(char *const argv[]) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_code(pid_t pid) {
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define RUN(...) wait_code(spawn((char *const[]){(char *)bin(), __VA_ARGS__, NULL}))

static char *slurp(const char *path) {
    static char buf[65536];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void expect_one_line_error(int code, int want, const char *needle) {
    char *e = slurp(err_path);
    ck_assert_msg(code == want, "exit %d, want %d; stderr: %s", code, want, e);
    int lines = 0;
    for (const char *p = e; *p; p++) lines += *p == '\n';
    ck_assert_msg(lines == 1, "stderr is not one line: %s", e);
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
}

/* A whole file, malloc'd and NUL-terminated. */
static char *slurp_all(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* ---- an independent look at a frame ------------------------------------------ */

/* Where world point p lands in a w x h image of fixed camera cam: a plain
 * pinhole model (MuJoCo cameras look along their -z axis, y up, vertical
 * field of view cam_fovy). Returns 0 if p is behind the camera. */
static int project(const mjModel *m, const mjData *d, int cam, const double p[3], int w,
                   int h, double *u, double *v) {
    const double *pos = d->cam_xpos + 3 * cam, *R = d->cam_xmat + 9 * cam;
    double rel[3] = {p[0] - pos[0], p[1] - pos[1], p[2] - pos[2]}, c[3];
    for (int j = 0; j < 3; j++)
        c[j] = R[j] * rel[0] + R[3 + j] * rel[1] + R[6 + j] * rel[2];
    double depth = -c[2];
    if (depth <= 0) return 0;
    double f = 0.5 * h / tan(0.5 * m->cam_fovy[cam] * M_PI / 180);
    *u = 0.5 * w + f * c[0] / depth;
    *v = 0.5 * h - f * c[1] / depth;
    return 1;
}

typedef int (*pixel_test)(const unsigned char *px);

/* Pixels within radius r of (u, v) that pass t. */
static int count_near(const unsigned char *rgb, int w, int h, double u, double v,
                      double r, pixel_test t) {
    int n = 0;
    for (int y = (int)(v - r); y <= (int)(v + r); y++)
        for (int x = (int)(u - r); x <= (int)(u + r); x++) {
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            if ((x - u) * (x - u) + (y - v) * (y - v) > r * r) continue;
            n += t(rgb + 3 * ((size_t)y * w + x));
        }
    return n;
}

static int count_all(const unsigned char *rgb, int w, int h, pixel_test t) {
    int n = 0;
    for (int i = 0; i < w * h; i++) n += t(rgb + 3 * i);
    return n;
}

/* The puck (rgba 0.8 0.3 0.2): strongly red. */
static int is_red(const unsigned char *p) {
    return p[0] > p[1] + 60 && p[0] > p[2] + 60;
}
/* The gripper (0.3 0.3 0.35) and its pads: dark grey. */
static int is_dark(const unsigned char *p) {
    return p[0] < 110 && p[1] < 110 && p[2] < 120;
}
/* The table's checker (0.55 0.42 0.3 / 0.5 0.38 0.27): brown. */
static int is_brown(const unsigned char *p) {
    return p[0] > p[1] && p[1] > p[2] && p[0] - p[2] >= 25 && p[0] - p[2] <= 130 &&
           p[0] > 60;
}
/* The cheetah's torso (0.8 0.6 0.4): warm. The floor and sky are blue. */
static int is_warm(const unsigned char *p) {
    return p[0] > p[2] + 40;
}
static int is_bluish(const unsigned char *p) {
    return p[2] >= p[0];
}

static int distinct_colours(const unsigned char *rgb, int n) {
    /* Colours quantised to 4 bits per channel: a flat image has 1. */
    static unsigned char seen[4096];
    memset(seen, 0, sizeof seen);
    int k = 0;
    for (int i = 0; i < n; i++) {
        int c = (rgb[3 * i] >> 4) << 8 | (rgb[3 * i + 1] >> 4) << 4 | rgb[3 * i + 2] >> 4;
        if (!seen[c]) {
            seen[c] = 1;
            k++;
        }
    }
    return k;
}

typedef struct {
    crl_env_spec *spec;
    crl_env *env;
    float obs[64], act[16];
    crl_renderer *r;
    unsigned char *rgb;
    int w, h;
} scene;

static void scene_open(scene *s, const char *task, uint64_t seed, int w, int h) {
    crl_err err = {0};
    memset(s, 0, sizeof *s);
    ck_assert_msg(crl_env_spec_create(task, &s->spec, &err) == 0, "%s", err.msg);
    ck_assert(crl_env_create(s->spec, &s->env, &err) == 0);
    ck_assert(crl_env_obs_dim(s->spec) <= 64 && crl_env_act_dim(s->spec) <= 16);
    crl_env_reset(s->env, seed, s->obs);
    int rc = crl_render_open(&s->r, crl_env_model(s->spec), w, h, &err);
    ck_assert_msg(rc == 0, "render_open: %s", err.msg);
    s->w = w;
    s->h = h;
    s->rgb = malloc((size_t)w * h * 3);
    ck_assert(s->rgb != NULL);
}

static void scene_frame(scene *s, const crl_render_overlay *ov, unsigned char *rgb) {
    crl_err err = {0};
    ck_assert_msg(crl_render_frame(s->r, crl_env_data(s->env), ov, rgb, &err) == 0, "%s",
                  err.msg);
}

static void scene_close(scene *s) {
    crl_render_close(s->r);
    free(s->rgb);
    crl_env_free(s->env);
    crl_env_spec_free(s->spec);
}

static const double *body_pos(const scene *s, const char *name) {
    const mjModel *m = crl_env_model(s->spec);
    int id = mj_name2id(m, mjOBJ_BODY, name);
    ck_assert_msg(id > 0, "no body %s", name);
    return crl_env_data(s->env)->xpos + 3 * id;
}

/* Read a PNG's size from its IHDR chunk, by hand (not through cairo). */
static void png_size(const char *path, int *w, int *h) {
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "no %s", path);
    ck_assert(fread(b, 1, 24, f) == 24);
    fclose(f);
    ck_assert(memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0);
    ck_assert(memcmp(b + 12, "IHDR", 4) == 0);
    *w = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
    *h = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
}

/* Read a PNG with cairo: RGB bytes, malloc'd. */
static unsigned char *cairo_read(const char *path, int *w, int *h) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    ck_assert_msg(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS, "cairo cannot read %s",
                  path);
    *w = cairo_image_surface_get_width(s);
    *h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    unsigned char *rgb = malloc((size_t)*w * *h * 3);
    for (int y = 0; y < *h; y++)
        for (int x = 0; x < *w; x++) {
            uint32_t p =
                *(const uint32_t *)(const void *)(data + (size_t)y * stride + 4 * x);
            unsigned char *o = rgb + 3 * ((size_t)y * *w + x);
            o[0] = (p >> 16) & 255;
            o[1] = (p >> 8) & 255;
            o[2] = p & 255;
        }
    cairo_surface_destroy(s);
    return rgb;
}

/* ---- headless frames ------------------------------------------------------------ */

START_TEST(test_render_manipulation) {
    setup();
    scene s;
    scene_open(&s, "push", 3, 320, 240);
    scene_frame(&s, NULL, s.rgb);
    const mjModel *m = crl_env_model(s.spec);
    const mjData *d = crl_env_data(s.env);
    int n = s.w * s.h;
    ck_assert_int_gt(distinct_colours(s.rgb, n), 20);
    /* The puck is where the pinhole model puts it, and red. */
    double u, v;
    ck_assert(project(m, d, 0, body_pos(&s, "puck"), s.w, s.h, &u, &v));
    ck_assert_msg(u > 0 && u < s.w && v > 0 && v < s.h, "puck projects to %g %g", u, v);
    int red_near = count_near(s.rgb, s.w, s.h, u, v, 5, is_red);
    int red_all = count_all(s.rgb, s.w, s.h, is_red);
    ck_assert_msg(red_near >= 12, "puck at (%.0f, %.0f): %d red pixels", u, v, red_near);
    ck_assert_msg(red_all < n / 50, "%d red pixels: more than the puck", red_all);
    /* The gripper above it. */
    ck_assert(project(m, d, 0, body_pos(&s, "hand"), s.w, s.h, &u, &v));
    int dark = count_near(s.rgb, s.w, s.h, u, v, 4, is_dark);
    ck_assert_msg(dark >= 12, "hand at (%.0f, %.0f): %d dark pixels", u, v, dark);
    /* The table fills a good part of the frame; the sky is above it. */
    int brown = count_all(s.rgb, s.w, s.h, is_brown);
    ck_assert_msg(brown > n / 5, "%d of %d pixels brown (table)", brown, n);
    int sky = 0;
    for (int x = 0; x < s.w; x++) sky += is_bluish(s.rgb + 3 * x);
    ck_assert_msg(sky > s.w * 9 / 10, "top row: %d of %d bluish", sky, s.w);

    /* PNG of the known size; cairo reads back exactly these pixels. */
    char png[300];
    snprintf(png, sizeof png, "%s/push.png", dir);
    crl_err err = {0};
    ck_assert_msg(crl_png_write(png, s.rgb, s.w, s.h, &err) == 0, "%s", err.msg);
    int w, h;
    png_size(png, &w, &h);
    ck_assert_int_eq(w, 320);
    ck_assert_int_eq(h, 240);
    unsigned char *back = cairo_read(png, &w, &h);
    ck_assert(memcmp(back, s.rgb, (size_t)n * 3) == 0);
    free(back);
    /* crl_png_read agrees, and refuses what is not a PNG. */
    unsigned char *mine = NULL;
    ck_assert(crl_png_read(png, &mine, &w, &h, &err) == 0);
    ck_assert(w == 320 && h == 240 && memcmp(mine, s.rgb, (size_t)n * 3) == 0);
    free(mine);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.png", dir);
    FILE *f = fopen(bad, "w");
    fputs("not a png", f);
    fclose(f);
    ck_assert_int_eq(crl_png_read(bad, &mine, &w, &h, &err), CRL_ECORRUPT);
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.png", dir);
    ck_assert_int_eq(crl_png_write(bad, s.rgb, s.w, s.h, &err), CRL_EIO);
    scene_close(&s);
    cleanup();
}
END_TEST

/* Every manipulation task's own picture (crl_camera_for_task) frames the
 * table's working area: at least half of the frame is the table's brown,
 * where the models' fixed camera "front" gave about a quarter (the rest sky
 * and the table's legs). Locomotion tasks have no framing of their own
 * (AUTO). */
START_TEST(test_task_framing) {
    const crl_env_entry *list;
    int n = crl_env_list(&list), tried = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i].group, "manipulation") && strcmp(list[i].group, "pretrain"))
            continue;
        scene s;
        scene_open(&s, list[i].name, 0, 160, 120);
        crl_camera cam;
        crl_camera_for_task(s.spec, &cam);
        ck_assert_int_eq(cam.mode, CRL_CAMERA_FREE);
        double v[6];
        ck_assert_int_eq(crl_env_view(s.spec, v), 1);
        ck_assert(cam.lookat[1] == v[1] && cam.distance == v[3] && cam.elevation == v[5]);
        crl_err err = {0};
        int frac[2];
        for (int k = 0; k < 2; k++) {
            crl_camera fixed = {.mode = CRL_CAMERA_FIXED, .id = 0};
            ck_assert_int_eq(crl_render_set_camera(s.r, k ? &fixed : &cam, &err), CRL_OK);
            scene_frame(&s, NULL, s.rgb);
            frac[k] = 100 * count_all(s.rgb, s.w, s.h, is_brown) / (s.w * s.h);
        }
        ck_assert_msg(frac[0] >= 50, "%s: the task's picture is %d %% table",
                      list[i].name, frac[0]);
        ck_assert_msg(frac[1] < 35, "%s: the model's camera is %d %% table", list[i].name,
                      frac[1]);
        scene_close(&s);
        tried++;
    }
    ck_assert_int_ge(tried, 17);
    crl_env_spec *hc = NULL;
    crl_err err = {0};
    ck_assert_int_eq(crl_env_spec_create("halfcheetah", &hc, &err), CRL_OK);
    crl_camera cam;
    crl_camera_for_task(hc, &cam);
    ck_assert_int_eq(cam.mode, CRL_CAMERA_AUTO);
    crl_env_spec_free(hc);
}
END_TEST

START_TEST(test_render_halfcheetah) {
    setup();
    scene s;
    scene_open(&s, "halfcheetah", 0, 320, 240);
    scene_frame(&s, NULL, s.rgb);
    const mjModel *m = crl_env_model(s.spec);
    const mjData *d = crl_env_data(s.env);
    int n = s.w * s.h;
    ck_assert_int_gt(distinct_colours(s.rgb, n), 20);
    double u, v;
    ck_assert(project(m, d, 0, body_pos(&s, "torso"), s.w, s.h, &u, &v));
    ck_assert_msg(u > 0 && u < s.w && v > 0 && v < s.h, "torso projects to %g %g", u, v);
    int warm = count_near(s.rgb, s.w, s.h, u, v, 4, is_warm);
    ck_assert_msg(warm >= 10, "torso at (%.0f, %.0f): %d warm pixels", u, v, warm);
    /* Floor and sky are blue: the cheetah is a small part of the frame. */
    int warm_all = count_all(s.rgb, s.w, s.h, is_warm),
        blue_all = count_all(s.rgb, s.w, s.h, is_bluish);
    ck_assert_msg(warm_all > 200 && warm_all < n / 4, "%d warm pixels", warm_all);
    ck_assert_msg(blue_all > n / 2, "%d bluish pixels", blue_all);
    scene_close(&s);
    cleanup();
}
END_TEST

static int count_diff(const unsigned char *a, const unsigned char *b, int w, int x0,
                      int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const unsigned char *p = a + 3 * ((size_t)y * w + x),
                                *q = b + 3 * ((size_t)y * w + x);
            n += abs(p[0] - q[0]) > 24 || abs(p[1] - q[1]) > 24 || abs(p[2] - q[2]) > 24;
        }
    return n;
}

START_TEST(test_frames_of_two_steps_differ) {
    setup();
    scene s;
    scene_open(&s, "push", 1, 240, 180);
    unsigned char *a = malloc(240 * 180 * 3), *b = malloc(240 * 180 * 3);
    scene_frame(&s, NULL, a);
    scene_frame(&s, NULL, b);
    /* The same state draws the same frame. */
    ck_assert(memcmp(a, b, 240 * 180 * 3) == 0);
    /* The scripted policy moves the gripper: a visibly different frame. */
    crl_step_info info;
    for (int t = 0; t < 40; t++) {
        ck_assert(crl_env_scripted_action(s.env, s.act) == 0);
        crl_env_step(s.env, s.act, s.obs, &info);
    }
    scene_frame(&s, NULL, b);
    int changed = count_diff(a, b, 240, 0, 0, 240, 180);
    ck_assert_msg(changed > 100, "only %d pixels changed after 40 steps", changed);
    /* The overlay draws into the top-left corner and nowhere else. */
    crl_render_overlay ov;
    crl_render_overlay_init(&ov);
    ov.task = "push";
    ov.step = 40;
    ov.reward = 1.25;
    ov.ret = 30;
    ov.success = 0;
    scene_frame(&s, &ov, a);
    int corner = count_diff(a, b, 240, 0, 0, 80, 60);
    int rest = count_diff(a, b, 240, 160, 120, 240, 180);
    ck_assert_msg(corner > 150, "overlay changed %d corner pixels", corner);
    ck_assert_int_eq(rest, 0);
    free(a);
    free(b);
    scene_close(&s);
    cleanup();
}
END_TEST

START_TEST(test_render_errors) {
    setup();
    crl_env_spec *spec = NULL;
    crl_err err = {0};
    ck_assert(crl_env_spec_create("push", &spec, &err) == 0);
    crl_renderer *r = NULL;
    ck_assert_int_eq(crl_render_open(&r, crl_env_model(spec), 8, 8, &err), CRL_EINVAL);
    ck_assert(r == NULL);
    ck_assert(crl_render_open(&r, crl_env_model(spec), 64, 48, &err) == 0);
    crl_camera cam = {0};
    cam.mode = CRL_CAMERA_FIXED;
    cam.id = 7;
    ck_assert_int_eq(crl_render_set_camera(r, &cam, &err), CRL_EINVAL);
    ck_assert(strstr(err.msg, "camera 7") != NULL);
    cam.mode = CRL_CAMERA_TRACK;
    cam.id = 0;
    ck_assert_int_eq(crl_render_set_camera(r, &cam, &err), CRL_EINVAL);
    cam.mode = CRL_CAMERA_FREE;
    cam.azimuth = 45;
    cam.elevation = -30;
    ck_assert(crl_render_set_camera(r, &cam, &err) == 0);
    /* A viewer needs a source that can reset and step. */
    crl_viewer_source src = {NULL, NULL, NULL};
    ck_assert_int_eq(crl_viewer_run(crl_env_model(spec), &src, NULL, &err), CRL_EINVAL);
    crl_render_close(r);
    crl_env_spec_free(spec);
    cleanup();
}
END_TEST

static int dummy_reset(void *ctx, struct mjData_ **d) {
    *d = ctx;
    return 0;
}
static int dummy_step(void *ctx, struct mjData_ **d, crl_render_overlay *ov) {
    *d = ctx;
    return 1;
}

START_TEST(test_one_gl_platform_per_process) {
    setup();
    crl_env_spec *spec = NULL;
    crl_err err = {0};
    ck_assert(crl_env_spec_create("pendulum", &spec, &err) == 0);
    crl_renderer *r = NULL;
    ck_assert(crl_render_open(&r, crl_env_model(spec), 64, 48, &err) == 0);
    crl_viewer_source src = {NULL, dummy_reset, dummy_step};
    ck_assert_int_eq(crl_viewer_run(crl_env_model(spec), &src, NULL, &err), CRL_EINVAL);
    ck_assert_msg(strstr(err.msg, "offscreen") != NULL, "%s", err.msg);
    crl_render_close(r);
    crl_env_spec_free(spec);
    cleanup();
}
END_TEST

/* A window that could not open (no display) binds nothing: offscreen
 * frames still work in the same process. */
START_TEST(test_failed_window_leaves_offscreen) {
    setup();
    crl_env_spec *spec = NULL;
    crl_err err = {0};
    ck_assert(crl_env_spec_create("pendulum", &spec, &err) == 0);
    crl_viewer_source src = {NULL, dummy_reset, dummy_step};
    ck_assert_int_eq(crl_viewer_run(crl_env_model(spec), &src, NULL, &err), CRL_EIO);
    ck_assert_msg(strstr(err.msg, "DISPLAY is unset") != NULL, "%s", err.msg);
    crl_renderer *r = NULL;
    ck_assert_msg(crl_render_open(&r, crl_env_model(spec), 64, 48, &err) == 0, "%s",
                  err.msg);
    crl_render_close(r);
    crl_env_spec_free(spec);
    cleanup();
}
END_TEST

/* ---- the command line ------------------------------------------------------------ */

START_TEST(test_render_cli) {
    setup();
    char png[300];
    snprintf(png, sizeof png, "%s/hammer.png", dir);
    int code =
        RUN("render", "--task", "hammer", "-o", png, "--width", "200", "--height", "150");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    int w, h;
    png_size(png, &w, &h);
    ck_assert(w == 200 && h == 150);
    unsigned char *rgb = cairo_read(png, &w, &h);
    ck_assert_int_gt(distinct_colours(rgb, w * h), 20);
    free(rgb);
    expect_one_line_error(RUN("render", "--task", "nope", "-o", png), 2, "unknown task");
    expect_one_line_error(RUN("render", "--task", "push"), 2, "-o");
    expect_one_line_error(RUN("render", "--task", "push", "-o", png, "--width", "5"), 2,
                          "--width");
    cleanup();
}
END_TEST

START_TEST(test_view_without_display) {
    setup();
    expect_one_line_error(RUN("view", "--task", "push", "--max-steps", "10"), 1,
                          "DISPLAY");
    expect_one_line_error(RUN("view", "--task", "push", "--random", "--scripted"), 2,
                          "one of");
    expect_one_line_error(RUN("view", "--task", "halfcheetah", "--scripted"), 2,
                          "no scripted policy");
    expect_one_line_error(RUN("view", "--policy", "1"), 2, "--db");
    cleanup();
}
END_TEST

static int have_xvfb(void) {
    return access("/usr/bin/xvfb-run", X_OK) == 0;
}

/* xvfb-run -a [-s SCREEN] crl view ARGS...; returns the exit code. The
 * search for a free display starts at a number of our own, and a start that
 * lost the race for a display to another suite's Xvfb is retried. */
static int run_viewer_once(const char *screen, char *const *args);
static int run_viewer(const char *screen, char *const *args) {
    for (int attempt = 0;; attempt++) {
        int code = run_viewer_once(screen, args);
        if (code == 0 || attempt == 2 || !strstr(slurp(err_path), "Xvfb failed to start"))
            return code;
    }
}

static int run_viewer_once(const char *screen, char *const *args) {
    char *argv[48], num[16];
    int n = 0;
    snprintf(num, sizeof num, "%d", 200 + (int)(getpid() % 500) * 4);
    argv[n++] = "/usr/bin/xvfb-run";
    argv[n++] = "-a";
    argv[n++] = "-n";
    argv[n++] = num;
    if (screen) {
        argv[n++] = "-s";
        argv[n++] = (char *)screen;
    }
#ifdef __SANITIZE_ADDRESS__
    /* Mesa's software DRI driver leaks a few bytes and is unloaded when GLFW
     * closes the display, so LeakSanitizer reports them from an "unknown
     * module" that tests/lsan.supp cannot name. Keeping the driver loaded
     * (preloaded into crl only) lets the suppression see where they are. */
    static const char swrast[] = "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so";
    static char preload[128], asan[512];
    if (access(swrast, R_OK) == 0) {
        const char *a = getenv("ASAN_OPTIONS");
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", swrast);
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                 a ? a : "", a && *a ? ":" : "");
        argv[n++] = "/usr/bin/env";
        argv[n++] = preload;
        argv[n++] = asan;
    }
#endif
    argv[n++] = (char *)bin();
    argv[n++] = "view";
    for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
    argv[n] = NULL;
    return wait_code(spawn(argv));
}

START_TEST(test_viewer_under_xvfb) {
    setup();
    if (!have_xvfb()) {
        fprintf(stderr, "test_viewer_under_xvfb: SKIPPED: /usr/bin/xvfb-run is not "
                        "installed (Debian package xvfb)\n");
        return;
    }
    char shot[300];
    snprintf(shot, sizeof shot, "%s/shot.png", dir);
    setenv("CRL_VIEWER_SCREENSHOT", shot, 1);
    double t0 = crl_now();
    int code =
        run_viewer("-screen 0 800x600x24",
                   (char *const[]){"--task", "push", "--max-steps", "100", "--timeout",
                                   "90", "--width", "640", "--height", "480", NULL});
    unsetenv("CRL_VIEWER_SCREENSHOT");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    char *o = slurp(out_path);
    /* It closed on the step limit, not the timeout. */
    ck_assert_msg(strstr(o, "viewer closed: 100 steps") != NULL, "stdout: %s", o);
    ck_assert_msg(crl_now() - t0 < 80, "took %.0f s", crl_now() - t0);
    int w, h;
    png_size(shot, &w, &h);
    ck_assert(w == 640 && h == 480);
    unsigned char *rgb = cairo_read(shot, &w, &h);
    ck_assert_int_gt(distinct_colours(rgb, w * h), 20);
    ck_assert_int_gt(count_all(rgb, w, h, is_brown), w * h / 5);
    free(rgb);

    /* The timeout closes it too, with exit code 0. */
    t0 = crl_now();
    code = run_viewer(NULL, (char *const[]){"--task", "halfcheetah", "--random",
                                            "--timeout", "2", NULL});
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    ck_assert(strstr(slurp(out_path), "viewer closed") != NULL);
    ck_assert_msg(crl_now() - t0 < 40, "timeout 2 s took %.0f s", crl_now() - t0);

    /* Scripted keys through the keyboard handlers: pause at once, three
     * single steps, reset, one more step; cameras, help and overlay toggled;
     * speed x2 x2 x0.5; quit. Exactly 4 steps at 2x, closed by 'q'. */
    setenv("CRL_VIEWER_KEYS", "space,.,.,.,r,right,c,c,h,o,+,+,-,q", 1);
    code = run_viewer(NULL, (char *const[]){"--task", "push", "--timeout", "60", NULL});
    unsetenv("CRL_VIEWER_KEYS");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    o = slurp(out_path);
    ck_assert_msg(strstr(o, "viewer closed: 4 steps") != NULL, "stdout: %s", o);
    ck_assert_msg(strstr(o, "speed 2x") != NULL, "stdout: %s", o);
    cleanup();
}
END_TEST

/* crl view --policy: a run's checkpoint drives the window (a tiny run trained
 * here; the policy goes through the embedding API's export). */
START_TEST(test_view_policy) {
    setup();
    char db[300];
    snprintf(db, sizeof db, "%s/run.db", dir);
    int code = RUN("train", "--env", "pendulum", "--db", db, "--steps", "300", "--hidden",
                   "16", "--layers", "1", "--start-steps", "100", "--update-after", "100",
                   "--eval-every", "300", "--eval-episodes", "1", "--quiet");
    ck_assert_msg(code == 0, "train: exit %d: %s", code, slurp(err_path));
    expect_one_line_error(RUN("view", "--db", db, "--policy", "7"), 1, "run 7");
    expect_one_line_error(RUN("view", "--db", db, "--policy", "1:3"), 2, "task 3");
    expect_one_line_error(RUN("view", "--db", db, "--policy", "1", "--task", "push"), 2,
                          "observations");
    expect_one_line_error(RUN("view", "--db", db, "--policy", "x1"), 2, "RUN_ID");
    if (!have_xvfb()) {
        fprintf(stderr, "test_view_policy: window part SKIPPED: no xvfb-run\n");
        cleanup();
        return;
    }
    code =
        run_viewer(NULL, (char *const[]){"--db", db, "--policy", "1", "--max-steps", "30",
                                         "--speed", "8", "--timeout", "60", NULL});
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    ck_assert_msg(strstr(slurp(out_path), "viewer closed: 30 steps") != NULL, "%s",
                  slurp(out_path));
    cleanup();
}
END_TEST

/* ---- video ------------------------------------------------------------------------ */

static void write_script(const char *path, const char *body) {
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs(body, f);
    fclose(f);
    ck_assert(chmod(path, 0755) == 0);
}

START_TEST(test_video_through_ffmpeg) {
    setup();
    crl_err err = {0};
    char frames[300], mp4[300], bindir[300], script[400], args[300], body[1200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    snprintf(mp4, sizeof mp4, "%s/out.mp4", dir);
    snprintf(bindir, sizeof bindir, "%s/bin", dir);
    ck_assert(mkdir(frames, 0755) == 0 && mkdir(bindir, 0755) == 0);
    /* No ffmpeg on PATH: a clear error that says where the frames are. */
    setenv("PATH", bindir, 1);
    ck_assert(!crl_video_available());
    ck_assert_int_eq(crl_video_encode(frames, "frame_%05d.png", 25, mp4, &err),
                     CRL_ENOTFOUND);
    char want[400];
    snprintf(want, sizeof want, "ffmpeg not found; frames are in %s", frames);
    ck_assert_str_eq(err.msg, want);
    /* A stand-in ffmpeg: records its arguments, writes the output file. */
    snprintf(script, sizeof script, "%s/ffmpeg", bindir);
    snprintf(args, sizeof args, "%s/args", dir);
    snprintf(body, sizeof body,
             "#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\nfor last; do :; done\n"
             "echo video > \"$last\"\n",
             args);
    write_script(script, body);
    ck_assert(crl_video_available());
    ck_assert_msg(crl_video_encode(frames, "frame_%05d.png", 12, mp4, &err) == 0, "%s",
                  err.msg);
    ck_assert(access(mp4, F_OK) == 0);
    char *a = slurp(args);
    char in[400];
    snprintf(in, sizeof in, "\n%s/frame_%%05d.png\n", frames);
    ck_assert_msg(strstr(a, "-framerate\n12\n") != NULL, "%s", a);
    ck_assert_msg(strstr(a, in) != NULL, "%s", a);
    ck_assert_msg(strstr(a, "yuv420p") != NULL, "%s", a);
    /* A failing ffmpeg: its last message line is in the error. */
    write_script(script,
                 "#!/bin/sh\necho 'frame_%05d.png: No such file or directory' >&2\n"
                 "exit 1\n");
    ck_assert_int_eq(crl_video_encode(frames, "frame_%05d.png", 12, mp4, &err), CRL_EIO);
    ck_assert_msg(strstr(err.msg, "No such file or directory") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "frames are in") != NULL, "%s", err.msg);
    cleanup();
}
END_TEST

/* ---- plots ------------------------------------------------------------------------ */

/* Scenario t1 (push, window-close, hammer), 10k steps per task, evaluated
 * every 5k steps: 6 evaluations x 3 tasks per run. */
#define SPT    10000
#define EVERY  5000
#define N_EVAL 6

/* ft1 forgets: success 1 only for the task being trained (6 of 18 cells).
 * ewc remembers: 1 for every task trained so far. */
static double score(int method_ewc, int task, int train, int seed) {
    if (method_ewc) return task <= train ? 1.0 : 0.0;
    (void)seed;
    return task == train ? 1.0 : 0.0;
}

static void make_store(const char *path) {
    static const char *tasks[3] = {"push", "window-close", "hammer"};
    static const struct {
        const char *method;
        uint64_t seed;
    } runs[3] = {{"ft1", 1}, {"ft1", 2}, {"ewc", 1}};
    crl_store *st = NULL;
    crl_err err = {0};
    ck_assert_msg(crl_store_open(path, 1, &st, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 3; k++) {
        crl_kv kv[2] = {{"scenario", "t1", 0}, {"steps_per_task", NULL, SPT}};
        int64_t id;
        ck_assert(crl_store_run_create(st, runs[k].method, "t1", runs[k].seed, kv, 2, &id,
                                       &err) == 0);
        ck_assert_int_eq(id, k + 1);
        for (int i = 0; i < 3; i++) {
            ck_assert(crl_store_task_start(st, id, i, tasks[i], (int64_t)i * SPT, &err) ==
                      0);
            for (int e = 1; e <= 2; e++) {
                int64_t step = (int64_t)i * SPT + e * EVERY;
                for (int j = 0; j < 3; j++) {
                    crl_eval_row row = {id, step, i, j, 10, 0, 0, 0};
                    row.success_rate = score(k == 2, j, i, (int)runs[k].seed);
                    row.mean_return = 100 * row.success_rate;
                    row.det_return = row.mean_return;
                    ck_assert(crl_store_eval(st, &row, &err) == 0);
                }
            }
            ck_assert(crl_store_task_end(st, id, i, (int64_t)(i + 1) * SPT, &err) == 0);
        }
        ck_assert(crl_store_run_set_status(st, id, "finished", &err) == 0);
    }
    crl_store_close(st);
}

/* Pixels within tol of colour c. */
static int count_colour(const unsigned char *rgb, int n, int r, int g, int b, int tol) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += abs(rgb[3 * i] - r) <= tol && abs(rgb[3 * i + 1] - g) <= tol &&
             abs(rgb[3 * i + 2] - b) <= tol;
    return k;
}

/* The plot palette's first five colours, as 8-bit RGB. */
static const int PAL[5][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};

START_TEST(test_plots) {
    setup();
    char db[300], f[300];
    snprintf(db, sizeof db, "%s/runs.db", dir);
    make_store(db);
    int w, h, code;

    /* The Continual World figure: one line per evaluated task. */
    snprintf(f, sizeof f, "%s/curves.png", dir);
    code = RUN("plot", "--db", db, "--run", "1", "-o", f);
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    png_size(f, &w, &h);
    ck_assert(w == 1100 && h == 560);
    unsigned char *rgb = cairo_read(f, &w, &h);
    for (int i = 0; i < 3; i++) {
        int n = count_colour(rgb, w * h, PAL[i][0], PAL[i][1], PAL[i][2], 12);
        ck_assert_msg(n > 60, "task %d's colour: %d pixels", i, n);
    }
    ck_assert_int_lt(count_colour(rgb, w * h, PAL[4][0], PAL[4][1], PAL[4][2], 12), 5);
    free(rgb);

    /* The heatmap: a third of ft1's cells are 1 (yellow), the rest 0 (purple). */
    snprintf(f, sizeof f, "%s/matrix.png", dir);
    code = RUN("plot", "--db", db, "--run", "1", "--kind", "matrix", "-o", f, "--width",
               "900");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    rgb = cairo_read(f, &w, &h);
    ck_assert_int_eq(w, 900);
    int yellow = count_colour(rgb, w * h, 253, 231, 37, 8),
        purple = count_colour(rgb, w * h, 68, 1, 84, 8);
    double frac = (double)yellow / (yellow + purple);
    ck_assert_msg(yellow + purple > 20000, "%d + %d cell pixels", yellow, purple);
    ck_assert_msg(fabs(frac - 1.0 / 3) < 0.04, "yellow fraction %.3f, want 1/3", frac);
    free(rgb);
    /* ewc's matrix: 12 of 18 cells are 1. */
    code = RUN("plot", "--db", db, "--run", "3", "--kind", "matrix", "-o", f);
    ck_assert_int_eq(code, 0);
    rgb = cairo_read(f, &w, &h);
    yellow = count_colour(rgb, w * h, 253, 231, 37, 8);
    purple = count_colour(rgb, w * h, 68, 1, 84, 8);
    frac = (double)yellow / (yellow + purple);
    ck_assert_msg(fabs(frac - 2.0 / 3) < 0.04, "yellow fraction %.3f, want 2/3", frac);
    free(rgb);

    /* Methods side by side, PNG at a requested size and SVG. */
    snprintf(f, sizeof f, "%s/compare.png", dir);
    code = RUN("plot", "--db", db, "--kind", "compare", "--scenario", "t1", "-o", f,
               "--width", "1000", "--height", "500");
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    png_size(f, &w, &h);
    ck_assert(w == 1000 && h == 500);
    rgb = cairo_read(f, &w, &h);
    ck_assert_int_gt(count_colour(rgb, w * h, PAL[0][0], PAL[0][1], PAL[0][2], 12), 60);
    ck_assert_int_gt(count_colour(rgb, w * h, PAL[1][0], PAL[1][1], PAL[1][2], 12), 60);
    free(rgb);
    snprintf(f, sizeof f, "%s/compare.svg", dir);
    code = RUN("plot", "--db", db, "--kind", "compare", "--scenario", "t1", "-o", f);
    ck_assert_msg(code == 0, "exit %d: %s", code, slurp(err_path));
    char *svg = slurp_all(f);
    ck_assert(strncmp(svg, "<?xml", 5) == 0 || strncmp(svg, "<svg", 4) == 0);
    ck_assert(strstr(svg, "<svg") != NULL && strstr(svg, "</svg>") != NULL);
    ck_assert_msg(strstr(svg, "width=\"1400") != NULL, "%.300s", svg);
    free(svg);
    snprintf(f, sizeof f, "%s/curves.svg", dir);
    ck_assert_int_eq(RUN("plot", "--db", db, "--run", "2", "-o", f), 0);
    svg = slurp_all(f);
    ck_assert(strstr(svg, "</svg>") != NULL);
    free(svg);

    /* Bad requests: one line each. */
    expect_one_line_error(RUN("plot", "--db", db, "--run", "99", "-o", f), 1, "99");
    snprintf(f, sizeof f, "%s/x.pdf", dir);
    expect_one_line_error(RUN("plot", "--db", db, "--run", "1", "-o", f), 2,
                          ".png or .svg");
    expect_one_line_error(RUN("plot", "--db", db, "--kind", "compare", "-o", f), 2,
                          "--scenario");
    expect_one_line_error(
        RUN("plot", "--db", db, "--kind", "bogus", "--run", "1", "-o", f), 2,
        "unknown plot kind");
    snprintf(f, sizeof f, "%s/c.png", dir);
    expect_one_line_error(
        RUN("plot", "--db", db, "--kind", "compare", "--scenario", "cw10", "-o", f), 1,
        "no finished runs");
    ck_assert(access(f, F_OK) != 0); /* no half-written file left behind */
    cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("viz");
    TCase *tc = tcase_create("viz");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_render_manipulation);
    tcase_add_test(tc, test_render_halfcheetah);
    tcase_add_test(tc, test_task_framing);
    tcase_add_test(tc, test_frames_of_two_steps_differ);
    tcase_add_test(tc, test_render_errors);
    tcase_add_test(tc, test_one_gl_platform_per_process);
    tcase_add_test(tc, test_failed_window_leaves_offscreen);
    tcase_add_test(tc, test_render_cli);
    tcase_add_test(tc, test_view_without_display);
    tcase_add_test(tc, test_viewer_under_xvfb);
    tcase_add_test(tc, test_view_policy);
    tcase_add_test(tc, test_video_through_ffmpeg);
    tcase_add_test(tc, test_plots);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
