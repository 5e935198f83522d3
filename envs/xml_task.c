/* crl envs: a task from a user's own MJCF file (crl_env_spec_create_xml).
 *
 * actions  one per actuator, mapped from [-1, 1] onto its ctrlrange
 *          (crl_task_map_actions)
 * obs      the model's sensordata if it has sensors, else qpos and qvel
 * reward   CRL_XML_REWARD_FORWARD: x-velocity of a body's frame,
 *            (x_after - x_before) / (frame_skip * timestep)
 *          CRL_XML_REWARD_REACH: -|site position - target|
 *          success is always 0, and no state is terminal.
 * reset    qpos0 and zero velocity, with U(-0.01, 0.01) on every hinge and
 *          slide coordinate and 0.01 N(0, 1) on their velocities.
 *
 * After the physics steps the reward hook brings positions (and sensors) up
 * to date with the final qpos: mj_step leaves derived quantities from the
 * start of its last substep. With sensors that is a full mj_forward, without
 * them only the cheap mj_kinematics.
 *
 * The spec needs a task definition that lives as long as it does and holds
 * this file's settings; both sit in the spec's task_data, which
 * crl_env_spec_free releases. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "task.h"

typedef struct {
    struct crl_task_def def; /* s->task points here */
    char name[256];          /* the path, as the spec's name */
    crl_xml_reward reward;
    int body;         /* FORWARD: tracked body id */
    int site;         /* REACH: site id */
    double target[3]; /* REACH */
    int use_sensors;
} xml_data;

typedef struct {
    double x_before;
} xml_state;

static const xml_data *data_of(const crl_env_spec *s) {
    return s->task_data;
}

static void xml_reset(crl_env *e, crl_rng *rng) {
    const mjModel *m = e->spec->m;
    mjData *d = e->d;
    for (int j = 0; j < m->njnt; j++) {
        int t = m->jnt_type[j];
        if (t != mjJNT_HINGE && t != mjJNT_SLIDE) continue;
        d->qpos[m->jnt_qposadr[j]] =
            m->qpos0[m->jnt_qposadr[j]] + crl_rng_range(rng, -0.01, 0.01);
        d->qvel[m->jnt_dofadr[j]] = 0.01 * crl_rng_normal(rng);
    }
}

static void xml_apply(crl_env *e, const float *act) {
    const xml_data *x = data_of(e->spec);
    xml_state *st = e->task_state;
    /* xpos is current here: reset ends in mj_forward, a step in the reward
     * hook's update. */
    if (x->reward == CRL_XML_REWARD_FORWARD) st->x_before = e->d->xpos[3 * x->body];
    crl_task_map_actions(e, act);
}

static void xml_reward(crl_env *e, const float *act, crl_step_info *info) {
    const crl_env_spec *s = e->spec;
    const xml_data *x = data_of(s);
    const xml_state *st = e->task_state;
    mjData *d = e->d;
    if (x->use_sensors)
        mj_forward(s->m, d);
    else
        mj_kinematics(s->m, d);
    if (x->reward == CRL_XML_REWARD_FORWARD) {
        double dt = s->m->opt.timestep * s->frame_skip;
        info->reward = (float)((d->xpos[3 * x->body] - st->x_before) / dt);
    } else {
        const mjtNum *p = d->site_xpos + 3 * x->site;
        double dx = p[0] - x->target[0], dy = p[1] - x->target[1],
               dz = p[2] - x->target[2];
        info->reward = (float)-mju_sqrt(dx * dx + dy * dy + dz * dz);
    }
    info->success = 0;
    info->terminal = 0;
}

static void xml_observe(const crl_env *e, float *obs) {
    const mjModel *m = e->spec->m;
    const mjData *d = e->d;
    if (data_of(e->spec)->use_sensors) {
        for (int i = 0; i < m->nsensordata; i++) obs[i] = (float)d->sensordata[i];
        return;
    }
    int k = 0;
    for (int i = 0; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
    for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
}

/* s as a JSON string or null (quotes, backslashes and control bytes escaped) at
 * buf + *k; *k advances past what fits. */
static void json_str(char *buf, size_t n, size_t *k, const char *s) {
    if (!s) { /* an unnamed body or site */
        if (*k + 5 < n) *k += (size_t)snprintf(buf + *k, n - *k, "null");
        return;
    }
    if (*k + 1 < n) buf[(*k)++] = '"';
    for (; s && *s && *k + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*k)++] = '\\';
            buf[(*k)++] = (char)c;
        } else if (c < 0x20) {
            *k += (size_t)snprintf(buf + *k, n - *k, "\\u%04x", c);
        } else {
            buf[(*k)++] = (char)c;
        }
    }
    if (*k + 1 < n) buf[(*k)++] = '"';
    buf[*k < n ? *k : n - 1] = '\0';
}

/* What crl_env_spec_create_xml needs to make this task again (an episode
 * record's modifiers): the file, the reward choice with its body or site
 * and target, the episode length and frame skip. */
