/* Growable write buffer and bounds-checked read cursor for checkpoint blobs
 * (private to crl). Host byte order: crl checkpoints are read back by the
 * machine kind that wrote them; the exported policy format (issue 8) is the
 * one with a fixed byte order. */
#ifndef CRL_CORE_BLOB_H
#define CRL_CORE_BLOB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crl/base.h"

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int bad; /* an allocation failed: everything after it was dropped */
} crl_wbuf;

static inline void crl_wbuf_put(crl_wbuf *w, const void *src, size_t n) {
    if (w->bad || n == 0) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1 << 16;
        while (cap < w->n + n) cap *= 2;
        unsigned char *q = realloc(w->p, cap);
        if (!q) {
            w->bad = 1;
            return;
        }
        w->p = q;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

typedef struct {
    const unsigned char *p;
    size_t n, off;
    int bad; /* a read ran past the end: everything after it reads nothing */
} crl_rbuf;

/* Pointer to the next n bytes, or NULL (and bad) past the end. */
static inline const void *crl_rbuf_take(crl_rbuf *r, size_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const void *q = r->p + r->off;
    r->off += n;
    return q;
}

static inline void crl_rbuf_get(crl_rbuf *r, void *dst, size_t n) {
    const void *q = crl_rbuf_take(r, n);
    if (q) memcpy(dst, q, n);
}

/* A generator: its state, whether it holds a spare normal, the spare. */
static inline void crl_wbuf_put_rng(crl_wbuf *w, const crl_rng *g) {
    int32_t hs = g->has_spare;
    crl_wbuf_put(w, g->s, sizeof g->s);
    crl_wbuf_put(w, &hs, 4);
    crl_wbuf_put(w, &g->spare, 8);
}

static inline void crl_rbuf_get_rng(crl_rbuf *r, crl_rng *g) {
    int32_t hs = 0;
    crl_rbuf_get(r, g->s, sizeof g->s);
    crl_rbuf_get(r, &hs, 4);
    crl_rbuf_get(r, &g->spare, 8);
    g->has_spare = hs;
}

/* Little-endian fixed-width fields at p, for record layouts that must read
 * the same on any host (episode records, env state snapshots). */
static inline void crl_le_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t crl_le_get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline void crl_le_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint64_t crl_le_get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
