/* viz: headless offscreen frames through OSMesa.
 *
 * libOSMesa is opened at run time with RTLD_LOCAL instead of being linked:
 * its OSMesaGetProcAddress then never sits in the global symbol table, so a
 * process that opens a GLFW window is not steered to OSMesa by MuJoCo's GL
 * loader (which looks for global EGL, then OSMesa, then GLX symbols before it
 * looks at the loaded libraries), and training does not need the library at
 * all. docs/viz.md has the whole story. */
#include <GL/osmesa.h>
#include <dlfcn.h>
#include <mujoco/mujoco.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz/internal.h"

typedef OSMesaContext (*create_fn)(GLenum, GLint, GLint, GLint, OSMesaContext);
typedef GLboolean (*make_current_fn)(OSMesaContext, void *, GLenum, GLsizei, GLsizei);
typedef void (*destroy_fn)(OSMesaContext);

static struct {
    pthread_once_t once;
    void *lib; /* never closed: MuJoCo keeps pointers into it */
    create_fn create;
    make_current_fn make_current;
    destroy_fn destroy;
    char why[256];
} osm = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL, ""};

static void osm_load(void) {
    static const char *names[] = {"libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !osm.lib; i++)
        osm.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!osm.lib) {
        snprintf(osm.why, sizeof osm.why,
                 "offscreen rendering needs libOSMesa (Debian package libosmesa6)");
        return;
    }
    /* POSIX guarantees data and function pointers convert through dlsym. */
    *(void **)&osm.create = dlsym(osm.lib, "OSMesaCreateContextExt");
    *(void **)&osm.make_current = dlsym(osm.lib, "OSMesaMakeCurrent");
    *(void **)&osm.destroy = dlsym(osm.lib, "OSMesaDestroyContext");
    if (!osm.create || !osm.make_current || !osm.destroy)
        snprintf(osm.why, sizeof osm.why, "libOSMesa lacks the OSMesa 11 entry points");
}

struct crl_renderer {
    const mjModel *m;
    int w, h;
    OSMesaContext ctx;
    unsigned char *fb; /* the context's own buffer; MuJoCo draws into its FBO */
    unsigned char *flip;
    mjvScene scn;
    mjvCamera cam;
    mjvOption opt;
    mjrContext con;
    int have_scene, have_con;
};

static int make_current(crl_renderer *r, crl_err *err) {
    if (!osm.make_current(r->ctx, r->fb, GL_UNSIGNED_BYTE, r->w, r->h))
        return crl_errf(err, CRL_EMUJOCO, "OSMesaMakeCurrent failed");
    return CRL_OK;
}

int crl_render_open(crl_renderer **out, const mjModel *m, int width, int height,
                    crl_err *err) {
    *out = NULL;
    if (!m) return crl_errf(err, CRL_EINVAL, "render: no model");
    if (width < 16 || width > 4096 || height < 16 || height > 4096)
        return crl_errf(err, CRL_EINVAL, "render: size %dx%d outside 16..4096", width,
                        height);
    pthread_once(&osm.once, osm_load);
    if (osm.why[0]) return crl_errf(err, CRL_ENOTFOUND, "%s", osm.why);
    int rc = viz_gl_claim(VIZ_GL_OSMESA, err);
    if (rc) return rc;

    crl_renderer *r = calloc(1, sizeof *r);
    if (!r) {
        viz_gl_release(VIZ_GL_OSMESA);
        return crl_errf(err, CRL_ENOMEM, "render: out of memory");
    }
    r->m = m;
    r->w = width;
    r->h = height;
    r->fb = malloc((size_t)width * height * 4);
    r->flip = malloc((size_t)width * height * 3);
    if (!r->fb || !r->flip) {
        crl_render_close(r);
        viz_gl_release(VIZ_GL_OSMESA);
        return crl_errf(err, CRL_ENOMEM, "render: out of memory");
    }
    r->ctx = osm.create(OSMESA_RGBA, 24, 8, 0, NULL);
    if (!r->ctx) rc = crl_errf(err, CRL_EMUJOCO, "render: OSMesaCreateContextExt failed");
    if (rc || (rc = make_current(r, err))) {
        crl_render_close(r);
        viz_gl_release(VIZ_GL_OSMESA); /* MuJoCo has not bound GL yet */
        return rc;
    }
    mjv_defaultScene(&r->scn);
    mjv_defaultOption(&r->opt);
    mjr_defaultContext(&r->con);
    mjv_makeScene(m, &r->scn, 4000);
    r->have_scene = 1;
    /* The offscreen buffer's size comes from the model's visual settings:
     * make the context from a shallow copy that asks for at least our size
     * (mjr_makeContext only reads the model). */
    mjModel sized = *m;
    if (sized.vis.global.offwidth < width) sized.vis.global.offwidth = width;
    if (sized.vis.global.offheight < height) sized.vis.global.offheight = height;
    mjr_makeContext(&sized, &r->con, viz_font_scale(height));
    viz_gl_bound();
    r->have_con = 1;
    mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
    if (r->con.currentBuffer != mjFB_OFFSCREEN || r->con.offWidth < width ||
        r->con.offHeight < height) {
        crl_render_close(r);
        return crl_errf(err, CRL_EMUJOCO, "render: no %dx%d offscreen buffer", width,
                        height);
    }
    if ((rc = viz_camera_apply(m, NULL, &r->cam, err))) {
        crl_render_close(r);
        return rc;
    }
    *out = r;
    return CRL_OK;
}

int crl_render_set_camera(crl_renderer *r, const crl_camera *cam, crl_err *err) {
    mjvCamera c;
    int rc = viz_camera_apply(r->m, cam, &c, err);
    if (rc) return rc;
    r->cam = c;
    return CRL_OK;
}

void crl_render_size(const crl_renderer *r, int *width, int *height) {
    *width = r->w;
    *height = r->h;
}

int crl_render_frame(crl_renderer *r, mjData *d, const crl_render_overlay *ov,
                     unsigned char *rgb, crl_err *err) {
    int rc = make_current(r, err);
    if (rc) return rc;
    mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
    mjrRect vp = {0, 0, r->w, r->h};
    mjv_updateScene(r->m, d, &r->opt, NULL, &r->cam, mjCAT_ALL, &r->scn);
    mjr_render(vp, &r->scn, &r->con);
    char titles[1024], values[1024];
    if (viz_overlay_text(ov, NULL, titles, values, sizeof titles) > 0)
        mjr_overlay(mjFONT_NORMAL, mjGRID_TOPLEFT, vp, titles, values, &r->con);
    mjr_readPixels(r->flip, NULL, vp, &r->con);
    /* GL's rows run bottom-up; callers get the top row first. */
    size_t row = (size_t)r->w * 3;
    for (int y = 0; y < r->h; y++)
        memcpy(rgb + (size_t)y * row, r->flip + (size_t)(r->h - 1 - y) * row, row);
    return CRL_OK;
}

void crl_render_close(crl_renderer *r) {
    if (!r) return;
    if (r->ctx && r->fb) osm.make_current(r->ctx, r->fb, GL_UNSIGNED_BYTE, r->w, r->h);
    if (r->have_con) mjr_freeContext(&r->con);
    if (r->have_scene) mjv_freeScene(&r->scn);
    /* Release the context before destroying it (Mesa keeps the current
     * one's framebuffer otherwise). */
    if (r->ctx) osm.make_current(NULL, NULL, 0, 0, 0);
    if (r->ctx) osm.destroy(r->ctx);
    free(r->fb);
    free(r->flip);
    free(r);
}
