/* crl viz: looking at simulations and runs.
 *
 * Two parts, neither of which changes what it looks at:
 *  - headless offscreen frames of a MuJoCo scene (OSMesa, no X display),
 *    written as PNG with cairo and encoded to MP4 by an installed ffmpeg;
 *  - a GLFW window driven by callbacks, shared by `crl view` (a live policy)
 *    and `crl replay --view` (a logged episode).
 * Plots of a run store are analysis/'s (plot.h).
 *
 * MuJoCo 2.2 resolves its OpenGL entry points once per process, from the
 * first GL platform it finds. So a process uses either offscreen frames or
 * the window, not both: the second kind returns CRL_EINVAL with a message
 * saying so. See docs/viz.md. */
#ifndef CRL_VIZ_H
#define CRL_VIZ_H

#include <stdint.h>

#include "base.h"
#include "env.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mjModel_;
struct mjData_;

/* Text drawn into a frame's top-left corner. Every field is optional. */
typedef struct {
    const char *task; /* task name; NULL = not shown */
    int64_t step;     /* env step within the episode; < 0 = not shown */
    double reward;    /* reward of the last step (shown with step >= 0) */
    double ret;       /* episode return so far (shown with step >= 0) */
    int success;      /* 1 yes, 0 no, < 0 not shown (locomotion) */
    int episode;      /* episode index; < 0 = not shown */
    const char *text; /* one more free line (e.g. "run 3, checkpoint 120000") */
} crl_render_overlay;

/* An overlay that shows nothing: step, success, episode = -1, rest zero. */
void crl_render_overlay_init(crl_render_overlay *ov);

/* Camera. A zeroed struct is CRL_CAMERA_AUTO: the model's first fixed camera
 * when it has one (the task models define a framing camera), else a free
 * camera that looks at the whole model. */
typedef enum {
    CRL_CAMERA_AUTO = 0,
    CRL_CAMERA_FIXED = 1, /* the model's camera `id` */
    CRL_CAMERA_FREE = 2,  /* orbit around lookat */
    CRL_CAMERA_TRACK = 3  /* orbit around body `id`, following it */
} crl_camera_mode;

typedef struct {
    crl_camera_mode mode;
    int id;           /* FIXED: camera index; TRACK: body index */
    double lookat[3]; /* FREE, used when distance > 0 */
    double distance;  /* FREE, TRACK; <= 0 = from the model's extent (and for
                         FREE the lookat is the model's centre) */
    double azimuth;   /* FREE, TRACK: degrees */
    double elevation; /* FREE, TRACK: degrees (negative looks down) */
} crl_camera;

/* The camera a picture of task s starts with: its own framing as a free
 * camera (crl_env_view) when it has one, else CRL_CAMERA_AUTO. */
void crl_camera_for_task(const crl_env_spec *s, crl_camera *cam);

/* ---- headless frames -------------------------------------------------- */

typedef struct crl_renderer crl_renderer;

/* An offscreen renderer of width x height pixels for model m (which must
 * outlive it). Needs no X display: the GL context is OSMesa's, loaded at run
 * time (libOSMesa.so.8). CRL_EINVAL for sizes outside [16, 4096] or after a
 * window was opened in this process; CRL_ENOTFOUND if libOSMesa is not
 * installed (message names the Debian package); CRL_EMUJOCO if the context
 * cannot be made; CRL_ENOMEM. Not thread-safe: one renderer per thread. */
int crl_render_open(crl_renderer **out, const struct mjModel_ *m, int width, int height,
                    crl_err *err);
/* Replace the camera (default: CRL_CAMERA_AUTO). CRL_EINVAL for a fixed
 * camera or body index the model does not have. */
int crl_render_set_camera(crl_renderer *r, const crl_camera *cam, crl_err *err);
/* Render d's current state (mj_forward or mj_step must have run) with ov
 * (may be NULL) drawn on it into rgb: width * height * 3 bytes, RGB, top row
 * first. d is not modified. CRL_EMUJOCO if GL reports an error. */
int crl_render_frame(crl_renderer *r, struct mjData_ *d, const crl_render_overlay *ov,
                     unsigned char *rgb, crl_err *err);
void crl_render_size(const crl_renderer *r, int *width, int *height);
/* Free the renderer and its context. Safe with NULL. */
void crl_render_close(crl_renderer *r);

