/* viz internals shared by the offscreen renderer and the window. */
#ifndef CRL_VIZ_INTERNAL_H
#define CRL_VIZ_INTERNAL_H

#include <mujoco/mujoco.h>
#include <stddef.h>

#include "crl/viz.h"

/* Which GL platform MuJoCo's entry points were resolved for. MuJoCo 2.2
 * resolves them once per process (mjGladLoadGL keeps a static result), from
 * the first GL platform library it finds, so offscreen (OSMesa) and window
 * (GLX through GLFW) rendering cannot share a process: the first one claims
 * it and the other gets CRL_EINVAL. This is the only process-wide state of
 * viz, and it mirrors MuJoCo's own. */
enum { VIZ_GL_OSMESA = 1, VIZ_GL_WINDOW = 2 };
int viz_gl_claim(int platform, crl_err *err);
/* MuJoCo bound its entry points (mjr_makeContext ran): the claim is final. */
void viz_gl_bound(void);
/* Give a claim back after opening failed before any mjr_makeContext, so the
 * other kind stays possible; does nothing once bound. */
void viz_gl_release(int platform);

/* Apply cam to an mjvCamera for model m. CRL_EINVAL for an index the model
 * does not have. */
int viz_camera_apply(const mjModel *m, const crl_camera *cam, mjvCamera *out,
                     crl_err *err);

/* The overlay's two columns (titles, values), newline-separated, for
 * mjr_overlay. extra (may be NULL) adds one more line. Returns the number of
 * lines (0: nothing to draw). */
int viz_overlay_text(const crl_render_overlay *ov, const char *extra, char *titles,
                     char *values, size_t cap);

/* MuJoCo font scale for a viewport height. */
int viz_font_scale(int height);

#endif
