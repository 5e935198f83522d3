/* Policy file writer (layout: docs/policy-format.md) and the CRC-32 both
 * sides use. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embed/format.h"

/* ---- CRC-32 ------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1u ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t crl_pf_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* ---- output buffer -------------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int bad;
} obuf;

static unsigned char *grow(obuf *b, size_t n) {
    if (b->bad) return NULL;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return NULL;
        }
        b->p = q;
        b->cap = cap;
    }
    unsigned char *at = b->p + b->n;
    b->n += n;
    return at;
}

static void put_u32(obuf *b, uint32_t v) {
    unsigned char *p = grow(b, 4);
    if (p) pol_put_u32(p, v);
}
static void put_u64(obuf *b, uint64_t v) {
    unsigned char *p = grow(b, 8);
    if (p) pol_put_u64(p, v);
}
static void put_f32(obuf *b, float v) {
    put_u32(b, pol_f32_bits(v));
}
static void put_f32s(obuf *b, const float *x, size_t n) {
    unsigned char *p = grow(b, 4 * n);
    if (p)
        for (size_t i = 0; i < n; i++) pol_put_u32(p + 4 * i, pol_f32_bits(x[i]));
}
static void put_str(obuf *b, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n > POL_MAX_STR) n = POL_MAX_STR;
    unsigned char *p = grow(b, 2 + n);
    if (!p) return;
    pol_put_u16(p, (uint16_t)n);
    if (n) memcpy(p + 2, s, n);
}

/* A section: tag, version, u64 length patched by end_section. */
static size_t begin_section_v(obuf *b, const char tag[4], uint32_t version) {
    unsigned char *p = grow(b, POL_SECTION_HEAD);
    if (!p) return 0;
    memcpy(p, tag, 4);
    pol_put_u32(p + 4, version);
    pol_put_u64(p + 8, 0);
    return b->n;
}
static size_t begin_section(obuf *b, const char tag[4]) {
    return begin_section_v(b, tag, 1);
}
static void end_section(obuf *b, size_t start) {
    if (!b->bad) pol_put_u64(b->p + start - 8, (uint64_t)(b->n - start));
}

