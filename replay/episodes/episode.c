/* crl episode records (include/crl/episode.h). The record is one blob:
 *
 *   header (96 bytes), initial snapshot, T step records (the action's
 *   act_dim f32 then the reward f32), the success bits, final snapshot
 *
 * all little-endian; docs/replay.md has the byte table. Steps are written
 * in place as they come, so recording never copies or allocates after
 * crl_episode_create. */
#include "crl/episode.h"

#include "core/blob.h"

#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EP_MAGIC     "CRLEPI01"
#define EP_HEAD      96
#define EP_MODS_MAX  1024
#define EP_VERSION_N 16

enum { EP_ENDED = 1, EP_TERMINAL = 2, EP_TRUNCATED = 4 };

struct crl_episode {
    const crl_env_spec *spec;
    int act_dim, max_steps;
    size_t state_max;
    unsigned char *buf; /* the blob being written */
    size_t cap;
    unsigned char *bits; /* success bits, copied into the blob at the end */
    size_t n0;           /* initial snapshot bytes */
    size_t n;            /* blob bytes once closed */
    int len, overflow, open, closed, success, flags;
    double ret;
    uint64_t seed;
    char hash[17];
    char version[EP_VERSION_N + 1];
    char mods[EP_MODS_MAX];
};

/* ---- little-endian fields ---------------------------------------------------- */

