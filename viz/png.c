/* viz: PNG files through cairo. */
#include <cairo.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crl/viz.h"

/* cairo's stream callback into an atomic output file (base.h). */
static cairo_status_t atomic_sink(void *closure, const unsigned char *data,
                                  unsigned int n) {
    return crl_atomic_write(closure, data, n) ? CAIRO_STATUS_WRITE_ERROR
                                              : CAIRO_STATUS_SUCCESS;
}

int crl_png_write(const char *path, const unsigned char *rgb, int w, int h,
                  crl_err *err) {
    if (!path || !rgb || w < 1 || h < 1 || w > 32767 || h > 32767)
        return crl_errf(err, CRL_EINVAL, "png: bad image (%dx%d)", w, h);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return crl_errf(err, CRL_ENOMEM, "png: cannot make a %dx%d image", w, h);
    }
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < h; y++) {
        uint32_t *dst = (uint32_t *)(void *)(data + (size_t)y * stride);
        const unsigned char *src = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            dst[x] = (uint32_t)src[3 * x] << 16 | (uint32_t)src[3 * x + 1] << 8 |
                     src[3 * x + 2];
    }
    cairo_surface_mark_dirty(s);
    /* A temporary file in path's folder, renamed when complete: a failed
     * write (a full disk) leaves no file and an existing one untouched. */
    crl_atomic a;
    int rc = crl_atomic_open(&a, path, err);
    if (rc) {
        cairo_surface_destroy(s);
        return rc;
    }
    cairo_status_t st = cairo_surface_write_to_png_stream(s, atomic_sink, &a);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS && !a.error) {
        crl_atomic_abort(&a);
        return crl_errf(err, CRL_EIO, "cannot write %s: %s", path,
                        cairo_status_to_string(st));
    }
    return crl_atomic_commit(&a, err); /* reports a failed write's reason */
}

int crl_png_read(const char *path, unsigned char **rgb, int *w, int *h, crl_err *err) {
    *rgb = NULL;
    *w = *h = 0;
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cairo_status_t st = cairo_surface_status(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        if (st == CAIRO_STATUS_FILE_NOT_FOUND || st == CAIRO_STATUS_READ_ERROR)
            return crl_errf(err, CRL_EIO, "cannot read %s: %s", path,
                            cairo_status_to_string(st));
        return crl_errf(err, CRL_ECORRUPT, "%s is not a PNG: %s", path,
                        cairo_status_to_string(st));
    }
    cairo_format_t fmt = cairo_image_surface_get_format(s);
    int iw = cairo_image_surface_get_width(s), ih = cairo_image_surface_get_height(s);
    if (fmt != CAIRO_FORMAT_RGB24 && fmt != CAIRO_FORMAT_ARGB32) {
        /* Grey or palette PNGs: let cairo convert them. */
        cairo_surface_t *c = cairo_image_surface_create(CAIRO_FORMAT_RGB24, iw, ih);
        cairo_t *cr = cairo_create(c);
        cairo_set_source_surface(cr, s, 0, 0);
        cairo_paint(cr);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
        s = c;
        fmt = CAIRO_FORMAT_RGB24;
    }
    unsigned char *out = malloc((size_t)iw * ih * 3);
    if (!out) {
        cairo_surface_destroy(s);
        return crl_errf(err, CRL_ENOMEM, "png: out of memory");
    }
    cairo_surface_flush(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < ih; y++) {
        const uint32_t *src = (const uint32_t *)(const void *)(data + (size_t)y * stride);
        unsigned char *dst = out + (size_t)y * iw * 3;
        for (int x = 0; x < iw; x++) {
            uint32_t p = src[x];
            unsigned a = fmt == CAIRO_FORMAT_ARGB32 ? p >> 24 : 255;
            for (int c = 0; c < 3; c++) {
                unsigned v = (p >> (16 - 8 * c)) & 0xff;
                /* ARGB32 is premultiplied: undo it (transparent -> black). */
                if (a != 255) v = a ? (v * 255 + a / 2) / a : 0;
                dst[3 * x + c] = (unsigned char)(v > 255 ? 255 : v);
            }
        }
    }
    cairo_surface_destroy(s);
    *rgb = out;
    *w = iw;
    *h = ih;
    return CRL_OK;
}