/* Write an RGB image (w * h * 3 bytes, top row first) as an 8-bit PNG.
 * CRL_EINVAL for bad sizes, CRL_EIO if the file cannot be written. */
int crl_png_write(const char *path, const unsigned char *rgb, int w, int h, crl_err *err);
/* Read a PNG back as RGB (alpha dropped). *rgb is malloc'd; caller frees.
 * CRL_EIO (missing or unreadable file), CRL_ECORRUPT (not a PNG). */
int crl_png_read(const char *path, unsigned char **rgb, int *w, int *h, crl_err *err);

/* Encode frames_dir/pattern (printf pattern of the frame number from 0, e.g.
 * "frame_%05d.png") at fps into an H.264 MP4 with the ffmpeg on PATH.
 * CRL_ENOTFOUND "ffmpeg not found; frames are in DIR" when there is none;
 * CRL_EIO (with ffmpeg's last output line) if it fails. */
int crl_video_encode(const char *frames_dir, const char *pattern, int fps,
                     const char *mp4_path, crl_err *err);
/* 1 if an ffmpeg executable is on PATH. */
int crl_video_available(void);

/* ---- the window ------------------------------------------------------- */

/* What the viewer shows. The viewer owns no physics: it asks the source. */
typedef struct {
    void *ctx;
    /* Start (or restart) an episode; set *d to the state to draw. 0 ok,
     * negative crl status to stop the viewer with that error. */
    int (*reset)(void *ctx, struct mjData_ **d);
    /* Advance one env step; set *d and fill ov (task, step, reward, ...).
     * Returns 1 while the episode runs, 0 at its end, negative on error. */
    int (*step)(void *ctx, struct mjData_ **d, crl_render_overlay *ov);
} crl_viewer_source;

/* What a viewer session did (filled on return when opts.stats is set). */
typedef struct {
    int64_t steps;  /* env steps taken */
    int episodes;   /* episodes that reached their end */
    int frames;     /* frames drawn */
    double seconds; /* wall time the window was open */
    double speed;   /* speed multiplier at the end */
} crl_viewer_stats;

typedef struct {
    const char *title;       /* window title; NULL = "crl" */
    int width, height;       /* window size; 0 = 1024 x 768 */
    double fps;              /* env steps per second at speed 1x (real time is
                                1 / (timestep * frame_skip)); <= 0 = 25 */
    double speed;            /* initial speed multiplier; <= 0 = 1 */
    int paused;              /* start paused */
    int episodes;            /* play this many episodes then close; 0 = until closed */
    int64_t max_steps;       /* close after this many env steps in total; 0 = no limit.
                                The environment variable CRL_VIEWER_EXIT_AFTER (a
                                number) sets it when this is 0 (tests, scripts). */
    double timeout_s;        /* close after this many seconds; 0 = no limit.
                                CRL_VIEWER_TIMEOUT sets it when this is 0. */
    crl_camera camera;       /* initial camera; zeroed = CRL_CAMERA_AUTO */
    const char *info;        /* one more overlay line shown in every frame, or NULL */
    const char *screenshot;  /* write the last frame shown to this PNG on close;
                                NULL = CRL_VIEWER_SCREENSHOT, if set */
    crl_viewer_stats *stats; /* may be NULL */
    const char *keys;        /* scripted key presses, one per drawn frame, comma
                                separated: space . right + - r backspace c h o q esc
                                (tests, demos); NULL = CRL_VIEWER_KEYS, if set */
} crl_viewer_opts;

/* Defaults: everything above at its "0 = default" value, camera AUTO. */
void crl_viewer_opts_default(crl_viewer_opts *o);

/* Open a window on m and play src until the user closes it (Escape, q or the
 * window's close button), opts.episodes / max_steps are reached, or the
 * timeout fires. Keys: space play/pause, right arrow or '.' one step (when
 * paused), + / - speed x2 / x0.5, backspace or r reset the episode, c cycle
 * cameras (fixed ones, then free), h hide the overlay. Mouse: left drag
 * orbit, right drag pan, wheel zoom (switches to the free camera).
 * Returns 0 on a normal close. CRL_EIO if no display can be opened (message
 * says DISPLAY is unset), CRL_EINVAL after offscreen frames were rendered in
 * this process, or the source's own negative status. Blocks; main thread. */
int crl_viewer_run(const struct mjModel_ *m, const crl_viewer_source *src,
                   const crl_viewer_opts *o, crl_err *err);

#ifdef __cplusplus
}
#endif
#endif
