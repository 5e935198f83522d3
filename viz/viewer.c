/* viz: the GLFW window. The viewer owns no physics: a crl_viewer_source
 * resets and steps, the viewer decides when (play, pause, single step,
 * speed), draws, and moves the camera. */
#include <GLFW/glfw3.h>
#include <dlfcn.h>
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz/internal.h"

#define SPEED_MIN  (1.0 / 64)
#define SPEED_MAX  64.0
#define END_HOLD_S 1.0 /* wall seconds an ended episode stays on screen at 1x */

typedef struct {
    const mjModel *m;
    const crl_viewer_source *src;
    const crl_viewer_opts *o;
    mjData *d;
    mjvScene scn;
    mjvCamera cam;
    mjvOption opt;
    mjrContext con;
    crl_render_overlay ov;
    int cam_index; /* fixed camera shown, or -1 for the free/tracking camera */
    int paused, step_req, reset_req, quit, show_overlay, show_help;
    double speed;
    int ended;       /* the current episode has ended */
    double end_wait; /* wall seconds left before the next episode */
    int episodes;    /* episodes finished */
    int64_t steps;   /* env steps taken in total */
    double budget;   /* env steps owed at the current speed */
    int status;      /* first error of the source */
    int frames;      /* frames drawn */
    int left, right, middle;
    double mx, my;
} viewer;

/* GLFW reports errors through a process-wide callback; the viewer runs on the
 * main thread only, so one buffer holds the last message. */
static char glfw_last_error[256];
static void on_glfw_error(int code, const char *desc) {
    snprintf(glfw_last_error, sizeof glfw_last_error, "%s (GLFW error 0x%x)", desc, code);
}

void crl_viewer_opts_default(crl_viewer_opts *o) {
    memset(o, 0, sizeof *o);
}

/* Switch from a fixed camera to a free one that starts from the same view,
 * so a mouse drag continues from what the user sees. */
static void to_free_camera(viewer *v) {
    if (v->cam.type != mjCAMERA_FIXED) return;
    const mjvGLCamera *g = &v->scn.camera[0];
    double f[3] = {g->forward[0], g->forward[1], g->forward[2]};
    double p[3] = {g->pos[0], g->pos[1], g->pos[2]};
    /* Look at the point of the view ray closest to the model's centre. */
    double c[3], t = 0;
    for (int i = 0; i < 3; i++) t += (v->m->stat.center[i] - p[i]) * f[i];
    if (t < 0.1 * v->m->stat.extent) t = v->m->stat.extent;
    for (int i = 0; i < 3; i++) c[i] = p[i] + t * f[i];
    mjv_defaultFreeCamera(v->m, &v->cam);
    v->cam.type = mjCAMERA_FREE;
    for (int i = 0; i < 3; i++) v->cam.lookat[i] = c[i];
    v->cam.distance = t;
    v->cam.azimuth = atan2(f[1], f[0]) * 180.0 / M_PI;
    v->cam.elevation = asin(f[2] < -1 ? -1 : f[2] > 1 ? 1 : f[2]) * 180.0 / M_PI;
    v->cam_index = -1;
}

/* Fixed cameras in order, then the free camera, then the first fixed one. */
static void cycle_camera(viewer *v) {
    if (v->cam_index >= 0 && v->cam_index + 1 < v->m->ncam) {
        v->cam.fixedcamid = ++v->cam_index;
    } else if (v->cam_index >= 0) {
        to_free_camera(v);
    } else if (v->m->ncam > 0) {
        v->cam.type = mjCAMERA_FIXED;
        v->cam.fixedcamid = v->cam_index = 0;
    }
}

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods) {
    viewer *v = glfwGetWindowUserPointer(w);
    if (action == GLFW_RELEASE) return;
    switch (key) {
    case GLFW_KEY_SPACE:
        v->paused = !v->paused;
        break;
    case GLFW_KEY_RIGHT:
        v->paused = 1;
        v->step_req++;
        break;
    case GLFW_KEY_BACKSPACE:
    case GLFW_KEY_R:
        v->reset_req = 1;
        break;
    case GLFW_KEY_C:
        if (action == GLFW_PRESS) cycle_camera(v);
        break;
    case GLFW_KEY_H:
        if (action == GLFW_PRESS) v->show_help = !v->show_help;
        break;
    case GLFW_KEY_O:
        if (action == GLFW_PRESS) v->show_overlay = !v->show_overlay;
        break;
    case GLFW_KEY_KP_ADD:
        v->speed = fmin(SPEED_MAX, v->speed * 2);
        break;
    case GLFW_KEY_KP_SUBTRACT:
        v->speed = fmax(SPEED_MIN, v->speed / 2);
        break;
    case GLFW_KEY_ESCAPE:
    case GLFW_KEY_Q:
        v->quit = 1;
        break;
    default:
        break;
    }
}