static void put_f32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    crl_le_put_u32(p, u);
}
static float get_f32(const unsigned char *p) {
    uint32_t u = crl_le_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- recording --------------------------------------------------------------- */

int crl_episode_create(const crl_env_spec *spec, crl_episode **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_episode_create: out is NULL");
    *out = NULL;
    if (!spec) return crl_errf(err, CRL_EINVAL, "crl_episode_create: spec is NULL");
    crl_episode *r = calloc(1, sizeof *r);
    if (!r) return crl_errf(err, CRL_ENOMEM, "out of memory for an episode recorder");
    r->spec = spec;
    r->act_dim = crl_env_act_dim(spec);
    r->max_steps = crl_env_max_steps(spec);
    r->state_max = crl_env_state_size(spec);
    size_t steps = (size_t)r->max_steps * ((size_t)r->act_dim + 1) * 4;
    size_t nbits = ((size_t)r->max_steps + 7) / 8;
    r->cap = EP_HEAD + 2 * r->state_max + steps + nbits;
    r->buf = calloc(1, r->cap);
    r->bits = calloc(1, nbits + 1);
    int rc = CRL_OK;
    if (!r->buf || !r->bits)
        rc = crl_errf(err, CRL_ENOMEM, "out of memory for an episode recorder");
    else if (r->cap > UINT32_MAX)
        rc = crl_errf(err, CRL_EINVAL, "episodes of '%s' are too long to record",
                      crl_env_spec_name(spec));
    if (!rc) rc = crl_env_model_hash(spec, r->hash, err);
    if (rc) {
        crl_episode_free(r);
        return rc;
    }
    snprintf(r->version, sizeof r->version, "%s", mj_versionString());
    crl_env_modifiers(spec, r->mods, sizeof r->mods);
    *out = r;
    return CRL_OK;
}

void crl_episode_free(crl_episode *r) {
    if (!r) return;
    free(r->buf);
    free(r->bits);
    free(r);
}

void crl_episode_begin(crl_episode *r, const crl_env *e, uint64_t seed) {
    r->seed = seed;
    r->len = 0;
    r->overflow = 0;
    r->success = 0;
    r->flags = 0;
    r->ret = 0.0;
    r->closed = 0;
    r->open = 1;
    memset(r->bits, 0, ((size_t)r->max_steps + 7) / 8);
    r->n0 = crl_env_get_state(e, r->buf + EP_HEAD);
}

int crl_episode_recording(const crl_episode *r) {
    return r && r->open;
}

void crl_episode_add(crl_episode *r, const float *act, const crl_step_info *info) {
    if (!r->open) return;
    if (r->len >= r->max_steps) {
        r->overflow = 1;
        return;
    }
    const int A = r->act_dim;
    unsigned char *p = r->buf + EP_HEAD + r->n0 + (size_t)r->len * ((size_t)A + 1) * 4;
    for (int j = 0; j < A; j++) put_f32(p + 4 * j, act[j]);
    put_f32(p + 4 * (size_t)A, info->reward);
    if (info->success) {
        r->bits[r->len / 8] |= (unsigned char)(1u << (r->len % 8));
        r->success = 1;
    }
    r->ret += info->reward;
    r->flags = (info->terminal || info->truncated ? EP_ENDED : 0) |
               (info->terminal ? EP_TERMINAL : 0) | (info->truncated ? EP_TRUNCATED : 0);
    r->len++;
}

void crl_episode_end(crl_episode *r, const crl_env *e) {
    if (!r->open) return;
    r->open = 0;
    const size_t T = (size_t)r->len, A = (size_t)r->act_dim;
    const size_t steps_off = EP_HEAD + r->n0;
    const size_t succ_off = steps_off + T * (A + 1) * 4;
    const size_t final_off = succ_off + (T + 7) / 8;
    memcpy(r->buf + succ_off, r->bits, (T + 7) / 8);
    size_t n1 = crl_env_get_state(e, r->buf + final_off);
    unsigned char *h = r->buf;
    memset(h, 0, EP_HEAD);
    memcpy(h, EP_MAGIC, 8);
    crl_le_put_u32(h + 8, EP_HEAD);
    crl_le_put_u32(h + 12, (uint32_t)r->flags);
    crl_le_put_u32(h + 16, (uint32_t)T);
    crl_le_put_u32(h + 20, (uint32_t)A);
    crl_le_put_u64(h + 24, r->seed);
    memcpy(h + 32, r->hash, 16);
    memcpy(h + 48, r->version, strlen(r->version));
    crl_le_put_u32(h + 64, EP_HEAD);
    crl_le_put_u32(h + 68, (uint32_t)r->n0);
    crl_le_put_u32(h + 72, (uint32_t)steps_off);
    crl_le_put_u32(h + 76, (uint32_t)succ_off);
    crl_le_put_u32(h + 80, (uint32_t)final_off);
    crl_le_put_u32(h + 84, (uint32_t)n1);
    uint64_t u;
    memcpy(&u, &r->ret, 8);
    crl_le_put_u64(h + 88, u);
    r->n = final_off + n1;
    r->closed = 1;
}

int crl_episode_get(const crl_episode *r, crl_episode_info *info, crl_err *err) {
    if (!r || !info) return crl_errf(err, CRL_EINVAL, "crl_episode_get: bad argument");
    if (!r->closed)
        return crl_errf(err, CRL_EINVAL, "no finished episode record to read");
    if (r->overflow)
        return crl_errf(err, CRL_EINVAL,
                        "episode of '%s' ran past its %d-step limit: not recorded",
                        crl_env_spec_name(r->spec), r->max_steps);
    info->seed = r->seed;
    info->length = r->len;
    info->ret = r->ret;
    info->success = r->success;
    info->env = crl_env_spec_name(r->spec);
    info->mujoco_version = r->version;
    info->model_hash = r->hash;
    info->modifiers = r->mods;
    info->blob = r->buf;
    info->blob_n = r->n;
    return CRL_OK;
}

/* ---- reading ----------------------------------------------------------------- */

void crl_episode_data_free(crl_episode_data *d) {
    if (!d) return;
    free(d->act);
    free(d->reward);
    free(d->success);
    free(d->s0);
    free(d->s1);
    memset(d, 0, sizeof *d);
}

/* [off, off + len) lies inside [lo, n). */
static int inside(uint64_t off, uint64_t len, uint64_t lo, uint64_t n) {
    return off >= lo && off <= n && len <= n - off;
}

int crl_episode_decode(const void *blob, size_t n, crl_episode_data *out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_episode_decode: out is NULL");
    memset(out, 0, sizeof *out);
    const unsigned char *p = blob;
    if (!p || n < 8 || memcmp(p, "CRLEPI", 6) != 0)
        return crl_errf(err, CRL_ECORRUPT,
                        "not an episode record (%zu bytes without the CRLEPI mark)", n);
    if (memcmp(p, EP_MAGIC, 8) != 0)
        return crl_errf(err, CRL_EVERSION,
                        "episode record format '%.8s' is newer than this crl reads (%s)",
                        (const char *)p, EP_MAGIC);
    if (n < EP_HEAD)
        return crl_errf(err, CRL_ECORRUPT,
                        "episode record is truncated (%zu bytes, the header alone is %d)",
                        n, EP_HEAD);
    uint32_t head = crl_le_get_u32(p + 8), flags = crl_le_get_u32(p + 12);
    uint64_t T = crl_le_get_u32(p + 16), A = crl_le_get_u32(p + 20);
    uint64_t o0 = crl_le_get_u32(p + 64), n0 = crl_le_get_u32(p + 68),
             os = crl_le_get_u32(p + 72), ob = crl_le_get_u32(p + 76),
             o1 = crl_le_get_u32(p + 80), n1 = crl_le_get_u32(p + 84);
    if (head != EP_HEAD || (flags & ~(uint32_t)7) || A == 0 || A > 4096)
        return crl_errf(err, CRL_ECORRUPT,
                        "episode record has a damaged header (header %u bytes, flags "
                        "0x%x, act_dim %llu)",
                        (unsigned)head, (unsigned)flags, (unsigned long long)A);
    uint64_t steps_n = T * (A + 1) * 4, bits_n = (T + 7) / 8;
    if (o0 != EP_HEAD || os != o0 + n0 || ob != os + steps_n || o1 != ob + bits_n)
        return crl_errf(err, CRL_ECORRUPT,
                        "episode record's sections do not add up (%llu steps of %llu "
                        "actions)",
                        (unsigned long long)T, (unsigned long long)A);
    if (o1 + n1 != n || !inside(o0, n0, EP_HEAD, n) || !inside(os, steps_n, EP_HEAD, n) ||
        !inside(ob, bits_n, EP_HEAD, n) || !inside(o1, n1, EP_HEAD, n))
        return crl_errf(err, CRL_ECORRUPT,
                        "episode record is %s (%zu bytes, its header says %llu)",
                        o1 + n1 > n ? "truncated" : "longer than its header says", n,
                        (unsigned long long)(o1 + n1));
    out->length = (int)T;
    out->act_dim = (int)A;
    out->seed = crl_le_get_u64(p + 24);
    memcpy(out->model_hash, p + 32, 16);
    memcpy(out->mujoco_version, p + 48, 16);
    out->ended = (flags & EP_ENDED) != 0;
    out->terminal = (flags & EP_TERMINAL) != 0;
    out->truncated = (flags & EP_TRUNCATED) != 0;
    uint64_t u = crl_le_get_u64(p + 88);
    memcpy(&out->ret, &u, 8);
    out->act = malloc(sizeof(float) * (size_t)(T * A + 1));
    out->reward = malloc(sizeof(float) * (size_t)(T + 1));
    out->success = malloc((size_t)T + 1);
    out->s0 = malloc((size_t)n0 + 1);
    out->s1 = malloc((size_t)n1 + 1);
    if (!out->act || !out->reward || !out->success || !out->s0 || !out->s1) {
        crl_episode_data_free(out);
        return crl_errf(err, CRL_ENOMEM, "out of memory decoding an episode record");
    }
    for (uint64_t t = 0; t < T; t++) {
        const unsigned char *q = p + os + t * (A + 1) * 4;
        for (uint64_t j = 0; j < A; j++) out->act[t * A + j] = get_f32(q + 4 * j);
        out->reward[t] = get_f32(q + 4 * A);
        out->success[t] = (p[ob + t / 8] >> (t % 8)) & 1u;
    }
    memcpy(out->s0, p + o0, (size_t)n0);
    memcpy(out->s1, p + o1, (size_t)n1);
    out->n0 = (size_t)n0;
    out->n1 = (size_t)n1;
    return CRL_OK;
}

/* ---- replaying --------------------------------------------------------------- */

int crl_episode_check(const crl_env_spec *spec, const crl_episode_data *ep,
                      crl_err *err) {
    if (!spec || !ep) return crl_errf(err, CRL_EINVAL, "crl_episode_check: bad argument");
    const char *name = crl_env_spec_name(spec);
    if (strcmp(ep->mujoco_version, mj_versionString()) != 0)
        return crl_errf(err, CRL_EVERSION,
                        "the episode was recorded with MuJoCo %s, this crl runs MuJoCo "
                        "%s: the replay would not be exact",
                        ep->mujoco_version, mj_versionString());
    char hash[17];
    int rc = crl_env_model_hash(spec, hash, err);
    if (rc) return rc;
    if (strcmp(hash, ep->model_hash) != 0)
        return crl_errf(err, CRL_EVERSION,
                        "the model of '%s' is not the one the episode was recorded on "
                        "(model hash %s, recorded %s): the task or its modifiers changed",
                        name, hash, ep->model_hash);
    if (ep->act_dim != crl_env_act_dim(spec))
        return crl_errf(err, CRL_ECORRUPT,
                        "the episode has %d actions per step, task '%s' takes %d",
                        ep->act_dim, name, crl_env_act_dim(spec));
    return CRL_OK;
}

int crl_episode_restore(crl_env *e, const crl_episode_data *ep, crl_err *err) {
    int rc = crl_episode_check(crl_env_get_spec(e), ep, err);
    if (rc) return rc;
    crl_err e2 = {0};
    rc = crl_env_set_state(e, ep->s0, ep->n0, &e2);
    if (rc)
        return crl_errf(err, rc, "the episode's initial state does not fit: %s", e2.msg);
    return CRL_OK;
}

static int float_bits_eq(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

static const char *end_name(int terminal, int truncated) {
    return terminal ? "terminal" : truncated ? "truncated" : "not ended";
}

int crl_episode_verify(const crl_env_spec *spec, const crl_episode_data *ep,
                       crl_episode_result *res, crl_err *err) {
    if (!res) return crl_errf(err, CRL_EINVAL, "crl_episode_verify: res is NULL");
    memset(res, 0, sizeof *res);
    res->step = -1;
    crl_env *e = NULL;
    int rc = crl_env_create(spec, &e, err);
    if (rc) return rc;
    void *s1 = malloc(crl_env_state_size(spec));
    if (!s1) {
        crl_env_free(e);
        return crl_errf(err, CRL_ENOMEM, "out of memory verifying an episode");
    }
    rc = crl_episode_restore(e, ep, err);
    const int T = ep->length, A = ep->act_dim;
    for (int t = 0; !rc && t < T; t++) {
        crl_step_info info;
        crl_env_step(e, ep->act + (size_t)t * A, NULL, &info);
        int ended = info.terminal || info.truncated;
        const char *differs = NULL;
        char buf[200];
        if (!float_bits_eq(info.reward, ep->reward[t])) {
            snprintf(buf, sizeof buf, "reward %.9g, recorded %.9g", (double)info.reward,
                     (double)ep->reward[t]);
            differs = buf;
        } else if ((info.success != 0) != ep->success[t]) {
            snprintf(buf, sizeof buf, "success %d, recorded %d", info.success != 0,
                     ep->success[t]);
            differs = buf;
        } else if (t < T - 1 && ended) {
            snprintf(buf, sizeof buf,
                     "the episode ended (%s), the record goes on to step %d",
                     end_name(info.terminal, info.truncated), T - 1);
            differs = buf;
        } else if (t == T - 1 && (ended != ep->ended ||
                                  (ep->ended && (info.terminal != ep->terminal ||
                                                 info.truncated != ep->truncated)))) {
            snprintf(buf, sizeof buf, "the episode is %s, recorded %s",
                     end_name(info.terminal, info.truncated),
                     ep->ended ? end_name(ep->terminal, ep->truncated) : "not ended");
            differs = buf;
        }
        if (differs) {
            res->step = t;
            snprintf(res->what, sizeof res->what, "%s", differs);
            break;
        }
    }
    if (!rc && res->step < 0) {
        size_t n1 = crl_env_get_state(e, s1);
        char what[300];
        if (crl_env_state_diff(spec, s1, n1, ep->s1, ep->n1, what, sizeof what))
            snprintf(res->what, sizeof res->what,
                     "final state after step %d: %s (replay vs recorded)", T - 1, what);
        else
            res->verified = 1;
    }
    free(s1);
    crl_env_free(e);
    return rc;
}