int crl_pf_write(const crl_pf_desc *d, unsigned char **out, size_t *n, crl_err *err) {
    *out = NULL;
    *n = 0;
    if (d->n_tasks < 1 || d->n_tasks > POL_MAX_TASKS || d->n_nets < 1 ||
        d->n_nets > POL_MAX_NETS || !d->mlp)
        return crl_errf(err, CRL_EINVAL, "policy file: %d tasks, %d networks", d->n_tasks,
                        d->n_nets);
    const crl_mlp *m = d->mlp;
    const crl_mlp_spec *s = &m->spec;
    obuf b = {0};
    int sections = 0;

    unsigned char *h = grow(&b, POL_HEADER_SIZE);
    if (h) {
        memset(h, 0, POL_HEADER_SIZE);
        memcpy(h, POL_MAGIC, POL_MAGIC_LEN);
        pol_put_u32(h + 8, 1); /* format version */
        pol_put_u32(h + 12, POL_HEADER_SIZE);
        /* 16: file size, 24: section count, patched below; 28: flags 0 */
        strncpy((char *)h + 32, CRL_VERSION_STRING, 15);
    }

    size_t at = begin_section(&b, "META");
    put_u32(&b, (uint32_t)d->method);
    put_u32(&b, (uint32_t)d->n_tasks);
    put_u32(&b, (uint32_t)d->n_nets);
    put_u32(&b, 0);
    put_u64(&b, (uint64_t)d->run_id);
    put_u64(&b, (uint64_t)d->step);
    put_u64(&b, d->seed);
    put_str(&b, d->method_name);
    put_str(&b, d->scenario);
    end_section(&b, at);
    sections++;

    for (int i = 0; i < d->n_nets; i++) {
        at = begin_section(&b, "NET ");
        put_u32(&b, (uint32_t)s->in_dim);
        put_u32(&b, (uint32_t)s->out_dim);
        put_u32(&b, (uint32_t)s->n_heads);
        put_u32(&b, (uint32_t)s->n_hidden);
        for (int k = 0; k < s->n_hidden; k++) put_u32(&b, (uint32_t)s->hidden[k]);
        put_u32(&b, (uint32_t)s->layernorm_first);
        put_u32(&b, (uint32_t)s->first_act);
        put_u32(&b, (uint32_t)s->act);
        put_f32(&b, s->lrelu_slope);
        put_f32(&b, s->ln_eps);
        put_u32(&b, POL_HEAD_TANH_GAUSSIAN);
        put_u64(&b, (uint64_t)m->n_params);
        put_f32s(&b, d->net_params[i], m->n_params);
        end_section(&b, at);
        sections++;
    }

    if (d->method == POL_METHOD_PACKNET) {
        at = begin_section(&b, "PKNT");
        put_u32(&b, 0);
        put_u32(&b, (uint32_t)d->pk_task);
        put_u32(&b, (uint32_t)d->pk_tasks);
        put_u32(&b, 0);
        put_u64(&b, (uint64_t)m->n_params);
        unsigned char *p = grow(&b, 2 * m->n_params);
        if (p)
            for (size_t i = 0; i < m->n_params; i++)
                pol_put_u16(p + 2 * i, (uint16_t)d->pk_owner[i]);
        end_section(&b, at);
        sections++;
    }

    if (d->method == POL_METHOD_CSP) {
        at = begin_section(&b, "CSPT");
        put_u32(&b, (uint32_t)d->n_nets);
        put_u32(&b, (uint32_t)d->n_tasks);
        put_u32(&b, 0);
        put_u32(&b, 0);
        put_f32s(&b, d->csp_alpha, (size_t)d->n_tasks * (size_t)d->n_nets);
        end_section(&b, at);
        sections++;
    }

    if (d->method == POL_METHOD_L2M) {
        /* Version 2 only when the routing needs it: a run routing on one
         * observation writes the bytes older readers know. */
        const int v2 = d->l2m_history > 1 || d->l2m_hold;
        /* Version 3 only for routes older readers do not know (arrow). */
        const int v3 = d->l2m_route == POL_ROUTE_ARROW;
        at = begin_section_v(&b, "L2MP", v3 ? 3 : v2 ? 2 : 1);
        put_u32(&b, 0);
        put_u32(&b, (uint32_t)d->l2m_kind);
        put_u32(&b, (uint32_t)d->l2m_M);
        put_u32(&b, (uint32_t)d->l2m_rank);
        put_f32(&b, d->l2m_scale);
        put_u32(&b, (uint32_t)d->l2m_route);
        put_u32(&b, (uint32_t)d->l2m_route_tasks);
        put_u32(&b, 0);
        if (v2 || v3) {
            put_u32(&b, (uint32_t)(d->l2m_history > 1 ? d->l2m_history : 1));
            put_u32(&b, d->l2m_hold ? 1u : 0u);
        }
        put_u64(&b, (uint64_t)d->l2m_n_params);
        put_f32s(&b, d->l2m_params, d->l2m_n_params);
        end_section(&b, at);
        sections++;
    }

    for (int i = 0; i < d->n_tasks; i++) {
        const crl_pf_task *t = &d->tasks[i];
        at = begin_section(&b, "TASK");
        put_u32(&b, (uint32_t)t->net);
        put_u32(&b, (uint32_t)t->head);
        put_u32(&b, (uint32_t)t->view);
        put_u32(&b, (uint32_t)t->position);
        put_u32(&b, (uint32_t)t->env_kind);
        put_u32(&b, (uint32_t)t->obs_dim);
        put_u32(&b, (uint32_t)t->act_dim);
        put_u32(&b, (uint32_t)t->frame_skip);
        put_u32(&b, (uint32_t)t->max_steps);
        put_str(&b, t->name);
        put_str(&b, t->modifiers ? t->modifiers : "{}");
        put_u32(&b, (uint32_t)t->norm);
        if (t->norm == POL_NORM_AFFINE) {
            put_f32s(&b, t->shift, (size_t)t->obs_dim);
            put_f32s(&b, t->scale, (size_t)t->obs_dim);
        }
        for (int k = 0; k < t->act_dim; k++) put_f32(&b, -1.0f);
        for (int k = 0; k < t->act_dim; k++) put_f32(&b, 1.0f);
        end_section(&b, at);
        sections++;
    }

    if (d->info) {
        at = begin_section(&b, "info");
        size_t len = strlen(d->info);
        unsigned char *p = grow(&b, len);
        if (p) memcpy(p, d->info, len);
        end_section(&b, at);
        sections++;
    }

    unsigned char *t = grow(&b, POL_TRAILER);
    if (b.bad || !t) {
        free(b.p);
        return crl_errf(err, CRL_ENOMEM, "policy file: out of memory");
    }
    pol_put_u64(b.p + 16, (uint64_t)b.n);
    pol_put_u32(b.p + 24, (uint32_t)sections);
    pol_put_u32(t, crl_pf_crc32(0, b.p, b.n - POL_TRAILER));
    *out = b.p;
    *n = b.n;
    return CRL_OK;
}