/* Characters, so '+', '-' and '.' work whatever the keyboard layout. */
static void on_char(GLFWwindow *w, unsigned int c) {
    viewer *v = glfwGetWindowUserPointer(w);
    if (c == '+' || c == '=') v->speed = fmin(SPEED_MAX, v->speed * 2);
    if (c == '-' || c == '_') v->speed = fmax(SPEED_MIN, v->speed / 2);
    if (c == '.') {
        v->paused = 1;
        v->step_req++;
    }
}

static void on_button(GLFWwindow *w, int button, int action, int mods) {
    viewer *v = glfwGetWindowUserPointer(w);
    int down = action == GLFW_PRESS;
    if (button == GLFW_MOUSE_BUTTON_LEFT) v->left = down;
    if (button == GLFW_MOUSE_BUTTON_RIGHT) v->right = down;
    if (button == GLFW_MOUSE_BUTTON_MIDDLE) v->middle = down;
    glfwGetCursorPos(w, &v->mx, &v->my);
}

static void on_cursor(GLFWwindow *w, double x, double y) {
    viewer *v = glfwGetWindowUserPointer(w);
    double dx = x - v->mx, dy = y - v->my;
    v->mx = x;
    v->my = y;
    if (!v->left && !v->right && !v->middle) return;
    int width, height;
    glfwGetWindowSize(w, &width, &height);
    if (height < 1) return;
    int shift = glfwGetKey(w, GLFW_KEY_LEFT_SHIFT) == GLFW_PRESS ||
                glfwGetKey(w, GLFW_KEY_RIGHT_SHIFT) == GLFW_PRESS;
    int action = v->right  ? (shift ? mjMOUSE_MOVE_H : mjMOUSE_MOVE_V)
                 : v->left ? (shift ? mjMOUSE_ROTATE_H : mjMOUSE_ROTATE_V)
                           : mjMOUSE_ZOOM;
    to_free_camera(v);
    mjv_moveCamera(v->m, action, dx / height, dy / height, &v->scn, &v->cam);
}

static void on_scroll(GLFWwindow *w, double xoff, double yoff) {
    viewer *v = glfwGetWindowUserPointer(w);
    to_free_camera(v);
    mjv_moveCamera(v->m, mjMOUSE_ZOOM, 0, -0.05 * yoff, &v->scn, &v->cam);
}

static int do_reset(viewer *v) {
    crl_render_overlay_init(&v->ov);
    int rc = v->src->reset(v->src->ctx, &v->d);
    if (rc < 0) {
        v->status = rc;
        v->quit = 1;
        return rc;
    }
    v->ended = 0;
    v->budget = 0;
    return 0;
}

/* One env step; handles the episode end and the step limit. */
static void do_step(viewer *v) {
    int rc = v->src->step(v->src->ctx, &v->d, &v->ov);
    if (rc < 0) {
        v->status = rc;
        v->quit = 1;
        return;
    }
    v->steps++;
    if (rc == 0) {
        v->ended = 1;
        v->episodes++;
        v->end_wait = END_HOLD_S;
        if (v->o->episodes > 0 && v->episodes >= v->o->episodes) v->quit = 1;
    }
    if (v->o->max_steps > 0 && v->steps >= v->o->max_steps) v->quit = 1;
}

static void draw(viewer *v, GLFWwindow *w, int swap) {
    int fw, fh;
    glfwGetFramebufferSize(w, &fw, &fh);
    mjrRect vp = {0, 0, fw, fh};
    mjv_updateScene(v->m, v->d, &v->opt, NULL, &v->cam, mjCAT_ALL, &v->scn);
    mjr_setBuffer(mjFB_WINDOW, &v->con);
    mjr_render(vp, &v->scn, &v->con);
    if (v->show_overlay) {
        char titles[1024], values[1024];
        if (viz_overlay_text(&v->ov, v->o->info, titles, values, sizeof titles) > 0)
            mjr_overlay(mjFONT_NORMAL, mjGRID_TOPLEFT, vp, titles, values, &v->con);
        char state[96];
        snprintf(state, sizeof state, "%s%s  %gx  %s", v->ended ? "episode over, " : "",
                 v->paused ? "paused" : "playing", v->speed,
                 v->cam_index >= 0 ? "fixed camera" : "free camera");
        mjr_overlay(mjFONT_NORMAL, mjGRID_TOPRIGHT, vp, state, NULL, &v->con);
    }
    if (!v->show_help && v->show_overlay)
        mjr_overlay(mjFONT_NORMAL, mjGRID_BOTTOMLEFT, vp, "h: keys", NULL, &v->con);
    if (v->show_help)
        mjr_overlay(
            mjFONT_NORMAL, mjGRID_BOTTOMLEFT, vp,
            "space\n. or right\n+ / -\nr or backspace\nc\nmouse\no / h\nq or "
            "esc",
            "play / pause\none step\nspeed x2 / x0.5\nreset episode\ncycle "
            "cameras\norbit, pan (right), zoom (wheel)\noverlay / this help\nquit",
            &v->con);
    glfwSwapBuffers(w);
}

