/* The policy loader and the acting code (include/crl/policy.h). The file
 * layout is docs/policy-format.md; every size read from a file is checked
 * against the bytes that are actually there before anything is allocated
 * from it. Acting reuses the training code's forward pass (crl_mlp_forward,
 * crl_tgauss_forward), packnet's view (crl_packnet_view's rule, written
 * once in nn/packnet.h), CSP's subspace forward (crl_subspace_forward) and L2M's
 * modulated forward (crl_pool_forward), so actions are the training code's
 * bit for bit. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crl/router.h"
#include "crl/blas.h"
#include "embed/format.h"
#include "embed/internal.h"
#include "nn/packnet.h"

/* ---- errors ---------------------------------------------------------------------- */

int pol_fail(char *errbuf, size_t errlen, int code, const char *fmt, ...) {
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int pol_set_err(crl_policy *p, int code, const char *fmt, ...) {
    if (p) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof p->err, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- the shared core --------------------------------------------------------------- */

static void core_free(pol_core *c) {
    if (!c) return;
    for (int i = 0; c->nets && i < c->n_nets; i++) free(c->nets[i].params);
    for (int i = 0; c->tasks && i < c->n_tasks; i++) {
        pol_task *t = &c->tasks[i];
        free(t->name);
        free(t->modifiers);
        free(t->shift);
        free(t->scale);
        free(t->act_lo);
        free(t->act_hi);
        crl_env_spec_free(t->spec);
    }
    free(c->nets);
    free(c->tasks);
    free(c->views);
    free(c->sub_params);
    free(c->alpha);
    free(c->pool_params);
    crl_actor_free(c->actor);
    free(c->method_name);
    free(c->scenario);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void pol_core_ref(pol_core *c) {
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void pol_core_unref(pol_core *c) {
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) core_free(c);
}

/* ---- reading
 * --------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t n, off;
    int bad;
} rd;

static const unsigned char *take(rd *r, size_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *q = r->p + r->off;
    r->off += n;
    return q;
}
static uint32_t rd_u32(rd *r) {
    const unsigned char *q = take(r, 4);
    return q ? pol_get_u32(q) : 0;
}
static int32_t rd_i32(rd *r) {
    return (int32_t)rd_u32(r);
}
static uint64_t rd_u64(rd *r) {
    const unsigned char *q = take(r, 8);
    return q ? pol_get_u64(q) : 0;
}
static float rd_f32(rd *r) {
    return pol_bits_f32(rd_u32(r));
}
static size_t left(const rd *r) {
    return r->bad ? 0 : r->n - r->off;
}

/* A length-prefixed string as a malloc'd C string; NULL with *rc set on a
 * bad or missing one. */
static char *rd_str(rd *r, const char *what, char *eb, size_t el, int *rc) {
    const unsigned char *q = take(r, 2);
    size_t n = q ? pol_get_u16(q) : 0;
    const unsigned char *s = q ? take(r, n) : NULL;
    if (!s || n > POL_MAX_STR || memchr(s, 0, n)) {
        *rc = pol_fail(eb, el, CRL_ECORRUPT, "%s: truncated or invalid", what);
        return NULL;
    }
    char *out = malloc(n + 1);
    if (!out) {
        *rc = pol_fail(eb, el, CRL_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static int rd_f32s(rd *r, float *out, size_t n, int finite) {
    const unsigned char *q = take(r, 4 * n);
    if (!q) return -1;
    for (size_t i = 0; i < n; i++) {
        out[i] = pol_bits_f32(pol_get_u32(q + 4 * i));
        if (finite && !isfinite(out[i])) return (int)1;
    }
    return 0;
}

/* Network weights: finite, and |w| <= CRL_POLICY_MAX_WEIGHT (policy.h). 0, or
 * 1 + the index of the first bad one with *bad its value. */
static size_t rd_weights(rd *r, float *out, size_t n, float *bad) {
    const unsigned char *q = take(r, 4 * n);
    if (!q) return (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        out[i] = pol_bits_f32(pol_get_u32(q + 4 * i));
        if (!(fabsf(out[i]) <= CRL_POLICY_MAX_WEIGHT)) { /* also NaN */
            *bad = out[i];
            return i + 1;
        }
    }
    return 0;
}

typedef struct {
    char tag[5];
    uint32_t version;
    const unsigned char *p;
    size_t n;
} section;

static int is_known(const char *tag) {
    return !strcmp(tag, "META") || !strcmp(tag, "NET ") || !strcmp(tag, "TASK") ||
           !strcmp(tag, "PKNT") || !strcmp(tag, "CSPT") || !strcmp(tag, "L2MP");
}

/* ---- sections
 * -------------------------------------------------------------------------------- */

#define BAD(...) pol_fail(eb, el, CRL_ECORRUPT, __VA_ARGS__)

static int parse_meta(pol_core *c, const section *s, char *eb, size_t el) {
    rd r = {s->p, s->n, 0, 0};
    uint32_t method = rd_u32(&r), nt = rd_u32(&r), nn = rd_u32(&r);
    rd_u32(&r);
    c->run_id = (int64_t)rd_u64(&r);
    c->step = (int64_t)rd_u64(&r);
    c->seed = rd_u64(&r);
    if (r.bad) return BAD("META section truncated");
    if (method < POL_METHOD_PLAIN || method > POL_METHOD_L2M)
        return BAD("unknown method tag %u", method);
    if (nt < 1 || nt > POL_MAX_TASKS)
        return BAD("%u tasks (must be 1..%d)", nt, POL_MAX_TASKS);
    if (nn < 1 || nn > POL_MAX_NETS)
        return BAD("%u networks (must be 1..%d)", nn, POL_MAX_NETS);
    if (method == POL_METHOD_CSP && nn > POL_MAX_ANCHORS)
        return BAD("CSP with %u anchor networks (at most %d)", nn, POL_MAX_ANCHORS);
    if (method != POL_METHOD_FTN && method != POL_METHOD_CSP && nn != 1)
        return BAD("method tag %u with %u networks (needs exactly 1)", method, nn);
    c->method = (int)method;
    c->n_tasks = (int)nt;
    c->n_nets = (int)nn;
    int rc = CRL_OK;
    if (!(c->method_name = rd_str(&r, "META method name", eb, el, &rc))) return rc;
    if (!(c->scenario = rd_str(&r, "META scenario", eb, el, &rc))) return rc;
    if (left(&r)) return BAD("META section has %zu bytes too many", left(&r));
    return CRL_OK;
}

static int parse_net(pol_net *net, const section *s, int idx, char *eb, size_t el) {
    rd r = {s->p, s->n, 0, 0};
    crl_mlp_spec sp;
    memset(&sp, 0, sizeof sp);
    uint32_t in = rd_u32(&r), out = rd_u32(&r), heads = rd_u32(&r), nh = rd_u32(&r);
    if (r.bad) return BAD("network %d: section truncated", idx);
    if (in < 1 || in > POL_MAX_DIM || out < 2 || out > POL_MAX_DIM || out % 2)
        return BAD("network %d: input %u / output %u out of range (1..%d, output even)",
                   idx, in, out, POL_MAX_DIM);
    if (heads < 1 || heads > POL_MAX_HEADS)
        return BAD("network %d: %u heads (must be 1..%d)", idx, heads, POL_MAX_HEADS);
    if (nh < 1 || nh > CRL_MLP_MAX_HIDDEN)
        return BAD("network %d: %u hidden layers (must be 1..%d)", idx, nh,
                   CRL_MLP_MAX_HIDDEN);
    sp.in_dim = (int)in;
    sp.out_dim = (int)out;
    sp.n_heads = (int)heads;
    sp.n_hidden = (int)nh;
    for (uint32_t k = 0; k < nh; k++) {
        uint32_t w = rd_u32(&r);
        if (!r.bad && (w < 1 || w > POL_MAX_DIM))
            return BAD("network %d: hidden layer %u has width %u (must be 1..%d)", idx, k,
                       w, POL_MAX_DIM);
        sp.hidden[k] = (int)w;
    }
    uint32_t ln = rd_u32(&r), a1 = rd_u32(&r), a = rd_u32(&r);
    sp.lrelu_slope = rd_f32(&r);
    sp.ln_eps = rd_f32(&r);
    uint32_t head_kind = rd_u32(&r);
    uint64_t np = rd_u64(&r);
    if (r.bad) return BAD("network %d: section truncated", idx);
    if (ln > 1 || a1 > CRL_ACT_LRELU || a > CRL_ACT_LRELU || !isfinite(sp.lrelu_slope) ||
        !isfinite(sp.ln_eps))
        return BAD("network %d: unknown layer options", idx);
    if (head_kind != POL_HEAD_TANH_GAUSSIAN)
        return BAD("network %d: unknown output head %u", idx, head_kind);
    sp.layernorm_first = (int)ln;
    sp.first_act = (crl_act)a1;
    sp.act = (crl_act)a;
    crl_err err;
    if (crl_mlp_init(&net->mlp, &sp, &err)) return BAD("network %d: %s", idx, err.msg);
    /* Widths <= 65536, <= 8 layers, <= 4096 heads: n_params < 2^45, no
     * overflow; and the floats must all be in this section. */
    if (np != net->mlp.n_params || left(&r) != 4 * np)
        return BAD("network %d: %llu parameters in %zu bytes, its shape has %zu", idx,
                   (unsigned long long)np, left(&r), net->mlp.n_params);
    net->params = malloc(4 * np);
    if (!net->params) return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    float w = 0;
    size_t f = rd_weights(&r, net->params, np, &w);
    if (f)
        return BAD("network %d: parameter %zu is %g (a weight must not be NaN or "
                   "infinite, and |w| <= %g)",
                   idx, f - 1, (double)w, (double)CRL_POLICY_MAX_WEIGHT);
    return CRL_OK;
}

static int same_shape(const crl_mlp *a, const crl_mlp *b) {
    const crl_mlp_spec *x = &a->spec, *y = &b->spec;
    if (x->in_dim != y->in_dim || x->out_dim != y->out_dim || x->n_heads != y->n_heads ||
        x->n_hidden != y->n_hidden || x->layernorm_first != y->layernorm_first ||
        x->first_act != y->first_act || x->act != y->act ||
        pol_f32_bits(x->lrelu_slope) != pol_f32_bits(y->lrelu_slope) ||
        pol_f32_bits(x->ln_eps) != pol_f32_bits(y->ln_eps))
        return 0;
    for (int k = 0; k < x->n_hidden; k++)
        if (x->hidden[k] != y->hidden[k]) return 0;
    return 1;
}

static int parse_task(pol_core *c, pol_task *t, const section *s, int idx, int pk_tasks,
                      char *eb, size_t el) {
    rd r = {s->p, s->n, 0, 0};
    uint32_t net = rd_u32(&r), head = rd_u32(&r);
    int32_t view = rd_i32(&r), pos = rd_i32(&r);
    uint32_t kind = rd_u32(&r), od = rd_u32(&r), ad = rd_u32(&r), fs = rd_u32(&r),
             ms = rd_u32(&r);
    if (r.bad) return BAD("task %d: section truncated", idx);
    if (net >= (uint32_t)c->n_nets)
        return BAD("task %d: network %u of %d", idx, net, c->n_nets);
    const crl_mlp_spec *sp = &c->nets[net].mlp.spec;
    if (head >= (uint32_t)sp->n_heads)
        return BAD("task %d: head %u of %d", idx, head, sp->n_heads);
    if (od != (uint32_t)sp->in_dim || 2 * (uint64_t)ad != (uint64_t)sp->out_dim)
        return BAD("task %d: observation %u / action %u do not fit network %u (%d -> %d)",
                   idx, od, ad, net, sp->in_dim, sp->out_dim);
    if (c->method == POL_METHOD_L2M && c->route == POL_ROUTE_ORACLE) {
        if (view < 0 || view >= c->route_tasks)
            return BAD("task %d: oracle routing task %d of %d", idx, view,
                       c->route_tasks);
    } else if (c->method == POL_METHOD_PACKNET ? (view < 0 || view >= pk_tasks)
                                               : view != -1) {
        return BAD("task %d: packnet view %d is impossible", idx, view);
    }
    if (c->method == POL_METHOD_CSP && net != 0)
        return BAD("task %d: network %u (CSP tasks act with all anchors: 0)", idx, net);
    if (pos < -1 || kind < POL_ENV_BUILTIN || kind > POL_ENV_USER_MJCF || fs > 1000000 ||
        ms > 1000000000)
        return BAD(
            "task %d: position %d, env kind %u, frame skip %u, %u steps: impossible", idx,
            pos, kind, fs, ms);
    t->net = (int)net;
    t->head = (int)head;
    t->view = view;
    t->position = pos;
    t->env_kind = (int)kind;
    t->obs_dim = (int)od;
    t->act_dim = (int)ad;
    t->frame_skip = (int)fs;
    t->max_steps = (int)ms;
    int rc = CRL_OK;
    if (!(t->name = rd_str(&r, "task name", eb, el, &rc))) return rc;
    if (!*t->name) return BAD("task %d: empty name", idx);
    if (!(t->modifiers = rd_str(&r, "task modifiers", eb, el, &rc))) return rc;
    uint32_t norm = rd_u32(&r);
    if (r.bad || norm > POL_NORM_AFFINE)
        return BAD("task %d: unknown observation normalisation %u", idx, norm);
    t->norm = (int)norm;
    /* Everything left is float arrays of known length: check it all fits
     * before allocating. */
    size_t need = 4 * ((norm == POL_NORM_AFFINE ? 2 * (size_t)od : 0) + 2 * (size_t)ad);
    if (left(&r) != need)
        return BAD("task %d: %zu bytes of observation/action spec, expected %zu", idx,
                   left(&r), need);
    if (norm == POL_NORM_AFFINE) {
        if (!(t->shift = malloc(4 * (size_t)od)) || !(t->scale = malloc(4 * (size_t)od)))
            return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
        if (rd_f32s(&r, t->shift, od, 1) || rd_f32s(&r, t->scale, od, 1))
            return BAD("task %d: observation normalisation is not finite", idx);
    }
    if (!(t->act_lo = malloc(4 * (size_t)ad)) || !(t->act_hi = malloc(4 * (size_t)ad)))
        return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    if (rd_f32s(&r, t->act_lo, ad, 1) || rd_f32s(&r, t->act_hi, ad, 1))
        return BAD("task %d: action bounds are not finite", idx);
    t->act_identity = 1;
    for (uint32_t k = 0; k < ad; k++) {
        if (!(t->act_lo[k] < t->act_hi[k]))
            return BAD("task %d: action bounds [%g, %g] of dim %u are empty", idx,
                       (double)t->act_lo[k], (double)t->act_hi[k], k);
        if (t->act_lo[k] != -1.0f || t->act_hi[k] != 1.0f) t->act_identity = 0;
    }
    return CRL_OK;
}

/* Packnet: validate the owners exactly as a packnet checkpoint is
 * validated, then make each task's view, both by the trainer's rule
 * (nn/packnet.h). */
static int parse_packnet(pol_core *c, const section *s, int *pk_tasks, char *eb,
                         size_t el) {
    rd r = {s->p, s->n, 0, 0};
    uint32_t net = rd_u32(&r);
    int32_t cur = rd_i32(&r);
    uint32_t nt = rd_u32(&r);
    rd_u32(&r);
    uint64_t np = rd_u64(&r);
    if (r.bad) return BAD("PKNT section truncated");
    const pol_net *n = &c->nets[0];
    if (net != 0 || nt < 1 || nt > INT16_MAX || cur < -1 || cur >= (int32_t)nt)
        return BAD("packnet: network %u, task %d of %u: impossible", net, cur, nt);
    if (np != n->mlp.n_params || left(&r) != 2 * np)
        return BAD("packnet: %llu owners in %zu bytes for %zu parameters",
                   (unsigned long long)np, left(&r), n->mlp.n_params);
    const unsigned char *own = take(&r, 2 * np);
    *pk_tasks = (int)nt;
    int16_t *owner = malloc(np * sizeof *owner);
    if (!owner) return pol_fail(eb, el, CRL_ENOMEM, "packnet: out of memory");
    crl_pkview_place(&n->mlp, owner);
    for (size_t i = 0; i < np; i++) {
        int16_t o = (int16_t)pol_get_u16(own + 2 * i);
        if (!crl_pkview_owner_ok(owner[i] == CRL_PKVIEW_FREE, o, cur)) {
            free(owner);
            return BAD("packnet: owner %d of parameter %zu is impossible", o, i);
        }
        owner[i] = o;
    }
    int rc = CRL_OK;
    if ((size_t)c->n_tasks * np * sizeof(float) > POL_MAX_DERIVED) {
        rc = BAD("packnet: %d task views of %zu parameters exceed %zu bytes", c->n_tasks,
                 (size_t)np, (size_t)POL_MAX_DERIVED);
    } else if (cur >= 0) {
        c->views = malloc((size_t)c->n_tasks * np * sizeof(float));
        if (!c->views) rc = pol_fail(eb, el, CRL_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < c->n_tasks; i++) {
            float *v = c->views + (size_t)i * np;
            crl_pkview(&n->mlp, owner, cur, n->params, c->tasks[i].view, v);
            c->tasks[i].params = v;
        }
    }
    free(owner);
    return rc;
}

/* CSP: the alpha table, then the subspace rebuilt from the anchor networks
 * (network i = anchor i with the shared LayerNorm) in the training code's
 * layout (crl/subspace.h), checked by mapping each anchor back with
 * crl_subspace_anchor_to_mlp. */
static int parse_csp(pol_core *c, const section *s, char *eb, size_t el) {
    rd r = {s->p, s->n, 0, 0};
    uint32_t na = rd_u32(&r), rows = rd_u32(&r), z0 = rd_u32(&r), z1 = rd_u32(&r);
    if (r.bad) return BAD("CSPT section truncated");
    if (na != (uint32_t)c->n_nets || rows != (uint32_t)c->n_tasks || z0 || z1)
        return BAD("CSP: %u anchors x %u alpha rows for %d networks and %d tasks", na,
                   rows, c->n_nets, c->n_tasks);
    /* na <= 64, rows <= 4096: no overflow. */
    if (left(&r) != 4 * (size_t)na * rows)
        return BAD("CSP: %zu bytes of alpha table, expected %zu", left(&r),
                   4 * (size_t)na * rows);
    if (!(c->alpha = malloc(4 * (size_t)na * rows)))
        return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    if (rd_f32s(&r, c->alpha, (size_t)na * rows, 1))
        return BAD("CSP: an alpha is NaN or infinite");
    for (uint32_t t = 0; t < rows; t++) {
        double sum = 0;
        for (uint32_t i = 0; i < na; i++) {
            float a = c->alpha[(size_t)t * na + i];
            if (!(a >= 0.0f && a <= 1.0f))
                return BAD("CSP: alpha %u of task %u is %g, not in [0, 1]", i, t,
                           (double)a);
            sum += a;
        }
        if (fabs(sum - 1.0) > 1e-3)
            return BAD("CSP: the alpha of task %u sums to %g, not 1", t, sum);
    }
    const crl_mlp *m = &c->nets[0].mlp;
    crl_err err;
    if (crl_subspace_init(&c->sub, &m->spec, (int)na, &err))
        return BAD("CSP: %s", err.msg);
    c->sub.n_anchors = (int)na;
    c->sub.n_frozen = (int)na;
    /* capacity = n_shared + na * anchor_size <= the NET floats read above. */
    c->sub_params = calloc(c->sub.capacity, sizeof(float));
    float *check = malloc(sizeof(float) * m->n_params);
    int rc =
        c->sub_params && check ? CRL_OK : pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    const crl_mlp_spec *sp = &m->spec;
    const size_t h0 = (size_t)sp->hidden[0];
    if (!rc && sp->layernorm_first) {
        memcpy(c->sub_params + c->sub.ln_g, c->nets[0].params + m->ln_g, 4 * h0);
        memcpy(c->sub_params + c->sub.ln_b, c->nets[0].params + m->ln_b, 4 * h0);
    }
    for (int i = 0; !rc && i < (int)na; i++) {
        const float *src = c->nets[i].params;
        if (sp->layernorm_first &&
            (memcmp(src + m->ln_g, c->nets[0].params + m->ln_g, 4 * h0) ||
             memcmp(src + m->ln_b, c->nets[0].params + m->ln_b, 4 * h0))) {
            rc = BAD("CSP: anchor %d has another LayerNorm than anchor 0 (they share it)",
                     i);
            break;
        }
        /* In both layouts a hidden layer's W and b are adjacent, as are all
         * head weights and all head biases. */
        float *a = c->sub_params + crl_subspace_anchor_offset(&c->sub, i);
        for (int k = 0; k < sp->n_hidden; k++)
            memcpy(a + c->sub.W[k], src + m->W[k],
                   4 * (c->sub.b[k] - c->sub.W[k] + (size_t)sp->hidden[k]));
        memcpy(a + c->sub.head_W, src + m->head_W,
               4 * (c->sub.anchor_size - c->sub.head_W));
        crl_subspace_anchor_to_mlp(&c->sub, c->sub_params, i, m, check);
        if (memcmp(check, src, sizeof(float) * m->n_params))
            rc = BAD("CSP: anchor %d does not map onto the subspace layout", i);
    }
    free(check);
    return rc;
}

/* L2M: the pool's layout over network 0 (the base), checked against the
 * bytes present before its parameters are allocated. */
static int parse_l2m(pol_core *c, const section *s, char *eb, size_t el) {
    rd r = {s->p, s->n, 0, 0};
    uint32_t net = rd_u32(&r), kind = rd_u32(&r), M = rd_u32(&r), rank = rd_u32(&r);
    float scale = rd_f32(&r);
    uint32_t route = rd_u32(&r), rtasks = rd_u32(&r), z = rd_u32(&r);
    /* Version 2: the history query H and the hold option. */
    uint32_t hist = s->version >= 2 ? rd_u32(&r) : 1,
             hold = s->version >= 2 ? rd_u32(&r) : 0;
    uint64_t np = rd_u64(&r);
    if (r.bad) return BAD("L2MP section truncated");
    if (net != 0 || kind > CRL_POOL_IA3 || M < 1 || M > POL_MAX_POOL || z != 0)
        return BAD("L2M: network %u, modulator kind %u, %u modulators: impossible "
                   "(1..%d)",
                   net, kind, M, POL_MAX_POOL);
    if (kind == CRL_POOL_LORA ? rank < 1 || rank > POL_MAX_RANK || !isfinite(scale)
                              : rank != 0)
        return BAD("L2M: rank %u, scale %g impossible (LoRA: rank 1..%d; IA3: 0)", rank,
                   (double)scale, POL_MAX_RANK);
    if (route > (s->version >= 3 ? POL_ROUTE_ARROW : POL_ROUTE_ORACLE) ||
        (route == POL_ROUTE_ARROW && kind != CRL_POOL_LORA) ||
        (route == POL_ROUTE_ORACLE ? rtasks < 1 || rtasks > M : rtasks != 0))
        return BAD("L2M: routing %u over %u tasks with %u modulators is impossible",
                   route, rtasks, M);
    if (hist < 1 || hist > CRL_L2M_MAX_HISTORY || hold > 1)
        return BAD("L2M: history %u (1..%d), hold %u (0 or 1) impossible", hist,
                   CRL_L2M_MAX_HISTORY, hold);
    crl_err err;
    if (crl_pool_init(&c->pool, &c->nets[0].mlp, (crl_pool_kind)kind, (int)M, (int)rank,
                      scale, &err))
        return BAD("L2M: %s", err.msg);
    /* Widths <= 65536, <= 8 layers, M and rank <= 4096: n_params < 2^46. */
    if (np != c->pool.n_params || left(&r) != 4 * np)
        return BAD("L2M: %llu pool parameters in %zu bytes, its layout has %zu",
                   (unsigned long long)np, left(&r), c->pool.n_params);
    if (!(c->pool_params = malloc(4 * np)))
        return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    float w = 0;
    size_t f = rd_weights(&r, c->pool_params, np, &w);
    if (f)
        return BAD("L2M: pool parameter %zu is %g (a weight must not be NaN or infinite, "
                   "and |w| <= %g)",
                   f - 1, (double)w, (double)CRL_POLICY_MAX_WEIGHT);
    c->route = (int)route;
    c->route_tasks = (int)rtasks;
    c->history = (int)hist;
    c->hold = (int)hold;
    return CRL_OK;
}

/* The actor of the policy's kind over the loaded buffers (borrowed). */
static int make_actor(pol_core *c, char *eb, size_t el) {
    crl_actor_config ac;
    memset(&ac, 0, sizeof ac);
    ac.spec = c->nets[0].mlp.spec;
    ac.max_act_batch = 1;
    ac.borrowed = 1;
    if (c->method == POL_METHOD_CSP) {
        ac.kind = CRL_ACTOR_CSP;
        ac.K = c->sub.max_anchors;
    } else if (c->method == POL_METHOD_L2M) {
        ac.kind = CRL_ACTOR_L2M;
        ac.M = c->pool.M;
        ac.pool_kind = (int)c->pool.kind;
        ac.rank = c->pool.rank;
        ac.scale = c->pool.scale;
        ac.head = -1; /* each task's own head */
        ac.history = c->history;
        ac.hold = c->hold;
        /* Arrow routes acting rows by the prototypes of the pool's own
         * updates (recomputed from its parameters on the first route). */
        if (c->route == POL_ROUTE_ARROW) {
            ac.router = "arrow";
            ac.collect = CRL_ROUTER_COLLECT_EVAL;
        }
    }
    crl_err err;
    int rc = crl_actor_create(&ac, &c->actor, &err);
    if (rc) return pol_fail(eb, el, rc, "%s", err.msg);
    crl_actor *a = c->actor;
    if (c->method == POL_METHOD_CSP) {
        crl_subspace *sub = crl_actor_subspace(a);
        sub->n_anchors = c->sub.n_anchors;
        sub->n_frozen = c->sub.n_frozen;
        a->params = c->sub_params;
        crl_actor_changed(a);
    } else if (c->method == POL_METHOD_L2M) {
        a->params = c->pool_params;
        a->base = c->nets[0].params;
        /* crl_sac_act of an L2M learner with the evaluation route. */
        /* Arrow: the prototypes now, so that acting only reads them (clones
         * share the router across threads). */
        if (c->route == POL_ROUTE_ARROW) {
            crl_router_changed(crl_actor_router(a), a->params);
            return CRL_OK;
        }
        crl_pool_route r;
        memset(&r, 0, sizeof r);
        r.mode =
            c->route == POL_ROUTE_ORACLE ? CRL_POOL_ROUTE_ORACLE : CRL_POOL_ROUTE_COS;
        r.n_tasks = c->route_tasks;
        if ((rc = crl_actor_l2m_set_route(a, &r, &r, &err)))
            return pol_fail(eb, el, rc, "L2M: %s", err.msg);
    }
    return CRL_OK;
}

static int parse(pol_core *c, const unsigned char *b, size_t n, char *eb, size_t el) {
    if (n == 0) return BAD("empty file");
    if (n < POL_MAGIC_LEN || memcmp(b, POL_MAGIC, POL_MAGIC_LEN) != 0)
        return BAD("not a crl policy file (bad magic)");
    if (n < POL_MIN_SIZE)
        return BAD("truncated: %zu bytes, a policy file has at least %d", n,
                   POL_MIN_SIZE);
    uint32_t version = pol_get_u32(b + 8);
    if (version > CRL_POLICY_FORMAT_VERSION)
        return pol_fail(eb, el, CRL_EVERSION,
                        "format version %u is newer than this crl %s reads (%d): upgrade "
                        "crl",
                        version, CRL_VERSION_STRING, CRL_POLICY_FORMAT_VERSION);
    if (version == 0) return BAD("format version 0 does not exist");
    if (pol_get_u32(b + 12) != POL_HEADER_SIZE)
        return BAD("header size %u, version 1 has %d", pol_get_u32(b + 12),
                   POL_HEADER_SIZE);
    uint64_t size = pol_get_u64(b + 16);
    if (size > n)
        return BAD("truncated: the header says %llu bytes, the file has %zu",
                   (unsigned long long)size, n);
    if (size < n)
        return BAD("%zu bytes after the end of the policy (the header says %llu)",
                   n - (size_t)size, (unsigned long long)size);
    uint32_t stored = pol_get_u32(b + n - POL_TRAILER);
    uint32_t crc = crl_pf_crc32(0, b, n - POL_TRAILER);
    if (stored != crc)
        return BAD("checksum mismatch (stored %08x, computed %08x): the file is damaged",
                   stored, crc);
    if (pol_get_u32(b + 28) != 0)
        return pol_fail(eb, el, CRL_EVERSION, "unknown header flags %08x",
                        pol_get_u32(b + 28));
    if (memchr(b + 32, 0, 16) == NULL) return BAD("crl version field is not terminated");
    memcpy(c->crl_version, b + 32, 16);
    c->crl_version[16] = '\0';

    /* Framing: every section inside the file; remember where each is. */
    uint32_t count = pol_get_u32(b + 24);
    size_t body = n - POL_HEADER_SIZE - POL_TRAILER;
    if (count < 1) return BAD("no sections");
    if (count > body / POL_SECTION_HEAD)
        return BAD("%u sections cannot fit in %zu bytes", count, body);
    section *secs = calloc(count, sizeof *secs);
    if (!secs) return pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    rd r = {b, n - POL_TRAILER, POL_HEADER_SIZE, 0};
    int rc = CRL_OK, n_net = 0, n_task = 0, n_pk = 0, pk_tasks = 0, n_csp = 0, n_l2m = 0;
    const section *pks = NULL, *csps = NULL, *l2ms = NULL;
    for (uint32_t i = 0; !rc && i < count; i++) {
        section *s = &secs[i];
        const unsigned char *h = take(&r, POL_SECTION_HEAD);
        uint64_t len = h ? pol_get_u64(h + 8) : 0;
        if (!h || len > left(&r)) {
            rc = BAD("section %u runs past the end of the file", i);
            break;
        }
        memcpy(s->tag, h, 4);
        s->tag[4] = '\0';
        s->version = pol_get_u32(h + 4);
        s->p = take(&r, (size_t)len);
        s->n = (size_t)len;
        for (int k = 0; k < 4; k++)
            if (h[k] < 0x20 || h[k] > 0x7e) rc = BAD("section %u has a binary tag", i);
        if (rc) break;
        if (i == 0 && strcmp(s->tag, "META")) {
            rc = BAD("the first section is '%s', not META", s->tag);
            break;
        }
        int critical = s->tag[0] >= 'A' && s->tag[0] <= 'Z';
        /* info is the one ancillary section version 1 defines: known, so its
         * version rule is the known sections' (above 1 is refused). */
        if (!strcmp(s->tag, "info") && s->version != 1) {
            rc = pol_fail(eb, el, CRL_EVERSION,
                          "section 'info' version %u is not one this crl reads (1)",
                          s->version);
            break;
        }
        if (!is_known(s->tag)) {
            if (critical)
                rc = pol_fail(eb, el, CRL_EVERSION,
                              "section '%s' is not known to this crl %s (written by crl "
                              "%s): upgrade crl",
                              s->tag, CRL_VERSION_STRING, c->crl_version);
            continue; /* ancillary: skipped */
        }
        if (s->version != 1 &&
            !((s->version == 2 || s->version == 3) && !strcmp(s->tag, "L2MP")))
            rc = pol_fail(eb, el, CRL_EVERSION,
                          "section '%s' version %u is newer than this crl reads (1)",
                          s->tag, s->version);
        else if (i > 0 && !strcmp(s->tag, "META"))
            rc = BAD("more than one META section");
        n_net += !strcmp(s->tag, "NET ");
        n_task += !strcmp(s->tag, "TASK");
        if (!strcmp(s->tag, "PKNT")) n_pk++, pks = s;
        if (!strcmp(s->tag, "CSPT")) n_csp++, csps = s;
        if (!strcmp(s->tag, "L2MP")) n_l2m++, l2ms = s;
    }
    if (!rc && left(&r)) rc = BAD("%zu bytes after the last section", left(&r));
    if (!rc) rc = parse_meta(c, &secs[0], eb, el);
    if (!rc && n_net != c->n_nets)
        rc = BAD("%d NET sections, META says %d", n_net, c->n_nets);
    if (!rc && n_task != c->n_tasks)
        rc = BAD("%d TASK sections, META says %d", n_task, c->n_tasks);
    if (!rc && n_pk != (c->method == POL_METHOD_PACKNET))
        rc = BAD("%d PKNT sections for method tag %d", n_pk, c->method);
    if (!rc && n_csp != (c->method == POL_METHOD_CSP))
        rc = BAD("%d CSPT sections for method tag %d", n_csp, c->method);
    if (!rc && n_l2m != (c->method == POL_METHOD_L2M))
        rc = BAD("%d L2MP sections for method tag %d", n_l2m, c->method);
    if (!rc) {
        c->nets = calloc((size_t)c->n_nets, sizeof *c->nets);
        c->tasks = calloc((size_t)c->n_tasks, sizeof *c->tasks);
        if (!c->nets || !c->tasks) rc = pol_fail(eb, el, CRL_ENOMEM, "out of memory");
    }
    int in = 0, it = 0;
    for (uint32_t i = 0; !rc && i < count; i++)
        if (!strcmp(secs[i].tag, "NET ")) {
            rc = parse_net(&c->nets[in], &secs[i], in, eb, el);
            if (!rc && in > 0 && !same_shape(&c->nets[0].mlp, &c->nets[in].mlp))
                rc = BAD("network %d has another shape than network 0", in);
            in++;
        }
    if (!rc && pks) {
        /* pk_tasks is needed to check the tasks' views. */
        rd pr = {pks->p, pks->n, 0, 0};
        rd_u32(&pr);
        rd_u32(&pr);
        pk_tasks = (int)rd_u32(&pr);
        if (pr.bad || pk_tasks < 1 || pk_tasks > INT16_MAX)
            rc = BAD("packnet: section truncated or impossible task count");
    }
    /* L2M's routing is needed to check the tasks' views. */
    if (!rc && l2ms) rc = parse_l2m(c, l2ms, eb, el);
    if (!rc && csps) rc = parse_csp(c, csps, eb, el);
    for (uint32_t i = 0; !rc && i < count; i++)
        if (!strcmp(secs[i].tag, "TASK")) {
            pol_task *t = &c->tasks[it];
            rc = parse_task(c, t, &secs[i], it, pk_tasks, eb, el);
            if (!rc) t->params = c->nets[t->net].params;
            if (!rc && c->alpha) t->alpha = c->alpha + (size_t)it * c->sub.n_anchors;
            if (!rc &&
                (t->obs_dim != c->tasks[0].obs_dim || t->act_dim != c->tasks[0].act_dim))
                rc = BAD("task %d has other observation/action sizes than task 0", it);
            it++;
        }
    if (!rc && pks) rc = parse_packnet(c, pks, &pk_tasks, eb, el);
    if (!rc) {
        c->obs_dim = c->tasks[0].obs_dim;
        c->act_dim = c->tasks[0].act_dim;
        rc = make_actor(c, eb, el);
    }
    free(secs);
    return rc;
}

#undef BAD

/* ---- policy objects ------------------------------------------------------------------
 */

static void free_ws(const pol_core *c, crl_actor_ws *ws, float *xin, float *eps,
                    int *heads, float *mix) {
    crl_actor_ws_free(c->actor, ws);
    free(xin);
    free(eps);
    free(heads);
    free(mix);
}

static int alloc_ws(crl_policy *p, int max_batch, crl_err *err) {
    const pol_core *c = p->c;
    crl_actor_ws ws;
    float *mix = NULL;
    int rc = crl_actor_ws_alloc(c->actor, &ws, max_batch, err);
    if (rc) return rc;
    if (c->actor->cond_dim) {
        mix = malloc(sizeof(float) * (size_t)max_batch * (size_t)c->actor->cond_dim);
        if (!mix) rc = crl_errf(err, CRL_ENOMEM, "out of memory");
    }
    float *xin = malloc(sizeof(float) * (size_t)max_batch * c->obs_dim);
    float *eps = malloc(sizeof(float) * (size_t)max_batch * c->act_dim);
    int *heads = malloc(sizeof(int) * (size_t)max_batch);
    if (!rc && (!xin || !eps || !heads)) rc = crl_errf(err, CRL_ENOMEM, "out of memory");
    if (rc) {
        free_ws(c, &ws, xin, eps, heads, mix);
        return rc;
    }
    free_ws(c, &p->ws, p->xin, p->eps, p->heads, p->mix);
    p->ws = ws;
    p->xin = xin;
    p->eps = eps;
    p->heads = heads;
    p->mix = mix;
    p->max_batch = max_batch;
    return CRL_OK;
}

/* A policy object on core c (takes a reference on success). */
static int make_policy(pol_core *c, int max_batch, crl_policy **out, crl_err *err) {
    crl_policy *p = calloc(1, sizeof *p);
    if (!p) return crl_errf(err, CRL_ENOMEM, "out of memory");
    p->c = c;
    int rc = alloc_ws(p, max_batch, err);
    if (!rc) {
        p->obs1 = malloc(sizeof(float) * (size_t)c->obs_dim);
        p->act1 = malloc(sizeof(float) * (size_t)c->act_dim);
        p->envs = calloc((size_t)c->n_tasks, sizeof *p->envs);
        if (!p->obs1 || !p->act1 || !p->envs)
            rc = crl_errf(err, CRL_ENOMEM, "out of memory");
    }
    if (rc) {
        free_ws(c, &p->ws, p->xin, p->eps, p->heads, p->mix);
        free(p->obs1);
        free(p->act1);
        free(p->envs);
        free(p);
        return rc;
    }
    pol_core_ref(c);
    *out = p;
    return CRL_OK;
}

static int load_mem(const void *data, size_t n, const char *label, crl_policy **out,
                    char *eb, size_t el) {
    char msg[600] = "";
    pol_core *c = calloc(1, sizeof *c);
    if (!c) return pol_fail(eb, el, CRL_ENOMEM, "%s: out of memory", label);
    pthread_mutex_init(&c->lock, NULL);
    int rc = parse(c, data, n, msg, sizeof msg);
    crl_err err = {0};
    /* OpenBLAS is loaded at run time; without it acting would abort. crl acts
     * on one BLAS thread (see docs/embedding.md). */
    if (!rc && (rc = crl_blas_init(1, &err)))
        snprintf(msg, sizeof msg, "%.500s", err.msg);
    if (!rc && (rc = make_policy(c, 1, out, &err)))
        snprintf(msg, sizeof msg, "%.500s", err.msg);
    if (rc) {
        core_free(c);
        return pol_fail(eb, el, rc, "%s: %s", label, msg);
    }
    return CRL_OK;
}

int crl_policy_load_mem(const void *data, size_t n, crl_policy **out, char *errbuf,
                        size_t errlen) {
    if (!out)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_load_mem: out is NULL");
    *out = NULL;
    if (!data && n)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_load_mem: data is NULL");
    if (n > CRL_POLICY_MAX_BYTES)
        return pol_fail(errbuf, errlen, CRL_ECORRUPT,
                        "policy: %zu bytes, more than the %zu a policy file may have", n,
                        (size_t)CRL_POLICY_MAX_BYTES);
    return load_mem(n ? data : "", n, "policy", out, errbuf, errlen);
}

int crl_policy_load(const char *path, crl_policy **out, char *errbuf, size_t errlen) {
    if (!out) return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_load: out is NULL");
    *out = NULL;
    if (!path)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_load: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pol_fail(errbuf, errlen, errno == ENOENT ? CRL_ENOTFOUND : CRL_EIO,
                        "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pol_fail(errbuf, errlen, CRL_EIO, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return pol_fail(errbuf, errlen, CRL_EIO, "%s: is a directory, not a policy file",
                        path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pol_fail(errbuf, errlen, CRL_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return pol_fail(errbuf, errlen, CRL_ECORRUPT, "%s: empty file", path);
    }
    if ((uint64_t)st.st_size > CRL_POLICY_MAX_BYTES) {
        close(fd);
        return pol_fail(errbuf, errlen, CRL_ECORRUPT,
                        "%s: %lld bytes, more than the %zu a policy file may have", path,
                        (long long)st.st_size, (size_t)CRL_POLICY_MAX_BYTES);
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(n);
    if (!buf) {
        close(fd);
        return pol_fail(errbuf, errlen, CRL_ENOMEM, "%s: out of memory", path);
    }
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    int rc = got == n ? load_mem(buf, n, path, out, errbuf, errlen)
                      : pol_fail(errbuf, errlen, CRL_EIO,
                                 "%s: short read (%zu of %zu bytes)", path, got, n);
    free(buf);
    return rc;
}

int crl_policy_clone(const crl_policy *p, crl_policy **out, char *errbuf, size_t errlen) {
    if (!out)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_clone: out is NULL");
    *out = NULL;
    if (!p)
        return pol_fail(errbuf, errlen, CRL_EINVAL, "crl_policy_clone: policy is NULL");
    crl_err err = {0};
    int rc = make_policy(p->c, p->max_batch, out, &err);
    if (rc) return pol_fail(errbuf, errlen, rc, "crl_policy_clone: %s", err.msg);
    return CRL_OK;
}

void crl_policy_free(crl_policy *p) {
    if (!p) return;
    pol_free_envs(p);
    free_ws(p->c, &p->ws, p->xin, p->eps, p->heads, p->mix);
    free(p->obs1);
    free(p->act1);
    free(p->envs);
    pol_core_unref(p->c);
    free(p);
}

int crl_policy_set_batch(crl_policy *p, int max_batch) {
    if (!p) return CRL_EINVAL;
    if (max_batch < 1 || max_batch > 1 << 20)
        return pol_set_err(p, CRL_EINVAL, "batch size %d not in 1..%d", max_batch,
                           1 << 20);
    crl_err err = {0};
    int rc = alloc_ws(p, max_batch, &err);
    return rc ? pol_set_err(p, rc, "%s", err.msg) : CRL_OK;
}

/* ---- accessors
 * ------------------------------------------------------------------------- */

static const pol_task *task_at(const crl_policy *p, int task) {
    return p && task >= 0 && task < p->c->n_tasks ? &p->c->tasks[task] : NULL;
}

int crl_policy_obs_dim(const crl_policy *p) {
    return p ? p->c->obs_dim : 0;
}
int crl_policy_act_dim(const crl_policy *p) {
    return p ? p->c->act_dim : 0;
}
int crl_policy_num_tasks(const crl_policy *p) {
    return p ? p->c->n_tasks : 0;
}
const char *crl_policy_task_name(const crl_policy *p, int task) {
    const pol_task *t = task_at(p, task);
    return t ? t->name : NULL;
}
int crl_policy_task_position(const crl_policy *p, int task) {
    const pol_task *t = task_at(p, task);
    return t ? t->position : -1;
}
int crl_policy_task_max_steps(const crl_policy *p, int task) {
    const pol_task *t = task_at(p, task);
    return t ? t->max_steps : 0;
}
int crl_policy_task_frame_skip(const crl_policy *p, int task) {
    const pol_task *t = task_at(p, task);
    return t ? t->frame_skip : 0;
}
const char *crl_policy_method(const crl_policy *p) {
    return p ? p->c->method_name : NULL;
}
const char *crl_policy_crl_version(const crl_policy *p) {
    return p ? p->c->crl_version : NULL;
}
const char *crl_policy_error(const crl_policy *p) {
    return p ? p->err : "policy is NULL";
}

uint64_t crl_policy_eval_seed(uint64_t seed, int k) {
    return crl_eval_seed(seed, 0, k);
}

/* ---- acting
 * ------------------------------------------------------------------------------ */

int crl_policy_act_batch(crl_policy *p, int task, int B, const float *obs, float *action,
                         crl_policy_mode mode, crl_rng *rng) {
    if (!p) return CRL_EINVAL;
    const pol_task *t = task_at(p, task);
    if (!t)
        return pol_set_err(p, CRL_EINVAL, "task %d not in 0..%d", task,
                           p->c->n_tasks - 1);
    if (!obs || !action)
        return pol_set_err(p, CRL_EINVAL, "observation or action is NULL");
    if (B < 1 || B > p->max_batch)
        return pol_set_err(p, CRL_EINVAL,
                           "batch of %d rows, the workspace takes 1..%d "
                           "(crl_policy_set_batch)",
                           B, p->max_batch);
    if (mode != CRL_POLICY_DETERMINISTIC && mode != CRL_POLICY_SAMPLE)
        return pol_set_err(p, CRL_EINVAL, "unknown mode %d", (int)mode);
    if (mode == CRL_POLICY_SAMPLE && !rng)
        return pol_set_err(p, CRL_EINVAL,
                           "sampled actions need a generator (rng is NULL)");
    const int O = t->obs_dim, A = t->act_dim;
    for (size_t k = 0; k < (size_t)B * O; k++)
        if (!isfinite(obs[k]))
            return pol_set_err(p, CRL_EINVAL,
                               "observation row %d, dimension %d is %g: an observation "
                               "must be finite",
                               (int)(k / (size_t)O), (int)(k % (size_t)O),
                               (double)obs[k]);
    const float *x = obs;
    if (t->norm == POL_NORM_AFFINE) {
        for (int i = 0; i < B; i++)
            for (int j = 0; j < O; j++)
                p->xin[(size_t)i * O + j] =
                    (obs[(size_t)i * O + j] - t->shift[j]) * t->scale[j];
        x = p->xin;
    }
    for (int i = 0; i < B; i++) p->heads[i] = t->head;
    const pol_core *c = p->c;
    /* crl_sac_act of the learner: for CSP the task's alpha on every row, for
     * L2M the evaluation route with the task's view as the oracle task. */
    crl_actor_rows rows = {.head = p->heads, .acting = 1, .task = t->view};
    if (c->actor->cond_dim) {
        const int K = c->actor->cond_dim;
        for (int i = 0; i < B; i++)
            memcpy(p->mix + (size_t)i * K, t->alpha, sizeof(float) * (size_t)K);
        rows.cond = p->mix;
    }
    /* An actor without parameters of its own acts with the task's (one
     * network per task, packnet views). */
    if (!c->actor->params) rows.params = t->params;
    const float *out = crl_actor_forward(c->actor, &p->ws, x, B, &rows);
    if (mode == CRL_POLICY_SAMPLE) {
        /* The draw order of crl_sac_act: row by row, dim by dim. */
        for (int i = 0; i < B * A; i++) p->eps[i] = (float)crl_rng_normal(rng);
        crl_tgauss_forward(B, A, out, p->eps, action, NULL);
    } else {
        crl_tgauss_forward(B, A, out, NULL, action, NULL);
    }
    if (!t->act_identity)
        for (int i = 0; i < B; i++)
            for (int j = 0; j < A; j++) {
                float *a = &action[(size_t)i * A + j];
                *a = t->act_lo[j] + 0.5f * (*a + 1.0f) * (t->act_hi[j] - t->act_lo[j]);
            }
    /* Finite weights and observations can still overflow (an observation far
     * outside what the policy was trained on): a NaN action is never
     * returned as a success. */
    for (size_t k = 0; k < (size_t)B * A; k++)
        if (!isfinite(action[k])) {
            int row = (int)(k / (size_t)A);
            memset(action, 0, sizeof(float) * (size_t)B * A);
            return pol_set_err(p, CRL_ENAN,
                               "the action of row %d is not finite (the network "
                               "overflowed on this observation); actions set to 0",
                               row);
        }
    return CRL_OK;
}

void crl_policy_episode_start(crl_policy *p) {
    if (p && p->c && p->c->actor)
        crl_actor_l2m_episode_start(p->c->actor, &p->ws, NULL, 0);
}

int crl_policy_act(crl_policy *p, int task, const float *obs, float *action,
                   crl_policy_mode mode, crl_rng *rng) {
    return crl_policy_act_batch(p, task, 1, obs, action, mode, rng);
}
