/* crl embed, private: the loaded policy, shared by embed/policy.c (loading,
 * acting) and embed/mj.c (the MuJoCo side). */
#ifndef CRL_EMBED_INTERNAL_H
#define CRL_EMBED_INTERNAL_H

#include <pthread.h>

#include "crl/actor.h"
#include "crl/env.h"
#include "crl/nn.h"
#include "crl/policy.h"
#include "crl/pool.h"
#include "crl/subspace.h"

typedef struct {
    crl_mlp mlp;
    float *params; /* mlp.n_params */
} pol_net;

typedef struct {
    int net, head, view, position, env_kind;
    int obs_dim, act_dim, frame_skip, max_steps;
    char *name, *modifiers;
    int norm;             /* POL_NORM_* */
    float *shift, *scale; /* POL_NORM_AFFINE */
    float *act_lo, *act_hi;
    int act_identity;    /* bounds are [-1, 1]: the tanh output as is */
    const float *params; /* the parameters this task acts with */
    const float *alpha;  /* CSP: the task's point of the subspace (n anchors) */
    crl_env_spec *spec;  /* crl's own model of the task, made on first use */
} pol_task;

/* Read-only after loading (except the lazily made specs, under lock); shared
 * by a policy and its clones and environments, freed with the last one. */
typedef struct {
    int refs; /* atomic */
    int method;
    char *method_name, *scenario;
    char crl_version[17];
    int64_t run_id, step;
    uint64_t seed;
    int n_nets;
    pol_net *nets;
    int n_tasks;
    pol_task *tasks;
    float *views; /* packnet: one parameter vector per task */
    /* CSP: the subspace rebuilt from the anchor networks, and the alpha
     * table (n_tasks x n_anchors). */
    crl_subspace sub;
    float *sub_params, *alpha;
    /* L2M: the pool over network 0 (the frozen base) and the evaluation
     * routing (POL_ROUTE_*; route_tasks = the oracle's task count). */
    crl_pool pool;
    float *pool_params;
    int route, route_tasks;
    int history, hold; /* L2MP version 2; 1 and 0 for version 1 */
    /* The actor every task acts through (crl_actor_create): a plain MLP of
     * network 0's shape fed each task's parameters, or the subspace / the
     * pool above. It borrows the buffers above and is only read while
     * acting, so clones share it. */
    crl_actor *actor;
    int obs_dim, act_dim;
    pthread_mutex_t lock;
} pol_core;

struct crl_policy {
    pol_core *c;
    int max_batch;
    crl_actor_ws ws;
    float *mix;                   /* CSP: max_batch x n_anchors alphas */
    float *xin;                   /* max_batch x obs_dim: normalised observations */
    float *eps;                   /* max_batch x act_dim: sampling noise */
    int *heads;                   /* max_batch */
    float *obs1, *act1;           /* act_mj's observation and action */
    struct crl_policy_env **envs; /* per task: act_mj's episode state */
    char err[256];
};

void pol_core_ref(pol_core *c);
void pol_core_unref(pol_core *c);
/* Fill errbuf (may be NULL) and return code. */
int pol_fail(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record the message of a failed call on p and return code. */
int pol_set_err(crl_policy *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* crl_policy_env teardown for crl_policy_free (embed/mj.c). */
void pol_free_envs(crl_policy *p);

#endif