/* Draw once more and save what the window shows (front buffer after the
 * swap is not readable everywhere, so render into the back buffer and read
 * it before swapping). */
static int screenshot(viewer *v, GLFWwindow *w, const char *path, crl_err *err) {
    int fw, fh;
    glfwGetFramebufferSize(w, &fw, &fh);
    if (fw < 1 || fh < 1) return crl_errf(err, CRL_EIO, "screenshot: empty window");
    unsigned char *raw = malloc((size_t)fw * fh * 3), *rgb = malloc((size_t)fw * fh * 3);
    int rc = CRL_OK;
    if (!raw || !rgb) {
        rc = crl_errf(err, CRL_ENOMEM, "screenshot: out of memory");
    } else {
        mjrRect vp = {0, 0, fw, fh};
        draw(v, w, 0);
        mjr_readPixels(raw, NULL, vp, &v->con);
        size_t row = (size_t)fw * 3;
        for (int y = 0; y < fh; y++)
            memcpy(rgb + y * row, raw + (size_t)(fh - 1 - y) * row, row);
        rc = crl_png_write(path, rgb, fw, fh, err);
    }
    free(raw);
    free(rgb);
    return rc;
}

/* Feed the next scripted key (see crl_viewer_opts.keys) through the same
 * handlers as the keyboard. *p walks the string. */
static void scripted_key(GLFWwindow *w, const char **p) {
    static const struct {
        const char *name;
        int key;
        unsigned ch;
    } keys[] = {{"space", GLFW_KEY_SPACE, 0},
                {"right", GLFW_KEY_RIGHT, 0},
                {"backspace", GLFW_KEY_BACKSPACE, 0},
                {"esc", GLFW_KEY_ESCAPE, 0},
                {"r", GLFW_KEY_R, 0},
                {"c", GLFW_KEY_C, 0},
                {"h", GLFW_KEY_H, 0},
                {"o", GLFW_KEY_O, 0},
                {"q", GLFW_KEY_Q, 0},
                {".", 0, '.'},
                {"+", 0, '+'},
                {"-", 0, '-'}};
    const char *s = *p;
    if (!s || !*s) return;
    size_t n = strcspn(s, ",");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i].name) == n && !strncmp(s, keys[i].name, n)) {
            if (keys[i].key) on_key(w, keys[i].key, 0, GLFW_PRESS, 0);
            if (keys[i].ch) on_char(w, keys[i].ch);
        }
    *p = s[n] ? s + n + 1 : s + n;
}

static double env_number(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    double x = strtod(s, &end);
    return (*end == '\0' && x > 0 && isfinite(x)) ? x : 0;
}

