/* crl embed, private: the policy file format (docs/policy-format.md) as
 * constants and little-endian byte helpers shared by the writer
 * (agents/export.c) and the reader (embed/policy.c). */
#ifndef CRL_EMBED_FORMAT_H
#define CRL_EMBED_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crl/base.h"
#include "crl/nn.h"

#define POL_MAGIC                                                                        \
    "\x89"                                                                               \
    "CRLP\r\n\x1a"
#define POL_MAGIC_LEN    8
#define POL_HEADER_SIZE  64
#define POL_SECTION_HEAD 16
#define POL_TRAILER      4
#define POL_MIN_SIZE     (POL_HEADER_SIZE + POL_TRAILER)

/* Method tags (META). */
enum {
    POL_METHOD_PLAIN = 1,
    POL_METHOD_FTN = 2,
    POL_METHOD_PACKNET = 3,
    POL_METHOD_CSP = 4,
    POL_METHOD_L2M = 5
};

/* Task env kinds (TASK). */
enum { POL_ENV_BUILTIN = 1, POL_ENV_USER_MJCF = 2 };

/* Output heads (NET). */
enum { POL_HEAD_TANH_GAUSSIAN = 1 };

/* Observation normalisation (TASK). */
enum { POL_NORM_NONE = 0, POL_NORM_AFFINE = 1 };

/* Limits checked before anything is allocated from a size in the file. */
#define POL_MAX_TASKS   4096
#define POL_MAX_NETS    4096
#define POL_MAX_DIM     65536 /* in, out, hidden widths */
#define POL_MAX_HEADS   4096
#define POL_MAX_STR     4096
#define POL_MAX_DERIVED ((size_t)1 << 30) /* bytes of per-task packnet views */
#define POL_MAX_ANCHORS 64                /* CSP anchors (CRL_CSP_MAX_K) */
#define POL_MAX_POOL    4096              /* L2M modulators */
#define POL_MAX_RANK    4096              /* L2M LoRA rank */

/* L2M routing (L2MP). */
enum { POL_ROUTE_COSINE = 0, POL_ROUTE_ORACLE = 1, POL_ROUTE_ARROW = 2 /* L2MP v3 */ };

/* ---- little-endian encoding ------------------------------------------------- */

static inline void pol_put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void pol_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void pol_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t pol_get_u16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pol_get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t pol_get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static inline uint32_t pol_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float pol_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint64_t pol_f64_bits(double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}
static inline double pol_bits_f64(uint64_t u) {
    double f;
    memcpy(&f, &u, 8);
    return f;
}

/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320; the zlib/PNG CRC):
 * crc = crl_pf_crc32(0, data, n). */
uint32_t crl_pf_crc32(uint32_t crc, const void *data, size_t n);

/* An in-memory description of a policy file, for the writer. All networks
 * share one shape (mlp); net_params[i] holds mlp.n_params floats. */
typedef struct {
    int net, head, view, position;
    int env_kind; /* POL_ENV_* */
    int obs_dim, act_dim, frame_skip, max_steps;
    const char *name;
    const char *modifiers;      /* JSON text, "{}" for none */
    int norm;                   /* POL_NORM_* */
    const float *shift, *scale; /* POL_NORM_AFFINE: obs_dim each */
} crl_pf_task;

typedef struct {
    int method; /* POL_METHOD_* */
    const char *method_name, *scenario;
    int64_t run_id, step;
    uint64_t seed;
    const crl_mlp *mlp;
    int n_nets;
    const float *const *net_params;
    const int16_t *pk_owner; /* POL_METHOD_PACKNET: mlp->n_params owners */
    int pk_task, pk_tasks;   /* packnet's current task and task count */
    /* POL_METHOD_CSP: n_nets anchors (net_params[i] is anchor i as a plain
     * network); csp_alpha holds n_tasks rows of n_nets floats, one per file
     * task. */
    const float *csp_alpha;
    /* POL_METHOD_L2M: network 0 is the frozen base; the pool's layout, its
     * l2m_n_params floats, and the evaluation routing (tasks' view = the
     * oracle task). */
    int l2m_kind, l2m_M, l2m_rank;
    float l2m_scale;
    int l2m_route, l2m_route_tasks;
    /* The history query H (1: the current observation) and the hold option;
     * H > 1 or hold writes L2MP version 2. */
    int l2m_history, l2m_hold;
    size_t l2m_n_params;
    const float *l2m_params;
    int n_tasks;
    const crl_pf_task *tasks;
    const char *info; /* ancillary text, may be NULL */
} crl_pf_desc;

/* Encode d as a policy file (*out malloc'd). CRL_ENOMEM, CRL_EINVAL. */
int crl_pf_write(const crl_pf_desc *d, unsigned char **out, size_t *n, crl_err *err);

#endif