static void xml_modifiers(const crl_env_spec *s, char *buf, size_t n) {
    const xml_data *x = data_of(s);
    size_t k = 0;
    if (n < 2) return;
    k += (size_t)snprintf(buf, n, "{\"xml\":");
    if (k >= n) k = n - 1;
    json_str(buf, n, &k, x->name);
    if (k + 1 >= n) return;
    if (x->reward == CRL_XML_REWARD_FORWARD) {
        k += (size_t)snprintf(buf + k, n - k, ",\"reward\":\"forward\",\"body\":");
        if (k >= n) return;
        json_str(buf, n, &k, mj_id2name(s->m, mjOBJ_BODY, x->body));
    } else {
        k += (size_t)snprintf(buf + k, n - k, ",\"reward\":\"reach\",\"site\":");
        if (k >= n) return;
        json_str(buf, n, &k, mj_id2name(s->m, mjOBJ_SITE, x->site));
        if (k < n)
            k += (size_t)snprintf(buf + k, n - k, ",\"target\":[%.17g,%.17g,%.17g]",
                                  x->target[0], x->target[1], x->target[2]);
    }
    if (k < n)
        snprintf(buf + k, n - k, ",\"max_steps\":%d,\"frame_skip\":%d}", s->max_steps,
                 s->frame_skip);
}

/* mj_loadXML records the last model in a MuJoCo global; load one at a time. */
static pthread_mutex_t xml_load_lock = PTHREAD_MUTEX_INITIALIZER;

int crl_env_spec_create_xml(const char *path, const crl_xml_task *opts,
                            crl_env_spec **out, crl_err *err) {
    if (!out) return crl_errf(err, CRL_EINVAL, "crl_env_spec_create_xml: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return crl_errf(err, CRL_EINVAL, "crl_env_spec_create_xml: no file given");
    crl_xml_task o = {0};
    if (opts) o = *opts;
    if (o.max_steps < 0 || o.frame_skip < 0)
        return crl_errf(err, CRL_EINVAL, "%s: max_steps and frame_skip must be >= 0",
                        path);
    if (o.reward != CRL_XML_REWARD_FORWARD && o.reward != CRL_XML_REWARD_REACH)
        return crl_errf(err, CRL_EINVAL, "%s: unknown reward choice %d", path,
                        (int)o.reward);

    struct stat sb;
    if (stat(path, &sb) != 0)
        return crl_errf(err, errno == ENOENT ? CRL_ENOTFOUND : CRL_EIO, "%s: %s", path,
                        strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return crl_errf(err, CRL_EINVAL, "%s: is a directory, not an MJCF file", path);

    char msg[1000] = "";
    pthread_mutex_lock(&xml_load_lock);
    mjModel *m = mj_loadXML(path, NULL, msg, sizeof msg);
    pthread_mutex_unlock(&xml_load_lock);
    if (!m) {
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        size_t n = strlen(msg);
        while (n && msg[n - 1] == ' ') msg[--n] = '\0';
        return crl_errf(err, CRL_EMUJOCO, "%s: not a usable MJCF model: %s", path,
                        *msg ? msg : "MuJoCo gave no reason");
    }

    int rc = CRL_OK;
    crl_env_spec *s = calloc(1, sizeof *s);
    xml_data *x = calloc(1, sizeof *x);
    if (!s || !x) {
        mj_deleteModel(m);
        free(s);
        free(x);
        return crl_errf(err, CRL_ENOMEM, "%s: out of memory", path);
    }
    s->m = m;
    s->task_data = x;
    s->task = &x->def;

    if (m->nu == 0) {
        rc = crl_errf(err, CRL_EINVAL,
                      "%s: the model has no actuators (crl needs at least one)", path);
        goto fail;
    }
    x->reward = o.reward;
    if (o.reward == CRL_XML_REWARD_FORWARD) {
        if (o.body) {
            x->body = mj_name2id(m, mjOBJ_BODY, o.body);
            if (x->body < 0) {
                rc = crl_errf(err, CRL_EINVAL, "%s: no body named '%s'", path, o.body);
                goto fail;
            }
        } else {
            x->body = 1;
            if (m->nbody < 2) {
                rc = crl_errf(err, CRL_EINVAL,
                              "%s: the model has no body for the forward reward", path);
                goto fail;
            }
        }
    } else {
        if (!o.site) {
            rc =
                crl_errf(err, CRL_EINVAL, "%s: the reach reward needs a site name", path);
            goto fail;
        }
        x->site = mj_name2id(m, mjOBJ_SITE, o.site);
        if (x->site < 0) {
            rc = crl_errf(err, CRL_EINVAL, "%s: no site named '%s'", path, o.site);
            goto fail;
        }
        memcpy(x->target, o.target, sizeof x->target);
    }
    x->use_sensors = m->nsensordata > 0;
    int obs_dim = x->use_sensors ? m->nsensordata : m->nq + m->nv;
    if (obs_dim <= 0) {
        rc = crl_errf(err, CRL_EINVAL,
                      "%s: the model has no sensors and no joints to observe", path);
        goto fail;
    }

    snprintf(x->name, sizeof x->name, "%s", path);
    x->def = (struct crl_task_def){
        .name = x->name,
        .description = "user MJCF model",
        .model = NULL,
        .obs_dim = obs_dim,
        .act_dim = m->nu,
        .max_steps = o.max_steps ? o.max_steps : 1000,
        .frame_skip = o.frame_skip ? o.frame_skip : 5,
        .state_size = sizeof(xml_state),
        .reset = xml_reset,
        .apply_action = xml_apply,
        .observe = xml_observe,
        .reward = xml_reward,
        .group = "user",
        .modifiers = xml_modifiers,
    };
    s->obs_dim = x->def.obs_dim;
    s->act_dim = x->def.act_dim;
    s->max_steps = x->def.max_steps;
    s->frame_skip = x->def.frame_skip;
    *out = s;
    return CRL_OK;
fail:
    crl_env_spec_free(s);
    return rc;
}