int crl_viewer_run(const mjModel *m, const crl_viewer_source *src,
                   const crl_viewer_opts *o, crl_err *err) {
    if (!m || !src || !src->reset || !src->step)
        return crl_errf(err, CRL_EINVAL,
                        "viewer: a model and a source with reset and step are required");
    crl_viewer_opts eff;
    if (o)
        eff = *o;
    else
        crl_viewer_opts_default(&eff);
    if (eff.max_steps <= 0) eff.max_steps = (int64_t)env_number("CRL_VIEWER_EXIT_AFTER");
    if (eff.timeout_s <= 0) eff.timeout_s = env_number("CRL_VIEWER_TIMEOUT");
    if (eff.fps <= 0) eff.fps = 25;
    int width = eff.width > 0 ? eff.width : 1024,
        height = eff.height > 0 ? eff.height : 768;

    int rc = viz_gl_claim(VIZ_GL_WINDOW, err);
    if (rc) return rc;
    glfw_last_error[0] = '\0';
    glfwSetErrorCallback(on_glfw_error);
    if (!glfwInit()) {
        viz_gl_release(VIZ_GL_WINDOW); /* nothing was bound: offscreen stays possible */
        const char *disp = getenv("DISPLAY");
        if (!disp || !*disp)
            return crl_errf(err, CRL_EIO,
                            "cannot open a window: DISPLAY is unset (no X server; run "
                            "under xvfb-run, or write frames headless instead)");
        return crl_errf(err, CRL_EIO, "cannot open a window on display %s: %s", disp,
                        glfw_last_error[0] ? glfw_last_error : "glfwInit failed");
    }
    glfwWindowHint(GLFW_SAMPLES, 4);
    GLFWwindow *win =
        glfwCreateWindow(width, height, eff.title ? eff.title : "crl", NULL, NULL);
    if (!win) {
        glfwTerminate();
        viz_gl_release(VIZ_GL_WINDOW);
        return crl_errf(err, CRL_EIO, "cannot create a window: %s",
                        glfw_last_error[0] ? glfw_last_error : "unknown GLFW error");
    }
    /* MuJoCo keeps the GL entry points it resolved for the whole process,
     * but glfwTerminate unloads libGL: hold one reference of our own so a
     * second window in this process does not call into an unloaded library
     * (never released, on purpose). Only now that GLFW has loaded it: a
     * libGL loaded without a window would steer MuJoCo's loader to GLX. */
    static void *libgl;
    if (!libgl) libgl = dlopen("libGL.so.1", RTLD_LAZY | RTLD_LOCAL);
    glfwMakeContextCurrent(win);
    glfwSwapInterval(1);

    viewer *v = calloc(1, sizeof *v);
    if (!v) {
        glfwDestroyWindow(win);
        glfwTerminate();
        return crl_errf(err, CRL_ENOMEM, "viewer: out of memory");
    }
    v->m = m;
    v->src = src;
    v->o = &eff;
    v->paused = eff.paused;
    v->speed = eff.speed > 0 ? fmin(SPEED_MAX, fmax(SPEED_MIN, eff.speed)) : 1;
    v->show_overlay = 1;
    v->show_help = 0;
    mjv_defaultScene(&v->scn);
    mjv_defaultOption(&v->opt);
    mjr_defaultContext(&v->con);
    mjv_makeScene(m, &v->scn, 4000);
    int fbw, fbh;
    glfwGetFramebufferSize(win, &fbw, &fbh);
    mjr_makeContext(m, &v->con, viz_font_scale(fbh));
    viz_gl_bound();
    if ((rc = viz_camera_apply(m, &eff.camera, &v->cam, err)) == 0) {
        v->cam_index = v->cam.type == mjCAMERA_FIXED ? v->cam.fixedcamid : -1;
        glfwSetWindowUserPointer(win, v);
        glfwSetKeyCallback(win, on_key);
        glfwSetCharCallback(win, on_char);
        glfwSetMouseButtonCallback(win, on_button);
        glfwSetCursorPosCallback(win, on_cursor);
        glfwSetScrollCallback(win, on_scroll);
        do_reset(v);
    }

    const char *script = eff.keys ? eff.keys : getenv("CRL_VIEWER_KEYS");
    double t_start = crl_now(), t_last = t_start;
    while (rc == 0 && !v->quit && !glfwWindowShouldClose(win)) {
        glfwPollEvents();
        scripted_key(win, &script);
        double now = crl_now(), dt = now - t_last;
        t_last = now;
        if (eff.timeout_s > 0 && now - t_start >= eff.timeout_s) break;
        if (v->reset_req) {
            v->reset_req = 0;
            do_reset(v);
        }
        if (!v->quit && v->ended && !v->paused) {
            v->end_wait -= dt * v->speed;
            if (v->end_wait <= 0) do_reset(v);
        }
        if (!v->quit && !v->ended) {
            if (v->paused) {
                if (v->step_req > 0) do_step(v);
            } else {
                /* Steps owed at this speed; never more than 50 ms of stepping
                 * per frame, so a slow policy lowers the rate, not the
                 * responsiveness. */
                v->budget = fmin(v->budget + dt * eff.fps * v->speed, 1e4);
                double t_cap = crl_now() + 0.05;
                while (v->budget >= 1 && !v->ended && !v->quit) {
                    do_step(v);
                    v->budget -= 1;
                    if (crl_now() > t_cap) {
                        v->budget = fmin(v->budget, 1);
                        break;
                    }
                }
            }
        }
        v->step_req = 0;
        if (v->d) {
            draw(v, win, 1);
            v->frames++;
        }
    }
    rc = rc ? rc : v->status;
    if (eff.stats) {
        eff.stats->steps = v->steps;
        eff.stats->episodes = v->episodes;
        eff.stats->frames = v->frames;
        eff.stats->seconds = crl_now() - t_start;
        eff.stats->speed = v->speed;
    }
    const char *shot = eff.screenshot ? eff.screenshot : getenv("CRL_VIEWER_SCREENSHOT");
    if (rc == 0 && shot && *shot && v->d) rc = screenshot(v, win, shot, err);
    if (rc < 0 && err && err->code == 0)
        crl_errf(err, rc, "viewer: the source failed (%s)", crl_strerror(rc));
    mjr_freeContext(&v->con);
    mjv_freeScene(&v->scn);
    free(v);
    glfwDestroyWindow(win);
    glfwTerminate();
    return rc;
}
