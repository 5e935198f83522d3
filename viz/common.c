/* viz: what the offscreen renderer and the window share. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "viz/internal.h"

static atomic_int gl_platform; /* see internal.h: mirrors MuJoCo's own static */
static atomic_int gl_bound;

int viz_gl_claim(int platform, crl_err *err) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&gl_platform, &expected, platform)) return CRL_OK;
    if (expected == platform) return CRL_OK;
    return crl_errf(err, CRL_EINVAL,
                    "%s rendering is not available in a process that already used %s "
                    "rendering (MuJoCo 2.2 binds its OpenGL entry points once per "
                    "process); run them as separate commands",
                    platform == VIZ_GL_OSMESA ? "offscreen" : "window",
                    expected == VIZ_GL_OSMESA ? "offscreen" : "window");
}

void viz_gl_bound(void) {
    atomic_store(&gl_bound, 1);
}

void viz_gl_release(int platform) {
    if (atomic_load(&gl_bound)) return;
    int expected = platform;
    atomic_compare_exchange_strong(&gl_platform, &expected, 0);
}

void crl_render_overlay_init(crl_render_overlay *ov) {
    memset(ov, 0, sizeof *ov);
    ov->step = -1;
    ov->success = -1;
    ov->episode = -1;
}

void crl_camera_for_task(const crl_env_spec *s, crl_camera *cam) {
    memset(cam, 0, sizeof *cam);
    double v[6];
    if (!crl_env_view(s, v)) return;
    cam->mode = CRL_CAMERA_FREE;
    for (int k = 0; k < 3; k++) cam->lookat[k] = v[k];
    cam->distance = v[3];
    cam->azimuth = v[4];
    cam->elevation = v[5];
}

int viz_camera_apply(const mjModel *m, const crl_camera *cam, mjvCamera *out,
                     crl_err *err) {
    mjv_defaultFreeCamera(m, out);
    crl_camera_mode mode = cam ? cam->mode : CRL_CAMERA_AUTO;
    switch (mode) {
    case CRL_CAMERA_AUTO:
        if (m->ncam > 0) {
            out->type = mjCAMERA_FIXED;
            out->fixedcamid = 0;
        }
        return CRL_OK;
    case CRL_CAMERA_FIXED:
        if (cam->id < 0 || cam->id >= m->ncam)
            return crl_errf(err, CRL_EINVAL, "camera %d: the model has %d fixed camera%s",
                            cam->id, m->ncam, m->ncam == 1 ? "" : "s");
        out->type = mjCAMERA_FIXED;
        out->fixedcamid = cam->id;
        return CRL_OK;
    case CRL_CAMERA_FREE:
    case CRL_CAMERA_TRACK:
        if (mode == CRL_CAMERA_TRACK) {
            if (cam->id < 1 || cam->id >= m->nbody)
                return crl_errf(err, CRL_EINVAL,
                                "track body %d: the model's bodies are 1..%d", cam->id,
                                m->nbody - 1);
            out->type = mjCAMERA_TRACKING;
            out->trackbodyid = cam->id;
        } else if (cam->distance > 0) {
            for (int i = 0; i < 3; i++) out->lookat[i] = cam->lookat[i];
        }
        if (cam->distance > 0) out->distance = cam->distance;
        out->azimuth = cam->azimuth;
        out->elevation = cam->elevation;
        return CRL_OK;
    }
    return crl_errf(err, CRL_EINVAL, "unknown camera mode %d", (int)mode);
}

/* Append "title\n" and "value\n" lines; keeps both strings NUL-terminated. */
static int add_line(char *titles, char *values, size_t cap, const char *t,
                    const char *v) {
    size_t nt = strlen(titles), nv = strlen(values);
    if (nt + strlen(t) + 2 >= cap || nv + strlen(v) + 2 >= cap) return 0;
    snprintf(titles + nt, cap - nt, "%s%s", nt ? "\n" : "", t);
    snprintf(values + nv, cap - nv, "%s%s", nv ? "\n" : "", v);
    return 1;
}

int viz_overlay_text(const crl_render_overlay *ov, const char *extra, char *titles,
                     char *values, size_t cap) {
    char buf[128];
    int n = 0;
    titles[0] = values[0] = '\0';
    if (ov && ov->task) n += add_line(titles, values, cap, "task", ov->task);
    if (ov && ov->episode >= 0) {
        snprintf(buf, sizeof buf, "%d", ov->episode);
        n += add_line(titles, values, cap, "episode", buf);
    }
    if (ov && ov->step >= 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)ov->step);
        n += add_line(titles, values, cap, "step", buf);
        snprintf(buf, sizeof buf, "%.3f", ov->reward);
        n += add_line(titles, values, cap, "reward", buf);
        snprintf(buf, sizeof buf, "%.2f", ov->ret);
        n += add_line(titles, values, cap, "return", buf);
    }
    if (ov && ov->success >= 0)
        n += add_line(titles, values, cap, "success", ov->success ? "yes" : "no");
    if (ov && ov->text) n += add_line(titles, values, cap, "", ov->text);
    if (extra) n += add_line(titles, values, cap, "", extra);
    return n;
}

int viz_font_scale(int height) {
    if (height < 300) return mjFONTSCALE_50;
    if (height < 600) return mjFONTSCALE_100;
    if (height < 1100) return mjFONTSCALE_150;
    return mjFONTSCALE_200;
}
